// SPDX-License-Identifier: Apache-2.0
/*
 * decide: the decision for one tools/call, in the order the README gives (The policy: decision order): hide, rule lookup (or
 * default), action deny, deny_if/require, approval. Limits come after, in limits.c, because
 * they need state and a clock; everything here is a pure function of policy and call.
 *
 * Conditions fail closed: a require[] holds only when it is provably true, and a deny_if[]
 * lets a call through only when it is provably false. A value of the wrong type (a string
 * where a number is compared, a number where a regex is matched) proves neither, and neither
 * does a value that a server converting types would read as the one compared with ("1000"
 * for 1000, "true" for true, ["root"] for "root").
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <strings.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <pcre2.h>
#include "decide.h"
#include "jsonrpc.h"

/* a hostile argument cannot stall us (a few ms at worst); a long honest one still matches */
#define REGEX_MATCH_LIMIT 1000000
#define REGEX_DEPTH_LIMIT 100000

void decide__deny(struct decision *d, enum deny_kind kind, const char *pointer, const char *fmt,
		  ...)
{
	va_list ap;

	d->verdict = VERDICT_DENY;
	d->kind = kind;
	snprintf(d->pointer, sizeof(d->pointer), "%s", pointer);
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
}

/*
 * memcpy for the few bytes of a name or a pointer, in 8-byte moves (the last one overlapping):
 * with the length bounded, the compiler inlines memcpy as "rep movsq", whose start-up cost
 * measured as much as the rest of a default-deny decision (bench/decide).
 */
static inline void copy_bytes(char *dst, const char *src, size_t n)
{
	uint64_t w;
	uint32_t h;

	if (n >= 8) {
		for (size_t j = 0; j + 8 < n; j += 8) {
			memcpy(&w, src + j, 8);
			memcpy(dst + j, &w, 8);
		}
		memcpy(&w, src + n - 8, 8);
		memcpy(dst + n - 8, &w, 8);
	} else if (n >= 4) {
		memcpy(&h, src, 4);
		memcpy(dst, &h, 4);
		memcpy(&h, src + n - 4, 4);
		memcpy(dst + n - 4, &h, 4);
	} else {
		for (size_t j = 0; j < n; j++)
			dst[j] = src[j];
	}
}

/* snprintf(dst, size, "%s", src) without a format to read: the common decisions are cheap. */
static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	copy_bytes(dst, src, n);
	dst[n] = 0;
}

/*
 * decide__deny(d, kind, pointer, "tool \"%.100s\"%s", tool, rest), the same text: the reasons
 * that name the tool, written without a format.
 */
static void deny_tool(struct decision *d, enum deny_kind kind, const char *pointer,
		      const char *tool, const char *rest)
{
	size_t n = strnlen(tool, 100);

	d->verdict = VERDICT_DENY;
	d->kind = kind;
	copy_str(d->pointer, sizeof(d->pointer), pointer);
	memcpy(d->reason, "tool \"", 6);
	copy_bytes(d->reason + 6, tool, n);
	d->reason[6 + n] = '"';
	copy_str(d->reason + 7 + n, sizeof(d->reason) - 7 - n, rest);
}

/* Does obj hold a key that some server reads as key, without being it ("PATH" for "path")? */
static bool folded_twin(const json_t *obj, const char *key)
{
	size_t klen = strlen(key);
	const char *k;
	json_t *e;

	json_object_foreach((json_t *)obj, k, e)
		if (jsonrpc__key_folds_to(k, strlen(k), key, klen))
			return true;
	return false;
}

/*
 * The value at c's path in args, or NULL when absent. *unsure when an object on the way holds
 * a key that servers matching keys without regard to case read as the path's key: which value
 * the server takes is then not known.
 */
static const json_t *resolve(const struct cond *c, const json_t *args, bool *unsure)
{
	const json_t *v = args;

	*unsure = false;
	for (size_t i = 0; v && i < c->nsegs; i++) {
		if (c->segs[i].key) {
			if (!json_is_object(v))
				return NULL;
			*unsure |= folded_twin(v, c->segs[i].key);
			v = json_object_get(v, c->segs[i].key);
		} else {
			v = json_is_array(v) ? json_array_get(v, c->segs[i].index) : NULL;
		}
	}
	return v;
}

/* JSON equality where 1 and 1.0 are the same number. */
static bool same(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b)) {
		if (json_is_integer(a) && json_is_integer(b))
			return json_integer_value(a) == json_integer_value(b);
		return json_number_value(a) == json_number_value(b);
	}
	return json_equal((json_t *)a, (json_t *)b);
}

/* A string a lenient server would read as this number ("1000", " 1e3 ", "0x3e8"). */
static bool string_is_number(const json_t *str, const json_t *num)
{
	const char *s = json_string_value(str);
	char *end;
	double v;

	if (strlen(s) != json_string_length(str))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (end == s)
		return false;
	while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')
		end++;
	return !*end && !errno && v == json_number_value(num);
}

/*
 * Could a server that converts types read a and b as the same value, although they are not
 * the same JSON? "1000" and 1000, "true" and true, 1 and true, ["root"] and "root".
 */
static bool coercible(const json_t *a, const json_t *b)
{
	if (json_is_array(a) && json_array_size(a) == 1 && !json_is_array(b))
		return same(json_array_get(a, 0), b) || coercible(json_array_get(a, 0), b);
	if (json_is_array(b) && !json_is_array(a))
		return coercible(b, a);
	if (json_is_string(a) && json_is_number(b))
		return string_is_number(a, b);
	if (json_is_string(b) && json_is_number(a))
		return string_is_number(b, a);
	if (json_is_boolean(b) && !json_is_boolean(a))
		return coercible(b, a);
	if (json_is_boolean(a) && json_is_string(b))
		return !strcasecmp(json_string_value(b), json_is_true(a) ? "true" : "false");
	if (json_is_boolean(a) && json_is_number(b))
		return json_number_value(b) == (json_is_true(a) ? 1.0 : 0.0);
	return false;
}

/* Equal, not equal, or equal only to a server that converts types (cannot be judged). */
static enum cond_result equal(const json_t *v, const json_t *want)
{
	if (same(v, want))
		return COND_TRUE;
	return coercible(v, want) ? COND_UNKNOWN : COND_FALSE;
}

static enum cond_result member(const json_t *v, const json_t *list)
{
	enum cond_result res = COND_FALSE;
	size_t i;
	json_t *e;

	json_array_foreach((json_t *)list, i, e) {
		enum cond_result r = equal(v, e);

		if (r == COND_TRUE)
			return COND_TRUE;
		if (r == COND_UNKNOWN)
			res = COND_UNKNOWN;
	}
	return res;
}

static enum cond_result negate(enum cond_result r)
{
	return r == COND_UNKNOWN ? COND_UNKNOWN : r == COND_TRUE ? COND_FALSE : COND_TRUE;
}

/* -1, 0, 1; exact for two integers, IEEE otherwise. */
static int compare(const json_t *a, const json_t *b)
{
	if (json_is_integer(a) && json_is_integer(b)) {
		json_int_t x = json_integer_value(a), y = json_integer_value(b);

		return x < y ? -1 : x > y;
	}
	double x = json_number_value(a), y = json_number_value(b);

	return x < y ? -1 : x > y;
}

static enum cond_result match_regex(const struct cond *c, const json_t *v)
{
	pcre2_match_context *mctx = NULL;
	pcre2_match_data *md = NULL;
	enum cond_result res = COND_UNKNOWN;
	int rc;

	if (!json_is_string(v))
		return COND_UNKNOWN;
	md = pcre2_match_data_create_from_pattern(c->re, NULL);
	mctx = pcre2_match_context_create(NULL);
	if (!md || !mctx)
		goto out_free;
	pcre2_set_match_limit(mctx, REGEX_MATCH_LIMIT);
	pcre2_set_depth_limit(mctx, REGEX_DEPTH_LIMIT);
	rc = pcre2_match(c->re, (PCRE2_SPTR)json_string_value(v), json_string_length(v), 0, 0, md,
			 mctx);
	if (rc >= 0)
		res = COND_TRUE;
	else if (rc == PCRE2_ERROR_NOMATCH)
		res = COND_FALSE;
	/* limits hit, bad UTF-8: cannot be judged */
out_free:
	pcre2_match_context_free(mctx);
	pcre2_match_data_free(md);
	return res;
}

enum cond_result decide__cond(const struct cond *c, const json_t *args)
{
	bool unsure;
	const json_t *v = resolve(c, args, &unsure);

	if (unsure)
		return COND_UNKNOWN;
	if (c->op == OP_EXISTS)
		return (v != NULL) == json_is_true(c->value) ? COND_TRUE : COND_FALSE;
	if (!v) /* absent: equal to nothing, a member of nothing, comparable to nothing */
		return c->op == OP_NEQ || c->op == OP_NOT_IN ? COND_TRUE : COND_FALSE;
	switch (c->op) {
	case OP_EQ:
		return equal(v, c->value);
	case OP_NEQ:
		return negate(equal(v, c->value));
	case OP_IN:
		return member(v, c->value);
	case OP_NOT_IN:
		return negate(member(v, c->value));
	case OP_LT:
	case OP_LTE:
	case OP_GT:
	case OP_GTE: {
		int cmp;

		if (!json_is_number(v) || (json_is_real(v) && isnan(json_real_value(v))))
			return COND_UNKNOWN;
		cmp = compare(v, c->value);
		if (c->op == OP_LT)
			return cmp < 0 ? COND_TRUE : COND_FALSE;
		if (c->op == OP_LTE)
			return cmp <= 0 ? COND_TRUE : COND_FALSE;
		if (c->op == OP_GT)
			return cmp > 0 ? COND_TRUE : COND_FALSE;
		return cmp >= 0 ? COND_TRUE : COND_FALSE;
	}
	case OP_REGEX:
		return match_regex(c, v);
	case OP_CONTAINS:
		if (json_is_array(v))
			return member(c->value, v);
		if (json_is_string(v) && json_is_string(c->value))
			return memmem(json_string_value(v), json_string_length(v),
				      json_string_value(c->value), json_string_length(c->value)) ?
				       COND_TRUE :
				       COND_FALSE;
		return COND_UNKNOWN;
	default:
		return COND_UNKNOWN;
	}
}

/* "args.path regex \"^/home/\"", for reasons. */
static void describe(const struct cond *c, char *buf, size_t len)
{
	char *v = json_dumps(c->value, JSON_ENCODE_ANY | JSON_COMPACT);

	snprintf(buf, len, "%s %s %.60s%s", c->path, policy__op_name(c->op), v ? v : "?",
		 v && strlen(v) > 60 ? "..." : "");
	free(v);
}

static bool conds_pass(const struct rule *r, const json_t *args, struct decision *d)
{
	char what[128];

	for (size_t i = 0; i < r->ndeny_if; i++) {
		enum cond_result res = decide__cond(&r->deny_if[i], args);

		if (res == COND_FALSE)
			continue;
		describe(&r->deny_if[i], what, sizeof(what));
		if (r->reason)
			decide__deny(d, KIND_CONDITION, r->deny_if[i].ptr, "%s", r->reason);
		else
			decide__deny(d, KIND_CONDITION, r->deny_if[i].ptr, "%s: %s",
				     res == COND_TRUE ? "arguments match a deny_if check" :
							"argument cannot be checked",
				     what);
		return false;
	}
	for (size_t i = 0; i < r->nrequire; i++) {
		enum cond_result res = decide__cond(&r->require[i], args);

		if (res == COND_TRUE)
			continue;
		describe(&r->require[i], what, sizeof(what));
		if (r->reason)
			decide__deny(d, KIND_CONDITION, r->require[i].ptr, "%s", r->reason);
		else
			decide__deny(d, KIND_CONDITION, r->require[i].ptr, "%s: %s",
				     res == COND_FALSE ? "arguments fail a require check" :
							 "argument cannot be checked",
				     what);
		return false;
	}
	return true;
}

void decide__call(const struct policy *p, const char *tool, const json_t *args, struct decision *d)
{
	const struct rule *r;
	long hidden;

	/* each field, not the whole struct: clearing 500 bytes of text cost as much as a lookup */
	d->verdict = VERDICT_ALLOW;
	d->kind = KIND_NONE;
	d->rule = NULL;
	d->pointer[0] = 0;
	d->reason[0] = 0;
	d->note[0] = 0;
	d->retry_after_s = 0;
	if (p->deny_all) {
		decide__deny(d, KIND_DEFAULT, "(no policy)",
			     "no policy is loaded: every call is denied");
		return;
	}
	if (!tool || !tool[0]) {
		decide__deny(d, KIND_INVALID, "(invalid call)", "the call names no tool");
		return;
	}
	if (args && !json_is_object(args)) {
		decide__deny(d, KIND_INVALID, "(invalid call)", "the arguments are not an object");
		return;
	}
	hidden = policy__hidden(p, tool);
	if (hidden >= 0) {
		char ptr[32];

		snprintf(ptr, sizeof(ptr), "/hide/%ld", hidden);
		deny_tool(d, KIND_HIDDEN, ptr, tool, " is hidden by policy");
		return;
	}
	r = policy__lookup(p, tool);
	if (!r) {
		if (p->def == ACTION_DENY) {
			deny_tool(d, KIND_DEFAULT, "(default deny)", tool,
				  " is not allowed (default deny)");
			return;
		}
		d->verdict = VERDICT_ALLOW;
		copy_str(d->pointer, sizeof(d->pointer), "(default allow)");
		return;
	}
	d->rule = r;
	if (r->action == ACTION_DENY) {
		if (r->reason)
			decide__deny(d, KIND_RULE, r->action_ptr, "%s", r->reason);
		else
			deny_tool(d, KIND_RULE, r->action_ptr, tool, " is denied");
		return;
	}
	if (!conds_pass(r, args, d))
		return;
	if (r->action == ACTION_APPROVE) {
		d->verdict = VERDICT_APPROVE;
		copy_str(d->pointer, sizeof(d->pointer), r->action_ptr);
		return;
	}
	d->verdict = VERDICT_ALLOW;
	copy_str(d->pointer, sizeof(d->pointer), r->ptr);
}

const char *decide__kind_name(enum deny_kind k)
{
	static const char *const names[] = { "none",  "hidden",	   "default",
					     "rule",  "condition", "approval",
					     "limit", "invalid",   "unparsed" };

	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

const char *decide__verdict_name(enum verdict v)
{
	return v == VERDICT_DENY ? "deny" : v == VERDICT_APPROVE ? "approve" : "allow";
}
