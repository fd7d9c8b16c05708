// SPDX-License-Identifier: Apache-2.0
/*
 * policy_conds: the argument conditions of a rule ("require", "deny_if": {path, op, value}):
 * the path compiled into steps, the value checked against its op, regexes compiled with PCRE2
 * in UTF-8 mode once, at load.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcre2.h>
#include "policy.h"
#include "policy_parse.h"

static const char *const op_names[] = { "eq", "neq", "in",    "not_in",	  "lt",	   "lte",
					"gt", "gte", "regex", "contains", "exists" };

/* "args.a.b[0]" -> segments a, b, [0]. The leading "args" is the call's arguments object. */
static int parse_path(struct policy_ctx *c, const char *ptr, const char *path, struct cond *cd)
{
	const char *p = path + 4;
	size_t cap = 4;

	if (strncmp(path, "args", 4) || (p[0] && p[0] != '.' && p[0] != '['))
		return policy_ctx__fail(
			c, ptr, "\"%s\" is not an argument path (\"args.name\", \"args.a.b[0]\")",
			path);
	cd->segs = calloc(cap, sizeof(*cd->segs));
	if (!cd->segs)
		return -ENOMEM;
	while (*p) {
		struct path_seg seg = { 0 };

		if (*p == '.') {
			size_t len = strcspn(p + 1, ".[]");

			if (len == 0)
				return policy_ctx__fail(c, ptr, "\"%s\": empty key at byte %zu",
							path, (size_t)(p - path) + 1);
			seg.key = strndup(p + 1, len);
			if (!seg.key)
				return -ENOMEM;
			p += 1 + len;
		} else if (*p == '[') {
			char *end;
			unsigned long idx;

			if (p[1] < '0' || p[1] > '9')
				return policy_ctx__fail(
					c, ptr, "\"%s\": expected an index after '[' at byte %zu",
					path, (size_t)(p - path) + 1);
			errno = 0;
			idx = strtoul(p + 1, &end, 10);
			if (errno || *end != ']' || idx > 1000000)
				return policy_ctx__fail(c, ptr, "\"%s\": bad index at byte %zu",
							path, (size_t)(p - path) + 1);
			seg.index = idx;
			p = end + 1;
		} else {
			return policy_ctx__fail(c, ptr, "\"%s\": unexpected '%c' at byte %zu", path,
						*p, (size_t)(p - path));
		}
		if (cd->nsegs == cap) {
			struct path_seg *n = reallocarray(cd->segs, cap * 2, sizeof(*n));

			if (!n) {
				free(seg.key);
				return -ENOMEM;
			}
			cd->segs = n;
			cap *= 2;
		}
		cd->segs[cd->nsegs++] = seg;
		if (cd->nsegs > 32)
			return policy_ctx__fail(c, ptr, "\"%s\" is deeper than 32 levels", path);
	}
	return 0;
}
static int compile_regex(struct policy_ctx *c, const char *ptr, struct cond *cd)
{
	int errcode;
	PCRE2_SIZE off;
	pcre2_code *re;

	re = pcre2_compile((PCRE2_SPTR)json_string_value(cd->value), json_string_length(cd->value),
			   PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C, &errcode,
			   &off, NULL);
	if (!re) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(errcode, msg, sizeof(msg));
		return policy_ctx__fail(c, ptr, "regex \"%s\" does not compile at offset %zu: %s",
					json_string_value(cd->value), (size_t)off, (char *)msg);
	}
	cd->re = re;
	return 0;
}
static int parse_cond(struct policy_ctx *c, const char *ptr, const json_t *v, struct cond *cd)
{
	static const char *const keys[] = { "path", "op", "value", NULL };
	json_t *path, *op, *value;
	char *kp = NULL;
	size_t i;
	int err;

	if ((err = policy_ctx__want(c, ptr, v, JSON_OBJECT, "an object {path, op, value}")) ||
	    (err = policy_ctx__known_keys(c, ptr, v, keys)))
		return err;
	path = json_object_get(v, "path");
	op = json_object_get(v, "op");
	value = json_object_get(v, "value");
	if (!path || !op || !value)
		return policy_ctx__fail(c, ptr, "\"path\", \"op\" and \"value\" are all required");
	kp = policy_ctx__ptr_key(ptr, "path");
	if ((err = policy_ctx__want(c, kp, path, JSON_STRING, "a string")) ||
	    (err = parse_path(c, kp, json_string_value(path), cd)))
		goto out;
	free(kp);
	kp = policy_ctx__ptr_key(ptr, "op");
	if ((err = policy_ctx__want(c, kp, op, JSON_STRING, "a string")))
		goto out;
	for (i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		if (!strcmp(json_string_value(op), op_names[i]))
			break;
	if (i == sizeof(op_names) / sizeof(op_names[0])) {
		err = policy_ctx__fail(
			c, kp,
			"\"%s\" is not an operator (eq neq in not_in lt lte gt gte regex contains exists)",
			json_string_value(op));
		goto out;
	}
	cd->op = (enum cond_op)i;
	cd->value = json_incref(value);
	free(kp);
	kp = policy_ctx__ptr_key(ptr, "value");
	switch (cd->op) {
	case OP_IN:
	case OP_NOT_IN:
		err = policy_ctx__want(c, kp, value, JSON_ARRAY, "an array (for in/not_in)");
		break;
	case OP_LT:
	case OP_LTE:
	case OP_GT:
	case OP_GTE:
		if (!json_is_number(value))
			err = policy_ctx__fail(c, kp, "must be a number (for %s), not %s",
					       op_names[cd->op], policy_ctx__type_name(value));
		break;
	case OP_REGEX:
		err = policy_ctx__want(c, kp, value, JSON_STRING, "a string (for regex)");
		if (!err)
			err = compile_regex(c, kp, cd);
		break;
	case OP_EXISTS:
		if (!json_is_boolean(value))
			err = policy_ctx__fail(c, kp, "must be true or false (for exists), not %s",
					       policy_ctx__type_name(value));
		break;
	default:
		break;
	}
	if (err)
		goto out;
	cd->path = strdup(json_string_value(path));
	cd->ptr = strdup(ptr);
	err = cd->path && cd->ptr ? 0 : -ENOMEM;
out:
	free(kp);
	return err;
}
int policy__parse_conds(struct policy_ctx *c, const char *ptr, const json_t *v, struct cond **out,
			size_t *n)
{
	size_t i;
	json_t *e;
	int err;

	if ((err = policy_ctx__want(c, ptr, v, JSON_ARRAY, "an array")))
		return err;
	if (json_array_size(v) > LIST_MAX)
		return policy_ctx__fail(c, ptr, "%zu conditions; at most %d", json_array_size(v),
					LIST_MAX);
	*out = calloc(json_array_size(v) + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	json_array_foreach((json_t *)v, i, e) {
		char *ip = policy_ctx__ptr_idx(ptr, i);

		err = ip ? parse_cond(c, ip, e, &(*out)[i]) : -ENOMEM;
		free(ip);
		*n = i + 1;
		if (err)
			return err;
	}
	return 0;
}

const char *policy__op_name(enum cond_op op)
{
	return (unsigned)op < sizeof(op_names) / sizeof(op_names[0]) ? op_names[op] : "?";
}
