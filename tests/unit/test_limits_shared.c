// SPDX-License-Identifier: Apache-2.0
/*
 * Scope "global" across processes: two gateways of one host share one budget through the
 * table file, and a table that someone else could write is refused.
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
#include <sys/wait.h>
#include <cmocka.h>
#include "decide.h"
#include "limits.h"
#include "log.h"

static const char policy_json[] =
	"{\"version\": \"1\", \"default\": \"deny\", \"tools\": {"
	" \"t\": {\"limits\": [{\"counter\": \"c\", \"window\": 60, \"max\": 3, \"scope\": \"global\"},"
	"                    {\"counter\": \"g\", \"window\": 60, \"max\": 100}]}}}";

static uint64_t fixed_clock(void *ctx)
{
	return *(uint64_t *)ctx;
}

static char path[64];

static int setup(void **state)
{
	int fd;

	strcpy(path, "/tmp/mcpfence-glb-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	unlink(path); /* limits__share_global creates it */
	return 0;
}

static int teardown(void **state)
{
	unlink(path);
	return 0;
}

static int reserve(struct limits *l, const struct policy *p, struct reservation *res,
		   struct decision *d)
{
	const struct rule *r = policy__lookup(p, "t");

	memset(d, 0, sizeof(*d));
	return limits__reserve(l, p, r, &(struct scope_keys){ "s", "a" }, res, d);
}

static void test_two_processes_share_one_budget(void **state)
{
	char err[POLICY_ERR_LEN];
	struct policy *p = policy__parse(policy_json, sizeof(policy_json) - 1, "mem", err);
	uint64_t now = 6000;
	struct limits *l = limits__new(fixed_clock, &now);
	struct reservation res;
	struct decision d;
	pid_t pid;
	int status;

	assert_non_null(p);
	assert_int_equal(limits__share_global(l, path), 0);
	assert_int_equal(reserve(l, p, &res, &d), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* another gateway: a table of its own, the same file */
		struct limits *l2 = limits__new(fixed_clock, &now);
		int ok = limits__share_global(l2, path) == 0 && reserve(l2, p, &res, &d) == 0 &&
			 reserve(l2, p, &res, &d) == 0 && reserve(l2, p, &res, &d) == -EDQUOT &&
			 !strcmp(d.pointer, "/tools/t/limits/0") && d.retry_after_s == 60;

		limits__free(l2);
		limits__free(l); /* the parent's copy, inherited */
		policy__free(p);
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* 1 here + 2 there = 3: full for everyone, and the grant-scope budget untouched there */
	assert_int_equal(reserve(l, p, &res, &d), -EDQUOT);
	assert_int_equal(d.kind, KIND_LIMIT);
	assert_int_equal(limits__used(l, &policy__lookup(p, "t")->limits[0], NULL), 3);
	assert_int_equal(limits__used(l, &policy__lookup(p, "t")->limits[1], NULL), 1);

	/* the next window refills the shared budget */
	now += 60;
	assert_int_equal(reserve(l, p, &res, &d), 0);
	/* give-back reaches the shared table */
	limits__release(l, &res);
	assert_int_equal(limits__used(l, &policy__lookup(p, "t")->limits[0], NULL), 0);

	limits__free(l);
	policy__free(p);
}

/*
 * What the kernel plane does with the table: it charges uses already let through (past max
 * too), and reads what is left for the budget it keeps in BPF; a gateway sees both.
 */
static void test_charge_is_shared(void **state)
{
	char err[POLICY_ERR_LEN];
	struct policy *p = policy__parse(policy_json, sizeof(policy_json) - 1, "mem", err);
	uint64_t now = 6000;
	struct limits *gw = limits__new(fixed_clock, &now), *kern = limits__new(fixed_clock, &now);
	const struct limit *glob, *grant;
	struct reservation res;
	struct decision d;

	assert_non_null(p);
	glob = &policy__lookup(p, "t")->limits[0];
	grant = &policy__lookup(p, "t")->limits[1];
	assert_int_equal(limits__share_global(gw, path), 0);
	assert_int_equal(limits__share_global(kern, path), 0);
	assert_int_equal(limits__left(kern, glob, NULL), 3);
	assert_int_equal(reserve(gw, p, &res, &d), 0);
	assert_int_equal(limits__left(kern, glob, NULL), 2);
	assert_int_equal(limits__charge(kern, glob, NULL, 0), 0);
	assert_int_equal(limits__charge(kern, glob, NULL, now), 0);
	assert_int_equal(limits__left(kern, glob, NULL), 0);
	assert_int_equal(reserve(gw, p, &res, &d), -EDQUOT);
	assert_string_equal(d.pointer, "/tools/t/limits/0");
	/* unconditional: two planes that both let a call through count both */
	assert_int_equal(limits__charge(kern, glob, NULL, 0), 0);
	assert_int_equal(limits__used(gw, glob, NULL), 4);
	assert_int_equal(limits__left(gw, glob, NULL), 0);
	/* a scope other than global stays each process's own */
	assert_int_equal(limits__charge(kern, grant, NULL, 0), 0);
	assert_int_equal(limits__used(gw, grant, NULL), 1);
	assert_int_equal(limits__used(kern, grant, NULL), 1);
	/* the next window: all there again */
	now += 60;
	assert_int_equal(limits__left(kern, glob, NULL), 3);
	limits__free(gw);
	limits__free(kern);
	policy__free(p);
}

/* $MCPFENCE_RUNTIME_DIR (the gateways' and attach's runtime dir) holds the table when set. */
static void test_runtime_dir(void **state)
{
	char dir[64], want[96], buf[300];
	struct stat st;

	strcpy(dir, "/tmp/mcpfence-rt-XXXXXX");
	assert_non_null(mkdtemp(dir));
	strcat(dir, "/run");
	setenv("MCPFENCE_RUNTIME_DIR", dir, 1);
	snprintf(want, sizeof(want), "%s/global-budgets", dir);
	assert_string_equal(limits__default_global_path(buf, sizeof(buf)), want);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode) && (st.st_mode & 077) == 0);
	unsetenv("MCPFENCE_RUNTIME_DIR");
	rmdir(dir);
	*strrchr(dir, '/') = 0;
	rmdir(dir);
}

static void test_untrusted_table_refused(void **state)
{
	struct limits *l = limits__new(NULL, NULL);
	int fd;

	log_level = LOG_LVL_NONE; /* the refusals are expected: keep the output clean */
	/* writable by others */
	fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0666), 0);
	assert_int_equal(limits__share_global(l, path), -EPERM);
	/* right mode, wrong size */
	assert_int_equal(fchmod(fd, 0600), 0);
	assert_int_equal(write(fd, "garbage", 7), 7);
	assert_int_equal(limits__share_global(l, path), -EINVAL);
	close(fd);
	unlink(path);
	/* a symlink in its place */
	assert_int_equal(symlink("/etc/passwd", path), 0);
	assert_true(limits__share_global(l, path) < 0);
	unlink(path);
	log_level = LOG_LVL_INFO;
	limits__free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_two_processes_share_one_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_charge_is_shared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_untrusted_table_refused, setup, teardown),
		cmocka_unit_test(test_runtime_dir),
	};

	return cmocka_run_group_tests_name("limits_shared", tests, NULL, NULL);
}
