// SPDX-License-Identifier: Apache-2.0
/* control: a running attach's request socket (control.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "control.h"
#include "log.h"

static int addr_of(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		log_err("%s: path too long for a socket", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

int control__listen(const char *path)
{
	struct sockaddr_un sa;
	mode_t old;
	int fd, e;

	e = addr_of(path, &sa);
	if (e)
		return e;
	{
		char dir[sizeof(sa.sun_path)];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = 0;
			if (mkdir(dir, 0700) && errno != EEXIST) {
				e = -errno;
				log_err("%s: mkdir: %s", dir, strerror(errno));
				return e;
			}
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		e = -errno;
		log_err("control socket: %s", strerror(errno));
		return e;
	}
	/* only one attach runs (the pins say so): a socket file here is a dead one's */
	unlink(path);
	old = umask(0177); /* 0600 from its creation: no moment open to others */
	e = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	umask(old);
	if (!e && listen(fd, 16))
		e = -errno;
	if (e) {
		log_err("%s: %s", path, strerror(-e));
		close(fd);
		return e;
	}
	return fd;
}

/* Read one line from fd within the deadline (ms of CLOCK_MONOTONIC); its length, or -1. */
static int read_line(int fd, char *buf, size_t size, int timeout_ms)
{
	struct timespec t0, t;
	size_t n = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (n < size - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left, r;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = timeout_ms -
		       (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -1;
		r = read(fd, buf + n, size - 1 - n);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			return -1;
		for (int i = 0; i < r; i++)
			if (buf[n + i] == '\n') {
				buf[n + i] = 0;
				return (int)(n + i);
			}
		n += r;
	}
	return -1; /* longer than a line may be */
}

/* No SIGPIPE: a peer may close first (a refusal is written before the request is read). */
static void write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= w;
	}
}

void control__serve(int lfd, control_fn fn, void *ctx)
{
	for (;;) {
		char line[CONTROL_LINE_MAX], reply[CONTROL_LINE_MAX + 1];
		struct ucred cred;
		socklen_t len = sizeof(cred);
		int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0)
			return;
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) || cred.uid != 0) {
			write_all(c, "error: only root may ask\n", 25);
			close(c);
			continue;
		}
		if (read_line(c, line, sizeof(line), 1000) < 0) {
			write_all(c, "error: no request line within a second\n", 39);
			close(c);
			continue;
		}
		reply[0] = 0;
		fn(ctx, line, reply);
		reply[CONTROL_LINE_MAX - 2] =
			0; /* with its newline, a line the asker reads whole */
		len = strlen(reply);
		reply[len] = '\n';
		write_all(c, reply, len + 1);
		close(c);
	}
}

void control__close(int lfd, const char *path)
{
	if (lfd < 0)
		return;
	close(lfd);
	unlink(path);
}

int control__request(const char *path, const char *line, char *reply, int timeout_ms)
{
	struct sockaddr_un sa;
	int fd, e;

	e = addr_of(path, &sa);
	if (e)
		return e;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		e = -errno;
		log_err("%s: %s: is `mcpfence attach` running?", path, strerror(errno));
		close(fd);
		return e;
	}
	write_all(fd, line, strlen(line));
	write_all(fd, "\n", 1);
	if (read_line(fd, reply, CONTROL_LINE_MAX, timeout_ms) < 0) {
		log_err("%s: no answer within %d ms", path, timeout_ms);
		close(fd);
		return -ETIMEDOUT;
	}
	close(fd);
	return 0;
}
