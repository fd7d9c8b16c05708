// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bench_floor: the kernel's own cost of the socketpair hook, for bench/stdio_kernel part 1. The
 * same sockets attach puts in stdio_socks (the server's end of its stdin, the client's end of
 * its stdout) go in this SOCKMAP, whose verdict passes every skb and does nothing else: what is
 * left of a round trip's cost is the sockmap's receive path, the floor under any program there.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} floor_socks SEC(".maps");

SEC("sk_skb/stream_verdict")
int floor_verdict(struct __sk_buff *skb)
{
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
