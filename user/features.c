// SPDX-License-Identifier: Apache-2.0
/* features: prove that this kernel runs our BPF objects, and say what a missing piece costs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "cgroup.h"
#include "cmd.h"
#include "log.h"
#include "probe.skel.h"

/*
 * What the search of a server's sends for the answer to a denied call costs, per KB searched
 * (bench/kernel, "reply search", README "Kernels"): the bpf_loop search and, where the kernel
 * has it, the bpf_strnstr kfunc.
 */
#define SEARCH_LOOP_NS_PER_KB "400 to 900"
#define SEARCH_KFUNC_NS_PER_KB "1700 to 4000"

static int silent_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN && log_level >= LOG_LVL_DEBUG ? vfprintf(stderr, fmt, ap) : 0;
}

/*
 * Mount tracefs, bpffs and securityfs where they are expected when nobody did (a minimal VM or
 * container): libbpf attaches tracepoints through tracefs, pins live in bpffs, and securityfs
 * says which LSMs and lockdown mode are in force.
 */
int features__mount(void)
{
	static const struct {
		const char *dir, *type;
		long magic;
	} fs[] = {
		{ "/sys/kernel/tracing", "tracefs", TRACEFS_MAGIC },
		{ "/sys/fs/bpf", "bpf", BPF_FS_MAGIC },
		{ "/sys/kernel/security", "securityfs", SECURITYFS_MAGIC },
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

enum probe_prog {
	PROBE_TRACEPOINT,
	PROBE_FENTRY,
	PROBE_LSM,
	PROBE_KPROBE,
	PROBE_MAX,
};

/*
 * Load, attach and run one program of bpf/probe.bpf.c (the others are not loaded): 0 when it
 * ran, else -errno with the step that failed in *step.
 */
static int probe_run(enum probe_prog which, const char **step)
{
	struct probe_bpf *skel;
	struct bpf_program *progs[PROBE_MAX];
	struct bpf_link *link = NULL;
	__u32 key = 0;
	__u64 hits = 0;
	int err, fd;

	*step = "open";
	skel = probe_bpf__open();
	if (!skel)
		return -errno;
	progs[PROBE_TRACEPOINT] = skel->progs.tp_sys_enter_getpid;
	progs[PROBE_FENTRY] = skel->progs.probe_fentry;
	progs[PROBE_LSM] = skel->progs.probe_lsm;
	progs[PROBE_KPROBE] = skel->progs.probe_kprobe;
	for (int i = 0; i < PROBE_MAX; i++)
		bpf_program__set_autoload(progs[i], i == (int)which);
	skel->rodata->cfg_pid = getpid();
	*step = "load";
	err = probe_bpf__load(skel);
	if (err)
		goto out_destroy;
	*step = "attach";
	link = bpf_program__attach(progs[which]);
	if (!link) {
		err = -errno;
		goto out_destroy;
	}
	*step = "run";
	switch (which) {
	case PROBE_FENTRY: {
		LIBBPF_OPTS(bpf_test_run_opts, opts);

		err = bpf_prog_test_run_opts(bpf_program__fd(progs[which]), &opts);
		if (err)
			goto out_destroy;
		break;
	}
	case PROBE_LSM:
		fd = open("/proc/self/stat", O_RDONLY);
		if (fd >= 0)
			close(fd);
		break;
	default:
		syscall(SYS_getpid);
	}
	err = bpf_map__lookup_elem(skel->maps.probe_hits, &key, sizeof(key), &hits, sizeof(hits),
				   0);
	if (!err && hits == 0)
		err = -ENODATA;
out_destroy:
	bpf_link__destroy(link);
	probe_bpf__destroy(skel);
	return err;
}

/* The first line of a small file, without its newline; "" when it cannot be read. */
static void read_line(const char *path, char *out, size_t size)
{
	FILE *f = fopen(path, "re");

	out[0] = 0;
	if (f) {
		if (fgets(out, size, f))
			out[strcspn(out, "\n")] = 0;
		fclose(f);
	}
}

/* The lockdown mode in force ("none", "integrity", "confidentiality"), or "" when unknown. */
static void lockdown_mode(char *out, size_t size)
{
	char line[128], *b, *e;

	read_line("/sys/kernel/security/lockdown", line, sizeof(line));
	b = strchr(line, '[');
	e = b ? strchr(b, ']') : NULL;
	if (!b || !e || (size_t)(e - b - 1) >= size) {
		out[0] = 0;
		return;
	}
	memcpy(out, b + 1, e - b - 1);
	out[e - b - 1] = 0;
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

bool features__signal_task(void)
{
	struct btf *btf = btf__load_vmlinux_btf();
	bool found;

	if (!btf)
		return false;
	found = btf__find_by_name_kind(btf, "bpf_send_signal_task", BTF_KIND_FUNC) > 0 &&
		btf__find_by_name_kind(btf, "bpf_task_from_pid", BTF_KIND_FUNC) > 0;
	btf__free(btf);
	return found;
}

int features__lsm(char *why, size_t size)
{
	char line[256];
	const char *step;
	int err;

	read_line("/sys/kernel/security/lsm", line, sizeof(line));
	if (!strstr(line, "bpf")) {
		snprintf(why, size,
			 "bpf is not among the LSMs in force (%s; it is added with lsm=… on "
			 "the kernel's command line)",
			 line[0] ? line : "/sys/kernel/security/lsm cannot be read");
		return -ENOTSUP;
	}
	{
		/* the probe's failure is the answer, not libbpf's to print */
		libbpf_print_fn_t old = libbpf_set_print(silent_print);

		err = probe_run(PROBE_LSM, &step);
		libbpf_set_print(old);
	}
	if (err)
		snprintf(why, size, "a BPF LSM program fails to %s here: %s", step, strerror(-err));
	return err;
}

int features__tcp(char *why, size_t size)
{
	enum { PROG, MAP, HELPER };
	static const struct {
		int kind;
		int prog; /* the program type that calls a helper */
		int type; /* enum bpf_prog_type, bpf_map_type or bpf_func_id */
		const char *missing;
	} needs[] = {
		{ PROG, 0, BPF_PROG_TYPE_SOCK_OPS, "this kernel has no sock_ops programs" },
		{ PROG, 0, BPF_PROG_TYPE_SK_MSG, "this kernel has no sk_msg programs" },
		{ MAP, 0, BPF_MAP_TYPE_SOCKHASH, "this kernel has no SOCKHASH maps" },
		{ MAP, 0, BPF_MAP_TYPE_RINGBUF, "this kernel has no ring buffers" },
		{ MAP, 0, BPF_MAP_TYPE_PERCPU_ARRAY, "this kernel has no per-CPU arrays" },
		{ MAP, 0, BPF_MAP_TYPE_PERCPU_HASH, "this kernel has no per-CPU hashes" },
		{ MAP, 0, BPF_MAP_TYPE_LRU_HASH, "this kernel has no LRU hashes" },
		{ MAP, 0, BPF_MAP_TYPE_PROG_ARRAY,
		  "this kernel has no program arrays (tail calls)" },
		{ HELPER, BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sock_hash_update,
		  "sock_ops programs cannot call bpf_sock_hash_update" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_loop,
		  "sk_msg programs cannot call bpf_loop (5.17+)" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_pull_data,
		  "sk_msg programs cannot call bpf_msg_pull_data" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_cork_bytes,
		  "sk_msg programs cannot call bpf_msg_cork_bytes" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_apply_bytes,
		  "sk_msg programs cannot call bpf_msg_apply_bytes" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_tail_call,
		  "sk_msg programs cannot make tail calls" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_ringbuf_reserve,
		  "sk_msg programs cannot call bpf_ringbuf_reserve" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_ringbuf_query,
		  "sk_msg programs cannot call bpf_ringbuf_query" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_get_current_task,
		  "sk_msg programs cannot call bpf_get_current_task" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_get_current_uid_gid,
		  "sk_msg programs cannot call bpf_get_current_uid_gid" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_get_smp_processor_id,
		  "sk_msg programs cannot call bpf_get_smp_processor_id" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_ktime_get_boot_ns,
		  "sk_msg programs cannot call bpf_ktime_get_boot_ns" },
		{ HELPER, BPF_PROG_TYPE_SK_MSG, BPF_FUNC_probe_read_kernel,
		  "sk_msg programs cannot call bpf_probe_read_kernel" },
	};
	char lockdown[32];

	if (geteuid() != 0) {
		snprintf(why, size,
			 "not root: loading BPF programs needs CAP_BPF and CAP_NET_ADMIN");
		return -EPERM;
	}
	for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
		int ok = needs[i].kind == PROG ?
				 libbpf_probe_bpf_prog_type(needs[i].type, NULL) :
			 needs[i].kind == MAP ?
				 libbpf_probe_bpf_map_type(needs[i].type, NULL) :
				 libbpf_probe_bpf_helper(needs[i].prog, needs[i].type, NULL);

		if (ok != 1) {
			lockdown_mode(lockdown, sizeof(lockdown));
			snprintf(
				why, size, "%s%s", needs[i].missing,
				!strcmp(lockdown, "confidentiality") ?
					" (lockdown=confidentiality refuses reads of kernel memory)" :
					"");
			return -ENOTSUP;
		}
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		snprintf(why, size, "no kernel BTF (/sys/kernel/btf/vmlinux): %s", strerror(errno));
		return -ENOTSUP;
	}
	return 0;
}

int features__scan_test(char *why, size_t size)
{
	static const struct {
		int helper;
		const char *missing;
	} needs[] = {
		{ BPF_FUNC_xdp_get_buff_len,
		  "XDP programs cannot call bpf_xdp_get_buff_len (5.18+)" },
		{ BPF_FUNC_xdp_load_bytes, "XDP programs cannot call bpf_xdp_load_bytes (5.18+)" },
		{ BPF_FUNC_loop, "XDP programs cannot call bpf_loop (5.17+)" },
		{ BPF_FUNC_probe_read_kernel, "XDP programs cannot call bpf_probe_read_kernel" },
	};

	if (geteuid() != 0) {
		snprintf(why, size, "not root: BPF_PROG_TEST_RUN needs CAP_BPF");
		return -EPERM;
	}
	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_XDP, NULL) != 1) {
		snprintf(why, size, "this kernel has no XDP programs");
		return -ENOTSUP;
	}
	for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
		if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_XDP, needs[i].helper, NULL) != 1) {
			snprintf(why, size, "%s", needs[i].missing);
			return -ENOTSUP;
		}
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		snprintf(why, size, "no kernel BTF (/sys/kernel/btf/vmlinux)");
		return -ENOTSUP;
	}
	return 0;
}

/* What mcpfence does with a kind of program the TCP plane does not need. */
static const char *const unused_why[PROBE_MAX] = {
	[PROBE_FENTRY] = "not used: the TCP plane needs sock_ops and sk_msg only",
	[PROBE_LSM] = "used by --pipe-action refuse (a denied call's write to a stdio server's "
		      "pipe fails)",
	[PROBE_KPROBE] = "not used",
};

static int print_probe(enum probe_prog which, const char *what)
{
	const char *step;
	int err = probe_run(which, &step);

	if (err)
		printf("%s: no (%s: %s)%s\n", what, step, strerror(-err),
		       geteuid() ? ": not root" : "");
	else if (unused_why[which])
		printf("%s: yes; %s\n", what, unused_why[which]);
	else
		printf("%s: yes\n", what);
	return err;
}

static const char usage[] = "usage: mcpfence features\n"
			    "  -h, --help        print this help\n";

int cmd_features(int argc, char **argv)
{
	char why[512], lsm_why[512], cg[4096], lockdown[32];
	struct utsname u;
	int ret = 0, lsm;

	if (argc > 1) {
		if (argc == 2 && cmd_is_help(argv[1])) {
			fputs(usage, stdout);
			return 0;
		}
		log_err("features: unexpected argument '%s' (it takes none)", argv[1]);
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	libbpf_set_print(silent_print);
	features__mount();
	if (!uname(&u))
		printf("kernel: %s %s\n", u.sysname, u.release);
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		printf("btf: missing (/sys/kernel/btf/vmlinux): the kernel plane cannot run\n");
	else
		printf("btf: yes\n");
	if (print_probe(PROBE_TRACEPOINT, "bpf tracepoint"))
		ret = 1;
	if (features__tcp(why, sizeof(why))) {
		printf("tcp plane (attach): no: %s\n", why);
		ret = 1;
	} else {
		printf("tcp plane (attach): yes\n");
	}
	printf("  reply search: a bpf_loop, 8 bytes a step, about %s ns per KB of a server's "
	       "send, only while a denied call on that connection waits for its answer; the "
	       "bpf_strnstr kfunc (6.17+; this kernel has %s) measured %s ns per KB: not used\n",
	       SEARCH_LOOP_NS_PER_KB, features__strnstr() ? "it" : "none", SEARCH_KFUNC_NS_PER_KB);
	if (cgroup__v2_root(cg, sizeof(cg), why, sizeof(why)))
		printf("  cgroup v2: none: %s\n", why);
	else
		printf("  cgroup v2: %s (attach's default --cgroup)\n", cg);
	lsm = features__lsm(lsm_why, sizeof(lsm_why)); /* its probe runs once, for both lines */
	printf("stdio plane (attach --pid): socketpairs enforced (sk_skb), pipes counted and "
	       "audited (syscall tracepoints); --pipe-action kill: %s; --pipe-action refuse: %s\n",
	       features__signal_task() ? "yes (bpf_send_signal_task)" :
					 "no (needs the bpf_send_signal_task kfunc, 6.13+)",
	       lsm ? "no (needs the BPF LSM)" : "yes (BPF LSM)");
	print_probe(PROBE_FENTRY, "fentry/fexit (trampolines)");
	if (lsm)
		printf("bpf lsm: no (%s)%s: --pipe-action refuse cannot run\n", lsm_why,
		       geteuid() ? ": not root" : "");
	else
		printf("bpf lsm: yes; %s\n", unused_why[PROBE_LSM]);
	print_probe(PROBE_KPROBE, "kprobes");
	lockdown_mode(lockdown, sizeof(lockdown));
	if (!lockdown[0])
		printf("lockdown: unknown (/sys/kernel/security/lockdown cannot be read)\n");
	else if (!strcmp(lockdown, "none"))
		printf("lockdown: none\n");
	else if (!strcmp(lockdown, "integrity"))
		printf("lockdown: integrity (bpf_probe_write_user is refused: mcpfence never uses "
		       "it)\n");
	else
		printf("lockdown: %s (reads of kernel memory are refused: the TCP plane cannot "
		       "run)\n",
		       lockdown);
	return ret;
}
