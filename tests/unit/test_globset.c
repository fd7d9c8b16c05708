// SPDX-License-Identifier: Apache-2.0
/*
 * The indexed lookups (globset, policy__lookup, policy__hidden) against the plain scans they
 * replace, kept here as the reference: exact names first, then every glob in file order with
 * policy__glob_match, the first that matches; hide entries in order. Hand-written corners
 * first, then many generated policies and names from a small alphabet, so that prefixes,
 * suffixes and overlaps are shared often, some of them longer than the words keys are hashed
 * in, with '?' against UTF-8 and against broken UTF-8.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "globset.h"
#include "policy.h"

#define NAME_MAX_BYTES 128

/* The lookup as it was: the reference. */
static const struct rule *ref_lookup(const struct policy *p, const char *tool)
{
	for (size_t i = 0; i < p->nrules; i++)
		if (!p->rules[i].glob && !strcmp(p->rules[i].name, tool))
			return &p->rules[i];
	for (size_t i = 0; i < p->nrules; i++)
		if (p->rules[i].glob && policy__glob_match(p->rules[i].name, tool))
			return &p->rules[i];
	return NULL;
}

static long ref_hidden(const struct policy *p, const char *tool)
{
	for (size_t i = 0; i < p->nhide; i++)
		if (policy__glob_match(p->hide[i], tool))
			return (long)i;
	return -1;
}

static long ref_first(const char *const *pats, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (policy__glob_match(pats[i], name))
			return (long)i;
	return -1;
}

static struct policy *parse(const char *json)
{
	char err[POLICY_ERR_LEN];
	struct policy *p = policy__parse(json, strlen(json), "test.json", err);

	if (!p)
		fail_msg("%s", err);
	return p;
}

static void assert_same(const struct policy *p, const char *tool)
{
	const struct rule *want = ref_lookup(p, tool), *got = policy__lookup(p, tool);

	if (got != want)
		fail_msg("\"%s\": lookup gives %s, the scan %s", tool, got ? got->name : "none",
			 want ? want->name : "none");
	if (policy__hidden(p, tool) != ref_hidden(p, tool))
		fail_msg("\"%s\": hidden gives %ld, the scan %ld", tool, policy__hidden(p, tool),
			 ref_hidden(p, tool));
}

static void test_corners(void **state)
{
	static const char *const names[] = {
		"",
		"a",
		"ab",
		"abc",
		"read_file",
		"read_",
		"Read_file",
		"x_internal",
		"x_internals",
		"_internal",
		"debug_",
		"debug_\xc3\xa9",
		"debug_\xc3\xa9\xc3\xa9",
		"debug_\x80",
		"debug_\xc3",
		"aba",
		"abba",
		"ab*ba",
		"a\\b",
		"a\\*",
		"[ab]",
		"a",
		"*",
		"?",
		"a*b?c",
		"zzz",
		"\xe6\x97\xa5_x",
		"q_x",
		"q_xx",
		"xx",
	};
	/*
	 * An earlier glob and a later exact name both match read_file: the exact name wins.
	 * Overlapping globs: the earlier of a* and ab* wins whichever prefix is longer. Globs
	 * with no prefix, no suffix, neither; a glob whose prefix and suffix overlap in short
	 * names; '\\' and '[' are bytes like any other; case matters.
	 */
	struct policy *p = parse(
		"{\"version\":\"1\",\"default\":\"deny\","
		"\"hide\":[\"debug_?\",\"zzz\",\"*_internal\",\"debug_*\"],"
		"\"tools\":{\"read_*\":{\"action\":\"deny\"},\"read_file\":{},\"ab*\":{},\"a*\":{},"
		"\"ab*ba\":{},\"*_internal\":{},\"a\\\\*\":{},\"[ab]\":{},\"?_x\":{},\"*x*\":{},"
		"\"a*b?c\":{},\"Read_*\":{},\"?\":{},\"*\":{\"action\":\"approve\"}}}");

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_same(p, names[i]);
	assert_string_equal(policy__lookup(p, "read_file")->name, "read_file");
	assert_string_equal(policy__lookup(p, "read_")->name, "read_*");
	assert_string_equal(policy__lookup(p, "abc")->name, "ab*");
	assert_string_equal(policy__lookup(p, "abba")->name, "ab*");
	assert_string_equal(policy__lookup(p, "a\\b")->name, "a*");
	assert_string_equal(policy__lookup(p, "[ab]")->name, "[ab]");
	assert_string_equal(policy__lookup(p, "\xe6\x97\xa5_x")->name, "?_x");
	assert_string_equal(policy__lookup(p, "q_xx")->name, "*x*");
	assert_string_equal(policy__lookup(p, "Read_file")->name, "Read_*");
	assert_string_equal(policy__lookup(p, "z")->name, "?");
	assert_string_equal(policy__lookup(p, "zz")->name, "*");
	assert_int_equal(policy__hidden(p, "debug_\xc3\xa9"), 0);
	assert_int_equal(policy__hidden(p, "debug_\xc3\xa9\xc3\xa9"), 3);
	assert_int_equal(policy__hidden(p, "zzz"), 1);
	assert_int_equal(policy__hidden(p, "x_internal"), 2);
	assert_int_equal(policy__hidden(p, "zzzz"), -1);
	policy__free(p);

	/* no globs, no hide entries; and a policy of globs alone */
	p = parse("{\"version\":\"1\",\"default\":\"allow\",\"tools\":{\"a\":{}}}");
	assert_same(p, "a");
	assert_same(p, "b");
	policy__free(p);
	p = parse("{\"version\":\"1\",\"default\":\"allow\",\"hide\":[\"*\"],"
		  "\"tools\":{\"*\":{}}}");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_same(p, names[i]);
	policy__free(p);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* xorshift64: the same cases on every run */
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

/* Appends pieces from set (one piece: one character, or broken UTF-8) until about len bytes. */
static void gen(char *buf, size_t max, const char *const *set, unsigned nset, unsigned len)
{
	size_t n = strlen(buf);

	for (unsigned i = 0; i < len; i++) {
		const char *piece = set[rnd(nset)];

		if (n + strlen(piece) >= max)
			break;
		memcpy(buf + n, piece, strlen(piece) + 1);
		n += strlen(piece);
	}
}

static const char *const pat_set[] = { "a", "b", "_", "*", "?", "\xc3\xa9", "a", "b", "*" };
static const char *const name_set[] = { "a", "b",    "_",    "\xc3\xa9", "\xe6\x97\xa5",
					"a", "\x80", "\xc3", "*",	 "?" };

/* A name that a pattern matches, most of the time: its wildcards filled in at random. */
static void fill(char *buf, size_t max, const char *pat)
{
	buf[0] = 0;
	for (; *pat; pat++) {
		size_t n = strlen(buf);

		if (*pat == '*')
			gen(buf, max, name_set, 5, rnd(4));
		else if (*pat == '?')
			gen(buf, max, name_set, 8, 1);
		else if (n + 1 < max)
			buf[n] = *pat, buf[n + 1] = 0;
	}
}

/* A name for the lookup: a filled-in pattern, maybe cut or extended, or random bytes. */
static void pick_name(char *buf, size_t max, const char *const *pats, size_t npats)
{
	unsigned how = rnd(6);

	if (npats && how < 4) {
		fill(buf, max, pats[rnd((unsigned)npats)]);
		if (how == 2 && buf[0])
			buf[rnd((unsigned)strlen(buf))] = 0;
		else if (how == 3)
			gen(buf, max, name_set, 10, 1 + rnd(2));
	} else {
		buf[0] = 0;
		gen(buf, max, name_set, 10, rnd(8));
	}
}

static void test_generated_sets(void **state)
{
	char pats_buf[40][NAME_MAX_BYTES], name[NAME_MAX_BYTES];
	const char *pats[40];

	for (int round = 0; round < 2000; round++) {
		size_t n = rnd(40);
		struct globset *g;

		for (size_t i = 0; i < n; i++) {
			pats_buf[i][0] = 0;
			gen(pats_buf[i], NAME_MAX_BYTES, pat_set, 9, rnd(round % 4 ? 7 : 40));
			pats[i] = pats_buf[i];
		}
		g = globset__new(pats, n);
		assert_non_null(g);
		for (int j = 0; j < 50; j++) {
			pick_name(name, sizeof(name), pats, n);
			if (globset__first(g, name, strlen(name)) != ref_first(pats, n, name))
				fail_msg("round %d: \"%s\": %ld, the scan %ld", round, name,
					 globset__first(g, name, strlen(name)),
					 ref_first(pats, n, name));
		}
		globset__free(g);
	}
}

/* Policies of unique rule names (exact and globs mixed) and hide lists, as JSON. */
static void test_generated_policies(void **state)
{
	char names[60][NAME_MAX_BYTES], name[NAME_MAX_BYTES];
	const char *pats[60];

	for (int round = 0; round < 300; round++) {
		json_t *root = json_pack("{s:s, s:s}", "version", "1", "default", "deny");
		json_t *tools = json_object(), *hide = json_array();
		size_t n = 1 + rnd(59), nhide = rnd(4), npats = 0;
		struct policy *p;
		char *json;

		for (size_t i = 0; i < n; i++) {
			names[i][0] = 0;
			/* exact names as often as globs, some longer to share prefixes */
			gen(names[i], NAME_MAX_BYTES, pat_set, rnd(2) ? 9 : 3,
			    1 + rnd(round % 3 ? 8 : 30));
			json_object_set_new(tools, names[i], json_object());
		}
		for (size_t i = 0; i < n; i++)
			pats[npats++] = names[i];
		for (size_t i = 0; i < nhide; i++)
			json_array_append_new(hide, json_string(names[rnd((unsigned)n)]));
		json_object_set_new(root, "tools", tools);
		if (nhide)
			json_object_set_new(root, "hide", hide);
		else
			json_decref(hide);
		json = json_dumps(root, JSON_PRESERVE_ORDER);
		assert_non_null(json);
		p = parse(json);
		for (int j = 0; j < 100; j++) {
			pick_name(name, sizeof(name), pats, npats);
			assert_same(p, name);
		}
		policy__free(p);
		free(json);
		json_decref(root);
	}
}

/* The policy's own rule names, and longer lists than the generated ones. */
static void test_many_rules(void **state)
{
	static const char *const verbs[] = { "get", "list", "put", "delete", "search" };
	json_t *root = json_pack("{s:s, s:s, s:[s, s]}", "version", "1", "default", "deny", "hide",
				 "*_debug", "x?_*");
	json_t *tools = json_object();
	char rule[NAME_MAX_BYTES], name[NAME_MAX_BYTES], *json;
	struct policy *p;

	for (size_t i = 0; i < 1000; i++) {
		const char *v = verbs[i % 5];

		/* exact names, prefix globs, suffix globs, globs with neither, interleaved */
		if (i % 10 == 3)
			snprintf(rule, sizeof(rule), "s%zu_%s_*", i % 37, v);
		else if (i % 10 == 5)
			snprintf(rule, sizeof(rule), "*_%s_%zu", v, i % 13);
		else if (i % 100 == 7)
			snprintf(rule, sizeof(rule), "*%s?%zu*", v, i);
		else if (i % 10 == 9) /* one prefix each verb, keyed by their suffixes */
			snprintf(rule, sizeof(rule), "gh_%s*_item%zu", v, i % 300);
		else
			snprintf(rule, sizeof(rule), "s%zu_%s_%zu", i % 37, v, i);
		json_object_set_new(tools, rule, json_object());
	}
	json_object_set_new(root, "tools", tools);
	json = json_dumps(root, JSON_PRESERVE_ORDER);
	assert_non_null(json);
	p = parse(json);
	for (size_t i = 0; i < p->nrules; i++) {
		fill(name, sizeof(name), p->rules[i].name);
		assert_same(p, name);
		assert_same(p, p->rules[i].name);
	}
	for (unsigned i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "s%u_%s_%u%s", rnd(40), verbs[rnd(5)], rnd(1100),
			 rnd(3) ? "" : "_debug");
		assert_same(p, name);
		snprintf(name, sizeof(name), "gh_%s%s_item%u", verbs[rnd(5)], rnd(2) ? "_x" : "",
			 rnd(320));
		assert_same(p, name);
	}
	policy__free(p);
	free(json);
	json_decref(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corners),
		cmocka_unit_test(test_generated_sets),
		cmocka_unit_test(test_generated_policies),
		cmocka_unit_test(test_many_rules),
	};

	return cmocka_run_group_tests_name("globset", tests, NULL, NULL);
}
