// SPDX-License-Identifier: Apache-2.0
/*
 * bench/decide: decisions per second for a 1,000-rule policy (900 exact names, 100 globs) on
 * one thread, for exact names, names matching globs and unlisted names (default), against a
 * plain hash lookup of the same names in the same run. Prints; never fails on timing.
 *   build/bench/decide [seconds-per-case]   (default 0.5)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "policy.h"
#include "decide.h"
#include "limits.h"

#define NEXACT 900
#define NGLOB 100
#define NQUERY 1024 /* names per case, cycled */
#define TARGET 1e6  /* exact-name decisions per second */

/* The baseline: FNV-1a and linear probing over the same 1,000 names. */
struct table {
	const char **slot;
	size_t mask;
};

static uint64_t fnv(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static int table__init(struct table *t, char **names, size_t n)
{
	size_t size = 16;

	while (size < 2 * n)
		size <<= 1;
	t->slot = calloc(size, sizeof(*t->slot));
	if (!t->slot)
		return -ENOMEM;
	t->mask = size - 1;
	for (size_t i = 0; i < n; i++) {
		size_t h = fnv(names[i]) & t->mask;

		while (t->slot[h])
			h = (h + 1) & t->mask;
		t->slot[h] = names[i];
	}
	return 0;
}

static const char *table__find(const struct table *t, const char *name)
{
	size_t h = fnv(name) & t->mask;

	while (t->slot[h]) {
		if (!strcmp(t->slot[h], name))
			return t->slot[h];
		h = (h + 1) & t->mask;
	}
	return NULL;
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uint64_t sink;

/* Calls per CPU second of decide__call over names, for about secs of CPU time. */
static double run_engine(const struct policy *p, char **names, double secs)
{
	uint64_t n = 0, acc = 0;
	double t0 = cpu_now(), t;
	struct decision d;

	do {
		for (size_t i = 0; i < NQUERY; i++) {
			decide__call(p, names[i], NULL, &d);
			acc += d.verdict + (unsigned char)d.pointer[1];
		}
		n += NQUERY;
		t = cpu_now() - t0;
	} while (t < secs);
	sink += acc;
	return (double)n / t;
}

/* The same with limits__reserve after each allowed decision (one grant budget per rule). */
static double run_engine_limits(const struct policy *p, struct limits *l, char **names, double secs)
{
	uint64_t n = 0, acc = 0;
	double t0 = cpu_now(), t;
	struct reservation res;
	struct decision d;

	do {
		for (size_t i = 0; i < NQUERY; i++) {
			decide__call(p, names[i], NULL, &d);
			if (d.verdict != VERDICT_DENY)
				acc += (uint64_t)limits__reserve(l, p, d.rule, NULL, &res, &d);
			acc += d.verdict;
		}
		n += NQUERY;
		t = cpu_now() - t0;
	} while (t < secs);
	sink += acc;
	return (double)n / t;
}

static double run_table(const struct table *tb, char **names, double secs)
{
	uint64_t n = 0, acc = 0;
	double t0 = cpu_now(), t;

	do {
		for (size_t i = 0; i < NQUERY; i++)
			acc += table__find(tb, names[i]) != NULL;
		n += NQUERY;
		t = cpu_now() - t0;
	} while (t < secs);
	sink += acc;
	return (double)n / t;
}

/* A frozen clock and max 10^9: no budget runs out while we measure. */
static uint64_t frozen_clock(void *ctx)
{
	return 1700000000;
}

static char *build_policy(char **rule_names)
{
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return NULL;
	len += (size_t)snprintf(buf + len, cap - len,
				"{\"version\":\"1\",\"default\":\"deny\",\"tools\":{");
	for (size_t i = 0; i < NEXACT + NGLOB; i++) {
		/* every tenth exact rule carries a limit, as real policies do */
		if (i < NEXACT && i % 10 == 0)
			len += (size_t)snprintf(buf + len, cap - len,
						"%s\"%s\":{\"limits\":[{\"counter\":\"c%zu\","
						"\"window\":\"minute\",\"max\":1000000000}]}",
						i ? "," : "", rule_names[i], i);
		else
			len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\":{}", i ? "," : "",
						rule_names[i]);
	}
	snprintf(buf + len, cap - len, "}}");
	return buf;
}

static void report(const char *what, double engine, double base)
{
	printf("  %-26s %12.0f decisions/s  %7.1f ns   hash lookup %12.0f/s %6.1f ns   "
	       "engine/hash time %5.2fx\n",
	       what, engine, 1e9 / engine, base, 1e9 / base, base / engine);
}

int main(int argc, char **argv)
{
	static const char *const verbs[] = { "get",  "list",  "put",	"delete", "search",
					     "read", "write", "create", "update", "close" };
	char *rule_names[NEXACT + NGLOB], *exact[NQUERY], *globbed[NQUERY], *unlisted[NQUERY];
	double secs = argc > 1 ? atof(argv[1]) : 0.5;
	char err[POLICY_ERR_LEN], *json;
	struct policy *p;
	struct limits *l;
	struct table tb;
	double e, b;

	if (secs <= 0)
		secs = 0.5;
	/* MCP-like names: BinanceFuturesCloseListenKey, github_list_issues */
	for (size_t i = 0; i < NEXACT; i++)
		if (asprintf(&rule_names[i], "service%zu_%s_resource_%zu", i % 37, verbs[i % 10],
			     i) < 0)
			return 1;
	for (size_t i = 0; i < NGLOB; i++)
		if (asprintf(&rule_names[NEXACT + i], "plugin%zu_%s_*", i, verbs[i % 10]) < 0)
			return 1;
	for (size_t i = 0; i < NQUERY; i++) {
		size_t g = (i * 7919) % NGLOB;

		exact[i] = rule_names[(i * 7919) % NEXACT];
		if (asprintf(&globbed[i], "plugin%zu_%s_item_%zu", g, verbs[g % 10], i) < 0 ||
		    asprintf(&unlisted[i], "service%zu_%s_unknown_%zu", i % 37, verbs[i % 10], i) <
			    0)
			return 1;
	}
	json = build_policy(rule_names);
	if (!json)
		return 1;
	p = policy__parse(json, strlen(json), "bench.json", err);
	free(json);
	if (!p) {
		fprintf(stderr, "bench/decide: %s\n", err);
		return 1;
	}
	if (table__init(&tb, rule_names, NEXACT + NGLOB))
		return 1;
	l = limits__new(frozen_clock, NULL);
	if (!l)
		return 1;

	/* sanity: the cases measure what they say */
	for (size_t i = 0; i < NQUERY; i++) {
		struct decision d;

		decide__call(p, exact[i], NULL, &d);
		if (d.verdict != VERDICT_ALLOW || !d.rule || d.rule->glob)
			return fprintf(stderr, "bench/decide: %s: no exact rule\n", exact[i]), 1;
		decide__call(p, globbed[i], NULL, &d);
		if (d.verdict != VERDICT_ALLOW || !d.rule || !d.rule->glob)
			return fprintf(stderr, "bench/decide: %s: no glob rule\n", globbed[i]), 1;
		decide__call(p, unlisted[i], NULL, &d);
		if (d.kind != KIND_DEFAULT)
			return fprintf(stderr, "bench/decide: %s: not unlisted\n", unlisted[i]), 1;
	}

	printf("bench/decide: %d rules (%d exact, %d globs), one thread, %.2f s CPU per case\n",
	       NEXACT + NGLOB, NEXACT, NGLOB, secs);
	e = run_engine(p, exact, secs);
	b = run_table(&tb, exact, secs);
	report("(a) exact names", e, b);
	printf("  target >= %.0f exact-name decisions/s: %s\n", TARGET,
	       e >= TARGET ? "met" : "NOT met");
	report("(b) names matching globs", run_engine(p, globbed, secs),
	       run_table(&tb, globbed, secs));
	report("(c) unlisted (default deny)", run_engine(p, unlisted, secs),
	       run_table(&tb, unlisted, secs));
	report("(a') exact + limits__reserve", run_engine_limits(p, l, exact, secs), b);

	limits__free(l);
	free(tb.slot);
	policy__free(p);
	for (size_t i = 0; i < NEXACT + NGLOB; i++)
		free(rule_names[i]);
	for (size_t i = 0; i < NQUERY; i++) {
		free(globbed[i]);
		free(unlisted[i]);
	}
	return 0;
}
