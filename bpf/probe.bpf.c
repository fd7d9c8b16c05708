// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Feature probes (user/features.c): each program proves, by loading, attaching and running, that
 * this kernel has what it stands for; userspace loads one at a time (the others are not loaded).
 * Each counts its runs in this process (cfg_pid) in probe_hits and sees nothing of MCP.
 *  - tp_sys_enter_getpid: BTF, CO-RE, tracepoints, array maps at all (the getpid() entry
 *    tracepoint, because userspace can trigger it at will);
 *  - probe_fentry: BPF trampolines (fentry/fexit/fmod_ret), on bpf_fentry_test1, the function
 *    that BPF_PROG_TEST_RUN of a tracing program calls;
 *  - probe_lsm: BPF-LSM, on file_open (it allows every open);
 *  - probe_kprobe: kprobes, on getpid().
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "mcpfence.h"

const volatile __u32 cfg_pid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} probe_hits SEC(".maps");

static __always_inline void hit(void)
{
	__u32 key = 0;
	__u64 *hits;

	if ((bpf_get_current_pid_tgid() >> 32) != cfg_pid)
		return;
	hits = bpf_map_lookup_elem(&probe_hits, &key);
	if (hits)
		__sync_fetch_and_add(hits, 1);
}

SEC("tp/syscalls/sys_enter_getpid")
int tp_sys_enter_getpid(void *ctx)
{
	hit();
	return 0;
}

SEC("fentry/bpf_fentry_test1")
int BPF_PROG(probe_fentry, int a)
{
	hit();
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(probe_lsm, struct file *file)
{
	hit();
	return 0;
}

SEC("ksyscall/getpid")
int probe_kprobe(struct pt_regs *ctx)
{
	hit();
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
