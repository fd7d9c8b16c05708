/* SPDX-License-Identifier: Apache-2.0 */
/* decide: the pure decision for one tools/call (the decision order of the README: The policy). */
#ifndef MCPFENCE_DECIDE_H
#define MCPFENCE_DECIDE_H

#include <stdint.h>
#include <jansson.h>
#include "policy.h"

enum verdict {
	VERDICT_ALLOW = 0, /* allowed by rules; limits are still to be reserved */
	VERDICT_DENY = 1,
	VERDICT_APPROVE = 2, /* a human must approve first, then limits are reserved */
};

enum deny_kind {
	KIND_NONE = 0,
	KIND_HIDDEN = 1,    /* hide[] */
	KIND_DEFAULT = 2,   /* no rule matched and default is deny */
	KIND_RULE = 3,	    /* action deny */
	KIND_CONDITION = 4, /* a require[] that does not hold, or a deny_if[] that does */
	KIND_APPROVAL = 5,  /* a human said no, or nobody answered in time */
	KIND_LIMIT = 6,	    /* a budget is spent */
	KIND_INVALID = 7,   /* the call itself is malformed (no name, arguments not an object) */
	KIND_UNPARSED = 8,  /* kernel plane: the bytes could not be read with certainty */
};

#define DECIDE_REASON_LEN 256
#define DECIDE_PTR_LEN 256

struct decision {
	enum verdict verdict;
	enum deny_kind kind;
	const struct rule *rule;      /* the matching rule, NULL for default/hidden */
	char pointer[DECIDE_PTR_LEN]; /* JSON Pointer of the rule that fired, or "(default deny)" */
	char reason[DECIDE_REASON_LEN]; /* what the agent reads after "denied by policy: " */
	uint64_t retry_after_s;		/* KIND_LIMIT: seconds until the window that fired ends */
	char note[DECIDE_REASON_LEN]; /* an allowed call's budgets that were not counted, and why */
};

/*
 * Hide, rule lookup (or default), action deny, deny_if/require, approval. Pure: no clock, no
 * state. Sets every field of d; the bytes after the end of pointer and reason are left as
 * they were. args may be NULL (treated as an empty object); anything else than an object is
 * KIND_INVALID. Limits are the caller's next step (limits__reserve).
 */
void decide__call(const struct policy *p, const char *tool, const json_t *args, struct decision *d);

/* Condition result: holds, does not hold, or cannot be judged (type mismatch, regex limit). */
enum cond_result {
	COND_FALSE = 0,
	COND_TRUE = 1,
	COND_UNKNOWN = 2,
};
enum cond_result decide__cond(const struct cond *c, const json_t *args);

const char *decide__kind_name(enum deny_kind k);
const char *decide__verdict_name(enum verdict v);
/* Mark d as denied with kind, pointer and a reason (printf-style). */
void decide__deny(struct decision *d, enum deny_kind kind, const char *pointer, const char *fmt,
		  ...) __attribute__((format(printf, 4, 5)));

#endif
