/* SPDX-License-Identifier: Apache-2.0 */
/* policy: load, validate and compile a policy.json (the README: The policy). */
#ifndef MCPFENCE_POLICY_H
#define MCPFENCE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "redis_store.h"

#define POLICY_MAX_BYTES (4u << 20) /* a larger policy file is refused */
#define POLICY_ERR_LEN 512

enum action {
	ACTION_ALLOW = 0,
	ACTION_DENY = 1,
	ACTION_APPROVE = 2,
};

enum scope {
	SCOPE_GRANT = 0,   /* one budget for one server under this policy */
	SCOPE_SESSION = 1, /* one MCP session */
	SCOPE_AGENT = 2,   /* one client identity: uid and executable */
	SCOPE_GLOBAL = 3,  /* the whole host */
};

enum cond_op {
	OP_EQ = 0,
	OP_NEQ = 1,
	OP_IN = 2,
	OP_NOT_IN = 3,
	OP_LT = 4,
	OP_LTE = 5,
	OP_GT = 6,
	OP_GTE = 7,
	OP_REGEX = 8,
	OP_CONTAINS = 9,
	OP_EXISTS = 10,
};

/* One step of a condition path: an object key, or an array index when key is NULL. */
struct path_seg {
	char *key;
	size_t index;
};

struct cond {
	char *ptr;  /* JSON Pointer of this condition in the policy: /tools/x/require/0 */
	char *path; /* as written: args.a.b[0] */
	struct path_seg *segs;
	size_t nsegs;
	enum cond_op op;
	json_t *value;
	void *re; /* pcre2_code *, for OP_REGEX */
};

struct limit {
	char *ptr;     /* /tools/x/limits/0, /tools/x/rate_limit, /all_tools/limits/0 */
	char *counter; /* limits sharing counter, scope and window share one budget */
	uint32_t window_s;
	uint64_t max;
	enum scope scope;
	const struct redis_conf *redis; /* scopes agent and global under "state": kept there */
};

/* Through which channels a held call may be decided ("approval": {"via": [...]}). */
enum approval_via {
	VIA_CLIENT = 1,	  /* elicitation/create: the client application asks its user */
	VIA_OPERATOR = 2, /* the control socket: `mcpfence approve ID` */
};

/*
 * A user or group of "approvers", resolved to its id when the policy is loaded: a name that
 * has no entry on this host then never matches (not even after it is created: SIGHUP).
 */
struct approver {
	char *name;    /* as written; NULL when written as a number */
	uint32_t id;   /* uid or gid; meaningful only when resolved */
	bool resolved; /* always true for a number */
};

struct approvers {
	struct approver *users, *groups;
	size_t nusers, ngroups;
};

struct rule {
	char *name; /* the key under "tools": an exact name or a glob */
	char *ptr;  /* /tools/<name, escaped> */
	char *action_ptr;
	bool glob;
	enum action action;
	char *reason; /* "reason" or "on_deny"; NULL when absent */
	uint32_t approval_timeout_s;
	unsigned approval_via;	    /* VIA_* bits; both unless "via" says otherwise */
	struct approvers approvers; /* who may approve on the control socket, besides root */
	struct limit *limits;
	size_t nlimits;
	struct cond *require;
	size_t nrequire;
	struct cond *deny_if;
	size_t ndeny_if;
};

struct globset;

/*
 * "match": the sessions a policy of the daemon's directory is for. Every key given must fit; a
 * glob is policy__glob_match's. NULL or has_* false: the key was not given.
 */
struct policy_match {
	bool present;
	char *exe;	   /* glob on the server's executable, a real path */
	char *argv;	   /* glob on its command line, arguments joined by one space */
	char *server_name; /* glob on serverInfo.name of its first answer */
	char *cgroup;	   /* glob on its cgroup v2 path ("/system.slice/mcp.service") */
	bool has_port, has_uid;
	uint16_t port; /* the TCP port it listens on */
	uint32_t uid;  /* its effective uid */
};

/* Who a session's server is, for "match". */
struct session_who {
	const char *exe, *argv, *cgroup; /* NULL: unknown (such a key then does not fit) */
	const char *server_name;	 /* NULL: no answer named it yet */
	int port;			 /* -1: not a TCP session */
	bool has_uid;
	uint32_t uid;
};

struct policy {
	char *source;	 /* file name, for messages */
	uint64_t digest; /* FNV-1a 64 of the bytes parsed; 0 for the built-in deny-all policy */
	enum action def; /* ACTION_ALLOW or ACTION_DENY */
	bool deny_all;	 /* the built-in "no policy" policy */
	char **hide;
	size_t nhide;
	struct limit *all_limits;
	size_t nall_limits;
	struct rule *rules; /* in file order */
	size_t nrules;
	/*
	 * policy__lookup's order: exact names, then globs, each in file order; their names and
	 * the rule of each, and the index that finds the first of them matching a name
	 */
	const char **lookup_names;
	size_t *lookup_rules;
	struct globset *rule_index;
	struct globset *hide_index; /* the first hide entry matching a name */
	struct policy_match match;  /* "match" (a file of the daemon's directory) */
	bool kernel_unparsed_allow; /* "kernel": {"unparsed": "allow"} */
	bool audit_values;	    /* "audit": {"arguments": "values"} */
	struct redis_conf *redis; /* "state": {"redis": ...}: where agent and global budgets are */
};

/*
 * Load and validate a policy. On error returns NULL, sets errno (EINVAL for a bad policy,
 * or the I/O error) and writes one line naming file, JSON path (or line:column) and what is
 * wrong into err (POLICY_ERR_LEN bytes).
 */
struct policy *policy__load(const char *path, char *err);
struct policy *policy__parse(const char *buf, size_t len, const char *source, char *err);
/* The policy in force when none is given: every call is denied. */
struct policy *policy__deny_all(void);
void policy__free(struct policy *p);

/* Rule for a tool: exact name first, then globs in file order; NULL when none matches. */
const struct rule *policy__lookup(const struct policy *p, const char *tool);
/* Index into p->hide of the first entry hiding this tool, or -1. */
long policy__hidden(const struct policy *p, const char *tool);

/*
 * A duration as text: whole seconds ("90"), or followed by one unit s, m, h or d ("2m"): the
 * seconds into *seconds, and whether a unit was given into *unit. 0, or -EINVAL (no number, 0,
 * more than 2^32 - 1 units, another unit, anything after it).
 */
int policy__duration_text(const char *s, uint64_t *seconds, bool *unit);

/*
 * Does the policy's "match" fit this server? Every key it gives must; a key whose value w does
 * not know (NULL, port -1, no uid) does not. A policy without "match" fits none.
 */
bool policy__match_fits(const struct policy *p, const struct session_who *w);
/* The same, its "server_name" left out (a server whose first answer is still to come). */
bool policy__match_fits_but_name(const struct policy *p, const struct session_who *w);

/* Glob: '*' any run of bytes, '?' one UTF-8 character, anything else itself. */
bool policy__glob_match(const char *pattern, const char *s);

const char *policy__action_name(enum action a);
const char *policy__scope_name(enum scope s);
/* "minute" for 60, "90 s" for 90: written into buf, which is returned. */
const char *policy__window_name(uint32_t window_s, char *buf, size_t len);
const char *policy__op_name(enum cond_op op);
/* "uid 1001 (alice)", "group 2000", "user ghost (not on this host)": into buf, returned. */
const char *policy__approver_name(const struct approver *a, bool group, char *buf, size_t len);

#endif
