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
/* The tools/call result that tells the agent it was denied (DESIGN.md §2). New reference. */
json_t *stdio_gateway__denial(const json_t *id, const char *reason, const char *rule,
			      const char *kind, uint64_t retry_after_s);

/*
 * Who the server is, for the key of grant budgets: "name:NAME" when run was given --name,
 * else its command line as run starts it: argv[0] found through PATH as execvp finds it and
 * resolved to a real path, then the arguments as given, each with its length in front
 * ("cmd:15:/usr/bin/node19:/srv/mcp/index.js"). NULL and errno when out of memory.
 */
char *stdio_gateway__server_identity(char *const argv[], const char *name);

#endif
