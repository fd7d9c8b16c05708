/* SPDX-License-Identifier: Apache-2.0 */
/*
 * approval: calls held until a human decides ("action": "approve"). A human answers through
 * the client (elicitation/create, driven by the gateway) or through a local control socket,
 * one per enforcer, under the runtime directory: `mcpfence approvals` lists what waits,
 * `mcpfence approve ID` and `mcpfence deny ID` decide. No answer before the deadline is a no.
 */
#ifndef MCPFENCE_APPROVAL_H
#define MCPFENCE_APPROVAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>

enum approval_state {
	APPROVAL_WAITING = 0,
	APPROVAL_APPROVED = 1,
	APPROVAL_DENIED = 2,  /* a human said no */
	APPROVAL_EXPIRED = 3, /* nobody answered in time */
};

struct approval {
	uint64_t n;        /* number within this enforcer; the user's ID is "<pid>-<n>" */
	char *tool;
	json_t *args;      /* owned */
	json_t *msg;       /* owned: the held request, forwarded as it was once approved */
	char *raw;         /* the request's bytes as received, with '\n'; NULL: dump msg */
	size_t raw_len;
	uint64_t started_us, deadline_us; /* CLOCK_MONOTONIC */
	uint32_t timeout_s;
	char *elicit_id;   /* our elicitation/create id, when the client was asked */
	enum approval_state state;
	const char *by;    /* "elicitation", "socket" */
	struct approval *next;
};

struct approvals {
	struct approval *head;
	uint64_t next_n;
	int listen_fd; /* -1 until the first call waits on the socket */
	char sock_path[108];
	const char *server; /* for listings */
};

void approvals__init(struct approvals *q);
/* Drop every held call and remove the socket. */
void approvals__fini(struct approvals *q);
/* Hold a call (steals msg, copies raw); NULL on ENOMEM. */
struct approval *approvals__add(struct approvals *q, const char *tool, json_t *msg,
				const char *raw, size_t raw_len, uint32_t timeout_s,
				uint64_t now_us);
void approvals__remove(struct approvals *q, struct approval *a);
struct approval *approvals__find_elicit(struct approvals *q, const char *elicit_id);
/* The held request whose JSON-RPC id equals id (for notifications/cancelled). */
struct approval *approvals__find_request(struct approvals *q, const json_t *id);
/* Mark every waiting call whose deadline passed as expired; earliest deadline left, or 0. */
uint64_t approvals__expire(struct approvals *q, uint64_t now_us);
/* First call that is no longer waiting, or NULL. */
struct approval *approvals__decided(struct approvals *q);

/* Create the control socket (idempotent); 0 or -errno (logged). */
int approvals__listen(struct approvals *q);
/* Serve one connection on listen_fd (call when it is readable). */
void approvals__serve(struct approvals *q, uint64_t now_us);

/* Runtime directory of the control sockets; 0 or -errno. */
int approval__dir(char *buf, size_t size, bool create);

#endif
