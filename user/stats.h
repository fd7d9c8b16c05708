/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stats: the rendering of the kernel plane's counters (cmd_stats.c reads them): one row per
 * (tool, verdict, policy), the policies by index, the hook's totals (enum mcpf_tcp_counter).
 */
#ifndef MCPFENCE_STATS_H
#define MCPFENCE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include "mcpfence.h"

struct stat_row {
	char name[MCPF_NAME_MAX + 1];
	unsigned kind;
	uint32_t policy;
	uint64_t n;
};

/* What stats shows of one tcp_policies index. */
struct stat_policy {
	bool known;	/* tcp_policies has an entry for it */
	bool in_force;	/* the generation in force holds it */
	bool ambiguous; /* another entry has the same name: the table says name@digest */
	uint64_t digest;
	uint64_t loaded_s;
	char name[MCPF_POLICY_NAME_MAX + 16]; /* "#N" for an index with no entry */
	char label[MCPF_POLICY_NAME_MAX + 32];
	char digest_hex[17];
	char path[4 * MCPF_POLICY_PATH_MAX + 1];
};

/* qsort order of rows: tool name, then policy, then verdict. Each rendering writes to out. */
int stats__row_cmp(const void *a, const void *b);
int stats__json(FILE *out, const struct stat_row *rows, size_t nrows, const struct stat_policy *pol,
		const uint64_t *totals);
void stats__prometheus(FILE *out, const struct stat_row *rows, size_t nrows,
		       const struct stat_policy *pol, const uint64_t *totals);
void stats__table(FILE *out, const struct stat_row *rows, size_t nrows,
		  const struct stat_policy *pol, const uint64_t *totals);

#endif
