/* SPDX-License-Identifier: Apache-2.0 */
/*
 * server_proc: the MCP server that `mcpfence run` starts and supervises: its pipes, its exit,
 * how it is stopped (its stdin closed, then SIGTERM, then SIGKILL, each after a grace period),
 * the signals forwarded to it, and who it is (for the key of grant budgets).
 */
#ifndef MCPFENCE_SERVER_PROC_H
#define MCPFENCE_SERVER_PROC_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct server_proc {
	pid_t pid;
	int to_fd;   /* its stdin, ours to write (non-blocking); -1 once closed */
	int from_fd; /* its stdout, ours to read (non-blocking); -1 once closed */
	bool in_closed, exited;
	int status; /* its exit code, or 128 + the signal that ended it */
	unsigned grace_ms;
	uint64_t term_at, kill_at, drain_until; /* CLOCK_MONOTONIC µs; 0: not set */
};

void server_proc__init(struct server_proc *sp, unsigned grace_ms);
/*
 * Start argv with pipes on its stdin and stdout, in its own process group, with the signal mask
 * oldmask and default signal handling; it gets SIGTERM when we die. 0 or -errno (logged).
 */
int server_proc__spawn(struct server_proc *sp, char **argv, const sigset_t *oldmask);
/* Close its stdin; unless it exits within the grace period, SIGTERM follows. */
void server_proc__close_stdin(struct server_proc *sp, uint64_t now);
/* Take its exit status if it has exited (on SIGCHLD); its last output may take DRAIN_MS. */
void server_proc__reap(struct server_proc *sp, uint64_t now);
/* Forward a stopping signal (SIGTERM, SIGINT, SIGQUIT); SIGKILL follows after the grace. */
void server_proc__signal(struct server_proc *sp, int sig, uint64_t now);
/* Send what the deadlines due at now ask for (SIGTERM, SIGKILL). */
void server_proc__timers(struct server_proc *sp, uint64_t now);
/* The earliest deadline set (SIGTERM, SIGKILL, end of draining), or 0. */
uint64_t server_proc__deadline(const struct server_proc *sp);
/* Is its last output allowed no more time? */
bool server_proc__drained(const struct server_proc *sp, uint64_t now);
/* Kill it if it still runs, wait for it, close the pipes. */
void server_proc__stop(struct server_proc *sp);

/*
 * Who the server is, for the key of grant budgets: "name:NAME" when run was given --name,
 * else its command line as run starts it: argv[0] found through PATH as execvp finds it and
 * resolved to a real path, then the arguments as given, each with its length in front
 * ("cmd:15:/usr/bin/node19:/srv/mcp/index.js"). NULL and errno when out of memory.
 */
char *server_proc__identity(char *const argv[], const char *name);

#endif
