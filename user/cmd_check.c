// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence check [--json] POLICY...`: validate policies and explain them, rule by rule, with
 * what each plane can enforce. With --policy-dir: a directory of them, and which one a running
 * server gets (--pid). Exit 0 when every policy is valid, 1 when one is not, 2 on a
 * usage error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "cmd.h"
#include "log.h"
#include "policy.h"
#include "policy_dir.h"
#include "text.h"

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
	if (p->match.present) {
		json_t *m = check__match_json(&p->match);
		char *t = m ? json_dumps(m, JSON_COMPACT) : NULL;

		printf("  for the servers whose every one of these fits: %s\n", t ? t : "?");
		free(t);
		json_decref(m);
	}
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
	if (p->redis)
		printf("  budgets of scopes agent and global: kept in Redis at %s, keys \"%s...\"; "
		       "while it cannot be used, calls that need them are %s (%u ms at most a "
		       "try)\n",
		       p->redis->shown, p->redis->prefix,
		       p->redis->fail_open ? "let through uncounted" : "denied",
		       p->redis->timeout_ms);
}

static const char usage[] =
	"usage: mcpfence check [--json] POLICY...\n"
	"       mcpfence check [--json] --policy-dir DIR [--pid PID]... [--port N]\n"
	"                      [--server-name S]\n"
	"  --json            print it as JSON: an array, an object per policy\n"
	"  --policy-dir DIR  check every policy of a directory (*.json, default.json for the\n"
	"                    sessions no \"match\" fits): all valid, or which is not\n"
	"  --pid PID         and say which of them the server PID gets, and why\n"
	"  --port N          as a server listening on TCP port N (\"match\": {\"port\"})\n"
	"  --server-name S   as a server whose first answer named it S (\"server_name\")\n"
	"  -h, --help        print this help\n";

/*
 * What a process says of itself (any user's process: its command line is any bytes), as valid
 * UTF-8 with control characters as \xNN, in a new string; NULL for NULL or out of memory.
 */
static char *shown(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	char *out = s ? malloc(4 * n + 1) : NULL;

	if (out)
		text__utf8_clean(s, n, out, true);
	return out;
}

/* What a session adds to who its server is: --port, --server-name (0, NULL: not given). */
struct session_facts {
	int port;
	const char *server_name;
};

/* Which policy of d the running process pid gets (a line, or an object of out). 0 or 1. */
static int which_policy(const struct policy_dir *d, pid_t pid, const struct session_facts *sf,
			json_t *out)
{
	struct proc_who pw;
	const struct policy *p;
	char err[512], *exe, *argv, *cg, *name = NULL;
	int e = policy_dir__who_of_pid(pid, &pw, err, sizeof(err));

	if (e) {
		if (out)
			json_array_append_new(
				out, json_pack("{s:i, s:s}", "pid", (int)pid, "error", err));
		else
			fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (sf->port)
		pw.who.port = sf->port;
	pw.who.server_name = sf->server_name;
	p = policy_dir__pick(d, &pw.who);
	exe = shown(pw.who.exe);
	argv = shown(pw.who.argv);
	cg = shown(pw.who.cgroup);
	name = shown(sf->server_name);
	if (!exe || !argv || (pw.who.cgroup && !cg) || (sf->server_name && !name)) {
		log_err("check: out of memory");
		e = -ENOMEM;
	} else if (out) {
		json_array_append_new(
			out,
			json_pack("{s:i, s:s, s:s, s:I, s:s?, s:o, s:s?, s:s?, s:s}", "pid",
				  (int)pid, "exe", exe, "argv", argv, "uid", (json_int_t)pw.who.uid,
				  "cgroup", cg, "port",
				  sf->port ? json_integer(sf->port) : json_null(), "server_name",
				  name, "policy", p ? p->source : NULL, "why",
				  p ? (p == d->def ? "no other file's match fits" :
						     "the first file whose match fits") :
				      "no file's match fits and there is no " POLICY_DIR_DEFAULT
				      ": audited only"));
	} else {
		printf("pid %d: exe %s, argv \"%s\", uid %u, cgroup %s", (int)pid, exe, argv,
		       pw.who.uid, cg ? cg : "(none)");
		if (sf->port)
			printf(", port %d", sf->port);
		if (name)
			printf(", server name \"%s\"", name);
		putchar('\n');
		if (!p)
			printf("  policy: none (no file's match fits and there is no " POLICY_DIR_DEFAULT
			       "): its calls would be audited only\n");
		else if (p == d->def)
			printf("  policy: %s (no other file's match fits)\n", p->source);
		else
			printf("  policy: %s (the first file, in name order, whose match fits)\n",
			       p->source);
	}
	free(exe);
	free(argv);
	free(cg);
	free(name);
	policy_dir__who_free(&pw);
	return e ? 1 : 0;
}

/* check --policy-dir DIR [--pid PID]... */
static int check_dir(const char *dir, const pid_t *pids, size_t npids,
		     const struct session_facts *sf, bool as_json)
{
	char err[POLICY_ERR_LEN];
	struct policy_dir *d = policy_dir__load(dir, err);
	json_t *out = NULL, *files = NULL, *which = NULL;
	int status = 0;

	if (!d) {
		if (as_json) {
			json_t *o =
				json_pack("{s:s, s:b, s:s}", "dir", dir, "valid", 0, "error", err);

			json_dumpf(o, stdout, JSON_INDENT(2));
			putchar('\n');
			json_decref(o);
		} else {
			fprintf(stderr, "%s\n", err);
		}
		return 1;
	}
	if (as_json) {
		out = json_pack("{s:s, s:b, s:o, s:o}", "dir", dir, "valid", 1, "files",
				files = json_array(), "pids", which = json_array());
		if (!out)
			goto out;
		for (size_t i = 0; i < d->nfiles; i++)
			json_array_append_new(files,
					      check__policy_json(d->files[i]->source, d->files[i]));
		if (d->def)
			json_array_append_new(files, check__policy_json(d->def->source, d->def));
	} else {
		printf("%s: %zu policies with a match, in this order; %s\n", dir, d->nfiles,
		       d->def ? "default.json for the rest" :
				"no default.json: sessions no match fits are audited only");
		for (size_t i = 0; i < d->nfiles; i++)
			print_policy(d->files[i]->source, d->files[i]);
		if (d->def)
			print_policy(d->def->source, d->def);
	}
	for (size_t i = 0; i < npids; i++)
		status |= which_policy(d, pids[i], sf, which);
	if (out) {
		json_dumpf(out, stdout, JSON_INDENT(2));
		putchar('\n');
	}
out:
	json_decref(out);
	policy_dir__free(d);
	return status;
}

int cmd_check(int argc, char **argv)
{
	bool as_json = false;
	json_t *out = NULL;
	int first = 1, status = 0;
	const char *dir = NULL;
	pid_t pids[64];
	size_t npids = 0;
	struct session_facts sf = { 0 };

	for (; first < argc && argv[first][0] == '-'; first++) {
		if (!strcmp(argv[first], "--json")) {
			as_json = true;
		} else if (!strcmp(argv[first], "--policy-dir") && first + 1 < argc) {
			dir = argv[++first];
		} else if (!strcmp(argv[first], "--pid") && first + 1 < argc) {
			long v;

			if (!cmd_number(argv[++first], 1, INT32_MAX, &v)) {
				log_err("check: --pid '%s': not a process id", argv[first]);
				return EXIT_USAGE;
			}
			if (npids == sizeof(pids) / sizeof(pids[0])) {
				log_err("check: more than %zu --pid", npids);
				return EXIT_USAGE;
			}
			pids[npids++] = (pid_t)v;
		} else if (!strcmp(argv[first], "--port") && first + 1 < argc) {
			long v;

			if (!cmd_number(argv[++first], 1, 65535, &v)) {
				log_err("check: --port '%s': not a port (1-65535)", argv[first]);
				return EXIT_USAGE;
			}
			sf.port = (int)v;
		} else if (!strcmp(argv[first], "--server-name") && first + 1 < argc) {
			sf.server_name = argv[++first];
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
	if (dir || npids || sf.port || sf.server_name) {
		if (!dir || first < argc || ((sf.port || sf.server_name) && !npids)) {
			log_err(!dir ? "check: --pid, --port and --server-name need --policy-dir" :
				first < argc ?
				       "check: --policy-dir takes no POLICY files besides" :
				       "check: --port and --server-name say of the session of a "
				       "--pid");
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
		return check_dir(dir, pids, npids, &sf, as_json);
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
