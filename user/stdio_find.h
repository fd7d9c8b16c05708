/* SPDX-License-Identifier: Apache-2.0 */
/*
 * stdio_find: what the stdin and stdout of a running process are, and who holds the other ends,
 * for `attach --pid` on a stdio MCP server that was started without mcpfence. Read from /proc
 * (the links of /proc/PID/fd, the access mode in /proc/PID/fdinfo) and, for AF_UNIX stream
 * sockets (the socketpairs Node's libuv gives a child), from NETLINK_SOCK_DIAG (the peer socket's
 * inode, as `ss -xp` finds it), asked in the server's network namespace.
 */
#ifndef MCPFENCE_STDIO_FIND_H
#define MCPFENCE_STDIO_FIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum stdio_kind {
	STDIO_MISSING = 0, /* the descriptor is closed */
	STDIO_UNIX_STREAM = 1,
	STDIO_PIPE = 2,
	STDIO_OTHER = 3, /* a terminal, a file, /dev/null, another kind of socket: desc says */
};

/* One descriptor of one process: a process holding an end twice is listed twice. */
struct stdio_holder {
	pid_t pid;
	int fd;
	char comm[16];
};

#define STDIO_HOLDERS_MAX 16

struct stdio_end {
	enum stdio_kind kind;
	uint64_t ino;	   /* inode of the fd (socket:[N] or pipe:[N]; other: what fstat says) */
	uint64_t peer_ino; /* AF_UNIX stream: the peer socket's inode (UNIX_DIAG_PEER); 0: none */
	/*
	 * unix: processes holding the PEER socket (the client's end), any fd;
	 * pipe on fd 0: processes that hold the same pipe open for writing (the clients);
	 * pipe on fd 1: processes that hold it open for reading. The server pid itself is excluded.
	 */
	struct stdio_holder peers[STDIO_HOLDERS_MAX];
	unsigned npeers;
	/*
	 * processes (server included) that hold the server-side end: the same socket inode, or for
	 * a pipe on fd 0 the pipe open for reading (fd 1: for writing). A server started by npx or a
	 * shell shares its stdin with a child: that child is listed here.
	 */
	struct stdio_holder sharers[STDIO_HOLDERS_MAX];
	unsigned nsharers;
	/*
	 * One line for a human, cut with "..." when longer: "unix socketpair, inode 123; client end
	 * inode 124 held by pid 50 (node) fd 18", "pipe, inode 77; written by pid 60 (python3)
	 * fd 5; shared with pid 61 (node) fd 0", "a terminal (/dev/pts/3): not an MCP client's
	 * stdio".
	 */
	char desc[320];
	unsigned peers_more, sharers_more; /* holders found beyond STDIO_HOLDERS_MAX: unlisted */
	unsigned unreadable; /* processes whose descriptors could not be read: holders may lack */
	uint64_t cookie;     /* unix: the socket's cookie (= SO_COOKIE) per sock_diag; 0: unknown */
	uint64_t peer_cookie; /* unix: the peer socket's cookie; 0: unknown */
};

/*
 * Describe fd 0 (in) and fd 1 (out) of process pid. 0, or -errno after log_err() naming the pid
 * and what failed: -ESRCH (no such process, or it has exited), -EACCES (its descriptors are
 * another user's: root or CAP_SYS_PTRACE reads them), -EINVAL (not a pid, or the id of a thread
 * that does not lead its process), or the -errno of /proc or of sock_diag. Every process on the host is a candidate holder, this one included (copies taken
 * with stdio_find__take before the call are listed too).
 */
int stdio_find__server(pid_t pid, struct stdio_end *in, struct stdio_end *out);

/*
 * A copy of fd `fd` of process pid (pidfd_open + pidfd_getfd, O_CLOEXEC), or -errno (logged).
 * Needs ptrace rights over pid (PTRACE_MODE_ATTACH_REALCREDS): root, or its parent under Yama 1.
 */
int stdio_find__take(pid_t pid, int fd);

/* The socket cookie (SO_COOKIE) of a socket fd, or 0 with errno set (logged). */
uint64_t stdio_find__cookie(int fd);

/* What sock_diag says of one AF_UNIX socket. */
struct stdio_diag {
	uint8_t type, state, shutdown; /* SOCK_*, TCP_* (1: connected, 10: listening), SHUTDOWN_* */
	bool has_peer;		       /* UNIX_DIAG_PEER was there */
	uint32_t peer;		       /* the peer's inode; 0: the peer was closed */
	uint64_t cookie;
	char name[110]; /* its address: "" none, a path, or "@" and an abstract name */
};

/*
 * The answer to sock_diag request seq about unix inode ino, among the netlink messages of one
 * datagram (buf, len): 0 and d; -ENOENT (no such socket), the kernel's -errno, -EBADMSG (cut
 * short, lengths that do not add up, another inode), -ENODATA (no answer to seq there). Not
 * logged. Exposed for tests: stdio_find__server asks.
 */
int stdio_find__diag_answer(const void *buf, size_t len, uint32_t seq, uint32_t ino,
			    struct stdio_diag *d);

/* Is fd of pid a "pipe" or a "socket" (type), as its /proc/PID/fd link says ("pipe:[N]")? */
bool stdio_find__fd_is(pid_t pid, int fd, const char *type);
/* /proc/PID/comm, or "?" when it cannot be read (the process is gone). */
void stdio_find__comm(pid_t pid, char comm[16]);
/* The executable of PID (the /proc/PID/exe link), or fallback when it cannot be read. */
void stdio_find__exe(pid_t pid, char *out, size_t size, const char *fallback);

/* The file status flags of fd of pid (O_NONBLOCK, O_ACCMODE…: its fdinfo "flags:"), or -errno. */
int stdio_find__fd_flags(pid_t pid, int fd);

/*
 * The threads of pid blocked in a read of its fd, up to max in tids: all, or (plain) only those
 * asleep in AF_UNIX's own receive path, which a socket in a SOCKMAP no longer fills. Returns how
 * many.
 */
unsigned stdio_find__readers(pid_t pid, int fd, bool plain, pid_t *tids, unsigned max);

/* Wait up to ms milliseconds until pid is stopped (T or t); false if it does not stop or is gone. */
bool stdio_find__stopped(pid_t pid, int ms);

/* "missing", "unix stream", "pipe", "other" */
const char *stdio_find__kind_name(enum stdio_kind kind);

#endif
