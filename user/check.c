// SPDX-License-Identifier: Apache-2.0
/* check: a policy explained, rule by rule, with what each plane can enforce. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "policy.h"
#include "check.h"

const char check__hide_note[] =
	"hide: calls to hidden tools are neutralized; a tools/list answer "
	"is filtered in the kernel when it is compact JSON whole in one send "
	"of at most 64 KiB, else it passes as the server wrote it";

/* What the kernel plane cannot do of a rule, in words; none when it enforces it whole. */
size_t check__kernel_notes(const struct rule *r, const char **notes)
{
	size_t n = 0;

	if (r->nrequire || r->ndeny_if)
		notes[n++] = "require/deny_if: arguments are not read in the kernel; calls to this "
			     "tool are neutralized there (fails closed)";
	if (r->action == ACTION_APPROVE)
		notes[n++] = "approve: only through tickets (mcpfence approve --tool); without "
			     "one, calls are neutralized";
	return n;
}

static json_t *limit_json(const struct limit *l)
{
	return json_pack("{s:s, s:s, s:I, s:I, s:s}", "pointer", l->ptr, "counter", l->counter,
			 "window_s", (json_int_t)l->window_s, "max", (json_int_t)l->max, "scope",
			 policy__scope_name(l->scope));
}

static json_t *conds_json(const struct cond *c, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:O}", "pointer", c[i].ptr,
						   "path", c[i].path, "op",
						   policy__op_name(c[i].op), "value", c[i].value));
	return a;
}

static json_t *approvers_json(const struct approver *a, size_t n, bool group)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++) {
		/* a name that does not resolve here has a null id: it never matches */
		json_t *o = json_pack("{s:o}", group ? "gid" : "uid",
				      a[i].resolved ? json_integer(a[i].id) : json_null());

		if (o && a[i].name)
			json_object_set_new(o, "name", json_string(a[i].name));
		json_array_append_new(arr, o);
	}
	return arr;
}

static json_t *via_json(unsigned via)
{
	json_t *arr = json_array();

	if (arr && (via & VIA_CLIENT))
		json_array_append_new(arr, json_string("client"));
	if (arr && (via & VIA_OPERATOR))
		json_array_append_new(arr, json_string("operator"));
	return arr;
}

static json_t *rule_json(const struct policy *p, const struct rule *r)
{
	const char *notes[4];
	json_t *o, *limits, *kn;
	size_t n;

	limits = json_array();
	for (size_t i = 0; limits && i < r->nlimits; i++)
		json_array_append_new(limits, limit_json(&r->limits[i]));
	n = check__kernel_notes(r, notes);
	kn = json_array();
	for (size_t i = 0; kn && i < n; i++)
		json_array_append_new(kn, json_string(notes[i]));
	o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:{s:s}, s:{s:s, s:o}}", "tool", r->name,
		      "pointer", r->ptr, "match", r->glob ? "glob" : "exact", "action",
		      policy__action_name(r->action), "limits", limits, "require",
		      conds_json(r->require, r->nrequire), "deny_if",
		      conds_json(r->deny_if, r->ndeny_if), "gateway", "enforced", "full", "kernel",
		      "enforced", n ? "partial" : "full", "notes", kn);
	if (o && r->reason)
		json_object_set_new(o, "reason", json_string(r->reason));
	if (o && r->action == ACTION_APPROVE) {
		const struct approvers *ap = &r->approvers;

		json_object_set_new(o, "approval_timeout_s", json_integer(r->approval_timeout_s));
		json_object_set_new(o, "approval_via", via_json(r->approval_via));
		json_object_set_new(o, "approvers",
				    json_pack("{s:o, s:o}", "users",
					      approvers_json(ap->users, ap->nusers, false),
					      "groups",
					      approvers_json(ap->groups, ap->ngroups, true)));
	}
	return o;
}

json_t *check__policy_json(const char *file, const struct policy *p)
{
	json_t *o, *hide, *all, *rules;

	hide = json_array();
	for (size_t i = 0; hide && i < p->nhide; i++)
		json_array_append_new(hide, json_string(p->hide[i]));
	all = json_array();
	for (size_t i = 0; all && i < p->nall_limits; i++)
		json_array_append_new(all, limit_json(&p->all_limits[i]));
	rules = json_array();
	for (size_t i = 0; rules && i < p->nrules; i++)
		json_array_append_new(rules, rule_json(p, &p->rules[i]));
	o = json_pack("{s:s, s:b, s:s, s:o, s:o, s:o, s:s, s:s}", "file", file, "valid", 1,
		      "default", policy__action_name(p->def), "hide", hide, "all_tools_limits", all,
		      "rules", rules, "kernel_unparsed",
		      p->kernel_unparsed_allow ? "allow" : "deny", "audit_arguments",
		      p->audit_values ? "values" : "keys");
	if (o && p->nhide)
		json_object_set_new(o, "kernel_notes", json_pack("[s]", check__hide_note));
	if (o && p->match.present)
		json_object_set_new(o, "match", check__match_json(&p->match));
	if (o && p->redis)
		json_object_set_new(o, "state",
				    json_pack("{s:s, s:s, s:s, s:i}", "redis", p->redis->shown,
					      "prefix", p->redis->prefix, "unreachable",
					      p->redis->fail_open ? "allow" : "deny", "timeout_ms",
					      (int)p->redis->timeout_ms));
	return o;
}

json_t *check__match_json(const struct policy_match *m)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (m->exe)
		json_object_set_new(o, "exe", json_string(m->exe));
	if (m->argv)
		json_object_set_new(o, "argv", json_string(m->argv));
	if (m->server_name)
		json_object_set_new(o, "server_name", json_string(m->server_name));
	if (m->cgroup)
		json_object_set_new(o, "cgroup", json_string(m->cgroup));
	if (m->has_port)
		json_object_set_new(o, "port", json_integer(m->port));
	if (m->has_uid)
		json_object_set_new(o, "uid", json_integer(m->uid));
	return o;
}
