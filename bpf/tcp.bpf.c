// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TCP enforcement for MCP over Streamable HTTP (docs/ARCHITECTURE.md: the kernel plane).
 *
 * handle_sock_ops (cgroup v2 sock_ops): when a TCP connection to or from a watched port is
 * established, its socket goes into tcp_socks (a SOCKHASH), both ends of a loopback connection
 * (AF_INET, and AF_INET6 with IPv4-mapped addresses: Express listens on ::). It sees no bytes.
 *
 * handle_sk_msg (sk_msg on tcp_socks): runs on every send of those sockets, in the sender's
 * context, before the bytes reach the peer.
 *  - Client sends: HTTP/1.1 requests, framed by Content-Length. A send that does not hold
 *    the whole request is corked (bpf_msg_cork_bytes) until it does, within bounds; several
 *    requests in one send are taken one at a time (bpf_msg_apply_bytes, the program runs again
 *    on the rest). The body is scanned (mcp_scan), each tools/call decided from the policy maps,
 *    and a denied call is neutralized in place: its method becomes "rpc.denied___", same
 *    length, so that the server answers the same id with -32601 and the connection stays
 *    healthy. A body that cannot be read with certainty gets its first byte replaced, so the
 *    server answers 400 (parse error). Framing that cannot be followed (chunked, a bare LF,
 *    a bad or doubled Content-Length, headers over MCPF_TCP_HDR_MAX) gets the request's first
 *    byte replaced: the server refuses it and closes; later sends on that socket are dropped.
 *    A request's Mcp-Method header (2026-07-28) is rewritten with its body's method.
 *  - Server sends: the reply to a neutralized id ("Method not found") is rewritten, same length,
 *    to read "denied by policy"; a 404 status that starts the send becomes 200 (2026-07-28).
 *    On a connection with a tools/list unanswered, the answer's tools that the policy does
 *    not list are overwritten with spaces (tcp_list.bpf.h, handle_sk_msg_list).
 * It never sees: traffic of sockets outside the cgroup, TLS plaintext, other transports.
 *
 * handle_egress (cgroup_skb egress, same cgroup): a socket that tcp_socks had no room for is
 * marked by sock_ops (or by attach, adopting it) and its packets are dropped here, so that a
 * full map stops connections instead of leaving them unwatched.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "mcpfence.h"
/* stdio.bpf.h scans with the global step (its call site is deep in nested loops) */
#define MCP_SCAN_WANT_GLOBAL
#include "mcp_scan.bpf.h"
#include "http_head.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define SK_DROP 0
#define SK_PASS 1
#define GLOB_STEPS 9000
#define REPLY_SCAN_MAX 16384
#define SPAN_MAX 320

/* The seed of mcpf_name_hash for this attachment: random, set by userspace before load. */
const volatile __u64 cfg_name_seed = 0;
/*
 * Steps of one glob match before it counts as uncertain (denied). Within the caps (patterns of
 * MCPF_TCP_GLOB_MAX - 1 bytes, names of MCPF_NAME_MAX - 1) a match takes at most about 4200
 * (test_glob_differential); tests lower it to reach it.
 */
const volatile __u32 cfg_glob_steps = GLOB_STEPS;

/*
 * 6.17+. Weak: on an older kernel it is not there, and userspace does not load the one program
 * that calls it (handle_sk_msg_server). The search without it (handle_sk_msg_server_loop, see
 * needle_step) measured 4 to 7 times faster (bench/kernel), so it is the one in use everywhere;
 * the kfunc build stays for the comparison and for test_reply_search.
 */
extern int bpf_strnstr(const char *s1__ign, const char *s2__ign, size_t len) __ksym __weak;

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct mcpf_sock_key);
	__type(value, __u64);
} tcp_socks SEC(".maps");

/*
 * Set once a socket is marked in tcp_unwatched (by sock_ops, or by userspace through this map):
 * until then handle_egress passes every packet without a storage lookup. A map of its own
 * (section .data.unwatched) so that userspace can write it by its fd.
 */
__u32 unwatched_any SEC(".data.unwatched") = 0;

/*
 * The sockets of watched connections that tcp_socks had no room for (a SOCKHASH refuses an
 * insertion past max_entries: an agent that holds enough connections open could otherwise make
 * the next one unwatched). They are marked here and handle_egress drops their packets: such a
 * connection carries nothing, and its sends end in ETIMEDOUT. Userspace marks an adopted
 * socket it could not put in tcp_socks the same way (the key is then the socket's fd).
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} tcp_unwatched SEC(".maps");

/*
 * Connections that mcpfence proxy makes to the server (its sockets carry MCPF_PROXY_MARK): the
 * proxy judged their calls, so neither end goes in tcp_socks. The client end is seen first
 * (its SYN-ACK comes before the server's ACK), and leaves the key here for the server end.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct mcpf_conn_key);
	__type(value, __u8);
} tcp_proxied SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mcpf_conn_key);
	__type(value, struct mcpf_conn);
} tcp_conns SEC(".maps");

/* A zeroed connection state, to create entries without a large stack value. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mcpf_conn);
} tcp_conn_zero SEC(".maps");

/* The stages of handle_sk_msg, as tail calls: each one is verified within its own bounds. */
enum tcp_prog {
	TP_CLIENT = 0,
	TP_BODY = 1,
	TP_SERVER = 2,
	TP_LIST = 3,
};

/*
 * The stages, set by userspace (kernel_load.c) when it loads the TCP plane (`attach --pid`
 * alone does not): the server's is one of two builds, the bpf_loop search or the bpf_strnstr
 * one. libbpf would fail the load on a slot set here whose program is left out.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} tcp_progs SEC(".maps");

/* the working state, then what decides and counts a call */
#include "tcp_state.bpf.h"
#include "tcp_budgets.bpf.h"
#include "tcp_decide.bpf.h"
#include "tcp_stats.bpf.h"

static const char reply_needle[] = ",\"error\":{\"code\":-32601,\"message\":\"Method not found\"";
#define REPLY_NEEDLE_LEN (sizeof(reply_needle) - 1)
#define REPLY_TEXT_OFF (REPLY_NEEDLE_LEN - 17) /* where "Method not found" starts */

static __always_inline bool port_watched(__u16 port)
{
	return bpf_map_lookup_elem(&tcp_ports, &port) != NULL;
}

/* IPv4 as ::ffff:a.b.c.d, so that an AF_INET client and an AF_INET6 server agree. */
static __always_inline void addr_set(__u32 *dst, __u32 family, __u32 ip4, const __u32 *ip6)
{
	if (family == AF_INET) {
		dst[0] = 0;
		dst[1] = 0;
		dst[2] = bpf_htonl(0xffff);
		dst[3] = ip4;
	} else {
		dst[0] = ip6[0];
		dst[1] = ip6[1];
		dst[2] = ip6[2];
		dst[3] = ip6[3];
	}
}

/*
 * A watched connection's key, the same from both ends. Returns 1 for the client end (the remote
 * port is watched), 2 for the server end, 0 when neither port is watched.
 */
static __always_inline int conn_key_make(struct mcpf_conn_key *k, __u32 family, __u32 lip4,
					 const __u32 *lip6, __u32 rip4, const __u32 *rip6,
					 __u16 lport, __u16 rport)
{
	if (family != AF_INET && family != AF_INET6)
		return 0;
	mcpf_zero(k, sizeof(*k));
	if (port_watched(rport)) {
		addr_set(k->cli, family, lip4, lip6);
		addr_set(k->srv, family, rip4, rip6);
		k->cport = lport;
		k->sport = rport;
		return 1;
	}
	if (port_watched(lport)) {
		addr_set(k->srv, family, lip4, lip6);
		addr_set(k->cli, family, rip4, rip6);
		k->sport = lport;
		k->cport = rport;
		return 2;
	}
	return 0;
}

#define SOL_TCP 6
#define TCP_USER_TIMEOUT 18
#define UNWATCHED_TIMEOUT_MS 1000

/*
 * A watched connection whose socket found tcp_socks full (its sends would pass unread): fail
 * closed. The socket is marked for handle_egress, which drops its packets, and given a TCP user
 * timeout, so that a send on it fails with ETIMEDOUT within about a second instead of hanging
 * through minutes of retransmissions (where bpf_setsockopt cannot set it, the drop stays).
 */
static __always_inline void unwatched(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	int ms = UNWATCHED_TIMEOUT_MS;
	__u32 *mark;

	count(MCPF_CNT_UNWATCHED, 1);
	if (!sk)
		return;
	/* before the mark: a packet that finds the mark has found the flag set */
	*(volatile __u32 *)&unwatched_any = 1;
	mark = bpf_sk_storage_get(&tcp_unwatched, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (mark)
		*mark = 1;
	bpf_setsockopt(skops, SOL_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
}

/*
 * sock_ops: the only hook that sees a TCP connection established in a cgroup and can put its
 * socket in a SOCKHASH. It sees no payload.
 */
SEC("sockops")
int handle_sock_ops(struct bpf_sock_ops *skops)
{
	struct mcpf_sock_key key;
	__u32 lip6[4], rip6[4];
	struct bpf_sock *sk;
	int end;

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	lip6[0] = skops->local_ip6[0];
	lip6[1] = skops->local_ip6[1];
	lip6[2] = skops->local_ip6[2];
	lip6[3] = skops->local_ip6[3];
	rip6[0] = skops->remote_ip6[0];
	rip6[1] = skops->remote_ip6[1];
	rip6[2] = skops->remote_ip6[2];
	rip6[3] = skops->remote_ip6[3];
	mcpf_zero(&key, sizeof(key));
	end = conn_key_make(&key.conn, skops->family, skops->local_ip4, lip6, skops->remote_ip4,
			    rip6, (__u16)skops->local_port, (__u16)bpf_ntohl(skops->remote_port));
	if (!end)
		return 1;
	sk = skops->sk;
	if (end == 1 && sk && sk->mark == MCPF_PROXY_MARK) {
		__u8 one = 1;

		bpf_map_update_elem(&tcp_proxied, &key.conn, &one, BPF_ANY);
		return 1;
	}
	if (end == 2 && bpf_map_lookup_elem(&tcp_proxied, &key.conn)) {
		bpf_map_delete_elem(&tcp_proxied, &key.conn);
		return 1;
	}
	key.server_side = end == 2;
	/* a new connection on a 4-tuple used before starts clean (not poisoned, nothing pending) */
	if (end == 1)
		bpf_map_delete_elem(&tcp_conns, &key.conn);
	if (bpf_sock_hash_update(skops, &tcp_socks, &key, BPF_ANY))
		unwatched(skops);
	return 1;
}

/*
 * cgroup_skb egress: drops every packet of a socket marked in tcp_unwatched, and passes every
 * other one: at the cost of one load of unwatched_any until a socket has been marked, then of
 * one lookup in the socket's own storage.
 */
SEC("cgroup_skb/egress")
int handle_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (!*(volatile __u32 *)&unwatched_any || !sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	return bpf_sk_storage_get(&tcp_unwatched, sk, 0, 0) ? 0 : 1;
}

/* ---- rewriting in place --------------------------------------------------------------- */

/* Make the request at offset off invalid from its first byte: the server refuses it. */
static __always_inline void poison_at(struct sk_msg_md *msg, __u32 off)
{
	__u8 *data, *end;

	if (off > 0xffff || bpf_msg_pull_data(msg, off, off + 1, 0))
		return;
	data = msg->data;
	end = msg->data_end;
	if (data + 1 > end)
		return;
	data[0] = 0x01;
}

/* Replace the string at [off, off + span) (quotes included) with "rpc.denied" and '_'. */
static __always_inline int neutralize_method(struct sk_msg_md *msg, __u32 off, __u32 span)
{
	const __u64 w0 = W8('r', 'p', 'c', '.', 'd', 'e', 'n', 'i');
	__u8 *data, *end;

	if (span < 12 || span > SPAN_MAX)
		return -1;
	if (bpf_msg_pull_data(msg, off + 1, off + span - 1, 0))
		return -1;
	data = msg->data;
	end = msg->data_end;
	for (__u32 j = 0; j < SPAN_MAX - 2; j++) {
		__u8 ch;

		if (data + j + 1 > end)
			break;
		if (j < 8)
			ch = (w0 >> (8 * j)) & 0xff;
		else if (j == 8)
			ch = 'e';
		else if (j == 9)
			ch = 'd';
		else
			ch = '_';
		data[j] = ch;
	}
	return 0;
}

/*
 * The Mcp-Method header (2026-07-28) of a request whose tools/call was neutralized: its value,
 * "tools/call" at off, becomes "rpc.denied", which is what the body's method now reads. A server
 * of that revision checks the header against the body: left as it was, it answers -32020 (the
 * headers and body disagree, naming the rewritten method) instead of -32601 for the denied id.
 */
static __always_inline void neutralize_method_header(struct sk_msg_md *msg, __u32 off)
{
	const __u64 w0 = W8('r', 'p', 'c', '.', 'd', 'e', 'n', 'i');
	__u8 *data, *end;

	if (off > MCPF_TCP_HDR_MAX || bpf_msg_pull_data(msg, off, off + 10, 0))
		return;
	data = msg->data;
	end = msg->data_end;
	if (data + 10 > end)
		return;
	for (int j = 0; j < 8; j++)
		data[j] = (w0 >> (8 * j)) & 0xff;
	data[8] = 'e';
	data[9] = 'd';
}

/* ---- one request ---------------------------------------------------------------------- */

static __always_inline bool is_tools_call(const struct mcpf_call *c)
{
	return (c->flags & MCPF_CALL_HAS_METHOD) && c->method_len == 10 &&
	       mcpf_load64(&c->method[0]) == W8('t', 'o', 'o', 'l', 's', '/', 'c', 'a') &&
	       c->method[8] == 'l' && c->method[9] == 'l';
}

static __always_inline bool is_tools_list(const struct mcpf_call *c)
{
	return (c->flags & MCPF_CALL_HAS_METHOD) && c->method_len == 10 &&
	       mcpf_load64(&c->method[0]) == W8('t', 'o', 'o', 'l', 's', '/', 'l', 'i') &&
	       c->method[8] == 's' && c->method[9] == 't';
}

static __always_inline void pending_add(struct mcpf_conn *conn, const struct mcpf_call *c,
					const struct decision *d)
{
	__u32 slot = conn->next_pending & (MCPF_TCP_PENDING - 1);
	struct mcpf_pending *p = &conn->pending[slot];

	if (!(c->flags & MCPF_CALL_HAS_ID) || !c->id_len || c->id_len >= MCPF_ID_MAX)
		return;
	if (!p->len) /* else the oldest is overwritten: npending stays */
		__sync_fetch_and_add(&conn->npending, 1);
	mcpf_copy(p->id, c->id, sizeof(p->id));
	p->kind = d->kind;
	p->gen = d->has_gen ? d->gen & (MCPF_GENS - 1) : 0;
	p->idx = d->kind == MCPF_KIND_LIMIT || d->kind == MCPF_KIND_HIDDEN ? d->limit : d->rule;
	p->len = c->id_len;
	conn->next_pending = slot + 1;
}

/* The decision for the tool in w->tool, into w->dec, w the state of slot. A global function. */
__noinline int tcp_decide_call(__u32 slot, __u32 name_len, __u64 session_hash)
{
	struct tcp_work *w = slot_at(slot);
	struct decision d;

	if (!w)
		return 0;
	w->ngslots = 0;
	decide(w, name_len, session_hash, &d);
	w->dec = d;
	stat_add(w, d.kind, d.policy);
	return 0;
}

/* The event for w->dec (w the state of slot), about call idx (none: >= MCPF_SCAN_MAX_CALLS). */
__noinline int tcp_emit(__u32 slot, __u32 idx, __u32 flags)
{
	struct tcp_work *w = slot_at(slot);

	if (!w)
		return 0;
	event_emit(w, idx, &w->ck, w->hd.h_session, &w->dec, flags);
	return 0;
}

static long call_one(__u64 i, void *arg)
{
	struct tcp_work *w = ((struct tcp_cb *)arg)->w;
	struct mcpf_conn *conn;
	struct mcpf_call *c;
	__u32 kind;

	if (!w || i >= w->res.ncalls || i >= MCPF_SCAN_MAX_CALLS)
		return 1;
	c = &w->res.calls[i & (MCPF_SCAN_MAX_CALLS - 1)];
	if (is_tools_list(c)) {
		/* the server's sends are walked until its answer went by (tcp_list.bpf.h) */
		conn = ((struct tcp_cb *)arg)->conn;
		if (!conn)
			conn = bpf_map_lookup_elem(&tcp_conns, &w->ck);
		if (conn)
			__sync_fetch_and_add(&conn->list, 1);
		return 0;
	}
	if (!is_tools_call(c))
		return 0;
	count(MCPF_CNT_CALLS, 1);
	if (!(c->flags & MCPF_CALL_HAS_NAME) || c->name_len >= MCPF_NAME_MAX) {
		tool_set(w, NULL, 0);
		w->dec.kind = MCPF_KIND_INVALID;
		w->dec.rule = MCPF_TCP_RULE_NONE;
		w->dec.limit = 0;
		w->dec.flags = 0;
		w->dec.has_gen = 0;
		stat_add(w, MCPF_KIND_INVALID, policy_in_force(&w->ck));
	} else {
		tool_set(w, c->name, c->name_len);
		tcp_decide_call(w->slot.idx, c->name_len, w->session_hash);
	}
	kind = w->dec.kind;
	if (kind != MCPF_KIND_ALLOW && w->nrw < MCPF_SCAN_MAX_CALLS) {
		/* stdio: a method an earlier skb held is past rewriting, its line is broken */
		__u32 broken = c->method_off < w->rw_lo ? MCPF_EV_BROKEN : 0;

		w->rw_off[w->nrw & (MCPF_SCAN_MAX_CALLS - 1)] = c->method_off;
		w->rw_span[w->nrw & (MCPF_SCAN_MAX_CALLS - 1)] = c->method_span;
		w->nrw++;
		/* its id waits for the server's answer (looked up here: allowed calls need not) */
		conn = ((struct tcp_cb *)arg)->conn;
		if (!conn)
			conn = bpf_map_lookup_elem(&tcp_conns, &w->ck);
		if (conn && !broken)
			pending_add(conn, c, &w->dec);
		tcp_emit(w->slot.idx, i, w->cc_flags | MCPF_EV_NEUTRALIZED | broken);
	} else {
		tcp_emit(w->slot.idx, i, w->cc_flags);
	}
	return 0;
}

/*
 * Copy the bytes [from, from + len) of msg to buf->data[dst..]: pulled in, then bounded for the
 * verifier (len <= max, a constant at each call site; dst <= MCPF_TCP_HDR_MAX, and max leaves
 * room for it). Returns 0, or -1 when the bytes cannot be had.
 */
static __always_inline int msg_copy(struct sk_msg_md *msg, struct mcpf_scan_buf *buf, __u32 dst,
				    __u32 from, __u32 len, __u32 max)
{
	void *data;
	__u64 l = len;

	if (bpf_msg_pull_data(msg, from, from + len, 0))
		return -1;
	data = msg->data;
	barrier_var(l);
	if (l > max || data + l > (void *)(long)msg->data_end)
		return -1;
	dst &= 2 * MCPF_TCP_HDR_MAX - 1;
	if (dst > MCPF_TCP_HDR_MAX || bpf_probe_read_kernel(&buf->data[dst], l, data))
		return -1;
	return 0;
}

/*
 * The body [off, off + len) of one request is in msg, into the scan buffer: where the client
 * stage put the send's first bytes, the body is read in place, after them (so its offsets are
 * the send's); else it is copied to the buffer's start. Returns the offset in msg of buffer byte
 * 0, or -1 when it cannot be read.
 */
static __always_inline int body_load(struct sk_msg_md *msg, struct mcpf_scan_buf *buf,
				     struct tcp_work *w, __u32 off, __u32 len)
{
	__u32 copied = w->b_copied, end = off + len;

	if (len > MCPF_SCAN_BUF_MAX || copied > MCPF_TCP_HDR_MAX)
		return -1;
	if (end <= copied)
		return 0;
	if (end - copied <= MCPF_SCAN_BUF_MAX - MCPF_TCP_HDR_MAX)
		return msg_copy(msg, buf, copied, copied, end - copied,
				MCPF_SCAN_BUF_MAX - MCPF_TCP_HDR_MAX);
	return msg_copy(msg, buf, 0, off, len, MCPF_SCAN_BUF_MAX) ? -1 : (int)off;
}

/*
 * The body [off, off + len) of one request is whole in msg: scan, decide, neutralize. why: the
 * head already says it cannot be read (enum mcpf_why), or 0.
 */
static __always_inline void body_handle(struct sk_msg_md *msg, struct tcp_work *w,
					struct mcpf_conn_key *ck, __u32 off, __u32 len, __u32 why)
{
	struct mcpf_scan_buf *buf = scan_buf_get(w);
	struct tcp_cb cb = { .w = w };
	struct mcpf_gen_cfg *gc;
	struct decision d = {};
	__u32 gen = 0, flags = 0;
	bool unparsed = why != MCPF_WHY_NONE;
	int base = 0;

	w->res.status = MCPF_SCAN_UNPARSED;
	w->res.ncalls = 0;
	w->res.flags = 0;
	w->nrw = 0;
	if (!buf) {
		unparsed = true;
		why = MCPF_WHY_BUSY;
	} else if (!unparsed) {
		base = body_load(msg, buf, w, off, len);
		if (base < 0) {
			unparsed = true;
			why = MCPF_WHY_TOO_LARGE;
		}
	}
	if (!unparsed) {
		mcp_scan_from(buf, off - base, off - base + len, &w->res);
		why = http_body_why(&w->hd, &w->res);
		unparsed = why != MCPF_WHY_NONE;
		if (why == MCPF_WHY_HEADERS)
			flags |= MCPF_EV_HDR_MISMATCH;
	}
	if (w->res.flags & MCPF_SCAN_BATCH)
		flags |= MCPF_EV_BATCH;
	if (unparsed) {
		gc = gen_in_force(ck, &gen);
		d.kind = MCPF_KIND_UNPARSED;
		d.rule = MCPF_TCP_RULE_NONE;
		d.why = why;
		tool_set(w, NULL, 0);
		stat_add(w, MCPF_KIND_UNPARSED, gc ? gc->policy : 0);
		if (gc && gc->unparsed_allow && !(flags & MCPF_EV_HDR_MISMATCH)) {
			event_emit(NULL, MCPF_SCAN_MAX_CALLS, ck, w->hd.h_session, &d, flags);
			return;
		}
		if (len)
			poison_at(msg, off);
		event_emit(NULL, MCPF_SCAN_MAX_CALLS, ck, w->hd.h_session, &d,
			   flags | MCPF_EV_NEUTRALIZED);
		return;
	}
	w->cc_flags = flags;
	w->rw_lo = 0;
	bpf_loop(MCPF_SCAN_MAX_CALLS, call_one, &cb, 0);
	for (int r = 0; r < MCPF_SCAN_MAX_CALLS; r++) {
		__u32 o, s;

		if (r >= w->nrw)
			break;
		o = w->rw_off[r];
		s = w->rw_span[r];
		if (o > MCPF_SCAN_BUF_MAX || s > SPAN_MAX || neutralize_method(msg, base + o, s))
			poison_at(msg, off); /* cannot rewrite the method: refuse the whole body */
	}
	/* one call when Mcp-Method is there (http_head_agrees), and it said tools/call */
	if (w->nrw && (w->hd.hc.seen & (1u << HDR_MCP_METHOD)) && w->hd.h_method_len == 10)
		neutralize_method_header(msg, w->hd.h_method_off);
}

static __always_inline struct mcpf_conn *conn_get(struct mcpf_conn_key *ck)
{
	struct mcpf_conn *conn = bpf_map_lookup_elem(&tcp_conns, ck);
	struct mcpf_conn *fresh;
	__u32 zero = 0;

	if (conn)
		return conn;
	fresh = bpf_map_lookup_elem(&tcp_conn_zero, &zero);
	if (!fresh)
		return NULL;
	bpf_map_update_elem(&tcp_conns, ck, fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&tcp_conns, ck);
}

/* The request [0, total) is decided: let it through, and run again on what follows it. */
static __always_inline int framed(struct sk_msg_md *msg, __u32 total, __u32 size)
{
	count(MCPF_CNT_REQUESTS, 1);
	count(MCPF_CNT_BYTES, total);
	if (total != size)
		bpf_msg_apply_bytes(msg,
				    total); /* more requests follow, or the rest of a large body */
	return SK_PASS;
}

/*
 * Refuse the request this send starts, unread: its first byte made invalid (the server answers
 * 400 and closes), the connection's later sends dropped; one unparsed verdict counted (k and
 * tool are scratch) and its event, with flags and why (enum mcpf_why).
 */
static __always_inline int request_refuse(struct sk_msg_md *msg, struct mcpf_conn_key *ck,
					  struct mcpf_conn *conn, struct mcpf_stat_key *k,
					  struct mcpf_stat_val *tool, const char *session,
					  __u32 flags, __u32 why)
{
	struct decision d = { .kind = MCPF_KIND_UNPARSED, .rule = MCPF_TCP_RULE_NONE, .why = why };

	count(MCPF_CNT_POISONED, 1);
	poison_at(msg, 0);
	conn->phase = MCPF_CONN_POISONED;
	mcpf_zero(tool->name, sizeof(tool->name));
	tool->len = 0;
	k->hash = mcpf_name_hash(tool->name, 0, cfg_name_seed);
	stat_count(k, tool, MCPF_KIND_UNPARSED, policy_in_force(ck));
	event_emit(NULL, MCPF_SCAN_MAX_CALLS, ck, session, &d, flags | MCPF_EV_NEUTRALIZED);
	return SK_PASS;
}

static __always_inline int client_send(struct sk_msg_md *msg, struct tcp_work *w)
{
	struct mcpf_scan_buf *buf = scan_buf_get(w);
	struct mcpf_conn_key *ck = &w->ck;
	struct mcpf_conn *conn = conn_get(ck);
	struct hdr_ctx *hc;
	__u32 size = msg->size, n, total;

	if (!buf || !w || !conn)
		return SK_DROP; /* cannot happen with maps in place: fail closed */
	/*
	 * apply_bytes and cork_bytes stay on the message from an earlier run of this program on
	 * it (after bpf_msg_apply_bytes, the kernel runs it again on the rest): clear both, or a
	 * stale apply_bytes would pass part of this request and run the program on its tail.
	 */
	bpf_msg_apply_bytes(msg, 0);
	bpf_msg_cork_bytes(msg, 0);
	if (conn->phase == MCPF_CONN_POISONED)
		return SK_DROP;
	if (!size)
		return SK_PASS;
	n = size < MCPF_TCP_HDR_MAX ? size : MCPF_TCP_HDR_MAX;
	if (msg_copy(msg, buf, 0, 0, n, MCPF_TCP_HDR_MAX))
		goto poison;
	hc = &w->hd.hc;
	http_head_parse(buf, n, &w->hd);
	if (hc->error)
		goto poison;
	if (!hc->end) {
		if (size >= MCPF_TCP_HDR_MAX)
			goto poison;
		count(MCPF_CNT_CORKED, 1);
		bpf_msg_cork_bytes(msg, size + 1);
		return SK_PASS;
	}
	if (hc->seen & (1u << HDR_TRANSFER_ENCODING))
		goto poison;
	/* a pooled connection carries requests of several sessions: each request says its own */
	w->session_hash =
		w->hd.h_session_len && w->hd.h_session_len < MCPF_TCP_SESSION_MAX ?
			mcpf_name_hash(w->hd.h_session, w->hd.h_session_len, cfg_name_seed) :
			0;
	total = hc->end + (__u32)hc->cl;
	if (hc->cl > MCPF_SCAN_BUF_MAX) {
		/* too large to read: its first body byte is made invalid, the rest passes */
		if (size <= hc->end) {
			count(MCPF_CNT_CORKED, 1);
			bpf_msg_cork_bytes(msg, hc->end + 1);
			return SK_PASS;
		}
		w->b_why = MCPF_WHY_TOO_LARGE;
		goto body;
	}
	if (size < total) {
		count(MCPF_CNT_CORKED, 1);
		bpf_msg_cork_bytes(msg, total);
		return SK_PASS;
	}
	if (!hc->cl)
		return framed(msg, total, size);
	w->b_why = http_head_body_why(&w->hd, buf);
body:
	w->b_off = hc->end;
	w->b_len = (__u32)hc->cl;
	w->b_total = total;
	w->b_size = size;
	w->b_copied = n;
	bpf_tail_call(msg, &tcp_progs, TP_BODY);
	/* fall through: the body stage is missing, refuse the request */
poison:
	return request_refuse(msg, ck, conn, &w->skey, &w->tool, w->hd.h_session, MCPF_EV_HTTP,
			      MCPF_WHY_FRAMING);
}

/* ---- replies -------------------------------------------------------------------------- */

#include "tcp_list.bpf.h"

/* Does "id":<pending id j> end just before offset w->rc.pos of the scan buffer? */
static long id_match(__u64 j, void *arg)
{
	struct mcpf_scan_buf *buf = ((struct tcp_cb *)arg)->buf;
	struct mcpf_conn *conn = ((struct tcp_cb *)arg)->conn;
	struct tcp_work *w = ((struct tcp_cb *)arg)->w;
	struct mcpf_pending *p;
	__u32 len, start, h;

	if (!buf || !w || !conn)
		return 1;
	p = &conn->pending[j & (MCPF_TCP_PENDING - 1)];
	len = p->len;
	h = w->rc.pos;
	if (!len || len >= MCPF_ID_MAX || h < len + 5 || h > REPLY_SCAN_MAX)
		return 0;
	start = h - len - 5;
	if (buf->data[start & 0xffff] != '"' || buf->data[(start + 1) & 0xffff] != 'i' ||
	    buf->data[(start + 2) & 0xffff] != 'd' || buf->data[(start + 3) & 0xffff] != '"' ||
	    buf->data[(start + 4) & 0xffff] != ':')
		return 0;
	/*
	 * 8 bytes a step, the last word masked: a loop of 48 single bytes took 6.18.44's verifier
	 * past a million instructions (a state per byte and pending id).
	 */
	for (__u32 k = 0; k < MCPF_ID_MAX / 8; k++) {
		__u32 at = 8 * k;
		__u64 m;

		if (at >= len)
			break;
		m = len - at >= 8 ? ~0ULL : (1ULL << (8 * (len - at))) - 1;
		if ((mcpf_load64(&buf->data[(start + 5 + at) & 0xffff]) ^ mcpf_load64(&p->id[at])) &
		    m)
			return 0;
	}
	w->rc.rkey = MCPF_REASON_KEY(p->gen, p->kind, p->idx);
	p->len = 0;
	__sync_fetch_and_add(&conn->npending, -1);
	w->rc.hit = h + REPLY_TEXT_OFF;
	return 1;
}

/*
 * Without bpf_strnstr: the needle's '-' (of -32601, its byte REPLY_ANCHOR) is rare
 * in answers, so 8 bytes a step, SEARCH_WORDS words a callback, the words that hold one are
 * looked at closer: each '-' is compared with the whole needle around it, 8 bytes at a time.
 * rc->found: where the first needle starting at or past rc->from starts, or stays (u32)-1;
 * rc->at: the next word to look at.
 */
#define REPLY_ANCHOR 17
#define SEARCH_WORDS 8

static __always_inline bool needle_at(const struct mcpf_scan_buf *buf, __u32 p)
{
	p &= REPLY_SCAN_MAX - 1;
	for (__u32 k = 0; k + 8 <= REPLY_NEEDLE_LEN; k += 8)
		if (mcpf_load64(&buf->data[p + k]) != mcpf_load64(&reply_needle[k]))
			return false;
	return mcpf_load64(&buf->data[p + REPLY_NEEDLE_LEN - 8]) ==
	       mcpf_load64(&reply_needle[REPLY_NEEDLE_LEN - 8]);
}

/*
 * One word at rc->at: 1 when the search is over (found, or past the end), else 0. The first '-'
 * in it is looked at and the next word starts past it: no loop over its bits (8 of them in each
 * of SEARCH_WORDS words took 6.18.44's verifier past a million instructions).
 */
static __always_inline int needle_word(const struct mcpf_scan_buf *buf, struct reply_ctx *rc)
{
	__u32 at = rc->at, b, p;
	__u64 x, m;

	if (at + REPLY_NEEDLE_LEN - REPLY_ANCHOR > rc->n + 7 || rc->n > REPLY_SCAN_MAX)
		return 1;
	/* the bytes equal to '-' get their top bit set (some above one too: the lowest is one) */
	x = mcpf_load64(&buf->data[at & (REPLY_SCAN_MAX - 1)]) ^ 0x2d2d2d2d2d2d2d2dULL;
	m = (x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL;
	if (!m) {
		rc->at = at + 8;
		return 0;
	}
	b = (__u32)((((m & -m) >> 7) * 0x0001020304050607ULL) >> 56);
	rc->at = at + b + 1;
	p = at + b - REPLY_ANCHOR;
	if (p + REPLY_ANCHOR < at || p < rc->from) /* before the search's start */
		return 0;
	if (p + REPLY_NEEDLE_LEN > rc->n)
		return 1;
	if (needle_at(buf, p)) {
		rc->found = p;
		return 1;
	}
	return 0;
}

static long needle_step(__u64 i, void *arg)
{
	const struct mcpf_scan_buf *buf = ((struct tcp_cb *)arg)->buf;
	struct tcp_work *w = ((struct tcp_cb *)arg)->w;

	if (!buf || !w)
		return 1;
	/* SEARCH_WORDS of them: a callback costs more than a word */
	if (needle_word(buf, &w->rc) || needle_word(buf, &w->rc) || needle_word(buf, &w->rc) ||
	    needle_word(buf, &w->rc) || needle_word(buf, &w->rc) || needle_word(buf, &w->rc) ||
	    needle_word(buf, &w->rc) || needle_word(buf, &w->rc))
		return 1;
	return 0;
}

/* Where the first needle at or past from starts, or -1: the kfunc, else 8 bytes a step. */
static __always_inline int reply_find(struct tcp_cb *cb, __u32 from, bool loop)
{
	struct reply_ctx *rc = &cb->w->rc;
	int pos;

	if (!loop) {
		pos = bpf_strnstr((const char *)&cb->buf->data[from & (REPLY_SCAN_MAX - 1)],
				  reply_needle, rc->n - from);
		return pos < 0 ? -1 : pos + (int)from;
	}
	rc->at = from + REPLY_ANCHOR;
	rc->found = (__u32)-1;
	/* a word moves at least a byte on (past a '-'), usually 8 */
	bpf_loop(REPLY_SCAN_MAX / SEARCH_WORDS + 1, needle_step, cb, 0);
	return rc->found == (__u32)-1 ? -1 : (int)rc->found;
}

static __always_inline long reply_search(void *arg, bool loop)
{
	struct tcp_cb cb = *(struct tcp_cb *)arg;
	struct reply_ctx *rc;
	int pos;

	if (!cb.buf || !cb.w || !cb.conn)
		return 1;
	rc = &cb.w->rc;
	if (rc->from >= rc->n || rc->n > REPLY_SCAN_MAX)
		return 1;
	pos = reply_find(&cb, rc->from, loop);
	if (pos < 0)
		return 1;
	rc->pos = pos;
	bpf_loop(MCPF_TCP_PENDING, id_match, &cb, 0);
	if (rc->hit != (__u32)-1)
		return 1;
	rc->from = pos + 1;
	return 0;
}

static long reply_search_kfunc(__u64 i, void *arg)
{
	return reply_search(arg, false);
}

static long reply_search_loop(__u64 i, void *arg)
{
	return reply_search(arg, true);
}

/*
 * The send starts with a response whose status is 404, and its first denial was rewritten:
 * the status becomes 200. A server of the 2026-07-28 revision answers an unknown method
 * (rpc.denied) with HTTP 404 and the JSON-RPC error as its body; the SDK client takes that for
 * a failed POST, not for the answer to its call. On 200 the error is in-band, as a handler's
 * error is in that revision, and the client reads "denied by policy" as the call's answer.
 * Earlier revisions answer it on 200 already.
 */
static __always_inline void reply_status_200(struct sk_msg_md *msg)
{
	__u8 *data, *end;

	if (bpf_msg_pull_data(msg, 9, 12, 0))
		return;
	data = msg->data;
	end = msg->data_end;
	if (data + 3 > end || data[0] != '4' || data[1] != '0' || data[2] != '4')
		return;
	data[0] = '2';
	data[1] = '0';
	data[2] = '0';
}

/* loop: search without the bpf_strnstr kfunc (a constant at each call site). */
static __always_inline int server_send(struct sk_msg_md *msg, struct tcp_work *w, bool loop)
{
	struct mcpf_conn *conn = bpf_map_lookup_elem(&tcp_conns, &w->ck);
	struct mcpf_scan_buf *buf = scan_buf_get(w);
	struct tcp_cb cb = { .w = w, .buf = buf, .conn = conn };
	__u32 size = msg->size, n, hit;
	bool status_404;
	__u8 *data, *end;

	if (!conn || !conn->npending || !buf || !size)
		return SK_PASS;
	n = size < REPLY_SCAN_MAX - 1 ? size : REPLY_SCAN_MAX - 1;
	if (msg_copy(msg, buf, 0, 0, n, REPLY_SCAN_MAX - 1))
		return SK_PASS;
	buf->data[n & (REPLY_SCAN_MAX - 1)] = 0;
	/* "HTTP/1.1 404 " */
	status_404 = n > 13 &&
		     mcpf_load64(&buf->data[0]) == W8('H', 'T', 'T', 'P', '/', '1', '.', '1') &&
		     (mcpf_load64(&buf->data[8]) & 0xffffffffffULL) ==
			     W8(' ', '4', '0', '4', ' ', 0, 0, 0);
	w->rc.n = n;
	w->rc.from = 0;
	for (int k = 0; k < MCPF_TCP_PENDING; k++) {
		w->rc.hit = (__u32)-1;
		bpf_loop(64, loop ? reply_search_loop : reply_search_kfunc, &cb, 0);
		hit = w->rc.hit;
		if (hit == (__u32)-1)
			break;
		if (hit > 0xff00 || bpf_msg_pull_data(msg, hit, hit + 16, 0))
			break;
		data = msg->data;
		end = msg->data_end;
		if (data + 16 > end)
			break;
		mcpf_store64(&data[0], W8('d', 'e', 'n', 'i', 'e', 'd', ' ', 'b'));
		mcpf_store64(&data[8], W8('y', ' ', 'p', 'o', 'l', 'i', 'c', 'y'));
		count(MCPF_CNT_REPLIES, 1);
		if (!k && status_404)
			reply_status_200(msg);
		w->rc.from = hit;
		if (!conn->npending)
			break;
	}
	return SK_PASS;
}

/*
 * No slot of this CPU is free: the send cannot be read without sharing state with runs in
 * flight. A client's request is refused as framing that cannot be followed is (its first byte
 * made invalid, the connection's later sends dropped); a server's reply passes unchanged (only
 * the text of a denial's error would have been rewritten).
 */
static __always_inline int busy_send(struct sk_msg_md *msg, struct mcpf_conn_key *ck, int end)
{
	struct mcpf_stat_val tool = {};
	struct mcpf_stat_key sk = {};
	struct mcpf_conn *conn;

	count(MCPF_CNT_BUSY, 1);
	if (end != 1)
		return SK_PASS;
	bpf_msg_apply_bytes(msg, 0);
	bpf_msg_cork_bytes(msg, 0);
	conn = conn_get(ck);
	if (!conn || conn->phase == MCPF_CONN_POISONED)
		return SK_DROP;
	if (!msg->size)
		return SK_PASS;
	return request_refuse(msg, ck, conn, &sk, &tool, NULL, MCPF_EV_BUSY, MCPF_WHY_BUSY);
}

/*
 * sk_msg: the one hook that sees a TCP send whole, before the peer does, and can hold it (cork)
 * or rewrite it; it cannot grow or shrink it without breaking HTTP framing, so every rewrite
 * is the same length. It does not see sends of sockets outside tcp_socks. It finds which end of
 * the connection sends, takes a slot, then goes on in handle_sk_msg_client or
 * handle_sk_msg_server; the stage that ends the run gives the slot back.
 */
SEC("sk_msg")
int handle_sk_msg(struct sk_msg_md *msg)
{
	struct mcpf_conn_key ck;
	__u32 lip6[4], rip6[4];
	struct tcp_work *w;
	int end;

	lip6[0] = msg->local_ip6[0];
	lip6[1] = msg->local_ip6[1];
	lip6[2] = msg->local_ip6[2];
	lip6[3] = msg->local_ip6[3];
	rip6[0] = msg->remote_ip6[0];
	rip6[1] = msg->remote_ip6[1];
	rip6[2] = msg->remote_ip6[2];
	rip6[3] = msg->remote_ip6[3];
	end = conn_key_make(&ck, msg->family, msg->local_ip4, lip6, msg->remote_ip4, rip6,
			    (__u16)msg->local_port, (__u16)bpf_ntohl(msg->remote_port));
	if (!end)
		return SK_PASS;
	w = slot_take();
	if (!w)
		return busy_send(msg, &ck, end);
	w->ck = ck;
	if (end == 1) {
		bpf_tail_call(msg, &tcp_progs, TP_CLIENT);
	} else {
		struct mcpf_conn *conn = bpf_map_lookup_elem(&tcp_conns, &ck);

		if (conn && conn->list)
			bpf_tail_call(msg, &tcp_progs, TP_LIST);
		bpf_tail_call(msg, &tcp_progs, TP_SERVER);
	}
	/* the stage is missing: a client's send fails closed */
	slot_release(w);
	return end == 1 ? SK_DROP : SK_PASS;
}

/* Client sends: frame the HTTP request; its body goes on in handle_sk_msg_body. */
SEC("sk_msg")
int handle_sk_msg_client(struct sk_msg_md *msg)
{
	struct tcp_work *w = slot_find();
	int ret;

	if (!w)
		return SK_DROP;
	ret = client_send(msg, w);
	slot_release(w);
	return ret;
}

/* The body of one framed request, whole in this send: scan, decide, neutralize. */
SEC("sk_msg")
int handle_sk_msg_body(struct sk_msg_md *msg)
{
	struct tcp_work *w = slot_find();
	int ret;

	if (!w)
		return SK_DROP;
	body_handle(msg, w, &w->ck, w->b_off, w->b_len, w->b_why);
	ret = framed(msg, w->b_total, w->b_size);
	slot_release(w);
	return ret;
}

/*
 * Server sends: the replies to neutralized ids. Two builds of one stage (kernel__load_with):
 * this one searches with the bpf_strnstr kfunc (6.17+), ...
 */
SEC("sk_msg")
int handle_sk_msg_server(struct sk_msg_md *msg)
{
	struct tcp_work *w = slot_find();
	int ret;

	if (!w)
		return SK_PASS;
	ret = server_send(msg, w, false);
	slot_release(w);
	return ret;
}

/* ... this one 8 bytes a step in a bpf_loop, on every kernel (faster: see bpf_strnstr). */
SEC("sk_msg")
int handle_sk_msg_server_loop(struct sk_msg_md *msg)
{
	struct tcp_work *w = slot_find();
	int ret;

	if (!w)
		return SK_PASS;
	ret = server_send(msg, w, true);
	slot_release(w);
	return ret;
}

/*
 * Server sends on a connection with a tools/list unanswered: its answer filtered
 * (tcp_list.bpf.h), then the replies to neutralized ids as in the server stage.
 */
SEC("sk_msg")
int handle_sk_msg_list(struct sk_msg_md *msg)
{
	struct tcp_work *w = slot_find();
	struct mcpf_conn *conn;
	__u32 n, cur;
	int ret;

	if (!w)
		return SK_PASS;
	n = list_send(msg, w);
	conn = n ? bpf_map_lookup_elem(&tcp_conns, &w->ck) : NULL;
	if (conn) {
		/* more answers than lists asked (a server's own): the count stays >= 0 */
		cur = conn->list;
		__sync_fetch_and_add(&conn->list, -(n < cur ? n : cur));
	}
	ret = server_send(msg, w, true);
	slot_release(w);
	return ret;
}

#include "stdio.bpf.h"
#include "stdio_pipe.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
