// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence attach --pid` end to end on stdio servers, as a user runs it: the real binary in
 * front of a tiny stdio MCP server in C (a forked child of this test, reading its fd 0 in a
 * blocking loop), with this test as its client, and no node or python. Two transports, as real
 * clients make them: two AF_UNIX socketpairs (one per direction, as Node's libuv gives a child),
 * and pipes (Python's subprocess, Go, Rust).
 *
 * The server executes what it reads the way three real readers would, and logs each tools/call
 * it executes with the reader's name, so that what it ran is what is asserted:
 *  - node: lines end at '\n', each parsed whole (JSON.parse; the last of duplicate keys). It
 *    answers, as the SDK does: a result for a tools/call, -32601 "Method not found" for another
 *    method, nothing for a line it cannot parse. Batches are executed element by element.
 *  - py: the Python SDK's universal newlines: '\r', '\n' and "\r\n" end a line. It only logs.
 *  - go: Go's encoding/json Decoder over the stream: values whatever the lines, keys matched
 *    without regard to case ("NAME", "Params", "paramſ" with U+017F, the Kelvin sign), the last
 *    match wins; after an error it starts again after the next '\n'. It only logs.
 * The denied tool is "danger": no reader may ever log it while attached (but where documented:
 * --pipe-action audit, and after detach).
 *
 * Root only: skips with the reason otherwise (or without cgroup v2, which attach needs); programs
 * that do not load fail. A kernel without bpf_send_signal_task (before 6.13) runs the
 * --pipe-action kill tests as "attach refuses kill, saying why"; one without the BPF LSM, the
 * refuse tests as "attach (and the daemon) refuse it". test_pipe_refuse_daemon runs
 * `mcpfence daemon`, whose servers are this binary executed as `test_stdio --serve-stdio`.
 *
 *   flock /tmp/mcpfence-bpf.lock build/tests/bpf/test_stdio
 *   STDIO_TEST=test_pipe_race   one test (a cmocka glob)
 *   STDIO_RACE_ROUNDS=2048      rounds of the pipe race (768)
 *   STDIO_SP_RACE_S=60          seconds of the socketpair race (5)
 *   STDIO_KEEP=1                keep the directory of logs, server reads and audit lines
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/limits.h>
#include <linux/sockios.h>
#include <poll.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <jansson.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "mcpfence.h"
#include "cgroup.h"
#include "feature_probes.h"
#include "kernel.h"

#define ANSWER_MS 5000
/* attach verifies ~10^5 instructions: minutes under an emulated CPU (the kernel matrix's TCG) */
#define ATTACH_START_S 600
#define REASON "too dangerous to run"

struct env {
	char mcpfence[PATH_MAX];
	char dir[64]; /* policies, audit, server logs */
	char policy[128];
	char skip[512];
	char no_kill[256]; /* why --pipe-action kill cannot run here; "" it can */
	char no_lsm[512];  /* why --pipe-action refuse cannot run here; "" it can */
	char broken[2048]; /* a stale attachment that cannot be cleaned: every test fails */
	int nservers;	   /* servers started so far: their log names */
};

static struct env env;

#include "harness.h"

/* What the test is doing, for failure messages: set before each hostile step. */
static char step[512];

/*
 * Without bpf_send_signal_task (before 6.13) --pipe-action kill cannot stop a call: attach must
 * refuse it, saying why, rather than watch without stopping. That is what such a kernel tests.
 */
static void kill_refused(void);
#define KILL_OR_REFUSED()               \
	do {                            \
		if (env.no_kill[0]) {   \
			kill_refused(); \
			return;         \
		}                       \
	} while (0)

/* Without the BPF LSM, --pipe-action refuse: attach must refuse it, saying why. */
static void refuse_refused(void);
#define REFUSE_OR_REFUSED()               \
	do {                              \
		if (env.no_lsm[0]) {      \
			refuse_refused(); \
			return;           \
		}                         \
	} while (0)

static const char policy_json[] =
	"{\"version\":\"1\",\"default\":\"allow\",\"tools\":{\"danger\":{\"action\":\"deny\","
	"\"reason\":\"" REASON "\"}}}";

/* ---- the server: three readers over the bytes of its stdin -------------------------------- */

enum reader { R_NODE = 0, R_PY = 1, R_GO = 2, R_N = 3 };
static const char *const reader_names[R_N] = { "node", "py", "go" };

struct rbuf {
	char *d;
	size_t len, cap, scanned; /* scanned: bytes looked at for a line end already */
	bool parse;		  /* go: a line end came since the last attempt */
};

struct srv_state {
	int logfd, rawfd;
	unsigned slow_ms; /* sleep before each read (a slow server: the pipe fills) */
	struct rbuf r[R_N];
	struct rbuf answers; /* written once every reader has read what came */
};

static void rbuf_add(struct rbuf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->d = realloc(b->d, cap);
		if (!b->d)
			_exit(70);
		b->cap = cap;
	}
	memcpy(b->d + b->len, p, n);
	b->len += n;
}

static void rbuf_drop(struct rbuf *b, size_t n)
{
	memmove(b->d, b->d + n, b->len - n);
	b->len -= n;
	b->scanned = 0;
}

static void write_all_fd(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(71);
		p += w;
		n -= w;
	}
}

/* Go's key matching: ASCII case folded, U+017F (long s) as 's', U+212A (Kelvin) as 'k'. */
static bool go_fold_eq(const char *key, const char *want)
{
	const unsigned char *k = (const unsigned char *)key;

	for (; *want; want++) {
		unsigned char c;

		if (k[0] == 0xc5 && k[1] == 0xbf) {
			c = 's';
			k += 2;
		} else if (k[0] == 0xe2 && k[1] == 0x84 && k[2] == 0xaa) {
			c = 'k';
			k += 3;
		} else if (*k) {
			c = *k >= 'A' && *k <= 'Z' ? *k + 32 : *k;
			k++;
		} else {
			return false;
		}
		if (c != *want)
			return false;
	}
	return *k == 0;
}

/* A member as the reader reads it: exact (the last duplicate: jansson's), or Go's last match. */
static json_t *member(enum reader r, json_t *o, const char *key)
{
	const char *k;
	json_t *v, *found = NULL;

	if (!json_is_object(o))
		return NULL;
	if (r != R_GO)
		return json_object_get(o, key);
	json_object_foreach(o, k, v)
		if (go_fold_eq(k, key))
			found = v;
	return found;
}

static char *dump(json_t *v)
{
	return v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : strdup("null");
}

/* One message read by reader r: executed (logged), and answered by the node reader. */
static void srv_message(struct srv_state *s, enum reader r, json_t *m)
{
	json_t *method = member(r, m, "method"), *id = member(r, m, "id");
	char line[4096], *ids, *names;
	int n;

	if (!json_is_string(method))
		return; /* an answer, or not a message */
	ids = dump(id);
	if (!strcmp(json_string_value(method), "tools/call")) {
		names = dump(member(r, member(r, m, "params"), "name"));
		n = snprintf(line, sizeof(line), "%s\t%.2000s\t%.1000s\n", reader_names[r], names,
			     ids);
		write_all_fd(s->logfd, line, n < (int)sizeof(line) ? n : (int)sizeof(line) - 1);
		if (r == R_NODE && id) {
			n = snprintf(line, sizeof(line),
				     "{\"jsonrpc\":\"2.0\",\"id\":%.1000s,\"result\":{\"content\":"
				     "[{\"type\":\"text\",\"text\":\"ran %.1000s\"}]}}\n",
				     ids,
				     json_is_string(member(r, member(r, m, "params"), "name")) ?
					     json_string_value(
						     member(r, member(r, m, "params"), "name")) :
					     "?");
			rbuf_add(&s->answers, line,
				 n < (int)sizeof(line) ? n : (int)sizeof(line) - 1);
		}
		free(names);
	} else if (r == R_NODE && id) {
		/* as the SDK answers a method it does not know (the neutralized one) */
		n = snprintf(line, sizeof(line),
			     "{\"jsonrpc\":\"2.0\",\"id\":%.1000s,\"error\":{\"code\":-32601,"
			     "\"message\":\"Method not found\"}}\n",
			     ids);
		rbuf_add(&s->answers, line, n);
	}
	free(ids);
}

static void srv_value(struct srv_state *s, enum reader r, json_t *v)
{
	size_t i;
	json_t *e;

	if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			srv_message(s, r, e);
	} else {
		srv_message(s, r, v);
	}
}

/* node ('\n') and py ('\r', '\n'): each whole line parsed; what does not parse is ignored. */
static void srv_lines(struct srv_state *s, enum reader r)
{
	struct rbuf *b = &s->r[r];

	for (;;) {
		size_t i = b->scanned;
		json_t *v;

		while (i < b->len && b->d[i] != '\n' && (r != R_PY || b->d[i] != '\r'))
			i++;
		if (i >= b->len) {
			b->scanned = i;
			return;
		}
		v = json_loadb(b->d, i, 0, NULL);
		if (v) {
			srv_value(s, r, v);
			json_decref(v);
		}
		rbuf_drop(b, i + 1);
	}
}

/* go: values whatever the lines; an error skips to the next '\n' after it. */
static void srv_stream(struct srv_state *s)
{
	struct rbuf *b = &s->r[R_GO];
	size_t off = 0;

	if (!b->parse)
		return;
	b->parse = false;
	for (;;) {
		json_error_t e;
		json_t *v;

		while (off < b->len && strchr(" \t\r\n", b->d[off]) && b->d[off])
			off++;
		if (off >= b->len)
			break;
		v = json_loadb(b->d + off, b->len - off, JSON_DISABLE_EOF_CHECK, &e);
		if (v) {
			srv_value(s, R_GO, v);
			json_decref(v);
			off += e.position;
			continue;
		}
		if (json_error_code(&e) == json_error_premature_end_of_input)
			break; /* the rest comes later */
		off += e.position > 0 ? e.position - 1 : 0;
		while (off < b->len && b->d[off] != '\n')
			off++;
		if (off >= b->len)
			break;
		off++;
	}
	rbuf_drop(b, off);
}

static void srv_feed(struct srv_state *s, const char *p, size_t n)
{
	write_all_fd(s->rawfd, p, n);
	for (int r = 0; r < R_N; r++)
		rbuf_add(&s->r[r], p, n);
	if (memchr(p, '\n', n))
		s->r[R_GO].parse = true;
	srv_lines(s, R_NODE);
	srv_lines(s, R_PY);
	srv_stream(s);
	/* the log is whole before the client reads an answer */
	write_all_fd(1, s->answers.d, s->answers.len);
	s->answers.len = 0;
}

/* How much the next servers read at a time (a busy reader reads little and often). */
static size_t srv_read_size = 1 << 16;
/*
 * The next servers read as event-loop servers (Node, asyncio) do: non-blocking, after poll. A
 * blocking reader meets a race of the kernel's AF_UNIX sockmap path (README; test_sp_race_*) that
 * can leave it asleep on a queue nothing fills: the tests of what is judged use this one, the
 * tests of blocking readers set it to 0.
 */
static int srv_nonblock = 1;
/* A non-blocking reader of the next servers tries again at once, without poll() (a spin). */
static int srv_spin;

/*
 * Before each read, an event-loop server of the judging tests waits (up to 100 ms) until no
 * bytes sit on its socket's plain queue (SIOCINQ counts sk_receive_queue, not the psock's): bytes
 * there while attached are in the kernel's race window (test_sp_race_*), which the verdict closes
 * within the writer's sendmsg. So the race, which the race tests meet on purpose, does not end
 * the sessions of the tests of what is judged. Unattached, the bytes stay there: it reads them
 * after the 100 ms.
 */
static void srv_wait_verdict(void)
{
	int inq = 0;

	for (int i = 0; i < 500 && !ioctl(0, SIOCINQ, &inq) && inq > 0; i++)
		usleep(200);
}

/* The child: stdin and stdout are set; reads until EOF. */
static void __attribute__((noreturn)) srv_main(const char *log, const char *raw, unsigned slow_ms)
{
	static char buf[1 << 16];
	struct srv_state s = { .slow_ms = slow_ms };
	int eagain = 0;

	signal(SIGPIPE, SIG_IGN);
	s.logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	s.rawfd = open(raw, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (s.logfd < 0 || s.rawfd < 0)
		_exit(72);
	if (srv_nonblock && fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK))
		_exit(73);
	for (;;) {
		ssize_t n;

		if (s.slow_ms)
			usleep(s.slow_ms * 1000);
		if (srv_nonblock && !srv_spin)
			srv_wait_verdict();
		n = read(0, buf, srv_read_size < sizeof(buf) ? srv_read_size : sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/*
			 * A blocking read of a socket in a SOCKMAP can return EAGAIN: woken, it finds
			 * no bytes in the psock's queues (unix_bpf_recvmsg), as when the client closes
			 * its end. Recorded (the tests report it: at the stream's end, or in its
			 * middle), then waited for, as a careful server would.
			 */
			struct pollfd p = { .fd = 0, .events = POLLIN };

			eagain += !srv_nonblock; /* a non-blocking reader expects it */
			if (!srv_spin)
				poll(&p, 1, -1);
			continue;
		}
		if (eagain && n >= 0) {
			const char *e = n ? "eagain\tmid\t-\n" : "eagain\tend\t-\n";

			write_all_fd(s.logfd, e, strlen(e));
		}
		eagain = 0;
		if (n < 0)
			_exit(100 + errno); /* a read error: the test says which */
		if (n == 0)
			break;
		srv_feed(&s, buf, n);
	}
	/* EOF: what the go reader still holds is read as the stream's end */
	s.r[R_GO].parse = true;
	srv_stream(&s);
	_exit(0);
}

/* ---- the client side ------------------------------------------------------------------------ */

enum transport { T_SOCKETPAIR, T_PIPE };

struct server {
	pid_t pid;
	enum transport t;
	int in;	 /* the client's end of the server's stdin */
	int out; /* the client's end of the server's stdout */
	char log[128], raw[128];
	char *got; /* what the client read of the server's stdout */
	size_t glen, gcap, gseen;
	json_t *answers; /* the lines of got by their id */
	int status;	 /* its wait status, once reaped */
	bool reaped;
	int next_id;
	size_t sent; /* bytes written to its stdin */
};

static int ran_line(struct server *s, const char *prefix);

/* Every server started: the teardown of a test kills those left. */
static pid_t live[8192];
static size_t nlive;
/* EAGAIN from servers' blocking reads, over the run: in a stream, at its end (EOF next) */
static unsigned eagains_mid, eagains_end;

/* Start a server on transport t (slow_ms: it sleeps before each read). */
/*
 * Start a server on transport t. exe (non-NULL): the child executes it, this test's own binary
 * (a real path), as `test_stdio --serve-stdio LOG RAW`: a program of its own, which the daemon
 * can find by its command line. Else the child runs the server without exec.
 */
static void server_start_as(struct server *s, enum transport t, unsigned slow_ms, const char *exe)
{
	int in[2], out[2], n = env.nservers++;

	memset(s, 0, sizeof(*s));
	s->t = t;
	s->next_id = 1000;
	s->answers = json_object();
	snprintf(s->log, sizeof(s->log), "%s/srv%d.log", env.dir, n);
	snprintf(s->raw, sizeof(s->raw), "%s/srv%d.raw", env.dir, n);
	if (t == T_SOCKETPAIR) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in), 0);
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out), 0);
		/* in[0]: the client writes, in[1]: the server's fd 0; out[1]: its fd 1 */
	} else {
		assert_int_equal(pipe2(in, O_CLOEXEC), 0);
		assert_int_equal(pipe2(out, O_CLOEXEC), 0);
		/* pipes: [0] reads, [1] writes: the server reads in[0] and writes out[1] */
		int tmp = in[0];

		in[0] = in[1];
		in[1] = tmp;
	}
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid > 0 && nlive < sizeof(live) / sizeof(live[0]))
		live[nlive++] = s->pid;
	if (s->pid == 0) {
		dup2(in[1], 0);
		dup2(out[1], 1);
		/* nothing else of the test: no other end of any stdio */
		close_range(3, ~0U, 0);
		if (exe) {
			execl(exe, "test_stdio", "--serve-stdio", s->log, s->raw, (char *)NULL);
			_exit(74);
		}
		srv_main(s->log, s->raw, slow_ms);
	}
	close(in[1]);
	close(out[1]);
	s->in = in[0];
	s->out = out[0];
	fcntl(s->out, F_SETFL, O_NONBLOCK);
}

static void server_start(struct server *s, enum transport t, unsigned slow_ms)
{
	server_start_as(s, t, slow_ms, NULL);
}

/* Reap it if it ended (wait: up to ms for it to end); true when it has. */
static bool server_reap(struct server *s, int ms)
{
	for (int i = 0; !s->reaped; i++) {
		pid_t p = waitpid(s->pid, &s->status, ms ? 0 : WNOHANG);

		if (p == s->pid) {
			s->reaped = true;
			break;
		}
		if (p < 0 && errno == EINTR && i < 100)
			continue;
		break;
	}
	return s->reaped;
}

static bool killed_by_sigkill(struct server *s)
{
	return s->reaped && WIFSIGNALED(s->status) && WTERMSIG(s->status) == SIGKILL;
}

/* Close the client's ends: the server reads EOF and exits; kill it after 5 s. */
static void server_stop(struct server *s)
{
	if (!s->pid)
		return;
	if (s->in >= 0)
		close(s->in);
	s->in = -1;
	for (int i = 0; i < 500 && !server_reap(s, 0); i++)
		usleep(10000);
	if (!s->reaped) {
		kill(s->pid, SIGKILL);
		server_reap(s, 1);
	}
	if (s->out >= 0)
		close(s->out);
	s->out = -1;
	{
		int mid = ran_line(s, "eagain\tmid"), end = ran_line(s, "eagain\tend");

		if (mid)
			print_message(
				"the server's blocking read(2) returned EAGAIN %d time%s in the "
				"stream (a socket in a SOCKMAP: unix_bpf_recvmsg)\n",
				mid, mid == 1 ? "" : "s");
		eagains_mid += mid;
		eagains_end += end;
	}
	free(s->got);
	s->got = NULL;
	json_decref(s->answers);
	s->answers = NULL;
	s->pid = 0;
}

static int send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= w;
	}
	return 0;
}

static bool server_wait_end(struct server *s, int ms);
static uint64_t counter(enum mcpf_tcp_counter c);
static int ran(struct server *s, int r, const char *tool);

/* Set by the race tests, which expect the guard to kill their servers. */
static bool race_expected;
/* Where a test that the kernel's race ended runs again from (RACE_RETRY) */
static jmp_buf race_retry_jmp;
static bool race_retry_set;

/*
 * A socketpair server the guard killed: the kernel's race (test_sp_race_*) met this test's writes
 * and ended the session before its checks could run. Unless a reader of the server ran "danger"
 * before (then it fails as it would have), the test runs again from its start, with a new
 * server and attachment (RACE_RETRY).
 */
static void retry_if_race_killed(struct server *s)
{
	if (race_expected || s->t != T_SOCKETPAIR || !running || !server_wait_end(s, 500) ||
	    !WIFSIGNALED(s->status) || WTERMSIG(s->status) != SIGKILL ||
	    !counter(MCPF_CNT_RACE_KILLS))
		return;
	for (int r = 0; r < R_N; r++)
		if (ran(s, r, "danger"))
			return;
	print_message("%s: the kernel's AF_UNIX sockmap race met this test's writes and the "
		      "guard killed the server (race_kills %llu): the test runs again\n",
		      step[0] ? step : "a step", (unsigned long long)counter(MCPF_CNT_RACE_KILLS));
	if (!race_retry_set)
		fail_msg("no retry point: the test's checks could not run");
	longjmp(race_retry_jmp, 1);
}

static void server_send(struct server *s, const char *buf, size_t n)
{
	int err = send_all(s->in, buf, n);

	if (err)
		retry_if_race_killed(s);
	if (err)
		fail_msg("write to the server's stdin (%zu bytes): %s", n, strerror(-err));
	s->sent += n;
}

/*
 * Wait until the server has read all it was sent and waits in poll() for more. A write made
 * then seldom meets the kernel's race (test_sp_race_*: a read running while the write is queued
 * takes it by the plain path, and the guard kills the server): poll() itself reports the skb on
 * the plain queue, so a poll that runs in that window wakes the server into it (seen once, on
 * 6.12 under TCG): srv_wait_verdict then holds its read back until the verdict took the bytes.
 * The tests of how pieces are judged write their pieces so, and run again (RACE_RETRY) when the
 * guard ended their session all the same. A server of srv_nonblock only; fails after 5 s.
 */
static void server_parked(struct server *s)
{
	char path[64], buf[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)s->pid);
	for (int i = 0; i < 50000; i++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = 0;
			if (atoi(buf) == SYS_poll && !stat(s->raw, &st) &&
			    (size_t)st.st_size >= s->sent)
				return;
		}
		usleep(100);
	}
	fail_msg("%s: the server did not read the %zu bytes sent and wait for more within 5 s",
		 step, s->sent);
}

/* Read what the server wrote so far, waiting up to ms for more; false when nothing came. */
static bool server_read(struct server *s, int ms)
{
	struct pollfd p = { .fd = s->out, .events = POLLIN };
	bool any = false;

	if (ms && poll(&p, 1, ms) != 1)
		return false;
	for (;;) {
		ssize_t r;

		if (s->glen + 65537 > s->gcap) {
			s->gcap = s->gcap ? s->gcap * 2 : 1 << 17;
			s->got = realloc(s->got, s->gcap);
			assert_non_null(s->got);
		}
		r = read(s->out, s->got + s->glen, 65536);
		if (r <= 0)
			break;
		s->glen += r;
		any = true;
	}
	s->got[s->glen] = 0;
	return any;
}

/* Index the whole lines read since the last call by their id (compact JSON). */
static void server_index(struct server *s)
{
	char *nl;

	while (s->got && (nl = memchr(s->got + s->gseen, '\n', s->glen - s->gseen))) {
		json_t *m = json_loadb(s->got + s->gseen, nl - (s->got + s->gseen), 0, NULL);
		char *key = m ? dump(json_object_get(m, "id")) : NULL;

		if (key && !json_object_get(s->answers, key))
			json_object_set(s->answers, key, m);
		free(key);
		json_decref(m);
		s->gseen = nl + 1 - s->got;
	}
}

/* The line the server wrote for id (JSON text), waiting up to ms; NULL if none came. */
static json_t *server_answer(struct server *s, const char *id, int ms)
{
	json_t *want = json_loads(id, JSON_DECODE_ANY, NULL), *a;
	struct timespec t0;
	char *key;

	assert_non_null(want);
	key = dump(want);
	json_decref(want);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct timespec t;
		long left;

		server_index(s);
		a = json_object_get(s->answers, key);
		if (a) {
			json_incref(a);
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = ms - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			break;
		server_read(s, (int)left);
	}
	free(key);
	if (!a && ms > 0)
		retry_if_race_killed(s);
	return a;
}

static char *call_line(char *buf, size_t size, const char *id, const char *tool)
{
	snprintf(buf, size,
		 "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"%s\",\"arguments\":{\"message\":\"hi\"}}}\n",
		 id, tool);
	return buf;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *d = NULL;
	size_t cap = 0, n = 0;

	if (f) {
		for (;;) {
			size_t r;

			if (n + 65537 > cap) {
				cap = cap ? cap * 2 : 1 << 17;
				d = realloc(d, cap);
				assert_non_null(d);
			}
			r = fread(d + n, 1, 65536, f);
			if (!r)
				break;
			n += r;
		}
		fclose(f);
	}
	if (!d)
		d = calloc(1, 1);
	else
		d[n] = 0;
	if (len)
		*len = n;
	return d;
}

/* Printable bytes for a failure message: \xNN for others, cut at max. */
static const char *show(const char *p, size_t n, size_t max)
{
	static char out[8192];
	size_t o = 0;

	for (size_t i = 0; i < n && o + 8 < sizeof(out); i++) {
		unsigned char c = p[i];

		if (i == max) {
			o += snprintf(out + o, sizeof(out) - o, "...(%zu bytes)", n);
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = c;
		else
			o += snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
	}
	out[o] = 0;
	return out;
}

/* A tools/call of tool with id id, answered with a result naming it. */
static void expect_ran(struct server *s, int id, const char *tool)
{
	char line[512], ids[16], want[128];
	json_t *a;
	char *text;

	snprintf(ids, sizeof(ids), "%d", id);
	call_line(line, sizeof(line), ids, tool);
	server_send(s, line, strlen(line));
	a = server_answer(s, ids, ANSWER_MS);
	if (!a) {
		size_t n;
		char *raw = slurp(s->raw, &n);

		if (server_reap(s, 0))
			fprintf(stderr, "the server ended: %s %d\n",
				WIFEXITED(s->status) ? "exit" : "signal",
				WIFEXITED(s->status) ? WEXITSTATUS(s->status) :
						       WTERMSIG(s->status));
		fail_msg("%s%s%s (id %d): no answer within %d ms; the server read (last 600 "
			 "bytes):\n%s",
			 step, step[0] ? ": " : "", tool, id, ANSWER_MS,
			 show(raw + (n > 600 ? n - 600 : 0), n > 600 ? 600 : n, 600));
	}
	text = dump(a);
	snprintf(want, sizeof(want), "\"text\":\"ran %s\"", tool);
	if (!json_object_get(a, "result") || !strstr(text, want))
		fail_msg("%s (id %d): %s", tool, id, text);
	free(text);
	json_decref(a);
}

/* An allowed call after whatever came before: the stream is healthy, and the server read it all. */
static void expect_sync(struct server *s)
{
	expect_ran(s, s->next_id++, "echo");
}

/* The answer to a denied call, as the client reads it: -32601 "denied by policy: REASON". */
static void expect_denied_answer(json_t *a, const char *what)
{
	json_t *err = json_object_get(a, "error");
	const char *msg = json_string_value(json_object_get(err, "message"));
	char *text = dump(a);

	if (json_object_get(a, "result") ||
	    json_integer_value(json_object_get(err, "code")) != -32601 || !msg ||
	    strcmp(msg, "denied by policy: " REASON))
		fail_msg("%s: not the answer of a denied call: %s", what, text);
	free(text);
}

/* A tools/call of "danger" with id id, answered as a denied call (what: for the message). */
static void expect_denied(struct server *s, int id, const char *what)
{
	char line[512], ids[16];
	json_t *a;

	snprintf(ids, sizeof(ids), "%d", id);
	call_line(line, sizeof(line), ids, "danger");
	server_send(s, line, strlen(line));
	a = server_answer(s, ids, ANSWER_MS);
	if (!a)
		fail_msg("%s (id %d): the denied call got no answer; the server wrote:\n%s", what,
			 id, s->got);
	expect_denied_answer(a, what);
	json_decref(a);
}

/* Lines of the server's log that begin with prefix. */
static int ran_line(struct server *s, const char *prefix)
{
	FILE *f = fopen(s->log, "r");
	char line[4096];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += !strncmp(line, prefix, strlen(prefix));
	fclose(f);
	return n;
}

/* How many times reader r executed tool (NULL: any tool), per the server's log. */
static int ran(struct server *s, int r, const char *tool)
{
	FILE *f = fopen(s->log, "r");
	char line[4096], want[300];
	int n = 0;

	if (!f)
		return 0;
	snprintf(want, sizeof(want), "%s\t\"%s\"\t", reader_names[r], tool ? tool : "");
	while (fgets(line, sizeof(line), f)) {
		if (tool ? !strncmp(line, want, strlen(want)) :
			   !strncmp(line, want, strlen(reader_names[r]) + 1))
			n++;
	}
	fclose(f);
	return n;
}

/* No reader of the server ran tool "danger": else fail, with what it read and ran. */
/* The audit lines of the attach in force that name request id (JSON text); -1: none in force. */
static int audit_lines_for(const char *id);

/*
 * No reader of the server ran tool "danger": else fail, with the bytes it read around the call
 * it ran (the first it logged), its log, and how many audit lines name that id (none: the
 * hooks never saw the call).
 */
static void expect_no_danger(struct server *s, const char *what)
{
	for (int r = 0; r < R_N; r++) {
		char want[32], id[64] = "", *raw, *log, *hit, *at;
		size_t n, from = 0;

		if (!ran(s, r, "danger"))
			continue;
		raw = slurp(s->raw, &n);
		log = slurp(s->log, NULL);
		snprintf(want, sizeof(want), "%s\t\"danger\"\t", reader_names[r]);
		hit = strstr(log, want);
		if (hit)
			sscanf(hit + strlen(want), "%63[^\n]", id);
		if (id[0]) {
			char needle[96];

			snprintf(needle, sizeof(needle), "\"id\":%s,", id);
			at = strstr(raw, needle);
			from = at && at - raw > 300 ? (size_t)(at - raw) - 300 : 0;
		}
		fail_msg("%s: the %s reader ran \"danger\" (id %s; audit lines with that id: %d).\n"
			 "the server read (from byte %zu): %s\nits log:\n%.3000s",
			 what, reader_names[r], id, id[0] ? audit_lines_for(id) : -1, from,
			 show(raw + from, n - from, 1200), log);
	}
}

/* ---- mcpfence ------------------------------------------------------------------------------ */

/*
 * `mcpfence attach --policy P --pid N... [--pipe-action action] --audit DIR/auditK.jsonl`, until
 * it says it watches; fails with its output if it stops first.
 */
static void attach_start(struct attach *at, const pid_t *pids, int npids, const char *action)
{
	static int naudit;
	const char *argv[2 * MCPF_STDIO_MAX_SESSIONS + 16];
	char pidstr[MCPF_STDIO_MAX_SESSIONS][16];
	int n = 0;

	assert_true(npids > 0 && npids <= MCPF_STDIO_MAX_SESSIONS);
	snprintf(at->audit, sizeof(at->audit), "%s/audit%d.jsonl", env.dir, naudit++);
	argv[n++] = env.mcpfence;
	argv[n++] = "attach";
	argv[n++] = "--policy";
	argv[n++] = env.policy;
	argv[n++] = "--audit";
	argv[n++] = at->audit;
	argv[n++] = "--quiet";
	if (action) {
		argv[n++] = "--pipe-action";
		argv[n++] = action;
	}
	for (int i = 0; i < npids; i++) {
		snprintf(pidstr[i], sizeof(pidstr[i]), "%d", pids[i]);
		argv[n++] = "--pid";
		argv[n++] = pidstr[i];
	}
	argv[n] = NULL;
	attach_spawn(at, argv, "watching the stdio of pid", ATTACH_START_S, 20000);
}

static void attach_one(struct attach *at, struct server *s, const char *action)
{
	attach_start(at, &s->pid, 1, action);
}

static void attach_stop(struct attach *at)
{
	attach_stop_every(at, 20000);
}

/* The audit lines of at (JSON objects) in an array. */
static json_t *audit_lines(struct attach *at)
{
	json_t *all = json_array();
	char *d = slurp(at->audit, NULL), *p = d, *nl;

	while ((nl = strchr(p, '\n'))) {
		json_t *o = json_loadb(p, nl - p, 0, NULL);

		if (o)
			json_array_append_new(all, o);
		p = nl + 1;
	}
	free(d);
	return all;
}

/* Audit lines whose "decision" is decision and (tool non-NULL) whose "tool" is tool. */
static int audit_count(json_t *lines, const char *decision, const char *tool)
{
	size_t i;
	json_t *o;
	int n = 0;

	json_array_foreach(lines, i, o) {
		const char *d = json_string_value(json_object_get(o, "decision"));
		const char *t = json_string_value(json_object_get(o, "tool"));

		if (d && !strcmp(d, decision) && (!tool || (t && !strcmp(t, tool))))
			n++;
	}
	return n;
}

static int audit_lines_for(const char *id)
{
	json_t *want = json_loads(id, JSON_DECODE_ANY, NULL), *l, *o;
	size_t i;
	int n = 0;

	if (!running || !want) {
		json_decref(want);
		return -1;
	}
	usleep(300000); /* attach drains its events every 100 ms */
	l = audit_lines(running);
	json_array_foreach(l, i, o)
		n += json_equal(json_object_get(o, "id"), want);
	json_decref(l);
	json_decref(want);
	return n;
}

/* The events are read by attach every 100 ms: wait until n lines of decision are written. */
static json_t *audit_wait(struct attach *at, const char *decision, const char *tool, int n)
{
	json_t *l = NULL;

	for (int i = 0; i < 100; i++) {
		json_decref(l);
		l = audit_lines(at);
		if (audit_count(l, decision, tool) >= n)
			break;
		usleep(20000);
	}
	return l;
}

/* A total of tcp_counters (all CPUs), read from the pins while attached. */
static uint64_t counter(enum mcpf_tcp_counter c)
{
	int fd = bpf_obj_get(MCPF_PIN_DIR "/tcp_counters"), ncpu = libbpf_num_possible_cpus();
	uint64_t *v = calloc(ncpu, sizeof(*v)), sum = 0;
	uint32_t k = c;

	assert_true(fd >= 0);
	assert_non_null(v);
	assert_int_equal(bpf_map_lookup_elem(fd, &k, v), 0);
	for (int i = 0; i < ncpu; i++)
		sum += v[i];
	free(v);
	close(fd);
	return sum;
}

/* After each test, failed or not: no attach left running, nothing attached. */
static struct timespec test_t0;

static int test_setup(void **state)
{
	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &test_t0);
	return 0;
}

static int test_teardown(void **state)
{
	char out[1024];

	race_expected = false;
	if (running)
		attach_stop(running);
	if (env.mcpfence[0] && kernel__attachment() != KERNEL_ATTACHED_NONE)
		mcpfence(out, sizeof(out), "detach", NULL);
	for (size_t i = 0; i < nlive; i++) {
		if (waitpid(live[i], NULL, WNOHANG) == 0) {
			kill(live[i], SIGKILL);
			waitpid(live[i], NULL, 0);
		}
	}
	nlive = 0;
	race_retry_set = false;
	if (state) { /* cmocka's call, not a retry's: the kernel matrix reads where time goes */
		struct timespec t1;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		print_message("took %.1f s\n",
			      (double)(t1.tv_sec - test_t0.tv_sec) +
				      (double)(t1.tv_nsec - test_t0.tv_nsec) / 1e9);
	}
	return 0;
}

#define RACE_TRIES 3

/*
 * Run the body of a socketpair test. When the kernel's race ends its session (the guard killed
 * the server: retry_if_race_killed), clean up as the teardown does and run it again from its
 * start, RACE_TRIES runs at most: its checks hold on one whole run, or the test fails.
 */
static void race_retry(void (*body)(void), const char *name)
{
	volatile unsigned tries = 0;

	if (setjmp(race_retry_jmp)) {
		test_teardown(NULL);
		step[0] = 0;
		if (++tries >= RACE_TRIES)
			fail_msg("%s: the kernel's race ended the session in %u runs in a row",
				 name, tries);
	}
	race_retry_set = true;
	body();
	race_retry_set = false;
	if (tries)
		print_message("%s: passed on run %u; the kernel's race ended the %u before\n", name,
			      tries + 1, tries);
}
#define RACE_RETRY(body) race_retry(body, __func__)

/* ---- set-up ---------------------------------------------------------------------------------- */

static int setup(void **state)
{
	char why[300], root[PATH_MAX];

	signal(SIGPIPE, SIG_IGN); /* a killed server's pipe: EPIPE, not death */
	if (geteuid() != 0) {
		snprintf(env.skip, sizeof(env.skip), "needs root (mcpfence attach, pidfd_getfd)");
		return 0;
	}
	if (find_mcpfence(env.mcpfence, sizeof(env.mcpfence))) {
		snprintf(env.broken, sizeof(env.broken),
			 "mcpfence is not built next to this test (nor in $MCPFENCE)");
		return 0;
	}
	features__mount();
	if (cgroup__v2_root(root, sizeof(root), why, sizeof(why))) {
		snprintf(env.skip, sizeof(env.skip), "%s", why);
		return 0;
	}
	if (!features__signal_task())
		snprintf(env.no_kill, sizeof(env.no_kill),
			 "--pipe-action kill needs the bpf_send_signal_task kfunc (6.13+)");
	if (features__lsm(why, sizeof(why)))
		snprintf(env.no_lsm, sizeof(env.no_lsm),
			 "--pipe-action refuse needs the BPF LSM: %s", why);
	if (!take_attachment())
		return 0;
	snprintf(env.dir, sizeof(env.dir), "/tmp/mcpfence-stdio-XXXXXX");
	if (!mkdtemp(env.dir)) {
		snprintf(env.broken, sizeof(env.broken), "mkdtemp: %s", strerror(errno));
		return 0;
	}
	snprintf(env.policy, sizeof(env.policy), "%s/policy.json", env.dir);
	if (write_file(env.policy, policy_json))
		snprintf(env.broken, sizeof(env.broken), "%s: cannot be written", env.policy);
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX];

	if (eagains_mid + eagains_end)
		print_message(
			"servers' blocking reads of a socketpair in a SOCKMAP returned EAGAIN "
			"%u times in a stream, %u at its end (before EOF)\n",
			eagains_mid, eagains_end);
	if (env.dir[0] && !getenv("STDIO_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", env.dir);
		if (system(cmd))
			fprintf(stderr, "%s: not removed\n", env.dir);
	}
	return 0;
}

/*
 * attach --pipe-action action on a kernel that cannot do it (why): it must fail, its error
 * naming what is missing (says), and leave nothing attached.
 */
static void action_refused(const char *action, const char *says, const char *why)
{
	struct server s;
	char out[4096], pid[16];

	server_start(&s, T_PIPE, 0);
	snprintf(pid, sizeof(pid), "%d", s.pid);
	assert_int_equal(mcpfence(out, sizeof(out), "attach", "--policy", env.policy, "--pid", pid,
				  "--pipe-action", action, "--audit", "/dev/null", NULL),
			 1);
	if (!strstr(out, says))
		fail_msg("attach --pipe-action %s where it cannot run: %s", action, out);
	assert_int_equal(kernel__attachment(), KERNEL_ATTACHED_NONE);
	print_message("%s: attach refuses it, as it must\n", why);
	server_stop(&s);
}

static void kill_refused(void)
{
	action_refused("kill", "bpf_send_signal_task", env.no_kill);
}

static void refuse_refused(void)
{
	action_refused("refuse", "--pipe-action refuse needs the BPF LSM", env.no_lsm);
}

/* ---- socketpairs ------------------------------------------------------------------------------ */

/*
 * An allowed call passes unchanged: the server reads the exact bytes written, runs it, and its
 * answer reaches the client unchanged.
 */
static void sp_allowed_unchanged_run(void)
{
	static struct attach at;
	struct server s;
	char line[512], *raw, *tfo, want[512];
	json_t *a;

	SKIP_IF_NEEDED();
	tfo = slurp("/proc/sys/net/ipv4/tcp_fastopen", NULL);
	server_start(&s, T_SOCKETPAIR, 0);
	attach_one(&at, &s, NULL);
	assert_true(attach_says(&at, "stdin: unix socketpair"));
	/* --pid alone: nothing of the TCP plane (no cgroup program, no sysctl changed) */
	assert_int_not_equal(access(KERNEL_PIN_LINK, F_OK), 0);
	assert_int_not_equal(access(KERNEL_PIN_PROG, F_OK), 0);
	raw = slurp("/proc/sys/net/ipv4/tcp_fastopen", NULL);
	assert_string_equal(raw, tfo);
	free(raw);
	free(tfo);
	call_line(line, sizeof(line), "1", "echo");
	server_send(&s, line, strlen(line));
	a = server_answer(&s, "1", ANSWER_MS);
	assert_non_null(a);
	json_decref(a);
	snprintf(want, sizeof(want),
		 "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\","
		 "\"text\":\"ran echo\"}]}}\n");
	assert_string_equal(s.got, want);
	raw = slurp(s.raw, NULL);
	assert_string_equal(raw, line);
	free(raw);
	assert_int_equal(ran(&s, R_NODE, "echo"), 1);
	attach_stop(&at);
	server_stop(&s);
}

static void test_sp_allowed_unchanged(void **state)
{
	RACE_RETRY(sp_allowed_unchanged_run);
}

/*
 * A denied call is answered -32601 "denied by policy: <reason>" for its id, the server never
 * runs it, the audit says so, and the next call works.
 */
static void sp_denied_answered_run(void)
{
	static struct attach at;
	struct server s;
	json_t *l;

	SKIP_IF_NEEDED();
	server_start(&s, T_SOCKETPAIR, 0);
	attach_one(&at, &s, NULL);
	expect_ran(&s, 1, "echo");
	expect_denied(&s, 2, "danger (id 2)");
	expect_ran(&s, 3, "echo");
	expect_no_danger(&s, "a denied call");
	l = audit_wait(&at, "deny", "danger", 1);
	assert_int_equal(audit_count(l, "deny", "danger"), 1);
	json_decref(l);
	attach_stop(&at);
	server_stop(&s);
}

static void test_sp_denied_answered(void **state)
{
	RACE_RETRY(sp_denied_answered_run);
}

/* The two key orders of a denied call: method before the name, and after it. */
static const char *const split_lines[] = {
	"{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":\"danger\","
	"\"arguments\":{}}}\n",
	"{\"jsonrpc\":\"2.0\",\"id\":%d,\"params\":{\"arguments\":{},\"name\":\"danger\"},"
	"\"method\":\"tools/call\"}\n",
};

/*
 * A denied call split across two writes (two skbs), at every byte offset, in both key orders:
 * the server never runs it (it is rewritten, or its line made unreadable), and the next call,
 * written as a client writes it, works.
 */
static void sp_split_every_offset_run(void)
{
	static struct attach at;
	struct server s;
	int rounds = 0, answered = 0, id = 1;

	SKIP_IF_NEEDED();
	server_start(&s, T_SOCKETPAIR, 0);
	attach_one(&at, &s, NULL);
	for (size_t v = 0; v < sizeof(split_lines) / sizeof(split_lines[0]); v++) {
		char line[512], ids[16];
		size_t len;

		snprintf(line, sizeof(line), split_lines[v], 0);
		len = strlen(line);
		for (size_t k = 1; k < len; k++, id++) {
			json_t *a;

			snprintf(line, sizeof(line), split_lines[v], id);
			len = strlen(line);
			if (k >= len)
				break;
			server_parked(&s);
			server_send(&s, line, k);
			server_parked(&s);
			server_send(&s, line + k, len - k);
			expect_sync(&s);
			snprintf(ids, sizeof(ids), "%d", id);
			a = server_answer(&s, ids, 0);
			if (a) {
				/* its method was in the skb that completed it: rewritten */
				expect_denied_answer(a, "a denied call in two writes");
				answered++;
				json_decref(a);
			}
			if (ran(&s, R_NODE, "danger") || ran(&s, R_PY, "danger") ||
			    ran(&s, R_GO, "danger"))
				fail_msg("split at %zu of: %s", k, line);
			rounds++;
		}
	}
	expect_no_danger(&s, "a denied call in two writes");
	assert_int_equal(ran(&s, R_NODE, "echo"), rounds);
	print_message("%d splits: %d answered \"denied by policy\", %d made unreadable\n", rounds,
		      answered, rounds - answered);
	attach_stop(&at);
	server_stop(&s);
}

static void test_sp_split_every_offset(void **state)
{
	RACE_RETRY(sp_split_every_offset_run);
}

/*
 * 168 lines in one write (146 KB, as Node coalesced under backpressure), one in three denied:
 * exactly the allowed ones run, in order, each answered. A denied one is answered -32601 (its
 * method rewritten) or not at all (its method was in an earlier skb: the line made
 * unreadable), never with a result. Its answer says "denied by policy: <reason>" while its id
 * is among the last MCPF_TCP_PENDING (8) denied ids of the session; older ones keep the
 * server's "Method not found" (56 are denied before the server answers one).
 */
static void sp_168_lines_run(void)
{
	static struct attach at;
	struct server s;
	char *buf = malloc(1 << 20), *log, *p;
	size_t n = 0;
	int by_policy = 0, not_found = 0, order = 0;

	SKIP_IF_NEEDED();
	assert_non_null(buf);
	server_start(&s, T_SOCKETPAIR, 0);
	attach_one(&at, &s, NULL);
	for (int i = 1; i <= 168; i++) {
		char pad[800];

		memset(pad, 'a' + i % 26, sizeof(pad) - 1);
		pad[sizeof(pad) - 1] = 0;
		n += snprintf(buf + n, (1 << 20) - n,
			      "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
			      "{\"name\":\"%s\",\"arguments\":{\"pad\":\"%s\"}}}\n",
			      i, i % 3 ? "echo" : "danger", pad);
	}
	server_send(&s, buf, n);
	for (int i = 1; i <= 168; i++) {
		char ids[16];
		json_t *a;

		snprintf(ids, sizeof(ids), "%d", i);
		a = server_answer(&s, ids, i % 3 ? ANSWER_MS : 0);
		if (i % 3 && !a)
			fail_msg("allowed call %d of 168: no answer", i);
		if (!(i % 3) && a) {
			json_t *err = json_object_get(a, "error");
			const char *msg = json_string_value(json_object_get(err, "message"));
			char *t = dump(a);

			if (json_object_get(a, "result") ||
			    json_integer_value(json_object_get(err, "code")) != -32601 || !msg)
				fail_msg("denied call %d of 168: %s", i, t);
			free(t);
			if (!strcmp(msg, "denied by policy: " REASON))
				by_policy++;
			else if (!strcmp(msg, "Method not found"))
				not_found++;
			else
				fail_msg("denied call %d of 168: \"%s\"", i, msg);
		}
		json_decref(a);
	}
	expect_sync(&s);
	expect_no_danger(&s, "168 lines in one write");
	/* the allowed ones, in order */
	log = slurp(s.log, NULL);
	p = log;
	for (int i = 1; i <= 168; i++) {
		char want[64];

		if (!(i % 3))
			continue;
		snprintf(want, sizeof(want), "node\t\"echo\"\t%d\n", i);
		p = strstr(p, want);
		if (!p)
			fail_msg("allowed call %d not run, or out of order; the log:\n%s", i, log);
		order++;
	}
	free(log);
	assert_int_equal(order, 112);
	assert_int_equal(ran(&s, R_NODE, "echo"), 113); /* and the sync call */
	assert_true(by_policy <= MCPF_TCP_PENDING);
	print_message("168 lines (%zu bytes) in one write: 112 ran; of 56 denied, %d answered "
		      "\"denied by policy\", %d \"Method not found\" (older than the last %d), %d "
		      "made unreadable\n",
		      n, by_policy, not_found, MCPF_TCP_PENDING, 56 - by_policy - not_found);
	free(buf);
	attach_stop(&at);
	server_stop(&s);
}

static void test_sp_168_lines(void **state)
{
	RACE_RETRY(sp_168_lines_run);
}

/*
 * A 10 MB line (a call of the denied tool, too large to read) is refused, and the next line,
 * in the same write, is framed right and runs; then the next write too.
 */
static void sp_10mb_line_run(void)
{
	static struct attach at;
	struct server s;
	size_t big = 10 << 20, n;
	char *buf = malloc(big + 1024), next[512];
	json_t *a;

	SKIP_IF_NEEDED();
	assert_non_null(buf);
	server_start(&s, T_SOCKETPAIR, 0);
	attach_one(&at, &s, NULL);
	expect_ran(&s, 1, "echo");
	n = snprintf(buf, 1024,
		     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"danger\",\"arguments\":{\"pad\":\"");
	memset(buf + n, 'x', big - n);
	n = big;
	n += snprintf(buf + n, 1024, "\"}}}\n%s", call_line(next, sizeof(next), "3", "echo"));
	server_send(&s, buf, n);
	a = server_answer(&s, "3", 30000);
	if (!a)
		fail_msg("the line after a 10 MB one: no answer; the server wrote:\n%s", s.got);
	json_decref(a);
	a = server_answer(&s, "2", 0);
	if (a) {
		char *t = dump(a);

		if (json_object_get(a, "result"))
			fail_msg("the 10 MB call ran: %s", t);
		free(t);
		json_decref(a);
	}
	expect_ran(&s, 4, "echo");
	expect_no_danger(&s, "a 10 MB line");
	assert_int_equal(ran(&s, R_NODE, "echo"), 3);
	free(buf);
	attach_stop(&at);
	server_stop(&s);
}

static void test_sp_10mb_line(void **state)
{
	RACE_RETRY(sp_10mb_line_run);
}

/*
 * Writes a reader could take for a call of the denied tool where a simple scan would not. Each
 * ends with '\n'; the call after it must work.
 */
static const struct hostile {
	const char *what;
	const char *bytes;
} hostile[] = {
	{ "an escape in the name",
	  "{\"jsonrpc\":\"2.0\",\"id\":101,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"dan\\u0067er\",\"arguments\":{}}}\n" },
	{ "escapes in the method and the key",
	  "{\"jsonrpc\":\"2.0\",\"id\":102,\"method\":\"tools\\/call\",\"params\":{\"n\\u0061me\":"
	  "\"danger\",\"arguments\":{}}}\n" },
	{ "a duplicate \"name\" (servers read the last)",
	  "{\"jsonrpc\":\"2.0\",\"id\":103,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
	  "\"name\":\"danger\",\"arguments\":{}}}\n" },
	{ "a duplicate \"params\"",
	  "{\"jsonrpc\":\"2.0\",\"id\":104,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"},"
	  "\"params\":{\"name\":\"danger\"}}\n" },
	{ "\"NAME\" (Go folds case)",
	  "{\"jsonrpc\":\"2.0\",\"id\":105,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
	  "\"NAME\":\"danger\",\"arguments\":{}}}\n" },
	{ "\"Params\"",
	  "{\"jsonrpc\":\"2.0\",\"id\":106,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"},"
	  "\"Params\":{\"name\":\"danger\"}}\n" },
	{ "\"param\xc5\xbf\" (U+017F folds to s)",
	  "{\"jsonrpc\":\"2.0\",\"id\":107,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"},"
	  "\"param\xc5\xbf\":{\"name\":\"danger\"}}\n" },
	{ "\"METHOD\"",
	  "{\"jsonrpc\":\"2.0\",\"id\":108,\"method\":\"ping\",\"METHOD\":\"tools/call\","
	  "\"params\":{\"name\":\"danger\"}}\n" },
	{ "a batch with a denied element",
	  "[{\"jsonrpc\":\"2.0\",\"id\":109,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
	  "\"arguments\":{}}},{\"jsonrpc\":\"2.0\",\"id\":110,\"method\":\"tools/call\",\"params\":"
	  "{\"name\":\"danger\",\"arguments\":{}}}]\n" },
	{ "a raw newline inside a value",
	  "{\"jsonrpc\":\"2.0\",\"id\":111,\"method\":\"tools/call\",\n\"params\":{\"name\":"
	  "\"danger\",\"arguments\":{}}}\n" },
	{ "a raw newline inside a string",
	  "{\"jsonrpc\":\"2.0\",\"id\":112,\"method\":\"tools/call\",\"params\":{\"name\":\"dan\nger"
	  "\",\"arguments\":{}}}\n" },
	{ "two messages joined by a bare \\r",
	  "{\"jsonrpc\":\"2.0\",\"id\":113,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
	  "\"arguments\":{}}}\r{\"jsonrpc\":\"2.0\",\"id\":114,\"method\":\"tools/call\",\"params\":"
	  "{\"name\":\"danger\",\"arguments\":{}}}\n" },
	{ "a call between bare \\r inside a value",
	  "{\"a\":[\r{\"jsonrpc\":\"2.0\",\"id\":115,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"danger\",\"arguments\":{}}}\r]}\n" },
	{ "a call inside a string after \\r",
	  "{\"jsonrpc\":\"2.0\",\"id\":116,\"method\":\"notifications/x\",\"params\":{\"t\":\"\r"
	  "{\\\"jsonrpc\\\":\\\"2.0\\\"}\"}}\r{\"jsonrpc\":\"2.0\",\"id\":117,\"method\":"
	  "\"tools/call\",\"params\":{\"name\":\"danger\"}}\n" },
	{ "two values on one line",
	  "{\"jsonrpc\":\"2.0\",\"id\":118,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}"
	  " {\"jsonrpc\":\"2.0\",\"id\":119,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"danger\"}}\n" },
	{ "a value in two lines, then a call",
	  "{\"jsonrpc\":\"2.0\",\"id\":120,\n\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"danger\"}}\n{\"jsonrpc\":\"2.0\",\"id\":121,\"method\":\"tools/call\",\"params\":"
	  "{\"name\":\"danger\"}}\n" },
	{ "a \\r\\n line end",
	  "{\"jsonrpc\":\"2.0\",\"id\":122,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"danger\"}}\r\n" },
	{ "leading whitespace and \\r",
	  " \t\r\r {\"jsonrpc\":\"2.0\",\"id\":123,\"method\":\"tools/call\",\"params\":{\"name\":"
	  "\"danger\"}}\n" },
};

/*
 * Each hostile write on a socketpair, then an allowed call: no reader of the server ever runs
 * "danger", and the allowed call works.
 */
static void sp_hostile_run(void)
{
	static struct attach at;
	struct server s;

	SKIP_IF_NEEDED();
	server_start(&s, T_SOCKETPAIR, 0);
	attach_one(&at, &s, NULL);
	expect_sync(&s);
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		snprintf(step, sizeof(step), "%s", hostile[i].what);
		server_parked(&s);
		server_send(&s, hostile[i].bytes, strlen(hostile[i].bytes));
		expect_sync(&s);
		expect_no_danger(&s, hostile[i].what);
	}
	/* and each one split in two writes at every offset */
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		size_t len = strlen(hostile[i].bytes);

		for (size_t k = 1; k < len; k++) {
			snprintf(step, sizeof(step), "%s, split at %zu", hostile[i].what, k);
			server_parked(&s);
			server_send(&s, hostile[i].bytes, k);
			server_parked(&s);
			server_send(&s, hostile[i].bytes + k, len - k);
			expect_sync(&s);
		}
		expect_no_danger(&s, hostile[i].what);
	}
	attach_stop(&at);
	server_stop(&s);
}

static void test_sp_hostile(void **state)
{
	RACE_RETRY(sp_hostile_run);
}

/* The count of `mcpfence stats --json` for tool and verdict (all policies). */
static int stats_count(json_t *j, const char *tool, const char *verdict)
{
	json_t *c;
	size_t i;
	int n = 0;

	json_array_foreach(json_object_get(j, "calls"), i, c) {
		const char *t = json_string_value(json_object_get(c, "tool"));
		const char *v = json_string_value(json_object_get(c, "verdict"));

		if (t && v && !strcmp(t, tool) && !strcmp(v, verdict))
			n += json_integer_value(json_object_get(c, "count"));
	}
	return n;
}

static json_t *stats_json(void)
{
	static char out[1 << 16];
	json_t *j;

	assert_int_equal(mcpfence(out, sizeof(out), "stats", "--json", NULL), 0);
	j = json_loads(out, 0, NULL);
	if (!j)
		fail_msg("stats --json is not JSON: %s", out);
	return j;
}

/*
 * attach on a server that served calls already: enforcement and counting start at attach
 * (`stats --json` counts the calls made after it, and only those), the calls before ran as
 * they were.
 */
static void sp_attach_after_calls_run(void)
{
	static struct attach at;
	struct server s;
	json_t *j, *c;
	size_t i;
	int rows = 0;

	SKIP_IF_NEEDED();
	server_start(&s, T_SOCKETPAIR, 0);
	expect_ran(&s, 1, "echo");
	expect_ran(&s, 2, "danger"); /* not attached yet */
	expect_ran(&s, 3, "other");
	attach_one(&at, &s, NULL);
	expect_ran(&s, 4, "echo");
	expect_ran(&s, 5, "echo");
	expect_denied(&s, 6, "danger after attach");
	expect_ran(&s, 7, "other");
	assert_int_equal(ran(&s, R_NODE, "danger"), 1); /* the one before attach */
	j = stats_json();
	assert_int_equal(stats_count(j, "echo", "allow"), 2);
	assert_int_equal(stats_count(j, "danger", "rule"), 1);
	assert_int_equal(stats_count(j, "other", "allow"), 1);
	json_array_foreach(json_object_get(j, "calls"), i, c)
		rows += json_integer_value(json_object_get(c, "count"));
	if (rows != 4) {
		char *t = dump(j);

		fail_msg("stats count %d calls, 4 were made after attach: %s", rows, t);
	}
	json_decref(j);
	attach_stop(&at);
	server_stop(&s);
}

static void test_sp_attach_after_calls(void **state)
{
	RACE_RETRY(sp_attach_after_calls_run);
}

/*
 * After detach (the server asleep in read(2) at that moment), everything passes unenforced:
 * the tool denied before runs, and answers come back as the server wrote them.
 */
static void sp_after_detach_run(void)
{
	static struct attach at;
	struct server s;
	char line[512];
	json_t *a;

	SKIP_IF_NEEDED();
	server_start(&s, T_SOCKETPAIR, 0);
	attach_one(&at, &s, NULL);
	expect_denied(&s, 1, "danger while attached");
	attach_stop(&at);
	assert_int_equal(kernel__attachment(), KERNEL_ATTACHED_NONE);
	expect_ran(&s, 2, "danger");
	expect_ran(&s, 3, "echo");
	/* the same call the client denied before: an unknown method answered as written */
	snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"rpc.denied\"}\n");
	server_send(&s, line, strlen(line));
	a = server_answer(&s, "4", ANSWER_MS);
	assert_non_null(a);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(a, "error"), "message")),
		"Method not found");
	json_decref(a);
	assert_int_equal(ran(&s, R_NODE, "danger"), 1);
	server_stop(&s);
}

static void test_sp_after_detach(void **state)
{
	RACE_RETRY(sp_after_detach_run);
}

static const char *status_text(struct server *s);

/* Reads the watchdog restarted, as attach logged them. */
static int restarts(struct attach *at)
{
	const char *p = at->log;
	int n = 0;

	attach_says(at, "");
	while ((p = strstr(p, "which the map no longer fills, restarted"))) {
		n++;
		p++;
	}
	return n;
}

/* Lines of the audit whose reason holds text. */
static int audit_reasons(json_t *lines, const char *text)
{
	size_t i;
	json_t *o;
	int n = 0;

	json_array_foreach(lines, i, o) {
		const char *r = json_string_value(json_object_get(o, "reason"));

		n += r && strstr(r, text);
	}
	return n;
}

/*
 * Busy readers on a socketpair, and the kernel's race (README, "a read that races the verdict"):
 * unix_stream_sendmsg queues an skb on the server's sk_receive_queue before the psock's
 * data_ready takes it off to run the verdict. A read that starts in between reads it by the
 * plain path, unjudged: the guard kills the reader before the copy. Or the verdict takes the skb
 * first and that read sleeps on the plain queue, which nothing fills any more: the watchdog
 * restarts it, so every call is answered.
 *
 * The server reads while the client writes calls, one write each, batch at a time (allowed and
 * denied ones in turn), then an allowed call that must be answered. No reader of the server may
 * run "danger", however its reads and the client's writes interleave, for secs seconds or until
 * the guard kills the server; until then every call is answered and counted once. blocking: the
 * server's reads block and take 100 bytes at a time; otherwise it spins on non-blocking reads of
 * 64 KiB (no poll), and so meets the race within a few batches. Returns whether the guard killed
 * it.
 */
static bool sp_race(int secs, int batch, bool blocking)
{
	static struct attach at;
	struct server s;
	struct timespec t0, t;
	long writes = 0, batches = 0, ndenied = 0;
	bool gone = false;
	const char *mode = blocking ? "busy blocking reader" : "spinning reader";
	json_t *l;

	race_expected = true;

	srv_read_size = blocking ? 100 : 1 << 16;
	srv_nonblock = !blocking;
	srv_spin = !blocking;
	server_start(&s, T_SOCKETPAIR, 0);
	srv_nonblock = 1;
	srv_spin = 0;
	srv_read_size = 1 << 16;
	attach_one(&at, &s, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		char line[512], ids[24];
		json_t *a;

		for (int k = 0; k < batch && !gone; k++) {
			bool deny = k % 2;

			snprintf(ids, sizeof(ids), "%ld", 2000000 + writes);
			call_line(line, sizeof(line), ids, deny ? "danger" : "echo");
			gone = send_all(s.in, line, strlen(line)) != 0;
			writes += !gone;
			ndenied += !gone && deny;
		}
		if (gone)
			break;
		/* every call so far answered: the stream is healthy, nothing hangs */
		snprintf(ids, sizeof(ids), "%d", s.next_id++);
		call_line(line, sizeof(line), ids, "echo");
		gone = send_all(s.in, line, strlen(line)) != 0;
		a = gone ? NULL : server_answer(&s, ids, ANSWER_MS);
		if (!a) {
			gone = true;
			break;
		}
		json_decref(a);
		batches++;
		if (ran(&s, R_NODE, "danger") || ran(&s, R_PY, "danger") || ran(&s, R_GO, "danger"))
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < secs);
	expect_no_danger(&s, "a busy reader");
	if (gone) {
		/* the one way a sync call goes unanswered: the guard killed the server */
		if (!server_wait_end(&s, 2000) || !WIFSIGNALED(s.status) ||
		    WTERMSIG(s.status) != SIGKILL)
			fail_msg(
				"%s, batch %ld: the sync call was not answered, and the server was "
				"not killed by the guard (%s): it hangs",
				mode, batches, status_text(&s));
		assert_true(counter(MCPF_CNT_RACE_KILLS) >= 1);
		for (int i = 0; i < 100; i++) {
			l = audit_lines(&at);
			if (audit_reasons(l, "a race of the kernel's AF_UNIX sockmap"))
				break;
			json_decref(l);
			l = NULL;
			usleep(20000);
		}
		if (!l)
			fail_msg("no audit line for the read the guard stopped");
		json_decref(l);
		print_message("%s: %ld writes (%ld denied) in %ld batches: none ran; the guard "
			      "killed the server at a read of bytes the verdict had not taken\n",
			      mode, writes, ndenied, batches);
	} else {
		assert_int_equal(ran(&s, R_NODE, "echo"), writes - ndenied + batches);
		/* each call counted once */
		assert_int_equal(counter(MCPF_CNT_CALLS), writes + batches);
		assert_int_equal(counter(MCPF_CNT_RACE_KILLS), 0);
		print_message("%s: %ld writes (%ld denied) in %ld batches: none ran, all answered; "
			      "reads restarted by the watchdog: %d\n",
			      mode, writes, ndenied, batches, restarts(&at));
	}
	attach_stop(&at);
	server_stop(&s);
	race_expected = false;
	return gone;
}

/* A server that reads with blocking reads while its client writes: nothing denied runs. */
static void test_sp_race_blocking(void **state)
{
	SKIP_IF_NEEDED();
	sp_race(getenv("STDIO_SP_RACE_S") ? atoi(getenv("STDIO_SP_RACE_S")) : 5, 4, true);
}

/*
 * A server that spins on non-blocking reads meets the race within a few batches on two CPUs:
 * the guard kills it, none ran, and the audit says why. Skips, saying so, where the race did
 * not happen (one CPU: only a preemption between the kernel's two steps opens it).
 */
static void test_sp_race_spinning(void **state)
{
	int secs = 20;

	SKIP_IF_NEEDED();
	if (!sp_race(secs, 4, false)) {
		print_message(
			"SKIP: the race did not happen in %d s of a spinning reader (%ld CPUs "
			"online): the guard was not exercised\n",
			secs, sysconf(_SC_NPROCESSORS_ONLN));
		skip();
	}
}

/* Wait up to 2 s until pid is stopped (state T in /proc/PID/stat). */
static bool stdio_stopped(pid_t pid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (int i = 0; i < 2000; i++) {
		FILE *f = fopen(path, "r");
		bool t = false;

		if (f && fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ')
			t = p[2] == 'T' || p[2] == 't';
		if (f)
			fclose(f);
		if (t)
			return true;
		usleep(1000);
	}
	return false;
}

/*
 * Bytes the client sent before the attachment, still unread in the server's stdin when attach
 * puts the socket in the map, reach the server as they are (counting starts at attach): the
 * guard does not take their plain read for a read of unjudged bytes. What comes next is judged.
 */
static void sp_unread_before_attach_run(void)
{
	static struct attach at;
	struct server s;
	char line[512];
	json_t *a;

	SKIP_IF_NEEDED();
	server_start(&s, T_SOCKETPAIR, 50);
	server_parked(&s); /* its stdin set, waiting in poll() */
	assert_int_equal(kill(s.pid, SIGSTOP), 0);
	assert_true(stdio_stopped(s.pid));
	call_line(line, sizeof(line), "1", "echo");
	server_send(&s, line, strlen(line));
	call_line(line, sizeof(line), "2", "danger");
	server_send(&s, line, strlen(line));
	attach_one(&at, &s, NULL);
	assert_true(attach_says(&at, "bytes its client sent before the attachment wait unread"));
	assert_int_equal(kill(s.pid, SIGCONT), 0);
	a = server_answer(&s, "2", ANSWER_MS);
	assert_non_null(a);
	json_decref(a);
	assert_int_equal(ran(&s, R_NODE, "danger"), 1); /* sent before: not judged */
	expect_denied(&s, 3, "a denied call after the unread bytes");
	s.next_id = 4;
	expect_sync(&s);
	assert_int_equal(ran(&s, R_NODE, "danger"), 1);
	assert_false(server_reap(&s, 0));
	assert_int_equal(counter(MCPF_CNT_RACE_KILLS), 0);
	attach_stop(&at);
	server_stop(&s);
}

static void test_sp_unread_before_attach(void **state)
{
	RACE_RETRY(sp_unread_before_attach_run);
}

/* ---- pipes ------------------------------------------------------------------------------------- */

/* Write all of buf to a pipe server, tolerating its death (EPIPE): 0, or -errno. */
static int pipe_send(struct server *s, const char *buf, size_t n, size_t chunk)
{
	while (n) {
		size_t k = chunk && chunk < n ? chunk : n;
		int err = send_all(s->in, buf, k);

		if (err)
			return err;
		buf += k;
		n -= k;
	}
	return 0;
}

/* Wait up to ms for the server to end; true when it did. */
static bool server_wait_end(struct server *s, int ms)
{
	for (int i = 0; i < ms * 5; i++) {
		if (server_reap(s, 0))
			return true;
		usleep(200);
	}
	return server_reap(s, 0);
}

static const char *status_text(struct server *s)
{
	static char buf[64];

	if (!s->reaped)
		return "still running";
	if (WIFSIGNALED(s->status))
		snprintf(buf, sizeof(buf), "killed by signal %d", WTERMSIG(s->status));
	else
		snprintf(buf, sizeof(buf), "exited %d", WEXITSTATUS(s->status));
	return buf;
}

/* Writes into the pipe the tracepoints cannot read: each must kill the server. */
enum opaque { OP_SPLICE, OP_TEE, OP_VMSPLICE, OP_SENDFILE, OP_SPLICE_FILE, OP_N };
static const char *const opaque_names[OP_N] = { "splice", "tee", "vmsplice", "sendfile",
						"splice from a file" };

/* Writes line by op into the server's stdin: what the call returned, or -errno. */
static ssize_t opaque_write(struct server *s, enum opaque op, const char *line)
{
	size_t n = strlen(line);
	int p[2] = { -1, -1 }, q[2] = { -1, -1 }, fd;
	char path[128];
	struct iovec iov = { .iov_base = (void *)line, .iov_len = n };
	ssize_t ret = -EINVAL;

	switch (op) {
	case OP_SPLICE:
	case OP_TEE:
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		assert_int_equal(write(p[1], line, n), (ssize_t)n);
		if (op == OP_SPLICE) {
			ret = splice(p[0], NULL, s->in, NULL, n, 0);
		} else {
			/* tee copies between two pipes: the server's is the second */
			ret = tee(p[0], s->in, n, 0);
		}
		break;
	case OP_VMSPLICE:
		ret = vmsplice(s->in, &iov, 1, 0);
		break;
	case OP_SENDFILE:
		snprintf(path, sizeof(path), "%s/sendfile.txt", env.dir);
		assert_int_equal(write_file(path, line), 0);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		ret = sendfile(s->in, fd, NULL, n);
		close(fd);
		break;
	case OP_SPLICE_FILE:
		snprintf(path, sizeof(path), "%s/splice.txt", env.dir);
		assert_int_equal(write_file(path, line), 0);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fd >= 0);
		ret = splice(fd, NULL, s->in, NULL, n, 0);
		close(fd);
		break;
	default:
		break;
	}
	if (ret < 0)
		ret = -errno;
	for (int i = 0; i < 2; i++) {
		if (p[i] >= 0)
			close(p[i]);
		if (q[i] >= 0)
			close(q[i]);
	}
	return ret;
}

/* The denied call, plain. */
static const char denied_line[] =
	"{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"tools/call\",\"params\":{\"name\":\"danger\","
	"\"arguments\":{}}}\n";

/*
 * The hostile writes of the pipe tests, one per server (index i of HW_N): each hostile line
 * whole, then each a byte a write, the denied call's name split between a writev's iovecs, a
 * 10 MB line, and an allowed call by each write the tracepoints cannot read.
 */
enum {
	HW_NH = sizeof(hostile) / sizeof(hostile[0]),
	HW_WHOLE = 0,
	HW_BYTES = HW_NH,
	HW_WRITEV = 2 * HW_NH,
	HW_BIG,
	HW_OPAQUE,
	HW_N = HW_OPAQUE + OP_N
};
_Static_assert(HW_N <= MCPF_STDIO_MAX_SESSIONS, "one attach");

/* Write hostile write i to the server, saying what it is in what: 0, or the write's -errno. */
static ssize_t hostile_write(struct server *v, int i, char *what, size_t size)
{
	ssize_t err;

	if (i < HW_BYTES) {
		snprintf(what, size, "%s", hostile[i].what);
		return pipe_send(v, hostile[i].bytes, strlen(hostile[i].bytes), 0);
	}
	if (i < HW_WRITEV) {
		snprintf(what, size, "%s, a byte a write", hostile[i - HW_BYTES].what);
		return pipe_send(v, hostile[i - HW_BYTES].bytes,
				 strlen(hostile[i - HW_BYTES].bytes), 1);
	}
	if (i == HW_WRITEV) {
		/* "dan" | "ger": the name split between iovecs */
		const char *cut = strstr(denied_line, "ger\"");
		struct iovec iov[2] = {
			{ (void *)denied_line, cut - denied_line },
			{ (void *)cut, strlen(cut) },
		};

		snprintf(what, size, "the name split in a writev");
		return writev(v->in, iov, 2) < 0 ? -errno : 0;
	}
	if (i == HW_BIG) {
		size_t big = 10 << 20, n;
		char *buf = malloc(big + 64);

		assert_non_null(buf);
		snprintf(what, size, "a 10 MB line");
		n = snprintf(buf, 256,
			     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
			     "\"params\":{\"name\":\"danger\",\"arguments\":{\"pad\":\"");
		memset(buf + n, 'x', big - n);
		memcpy(buf + big, "\"}}}\n", 5);
		err = pipe_send(v, buf, big + 5, 0);
		free(buf);
		return err;
	}
	{
		enum opaque op = (enum opaque)(i - HW_OPAQUE);
		/* static: vmsplice leaves the pages the writer's, read when the server reads */
		static char line[512];

		snprintf(what, size, "an allowed call by %s", opaque_names[op]);
		return opaque_write(v, op, call_line(line, sizeof(line), "3", "echo"));
	}
}

/*
 * --pipe-action kill, one server per hostile write: an allowed call first (answered: allowed
 * traffic is unaffected), then the write, whole or a byte at a time. The server must be killed
 * (SIGKILL) and no reader of it may run "danger". Also: the denied call split in a writev's
 * iovecs, a 10 MB line, and writes the tracepoints cannot read (splice, tee, vmsplice,
 * sendfile), refused unread (the server killed, though the call is an allowed one).
 */
static void test_pipe_kill_hostile(void **state)
{
	static struct attach at;
	static struct server s[HW_N];
	static pid_t pids[HW_N];
	char what[HW_N][160];

	SKIP_IF_NEEDED();
	KILL_OR_REFUSED();
	for (int i = 0; i < HW_N; i++) {
		server_start(&s[i], T_PIPE, 0);
		pids[i] = s[i].pid;
	}
	attach_start(&at, pids, HW_N, "kill");
	assert_true(attach_says(&at, "stdin: pipe"));
	for (int i = 0; i < HW_N; i++) {
		expect_ran(&s[i], 1, "echo");
		hostile_write(&s[i], i, what[i], sizeof(what[i]));
	}
	for (int i = 0; i < HW_N; i++) {
		if (!server_wait_end(&s[i], 3000) || !killed_by_sigkill(&s[i])) {
			size_t n;
			char *raw = slurp(s[i].raw, &n);

			fail_msg("%s: the server was not killed (%s); it read: %s", what[i],
				 status_text(&s[i]), show(raw, n, 2000));
		}
		expect_no_danger(&s[i], what[i]);
		/* "an allowed call by splice" and the like: refused unread, not run */
		if (i >= HW_OPAQUE)
			assert_int_equal(ran(&s[i], R_NODE, "echo"), 1);
	}
	print_message("%d pipe servers, each killed before it could run what it was sent "
		      "(%" PRIu64 " kills counted)\n",
		      HW_N, counter(MCPF_CNT_PIPE_KILLS));
	attach_stop(&at);
	for (int i = 0; i < HW_N; i++)
		server_stop(&s[i]);
}

/*
 * --pipe-action audit: a denied call is counted and audited (the reason says it was not
 * stopped) but reaches the server, which runs it, as documented; the session goes on.
 */
static void test_pipe_audit(void **state)
{
	static struct attach at;
	struct server s;
	json_t *l, *o, *j;
	size_t i;
	bool said = false;

	SKIP_IF_NEEDED();
	server_start(&s, T_PIPE, 0);
	attach_one(&at, &s, "audit");
	expect_ran(&s, 1, "echo");
	expect_ran(&s, 2, "danger");
	expect_ran(&s, 3, "echo");
	assert_int_equal(ran(&s, R_NODE, "danger"), 1);
	l = audit_wait(&at, "deny", "danger", 1);
	assert_int_equal(audit_count(l, "deny", "danger"), 1);
	json_array_foreach(l, i, o) {
		const char *r = json_string_value(json_object_get(o, "reason"));

		said |= r && strstr(r, "not stopped: --pipe-action audit");
	}
	assert_true(said);
	json_decref(l);
	j = stats_json();
	assert_int_equal(stats_count(j, "danger", "rule"), 1);
	assert_int_equal(stats_count(j, "echo", "allow"), 2);
	json_decref(j);
	assert_false(server_reap(&s, 0));
	attach_stop(&at);
	server_stop(&s);
}

/*
 * The race: a fresh pipe server asleep in read(2) (or busy with lines just written) while the
 * client writes a denied call: after allowed ones, as the first write, or a byte at a time. Its
 * SIGKILL is sent at the write's sys_enter: the server must never run the call. Rounds of 64
 * servers per attach (sessions of one attach); STDIO_RACE_ROUNDS sets how many (768 by
 * default, ~50 s: an attach costs ~3 s of verification here, so 2000 rounds take ~2 minutes).
 */
static void test_pipe_race(void **state)
{
	enum { PER = MCPF_STDIO_MAX_SESSIONS };
	static struct attach at;
	static struct server s[PER];
	static pid_t pids[PER];
	int rounds = getenv("STDIO_RACE_ROUNDS") ? atoi(getenv("STDIO_RACE_ROUNDS")) : 768;
	int done = 0, kills = 0, variants[3] = {}, before_ran = 0;
	struct timespec t0, t1;

	SKIP_IF_NEEDED();
	KILL_OR_REFUSED();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (done < rounds) {
		int n = rounds - done < PER ? rounds - done : PER;

		for (int i = 0; i < n; i++) {
			server_start(&s[i], T_PIPE, 0);
			pids[i] = s[i].pid;
		}
		attach_start(&at, pids, n, "kill");
		for (int i = 0; i < n; i++) {
			struct server *v = &s[i];
			int r = done + i, variant = r % 3;
			char line[512], ids[16];

			variants[variant]++;
			if (variant == 0) {
				/* allowed calls, then the denied one, without waiting */
				for (int k = 0; k < 1 + r % 4; k++) {
					snprintf(ids, sizeof(ids), "%d", 10 + k);
					call_line(line, sizeof(line), ids, "echo");
					pipe_send(v, line, strlen(line), 0);
				}
				pipe_send(v, denied_line, strlen(denied_line), 0);
			} else if (variant == 1) {
				/* the first write, to a server asleep in read(2) (sometimes waited for) */
				if (r % 2)
					usleep(300);
				pipe_send(v, denied_line, strlen(denied_line), 0);
			} else {
				/* a byte a write, after an allowed call half the time */
				if (r % 2) {
					call_line(line, sizeof(line), "10", "echo");
					pipe_send(v, line, strlen(line), 0);
				}
				pipe_send(v, denied_line, strlen(denied_line), 1);
			}
		}
		for (int i = 0; i < n; i++) {
			struct server *v = &s[i];

			server_wait_end(v, 3000);
			if (killed_by_sigkill(v))
				kills++;
			for (int rd = 0; rd < R_N; rd++)
				if (ran(v, rd, "danger")) {
					size_t len;
					char *raw = slurp(v->raw, &len);

					fail_msg(
						"round %d (variant %d): the server ran the denied call "
						"(%s); it read: %s",
						done + i, (done + i) % 3, status_text(v),
						show(raw, len, 2000));
				}
			before_ran += ran(v, R_NODE, "echo");
		}
		attach_stop(&at);
		for (int i = 0; i < n; i++) {
			if (!killed_by_sigkill(&s[i]))
				fail_msg("round %d: the server was not killed (%s)", done + i,
					 status_text(&s[i]));
			server_stop(&s[i]);
		}
		done += n;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("%d rounds (%d after allowed calls, %d as the first write, %d a byte a "
		      "write) in %.1f s: %d servers killed, none ran the denied call; %d allowed "
		      "calls written before it ran\n",
		      done, variants[0], variants[1], variants[2],
		      (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, kills, before_ran);
	assert_int_equal(kills, done);
}

/*
 * A non-blocking pipe that fills (a slow server): one write of eight allowed 30 KB lines
 * returns short, and the client writes the rest, again and again as it must: nothing is
 * refused, all eight run, the server lives. A second server gets other bytes after its short
 * write: refused unread (killed), its call never run.
 */
static void test_pipe_partial_write(void **state)
{
	static struct attach at;
	struct server s[2];
	pid_t pids[2];
	size_t n = 0, off = 0;
	char *buf = malloc(1 << 20), other[512];
	int writes = 0, shorts = 0;
	json_t *l;

	SKIP_IF_NEEDED();
	KILL_OR_REFUSED();
	assert_non_null(buf);
	for (int i = 1; i <= 8; i++) {
		char *pad = malloc(30001);

		memset(pad, 'a' + i, 30000);
		pad[30000] = 0;
		n += snprintf(buf + n, (1 << 20) - n,
			      "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
			      "{\"name\":\"echo\",\"arguments\":{\"pad\":\"%s\"}}}\n",
			      i, pad);
		free(pad);
	}
	for (int i = 0; i < 2; i++) {
		server_start(&s[i], T_PIPE, 150);
		pids[i] = s[i].pid;
		fcntl(s[i].in, F_SETFL, O_NONBLOCK);
	}
	attach_start(&at, pids, 2, "kill");
	while (off < n) {
		struct pollfd p = { .fd = s[0].in, .events = POLLOUT };
		ssize_t w = write(s[0].in, buf + off, n - off);

		writes++;
		if (w < 0 && errno != EAGAIN)
			fail_msg("write: %s (server: %s)", strerror(errno),
				 server_reap(&s[0], 0) ? status_text(&s[0]) : "running");
		if (w < (ssize_t)(n - off))
			shorts++;
		if (w > 0)
			off += w;
		if (off < n)
			poll(&p, 1, 5000);
	}
	for (int i = 1; i <= 8; i++) {
		char ids[16];
		json_t *a;

		snprintf(ids, sizeof(ids), "%d", i);
		a = server_answer(&s[0], ids, 10000);
		if (!a)
			fail_msg("line %d of 8: no answer (server: %s)", i,
				 server_reap(&s[0], 0) ? status_text(&s[0]) : "running");
		json_decref(a);
	}
	assert_int_equal(ran(&s[0], R_NODE, "echo"), 8);
	assert_false(server_reap(&s[0], 0));
	assert_true(shorts > 0);
	/* the second: a short write, then other bytes */
	{
		ssize_t w = write(s[1].in, buf, n);

		assert_true(w > 0 && (size_t)w < n);
		usleep(400000); /* room again */
		call_line(other, sizeof(other), "99", "echo");
		w = write(s[1].in, other, strlen(other));
		(void)w;
	}
	if (!server_wait_end(&s[1], 3000) || !killed_by_sigkill(&s[1]))
		fail_msg("other bytes after a short write: the server was not killed (%s)",
			 status_text(&s[1]));
	assert_int_equal(ran(&s[1], R_NODE, "echo") <= 8, 1);
	{
		FILE *f = fopen(s[1].log, "r");
		char line[256];

		while (f && fgets(line, sizeof(line), f))
			if (strstr(line, "\t99\n"))
				fail_msg("the call written after a short write ran: %s", line);
		if (f)
			fclose(f);
	}
	l = audit_lines(&at);
	print_message("8 lines of 30 KB (%zu bytes) in %d writes, %d short: all ran, nothing "
		      "refused; other bytes after a short write: killed (%d audit lines)\n",
		      n, writes, shorts, (int)json_array_size(l));
	json_decref(l);
	free(buf);
	attach_stop(&at);
	server_stop(&s[0]);
	server_stop(&s[1]);
}

/* ---- --pipe-action refuse (the BPF LSM) ------------------------------------------------------- */

/* The audit lines of at whose reason contains text. */
static int audit_said(struct attach *at, const char *text)
{
	json_t *l = audit_lines(at);
	int n = audit_reasons(l, text);

	json_decref(l);
	return n;
}

/*
 * --pipe-action refuse, one server per hostile write, as for kill: an allowed call first, then
 * the write. Whole (and the name split in a writev's iovecs, a 10 MB line): the write fails with
 * EPERM, nothing of it reaches the server, which lives and runs the next call. A byte a write:
 * the write that ends the denied value (or makes it unreadable) fails, and so does every later
 * write (the server holds the start of that value). sendfile from a file: refused, the session
 * goes on. splice from a pipe, tee and vmsplice check no permission that could refuse them: the
 * bytes reach the server unread (audited so), and every later write fails.
 */
static void test_pipe_refuse_hostile(void **state)
{
	static struct attach at;
	static struct server s[HW_N];
	static pid_t pids[HW_N];
	char what[160], line[512];
	int refusals = 0, dead = 0;

	SKIP_IF_NEEDED();
	REFUSE_OR_REFUSED();
	for (int i = 0; i < HW_N; i++) {
		server_start(&s[i], T_PIPE, 0);
		pids[i] = s[i].pid;
	}
	attach_start(&at, pids, HW_N, "refuse");
	assert_true(attach_says(&at, "stdin: pipe"));
	for (int i = 0; i < HW_N; i++) {
		struct server *v = &s[i];
		/* a byte a write ends the stream; opaque writes no check refuses go through */
		bool through = i >= HW_OPAQUE && i - HW_OPAQUE != OP_SENDFILE &&
			       i - HW_OPAQUE != OP_SPLICE_FILE;
		bool goes_on = !(i >= HW_BYTES && i < HW_WRITEV) && !through;
		ssize_t err;

		expect_ran(v, 1, "echo");
		err = hostile_write(v, i, what, sizeof(what));
		snprintf(step, sizeof(step), "%s", what);
		if (through) {
			json_t *a = server_answer(v, "3", ANSWER_MS);

			if (err < 0 || !a)
				fail_msg("%s: no check refuses it, so it must go through (%zd, %s)",
					 what, err, a ? "answered" : "not answered");
			json_decref(a);
		} else if (err != -EPERM) {
			size_t n;
			char *raw = slurp(v->raw, &n);

			fail_msg("%s: the write was not refused (%s); the server read: %s", what,
				 err ? strerror((int)-err) : "written", show(raw, n, 2000));
		} else {
			refusals++;
		}
		if (goes_on) {
			expect_ran(v, 4, "echo");
		} else {
			/* the stream is dead: an allowed call's write is refused too */
			call_line(line, sizeof(line), "4", "echo");
			if (pipe_send(v, line, strlen(line), 0) != -EPERM)
				fail_msg("%s: a write after it was not refused", what);
			assert_int_equal(ran(v, R_NODE, "echo"), through ? 2 : 1);
			dead++;
		}
		expect_no_danger(v, what);
		if (server_reap(v, 0))
			fail_msg("%s: the server ended (%s)", what, status_text(v));
	}
	step[0] = 0;
	/* the events are read every 100 ms */
	for (int k = 0; k < 50 && audit_said(&at, "its write failed with EPERM") < refusals; k++)
		usleep(20000);
	assert_true(audit_said(&at, "its write failed with EPERM") >= refusals);
	assert_int_equal(audit_said(&at, "written after a refused write"), dead);
	assert_true(counter(MCPF_CNT_PIPE_REFUSALS) >= (uint64_t)(refusals + dead));
	print_message("%d pipe servers: %d writes refused, %d sessions dead after a refused piece "
		      "or bytes no check refuses; none ran the denied call, all live\n",
		      HW_N, refusals, dead);
	attach_stop(&at);
	for (int i = 0; i < HW_N; i++)
		server_stop(&s[i]);
}

/*
 * One IORING_OP_WRITE of buf into fd through a ring of one entry (raw syscalls: no liburing):
 * the completion's result (bytes written, or -errno); -1000 - errno when the ring cannot be had.
 */
static int uring_write(int fd, const char *buf, size_t n)
{
	struct io_uring_params p = {};
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	void *sq, *cq, *sqes;
	size_t sq_len, cq_len, sqes_len = sizeof(*sqe);
	unsigned *tail, *head, *array, *ctail, *chead;
	int ring = (int)syscall(__NR_io_uring_setup, 1, &p), res;

	if (ring < 0)
		return -1000 - errno;
	sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED, ring, IORING_OFF_SQ_RING);
	cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED, ring, IORING_OFF_CQ_RING);
	sqes = mmap(NULL, sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
		close(ring);
		return -1000 - ENOMEM;
	}
	sqe = sqes;
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_WRITE;
	sqe->fd = fd;
	sqe->addr = (unsigned long)buf;
	sqe->len = (unsigned)n;
	sqe->off = (__u64)-1; /* the current position: a pipe takes only that */
	tail = (unsigned *)((char *)sq + p.sq_off.tail);
	array = (unsigned *)((char *)sq + p.sq_off.array);
	array[0] = 0;
	__atomic_store_n(tail, *tail + 1, __ATOMIC_RELEASE);
	res = (int)syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
	if (res < 0) {
		res = -1000 - errno;
	} else {
		head = (unsigned *)((char *)cq + p.cq_off.head);
		ctail = (unsigned *)((char *)cq + p.cq_off.tail);
		chead = head;
		cqe = (struct io_uring_cqe *)((char *)cq + p.cq_off.cqes);
		res = __atomic_load_n(ctail, __ATOMIC_ACQUIRE) != *chead ? cqe[0].res : -1000 - EIO;
	}
	munmap(sq, sq_len);
	munmap(cq, cq_len);
	munmap(sqes, sqes_len);
	close(ring);
	return res;
}

/*
 * --pipe-action refuse and io_uring: a write into the pipe that no syscall tracepoint saw is
 * refused whole, even an allowed call's (it was not judged), audited as such; the session goes
 * on (nothing of it entered the pipe).
 */
static void test_pipe_refuse_uring(void **state)
{
	static struct attach at;
	struct server s;
	char line[512];
	int res;

	SKIP_IF_NEEDED();
	REFUSE_OR_REFUSED();
	server_start(&s, T_PIPE, 0);
	attach_one(&at, &s, "refuse");
	expect_ran(&s, 1, "echo");
	res = uring_write(s.in, call_line(line, sizeof(line), "2", "echo"), strlen(line));
	if (res <= -1000) {
		print_message("SKIP: io_uring cannot be had here: %s\n", strerror(-1000 - res));
		attach_stop(&at);
		server_stop(&s);
		skip();
	}
	if (res != -EPERM)
		fail_msg("an io_uring write into the pipe: %s, not refused",
			 res < 0 ? strerror(-res) : "written");
	expect_ran(&s, 3, "echo");
	assert_int_equal(ran(&s, R_NODE, "echo"), 2);
	for (int k = 0; k < 50 && !audit_said(&at, "a path no tracepoint reads (io_uring)"); k++)
		usleep(20000);
	assert_int_equal(audit_said(&at, "a path no tracepoint reads (io_uring)"), 1);
	print_message("an allowed call written with io_uring: refused (EPERM), audited; the next "
		      "call runs\n");
	attach_stop(&at);
	server_stop(&s);
}

/*
 * --pipe-action refuse under `mcpfence daemon`: a policy directory whose file fits the servers
 * this test executes (`--serve-stdio`); one server runs before the daemon starts (found in
 * /proc), one starts after it (stopped at its exec, enrolled, continued). On each, an allowed
 * call runs, the denied call's write fails with EPERM and is audited so, the next call runs.
 * Where the BPF LSM is missing the daemon refuses the action, saying why, as attach does.
 */
static void test_pipe_refuse_daemon(void **state)
{
	static struct attach at;
	static struct server s[2];
	char dir[PATH_MAX], path[PATH_MAX + 32], exe[PATH_MAX], line[512], said[64];
	const char *argv[16];
	ssize_t n;
	FILE *f;

	SKIP_IF_NEEDED();
	snprintf(dir, sizeof(dir), "%s/policies-daemon", env.dir);
	assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
	snprintf(path, sizeof(path), "%s/10-served.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"version\":\"1\",\"default\":\"allow\",\"match\":{\"exe\":\"*/test_stdio\","
		   "\"argv\":\"* --serve-stdio *\"},\"tools\":{\"danger\":{\"action\":\"deny\","
		   "\"reason\":\"" REASON "\"}}}\n");
	assert_int_equal(fclose(f), 0);
	if (env.no_lsm[0]) {
		char out[4096];

		assert_int_equal(mcpfence(out, sizeof(out), "daemon", "--policy-dir", dir,
					  "--pipe-action", "refuse", "--audit", "/dev/null", NULL),
				 1);
		if (!strstr(out, "--pipe-action refuse needs the BPF LSM"))
			fail_msg("daemon --pipe-action refuse where it cannot run: %s", out);
		assert_int_equal(kernel__attachment(), KERNEL_ATTACHED_NONE);
		print_message("%s: the daemon refuses it, as it must\n", env.no_lsm);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	assert_true(n > 0);
	exe[n] = 0;
	server_start_as(&s[0], T_PIPE, 0, exe); /* before the daemon */
	snprintf(at.audit, sizeof(at.audit), "%s/audit-daemon.jsonl", env.dir);
	argv[0] = env.mcpfence;
	argv[1] = "daemon";
	argv[2] = "--policy-dir";
	argv[3] = dir;
	argv[4] = "--pipe-action";
	argv[5] = "refuse";
	argv[6] = "--audit";
	argv[7] = at.audit;
	argv[8] = "--quiet";
	argv[9] = NULL;
	attach_spawn(&at, argv, "daemon: finding", ATTACH_START_S, 20000);
	server_start_as(&s[1], T_PIPE, 0, exe); /* after it */
	for (int i = 0; i < 2; i++) {
		snprintf(said, sizeof(said), "pid %d (test_stdio): enrolled", s[i].pid);
		for (int k = 0; k < 1500 && !attach_says(&at, said); k++)
			usleep(20000);
		if (!attach_says(&at, said))
			fail_msg("the daemon did not enroll the server %s it:\n%s",
				 i ? "started after" : "running before", at.log);
	}
	for (int i = 0; i < 2; i++) {
		struct server *v = &s[i];

		snprintf(step, sizeof(step), "under the daemon, the server %s it",
			 i ? "started after" : "running before");
		expect_ran(v, 1, "echo");
		call_line(line, sizeof(line), "2", "danger");
		if (pipe_send(v, line, strlen(line), 0) != -EPERM)
			fail_msg("%s: the denied call's write was not refused", step);
		expect_ran(v, 3, "echo");
		expect_no_danger(v, step);
		assert_false(server_reap(v, 0));
	}
	for (int k = 0; k < 250 && audit_said(&at, "its write failed with EPERM") < 2; k++)
		usleep(20000);
	assert_int_equal(audit_said(&at, "its write failed with EPERM"), 2);
	print_message("under the daemon, a server running before it and one started after it: "
		      "the denied call's write failed with EPERM (audited), the next call ran\n");
	step[0] = 0;
	attach_stop(&at);
	server_stop(&s[0]);
	server_stop(&s[1]);
}

struct refuse_writer {
	struct server *s;
	int calls;
	int denied_every; /* every denied_every-th write is the denied call */
	int ok, eperm, other, other_errno;
};

static void *refuse_writer_main(void *arg)
{
	struct refuse_writer *rw = arg;
	char line[512], ids[16];

	for (int k = 1; k <= rw->calls; k++) {
		bool deny = k % rw->denied_every == 0;
		ssize_t w;

		snprintf(ids, sizeof(ids), "%d", 1000 + k);
		call_line(line, sizeof(line), ids, deny ? "danger" : "echo");
		w = write(rw->s->in, line, strlen(line));
		if (w == (ssize_t)strlen(line) && !deny) {
			rw->ok++;
		} else if (w < 0 && errno == EPERM && deny) {
			rw->eperm++;
		} else {
			rw->other++;
			rw->other_errno = w < 0 ? errno : 0;
		}
	}
	return NULL;
}

/*
 * The race, under refuse: a client writes calls without waiting for their answers, a denied one
 * among every few, while the server reads: every allowed write is written and runs, every denied
 * one fails with EPERM, the server never runs it and lives. STDIO_REFUSE_CALLS sets how many
 * (6000 by default, 2000 of them denied).
 */
static void test_pipe_refuse_race(void **state)
{
	static struct attach at;
	struct server s;
	struct refuse_writer rw = { .denied_every = 3 };
	pthread_t t;
	struct timespec t0, t1;
	char ids[16];
	json_t *a;

	SKIP_IF_NEEDED();
	REFUSE_OR_REFUSED();
	rw.calls = getenv("STDIO_REFUSE_CALLS") ? atoi(getenv("STDIO_REFUSE_CALLS")) : 6000;
	server_start(&s, T_PIPE, 0);
	rw.s = &s;
	attach_one(&at, &s, "refuse");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pthread_create(&t, NULL, refuse_writer_main, &rw), 0);
	/* the client reads the answers meanwhile (the server would block on a full stdout) */
	for (int k = 1; k <= rw.calls; k++) {
		if (k % rw.denied_every == 0)
			continue;
		snprintf(ids, sizeof(ids), "%d", 1000 + k);
		a = server_answer(&s, ids, 60000);
		if (!a) {
			pthread_join(t, NULL);
			fail_msg("allowed call %d of %d: no answer (server %s; %d writes refused, "
				 "%d not as they should be)",
				 k, rw.calls, server_reap(&s, 0) ? status_text(&s) : "running",
				 rw.eperm, rw.other);
		}
		json_decref(a);
	}
	pthread_join(t, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rw.other)
		fail_msg("%d writes not as they should be (last errno %s)", rw.other,
			 strerror(rw.other_errno));
	expect_no_danger(&s, "the race under refuse");
	assert_int_equal(ran(&s, R_NODE, "echo"), rw.ok);
	assert_int_equal(rw.eperm, rw.calls / rw.denied_every);
	assert_false(server_reap(&s, 0));
	expect_ran(&s, 1, "echo");
	print_message("%d calls written in %.1f s without waiting: %d allowed, all run; %d denied, "
		      "each write refused, none run; the server lives\n",
		      rw.calls, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, rw.ok,
		      rw.eperm);
	attach_stop(&at);
	server_stop(&s);
}

int main(int argc, char **argv)
{
	/* the server of test_pipe_refuse_daemon, executed: stdin and stdout are its pipes */
	if (argc == 4 && !strcmp(argv[1], "--serve-stdio"))
		srv_main(argv[2], argv[3], 0);
	if (getenv("STDIO_TEST")) /* one test, or a glob of them */
		cmocka_set_test_filter(getenv("STDIO_TEST"));
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sp_allowed_unchanged, test_setup,
						test_teardown),
		cmocka_unit_test_setup_teardown(test_sp_denied_answered, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_sp_split_every_offset, test_setup,
						test_teardown),
		cmocka_unit_test_setup_teardown(test_sp_168_lines, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_sp_10mb_line, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_sp_race_blocking, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_sp_race_spinning, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_sp_unread_before_attach, test_setup,
						test_teardown),
		cmocka_unit_test_setup_teardown(test_sp_hostile, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_sp_attach_after_calls, test_setup,
						test_teardown),
		cmocka_unit_test_setup_teardown(test_sp_after_detach, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_pipe_kill_hostile, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_pipe_audit, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_pipe_race, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_pipe_partial_write, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_pipe_refuse_hostile, test_setup,
						test_teardown),
		cmocka_unit_test_setup_teardown(test_pipe_refuse_race, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_pipe_refuse_uring, test_setup, test_teardown),
		cmocka_unit_test_setup_teardown(test_pipe_refuse_daemon, test_setup, test_teardown),
	};

	return cmocka_run_group_tests_name("mcpfence attach --pid, end to end", tests, setup,
					   teardown);
}
