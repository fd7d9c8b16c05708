/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net_helpers: what the kernel plane's tests and benches (tests/bpf/test_tcp.c, test_attach.c,
 * bench/kernel.c) say to a server on loopback: whole sends, reads with a deadline, and the
 * requests an MCP client sends over Streamable HTTP.
 */
#ifndef MCPFENCE_NET_HELPERS_H
#define MCPFENCE_NET_HELPERS_H

#include <stddef.h>

/* Send all n bytes (as many send() calls as it takes): 0, or -errno (-EPIPE: the peer closed). */
int net__send_all(int fd, const void *buf, size_t n);
/* Read until n bytes came, or ms milliseconds passed without any; NUL-terminated at buf[got]. */
size_t net__recv_n(int fd, char *buf, size_t n, int ms);
/*
 * POST /mcp with body, as the SDK's client sends it: Host, Content-Type: application/json, the
 * header lines of headers (each ending in \r\n; NULL none), Content-Length. Into out (size
 * bytes); returns the request's length.
 */
size_t net__mcp_post(char *out, size_t size, const char *host, const char *headers,
		     const char *body);
/* The body of a tools/call of tool with id and no arguments, into buf; returns buf. */
const char *net__tool_call(char *buf, size_t size, int id, const char *tool);

#endif
