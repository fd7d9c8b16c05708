/* SPDX-License-Identifier: Apache-2.0 */
/*
 * audit: one JSON line per decision, appended to a file (or stderr) with one write, so that
 * lines from several enforcers sharing a file do not interleave. Used by every plane.
 */
#ifndef MCPFENCE_AUDIT_H
#define MCPFENCE_AUDIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

struct audit;

/* One decision. Every pointer may be NULL (the field is then left out or null). */
struct audit_event {
	uint64_t time_us;    /* CLOCK_REALTIME, µs since the epoch; 0: now */
	const char *plane;   /* "stdio", "http", "kernel" */
	const char *server;  /* the server's name */
	const char *session; /* MCP session id or a per-connection id */
	const char *conn;    /* the connection, where the plane knows one: "tcp:53312->8080" */
	pid_t client_pid;    /* 0: unknown */
	uid_t client_uid;    /* (uid_t)-1: unknown */
	const char *client_exe;
	const char *client_name; /* the name the client gave itself (clientInfo) */
	const char *method;	 /* "tools/call", or what the message was */
	const char *tool;
	const json_t *args;   /* the call's arguments: keys logged, values only if audit_values */
	const char *decision; /* "allow", "deny" */
	const char *kind;     /* decide__kind_name(), NULL when allowed */
	const char *rule;     /* JSON Pointer of the rule that fired */
	const char *policy;   /* the policy file that decided, when several are in force */
	const char *reason;
	const char *approved_by; /* who decided: "elicitation", "uid 0 (root)", "ticket" */
	const char *note;	 /* what an allowed call's decision could not do: "budgets ... not
				    counted (Redis at ...)" */
	uint64_t latency_us;	 /* time mcpfence took to decide, approvals included */
	const char *request_id;	 /* the id as JSON text */
};

struct decision;
/* A gateway's decision into ev: decision, kind, rule, reason (of a denial) and note. */
void audit__set_decision(struct audit_event *ev, const struct decision *d);

/*
 * Open the audit log: path "-" is stderr, NULL is the default location (audit__default_path).
 * Returns NULL and sets errno on failure (after logging what and where).
 */
struct audit *audit__open(const char *path);
void audit__close(struct audit *a);
/* Log argument values too (policy "audit": {"arguments": "values"}). */
void audit__set_values(struct audit *a, bool values);
/* Append one line; 0 or -errno (logged once per run of failures). */
int audit__write(struct audit *a, const struct audit_event *ev);
/*
 * Buffered: audit__write only formats and keeps the line; what is kept is written in one write
 * once 64 KiB are kept, by audit__flush_due once the oldest line kept is 10 ms old, by
 * audit__flush, and by audit__close. An enforcer spends one write on many lines, and none on
 * a call's path.
 */
void audit__set_buffered(struct audit *a, bool buffered);
int audit__flush(struct audit *a);
/* When the lines kept are due (CLOCK_MONOTONIC µs), 0 when none is kept. */
uint64_t audit__deadline(const struct audit *a);
/* Flush when the lines kept are due at now. */
int audit__flush_due(struct audit *a, uint64_t now);
const char *audit__path(const struct audit *a);

/*
 * Default location: $MCPFENCE_AUDIT if set; root: /var/log/mcpfence/audit.jsonl; others:
 * $XDG_STATE_HOME/mcpfence/audit.jsonl, or ~/.local/state/mcpfence/audit.jsonl.
 */
int audit__default_path(char *buf, size_t size);

uint64_t audit__now_us(void);

#endif
