// SPDX-License-Identifier: Apache-2.0
/*
 * The gateway's pieces that need no server: what tools/list may show, the denial result the
 * agent reads, the queue of held calls and the control socket (a real AF_UNIX socket).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <cmocka.h>
#include "approval.h"
#include "policy.h"
#include "stdio_gateway.h"

static struct policy *parse(const char *text)
{
	char err[POLICY_ERR_LEN];
	struct policy *p = policy__parse(text, strlen(text), "test.json", err);

	if (!p)
		fail_msg("policy: %s", err);
	return p;
}

static void test_listable(void **state)
{
	struct policy *p = parse("{\"version\":\"1\",\"default\":\"deny\",\"hide\":[\"dbg_*\"],"
				 "\"tools\":{\"read\":{},\"drop\":{\"action\":\"deny\"},"
				 "\"dbg_x\":{},\"ask\":{\"action\":\"approve\"},"
				 "\"w*\":{\"require\":[{\"path\":\"args.p\",\"op\":\"exists\","
				 "\"value\":true}]}}}");
	struct policy *open = parse("{\"version\":\"1\",\"default\":\"allow\",\"hide\":[\"*\"]}");
	struct policy *none = policy__deny_all();
	json_t *result = json_loads("{\"tools\":[{\"name\":\"read\"},{\"name\":\"drop\"},"
				    "{\"name\":\"dbg_x\"},{\"name\":\"ask\"},{\"name\":\"write\"},"
				    "{\"name\":\"other\"},{\"nameless\":1},{\"name\":7}],"
				    "\"nextCursor\":\"c\"}", 0, NULL);
	char *s;

	assert_true(stdio_gateway__listable(p, "read"));
	assert_false(stdio_gateway__listable(p, "drop"));
	assert_false(stdio_gateway__listable(p, "dbg_x"));
	assert_true(stdio_gateway__listable(p, "ask"));
	assert_true(stdio_gateway__listable(p, "write"));
	assert_false(stdio_gateway__listable(p, "other"));
	assert_false(stdio_gateway__listable(p, ""));
	assert_false(stdio_gateway__listable(p, NULL));
	assert_false(stdio_gateway__listable(open, "anything"));
	assert_false(stdio_gateway__listable(none, "read"));

	assert_int_equal(stdio_gateway__filter_tools(p, result), 5);
	s = json_dumps(result, JSON_COMPACT);
	assert_string_equal(s, "{\"tools\":[{\"name\":\"read\"},{\"name\":\"ask\"},"
			       "{\"name\":\"write\"}],\"nextCursor\":\"c\"}");
	free(s);
	assert_int_equal(stdio_gateway__filter_tools(p, NULL), 0);
	json_decref(result);
	policy__free(p);
	policy__free(open);
	policy__free(none);
}

static void test_denial(void **state)
{
	json_t *id = json_integer(5);
	json_t *d = stdio_gateway__denial(id, "too many", "/all_tools/limits/0", "limit", 30);
	json_t *r = json_object_get(d, "result"), *meta = json_object_get(r, "_meta");

	assert_int_equal(json_integer_value(json_object_get(d, "id")), 5);
	assert_true(json_is_true(json_object_get(r, "isError")));
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(r, "content"), 0), "text")),
			    "denied by policy: too many");
	assert_string_equal(json_string_value(json_object_get(meta, "rule")), "/all_tools/limits/0");
	assert_string_equal(json_string_value(json_object_get(meta, "kind")), "limit");
	assert_int_equal(json_integer_value(json_object_get(meta, "retry_after_s")), 30);
	json_decref(d);
	d = stdio_gateway__denial(id, "no", "/hide/0", "hidden", 0);
	assert_true(json_is_null(json_object_get(json_object_get(json_object_get(d, "result"),
								 "_meta"), "retry_after_s")));
	json_decref(d);
	json_decref(id);
}

static json_t *call(int id, const char *tool)
{
	return json_pack("{s:s, s:i, s:s, s:{s:s, s:{s:i}}}", "jsonrpc", "2.0", "id", id, "method",
			 "tools/call", "params", "name", tool, "arguments", "n", id);
}

static void test_queue(void **state)
{
	struct approvals q;
	struct approval *a, *b;
	json_t *id2 = json_integer(2);

	approvals__init(&q);
	a = approvals__add(&q, "t1", call(1, "t1"), "raw", 3, 10, 1000000);
	b = approvals__add(&q, "t2", call(2, "t2"), NULL, 0, 5, 1000000);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(a->n + 1, b->n);
	assert_ptr_equal(approvals__find_request(&q, id2), b);
	assert_null(approvals__find_request(&q, NULL));
	assert_null(approvals__decided(&q));
	assert_int_equal(approvals__expire(&q, 2000000), 6000000);
	assert_int_equal(approvals__expire(&q, 6000000), 11000000);
	assert_ptr_equal(approvals__decided(&q), b);
	assert_int_equal(b->state, APPROVAL_EXPIRED);
	a->elicit_id = strdup("mcpfence-x-1");
	assert_ptr_equal(approvals__find_elicit(&q, "mcpfence-x-1"), a);
	assert_null(approvals__find_elicit(&q, "mcpfence-x-2"));
	approvals__remove(&q, b);
	assert_null(approvals__decided(&q));
	approvals__fini(&q);
	assert_null(q.head);
	json_decref(id2);
}

static void ask(const char *path, const char *cmd, char *out, size_t size, struct approvals *q)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ssize_t n;
	size_t len = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
	approvals__serve(q, 3000000);
	while (len < size - 1 && (n = read(fd, out + len, size - 1 - len)) > 0)
		len += n;
	out[len] = 0;
	close(fd);
}

static void test_control_socket(void **state)
{
	char dir[] = "/tmp/mcpfence-ctl-XXXXXX", out[4096], cmd[64];
	struct approvals q;
	struct approval *a;

	assert_non_null(mkdtemp(dir));
	setenv("MCPFENCE_RUNTIME_DIR", dir, 1);
	approvals__init(&q);
	q.server = "srv";
	a = approvals__add(&q, "refund", call(1, "refund"), NULL, 0, 60, 1000000);
	assert_int_equal(approvals__listen(&q), 0);
	ask(q.sock_path, "list\n", out, sizeof(out), &q);
	assert_non_null(strstr(out, "\"tool\":\"refund\""));
	assert_non_null(strstr(out, "\"waiting_s\":2"));
	assert_non_null(strstr(out, "\"arguments\":{\"n\":1}"));
	ask(q.sock_path, "approve 999\n", out, sizeof(out), &q);
	assert_non_null(strstr(out, "error"));
	ask(q.sock_path, "approve 1x\n", out, sizeof(out), &q);
	assert_non_null(strstr(out, "error"));
	ask(q.sock_path, "launch missiles\n", out, sizeof(out), &q);
	assert_non_null(strstr(out, "unknown command"));
	assert_int_equal(a->state, APPROVAL_WAITING);
	snprintf(cmd, sizeof(cmd), "deny %llu\n", (unsigned long long)a->n);
	ask(q.sock_path, cmd, out, sizeof(out), &q);
	assert_string_equal(out, "ok\n");
	assert_int_equal(a->state, APPROVAL_DENIED);
	assert_string_equal(a->by, "socket");
	ask(q.sock_path, cmd, out, sizeof(out), &q); /* decided once only */
	assert_non_null(strstr(out, "error"));
	approvals__fini(&q);
	assert_int_equal(access(q.sock_path, F_OK), -1);
	unsetenv("MCPFENCE_RUNTIME_DIR");
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listable),
		cmocka_unit_test(test_denial),
		cmocka_unit_test(test_queue),
		cmocka_unit_test(test_control_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
