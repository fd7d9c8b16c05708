// SPDX-License-Identifier: Apache-2.0
/*
 * kernel_stdio: `attach --pid` (kernel_stdio.h). Copies of another process's descriptors are
 * taken with pidfd_getfd (root), used to put the sockets in stdio_socks and read their cookies,
 * then closed: the map holds the sockets, the server and its client keep theirs unchanged.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "kernel.h"
#include "kernel_compile.h"
#include "kernel_events.h"
#include "kernel_stdio.h"
#include "policy.h"
#include "log.h"
#include "stdio_find.h"
#include "tcp.skel.h"

int kernel_stdio__attach_prog(struct tcp_bpf *skel)
{
	int fd = bpf_program__fd(skel->progs.handle_stdio_skb_replies);
	uint32_t zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(skel->maps.stdio_progs), &zero, &fd, BPF_ANY)) {
		log_err("stdio_progs: %s", strerror(errno));
		return -errno;
	}
	if (bpf_prog_attach(bpf_program__fd(skel->progs.handle_stdio_skb),
			    bpf_map__fd(skel->maps.stdio_socks), BPF_SK_SKB_STREAM_VERDICT, 0)) {
		log_err("sk_skb: attach to stdio_socks: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* Register a stream: key, session idx, direction, transport. */
static int stream_add(struct tcp_bpf *skel, uint64_t key, unsigned idx, unsigned dir,
		      const struct kernel_stdio_session *s, const struct stdio_end *e)
{
	struct mcpf_stdio_stream *v = calloc(1, sizeof(*v));
	int err = 0;

	if (!v)
		return -ENOMEM;
	v->session = idx;
	v->dir = dir;
	v->transport = s->transport;
	v->phase = MCPF_STDIO_SYNC;
	v->action = s->action;
	for (unsigned i = 0; e && i < e->nsharers && v->nkill < MCPF_STDIO_KILL_MAX; i++) {
		bool seen = false;

		for (unsigned j = 0; j < v->nkill; j++)
			seen |= v->kill_tgids[j] == (uint32_t)e->sharers[i].pid;
		if (!seen)
			v->kill_tgids[v->nkill++] = e->sharers[i].pid;
	}
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.stdio_streams), &key, v, BPF_ANY)) {
		err = -errno;
		log_err("pid %d: stdio_streams: %s", s->pid, strerror(errno));
	}
	free(v);
	return err;
}

/*
 * Take exactly n bytes out of fd (a copy of the server's stdin), into a new buffer at *out;
 * *got: how many came (fewer when a verdict took some first). 0 or -errno (logged).
 */
static int take_queued(pid_t pid, int fd, int n, char **out, size_t *got)
{
	char *buf = malloc(n > 0 ? n : 1);

	*got = 0;
	*out = buf;
	if (!buf)
		return -ENOMEM;
	while (*got < (size_t)n) {
		ssize_t r = recv(fd, buf + *got, n - *got, MSG_DONTWAIT);

		if (r < 0 && errno == ENOTSOCK)
			r = read(fd, buf + *got, n - *got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno != EAGAIN) {
			log_err("pid %d: its stdin: taking out what waits there: %s", pid,
				strerror(errno));
			return -errno;
		}
		if (r <= 0)
			break;
		*got += r;
	}
	return 0;
}

/*
 * Put fd `fd` of process pid in stdio_socks at slot: 0 or -errno (logged). queued (unless NULL):
 * the bytes still on the socket's own receive queue once it is in the map; with fresh, those
 * are taken out into fresh->held (and *queued is 0).
 */
static int sock_insert(struct tcp_bpf *skel, pid_t pid, int fd, uint32_t slot, const char *what,
		       int *queued, struct kernel_stdio_session *fresh)
{
	int copy = stdio_find__take(pid, fd), err = 0;
	uint64_t value;

	if (copy < 0)
		return copy;
	value = (uint64_t)copy;
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.stdio_socks), &slot, &value, BPF_ANY)) {
		err = -errno;
		log_err("pid %d fd %d (%s): into stdio_socks: %s", pid, fd, what, strerror(errno));
	} else if (queued && ioctl(copy, SIOCINQ, queued)) {
		err = -errno;
		log_err("pid %d fd %d (%s): SIOCINQ: %s", pid, fd, what, strerror(errno));
	} else if (fresh && *queued > 0) {
		/* the server has read nothing: no byte of the socket's own queue is its yet */
		err = take_queued(pid, copy, *queued, &fresh->held, &fresh->nheld);
		*queued = 0;
	}
	close(copy);
	return err;
}

/*
 * Attach program p (what: for the log) and pin its link at path: pinned, the link outlives this
 * process (a killed attach keeps enforcing). 0 or -errno (logged).
 */
static int link_pin(struct bpf_program *p, const char *path, const char *what)
{
	struct bpf_link *l = bpf_program__attach(p);
	int err;

	if (!l) {
		err = -errno;
		log_err("%s: attach: %s", what, strerror(-err));
		return err;
	}
	err = bpf_link__pin(l, path);
	bpf_link__disconnect(l);
	bpf_link__destroy(l);
	if (err)
		log_err("%s: pin: %s", path, strerror(-err));
	return err;
}

/*
 * The guard (bpf/stdio.bpf.h handle_stdio_guard) on the tracepoint of every datagram copy,
 * attached with the first socketpair and pinned: a crashed attach keeps it, detach removes it
 * before the sockets leave the map. 0 or -errno (logged).
 */
static int guard_attach(struct tcp_bpf *skel)
{
	if (!access(KERNEL_PIN_GUARD, F_OK))
		return 0;
	return link_pin(skel->progs.handle_stdio_guard, KERNEL_PIN_GUARD,
			"tp_btf/skb_copy_datagram_iovec (the guard of socketpair stdins)");
}

/* Watch the plain reads of session idx's stdin, queued bytes left to read as they are. */
static int guard_arm(struct tcp_bpf *skel, unsigned idx, const struct kernel_stdio_session *s,
		     int queued)
{
	struct mcpf_stdio_guard g = { .pre = queued, .session = idx };

	if (bpf_map_update_elem(bpf_map__fd(skel->maps.stdio_guards), &s->req_key, &g, BPF_ANY)) {
		log_err("pid %d: stdio_guards: %s", s->pid, strerror(errno));
		return -errno;
	}
	if (queued > 0)
		log_info(
			"pid %d: %d bytes its client sent before the attachment wait unread in its "
			"stdin: they reach it as they are",
			s->pid, queued);
	return 0;
}

/* The cookie of fd `fd` of pid, or 0 (logged). */
static uint64_t cookie_of(pid_t pid, int fd)
{
	int copy = stdio_find__take(pid, fd);
	uint64_t c;

	if (copy < 0)
		return 0;
	c = stdio_find__cookie(copy);
	close(copy);
	return c;
}

/*
 * Stop pid and continue it: a read it is blocked in restarts (no handler runs for SIGSTOP and
 * SIGCONT; a parent sees the stop only with WUNTRACED). what, why: for the log.
 */
static void restart_reads(pid_t pid, const char *what, const char *why)
{
	char comm[16];

	stdio_find__comm(pid, comm);
	if (kill(pid, SIGSTOP)) {
		log_warn("pid %d (%s): blocked in a read of %s %s, and cannot be stopped to "
			 "restart it (%s): it may not see what comes next",
			 pid, comm, what, why, strerror(errno));
		return;
	}
	if (!stdio_find__stopped(pid, 1000))
		log_warn("pid %d: did not stop within 1 s", pid);
	kill(pid, SIGCONT);
	log_info("pid %d (%s): its read of %s, blocked %s, restarted (SIGSTOP, SIGCONT)", pid, comm,
		 what, why);
}

/*
 * A thread blocked in a read of a socket since before the socket went into stdio_socks waits on
 * the socket's own queue, where nothing comes any more: what the client sends now goes to the
 * map's queue, which only reads begun after the insertion see (measured: a server reading its
 * stdin with blocking read(2) lost every call). Such a process is stopped and continued: the
 * kernel restarts the read, and the restarted read goes through the map. Only a process with a
 * thread asleep on the socket's own queue: a read that began after the insertion sleeps in the
 * map's receive path, which returns EAGAIN, not a restart, when a signal wakes it (a blocking
 * reader would take that for an error). what: for the log.
 */
static void kick_readers(const struct stdio_holder *h, unsigned n, const char *what)
{
	for (unsigned i = 0; i < n; i++) {
		bool seen = false;
		pid_t tid;

		for (unsigned j = 0; j < i; j++)
			seen |= h[j].pid == h[i].pid;
		if (!seen && stdio_find__readers(h[i].pid, h[i].fd, true, &tid, 1))
			restart_reads(h[i].pid, what, "since before the attachment");
	}
}

/* Remember the readers of socket ino, which goes in stdio_socks, for the watchdog. */
static void readers_add(struct kernel_stdio_session *s, const struct stdio_holder *h, unsigned n,
			uint64_t ino, bool answers)
{
	for (unsigned i = 0; i < n && s->nreaders < KERNEL_STDIO_READERS; i++)
		s->readers[s->nreaders++] = (struct kernel_stdio_reader){
			.pid = h[i].pid, .fd = h[i].fd, .ino = ino, .answers = answers
		};
}

/* Is fd of pid still the socket (else the pipe) of inode ino? */
static bool holds(pid_t pid, int fd, uint64_t ino, bool socket)
{
	char path[64], link[64], want[40];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return false;
	link[n] = 0;
	snprintf(want, sizeof(want), "%s:[%llu]", socket ? "socket" : "pipe",
		 (unsigned long long)ino);
	return !strcmp(link, want);
}

/*
 * Warn, once, when r's process reads the socket with blocking reads: a blocking read of a socket
 * in a SOCKMAP returns EAGAIN when it is woken with no bytes for it (unix_bpf_recvmsg): at its
 * client's close (instead of 0), at a signal (instead of a restart), and at the second of the
 * two wakeups the verdict's data_ready makes when the reader took the bytes between them. Told
 * once the file is non-blocking (a Node server makes its stdin so when it starts) or a thread
 * is seen blocked in a read of it.
 */
static void tell_mode(struct kernel_stdio_reader *r)
{
	char comm[16];
	pid_t tid;
	int flags;

	if (r->mode_told)
		return;
	flags = stdio_find__fd_flags(r->pid, r->fd);
	if (flags < 0 || (flags & O_NONBLOCK)) {
		r->mode_told = true;
		return;
	}
	if (!stdio_find__readers(r->pid, r->fd, false, &tid, 1))
		return;
	r->mode_told = true;
	if (!holds(r->pid, r->fd, r->ino, true))
		return;
	stdio_find__comm(r->pid, comm);
	log_warn("pid %d (%s): reads %s with blocking reads: such a read of a socket in the map "
		 "can fail with EAGAIN (a kernel limit), which a program may take for an error or "
		 "the end of its input: see \"Blocking readers\" in the README",
		 r->pid, comm, r->answers ? "the server's stdout" : "its stdin");
}

void kernel_stdio__unstick(struct kernel_stdio_session *s, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		for (unsigned j = 0; j < s[i].nreaders; j++) {
			struct kernel_stdio_reader *r = &s[i].readers[j];
			pid_t tids[8];
			unsigned k, nt = stdio_find__readers(r->pid, r->fd, true, tids, 8);
			bool again = false;

			if (!s[i].ended)
				tell_mode(r);

			for (k = 0; k < nt; k++)
				again |= tids[k] == r->stuck;
			r->stuck = nt ? tids[0] : 0;
			if (!again || !r->stuck || !holds(r->pid, r->fd, r->ino, true))
				continue;
			restart_reads(r->pid, r->answers ? "the server's stdout" : "its stdin",
				      "on the socket's own queue, which the map no longer fills");
			r->stuck = 0;
		}
	}
}

/* A fresh server's pipe stdin: what waits in it, taken out (kernel_stdio__resend writes it). */
static int pipe_take(struct kernel_stdio_session *s)
{
	int copy = stdio_find__take(s->pid, 0), n = 0, err = 0;

	if (copy < 0)
		return copy;
	if (ioctl(copy, FIONREAD, &n)) {
		err = -errno;
		log_err("pid %d: its stdin pipe: FIONREAD: %s", s->pid, strerror(errno));
	} else if (n > 0) {
		err = take_queued(s->pid, copy, n, &s->held, &s->nheld);
	}
	close(copy);
	return err;
}

/* What s says of its server pid and its client, from the ends of its stdin and stdout. */
static void describe(struct kernel_stdio_session *s, pid_t pid, const struct stdio_end *in,
		     const struct stdio_end *out)
{
	s->pid = pid;
	stdio_find__comm(pid, s->comm);
	snprintf(s->desc, sizeof(s->desc), "stdin: %s; stdout: %s", in->desc, out->desc);
	if (in->npeers) {
		s->client_fd = in->peers[0].fd;
		s->client_pid = in->peers[0].pid;
		memcpy(s->client_comm, in->peers[0].comm, sizeof(s->client_comm));
	}
}

/*
 * The key of the stream of requests to a stdin: a socketpair's is the cookie of the client's end
 * (which sends), a pipe's its inode; 0: none found.
 */
static uint64_t requests_key(const struct stdio_end *in)
{
	if (in->kind == STDIO_PIPE)
		return MCPF_STDIO_PIPE_KEY(in->ino);
	if (in->kind != STDIO_UNIX_STREAM)
		return 0;
	if (in->peer_cookie)
		return in->peer_cookie;
	return in->npeers ? cookie_of(in->peers[0].pid, in->peers[0].fd) : 0;
}

/*
 * Is the stream key a session's already? A process that shares its stdin with an enrolled
 * server (a child npx or a shell started on the same stdio) is enforced on through that
 * session: -EALREADY (said), and nothing of that session is touched. 0: it is no session's.
 */
static int stream_taken(struct tcp_bpf *skel, uint64_t key, pid_t pid)
{
	void *v = malloc(bpf_map__value_size(skel->maps.stdio_streams));
	int err = 0;

	if (!v)
		return -ENOMEM;
	if (!bpf_map_lookup_elem(bpf_map__fd(skel->maps.stdio_streams), &key, v)) {
		log_info(
			"pid %d: its stdin is enforced on already, as the stdin of session %u (it "
			"shares it, as a child npx or a shell started does): enforced through that "
			"session",
			(int)pid, ((struct mcpf_stdio_stream *)v)->session);
		err = -EALREADY;
	}
	free(v);
	return err;
}

/* Remember who reads the pipe of stdin in (the watchdog's readers are sockets'). */
static void pipe_readers_add(struct kernel_stdio_session *s, const struct stdio_end *in)
{
	for (unsigned i = 0; i < in->nsharers && i < KERNEL_STDIO_READERS; i++)
		s->pipe_readers[s->npipe_readers++] = (struct kernel_stdio_reader){
			.pid = in->sharers[i].pid, .fd = in->sharers[i].fd, .ino = in->ino
		};
}

int kernel_stdio__add(struct tcp_bpf *skel, unsigned idx, pid_t pid, enum mcpf_pipe_action action,
		      struct kernel_stdio_session *s)
{
	return kernel_stdio__add_fresh(skel, idx, pid, action, s, false);
}

int kernel_stdio__add_fresh(struct tcp_bpf *skel, unsigned idx, pid_t pid,
			    enum mcpf_pipe_action action, struct kernel_stdio_session *s,
			    bool fresh)
{
	struct stdio_end in, out;
	int err, queued = 0;
	uint64_t key;

	memset(s, 0, sizeof(*s));
	s->pid = pid;
	s->action = action;
	s->idx = idx;
	err = stdio_find__server(pid, &in, &out);
	if (err)
		return err;
	describe(s, pid, &in, &out);
	if ((in.kind == STDIO_UNIX_STREAM &&
	     !bpf_program__autoload(skel->progs.handle_stdio_skb)) ||
	    (in.kind == STDIO_PIPE && !bpf_program__autoload(skel->progs.handle_pipe_judge))) {
		log_err("pid %d: stdin is now %s, not what it was when the programs to load were "
			"chosen: attach again",
			pid, in.desc);
		return -EAGAIN;
	}
	/* its stream first: one of a session's already is not taken (nor, on failure, removed) */
	key = requests_key(&in);
	err = key ? stream_taken(skel, key, pid) : 0;
	if (err)
		return err;
	if (in.kind == STDIO_UNIX_STREAM) {
		s->transport = MCPF_STDIO_SOCKETPAIR;
		s->req_key = key;
		if (!s->req_key) {
			log_err("pid %d: stdin is a socketpair whose other end was not found (%s): "
				"its client cannot be watched",
				pid, in.desc);
			return -ENOENT;
		}
		err = stream_add(skel, s->req_key, idx, MCPF_STDIO_REQUESTS, s, NULL);
		if (!err)
			err = guard_attach(skel);
		if (err)
			return err;
		/* the stream is known before a byte of it is judged */
		err = sock_insert(skel, pid, 0, 2 * idx, "the server's end of its stdin", &queued,
				  fresh ? s : NULL);
		if (!err)
			err = guard_arm(skel, idx, s, queued);
		if (err)
			return err;
		kick_readers(in.sharers, in.nsharers, "its stdin");
		readers_add(s, in.sharers, in.nsharers, in.ino, false);
	} else if (in.kind == STDIO_PIPE) {
		s->transport = MCPF_STDIO_PIPE;
		s->req_key = key;
		pipe_readers_add(s, &in);
		err = stream_add(skel, s->req_key, idx, MCPF_STDIO_REQUESTS, s, &in);
		if (!err && fresh)
			err = pipe_take(s);
		if (err)
			return err;
	} else {
		log_err("pid %d: stdin is %s: not the stdio of an MCP client (a socketpair or a "
			"pipe)",
			pid, in.desc);
		return -ENOTSUP;
	}
	if (out.kind == STDIO_UNIX_STREAM) {
		/* the server's stdout sends the answers; the client's end receives them */
		s->rep_key = out.cookie ? out.cookie : cookie_of(pid, 1);
		if (!s->rep_key || !out.npeers) {
			log_warn("pid %d: stdout's other end was not found (%s): answers to denied "
				 "calls will say \"Method not found\"",
				 pid, out.desc);
			s->rep_key = 0;
			return 0;
		}
		err = stream_add(skel, s->rep_key, idx, MCPF_STDIO_REPLIES, s, NULL);
		if (!err)
			err = sock_insert(skel, out.peers[0].pid, out.peers[0].fd, 2 * idx + 1,
					  "the client's end of the server's stdout", NULL, NULL);
		if (!err) {
			kick_readers(out.peers, out.npeers, "the server's stdout");
			readers_add(s, out.peers, out.npeers, out.peer_ino, true);
		}
		return err;
	}
	if (s->transport == MCPF_STDIO_SOCKETPAIR)
		log_warn("pid %d: stdout is %s: answers to denied calls will say \"Method not "
			 "found\"",
			 pid, out.desc);
	return 0;
}

int kernel_stdio__readopt(struct tcp_bpf *skel, pid_t pid, struct kernel_stdio_session *s)
{
	int streams = bpf_map__fd(skel->maps.stdio_streams), idx = -ENOENT;
	struct mcpf_stdio_stream *v = malloc(sizeof(*v));
	enum log_level saved = log_level;
	struct stdio_end in, out;
	uint64_t key = 0;

	if (!v)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	log_level = LOG_LVL_NONE; /* a program that is no server is looked at quietly */
	if (stdio_find__server(pid, &in, &out))
		goto out;
	key = requests_key(&in);
	if (!key || bpf_map_lookup_elem(streams, &key, v) || v->dir != MCPF_STDIO_REQUESTS ||
	    v->session >= MCPF_STDIO_MAX_SESSIONS)
		goto out;
	idx = (int)v->session;
	s->idx = idx;
	s->action = v->action;
	s->transport = v->transport;
	s->req_key = key;
	describe(s, pid, &in, &out);
	if (in.kind == STDIO_UNIX_STREAM)
		readers_add(s, in.sharers, in.nsharers, in.ino, false);
	else
		pipe_readers_add(s, &in);
	if (out.kind == STDIO_UNIX_STREAM && out.npeers) {
		key = out.cookie ? out.cookie : cookie_of(pid, 1);
		if (key && !bpf_map_lookup_elem(streams, &key, v) && v->dir == MCPF_STDIO_REPLIES &&
		    v->session == (unsigned)idx) {
			s->rep_key = key;
			readers_add(s, out.peers, out.npeers, out.peer_ino, true);
		}
	}
out:
	log_level = saved;
	free(v);
	return idx;
}

unsigned kernel_stdio__drop_unadopted(struct tcp_bpf *skel, const bool *adopted)
{
	int streams = bpf_map__fd(skel->maps.stdio_streams);
	struct mcpf_stdio_stream *v = malloc(sizeof(*v));
	uint64_t key, next, gone[2 * MCPF_STDIO_MAX_SESSIONS];
	bool dropped[MCPF_STDIO_MAX_SESSIONS] = {};
	unsigned n = 0, sessions = 0;

	if (!v)
		return 0;
	for (int e = bpf_map_get_next_key(streams, NULL, &next); !e;
	     e = bpf_map_get_next_key(streams, &key, &next)) {
		key = next;
		if (!bpf_map_lookup_elem(streams, &key, v) &&
		    (v->session >= MCPF_STDIO_MAX_SESSIONS || !adopted[v->session]) &&
		    n < sizeof(gone) / sizeof(gone[0])) {
			gone[n++] = key;
			if (v->session < MCPF_STDIO_MAX_SESSIONS)
				dropped[v->session] = true;
		}
	}
	free(v);
	for (unsigned i = 0; i < n; i++) {
		bpf_map_delete_elem(streams, &gone[i]);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.stdio_guards), &gone[i]);
	}
	for (uint32_t i = 0; i < MCPF_STDIO_MAX_SESSIONS; i++) {
		struct mcpf_conn zero = {};
		uint32_t slot = 2 * i;

		if (adopted[i])
			continue;
		/* no stream: its socket's bytes pass as they are until it leaves the map here */
		bpf_map_delete_elem(bpf_map__fd(skel->maps.stdio_socks), &slot);
		slot++;
		bpf_map_delete_elem(bpf_map__fd(skel->maps.stdio_socks), &slot);
		bpf_map_update_elem(bpf_map__fd(skel->maps.stdio_pending), &i, &zero, BPF_ANY);
		kernel__drop_stdio_budgets(skel, i);
		sessions += dropped[i];
	}
	return sessions;
}

int kernel_stdio__resend(struct kernel_stdio_session *s)
{
	size_t off = 0;
	int fd, err = 0;

	if (!s->held)
		return 0;
	if (s->transport == MCPF_STDIO_SOCKETPAIR) {
		/* the client's open file: its flags and options stay as the client set them */
		fd = s->client_pid ? stdio_find__take(s->client_pid, s->client_fd) : -ENOENT;
	} else {
		char path[64];

		/* a writer of its own on the same pipe: what it writes, the tracepoints judge */
		snprintf(path, sizeof(path), "/proc/%d/fd/0", (int)s->pid);
		fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
	}
	if (fd < 0) {
		log_err("pid %d: the %zu bytes its client sent before it ran cannot be sent again "
			"(no way into its stdin: %s): they are lost",
			s->pid, s->nheld, strerror(-fd));
		err = fd;
		goto out;
	}
	while (off < s->nheld) {
		ssize_t w = s->transport == MCPF_STDIO_SOCKETPAIR ?
				    send(fd, s->held + off, s->nheld - off,
					 MSG_DONTWAIT | MSG_NOSIGNAL) :
				    write(fd, s->held + off, s->nheld - off);
		struct pollfd p = { .fd = fd, .events = POLLOUT };

		if (w < 0 && errno == EINTR)
			continue;
		/* full (a server that does not read yet): room for up to a second */
		if (w < 0 && errno == EAGAIN && poll(&p, 1, 1000) > 0)
			continue;
		if (w <= 0) {
			err = w < 0 ? -errno : -EIO;
			log_err("pid %d: sending again the %zu bytes its client sent before it ran: "
				"%s after %zu: the rest is lost",
				s->pid, s->nheld, strerror(-err), off);
			break;
		}
		off += w;
	}
	close(fd);
	if (!err)
		log_info("pid %d: %zu bytes its client sent before it ran were taken out of its "
			 "stdin and sent again, to be judged",
			 s->pid, s->nheld);
out:
	free(s->held);
	s->held = NULL;
	s->nheld = 0;
	return err;
}

void kernel_stdio__conn(const struct kernel_stdio_session *s, char *out, size_t size)
{
	snprintf(out, size, "%s:%d", s && s->transport == MCPF_STDIO_PIPE ? "pipe" : "socketpair",
		 s ? s->pid : 0);
}

bool kernel_stdio__ended(struct tcp_bpf *skel, const struct kernel_stdio_session *s)
{
	if (s->ended)
		return true;
	if (s->transport == MCPF_STDIO_SOCKETPAIR) {
		uint32_t slot = 2 * s->idx;
		uint64_t cookie;

		return bpf_map_lookup_elem(bpf_map__fd(skel->maps.stdio_socks), &slot, &cookie) &&
		       errno == ENOENT;
	}
	for (unsigned i = 0; i < s->npipe_readers; i++)
		if (holds(s->pipe_readers[i].pid, s->pipe_readers[i].fd, s->pipe_readers[i].ino,
			  false))
			return false;
	/* a reader found at attach that was not listed (more than KERNEL_STDIO_READERS): live */
	return s->npipe_readers < KERNEL_STDIO_READERS;
}

void kernel_stdio__remove(struct tcp_bpf *skel, struct kernel_stdio_session *s)
{
	struct mcpf_conn zero = {};
	uint32_t slot = 2 * s->idx + 1;

	/* the answers' socket (the client's end of stdout) may live on: out of the map first */
	bpf_map_delete_elem(bpf_map__fd(skel->maps.stdio_socks), &slot);
	if (s->req_key) {
		bpf_map_delete_elem(bpf_map__fd(skel->maps.stdio_streams), &s->req_key);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.stdio_guards), &s->req_key);
	}
	if (s->rep_key)
		bpf_map_delete_elem(bpf_map__fd(skel->maps.stdio_streams), &s->rep_key);
	bpf_map_update_elem(bpf_map__fd(skel->maps.stdio_pending), &s->idx, &zero, BPF_ANY);
	s->ended = true;
	s->nreaders = 0;
}

bool kernel_stdio__has_pipes(const struct kernel_stdio_session *s, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (s[i].transport == MCPF_STDIO_PIPE)
			return true;
	return false;
}

void kernel_stdio__flush(int map_fd)
{
	int streams = bpf_obj_get(MCPF_PIN_DIR "/stdio_streams");
	uint64_t key;

	/*
	 * The streams go first: a socket leaves the psock only when its last reference goes, and
	 * a reader asleep in read(2) holds one, so the verdict still runs on the next skb sent to
	 * it after the deletion (it judged the first call after detach, and refused a denied
	 * one). With no stream it passes every byte as it is.
	 */
	if (streams >= 0) {
		while (!bpf_map_get_next_key(streams, NULL, &key))
			if (bpf_map_delete_elem(streams, &key))
				break;
		close(streams);
	}
	for (uint32_t i = 0; i < 2 * MCPF_STDIO_MAX_SESSIONS; i++)
		bpf_map_delete_elem(map_fd, &i);
}

/* The tracepoints of the pipe hook, with the names their pinned links take. */
static struct bpf_program *pipe_prog(struct tcp_bpf *skel, unsigned i, const char **name)
{
	struct {
		struct bpf_program *p;
		const char *name;
	} t[] = {
		/*
		 * the exits first: an entry of pipe_writes that a sys_enter makes is always taken
		 * out at its sys_exit (one left would refuse its thread's later reads under refuse)
		 */
		{ skel->progs.handle_pipe_write_exit, "write_exit" },
		{ skel->progs.handle_pipe_writev_exit, "writev_exit" },
		{ skel->progs.handle_pipe_pwritev2_exit, "pwritev2_exit" },
		{ skel->progs.handle_pipe_splice_exit, "splice_exit" },
		{ skel->progs.handle_pipe_tee_exit, "tee_exit" },
		{ skel->progs.handle_pipe_vmsplice_exit, "vmsplice_exit" },
		{ skel->progs.handle_pipe_sendfile_exit, "sendfile64_exit" },
		{ skel->progs.handle_pipe_copy_range_exit, "copy_file_range_exit" },
		{ skel->progs.handle_pipe_write, "write" },
		{ skel->progs.handle_pipe_writev, "writev" },
		{ skel->progs.handle_pipe_pwritev2, "pwritev2" },
		{ skel->progs.handle_pipe_splice, "splice" },
		{ skel->progs.handle_pipe_tee, "tee" },
		{ skel->progs.handle_pipe_vmsplice, "vmsplice" },
		{ skel->progs.handle_pipe_sendfile, "sendfile64" },
		{ skel->progs.handle_pipe_copy_range, "copy_file_range" },
	};

	if (i >= sizeof(t) / sizeof(t[0]))
		return NULL;
	*name = t[i].name;
	return t[i].p;
}

static const char *const pipe_link_names[] = {
	"write",      "writev",	       "pwritev2",	  "splice",
	"tee",	      "vmsplice",      "sendfile64",	  "copy_file_range",
	"write_exit", "writev_exit",   "pwritev2_exit",	  "splice_exit",
	"tee_exit",   "vmsplice_exit", "sendfile64_exit", "copy_file_range_exit",
	"refuse",
};

/* The stages the pipe tracepoints call: the judge, and the kill under --pipe-action kill. */
static int pipe_stages(struct tcp_bpf *skel, enum mcpf_pipe_action action)
{
	int progs_fd = bpf_map__fd(skel->maps.pipe_progs);
	uint32_t k = 0;
	int fd;

	if (action == MCPF_PIPE_KILL && !bpf_program__autoload(skel->progs.handle_pipe_kill)) {
		log_err("--pipe-action kill: this kernel has no bpf_send_signal_task kfunc (6.13+): "
			"a denied call on a pipe cannot be stopped here (--pipe-action audit counts "
			"and audits it)");
		return -ENOTSUP;
	}
	fd = bpf_program__fd(skel->progs.handle_pipe_judge);
	if (bpf_map_update_elem(progs_fd, &k, &fd, BPF_ANY))
		goto map_err;
	k = 1;
	fd = bpf_program__fd(skel->progs.handle_pipe_kill);
	if (action == MCPF_PIPE_KILL ? bpf_map_update_elem(progs_fd, &k, &fd, BPF_ANY) :
				       bpf_map_delete_elem(progs_fd, &k) && errno != ENOENT)
		goto map_err;
	return 0;
map_err:
	log_err("pipe_progs: %s", strerror(errno));
	return -errno;
}

/*
 * The BPF LSM program of --pipe-action refuse on file_permission, pinned (a daemon that comes
 * back with refuse over an attachment without it puts it on): 0 or -errno (logged).
 */
static int refuse_attach(struct tcp_bpf *skel)
{
	char path[256];

	snprintf(path, sizeof(path), "%srefuse", KERNEL_PIN_PIPE_LINKS);
	if (!access(path, F_OK))
		return 0;
	if (!bpf_program__autoload(skel->progs.handle_pipe_refuse)) {
		log_err("--pipe-action refuse: the BPF LSM program was not loaded");
		return -ENOTSUP;
	}
	return link_pin(skel->progs.handle_pipe_refuse, path,
			"lsm/file_permission (--pipe-action refuse)");
}

int kernel_stdio__adopt_progs(struct tcp_bpf *skel, enum mcpf_pipe_action action, bool *pipes)
{
	const char *name;
	char path[256];
	int err = 0;

	*pipes = false;
	if (bpf_program__autoload(skel->progs.handle_stdio_skb)) {
		/* the sockets in the map keep the verdict they had; those that go in get this */
		err = kernel_stdio__attach_prog(skel);
		if (!err) {
			unlink(KERNEL_PIN_STDIO_PROG);
			err = bpf_program__pin(skel->progs.handle_stdio_skb, KERNEL_PIN_STDIO_PROG);
			if (err)
				log_err("%s: pin: %s", KERNEL_PIN_STDIO_PROG, strerror(-err));
		}
	}
	if (err || !bpf_program__autoload(skel->progs.handle_pipe_judge))
		return err;
	/* the tracepoints left run on, with this build's stages */
	pipe_prog(skel, 0, &name);
	snprintf(path, sizeof(path), "%s%s", KERNEL_PIN_PIPE_LINKS, name);
	if (access(path, F_OK))
		return 0;
	*pipes = true;
	err = pipe_stages(skel, action);
	if (!err && action == MCPF_PIPE_REFUSE)
		err = refuse_attach(skel);
	return err;
}

int kernel_stdio__attach_pipes(struct tcp_bpf *skel, enum mcpf_pipe_action action)
{
	int err;
	char path[256];
	const char *name;
	struct bpf_program *p;

	err = pipe_stages(skel, action);
	if (err)
		return err;
	/* before the tracepoints: a write they judge denied is refused from the first */
	if (action == MCPF_PIPE_REFUSE && (err = refuse_attach(skel)))
		return err;
	for (unsigned i = 0; (p = pipe_prog(skel, i, &name)); i++) {
		char what[64];

		snprintf(path, sizeof(path), "%s%s", KERNEL_PIN_PIPE_LINKS, name);
		snprintf(what, sizeof(what), "tracepoint syscalls/sys_*_%s", name);
		err = link_pin(p, path, what);
		if (err)
			return err;
	}
	return 0;
}

void kernel_stdio__unpin_pipes(void)
{
	char path[256];

	for (size_t i = 0; i < sizeof(pipe_link_names) / sizeof(pipe_link_names[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", KERNEL_PIN_PIPE_LINKS, pipe_link_names[i]);
		unlink(path);
	}
}

/* One reason, JSON-escaped, under MCPF_REASON_KEY(gen, kind, idx). */
static int reason_put(int fd, unsigned gen, unsigned kind, unsigned idx, const char *text)
{
	struct mcpf_reason r = {};
	uint32_t key = MCPF_REASON_KEY(gen, kind, idx);
	static const char hex[] = "0123456789abcdef";

	if (!text)
		return 0;
	for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
		char esc[6];
		size_t n = 0;

		if (*c == '"' || *c == '\\') {
			esc[n++] = '\\';
			esc[n++] = *c;
		} else if (*c < 0x20 || *c == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[*c >> 4];
			esc[5] = hex[*c & 15];
			n = 6;
		} else {
			esc[n++] = *c;
		}
		if (r.len + n > MCPF_REASON_MAX - 3) { /* cut, whole characters only */
			while (r.len && (r.text[r.len - 1] & 0xc0) == 0x80)
				r.len--;
			if (r.len && (unsigned char)r.text[r.len - 1] >= 0xc0)
				r.len--;
			memcpy(&r.text[r.len], "...", 3);
			r.len += 3;
			break;
		}
		memcpy(&r.text[r.len], esc, n);
		r.len += n;
	}
	if (bpf_map_update_elem(fd, &key, &r, BPF_ANY)) {
		log_err("tcp_reasons: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int kernel_stdio__reasons(struct tcp_bpf *skel, const struct kernel_compiled *kc, unsigned gen)
{
	int fd = bpf_map__fd(skel->maps.tcp_reasons), err = 0;
	const struct policy *p = kc->pol;
	uint32_t key, next;
	bool more;

	/* the generation's old reasons go first */
	more = !bpf_map_get_next_key(fd, NULL, &key);
	while (more) {
		more = !bpf_map_get_next_key(fd, &key, &next);
		if ((key >> 24) == (gen & (MCPF_GENS - 1)))
			bpf_map_delete_elem(fd, &key);
		key = next;
	}
	if (!p)
		return 0;
	/* each kind's reason, for every index (a rule's own reason where it has one) */
	for (unsigned k = MCPF_KIND_HIDDEN; k < MCPF_KIND_UNPARSED; k++)
		err |= reason_put(fd, gen, k, 0xffff,
				  kernel__reason(kc, k, MCPF_TCP_RULE_NONE, (unsigned)-1));
	for (size_t i = 0; i < p->nrules && i < 0xffff && !err; i++)
		if (p->rules[i].reason)
			err |= reason_put(fd, gen, MCPF_KIND_RULE, i,
					  kernel__reason(kc, MCPF_KIND_RULE, i, 0));
	if (err)
		log_warn("tcp_reasons: full: some answers to denied stdio calls say \"denied by "
			 "policy\" without their reason (the audit lines have it)");
	return 0;
}
