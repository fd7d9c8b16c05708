/* SPDX-License-Identifier: Apache-2.0 */
/* feature_probes (features.c): what this kernel offers the BPF programs of mcpfence, proven by loading them. */
#ifndef MCPFENCE_FEATURE_PROBES_H
#define MCPFENCE_FEATURE_PROBES_H

#include <stdbool.h>
#include <stddef.h>

/* Mount tracefs and bpffs where missing; 0, or the last -errno. */
int features__mount(void);

/*
 * What the TCP plane (bpf/tcp.bpf.c) needs of the kernel: program, map and helper types, and
 * the bpf_strnstr kfunc. 0 when all are there; else -ENOTSUP (or -EPERM, not root) with why
 * naming the first one missing.
 */
int features__tcp(char *why, size_t size);

/*
 * What the scanner's test-run programs (bpf/scan_test*.bpf.c: XDP, BPF_PROG_TEST_RUN) need of
 * the kernel; 0, or -ENOTSUP / -EPERM with why naming the first piece missing. Not the TCP
 * plane's needs: a kernel may run one and not the other.
 */
int features__scan_test(char *why, size_t size);

/* The kernel has the bpf_strnstr kfunc (6.17+), per its BTF. */
bool features__strnstr(void);
/* The kfuncs that kill a stdio server from a tracepoint (bpf_send_signal_task, 6.13+)? */
bool features__signal_task(void);
/*
 * The BPF LSM (--pipe-action refuse): bpf among the LSMs in force, and a program on one of its
 * hooks loaded, attached and run. 0, or -errno with why.
 */
int features__lsm(char *why, size_t size);

#endif
