// SPDX-License-Identifier: Apache-2.0
/*
 * stdio_find: the stdin and stdout of a running process and who holds their other ends (see
 * stdio_find.h). What an fd is comes from its link in /proc/PID/fd; for a socket, sock_diag
 * (NETLINK_SOCK_DIAG, one exact request per inode) says whether it is an AF_UNIX stream and which
 * socket is its peer; who holds an inode comes from one pass over every /proc/PID/fd, and the
 * access mode of a pipe from /proc/PID/fdinfo.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <linux/limits.h> /* PATH_MAX; <limits.h> is user/limits.h under -Iuser */
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include "log.h"
#include "stdio_find.h"

const char *stdio_find__kind_name(enum stdio_kind kind)
{
	switch (kind) {
	case STDIO_MISSING:
		return "missing";
	case STDIO_UNIX_STREAM:
		return "unix stream";
	case STDIO_PIPE:
		return "pipe";
	case STDIO_OTHER:
		return "other";
	}
	return "?";
}

/* Append to a desc; what does not fit is cut and the line ends with "...". */
static void desc_add(struct stdio_end *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void desc_add(struct stdio_end *e, const char *fmt, ...)
{
	size_t len = strnlen(e->desc, sizeof(e->desc)), room = sizeof(e->desc) - len;
	va_list ap;
	int n;

	if (room <= 1) {
		/* full to the last byte: what comes now is cut, and the line says so */
		memcpy(e->desc + sizeof(e->desc) - 4, "...", 4);
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(e->desc + len, room, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= room)
		memcpy(e->desc + sizeof(e->desc) - 4, "...", 4);
}

void stdio_find__exe(pid_t pid, char *out, size_t size, const char *fallback)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, out, size - 1);
	if (n > 0)
		out[n] = 0;
	else
		snprintf(out, size, "%s", fallback);
}

bool stdio_find__fd_is(pid_t pid, int fd, const char *type)
{
	char path[64], link[64];
	size_t len = strlen(type);
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return false;
	link[n] = 0;
	return !strncmp(link, type, len) && !strncmp(link + len, ":[", 2);
}

void stdio_find__comm(pid_t pid, char comm[16])
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, comm, 15);
	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		strcpy(comm, "?");
		return;
	}
	comm[n] = 0;
	comm[strcspn(comm, "\n")] = 0;
}

/* The start of file name under dir (/proc/PID), NUL-terminated in buf; false if unread. */
static bool read_at(int dir, const char *name, char *buf, size_t size)
{
	ssize_t n;
	int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	return true;
}

/* The state letter of /proc/PID/stat (R, S, Z...), read through dir (/proc/PID); 0: unknown. */
static char proc_state(int dir)
{
	char buf[512], *p;

	if (!read_at(dir, "stat", buf, sizeof(buf)))
		return 0;
	p = strrchr(buf, ')'); /* the comm may hold a ')' itself */
	return p && p[1] == ' ' ? p[2] : 0;
}

/* The Tgid of /proc/PID/status, read through dir (/proc/PID): the process of a thread; 0: unknown */
static pid_t proc_tgid(int dir)
{
	char buf[1024], *p;

	if (!read_at(dir, "status", buf, sizeof(buf)))
		return 0;
	p = strstr(buf, "\nTgid:");
	return p ? (pid_t)strtol(p + 6, NULL, 10) : 0;
}

/*
 * Is the thread of dir (/proc/PID/task/TID) asleep in AF_UNIX's own receive path
 * (unix_stream_read_generic, where unix_stream_data_wait sleeps, inlined or not), not in the
 * psock's (unix_bpf_recvmsg)?
 */
static bool plain_wait(int dir)
{
	char w[64];

	if (!read_at(dir, "wchan", w, sizeof(w)))
		return false;
	return !strcmp(w, "unix_stream_read_generic") || !strcmp(w, "unix_stream_data_wait");
}

unsigned stdio_find__readers(pid_t pid, int fd, bool plain, pid_t *tids, unsigned max)
{
	static const long reads[] = { SYS_read, SYS_readv, SYS_recvfrom, SYS_recvmsg,
				      SYS_recvmmsg };
	char path[64], line[256];
	struct dirent *d;
	unsigned n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return 0;
	while (n < max && (d = readdir(dir))) {
		bool found = false;
		long nr;
		unsigned long long arg0;
		int tdir;

		if (d->d_name[0] == '.')
			continue;
		tdir = openat(dirfd(dir), d->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (tdir < 0)
			continue;
		/* "NR 0xARG0 0xARG1 ... 0xSP 0xPC" while in a syscall; "running" otherwise */
		if (read_at(tdir, "syscall", line, sizeof(line)) &&
		    sscanf(line, "%ld %llx", &nr, &arg0) == 2)
			for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
				found |= nr == reads[i] && arg0 == (unsigned long long)fd;
		if (found && (!plain || plain_wait(tdir)))
			tids[n++] = (pid_t)strtol(d->d_name, NULL, 10);
		close(tdir);
	}
	closedir(dir);
	return n;
}

bool stdio_find__stopped(pid_t pid, int ms)
{
	char path[32];
	int dir;

	snprintf(path, sizeof(path), "/proc/%d", pid);
	dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return false;
	for (int i = 0; i < ms; i++) {
		char st = proc_state(dir);

		if (st == 'T' || st == 't' || !st) {
			close(dir);
			return st != 0;
		}
		usleep(1000);
	}
	close(dir);
	return false;
}

int stdio_find__fd_flags(pid_t pid, int fd)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n <= 0)
		return n < 0 ? -errno : -ENODATA;
	buf[n] = 0;
	p = strstr(buf, "flags:");
	if (!p)
		return -ENODATA;
	return (int)(strtoul(p + 6, NULL, 8) & 0x7fffffff);
}

/* A copy of fd of pid; errors are logged only when loud (a probe may fail quietly). */
static int take(pid_t pid, int fd, bool loud)
{
	int pidfd, copy, err;

	if (pid <= 0) {
		if (loud)
			log_err("pid %d: not a process id", pid);
		return -EINVAL;
	}
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		err = -errno;
		if (loud)
			log_err("pid %d: pidfd_open: %s", pid,
				err == -ESRCH  ? "no such process" :
				err == -ENOSYS ? "not implemented (Linux 5.6 has pidfd_getfd)" :
						 strerror(-err));
		return err;
	}
	copy = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	err = copy < 0 ? -errno : copy;
	close(pidfd);
	if (err < 0 && loud)
		log_err("pid %d fd %d: pidfd_getfd: %s%s", pid, fd, strerror(-err),
			err == -EPERM ? " (it needs ptrace rights over the process: root, or "
					"CAP_SYS_PTRACE)" :
			err == -EBADF ? " (the process has no such descriptor)" :
					"");
	return err;
}

int stdio_find__take(pid_t pid, int fd)
{
	return take(pid, fd, true);
}

uint64_t stdio_find__cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	int err;

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len)) {
		err = errno;
		log_err("fd %d: getsockopt(SO_COOKIE): %s", fd, strerror(err));
		errno = err;
		return 0;
	}
	return cookie;
}

/* ---- sock_diag ---- */

/* A NETLINK_SOCK_DIAG socket in our own network namespace. */
static int diag_socket_here(pid_t pid)
{
	struct timeval tv = { .tv_sec = 2 };
	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG), err;

	if (nl < 0) {
		err = -errno;
		log_err("pid %d: socket(AF_NETLINK, NETLINK_SOCK_DIAG): %s", pid, strerror(-err));
		return err;
	}
	/* the kernel answers within sendto(); a bound on the wait all the same */
	if (setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv))) {
		err = -errno;
		log_err("pid %d: setsockopt(NETLINK_SOCK_DIAG, SO_RCVTIMEO): %s", pid,
			strerror(-err));
		close(nl);
		return err;
	}
	return nl;
}

/*
 * A NETLINK_SOCK_DIAG socket in the network namespace of pid: sock_diag lists the AF_UNIX
 * sockets of the namespace that asks, so a server in a container is asked about from inside it
 * (setns of this thread there and back). Where that is not allowed, our own namespace.
 */
static int diag_socket(pid_t pid)
{
	struct stat self, them;
	char path[64];
	int ns = -1, back = -1, nl, err;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	if (stat(path, &them) || stat("/proc/thread-self/ns/net", &self) ||
	    (self.st_dev == them.st_dev && self.st_ino == them.st_ino))
		return diag_socket_here(pid);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	err = ns < 0 ? errno : 0;
	back = err ? -1 : open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (!err && back < 0)
		err = errno;
	if (!err && setns(ns, CLONE_NEWNET))
		err = errno;
	if (err) {
		log_warn("pid %d: entering its network namespace (%s): %s; sock_diag is asked in "
			 "ours, which does not list its sockets",
			 pid, path, strerror(err));
		nl = diag_socket_here(pid);
		goto out_close;
	}
	nl = diag_socket_here(pid);
	if (setns(back, CLONE_NEWNET)) {
		err = -errno;
		log_err("pid %d: setns back to our network namespace: %s", pid, strerror(-err));
		if (nl >= 0)
			close(nl);
		nl = err;
	}
out_close:
	if (ns >= 0)
		close(ns);
	if (back >= 0)
		close(back);
	return nl;
}

/* An AF_UNIX address as a human reads it: a path, or "@" and an abstract name. */
static void diag_name(struct stdio_diag *d, const uint8_t *p, size_t len)
{
	size_t o = 0;

	if (len > sizeof(((struct sockaddr_un *)0)->sun_path))
		len = sizeof(((struct sockaddr_un *)0)->sun_path);
	if (len && !p[0]) {
		d->name[o++] = '@';
		p++;
		len--;
	}
	for (size_t i = 0; i < len && p[i] && o + 1 < sizeof(d->name); i++)
		d->name[o++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
	d->name[o] = 0;
	if (!d->name[0])
		strcpy(d->name, "@");
}

/* The attributes of one SOCK_DIAG_BY_FAMILY answer; -EBADMSG if they do not add up. */
static int diag_parse(const struct nlmsghdr *h, uint32_t ino, struct stdio_diag *d)
{
	const struct unix_diag_msg *m = NLMSG_DATA(h);
	const struct rtattr *a;
	int len;

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)) || m->udiag_family != AF_UNIX ||
	    m->udiag_ino != ino)
		return -EBADMSG;
	memset(d, 0, sizeof(*d));
	d->type = m->udiag_type;
	d->state = m->udiag_state;
	d->cookie = (uint64_t)m->udiag_cookie[1] << 32 | m->udiag_cookie[0];
	len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));
	a = (const struct rtattr *)((const char *)m + NLMSG_ALIGN(sizeof(*m)));
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		size_t plen = RTA_PAYLOAD(a);

		switch (a->rta_type) {
		case UNIX_DIAG_PEER:
			if (plen < sizeof(uint32_t))
				return -EBADMSG;
			memcpy(&d->peer, RTA_DATA(a), sizeof(d->peer));
			d->has_peer = true;
			break;
		case UNIX_DIAG_NAME:
			diag_name(d, RTA_DATA(a), plen);
			break;
		case UNIX_DIAG_SHUTDOWN:
			if (plen >= 1)
				d->shutdown = *(const uint8_t *)RTA_DATA(a);
			break;
		}
	}
	return 0;
}

int stdio_find__diag_answer(const void *buf, size_t len, uint32_t seq, uint32_t ino,
			    struct stdio_diag *d)
{
	size_t off = 0;

	while (off + sizeof(struct nlmsghdr) <= len) {
		const struct nlmsghdr *h = (const void *)((const char *)buf + off);

		if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > len - off)
			return -EBADMSG; /* cut short, or lengths that do not add up */
		off += NLMSG_ALIGN(h->nlmsg_len);
		if (h->nlmsg_seq != seq)
			continue; /* what answers an older request */
		if (h->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(h);

			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				return -EBADMSG;
			if (!e->error)
				continue; /* an acknowledgement */
			return e->error < 0 ? e->error : -e->error;
		}
		if (h->nlmsg_type == NLMSG_DONE)
			return -ENOENT;
		if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY)
			return diag_parse(h, ino, d);
	}
	return off < len ? -EBADMSG : -ENODATA;
}

/*
 * Ask sock_diag about the AF_UNIX socket of inode ino (an exact request, not a dump): its type,
 * state, cookie, name and peer. 0; -ENOENT (not logged) when the namespace has no AF_UNIX
 * socket of that inode; another -errno, logged with pid and fd (what the inode is to us).
 */
static int diag_ask(int nl, pid_t pid, int fd, uint32_t ino, struct stdio_diag *d)
{
	static uint32_t seq;
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} msg = {
		.nlh = {
			.nlmsg_len = sizeof(msg),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST,
			.nlmsg_seq = ++seq,
		},
		.req = {
			.sdiag_family = AF_UNIX,
			.udiag_states = ~0u,
			.udiag_ino = ino,
			.udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_NAME,
			.udiag_cookie = { ~0u, ~0u }, /* INET_DIAG_NOCOOKIE: any cookie */
		},
	};
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	/* an answer is under a page (the kernel gives up beyond); room to see more than that */
	char buf[16384] __attribute__((aligned(8)));
	int err = -ENODATA;

	if (sendto(nl, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0) {
		err = -errno;
		log_err("pid %d fd %d: sock_diag request for unix inode %u: sendto: %s", pid, fd,
			ino, strerror(-err));
		return err;
	}
	/* a bound on the datagrams read: those of older requests (timed out) are skipped */
	for (int tries = 0; tries < 16 && err == -ENODATA; tries++) {
		struct sockaddr_nl from = {};
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr mh = { .msg_name = &from,
				     .msg_namelen = sizeof(from),
				     .msg_iov = &iov,
				     .msg_iovlen = 1 };
		ssize_t n = recvmsg(nl, &mh, 0);

		if (n < 0) {
			err = -errno;
			log_err("pid %d fd %d: sock_diag answer for unix inode %u: recvmsg: %s",
				pid, fd, ino,
				err == -EAGAIN ? "no answer within 2 s" : strerror(-err));
			return err == -EAGAIN ? -ETIMEDOUT : err;
		}
		if (mh.msg_flags & MSG_TRUNC) {
			log_err("pid %d fd %d: sock_diag answer for unix inode %u: truncated (more "
				"than %zu bytes)",
				pid, fd, ino, sizeof(buf));
			return -EMSGSIZE;
		}
		if (from.nl_pid == 0) /* from the kernel */
			err = stdio_find__diag_answer(buf, (size_t)n, msg.nlh.nlmsg_seq, ino, d);
	}
	if (err == -ENOENT || !err)
		return err;
	if (err == -ENODATA)
		log_err("pid %d fd %d: sock_diag: no answer for unix inode %u among the messages "
			"read",
			pid, fd, ino);
	else if (err == -EBADMSG)
		log_err("pid %d fd %d: sock_diag answer for unix inode %u: malformed (lengths or "
			"inode that do not add up)",
			pid, fd, ino);
	else
		log_err("pid %d fd %d: sock_diag of unix inode %u: %s", pid, fd, ino,
			strerror(-err));
	return err == -ENODATA ? -EPROTO : err;
}

/* ---- what one fd is ---- */

/* Beside an end while it is worked on: what the description needs. */
struct end_work {
	int fd;
	struct stdio_diag self, peer;
	bool self_known, peer_known;
};

static const char *family_name(int domain)
{
	switch (domain) {
	case AF_UNIX:
		return "unix";
	case AF_INET:
		return "IPv4";
	case AF_INET6:
		return "IPv6";
	case AF_NETLINK:
		return "netlink";
	case AF_VSOCK:
		return "vsock";
	}
	return "non-unix";
}

static const char *type_name(int type)
{
	switch (type) {
	case SOCK_STREAM:
		return "stream";
	case SOCK_DGRAM:
		return "datagram";
	case SOCK_SEQPACKET:
		return "seqpacket";
	case SOCK_RAW:
		return "raw";
	}
	return "unknown-type";
}

/*
 * A socket that sock_diag does not list as AF_UNIX in the namespace asked: the socket itself
 * (a copy of it) says what it is, when we may take it.
 */
static void socket_unlisted(pid_t pid, struct end_work *w, struct stdio_end *e)
{
	int copy = take(pid, w->fd, false), domain = -1, type = -1;
	socklen_t len = sizeof(int);

	if (copy >= 0) {
		if (getsockopt(copy, SOL_SOCKET, SO_DOMAIN, &domain, &len))
			domain = -1;
		len = sizeof(int);
		if (getsockopt(copy, SOL_SOCKET, SO_TYPE, &type, &len))
			type = -1;
		if (domain == AF_UNIX && type == SOCK_STREAM) {
			uint64_t cookie = 0;

			len = sizeof(cookie);
			if (!getsockopt(copy, SOL_SOCKET, SO_COOKIE, &cookie, &len))
				e->cookie = cookie;
		}
		close(copy);
	}
	if (domain == AF_UNIX && type == SOCK_STREAM) {
		e->kind = STDIO_UNIX_STREAM;
		log_warn("pid %d fd %d: a unix stream socket (inode %llu) that sock_diag does not "
			 "list (is the unix_diag module loaded? `modprobe unix_diag`): its peer is "
			 "unknown",
			 pid, w->fd, (unsigned long long)e->ino);
		desc_add(e,
			 "unix stream socket, inode %llu; client end unknown: sock_diag does not "
			 "list it (another network namespace? no unix_diag module?)",
			 (unsigned long long)e->ino);
		return;
	}
	e->kind = STDIO_OTHER;
	if (domain < 0)
		desc_add(e,
			 "a socket, inode %llu, that sock_diag does not list as unix: not an MCP "
			 "client's stdio",
			 (unsigned long long)e->ino);
	else
		desc_add(e, "a socket (%s, %s), inode %llu: not a unix stream", family_name(domain),
			 type_name(type), (unsigned long long)e->ino);
}

/* The socket of an fd: a unix stream (and its peer), or what else it is. 0 or -errno (logged). */
static int socket_classify(pid_t pid, int *nl, struct end_work *w, struct stdio_end *e)
{
	int err;

	if (*nl < 0) {
		*nl = diag_socket(pid);
		if (*nl < 0)
			return *nl;
	}
	err = e->ino > UINT32_MAX ? -ENOENT : diag_ask(*nl, pid, w->fd, (uint32_t)e->ino, &w->self);
	if (err == -ENOENT) {
		socket_unlisted(pid, w, e);
		return 0;
	}
	if (err)
		return err;
	w->self_known = true;
	e->cookie = w->self.cookie;
	if (w->self.type != SOCK_STREAM || w->self.state == 10 /* TCP_LISTEN */) {
		e->kind = STDIO_OTHER;
		desc_add(e, "a unix %s socket%s, inode %llu: not a connected unix stream",
			 w->self.state == 10 ? "listening" : type_name(w->self.type),
			 w->self.name[0] ? " (named)" : "", (unsigned long long)e->ino);
		return 0;
	}
	e->kind = STDIO_UNIX_STREAM;
	e->peer_ino = w->self.peer;
	if (!e->peer_ino)
		return 0;
	err = diag_ask(*nl, pid, w->fd, w->self.peer, &w->peer);
	if (err == -ENOENT)
		return 0; /* closed meanwhile, or in a namespace we do not see */
	if (err)
		return err;
	w->peer_known = true;
	e->peer_cookie = w->peer.cookie;
	return 0;
}

/* What the path of something other than a pipe or socket is, for a human. */
static void other_describe(const char *link, const struct stat *st, bool st_ok, struct stdio_end *e)
{
	e->kind = STDIO_OTHER;
	if (!strcmp(link, "/dev/null"))
		desc_add(e, "/dev/null: no MCP client is connected");
	else if (!strncmp(link, "/dev/pts/", 9) || !strncmp(link, "/dev/tty", 8) ||
		 !strcmp(link, "/dev/console"))
		desc_add(e, "a terminal (%s): not an MCP client's stdio", link);
	else if (st_ok && S_ISFIFO(st->st_mode))
		desc_add(e, "a named FIFO (%s): not an anonymous pipe (not supported)", link);
	else if (st_ok && S_ISREG(st->st_mode))
		desc_add(e, "a file (%s): not an MCP client's stdio", link);
	else if (st_ok && S_ISCHR(st->st_mode))
		desc_add(e, "a character device (%s): not an MCP client's stdio", link);
	else
		desc_add(e, "%s: neither a pipe nor a socket", link);
}

/*
 * What fd w->fd of pid is (dir: /proc/PID): kind, inode, for a unix stream its peer. 0 or
 * -errno (logged).
 */
static int end_classify(pid_t pid, int dir, int *nl, struct end_work *w, struct stdio_end *e)
{
	char name[32], link[PATH_MAX];
	unsigned long long ino;
	struct stat st;
	bool st_ok;
	ssize_t n;
	int err;

	snprintf(name, sizeof(name), "fd/%d", w->fd);
	n = readlinkat(dir, name, link, sizeof(link) - 1);
	if (n < 0) {
		err = -errno;
		if (err == -ENOENT && !faccessat(dir, "fd", F_OK, 0) && proc_state(dir) != 'Z') {
			e->kind = STDIO_MISSING;
			desc_add(e, "fd %d is closed", w->fd);
			return 0;
		}
		if (err == -ENOENT || err == -ESRCH) {
			log_err("pid %d: has exited (reading /proc/%d/fd/%d)", pid, pid, w->fd);
			return -ESRCH;
		}
		log_err("pid %d: readlink /proc/%d/fd/%d: %s%s", pid, pid, w->fd, strerror(-err),
			err == -EACCES || err == -EPERM ?
				" (another user's process: root or CAP_SYS_PTRACE reads it)" :
				"");
		return err == -EPERM ? -EACCES : err;
	}
	link[n] = 0;
	if (sscanf(link, "socket:[%llu]", &ino) == 1) {
		e->ino = ino;
		return socket_classify(pid, nl, w, e);
	}
	if (sscanf(link, "pipe:[%llu]", &ino) == 1) {
		e->kind = STDIO_PIPE;
		e->ino = ino;
		return 0;
	}
	st_ok = !fstatat(dir, name, &st, 0);
	if (st_ok)
		e->ino = st.st_ino;
	other_describe(link, &st, st_ok, e);
	return 0;
}

/* ---- who holds what ---- */

enum role { ROLE_SHARER = 1, ROLE_PEER = 2 };

/* One inode looked for: where a holder goes, by whether it reads or writes it. */
struct target {
	bool pipe; /* else a socket */
	uint64_t ino;
	struct stdio_end *end;
	enum role reader, writer; /* a socket: the same role for both */
};

static void holder_add(struct stdio_end *e, enum role role, pid_t pid, int fd, const char *comm)
{
	struct stdio_holder *list = role == ROLE_PEER ? e->peers : e->sharers;
	unsigned *n = role == ROLE_PEER ? &e->npeers : &e->nsharers;
	unsigned *more = role == ROLE_PEER ? &e->peers_more : &e->sharers_more;

	if (*n == STDIO_HOLDERS_MAX) {
		(*more)++;
		return;
	}
	list[*n].pid = pid;
	list[*n].fd = fd;
	snprintf(list[*n].comm, sizeof(list[*n].comm), "%s", comm);
	(*n)++;
}

/* One fd of pid, that links to link: into the lists of the targets it is. */
static void holder_match(pid_t server, pid_t pid, int fd, const char *link, struct target *t,
			 unsigned nt, char comm[16])
{
	unsigned long long ino;
	bool pipe;
	int mode = -1;

	if (sscanf(link, "socket:[%llu]", &ino) == 1)
		pipe = false;
	else if (sscanf(link, "pipe:[%llu]", &ino) == 1)
		pipe = true;
	else
		return;
	for (unsigned i = 0; i < nt; i++) {
		bool reads, writes;

		if (t[i].pipe != pipe || t[i].ino != ino)
			continue;
		if (!comm[0])
			stdio_find__comm(pid, comm);
		if (t[i].reader == t[i].writer) {
			reads = true;
			writes = false;
		} else {
			if (mode < 0) {
				mode = stdio_find__fd_flags(pid, fd);
				if (mode >= 0)
					mode &= O_ACCMODE;
			}
			if (mode < 0)
				continue; /* gone meanwhile */
			reads = mode == O_RDONLY || mode == O_RDWR;
			writes = mode == O_WRONLY || mode == O_RDWR;
		}
		if (reads && !(t[i].reader == ROLE_PEER && pid == server))
			holder_add(t[i].end, t[i].reader, pid, fd, comm);
		if (writes && !(t[i].writer == ROLE_PEER && pid == server))
			holder_add(t[i].end, t[i].writer, pid, fd, comm);
	}
}

/* The fds of one process against the targets; -errno when they cannot be listed. */
static int holders_of(int procfd, pid_t server, pid_t pid, struct target *t, unsigned nt)
{
	char path[32], link[PATH_MAX], comm[16] = "";
	struct dirent *de;
	DIR *fds;
	int dfd;

	snprintf(path, sizeof(path), "%d/fd", pid);
	dfd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	fds = fdopendir(dfd);
	if (!fds) {
		close(dfd);
		return -errno;
	}
	while ((de = readdir(fds))) {
		char *end;
		long fd = strtol(de->d_name, &end, 10);
		ssize_t n;

		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end || (int)fd != fd)
			continue;
		n = readlinkat(dfd, de->d_name, link, sizeof(link) - 1);
		if (n <= 0)
			continue; /* closed meanwhile */
		link[n] = 0;
		holder_match(server, pid, (int)fd, link, t, nt, comm);
	}
	closedir(fds);
	return 0;
}

/*
 * Every process's fds against the targets. Processes that exit meanwhile are skipped; those
 * whose fds we may not read are counted in *unreadable. 0 or -errno (logged).
 */
static int holders_scan(pid_t server, struct target *t, unsigned nt, unsigned *unreadable)
{
	struct dirent *de;
	DIR *proc;
	int err;

	*unreadable = 0;
	proc = opendir("/proc");
	if (!proc) {
		err = -errno;
		log_err("pid %d: listing the holders of its stdio: opendir /proc: %s", server,
			strerror(-err));
		return err;
	}
	while ((de = readdir(proc))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);

		if (de->d_name[0] < '1' || de->d_name[0] > '9' || *end || (pid_t)pid != pid)
			continue;
		err = holders_of(dirfd(proc), server, (pid_t)pid, t, nt);
		if (err && err != -ENOENT && err != -ESRCH)
			(*unreadable)++;
	}
	closedir(proc);
	return 0;
}

/* ---- the description ---- */

/* "pid 50 (node) fd 18, pid 61 (npx) fds 0, 1": a process's fds together (the scan's order). */
static void holders_describe(struct stdio_end *e, const struct stdio_holder *h, unsigned n,
			     unsigned more)
{
	for (unsigned i = 0; i < n; i++) {
		if (i && h[i].pid == h[i - 1].pid)
			desc_add(e, ", %d", h[i].fd);
		else
			desc_add(e, "%spid %d (%s) %s %d", i ? ", " : "", h[i].pid, h[i].comm,
				 i + 1 < n && h[i + 1].pid == h[i].pid ? "fds" : "fd", h[i].fd);
	}
	if (more)
		desc_add(e, " and %u more", more);
}

/* Sharers other than the server itself: a child it started with the same stdio. */
static void sharers_describe(pid_t server, struct stdio_end *e)
{
	struct stdio_holder others[STDIO_HOLDERS_MAX];
	unsigned n = 0;

	for (unsigned i = 0; i < e->nsharers; i++)
		if (e->sharers[i].pid != server)
			others[n++] = e->sharers[i];
	if (!n && !e->sharers_more)
		return;
	desc_add(e, "; shared with ");
	holders_describe(e, others, n, e->sharers_more);
}

static void end_describe(pid_t server, const struct end_work *w, struct stdio_end *e)
{
	unsigned long long ino = e->ino, peer = e->peer_ino;

	if (e->kind == STDIO_UNIX_STREAM && w->self_known) {
		if (!w->self.name[0] && w->peer_known && !w->peer.name[0])
			desc_add(e, "unix socketpair, inode %llu", ino);
		else if (w->self.name[0])
			desc_add(e, "unix stream socket %s, inode %llu", w->self.name, ino);
		else
			desc_add(e, "unix stream socket, inode %llu", ino);
		if (!peer) {
			desc_add(e, "; no client end (%s)",
				 w->self.has_peer ? "it was closed" : "not connected");
		} else {
			desc_add(e, "; client end inode %llu", peer);
			if (w->peer_known && w->peer.name[0])
				desc_add(e, " (%s)", w->peer.name);
			if (e->npeers)
				desc_add(e, " held by ");
			else
				desc_add(e, " held by no process");
			holders_describe(e, e->peers, e->npeers, e->peers_more);
		}
	} else if (e->kind == STDIO_PIPE) {
		bool in = w->fd == 0;

		desc_add(e, "pipe, inode %llu; ", ino);
		if (e->npeers) {
			desc_add(e, in ? "written by " : "read by ");
			holders_describe(e, e->peers, e->npeers, e->peers_more);
		} else {
			desc_add(e, "no other process holds it open for %s",
				 in ? "writing" : "reading");
		}
	} else if (e->kind != STDIO_UNIX_STREAM) {
		return; /* described as classified; a unix stream sock_diag does not list, too */
	}
	sharers_describe(server, e);
	if (e->unreadable)
		desc_add(e, "; %u processes could not be read", e->unreadable);
}

/* Targets for one end: the server side's inode, and the client side's (a peer, a pipe mode). */
static unsigned targets_of(struct stdio_end *e, int fd, struct target *t)
{
	unsigned n = 0;

	if (e->kind == STDIO_UNIX_STREAM) {
		t[n++] = (struct target){ false, e->ino, e, ROLE_SHARER, ROLE_SHARER };
		if (e->peer_ino)
			t[n++] = (struct target){ false, e->peer_ino, e, ROLE_PEER, ROLE_PEER };
	} else if (e->kind == STDIO_PIPE) {
		t[n++] = (struct target){ true, e->ino, e, fd == 0 ? ROLE_SHARER : ROLE_PEER,
					  fd == 0 ? ROLE_PEER : ROLE_SHARER };
	}
	return n;
}

int stdio_find__server(pid_t pid, struct stdio_end *in, struct stdio_end *out)
{
	struct end_work w[2] = { { .fd = 0 }, { .fd = 1 } };
	struct stdio_end *ends[2] = { in, out };
	struct target t[4];
	unsigned nt = 0, unreadable = 0;
	char path[32];
	int dir, nl = -1, err = 0;
	pid_t tgid;
	char state;

	memset(in, 0, sizeof(*in));
	memset(out, 0, sizeof(*out));
	if (pid <= 0) {
		log_err("pid %d: not a process id", pid);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "/proc/%d", pid);
	dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0) {
		err = -errno;
		log_err("pid %d: open %s: %s", pid, path,
			err == -ENOENT ? "no such process" : strerror(-err));
		return err == -ENOENT ? -ESRCH : err;
	}
	state = proc_state(dir);
	if (state == 'Z' || state == 'X') {
		log_err("pid %d: has exited (a zombie: its stdio is closed)", pid);
		err = -ESRCH;
		goto out_close;
	}
	tgid = proc_tgid(dir);
	if (tgid > 0 && tgid != pid) {
		log_err("pid %d: a thread of process %d: give the process's pid", pid, tgid);
		err = -EINVAL;
		goto out_close;
	}
	for (int i = 0; i < 2 && !err; i++)
		err = end_classify(pid, dir, &nl, &w[i], ends[i]);
	if (err)
		goto out_close;
	for (int i = 0; i < 2; i++)
		nt += targets_of(ends[i], i, t + nt);
	if (nt)
		err = holders_scan(pid, t, nt, &unreadable);
	if (err)
		goto out_close;
	for (int i = 0; i < 2; i++) {
		if (ends[i]->kind == STDIO_UNIX_STREAM || ends[i]->kind == STDIO_PIPE)
			ends[i]->unreadable = unreadable;
		end_describe(pid, &w[i], ends[i]);
	}
out_close:
	if (nl >= 0)
		close(nl);
	close(dir);
	return err;
}
