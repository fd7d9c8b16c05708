// SPDX-License-Identifier: Apache-2.0
/*
 * The gateway's pieces that need no server: what tools/list may show, the denial result the
 * agent reads, the queue of held calls and the control socket (a real abstract AF_UNIX
 * socket; as root, also peers of other uids, from child processes that drop to them).
 */
#include <grp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
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
				    "\"nextCursor\":\"c\"}",
				    0, NULL);
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
	json_t *req = json_pack("{s:i, s:{s:s}}", "id", 5, "params", "name", "t");
	json_t *d =
		stdio_gateway__denial(req, "too many", "/all_tools/limits/0", "limit", 30, NULL);
	json_t *r = json_object_get(d, "result"), *meta = json_object_get(r, "_meta");

	assert_int_equal(json_integer_value(json_object_get(d, "id")), 5);
	assert_true(json_is_true(json_object_get(r, "isError")));
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(json_object_get(r, "content"), 0), "text")),
			    "denied by policy: too many");
	assert_string_equal(json_string_value(json_object_get(meta, "rule")),
			    "/all_tools/limits/0");
	assert_string_equal(json_string_value(json_object_get(meta, "kind")), "limit");
	assert_int_equal(json_integer_value(json_object_get(meta, "retry_after_s")), 30);
	/* an earlier revision: no resultType, no serverInfo */
	assert_null(json_object_get(r, "resultType"));
	json_decref(d);
	d = stdio_gateway__denial(req, "no", "/hide/0", "hidden", 0, NULL);
	assert_true(json_is_null(json_object_get(
		json_object_get(json_object_get(d, "result"), "_meta"), "retry_after_s")));
	json_decref(d);
	json_decref(req);
}

/* A request of the 2026-07-28 revision gets a result of that revision. */
static void test_denial_2026(void **state)
{
	json_t *req = json_pack("{s:s, s:s, s:{s:s, s:{s:s}}}", "id", "a-1", "method", "tools/call",
				"params", "name", "t", "_meta",
				"io.modelcontextprotocol/protocolVersion", "2026-07-28");
	json_t *info = json_pack("{s:s, s:s}", "name", "srv", "version", "1");
	json_t *d = stdio_gateway__denial(req, "no", "/tools/t/action", "rule", 0, info);
	json_t *r = json_object_get(d, "result"), *meta = json_object_get(r, "_meta");
	char *s;

	assert_string_equal(json_string_value(json_object_get(d, "id")), "a-1");
	assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
	assert_true(json_is_true(json_object_get(r, "isError")));
	assert_string_equal(json_string_value(json_object_get(meta, "rule")), "/tools/t/action");
	s = json_dumps(json_object_get(meta, "io.modelcontextprotocol/serverInfo"),
		       JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"name\":\"srv\",\"version\":\"1\"}");
	free(s);
	json_decref(d);
	/* the server's name not known yet: no serverInfo, still a result of the revision */
	d = stdio_gateway__denial(req, "no", "/tools/t/action", "rule", 0, NULL);
	r = json_object_get(d, "result");
	assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
	assert_null(
		json_object_get(json_object_get(r, "_meta"), "io.modelcontextprotocol/serverInfo"));
	json_decref(d);
	json_decref(info);
	json_decref(req);
}

/* A list that passed the gateway: "private" when the revision has cache scopes, else as it was. */
static void test_private_view(void **state)
{
	json_t *modern = json_pack("{s:[], s:s, s:i, s:s}", "tools", "resultType", "complete",
				   "ttlMs", 60000, "cacheScope", "public");
	json_t *old = json_pack("{s:[]}", "tools");

	assert_true(stdio_gateway__private_view(modern));
	assert_string_equal(json_string_value(json_object_get(modern, "cacheScope")), "private");
	assert_int_equal(json_integer_value(json_object_get(modern, "ttlMs")), 60000);
	assert_false(stdio_gateway__private_view(modern)); /* already private */
	assert_false(stdio_gateway__private_view(old));
	assert_null(json_object_get(old, "cacheScope"));
	json_decref(modern);
	json_decref(old);
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
	assert_string_not_equal(a->id, b->id);
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

/* A client of the control socket, as `mcpfence approve` is: the abstract name, one line. */
static int ctl_connect(const struct approvals *q)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(q->sock_name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(sa.sun_path + 1, q->sock_name, len);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa,
				 offsetof(struct sockaddr_un, sun_path) + 1 + len),
			 0);
	return fd;
}

/* One poll round of the gateway's side. */
static void serve_once(struct approvals *q, const struct policy *p, int ms)
{
	struct pollfd pfd[1 + APPROVAL_CONNS];
	size_t n = approvals__pollfds(q, pfd, 1 + APPROVAL_CONNS);

	assert_true(n >= 1);
	if (poll(pfd, n, ms) > 0)
		approvals__serve(q, p, pfd, n, 3000000);
}

/* Read fd to EOF (non-blocking), serving the gateway's side in between. */
static void answer(int fd, struct approvals *q, const struct policy *p, char *out, size_t size)
{
	size_t len = 0;

	for (int i = 0; i < 500; i++) {
		ssize_t n;

		serve_once(q, p, 10);
		n = recv(fd, out + len, size - 1 - len, MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n > 0)
			len += (size_t)n;
	}
	out[len] = 0;
}

static void ask(struct approvals *q, const struct policy *p, const char *cmd, char *out,
		size_t size)
{
	int fd = ctl_connect(q);

	assert_int_equal(write(fd, cmd, strlen(cmd)), (ssize_t)strlen(cmd));
	answer(fd, q, p, out, size);
	close(fd);
}

/* The same, from a child process of another uid (root only: it drops to uid 65534). */
static void ask_as(uid_t uid, gid_t gid, struct approvals *q, const struct policy *p,
		   const char *cmd, char *out, size_t size)
{
	int pipefd[2], st;
	pid_t pid;
	size_t len = 0;

	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char buf[4096];
		ssize_t n;
		int fd;

		close(pipefd[0]);
		/* the kernel gives the peer's effective ids; the saved ones stay root's, so that
		 * the child exits as root (under valgrind, which then removes its own files) */
		if (setgroups(0, NULL) || setresgid(gid, gid, 0) || setresuid(uid, uid, 0))
			_exit(2);
		fd = ctl_connect(q);
		if (write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
			_exit(3);
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(pipefd[1], buf, n) != n)
				_exit(4);
		_exit(setresuid(0, 0, 0) ? 5 : 0);
	}
	close(pipefd[1]);
	for (int i = 0; i < 500 && waitpid(pid, &st, WNOHANG) == 0; i++)
		serve_once(q, p, 10);
	for (ssize_t n; (n = read(pipefd[0], out + len, size - 1 - len)) > 0;)
		len += (size_t)n;
	out[len] = 0;
	close(pipefd[0]);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static const char ctl_policy[] =
	"{\"version\": \"1\", \"default\": \"deny\", \"tools\": {"
	"\"refund\": {\"action\": \"approve\", \"approval\": {\"approvers\": {\"groups\": [4242]}}},"
	"\"asked\": {\"action\": \"approve\", \"approval\": {\"via\": [\"client\"]}}}}";

static void test_control_socket(void **state)
{
	struct policy *p = parse(ctl_policy);
	char out[8192], cmd[128], wrong[APPROVAL_ID_LEN];
	struct approvals q;
	struct approval *a, *b;
	json_t *line;

	approvals__init(&q);
	q.server = "srv\xff"; /* not UTF-8 (an argv[0]): the call is listed all the same */
	q.client_uid = 1000;
	a = approvals__add(&q, "refund", call(1, "refund"), NULL, 0, 60, 1000000);
	b = approvals__add(&q, "asked", call(2, "asked"), NULL, 0, 60, 1000000);
	assert_int_equal(approvals__listen(&q), 0);
	assert_int_equal(approvals__listen(&q), 0); /* idempotent */
	snprintf(cmd, sizeof(cmd), APPROVAL_SOCK_PREFIX "%d", (int)getpid());
	assert_string_equal(q.sock_name, cmd);

	ask(&q, p, "list\n", out, sizeof(out));
	line = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
	assert_non_null(line);
	assert_string_equal(json_string_value(json_object_get(line, "id")), a->id);
	assert_string_equal(json_string_value(json_object_get(line, "digest")), a->digest);
	assert_string_equal(json_string_value(json_object_get(line, "may_approve")),
			    "root, members of group 4242");
	assert_int_equal(json_integer_value(json_object_get(line, "waiting_s")), 2);
	assert_string_equal(json_string_value(json_object_get(line, "server")), "srv?");
	assert_true(json_equal(json_object_get(line, "arguments"), a->args));
	json_decref(line);
	assert_non_null(strstr(out, b->id));

	ask(&q, p, "approve 999\n", out, sizeof(out));
	assert_non_null(strstr(out, "is not an approval ID"));
	ask(&q, p, "launch missiles\n", out, sizeof(out));
	assert_non_null(strstr(out, "unknown command"));
	/* another pid, another token, another digest: nothing decided */
	snprintf(cmd, sizeof(cmd), "approve %d%s\n", (int)getpid() + 1, strchr(a->id, '-'));
	ask(&q, p, cmd, out, sizeof(out));
	assert_non_null(strstr(out, "not held by this gateway"));
	snprintf(cmd, sizeof(cmd), "approve %d-%08x-%.16s\n", (int)getpid(),
		 (unsigned)strtoul(a->token, NULL, 16) ^ 1, a->digest);
	ask(&q, p, cmd, out, sizeof(out));
	assert_non_null(strstr(out, "no call"));
	snprintf(wrong, sizeof(wrong), "%s", a->id);
	wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == '0' ? '1' : '0';
	snprintf(cmd, sizeof(cmd), "approve %s\n", wrong);
	ask(&q, p, cmd, out, sizeof(out));
	assert_non_null(strstr(out, "nothing decided"));
	/* a call the rule asks the client only about: the socket does not decide it, not root */
	snprintf(cmd, sizeof(cmd), "approve %s\n", b->id);
	ask(&q, p, cmd, out, sizeof(out));
	assert_non_null(strstr(out, "through the client only"));
	assert_int_equal(a->state, APPROVAL_WAITING);
	assert_int_equal(b->state, APPROVAL_WAITING);

	if (geteuid() == 0) {
		/* not root, not an approver: refused, and the call waits on */
		snprintf(cmd, sizeof(cmd), "approve %s\n", a->id);
		ask_as(65534, 65534, &q, p, cmd, out, sizeof(out));
		assert_non_null(strstr(out, "permission denied: uid 65534 may not approve this "
					    "call"));
		ask_as(65534, 65534, &q, p, "list\n", out, sizeof(out));
		assert_non_null(strstr(out, "permission denied"));
		assert_int_equal(a->state, APPROVAL_WAITING);
		/* the group by its primary gid */
		snprintf(cmd, sizeof(cmd), "deny %s\n", a->id);
		ask_as(65533, 4242, &q, p, cmd, out, sizeof(out));
		assert_non_null(strstr(out, "ok: call"));
		assert_int_equal(a->state, APPROVAL_DENIED);
		assert_string_equal(a->by, "uid 65533");
	} else {
		snprintf(cmd, sizeof(cmd), "deny %s\n", a->id);
		ask(&q, p, cmd, out, sizeof(out));
		assert_non_null(strstr(out, "permission denied"));
		a->state = APPROVAL_DENIED;
	}
	ask(&q, p, cmd, out, sizeof(out)); /* decided once only */
	assert_non_null(strstr(out, "no call"));
	approvals__fini(&q);
	policy__free(p);
}

/* Connections that never say anything cannot keep an approver out, nor stall the gateway. */
static void test_control_socket_flood(void **state)
{
	struct policy *p = parse(ctl_policy);
	int idle[APPROVAL_CONNS + 4];
	struct approvals q;
	char out[8192];

	approvals__init(&q);
	assert_non_null(approvals__add(&q, "refund", call(1, "refund"), NULL, 0, 60, 1000000));
	assert_int_equal(approvals__listen(&q), 0);
	for (size_t i = 0; i < sizeof(idle) / sizeof(idle[0]); i++) {
		idle[i] = ctl_connect(&q);
		serve_once(&q, p, 10);
	}
	/* the newest (one of them, or an approver's) is served; the oldest idle ones were shed */
	ask(&q, p, "list\n", out, sizeof(out));
	assert_non_null(strstr(out, "\"tool\":\"refund\""));
	/* idle ones are closed at their deadline */
	assert_true(approvals__expire(&q, 3000000 + 3000001) == 61000000);
	for (size_t i = 0; i < APPROVAL_CONNS; i++)
		assert_int_equal(q.conns[i].fd, -1);
	for (size_t i = 0; i < sizeof(idle) / sizeof(idle[0]); i++)
		close(idle[i]);
	approvals__fini(&q);
	policy__free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listable),
		cmocka_unit_test(test_denial),
		cmocka_unit_test(test_denial_2026),
		cmocka_unit_test(test_private_view),
		cmocka_unit_test(test_queue),
		cmocka_unit_test(test_control_socket),
		cmocka_unit_test(test_control_socket_flood),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
