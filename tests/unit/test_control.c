// SPDX-License-Identifier: Apache-2.0
/*
 * The request socket of a running attach (control): a request answered, an answer too long cut
 * to a whole line, a peer that sends nothing answered after a second, the socket's mode, no
 * listener; a peer other than root refused.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "control.h"
#include "log.h"

static char dir[64], path[100];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/mcpfence-control-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/run/control.sock", dir);
	return 0;
}

static int teardown(void **state)
{
	char run[160];

	(void)state;
	unlink(path);
	snprintf(run, sizeof(run), "%s/run", dir);
	rmdir(run);
	rmdir(dir);
	return 0;
}

static void answer(void *ctx, const char *line, char *reply)
{
	(void)ctx;
	if (!strcmp(line, "long")) {
		memset(reply, 'x', CONTROL_LINE_MAX - 1);
		reply[CONTROL_LINE_MAX - 1] = 0;
	} else {
		snprintf(reply, CONTROL_LINE_MAX, "ok %s", line);
	}
}

/* Ask line in a child; serve lfd until it is done; its answer (or "!" and -errno) in out. */
static void ask(int lfd, const char *line, char *out, size_t size)
{
	int p[2], status;
	pid_t pid;
	ssize_t n;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		char reply[CONTROL_LINE_MAX];
		int e = control__request(path, line, reply, 5000);

		if (e)
			snprintf(reply, sizeof(reply), "!%d", e);
		_exit(write(p[1], reply, strlen(reply)) < 0);
	}
	close(p[1]);
	for (int i = 0; i < 100 && waitpid(pid, &status, WNOHANG) == 0; i++) {
		struct pollfd pf = { .fd = lfd, .events = POLLIN };

		if (poll(&pf, 1, 50) > 0)
			control__serve(lfd, answer, NULL);
	}
	n = read(p[0], out, size - 1);
	out[n > 0 ? n : 0] = 0;
	close(p[0]);
}

static void test_request_answered(void **state)
{
	char out[CONTROL_LINE_MAX + 16];
	struct stat st;
	int lfd;

	(void)state;
	lfd = control__listen(path);
	assert_true(lfd >= 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	ask(lfd, "enroll 42", out, sizeof(out));
	if (geteuid() == 0) {
		assert_string_equal(out, "ok enroll 42");
		/* an answer longer than a line: cut, and still read whole */
		ask(lfd, "long", out, sizeof(out));
		assert_int_equal(strlen(out), CONTROL_LINE_MAX - 2);
		assert_int_equal(strspn(out, "x"), CONTROL_LINE_MAX - 2);
	} else {
		assert_string_equal(out, "error: only root may ask");
	}
	control__close(lfd, path);
	assert_int_equal(access(path, F_OK), -1);
}

/* A peer that connects and sends nothing is answered after a second, and serving returns. */
static void test_silent_peer(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[128] = "";
	int lfd, c;
	ssize_t n;

	(void)state;
	lfd = control__listen(path);
	assert_true(lfd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	control__serve(lfd, answer, NULL);
	n = read(c, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	assert_string_equal(buf, geteuid() == 0 ? "error: no request line within a second\n" :
						  "error: only root may ask\n");
	close(c);
	control__close(lfd, path);
}

static void test_no_listener(void **state)
{
	char reply[CONTROL_LINE_MAX];
	enum log_level old = log_level;

	(void)state;
	log_level = LOG_LVL_NONE;
	assert_int_equal(control__request(path, "enroll 1", reply, 1000), -ENOENT);
	log_level = old;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_request_answered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_silent_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_listener, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
