/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reference the MCP scanner is judged by: jansson, decoding like the real server's JSON.parse
 * (duplicate keys allowed, the last one wins; escapes decoded everywhere), and the userspace build
 * of the scanner itself (bpf/mcp_scan.bpf.h with its shims). Shared by tests/bpf/test_scan.c and
 * the fuzzer (tests/fuzz/fuzz_scan.c). Header-only: both are single-file programs.
 */
#ifndef MCPFENCE_SCAN_REF_H
#define MCPFENCE_SCAN_REF_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>
#include "mcp_scan.bpf.h"

#define SCAN_REF_FLAGS (JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL)

static inline const char *scan_ref__status_name(__u32 status)
{
	switch (status) {
	case MCPF_SCAN_OK:
		return "OK";
	case MCPF_SCAN_UNPARSED:
		return "UNPARSED";
	case MCPF_SCAN_INCOMPLETE:
		return "INCOMPLETE";
	}
	return "?";
}

static inline int scan_ref__fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -1;
}

/* jansson refuses some values JSON.parse takes (numbers past double range, NUL in keys). */
static inline int scan_ref__jansson_only_error(const json_error_t *err)
{
	return strstr(err->text, "overflow") || strstr(err->text, "too big") ||
	       strstr(err->text, "NUL byte in object key");
}

static inline int scan_ref__same_string(const json_t *s, const char *buf, size_t len)
{
	return json_is_string(s) && json_string_length(s) == len &&
	       !memcmp(json_string_value(s), buf, len);
}

/* One message of the value against the scanner's reading of it. */
static inline int scan_ref__check_call(const json_t *msg, const struct mcpf_call *call,
				       const char *data, size_t len, unsigned int i, char *why,
				       size_t whylen)
{
	const json_t *method = json_object_get(msg, "method");
	const json_t *params = json_object_get(msg, "params");
	const json_t *id = json_object_get(msg, "id");
	const json_t *name = json_is_object(params) ? json_object_get(params, "name") : NULL;
	int has_method = !!(call->flags & MCPF_CALL_HAS_METHOD);
	json_t *raw = NULL;
	json_error_t err;
	int same;

	if (!json_is_object(msg))
		return scan_ref__fail(why, whylen, "call %u: jansson sees no object", i);
	if (has_method != (method != NULL))
		return scan_ref__fail(why, whylen, "call %u: method presence differs", i);
	if (method) {
		if (!scan_ref__same_string(method, call->method, call->method_len))
			return scan_ref__fail(why, whylen,
					      "call %u: scanner method \"%.*s\", jansson %s", i,
					      call->method_len, call->method,
					      json_is_string(method) ? json_string_value(method) :
								       "(not a string)");
		if (call->method_off + call->method_span > len || call->method_span < 2 ||
		    data[call->method_off] != '"' ||
		    data[call->method_off + call->method_span - 1] != '"')
			return scan_ref__fail(why, whylen, "call %u: method_off/span miss", i);
		raw = json_loadb(data + call->method_off, call->method_span, JSON_DECODE_ANY, &err);
		same = json_equal(raw, (json_t *)method);
		json_decref(raw);
		if (!same)
			return scan_ref__fail(why, whylen, "call %u: method span differs", i);
	}
	if (call->flags & MCPF_CALL_HAS_NAME) {
		if (!scan_ref__same_string(name, call->name, call->name_len))
			return scan_ref__fail(why, whylen,
					      "call %u: scanner name \"%.*s\", jansson %s", i,
					      call->name_len, call->name,
					      json_is_string(name) ? json_string_value(name) :
								     "(none or not a string)");
	} else if (json_is_string(method) && !strcmp(json_string_value(method), "tools/call")) {
		return scan_ref__fail(why, whylen, "call %u: tools/call read without a name", i);
	}
	if (!!(call->flags & MCPF_CALL_HAS_ID) != (id != NULL))
		return scan_ref__fail(why, whylen, "call %u: id presence differs", i);
	if (id) {
		raw = json_loadb(call->id, call->id_len, JSON_DECODE_ANY | SCAN_REF_FLAGS, &err);
		same = raw && json_equal(raw, (json_t *)id) &&
		       !!(call->flags & MCPF_CALL_ID_STRING) == json_is_string(id);
		json_decref(raw);
		if (!same)
			return scan_ref__fail(why, whylen, "call %u: raw id \"%.*s\" differs", i,
					      call->id_len, call->id);
	}
	return 0;
}

/*
 * 0 when the scanner's result is consistent with jansson on the same bytes; -1 with the reason
 * in why. OK must mean: jansson reads the same value (same end) with the same methods, names and
 * ids. INCOMPLETE must mean: jansson does not read a whole value either. UNPARSED is always
 * consistent (it is denied).
 */
static inline int scan_ref__check(const char *data, size_t len, const struct mcpf_scan_result *r,
				  char *why, size_t whylen)
{
	size_t start = 0, i, n;
	json_error_t err;
	json_t *root;
	int rc = 0, trailing = 0, newline = 0;

	if (len > MCPF_SCAN_BUF_MAX)
		len = MCPF_SCAN_BUF_MAX;
	if (r->status == MCPF_SCAN_UNPARSED)
		return 0;
	root = json_loadb(data, len, SCAN_REF_FLAGS, &err);
	if (r->status == MCPF_SCAN_INCOMPLETE) {
		if (root)
			rc = scan_ref__fail(why, whylen, "INCOMPLETE, jansson read %d bytes",
					    err.position);
		goto out;
	}
	if (r->status != MCPF_SCAN_OK) {
		rc = scan_ref__fail(why, whylen, "status %u", r->status);
		goto out;
	}
	if (!root) {
		if (!scan_ref__jansson_only_error(&err))
			rc = scan_ref__fail(why, whylen, "scanner OK, jansson: %s at %d", err.text,
					    err.position);
		goto out;
	}
	if ((size_t)err.position != r->end) {
		rc = scan_ref__fail(why, whylen, "end %u, jansson %d", r->end, err.position);
		goto out;
	}
	while (start < len && strchr(" \t\r\n", data[start]) && data[start])
		start++;
	for (i = r->end; i < len; i++)
		if (!strchr(" \t\r\n", data[i]) || !data[i])
			trailing = 1;
	/* MCPF_SCAN_NEWLINE: a raw \n or \r inside the value (a line end to some stdio reader) */
	newline = memchr(data + start, '\n', r->end - start) != NULL ||
		  memchr(data + start, '\r', r->end - start) != NULL;
	if (trailing != !!(r->flags & MCPF_SCAN_TRAILING) ||
	    newline != !!(r->flags & MCPF_SCAN_NEWLINE)) {
		rc = scan_ref__fail(why, whylen, "flags %#x, trailing %d newline %d", r->flags,
				    trailing, newline);
		goto out;
	}
	if (json_is_array(root)) {
		n = json_array_size(root);
		if (!(r->flags & MCPF_SCAN_BATCH) || n != r->ncalls) {
			rc = scan_ref__fail(why, whylen, "batch of %zu, scanner %u calls", n,
					    r->ncalls);
			goto out;
		}
		for (i = 0; i < n && !rc; i++)
			rc = scan_ref__check_call(json_array_get(root, i), &r->calls[i], data, len,
						  i, why, whylen);
	} else if ((r->flags & MCPF_SCAN_BATCH) || r->ncalls != 1) {
		rc = scan_ref__fail(why, whylen, "one object, scanner %u calls", r->ncalls);
	} else {
		rc = scan_ref__check_call(root, &r->calls[0], data, len, 0, why, whylen);
	}
out:
	json_decref(root);
	return rc;
}

static inline size_t scan_ref__depth(const json_t *v)
{
	size_t d = 0, sub, i;
	const char *key;
	json_t *e;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, e)
			if ((sub = scan_ref__depth(e)) > d)
				d = sub;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			if ((sub = scan_ref__depth(e)) > d)
				d = sub;
	} else {
		return 0;
	}
	return d + 1;
}

/*
 * Does key fold to target (ASCII letters lowered; U+017F to s, U+212A to k, U+0130 and U+0131
 * to i) without being it? An independent spelling of the scanner's rule, for the reference.
 */
static inline int scan_ref__folds_to(const char *key, const char *target)
{
	const unsigned char *k = (const unsigned char *)key;
	size_t t = 0;

	if (!strcmp(key, target))
		return 0;
	while (*k && target[t]) {
		int c;

		if (k[0] == 0xc5 && k[1] == 0xbf) {
			c = 's';
			k += 2;
		} else if (k[0] == 0xc4 && (k[1] == 0xb0 || k[1] == 0xb1)) {
			c = 'i';
			k += 2;
		} else if (k[0] == 0xe2 && k[1] == 0x84 && k[2] == 0xaa) {
			c = 'k';
			k += 3;
		} else if (*k >= 'A' && *k <= 'Z') {
			c = *k++ + 32;
		} else {
			c = *k++;
		}
		if (c != target[t++])
			return 0;
	}
	return !*k && !target[t];
}

/* A key of obj that folds to one of keys (NULL-terminated) without being it. */
static inline int scan_ref__has_folded(const json_t *obj, const char *const *keys)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
		for (size_t i = 0; keys[i]; i++)
			if (scan_ref__folds_to(key, keys[i]))
				return 1;
	return 0;
}

static inline int scan_ref__clean_msg(const json_t *msg, int backslash)
{
	static const char *const mkeys[] = { "jsonrpc", "id",	 "method", "params",
					     "result",	"error", NULL };
	static const char *const pkeys[] = { "name", "arguments", NULL };
	const json_t *method = json_object_get(msg, "method"), *id = json_object_get(msg, "id");
	const json_t *params = json_object_get(msg, "params");
	const json_t *name = json_is_object(params) ? json_object_get(params, "name") : NULL;
	int tools_call = json_is_string(method) && !strcmp(json_string_value(method), "tools/call");

	if (!json_is_object(msg))
		return 0;
	if (scan_ref__has_folded(msg, mkeys) ||
	    (json_is_object(params) && scan_ref__has_folded(params, pkeys)))
		return 0;
	if (method && (json_object_get(msg, "result") || json_object_get(msg, "error")))
		return 0;
	/* a tools/call id must come back as it went: a plain string (no escape anywhere) */
	if (tools_call && id &&
	    (!json_is_string(id) || backslash ||
	     strspn(json_string_value(id), "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					   "0123456789_-") != json_string_length(id)))
		return 0;
	if (method && (!json_is_string(method) || json_string_length(method) >= MCPF_METHOD_MAX ||
		       memchr(json_string_value(method), 0, json_string_length(method))))
		return 0;
	if (json_is_string(method) && !strcmp(json_string_value(method), "tools/call") &&
	    (!json_is_string(name) || json_string_length(name) >= MCPF_NAME_MAX ||
	     memchr(json_string_value(name), 0, json_string_length(name))))
		return 0;
	/* the raw id must fit MCPF_ID_MAX: only ids whose every spelling fits */
	if (id && !json_is_null(id) && !json_is_boolean(id) &&
	    !(json_is_string(id) && json_string_length(id) <= 3))
		return 0;
	return 1;
}

/*
 * 1 when the scanner must read the bytes (OK): jansson reads them with no duplicate key anywhere,
 * and nothing in them passes a bound of the scanner. The other side of scan_ref__check().
 */
static inline int scan_ref__must_read(const char *data, size_t len)
{
	json_error_t err;
	json_t *root;
	size_t i;
	int clean, backslash;

	/* jansson 2.14 skips a raw NUL after a number or literal (JSON.parse does not) */
	if (len > MCPF_SCAN_BUF_MAX || memchr(data, 0, len))
		return 0;
	root = json_loadb(data, len, SCAN_REF_FLAGS | JSON_REJECT_DUPLICATES, &err);
	if (!root)
		return 0;
	clean = scan_ref__depth(root) <= MCPF_SCAN_MAX_DEPTH;
	backslash = memchr(data, '\\', len) != NULL;
	if (json_is_array(root)) {
		clean &= json_array_size(root) <= MCPF_SCAN_MAX_CALLS;
		for (i = 0; i < json_array_size(root) && clean; i++)
			clean = scan_ref__clean_msg(json_array_get(root, i), backslash);
	} else {
		clean &= scan_ref__clean_msg(root, backslash);
	}
	json_decref(root);
	return clean;
}

#endif
