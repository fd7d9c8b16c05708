// SPDX-License-Identifier: Apache-2.0
/*
 * What `mcpfence proxy` reads of addresses and names: --listen and --upstream as an operator
 * may mistype them, and Host and Origin headers as a page from another name (DNS rebinding), or
 * a client that wants past the check, may send them. Each case is checked against what the
 * address really is (inet_ntop of what was parsed), not against the text given.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>
#include "proxy_addr.h"

#define N(a) (sizeof(a) / sizeof(a[0]))

struct listen_case {
	const char *in;
	int family; /* 0: refused */
	const char *addr;
	unsigned port;
};

static void test_listen(void **state)
{
	static const struct listen_case cases[] = {
		{ "127.0.0.1:8080", AF_INET, "127.0.0.1", 8080 },
		{ "0.0.0.0:1", AF_INET, "0.0.0.0", 1 },
		{ "[::1]:8080", AF_INET6, "::1", 8080 },
		{ "[::]:65535", AF_INET6, "::", 65535 },
		{ "[fe80::1:2]:80", AF_INET6, "fe80::1:2", 80 },
		/* an IPv6 address without brackets: "::1:8080" is an address on its own */
		{ "::1:8080", 0, NULL, 0 },
		{ "[127.0.0.1]:80", 0, NULL, 0 }, /* brackets hold IPv6 only */
		{ "127.0.0.1", 0, NULL, 0 },
		{ "127.0.0.1:", 0, NULL, 0 },
		{ ":8080", 0, NULL, 0 },
		{ "127.0.0.1:0", 0, NULL, 0 },
		{ "127.0.0.1:65536", 0, NULL, 0 },
		{ "127.0.0.1: 80", 0, NULL, 0 },
		{ "127.0.0.1:+80", 0, NULL, 0 },
		{ "127.0.0.1:-80", 0, NULL, 0 },
		{ "127.0.0.1:80x", 0, NULL, 0 },
		{ "localhost:8080", 0, NULL, 0 }, /* a name: the proxy listens on an address */
		{ "127.1:8080", 0, NULL, 0 },	  /* inet_aton's forms are not addresses here */
		{ "[::1:8080", 0, NULL, 0 },
		{ "[]:8080", 0, NULL, 0 },
		{ "[::1]]:8080", 0, NULL, 0 },
		{ "[", 0, NULL, 0 },
		{ "", 0, NULL, 0 },
		{ "[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0001]:80", 0, NULL, 0 },
	};

	(void)state;
	for (size_t i = 0; i < N(cases); i++) {
		const struct listen_case *c = &cases[i];
		struct sockaddr_storage sa;
		socklen_t salen = 0;
		char host[64] = "", shown[INET6_ADDRSTRLEN] = "";
		unsigned port = 0;
		int e = proxy_addr__parse_listen(c->in, &sa, &salen, host, sizeof(host), &port);

		if (!c->family) {
			if (e != -EINVAL)
				fail_msg("--listen \"%s\": taken (%s port %u), should be refused",
					 c->in, host, port);
			continue;
		}
		if (e)
			fail_msg("--listen \"%s\": refused (%d)", c->in, e);
		assert_int_equal(sa.ss_family, c->family);
		if (c->family == AF_INET) {
			const struct sockaddr_in *a = (const struct sockaddr_in *)&sa;

			assert_int_equal(salen, sizeof(*a));
			inet_ntop(AF_INET, &a->sin_addr, shown, sizeof(shown));
			assert_int_equal(ntohs(a->sin_port), c->port);
		} else {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&sa;

			assert_int_equal(salen, sizeof(*a));
			inet_ntop(AF_INET6, &a->sin6_addr, shown, sizeof(shown));
			assert_int_equal(ntohs(a->sin6_port), c->port);
		}
		assert_string_equal(shown, c->addr);
		assert_string_equal(host, c->addr);
		assert_int_equal(port, c->port);
	}
}

static void test_upstream(void **state)
{
	static const struct {
		const char *in, *out; /* out NULL: refused */
	} cases[] = {
		{ "http://127.0.0.1:3001", "http://127.0.0.1:3001" },
		{ "http://127.0.0.1:3001/", "http://127.0.0.1:3001" },
		{ "https://mcp.example", "https://mcp.example" },
		{ "http://[::1]:3001", "http://[::1]:3001" },
		{ "ftp://127.0.0.1", NULL },
		{ "127.0.0.1:3001", NULL },
		{ "http://", NULL },
		{ "http:///mcp", NULL },
		{ "http://user:pw@127.0.0.1", NULL },
		{ "http://127.0.0.1/mcp", NULL },
		{ "http://127.0.0.1?x=1", NULL },
		{ "http://127.0.0.1#f", NULL },
		{ "http://127.0.0.1//", NULL },
	};

	(void)state;
	for (size_t i = 0; i < N(cases); i++) {
		char out[512] = "";
		const char *why = NULL;
		int e = proxy_addr__parse_upstream(cases[i].in, out, sizeof(out), &why);

		if (!cases[i].out) {
			if (e != -EINVAL || !why || !why[0])
				fail_msg("--upstream \"%s\": taken as \"%s\"", cases[i].in, out);
			continue;
		}
		if (e)
			fail_msg("--upstream \"%s\": refused: %s", cases[i].in, why);
		assert_string_equal(out, cases[i].out);
	}
	/* longer than what holds it: refused, never cut */
	{
		char out[24];
		const char *why = NULL;

		assert_int_equal(proxy_addr__parse_upstream("http://a-long-name.example", out,
							    sizeof(out), &why),
				 -EINVAL);
		assert_non_null(why);
	}
}

static void test_upstream_address(void **state)
{
	struct sockaddr_storage sa;
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&sa;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&sa;

	(void)state;
	assert_int_equal(proxy_addr__upstream("http://127.0.0.1:3001", &sa), 0);
	assert_int_equal(sa.ss_family, AF_INET);
	assert_int_equal(ntohs(a4->sin_port), 3001);
	assert_int_equal(proxy_addr__upstream("http://127.0.0.1", &sa), 0);
	assert_int_equal(ntohs(a4->sin_port), 80);
	assert_int_equal(proxy_addr__upstream("https://127.0.0.1", &sa), 0);
	assert_int_equal(ntohs(a4->sin_port), 443);
	assert_int_equal(proxy_addr__upstream("http://[::1]", &sa), 0);
	assert_int_equal(sa.ss_family, AF_INET6);
	assert_int_equal(ntohs(a6->sin6_port), 80);
	assert_int_equal(proxy_addr__upstream("https://[::1]:8443", &sa), 0);
	assert_int_equal(ntohs(a6->sin6_port), 8443);
	/* a name has no address here: the redirect refuses it */
	assert_int_equal(proxy_addr__upstream("http://localhost:3001", &sa), -EINVAL);
	assert_int_equal(proxy_addr__upstream("http://::1", &sa), -EINVAL);
	assert_int_equal(proxy_addr__upstream("127.0.0.1:3001", &sa), -EINVAL);
}

/* Host header values (as sent) against a proxy listening on listen, with two allowed names. */
static void host_cases(const char *listen, const char *const *yes, size_t nyes,
		       const char *const *no, size_t nno)
{
	static const char *const allowed[] = { "mcp.internal", "[fd00::7]" };
	const struct proxy_hosts hs = { .listen_host = listen, .allowed = allowed, .nallowed = 2 };

	for (size_t i = 0; i < nyes; i++)
		if (!proxy_addr__host_ok(&hs, yes[i], strlen(yes[i])))
			fail_msg("listening on %s: Host \"%s\" refused", listen, yes[i]);
	for (size_t i = 0; i < nno; i++)
		if (proxy_addr__host_ok(&hs, no[i], strlen(no[i])))
			fail_msg("listening on %s: Host \"%s\" taken", listen, no[i]);
}

static void test_host(void **state)
{
	static const char *const common_yes[] = {
		"localhost", "LOCALHOST:8080", "127.0.0.1:8080",  "[::1]:8080",
		"[::1]",     "mcp.internal",   "MCP.Internal:80", "[FD00::7]:1",
	};
	static const char *const common_no[] = {
		"",
		":8080",
		"evil.example",
		"localhost.evil.example",
		"127.0.0.1.evil.example",
		"evil.example:8080",
		"localhost@evil.example",
		"evil.example@localhost",
		"localhost:80@evil.example",
		"mcp.internal.evil",
		"xmcp.internal",
		"::1",
		"[::1",
		"[::2]:8080",
		"127.0.0.2:8080",
		"0.0.0.0:8080",
		"[::]:8080",
		"[fd00::7",
		/* after the host, only a port */
		"[::1]x",
		"[::1]:80x",
		"localhost:evil.example",
		"localhost:80:80",
		"127.0.0.1:8080/",
		/* longer than any name: compared whole or refused, never cut to a prefix */
		"localhostxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	};
	static const char *const lan_yes[] = { "192.168.1.5:8080", "192.168.1.5" };
	static const char *const lan_no[] = { "192.168.1.50:8080", "192.168.1.5.evil" };
	static const char *const v6_yes[] = { "[fd00::1]:8080" };
	static const char *const v6_no[] = { "fd00::1", "[fd00::10]:8080" };

	(void)state;
	host_cases("127.0.0.1", common_yes, N(common_yes), common_no, N(common_no));
	host_cases("192.168.1.5", lan_yes, N(lan_yes), lan_no, N(lan_no));
	host_cases("fd00::1", v6_yes, N(v6_yes), v6_no, N(v6_no));
	/* a wildcard listen address is no name a browser's page should give */
	host_cases("0.0.0.0", common_yes, N(common_yes), common_no, N(common_no));
	host_cases("::", common_yes, N(common_yes), common_no, N(common_no));

	/* the header's length is what counts, not a NUL inside it */
	{
		const struct proxy_hosts hs = { .listen_host = "127.0.0.1" };

		assert_false(proxy_addr__host_ok(&hs, "localhost\0.evil", 15));
		assert_true(proxy_addr__host_ok(&hs, "localhost:80xx", 12));
		assert_false(proxy_addr__host_ok(&hs, "localhost:80xx", 13));
	}
}

static void test_origin(void **state)
{
	static const char *const yes[] = {
		"http://localhost",	     "http://localhost:5173", "https://127.0.0.1:8443",
		"http://[::1]:3000",	     "https://mcp.internal",  "http://LOCALHOST",
		"http://localhost:5173/app", "http://localhost:",
	};
	static const char *const no[] = {
		"null",
		"",
		"file://",
		"chrome-extension://abcdef",
		"ws://localhost",
		"HTTP://localhost",
		"http://",
		"http://evil.example",
		"http://localhost.evil.example",
		"http://evil.example/localhost",
		"http://localhost@evil.example",
		"http://localhost:80@evil.example",
		"http://evil.example:80@localhost",
		"https://127.0.0.1.nip.io",
		"//localhost",
		"http://localhost:evil.example",
		"http://[::1]evil.example",
	};
	const struct proxy_hosts hs = { .listen_host = "127.0.0.1",
					.allowed = (const char *const[]){ "mcp.internal" },
					.nallowed = 1 };

	(void)state;
	for (size_t i = 0; i < N(yes); i++)
		if (!proxy_addr__origin_ok(&hs, yes[i]))
			fail_msg("Origin \"%s\" refused", yes[i]);
	for (size_t i = 0; i < N(no); i++)
		if (proxy_addr__origin_ok(&hs, no[i]))
			fail_msg("Origin \"%s\" taken", no[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen),		 cmocka_unit_test(test_upstream),
		cmocka_unit_test(test_upstream_address), cmocka_unit_test(test_host),
		cmocka_unit_test(test_origin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
