// SPDX-License-Identifier: Apache-2.0
/* features: prove that this kernel runs our BPF objects, and say what a missing piece costs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <linux/magic.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "cmd.h"
#include "log.h"
#include "probe.skel.h"

/*
 * What the search of a server's sends for the answer to a denied call costs, per KB searched
 * (bench/kernel, "reply search", README "Kernels"): the bpf_loop search and, where the kernel
 * has it, the bpf_strnstr kfunc.
 */
#define SEARCH_LOOP_NS_PER_KB "400 to 900"
#define SEARCH_KFUNC_NS_PER_KB "2900 to 4000"

static int silent_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN && log_level >= LOG_LVL_DEBUG ? vfprintf(stderr, fmt, ap) : 0;
}

/*
 * Mount tracefs and bpffs where they are expected when nobody did (a minimal VM or container):
 * libbpf attaches tracepoints through tracefs, and pins live in bpffs.
 */
int features__mount(void)
{
	static const struct {
		const char *dir, *type;
		long magic;
	} fs[] = {
		{ "/sys/kernel/tracing", "tracefs", TRACEFS_MAGIC },
		{ "/sys/fs/bpf", "bpf", BPF_FS_MAGIC },
	};
	struct statfs st;
	int err = 0;

	for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) {
		if (!statfs(fs[i].dir, &st) && st.f_type == fs[i].magic)
			continue;
		if (mount(fs[i].type, fs[i].dir, fs[i].type, 0, NULL)) {
			log_debug("mount %s on %s: %s", fs[i].type, fs[i].dir, strerror(errno));
			err = -errno;
		}
	}
	return err;
}

/* 0 when a tracepoint program loads, attaches and runs; -errno otherwise. */
static int probe_tracepoint(void)
{
	struct probe_bpf *skel;
	__u32 key = 0;
	__u64 hits = 0;
	int err;

	skel = probe_bpf__open();
	if (!skel)
		return -errno;
	skel->rodata->cfg_pid = getpid();
	err = probe_bpf__load(skel);
	if (err)
		goto out_destroy;
	err = probe_bpf__attach(skel);
	if (err)
		goto out_destroy;
	syscall(SYS_getpid);
	err = bpf_map__lookup_elem(skel->maps.probe_hits, &key, sizeof(key), &hits, sizeof(hits), 0);
	if (!err && hits == 0)
		err = -ENODATA;
out_destroy:
	probe_bpf__destroy(skel);
	return err;
}

bool features__strnstr(void)
{
	struct btf *btf = btf__load_vmlinux_btf();
	int found;

	if (!btf)
		return false;
	found = btf__find_by_name_kind(btf, "bpf_strnstr", BTF_KIND_FUNC);
	btf__free(btf);
	return found > 0;
}

int features__tcp(char *why, size_t size)
{
	enum { PROG, MAP, HELPER };
	static const struct {
		int kind;
		int type; /* enum bpf_prog_type, bpf_map_type or bpf_func_id (of sk_msg) */
		const char *missing;
	} needs[] = {
		{ PROG, BPF_PROG_TYPE_SOCK_OPS, "this kernel has no sock_ops programs" },
		{ PROG, BPF_PROG_TYPE_SK_MSG, "this kernel has no sk_msg programs" },
		{ MAP, BPF_MAP_TYPE_SOCKHASH, "this kernel has no SOCKHASH maps" },
		{ MAP, BPF_MAP_TYPE_RINGBUF, "this kernel has no ring buffers" },
		{ MAP, BPF_MAP_TYPE_PERCPU_ARRAY, "this kernel has no per-CPU arrays" },
		{ MAP, BPF_MAP_TYPE_PROG_ARRAY, "this kernel has no program arrays (tail calls)" },
		{ HELPER, BPF_FUNC_loop, "sk_msg programs cannot call bpf_loop (5.17+) here" },
		{ HELPER, BPF_FUNC_msg_pull_data, "sk_msg programs cannot call bpf_msg_pull_data" },
		{ HELPER, BPF_FUNC_msg_cork_bytes, "sk_msg programs cannot call bpf_msg_cork_bytes" },
		{ HELPER, BPF_FUNC_ringbuf_reserve, "sk_msg programs cannot call bpf_ringbuf_reserve" },
		{ HELPER, BPF_FUNC_get_current_task,
		  "sk_msg programs cannot call bpf_get_current_task" },
		{ HELPER, BPF_FUNC_probe_read_kernel,
		  "sk_msg programs cannot call bpf_probe_read_kernel" },
	};
	if (geteuid() != 0) {
		snprintf(why, size, "not root: loading BPF programs needs CAP_BPF and CAP_NET_ADMIN");
		return -EPERM;
	}
	for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
		int ok = needs[i].kind == PROG ? libbpf_probe_bpf_prog_type(needs[i].type, NULL) :
			 needs[i].kind == MAP  ? libbpf_probe_bpf_map_type(needs[i].type, NULL) :
						 libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_MSG,
									 needs[i].type, NULL);

		if (ok != 1) {
			snprintf(why, size, "%s", needs[i].missing);
			return -ENOTSUP;
		}
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		snprintf(why, size, "no kernel BTF (/sys/kernel/btf/vmlinux): %s", strerror(errno));
		return -ENOTSUP;
	}
	return 0;
}

int cmd_features(int argc, char **argv)
{
	char why[256];

	int err;

	if (argc > 1) {
		log_err("features takes no arguments");
		return EXIT_USAGE;
	}
	libbpf_set_print(silent_print);
	features__mount();
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		printf("btf: missing (/sys/kernel/btf/vmlinux): the kernel plane cannot run\n");
	else
		printf("btf: yes\n");
	err = probe_tracepoint();
	if (err)
		printf("bpf tracepoint: no (%s)%s\n", strerror(-err),
		       geteuid() ? ": not root" : "");
	else
		printf("bpf tracepoint: yes\n");
	if (features__tcp(why, sizeof(why))) {
		printf("tcp plane (attach): no: %s\n", why);
		err = err ? err : -ENOTSUP;
	} else {
		printf("tcp plane (attach): yes\n");
	}
	printf("  reply search: a bpf_loop, 8 bytes a step, about %s ns per KB of a server's "
	       "send, only while a denied call on that connection waits for its answer; the "
	       "bpf_strnstr kfunc (6.17+; this kernel has %s) measured %s ns per KB: not used\n",
	       SEARCH_LOOP_NS_PER_KB, features__strnstr() ? "it" : "none",
	       SEARCH_KFUNC_NS_PER_KB);
	return err ? 1 : 0;
}
