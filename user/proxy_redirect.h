/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proxy_redirect: `mcpfence proxy --redirect-port N` (bpf/redirect.bpf.c). The programs go on
 * the cgroup (the host's root by default) and their links are pinned under
 * PROXY_REDIRECT_PIN_DIR/N: a proxy that dies leaves them, so that clients' connections keep
 * going to its (closed) port, refused, rather than to the server around it; the next proxy for
 * N replaces them, and one that stops cleanly takes them away.
 */
#ifndef MCPFENCE_PROXY_REDIRECT_H
#define MCPFENCE_PROXY_REDIRECT_H

#include <sys/socket.h>

#define PROXY_REDIRECT_PIN_DIR "/sys/fs/bpf/mcpfence-proxy"

struct proxy_redirect;

/*
 * Send local clients' TCP connections to up (the server's address and port) to px (the
 * proxy's listen address), except this process's own. cgroup: its path, NULL for the host's
 * root. 0 and *out, or -errno after logging what could not be done.
 */
int proxy_redirect__start(const struct sockaddr_storage *up, const struct sockaddr_storage *px,
			  const char *cgroup, struct proxy_redirect **out);
/* Unpin and detach; clients reach the server directly again. */
void proxy_redirect__stop(struct proxy_redirect *r);
/* Connections redirected, the proxy's own let through, and refused (the other family). */
void proxy_redirect__counts(struct proxy_redirect *r, unsigned long long out[3]);

#endif
