// SPDX-License-Identifier: Apache-2.0
/*
 * Budgets kept in Redis (a policy's "state"): against a real redis-server (Debian's), started
 * here on a free port of 127.0.0.1. Two limits objects stand for two processes (or hosts) that
 * name the same Redis: exactly max calls between them, all or none with the budgets kept
 * elsewhere, give-back, the kernel plane's charge and left, keys under the prefix with their
 * expiry, a Redis that is down (fail closed, or open when the policy says so, said in the
 * decision), one that comes back, one that forgot the scripts, AUTH. The URL's reading too.
 * And approvals of input_required shared through the same Redis (mrtr__share).
 * Skips, saying why, where redis-server is not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include "policy.h"
#include "decide.h"
#include "limits.h"
#include "mrtr.h"
#include "redis_store.h"

#define REDIS_BIN "/usr/bin/redis-server"
#define PASSWORD "pw-7f3a9c"

struct fake_clock {
	uint64_t now;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

/* A minute that starts on a multiple of 60 (and of 3600). */
#define T0 (86400ull * 20000)

static int port;
static pid_t server = -1;

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	p = ntohs(a.sin_port);
	close(fd);
	return p;
}

/* A connection of the test's own, to look at what the stores wrote; NULL when none answers. */
static redisContext *peek(const char *password)
{
	struct timeval tv = { 0, 200000 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r;

	if (!c || c->err) {
		if (c)
			redisFree(c);
		return NULL;
	}
	if (password) {
		r = redisCommand(c, "AUTH %s", password);
		if (r)
			freeReplyObject(r);
	}
	return c;
}

static void start_server(const char *password)
{
	char ports[16];

	snprintf(ports, sizeof(ports), "%d", port);
	server = fork();
	assert_true(server >= 0);
	if (!server) {
		const char *argv[] = {
			REDIS_BIN,   "--port",	   ports,     "--bind",
			"127.0.0.1", "--save",	   "",	      "--appendonly",
			"no",	     "--loglevel", "warning", password ? "--requirepass" : NULL,
			password,    NULL
		};
		int null = open("/dev/null", 1);

		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execv(REDIS_BIN, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		redisContext *c = peek(password);
		redisReply *r = c ? redisCommand(c, "PING") : NULL;
		int ok = r && r->type == REDIS_REPLY_STATUS;

		if (r)
			freeReplyObject(r);
		if (c)
			redisFree(c);
		if (ok)
			return;
		usleep(50000);
	}
	fail_msg("redis-server on port %d did not answer in 5 s", port);
}

static void stop_server(void)
{
	if (server > 0) {
		kill(server, SIGKILL);
		waitpid(server, NULL, 0);
	}
	server = -1;
}

static int group_setup(void **state)
{
	if (access(REDIS_BIN, X_OK))
		return 0;
	port = free_port();
	start_server(NULL);
	return 0;
}

static int group_teardown(void **state)
{
	stop_server();
	return 0;
}

static bool have_redis(void)
{
	if (server > 0)
		return true;
	print_message("skipped: %s is not installed (apt-get install redis-server)\n", REDIS_BIN);
	return false;
}

static void flush(void)
{
	redisContext *c = peek(NULL);
	redisReply *r;

	assert_non_null(c);
	r = redisCommand(c, "FLUSHALL");
	assert_non_null(r);
	freeReplyObject(r);
	redisFree(c);
}

/* A policy with "state" naming the test's Redis (url: a printf format with %d for the port). */
static struct policy *parse(const char *text, const char *url)
{
	char err[POLICY_ERR_LEN], u[160], *json;
	struct policy *p;
	size_t n;

	snprintf(u, sizeof(u), url, port);
	n = strlen(text) + strlen(u) + 1;
	json = malloc(n);
	assert_non_null(json);
	snprintf(json, n, text, u);
	for (char *c = json; *c; c++)
		if (*c == '\'')
			*c = '"';
	p = policy__parse(json, strlen(json), "inline.json", err);
	if (!p)
		fail_msg("policy does not parse: %s\n%s", err, json);
	free(json);
	return p;
}

/* One process's view: its limits (on clk) and its policy (parse()'s text and url). */
static void open_side(struct limits **l, struct policy **p, struct fake_clock *clk,
		      const char *text, const char *url)
{
	*l = limits__new(fake_now, clk);
	assert_non_null(*l);
	*p = parse(text, url);
}

static void close_side(struct limits *l, struct policy *p)
{
	limits__free(l);
	policy__free(p);
}

/* A policy whose tool t has one global limit of 3 a minute, in the Redis at port (+ state). */
static struct policy *one_limit(int at, const char *state)
{
	char text[600];

	snprintf(text, sizeof(text),
		 "{'version':'1','default':'deny','state':{'redis':'redis://127.0.0.1:%d'%s},"
		 "'tools':{'t':{'limits':[{'scope':'global','window':'minute','max':3}]}}}",
		 at, state);
	return parse(text, "");
}

static int call(struct limits *l, struct policy *p, const char *tool, const struct scope_keys *k,
		struct decision *d, struct reservation *res)
{
	struct reservation scratch;

	decide__call(p, tool, NULL, d);
	assert_int_not_equal(d->verdict, VERDICT_DENY);
	return limits__reserve(l, p, d->rule, k, res ? res : &scratch, d);
}

#define P_GLOBAL                                                                     \
	"{'version':'1','default':'deny','state':{'redis':'%s','prefix':'t1:'},"     \
	"'tools':{'t':{'limits':[{'counter':'c','scope':'global','window':'minute'," \
	"'max':3}]},'a':{'limits':[{'scope':'agent','window':'hour','max':1}]},"     \
	"'s':{'limits':[{'counter':'g','scope':'global','window':'minute','max':5}," \
	"{'scope':'session','window':'minute','max':1}]},"                           \
	"'g':{'limits':[{'counter':'c','scope':'global','window':'minute','max':3}," \
	"{'scope':'grant','window':'minute','max':9}]}}}"

/* Two processes on one Redis: exactly max calls between them, then a limit denial for both. */
static void test_shared_exactly_max(void **state)
{
	struct fake_clock clk = { T0 + 10 };
	struct limits *l1, *l2;
	struct policy *p1, *p2;
	struct decision d;
	int ok = 0;

	if (!have_redis())
		skip();
	flush();
	l1 = limits__new(fake_now, &clk);
	open_side(&l2, &p1, &clk, P_GLOBAL, "redis://127.0.0.1:%d");
	p2 = parse(P_GLOBAL, "redis://127.0.0.1:%d/0");
	for (int i = 0; i < 10; i++)
		ok += !call(i % 2 ? l2 : l1, i % 2 ? p2 : p1, "t", NULL, &d, NULL);
	assert_int_equal(ok, 3);
	assert_int_equal(call(l1, p1, "t", NULL, &d, NULL), -EDQUOT);
	assert_int_equal(d.kind, KIND_LIMIT);
	assert_string_equal(d.pointer, "/tools/t/limits/0");
	assert_int_equal(d.retry_after_s, 50);
	assert_string_equal(d.reason, "rate limit of 3 calls per minute reached; retry in 50 s");
	/* the counter "c" of the same scope and window is the same budget under another rule */
	assert_int_equal(call(l2, p2, "g", NULL, &d, NULL), -EDQUOT);
	assert_int_equal(limits__used(l2, &policy__lookup(p2, "t")->limits[0], NULL), 3);
	assert_int_equal(limits__left(l1, &policy__lookup(p1, "t")->limits[0], NULL), 0);
	/* the next window is a budget of its own */
	clk.now = T0 + 60;
	assert_int_equal(call(l2, p2, "t", NULL, &d, NULL), 0);
	assert_int_equal(limits__left(l1, &policy__lookup(p1, "t")->limits[0], NULL), 2);
	limits__free(l1);
	close_side(l2, p1);
	policy__free(p2);
}

/* Scope agent: one budget per client identity, the same one on every host. */
static void test_agent_scope(void **state)
{
	struct fake_clock clk = { T0 };
	struct scope_keys alice = { .agent = "1000:/usr/bin/node" },
			  bob = { .agent = "1001:/usr/bin/node" };
	struct limits *l1, *l2;
	struct policy *p;
	struct decision d;

	if (!have_redis())
		skip();
	flush();
	l1 = limits__new(fake_now, &clk);
	open_side(&l2, &p, &clk, P_GLOBAL, "redis://127.0.0.1:%d");
	assert_int_equal(call(l1, p, "a", &alice, &d, NULL), 0);
	assert_int_equal(call(l2, p, "a", &alice, &d, NULL), -EDQUOT);
	assert_int_equal(call(l2, p, "a", &bob, &d, NULL), 0);
	limits__free(l1);
	close_side(l2, p);
}

/* All or none: a budget kept here that is spent leaves Redis untouched, and the other way. */
static void test_all_or_none(void **state)
{
	struct fake_clock clk = { T0 };
	struct scope_keys s1 = { .session = "s1" }, s2 = { .session = "s2" };
	const struct limit *glob;
	struct reservation res;
	struct limits *l;
	struct policy *p;
	struct decision d;

	if (!have_redis())
		skip();
	flush();
	open_side(&l, &p, &clk, P_GLOBAL, "redis://127.0.0.1:%d");
	glob = &policy__lookup(p, "s")->limits[0];
	assert_int_equal(call(l, p, "s", &s1, &d, NULL), 0);
	/* the session's budget is spent: Redis's is not taken */
	assert_int_equal(call(l, p, "s", &s1, &d, NULL), -EDQUOT);
	assert_string_equal(d.pointer, "/tools/s/limits/1");
	assert_int_equal(limits__used(l, glob, &s1), 1);
	/* give-back returns both */
	assert_int_equal(call(l, p, "s", &s2, &d, &res), 0);
	assert_int_equal(limits__used(l, glob, &s2), 2);
	limits__release(l, &res);
	assert_int_equal(limits__used(l, glob, &s2), 1);
	assert_int_equal(call(l, p, "s", &s2, &d, NULL), 0);
	/* Redis's spent (another process took the rest): the session's budget is not taken */
	for (int i = 0; i < 3; i++)
		assert_int_equal(limits__charge(l, glob, NULL, 0), 0);
	assert_int_equal(limits__left(l, glob, NULL), 0);
	assert_int_equal(call(l, p, "s", &(struct scope_keys){ .session = "s3" }, &d, NULL),
			 -EDQUOT);
	assert_string_equal(d.pointer, "/tools/s/limits/0");
	assert_int_equal(call(l, p, "s", &(struct scope_keys){ .session = "s3" }, &d, NULL),
			 -EDQUOT);
	assert_string_equal(d.pointer, "/tools/s/limits/0"); /* not the session's: never taken */
	/* a grant budget (the host table's scope) beside a global one in Redis */
	assert_int_equal(call(l, p, "g", NULL, &d, NULL), 0);
	close_side(l, p);
}

/* The keys: under the prefix, one per budget and window, expiring a minute after it. */
static void test_keys_and_expiry(void **state)
{
	struct fake_clock clk = { T0 + 30 };
	redisContext *c;
	redisReply *r;
	struct limits *l;
	struct policy *p;
	struct decision d;
	char want[64];

	if (!have_redis())
		skip();
	flush();
	open_side(&l, &p, &clk, P_GLOBAL, "redis://127.0.0.1:%d");
	assert_int_equal(call(l, p, "t", NULL, &d, NULL), 0);
	c = peek(NULL);
	assert_non_null(c);
	r = redisCommand(c, "KEYS *");
	assert_non_null(r);
	assert_int_equal(r->type, REDIS_REPLY_ARRAY);
	assert_int_equal(r->elements, 1);
	snprintf(want, sizeof(want), ":%llu", T0);
	assert_int_equal(strncmp(r->element[0]->str, "t1:b:", 5), 0);
	assert_int_equal(strlen(r->element[0]->str), 5 + 64 + strlen(want));
	assert_string_equal(r->element[0]->str + 5 + 64, want);
	{
		redisReply *t = redisCommand(c, "TTL %s", r->element[0]->str);

		assert_non_null(t);
		assert_int_equal(t->type, REDIS_REPLY_INTEGER);
		assert_true(t->integer > 80 && t->integer <= 90); /* 30 s of its window + 60 */
		freeReplyObject(t);
	}
	freeReplyObject(r);
	redisFree(c);
	close_side(l, p);
}

/* Nobody answers: denied, saying why (and the next call too); "allow" lets it through, said. */
static void test_unreachable(void **state)
{
	struct fake_clock clk = { T0 };
	const struct limit *lim;
	struct limits *l;
	struct policy *p;
	struct decision d;
	char url[64];

	if (!have_redis())
		skip();
	/* the test's policy, pointed at a port nobody listens on */
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", free_port());
	open_side(&l, &p, &clk, P_GLOBAL, url);
	lim = &policy__lookup(p, "t")->limits[0];
	for (int i = 0; i < 2; i++) {
		assert_int_equal(call(l, p, "t", NULL, &d, NULL), -EIO);
		assert_int_equal(d.kind, KIND_LIMIT);
		assert_string_equal(d.pointer, "/tools/t/limits/0");
		assert_non_null(strstr(d.reason, "the budgets of scope global cannot be counted"));
		assert_non_null(strstr(d.reason, "Redis at redis://127.0.0.1:"));
		assert_non_null(strstr(d.reason, "denied until Redis answers"));
	}
	assert_int_equal(limits__left(l, lim, NULL), 0);
	assert_int_equal(limits__charge(l, lim, NULL, 0), -EIO);
	/* a call with a grant budget beside it: denied, and the grant budget is not taken */
	assert_int_equal(call(l, p, "g", NULL, &d, NULL), -EIO);
	assert_int_equal(limits__used(l, &policy__lookup(p, "g")->limits[1], NULL), 0);
	close_side(l, p);

	l = limits__new(fake_now, &clk);
	p = one_limit(free_port(), ",'unreachable':'allow','timeout_ms':100");
	lim = &policy__lookup(p, "t")->limits[0];
	for (int i = 0; i < 4; i++) {
		assert_int_equal(call(l, p, "t", NULL, &d, NULL), 0);
		assert_int_equal(d.kind, KIND_NONE);
		assert_non_null(strstr(d.note, "not counted"));
		assert_non_null(strstr(d.note, "\"unreachable\": \"allow\""));
	}
	assert_int_equal(limits__left(l, lim, NULL), 3);
	close_side(l, p);
}

/* Redis restarted (empty, without the scripts): denied while down, counted again after. */
static void test_restart_and_noscript(void **state)
{
	struct fake_clock clk = { T0 };
	struct limits *l;
	struct policy *p;
	struct decision d;
	redisContext *c;
	redisReply *r;

	if (!have_redis())
		skip();
	flush();
	open_side(&l, &p, &clk, P_GLOBAL, "redis://127.0.0.1:%d");
	assert_int_equal(call(l, p, "t", NULL, &d, NULL), 0);
	/* the scripts forgotten (SCRIPT FLUSH): loaded again, the call counted */
	c = peek(NULL);
	assert_non_null(c);
	r = redisCommand(c, "SCRIPT FLUSH");
	assert_non_null(r);
	freeReplyObject(r);
	redisFree(c);
	assert_int_equal(call(l, p, "t", NULL, &d, NULL), 0);
	assert_int_equal(limits__used(l, &policy__lookup(p, "t")->limits[0], NULL), 2);
	stop_server();
	assert_int_equal(call(l, p, "t", NULL, &d, NULL), -EIO);
	start_server(NULL);
	/* within a second of the failure, no new connection is tried */
	assert_int_equal(call(l, p, "t", NULL, &d, NULL), -EIO);
	usleep(1100000);
	assert_int_equal(call(l, p, "t", NULL, &d, NULL), 0);
	/* an empty Redis: its count started again (the window's record was lost with it) */
	assert_int_equal(limits__used(l, &policy__lookup(p, "t")->limits[0], NULL), 1);
	close_side(l, p);
}

/* AUTH: without the password, or with a wrong one, denied (the password never in a message). */
static void test_auth(void **state)
{
	struct fake_clock clk = { T0 };
	struct limits *l;
	struct policy *p;
	struct decision d;

	if (!have_redis())
		skip();
	stop_server();
	start_server(PASSWORD);
	open_side(&l, &p, &clk, P_GLOBAL, "redis://127.0.0.1:%d");
	assert_int_equal(call(l, p, "t", NULL, &d, NULL), -EIO);
	assert_non_null(strstr(d.reason, "NOAUTH"));
	close_side(l, p);

	open_side(&l, &p, &clk, P_GLOBAL, "redis://:wrong-one@127.0.0.1:%d");
	assert_int_equal(call(l, p, "t", NULL, &d, NULL), -EIO);
	assert_non_null(strstr(d.reason, "AUTH refused"));
	assert_non_null(strstr(d.reason, "redis://:(password)@127.0.0.1:"));
	assert_null(strstr(d.reason, "wrong-one"));
	close_side(l, p);

	open_side(&l, &p, &clk, P_GLOBAL, "redis://default:" PASSWORD "@127.0.0.1:%d/3");
	assert_int_equal(call(l, p, "t", NULL, &d, NULL), 0);
	close_side(l, p);
	stop_server();
	start_server(NULL);
}

static void test_url(void **state)
{
	static const struct {
		const char *url, *host, *user, *password;
		int port, db;
		const char *shown;
	} good[] = {
		{ "redis://h", "h", NULL, NULL, 6379, 0, "redis://h:6379/0" },
		{ "redis://h.example:6380/2", "h.example", NULL, NULL, 6380, 2,
		  "redis://h.example:6380/2" },
		{ "redis://10.0.0.1/", "10.0.0.1", NULL, NULL, 6379, 0, "redis://10.0.0.1:6379/0" },
		{ "redis://:p%40ss@h", "h", NULL, "p@ss", 6379, 0, "redis://:(password)@h:6379/0" },
		{ "redis://u:p:q@h:1/9999", "h", "u", "p:q", 1, 9999,
		  "redis://u:(password)@h:1/9999" },
		{ "redis://[::1]:7000/1", "::1", NULL, NULL, 7000, 1, "redis://[::1]:7000/1" },
	};
	static const struct {
		const char *url, *why;
	} bad[] = {
		{ "rediss://h", "TLS (rediss://) is not supported" },
		{ "http://h", "must be redis://" },
		{ "redis://", "names no host" },
		{ "redis://h:0", "port must be a number from 1 to 65535" },
		{ "redis://h:65536", "port must be a number" },
		{ "redis://h:x", "port must be a number" },
		{ "redis://h/x", "database after '/'" },
		{ "redis://h/10000", "database after '/'" },
		{ "redis://h?db=1", "query or fragment" },
		{ "redis://secret@h", "USER:PASSWORD or :PASSWORD" },
		{ "redis://:@h", "password after ':' is empty" },
		{ "redis://:a%zz@h", "bad %-escape" },
		{ "redis://:a%00@h", "bad %-escape" },
		{ "redis://[::1", "in brackets" },
		{ "redis://h h", "cannot have" },
	};
	char why[200];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct redis_conf c = {};

		if (redis_conf__parse_url(good[i].url, &c, why, sizeof(why)))
			fail_msg("%s: %s", good[i].url, why);
		assert_string_equal(c.host, good[i].host);
		if (good[i].user)
			assert_string_equal(c.user, good[i].user);
		else
			assert_null(c.user);
		if (good[i].password)
			assert_string_equal(c.password, good[i].password);
		else
			assert_null(c.password);
		assert_int_equal(c.port, good[i].port);
		assert_int_equal(c.db, good[i].db);
		assert_string_equal(c.shown, good[i].shown);
		redis_conf__free(&c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct redis_conf c = {};

		why[0] = 0;
		assert_int_equal(redis_conf__parse_url(bad[i].url, &c, why, sizeof(why)), -EINVAL);
		if (!strstr(why, bad[i].why))
			fail_msg("%s: want \"%s\" in \"%s\"", bad[i].url, bad[i].why, why);
		assert_null(strstr(why, "secret"));
		redis_conf__free(&c);
	}
}

static void test_policy_state(void **state)
{
	static const struct {
		const char *state, *err;
	} bad[] = {
		{ "{}", "/state/redis: is required" },
		{ "{'redis':1}", "/state/redis: must be a string" },
		{ "{'redis':'redis://h','unreachable':'open'}", "/state/unreachable: must be" },
		{ "{'redis':'redis://h','timeout_ms':0}", "/state/timeout_ms: must be" },
		{ "{'redis':'redis://h','prefix':1}", "/state/prefix: must be a string" },
		{ "{'redis':'redis://h','tls':true}", "/state/tls: unknown key" },
		{ "{'redis':'redis://:hunter2@h:99999'}", "/state/redis: the port" },
	};
	char err[POLICY_ERR_LEN], text[512];
	struct policy *p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "{'version':'1','default':'allow','state':%s}",
			 bad[i].state);
		for (char *c = text; *c; c++)
			if (*c == '\'')
				*c = '"';
		p = policy__parse(text, strlen(text), "s.json", err);
		assert_null(p);
		if (!strstr(err, bad[i].err))
			fail_msg("%s: want \"%s\" in \"%s\"", bad[i].state, bad[i].err, err);
		assert_null(strstr(err, "hunter2"));
	}
	/* only agent and global go to Redis; session and grant stay where they were */
	port = port ? port : 6379;
	p = parse(P_GLOBAL, "redis://127.0.0.1:%d");
	assert_non_null(policy__lookup(p, "t")->limits[0].redis);
	assert_non_null(policy__lookup(p, "a")->limits[0].redis);
	assert_null(policy__lookup(p, "s")->limits[1].redis);
	assert_null(policy__lookup(p, "g")->limits[1].redis);
	assert_string_equal(p->redis->prefix, "t1:");
	assert_false(p->redis->fail_open);
	assert_int_equal(p->redis->timeout_ms, REDIS_DEFAULT_TIMEOUT_MS);
	policy__free(p);
}

/*
 * A server that speaks RESP as a hostile or broken Redis would: it reads each command (an array
 * of bulk strings) and answers the next of its replies, raw; past them it closes.
 */
struct fake {
	int lfd, port;
	const char *const *replies;
	pthread_t th;
};

static bool read_command(FILE *in)
{
	char line[128];
	long n;

	if (!fgets(line, sizeof(line), in) || line[0] != '*')
		return false;
	n = strtol(line + 1, NULL, 10);
	for (long i = 0; i < n; i++) {
		long len;

		if (!fgets(line, sizeof(line), in) || line[0] != '$')
			return false;
		len = strtol(line + 1, NULL, 10);
		for (long k = 0; k < len + 2; k++)
			if (fgetc(in) == EOF)
				return false;
	}
	return true;
}

static void *fake_serve(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	FILE *in;

	if (fd < 0)
		return NULL;
	in = fdopen(dup(fd), "r");
	for (size_t i = 0; in && f->replies[i] && read_command(in); i++)
		if (write(fd, f->replies[i], strlen(f->replies[i])) < 0)
			break;
	if (in)
		fclose(in);
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, const char *const *replies)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	f->replies = replies;
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(f->lfd, 1), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
	f->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&f->th, NULL, fake_serve, f), 0);
}

static void fake_stop(struct fake *f)
{
	shutdown(f->lfd, SHUT_RDWR);
	close(f->lfd);
	pthread_join(f->th, NULL);
}

#define SHA40 "$40\r\n0123456789012345678901234567890123456789\r\n"

/* Answers no Redis gives: each fails closed, saying so; none crashes or hangs. */
static void test_hostile_server(void **state)
{
	static const char *const loaded[] = { SHA40, SHA40, SHA40 };
	static const struct {
		const char *answer; /* to the reservation (after the three SCRIPT LOADs) */
		const char *why;
	} cases[] = {
		{ "$1\r\n0\r\n", "an unexpected answer to a reservation" },
		{ ":1\r\n", "an unexpected answer to a reservation" },
		{ "*2\r\n:0\r\n:1\r\n", "an unexpected answer to a reservation" },
		{ "*1\r\n$1\r\n1\r\n", "an unexpected answer to a reservation" },
		{ "-ERR user_script:1: attempt to perform arithmetic on a nil value\r\n",
		  "ERR user_script:1" },
		{ "$99999999\r\nabc", "Redis at redis://127.0.0.1:" },	       /* then silence */
		{ "+OK\r\n+OK\r\n", "an unexpected answer to a reservation" }, /* a status */
		{ "!garbage\r\n", "Protocol error" },
		{ NULL, "Redis at redis://127.0.0.1:" }, /* closed before an answer */
	};
	static const char *const counts[] = { "$2\r\n-5\r\n", "$3\r\n1x2\r\n", "*0\r\n" };
	struct fake_clock clk = { T0 };
	struct limits *l;
	struct policy *p;
	struct decision d;
	struct fake f;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *replies[] = { loaded[0], loaded[1], loaded[2], cases[i].answer, NULL };

		fake_start(&f, replies);
		l = limits__new(fake_now, &clk);
		p = one_limit(f.port, ",'timeout_ms':300");
		assert_int_equal(call(l, p, "t", NULL, &d, NULL) < 0, 1);
		assert_int_equal(d.verdict, VERDICT_DENY);
		assert_int_equal(d.kind, KIND_LIMIT);
		if (!strstr(d.reason, cases[i].why))
			fail_msg("case %zu: want \"%s\" in \"%s\"", i, cases[i].why, d.reason);
		/* and a read of it is nothing left */
		assert_int_equal(limits__left(l, &policy__lookup(p, "t")->limits[0], NULL), 0);
		close_side(l, p);
		fake_stop(&f);
	}
	/* SCRIPT LOAD answered with something else than a SHA-1: not connected */
	fake_start(&f, (const char *[]){ "$3\r\nabc\r\n", NULL });
	l = limits__new(fake_now, &clk);
	p = one_limit(f.port, "");
	assert_int_equal(call(l, p, "t", NULL, &d, NULL), -EIO);
	assert_non_null(strstr(d.reason, "SCRIPT LOAD: not a SHA-1"));
	close_side(l, p);
	fake_stop(&f);
	/* a count that is not one: read as nothing left */
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		const char *replies[] = { loaded[0], loaded[1], loaded[2], counts[i], NULL };

		fake_start(&f, replies);
		l = limits__new(fake_now, &clk);
		p = one_limit(f.port, "");
		assert_int_equal(limits__left(l, &policy__lookup(p, "t")->limits[0], NULL), 0);
		close_side(l, p);
		fake_stop(&f);
	}
}

/* A store on the test's Redis (or on port p when p is not 0), with prefix. */
static struct redis_store *store_on(int p, const char *prefix)
{
	struct redis_conf c = { .prefix = (char *)prefix, .timeout_ms = 300 };
	struct redis_store *s;
	char url[64], why[REDIS_ERR_LEN];

	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", p ? p : port);
	assert_int_equal(redis_conf__parse_url(url, &c, why, sizeof(why)), 0);
	s = redis_store__new(&c);
	c.prefix = NULL;
	redis_conf__free(&c);
	assert_non_null(s);
	return s;
}

/* A retry of tool's call with args (JSON) carrying state and the user's yes. */
static enum mrtr_answer retry_on(struct mrtr *m, const char *args, const char *state, char *why)
{
	json_t *p = json_pack("{s:o, s:{s:{s:s, s:{s:b}}}, s:s}", "arguments",
			      json_loads(args, 0, NULL), "inputResponses", MRTR_KEY, "action",
			      "accept", "content", "approve", 1, "requestState", state);
	enum mrtr_answer a = mrtr__answer(m, "t", p, mrtr__now(m), why, 200);

	json_decref(p);
	return a;
}

/* The state of an input_required that m gives for t with args. */
static char *state_of(struct mrtr *m, const char *args)
{
	json_t *p = json_pack("{s:o}", "arguments", json_loads(args, 0, NULL));
	json_t *r = mrtr__ask(m, "t", p, "allow?", 60, mrtr__now(m));
	char *s;

	assert_non_null(r);
	s = strdup(json_string_value(json_object_get(r, "requestState")));
	json_decref(r);
	json_decref(p);
	return s;
}

/*
 * Two gateways that name one Redis share the key of input_required: a state one gave is taken
 * by the other, once across both; a gateway of another prefix does not take it; a Redis that
 * cannot say whether it was used refuses it; a state of the key drawn before sharing is refused.
 */
static void test_shared_approvals(void **state)
{
	struct mrtr a, b, other;
	struct redis_store *sa, *sb, *so, *down;
	char why[200], *st, *own;

	if (!have_redis())
		skip();
	flush();
	assert_int_equal(mrtr__init(&a), 0);
	assert_int_equal(mrtr__init(&b), 0);
	assert_int_equal(mrtr__init(&other), 0);
	own = state_of(&a, "{\"x\":1}");
	sa = store_on(0, "mcpf-test:");
	sb = store_on(0, "mcpf-test:");
	so = store_on(0, "elsewhere:");
	assert_int_equal(mrtr__share(&a, sa), 0);
	assert_int_equal(mrtr__share(&b, sb), 0);
	assert_int_equal(mrtr__share(&other, so), 0);
	assert_memory_equal(a.key, b.key, sizeof(a.key));
	assert_memory_not_equal(a.key, a.own_key, sizeof(a.key));
	/* what a gave before sharing was made with its own key */
	assert_int_equal(retry_on(&a, "{\"x\":1}", own, why), MRTR_REFUSED);
	st = state_of(&a, "{\"x\":1}");
	assert_int_equal(retry_on(&other, "{\"x\":1}", st, why), MRTR_REFUSED);
	assert_int_equal(retry_on(&b, "{\"x\":2}", st, why), MRTR_REFUSED);
	assert_int_equal(retry_on(&b, "{\"x\":1}", st, why), MRTR_APPROVED);
	assert_int_equal(retry_on(&a, "{\"x\":1}", st, why), MRTR_REPLAYED);
	assert_non_null(strstr(why, "used already"));
	assert_int_equal(retry_on(&b, "{\"x\":1}", st, why), MRTR_REPLAYED);
	free(st);
	/* Redis gone between the question and the retry: refused, saying why */
	st = state_of(&a, "{\"x\":3}");
	down = store_on(free_port(), "mcpf-test:");
	b.shared = down; /* b's key is the shared one; its Redis does not answer */
	assert_int_equal(retry_on(&b, "{\"x\":3}", st, why), MRTR_REFUSED);
	assert_non_null(strstr(why, "cannot make sure the approval was not used already"));
	assert_non_null(strstr(why, "Redis at redis://127.0.0.1:"));
	b.shared = sb;
	assert_int_equal(retry_on(&b, "{\"x\":3}", st, why), MRTR_APPROVED);
	free(st);
	/* sharing that fails leaves the process's own key */
	assert_int_equal(mrtr__share(&b, down) < 0, 1);
	assert_null(b.shared);
	assert_memory_equal(b.key, b.own_key, sizeof(b.key));
	/* and unshared again: own key */
	assert_int_equal(mrtr__share(&a, NULL), 0);
	assert_memory_equal(a.key, a.own_key, sizeof(a.key));
	free(own);
	mrtr__free(&a);
	mrtr__free(&b);
	mrtr__free(&other);
	redis_store__free(sa);
	redis_store__free(sb);
	redis_store__free(so);
	redis_store__free(down);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_policy_state),
		cmocka_unit_test(test_shared_exactly_max),
		cmocka_unit_test(test_agent_scope),
		cmocka_unit_test(test_all_or_none),
		cmocka_unit_test(test_keys_and_expiry),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_restart_and_noscript),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_hostile_server),
		cmocka_unit_test(test_shared_approvals),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
