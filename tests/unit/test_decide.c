// SPDX-License-Identifier: Apache-2.0
/*
 * Decisions, table-driven: the policy's decision order (README: The policy) (hide, rule lookup or default, action deny,
 * deny_if/require, approval) and every condition operator. Policies are inline JSON written
 * with single quotes (turned into double quotes before parsing) so that the tables stay
 * readable; no policy or argument below contains a single quote of its own.
 */
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

static char *dq(const char *s)
{
	char *out = strdup(s);

	assert_non_null(out);
	for (char *p = out; *p; p++)
		if (*p == '\'')
			*p = '"';
	return out;
}

static struct policy *parse(const char *text)
{
	char err[POLICY_ERR_LEN];
	char *json = dq(text);
	struct policy *p = policy__parse(json, strlen(json), "inline.json", err);

	if (!p)
		fail_msg("policy does not parse: %s\n%s", err, json);
	free(json);
	return p;
}

/* NULL text: no arguments at all (the engine treats them as {}). */
static json_t *args_of(const char *text)
{
	json_error_t jerr;
	char *json;
	json_t *a;

	if (!text)
		return NULL;
	json = dq(text);
	a = json_loads(json, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!a)
		fail_msg("arguments do not parse: %s: %s", jerr.text, json);
	free(json);
	return a;
}

struct drow {
	const char *policy;
	const char *tool;
	const char *args; /* JSON text, NULL for none */
	enum verdict verdict;
	enum deny_kind kind;
	const char *rule;    /* name of the matching rule, NULL for none */
	const char *pointer; /* exact */
	const char *reason;  /* substring, NULL: not checked */
};

static void check_row(const struct policy *p, const struct drow *r, size_t i)
{
	struct decision d;
	json_t *a = args_of(r->args);

	memset(&d, 0xa5, sizeof(d)); /* decide__call must set every field it reports */
	decide__call(p, r->tool, a, &d);
	json_decref(a);
	if (d.verdict != r->verdict || d.kind != r->kind || strcmp(d.pointer, r->pointer) ||
	    (r->reason && !strstr(d.reason, r->reason)) ||
	    (r->rule ? !d.rule || strcmp(d.rule->name, r->rule) : d.rule != NULL))
		fail_msg("row %zu: tool \"%.60s\" args %s\n"
			 "  want %s/%s rule %s at %s reason ~\"%s\"\n"
			 "  got  %s/%s rule %s at %s reason \"%s\"",
			 i, r->tool ? r->tool : "(null)", r->args ? r->args : "(none)",
			 decide__verdict_name(r->verdict), decide__kind_name(r->kind),
			 r->rule ? r->rule : "-", r->pointer, r->reason ? r->reason : "",
			 decide__verdict_name(d.verdict), decide__kind_name(d.kind),
			 d.rule ? d.rule->name : "-", d.pointer, d.reason);
	if (d.verdict != VERDICT_DENY && d.kind != KIND_NONE)
		fail_msg("row %zu: a %s carries kind %s", i, decide__verdict_name(d.verdict),
			 decide__kind_name(d.kind));
	if (d.retry_after_s != 0)
		fail_msg("row %zu: decide__call set retry_after_s %llu", i,
			 (unsigned long long)d.retry_after_s);
}

static void run_rows(const struct drow *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct policy *p = parse(rows[i].policy);

		check_row(p, &rows[i], i);
		policy__free(p);
	}
}

#define V1 "'version':'1',"

/* hide, lookup order, default, action deny, approval */
#define P_HIDE                                                           \
	"{" V1 "'default':'allow','hide':['secret','debug_*','drop_*']," \
	"'tools':{'drop_table':{},'debug_*':{'action':'approve'}}}"
#define P_HIDE_ALL "{" V1 "'default':'allow','hide':['*'],'tools':{'read_file':{}}}"
#define P_EXACT_GLOB                                                                            \
	"{" V1 "'default':'deny','tools':{'read_*':{'action':'deny','reason':'use read_file'}," \
	"'read_file':{}}}"
#define P_GLOB_ORDER                                                                          \
	"{" V1 "'default':'deny','tools':{'ab*':{},'a*':{'action':'deny','reason':'second'}," \
	"'*':{'action':'deny','reason':'catch-all'}}}"
#define P_GLOB_ORDER2 \
	"{" V1 "'default':'allow','tools':{'a*':{'action':'deny','reason':'first'},'ab*':{}}}"
#define P_GLOBS                                                                  \
	"{" V1 "'default':'deny','tools':{'file_?':{},'get_*_info':{},'?x?':{}," \
	"'*_safe':{}}}"
#define P_DENY                                                                \
	"{" V1 "'default':'allow','tools':{'drop_table':{'action':'deny'},"   \
	"'rm':{'action':'deny','reason':'schema changes go through review'}," \
	"'rmdir':{'action':'deny','on_deny':'ask the operator'},"             \
	"'read_file':{'description':'allowed'}}}"
#define P_APPROVE                                                              \
	"{" V1 "'default':'deny','tools':{'delete_file':{'action':'approve'}," \
	"'wipe':{'action':'require_approval','approval_timeout':'10m'},"       \
	"'delete_*':{'action':'approve','approval':{'timeout':'2m'}},"         \
	"'push':{'action':'approve',"                                          \
	"  'deny_if':[{'path':'args.force','op':'eq','value':true}],"          \
	"  'require':[{'path':'args.branch','op':'regex','value':'^feature/'}]}}}"
#define P_ORDER                                                           \
	"{" V1 "'default':'deny','tools':{'w':{"                          \
	"'require':[{'path':'args.path','op':'regex','value':'^/tmp/'},"  \
	"           {'path':'args.size','op':'lte','value':100}],"        \
	"'deny_if':[{'path':'args.force','op':'eq','value':true},"        \
	"           {'path':'args.path','op':'contains','value':'..'}]}," \
	"'w2':{'reason':'writes stay in /tmp','require':"                 \
	"  [{'path':'args.path','op':'regex','value':'^/tmp/'}]}}}"
#define P_ESC                                                                                      \
	"{" V1 "'default':'deny','tools':{'fs/read':{'action':'deny'},'a~b':{'action':'approve'}," \
	"'~1':{'action':'deny'},'ns/*':{'action':'approve'},"                                      \
	"'x/~y':{'require':[{'path':'args.a','op':'exists','value':true}],"                        \
	"        'deny_if':[{'path':'args.b','op':'exists','value':true}]}}}"
#define P_EMPTY_ALLOW "{" V1 "'default':'allow'}"
#define P_EMPTY_DENY "{" V1 "'default':'deny','tools':{}}"
#define P_REQ_ARGS                                                        \
	"{" V1 "'default':'deny','tools':{'t':{},'r':{'require':"         \
	"[{'path':'args.a','op':'exists','value':true}]},'n':{'deny_if':" \
	"[{'path':'args.a','op':'exists','value':false}]}}}"

static const struct drow decide_rows[] = {
	/* hide: globs, first entry named, beats an allow rule and an approve rule */
	{ P_HIDE, "secret", NULL, VERDICT_DENY, KIND_HIDDEN, NULL, "/hide/0", "is hidden" },
	{ P_HIDE, "secret2", NULL, VERDICT_ALLOW, KIND_NONE, NULL, "(default allow)", NULL },
	{ P_HIDE, "debug_dump", NULL, VERDICT_DENY, KIND_HIDDEN, NULL, "/hide/1", "debug_dump" },
	{ P_HIDE, "debug_", NULL, VERDICT_DENY, KIND_HIDDEN, NULL, "/hide/1", NULL },
	{ P_HIDE, "debug", NULL, VERDICT_ALLOW, KIND_NONE, NULL, "(default allow)", NULL },
	{ P_HIDE, "drop_table", "{}", VERDICT_DENY, KIND_HIDDEN, NULL, "/hide/2", NULL },
	{ P_HIDE, "xdebug_x", NULL, VERDICT_ALLOW, KIND_NONE, NULL, "(default allow)", NULL },
	{ P_HIDE_ALL, "read_file", NULL, VERDICT_DENY, KIND_HIDDEN, NULL, "/hide/0", NULL },
	{ P_HIDE_ALL, "anything", NULL, VERDICT_DENY, KIND_HIDDEN, NULL, "/hide/0", NULL },
	{ P_HIDE_ALL, "x", "{'a':1}", VERDICT_DENY, KIND_HIDDEN, NULL, "/hide/0", NULL },

	/* exact beats glob, whatever the file order */
	{ P_EXACT_GLOB, "read_file", NULL, VERDICT_ALLOW, KIND_NONE, "read_file",
	  "/tools/read_file", NULL },
	{ P_EXACT_GLOB, "read_dir", NULL, VERDICT_DENY, KIND_RULE, "read_*", "/tools/read_*/action",
	  "use read_file" },
	{ P_EXACT_GLOB, "read_", NULL, VERDICT_DENY, KIND_RULE, "read_*", "/tools/read_*/action",
	  NULL },
	{ P_EXACT_GLOB, "read_file2", NULL, VERDICT_DENY, KIND_RULE, "read_*",
	  "/tools/read_*/action", NULL },
	{ P_EXACT_GLOB, "rea", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)",
	  "not allowed" },
	/* lookup is by exact bytes: case, spaces and glob characters in the call change nothing */
	{ P_EXACT_GLOB, "READ_FILE", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)",
	  NULL },
	{ P_EXACT_GLOB, "read_file ", NULL, VERDICT_DENY, KIND_RULE, "read_*",
	  "/tools/read_*/action", NULL },
	{ P_EXACT_GLOB, " read_file", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)",
	  NULL },
	{ P_EXACT_GLOB, "read_*", NULL, VERDICT_DENY, KIND_RULE, "read_*", "/tools/read_*/action",
	  NULL },
	{ P_EXACT_GLOB, "*", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)", NULL },

	/* globs in file order: the first that matches wins */
	{ P_GLOB_ORDER, "abc", NULL, VERDICT_ALLOW, KIND_NONE, "ab*", "/tools/ab*", NULL },
	{ P_GLOB_ORDER, "ab", NULL, VERDICT_ALLOW, KIND_NONE, "ab*", "/tools/ab*", NULL },
	{ P_GLOB_ORDER, "axe", NULL, VERDICT_DENY, KIND_RULE, "a*", "/tools/a*/action", "second" },
	{ P_GLOB_ORDER, "zzz", NULL, VERDICT_DENY, KIND_RULE, "*", "/tools/*/action", "catch-all" },
	{ P_GLOB_ORDER2, "abc", NULL, VERDICT_DENY, KIND_RULE, "a*", "/tools/a*/action", "first" },
	{ P_GLOB_ORDER2, "b", NULL, VERDICT_ALLOW, KIND_NONE, NULL, "(default allow)", NULL },

	/* ? is exactly one byte, * any run of bytes including none */
	{ P_GLOBS, "file_a", NULL, VERDICT_ALLOW, KIND_NONE, "file_?", "/tools/file_?", NULL },
	{ P_GLOBS, "file_", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)", NULL },
	{ P_GLOBS, "file_ab", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)", NULL },
	{ P_GLOBS, "get_user_info", NULL, VERDICT_ALLOW, KIND_NONE, "get_*_info",
	  "/tools/get_*_info", NULL },
	{ P_GLOBS, "get__info", NULL, VERDICT_ALLOW, KIND_NONE, "get_*_info", "/tools/get_*_info",
	  NULL },
	{ P_GLOBS, "get_a_info_b_info", NULL, VERDICT_ALLOW, KIND_NONE, "get_*_info",
	  "/tools/get_*_info", NULL },
	{ P_GLOBS, "get_user_infos", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)",
	  NULL },
	{ P_GLOBS, "get_info", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)", NULL },
	{ P_GLOBS, "axb", NULL, VERDICT_ALLOW, KIND_NONE, "?x?", "/tools/?x?", NULL },
	{ P_GLOBS, "xx", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)", NULL },
	{ P_GLOBS, "rm_safe", NULL, VERDICT_ALLOW, KIND_NONE, "*_safe", "/tools/*_safe", NULL },
	{ P_GLOBS, "rm_safe_not", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)", NULL },
	{ P_GLOBS, "_safe_safe", NULL, VERDICT_ALLOW, KIND_NONE, "*_safe", "/tools/*_safe", NULL },

	/* default */
	{ P_EMPTY_ALLOW, "anything", "{'x':[1,2]}", VERDICT_ALLOW, KIND_NONE, NULL,
	  "(default allow)", NULL },
	{ P_EMPTY_DENY, "anything", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)",
	  "tool \"anything\" is not allowed (default deny)" },

	/* action deny, with and without reason, on_deny alias; a listed {} is allowed */
	{ P_DENY, "drop_table", NULL, VERDICT_DENY, KIND_RULE, "drop_table",
	  "/tools/drop_table/action", "tool \"drop_table\" is denied" },
	{ P_DENY, "rm", "{'path':'/'}", VERDICT_DENY, KIND_RULE, "rm", "/tools/rm/action",
	  "schema changes go through review" },
	{ P_DENY, "rmdir", NULL, VERDICT_DENY, KIND_RULE, "rmdir", "/tools/rmdir/action",
	  "ask the operator" },
	{ P_DENY, "read_file", NULL, VERDICT_ALLOW, KIND_NONE, "read_file", "/tools/read_file",
	  NULL },
	{ P_DENY, "drop_tables", NULL, VERDICT_ALLOW, KIND_NONE, NULL, "(default allow)", NULL },

	/* approval: approve and require_approval, exact and glob; conditions come first */
	{ P_APPROVE, "delete_file", NULL, VERDICT_APPROVE, KIND_NONE, "delete_file",
	  "/tools/delete_file/action", NULL },
	{ P_APPROVE, "wipe", "{}", VERDICT_APPROVE, KIND_NONE, "wipe", "/tools/wipe/action", NULL },
	{ P_APPROVE, "delete_dir", NULL, VERDICT_APPROVE, KIND_NONE, "delete_*",
	  "/tools/delete_*/action", NULL },
	{ P_APPROVE, "push", "{'branch':'feature/x'}", VERDICT_APPROVE, KIND_NONE, "push",
	  "/tools/push/action", NULL },
	{ P_APPROVE, "push", "{'branch':'feature/x','force':true}", VERDICT_DENY, KIND_CONDITION,
	  "push", "/tools/push/deny_if/0", "deny_if" },
	{ P_APPROVE, "push", "{'branch':'main'}", VERDICT_DENY, KIND_CONDITION, "push",
	  "/tools/push/require/0", "require" },
	{ P_APPROVE, "push", NULL, VERDICT_DENY, KIND_CONDITION, "push", "/tools/push/require/0",
	  NULL },

	/* deny_if before require; the first failing check is the one named */
	{ P_ORDER, "w", "{'path':'/tmp/a','size':1}", VERDICT_ALLOW, KIND_NONE, "w", "/tools/w",
	  NULL },
	{ P_ORDER, "w", "{'path':'/etc/x','size':1000,'force':true}", VERDICT_DENY, KIND_CONDITION,
	  "w", "/tools/w/deny_if/0", "args.force eq true" },
	{ P_ORDER, "w", "{'path':'/tmp/../etc/x','size':1}", VERDICT_DENY, KIND_CONDITION, "w",
	  "/tools/w/deny_if/1", "args.path contains" },
	{ P_ORDER, "w", "{'path':'/etc/x','size':1000}", VERDICT_DENY, KIND_CONDITION, "w",
	  "/tools/w/require/0", "fail a require check" },
	{ P_ORDER, "w", "{'path':'/tmp/x','size':1000}", VERDICT_DENY, KIND_CONDITION, "w",
	  "/tools/w/require/1", "args.size lte 100" },
	{ P_ORDER, "w", "{'path':'/tmp/x','size':'1'}", VERDICT_DENY, KIND_CONDITION, "w",
	  "/tools/w/require/1", "cannot be checked" },
	{ P_ORDER, "w", "{'path':'/tmp/x','size':100,'force':false}", VERDICT_ALLOW, KIND_NONE, "w",
	  "/tools/w", NULL },
	/* the rule's reason replaces the generic text */
	{ P_ORDER, "w2", "{'path':'/etc/x'}", VERDICT_DENY, KIND_CONDITION, "w2",
	  "/tools/w2/require/0", "writes stay in /tmp" },

	/* JSON Pointer escaping of tool names (RFC 6901: ~ -> ~0, / -> ~1) */
	{ P_ESC, "fs/read", NULL, VERDICT_DENY, KIND_RULE, "fs/read", "/tools/fs~1read/action",
	  NULL },
	{ P_ESC, "a~b", NULL, VERDICT_APPROVE, KIND_NONE, "a~b", "/tools/a~0b/action", NULL },
	{ P_ESC, "~1", NULL, VERDICT_DENY, KIND_RULE, "~1", "/tools/~01/action", NULL },
	{ P_ESC, "fs~1read", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)", NULL },
	{ P_ESC, "ns/x", NULL, VERDICT_APPROVE, KIND_NONE, "ns/*", "/tools/ns~1*/action", NULL },
	{ P_ESC, "ns~1x", NULL, VERDICT_DENY, KIND_DEFAULT, NULL, "(default deny)", NULL },
	{ P_ESC, "x/~y", "{'a':1}", VERDICT_ALLOW, KIND_NONE, "x/~y", "/tools/x~1~0y", NULL },
	{ P_ESC, "x/~y", "{}", VERDICT_DENY, KIND_CONDITION, "x/~y", "/tools/x~1~0y/require/0",
	  NULL },
	{ P_ESC, "x/~y", "{'a':1,'b':2}", VERDICT_DENY, KIND_CONDITION, "x/~y",
	  "/tools/x~1~0y/deny_if/0", NULL },

	/* malformed calls */
	{ P_EMPTY_ALLOW, "", NULL, VERDICT_DENY, KIND_INVALID, NULL, "(invalid call)", "no tool" },
	{ P_EMPTY_ALLOW, NULL, NULL, VERDICT_DENY, KIND_INVALID, NULL, "(invalid call)", NULL },
	{ P_EMPTY_ALLOW, "t", "[]", VERDICT_DENY, KIND_INVALID, NULL, "(invalid call)",
	  "not an object" },
	{ P_EMPTY_ALLOW, "t", "[{'a':1}]", VERDICT_DENY, KIND_INVALID, NULL, "(invalid call)",
	  NULL },
	{ P_EMPTY_ALLOW, "t", "'{}'", VERDICT_DENY, KIND_INVALID, NULL, "(invalid call)", NULL },
	{ P_EMPTY_ALLOW, "t", "null", VERDICT_DENY, KIND_INVALID, NULL, "(invalid call)", NULL },
	{ P_EMPTY_ALLOW, "t", "0", VERDICT_DENY, KIND_INVALID, NULL, "(invalid call)", NULL },
	{ P_EMPTY_ALLOW, "t", "true", VERDICT_DENY, KIND_INVALID, NULL, "(invalid call)", NULL },
	{ P_HIDE_ALL, "x", "[]", VERDICT_DENY, KIND_INVALID, NULL, "(invalid call)", NULL },
	/* no arguments at all is an empty object */
	{ P_REQ_ARGS, "t", NULL, VERDICT_ALLOW, KIND_NONE, "t", "/tools/t", NULL },
	{ P_REQ_ARGS, "r", NULL, VERDICT_DENY, KIND_CONDITION, "r", "/tools/r/require/0", NULL },
	{ P_REQ_ARGS, "r", "{'a':null}", VERDICT_ALLOW, KIND_NONE, "r", "/tools/r", NULL },
	{ P_REQ_ARGS, "n", NULL, VERDICT_DENY, KIND_CONDITION, "n", "/tools/n/deny_if/0", NULL },
	{ P_REQ_ARGS, "n", "{'a':0}", VERDICT_ALLOW, KIND_NONE, "n", "/tools/n", NULL },
};

static void test_decision_order(void **state)
{
	run_rows(decide_rows, sizeof(decide_rows) / sizeof(decide_rows[0]));
}

static void test_no_policy(void **state)
{
	static const char *const tools[] = { "read_file", "anything", "*", "" };
	struct policy *p = policy__deny_all();
	json_t *a = json_object();

	assert_non_null(p);
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
		struct decision d;

		decide__call(p, tools[i], a, &d);
		assert_int_equal(d.verdict, VERDICT_DENY);
		assert_int_not_equal(d.kind, KIND_NONE);
		assert_null(d.rule);
		assert_non_null(strstr(d.reason, "no policy"));
	}
	{
		struct decision d;

		decide__call(p, "read_file", NULL, &d);
		assert_int_equal(d.verdict, VERDICT_DENY);
		assert_int_equal(d.kind, KIND_DEFAULT);
		assert_string_equal(d.pointer, "(no policy)");
	}
	assert_null(policy__lookup(p, "read_file"));
	assert_int_equal(policy__hidden(p, "read_file"), -1);
	json_decref(a);
	policy__free(p);
}

static void test_approval_settings(void **state)
{
	struct policy *p = parse(P_APPROVE);

	assert_int_equal(policy__lookup(p, "wipe")->approval_timeout_s, 600);
	assert_int_equal(policy__lookup(p, "delete_dir")->approval_timeout_s, 120);
	assert_int_equal(policy__lookup(p, "wipe")->action, ACTION_APPROVE);
	policy__free(p);
}

/* A hostile tool name: very long, with quotes and newlines; the reason stays bounded. */
static void test_long_tool_name(void **state)
{
	struct policy *p = parse("{" V1 "'default':'deny','hide':['h*']}");
	size_t n = 100000;
	char *name = malloc(n + 1);
	struct decision d;

	assert_non_null(name);
	memset(name, 'x', n);
	name[n] = 0;
	name[10] = '"';
	name[11] = '\n';
	decide__call(p, name, NULL, &d);
	assert_int_equal(d.kind, KIND_DEFAULT);
	assert_true(strlen(d.reason) < sizeof(d.reason));
	name[0] = 'h';
	decide__call(p, name, NULL, &d);
	assert_int_equal(d.kind, KIND_HIDDEN);
	assert_string_equal(d.pointer, "/hide/0");
	free(name);
	policy__free(p);
}

/*
 * The reasons and pointers written without a format are the text the formats gave: tool names
 * of every length around the 100 bytes a reason quotes, bytes that are not UTF-8, a long
 * pointer (a long rule name), cut where snprintf cut it.
 */
static void test_reason_text(void **state)
{
	char tool[300], want[DECIDE_REASON_LEN], ptr[DECIDE_PTR_LEN], json[1024], name[257];
	struct policy *p = parse("{" V1 "'default':'deny','hide':['h*'],"
				 "'tools':{'d*':{'action':'deny'},'a*':{'action':'approve'},"
				 "'o*':{}}}");
	struct policy *allow = parse("{" V1 "'default':'allow'}");
	struct decision d;

	for (size_t n = 1; n < sizeof(tool); n++) {
		static const char *const first = "hdxao";

		for (size_t i = 0; i < n; i++)
			tool[i] = "x\xc3\xa9\x80\"z"[i % 6];
		tool[n] = 0;
		for (const char *f = first; *f; f++) {
			tool[0] = *f;
			decide__call(p, tool, NULL, &d);
			if (*f == 'h')
				snprintf(want, sizeof(want), "tool \"%.100s\" is hidden by policy",
					 tool);
			else if (*f == 'd')
				snprintf(want, sizeof(want), "tool \"%.100s\" is denied", tool);
			else if (*f == 'x')
				snprintf(want, sizeof(want),
					 "tool \"%.100s\" is not allowed (default deny)", tool);
			else
				want[0] = 0;
			assert_string_equal(d.reason, want);
			assert_string_equal(d.pointer, *f == 'h' ? "/hide/0" :
						       *f == 'd' ? "/tools/d*/action" :
						       *f == 'a' ? "/tools/a*/action" :
						       *f == 'o' ? "/tools/o*" :
								   "(default deny)");
		}
		decide__call(allow, tool, NULL, &d);
		assert_string_equal(d.pointer, "(default allow)");
	}
	policy__free(p);
	policy__free(allow);

	/* a rule's pointer longer than the decision holds (a name of 256 bytes): cut as before */
	memset(name, 'r', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	snprintf(json, sizeof(json), "{" V1 "'default':'deny','tools':{'%s':{}}}", name);
	p = parse(json);
	decide__call(p, name, NULL, &d);
	/* what snprintf(ptr, sizeof(ptr), "/tools/%s", name) gives */
	memcpy(ptr, "/tools/", 7);
	memcpy(ptr + 7, name, sizeof(ptr) - 8);
	ptr[sizeof(ptr) - 1] = 0;
	assert_int_equal(d.verdict, VERDICT_ALLOW);
	assert_string_equal(d.pointer, ptr);
	policy__free(p);
}

/*
 * Conditions: each row is one {path, op, value} checked against arguments. The same condition
 * is used as a require (allowed only when it holds) and as a deny_if (allowed only when it
 * provably does not hold): COND_UNKNOWN denies both ways.
 */
struct crow {
	const char *path, *op, *value, *args;
	enum cond_result want;
};

#define T COND_TRUE
#define F COND_FALSE
#define U COND_UNKNOWN

static const struct crow cond_rows[] = {
	/* eq: JSON equality, 1 and 1.0 are the same number */
	{ "args.a", "eq", "1", "{'a':1}", T },
	{ "args.a", "eq", "1", "{'a':1.0}", T },
	{ "args.a", "eq", "1.0", "{'a':1}", T },
	{ "args.a", "eq", "1", "{'a':-0.0}", F },
	{ "args.a", "eq", "0", "{'a':-0.0}", T },
	{ "args.a", "eq", "1", "{'a':2}", F },
	{ "args.a", "eq", "1", "{}", F },
	/* a key some server reads as the path's key (it matches keys without regard to case) */
	{ "args.a", "eq", "1", "{'A':1}", U },
	{ "args.a", "neq", "1", "{'a':2,'A':1}", U },
	{ "args.a", "exists", "false", "{'A':1}", U },
	{ "args.s", "eq", "1", "{'s':1,'\u017f':2}", U },
	{ "args.path", "regex", "'^/ok/'", "{'path':'/ok/x','paTH':'/etc/passwd'}", U },
	{ "args.a.b", "eq", "1", "{'a':{'b':1,'B':2}}", U },
	{ "args.a", "eq", "1", "{'a':1,'b':2}", T },
	{ "args.a", "eq", "1", "{'a':1,'\u00e1':2}", T },
	{ "args.a", "eq", "'x'", "{'a':'x'}", T },
	{ "args.a", "eq", "'x'", "{'a':'X'}", F },
	{ "args.a", "eq", "'x'", "{'a':'x '}", F },
	{ "args.a", "eq", "null", "{'a':null}", T },
	{ "args.a", "eq", "null", "{}", F },
	{ "args.a", "eq", "false", "{'a':false}", T },
	{ "args.a", "eq", "{'k':[1,2]}", "{'a':{'k':[1,2]}}", T },
	{ "args.a", "eq", "{'k':[1,2]}", "{'a':{'k':[2,1]}}", F },
	{ "args.a", "eq", "[1,2]", "{'a':[1,2]}", T },
	{ "args.a", "eq", "'\\u00e9'", "{'a':'\\u00e9'}", T },
	{ "args.a", "eq", "'\\u00e9'", "{'a':'e\\u0301'}", F },
	{ "args.a", "eq", "9007199254740993", "{'a':9007199254740993}", T },
	{ "args.a", "eq", "9007199254740993", "{'a':9007199254740992}", F },
	/* neq: absent is unequal to everything */
	{ "args.a", "neq", "1", "{'a':1.0}", F },
	{ "args.a", "neq", "1", "{'a':2}", T },
	{ "args.a", "neq", "1", "{}", T },
	{ "args.a", "neq", "'root'", "{'a':'root'}", F },
	/* in / not_in */
	{ "args.a", "in", "[1,'two',3.5,null]", "{'a':1}", T },
	{ "args.a", "in", "[1,'two',3.5,null]", "{'a':1.0}", T },
	{ "args.a", "in", "[1,'two',3.5,null]", "{'a':'two'}", T },
	{ "args.a", "in", "[1,'two',3.5,null]", "{'a':3.5}", T },
	{ "args.a", "in", "[1,'two',3.5,null]", "{'a':null}", T },
	{ "args.a", "in", "[1,'two',3.5,null]", "{'a':2}", F },
	{ "args.a", "in", "[1,'two',3.5,null]", "{'a':'Two'}", F },
	{ "args.a", "in", "[1,'two',3.5,null]", "{}", F },
	{ "args.a", "in", "[]", "{'a':1}", F },
	{ "args.a", "not_in", "['users','secrets']", "{'a':'logs'}", T },
	{ "args.a", "not_in", "['users','secrets']", "{'a':'secrets'}", F },
	{ "args.a", "not_in", "[1]", "{'a':1.0}", F },
	{ "args.a", "not_in", "['users','secrets']", "{}", T },
	{ "args.a", "not_in", "[]", "{'a':1}", T },
	/* lt lte gt gte: numbers only; anything else cannot be judged */
	{ "args.n", "lt", "10", "{'n':9}", T },
	{ "args.n", "lt", "10", "{'n':10}", F },
	{ "args.n", "lt", "10", "{'n':10.0}", F },
	{ "args.n", "lt", "10", "{'n':9.999}", T },
	{ "args.n", "lt", "10", "{'n':-1e300}", T },
	{ "args.n", "lt", "10", "{'n':'9'}", U },
	{ "args.n", "lt", "10", "{'n':null}", U },
	{ "args.n", "lt", "10", "{'n':true}", U },
	{ "args.n", "lt", "10", "{'n':[1]}", U },
	{ "args.n", "lt", "10", "{'n':{'v':1}}", U },
	{ "args.n", "lt", "10", "{}", F },
	{ "args.n", "lte", "10", "{'n':10}", T },
	{ "args.n", "lte", "10", "{'n':10.0}", T },
	{ "args.n", "lte", "10", "{'n':10.0001}", F },
	{ "args.n", "lte", "10.5", "{'n':10}", T },
	{ "args.n", "gt", "999", "{'n':1000}", T },
	{ "args.n", "gt", "999", "{'n':999}", F },
	{ "args.n", "gt", "999", "{'n':999.0}", F },
	{ "args.n", "gt", "999", "{'n':999.5}", T },
	{ "args.n", "gt", "999", "{'n':'999'}", U },
	{ "args.n", "gt", "999", "{'n':'1000'}", U },
	{ "args.n", "gt", "999", "{'n':'1e9'}", U },
	{ "args.n", "gt", "999", "{}", F },
	{ "args.n", "gte", "1.5", "{'n':1.5}", T },
	{ "args.n", "gte", "1.5", "{'n':1}", F },
	{ "args.n", "gte", "1.5", "{'n':2}", T },
	{ "args.n", "gte", "1", "{'n':1.0}", T },
	{ "args.n", "gt", "9007199254740992", "{'n':9007199254740993}", T },
	{ "args.n", "lt", "9223372036854775807", "{'n':9223372036854775807}", F },
	{ "args.n", "gte", "-9223372036854775808", "{'n':-9223372036854775808}", T },
	/* regex: PCRE2 in UTF mode, anchors only where written */
	{ "args.p", "regex", "'^/home/agent/work/'", "{'p':'/home/agent/work/a'}", T },
	{ "args.p", "regex", "'^/home/agent/work/'", "{'p':'/etc/passwd'}", F },
	{ "args.p", "regex", "'^/home/agent/work/'", "{'p':'/etc/x\\n/home/agent/work/'}", F },
	{ "args.p", "regex", "'^/home/agent/work/'", "{'p':' /home/agent/work/a'}", F },
	{ "args.p", "regex", "'^/home/agent/work/'", "{'p':'/HOME/agent/work/a'}", F },
	{ "args.p", "regex", "'^/home/agent/work/(?!.*\\\\.\\\\.)'",
	  "{'p':'/home/agent/work/../../etc/passwd'}", F },
	{ "args.p", "regex", "'^/home/agent/work/'", "{'p':42}", U },
	{ "args.p", "regex", "'^/home/agent/work/'", "{'p':['/home/agent/work/a']}", U },
	{ "args.p", "regex", "'^/home/agent/work/'", "{'p':{'x':'/home/agent/work/a'}}", U },
	{ "args.p", "regex", "'^/home/agent/work/'", "{'p':null}", U },
	{ "args.p", "regex", "'^/home/agent/work/'", "{}", F },
	{ "args.p", "regex", "'x'", "{'p':'axb'}", T },
	{ "args.p", "regex", "'^.{2}$'", "{'p':'\\u65e5\\u672c'}", T },
	{ "args.p", "regex", "'^.{6}$'", "{'p':'\\u65e5\\u672c'}", F },
	{ "args.p", "regex", "'^\\\\p{Han}+$'", "{'p':'\\u65e5\\u672c'}", T },
	{ "args.p", "regex", "'^caf.$'", "{'p':'caf\\u00e9'}", T },
	{ "args.p", "regex", "'\\u00e9'", "{'p':'caf\\u00e9'}", T },
	{ "args.p", "regex", "'^[^/]*$'", "{'p':'a\\u2215b'}", T },
	{ "args.p", "regex", "'(?i)^rm$'", "{'p':'RM'}", T },
	{ "args.p", "regex", "'^(a+)+$'", "{'p':'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab'}", U },
	{ "args.p", "regex", "'^(a+)+$'", "{'p':'aaaa'}", T },
	/* contains: a member of an array, or a substring of a string */
	{ "args.t", "contains", "'x'", "{'t':['a','x']}", T },
	{ "args.t", "contains", "'x'", "{'t':['a','xy']}", F },
	{ "args.t", "contains", "'x'", "{'t':[]}", F },
	{ "args.t", "contains", "'x'", "{'t':'wxy'}", T },
	{ "args.t", "contains", "'x'", "{'t':'abc'}", F },
	{ "args.t", "contains", "'x'", "{'t':5}", U },
	{ "args.t", "contains", "'x'", "{'t':{'x':1}}", U },
	{ "args.t", "contains", "'x'", "{'t':null}", U },
	{ "args.t", "contains", "'x'", "{}", F },
	{ "args.t", "contains", "1", "{'t':[1.0,2]}", T },
	{ "args.t", "contains", "1", "{'t':'1'}", U },
	{ "args.t", "contains", "''", "{'t':'abc'}", T },
	{ "args.t", "contains", "'\\u00e9'", "{'t':'caf\\u00e9'}", T },
	{ "args.t", "contains", "['a']", "{'t':[['a'],'b']}", T },
	{ "args.t", "contains", "'rm'", "{'t':'sudo rm -rf /'}", T },
	{ "args.t", "contains", "'rm'", "{'t':['sudo','rm','-rf']}", T },
	{ "args.t", "contains", "'b'", "{'t':'a\\u0000b'}", T },
	/* exists: null and false are present */
	{ "args.a", "exists", "true", "{'a':null}", T },
	{ "args.a", "exists", "true", "{'a':false}", T },
	{ "args.a", "exists", "true", "{}", F },
	{ "args.a", "exists", "false", "{}", T },
	{ "args.a", "exists", "false", "{'a':0}", F },
	/* nested paths */
	{ "args.a.b[0]", "eq", "5", "{'a':{'b':[5,6]}}", T },
	{ "args.a.b[0]", "eq", "5", "{'a':{'b':[6,5]}}", F },
	{ "args.a.b[0]", "eq", "5", "{'a':{'b':[]}}", F },
	{ "args.a.b[0]", "eq", "5", "{'a':{'b':{'0':5}}}", F },
	{ "args.a.b[0]", "eq", "5", "{'a':[{'b':[5]}]}", F },
	{ "args.a.b[0]", "eq", "5", "{'a':'b'}", F },
	{ "args.a.b[0]", "eq", "5", "{'a.b':[5]}", F },
	{ "args.a.b[0]", "neq", "5", "{'a':{'b':5}}", T },
	{ "args.a.b[0]", "exists", "true", "{'a':{'b':[null]}}", T },
	{ "args.a.b[0]", "exists", "false", "{'a':{'b':[]}}", T },
	{ "args.a.b[1]", "gt", "2", "{'a':{'b':[0,3]}}", T },
	{ "args.x[1][0]", "gt", "2", "{'x':[[0],[3]]}", T },
	{ "args.x[1][0]", "gt", "2", "{'x':[[0],['3']]}", U },
	{ "args.x[1000000]", "exists", "true", "{'x':[1]}", F },
	{ "args.a.b.c.d", "regex", "'^ok$'", "{'a':{'b':{'c':{'d':'ok'}}}}", T },
	{ "args.\\u00e9", "eq", "1", "{'\\u00e9':1}", T },
};

#define P_COND                                                  \
	"{'version':'1','default':'deny','tools':{"             \
	"'r':{'require':[{'path':'%s','op':'%s','value':%s}]}," \
	"'d':{'deny_if':[{'path':'%s','op':'%s','value':%s}]}}}"

static const char *const result_name[] = { "false", "true", "unknown" };

static void check_cond(const struct crow *c, size_t i)
{
	char text[1024];
	struct policy *p;
	struct decision d;
	enum cond_result got;
	json_t *a;

	snprintf(text, sizeof(text), P_COND, c->path, c->op, c->value, c->path, c->op, c->value);
	p = parse(text);
	a = args_of(c->args);
	got = decide__cond(&policy__lookup(p, "r")->require[0], a);
	if (got != c->want)
		fail_msg("cond row %zu: %s %s %s on %s: want %s, got %s", i, c->path, c->op,
			 c->value, c->args, result_name[c->want], result_name[got]);

	decide__call(p, "r", a, &d);
	if (c->want == COND_TRUE) {
		assert_int_equal(d.verdict, VERDICT_ALLOW);
		assert_string_equal(d.pointer, "/tools/r");
	} else {
		if (d.verdict != VERDICT_DENY)
			fail_msg("cond row %zu: require %s %s %s on %s let the call through", i,
				 c->path, c->op, c->value, c->args);
		assert_int_equal(d.kind, KIND_CONDITION);
		assert_string_equal(d.pointer, "/tools/r/require/0");
		assert_non_null(strstr(d.reason, c->want == COND_FALSE ? "fail a require check" :
									 "cannot be checked"));
	}

	decide__call(p, "d", a, &d);
	if (c->want == COND_FALSE) {
		assert_int_equal(d.verdict, VERDICT_ALLOW);
		assert_string_equal(d.pointer, "/tools/d");
	} else {
		if (d.verdict != VERDICT_DENY)
			fail_msg("cond row %zu: deny_if %s %s %s on %s let the call through", i,
				 c->path, c->op, c->value, c->args);
		assert_int_equal(d.kind, KIND_CONDITION);
		assert_string_equal(d.pointer, "/tools/d/deny_if/0");
		assert_non_null(strstr(d.reason, c->want == COND_TRUE ? "match a deny_if check" :
									"cannot be checked"));
	}
	json_decref(a);
	policy__free(p);
}

static void test_conditions(void **state)
{
	for (size_t i = 0; i < sizeof(cond_rows) / sizeof(cond_rows[0]); i++)
		check_cond(&cond_rows[i], i);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Catastrophic backtracking: ^(a+)+$ against "aaa...ab" takes 2^n steps unbounded. The match
 * limit must stop it quickly, and the call is denied both as require and as deny_if.
 */
static void test_regex_backtracking(void **state)
{
	static const char *const pats[] = { "^(a+)+$", "^(a|aa)+$", "^(a|a)*$", "^(.*a){12}c" };
	size_t n = 20000;
	char *s = malloc(n + 2);

	assert_non_null(s);
	memset(s, 'a', n);
	s[n] = 'b';
	s[n + 1] = 0;
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		char text[512];
		struct policy *p;
		struct decision d;
		json_t *a = json_pack("{ss}", "p", s);
		json_t *v = json_string(pats[i]);
		char *q = json_dumps(v, JSON_ENCODE_ANY);
		double t0, t;

		snprintf(text, sizeof(text), P_COND, "args.p", "regex", q, "args.p", "regex", q);
		free(q);
		json_decref(v);
		p = parse(text);
		t0 = now_s();
		decide__call(p, "r", a, &d);
		assert_int_equal(d.verdict, VERDICT_DENY);
		decide__call(p, "d", a, &d);
		t = now_s() - t0;
		if (d.verdict != VERDICT_DENY)
			fail_msg("deny_if regex %s let a %zu-byte hostile argument through",
				 pats[i], n + 1);
		/* generous: valgrind runs this too */
		if (t > 5.0)
			fail_msg("regex %s took %.2f s on a %zu-byte argument", pats[i], t, n + 1);
		json_decref(a);
		policy__free(p);
	}
	free(s);
}

/*
 * Engine bug: "$" also matches before a final newline in PCRE2's default mode
 * (PCRE2_DOLLAR_ENDONLY is not set), so require ^[a-z0-9-]+$ lets "main\n" through. RE2 and
 * Go's regexp (PolicyLayer/Intercept) match "$" at the very end only. An attacker appends a
 * newline to smuggle a line break into an argument that the policy author believed was one
 * clean token.
 */
static void test_regex_dollar_newline(void **state)
{
	struct policy *p = parse("{" V1 "'default':'deny','tools':{'checkout':{'require':"
				 "[{'path':'args.branch','op':'regex','value':'^[a-z0-9-]+$'}]}}}");
	json_t *ok = json_pack("{ss}", "branch", "main");
	json_t *bad = json_pack("{ss}", "branch", "main\n");
	struct decision d;

	decide__call(p, "checkout", ok, &d);
	assert_int_equal(d.verdict, VERDICT_ALLOW);
	decide__call(p, "checkout", bad, &d);
	json_decref(ok);
	json_decref(bad);
	policy__free(p);
	if (d.verdict != VERDICT_DENY)
		fail_msg("engine bug: require regex '^[a-z0-9-]+$' allowed \"main\\n\" "
			 "('$' matches before a final newline: PCRE2_DOLLAR_ENDONLY not set)");
}

/*
 * Engine bug (fail-open on type confusion): eq/neq/in/not_in compare JSON types strictly, so
 * a value of another type "proves" inequality. Servers commonly coerce ("1000" -> 1000,
 * ["root"] -> "root", "true" -> true), so a deny_if on eq/in is bypassed by sending the same
 * value with another type, and a require on neq/not_in is satisfied the same way. decide.c's
 * own rule (a value of the wrong type proves neither) says these cannot be judged: deny.
 */
static void test_equality_type_confusion(void **state)
{
	static const struct crow rows[] = {
		{ "args.amount", "eq", "1000", "{'amount':'1000'}", U },
		{ "args.force", "eq", "true", "{'force':'true'}", U },
		{ "args.user", "in", "['root','admin']", "{'user':['root']}", U },
		{ "args.user", "neq", "'root'", "{'user':['root']}", U },
		{ "args.table", "not_in", "['secrets']", "{'table':['secrets']}", U },
	};
	size_t failed = 0;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char text[1024];
		struct policy *p;
		struct decision dr, dd;
		json_t *a;

		snprintf(text, sizeof(text), P_COND, rows[i].path, rows[i].op, rows[i].value,
			 rows[i].path, rows[i].op, rows[i].value);
		p = parse(text);
		a = args_of(rows[i].args);
		decide__call(p, "r", a, &dr);
		decide__call(p, "d", a, &dd);
		if (dr.verdict != VERDICT_DENY || dd.verdict != VERDICT_DENY) {
			print_message("engine bug: %s %s %s on %s: require %s, deny_if %s\n",
				      rows[i].path, rows[i].op, rows[i].value, rows[i].args,
				      decide__verdict_name(dr.verdict),
				      decide__verdict_name(dd.verdict));
			failed++;
		}
		json_decref(a);
		policy__free(p);
	}
	if (failed)
		fail_msg("%zu type-confused arguments got through a condition", failed);
}

static void test_names(void **state)
{
	assert_string_equal(decide__kind_name(KIND_LIMIT), "limit");
	assert_string_equal(decide__kind_name(KIND_INVALID), "invalid");
	assert_string_equal(decide__kind_name((enum deny_kind)99), "?");
	assert_string_equal(decide__verdict_name(VERDICT_APPROVE), "approve");
	assert_string_equal(decide__verdict_name(VERDICT_DENY), "deny");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decision_order),
		cmocka_unit_test(test_no_policy),
		cmocka_unit_test(test_approval_settings),
		cmocka_unit_test(test_long_tool_name),
		cmocka_unit_test(test_reason_text),
		cmocka_unit_test(test_conditions),
		cmocka_unit_test(test_regex_backtracking),
		cmocka_unit_test(test_regex_dollar_newline),
		cmocka_unit_test(test_equality_type_confusion),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
