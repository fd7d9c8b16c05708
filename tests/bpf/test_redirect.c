// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence proxy --redirect-port` (bpf/redirect.bpf.c, user/proxy_redirect.c) on this kernel:
 * the programs load and attach to the cgroup v2 root; a TCP connect() to the server's address
 * and port reaches the proxy's listener instead, and getpeername() on it names the server; the
 * proxy's own connect() is left alone; [::1] to the server's port is refused; a redirect left
 * pinned by a proxy that died is replaced by the next; stopped, connections reach the server.
 * The kernel matrix runs it on Debian's 6.1 and 6.12. Root only: skips with the reason otherwise.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "log.h"
#include "proxy_redirect.h"

static char why[256];

static int setup(void **state)
{
	if (geteuid() != 0)
		snprintf(why, sizeof(why), "needs root (BPF programs on a cgroup)");
	return 0;
}

/* A listener on 127.0.0.1 (port 0: any); its port in *port. */
static int listener(unsigned short *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static struct sockaddr_storage v4(unsigned short port)
{
	struct sockaddr_storage ss = {};
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;

	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->sin_port = htons(port);
	return ss;
}

/* connect() to 127.0.0.1:port: the socket, or -errno. */
static int connect_to(unsigned short port)
{
	struct sockaddr_storage ss = v4(port);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* Which of the two listeners took a connection (polling both): 0 server, 1 proxy, -1 none. */
static int taken_by(int server, int proxy)
{
	for (int i = 0; i < 2; i++) {
		int c = accept4(i ? proxy : server, NULL, NULL, SOCK_NONBLOCK);

		if (c >= 0) {
			close(c);
			return i;
		}
	}
	return -1;
}

/*
 * A child process (not the proxy) connects to port and reports how: 0 the connection's peer was
 * port, 1 connected but getpeername said otherwise, 2 refused with EPERM, 3 other error.
 */
static int child_connects(unsigned short port, bool v6)
{
	pid_t pid = fork();
	int st;

	if (!pid) {
		struct sockaddr_in6 a6 = { .sin6_family = AF_INET6,
					   .sin6_port = htons(port),
					   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		struct sockaddr_storage ss = v4(port), peer;
		socklen_t len = sizeof(peer);
		int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);

		if (connect(fd, v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&ss,
			    v6 ? sizeof(a6) : sizeof(struct sockaddr_in)))
			_exit(errno == EPERM ? 2 : 3);
		getpeername(fd, (struct sockaddr *)&peer, &len);
		_exit(((struct sockaddr_in *)&peer)->sin_port == htons(port) ? 0 : 1);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 4;
}

static void test_redirect(void **state)
{
	unsigned short sport, pport;
	struct sockaddr_storage up, px;
	struct proxy_redirect *r = NULL, *r2 = NULL;
	unsigned long long counts[3];
	char pin[128];
	struct stat st;
	int server, proxy, fd;

	if (why[0]) {
		print_message("skipped: %s\n", why);
		skip();
	}
	server = listener(&sport);
	proxy = listener(&pport);
	up = v4(sport);
	px = v4(pport);
	log_level = LOG_LVL_DEBUG; /* the verifier's log, if it refuses */
	assert_int_equal(proxy_redirect__start(&up, &px, NULL, &r), 0);
	log_level = LOG_LVL_INFO;
	/* another process's connection goes to the proxy; its peer is the server's address */
	assert_int_equal(child_connects(sport, false), 0);
	assert_int_equal(taken_by(server, proxy), 1);
	/* [::1] to the server's port: refused */
	assert_int_equal(child_connects(sport, true), 2);
	/* this process is the proxy: its own connection reaches the server */
	fd = connect_to(sport);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(taken_by(server, proxy), 0);
	proxy_redirect__counts(r, counts);
	assert_true(counts[0] >= 1 && counts[1] >= 1 && counts[2] >= 1);
	snprintf(pin, sizeof(pin), "%s/%u/link_connect4", PROXY_REDIRECT_PIN_DIR, sport);
	assert_int_equal(stat(pin, &st), 0);
	/* a second one for the same port (the first as if dead): it replaces the pins */
	assert_int_equal(proxy_redirect__start(&up, &px, NULL, &r2), 0);
	assert_int_equal(child_connects(sport, false), 0);
	assert_int_equal(taken_by(server, proxy), 1);
	proxy_redirect__stop(r2);
	proxy_redirect__stop(r);
	assert_int_not_equal(stat(pin, &st), 0);
	/* stopped: the server is reached */
	assert_int_equal(child_connects(sport, false), 0);
	assert_int_equal(taken_by(server, proxy), 0);
	close(server);
	close(proxy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redirect),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
