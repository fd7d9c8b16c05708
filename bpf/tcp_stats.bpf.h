/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcp_stats: what the kernel plane reports: verdicts per (tool, kind, policy) for `mcpfence stats`
 * (keyed by the name's seeded hash, the name compared in the value), and one event per decision
 * on the tcp_events ring, which `attach` turns into audit lines.
 */
#ifndef MCPFENCE_TCP_STATS_BPF_H
#define MCPFENCE_TCP_STATS_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct mcpf_stat_key);
	__type(value, struct mcpf_stat_val);
} tcp_stats SEC(".maps");

/* Names of the policy indexes in tcp_stats keys: userspace writes and reads it, BPF never. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MCPF_TCP_MAX_POLICIES);
	__type(key, __u32);
	__type(value, struct mcpf_policy_info);
} tcp_policies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MCPF_EVENTS_RING);
} tcp_events SEC(".maps");

/* Per CPU: when an allowed call's event last woke the ring's reader (CLOCK_MONOTONIC ns). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tcp_woke SEC(".maps");

/*
 * Does an allowed call's event at now wake the reader? When an eighth of the ring waits, once
 * per MCPF_EVENTS_WAKE_GAP_NS on this CPU: a reader slower than its writers keeps more than
 * that waiting while it drains, and a wakeup per event (an irq_work, a self-IPI: a VM exit in
 * a guest) cost the sender 30-80 ns a call on average in bench/stdio_kernel part 2.
 */
static __always_inline bool wake_due(__u64 now)
{
	__u32 k = 0;
	__u64 *at;

	if (bpf_ringbuf_query(&tcp_events, BPF_RB_AVAIL_DATA) < MCPF_EVENTS_WAKE_BYTES)
		return false;
	at = bpf_map_lookup_elem(&tcp_woke, &k);
	if (at && now - *at < MCPF_EVENTS_WAKE_GAP_NS)
		return false;
	if (at)
		*at = now;
	return true;
}

/*
 * Count in v (this CPU's copy) if it is tool's: the first count on a CPU claims the copy for its
 * name. With force, count whatever the name (the entry of the empty name takes every leftover).
 */
static __always_inline bool stat_hit(struct mcpf_stat_val *v, const struct mcpf_stat_val *tool,
				     bool force)
{
	if (!v->claimed) {
		mcpf_copy(v->name, tool->name, sizeof(v->name));
		v->len = tool->len;
		v->claimed = 1;
	}
	if (!force && (v->len != tool->len || !mcpf_name_eq(v->name, tool->name, tool->len)))
		return false;
	__sync_fetch_and_add(&v->count, 1);
	return true;
}

/*
 * Count one verdict of kind for tool (name, len; its hash in k->hash) under the policy
 * (tcp_policies index). A hash that meets another tool's, or a full map, counts under the empty
 * name. tool is scratch: its count and claimed are overwritten, and its name on the way.
 */
static __always_inline void stat_count(struct mcpf_stat_key *k, struct mcpf_stat_val *tool,
				       __u32 kind, __u32 policy)
{
	struct mcpf_stat_val *v;

	k->kind = kind;
	k->policy = policy;
	v = bpf_map_lookup_elem(&tcp_stats, k);
	if (v && stat_hit(v, tool, false))
		return;
	if (!v) {
		tool->count = 1;
		tool->claimed = 1;
		if (!bpf_map_update_elem(&tcp_stats, k, tool, BPF_NOEXIST))
			return;
		v = bpf_map_lookup_elem(&tcp_stats, k); /* raced with another CPU */
		if (v && stat_hit(v, tool, false))
			return;
	}
	mcpf_zero(tool->name, sizeof(tool->name));
	tool->len = 0;
	k->hash = mcpf_name_hash(tool->name, 0, cfg_name_seed);
	v = bpf_map_lookup_elem(&tcp_stats, k);
	if (v) {
		stat_hit(v, tool, true);
		return;
	}
	tool->count = 1;
	tool->claimed = 1;
	bpf_map_update_elem(&tcp_stats, k, tool, BPF_NOEXIST);
}

/* The tool being decided: its name (NULL: none could be read) and len, and their hash. */
static __always_inline void tool_set(struct tcp_work *w, const char *name, __u32 len)
{
	if (name)
		mcpf_copy(w->tool.name, name, sizeof(w->tool.name));
	else
		mcpf_zero(w->tool.name, sizeof(w->tool.name));
	w->tool.len = len;
	w->tool_hash = mcpf_name_hash(w->tool.name, len, cfg_name_seed);
}

/* Count one verdict for the tool in w->tool (which it leaves as it found it, or empty). */
static __always_inline void stat_add(struct tcp_work *w, __u32 kind, __u32 policy)
{
	w->skey.hash = w->tool_hash;
	stat_count(&w->skey, &w->tool, kind, policy);
}

/*
 * The event for decision d about call idx of w (none: w NULL or idx >= MCPF_SCAN_MAX_CALLS), in
 * the session named by the request (MCPF_TCP_SESSION_MAX bytes, NUL-padded; NULL: none).
 */
static __always_inline void event_emit(const struct tcp_work *w, __u32 idx,
				       const struct mcpf_conn_key *ck, const char *session,
				       const struct decision *d, __u32 flags)
{
	struct mcpf_event *e = bpf_ringbuf_reserve(&tcp_events, sizeof(*e), 0);
	struct task_struct *t;
	__u32 gen = 0;

	if (!e) {
		count(MCPF_CNT_EVENTS_LOST, 1);
		/* the event would have charged the host-wide table: count the uses to charge */
		for (int i = 0;
		     w && d->kind == MCPF_KIND_ALLOW && d->has_gen && i < 2 * MCPF_TCP_CALL_LIMITS;
		     i++) {
			__u32 k;
			__u64 *u;

			if (i >= w->ngslots)
				break;
			k = (d->gen & (MCPF_GENS - 1)) * MCPF_TCP_MAX_LIMITS +
			    (w->gslots[i] & (MCPF_TCP_MAX_LIMITS - 1));
			u = bpf_map_lookup_elem(&tcp_uncharged, &k);
			if (u)
				__sync_fetch_and_add(u, 1);
		}
		return;
	}
	/* every byte is written once (no memset first: the ring's memory is not cleared) */
	e->ts_ns = bpf_ktime_get_ns();
	/*
	 * Through the task: sk_skb has no bpf_get_current_pid_tgid (6.1) nor _uid_gid (< 6.13).
	 * Its BTF pointer, read by plain loads: three bpf_probe_read_kernel calls cost a 200 B
	 * stdio call about 0.15 us of its 1.5 (bench/stdio_kernel, part 2).
	 */
	t = bpf_get_current_task_btf();
	e->pid = t->tgid;
	e->uid = t->cred->uid.val;
	e->kind = d->kind;
	e->rule = d->rule;
	e->limit = d->limit;
	if (d->has_gen)
		gen = d->gen;
	else if (!gen_in_force(ck, &gen))
		gen = 0;
	e->gen = gen;
	e->cport = ck->cport;
	e->sport = ck->sport;
	e->flags = d->flags | flags;
	e->why = d->kind == MCPF_KIND_UNPARSED ? d->why : MCPF_WHY_NONE;
	e->stdio = ck->stdio;
	e->_pad = 0;
	/* task->comm, NUL-padded: 6.1 has no bpf_get_current_comm in sk_msg */
	mcpf_store64(&e->comm[0], *(const __u64 *)&t->comm[0]);
	mcpf_store64(&e->comm[8], *(const __u64 *)&t->comm[8]);
	if (w && idx < MCPF_SCAN_MAX_CALLS) {
		const struct mcpf_call *c = &w->res.calls[idx & (MCPF_SCAN_MAX_CALLS - 1)];

		mcpf_copy(e->method, c->method, sizeof(e->method));
		mcpf_copy(e->name, c->name, sizeof(e->name));
		mcpf_copy(e->id, c->id, sizeof(e->id));
	} else {
		mcpf_zero(e->method, sizeof(e->method));
		mcpf_zero(e->name, sizeof(e->name));
		mcpf_zero(e->id, sizeof(e->id));
	}
	if (session)
		mcpf_copy(e->session, session, sizeof(e->session));
	else
		mcpf_zero(e->session, sizeof(e->session));
	/*
	 * A wakeup costs the sender several us (an irq_work, then the reader's wakeup), more than
	 * the rest of the program: an allowed call's event does not wake the reader, which drains
	 * the ring every EVENTS_POLL_MS anyway, unless an eighth of the ring waits (wake_due); any
	 * other decision wakes it at once (denials are reported when they happen).
	 */
	if (d->kind != MCPF_KIND_ALLOW || wake_due(e->ts_ns))
		bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	else
		bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

#endif
