/* SPDX-License-Identifier: Apache-2.0 */
/*
 * status: the sessions a kernel attachment enforces on, as `mcpfence status` lists them. attach
 * keeps a row per session (a stdio server given with --pid, a TCP connection that made a call):
 * its server and client, the calls decided and denied, from the decisions' events; and writes
 * them to STATUS_PATH (whole, by rename) when they changed, at most once a second.
 */
#ifndef MCPFENCE_STATUS_H
#define MCPFENCE_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <jansson.h>

#define STATUS_DIR "/run/mcpfence"
#define STATUS_PATH STATUS_DIR "/sessions.json"
#define STATUS_MAX 1024 /* rows kept; past it, the TCP connection idle longest is forgotten */

struct status_session {
	char plane[16];	  /* "stdio-kernel" or "kernel", as audit lines say it */
	char conn[40];	  /* "socketpair:PID", "pipe:PID" or "tcp:CPORT->SPORT": the row's key */
	pid_t server_pid; /* stdio: the server; TCP: 0 */
	char server[64];  /* stdio: its command name; TCP: "tcp:PORT" */
	pid_t client_pid; /* 0: not known (yet) */
	char client[256]; /* its executable (or command name) */
	char policy[256]; /* attach --policy-dir: the policy file its calls are decided by */
	char server_name[128]; /* the daemon: the name its first result gave it; "": none */
	uint64_t calls;	       /* tools/call decided */
	uint64_t denied;       /* decisions that denied: a call, or bytes refused unread (on a pipe
			    * with --pipe-action audit they went through all the same) */
	uint64_t last_us;      /* the last decision, CLOCK_REALTIME µs; 0: none yet */
	bool pinned;	       /* a --pid server's row: never forgotten */
	bool ended;	       /* a --pid server's stdin is read by no one any more */
};

struct status {
	struct status_session *s;
	size_t n, cap;
	uint64_t forgotten; /* TCP rows dropped to keep STATUS_MAX */
	bool dirty;	    /* changed since the last write */
	bool daemon;	    /* written by `mcpfence daemon` (else attach) */
};

/* The row of conn, added (zeroed but for conn) when there is none; NULL when out of memory. */
struct status_session *status__get(struct status *st, const char *conn);
/* Row s is decided by the policy file path (attach --policy-dir); marks st dirty if new. */
void status__set_policy(struct status_session *s, const char *path);
/*
 * Keep the rows of at most keep ended sessions: those whose last decision is oldest go first (a
 * daemon that sees thousands of short sessions keeps a table of bounded size).
 */
#define STATUS_ENDED_KEEP 64
void status__forget_ended(struct status *st, size_t keep);
/* Count a decision of row s at time_us (CLOCK_REALTIME µs). */
void status__count(struct status *st, struct status_session *s, bool call, bool denied,
		   uint64_t time_us);
/*
 * Write st to path (STATUS_PATH for attach): a new file beside it, 0600, renamed over it. policy:
 * the policy in force. 0, or -errno after logging what and where.
 */
int status__write(struct status *st, const char *path, const char *policy, pid_t attach_pid,
		  uint64_t started_us);
/*
 * Read the rows of path (a file status__write wrote: a daemon that comes back goes on with the
 * rows of the one before) into st. 0, -ENOENT when there is no such file or it is not JSON,
 * -EINVAL when it has no rows.
 */
int status__read(struct status *st, const char *path);
void status__free(struct status *st);

/*
 * Print doc (a file status__write wrote) for a human, or as JSON (the document, with
 * "attachment": state added): state is "live", "stale" (attach is gone; its programs still
 * enforce) or "none".
 */
void status__print(FILE *f, json_t *doc, const char *state, bool json);

#endif
