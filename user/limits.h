/* SPDX-License-Identifier: Apache-2.0 */
/*
 * limits: fixed windows aligned to multiples of their length since the epoch, budgets shared
 * by counter name, scope and window, reserve-all-or-none and give-back (README: "The policy").
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

/*
 * Who is calling, and under what: the keys of the scopes (README, "Budgets"). NULL is "".
 * session: one MCP session; agent: one client identity; grant: one server (server) under one
 * policy (policy); global: none. policy also names a limit that has no counter of its own.
 */
struct scope_keys {
	const char *session; /* MCP session id, or a per-connection id */
	const char *agent;   /* "uid:exe" of the client */
	const char *policy;  /* the policy file's real path */
	const char *server;  /* the server's identity: "name:NAME" or its command line */
};

struct reservation {
	size_t n;
	struct {
		uint32_t budget; /* slot index, valid while gen matches */
		uint32_t gen;
		uint64_t window_start;
		bool shared; /* in the host-wide table */
		bool remote; /* in Redis: budget is the store's index, digest the name's */
		uint8_t digest[32];
	} slot[LIMITS_MAX_PER_CALL];
};

struct limits;

/* clock NULL means the real clock (CLOCK_REALTIME). */
struct limits *limits__new(limits_clock_fn clock, void *ctx);
/*
 * Keep the budgets of scopes grant, agent and global in the host-wide table at path, a file
 * that every process of the host (of this uid) maps, under flock, instead of in this process.
 * nslots is the size of a table this call creates (0: LIMITS_TABLE_SLOTS); an existing table
 * keeps its own. The file is created 0600; one owned by another uid, writable by others, in a
 * directory that others could replace it in, or of another layout is refused.
 * Returns 0 or -errno after logging why; after a failure, l denies every call that needs a
 * budget of those scopes (fail closed) until a later call succeeds. Without this call l keeps
 * every budget in this process (tests).
 */
#define LIMITS_TABLE_SLOTS 16384
int limits__share_table(struct limits *l, const char *path, uint32_t nslots);
/*
 * Where the host-wide table lives: $MCPFENCE_RUNTIME_DIR/global-budgets when set, else under
 * /run/mcpfence for root, else under the user's runtime dir. The directory is made (0700).
 */
const char *limits__default_table_path(char *buf, size_t len);
void limits__free(struct limits *l);

/*
 * The name of lim's budget for the scope keys k, as snprintf writes: into out (size bytes, NUL
 * included, truncated to fit), returning its whole length (-1 past INT_MAX). Its SHA-256 keys
 * the budget in the host-wide table, so it must not change between versions.
 */
int limits__budget_name(char *out, size_t size, const struct limit *lim,
			const struct scope_keys *k);

/*
 * Reserve one unit of every budget that applies to a call matched by rule r (NULL: default
 * allow), all_tools limits first, then the rule's. Returns 0 and fills res when every budget
 * had room; otherwise reserves nothing, returns -EDQUOT and marks d denied (KIND_LIMIT) with
 * the pointer of the limit that fired and retry_after_s until its window ends. A budget that
 * cannot be kept denies too (KIND_LIMIT, d says why), with another -errno: -ENOSPC when the
 * host-wide table is full (retry_after_s until a slot's window ends), -ENOLINK when it could
 * not be opened, -EIO when the policy's Redis could not be used. When its policy says
 * "unreachable": "allow", such a call is let through instead, its Redis budgets not counted,
 * and d->note says so (for the audit line).
 * Budgets of scopes agent and global of a policy with "state" are kept in its Redis, checked
 * and taken there in one script, after the others had room (the table stays locked meanwhile).
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
/*
 * What is left of lim's budget in the current window: max - used, 0 when used >= max, and 0
 * when the budget cannot be kept (the host-wide table is full, or unusable): fail closed.
 */
uint64_t limits__left(struct limits *l, const struct limit *lim, const struct scope_keys *k);
/*
 * Drop this process's budgets whose window has ended; returns how many were dropped. (The
 * host-wide table reuses such slots by itself.)
 */
size_t limits__gc(struct limits *l);

uint64_t limits__now(struct limits *l);

/*
 * Why lim's budget, kept in Redis, cannot be used right now (the last failure of its store,
 * until an operation succeeds again); NULL when it can, or is not kept there.
 */
const char *limits__remote_error(struct limits *l, const struct limit *lim);

#endif
