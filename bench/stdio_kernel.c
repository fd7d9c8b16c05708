// SPDX-License-Identifier: Apache-2.0
/*
 * bench/stdio_kernel: the cost of `mcpfence attach --pid` (bpf/stdio.bpf.h, bpf/stdio_pipe.bpf.h),
 * the real binary attached to stdio MCP servers this bench starts, in one run:
 *  1. tools/call round trips to a small C stdio server on socketpairs (AF_UNIX SOCK_STREAM, one
 *     for stdin and one for stdout, as Node's libuv spawns a child), not attached and attached:
 *     p50/p99; and the floor, the same sockets in a SOCKMAP of this bench's own whose verdict
 *     only passes (bpf/bench_floor.bpf.c): the kernel's path, under any program;
 *  2. BPF ns per client message in handle_stdio_skb, 200 B, 2 KB and 20 KB tools/call (each one
 *     write), from the run-time stats of the program pinned by attach: a round trip runs it on
 *     the call and on the answer, so the call's time is the round trip's less an answer's,
 *     measured alone (a call the server answers with many lines);
 *  3. what the pipe tracepoints cost processes that are not MCP at all: 64 B write(2)s into a
 *     pipe and into a socketpair, each drained by another thread, while a second server, on
 *     pipes, is watched, and while nothing is.
 *  0. (before them) how long attach takes to be ready: --pid alone, against --pid with --port.
 * Attached and not attached rounds alternate (each attached round is an attach of its own), so
 * that the noise of a shared machine falls on both alike; each row gives min-median-max over the
 * rounds, each ratio is of the medians. The client, its servers and the drain threads share one
 * CPU (a wakeup across CPUs of a VM costs tens of µs now and then); attach runs on any.
 * Root only. What cannot be measured (not root, no mcpfence, an attachment that is not ours, the
 * program not found, a round whose program did not run) prints NOT MEASURED and why, exit 1.
 * Usage: build/bench/stdio_kernel [MCPFENCE]   (default $MCPFENCE_BIN, else the mcpfence of the
 * build this bench is in); BENCH_PARTS=12 runs parts 1 and 2 only
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/limits.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bench.h"
#include "bench_floor.skel.h"
#include "kernel.h"
#include "mcpfence.h"

#define RTT_ROUNDS 7 /* part 1: rounds attached, and as many not, alternating */
#define RTT_CALLS 5000
#define RTT_WARM 500 /* first calls of each round, not timed */
#define RTT_SIZE 200
#define BPF_ROUNDS 7 /* part 2: batches of each size (and of replies alone), alternating */
#define BPF_CALLS 2000
#define BPF_WARM 200
#define FLOOD_LINES 2000 /* part 2: answer lines of a "flood" call: the reply's cost alone */
#define WR_ROUNDS 7	 /* part 3: rounds attached, and as many not, alternating */
#define WR_OPS 1000000L
#define WR_SIZE 64
#define REPLY_WAIT_MS 5000
#define ATTACH_WAIT_MS 60000
#define NAMED "mcpf-bench-srv" /* the name the daemon's policy gives its server */

static const char policy_json[] = "{\"version\":\"1\",\"default\":\"deny\",\"tools\":{"
				  "\"echo\":{},\"flood\":{},\"get-env\":{\"action\":\"deny\"}}}\n";

static int write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		s += n;
		len -= n;
	}
	return 0;
}

/* ---- the server -------------------------------------------------------------------------- */

/* The raw token after "key": in line (a number, or a string with its quotes); its length. */
static int json_token(const char *line, const char *key, const char **tok)
{
	const char *p = strstr(line, key);

	if (!p)
		return 0;
	p += strlen(key);
	*tok = p;
	if (*p == '"')
		return strchr(p + 1, '"') ? (int)(strchr(p + 1, '"') + 1 - p) : 0;
	return (int)strcspn(p, ",}");
}

/*
 * n-1 logging notifications, then the result: each line one write of about the size of the
 * result line, so that the cost of an answer alone can be measured.
 */
static void serve_flood(const char *id, int idn, long n)
{
	char out[256];
	int len;

	for (long i = 1; i < n; i++) {
		len = snprintf(out, sizeof(out),
			       "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\","
			       "\"params\":{\"level\":\"info\",\"data\":\"%07ld\"}}\n",
			       i);
		if (write_all(1, out, len))
			exit(1);
	}
	len = snprintf(out, sizeof(out),
		       "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"content\":[{\"type\":"
		       "\"text\",\"text\":\"%ld\"}]}}\n",
		       idn, id, n);
	if (write_all(1, out, len))
		exit(1);
}

/*
 * One line of the client: tools/call answered with a small result saying how long the call's
 * line was (the client checks it arrived whole), initialize and ping answered, notifications
 * not; any other method, or a line with a control byte (what BPF makes of a line it refuses),
 * gets an error.
 */
static void serve_line(char *line, size_t len)
{
	const char *id, *method, *name, *nfield;
	int idn = json_token(line, "\"id\":", &id), mn, nn;
	char out[512];
	int n;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20) {
			n = snprintf(out, sizeof(out),
				     "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
				     "\"message\":\"Parse error\"}}\n");
			write_all(1, out, n);
			return;
		}
	mn = json_token(line, "\"method\":", &method);
	if (!idn)
		return; /* a notification */
	nn = json_token(line, "\"name\":", &name);
	if (mn == 12 && !memcmp(method, "\"tools/call\"", 12) && nn == 7 &&
	    !memcmp(name, "\"flood\"", 7) && json_token(line, "\"n\":", &nfield)) {
		serve_flood(id, idn, strtol(nfield, NULL, 10));
		return;
	}
	if (mn == 12 && !memcmp(method, "\"tools/call\"", 12))
		n = snprintf(out, sizeof(out),
			     "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"content\":[{\"type\":"
			     "\"text\",\"text\":\"%zu\"}]}}\n",
			     idn, id, len + 1);
	else if (mn == 12 && !memcmp(method, "\"initialize\"", 12))
		n = snprintf(out, sizeof(out),
			     "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"protocolVersion\":"
			     "\"2025-06-18\",\"capabilities\":{\"tools\":{}},\"serverInfo\":{"
			     "\"name\":\"bench\",\"version\":\"1\"}}}\n",
			     idn, id);
	else if (mn == 6 && !memcmp(method, "\"ping\"", 6))
		n = snprintf(out, sizeof(out), "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{}}\n",
			     idn, id);
	else
		n = snprintf(out, sizeof(out),
			     "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"error\":{\"code\":-32601,"
			     "\"message\":\"Method not found\"}}\n",
			     idn, id);
	if (write_all(1, out, n))
		exit(1);
}

/*
 * The stdio server: newline-delimited JSON-RPC on fd 0, one write per answer on fd 1. It reads
 * as an event loop does (poll, then read), as Node's servers do: a read(2) that is already
 * blocked when attach puts the socket in stdio_socks waits on the socket's own queue, and never
 * returns the bytes the verdict program passes on (they go to the psock's queue).
 */
static int serve(void)
{
	static char buf[1 << 17];
	size_t len = 0;

	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		struct pollfd pfd = { .fd = 0, .events = POLLIN };
		ssize_t n = poll(&pfd, 1, -1) < 0 ? -1 : read(0, buf + len, sizeof(buf) - 1 - len);
		char *p = buf, *nl;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		len += n;
		while ((nl = memchr(p, '\n', buf + len - p))) {
			*nl = 0;
			serve_line(p, nl - p);
			p = nl + 1;
		}
		len = buf + len - p;
		memmove(buf, p, len);
		if (len == sizeof(buf) - 1)
			return 1;
	}
}

/* ---- the client --------------------------------------------------------------------------- */

struct conn {
	pid_t pid;
	int in, out; /* the client's ends: it writes to in, reads from out */
	size_t len, off;
	char buf[1 << 16];
};

static char self_path[PATH_MAX], bin_path[PATH_MAX], tmp_dir[64], policy_path[128], audit_path[128],
	attach_log[128];
/* part 1 under the daemon: its directory (a file naming the copy), the copy, its log */
static char pdir[128], pdir_file[160], named_path[128], daemon_log[128];
static struct conn srv_sock, srv_pipe, srv_named;
static pid_t attach_pid, daemon_pid;
static bool attached_ever;

/*
 * Start this binary as a server with its stdin and stdout on socketpairs (as libuv gives a
 * child) or pipes (as Python's subprocess does), on this process's CPU; killed when this process
 * dies.
 */
static int server_start(struct conn *c, bool pipes, const char *exe)
{
	int in[2], out[2];

	memset(c, 0, sizeof(*c));
	if (pipes ? pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) :
		    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) ||
			    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out))
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (!c->pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		execl(exe, exe, "--server", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->in = in[1];
	c->out = out[0];
	return 0;
}

/* One line from the server (its length, *line into c->buf), within REPLY_WAIT_MS; -1 else. */
static int conn_line(struct conn *c, char **line)
{
	for (;;) {
		char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);
		struct pollfd p = { .fd = c->out, .events = POLLIN };
		ssize_t n;

		if (nl) {
			*line = c->buf + c->off;
			c->off = nl + 1 - c->buf;
			return nl - *line;
		}
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
		if (c->len == sizeof(c->buf) || poll(&p, 1, REPLY_WAIT_MS) != 1)
			return -1;
		n = read(c->out, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n <= 0)
			return -1;
		c->len += n;
	}
}

#define CALL_ROOM 160 /* a call line's buffer: the size wanted, and this more */

/* A tools/call line of want bytes (newline included) calling tool, into buf. Its length. */
static size_t call_make(char *buf, size_t want, long id, const char *tool)
{
	int head = snprintf(buf, CALL_ROOM,
			    "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":"
			    "{\"name\":\"%s\",\"arguments\":{\"message\":\"",
			    id, tool);
	static const char tail[] = "\"}}}\n";
	size_t fill = want > head + sizeof(tail) ? want - head - (sizeof(tail) - 1) : 1;

	memset(buf + head, 'x', fill);
	memcpy(buf + head + fill, tail, sizeof(tail));
	return head + fill + sizeof(tail) - 1;
}

/* Does line answer id with a result (for a tools/call of len bytes: saying len)? */
static bool answer_ok(const char *line, int n, long id, size_t len)
{
	char want[96];
	int w = len ? snprintf(want, sizeof(want),
			       "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\":{\"content\":[{\"type\":"
			       "\"text\",\"text\":\"%zu\"}",
			       id, len) :
		      snprintf(want, sizeof(want), "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"result\"",
			       id);

	return n >= w && !memcmp(line, want, w);
}

/* One round trip of msg (len bytes) whose id is id: 0 and its time, or -1 (said why). */
static int round_trip(struct conn *c, const char *msg, size_t len, long id, uint64_t *ns)
{
	uint64_t t0 = now_ns();
	char *line;
	int n;

	if (write_all(c->in, msg, len) || (n = conn_line(c, &line)) < 0) {
		fprintf(stderr, "bench/stdio_kernel: call %ld: no answer: %s\n", id,
			strerror(errno ? errno : ETIMEDOUT));
		return -1;
	}
	*ns = now_ns() - t0;
	if (!answer_ok(line, n, id, len)) {
		fprintf(stderr, "bench/stdio_kernel: call %ld: answered %.*s\n", id,
			n > 200 ? 200 : n, line);
		return -1;
	}
	return 0;
}

/* initialize, notifications/initialized and a ping, as an MCP client starts a session. */
static int session_start(struct conn *c)
{
	static const char init[] =
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
		"\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{"
		"\"name\":\"bench\",\"version\":\"1\"}}}\n"
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
	static const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n";
	char *line;
	int n;

	if (write_all(c->in, init, strlen(init)) || (n = conn_line(c, &line)) < 0 ||
	    !answer_ok(line, n, 1, 0))
		return -1;
	if (write_all(c->in, ping, strlen(ping)) || (n = conn_line(c, &line)) < 0 ||
	    !answer_ok(line, n, 2, 0))
		return -1;
	return 0;
}

/* ---- attach and detach, and cleaning up on every path --------------------------------------- */

/*
 * attach stopped (SIGTERM: it detaches; then `mcpfence detach` for what it left), the servers
 * killed, the temporary files removed. At exit and on a signal: async-signal-safe.
 */
static void cleanup(void)
{
	static volatile sig_atomic_t done;

	if (done)
		return;
	done = 1;
	bench_child_stop(&attach_pid, SIGTERM, 5000);
	bench_child_stop(&daemon_pid, SIGTERM, 5000);
	if (attached_ever)
		bench_detach(bin_path);
	bench_child_stop(&srv_sock.pid, SIGKILL, 1000);
	bench_child_stop(&srv_pipe.pid, SIGKILL, 1000);
	bench_child_stop(&srv_named.pid, SIGKILL, 1000);
	if (tmp_dir[0]) {
		unlink(policy_path);
		unlink(audit_path);
		unlink(attach_log);
		unlink(daemon_log);
		unlink(named_path);
		unlink(pdir_file);
		rmdir(pdir);
		rmdir(tmp_dir);
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * `mcpfence attach --policy P --pid pid [--pid pid2] [--port port]` (pid2 0: none), on every
 * CPU, until its "watching" line: 0 and how long that took, or -1 with why.
 */
static int attach_start3(pid_t pid, pid_t pid2, const char *port, uint64_t *ready_ns, char *why,
			 size_t size)
{
	char pid_s[16], pid2_s[16];
	char *argv[14] = { bin_path, "attach",	"--policy", policy_path, "--pid",
			   pid_s,    "--audit", audit_path, "--quiet" };
	int n = 9;

	snprintf(pid_s, sizeof(pid_s), "%d", pid);
	snprintf(pid2_s, sizeof(pid2_s), "%d", pid2);
	if (pid2) {
		argv[n++] = "--pid";
		argv[n++] = pid2_s;
	}
	if (port) {
		argv[n++] = "--port";
		argv[n++] = (char *)port;
	}
	argv[n] = NULL;
	attached_ever = true;
	return bench_start(argv, attach_log, "watching ", ATTACH_WAIT_MS, &attach_pid, ready_ns,
			   why, size);
}

static int attach_start2(pid_t pid, pid_t pid2, uint64_t *ready_ns, char *why, size_t size)
{
	return attach_start3(pid, pid2, NULL, ready_ns, why, size);
}

static int attach_start(pid_t pid, uint64_t *ready_ns, char *why, size_t size)
{
	return attach_start2(pid, 0, ready_ns, why, size);
}

/* SIGTERM to attach (it detaches), then `mcpfence detach`: 0 once nothing is pinned. */
static int attach_stop(void)
{
	bench_child_stop(&attach_pid, SIGTERM, 5000);
	bench_detach(bin_path);
	return access(MCPF_PIN_DIR, F_OK) ? 0 : -EBUSY;
}

/* ---- what is measured ---------------------------------------------------------------------- */

/* min, median and max of n values (sorted in a copy). */
struct range {
	double min, med, max;
};

static struct range range_of(const double *v, int n)
{
	double s[64];
	struct range r = { 0, 0, 0 };

	if (n <= 0 || n > 64)
		return r;
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	r.min = s[0];
	r.med = n & 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	r.max = s[n - 1];
	return r;
}

/* A counter of the plane (tcp_counters, pinned by attach), summed over the CPUs; 0 if none. */
static uint64_t plane_counter(uint32_t key)
{
	int fd = bpf_obj_get(MCPF_PIN_DIR "/tcp_counters"), ncpu = libbpf_num_possible_cpus();
	uint64_t v[1024], sum = 0;

	if (fd < 0)
		return 0;
	if (ncpu > 0 && ncpu <= 1024 && !bpf_map_lookup_elem(fd, &key, v))
		for (int i = 0; i < ncpu; i++)
			sum += v[i];
	close(fd);
	return sum;
}

/* ---- 1. the round trip --------------------------------------------------------------------- */

/* p50 and p99 (µs) of RTT_CALLS round trips of RTT_SIZE-byte calls, after RTT_WARM untimed. */
static int rtt_round(struct conn *c, long *id, double *p50, double *p99)
{
	static uint64_t lat[RTT_CALLS];
	static char msg[RTT_SIZE + CALL_ROOM];

	for (int i = 0; i < RTT_WARM + RTT_CALLS; i++) {
		size_t len = call_make(msg, RTT_SIZE, ++*id, "echo");
		uint64_t ns;

		if (round_trip(c, msg, len, *id, &ns))
			return -1;
		if (i >= RTT_WARM)
			lat[i - RTT_WARM] = ns;
	}
	qsort(lat, RTT_CALLS, sizeof(lat[0]), cmp_u64);
	*p50 = lat[RTT_CALLS / 2] / 1e3;
	*p99 = lat[RTT_CALLS * 99 / 100] / 1e3;
	return 0;
}

/*
 * One round, attached (its own attach, checked to have judged every call, then detached) or not
 * (checked: nothing pinned). NULL, or why it measured nothing.
 */
/* ---- 0. attach's readiness ------------------------------------------------------------------ */

#define READY_ROUNDS 5
#define READY_PORT "9" /* discard: watched, and nothing of this bench connects to it */

/*
 * From exec to the "watching" line: `attach --pid` on the socketpair server, which verifies the
 * socketpairs' programs alone, against the same with --port, which verifies the TCP plane's too
 * (what every `attach --pid` verified before it loaded only what it uses). Alternating.
 */
static void ready_bench(void)
{
	double ms[2][READY_ROUNDS];
	struct range alone, every;
	static char why[300];

	for (int r = 0; r < 2 * READY_ROUNDS; r++) {
		uint64_t ns = 0;

		if (attach_start3(srv_sock.pid, 0, r & 1 ? READY_PORT : NULL, &ns, why,
				  sizeof(why)) ||
		    attach_stop()) {
			printf("bench/stdio_kernel: 0. attach ready: NOT MEASURED: %s\n",
			       why[0] ? why : "mcpfence detach left pins behind");
			attach_stop();
			return;
		}
		ms[r & 1][r / 2] = ns / 1e6;
	}
	alone = range_of(ms[0], READY_ROUNDS);
	every = range_of(ms[1], READY_ROUNDS);
	printf("bench/stdio_kernel: 0. attach, from exec to watching, socketpair server; %d rounds "
	       "each, alternating\n",
	       READY_ROUNDS);
	printf("  %-36s %6.0f ms (%.0f-%.0f)\n", "--pid (its own programs)", alone.med, alone.min,
	       alone.max);
	printf("  %-36s %6.0f ms (%.0f-%.0f)\n", "--pid --port " READY_PORT " (TCP's too)",
	       every.med, every.min, every.max);
	printf("  ratio of medians: %.2f\n", alone.med / every.med);
}

enum rtt_mode { RTT_NOT, RTT_ATTACH, RTT_DAEMON, RTT_FLOOR, RTT_MODES };

static struct bench_floor_bpf *floor_skel;

/*
 * The floor's round: the server's end of its stdin (taken with pidfd_getfd, as attach takes it)
 * and the client's end of its stdout into floor_socks, or (in false) out of it. 0 or -errno.
 */
static int floor_socks_set(bool in)
{
	int map = bpf_map__fd(floor_skel->maps.floor_socks), pidfd, fd, err = 0;
	uint32_t k0 = 0, k1 = 1;
	uint64_t v;

	if (!in) {
		if (bpf_map_delete_elem(map, &k0) || bpf_map_delete_elem(map, &k1))
			return -errno;
		return 0;
	}
	pidfd = (int)syscall(SYS_pidfd_open, srv_sock.pid, 0);
	fd = pidfd < 0 ? -1 : (int)syscall(SYS_pidfd_getfd, pidfd, 0, 0);
	if (fd < 0) {
		err = -errno;
	} else {
		v = (uint64_t)fd;
		if (bpf_map_update_elem(map, &k0, &v, BPF_ANY))
			err = -errno;
		v = (uint64_t)srv_sock.out;
		if (!err && bpf_map_update_elem(map, &k1, &v, BPF_ANY))
			err = -errno;
		close(fd);
	}
	if (pidfd >= 0)
		close(pidfd);
	return err;
}

/* The floor's program, loaded and attached once: 0, or -1 with why. */
static int floor_load(char *why, size_t size)
{
	int err;

	floor_skel = bench_floor_bpf__open_and_load();
	if (!floor_skel) {
		snprintf(why, size, "bench_floor: load: %s", strerror(errno));
		return -1;
	}
	err = bpf_prog_attach(bpf_program__fd(floor_skel->progs.floor_verdict),
			      bpf_map__fd(floor_skel->maps.floor_socks), BPF_SK_SKB_STREAM_VERDICT,
			      0);
	if (err) {
		snprintf(why, size, "bench_floor: attach: %s", strerror(errno));
		bench_floor_bpf__destroy(floor_skel);
		floor_skel = NULL;
		return -1;
	}
	return 0;
}

/*
 * `mcpfence daemon` over pdir: a new server started under NAMED is found at its exec and
 * enrolled; its session begun. 0, or -1 with why.
 */
static int daemon_round_start(uint64_t *ready_ns, char *why, size_t size)
{
	char *argv[] = { bin_path,  "daemon",	"--policy-dir", pdir,
			 "--audit", audit_path, "--quiet",	NULL };

	attached_ever = true;
	if (bench_start(argv, daemon_log, "daemon: finding", ATTACH_WAIT_MS, &daemon_pid, ready_ns,
			why, size))
		return -1;
	if (server_start(&srv_named, false, named_path) || session_start(&srv_named)) {
		snprintf(why, size, "%s under the daemon: no session", named_path);
		return -1;
	}
	return 0;
}

/* The daemon stopped (it leaves its attachment), detached, its server gone: 0, or -EBUSY. */
static int daemon_round_stop(void)
{
	bench_child_stop(&daemon_pid, SIGTERM, 5000);
	bench_detach(bin_path);
	bench_child_stop(&srv_named.pid, SIGKILL, 1000);
	if (srv_named.in > 0)
		close(srv_named.in);
	if (srv_named.out > 0)
		close(srv_named.out);
	memset(&srv_named, 0, sizeof(srv_named));
	return access(MCPF_PIN_DIR, F_OK) ? 0 : -EBUSY;
}

/*
 * One round: not attached (checked: nothing pinned), attached (its own attach, checked to have
 * judged every call, then detached), or under the daemon (its server started under NAMED while
 * the daemon runs, checked the same). NULL, or why it measured nothing.
 */
static const char *rtt_one(enum rtt_mode m, long *id, double *p50, double *p99, double *ready_ms)
{
	static char why[300];
	const char *bad = why;
	struct conn *c = m == RTT_DAEMON ? &srv_named : &srv_sock;
	uint64_t ready = 0, v0;

	if (m == RTT_NOT && !access(MCPF_PIN_DIR, F_OK))
		return MCPF_PIN_DIR " exists in a round meant not attached";
	if (m == RTT_ATTACH && attach_start(srv_sock.pid, &ready, why, sizeof(why)))
		goto out_stop;
	if (m == RTT_DAEMON && daemon_round_start(&ready, why, sizeof(why)))
		goto out_stop;
	if (m == RTT_FLOOR && floor_socks_set(true)) {
		snprintf(why, sizeof(why), "floor_socks: %s", strerror(errno));
		floor_socks_set(false);
		return why;
	}
	bad = NULL;
	if (m == RTT_ATTACH)
		*ready_ms = ready / 1e6;
	v0 = plane_counter(MCPF_CNT_STDIO_VALUES);
	if (rtt_round(c, id, p50, p99))
		bad = "a call was not answered as sent (above)";
	else if (m != RTT_NOT && m != RTT_FLOOR &&
		 plane_counter(MCPF_CNT_STDIO_VALUES) - v0 < RTT_WARM + RTT_CALLS)
		bad = "handle_stdio_skb did not judge every call of an attached round";
	if (m == RTT_FLOOR && floor_socks_set(false) && !bad)
		bad = "floor_socks: the sockets could not be taken out";
out_stop:
	if (m == RTT_ATTACH && attach_stop() && !bad)
		bad = "mcpfence detach left pins behind";
	if (m == RTT_DAEMON && daemon_round_stop() && !bad)
		bad = "mcpfence detach left the daemon's pins behind";
	return bad;
}

static void rtt_bench(void)
{
	static const char *const names[RTT_MODES] = { "not attached", "attached", "the daemon's",
						      "the floor" };
	double p50[RTT_MODES][RTT_ROUNDS], p99[RTT_MODES][RTT_ROUNDS], ready[RTT_ROUNDS];
	struct range r50[RTT_MODES], r99[RTT_MODES], rd;
	static char why[300];
	const char *bad = floor_load(why, sizeof(why)) ? why : NULL;
	long id = 100;

	for (int r = 0; r < RTT_MODES * RTT_ROUNDS && !bad; r++)
		bad = rtt_one(r % RTT_MODES, &id, &p50[r % RTT_MODES][r / RTT_MODES],
			      &p99[r % RTT_MODES][r / RTT_MODES], &ready[r / RTT_MODES]);
	if (bad) {
		printf("bench/stdio_kernel: 1. round trip: NOT MEASURED: %s\n", bad);
		target_add("1. stdio round trip p50, attached / not attached", 0, 1.02, "x", bad);
		target_add("1. stdio round trip p50, the daemon's server / not attached", 0, 1.02,
			   "x", bad);
		return;
	}
	for (int m = 0; m < RTT_MODES; m++) {
		r50[m] = range_of(p50[m], RTT_ROUNDS);
		r99[m] = range_of(p99[m], RTT_ROUNDS);
	}
	rd = range_of(ready, RTT_ROUNDS);
	printf("bench/stdio_kernel: 1. tools/call round trip, %d B call, ~80 B answer, C stdio server "
	       "on socketpairs; %d rounds each, alternating: not attached, attached (an attach "
	       "each), the daemon's (a daemon each, its server started under the name its "
	       "policy gives), and the floor (the same sockets in a SOCKMAP of this bench whose "
	       "verdict only passes: the kernel's path under any program); %d calls a round after "
	       "%d untimed\n",
	       RTT_SIZE, RTT_ROUNDS, RTT_CALLS, RTT_WARM);
	printf("  round trip, µs   p50 (min-max of rounds)   p99 (min-max of rounds)\n");
	for (int m = 0; m < RTT_MODES; m++)
		printf("  %-14s %7.2f (%6.2f-%-6.2f)       %7.2f (%6.2f-%-6.2f)\n", names[m],
		       r50[m].med, r50[m].min, r50[m].max, r99[m].med, r99[m].min, r99[m].max);
	for (int m = RTT_ATTACH; m < RTT_MODES; m++)
		printf("  ratio of medians %s/not: p50 %.3f (%+.2f µs), p99 %.3f (%+.2f µs)\n",
		       names[m], r50[m].med / r50[RTT_NOT].med, r50[m].med - r50[RTT_NOT].med,
		       r99[m].med / r99[RTT_NOT].med, r99[m].med - r99[RTT_NOT].med);
	printf("  of attach's p50 over not attached, the floor's share: %.2f of %.2f µs; the target "
	       "(1.02) allows %.2f µs\n",
	       r50[RTT_FLOOR].med - r50[RTT_NOT].med, r50[RTT_ATTACH].med - r50[RTT_NOT].med,
	       0.02 * r50[RTT_NOT].med);
	printf("  attach ready in %.0f ms (%.0f-%.0f)\n", rd.med, rd.min, rd.max);
	target_add("1. stdio round trip p50, attached / not attached",
		   r50[RTT_ATTACH].med / r50[RTT_NOT].med, 1.02, "x", NULL);
	target_add("1. stdio round trip p50, the daemon's server / not attached",
		   r50[RTT_DAEMON].med / r50[RTT_NOT].med, 1.02, "x", NULL);
	bench_floor_bpf__destroy(floor_skel);
	floor_skel = NULL;
}

/* ---- 2. BPF time per message --------------------------------------------------------------- */

static const size_t bpf_sizes[] = { 200, 2048, 20480 };
#define NSIZES (int)(sizeof(bpf_sizes) / sizeof(bpf_sizes[0]))
#define CASE_REPLY NSIZES /* the cases of a round: each size, then the answers alone */

/* BPF time and runs over BPF_CALLS round trips of size-byte calls, after BPF_WARM untimed. */
static int bpf_calls(int prog_fd, size_t size, long *id, uint64_t *ns, uint64_t *cnt)
{
	static char msg[20480 + CALL_ROOM];
	uint64_t ns0 = 0, c0 = 0, ns1 = 0, c1 = 0, t;

	for (int i = 0; i < BPF_WARM + BPF_CALLS; i++) {
		size_t len = call_make(msg, size, ++*id, "echo");

		if (i == BPF_WARM && prog_stats(prog_fd, &ns0, &c0))
			return -1;
		if (round_trip(&srv_sock, msg, len, *id, &t))
			return -1;
	}
	if (prog_stats(prog_fd, &ns1, &c1))
		return -1;
	*ns = ns1 - ns0;
	*cnt = c1 - c0;
	return 0;
}

/* BPF time and runs over the FLOOD_LINES answer lines of one "flood" call (and the call). */
static int bpf_replies(int prog_fd, long *id, uint64_t *ns, uint64_t *cnt)
{
	uint64_t ns0 = 0, c0 = 0, ns1 = 0, c1 = 0;
	char msg[256], *line = NULL;
	int len = snprintf(msg, sizeof(msg),
			   "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{"
			   "\"name\":\"flood\",\"arguments\":{\"n\":%d}}}\n",
			   ++*id, FLOOD_LINES),
	    n = 0;

	if (prog_stats(prog_fd, &ns0, &c0) || write_all(srv_sock.in, msg, len))
		return -1;
	for (int i = 0; i < FLOOD_LINES; i++)
		if ((n = conn_line(&srv_sock, &line)) < 0)
			return -1;
	if (!answer_ok(line, n, *id, FLOOD_LINES) || prog_stats(prog_fd, &ns1, &c1))
		return -1;
	*ns = ns1 - ns0;
	*cnt = c1 - c0;
	return 0;
}

/* Batches of every case, BPF_ROUNDS each, in turn (the order turns too). NULL or why not. */
static const char *bpf_rounds(int prog_fd, uint64_t ns[][BPF_ROUNDS], uint64_t cnt[][BPF_ROUNDS])
{
	long id = 1000000;

	for (int r = 0; r < BPF_ROUNDS; r++)
		for (int j = 0; j <= NSIZES; j++) {
			int k = (j + r) % (NSIZES + 1);
			int err = k == CASE_REPLY ?
					  bpf_replies(prog_fd, &id, &ns[k][r], &cnt[k][r]) :
					  bpf_calls(prog_fd, bpf_sizes[k], &id, &ns[k][r],
						    &cnt[k][r]);

			if (err)
				return "a batch failed (a call not answered as sent, or no stats)";
			if (!ns[k][r] ||
			    cnt[k][r] < (k == CASE_REPLY ? FLOOD_LINES : 2 * BPF_CALLS))
				return "handle_stdio_skb did not run on every message (or no run "
				       "time: BPF_ENABLE_STATS?)";
		}
	return NULL;
}

static void bpf_print(uint64_t ns[][BPF_ROUNDS], uint64_t cnt[][BPF_ROUNDS])
{
	double reply[BPF_ROUNDS], both[BPF_ROUNDS], call[BPF_ROUNDS], runs[BPF_ROUNDS];
	struct range rr, rb, rc, rn;
	char beyond[16] = "-";
	double call0 = 0;

	for (int r = 0; r < BPF_ROUNDS; r++)
		reply[r] = (double)ns[CASE_REPLY][r] / cnt[CASE_REPLY][r];
	rr = range_of(reply, BPF_ROUNDS);
	printf("bench/stdio_kernel: 2. BPF time in handle_stdio_skb (run-time stats: "
	       "BPF_ENABLE_STATS) per tools/call, each one write on the stdin socketpair; one "
	       "attach; %d batches of each, in turn, %d round trips a batch after %d untimed\n",
	       BPF_ROUNDS, BPF_CALLS, BPF_WARM);
	printf("  a round trip runs the program twice: on the call, and on the answer (the stdout "
	       "socketpair is in stdio_socks too). The call alone: the batch's time less %d "
	       "answers at the median time of an answer alone, %.0f ns (%.0f-%.0f), measured over "
	       "the %d answer lines (~95 B, one write each) the server writes for one call\n",
	       BPF_CALLS, rr.med, rr.min, rr.max, FLOOD_LINES);
	printf("  %-8s %8s %-17s %9s %-17s %9s %12s\n", "call", "both ns", "(min-max)", "call ns",
	       "(min-max)", "ns/KB", "ns/KB >200B");
	for (int k = 0; k < NSIZES; k++) {
		for (int r = 0; r < BPF_ROUNDS; r++) {
			both[r] = (double)ns[k][r] / BPF_CALLS;
			call[r] = both[r] - rr.med;
			runs[r] = (double)cnt[k][r] / BPF_CALLS;
		}
		rb = range_of(both, BPF_ROUNDS);
		rc = range_of(call, BPF_ROUNDS);
		rn = range_of(runs, BPF_ROUNDS);
		if (!k)
			call0 = rc.med;
		else
			snprintf(beyond, sizeof(beyond), "%.0f",
				 (rc.med - call0) / ((bpf_sizes[k] - bpf_sizes[0]) / 1024.0));
		printf("  %-8zu %8.0f (%6.0f-%-6.0f)  %9.0f (%6.0f-%-6.0f)  %9.0f %12s   runs/call "
		       "%.2f\n",
		       bpf_sizes[k], rb.med, rb.min, rb.max, rc.med, rc.min, rc.max,
		       rc.med / (bpf_sizes[k] / 1024.0), beyond, rn.med);
	}
	target_add("2. handle_stdio_skb ns per 200 B tools/call (the call alone)", call0, 1000,
		   "ns", NULL);
}

static void bpf_bench(void)
{
	static uint64_t ns[NSIZES + 1][BPF_ROUNDS], cnt[NSIZES + 1][BPF_ROUNDS];
	static char why[300];
	const char *bad = NULL;
	int prog_fd = -1, stats_fd = -1;
	uint64_t ready;

	if (attach_start(srv_sock.pid, &ready, why, sizeof(why))) {
		bad = why;
		goto out;
	}
	prog_fd = bpf_obj_get(KERNEL_PIN_STDIO_PROG);
	if (prog_fd < 0) {
		snprintf(why, sizeof(why), "%s: %s", KERNEL_PIN_STDIO_PROG, strerror(errno));
		bad = why;
		goto out;
	}
	/*
	 * Run-time stats held by an fd (BPF_ENABLE_STATS), not kernel.bpf_stats_enabled: they
	 * stop when it closes, on every path, and another process setting the sysctl back to 0
	 * meanwhile does not stop them.
	 */
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0) {
		snprintf(why, sizeof(why), "BPF_ENABLE_STATS: %s", strerror(errno));
		bad = why;
		goto out;
	}
	bad = bpf_rounds(prog_fd, ns, cnt);
out:
	if (stats_fd >= 0)
		close(stats_fd);
	if (prog_fd >= 0)
		close(prog_fd);
	if (attach_pid && attach_stop() && !bad)
		bad = "mcpfence detach left pins behind";
	if (bad) {
		printf("bench/stdio_kernel: 2. BPF time: NOT MEASURED: %s\n", bad);
		target_add("2. handle_stdio_skb ns per 200 B tools/call (the call alone)", 0, 1000,
			   "ns", bad);
		return;
	}
	bpf_print(ns, cnt);
}

/* ---- 3. the pipe tracepoints, seen from processes that are not MCP -------------------------- */

enum wr_case { WR_PIPE = 0, WR_SOCK = 1, WR_GETPPID = 2, WR_CASES = 3 };
static const char *const wr_names[] = { "write(2) 64 B to a pipe", "write(2) 64 B to a socketpair",
					"getppid(2) (no write)" };

static void *drain_main(void *arg)
{
	static char buf[1 << 16];
	int fd = (int)(long)arg;

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

/* ns per operation over WR_OPS of case wc (writes drained by a thread on this CPU); <0: failed */
static double wr_run(enum wr_case wc)
{
	char msg[WR_SIZE];
	int fds[2], err = 0;
	pthread_t th;
	uint64_t t0, t;

	memset(msg, 'x', sizeof(msg));
	if (wc == WR_GETPPID) {
		t0 = now_ns();
		for (long i = 0; i < WR_OPS; i++)
			syscall(SYS_getppid);
		return (double)(now_ns() - t0) / WR_OPS;
	}
	if (wc == WR_PIPE ? pipe2(fds, O_CLOEXEC) :
			    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds))
		return -1;
	if (pthread_create(&th, NULL, drain_main, (void *)(long)fds[0])) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	t0 = now_ns();
	for (long i = 0; i < WR_OPS && !err; i++)
		err = write(fds[1], msg, sizeof(msg)) != sizeof(msg);
	t = now_ns() - t0;
	close(fds[1]);
	pthread_join(th, NULL);
	close(fds[0]);
	return err ? -1 : (double)t / WR_OPS;
}

/*
 * One round, every case once (the order turns with the round), attached to the pipe server (its
 * tracepoints checked pinned) or not (checked: nothing pinned). NULL, or why it measured nothing.
 */
static const char *wr_one(int r, bool att, double v[][WR_ROUNDS])
{
	static char why[300];
	const char *bad = why;
	uint64_t ready;

	if (!att && !access(MCPF_PIN_DIR, F_OK))
		return MCPF_PIN_DIR " exists in a round meant not attached";
	if (att && attach_start2(srv_pipe.pid, srv_sock.pid, &ready, why, sizeof(why)))
		goto out_stop;
	bad = NULL;
	if (att && access(KERNEL_PIN_PIPE_LINKS "write", F_OK))
		bad = "attach --pid of a pipe server pinned no tracepoint link";
	if (att && access(KERNEL_PIN_GUARD, F_OK))
		bad = "attach --pid of a socketpair server pinned no guard link";
	for (int j = 0; j < WR_CASES && !bad; j++) {
		int k = (j + r) % WR_CASES;

		v[k][r / 2] = wr_run(k);
		if (v[k][r / 2] < 0)
			bad = "a write failed";
	}
out_stop:
	if (att && attach_stop() && !bad)
		bad = "mcpfence detach left pins behind";
	return bad;
}

/* The program of a pinned link (a tracepoint's): its fd, or -errno. */
static int link_prog_fd(const char *path)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	int lfd = bpf_obj_get(path), err = 0;

	if (lfd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(lfd, &info, &len))
		err = -errno;
	close(lfd);
	if (err)
		return err;
	lfd = bpf_prog_get_fd_by_id(info.prog_id);
	return lfd < 0 ? -errno : lfd;
}

/*
 * Where the time of an attached write goes: once more attached, with run-time stats, the BPF ns
 * of the enter and exit programs per pipe write (every write on the host runs them, so other
 * processes' writes meanwhile count too), and of the guard per socketpair read (every copy out
 * of an skb on the host runs it: TCP, UDP, AF_UNIX). NULL, or why not.
 */
static const char *wr_where(double *enter, double *exit_, double *runs, double *with_stats,
			    double *guard, double *guard_runs)
{
	static char why[300];
	const char *bad = NULL;
	uint64_t ready, ns0[3], c0[3], ns1[3], c1[3];
	int fd[3] = { -1, -1, -1 }, stats_fd = -1;

	if (attach_start2(srv_pipe.pid, srv_sock.pid, &ready, why, sizeof(why))) {
		bad = why;
		goto out;
	}
	fd[0] = link_prog_fd(KERNEL_PIN_PIPE_LINKS "write");
	fd[1] = link_prog_fd(KERNEL_PIN_PIPE_LINKS "write_exit");
	fd[2] = link_prog_fd(KERNEL_PIN_GUARD);
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (fd[0] < 0 || fd[1] < 0 || fd[2] < 0 || stats_fd < 0) {
		bad = "the tracepoints' programs or their run-time stats cannot be read";
		goto out;
	}
	if (prog_stats(fd[0], &ns0[0], &c0[0]) || prog_stats(fd[1], &ns0[1], &c0[1]) ||
	    (*with_stats = wr_run(WR_PIPE)) < 0 || prog_stats(fd[0], &ns1[0], &c1[0]) ||
	    prog_stats(fd[1], &ns1[1], &c1[1])) {
		bad = "a write, or the stats, failed";
		goto out;
	}
	if (c1[0] - c0[0] < WR_OPS || c1[1] - c0[1] < WR_OPS || ns1[0] == ns0[0]) {
		bad = "the tracepoints did not run on every write";
		goto out;
	}
	*enter = (double)(ns1[0] - ns0[0]) / (c1[0] - c0[0]);
	*exit_ = (double)(ns1[1] - ns0[1]) / (c1[1] - c0[1]);
	*runs = (double)(c1[0] - c0[0]) / WR_OPS;
	if (prog_stats(fd[2], &ns0[2], &c0[2]) || wr_run(WR_SOCK) < 0 ||
	    prog_stats(fd[2], &ns1[2], &c1[2])) {
		bad = "a socketpair write, or the guard's stats, failed";
		goto out;
	}
	if (c1[2] == c0[2]) {
		bad = "the guard did not run on the socketpair's reads";
		goto out;
	}
	*guard = (double)(ns1[2] - ns0[2]) / (c1[2] - c0[2]);
	*guard_runs = (double)(c1[2] - c0[2]) / WR_OPS;
out:
	if (stats_fd >= 0)
		close(stats_fd);
	for (int i = 0; i < 3; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	if (attach_stop() && !bad)
		bad = "mcpfence detach left pins behind";
	return bad;
}

static void wr_bench(void)
{
	static double v[2][WR_CASES][WR_ROUNDS];
	double enter = 0, exit_ = 0, runs = 0, with_stats = 0, guard = 0, guard_runs = 0;
	const char *bad = NULL, *where_bad;
	struct range n, a;
	char what[160];

	for (int r = 0; r < 2 * WR_ROUNDS && !bad; r++)
		bad = wr_one(r, r & 1, v[r & 1]);
	where_bad = bad ? bad : wr_where(&enter, &exit_, &runs, &with_stats, &guard, &guard_runs);
	printf("bench/stdio_kernel: 3. processes that are not MCP, while a server on pipes and one "
	       "on socketpairs are watched (attach --pid: 11 syscall tracepoints and the guard on "
	       "skb_copy_datagram_iovec) and while nothing is; %ld "
	       "operations a case, %d rounds attached (an attach each), %d not, alternating\n",
	       WR_OPS, WR_ROUNDS, WR_ROUNDS);
	if (bad)
		printf("  NOT MEASURED: %s\n", bad);
	else
		printf("  %-30s %9s %-15s %9s %-15s %7s %8s\n", "ns per operation", "not att.",
		       "(min-max)", "attached", "(min-max)", "ratio", "+ns");
	for (int k = 0; k < WR_CASES && !bad; k++) {
		n = range_of(v[0][k], WR_ROUNDS);
		a = range_of(v[1][k], WR_ROUNDS);
		printf("  %-30s %9.1f (%6.1f-%-6.1f) %9.1f (%6.1f-%-6.1f) %7.3f %+8.1f\n",
		       wr_names[k], n.med, n.min, n.max, a.med, a.min, a.max, a.med / n.med,
		       a.med - n.med);
		if (k == WR_GETPPID)
			continue;
		snprintf(what, sizeof(what), "3. %s, attached / not attached", wr_names[k]);
		target_add(what, a.med / n.med, 1.02, "x", NULL);
	}
	if (bad) {
		for (int k = 0; k < WR_GETPPID; k++) {
			snprintf(what, sizeof(what), "3. %s, attached / not attached", wr_names[k]);
			target_add(what, 0, 1.02, "x", bad);
		}
		return;
	}
	if (where_bad)
		printf("  where the time goes: NOT MEASURED: %s\n", where_bad);
	else
		printf("  where the time goes (attached once more, with run-time stats): BPF per "
		       "pipe write %.1f ns on sys_enter_write + %.1f ns on sys_exit_write (%.2f "
		       "runs a write: other processes' writes count too); %.1f ns a write with the "
		       "stats on; the guard %.1f ns per run on a socketpair's reads (%.2f runs a "
		       "write)\n",
		       enter, exit_, runs, with_stats, guard, guard_runs);
}

/* ---- main -------------------------------------------------------------------------------- */

/* The mcpfence to attach: argv[1], $MCPFENCE_BIN, or the one of this bench's build. */
static int bin_find(int argc, char **argv)
{
	const char *env = getenv("MCPFENCE_BIN");
	char *slash;
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);

	if (n <= 0)
		return -errno;
	self_path[n] = 0;
	if (argc > 1 || (env && *env)) {
		snprintf(bin_path, sizeof(bin_path), "%s", argc > 1 ? argv[1] : env);
	} else {
		snprintf(bin_path, sizeof(bin_path), "%s", self_path);
		for (int i = 0; i < 2 && (slash = strrchr(bin_path, '/')); i++)
			*slash = 0;
		if (strlen(bin_path) + sizeof("/mcpfence") > sizeof(bin_path))
			return -ENAMETOOLONG;
		strcat(bin_path, "/mcpfence");
	}
	return access(bin_path, X_OK) ? -errno : 0;
}

/* NULL when this machine can run the bench, else why not. */
static const char *preflight(int argc, char **argv)
{
	static char why[PATH_MAX + 64];
	int err;

	if (geteuid() != 0)
		return "needs root (mcpfence attach, BPF run-time stats)";
	err = bin_find(argc, argv);
	if (err) {
		snprintf(why, sizeof(why), "%s: %s (build it with make, or pass its path)",
			 bin_path[0] ? bin_path : "mcpfence", strerror(-err));
		return why;
	}
	switch (kernel__attachment()) {
	case KERNEL_ATTACHED_LIVE:
		return MCPF_PIN_DIR " holds the attachment of a running mcpfence attach (not ours)";
	case KERNEL_ATTACHED_STALE:
		bench_detach(bin_path); /* one a killed attach left: as the tests do */
		if (!access(MCPF_PIN_DIR, F_OK))
			return MCPF_PIN_DIR
				" holds a stale attachment mcpfence detach does not remove";
		printf("bench/stdio_kernel: removed a stale attachment in %s\n", MCPF_PIN_DIR);
		break;
	default:
		break;
	}
	return NULL;
}

/* A copy of the file from, executable, at to: 0 or -errno. */
static int file_copy(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC), out, err = 0;
	char buf[1 << 16];
	ssize_t n;

	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	if (out < 0) {
		err = -errno;
		close(in);
		return err;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write_all(out, buf, n)) {
			err = -EIO;
			break;
		}
	if (n < 0)
		err = -errno;
	close(in);
	if (close(out) && !err)
		err = -errno;
	return err;
}

/*
 * The policy file (echo and flood allowed), the audit file, attach's log; the daemon's directory
 * (the same policy for the servers named NAMED) and the copy of this binary under that name:
 * 0 or -errno.
 */
static int files_make(void)
{
	FILE *f;

	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/mcpfence-bench-XXXXXX");
	if (!mkdtemp(tmp_dir)) {
		tmp_dir[0] = 0;
		return -errno;
	}
	snprintf(policy_path, sizeof(policy_path), "%s/policy.json", tmp_dir);
	snprintf(audit_path, sizeof(audit_path), "%s/audit.jsonl", tmp_dir);
	snprintf(attach_log, sizeof(attach_log), "%s/attach.log", tmp_dir);
	snprintf(pdir, sizeof(pdir), "%s/policies", tmp_dir);
	snprintf(pdir_file, sizeof(pdir_file), "%s/10-bench.json", pdir);
	snprintf(named_path, sizeof(named_path), "%s/" NAMED, tmp_dir);
	snprintf(daemon_log, sizeof(daemon_log), "%s/daemon.log", tmp_dir);
	f = fopen(policy_path, "w");
	if (!f)
		return -errno;
	fputs(policy_json, f);
	if (fclose(f) || mkdir(pdir, 0700))
		return -errno;
	/* the same policy, for the servers named NAMED: the daemon's */
	f = fopen(pdir_file, "w");
	if (!f)
		return -errno;
	fprintf(f, "{\"match\":{\"exe\":\"*/" NAMED "\"},%s", policy_json + 1);
	if (fclose(f))
		return -errno;
	return file_copy(self_path, named_path);
}

/* BENCH_PARTS (e.g. "12"): only those parts; all of them when unset. */
static bool part_on(char part)
{
	const char *parts = getenv("BENCH_PARTS");

	return !parts || !*parts || strchr(parts, part);
}

int main(int argc, char **argv)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	const char *why;
	cpu_set_t one;
	int ret;

	if (argc > 1 && !strcmp(argv[1], "--server"))
		return serve();
	setvbuf(stdout, NULL, _IOLBF, 0);
	why = preflight(argc, argv);
	if (why) {
		printf("bench/stdio_kernel: NOT MEASURED: %s\n", why);
		return 1;
	}
	atexit(cleanup);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], on_signal);
	signal(SIGPIPE, SIG_IGN);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() >= 0 ? sched_getcpu() : 0, &one);
	if (files_make() || sched_setaffinity(0, sizeof(one), &one) ||
	    server_start(&srv_sock, false, self_path) || server_start(&srv_pipe, true, self_path) ||
	    session_start(&srv_sock) || session_start(&srv_pipe)) {
		printf("bench/stdio_kernel: NOT MEASURED: setting up: %s\n", strerror(errno));
		return 1;
	}
	printf("bench/stdio_kernel: %s attach --pid on servers %d (socketpairs) and %d (pipes), "
	       "policy %s",
	       bin_path, srv_sock.pid, srv_pipe.pid, policy_json);
	if (part_on('0'))
		ready_bench();
	if (part_on('1'))
		rtt_bench();
	if (part_on('2'))
		bpf_bench();
	if (part_on('3'))
		wr_bench();
	ret = targets_print("bench/stdio_kernel: targets");
	cleanup();
	return ret;
}
