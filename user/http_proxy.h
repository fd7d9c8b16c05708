/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_proxy: `mcpfence proxy`, the gateway plane for Streamable HTTP servers. One thread, one
 * epoll loop: libmicrohttpd (external epoll mode, connections suspended while the upstream
 * answers) takes the clients' requests, libcurl's multi interface (its sockets and timer in
 * the same loop) sends the allowed ones upstream; answers stream back as they come, except a
 * tools/list answer, which is read whole and filtered. Decisions are the gateway's: decide,
 * limits, the audit line (plane "http").
 */
#ifndef MCPFENCE_HTTP_PROXY_H
#define MCPFENCE_HTTP_PROXY_H

#include <stddef.h>

#define PROXY_MAX_ALLOWED 16
#define PROXY_BODY_MAX (4u << 20)     /* a client's POST body, at most */
#define PROXY_LIST_MAX (16u << 20)    /* an upstream answer read whole (tools/list) */
#define PROXY_STREAM_BUF (256u << 10) /* upstream bytes held for a slow client, then paused */
#define PROXY_WHOLE_MAX (64u << 10)   /* a JSON answer of known length up to this: sent whole */

struct proxy_opts {
	const char *policy_path; /* NULL: every call is denied */
	const char *audit_path;	 /* NULL: the default; "-": stderr */
	const char *listen;	 /* ADDR:PORT, [V6]:PORT */
	const char *upstream;	 /* http(s)://HOST[:PORT] */
	const char *name;	 /* the server's name for grant budgets and audit; NULL: upstream */
	const char *ca_file;	 /* --upstream-ca: trust these CAs for https (NULL: the system's) */
	const char *allowed[PROXY_MAX_ALLOWED]; /* more Host names the proxy answers to */
	size_t nallowed;
	unsigned max_conns;
	unsigned redirect_port; /* --redirect-port: local clients' connections to it come here */
	const char *cgroup;	/* with it: the cgroup v2 whose processes are redirected */
};

/* Run until SIGINT or SIGTERM; SIGHUP reloads the policy. 0, or 1 when it could not start. */
int http_proxy__run(const struct proxy_opts *o);

#endif
