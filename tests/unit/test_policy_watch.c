// SPDX-License-Identifier: Apache-2.0
/*
 * A watched directory of policies (policy_watch), with real inotify: what reloads it, a bad
 * file that leaves the old policies in force, an editor's way of saving, the directory gone.
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
#include <sys/stat.h>
#include <cmocka.h>
#include "policy_watch.h"

static char dir[64];

static void put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void path_of(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/mcpfence-pwatch-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* What the next look at the events gives, after they were announced on the fd (1 s at most). */
static int changed(struct policy_watch *w)
{
	struct pollfd p = { .fd = w->fd, .events = POLLIN };
	struct policy_dir *old = NULL;
	int r;

	if (poll(&p, 1, 1000) != 1)
		return 0;
	r = policy_watch__changed(w, &old);
	policy_dir__free(old);
	return r;
}

#define MATCHED(n) "{\"version\":\"1\",\"default\":\"deny\",\"match\":{\"uid\":" #n "}}"

static void test_reload(void **state)
{
	struct policy_watch w;
	char err[POLICY_ERR_LEN], a[256], b[256];

	put("default.json", "{\"version\":\"1\",\"default\":\"deny\"}");
	assert_int_equal(policy_watch__open(&w, dir, err), 0);
	assert_int_equal(w.cur->nfiles, 0);
	assert_non_null(w.cur->def);

	/* a new file, written and closed */
	put("10-a.json", MATCHED(1));
	assert_int_equal(changed(&w), 1);
	assert_int_equal(w.cur->nfiles, 1);

	/* a bad one: refused, naming it; the old policies stay */
	put("20-b.json", "{\"version\":\"1\",\"default\":\"deny\"}");
	assert_int_equal(changed(&w), -EINVAL);
	assert_non_null(strstr(w.err, "20-b.json: /match: is required"));
	assert_int_equal(w.cur->nfiles, 1);

	/* an editor saves the fix beside it and renames it over: in force, the error cleared */
	put(".20-b.json.swp", MATCHED(2));
	assert_int_equal(changed(&w), 0); /* not a policy file's name */
	path_of(a, sizeof(a), ".20-b.json.swp");
	path_of(b, sizeof(b), "20-b.json");
	assert_int_equal(rename(a, b), 0);
	assert_int_equal(changed(&w), 1);
	assert_string_equal(w.err, "");
	assert_int_equal(w.cur->nfiles, 2);

	/* names that are not policies change nothing */
	put("README", "x");
	put("30-c.json~", "x");
	assert_int_equal(changed(&w), 0);

	/* deleted */
	assert_int_equal(unlink(b), 0);
	assert_int_equal(changed(&w), 1);
	assert_int_equal(w.cur->nfiles, 1);

	/* made unreadable, as a user not root: the mode change reloads, and it is refused */
	if (geteuid()) {
		path_of(a, sizeof(a), "10-a.json");
		assert_int_equal(chmod(a, 0), 0);
		assert_int_equal(changed(&w), -EACCES);
		assert_int_equal(w.cur->nfiles, 1);
	}
	policy_watch__close(&w);
}

/* The directory gone: the policies stay in force, and it says so. */
static void test_dir_gone(void **state)
{
	struct policy_watch w;
	char err[POLICY_ERR_LEN], moved[128], cmd[300];

	put("10-a.json", MATCHED(1));
	assert_int_equal(policy_watch__open(&w, dir, err), 0);
	snprintf(moved, sizeof(moved), "%s.moved", dir);
	assert_int_equal(rename(dir, moved), 0);
	assert_int_equal(changed(&w), -ENOENT);
	assert_non_null(strstr(w.err, "was moved or deleted: the policies loaded from it stay"));
	assert_int_equal(w.cur->nfiles, 1);
	policy_watch__close(&w);
	snprintf(cmd, sizeof(cmd), "mv '%s' '%s'", moved, dir);
	assert_int_equal(system(cmd), 0);
}

/* A directory that cannot be loaded is not watched: the error says why. */
static void test_open_refused(void **state)
{
	struct policy_watch w;
	char err[POLICY_ERR_LEN], path[256];

	put("10-a.json", "{");
	assert_int_equal(policy_watch__open(&w, dir, err), -EINVAL);
	assert_non_null(strstr(err, "10-a.json:1:"));
	assert_int_equal(policy_watch__open(&w, "/nonexistent/policies", err), -ENOENT);
	path_of(path, sizeof(path), "10-a.json");
	assert_int_equal(policy_watch__open(&w, path, err), -ENOTDIR);
	assert_non_null(strstr(err, "not a directory"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
