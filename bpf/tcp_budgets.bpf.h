/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcp_budgets: rate limits and approval tickets in the kernel (bpf/tcp.bpf.c includes it after
 * tcp_state.bpf.h): the limits of each generation, one budget entry per (limit, scope key) that
 * BPF decrements atomically (all of a call's budgets or none) and userspace refills as windows
 * start, the global uses let through while the event ring was full, and the tickets that
 * `mcpfence approve --tool` puts in and BPF takes one call at a time.
 */
#ifndef MCPFENCE_TCP_BUDGETS_BPF_H
#define MCPFENCE_TCP_BUDGETS_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MCPF_GENS *MCPF_TCP_MAX_LIMITS);
	__type(key, __u32);
	__type(value, struct mcpf_limit);
} tcp_limits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct mcpf_budget_key);
	__type(value, struct mcpf_budget);
} tcp_budgets SEC(".maps");

/*
 * Per (generation, limit slot): the calls let through on a global budget whose event found the
 * ring full. The host-wide table is charged from events; userspace charges these instead
 * (kernel__charge_uncharged), so that a full ring loses no use of a global budget.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MCPF_GENS *MCPF_TCP_MAX_LIMITS);
	__type(key, __u32);
	__type(value, __u64);
} tcp_uncharged SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, char[MCPF_NAME_MAX]);
	__type(value, struct mcpf_ticket);
} tcp_tickets SEC(".maps");

/* The sending client's identity for scope "agent": its uid and its executable (inode). */
static __always_inline __u64 agent_key(void)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	__u64 ino = BPF_CORE_READ(t, mm, exe_file, f_inode, i_ino);
	__u32 dev = BPF_CORE_READ(t, mm, exe_file, f_inode, i_sb, s_dev);
	__u64 h = 0xcbf29ce484222325ULL;

	h = (h ^ ino) * 0x100000001b3ULL;
	h = (h ^ dev) * 0x100000001b3ULL;
	/* the uid through the task's cred: sk_skb has no bpf_get_current_uid_gid before 6.13 */
	h = (h ^ (__u32)BPF_CORE_READ(t, cred, uid.val)) * 0x100000001b3ULL;
	return h;
}

/* tcp_budgets_take's state, for its callback */
struct budgets_take_ctx {
	struct tcp_work *w;
	struct mcpf_gen_cfg *gc;
	__u64 session_hash;
	__u32 gen, has_rule, ntaken;
	int failed;
};

/*
 * Limit i of the call (the all_tools limits, then the rule's): take one unit of its budget. 1
 * stops the loop (a budget empty, or a limit not there: c->failed says which). A callback, so
 * that the verifier checks it once (16 iterations inlined, each with its loop over the global
 * slots, took 6.18.44's verifier past a million instructions).
 */
static long budget_take_one(__u64 i, void *arg)
{
	struct budgets_take_ctx *c = arg;
	struct tcp_work *w = c->w;
	struct mcpf_gen_cfg *gc = c->gc;
	struct mcpf_budget_key *bk;
	struct mcpf_budget *b, init;
	struct mcpf_limit *lim;
	__u32 slot, n, gen = c->gen & (MCPF_GENS - 1);

	if (!w || !gc)
		return 1;
	if (i < MCPF_TCP_CALL_LIMITS) {
		if (i >= gc->nall_limits)
			return 0;
		slot = gc->all_limits[i & (MCPF_TCP_CALL_LIMITS - 1)];
	} else {
		if (!c->has_rule || i - MCPF_TCP_CALL_LIMITS >= w->rule.nlimits)
			return 0;
		slot = w->rule.limits[(i - MCPF_TCP_CALL_LIMITS) & (MCPF_TCP_CALL_LIMITS - 1)];
	}
	slot = gen * MCPF_TCP_MAX_LIMITS + (slot & (MCPF_TCP_MAX_LIMITS - 1));
	lim = bpf_map_lookup_elem(&tcp_limits, &slot);
	if (!lim) {
		c->failed = slot;
		return 1;
	}
	n = c->ntaken & (2 * MCPF_TCP_CALL_LIMITS - 1);
	bk = &w->taken[n];
	bk->ident = lim->ident;
	bk->scope_key = 0;
	if (lim->scope == MCPF_SCOPE_SESSION)
		bk->scope_key = c->session_hash;
	else if (lim->scope == MCPF_SCOPE_AGENT)
		bk->scope_key = agent_key();
	b = bpf_map_lookup_elem(&tcp_budgets, bk);
	if (!b && (lim->scope == MCPF_SCOPE_SESSION || lim->scope == MCPF_SCOPE_AGENT)) {
		init.left = lim->max;
		bpf_map_update_elem(&tcp_budgets, bk, &init, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&tcp_budgets, bk);
	}
	if (!b || __sync_fetch_and_add(&b->left, -1) <= 0) {
		if (b)
			__sync_fetch_and_add(&b->left, 1);
		c->failed = slot - gen * MCPF_TCP_MAX_LIMITS;
		return 1;
	}
	c->ntaken++;
	if (lim->scope == MCPF_SCOPE_GLOBAL) {
		bool seen = false;

		for (int j = 0; j < 2 * MCPF_TCP_CALL_LIMITS; j++)
			if (j < w->ngslots && w->gslots[j] == slot - gen * MCPF_TCP_MAX_LIMITS)
				seen = true;
		if (!seen && w->ngslots < 2 * MCPF_TCP_CALL_LIMITS)
			w->gslots[w->ngslots++ & (2 * MCPF_TCP_CALL_LIMITS - 1)] =
				slot - gen * MCPF_TCP_MAX_LIMITS;
	}
	return 0;
}

/*
 * Take one unit of every budget of the all_tools limits and of w->rule (when has_rule), w the
 * working state of slot; all or none. Returns the failing slot or -1. A global function: the
 * verifier checks it once.
 */
__noinline int tcp_budgets_take(__u32 slot, __u32 gen, __u32 has_rule, __u64 session_hash)
{
	struct tcp_work *w = slot_at(slot);
	struct budgets_take_ctx c = { .failed = -1 };
	struct mcpf_gen_cfg *gc;
	__u32 ntaken;
	int failed;

	gen &= MCPF_GENS - 1;
	gc = bpf_map_lookup_elem(&tcp_gen, &gen);
	if (!w || !gc)
		return 0;
	c.w = w;
	c.gc = gc;
	c.gen = gen;
	c.has_rule = has_rule;
	c.session_hash = session_hash;
	bpf_loop(2 * MCPF_TCP_CALL_LIMITS, budget_take_one, &c, 0);
	failed = c.failed;
	ntaken = c.ntaken;
	if (failed < 0)
		return -1;
	w->ngslots = 0; /* all given back */
	for (int i = 0; i < 2 * MCPF_TCP_CALL_LIMITS; i++) {
		struct mcpf_budget *b;

		if (i >= ntaken)
			break;
		b = bpf_map_lookup_elem(&tcp_budgets, &w->taken[i]);
		if (b)
			__sync_fetch_and_add(&b->left, 1);
	}
	return failed;
}

static __always_inline bool ticket_take(struct tcp_work *w)
{
	struct mcpf_ticket *t = bpf_map_lookup_elem(&tcp_tickets, w->tool.name);

	if (!t)
		return false;
	if (t->expires_ns && bpf_ktime_get_boot_ns() > t->expires_ns)
		return false;
	if (__sync_fetch_and_add(&t->count, -1) <= 0) {
		__sync_fetch_and_add(&t->count, 1);
		return false;
	}
	return true;
}

static __always_inline void ticket_give_back(struct tcp_work *w)
{
	struct mcpf_ticket *t = bpf_map_lookup_elem(&tcp_tickets, w->tool.name);

	if (t)
		__sync_fetch_and_add(&t->count, 1);
}

#endif
