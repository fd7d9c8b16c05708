// SPDX-License-Identifier: Apache-2.0
/*
 * Who may approve a held call (approval__authorize: peer uid and groups, the rule's approvers,
 * the client's uid), what an approval is bound to (the digest, the ID), and the approvers as
 * a policy writes them (names resolved at load; one that does not resolve never matches).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "approval.h"
#include "policy.h"

#define CLIENT 1000  /* the agent's uid: its client spawned the gateway */
#define GATEWAY 1000 /* the gateway's, the same as a rule */

static struct policy *parse(const char *text)
{
	char err[POLICY_ERR_LEN];
	struct policy *p = policy__parse(text, strlen(text), "test.json", err);

	if (!p)
		fail_msg("policy: %s", err);
	return p;
}

static const char approvers_policy[] =
	"{\"version\": \"1\", \"default\": \"deny\", \"tools\": {"
	"\"refund\": {\"action\": \"approve\", \"approval\": {\"approvers\": "
	"{\"users\": [1001, \"mcpfence-no-such-user\"], \"groups\": [2000, "
	"\"mcpfence-no-such-group\"]}}},"
	"\"selfie\": {\"action\": \"approve\", \"approval\": {\"approvers\": "
	"{\"users\": [1000], \"groups\": [3000]}}},"
	"\"agentgroup\": {\"action\": \"approve\", \"approval\": {\"approvers\": "
	"{\"groups\": [1000]}}},"
	"\"rootonly\": {\"action\": \"approve\"}}}";

struct auth_case {
	const char *tool;
	uid_t uid;
	gid_t gid;
	gid_t groups[3];
	size_t ngroups;
	uid_t client, gateway;
	int want;	 /* 0 or -EPERM */
	const char *how; /* a part of what approval__authorize says */
};

static void test_authorize(void **state)
{
	static const struct auth_case cases[] = {
		/* root always, even as the client's uid */
		{ "rootonly", 0, 0, { 0 }, 0, CLIENT, GATEWAY, 0, "root" },
		{ "refund", 0, 0, { 0 }, 0, 0, 0, 0, "root" },
		/* no approvers: root only */
		{ "rootonly", 1001, 1001, { 0 }, 0, CLIENT, GATEWAY, -EPERM, "names no approvers" },
		{ "rootonly",
		  1001,
		  1001,
		  { 2000 },
		  1,
		  CLIENT,
		  GATEWAY,
		  -EPERM,
		  "names no approvers" },
		/* a listed uid, by number */
		{ "refund",
		  1001,
		  1001,
		  { 0 },
		  0,
		  CLIENT,
		  GATEWAY,
		  0,
		  "in approvers.users as uid 1001" },
		/* a member of a listed group: primary or supplementary */
		{ "refund", 1500, 2000, { 0 }, 0, CLIENT, GATEWAY, 0, "member of group 2000" },
		{ "refund",
		  1500,
		  1500,
		  { 7, 2000 },
		  2,
		  CLIENT,
		  GATEWAY,
		  0,
		  "member of group 2000" },
		/* neither */
		{ "refund",
		  1500,
		  1500,
		  { 7, 8 },
		  2,
		  CLIENT,
		  GATEWAY,
		  -EPERM,
		  "not in approvers.users, not a member of approvers.groups" },
		/* the client's uid: never through a group, even one listed */
		{ "refund",
		  CLIENT,
		  2000,
		  { 2000 },
		  1,
		  CLIENT,
		  GATEWAY,
		  -EPERM,
		  "uid of the client that made the call" },
		{ "agentgroup",
		  CLIENT,
		  CLIENT,
		  { 0 },
		  0,
		  CLIENT,
		  GATEWAY,
		  -EPERM,
		  "uid of the client that made the call" },
		/* the gateway's own uid, when it differs from the client's: the same */
		{ "refund",
		  1200,
		  2000,
		  { 0 },
		  0,
		  CLIENT,
		  1200,
		  -EPERM,
		  "uid this gateway runs as" },
		/* unless approvers.users names that uid */
		{ "selfie",
		  CLIENT,
		  CLIENT,
		  { 0 },
		  0,
		  CLIENT,
		  GATEWAY,
		  0,
		  "in approvers.users as uid 1000" },
		{ "selfie", 1500, 3000, { 0 }, 0, CLIENT, GATEWAY, 0, "member of group 3000" },
		/* a client of unknown uid ((uid_t)-1) excludes nobody else */
		{ "refund", 1001, 1001, { 0 }, 0, (uid_t)-1, GATEWAY, 0, "uid 1001" },
		{ "refund",
		  GATEWAY,
		  2000,
		  { 0 },
		  0,
		  (uid_t)-1,
		  GATEWAY,
		  -EPERM,
		  "uid this gateway runs as" },
	};
	struct policy *p = parse(approvers_policy);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct auth_case *c = &cases[i];
		const struct rule *r = policy__lookup(p, c->tool);
		struct approval_peer peer = { .pid = 42,
					      .uid = c->uid,
					      .gid = c->gid,
					      .groups = c->groups,
					      .ngroups = c->ngroups };
		char how[400];
		int got = approval__authorize(&r->approvers, &peer, c->client, c->gateway, how,
					      sizeof(how));

		if (got != c->want || !strstr(how, c->how))
			fail_msg("case %zu (%s, uid %u): got %d \"%s\", want %d \"...%s...\"", i,
				 c->tool, (unsigned)c->uid, got, how, c->want, c->how);
	}
	policy__free(p);
}

/* No approvers at all (a rule gone since the call was held): root only. */
static void test_authorize_no_rule(void **state)
{
	struct approval_peer peer = { .uid = 1001, .gid = 2000 };
	char how[400];

	assert_int_equal(approval__authorize(NULL, &peer, CLIENT, GATEWAY, how, sizeof(how)),
			 -EPERM);
	peer.uid = 0;
	assert_int_equal(approval__authorize(NULL, &peer, CLIENT, GATEWAY, how, sizeof(how)), 0);
}

/* A name that does not resolve here never matches, whatever id the peer has. */
static void test_unresolved_never_matches(void **state)
{
	struct policy *p = parse(approvers_policy);
	const struct rule *r = policy__lookup(p, "refund");
	char how[400], name[300];

	assert_int_equal(r->approvers.nusers, 2);
	assert_true(r->approvers.users[0].resolved);
	assert_null(r->approvers.users[0].name);
	assert_false(r->approvers.users[1].resolved);
	assert_string_equal(r->approvers.users[1].name, "mcpfence-no-such-user");
	assert_false(r->approvers.groups[1].resolved);
	for (uid_t uid = 1; uid < 70000; uid += 997) {
		struct approval_peer peer = { .uid = uid, .gid = uid };

		if (uid == 1001)
			continue;
		assert_int_equal(approval__authorize(&r->approvers, &peer, CLIENT, GATEWAY, how,
						     sizeof(how)),
				 -EPERM);
	}
	assert_string_equal(
		policy__approver_name(&r->approvers.users[1], false, name, sizeof(name)),
		"user mcpfence-no-such-user (not on this host: never matches)");
	policy__free(p);
}

/* Names resolve when the policy is loaded: root and nobody are there on every Debian. */
static void test_names_resolve(void **state)
{
	struct policy *p = parse(
		"{\"version\": \"1\", \"default\": \"deny\", \"tools\": {\"t\": {\"action\": "
		"\"approve\", \"approval\": {\"approvers\": {\"users\": [\"root\", \"nobody\"], "
		"\"groups\": [\"root\", \"nogroup\"]}, \"via\": [\"operator\"]}}}}");
	const struct rule *r = policy__lookup(p, "t");
	struct approval_peer peer = { .uid = 65534, .gid = 65534 };
	char how[400], who[1024];

	assert_int_equal(r->approval_via, VIA_OPERATOR);
	assert_true(r->approvers.users[0].resolved);
	assert_int_equal(r->approvers.users[0].id, 0);
	assert_int_equal(r->approvers.users[1].id, 65534);
	assert_int_equal(r->approvers.groups[1].id, 65534);
	assert_int_equal(
		approval__authorize(&r->approvers, &peer, CLIENT, GATEWAY, how, sizeof(how)), 0);
	assert_string_equal(how, "in approvers.users as uid 65534 (nobody)");
	approval__who(&r->approvers, r->approval_via, who, sizeof(who));
	assert_string_equal(who, "root, uid 0 (root), uid 65534 (nobody), members of group 0 "
				 "(root), members of group 65534 (nogroup)");
	approval__who(NULL, VIA_CLIENT, who, sizeof(who));
	assert_non_null(strstr(who, "client only"));
	policy__free(p);
}

static void test_via_defaults(void **state)
{
	struct policy *p =
		parse("{\"version\": \"1\", \"default\": \"deny\", \"tools\": {"
		      "\"a\": {\"action\": \"approve\"},"
		      "\"b\": {\"action\": \"approve\", \"approval\": {\"via\": "
		      "[\"client\"]}},"
		      "\"c\": {\"action\": \"require_approval\", \"approval\": {\"via\": "
		      "[\"operator\", \"client\"]}}}}");

	assert_int_equal(policy__lookup(p, "a")->approval_via, VIA_CLIENT | VIA_OPERATOR);
	assert_int_equal(policy__lookup(p, "b")->approval_via, VIA_CLIENT);
	assert_int_equal(policy__lookup(p, "c")->approval_via, VIA_CLIENT | VIA_OPERATOR);
	policy__free(p);
}

/* SHA-256 over the canonical compact JSON of [tool, arguments]: keys sorted, no spaces. */
static void test_digest(void **state)
{
	json_t *args = json_pack("{s:s, s:i}", "b", "x", "a", 1);
	json_t *odd = json_pack("{s:[i, f, n, b]}", "k", 1, 2.5, 1);
	char hex[65], again[65];

	assert_int_equal(approval__digest("echo", args, hex), 0);
	assert_string_equal(hex,
			    "7c3e1e95c4a17dfece035030e546089eb95bf240be1dad26570a2fc65af8f06c");
	/* absent arguments are {} */
	assert_int_equal(approval__digest("echo", NULL, hex), 0);
	assert_string_equal(hex,
			    "116ac5c85f249f7df359ec2dca688580756cfa8056f2265112272b2a95616e25");
	assert_int_equal(approval__digest("h\xc3\xa9", odd, hex), 0);
	assert_string_equal(hex,
			    "69a10ef4d37a952273e4d597b982154743ab98cdf78779618cf096c5eba58c81");
	/* another tool, the same arguments: another digest */
	assert_int_equal(approval__digest("echo2", args, again), 0);
	assert_string_not_equal(hex, again);
	json_decref(args);
	json_decref(odd);
}

static void test_parse_id(void **state)
{
	char token[APPROVAL_TOKEN_HEX + 1], digest[APPROVAL_ID_DIGEST_HEX + 1];
	static const char *const bad[] = {
		"",
		"4711-1",				 /* the former PID-N */
		"4711-0badc0de",			 /* no digest */
		"4711-0badc0de-7c3e1e95c4a17dfe-",	 /* trailing */
		"4711-0badc0de-7c3e1e95c4a17df",	 /* short digest */
		"4711-0BADC0DE-7c3e1e95c4a17dfe",	 /* upper case */
		"0-0badc0de-7c3e1e95c4a17dfe",		 /* pid 0 */
		"04711-0badc0de-7c3e1e95c4a17dfe",	 /* leading zero */
		"-1-0badc0de-7c3e1e95c4a17dfe",		 /* negative */
		"99999999999-0badc0de-7c3e1e95c4a17dfe", /* too big */
		"4711-0badc0dg-7c3e1e95c4a17dfe",	 /* not hex */
		"4711 0badc0de 7c3e1e95c4a17dfe",
	};
	pid_t pid = 0;

	assert_int_equal(approval__parse_id("4711-0badc0de-7c3e1e95c4a17dfe", &pid, token, digest),
			 0);
	assert_int_equal(pid, 4711);
	assert_string_equal(token, "0badc0de");
	assert_string_equal(digest, "7c3e1e95c4a17dfe");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (approval__parse_id(bad[i], &pid, token, digest) != -EINVAL)
			fail_msg("\"%s\" was taken for an ID", bad[i]);
}

/* Every held call gets an ID of our pid, a token no other held call has, and its digest. */
static void test_ids_of_held_calls(void **state)
{
	struct approvals q;
	struct approval *a[40];
	char want[65];

	approvals__init(&q);
	for (int i = 0; i < 40; i++) {
		json_t *msg = json_pack("{s:s, s:i, s:s, s:{s:s, s:{s:s, s:i}}}", "jsonrpc", "2.0",
					"id", i, "method", "tools/call", "params", "name", "echo",
					"arguments", "b", "x", "a", 1);

		a[i] = approvals__add(&q, "echo", msg, NULL, 0, 60, 1000000);
		assert_non_null(a[i]);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(a[i]->token, a[j]->token);
	}
	assert_int_equal(approval__digest("echo", a[0]->args, want), 0);
	assert_string_equal(a[0]->digest, want);
	snprintf(want, sizeof(want), "%d-%s-7c3e1e95c4a17dfe", (int)getpid(), a[7]->token);
	assert_string_equal(a[7]->id, want);
	approvals__fini(&q);
}

/*
 * The client's answer to our question: only accept with the box checked approves; an error
 * goes to the operator when the rule lets one decide, else nobody can be asked, saying why.
 */
static void test_elicit_answer(void **state)
{
	static const struct {
		const char *answer;
		unsigned via;
		bool to_operator;
		enum approval_state state;
	} cases[] = {
		{ "{\"result\": {\"action\": \"accept\", \"content\": {\"approve\": true}}}",
		  VIA_CLIENT, false, APPROVAL_APPROVED },
		{ "{\"result\": {\"action\": \"accept\", \"content\": {\"approve\": false}}}",
		  VIA_CLIENT, false, APPROVAL_DENIED },
		{ "{\"result\": {\"action\": \"accept\", \"content\": {\"approve\": \"true\"}}}",
		  VIA_CLIENT, false, APPROVAL_DENIED },
		{ "{\"result\": {\"action\": \"accept\"}}", VIA_CLIENT, false, APPROVAL_DENIED },
		{ "{\"result\": {\"action\": \"decline\", \"content\": {\"approve\": true}}}",
		  VIA_CLIENT, false, APPROVAL_DENIED },
		{ "{\"result\": {\"action\": \"cancel\"}}", VIA_CLIENT, false, APPROVAL_DENIED },
		{ "{\"error\": {\"code\": -32601, \"message\": \"no\"}}", VIA_CLIENT | VIA_OPERATOR,
		  true, APPROVAL_WAITING },
		{ "{\"error\": {\"code\": -32601, \"message\": \"no\"}}", VIA_CLIENT, false,
		  APPROVAL_UNASKABLE },
	};
	struct rule r = { 0 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct approval a = { .elicit_id = strdup("mcpfence-approval-1") };
		json_t *msg = json_loads(cases[i].answer, 0, NULL);

		r.approval_via = cases[i].via;
		assert_non_null(msg);
		assert_int_equal(approval__elicit_answer(&a, msg, &r), cases[i].to_operator);
		if (a.state != cases[i].state)
			fail_msg("%s: state %d, not %d", cases[i].answer, a.state, cases[i].state);
		if (json_object_get(msg, "result")) {
			assert_string_equal(a.by, "elicitation");
			assert_non_null(a.elicit_id);
		} else {
			assert_null(
				a.elicit_id); /* the question was answered: nothing to take back */
		}
		if (a.state == APPROVAL_UNASKABLE)
			assert_non_null(strstr(a.why, "the client could not ask its user (no)"));
		free(a.elicit_id);
		json_decref(msg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_authorize),
		cmocka_unit_test(test_authorize_no_rule),
		cmocka_unit_test(test_unresolved_never_matches),
		cmocka_unit_test(test_names_resolve),
		cmocka_unit_test(test_via_defaults),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_parse_id),
		cmocka_unit_test(test_ids_of_held_calls),
		cmocka_unit_test(test_elicit_answer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
