// SPDX-License-Identifier: Apache-2.0
/*
 * Approval state of the 2026-07-28 revision (mrtr.h): what the gateway hands out in an
 * input_required result, and what a retry must bring back for the call to go on. A retry is
 * built here as a client (or an agent writing its own JSON-RPC) would.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "mrtr.h"

static const char *YES =
	"{\"mcpfence-approval\":{\"action\":\"accept\",\"content\":{\"approve\":true}}}";

/* The params of a retry: args, the responses (JSON text) and the state. */
static json_t *retry(const char *args, const char *responses, const char *state)
{
	json_t *p = json_pack("{s:o}", "arguments", json_loads(args, 0, NULL));

	if (responses)
		json_object_set_new(p, "inputResponses", json_loads(responses, 0, NULL));
	if (state)
		json_object_set_new(p, "requestState", json_string(state));
	return p;
}

/* The state of an input_required result asking about tool with params, at now_s. */
static char *ask(struct mrtr *m, const char *tool, json_t *params, uint64_t now_s)
{
	json_t *r = mrtr__ask(m, tool, params, "allow?", 60, now_s);
	json_t *q;
	char *s;

	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "resultType")), "input_required");
	q = json_object_get(json_object_get(r, "inputRequests"), MRTR_KEY);
	assert_string_equal(json_string_value(json_object_get(q, "method")), "elicitation/create");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(q, "params"), "message")),
		"allow?");
	s = strdup(json_string_value(json_object_get(r, "requestState")));
	json_decref(r);
	return s;
}

static enum mrtr_answer answer(struct mrtr *m, const char *tool, json_t *p, uint64_t now_s)
{
	char why[200];
	enum mrtr_answer a = mrtr__answer(m, tool, p, now_s, why, sizeof(why));

	assert_true(a == MRTR_APPROVED ? why[0] == 0 : why[0] != 0);
	return a;
}

static void test_approved_once(void **state)
{
	struct mrtr m;
	json_t *first = retry("{\"a\":1}", NULL, NULL), *p;
	char *s;

	assert_int_equal(mrtr__init(&m), 0);
	s = ask(&m, "sum", first, 1000);
	assert_true(!strncmp(s, MRTR_PREFIX, strlen(MRTR_PREFIX)));
	p = retry("{\"a\":1}", YES, s);
	assert_true(mrtr__ours(p));
	assert_int_equal(answer(&m, "sum", p, 1010), MRTR_APPROVED);
	/* restored: nothing of ours goes to the server */
	assert_null(json_object_get(p, "requestState"));
	assert_null(json_object_get(p, "inputResponses"));
	json_decref(p);
	/* the same retry again */
	p = retry("{\"a\":1}", YES, s);
	assert_int_equal(answer(&m, "sum", p, 1011), MRTR_REPLAYED);
	json_decref(p);
	free(s);
	json_decref(first);
	mrtr__free(&m);
}

static void test_bound_to_the_call(void **state)
{
	struct mrtr m, other;
	json_t *first = retry("{\"a\":1,\"b\":[1,2]}", NULL, NULL), *p;
	char *s;

	assert_int_equal(mrtr__init(&m), 0);
	assert_int_equal(mrtr__init(&other), 0);
	s = ask(&m, "sum", first, 1000);
	/* other arguments, another tool, another gateway's key */
	p = retry("{\"a\":2,\"b\":[1,2]}", YES, s);
	assert_int_equal(answer(&m, "sum", p, 1001), MRTR_REFUSED);
	json_decref(p);
	p = retry("{\"a\":1,\"b\":[1,2]}", YES, s);
	assert_int_equal(answer(&m, "danger", p, 1001), MRTR_REFUSED);
	assert_int_equal(answer(&other, "sum", p, 1001), MRTR_REFUSED);
	json_decref(p);
	/* keys in another order are the same arguments */
	p = retry("{\"b\":[1,2],\"a\":1}", YES, s);
	assert_int_equal(answer(&m, "sum", p, 1001), MRTR_APPROVED);
	json_decref(p);
	free(s);
	json_decref(first);
	mrtr__free(&m);
	mrtr__free(&other);
}

static void test_altered_and_made_up(void **state)
{
	static const char *bad[] = {
		"mcpfence1.",
		"mcpfence1.zz.0000000000000000000000000000000000000000000000000000000000000000",
		"mcpfence1.7b7d.0000000000000000000000000000000000000000000000000000000000000000",
		"mcpfence1.7b7d.00",
	};
	struct mrtr m;
	json_t *first = retry("{}", NULL, NULL), *p;
	char *s;

	assert_int_equal(mrtr__init(&m), 0);
	s = ask(&m, "t", first, 1000);
	for (size_t i = 0; s[i]; i++) {
		char *t;

		if (i < strlen(MRTR_PREFIX))
			continue; /* not ours then: the gateway passes it to the server */
		t = strdup(s);
		t[i] = t[i] == '0' ? '1' : '0';
		p = retry("{}", YES, t);
		assert_int_not_equal(answer(&m, "t", p, 1001), MRTR_APPROVED);
		json_decref(p);
		free(t);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = retry("{}", YES, bad[i]);
		assert_int_equal(answer(&m, "t", p, 1001), MRTR_REFUSED);
		json_decref(p);
	}
	/* still good after all that */
	p = retry("{}", YES, s);
	assert_int_equal(answer(&m, "t", p, 1001), MRTR_APPROVED);
	json_decref(p);
	free(s);
	json_decref(first);
	mrtr__free(&m);
}

static void test_declined_and_expired(void **state)
{
	static const char *no[] = {
		"{\"mcpfence-approval\":{\"action\":\"decline\"}}",
		"{\"mcpfence-approval\":{\"action\":\"cancel\"}}",
		"{\"mcpfence-approval\":{\"action\":\"accept\",\"content\":{\"approve\":false}}}",
		"{\"mcpfence-approval\":{\"action\":\"accept\",\"content\":{\"approve\":\"true\"}}}",
		"{\"mcpfence-approval\":{\"action\":\"accept\"}}",
		"{\"other\":{\"action\":\"accept\",\"content\":{\"approve\":true}}}",
		"{}",
		NULL,
	};
	struct mrtr m;
	json_t *first = retry("{}", NULL, NULL), *p;

	assert_int_equal(mrtr__init(&m), 0);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		char *s = ask(&m, "t", first, 1000);

		p = retry("{}", no[i], s);
		assert_int_equal(answer(&m, "t", p, 1001), MRTR_DECLINED);
		json_decref(p);
		/* a decline uses the state up too */
		p = retry("{}", YES, s);
		assert_int_equal(answer(&m, "t", p, 1001), MRTR_REPLAYED);
		json_decref(p);
		free(s);
	}
	{
		char *s = ask(&m, "t", first, 1000);

		p = retry("{}", YES, s);
		assert_int_equal(answer(&m, "t", p, 1061), MRTR_EXPIRED);
		json_decref(p);
		free(s);
	}
	json_decref(first);
	mrtr__free(&m);
}

/* What the server carried in an earlier leg rides inside our state and is put back. */
static void test_server_state_carried(void **state)
{
	struct mrtr m;
	json_t *leg = retry("{\"x\":1}",
			    "{\"srv-q\":{\"action\":\"accept\",\"content\":{\"n\":3}}}",
			    "server-state-42"),
	       *p;
	char *s, *text;

	assert_int_equal(mrtr__init(&m), 0);
	assert_false(mrtr__ours(leg));
	s = ask(&m, "t", leg, 1000);
	/* the client's retry: the original params, our answer and our state only */
	p = retry("{\"x\":1}", YES, s);
	assert_int_equal(answer(&m, "t", p, 1001), MRTR_APPROVED);
	text = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(
		text, "{\"arguments\":{\"x\":1},\"inputResponses\":{\"srv-q\":{\"action\":"
		      "\"accept\",\"content\":{\"n\":3}}},\"requestState\":\"server-state-42\"}");
	free(text);
	json_decref(p);
	free(s);
	json_decref(leg);
	/* too much to carry: not asked */
	{
		char *big = malloc(MRTR_MAX_CARRIED + 2);
		json_t *r;

		memset(big, 'a', MRTR_MAX_CARRIED + 1);
		big[MRTR_MAX_CARRIED + 1] = 0;
		leg = retry("{}", NULL, big);
		r = mrtr__ask(&m, "t", leg, "allow?", 60, 1000);
		assert_null(r);
		assert_int_equal(errno, E2BIG);
		json_decref(leg);
		free(big);
	}
	mrtr__free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_approved_once),
		cmocka_unit_test(test_bound_to_the_call),
		cmocka_unit_test(test_altered_and_made_up),
		cmocka_unit_test(test_declined_and_expired),
		cmocka_unit_test(test_server_state_carried),
	};

	return cmocka_run_group_tests_name("approval state (2026-07-28)", tests, NULL, NULL);
}
