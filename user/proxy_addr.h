/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proxy_addr: what `mcpfence proxy` reads of addresses and names: --listen, --upstream, and the
 * Host and Origin checks that keep a page a browser loads from another name (DNS rebinding) from
 * reaching the proxy.
 */
#ifndef MCPFENCE_PROXY_ADDR_H
#define MCPFENCE_PROXY_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The names a Host header (or an Origin's host) may give, besides the loopback names. */
struct proxy_hosts {
	const char *listen_host; /* --listen's address as given ("::1", "127.0.0.1", "0.0.0.0") */
	const char *const *allowed; /* --allow-host names */
	size_t nallowed;
};

/*
 * ADDR:PORT or [V6]:PORT (a numeric address, a port 1-65535) into sa and salen; the address
 * (brackets taken off) into host, the port into port. 0 or -EINVAL.
 */
int proxy_addr__parse_listen(const char *s, struct sockaddr_storage *sa, socklen_t *salen,
			     char *host, size_t hlen, unsigned *port);
/*
 * http(s)://HOST[:PORT] with no path (or "/"), no user, no query, into out without the slash.
 * 0, or -EINVAL with why.
 */
int proxy_addr__parse_upstream(const char *s, char *out, size_t len, const char **why);
/*
 * Does a Host header's value (n bytes) name this proxy? localhost, 127.0.0.1, [::1], the listen
 * address (not a wildcard one) and the allowed names, compared without regard to case.
 */
bool proxy_addr__host_ok(const struct proxy_hosts *hs, const char *value, size_t n);
/* An Origin header: http:// or https:// and a host that proxy_addr__host_ok takes. */
bool proxy_addr__origin_ok(const struct proxy_hosts *hs, const char *origin);
/*
 * The address of an upstream URL (as proxy_addr__parse_upstream gave it) whose host is a numeric
 * address, the scheme's port when it names none: 0, or -EINVAL (a name, not an address).
 */
int proxy_addr__upstream(const char *url, struct sockaddr_storage *sa);

#endif
