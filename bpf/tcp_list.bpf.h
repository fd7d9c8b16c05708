/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcp_list: tools/list answers filtered in the kernel, as `run` filters them (stdio_gateway__
 * filter_tools): a tool the policy hides or denies by name is taken out of result.tools.
 *
 * A connection whose client sent tools/list counts it (mcpf_conn.list); while the count is not 0
 * the server's sends on it are walked as JSON, byte by byte, and every whole message with a
 * result.tools array, as a JSON body or an SSE event, is an answer: it takes one off the count.
 * (Answers come on the request's own connection, in order; pipelined requests, a list after a
 * call, or an error for a list only cost more walks.) Each object of result.tools is recorded
 * with its "name" (the last one: JSON.parse keeps the last of a duplicated key); then each is
 * decided (listable) and the denied ones are overwritten with spaces, with one comma: the one
 * before it when a tool before it in the array is kept, else the one after it. The send keeps
 * its length, so Content-Length and chunk sizes stay right. When a tool was taken out, the
 * result's ttlMs (2026-07-28) becomes 0, same length, so that a client caches no view of the
 * list that another policy's clients might be served (cacheScope cannot change length).
 *
 * Fail safe, not closed: the answer passes as the server wrote it, counted
 * (MCPF_CNT_LIST_UNFILTERED), when it is not whole in one send of at most 64 KiB, or when the
 * send holds a value that is not compact JSON (a raw newline outside strings could be a chunk
 * boundary or an SSE line inside the value, which blanking would break), nests deeper than 63,
 * has more than MCPF_LIST_MAX_TOOLS tools, a tool that is not an object, or an escaped key
 * where a key matters. A listed tool that the policy denies is still denied when it is called.
 * A tool whose name cannot be read (none, or one with escapes) is taken out.
 */
#ifndef MCPFENCE_TCP_LIST_BPF_H
#define MCPFENCE_TCP_LIST_BPF_H

#define LIST_WALK_MAX MCPF_SCAN_BUF_MAX

/*
 * The value being walked cannot be read: nothing after it can be told apart from what went
 * before with certainty, so the walk ends and the send passes as it is.
 */
static __always_inline void walk_bad(struct list_walk *lw)
{
	lw->unfiltered = 1;
	lw->done = 1;
}

static __always_inline __u32 key_of(const struct mcpf_scan_buf *buf, __u32 start, __u32 len)
{
	__u64 k = mcpf_load64(&buf->data[start & (LIST_WALK_MAX - 1)]);

	if (len == 6 && (k & 0xffffffffffffULL) == W8('r', 'e', 's', 'u', 'l', 't', 0, 0))
		return LK_RESULT;
	if (len == 5 && (k & 0xffffffffffULL) == W8('t', 'o', 'o', 'l', 's', 0, 0, 0))
		return LK_TOOLS;
	if (len == 5 && (k & 0xffffffffffULL) == W8('t', 't', 'l', 'M', 's', 0, 0, 0))
		return LK_TTL;
	if (len == 4 && (k & 0xffffffffULL) == W8('n', 'a', 'm', 'e', 0, 0, 0, 0))
		return LK_NAME;
	return LK_OTHER;
}

/* A string ended at pos: a key, or a value (a tool's name). 1: the value cannot be read. */
static __always_inline int string_end(const struct mcpf_scan_buf *buf, struct list_walk *lw,
				      __u32 pos)
{
	__u32 start = lw->str_start + 1, len = pos - lw->str_start - 1, d = lw->depth;
	bool key = lw->expect_key && d < 64 && ((lw->objects >> d) & 1);

	if (!key) {
		if (lw->key == LK_NAME && lw->tools && d == lw->tools + 1) {
			lw->name_off = start;
			lw->name_len = len;
			lw->name_flags = lw->str_esc ? LT_NONAME : 0;
		}
		lw->key = LK_OTHER;
		return 0;
	}
	/* keys that matter, where they matter; an escaped one there could read as one of them */
	if (d == lw->base || (lw->result && d == lw->result) || (lw->tools && d == lw->tools + 1)) {
		if (lw->str_esc)
			return 1;
		lw->key = key_of(buf, start, len);
		if ((lw->key == LK_RESULT && d != lw->base) ||
		    ((lw->key == LK_TOOLS || lw->key == LK_TTL) && d != lw->result) ||
		    (lw->key == LK_NAME && !(lw->tools && d == lw->tools + 1)))
			lw->key = LK_OTHER;
	} else {
		lw->key = LK_OTHER;
	}
	return 0;
}

/* '{' or '[' at pos, outside strings. 1: the value cannot be read. */
static __always_inline int open_at(struct list_walk *lw, __u32 pos, __u8 c)
{
	__u32 d = lw->depth;

	if (d >= 63)
		return 1;
	if (lw->tools && d == lw->tools) {
		if (c != '{')
			return 1; /* a tool that is not an object */
		lw->el_start = pos;
		lw->name_len = 0;
		lw->name_flags = LT_NONAME;
	} else if (c == '{' && d == lw->base && lw->key == LK_RESULT) {
		lw->result = d + 1;
		lw->ttl_start = 0;
		lw->ttl_end = 0;
	} else if (c == '[' && lw->result && d == lw->result && lw->key == LK_TOOLS) {
		lw->tools = d + 1;
		lw->first = 1;
		lw->seen_tools = 1;
	}
	lw->depth = d + 1;
	if (c == '{')
		lw->objects |= 1ULL << (d + 1);
	else
		lw->objects &= ~(1ULL << (d + 1));
	lw->expect_key = c == '{';
	lw->key = LK_OTHER;
	return 0;
}

/* '}' or ']' at pos, outside strings. 1: the value cannot be read. */
static __always_inline int close_at(struct list_walk *lw, __u32 pos, __u8 c)
{
	__u32 d = lw->depth, n = lw->ntools;

	if (!d || d >= 64 || ((lw->objects >> d) & 1) != (c == '}'))
		return 1;
	if (lw->tools && d == lw->tools + 1) {
		if (n >= MCPF_LIST_MAX_TOOLS)
			return 1;
		lw->t_start[n & (MCPF_LIST_MAX_TOOLS - 1)] = lw->el_start;
		lw->t_end[n & (MCPF_LIST_MAX_TOOLS - 1)] = pos + 1;
		lw->t_comma[n & (MCPF_LIST_MAX_TOOLS - 1)] = 0;
		lw->t_name[n & (MCPF_LIST_MAX_TOOLS - 1)] = lw->name_off;
		lw->t_len[n & (MCPF_LIST_MAX_TOOLS - 1)] = lw->name_len;
		lw->t_flags[n & (MCPF_LIST_MAX_TOOLS - 1)] =
			lw->name_flags | (lw->first ? LT_FIRST : 0);
		lw->first = 0;
		lw->ntools = n + 1;
	}
	if (d == lw->tools)
		lw->tools = 0;
	if (d == lw->result) {
		/* its ttlMs, if some tool is taken out (a result with none only caches less) */
		if (lw->ttl_end && lw->nttl < MCPF_LIST_MAX_TTL) {
			lw->ttl_s[lw->nttl & (MCPF_LIST_MAX_TTL - 1)] = lw->ttl_start;
			lw->ttl_e[lw->nttl & (MCPF_LIST_MAX_TTL - 1)] = lw->ttl_end;
			lw->nttl++;
		}
		lw->result = 0;
	}
	lw->depth = d - 1;
	lw->expect_key = 0;
	lw->key = LK_OTHER;
	if (d == 1 && lw->seen_tools) { /* a whole answer */
		lw->ntools_done = lw->ntools;
		lw->answers++;
	}
	return 0;
}

/* Bytes that compact JSON has outside strings, other than quotes and structure. */
static __always_inline bool json_plain(__u8 c)
{
	switch (c) {
	case ' ':
	case '\t':
	case '-':
	case '+':
	case '.':
	case 'e':
	case 'E':
	case 't':
	case 'r':
	case 'u':
	case 'f':
	case 'a':
	case 'l':
	case 's':
	case 'n':
		return true;
	default:
		return c >= '0' && c <= '9';
	}
}

/*
 * Are the 8 bytes of v plain string bytes: no '"', '\\' or byte below 0x20? (A byte is flagged
 * when it is one of them; a flag can also fall on a byte after one: then the bytes are taken one
 * by one, which is only slower.)
 */
#define LIST_SKIP_WORDS 8
static __always_inline bool plain_word(__u64 v)
{
	const __u64 ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	__u64 q = v ^ (0x22 * ones), b = v ^ (0x5c * ones);

	return !((((q - ones) & ~q) | ((b - ones) & ~b) | ((v - 0x20 * ones) & ~v)) & highs);
}

/* One byte of the walk (bpf_loop): 1 when the walk is over. */
static long list_step(__u64 i, void *arg)
{
	const struct mcpf_scan_buf *buf = ((struct tcp_cb *)arg)->buf;
	struct tcp_work *w = ((struct tcp_cb *)arg)->w;
	struct list_walk *lw;
	__u32 pos, d;
	__u8 c;

	if (!buf || !w)
		return 1;
	lw = &w->lw;
	pos = lw->pos;
	if (pos >= lw->n || pos >= LIST_WALK_MAX || lw->done)
		return 1;
	if (lw->in_str && !lw->esc) {
		/* inside a string, 8 bytes at a time up to a quote, a backslash or a control byte */
		for (int k = 0; k < LIST_SKIP_WORDS; k++) {
			if (pos + 8 >= lw->n || /* a byte is left to read after the words */
			    !plain_word(mcpf_load64(&buf->data[pos & (LIST_WALK_MAX - 1)])))
				break;
			pos += 8;
		}
	}
	lw->pos = pos + 1;
	c = buf->data[pos & (LIST_WALK_MAX - 1)];
	d = lw->depth;
	if (lw->in_str) {
		if (lw->esc) {
			lw->esc = 0;
		} else if (c == '\\') {
			lw->esc = 1;
			lw->str_esc = 1;
		} else if (c == '"') {
			lw->in_str = 0;
			if (string_end(buf, lw, pos))
				walk_bad(lw);
		} else if (c < 0x20) {
			walk_bad(lw);
		}
		return 0;
	}
	if (!d) {
		/* between values: HTTP head, SSE fields, chunk sizes */
		if (c != '{' && c != '[')
			return 0;
		lw->base = c == '[' ? 2 : 1;
		lw->result = 0;
		lw->tools = 0;
		lw->seen_tools = 0;
		lw->key = LK_OTHER;
		if (open_at(lw, pos, c))
			walk_bad(lw);
		return 0;
	}
	switch (c) {
	case '{':
	case '[':
		if (open_at(lw, pos, c))
			walk_bad(lw);
		return 0;
	case '}':
	case ']':
		if (close_at(lw, pos, c))
			walk_bad(lw);
		return 0;
	case '"':
		if (lw->tools && d == lw->tools) {
			walk_bad(lw); /* a tool that is not an object */
			return 0;
		}
		lw->in_str = 1;
		lw->str_start = pos;
		lw->str_esc = 0;
		return 0;
	case ':':
		lw->expect_key = 0;
		return 0;
	case ',':
		lw->expect_key = d < 64 && ((lw->objects >> d) & 1);
		lw->key = LK_OTHER;
		if (lw->tools && d == lw->tools && lw->ntools > lw->ntools_done) {
			__u32 last = (lw->ntools - 1) & (MCPF_LIST_MAX_TOOLS - 1);

			if (!lw->t_comma[last])
				lw->t_comma[last] = pos;
		}
		return 0;
	default:
		if (!json_plain(c)) {
			walk_bad(lw);
			return 0;
		}
		if (c != ' ' && c != '\t' && lw->key == LK_TTL && lw->result && d == lw->result) {
			if (!lw->ttl_end)
				lw->ttl_start = pos;
			lw->ttl_end = pos + 1;
		} else if (lw->tools && d == lw->tools && c != ' ' && c != '\t') {
			walk_bad(lw); /* a tool that is not an object */
		}
		return 0;
	}
}

/* One 8-byte word of [b_start, b_end) becomes spaces (bpf_loop, i-th word). */
static long blank_word(__u64 i, void *arg)
{
	struct sk_msg_md *msg = ((struct tcp_cb *)arg)->msg;
	struct tcp_work *w = ((struct tcp_cb *)arg)->w;
	__u32 at, to;
	__u8 *data, *end;

	if (!msg || !w)
		return 1;
	at = w->lw.b_start + 8 * (__u32)i;
	to = w->lw.b_end;
	if (at >= to || to > LIST_WALK_MAX)
		return 1;
	if (to - at > 8)
		to = at + 8;
	if (bpf_msg_pull_data(msg, at, to, 0))
		return 1;
	data = msg->data;
	end = msg->data_end;
	for (int k = 0; k < 8; k++) {
		if (at + k >= to || data + k + 1 > end)
			break;
		data[k] = ' ';
	}
	return 0;
}

static __always_inline void blank(struct tcp_cb *cb, __u32 start, __u32 end)
{
	struct list_walk *lw = &cb->w->lw;

	if (start >= end || end > LIST_WALK_MAX)
		return;
	lw->b_start = start;
	lw->b_end = end;
	bpf_loop((end - start + 7) / 8, blank_word, cb, 0);
}

/* Tool i of the answer: decided, and taken out with its comma if the policy does not list it. */
static long list_tool(__u64 i, void *arg)
{
	const struct mcpf_scan_buf *buf = ((struct tcp_cb *)arg)->buf;
	struct tcp_work *w = ((struct tcp_cb *)arg)->w;
	struct tcp_cb cb = *(struct tcp_cb *)arg;
	struct list_walk *lw;
	__u32 t, len, off, comma;
	__u16 flags;

	if (!buf || !w)
		return 1;
	lw = &w->lw;
	if (i >= lw->ntools_done || i >= MCPF_LIST_MAX_TOOLS)
		return 1;
	t = (__u32)i & (MCPF_LIST_MAX_TOOLS - 1);
	flags = lw->t_flags[t];
	len = lw->t_len[t];
	off = lw->t_name[t];
	if (flags & LT_FIRST)
		lw->kept = 0;
	if (!(flags & LT_NONAME) && len && len < MCPF_NAME_MAX && off < LIST_WALK_MAX) {
		mcpf_zero(w->tool.name, sizeof(w->tool.name));
		if (bpf_probe_read_kernel(w->tool.name, len & (MCPF_NAME_MAX - 1),
					  &buf->data[off & (LIST_WALK_MAX - 1)]))
			flags |= LT_NONAME;
		w->tool.len = len;
		w->tool_hash = mcpf_name_hash(w->tool.name, len, cfg_name_seed);
		if (!(flags & LT_NONAME) && listable(w, len)) {
			lw->kept++;
			return 0;
		}
	}
	lw->t_flags[t] = flags | LT_HIDE;
	lw->hidden++;
	blank(&cb, lw->t_start[t], lw->t_end[t]);
	/* one comma: before it when a tool before it stays, else after it */
	comma = lw->kept && t ? lw->t_comma[(t - 1) & (MCPF_LIST_MAX_TOOLS - 1)] : lw->t_comma[t];
	if (comma)
		blank(&cb, comma, comma + 1);
	return 0;
}

/*
 * The server's send msg, on a connection with a tools/list unanswered: walked, and the tools of
 * the answers in it that the policy does not list taken out. Returns how many answers went by
 * (filtered or not).
 */
static __always_inline int list_send(struct sk_msg_md *msg, struct tcp_work *w)
{
	struct mcpf_scan_buf *buf = scan_buf_get(w);
	struct tcp_cb cb = { .w = w, .buf = buf, .msg = msg };
	struct list_walk *lw = &w->lw;
	__u32 size = msg->size, n;

	if (!buf || !size)
		return 0;
	if (size > LIST_WALK_MAX) {
		/* an answer this large passes as it is; a smaller one in a later send is walked */
		count(MCPF_CNT_LIST_UNFILTERED, 1);
		return 0;
	}
	n = size;
	if (msg_copy(msg, buf, 0, 0, n, LIST_WALK_MAX))
		return 0;
	mcpf_zero(lw, __builtin_offsetof(struct list_walk, t_start));
	lw->n = n;
	bpf_loop(LIST_WALK_MAX, list_step, &cb, 0);
	/* an answer begun here and not ended, or one a value it cannot read may hide, passes */
	if (lw->seen_tools && (lw->depth || lw->unfiltered)) {
		count(MCPF_CNT_LIST_UNFILTERED, 1);
		return lw->answers + 1;
	}
	if (lw->unfiltered) {
		count(MCPF_CNT_LIST_UNFILTERED, 1);
		return lw->answers;
	}
	bpf_loop(MCPF_LIST_MAX_TOOLS, list_tool, &cb, 0);
	if (!lw->hidden)
		return lw->answers;
	count(MCPF_CNT_LIST_HIDDEN, lw->hidden);
	for (int k = 0; k < MCPF_LIST_MAX_TTL; k++) {
		__u32 ts = lw->ttl_s[k], te = lw->ttl_e[k];
		__u8 *data;

		if (k >= lw->nttl || te > LIST_WALK_MAX)
			break;
		if (te > ts + 1)
			blank(&cb, ts, te - 1);
		if (te && !bpf_msg_pull_data(msg, te - 1, te, 0)) {
			data = msg->data;
			if (data + 1 <= (__u8 *)(long)msg->data_end)
				data[0] = '0';
		}
	}
	return lw->answers;
}

#endif
