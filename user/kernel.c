// SPDX-License-Identifier: Apache-2.0
/* kernel: load, attach, pin and feed bpf/tcp.bpf.c; attach, detach, stats, approve tickets. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "audit.h"
#include "cgroup.h"
#include "cmd.h"
#include "decide.h"
#include "kernel.h"
#include "limits.h"
#include "log.h"
#include "policy.h"
#include "mcpfence.h"
#include "tcp.skel.h"

_Static_assert(sizeof(struct mcpf_rule) == 24, "mcpf_rule");
_Static_assert(sizeof(struct mcpf_rule_key) == 16, "mcpf_rule_key");
_Static_assert(sizeof(struct mcpf_rule_entry) == 152, "mcpf_rule_entry");
_Static_assert(sizeof(struct mcpf_glob) == 96, "mcpf_glob");
_Static_assert(sizeof(struct mcpf_limit) == 24, "mcpf_limit");
_Static_assert(sizeof(struct mcpf_budget_key) == 16, "mcpf_budget_key");
_Static_assert(sizeof(struct mcpf_ticket) == 16, "mcpf_ticket");
_Static_assert(sizeof(struct mcpf_gen_cfg) == 28, "mcpf_gen_cfg");
_Static_assert(sizeof(struct mcpf_stat_key) == 16, "mcpf_stat_key");
_Static_assert(sizeof(struct mcpf_stat_val) == 144, "mcpf_stat_val");
_Static_assert(sizeof(struct mcpf_policy_info) == 336, "mcpf_policy_info");
_Static_assert(sizeof(struct mcpf_conn_key) == 40, "mcpf_conn_key");
_Static_assert(sizeof(struct mcpf_sock_key) == 48, "mcpf_sock_key");
_Static_assert(sizeof(struct mcpf_pending) == 56, "mcpf_pending");
_Static_assert(sizeof(struct mcpf_event) == 344, "mcpf_event");

/*
 * What is pinned under MCPF_PIN_DIR, so that other commands find the live state, and so that
 * the programs keep enforcing when attach is killed: tcp_progs among them, because the kernel
 * empties a program array when the last file that holds it goes (its stages would be gone, and
 * every send of a watched connection dropped).
 */
static const char *const pinned_maps[] = {
	"tcp_socks", "tcp_ports", "tcp_active", "tcp_gen", "tcp_rules", "tcp_globs",
	"tcp_limits", "tcp_budgets", "tcp_tickets", "tcp_stats", "tcp_counters", "tcp_conns",
	"tcp_policies", "tcp_progs",
};
#define PIN_LINK MCPF_PIN_DIR "/link_sock_ops"
#define PIN_PROG MCPF_PIN_DIR "/prog_sk_msg"

static const char *const kind_names[MCPF_KIND_MAX] = {
	"allow", "hidden", "default", "rule", "condition", "approval", "limit", "invalid",
	"unparsed",
};

static int silent_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN && log_level >= LOG_LVL_DEBUG ? vfprintf(stderr, fmt, ap) : 0;
}

int kernel__parse_duration(const char *s, uint64_t *seconds)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end) {
		if (end[1])
			return -EINVAL;
		switch (*end) {
		case 's': mul = 1; break;
		case 'm': mul = 60; break;
		case 'h': mul = 3600; break;
		case 'd': mul = 86400; break;
		default: return -EINVAL;
		}
	}
	if (v == 0 || v > UINT32_MAX)
		return -EINVAL;
	*seconds = v * mul;
	return 0;
}

static uint64_t fnv64(const void *p, size_t n, uint64_t h)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* ---- feature probes ------------------------------------------------------------------- */

/*
 * Every reason this machine cannot run the TCP plane, said once, clearly. cgroup: the --cgroup
 * given, or empty: then the host's cgroup v2 root, found in /proc/self/mountinfo, goes there.
 */
static int probe_basics(char *cgroup, size_t size)
{
	char why[300];
	struct statfs st;

	if (geteuid() != 0) {
		log_err("the kernel plane needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON): "
			"run mcpfence as root");
		return -EPERM;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		log_err("/sys/kernel/btf/vmlinux is missing: this kernel has no BTF "
			"(CONFIG_DEBUG_INFO_BTF=y is needed)");
		return -ENOTSUP;
	}
	if (!cgroup[0] && cgroup__v2_root(cgroup, size, why, sizeof(why))) {
		log_err("%s", why);
		return -ENOTSUP;
	}
	if (statfs(cgroup, &st) || st.f_type != CGROUP2_SUPER_MAGIC) {
		log_err("%s is not a cgroup v2 directory: mount cgroup2 there or give --cgroup PATH "
			"of a cgroup v2 directory", cgroup);
		return -ENOTSUP;
	}
	features__mount();
	if (statfs("/sys/fs/bpf", &st) || st.f_type != BPF_FS_MAGIC) {
		log_err("/sys/fs/bpf is not a bpf filesystem and could not be mounted: "
			"mount -t bpf bpf /sys/fs/bpf");
		return -ENOTSUP;
	}
	return 0;
}

/*
 * Open and load the programs: the real probe that the sock_ops and sk_msg types are there. The
 * server stage is one of two builds (bpf/tcp.bpf.c): the bpf_loop search (KERNEL_SEARCH_AUTO:
 * every kernel; it measured faster) or the bpf_strnstr kfunc (6.17+); KERNEL_SEARCH_BOTH
 * loads both, the loop's wired, for the tests and the bench that compare them.
 */
struct tcp_bpf *kernel__load_opts(const struct kernel_load_opts *o)
{
	enum kernel_search how = o->search;
	bool kfunc = features__strnstr();
	struct tcp_bpf *skel;
	int err, ncpu;

	libbpf_set_print(silent_print);
	if (how == KERNEL_SEARCH_KFUNC && !kfunc) {
		log_err("this kernel has no bpf_strnstr kfunc (6.17+)");
		errno = ENOTSUP;
		return NULL;
	}
	skel = tcp_bpf__open();
	if (!skel) {
		err = -errno;
		log_err("bpf/tcp.bpf.c: open: %s", strerror(-err));
		errno = -err;
		return NULL;
	}
	if (o->glob_steps)
		skel->rodata->cfg_glob_steps = o->glob_steps;
	if (how == KERNEL_SEARCH_AUTO)
		how = KERNEL_SEARCH_LOOP;
	bpf_program__set_autoload(skel->progs.handle_sk_msg_server,
				  kfunc && how != KERNEL_SEARCH_LOOP);
	bpf_program__set_autoload(skel->progs.handle_sk_msg_server_loop,
				  how != KERNEL_SEARCH_KFUNC);
	ncpu = libbpf_num_possible_cpus();
	if (ncpu < 1)
		ncpu = 1;
	bpf_map__set_max_entries(skel->maps.tcp_scan_bufs, ncpu * MCPF_TCP_SLOTS);
	/* the names' hash seed: an agent that cannot read it cannot aim collisions at a tool */
	if (getrandom((void *)&skel->rodata->cfg_name_seed, sizeof(skel->rodata->cfg_name_seed),
		      0) != sizeof(skel->rodata->cfg_name_seed)) {
		err = -errno;
		log_err("getrandom: %s", strerror(-err));
		tcp_bpf__destroy(skel);
		errno = -err;
		return NULL;
	}
	err = tcp_bpf__load(skel);
	if (err) {
		char why[256];

		if (features__tcp(why, sizeof(why)))
			log_err("bpf/tcp.bpf.c: the kernel refused the sock_ops/sk_msg programs (%s): "
				"%s", strerror(-err), why);
		else
			log_err("bpf/tcp.bpf.c: the kernel's verifier refused the programs (%s) "
				"although it has every feature they use: a bug of mcpfence; run "
				"attach --verbose for the verifier log", strerror(-err));
		tcp_bpf__destroy(skel);
		errno = -err;
		return NULL;
	}
	{
		struct bpf_program *stages[] = { skel->progs.handle_sk_msg_client,
						 skel->progs.handle_sk_msg_body,
						 kernel__search_kfunc(skel) ?
							 skel->progs.handle_sk_msg_server :
							 skel->progs.handle_sk_msg_server_loop };

		for (__u32 i = 0; i < 3; i++) {
			int fd = bpf_program__fd(stages[i]);

			if (bpf_map_update_elem(bpf_map__fd(skel->maps.tcp_progs), &i, &fd,
						BPF_ANY)) {
				err = -errno;
				log_err("tcp_progs: update: %s", strerror(-err));
				tcp_bpf__destroy(skel);
				errno = -err;
				return NULL;
			}
		}
	}
	return skel;
}

struct tcp_bpf *kernel__load_with(enum kernel_search how)
{
	struct kernel_load_opts o = { .search = how };

	return kernel__load_opts(&o);
}

struct tcp_bpf *kernel__load(void)
{
	return kernel__load_with(KERNEL_SEARCH_AUTO);
}

bool kernel__search_kfunc(const struct tcp_bpf *skel)
{
	return !bpf_program__autoload(skel->progs.handle_sk_msg_server_loop);
}

bool kernel__search_both(const struct tcp_bpf *skel)
{
	return bpf_program__autoload(skel->progs.handle_sk_msg_server) &&
	       bpf_program__autoload(skel->progs.handle_sk_msg_server_loop);
}

/* ---- policy compile ------------------------------------------------------------------- */

static uint64_t limit_ident(const struct limit *l)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	h = fnv64(l->counter, strlen(l->counter) + 1, h);
	h = fnv64(&l->scope, sizeof(l->scope), h);
	h = fnv64(&l->window_s, sizeof(l->window_s), h);
	return h ? h : 1;
}

static int slot_of(struct kernel_compiled *kc, const struct limit *l)
{
	uint64_t id = limit_ident(l);

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

static int limits_fill(struct kernel_compiled *kc, const struct limit *lims, size_t n,
		       __u16 *out, __u8 *nout, const char *where)
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
			 "neutralized unless `mcpfence approve --tool` gave one", kc->pol->source,
			 r->ptr, r->name);
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
static bool policy_name_byte(unsigned char c)
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
		out[i] = policy_name_byte(b[i]) ? b[i] : '_';
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
		 "up under policy index %u", p->source, MCPF_TCP_MAX_POLICIES - 1, *id);
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
		__u32 k = (kc->gen & 1) * MCPF_TCP_MAX_LIMITS + i;
		uint64_t sum = 0;

		if (lim->scope != SCOPE_GLOBAL || bpf_map_lookup_elem(fd, &k, vals))
			continue;
		for (int c = 0; c < ncpu; c++)
			sum += vals[c];
		while (kc->uncharged_seen[i] < sum) {
			int err = limits__charge(l, lim, &keys, 0);

			if (err && err != -ESTALE) {
				/* left for the next charge: not lost */
				log_warn("%s: a kernel-plane call not counted in the host-wide table "
					 "yet: %s", lim->ptr, strerror(-err));
				break;
			}
			kc->uncharged_seen[i]++;
			total++;
		}
	}
	if (total)
		log_warn("%" PRIu64 " kernel-plane calls on global budgets whose events were lost "
			 "(ring buffer full) charged to the host-wide table", total);
	free(vals);
	return total;
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

	memset(kc, 0, sizeof(*kc));
	kc->pol = (struct policy *)p;
	if (!realpath(p->source, kc->policy_path))
		snprintf(kc->policy_path, sizeof(kc->policy_path), "%s", p->source);
	gen &= 1;
	kc->gen = gen;
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
				"for the kernel plane", p->source, i, MCPF_TCP_GLOB_MAX - 1,
				MCPF_TCP_MAX_GLOBS);
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
					"too much for the kernel plane", p->source, r->ptr,
					MCPF_TCP_GLOB_MAX - 1, MCPF_TCP_MAX_GLOBS);
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
					"cannot read it", p->source, r->ptr, MCPF_NAME_MAX);
				return -E2BIG;
			}
			memcpy(e.name, r->name, k.len);
			k.hash = mcpf_name_hash(e.name, k.len, skel->rodata->cfg_name_seed);
			if (bpf_map_update_elem(rules_fd, &k, &e, BPF_NOEXIST)) {
				err = -errno;
				if (err == -EEXIST)
					log_err("%s: %s: its name's hash is another rule's (odds 1 in "
						"2^64): run attach again (a new seed)", p->source,
						r->ptr);
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
			.ident = kc->slots[i].ident, .max = l->max, .window_s = l->window_s,
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
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.tcp_gen), &gen, &gc, BPF_ANY))
		return -errno;
	return 0;
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
static int next_window_ms(const struct kernel_compiled *kc)
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

/* ---- TCP Fast Open ---------------------------------------------------------------------- */

#define TFO_SYSCTL "/proc/sys/net/ipv4/tcp_fastopen"
#define TFO_SAVED "/run/mcpfence/tcp_fastopen.saved"

/*
 * A client's TCP Fast Open data (sendto MSG_FASTOPEN, TCP_FASTOPEN_CONNECT) is queued before the
 * connection is established, so before sock_ops can put the socket in tcp_socks: sk_msg never
 * sees it. While attached, the client bit (1) of net.ipv4.tcp_fastopen is cleared; such sends
 * then fail (EOPNOTSUPP) or go the normal way. The value before is kept in TFO_SAVED.
 */
static int tfo_client_off(void)
{
	char buf[32];
	int fd, n, v;

	fd = open(TFO_SYSCTL, O_RDWR);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0) {
		close(fd);
		return -EIO;
	}
	buf[n] = 0;
	v = atoi(buf);
	if (v & 1) {
		int sfd;

		mkdir("/run/mcpfence", 0700);
		sfd = open(TFO_SAVED, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (sfd >= 0) {
			if (write(sfd, buf, n) != n)
				log_warn("%s: write: %s", TFO_SAVED, strerror(errno));
			close(sfd);
		}
		n = snprintf(buf, sizeof(buf), "%d\n", v & ~1);
		if (pwrite(fd, buf, n, 0) != n) {
			log_err("%s: cannot clear the client bit: %s: TCP Fast Open data would pass "
				"unread", TFO_SYSCTL, strerror(errno));
			close(fd);
			return -errno;
		}
		log_info("net.ipv4.tcp_fastopen: client side off while attached (its data would "
			 "pass before the socket is watched)");
	}
	close(fd);
	return 0;
}

static void tfo_restore(void)
{
	char buf[32];
	int fd = open(TFO_SAVED, O_RDONLY), n;

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n > 0) {
		fd = open(TFO_SYSCTL, O_WRONLY);
		if (fd >= 0) {
			if (write(fd, buf, n) != n)
				log_warn("%s: restore: %s", TFO_SYSCTL, strerror(errno));
			close(fd);
		}
	}
	unlink(TFO_SAVED);
}

/* ---- pins ----------------------------------------------------------------------------- */

static int pin_all(struct tcp_bpf *skel, struct bpf_link *link)
{
	char path[PATH_MAX];
	int err;

	if (mkdir(MCPF_PIN_DIR, 0700) && errno != EEXIST) {
		err = -errno;
		log_err("%s: mkdir: %s", MCPF_PIN_DIR, strerror(-err));
		return err;
	}
	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++) {
		struct bpf_map *m = bpf_object__find_map_by_name(skel->obj, pinned_maps[i]);

		snprintf(path, sizeof(path), "%s/%s", MCPF_PIN_DIR, pinned_maps[i]);
		err = m ? bpf_map__pin(m, path) : -ENOENT;
		if (err) {
			log_err("%s: pin: %s", path, strerror(-err));
			return err;
		}
	}
	err = bpf_link__pin(link, PIN_LINK);
	if (!err)
		err = bpf_program__pin(skel->progs.handle_sk_msg, PIN_PROG);
	if (err)
		log_err("%s: pin: %s", MCPF_PIN_DIR, strerror(-err));
	return err;
}

static bool attached(void)
{
	return !access(PIN_LINK, F_OK) || !access(MCPF_PIN_DIR "/tcp_socks", F_OK);
}

/*
 * attach holds an exclusive flock on MCPF_PIN_DIR while it runs: the kernel drops it when the
 * process dies, however it dies. Returns the held fd, or -errno.
 */
static int pins_lock(void)
{
	int fd = open(MCPF_PIN_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

enum kernel_attachment kernel__attachment(void)
{
	int fd;

	if (!attached() && access(MCPF_PIN_DIR, F_OK))
		return KERNEL_ATTACHED_NONE;
	fd = pins_lock();
	if (fd == -EWOULDBLOCK)
		return KERNEL_ATTACHED_LIVE;
	if (fd >= 0)
		close(fd);
	return KERNEL_ATTACHED_STALE;
}

/* Empty the SOCKHASH: a socket leaves sk_msg only when it leaves the map. */
static void socks_flush(int fd)
{
	struct mcpf_sock_key k;

	while (!bpf_map_get_next_key(fd, NULL, &k))
		if (bpf_map_delete_elem(fd, &k))
			break;
}

int kernel__detach(void)
{
	char path[PATH_MAX];
	int found = 0, fd, map_fd, prog_fd;

	fd = bpf_obj_get(PIN_LINK);
	if (fd >= 0) {
		found = 1;
		if (bpf_link_detach(fd))
			log_warn("%s: detach: %s", PIN_LINK, strerror(errno));
		close(fd);
	}
	map_fd = bpf_obj_get(MCPF_PIN_DIR "/tcp_socks");
	prog_fd = bpf_obj_get(PIN_PROG);
	if (map_fd >= 0) {
		found = 1;
		if (prog_fd >= 0)
			bpf_prog_detach2(prog_fd, map_fd, BPF_SK_MSG_VERDICT);
		socks_flush(map_fd);
		close(map_fd);
	}
	if (prog_fd >= 0)
		close(prog_fd);
	unlink(PIN_LINK);
	unlink(PIN_PROG);
	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", MCPF_PIN_DIR, pinned_maps[i]);
		if (!unlink(path))
			found = 1;
	}
	rmdir(MCPF_PIN_DIR);
	tfo_restore();
	return found;
}

/* ---- connections established before the attachment ----------------------------------- */

struct inode_set {
	uint64_t *v;
	size_t n, cap;
};

static bool watched(const uint16_t *ports, unsigned nports, unsigned port)
{
	for (unsigned i = 0; i < nports; i++)
		if (ports[i] == port)
			return true;
	return false;
}

/* Inodes of established TCP sockets with a watched local or remote port, from /proc/net. */
static int inodes_collect(const char *file, const uint16_t *ports, unsigned nports,
			  struct inode_set *set)
{
	char line[512], *p;
	FILE *f = fopen(file, "r");

	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned lport, rport, st;
		unsigned long long ino;
		char *tok[10];
		int n = 0;

		for (p = strtok(line, " \t\n"); p && n < 10; p = strtok(NULL, " \t\n"))
			tok[n++] = p;
		if (n < 10)
			continue;
		p = strchr(tok[1], ':');
		if (!p || sscanf(p + 1, "%x", &lport) != 1)
			continue;
		p = strchr(tok[2], ':');
		if (!p || sscanf(p + 1, "%x", &rport) != 1 || sscanf(tok[3], "%x", &st) != 1)
			continue;
		if (st != 1 || sscanf(tok[9], "%llu", &ino) != 1 || !ino)
			continue;
		if (!watched(ports, nports, lport) && !watched(ports, nports, rport))
			continue;
		if (set->n == set->cap) {
			uint64_t *nv = realloc(set->v, (set->cap = set->cap ? 2 * set->cap : 64) *
							       sizeof(*nv));

			if (!nv) {
				fclose(f);
				return -ENOMEM;
			}
			set->v = nv;
		}
		set->v[set->n++] = ino;
	}
	fclose(f);
	return 0;
}

static void addr_key(const struct sockaddr_storage *ss, __u32 *out, uint16_t *port)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		out[0] = 0;
		out[1] = 0;
		out[2] = htonl(0xffff);
		out[3] = in->sin_addr.s_addr;
		*port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		memcpy(out, &in6->sin6_addr, 16);
		*port = ntohs(in6->sin6_port);
	}
}

/* Put one socket (our copy of another process's fd) in tcp_socks, keyed as sock_ops would. */
static int adopt_one(int map_fd, int fd, const uint16_t *ports, unsigned nports)
{
	struct sockaddr_storage l = {}, r = {};
	socklen_t ll = sizeof(l), rl = sizeof(r);
	struct mcpf_sock_key k = {};
	uint16_t lport, rport;
	__u32 la[4], ra[4];
	__u64 val = fd;

	if (getsockname(fd, (void *)&l, &ll) || getpeername(fd, (void *)&r, &rl))
		return -errno;
	if ((l.ss_family != AF_INET && l.ss_family != AF_INET6) || l.ss_family != r.ss_family)
		return -EAFNOSUPPORT;
	addr_key(&l, la, &lport);
	addr_key(&r, ra, &rport);
	if (watched(ports, nports, rport)) {
		memcpy(k.conn.cli, la, 16);
		memcpy(k.conn.srv, ra, 16);
		k.conn.cport = lport;
		k.conn.sport = rport;
	} else if (watched(ports, nports, lport)) {
		memcpy(k.conn.srv, la, 16);
		memcpy(k.conn.cli, ra, 16);
		k.conn.sport = lport;
		k.conn.cport = rport;
		k.server_side = 1;
	} else {
		return 0;
	}
	if (bpf_map_update_elem(map_fd, &k, &val, BPF_ANY))
		return -errno;
	return 1;
}

/*
 * sock_ops sees connections as they are established; those established before the attachment
 * (a keep-alive connection of a running client) are found here, in /proc, taken from their
 * owners with pidfd_getfd and put in tcp_socks. Returns how many were adopted.
 */
static int adopt_existing(int map_fd, const uint16_t *ports, unsigned nports)
{
	struct inode_set set = {};
	struct dirent *pe, *fe;
	DIR *proc, *fds;
	char path[64], link[64];
	int adopted = 0;

	inodes_collect("/proc/net/tcp", ports, nports, &set);
	inodes_collect("/proc/net/tcp6", ports, nports, &set);
	if (!set.n)
		goto out;
	proc = opendir("/proc");
	if (!proc)
		goto out;
	while ((pe = readdir(proc))) {
		int pid = atoi(pe->d_name), pidfd;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue;
		pidfd = -1;
		while ((fe = readdir(fds))) {
			unsigned long long ino;
			ssize_t n;
			int fd = atoi(fe->d_name), copy;
			bool hit = false;

			if (fe->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
			n = readlink(path, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = 0;
			if (sscanf(link, "socket:[%llu]", &ino) != 1)
				continue;
			for (size_t i = 0; i < set.n && !hit; i++)
				hit = set.v[i] == ino;
			if (!hit)
				continue;
			if (pidfd < 0)
				pidfd = syscall(SYS_pidfd_open, pid, 0);
			if (pidfd < 0)
				break;
			copy = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
			if (copy < 0) {
				log_debug("pid %d fd %d: pidfd_getfd: %s", pid, fd, strerror(errno));
				continue;
			}
			if (adopt_one(map_fd, copy, ports, nports) > 0)
				adopted++;
			close(copy);
		}
		if (pidfd >= 0)
			close(pidfd);
		closedir(fds);
	}
	closedir(proc);
out:
	free(set.v);
	return adopted;
}

/* ---- events --------------------------------------------------------------------------- */

struct attach_ctx {
	struct tcp_bpf *skel;
	struct kernel_compiled kc[2];
	struct limits *limits; /* the host-wide table, when a policy had a global limit */
	struct ring_buffer *rb;
	struct audit *audit;
	unsigned gen;
	uint16_t port;
	bool quiet;
	int64_t mono_to_real_us;
};

const char *kernel__why_text(uint32_t why)
{
	static const char *const text[MCPF_WHY_MAX] = {
		[MCPF_WHY_NONE] = "message not readable with certainty",
		[MCPF_WHY_JSON] = "not valid JSON or not valid UTF-8",
		[MCPF_WHY_BOUND] = "past a bound of the scanner (nesting, batch size, or a method, "
				   "name or id too long)",
		[MCPF_WHY_DUP_KEY] = "a key that matters appears twice (servers read the last one)",
		[MCPF_WHY_FOLDED_KEY] = "a key equal to one that matters without regard to case "
					"(servers that match keys so read it)",
		[MCPF_WHY_SHAPE] = "not a JSON-RPC message as servers read it",
		[MCPF_WHY_ID] = "a tools/call id that servers may write back otherwise (a fraction, "
				"an exponent, over 15 digits, escapes, <>&)",
		[MCPF_WHY_TRAILING] = "bytes after the JSON value",
		[MCPF_WHY_NEWLINE] = "a raw newline inside one message",
		[MCPF_WHY_FRAMING] = "HTTP framing that cannot be followed",
		[MCPF_WHY_ENCODING] = "a Content-Encoding (the body is not read)",
		[MCPF_WHY_MEDIA_TYPE] = "a Content-Type other than application/json",
		[MCPF_WHY_CHARSET] = "a charset other than utf-8 (servers decode the body by it)",
		[MCPF_WHY_HEADERS] = "Mcp-Method/Mcp-Name disagree with the body",
		[MCPF_WHY_TOO_LARGE] = "a body over 64 KiB (not read)",
		[MCPF_WHY_BUSY] = "every working slot of its CPU was held by runs in flight "
				  "(preempted)",
		[MCPF_WHY_INCOMPLETE] = "the message never ended",
	};

	return why < MCPF_WHY_MAX && text[why] ? text[why] : text[MCPF_WHY_NONE];
}

static void rule_pointer(const struct kernel_compiled *kc, const struct mcpf_event *e, char *buf,
			 size_t size, const char **reason)
{
	const struct policy *p = kc->pol;
	const struct rule *r = p && e->rule < p->nrules ? &p->rules[e->rule] : NULL;

	*reason = NULL;
	switch (e->kind) {
	case MCPF_KIND_ALLOW:
		snprintf(buf, size, "%s", r ? r->ptr : "(default allow)");
		break;
	case MCPF_KIND_HIDDEN:
		snprintf(buf, size, "/hide/%u", e->limit);
		*reason = "hidden";
		break;
	case MCPF_KIND_DEFAULT:
		snprintf(buf, size, "(default deny)");
		*reason = "not allowed by the policy";
		break;
	case MCPF_KIND_RULE:
		snprintf(buf, size, "%s", r ? r->action_ptr : "(rule)");
		*reason = r && r->reason ? r->reason : "denied by rule";
		break;
	case MCPF_KIND_CONDITION:
		snprintf(buf, size, "%s/%s", r ? r->ptr : "(rule)",
			 r && r->nrequire ? "require" : "deny_if");
		*reason = "its conditions cannot be checked in the kernel plane";
		break;
	case MCPF_KIND_APPROVAL:
		snprintf(buf, size, "%s", r ? r->action_ptr : "(rule)");
		*reason = "needs approval: no ticket (mcpfence approve --tool)";
		break;
	case MCPF_KIND_LIMIT:
		snprintf(buf, size, "%s", e->limit < kc->nslots ? kc->slots[e->limit].lim->ptr
								  : "(limit)");
		*reason = "rate limit reached";
		break;
	case MCPF_KIND_INVALID:
		snprintf(buf, size, "(invalid)");
		*reason = "tools/call without a readable tool name";
		break;
	default:
		snprintf(buf, size, "(unparsed)");
		*reason = kernel__why_text(e->why);
	}
}

/*
 * A call BPF let through took its budgets there: count it in the host-wide table too, for each
 * global limit of the call (all_tools, then its rule's; a budget once however many limits name
 * it, as the gateway counts), in the window the call was decided in. The generation is the one
 * in force when the event was written; a SIGHUP flip between BPF's decision and its event (a few
 * microseconds) would read the rule index against the other policy.
 */
static void charge_event(struct attach_ctx *ac, const struct mcpf_event *e)
{
	const struct kernel_compiled *kc = &ac->kc[e->gen & 1];
	const struct scope_keys keys = { .policy = kc->policy_path };
	const struct policy *p = kc->pol;
	const struct rule *r;
	const struct limit *lims[2 * MCPF_TCP_CALL_LIMITS];
	uint64_t at;
	size_t n = 0;

	if (!ac->limits || !p || e->kind != MCPF_KIND_ALLOW || (e->flags & MCPF_EV_NEUTRALIZED))
		return;
	r = e->rule < p->nrules ? &p->rules[e->rule] : NULL;
	for (size_t i = 0; i < p->nall_limits && n < 2 * MCPF_TCP_CALL_LIMITS; i++)
		lims[n++] = &p->all_limits[i];
	for (size_t i = 0; r && i < r->nlimits && n < 2 * MCPF_TCP_CALL_LIMITS; i++)
		lims[n++] = &r->limits[i];
	at = (uint64_t)((int64_t)(e->ts_ns / 1000) + ac->mono_to_real_us) / 1000000;
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		int err;

		if (lims[i]->scope != SCOPE_GLOBAL)
			continue;
		for (size_t j = 0; j < i; j++)
			seen |= lims[j]->scope == SCOPE_GLOBAL &&
				lims[j]->window_s == lims[i]->window_s &&
				!strcmp(lims[j]->counter, lims[i]->counter);
		if (seen)
			continue;
		err = limits__charge(ac->limits, lims[i], &keys, at);
		if (err && err != -ESTALE)
			log_warn("%s: a kernel-plane call not counted in the host-wide table: %s",
				 lims[i]->ptr, strerror(-err));
	}
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct attach_ctx *ac = ctx;
	const struct mcpf_event *e = data;
	char method[MCPF_METHOD_MAX + 1], name[MCPF_NAME_MAX + 1], id[MCPF_ID_MAX + 1];
	char session[MCPF_TCP_SESSION_MAX + 1], comm[17], server[32], ptr[300], exe[PATH_MAX];
	char procexe[64], conn[40], why[200];
	struct audit_event ev = {};
	const char *reason;
	ssize_t n;

	if (size < sizeof(*e))
		return 0;
	charge_event(ac, e);
	snprintf(method, sizeof(method), "%.*s", MCPF_METHOD_MAX, e->method);
	snprintf(name, sizeof(name), "%.*s", MCPF_NAME_MAX, e->name);
	snprintf(id, sizeof(id), "%.*s", MCPF_ID_MAX, e->id);
	snprintf(session, sizeof(session), "%.*s", MCPF_TCP_SESSION_MAX, e->session);
	snprintf(comm, sizeof(comm), "%.*s", 16, e->comm);
	snprintf(server, sizeof(server), "tcp:%u", e->sport);
	snprintf(conn, sizeof(conn), "tcp:%u->%u", e->cport, e->sport);
	snprintf(procexe, sizeof(procexe), "/proc/%u/exe", e->pid);
	n = readlink(procexe, exe, sizeof(exe) - 1);
	if (n > 0)
		exe[n] = 0;
	else
		snprintf(exe, sizeof(exe), "%s", comm);
	rule_pointer(&ac->kc[e->gen & 1], e, ptr, sizeof(ptr), &reason);
	ev.time_us = e->ts_ns / 1000 + ac->mono_to_real_us;
	ev.plane = "kernel";
	ev.server = server;
	ev.session = session[0] ? session : NULL;
	ev.conn = conn;
	ev.client_pid = e->pid;
	ev.client_uid = e->uid;
	ev.client_exe = exe;
	ev.method = method[0] ? method : NULL;
	ev.tool = name[0] ? name : NULL;
	ev.decision = e->flags & MCPF_EV_NEUTRALIZED ? "deny" : "allow";
	ev.kind = e->kind == MCPF_KIND_ALLOW ? NULL : decide__kind_name(e->kind);
	if (e->kind == MCPF_KIND_UNPARSED) {
		snprintf(why, sizeof(why), "%s: %s",
			 e->flags & MCPF_EV_NEUTRALIZED ? "refused unread" :
							  "passed unread (policy kernel.unparsed: allow)",
			 reason);
		reason = why;
	}
	ev.rule = ptr;
	ev.reason = reason;
	ev.approved_by = e->flags & MCPF_EV_TICKET ? "ticket" : NULL;
	ev.request_id = id[0] ? id : NULL;
	if (ac->audit)
		audit__write(ac->audit, &ev);
	if (!ac->quiet) {
		printf("%s %s tool=%s id=%s kind=%s rule=%s pid=%u exe=%s conn=%s%s%s%s\n",
		       ev.decision, method[0] ? method : "-", name[0] ? name : "-", id[0] ? id : "-",
		       e->kind < MCPF_KIND_MAX ? kind_names[e->kind] : "?", ptr, e->pid, exe, conn,
		       e->flags & MCPF_EV_NEUTRALIZED ? " (neutralized)" : "",
		       e->kind == MCPF_KIND_UNPARSED ? ": " : "",
		       e->kind == MCPF_KIND_UNPARSED ? reason : "");
		fflush(stdout);
	}
	return 0;
}

/* time(2) may read a coarse clock that lags the boundary the poll woke up for */
static uint64_t realtime_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

/* How often global budgets are brought to the host-wide table (kernel__sync_global). */
#define SYNC_MS 200

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_to_real_us(void)
{
	struct timespec m, r;

	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &r);
	return ((int64_t)r.tv_sec - m.tv_sec) * 1000000 + (r.tv_nsec - m.tv_nsec) / 1000;
}

/* ---- attach --------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_flag, reload_flag;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_flag = 1;
	else
		stop_flag = 1;
}

int kernel__activate(struct tcp_bpf *skel, unsigned gen)
{
	struct mcpf_active act = { .gen = gen & 1, .loaded = 1 };
	__u32 zero = 0;

	if (bpf_map_update_elem(bpf_map__fd(skel->maps.tcp_active), &zero, &act, BPF_ANY)) {
		log_err("tcp_active: update: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int kernel__watch_port(struct tcp_bpf *skel, uint16_t port)
{
	__u8 one = 1;

	if (bpf_map_update_elem(bpf_map__fd(skel->maps.tcp_ports), &port, &one, BPF_ANY)) {
		log_err("tcp_ports: update: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static bool policy_has_global(const struct policy *p)
{
	for (size_t i = 0; i < p->nall_limits; i++)
		if (p->all_limits[i].scope == SCOPE_GLOBAL)
			return true;
	for (size_t i = 0; i < p->nrules; i++)
		for (size_t j = 0; j < p->rules[i].nlimits; j++)
			if (p->rules[i].limits[j].scope == SCOPE_GLOBAL)
				return true;
	return false;
}

/*
 * Open the host-wide budget table that the gateways (`mcpfence run`) share, for a policy with
 * a global limit. Without it a global limit would be this plane's alone and let its max through
 * once more: such a policy is refused instead (fail closed).
 */
static int share_global_budgets(struct attach_ctx *ac, const struct policy *p)
{
	char path[300];
	int err;

	if (ac->limits || !policy_has_global(p))
		return 0;
	ac->limits = limits__new(NULL, NULL);
	if (!ac->limits)
		return -ENOMEM;
	limits__default_table_path(path, sizeof(path));
	err = limits__share_table(ac->limits, path, 0);
	if (err) {
		log_err("%s: budgets of scope \"global\" are the host's, and the host-wide table "
			"%s cannot be used: the policy is not enforced", p->source, path);
		limits__free(ac->limits);
		ac->limits = NULL;
		return err;
	}
	log_info("budgets of scope \"global\" shared with every gateway through %s", path);
	return 0;
}

/*
 * Drain the events BPF wrote (charging the table) and charge the calls whose events were lost,
 * then bring global budgets to the table.
 */
static void sync_global(struct attach_ctx *ac, const struct kernel_compiled *kc)
{
	if (!ac->limits)
		return;
	if (ac->rb)
		ring_buffer__consume(ac->rb);
	for (unsigned g = 0; g < 2; g++)
		kernel__charge_uncharged(ac->skel, &ac->kc[g], ac->limits);
	kernel__sync_global(ac->skel, kc, ac->limits);
}

/*
 * Compile the policy at path into the idle generation, then flip: no moment unenforced. Global
 * budgets are synced with the host-wide table before the flip, so a new one does not start full.
 */
static int policy_swap(struct attach_ctx *ac, const char *path)
{
	char err[POLICY_ERR_LEN];
	struct policy *p = policy__load(path, err);
	unsigned idle = ac->gen ^ 1;
	int e;

	if (!p) {
		log_err("%s (the policy in force stays)", err);
		return -EINVAL;
	}
	e = share_global_budgets(ac, p);
	if (e) {
		log_err("%s: cannot be enforced in the kernel (the policy in force stays)", path);
		policy__free(p);
		return e;
	}
	/* events of the idle generation are read (and lost ones charged) before its policy goes */
	if (ac->rb)
		ring_buffer__consume(ac->rb);
	kernel__charge_uncharged(ac->skel, &ac->kc[idle], ac->limits);
	if (ac->kc[idle].pol)
		policy__free(ac->kc[idle].pol);
	ac->kc[idle].pol = NULL;
	e = kernel__compile(ac->skel, p, idle, &ac->kc[idle]);
	if (e) {
		log_err("%s: cannot be enforced in the kernel (the policy in force stays)", path);
		policy__free(p);
		ac->kc[idle].pol = NULL;
		return e;
	}
	sync_global(ac, &ac->kc[idle]);
	e = kernel__activate(ac->skel, idle);
	if (e)
		return e;
	ac->gen = idle;
	log_info("policy %s in force (generation %u)", path, idle);
	return 0;
}

static void attach_usage(void)
{
	fprintf(stderr, "usage: mcpfence attach --policy POLICY --port N [--port N]... "
			"[--cgroup PATH] [--audit PATH] [--quiet]\n");
}

int cmd_attach(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "port", required_argument, NULL, 'P' },
		{ "cgroup", required_argument, NULL, 'c' },
		{ "audit", required_argument, NULL, 'a' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const char *policy_path = NULL, *audit_path = NULL;
	char cgroup[PATH_MAX] = "";
	struct attach_ctx ac = {};
	struct ring_buffer *rb = NULL;
	struct bpf_link *link = NULL;
	struct sigaction sa = {};
	uint16_t ports[MCPF_TCP_MAX_PORTS];
	unsigned nports = 0;
	char audit_buf[PATH_MAX];
	int c, err, cg_fd = -1, lock_fd = -1, ret = 1;
	uint64_t last, next_sync;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			policy_path = optarg;
			break;
		case 'P': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end || !v || v > 65535 || nports >= MCPF_TCP_MAX_PORTS) {
				log_err("--port %s: not a port (1-65535, at most %d)", optarg,
					MCPF_TCP_MAX_PORTS);
				return EXIT_USAGE;
			}
			ports[nports++] = v;
			break;
		}
		case 'c':
			if (!*optarg || strlen(optarg) >= sizeof(cgroup)) {
				log_err("--cgroup %s: not a path", optarg);
				return EXIT_USAGE;
			}
			strcpy(cgroup, optarg);
			break;
		case 'a':
			audit_path = optarg;
			break;
		case 'q':
			ac.quiet = true;
			break;
		case 'v':
			log_level = LOG_LVL_DEBUG;
			break;
		default:
			attach_usage();
			return EXIT_USAGE;
		}
	}
	if (optind < argc || !nports || !policy_path) {
		log_err("attach needs --policy and at least one --port");
		attach_usage();
		return EXIT_USAGE;
	}
	if (probe_basics(cgroup, sizeof(cgroup)))
		return 1;
	switch (kernel__attachment()) {
	case KERNEL_ATTACHED_LIVE:
		log_err("%s holds the attachment of a running `mcpfence attach`: stop it, or run "
			"`mcpfence detach`", MCPF_PIN_DIR);
		return 1;
	case KERNEL_ATTACHED_STALE:
		log_err("%s holds a stale attachment (its `mcpfence attach` is gone; its programs "
			"may still enforce the policy they had): run `mcpfence detach` first",
			MCPF_PIN_DIR);
		return 1;
	default:
		break;
	}
	if (!audit_path) {
		if (audit__default_path(audit_buf, sizeof(audit_buf)))
			snprintf(audit_buf, sizeof(audit_buf), "-");
		audit_path = audit_buf;
	}
	ac.audit = audit__open(audit_path);
	if (!ac.audit)
		return 1;
	ac.skel = kernel__load();
	if (!ac.skel)
		goto out;
	log_info("replies to denied calls found by %s",
		 kernel__search_kfunc(ac.skel) ? "the bpf_strnstr kfunc" :
						 "a bpf_loop search, 8 bytes a step");
	ac.gen = 1; /* policy_swap fills generation 0 first */
	if (policy_swap(&ac, policy_path))
		goto out;
	for (unsigned i = 0; i < nports; i++)
		if (kernel__watch_port(ac.skel, ports[i]))
			goto out;
	ac.port = ports[0];
	err = bpf_prog_attach(bpf_program__fd(ac.skel->progs.handle_sk_msg),
			      bpf_map__fd(ac.skel->maps.tcp_socks), BPF_SK_MSG_VERDICT, 0);
	if (err) {
		log_err("sk_msg: attach to tcp_socks: %s", strerror(errno));
		goto out;
	}
	cg_fd = open(cgroup, O_RDONLY | O_DIRECTORY);
	if (cg_fd < 0) {
		log_err("%s: %s", cgroup, strerror(errno));
		goto out;
	}
	link = bpf_program__attach_cgroup(ac.skel->progs.handle_sock_ops, cg_fd);
	if (!link) {
		log_err("sock_ops: attach to %s: %s", cgroup, strerror(errno));
		goto out;
	}
	if (pin_all(ac.skel, link))
		goto out_detach;
	lock_fd = pins_lock();
	if (lock_fd < 0) {
		log_err("%s: flock: %s", MCPF_PIN_DIR, strerror(-lock_fd));
		goto out_detach;
	}
	if (tfo_client_off())
		goto out_detach;
	err = adopt_existing(bpf_map__fd(ac.skel->maps.tcp_socks), ports, nports);
	if (err > 0)
		log_info("%d connection%s established before the attachment now enforced too", err,
			 err == 1 ? "" : "s");
	rb = ring_buffer__new(bpf_map__fd(ac.skel->maps.tcp_events), on_event, &ac, NULL);
	if (!rb) {
		log_err("tcp_events: ring buffer: %s", strerror(errno));
		goto out_detach;
	}
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	ac.mono_to_real_us = mono_to_real_us();
	for (unsigned i = 0; i < nports; i++)
		printf("%s%u", i ? "," : "watching TCP port ", ports[i]);
	printf(" in cgroup %s; pins in %s\n", cgroup, MCPF_PIN_DIR);
	fflush(stdout);
	ac.rb = rb;
	last = realtime_s();
	next_sync = mono_ms() + SYNC_MS;
	while (!stop_flag) {
		int timeout = next_window_ms(&ac.kc[ac.gen]);
		uint64_t now;

		/* allowed calls' events do not wake this loop (tcp.bpf.c event_emit): drain often */
		if (timeout > MCPF_EVENTS_POLL_MS)
			timeout = MCPF_EVENTS_POLL_MS;

		if (ac.limits) {
			int64_t to_sync = (int64_t)(next_sync - mono_ms());

			if (to_sync < timeout)
				timeout = to_sync < 1 ? 1 : (int)to_sync;
		}
		err = ring_buffer__poll(rb, timeout);
		if (err >= 0 || err == -EINTR)
			err = ring_buffer__consume(rb);
		if (err < 0 && err != -EINTR) {
			log_err("tcp_events: poll: %s", strerror(-err));
			break;
		}
		if (reload_flag) {
			reload_flag = 0;
			policy_swap(&ac, policy_path);
		}
		now = realtime_s();
		if (now != last) {
			kernel__refill(ac.skel, &ac.kc[ac.gen], now, last);
			/* the new window, less what the gateways took of it already */
			sync_global(&ac, &ac.kc[ac.gen]);
			last = now;
			if (access(PIN_LINK, F_OK)) {
				log_info("%s is gone (mcpfence detach): stopping", PIN_LINK);
				break;
			}
		}
		if (ac.limits && mono_ms() >= next_sync) {
			sync_global(&ac, &ac.kc[ac.gen]);
			next_sync = mono_ms() + SYNC_MS;
		}
	}
	ring_buffer__consume(rb);
	ret = 0;
out_detach:
	kernel__detach();
out:
	if (lock_fd >= 0)
		close(lock_fd);
	ring_buffer__free(rb);
	bpf_link__destroy(link);
	if (cg_fd >= 0)
		close(cg_fd);
	if (ac.skel)
		tcp_bpf__destroy(ac.skel);
	for (int i = 0; i < 2; i++)
		policy__free(ac.kc[i].pol);
	limits__free(ac.limits);
	audit__close(ac.audit);
	return ret;
}

int cmd_detach(int argc, char **argv)
{
	if (argc > 1) {
		log_err("detach takes no arguments");
		return EXIT_USAGE;
	}
	if (geteuid() != 0) {
		log_err("detach needs root");
		return 1;
	}
	features__mount();
	if (!kernel__detach())
		printf("nothing attached\n");
	else
		printf("detached\n");
	return 0;
}

/* ---- stats ---------------------------------------------------------------------------- */

struct stat_row {
	char name[MCPF_NAME_MAX + 1];
	unsigned kind;
	uint32_t policy;
	uint64_t n;
};

/* What stats shows of one tcp_policies index. */
struct stat_policy {
	bool known;     /* tcp_policies has an entry for it */
	bool in_force;  /* the generation in force holds it */
	bool ambiguous; /* another entry has the same name: the table says name@digest */
	uint64_t digest;
	uint64_t loaded_s;
	char name[MCPF_POLICY_NAME_MAX + 16]; /* "#N" for an index with no entry */
	char label[MCPF_POLICY_NAME_MAX + 32];
	char digest_hex[17];
	char path[4 * MCPF_POLICY_PATH_MAX + 1];
};

static int stat_cmp(const void *a, const void *b)
{
	const struct stat_row *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (x->policy != y->policy)
		return x->policy < y->policy ? -1 : 1;
	return c ? c : (int)x->kind - (int)y->kind;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned lo = 0x80, hi = 0xbf, need;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 1;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 2;
		lo = s[0] == 0xe0 ? 0xa0 : lo;
		hi = s[0] == 0xed ? 0x9f : hi;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 3;
		lo = s[0] == 0xf0 ? 0x90 : lo;
		hi = s[0] == 0xf4 ? 0x8f : hi;
	} else {
		return 0;
	}
	if (n <= need || s[1] < lo || s[1] > hi)
		return 0;
	for (unsigned i = 2; i <= need; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return need + 1;
}

/*
 * The first max bytes of s (names from files and from the traffic are outside input) as valid
 * UTF-8, each byte that is not part of a valid sequence as U+FFFD; with ctl (a table on a
 * terminal), control characters and backslashes as \xNN. out holds 4 * max + 1 bytes.
 */
static void text_clean(const char *s, size_t max, char *out, bool ctl)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strnlen(s, max), o = 0;

	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(u + i, n - i);

		if (ctl && l == 1 && (u[i] < 0x20 || u[i] == 0x7f || u[i] == '\\')) {
			o += sprintf(out + o, "\\x%02x", u[i]);
			i++;
		} else if (!l) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, s + i, l);
			o += l;
			i += l;
		}
	}
	out[o] = 0;
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

/* The policies that tcp_policies names, and which one the generation in force holds. */
static void stats_policies(struct stat_policy *pol)
{
	int fd = bpf_obj_get(MCPF_PIN_DIR "/tcp_policies");
	int afd = bpf_obj_get(MCPF_PIN_DIR "/tcp_active");
	int gfd = bpf_obj_get(MCPF_PIN_DIR "/tcp_gen");
	struct mcpf_policy_info info;
	struct mcpf_active act;
	struct mcpf_gen_cfg gc;
	__u32 zero = 0, gen, in_force = 0;

	if (afd >= 0 && gfd >= 0 && !bpf_map_lookup_elem(afd, &zero, &act) && act.loaded) {
		gen = act.gen & 1;
		if (!bpf_map_lookup_elem(gfd, &gen, &gc))
			in_force = gc.policy;
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
				p->name[j] = policy_name_byte(info.name[j]) ? info.name[j] : '_';
			p->name[strnlen(info.name, sizeof(info.name) - 1)] = 0;
			snprintf(p->digest_hex, sizeof(p->digest_hex), "%016" PRIx64, p->digest);
			text_clean(info.path, sizeof(info.path), p->path, false);
		}
		p->in_force = i && i == in_force;
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

static const char *const cnt_names[MCPF_CNT_MAX] = {
	"requests", "bytes", "poisoned", "corked", "replies_rewritten", "calls", "events_lost",
	"busy",
};

static const char *kind_name(unsigned kind)
{
	return kind < MCPF_KIND_MAX ? kind_names[kind] : "?";
}

static int stats_json(const struct stat_row *rows, size_t nrows, const struct stat_policy *pol,
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

		text_clean(rows[i].name, MCPF_NAME_MAX, tool, false);
		if (json_array_append_new(calls, json_pack(
			"{s:o,s:I,s:o,s:s,s:s,s:I}", "policy",
			rows[i].policy ? json_string(p->name) : json_null(), "policy_id",
			(json_int_t)rows[i].policy, "policy_digest",
			p->known ? json_string(p->digest_hex) : json_null(), "tool", tool, "verdict",
			kind_name(rows[i].kind), "count", (json_int_t)rows[i].n)))
			goto out_free;
	}
	for (__u32 i = 1; i < MCPF_TCP_MAX_POLICIES; i++) {
		if (!pol[i].known)
			continue;
		if (json_array_append_new(pols, json_pack(
			"{s:I,s:s,s:s,s:s,s:I,s:b}", "id", (json_int_t)i, "name", pol[i].name,
			"digest", pol[i].digest_hex, "path", pol[i].path, "loaded",
			(json_int_t)pol[i].loaded_s, "in_force", pol[i].in_force)))
			goto out_free;
	}
	for (int i = 0; i < MCPF_CNT_MAX; i++)
		if (cnt_names[i] && json_object_set_new(tot, cnt_names[i],
							json_integer((json_int_t)totals[i])))
			goto out_free;
	if (json_object_set(root, "calls", calls) || json_object_set(root, "policies", pols) ||
	    json_object_set(root, "totals", tot) || json_dumpf(root, stdout, JSON_COMPACT))
		goto out_free;
	printf("\n");
	ret = 0;
out_free:
	json_decref(root);
	json_decref(calls);
	json_decref(pols);
	json_decref(tot);
	return ret;
}

static void stats_prometheus(const struct stat_row *rows, size_t nrows,
			     const struct stat_policy *pol, const uint64_t *totals)
{
	char buf[4 * MCPF_POLICY_PATH_MAX + 1];

	printf("# HELP mcpfence_kernel_calls_total tools/call decisions in the kernel plane, by the "
	       "policy that decided\n"
	       "# TYPE mcpfence_kernel_calls_total counter\n");
	for (size_t i = 0; i < nrows; i++) {
		const struct stat_policy *p = &pol[rows[i].policy];

		printf("mcpfence_kernel_calls_total{policy=\"");
		prom_escape(stdout, p->name);
		printf("\",policy_digest=\"%s\",tool=\"", p->digest_hex);
		text_clean(rows[i].name, MCPF_NAME_MAX, buf, false);
		prom_escape(stdout, buf);
		printf("\",verdict=\"%s\"} %" PRIu64 "\n", kind_name(rows[i].kind), rows[i].n);
	}
	printf("# HELP mcpfence_kernel_policy_in_force 1 for the policy enforced now, 0 for one "
	       "enforced before\n"
	       "# TYPE mcpfence_kernel_policy_in_force gauge\n");
	for (__u32 i = 1; i < MCPF_TCP_MAX_POLICIES; i++) {
		if (!pol[i].known)
			continue;
		printf("mcpfence_kernel_policy_in_force{policy=\"");
		prom_escape(stdout, pol[i].name);
		printf("\",policy_digest=\"%s\",path=\"", pol[i].digest_hex);
		prom_escape(stdout, pol[i].path);
		printf("\"} %d\n", pol[i].in_force);
	}
	for (int i = 0; i < MCPF_CNT_MAX; i++)
		if (cnt_names[i])
			printf("# TYPE mcpfence_kernel_tcp_%s_total counter\n"
			       "mcpfence_kernel_tcp_%s_total %" PRIu64 "\n",
			       cnt_names[i], cnt_names[i], totals[i]);
}

static void stats_table(const struct stat_row *rows, size_t nrows, const struct stat_policy *pol,
			const uint64_t *totals)
{
	char tool[4 * MCPF_NAME_MAX + 1], path[4 * sizeof(pol->path) + 1];

	printf("%-24s %-40s %-10s %10s\n", "POLICY", "TOOL", "VERDICT", "CALLS");
	for (size_t i = 0; i < nrows; i++) {
		text_clean(rows[i].name, MCPF_NAME_MAX, tool, true);
		printf("%-24s %-40s %-10s %10" PRIu64 "\n", pol[rows[i].policy].label,
		       tool[0] ? tool : "-", kind_name(rows[i].kind), rows[i].n);
	}
	printf("\n%-24s %-16s %-8s %s\n", "POLICY", "DIGEST", "STATE", "PATH");
	for (__u32 i = 1; i < MCPF_TCP_MAX_POLICIES; i++) {
		if (!pol[i].known)
			continue;
		text_clean(pol[i].path, sizeof(pol[i].path), path, true);
		printf("%-24s %-16s %-8s %s\n", pol[i].label, pol[i].digest_hex,
		       pol[i].in_force ? "in force" : "before", path[0] ? path : "-");
	}
	printf("\n");
	for (int i = 0; i < MCPF_CNT_MAX; i++)
		if (cnt_names[i])
			printf("%-20s %" PRIu64 "\n", cnt_names[i], totals[i]);
}

int cmd_stats(int argc, char **argv)
{
	int ncpu = libbpf_num_possible_cpus(), fd = -1, cfd = -1, ret = 1;
	bool json = false, prom = false;
	struct stat_policy *pol = NULL;
	struct stat_row *rows = NULL;
	size_t nrows = 0, cap = 0;
	struct mcpf_stat_key k, next, *prev = NULL;
	uint64_t *vals = NULL, totals[MCPF_CNT_MAX] = {};
	struct mcpf_stat_val *svals = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--prometheus"))
			prom = true;
		else {
			log_err("stats: unknown argument '%s' (--json, --prometheus)", argv[i]);
			return EXIT_USAGE;
		}
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

		qsort(rows, nrows, sizeof(*rows), stat_cmp);
		for (size_t i = 1; i < nrows; i++) {
			if (!stat_cmp(&rows[out], &rows[i]))
				rows[out].n += rows[i].n;
			else
				rows[++out] = rows[i];
		}
		nrows = out + 1;
	}
	if (json) {
		if (stats_json(rows, nrows, pol, totals)) {
			log_err("stats: out of memory");
			goto out;
		}
	} else if (prom) {
		stats_prometheus(rows, nrows, pol, totals);
	} else {
		stats_table(rows, nrows, pol, totals);
	}
	ret = 0;
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

/* ---- approval tickets ----------------------------------------------------------------- */

int kernel__approve_ticket(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tool", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "for", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	char key[MCPF_NAME_MAX] = {};
	const char *tool = NULL;
	struct mcpf_ticket t = { .count = 1 }, old;
	uint64_t dur = 600;
	struct timespec now;
	int c, fd, ret = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			tool = optarg;
			break;
		case 'n': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 1000000) {
				log_err("--count %s: not a count (1-1000000)", optarg);
				return EXIT_USAGE;
			}
			t.count = v;
			break;
		}
		case 'f':
			if (kernel__parse_duration(optarg, &dur)) {
				log_err("--for %s: not a duration (30s, 10m, 2h, 1d)", optarg);
				return EXIT_USAGE;
			}
			break;
		default:
			fprintf(stderr, "usage: mcpfence approve --tool T [--count N] "
					"[--for DURATION]\n");
			return EXIT_USAGE;
		}
	}
	if (!tool || optind < argc || !*tool || strlen(tool) >= MCPF_NAME_MAX) {
		log_err("approve needs --tool NAME (shorter than %d bytes)", MCPF_NAME_MAX);
		return EXIT_USAGE;
	}
	/*
	 * A ticket lets calls of T through for every client on the host, the agent's among
	 * them: only root gives one. The pinned map is root's too; this says so plainly.
	 */
	if (geteuid() != 0) {
		log_err("approve --tool: kernel-plane tickets are given by root only (this is uid "
			"%u); a waiting gateway call is approved by its ID (mcpfence approvals)",
			(unsigned)geteuid());
		return 1;
	}
	memcpy(key, tool, strlen(tool));
	features__mount();
	fd = bpf_obj_get(MCPF_PIN_DIR "/tcp_tickets");
	if (fd < 0) {
		log_err("%s/tcp_tickets: %s: nothing attached (mcpfence attach)", MCPF_PIN_DIR,
			strerror(errno));
		return 1;
	}
	clock_gettime(CLOCK_BOOTTIME, &now);
	t.expires_ns = ((uint64_t)now.tv_sec + dur) * 1000000000ULL + now.tv_nsec;
	if (!bpf_map_lookup_elem(fd, key, &old) && old.count > 0 &&
	    (!old.expires_ns || old.expires_ns > (uint64_t)now.tv_sec * 1000000000ULL))
		t.count += old.count;
	if (bpf_map_update_elem(fd, key, &t, BPF_ANY)) {
		log_err("tcp_tickets: update: %s", strerror(errno));
		goto out;
	}
	printf("ticket: %lld call%s of %s within %" PRIu64 "s\n", (long long)t.count,
	       t.count == 1 ? "" : "s", tool, dur);
	ret = 0;
out:
	close(fd);
	return ret;
}

