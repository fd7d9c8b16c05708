// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Feature probe: proves that this kernel loads and runs our BPF objects at all (BTF, CO-RE,
 * tracepoints, array maps), before any enforcement program is trusted with traffic.
 * Hook: the getpid() entry tracepoint, because userspace can trigger it at will; it sees only
 * the pid of the caller, nothing of MCP.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "mcpfence.h"

const volatile __u32 cfg_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} probe_hits SEC(".maps");

SEC("tp/syscalls/sys_enter_getpid")
int tp_sys_enter_getpid(void *ctx)
{
	__u32 key = 0;
	__u64 *hits;

	if ((bpf_get_current_pid_tgid() >> 32) != cfg_pid)
		return 0;
	hits = bpf_map_lookup_elem(&probe_hits, &key);
	if (hits)
		__sync_fetch_and_add(hits, 1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
