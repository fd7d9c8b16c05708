/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernel_compile: a policy into the maps of a generation of the TCP plane, the budget windows
 * refilled as they start, and the global budgets kept in step with the host-wide table.
 */
#ifndef MCPFENCE_KERNEL_COMPILE_H
#define MCPFENCE_KERNEL_COMPILE_H

#include <stdbool.h>
#include <stdint.h>
#include "kernel.h"

/*
 * Compile p into generation gen of the loaded maps (rules, globs, limits, gen cfg), and make
 * sure every grant/global budget exists. p gets its index in tcp_policies (by the name of its
 * file and the digest of its bytes), so that calls it decides are counted under it. Does not
 * flip the active generation.
 * Returns 0 or -errno after logging what in the policy the kernel cannot hold.
 */
int kernel__compile(struct tcp_bpf *skel, const struct policy *p, unsigned gen,
		    struct kernel_compiled *out);
/*
 * What generation gen holds, compiled from p by another process (a daemon that left): kc as
 * kernel__compile would fill it, the maps untouched, so that the events of that generation name
 * their rules and policy. 0 or -errno.
 */
int kernel__describe(struct tcp_bpf *skel, const struct policy *p, unsigned gen,
		     struct kernel_compiled *kc);

/* Refill budgets whose window started since *last (seconds since the epoch); updates *last. */
int kernel__refill(struct tcp_bpf *skel, const struct kernel_compiled *kc, uint64_t now,
		   uint64_t last);

struct limits;
/*
 * Set each budget of scope "global" of kc in tcp_budgets to what the host-wide table l leaves
 * of it in the current window (max - used, 0 at least). Call it after the ring buffer is
 * drained (its events charge l). Returns 0 or the last -errno (each logged).
 */
int kernel__sync_global(struct tcp_bpf *skel, const struct kernel_compiled *kc, struct limits *l);

/*
 * Charge the host-wide table l with the calls BPF let through on kc's global budgets whose
 * events found the ring full (tcp_uncharged, since the last charge). Call it before kc's
 * generation is compiled again. Returns how many were charged.
 */
uint64_t kernel__charge_uncharged(struct tcp_bpf *skel, struct kernel_compiled *kc,
				  struct limits *l);

/*
 * Delete the budgets of scope session of stdio session idx (it ended): a session that takes its
 * index again starts with its own.
 */
void kernel__drop_stdio_budgets(struct tcp_bpf *skel, unsigned idx);

/* ms until the next window of kc's limits starts (a refill is due), at most 1000. */
int kernel__next_window_ms(const struct kernel_compiled *kc);

/* May this byte stand in the name of a policy (tcp_policies, stats): [A-Za-z0-9._+@-]. */
bool kernel__policy_name_byte(unsigned char c);

#endif
