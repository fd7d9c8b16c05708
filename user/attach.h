/* SPDX-License-Identifier: Apache-2.0 */
/*
 * attach: the running attachment's state, which `mcpfence attach` (cmd_attach.c) keeps and
 * `mcpfence daemon` (attach_daemon.c), the same attachment finding its servers itself, shares.
 */
#ifndef MCPFENCE_ATTACH_H
#define MCPFENCE_ATTACH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include "daemon_find.h"
#include "kernel.h"
#include "kernel_compile.h"
#include "kernel_events.h"
#include "kernel_stdio.h"
#include "mcpfence.h"
#include "policy_dir.h"
#include "policy_watch.h"
#include "status.h"

/*
 * Sessions are numbered: stdio servers (--pid, then those enrolled) by their index in the BPF
 * maps, [0, MCPF_STDIO_MAX_SESSIONS); ports after them.
 */
#define NSESSIONS (MCPF_STDIO_MAX_SESSIONS + MCPF_TCP_MAX_PORTS)
#define PORT_SESSION(j) (MCPF_STDIO_MAX_SESSIONS + (j))
#define DAEMON_FOUND_MAX 256

/* A policy slot: one policy in force, for the sessions whose server it fits. */
struct attach_slot {
	const struct policy *pol; /* in force; NULL: the slot is free */
	unsigned gen;		  /* 0 or 1: which of its two generations is in force */
};

struct attach_ctx {
	struct kernel_events ev; /* what the event handler reads: kc, limits, audit, quiet */
	struct tcp_bpf *skel;
	struct kernel_compiled kc[MCPF_GENS]; /* by generation; their policies are dir's or
					       * dir_old's */
	struct attach_slot slots[MCPF_PSLOTS];
	struct policy_dir *dir;	      /* the policies in force (--policy: a directory of one) */
	struct policy_dir *dir_old;   /* those they replaced: idle generations may name them */
	struct policy_dir *dir_first; /* loaded, not yet in force */
	const char *policy_path;      /* --policy, or --policy-dir */
	bool is_dir;		      /* --policy-dir */
	struct policy_watch watch;    /* --policy-dir: its changes (watch.cur is dir) */
	bool watching;
	struct ring_buffer *rb;
	uint16_t ports[MCPF_TCP_MAX_PORTS];
	unsigned nports, npids;
	pid_t pids[MCPF_STDIO_MAX_SESSIONS];
	struct proc_who *who; /* --policy-dir: who each --pid server was at attach */
	/* each session's policy slot: --pid (and enrolled) servers' by index, then ports' */
	unsigned pslot[NSESSIONS];
	bool pipes_attached; /* the pipe tracepoints */
	enum mcpf_pipe_action pipe_action;
	int control_fd; /* `mcpfence enroll` asks here; -1: not listening */
	struct kernel_stdio_session stdio[MCPF_STDIO_MAX_SESSIONS];
	uint64_t unwatched;   /* sockets tcp_socks had no room for, as last said */
	uint64_t events_lost; /* decisions whose event found the ring full, as last said */
	struct status status; /* the sessions' rows, for `mcpfence status` */
	uint64_t started_us;
	/* `mcpfence daemon`: the servers it finds by itself */
	bool daemon;
	bool finding; /* find is started */
	struct daemon_find find;
	const struct policy_dir *find_dir; /* whose names find has */
	struct {
		pid_t pid;
		bool stopped;
		bool left; /* stopped by a daemon before, which was killed before it read it */
	} found[DAEMON_FOUND_MAX]; /* named by the finder, to take after its ring is read */
	unsigned nfound;
	pid_t waiting[DAEMON_FOUND_MAX]; /* stopped, a policy fits, no room yet: taken later */
	unsigned nwaiting;
	/* a daemon that came back: the sessions of the attachment it adopted, by index */
	bool adopted[MCPF_STDIO_MAX_SESSIONS];
};

/* The options attach and daemon share, last in their usage. */
#define OPTIONS_BOTH                                                                      \
	"  --pipe-action A   a denied call on a pipe: audit (default: it goes through,\n" \
	"                    audited), kill (the server is killed before it reads it)\n"  \
	"                    or refuse (its write fails; needs the BPF LSM)\n"            \
	"  --cgroup PATH     the cgroup v2 watched for TCP (default: the host's root)\n"  \
	"  --audit FILE      audit log, - for stderr (default: as for run)\n"             \
	"  --quiet           no line on stdout per decision\n"                            \
	"  --verbose         log debug messages\n"                                        \
	"  -h, --help        print this help\n"

/*
 * `mcpfence attach` (daemon false) or `mcpfence daemon` (true), argv from the command's name
 * on: the exit code.
 */
int attach__main(int argc, char **argv, bool daemon);
/*
 * Server pid under this attachment, as `mcpfence enroll` asks (cmd_attach.c): the answer into
 * reply; 0, -ENOSPC when every session index is taken by a session that has not ended, or
 * another -errno. fresh: stopped at its exec; known: who it is, read already (taken over).
 */
int attach__enroll(struct attach_ctx *ac, pid_t pid, bool fresh, struct proc_who *known,
		   char *reply);
/* Each session picked again from who its server is (a name learnt): 0, or -errno as it was. */
int attach__repick(struct attach_ctx *ac);

/* attach_policies.c: which policy each session gets, and putting policies in force. */
/* The policies of --policy (a directory of one) or --policy-dir, loaded; NULL: logged. */
struct policy_dir *attach_policies__load(struct attach_ctx *ac);
/*
 * Put the policies of d in force, each session under the one that fits its server (first: the
 * sessions have no slot yet; keep: a policy in force already is not compiled again). 0, or
 * -errno with the policies in force as they were.
 */
int attach_policies__apply(struct attach_ctx *ac, const struct policy_dir *d, bool first,
			   bool keep);
/* d in force in place of ac->dir (apply): on success d is the attachment's, else the caller's. */
int attach_policies__take(struct attach_ctx *ac, struct policy_dir *d, bool first);
/* SIGHUP: the policy file, or the directory, loaded again and put in force. */
void attach_policies__reload(struct attach_ctx *ac);
/* --policy-dir: a change its watch reports, put in force. */
void attach_policies__changed(struct attach_ctx *ac);
/* The generation in force of slot s: its compiled policy. */
struct kernel_compiled *attach_policies__slot_kc(struct attach_ctx *ac, unsigned s);
/* Events drained, lost ones charged, then the global budgets of kc brought to the table. */
void attach_policies__sync_global(struct attach_ctx *ac, const struct kernel_compiled *kc);

/* attach_daemon.c: what `mcpfence daemon` adds. */
void attach_daemon__usage(FILE *f);
void attach_daemon__names(struct attach_ctx *ac);
void attach_daemon__on_exec(void *ctx, const struct mcpf_exec_event *ev);
/* A server watched for its first answer: its name (NULL: none, why says why not). */
void attach_daemon__on_named(void *ctx, pid_t pid, const char *name, const char *why);
void attach_daemon__found(struct attach_ctx *ac);
void attach_daemon__scanned(void *ctx, pid_t pid);
/* The finder detached, then every program it stopped, or that waits, continued. */
/*
 * Leave (the attachment stays, as it enforces; enroll: the programs stopped at their start are
 * enrolled first) or not (continued).
 */
void attach_daemon__stop(struct attach_ctx *ac, bool enroll);
/*
 * A daemon that comes back, its maps those left (kernel_load_opts.adopt): each slot's generation
 * in force, read; the servers of their sessions found in /proc, and those a file of dir_first
 * still fits taken back at their index (the status rows read first: the names they had). How
 * many.
 */
unsigned attach_daemon__adopt(struct attach_ctx *ac);
/*
 * Then, its policies in force on those maps: the sessions it did not take back go, and the slots
 * none needs; this build's programs go where new sockets meet them. n: sessions taken back. 0
 * or -errno (logged).
 */
int attach_daemon__adopted(struct attach_ctx *ac, unsigned n);
/* The status rows read back that no session taken back made its own: ended. */
void attach_daemon__status_adopted(struct attach_ctx *ac);

#endif
