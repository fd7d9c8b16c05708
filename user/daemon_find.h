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

/* Can a file's "match" fit a server the daemon finds by itself, but for its "server_name"? */
bool daemon_find__nameable(const struct policy *p);

#define DAEMON_NAMING_LINKS 8
#define DAEMON_NAMING_CLIENTS 8 /* readers of one server's answers stopped at its first */

/* A server watched for its first answer: what names it, for "server_name". */
#define DAEMON_NAMING_CHILDREN 4 /* its children that write its answers too (npx, a shell) */

struct daemon_naming {
	pid_t pid;
	uint64_t out_ino;
	pid_t clients[DAEMON_NAMING_CLIENTS];
	unsigned nclients;
	pid_t children[DAEMON_NAMING_CHILDREN];
	unsigned nchildren;
	bool done;	   /* named (or not): its clients continued; their entries go later */
	uint64_t since_ms; /* when its clients were last continued */
	unsigned writes;   /* its writes read that held no result */
	char *acc;	   /* those writes' bytes (MCPF_ANSWER_BYTES in all at most) */
	size_t nacc;
};

/* Writes of a server read for its first result (an error or a notification may come first). */
#define DAEMON_NAMING_WRITES 16

struct daemon_find {
	struct daemon_bpf *skel;
	struct bpf_link *link;
	struct ring_buffer *rb;
	void (*on_exec)(void *ctx, const struct mcpf_exec_event *ev);
	/* the first answer of a server watched: its name, or NULL and why not */
	void (*on_named)(void *ctx, pid_t pid, const char *name, const char *why);
	void *ctx;
	uint64_t missed; /* MCPF_DAEMON_CFG_MISSED, as last said */
	bool left;	 /* in on_exec: the event is one a daemon before left unread */
	struct bpf_link *naming_links[DAEMON_NAMING_LINKS]; /* on while a server is watched */
	struct daemon_naming naming[MCPF_NAMING_SERVERS];
	unsigned nnaming;
};

/* The finder's ring, pinned: what a daemon killed had not read, the next reads. */
#define DAEMON_PIN_EXECS MCPF_PIN_DIR "/daemon_execs"
/* The clients stopped at a first answer, pinned: a daemon killed meanwhile leaves them stopped */
#define DAEMON_PIN_NAMING MCPF_PIN_DIR "/daemon_naming_clients"

/*
 * The name a server's first result gives it: bytes (len, what its first writes wrote; cut: they
 * wrote more than that) hold JSON-RPC lines; the first that is a result names it by its
 * "serverInfo" (initialize, server/discover) or the 2026-07-28 "_meta" serverInfo, with a
 * string "name". 0 and the name in name; -1 and why not in why (a line longer than what was
 * read, not one JSON object, duplicate keys, a result with no name); 1: no result there yet
 * (errors, notifications, the server's own requests, a line its next write goes on with).
 */
int daemon_find__answer_name(const void *bytes, size_t len, bool cut, char *name, size_t size,
			     char *why, size_t why_size);

/*
 * The naming programs on (true) or off; 0 or -errno (logged). On while a server waits for its
 * first answer (daemon_find__watch puts them on, the last entry's going off).
 */
int daemon_find__naming(struct daemon_find *f, bool on);
/*
 * Watch server pid, stopped at its exec, for its first answer (on its stdout, inode out_ino):
 * the processes in clients (its answers' readers) stop at their next read once it has
 * written it, until daemon_find__named. 0 or -errno (logged; then it is not watched).
 */
int daemon_find__watch(struct daemon_find *f, pid_t pid, uint64_t out_ino, const pid_t *clients,
		       unsigned nclients);
/*
 * A program stopped at its exec whose stdout (inode out_ino) is a watched server's: a child of
 * it (npx, a shell) that may write its answers. Its writes are read as the server's (true), up
 * to DAEMON_NAMING_CHILDREN of them; false: no watched server has that stdout.
 */
bool daemon_find__child(struct daemon_find *f, pid_t pid, uint64_t out_ino);
/* pid is named (or not): its clients are continued, and nothing stops them any more. */
void daemon_find__named(struct daemon_find *f, pid_t pid);
/*
 * Once a tick: the entries of servers named at the last go (a stop that raced the name is
 * undone first); a server that ended is forgotten, one whose answer found no room named NULL.
 */
void daemon_find__naming_tick(struct daemon_find *f);
/*
 * What a daemon killed left stopped (programs at their exec, clients at a first answer) is
 * continued, from the pins; for `mcpfence detach`. How many.
 */
unsigned daemon_find__release_pinned(void);

/*
 * Load and attach the finder; on_exec(ctx, ev) is called for each program it stops and names
 * (daemon_find__poll), first (f->left set) for those a daemon before stopped and left in the
 * pinned ring unread. 0, or -errno (logged).
 */
int daemon_find__start(struct daemon_find *f,
		       void (*on_exec)(void *ctx, const struct mcpf_exec_event *ev),
		       void (*on_named)(void *ctx, pid_t pid, const char *name, const char *why),
		       void *ctx);
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
