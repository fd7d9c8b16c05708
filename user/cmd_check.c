// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence check [--json] POLICY...`: validate policies and explain them, rule by rule, with
 * what each plane can enforce. Exit 0 when every policy is valid, 1 when one is not, 2 on a
 * usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "cmd.h"
#include "log.h"
#include "policy.h"

static void print_limit(const struct limit *l)
{
	char win[32];

	printf("      limit %llu calls per %s, counter \"%s\", scope %s  (%s)\n",
	       (unsigned long long)l->max, policy__window_name(l->window_s, win, sizeof(win)),
	       l->counter, policy__scope_name(l->scope), l->ptr);
}

static void print_conds(const char *what, const struct cond *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *v = json_dumps(c[i].value, JSON_ENCODE_ANY | JSON_COMPACT);

		printf("      %s %s %s %s  (%s)\n", what, c[i].path, policy__op_name(c[i].op),
		       v ? v : "?", c[i].ptr);
		free(v);
	}
}

static void print_approval(const struct rule *r)
{
	const struct approvers *ap = &r->approvers;
	char name[300];

	printf("      approval times out after %u s (then denied)\n", r->approval_timeout_s);
	if (r->approval_via == VIA_CLIENT)
		printf("      asked through: the client only (elicitation)\n");
	else if (r->approval_via == VIA_OPERATOR)
		printf("      asked through: the operator only (mcpfence approve on the control "
		       "socket)\n");
	else
		printf("      asked through: the client (elicitation) when it can ask its user, "
		       "else the operator (control socket)\n");
	if (!(r->approval_via & VIA_OPERATOR))
		return;
	printf("      may approve on the control socket: root%s\n",
	       ap->nusers || ap->ngroups ? ", and:" : " only (no approvers)");
	for (size_t i = 0; i < ap->nusers; i++)
		printf("        %s\n",
		       policy__approver_name(&ap->users[i], false, name, sizeof(name)));
	for (size_t i = 0; i < ap->ngroups; i++)
		printf("        members of %s\n",
		       policy__approver_name(&ap->groups[i], true, name, sizeof(name)));
}

static void print_policy(const char *file, const struct policy *p)
{
	const char *notes[4];
	size_t n;

	printf("%s: valid\n", file);
	printf("  default: %s (tools no rule matches)\n", policy__action_name(p->def));
	for (size_t i = 0; i < p->nhide; i++)
		printf("  hide %s  (/hide/%zu)\n", p->hide[i], i);
	if (p->nall_limits) {
		printf("  all tools:\n");
		for (size_t i = 0; i < p->nall_limits; i++)
			print_limit(&p->all_limits[i]);
	}
	for (size_t i = 0; i < p->nrules; i++) {
		const struct rule *r = &p->rules[i];

		printf("  %s %s: %s  (%s)\n", r->glob ? "glob" : "tool", r->name,
		       policy__action_name(r->action), r->ptr);
		if (r->reason)
			printf("      reason: %s\n", r->reason);
		if (r->action == ACTION_APPROVE)
			print_approval(r);
		for (size_t j = 0; j < r->nlimits; j++)
			print_limit(&r->limits[j]);
		print_conds("require", r->require, r->nrequire);
		print_conds("deny_if", r->deny_if, r->ndeny_if);
		printf("      gateway plane: enforces all of it\n");
		n = check__kernel_notes(r, notes);
		if (!n)
			printf("      kernel plane: enforces all of it\n");
		for (size_t j = 0; j < n; j++)
			printf("      kernel plane: %s\n", notes[j]);
	}
	if (p->nhide)
		printf("  kernel plane: %s\n", check__hide_note);
	printf("  kernel plane: messages it cannot read with certainty are %s\n",
	       p->kernel_unparsed_allow ? "allowed (\"kernel\": {\"unparsed\": \"allow\"})" :
					  "denied");
}

static const char usage[] = "usage: mcpfence check [--json] POLICY...\n"
			    "  --json            print it as JSON: an array, an object per policy\n"
			    "  -h, --help        print this help\n";

int cmd_check(int argc, char **argv)
{
	bool as_json = false;
	json_t *out = NULL;
	int first = 1, status = 0;

	for (; first < argc && argv[first][0] == '-'; first++) {
		if (!strcmp(argv[first], "--json")) {
			as_json = true;
		} else if (cmd_is_help(argv[first])) {
			fputs(usage, stdout);
			return 0;
		} else if (!strcmp(argv[first], "--")) {
			first++;
			break;
		} else {
			log_err("check: unknown option '%s'", argv[first]);
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (first >= argc) {
		log_err("check: no policy given");
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (as_json && !(out = json_array()))
		return 1;
	for (int i = first; i < argc; i++) {
		char err[POLICY_ERR_LEN];
		struct policy *p = policy__load(argv[i], err);

		if (!p) {
			status = 1;
			if (as_json)
				json_array_append_new(out,
						      json_pack("{s:s, s:b, s:s}", "file", argv[i],
								"valid", 0, "error", err));
			else
				fprintf(stderr, "%s\n", err);
			continue;
		}
		if (as_json)
			json_array_append_new(out, check__policy_json(argv[i], p));
		else
			print_policy(argv[i], p);
		policy__free(p);
	}
	if (as_json) {
		json_dumpf(out, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(out);
	}
	return status;
}
