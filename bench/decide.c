// SPDX-License-Identifier: Apache-2.0
/*
 * bench/decide: decisions per second for a 1,000-rule policy (900 exact names, 100 globs) on
 * one thread, for exact names, names matching globs and unlisted names (default), against a
 * plain hash lookup of the same names in the same run. The machine is shared and noisy: each
 * round measures every case right after its own hash lookup, the cases alternate, and the
 * ratios of all rounds are given as min/median/max. Prints; never fails on timing.
 *   build/bench/decide [seconds-per-case [rounds]]   (default 0.1, 9)
 */
#include <errno.h>
#include <stdbool.h>
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
#define RATIO 3.0   /* every case at most this many times the hash lookup's time */
#define ROUNDS_MAX 99

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

enum bench_case {
	CASE_EXACT = 0,
	CASE_GLOB = 1,
	CASE_UNLISTED = 2,
	CASE_LIMITS = 3,
	NCASES = 4,
};

static const char *const case_names[NCASES] = { "(a) exact names", "(b) names matching globs",
						"(c) unlisted (default deny)",
						"(a') exact + limits__reserve" };

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v; min, median and max into out. */
static void spread(double *v, int n, double out[3])
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	out[0] = v[0];
	out[1] = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	out[2] = v[n - 1];
}

/* ns per call of engine and hash, and their ratio, over the rounds; true when the target is met */
static bool report(const char *what, double *engine_ns, double *hash_ns, double *ratio, int n)
{
	double e[3], h[3], r[3];

	spread(engine_ns, n, e);
	spread(hash_ns, n, h);
	spread(ratio, n, r);
	printf("  %-29s engine %6.1f/%6.1f/%6.1f ns  hash %5.1f/%5.1f/%5.1f ns  "
	       "engine/hash %5.2f/%5.2f/%5.2fx  %s\n",
	       what, e[0], e[1], e[2], h[0], h[1], h[2], r[0], r[1], r[2],
	       r[1] <= RATIO ? "met" : "MISSED");
	return r[1] <= RATIO;
}

int main(int argc, char **argv)
{
	static const char *const verbs[] = { "get",  "list",  "put",	"delete", "search",
					     "read", "write", "create", "update", "close" };
	char *rule_names[NEXACT + NGLOB], *exact[NQUERY], *globbed[NQUERY], *unlisted[NQUERY];
	static double engine_ns[NCASES][ROUNDS_MAX], hash_ns[NCASES][ROUNDS_MAX],
		ratio[NCASES][ROUNDS_MAX];
	double secs = argc > 1 ? atof(argv[1]) : 0.1, exact_ns[3];
	int rounds = argc > 2 ? atoi(argv[2]) : 9;
	char err[POLICY_ERR_LEN], *json;
	struct policy *p;
	struct limits *l;
	struct table tb;
	bool met = true;

	if (secs <= 0)
		secs = 0.1;
	if (rounds < 1 || rounds > ROUNDS_MAX)
		rounds = 9;
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

	printf("bench/decide: %d rules (%d exact, %d globs), one thread, %.2f s CPU per case, "
	       "%d rounds, cases alternated\n",
	       NEXACT + NGLOB, NEXACT, NGLOB, secs, rounds);
	for (int i = 0; i < rounds; i++) {
		char **names[NCASES] = { exact, globbed, unlisted, exact };

		for (int c = 0; c < NCASES; c++) {
			double b = run_table(&tb, names[c], secs);
			double e = c == CASE_LIMITS ? run_engine_limits(p, l, names[c], secs) :
						      run_engine(p, names[c], secs);

			engine_ns[c][i] = 1e9 / e;
			hash_ns[c][i] = 1e9 / b;
			ratio[c][i] = b / e;
		}
	}
	printf("  min/median/max over the rounds; a case meets the target on its median\n");
	for (int c = 0; c < NCASES; c++)
		met &= report(case_names[c], engine_ns[c], hash_ns[c], ratio[c], rounds);
	spread(engine_ns[CASE_EXACT], rounds, exact_ns);
	printf("  every case <= %.0fx the hash lookup: %s; >= %.0f exact-name decisions/s: %s\n",
	       RATIO, met ? "met" : "MISSED", TARGET,
	       1e9 / exact_ns[1] >= TARGET ? "met" : "MISSED");

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
