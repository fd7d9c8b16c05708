/* SPDX-License-Identifier: Apache-2.0 */
/*
 * head_ref: a plain, byte-at-a-time reading of an HTTP/1.1 request head with the same strict
 * rules as bpf/http_head.bpf.h, to hold the BPF parser (which reads 8 bytes a step) against:
 * tests/unit/test_http_head.c and tests/fuzz/fuzz_head.c compare the two on every input.
 */
#ifndef MCPFENCE_HEAD_REF_H
#define MCPFENCE_HEAD_REF_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include "http_head.bpf.h"

struct head_ref {
	bool error;
	uint32_t end; /* past the blank line; 0: not whole */
	uint64_t cl;
	uint32_t seen;
	char method[MCPF_METHOD_MAX];
	char name[MCPF_NAME_MAX];
	char session[MCPF_TCP_SESSION_MAX];
	char ctype[HDR_CTYPE_MAX]; /* lowered */
	uint32_t method_len, name_len, session_len, ctype_len;
};

static inline bool head_ref_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static inline int head_ref_id(const char *name, size_t n)
{
	static const char *const names[] = {
		"",	      "content-length", "transfer-encoding", "content-encoding",
		"mcp-method", "mcp-name",	"mcp-session-id",    "content-type"
	};

	for (int i = 1; i < 8; i++)
		if (strlen(names[i]) == n && !strncmp(names[i], name, n))
			return i;
	return HDR_OTHER;
}

/*
 * Keep a value of n bytes, t without trailing whitespace, in dst of max bytes (NUL included); a
 * longer one: its first max - 1 bytes and its whole length n.
 */
static inline void head_ref_keep(char *dst, uint32_t *len, size_t max, const char *v, size_t n,
				 size_t t)
{
	if (n >= max) {
		memcpy(dst, v, max - 1);
		*len = n;
		return;
	}
	memcpy(dst, v, t);
	*len = t;
}

/* A value's bytes are done: trailing whitespace is not part of it. */
static inline void head_ref_value(struct head_ref *r, int id, const char *v, size_t n)
{
	size_t t = n, cut = 0;

	while (t > 0 && cut < 4 && (v[t - 1] == ' ' || v[t - 1] == '\t')) {
		t--;
		cut++;
	}
	switch (id) {
	case HDR_CONTENT_LENGTH: {
		size_t i = 0;

		if (!n) {
			r->error = true;
			return;
		}
		for (; i < n && v[i] >= '0' && v[i] <= '9'; i++) {
			r->cl = r->cl * 10 + (v[i] - '0');
			if (r->cl > 0x7fffffff) {
				r->error = true;
				return;
			}
		}
		for (; i < n; i++)
			if (v[i] != ' ' && v[i] != '\t') {
				r->error = true;
				return;
			}
		break;
	}
	case HDR_MCP_METHOD:
		head_ref_keep(r->method, &r->method_len, MCPF_METHOD_MAX, v, n, t);
		break;
	case HDR_MCP_NAME:
		head_ref_keep(r->name, &r->name_len, MCPF_NAME_MAX, v, n, t);
		break;
	case HDR_MCP_SESSION:
		r->session_len = n < MCPF_TCP_SESSION_MAX - 1 ? n : MCPF_TCP_SESSION_MAX - 1;
		memcpy(r->session, v, r->session_len);
		break;
	case HDR_CONTENT_TYPE:
		if (n >= HDR_CTYPE_MAX) {
			r->ctype_len = HDR_CTYPE_MAX;
			break;
		}
		for (size_t k = 0; k < t; k++)
			r->ctype[k] = v[k] >= 'A' && v[k] <= 'Z' ? v[k] + 32 : v[k];
		r->ctype_len = t;
		break;
	}
}

/* What the body's Content-Encoding and Content-Type allow: the spellings the SDKs send. */
static inline uint32_t head_ref_body_why(const struct head_ref *r)
{
	static const char *const ok[] = {
		"application/json",
		"application/json;charset=utf-8",
		"application/json; charset=utf-8",
		"application/json;charset=\"utf-8\"",
		"application/json; charset=\"utf-8\"",
	};

	if (r->seen & (1u << HDR_CONTENT_ENCODING))
		return MCPF_WHY_ENCODING;
	if (!(r->seen & (1u << HDR_CONTENT_TYPE)))
		return MCPF_WHY_NONE;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (r->ctype_len == strlen(ok[i]) && !memcmp(r->ctype, ok[i], r->ctype_len))
			return MCPF_WHY_NONE;
	if (r->ctype_len < HDR_CTYPE_MAX && r->ctype_len > 16 &&
	    !memcmp(r->ctype, "application/json", 16) &&
	    (!strncmp(r->ctype + 16, ";charset=", 9) || !strncmp(r->ctype + 16, "; charset=", 10)))
		return MCPF_WHY_CHARSET;
	return MCPF_WHY_MEDIA_TYPE;
}

/* Read the head in data[0..n): line by line, byte by byte. */
static inline void head_ref_parse(const unsigned char *d, size_t n, struct head_ref *r)
{
	size_t i = 0, ls;

	memset(r, 0, sizeof(*r));
	if (n > MCPF_TCP_HDR_MAX)
		n = MCPF_TCP_HDR_MAX;
	/* the request line */
	if (n && !(d[0] >= 'A' && d[0] <= 'Z')) {
		r->error = true;
		return;
	}
	for (; i < n && d[i] != '\r'; i++)
		if (d[i] < 0x20 || d[i] == 0x7f) {
			r->error = true;
			return;
		}
	for (;;) {
		/* at a CR ending a line, or at the end */
		if (i >= n || i + 1 >= n)
			return;
		if (d[i + 1] != '\n') {
			r->error = true;
			return;
		}
		i += 2;
		if (i >= n)
			return;
		if (d[i] == '\r') {
			if (i + 1 >= n)
				return;
			if (d[i + 1] != '\n') {
				r->error = true;
				return;
			}
			r->end = i + 2;
			return;
		}
		/* a header line: name */
		ls = i;
		for (; i < n && d[i] != ':'; i++)
			if (!head_ref_tchar(d[i])) {
				r->error = true;
				return;
			}
		if (i >= n)
			return;
		{
			char lower[24];
			size_t nl = i - ls, vs;
			int id = HDR_OTHER;

			if (!nl) {
				r->error = true;
				return;
			}
			if (nl <= 24) {
				for (size_t k = 0; k < nl; k++)
					lower[k] = d[ls + k] >= 'A' && d[ls + k] <= 'Z' ?
							   d[ls + k] + 32 :
							   d[ls + k];
				id = head_ref_id(lower, nl);
			}
			if (id != HDR_OTHER && (r->seen & (1u << id))) {
				r->error = true;
				return;
			}
			r->seen |= 1u << id;
			i++;
			while (i < n && (d[i] == ' ' || d[i] == '\t'))
				i++;
			vs = i;
			for (; i < n && d[i] != '\r'; i++)
				if ((d[i] < 0x20 && d[i] != '\t') || d[i] == 0x7f) {
					r->error = true;
					return;
				}
			if (i + 1 >= n) {
				/* cut short (at most its CR here): only what is already wrong counts */
				if (id == HDR_CONTENT_LENGTH) {
					struct head_ref t = *r;

					head_ref_value(&t, id, (const char *)d + vs, i - vs);
					if (i > vs)
						r->error = t.error;
				}
				return;
			}
			head_ref_value(r, id, (const char *)d + vs, i - vs);
			if (r->error)
				return;
		}
	}
}

/* Do the BPF parser's results h (on the head in buf) agree with the reference's r? */
static inline bool head_ref_agrees(const struct http_head *h, const struct mcpf_scan_buf *buf,
				   const struct head_ref *r)
{
	if (!!h->hc.error != r->error)
		return false;
	if (r->error)
		return true;
	if (h->hc.end != r->end)
		return false;
	return !r->end ||
	       (h->hc.cl == r->cl && h->hc.seen == r->seen && h->h_method_len == r->method_len &&
		h->h_name_len == r->name_len && h->h_session_len == r->session_len &&
		!memcmp(h->h_method, r->method, sizeof(r->method)) &&
		!memcmp(h->h_name, r->name, sizeof(r->name)) &&
		!memcmp(h->h_session, r->session, sizeof(r->session)) &&
		http_head_body_why(h, buf) == head_ref_body_why(r));
}

#endif
