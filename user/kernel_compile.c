// SPDX-License-Identifier: Apache-2.0
/*
 * kernel_compile: a policy into the maps of the TCP plane (rules, globs, limits, the generation's
 * settings), in the idle generation, so that flipping tcp_active puts it in force at once; the
 * budget windows refilled as they start; the global budgets kept in step with the host-wide
 * table that the gateways share.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/limits.h>
#include <sys/random.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "kernel.h"
#include "kernel_compile.h"
#include "kernel_stdio.h"
#include "limits.h"
#include "log.h"
#include "mcpfence.h"
#include "policy.h"
#include "tcp.skel.h"

static uint64_t fnv64(const void *p, size_t n, uint64_t h)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * A budget's identity: its counter, scope and window, and, as the host-wide table names budgets
 * (limits__budget_name), its policy file's path for a grant and for a limit without a counter
 * (a budget of its own in its policy): two policies in force at once never share those, while
 * a named counter of scope session, agent or global is the same budget under any policy. The
 * same file loaded again keeps its budgets.
 */
static uint64_t limit_ident(const struct kernel_compiled *kc, const struct limit *l)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	if (l->scope == SCOPE_GRANT || !strcmp(l->counter, l->ptr))
		h = fnv64(kc->policy_path, strlen(kc->policy_path) + 1, h);
	h = fnv64(l->counter, strlen(l->counter) + 1, h);
	h = fnv64(&l->scope, sizeof(l->scope), h);
	h = fnv64(&l->window_s, sizeof(l->window_s), h);
	return h ? h : 1;
}

static int slot_of(struct kernel_compiled *kc, const struct limit *l)
{
	uint64_t id = limit_ident(kc, l);

	for (unsigned i = 0; i < kc->nslots; i++)
		if (kc->slots[i].ident == id)
			return i;
	if (kc->nslots >= MCPF_TCP_MAX_LIMITS) {
		log_err("%s: %s: more than %d distinct budgets: too many for the kernel plane",
			kc->pol->source, l->ptr, MCPF_TCP_MAX_LIMITS);
		return -E2BIG;
	}
	kc->slots[kc->nslots].ident = id;
	kc->slots[kc->nslots].lim = l;
	return kc->nslots++;
}

static int limits_fill(struct kernel_compiled *kc, const struct limit *lims, size_t n, __u16 *out,
		       __u8 *nout, const char *where)
{
	if (n > MCPF_TCP_CALL_LIMITS) {
		log_err("%s: %s: more than %d limits: too many for the kernel plane",
			kc->pol->source, where, MCPF_TCP_CALL_LIMITS);
		return -E2BIG;
	}
	for (size_t i = 0; i < n; i++) {
		int s = slot_of(kc, &lims[i]);

		if (s < 0)
			return s;
		out[i] = s;
	}
	*nout = n;
	return 0;
}

static int rule_make(struct kernel_compiled *kc, const struct rule *r, size_t idx,
		     struct mcpf_rule *out)
{
	memset(out, 0, sizeof(*out));
	out->idx = idx;
	switch (r->action) {
	case ACTION_DENY:
		out->action = MCPF_ACT_DENY;
		break;
	case ACTION_APPROVE:
		out->action = MCPF_ACT_APPROVE;
		break;
	default:
		out->action = MCPF_ACT_ALLOW;
	}
	if (r->action != ACTION_DENY && (r->nrequire || r->ndeny_if)) {
		log_warn("%s: %s: require/deny_if cannot be checked in the kernel: calls to '%s' "
			 "are neutralized there (fail closed); the gateway plane checks them",
			 kc->pol->source, r->ptr, r->name);
		out->action = MCPF_ACT_CONDITION;
	} else if (r->action == ACTION_APPROVE) {
		log_warn("%s: %s: approval in the kernel plane needs a ticket: calls to '%s' are "
			 "neutralized unless `mcpfence approve --tool` gave one",
			 kc->pol->source, r->ptr, r->name);
	}
	return limits_fill(kc, r->limits, r->nlimits, out->limits, &out->nlimits, r->ptr);
}

#define MAP_KEY_MAX 160
_Static_assert(sizeof(struct mcpf_rule_key) <= MAP_KEY_MAX, "rule key");
_Static_assert(sizeof(struct mcpf_budget_key) <= MAP_KEY_MAX, "budget key");

/*
 * Delete every key of a hash map that match() picks. In rounds of 64 collected keys: deleting
 * while walking would make bpf_map_get_next_key() start over.
 */
static void map_delete_where(int fd, size_t key_size, bool (*match)(const void *key, uint64_t arg),
			     uint64_t arg)
{
	char k[MAP_KEY_MAX], next[MAP_KEY_MAX], del[64][MAP_KEY_MAX];
	void *prev;
	int n;

	do {
		n = 0;
		prev = NULL;
		while (n < 64 && !bpf_map_get_next_key(fd, prev, next)) {
			if (match(next, arg))
				memcpy(del[n++], next, key_size);
			memcpy(k, next, key_size);
			prev = k;
		}
		for (int i = 0; i < n; i++)
			bpf_map_delete_elem(fd, del[i]);
	} while (n == 64);
}

static bool rule_of_gen(const void *key, uint64_t gen)
{
	return ((const struct mcpf_rule_key *)key)->gen == gen;
}

static bool budget_of_ident(const void *key, uint64_t ident)
{
	return ((const struct mcpf_budget_key *)key)->ident == ident;
}

/* Delete every tcp_rules entry of generation gen. */
static int rules_clear(int fd, unsigned gen)
{
	map_delete_where(fd, sizeof(struct mcpf_rule_key), rule_of_gen, gen);
	return 0;
}

static int budget_ensure(int fd, const struct kernel_slot *s)
{
	struct mcpf_budget_key k = { .ident = s->ident };
	struct mcpf_budget b;

	if (s->lim->scope != SCOPE_GRANT && s->lim->scope != SCOPE_GLOBAL)
		return 0;
	if (!bpf_map_lookup_elem(fd, &k, &b)) {
		if (b.left > (int64_t)s->lim->max)
			b.left = s->lim->max;
	} else {
		b.left = s->lim->max;
	}
	if (bpf_map_update_elem(fd, &k, &b, BPF_ANY)) {
		log_err("tcp_budgets: update: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* A byte a policy's display name may hold as it is: nothing a table, JSON or label must escape. */
bool kernel__policy_name_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || c == '+' || c == '@';
}

/* "/etc/mcpfence/prod.json" -> "prod": other bytes become '_'; "policy" when nothing is left. */
static void policy_name(const char *path, char *out, size_t size)
{
	const char *b = strrchr(path, '/');
	size_t n;

	b = b ? b + 1 : path;
	n = strlen(b);
	if (n > 5 && !strcmp(b + n - 5, ".json"))
		n -= 5;
	if (n > size - 1)
		n = size - 1;
	for (size_t i = 0; i < n; i++)
		out[i] = kernel__policy_name_byte(b[i]) ? b[i] : '_';
	out[n] = 0;
	if (!n)
		snprintf(out, size, "policy");
}

/*
 * The tcp_policies index of p: the entry with the same name and digest (the same bytes loaded
 * again), else the next free one. A full table gives the latest entry of the same name (or the
 * last one): counts of later versions then add up there.
 */
static int policy_register(struct tcp_bpf *skel, const struct policy *p, __u32 *id)
{
	int fd = bpf_map__fd(skel->maps.tcp_policies);
	struct mcpf_policy_info want = { .digest = p->digest }, have;
	char real[PATH_MAX];
	struct timespec ts;
	__u32 same_name = 0;

	if (realpath(p->source, real)) {
		policy_name(real, want.name, sizeof(want.name));
		if (strlen(real) < sizeof(want.path))
			memcpy(want.path, real, strlen(real));
	} else {
		policy_name(p->source, want.name, sizeof(want.name));
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	want.loaded_s = ts.tv_sec;
	for (__u32 i = 1; i < MCPF_TCP_MAX_POLICIES; i++) {
		if (bpf_map_lookup_elem(fd, &i, &have)) {
			log_err("tcp_policies: lookup %u: %s", i, strerror(errno));
			return -errno;
		}
		if (!have.name[0]) {
			if (bpf_map_update_elem(fd, &i, &want, BPF_ANY)) {
				log_err("tcp_policies: update %u: %s", i, strerror(errno));
				return -errno;
			}
			*id = i;
			return 0;
		}
		if (!strncmp(have.name, want.name, sizeof(have.name))) {
			if (have.digest == want.digest) {
				*id = i;
				return 0;
			}
			same_name = i;
		}
	}
	*id = same_name ? same_name : MCPF_TCP_MAX_POLICIES - 1;
	log_warn("%s: more than %d distinct policies since the attachment began: its counts add "
		 "up under policy index %u",
		 p->source, MCPF_TCP_MAX_POLICIES - 1, *id);
	return 0;
}

/* Zero tcp_uncharged for the slots of generation gen, on every CPU: its slots are reassigned. */
static int uncharged_clear(struct tcp_bpf *skel, unsigned gen)
{
	int fd = bpf_map__fd(skel->maps.tcp_uncharged), ncpu = libbpf_num_possible_cpus(), err = 0;
	uint64_t *zeros = calloc(ncpu > 0 ? ncpu : 1, sizeof(*zeros));

	if (!zeros)
		return -ENOMEM;
	for (__u32 i = 0; i < MCPF_TCP_MAX_LIMITS && !err; i++) {
		__u32 k = gen * MCPF_TCP_MAX_LIMITS + i;

		if (bpf_map_update_elem(fd, &k, zeros, BPF_ANY)) {
			err = -errno;
			log_err("tcp_uncharged: update: %s", strerror(-err));
		}
	}
	free(zeros);
	return err;
}

uint64_t kernel__charge_uncharged(struct tcp_bpf *skel, struct kernel_compiled *kc,
				  struct limits *l)
{
	int fd = bpf_map__fd(skel->maps.tcp_uncharged), ncpu = libbpf_num_possible_cpus();
	uint64_t *vals = calloc(ncpu > 0 ? ncpu : 1, sizeof(*vals)), total = 0;
	const struct scope_keys keys = { .policy = kc->policy_path };

	if (!vals || !l || !kc->pol) {
		free(vals);
		return 0;
	}
	for (unsigned i = 0; i < kc->nslots && i < MCPF_TCP_MAX_LIMITS; i++) {
		const struct limit *lim = kc->slots[i].lim;
		__u32 k = kc->gen * MCPF_TCP_MAX_LIMITS + i;
		uint64_t sum = 0;

		if (lim->scope != SCOPE_GLOBAL || bpf_map_lookup_elem(fd, &k, vals))
			continue;
		for (int c = 0; c < ncpu; c++)
			sum += vals[c];
		while (kc->uncharged_seen[i] < sum) {
			int err = limits__charge(l, lim, &keys, 0);

			if (err && err != -ESTALE) {
				/* left for the next charge: not lost */
				log_warn(
					"%s: a kernel-plane call not counted in the host-wide table "
					"yet: %s",
					lim->ptr, strerror(-err));
				break;
			}
			kc->uncharged_seen[i]++;
			total++;
		}
	}
	if (total)
		log_warn("%" PRIu64 " kernel-plane calls on global budgets whose events were lost "
			 "(ring buffer full) charged to the host-wide table",
			 total);
	free(vals);
	return total;
}

/* kc starts as generation gen of p (its index in the maps, returned) with nothing in it. */
static unsigned kc_begin(struct kernel_compiled *kc, const struct policy *p, unsigned gen)
{
	memset(kc, 0, sizeof(*kc));
	kc->pol = (struct policy *)p;
	if (!realpath(p->source, kc->policy_path))
		snprintf(kc->policy_path, sizeof(kc->policy_path), "%s", p->source);
	kc->gen = gen & (MCPF_GENS - 1);
	return kc->gen;
}

int kernel__compile(struct tcp_bpf *skel, const struct policy *p, unsigned gen,
		    struct kernel_compiled *kc)
{
	int rules_fd = bpf_map__fd(skel->maps.tcp_rules);
	int globs_fd = bpf_map__fd(skel->maps.tcp_globs);
	int limits_fd = bpf_map__fd(skel->maps.tcp_limits);
	int budgets_fd = bpf_map__fd(skel->maps.tcp_budgets);
	struct mcpf_gen_cfg gc = {};
	unsigned nglobs = 0;
	int err;

	gen = kc_begin(kc, p, gen);
	err = uncharged_clear(skel, gen);
	if (err)
		return err;
	gc.def_allow = p->def == ACTION_ALLOW && !p->deny_all;
	gc.unparsed_allow = p->kernel_unparsed_allow;
	rules_clear(rules_fd, gen);
	for (size_t i = 0; i < p->nhide; i++) {
		struct mcpf_glob g = { .kind = MCPF_GLOB_HIDE, .idx = i };
		__u32 key = gen * MCPF_TCP_MAX_GLOBS + nglobs;

		if (strlen(p->hide[i]) >= MCPF_TCP_GLOB_MAX || nglobs >= MCPF_TCP_MAX_GLOBS) {
			log_err("%s: /hide/%zu: longer than %d bytes or more than %d globs: too much "
				"for the kernel plane",
				p->source, i, MCPF_TCP_GLOB_MAX - 1, MCPF_TCP_MAX_GLOBS);
			return -E2BIG;
		}
		g.len = strlen(p->hide[i]);
		memcpy(g.pat, p->hide[i], g.len);
		if (bpf_map_update_elem(globs_fd, &key, &g, BPF_ANY))
			return -errno;
		nglobs++;
	}
	gc.nhide = nglobs;
	err = limits_fill(kc, p->all_limits, p->nall_limits, gc.all_limits, &gc.nall_limits,
			  "/all_tools/limits");
	if (err)
		return err;
	for (size_t i = 0; i < p->nrules; i++) {
		const struct rule *r = &p->rules[i];
		struct mcpf_rule mr;

		err = rule_make(kc, r, i, &mr);
		if (err)
			return err;
		if (r->glob) {
			struct mcpf_glob g = { .kind = MCPF_GLOB_RULE, .idx = i, .rule = mr };
			__u32 key = gen * MCPF_TCP_MAX_GLOBS + nglobs;

			if (strlen(r->name) >= MCPF_TCP_GLOB_MAX || nglobs >= MCPF_TCP_MAX_GLOBS) {
				log_err("%s: %s: a glob longer than %d bytes or more than %d globs: "
					"too much for the kernel plane",
					p->source, r->ptr, MCPF_TCP_GLOB_MAX - 1,
					MCPF_TCP_MAX_GLOBS);
				return -E2BIG;
			}
			g.len = strlen(r->name);
			memcpy(g.pat, r->name, g.len);
			if (bpf_map_update_elem(globs_fd, &key, &g, BPF_ANY))
				return -errno;
			nglobs++;
		} else {
			struct mcpf_rule_key k = { .gen = gen, .len = strlen(r->name) };
			struct mcpf_rule_entry e = { .rule = mr };

			if (k.len >= MCPF_NAME_MAX) {
				log_err("%s: %s: a tool name of %d bytes or more: the kernel plane "
					"cannot read it",
					p->source, r->ptr, MCPF_NAME_MAX);
				return -E2BIG;
			}
			memcpy(e.name, r->name, k.len);
			k.hash = mcpf_name_hash(e.name, k.len, skel->rodata->cfg_name_seed);
			if (bpf_map_update_elem(rules_fd, &k, &e, BPF_NOEXIST)) {
				err = -errno;
				if (err == -EEXIST)
					log_err("%s: %s: its name's hash is another rule's (odds 1 in "
						"2^64): run attach again (a new seed)",
						p->source, r->ptr);
				else
					log_err("tcp_rules: update: %s", strerror(-err));
				return err;
			}
		}
	}
	gc.nglobs = nglobs;
	for (unsigned i = 0; i < kc->nslots; i++) {
		const struct limit *l = kc->slots[i].lim;
		struct mcpf_limit ml = {
			.ident = kc->slots[i].ident,
			.max = l->max,
			.window_s = l->window_s,
			.scope = l->scope,
		};
		__u32 key = gen * MCPF_TCP_MAX_LIMITS + i;

		if (bpf_map_update_elem(limits_fd, &key, &ml, BPF_ANY))
			return -errno;
		err = budget_ensure(budgets_fd, &kc->slots[i]);
		if (err)
			return err;
	}
	err = policy_register(skel, p, &gc.policy);
	if (err)
		return err;
	kc->policy_id = gc.policy;
	/* what stdio answers to its denials say */
	err = kernel_stdio__reasons(skel, kc, gen);
	if (err)
		return err;
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.tcp_gen), &gen, &gc, BPF_ANY))
		return -errno;
	return 0;
}

int kernel__describe(struct tcp_bpf *skel, const struct policy *p, unsigned gen,
		     struct kernel_compiled *kc)
{
	struct mcpf_gen_cfg gc = {};
	int err;

	gen = kc_begin(kc, p, gen);
	err = limits_fill(kc, p->all_limits, p->nall_limits, gc.all_limits, &gc.nall_limits,
			  "/all_tools/limits");
	for (size_t i = 0; !err && i < p->nrules; i++) {
		struct mcpf_rule mr;

		err = rule_make(kc, &p->rules[i], i, &mr);
	}
	if (!err && bpf_map_lookup_elem(bpf_map__fd(skel->maps.tcp_gen), &gen, &gc))
		err = -errno;
	kc->policy_id = gc.policy;
	if (err)
		memset(kc, 0, sizeof(*kc));
	return err;
}

static bool budget_of_scope_key(const void *key, uint64_t scope_key)
{
	return ((const struct mcpf_budget_key *)key)->scope_key == scope_key;
}

void kernel__drop_stdio_budgets(struct tcp_bpf *skel, unsigned idx)
{
	/* the session's ck.stdio, 4 bytes, which BPF hashes (stdio_begin); read 8 at a time */
	__u64 stdio = idx + 1;
	uint64_t h = mcpf_name_hash((const char *)&stdio, 4, skel->rodata->cfg_name_seed);

	if (h)
		map_delete_where(bpf_map__fd(skel->maps.tcp_budgets),
				 sizeof(struct mcpf_budget_key), budget_of_scope_key, h);
}

/* Delete the session/agent budgets of one ident: they start again full when next used. */
static void budgets_drop(int fd, uint64_t ident)
{
	map_delete_where(fd, sizeof(struct mcpf_budget_key), budget_of_ident, ident);
}

int kernel__refill(struct tcp_bpf *skel, const struct kernel_compiled *kc, uint64_t now,
		   uint64_t last)
{
	int fd = bpf_map__fd(skel->maps.tcp_budgets);

	for (unsigned i = 0; i < kc->nslots; i++) {
		const struct limit *l = kc->slots[i].lim;
		struct mcpf_budget_key k = { .ident = kc->slots[i].ident };
		struct mcpf_budget b = { .left = l->max };

		if (now / l->window_s == last / l->window_s)
			continue;
		if (l->scope == SCOPE_GRANT || l->scope == SCOPE_GLOBAL) {
			if (bpf_map_update_elem(fd, &k, &b, BPF_ANY))
				log_warn("tcp_budgets: refill %s: %s", l->ptr, strerror(errno));
		} else {
			budgets_drop(fd, k.ident);
		}
		log_debug("refilled %s (%" PRIu64 " every %us)", l->ptr, l->max, l->window_s);
	}
	return 0;
}

/*
 * Budgets of scope "global" are the host's (README): BPF keeps the kernel plane's copy in
 * tcp_budgets, the host-wide table (user/limits.c) the truth. The attach loop charges the table
 * for every call BPF let through (charge_event), then calls this after draining the ring buffer:
 * each global entry gets left = max - used in the table (0 at least), so BPF sees the gateways'
 * uses. Written only when it differs, so a quiet host costs lookups alone.
 *
 * Races, each healed by the next sync (every SYNC_MS):
 * - a call BPF lets through after the drain and before the write has its decrement overwritten;
 *   its event charges the table and the next sync takes it off. Over-admission is bounded by the
 *   kernel calls in that gap (microseconds: the drain, one flock, one lookup and update).
 * - an update replaces the map element: a decrement or give-back BPF makes on the old element
 *   in that instant is lost or lands on the new one; either way left differs from the table and
 *   the next sync rewrites it.
 * - the gateways' uses reach BPF one sync later (at most SYNC_MS plus a poll), the kernel's uses
 *   reach the gateways when their events are read (under a millisecond when idle). Near the
 *   max, the kernel plane may so let through up to the gateways' calls of the last SYNC_MS
 *   more than the max; a gateway, the kernel's calls whose events are not read yet.
 */
int kernel__sync_global(struct tcp_bpf *skel, const struct kernel_compiled *kc, struct limits *l)
{
	int fd = bpf_map__fd(skel->maps.tcp_budgets), err = 0;
	const struct scope_keys keys = { .policy = kc->policy_path };

	for (unsigned i = 0; i < kc->nslots; i++) {
		const struct limit *lim = kc->slots[i].lim;
		struct mcpf_budget_key k = { .ident = kc->slots[i].ident };
		struct mcpf_budget b;
		int64_t want;

		if (lim->scope != SCOPE_GLOBAL)
			continue;
		want = (int64_t)limits__left(l, lim, &keys);
		if (!bpf_map_lookup_elem(fd, &k, &b) && b.left == want)
			continue;
		b.left = want;
		if (bpf_map_update_elem(fd, &k, &b, BPF_ANY)) {
			err = -errno;
			log_warn("tcp_budgets: sync %s: %s", lim->ptr, strerror(errno));
		}
	}
	return err;
}

/* Milliseconds until the next window of any budget starts (at most 1000). */
int kernel__next_window_ms(const struct kernel_compiled *kc)
{
	struct timespec ts;
	int64_t best = 1000;

	clock_gettime(CLOCK_REALTIME, &ts);
	for (unsigned i = 0; i < kc->nslots; i++) {
		uint64_t w = kc->slots[i].lim->window_s;
		int64_t ms = (int64_t)(w - (uint64_t)ts.tv_sec % w) * 1000 - ts.tv_nsec / 1000000;

		if (ms < best)
			best = ms;
	}
	best += 2; /* wake just past the boundary */
	return best < 1 ? 1 : (int)best;
}
