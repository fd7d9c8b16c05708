/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcp_decide: the decision for one tools/call in the kernel, in the policy's decision order (hide,
 * exact rule, globs in file order, default, action, conditions that cannot be read here, approval
 * by ticket, budgets), from the rules and globs userspace compiled into the idle generation.
 * Globs match as policy__glob_match does, step for step, within cfg_glob_steps.
 */
#ifndef MCPFENCE_TCP_DECIDE_BPF_H
#define MCPFENCE_TCP_DECIDE_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct mcpf_rule_key);
	__type(value, struct mcpf_rule_entry);
} tcp_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MCPF_GENS *MCPF_TCP_MAX_GLOBS);
	__type(key, __u32);
	__type(value, struct mcpf_glob);
} tcp_globs SEC(".maps");

/*
 * One step of the glob matcher of policy__glob_match (user/policy.c), step for step: '*' any
 * bytes, '?' one UTF-8 character (a byte and its continuation bytes), one backtrack point.
 */
static long glob_step(__u64 i, void *arg)
{
	struct tcp_work *w = ((struct tcp_cb *)arg)->w;
	struct glob_step_ctx *c;
	char pc = 0;

	if (!w)
		return 1;
	c = &w->gs;
	if (c->s >= c->slen) {
		for (int k = 0; k < MCPF_TCP_GLOB_MAX; k++) {
			if (c->p >= c->plen || w->gpat[c->p & (MCPF_TCP_GLOB_MAX - 1)] != '*')
				break;
			c->p++;
		}
		c->result = c->p == c->plen;
		return 1;
	}
	if (c->p < c->plen)
		pc = w->gpat[c->p & (MCPF_TCP_GLOB_MAX - 1)];
	if (pc == '*') {
		c->star = c->p++;
		c->mark = c->s;
	} else if (pc == '?') {
		c->p++;
		c->s++;
		for (int k = 0; k < 4; k++) {
			if (c->s >= c->slen ||
			    (w->tool.name[c->s & (MCPF_NAME_MAX - 1)] & 0xc0) != 0x80)
				break;
			c->s++;
		}
	} else if (c->p < c->plen && pc == w->tool.name[c->s & (MCPF_NAME_MAX - 1)]) {
		c->p++;
		c->s++;
	} else if (c->star != (__u32)-1) {
		c->p = c->star + 1;
		c->s = ++c->mark;
	} else {
		c->result = 0;
		return 1;
	}
	return 0;
}

static long glob_try(__u64 i, void *arg)
{
	struct tcp_cb cb = { .w = ((struct tcp_cb *)arg)->w };
	struct tcp_work *w = cb.w;
	struct glob_scan_ctx *c;
	struct mcpf_glob *g;
	__u32 idx;

	if (!w)
		return 1;
	c = &w->gsc;
	idx = c->first + (__u32)i;
	if (idx >= c->last)
		return 1;
	idx = (c->gen & (MCPF_GENS - 1)) * MCPF_TCP_MAX_GLOBS + (idx & (MCPF_TCP_MAX_GLOBS - 1));
	g = bpf_map_lookup_elem(&tcp_globs, &idx);
	if (!g)
		return 1;
	mcpf_copy(w->gpat, g->pat, sizeof(w->gpat));
	w->gs.p = 0;
	w->gs.s = 0;
	w->gs.mark = 0;
	w->gs.plen = g->len;
	w->gs.slen = c->name_len;
	w->gs.star = (__u32)-1;
	w->gs.result = -1;
	bpf_loop(cfg_glob_steps, glob_step, &cb, 0);
	if (w->gs.result < 0) {
		c->uncertain = 1;
		c->hit = c->first + (__u32)i;
		return 1;
	}
	if (w->gs.result == 1) {
		c->hit = c->first + (__u32)i;
		return 1;
	}
	return 0;
}

/* First entry in [first, last) of this generation's globs matching w->tool.name. */
static __always_inline __u32 glob_find(struct tcp_work *w, __u32 gen, __u32 first, __u32 last,
				       __u32 name_len, __u32 *uncertain)
{
	struct tcp_cb cb = { .w = w };

	w->gsc.gen = gen;
	w->gsc.first = first;
	w->gsc.last = last;
	w->gsc.name_len = name_len;
	w->gsc.hit = (__u32)-1;
	w->gsc.uncertain = 0;
	if (first < last && last <= MCPF_TCP_MAX_GLOBS)
		bpf_loop(last - first, glob_try, &cb, 0);
	*uncertain = w->gsc.uncertain;
	return w->gsc.hit;
}

/*
 * What the policy says of tool w->tool.name before its action: MCPF_KIND_HIDDEN (a hide entry,
 * its index in *idx), MCPF_KIND_INVALID (a glob match ran out of steps: fail closed),
 * MCPF_KIND_RULE (the rule, exact or the first glob in file order, copied to *r) or
 * MCPF_KIND_DEFAULT (no rule).
 */
static __always_inline __u32 rule_lookup(struct tcp_work *w, __u32 gen,
					 const struct mcpf_gen_cfg *gc, __u32 name_len,
					 struct mcpf_rule *r, __u32 *idx)
{
	struct mcpf_rule_entry *re;
	__u32 hit, uncertain = 0;

	hit = glob_find(w, gen, 0, gc->nhide, name_len, &uncertain);
	if (uncertain)
		return MCPF_KIND_INVALID;
	if (hit != (__u32)-1) {
		*idx = hit;
		return MCPF_KIND_HIDDEN;
	}
	w->rkey.gen = gen;
	w->rkey.len = name_len;
	w->rkey.hash = w->tool_hash;
	re = bpf_map_lookup_elem(&tcp_rules, &w->rkey);
	if (re && mcpf_name_eq(re->name, w->tool.name, name_len)) {
		*r = re->rule;
		return MCPF_KIND_RULE;
	}
	hit = glob_find(w, gen, gc->nhide, gc->nglobs, name_len, &uncertain);
	if (uncertain)
		return MCPF_KIND_INVALID;
	if (hit != (__u32)-1) {
		__u32 gi = (gen & (MCPF_GENS - 1)) * MCPF_TCP_MAX_GLOBS +
			   (hit & (MCPF_TCP_MAX_GLOBS - 1));
		struct mcpf_glob *g = bpf_map_lookup_elem(&tcp_globs, &gi);

		if (!g)
			return MCPF_KIND_INVALID;
		*r = g->rule;
		return MCPF_KIND_RULE;
	}
	return MCPF_KIND_DEFAULT;
}

/*
 * The decision order (README: The policy) for tool w->tool.name: hide, rule (exact, then globs in file order, else
 * default), action deny, conditions (not checkable here: fail closed), approval (ticket),
 * limits (all or none).
 */
static __always_inline void decide(struct tcp_work *w, __u32 name_len, __u64 session_hash,
				   struct decision *d)
{
	struct mcpf_rule *r = NULL, rule_copy;
	struct mcpf_gen_cfg *gc;
	__u32 gen = 0, hit = 0, found;
	bool ticket = false;
	int failed;

	d->kind = MCPF_KIND_DEFAULT;
	d->rule = MCPF_TCP_RULE_NONE;
	d->limit = 0;
	d->flags = 0;
	d->policy = 0;
	d->has_gen = 0;
	/* one read: the event names the generation that decided, even if a SIGHUP flips now */
	gc = gen_in_force(&w->ck, &gen);
	if (!gc)
		return;
	d->gen = gen;
	d->has_gen = 1;
	d->policy = gc->policy;
	found = rule_lookup(w, gen, gc, name_len, &rule_copy, &hit);
	if (found == MCPF_KIND_HIDDEN || found == MCPF_KIND_INVALID) {
		d->kind = found;
		d->limit = found == MCPF_KIND_HIDDEN ? hit : 0;
		return;
	}
	if (found == MCPF_KIND_RULE)
		r = &rule_copy;
	if (!r) {
		if (!gc->def_allow)
			return; /* MCPF_KIND_DEFAULT */
	} else {
		d->rule = r->idx;
		if (r->action == MCPF_ACT_DENY) {
			d->kind = MCPF_KIND_RULE;
			return;
		}
		if (r->action == MCPF_ACT_CONDITION) {
			d->kind = MCPF_KIND_CONDITION;
			return;
		}
		if (r->action == MCPF_ACT_APPROVE) {
			ticket = ticket_take(w);
			if (!ticket) {
				d->kind = MCPF_KIND_APPROVAL;
				return;
			}
			d->flags |= MCPF_EV_TICKET;
		}
	}
	if (r)
		w->rule = *r;
	/* most calls have no limit: no call into the budget loop then */
	failed = gc->nall_limits || (r && r->nlimits) ?
			 tcp_budgets_take(w->slot.idx, gen, r != NULL, session_hash) :
			 -1;
	if (failed >= 0) {
		if (ticket)
			ticket_give_back(w);
		d->kind = MCPF_KIND_LIMIT;
		d->limit = failed;
		return;
	}
	d->kind = MCPF_KIND_ALLOW;
}

/*
 * Does tools/list show tool w->tool.name (as stdio_gateway__listable does)? Not when a hide entry
 * names it, its rule denies, it has no rule and the default denies, or a glob match cannot be
 * finished; not before a policy is loaded.
 */
static __always_inline bool listable(struct tcp_work *w, __u32 name_len)
{
	struct mcpf_gen_cfg *gc;
	struct mcpf_rule r;
	__u32 gen = 0, idx = 0, found;

	gc = gen_in_force(&w->ck, &gen);
	if (!gc)
		return false;
	found = rule_lookup(w, gen, gc, name_len, &r, &idx);
	if (found == MCPF_KIND_RULE)
		return r.action != MCPF_ACT_DENY;
	return found == MCPF_KIND_DEFAULT && gc->def_allow;
}

#endif
