// SPDX-License-Identifier: Apache-2.0
/*
 * bench/daemon: what `mcpfence daemon` costs the rest of the host, in one run:
 *  1. exec-heavy work: fork, exec and reap a program that does nothing, in three shapes, with
 *     the daemon running and not:
 *     - stdin and stdout /dev/null: the finder's first test ends it (every exec of the host);
 *     - stdin and stdout pipes, a program no policy names: its name is looked up, no stop;
 *     - stdin and stdout pipes, a program a policy names (a copy of the same program under
 *       that name) that is no server: stopped, read from /proc by the daemon, continued;
 *  2. write-heavy work: 64 B write(2)s into a pipe drained by another thread;
 *  3. the daemon idle: its CPU time over IDLE_S seconds and its resident memory.
 * 1 and 2 also with the daemon over a directory that has a file naming a server by
 * "server_name" too, while a program that file may fit waits, never answering (a copy of
 * sleep): as long as one does, the reads and writes of every process run the naming
 * tracepoints.
 * The daemon is started and stopped for each round, rounds with and without it alternating, so
 * that the noise of a shared machine falls on both alike; rows give min-median-max over the
 * rounds, ratios are of the medians. A stdio round trip of a server the daemon enrolled, with
 * its baseline, is part 1 of bench/stdio_kernel (beside attach --pid's, which it costs).
 * Root only. What cannot be measured prints NOT MEASURED and why, exit 1.
 * Usage: build/bench/daemon [MCPFENCE]   (default $MCPFENCE_BIN, else the mcpfence of the
 * build this bench is in)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/limits.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "bench.h"
#include "mcpfence.h"

#define ROUNDS 5 /* with the daemon, and as many without, alternating */
#define EXECS 300
#define EXEC_WARM 20
#define WR_OPS 500000L
#define WR_SIZE 64
#define IDLE_S 5
#define DAEMON_WAIT_MS 60000

static char bin_path[PATH_MAX], tmp_dir[64], pdir[128], pdir_n[128], named[160], other[160],
	by_name[160], audit_path[160], daemon_log[160];
static pid_t daemon_pid;
static bool started_ever;

static void cleanup(void)
{
	static volatile sig_atomic_t done;
	char path[200];

	if (done)
		return;
	done = 1;
	bench_child_stop(&daemon_pid, SIGTERM, 5000);
	if (started_ever)
		bench_detach(bin_path);
	if (!tmp_dir[0])
		return;
	snprintf(path, sizeof(path), "%s/10-named.json", pdir);
	unlink(path);
	rmdir(pdir);
	snprintf(path, sizeof(path), "%s/10-named.json", pdir_n);
	unlink(path);
	snprintf(path, sizeof(path), "%s/20-by-name.json", pdir_n);
	unlink(path);
	rmdir(pdir_n);
	unlink(named);
	unlink(other);
	unlink(by_name);
	unlink(audit_path);
	unlink(daemon_log);
	rmdir(tmp_dir);
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	ssize_t n;
	int ret = in < 0 || out < 0 ? -1 : 0;

	while (!ret && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			ret = -1;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out))
		ret = -1;
	return ret;
}

/* NULL when it can run, else why not. */
static const char *preflight(int argc, char **argv)
{
	static char why[PATH_MAX + 64];
	const char *env = getenv("MCPFENCE_BIN");
	char self[PATH_MAX - 16], *slash;
	ssize_t n;
	FILE *f;

	if (geteuid())
		return "not root (the daemon loads BPF programs)";
	if (argc > 1)
		snprintf(bin_path, sizeof(bin_path), "%s", argv[1]);
	else if (env && *env)
		snprintf(bin_path, sizeof(bin_path), "%s", env);
	else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0)
			return "readlink /proc/self/exe failed";
		self[n] = 0;
		slash = strrchr(self, '/');
		if (slash)
			*slash = 0;
		snprintf(bin_path, sizeof(bin_path), "%s/../mcpfence", self);
	}
	if (access(bin_path, X_OK)) {
		snprintf(why, sizeof(why), "%s: %s", bin_path, strerror(errno));
		return why;
	}
	if (!access(MCPF_PIN_DIR, F_OK))
		return MCPF_PIN_DIR " exists: an attachment is in place (not this bench's)";
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/mcpfence-bench-daemon-XXXXXX");
	if (!mkdtemp(tmp_dir)) {
		tmp_dir[0] = 0;
		return "mkdtemp failed";
	}
	snprintf(pdir, sizeof(pdir), "%s/policies", tmp_dir);
	snprintf(pdir_n, sizeof(pdir_n), "%s/policies-by-name", tmp_dir);
	snprintf(named, sizeof(named), "%s/mcpf-bench-named", tmp_dir);
	snprintf(other, sizeof(other), "%s/mcpf-bench-other", tmp_dir);
	snprintf(by_name, sizeof(by_name), "%s/mcpf-bench-by-name", tmp_dir);
	snprintf(audit_path, sizeof(audit_path), "%s/audit.jsonl", tmp_dir);
	snprintf(daemon_log, sizeof(daemon_log), "%s/daemon.log", tmp_dir);
	if (mkdir(pdir, 0700) || mkdir(pdir_n, 0700) || copy_file("/bin/true", named) ||
	    copy_file("/bin/true", other) || copy_file("/bin/sleep", by_name))
		return "setting up the files failed";
	for (int i = 0; i < 3; i++) {
		snprintf(why, sizeof(why), "%s/%s", i == 0 ? pdir : pdir_n,
			 i == 2 ? "20-by-name.json" : "10-named.json");
		f = fopen(why, "w");
		if (!f)
			return "writing the policy failed";
		/* names the program, fits no command line it is run with: stopped, read, continued */
		if (i < 2)
			fprintf(f, "{\"version\":\"1\",\"default\":\"deny\",\"match\":{\"exe\":"
				   "\"*/mcpf-bench-named\",\"argv\":\"* --a-server\"}}\n");
		else /* names by its answer a program that waits, never answering */
			fprintf(f, "{\"version\":\"1\",\"default\":\"deny\",\"match\":{\"exe\":"
				   "\"*/mcpf-bench-by-name\",\"server_name\":\"bench\"}}\n");
		if (fclose(f))
			return "writing the policy failed";
	}
	return NULL;
}

/* The daemon over pdir, or (by_name) pdir_n. */
static int daemon_start(bool by_name, char *why, size_t size)
{
	/* --verbose: the line that says the waiting program is watched is a debug one */
	char *argv[] = { bin_path,  "daemon",	"--policy-dir", by_name ? pdir_n : pdir,
			 "--audit", audit_path, "--quiet",	by_name ? "--verbose" : NULL,
			 NULL };

	started_ever = true;
	return bench_start(argv, daemon_log, "daemon: finding ", DAEMON_WAIT_MS, &daemon_pid, NULL,
			   why, size);
}

static int daemon_stop(void)
{
	bench_child_stop(&daemon_pid, SIGTERM, 5000);
	bench_detach(bin_path);
	return access(MCPF_PIN_DIR, F_OK) ? 0 : -EBUSY;
}

/* ---- 1. exec ------------------------------------------------------------------------------ */

enum shape { SHAPE_NULL, SHAPE_PIPES, SHAPE_NAMED, NSHAPES };
#define NMODES 3 /* without the daemon, with it, with it and a file with "server_name" */
static const char *const shape_names[] = {
	"exec, stdin and stdout /dev/null",
	"exec, pipes, a program no policy names",
	"exec, pipes, a program a policy names (no server)",
};

/* The median µs of a fork, exec and reap of path with its stdin and stdout as shape says. */
static double exec_round(enum shape sh)
{
	static double v[EXECS];
	const char *path = sh == SHAPE_NAMED ? named : other;
	int n = 0;

	for (int i = 0; i < EXEC_WARM + EXECS; i++) {
		int in[2] = { -1, -1 }, out[2] = { -1, -1 };
		uint64_t t0;
		pid_t p;

		if (sh != SHAPE_NULL && (pipe(in) || pipe(out)))
			return -1;
		t0 = now_ns();
		p = fork();
		if (p == 0) {
			int nul = open("/dev/null", O_RDWR);

			dup2(sh == SHAPE_NULL ? nul : in[0], 0);
			dup2(sh == SHAPE_NULL ? nul : out[1], 1);
			execl(path, path, (char *)NULL);
			_exit(127);
		}
		if (p < 0)
			return -1;
		waitpid(p, NULL, 0);
		if (i >= EXEC_WARM)
			v[n++] = (now_ns() - t0) / 1000.0;
		for (int k = 0; k < 2; k++) {
			if (in[k] >= 0)
				close(in[k]);
			if (out[k] >= 0)
				close(out[k]);
		}
	}
	qsort(v, n, sizeof(v[0]), cmp_double);
	return v[n / 2];
}

/* ---- 2. writes ---------------------------------------------------------------------------- */

static void *drain_main(void *arg)
{
	char buf[65536];
	int fd = *(int *)arg;

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

/* ns per 64 B write(2) into a pipe another thread drains. */
static double write_round(void)
{
	char msg[WR_SIZE];
	int p[2];
	pthread_t t;
	uint64_t t0;

	memset(msg, 'x', sizeof(msg));
	if (pipe(p) || pthread_create(&t, NULL, drain_main, &p[0]))
		return -1;
	t0 = now_ns();
	for (long i = 0; i < WR_OPS; i++)
		if (write(p[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
			break;
	t0 = now_ns() - t0;
	close(p[1]);
	pthread_join(t, NULL);
	close(p[0]);
	return (double)t0 / WR_OPS;
}

/*
 * Start the copy of sleep the by-name file may fit, with pipes as stdin and stdout (kept in
 * fds), and wait until the daemon watches it for its first answer: its pid, or -1.
 */
static pid_t waiter_start(int fds[2])
{
	int in[2], out[2];
	char line[512];
	pid_t p;

	if (pipe(in) || pipe(out))
		return -1;
	p = fork();
	if (p == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execl(by_name, by_name, "600", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	fds[0] = in[1];
	fds[1] = out[0];
	for (int i = 0; p > 0 && i < 100; i++) {
		FILE *f = fopen(daemon_log, "r");
		bool seen = false;

		while (f && !seen && fgets(line, sizeof(line), f))
			seen = strstr(line, "may fit it by the name of its first answer") != NULL;
		if (f)
			fclose(f);
		if (seen)
			return p;
		usleep(50000);
	}
	if (p > 0) {
		kill(p, SIGKILL);
		waitpid(p, NULL, 0);
	}
	return -1;
}

/* ---- 3. idle -------------------------------------------------------------------------------- */

/* The daemon's CPU ticks (utime + stime) and its VmRSS in KiB. */
static int daemon_usage(uint64_t *ticks, long *rss_kb)
{
	char path[64], buf[4096], *p;
	unsigned long ut, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", daemon_pid);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f)) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	*ticks = ut + st;
	snprintf(path, sizeof(path), "/proc/%d/status", daemon_pid);
	f = fopen(path, "r");
	*rss_kb = -1;
	while (f && fgets(buf, sizeof(buf), f))
		if (!strncmp(buf, "VmRSS:", 6))
			*rss_kb = strtol(buf + 6, NULL, 10);
	if (f)
		fclose(f);
	return *rss_kb < 0 ? -1 : 0;
}

struct rng {
	double min, med, max;
};

static struct rng range(const double *v, int n)
{
	double s[ROUNDS];

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return (struct rng){ s[0], n & 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[n - 1] };
}

int main(int argc, char **argv)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	double ex[NMODES][NSHAPES][ROUNDS], wr[NMODES][ROUNDS], cpu_pct = -1;
	pid_t waiter = -1;
	int wfds[2];
	long rss_kb = -1;
	char why[512] = "";
	const char *pre;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	pre = preflight(argc, argv);
	if (pre) {
		printf("bench/daemon: NOT MEASURED: %s\n", pre);
		cleanup();
		return 1;
	}
	atexit(cleanup);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], on_signal);
	printf("bench/daemon: %s daemon --policy-dir %s (a file naming mcpf-bench-named; and %s, "
	       "with a file naming a server by server_name too, one waiting for its name); %d "
	       "rounds of each and %d without, alternating; %d execs a shape a round, %ld writes\n",
	       bin_path, pdir, pdir_n, ROUNDS, ROUNDS, EXECS, WR_OPS);
	for (int r = 0; r < ROUNDS && !why[0]; r++)
		for (int on = 0; on < NMODES && !why[0]; on++) {
			if (on && daemon_start(on == 2, why, sizeof(why)))
				break;
			if (on == 2 && (waiter = waiter_start(wfds)) < 0) {
				snprintf(why, sizeof(why), "the daemon did not watch %s", by_name);
				break;
			}
			for (int s = 0; s < NSHAPES; s++)
				ex[on][s][r] = exec_round(s);
			wr[on][r] = write_round();
			if (on == 1 && r == ROUNDS - 1) {
				uint64_t t0, t1;
				long hz = sysconf(_SC_CLK_TCK);

				if (!daemon_usage(&t0, &rss_kb)) {
					sleep(IDLE_S);
					if (!daemon_usage(&t1, &rss_kb))
						cpu_pct = 100.0 * (t1 - t0) / hz / IDLE_S;
				}
			}
			if (on == 2) {
				kill(waiter, SIGKILL);
				waitpid(waiter, NULL, 0);
				close(wfds[0]);
				close(wfds[1]);
			}
			if (on && daemon_stop())
				snprintf(why, sizeof(why), "the daemon left %s behind",
					 MCPF_PIN_DIR);
		}
	if (why[0]) {
		printf("bench/daemon: NOT MEASURED: %s\n", why);
		for (int s = 0; s < NSHAPES; s++)
			target_add(shape_names[s], 0, 1.02, "x", why);
		targets_print("bench/daemon: targets");
		return 1;
	}
	printf("%-52s %26s %26s %7s %26s %7s\n", "µs per exec (median of a round)",
	       "without: min-med-max", "with", "ratio", "with, one waits for its name", "ratio");
	for (int s = 0; s <= NSHAPES; s++) {
		const char *what =
			s < NSHAPES ? shape_names[s] : "ns per 64 B write(2) into a pipe";
		struct rng m[NMODES];
		char name[120];

		for (int on = 0; on < NMODES; on++)
			m[on] = range(s < NSHAPES ? ex[on][s] : wr[on], ROUNDS);
		printf("%-52s", what);
		for (int on = 0; on < NMODES; on++) {
			printf(" %8.1f %8.1f %8.1f", m[on].min, m[on].med, m[on].max);
			if (on)
				printf(" %7.3f", m[on].med / m[0].med);
		}
		printf("\n");
		if (s == SHAPE_NAMED) {
			printf("  (a named program waits for the daemon: +%.1f µs at the median)\n",
			       m[1].med - m[0].med);
			continue;
		}
		target_add(what, m[1].med / m[0].med, 1.02, "x", NULL);
		snprintf(name, sizeof(name), "%s, a server waits for its name", what);
		target_add(name, m[2].med / m[0].med, 1.02, "x", NULL);
	}
	printf("the daemon idle over %d s: %.2f%% of a CPU, %ld KiB resident\n", IDLE_S, cpu_pct,
	       rss_kb);
	ret = targets_print("bench/daemon: targets (with / without, medians)");
	cleanup();
	return ret;
}
