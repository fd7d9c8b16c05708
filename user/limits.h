/* SPDX-License-Identifier: Apache-2.0 */
/*
 * limits: fixed windows aligned to multiples of their length since the epoch, budgets shared
 * by counter name, scope and window, reserve-all-or-none and give-back (DESIGN.md §2).
 * State is keyed by names, not by rule addresses, so it survives a policy reload.
 */
#ifndef MCPFENCE_LIMITS_H
#define MCPFENCE_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "policy.h"
#include "decide.h"

#define LIMITS_MAX_PER_CALL 32 /* all_tools limits + a rule's limits, checked at load */

typedef uint64_t (*limits_clock_fn)(void *ctx); /* seconds since the epoch */

/* Who is calling, for scopes session and agent. */
struct scope_keys {
	const char *session; /* MCP session id, or a per-connection id */
	const char *agent;   /* "uid:exe" of the client */
};

struct reservation {
	size_t n;
	struct {
		uint32_t budget; /* slot index, valid while gen matches */
		uint32_t gen;
		uint64_t window_start;
		bool shared; /* in the host-wide table */
	} slot[LIMITS_MAX_PER_CALL];
};

struct limits;

/* clock NULL means the real clock (CLOCK_REALTIME). */
struct limits *limits__new(limits_clock_fn clock, void *ctx);
/*
 * Keep budgets of scope "global" in a table file that every process of the host maps (under
 * flock), instead of in this process. The file is created 0600; one owned by another uid or
 * writable by others is refused. Without this call "global" budgets are this process's.
 */
int limits__share_global(struct limits *l, const char *path);
/*
 * Where the host-wide table lives: $MCPFENCE_RUNTIME_DIR/global-budgets when set, else under
 * /run/mcpfence for root, else under the user's runtime dir. The directory is made (0700).
 */
const char *limits__default_global_path(char *buf, size_t len);
void limits__free(struct limits *l);

/*
 * Reserve one unit of every budget that applies to a call matched by rule r (NULL: default
 * allow), all_tools limits first, then the rule's. Returns 0 and fills res when every budget
 * had room; otherwise reserves nothing, returns -EDQUOT and marks d denied (KIND_LIMIT) with
 * the pointer of the limit that fired and retry_after_s until its window ends.
 */
int limits__reserve(struct limits *l, const struct policy *p, const struct rule *r,
		    const struct scope_keys *k, struct reservation *res, struct decision *d);
/* Give a reservation back (the call never reached the server). A window that has since
 * rolled over is left alone. */
void limits__release(struct limits *l, const struct reservation *res);
/*
 * Count one use of lim's budget that happened at time at (seconds since the epoch; 0: now) and
 * that was already let through elsewhere (the kernel plane): unconditional, so used may exceed
 * max. Returns 0, -ESTALE (nothing counted) when the window holding at is over, or -errno.
 */
int limits__charge(struct limits *l, const struct limit *lim, const struct scope_keys *k,
		   uint64_t at);
/* Used count of the current window for a limit and keys (for stats and tests). */
uint64_t limits__used(struct limits *l, const struct limit *lim, const struct scope_keys *k);
/* What is left of lim's budget in the current window: max - used, 0 when used >= max. */
uint64_t limits__left(struct limits *l, const struct limit *lim, const struct scope_keys *k);
/* Drop budgets whose window has ended; returns how many were dropped. */
size_t limits__gc(struct limits *l);

uint64_t limits__now(struct limits *l);

#endif
