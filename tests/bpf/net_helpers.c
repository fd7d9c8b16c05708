// SPDX-License-Identifier: Apache-2.0
/* net_helpers: loopback traffic for the kernel plane's tests and benches. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include "net_helpers.h"

int net__send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EPIPE;
		p += w;
		n -= w;
	}
	return 0;
}

size_t net__recv_n(int fd, char *buf, size_t n, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;

	while (got < n && poll(&pfd, 1, ms) == 1) {
		ssize_t r = recv(fd, buf + got, n - got, 0);

		if (r <= 0)
			break;
		got += r;
	}
	buf[got] = 0;
	return got;
}

size_t net__mcp_post(char *out, size_t size, const char *host, const char *headers,
		     const char *body)
{
	int n = snprintf(out, size,
			 "POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
			 "%sContent-Length: %zu\r\n\r\n%s",
			 host, headers ? headers : "", strlen(body), body);

	return n < 0 ? 0 : (size_t)n;
}

const char *net__tool_call(char *buf, size_t size, int id, const char *tool)
{
	snprintf(buf, size,
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"%s\",\"arguments\":{}}}",
		 id, tool);
	return buf;
}
