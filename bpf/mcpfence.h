/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI shared by the BPF programs and userspace: fixed-size structs, __uN types only,
 * explicit padding. Userspace checks every size with _Static_assert (user/kernel.c).
 */
#ifndef MCPFENCE_ABI_H
#define MCPFENCE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define MCPF_PIN_DIR "/sys/fs/bpf/mcpfence"

/* probe.bpf.c: the feature probe counts getpid() calls of one process. */
struct mcpf_probe_cfg {
	__u32 pid;
	__u32 _pad;
};

#endif
