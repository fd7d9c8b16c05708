// SPDX-License-Identifier: Apache-2.0
/* proxy_addr: --listen, --upstream, and the Host and Origin checks of `mcpfence proxy`. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "cmd.h"
#include "proxy_addr.h"

/*
 * ADDR:PORT or [V6]:PORT into sa; host and port kept for the Host check. An IPv6 address must
 * be in brackets ("::1:8080" could be either), and only an IPv6 one may be.
 */
int proxy_addr__parse_listen(const char *s, struct sockaddr_storage *sa, socklen_t *salen,
			     char *host, size_t hlen, unsigned *port)
{
	const char *colon = strrchr(s, ':');
	bool v6 = s[0] == '[';
	char h[64];
	long p;

	if (!colon || colon == s || !isdigit((unsigned char)colon[1]) ||
	    !cmd_number(colon + 1, 1, 65535, &p))
		return -EINVAL;
	if (v6) {
		if (colon[-1] != ']' || (size_t)(colon - s - 2) >= sizeof(h))
			return -EINVAL;
		memcpy(h, s + 1, (size_t)(colon - s - 2));
		h[colon - s - 2] = 0;
	} else {
		if ((size_t)(colon - s) >= sizeof(h))
			return -EINVAL;
		memcpy(h, s, (size_t)(colon - s));
		h[colon - s] = 0;
	}
	memset(sa, 0, sizeof(*sa));
	if (!v6 && inet_pton(AF_INET, h, &((struct sockaddr_in *)sa)->sin_addr) == 1) {
		((struct sockaddr_in *)sa)->sin_family = AF_INET;
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)p);
		*salen = sizeof(struct sockaddr_in);
	} else if (v6 && inet_pton(AF_INET6, h, &((struct sockaddr_in6 *)sa)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)sa)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)p);
		*salen = sizeof(struct sockaddr_in6);
	} else {
		return -EINVAL;
	}
	snprintf(host, hlen, "%s", h);
	*port = (unsigned)p;
	return 0;
}

/* http(s)://HOST[:PORT] with no path (or "/"), no user, no query. */
int proxy_addr__parse_upstream(const char *s, char *out, size_t len, const char **why)
{
	const char *rest;
	size_t n;

	if (!strncmp(s, "http://", 7))
		rest = s + 7;
	else if (!strncmp(s, "https://", 8))
		rest = s + 8;
	else {
		*why = "must begin with http:// or https://";
		return -EINVAL;
	}
	n = strcspn(rest, "/?#@");
	if (!n) {
		*why = "names no host";
		return -EINVAL;
	}
	if (rest[n] == '@') {
		*why = "has a user or password: give credentials in the client's Authorization";
		return -EINVAL;
	}
	if ((rest[n] == '/' && rest[n + 1]) || rest[n] == '?' || rest[n] == '#') {
		*why = "has a path or query: name the server only (requests keep their own path)";
		return -EINVAL;
	}
	if ((size_t)(rest - s) + n >= len) {
		*why = "is too long";
		return -EINVAL;
	}
	snprintf(out, len, "%.*s", (int)((size_t)(rest - s) + n), s);
	return 0;
}

/*
 * The host part of a Host header or an origin's authority ([v6]:port, name:port, name) into
 * out; false when what follows it is not a port (digits after ':') or it does not fit (never
 * compared cut short).
 */
static bool host_part(const char *s, size_t n, char *out, size_t len)
{
	size_t k = n;

	if (n && s[0] == '[') {
		const char *end = memchr(s, ']', n);

		k = end ? (size_t)(end - s) + 1 : n;
	} else {
		const char *colon = memchr(s, ':', n);

		k = colon ? (size_t)(colon - s) : n;
	}
	if (k < n && s[k] != ':')
		return false;
	for (size_t i = k + 1; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	if (k >= len)
		return false;
	memcpy(out, s, k);
	out[k] = 0;
	return true;
}

/*
 * Does a Host (or an Origin's host) name this proxy? Loopback names, the listen address, and
 * the --allow-host names, compared without regard to case; anything else may be a DNS
 * rebinding page that a browser sends here. A user part ('@') is never a host's, nor a NUL:
 * refused.
 */
bool proxy_addr__host_ok(const struct proxy_hosts *hs, const char *value, size_t n)
{
	static const char *const local[] = { "localhost", "127.0.0.1", "[::1]" };
	char h[256], listen[80];

	if (memchr(value, '@', n) || memchr(value, 0, n) || !host_part(value, n, h, sizeof(h)) ||
	    !h[0])
		return false;
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (!strcasecmp(h, local[i]))
			return true;
	snprintf(listen, sizeof(listen), strchr(hs->listen_host, ':') ? "[%s]" : "%s",
		 hs->listen_host);
	if (!strcasecmp(h, listen) && strcmp(hs->listen_host, "0.0.0.0") &&
	    strcmp(hs->listen_host, "::"))
		return true;
	for (size_t i = 0; i < hs->nallowed; i++)
		if (!strcasecmp(h, hs->allowed[i]))
			return true;
	return false;
}

bool proxy_addr__origin_ok(const struct proxy_hosts *hs, const char *origin)
{
	const char *auth;

	if (!strncmp(origin, "http://", 7))
		auth = origin + 7;
	else if (!strncmp(origin, "https://", 8))
		auth = origin + 8;
	else
		return false; /* "null", file:, chrome-extension: ... */
	return proxy_addr__host_ok(hs, auth, strcspn(auth, "/"));
}

/* The upstream's address, when its host is an address (the redirect needs one). */
int proxy_addr__upstream(const char *url, struct sockaddr_storage *sa)
{
	const char *auth = strstr(url, "://"), *close, *colon;
	char full[128], host[64];
	socklen_t salen;
	unsigned port;

	if (!auth)
		return -EINVAL;
	auth += 3;
	close = strrchr(auth, ']');
	colon = strrchr(close ? close : auth, ':');
	/* as --listen reads an address, with the scheme's port when the URL names none */
	snprintf(full, sizeof(full), colon ? "%s" : "%s:%s", auth,
		 !strncmp(url, "https", 5) ? "443" : "80");
	return proxy_addr__parse_listen(full, sa, &salen, host, sizeof(host), &port);
}
