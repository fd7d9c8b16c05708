// SPDX-License-Identifier: Apache-2.0
/*
 * stats: the kernel plane's counters as people and machines read them: a table, JSON, the
 * Prometheus text format. Tool names and paths come from outside: bytes that are not UTF-8 are
 * shown as U+FFFD, control characters escaped, label values escaped as the format says.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "kernel_events.h"
#include "mcpfence.h"
#include "stats.h"
#include "text.h"

int stats__row_cmp(const void *a, const void *b)
{
	const struct stat_row *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (x->policy != y->policy)
		return x->policy < y->policy ? -1 : 1;
	return c ? c : (int)x->kind - (int)y->kind;
}

/* A Prometheus label value (text format): backslash, double quote and line feed escaped. */
static void prom_escape(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static const char *const cnt_names[MCPF_CNT_MAX] = {
	"requests",	"bytes",	 "poisoned",  "corked",	     "replies_rewritten",
	"calls",	"events_lost",	 "busy",      "stdio_bytes", "stdio_values",
	"stdio_broken", "pipe_kills",	 "unwatched", "list_hidden", "list_unfiltered",
	"race_kills",	"pipe_refusals",
};

int stats__json(FILE *out, const struct stat_row *rows, size_t nrows, const struct stat_policy *pol,
		const uint64_t *totals)
{
	json_t *root = json_object(), *calls = json_array(), *pols = json_array();
	json_t *tot = json_object();
	char tool[4 * MCPF_NAME_MAX + 1];
	int ret = -ENOMEM;

	if (!root || !calls || !pols || !tot)
		goto out_free;
	for (size_t i = 0; i < nrows; i++) {
		const struct stat_policy *p = &pol[rows[i].policy];

		text__utf8_clean(rows[i].name, MCPF_NAME_MAX, tool, false);
		if (json_array_append_new(
			    calls,
			    json_pack("{s:o,s:I,s:o,s:s,s:s,s:I}", "policy",
				      rows[i].policy ? json_string(p->name) : json_null(),
				      "policy_id", (json_int_t)rows[i].policy, "policy_digest",
				      p->known ? json_string(p->digest_hex) : json_null(), "tool",
				      tool, "verdict", kernel__kind_name(rows[i].kind), "count",
				      (json_int_t)rows[i].n)))
			goto out_free;
	}
	for (__u32 i = 1; i < MCPF_TCP_MAX_POLICIES; i++) {
		if (!pol[i].known)
			continue;
		if (json_array_append_new(pols,
					  json_pack("{s:I,s:s,s:s,s:s,s:I,s:b}", "id",
						    (json_int_t)i, "name", pol[i].name, "digest",
						    pol[i].digest_hex, "path", pol[i].path,
						    "loaded", (json_int_t)pol[i].loaded_s,
						    "in_force", pol[i].in_force)))
			goto out_free;
	}
	for (int i = 0; i < MCPF_CNT_MAX; i++)
		if (cnt_names[i] &&
		    json_object_set_new(tot, cnt_names[i], json_integer((json_int_t)totals[i])))
			goto out_free;
	if (json_object_set(root, "calls", calls) || json_object_set(root, "policies", pols) ||
	    json_object_set(root, "totals", tot) || json_dumpf(root, out, JSON_COMPACT))
		goto out_free;
	fprintf(out, "\n");
	ret = 0;
out_free:
	json_decref(root);
	json_decref(calls);
	json_decref(pols);
	json_decref(tot);
	return ret;
}

void stats__prometheus(FILE *out, const struct stat_row *rows, size_t nrows,
		       const struct stat_policy *pol, const uint64_t *totals)
{
	char buf[4 * MCPF_POLICY_PATH_MAX + 1];

	fprintf(out,
		"# HELP mcpfence_kernel_calls_total tools/call decisions in the kernel plane, by the "
		"policy that decided\n"
		"# TYPE mcpfence_kernel_calls_total counter\n");
	for (size_t i = 0; i < nrows; i++) {
		const struct stat_policy *p = &pol[rows[i].policy];

		fprintf(out, "mcpfence_kernel_calls_total{policy=\"");
		prom_escape(out, p->name);
		fprintf(out, "\",policy_digest=\"%s\",tool=\"", p->digest_hex);
		text__utf8_clean(rows[i].name, MCPF_NAME_MAX, buf, false);
		prom_escape(out, buf);
		fprintf(out, "\",verdict=\"%s\"} %" PRIu64 "\n", kernel__kind_name(rows[i].kind),
			rows[i].n);
	}
	fprintf(out,
		"# HELP mcpfence_kernel_policy_in_force 1 for the policy enforced now, 0 for one "
		"enforced before\n"
		"# TYPE mcpfence_kernel_policy_in_force gauge\n");
	for (__u32 i = 1; i < MCPF_TCP_MAX_POLICIES; i++) {
		if (!pol[i].known)
			continue;
		fprintf(out, "mcpfence_kernel_policy_in_force{policy=\"");
		prom_escape(out, pol[i].name);
		fprintf(out, "\",policy_digest=\"%s\",path=\"", pol[i].digest_hex);
		prom_escape(out, pol[i].path);
		fprintf(out, "\"} %d\n", pol[i].in_force);
	}
	for (int i = 0; i < MCPF_CNT_MAX; i++)
		if (cnt_names[i])
			fprintf(out,
				"# TYPE mcpfence_kernel_tcp_%s_total counter\n"
				"mcpfence_kernel_tcp_%s_total %" PRIu64 "\n",
				cnt_names[i], cnt_names[i], totals[i]);
}

void stats__table(FILE *out, const struct stat_row *rows, size_t nrows,
		  const struct stat_policy *pol, const uint64_t *totals)
{
	char tool[4 * MCPF_NAME_MAX + 1], path[4 * sizeof(pol->path) + 1];

	fprintf(out, "%-24s %-40s %-10s %10s\n", "POLICY", "TOOL", "VERDICT", "CALLS");
	for (size_t i = 0; i < nrows; i++) {
		text__utf8_clean(rows[i].name, MCPF_NAME_MAX, tool, true);
		fprintf(out, "%-24s %-40s %-10s %10" PRIu64 "\n", pol[rows[i].policy].label,
			tool[0] ? tool : "-", kernel__kind_name(rows[i].kind), rows[i].n);
	}
	fprintf(out, "\n%-24s %-16s %-8s %s\n", "POLICY", "DIGEST", "STATE", "PATH");
	for (__u32 i = 1; i < MCPF_TCP_MAX_POLICIES; i++) {
		if (!pol[i].known)
			continue;
		text__utf8_clean(pol[i].path, sizeof(pol[i].path), path, true);
		fprintf(out, "%-24s %-16s %-8s %s\n", pol[i].label, pol[i].digest_hex,
			pol[i].in_force ? "in force" : "before", path[0] ? path : "-");
	}
	fprintf(out, "\n");
	for (int i = 0; i < MCPF_CNT_MAX; i++)
		if (cnt_names[i])
			fprintf(out, "%-20s %" PRIu64 "\n", cnt_names[i], totals[i]);
}
