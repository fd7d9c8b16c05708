/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcp_state: what one run of the TCP plane's programs works in (bpf/tcp.bpf.c includes it after
 * its settings): the working state of a run in a slot of its CPU (struct tcp_work), taken by its
 * first stage and found again by its tail calls; the scan buffers; the hook's counters; which
 * generation of the policy maps is in force.
 */
#ifndef MCPFENCE_TCP_STATE_BPF_H
#define MCPFENCE_TCP_STATE_BPF_H

struct glob_step_ctx {
	__u32 p, s, star, mark, plen, slen;
	int result; /* -1 running, 0 no match, 1 match */
	__u32 _pad;
};

struct glob_scan_ctx {
	__u32 gen;	   /* index in tcp_gen */
	__u32 first, last; /* range of tcp_globs entries of this generation to try */
	__u32 name_len;
	__u32 hit;	 /* index of the first entry that matched; (u32)-1 none */
	__u32 uncertain; /* a match ran out of steps: fail closed */
};

struct reply_ctx {
	__u32 n;
	__u32 from;
	__u32 hit;   /* offset of the text to rewrite, or (u32)-1 */
	__u32 pos;   /* where the needle was found */
	__u32 at;    /* reply_find_loop: the next 8 bytes it looks at */
	__u32 found; /* reply_find_loop: where it found the needle, or (u32)-1 */
	__u32 rkey;  /* the matched denial's MCPF_REASON_KEY */
	__u32 _pad;
};

struct decision {
	__u32 kind;
	__u32 rule;
	__u32 limit;
	__u32 flags;
	__u32 policy; /* tcp_policies index of the generation that decided; 0 none */
	__u32 gen;    /* the generation the decision read (index in tcp_gen), when has_gen */
	__u32 has_gen;
	__u32 why; /* enum mcpf_why, for MCPF_KIND_UNPARSED */
};

/*
 * tcp_list.bpf.h: the walk of a server's send that may hold a tools/list answer, and the tools
 * of that answer (objects of result.tools), to be kept or taken out.
 */
#define MCPF_LIST_MAX_TOOLS 128 /* tools of one send; past that it passes unfiltered */
#define MCPF_LIST_MAX_TTL 4	/* results of one send whose ttlMs can become 0 */
enum list_key {
	LK_OTHER = 0,
	LK_RESULT,
	LK_TOOLS,
	LK_TTL,
	LK_NAME,
};

enum list_tool_flags {
	LT_FIRST = 1,  /* the first of its array */
	LT_NONAME = 2, /* no "name" string, or one with escapes: taken out */
	LT_HIDE = 4,   /* decided: taken out */
};

struct list_walk {
	__u32 n;       /* bytes of the send in the buffer */
	__u32 pos;     /* the next byte */
	__u32 depth;   /* containers open */
	__u32 base;    /* the depth inside a message: 1, 2 in a batch */
	__u64 objects; /* bit d: the container at depth d is an object */
	__u32 in_str, esc, str_start, str_esc;
	__u32 expect_key; /* the next string at this depth is a key */
	__u32 key;	  /* enum list_key of the last key read */
	__u32 result;	  /* depth of a message's result object, 0 outside one */
	__u32 tools;	  /* depth of its tools array, 0 outside */
	__u32 first;	  /* the next tool is its array's first */
	__u32 done;	  /* the walk is over: a value could not be read */
	__u32 seen_tools; /* the value being walked has result.tools: an answer */
	__u32 answers;	  /* whole answers walked */
	__u32 el_start, name_off, name_len, name_flags;
	__u32 ttl_start, ttl_end; /* the ttlMs number of the result being walked */
	__u32 nttl;
	__u32 ttl_s[MCPF_LIST_MAX_TTL], ttl_e[MCPF_LIST_MAX_TTL]; /* ... of the results walked */
	__u32 ntools;	      /* tools recorded, of the value being walked too */
	__u32 ntools_done;    /* tools of whole values */
	__u32 unfiltered;     /* a value with tools could not be read: it passes as it is */
	__u32 kept, hidden;   /* apply: visible tools of the current array, tools taken out */
	__u32 b_start, b_end; /* apply: the range being blanked */
	__u32 t_start[MCPF_LIST_MAX_TOOLS];
	__u32 t_end[MCPF_LIST_MAX_TOOLS];   /* past its '}' */
	__u32 t_comma[MCPF_LIST_MAX_TOOLS]; /* the ',' after it, 0 none */
	__u32 t_name[MCPF_LIST_MAX_TOOLS];  /* offset of its name, past the quote */
	__u16 t_len[MCPF_LIST_MAX_TOOLS];
	__u16 t_flags[MCPF_LIST_MAX_TOOLS];
};

/* stdio.bpf.h: where a run is in a stream's buffer, and the rewrites a step asks of its hook */
#define MCPF_STDIO_ACTS 16 /* a step's rewrites: a batch's calls and a break (a power of 2) */
struct stdio_cursor {
	__u32 lo;     /* buffer bytes at or past lo are in this skb: they can be rewritten */
	__s32 delta;  /* their offset in the skb: buffer offset + delta */
	__u32 end;    /* bytes in the buffer */
	__u32 pos;    /* where the next step starts */
	__u32 vstart; /* MCPF_STDIO_VALUE: where the value starts in the buffer */
	__u32 deny;   /* a value was denied or refused (pipes act on it) */
	__u32 policy; /* the policy in force, for verdicts without a rule */
	__u32 unparsed_allow;
	__u32 rewrite; /* the hook rewrites in place (socketpairs) */
	__u32 nact;
	__u64 ubuf; /* pipes: where the write's bytes are in the writer's memory */
	__u32 len;  /* bytes of the skb or write */
	__u32 done; /* of them, read */
	__u32 old;  /* bytes at the buffer's start from earlier skbs or writes */
	__u32 failed;
	__u32 act_off[MCPF_STDIO_ACTS]; /* buffer offsets */
	__u32 act_len[MCPF_STDIO_ACTS]; /* 1: the byte becomes 0x01; else rw_text's first bytes */
};

/*
 * Working state of one program run, in a slot of its CPU (MCPF_TCP_SLOTS): the stages of one
 * run (tail calls) find it again by its owner, the task that runs it. Loop state lives here
 * rather than on the stack: the verifier then treats it as unknown and bpf_loop callbacks
 * converge at once.
 */
struct tcp_work {
	struct mcpf_slot slot; /* first: userspace reads it (tests) */
	struct http_head hd;
	struct glob_step_ctx gs;
	struct glob_scan_ctx gsc;
	struct reply_ctx rc;
	struct mcpf_conn_key ck;
	struct decision dec;
	struct mcpf_rule rule;
	__u32 cc_flags;
	/* handed from TP_CLIENT to TP_BODY; b_copied: bytes of the send already in the buffer */
	__u32 b_off, b_len, b_why, b_total, b_size, b_copied; /* b_why: enum mcpf_why, 0 */
	struct mcpf_scan_result res;
	struct mcpf_rule_key rkey;
	struct mcpf_stat_key skey;
	struct mcpf_stat_val tool; /* the tool being decided: name, len (and a stat value) */
	__u64 tool_hash;	   /* mcpf_name_hash of tool.name */
	__u64 session_hash;	   /* of the request's Mcp-Session-Id (hd.h_session); 0: none */
	char gpat[MCPF_TCP_GLOB_MAX];
	__u32 nrw;
	__u32 rw_lo; /* stdio: a method before this buffer offset cannot be rewritten any more */
	__u32 rw_off[MCPF_SCAN_MAX_CALLS];
	__u32 rw_span[MCPF_SCAN_MAX_CALLS];
	struct mcpf_budget_key taken[2 * MCPF_TCP_CALL_LIMITS];
	/* the global budgets (limit slots, of dec.gen) the call being decided took */
	__u32 ngslots;
	__u16 gslots[2 * MCPF_TCP_CALL_LIMITS];
	__u8 rw_text[512]; /* stdio: the bytes a rewrite writes */
	struct stdio_cursor sx;
	struct list_walk lw;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MCPF_TCP_SLOTS);
	__type(key, __u32);
	__type(value, struct tcp_work);
} tcp_work_map SEC(".maps");

/* What bpf_loop callbacks are handed, on the caller's stack. */
struct tcp_cb {
	struct tcp_work *w;
	struct mcpf_scan_buf *buf;
	struct mcpf_conn *conn;
	struct sk_msg_md *msg; /* tcp_list.bpf.h: the send it rewrites */
};

/*
 * One scan buffer per slot of each CPU, at cpu * MCPF_TCP_SLOTS + slot (too large for a per-CPU
 * map): userspace sets max_entries.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mcpf_scan_buf);
} tcp_scan_bufs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MCPF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tcp_counters SEC(".maps");

/* Per policy slot: which of its two generations is in force. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MCPF_PSLOTS);
	__type(key, __u32);
	__type(value, struct mcpf_active);
} tcp_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MCPF_GENS);
	__type(key, __u32);
	__type(value, struct mcpf_gen_cfg);
} tcp_gen SEC(".maps");

/* The watched ports, each with the policy slot of its sessions. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MCPF_TCP_MAX_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} tcp_ports SEC(".maps");

/* The policy slot of each stdio session (by its index), set by userspace when it adds one. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MCPF_STDIO_MAX_SESSIONS);
	__type(key, __u32);
	__type(value, __u32);
} stdio_pslots SEC(".maps");

/* The policy slot that decides for the session of ck: its stdio session's, or its port's. */
static __always_inline __u32 ck_pslot(const struct mcpf_conn_key *ck)
{
	if (ck->stdio) {
		__u32 s = (ck->stdio - 1) & (MCPF_STDIO_MAX_SESSIONS - 1);
		__u32 *p = bpf_map_lookup_elem(&stdio_pslots, &s);

		return p ? *p & (MCPF_PSLOTS - 1) : 0;
	} else {
		__u16 port = ck->sport;
		__u8 *p = bpf_map_lookup_elem(&tcp_ports, &port);

		return p ? *p & (MCPF_PSLOTS - 1) : 0;
	}
}

/*
 * The generation in force for the session of ck, read once: its index in tcp_gen into *gen, its
 * settings returned; NULL when its slot has no policy loaded (every call is then denied).
 */
static __always_inline struct mcpf_gen_cfg *gen_in_force(const struct mcpf_conn_key *ck, __u32 *gen)
{
	__u32 pslot = ck_pslot(ck);
	struct mcpf_active *act = bpf_map_lookup_elem(&tcp_active, &pslot);

	if (!act || !act->loaded)
		return NULL;
	*gen = MCPF_GEN_INDEX(pslot, act->gen);
	return bpf_map_lookup_elem(&tcp_gen, gen);
}

/*
 * Per-CPU counts are added atomically: a run preempted between the load and the store of a
 * plain += would lose the count of a run that came in between on the same CPU.
 */
static __always_inline void count(__u32 which, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&tcp_counters, &which);

	if (c)
		__sync_fetch_and_add(c, n);
}

/*
 * ---- slots ----------------------------------------------------------------------------------
 * A run is one invocation of handle_sk_msg with the stages it tail-calls; migration is off for
 * it, but on a preemptible kernel (preempt=full or lazy) it can be preempted, and another
 * task's run start on the same CPU. Per-CPU state shared by the two would let one run decide
 * on the other's bytes: a denied call let through. So a run takes a free slot of its CPU
 * (an atomic compare-and-swap of the owner: a preemption cannot split it), its later stages
 * find it by their task, and it gives it back when it ends. A slot already held by this task
 * is taken back: a task runs one send at a time, so that run is over.
 */

static __always_inline struct tcp_work *slot_take(void)
{
	__u64 me = bpf_get_current_task();

	/* the key is a copy: a loop counter on the stack as 4 bytes, 6.1 loses its value */
	for (__u32 i = 0; i < MCPF_TCP_SLOTS; i++) {
		__u32 s = i;
		struct tcp_work *w = bpf_map_lookup_elem(&tcp_work_map, &s);
		__u64 held;

		if (!w)
			return NULL;
		held = __sync_val_compare_and_swap(&w->slot.owner, 0, me);
		if (held == 0 || held == me) {
			w->slot.idx = s;
			return w;
		}
	}
	return NULL;
}

/* The slot of this task's run, taken by its first stage. */
static __always_inline struct tcp_work *slot_find(void)
{
	__u64 me = bpf_get_current_task();

	for (__u32 i = 0; i < MCPF_TCP_SLOTS; i++) {
		__u32 s = i;
		struct tcp_work *w = bpf_map_lookup_elem(&tcp_work_map, &s);

		if (w && w->slot.owner == me)
			return w;
	}
	return NULL;
}

static __always_inline void slot_release(struct tcp_work *w)
{
	w->slot.owner = 0;
}

/*
 * The working state of slot idx of this CPU, as a map value. The global functions below take
 * their run's slot, not a pointer to it: a global function's pointer argument is plain memory
 * to the verifier, and 6.1 takes no such pointer as a map key or value.
 */
static __always_inline struct tcp_work *slot_at(__u32 idx)
{
	idx &= MCPF_TCP_SLOTS - 1;
	return bpf_map_lookup_elem(&tcp_work_map, &idx);
}

static __always_inline struct mcpf_scan_buf *scan_buf_get(const struct tcp_work *w)
{
	__u32 i =
		bpf_get_smp_processor_id() * MCPF_TCP_SLOTS + (w->slot.idx & (MCPF_TCP_SLOTS - 1));

	return bpf_map_lookup_elem(&tcp_scan_bufs, &i);
}

/* The policy in force for ck's session, for verdicts that no generation's rules decided. */
static __always_inline __u32 policy_in_force(const struct mcpf_conn_key *ck)
{
	struct mcpf_gen_cfg *gc;
	__u32 gen;

	gc = gen_in_force(ck, &gen);
	return gc ? gc->policy : 0;
}

#endif
