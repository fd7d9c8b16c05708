/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * stdio on pipes, included by tcp.bpf.c after stdio.bpf.h: the client writes to the server's
 * stdin pipe with write(2) or writev(2) (Python's subprocess and asyncio, Go, Rust). Nothing but
 * the BPF LSM can refuse a write to a pipe (fmod_ret cannot hook pipe_write, bpf_probe_write_user
 * would change the client's memory), so the syscall tracepoints of the writer read the bytes
 * before the write copies them, judge them as the socketpair hook does (same stream code), and
 * then:
 *  - MCPF_PIPE_AUDIT: count and audit; the call reaches the server.
 *  - MCPF_PIPE_KILL: a denied call (or bytes that cannot be read) gets the server's processes
 *    (those that hold the pipe's read end) SIGKILLed with bpf_send_signal_task (6.13+), here, in
 *    sys_enter, before the write puts a byte in the pipe. The signal is queued and every thread
 *    of the server woken before this returns; a thread that then takes the line out of the pipe
 *    returns to user mode only to die: the server never acts on it. The session ends with it.
 *  - MCPF_PIPE_REFUSE (kernels with the BPF LSM): handle_pipe_refuse, on the file_permission
 *    hook that every write(2), writev(2) and pwritev2(2) passes before it copies a byte, fails
 *    the judged write with EPERM: nothing of it enters the pipe, and the server goes on. It also
 *    refuses a write to the pipe that no tracepoint judged (io_uring), and the opaque calls below
 *    where they check a file (splice and sendfile from a file); vmsplice, tee and a splice from
 *    a pipe check none: their bytes go in, audited as unread, and the stream is dead after them.
 * Writes the tracepoints cannot read are refused unread (killed, or audited as unread): splice,
 * tee, vmsplice (its pages are the writer's, changeable after the call), sendfile,
 * copy_file_range into the pipe, more than MCPF_PIPE_SEGS iovecs. io_uring writes are not
 * syscalls: they are not seen.
 * A write that writes less than it was asked (a non-blocking pipe that fills) was judged whole:
 * the rest is remembered by its length and a seeded hash (sys_exit), and the writer's next write
 * must begin with those same bytes, which are not judged twice; anything else is refused unread.
 */
#ifndef MCPFENCE_STDIO_PIPE_BPF_H
#define MCPFENCE_STDIO_PIPE_BPF_H

#ifndef SIGKILL
#define SIGKILL 9
#endif
#define PIPE_HASH_CHUNK 256

extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym __weak;
extern void bpf_task_release(struct task_struct *p) __ksym __weak;
extern int bpf_send_signal_task(struct task_struct *task, int sig, enum pid_type type,
				__u64 value) __ksym __weak;

/* A write being judged, from its sys_enter to its sys_exit, by pid_tgid. */
struct pipe_write {
	__u64 key;    /* the stream */
	__u64 total;  /* bytes the call asks to write */
	__u64 skip;   /* bytes at its start judged already (the rest of an earlier write) */
	__u32 nseg;   /* segments: 1 for write, the iovecs of writev */
	__u32 seg;    /* the one the judging stage works on */
	__u32 deny;   /* a value was denied or refused */
	__u32 unread; /* enum mcpf_why: bytes not read with certainty; 0 none */
	/* MCPF_PIPE_REFUSE: what a refused write gives back (pipe_give_back) */
	__u32 judged;  /* a piece of it was judged: the stream moved on */
	__u32 phase0;  /* the stream's phase before its first piece, */
	__u32 carry0;  /* and the bytes of a value under way then */
	__u32 seq;     /* the stream's seq after its last piece */
	__u32 resent;  /* it began with the rest of an earlier short write */
	__u32 refused; /* the BPF LSM failed it */
	__u64 start;   /* the writer's task start_time: an entry a dead thread left is not its */
	__u64 cur_base, cur_len; /* the judging stage's bytes */
	__u64 base[MCPF_PIPE_SEGS];
	__u64 len[MCPF_PIPE_SEGS];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct pipe_write);
} pipe_writes SEC(".maps");

/* A zeroed struct pipe_write to start from (too large for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pipe_write);
} pipe_write_zero SEC(".maps");

int handle_pipe_judge(struct trace_event_raw_sys_enter *ctx);
int handle_pipe_kill(struct trace_event_raw_sys_enter *ctx);

enum pipe_stage {
	PIPE_JUDGE = 0,
	PIPE_KILL = 1,
};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} pipe_progs SEC(".maps");

/* The stream key of fd of the current task, if that is a pipe userspace registered; else 0. */
static __always_inline __u64 pipe_key_of(__u32 fd)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct file **fds;
	struct file *f = NULL;
	__u64 key;
	__u32 max;

	fds = BPF_CORE_READ(t, files, fdt, fd);
	max = BPF_CORE_READ(t, files, fdt, max_fds);
	if (!fds || fd >= max)
		return 0;
	if (bpf_core_read(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	key = MCPF_STDIO_PIPE_KEY(BPF_CORE_READ(f, f_inode, i_ino));
	return bpf_map_lookup_elem(&stdio_streams, &key) ? key : 0;
}

/* ---- the seeded hash of a range of the write (a resent rest) ----------------------------- */

struct pipe_hash_ctx {
	struct pipe_write *pw;
	__u64 at, to, h;
	__u8 chunk[PIPE_HASH_CHUNK];
};

static __always_inline __u64 pipe_mix(__u64 h, __u64 v)
{
	h ^= v;
	h *= 0x9e3779b97f4a7c15ULL;
	return h ^ (h >> 29);
}

static long pipe_hash_step(__u64 i, void *arg)
{
	struct pipe_hash_ctx *c = arg;
	struct pipe_write *pw = c->pw;
	__u64 at = c->at, off = 0, n = 0, base = 0;

	if (at >= c->to)
		return 1;
	/* which segment holds byte `at` of the write */
	for (int s = 0; s < MCPF_PIPE_SEGS; s++) {
		if (s >= pw->nseg)
			return 1;
		if (at < off + pw->len[s]) {
			base = pw->base[s] + (at - off);
			n = off + pw->len[s] - at;
			break;
		}
		off += pw->len[s];
	}
	if (n > c->to - at)
		n = c->to - at;
	if (n > PIPE_HASH_CHUNK)
		n = PIPE_HASH_CHUNK;
	if (!n)
		return 1;
	for (int k = 0; k < PIPE_HASH_CHUNK / 8; k++)
		mcpf_store64(&c->chunk[k * 8], 0);
	if (bpf_probe_read_user(c->chunk, n & (PIPE_HASH_CHUNK * 2 - 1), (void *)base))
		return 1;
	for (int k = 0; k < PIPE_HASH_CHUNK / 8; k++)
		c->h = pipe_mix(c->h, mcpf_load64(&c->chunk[k * 8]));
	c->h = pipe_mix(c->h, n);
	c->at = at + n;
	return 0;
}

/* The hash of bytes [from, to) of the write; a range it cannot read hashes short (differs). */
static __always_inline __u64 pipe_hash(struct pipe_write *pw, __u64 from, __u64 to)
{
	struct pipe_hash_ctx c = { .pw = pw, .at = from, .to = to, .h = cfg_name_seed };

	bpf_loop(1 << 20, pipe_hash_step, &c, 0);
	return pipe_mix(c.h, c.at - from);
}

/* ---- sys_enter: a write to a watched pipe ------------------------------------------------- */

/*
 * MCPF_PIPE_REFUSE: the write of pw will be refused, nothing of it enters the pipe: the stream
 * goes back to where it was before it, if it moved (owned: this task holds it, and no other write
 * was judged since this one's last piece). Where that cannot be had (a value under way before it,
 * whose bytes the buffer no longer holds as they were; the rest of a short write; another write
 * judged in between), the stream is dead: every later write is refused.
 */
static __always_inline void pipe_give_back(struct pipe_write *pw, struct mcpf_stdio_stream *st,
					   bool owned)
{
	if (!pw->judged)
		return;
	pw->judged = 0;
	if (owned && st->seq == pw->seq && !pw->carry0 && !pw->resent &&
	    pw->phase0 != MCPF_STDIO_DEAD)
		st->phase = pw->phase0;
	else
		st->phase = MCPF_STDIO_DEAD;
	st->carry = 0;
	st->resend = 0;
}

/*
 * Bytes the writer's write of pid_tgid cannot have judged: reported unread (why), the stream
 * starts again after a line end. Returns 1 when the server is to be killed. A global function.
 */
__noinline int pipe_unread_note(__u64 pid_tgid, __u32 why)
{
	struct pipe_write *pw = bpf_map_lookup_elem(&pipe_writes, &pid_tgid);
	struct mcpf_stdio_stream *st;

	if (!pw)
		return 0;
	st = bpf_map_lookup_elem(&stdio_streams, &pw->key);
	if (!st)
		return 0;
	if (st->action == MCPF_PIPE_REFUSE) {
		pipe_give_back(pw, st, false); /* the write is refused whole */
	} else {
		st->phase = MCPF_STDIO_SKIP;
		st->carry = 0;
		st->resend = 0;
	}
	pw->deny = 1;
	pw->unread = why;
	stdio_report_unread(st->session, why, MCPF_EV_NEUTRALIZED | MCPF_EV_BROKEN);
	return st->action == MCPF_PIPE_KILL;
}

/* pipe_unread_note, then the kill stage where it says so. */
static __always_inline void pipe_unread(void *ctx, __u64 pid_tgid, __u32 why)
{
	if (pipe_unread_note(pid_tgid, why))
		bpf_tail_call(ctx, &pipe_progs, PIPE_KILL);
}

/*
 * The segment of the write of pid_tgid that the judging stage works on, the resent rest left
 * out: pw->cur_base, pw->cur_len. Returns 0 (judge them), 1 (nothing to judge), or the enum
 * mcpf_why of bytes that cannot be judged. A global function.
 */
__noinline int pipe_seg_next(__u64 pid_tgid)
{
	struct pipe_write *pw = bpf_map_lookup_elem(&pipe_writes, &pid_tgid);
	__u64 len, skip;
	__u32 s;

	if (!pw)
		return 1;
	s = pw->seg;
	if (s >= pw->nseg || s >= MCPF_PIPE_SEGS)
		return 1;
	len = pw->len[s];
	/* the bytes of the resent rest are in the first segments */
	skip = pw->skip < len ? pw->skip : len;
	pw->skip -= skip;
	pw->cur_base = pw->base[s] + skip;
	pw->cur_len = len - skip;
	if (!pw->cur_len)
		return 1;
	return pw->cur_len > 0xffffffffULL ? MCPF_WHY_STDIO_LARGE : 0;
}

/* Start judging the write in pw (filled but for skip): the judging stage goes on. */
static __always_inline int pipe_begin(void *ctx, __u64 pid_tgid, struct pipe_write *pw)
{
	struct mcpf_stdio_stream *st = bpf_map_lookup_elem(&stdio_streams, &pw->key);
	struct pipe_write *rec;

	if (!st)
		return 0;
	pw->skip = 0;
	pw->seg = 0;
	pw->deny = 0;
	pw->unread = 0;
	if (st->phase == MCPF_STDIO_DEAD) {
		/* a refused write cut a value the server holds part of: nothing may follow it */
		if (bpf_map_update_elem(&pipe_writes, &pid_tgid, pw, BPF_ANY))
			return 0;
		rec = bpf_map_lookup_elem(&pipe_writes, &pid_tgid);
		if (rec)
			pipe_unread(ctx, pid_tgid, MCPF_WHY_DEAD);
		return 0;
	}
	if (st->resend) {
		/* the rest of the last write, written again: the same bytes, not judged twice */
		if (pw->total < st->resend || pipe_hash(pw, 0, st->resend) != st->resend_hash) {
			if (bpf_map_update_elem(&pipe_writes, &pid_tgid, pw, BPF_ANY))
				return 0;
			rec = bpf_map_lookup_elem(&pipe_writes, &pid_tgid);
			if (rec)
				pipe_unread(ctx, pid_tgid, MCPF_WHY_RESEND);
			return 0;
		}
		pw->skip = st->resend;
		pw->resent = 1;
		st->resend = 0;
	}
	if (bpf_map_update_elem(&pipe_writes, &pid_tgid, pw, BPF_ANY))
		return 0;
	bpf_tail_call(ctx, &pipe_progs, PIPE_JUDGE);
	return 0;
}

static __always_inline __u64 pipe_task_start(void)
{
	return BPF_CORE_READ((struct task_struct *)bpf_get_current_task(), start_time);
}

static __always_inline struct pipe_write *pipe_scratch(void)
{
	__u32 zero = 0;
	struct pipe_write *pw = bpf_map_lookup_elem(&pipe_write_zero, &zero);

	if (pw) {
		pw->start = pipe_task_start();
		pw->deny = 0;
		pw->unread = 0;
		pw->judged = 0;
		pw->resent = 0;
		pw->refused = 0;
	}
	return pw;
}

SEC("tracepoint/syscalls/sys_enter_write")
int handle_pipe_write(struct trace_event_raw_sys_enter *ctx)
{
	__u64 key = pipe_key_of((__u32)ctx->args[0]);
	struct pipe_write *pw;

	if (!key || !(pw = pipe_scratch()))
		return 0;
	pw->key = key;
	pw->total = ctx->args[2];
	pw->nseg = 1;
	pw->base[0] = ctx->args[1];
	pw->len[0] = ctx->args[2];
	return pipe_begin(ctx, bpf_get_current_pid_tgid(), pw);
}

/* writev, and pwritev2 at the current position (offset -1: a pipe takes it) */
static __always_inline int pipe_writev(struct trace_event_raw_sys_enter *ctx)
{
	__u64 key = pipe_key_of((__u32)ctx->args[0]), total = 0;
	struct iovec *vec = (struct iovec *)ctx->args[1];
	__u32 n = (__u32)ctx->args[2];
	struct mcpf_stdio_stream *st;
	struct pipe_write *pw, *rec;
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	if (!key || !(pw = pipe_scratch()))
		return 0;
	pw->key = key;
	pw->nseg = n < MCPF_PIPE_SEGS ? n : MCPF_PIPE_SEGS;
	for (int s = 0; s < MCPF_PIPE_SEGS; s++) {
		struct iovec v = {};

		if (s >= pw->nseg)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), &vec[s]))
			n = (__u32)-1; /* unreadable: refused */
		pw->base[s] = (__u64)(unsigned long)v.iov_base;
		pw->len[s] = v.iov_len;
		total += v.iov_len;
	}
	pw->total = total;
	if (n <= MCPF_PIPE_SEGS)
		return pipe_begin(ctx, pid_tgid, pw);
	st = bpf_map_lookup_elem(&stdio_streams, &key);
	if (!st || bpf_map_update_elem(&pipe_writes, &pid_tgid, pw, BPF_ANY))
		return 0;
	rec = bpf_map_lookup_elem(&pipe_writes, &pid_tgid);
	if (rec)
		pipe_unread(ctx, pid_tgid, MCPF_WHY_IOVECS);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_writev")
int handle_pipe_writev(struct trace_event_raw_sys_enter *ctx)
{
	return pipe_writev(ctx);
}

SEC("tracepoint/syscalls/sys_enter_pwritev2")
int handle_pipe_pwritev2(struct trace_event_raw_sys_enter *ctx)
{
	/* pos_l, pos_h: -1 is the current position, the only one a pipe takes */
	if ((long)ctx->args[3] != -1)
		return 0;
	return pipe_writev(ctx);
}

/* Writes whose bytes the tracepoints cannot read, into the pipe that is fd: refused unread. */
static __always_inline int pipe_opaque(struct trace_event_raw_sys_enter *ctx, __u32 fd)
{
	__u64 key = pipe_key_of(fd), pid_tgid = bpf_get_current_pid_tgid();
	struct mcpf_stdio_stream *st;
	struct pipe_write *pw, *rec;

	if (!key || !(pw = pipe_scratch()))
		return 0;
	st = bpf_map_lookup_elem(&stdio_streams, &key);
	pw->key = key;
	pw->nseg = 0;
	pw->total = 0;
	if (!st || bpf_map_update_elem(&pipe_writes, &pid_tgid, pw, BPF_ANY))
		return 0;
	rec = bpf_map_lookup_elem(&pipe_writes, &pid_tgid);
	if (rec)
		pipe_unread(ctx, pid_tgid, MCPF_WHY_OPAQUE);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_splice")
int handle_pipe_splice(struct trace_event_raw_sys_enter *ctx)
{
	return pipe_opaque(ctx, (__u32)ctx->args[2]); /* fd_out */
}

SEC("tracepoint/syscalls/sys_enter_tee")
int handle_pipe_tee(struct trace_event_raw_sys_enter *ctx)
{
	return pipe_opaque(ctx, (__u32)ctx->args[1]); /* fdout */
}

SEC("tracepoint/syscalls/sys_enter_vmsplice")
int handle_pipe_vmsplice(struct trace_event_raw_sys_enter *ctx)
{
	return pipe_opaque(ctx, (__u32)ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_enter_sendfile64")
int handle_pipe_sendfile(struct trace_event_raw_sys_enter *ctx)
{
	return pipe_opaque(ctx, (__u32)ctx->args[0]); /* out_fd */
}

SEC("tracepoint/syscalls/sys_enter_copy_file_range")
int handle_pipe_copy_range(struct trace_event_raw_sys_enter *ctx)
{
	return pipe_opaque(ctx, (__u32)ctx->args[2]); /* fd_out */
}

/* ---- the BPF LSM: refuse what was denied (MCPF_PIPE_REFUSE) ------------------------------ */

#ifndef MAY_WRITE
#define MAY_WRITE 0x2
#endif
#ifndef EPERM
#define EPERM 1
#endif

/* Is key a stream of a pipe whose denied writes are refused? */
static __always_inline struct mcpf_stdio_stream *pipe_refusing(__u64 key)
{
	struct mcpf_stdio_stream *st = bpf_map_lookup_elem(&stdio_streams, &key);

	return st && st->action == MCPF_PIPE_REFUSE ? st : NULL;
}

/*
 * Every check of a file's permission to be read or written (rw_verify_area: read(2), write(2),
 * writev(2), splice, sendfile, copy_file_range, io_uring's reads and writes) on the host, before
 * a byte is copied. A syscall whose sys_enter judged it (pipe_writes, this thread) and found
 * something denied or unreadable fails here with EPERM, whichever file it checks (splice and
 * sendfile from a file check that file); a write to a refusing pipe that no tracepoint judged
 * (io_uring has no syscall per write) fails too. Loaded only for --pipe-action refuse.
 */
SEC("lsm/file_permission")
int BPF_PROG(handle_pipe_refuse, struct file *file, int mask, int ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), key;
	struct mcpf_stdio_stream *st;
	struct pipe_write *pw;

	if (ret)
		return ret;
	pw = bpf_map_lookup_elem(&pipe_writes, &pid_tgid);
	if (pw && pw->start == pipe_task_start()) {
		if (!pw->deny || !pipe_refusing(pw->key))
			return 0;
		pw->refused = 1;
		count(MCPF_CNT_PIPE_REFUSALS, 1);
		return -EPERM;
	}
	if (!(mask & MAY_WRITE))
		return 0;
	key = MCPF_STDIO_PIPE_KEY(BPF_CORE_READ(file, f_inode, i_ino));
	st = pipe_refusing(key);
	if (!st)
		return 0;
	count(MCPF_CNT_PIPE_REFUSALS, 1);
	stdio_report_unread(st->session, MCPF_WHY_UNSEEN, MCPF_EV_NEUTRALIZED | MCPF_EV_BROKEN);
	return -EPERM;
}

/* The judging stage: segment pw->seg of the write, then the next one (tail calls). */
SEC("tracepoint")
int handle_pipe_judge(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pipe_write *pw = bpf_map_lookup_elem(&pipe_writes, &pid_tgid);
	struct mcpf_stdio_stream *st;
	struct tcp_work *w;
	int next;

	if (!pw)
		return 0;
	st = bpf_map_lookup_elem(&stdio_streams, &pw->key);
	if (!st)
		return 0;
	next = pipe_seg_next(pid_tgid);
	if (next > 1) {
		pipe_unread(ctx, pid_tgid, next);
		return 0;
	}
	if (!next) {
		w = slot_take();
		if (!w || !stdio_take(st, w)) {
			if (w)
				slot_release(w);
			count(MCPF_CNT_BUSY, 1);
			pipe_unread(ctx, pid_tgid, MCPF_WHY_BUSY);
			return 0;
		}
		if (st->action == MCPF_PIPE_REFUSE) {
			if (!pw->judged) {
				pw->judged = 1;
				pw->phase0 = st->phase;
				pw->carry0 = st->phase == MCPF_STDIO_VALUE ? st->carry : 0;
			} else if (st->seq != pw->seq) {
				pw->phase0 = MCPF_STDIO_DEAD; /* another write came in between */
			}
			pw->seq = ++st->seq;
		}
		if (stdio_requests(w, st, NULL, (void *)pw->cur_base, (__u32)pw->cur_len))
			pw->deny = 1;
		if (pw->deny && st->action == MCPF_PIPE_REFUSE)
			pipe_give_back(pw, st, true);
		st->owner = 0;
		slot_release(w);
	}
	if (pw->deny && st->action == MCPF_PIPE_REFUSE)
		return 0; /* refused whole: its other pieces are not judged */
	if (pw->deny && st->action == MCPF_PIPE_KILL) {
		bpf_tail_call(ctx, &pipe_progs, PIPE_KILL);
		return 0;
	}
	pw->seg++;
	if (pw->seg < pw->nseg)
		bpf_tail_call(ctx, &pipe_progs, PIPE_JUDGE);
	return 0;
}

/* Kill the processes that read the stream's pipe (MCPF_PIPE_KILL). Loaded on 6.13+ only. */
SEC("tracepoint")
int handle_pipe_kill(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pipe_write *pw = bpf_map_lookup_elem(&pipe_writes, &pid_tgid);
	struct mcpf_stdio_stream *st;

	if (!pw)
		return 0;
	st = bpf_map_lookup_elem(&stdio_streams, &pw->key);
	if (!st)
		return 0;
	for (int i = 0; i < MCPF_STDIO_KILL_MAX; i++) {
		struct task_struct *t;

		if (i >= st->nkill)
			break;
		t = bpf_task_from_pid(st->kill_tgids[i]);
		if (!t)
			continue;
		bpf_send_signal_task(t, SIGKILL, PIDTYPE_TGID, 0);
		bpf_task_release(t);
	}
	count(MCPF_CNT_PIPE_KILLS, 1);
	return 0;
}

/* ---- sys_exit: what the write wrote ------------------------------------------------------- */

static __always_inline int pipe_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct pipe_write *pw = bpf_map_lookup_elem(&pipe_writes, &pid_tgid);
	struct mcpf_stdio_stream *st;
	__u64 wrote;

	if (!pw)
		return 0;
	st = bpf_map_lookup_elem(&stdio_streams, &pw->key);
	wrote = ctx->ret > 0 ? (__u64)ctx->ret : 0;
	if (st && st->action == MCPF_PIPE_REFUSE && (pw->deny || pw->unread)) {
		/*
		 * Refused (given back when it was judged), or it failed before a byte moved; bytes
		 * that moved all the same (tee, vmsplice, a splice from a pipe: no permission
		 * check refuses them) went in unjudged: nothing may follow them.
		 */
		if (ctx->ret > 0)
			st->phase = MCPF_STDIO_DEAD;
	} else if (st && !pw->unread && pw->nseg && wrote < pw->total) {
		/* judged whole, written in part: the rest must come again, the same */
		st->resend = (__u32)(pw->total - wrote);
		st->resend_hash = pipe_hash(pw, wrote, pw->total);
		if (pw->total - wrote > 0xffffffffULL)
			st->resend = 0xffffffff;
	}
	bpf_map_delete_elem(&pipe_writes, &pid_tgid);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_write")
int handle_pipe_write_exit(struct trace_event_raw_sys_exit *ctx)
{
	return pipe_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_writev")
int handle_pipe_writev_exit(struct trace_event_raw_sys_exit *ctx)
{
	return pipe_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_pwritev2")
int handle_pipe_pwritev2_exit(struct trace_event_raw_sys_exit *ctx)
{
	return pipe_exit(ctx);
}

/* The calls refused unread: their entry goes (under refuse, bytes they put in kill the stream). */
SEC("tracepoint/syscalls/sys_exit_splice")
int handle_pipe_splice_exit(struct trace_event_raw_sys_exit *ctx)
{
	return pipe_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_tee")
int handle_pipe_tee_exit(struct trace_event_raw_sys_exit *ctx)
{
	return pipe_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_vmsplice")
int handle_pipe_vmsplice_exit(struct trace_event_raw_sys_exit *ctx)
{
	return pipe_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_sendfile64")
int handle_pipe_sendfile_exit(struct trace_event_raw_sys_exit *ctx)
{
	return pipe_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_copy_file_range")
int handle_pipe_copy_range_exit(struct trace_event_raw_sys_exit *ctx)
{
	return pipe_exit(ctx);
}

#endif
