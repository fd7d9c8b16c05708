// SPDX-License-Identifier: Apache-2.0
/*
 * Limits with an injected clock: fixed windows aligned to multiples of their length since the
 * epoch, shared budgets, the four scopes, reserve-all-or-none, give-back and gc.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "policy.h"
#include "decide.h"
#include "limits.h"

struct fake_clock {
	uint64_t now;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

/* A minute that starts on a multiple of 60 (and of 3600 and 86400). */
#define T0 (86400ull * 20000)

struct fx {
	struct fake_clock clock;
	struct limits *l;
	struct policy *p;
};

static struct policy *parse(const char *text)
{
	char err[POLICY_ERR_LEN];
	char *json = strdup(text);
	struct policy *p;

	assert_non_null(json);
	for (char *c = json; *c; c++)
		if (*c == '\'')
			*c = '"';
	p = policy__parse(json, strlen(json), "inline.json", err);
	if (!p)
		fail_msg("policy does not parse: %s\n%s", err, json);
	free(json);
	return p;
}

static void fx_init(struct fx *f, const char *policy, uint64_t now)
{
	f->clock.now = now;
	f->l = limits__new(fake_now, &f->clock);
	assert_non_null(f->l);
	f->p = parse(policy);
}

static void fx_fini(struct fx *f)
{
	limits__free(f->l);
	policy__free(f->p);
}

/* decide, then reserve when the rules allow: the gateway's order. Returns 0 or -EDQUOT. */
static int call(struct fx *f, const char *tool, const struct scope_keys *k, struct decision *d,
		struct reservation *res)
{
	struct reservation scratch;

	decide__call(f->p, tool, NULL, d);
	assert_int_not_equal(d->verdict, VERDICT_DENY);
	return limits__reserve(f->l, f->p, d->rule, k, res ? res : &scratch, d);
}

static void expect_ok(struct fx *f, const char *tool, const struct scope_keys *k)
{
	struct decision d;
	int rc = call(f, tool, k, &d, NULL);

	if (rc)
		fail_msg("t=T0+%llu %s: want a reservation, got %d: %s at %s",
			 (unsigned long long)(f->clock.now - T0), tool, rc, d.reason, d.pointer);
	assert_int_equal(d.kind, KIND_NONE);
}

static void expect_limit(struct fx *f, const char *tool, const struct scope_keys *k,
			 const char *pointer, uint64_t retry)
{
	struct decision d;
	int rc = call(f, tool, k, &d, NULL);

	if (rc != -EDQUOT)
		fail_msg("t=%llu %s: want a limit denial at %s, got %d",
			 (unsigned long long)f->clock.now, tool, pointer, rc);
	assert_int_equal(d.verdict, VERDICT_DENY);
	assert_int_equal(d.kind, KIND_LIMIT);
	assert_string_equal(d.pointer, pointer);
	assert_int_equal(d.retry_after_s, retry);
	assert_non_null(strstr(d.reason, "rate limit"));
}

static const struct limit *rule_limit(const struct policy *p, const char *tool, size_t i)
{
	const struct rule *r = policy__lookup(p, tool);

	assert_non_null(r);
	assert_true(i < r->nlimits);
	return &r->limits[i];
}

#define P_MINUTE                                                  \
	"{'version':'1','default':'deny','tools':{'t':{'limits':" \
	"[{'counter':'c','window':'minute','max':2}]}}}"

/* Second 59 and second 60 of a minute window are in different windows. */
static void test_window_edges(void **state)
{
	struct fx f;

	fx_init(&f, P_MINUTE, T0 + 59);
	expect_ok(&f, "t", NULL);
	expect_ok(&f, "t", NULL);
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 1);
	f.clock.now = T0 + 60;
	expect_ok(&f, "t", NULL);
	expect_ok(&f, "t", NULL);
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 60);
	f.clock.now = T0 + 119;
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 1);
	f.clock.now = T0 + 120;
	expect_ok(&f, "t", NULL);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "t", 0), NULL), 1);
	fx_fini(&f);
}

/* Windows are not sliding and not started by the first call: a 7 s window is [7k, 7k+7). */
static void test_window_alignment(void **state)
{
	struct fx f;
	uint64_t start = 7 * ((T0 + 3) / 7 + 1); /* a multiple of 7 after T0 */

	fx_init(&f,
		"{'version':'1','default':'deny','tools':{'t':{'limits':"
		"[{'window':7,'max':1}]}}}",
		start + 5);
	expect_ok(&f, "t", NULL);
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 2);
	f.clock.now = start + 6;
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 1);
	f.clock.now = start + 7; /* 2 s after the first call, but a new window */
	expect_ok(&f, "t", NULL);
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 7);
	f.clock.now = start + 13;
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 1);
	f.clock.now = start + 14;
	expect_ok(&f, "t", NULL);
	fx_fini(&f);
}

/* Day and hour windows start at midnight and on the hour (UTC, since the epoch). */
static void test_long_windows(void **state)
{
	struct fx f;

	fx_init(&f,
		"{'version':'1','default':'allow','all_tools':{'limits':["
		"{'counter':'h','window':'hour','max':1},"
		"{'counter':'d','window':'day','max':1}]}}",
		T0 + 86400 - 3605);
	expect_ok(&f, "x", NULL);
	/* both full: the later window end is what the agent must wait for, not the first */
	expect_limit(&f, "x", NULL, "/all_tools/limits/1", 3605);
	f.clock.now = T0 + 86400 - 3600; /* new hour, same day */
	expect_limit(&f, "x", NULL, "/all_tools/limits/1", 3600);
	f.clock.now = T0 + 86400; /* new day and new hour */
	expect_ok(&f, "x", NULL);
	fx_fini(&f);
}

/* A denial names the limit that fired; with several, the one that ends last. */
static void test_fired_limit(void **state)
{
	struct fx f;

	fx_init(&f,
		"{'version':'1','default':'deny','all_tools':{'limits':["
		"{'counter':'all','window':'minute','max':100}]},"
		"'tools':{'t':{'limits':[{'counter':'s','window':'second','max':1},"
		"{'counter':'m','window':'minute','max':3}]}}}",
		T0 + 30);
	expect_ok(&f, "t", NULL);
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 1);
	f.clock.now++;
	expect_ok(&f, "t", NULL);
	f.clock.now++;
	expect_ok(&f, "t", NULL);
	f.clock.now++; /* second 33: the per-second budget is fresh, the minute one spent */
	expect_limit(&f, "t", NULL, "/tools/t/limits/1", 27);
	assert_int_equal(limits__used(f.l, &f.p->all_limits[0], NULL), 3);
	fx_fini(&f);
}

/* Limits sharing counter, scope and window share one budget, across rules. */
static void test_shared_counter(void **state)
{
	struct fx f;

	fx_init(&f,
		"{'version':'1','default':'deny','tools':{"
		"'a':{'limits':[{'counter':'writes','window':'minute','max':3}]},"
		"'b':{'limits':[{'counter':'writes','window':'minute','max':3}]},"
		"'c':{'limits':[{'counter':'writes','window':'minute','max':3,"
		"'scope':'global'}]},"
		"'d':{'limits':[{'counter':'writes','window':'hour','max':3}]},"
		"'e':{'limits':[{'counter':'writes','window':'minute','max':5}]}}}",
		T0);
	expect_ok(&f, "a", NULL);
	expect_ok(&f, "a", NULL);
	expect_ok(&f, "b", NULL);
	expect_limit(&f, "a", NULL, "/tools/a/limits/0", 60);
	expect_limit(&f, "b", NULL, "/tools/b/limits/0", 60);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "a", 0), NULL), 3);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "b", 0), NULL), 3);
	/* same counter, other scope or other window: budgets of their own */
	for (int i = 0; i < 3; i++) {
		expect_ok(&f, "c", NULL);
		expect_ok(&f, "d", NULL);
	}
	expect_limit(&f, "c", NULL, "/tools/c/limits/0", 60);
	expect_limit(&f, "d", NULL, "/tools/d/limits/0", 3600);
	/* same budget, a larger max: each limit judges the shared count against its own max */
	expect_ok(&f, "e", NULL);
	expect_ok(&f, "e", NULL);
	expect_limit(&f, "e", NULL, "/tools/e/limits/0", 60);
	expect_limit(&f, "a", NULL, "/tools/a/limits/0", 60);
	fx_fini(&f);
}

/* A limit without a counter has a budget of its own, even beside an identical limit. */
static void test_unnamed_counters(void **state)
{
	struct fx f;

	fx_init(&f,
		"{'version':'1','default':'deny','tools':{"
		"'a':{'limits':[{'window':'minute','max':1}]},"
		"'b':{'limits':[{'window':'minute','max':1}]}}}",
		T0);
	expect_ok(&f, "a", NULL);
	expect_ok(&f, "b", NULL);
	expect_limit(&f, "a", NULL, "/tools/a/limits/0", 60);
	expect_limit(&f, "b", NULL, "/tools/b/limits/0", 60);
	fx_fini(&f);
}

#define P_SCOPES                                                                        \
	"{'version':'1','default':'deny','tools':{"                                     \
	"'s':{'limits':[{'counter':'c','window':'minute','max':1,'scope':'session'}]}," \
	"'a':{'limits':[{'counter':'c','window':'minute','max':1,'scope':'agent'}]},"   \
	"'g':{'limits':[{'counter':'c','window':'minute','max':1,'scope':'grant'}]},"   \
	"'h':{'limits':[{'counter':'c','window':'minute','max':1,'scope':'global'}]}}}"

static void test_scopes(void **state)
{
	const struct scope_keys s1a = { "sess-1", "1000:/usr/bin/node" };
	const struct scope_keys s2a = { "sess-2", "1000:/usr/bin/node" };
	const struct scope_keys s1b = { "sess-1", "1001:/usr/bin/python3" };
	const struct scope_keys s3b = { "sess-3", "1001:/usr/bin/python3" };
	struct fx f;

	fx_init(&f, P_SCOPES, T0 + 10);
	/* session: one budget per session id, whoever the agent */
	expect_ok(&f, "s", &s1a);
	expect_limit(&f, "s", &s1a, "/tools/s/limits/0", 50);
	expect_limit(&f, "s", &s1b, "/tools/s/limits/0", 50);
	expect_ok(&f, "s", &s2a);
	expect_ok(&f, "s", &s3b);
	/* agent: one budget per agent identity, whatever the session */
	expect_ok(&f, "a", &s1a);
	expect_limit(&f, "a", &s2a, "/tools/a/limits/0", 50);
	expect_ok(&f, "a", &s1b);
	expect_limit(&f, "a", &s3b, "/tools/a/limits/0", 50);
	/* grant and global: keys are ignored */
	expect_ok(&f, "g", &s1a);
	expect_limit(&f, "g", &s3b, "/tools/g/limits/0", 50);
	expect_limit(&f, "g", NULL, "/tools/g/limits/0", 50);
	expect_ok(&f, "h", NULL);
	expect_limit(&f, "h", &s1a, "/tools/h/limits/0", 50);
	expect_limit(&f, "h", &s3b, "/tools/h/limits/0", 50);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "s", 0), &s1a), 1);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "a", 0), &s3b), 1);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "g", 0), &s2a), 1);
	fx_fini(&f);
}

/* An agent cannot dodge a grant or global limit by naming a new session or identity. */
static void test_scope_key_tricks(void **state)
{
	const struct scope_keys weird[] = {
		{ "", "" },
		{ "-", "-" },
		{ "sess\x1f"
		  "1",
		  "1000:/x\x1fglobal" },
		{ NULL, NULL },
	};
	struct fx f;

	fx_init(&f, P_SCOPES, T0);
	expect_ok(&f, "g", &weird[0]);
	expect_ok(&f, "h", &weird[0]);
	for (size_t i = 0; i < sizeof(weird) / sizeof(weird[0]); i++) {
		expect_limit(&f, "g", &weird[i], "/tools/g/limits/0", 60);
		expect_limit(&f, "h", &weird[i], "/tools/h/limits/0", 60);
	}
	/* session keys made of separators do not collide with another counter's budget */
	expect_ok(&f, "s", &weird[2]);
	expect_limit(&f, "s", &weird[2], "/tools/s/limits/0", 60);
	fx_fini(&f);
}

/* Two limits, one full: the other is not consumed. */
static void test_all_or_none(void **state)
{
	struct fx f;

	fx_init(&f,
		"{'version':'1','default':'deny','all_tools':{'limits':["
		"{'counter':'calls','window':'minute','max':10}]},"
		"'tools':{'w':{'limits':[{'counter':'writes','window':'minute','max':1},"
		"{'counter':'bytes','window':'hour','max':5}]},'r':{}}}",
		T0);
	expect_ok(&f, "w", NULL);
	for (int i = 0; i < 5; i++)
		expect_limit(&f, "w", NULL, "/tools/w/limits/0", 60);
	assert_int_equal(limits__used(f.l, &f.p->all_limits[0], NULL), 1);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "w", 1), NULL), 1);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "w", 0), NULL), 1);
	/* the all_tools budget still has its 9 calls for other tools */
	for (int i = 0; i < 9; i++)
		expect_ok(&f, "r", NULL);
	expect_limit(&f, "r", NULL, "/all_tools/limits/0", 60);
	expect_limit(&f, "w", NULL, "/all_tools/limits/0", 60);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "w", 1), NULL), 1);
	fx_fini(&f);
}

/* A budget named by both an all_tools limit and a rule limit counts one call once. */
static void test_counts_once(void **state)
{
	struct fx f;
	struct decision d;
	struct reservation res;

	fx_init(&f,
		"{'version':'1','default':'allow','all_tools':{'limits':["
		"{'counter':'calls','window':'minute','max':5}]},"
		"'tools':{'t':{'limits':[{'counter':'calls','window':'minute','max':5},"
		"{'counter':'calls','window':'minute','max':5}]}}}",
		T0);
	assert_int_equal(call(&f, "t", NULL, &d, &res), 0);
	assert_int_equal(res.n, 1);
	assert_int_equal(limits__used(f.l, &f.p->all_limits[0], NULL), 1);
	for (int i = 0; i < 4; i++)
		expect_ok(&f, i % 2 ? "t" : "unlisted", NULL);
	expect_limit(&f, "t", NULL, "/all_tools/limits/0", 60);
	expect_limit(&f, "unlisted", NULL, "/all_tools/limits/0", 60);
	fx_fini(&f);
}

/* Default allow: only the all_tools limits apply (rule NULL). */
static void test_default_allow_limits(void **state)
{
	struct fx f;
	struct decision d;
	struct reservation res;

	fx_init(&f, "{'version':'1','default':'allow','all_tools':{'rate_limit':'2/second'}}", T0);
	assert_int_equal(call(&f, "x", NULL, &d, &res), 0);
	assert_null(d.rule);
	assert_int_equal(res.n, 1);
	expect_ok(&f, "y", NULL);
	expect_limit(&f, "z", NULL, "/all_tools/rate_limit", 1);
	fx_fini(&f);
}

/* No limits: an empty reservation, and releasing it is a no-op. */
static void test_no_limits(void **state)
{
	struct fx f;
	struct decision d;
	struct reservation res;

	fx_init(&f, "{'version':'1','default':'allow','tools':{'t':{}}}", T0);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(call(&f, "t", NULL, &d, &res), 0);
		assert_int_equal(res.n, 0);
		limits__release(f.l, &res);
	}
	fx_fini(&f);
}

/* Give-back: a reservation returned in its window frees its unit; a late one is ignored. */
static void test_release(void **state)
{
	struct fx f;
	struct decision d;
	struct reservation r1, r2, r3;
	const struct limit *lim;

	fx_init(&f, P_MINUTE, T0 + 58);
	lim = rule_limit(f.p, "t", 0);
	assert_int_equal(call(&f, "t", NULL, &d, &r1), 0);
	assert_int_equal(call(&f, "t", NULL, &d, &r2), 0);
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 2);
	limits__release(f.l, &r1);
	assert_int_equal(limits__used(f.l, lim, NULL), 1);
	expect_ok(&f, "t", NULL);
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 2);

	/* the window rolls over: r2 belongs to the old window and gives nothing back */
	f.clock.now = T0 + 60;
	assert_int_equal(call(&f, "t", NULL, &d, &r3), 0);
	assert_int_equal(limits__used(f.l, lim, NULL), 1);
	limits__release(f.l, &r2);
	assert_int_equal(limits__used(f.l, lim, NULL), 1);
	expect_ok(&f, "t", NULL);
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 60);
	limits__release(f.l, &r3);
	assert_int_equal(limits__used(f.l, lim, NULL), 1);
	fx_fini(&f);
}

/* A release gives back every budget of the reservation, and only those. */
static void test_release_all(void **state)
{
	struct fx f;
	struct decision d;
	struct reservation res;

	fx_init(&f,
		"{'version':'1','default':'deny','all_tools':{'limits':["
		"{'counter':'calls','window':'minute','max':10}]},"
		"'tools':{'w':{'limits':[{'counter':'writes','window':'minute','max':1,"
		"'scope':'session'}]},'r':{}}}",
		T0);
	const struct scope_keys k = { "s1", "a" };

	expect_ok(&f, "r", &k);
	assert_int_equal(call(&f, "w", &k, &d, &res), 0);
	assert_int_equal(res.n, 2);
	assert_int_equal(limits__used(f.l, &f.p->all_limits[0], &k), 2);
	limits__release(f.l, &res);
	assert_int_equal(limits__used(f.l, &f.p->all_limits[0], &k), 1);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "w", 0), &k), 0);
	expect_ok(&f, "w", &k);
	fx_fini(&f);
}

/* gc drops budgets whose window ended, keeps live ones; old reservations stay harmless. */
static void test_gc(void **state)
{
	const struct scope_keys k1 = { "s1", "a" }, k2 = { "s2", "a" };
	struct fx f;
	struct decision d;
	struct reservation old, fresh;

	fx_init(&f,
		"{'version':'1','default':'deny','tools':{"
		"'m':{'limits':[{'counter':'c','window':'minute','max':3,'scope':'session'}]},"
		"'h':{'limits':[{'counter':'c','window':'hour','max':3}]},"
		"'n':{'limits':[{'counter':'other','window':'hour','max':3}]}}}",
		T0 + 10);
	assert_int_equal(call(&f, "m", &k1, &d, &old), 0);
	expect_ok(&f, "m", &k2);
	expect_ok(&f, "h", &k1);
	assert_int_equal(limits__gc(f.l), 0);
	f.clock.now = T0 + 59;
	assert_int_equal(limits__gc(f.l), 0);
	f.clock.now = T0 + 60;
	assert_int_equal(limits__gc(f.l), 2); /* the two session budgets of the first minute */
	assert_int_equal(limits__gc(f.l), 0);

	/*
	 * A new budget may take the freed slot, and an hour window that starts at T0 has the
	 * same window start as the old reservation: only the generation tells them apart.
	 */
	assert_int_equal(call(&f, "n", NULL, &d, &fresh), 0);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "h", 0), NULL), 1);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "m", 0), &k1), 0);
	expect_ok(&f, "m", &k1);
	limits__release(f.l, &old);
	limits__release(f.l, &old);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "n", 0), NULL), 1);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "m", 0), &k1), 1);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "h", 0), NULL), 1);
	limits__release(f.l, &fresh);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "n", 0), NULL), 0);

	/* gc after the hour: everything goes; a release after that is harmless */
	f.clock.now = T0 + 3600;
	assert_int_equal(limits__gc(f.l), 3);
	limits__release(f.l, &fresh);
	expect_ok(&f, "h", &k1);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "h", 0), NULL), 1);
	fx_fini(&f);
}

/* Many budgets: the index grows, counts stay exact, gc frees them all. */
static void test_many_budgets(void **state)
{
	struct fx f;
	char id[32];
	size_t n = 5000;

	fx_init(&f,
		"{'version':'1','default':'deny','tools':{"
		"'s':{'limits':[{'counter':'c','window':'minute','max':2,"
		"'scope':'session'}]}}}",
		T0);
	for (size_t i = 0; i < n; i++) {
		struct scope_keys k = { id, "a" };

		snprintf(id, sizeof(id), "session-%zu", i);
		expect_ok(&f, "s", &k);
		if (i % 7 == 0)
			expect_ok(&f, "s", &k);
	}
	for (size_t i = 0; i < n; i += 97) {
		struct scope_keys k = { id, "a" };

		snprintf(id, sizeof(id), "session-%zu", i);
		assert_int_equal(limits__used(f.l, rule_limit(f.p, "s", 0), &k), i % 7 ? 1 : 2);
	}
	f.clock.now += 60;
	assert_int_equal(limits__gc(f.l), n);
	for (size_t i = 0; i < n; i += 3) {
		struct scope_keys k = { id, "a" };

		snprintf(id, sizeof(id), "session-%zu", i);
		expect_ok(&f, "s", &k);
		expect_ok(&f, "s", &k);
		expect_limit(&f, "s", &k, "/tools/s/limits/0", 60);
	}
	fx_fini(&f);
}

/* "10/minute" is scope grant; {"max","window"} is scope session; both budgets of their own. */
static void test_rate_limit_shorthands(void **state)
{
	const struct scope_keys s1 = { "s1", "a" }, s2 = { "s2", "a" };
	struct fx f;
	const struct limit *g, *s;

	fx_init(&f,
		"{'version':'1','default':'deny','tools':{"
		"'g':{'rate_limit':'3/minute'},"
		"'s':{'rate_limit':{'max':2,'window':60}},"
		"'both':{'limits':[{'counter':'x','window':'hour','max':100}],"
		"        'rate_limit':'1/second'}}}",
		T0 + 30);
	g = rule_limit(f.p, "g", 0);
	s = rule_limit(f.p, "s", 0);
	assert_int_equal(g->scope, SCOPE_GRANT);
	assert_int_equal(g->window_s, 60);
	assert_int_equal(g->max, 3);
	assert_string_equal(g->ptr, "/tools/g/rate_limit");
	assert_int_equal(s->scope, SCOPE_SESSION);
	assert_int_equal(s->window_s, 60);
	assert_int_equal(s->max, 2);
	assert_string_equal(s->ptr, "/tools/s/rate_limit");

	expect_ok(&f, "g", &s1);
	expect_ok(&f, "g", &s2);
	expect_ok(&f, "g", &s1);
	expect_limit(&f, "g", &s2, "/tools/g/rate_limit", 30);

	expect_ok(&f, "s", &s1);
	expect_ok(&f, "s", &s1);
	expect_limit(&f, "s", &s1, "/tools/s/rate_limit", 30);
	expect_ok(&f, "s", &s2);
	expect_ok(&f, "s", &s2);
	expect_limit(&f, "s", &s2, "/tools/s/rate_limit", 30);

	expect_ok(&f, "both", NULL);
	expect_limit(&f, "both", NULL, "/tools/both/rate_limit", 1);
	f.clock.now++;
	expect_ok(&f, "both", NULL);
	assert_int_equal(limits__used(f.l, rule_limit(f.p, "both", 0), NULL), 2);
	fx_fini(&f);
}

/* The seed policy: BinanceFuturesCloseListenKey 10 a minute, scope grant. */
static void test_seed_shape(void **state)
{
	struct fx f;

	fx_init(&f,
		"{'version':'1','default':'deny','tools':{'BinanceFuturesCloseListenKey':"
		"{'limits':[{'counter':'close_listen_key','window':'minute','max':10,"
		"'scope':'grant'}]}}}",
		T0 + 45);
	for (int i = 0; i < 10; i++)
		expect_ok(&f, "BinanceFuturesCloseListenKey", NULL);
	expect_limit(&f, "BinanceFuturesCloseListenKey", NULL,
		     "/tools/BinanceFuturesCloseListenKey/limits/0", 15);
	f.clock.now = T0 + 60;
	expect_ok(&f, "BinanceFuturesCloseListenKey", NULL);
	fx_fini(&f);
}

/* State is keyed by names: a reloaded policy with the same limits keeps the spent budget. */
static void test_reload_keeps_budget(void **state)
{
	struct fx f;
	struct policy *again;

	fx_init(&f, P_MINUTE, T0);
	expect_ok(&f, "t", NULL);
	expect_ok(&f, "t", NULL);
	again = parse(P_MINUTE);
	policy__free(f.p);
	f.p = again;
	expect_limit(&f, "t", NULL, "/tools/t/limits/0", 60);
	fx_fini(&f);
}

/*
 * A use let through elsewhere is counted even past max, only in the window it happened in, and
 * then denies here like any other use; left() says what is left, never below 0.
 */
static void test_charge(void **state)
{
	const struct scope_keys k = { "s1", "a1" };
	const struct limit *lim;
	struct fx f;

	fx_init(&f, P_MINUTE, T0 + 10);
	lim = rule_limit(f.p, "t", 0);
	assert_int_equal(limits__left(f.l, lim, &k), 2);
	assert_int_equal(limits__charge(f.l, lim, &k, 0), 0);
	assert_int_equal(limits__left(f.l, lim, &k), 1);
	expect_ok(&f, "t", &k);
	assert_int_equal(limits__left(f.l, lim, &k), 0);
	/* unconditional: over max, and left stays at 0 */
	assert_int_equal(limits__charge(f.l, lim, &k, T0 + 9), 0);
	assert_int_equal(limits__used(f.l, lim, &k), 3);
	assert_int_equal(limits__left(f.l, lim, &k), 0);
	expect_limit(&f, "t", &k, "/tools/t/limits/0", 50);
	/* a use from the window before is not counted in this one */
	f.clock.now = T0 + 61;
	assert_int_equal(limits__charge(f.l, lim, &k, T0 + 59), -ESTALE);
	assert_int_equal(limits__used(f.l, lim, &k), 0);
	/* a time ahead of the clock counts now; 0 is now */
	assert_int_equal(limits__charge(f.l, lim, &k, T0 + 200), 0);
	assert_int_equal(limits__used(f.l, lim, &k), 1);
	/* scope grant: one budget whatever the session */
	assert_int_equal(limits__used(f.l, lim, &(struct scope_keys){ "s2", "a1" }), 1);
	fx_fini(&f);
}

static void test_real_clock(void **state)
{
	struct limits *l = limits__new(NULL, NULL);
	uint64_t t = (uint64_t)time(NULL), n;

	assert_non_null(l);
	n = limits__now(l);
	assert_true(n >= t && n <= t + 5);
	limits__free(l);
	limits__free(NULL);
}

/*
 * A budget's name keys it in the host-wide table (its SHA-256), which processes of different
 * versions share: limits__budget_name writes what the snprintf it replaced wrote, byte for byte,
 * for every scope, named and unnamed counters, missing keys, long names and truncation.
 */
static int name_ref(char *out, size_t size, const struct limit *lim, const struct scope_keys *k)
{
	const char *policy = k && k->policy ? k->policy : "", *key = "";
	bool unnamed = !strcmp(lim->counter, lim->ptr);
	size_t plen = strlen(policy);

	switch (lim->scope) {
	case SCOPE_SESSION:
		key = k && k->session ? k->session : "-";
		break;
	case SCOPE_AGENT:
		key = k && k->agent ? k->agent : "-";
		break;
	case SCOPE_GRANT:
		return snprintf(out, size, "%s\x1f%s\x1f%u\x1f%zu:%s\x1f%zu:%s%s", lim->counter,
				policy__scope_name(lim->scope), lim->window_s, unnamed ? plen : 0,
				unnamed ? policy : "", plen, policy,
				k && k->server ? k->server : "");
	default:
		break;
	}
	return snprintf(out, size, "%s\x1f%s\x1f%u\x1f%zu:%s\x1f%s", lim->counter,
			policy__scope_name(lim->scope), lim->window_s, unnamed ? plen : 0,
			unnamed ? policy : "", key);
}

static void test_budget_name_stable(void **state)
{
	static char long_key[700];
	const enum scope scopes[] = { SCOPE_SESSION, SCOPE_GRANT, SCOPE_AGENT, SCOPE_GLOBAL };
	const uint32_t windows[] = { 1, 60, 3600, 86400, 4294967295u };
	const struct scope_keys keys[] = {
		{ "s-1", "1000:/usr/bin/node", "/etc/mcpfence/p.json", "name:srv" },
		{ NULL, NULL, NULL, NULL },
		{ "", "", "", "" },
		{ "\x1f", "0:\x1f", "/p\x1f", "cmd:3:a b" },
		{ long_key, long_key, long_key, long_key },
	};
	char ptr[] = "/tools/t/limits/0", named[] = "orders", *counters[] = { named, ptr };
	const size_t sizes[] = { 0, 1, 5, 17, 64, 512, 2048 };
	char got[2048], want[2048];

	memset(long_key, 'k', sizeof(long_key) - 1);
	for (size_t sc = 0; sc < sizeof(scopes) / sizeof(scopes[0]); sc++)
		for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++)
			for (size_t c = 0; c < 2; c++)
				for (size_t k = 0; k <= sizeof(keys) / sizeof(keys[0]); k++)
					for (size_t z = 0; z < sizeof(sizes) / sizeof(sizes[0]);
					     z++) {
						struct limit lim = { .ptr = ptr,
								     .counter = counters[c],
								     .window_s = windows[w],
								     .max = 1,
								     .scope = scopes[sc] };
						const struct scope_keys *kp =
							k < sizeof(keys) / sizeof(keys[0]) ?
								&keys[k] :
								NULL;
						int a, b;

						memset(got, 'x', sizeof(got));
						memset(want, 'x', sizeof(want));
						a = limits__budget_name(got, sizes[z], &lim, kp);
						b = name_ref(want, sizes[z], &lim, kp);
						assert_int_equal(a, b);
						assert_memory_equal(got, want, sizeof(got));
					}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_window_edges),
		cmocka_unit_test(test_window_alignment),
		cmocka_unit_test(test_long_windows),
		cmocka_unit_test(test_fired_limit),
		cmocka_unit_test(test_shared_counter),
		cmocka_unit_test(test_unnamed_counters),
		cmocka_unit_test(test_scopes),
		cmocka_unit_test(test_scope_key_tricks),
		cmocka_unit_test(test_all_or_none),
		cmocka_unit_test(test_counts_once),
		cmocka_unit_test(test_default_allow_limits),
		cmocka_unit_test(test_no_limits),
		cmocka_unit_test(test_release),
		cmocka_unit_test(test_release_all),
		cmocka_unit_test(test_gc),
		cmocka_unit_test(test_many_budgets),
		cmocka_unit_test(test_rate_limit_shorthands),
		cmocka_unit_test(test_seed_shape),
		cmocka_unit_test(test_reload_keeps_budget),
		cmocka_unit_test(test_charge),
		cmocka_unit_test(test_real_clock),
		cmocka_unit_test(test_budget_name_stable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
