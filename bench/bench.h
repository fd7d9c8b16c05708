/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the kernel benches share: the clock, sorting, a program's run statistics, and targets —
 * each a bound on a value or on a ratio to a baseline of the same run, printed together at the
 * end, met only when what it compares was measured.
 */
#ifndef MCPFENCE_BENCH_H
#define MCPFENCE_BENCH_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* run_time_ns and run_cnt of a program (counted while BPF_ENABLE_STATS is held). */
static inline int prog_stats(int fd, uint64_t *ns, uint64_t *cnt)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*ns = info.run_time_ns;
	*cnt = info.run_cnt;
	return 0;
}

/* Signal sig to *pid, reap it within ms (SIGKILL after), *pid 0. Async-signal-safe. */
static inline void bench_child_stop(pid_t *pid, int sig, int ms)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	pid_t r = 0;

	if (*pid <= 0)
		return;
	kill(*pid, sig);
	for (int i = 0; i < ms / 10 && (r = waitpid(*pid, NULL, WNOHANG)) == 0; i++)
		nanosleep(&tick, NULL);
	if (r == 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = 0;
}

/* `BIN detach`, its output dropped. Async-signal-safe. */
static inline void bench_detach(const char *bin)
{
	char *argv[] = { (char *)bin, "detach", NULL };
	pid_t p = fork();

	if (p == 0) {
		int null_fd = open("/dev/null", O_WRONLY);

		dup2(null_fd, 1);
		dup2(null_fd, 2);
		execv(bin, argv);
		_exit(127);
	}
	if (p > 0)
		waitpid(p, NULL, 0);
}

/* The last line of the file at path (a child's log), for a message. */
static inline void bench_last_line(const char *path, char *out, size_t size)
{
	char buf[4096], *nl;
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	while ((nl = strrchr(buf, '\n')) && !nl[1])
		*nl = 0;
	nl = strrchr(buf, '\n');
	nl = nl ? nl + 1 : buf;
	n = strnlen(nl, size - 1);
	memcpy(out, nl, n);
	out[n] = 0;
}

/* Does the file at path (a child's log) hold a line that begins with prefix? */
static inline bool bench_log_has(const char *path, const char *prefix)
{
	char buf[8192], want[128];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, 0) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	snprintf(want, sizeof(want), "\n%s", prefix);
	return !strncmp(buf, prefix, strlen(prefix)) || strstr(buf, want);
}

/*
 * Run argv (argv[0] the binary) on every CPU, its output into the file at log, until log has a
 * line that begins with ready (the command is in force from then on): 0, *pid and how long that
 * took in *ready_ns; or -1 and why (its last line when it exited, or the time out). The child
 * gets SIGTERM when this process dies.
 */
static inline int bench_start(char *const argv[], const char *log, const char *ready, int wait_ms,
			      pid_t *pid, uint64_t *ready_ns, char *why, size_t size)
{
	uint64_t t0 = now_ns();
	int log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (log_fd < 0) {
		snprintf(why, size, "%s: %s", log, strerror(errno));
		return -1;
	}
	*pid = fork();
	if (*pid == 0) {
		cpu_set_t all;

		memset(&all, 0xff, sizeof(all));
		sched_setaffinity(0, sizeof(all), &all);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(log_fd, 1);
		dup2(log_fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(log_fd);
	if (*pid < 0) {
		snprintf(why, size, "fork: %s", strerror(errno));
		*pid = 0;
		return -1;
	}
	while (!bench_log_has(log, ready)) {
		if (waitpid(*pid, NULL, WNOHANG) == *pid) {
			*pid = 0;
			bench_last_line(log, why, size);
			return -1;
		}
		if (now_ns() - t0 > (uint64_t)wait_ms * 1000000ull) {
			snprintf(why, size, "no \"%s\" line from %s in %d s", ready, argv[0],
				 wait_ms / 1000);
			return -1;
		}
		usleep(2000);
	}
	if (ready_ns)
		*ready_ns = now_ns() - t0;
	return 0;
}

struct target {
	char what[200];
	double value, limit; /* met: value <= limit */
	const char *unit;
	char invalid[200]; /* not measured, and why */
};
static struct target targets[24];
static int ntargets;

/* invalid: NULL when measured, else why it was not (the target then counts as not met). */
static inline void target_add(const char *what, double value, double limit, const char *unit,
			      const char *invalid)
{
	struct target *t;

	if (ntargets >= (int)(sizeof(targets) / sizeof(targets[0])))
		return;
	t = &targets[ntargets++];
	snprintf(t->what, sizeof(t->what), "%s", what);
	t->value = value;
	t->limit = limit;
	t->unit = unit;
	snprintf(t->invalid, sizeof(t->invalid), "%s", invalid ? invalid : "");
}

/* Prints every target under a title; 1 when one of them was not measured. */
static inline int targets_print(const char *title)
{
	int ret = 0;

	printf("%s\n", title);
	for (int i = 0; i < ntargets; i++) {
		const struct target *t = &targets[i];

		if (t->invalid[0]) {
			printf("  %-72s NOT MEASURED: %s\n", t->what, t->invalid);
			ret = 1;
			continue;
		}
		printf("  %-72s %8.3f %-6s <= %-8.3g %s\n", t->what, t->value, t->unit, t->limit,
		       t->value <= t->limit ? "met" : "MISSED");
	}
	return ret;
}

#endif
