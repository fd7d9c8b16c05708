// SPDX-License-Identifier: Apache-2.0
/*
 * bpf/tcp.bpf.c on real loopback TCP sockets: sock_ops on a cgroup of this test alone, sk_msg
 * on the sockets it puts in tcp_socks, and the bytes the server end really reads. Root only:
 * skips with the reason otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/limits.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
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
#include <cmocka.h>
#include <jansson.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "mcpfence.h"
#include "net_helpers.h"
#include "skip.h"
#include "tcp.skel.h"
#include "kernel.h"
#include "kernel_compile.h"
#include "kernel_adopt.h"
#include "limits.h"
#include "policy.h"
#include "cgroup.h"
#include "log.h"
#include "feature_probes.h"

static const char policy_json[] =
	"{\"version\":\"1\",\"default\":\"allow\",\"hide\":[\"hidden*\"],"
	"\"tools\":{\"get-env\":{\"action\":\"deny\"},"
	"\"secret_*\":{\"action\":\"deny\"},\"a?c\":{\"action\":\"deny\"},"
	"\"limited\":{\"limits\":[{\"counter\":\"c\",\"window\":3600,\"max\":2}]},"
	"\"per_session\":{\"limits\":[{\"counter\":\"s\",\"window\":3600,\"max\":1,"
	"\"scope\":\"session\"}]},"
	"\"per_agent\":{\"limits\":[{\"counter\":\"g\",\"window\":3600,\"max\":1,"
	"\"scope\":\"agent\"}]}}}";

struct env {
	struct tcp_bpf *skel;
	struct bpf_link *link;
	struct kernel_compiled kc;
	struct policy *pol;
	char cgroup[PATH_MAX + 32];
	char root[PATH_MAX]; /* the host's cgroup v2, found as attach finds it */
	uint16_t port;
	char skip[512];
	char broken[PATH_MAX + 128]; /* refused where it should load: every test fails */
};

static struct env env;

static int move_self(const char *cg)
{
	char path[PATH_MAX + 32], pid[32];
	int fd, n, err = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = snprintf(pid, sizeof(pid), "%d", getpid());
	if (write(fd, pid, n) != n)
		err = -errno;
	close(fd);
	return err;
}

static int setup(void **state)
{
	char err[POLICY_ERR_LEN], why[300];
	int cg_fd;

	if (geteuid() != 0) {
		snprintf(env.skip, sizeof(env.skip), "needs root (BPF programs on a cgroup)");
		return 0;
	}
	features__mount();
	env.port = 20000 + (getpid() % 5000) * 2 + 1;
	if (cgroup__v2_root(env.root, sizeof(env.root), why, sizeof(why))) {
		snprintf(env.skip, sizeof(env.skip), "%s", why);
		return 0;
	}
	snprintf(env.cgroup, sizeof(env.cgroup), "%s/mcpfence-test-%d", env.root, getpid());
	if (mkdir(env.cgroup, 0755) || move_self(env.cgroup)) {
		snprintf(env.broken, sizeof(env.broken),
			 "%s: cannot make a cgroup and move there: %s", env.cgroup,
			 strerror(errno));
		env.cgroup[0] = 0;
		return 0;
	}
	if (getenv("MCPF_TEST_DEBUG"))
		log_level = LOG_LVL_DEBUG; /* the verifier's log when the programs are refused */
	/* both builds of the server stage where the kernel has the kfunc: test_reply_search */
	env.skel = kernel__load_with(KERNEL_SEARCH_BOTH);
	if (!env.skel) {
		int err = errno;

		/* a kernel without what it needs skips; one with it that refuses it is a bug */
		if (features__tcp(why, sizeof(why)))
			snprintf(env.skip, sizeof(env.skip), "bpf/tcp.bpf.c does not load here: %s",
				 why);
		else
			snprintf(env.broken, sizeof(env.broken),
				 "the verifier refused bpf/tcp.bpf.c (%s) on a kernel with all it "
				 "needs",
				 strerror(err));
		return 0;
	}
	env.pol = policy__parse(policy_json, strlen(policy_json), "test", err);
	assert_non_null(env.pol);
	assert_int_equal(kernel__compile(env.skel, env.pol, 0, &env.kc), 0);
	assert_int_equal(kernel__activate(env.skel, 0), 0);
	assert_int_equal(kernel__watch_port(env.skel, env.port, 0), 0);
	assert_int_equal(bpf_prog_attach(bpf_program__fd(env.skel->progs.handle_sk_msg),
					 bpf_map__fd(env.skel->maps.tcp_socks), BPF_SK_MSG_VERDICT,
					 0),
			 0);
	cg_fd = open(env.cgroup, O_RDONLY | O_DIRECTORY);
	assert_true(cg_fd >= 0);
	env.link = bpf_program__attach_cgroup(env.skel->progs.handle_sock_ops, cg_fd);
	close(cg_fd);
	assert_non_null(env.link);
	return 0;
}

static int teardown(void **state)
{
	bpf_link__destroy(env.link);
	if (env.skel)
		tcp_bpf__destroy(env.skel);
	policy__free(env.pol);
	if (env.cgroup[0]) {
		move_self(env.root);
		rmdir(env.cgroup);
	}
	return 0;
}

struct pair {
	int lfd, cfd, sfd;
};

static struct pair last = { -1, -1, -1 };

/* A connected loopback pair on the watched port; v6: ::1, mapped: server on ::, client v4. */
static void pair_open(struct pair *p, int family, bool mapped)
{
	struct sockaddr_storage ss = {};
	socklen_t len;
	int one = 1;

	/* a failed test leaves its pair open: close it before binding the port again */
	if (last.lfd >= 0) {
		close(last.lfd);
		close(last.cfd);
		close(last.sfd);
		last.lfd = -1;
	}
	p->lfd = socket(family == AF_INET && !mapped ? AF_INET : AF_INET6, SOCK_STREAM, 0);
	assert_true(p->lfd >= 0);
	setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET && !mapped) {
		struct sockaddr_in *in = (void *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(env.port);
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (void *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(env.port);
		in6->sin6_addr = mapped ? in6addr_any : in6addr_loopback;
		len = sizeof(*in6);
	}
	assert_int_equal(bind(p->lfd, (void *)&ss, len), 0);
	assert_int_equal(listen(p->lfd, 4), 0);
	if (mapped) {
		struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(env.port) };

		in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		p->cfd = socket(AF_INET, SOCK_STREAM, 0);
		assert_int_equal(connect(p->cfd, (void *)&in, sizeof(in)), 0);
	} else {
		p->cfd = socket(ss.ss_family, SOCK_STREAM, 0);
		assert_int_equal(connect(p->cfd, (void *)&ss, len), 0);
	}
	p->sfd = accept(p->lfd, NULL, NULL);
	assert_true(p->sfd >= 0);
	last = *p;
}

static void pair_close(struct pair *p)
{
	last.lfd = -1;
	close(p->cfd);
	close(p->sfd);
	close(p->lfd);
}

/* Read what arrives within ms milliseconds of quiet, up to size - 1 bytes; NUL-terminated. */
static size_t recv_for(int fd, char *buf, size_t size, int ms)
{
	return net__recv_n(fd, buf, size - 1, ms);
}

/* A POST /mcp of body with the extra header lines, in the form every test here sends. */
static size_t request(char *out, size_t size, const char *body, const char *extra)
{
	return net__mcp_post(out, size, "127.0.0.1", extra, body);
}

/* One send of the whole request: each send is one message of the sk_msg hook. */
static void send_once(int fd, const char *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, 0), (ssize_t)len);
}

/* The server end reads req, sent on the client end, unchanged. */
static void expect_passes(struct pair *p, const char *req, size_t n)
{
	char got[8192];

	assert_true(n < sizeof(got));
	send_once(p->cfd, req, n);
	assert_int_equal(recv_for(p->sfd, got, sizeof(got), 300), n);
	assert_memory_equal(got, req, n);
}

static void test_sockets_in_map(void **state)
{
	struct mcpf_sock_key k, next, *prev = NULL;
	int fd, client = 0, server = 0;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	fd = bpf_map__fd(env.skel->maps.tcp_socks);
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		if (k.conn.sport != env.port)
			continue;
		if (k.server_side)
			server++;
		else
			client++;
	}
	assert_int_equal(client, 1);
	assert_int_equal(server, 1);
	pair_close(&p);
}

static void test_allowed_unchanged(void **state)
{
	char body[256], req[1024];
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 1, "echo"), NULL);
	expect_passes(&p, req, n);
	pair_close(&p);
}

/* The server end reads the request with its method made "rpc.denied", same length. */
static void expect_neutralized(const char *got, size_t gn, const char *req, size_t n)
{
	char want[2048];

	assert_int_equal(gn, n);
	memcpy(want, req, n);
	want[n] = 0;
	memcpy(strstr(want, "\"tools/call\"") + 1, "rpc.denied", 10);
	assert_string_equal(got, want);
}

static void test_denied_neutralized_and_reply(void **state)
{
	static const char reply[] =
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
		"\r\n6c\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":"
		"-32601,\"message\":\"Method not found\"}}\r\n\r\n\r\n0\r\n\r\n";
	char body[256], req[1024], got[2048];
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 7, "get-env"), NULL);
	send_once(p.cfd, req, n);
	expect_neutralized(got, recv_for(p.sfd, got, sizeof(got), 300), req, n);
	/* the server's answer for id 7 reads "denied by policy", same length */
	send_once(p.sfd, reply, strlen(reply));
	assert_int_equal(recv_for(p.cfd, got, sizeof(got), 300), strlen(reply));
	assert_non_null(strstr(
		got, "\"id\":7,\"error\":{\"code\":-32601,\"message\":\"denied by policy\"}"));
	/* the connection stays healthy: an allowed call passes untouched */
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 8, "echo"), NULL);
	expect_passes(&p, req, n);
	/* a reply for another id is left alone */
	send_once(p.sfd, reply, strlen(reply));
	recv_for(p.cfd, got, sizeof(got), 300);
	assert_non_null(strstr(got, "Method not found"));
	pair_close(&p);
}

/*
 * The 2026-07-28 revision: Mcp-Method says the body's method, and its server checks the two. A
 * denied call's header is rewritten with its body ("rpc.denied" both), so the server answers
 * -32601 for the id, not -32020 (headers and body disagree); it does so with HTTP 404, which
 * the SDK client takes for a failed POST: the status of that answer becomes 200, and its
 * error reads "denied by policy". A 404 whose body is not the answer to a denied call, and a
 * denial answered on 200, keep their status.
 */
static void test_denied_2026_header_and_status(void **state)
{
	static const char extra[] = "Mcp-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call"
				    "\r\nMcp-Name: get-env\r\nMcp-Param-Region: eu\r\n";
	static const char err[] = "{\"jsonrpc\":\"2.0\",\"id\":%d,\"error\":{\"code\":-32601,"
				  "\"message\":\"Method not found\"}}";
	char body[256], req[1024], want[1024], got[2048], reply[512], e[128];
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 7, "get-env"), extra);
	send_once(p.cfd, req, n);
	assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
	memcpy(want, req, n);
	memcpy(strstr(want, "\"tools/call\"") + 1, "rpc.denied", 10);
	memcpy(strstr(want, "Mcp-Method: tools/call") + 12, "rpc.denied", 10);
	assert_memory_equal(got, want, n);
	snprintf(e, sizeof(e), err, 7);
	n = snprintf(reply, sizeof(reply),
		     "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s",
		     strlen(e), e);
	send_once(p.sfd, reply, n);
	assert_int_equal(recv_for(p.cfd, got, sizeof(got), 300), n);
	got[n] = 0;
	assert_true(!strncmp(got, "HTTP/1.1 200 Not Found\r\n", 24));
	assert_non_null(strstr(
		got, "\"id\":7,\"error\":{\"code\":-32601,\"message\":\"denied by policy\"}"));
	/* allowed, with the same headers naming it: untouched */
	n = request(
		req, sizeof(req), net__tool_call(body, sizeof(body), 8, "echo"),
		"Mcp-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\n"
		"Mcp-Param-Message: hi\r\n");
	expect_passes(&p, req, n);
	/* a 404 for an id that was not denied keeps its status and its text */
	send_once(p.sfd, reply, strlen(reply));
	assert_int_equal(recv_for(p.cfd, got, sizeof(got), 300), strlen(reply));
	assert_memory_equal(got, reply, strlen(reply));
	/* no Mcp-Method (2025): the head is not touched, a 200 answer keeps its status */
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 9, "get-env"),
		    "Mcp-Name: get-env\r\n");
	send_once(p.cfd, req, n);
	assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
	memcpy(want, req, n);
	memcpy(strstr(want, "\"tools/call\"") + 1, "rpc.denied", 10);
	assert_memory_equal(got, want, n);
	snprintf(e, sizeof(e), err, 9);
	n = snprintf(reply, sizeof(reply),
		     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s",
		     strlen(e), e);
	send_once(p.sfd, reply, n);
	assert_int_equal(recv_for(p.cfd, got, sizeof(got), 300), n);
	got[n] = 0;
	assert_true(!strncmp(got, "HTTP/1.1 200 OK\r\n", 17));
	assert_non_null(strstr(got, "\"message\":\"denied by policy\""));
	pair_close(&p);
}

/* Wire the server stage: the bpf_strnstr build (kfunc) or the bpf_loop one. */
static void server_stage(bool kfunc)
{
	struct bpf_program *p = kfunc ? env.skel->progs.handle_sk_msg_server :
					env.skel->progs.handle_sk_msg_server_loop;
	__u32 key = 2; /* TP_SERVER */
	int fd = bpf_program__fd(p);

	assert_true(fd >= 0);
	assert_int_equal(
		bpf_map_update_elem(bpf_map__fd(env.skel->maps.tcp_progs), &key, &fd, BPF_ANY), 0);
}

/* An SSE answer with the error -32601 of the server for id, as server-everything sends it. */
static size_t method_not_found(char *out, size_t size, const char *id)
{
	return snprintf(
		out, size,
		"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"error\":{\"code\":"
		"-32601,\"message\":\"Method not found\"}}\r\n\r\n",
		id);
}

/*
 * The server's answers to denied calls are found and rewritten by both builds of the server
 * stage (the bpf_strnstr kfunc, 6.17+, and the bpf_loop search of older kernels) alike: at every
 * alignment, among decoys (commas, the needle cut short, the answer of an id that was not
 * denied), several in one send, none past the first 16 KB searched.
 */
static void test_reply_search(void **state)
{
	static const char *const decoys[] = {
		",,,,,,,,,,,,,,,,",
		",\"error\":{\"code\":-32601,\"message\":\"Method not foun",
		"\"id\":55,\"error\"",
		",\"error\":{\"code\":-32602,\"message\":\"Method not found\"",
	};
	char body[256], req[1024], got[20000], reply[20000], want[20000], id[16];
	size_t n, rl;
	struct pair p;
	bool kfunc;

	SKIP_IF_NEEDED();
	kfunc = kernel__search_both(env.skel);
	print_message("server stage builds: %s\n", kfunc ? "kfunc and loop" : "loop only");
	for (int v = kfunc ? 0 : 1; v < 2; v++) {
		server_stage(v == 0);
		for (int align = 0; align < 16; align++) {
			pair_open(&p, AF_INET, false);
			/* ids 301, 302, 303 denied on this connection; 55 allowed */
			for (int i = 1; i <= 3; i++) {
				n = request(req, sizeof(req),
					    net__tool_call(body, sizeof(body), 300 + i, "get-env"),
					    NULL);
				send_once(p.cfd, req, n);
				assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
			}
			n = request(req, sizeof(req),
				    net__tool_call(body, sizeof(body), 55, "echo"), NULL);
			expect_passes(&p, req, n);
			rl = snprintf(reply, sizeof(reply), "HTTP/1.1 200 OK\r\n\r\n%.*s", align,
				      "xxxxxxxxxxxxxxxx");
			for (size_t d = 0; d < sizeof(decoys) / sizeof(decoys[0]); d++)
				rl += snprintf(reply + rl, sizeof(reply) - rl, "%s", decoys[d]);
			rl += method_not_found(reply + rl, sizeof(reply) - rl, "302");
			rl += method_not_found(reply + rl, sizeof(reply) - rl, "55");
			rl += method_not_found(reply + rl, sizeof(reply) - rl, "301");
			memcpy(want, reply, rl + 1);
			for (const char *const *d = (const char *const[]){ "302", "301", NULL }; *d;
			     d++) {
				char needle[128], *w;

				snprintf(needle, sizeof(needle),
					 "\"id\":%s,\"error\":{\"code\":-32601,"
					 "\"message\":\"Method not found\"",
					 *d);
				w = strstr(want, needle);
				assert_non_null(w);
				memcpy(w + strlen(needle) - 17, "denied by policy", 16);
			}
			send_once(p.sfd, reply, rl);
			assert_int_equal(net__recv_n(p.cfd, got, rl, 300), rl);
			if (memcmp(got, want, rl))
				fail_msg("%s, align %d: the client read\n%s\nnot\n%s",
					 v ? "loop" : "kfunc", align, got, want);
			/* id 303 is still waiting: its answer past 16 KB of a send is not searched */
			memset(reply, ' ', 16400);
			rl = 16400 + method_not_found(reply + 16400, sizeof(reply) - 16400, "303");
			send_once(p.sfd, reply, rl);
			assert_int_equal(net__recv_n(p.cfd, got, rl, 300), rl);
			assert_memory_equal(got, reply, rl);
			/* at the end of a send of its own, it is found */
			rl = snprintf(id, sizeof(id), "303");
			rl = method_not_found(reply, sizeof(reply), id);
			send_once(p.sfd, reply, rl);
			assert_int_equal(net__recv_n(p.cfd, got, rl, 300), rl);
			assert_non_null(strstr(got, "\"id\":303,\"error\":{\"code\":-32601,"
						    "\"message\":\"denied by policy\"}"));
			pair_close(&p);
		}
	}
	server_stage(false); /* the loop: what kernel__load wires */
}

static void test_globs_and_hide(void **state)
{
	/* '?' is one UTF-8 character, as in policy__glob_match */
	static const char *const denied[] = { "secret_x",	  "secret_", "hidden",
					      "hiddenABC",	  "abc",     "a\xc3\xa9\x63",
					      "a\xe2\x82\xac\x63" };
	static const char *const allowed[] = { "secret", "xsecret_x", "hidde", "ac", "abbc" };
	char body[256], req[1024], got[2048];
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		assert_true(policy__glob_match(i < 2 ? "secret_*" :
					       i < 4 ? "hidden*" :
						       "a?c",
					       denied[i]));
		n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 20 + i, denied[i]),
			    NULL);
		send_once(p.cfd, req, n);
		expect_neutralized(got, recv_for(p.sfd, got, sizeof(got), 300), req, n);
	}
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		assert_false(policy__glob_match("a?c", allowed[i]));
		n = request(req, sizeof(req),
			    net__tool_call(body, sizeof(body), 30 + i, allowed[i]), NULL);
		expect_passes(&p, req, n);
	}
	pair_close(&p);
}

/*
 * tools/list answers, filtered as `run` filters them: the tools the policy hides or denies by name
 * are overwritten with spaces, with one comma, the send keeping its length; ttlMs becomes 0.
 */
enum list_frame { LF_JSON, LF_SSE };

static uint64_t counter_get(uint32_t which);

/* The answer: result.tools = [tools], ttlMs (if ttl), as a JSON body or a chunked SSE event. */
static size_t list_answer(char *out, size_t size, enum list_frame f, const char *tools,
			  const char *ttl, char *body, size_t bsize)
{
	int bn = snprintf(body, bsize,
			  "{\"result\":{\"tools\":[%s]%s%s,\"resultType\":\"complete\"},"
			  "\"jsonrpc\":\"2.0\",\"id\":5}",
			  tools, ttl ? ",\"ttlMs\":" : "", ttl ? ttl : "");
	char ev[16384];
	int en;

	assert_true(bn > 0 && (size_t)bn < bsize);
	if (f == LF_JSON)
		return (size_t)snprintf(out, size,
					"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
					"Content-Length: %d\r\n\r\n%s",
					bn, body);
	/* a progress notification first, as an SSE event of its own */
	en = snprintf(ev, sizeof(ev),
		      "event: message\ndata: {\"method\":\"notifications/progress\",\"params\":"
		      "{\"progressToken\":1,\"progress\":1,\"tools\":[{\"name\":\"get-env\"}]},"
		      "\"jsonrpc\":\"2.0\"}\n\nevent: message\ndata: %s\n\n",
		      body);
	assert_true(en > 0 && (size_t)en < sizeof(ev));
	return (size_t)snprintf(out, size,
				"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
				"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n",
				en, ev);
}

/* The answer's JSON as the client got it: the body, or the last SSE event's data. */
static json_t *list_got(const char *got, enum list_frame f)
{
	const char *b = f == LF_JSON ? strstr(got, "\r\n\r\n") : strstr(got, "data: {\"result\"");
	json_error_t e;

	assert_non_null(b);
	b += f == LF_JSON ? 4 : 6;
	return json_loadb(b, f == LF_JSON ? strlen(b) : (size_t)(strchr(b, '\n') - b), 0, &e);
}

/*
 * One tools/list on a fresh connection, answered with tools: the client reads want (names, in
 * order, each tool as the server wrote it); unfiltered: the answer passes byte for byte.
 */
static void list_case(enum list_frame f, const char *tools, const char *ttl,
		      const char *const *want, size_t nwant, bool unfiltered)
{
	static const char list_req[] = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\"}";
	char req[1024], body[12288], ans[16384], got[16384];
	uint64_t hidden0 = counter_get(MCPF_CNT_LIST_HIDDEN);
	uint64_t unf0 = counter_get(MCPF_CNT_LIST_UNFILTERED);
	json_t *orig, *res, *gtools;
	json_error_t e;
	size_t n, an;
	struct pair p;

	pair_open(&p, AF_INET, false);
	n = request(req, sizeof(req), list_req, NULL);
	expect_passes(&p, req, n);
	an = list_answer(ans, sizeof(ans), f, tools, ttl, body, sizeof(body));
	send_once(p.sfd, ans, an);
	assert_int_equal(recv_for(p.cfd, got, sizeof(got), 300), an);
	orig = json_loads(body, 0, &e);
	assert_non_null(orig);
	if (unfiltered) {
		assert_memory_equal(got, ans, an);
		assert_int_equal(counter_get(MCPF_CNT_LIST_UNFILTERED), unf0 + 1);
		json_decref(orig);
		pair_close(&p);
		return;
	}
	res = list_got(got, f);
	assert_non_null(res);
	gtools = json_object_get(json_object_get(res, "result"), "tools");
	assert_int_equal(json_array_size(gtools), nwant);
	for (size_t i = 0; i < nwant; i++) {
		json_t *t = json_array_get(gtools, i), *o, *ot;
		size_t k;

		assert_string_equal(json_string_value(json_object_get(t, "name")), want[i]);
		/* as the server wrote it */
		ot = NULL;
		json_array_foreach(json_object_get(json_object_get(orig, "result"), "tools"), k, o)
			if (json_equal(json_object_get(o, "name"), json_object_get(t, "name")))
				ot = o;
		assert_true(json_equal(t, ot));
	}
	n = json_array_size(json_object_get(json_object_get(orig, "result"), "tools")) - nwant;
	assert_int_equal(counter_get(MCPF_CNT_LIST_HIDDEN), hidden0 + n);
	assert_int_equal(counter_get(MCPF_CNT_LIST_UNFILTERED), unf0);
	if (ttl)
		assert_int_equal(json_integer_value(
					 json_object_get(json_object_get(res, "result"), "ttlMs")),
				 n ? 0 :
				     json_integer_value(json_object_get(
					     json_object_get(orig, "result"), "ttlMs")));
	if (!n)
		assert_memory_equal(got, ans, an);
	/* the rest of the message is the server's */
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(res, "result"), "resultType")),
		"complete");
	assert_int_equal(json_integer_value(json_object_get(res, "id")), 5);
	/* the answer went by: a later tools array on this connection passes as it is */
	send_once(p.sfd, ans, an);
	assert_int_equal(recv_for(p.cfd, got, sizeof(got), 300), an);
	assert_memory_equal(got, ans, an);
	json_decref(res);
	json_decref(orig);
	pair_close(&p);
}

#define T(name) "{\"name\":\"" name "\",\"inputSchema\":{\"type\":\"object\"}}"
#define NAMES(...)                            \
	(const char *const[]){ __VA_ARGS__ }, \
		sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(const char *)

static void test_list_filtered(void **state)
{
	/* a deeper "name" (a property, an object) is not the tool's; duplicated: the last counts */
	static const char nested[] =
		"{\"inputSchema\":{\"properties\":{\"name\":{\"type\":\"string\"}}},"
		"\"name\":\"get-env\"},{\"name\":\"get-env\",\"title\":\"x\",\"name\":\"echo\"}";

	SKIP_IF_NEEDED();
	for (int f = LF_JSON; f <= LF_SSE; f++) {
		/* first, middle, two in a row, last */
		list_case(f,
			  T("get-env") "," T("echo") "," T("secret_a") "," T("secret_b") "," T(
				  "keep") "," T("hiddenZ"),
			  "60000", NAMES("echo", "keep"), false);
		list_case(f, T("echo") "," T("abc") "," T("keep"), NULL, NAMES("echo", "keep"),
			  false);
		/* every tool out: an empty array */
		list_case(f, T("get-env") "," T("hidden"), "5", (const char *const[]){ NULL }, 0,
			  false);
		/* none out: not a byte changed */
		list_case(f, T("echo") "," T("keep"), "60000", NAMES("echo", "keep"), false);
		list_case(f, nested, NULL, NAMES("echo"), false);
		/* a name with an escape cannot be decided here: out */
		list_case(f, T("ech\\u006f") "," T("keep"), NULL, NAMES("keep"), false);
		/* a key that matters, escaped: the answer passes as it is, counted */
		list_case(f, T("echo") ",{\"n\\u0061me\":\"get-env\"}", NULL, NULL, 0, true);
	}
	/*
	 * strings are skipped 8 bytes at a time up to a quote, a backslash or a control byte: an
	 * escaped quote, a backslash and UTF-8 at every offset of a word, a string that ends the
	 * value's last word
	 */
	{
		static char tools[8192], names[17][16];
		const char *want[17];
		size_t o = 0;

		for (int k = 0; k < 17; k++) {
			snprintf(names[k], sizeof(names[k]), "keep_%d", k);
			want[k] = names[k];
			o += snprintf(
				tools + o, sizeof(tools) - o,
				"%s{\"description\":\"%.*s\\\"\xc3\xa9\\\\%.*s\","
				"\"name\":\"keep_%d\"},{\"name\":\"secret_%d\",\"d\":\"%.*s\"}",
				k ? "," : "", k, "xxxxxxxxxxxxxxxxx", k, "yyyyyyyyyyyyyyyyy", k, k,
				k, "zzzzzzzzzzzzzzzzz");
		}
		for (int f = LF_JSON; f <= LF_SSE; f++)
			list_case(f, tools, NULL, want, 17, false);
	}
	/* not compact: a newline outside strings could be a chunk's or an SSE line's */
	list_case(LF_JSON, T("echo") ",\n" T("get-env"), NULL, NULL, 0, true);
}

/*
 * The names in the tools of the JSON answer body that starts at b (its first '{'), and its
 * ttlMs (-1: none).
 */
static void list_names_are(const char *b, const char *want, json_int_t ttl)
{
	json_error_t e;
	json_t *j = json_loadb(b, strlen(b), JSON_DISABLE_EOF_CHECK, &e), *t;
	char names[256] = "";
	size_t i;

	assert_non_null(j);
	json_array_foreach(json_object_get(json_object_get(j, "result"), "tools"), i, t) {
		strcat(names, i ? "," : "");
		strcat(names, json_string_value(json_object_get(t, "name")));
	}
	assert_string_equal(names, want);
	t = json_object_get(json_object_get(j, "result"), "ttlMs");
	assert_int_equal(t ? json_integer_value(t) : -1, ttl);
	json_decref(j);
}

/*
 * Answers come in order on the request's connection: two lists pipelined, answered in one send,
 * are both filtered; a list after a call is filtered in the send after the call's answer; an
 * answer split over two sends passes as it is, counted.
 */
static void test_list_answers_in_order(void **state)
{
	static const char list_req[] = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\"}";
	static const char tools[] = T("get-env") "," T("echo") "," T("secret_a");
	char req[2048], body[4096], ans[8192], got[8192], call[256];
	uint64_t unf0;
	size_t n, an, a1;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	n = request(req, sizeof(req), list_req, NULL);
	memcpy(req + n, req, n);
	expect_passes(&p, req, 2 * n);
	/* each answer's own ttlMs becomes 0 */
	a1 = list_answer(ans, sizeof(ans), LF_JSON, tools, "60000", body, sizeof(body));
	an = a1 + list_answer(ans + a1, sizeof(ans) - a1, LF_JSON, tools, "7", body, sizeof(body));
	send_once(p.sfd, ans, an);
	assert_int_equal(recv_for(p.cfd, got, sizeof(got), 300), an);
	list_names_are(strstr(got, "\r\n\r\n") + 4, "echo", 0);
	list_names_are(strstr(got + a1, "\r\n\r\n") + 4, "echo", 0);

	/* a call, then a list: the call's answer first */
	unf0 = counter_get(MCPF_CNT_LIST_UNFILTERED);
	n = request(req, sizeof(req), net__tool_call(call, sizeof(call), 6, "echo"), NULL);
	n += request(req + n, sizeof(req) - n, list_req, NULL);
	expect_passes(&p, req, n);
	an = list_answer(ans, sizeof(ans), LF_JSON, "", NULL, body, sizeof(body));
	memcpy(strstr(ans, "\"tools\":[]"), "\"other\":[]", 10); /* a call's answer */
	send_once(p.sfd, ans, an);
	assert_int_equal(recv_for(p.cfd, got, sizeof(got), 300), an);
	an = list_answer(ans, sizeof(ans), LF_JSON, tools, NULL, body, sizeof(body));
	send_once(p.sfd, ans, an);
	assert_int_equal(recv_for(p.cfd, got, sizeof(got), 300), an);
	list_names_are(strstr(got, "\r\n\r\n") + 4, "echo", -1);
	assert_int_equal(counter_get(MCPF_CNT_LIST_UNFILTERED), unf0);

	/* a batch of two lists (2025-03-26), answered as one array: each result filtered */
	{
		static const char breq[] =
			"[{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\"},"
			"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/list\"}]";
		static const char bbody[] =
			"[{\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{\"tools\":[" T("get-env") "," T(
				"echo") "],\"ttlMs\":60000}},{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":"
					"{\"ttlMs\":7,\"tools\":[" T("echo") "," T(
						"secret_a") "]}}]";
		json_t *arr, *e;
		json_error_t je;
		size_t k;

		n = request(req, sizeof(req), breq, NULL);
		expect_passes(&p, req, n);
		an = (size_t)snprintf(ans, sizeof(ans),
				      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				      "Content-Length: %zu\r\n\r\n%s",
				      strlen(bbody), bbody);
		send_once(p.sfd, ans, an);
		assert_int_equal(recv_for(p.cfd, got, sizeof(got), 300), an);
		arr = json_loads(strstr(got, "\r\n\r\n") + 4, 0, &je);
		assert_int_equal(json_array_size(arr), 2);
		json_array_foreach(arr, k, e) {
			char *one = json_dumps(e, 0);

			list_names_are(one, "echo", 0);
			free(one);
		}
		json_decref(arr);
	}

	/* split over two sends: as the server wrote it */
	n = request(req, sizeof(req), list_req, NULL);
	expect_passes(&p, req, n);
	an = list_answer(ans, sizeof(ans), LF_JSON, tools, NULL, body, sizeof(body));
	send_once(p.sfd, ans, an - 20);
	assert_int_equal(recv_for(p.cfd, got, sizeof(got), 300), an - 20);
	send_once(p.sfd, ans + an - 20, 20);
	assert_int_equal(recv_for(p.cfd, got + an - 20, sizeof(got) - an + 20, 300), 20);
	assert_memory_equal(got, ans, an);
	assert_int_equal(counter_get(MCPF_CNT_LIST_UNFILTERED), unf0 + 1);
	pair_close(&p);
}

static void test_split_is_held_until_whole(void **state)
{
	char body[256], req[1024], got[2048];
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 9, "get-env"), NULL);
	send_once(p.cfd, req, 25);				     /* inside the headers */
	send_once(p.cfd, req + 25, n - 40);			     /* inside the body */
	assert_int_equal(recv_for(p.sfd, got, sizeof(got), 200), 0); /* held */
	send_once(p.cfd, req + n - 15, 15);
	expect_neutralized(got, recv_for(p.sfd, got, sizeof(got), 300), req, n);
	pair_close(&p);
}

static void test_pipelined(void **state)
{
	char body[256], req[2048], got[4096], want[4096];
	size_t n1, n2;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	n1 = request(req, sizeof(req), net__tool_call(body, sizeof(body), 10, "echo"), NULL);
	n2 = request(req + n1, sizeof(req) - n1, net__tool_call(body, sizeof(body), 11, "get-env"),
		     NULL);
	send_once(p.cfd, req, n1 + n2);
	assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n1 + n2);
	memcpy(want, req, n1 + n2);
	want[n1 + n2] = 0;
	memcpy(strstr(want + n1, "\"tools/call\"") + 1, "rpc.denied", 10);
	assert_string_equal(got, want);
	pair_close(&p);
}

enum head_want {
	HEAD_PASS,   /* an allowed call: the server reads it unchanged */
	HEAD_DENY,   /* a denied call, framed as we read it: its method is neutralized */
	HEAD_POISON, /* framing we refuse: the request's first byte is made invalid */
	HEAD_BODY,   /* headers that disagree with the body: its first byte is made invalid */
};

struct head_case {
	const char *what;
	const char
		*head; /* header lines after the request line, each ending in \r\n; %zu: length */
	const char *tool;
	enum head_want want;
};

/*
 * What the request head parser must do with heads an agent could send to slip a call past it:
 * every Content-Length the server would read is read the same way, every header that matters is
 * found under any case, anything a server might read differently is refused.
 */
static const struct head_case head_cases[] = {
	{ "names in any case", "hOsT: x\r\ncOnTeNt-LeNgTh: %zu\r\n", "echo", HEAD_PASS },
	{ "tabs and spaces around a value", "Content-Length:\t  %zu \t\r\n", "echo", HEAD_PASS },
	{ "no space after the colon", "Content-Length:%zu\r\n", "get-env", HEAD_DENY },
	{ "obs-text in a value", "X-A: \xc3\xa9t\xc3\xa9\r\nContent-Length: %zu\r\n", "echo",
	  HEAD_PASS },
	{ "tchars in a name", "X_A.b~c!#$%%&'*+^`|: 1\r\nContent-Length: %zu\r\n", "echo",
	  HEAD_PASS },
	{ "a long name that starts like Content-Length",
	  "Content-Length-And-More-Still: 3\r\nContent-Length: %zu\r\n", "get-env", HEAD_DENY },
	{ "a space before the colon", "Content-Length : %zu\r\n", "get-env", HEAD_POISON },
	{ "Content-Length twice", "Content-Length: %zu\r\nContent-length: 2\r\n", "get-env",
	  HEAD_POISON },
	{ "a sign in Content-Length", "Content-Length: +%zu\r\n", "get-env", HEAD_POISON },
	{ "a list in Content-Length", "Content-Length: %zu, %zu\r\n", "get-env", HEAD_POISON },
	{ "an empty Content-Length", "Content-Length:\r\nX-A: %zu\r\n", "get-env", HEAD_POISON },
	{ "digits after a space in Content-Length", "Content-Length: %zu 1\r\n", "get-env",
	  HEAD_POISON },
	{ "obs-fold", "X-A: a\r\n b\r\nContent-Length: %zu\r\n", "get-env", HEAD_POISON },
	{ "a CR without LF in a value", "X-A: a\rb\r\nContent-Length: %zu\r\n", "get-env",
	  HEAD_POISON },
	{ "a bare LF ending a line", "X-A: a\nContent-Length: %zu\r\n", "get-env", HEAD_POISON },
	{ "a NUL in a value", "X-A: a\001b\r\nContent-Length: %zu\r\n", "get-env", HEAD_POISON },
	{ "a DEL in a value", "X-A: a\177b\r\nContent-Length: %zu\r\n", "get-env", HEAD_POISON },
	{ "a DEL in a name", "X-\177A: b\r\nContent-Length: %zu\r\n", "get-env", HEAD_POISON },
	{ "a separator in a name", "X(A): b\r\nContent-Length: %zu\r\n", "get-env", HEAD_POISON },
	{ "a byte past ASCII in a name", "X-\xc3\xa9: b\r\nContent-Length: %zu\r\n", "get-env",
	  HEAD_POISON },
	{ "an empty name", ": b\r\nContent-Length: %zu\r\n", "get-env", HEAD_POISON },
	{ "Transfer-Encoding in any case", "tRANSFER-eNCODING: identity\r\nContent-Length: %zu\r\n",
	  "echo", HEAD_POISON },
	{ "Mcp-Method and Mcp-Name agreeing",
	  "Mcp-Method: tools/call\r\nMcp-Name: get-env  \r\nContent-Length: %zu\r\n", "get-env",
	  HEAD_DENY },
	{ "Mcp-Name naming another tool", "MCP-NAME: echo\r\nContent-Length: %zu\r\n", "get-env",
	  HEAD_BODY },
	{ "Mcp-Name longer than the tool", "Mcp-Name: get-envx\r\nContent-Length: %zu\r\n",
	  "get-env", HEAD_BODY },
	{ "Mcp-Method of another method", "Mcp-Method: tools/list\r\nContent-Length: %zu\r\n",
	  "get-env", HEAD_BODY },
	{ "Mcp-Name twice", "Mcp-Name: get-env\r\nMcp-Name: echo\r\nContent-Length: %zu\r\n",
	  "get-env", HEAD_POISON },
	/* base64, as a 2026-07-28 client sends a name past ASCII: decoded, then compared */
	{ "Mcp-Name in base64",
	  "Mcp-Method: tools/call\r\nMcp-Name: =?base64?Z2V0LWVudg==?=\r\n"
	  "Content-Length: %zu\r\n",
	  "get-env", HEAD_DENY },
	{ "Mcp-Name in base64, allowed", "Mcp-Name: =?base64?ZWNobw==?=\r\nContent-Length: %zu\r\n",
	  "echo", HEAD_PASS },
	{ "Mcp-Name in base64, past ASCII",
	  "Mcp-Name: =?base64?Y2Fmw6k=?=\r\nContent-Length: %zu\r\n", "caf\xc3\xa9", HEAD_PASS },
	{ "Mcp-Name in base64 of another tool",
	  "Mcp-Name: =?base64?ZWNobw==?=\r\nContent-Length: %zu\r\n", "get-env", HEAD_BODY },
	{ "Mcp-Name in base64 of a name with a space before it",
	  "Mcp-Name: =?base64?IGVjaG8=?=\r\nContent-Length: %zu\r\n", "echo", HEAD_BODY },
	{ "Mcp-Name in base64 without its padding",
	  "Mcp-Name: =?base64?ZWNobw?=\r\nContent-Length: %zu\r\n", "echo", HEAD_BODY },
	{ "Mcp-Name in base64 with padding inside",
	  "Mcp-Name: =?base64?ZW==Y2hv?=\r\nContent-Length: %zu\r\n", "echo", HEAD_BODY },
	{ "Mcp-Name in base64 with a byte outside the alphabet",
	  "Mcp-Name: =?base64?ZW.obw==?=\r\nContent-Length: %zu\r\n", "echo", HEAD_BODY },
};

static void head_case_run(const char *what, const char *line, const char *head, const char *tool,
			  enum head_want want, int id)
{
	char body[512], hdrs[1024], req[4096], got[4096], want_buf[4096], *mm;
	size_t bl, n, gn;
	struct pair p;

	net__tool_call(body, sizeof(body), id, tool);
	bl = strlen(body);
	snprintf(hdrs, sizeof(hdrs), head, bl, bl);
	n = snprintf(req, sizeof(req), "%s\r\n%s\r\n%s", line, hdrs, body);
	pair_open(&p, AF_INET, false);
	send_once(p.cfd, req, n);
	gn = net__recv_n(p.sfd, got, n, 300);
	if (gn != n)
		fail_msg("%s: the server read %zu of %zu bytes", what, gn, n);
	memcpy(want_buf, req, n + 1);
	if (want == HEAD_POISON)
		want_buf[0] = 0x01;
	else if (want == HEAD_BODY)
		want_buf[n - bl] = 0x01;
	else if (want == HEAD_DENY) {
		memcpy(strstr(want_buf + n - bl, "\"tools/call\"") + 1, "rpc.denied", 10);
		/* Mcp-Method says what the body now says */
		if ((mm = strstr(want_buf, "\r\nMcp-Method: tools/call")) && mm < want_buf + n - bl)
			memcpy(mm + 14, "rpc.denied", 10);
	}
	if (memcmp(got, want_buf, n))
		fail_msg("%s: the server read\n%.*s\nnot\n%.*s", what, (int)n, got, (int)n,
			 want_buf);
	pair_close(&p);
}

static void test_request_heads(void **state)
{
	char pad[20], head[512], what[64];

	SKIP_IF_NEEDED();
	for (size_t i = 0; i < sizeof(head_cases) / sizeof(head_cases[0]); i++)
		head_case_run(head_cases[i].what, "POST /mcp HTTP/1.1", head_cases[i].head,
			      head_cases[i].tool, head_cases[i].want, 100 + i);
	head_case_run("a lower-case method", "post /mcp HTTP/1.1", "Content-Length: %zu\r\n",
		      "get-env", HEAD_POISON, 90);
	head_case_run("a control byte in the request line", "POST /m\tcp HTTP/1.1",
		      "Content-Length: %zu\r\n", "get-env", HEAD_POISON, 91);
	/* every header that matters at every offset of the 8-byte runs the parser reads */
	for (int k = 0; k < 17; k++) {
		memset(pad, 'p', k);
		pad[k] = 0;
		snprintf(what, sizeof(what), "names after %d bytes of padding", k);
		snprintf(head, sizeof(head),
			 "X-%s: %s\r\nMcp-Method: tools/call\r\nX-%s: 1\r\nMcp-Name: get-env\r\n"
			 "Mcp-Session-Id: %s0123456789abcdef0123456789abcdef\r\n"
			 "Content-Length: %%zu\r\n",
			 pad, pad, pad, pad);
		head_case_run(what, "POST /mcp HTTP/1.1", head, "get-env", HEAD_DENY, 200 + k);
		snprintf(head, sizeof(head),
			 "X-%s: %s\r\nTransfer-Encoding: chunked\r\n"
			 "Content-Length: %%zu\r\n",
			 pad, pad);
		head_case_run(what, "POST /mcp HTTP/1.1", head, "echo", HEAD_POISON, 220 + k);
		snprintf(head, sizeof(head),
			 "X-%s: %s\r\nMcp-Name: echo\r\nContent-Length: %%zu\r\n", pad, pad);
		head_case_run(what, "POST /mcp HTTP/1.1", head, "get-env", HEAD_BODY, 240 + k);
	}
}

/* A head that ends between CR and LF of a line is held, then read whole. */
static void test_head_split_at_crlf(void **state)
{
	char body[256], req[1024], got[2048];
	const char *cr;
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 12, "get-env"), NULL);
	for (cr = req; (cr = strchr(cr, '\r')) && cr < req + n - strlen(body); cr++) {
		pair_open(&p, AF_INET, false);
		send_once(p.cfd, req, cr + 1 - req);
		assert_int_equal(net__recv_n(p.sfd, got, n, 100), 0); /* held */
		send_once(p.cfd, cr + 1, n - (cr + 1 - req));
		expect_neutralized(got, net__recv_n(p.sfd, got, n, 300), req, n);
		pair_close(&p);
	}
}

/* Framing the program cannot follow: the request is made invalid, later sends fail. */
static void test_chunked_refused(void **state)
{
	static const char req[] = "POST /mcp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
				  "\r\n5\r\nhello\r\n0\r\n\r\n";
	char got[1024];
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	send_once(p.cfd, req, strlen(req));
	assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), strlen(req));
	assert_int_equal(got[0], 0x01);
	assert_int_equal(send(p.cfd, "POST", 4, 0), -1);
	assert_int_equal(errno, EACCES);
	pair_close(&p);
}

static void test_unreadable_body_refused(void **state)
{
	static const char *const bodies[] = {
		("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"echo\",\"name\":\"get-env\"}}"),
		"{\"method\":\"tools/call\",",
		"{\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"},\"id\":1} x",
	};
	char body[512], req[2048], got[2048], uri[300], hdr[400];
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		n = request(req, sizeof(req), bodies[i], NULL);
		send_once(p.cfd, req, n);
		assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
		assert_int_equal(got[n - strlen(bodies[i])], 0x01);
	}
	/* Mcp-Name disagreeing with the body */
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 3, "get-env"),
		    "Mcp-Name: echo\r\n");
	send_once(p.cfd, req, n);
	assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
	assert_int_equal(got[n - strlen(body)], 0x01);
	/* a resource's URI as Mcp-Name (not read here) on resources/read: passes */
	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\","
		 "\"params\":{\"uri\":\"demo://x\"}}");
	n = request(req, sizeof(req), body, "Mcp-Method: resources/read\r\nMcp-Name: demo://x\r\n");
	expect_passes(&p, req, n);
	/* a URI longer than any name (2026-07-28 clients send it whole): passes, and the body of a
	 * tools/call with an Mcp-Name that long is refused, not the connection */
	memset(uri, 'u', sizeof(uri) - 1);
	uri[sizeof(uri) - 1] = 0;
	memcpy(uri, "file:///", 8);
	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":15,\"method\":\"resources/read\","
		 "\"params\":{\"uri\":\"%s\"}}",
		 uri);
	snprintf(hdr, sizeof(hdr), "Mcp-Method: resources/read\r\nMcp-Name: %s\r\n", uri);
	n = request(req, sizeof(req), body, hdr);
	expect_passes(&p, req, n);
	snprintf(hdr, sizeof(hdr), "Mcp-Method: tools/call\r\nMcp-Name: %s\r\n", uri);
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 16, "echo"), hdr);
	send_once(p.cfd, req, n);
	assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
	assert_int_equal(got[n - strlen(body)], 0x01);
	/* so is the body under an Mcp-Method longer than any method; the connection goes on */
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 17, "echo"),
		    "Mcp-Method: io.example/an-extension-method-longer-than-48-bytes/x\r\n");
	send_once(p.cfd, req, n);
	assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
	assert_int_equal(got[n - strlen(body)], 0x01);
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 18, "echo"), NULL);
	expect_passes(&p, req, n);
	/* but a tools/call without a readable name and an Mcp-Name is refused */
	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\","
		 "\"params\":{}}");
	n = request(req, sizeof(req), body, "Mcp-Name: echo\r\n");
	send_once(p.cfd, req, n);
	assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
	assert_int_equal(got[n - strlen(body)], 0x01);
	/* agreeing: passes */
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 4, "echo"),
		    "Mcp-Method: tools/call\r\nMcp-Name: echo\r\n");
	expect_passes(&p, req, n);
	pair_close(&p);
}

/* Bodies past the scan buffer are not read: refused from their first byte; long heads too. */
static void test_sizes(void **state)
{
	size_t blen = 70000, n, got = 0;
	char *req, *rx, body[256];
	struct pair p;

	SKIP_IF_NEEDED();
	req = malloc(blen + 8192);
	rx = malloc(blen + 8192);
	assert_non_null(req);
	assert_non_null(rx);
	pair_open(&p, AF_INET, false);
	n = snprintf(req, 8192, "POST /mcp HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", blen);
	net__tool_call(body, sizeof(body), 90, "get-env");
	memset(req + n, ' ', blen);
	memcpy(req + n, body, strlen(body));
	for (size_t off = 0; off < n + blen; off += 16384) {
		size_t k = n + blen - off < 16384 ? n + blen - off : 16384;

		send_once(p.cfd, req + off, k);
	}
	got = recv_for(p.sfd, rx, blen + 8192, 300);
	assert_int_equal(got, n + blen);
	assert_int_equal(rx[n], 0x01);
	assert_memory_equal(rx + n + 1, req + n + 1, blen - 1);
	pair_close(&p);

	/* a head longer than MCPF_TCP_HDR_MAX */
	pair_open(&p, AF_INET, false);
	n = snprintf(req, 64, "POST /mcp HTTP/1.1\r\nX-Long: ");
	memset(req + n, 'a', 9000);
	n += 9000;
	n += snprintf(req + n, 64, "\r\nContent-Length: 0\r\n\r\n");
	send_once(p.cfd, req, n);
	assert_int_equal(recv_for(p.sfd, rx, blen, 300), n);
	assert_int_equal(rx[0], 0x01);
	pair_close(&p);
	free(req);
	free(rx);
}

static void test_budget_and_refill(void **state)
{
	char body[256], req[1024], got[2048];
	uint64_t now = time(NULL);
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	kernel__refill(env.skel, &env.kc, now + 3600, now);
	for (int i = 0; i < 3; i++) {
		n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 40 + i, "limited"),
			    NULL);
		send_once(p.cfd, req, n);
		if (i < 2) {
			assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
			assert_memory_equal(got, req, n);
		} else {
			expect_neutralized(got, recv_for(p.sfd, got, sizeof(got), 300), req, n);
		}
	}
	kernel__refill(env.skel, &env.kc, now + 7200, now + 3600);
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 43, "limited"), NULL);
	expect_passes(&p, req, n);
	pair_close(&p);
}

static const char global_json[] =
	"{\"version\":\"1\",\"default\":\"allow\",\"tools\":{\"glob\":{\"limits\":"
	"[{\"counter\":\"gc\",\"window\":3600,\"max\":3,\"scope\":\"global\"}]}}}";

static int64_t budget_left(const struct kernel_compiled *kc, unsigned slot)
{
	struct mcpf_budget_key k = { .ident = kc->slots[slot].ident };
	struct mcpf_budget b = { .left = -1000 };

	bpf_map_lookup_elem(bpf_map__fd(env.skel->maps.tcp_budgets), &k, &b);
	return b.left;
}

/* Put the suite's policy back in force, in generation 0. */
static void suite_policy_back(void)
{
	char err[POLICY_ERR_LEN];
	struct kernel_compiled kc;
	struct policy *p = policy__parse(policy_json, strlen(policy_json), "test", err);

	assert_non_null(p);
	assert_int_equal(kernel__compile(env.skel, p, 0, &kc), 0);
	assert_int_equal(kernel__activate(env.skel, 0), 0);
	policy__free(p);
}

/*
 * A global budget follows the host-wide table: uses the gateways counted there are taken off
 * what BPF lets through at the sync, never below 0, and given back when the table says so.
 */
static void test_global_sync(void **state)
{
	char err[POLICY_ERR_LEN], path[64], body[256], req[1024], got[2048];
	struct kernel_compiled kc1;
	const struct limit *lim;
	struct limits *l, *gw;
	struct policy *p;
	struct reservation res;
	struct decision d;
	struct pair pp;
	size_t n;

	SKIP_IF_NEEDED();
	snprintf(path, sizeof(path), "/tmp/mcpfence-test-%d-global", getpid());
	unlink(path);
	l = limits__new(NULL, NULL);
	gw = limits__new(NULL, NULL);
	assert_int_equal(limits__share_table(l, path, 0), 0);
	assert_int_equal(limits__share_table(gw, path, 0), 0);
	p = policy__parse(global_json, strlen(global_json), "global", err);
	assert_non_null(p);
	lim = &policy__lookup(p, "glob")->limits[0];
	assert_int_equal(kernel__compile(env.skel, p, 1, &kc1), 0);
	assert_int_equal(kc1.nslots, 1);
	assert_int_equal(budget_left(&kc1, 0), 3);
	/* a gateway took two: after the sync, one call passes in BPF and the next is refused */
	memset(&d, 0, sizeof(d));
	assert_int_equal(limits__reserve(gw, p, policy__lookup(p, "glob"), NULL, &res, &d), 0);
	assert_int_equal(limits__reserve(gw, p, policy__lookup(p, "glob"), NULL, &res, &d), 0);
	assert_int_equal(kernel__sync_global(env.skel, &kc1, l), 0);
	assert_int_equal(budget_left(&kc1, 0), 1);
	assert_int_equal(kernel__activate(env.skel, 1), 0);
	pair_open(&pp, AF_INET, false);
	for (int i = 0; i < 2; i++) {
		n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 60 + i, "glob"),
			    NULL);
		send_once(pp.cfd, req, n);
		if (i < 1) {
			assert_int_equal(recv_for(pp.sfd, got, sizeof(got), 300), n);
			assert_memory_equal(got, req, n);
		} else {
			expect_neutralized(got, recv_for(pp.sfd, got, sizeof(got), 300), req, n);
		}
	}
	/* the kernel's call charged (as attach does for its event), and one more: never below 0 */
	assert_int_equal(limits__charge(l, lim, NULL, 0), 0);
	assert_int_equal(limits__charge(l, lim, NULL, 0), 0);
	assert_int_equal(kernel__sync_global(env.skel, &kc1, l), 0);
	assert_int_equal(budget_left(&kc1, 0), 0);
	/* the gateway gives one back (its call never reached the server): 3 used of 3, still 0 */
	limits__release(gw, &res);
	assert_int_equal(kernel__sync_global(env.skel, &kc1, l), 0);
	assert_int_equal(budget_left(&kc1, 0), 0);
	pair_close(&pp);

	/* back to the suite's policy */
	suite_policy_back();
	policy__free(p);
	limits__free(gw);
	limits__free(l);
	unlink(path);
}

/* tcp_counters[which] of skel, summed over the CPUs. */
static uint64_t counter_of(struct tcp_bpf *skel, uint32_t which)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals = calloc(ncpu, sizeof(*vals)), sum = 0;

	assert_non_null(vals);
	assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(skel->maps.tcp_counters), &which, vals),
			 0);
	for (int c = 0; c < ncpu; c++)
		sum += vals[c];
	free(vals);
	return sum;
}

/* tcp_counters[which] of the suite's attachment. */
static uint64_t counter_get(uint32_t which)
{
	return counter_of(env.skel, which);
}

static int events_ignore(void *ctx, void *data, size_t size)
{
	return 0;
}

/*
 * A call let through on a global budget while the ring is full has no event to charge the
 * host-wide table: BPF counts it in tcp_uncharged and kernel__charge_uncharged charges it, once.
 */
static void test_lost_events_charged(void **state)
{
	static const char big_json[] =
		"{\"version\":\"1\",\"default\":\"allow\",\"tools\":{\"glob\":{\"limits\":"
		"[{\"counter\":\"lc\",\"window\":3600,\"max\":1000,\"scope\":\"global\"}]}}}";
	char err[POLICY_ERR_LEN], path[64], body[256], req[1024], got[2048];
	struct kernel_compiled kc1;
	struct ring_buffer *rb;
	const struct limit *lim;
	struct limits *l;
	struct policy *p;
	struct pair pp;
	uint64_t lost0;
	size_t n;
	int i, one = 1;

	SKIP_IF_NEEDED();
	snprintf(path, sizeof(path), "/tmp/mcpfence-test-%d-lost", getpid());
	unlink(path);
	l = limits__new(NULL, NULL);
	assert_int_equal(limits__share_table(l, path, 0), 0);
	p = policy__parse(big_json, strlen(big_json), "lost", err);
	assert_non_null(p);
	lim = &policy__lookup(p, "glob")->limits[0];
	assert_int_equal(kernel__compile(env.skel, p, 1, &kc1), 0);
	assert_int_equal(kernel__activate(env.skel, 1), 0);
	pair_open(&pp, AF_INET, false);
	setsockopt(pp.cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* no wait for ACKs */
	/* nobody reads the ring here: allowed calls fill it until an event is lost */
	lost0 = counter_get(MCPF_CNT_EVENTS_LOST);
	for (i = 0; i < 20000 && counter_get(MCPF_CNT_EVENTS_LOST) == lost0; i++) {
		n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 100 + i, "echo"),
			    NULL);
		send_once(pp.cfd, req, n);
		assert_int_equal(net__recv_n(pp.sfd, got, n, 300), n);
	}
	assert_true(counter_get(MCPF_CNT_EVENTS_LOST) > lost0);
	for (i = 0; i < 5; i++) {
		n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 30000 + i, "glob"),
			    NULL);
		expect_passes(&pp, req, n);
	}
	pair_close(&pp);
	assert_int_equal(limits__used(l, lim, NULL), 0);
	assert_int_equal(kernel__charge_uncharged(env.skel, &kc1, l), 5);
	assert_int_equal(limits__used(l, lim, NULL), 5);
	assert_int_equal(kernel__charge_uncharged(env.skel, &kc1, l), 0); /* once */
	assert_int_equal(limits__used(l, lim, NULL), 5);

	/* drain the ring, back to the suite's policy */
	rb = ring_buffer__new(bpf_map__fd(env.skel->maps.tcp_events), events_ignore, NULL, NULL);
	assert_non_null(rb);
	ring_buffer__consume(rb);
	ring_buffer__free(rb);
	suite_policy_back();
	policy__free(p);
	limits__free(l);
	unlink(path);
}

static void test_session_budgets(void **state)
{
	static const char *const sessions[] = { "A", "A", "B", "B", "A" };
	char body[256], req[1024], got[2048], hdr[64];
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	for (int i = 0; i < 5; i++) {
		snprintf(hdr, sizeof(hdr), "Mcp-Session-Id: %s\r\n", sessions[i]);
		n = request(req, sizeof(req),
			    net__tool_call(body, sizeof(body), 70 + i, "per_session"), hdr);
		send_once(p.cfd, req, n);
		if (i == 0 || i == 2) {
			assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
			assert_memory_equal(got, req, n);
		} else {
			expect_neutralized(got, recv_for(p.sfd, got, sizeof(got), 300), req, n);
		}
	}
	pair_close(&p);
}

/* One budget per client (uid and executable), across connections and sessions. */
static void test_agent_budget(void **state)
{
	char body[256], req[1024], got[2048];
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	for (int i = 0; i < 2; i++) {
		pair_open(&p, AF_INET, false);
		n = request(req, sizeof(req),
			    net__tool_call(body, sizeof(body), 95 + i, "per_agent"),
			    i ? "Mcp-Session-Id: other\r\n" : NULL);
		send_once(p.cfd, req, n);
		if (!i) {
			assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
			assert_memory_equal(got, req, n);
		} else {
			expect_neutralized(got, recv_for(p.sfd, got, sizeof(got), 300), req, n);
		}
		pair_close(&p);
	}
}

/* A connection on the 4-tuple of a refused one starts clean. */
static void test_tuple_reuse(void **state)
{
	static const char bad[] = "POST /mcp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
	struct sockaddr_in in = { .sin_family = AF_INET }, me;
	struct linger lg = { 1, 0 };
	char body[256], req[1024], got[2048];
	socklen_t ml = sizeof(me);
	int one = 1;
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	pair_open(&p, AF_INET, false);
	send_once(p.cfd, bad, strlen(bad));
	recv_for(p.sfd, got, sizeof(got), 200);
	assert_int_equal(getsockname(p.cfd, (void *)&me, &ml), 0);
	setsockopt(p.cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(p.cfd);
	close(p.sfd);
	p.cfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(p.cfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(p.cfd, (void *)&me, sizeof(me)), 0);
	in.sin_port = htons(env.port);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(p.cfd, (void *)&in, sizeof(in)), 0);
	p.sfd = accept(p.lfd, NULL, NULL);
	last = p;
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 80, "echo"), NULL);
	expect_passes(&p, req, n);
	pair_close(&p);
}

static void test_ipv6_and_mapped(void **state)
{
	char body[256], req[1024], got[2048];
	size_t n;
	struct pair p;

	SKIP_IF_NEEDED();
	for (int mapped = 0; mapped < 2; mapped++) {
		pair_open(&p, AF_INET6, mapped);
		n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 50, "get-env"),
			    NULL);
		send_once(p.cfd, req, n);
		expect_neutralized(got, recv_for(p.sfd, got, sizeof(got), 300), req, n);
		pair_close(&p);
	}
}

/*
 * tcp_stats for (policy, tool, kind): the counts of every CPU copy that holds tool's name, as
 * mcpfence stats adds them; 0 when there are none.
 */
static uint64_t stat_get(uint32_t policy, const char *tool, uint32_t kind)
{
	int fd = bpf_map__fd(env.skel->maps.tcp_stats), ncpu = libbpf_num_possible_cpus();
	struct mcpf_stat_val *vals = calloc(ncpu, sizeof(*vals));
	struct mcpf_stat_key k, cur, *prev = NULL;
	uint64_t sum = 0;

	assert_non_null(vals);
	while (!bpf_map_get_next_key(fd, prev, &k)) {
		cur = k;
		prev = &cur;
		if (cur.kind != kind || cur.policy != policy || bpf_map_lookup_elem(fd, &cur, vals))
			continue;
		for (int c = 0; c < ncpu; c++)
			if (vals[c].count && vals[c].claimed && vals[c].len == strlen(tool) &&
			    !memcmp(vals[c].name, tool, vals[c].len))
				sum += vals[c].count;
	}
	free(vals);
	return sum;
}

/* Send n calls of tool on a fresh connection, each read by the server before the next. */
static void calls_send(const char *tool, int n)
{
	char body[256], req[1024], got[2048];
	struct pair p;
	size_t len;

	pair_open(&p, AF_INET, false);
	for (int i = 0; i < n; i++) {
		len = request(req, sizeof(req), net__tool_call(body, sizeof(body), 60 + i, tool),
			      NULL);
		send_once(p.cfd, req, len);
		assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), len);
	}
	pair_close(&p);
}

/* Send one request with this body on a fresh connection; the server reads it (changed or not). */
static void raw_send(const char *body)
{
	char req[1024], got[2048];
	struct pair p;
	size_t len;

	pair_open(&p, AF_INET, false);
	len = request(req, sizeof(req), body, NULL);
	send_once(p.cfd, req, len);
	assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), len);
	pair_close(&p);
}

static void test_stats_count(void **state)
{
	SKIP_IF_NEEDED();
	assert_true(env.kc.policy_id > 0);
	calls_send("secret_counted", 3);
	assert_int_equal(stat_get(env.kc.policy_id, "secret_counted", MCPF_KIND_RULE), 3);
	assert_int_equal(stat_get(0, "secret_counted", MCPF_KIND_RULE), 0);
}

/*
 * Counts stay with the policy that decided: a second policy put in force (the generation swap
 * of SIGHUP) counts under its own index, the first one's counts stay; the same bytes loaded again
 * keep their index; tcp_policies names both.
 */
static void test_stats_per_policy(void **state)
{
	static const char other_json[] =
		"{\"version\":\"1\",\"default\":\"deny\",\"tools\":{\"echo\":{}}}";
	char err[POLICY_ERR_LEN], path[PATH_MAX];
	struct kernel_compiled kc1, kc0;
	struct policy *other, *again;
	struct mcpf_policy_info info;
	uint32_t first;
	int fd, pfd;
	uint64_t echo0, env0;

	SKIP_IF_NEEDED();
	first = env.kc.policy_id;
	fd = bpf_map__fd(env.skel->maps.tcp_policies);
	/* earlier tests called these tools under the first policy too */
	echo0 = stat_get(first, "echo", MCPF_KIND_ALLOW);
	env0 = stat_get(first, "get-env", MCPF_KIND_RULE);
	calls_send("echo", 2);
	calls_send("get-env", 1);
	assert_int_equal(stat_get(first, "echo", MCPF_KIND_ALLOW), echo0 + 2);
	assert_int_equal(stat_get(first, "get-env", MCPF_KIND_RULE), env0 + 1);

	/* a policy file with an odd name: the stats name keeps only safe bytes */
	snprintf(path, sizeof(path), "/tmp/mcpfence-test-%d-other \"x\".json", getpid());
	pfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(pfd >= 0);
	assert_int_equal(write(pfd, other_json, strlen(other_json)), (ssize_t)strlen(other_json));
	close(pfd);
	other = policy__load(path, err);
	assert_non_null(other);
	assert_int_equal(kernel__compile(env.skel, other, 1, &kc1), 0);
	assert_int_equal(kernel__activate(env.skel, 1), 0);
	assert_int_not_equal(kc1.policy_id, first);
	calls_send("echo", 3);
	calls_send("get-env", 2);
	assert_int_equal(stat_get(first, "echo", MCPF_KIND_ALLOW), echo0 + 2);
	assert_int_equal(stat_get(first, "get-env", MCPF_KIND_RULE), env0 + 1);
	assert_int_equal(stat_get(kc1.policy_id, "echo", MCPF_KIND_ALLOW), 3);
	assert_int_equal(stat_get(kc1.policy_id, "get-env", MCPF_KIND_DEFAULT), 2);
	/* bodies no rule decides (no tool name, cut short) count under the policy in force */
	raw_send("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}");
	raw_send("{\"method\":\"tools/call\",");
	assert_int_equal(stat_get(kc1.policy_id, "", MCPF_KIND_UNPARSED), 2);

	assert_int_equal(bpf_map_lookup_elem(fd, &first, &info), 0);
	assert_string_equal(info.name, "test");
	assert_true(info.digest == env.pol->digest);
	assert_int_equal(bpf_map_lookup_elem(fd, &kc1.policy_id, &info), 0);
	assert_true(strncmp(info.name, "mcpfence-test-", 14) == 0);
	assert_non_null(strstr(info.name, "-other__x_"));
	assert_null(strchr(info.name, '"'));
	assert_string_equal(info.path, path);

	/* back to the first policy's bytes: the same index again, counting on */
	again = policy__parse(policy_json, strlen(policy_json), "test", err);
	assert_non_null(again);
	assert_int_equal(kernel__compile(env.skel, again, 0, &kc0), 0);
	assert_int_equal(kernel__activate(env.skel, 0), 0);
	assert_int_equal(kc0.policy_id, first);
	calls_send("get-env", 1);
	assert_int_equal(stat_get(first, "get-env", MCPF_KIND_RULE), env0 + 2);
	assert_int_equal(stat_get(kc1.policy_id, "get-env", MCPF_KIND_DEFAULT), 2);
	policy__free(again);
	policy__free(other);
	unlink(path);
}

/*
 * tcp_rules and tcp_stats are keyed by a 64-bit hash of the name; the name in the value decides.
 * A collision is made by hand (the seed is random): an entry under echo's hash that holds
 * another name. echo must not get that entry's rule (deny), and its counts must not go to that
 * name.
 */
static void test_name_hash_collisions(void **state)
{
	int ncpu = libbpf_num_possible_cpus();
	char echo[MCPF_NAME_MAX] = "echo";
	struct mcpf_stat_val *vals;
	struct mcpf_active act;
	struct mcpf_gen_cfg gc;
	struct mcpf_rule_key rk = { .len = 4 };
	struct mcpf_rule_entry re = { .rule = { .action = MCPF_ACT_DENY } };
	struct mcpf_stat_key sk = { .kind = MCPF_KIND_ALLOW };
	char body[256], req[1024];
	struct pair p;
	uint64_t empty;
	size_t n;
	__u32 zero = 0, gen;

	SKIP_IF_NEEDED();
	assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(env.skel->maps.tcp_active), &zero, &act),
			 0);
	gen = act.gen & 1;
	assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(env.skel->maps.tcp_gen), &gen, &gc), 0);
	rk.gen = gen;
	rk.hash = mcpf_name_hash(echo, 4, env.skel->rodata->cfg_name_seed);
	memcpy(re.name, "evil", 4);
	assert_int_equal(
		bpf_map_update_elem(bpf_map__fd(env.skel->maps.tcp_rules), &rk, &re, BPF_NOEXIST),
		0);
	sk.hash = rk.hash;
	sk.policy = gc.policy;
	vals = calloc(ncpu, sizeof(*vals));
	assert_non_null(vals);
	for (int c = 0; c < ncpu; c++) {
		vals[c].claimed = 1;
		vals[c].len = 4;
		memcpy(vals[c].name, "evil", 4);
	}
	assert_int_equal(
		bpf_map_update_elem(bpf_map__fd(env.skel->maps.tcp_stats), &sk, vals, BPF_ANY), 0);
	free(vals);
	empty = stat_get(gc.policy, "", MCPF_KIND_ALLOW);

	pair_open(&p, AF_INET, false);
	for (int i = 0; i < 2; i++) {
		n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 90 + i, "echo"),
			    NULL);
		expect_passes(&p, req, n); /* not neutralized: the deny entry is not echo's */
	}
	pair_close(&p);
	assert_int_equal(stat_get(gc.policy, "echo", MCPF_KIND_ALLOW), 0);
	assert_int_equal(stat_get(gc.policy, "evil", MCPF_KIND_ALLOW), 0);
	assert_int_equal(stat_get(gc.policy, "", MCPF_KIND_ALLOW), empty + 2);
	assert_int_equal(bpf_map_delete_elem(bpf_map__fd(env.skel->maps.tcp_rules), &rk), 0);
	assert_int_equal(bpf_map_delete_elem(bpf_map__fd(env.skel->maps.tcp_stats), &sk), 0);
}

/*
 * The slots of tcp_work_map held on every CPU, counted; with hold >= 0, then slots [0, hold) of
 * every CPU are held, as runs preempted in the middle would hold them (the owner a task other
 * than this one), and the others freed.
 */
static unsigned slots(int hold)
{
	int fd = bpf_map__fd(env.skel->maps.tcp_work_map), ncpu = libbpf_num_possible_cpus();
	size_t vs = (bpf_map__value_size(env.skel->maps.tcp_work_map) + 7) & ~(size_t)7;
	char *v = calloc(ncpu, vs);
	unsigned held = 0;

	assert_non_null(v);
	for (__u32 s = 0; s < MCPF_TCP_SLOTS; s++) {
		assert_int_equal(bpf_map_lookup_elem(fd, &s, v), 0);
		for (int c = 0; c < ncpu; c++) {
			struct mcpf_slot *slot = (struct mcpf_slot *)(v + c * vs);

			held += slot->owner != 0;
			if (hold >= 0)
				slot->owner = s < (unsigned)hold ? 0xdead0000u + s : 0;
		}
		if (hold >= 0)
			assert_int_equal(bpf_map_update_elem(fd, &s, v, BPF_ANY), 0);
	}
	free(v);
	return held;
}

/*
 * A run preempted on a CPU holds its slot; another task's run on that CPU takes a free one and
 * decides as usual. With none free, the request is refused unread (never decided on another
 * run's bytes). Every run gives its slot back: after all the traffic of the tests before (split,
 * pipelined, refused, neutralized, large), none is left held. This holds the slots by hand: this
 * machine's kernel may not preempt (preempt=none), which a test cannot change.
 */
static void test_slots(void **state)
{
	char body[256], req[1024], got[2048];
	uint64_t busy;
	struct pair p;
	size_t n;

	SKIP_IF_NEEDED();
	assert_int_equal(slots(-1), 0);
	slots(MCPF_TCP_SLOTS - 1);
	pair_open(&p, AF_INET, false);
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 70, "get-env"), NULL);
	send_once(p.cfd, req, n);
	expect_neutralized(got, recv_for(p.sfd, got, sizeof(got), 300), req, n);
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 71, "echo"), NULL);
	expect_passes(&p, req, n);
	pair_close(&p);

	slots(MCPF_TCP_SLOTS);
	busy = counter_get(MCPF_CNT_BUSY);
	pair_open(&p, AF_INET, false);
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 72, "echo"), NULL);
	send_once(p.cfd, req, n);
	assert_int_equal(recv_for(p.sfd, got, sizeof(got), 300), n);
	assert_int_equal((unsigned char)got[0], 0x01); /* made invalid from its first byte */
	assert_memory_equal(got + 1, req + 1, n - 1);
	assert_true(counter_get(MCPF_CNT_BUSY) >= busy + 1);
	pair_close(&p);

	slots(0);
	pair_open(&p, AF_INET, false);
	n = request(req, sizeof(req), net__tool_call(body, sizeof(body), 73, "echo"), NULL);
	expect_passes(&p, req, n);
	pair_close(&p);
	assert_int_equal(slots(-1), 0);
}

/* ---- globs: the gateway's matcher against BPF's, and their caps ----------------------------- */

static uint64_t rng;

/* xorshift64*: a sequence a seed reproduces (MCPF_GLOB_SEED) */
static uint32_t rnd(uint32_t n)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dULL) >> 32) % n;
}

/* Bytes a pattern or a name is made of: one, two and three byte UTF-8 characters. */
static const char *const glob_pieces[] = { "a", "b", "\xc3\xa9", "\xe2\x82\xac", "*", "?" };

static void rand_pattern(char *out, size_t max)
{
	size_t n = 0, want = 1 + rnd(rnd(4) ? 10 : MCPF_TCP_GLOB_MAX);

	out[0] = 0;
	while (n < want) {
		const char *piece = glob_pieces[rnd(6)];

		if (n + strlen(piece) >= max)
			break;
		strcpy(out + n, piece);
		n += strlen(piece);
	}
	if (!n)
		strcpy(out, "*");
}

/* A name: random, or (half the time) one the pattern matches, so that both outcomes come up. */
static void rand_name(const char *pat, char *out, size_t max)
{
	size_t n = 0;

	out[0] = 0;
	if (rnd(2)) {
		for (const char *c = pat; *c; c++) {
			int reps = *c == '*' ? (int)rnd(4) : *c == '?' ? 1 : 0;
			const char *piece;

			if (*c != '*' && *c != '?') {
				if (n + 1 >= max)
					break;
				out[n++] = *c;
				continue;
			}
			for (int r = 0; r < reps; r++) {
				piece = glob_pieces[rnd(4)];
				if (n + strlen(piece) >= max)
					break;
				strcpy(out + n, piece);
				n += strlen(piece);
			}
		}
		out[n] = 0;
	} else {
		size_t want = 1 + rnd(rnd(4) ? 12 : MCPF_NAME_MAX);

		while (n < want) {
			const char *piece = glob_pieces[rnd(4)];

			if (n + strlen(piece) >= max)
				break;
			strcpy(out + n, piece);
			n += strlen(piece);
		}
		out[n] = 0;
	}
	if (!out[0])
		strcpy(out, "a");
}

/* Send a call of tool on p: true when the server read it neutralized, false when unchanged. */
static bool call_denied(struct pair *p, int id, const char *tool)
{
	char body[512], req[1024], got[2048];
	size_t n = request(req, sizeof(req), net__tool_call(body, sizeof(body), id, tool), NULL);

	send_once(p->cfd, req, n);
	if (net__recv_n(p->sfd, got, n, 1000) != n)
		fail_msg("%s: the server did not read the call whole", tool);
	if (!memcmp(got, req, n))
		return false;
	memcpy(strstr(req, "\"tools/call\"") + 1, "rpc.denied", 10);
	if (memcmp(got, req, n))
		fail_msg("%s: the server read neither the call nor its neutralized form", tool);
	return true;
}

/*
 * BPF's glob matcher against the gateway's (policy__glob_match, policy__lookup) on random
 * patterns and names (UTF-8, '?' one character): as a deny rule over a default of allow, and as
 * a hide entry, every name is denied in BPF exactly when the gateway denies it. With the
 * longest pattern and name the caps allow, a match does not run out of steps.
 * MCPF_GLOB_SEED reproduces a run, MCPF_GLOB_PATTERNS sets its size.
 */
static void test_glob_differential(void **state)
{
	const char *seed = getenv("MCPF_GLOB_SEED"), *np = getenv("MCPF_GLOB_PATTERNS");
	int npat = np ? atoi(np) : 150, names = 12, cases = 0, denied = 0, id = 5000;
	char pat[MCPF_TCP_GLOB_MAX], name[MCPF_NAME_MAX], json[512], err[POLICY_ERR_LEN];
	struct kernel_compiled kc;
	struct pair p;

	SKIP_IF_NEEDED();
	rng = seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL) * 2654435761u + 1;
	print_message("glob differential: seed %#llx (MCPF_GLOB_SEED), %d patterns\n",
		      (unsigned long long)rng, npat);
	pair_open(&p, AF_INET, false);
	for (int i = 0; i < npat + 1; i++) {
		bool hide = i % 3 == 2;
		struct policy *pol;

		if (i < npat) {
			rand_pattern(pat, sizeof(pat));
		} else { /* the caps at once: the longest pattern and name, the most steps */
			memset(pat, 'a', sizeof(pat) - 1);
			pat[0] = '*';
			pat[sizeof(pat) - 1] = 0;
			hide = false;
		}
		snprintf(json, sizeof(json),
			 hide ? "{\"version\":\"1\",\"default\":\"allow\",\"hide\":[\"%s\"]}" :
				"{\"version\":\"1\",\"default\":\"allow\",\"tools\":{\"%s\":"
				"{\"action\":\"deny\"}}}",
			 pat);
		pol = policy__parse(json, strlen(json), "glob", err);
		if (!pol)
			fail_msg("pattern %s: %s", pat, err);
		assert_int_equal(kernel__compile(env.skel, pol, 1, &kc), 0);
		assert_int_equal(kernel__activate(env.skel, 1), 0);
		for (int k = 0; k < names; k++) {
			bool want, got;

			if (i < npat) {
				rand_name(pat, name, sizeof(name));
			} else {
				memset(name, 'a', sizeof(name) - 1);
				name[sizeof(name) - 1] = 0;
				name[k] = 'b'; /* a mismatch, later and later */
			}
			if (hide) {
				want = policy__glob_match(pat, name);
			} else {
				const struct rule *r = policy__lookup(pol, name);

				want = r && r->action == ACTION_DENY;
			}
			got = call_denied(&p, id++, name);
			if (got != want)
				fail_msg("%s \"%s\", name \"%s\": the gateway %s it, BPF %s it",
					 hide ? "hide" : "rule", pat, name,
					 want ? "denies" : "allows", got ? "denies" : "allows");
			cases++;
			denied += want;
		}
		policy__free(pol);
	}
	pair_close(&p);
	print_message("glob differential: %d cases agree (%d denied)\n", cases, denied);
	assert_true(denied > cases / 10 && denied < cases - cases / 10);
	suite_policy_back();
}

/*
 * A match that runs out of steps is denied, whatever the rule says: BPF cannot tell whether it
 * matched. The caps keep real matches under the step budget (test_glob_differential), so a
 * second load of the programs, with a budget of 64 steps, on a port of its own, reaches it:
 * an allow rule "x*y" over a default of allow, and a name of 100 bytes that does not match, is
 * allowed with the real budget and denied (verdict invalid) with 64 steps.
 */
static void test_glob_out_of_steps(void **state)
{
	static const char json[] =
		"{\"version\":\"1\",\"default\":\"allow\",\"tools\":{\"x*y\":{}}}";
	struct kernel_load_opts o = { .search = KERNEL_SEARCH_AUTO, .glob_steps = 64 };
	char err[POLICY_ERR_LEN], name[128];
	uint16_t port = env.port;
	struct kernel_compiled kc;
	struct bpf_link *link = NULL;
	struct tcp_bpf *skel;
	struct policy *pol;
	struct pair p;
	int cg_fd;

	SKIP_IF_NEEDED();
	memset(name, 'a', 100);
	name[0] = 'x';
	strcpy(name + 100, "z");
	pol = policy__parse(json, strlen(json), "steps", err);
	assert_non_null(pol);
	/* the real budget: no match, default allow */
	assert_int_equal(kernel__compile(env.skel, pol, 1, &kc), 0);
	assert_int_equal(kernel__activate(env.skel, 1), 0);
	pair_open(&p, AF_INET, false);
	assert_false(call_denied(&p, 1, name));
	assert_false(call_denied(&p, 2, "xaay"));
	pair_close(&p);
	suite_policy_back();

	skel = kernel__load_opts(&o);
	assert_non_null(skel);
	env.port = port + 2;
	assert_int_equal(kernel__compile(skel, pol, 0, &kc), 0);
	assert_int_equal(kernel__activate(skel, 0), 0);
	assert_int_equal(kernel__watch_port(skel, env.port, 0), 0);
	assert_int_equal(bpf_prog_attach(bpf_program__fd(skel->progs.handle_sk_msg),
					 bpf_map__fd(skel->maps.tcp_socks), BPF_SK_MSG_VERDICT, 0),
			 0);
	cg_fd = open(env.cgroup, O_RDONLY | O_DIRECTORY);
	link = bpf_program__attach_cgroup(skel->progs.handle_sock_ops, cg_fd);
	close(cg_fd);
	if (link) {
		pair_open(&p, AF_INET, false);
		if (!call_denied(&p, 3, name))
			link = (bpf_link__destroy(link), NULL);
		else if (call_denied(&p, 4, "xaay"))
			link = (bpf_link__destroy(link), NULL);
		pair_close(&p);
	}
	env.port = port;
	tcp_bpf__destroy(skel);
	policy__free(pol);
	if (!link)
		fail_msg("with 64 steps: the long name was not denied, or a short match was");
	bpf_link__destroy(link);
}

/*
 * What the kernel plane can hold, and says it cannot: glob patterns of 63 bytes (64 refused),
 * 64 globs and hide entries (65 refused), 8 limits to a rule (9 refused). Compiled into the
 * generation not in force.
 */
static void test_glob_caps(void **state)
{
	char *json = malloc(65536), pat[80], err[POLICY_ERR_LEN];
	struct kernel_compiled kc;
	struct policy *pol;
	size_t n;

	SKIP_IF_NEEDED();
	assert_non_null(json);
	for (int len = 63; len <= 64; len++) {
		memset(pat, 'a', len);
		pat[len - 1] = '*';
		pat[len] = 0;
		snprintf(json, 65536,
			 "{\"version\":\"1\",\"default\":\"deny\",\"tools\":{\"%s\":{}}}", pat);
		pol = policy__parse(json, strlen(json), "cap", err);
		assert_non_null(pol);
		assert_int_equal(kernel__compile(env.skel, pol, 1, &kc), len == 63 ? 0 : -E2BIG);
		policy__free(pol);
	}
	for (int globs = 64; globs <= 65; globs++) {
		n = snprintf(json, 65536, "{\"version\":\"1\",\"default\":\"deny\",\"hide\":[");
		for (int i = 0; i < 4; i++)
			n += snprintf(json + n, 65536 - n, "%s\"h%d*\"", i ? "," : "", i);
		n += snprintf(json + n, 65536 - n, "],\"tools\":{");
		for (int i = 0; i < globs - 4; i++)
			n += snprintf(json + n, 65536 - n, "%s\"t%d*\":{}", i ? "," : "", i);
		snprintf(json + n, 65536 - n, "}}");
		pol = policy__parse(json, strlen(json), "cap", err);
		assert_non_null(pol);
		assert_int_equal(kernel__compile(env.skel, pol, 1, &kc), globs == 64 ? 0 : -E2BIG);
		policy__free(pol);
	}
	for (int lims = 8; lims <= 9; lims++) {
		n = snprintf(
			json, 65536,
			"{\"version\":\"1\",\"default\":\"deny\",\"tools\":{\"t\":{\"limits\":[");
		for (int i = 0; i < lims; i++)
			n += snprintf(json + n, 65536 - n,
				      "%s{\"counter\":\"c%d\",\"window\":60,\"max\":5}",
				      i ? "," : "", i);
		snprintf(json + n, 65536 - n, "]}}}");
		pol = policy__parse(json, strlen(json), "cap", err);
		assert_non_null(pol);
		assert_int_equal(kernel__compile(env.skel, pol, 1, &kc), lims == 8 ? 0 : -E2BIG);
		policy__free(pol);
	}
	free(json);
}

/*
 * An attachment names up to 255 distinct policies (tcp_policies): each new one (name and
 * digest) gets the next index; once all are taken, a new version of a name counts under that
 * name's latest index, a new name under the last one (255), and calls it decides count there.
 */
static void test_policies_past_255(void **state)
{
	int fd, pfd, nfiles = 0;
	char path[300], json[256], err[POLICY_ERR_LEN];
	struct mcpf_policy_info info;
	struct kernel_compiled kc;
	struct policy *pol;
	__u32 used = 0, k;

	SKIP_IF_NEEDED();
	fd = bpf_map__fd(env.skel->maps.tcp_policies);
	for (k = 1; k < MCPF_TCP_MAX_POLICIES; k++)
		if (!bpf_map_lookup_elem(fd, &k, &info) && info.name[0])
			used = k;
	print_message("%u policies named before\n", used);
	for (__u32 want = used + 1; want <= MCPF_TCP_MAX_POLICIES + 1; want++) {
		snprintf(path, sizeof(path), "/tmp/mcpfence-test-%d-p%u.json", getpid(), want);
		snprintf(json, sizeof(json),
			 "{\"version\":\"1\",\"default\":\"allow\",\"tools\":{\"t%u\":{}}}", want);
		pfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(pfd >= 0);
		assert_int_equal(write(pfd, json, strlen(json)), (ssize_t)strlen(json));
		close(pfd);
		nfiles++;
		pol = policy__load(path, err);
		assert_non_null(pol);
		assert_int_equal(kernel__compile(env.skel, pol, 1, &kc), 0);
		/* indexes up to 255 in turn; then a new name shares the last one */
		assert_int_equal(kc.policy_id,
				 want < MCPF_TCP_MAX_POLICIES ? want : MCPF_TCP_MAX_POLICIES - 1);
		if (want == MCPF_TCP_MAX_POLICIES + 1) {
			/* calls it decides count under 255 */
			assert_int_equal(kernel__activate(env.skel, 1), 0);
			calls_send("t257", 2);
			assert_int_equal(
				stat_get(MCPF_TCP_MAX_POLICIES - 1, "t257", MCPF_KIND_ALLOW), 2);
		}
		policy__free(pol);
	}
	/* a new version of a name already there: that name's index */
	snprintf(path, sizeof(path), "/tmp/mcpfence-test-%d-p%u.json", getpid(), used + 1);
	snprintf(json, sizeof(json), "{\"version\":\"1\",\"default\":\"deny\"}");
	pfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(pfd >= 0);
	assert_int_equal(write(pfd, json, strlen(json)), (ssize_t)strlen(json));
	close(pfd);
	pol = policy__load(path, err);
	assert_non_null(pol);
	assert_int_equal(kernel__compile(env.skel, pol, 1, &kc), 0);
	assert_int_equal(kc.policy_id, used + 1);
	policy__free(pol);
	for (__u32 want = used + 1; want <= MCPF_TCP_MAX_POLICIES + 1; want++) {
		snprintf(path, sizeof(path), "/tmp/mcpfence-test-%d-p%u.json", getpid(), want);
		unlink(path);
	}
	suite_policy_back();
}

/* A connected pair on port, listener lfd; 0, or -1 when the server end is not accepted. */
static int pair_on(int lfd, uint16_t port, int *cfd, int *sfd)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*cfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*cfd >= 0);
	assert_int_equal(connect(*cfd, (void *)&in, sizeof(in)), 0);
	*sfd = poll(&pfd, 1, 300) == 1 ? accept(lfd, NULL, NULL) : -1;
	return *sfd >= 0 ? 0 : -1;
}

/* tcp_socks entries whose server port is port */
static int socks_on(struct tcp_bpf *skel, uint16_t port)
{
	struct mcpf_sock_key k, next, *prev = NULL;
	int fd = bpf_map__fd(skel->maps.tcp_socks), n = 0;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		n += k.conn.sport == port;
	}
	return n;
}

/* The send of fd fails (SO_ERROR) within ms; the error, or 0. */
static int send_error_within(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int err = 0;
	socklen_t len = sizeof(err);

	for (int waited = 0; waited < ms; waited += 100) {
		poll(&pfd, 1, 100);
		if (pfd.revents & (POLLERR | POLLHUP))
			break;
	}
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
	return err;
}

/*
 * An agent that holds enough connections open fills tcp_socks (65,536 entries; 4 here): the next
 * connection of a watched port found no room and went unwatched, its calls unread. Now such a
 * socket is marked and its packets dropped (fail closed), its sends end in ETIMEDOUT, attach's
 * adoption of a connection opened before it does the same, and once room is made the next
 * connection is watched again.
 */
static void test_full_socks_fail_closed(void **state)
{
	struct kernel_load_opts lo = { .socks_max = 4 };
	struct sockaddr_in in = { .sin_family = AF_INET };
	int lfd, cfd[4], sfd[4], one = 1, cg_fd, before_c, before_s, n;
	uint16_t port = env.port + 1; /* env.skel does not watch it */
	struct bpf_link *ops, *egress;
	struct kernel_compiled kc = {};
	char body[256], req[1024], got[2048];
	struct tcp_bpf *skel;
	size_t len;

	SKIP_IF_NEEDED();
	skel = kernel__load_opts(&lo);
	assert_non_null(skel);
	assert_int_equal(kernel__compile(skel, env.pol, 0, &kc), 0);
	assert_int_equal(kernel__activate(skel, 0), 0);
	assert_int_equal(kernel__watch_port(skel, port, 0), 0);
	assert_int_equal(bpf_prog_attach(bpf_program__fd(skel->progs.handle_sk_msg),
					 bpf_map__fd(skel->maps.tcp_socks), BPF_SK_MSG_VERDICT, 0),
			 0);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	in.sin_port = htons(port);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (void *)&in, sizeof(in)), 0);
	assert_int_equal(listen(lfd, 16), 0);
	/* opened before the attachment: adopted below, when the map is already full */
	assert_int_equal(pair_on(lfd, port, &before_c, &before_s), 0);
	cg_fd = open(env.cgroup, O_RDONLY | O_DIRECTORY);
	assert_true(cg_fd >= 0);
	egress = bpf_program__attach_cgroup(skel->progs.handle_egress, cg_fd);
	assert_non_null(egress);
	ops = bpf_program__attach_cgroup(skel->progs.handle_sock_ops, cg_fd);
	assert_non_null(ops);
	close(cg_fd);

	/* two connections held open fill the map (both ends of each) */
	for (int i = 0; i < 2; i++)
		assert_int_equal(pair_on(lfd, port, &cfd[i], &sfd[i]), 0);
	assert_int_equal(socks_on(skel, port), 4);
	/*
	 * the connection from before: tcp_socks refuses it, so it is marked instead, by userspace
	 * (none adopted; the four sockets sock_ops put in the map are found watched, not marked)
	 */
	assert_int_equal(kernel__adopt_existing(bpf_map__fd(skel->maps.tcp_socks),
						bpf_map__fd(skel->maps.tcp_unwatched),
						bpf_map__fd(skel->maps.data_unwatched), &port, 1),
			 0);
	len = request(req, sizeof(req), net__tool_call(body, sizeof(body), 1, "get-env"), NULL);
	send_once(before_c, req, len);
	assert_int_equal(recv_for(before_s, got, sizeof(got), 500), 0);
	assert_int_equal(send_error_within(before_c, 10000), ETIMEDOUT);

	/* the third: its client end finds no room; its packets (the handshake's ACK too) dropped */
	pair_on(lfd, port, &cfd[2], &sfd[2]);
	assert_int_equal(socks_on(skel, port), 4);
	send_once(cfd[2], req, len);
	if (sfd[2] >= 0)
		assert_int_equal(recv_for(sfd[2], got, sizeof(got), 500), 0);
	assert_true(counter_of(skel, MCPF_CNT_UNWATCHED) >= 1);
	/* nothing reached the server, and the client's send fails instead of hanging */
	assert_int_equal(send_error_within(cfd[2], 10000), ETIMEDOUT);

	/* room made: the next connection is watched, its denied call neutralized, its allowed one
	 * passes under the egress program */
	close(cfd[0]);
	close(sfd[0]);
	for (int i = 0; i < 100 && socks_on(skel, port) > 2; i++)
		usleep(10000);
	assert_int_equal(pair_on(lfd, port, &cfd[3], &sfd[3]), 0);
	assert_int_equal(socks_on(skel, port), 4);
	send_once(cfd[3], req, len);
	n = (int)recv_for(sfd[3], got, sizeof(got), 300);
	expect_neutralized(got, n, req, len);
	len = request(req, sizeof(req), net__tool_call(body, sizeof(body), 2, "echo"), NULL);
	send_once(cfd[3], req, len);
	assert_int_equal(recv_for(sfd[3], got, sizeof(got), 300), len);
	assert_memory_equal(got, req, len);

	for (int i = 1; i < 4; i++) {
		close(cfd[i]);
		if (sfd[i] >= 0)
			close(sfd[i]);
	}
	close(before_c);
	close(before_s);
	close(lfd);
	bpf_link__destroy(ops);
	bpf_link__destroy(egress);
	tcp_bpf__destroy(skel);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sockets_in_map),
		cmocka_unit_test(test_allowed_unchanged),
		cmocka_unit_test(test_denied_neutralized_and_reply),
		cmocka_unit_test(test_denied_2026_header_and_status),
		cmocka_unit_test(test_reply_search),
		cmocka_unit_test(test_globs_and_hide),
		cmocka_unit_test(test_list_filtered),
		cmocka_unit_test(test_list_answers_in_order),
		cmocka_unit_test(test_split_is_held_until_whole),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_request_heads),
		cmocka_unit_test(test_head_split_at_crlf),
		cmocka_unit_test(test_chunked_refused),
		cmocka_unit_test(test_unreadable_body_refused),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_budget_and_refill),
		cmocka_unit_test(test_global_sync),
		cmocka_unit_test(test_lost_events_charged),
		cmocka_unit_test(test_session_budgets),
		cmocka_unit_test(test_agent_budget),
		cmocka_unit_test(test_tuple_reuse),
		cmocka_unit_test(test_ipv6_and_mapped),
		cmocka_unit_test(test_full_socks_fail_closed),
		cmocka_unit_test(test_stats_count),
		cmocka_unit_test(test_stats_per_policy),
		cmocka_unit_test(test_name_hash_collisions),
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_glob_differential),
		cmocka_unit_test(test_glob_out_of_steps),
		cmocka_unit_test(test_glob_caps),
		cmocka_unit_test(test_policies_past_255), /* last: it fills tcp_policies */
	};

	return cmocka_run_group_tests_name("bpf/tcp.bpf.c on loopback", tests, setup, teardown);
}
