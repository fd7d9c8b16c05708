// SPDX-License-Identifier: Apache-2.0
/*
 * What the stdio of a running process is (user/stdio_find.c), on real processes: a child whose
 * stdin and stdout are socketpairs (as Node's libuv gives them), pipes (as Python's subprocess
 * does), /dev/null, closed; a child that started a grandchild sharing its stdio (npx, a shell);
 * a child in a network namespace of its own; a dead pid and a zombie. This process is the client:
 * it holds the other ends. And sock_diag answers as the kernel could send them, whole or not.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "log.h"
#include "stdio_find.h"

/* the child's descriptors besides its stdio: closing ctl lets it exit; ready says it is set up */
#define KID_CTL 20
#define KID_READY 21
#define NETNS_CLIENT_FD 7
#define KID_CLOSED (-2) /* in/out: the child has that descriptor closed */

enum kid_mode {
	KID_PLAIN = 0,
	KID_GRANDCHILD = 1, /* it starts (fork, exec sleep) a grandchild that shares its stdio */
	KID_NETNS = 2,	    /* a network namespace of its own, and a socketpair made there */
};

struct kid {
	pid_t pid;
	pid_t gpid; /* its grandchild, 0: none; < 0: -errno of what it could not set up */
	int ctl;
};

static void kid_wait_ctl(void)
{
	char c;
	ssize_t n;

	do
		n = read(KID_CTL, &c, 1);
	while (n > 0 || (n < 0 && errno == EINTR));
}

/* A grandchild dies with its parent (the child): no process outlives a test. */
static void grandchild_init(pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	close(KID_CTL);
}

static void kid_netns(void)
{
	pid_t self = getpid(), g;
	int sv[2];

	if (unshare(CLONE_NEWNET)) {
		g = -errno;
		if (write(KID_READY, &g, sizeof(g)) < 0)
			_exit(3);
		close(KID_READY);
		kid_wait_ctl();
		_exit(0);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		_exit(2);
	g = fork();
	if (g < 0)
		_exit(2);
	if (!g) { /* the client, in that namespace too */
		grandchild_init(self);
		if (dup2(sv[0], NETNS_CLIENT_FD) < 0)
			_exit(2);
		close(sv[0]);
		close(sv[1]);
		close(KID_READY);
		pause(); /* until the child dies: PR_SET_PDEATHSIG */
		_exit(0);
	}
	if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0)
		_exit(2);
	close(sv[0]);
	close(sv[1]);
	if (write(KID_READY, &g, sizeof(g)) < 0)
		_exit(3);
}

static void kid_main(enum kid_mode mode)
{
	pid_t self = getpid(), g = 0;

	if (mode == KID_NETNS) {
		kid_netns();
	} else {
		if (mode == KID_GRANDCHILD) {
			g = fork();
			if (g < 0)
				_exit(2);
			if (!g) {
				grandchild_init(self);
				execl("/bin/sleep", "sleep", "60", (char *)NULL);
				_exit(127);
			}
		}
		if (write(KID_READY, &g, sizeof(g)) < 0)
			_exit(3);
	}
	close(KID_READY);
	kid_wait_ctl();
	_exit(0);
}

/* Place fd on target in the child; KID_CLOSED closes target, -1 leaves it as inherited. */
static void kid_place(int fd, int target)
{
	if (fd == KID_CLOSED)
		close(target);
	else if (fd >= 0 && dup2(fd, target) < 0)
		_exit(2);
}

/* Start a child with in and out as its fd 0 and 1; back once it (and a grandchild) is set up. */
static void kid_start(struct kid *k, int in, int out, enum kid_mode mode)
{
	int ctl[2], ready[2];
	pid_t v;

	assert_true(in < KID_CTL && out < KID_CTL);
	assert_int_equal(pipe2(ctl, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	k->pid = fork();
	assert_true(k->pid >= 0);
	if (!k->pid) {
		kid_place(in, 0);
		kid_place(out, 1);
		/* out of the way first: either may be on the other's place */
		ctl[0] = fcntl(ctl[0], F_DUPFD, 100);
		ready[1] = fcntl(ready[1], F_DUPFD, 100);
		if (ctl[0] < 0 || ready[1] < 0 || dup2(ctl[0], KID_CTL) < 0 ||
		    dup2(ready[1], KID_READY) < 0 || fcntl(KID_READY, F_SETFD, FD_CLOEXEC))
			_exit(2);
		close_range(3, KID_CTL - 1, 0);
		close_range(KID_READY + 1, ~0u, 0);
		kid_main(mode);
	}
	close(ctl[0]);
	close(ready[1]);
	k->ctl = ctl[1];
	assert_int_equal(read(ready[0], &v, sizeof(v)), sizeof(v));
	k->gpid = v;
	while (read(ready[0], &v, sizeof(v)) > 0) /* EOF: the grandchild has exec'd too */
		;
	close(ready[0]);
}

static void kid_stop(struct kid *k)
{
	int status;

	/* while the child lives, its grandchild's pid cannot be another process's */
	if (k->gpid > 0)
		kill(k->gpid, SIGKILL);
	close(k->ctl);
	assert_int_equal(waitpid(k->pid, &status, 0), k->pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static uint64_t ino_of(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

/* Is (pid, fd) among the holders? fd < 0: any fd of pid. */
static bool holds(const struct stdio_holder *h, unsigned n, pid_t pid, int fd)
{
	for (unsigned i = 0; i < n; i++)
		if (h[i].pid == pid && (fd < 0 || h[i].fd == fd) && h[i].comm[0])
			return true;
	return false;
}

static void print_end(const char *what, const struct stdio_end *e)
{
	print_message("  %s: %s: %s\n", what, stdio_find__kind_name(e->kind), e->desc);
}

/* Runs under valgrind (its preload is mapped)? */
static bool under_valgrind(void)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "vgpreload") != NULL;
	fclose(f);
	return found;
}

/*
 * A copy of a descriptor of another process, or a skip with the reason when we may not (no
 * ptrace rights). Under valgrind 3.19 (Debian 12's), which has no wrapper for pidfd_open (434)
 * nor pidfd_getfd (438) and fails them with ENOSYS, what is checked is that take fails cleanly
 * (-ENOSYS, logged): the copy itself is checked by the unit and sanitizer tiers.
 */
#define TAKE_OR_SKIP(var, pid, fd)                                                          \
	do {                                                                                \
		var = stdio_find__take(pid, fd);                                            \
		if (var == -EPERM) {                                                        \
			print_message("SKIP: pidfd_getfd of pid %d: no ptrace rights (not " \
				      "root? Yama ptrace_scope > 1?)\n",                    \
				      (int)(pid));                                          \
			skip();                                                             \
		}                                                                           \
		assert_true(var >= 0);                                                      \
	} while (0)

/* libuv (Node) gives a child one socketpair for stdin, one for stdout. */
static void test_socketpairs(void **state)
{
	struct stdio_end in, out;
	char want[64];
	int a[2], b[2];
	uint64_t a_srv, b_srv;
	struct kid k;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	a_srv = ino_of(a[1]);
	b_srv = ino_of(b[1]);
	kid_start(&k, a[1], b[1], KID_PLAIN);
	close(a[1]);
	close(b[1]);
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	print_end("in", &in);
	print_end("out", &out);

	assert_int_equal(in.kind, STDIO_UNIX_STREAM);
	assert_int_equal(in.ino, a_srv);
	assert_int_equal(in.peer_ino, ino_of(a[0]));
	assert_true(holds(in.peers, in.npeers, getpid(), a[0]));
	assert_false(holds(in.peers, in.npeers, k.pid, -1));
	assert_true(holds(in.sharers, in.nsharers, k.pid, 0));
	assert_false(holds(in.sharers, in.nsharers, getpid(), -1));
	assert_int_equal(in.peer_cookie, stdio_find__cookie(a[0]));
	assert_true(in.cookie != 0 && in.cookie != in.peer_cookie);

	assert_int_equal(out.kind, STDIO_UNIX_STREAM);
	assert_int_equal(out.ino, b_srv);
	assert_int_equal(out.peer_ino, ino_of(b[0]));
	assert_true(holds(out.peers, out.npeers, getpid(), b[0]));
	assert_true(holds(out.sharers, out.nsharers, k.pid, 1));

	snprintf(want, sizeof(want), "unix socketpair, inode %llu;", (unsigned long long)a_srv);
	assert_non_null(strstr(in.desc, want));
	snprintf(want, sizeof(want), "held by pid %d (", (int)getpid());
	assert_non_null(strstr(in.desc, want));
	snprintf(want, sizeof(want), ") fd %d", a[0]);
	assert_non_null(strstr(in.desc, want));
	kid_stop(&k);
	close(a[0]);
	close(b[0]);
}

/* One socketpair for both (a client that hands the same socket as stdin and stdout). */
static void test_one_socket_both_ways(void **state)
{
	struct stdio_end in, out;
	int s[2];
	struct kid k;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s), 0);
	kid_start(&k, s[1], s[1], KID_PLAIN);
	close(s[1]);
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	print_end("in", &in);
	assert_int_equal(in.ino, out.ino);
	assert_int_equal(in.peer_ino, ino_of(s[0]));
	assert_int_equal(out.peer_ino, ino_of(s[0]));
	assert_true(holds(in.sharers, in.nsharers, k.pid, 0));
	assert_true(holds(in.sharers, in.nsharers, k.pid, 1));
	assert_true(holds(out.peers, out.npeers, getpid(), s[0]));
	kid_stop(&k);
	close(s[0]);
}

/* Python's subprocess (and most shells) give a child pipes. */
static void test_pipes(void **state)
{
	struct stdio_end in, out;
	char want[64];
	int pin[2], pout[2];
	struct kid k;

	assert_int_equal(pipe2(pin, O_CLOEXEC), 0);
	assert_int_equal(pipe2(pout, O_CLOEXEC), 0);
	kid_start(&k, pin[0], pout[1], KID_PLAIN);
	close(pin[0]);
	close(pout[1]);
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	print_end("in", &in);
	print_end("out", &out);

	assert_int_equal(in.kind, STDIO_PIPE);
	assert_int_equal(in.ino, ino_of(pin[1]));
	assert_int_equal(in.peer_ino, 0);
	assert_true(holds(in.peers, in.npeers, getpid(), pin[1]));
	assert_int_equal(in.npeers, 1);
	assert_true(holds(in.sharers, in.nsharers, k.pid, 0));
	assert_int_equal(in.nsharers, 1);

	assert_int_equal(out.kind, STDIO_PIPE);
	assert_int_equal(out.ino, ino_of(pout[0]));
	assert_true(holds(out.peers, out.npeers, getpid(), pout[0]));
	assert_int_equal(out.npeers, 1);
	assert_true(holds(out.sharers, out.nsharers, k.pid, 1));

	snprintf(want, sizeof(want), "pipe, inode %llu; written by pid %d (",
		 (unsigned long long)in.ino, (int)getpid());
	assert_non_null(strstr(in.desc, want));
	snprintf(want, sizeof(want), "; read by pid %d (", (int)getpid());
	assert_non_null(strstr(out.desc, want));

	/* the client closes its end: nobody writes any more */
	close(pin[1]);
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	assert_int_equal(in.npeers, 0);
	assert_non_null(strstr(in.desc, "no other process holds it open for writing"));
	kid_stop(&k);
	close(pout[0]);
}

/* A server run by npx or a shell: its child (exec'd) shares its stdio. */
static void test_grandchild_shares(void **state)
{
	struct stdio_end in, out;
	char want[64];
	int a[2], pout[2];
	struct kid k;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(pipe2(pout, O_CLOEXEC), 0);
	kid_start(&k, a[1], pout[1], KID_GRANDCHILD);
	close(a[1]);
	close(pout[1]);
	assert_true(k.gpid > 0);
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	print_end("in", &in);
	print_end("out", &out);

	assert_int_equal(in.kind, STDIO_UNIX_STREAM);
	assert_true(holds(in.sharers, in.nsharers, k.pid, 0));
	assert_true(holds(in.sharers, in.nsharers, k.gpid, 0));
	assert_true(holds(in.peers, in.npeers, getpid(), a[0]));
	assert_int_equal(in.npeers, 1);
	snprintf(want, sizeof(want), "; shared with pid %d (", (int)k.gpid);
	assert_non_null(strstr(in.desc, want));

	/* a pipe: the grandchild writes it as the server does, it is no reader (no peer) */
	assert_int_equal(out.kind, STDIO_PIPE);
	assert_true(holds(out.sharers, out.nsharers, k.pid, 1));
	assert_true(holds(out.sharers, out.nsharers, k.gpid, 1));
	assert_false(holds(out.peers, out.npeers, k.gpid, -1));
	assert_true(holds(out.peers, out.npeers, getpid(), pout[0]));
	kid_stop(&k);
	close(a[0]);
	close(pout[0]);
}

static void test_devnull_and_closed(void **state)
{
	struct stdio_end in, out;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	struct kid k;

	assert_true(null >= 0);
	kid_start(&k, null, KID_CLOSED, KID_PLAIN);
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	print_end("in", &in);
	print_end("out", &out);
	assert_int_equal(in.kind, STDIO_OTHER);
	assert_non_null(strstr(in.desc, "/dev/null"));
	assert_int_equal(in.npeers, 0);
	assert_int_equal(in.nsharers, 0);
	assert_int_equal(out.kind, STDIO_MISSING);
	assert_non_null(strstr(out.desc, "fd 1 is closed"));
	kid_stop(&k);
	close(null);
}

/* Sockets that are not a unix stream: a unix datagram socketpair, a UDP socket. */
static void test_other_sockets(void **state)
{
	struct stdio_end in, out;
	int d[2], udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct kid k;

	assert_true(udp >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, d), 0);
	kid_start(&k, d[1], udp, KID_PLAIN);
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	print_end("in", &in);
	print_end("out", &out);
	assert_int_equal(in.kind, STDIO_OTHER);
	assert_non_null(strstr(in.desc, "unix datagram socket"));
	assert_int_equal(out.kind, STDIO_OTHER);
	assert_int_equal(out.ino, ino_of(udp));
	assert_true(strstr(out.desc, "a socket (IPv4, datagram)") ||
		    strstr(out.desc, "does not list as unix"));
	kid_stop(&k);
	close(d[0]);
	close(d[1]);
	close(udp);
}

/* The client's end closed: the server's socket has no peer left to be held. */
static void test_peer_closed(void **state)
{
	struct stdio_end in, out;
	int a[2];
	struct kid k;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	kid_start(&k, a[1], a[1], KID_PLAIN);
	close(a[1]);
	close(a[0]);
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	print_end("in", &in);
	assert_int_equal(in.kind, STDIO_UNIX_STREAM);
	assert_int_equal(in.npeers, 0);
	assert_true(strstr(in.desc, "no client end") || strstr(in.desc, "held by no process"));
	kid_stop(&k);
}

/* A server in a container: its sockets are listed by sock_diag in its network namespace only. */
static void test_netns(void **state)
{
	struct stdio_end in, out;
	struct kid k;

	kid_start(&k, -1, -1, KID_NETNS);
	if (k.gpid < 0) {
		print_message("SKIP: unshare(CLONE_NEWNET): %s (needs root)\n", strerror(-k.gpid));
		k.gpid = 0;
		kid_stop(&k);
		skip();
	}
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	print_end("in", &in);
	assert_int_equal(in.kind, STDIO_UNIX_STREAM);
	assert_int_equal(in.ino, out.ino);
	assert_true(in.peer_ino != 0);
	assert_true(holds(in.peers, in.npeers, k.gpid, NETNS_CLIENT_FD));
	assert_true(holds(in.sharers, in.nsharers, k.pid, 0));
	assert_non_null(strstr(in.desc, "unix socketpair"));
	kid_stop(&k);
}

/* A thread that waits for its pipe to close. */
static void *thread_wait(void *arg)
{
	int *p = arg;
	char c;

	p[2] = gettid();
	if (write(p[3], "", 1) < 0)
		return NULL;
	while (read(p[0], &c, 1) > 0)
		;
	return NULL;
}

/* The id of a thread is not a process's: refused, with the process's pid to give instead. */
static void test_thread_id(void **state)
{
	struct stdio_end in, out;
	enum log_level saved = log_level;
	int p[4], r[2];
	pthread_t th;
	char c;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(pipe2(r, O_CLOEXEC), 0);
	p[3] = r[1];
	assert_int_equal(pthread_create(&th, NULL, thread_wait, p), 0);
	assert_int_equal(read(r[0], &c, 1), 1);
	log_level = LOG_LVL_NONE;
	assert_int_equal(stdio_find__server(p[2], &in, &out), -EINVAL);
	log_level = saved;
	close(p[1]);
	assert_int_equal(pthread_join(th, NULL), 0);
	close(p[0]);
	close(r[0]);
	close(r[1]);
}

/*
 * A process's fds together in the line; more holders than a list has room for: counted, and
 * the line cut with "...".
 */
static void test_many_holders(void **state)
{
	struct kid k, clients[STDIO_HOLDERS_MAX + 4];
	const unsigned nclients = sizeof(clients) / sizeof(clients[0]);
	struct stdio_end in, out;
	char want[64];
	int a[2], copy;
	size_t len;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	kid_start(&k, a[1], a[1], KID_PLAIN);
	close(a[1]);
	copy = fcntl(a[0], F_DUPFD_CLOEXEC, 0);
	assert_true(copy > a[0]);
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	print_end("in", &in);
	snprintf(want, sizeof(want), ") fds %d, %d", a[0],
		 copy); /* comm: memcheck under valgrind */
	assert_non_null(strstr(in.desc, want));
	close(copy);

	for (unsigned i = 0; i < nclients; i++)
		kid_start(&clients[i], a[0], -1, KID_PLAIN);
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	print_end("in", &in);
	assert_int_equal(in.npeers, STDIO_HOLDERS_MAX);
	assert_int_equal(in.peers_more, nclients + 1 - STDIO_HOLDERS_MAX);
	len = strlen(in.desc);
	assert_true(len < sizeof(in.desc));
	assert_string_equal(in.desc + len - 3, "...");
	for (unsigned i = 0; i < nclients; i++)
		kid_stop(&clients[i]);
	kid_stop(&k);
	close(a[0]);
}

/*
 * Run as nobody (from root): the processes of others cannot be read, and the line says so. The
 * process asks about itself, its stdin a pipe whose writer (this test, root) it cannot see.
 */
static void test_unreadable(void **state)
{
	bool root = !getuid(); /* else this test's process is readable: the writer is seen */
	int p[2], status;
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct stdio_end in, out;

		if (dup2(p[0], 0) < 0)
			_exit(2);
		if (root && (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)))
			_exit(3);
		prctl(PR_SET_DUMPABLE, 1);
		if (stdio_find__server(getpid(), &in, &out))
			_exit(4);
		print_message("  in: %s\n", in.desc);
		if (in.kind != STDIO_PIPE || !in.unreadable ||
		    !strstr(in.desc, "could not be read"))
			_exit(5);
		_exit(root && in.npeers ? 6 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	close(p[0]);
	close(p[1]);
}

static void test_dead_and_zombie(void **state)
{
	struct stdio_end in, out;
	siginfo_t si;
	pid_t pid;
	enum log_level saved = log_level;

	log_level = LOG_LVL_NONE;
	pid = fork();
	assert_true(pid >= 0);
	if (!pid)
		_exit(0);
	/* a zombie: exited, not reaped */
	assert_int_equal(waitid(P_PID, pid, &si, WEXITED | WNOWAIT), 0);
	assert_int_equal(stdio_find__server(pid, &in, &out), -ESRCH);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	/* gone */
	assert_int_equal(stdio_find__server(pid, &in, &out), -ESRCH);
	assert_int_equal(stdio_find__server(0, &in, &out), -EINVAL);
	assert_int_equal(stdio_find__server(-1, &in, &out), -EINVAL);
	log_level = saved;
}

static bool reading(pid_t pid, int fd, bool plain)
{
	pid_t tid;

	return stdio_find__readers(pid, fd, plain, &tid, 1) > 0;
}

/*
 * What attach asks before it restarts a read: a child blocked in read(2) of its fd 0 is seen
 * reading fd 0 (not fd 1), and not asleep on a socket's own queue (a pipe); stopped with
 * SIGSTOP, it is seen stopped; gone, it is neither.
 */
static void test_reading_and_stopped(void **state)
{
	char comm[16], mine[16];
	int p[2];
	pid_t pid;
	bool seen = false;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		char c;

		dup2(p[0], 0);
		_exit(read(0, &c, 1) == 1 ? 0 : 1);
	}
	for (int i = 0; i < 2000 && !seen; i++) {
		seen = reading(pid, 0, false);
		if (!seen)
			usleep(1000);
	}
	assert_true(seen);
	assert_false(reading(pid, 1, false));
	assert_false(reading(pid, 0, true));
	assert_false(stdio_find__stopped(pid, 0));
	stdio_find__comm(pid, comm);
	stdio_find__comm(getpid(), mine); /* a fork keeps the name (valgrind's, under valgrind) */
	assert_string_equal(comm, mine);
	assert_int_equal(kill(pid, SIGSTOP), 0);
	assert_true(stdio_find__stopped(pid, 2000));
	assert_int_equal(kill(pid, SIGCONT), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_false(reading(pid, 0, false));
	assert_false(stdio_find__stopped(pid, 10));
	stdio_find__comm(pid, comm);
	assert_string_equal(comm, "?");
	close(p[0]);
	close(p[1]);
}

/*
 * A child blocked in read(2) of a socket (in no map) sleeps on the socket's own queue: the reads
 * attach restarts. Its fd's flags say whether it blocks, as fcntl set them.
 */
static void test_plain_reader_and_flags(void **state)
{
	int a[2], flags;
	pid_t pid;
	bool seen = false;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		char c;

		dup2(a[1], 0);
		_exit(read(0, &c, 1) == 1 ? 0 : 1);
	}
	for (int i = 0; i < 2000 && !seen; i++) {
		seen = reading(pid, 0, true);
		if (!seen)
			usleep(1000);
	}
	assert_true(seen);
	flags = stdio_find__fd_flags(pid, 0);
	assert_true(flags >= 0);
	assert_int_equal(flags & O_NONBLOCK, 0);
	assert_int_equal(flags & O_ACCMODE, O_RDWR);
	/* the flags belong to the open file, which the child shares with a[1] here */
	assert_int_equal(fcntl(a[1], F_SETFL, O_NONBLOCK), 0);
	flags = stdio_find__fd_flags(pid, 0);
	assert_true(flags >= 0 && (flags & O_NONBLOCK));
	assert_int_equal(write(a[0], "x", 1), 1);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(stdio_find__fd_flags(pid, 0), -ENOENT);
	close(a[0]);
	close(a[1]);
}

/* Cookies: the same for two copies of one socket, as sock_diag reports it; none for a pipe. */
static void test_cookie(void **state)
{
	struct stdio_end in, out;
	enum log_level saved = log_level;
	int a[2], pout[2], copy;
	uint64_t c;
	struct kid k;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(pipe2(pout, O_CLOEXEC), 0);
	kid_start(&k, a[1], pout[1], KID_PLAIN);
	close(pout[1]);
	copy = dup(a[1]);
	assert_true(copy >= 0);
	c = stdio_find__cookie(a[1]);
	assert_true(c != 0);
	assert_int_equal(stdio_find__cookie(copy), c);
	assert_true(stdio_find__cookie(a[0]) != c);
	assert_int_equal(stdio_find__server(k.pid, &in, &out), 0);
	assert_int_equal(in.cookie, c);
	assert_int_equal(in.peer_cookie, stdio_find__cookie(a[0]));
	/* our copies of the server's end are holders like any other: sharers */
	assert_true(holds(in.sharers, in.nsharers, getpid(), a[1]));
	assert_true(holds(in.sharers, in.nsharers, getpid(), copy));

	log_level = LOG_LVL_NONE;
	errno = 0;
	assert_int_equal(stdio_find__cookie(pout[0]), 0);
	assert_int_equal(errno, ENOTSOCK);
	errno = 0;
	assert_int_equal(stdio_find__cookie(-1), 0);
	assert_int_equal(errno, EBADF);
	log_level = saved;
	kid_stop(&k);
	close(copy);
	close(a[0]);
	close(a[1]);
	close(pout[0]);
}

/* A copy of another process's descriptor works as the original: what it writes, we read. */
static void test_take(void **state)
{
	int a[2], pout[2], t = -1, t2 = -1, tp = -1;
	enum log_level saved = log_level;
	char buf[8] = "";
	pid_t dead;
	struct kid k;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(pipe2(pout, O_CLOEXEC), 0);
	kid_start(&k, a[1], pout[1], KID_PLAIN);
	close(a[1]);
	close(pout[1]);
	t = stdio_find__take(k.pid, 0);
	if (t == -ENOSYS && under_valgrind()) {
		print_message("pidfd_getfd: not emulated by valgrind: take failed cleanly "
			      "(-ENOSYS, logged); the copy is checked in the unit and san tiers\n");
		kid_stop(&k);
		close(a[0]);
		close(pout[0]);
		return;
	}
	if (t == -EPERM)
		TAKE_OR_SKIP(t, k.pid, 0);
	assert_true(t >= 0);
	assert_true(fcntl(t, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(write(t, "ping", 4), 4);
	assert_int_equal(read(a[0], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);

	t2 = stdio_find__take(k.pid, 0);
	assert_true(t2 >= 0);
	assert_true(stdio_find__cookie(t) != 0);
	assert_int_equal(stdio_find__cookie(t2), stdio_find__cookie(t));

	tp = stdio_find__take(k.pid, 1);
	assert_true(tp >= 0);
	assert_int_equal(write(tp, "pong", 4), 4);
	assert_int_equal(read(pout[0], buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "pong", 4);

	log_level = LOG_LVL_NONE;
	assert_int_equal(stdio_find__take(k.pid, 99), -EBADF);
	assert_int_equal(stdio_find__take(0, 0), -EINVAL);
	dead = fork();
	assert_true(dead >= 0);
	if (!dead)
		_exit(0);
	assert_int_equal(waitpid(dead, NULL, 0), dead);
	assert_int_equal(stdio_find__take(dead, 0), -ESRCH);
	log_level = saved;
	close(t);
	close(t2);
	close(tp);
	kid_stop(&k);
	close(a[0]);
	close(pout[0]);
}

/* ---- sock_diag answers, built by hand ---- */

struct nlbuf {
	char b[1024] __attribute__((aligned(8)));
	size_t len;
};

static struct nlmsghdr *nl_add(struct nlbuf *m, uint16_t type, uint32_t seq, const void *data,
			       size_t dlen)
{
	struct nlmsghdr *h = (void *)(m->b + m->len);

	assert_true(m->len + NLMSG_SPACE(dlen) <= sizeof(m->b));
	memset(h, 0, NLMSG_SPACE(dlen));
	h->nlmsg_len = NLMSG_LENGTH(dlen);
	h->nlmsg_type = type;
	h->nlmsg_seq = seq;
	memcpy(NLMSG_DATA(h), data, dlen);
	m->len += NLMSG_SPACE(dlen);
	return h;
}

/* An attribute at the end of h, the last message of m. */
static void nl_attr(struct nlbuf *m, struct nlmsghdr *h, uint16_t type, const void *data,
		    size_t dlen)
{
	struct rtattr *a = (void *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));

	assert_true((char *)a + RTA_SPACE(dlen) <= m->b + sizeof(m->b));
	memset(a, 0, RTA_SPACE(dlen));
	a->rta_type = type;
	a->rta_len = RTA_LENGTH(dlen);
	memcpy(RTA_DATA(a), data, dlen);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_SPACE(dlen); /* padded, as nla_put does */
	m->len = (size_t)((char *)a - m->b) + RTA_SPACE(dlen);
}

static struct nlmsghdr *nl_unix(struct nlbuf *m, uint32_t seq, uint32_t ino)
{
	struct unix_diag_msg u = { .udiag_family = AF_UNIX,
				   .udiag_type = SOCK_STREAM,
				   .udiag_state = 1,
				   .udiag_ino = ino,
				   .udiag_cookie = { 0x89abcdef, 0x01234567 } };

	return nl_add(m, SOCK_DIAG_BY_FAMILY, seq, &u, sizeof(u));
}

static void nl_error(struct nlbuf *m, uint32_t seq, int error)
{
	struct nlmsgerr e = { .error = error };

	nl_add(m, NLMSG_ERROR, seq, &e, sizeof(e));
}

static void test_diag_answers(void **state)
{
	struct stdio_diag d;
	struct nlbuf m = {};
	struct nlmsghdr *h;
	uint32_t peer = 4242, zero = 0;
	uint8_t shut = 3;
	const char abstract[] = "\0mcp\x01x", path[] = "/run/mcp.sock";

	/* a whole answer, after one to an older request and an acknowledgement */
	nl_unix(&m, 6, 77);
	nl_error(&m, 7, 0);
	h = nl_unix(&m, 7, 77);
	nl_attr(&m, h, UNIX_DIAG_PEER, &peer, sizeof(peer));
	nl_attr(&m, h, UNIX_DIAG_NAME, abstract, sizeof(abstract) - 1);
	nl_attr(&m, h, UNIX_DIAG_SHUTDOWN, &shut, 1);
	assert_int_equal(stdio_find__diag_answer(m.b, m.len, 7, 77, &d), 0);
	assert_int_equal(d.type, SOCK_STREAM);
	assert_int_equal(d.state, 1);
	assert_true(d.has_peer);
	assert_int_equal(d.peer, 4242);
	assert_int_equal(d.shutdown, 3);
	assert_true(d.cookie == 0x0123456789abcdefull);
	assert_string_equal(d.name, "@mcp?x");

	/* every length short of the whole: cut short, never read past */
	for (size_t len = 0; len < m.len; len++) {
		int err = stdio_find__diag_answer(m.b, len, 7, 77, &d);

		assert_true(err == -EBADMSG || err == -ENODATA);
	}
	/* none for this request */
	assert_int_equal(stdio_find__diag_answer(m.b, m.len, 8, 77, &d), -ENODATA);
	/* an answer about another socket */
	assert_int_equal(stdio_find__diag_answer(m.b, m.len, 7, 78, &d), -EBADMSG);

	/* a named socket whose peer was closed */
	memset(&m, 0, sizeof(m));
	h = nl_unix(&m, 1, 5);
	nl_attr(&m, h, UNIX_DIAG_NAME, path, sizeof(path) - 1);
	nl_attr(&m, h, UNIX_DIAG_PEER, &zero, sizeof(zero));
	assert_int_equal(stdio_find__diag_answer(m.b, m.len, 1, 5, &d), 0);
	assert_string_equal(d.name, "/run/mcp.sock");
	assert_true(d.has_peer);
	assert_int_equal(d.peer, 0);

	/* a peer attribute too short */
	memset(&m, 0, sizeof(m));
	h = nl_unix(&m, 1, 5);
	nl_attr(&m, h, UNIX_DIAG_PEER, &shut, 1);
	assert_int_equal(stdio_find__diag_answer(m.b, m.len, 1, 5, &d), -EBADMSG);

	/* the kernel's errors: no such socket, and another */
	memset(&m, 0, sizeof(m));
	nl_error(&m, 3, -ENOENT);
	assert_int_equal(stdio_find__diag_answer(m.b, m.len, 3, 5, &d), -ENOENT);
	memset(&m, 0, sizeof(m));
	nl_error(&m, 3, -EOPNOTSUPP);
	assert_int_equal(stdio_find__diag_answer(m.b, m.len, 3, 5, &d), -EOPNOTSUPP);

	/* lengths that lie: shorter than a header, longer than the datagram */
	memset(&m, 0, sizeof(m));
	h = nl_unix(&m, 1, 5);
	h->nlmsg_len = 8;
	assert_int_equal(stdio_find__diag_answer(m.b, m.len, 1, 5, &d), -EBADMSG);
	h->nlmsg_len = (uint32_t)m.len + 4;
	assert_int_equal(stdio_find__diag_answer(m.b, m.len, 1, 5, &d), -EBADMSG);
	/* a header alone: too short for a unix_diag_msg */
	h->nlmsg_len = NLMSG_HDRLEN;
	assert_int_equal(stdio_find__diag_answer(m.b, m.len, 1, 5, &d), -EBADMSG);
}

/* The children need fds 0-2 taken, or a pipe of ours would land there. */
static int group_setup(void **state)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			return -1;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socketpairs),
		cmocka_unit_test(test_one_socket_both_ways),
		cmocka_unit_test(test_pipes),
		cmocka_unit_test(test_grandchild_shares),
		cmocka_unit_test(test_devnull_and_closed),
		cmocka_unit_test(test_other_sockets),
		cmocka_unit_test(test_peer_closed),
		cmocka_unit_test(test_netns),
		cmocka_unit_test(test_dead_and_zombie),
		cmocka_unit_test(test_thread_id),
		cmocka_unit_test(test_many_holders),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_reading_and_stopped),
		cmocka_unit_test(test_plain_reader_and_flags),
		cmocka_unit_test(test_cookie),
		cmocka_unit_test(test_take),
		cmocka_unit_test(test_diag_answers),
	};

	return cmocka_run_group_tests_name("stdio_find", tests, group_setup, NULL);
}
