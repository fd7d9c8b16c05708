/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Temporary stand-in for mcp_scan until bpf/mcp_scan.bpf.h has its tokenizer: one top-level
 * object, no escapes anywhere, no batches, duplicate keys refused. Everything else UNPARSED.
 */
#ifndef MCPFENCE_TCP_TMP_SCAN_H
#define MCPFENCE_TCP_TMP_SCAN_H

#include "mcpfence.h"

enum tmp_key { TK_NONE = 0, TK_METHOD = 1, TK_ID = 2, TK_PARAMS = 3, TK_NAME = 4 };

struct tmp_scan {
	__u32 len, depth, in_str, str_start, expect_key, key, value_key, in_params, params_depth;
	__u32 id_start, in_id, seen, error, done, top_started;
	__u64 objmask;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tmp_scan);
} tmp_scan_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mcpf_scan_result);
} tmp_scan_out_dummy SEC(".maps");

static __always_inline struct tmp_scan *tmp_st(void)
{
	__u32 z = 0;

	return bpf_map_lookup_elem(&tmp_scan_state, &z);
}

/* the scan buffer and result of the caller, found again from inside the callback */
static __always_inline struct mcpf_scan_buf *tmp_buf(void);
static __always_inline struct mcpf_scan_result *tmp_out(void);

static __always_inline void tmp_copy(char *dst, __u32 max, struct mcpf_scan_buf *b, __u32 off,
				     __u32 n)
{
	for (__u32 i = 0; i < 128; i++) {
		if (i >= n || i >= max - 1)
			break;
		dst[i & 127 & (max - 1)] = b->data[(off + i) & 0xffff];
	}
}

static long tmp_step(__u64 i, void *unused)
{
	struct mcpf_scan_buf *b = tmp_buf();
	struct mcpf_scan_result *o = tmp_out();
	struct tmp_scan *s = tmp_st();
	char ch;

	if (!b || !o || !s)
		return 1;
	if (i >= s->len) {
		return 1;
	}
	ch = b->data[i & 0xffff];
	if (s->in_str) {
		if (ch == '\\' || (__u8)ch < 0x20) {
			s->error = 1;
			return 1;
		}
		if (ch != '"')
			return 0;
		s->in_str = 0;
		{
			__u32 st = s->str_start, n = (__u32)i - st - 1;

			if (s->expect_key) {
				__u32 k = TK_NONE;

				if (s->depth == 1 && n == 6 && b->data[(st + 1) & 0xffff] == 'm' &&
				    b->data[(st + 2) & 0xffff] == 'e' && b->data[(st + 6) & 0xffff] == 'd' &&
				    b->data[(st + 3) & 0xffff] == 't' && b->data[(st + 4) & 0xffff] == 'h' &&
				    b->data[(st + 5) & 0xffff] == 'o')
					k = TK_METHOD;
				else if (s->depth == 1 && n == 2 && b->data[(st + 1) & 0xffff] == 'i' &&
					 b->data[(st + 2) & 0xffff] == 'd')
					k = TK_ID;
				else if (s->depth == 1 && n == 6 && b->data[(st + 1) & 0xffff] == 'p' &&
					 b->data[(st + 2) & 0xffff] == 'a' &&
					 b->data[(st + 3) & 0xffff] == 'r' &&
					 b->data[(st + 4) & 0xffff] == 'a' &&
					 b->data[(st + 5) & 0xffff] == 'm' &&
					 b->data[(st + 6) & 0xffff] == 's')
					k = TK_PARAMS;
				else if (s->in_params && s->depth == 2 && n == 4 &&
					 b->data[(st + 1) & 0xffff] == 'n' &&
					 b->data[(st + 2) & 0xffff] == 'a' &&
					 b->data[(st + 3) & 0xffff] == 'm' &&
					 b->data[(st + 4) & 0xffff] == 'e')
					k = TK_NAME;
				if (k && (s->seen & (1u << k))) {
					s->error = 1;
					return 1;
				}
				s->seen |= 1u << k;
				s->key = k;
				s->expect_key = 0;
				return 0;
			}
			if (s->value_key == TK_METHOD) {
				if (n >= MCPF_METHOD_MAX) {
					s->error = 1;
					return 1;
				}
				o->calls[0].method_off = st;
				o->calls[0].method_span = n + 2;
				o->calls[0].method_len = n;
				o->calls[0].flags |= MCPF_CALL_HAS_METHOD;
				tmp_copy(o->calls[0].method, MCPF_METHOD_MAX, b, st + 1, n);
			} else if (s->value_key == TK_NAME) {
				if (n >= MCPF_NAME_MAX) {
					s->error = 1;
					return 1;
				}
				o->calls[0].name_len = n;
				o->calls[0].flags |= MCPF_CALL_HAS_NAME;
				tmp_copy(o->calls[0].name, MCPF_NAME_MAX, b, st + 1, n);
			} else if (s->value_key == TK_ID) {
				if (n + 2 >= MCPF_ID_MAX) {
					s->error = 1;
					return 1;
				}
				o->calls[0].id_len = n + 2;
				o->calls[0].flags |= MCPF_CALL_HAS_ID | MCPF_CALL_ID_STRING;
				tmp_copy(o->calls[0].id, MCPF_ID_MAX, b, st, n + 2);
			}
			s->value_key = TK_NONE;
		}
		return 0;
	}
	if (s->in_id && !((ch >= '0' && ch <= '9') || ch == '-')) {
		__u32 n = (__u32)i - s->id_start;

		s->in_id = 0;
		if (!n || n >= MCPF_ID_MAX) {
			s->error = 1;
			return 1;
		}
		o->calls[0].id_len = n;
		o->calls[0].flags |= MCPF_CALL_HAS_ID;
		tmp_copy(o->calls[0].id, MCPF_ID_MAX, b, s->id_start, n);
	}
	if (s->done) {
		if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n')
			o->flags |= MCPF_SCAN_TRAILING;
		return 0;
	}
	switch (ch) {
	case ' ': case '\t': case '\r': case '\n':
		return 0;
	case '"':
		s->in_str = 1;
		s->str_start = i;
		return 0;
	case '{':
		if (s->depth == 0 && s->top_started) {
			s->error = 1;
			return 1;
		}
		s->top_started = 1;
		if (s->depth == 1 && s->value_key == TK_PARAMS) {
			s->in_params = 1;
		}
		s->value_key = TK_NONE;
		s->depth++;
		if (s->depth >= 63) {
			s->error = 1;
			return 1;
		}
		s->objmask |= 1ULL << (s->depth & 63);
		s->expect_key = 1;
		return 0;
	case '[':
		if (s->depth == 0) {
			s->error = 1; /* batches: not in this stand-in */
			return 1;
		}
		s->value_key = TK_NONE;
		s->depth++;
		if (s->depth >= 63) {
			s->error = 1;
			return 1;
		}
		s->objmask &= ~(1ULL << (s->depth & 63));
		s->expect_key = 0;
		return 0;
	case '}':
	case ']':
		if (!s->depth) {
			s->error = 1;
			return 1;
		}
		s->depth--;
		if (s->depth == 1 && s->in_params)
			s->in_params = 2; /* params closed */
		if (s->depth == 0) {
			s->done = 1;
			o->end = i + 1;
		}
		return 0;
	case ',':
		s->expect_key = (s->objmask >> (s->depth & 63)) & 1;
		s->value_key = TK_NONE;
		return 0;
	case ':':
		s->value_key = s->key;
		s->key = TK_NONE;
		return 0;
	}
	if (s->value_key == TK_ID && ((ch >= '0' && ch <= '9') || ch == '-')) {
		s->in_id = 1;
		s->id_start = i;
	}
	s->value_key = TK_NONE;
	return 0;
}

static __always_inline int mcp_scan_tmp(struct mcpf_scan_buf *buf, __u32 len,
					struct mcpf_scan_result *out)
{
	struct tmp_scan *s = tmp_st();

	out->status = MCPF_SCAN_UNPARSED;
	out->ncalls = 0;
	out->end = 0;
	out->flags = 0;
	__builtin_memset(&out->calls[0], 0, sizeof(out->calls[0]));
	if (!s || len > MCPF_SCAN_BUF_MAX)
		return out->status;
	__builtin_memset(s, 0, sizeof(*s));
	s->len = len;
	bpf_loop(MCPF_SCAN_BUF_MAX, tmp_step, NULL, 0);
	if (s->error || s->in_str)
		return out->status;
	if (!s->done) {
		out->status = MCPF_SCAN_INCOMPLETE;
		return out->status;
	}
	if (out->calls[0].method_len == 10 && !(out->calls[0].flags & MCPF_CALL_HAS_NAME) &&
	    out->calls[0].method[0] == 't' && out->calls[0].method[6] == 'c')
		return out->status;
	out->ncalls = 1;
	out->status = MCPF_SCAN_OK;
	return out->status;
}

#endif
