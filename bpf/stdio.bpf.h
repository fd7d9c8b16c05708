/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * stdio: the kernel plane on stdio servers (`mcpfence attach --pid`), included by tcp.bpf.c after
 * the decision code it shares with TCP (one scanner, one decide, budgets, tickets, stats, events:
 * two hooks).
 *
 * A stdio server reads newline-delimited JSON-RPC from its stdin. What counts is what the
 * server's reader takes for a message: Node, Go's bufio and Rust's line codecs end a line at
 * '\n'; the Python SDK reads through universal newlines, where a bare '\r' ends one too; Go's
 * official SDK runs a json.Decoder over the stream, which reads values whatever the lines. So
 * the stream is judged value by value, and '\r' and '\n' are both line ends: a value that a line
 * end cuts is refused (any of those readers could see a message inside it that a whole-value
 * reading does not), values packed on one line are each judged, nothing is decided on part of a
 * value, and a value that began in an earlier skb (or write) is kept in the stream's buffer
 * until it ends. The stream state lives per stream (struct mcpf_stdio_stream), taken by the run
 * that judges it (a client that writes from two threads at once gets its second write refused).
 *
 * A denied call is neutralized as on TCP, its method rewritten in place to "rpc.denied___"
 * (same length): the server answers -32601 for its id, and that answer is rewritten on its way
 * back to say "denied by policy". Where the method's bytes went by in an earlier skb, the value
 * is "broken" instead: one byte of it that this skb holds becomes 0x01, which no JSON reader
 * takes inside or outside a string, so every reader refuses the line, and the server reads no
 * call (the client gets no answer for that id; the audit line says so). Bytes that cannot be
 * read with certainty are broken the same way, or pass if the policy says "unparsed": "allow";
 * then the rest of their line is skipped, and judging starts again after the next line end.
 * SK_DROP is never returned: dropping an skb delivers the rest of its message.
 */
#ifndef MCPFENCE_STDIO_BPF_H
#define MCPFENCE_STDIO_BPF_H

#define STDIO_STEPS (2 * MCPF_STDIO_PIECE + 2) /* a step moves one byte at least */
#define STDIO_MAX_PIECES 1024 /* 16 MB in one skb or write: past it, refused unread */
#define STDIO_RW_TEXT 512
#ifndef SIGKILL
#define SIGKILL 9
#endif

/* The server's end of its stdin, and the client's end of the server's stdout (socketpairs). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2 * MCPF_STDIO_MAX_SESSIONS);
	__type(key, __u32);
	__type(value, __u64);
} stdio_socks SEC(".maps");

/*
 * The streams userspace registered: keyed by the cookie of the socket that sends (the client's
 * end of the server's stdin; the server's stdout), or by MCPF_STDIO_PIPE_KEY(inode) of a pipe.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * MCPF_STDIO_MAX_SESSIONS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct mcpf_stdio_stream);
} stdio_streams SEC(".maps");

/* The server's ends of socketpair stdins whose plain reads are watched (handle_stdio_guard). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MCPF_STDIO_MAX_SESSIONS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct mcpf_stdio_guard);
} stdio_guards SEC(".maps");

/* Per session: the ids of neutralized calls whose answers are to be rewritten. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MCPF_STDIO_MAX_SESSIONS);
	__type(key, __u32);
	__type(value, struct mcpf_conn);
} stdio_pending SEC(".maps");

/* tcp_reasons (mcpfence.h): what an answer to a denied call says, filled by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * MCPF_TCP_MAX_RULES_REASONS);
	__type(key, __u32);
	__type(value, struct mcpf_reason);
} tcp_reasons SEC(".maps");

static __always_inline bool stdio_eol_byte(__u8 b)
{
	return b == '\n' || b == '\r';
}

/* Is the byte at pos (< end) whitespace between values: ' ', '\t' or a line end? */
static __always_inline bool stdio_ws_at(const struct mcpf_stdio_stream *st, __u32 pos)
{
	__u8 b;

	barrier_var(pos); /* or clang drops the mask where pos < end is known, and 6.1 the bound */
	b = st->buf.data[pos & MCPF_SCAN_MASK];
	return b == ' ' || b == '\t' || stdio_eol_byte(b);
}

struct stdio_eol_ctx {
	struct mcpf_stdio_stream *st;
	__u32 pos, end;
};

/* Where the first line end at or past c->pos is (c->end if none), 8 bytes a step. */
static long stdio_eol_step(__u64 i, void *arg)
{
	struct stdio_eol_ctx *c = arg;
	struct mcpf_stdio_stream *st = c->st;
	__u32 at = c->pos;
	__u64 x, a, b;

	if (!st || at >= c->end || at >= MCPF_SCAN_BUF_MAX)
		return 1;
	x = mcpf_load64(&st->buf.data[at & MCPF_SCAN_MASK]);
	a = x ^ 0x0a0a0a0a0a0a0a0aULL;
	b = x ^ 0x0d0d0d0d0d0d0d0dULL;
	if (!((((a - 0x0101010101010101ULL) & ~a) | ((b - 0x0101010101010101ULL) & ~b)) &
	      0x8080808080808080ULL)) {
		c->pos = at + 8;
		return 0;
	}
	for (int k = 0; k < 8; k++) {
		if (at + k >= c->end)
			break;
		if (stdio_eol_byte(st->buf.data[(at + k) & MCPF_SCAN_MASK])) {
			c->pos = at + k;
			return 1;
		}
	}
	c->pos = at + 8;
	return 0;
}

static __always_inline __u32 stdio_eol(struct mcpf_stdio_stream *st, __u32 from, __u32 end)
{
	struct stdio_eol_ctx c = { .st = st, .pos = from, .end = end };

	bpf_loop(MCPF_SCAN_BUF_MAX / 8 + 1, stdio_eol_step, &c, 0);
	return c.pos < end ? c.pos : end;
}

/* Ask the hook to make the line unreadable at buffer offset at: the byte becomes 0x01. */
static __always_inline void stdio_break(struct stdio_cursor *x, __u32 at)
{
	__u32 k = x->nact;

	x->deny = 1;
	count(MCPF_CNT_STDIO_BROKEN, 1);
	if (!x->rewrite || at < x->lo || k >= MCPF_STDIO_ACTS)
		return;
	barrier_var(k); /* or clang drops the mask after the test, and 6.1 loses the bound */
	x->act_off[k & (MCPF_STDIO_ACTS - 1)] = at;
	x->act_len[k & (MCPF_STDIO_ACTS - 1)] = 1;
	x->nact = k + 1;
}

/* Bytes of the run's stream refused unread (why): counted and reported. A global function. */
__noinline int stdio_refused(__u32 slot, __u32 why, __u32 flags)
{
	struct tcp_work *w = slot_at(slot);
	struct decision d = { .kind = MCPF_KIND_UNPARSED, .rule = MCPF_TCP_RULE_NONE };

	if (!w)
		return 0;
	d.why = why;
	tool_set(w, NULL, 0);
	stat_add(w, MCPF_KIND_UNPARSED, w->sx.policy);
	event_emit(NULL, MCPF_SCAN_MAX_CALLS, &w->ck, w->hd.h_session, &d, flags);
	return 0;
}

/*
 * Bytes of session sess refused unread (why), reported from a slot of their own: the hooks that
 * refuse them before any judging (the pipe hook's unread writes, the guard) hold none. flags: the
 * event's.
 */
static __always_inline void stdio_report_unread(__u32 sess, __u32 why, __u32 flags)
{
	struct tcp_work *w = slot_take();

	if (!w)
		return;
	mcpf_zero(&w->ck, sizeof(w->ck));
	w->ck.stdio = (sess & (MCPF_STDIO_MAX_SESSIONS - 1)) + 1;
	mcpf_zero(w->hd.h_session, sizeof(w->hd.h_session));
	w->sx.policy = policy_in_force(&w->ck);
	stdio_refused(w->slot.idx, why, flags);
	slot_release(w);
}

/*
 * Bytes [vs, le) could not be read with certainty (why): counted, reported, and unless the
 * policy lets them pass, their line is broken; the rest of it is skipped.
 */
static __always_inline void stdio_refuse(struct tcp_work *w, struct mcpf_stdio_stream *st, __u32 vs,
					 __u32 le, __u32 why)
{
	struct stdio_cursor *x = &w->sx;
	__u32 at = vs >= x->lo ? vs : x->lo, flags = 0;

	count(MCPF_CNT_STDIO_VALUES, 1);
	st->phase = MCPF_STDIO_SKIP;
	x->pos = le;
	if (!x->unparsed_allow) {
		stdio_break(x, at);
		flags = MCPF_EV_NEUTRALIZED | MCPF_EV_BROKEN;
		if (at >= le) /* its line end itself: the line goes on to the next one */
			x->pos = le + 1;
	}
	stdio_refused(w->slot.idx, why, flags);
}

/* What a denied call's method becomes (its first bytes, as long as its span): rpc.denied___... */
static __always_inline void stdio_rw_text_fill(struct tcp_work *w)
{
	mcpf_store64(&w->rw_text[0], W8('r', 'p', 'c', '.', 'd', 'e', 'n', 'i'));
	w->rw_text[8] = 'e';
	w->rw_text[9] = 'd';
	for (int k = 10; k < SPAN_MAX; k += 8)
		mcpf_store64(&w->rw_text[k & (STDIO_RW_TEXT - 1)],
			     W8('_', '_', '_', '_', '_', '_', '_', '_'));
}

/* The value [vs, w->res.end) was read: decide each call of it, and neutralize the denied. */
static __always_inline void stdio_judge(struct tcp_work *w, struct mcpf_stdio_stream *st, __u32 vs)
{
	__u32 sess = st->session & (MCPF_STDIO_MAX_SESSIONS - 1);
	struct tcp_cb tcb = { .w = w };
	struct stdio_cursor *x = &w->sx;
	__u32 end = w->res.end;
	bool broken = false;

	tcb.conn = bpf_map_lookup_elem(&stdio_pending, &sess);
	count(MCPF_CNT_STDIO_VALUES, 1);
	w->nrw = 0;
	w->rw_lo = x->rewrite ? x->lo : 0;
	w->cc_flags = w->res.flags & MCPF_SCAN_BATCH ? MCPF_EV_BATCH : 0;
	bpf_loop(w->res.ncalls, call_one, &tcb, 0); /* no turn past the last call */
	if (!w->nrw)
		return;
	x->deny = 1;
	if (!x->rewrite)
		return;
	stdio_rw_text_fill(w); /* here, not at every run's start: 40 stores */
	for (int r = 0; r < MCPF_SCAN_MAX_CALLS; r++) {
		__u32 o, s, k = x->nact;

		if (r >= w->nrw)
			break;
		o = w->rw_off[r];
		s = w->rw_span[r];
		if (o < x->lo || s < 12 || s > SPAN_MAX || o + s > x->end ||
		    k >= MCPF_STDIO_ACTS - 1) {
			broken = true;
			continue;
		}
		barrier_var(k);
		x->act_off[k & (MCPF_STDIO_ACTS - 1)] = o + 1;
		x->act_len[k & (MCPF_STDIO_ACTS - 1)] = s - 2;
		x->nact = k + 1;
	}
	if (broken && end > vs)
		stdio_break(x, end - 1);
}

/*
 * After the value judged at w->sx.vstart, the line end that follows it, in the same step:
 * 1 when the piece ends there. (From w alone: what the step held before the judging is not
 * kept across it, where 6.1 would count it in the deepest call chain's 512 bytes of stack.)
 */
static __always_inline int stdio_past_value(struct tcp_work *w, struct mcpf_stdio_stream *st)
{
	struct stdio_cursor *x = &w->sx;
	__u32 vs = x->vstart, end = x->end, pos = w->res.end > vs ? w->res.end : vs + 1;

	if (pos < end && end <= MCPF_SCAN_BUF_MAX && stdio_ws_at(st, pos))
		pos++;
	x->pos = pos;
	return pos >= end ? 1 : 0;
}

/*
 * Scan the value at vs of the run's stream (slot) into w->res. A global function: the scanner's
 * inlined step is verified here once, apart from the states of the loops around it.
 */
__noinline int stdio_scan_g(__u32 slot, struct mcpf_stdio_stream *st, __u32 vs, __u32 end)
{
	struct tcp_work *w = slot_at(slot);

	if (!w)
		return 0;
	if (!st) {
		w->res.status = MCPF_SCAN_UNPARSED;
		w->res.flags = 0;
		w->res.ncalls = 0;
		w->res.end = vs;
		w->res.why = MCPF_WHY_BOUND;
		return 0;
	}
	mcp_scan_from(&st->buf, vs, end, &w->res);
	return 0;
}

/*
 * One step of the run in slot: skip a refused line's rest, or whitespace, or judge one value;
 * the rewrites it asks for are in w->sx.act_*. 1: the piece is done. A global function: the
 * verifier checks it once, not at every state of the loops around it.
 */
__noinline int stdio_step_g(__u32 slot, struct mcpf_stdio_stream *st)
{
	struct tcp_work *w = slot_at(slot);
	struct stdio_cursor *x;
	__u32 pos, end, le, vs;

	if (!w)
		return 1;
	x = &w->sx;
	x->nact = 0;
	pos = x->pos;
	end = x->end;
	if (!st || pos >= end || end > MCPF_SCAN_BUF_MAX)
		return 1;
	if (st->phase == MCPF_STDIO_SKIP) {
		le = stdio_eol(st, pos, end);
		if (le >= end) {
			x->pos = end;
			return 1;
		}
		x->pos = le + 1;
		st->phase = MCPF_STDIO_SYNC;
		return 0;
	}
	if (st->phase == MCPF_STDIO_SYNC) {
		/* whitespace between values: a byte a step (there is little) */
		if (stdio_ws_at(st, pos)) {
			x->pos = pos + 1;
			return 0;
		}
		x->vstart = pos;
		st->phase = MCPF_STDIO_VALUE;
	}
	vs = x->vstart;
	if (vs >= end)
		return 1;
	/*
	 * The scan runs to the end of the buffer, not of the line: a line end inside the value
	 * sets MCPF_SCAN_NEWLINE, and only a refusal looks for where the line ends (its rest is
	 * skipped from there).
	 */
	stdio_scan_g(slot, st, vs, end);
	if (w->res.status == MCPF_SCAN_OK && !(w->res.flags & MCPF_SCAN_NEWLINE)) {
		stdio_judge(w, st, vs);
		st->phase = MCPF_STDIO_SYNC;
		return stdio_past_value(w, st);
	}
	if (w->res.flags & MCPF_SCAN_NEWLINE) { /* a line end inside the value */
		stdio_refuse(w, st, vs, stdio_eol(st, vs, end), MCPF_WHY_NEWLINE);
		return 0;
	}
	if (w->res.status == MCPF_SCAN_INCOMPLETE) {
		if (end - vs >= MCPF_STDIO_VALUE_MAX) {
			stdio_refuse(w, st, vs, end, MCPF_WHY_STDIO_LARGE);
			return 0;
		}
		x->pos = end; /* the value goes on in the next piece */
		return 1;
	}
	le = stdio_eol(st, vs, end);
	stdio_refuse(w, st, vs, le, w->res.why ? w->res.why : MCPF_WHY_JSON);
	return 0;
}

/* What a run's loops are handed (on the program's stack: small, the rest is in w->sx). */
struct stdio_run {
	struct __sk_buff *skb;	      /* the socketpair hook's skb; NULL for a pipe write */
	struct mcpf_stdio_stream *st; /* the stream (looked up once a run) */
	__u32 slot;
	__u32 _pad;
};

/* One step, then the rewrites it asked for, in the skb. */
static long stdio_step(__u64 i, void *arg)
{
	struct stdio_run *r = arg;
	struct tcp_work *w;
	long ret = r->st && stdio_step_g(r->slot, r->st) ? 1 : 0;

	w = slot_at(r->slot);
	if (!w || !r->skb)
		return ret;
	for (int k = 0; k < MCPF_STDIO_ACTS; k++) {
		__u32 off, len;
		__u8 bad = 0x01;

		if (k >= w->sx.nact)
			break;
		off = (__u32)((__s32)w->sx.act_off[k] + w->sx.delta);
		len = w->sx.act_len[k];
		if (len == 1) {
			bpf_skb_store_bytes(r->skb, off, &bad, 1, 0);
		} else {
			len = ((len - 1) & (STDIO_RW_TEXT - 1)) + 1;
			if (bpf_skb_store_bytes(r->skb, off, w->rw_text, len, 0))
				bpf_skb_store_bytes(r->skb, off, &bad, 1, 0);
		}
	}
	return ret;
}

/*
 * After a piece: keep the value under way (buffer [vstart, end)) at the buffer's start for the
 * next piece, through the slot's scan buffer (the two ranges may overlap). Returns its length.
 */
static __always_inline __u32 stdio_keep(struct tcp_work *w, struct mcpf_stdio_stream *st)
{
	struct mcpf_scan_buf *tmp;
	__u32 vs = w->sx.vstart, n;
	__u64 l;

	if (st->phase != MCPF_STDIO_VALUE || vs >= w->sx.end)
		return 0;
	n = w->sx.end - vs;
	if (!vs)
		return n;
	tmp = scan_buf_get(w);
	l = n;
	barrier_var(l);
	if (!tmp || l > MCPF_STDIO_VALUE_MAX || l == 0)
		return (__u32)-1;
	l = ((l - 1) & MCPF_SCAN_MASK) + 1;
	if (bpf_probe_read_kernel(tmp->data, l, &st->buf.data[vs & MCPF_SCAN_MASK]) ||
	    bpf_probe_read_kernel(st->buf.data, l, tmp->data))
		return (__u32)-1;
	return n;
}

/* Read [done, done + n) of the skb or write into the buffer at off. */
static __always_inline int stdio_load(struct stdio_run *r, struct tcp_work *w,
				      struct mcpf_stdio_stream *st, __u32 off, __u32 n)
{
	__u64 l = n;

	barrier_var(l);
	barrier_var(off);
	if (l == 0 || l > MCPF_STDIO_PIECE || off > MCPF_STDIO_VALUE_MAX)
		return -1;
	l = ((l - 1) & (MCPF_STDIO_PIECE - 1)) + 1;
	if (r->skb)
		return bpf_skb_load_bytes(r->skb, w->sx.done, &st->buf.data[off], l) ? -1 : 0;
	return bpf_probe_read_user(&st->buf.data[off], l, (void *)(w->sx.ubuf + w->sx.done)) ? -1 :
											       0;
}

static long stdio_piece(__u64 i, void *arg)
{
	struct stdio_run *r = arg;
	struct tcp_work *w = slot_at(r->slot);
	struct mcpf_stdio_stream *st;
	struct stdio_cursor *x;
	__u32 carry, n, kept;

	if (!w)
		return 1;
	x = &w->sx;
	if (x->done >= x->len)
		return 1;
	st = r->st;
	if (!st) {
		x->failed = 1;
		return 1;
	}
	carry = st->phase == MCPF_STDIO_VALUE ? st->carry : 0;
	if (carry > MCPF_STDIO_VALUE_MAX) {
		x->failed = 1;
		return 1;
	}
	n = x->len - x->done;
	if (n > MCPF_STDIO_PIECE)
		n = MCPF_STDIO_PIECE;
	if (stdio_load(r, w, st, carry, n)) {
		x->failed = 1;
		return 1;
	}
	x->lo = x->old < carry ? x->old : carry;
	x->delta = (__s32)x->done - (__s32)carry;
	x->end = carry + n;
	x->pos = 0;
	x->vstart = 0;
	bpf_loop(STDIO_STEPS, stdio_step, r, 0);
	x->done += n;
	kept = stdio_keep(w, st);
	if (kept == (__u32)-1) {
		x->failed = 1;
		return 1;
	}
	if (st->phase == MCPF_STDIO_VALUE) {
		/* the bytes of earlier skbs or writes still at the start, after the move */
		x->old = x->old > x->vstart ? x->old - x->vstart : 0;
		st->carry = kept;
	} else {
		x->old = 0;
		st->carry = 0;
	}
	return x->done >= x->len ? 1 : 0; /* no turn past the last piece */
}

/*
 * Take the stream for the run in slot w, for the task that holds w (one run at a time: bytes of
 * two writes judged at once could be mixed). The owner is given back at every exit of the run.
 */
static __always_inline bool stdio_take(struct mcpf_stdio_stream *st, const struct tcp_work *w)
{
	__u64 me = w->slot.owner; /* the task, as slot_take read it */
	__u64 held = __sync_val_compare_and_swap(&st->owner, 0, me);

	return held == 0 || held == me;
}

struct stdio_poison_ctx {
	struct __sk_buff *skb;
	__u32 at, len;
};

static long stdio_poison_step(__u64 i, void *arg)
{
	struct stdio_poison_ctx *pc = arg;
	__u8 bad = 0x01, b[8] = {};
	__u32 n = pc->len - pc->at;

	if (pc->at >= pc->len)
		return 1;
	if (n >= 8) {
		if (bpf_skb_load_bytes(pc->skb, pc->at, b, 8))
			return 1;
	} else {
		if (bpf_skb_load_bytes(pc->skb, pc->at, b, 1))
			return 1;
		n = 1;
	}
	for (int k = 0; k < 8; k++)
		if (k < n && stdio_eol_byte(b[k]))
			bpf_skb_store_bytes(pc->skb, pc->at + k, &bad, 1, 0);
	pc->at += n >= 8 ? 8 : 1;
	return 0;
}

/*
 * Bytes of an skb from `from` on that cannot be judged: the byte there and every line end after
 * it become 0x01, so that all of it is one line that every reader refuses (the line goes on into
 * the next skb; what the stream judges there the server refuses with it).
 */
__noinline int stdio_poison_skb(struct __sk_buff *skb, __u32 from)
{
	struct stdio_poison_ctx pc = { .skb = skb, .at = from, .len = skb->len };
	__u8 bad = 0x01;

	if (!skb || from >= skb->len)
		return 0;
	count(MCPF_CNT_STDIO_BROKEN, 1);
	bpf_skb_store_bytes(skb, from, &bad, 1, 0);
	bpf_loop(STDIO_MAX_PIECES * (MCPF_STDIO_PIECE / 8), stdio_poison_step, &pc, 0);
	return 0;
}

/*
 * Set up the run in slot for len bytes of stream st (from ubuf, for a pipe write; rewrite: the
 * socketpair hook, which can rewrite). A global function:
 * its locals are not on the stack of the program, whose frame is one of the seven of the
 * deepest call chain.
 */
__noinline int stdio_begin(__u32 slot, struct mcpf_stdio_stream *st, __u64 ubuf, __u32 len,
			   __u32 rewrite)
{
	struct tcp_work *w = slot_at(slot);
	struct stdio_cursor *x;
	struct mcpf_gen_cfg *gc;
	__u32 gen = 0, sess;

	if (!w || !st)
		return -1;
	x = &w->sx;
	sess = st->session & (MCPF_STDIO_MAX_SESSIONS - 1);
	x->ubuf = ubuf;
	x->len = len;
	x->done = 0;
	x->failed = 0;
	x->old = st->phase == MCPF_STDIO_VALUE ? st->carry : 0;
	mcpf_zero(&w->ck, sizeof(w->ck));
	w->ck.stdio = sess + 1;
	gc = gen_in_force(&w->ck, &gen);
	x->policy = gc ? gc->policy : 0;
	x->unparsed_allow = gc && gc->unparsed_allow;
	x->rewrite = rewrite;
	x->deny = 0;
	x->nact = 0;
	mcpf_zero(w->hd.h_session, sizeof(w->hd.h_session));
	w->session_hash = mcpf_name_hash((const char *)&w->ck.stdio, 4, cfg_name_seed);
	count(MCPF_CNT_STDIO_BYTES, len);
	return 0;
}

/*
 * After the pieces: what could not be read is refused (the stream judges again after a line
 * end). Returns 1 when something was denied or refused, 0 when all passed, 2 when the bytes
 * from x->done on are to be poisoned (the socketpair hook does it). A global function.
 */
__noinline int stdio_finish(__u32 slot, struct mcpf_stdio_stream *st)
{
	struct tcp_work *w = slot_at(slot);
	struct stdio_cursor *x;

	if (!w || !st)
		return 1;
	x = &w->sx;
	if (!x->failed && x->done >= x->len)
		return x->deny ? 1 : 0;
	count(MCPF_CNT_STDIO_VALUES, 1);
	st->phase = MCPF_STDIO_SKIP;
	st->carry = 0;
	if (x->unparsed_allow) {
		stdio_refused(slot, MCPF_WHY_STDIO_LARGE, 0);
		return x->deny ? 1 : 0;
	}
	stdio_refused(slot, MCPF_WHY_STDIO_LARGE, MCPF_EV_NEUTRALIZED | MCPF_EV_BROKEN);
	return 2;
}

/*
 * Judge len bytes the client sends on stream st, from skb or from ubuf (a pipe write), in the
 * run's slot w. Returns 0, or 1 when a value was denied or refused (pipes act on it).
 */
static __always_inline int stdio_requests(struct tcp_work *w, struct mcpf_stdio_stream *st,
					  struct __sk_buff *skb, void *ubuf, __u32 len)
{
	struct stdio_run r = { .skb = skb, .st = st, .slot = w->slot.idx };
	int ret;

	if (stdio_begin(r.slot, st, (__u64)(unsigned long)ubuf, len, skb != NULL))
		return 1;
	bpf_loop(STDIO_MAX_PIECES, stdio_piece, &r, 0);
	ret = stdio_finish(r.slot, st);
	if (ret == 2 && skb)
		stdio_poison_skb(skb, w->sx.done < w->sx.len ? w->sx.done : 0);
	return ret ? 1 : 0;
}

/* ---- the socketpair hook ----------------------------------------------------------------- */

/*
 * The server's answers (session sess; the run's slot): the one to a neutralized id is rewritten
 * to say "denied by policy". A global function.
 */
__noinline int stdio_replies(struct __sk_buff *skb, __u32 slot, __u32 sess)
{
	struct tcp_work *w = slot_at(slot);
	struct mcpf_conn *conn;
	struct mcpf_scan_buf *buf;
	struct tcp_cb cb = {};
	__u32 len, n, hit, shift = 0;
	__u64 l;

	if (!skb || !w)
		return 0;
	sess &= MCPF_STDIO_MAX_SESSIONS - 1;
	conn = bpf_map_lookup_elem(&stdio_pending, &sess);
	buf = scan_buf_get(w);
	len = skb->len;
	cb.w = w;
	cb.buf = buf;
	cb.conn = conn;
	if (!conn || !conn->npending || !buf || !len)
		return 0;
	n = len < REPLY_SCAN_MAX - 1 ? len : REPLY_SCAN_MAX - 1;
	l = n;
	barrier_var(l);
	if (l == 0 || l > REPLY_SCAN_MAX - 1 ||
	    bpf_skb_load_bytes(skb, 0, buf->data, ((l - 1) & (REPLY_SCAN_MAX - 1)) + 1))
		return 0;
	buf->data[n & (REPLY_SCAN_MAX - 1)] = 0;
	w->rc.n = n;
	w->rc.from = 0;
	for (int k = 0; k < MCPF_TCP_PENDING; k++) {
		struct mcpf_reason *rs;
		__u32 at, tail, rl, grow;

		w->rc.hit = (__u32)-1;
		bpf_loop(64, reply_search_loop, &cb, 0);
		hit = w->rc.hit;
		if (hit == (__u32)-1 || hit + 16 > n)
			break;
		at = hit + shift;
		count(MCPF_CNT_REPLIES, 1);
		w->rc.from = hit;
		rs = bpf_map_lookup_elem(&tcp_reasons, &w->rc.rkey);
		if (!rs) { /* the kind's own reason, the same for every index */
			__u32 gk = w->rc.rkey | 0xffff;

			rs = bpf_map_lookup_elem(&tcp_reasons, &gk);
		}
		rl = rs ? rs->len : 0;
		tail = n - (hit + 16);
		grow = 2 + rl;
		/*
		 * "Method not found" becomes "denied by policy: <reason>": a line of stdio has no
		 * length to keep, so the skb grows and the bytes after it move (from the copy: the
		 * whole skb must be in it). Else, same length: "denied by policy".
		 */
		if (rs && rl && rl <= MCPF_REASON_MAX && n == len && tail < REPLY_SCAN_MAX &&
		    !bpf_skb_change_tail(skb, skb->len + grow, 0)) {
			__u32 total = 18 + rl;

			barrier_var(tail);
			barrier_var(rl);
			/* variable lengths as the verifier takes them: ((l - 1) & mask) + 1 */
			if (tail &&
			    bpf_skb_store_bytes(skb, at + 16 + grow,
						&buf->data[(hit + 16) & (REPLY_SCAN_MAX - 1)],
						((tail - 1) & (REPLY_SCAN_MAX - 1)) + 1, 0))
				break;
			mcpf_store64(&w->rw_text[0], W8('d', 'e', 'n', 'i', 'e', 'd', ' ', 'b'));
			mcpf_store64(&w->rw_text[8], W8('y', ' ', 'p', 'o', 'l', 'i', 'c', 'y'));
			w->rw_text[16] = ':';
			w->rw_text[17] = ' ';
			if (bpf_probe_read_kernel(&w->rw_text[18], ((rl - 1) & 0xff) + 1, rs->text))
				break;
			barrier_var(total); /* or clang drops the mask it knows to be a no-op */
			if (bpf_skb_store_bytes(skb, at, w->rw_text, ((total - 1) & 0x1ff) + 1, 0))
				break;
			shift += grow;
		} else {
			mcpf_store64(&w->rw_text[0], W8('d', 'e', 'n', 'i', 'e', 'd', ' ', 'b'));
			mcpf_store64(&w->rw_text[8], W8('y', ' ', 'p', 'o', 'l', 'i', 'c', 'y'));
			if (bpf_skb_store_bytes(skb, at, w->rw_text, 16, 0))
				break;
		}
		if (!conn->npending)
			break;
	}
	return 0;
}

/*
 * sk_skb verdict on stdio_socks: runs in the sending process, on each skb a client sends to a
 * watched server's stdin, and each skb the server sends to its client, before the receiver can
 * read it. Always SK_PASS: denied calls are rewritten in place.
 */
int handle_stdio_skb_replies(struct __sk_buff *skb);

/*
 * The answers' stage has a program of its own (one program verified for both would pass 6.1's
 * limit of a million instructions); userspace puts it here when it loads the stdio programs.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} stdio_progs SEC(".maps");

/*
 * Take the stream and a slot for this run; on failure, the bytes of a request stream are
 * refused (another write of the stream is being judged, or every slot of the CPU is held).
 */
static __always_inline struct tcp_work *stdio_run_take(struct __sk_buff *skb,
						       struct mcpf_stdio_stream *st)
{
	struct tcp_work *w = slot_take();

	if (w && stdio_take(st, w))
		return w;
	if (w)
		slot_release(w);
	count(MCPF_CNT_BUSY, 1);
	if (st->dir == MCPF_STDIO_REQUESTS)
		stdio_poison_skb(skb, 0);
	return NULL;
}

SEC("sk_skb/stream_verdict")
int handle_stdio_skb(struct __sk_buff *skb)
{
	__u64 key = bpf_get_socket_cookie(skb);
	struct mcpf_stdio_stream *st = bpf_map_lookup_elem(&stdio_streams, &key);
	struct tcp_work *w;

	if (!st)
		return SK_PASS; /* registered before its socket goes in the map: not one of ours */
	if (st->dir != MCPF_STDIO_REQUESTS) {
		bpf_tail_call(skb, &stdio_progs, 0);
		return SK_PASS; /* the stage is missing: the answer passes as the server wrote it */
	}
	w = stdio_run_take(skb, st);
	if (!w)
		return SK_PASS;
	stdio_requests(w, st, skb, NULL, skb->len);
	st->owner = 0;
	slot_release(w);
	return SK_PASS;
}

/*
 * The guard: a read of the server's stdin that takes bytes the verdict never saw. The kernel
 * queues what the client sends on the server's own receive queue, then calls the psock's
 * data_ready, which takes it off to run the verdict; a read that starts in between finds that
 * queue not empty and the psock's empty, and reads by the plain path (unix_bpf_recvmsg, then
 * __unix_recvmsg), which copies each skb with skb_copy_datagram_iter. Nothing in BPF can stop or
 * change that copy; its tracepoint runs before it, in the reader's context: the reader's process
 * is SIGKILLed there, so it returns to user mode only to die and never acts on the bytes. The
 * stream is found by the skb's owner, the sending socket (the client's end). What sat unread
 * when the socket went into the map (sent before the attachment) is the server's to read.
 *
 * Judging the skb here instead, and letting an allowed one through, was tried and is not sound:
 * the verdict's read_skb takes an skb off the queue, then runs the program and queues the bytes
 * for the server without the socket's lock, so a read by the plain path can take the next skb
 * before the earlier one reaches the server (the server reads them out of the order they were
 * judged in); and a read of part of an skb leaves it on the queue, where read_skb later takes it
 * whole, from its first byte (measured: the server read the first 100 bytes of a line twice).
 */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(handle_stdio_guard, const struct sk_buff *skb, int len)
{
	__u64 key = BPF_CORE_READ(skb, sk, __sk_common.skc_cookie.counter);
	struct mcpf_stdio_guard *g;

	if (!key || len <= 0)
		return 0;
	g = bpf_map_lookup_elem(&stdio_guards, &key);
	if (!g || __sync_fetch_and_add(&g->pre, -(__s64)len) >= len)
		return 0;
	if (!bpf_map_lookup_elem(&stdio_streams, &key))
		return 0; /* detached */
	bpf_send_signal(SIGKILL);
	count(MCPF_CNT_RACE_KILLS, 1);
	stdio_report_unread(g->session, MCPF_WHY_UNJUDGED, MCPF_EV_NEUTRALIZED | MCPF_EV_KILLED);
	return 0;
}

/* The server's answers: the one to a denied call says so. */
SEC("sk_skb/stream_verdict")
int handle_stdio_skb_replies(struct __sk_buff *skb)
{
	__u64 key = bpf_get_socket_cookie(skb);
	struct mcpf_stdio_stream *st = bpf_map_lookup_elem(&stdio_streams, &key);
	struct tcp_work *w;

	if (!st)
		return SK_PASS;
	w = stdio_run_take(skb, st);
	if (!w)
		return SK_PASS;
	stdio_replies(skb, w->slot.idx, st->session);
	st->owner = 0;
	slot_release(w);
	return SK_PASS;
}

#endif
