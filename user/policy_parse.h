/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy_parse: what the parts of the policy parser share (policy.c, policy_conds.c,
 * policy_approval.c, policy_match.c), private to them: the parse in progress and the first error it met, JSON
 * Pointers, and the checks every part makes. Each check returns 0, or -EINVAL after the error
 * (file, JSON Pointer, what is wrong) was written: only the first error is kept.
 */
#ifndef MCPFENCE_POLICY_PARSE_H
#define MCPFENCE_POLICY_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "policy.h"

#define NAME_MAX_BYTES 256 /* tool names and counter names */
#define LIST_MAX 64	   /* conditions in one require or deny_if list */
#define APPROVAL_DEFAULT_S 120u
#define APPROVAL_MAX_S 86400u
#define APPROVERS_MAX 64 /* users, and groups, of one rule */

struct policy_ctx {
	const char *source; /* the file, for messages */
	char *err;	    /* POLICY_ERR_LEN bytes */
	bool failed;
};

int policy_ctx__fail(struct policy_ctx *c, const char *ptr, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* policy_ctx__fail() at ptr followed by a suffix ("/3"), for pointers built on the stack. */
int policy_ctx__fail_at(struct policy_ctx *c, const char *ptr, const char *suffix, const char *fmt,
			...) __attribute__((format(printf, 4, 5)));
/* JSON Pointer of key under base ('~' as "~0", '/' as "~1"); of index i. NULL on ENOMEM. */
char *policy_ctx__ptr_key(const char *base, const char *key);
char *policy_ctx__ptr_idx(const char *base, size_t i);
/* A short, printable rendering of a JSON value for messages. */
void policy_ctx__show(const json_t *v, char *buf, size_t len);
/* "an object", "a string"...: what v is, for messages. */
const char *policy_ctx__type_name(const json_t *v);
/* v is of type t ("must be what, not ..."). */
int policy_ctx__want(struct policy_ctx *c, const char *ptr, const json_t *v, json_type t,
		     const char *what);
/* Every key of obj is in allowed (NULL-terminated). */
int policy_ctx__known_keys(struct policy_ctx *c, const char *ptr, const json_t *obj,
			   const char *const *allowed);
/* A name (tool, counter, hide entry): non-empty, bounded, no control characters. */
int policy_ctx__check_name(struct policy_ctx *c, const char *ptr, const char *s, size_t len,
			   const char *what);
/* A duration ("30s", "10m", "2h", whole seconds), at most APPROVAL_MAX_S. */
int policy_ctx__parse_duration(struct policy_ctx *c, const char *ptr, const json_t *v,
			       uint32_t *out);

/* "require" or "deny_if" at ptr into *out (n conditions). */
int policy__parse_conds(struct policy_ctx *c, const char *ptr, const json_t *v, struct cond **out,
			size_t *n);
/* A rule's "approval" object at ptr, into r. */
int policy__parse_approval(struct policy_ctx *c, const char *ptr, const json_t *v, struct rule *r);

/* The policy's "match" object into m. */
int policy__parse_match(struct policy_ctx *c, const json_t *v, struct policy_match *m);
void policy__match_free(struct policy_match *m);

#endif
