/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stdio_gateway: `mcpfence run` starts an MCP server with pipes on its stdin and stdout and
 * sits between it and the client (our own stdin and stdout), judging every tools/call, filtering
 * tools/list, holding calls that need a human, and writing the audit log.
 */
#ifndef MCPFENCE_STDIO_GATEWAY_H
#define MCPFENCE_STDIO_GATEWAY_H

#include <stdbool.h>
#include <jansson.h>
#include "policy.h"

/* Could a call to this tool ever be allowed (hide, rule action, default)? For tools/list. */
bool stdio_gateway__listable(const struct policy *p, const char *tool);
/*
 * Remove from a tools/list result (the "result" object) every tool the policy cannot allow;
 * returns how many were removed.
 */
size_t stdio_gateway__filter_tools(const struct policy *p, json_t *result);
/*
 * A list of tools that passed the gateway is this policy's view of the server's: in the
 * 2026-07-28 revision (the result has "cacheScope") it is marked "private", so that no shared
 * cache serves it to a client under another policy. true when the result changed.
 */
bool stdio_gateway__private_view(json_t *result);
/*
 * The tools/call result that tells the agent it was denied (README: Gateway plane), answering
 * req. When req is of the 2026-07-28 revision (its params._meta names one) the result is one of
 * that revision: "resultType": "complete", and server_info (when known) in _meta, as the
 * server's own results carry it. New reference.
 */
json_t *stdio_gateway__denial(const json_t *req, const char *reason, const char *rule,
			      const char *kind, uint64_t retry_after_s, const json_t *server_info);

struct gateway_opts {
	const char *policy_path; /* NULL: every call is denied */
	const char *audit_path;	 /* NULL: the default location; "-": stderr */
	const char *name;	 /* the server's name for the audit log and grant budgets; NULL */
	unsigned grace_ms;	 /* between closing the server's stdin, SIGTERM and SIGKILL */
};

/*
 * Start the server argv (NULL-terminated) and be the gateway between it and the client (our
 * stdin and stdout) until both are done. Returns the server's exit code, or 1 when the
 * gateway could not start (logged).
 */
int stdio_gateway__run(const struct gateway_opts *o, char **argv);

#endif
