/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * mcp_scan: the in-kernel MCP scanner. From the bytes of one message it reads, for each JSON-RPC
 * message in the value (an object, or a batch of up to MCPF_SCAN_MAX_CALLS objects), the decoded
 * `method`, the raw `id` and the decoded `params.name`, and nothing else.
 *
 *   static __always_inline int mcp_scan(struct mcpf_scan_buf *buf, __u32 len,
 *                                       struct mcpf_scan_result *out);
 *   static __always_inline int mcp_scan_from(struct mcpf_scan_buf *buf, __u32 start, __u32 len,
 *                                            struct mcpf_scan_result *out);
 *
 * mcp_scan_from() reads the value that starts at buf->data[start] (the next of packed messages:
 * start = the previous out->end); every offset it reports counts from buf->data[0].
 *
 * buf:  the message bytes in buf->data[0..len) (a map value: per-CPU slot of the hook);
 *       len > MCPF_SCAN_BUF_MAX is clamped, and a value that does not end inside
 *       MCPF_SCAN_BUF_MAX bytes is UNPARSED. Bytes at or past len are never read.
 * out:  a map value; its header and calls[0..ncalls) are filled (calls past ncalls are left as
 *       they were). Returns out->status:
 *   MCPF_SCAN_OK          the first JSON value in buf (leading whitespace allowed) was read with
 *                         certainty: out->ncalls messages in out->calls[], out->end just past it.
 *                         MCPF_SCAN_TRAILING: other bytes follow (packed messages: scan again
 *                         from out->end); MCPF_SCAN_NEWLINE: a raw \\n or \\r inside the value.
 *   MCPF_SCAN_INCOMPLETE  the bytes end inside a value that is valid so far: wait for more and
 *                         scan again from the start (out->end == len).
 *   MCPF_SCAN_UNPARSED    anything else: invalid JSON or UTF-8 (lone surrogates included), a bound
 *                         exceeded (nesting deeper than MCPF_SCAN_MAX_DEPTH, more than
 *                         MCPF_SCAN_MAX_CALLS messages, method >= MCPF_METHOD_MAX bytes, id >=
 *                         MCPF_ID_MAX bytes, a value not ended within MCPF_SCAN_BUF_MAX bytes),
 *                         a duplicate of a key that matters ("method", "id", "params" in a
 *                         message, "name" in params: the server's parser takes the last one),
 *                         a top-level value other than an object or an array of objects, a
 *                         non-string method, an object or array as id, a tools/call without a
 *                         string params.name shorter than MCPF_NAME_MAX, a NUL in the method.
 *                         out->end is where it stopped.
 * On anything but OK, out->ncalls is 0: nothing of the message may be trusted.
 * method_off/method_span locate the method's string (quotes included) in buf, for a same-length
 * rewrite in place. MCPF_CALL_HAS_NAME is set whenever params.name is a string shorter than
 * MCPF_NAME_MAX without NUL (so prompts/get has it too); for tools/call it is always set on OK.
 * method, name and id are NUL-terminated; method and name are UTF-8, escapes decoded.
 *
 * Hooks: the buffer (with the scanner's state in buf->scan_state) must not be shared by programs
 * that can nest on one CPU (process context and softirq): one buffer map per kind of hook. A
 * line-framed transport (stdio) must refuse MCPF_SCAN_NEWLINE: the server parses each line alone.
 * An HTTP body must be whole and without MCPF_SCAN_TRAILING (JSON.parse refuses trailing bytes).
 *
 * How: one bpf_loop over steps; a step is a token (with the ',' or ':' before it, and the first
 * run of a string or number it opens; after '{', the first key's), up to MCP_WS_RUN bytes of
 * whitespace, up to MCP_STR_RUN * 8 + 8 plain bytes of a string (8 at a time, decoded ones
 * too), one escape or UTF-8 sequence, or a number's MCP_NUM_RUN bytes (runs of digits 8 at a
 * time); then what compact JSON puts right after it (mcp_scan_step_more: a string's end, closes,
 * the next key, the end of the bytes). The state lives in buf->scan_state, not on the stack: a
 * scalar loaded from a map value has no history, which keeps the verifier's state count small
 * (scan_test_xdp, one call site in a global function: 663k instructions verified on 6.18;
 * define MCP_SCAN_GLOBAL_STEP for a global-function step verified once, ~15% slower on small
 * messages, without mcp_scan_step_more; tcp.bpf.c inlines it: 7% of a 337 B request's whole
 * BPF time). Keys are decoded (escapes resolved) only where they matter: in a message
 * object and in its params object. Needs bpf_loop (5.17+), no kfunc. Measured on 6.18 through
 * BPF_PROG_TEST_RUN (bench/scan): ~90-150 ns fixed, ~400 ns for a 200 B tools/call (10 steps
 * with a 7-digit id), ~0.33 us per KB at 2 KB, ~0.2 us per KB at 20 KB. The same code compiles
 * for userspace (tests, fuzzer) with the shims below.
 */
#ifndef MCPFENCE_MCP_SCAN_BPF_H
#define MCPFENCE_MCP_SCAN_BPF_H

#include "mcpfence.h"

#define MCPF_SCAN_MAX_DEPTH 128
#define MCPF_SCAN_MASK (MCPF_SCAN_BUF_MAX - 1)
#ifndef MCP_NUM_RUN
#define MCP_NUM_RUN 2
#endif
#ifndef MCP_WS_RUN
#define MCP_WS_RUN 8
#endif
#ifndef MCP_STR_RUN
#define MCP_STR_RUN 16
#endif

#ifndef __bpf__
/* Userspace build (tests, fuzzer): the helpers the scanner uses, with the same meaning. */
#include <string.h>
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#ifndef barrier_var
#define barrier_var(var) asm volatile("" : "=r"(var) : "0"(var))
#endif
static inline long mcp_scan_bpf_loop(__u32 nr, long (*cb)(__u64, void *), void *ctx, __u64 flags)
{
	__u32 i;

	for (i = 0; i < nr; i++)
		if (cb(i, ctx))
			return i + 1;
	return nr;
}
#define bpf_loop(nr, cb, ctx, flags) mcp_scan_bpf_loop(nr, cb, ctx, flags)
static inline long bpf_probe_read_kernel(void *dst, __u32 size, const void *src)
{
	memcpy(dst, src, size);
	return 0;
}
#endif
#define mcp_scan_load64(buf, i) mcpf_load64(&(buf)->data[i])
#define mcp_scan_load32(buf, i) mcpf_load32(&(buf)->data[i])

enum mcp_scan_state {
	MCP_ST_VALUE = 0,	   /* a value is expected */
	MCP_ST_VALUE_OR_CLOSE = 1, /* just after '[' */
	MCP_ST_KEY = 2,		   /* after ',' in an object */
	MCP_ST_KEY_OR_CLOSE = 3,   /* just after '{' */
	MCP_ST_COLON = 4,	   /* after a key */
	MCP_ST_NEXT = 5,	   /* after a value in a container: ',' or the close */
	MCP_ST_DONE = 6,	   /* the top-level value is whole: look at what follows */
};

enum mcp_scan_tok {
	MCP_TOK_NONE = 0,
	MCP_TOK_STRING = 1,
	MCP_TOK_NUMBER = 2,
};

/* What a string's decoded bytes are for. */
enum mcp_scan_role {
	MCP_R_SKIP_VAL = 0, /* a value nobody reads: validate only */
	MCP_R_SKIP_KEY = 1, /* a key nobody reads */
	MCP_R_KEY_MSG = 2,  /* a key of a message object */
	MCP_R_KEY_PAR = 3,  /* a key of a message's params object */
	MCP_R_METHOD = 4,
	MCP_R_NAME = 5,
};

enum mcp_scan_key {
	MCP_K_OTHER = 0,
	MCP_K_METHOD = 1,
	MCP_K_PARAMS = 2,
	MCP_K_ID = 3,
	MCP_K_NAME = 4,
	MCP_K_RESULT = 5, /* "result" or "error" */
};

/* Message flags: keys seen in the message being read, and what its params hold. */
enum mcp_scan_mflags {
	MCP_MF_METHOD = 1,
	MCP_MF_PARAMS = 2,
	MCP_MF_ID = 4,
	MCP_MF_NAME = 8,	 /* "name" seen in params */
	MCP_MF_PARAMS_OPEN = 16, /* inside the params object */
	MCP_MF_NAME_OK = 32,	 /* params.name decoded in full */
	MCP_MF_NAME_BAD = 64,	 /* params.name not a string, too long, or with NUL */
	MCP_MF_IN_MSG = 128,
	MCP_MF_RESULT = 256, /* "result" or "error" seen in the message */
	MCP_MF_ID_INT = 512, /* the id is a number without fraction or exponent */
};

/* Number grammar (RFC 8259): -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
enum mcp_scan_num {
	MCP_N_START = 0,
	MCP_N_MINUS = 1,
	MCP_N_ZERO = 2,
	MCP_N_INT = 3,
	MCP_N_DOT = 4,
	MCP_N_FRAC = 5,
	MCP_N_E = 6,
	MCP_N_ESIGN = 7,
	MCP_N_EXP = 8,
};

#define MCP_SCAN_RUNNING 0xff

/*
 * The tokenizer's state lives in the scratch map value, not on the stack: a scalar loaded from
 * a map value starts with no history, which keeps the verifier's precision tracking (and so its
 * state count) small across bpf_loop steps.
 */
struct mcp_scan_st {
	__u64 stack[MCPF_SCAN_MAX_DEPTH / 64]; /* bit d: the container at depth d+1 is an object */
	__u64 key; /* a key of a message or its params: its first 8 characters, folded */
	__u32 len;
	__u32 pos;
	__u32 depth; /* open containers */
	__u32 state; /* enum mcp_scan_state */
	__u32 status;
	__u32 tok;	 /* enum mcp_scan_tok: token in progress */
	__u32 role;	 /* enum mcp_scan_role of the string in progress */
	__u32 dlen;	 /* its decoded bytes so far */
	__u32 num;	 /* enum mcp_scan_num of the number in progress */
	__u32 msg_depth; /* depth inside a message object: 1, or 2 in a batch */
	__u32 ci;	 /* index of the message in progress */
	__u32 mf;	 /* enum mcp_scan_mflags */
	__u32 pend_msg;	 /* enum mcp_scan_key whose value comes next in the message */
	__u32 pend_par;	 /* same in params */
	__u32 vstart;	 /* where the id's value starts */
	__u32 sstart;	 /* where the string in progress starts (its quote) */
	__u32 key8;	 /* the key's 9th character, folded */
	__u32 kfold;	 /* folding changed one of the key's characters */
	__u32 why;	 /* enum mcpf_why: the first reason of an UNPARSED */
};

_Static_assert(sizeof(struct mcp_scan_st) <= sizeof(((struct mcpf_scan_buf *)0)->scan_state),
	       "mcp_scan_st outgrew mcpf_scan_buf.scan_state");

/* The bpf_loop context, on the stack: pointers only. */
struct mcp_scan_ctx {
	struct mcpf_scan_buf *buf;
	struct mcpf_scan_result *out;
	struct mcp_scan_st *s;
};

#define MCP_ONES 0x0101010101010101ULL
#define MCP_HIGHS 0x8080808080808080ULL
#define MCP_LOWS 0x7f7f7f7f7f7f7f7fULL

#define MCP_KEY2(a, b) ((__u64)(a) | (__u64)(b) << 8)
#define MCP_KEY4(a, b, c, d) (MCP_KEY2(a, b) | MCP_KEY2(c, d) << 16)
#define MCP_KEY6(a, b, c, d, e, f) (MCP_KEY4(a, b, c, d) | MCP_KEY2(e, f) << 32)

static __always_inline __u32 mcp_scan_byte(const struct mcpf_scan_buf *buf, __u32 i)
{
	barrier_var(i);
	i &= MCPF_SCAN_MASK;
	return buf->data[i];
}

static __always_inline void mcp_scan_fail(struct mcp_scan_ctx *c, __u32 why)
{
	c->s->status = MCPF_SCAN_UNPARSED;
	if (!c->s->why)
		c->s->why = why;
}

/* The bytes end inside the value: more may come, unless the buffer is already full. */
static __always_inline void mcp_scan_short(struct mcp_scan_ctx *c)
{
	if (c->s->len >= MCPF_SCAN_BUF_MAX)
		mcp_scan_fail(c, MCPF_WHY_BOUND);
	else
		c->s->status = MCPF_SCAN_INCOMPLETE;
}

static __always_inline struct mcpf_call *mcp_scan_call(struct mcp_scan_ctx *c)
{
	__u32 ci = c->s->ci;

	barrier_var(ci);
	ci &= MCPF_SCAN_MAX_CALLS - 1;
	return &c->out->calls[ci];
}

static __always_inline int mcp_scan_is_ws(__u32 b)
{
	return b == ' ' || b == '\n' || b == '\r' || b == '\t';
}

static __always_inline __u32 mcp_scan_hex(__u32 b)
{
	if (b >= '0' && b <= '9')
		return b - '0';
	b |= 0x20;
	if (b >= 'a' && b <= 'f')
		return b - 'a' + 10;
	return 0x10000; /* stays > 0xffff however shifted or combined */
}

/* The code unit of the 4 hex digits at i, or > 0xffff when one is not a hex digit. */
static __always_inline __u32 mcp_scan_hex4(const struct mcpf_scan_buf *buf, __u32 i)
{
	return mcp_scan_hex(mcp_scan_byte(buf, i)) << 12 |
	       mcp_scan_hex(mcp_scan_byte(buf, i + 1)) << 8 |
	       mcp_scan_hex(mcp_scan_byte(buf, i + 2)) << 4 |
	       mcp_scan_hex(mcp_scan_byte(buf, i + 3));
}

/* Nonzero when one of the 8 bytes is '"', '\\', a control byte or not ASCII. */
static __always_inline __u64 mcp_scan_special(__u64 v)
{
	__u64 q = v ^ (MCP_ONES * '"');
	__u64 s = v ^ (MCP_ONES * '\\');

	return (((q - MCP_ONES) & ~q) | ((s - MCP_ONES) & ~s) | (v - MCP_ONES * 0x20) | v) &
	       MCP_HIGHS;
}

/*
 * Keys are folded as they are decoded, character by character: ASCII upper case to lower case,
 * and the characters that some server's case-insensitive match takes for an ASCII letter to
 * that letter (Go's encoding/json folds U+017F long s to s and U+212A Kelvin to k; .NET's
 * OrdinalIgnoreCase takes U+0131 dotless i for i; U+0130 lower-cases to i). Any other non-ASCII
 * character folds to 0x80, which no key that matters holds. The key keeps its first 9 folded
 * characters (s->key, s->key8) and their count (s->dlen); s->kfold says whether folding changed
 * one: a key that matches only because of it is one that servers read and we may not.
 */
static __always_inline void mcp_scan_key_put(struct mcp_scan_ctx *c, __u64 f, __u32 k)
{
	__u32 i = c->s->dlen;

	if (i < 8) {
		c->s->key |= f << (i * 8);
		if (i + k > 8) /* i >= 1 here: the shift is at most 56 */
			c->s->key8 = (f >> ((8 - i) * 8)) & 0xff;
	} else if (i == 8) {
		c->s->key8 = f & 0xff;
	}
	c->s->dlen = i + k;
}

/* One character of a key (n bytes of UTF-8 in out, first byte lowest), folded. */
static __always_inline void mcp_scan_key_char(struct mcp_scan_ctx *c, __u64 out, __u32 n)
{
	__u64 f = 0x80;

	if (n == 1) {
		f = out;
		if (f >= 'A' && f <= 'Z') {
			f += 'a' - 'A';
			c->s->kfold = 1;
		}
	} else if (n == 2 && out == 0xbfc5) { /* U+017F */
		f = 's';
		c->s->kfold = 1;
	} else if (n == 2 && (out == 0xb1c4 || out == 0xb0c4)) { /* U+0131, U+0130 */
		f = 'i';
		c->s->kfold = 1;
	} else if (n == 3 && out == 0xaa84e2) { /* U+212A */
		f = 'k';
		c->s->kfold = 1;
	}
	mcp_scan_key_put(c, f, 1);
}

/* One decoded byte of a method or name, to where its role says. */
static __always_inline void mcp_scan_emit(struct mcp_scan_ctx *c, __u32 b)
{
	struct mcpf_call *call;
	__u32 i = c->s->dlen;

	c->s->dlen = i + 1;
	if (c->s->role == MCP_R_METHOD) {
		if (i >= MCPF_METHOD_MAX - 1 || b == 0) {
			mcp_scan_fail(c, b ? MCPF_WHY_BOUND : MCPF_WHY_SHAPE);
			return;
		}
		call = mcp_scan_call(c);
		barrier_var(i);
		i &= 63;
		call->method[i] = b;
	} else if (c->s->role == MCP_R_NAME) {
		if (i >= MCPF_NAME_MAX - 1 || b == 0) {
			c->s->mf |= MCP_MF_NAME_BAD;
			return;
		}
		call = mcp_scan_call(c);
		barrier_var(i);
		i &= 127;
		call->name[i] = b;
	}
}

/* How many bytes come before the first special one, from mcp_scan_special(): 0 to 8. */
static __always_inline __u32 mcp_scan_plain_bytes(__u64 special)
{
	if (!special)
		return 8;
	/* the lowest flag is exact (borrows only run upwards); its byte index by multiplication */
	return (((special & -special) >> 7) * 0x0001020304050607ULL) >> 56;
}

/* The first k (1..8) bytes of v (first byte lowest), the others zero. */
static __always_inline __u64 mcp_scan_low_bytes(__u64 v, __u32 k)
{
	return k < 8 ? v & ((1ULL << (k * 8)) - 1) : v;
}

/*
 * k (1..8) plain ASCII bytes, first byte lowest in v, decoded as they are; 0 when they must go
 * one at a time (near the end of the method or name field).
 */
static __always_inline int mcp_scan_emit8(struct mcp_scan_ctx *c, __u64 v, __u32 k)
{
	__u32 i = c->s->dlen, role = c->s->role, lim;
	struct mcpf_call *call;

	v = mcp_scan_low_bytes(v, k);
	if (role == MCP_R_KEY_MSG || role == MCP_R_KEY_PAR) {
		/* the bytes are ASCII: adding 0x3f (0x25) sets a byte's top bit from 'A' ('Z' + 1) */
		__u64 upper = (v + MCP_ONES * 0x3f) & ~(v + MCP_ONES * 0x25) & MCP_HIGHS;

		if (upper)
			c->s->kfold = 1;
		mcp_scan_key_put(c, v | upper >> 2, k);
		return 1;
	} else if (role == MCP_R_METHOD || role == MCP_R_NAME) {
		lim = role == MCP_R_METHOD ? MCPF_METHOD_MAX : MCPF_NAME_MAX;
		if (i + 8 > lim)
			return 0;
		call = mcp_scan_call(c);
		barrier_var(i);
		i &= 127;
		if (role == MCP_R_METHOD)
			mcpf_store64(&call->method[i & 63], v);
		else
			mcpf_store64(&call->name[i], v);
		i = c->s->dlen;
	}
	c->s->dlen = i + k;
	return 1;
}

/*
 * Which key that matters the folded key is, for a key of the message or of its params: in a
 * message "jsonrpc", "id", "method", "params", "result", "error"; in params "name",
 * "arguments". One that matches only once folded makes the message unreadable with certainty:
 * a server that matches keys without regard to case reads it as that key (the last one wins).
 */
static __always_inline __u32 mcp_scan_which_key(struct mcp_scan_ctx *c)
{
	__u64 key = c->s->key;
	__u32 len = c->s->dlen, k = MCP_K_OTHER;

	if (c->s->role == MCP_R_KEY_MSG) {
		if (len == 6) {
			if (key == MCP_KEY6('m', 'e', 't', 'h', 'o', 'd'))
				k = MCP_K_METHOD;
			else if (key == MCP_KEY6('p', 'a', 'r', 'a', 'm', 's'))
				k = MCP_K_PARAMS;
			else if (key == MCP_KEY6('r', 'e', 's', 'u', 'l', 't'))
				k = MCP_K_RESULT;
		} else if (len == 2 && key == MCP_KEY2('i', 'd')) {
			k = MCP_K_ID;
		} else if (len == 5 && key == (MCP_KEY4('e', 'r', 'r', 'o') | (__u64)'r' << 32)) {
			k = MCP_K_RESULT;
		}
	} else if (len == 4 && key == MCP_KEY4('n', 'a', 'm', 'e')) {
		k = MCP_K_NAME;
	}
	/* jsonrpc and arguments matter only for their spelling: looked at once folding changed one */
	if (c->s->kfold &&
	    (k != MCP_K_OTHER ||
	     (c->s->role == MCP_R_KEY_MSG && len == 7 &&
	      key == (MCP_KEY6('j', 's', 'o', 'n', 'r', 'p') | (__u64)'c' << 48)) ||
	     (c->s->role == MCP_R_KEY_PAR && len == 9 && c->s->key8 == 's' &&
	      key == (MCP_KEY6('a', 'r', 'g', 'u', 'm', 'e') | MCP_KEY2('n', 't') << 48))))
		mcp_scan_fail(c, MCPF_WHY_FOLDED_KEY);
	return k;
}

static __always_inline int mcp_scan_top_is_object(struct mcp_scan_ctx *c)
{
	__u32 d = c->s->depth - 1;

	barrier_var(d);
	d &= MCPF_SCAN_MAX_DEPTH - 1;
	return (c->s->stack[d >> 6 & 1] >> (d & 63)) & 1;
}

static __always_inline void mcp_scan_start_msg(struct mcp_scan_ctx *c, __u32 ci)
{
	struct mcpf_call *call;

	c->s->ci = ci;
	call = mcp_scan_call(c);
	mcpf_zero(call, sizeof(*call));
	c->s->mf = MCP_MF_IN_MSG;
	c->s->pend_msg = MCP_K_OTHER;
	c->s->pend_par = MCP_K_OTHER;
}

/* 0x80 in each byte of y (bytes below 0x80) that equals c. */
static __always_inline __u64 mcp_scan_eq(__u64 y, __u32 c)
{
	__u64 x = y ^ (MCP_ONES * c);

	return ~((x + MCP_LOWS) | x) & MCP_HIGHS;
}

/*
 * Does every server write this raw id back as it came? The answer to a denied call is found by
 * its id on the way back, as text: an integer of at most 15 digits (JavaScript keeps it exact;
 * no fraction, exponent or -0, which servers rewrite), or a string of ASCII without escapes and
 * without '<', '>', '&' (Go's encoder escapes those).
 */
static __always_inline int mcp_scan_id_plain(const struct mcpf_call *call, __u32 mf)
{
	__u32 len = call->id_len, first = call->id[0] & 0xff, i, k;
	__u64 w, y, bad = 0;

	if (first == '"') {
		for (i = 0; i < MCPF_ID_MAX / 8; i++) {
			if (8 * i >= len)
				break;
			w = mcpf_load64(&call->id[8 * i]);
			y = w & MCP_LOWS;
			k = len - 8 * i;
			bad |= ((w & MCP_HIGHS) | mcp_scan_eq(y, '\\') | mcp_scan_eq(y, '<') |
				mcp_scan_eq(y, '>') | mcp_scan_eq(y, '&')) &
			       mcp_scan_low_bytes(MCP_HIGHS, k < 8 ? k : 8);
		}
		return !bad;
	}
	/* an integer (the scanner's number grammar said so): its digits, and not -0 */
	i = first == '-';
	return (mf & MCP_MF_ID_INT) && len - i <= 15 && !(i && call->id[1] == '0');
}

/* A message object closes: what it says, if it says it with certainty. */
static __always_inline void mcp_scan_end_msg(struct mcp_scan_ctx *c)
{
	struct mcpf_call *call = mcp_scan_call(c);
	__u32 mf = c->s->mf;
	int tools_call;

	if (mf & MCP_MF_METHOD)
		call->flags |= MCPF_CALL_HAS_METHOD;
	if ((mf & (MCP_MF_NAME_OK | MCP_MF_NAME_BAD)) == MCP_MF_NAME_OK)
		call->flags |= MCPF_CALL_HAS_NAME;
	else
		call->name_len = 0;
	tools_call = call->method_len == 10 && call->method[0] == 't' && call->method[1] == 'o' &&
		     call->method[2] == 'o' && call->method[3] == 'l' && call->method[4] == 's' &&
		     call->method[5] == '/' && call->method[6] == 'c' && call->method[7] == 'a' &&
		     call->method[8] == 'l' && call->method[9] == 'l';
	if ((mf & MCP_MF_METHOD) && (mf & MCP_MF_RESULT)) {
		mcp_scan_fail(c,
			      MCPF_WHY_SHAPE); /* a request to one server, an answer to another */
		return;
	}
	if (tools_call && !(call->flags & MCPF_CALL_HAS_NAME)) {
		mcp_scan_fail(c, MCPF_WHY_SHAPE);
		return;
	}
	if (tools_call && (call->flags & MCPF_CALL_HAS_ID) && !mcp_scan_id_plain(call, mf)) {
		mcp_scan_fail(c, MCPF_WHY_ID);
		return;
	}
	c->out->ncalls = c->s->ci + 1;
	c->s->mf = 0;
}

/* A value (scalar, or a container just closed) ends at c->s->pos. */
static __always_inline void mcp_scan_value_done(struct mcp_scan_ctx *c)
{
	struct mcpf_call *call;
	__u64 n;
	__u32 b;

	if (c->s->depth == 0) {
		c->out->end = c->s->pos;
		c->s->state = MCP_ST_DONE;
		return;
	}
	c->s->state = MCP_ST_NEXT;
	if (c->s->depth == c->s->msg_depth && (c->s->mf & MCP_MF_IN_MSG)) {
		if (c->s->pend_msg == MCP_K_ID) {
			n = c->s->pos - c->s->vstart;
			barrier_var(n);
			if (n >= MCPF_ID_MAX) {
				mcp_scan_fail(c, MCPF_WHY_BOUND);
				return;
			}
			call = mcp_scan_call(c);
			call->id_len = n;
			call->flags |= MCPF_CALL_HAS_ID;
			b = mcp_scan_byte(c->buf, c->s->vstart);
			if (b == '"')
				call->flags |= MCPF_CALL_ID_STRING;
			else if ((b == '-' || (b >= '0' && b <= '9')) &&
				 (c->s->num == MCP_N_INT || c->s->num == MCP_N_ZERO))
				c->s->mf |= MCP_MF_ID_INT;
			/* 8 bytes a word, no helper: the bytes past the id are zero */
			for (__u32 i = 0; i < MCPF_ID_MAX / 8; i++) {
				__u64 v = 0;
				__u32 k = n > 8 * i ? (__u32)n - 8 * i : 0;

				if (k) {
					b = c->s->vstart + 8 * i;
					barrier_var(b);
					v = mcp_scan_load64(c->buf, b & MCPF_SCAN_MASK);
					v = mcp_scan_low_bytes(v, k);
				}
				mcpf_store64(&call->id[8 * i], v);
			}
		}
		c->s->pend_msg = MCP_K_OTHER;
	} else if (c->s->depth == c->s->msg_depth + 1 && (c->s->mf & MCP_MF_PARAMS_OPEN)) {
		c->s->pend_par = MCP_K_OTHER;
	}
}

/* A string closes at c->s->pos - 1. */
static __always_inline void mcp_scan_string_done(struct mcp_scan_ctx *c)
{
	struct mcpf_call *call;
	__u32 k, bit;

	c->s->tok = MCP_TOK_NONE;
	switch (c->s->role) {
	case MCP_R_SKIP_KEY:
		c->s->state = MCP_ST_COLON;
		return;
	case MCP_R_KEY_MSG:
		c->s->state = MCP_ST_COLON;
		k = mcp_scan_which_key(c);
		c->s->pend_msg = k;
		if (k == MCP_K_OTHER)
			return;
		bit = k == MCP_K_METHOD ? MCP_MF_METHOD :
		      k == MCP_K_PARAMS ? MCP_MF_PARAMS :
		      k == MCP_K_ID	? MCP_MF_ID :
					  MCP_MF_RESULT;
		/* a duplicate: the server reads the last one (results and errors are not read) */
		if ((c->s->mf & bit) && bit != MCP_MF_RESULT)
			mcp_scan_fail(c, MCPF_WHY_DUP_KEY);
		c->s->mf |= bit;
		return;
	case MCP_R_KEY_PAR:
		c->s->state = MCP_ST_COLON;
		k = mcp_scan_which_key(c);
		c->s->pend_par = k;
		if (k == MCP_K_NAME) {
			if (c->s->mf & MCP_MF_NAME)
				mcp_scan_fail(c, MCPF_WHY_DUP_KEY);
			c->s->mf |= MCP_MF_NAME;
		}
		return;
	case MCP_R_METHOD:
		if (c->s->dlen >= MCPF_METHOD_MAX) {
			mcp_scan_fail(c, MCPF_WHY_BOUND);
			return;
		}
		call = mcp_scan_call(c);
		call->method_len = c->s->dlen;
		call->method_off = c->s->sstart;
		call->method_span = c->s->pos - c->s->sstart;
		break;
	case MCP_R_NAME:
		if (c->s->dlen >= MCPF_NAME_MAX)
			c->s->mf |= MCP_MF_NAME_BAD;
		if (!(c->s->mf & MCP_MF_NAME_BAD)) {
			call = mcp_scan_call(c);
			call->name_len = c->s->dlen;
			c->s->mf |= MCP_MF_NAME_OK;
		}
		break;
	}
	mcp_scan_value_done(c);
}

/*
 * One step inside a string at c->s->pos: up to 128 plain bytes when nobody reads them, else one
 * byte, escape or UTF-8 sequence, validated (as jansson does: no control bytes, no lone
 * surrogates, no overlong or out-of-range UTF-8) and decoded for the role.
 */
static __always_inline void mcp_scan_string(struct mcp_scan_ctx *c)
{
	const struct mcpf_scan_buf *buf = c->buf;
	__u32 pos = c->s->pos, len = c->s->len, b, e, cp, lo, hi, n, adv, k;
	__u64 out;

	if (c->s->role < MCP_R_KEY_MSG) {
		for (k = 0; k < MCP_STR_RUN; k++) {
			if (pos + 8 > len)
				break;
			barrier_var(pos);
			pos &= MCPF_SCAN_MASK;
			if (mcp_scan_special(mcp_scan_load64(buf, pos)))
				break;
			pos += 8;
		}
	}
	/* the plain bytes before the next special one, at most 8, in one go */
	if (pos + 8 <= len) {
		barrier_var(pos);
		pos &= MCPF_SCAN_MASK;
		out = mcp_scan_load64(buf, pos);
		k = mcp_scan_plain_bytes(mcp_scan_special(out));
		if (k && mcp_scan_emit8(c, out, k)) {
			pos += k;
			if (k == 8) {
				c->s->pos = pos;
				return;
			}
		}
	}
	c->s->pos = pos;
	if (pos >= len)
		return; /* the next step sees the end */
	b = mcp_scan_byte(buf, pos);
	if (b == '"') {
		c->s->pos = pos + 1;
		mcp_scan_string_done(c);
		return;
	}
	if (b < 0x20) {
		mcp_scan_fail(c, MCPF_WHY_JSON);
		return;
	}
	out = b;
	n = 1;
	adv = 1;
	if (b == '\\') {
		if (pos + 2 > len) {
			mcp_scan_short(c);
			return;
		}
		e = mcp_scan_byte(buf, pos + 1);
		adv = 2;
		if (e == 'b')
			out = '\b';
		else if (e == 'f')
			out = '\f';
		else if (e == 'n')
			out = '\n';
		else if (e == 'r')
			out = '\r';
		else if (e == 't')
			out = '\t';
		else if (e == '"' || e == '\\' || e == '/')
			out = e;
		else if (e != 'u') {
			mcp_scan_fail(c, MCPF_WHY_JSON);
			return;
		} else {
			if (pos + 6 > len) {
				mcp_scan_short(c);
				return;
			}
			cp = mcp_scan_hex4(buf, pos + 2);
			adv = 6;
			if (cp > 0xffff || (cp >= 0xdc00 && cp <= 0xdfff)) {
				mcp_scan_fail(c, MCPF_WHY_JSON);
				return;
			}
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if ((pos + 6 < len && mcp_scan_byte(buf, pos + 6) != '\\') ||
				    (pos + 7 < len && mcp_scan_byte(buf, pos + 7) != 'u')) {
					mcp_scan_fail(c, MCPF_WHY_JSON);
					return;
				}
				if (pos + 12 > len) {
					mcp_scan_short(c);
					return;
				}
				lo = mcp_scan_hex4(buf, pos + 8);
				if (mcp_scan_byte(buf, pos + 6) != '\\' ||
				    mcp_scan_byte(buf, pos + 7) != 'u' || lo < 0xdc00 ||
				    lo > 0xdfff) {
					mcp_scan_fail(c, MCPF_WHY_JSON);
					return;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				adv = 12;
			}
			/* UTF-8, first byte lowest */
			if (cp < 0x80) {
				out = cp;
			} else if (cp < 0x800) {
				out = (0xc0 | cp >> 6) | (__u64)(0x80 | (cp & 0x3f)) << 8;
				n = 2;
			} else if (cp < 0x10000) {
				out = (0xe0 | cp >> 12) | (__u64)(0x80 | (cp >> 6 & 0x3f)) << 8 |
				      (__u64)(0x80 | (cp & 0x3f)) << 16;
				n = 3;
			} else {
				out = (0xf0 | cp >> 18) | (__u64)(0x80 | (cp >> 12 & 0x3f)) << 8 |
				      (__u64)(0x80 | (cp >> 6 & 0x3f)) << 16 |
				      (__u64)(0x80 | (cp & 0x3f)) << 24;
				n = 4;
			}
		}
	} else if (b >= 0x80) {
		/* Well-formed UTF-8 (Unicode table 3-7) */
		lo = 0x80;
		hi = 0xbf;
		if (b >= 0xc2 && b <= 0xdf) {
			n = 2;
		} else if (b >= 0xe0 && b <= 0xef) {
			n = 3;
			if (b == 0xe0)
				lo = 0xa0;
			else if (b == 0xed)
				hi = 0x9f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			n = 4;
			if (b == 0xf0)
				lo = 0x90;
			else if (b == 0xf4)
				hi = 0x8f;
		} else {
			mcp_scan_fail(c, MCPF_WHY_JSON);
			return;
		}
		if (pos + n > len) {
			mcp_scan_short(c);
			return;
		}
		e = mcp_scan_byte(buf, pos + 1);
		if (e < lo || e > hi) {
			mcp_scan_fail(c, MCPF_WHY_JSON);
			return;
		}
		out |= (__u64)e << 8;
		if (n > 2) {
			e = mcp_scan_byte(buf, pos + 2);
			if ((e & 0xc0) != 0x80) {
				mcp_scan_fail(c, MCPF_WHY_JSON);
				return;
			}
			out |= (__u64)e << 16;
		}
		if (n > 3) {
			e = mcp_scan_byte(buf, pos + 3);
			if ((e & 0xc0) != 0x80) {
				mcp_scan_fail(c, MCPF_WHY_JSON);
				return;
			}
			out |= (__u64)e << 24;
		}
		adv = n;
	}
	c->s->pos = pos + adv;
	if (c->s->role < MCP_R_KEY_MSG)
		return;
	if (c->s->role < MCP_R_METHOD) {
		mcp_scan_key_char(c, out, n);
		return;
	}
	/*
	 * n is 1 to 4, emitted without a loop: clang keeps a loop here rolled, enters it in its
	 * middle, and the verifier of 6.1 refuses a loop closed by a fall-through ("back-edge from
	 * insn X to X+1").
	 */
	mcp_scan_emit(c, out & 0xff);
	if (n > 1)
		mcp_scan_emit(c, (out >> 8) & 0xff);
	if (n > 2)
		mcp_scan_emit(c, (out >> 16) & 0xff);
	if (n > 3)
		mcp_scan_emit(c, (out >> 24) & 0xff);
}

/* How many of the 8 bytes of v (first byte lowest) are digits, before the first that is not. */
static __always_inline __u32 mcp_scan_digit_bytes(__u64 v)
{
	/* a digit's high nibble is 3, and its low one plus 6 stays below 16: no carry leaves a byte */
	__u64 nd = ((v & (MCP_ONES * 0xf0)) ^ (MCP_ONES * '0')) |
		   (((v & (MCP_ONES * 0x0f)) + MCP_ONES * 6) & (MCP_ONES * 0xf0));

	/* the top bit of each byte of nd that is not zero */
	return mcp_scan_plain_bytes((((nd & MCP_LOWS) + MCP_LOWS) | nd) & MCP_HIGHS);
}

/*
 * One step inside a number at c->s->pos: MCP_NUM_RUN bytes, and before each, while digits go on
 * (the integer, fraction or exponent), up to 8 digits at once: an integer of up to 9 digits and
 * the byte after it take one step.
 */
static __always_inline void mcp_scan_number(struct mcp_scan_ctx *c)
{
	__u32 pos = c->s->pos, len = c->s->len, st = c->s->num, b, k, digit;

	for (k = 0; k < MCP_NUM_RUN; k++) {
		if ((st == MCP_N_INT || st == MCP_N_FRAC || st == MCP_N_EXP) && pos + 8 <= len) {
			barrier_var(pos);
			pos &= MCPF_SCAN_MASK;
			pos += mcp_scan_digit_bytes(mcp_scan_load64(c->buf, pos));
		}
		if (pos >= len)
			break;
		b = mcp_scan_byte(c->buf, pos);
		digit = b >= '0' && b <= '9';
		if (st == MCP_N_START || st == MCP_N_MINUS) {
			if (b == '-' && st == MCP_N_START)
				st = MCP_N_MINUS;
			else if (b == '0')
				st = MCP_N_ZERO;
			else if (digit)
				st = MCP_N_INT;
			else
				goto bad;
		} else if (st == MCP_N_DOT || st == MCP_N_ESIGN) {
			if (!digit)
				goto bad;
			st = st == MCP_N_DOT ? MCP_N_FRAC : MCP_N_EXP;
		} else if (st == MCP_N_E) {
			if (b == '+' || b == '-')
				st = MCP_N_ESIGN;
			else if (digit)
				st = MCP_N_EXP;
			else
				goto bad;
		} else if (digit && st != MCP_N_ZERO) {
			/* INT, FRAC, EXP go on */
		} else if (b == '.' && (st == MCP_N_ZERO || st == MCP_N_INT)) {
			st = MCP_N_DOT;
		} else if ((b == 'e' || b == 'E') && st != MCP_N_EXP) {
			st = MCP_N_E;
		} else {
			/* the number ended in an accepting state; b belongs to what follows */
			c->s->pos = pos;
			c->s->num = st;
			c->s->tok = MCP_TOK_NONE;
			mcp_scan_value_done(c);
			return;
		}
		pos++;
	}
	c->s->pos = pos;
	c->s->num = st;
	return;
bad:
	c->s->pos = pos;
	mcp_scan_fail(c, MCPF_WHY_JSON);
}

static __always_inline void mcp_scan_open(struct mcp_scan_ctx *c, int object)
{
	__u32 d = c->s->depth, w;
	__u64 bit;

	if (d >= MCPF_SCAN_MAX_DEPTH) {
		mcp_scan_fail(c, MCPF_WHY_BOUND);
		return;
	}
	barrier_var(d);
	d &= MCPF_SCAN_MAX_DEPTH - 1;
	w = d >> 6 & 1;
	bit = 1ULL << (d & 63);
	if (object)
		c->s->stack[w] |= bit;
	else
		c->s->stack[w] &= ~bit;
	c->s->depth = d + 1;
	c->s->pos++;
	c->s->state = object ? MCP_ST_KEY_OR_CLOSE : MCP_ST_VALUE_OR_CLOSE;
}

static __always_inline void mcp_scan_close(struct mcp_scan_ctx *c)
{
	__u32 d = c->s->depth;

	if (d == c->s->msg_depth + 1 && (c->s->mf & MCP_MF_PARAMS_OPEN))
		c->s->mf &= ~MCP_MF_PARAMS_OPEN;
	if (d == c->s->msg_depth && (c->s->mf & MCP_MF_IN_MSG)) {
		mcp_scan_end_msg(c);
		if (c->s->status != MCP_SCAN_RUNNING)
			return;
	}
	c->s->depth = d - 1;
	c->s->pos++;
	mcp_scan_value_done(c);
}

/*
 * What mcp_scan_close does, for a container that ends neither a message nor the top-level value
 * (its depth is 2 or more, not the message's): 1. Else 0, and the next step closes it. Such a
 * container is no id's value (an id that is an object or array is refused): no id ends here.
 */
static __always_inline int mcp_scan_close_inner(struct mcp_scan_ctx *c)
{
	__u32 d = c->s->depth, md = c->s->msg_depth;

	if (d <= 1 || d == md)
		return 0;
	if (d == md + 1)
		c->s->mf &= ~MCP_MF_PARAMS_OPEN;
	c->s->depth = --d;
	c->s->pos++;
	c->s->state = MCP_ST_NEXT;
	if (d == md && (c->s->mf & MCP_MF_IN_MSG))
		c->s->pend_msg = MCP_K_OTHER;
	else if (d == md + 1 && (c->s->mf & MCP_MF_PARAMS_OPEN))
		c->s->pend_par = MCP_K_OTHER;
	return 1;
}

static __always_inline void mcp_scan_start_string(struct mcp_scan_ctx *c, __u32 role)
{
	c->s->tok = MCP_TOK_STRING;
	c->s->role = role;
	c->s->dlen = 0;
	if (role == MCP_R_KEY_MSG || role == MCP_R_KEY_PAR) {
		c->s->key = 0;
		c->s->key8 = 0;
		c->s->kfold = 0;
	}
	c->s->sstart = c->s->pos;
	c->s->pos++;
}

/* A key starts at c->s->pos (its quote): decoded where it matters, in a message or its params. */
static __always_inline void mcp_scan_start_key(struct mcp_scan_ctx *c)
{
	if (c->s->depth == c->s->msg_depth && (c->s->mf & MCP_MF_IN_MSG))
		mcp_scan_start_string(c, MCP_R_KEY_MSG);
	else if (c->s->depth == c->s->msg_depth + 1 && (c->s->mf & MCP_MF_PARAMS_OPEN))
		mcp_scan_start_string(c, MCP_R_KEY_PAR);
	else
		mcp_scan_start_string(c, MCP_R_SKIP_KEY);
}

/* A value starts at c->s->pos with byte b: what it is for, then its first step. */
static __always_inline void mcp_scan_value(struct mcp_scan_ctx *c, __u32 b)
{
	__u32 d = c->s->depth, role = MCP_R_SKIP_VAL;

	if (d == 0) {
		if (b == '{') {
			c->s->msg_depth = 1;
			mcp_scan_start_msg(c, 0);
		} else if (b == '[') {
			c->s->msg_depth = 2;
			c->out->flags |= MCPF_SCAN_BATCH;
		} else {
			mcp_scan_fail(c, MCPF_WHY_SHAPE);
			return;
		}
	} else if (d == 1 && c->s->msg_depth == 2) {
		if (b != '{' || c->out->ncalls >= MCPF_SCAN_MAX_CALLS) {
			mcp_scan_fail(c, b != '{' ? MCPF_WHY_SHAPE : MCPF_WHY_BOUND);
			return;
		}
		mcp_scan_start_msg(c, c->out->ncalls);
	} else if (d == c->s->msg_depth && (c->s->mf & MCP_MF_IN_MSG)) {
		if (c->s->pend_msg == MCP_K_METHOD) {
			if (b != '"') {
				mcp_scan_fail(c, MCPF_WHY_SHAPE);
				return;
			}
			role = MCP_R_METHOD;
		} else if (c->s->pend_msg == MCP_K_ID) {
			if (b == '{' || b == '[') {
				mcp_scan_fail(c, MCPF_WHY_SHAPE);
				return;
			}
			c->s->vstart = c->s->pos;
		} else if (c->s->pend_msg == MCP_K_PARAMS && b == '{') {
			c->s->mf |= MCP_MF_PARAMS_OPEN;
		}
	} else if (d == c->s->msg_depth + 1 && (c->s->mf & MCP_MF_PARAMS_OPEN) &&
		   c->s->pend_par == MCP_K_NAME) {
		if (b == '"')
			role = MCP_R_NAME;
		else
			c->s->mf |= MCP_MF_NAME_BAD;
	}

	if (b == '{' || b == '[') {
		mcp_scan_open(c, b == '{');
		/* in compact JSON, an object's first key, in the same step */
		if (b == '{' && c->s->status == MCP_SCAN_RUNNING && c->s->pos < c->s->len &&
		    mcp_scan_byte(c->buf, c->s->pos) == '"')
			mcp_scan_start_key(c);
	} else if (b == '"') {
		mcp_scan_start_string(c, role);
	} else if (b == '-' || (b >= '0' && b <= '9')) {
		c->s->tok = MCP_TOK_NUMBER;
		c->s->num = MCP_N_START;
	} else if (b == 't' || b == 'f' || b == 'n') {
		__u32 pos = c->s->pos, n = b == 'f' ? 5 : 4, w;

		if (pos + n > c->s->len) {
			mcp_scan_short(c);
			return;
		}
		w = mcp_scan_load32(c->buf, (pos + n - 4) & MCPF_SCAN_MASK);
		if (!(b == 't' && w == MCP_KEY4('t', 'r', 'u', 'e')) &&
		    !(b == 'n' && w == MCP_KEY4('n', 'u', 'l', 'l')) &&
		    !(b == 'f' && w == MCP_KEY4('a', 'l', 's', 'e'))) {
			mcp_scan_fail(c, MCPF_WHY_JSON);
			return;
		}
		c->s->pos = pos + n;
		mcp_scan_value_done(c);
	} else {
		mcp_scan_fail(c, MCPF_WHY_JSON);
	}
}

/* Outside tokens: skip some whitespace, then one structural byte or a token's start. */
static __always_inline void mcp_scan_structural(struct mcp_scan_ctx *c)
{
	__u32 pos = c->s->pos, len = c->s->len, b = ' ', k, top;

	for (k = 0; k < MCP_WS_RUN; k++) {
		if (pos >= len)
			break;
		b = mcp_scan_byte(c->buf, pos);
		if (!mcp_scan_is_ws(b))
			break;
		if ((b == '\n' || b == '\r') && c->s->depth)
			c->out->flags |= MCPF_SCAN_NEWLINE;
		pos++;
	}
	c->s->pos = pos;
	if (pos >= len || mcp_scan_is_ws(b))
		return;
	/* a separator and, in compact JSON, what follows it, in the same step */
	if ((c->s->state == MCP_ST_COLON && b == ':') || (c->s->state == MCP_ST_NEXT && b == ',')) {
		c->s->state = b == ':' || !mcp_scan_top_is_object(c) ? MCP_ST_VALUE : MCP_ST_KEY;
		c->s->pos = ++pos;
		if (pos >= len)
			return;
		b = mcp_scan_byte(c->buf, pos);
		if (mcp_scan_is_ws(b))
			return;
	}

	switch (c->s->state) {
	case MCP_ST_DONE:
		c->out->flags |= MCPF_SCAN_TRAILING;
		c->s->status = MCPF_SCAN_OK;
		return;
	case MCP_ST_COLON:
		if (b != ':') {
			mcp_scan_fail(c, MCPF_WHY_JSON);
			return;
		}
		c->s->pos = pos + 1;
		c->s->state = MCP_ST_VALUE;
		return;
	case MCP_ST_NEXT:
		top = mcp_scan_top_is_object(c);
		if (b == ',') {
			c->s->pos = pos + 1;
			c->s->state = top ? MCP_ST_KEY : MCP_ST_VALUE;
		} else if ((b == '}' && top) || (b == ']' && !top)) {
			mcp_scan_close(c);
		} else {
			mcp_scan_fail(c, MCPF_WHY_JSON);
		}
		return;
	case MCP_ST_KEY_OR_CLOSE:
	case MCP_ST_KEY:
		if (b == '}' && c->s->state == MCP_ST_KEY_OR_CLOSE) {
			mcp_scan_close(c);
		} else if (b != '"') {
			mcp_scan_fail(c, MCPF_WHY_JSON);
		} else {
			mcp_scan_start_key(c);
		}
		return;
	case MCP_ST_VALUE_OR_CLOSE:
		if (b == ']') {
			mcp_scan_close(c);
			return;
		}
		mcp_scan_value(c, b);
		return;
	default:
		mcp_scan_value(c, b);
		return;
	}
}

static __always_inline long mcp_scan_step_body(struct mcp_scan_ctx *c)
{
	if (c->s->status != MCP_SCAN_RUNNING)
		return 1;
	if (c->s->pos >= c->s->len) {
		if (c->s->state == MCP_ST_DONE)
			c->s->status = MCPF_SCAN_OK;
		else
			mcp_scan_short(c);
		return 1;
	}
	if (c->s->tok == MCP_TOK_NONE) {
		mcp_scan_structural(c);
		/* a string or number it opened goes on in the same step: a third fewer steps */
		if (c->s->tok == MCP_TOK_NONE || c->s->status != MCP_SCAN_RUNNING ||
		    c->s->pos >= c->s->len)
			return 0;
	}
	if (c->s->tok == MCP_TOK_STRING)
		mcp_scan_string(c);
	else
		mcp_scan_number(c);
	return 0;
}

/* A string's end within its next 8 bytes, all plain before it, in the step under way. */
static __always_inline void mcp_scan_string_tail(struct mcp_scan_ctx *c)
{
	__u32 pos = c->s->pos, k;
	__u64 v;

	if (c->s->status != MCP_SCAN_RUNNING || c->s->tok != MCP_TOK_STRING || pos + 8 > c->s->len)
		return;
	v = mcp_scan_load64(c->buf, pos & MCPF_SCAN_MASK);
	k = mcp_scan_plain_bytes(mcp_scan_special(v));
	if (k < 8 && mcp_scan_byte(c->buf, pos + k) == '"' && (!k || mcp_scan_emit8(c, v, k))) {
		c->s->pos = pos + k + 1;
		mcp_scan_string_done(c);
	}
}

/*
 * A step, then what compact JSON puts right after it: a string's end within its next 8 bytes;
 * up to two closes that end no message; after a value in an object, the ',' and the next key,
 * and its end within 8 bytes; once the value is whole, up to two bytes of whitespace and what
 * follows. A 200 B tools/call takes 10 steps (19 without it). Here, where the step's paths
 * have met, the verifier takes it at little cost: scan_test_xdp, 663k instructions verified with
 * all of it, 726k without (the closes alone inside mcp_scan_close cost 110k more).
 */
static __always_inline long mcp_scan_step_more(struct mcp_scan_ctx *c)
{
	__u32 pos, b;

	if (mcp_scan_step_body(c))
		return 1;
	mcp_scan_string_tail(c);
	for (int k = 0; k < 2; k++) {
		pos = c->s->pos;
		if (c->s->status != MCP_SCAN_RUNNING || c->s->tok != MCP_TOK_NONE ||
		    c->s->state != MCP_ST_NEXT || pos >= c->s->len)
			break;
		b = mcp_scan_byte(c->buf, pos);
		if (!((b == '}' && mcp_scan_top_is_object(c)) ||
		      (b == ']' && !mcp_scan_top_is_object(c))) ||
		    !mcp_scan_close_inner(c))
			break;
	}
	pos = c->s->pos;
	if (c->s->status == MCP_SCAN_RUNNING && c->s->tok == MCP_TOK_NONE &&
	    c->s->state == MCP_ST_NEXT && pos + 1 < c->s->len &&
	    mcp_scan_byte(c->buf, pos) == ',' && mcp_scan_byte(c->buf, pos + 1) == '"' &&
	    mcp_scan_top_is_object(c)) {
		/* after a value in an object, the ',' and the next key's quote, now */
		c->s->pos = pos + 1;
		c->s->state = MCP_ST_KEY;
		mcp_scan_start_key(c);
	}
	mcp_scan_string_tail(c);
	if (c->s->status == MCP_SCAN_RUNNING && c->s->state == MCP_ST_DONE) {
		/* the value is whole: up to two bytes of whitespace, and what follows, now */
		pos = c->s->pos;
		for (int k = 0; k < 2; k++)
			if (pos < c->s->len && mcp_scan_is_ws(mcp_scan_byte(c->buf, pos)))
				pos++;
		c->s->pos = pos;
		if (pos >= c->s->len) {
			c->s->status = MCPF_SCAN_OK;
			return 1;
		}
		if (mcp_scan_is_ws(mcp_scan_byte(c->buf, pos)))
			return 0;
		c->out->flags |= MCPF_SCAN_TRAILING;
		c->s->status = MCPF_SCAN_OK;
		return 1;
	}
	return 0;
}

#if defined(__bpf__) && (defined(MCP_SCAN_GLOBAL_STEP) || defined(MCP_SCAN_WANT_GLOBAL))
/*
 * With MCP_SCAN_GLOBAL_STEP defined before the include, one step is a global function: the
 * verifier checks it once, on its own, with buf and out as memory of their types' sizes, instead
 * of once per state the loop reaches, and once for all the call sites of mcp_scan() in a
 * program: 148k instructions verified instead of 195k per call site, for ~15% more time per
 * small message. The state it needs is in buf->scan_state. With MCP_SCAN_WANT_GLOBAL, the
 * inlined step stays for mcp_scan_from() and mcp_scan_from_global() uses the global one (a call
 * site deep in nested loops, where the inlined step's states would not fit the verifier).
 */
__attribute__((noinline)) int mcp_scan_step_global(struct mcpf_scan_buf *buf,
						   struct mcpf_scan_result *out)
{
	struct mcp_scan_ctx c;

	if (!buf || !out)
		return 1;
	c.buf = buf;
	c.out = out;
	c.s = (struct mcp_scan_st *)buf->scan_state;
	return mcp_scan_step_body(&c);
}

static long mcp_scan_step_g(__u64 index, void *arg)
{
	struct mcp_scan_ctx *c = arg;

	return mcp_scan_step_global(c->buf, c->out) ? 1 : 0;
}
#endif
#if defined(__bpf__) && defined(MCP_SCAN_GLOBAL_STEP)
#define mcp_scan_step mcp_scan_step_g
#else
static long mcp_scan_step(__u64 index, void *arg)
{
	return mcp_scan_step_more(arg);
}
#endif

static __always_inline int mcp_scan_from_with(struct mcpf_scan_buf *buf, __u32 start, __u32 len,
					      struct mcpf_scan_result *out,
					      long (*step)(__u64, void *))
{
	struct mcp_scan_ctx c = {};

	c.buf = buf;
	c.out = out;
	c.s = (struct mcp_scan_st *)buf->scan_state;
	mcpf_zero(buf->scan_state, sizeof(buf->scan_state));

	out->status = MCPF_SCAN_UNPARSED;
	out->ncalls = 0;
	out->end = 0;
	out->flags = 0;
	out->why = MCPF_WHY_NONE;
	if (len > MCPF_SCAN_BUF_MAX)
		len = MCPF_SCAN_BUF_MAX;
	if (start > len)
		start = len;
	c.s->len = len;
	c.s->pos = start;
	c.s->status = MCP_SCAN_RUNNING;
	/* every step but a number's last one moves by at least one byte */
	bpf_loop(2 * (len - start) + 2, step, &c, 0);
	if (c.s->status == MCP_SCAN_RUNNING)
		mcp_scan_fail(&c, MCPF_WHY_BOUND);
	out->status = c.s->status;
	out->why = c.s->status == MCPF_SCAN_UNPARSED ? c.s->why : MCPF_WHY_NONE;
	if (c.s->status != MCPF_SCAN_OK) {
		out->ncalls = 0;
		out->end = c.s->pos;
	}
	return c.s->status;
}

static __always_inline int mcp_scan_from(struct mcpf_scan_buf *buf, __u32 start, __u32 len,
					 struct mcpf_scan_result *out)
{
	return mcp_scan_from_with(buf, start, len, out, mcp_scan_step);
}

#if defined(__bpf__) && defined(MCP_SCAN_WANT_GLOBAL)
static __always_inline int mcp_scan_from_global(struct mcpf_scan_buf *buf, __u32 start, __u32 len,
						struct mcpf_scan_result *out)
{
	return mcp_scan_from_with(buf, start, len, out, mcp_scan_step_g);
}
#endif

static __always_inline int mcp_scan(struct mcpf_scan_buf *buf, __u32 len,
				    struct mcpf_scan_result *out)
{
	return mcp_scan_from(buf, 0, len, out);
}

#endif
