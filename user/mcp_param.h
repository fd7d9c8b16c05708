/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mcp-Param-* headers (2026-07-28, SEP-2243): a tool's inputSchema may mark primitive
 * properties, reached through a chain of "properties" keys, with "x-mcp-header": "Name"; a
 * client then mirrors that argument into the header Mcp-Param-Name (booleans true/false,
 * integers in decimal, a value that is not plain printable ASCII as =?base64?...?=). A load
 * balancer, a framework or the server may act on the header while the proxy judged the body:
 * a header that says something else than the body is refused, as is one the proxy cannot check.
 *
 * The proxy learns each tool's inputSchema from the tools/list answers it passes on (filtered),
 * and checks each tools/call's Mcp-Param-* headers against the body's arguments.
 */
#ifndef MCPFENCE_MCP_PARAM_H
#define MCPFENCE_MCP_PARAM_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

/* Tools whose schema is kept; a tool listed past this is not learned (its headers refused). */
#define MCP_PARAM_MAX_TOOLS 4096
/* Mcp-Param-* headers read from one request; more are refused. */
#define MCP_PARAM_MAX_HDRS 64
/* A schema that declares more headers than this is taken as invalid. */
#define MCP_PARAM_MAX_DECLS 64
/* Room for the message of a refusal (valid UTF-8 whatever the names quoted). */
#define MCP_PARAM_WHY_LEN 256

/* Tool name -> its inputSchema, as the last listing that named it gave it. Zeroed: empty. */
struct mcp_param {
	json_t *tools;
	bool full_told; /* the bound was logged once */
};

/* The Mcp-Param-* headers of one request, all of them, repeats included (borrowed strings). */
struct mcp_param_hdrs {
	size_t n;
	bool more; /* past MCP_PARAM_MAX_HDRS */
	struct {
		const char *name; /* after the prefix */
		const char *value;
	} h[MCP_PARAM_MAX_HDRS];
};

/*
 * Learn the tools of a tools/list result (its "tools" array): each one's inputSchema is kept
 * (referenced, not copied), replacing what an earlier listing gave. 0, or -ENOMEM.
 */
int mcp_param__learn(struct mcp_param *s, const json_t *tools);
void mcp_param__free(struct mcp_param *s);

/*
 * A header value v as the client meant it (2026-07-28: Mcp-Param-*, Mcp-Name), into a new buffer
 * (*len bytes, NUL-terminated): =?base64?...?= decoded (canonical base64 of UTF-8 without NUL),
 * else v itself, which must then be printable ASCII, no space at either end. NULL and *bad when
 * it is neither; NULL with *bad untouched when memory ran out.
 */
char *mcp_param__value(const char *v, size_t *len, const char **bad);

/* One request header: kept in h when its name is Mcp-Param-* (case, and '_' for '-', aside). */
void mcp_param__add_header(struct mcp_param_hdrs *h, const char *name, const char *value);

/*
 * Do the Mcp-Param-* headers h of a tools/call of tool (NULL: no name) say what its arguments
 * say? NULL when they do (or there are none); else why not, written into why (len bytes, at
 * least MCP_PARAM_WHY_LEN), naming the header.
 */
const char *mcp_param__check(const struct mcp_param *s, const char *tool, const json_t *args,
			     const struct mcp_param_hdrs *h, char *why, size_t len);

#endif
