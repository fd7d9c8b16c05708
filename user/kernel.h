/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernel: the TCP plane's BPF object (bpf/tcp.bpf.c) and what the modules of the kernel plane
 * share of it (the compiled policy of a generation). kernel_load.c: probe, load, pins, detach,
 * the TCP Fast Open client bit; kernel_compile.h, kernel_adopt.h, kernel_events.h,
 * kernel_tickets.h: the rest of the plane; cmd_attach.c, cmd_stats.c: its commands.
 */
#ifndef MCPFENCE_KERNEL_H
#define MCPFENCE_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mcpfence.h"
#include "policy.h"

struct tcp_bpf;

#define KERNEL_PIN_LINK MCPF_PIN_DIR "/link_sock_ops"	     /* the sock_ops link on the cgroup */
#define KERNEL_PIN_EGRESS MCPF_PIN_DIR "/link_egress"	     /* the cgroup_skb egress link */
#define KERNEL_PIN_PROG MCPF_PIN_DIR "/prog_sk_msg"	     /* the sk_msg program on tcp_socks */
#define KERNEL_PIN_STDIO_PROG MCPF_PIN_DIR "/prog_stdio_skb" /* the sk_skb one on stdio_socks */
#define KERNEL_PIN_PIPE_LINKS MCPF_PIN_DIR "/link_pipe_"     /* + the tracepoint's name */
#define KERNEL_PIN_GUARD MCPF_PIN_DIR "/link_stdio_guard"    /* the guard of socketpair stdins */

/*
 * Every reason this machine cannot run the TCP plane, said once, clearly (root, BTF, bpffs,
 * cgroup v2, the program and map types). cgroup: the --cgroup given (size bytes), or empty: then
 * the host's cgroup v2 root, found in /proc/self/mountinfo, is written there. 0 or -errno.
 */
int kernel__probe(char *cgroup, size_t size);

/* Which budget slot a policy's limit compiled to, per generation. */
struct kernel_slot {
	uint64_t ident;
	const struct limit *lim; /* the first limit of the policy with this budget */
};

struct kernel_compiled {
	struct policy *pol;
	struct kernel_slot slots[64];
	unsigned nslots;
	unsigned gen;		     /* the generation it was compiled into: index in tcp_gen */
	uint32_t policy_id;	     /* its index in tcp_policies, which stats keys carry */
	uint64_t uncharged_seen[64]; /* tcp_uncharged of each slot, as last charged */
	char policy_path[4096]; /* its file's real path: names its global budgets as run does */
};

/* How the server stage finds the replies to rewrite (bpf/tcp.bpf.c reply_find). */
enum kernel_search {
	KERNEL_SEARCH_AUTO = 0,	 /* the loop: on every kernel, and faster than the kfunc */
	KERNEL_SEARCH_KFUNC = 1, /* bpf_strnstr (6.17+); fails without it */
	KERNEL_SEARCH_LOOP = 2,	 /* a bpf_loop search, 8 bytes a step */
	KERNEL_SEARCH_BOTH = 3,	 /* the loop's wired, the kfunc's loaded too where there is one */
};

struct kernel_load_opts {
	enum kernel_search search;
	uint32_t glob_steps; /* steps of a glob match before it is denied; 0: 9000 */
	bool stdio;	     /* load the stdio plane's programs (attach --pid) */
	bool no_tcp;	     /* leave out the TCP plane's programs (attach --pid without --port) */
	bool no_pipes;	     /* with stdio: leave out the pipe tracepoints (no stdin is a pipe) */
	bool no_socketpairs; /* with stdio: leave out the sk_skb ones (no stdin is a socketpair) */
	bool pipe_refuse;    /* with pipes: the BPF LSM program of --pipe-action refuse */
	uint32_t socks_max;  /* entries of tcp_socks (tests fill it); 0: 65536 */
	bool adopt;	     /* every map is the one pinned in MCPF_PIN_DIR (a daemon's, left) */
};

/* Open and load bpf/tcp.bpf.c (the stages wired); NULL and errno after logging why. */
struct tcp_bpf *kernel__load(void);
struct tcp_bpf *kernel__load_with(enum kernel_search how);
struct tcp_bpf *kernel__load_opts(const struct kernel_load_opts *o);
/* The server stage wired is the bpf_strnstr build (else the loop's). */
bool kernel__search_kfunc(const struct tcp_bpf *skel);
/* Both builds of the server stage are loaded (KERNEL_SEARCH_BOTH on a kernel with the kfunc). */
bool kernel__search_both(const struct tcp_bpf *skel);
/*
 * Make generation gen of the policy maps (its index in tcp_gen, MCPF_GEN_INDEX) the one in force
 * for its policy slot.
 */
int kernel__activate(struct tcp_bpf *skel, unsigned gen);
/* Policy slot pslot holds no policy any more: a session still in it is denied every call. */
int kernel__deactivate(struct tcp_bpf *skel, unsigned pslot);
/* Watch TCP port port, its sessions decided by policy slot pslot (set again: moved). */
int kernel__watch_port(struct tcp_bpf *skel, uint16_t port, unsigned pslot);

/*
 * Turn off the client side of net.ipv4.tcp_fastopen (its data would leave before sock_ops sees
 * the socket): 0 or -errno. kernel__tfo_restore puts back what it was.
 */
int kernel__tfo_client_off(void);
void kernel__tfo_restore(void);

/*
 * Pin the maps, the sk_msg program, the sock_ops link and (egress: NULL without TCP ports) the
 * cgroup_skb egress link under MCPF_PIN_DIR; 0 or -errno.
 */
struct bpf_link;
int kernel__pin_all(struct tcp_bpf *skel, struct bpf_link *link, struct bpf_link *egress);
/* flock MCPF_PIN_DIR for as long as this process runs (a live attach): its fd, or -errno. */
int kernel__pins_lock(void);
/* Is anything pinned under MCPF_PIN_DIR? */
bool kernel__attached(void);

/* Remove links, programs and pins under MCPF_PIN_DIR; 0 when nothing was attached. */
int kernel__detach(void);

enum kernel_attachment {
	KERNEL_ATTACHED_NONE = 0,
	KERNEL_ATTACHED_LIVE = 1,  /* pinned, and its `mcpfence attach` runs */
	KERNEL_ATTACHED_STALE = 2, /* pinned (programs may still run), its attach is gone */
};

/*
 * Make map m (before its object's load) the one pinned at path, when that has m's type, sizes and
 * entries: 0, or -errno with why in why (a missing pin: -ENOENT).
 */
struct bpf_map;
int kernel__map_reuse_pinned(struct bpf_map *m, const char *path, char *why, size_t size);

/* Whether MCPF_PIN_DIR holds an attachment, and whether its attach process still runs. */
enum kernel_attachment kernel__attachment(void);

/*
 * Who made the attachment in MCPF_PIN_DIR, for a daemon that comes back: written beside the
 * status (tmpfs, as bpffs: neither outlives a boot), removed by detach.
 */
#define KERNEL_STAMP_PATH "/run/mcpfence/attachment"

/* Write the stamp: by a daemon or not, this build's BPF object, the ports watched. 0 or -errno. */
int kernel__stamp_write(bool daemon, const uint16_t *ports, unsigned nports);
/*
 * May a daemon watching ports adopt the attachment left in MCPF_PIN_DIR: made by a daemon of this
 * build, watching the same ports? 0, or -errno with why in why.
 */
int kernel__stamp_check(const uint16_t *ports, unsigned nports, char *why, size_t size);

#endif
