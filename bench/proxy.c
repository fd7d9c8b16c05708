// SPDX-License-Identifier: Apache-2.0
/*
 * bench/proxy: what `mcpfence proxy` costs, against a plain reverse proxy (Debian's nginx, one
 * process: mcpfence proxy has one thread) and against no proxy at all, in one run:
 *  1. round trips of one tools/call (200 B) on one keep-alive connection: p50 and p99;
 *  2. calls per second from 100 concurrent sessions (connections), each sending its calls one
 *     after another;
 *  3. memory per idle connection: the proxy's resident memory with 1,000 connections open and
 *     idle, less before, per connection.
 * The server is a libmicrohttpd server in this process (one thread) that answers every POST with
 * one fixed JSON-RPC result; the client is libcurl. Rounds alternate between the targets
 * (direct, nginx, mcpfence), so that the noise of a shared machine falls on all alike; each row
 * gives min-median-max over the rounds, each ratio is of the medians. mcpfence runs with a
 * policy that allows the tool and writes its audit log to a file, as in use.
 * What cannot be measured (no nginx, no mcpfence, a target that does not answer) prints NOT
 * MEASURED and why, exit 1.
 * Usage: build/bench/proxy [MCPFENCE]
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include "bench.h"

#define ROUNDS 5
#define RTT_CALLS 3000
#define RTT_WARM 300
#define SESSIONS 100
#define LOAD_MS 3000
#define IDLE_CONNS 1000
#define NGINX "/usr/sbin/nginx"
#define NTARGETS 3

static const char *const names[NTARGETS] = { "direct", "nginx", "mcpfence" };
static const char answer_json[] =
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":"
	"\"text\",\"text\":\"Echo: a 200-byte call\"}]}}";
static char call_json[256];
static int ports[NTARGETS];
static pid_t pids[NTARGETS];
static char dir[] = "/tmp/mcpfence-bench-proxy-XXXXXX";

/* --- the server --- */

static enum MHD_Result serve(void *cls, struct MHD_Connection *c, const char *url,
			     const char *method, const char *version, const char *data,
			     size_t *size, void **state)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!*state) {
		*state = (void *)1;
		return MHD_YES;
	}
	if (*size) {
		*size = 0;
		return MHD_YES;
	}
	r = MHD_create_response_from_buffer(sizeof(answer_json) - 1, (void *)answer_json,
					    MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p = 0;

	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		p = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return p;
}

/* --- the client --- */

static size_t discard(char *p, size_t s, size_t n, void *u)
{
	(*(size_t *)u) += s * n;
	return s * n;
}

static CURL *client(int port, size_t *got)
{
	static char url[NTARGETS + 1][64];
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL;

	if (!e)
		return NULL;
	snprintf(url[0], sizeof(url[0]), "http://127.0.0.1:%d/mcp", port);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json, text/event-stream");
	h = curl_slist_append(h, "Mcp-Session-Id: bench");
	curl_easy_setopt(e, CURLOPT_URL, url[0]);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h); /* kept for the process's life */
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, call_json);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, got);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	return e;
}

/* One call: 0 when the answer was the server's, whole. */
static int one_call(CURL *e, size_t *got)
{
	long code = 0;

	*got = 0;
	if (curl_easy_perform(e) != CURLE_OK)
		return -1;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	return code == 200 && *got == sizeof(answer_json) - 1 ? 0 : -1;
}

/* Part 1: p50 and p99 of RTT_CALLS round trips, in µs; -1 when a call failed. */
static int rtt(int port, double *p50, double *p99)
{
	static uint64_t t[RTT_CALLS];
	size_t got;
	CURL *e = client(port, &got);
	int err = 0;

	for (int i = 0; e && i < RTT_WARM + RTT_CALLS && !err; i++) {
		uint64_t t0 = now_ns();

		err = one_call(e, &got);
		if (i >= RTT_WARM)
			t[i - RTT_WARM] = now_ns() - t0;
	}
	if (e)
		curl_easy_cleanup(e);
	if (!e || err)
		return -1;
	qsort(t, RTT_CALLS, sizeof(t[0]), cmp_u64);
	*p50 = t[RTT_CALLS / 2] / 1e3;
	*p99 = t[RTT_CALLS * 99 / 100] / 1e3;
	return 0;
}

struct load {
	int port;
	uint64_t until;
	long calls, failed;
	char why[CURL_ERROR_SIZE];
	pthread_t th;
};

static void *load_run(void *arg)
{
	struct load *l = arg;
	size_t got;
	CURL *e = client(l->port, &got);

	if (e)
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, l->why);
	while (e && now_ns() < l->until) {
		if (one_call(e, &got))
			l->failed++;
		else
			l->calls++;
	}
	if (e)
		curl_easy_cleanup(e);
	else
		l->failed++;
	return NULL;
}

/* Part 2: calls per second from SESSIONS connections; -1 when one failed. */
static int load(int port, double *per_s)
{
	static struct load l[SESSIONS];
	uint64_t t0 = now_ns();
	long calls = 0, failed = 0;

	for (int i = 0; i < SESSIONS; i++) {
		l[i] = (struct load){ .port = port, .until = t0 + LOAD_MS * 1000000ull };
		pthread_create(&l[i].th, NULL, load_run, &l[i]);
	}
	for (int i = 0; i < SESSIONS; i++) {
		pthread_join(l[i].th, NULL);
		calls += l[i].calls;
		if (l[i].failed && !failed)
			fprintf(stderr, "bench/proxy: port %d: %ld calls failed: %s\n", port,
				l[i].failed, l[i].why[0] ? l[i].why : "not the server's answer");
		failed += l[i].failed;
	}
	*per_s = calls / ((now_ns() - t0) / 1e9);
	return failed ? -1 : 0;
}

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = strtol(line + 6, NULL, 10);
	if (f)
		fclose(f);
	return kib;
}

/*
 * Part 3: KiB per idle connection to port, served by pid, and its resident KiB with them all
 * open; -1 when it could not be seen.
 */
static int idle(int port, pid_t pid, double *kib, double *total)
{
	static int fds[IDLE_CONNS];
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	long before = rss_kib(pid), after;
	int n = 0;

	for (; n < IDLE_CONNS; n++) {
		fds[n] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[n] < 0 || connect(fds[n], (struct sockaddr *)&a, sizeof(a)))
			break;
	}
	usleep(500000); /* accepted, and whatever the server sets up for them */
	after = rss_kib(pid);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	if (fds[n < IDLE_CONNS ? n : 0] >= 0 && n < IDLE_CONNS)
		close(fds[n]);
	usleep(300000);
	if (n < IDLE_CONNS || before < 0 || after < 0)
		return -1;
	*kib = (double)(after - before) / IDLE_CONNS;
	*total = (double)after;
	return 0;
}

/* --- the targets --- */

static int start_nginx(int up, char *why, size_t size)
{
	char conf[300], log[300];
	char *argv[] = { NGINX, "-c", conf, "-p", dir, NULL };
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
	snprintf(log, sizeof(log), "%s/nginx.log", dir);
	f = fopen(conf, "w");
	if (!f) {
		snprintf(why, size, "%.200s: %s", conf, strerror(errno));
		return -1;
	}
	/* one process, as mcpfence proxy; keep-alive both ways; no buffering, no log per call */
	fprintf(f,
		"daemon off; master_process off; worker_processes 1; worker_rlimit_nofile 8192;\n"
		"error_log %s/nginx-error.log; pid %s/nginx.pid;\n"
		"events { worker_connections 4096; }\n"
		"http { access_log off; client_body_temp_path %s/nginx-tmp;\n"
		"  proxy_temp_path %s/nginx-tmp;\n"
		"  upstream up { server 127.0.0.1:%d; keepalive 128; }\n"
		"  server { listen 127.0.0.1:%d; location / { proxy_pass http://up;\n"
		"    proxy_http_version 1.1; proxy_set_header Connection \"\";\n"
		"    proxy_buffering off; } } }\n",
		dir, dir, dir, dir, up, ports[1]);
	fclose(f);
	pids[1] = fork();
	if (pids[1] == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(NGINX, argv);
		_exit(127);
	}
	if (pids[1] < 0) {
		snprintf(why, size, "fork: %s", strerror(errno));
		pids[1] = 0;
		return -1;
	}
	for (int i = 0; i < 100; i++) { /* nginx says nothing when ready: wait for its port */
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons(ports[1]),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int ok = fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof(a));

		if (fd >= 0)
			close(fd);
		if (ok)
			return 0;
		usleep(50000);
	}
	snprintf(why, size, "nginx did not listen on %d", ports[1]);
	return -1;
}

static int start_mcpfence(const char *bin, int up, char *why, size_t size)
{
	char listen[64], upstream[64], policy[300], audit[300], log[300];
	char *argv[] = { (char *)bin, "proxy", "--listen", listen, "--upstream", upstream,
			 "--policy",  policy,  "--audit",  audit,  NULL };
	FILE *f;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", ports[2]);
	snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", up);
	snprintf(policy, sizeof(policy), "%s/policy.json", dir);
	snprintf(audit, sizeof(audit), "%s/audit.jsonl", dir);
	snprintf(log, sizeof(log), "%s/mcpfence.log", dir);
	f = fopen(policy, "w");
	if (!f) {
		snprintf(why, size, "%.200s: %s", policy, strerror(errno));
		return -1;
	}
	fputs("{\"version\":\"1\",\"default\":\"deny\",\"tools\":{\"echo\":{}}}\n", f);
	fclose(f);
	setenv("MCPFENCE_RUNTIME_DIR", dir, 1);
	return bench_start(argv, log, "mcpfence: proxy: listening", 10000, &pids[2], NULL, why,
			   size);
}

static void stop_all(void)
{
	for (int i = 1; i < NTARGETS; i++)
		bench_child_stop(&pids[i], SIGTERM, 3000);
}

static void on_signal(int sig)
{
	stop_all();
	_exit(128 + sig);
}

static void row(const char *what, double v[NTARGETS][ROUNDS], const char *unit, bool ok[])
{
	double med[NTARGETS];

	printf("  %-34s", what);
	for (int t = 0; t < NTARGETS; t++) {
		double s[ROUNDS];

		memcpy(s, v[t], sizeof(s));
		qsort(s, ROUNDS, sizeof(s[0]), cmp_double);
		med[t] = s[ROUNDS / 2];
		if (ok[t])
			printf(" %s %.1f (%.1f-%.1f) %s;", names[t], med[t], s[0], s[ROUNDS - 1],
			       unit);
		else
			printf(" %s NOT MEASURED;", names[t]);
	}
	if (ok[0] && ok[1] && ok[2])
		printf(" mcpfence/nginx %.2f, mcpfence/direct %.2f", med[2] / med[1],
		       med[2] / med[0]);
	printf("\n");
}

int main(int argc, char **argv)
{
	static double p50[NTARGETS][ROUNDS], p99[NTARGETS][ROUNDS], rate[NTARGETS][ROUNDS],
		mem[NTARGETS][ROUNDS], rss[NTARGETS][ROUNDS];
	bool ok_rtt[NTARGETS] = { true, true, true }, ok_load[NTARGETS] = { true, true, true },
	     ok_mem[NTARGETS] = { false, true, true };
	const char *bin = argc > 1 ? argv[1] : getenv("MCPFENCE_BIN");
	struct rlimit nofile = { 16384, 16384 };
	struct MHD_Daemon *up;
	char why[700] = "";
	int up_port, fail = 0;

	if (!bin)
		bin = "build/mcpfence";
	if (access(bin, X_OK)) {
		printf("bench/proxy: NOT MEASURED: %s is not built (make)\n", bin);
		return 1;
	}
	if (access(NGINX, X_OK)) {
		printf("bench/proxy: NOT MEASURED: the baseline, %s, is not installed "
		       "(apt-get install nginx-light)\n",
		       NGINX);
		return 1;
	}
	setrlimit(RLIMIT_NOFILE, &nofile);
	if (!mkdtemp(dir)) {
		printf("bench/proxy: NOT MEASURED: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(call_json, sizeof(call_json),
		 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"echo\",\"arguments\":{\"message\":\"%.*s\"}}}",
		 200 - 88,
		 "a 200-byte call, padded out with these words, again and again, until "
		 "it is long enough to count as one");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	up_port = free_port();
	up = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)up_port,
			      NULL, NULL, serve, NULL, MHD_OPTION_CONNECTION_LIMIT, 8192u,
			      MHD_OPTION_END);
	ports[0] = up_port;
	ports[1] = free_port();
	ports[2] = free_port();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (!up || start_nginx(up_port, why, sizeof(why)) ||
	    start_mcpfence(bin, up_port, why, sizeof(why))) {
		printf("bench/proxy: NOT MEASURED: %s\n", up ? why : "the server did not start");
		stop_all();
		return 1;
	}
	printf("bench/proxy: a %zu-byte tools/call, answered with %zu bytes by a server in this "
	       "process; nginx %s (one process) and %s proxy (policy allows it, audit to a file); "
	       "%d rounds, the targets in turn\n",
	       strlen(call_json), sizeof(answer_json) - 1, NGINX, bin, ROUNDS);
	for (int r = 0; r < ROUNDS; r++)
		for (int t = 0; t < NTARGETS; t++) {
			if (rtt(ports[t], &p50[t][r], &p99[t][r]))
				ok_rtt[t] = false;
			if (load(ports[t], &rate[t][r]))
				ok_load[t] = false;
			if (t && idle(ports[t], pids[t], &mem[t][r], &rss[t][r]))
				ok_mem[t] = false;
		}
	stop_all();
	MHD_stop_daemon(up);
	printf("1. round trip, one keep-alive connection, %d calls a round:\n", RTT_CALLS);
	row("p50", p50, "µs", ok_rtt);
	row("p99", p99, "µs", ok_rtt);
	printf("2. %d sessions at once, %d ms a round:\n", SESSIONS, LOAD_MS);
	row("calls per second", rate, "/s", ok_load);
	printf("3. %d idle connections (the proxy's resident memory):\n", IDLE_CONNS);
	row("KiB per idle connection", mem, "KiB", ok_mem);
	row("resident, with them open", rss, "KiB", ok_mem);
	for (int t = 0; t < NTARGETS; t++)
		fail |= !ok_rtt[t] || !ok_load[t] || (t && !ok_mem[t]);
	if (fail)
		printf("bench/proxy: some rows NOT MEASURED (a target failed calls: see %s)\n",
		       dir);
	return fail;
}
