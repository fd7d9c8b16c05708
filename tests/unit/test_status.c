// SPDX-License-Identifier: Apache-2.0
/*
 * The rows of `mcpfence status` (status): a row per session, counted; a bounded table that
 * forgets the TCP connection idle longest and never a --pid server's row; the file attach
 * writes (whole, 0600) and what status prints of it, names from /proc made harmless for a
 * terminal and for JSON.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <jansson.h>
#include "status.h"

static char path[64];

static int setup(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/mcpfence-status-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

/* What status__print writes of the file at path, as text or JSON, in a string to free. */
static char *printed(const char *state, bool json)
{
	json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(doc);
	assert_non_null(f);
	status__print(f, doc, state, json);
	fclose(f);
	json_decref(doc);
	return buf;
}

static void test_rows_counted_and_written(void **state)
{
	struct status st = {};
	struct status_session *a, *b;
	struct stat sb;
	char *text;
	json_t *doc, *rows;

	(void)state;
	a = status__get(&st, "socketpair:42");
	assert_non_null(a);
	a->pinned = true;
	snprintf(a->plane, sizeof(a->plane), "stdio-kernel");
	a->server_pid = 42;
	snprintf(a->server, sizeof(a->server), "node");
	a->client_pid = 40;
	snprintf(a->client, sizeof(a->client), "/usr/bin/node");
	assert_ptr_equal(status__get(&st, "socketpair:42"), a);
	status__count(&st, a, true, false, 1000);
	status__count(&st, a, true, true, 3000);
	status__count(&st, a, false, true, 2000); /* bytes refused unread: no call */
	a->ended = true;
	b = status__get(&st, "tcp:50000->8080");
	snprintf(b->plane, sizeof(b->plane), "kernel");
	snprintf(b->server, sizeof(b->server), "tcp:8080");
	status__count(&st, b, true, false, 5000000);
	assert_int_equal(status__write(&st, path, "/etc/mcpfence/policy.json", 7, 1764770000000000),
			 0);
	assert_false(st.dirty);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	doc = json_load_file(path, 0, NULL);
	assert_non_null(doc);
	rows = json_object_get(doc, "sessions");
	assert_int_equal(json_array_size(rows), 2);
	a = NULL;
	assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "calls")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "denied")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(rows, 0), "last_us")),
			 3000);
	assert_true(json_is_null(json_object_get(json_array_get(rows, 1), "client_pid")));
	json_decref(doc);

	text = printed("live", false);
	assert_non_null(strstr(text, "attachment: live, attach pid 7, policy "
				     "/etc/mcpfence/policy.json, since 2025-12-03T13:53:20Z\n"));
	assert_non_null(strstr(text, "stdio-kernel  pid 42 (node)"));
	assert_non_null(strstr(text, "pid 40 (/usr/bin/node)"));
	assert_non_null(strstr(text, "kernel        tcp:8080                 -"));
	assert_non_null(strstr(text, "00:00:00Z  ended"));
	assert_non_null(strstr(text, "00:00:05Z  open"));
	free(text);
	text = printed("stale", true);
	doc = json_loads(text, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(doc, "attachment")), "stale");
	json_decref(doc);
	free(text);
	text = printed("stale", false);
	assert_non_null(strstr(text, "attachment: stale, attach pid 7, "));
	assert_non_null(strstr(text, "\n  (attach is gone; its programs enforce"));
	free(text);
	/* read back, as a daemon that comes back does: the same rows */
	{
		struct status back = {};

		assert_int_equal(status__read(&back, path), 0);
		assert_int_equal(back.n, 2);
		assert_string_equal(back.s[0].conn, "socketpair:42");
		assert_string_equal(back.s[0].plane, "stdio-kernel");
		assert_string_equal(back.s[0].client, "/usr/bin/node");
		assert_int_equal(back.s[0].server_pid, 42);
		assert_int_equal(back.s[0].client_pid, 40);
		assert_int_equal(back.s[0].calls, 2);
		assert_int_equal(back.s[0].denied, 2);
		assert_int_equal(back.s[0].last_us, 3000);
		assert_true(back.s[0].ended);
		assert_false(back.s[1].ended);
		assert_int_equal(back.s[1].client_pid, 0);
		assert_int_equal(back.s[1].calls, 1);
		status__free(&back);
		assert_int_equal(status__read(&back, "/nonexistent/sessions.json"), -ENOENT);
		assert_int_equal(back.n, 0);
	}
	/* written by the daemon: it says so */
	st.daemon = true;
	assert_int_equal(status__write(&st, path, "/etc/mcpfence/policies", 8, 4000000), 0);
	text = printed("live", false);
	assert_non_null(
		strstr(text, "attachment: live, daemon pid 8, policy /etc/mcpfence/policies"));
	free(text);
	/* one a daemon left: the next one takes it back */
	text = printed("stale", false);
	assert_non_null(strstr(text,
			       "(daemon is gone; its programs enforce the policy they had "
			       "until `mcpfence detach`, or the next daemon takes them back)"));
	free(text);
	status__free(&st);
}

/* A terminal escape and bytes that are not UTF-8 in a command name: escaped, valid JSON. */
static void test_hostile_names(void **state)
{
	struct status st = {};
	struct status_session *a = status__get(&st, "socketpair:9");
	char *text;

	(void)state;
	snprintf(a->plane, sizeof(a->plane), "stdio-kernel");
	a->server_pid = 9;
	snprintf(a->server, sizeof(a->server), "\x1b]0;owned\x07\xff\xfe");
	a->client_pid = 8;
	snprintf(a->client, sizeof(a->client), "/tmp/a\nb");
	assert_int_equal(status__write(&st, path, "p\x1b[2J", 1, 0), 0);
	text = printed("live", false);
	assert_null(strchr(text, '\x1b'));
	assert_null(strstr(text, "a\nb"));
	assert_non_null(strstr(text, "\\x1b]0;owned\\x07\xef\xbf\xbd\xef\xbf\xbd"));
	assert_non_null(strstr(text, "/tmp/a\\x0ab"));
	free(text);
	status__free(&st);
}

/*
 * attach --policy-dir: a row names its policy file (JSON and a POLICY column, cleaned for the
 * terminal); without one, the column is not printed. The daemon's server_name goes in the JSON.
 */
static void test_policy_column(void **state)
{
	struct status st = {};
	struct status_session *a = status__get(&st, "socketpair:5"), *b;
	char *text;
	json_t *doc;

	(void)state;
	snprintf(a->plane, sizeof(a->plane), "stdio-kernel");
	a->server_pid = 5;
	assert_int_equal(status__write(&st, path, "/etc/mcpfence/policy.json", 1, 0), 0);
	text = printed("live", false);
	assert_null(strstr(text, "POLICY"));
	assert_non_null(strstr(text, "SESSION\n"));
	free(text);

	status__set_policy(a, "/etc/mcpfence/policies/10-fs.json");
	b = status__get(&st, "pipe:6");
	snprintf(b->plane, sizeof(b->plane), "stdio-kernel");
	b->server_pid = 6;
	status__set_policy(b, "/etc/mcpfence/policies/\x1b[2Jevil.json");
	assert_int_equal(status__write(&st, path, "/etc/mcpfence/policies", 1, 0), 0);
	doc = json_load_file(path, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(doc, "sessions"), 0), "policy")),
			    "/etc/mcpfence/policies/10-fs.json");
	assert_true(json_is_null(json_object_get(
		json_array_get(json_object_get(doc, "sessions"), 0), "server_name")));
	json_decref(doc);
	/* the name a first result gave its server: kept, and read back (a daemon that comes back) */
	snprintf(a->server_name, sizeof(a->server_name), "secure-filesystem-server");
	assert_int_equal(status__write(&st, path, "/etc/mcpfence/policies", 1, 0), 0);
	{
		struct status back = {};

		assert_int_equal(status__read(&back, path), 0);
		assert_string_equal(status__get(&back, "socketpair:5")->server_name,
				    "secure-filesystem-server");
		assert_string_equal(status__get(&back, "pipe:6")->server_name, "");
		status__free(&back);
	}
	text = printed("live", false);
	assert_non_null(strstr(text, "SESSION  POLICY\n"));
	assert_non_null(strstr(text, "open     /etc/mcpfence/policies/10-fs.json\n"));
	assert_null(strchr(text, '\x1b'));
	assert_non_null(strstr(text, "\\x1b[2Jevil.json"));
	free(text);
	status__free(&st);
}

/* Full: the TCP row idle longest goes, a --pid server's row never does; counted as forgotten. */
static void test_bounded(void **state)
{
	struct status st = {};
	char conn[40];

	(void)state;
	status__get(&st, "pipe:1")->pinned = true;
	for (int i = 0; i < STATUS_MAX - 1; i++) {
		struct status_session *s;

		snprintf(conn, sizeof(conn), "tcp:%d->80", i);
		s = status__get(&st, conn);
		assert_non_null(s);
		status__count(&st, s, true, false, 1000 + (uint64_t)i);
	}
	assert_int_equal(st.n, STATUS_MAX);
	assert_non_null(status__get(&st, "tcp:new->80"));
	assert_int_equal(st.n, STATUS_MAX);
	assert_int_equal(st.forgotten, 1);
	for (size_t i = 0; i < st.n; i++)
		assert_string_not_equal(st.s[i].conn, "tcp:0->80");
	assert_non_null(status__get(&st, "pipe:1"));
	assert_true(status__get(&st, "pipe:1")->pinned);
	status__free(&st);
}

/* Ended sessions' rows: the newest STATUS_ENDED_KEEP stay, the others go, live rows all stay. */
static void test_ended_forgotten(void **state)
{
	struct status st = {};
	char conn[40];

	(void)state;
	status__get(&st, "socketpair:1")->pinned = true;
	for (int i = 0; i < 3 * STATUS_ENDED_KEEP; i++) {
		struct status_session *s;

		snprintf(conn, sizeof(conn), "socketpair:%d", 100 + i);
		s = status__get(&st, conn);
		assert_non_null(s);
		status__count(&st, s, true, false, 1000 + (uint64_t)i);
		s->ended = true;
		status__forget_ended(&st, STATUS_ENDED_KEEP);
	}
	assert_int_equal(st.n, STATUS_ENDED_KEEP + 1);
	assert_string_equal(st.s[0].conn, "socketpair:1");
	for (size_t i = 1; i < st.n; i++) {
		snprintf(conn, sizeof(conn), "socketpair:%d",
			 100 + 2 * STATUS_ENDED_KEEP + (int)i - 1);
		assert_string_equal(st.s[i].conn, conn);
	}
	status__free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rows_counted_and_written, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_column, setup, teardown),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_ended_forgotten),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
