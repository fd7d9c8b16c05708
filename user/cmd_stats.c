// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence stats [--json | --prometheus] [--output FILE]`: the live counters of the kernel
 * plane, read from the maps attach pinned under MCPF_PIN_DIR, from any process: verdicts per
 * policy and tool, the policies that decided them, the hook's totals; on stdout, or replacing
 * FILE whole (a textfile of node_exporter's collector).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/limits.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "cmd.h"
#include "feature_probes.h"
#include "kernel_compile.h"
#include "log.h"
#include "mcpfence.h"
#include "stats.h"
#include "text.h"

/* The policies that tcp_policies names, and which ones the generations in force hold. */
static void stats_policies(struct stat_policy *pol)
{
	int fd = bpf_obj_get(MCPF_PIN_DIR "/tcp_policies");
	int afd = bpf_obj_get(MCPF_PIN_DIR "/tcp_active");
	int gfd = bpf_obj_get(MCPF_PIN_DIR "/tcp_gen");
	struct mcpf_policy_info info;
	struct mcpf_active act;
	struct mcpf_gen_cfg gc;
	bool in_force[MCPF_TCP_MAX_POLICIES] = {};

	/* one policy per slot in force (attach --policy-dir: as many as the sessions need) */
	for (__u32 s = 0; afd >= 0 && gfd >= 0 && s < MCPF_PSLOTS; s++) {
		__u32 gen;

		if (bpf_map_lookup_elem(afd, &s, &act) || !act.loaded)
			continue;
		gen = MCPF_GEN_INDEX(s, act.gen);
		if (!bpf_map_lookup_elem(gfd, &gen, &gc) && gc.policy < MCPF_TCP_MAX_POLICIES)
			in_force[gc.policy] = true;
	}
	for (__u32 i = 0; i < MCPF_TCP_MAX_POLICIES; i++) {
		struct stat_policy *p = &pol[i];

		if (i)
			snprintf(p->name, sizeof(p->name), "#%u", i);
		if (i && fd >= 0 && !bpf_map_lookup_elem(fd, &i, &info) && info.name[0]) {
			p->known = true;
			p->digest = info.digest;
			p->loaded_s = info.loaded_s;
			/* written by attach from a file name, read back here: check it again */
			for (size_t j = 0; j < sizeof(info.name) - 1 && info.name[j]; j++)
				p->name[j] =
					kernel__policy_name_byte(info.name[j]) ? info.name[j] : '_';
			p->name[strnlen(info.name, sizeof(info.name) - 1)] = 0;
			snprintf(p->digest_hex, sizeof(p->digest_hex), "%016" PRIx64, p->digest);
			text__utf8_clean(info.path, sizeof(info.path), p->path, false);
		}
		p->in_force = i && in_force[i];
	}
	for (__u32 i = 1; i < MCPF_TCP_MAX_POLICIES; i++)
		for (__u32 j = 1; j < MCPF_TCP_MAX_POLICIES && pol[i].known; j++)
			if (j != i && pol[j].known && !strcmp(pol[i].name, pol[j].name))
				pol[i].ambiguous = true;
	for (__u32 i = 0; i < MCPF_TCP_MAX_POLICIES; i++)
		snprintf(pol[i].label, sizeof(pol[i].label), pol[i].ambiguous ? "%s@%.8s" : "%s",
			 i ? pol[i].name : "-", pol[i].digest_hex);
	if (fd >= 0)
		close(fd);
	if (afd >= 0)
		close(afd);
	if (gfd >= 0)
		close(gfd);
}

static const char usage[] =
	"usage: mcpfence stats [--json | --prometheus] [--output FILE]\n"
	"  --json            print the counters as one JSON object\n"
	"  --prometheus      print them in the Prometheus text format\n"
	"  --output FILE     write them to FILE instead, replacing it whole (a textfile of\n"
	"                    node_exporter's collector: FILE ending in .prom); - is stdout\n"
	"  -h, --help        print this help\n";

/*
 * A new file beside path (its name in tmp, size bytes), mode 0644, for output_done to put in
 * path's place: a reader of path sees the old text or the new, never a part. NULL after logging.
 */
static FILE *output_open(const char *path, char *tmp, size_t size)
{
	FILE *f = NULL;
	int fd = -1;

	if ((size_t)snprintf(tmp, size, "%s.XXXXXX", path) >= size) {
		log_err("stats: --output %s: path too long", path);
		return NULL;
	}
	fd = mkstemp(tmp);
	if (fd < 0 || fchmod(fd, 0644) || !(f = fdopen(fd, "w"))) {
		log_err("stats: --output %s: %s: %s", path, tmp, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		return NULL;
	}
	return f;
}

/* Write f out, then rename tmp over path. 0, or 1 after logging (tmp removed). */
static int output_done(FILE *f, const char *tmp, const char *path)
{
	int err = fflush(f) || ferror(f) || fsync(fileno(f));

	if (fclose(f) || err || rename(tmp, path)) {
		log_err("stats: --output %s: %s", path, strerror(errno));
		unlink(tmp);
		return 1;
	}
	return 0;
}

int cmd_stats(int argc, char **argv)
{
	int ncpu = libbpf_num_possible_cpus(), fd = -1, cfd = -1, ret = 1;
	bool json = false, prom = false;
	const char *output = NULL;
	char tmp[PATH_MAX];
	FILE *out = stdout;
	struct stat_policy *pol = NULL;
	struct stat_row *rows = NULL;
	size_t nrows = 0, cap = 0;
	struct mcpf_stat_key k, next, *prev = NULL;
	uint64_t *vals = NULL, totals[MCPF_CNT_MAX] = {};
	struct mcpf_stat_val *svals = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--prometheus")) {
			prom = true;
		} else if (!strcmp(argv[i], "--output") && i + 1 < argc && argv[i + 1][0]) {
			output = argv[++i];
			if (!strcmp(output, "-"))
				output = NULL; /* standard output */
		} else if (cmd_is_help(argv[i])) {
			fputs(usage, stdout);
			return 0;
		} else {
			log_err("stats: unknown option '%s'", argv[i]);
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (json && prom) {
		log_err("stats: --json or --prometheus, not both");
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	features__mount();
	fd = bpf_obj_get(MCPF_PIN_DIR "/tcp_stats");
	cfd = bpf_obj_get(MCPF_PIN_DIR "/tcp_counters");
	if (fd < 0 || cfd < 0) {
		log_err("%s/tcp_stats: %s: nothing attached (mcpfence attach)", MCPF_PIN_DIR,
			strerror(errno));
		goto out;
	}
	vals = calloc(ncpu > 0 ? ncpu : 1, sizeof(*vals));
	svals = calloc(ncpu > 0 ? ncpu : 1, sizeof(*svals));
	pol = calloc(MCPF_TCP_MAX_POLICIES, sizeof(*pol));
	if (!vals || !svals || !pol) {
		log_err("stats: out of memory");
		goto out;
	}
	stats_policies(pol);
	/* a row per CPU copy that counted, under the name it holds; equal rows merged below */
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, svals))
			continue;
		for (int c = 0; c < ncpu; c++) {
			const struct mcpf_stat_val *v = &svals[c];

			if (!v->count)
				continue;
			if (nrows == cap) {
				struct stat_row *nr =
					realloc(rows, (cap = cap ? 2 * cap : 64) * sizeof(*rows));

				if (!nr) {
					log_err("stats: out of memory");
					goto out;
				}
				rows = nr;
			}
			snprintf(rows[nrows].name, sizeof(rows[nrows].name), "%.*s",
				 v->claimed ? MCPF_NAME_MAX : 0, v->name);
			rows[nrows].kind = k.kind;
			rows[nrows].policy = k.policy < MCPF_TCP_MAX_POLICIES ? k.policy : 0;
			rows[nrows].n = v->count;
			nrows++;
		}
	}
	for (__u32 i = 0; i < MCPF_CNT_MAX; i++) {
		if (bpf_map_lookup_elem(cfd, &i, vals))
			continue;
		for (int c = 0; c < ncpu; c++)
			totals[i] += vals[c];
	}
	if (nrows) {
		size_t out = 0;

		qsort(rows, nrows, sizeof(*rows), stats__row_cmp);
		for (size_t i = 1; i < nrows; i++) {
			if (!stats__row_cmp(&rows[out], &rows[i]))
				rows[out].n += rows[i].n;
			else
				rows[++out] = rows[i];
		}
		nrows = out + 1;
	}
	if (output && !(out = output_open(output, tmp, sizeof(tmp))))
		goto out;
	if (json) {
		if (stats__json(out, rows, nrows, pol, totals)) {
			log_err("stats: out of memory");
			if (output) {
				fclose(out);
				unlink(tmp);
			}
			goto out;
		}
	} else if (prom) {
		stats__prometheus(out, rows, nrows, pol, totals);
	} else {
		stats__table(out, rows, nrows, pol, totals);
	}
	ret = output ? output_done(out, tmp, output) : 0;
out:
	free(vals);
	free(svals);
	free(rows);
	free(pol);
	if (fd >= 0)
		close(fd);
	if (cfd >= 0)
		close(cfd);
	return ret;
}
