/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon_find: how `mcpfence daemon` finds stdio MCP servers by itself. New ones at their exec
 * (bpf/daemon.bpf.c stops those that may be a server a policy's "match" names, before their
 * first instruction, and names them here); those that ran before the daemon, from /proc.
 */
#ifndef MCPFENCE_DAEMON_FIND_H
#define MCPFENCE_DAEMON_FIND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "mcpfence.h"
#include "policy_dir.h"

struct daemon_bpf;
struct ring_buffer;
struct bpf_link;

/* Executable names a directory's "match" can fit at exec, or every name. */
struct daemon_names {
	bool every;	       /* a file fits programs of any name (its "match" names no exe's) */
	const char *why_every; /* that file, for the log */
	unsigned n;
	struct mcpf_exe_name names[MCPF_DAEMON_EXES];
};

/*
 * The names of d: of each file whose "match" can fit a server at its exec (no "server_name",
 * which only its first answer says, and no "port"), the last part of its "exe" glob when that
 * holds no '*' or '?' (an executable it fits has that file name), cut to MCPF_EXE_NAME - 1
 * bytes; a file without "exe", or whose last part has a wildcard, makes it every name. More
 * than MCPF_DAEMON_EXES names: every name too.
 */
void daemon_find__names(const struct policy_dir *d, struct daemon_names *out);

/* Can a file's "match" fit a server the daemon finds by itself (see daemon_find__names)? */
bool daemon_find__findable(const struct policy *p);

struct daemon_find {
	struct daemon_bpf *skel;
	struct bpf_link *link;
	struct ring_buffer *rb;
	void (*on_exec)(void *ctx, const struct mcpf_exec_event *ev);
	void *ctx;
	uint64_t missed; /* MCPF_DAEMON_CFG_MISSED, as last said */
	bool left;	 /* in on_exec: the event is one a daemon before left unread */
};

/* The finder's ring, pinned: what a daemon killed had not read, the next reads. */
#define DAEMON_PIN_EXECS MCPF_PIN_DIR "/daemon_execs"

/*
 * Load and attach the finder; on_exec(ctx, ev) is called for each program it stops and names
 * (daemon_find__poll), first (f->left set) for those a daemon before stopped and left in the
 * pinned ring unread. 0, or -errno (logged).
 */
int daemon_find__start(struct daemon_find *f,
		       void (*on_exec)(void *ctx, const struct mcpf_exec_event *ev), void *ctx);
/* Put names in force: 0, or -errno (logged; the names in force stay as far as they could). */
int daemon_find__set(struct daemon_find *f, const struct daemon_names *names);
/* The fd to poll for events. */
int daemon_find__fd(const struct daemon_find *f);
/*
 * Call on_exec for each event waiting. True when programs were not stopped for want of room in
 * the ring since the last call (said): the caller looks for them in /proc.
 */
bool daemon_find__poll(struct daemon_find *f);
/* Detach (no program is stopped any more) and free. */
void daemon_find__stop(struct daemon_find *f);

/*
 * Call fn(ctx, pid) for each process but this one whose fd 0 and fd 1 are each a pipe or a
 * socket (what a stdio server's are), from /proc: the servers that ran before the daemon.
 * Returns how many.
 */
unsigned daemon_find__scan(void (*fn)(void *ctx, pid_t pid), void *ctx);

#endif
