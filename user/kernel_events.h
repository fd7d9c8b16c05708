/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernel_events: the decisions BPF wrote to tcp_events, into audit lines and attach's log lines,
 * and the global budgets they took, into the host-wide table.
 */
#ifndef MCPFENCE_KERNEL_EVENTS_H
#define MCPFENCE_KERNEL_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "kernel.h"

struct audit;
struct limits;
struct kernel_stdio_session;
struct status;

/* What the handler needs: the compiled policies by generation, where to write, what to charge. */
struct kernel_events {
	const struct kernel_compiled *kc; /* [MCPF_GENS], by generation (index in tcp_gen) */
	struct limits *limits;		  /* the host-wide table for global budgets, or NULL */
	struct audit *audit;
	bool quiet;	    /* no log line per event */
	bool many_policies; /* attach --policy-dir: audit lines and status rows name the policy */
	int64_t mono_to_real_us;		  /* CLOCK_REALTIME - CLOCK_MONOTONIC, µs */
	const struct kernel_stdio_session *stdio; /* attach --pid: the servers, by session */
	unsigned nstdio;
	struct status *status; /* the sessions' rows (mcpfence status), or NULL */
};

/* ring_buffer__new's callback: ctx is a struct kernel_events. Always 0. */
int kernel__on_event(void *ctx, void *data, size_t size);

/*
 * The reason a denial of kind (enum mcpf_kind) by rule (index in the policy's rules) or limit
 * (budget slot, or hide index) gives, as audit lines say it; NULL for an allow.
 */
const char *kernel__reason(const struct kernel_compiled *kc, unsigned kind, unsigned rule,
			   unsigned limit);

/* What enum mcpf_why says, for audit lines and logs ("a charset other than utf-8 ..."). */
const char *kernel__why_text(uint32_t why);
/* The name of enum mcpf_kind ("allow", "rule", "unparsed"...), "?" past it. */
const char *kernel__kind_name(unsigned kind);

#endif
