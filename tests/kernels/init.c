// SPDX-License-Identifier: Apache-2.0
/*
 * PID 1 of the kernel matrix's VMs (tests/kernels/run.sh): a static binary, alone in an
 * initramfs with mcpfence, its shared libraries and the C BPF tests. It mounts what a systemd
 * host mounts (cgroup v2 at /sys/fs/cgroup, pure, as Debian and Ubuntu do now), brings up the
 * loopback, then runs, each between two marker lines on the console that run.sh reads:
 *   @@ BEGIN NAME          what follows is NAME's output
 *   @@ END NAME rc=N s=T   its exit status (rc=timeout when it ran past its time), seconds
 * `mcpfence features` first, then every build/tests/bpf/test_* (test_attach among them: the
 * end-to-end check of `mcpfence attach`), and powers the VM off.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define ROOT "/mcpfence"
#define TEST_TIMEOUT_S 1200

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static void mnt(const char *type, const char *dir)
{
	mkdir(dir, 0755);
	if (mount(type, dir, type, 0, NULL))
		say("init: mount %s on %s: %s\n", type, dir, strerror(errno));
}

static void loopback_up(void)
{
	struct ifreq ifr = {};
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	strcpy(ifr.ifr_name, "lo");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		say("init: lo: %s\n", strerror(errno));
	} else {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
			say("init: lo up: %s\n", strerror(errno));
	}
	if (fd >= 0)
		close(fd);
}

static volatile sig_atomic_t alarmed;

/*
 * Load unix_diag where this kernel has it as a module (Debian's do): a real system loads it
 * when sock_diag first asks for AF_UNIX; here nothing would. Compressed modules are handed to
 * the kernel to decompress (MODULE_INIT_COMPRESSED_FILE, 5.17+).
 */
static void unix_diag_load(void)
{
	static const char *const names[] = { "unix_diag.ko", "unix_diag.ko.xz",
					     "unix_diag.ko.zst" };
	struct utsname u;
	char path[512];

	if (uname(&u))
		return;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int fd;

		snprintf(path, sizeof(path), "/lib/modules/%s/%s", u.release, names[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (syscall(SYS_finit_module, fd, "", i ? 4 /* MODULE_INIT_COMPRESSED_FILE */ : 0))
			say("init: %s: finit_module: %s\n", path, strerror(errno));
		else
			say("init: %s loaded\n", path);
		close(fd);
		return;
	}
}

static void on_alarm(int sig)
{
	alarmed = 1;
}

/* Run argv with its output on the console between the markers; its exit status, -1 on timeout. */
static int run(const char *name, char *const argv[])
{
	struct sigaction sa = { .sa_handler = on_alarm };
	time_t t0 = time(NULL);
	int st = 0, rc;
	pid_t pid, w;

	say("@@ BEGIN %s\n", name);
	pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		dup2(1, 2);
		execv(argv[0], argv);
		say("init: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	sigaction(SIGALRM, &sa, NULL);
	alarmed = 0;
	alarm(TEST_TIMEOUT_S);
	do
		w = waitpid(pid, &st, 0);
	while (w < 0 && errno == EINTR && !alarmed);
	alarm(0);
	if (w != pid) {
		kill(-pid, SIGKILL);
		waitpid(pid, &st, 0);
		say("\n@@ END %s rc=timeout s=%ld\n", name, (long)(time(NULL) - t0));
		return -1;
	}
	/* what the test left running in its process group */
	kill(-pid, SIGKILL);
	rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	say("\n@@ END %s rc=%d s=%ld\n", name, rc, (long)(time(NULL) - t0));
	return rc;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
	char *tests[64], path[512];
	struct dirent *d;
	int n = 0;
	DIR *dir;

	mnt("proc", "/proc");
	mnt("sysfs", "/sys");
	mnt("devtmpfs", "/dev");
	mnt("tmpfs", "/tmp");
	mnt("tmpfs", "/run");
	mnt("cgroup2", "/sys/fs/cgroup");
	mnt("bpf", "/sys/fs/bpf");
	mnt("tracefs", "/sys/kernel/tracing");
	mnt("securityfs", "/sys/kernel/security");
	loopback_up();
	unix_diag_load();
	setenv("PATH", "/bin:" ROOT "/build", 1);
	setenv("HOME", "/root", 1);
	setenv("MCPFENCE", ROOT "/build/mcpfence", 1);
	setenv("MCPF_TEST_DEBUG", "1", 1);    /* a verifier's refusal, in full, in the log */
	setenv("STDIO_RACE_ROUNDS", "64", 1); /* test_stdio's pipe race: TCG is slow */
	{
		/* KERNELS_ENV of run.sh: a K=V a line */
		FILE *f = fopen(ROOT "/env", "r");
		char kv[512];

		while (f && fgets(kv, sizeof(kv), f)) {
			char *eq = strchr(kv, '=');

			kv[strcspn(kv, "\n")] = 0;
			if (eq) {
				*eq = 0;
				setenv(kv, eq + 1, 1);
			}
		}
		if (f)
			fclose(f);
	}
	if (chdir(ROOT))
		say("init: %s: %s\n", ROOT, strerror(errno));
	{
		FILE *f = fopen("/proc/version", "r");
		char v[256] = "?";

		if (f) {
			if (!fgets(v, sizeof(v), f))
				v[0] = 0;
			fclose(f);
		}
		say("@@ KERNEL %s", v);
	}
	run("features", (char *const[]){ ROOT "/build/mcpfence", "features", NULL });
	dir = opendir(ROOT "/build/tests/bpf");
	while (dir && (d = readdir(dir)) && n < 64)
		if (!strncmp(d->d_name, "test_", 5))
			tests[n++] = strdup(d->d_name);
	if (dir)
		closedir(dir);
	qsort(tests, n, sizeof(tests[0]), cmp);
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), ROOT "/build/tests/bpf/%s", tests[i]);
		run(tests[i], (char *const[]){ path, NULL });
	}
	say("@@ DONE\n");
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}
