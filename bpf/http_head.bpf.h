/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * http_head: the HTTP/1.1 request head parser of the TCP hook (bpf/tcp.bpf.c), on its own so
 * that userspace tests and a fuzzer run the same code (tests/unit/test_http_head.c,
 * tests/fuzz/fuzz_head.c, against a byte-at-a-time reference in tests/unit/head_ref.h).
 *
 *   static __always_inline void http_head_parse(const struct mcpf_scan_buf *buf, __u32 n,
 *                                               struct http_head *h);
 *
 * Reads buf->data[0..n) (n <= MCPF_TCP_HDR_MAX): h->hc.error when the head holds anything a
 * server might read otherwise than this parser does (strict: a bare LF, a CR without LF, a
 * control byte, DEL, a name byte that is not a tchar, obs-fold, a space before the colon, an
 * empty name, a request line not starting with an upper-case letter, a second Content-Length,
 * Transfer-Encoding, Content-Encoding, Mcp-Method, Mcp-Name or Mcp-Session-Id, a Content-Length
 * that is not digits and whitespace); else h->hc.end, the offset past the blank line, or 0 when
 * the head is not whole yet. Then h->hc.cl, h->hc.seen (bit per enum hdr_id) and the values of
 * Mcp-Method and Mcp-Name (trailing whitespace cut, NUL-padded; one of MCPF_METHOD_MAX or
 * MCPF_NAME_MAX bytes or more, such as a long resource URI, keeps its first bytes and its whole
 * length, untrimmed, so that it equals no method or name a body holds: the body is refused if
 * it says one, not the connection) and Mcp-Session-Id (first MCPF_TCP_SESSION_MAX - 1 bytes).
 *
 * How: one bpf_loop over steps; a step reads a run of up to 8 plain bytes (of the request line,
 * a name or a value, classified 8 at a time with SWAR arithmetic) and the byte after it, or a
 * line end; a name's colon goes on into its value, and the request line and the values nobody
 * keeps go HDR_RUN words at a time: 11 steps for the 137-byte head of bench/kernel, about 170 ns
 * in the send path on 6.18.
 */
#ifndef MCPFENCE_HTTP_HEAD_BPF_H
#define MCPFENCE_HTTP_HEAD_BPF_H

#include "mcpfence.h"
#include "mcp_scan.bpf.h"

enum hdr_id {
	HDR_OTHER = 0,
	HDR_CONTENT_LENGTH = 1,
	HDR_TRANSFER_ENCODING = 2,
	HDR_CONTENT_ENCODING = 3,
	HDR_MCP_METHOD = 4,
	HDR_MCP_NAME = 5,
	HDR_MCP_SESSION = 6,
	HDR_CONTENT_TYPE = 7,
};

enum hdr_state {
	HS_REQLINE = 0,
	HS_NAME_START = 1,
	HS_NAME = 2,
	HS_OWS = 3,
	HS_VALUE = 4,
};

struct hdr_ctx {
	__u32 n;     /* bytes available */
	__u32 pos;   /* next byte to read */
	__u32 state; /* enum hdr_state */
	__u32 hid;   /* header being read */
	__u32 nlen;  /* length of the name so far */
	__u32 vlen;  /* length of the value so far */
	__u32 end;   /* offset past the blank line, once found */
	__u64 cl;
	__u32 seen; /* bit per hdr_id */
	__u32 error;
	__u32 cl_done; /* whitespace after the digits */
};

#define HDR_CTYPE_MAX 48

struct http_head {
	struct hdr_ctx hc;
	char hname[40]; /* a name's first 24 bytes, lowered; 8-byte stores from up to 23 */
	char h_method[MCPF_METHOD_MAX];
	char h_name[MCPF_NAME_MAX];
	char h_session[MCPF_TCP_SESSION_MAX];
	__u32 h_method_len;
	__u32 h_name_len;
	__u32 h_session_len;
	__u32 h_method_off; /* where the Mcp-Method's value starts in the head */
	__u32 h_ctype_off;  /* where the Content-Type's value starts in the head */
	__u32 h_ctype_len;  /* its length (trailing whitespace included); HDR_CTYPE_MAX at most */
};

#define W8(a, b, c, d, e, f, g, h)                                                               \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 | (__u64)(e) << 32 | \
	 (__u64)(f) << 40 | (__u64)(g) << 48 | (__u64)(h) << 56)

static __always_inline __u32 hdr_identify(struct http_head *h, __u32 nlen)
{
	__u64 a = mcpf_load64(&h->hname[0]), b = mcpf_load64(&h->hname[8]);
	__u64 c = mcpf_load64(&h->hname[16]);

	if (nlen == 14 && a == W8('c', 'o', 'n', 't', 'e', 'n', 't', '-') &&
	    b == W8('l', 'e', 'n', 'g', 't', 'h', 0, 0))
		return HDR_CONTENT_LENGTH;
	if (nlen == 17 && a == W8('t', 'r', 'a', 'n', 's', 'f', 'e', 'r') &&
	    b == W8('-', 'e', 'n', 'c', 'o', 'd', 'i', 'n') && c == 'g')
		return HDR_TRANSFER_ENCODING;
	if (nlen == 16 && a == W8('c', 'o', 'n', 't', 'e', 'n', 't', '-') &&
	    b == W8('e', 'n', 'c', 'o', 'd', 'i', 'n', 'g'))
		return HDR_CONTENT_ENCODING;
	if (nlen == 10 && a == W8('m', 'c', 'p', '-', 'm', 'e', 't', 'h') &&
	    b == W8('o', 'd', 0, 0, 0, 0, 0, 0))
		return HDR_MCP_METHOD;
	if (nlen == 8 && a == W8('m', 'c', 'p', '-', 'n', 'a', 'm', 'e'))
		return HDR_MCP_NAME;
	if (nlen == 14 && a == W8('m', 'c', 'p', '-', 's', 'e', 's', 's') &&
	    b == W8('i', 'o', 'n', '-', 'i', 'd', 0, 0))
		return HDR_MCP_SESSION;
	if (nlen == 12 && a == W8('c', 'o', 'n', 't', 'e', 'n', 't', '-') &&
	    b == W8('t', 'y', 'p', 'e', 0, 0, 0, 0))
		return HDR_CONTENT_TYPE;
	return HDR_OTHER;
}

static __always_inline bool is_tchar(char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '!':
	case '#':
	case '$':
	case '%':
	case '&':
	case '\'':
	case '*':
	case '+':
	case '-':
	case '.':
	case '^':
	case '_':
	case '`':
	case '|':
	case '~':
		return true;
	}
	return false;
}

static __always_inline void hdr_value_byte(struct http_head *h, struct hdr_ctx *c, char ch)
{
	__u32 v = c->vlen;

	switch (c->hid) {
	case HDR_CONTENT_LENGTH:
		if (ch >= '0' && ch <= '9' && !c->cl_done) {
			c->cl = c->cl * 10 + (ch - '0');
			if (c->cl > 0x7fffffff)
				c->error = 1;
		} else if (ch == ' ' || ch == '\t') {
			c->cl_done = 1;
		} else {
			c->error = 1;
		}
		break;
	case HDR_MCP_METHOD:
		/* MCPF_METHOD_MAX is not a power of two: bound, not mask */
		if (v < MCPF_METHOD_MAX - 1)
			h->h_method[v] = ch;
		break;
	case HDR_MCP_NAME:
		/* longer (a resource's URI): its first bytes kept, its length says it is longer */
		if (v < MCPF_NAME_MAX - 1)
			h->h_name[v & (MCPF_NAME_MAX - 1)] = ch;
		break;
	case HDR_MCP_SESSION:
		if (v < MCPF_TCP_SESSION_MAX - 1)
			h->h_session[v & (MCPF_TCP_SESSION_MAX - 1)] = ch;
		break;
	}
	c->vlen = v + 1;
}

/* The length of the value s[0..v) less up to 4 bytes of trailing whitespace, which it clears. */
static __always_inline __u32 hdr_trim(char *s, __u32 v, __u32 max)
{
	for (int i = 0; i < 4; i++) {
		/* bounded as 64 bits: the verifier of 6.1 lost the bound of a 32-bit v - 1 */
		__u64 k = v;

		barrier_var(k);
		if (k == 0 || k >= max)
			break;
		k--;
		if (s[k] != ' ' && s[k] != '\t')
			break;
		s[k] = 0;
		v--;
	}
	return v;
}

static __always_inline void hdr_value_end(struct http_head *h, struct hdr_ctx *c)
{
	__u32 v = c->vlen;

	/* trailing whitespace is not part of a value */
	switch (c->hid) {
	case HDR_MCP_METHOD:
		h->h_method_len = hdr_trim(h->h_method, v, MCPF_METHOD_MAX);
		break;
	case HDR_MCP_NAME:
		h->h_name_len = hdr_trim(h->h_name, v, MCPF_NAME_MAX);
		break;
	case HDR_MCP_SESSION:
		h->h_session_len = v < MCPF_TCP_SESSION_MAX ? v : MCPF_TCP_SESSION_MAX - 1;
		break;
	case HDR_CONTENT_TYPE:
		h->h_ctype_len = v < HDR_CTYPE_MAX ? v : HDR_CTYPE_MAX; /* read in place later */
		break;
	case HDR_CONTENT_LENGTH:
		if (!v)
			c->error = 1;
		break;
	}
}

/*
 * Byte classes, 8 bytes at a time (first byte lowest). Each byte is tested on its own low 7
 * bits, so no carry crosses bytes and every flag (0x80 of its byte) is exact.
 */
#define HB_ONES 0x0101010101010101ULL
#define HB_HIGHS 0x8080808080808080ULL
#define HB_LOWS 0x7f7f7f7f7f7f7f7fULL
#define hb_ge(y, lo) (((y) + HB_ONES * (0x80 - (lo))) & HB_HIGHS)
#define hb_gt(y, hi) (((y) + HB_ONES * (0x7f - (hi))) & HB_HIGHS)
#define hb_eq(y, c) (~((((y) ^ HB_ONES * (c)) + HB_LOWS) | ((y) ^ HB_ONES * (c))) & HB_HIGHS)

/* Bytes a header value may not hold: control bytes (HTAB too: it takes the slow way) and DEL. */
static __always_inline __u64 hb_value_special(__u64 v)
{
	__u64 y = v & HB_LOWS, ascii = ~v & HB_HIGHS;

	return ((~hb_ge(y, 0x20) | hb_eq(y, 0x7f)) & ascii);
}

/*
 * Bytes of a header name other than [A-Za-z0-9-] (the other tchars take the slow way); in
 * *letters, the flags of the letters, for lowering them.
 */
static __always_inline __u64 hb_name_special(__u64 v, __u64 *letters)
{
	__u64 y = v & HB_LOWS, ascii = ~v & HB_HIGHS, l = y | HB_ONES * 0x20;
	__u64 letter = hb_ge(l, 'a') & ~hb_gt(l, 'z') & ascii;
	__u64 plain = letter | (hb_ge(y, '0') & ~hb_gt(y, '9') & ascii) | (hb_eq(y, '-') & ascii);

	*letters = letter;
	return ~plain & HB_HIGHS;
}

/* Where a value's plain bytes are kept (Mcp-Method, Mcp-Name, Mcp-Session-Id), if anywhere. */
static __always_inline bool hdr_value_copy8(struct http_head *h, struct hdr_ctx *c, __u64 v,
					    __u32 k)
{
	__u32 i = c->vlen;

	v = mcp_scan_low_bytes(v, k);
	barrier_var(i);
	switch (c->hid) {
	case HDR_OTHER:
	case HDR_TRANSFER_ENCODING:
	case HDR_CONTENT_ENCODING:
	case HDR_CONTENT_TYPE:
		break;
	case HDR_MCP_METHOD:
		if (i > MCPF_METHOD_MAX - 9)
			return false;
		mcpf_store64(&h->h_method[i], v);
		break;
	case HDR_MCP_NAME:
		if (i > MCPF_NAME_MAX - 9)
			return false;
		mcpf_store64(&h->h_name[i], v);
		break;
	case HDR_MCP_SESSION:
		if (i > MCPF_TCP_SESSION_MAX - 9)
			return false;
		mcpf_store64(&h->h_session[i], v);
		break;
	default:
		return false; /* Content-Length: digit by digit */
	}
	c->vlen += k;
	return true;
}

/* Words of 8 plain bytes one step skips in the request line or a value nobody keeps. */
#define HDR_RUN 8

struct hdr_loop {
	const struct mcpf_scan_buf *buf;
	struct http_head *h;
};

static __always_inline __u32 hdr_at(const struct mcpf_scan_buf *buf, __u32 i)
{
	barrier_var(i);
	return buf->data[i & (MCPF_TCP_HDR_MAX - 1)];
}

/* "\r\n" at pos: 1; a CR not followed by LF: an error; the LF not here yet: 0. */
static __always_inline int hdr_crlf(const struct mcpf_scan_buf *buf, struct hdr_ctx *c, __u32 pos)
{
	if (pos + 1 >= c->n)
		return 0;
	if (hdr_at(buf, pos + 1) != '\n') {
		c->error = 1;
		return -1;
	}
	return 1;
}

/*
 * One step of the request head: a run of up to 8 plain bytes (of the request line, a name or a
 * value) and the byte after it, or one line end. Strict: anything a server might read otherwise
 * is an error (a bare LF, a CR without LF, a control byte, a byte that is not a tchar in a name,
 * obs-fold, a space before the colon, an empty name). The bytes run out: the head is not whole.
 */
static long hdr_step(__u64 i, void *arg)
{
	struct hdr_loop *hl = arg;
	const struct mcpf_scan_buf *buf = hl->buf;
	struct http_head *h = hl->h;
	struct hdr_ctx *c = &h->hc;
	__u32 pos = c->pos, n = c->n, ch, k;
	__u64 v, letters;
	int r;

	if (pos >= n || n > MCPF_TCP_HDR_MAX)
		return 1;
	switch (c->state) {
	case HS_REQLINE:
		if (pos == 0) {
			ch = hdr_at(buf, 0);
			if (!(ch >= 'A' && ch <= 'Z')) {
				c->error = 1;
				return 1;
			}
		}
		goto value;
	case HS_NAME_START:
		if (hdr_at(buf, pos) == '\r') {
			r = hdr_crlf(buf, c, pos);
			if (r > 0)
				c->end = pos + 2;
			return 1;
		}
		c->nlen = 0;
		c->vlen = 0;
		c->cl_done = 0;
		mcpf_store64(&h->hname[0], 0);
		mcpf_store64(&h->hname[8], 0);
		mcpf_store64(&h->hname[16], 0);
		mcpf_store64(&h->hname[24], 0);
		c->state = HS_NAME;
		/* fall through */
	case HS_NAME:
		if (pos + 8 <= n) {
			v = mcp_scan_load64(buf, pos & (MCPF_TCP_HDR_MAX - 1));
			k = mcp_scan_plain_bytes(hb_name_special(v, &letters));
			if (k) {
				v = mcp_scan_low_bytes(v | letters >> 2, k);
				if (c->nlen < 24)
					mcpf_store64(&h->hname[c->nlen & 31], v);
				c->nlen += k;
				pos += k;
				c->pos = pos;
				if (k == 8 || pos >= n)
					return 0;
			}
		}
		ch = hdr_at(buf, pos);
		if (ch == ':') {
			__u32 bit;

			if (!c->nlen) {
				c->error = 1;
				return 1;
			}
			c->hid = c->nlen <= 24 ? hdr_identify(h, c->nlen) : HDR_OTHER;
			bit = 1u << c->hid;
			if (c->hid != HDR_OTHER && (c->seen & bit)) {
				c->error = 1; /* a repeated header that matters */
				return 1;
			}
			c->seen |= bit;
			c->state = HS_OWS;
			c->pos = ++pos;
			if (pos >= n)
				return 0;
			goto ows; /* the value starts in the same step */
		}
		if (!is_tchar(ch)) {
			c->error = 1; /* includes obs-fold and a space before the colon */
			return 1;
		}
		if (c->nlen < 24)
			h->hname[c->nlen & 31] = (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
		c->nlen++;
		c->pos = pos + 1;
		return 0;
	case HS_OWS:
ows:
		for (k = 0; k < 8; k++) {
			ch = hdr_at(buf, pos);
			if (ch != ' ' && ch != '\t')
				break;
			pos++;
			if (pos >= n) {
				c->pos = pos;
				return 0;
			}
		}
		c->pos = pos;
		if (ch == ' ' || ch == '\t')
			return 0;
		c->state = HS_VALUE;
		if (c->hid == HDR_CONTENT_TYPE)
			h->h_ctype_off = pos; /* its bytes are read where they are */
		else if (c->hid == HDR_MCP_METHOD)
			h->h_method_off = pos; /* rewritten there when the call is denied */
					       /* fall through */
	case HS_VALUE:
value:
		/* the request line, or a value nobody keeps: whole runs of 8 plain bytes at once */
		if (c->state == HS_REQLINE || c->hid == HDR_OTHER || c->hid == HDR_CONTENT_TYPE) {
			for (k = 0; k < HDR_RUN; k++) {
				if (pos + 8 > n || hb_value_special(mcp_scan_load64(
							   buf, pos & (MCPF_TCP_HDR_MAX - 1))))
					break;
				pos += 8;
			}
			if (c->state == HS_VALUE)
				c->vlen += pos - c->pos;
			c->pos = pos;
		}
		if (pos + 8 <= n) {
			v = mcp_scan_load64(buf, pos & (MCPF_TCP_HDR_MAX - 1));
			k = mcp_scan_plain_bytes(hb_value_special(v));
			if (k && (c->state == HS_REQLINE || hdr_value_copy8(h, c, v, k))) {
				pos += k;
				c->pos = pos;
				if (k == 8 || pos >= n)
					return 0;
			}
		}
		ch = hdr_at(buf, pos);
		if (ch == '\r') {
			r = hdr_crlf(buf, c, pos);
			if (r <= 0)
				return 1;
			if (c->state == HS_VALUE)
				hdr_value_end(h, c);
			c->state = HS_NAME_START;
			c->pos = pos + 2;
			return c->error ? 1 : 0;
		}
		if ((ch < 0x20 && (ch != '\t' || c->state != HS_VALUE)) || ch == 0x7f) {
			c->error = 1;
			return 1;
		}
		if (c->state == HS_VALUE)
			hdr_value_byte(h, c, ch);
		c->pos = pos + 1;
		return c->error ? 1 : 0;
	}
	c->error = 1;
	return 1;
}

static __always_inline void http_head_parse(const struct mcpf_scan_buf *buf, __u32 n,
					    struct http_head *h)
{
	struct hdr_loop hl = { .buf = buf, .h = h };

	h->h_method_len = 0;
	h->h_name_len = 0;
	h->h_session_len = 0;
	h->h_ctype_off = 0;
	h->h_method_off = 0;
	h->h_ctype_len = 0;
	mcpf_zero(h->h_method, sizeof(h->h_method));
	mcpf_zero(h->h_name, sizeof(h->h_name));
	mcpf_zero(h->h_session, sizeof(h->h_session));
	__builtin_memset(&h->hc, 0, sizeof(h->hc));
	h->hc.n = n;
	bpf_loop(MCPF_TCP_HDR_MAX, hdr_step, &hl, 0);
}

/*
 * Can the body of a request with this head be read as the server will read it: UTF-8 JSON?
 * MCPF_WHY_NONE, or why not. A server decodes the body by its Content-Type's charset
 * (body-parser, and the TypeScript SDK's own HTTP transports, through iconv-lite: UTF-7
 * included, where "tools+AC8-call" is tools/call), or by none (Go, Python: UTF-8). So the
 * Content-Type is absent, or application/json with no parameter but a charset of utf-8, as
 * the SDKs send it: "application/json", "application/json; charset=utf-8" (any case, with or
 * without the space, the value quoted or not). Anything else is not read: another media type
 * or parameter, another charset, a value of HDR_CTYPE_MAX bytes or more. A Content-Encoding is
 * not read either.
 */
/* The k (1..8) bytes of the head at o, each byte's 0x20 bit set (a letter lowered). */
static __always_inline __u64 hdr_word_lowered(const struct mcpf_scan_buf *buf, __u32 o, __u32 k)
{
	__u64 w = mcp_scan_load64(buf, o & (MCPF_TCP_HDR_MAX - 1));

	return mcp_scan_low_bytes(w | HB_ONES * 0x20, k);
}

static __always_inline __u32 http_head_body_why(const struct http_head *h,
						const struct mcpf_scan_buf *buf)
{
	__u32 o = h->h_ctype_off, n = h->h_ctype_len, p;

	if (h->hc.seen & (1u << HDR_CONTENT_ENCODING))
		return MCPF_WHY_ENCODING;
	if (!(h->hc.seen & (1u << HDR_CONTENT_TYPE)))
		return MCPF_WHY_NONE;
	if (n >= HDR_CTYPE_MAX || o > MCPF_TCP_HDR_MAX)
		return MCPF_WHY_MEDIA_TYPE;
	/* trailing whitespace is not part of the value (up to 4 bytes, as for other values) */
	for (int i = 0; i < 4; i++) {
		__u32 b;

		if (!n)
			break;
		b = hdr_at(buf, o + n - 1);
		if (b != ' ' && b != '\t')
			break;
		n--;
	}
	/*
	 * Compared with each byte's 0x20 bit set: that lowers letters and changes none of the
	 * other bytes of the forms taken ('/', ';', ' ', '=', '-', '"', digits), and the bytes it
	 * would turn into one of them are control bytes, which a value never holds (a tab turns
	 * into ')', which no form holds).
	 */
	if (n < 16 || hdr_word_lowered(buf, o, 8) != W8('a', 'p', 'p', 'l', 'i', 'c', 'a', 't') ||
	    hdr_word_lowered(buf, o + 8, 8) != W8('i', 'o', 'n', '/', 'j', 's', 'o', 'n'))
		return MCPF_WHY_MEDIA_TYPE;
	if (n == 16)
		return MCPF_WHY_NONE;
	/* ";charset=" or "; charset=", then utf-8 or "utf-8" */
	if (n >= 25 &&
	    hdr_word_lowered(buf, o + 16, 8) == W8(';', 'c', 'h', 'a', 'r', 's', 'e', 't') &&
	    hdr_word_lowered(buf, o + 24, 1) == '=')
		p = 24;
	else if (n >= 26 &&
		 hdr_word_lowered(buf, o + 16, 8) == W8(';', ' ', 'c', 'h', 'a', 'r', 's', 'e') &&
		 hdr_word_lowered(buf, o + 24, 2) == W8('t', '=', 0, 0, 0, 0, 0, 0))
		p = 25;
	else
		return MCPF_WHY_MEDIA_TYPE;
	if ((n == p + 6 &&
	     hdr_word_lowered(buf, o + p, 6) == W8('=', 'u', 't', 'f', '-', '8', 0, 0)) ||
	    (n == p + 8 &&
	     hdr_word_lowered(buf, o + p, 8) == W8('=', '"', 'u', 't', 'f', '-', '8', '"')))
		return MCPF_WHY_NONE;
	return MCPF_WHY_CHARSET;
}

/*
 * Do the Mcp-Method and Mcp-Name headers (2026-07-28) agree with the body's message (res, read
 * OK)? Absent, they agree; present, the body is one message, not a batch, and says the same
 * (Mcp-Name as it is, or base64 in its "=?base64?…?=" form).
 */
/* A base64 character's 6 bits, 64 for '=', 65 for any other byte. */
static __always_inline __u32 hdr_b64_bits(__u8 ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '/')
		return ch == '+' ? 62 : 63;
	return ch == '=' ? 64 : 65;
}

#define HDR_B64_GROUPS ((MCPF_NAME_MAX - 12) / 4) /* of an Mcp-Name kept whole */

struct hdr_b64 {
	const struct http_head *h;
	const struct mcpf_call *c;
	__u32 groups; /* of 4 characters */
	__u32 out;    /* bytes of the name matched */
	__u32 bad;
};

/* One group of 4 characters, 3 bytes of the name (fewer in a last group with padding). */
static long hdr_b64_step(__u64 g, void *arg)
{
	struct hdr_b64 *b = arg;
	const struct http_head *h = b->h;
	const struct mcpf_call *c = b->c;
	__u32 i = 9 + 4 * (__u32)g, b0, b1, b2, b3, v, out = b->out;

	if (g >= b->groups)
		return 1;
	b0 = hdr_b64_bits(h->h_name[i & (MCPF_NAME_MAX - 1)]);
	b1 = hdr_b64_bits(h->h_name[(i + 1) & (MCPF_NAME_MAX - 1)]);
	b2 = hdr_b64_bits(h->h_name[(i + 2) & (MCPF_NAME_MAX - 1)]);
	b3 = hdr_b64_bits(h->h_name[(i + 3) & (MCPF_NAME_MAX - 1)]);
	if (b0 > 63 || b1 > 63 || b2 > 64 || b3 > 64 || (b2 == 64 && b3 != 64) ||
	    (b3 == 64 && g + 1 != b->groups) || out > MCPF_NAME_MAX - 4)
		goto bad;
	v = b0 << 18 | b1 << 12 | (b2 & 63) << 6 | (b3 & 63);
	if (c->name[out & (MCPF_NAME_MAX - 1)] != (char)(v >> 16))
		goto bad;
	if (b2 != 64 && c->name[(out + 1) & (MCPF_NAME_MAX - 1)] != (char)(v >> 8))
		goto bad;
	if (b3 != 64 && c->name[(out + 2) & (MCPF_NAME_MAX - 1)] != (char)v)
		goto bad;
	b->out = out + 3 - (b2 == 64) - (b3 == 64);
	return 0;
bad:
	b->bad = 1;
	return 1;
}

/*
 * Is Mcp-Name "=?base64?" B64 "?=" with B64 the name c says? A 2026-07-28 client sends a value
 * with a byte past printable ASCII, surrounding whitespace, or that form itself so (the
 * TypeScript SDK's encodeMcpParamValue), and servers decode it before comparing. The bits past
 * the last byte are not checked. A bpf_loop: the verifier reads the step once.
 */
static __always_inline bool hdr_b64_name_is(const struct http_head *h, const struct mcpf_call *c)
{
	struct hdr_b64 b = { .h = h, .c = c };
	__u32 n = h->h_name_len;

	if (n < 15 || n > MCPF_NAME_MAX - 1 || (n - 11) % 4 ||
	    mcpf_load64(&h->h_name[0]) != W8('=', '?', 'b', 'a', 's', 'e', '6', '4') ||
	    h->h_name[8] != '?' || h->h_name[(n - 2) & (MCPF_NAME_MAX - 1)] != '?' ||
	    h->h_name[(n - 1) & (MCPF_NAME_MAX - 1)] != '=')
		return false;
	b.groups = (n - 11) / 4;
	bpf_loop(HDR_B64_GROUPS, hdr_b64_step, &b, 0);
	return !b.bad && b.out == c->name_len;
}

static __always_inline bool http_head_agrees(const struct http_head *h,
					     const struct mcpf_scan_result *res)
{
	const struct mcpf_call *c = &res->calls[0];
	int tools_call;

	if (!h->h_method_len && !h->h_name_len)
		return true;
	if ((res->flags & MCPF_SCAN_BATCH) || res->ncalls != 1)
		return false;
	if (h->h_method_len) {
		if (!(c->flags & MCPF_CALL_HAS_METHOD) || c->method_len != h->h_method_len)
			return false;
		for (int i = 0; i < MCPF_METHOD_MAX; i += 8)
			if (mcpf_load64(&c->method[i]) != mcpf_load64(&h->h_method[i]))
				return false;
	}
	/*
	 * Mcp-Name is the tool (or prompt) name, or a resource's URI, which is not read here:
	 * without a name in the body it is compared only for tools/call, the one method decided.
	 */
	tools_call = (c->flags & MCPF_CALL_HAS_METHOD) && c->method_len == 10 &&
		     mcpf_load64(&c->method[0]) == W8('t', 'o', 'o', 'l', 's', '/', 'c', 'a') &&
		     c->method[8] == 'l' && c->method[9] == 'l';
	if (h->h_name_len && !(c->flags & MCPF_CALL_HAS_NAME) && !tools_call)
		return true;
	if (h->h_name_len) {
		if (!(c->flags & MCPF_CALL_HAS_NAME))
			return false;
		if (hdr_b64_name_is(h, c))
			return true;
		if (c->name_len != h->h_name_len)
			return false;
		for (int i = 0; i < MCPF_NAME_MAX; i += 8)
			if (mcpf_load64(&c->name[i]) != mcpf_load64(&h->h_name[i]))
				return false;
	}
	return true;
}

/*
 * What the kernel plane makes of the body of one request, scanned whole into res (mcp_scan_from
 * on exactly its bytes) after its head h was read: MCPF_WHY_NONE when each tools/call in
 * res->calls is to be decided, else why the body is refused: not read with certainty (res->why,
 * or MCPF_WHY_INCOMPLETE when the value never ended), bytes after the value (JSON.parse refuses
 * them: one value is the whole body), or Mcp-Method/Mcp-Name headers that say otherwise. One
 * function for the TCP hook (bpf/tcp.bpf.c body_handle) and the tests that show what it decides.
 */
static __always_inline __u32 http_body_why(const struct http_head *h,
					   const struct mcpf_scan_result *res)
{
	if (res->status == MCPF_SCAN_INCOMPLETE)
		return MCPF_WHY_INCOMPLETE;
	if (res->status != MCPF_SCAN_OK)
		return res->why ? res->why : MCPF_WHY_JSON;
	if (res->flags & MCPF_SCAN_TRAILING)
		return MCPF_WHY_TRAILING;
	if (!http_head_agrees(h, res))
		return MCPF_WHY_HEADERS;
	return MCPF_WHY_NONE;
}

#endif
