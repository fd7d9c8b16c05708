// SPDX-License-Identifier: Apache-2.0
/*
 * kernel_load: the TCP plane's BPF object (bpf/tcp.bpf.c) from the running kernel's point of view:
 * what it lacks (probes), loading it with the reply search it can run, the TCP Fast Open client
 * bit it turns off while attached, and the pins under MCPF_PIN_DIR that let other commands find
 * the live state and keep the programs enforcing when attach is gone, until detach.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/limits.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "cgroup.h"
#include "feature_probes.h"
#include "kernel.h"
#include "kernel_stdio.h"
#include "log.h"
#include "mcpfence.h"
#include "status.h"
#include "tcp.skel.h"

_Static_assert(sizeof(struct mcpf_rule) == 24, "mcpf_rule");
_Static_assert(sizeof(struct mcpf_rule_key) == 16, "mcpf_rule_key");
_Static_assert(sizeof(struct mcpf_rule_entry) == 152, "mcpf_rule_entry");
_Static_assert(sizeof(struct mcpf_glob) == 96, "mcpf_glob");
_Static_assert(sizeof(struct mcpf_limit) == 24, "mcpf_limit");
_Static_assert(sizeof(struct mcpf_budget_key) == 16, "mcpf_budget_key");
_Static_assert(sizeof(struct mcpf_ticket) == 16, "mcpf_ticket");
_Static_assert(sizeof(struct mcpf_gen_cfg) == 28, "mcpf_gen_cfg");
_Static_assert(sizeof(struct mcpf_stat_key) == 16, "mcpf_stat_key");
_Static_assert(sizeof(struct mcpf_stat_val) == 144, "mcpf_stat_val");
_Static_assert(sizeof(struct mcpf_policy_info) == 336, "mcpf_policy_info");
_Static_assert(sizeof(struct mcpf_conn_key) == 40, "mcpf_conn_key");
_Static_assert(sizeof(struct mcpf_sock_key) == 48, "mcpf_sock_key");
_Static_assert(sizeof(struct mcpf_pending) == 56, "mcpf_pending");
_Static_assert(sizeof(struct mcpf_event) == 352, "mcpf_event");
_Static_assert(sizeof(struct mcpf_stdio_stream) == 80 + sizeof(struct mcpf_scan_buf),
	       "stdio stream");

/*
 * What is pinned under MCPF_PIN_DIR, so that other commands find the live state, and so that
 * the programs keep enforcing when attach is killed: tcp_progs among them, because the kernel
 * empties a program array when the last file that holds it goes (its stages would be gone, and
 * every send of a watched connection dropped).
 */
static const char *const pinned_maps[] = {
	"tcp_socks",	 "tcp_ports",	  "tcp_active",	  "tcp_gen",	 "tcp_rules",
	"tcp_globs",	 "tcp_limits",	  "tcp_budgets",  "tcp_tickets", "tcp_stats",
	"tcp_counters",	 "tcp_conns",	  "tcp_policies", "tcp_progs",	 "stdio_socks",
	"stdio_streams", "stdio_pending", "pipe_progs",	  "pipe_writes", "stdio_progs",
	"stdio_pslots",	 "stdio_guards",
};

/*
 * The name map m is pinned under in MCPF_PIN_DIR: its own (bpffs refuses a '.' in a name: the
 * global data's, "tcp_bpf.rodata", becomes "tcp_bpf_rodata").
 */
static void pin_name(const struct bpf_map *m, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", MCPF_PIN_DIR, bpf_map__name(m));
	for (char *c = out + sizeof(MCPF_PIN_DIR); *c; c++)
		if (*c == '.')
			*c = '_';
}

int kernel__map_reuse_pinned(struct bpf_map *m, const char *path, char *why, size_t size)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_obj_get(path), err = 0;

	if (fd < 0) {
		err = -errno;
		snprintf(why, size, "%s: %s", path, strerror(-err));
		return err;
	}
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		err = -errno;
		snprintf(why, size, "%s: %s", path, strerror(-err));
	} else if (info.type != bpf_map__type(m) || info.key_size != bpf_map__key_size(m) ||
		   info.value_size != bpf_map__value_size(m) ||
		   info.max_entries != bpf_map__max_entries(m)) {
		err = -EINVAL;
		snprintf(why, size,
			 "%s: not of the shape this mcpfence gives it (another build left it)",
			 path);
	} else if ((err = bpf_map__reuse_fd(m, fd))) {
		snprintf(why, size, "%s: reuse: %s", path, strerror(-err));
	}
	close(fd);
	return err;
}

/*
 * Before the load: every map of skel is the one pinned by the attachment adopted (a daemon's
 * that left: its programs still run on them), of the same shape. 0, or -errno after saying
 * which and why.
 */
static int maps_reuse(struct tcp_bpf *skel)
{
	char path[PATH_MAX], why[PATH_MAX + 100];
	struct bpf_map *m;

	bpf_object__for_each_map(m, skel->obj) {
		int err;

		pin_name(m, path, sizeof(path));
		err = kernel__map_reuse_pinned(m, path, why, sizeof(why));
		if (err) {
			log_err("%s: the attachment left cannot be adopted", why);
			return err;
		}
	}
	return 0;
}

static int silent_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN && log_level >= LOG_LVL_DEBUG ? vfprintf(stderr, fmt, ap) : 0;
}

/* ---- feature probes ------------------------------------------------------------------- */

/*
 * Every reason this machine cannot run the TCP plane, said once, clearly. cgroup: the --cgroup
 * given, or empty: then the host's cgroup v2 root, found in /proc/self/mountinfo, goes there.
 */
int kernel__probe(char *cgroup, size_t size)
{
	char why[300];
	struct statfs st;

	if (geteuid() != 0) {
		log_err("the kernel plane needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON): "
			"run mcpfence as root");
		return -EPERM;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK)) {
		log_err("/sys/kernel/btf/vmlinux is missing: this kernel has no BTF "
			"(CONFIG_DEBUG_INFO_BTF=y is needed)");
		return -ENOTSUP;
	}
	if (!cgroup[0] && cgroup__v2_root(cgroup, size, why, sizeof(why))) {
		log_err("%s", why);
		return -ENOTSUP;
	}
	if (statfs(cgroup, &st) || st.f_type != CGROUP2_SUPER_MAGIC) {
		log_err("%s is not a cgroup v2 directory: mount cgroup2 there or give --cgroup PATH "
			"of a cgroup v2 directory",
			cgroup);
		return -ENOTSUP;
	}
	features__mount();
	if (statfs("/sys/fs/bpf", &st) || st.f_type != BPF_FS_MAGIC) {
		log_err("/sys/fs/bpf is not a bpf filesystem and could not be mounted: "
			"mount -t bpf bpf /sys/fs/bpf");
		return -ENOTSUP;
	}
	return 0;
}

/*
 * Open and load the programs: the real probe that the sock_ops and sk_msg types are there. The
 * server stage is one of two builds (bpf/tcp.bpf.c): the bpf_loop search (KERNEL_SEARCH_AUTO:
 * every kernel; it measured faster) or the bpf_strnstr kfunc (6.17+); KERNEL_SEARCH_BOTH
 * loads both, the loop's wired, for the tests and the bench that compare them.
 */
struct tcp_bpf *kernel__load_opts(const struct kernel_load_opts *o)
{
	enum kernel_search how = o->search;
	bool kfunc = features__strnstr();
	struct tcp_bpf *skel;
	int err, ncpu;

	libbpf_set_print(silent_print);
	if (how == KERNEL_SEARCH_KFUNC && !kfunc) {
		log_err("this kernel has no bpf_strnstr kfunc (6.17+)");
		errno = ENOTSUP;
		return NULL;
	}
	skel = tcp_bpf__open();
	if (!skel) {
		err = -errno;
		log_err("bpf/tcp.bpf.c: open: %s", strerror(-err));
		errno = -err;
		return NULL;
	}
	if (o->glob_steps)
		skel->rodata->cfg_glob_steps = o->glob_steps;
	if (how == KERNEL_SEARCH_AUTO)
		how = KERNEL_SEARCH_LOOP;
	bpf_program__set_autoload(skel->progs.handle_sk_msg_server,
				  kfunc && how != KERNEL_SEARCH_LOOP);
	bpf_program__set_autoload(skel->progs.handle_sk_msg_server_loop,
				  how != KERNEL_SEARCH_KFUNC);
	/*
	 * Only what the attachment uses is verified and loaded: the stdio hooks for `attach --pid`
	 * (a kernel whose verifier refuses them keeps its TCP plane), the pipes' or the socketpairs'
	 * as the servers' stdins are, the TCP plane's for `--port`. Verifying them all took 4.7 s
	 * on this machine, the socketpairs' alone 1.4 s. The stage that kills a pipe's server calls
	 * kfuncs of 6.13+.
	 */
	{
		struct bpf_program *p;

		bpf_object__for_each_program(p, skel->obj) {
			const char *name = bpf_program__name(p);

			if (!strncmp(name, "handle_pipe_", 12))
				bpf_program__set_autoload(p, o->stdio && !o->no_pipes);
			else if (!strncmp(name, "handle_stdio_", 13))
				bpf_program__set_autoload(p, o->stdio && !o->no_socketpairs);
			else if (o->no_tcp)
				bpf_program__set_autoload(p, false);
		}
	}
	bpf_program__set_autoload(skel->progs.handle_pipe_kill,
				  o->stdio && !o->no_pipes && features__signal_task());
	/* BPF_PROG_TYPE_LSM fails to load where the kernel has no trampolines */
	bpf_program__set_autoload(skel->progs.handle_pipe_refuse,
				  o->stdio && !o->no_pipes && o->pipe_refuse);
	ncpu = libbpf_num_possible_cpus();
	if (ncpu < 1)
		ncpu = 1;
	bpf_map__set_max_entries(skel->maps.tcp_scan_bufs, ncpu * MCPF_TCP_SLOTS);
	if (o->socks_max)
		bpf_map__set_max_entries(skel->maps.tcp_socks, o->socks_max);
	err = o->adopt ? maps_reuse(skel) : 0;
	if (err) {
		tcp_bpf__destroy(skel);
		errno = -err;
		return NULL;
	}
	/*
	 * the names' hash seed: an agent that cannot read it cannot aim collisions at a tool (an
	 * adopted attachment's .rodata keeps the seed its rules were hashed with)
	 */
	if (!o->adopt &&
	    getrandom((void *)&skel->rodata->cfg_name_seed, sizeof(skel->rodata->cfg_name_seed),
		      0) != sizeof(skel->rodata->cfg_name_seed)) {
		err = -errno;
		log_err("getrandom: %s", strerror(-err));
		tcp_bpf__destroy(skel);
		errno = -err;
		return NULL;
	}
	err = tcp_bpf__load(skel);
	if (err) {
		char why[256];

		if (features__tcp(why, sizeof(why)))
			log_err("bpf/tcp.bpf.c: the kernel refused the sock_ops/sk_msg programs (%s): "
				"%s",
				strerror(-err), why);
		else if (o->stdio)
			log_err("bpf/tcp.bpf.c: the kernel's verifier refused the programs of the "
				"stdio plane (%s) (attach --port without --pid does not load them); run "
				"attach --verbose for the verifier log",
				strerror(-err));
		else
			log_err("bpf/tcp.bpf.c: the kernel's verifier refused the programs (%s) "
				"although it has every feature they use: a bug of mcpfence; run "
				"attach --verbose for the verifier log",
				strerror(-err));
		tcp_bpf__destroy(skel);
		errno = -err;
		return NULL;
	}
	/* the TCP plane's stages, in the slots of bpf/tcp.bpf.c; the server's is the build loaded */
	if (!o->no_tcp) {
		const struct bpf_program *stage[4] = {
			skel->progs.handle_sk_msg_client, skel->progs.handle_sk_msg_body,
			kernel__search_kfunc(skel) ? skel->progs.handle_sk_msg_server :
						     skel->progs.handle_sk_msg_server_loop,
			skel->progs.handle_sk_msg_list
		};

		for (__u32 slot = 0; slot < 4; slot++) {
			int fd = bpf_program__fd(stage[slot]);

			if (bpf_map_update_elem(bpf_map__fd(skel->maps.tcp_progs), &slot, &fd,
						BPF_ANY)) {
				err = -errno;
				log_err("tcp_progs: update: %s", strerror(-err));
				tcp_bpf__destroy(skel);
				errno = -err;
				return NULL;
			}
		}
	}
	return skel;
}

struct tcp_bpf *kernel__load_with(enum kernel_search how)
{
	struct kernel_load_opts o = { .search = how };

	return kernel__load_opts(&o);
}

struct tcp_bpf *kernel__load(void)
{
	return kernel__load_with(KERNEL_SEARCH_AUTO);
}

bool kernel__search_kfunc(const struct tcp_bpf *skel)
{
	return bpf_program__autoload(skel->progs.handle_sk_msg_server) &&
	       !bpf_program__autoload(skel->progs.handle_sk_msg_server_loop);
}

bool kernel__search_both(const struct tcp_bpf *skel)
{
	return bpf_program__autoload(skel->progs.handle_sk_msg_server) &&
	       bpf_program__autoload(skel->progs.handle_sk_msg_server_loop);
}

int kernel__activate(struct tcp_bpf *skel, unsigned gen)
{
	struct mcpf_active act = { .gen = gen & 1, .loaded = 1 };
	__u32 pslot = (gen >> 1) & (MCPF_PSLOTS - 1);

	if (bpf_map_update_elem(bpf_map__fd(skel->maps.tcp_active), &pslot, &act, BPF_ANY)) {
		log_err("tcp_active: update: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int kernel__deactivate(struct tcp_bpf *skel, unsigned pslot)
{
	struct mcpf_active act = {};

	pslot &= MCPF_PSLOTS - 1;
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.tcp_active), &pslot, &act, BPF_ANY)) {
		log_err("tcp_active: update: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int kernel__watch_port(struct tcp_bpf *skel, uint16_t port, unsigned pslot)
{
	__u8 slot = pslot & (MCPF_PSLOTS - 1);

	if (bpf_map_update_elem(bpf_map__fd(skel->maps.tcp_ports), &port, &slot, BPF_ANY)) {
		log_err("tcp_ports: update: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

/* ---- TCP Fast Open ------------------------------------------------------------------- */

#define TFO_SYSCTL "/proc/sys/net/ipv4/tcp_fastopen"
#define TFO_SAVED "/run/mcpfence/tcp_fastopen.saved"

/*
 * A client's TCP Fast Open data (sendto MSG_FASTOPEN, TCP_FASTOPEN_CONNECT) is queued before the
 * connection is established, so before sock_ops can put the socket in tcp_socks: sk_msg never
 * sees it. While attached, the client bit (1) of net.ipv4.tcp_fastopen is cleared; such sends
 * then fail (EOPNOTSUPP) or go the normal way. The value before is kept in TFO_SAVED.
 */
int kernel__tfo_client_off(void)
{
	char buf[32];
	int fd, n, v;

	fd = open(TFO_SYSCTL, O_RDWR);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0) {
		close(fd);
		return -EIO;
	}
	buf[n] = 0;
	v = atoi(buf);
	if (v & 1) {
		int sfd;

		mkdir("/run/mcpfence", 0700);
		sfd = open(TFO_SAVED, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (sfd >= 0) {
			if (write(sfd, buf, n) != n)
				log_warn("%s: write: %s", TFO_SAVED, strerror(errno));
			close(sfd);
		}
		n = snprintf(buf, sizeof(buf), "%d\n", v & ~1);
		if (pwrite(fd, buf, n, 0) != n) {
			log_err("%s: cannot clear the client bit: %s: TCP Fast Open data would pass "
				"unread",
				TFO_SYSCTL, strerror(errno));
			close(fd);
			return -errno;
		}
		log_info("net.ipv4.tcp_fastopen: client side off while attached (its data would "
			 "pass before the socket is watched)");
	}
	close(fd);
	return 0;
}

void kernel__tfo_restore(void)
{
	char buf[32];
	int fd = open(TFO_SAVED, O_RDONLY), n;

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n > 0) {
		fd = open(TFO_SYSCTL, O_WRONLY);
		if (fd >= 0) {
			if (write(fd, buf, n) != n)
				log_warn("%s: restore: %s", TFO_SYSCTL, strerror(errno));
			close(fd);
		}
	}
	unlink(TFO_SAVED);
}

/* ---- the stamp ------------------------------------------------------------------------ */

/* This build's BPF object: FNV-1a of its bytes. */
static uint64_t build_hash(void)
{
	size_t n = 0;
	const unsigned char *b = tcp_bpf__elf_bytes(&n);
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static void stamp_ports(char *out, size_t size, const uint16_t *ports, unsigned nports)
{
	size_t off = 0;

	out[0] = 0;
	for (unsigned i = 0; i < nports && off < size; i++)
		off += snprintf(out + off, size - off, "%s%u", i ? "," : "", ports[i]);
}

int kernel__stamp_write(bool daemon, const uint16_t *ports, unsigned nports)
{
	char p[MCPF_TCP_MAX_PORTS * 6 + 1];
	FILE *f;
	int err = 0;

	mkdir("/run/mcpfence", 0700);
	f = fopen(KERNEL_STAMP_PATH ".new", "we");
	if (!f) {
		err = -errno;
		log_err("%s: %s", KERNEL_STAMP_PATH ".new", strerror(-err));
		return err;
	}
	stamp_ports(p, sizeof(p), ports, nports);
	fprintf(f, "by %s\nbuild %016llx\nports %s\n", daemon ? "daemon" : "attach",
		(unsigned long long)build_hash(), p);
	if (fclose(f) || rename(KERNEL_STAMP_PATH ".new", KERNEL_STAMP_PATH)) {
		err = -errno;
		log_err("%s: %s", KERNEL_STAMP_PATH, strerror(-err));
	}
	return err;
}

int kernel__stamp_check(const uint16_t *ports, unsigned nports, char *why, size_t size)
{
	char by[16] = "", want[512], got[512] = "";
	unsigned long long build = 0;
	FILE *f = fopen(KERNEL_STAMP_PATH, "re");
	int n;

	if (!f) {
		snprintf(why, size, "%s: %s (not left by a daemon)", KERNEL_STAMP_PATH,
			 strerror(errno));
		return -ENOENT;
	}
	n = fscanf(f, "by %15s build %llx ports %511[0-9,]", by, &build, got);
	fclose(f);
	stamp_ports(want, sizeof(want), ports, nports);
	if (n < 2 || strcmp(by, "daemon")) {
		snprintf(why, size, "it was made by `mcpfence %s`, not a daemon",
			 n >= 1 ? by : "attach");
		return -EPERM;
	}
	if (build != build_hash()) {
		snprintf(why, size, "another build of mcpfence made it");
		return -EPERM;
	}
	if (strcmp(got, want)) {
		snprintf(why, size, "it watches TCP ports '%s', not '%s'", got, want);
		return -EPERM;
	}
	return 0;
}

/* ---- pins ----------------------------------------------------------------------------- */

int kernel__pin_all(struct tcp_bpf *skel, struct bpf_link *link, struct bpf_link *egress)
{
	char path[PATH_MAX];
	struct bpf_map *m;
	int err;

	if (mkdir(MCPF_PIN_DIR, 0700) && errno != EEXIST) {
		err = -errno;
		log_err("%s: mkdir: %s", MCPF_PIN_DIR, strerror(-err));
		return err;
	}
	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++)
		if (!bpf_object__find_map_by_name(skel->obj, pinned_maps[i])) {
			log_err("%s: no such map", pinned_maps[i]);
			return -ENOENT;
		}
	/* every map: a daemon that comes back adopts them all (maps_reuse) */
	bpf_object__for_each_map(m, skel->obj) {
		pin_name(m, path, sizeof(path));
		err = bpf_map__pin(m, path);
		if (err) {
			log_err("%s: pin: %s", path, strerror(-err));
			return err;
		}
	}
	err = link ? bpf_link__pin(link, KERNEL_PIN_LINK) : 0;
	if (!err && egress)
		err = bpf_link__pin(egress, KERNEL_PIN_EGRESS);
	if (!err && bpf_program__autoload(skel->progs.handle_sk_msg))
		err = bpf_program__pin(skel->progs.handle_sk_msg, KERNEL_PIN_PROG);
	if (!err && bpf_program__autoload(skel->progs.handle_stdio_skb))
		err = bpf_program__pin(skel->progs.handle_stdio_skb, KERNEL_PIN_STDIO_PROG);
	if (err)
		log_err("%s: pin: %s", MCPF_PIN_DIR, strerror(-err));
	return err;
}

bool kernel__attached(void)
{
	return !access(KERNEL_PIN_LINK, F_OK) || !access(MCPF_PIN_DIR "/tcp_socks", F_OK);
}

/*
 * attach holds an exclusive flock on MCPF_PIN_DIR while it runs: the kernel drops it when the
 * process dies, however it dies. Returns the held fd, or -errno.
 */
int kernel__pins_lock(void)
{
	int fd = open(MCPF_PIN_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

enum kernel_attachment kernel__attachment(void)
{
	int fd;

	if (!kernel__attached() && access(MCPF_PIN_DIR, F_OK))
		return KERNEL_ATTACHED_NONE;
	fd = kernel__pins_lock();
	if (fd == -EWOULDBLOCK)
		return KERNEL_ATTACHED_LIVE;
	if (fd >= 0)
		close(fd);
	return KERNEL_ATTACHED_STALE;
}

/* Empty the SOCKHASH: a socket leaves sk_msg only when it leaves the map. */
static void socks_flush(int fd)
{
	struct mcpf_sock_key k;

	while (!bpf_map_get_next_key(fd, NULL, &k))
		if (bpf_map_delete_elem(fd, &k))
			break;
}

/* Detach the link pinned at path, if there is one: 1 when there was. */
static int link_detach_pinned(const char *path)
{
	int fd = bpf_obj_get(path);

	if (fd < 0)
		return 0;
	if (bpf_link_detach(fd))
		log_warn("%s: detach: %s", path, strerror(errno));
	close(fd);
	return 1;
}

/* The rest of MCPF_PIN_DIR's pins (the other maps, and those of another build). */
static void pins_rest_unlink(void)
{
	DIR *d = opendir(MCPF_PIN_DIR);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

int kernel__detach(void)
{
	char path[PATH_MAX];
	int found = 0, map_fd, prog_fd;

	found |= link_detach_pinned(KERNEL_PIN_LINK);
	/* sockets marked unwatched (tcp_socks was full) may send again: nothing is watched now */
	found |= link_detach_pinned(KERNEL_PIN_EGRESS);
	map_fd = bpf_obj_get(MCPF_PIN_DIR "/tcp_socks");
	prog_fd = bpf_obj_get(KERNEL_PIN_PROG);
	if (map_fd >= 0) {
		found = 1;
		if (prog_fd >= 0)
			bpf_prog_detach2(prog_fd, map_fd, BPF_SK_MSG_VERDICT);
		socks_flush(map_fd);
		close(map_fd);
	}
	if (prog_fd >= 0)
		close(prog_fd);
	/*
	 * stdio: the tracepoints go first (their links; the guard would take the plain reads that
	 * follow for reads of unjudged bytes), then the sockets leave stdio_socks
	 */
	found |= !unlink(KERNEL_PIN_GUARD);
	kernel_stdio__unpin_pipes();
	map_fd = bpf_obj_get(MCPF_PIN_DIR "/stdio_socks");
	prog_fd = bpf_obj_get(KERNEL_PIN_STDIO_PROG);
	if (map_fd >= 0) {
		found = 1;
		if (prog_fd >= 0)
			bpf_prog_detach2(prog_fd, map_fd, BPF_SK_SKB_STREAM_VERDICT);
		kernel_stdio__flush(map_fd);
		close(map_fd);
	}
	if (prog_fd >= 0)
		close(prog_fd);
	unlink(KERNEL_PIN_STDIO_PROG);
	unlink(KERNEL_PIN_LINK);
	unlink(KERNEL_PIN_EGRESS);
	unlink(KERNEL_PIN_PROG);
	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(pinned_maps[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", MCPF_PIN_DIR, pinned_maps[i]);
		if (!unlink(path))
			found = 1;
	}
	pins_rest_unlink();
	rmdir(MCPF_PIN_DIR);
	unlink(STATUS_PATH); /* a killed attach's rows */
	unlink(KERNEL_STAMP_PATH);
	kernel__tfo_restore();
	return found;
}
