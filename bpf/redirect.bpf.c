// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * redirect: `mcpfence proxy --redirect-port N`. On the cgroup (the host's root by default),
 * every connect() of a TCP socket to the server's address and port N is sent to the proxy's
 * listen address instead, unless the proxy itself makes it (its upstream connections); the
 * socket remembers where it meant to go, and getpeername() on it says so. A connect() to the
 * server's port on the loopback address of the other family than the proxy listens on is
 * refused (EPERM): it would reach a dual-stack server around the proxy.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "mcpfence.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SOCK_STREAM_ 1

/* set before load: who the proxy is, where the server is, where the proxy listens */
const volatile __u32 proxy_tgid;
const volatile __u32 up_ip4;	/* network order; 0: the server is on IPv6 */
const volatile __u32 up_ip6[4]; /* network order */
const volatile __u16 up_port;	/* host order */
const volatile __u32 px_ip4;	/* network order; 0: the proxy listens on IPv6 */
const volatile __u32 px_ip6[4]; /* network order */
const volatile __u16 px_port;	/* host order */

struct redirect_orig {
	__u32 ip4;
	__u32 ip6[4];
	__u32 port; /* network order, as user_port */
	__u32 family;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct redirect_orig);
} redirect_orig SEC(".maps");

/* 0: connections redirected, 1: the proxy's own, let through, 2: refused (other family) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} redirect_counts SEC(".maps");

static __always_inline void bump(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&redirect_counts, &i);

	if (v)
		*v += 1;
}

static __always_inline bool is_proxy(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == proxy_tgid;
}

static __always_inline void remember(struct bpf_sock_addr *ctx, __u32 family)
{
	struct redirect_orig *o;

	if (!ctx->sk)
		return;
	o = bpf_sk_storage_get(&redirect_orig, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!o)
		return;
	o->family = family;
	o->port = ctx->user_port;
	if (family == 4) {
		o->ip4 = ctx->user_ip4;
	} else {
		o->ip6[0] = ctx->user_ip6[0];
		o->ip6[1] = ctx->user_ip6[1];
		o->ip6[2] = ctx->user_ip6[2];
		o->ip6[3] = ctx->user_ip6[3];
	}
}

/* The context's fields read once each (the verifier takes no offset added to ctx). */
#define CTX_U32(f) (*(volatile __u32 *)&ctx->f)

SEC("cgroup/connect4")
int redirect_connect4(struct bpf_sock_addr *ctx)
{
	__u32 ip = CTX_U32(user_ip4);

	if (CTX_U32(type) != SOCK_STREAM_ || CTX_U32(user_port) != bpf_htons(up_port))
		return 1;
	if (!up_ip4) { /* the server is on IPv6: 127.0.0.1 reaches a dual-stack one around us */
		if (ip != bpf_htonl(0x7f000001) || is_proxy())
			return 1;
		bump(2);
		return 0;
	}
	if (ip != up_ip4 || is_proxy()) {
		if (ip == up_ip4)
			bump(1);
		return 1;
	}
	if (!px_ip4) {
		bump(2);
		return 0;
	}
	remember(ctx, 4);
	ctx->user_ip4 = px_ip4;
	ctx->user_port = bpf_htons(px_port);
	bump(0);
	return 1;
}

SEC("cgroup/connect6")
int redirect_connect6(struct bpf_sock_addr *ctx)
{
	__u32 a0 = CTX_U32(user_ip6[0]), a1 = CTX_U32(user_ip6[1]), a2 = CTX_U32(user_ip6[2]),
	      a3 = CTX_U32(user_ip6[3]);
	bool to_up;

	if (CTX_U32(type) != SOCK_STREAM_ || CTX_U32(user_port) != bpf_htons(up_port))
		return 1;
	to_up = !up_ip4 && a0 == up_ip6[0] && a1 == up_ip6[1] && a2 == up_ip6[2] && a3 == up_ip6[3];
	if (up_ip4) { /* the server is on IPv4: [::1] reaches a dual-stack one around us */
		if (!(a0 == 0 && a1 == 0 && a2 == 0 && a3 == bpf_htonl(1)) || is_proxy())
			return 1;
		bump(2);
		return 0;
	}
	if (!to_up || is_proxy()) {
		if (to_up)
			bump(1);
		return 1;
	}
	if (px_ip4) {
		bump(2);
		return 0;
	}
	remember(ctx, 6);
	ctx->user_ip6[0] = px_ip6[0];
	ctx->user_ip6[1] = px_ip6[1];
	ctx->user_ip6[2] = px_ip6[2];
	ctx->user_ip6[3] = px_ip6[3];
	ctx->user_port = bpf_htons(px_port);
	bump(0);
	return 1;
}

SEC("cgroup/getpeername4")
int redirect_peer4(struct bpf_sock_addr *ctx)
{
	struct redirect_orig *o;

	if (!ctx->sk)
		return 1;
	o = bpf_sk_storage_get(&redirect_orig, ctx->sk, 0, 0);
	if (o && o->family == 4) {
		ctx->user_ip4 = o->ip4;
		ctx->user_port = o->port;
	}
	return 1;
}

SEC("cgroup/getpeername6")
int redirect_peer6(struct bpf_sock_addr *ctx)
{
	struct redirect_orig *o;

	if (!ctx->sk)
		return 1;
	o = bpf_sk_storage_get(&redirect_orig, ctx->sk, 0, 0);
	if (o && o->family == 6) {
		ctx->user_ip6[0] = o->ip6[0];
		ctx->user_ip6[1] = o->ip6[1];
		ctx->user_ip6[2] = o->ip6[2];
		ctx->user_ip6[3] = o->ip6[3];
		ctx->user_port = o->port;
	}
	return 1;
}
