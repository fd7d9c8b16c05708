/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the tests that run the mcpfence binary share (test_attach.c, test_stdio.c): finding the
 * binary, running it and `attach`, files, skipping, and an attachment left behind. Included after cmocka.h by
 * a file that has declared `static struct env env` with at least
 *
 *	char mcpfence[PATH_MAX];	the binary
 *	char skip[512];			why the tests cannot run here (each one skips)
 *	char broken[2048];		why they cannot run although they should (each one fails)
 */
#ifndef MCPFENCE_TESTS_HARNESS_H
#define MCPFENCE_TESTS_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <linux/limits.h>
#include <sys/wait.h>
#include "skip.h"

static inline int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		err = -EIO;
	close(fd);
	return err;
}

/* mcpfence with args (NULL-terminated), its output in out; its exit status. */
static inline int mcpfence(char *out, size_t size, const char *arg, ...)
{
	const char *argv[16] = { env.mcpfence };
	int p[2], st, n = 1;
	size_t got = 0;
	va_list ap;
	pid_t pid;

	va_start(ap, arg);
	for (const char *a = arg; a && n < 15; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		ssize_t r = read(p[0], out + got, size - 1 - got);

		if (r <= 0 || got + r >= size - 1) {
			got += r > 0 ? r : 0;
			break;
		}
		got += r;
	}
	out[got] = 0;
	close(p[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* $MCPFENCE, else the mcpfence of this build: BUILD/tests/bpf/TEST -> BUILD/mcpfence. */
static inline int find_mcpfence(char *out, size_t size)
{
	const char *e = getenv("MCPFENCE");
	char exe[PATH_MAX];
	ssize_t n;

	if (e && *e) {
		snprintf(out, size, "%s", e);
		return access(out, X_OK) ? -errno : 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -ENOENT;
	exe[n] = 0;
	for (int i = 0; i < 3; i++) {
		char *s = strrchr(exe, '/');

		if (!s)
			return -ENOENT;
		*s = 0;
	}
	if (strlen(exe) + sizeof("/mcpfence") > size)
		return -ENAMETOOLONG;
	snprintf(out, size, "%s/mcpfence", exe);
	return access(out, X_OK) ? -errno : 0;
}

/*
 * An attachment left by a killed attach is cleaned; a live one is not ours to touch. false (and
 * env.broken says why) when the tests cannot have the kernel plane to themselves.
 */
static inline bool take_attachment(void)
{
	char out[1024];

	switch (kernel__attachment()) {
	case KERNEL_ATTACHED_LIVE:
		snprintf(env.broken, sizeof(env.broken),
			 "%s holds the attachment of a running mcpfence attach: the tests would "
			 "fight it",
			 MCPF_PIN_DIR);
		return false;
	case KERNEL_ATTACHED_STALE:
		print_message("cleaning a stale attachment in %s\n", MCPF_PIN_DIR);
		mcpfence(out, sizeof(out), "detach", NULL);
		if (kernel__attachment() != KERNEL_ATTACHED_NONE) {
			snprintf(env.broken, sizeof(env.broken),
				 "%s: a stale attachment that detach does not remove: %s",
				 MCPF_PIN_DIR, out);
			return false;
		}
		return true;
	default:
		return true;
	}
}

/* A running `mcpfence attach`. */
struct attach {
	pid_t pid;
	int out; /* its stdout and stderr */
	char log[1 << 18];
	size_t len;
	char audit[128];
};

static struct attach *running; /* stopped by the teardown of a test that failed */

/* Read what attach printed so far (without blocking); true when it holds s. */
static inline bool attach_says(struct attach *at, const char *s)
{
	for (;;) {
		ssize_t r;

		if (at->len >= sizeof(at->log) - 1)
			break;
		r = read(at->out, at->log + at->len, sizeof(at->log) - 1 - at->len);
		if (r <= 0)
			break;
		at->len += r;
	}
	at->log[at->len] = 0;
	return strstr(at->log, s) != NULL;
}

/*
 * Run argv (an attach) until it prints ready, polling every poll_us; fails with its output if it
 * stops first or says nothing of the kind within timeout_s.
 */
static inline void attach_spawn(struct attach *at, const char *const *argv, const char *ready,
				int timeout_s, useconds_t poll_us)
{
	time_t until = time(NULL) + timeout_s;
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	at->len = 0;
	at->pid = fork();
	if (at->pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	at->out = p[0];
	running = at;
	fcntl(at->out, F_SETFL, O_NONBLOCK);
	while (!attach_says(at, ready)) {
		int st;

		if (waitpid(at->pid, &st, WNOHANG) == at->pid || time(NULL) > until) {
			attach_says(at, "");
			if (kill(at->pid, 0) == 0) {
				kill(at->pid, SIGKILL);
				waitpid(at->pid, &st, 0);
			}
			at->pid = 0;
			close(at->out);
			running = NULL;
			fail_msg("mcpfence attach did not start:\n%s", at->log);
		}
		usleep(poll_us);
	}
}

/* SIGTERM, wait up to 300 polls of poll_us for it to end (it detaches), then detach anyway. */
static inline void attach_stop_every(struct attach *at, useconds_t poll_us)
{
	char out[1024];
	int st;

	if (at->pid > 0) {
		kill(at->pid, SIGTERM);
		for (int i = 0; i < 300 && waitpid(at->pid, &st, WNOHANG) == 0; i++)
			usleep(poll_us);
		if (waitpid(at->pid, &st, WNOHANG) == 0) {
			kill(at->pid, SIGKILL);
			waitpid(at->pid, &st, 0);
		}
		attach_says(at, "");
		close(at->out);
		at->pid = 0;
	}
	running = NULL;
	mcpfence(out, sizeof(out), "detach", NULL);
}

#endif
