// SPDX-License-Identifier: Apache-2.0
/*
 * Which policy each session of an attachment gets, and putting policies in force: --policy (a
 * directory of one) or --policy-dir (each server picked by who it is, each port by its number),
 * compiled into a slot's idle generation and flipped in, on SIGHUP and on the directory's
 * changes, with the host-wide table of global budgets opened for the policies that need it.
 * cmd_attach.c calls it, for attach and for the daemon (attach_daemon.c) alike.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/limits.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "attach.h"
#include "kernel.h"
#include "limits.h"
#include "log.h"
#include "policy.h"
#include "policy_dir.h"
#include "tcp.skel.h"

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

	if (ac->ev.limits || !policy_has_global(p))
		return 0;
	ac->ev.limits = limits__new(NULL, NULL);
	if (!ac->ev.limits)
		return -ENOMEM;
	limits__default_table_path(path, sizeof(path));
	err = limits__share_table(ac->ev.limits, path, 0);
	if (err) {
		log_err("%s: budgets of scope \"global\" are the host's, and the host-wide table "
			"%s cannot be used: the policy is not enforced",
			p->source, path);
		limits__free(ac->ev.limits);
		ac->ev.limits = NULL;
		return err;
	}
	log_info("budgets of scope \"global\" shared with every gateway through %s", path);
	if (p->redis)
		log_info("%s: budgets of scope \"global\" kept in Redis at %s (keys \"%s...\"), "
			 "shared with every mcpfence that names it",
			 p->source, p->redis->shown, p->redis->prefix);
	return 0;
}

/*
 * Drain the events BPF wrote (charging the table) and charge the calls whose events were lost,
 * then bring global budgets to the table.
 */
void attach_policies__sync_global(struct attach_ctx *ac, const struct kernel_compiled *kc)
{
	if (!ac->ev.limits)
		return;
	if (ac->rb)
		ring_buffer__consume(ac->rb);
	for (unsigned g = 0; g < MCPF_GENS; g++)
		kernel__charge_uncharged(ac->skel, &ac->kc[g], ac->ev.limits);
	kernel__sync_global(ac->skel, kc, ac->ev.limits);
}

/* The generation in force of slot s: its compiled policy. */
struct kernel_compiled *attach_policies__slot_kc(struct attach_ctx *ac, unsigned s)
{
	return &ac->kc[MCPF_GEN_INDEX(s, ac->slots[s].gen)];
}

/* A directory of one policy, which every session gets: --policy P. NULL, why in err. */
static struct policy_dir *single_dir(const char *path, char *err)
{
	struct policy_dir *d = calloc(1, sizeof(*d));

	if (!d || !(d->path = strdup(path))) {
		snprintf(err, POLICY_ERR_LEN, "%s: %s", path, strerror(ENOMEM));
		policy_dir__free(d);
		return NULL;
	}
	d->def = policy__load(path, err);
	if (!d->def) {
		policy_dir__free(d);
		return NULL;
	}
	return d;
}

struct policy_dir *attach_policies__load(struct attach_ctx *ac)
{
	char err[POLICY_ERR_LEN];
	struct policy_dir *d = ac->is_dir ? policy_dir__load(ac->policy_path, err) :
					    single_dir(ac->policy_path, err);

	if (!d)
		log_err("%s (the policies in force stay)", err);
	return d;
}

/* The name of session i (pids first, then ports) for messages. */
static void session_name(const struct attach_ctx *ac, unsigned i, char *out, size_t size)
{
	if (i < MCPF_STDIO_MAX_SESSIONS)
		snprintf(out, size, "pid %d (%s)", (int)ac->pids[i],
			 ac->who ? ac->who[i].exe : ac->stdio[i].comm);
	else
		snprintf(out, size, "TCP port %u", ac->ports[i - PORT_SESSION(0)]);
}

/*
 * Which policy of d session i gets: who its server was when attach began (--pid), or the port
 * it listens on (--port). NULL: none fits and d has no default.json (said).
 */
static const struct policy *session_pick(const struct attach_ctx *ac, const struct policy_dir *d,
					 unsigned i)
{
	struct session_who w = { .port = -1 };
	const struct policy *p;
	char name[PATH_MAX + 64];

	if (i < MCPF_STDIO_MAX_SESSIONS && ac->who)
		w = ac->who[i].who;
	else if (i >= MCPF_STDIO_MAX_SESSIONS)
		w.port = ac->ports[i - PORT_SESSION(0)];
	p = policy_dir__pick(d, &w);
	if (!p) {
		session_name(ac, i, name, sizeof(name));
		log_err("%s: no policy of %s fits it, and there is no %s: it would go unenforced",
			name, d->path, POLICY_DIR_DEFAULT);
	}
	return p;
}

static bool dir_holds(const struct policy_dir *d, const struct policy *p)
{
	if (!d || !p)
		return false;
	for (size_t i = 0; i < d->nfiles; i++)
		if (d->files[i] == p)
			return true;
	return d->def == p;
}

/* Is session i one to enforce on: a stdio server not ended, or a port? */
static bool session_live(const struct attach_ctx *ac, unsigned i)
{
	if (i < MCPF_STDIO_MAX_SESSIONS)
		return i < ac->npids && !ac->stdio[i].ended;
	return i - PORT_SESSION(0) < ac->nports;
}

/* Point session i at slot s: its stdio session's entry, or its port's. */
static int session_point(struct attach_ctx *ac, unsigned i, unsigned s)
{
	__u32 k = i, v = s;

	ac->pslot[i] = s;
	if (i >= MCPF_STDIO_MAX_SESSIONS)
		return kernel__watch_port(ac->skel, ac->ports[i - PORT_SESSION(0)], s);
	if (bpf_map_update_elem(bpf_map__fd(ac->skel->maps.stdio_pslots), &k, &v, BPF_ANY)) {
		log_err("stdio_pslots: update: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* The status row of --pid session i (once it is added) says policy p decides its calls. */
static void status_policy(struct attach_ctx *ac, unsigned i, const struct policy *p)
{
	struct status_session *row;
	char conn[40];

	if (i >= MCPF_STDIO_MAX_SESSIONS || !ac->stdio[i].pid)
		return;
	kernel_stdio__conn(&ac->stdio[i], conn, sizeof(conn));
	row = status__get(&ac->status, conn);
	if (row) {
		status__set_policy(row, p->source);
		ac->status.dirty = true;
	}
}

/*
 * Put the policies of d in force, each session under the one that fits its server: each policy
 * picked gets a slot (the one that holds the same file, else a free one), is compiled into that
 * slot's idle generation and flipped in (no moment unenforced; global budgets synced with the
 * host-wide table first, so that a new one does not start full); then the sessions are pointed
 * at their slots, and the slots no session needs any more are emptied. first: the sessions
 * have no slot yet. keep: a policy in force already stays as it is (an enrolment: nothing
 * changed on disk), not compiled again. 0, or -errno with the policies in force as they were.
 */
int attach_policies__apply(struct attach_ctx *ac, const struct policy_dir *d, bool first, bool keep)
{
	const struct policy *pick[NSESSIONS] = {};
	const struct policy *want[MCPF_PSLOTS] = {};
	unsigned slot_of[NSESSIONS];
	bool compiled[MCPF_PSLOTS] = {}, in_force[MCPF_PSLOTS] = {};
	int e = 0;

	for (unsigned i = 0; i < NSESSIONS; i++) {
		slot_of[i] = MCPF_PSLOTS;
		if (!session_live(ac, i))
			continue;
		pick[i] = session_pick(ac, d, i);
		if (!pick[i])
			return -ENOENT;
	}
	/* a file in force keeps its slot (its sessions never see another policy meanwhile) */
	for (unsigned i = 0; i < NSESSIONS; i++)
		for (unsigned s = 0; pick[i] && s < MCPF_PSLOTS && slot_of[i] == MCPF_PSLOTS; s++)
			if (want[s] == pick[i] ||
			    (!want[s] && ac->slots[s].pol &&
			     !strcmp(ac->slots[s].pol->source, pick[i]->source))) {
				want[s] = pick[i];
				slot_of[i] = s;
			}
	/* a new one takes a slot that holds nothing */
	for (unsigned i = 0; i < NSESSIONS; i++)
		for (unsigned s = 0; pick[i] && s < MCPF_PSLOTS && slot_of[i] == MCPF_PSLOTS; s++)
			if (want[s] == pick[i] || (!want[s] && !ac->slots[s].pol)) {
				want[s] = pick[i];
				slot_of[i] = s;
			}
	for (unsigned i = 0; i < NSESSIONS; i++)
		if (pick[i] && slot_of[i] == MCPF_PSLOTS) {
			log_err("%s: more than %d policies would be in force at once",
				pick[i]->source, MCPF_PSLOTS);
			return -E2BIG;
		}
	for (unsigned s = 0; s < MCPF_PSLOTS; s++)
		if (keep && want[s] && ac->slots[s].pol == want[s])
			in_force[s] = true;
	for (unsigned s = 0; s < MCPF_PSLOTS && !e; s++)
		if (want[s] && !in_force[s])
			e = share_global_budgets(ac, want[s]);
	/* events of the idle generations are read (and lost ones charged) before they go */
	if (ac->rb)
		ring_buffer__consume(ac->rb);
	for (unsigned s = 0; s < MCPF_PSLOTS && !e; s++) {
		unsigned idle = MCPF_GEN_INDEX(s, ac->slots[s].gen ^ 1);

		if (!want[s] || in_force[s])
			continue;
		kernel__charge_uncharged(ac->skel, &ac->kc[idle], ac->ev.limits);
		compiled[s] = true;
		e = kernel__compile(ac->skel, want[s], idle, &ac->kc[idle]);
	}
	if (e) {
		/* the idle generations compiled so far name policies of d: forget them */
		for (unsigned s = 0; s < MCPF_PSLOTS; s++)
			if (compiled[s])
				memset(&ac->kc[MCPF_GEN_INDEX(s, ac->slots[s].gen ^ 1)], 0,
				       sizeof(ac->kc[0]));
		log_err("%s: cannot be enforced in the kernel (the policies in force stay)",
			d->path);
		return e;
	}
	for (unsigned s = 0; s < MCPF_PSLOTS; s++) {
		unsigned idle = MCPF_GEN_INDEX(s, ac->slots[s].gen ^ 1);

		if (!want[s] || in_force[s])
			continue;
		attach_policies__sync_global(ac, &ac->kc[idle]);
		if (kernel__activate(ac->skel, idle))
			continue;
		ac->slots[s].gen ^= 1;
		ac->slots[s].pol = want[s];
		if (ac->is_dir)
			log_info("policy %s in force (generation %u, slot %u)", want[s]->source,
				 idle & 1, s);
		else
			log_info("policy %s in force (generation %u)", want[s]->source, idle & 1);
	}
	for (unsigned i = 0; i < NSESSIONS; i++) {
		char name[PATH_MAX + 64];

		if (!pick[i] || (!first && ac->pslot[i] == slot_of[i]))
			continue;
		session_point(ac, i, slot_of[i]);
		if (ac->is_dir) {
			session_name(ac, i, name, sizeof(name));
			log_info("%s: policy %s", name, pick[i]->source);
			status_policy(ac, i, pick[i]);
		}
	}
	for (unsigned s = 0; s < MCPF_PSLOTS; s++)
		if (!want[s] && ac->slots[s].pol) {
			log_info("policy %s: no session needs it any more (slot %u emptied)",
				 ac->slots[s].pol->source, s);
			kernel__deactivate(ac->skel, s);
			ac->slots[s].pol = NULL;
		}
	return 0;
}

/*
 * Put d in force (policies_apply) in place of the policies in force; on success d is the
 * attachment's, on failure the caller's. Compiled generations that still name the policies
 * replaced the time before are forgotten first (their events read), as those are freed.
 */
int attach_policies__take(struct attach_ctx *ac, struct policy_dir *d, bool first)
{
	int e;

	if (ac->rb)
		ring_buffer__consume(ac->rb);
	for (unsigned g = 0; g < MCPF_GENS; g++)
		if (dir_holds(ac->dir_old, ac->kc[g].pol)) {
			kernel__charge_uncharged(ac->skel, &ac->kc[g], ac->ev.limits);
			memset(&ac->kc[g], 0, sizeof(ac->kc[g]));
		}
	policy_dir__free(ac->dir_old);
	ac->dir_old = NULL;
	e = attach_policies__apply(ac, d, first, false);
	if (e)
		return e;
	ac->dir_old = ac->dir;
	ac->dir = d;
	if (ac->watching)
		ac->watch.cur = d; /* what its next reload reads the path of */
	return 0;
}

/* SIGHUP: the policy file, or the directory, loaded again. */
void attach_policies__reload(struct attach_ctx *ac)
{
	struct policy_dir *d = attach_policies__load(ac);

	if (d && attach_policies__take(ac, d, false))
		policy_dir__free(d);
}

/* --policy-dir: a change the directory's watch reports. */
void attach_policies__changed(struct attach_ctx *ac)
{
	struct policy_dir *old, *d;
	int e = policy_watch__changed(&ac->watch, &old);

	if (e == 0)
		return;
	if (e == -ENOENT) {
		log_warn("%s", ac->watch.err);
		ac->watching = false;
		return;
	}
	if (e < 0) {
		log_err("%s (the policies in force stay)", ac->watch.err);
		return;
	}
	d = ac->watch.cur;
	ac->watch.cur = ac->dir;
	if (attach_policies__take(ac, d, false))
		policy_dir__free(d);
}
