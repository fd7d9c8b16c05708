// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence attach --port` end to end, as a user runs it: the real binary, with no --cgroup (the
 * host's cgroup v2, found in /proc/self/mountinfo), in front of a small MCP server in C that
 * speaks Streamable HTTP (JSON answers, keep-alive) and counts the tools it really ran; clients
 * on raw sockets; `mcpfence stats`, `mcpfence detach`. No node: the kernel matrix
 * (tests/kernels/run.sh) runs it in each kernel's VM, the BPF tier on this host.
 * What it proves, test by test, is said above each. Root only: skips with the reason otherwise.
 * Every answer is waited for: a request that gets none fails (a dead server passes nothing).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <jansson.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "mcpfence.h"
#include "net_helpers.h"
#include "cgroup.h"
#include "feature_probes.h"
#include "kernel.h"

#define CANARY "mcpfence-canary-7f3a9c"
#define ANSWER_MS 5000
/* attach verifies ~10^5 instructions: minutes under an emulated CPU (the kernel matrix's TCG) */
#define ATTACH_START_S 600

struct env {
	char mcpfence[PATH_MAX];
	char dir[64];	     /* policies, audit */
	char root[PATH_MAX]; /* the cgroup v2 attach must find by itself */
	uint16_t port;
	int tfo; /* net.ipv4.tcp_fastopen before the tests, put back after each */
	int lfd;
	pthread_t srv;
	char skip[512];
	char broken[2048]; /* a stale attachment that cannot be cleaned: every test fails */
};

static struct env env;

#include "harness.h"

/* What the server really ran: a denied call that reaches it shows here. */
static atomic_int ran_get_env, ran_echo, answered;

/* ---- a small MCP server: Streamable HTTP, JSON answers, keep-alive -------------------- */

static void http_answer(int fd, int status, const char *body, bool close_after)
{
	char buf[8192];
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
			 "Mcp-Session-Id: s1\r\n%sContent-Length: %zu\r\n\r\n%s",
			 status,
			 status == 200 ? "OK" :
			 status == 202 ? "Accepted" :
					 "Bad Request",
			 close_after ? "Connection: close\r\n" : "", strlen(body), body);

	net__send_all(fd, buf, n); /* one send: the server stage sees the answer whole */
}

/* The answer to one JSON-RPC request, as an MCP server writes it; "" for a notification. */
static void mcp_answer(json_t *m, char *out, size_t size)
{
	const char *method = json_string_value(json_object_get(m, "method"));
	json_t *params = json_object_get(m, "params"), *idv = json_object_get(m, "id");
	const char *tool = json_string_value(json_object_get(params, "name"));
	char *id = idv ? json_dumps(idv, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;

	out[0] = 0;
	if (!id)
		return;
	if (method && !strcmp(method, "initialize")) {
		snprintf(out, size,
			 "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"protocolVersion\":"
			 "\"2025-06-18\",\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":"
			 "\"tiny\",\"version\":\"1\"}}}",
			 id);
	} else if (method && !strcmp(method, "tools/call") && tool && !strcmp(tool, "echo")) {
		const char *msg = json_string_value(
			json_object_get(json_object_get(params, "arguments"), "message"));

		atomic_fetch_add(&ran_echo, 1);
		snprintf(
			out, size,
			"{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\","
			"\"text\":\"Echo: %.200s\"}]}}",
			id, msg ? msg : "");
	} else if (method && !strcmp(method, "tools/call") && tool && !strcmp(tool, "get-env")) {
		atomic_fetch_add(&ran_get_env, 1);
		snprintf(
			out, size,
			"{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\","
			"\"text\":\"" CANARY "\"}]}}",
			id);
	} else if (method && !strcmp(method, "tools/call")) {
		snprintf(out, size,
			 "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":-32602,\"message\":"
			 "\"Unknown tool\"}}",
			 id);
	} else {
		snprintf(out, size,
			 "{\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":-32601,\"message\":"
			 "\"Method not found\"}}",
			 id);
	}
	free(id);
}

/* One connection: requests framed by Content-Length, answered in order. */
static void *conn_main(void *arg)
{
	int fd = (int)(long)arg;
	char *buf = malloc(1 << 17), answer[4096];
	size_t have = 0;

	while (buf) {
		char *end, *cl;
		size_t head, len;
		json_t *m;
		ssize_t r;

		buf[have] = 0;
		end = strstr(buf, "\r\n\r\n");
		if (!end) {
			if (have >= (1 << 16))
				break;
			r = recv(fd, buf + have, (1 << 17) - 1 - have, 0);
			if (r <= 0)
				break;
			have += r;
			continue;
		}
		/* a request made invalid from its first byte: refused, as real servers do */
		if (buf[0] < 'A' || buf[0] > 'Z') {
			http_answer(fd, 400, "{\"error\":\"bad request\"}", true);
			break;
		}
		head = end + 4 - buf;
		cl = strcasestr(buf, "\r\ncontent-length:");
		len = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
		if (len > (1 << 16))
			break;
		while (have < head + len) {
			r = recv(fd, buf + have, (1 << 17) - 1 - have, 0);
			if (r <= 0)
				goto out;
			have += r;
		}
		m = json_loadb(buf + head, len, 0, NULL);
		if (!m) {
			http_answer(fd, 400,
				    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
				    "\"message\":\"Parse error\"}}",
				    false);
		} else {
			mcp_answer(m, answer, sizeof(answer));
			if (answer[0])
				http_answer(fd, 200, answer, false);
			else
				http_answer(fd, 202, "", false);
			json_decref(m);
		}
		atomic_fetch_add(&answered, 1);
		memmove(buf, buf + head + len, have - head - len);
		have -= head + len;
	}
out:
	free(buf);
	close(fd);
	return NULL;
}

static void *server_main(void *arg)
{
	for (;;) {
		pthread_t th;
		int fd = accept(env.lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;
		}
		if (pthread_create(&th, NULL, conn_main, (void *)(long)fd))
			close(fd);
		else
			pthread_detach(th);
	}
}

/* ---- clients ---------------------------------------------------------------------------- */

struct answer {
	int status;
	char body[8192];
};

static int client_open(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(env.port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (void *)&in, sizeof(in)), 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/*
 * POST body on fd in one send (extra: header lines, each ending in \r\n), then read the one
 * answer: 0 when a whole answer arrived within ANSWER_MS, -1 otherwise.
 */
static int post(int fd, const char *body, const char *extra, struct answer *a)
{
	char req[16384], buf[16384], hdrs[1024], *end, *cl;
	size_t have = 0, head, len, n;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	snprintf(hdrs, sizeof(hdrs), "Accept: application/json, text/event-stream\r\n%s",
		 extra ? extra : "");
	n = net__mcp_post(req, sizeof(req), "127.0.0.1", hdrs, body);

	a->status = 0;
	a->body[0] = 0;
	if (net__send_all(fd, req, n))
		return -1;
	for (;;) {
		ssize_t r;

		buf[have] = 0;
		end = strstr(buf, "\r\n\r\n");
		if (end) {
			head = end + 4 - buf;
			cl = strcasestr(buf, "\r\ncontent-length:");
			len = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
			if (have >= head + len || len >= sizeof(a->body))
				break;
		}
		if (have >= sizeof(buf) - 1 || poll(&pfd, 1, ANSWER_MS) != 1)
			return -1;
		r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
		if (r <= 0)
			return -1;
		have += r;
	}
	if (sscanf(buf, "HTTP/1.1 %d", &a->status) != 1 || len >= sizeof(a->body))
		return -1;
	memcpy(a->body, buf + head, len);
	a->body[len] = 0;
	return 0;
}

static char *call(char *buf, size_t size, int id, const char *tool)
{
	snprintf(buf, size,
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"%s\",\"arguments\":{\"message\":\"hi %d\"}}}",
		 id, tool, id);
	return buf;
}

/* A tools/call of tool on fd: the answer must arrive; returns it. */
static struct answer *call_on(int fd, int id, const char *tool)
{
	static struct answer a;
	char body[512];

	if (post(fd, call(body, sizeof(body), id, tool), NULL, &a))
		fail_msg("tools/call %s (id %d): no answer within %d ms", tool, id, ANSWER_MS);
	return &a;
}

static bool is_denied(const struct answer *a)
{
	return a->status == 200 && strstr(a->body, "\"code\":-32601") &&
	       strstr(a->body, "denied by policy");
}

static void expect_denied(int fd, int id, const char *tool)
{
	struct answer *a = call_on(fd, id, tool);

	if (!is_denied(a) || strstr(a->body, CANARY))
		fail_msg("tools/call %s (id %d): not denied: HTTP %d %s", tool, id, a->status,
			 a->body);
}

static void expect_echo(int fd, int id)
{
	struct answer *a = call_on(fd, id, "echo");
	char want[64];

	snprintf(want, sizeof(want), "\"text\":\"Echo: hi %d\"", id);
	if (a->status != 200 || !strstr(a->body, want))
		fail_msg("echo (id %d): HTTP %d %s", id, a->status, a->body);
}

static void expect_canary(int fd, int id)
{
	struct answer *a = call_on(fd, id, "get-env");

	if (a->status != 200 || !strstr(a->body, CANARY))
		fail_msg("get-env (id %d), not attached: HTTP %d %s", id, a->status, a->body);
}

/* ---- mcpfence ------------------------------------------------------------------------- */

static void policy_write(const char *name, const char *json, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", env.dir, name);
	assert_int_equal(write_file(path, json), 0);
}

/*
 * `mcpfence attach --policy P --port PORT --audit DIR/audit.jsonl [EXTRA]` (no --cgroup), until it
 * says it watches the port; fails with its output if it stops first.
 */
static void attach_start_audit(struct attach *at, const char *policy, const char *audit,
			       const char *extra)
{
	char port[16];
	const char *argv[] = { env.mcpfence, "attach",	"--policy", policy, "--port",
			       port,	     "--audit", audit,	    extra,  NULL };

	snprintf(port, sizeof(port), "%u", env.port);
	attach_spawn(at, argv, "watching TCP port", ATTACH_START_S, 50000);
}

static void attach_start(struct attach *at, const char *policy, const char *extra)
{
	char audit[128];

	snprintf(audit, sizeof(audit), "%s/audit.jsonl", env.dir);
	attach_start_audit(at, policy, audit, extra);
}

static void attach_stop(struct attach *at)
{
	attach_stop_every(at, 100000);
}

static int tfo_get(void)
{
	char buf[32] = "";
	int fd = open("/proc/sys/net/ipv4/tcp_fastopen", O_RDONLY);

	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	return atoi(buf);
}

static void tfo_set(int v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d\n", v);
	assert_int_equal(write_file("/proc/sys/net/ipv4/tcp_fastopen", buf), 0);
}

/* After each test, failed or not: no attach left running, nothing attached. */
static int test_teardown(void **state)
{
	char out[1024];

	if (running)
		attach_stop(running);
	if (env.mcpfence[0] && kernel__attachment() != KERNEL_ATTACHED_NONE)
		mcpfence(out, sizeof(out), "detach", NULL);
	if (env.tfo >= 0 && tfo_get() != env.tfo)
		tfo_set(env.tfo);
	return 0;
}

/* ---- set-up ----------------------------------------------------------------------------- */

static int setup(void **state)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	char why[300];
	int one = 1;

	env.tfo = -1;
	if (geteuid() != 0) {
		snprintf(env.skip, sizeof(env.skip), "needs root (mcpfence attach)");
		return 0;
	}
	if (find_mcpfence(env.mcpfence, sizeof(env.mcpfence))) {
		snprintf(env.broken, sizeof(env.broken),
			 "mcpfence is not built next to this test "
			 "(nor in $MCPFENCE)");
		return 0;
	}
	features__mount();
	if (cgroup__v2_root(env.root, sizeof(env.root), why, sizeof(why))) {
		snprintf(env.skip, sizeof(env.skip), "%s", why);
		return 0;
	}
	if (!take_attachment())
		return 0;
	snprintf(env.dir, sizeof(env.dir), "/tmp/mcpfence-attach-XXXXXX");
	if (!mkdtemp(env.dir)) {
		snprintf(env.broken, sizeof(env.broken), "mkdtemp: %s", strerror(errno));
		return 0;
	}
	env.tfo = tfo_get();
	env.port = 30000 + getpid() % 10000;
	env.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(env.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	in.sin_port = htons(env.port);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(env.lfd, (void *)&in, sizeof(in)) || listen(env.lfd, 64)) {
		snprintf(env.broken, sizeof(env.broken), "port %u: %s", env.port, strerror(errno));
		return 0;
	}
	pthread_create(&env.srv, NULL, server_main, NULL);
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX];

	if (env.dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env.dir);
		if (system(cmd))
			fprintf(stderr, "%s: not removed\n", env.dir);
	}
	return 0;
}

static const char base_policy[] =
	"{\"version\":\"1\",\"default\":\"allow\",\"tools\":{\"get-env\":{\"action\":\"deny\","
	"\"reason\":\"environment is private\"}}}";

/* ---- tests ------------------------------------------------------------------------------ */

/*
 * attach with no --cgroup finds the host's cgroup v2 (on a pure v2 host /sys/fs/cgroup, on a
 * hybrid one /sys/fs/cgroup/unified), enforces (an allowed call passes, a denied one is
 * neutralized and its answer reads "denied by policy", the server never runs it), counts
 * (stats), and detach puts everything back.
 */
static void test_attach_enforces_and_detaches(void **state)
{
	char policy[128], out[16384], want[PATH_MAX + 64];
	static struct attach at; /* test_teardown may stop it after a failure */
	int ran0, fd;
	json_t *j;

	SKIP_IF_NEEDED();
	policy_write("base.json", base_policy, policy, sizeof(policy));
	attach_start(&at, policy, NULL);
	snprintf(want, sizeof(want), "in cgroup %s;", env.root);
	assert_true(attach_says(&at, want));
	ran0 = atomic_load(&ran_get_env);
	fd = client_open();
	expect_echo(fd, 1);
	expect_denied(fd, 2, "get-env");
	expect_echo(fd, 3); /* the connection stays healthy */
	close(fd);
	assert_int_equal(atomic_load(&ran_get_env), ran0);

	assert_int_equal(mcpfence(out, sizeof(out), "stats", "--json", NULL), 0);
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	{
		json_t *c;
		size_t i;
		int echo = 0, env_rule = 0;

		json_array_foreach(json_object_get(j, "calls"), i, c) {
			const char *tool = json_string_value(json_object_get(c, "tool"));
			const char *v = json_string_value(json_object_get(c, "verdict"));
			int n = json_integer_value(json_object_get(c, "count"));

			if (tool && v && !strcmp(tool, "echo") && !strcmp(v, "allow"))
				echo += n;
			if (tool && v && !strcmp(tool, "get-env") && !strcmp(v, "rule"))
				env_rule += n;
		}
		assert_int_equal(echo, 2);
		assert_int_equal(env_rule, 1);
		assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "totals"),
								    "replies_rewritten")),
				 1);
	}
	json_decref(j);
	assert_int_equal(mcpfence(out, sizeof(out), "detach", NULL), 0);
	assert_non_null(strstr(out, "detached"));
	/* attach sees its pins gone and stops */
	for (int i = 0; i < 50 && !attach_says(&at, "stopping"); i++)
		usleep(100000);
	assert_true(attach_says(&at, "stopping"));
	attach_stop(&at);
	assert_int_equal(kernel__attachment(), KERNEL_ATTACHED_NONE);
	fd = client_open();
	expect_canary(fd, 4);
	close(fd);
}

/*
 * A keep-alive connection opened before attach is found in /proc and put under enforcement:
 * a denied call on it is neutralized. (sock_ops sees only connections established after.)
 */
static void test_connections_before_attach_adopted(void **state)
{
	char policy[128];
	static struct attach at; /* test_teardown may stop it after a failure */
	int fd, ran0;

	SKIP_IF_NEEDED();
	policy_write("base.json", base_policy, policy, sizeof(policy));
	fd = client_open();
	expect_echo(fd, 10); /* established, and used, before the attachment */
	attach_start(&at, policy, NULL);
	assert_true(attach_says(&at, "established before the attachment now enforced"));
	ran0 = atomic_load(&ran_get_env);
	expect_denied(fd, 11, "get-env");
	expect_echo(fd, 12);
	assert_int_equal(atomic_load(&ran_get_env), ran0);
	close(fd);
	attach_stop(&at);
}

/*
 * TCP Fast Open data leaves before sock_ops can watch its socket: the client bit (1) of
 * net.ipv4.tcp_fastopen is off while attached, and the value before comes back at detach.
 */
static void test_fastopen_client_off_while_attached(void **state)
{
	char policy[128];
	static struct attach at; /* test_teardown may stop it after a failure */
	int before;

	SKIP_IF_NEEDED();
	before = tfo_get();
	tfo_set(0x403); /* client and server on, and a bit more that must come back too */
	policy_write("base.json", base_policy, policy, sizeof(policy));
	attach_start(&at, policy, NULL);
	assert_int_equal(tfo_get(), 0x402);
	attach_stop(&at);
	assert_int_equal(tfo_get(), 0x403);
	tfo_set(before);
}

/*
 * attach killed with SIGKILL leaves its programs pinned, still enforcing (the floor stays);
 * detach then removes everything: the denied tool answers again, the pins are gone, and the
 * TCP Fast Open client bit is back.
 */
static void test_detach_after_sigkill(void **state)
{
	char policy[128], out[1024];
	static struct attach at; /* test_teardown may stop it after a failure */
	int fd, before, st;

	SKIP_IF_NEEDED();
	before = tfo_get();
	tfo_set(3);
	policy_write("base.json", base_policy, policy, sizeof(policy));
	attach_start(&at, policy, NULL);
	kill(at.pid, SIGKILL);
	waitpid(at.pid, &st, 0);
	close(at.out);
	at.pid = 0;
	running = NULL;
	assert_int_equal(kernel__attachment(), KERNEL_ATTACHED_STALE);
	fd = client_open();
	expect_denied(fd, 20, "get-env");
	close(fd);
	/* a new attach refuses to start over it, and says why */
	{
		char port[16];

		snprintf(port, sizeof(port), "%u", env.port);
		assert_int_equal(mcpfence(out, sizeof(out), "attach", "--policy", policy, "--port",
					  port, NULL),
				 1);
		assert_non_null(strstr(out, "stale attachment"));
	}
	assert_int_equal(mcpfence(out, sizeof(out), "detach", NULL), 0);
	assert_non_null(strstr(out, "detached"));
	assert_int_equal(kernel__attachment(), KERNEL_ATTACHED_NONE);
	assert_int_equal(access(MCPF_PIN_DIR, F_OK), -1);
	fd = client_open();
	expect_canary(fd, 21);
	close(fd);
	assert_int_equal(tfo_get(), 3);
	tfo_set(before);
}

/*
 * A body the kernel cannot read with certainty (a duplicate "name": servers read the last one)
 * is refused by default (its first byte made invalid: the server answers 400) and passes to
 * the server unread under "kernel": {"unparsed": "allow"} (the server answers it).
 */
static void test_unparsed_allow(void **state)
{
	static const char dup[] =
		"{\"jsonrpc\":\"2.0\",\"id\":31,\"method\":\"tools/call\",\"params\":"
		"{\"name\":\"echo\",\"name\":\"echo\",\"arguments\":{\"message\":"
		"\"hi 31\"}}}";
	static const char allow_json[] =
		"{\"version\":\"1\",\"default\":\"allow\",\"kernel\":{\"unparsed\":\"allow\"},"
		"\"tools\":{\"get-env\":{\"action\":\"deny\"}}}";
	char policy[128];
	static struct attach at; /* test_teardown may stop it after a failure */
	struct answer a;
	int fd;

	SKIP_IF_NEEDED();
	policy_write("base.json", base_policy, policy, sizeof(policy));
	attach_start(&at, policy, NULL);
	fd = client_open();
	assert_int_equal(post(fd, dup, NULL, &a), 0);
	assert_int_equal(a.status, 400);
	close(fd);
	attach_stop(&at);

	policy_write("unparsed-allow.json", allow_json, policy, sizeof(policy));
	attach_start(&at, policy, NULL);
	fd = client_open();
	assert_int_equal(post(fd, dup, NULL, &a), 0);
	if (a.status != 200 || !strstr(a.body, "Echo: hi 31"))
		fail_msg("an unreadable body under unparsed allow: HTTP %d %s", a.status, a.body);
	expect_denied(fd, 32, "get-env"); /* what it reads, it still decides */
	close(fd);
	attach_stop(&at);
}

static int occurrences(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

struct traffic {
	atomic_bool stop;
	int calls, denied, echoes, failures;
	char failure[512];
};

/* Calls on one keep-alive connection until stopped: get-env and echo in turn, every answer read. */
static void *traffic_main(void *arg)
{
	struct traffic *t = arg;
	int fd = client_open(), id = 1000;
	char body[512];
	struct answer a;

	while (!atomic_load(&t->stop) && !t->failures) {
		bool env_call = id % 2 == 0;

		if (post(fd, call(body, sizeof(body), id, env_call ? "get-env" : "echo"), NULL,
			 &a)) {
			snprintf(t->failure, sizeof(t->failure), "id %d: no answer", id);
			t->failures++;
			break;
		}
		t->calls++;
		usleep(500); /* a client's pace: a flood would starve attach's reloads of a CPU */
		if (env_call && is_denied(&a) && !strstr(a.body, CANARY)) {
			t->denied++;
		} else if (!env_call && strstr(a.body, "Echo: hi")) {
			t->echoes++;
		} else {
			snprintf(t->failure, sizeof(t->failure), "id %d (%s): HTTP %d %.300s", id,
				 env_call ? "get-env" : "echo", a.status, a.body);
			t->failures++;
		}
		id++;
	}
	close(fd);
	return NULL;
}

/*
 * SIGHUP loads the policy again into the idle generation and flips one word: no moment is
 * unenforced. Calls flow on two connections through 60 reloads of two policies (both deny get-env
 * over a default of allow, after 300 other rules, so a moment without its rule would let it
 * through): every get-env is denied and answered, every echo answered, and the server never
 * runs get-env.
 */
static void test_sighup_no_moment_unenforced(void **state)
{
	struct traffic t[2] = {};
	static struct attach at; /* test_teardown may stop it after a failure */
	static char versions[2][16384];
	char policy[128];
	pthread_t th[2];
	int ran0, flips = 60;

	SKIP_IF_NEEDED();
	/*
	 * 300 rules before get-env's: a reload that went through a moment without get-env's rule
	 * would hold that moment for the time of 300 map updates, not a few microseconds
	 */
	for (int v = 0; v < 2; v++) {
		size_t n = snprintf(versions[v], sizeof(versions[v]),
				    "{\"version\":\"1\",\"default\":\"allow\",\"tools\":{");

		for (int i = 0; i < 300; i++)
			n += snprintf(versions[v] + n, sizeof(versions[v]) - n, "\"%c%d\":{},",
				      v ? 's' : 'r', i);
		snprintf(versions[v] + n, sizeof(versions[v]) - n,
			 "\"get-env\":{\"action\":\"deny\",\"reason\":\"%s\"}}}", v ? "b" : "a");
	}
	policy_write("flip.json", versions[0], policy, sizeof(policy));
	/* a line per decision would bury the reload lines: --quiet, and no audit file */
	attach_start_audit(&at, policy, "/dev/null", "--quiet");
	ran0 = atomic_load(&ran_get_env);
	for (int k = 0; k < 2; k++)
		pthread_create(&th[k], NULL, traffic_main, &t[k]);
	for (int i = 1; i <= flips && !t[0].failures && !t[1].failures; i++) {
		usleep(20000);
		policy_write("flip.json", versions[i % 2], policy, sizeof(policy));
		kill(at.pid, SIGHUP);
		/* each reload in force before the next one */
		for (int k = 0; k < 3000 && occurrences(at.log, "in force (generation") < i + 1;
		     k++) {
			usleep(10000);
			attach_says(&at, "");
		}
		if (occurrences(at.log, "in force (generation") < i + 1) {
			atomic_store(&t[0].stop, true);
			atomic_store(&t[1].stop, true);
			pthread_join(th[0], NULL);
			pthread_join(th[1], NULL);
			fail_msg("reload %d not in force after 30 s:\n%s", i, at.log);
		}
	}
	usleep(50000);
	for (int k = 0; k < 2; k++) {
		atomic_store(&t[k].stop, true);
		pthread_join(th[k], NULL);
	}
	attach_stop(&at);
	for (int k = 0; k < 2; k++) {
		if (t[k].failures)
			fail_msg("through the reloads: %s", t[k].failure);
		print_message("connection %d: %d calls through %d reloads: %d get-env denied, "
			      "%d echoes\n",
			      k, t[k].calls, flips, t[k].denied, t[k].echoes);
		assert_true(t[k].denied > 0 && t[k].echoes > 0);
		assert_int_equal(t[k].denied + t[k].echoes, t[k].calls);
	}
	assert_int_equal(atomic_load(&ran_get_env), ran0);
	assert_int_equal(occurrences(at.log, "in force (generation"), flips + 1);
}

/* Is s valid UTF-8 (and free of C0 controls but tab)? */
static bool utf8_clean(const unsigned char *s)
{
	while (*s) {
		int n = *s < 0x80	    ? 0 :
			(*s & 0xe0) == 0xc0 ? 1 :
			(*s & 0xf0) == 0xe0 ? 2 :
			(*s & 0xf8) == 0xf0 ? 3 :
					      -1;

		if (n < 0 || (*s < 0x20 && *s != '\t') || (n == 1 && *s < 0xc2))
			return false;
		s++;
		for (int i = 0; i < n; i++, s++)
			if ((*s & 0xc0) != 0x80)
				return false;
	}
	return true;
}

/*
 * One label value of the Prometheus text format starting after its opening quote at *p: only
 * \\, \" and \n may be escaped, no raw newline or quote inside; decoded into out. Returns the
 * position after the closing quote, NULL when malformed.
 */
static const char *prom_label(const char *p, char *out, size_t size)
{
	size_t o = 0;

	for (; *p && *p != '"'; p++) {
		char c = *p;

		if (c == '\n')
			return NULL;
		if (c == '\\') {
			p++;
			if (*p == 'n')
				c = '\n';
			else if (*p == '\\' || *p == '"')
				c = *p;
			else
				return NULL;
		}
		if (o + 1 >= size)
			return NULL;
		out[o++] = c;
	}
	out[o] = 0;
	return *p == '"' ? p + 1 : NULL;
}

/*
 * Tool names come from outside. Names with a quote, a backslash and a newline (JSON escapes in
 * the call), and names with bytes that are not UTF-8 (put in the pinned stats map by hand: the
 * scanner refuses such a call), come out of `stats --prometheus` as valid label values that
 * decode to the name (U+FFFD for each bad byte), out of `stats --json` as valid JSON, and out of
 * the table with control bytes as \xNN.
 */
static void test_stats_hostile_names(void **state)
{
	static const struct {
		const char *json;  /* as the call writes the name */
		const char *label; /* what the label value must decode to */
	} names[] = {
		{ "q\\\"uote", "q\"uote" },
		{ "back\\\\slash", "back\\slash" },
		{ "new\\nline", "new\nline" },
		{ "label\\\"} 1\\nmcpfence_fake 9", "label\"} 1\nmcpfence_fake 9" },
		{ "\\u00e9t\\u00e9", "\xc3\xa9t\xc3\xa9" },
	};
	static const char bad_name[] = "bad\xff\xfe\xc3"; /* a stray, and a cut sequence */
	char policy[128], body[512], out[32768], label[512], table_line[256];
	int ncpu = libbpf_num_possible_cpus(), fd, found[6] = {};
	struct mcpf_stat_val *vals;
	struct mcpf_stat_key k = { .hash = 0x5eed0badULL, .kind = MCPF_KIND_ALLOW };
	static struct attach at; /* test_teardown may stop it after a failure */
	struct answer a;
	json_t *j;

	SKIP_IF_NEEDED();
	policy_write("base.json", base_policy, policy, sizeof(policy));
	attach_start(&at, policy, NULL);
	fd = client_open();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(body, sizeof(body),
			 "{\"jsonrpc\":\"2.0\",\"id\":%zu,\"method\":\"tools/call\",\"params\":"
			 "{\"name\":\"%s\",\"arguments\":{}}}",
			 40 + i, names[i].json);
		assert_int_equal(post(fd, body, NULL, &a), 0);
		assert_int_equal(a.status, 200); /* the server's own answer: an unknown tool */
	}
	close(fd);
	/* a name that is not UTF-8, as a hash collision or a cut name could leave one */
	vals = calloc(ncpu, sizeof(*vals));
	assert_non_null(vals);
	vals[0].count = 1;
	vals[0].claimed = 1;
	vals[0].len = sizeof(bad_name) - 1;
	memcpy(vals[0].name, bad_name, sizeof(bad_name) - 1);
	fd = bpf_obj_get(MCPF_PIN_DIR "/tcp_stats");
	assert_true(fd >= 0);
	assert_int_equal(bpf_map_update_elem(fd, &k, vals, BPF_ANY), 0);
	close(fd);
	free(vals);

	assert_int_equal(mcpfence(out, sizeof(out), "stats", "--prometheus", NULL), 0);
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		const char *p = line;

		if (line[0] == '#')
			continue;
		if (!utf8_clean((const unsigned char *)line))
			fail_msg("not UTF-8: %s", line);
		if (strncmp(line, "mcpfence_kernel_calls_total{", 28))
			continue;
		/* policy="..",policy_digest="..",tool="..",verdict=".."} N */
		p = strstr(line, ",tool=\"");
		assert_non_null(p);
		p = prom_label(p + 7, label, sizeof(label));
		if (!p || strncmp(p, ",verdict=\"", 10))
			fail_msg("a malformed series: %s", line);
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			found[i] |= !strcmp(label, names[i].label);
		found[5] |= !strcmp(label, "bad\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	}
	for (int i = 0; i < 6; i++)
		if (!found[i])
			fail_msg("name %d is not among the series", i);

	assert_int_equal(mcpfence(out, sizeof(out), "stats", "--json", NULL), 0);
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	json_decref(j);
	assert_int_equal(mcpfence(out, sizeof(out), "stats", NULL), 0);
	snprintf(table_line, sizeof(table_line), "new\\x0aline");
	assert_non_null(strstr(out, table_line));
	attach_stop(&at);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_attach_enforces_and_detaches, test_teardown),
		cmocka_unit_test_teardown(test_connections_before_attach_adopted, test_teardown),
		cmocka_unit_test_teardown(test_fastopen_client_off_while_attached, test_teardown),
		cmocka_unit_test_teardown(test_detach_after_sigkill, test_teardown),
		cmocka_unit_test_teardown(test_unparsed_allow, test_teardown),
		cmocka_unit_test_teardown(test_sighup_no_moment_unenforced, test_teardown),
		cmocka_unit_test_teardown(test_stats_hostile_names, test_teardown),
	};

	return cmocka_run_group_tests_name("mcpfence attach, end to end", tests, setup, teardown);
}
