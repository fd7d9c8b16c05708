// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The daemon's finder (user/daemon_find.c): which program just started that may be a stdio MCP
 * server its policies name. On every exec (the sched_process_exec tracepoint, in the new
 * program, before its first instruction runs), cheapest test first:
 *  1. fd 0 and fd 1 are both a pipe or an AF_UNIX stream socket (a stdio server's: its client
 *     spawned it with pipes or a socketpair); anything else goes on untouched;
 *  2. the executable's file name (its dentry's, so a symlink or an interpreter found by #! gives
 *     the real program's name; the first 31 bytes) is one the policies' "match" names in
 *     daemon_exes, unless daemon_cfg says every such program is to be looked at;
 *  3. then the process is stopped (SIGSTOP, taken on its way back to user mode: it runs no
 *     instruction of the new program) and its pid goes to userspace, which reads who it is,
 *     enrolls it when a policy fits and continues it. No event room, no stop: nothing would
 *     continue it (the miss is counted).
 * The program is attached by a link the daemon holds, not pinned: a daemon that dies stops no
 * process any more.
 * The naming programs (attached only while a server waits for its name, for a "server_name"
 * file): a watched server's writes to its stdout go to daemon_answers, and after each, each
 * reader of its stdout stops at its next read until userspace has read that write.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "mcpfence.h"

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFIFO 0010000
#define SIGSTOP 19
#define FAMILY_UNIX 1
#define STREAM 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MCPF_DAEMON_EXES);
	__type(key, struct mcpf_exe_name);
	__type(value, __u8);
} daemon_exes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MCPF_DAEMON_CFG_N);
	__type(key, __u32);
	__type(value, __u64);
} daemon_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} daemon_execs SEC(".maps");

/* MCPF_STDIN_PIPE, MCPF_STDIN_SOCKET, or 0: neither (nothing, a file, a tty, another socket) */
static __always_inline int fd_kind(struct file **fds, int fd)
{
	struct file *f = NULL;
	struct socket *sock;
	__u32 mode;

	if (bpf_core_read(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	mode = BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT;
	if (mode == S_IFIFO)
		return MCPF_STDIN_PIPE;
	if (mode != S_IFSOCK)
		return 0;
	sock = BPF_CORE_READ(f, private_data);
	if (!sock || BPF_CORE_READ(sock, type) != STREAM ||
	    BPF_CORE_READ(sock, sk, __sk_common.skc_family) != FAMILY_UNIX)
		return 0;
	return MCPF_STDIN_SOCKET;
}

static __always_inline void count(__u32 key)
{
	__u64 *n = bpf_map_lookup_elem(&daemon_cfg, &key);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("tracepoint/sched/sched_process_exec")
int handle_daemon_exec(void *ctx)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct mcpf_exe_name name = {};
	struct mcpf_exec_event *ev;
	struct file **fds;
	const unsigned char *dname;
	__u32 key = MCPF_DAEMON_CFG_EVERY;
	__u64 *every;
	int k0, k1;

	fds = BPF_CORE_READ(t, files, fdt, fd);
	if (!fds || BPF_CORE_READ(t, files, fdt, max_fds) < 2)
		return 0;
	k0 = fd_kind(fds, 0);
	if (!k0)
		return 0;
	k1 = fd_kind(fds, 1);
	if (!k1)
		return 0;
	dname = BPF_CORE_READ(t, mm, exe_file, f_path.dentry, d_name.name);
	if (dname)
		bpf_probe_read_kernel_str(name.name, sizeof(name.name), dname);
	every = bpf_map_lookup_elem(&daemon_cfg, &key);
	if (!(every && *every) && !bpf_map_lookup_elem(&daemon_exes, &name))
		return 0;
	ev = bpf_ringbuf_reserve(&daemon_execs, sizeof(*ev), 0);
	if (!ev) {
		count(MCPF_DAEMON_CFG_MISSED);
		return 0;
	}
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->stdin_kind = k0;
	ev->stdout_kind = k1;
	ev->stopped = !bpf_send_signal(SIGSTOP);
	mcpf_copy(ev->exe, name.name, sizeof(ev->exe));
	bpf_ringbuf_submit(ev, 0);
	count(MCPF_DAEMON_CFG_STOPPED);
	return 0;
}

/* ---- naming: a server's first answer, for "server_name" ---------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MCPF_NAMING_SERVERS);
	__type(key, __u32);
	__type(value, struct mcpf_naming);
} daemon_naming SEC(".maps");

/* pinned: a client a killed daemon left stopped, the next daemon (or detach) continues */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MCPF_NAMING_CLIENTS);
	__type(key, __u32);
	__type(value, struct mcpf_naming_client);
} daemon_naming_clients SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} daemon_answers SEC(".maps");

/* A write of n bytes from buf to fd by the current process: its first answer? */
static __always_inline int naming_write(__u32 fd, __u64 buf, __u64 n)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	struct mcpf_naming *w = bpf_map_lookup_elem(&daemon_naming, &tgid), *rec;
	struct mcpf_answer_event *ev;
	struct file **fds;
	struct file *f = NULL;
	__u32 len, server;

	if (!w)
		return 0;
	server = w->server ? w->server : tgid;
	rec = server == tgid ? w : bpf_map_lookup_elem(&daemon_naming, &server);
	if (!rec || rec->state != MCPF_NAMING_WATCH)
		return 0;
	fds = BPF_CORE_READ(t, files, fdt, fd);
	if (!fds || fd >= BPF_CORE_READ(t, files, fdt, max_fds))
		return 0;
	if (bpf_core_read(&f, sizeof(f), &fds[fd]) || !f ||
	    BPF_CORE_READ(f, f_inode, i_ino) != w->out_ino)
		return 0;
	/* one writer takes it: two threads writing at once give one event */
	if (__sync_val_compare_and_swap(&rec->state, MCPF_NAMING_WATCH, MCPF_NAMING_ANSWERED) !=
	    MCPF_NAMING_WATCH)
		return 0;
	ev = bpf_ringbuf_reserve(&daemon_answers, sizeof(*ev), 0);
	if (!ev) {
		rec->state = MCPF_NAMING_MISSED;
		return 0;
	}
	len = n < MCPF_ANSWER_BYTES ? (__u32)n : MCPF_ANSWER_BYTES;
	ev->pid = server;
	ev->count = n;
	ev->len = 0;
	if (len && !bpf_probe_read_user(ev->bytes, len & (MCPF_ANSWER_BYTES * 2 - 1) ?: 1,
					(const void *)buf))
		ev->len = len;
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int handle_naming_write(struct trace_event_raw_sys_enter *ctx)
{
	return naming_write((__u32)ctx->args[0], ctx->args[1], ctx->args[2]);
}

/* writev, and pwritev2 at the current position (-1, all a pipe or socket takes): its first
 * segment */
static __always_inline int naming_writev(struct trace_event_raw_sys_enter *ctx)
{
	struct iovec v = {};

	if ((long)ctx->args[2] < 1 ||
	    bpf_probe_read_user(&v, sizeof(v), (const void *)ctx->args[1]))
		return 0;
	return naming_write((__u32)ctx->args[0], (__u64)(unsigned long)v.iov_base, v.iov_len);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int handle_naming_writev(struct trace_event_raw_sys_enter *ctx)
{
	return naming_writev(ctx);
}

SEC("tracepoint/syscalls/sys_enter_pwritev2")
int handle_naming_pwritev2(struct trace_event_raw_sys_enter *ctx)
{
	if ((long)ctx->args[3] != -1)
		return 0;
	return naming_writev(ctx);
}

/* A read by a client of a server that has answered and is not named yet: it stops there. */
static __always_inline int naming_read(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct mcpf_naming_client *c = bpf_map_lookup_elem(&daemon_naming_clients, &tgid);
	struct mcpf_naming *w;

	if (!c || c->stopped)
		return 0;
	for (int i = 0; i < MCPF_NAMING_PER_CLIENT; i++) {
		__u32 server = c->server[i];

		if (!server)
			continue;
		w = bpf_map_lookup_elem(&daemon_naming, &server);
		if (!w || w->state != MCPF_NAMING_ANSWERED)
			continue;
		/* marked first: userspace continues what is marked */
		c->stopped = 1;
		if (bpf_send_signal(SIGSTOP))
			c->stopped = 0;
		break;
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_read")
int handle_naming_read(void *ctx)
{
	return naming_read();
}

SEC("tracepoint/syscalls/sys_exit_readv")
int handle_naming_readv(void *ctx)
{
	return naming_read();
}

SEC("tracepoint/syscalls/sys_exit_preadv2")
int handle_naming_preadv2(void *ctx)
{
	return naming_read();
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int handle_naming_recvfrom(void *ctx)
{
	return naming_read();
}

SEC("tracepoint/syscalls/sys_exit_recvmsg")
int handle_naming_recvmsg(void *ctx)
{
	return naming_read();
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
