/* SPDX-License-Identifier: Apache-2.0 */
/*
 * approval: calls held until a human decides ("action": "approve"). A human answers through
 * the client (elicitation/create, driven by the gateway) or, as an operator, through the
 * gateway's control socket: `mcpfence approvals` lists what waits, `mcpfence approve ID` and
 * `mcpfence deny ID` decide.
 *
 * The control socket is an abstract AF_UNIX socket, "@mcpfence/approvals/<pid>": no file, so
 * an approver of another uid can reach it, and who may do what is decided on the peer's
 * credentials alone (SO_PEERCRED, SO_PEERGROUPS), never on who can open a path. The agent
 * runs as the uid of its client, which spawns the gateway: that uid may list its own calls
 * but approves nothing unless the rule names it in approvers.users.
 *
 * An ID is "<pid>-<call>-<digest>": the gateway's pid, 8 random hex digits that name the call
 * within the gateway, and the first 16 hex digits of the SHA-256 of what is approved (the
 * tool and its arguments, approval__digest). A decision applies only to the call that all
 * three name, and only while it waits: once.
 */
#ifndef MCPFENCE_APPROVAL_H
#define MCPFENCE_APPROVAL_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <jansson.h>
#include "decide.h"
#include "policy.h"

#define APPROVAL_SOCK_PREFIX "mcpfence/approvals/" /* abstract: a NUL byte comes first */
#define APPROVAL_TOKEN_HEX 8
#define APPROVAL_ID_DIGEST_HEX 16 /* of the 64 hex digits of the SHA-256 */
#define APPROVAL_ID_LEN 48	  /* "<pid>-<token>-<digest>" and its NUL, with room */
#define APPROVAL_CONNS 16	  /* control connections served at once */

enum approval_state {
	APPROVAL_WAITING = 0,
	APPROVAL_APPROVED = 1,
	APPROVAL_DENIED = 2,	/* a human said no */
	APPROVAL_EXPIRED = 3,	/* nobody answered in time */
	APPROVAL_UNASKABLE = 4, /* nobody the rule allows can be asked: why says why */
};

struct approval {
	char token[APPROVAL_TOKEN_HEX + 1];
	char id[APPROVAL_ID_LEN];
	char digest[65]; /* hex SHA-256 of the tool and its arguments */
	char *tool;
	json_t *args; /* owned */
	json_t *msg;  /* owned: the held request, forwarded as it was once approved */
	char *raw;    /* the request's bytes as received, with '\n'; NULL: dump msg */
	size_t raw_len;
	uint64_t started_us, deadline_us; /* CLOCK_MONOTONIC */
	uint32_t timeout_s;
	char *elicit_id; /* our elicitation/create id, when the client was asked */
	bool on_socket;	 /* the operator was told, on the control socket */
	enum approval_state state;
	char by[96];   /* who decided: "elicitation", "uid 0 (root)"; empty: nobody */
	char why[200]; /* APPROVAL_UNASKABLE: why nobody could be asked */
	struct approval *next;
};

/* Who is at the other end of a control connection, as the kernel says (at connect time). */
struct approval_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;	     /* primary (effective) group */
	const gid_t *groups; /* supplementary groups */
	size_t ngroups;
};

struct approval_conn {
	int fd; /* -1: free */
	struct approval_peer peer;
	gid_t *groups;
	uint64_t deadline_us;
	char in[256];
	size_t in_len;
	char *out; /* the answer, once the command line is in */
	size_t out_len, out_off;
};

struct approvals {
	struct approval *head;
	int listen_fd;	    /* -1 until the first call waits on the socket */
	char sock_name[64]; /* abstract name, without its leading NUL */
	const char *server; /* for listings */
	pid_t pid;	    /* ours: the first part of every ID */
	uid_t client_uid;   /* of the client that makes the calls; (uid_t)-1 unknown */
	pid_t client_pid;
	const char *client_exe;
	struct approval_conn conns[APPROVAL_CONNS];
	unsigned long refusals;
};

void approvals__init(struct approvals *q);
/* Drop every held call and close the socket and its connections. */
void approvals__fini(struct approvals *q);
/* Hold a call (steals msg, copies raw); NULL and errno (ENOMEM) on failure. */
struct approval *approvals__add(struct approvals *q, const char *tool, json_t *msg, const char *raw,
				size_t raw_len, uint32_t timeout_s, uint64_t now_us);
void approvals__remove(struct approvals *q, struct approval *a);
struct approval *approvals__find_elicit(struct approvals *q, const char *elicit_id);
/* The held request whose JSON-RPC id equals id (for notifications/cancelled). */
struct approval *approvals__find_request(struct approvals *q, const json_t *id);
/*
 * Mark every waiting call whose deadline passed as expired and close control connections that
 * took too long; the earliest deadline left (a call's or a connection's), or 0.
 */
uint64_t approvals__expire(struct approvals *q, uint64_t now_us);
/* First call that is no longer waiting, or NULL. */
struct approval *approvals__decided(struct approvals *q);

/* Bind and listen on the control socket (idempotent); 0 or -errno (logged). */
int approvals__listen(struct approvals *q);
/* The descriptors to poll for the control socket and its connections; how many were set. */
size_t approvals__pollfds(struct approvals *q, struct pollfd *pfd, size_t max);
/* Act on what poll said of those descriptors; p is the policy in force (its approvers). */
void approvals__serve(struct approvals *q, const struct policy *p, const struct pollfd *pfd,
		      size_t n, uint64_t now_us);

/*
 * May peer approve or deny a call of the rule whose approvers are ap (NULL: none), made by a
 * client of uid client_uid through a gateway of uid gateway_uid? 0 yes (how says why: "root",
 * "uid 1001 (alice), in approvers.users", ...), -EPERM no (how says why not). Pure: the names
 * in ap were resolved when the policy was loaded.
 */
int approval__authorize(const struct approvers *ap, const struct approval_peer *peer,
			uid_t client_uid, uid_t gateway_uid, char *how, size_t size);
/* Who may approve, in words: "root, uid 1001 (alice), members of group 2000 (secops)". */
void approval__who(const struct approvers *ap, unsigned via, char *buf, size_t size);
/* Warn (once per name) of approvers that do not resolve on this host. */
void approval__warn_unresolved(const struct policy *p);

/*
 * SHA-256 over the canonical compact JSON of [tool, arguments] (keys sorted, no whitespace,
 * UTF-8, absent arguments as {}), in hex (65 bytes with the NUL); 0 or -errno.
 */
int approval__digest(const char *tool, const json_t *args, char hex[65]);
/* Split an ID "<pid>-<token>-<digest>"; 0, or -EINVAL when it is not one. */
int approval__parse_id(const char *id, pid_t *pid, char token[APPROVAL_TOKEN_HEX + 1],
		       char digest[APPROVAL_ID_DIGEST_HEX + 1]);
/*
 * The question a human is asked about a call of tool on server with args, under the rule at
 * pointer, denied without an answer in timeout_s (into msg, size bytes).
 */
void approval__question(const char *tool, const char *server, const json_t *args,
			const char *pointer, uint32_t timeout_s, char *msg, size_t size);
/*
 * elicitation/create's params for a question (message): one boolean, "approve". Used by the
 * gateway's own request, the proxy's, and the input_required result of 2026-07-28.
 */
json_t *approval__elicit_params(const char *message);
/* Our elicitation/create request of that question (message), with id. */
json_t *approval__elicit_request(const char *id, const char *message);
/* notifications/cancelled: our elicitation/create id is taken back (reason NULL: none said). */
json_t *approval__elicit_cancelled(const char *id, const char *reason);
/*
 * The client's answer (msg, a JSON-RPC response) to our elicitation/create about a: a result
 * decides it (approved only for "accept" with approve: true; a->by says "elicitation"); an
 * error means the client cannot ask its user: true when the operator is to be asked instead
 * (rule r lets one decide; r NULL: the default does), else a becomes unaskable, saying why.
 * a->elicit_id is dropped either way an error comes.
 */
bool approval__elicit_answer(struct approval *a, const json_t *msg, const struct rule *r);
/*
 * A held call, judged again (d), was decided otherwise than approved (state, and why or by):
 * d becomes that denial, KIND_APPROVAL, at d's pointer. Left alone when d denies already or
 * state is APPROVAL_APPROVED.
 */
void approval__deny_unless_approved(struct decision *d, enum approval_state state,
				    uint32_t timeout_s, const char *why, const char *by);

/* "uid 0 (root)", "uid 65533": a uid and its user name when it has one. */
const char *approval__uid_name(uid_t uid, char *buf, size_t size);

#endif
