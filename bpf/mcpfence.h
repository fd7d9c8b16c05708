/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI shared by the BPF programs and userspace: fixed-size structs, __uN types only,
 * explicit padding. Userspace checks every size with _Static_assert (user/kernel.c).
 */
#ifndef MCPFENCE_ABI_H
#define MCPFENCE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define MCPF_PIN_DIR "/sys/fs/bpf/mcpfence"
/*
 * The SO_MARK of mcpfence proxy's upstream sockets: the kernel plane leaves their connections
 * alone, which the proxy judged already. Setting a mark takes CAP_NET_ADMIN.
 */
#define MCPF_PROXY_MARK 0x6d637078u

/* probe.bpf.c: the feature probe counts getpid() calls of one process. */
struct mcpf_probe_cfg {
	__u32 pid;
	__u32 _pad;
};

/*
 * Scanner results (bpf/mcp_scan.bpf.h). One message is one JSON value: an object (a request,
 * a notification, a response) or a batch (array) of them. Names and methods are decoded (JSON
 * escapes resolved); the id is kept raw, as it stands in the message.
 */
#define MCPF_METHOD_MAX 48
#define MCPF_NAME_MAX 128
#define MCPF_ID_MAX 48
#define MCPF_SCAN_MAX_CALLS 8 /* a batch with more elements is UNPARSED */

enum mcpf_scan_status {
	MCPF_SCAN_OK = 0,	  /* read with certainty */
	MCPF_SCAN_UNPARSED = 1,	  /* not read with certainty: denied unless the policy says so */
	MCPF_SCAN_INCOMPLETE = 2, /* the value goes on past the bytes given */
};

enum mcpf_call_flags {
	MCPF_CALL_HAS_ID = 1,	  /* a request (else a notification) */
	MCPF_CALL_ID_STRING = 2,  /* the raw id is a JSON string (quotes included in id[]) */
	MCPF_CALL_HAS_NAME = 4,	  /* params.name was present (tools/call) */
	MCPF_CALL_HAS_METHOD = 8, /* a method was present (else a response) */
};

enum mcpf_scan_flags {
	MCPF_SCAN_BATCH = 1,	/* the value is an array of messages */
	MCPF_SCAN_TRAILING = 2, /* bytes other than whitespace follow the value (packed messages) */
	MCPF_SCAN_NEWLINE = 4,	/* a raw newline inside the value (it is not one stdio line) */
};

/*
 * The bytes one scan reads: a hook copies one message (or the start of one) here, usually in a
 * per-CPU slot. A value longer than MCPF_SCAN_BUF_MAX is UNPARSED. The pad lets the scanner read
 * 8 bytes at any offset below MCPF_SCAN_BUF_MAX; it never reads bytes at or past the length given.
 */
#define MCPF_SCAN_BUF_MAX 65536
#define MCPF_SCAN_BUF_PAD 64
struct mcpf_scan_buf {
	__u8 data[MCPF_SCAN_BUF_MAX + MCPF_SCAN_BUF_PAD];
	__u64 scan_state[16]; /* the scanner's own state between its steps */
};

/* One JSON-RPC message inside the scanned value (one element of a batch). */
struct mcpf_call {
	__u32 method_off;  /* offset of the method value's opening quote in the scanned bytes */
	__u32 method_span; /* its length there, quotes included (escapes make it > method_len + 2) */
	__u16 method_len;
	__u16 name_len;
	__u16 id_len;
	__u16 flags; /* enum mcpf_call_flags */
	char method[MCPF_METHOD_MAX];
	char name[MCPF_NAME_MAX];
	char id[MCPF_ID_MAX];
};

/*
 * Why bytes were not read with certainty (an event's and an audit line's reason): the scanner's
 * reasons first, then those of the hooks around it. The first reason met is kept.
 */
enum mcpf_why {
	MCPF_WHY_NONE = 0,
	MCPF_WHY_JSON = 1,	  /* not JSON, or not UTF-8 (lone surrogates included) */
	MCPF_WHY_BOUND = 2,	  /* past a bound: nesting, batch size, method, name or id length */
	MCPF_WHY_DUP_KEY = 3,	  /* a key that matters, twice: servers read the last one */
	MCPF_WHY_FOLDED_KEY = 4,  /* a key equal to one that matters only without regard to case */
	MCPF_WHY_SHAPE = 5,	  /* not a message as servers read it (top level, types, both
				   * method and result/error, tools/call without a string name) */
	MCPF_WHY_ID = 6,	  /* a tools/call id a server may write back otherwise */
	MCPF_WHY_TRAILING = 7,	  /* bytes after the value where one value is the whole */
	MCPF_WHY_NEWLINE = 8,	  /* a raw newline inside a value on a line-framed transport */
	MCPF_WHY_FRAMING = 9,	  /* HTTP framing that cannot be followed */
	MCPF_WHY_ENCODING = 10,	  /* a Content-Encoding */
	MCPF_WHY_MEDIA_TYPE = 11, /* a Content-Type other than application/json */
	MCPF_WHY_CHARSET = 12,	  /* a charset other than utf-8 */
	MCPF_WHY_HEADERS = 13,	  /* Mcp-Method or Mcp-Name disagree with the body */
	MCPF_WHY_TOO_LARGE = 14,  /* a body larger than MCPF_SCAN_BUF_MAX */
	MCPF_WHY_BUSY = 15,	  /* no working slot free on the CPU */
	MCPF_WHY_INCOMPLETE = 16, /* the value never ended */
	MCPF_WHY_STDIO_LARGE = 17, /* stdio: a value of MCPF_STDIO_VALUE_MAX bytes or more */
	MCPF_WHY_RESEND = 18,	   /* pipes: the rest of a short write came back different */
	MCPF_WHY_OPAQUE = 19,	   /* pipes: splice, tee, vmsplice, sendfile, copy_file_range */
	MCPF_WHY_IOVECS = 20,	   /* pipes: a writev of more than MCPF_PIPE_SEGS iovecs */
	MCPF_WHY_UNJUDGED = 21,	   /* socketpairs: read by the server before the verdict saw it */
	MCPF_WHY_UNSEEN = 22,	   /* pipes: a write no tracepoint judged (io_uring, ...) */
	MCPF_WHY_DEAD = 23,	   /* pipes: after a refused write that ended inside a value */
	MCPF_WHY_MAX = 24,
};

struct mcpf_scan_result {
	__u32 status; /* enum mcpf_scan_status */
	__u32 ncalls;
	__u32 end;   /* offset just past the scanned JSON value */
	__u32 flags; /* enum mcpf_scan_flags */
	__u32 why;   /* enum mcpf_why, when status is not OK */
	__u32 _pad;
	struct mcpf_call calls[MCPF_SCAN_MAX_CALLS];
};

/*
 * TCP enforcement (bpf/tcp.bpf.c): sock_ops puts sockets of watched ports in a SOCKHASH, sk_msg
 * frames each HTTP/1.1 request of the client, scans its body and decides from these maps.
 * The policy lives in two generations; userspace fills the idle one, then flips tcp_active.gen.
 * Several policies can be in force at once, one per policy slot (attach --policy-dir: each
 * session gets the policy of a directory that fits its server): slot s has generations 2s and
 * 2s + 1, and tcp_active[s] says which one is in force. A session's slot is in stdio_pslots (a
 * stdio session) or tcp_ports (a watched port).
 */
#define MCPF_PSLOTS 16		    /* policies in force at once */
#define MCPF_GENS (2 * MCPF_PSLOTS) /* generations: entries of tcp_gen */
#define MCPF_GEN_INDEX(pslot, gen) ((((__u32)(pslot) & (MCPF_PSLOTS - 1)) << 1) | ((__u32)(gen)&1))
#define MCPF_TCP_MAX_PORTS 16
#define MCPF_TCP_MAX_GLOBS 64	/* hide entries + glob rules, per generation */
#define MCPF_TCP_GLOB_MAX 64	/* bytes of one glob pattern */
#define MCPF_TCP_MAX_LIMITS 64	/* distinct budgets, per generation */
#define MCPF_TCP_CALL_LIMITS 8	/* all_tools limits, and a rule's limits */
#define MCPF_TCP_SESSION_MAX 64 /* bytes of Mcp-Session-Id kept */
#define MCPF_TCP_PENDING 8	/* denied ids per connection waiting for their reply */
#define MCPF_TCP_HDR_MAX 8192	/* request headers longer than this are refused */
#define MCPF_TCP_RULE_NONE 0xffffffffu
/*
 * Runs of the sk_msg program in flight on one CPU at once: a run can be preempted (preempt=full
 * or lazy) and another task's run start on the same CPU. Each takes a slot of its own (working
 * state and scan buffer); a run that finds all of its CPU's slots held refuses its request.
 */
#define MCPF_TCP_SLOTS 4

/* The head of a slot's working state (tcp_work_map, per CPU): who holds it. */
struct mcpf_slot {
	__u64 owner; /* the task running in it (bpf_get_current_task); 0: free */
	__u32 idx;   /* its index in tcp_work_map */
	__u32 _pad;
};

enum mcpf_kind {
	MCPF_KIND_ALLOW = 0, /* same numbers as enum deny_kind (user/decide.h) */
	MCPF_KIND_HIDDEN = 1,
	MCPF_KIND_DEFAULT = 2,
	MCPF_KIND_RULE = 3,
	MCPF_KIND_CONDITION = 4, /* require/deny_if: not checkable in the kernel, fail closed */
	MCPF_KIND_APPROVAL = 5,	 /* approve rule and no ticket */
	MCPF_KIND_LIMIT = 6,
	MCPF_KIND_INVALID = 7,
	MCPF_KIND_UNPARSED = 8,
	MCPF_KIND_MAX = 9,
};

enum mcpf_rule_action {
	MCPF_ACT_ALLOW = 0,
	MCPF_ACT_DENY = 1,
	MCPF_ACT_APPROVE = 2,
	MCPF_ACT_CONDITION = 3, /* allow only if require/deny_if hold: cannot be judged here */
};

struct mcpf_rule {
	__u32 idx;   /* index in the policy's rules[] (for the audit pointer) */
	__u8 action; /* enum mcpf_rule_action */
	__u8 nlimits;
	__u16 _pad;
	__u16 limits[MCPF_TCP_CALL_LIMITS]; /* slots in tcp_limits of this generation */
};

/*
 * tcp_rules: the exact-name rules of a generation. The key is short (hashing it is most of a
 * lookup's cost): the name's length and mcpf_name_hash. The value holds the whole name, which
 * BPF compares: a name whose hash meets a rule's is not that rule's tool and has no exact rule.
 */
struct mcpf_rule_key {
	__u32 gen; /* index in tcp_gen */
	__u32 len;
	__u64 hash;
};

struct mcpf_rule_entry {
	struct mcpf_rule rule;
	char name[MCPF_NAME_MAX]; /* NUL-padded */
};

enum mcpf_glob_kind {
	MCPF_GLOB_HIDE = 0,
	MCPF_GLOB_RULE = 1,
};

struct mcpf_glob {
	char pat[MCPF_TCP_GLOB_MAX];
	__u16 len;
	__u8 kind; /* enum mcpf_glob_kind */
	__u8 _pad;
	__u32 idx;	       /* index in hide[] (HIDE) */
	struct mcpf_rule rule; /* (RULE) */
};

enum mcpf_scope_kind {
	MCPF_SCOPE_GRANT = 0, /* same numbers as enum scope (user/policy.h) */
	MCPF_SCOPE_SESSION = 1,
	MCPF_SCOPE_AGENT = 2,
	MCPF_SCOPE_GLOBAL = 3,
};

struct mcpf_limit {
	__u64 ident; /* names the budget across reloads: hash of counter, scope, window */
	__s64 max;
	__u32 window_s;
	__u32 scope; /* enum mcpf_scope_kind */
};

struct mcpf_budget_key {
	__u64 ident;
	__u64 scope_key; /* 0 for grant/global; session hash; uid<<32 | comm hash for agent */
};

struct mcpf_budget {
	__s64 left;
};

struct mcpf_ticket {
	__s64 count;
	__u64 expires_ns; /* CLOCK_BOOTTIME; 0: never */
};

struct mcpf_gen_cfg {
	__u8 def_allow;
	__u8 unparsed_allow;
	__u8 nglobs;
	__u8 nall_limits;
	__u8 nhide; /* globs[0..nhide) are hide entries, globs[nhide..nglobs) glob rules */
	__u8 _pad[3];
	__u16 all_limits[MCPF_TCP_CALL_LIMITS];
	__u32 policy; /* the policy this generation holds: index in tcp_policies */
};

/* Totals of the TCP hook (tcp_counters, per CPU). */
enum mcpf_tcp_counter {
	MCPF_CNT_REQUESTS = 0,	       /* HTTP requests framed */
	MCPF_CNT_BYTES = 1,	       /* request bytes framed */
	MCPF_CNT_POISONED = 2,	       /* requests whose framing was refused */
	MCPF_CNT_CORKED = 3,	       /* times a send was held for more bytes */
	MCPF_CNT_REPLIES = 4,	       /* replies rewritten to say "denied by policy" */
	MCPF_CNT_CALLS = 5,	       /* tools/call messages decided */
	MCPF_CNT_EVENTS_LOST = 6,      /* decisions whose event found the ring buffer full */
	MCPF_CNT_BUSY = 7,	       /* sends refused: every slot of their CPU was held */
	MCPF_CNT_STDIO_BYTES = 8,      /* stdio: bytes read of the clients' writes */
	MCPF_CNT_STDIO_VALUES = 9,     /* stdio: JSON values (messages) judged */
	MCPF_CNT_STDIO_BROKEN = 10,    /* stdio: lines made unreadable (a denial that could not be
					* rewritten, or bytes not read with certainty) */
	MCPF_CNT_PIPE_KILLS = 11,      /* stdio on pipes: servers killed before a denied call */
	MCPF_CNT_UNWATCHED = 12,       /* sockets of watched connections tcp_socks had no room for:
					* their packets are dropped (handle_egress) */
	MCPF_CNT_LIST_HIDDEN = 13,     /* tools taken out of tools/list answers (tcp_list) */
	MCPF_CNT_LIST_UNFILTERED = 14, /* tools/list answers that passed as they were: too large,
					* not whole in one send, or not read with certainty */
	MCPF_CNT_RACE_KILLS = 15,      /* stdio on socketpairs: reads of bytes the verdict had not
					* taken yet (the kernel's race): their reader killed */
	MCPF_CNT_PIPE_REFUSALS = 16,   /* stdio on pipes: writes refused by the BPF LSM */
	MCPF_CNT_MAX = 17,
};

struct mcpf_active {
	__u32 gen;    /* 0 or 1: which generation of the slot's policy maps is in force */
	__u32 loaded; /* 0 until the first policy is in: every call is denied */
};

/*
 * tcp_stats (per CPU): verdicts per (tool, kind, policy), keyed by the name's hash. Each CPU's
 * copy of a value names its tool: set by the first count on that CPU ("claimed"), compared by
 * every later one. A count whose name differs (a hash collision) goes to the entry of the empty
 * name, as counts do when the map is full; userspace adds each CPU's count to the name it holds.
 */
struct mcpf_stat_key {
	__u64 hash; /* mcpf_name_hash of the tool; that of "" for calls whose name could not be read */
	__u32 kind;   /* enum mcpf_kind */
	__u32 policy; /* the policy that decided: index in tcp_policies; 0 before the first one */
};

struct mcpf_stat_val {
	__u64 count;
	__u32 len;
	__u32 claimed;
	char name[MCPF_NAME_MAX]; /* NUL-padded */
};

/*
 * tcp_policies (an array, written and read by userspace only): which policy a stat key's
 * policy index names. One entry per distinct (name, digest) put in force since the attachment
 * began, from index 1; a SIGHUP that loads the same bytes again keeps its index.
 */
#define MCPF_TCP_MAX_POLICIES 256
#define MCPF_POLICY_NAME_MAX 64
#define MCPF_POLICY_PATH_MAX 256
struct mcpf_policy_info {
	__u64 digest;			 /* FNV-1a 64 of the policy file's bytes */
	__u64 loaded_s;			 /* CLOCK_REALTIME seconds when first compiled */
	char name[MCPF_POLICY_NAME_MAX]; /* file name without .json, [A-Za-z0-9._+@-]; "": free */
	char path[MCPF_POLICY_PATH_MAX]; /* the file's real path; "" when longer than this */
};

/* A connection, seen the same way from both ends: IPv4 as IPv4-mapped IPv6. */
struct mcpf_conn_key {
	__u32 cli[4];
	__u32 srv[4];
	__u16 cport;
	__u16 sport;
	__u32 stdio; /* stdio streams: the session's index + 1 (cli, srv, ports 0); TCP: 0 */
};

struct mcpf_sock_key {
	struct mcpf_conn_key conn;
	__u32 server_side;
	__u32 _pad;
};

struct mcpf_pending {
	__u16 len; /* 0: free */
	__u8 kind; /* the denial: enum mcpf_kind */
	__u8 gen;  /* the generation that decided (its index in tcp_gen) */
	__u16 idx; /* its rule, or its limit slot (LIMIT) or hide entry (HIDDEN); 0xffff none */
	__u16 _pad;
	char id[MCPF_ID_MAX];
};

/*
 * tcp_reasons: what an answer to a denied call says after "denied by policy: " (stdio answers
 * can grow; TCP ones cannot, they say "denied by policy"), per generation, kind and index:
 * MCPF_REASON_KEY(gen, kind, idx). JSON-escaped by userspace.
 */
#define MCPF_REASON_MAX 200
#define MCPF_TCP_MAX_RULES_REASONS 2048 /* reasons of one generation (rules with one) */
#define MCPF_REASON_KEY(gen, kind, idx)                                            \
	((((__u32)(gen) & (MCPF_GENS - 1)) << 24) | (((__u32)(kind)&0xff) << 16) | \
	 ((__u32)(idx)&0xffff))
struct mcpf_reason {
	__u32 len;
	char text[MCPF_REASON_MAX];
};

enum mcpf_conn_phase {
	MCPF_CONN_HEADERS = 0,	/* waiting for a request's headers */
	MCPF_CONN_POISONED = 1, /* framing lost: the server was made to refuse; later sends drop */
};

struct mcpf_conn {
	__u32 phase;
	__u32 npending;
	struct mcpf_pending pending[MCPF_TCP_PENDING];
	__u32 next_pending;
	__u32 list; /* tools/list requests unanswered: the server's sends are walked (tcp_list) */
};

enum mcpf_event_flags {
	MCPF_EV_NEUTRALIZED = 1, /* the request was rewritten in place */
	MCPF_EV_HTTP = 2,	 /* the HTTP framing was refused (request made invalid) */
	MCPF_EV_TICKET = 4,	 /* allowed by an approval ticket */
	MCPF_EV_BATCH = 8,
	MCPF_EV_HDR_MISMATCH = 16, /* Mcp-Method/Mcp-Name disagreed with the body */
	MCPF_EV_BUSY = 32,	   /* refused unread: every slot of the CPU was held */
	MCPF_EV_BROKEN = 64,	   /* stdio: the line was made unreadable, not rewritten: the
				    * server reads no call, and answers nothing for its id */
	MCPF_EV_KILLED = 128, /* stdio on pipes: the server was killed before it could read it */
	MCPF_EV_AUDIT_ONLY = 256, /* stdio on pipes, --pipe-action audit: counted, not stopped */
};

/*
 * stdio streams (bpf/stdio.bpf.h): the bytes a client writes to a server's stdin, judged value
 * by value. Socketpairs: the server's end of its stdin is in stdio_socks, and an sk_skb verdict
 * reads each skb the client sends to it; the stream is keyed by the cookie of the sending socket.
 * The server's answers (its stdout) pass the same way, to rewrite the answers to denied calls.
 * Pipes: syscall tracepoints read what the client writes, keyed by the pipe's inode.
 */
#define MCPF_STDIO_MAX_SESSIONS 64
#define MCPF_STDIO_PIECE 16384	   /* bytes read into the buffer at a time */
#define MCPF_STDIO_VALUE_MAX 49152 /* a value longer than this is not read (TOO_LARGE) */
#define MCPF_STDIO_PIECES 8	   /* pieces of one skb or write: past them, refused unread */
/* stdio_streams keys: a socket's cookie, or this of a pipe's inode */
#define MCPF_STDIO_PIPE_KEY(ino) ((__u64)(ino) | (1ULL << 63))
#define MCPF_STDIO_KILL_MAX 6 /* processes that read a server's stdin pipe */
#define MCPF_PIPE_SEGS 16     /* iovecs of a writev to a watched pipe that are read */

enum mcpf_stdio_dir {
	MCPF_STDIO_REQUESTS = 0, /* client to server */
	MCPF_STDIO_REPLIES = 1,	 /* server to client */
};

enum mcpf_stdio_transport {
	MCPF_STDIO_SOCKETPAIR = 0,
	MCPF_STDIO_PIPE = 1,
};

enum mcpf_stdio_phase {
	MCPF_STDIO_SYNC = 0,  /* between values: a value may start */
	MCPF_STDIO_VALUE = 1, /* in a value that began in an earlier skb or write: it is in buf */
	MCPF_STDIO_SKIP = 2,  /* in a line refused (made unreadable): skip to its end */
	MCPF_STDIO_DEAD = 3,  /* pipes, refuse: a refused write cut a value; every write refused */
};

enum mcpf_pipe_action {
	MCPF_PIPE_AUDIT = 0, /* count and audit; the call goes through */
	MCPF_PIPE_KILL = 1,  /* SIGKILL the server before the denied call reaches its pipe */
	MCPF_PIPE_REFUSE =
		2, /* the BPF LSM fails the write (EPERM): no byte of it enters the pipe */
};

struct mcpf_stdio_stream {
	__u64 owner;	 /* the task judging its bytes now (bpf_get_current_task); 0: none */
	__u32 session;	 /* index of the session (server) userspace gave */
	__u32 dir;	 /* enum mcpf_stdio_dir */
	__u32 transport; /* enum mcpf_stdio_transport */
	__u32 phase;	 /* enum mcpf_stdio_phase */
	__u32 carry;	 /* MCPF_STDIO_VALUE: the value's bytes so far, in buf.data[0..carry) */
	__u32 action;	 /* pipes: enum mcpf_pipe_action */
	__u32 nkill;
	__u32 resend; /* pipes: bytes of the last write judged but not written (the
			    * writer writes them again: they must come back the same) */
	__u32 seq;    /* pipes: pieces of writes judged (a refused write sees whether
			    * another one was judged after it) */
	__u32 _pad;
	__u64 resend_hash;		       /* their hash (seeded) */
	__u32 kill_tgids[MCPF_STDIO_KILL_MAX]; /* pipes: the processes that read the pipe */
	struct mcpf_scan_buf buf;
};

/*
 * A socketpair stream's guard (stdio_guards, keyed as its stream): bytes the server reads past
 * the verdict. pre: what sat unread in the socket when it went into stdio_socks (sent before the
 * attachment: the server reads it as it is); a read past that was never judged.
 */
struct mcpf_stdio_guard {
	__s64 pre;
	__u32 session;
	__u32 _pad;
};

/*
 * The daemon's finder (bpf/daemon.bpf.c): programs exec'd with a pipe or an AF_UNIX stream
 * socket as both fd 0 and fd 1, whose executable's file name is in daemon_exes (or any, with
 * daemon_cfg[MCPF_DAEMON_CFG_EVERY]), are stopped and named to userspace.
 */
#define MCPF_DAEMON_EXES 256
#define MCPF_EXE_NAME 32 /* bytes of an executable's file name compared (31, NUL-padded) */

enum mcpf_stdin_kind {
	MCPF_STDIN_PIPE = 1,
	MCPF_STDIN_SOCKET = 2, /* an AF_UNIX stream socket */
};

enum mcpf_daemon_cfg {
	MCPF_DAEMON_CFG_EVERY = 0,   /* nonzero: every such program, whatever its name */
	MCPF_DAEMON_CFG_STOPPED = 1, /* counter: programs stopped and named */
	MCPF_DAEMON_CFG_MISSED = 2,  /* counter: not stopped, the ring full */
	MCPF_DAEMON_CFG_N = 3,
};

struct mcpf_exe_name {
	char name[MCPF_EXE_NAME];
};

struct mcpf_exec_event {
	__u32 pid;
	__u8 stdin_kind; /* enum mcpf_stdin_kind */
	__u8 stdout_kind;
	__u8 stopped; /* 1: SIGSTOP sent, the daemon continues it */
	__u8 _pad;
	char exe[MCPF_EXE_NAME];
};

/*
 * The daemon's naming (bpf/daemon.bpf.c): a server a file's "match" may fit by its
 * "server_name" is watched from its exec (daemon_naming, keyed by its tgid, with the inode of
 * its stdout) until its first write there, whose first MCPF_ANSWER_BYTES go to userspace
 * (daemon_answers). From then until userspace has read its name (state DONE), each process
 * that reads its answers (daemon_naming_clients, keyed by tgid) is stopped at its next read.
 */
#define MCPF_ANSWER_BYTES 8192
#define MCPF_NAMING_SERVERS 256
#define MCPF_NAMING_CLIENTS 256

enum mcpf_naming_state {
	MCPF_NAMING_WATCH = 1,	  /* no answer yet */
	MCPF_NAMING_ANSWERED = 2, /* its first answer went to userspace: clients stop */
	MCPF_NAMING_MISSED = 3,	  /* it answered, the ring had no room: no name */
	MCPF_NAMING_DONE = 4,	  /* userspace has its name: nothing stops any more */
};

struct mcpf_naming {
	__u64 out_ino; /* the inode of its fd 1 */
	__u64 state;   /* enum mcpf_naming_state (64 bits: compared and swapped) */
	__u32 server;  /* the watched server (tgid): itself, or the one whose child this is, which
			* shares its stdout (npx, a shell: the state is the server's) */
	__u32 _pad;
};

#define MCPF_NAMING_PER_CLIENT 4 /* servers one client waits for the first answer of */

struct mcpf_naming_client {
	__u32 server[MCPF_NAMING_PER_CLIENT]; /* tgids; 0: none */
	__u32 stopped;			      /* 1: SIGSTOP sent, userspace continues it */
	__u32 _pad;
};

struct mcpf_answer_event {
	__u32 pid;
	__u32 len;   /* bytes in bytes[] */
	__u64 count; /* bytes the write wrote (more than len: cut) */
	__u8 bytes[MCPF_ANSWER_BYTES];
};

/*
 * tcp_events, the ring of decisions: allowed calls do not wake its reader until
 * MCPF_EVENTS_WAKE_BYTES wait, and then once per MCPF_EVENTS_WAKE_GAP_NS on a CPU (a wakeup
 * costs the sending process several us); the reader drains it at least every
 * MCPF_EVENTS_POLL_MS, and every MCPF_EVENTS_BUSY_POLL_MS while events come fast.
 */
#define MCPF_EVENTS_RING (1 << 20)
#define MCPF_EVENTS_WAKE_BYTES (MCPF_EVENTS_RING / 8)
#define MCPF_EVENTS_WAKE_GAP_NS 1000000ULL
#define MCPF_EVENTS_POLL_MS 100
/* a drain that found this many events: the next one comes after MCPF_EVENTS_BUSY_POLL_MS */
#define MCPF_EVENTS_BUSY 4
#define MCPF_EVENTS_BUSY_POLL_MS 1

struct mcpf_event {
	__u64 ts_ns; /* CLOCK_MONOTONIC */
	__u32 pid;
	__u32 uid;
	__u32 kind;  /* enum mcpf_kind */
	__u32 rule;  /* rule index, MCPF_TCP_RULE_NONE for default */
	__u32 limit; /* limit slot that fired (MCPF_KIND_LIMIT), hide index (HIDDEN) */
	__u32 gen;   /* the generation that decided, or the one in force: its index in tcp_gen */
	__u16 cport;
	__u16 sport;
	__u16 flags; /* enum mcpf_event_flags */
	__u16 why;   /* enum mcpf_why: why the bytes were refused unread (kind UNPARSED) */
	__u32 stdio; /* a stdio stream's session index + 1; 0: TCP */
	__u32 _pad;
	char comm[16];
	char method[MCPF_METHOD_MAX];
	char name[MCPF_NAME_MAX];
	char id[MCPF_ID_MAX];
	char session[MCPF_TCP_SESSION_MAX];
};

/*
 * 8 (or 4) bytes at any address, in one instruction. Through a pointer into a byte array clang
 * knows only 1-byte alignment and splits a __u64 access into 8 byte accesses and 14 shifts and
 * ors. A pointer made from an integer has its type's alignment, so the access stays whole. The
 * verifier takes unaligned accesses to map values where the CPU does them cheaply (x86-64,
 * arm64); elsewhere the program does not load, and mcpfence says so.
 */
#ifdef __bpf__
#define mcpf_load64(p) (*(const __u64 *)(unsigned long)(p))
#define mcpf_load32(p) (*(const __u32 *)(unsigned long)(p))
#define mcpf_store64(p, v) (*(__u64 *)(unsigned long)(p) = (v))
#else
#include <string.h>
static inline __u64 mcpf_load64(const void *p)
{
	__u64 v;

	memcpy(&v, p, sizeof(v));
	return v;
}
static inline __u32 mcpf_load32(const void *p)
{
	__u32 v;

	memcpy(&v, p, sizeof(v));
	return v;
}
#define mcpf_store64(p, v)                              \
	do {                                            \
		__u64 mcpf_v_ = (v);                    \
		memcpy((p), &mcpf_v_, sizeof(mcpf_v_)); \
	} while (0)
#endif

/*
 * Copy or clear n bytes (a constant multiple of 8), 8 at a time: __builtin_memcpy and
 * __builtin_memset between byte arrays compile to one instruction per byte for BPF, for the
 * reason given above.
 */
#ifdef __bpf__
#define mcpf_copy(dst, src, n)                                                        \
	do {                                                                          \
		_Static_assert((n) % 8 == 0, "mcpf_copy: n % 8");                     \
		for (int mcpf_i_ = 0; mcpf_i_ < (int)(n) / 8; mcpf_i_++)              \
			mcpf_store64((char *)(dst) + 8 * mcpf_i_,                     \
				     mcpf_load64((const char *)(src) + 8 * mcpf_i_)); \
	} while (0)
#define mcpf_zero(dst, n)                                                \
	do {                                                             \
		_Static_assert((n) % 8 == 0, "mcpf_zero: n % 8");        \
		for (int mcpf_i_ = 0; mcpf_i_ < (int)(n) / 8; mcpf_i_++) \
			mcpf_store64((char *)(dst) + 8 * mcpf_i_, 0);    \
	} while (0)
#else
#define mcpf_copy(dst, src, n) memcpy((dst), (src), (n))
#define mcpf_zero(dst, n) memset((dst), 0, (n))
#endif

/*
 * The hash of a tool name (len bytes of a NUL-padded MCPF_NAME_MAX buffer) for the keys of
 * tcp_rules and tcp_stats, 8 bytes a step, seeded per attachment. It is not collision-resistant
 * and need not be: the name is compared in the value.
 */
static inline __attribute__((always_inline)) __u64 mcpf_name_hash(const char *name, __u32 len,
								  __u64 seed)
{
	__u64 h = seed ^ ((__u64)len * 0x9e3779b97f4a7c15ULL);

	for (__u32 i = 0; i < MCPF_NAME_MAX / 8; i++) {
		__u64 w;

		if (8 * i >= len)
			break;
		w = mcpf_load64(name + 8 * i);
		if (len - 8 * i < 8)
			w &= (1ULL << (8 * (len - 8 * i))) - 1;
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h += (h << 23 | h >> 41) ^ seed;
	}
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

/* Are the NUL-padded names a and b, both len bytes, equal? 8 bytes a step. */
static inline __attribute__((always_inline)) int mcpf_name_eq(const char *a, const char *b,
							      __u32 len)
{
	for (__u32 i = 0; i < MCPF_NAME_MAX / 8; i++) {
		if (8 * i >= len)
			break;
		if (mcpf_load64(a + 8 * i) != mcpf_load64(b + 8 * i))
			return 0;
	}
	return 1;
}

#endif
