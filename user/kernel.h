/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernel: the TCP enforcement of the kernel plane (bpf/tcp.bpf.c): load, attach to a cgroup v2,
 * pin under MCPF_PIN_DIR, compile a policy into the maps, refill budget windows, turn ring-buffer
 * events into audit lines; and the commands that read or change the pinned state.
 */
#ifndef MCPFENCE_KERNEL_H
#define MCPFENCE_KERNEL_H

#include <stdbool.h>
#include <stdint.h>
#include "policy.h"

struct tcp_bpf;

/* Which budget slot a policy's limit compiled to, per generation. */
struct kernel_slot {
	uint64_t ident;
	const struct limit *lim; /* the first limit of the policy with this budget */
};

struct kernel_compiled {
	struct policy *pol;
	struct kernel_slot slots[64];
	unsigned nslots;
	unsigned gen; /* the generation of the maps it was compiled into */
	uint32_t policy_id; /* its index in tcp_policies, which stats keys carry */
	uint64_t uncharged_seen[64]; /* tcp_uncharged of each slot, as last charged */
	char policy_path[4096]; /* its file's real path: names its global budgets as run does */
};

/* How the server stage finds the replies to rewrite (bpf/tcp.bpf.c reply_find). */
enum kernel_search {
	KERNEL_SEARCH_AUTO = 0,  /* the loop: on every kernel, and faster than the kfunc */
	KERNEL_SEARCH_KFUNC = 1, /* bpf_strnstr (6.17+); fails without it */
	KERNEL_SEARCH_LOOP = 2,  /* a bpf_loop search, 8 bytes a step */
	KERNEL_SEARCH_BOTH = 3,  /* the loop's wired, the kfunc's loaded too where there is one */
};

struct kernel_load_opts {
	enum kernel_search search;
	uint32_t glob_steps; /* steps of a glob match before it is denied; 0: 9000 */
};

/* Open and load bpf/tcp.bpf.c (the stages wired); NULL and errno after logging why. */
struct tcp_bpf *kernel__load(void);
struct tcp_bpf *kernel__load_with(enum kernel_search how);
struct tcp_bpf *kernel__load_opts(const struct kernel_load_opts *o);
/* The server stage wired is the bpf_strnstr build (else the loop's). */
bool kernel__search_kfunc(const struct tcp_bpf *skel);
/* Both builds of the server stage are loaded (KERNEL_SEARCH_BOTH on a kernel with the kfunc). */
bool kernel__search_both(const struct tcp_bpf *skel);
/* Make generation gen of the policy maps the one in force. */
int kernel__activate(struct tcp_bpf *skel, unsigned gen);
int kernel__watch_port(struct tcp_bpf *skel, uint16_t port);

/*
 * Compile p into generation gen of the loaded maps (rules, globs, limits, gen cfg), and make
 * sure every grant/global budget exists. p gets its index in tcp_policies (by the name of its
 * file and the digest of its bytes), so that calls it decides are counted under it. Does not
 * flip the active generation.
 * Returns 0 or -errno after logging what in the policy the kernel cannot hold.
 */
int kernel__compile(struct tcp_bpf *skel, const struct policy *p, unsigned gen,
		    struct kernel_compiled *out);

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

/* Remove links, programs and pins under MCPF_PIN_DIR; 0 when nothing was attached. */
int kernel__detach(void);

enum kernel_attachment {
	KERNEL_ATTACHED_NONE = 0,
	KERNEL_ATTACHED_LIVE = 1,  /* pinned, and its `mcpfence attach` runs */
	KERNEL_ATTACHED_STALE = 2, /* pinned (programs may still run), its attach is gone */
};

/* Whether MCPF_PIN_DIR holds an attachment, and whether its attach process still runs. */
enum kernel_attachment kernel__attachment(void);

/* `mcpfence approve --tool T [--count N] [--for DURATION]`: a ticket BPF takes. */
int kernel__approve_ticket(int argc, char **argv);

/* What enum mcpf_why says, for audit lines and logs ("a charset other than utf-8 ..."). */
const char *kernel__why_text(uint32_t why);

/* Parse "30s", "10m", "2h", "1d" or plain seconds; -EINVAL otherwise. */
int kernel__parse_duration(const char *s, uint64_t *seconds);

#endif
