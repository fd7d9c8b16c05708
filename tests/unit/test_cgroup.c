// SPDX-License-Identifier: Apache-2.0
/*
 * Where cgroup v2 is found (user/cgroup.c), from mountinfo files as hosts write them
 * (tests/data/mountinfo/): a pure v2 systemd host (Debian 12, Ubuntu 24.04), a hybrid one, one
 * with v1 only, one that mounts v2 elsewhere (with an escaped space). And this host, as attach
 * reads it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <cmocka.h>
#include "cgroup.h"

#define DATA "tests/data/mountinfo/"

static void test_fixtures(void **state)
{
	static const struct {
		const char *file, *want; /* NULL: none */
	} cases[] = {
		{ "debian12.txt", "/sys/fs/cgroup" },
		{ "hybrid.txt", "/sys/fs/cgroup/unified" },
		{ "v1-only.txt", NULL },
		{ "elsewhere.txt", "/srv/cg two" },
	};
	char path[4096];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char file[256];
		int err;

		snprintf(file, sizeof(file), DATA "%s", cases[i].file);
		err = cgroup__v2_mount_from(file, path, sizeof(path));
		if (!cases[i].want) {
			assert_int_equal(err, -ENOENT);
			continue;
		}
		assert_int_equal(err, 0);
		assert_string_equal(path, cases[i].want);
	}
	assert_int_equal(cgroup__v2_mount_from(DATA "debian12.txt", path, 10), -ENAMETOOLONG);
	assert_int_equal(cgroup__v2_mount_from(DATA "missing.txt", path, sizeof(path)), -ENOENT);
}

/* On this host: what mountinfo says is a cgroup v2 superblock, or the reason there is none. */
static void test_this_host(void **state)
{
	char path[4096], why[512];
	struct statfs st;

	if (cgroup__v2_root(path, sizeof(path), why, sizeof(why))) {
		assert_non_null(strstr(why, "--cgroup"));
		return;
	}
	assert_int_equal(statfs(path, &st), 0);
	assert_true(st.f_type == CGROUP2_SUPER_MAGIC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_this_host),
	};

	return cmocka_run_group_tests_name("cgroup", tests, NULL, NULL);
}
