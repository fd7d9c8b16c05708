// SPDX-License-Identifier: Apache-2.0
/*
 * bench/kernel: the cost of the TCP enforcement (bpf/tcp.bpf.c) on loopback.
 *  - ns per request inside BPF, from kernel.bpf_stats_enabled (run_time_ns of handle_sk_msg,
 *    whose stages are tail calls and so count in it), for 200 B, 2 KB and 20 KB requests;
 *  - round trips (request, then a small reply) p50/p99, not attached and attached, same run.
 * Both ends read as an event loop does (poll, then a non-blocking recv), like Node's servers and
 * clients. The round trips alternate between a connection that is attached and one taken out
 * of the SOCKHASH, on one CPU, so that the noise of a shared machine falls on both alike.
 * Root only; prints why and exits 0 otherwise. Sockets of this process only: it runs in a cgroup
 * of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "cmd.h"
#include "kernel.h"
#include "mcpfence.h"
#include "policy.h"
#include "tcp.skel.h"

#define CGROUP_ROOT "/sys/fs/cgroup/unified"
#define ROUNDS 2000

static const char policy_json[] =
	"{\"version\":\"1\",\"default\":\"allow\",\"tools\":{\"get-env\":{\"action\":\"deny\"},"
	"\"debug_*\":{\"action\":\"deny\"}}}";
static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";

static uint16_t port;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* recv after poll, as an event loop reads (the way Node's servers and clients do) */
static ssize_t recv_ready(int fd, char *buf, size_t n)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (poll(&pfd, 1, 5000) != 1)
		return -1;
	return recv(fd, buf, n, MSG_DONTWAIT);
}

static int read_full(int fd, char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv_ready(fd, buf + got, n - got);

		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

/* One connection of the server: Content-Length framing, a small reply per request. */
static void *conn_main(void *arg)
{
	int fd = (int)(long)arg, one = 1;
	char *buf = malloc(65536);

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (buf) {
		size_t h = 0;
		char *end = NULL, *cl;
		long len;

		while (!end && h < 65535) {
			ssize_t r = recv_ready(fd, buf + h, 65535 - h);

			if (r <= 0)
				goto out;
			h += r;
			buf[h] = 0;
			end = strstr(buf, "\r\n\r\n");
		}
		if (!end)
			break;
		cl = strcasestr(buf, "content-length:");
		len = cl ? strtol(cl + 15, NULL, 10) : 0;
		if (len > 32768)
			break;
		if ((long)(h - (end + 4 - buf)) < len &&
		    read_full(fd, buf + h, len - (h - (end + 4 - buf))))
			break;
		if (send(fd, reply, strlen(reply), 0) < 0)
			break;
	}
out:
	free(buf);
	close(fd);
	return NULL;
}

static void *server_main(void *arg)
{
	int lfd = *(int *)arg;

	for (;;) {
		pthread_t th;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			return NULL;
		if (pthread_create(&th, NULL, conn_main, (void *)(long)fd))
			close(fd);
		else
			pthread_detach(th);
	}
}

static size_t make_request(char *out, size_t size, size_t want)
{
	char body[32768];
	int head = snprintf(body, sizeof(body),
			    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			    "{\"name\":\"echo\",\"arguments\":{\"message\":\"");
	size_t fill = want > (size_t)head + 4 ? want - head - 4 : 1;

	memset(body + head, 'x', fill);
	strcpy(body + head + fill, "\"}}}");
	return snprintf(out, size,
			"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			"Accept: application/json, text/event-stream\r\nContent-Length: %zu\r\n\r\n%s",
			strlen(body), body);
}

static int client_connect(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (void *)&in, sizeof(in))) {
		perror("connect");
		exit(1);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void round_trip(int fd, const char *req, size_t n, uint64_t *lat)
{
	static char resp[256];
	size_t rl = strlen(reply);
	uint64_t t0 = now_ns();

	if (send(fd, req, n, 0) != (ssize_t)n || read_full(fd, resp, rl)) {
		fprintf(stderr, "bench/kernel: round trip failed: %s\n", strerror(errno));
		exit(1);
	}
	*lat = now_ns() - t0;
}

/* ROUNDS round trips of one request of about size bytes on a new connection. */
static void round_trips(size_t size, uint64_t *lat)
{
	static char req[40000];
	size_t n = make_request(req, sizeof(req), size);
	int fd = client_connect();

	for (int i = 0; i < ROUNDS; i++)
		round_trip(fd, req, n, &lat[i]);
	close(fd);
}

/* Take a connection (both ends) out of tcp_socks: it is then not attached. */
static void unwatch(int socks_fd, int fd)
{
	struct mcpf_sock_key k, next, *prev = NULL, del[8];
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	int n = 0;

	getsockname(fd, (void *)&me, &ml);
	while (!bpf_map_get_next_key(socks_fd, prev, &next) && n < 8) {
		k = next;
		prev = &k;
		if (k.conn.cport == ntohs(me.sin_port))
			del[n++] = k;
	}
	for (int i = 0; i < n; i++)
		bpf_map_delete_elem(socks_fd, &del[i]);
}

static int prog_stats(int fd, uint64_t *ns, uint64_t *cnt)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*ns = info.run_time_ns;
	*cnt = info.run_cnt;
	return 0;
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		err = -errno;
	close(fd);
	return err;
}

int main(void)
{
	static const size_t sizes[] = { 200, 2048, 20480 };
	static uint64_t lat[2][ROUNDS];
	char cg[PATH_MAX], pid[32], err[POLICY_ERR_LEN];
	struct kernel_compiled kc;
	struct bpf_link *link = NULL;
	struct tcp_bpf *skel;
	struct policy *pol;
	struct sockaddr_in in = { .sin_family = AF_INET };
	pthread_t th;
	int lfd, cg_fd, one = 1, prog_fd;

	if (geteuid() != 0) {
		printf("bench/kernel: skipped: needs root (BPF programs on a cgroup)\n");
		return 0;
	}
	features__mount();
	/*
	 * One CPU for the client and the server threads: a wakeup across CPUs of this VM costs
	 * ~70 us now and then, which would swamp what is measured.
	 */
	{
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	port = 20000 + (getpid() % 5000) * 2;
	snprintf(cg, sizeof(cg), "%s/mcpfence-bench-%d", CGROUP_ROOT, getpid());
	snprintf(pid, sizeof(pid), "%d", getpid());
	if (mkdir(cg, 0755) || write_file(strcat(strcpy((char[PATH_MAX + 16]){ 0 }, cg),
						 "/cgroup.procs"),
					  pid)) {
		printf("bench/kernel: skipped: no cgroup v2 at %s\n", CGROUP_ROOT);
		return 0;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	in.sin_port = htons(port);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (void *)&in, sizeof(in)) || listen(lfd, 8)) {
		perror("bench/kernel: bind");
		return 1;
	}
	pthread_create(&th, NULL, server_main, &lfd);


	skel = kernel__load();
	if (!skel) {
		printf("bench/kernel: skipped: bpf/tcp.bpf.c does not load here\n");
		return 0;
	}
	pol = policy__parse(policy_json, strlen(policy_json), "bench", err);
	if (!pol || kernel__compile(skel, pol, 0, &kc) || kernel__activate(skel, 0) ||
	    kernel__watch_port(skel, port))
		return 1;
	prog_fd = bpf_program__fd(skel->progs.handle_sk_msg);
	if (bpf_prog_attach(prog_fd, bpf_map__fd(skel->maps.tcp_socks), BPF_SK_MSG_VERDICT, 0))
		return 1;
	cg_fd = open(cg, O_RDONLY | O_DIRECTORY);
	link = bpf_program__attach_cgroup(skel->progs.handle_sock_ops, cg_fd);
	if (!link)
		return 1;
	if (write_file("/proc/sys/kernel/bpf_stats_enabled", "1"))
		printf("bench/kernel: kernel.bpf_stats_enabled cannot be set: no BPF times\n");

	printf("bench/kernel: BPF time per request (client send + its reply's send), %d each\n",
	       ROUNDS);
	printf("  %-8s %10s %12s %10s\n", "request", "ns/request", "ns/KB", "runs/req");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t ns0, c0, ns1, c1;
		static char req[40000];
		size_t n = make_request(req, sizeof(req), sizes[i]);

		prog_stats(prog_fd, &ns0, &c0);
		round_trips(sizes[i], lat[1]);
		prog_stats(prog_fd, &ns1, &c1);
		printf("  %-8zu %10.0f %12.0f %10.2f\n", n, (double)(ns1 - ns0) / ROUNDS,
		       (double)(ns1 - ns0) / ROUNDS / (n / 1024.0), (double)(c1 - c0) / ROUNDS);
	}
	/*
	 * Round trips, 2 KB: one connection attached, one taken out of tcp_socks, alternating, so
	 * that the noise of a shared machine falls on both alike.
	 */
	{
		static char req[40000];
		size_t n = make_request(req, sizeof(req), 2048);
		int fa = client_connect(), fb = client_connect();

		usleep(10000);
		unwatch(bpf_map__fd(skel->maps.tcp_socks), fb);
		for (int i = 0; i < ROUNDS; i++) {
			round_trip(fa, req, n, &lat[1][i]);
			round_trip(fb, req, n, &lat[0][i]);
		}
		close(fa);
		close(fb);
		qsort(lat[0], ROUNDS, sizeof(uint64_t), cmp_u64);
		qsort(lat[1], ROUNDS, sizeof(uint64_t), cmp_u64);
	}
	printf("bench/kernel: round trip of a 2 KB request, %d each\n", ROUNDS);
	printf("  %-14s %10s %10s\n", "", "p50 us", "p99 us");
	printf("  %-14s %10.1f %10.1f\n", "not attached", lat[0][ROUNDS / 2] / 1e3,
	       lat[0][ROUNDS * 99 / 100] / 1e3);
	printf("  %-14s %10.1f %10.1f\n", "attached", lat[1][ROUNDS / 2] / 1e3,
	       lat[1][ROUNDS * 99 / 100] / 1e3);
	printf("  p50 ratio attached/not attached: %.3f (+%.1f us a round trip)\n",
	       (double)lat[1][ROUNDS / 2] / lat[0][ROUNDS / 2],
	       ((double)lat[1][ROUNDS / 2] - (double)lat[0][ROUNDS / 2]) / 1e3);
	write_file("/proc/sys/kernel/bpf_stats_enabled", "0");
	bpf_link__destroy(link);
	close(cg_fd);
	tcp_bpf__destroy(skel);
	policy__free(pol);
	write_file(CGROUP_ROOT "/cgroup.procs", pid);
	rmdir(cg);
	return 0;
}
