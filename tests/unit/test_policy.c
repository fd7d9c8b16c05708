// SPDX-License-Identifier: Apache-2.0
/*
 * Policy loading, data-driven (jq style): every tests/data/policies/invalid/X.json must be
 * refused with exactly the text in X.err (after the file name), every valid/X.json must load
 * and compile to what X.expect says (the `mcpfence check --json` view of it), and every
 * shipped policy under policies/ must load; the three seeds are their published blocks byte for
 * byte and say what was published. Then hostile files made on the fly.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "check.h"
#include "decide.h"
#include "limits.h"
#include "policy.h"

#define DATA "tests/data/policies"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = calloc(1, (size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (len)
			*len = (size_t)n;
	}
	fclose(f);
	return buf;
}

static int is_json(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 5 && !strcmp(d->d_name + n - 5, ".json");
}

/* Names of *.json in dir, sorted; returns the count. */
static int list_json(const char *dir, struct dirent ***out)
{
	return scandir(dir, out, is_json, alphasort);
}

static void test_invalid_fixtures(void **state)
{
	struct dirent **ents;
	int n = list_json(DATA "/invalid", &ents);

	assert_true(n >= 60);
	for (int i = 0; i < n; i++) {
		char path[512], errpath[512], err[POLICY_ERR_LEN], want[POLICY_ERR_LEN];
		char *expect;
		struct policy *p;
		size_t len;

		snprintf(path, sizeof(path), DATA "/invalid/%s", ents[i]->d_name);
		snprintf(errpath, sizeof(errpath), "%.*s.err", (int)strlen(path) - 5, path);
		expect = slurp(errpath, &len);
		if (!expect)
			fail_msg("%s: no expected error beside it (%s)", path, errpath);
		while (len && expect[len - 1] == '\n')
			expect[--len] = 0;
		errno = 0;
		p = policy__load(path, err);
		if (p)
			fail_msg("%s: loaded, but it is invalid", path);
		assert_int_equal(errno, EINVAL);
		snprintf(want, sizeof(want), "%s%s", path, expect);
		if (strcmp(err, want))
			fail_msg("%s:\n  got:  %s\n  want: %s", path, err, want);
		free(expect);
		free(ents[i]);
	}
	free(ents);
}

static void test_valid_fixtures(void **state)
{
	struct dirent **ents;
	int n = list_json(DATA "/valid", &ents), compared = 0;

	assert_true(n >= 5);
	for (int i = 0; i < n; i++) {
		char path[512], expath[512], err[POLICY_ERR_LEN];
		struct policy *p;
		json_t *want, *got;
		json_error_t jerr;

		snprintf(path, sizeof(path), DATA "/valid/%s", ents[i]->d_name);
		snprintf(expath, sizeof(expath), "%.*s.expect", (int)strlen(path) - 5, path);
		p = policy__load(path, err);
		if (!p)
			fail_msg("%s: refused: %s", path, err);
		want = json_load_file(expath, 0, &jerr);
		if (want) {
			got = check__policy_json(ents[i]->d_name, p);
			if (!json_equal(want, got)) {
				char *s = json_dumps(got, JSON_INDENT(1));

				fail_msg("%s: compiled to something else than %s:\n%s", path,
					 expath, s);
			}
			json_decref(got);
			json_decref(want);
			compared++;
		}
		policy__free(p);
		free(ents[i]);
	}
	free(ents);
	assert_true(compared >= 5);
}

static void test_shipped_policies(void **state)
{
	struct dirent **ents;
	int n = list_json("policies", &ents);

	assert_true(n >= 6);
	for (int i = 0; i < n; i++) {
		char path[512], err[POLICY_ERR_LEN];
		struct policy *p;

		snprintf(path, sizeof(path), "policies/%s", ents[i]->d_name);
		p = policy__load(path, err);
		if (!p)
			fail_msg("%s: refused: %s", path, err);
		policy__free(p);
		free(ents[i]);
	}
	free(ents);
}

/*
 * The seeds, as their pages publish them (PolicyLayer's policy.json, one page per tool): the
 * files under policies/ are those blocks byte for byte, here as the pages print them.
 */
static const struct seed {
	const char *file, *tool, *text;
	const char *counter; /* NULL: the tool is allowed with {}, no limit */
	uint64_t max;
} seeds[] = {
	{ "policies/binance-futures.json", "BinanceFuturesCloseListenKey",
	  "{\n"
	  "  \"version\": \"1\",\n"
	  "  \"default\": \"deny\",\n"
	  "  \"tools\": {\n"
	  "    \"BinanceFuturesCloseListenKey\": {\n"
	  "      \"limits\": [\n"
	  "        {\n"
	  "          \"counter\": \"binancefuturescloselistenkey_rate\",\n"
	  "          \"window\": \"minute\",\n"
	  "          \"max\": 10,\n"
	  "          \"scope\": \"grant\"\n"
	  "        }\n"
	  "      ]\n"
	  "    }\n"
	  "  }\n"
	  "}\n",
	  "binancefuturescloselistenkey_rate", 10 },
	{ "policies/binance-us.json", "binance_us_close_listen_key",
	  "{\n"
	  "  \"version\": \"1\",\n"
	  "  \"default\": \"deny\",\n"
	  "  \"tools\": {\n"
	  "    \"binance_us_close_listen_key\": {\n"
	  "      \"limits\": [\n"
	  "        {\n"
	  "          \"counter\": \"binance_us_close_listen_key_rate\",\n"
	  "          \"window\": \"minute\",\n"
	  "          \"max\": 30,\n"
	  "          \"scope\": \"grant\"\n"
	  "        }\n"
	  "      ]\n"
	  "    }\n"
	  "  }\n"
	  "}\n",
	  "binance_us_close_listen_key_rate", 30 },
	{ "policies/streams-cleanup.json", "cleanup_all_streams",
	  "{\n"
	  "  \"version\": \"1\",\n"
	  "  \"default\": \"deny\",\n"
	  "  \"tools\": {\n"
	  "    \"cleanup_all_streams\": {}\n"
	  "  }\n"
	  "}\n",
	  NULL, 0 },
};

/* Byte for byte the published blocks: no key reordered, added, reformatted or abbreviated. */
static void test_seed_policies_verbatim(void **state)
{
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		size_t len;
		char *got = slurp(seeds[i].file, &len);

		assert_non_null(got);
		if (len != strlen(seeds[i].text) || memcmp(got, seeds[i].text, len))
			fail_msg("%s is not the published policy.json:\n%s", seeds[i].file, got);
		free(got);
	}
}

static uint64_t seed_now(void *ctx)
{
	return *(uint64_t *)ctx;
}

/*
 * Parsed as published: default deny, one exact rule that allows its tool, and for the two
 * Binance ones one limit (their counter, a minute, 10 or 30, scope grant) and nothing else.
 * Then decided: any other tool is the default's; the limit lets max calls of a window through
 * and denies the next; cleanup_all_streams with {} is allowed, unlimited.
 */
static void test_seed_policies(void **state)
{
	static const char *const others[] = { "anything_else",
					      "BinanceFuturesCloseListenKey",
					      "binance_us_close_listen_key",
					      "cleanup_all_streams",
					      "binancefuturescloselistenkey",
					      "BINANCE_US_CLOSE_LISTEN_KEY",
					      "cleanup_all_streams_now",
					      "cleanup_all_stream" };
	const struct scope_keys keys = { "session", "0:/usr/bin/agent", "/policies/seed",
					 "server" };
	char err[POLICY_ERR_LEN], ptr[256];

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		const struct seed *s = &seeds[i];
		struct policy *p = policy__load(s->file, err);
		uint64_t now = 1800000000 + 45; /* 15 s before a minute ends */
		struct limits *l = limits__new(seed_now, &now);
		json_t *args = json_object();
		struct reservation res;
		struct decision d;
		const struct rule *r;
		uint64_t n = s->counter ? s->max : 100;

		if (!p)
			fail_msg("%s: refused: %s", s->file, err);
		assert_non_null(l);
		assert_int_equal(p->def, ACTION_DENY);
		assert_false(p->deny_all);
		assert_int_equal(p->nhide, 0);
		assert_int_equal(p->nall_limits, 0);
		assert_false(p->kernel_unparsed_allow);
		assert_false(p->audit_values);
		assert_int_equal(p->nrules, 1);
		r = &p->rules[0];
		assert_string_equal(r->name, s->tool);
		snprintf(ptr, sizeof(ptr), "/tools/%s", s->tool);
		assert_string_equal(r->ptr, ptr);
		assert_false(r->glob);
		assert_int_equal(r->action, ACTION_ALLOW);
		assert_null(r->reason);
		assert_int_equal(r->nrequire, 0);
		assert_int_equal(r->ndeny_if, 0);
		assert_ptr_equal(policy__lookup(p, s->tool), r);
		if (s->counter) {
			assert_int_equal(r->nlimits, 1);
			assert_string_equal(r->limits[0].counter, s->counter);
			assert_int_equal(r->limits[0].window_s, 60);
			assert_int_equal(r->limits[0].max, s->max);
			assert_int_equal(r->limits[0].scope, SCOPE_GRANT);
			snprintf(ptr, sizeof(ptr), "/tools/%s/limits/0", s->tool);
			assert_string_equal(r->limits[0].ptr, ptr);
		} else {
			assert_int_equal(r->nlimits, 0);
		}

		/* the tool, with {}: allowed, max times in a window (unlimited: 100 of 100) */
		for (uint64_t k = 0; k < n; k++) {
			decide__call(p, s->tool, args, &d);
			assert_int_equal(d.verdict, VERDICT_ALLOW);
			assert_ptr_equal(d.rule, r);
			if (limits__reserve(l, p, r, &keys, &res, &d))
				fail_msg("%s: call %" PRIu64 " of %" PRIu64 " denied: %s", s->file,
					 k + 1, n, d.reason);
		}
		if (s->counter) {
			assert_int_equal(limits__reserve(l, p, r, &keys, &res, &d), -EDQUOT);
			assert_int_equal(d.kind, KIND_LIMIT);
			assert_string_equal(d.pointer, ptr);
			assert_int_equal(d.retry_after_s, 15);
			now += 15; /* the next window: max again */
			decide__call(p, s->tool, args, &d);
			assert_int_equal(limits__reserve(l, p, r, &keys, &res, &d), 0);
		}
		/* anything else, the other seeds' tools and near misses of its own: default deny */
		for (size_t k = 0; k < sizeof(others) / sizeof(others[0]); k++) {
			if (!strcmp(others[k], s->tool))
				continue;
			assert_null(policy__lookup(p, others[k]));
			decide__call(p, others[k], args, &d);
			assert_int_equal(d.verdict, VERDICT_DENY);
			assert_int_equal(d.kind, KIND_DEFAULT);
			assert_string_equal(d.pointer, "(default deny)");
		}
		json_decref(args);
		limits__free(l);
		policy__free(p);
	}
}

static char *write_tmp(const char *data, size_t len)
{
	char *path = strdup("/tmp/mcpfence-policy-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_hostile_files(void **state)
{
	const size_t big = 10u << 20;
	char err[POLICY_ERR_LEN], want[POLICY_ERR_LEN];
	char *buf = malloc(big), *path;
	struct policy *p;

	/* 10 MB: refused by size, from a file and from memory, before any parsing */
	assert_non_null(buf);
	memset(buf, ' ', big);
	memcpy(buf, "{\"version\": \"1\", \"default\": \"allow\"}", 36);
	path = write_tmp(buf, big);
	p = policy__load(path, err);
	assert_null(p);
	assert_int_equal(errno, EFBIG);
	snprintf(want, sizeof(want), "%s: file is %zu bytes; a policy is at most %u", path, big,
		 POLICY_MAX_BYTES);
	assert_string_equal(err, want);
	unlink(path);
	free(path);
	assert_null(policy__parse(buf, big, "mem", err));
	assert_string_equal(err, "mem: /: file is 10485760 bytes; a policy is at most 4194304");

	/* nesting 1,000,000 deep: jansson's depth bound answers, no stack overflow */
	memset(buf, '[', 1000000);
	assert_null(policy__parse(buf, 1000000, "deep", err));
	assert_string_equal(err, "deep:1:2049: maximum parsing depth reached near '['");

	/* random bytes */
	srand(7);
	for (size_t i = 0; i < 4096; i++)
		buf[i] = (char)(rand() & 0xff);
	assert_null(policy__parse(buf, 4096, "noise", err));
	assert_true(!strncmp(err, "noise:1:", 8));
	free(buf);

	/* not a file, no file */
	assert_null(policy__load("tests", err));
	assert_string_equal(err, "tests: not a regular file");
	assert_null(policy__load("tests/data/policies/does-not-exist.json", err));
	assert_int_equal(errno, ENOENT);
	assert_string_equal(err,
			    "tests/data/policies/does-not-exist.json: No such file or directory");
}

/*
 * Mutations of every valid policy (bit flips, truncations, byte insertions): each either loads
 * or is refused with a message that starts with its name. Under ASan/valgrind this is where a
 * half-built policy would leak or double-free.
 */
static void test_mutations(void **state)
{
	static const char *const files[] = { "policies/payments-approval.json",
					     "policies/filesystem-readonly.json",
					     DATA "/valid/windows-all-forms.json",
					     DATA "/valid/conditions-all-ops.json" };
	unsigned seed = 12345;
	size_t loaded = 0, refused = 0;

	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		size_t len;
		char *orig = slurp(files[f], &len);

		assert_non_null(orig);
		for (int round = 0; round < 400; round++) {
			char *m = malloc(len + 1), err[POLICY_ERR_LEN];
			size_t mlen = len;
			struct policy *p;

			memcpy(m, orig, len);
			for (int k = 0; k < 1 + round % 4; k++) {
				size_t at = rand_r(&seed) % len;

				switch (rand_r(&seed) % 3) {
				case 0:
					m[at] ^= (char)(1u << (rand_r(&seed) % 8));
					break;
				case 1:
					mlen = at;
					break;
				default:
					m[at] = "{}[]\",:0-e\\"[rand_r(&seed) % 11];
				}
			}
			p = policy__parse(m, mlen, "mut", err);
			if (p) {
				loaded++;
				policy__free(p);
			} else {
				refused++;
				assert_true(!strncmp(err, "mut:", 4));
			}
			free(m);
		}
		free(orig);
	}
	assert_true(refused > 0);
	print_message("mutations: %zu loaded, %zu refused\n", loaded, refused);
}

static void test_no_policy_denies_all(void **state)
{
	struct policy *p = policy__deny_all();

	assert_non_null(p);
	assert_true(p->deny_all);
	assert_int_equal(p->def, ACTION_DENY);
	assert_null(policy__lookup(p, "echo"));
	policy__free(p);
}

static void test_glob(void **state)
{
	assert_true(policy__glob_match("*", ""));
	assert_true(policy__glob_match("*", "anything"));
	assert_true(policy__glob_match("delete_*", "delete_"));
	assert_true(policy__glob_match("delete_*", "delete_repo"));
	assert_false(policy__glob_match("delete_*", "undelete_repo"));
	assert_true(policy__glob_match("?ead_*", "read_file"));
	assert_false(policy__glob_match("?ead_*", "ead_file"));
	assert_true(policy__glob_match("a*b*c", "axxbyyc"));
	assert_false(policy__glob_match("a*b*c", "axxbyy"));
	assert_true(policy__glob_match("*_internal", "x_internal"));
	assert_false(policy__glob_match("*_internal", "x_internals"));
	assert_false(policy__glob_match("exact", "exactly"));
	/* '?' is one character, not one byte: hide ["debug_?"] must hide debug_é */
	assert_true(policy__glob_match("debug_?", "debug_\xc3\xa9"));
	assert_true(policy__glob_match("debug_?", "debug_\xe6\x97\xa5"));
	assert_false(policy__glob_match("debug_?", "debug_\xc3\xa9\xc3\xa9"));
	assert_true(policy__glob_match("?_x", "\xf0\x9f\x94\x92_x"));
	/* pathological pattern stays linear-ish: many stars against a long miss */
	char s[4096];

	memset(s, 'a', sizeof(s) - 1);
	s[sizeof(s) - 1] = 0;
	assert_false(policy__glob_match("*a*a*a*a*a*a*a*a*a*a*b", s));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid_fixtures),
		cmocka_unit_test(test_valid_fixtures),
		cmocka_unit_test(test_shipped_policies),
		cmocka_unit_test(test_seed_policies),
		cmocka_unit_test(test_seed_policies_verbatim),
		cmocka_unit_test(test_hostile_files),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_no_policy_denies_all),
		cmocka_unit_test(test_glob),
	};

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
