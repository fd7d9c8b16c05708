// SPDX-License-Identifier: Apache-2.0
/*
 * Where the approval control socket lives and what guards it (user/approval.c), as the README
 * says: $MCPFENCE_RUNTIME_DIR, else /run/mcpfence for root, $XDG_RUNTIME_DIR/mcpfence or
 * /tmp/mcpfence-UID for others; the directory must be ours, a directory (not a link), mode 0700;
 * the socket is made mode 0600.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "approval.h"
#include "log.h"

static char base[64];

static int setup(void **state)
{
	snprintf(base, sizeof(base), "/tmp/mcpfence-ctl-XXXXXX");
	if (!mkdtemp(base))
		return -1;
	log_level = LOG_LVL_NONE;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	return system(cmd) ? -1 : 0;
}

static void test_runtime_dir_checks(void **state)
{
	char dir[256], got[256], link[256];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/run", base);
	setenv("MCPFENCE_RUNTIME_DIR", dir, 1);
	assert_int_equal(approval__dir(got, sizeof(got), false), -ENOENT);
	assert_int_equal(approval__dir(got, sizeof(got), true), 0);
	assert_string_equal(got, dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* others may enter: refused */
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(approval__dir(got, sizeof(got), false), -EPERM);
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(approval__dir(got, sizeof(got), false), 0);
	/* a link to a good directory: refused */
	snprintf(link, sizeof(link), "%s/link", base);
	assert_int_equal(symlink(dir, link), 0);
	setenv("MCPFENCE_RUNTIME_DIR", link, 1);
	assert_int_equal(approval__dir(got, sizeof(got), false), -EPERM);
	/* another user's directory: refused (as root: one made ours, then given away) */
	if (geteuid() == 0) {
		assert_int_equal(chown(dir, 65534, 65534), 0);
		setenv("MCPFENCE_RUNTIME_DIR", dir, 1);
		assert_int_equal(approval__dir(got, sizeof(got), false), -EPERM);
		assert_int_equal(chown(dir, 0, 0), 0);
	}
	unsetenv("MCPFENCE_RUNTIME_DIR");
}

static void test_socket_mode(void **state)
{
	char dir[256];
	struct approvals q;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/sock", base);
	setenv("MCPFENCE_RUNTIME_DIR", dir, 1);
	approvals__init(&q);
	assert_int_equal(approvals__listen(&q), 0);
	assert_int_equal(lstat(q.sock_path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_non_null(strstr(q.sock_path, dir));
	approvals__fini(&q);
	assert_int_equal(access(q.sock_path, F_OK), -1);
	unsetenv("MCPFENCE_RUNTIME_DIR");
}

/* Without $MCPFENCE_RUNTIME_DIR: root's, then another uid's with and without XDG_RUNTIME_DIR. */
static void test_default_locations(void **state)
{
	char got[256];
	int st;
	pid_t pid;

	unsetenv("MCPFENCE_RUNTIME_DIR");
	if (geteuid() != 0) {
		print_message("skipped: the locations of root and of another uid need root\n");
		skip();
	}
	approval__dir(got, sizeof(got), false);
	assert_string_equal(got, "/run/mcpfence");
	pid = fork();
	if (pid == 0) {
		char want[64];

		if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
			_exit(10);
		setenv("XDG_RUNTIME_DIR", "/run/user/65534", 1);
		approval__dir(got, sizeof(got), false);
		if (strcmp(got, "/run/user/65534/mcpfence"))
			_exit(11);
		unsetenv("XDG_RUNTIME_DIR");
		approval__dir(got, sizeof(got), false);
		snprintf(want, sizeof(want), "/tmp/mcpfence-%u", 65534);
		_exit(strcmp(got, want) ? 12 : 0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runtime_dir_checks),
		cmocka_unit_test(test_socket_mode),
		cmocka_unit_test(test_default_locations),
	};

	return cmocka_run_group_tests_name("approval control socket", tests, setup, teardown);
}
