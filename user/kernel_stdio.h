/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kernel_stdio: `attach --pid`, the kernel plane on a stdio server that already runs. It finds
 * what the server's stdin and stdout are (stdio_find), registers their streams with BPF
 * (bpf/stdio.bpf.h) and puts the sockets in stdio_socks: the server's end of a socketpair stdin
 * (requests), the client's end of a socketpair stdout (answers). A pipe stdin is watched by the
 * syscall tracepoints of the writers, keyed by the pipe's inode.
 */
#ifndef MCPFENCE_KERNEL_STDIO_H
#define MCPFENCE_KERNEL_STDIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "mcpfence.h"

struct tcp_bpf;
struct kernel_compiled;

/* A process that reads a socket of the session in stdio_socks, and what the watchdog saw. */
struct kernel_stdio_reader {
	pid_t pid;
	int fd;
	uint64_t ino; /* the socket's inode: fd must still be it (a pid can be reused) */
	pid_t stuck; /* a thread seen asleep in the socket's plain path at the last look; 0: none */
	bool answers;	/* the client's end of the server's stdout; else the server's stdin */
	bool mode_told; /* its reads were seen and whether they block looked at */
};

#define KERNEL_STDIO_READERS 8

struct kernel_stdio_session {
	pid_t pid;
	char comm[16];
	struct kernel_stdio_reader readers[KERNEL_STDIO_READERS];
	unsigned nreaders;
	enum mcpf_stdio_transport transport; /* of its stdin */
	enum mcpf_pipe_action action;	     /* pipes */
	uint64_t req_key, rep_key;	     /* its streams in stdio_streams; 0: none */
	char desc[800];			     /* "stdin: ...; stdout: ..." */
	pid_t client_pid;		     /* the first holder of the client's end; 0: none */
	char client_comm[16];
	unsigned idx; /* its index in the BPF maps */
	/* pipes: who held the read end at attach (the watchdog's readers are sockets') */
	struct kernel_stdio_reader pipe_readers[KERNEL_STDIO_READERS];
	unsigned npipe_readers;
	bool ended;    /* removed from the maps: nothing reads its stdin any more */
	int client_fd; /* client_pid's fd of the client's end */
	char *held;    /* a fresh server: what waited in its stdin, to send again */
	size_t nheld;
};

/*
 * A daemon that comes back: is pid the server of a session its maps hold (its stdin's stream
 * in stdio_streams)? Its index (s described as kernel_stdio__add does, the maps untouched), or
 * -errno. Quiet: every program with a pipe or socket stdin is asked.
 */
int kernel_stdio__readopt(struct tcp_bpf *skel, pid_t pid, struct kernel_stdio_session *s);
/*
 * Then the sessions of the maps not adopted (adopted[idx] false: their server is gone, or no
 * policy fits it any more) go: streams, guards, sockets, pending ids, budgets. How many had a
 * stream.
 */
unsigned kernel_stdio__drop_unadopted(struct tcp_bpf *skel, const bool *adopted);
/*
 * And its programs: this build's verdict on stdio_socks (pinned anew), and this build's stages
 * under the pipe tracepoints left (*pipes: there were some). 0 or -errno (logged).
 */
int kernel_stdio__adopt_progs(struct tcp_bpf *skel, enum mcpf_pipe_action action, bool *pipes);

/* The session's conn, as audit lines and status rows name it: "socketpair:PID" or "pipe:PID". */
void kernel_stdio__conn(const struct kernel_stdio_session *s, char *out, size_t size);

/* The sk_skb program on stdio_socks (attached once, before the first socket goes in). */
int kernel_stdio__attach_prog(struct tcp_bpf *skel);

/*
 * Enforce on server pid as session idx: 0, or -errno after logging what and where. action:
 * what a denied call on a pipe stdin does.
 */
int kernel_stdio__add(struct tcp_bpf *skel, unsigned idx, pid_t pid, enum mcpf_pipe_action action,
		      struct kernel_stdio_session *s);

/*
 * The same, for a server that has read nothing of its stdin yet (stopped at its exec by the
 * daemon, before its first instruction): the bytes its client sent already, which the hooks
 * have not judged, are taken out of its stdin into s->held, for kernel_stdio__resend.
 */
int kernel_stdio__add_fresh(struct tcp_bpf *skel, unsigned idx, pid_t pid,
			    enum mcpf_pipe_action action, struct kernel_stdio_session *s,
			    bool fresh);
/*
 * Write s->held again into the server's stdin, where the hooks judge it like any other byte:
 * through the client's end of a socketpair (the verdict), or a writer of its own on the pipe
 * (the tracepoints, which must be on). Frees it. 0, or -errno: those bytes are lost (logged).
 */
int kernel_stdio__resend(struct kernel_stdio_session *s);
/*
 * What the answers to denied calls say, for generation gen of the policy compiled in kc: its
 * rules' reasons, as the audit lines say them (tcp_reasons). 0 or -errno (logged).
 */
int kernel_stdio__reasons(struct tcp_bpf *skel, const struct kernel_compiled *kc, unsigned gen);

/*
 * The watchdog, called every KERNEL_STDIO_WATCH_MS: a read of a socket in stdio_socks that
 * began while the kernel had an skb on the socket's own queue, and lost it to the verdict,
 * sleeps on that queue, which nothing fills any more (the reader hangs). A thread seen so twice
 * in a row has its process stopped and continued: the read restarts, through the map.
 */
#define KERNEL_STDIO_WATCH_MS 100
void kernel_stdio__unstick(struct kernel_stdio_session *s, unsigned n);

/*
 * Has session s ended: is its stdin read by no one any more? A socketpair's server end has left
 * stdio_socks (the kernel takes a socket out when its last holder closes it); of a pipe, no
 * process that held its read end at attach holds it still.
 */
bool kernel_stdio__ended(struct tcp_bpf *skel, const struct kernel_stdio_session *s);
/*
 * Take an ended session's entries out of the maps (streams, guard, pending answers): the maps
 * are as before it was added. Marks it ended.
 */
void kernel_stdio__remove(struct tcp_bpf *skel, struct kernel_stdio_session *s);

/* Does any session have a pipe stdin (the tracepoints are needed)? */
bool kernel_stdio__has_pipes(const struct kernel_stdio_session *s, unsigned n);

/*
 * The tracepoints on the writes of pipe clients (bpf/stdio_pipe.bpf.h), attached and pinned:
 * 0 or -errno (logged; kill needs bpf_send_signal_task, 6.13+).
 */
int kernel_stdio__attach_pipes(struct tcp_bpf *skel, enum mcpf_pipe_action action);
/* Remove the pinned tracepoint links (detach). */
void kernel_stdio__unpin_pipes(void);

/*
 * Empty stdio_socks (by fd): its sockets go back to plain sockets. The pinned stdio_streams is
 * emptied first: a verdict that still runs on a socket held by a sleeping reader passes all.
 */
void kernel_stdio__flush(int map_fd);

#endif
