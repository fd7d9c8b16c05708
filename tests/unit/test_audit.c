// SPDX-License-Identifier: Apache-2.0
/* audit: the fields of a line, redaction of argument values, buffering, the default path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "audit.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/mcpfence-audit-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* The lines of a file as JSON values (an array). */
static json_t *lines(const char *path)
{
	json_t *a = json_array();
	char *buf = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	while (getline(&buf, &cap, f) > 0) {
		json_t *v = json_loads(buf, 0, NULL);

		assert_non_null(v);
		json_array_append_new(a, v);
	}
	free(buf);
	fclose(f);
	return a;
}

static void test_fields_and_redaction(void **state)
{
	char path[128];
	json_t *args = json_pack("{s:s, s:i}", "path", "/etc/shadow", "n", 3), *all, *l;
	struct audit_event ev = {
		.time_us = 1700000000123456ull,
		.plane = "stdio",
		.server = "srv",
		.session = "s1",
		.client_pid = 42,
		.client_uid = 1000,
		.client_exe = "/bin/agent",
		.method = "tools/call",
		.tool = "read_file",
		.args = args,
		.decision = "deny",
		.kind = "condition",
		.rule = "/tools/read_file/require/0",
		.reason = "no",
		.latency_us = 7,
		.request_id = "\"abc\"",
	};
	struct audit *a;

	snprintf(path, sizeof(path), "%s/sub/dir/audit.jsonl", dir);
	a = audit__open(path);
	assert_non_null(a);
	assert_int_equal(audit__write(a, &ev), 0);
	audit__set_values(a, true);
	ev.request_id = "17";
	ev.policy = "/etc/mcpfence/policies/10-fs.json";
	ev.client_uid = (uid_t)-1;
	assert_int_equal(audit__write(a, &ev), 0);
	audit__close(a);

	all = lines(path);
	assert_int_equal(json_array_size(all), 2);
	l = json_array_get(all, 0);
	assert_string_equal(json_string_value(json_object_get(l, "time")),
			    "2023-11-14T22:13:20.123456Z");
	assert_string_equal(json_string_value(json_object_get(l, "tool")), "read_file");
	assert_string_equal(json_string_value(json_object_get(l, "rule")),
			    "/tools/read_file/require/0");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(l, "client"), "pid")),
			 42);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(l, "client"), "uid")),
			 1000);
	assert_string_equal(json_string_value(json_object_get(l, "id")), "abc");
	assert_int_equal(json_array_size(json_object_get(l, "argument_keys")), 2);
	assert_null(json_object_get(l, "arguments"));
	assert_null(json_object_get(l, "policy")); /* one policy in force: not said */
	{
		char *text = json_dumps(l, 0);

		assert_null(strstr(text, "shadow"));
		free(text);
	}
	l = json_array_get(all, 1);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(l, "arguments"), "path")),
		"/etc/shadow");
	assert_int_equal(json_integer_value(json_object_get(l, "id")), 17);
	assert_string_equal(json_string_value(json_object_get(l, "policy")),
			    "/etc/mcpfence/policies/10-fs.json");
	assert_null(json_object_get(json_object_get(l, "client"), "uid"));
	json_decref(all);
	json_decref(args);
}

/* Text from outside that is not UTF-8 (an executable's path, a server's name) is still logged. */
static void test_not_utf8(void **state)
{
	char path[128];
	struct audit_event ev = {
		.plane = "stdio",
		.server = "srv\xff",
		.client_uid = (uid_t)-1,
		.client_exe = "/tmp/ag\xc3\x28"
			      "ent",
		.decision = "allow",
	};
	struct audit *a;
	json_t *all, *l;

	snprintf(path, sizeof(path), "%s/utf8.jsonl", dir);
	a = audit__open(path);
	assert_non_null(a);
	assert_int_equal(audit__write(a, &ev), 0);
	audit__close(a);
	all = lines(path);
	assert_int_equal(json_array_size(all), 1);
	l = json_array_get(all, 0);
	assert_string_equal(json_string_value(json_object_get(l, "server")), "srv\xef\xbf\xbd");
	assert_string_equal(json_string_value(json_object_get(json_object_get(l, "client"), "exe")),
			    "/tmp/ag\xef\xbf\xbd"
			    "(ent");
	json_decref(all);
}

static void test_buffered(void **state)
{
	char path[128];
	struct audit_event ev = { .decision = "allow", .tool = "t", .client_uid = (uid_t)-1 };
	struct audit *a;
	struct stat st;
	json_t *all;

	snprintf(path, sizeof(path), "%s/buffered.jsonl", dir);
	a = audit__open(path);
	assert_non_null(a);
	audit__set_buffered(a, true);
	for (int i = 0; i < 3; i++)
		assert_int_equal(audit__write(a, &ev), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
	/* kept until they are due, 10 ms after the first line kept */
	assert_true(audit__deadline(a) > 0);
	assert_int_equal(audit__flush_due(a, audit__deadline(a) - 1), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(audit__flush_due(a, audit__deadline(a)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size > 0);
	assert_int_equal(audit__deadline(a), 0);
	assert_int_equal(audit__write(a, &ev), 0);
	audit__close(a); /* flushes */
	all = lines(path);
	assert_int_equal(json_array_size(all), 4);
	json_decref(all);
}

/*
 * logrotate renames the log (no copytruncate, no signal): lines written before the rename is
 * noticed (within a second) are in the renamed file, the rest in a new file at the path; none is
 * lost or written twice. A removed log is made again.
 */
static void test_rotation(void **state)
{
	char path[128], moved[160];
	struct audit_event ev = { .decision = "allow", .tool = "t", .client_uid = (uid_t)-1 };
	struct audit *a;
	json_t *old, *new;
	size_t before;

	snprintf(path, sizeof(path), "%s/rotated.jsonl", dir);
	snprintf(moved, sizeof(moved), "%s.1", path);
	a = audit__open(path);
	assert_non_null(a);
	assert_int_equal(audit__write(a, &ev), 0);
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(audit__write(a, &ev), 0); /* within the second: to the renamed file */
	usleep(1100 * 1000);
	assert_int_equal(audit__write(a, &ev), 0);
	assert_int_equal(audit__write(a, &ev), 0);
	old = lines(moved);
	new = lines(path);
	before = json_array_size(old);
	assert_true(before >= 1 && before <= 2);
	assert_int_equal(before + json_array_size(new), 4);
	json_decref(old);
	json_decref(new);

	assert_int_equal(unlink(path), 0);
	usleep(1100 * 1000);
	assert_int_equal(audit__write(a, &ev), 0);
	audit__close(a);
	new = lines(path);
	assert_int_equal(json_array_size(new), 1);
	json_decref(new);
}

/* The fields jansson would build, in the order of the line (what audit.c wrote before). */
static char *jansson_line(const struct audit_event *ev, const char *id)
{
	json_t *o = json_pack("{s:s}", "time", "2023-11-14T22:13:20.123456Z");
	json_t *c = json_object();
	char *s;

	json_object_set_new(o, "plane", json_string(ev->plane));
	json_object_set_new(o, "server", json_string(ev->server));
	json_object_set_new(c, "pid", json_integer(ev->client_pid));
	json_object_set_new(c, "exe", json_string(ev->client_exe));
	json_object_set_new(o, "client", c);
	json_object_set_new(o, "tool", json_string(ev->tool));
	json_object_set_new(o, "argument_keys", json_pack("[s, s]", "k\"1", "k\n2"));
	json_object_set_new(o, "decision", json_string(ev->decision));
	json_object_set_new(o, "reason", json_string(ev->reason));
	json_object_set_new(o, "latency_us", json_integer(ev->latency_us));
	json_object_set_new(o, "id", json_loads(id, JSON_DECODE_ANY, NULL));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* Lines are written by hand: byte for byte what jansson's compact dump of the fields is. */
static void test_as_jansson_writes(void **state)
{
	const char *ids[] = { "17", "-3", "0", "-0", "\"abc\"", "\"a\\/b\"", "1.0", "\"\\u00e9\"" };
	json_t *args = json_pack("{s:i, s:i}", "k\"1", 1, "k\n2", 2);
	struct audit_event ev = {
		.time_us = 1700000000123456ull,
		.plane = "stdio",
		.server = "srv \"q\" \\ / \x01\x1f\x7f \xc3\xa9 \xf0\x9f\x98\x80",
		.client_pid = 42,
		.client_uid = (uid_t)-1,
		.client_exe = "/bin/\b\f\n\r\t",
		.tool = "t",
		.args = args,
		.decision = "deny",
		.reason = "",
		.latency_us = 12345678901ull,
	};
	char path[128], *want, *got = NULL;
	size_t cap = 0;
	struct audit *a;
	FILE *f;

	snprintf(path, sizeof(path), "%s/bytes.jsonl", dir);
	a = audit__open(path);
	assert_non_null(a);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		ev.request_id = ids[i];
		assert_int_equal(audit__write(a, &ev), 0);
	}
	audit__close(a);
	f = fopen(path, "r");
	assert_non_null(f);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		assert_true(getline(&got, &cap, f) > 0);
		got[strcspn(got, "\n")] = 0;
		want = jansson_line(&ev, ids[i]);
		assert_string_equal(got, want);
		free(want);
	}
	free(got);
	fclose(f);
	json_decref(args);
}

/*
 * Strings are written eight bytes at a time while no byte needs an escape: every byte that
 * does, at every offset of a word, is escaped as jansson escapes it; fractions of a second keep
 * their leading zeros.
 */
static void test_escapes_at_every_offset(void **state)
{
	const char *special[] = { "\"", "\\",	"\x01",	    "\x1f",	    " ", "!",
				  "~",	"\x7f", "\xc3\xa9", "\xe2\x80\xae", "\n" };
	struct audit_event ev = { .time_us = 1700000000000042ull,
				  .plane = "stdio",
				  .client_uid = (uid_t)-1,
				  .decision = "allow" };
	char path[128], server[64], *got = NULL;
	size_t cap = 0, nlines = 0;
	struct audit *a;
	FILE *f;

	snprintf(path, sizeof(path), "%s/escapes.jsonl", dir);
	a = audit__open(path);
	assert_non_null(a);
	for (size_t k = 0; k < sizeof(special) / sizeof(special[0]); k++)
		for (size_t at = 0; at < 20; at++) {
			memset(server, 'a', sizeof(server));
			memcpy(server + at, special[k], strlen(special[k]));
			server[20 + strlen(special[k]) - 1] = 0;
			ev.server = server;
			assert_int_equal(audit__write(a, &ev), 0);
			nlines++;
		}
	audit__close(a);
	f = fopen(path, "r");
	assert_non_null(f);
	for (size_t k = 0; k < sizeof(special) / sizeof(special[0]); k++)
		for (size_t at = 0; at < 20; at++) {
			json_t *str;
			char *want;

			memset(server, 'a', sizeof(server));
			memcpy(server + at, special[k], strlen(special[k]));
			server[20 + strlen(special[k]) - 1] = 0;
			str = json_string(server);
			assert_non_null(str);
			want = json_dumps(str, JSON_ENCODE_ANY);
			assert_true(getline(&got, &cap, f) > 0);
			if (!strstr(got, want))
				fail_msg("byte %zu of the name: %s does not hold %s", at, got,
					 want);
			assert_non_null(strstr(got, "\"time\":\"2023-11-14T22:13:20.000042Z\""));
			free(want);
			json_decref(str);
			nlines--;
		}
	assert_int_equal(nlines, 0);
	assert_int_equal(getline(&got, &cap, f), -1);
	free(got);
	fclose(f);
}

static void test_default_path(void **state)
{
	char buf[256];

	setenv("MCPFENCE_AUDIT", "/x/y.jsonl", 1);
	assert_int_equal(audit__default_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/x/y.jsonl");
	unsetenv("MCPFENCE_AUDIT");
	assert_int_equal(audit__default_path(buf, sizeof(buf)), 0);
	if (geteuid() == 0)
		assert_string_equal(buf, "/var/log/mcpfence/audit.jsonl");
	else
		assert_non_null(strstr(buf, "/mcpfence/audit.jsonl"));
	assert_null(audit__open("/proc/nonexistent/dir/audit.jsonl"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields_and_redaction),
		cmocka_unit_test(test_not_utf8),
		cmocka_unit_test(test_buffered),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_as_jansson_writes),
		cmocka_unit_test(test_escapes_at_every_offset),
		cmocka_unit_test(test_default_path),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
