// SPDX-License-Identifier: Apache-2.0
/*
 * bench/kernel: the cost of the TCP enforcement (bpf/tcp.bpf.c) on loopback.
 *  - ns per request inside BPF, from BPF run-time stats (run_time_ns of handle_sk_msg,
 *    whose stages are tail calls and so count in it), for 200 B, 2 KB and 20 KB requests, hot
 *    (back to back) and cold (caches flushed before each, as a real server's work does);
 *  - the floor: round trips (request, then a small reply) to a C server doing nothing, p50/p99,
 *    not attached and attached, same run: the fixed cost of the enforcement;
 *  - the MCP round trip users see: tools/call of the "echo" tool of the real server-everything
 *    (Node, Streamable HTTP, started as a child), p50/p99, not attached and attached, same run
 *    and same session, every answer checked; skipped, saying why, without node or tests/e2e's
 *    node_modules.
 * Both ends read as an event loop does (poll, then a non-blocking recv), like Node's servers and
 * clients. The round trips alternate between a connection that is attached and one taken out
 * of the SOCKHASH, on one CPU, so that the noise of a shared machine falls on both alike.
 * Root only; prints why and exits 0 otherwise. Sockets of this process and its child only: they
 * run in a cgroup of their own.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>
#include "bench.h"
#include "cgroup.h"
#include "feature_probes.h"
#include "kernel.h"
#include "kernel_compile.h"
#include "mcpfence.h"
#include "net_helpers.h"
#include "policy.h"
#include "tcp.skel.h"

#define ROUNDS 2000
#define BPF_ROUNDS 10000 /* BPF time rows: a mean over this many requests, in each batch */
#define BPF_BATCHES 3	 /* on a connection each: the median and the range are printed */
#define WARM_ROUNDS 200	 /* first on each connection, not timed: its map entries, caches */
#define COLD_ROUNDS 200
#define COLD_BYTES (16u << 20) /* more than L2 and the TLBs reach */

static const char policy_json[] =
	"{\"version\":\"1\",\"default\":\"allow\",\"tools\":{\"get-env\":{\"action\":\"deny\"},"
	"\"debug_*\":{\"action\":\"deny\"}}}";
static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";

static uint16_t port;
static struct ring_buffer *events; /* tcp_events, drained between round trips */
static uint64_t nevents;

static int on_event(void *ctx, void *data, size_t size)
{
	nevents++;
	return 0;
}

/*
 * Read what BPF wrote to tcp_events after each request, outside the timed part, as mcpfence
 * attach keeps up with it: a full ring buffer would make every later request skip writing its
 * event, and a reader that lags makes BPF skip the wakeup. A caught-up reader costs each event a
 * wakeup (irq_work); measured here at ~8 us a request, most of the BPF time below.
 */
static void events_drain(void)
{
	if (events)
		ring_buffer__consume(events);
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

/*
 * What the server must receive: every request it reads is compared with this one, byte for
 * byte (a row whose requests did not all arrive intact measured nothing worth printing).
 */
static const char *expect_req;
static size_t expect_len;
static _Atomic uint64_t got_intact, got_changed;

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
		if (expect_req && (size_t)(end + 4 - buf) + len == expect_len &&
		    !memcmp(buf, expect_req, expect_len))
			got_intact++;
		else
			got_changed++;
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
	return net__mcp_post(out, size, "127.0.0.1",
			     "Accept: application/json, text/event-stream\r\n", body);
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
	events_drain();
}

/* Which ends of a connection unwatch takes out of tcp_socks. */
enum { END_CLIENT = 1, END_SERVER = 2, END_BOTH = 3 };

/*
 * Take ends of a connection out of tcp_socks: both, and it is not attached; one end, and BPF runs
 * on the other end's sends only (requests, or replies).
 */
static void unwatch(int socks_fd, int fd, int ends)
{
	struct mcpf_sock_key k, next, *prev = NULL, del[8];
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	int n = 0;

	getsockname(fd, (void *)&me, &ml);
	while (!bpf_map_get_next_key(socks_fd, prev, &next) && n < 8) {
		k = next;
		prev = &k;
		if (k.conn.cport == ntohs(me.sin_port) &&
		    (ends & (k.server_side ? END_SERVER : END_CLIENT)))
			del[n++] = k;
	}
	for (int i = 0; i < n; i++)
		bpf_map_delete_elem(socks_fd, &del[i]);
}

/*
 * A measurement that counts: each of its rounds ran the program (runs), took time (ns), and
 * reached the server as it was sent (intact of sent): else it measured nothing.
 */
struct row {
	double ns;   /* BPF ns per round */
	double runs; /* program runs per round */
	uint64_t sent, intact;
};

/* Why r measured nothing, or NULL. */
static const char *row_invalid(const struct row *r)
{
	if (r->runs < 1.0)
		return "the program did not run on every request";
	if (r->ns <= 0)
		return "the run-time stats read nothing (BPF_ENABLE_STATS?)";
	if (r->intact != r->sent)
		return "the server did not receive every request intact";
	return NULL;
}

/*
 * BPF time (prog_fd's run_time_ns) per round trip of one request of about size bytes on a new
 * connection, over rounds of them after WARM_ROUNDS untimed ones; runs: program runs per round.
 * With cold, that much memory is written before each, so that BPF finds its code and data out
 * of the caches, as after a real server's own work between requests. ends: the ends of the
 * connection taken out of tcp_socks (0: none), so that BPF runs on the requests only, or on the
 * replies only. The server checks that each request arrived as sent.
 */
static struct row bpf_per_round(size_t size, int rounds, char *cold, int socks_fd, int ends,
				int prog_fd)
{
	static char req[40000];
	size_t n = make_request(req, sizeof(req), size);
	uint64_t ns0 = 0, c0 = 0, ns1 = 0, c1 = 0, lat;
	int fd = client_connect();
	struct row r = { .sent = WARM_ROUNDS + rounds };

	expect_req = req;
	expect_len = n;
	got_intact = got_changed = 0;
	if (ends) {
		usleep(10000);
		unwatch(socks_fd, fd, ends);
	}
	for (int i = 0; i < WARM_ROUNDS; i++)
		round_trip(fd, req, n, &lat);
	prog_stats(prog_fd, &ns0, &c0);
	for (int i = 0; i < rounds; i++) {
		for (size_t j = 0; cold && j < COLD_BYTES; j += 64)
			cold[j]++;
		round_trip(fd, req, n, &lat);
	}
	prog_stats(prog_fd, &ns1, &c1);
	close(fd);
	r.runs = (double)(c1 - c0) / rounds;
	r.ns = (double)(ns1 - ns0) / rounds;
	r.intact = got_intact;
	return r;
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

/*
 * The real MCP round trip: tools/call of server-everything's "echo" tool over Streamable HTTP,
 * from raw HTTP/1.1 keep-alive connections of one session, as the SDK's client sends them (each
 * POST, headers and body, in one send).
 */
#define MCP_ROUNDS 2000
#define MCP_WARMUP 300
/* LATEST_PROTOCOL_VERSION of the pinned @modelcontextprotocol/sdk (tests/e2e/package.json) */
#define MCP_PROTOCOL "2025-11-25"
#define EVERYTHING "tests/e2e/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
#define HTTP_BUF 65536

static pid_t mcp_pid; /* server-everything, 0 when it does not run */
static uint16_t mcp_port;
static char mcp_headers[256]; /* Mcp-Session-Id and Mcp-Protocol-Version lines, once initialized */

struct http_conn {
	int fd;
	size_t off, len; /* unread bytes: buf[off, len) */
	char buf[HTTP_BUF];
};

struct http_resp {
	int status;
	bool chunked;
	char type[64];
	char session[128];
	size_t len;
	char body[HTTP_BUF];
};

static void copy_str(char *dst, size_t size, const char *s)
{
	size_t n = strnlen(s, size - 1);

	memcpy(dst, s, n);
	dst[n] = 0;
}

/* PATH's node, or -ENOENT. */
static int node_find(char *out, size_t size)
{
	const char *path = getenv("PATH");
	char *dirs = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin"), *save, *d;
	int err = -ENOENT;

	for (d = dirs ? strtok_r(dirs, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, size, "%s/node", d);
		if (!access(out, X_OK)) {
			err = 0;
			break;
		}
	}
	free(dirs);
	return err;
}

/* server-everything of tests/e2e, from the working directory or from BUILD/bench/kernel. */
static int everything_find(char *out)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (realpath(EVERYTHING, out))
		return 0;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -ENOENT;
	exe[n] = 0;
	for (int i = 0; i < 3; i++) {
		char *slash = strrchr(exe, '/');

		if (!slash)
			return -ENOENT;
		*slash = 0;
	}
	if (strlen(exe) + sizeof(EVERYTHING) + 1 > sizeof(exe))
		return -ENAMETOOLONG;
	strcat(strcat(exe, "/"), EVERYTHING);
	return realpath(exe, out) ? 0 : -ENOENT;
}

/* SIGTERM, then SIGKILL after 2 s; always reaped. */
static void mcp_stop(void)
{
	pid_t r = 0;

	if (mcp_pid <= 0)
		return;
	kill(mcp_pid, SIGTERM);
	for (int i = 0; i < 100 && (r = waitpid(mcp_pid, NULL, WNOHANG)) == 0; i++)
		usleep(20000);
	if (r == 0) {
		kill(mcp_pid, SIGKILL);
		waitpid(mcp_pid, NULL, 0);
	}
	mcp_pid = 0;
}

/*
 * `PORT=mcp_port node EVERYTHING streamableHttp`, a child in this process's cgroup (so that
 * handle_sock_ops sees its connections) and on this process's CPU. Its stdout (a line per
 * request) goes to /dev/null, its stderr to log_fd.
 */
static int mcp_start(const char *node, const char *script, int log_fd)
{
	extern char **environ;
	char port_env[16], **envp;
	char *argv[] = { (char *)node, (char *)script, "streamableHttp", NULL };
	size_t n = 0, k = 0;
	pid_t parent = getpid();
	int null_fd;

	while (environ[n])
		n++;
	envp = calloc(n + 2, sizeof(*envp));
	null_fd = open("/dev/null", O_RDWR);
	if (!envp || null_fd < 0) {
		free(envp);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "PORT=", 5))
			envp[k++] = environ[i];
	snprintf(port_env, sizeof(port_env), "PORT=%u", mcp_port);
	envp[k] = port_env;
	mcp_pid = fork();
	if (mcp_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		dup2(null_fd, 0);
		dup2(null_fd, 1);
		dup2(log_fd, 2);
		execve(node, argv, envp);
		_exit(127);
	}
	free(envp);
	close(null_fd);
	if (mcp_pid < 0) {
		mcp_pid = 0;
		return -errno;
	}
	return 0;
}

/* The last lines of the server's stderr, on one line. */
static void log_tail(int fd, char *out, size_t size)
{
	off_t end = lseek(fd, 0, SEEK_END), from = end > (off_t)size - 1 ? end - (size - 1) : 0;
	ssize_t n = pread(fd, out, size - 1, from);

	out[n > 0 ? n : 0] = 0;
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = n > 0 && p[1] ? ' ' : 0;
}

/* Bounded wait until the server accepts on 127.0.0.1:mcp_port; why says why not. */
static int mcp_wait(int log_fd, char *why, size_t size)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(mcp_port) };
	char tail[300];

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < 300; i++) {
		int st, fd, ok;

		if (waitpid(mcp_pid, &st, WNOHANG) == mcp_pid) {
			mcp_pid = 0;
			log_tail(log_fd, tail, sizeof(tail));
			snprintf(why, size, "server-everything exited (%s %d) before listening: %s",
				 WIFEXITED(st) ? "status" : "signal",
				 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), tail);
			return -ECHILD;
		}
		fd = socket(AF_INET, SOCK_STREAM, 0);
		ok = fd >= 0 && !connect(fd, (void *)&in, sizeof(in));
		if (fd >= 0)
			close(fd);
		if (ok)
			return 0;
		usleep(50000);
	}
	log_tail(log_fd, tail, sizeof(tail));
	snprintf(why, size, "server-everything does not accept on port %u after 15 s: %s", mcp_port,
		 tail);
	return -ETIMEDOUT;
}

/* Read more of the connection, after poll, as an event loop does. */
static int conn_fill(struct http_conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	ssize_t r;

	if (c->off == c->len) {
		c->off = c->len = 0;
	} else if (c->len == sizeof(c->buf)) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == sizeof(c->buf))
		return -EMSGSIZE;
	r = poll(&pfd, 1, 5000);
	if (r <= 0)
		return r ? -errno : -ETIMEDOUT;
	r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
	if (r == 0)
		return -ECONNRESET;
	if (r < 0)
		return errno == EAGAIN ? 0 : -errno;
	c->len += r;
	return 0;
}

/* One CRLF-terminated line, without its CRLF. */
static int conn_line(struct http_conn *c, char *out, size_t size)
{
	for (;;) {
		char *s = c->buf + c->off, *e = memmem(s, c->len - c->off, "\r\n", 2);
		int err;

		if (e) {
			if ((size_t)(e - s) >= size)
				return -EMSGSIZE;
			memcpy(out, s, e - s);
			out[e - s] = 0;
			c->off += e - s + 2;
			return 0;
		}
		err = conn_fill(c);
		if (err)
			return err;
	}
}

static int conn_read(struct http_conn *c, char *out, size_t n)
{
	while (n) {
		size_t k = c->len - c->off < n ? c->len - c->off : n;
		int err;

		if (!k) {
			err = conn_fill(c);
			if (err)
				return err;
			continue;
		}
		memcpy(out, c->buf + c->off, k);
		out += k;
		c->off += k;
		n -= k;
	}
	return 0;
}

/* A chunked body, up to the last chunk and the trailer's empty line. */
static int http_chunks(struct http_conn *c, struct http_resp *r)
{
	char line[512], *end;
	int err;

	for (;;) {
		unsigned long n;

		err = conn_line(c, line, sizeof(line));
		if (err)
			return err;
		n = strtoul(line, &end, 16);
		if (end == line || (*end && *end != ';'))
			return -EPROTO;
		if (!n)
			break;
		if (n >= sizeof(r->body) - r->len)
			return -EMSGSIZE;
		err = conn_read(c, r->body + r->len, n);
		if (!err)
			err = conn_line(c, line, sizeof(line));
		if (err)
			return err;
		if (line[0])
			return -EPROTO;
		r->len += n;
	}
	do
		err = conn_line(c, line, sizeof(line));
	while (!err && line[0]);
	return err;
}

/* One HTTP/1.1 response: status line, headers, then a Content-Length or a chunked body. */
static int http_read(struct http_conn *c, struct http_resp *r)
{
	char line[1024];
	long clen = -1;
	int err;

	r->status = 0;
	r->chunked = false;
	r->type[0] = r->session[0] = 0;
	r->len = 0;
	err = conn_line(c, line, sizeof(line));
	if (err)
		return err;
	if (sscanf(line, "HTTP/1.1 %d", &r->status) != 1)
		return -EPROTO;
	for (;;) {
		char *v;

		err = conn_line(c, line, sizeof(line));
		if (err)
			return err;
		if (!line[0])
			break;
		v = strchr(line, ':');
		if (!v)
			return -EPROTO;
		*v++ = 0;
		v += strspn(v, " \t");
		if (!strcasecmp(line, "content-length"))
			clen = strtol(v, NULL, 10);
		else if (!strcasecmp(line, "transfer-encoding"))
			r->chunked = strcasestr(v, "chunked");
		else if (!strcasecmp(line, "content-type"))
			copy_str(r->type, sizeof(r->type), v);
		else if (!strcasecmp(line, "mcp-session-id"))
			copy_str(r->session, sizeof(r->session), v);
	}
	if (r->chunked)
		err = http_chunks(c, r);
	else if (clen >= (long)sizeof(r->body))
		err = -EMSGSIZE;
	else if (clen >= 0)
		err = conn_read(c, r->body, r->len = clen);
	else if (r->status != 204 && r->status != 304)
		err = -EPROTO; /* delimited by the close: not keep-alive */
	r->body[r->len] = 0;
	return err;
}

static json_t *message_if_id(const char *text, json_int_t id)
{
	json_t *m = json_loads(text, 0, NULL), *mid = json_object_get(m, "id");

	if (json_is_integer(mid) && json_integer_value(mid) == id)
		return m;
	json_decref(m);
	return NULL;
}

/* The JSON-RPC message with this id in an answer: plain JSON or SSE events. NULL if none. */
static json_t *http_message(const struct http_resp *r, json_int_t id)
{
	static char data[HTTP_BUF];
	const char *p = r->body, *end = r->body + r->len;
	size_t dl = 0;
	json_t *m = NULL;

	if (strncasecmp(r->type, "text/event-stream", 17))
		return message_if_id(r->body, id);
	while (p <= end && !m) {
		const char *nl = memchr(p, '\n', end - p);
		size_t n = (nl ? nl : end) - p;

		if (n && p[n - 1] == '\r')
			n--;
		if (!n) { /* an event ends */
			data[dl] = 0;
			if (dl)
				m = message_if_id(data, id);
			dl = 0;
		} else if (n >= 5 && !strncmp(p, "data:", 5)) {
			size_t skip = n > 5 && p[5] == ' ' ? 6 : 5;

			if (dl + n - skip + 1 >= sizeof(data))
				return NULL;
			if (dl)
				data[dl++] = '\n';
			memcpy(data + dl, p + skip, n - skip);
			dl += n - skip;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return m;
}

/* A POST /mcp of body, in one send, as the SDK's client sends it. Returns its length. */
static size_t mcp_request(char *out, size_t size, const char *body)
{
	char host[32], headers[512];

	snprintf(host, sizeof(host), "127.0.0.1:%u", mcp_port);
	snprintf(headers, sizeof(headers), "Accept: application/json, text/event-stream\r\n%s",
		 mcp_headers);
	return net__mcp_post(out, size, host, headers, body);
}

/* Send a request, read its whole answer; *lat: from the send to the answer's last byte. */
static int mcp_exchange(struct http_conn *c, const char *req, size_t n, struct http_resp *r,
			uint64_t *lat)
{
	uint64_t t0 = now_ns();
	int err = net__send_all(c->fd, req, n);

	if (!err)
		err = http_read(c, r);
	if (lat)
		*lat = now_ns() - t0;
	if (err)
		fprintf(stderr, "bench/kernel: POST /mcp on 127.0.0.1:%u: %s\n", mcp_port,
			strerror(-err));
	return err;
}

static int mcp_call(struct http_conn *c, const char *body, struct http_resp *r)
{
	static char req[HTTP_BUF];

	return mcp_exchange(c, req, mcp_request(req, sizeof(req), body), r, NULL);
}

/* initialize, then notifications/initialized: the session both connections share. */
static int mcp_session(struct http_conn *c, struct http_resp *r)
{
	static const char init[] =
		"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
		"\"protocolVersion\":\"" MCP_PROTOCOL "\",\"capabilities\":{},"
		"\"clientInfo\":{\"name\":\"mcpfence-bench\",\"version\":\"1\"}}}";
	json_t *m;
	const char *version;
	int err = mcp_call(c, init, r);

	if (err)
		return err;
	m = http_message(r, 0);
	version =
		json_string_value(json_object_get(json_object_get(m, "result"), "protocolVersion"));
	if (r->status != 200 || !r->session[0] || !version) {
		fprintf(stderr, "bench/kernel: initialize: HTTP %d, session \"%s\": %.300s\n",
			r->status, r->session, r->body);
		json_decref(m);
		return -EPROTO;
	}
	snprintf(mcp_headers, sizeof(mcp_headers),
		 "Mcp-Session-Id: %s\r\nMcp-Protocol-Version: %s\r\n", r->session, version);
	json_decref(m);
	err = mcp_call(c, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", r);
	if (!err && r->status != 202) {
		fprintf(stderr, "bench/kernel: notifications/initialized: HTTP %d: %.300s\n",
			r->status, r->body);
		err = -EPROTO;
	}
	return err;
}

/* The answer is the echo result of this call: "Echo: " and the message. */
static int echo_check(const struct http_resp *r, long id, const char *msg)
{
	json_t *m = http_message(r, id);
	json_t *content = json_object_get(json_object_get(m, "result"), "content");
	const char *text = json_string_value(json_object_get(json_array_get(content, 0), "text"));
	int err = 0;

	if (r->status != 200 || !text || strncmp(text, "Echo: ", 6) || strcmp(text + 6, msg)) {
		fprintf(stderr, "bench/kernel: echo id %ld: not its echo result: HTTP %d %.300s\n",
			id, r->status, r->body);
		err = -EPROTO;
	}
	json_decref(m);
	return err;
}

/*
 * Enforcement is on where it should be: get-env (denied by the policy) is denied on the
 * attached connection and answered on the one taken out of tcp_socks.
 */
static int mcp_enforced(struct http_conn *c[2], struct http_resp *r, char *denial, size_t size)
{
#define GET_ENV(id)                                                      \
	"{\"jsonrpc\":\"2.0\",\"id\":" #id ",\"method\":\"tools/call\"," \
	"\"params\":{\"name\":\"get-env\",\"arguments\":{}}}"
	json_t *m, *error;
	const char *msg;
	int err = mcp_call(c[1], GET_ENV(1), r);

	if (err)
		return err;
	m = http_message(r, 1);
	error = json_object_get(m, "error");
	msg = json_string_value(json_object_get(error, "message"));
	if (!msg || !strcasestr(msg, "denied by policy")) {
		fprintf(stderr, "bench/kernel: get-env attached: not denied: %.300s\n", r->body);
		json_decref(m);
		return -EPROTO;
	}
	snprintf(denial, size, "error %lld \"%s\"",
		 (long long)json_integer_value(json_object_get(error, "code")), msg);
	json_decref(m);
	err = mcp_call(c[0], GET_ENV(2), r);
	if (err)
		return err;
	m = http_message(r, 2);
	if (!json_object_get(m, "result")) {
		fprintf(stderr, "bench/kernel: get-env not attached: no result: %.300s\n", r->body);
		err = -EPROTO;
	}
	json_decref(m);
	return err;
}

static struct http_conn *conn_open(void)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(mcp_port) };
	struct http_conn *c = calloc(1, sizeof(*c));
	int one = 1;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!c)
		return NULL;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (c->fd < 0 || connect(c->fd, (void *)&in, sizeof(in))) {
		fprintf(stderr, "bench/kernel: connect 127.0.0.1:%u: %s\n", mcp_port,
			strerror(errno));
		if (c->fd >= 0)
			close(c->fd);
		free(c);
		return NULL;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return c;
}

static void conn_close(struct http_conn *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

struct mcp_run {
	size_t req_len, resp_len;
	uint64_t bpf_ns, bpf_cnt, events;
	uint64_t lat[2][MCP_ROUNDS]; /* [0] not attached, [1] attached */
};

/*
 * MCP_WARMUP, then MCP_ROUNDS echo calls of a msg_len message on each connection, alternating
 * (and which goes first, too), every answer checked. BPF runs only for c[1]'s calls.
 */
static int mcp_rounds(struct http_conn *c[2], size_t msg_len, int prog_fd, struct mcp_run *out)
{
	static const char fmt[] =
		"{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\","
		"\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"%s\"}}}";
	static char msg[HTTP_BUF / 2], body[HTTP_BUF / 2 + 256], req[HTTP_BUF];
	static struct http_resp r;
	static long id = 100;
	uint64_t ns0 = 0, c0 = 0, ev0 = 0;
	int err = 0;

	for (size_t i = 0; i < msg_len && i < sizeof(msg) - 1; i++)
		msg[i] = 'a' + i % 26;
	msg[msg_len < sizeof(msg) ? msg_len : sizeof(msg) - 1] = 0;
	for (int i = -MCP_WARMUP; i < MCP_ROUNDS && !err; i++) {
		if (i == 0) {
			events_drain();
			ev0 = nevents;
			prog_stats(prog_fd, &ns0, &c0);
		}
		for (int k = 0; k < 2 && !err; k++) {
			int side = (i & 1) ^ k;
			uint64_t lat;
			size_t n;

			snprintf(body, sizeof(body), fmt, ++id, msg);
			n = mcp_request(req, sizeof(req), body);
			err = mcp_exchange(c[side], req, n, &r, &lat);
			if (!err)
				err = echo_check(&r, id, msg);
			if (i >= 0)
				out->lat[side][i] = lat;
			out->req_len = n;
			out->resp_len = r.len;
			events_drain();
		}
	}
	if (!err) {
		prog_stats(prog_fd, &out->bpf_ns, &out->bpf_cnt);
		out->bpf_ns -= ns0;
		out->bpf_cnt -= c0;
		events_drain();
		out->events = nevents - ev0;
	}
	return err;
}

/*
 * The search of a server's sends for the answer to a denied call (bpf/tcp.bpf.c reply_find):
 * the bpf_strnstr kfunc (6.17+) against the bpf_loop search of older kernels, both loaded here
 * where the kernel has the kfunc. A loopback pair of its own on a watched port: the client sends
 * one denied call (its id then waits on the connection), the server end sends answers of size
 * bytes holding no answer to it, so each send is searched whole and the id keeps waiting; the
 * same on a pair whose call was allowed (nothing waits: the send is not searched).
 * ns per send, BPF run time of handle_sk_msg (the server stage is a tail call of it).
 */
#define SEARCH_ROUNDS 2000

static int search_pair(uint16_t sport, int lfd, bool denied, int *cfd, int *sfd)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(sport) };
	static char req[4096], got[4096];
	static const char denied_call[] =
		"{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"tools/call\",\"params\":{\"name\":"
		"\"get-env\",\"arguments\":{}}}";
	static const char allowed_call[] =
		"{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"tools/call\",\"params\":{\"name\":"
		"\"echo\",\"arguments\":{}}}";
	const char *body = denied ? denied_call : allowed_call;
	int n, one = 1;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (*cfd < 0 || connect(*cfd, (void *)&in, sizeof(in)))
		return -errno;
	*sfd = accept(lfd, NULL, NULL);
	if (*sfd < 0)
		return -errno;
	setsockopt(*sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	n = snprintf(req, sizeof(req),
		     "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s",
		     strlen(body), body);
	if (send(*cfd, req, n, 0) != n || read_full(*sfd, got, n))
		return -EIO;
	/* the server received the call as decided: neutralized, or intact */
	if (denied != (memmem(got, n, "rpc.denied", 10) != NULL))
		return -EPROTO;
	return 0;
}

/*
 * BPF ns per server send of size bytes, on a pair whose call was denied or not. The send is
 * JSON text (errors: answers of an error other than -32601, a '-' every 41 bytes, the worst case
 * of the loop search: each '-' is compared with the needle), never the answer to id 77.
 */
static double search_per_send(uint16_t sport, int lfd, bool denied, size_t size, bool errors,
			      int prog_fd, double *runs)
{
	static const char text[] = "{\"type\":\"text\",\"text\":\"Lorem ipsum dolor sit amet, "
				   "consectetur adipiscing elit, sed do eiusmod tempor.\"},";
	static const char error[] = ",\"error\":{\"code\":-32602,\"message\":\"x\"},";
	static char reply[20000], got[20000];
	uint64_t ns0, c0, ns1, c1;
	int cfd = -1, sfd = -1, n;

	n = snprintf(reply, sizeof(reply), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
		     size - 38);
	for (size_t i = n; i < size; i++)
		reply[i] = errors ? error[i % (sizeof(error) - 1)] : text[i % (sizeof(text) - 1)];
	if (search_pair(sport, lfd, denied, &cfd, &sfd)) {
		fprintf(stderr, "bench/kernel: search pair: %s\n", strerror(errno));
		exit(1);
	}
	for (int i = 0; i < WARM_ROUNDS; i++)
		if (send(sfd, reply, size, 0) != (ssize_t)size || read_full(cfd, got, size))
			exit(1);
	prog_stats(prog_fd, &ns0, &c0);
	for (int i = 0; i < SEARCH_ROUNDS; i++) {
		if (send(sfd, reply, size, 0) != (ssize_t)size || read_full(cfd, got, size) ||
		    memcmp(got, reply, size)) {
			fprintf(stderr, "bench/kernel: a searched answer did not arrive intact\n");
			exit(1);
		}
	}
	prog_stats(prog_fd, &ns1, &c1);
	close(cfd);
	close(sfd);
	*runs = (double)(c1 - c0) / SEARCH_ROUNDS;
	return (double)(ns1 - ns0) / SEARCH_ROUNDS;
}

/* Wire the server stage: the kfunc build, or the loop's. */
static void search_use(struct tcp_bpf *skel, bool kfunc)
{
	int fd = bpf_program__fd(kfunc ? skel->progs.handle_sk_msg_server :
					 skel->progs.handle_sk_msg_server_loop);
	__u32 key = 2; /* TP_SERVER */

	bpf_map_update_elem(bpf_map__fd(skel->maps.tcp_progs), &key, &fd, BPF_ANY);
}

static void search_bench(struct tcp_bpf *skel, int prog_fd, uint16_t sport)
{
	static const size_t sizes[] = { 1024, 4096, 16384 };
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(sport) };
	bool kfunc = kernel__search_both(skel);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (void *)&in, sizeof(in)) || listen(lfd, 4) ||
	    kernel__watch_port(skel, sport, 0)) {
		perror("bench/kernel: search");
		exit(1);
	}
	printf("bench/kernel: reply search, BPF ns per server send while a denied call waits for "
	       "its answer on the connection (searched whole: it holds none), %d each; none: "
	       "nothing waits (not searched)%s\n",
	       SEARCH_ROUNDS, kfunc ? "" : "; this kernel has no bpf_strnstr: the loop only");
	printf("  %-6s %-8s %8s %8s %8s %10s %12s %12s\n", "send", "content", "none", "kfunc",
	       "loop", "loop/kfunc", "kfunc ns/KB", "loop ns/KB");
	for (size_t i = 0; i < 2 * sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t size = sizes[i / 2];
		bool errors = i & 1;
		double none, k = 0, l, runs;

		double lruns;
		char what[200];

		none = search_per_send(sport, lfd, false, size, errors, prog_fd, &runs);
		if (kfunc) {
			search_use(skel, true);
			k = search_per_send(sport, lfd, true, size, errors, prog_fd, &runs);
		}
		search_use(skel, false);
		l = search_per_send(sport, lfd, true, size, errors, prog_fd, &lruns);
		search_use(skel, false);
		snprintf(what, sizeof(what),
			 "reply search (bpf_loop), ns per KB searched, %zu B %s", size,
			 errors ? "errors" : "text");
		target_add(what, (l - none) / (size / 1024.0), 1000, "ns/KB",
			   lruns < 1 || runs < 1 ? "the program did not run on every send" :
			   l <= 0 || none <= 0	 ? "the run-time stats read nothing" :
						   NULL);
		if (kfunc)
			printf("  %-6zu %-8s %8.0f %8.0f %8.0f %10.2f %12.0f %12.0f\n", size,
			       errors ? "errors" : "text", none, k, l, l / k,
			       (k - none) / (size / 1024.0), (l - none) / (size / 1024.0));
		else
			printf("  %-6zu %-8s %8.0f %8s %8.0f %10s %12s %12.0f\n", size,
			       errors ? "errors" : "text", none, "-", l, "-", "-",
			       (l - none) / (size / 1024.0));
	}
	close(lfd);
}

/* p50/p99 of both, sorted in place, and the p50 ratio, which it returns. */
static double print_rtt(uint64_t *na, uint64_t *at, int n)
{
	qsort(na, n, sizeof(uint64_t), cmp_u64);
	qsort(at, n, sizeof(uint64_t), cmp_u64);
	printf("  %-14s %10s %10s\n", "", "p50 us", "p99 us");
	printf("  %-14s %10.1f %10.1f\n", "not attached", na[n / 2] / 1e3, na[n * 99 / 100] / 1e3);
	printf("  %-14s %10.1f %10.1f\n", "attached", at[n / 2] / 1e3, at[n * 99 / 100] / 1e3);
	printf("  p50 ratio attached/not attached: %.3f (+%.1f us a round trip)\n",
	       (double)at[n / 2] / na[n / 2], ((double)at[n / 2] - (double)na[n / 2]) / 1e3);
	return na[n / 2] ? (double)at[n / 2] / na[n / 2] : 0;
}

/*
 * The egress program (handle_egress: it drops the packets of a socket tcp_socks had no room
 * for) runs on every packet of the cgroup, watched or not: a 200 B round trip on a connection
 * out of tcp_socks, with the program on the cgroup and without, alternating in batches of
 * EGRESS_BATCH, and its BPF time per packet.
 */
#define EGRESS_BATCH 100
static void egress_bench(struct tcp_bpf *skel, int cg_fd, int *stats_fd)
{
	static uint64_t on[ROUNDS], off[ROUNDS];
	static char req[40000];
	size_t n = make_request(req, sizeof(req), 200);
	int fd = client_connect(), efd = bpf_program__fd(skel->progs.handle_egress);
	uint64_t ns0 = 0, cnt0 = 0, ns1 = 0, cnt1 = 0;
	const char *bad = NULL;
	double ratio;

	expect_req = req;
	expect_len = n;
	got_intact = got_changed = 0;
	usleep(10000);
	unwatch(bpf_map__fd(skel->maps.tcp_socks), fd, END_BOTH);
	/* run-time stats cost two clock reads a run: off for the round trips */
	if (*stats_fd >= 0)
		close(*stats_fd);
	for (int b = 0; b < ROUNDS / EGRESS_BATCH; b++) {
		struct bpf_link *eg = bpf_program__attach_cgroup(skel->progs.handle_egress, cg_fd);

		if (!eg) {
			bad = "the egress program did not attach";
			break;
		}
		for (int i = 0; i < EGRESS_BATCH; i++)
			round_trip(fd, req, n, &on[b * EGRESS_BATCH + i]);
		bpf_link__destroy(eg);
		for (int i = 0; i < EGRESS_BATCH; i++)
			round_trip(fd, req, n, &off[b * EGRESS_BATCH + i]);
	}
	*stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (!bad) {
		struct bpf_link *eg = bpf_program__attach_cgroup(skel->progs.handle_egress, cg_fd);
		uint64_t spare;

		prog_stats(efd, &ns0, &cnt0);
		for (int i = 0; eg && i < ROUNDS; i++)
			round_trip(fd, req, n, &spare);
		prog_stats(efd, &ns1, &cnt1);
		bpf_link__destroy(eg);
	}
	close(fd);
	if (!bad && got_intact != 3 * ROUNDS)
		bad = "the server did not receive every request intact";
	printf("bench/kernel: unrelated traffic: round trip of a %zu B request on a connection "
	       "not watched, the egress program on the cgroup (\"attached\") or not, "
	       "alternating %d and %d, %d each\n",
	       n, EGRESS_BATCH, EGRESS_BATCH, ROUNDS);
	ratio = print_rtt(off, on, ROUNDS);
	printf("  handle_egress: %.0f ns a packet (%" PRIu64 " packets, %d more round trips with "
	       "run-time stats on; the round trips above ran without them)\n",
	       cnt1 > cnt0 ? (double)(ns1 - ns0) / (double)(cnt1 - cnt0) : 0.0, cnt1 - cnt0,
	       ROUNDS);
	target_add("unrelated round trip p50, egress program on / off", ratio, 1.02, "x", bad);
}

static char cg_root[PATH_MAX]; /* the host's cgroup v2, found as attach finds it */
static char cg[PATH_MAX + 32]; /* this process's cgroup, once made */

/* At exit, on every path: server-everything stopped, then this process out of its cgroup. */
static void cleanup(void)
{
	char pid[32];

	mcp_stop();
	if (!cg[0])
		return;
	snprintf(pid, sizeof(pid), "%d", getpid());
	write_file(strcat(strcpy((char[PATH_MAX + 16]){ 0 }, cg_root), "/cgroup.procs"), pid);
	rmdir(cg);
	cg[0] = 0;
}

/*
 * Start server-everything on mcp_port and wait until it accepts. 0, or -errno with why filled
 * in (a missing node or package: *skip set, the part is skipped).
 */
static int mcp_setup(char *why, size_t size, bool *skip)
{
	char node[PATH_MAX], script[PATH_MAX], log_path[] = "/tmp/mcpfence-bench-XXXXXX";
	int log_fd, err;

	*skip = true;
	if (node_find(node, sizeof(node))) {
		snprintf(why, size, "no node in PATH");
		return -ENOENT;
	}
	if (everything_find(script)) {
		snprintf(why, size, "no %s (run npm ci in tests/e2e)", EVERYTHING);
		return -ENOENT;
	}
	*skip = false;
	log_fd = mkstemp(log_path);
	if (log_fd < 0) {
		snprintf(why, size, "%s: %s", log_path, strerror(errno));
		return -errno;
	}
	unlink(log_path);
	err = mcp_start(node, script, log_fd);
	if (err)
		snprintf(why, size, "%.300s: %s", node, strerror(-err));
	else
		err = mcp_wait(log_fd, why, size);
	close(log_fd);
	return err;
}

/* 1: the tools/list answer lists get-env, 0: it does not, -EPROTO: no list; *ntools: its tools */
static int list_check(const struct http_resp *r, long id, size_t *ntools)
{
	json_t *m = http_message(r, id), *t;
	json_t *tools = json_object_get(json_object_get(m, "result"), "tools");
	bool env = false;
	size_t i;

	json_array_foreach(tools, i, t)
		env |= !strcmp(json_string_value(json_object_get(t, "name")) ?: "", "get-env");
	*ntools = json_array_size(tools);
	json_decref(m);
	if (r->status != 200 || !*ntools) {
		fprintf(stderr, "bench/kernel: tools/list id %ld: HTTP %d %.300s\n", id, r->status,
			r->body);
		return -EPROTO;
	}
	return env ? 1 : 0;
}

/*
 * MCP_WARMUP, then MCP_ROUNDS tools/list on each connection, alternating: the attached one's
 * answer must lack get-env (the policy denies it), the other's list it, with one tool more.
 */
static int mcp_list_rounds(struct http_conn *c[2], int prog_fd, struct mcp_run *out)
{
	static char body[256], req[HTTP_BUF];
	static struct http_resp r;
	static long id = 100000;
	uint64_t ns0 = 0, c0 = 0;
	size_t ntools[2] = { 0, 0 };
	int err = 0;

	for (int i = -MCP_WARMUP; i < MCP_ROUNDS && !err; i++) {
		if (i == 0) {
			events_drain();
			prog_stats(prog_fd, &ns0, &c0);
		}
		for (int k = 0; k < 2 && !err; k++) {
			int side = (i & 1) ^ k, env;
			uint64_t lat;
			size_t n;

			snprintf(body, sizeof(body),
				 "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/list\"}",
				 ++id);
			n = mcp_request(req, sizeof(req), body);
			err = mcp_exchange(c[side], req, n, &r, &lat);
			if (err)
				break;
			env = list_check(&r, id, &ntools[side]);
			if (env < 0 || env != !side) {
				fprintf(stderr,
					"bench/kernel: tools/list on the %s connection %s get-env\n",
					side ? "attached" : "other",
					env ? "lists" : "does not list");
				err = -EPROTO;
			}
			if (i >= 0)
				out->lat[side][i] = lat;
			out->req_len = n;
			out->resp_len = r.len;
		}
	}
	if (!err && ntools[0] != ntools[1] + 1) {
		fprintf(stderr, "bench/kernel: tools/list: %zu tools, %zu attached\n", ntools[0],
			ntools[1]);
		err = -EPROTO;
	}
	if (!err) {
		prog_stats(prog_fd, &out->bpf_ns, &out->bpf_cnt);
		out->bpf_ns -= ns0;
		out->bpf_cnt -= c0;
	}
	return err;
}

/* The MCP part: one session, a connection attached and one taken out of tcp_socks. */
static int mcp_bench(struct tcp_bpf *skel, int prog_fd)
{
	static const size_t msg_lens[] = { 32, 1800 };
	static struct mcp_run run;
	static struct http_resp r;
	struct http_conn *c[2] = { conn_open(), conn_open() };
	char denial[256], what[200];
	double ratio;
	int err = -ECONNREFUSED;

	if (!c[0] || !c[1])
		goto out_close;
	usleep(10000);
	unwatch(bpf_map__fd(skel->maps.tcp_socks), c[0]->fd, END_BOTH);
	err = mcp_session(c[1], &r);
	if (!err)
		err = mcp_enforced(c, &r, denial, sizeof(denial));
	if (err)
		goto out_close;
	printf("bench/kernel: MCP tools/call \"echo\" round trip to the real server-everything "
	       "(Node, Streamable HTTP), one session, %d each after %d warm-up\n",
	       MCP_ROUNDS, MCP_WARMUP);
	printf("  enforcement on: get-env denied on the attached connection (%s), answered on "
	       "the other\n",
	       denial);
	for (size_t i = 0; i < sizeof(msg_lens) / sizeof(msg_lens[0]); i++) {
		err = mcp_rounds(c, msg_lens[i], prog_fd, &run);
		if (err)
			goto out_close;
		printf("  request %zu B, answer %zu B (SSE body); BPF %.0f ns a call (%.2f runs), "
		       "%.2f events a call\n",
		       run.req_len, run.resp_len, (double)run.bpf_ns / MCP_ROUNDS,
		       (double)run.bpf_cnt / MCP_ROUNDS, (double)run.events / MCP_ROUNDS);
		ratio = print_rtt(run.lat[0], run.lat[1], MCP_ROUNDS);
		snprintf(what, sizeof(what),
			 "MCP tools/call p50, %zu B request, attached / not attached", run.req_len);
		target_add(what, ratio, 1.05, "x",
			   run.bpf_cnt < MCP_ROUNDS || !run.bpf_ns ?
				   "the program did not run on every attached call" :
				   NULL);
	}
	/* tools/list: the answer walked and get-env taken out (no target: reported) */
	err = mcp_list_rounds(c, prog_fd, &run);
	if (err)
		goto out_close;
	printf("  tools/list, answer %zu B (SSE body), get-env taken out on the attached "
	       "connection; BPF %.0f ns a list, request and answer (%.2f runs)\n",
	       run.resp_len, (double)run.bpf_ns / MCP_ROUNDS, (double)run.bpf_cnt / MCP_ROUNDS);
	print_rtt(run.lat[0], run.lat[1], MCP_ROUNDS);
out_close:
	conn_close(c[0]);
	conn_close(c[1]);
	return err;
}

int main(void)
{
	static const size_t sizes[] = { 200, 2048, 20480 };
	static uint64_t lat[2][ROUNDS];
	char pid[32], err[POLICY_ERR_LEN], why[512];
	struct kernel_compiled kc;
	struct bpf_link *link = NULL;
	struct tcp_bpf *skel;
	struct policy *pol;
	struct sockaddr_in in = { .sin_family = AF_INET };
	pthread_t th;
	int lfd, cg_fd, one = 1, prog_fd, mcp_err, stats_fd, ret = 0;
	double fixed_ns = 0, floor_ratio;
	const char *fixed_bad = "not measured";
	bool mcp_skip, floor_intact;
	char *cold;

	if (geteuid() != 0) {
		printf("bench/kernel: skipped: needs root (BPF programs on a cgroup)\n");
		return 0;
	}
	features__mount();
	/*
	 * One CPU for the client and the server threads, and for server-everything: a wakeup
	 * across CPUs of this VM costs ~70 us now and then, which would swamp what is measured.
	 */
	{
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &set);
		sched_setaffinity(0, sizeof(set), &set);
	}
	port = 20000 + (getpid() % 5000) * 2;
	mcp_port = port + 1;
	if (cgroup__v2_root(cg_root, sizeof(cg_root), why, sizeof(why))) {
		printf("bench/kernel: skipped: %s\n", why);
		return 0;
	}
	snprintf(cg, sizeof(cg), "%s/mcpfence-bench-%d", cg_root, getpid());
	snprintf(pid, sizeof(pid), "%d", getpid());
	if (mkdir(cg, 0755)) {
		printf("bench/kernel: %s: %s\n", cg, strerror(errno));
		return 1;
	}
	atexit(cleanup);
	if (write_file(strcat(strcpy((char[PATH_MAX + 16]){ 0 }, cg), "/cgroup.procs"), pid)) {
		printf("bench/kernel: %s: cannot move there\n", cg);
		return 1;
	}
	/* server-everything first, in this cgroup, and idle before anything is measured */
	mcp_err = mcp_setup(why, sizeof(why), &mcp_skip);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	in.sin_port = htons(port);
	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (void *)&in, sizeof(in)) || listen(lfd, 8)) {
		perror("bench/kernel: bind");
		return 1;
	}
	pthread_create(&th, NULL, server_main, &lfd);

	skel = kernel__load_with(KERNEL_SEARCH_BOTH);
	if (!skel) {
		printf("bench/kernel: skipped: bpf/tcp.bpf.c does not load here\n");
		return 0;
	}
	pol = policy__parse(policy_json, strlen(policy_json), "bench", err);
	if (!pol || kernel__compile(skel, pol, 0, &kc) || kernel__activate(skel, 0) ||
	    kernel__watch_port(skel, port, 0) || kernel__watch_port(skel, mcp_port, 0))
		return 1;
	prog_fd = bpf_program__fd(skel->progs.handle_sk_msg);
	if (bpf_prog_attach(prog_fd, bpf_map__fd(skel->maps.tcp_socks), BPF_SK_MSG_VERDICT, 0))
		return 1;
	cg_fd = open(cg, O_RDONLY | O_DIRECTORY);
	link = bpf_program__attach_cgroup(skel->progs.handle_sock_ops, cg_fd);
	if (!link)
		return 1;
	events = ring_buffer__new(bpf_map__fd(skel->maps.tcp_events), on_event, NULL, NULL);
	if (!events)
		return 1;
	/*
	 * Run-time stats held by an fd (BPF_ENABLE_STATS), not kernel.bpf_stats_enabled: another
	 * process setting that sysctl back to 0 meanwhile would stop them.
	 */
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0)
		printf("bench/kernel: BPF_ENABLE_STATS: %s: no BPF times\n", strerror(errno));

	printf("bench/kernel: BPF time per message (run-time stats of handle_sk_msg, its stages "
	       "included): a request alone (the server end out of tcp_socks); warm: the median of "
	       "%d batches (range) of %d each, after %d untimed on each batch's connection; cold: "
	       "caches flushed before each (%u MB written), %d; reply: the server's %zu B answer "
	       "alone (the client end out). Every request is checked as the server received it.\n",
	       BPF_BATCHES, BPF_ROUNDS, WARM_ROUNDS, COLD_BYTES >> 20, COLD_ROUNDS, strlen(reply));
	printf("  per KB: BPF time beyond the smallest request's (the fixed cost), per KB of body "
	       "beyond its body\n");
	printf("  %-8s %6s %9s %15s %9s %9s %9s %5s %13s %8s\n", "request", "body", "warm ns",
	       "batches", "cold ns", "warm/KB", "cold/KB", "runs", "intact", "reply ns");
	cold = malloc(COLD_BYTES);
	if (!cold)
		return 1;
	{
		int socks = bpf_map__fd(skel->maps.tcp_socks);
		struct row warm[3][BPF_BATCHES], cold_row[3], reply_row[3];
		double med[3], body[3];

		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			static char req[40000];
			size_t n = make_request(req, sizeof(req), sizes[i]);
			const char *bad = NULL;
			char what[200];
			double per[BPF_BATCHES];
			uint64_t sent = 0, intact = 0;

			body[i] = n - (strstr(req, "\r\n\r\n") + 4 - req);
			for (int b = 0; b < BPF_BATCHES; b++) {
				warm[i][b] = bpf_per_round(sizes[i], BPF_ROUNDS, NULL, socks,
							   END_SERVER, prog_fd);
				per[b] = warm[i][b].ns;
				sent += warm[i][b].sent;
				intact += warm[i][b].intact;
				bad = bad ? bad : row_invalid(&warm[i][b]);
			}
			qsort(per, BPF_BATCHES, sizeof(per[0]), cmp_double);
			med[i] = per[BPF_BATCHES / 2];
			cold_row[i] = bpf_per_round(sizes[i], COLD_ROUNDS, cold, socks, END_SERVER,
						    prog_fd);
			reply_row[i] = bpf_per_round(sizes[i], BPF_ROUNDS, NULL, socks, END_CLIENT,
						     prog_fd);
			bad = bad ? bad : row_invalid(&cold_row[i]);
			bad = bad ? bad : row_invalid(&reply_row[i]);
			sent += cold_row[i].sent + reply_row[i].sent;
			intact += cold_row[i].intact + reply_row[i].intact;
			if (i == 0)
				printf("  %-8zu %6.0f %9.0f %7.0f-%-7.0f %9.0f %9s %9s %5.2f %6" PRIu64
				       "/%-6" PRIu64 " %8.0f\n",
				       n, body[i], med[i], per[0], per[BPF_BATCHES - 1],
				       cold_row[i].ns, "fixed", "fixed", warm[i][0].runs, intact,
				       sent, reply_row[i].ns);
			else
				printf("  %-8zu %6.0f %9.0f %7.0f-%-7.0f %9.0f %9.0f %9.0f %5.2f %6" PRIu64
				       "/%-6" PRIu64 " %8.0f\n",
				       n, body[i], med[i], per[0], per[BPF_BATCHES - 1],
				       cold_row[i].ns,
				       (med[i] - med[0]) / ((body[i] - body[0]) / 1024.0),
				       (cold_row[i].ns - cold_row[0].ns) /
					       ((body[i] - body[0]) / 1024.0),
				       warm[i][0].runs, intact, sent, reply_row[i].ns);
			if (i == 0) {
				fixed_ns = med[0];
				fixed_bad = bad;
				continue;
			}
			if (!bad)
				bad = fixed_bad;
			snprintf(what, sizeof(what),
				 "request BPF time per KB of body beyond %.0f B, "
				 "%zu B request, warm",
				 body[0], n);
			target_add(what, (med[i] - med[0]) / ((body[i] - body[0]) / 1024.0), 1000,
				   "ns/KB", bad);
			snprintf(what, sizeof(what),
				 "request BPF time per KB of body beyond %.0f B, "
				 "%zu B request, cold",
				 body[0], n);
			target_add(what,
				   (cold_row[i].ns - cold_row[0].ns) /
					   ((body[i] - body[0]) / 1024.0),
				   1000, "ns/KB", bad);
		}
	}
	free(cold);
	/*
	 * The floor, 2 KB: one connection attached, one taken out of tcp_socks, alternating, so
	 * that the noise of a shared machine falls on both alike.
	 */
	{
		static char req[40000];
		size_t n = make_request(req, sizeof(req), 2048);
		int fa = client_connect(), fb = client_connect();

		expect_req = req;
		expect_len = n;
		got_intact = got_changed = 0;
		usleep(10000);
		unwatch(bpf_map__fd(skel->maps.tcp_socks), fb, END_BOTH);
		for (int i = 0; i < ROUNDS; i++) {
			round_trip(fa, req, n, &lat[1][i]);
			round_trip(fb, req, n, &lat[0][i]);
		}
		floor_intact = got_intact == 2 * ROUNDS;
		close(fa);
		close(fb);
	}
	egress_bench(skel, cg_fd, &stats_fd);
	search_bench(skel, prog_fd, port + 2);
	printf("bench/kernel: floor: round trip of a 2 KB request to a C server doing nothing, "
	       "%d each\n",
	       ROUNDS);
	floor_ratio = print_rtt(lat[0], lat[1], ROUNDS);
	target_add("floor round trip p50, attached / not attached", floor_ratio, 1.5, "x",
		   floor_intact ? NULL : "the server did not receive every request intact");
	target_add("fixed cost (smallest request, warm BPF ns) / floor round trip p50 not attached",
		   fixed_ns / lat[0][ROUNDS / 2], 0.25, "x",
		   fixed_bad	 ? fixed_bad :
		   !floor_intact ? "the floor was not measured" :
				   NULL);
	if (mcp_skip) {
		printf("bench/kernel: MCP round trip skipped: %s\n", why);
		target_add("MCP tools/call p50, attached / not attached", 0, 1.05, "x", why);
	} else if (mcp_err) {
		printf("bench/kernel: MCP round trip failed: %s\n", why);
		ret = 1;
	} else if (mcp_bench(skel, prog_fd)) {
		printf("bench/kernel: MCP round trip failed (above)\n");
		ret = 1;
	}
	if (targets_print(
		    "bench/kernel: targets (a rule for every size, or a ratio to a baseline of this run)"))
		ret = 1;
	cleanup();
	if (stats_fd >= 0)
		close(stats_fd);
	ring_buffer__free(events);
	bpf_link__destroy(link);
	close(cg_fd);
	tcp_bpf__destroy(skel);
	policy__free(pol);
	return ret;
}
