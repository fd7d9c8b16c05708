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
#include <bpf/libbpf.h>
#include "cmd.h"
#include "log.h"
#include "probe.skel.h"

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

int cmd_features(int argc, char **argv)
{
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
	return err ? 1 : 0;
}
