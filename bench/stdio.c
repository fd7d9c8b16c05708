// SPDX-License-Identifier: Apache-2.0
/*
 * bench/stdio: tools/call round trips to a minimal stdio MCP server, direct and through
 * `mcpfence run` (allow-all policy, audit to a file), in one run: added µs at p50 and p99,
 * the ratio, pipelined calls per second through mcpfence, and mcpfence's peak RSS. Then the
 * same three (direct, relay, mcpfence) with the real SDK client and server-everything
 * (tests/e2e/bench_sdk.mjs; skipped, saying why, without node or the npm packages).
 * Usage: build/bench/stdio [MCPFENCE]   (default $MCPFENCE_BIN or build/mcpfence)
 * BENCH_AUDIT=FILE sends the audit log there instead of a file in a temporary directory.
 * BENCH_BASE=MCPFENCE also measures another build (an earlier commit) in the same rounds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#define SEQ_CALLS 20000
#define WARMUP 2000
#define PIPE_CALLS 200000

struct conn {
	pid_t pid;
	int in, out; /* we write to in, read from out */
	char buf[1 << 16];
	size_t len, off;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* The server: answers every request line with a small result, same id. */
static int serve(void)
{
	char *line = NULL, out[256];
	size_t cap = 0;
	ssize_t n;

	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	while ((n = getline(&line, &cap, stdin)) > 0) {
		char *id = strstr(line, "\"id\":"), *end;

		if (!id)
			continue;
		id += 5;
		end = id + strcspn(id, ",}");
		snprintf(
			out, sizeof(out),
			"{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"content\":[{\"type\":\"text\","
			"\"text\":\"ok\"}]}}\n",
			(int)(end - id), id);
		fputs(out, stdout);
		/* answer at once when nothing else is waiting, so that latency is real */
		if (stdin->_IO_read_ptr >= stdin->_IO_read_end)
			fflush(stdout);
	}
	free(line);
	return 0;
}

static int write_all(int fd, const char *s, size_t len)
{
	while (len) {
		ssize_t n = write(fd, s, len);

		if (n <= 0)
			return -1;
		s += n;
		len -= n;
	}
	return 0;
}

/*
 * A plain relay: starts the server and copies bytes both ways with poll(), nothing else. The
 * floor that any process in the middle costs on this machine (two more wake-ups per call).
 */
static int relay(char **argv)
{
	int in[2], out[2];
	char buf[1 << 16];
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		return 1;
	pid = fork();
	if (!pid) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	for (;;) {
		struct pollfd p[2] = { { .fd = 0, .events = POLLIN },
				       { .fd = out[0], .events = POLLIN } };
		ssize_t n;

		if (poll(p, 2, -1) < 0)
			return 1;
		if (p[0].revents) {
			n = read(0, buf, sizeof(buf));
			if (n <= 0 || write_all(in[1], buf, n))
				break;
		}
		if (p[1].revents) {
			n = read(out[0], buf, sizeof(buf));
			if (n <= 0 || write_all(1, buf, n))
				break;
		}
	}
	close(in[1]);
	waitpid(pid, NULL, 0);
	return 0;
}

static int start(struct conn *c, char **argv)
{
	int in[2], out[2];

	memset(c, 0, sizeof(*c));
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		return -errno;
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (!c->pid) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]), close(in[1]), close(out[0]), close(out[1]);
		execv(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->in = in[1];
	c->out = out[0];
	return 0;
}

static int stop(struct conn *c)
{
	int st = 0;

	close(c->in);
	close(c->out);
	waitpid(c->pid, &st, 0);
	return st;
}

/* Read one response line; 0 or -1. */
static int read_line(struct conn *c)
{
	for (;;) {
		char *nl = memchr(c->buf + c->off, '\n', c->len - c->off);
		ssize_t n;

		if (nl) {
			c->off = nl + 1 - c->buf;
			return 0;
		}
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
		if (c->len == sizeof(c->buf))
			return -1;
		n = read(c->out, c->buf + c->len, sizeof(c->buf) - c->len);
		if (n <= 0)
			return -1;
		c->len += n;
	}
}

static int call_line(char *buf, size_t size, long id)
{
	return snprintf(buf, size,
			"{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{"
			"\"name\":\"echo\",\"arguments\":{\"message\":\"hello\"}}}\n",
			id);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int round_trip(struct conn *c, long id, uint64_t *ns)
{
	char line[256];
	int n = call_line(line, sizeof(line), id);
	uint64_t t0 = now_ns();

	if (write_all(c->in, line, n) || read_line(c))
		return -1;
	*ns = now_ns() - t0;
	return 0;
}

/*
 * Sequential round trips to each target, taking turns call by call so that all see the same
 * machine (other load, CPU frequency): p50 and p99 in ns of each.
 */
#define TARGETS 4
static int latency(char **argvs[TARGETS], int targets, uint64_t p50[TARGETS], uint64_t p99[TARGETS])
{
	static uint64_t lat[TARGETS][SEQ_CALLS];
	struct conn c[TARGETS];
	int started = 0, err = -1;
	uint64_t ns;

	for (; started < targets; started++)
		if (start(&c[started], argvs[started]))
			goto out_stop;
	for (long i = 0; i < WARMUP + SEQ_CALLS; i++) {
		for (int t = 0; t < targets; t++) {
			if (round_trip(&c[t], i, &ns)) {
				fprintf(stderr, "bench: %s stopped answering at call %ld\n",
					argvs[t][0], i);
				goto out_stop;
			}
			if (i >= WARMUP)
				lat[t][i - WARMUP] = ns;
		}
	}
	for (int t = 0; t < targets; t++) {
		qsort(lat[t], SEQ_CALLS, sizeof(lat[t][0]), cmp_u64);
		p50[t] = lat[t][SEQ_CALLS / 2];
		p99[t] = lat[t][SEQ_CALLS * 99 / 100];
	}
	err = 0;
out_stop:
	while (started--)
		stop(&c[started]);
	return err;
}

struct writer {
	int fd;
	long n;
};

static void *write_calls(void *arg)
{
	struct writer *w = arg;
	char batch[1 << 16];
	size_t len = 0;

	for (long i = 0; i < w->n; i++) {
		len += call_line(batch + len, sizeof(batch) - len, i);
		if (len > sizeof(batch) - 256 || i == w->n - 1) {
			if (write_all(w->fd, batch, len))
				break;
			len = 0;
		}
	}
	return NULL;
}

static long peak_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Pipelined: a writer thread sends every call, we read every answer. Calls per second. */
static double pipelined(char **argv, long *rss_kb)
{
	struct conn c;
	struct writer w;
	pthread_t th;
	uint64_t t0;
	double secs;
	long got = 0;

	if (start(&c, argv))
		return -1;
	w.fd = c.in;
	w.n = PIPE_CALLS;
	t0 = now_ns();
	pthread_create(&th, NULL, write_calls, &w);
	while (got < PIPE_CALLS && !read_line(&c))
		got++;
	secs = (now_ns() - t0) / 1e9;
	pthread_join(th, NULL);
	if (rss_kb)
		*rss_kb = peak_rss_kb(c.pid);
	stop(&c);
	if (got < PIPE_CALLS) {
		fprintf(stderr, "bench: only %ld of %d pipelined calls were answered\n", got,
			PIPE_CALLS);
		return -1;
	}
	return got / secs;
}

/*
 * The same three, with the real SDK client and server-everything (tests/e2e/bench_sdk.mjs, next
 * to the npm packages it needs). Skipped, saying why, without node or the packages.
 */
static int sdk_bench(const char *self, const char *bin, const char *pfile, const char *afile)
{
	char root[4096], script[4200], fbin[4096];
	const char *node = access("/usr/bin/node", X_OK) ? NULL : "/usr/bin/node";
	char *cut;
	pid_t pid;
	int st;

	snprintf(root, sizeof(root), "%s", self);
	cut = strstr(root, "/build/bench/");
	if (!node || !cut || !realpath(bin, fbin)) {
		printf("  SDK + server-everything: skipped: %s\n",
		       !node ? "no /usr/bin/node" : "cannot find the source tree from this binary");
		return 0;
	}
	*cut = 0;
	snprintf(script, sizeof(script), "%s/tests/e2e/bench_sdk.mjs", root);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		execl(node, node, script, fbin, self, pfile, afile, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "bench: %s failed\n", script);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *bin = argc > 1 ? argv[1] : getenv("MCPFENCE_BIN");
	char self[4096], policy[] = "/tmp/mcpfence-bench-XXXXXX", pfile[64], afile[64];
	uint64_t p50[TARGETS], p99[TARGETS];
	double add50, add99;
	double drate, frate;
	long rss = -1;
	ssize_t n;
	FILE *f;

	if (argc > 1 && !strcmp(argv[1], "--server"))
		return serve();
	if (argc > 2 && !strcmp(argv[1], "--relay"))
		return relay(argv + 2);
	if (!bin)
		bin = "build/mcpfence";
	if (access(bin, X_OK)) {
		fprintf(stderr, "bench: %s: %s (build it with make, or pass its path)\n", bin,
			strerror(errno));
		return 1;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0 || !mkdtemp(policy))
		return 1;
	self[n] = 0;
	snprintf(pfile, sizeof(pfile), "%s/allow.json", policy);
	if (getenv("BENCH_AUDIT")) /* e.g. /dev/null, to see what the audit line costs */
		snprintf(afile, sizeof(afile), "%s", getenv("BENCH_AUDIT"));
	else
		snprintf(afile, sizeof(afile), "%s/audit.jsonl", policy);
	f = fopen(pfile, "w");
	if (!f)
		return 1;
	fputs("{\"version\": \"1\", \"default\": \"allow\"}\n", f);
	fclose(f);
	signal(SIGPIPE, SIG_IGN);

	char *direct[] = { self, "--server", NULL };
	char *fenced[] = { (char *)bin, "run", "--policy", pfile,      "--audit",
			   afile,	"--",  self,	   "--server", NULL };

	char *relayed[] = { self, "--relay", self, "--server", NULL };
	char *base[] = {
		getenv("BENCH_BASE"), "run", "--policy", pfile, "--audit", afile, "--", self,
		"--server",	      NULL
	};
	char **targets[TARGETS] = { direct, relayed, fenced, base };
	int ntargets = base[0] ? 4 : 3;

	if (latency(targets, ntargets, p50, p99))
		return 1;
	add50 = ((double)p50[2] - p50[0]) / 1e3;
	add99 = ((double)p99[2] - p99[0]) / 1e3;
	drate = pipelined(direct, NULL);
	frate = pipelined(fenced, &rss);
	if (drate < 0 || frate < 0)
		return 1;
	printf("stdio gateway: %d sequential tools/call round trips, %d pipelined; allow-all "
	       "policy, audit to %s\n",
	       SEQ_CALLS, PIPE_CALLS, afile);
	printf("  round trip   direct   p50 %6.1f µs  p99 %6.1f µs\n", p50[0] / 1e3, p99[0] / 1e3);
	printf("               relay    p50 %6.1f µs  p99 %6.1f µs   (a plain poll/read/write "
	       "relay, for comparison)\n",
	       p50[1] / 1e3, p99[1] / 1e3);
	printf("               mcpfence p50 %6.1f µs  p99 %6.1f µs\n", p50[2] / 1e3, p99[2] / 1e3);
	if (ntargets > 3)
		printf("               base     p50 %6.1f µs  p99 %6.1f µs   (%s)\n", p50[3] / 1e3,
		       p99[3] / 1e3, base[0]);
	printf("  over relay   p50 %6.1f µs  p99 %6.1f µs   (mcpfence's own cost; target p50 <= 5 µs: "
	       "%s)\n",
	       ((double)p50[2] - p50[1]) / 1e3, ((double)p99[2] - p99[1]) / 1e3,
	       (double)p50[2] - p50[1] <= 5000 ? "met" : "MISSED");
	printf("  added        p50 %6.1f µs  p99 %6.1f µs   (target p50 <= 50 µs: %s)\n", add50,
	       add99, add50 <= 50 ? "met" : "MISSED");
	printf("  ratio        p50 %.2fx  p99 %.2fx (mcpfence / direct)\n", (double)p50[2] / p50[0],
	       (double)p99[2] / p99[0]);
	printf("  pipelined    direct %.0f calls/s, mcpfence %.0f calls/s (1/%.1f; target >= 50000: "
	       "%s)\n",
	       drate, frate, drate / frate, frate >= 50000 ? "met" : "MISSED");
	printf("  mcpfence peak RSS %ld kB (target <= 10240 kB: %s)\n", rss,
	       rss >= 0 && rss <= 10240 ? "met" : "MISSED");
	if (sdk_bench(self, bin, pfile, afile))
		return 1;
	unlink(pfile);
	if (!getenv("BENCH_AUDIT")) /* only the file we made: never a path we were given */
		unlink(afile);
	rmdir(policy);
	return 0;
}
