// SPDX-License-Identifier: Apache-2.0
/*
 * The server identity that keys grant budgets: --name when given, else the command line as
 * run starts it, argv[0] found through PATH as execvp finds it and resolved to a real path.
 * Real files, symlinks and directories in a temporary tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "server_proc.h"

static char dir[64], *saved_path;

static void touch(const char *name, mode_t mode)
{
	char p[128];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_CREAT | O_WRONLY, mode);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(p, mode), 0);
}

static int setup(void **state)
{
	char p[128];

	strcpy(dir, "/tmp/mcpfence-id-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(p, sizeof(p), "%s/a", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/b", dir);
	mkdir(p, 0755);
	saved_path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return -1;
	if (saved_path)
		setenv("PATH", saved_path, 1);
	free(saved_path);
	return 0;
}

static void expect(char *const argv[], const char *name, const char *want)
{
	char *got = server_proc__identity(argv, name);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_identity(void **state)
{
	char path[256], want[512], link[128], target[128];

	/* a not executable file first along PATH is passed over, as execvp does */
	touch("a/srv", 0644);
	touch("b/srv", 0755);
	snprintf(path, sizeof(path), "%s/a:%s/b", dir, dir);
	setenv("PATH", path, 1);
	snprintf(want, sizeof(want), "cmd:%zu:%s/b/srv4:--db1:x", strlen(dir) + 6, dir);
	expect((char *const[]){ "srv", "--db", "x", NULL }, NULL, want);

	/* a symlink is its target; two spellings of one file are one server */
	snprintf(link, sizeof(link), "%s/a/alias", dir);
	snprintf(target, sizeof(target), "%s/b/srv", dir);
	assert_int_equal(symlink(target, link), 0);
	snprintf(want, sizeof(want), "cmd:%zu:%s/b/srv", strlen(dir) + 6, dir);
	expect((char *const[]){ "alias", NULL }, NULL, want);
	snprintf(link, sizeof(link), "%s/a/../b/./srv", dir);
	expect((char *const[]){ link, NULL }, NULL, want);

	/* arguments carry their lengths: a separator inside one is no second argument */
	snprintf(want, sizeof(want),
		 "cmd:%zu:%s/b/srv3:a\x1f"
		 "b",
		 strlen(dir) + 6, dir);
	expect((char *const[]){ "srv",
				"a\x1f"
				"b",
				NULL },
	       NULL, want);
	snprintf(want, sizeof(want), "cmd:%zu:%s/b/srv1:a1:b", strlen(dir) + 6, dir);
	expect((char *const[]){ "srv", "a", "b", NULL }, NULL, want);

	/* an empty PATH entry is the working directory */
	assert_int_equal(chdir(dir), 0);
	touch("here", 0755);
	setenv("PATH", "/nonexistent::/usr/bin", 1);
	snprintf(want, sizeof(want), "cmd:%zu:%s/here", strlen(dir) + 5, dir);
	expect((char *const[]){ "here", NULL }, NULL, want);
	assert_int_equal(chdir("/"), 0);

	/* nowhere to be found: as given (run cannot start it either) */
	expect((char *const[]){ "no-such-server", "x", NULL }, NULL, "cmd:14:no-such-server1:x");
	/* --name wins, whatever the command */
	expect((char *const[]){ "srv", "--port", "4711", NULL }, "billing", "name:billing");
	/* without PATH, execvp's default */
	unsetenv("PATH");
	assert_non_null(realpath("/bin/sh", target));
	snprintf(want, sizeof(want), "cmd:%zu:%s", strlen(target), target);
	expect((char *const[]){ "sh", NULL }, NULL, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
	};

	return cmocka_run_group_tests_name("server_identity", tests, NULL, NULL);
}
