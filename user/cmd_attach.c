// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence attach --policy P --port N...` and `mcpfence detach`: the kernel plane on TCP. attach
 * parses, loads and attaches (kernel_load), puts the policies in force (attach_policies), adopts
 * the connections already open (kernel_adopt), then loops until stopped: events into audit lines
 * (kernel_events), budget windows refilled, global budgets kept in step, SIGHUP swapping the
 * policy without a moment unenforced. detach removes what attach pinned, even after attach was
 * killed.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "attach.h"
#include "clock.h"
#include "audit.h"
#include "cgroup.h"
#include "cmd.h"
#include "control.h"
#include "daemon_find.h"
#include "feature_probes.h"
#include "kernel.h"
#include "kernel_adopt.h"
#include "kernel_compile.h"
#include "kernel_events.h"
#include "kernel_stdio.h"
#include "limits.h"
#include "log.h"
#include "mcpfence.h"
#include "policy.h"
#include "policy_dir.h"
#include "policy_watch.h"
#include "status.h"
#include "stdio_find.h"
#include "tcp.skel.h"

/* time(2) may read a coarse clock that lags the boundary the poll woke up for */
static uint64_t realtime_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

/* How often global budgets are brought to the host-wide table (kernel__sync_global). */
#define SYNC_MS 200

static int64_t mono_to_real_us(void)
{
	struct timespec m, r;

	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &r);
	return ((int64_t)r.tv_sec - m.tv_sec) * 1000000 + (r.tv_nsec - m.tv_nsec) / 1000;
}

static volatile sig_atomic_t stop_flag, reload_flag;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_flag = 1;
	else
		stop_flag = 1;
}

/*
 * Say when sockets of watched connections found tcp_socks full (once a second at most): BPF
 * dropped their packets, and the operator should know why those connections time out.
 */
static uint64_t counter(struct attach_ctx *ac, __u32 key)
{
	int fd = bpf_map__fd(ac->skel->maps.tcp_counters), ncpu = libbpf_num_possible_cpus();
	uint64_t vals[1024] = {}, n = 0;

	if (ncpu < 1 || ncpu > 1024 || bpf_map_lookup_elem(fd, &key, vals))
		return 0;
	for (int c = 0; c < ncpu; c++)
		n += vals[c];
	return n;
}

static void say_unwatched(struct attach_ctx *ac)
{
	uint64_t n = counter(ac, MCPF_CNT_EVENTS_LOST);

	/* and decisions whose event found the ring full (no daemon read it, or too slowly) */
	if (n > ac->events_lost)
		log_warn("%llu more decision%s found the event ring full: decided and counted, not "
			 "audited; %llu in all",
			 (unsigned long long)(n - ac->events_lost),
			 n - ac->events_lost == 1 ? "" : "s", (unsigned long long)n);
	ac->events_lost = n;
	n = counter(ac, MCPF_CNT_UNWATCHED);
	if (n <= ac->unwatched)
		return;
	log_warn("%llu more socket%s of watched connections found tcp_socks full (%u entries): "
		 "their packets are dropped, their sends fail (ETIMEDOUT); %llu in all",
		 (unsigned long long)(n - ac->unwatched), n - ac->unwatched == 1 ? "" : "s",
		 bpf_map__max_entries(ac->skel->maps.tcp_socks), (unsigned long long)n);
	ac->unwatched = n;
}

/* ms until the next window of a budget of a policy in force starts, at most 1000 */
static int next_window_ms(struct attach_ctx *ac)
{
	int best = 1000;

	for (unsigned s = 0; s < MCPF_PSLOTS; s++)
		if (ac->slots[s].pol) {
			int ms = kernel__next_window_ms(attach_policies__slot_kc(ac, s));

			if (ms < best)
				best = ms;
		}
	return best;
}

/*
 * Which stdio programs the servers need, from what each one's fd 0 is now: a pipe, a socket,
 * or (it cannot be read) both. kernel_stdio__add looks again, in full, and says what is wrong.
 */
static void stdin_kinds(const pid_t *pids, unsigned npids, struct kernel_load_opts *lo)
{
	bool pipes = false, sockets = false;

	for (unsigned i = 0; i < npids; i++) {
		char path[64];
		struct stat st;

		snprintf(path, sizeof(path), "/proc/%d/fd/0", (int)pids[i]);
		if (stat(path, &st)) {
			pipes = sockets = true;
			continue;
		}
		pipes |= S_ISFIFO(st.st_mode);
		sockets |= S_ISSOCK(st.st_mode);
	}
	lo->no_pipes = !pipes;
	lo->no_socketpairs = !sockets;
}

/*
 * The TCP plane on cgroup: sk_msg on tcp_socks, then cgroup_skb egress (a connection tcp_socks
 * has no room for is marked, and its packets are dropped there: fail closed), then sock_ops.
 */
static int attach_tcp(struct attach_ctx *ac, const char *cgroup, int *cg_fd,
		      struct bpf_link **egress, struct bpf_link **link)
{
	if (bpf_prog_attach(bpf_program__fd(ac->skel->progs.handle_sk_msg),
			    bpf_map__fd(ac->skel->maps.tcp_socks), BPF_SK_MSG_VERDICT, 0)) {
		log_err("sk_msg: attach to tcp_socks: %s", strerror(errno));
		return -1;
	}
	*cg_fd = open(cgroup, O_RDONLY | O_DIRECTORY);
	if (*cg_fd < 0) {
		log_err("%s: %s", cgroup, strerror(errno));
		return -1;
	}
	*egress = bpf_program__attach_cgroup(ac->skel->progs.handle_egress, *cg_fd);
	if (!*egress) {
		log_err("cgroup_skb egress: attach to %s: %s", cgroup, strerror(errno));
		return -1;
	}
	*link = bpf_program__attach_cgroup(ac->skel->progs.handle_sock_ops, *cg_fd);
	if (!*link) {
		log_err("sock_ops: attach to %s: %s", cgroup, strerror(errno));
		return -1;
	}
	return 0;
}

/* The row of stdio session i, before any call: `mcpfence status` lists it from the start. */
static void status_row(struct attach_ctx *ac, unsigned i)
{
	const struct kernel_stdio_session *s = &ac->stdio[i];
	struct status_session *row;
	char conn[40];

	kernel_stdio__conn(s, conn, sizeof(conn));
	row = status__get(&ac->status, conn);
	if (!row)
		return;
	if (row->ended) {
		/* the row of an earlier server of the same pid, ended: this one starts afresh */
		memset(row, 0, sizeof(*row));
		snprintf(row->conn, sizeof(row->conn), "%s", conn);
		ac->status.dirty = true;
	}
	row->pinned = true;
	if (ac->is_dir && ac->slots[ac->pslot[i]].pol)
		status__set_policy(row, ac->slots[ac->pslot[i]].pol->source);
	snprintf(row->plane, sizeof(row->plane), "stdio-kernel");
	row->server_pid = s->pid;
	snprintf(row->server, sizeof(row->server), "%.16s", s->comm);
	row->client_pid = s->client_pid;
	if (s->client_pid)
		stdio_find__exe(s->client_pid, row->client, sizeof(row->client), s->client_comm);
}

/*
 * Sessions whose stdin no one reads any more (the server and whoever shared its stdin exited,
 * or closed it): out of the maps, said, and marked in their status rows.
 */
static void sessions_ended(struct attach_ctx *ac, unsigned npids)
{
	for (unsigned i = 0; i < npids; i++) {
		struct kernel_stdio_session *s = &ac->stdio[i];
		char conn[40];
		struct status_session *row;

		if (s->ended || !kernel_stdio__ended(ac->skel, s))
			continue;
		kernel_stdio__remove(ac->skel, s);
		kernel__drop_stdio_budgets(ac->skel, i);
		log_info("pid %d (%s): its stdin is read by no one any more: session ended, its "
			 "entries removed",
			 s->pid, s->comm);
		kernel_stdio__conn(s, conn, sizeof(conn));
		row = status__get(&ac->status, conn);
		if (row) {
			row->ended = true;
			row->pinned = false; /* forgotten first when the table is full */
			ac->status.dirty = true;
		}
	}
	status__forget_ended(&ac->status, STATUS_ENDED_KEEP);
}

static void status_save(struct attach_ctx *ac)
{
	if (mkdir(STATUS_DIR, 0700) && errno != EEXIST)
		log_warn("%s: mkdir: %s", STATUS_DIR, strerror(errno));
	status__write(&ac->status, STATUS_PATH, ac->policy_path, getpid(), ac->started_us);
}

/*
 * Put the pipe tracepoints on, once a session has a pipe stdin (now: at once, before one is
 * added): 0 or -errno (logged).
 */
static int pipes_on(struct attach_ctx *ac, bool now)
{
	if (ac->pipes_attached || (!now && !kernel_stdio__has_pipes(ac->stdio, ac->npids)))
		return 0;
	if (kernel_stdio__attach_pipes(ac->skel, ac->pipe_action))
		return -EIO;
	ac->pipes_attached = true;
	return 0;
}

/*
 * `mcpfence enroll --pid PID`: server pid under this attachment, as a --pid given at the start
 * is, into the index of a session that ended or a new one. Its policy slot is set before its
 * streams exist: no byte of it is decided by another policy. The answer into reply; 0, or
 * -ENOSPC when every index is taken by a session that has not ended, or another -errno.
 * fresh: the server was stopped at its exec (kernel_stdio__add_fresh). known: who it is, read
 * already (taken over), or NULL.
 */
int attach__enroll(struct attach_ctx *ac, pid_t pid, bool fresh, struct proc_who *known,
		   char *reply)
{
	unsigned idx = MCPF_STDIO_MAX_SESSIONS, before = ac->npids;
	struct kernel_stdio_session *s;
	char err[POLICY_ERR_LEN];
	__u32 slot;
	int e;

	if (!bpf_program__autoload(ac->skel->progs.handle_stdio_skb) &&
	    !bpf_program__autoload(ac->skel->progs.handle_pipe_judge)) {
		snprintf(reply, CONTROL_LINE_MAX,
			 "error: pid %d: this attach loaded no stdio programs (start it with --pid "
			 "or --enroll)",
			 (int)pid);
		return -ENOTSUP;
	}
	for (unsigned i = 0; i < ac->npids; i++)
		if (!ac->stdio[i].ended && ac->stdio[i].pid == pid) {
			snprintf(reply, CONTROL_LINE_MAX, "error: pid %d is enforced on already",
				 (int)pid);
			return -EALREADY;
		}
	for (unsigned i = 0; i < ac->npids && idx == MCPF_STDIO_MAX_SESSIONS; i++)
		if (ac->stdio[i].ended)
			idx = i;
	if (idx == MCPF_STDIO_MAX_SESSIONS && ac->npids == MCPF_STDIO_MAX_SESSIONS) {
		/* sessions that ended since the last look (once a second) make room now */
		if (ac->rb)
			ring_buffer__consume(ac->rb);
		sessions_ended(ac, ac->npids);
		for (unsigned i = 0; i < ac->npids && idx == MCPF_STDIO_MAX_SESSIONS; i++)
			if (ac->stdio[i].ended)
				idx = i;
	}
	if (idx == MCPF_STDIO_MAX_SESSIONS) {
		if (ac->npids == MCPF_STDIO_MAX_SESSIONS) {
			snprintf(
				reply, CONTROL_LINE_MAX,
				"error: pid %d: %d stdio sessions are enforced on already: none has "
				"ended",
				(int)pid, MCPF_STDIO_MAX_SESSIONS);
			return -ENOSPC;
		}
		idx = ac->npids;
	}
	/* the events of the session that had this index name it: read before it is reused */
	if (ac->rb)
		ring_buffer__consume(ac->rb);
	if (ac->who && known) {
		policy_dir__who_move(&ac->who[idx], known);
	} else if (ac->who) {
		policy_dir__who_free(&ac->who[idx]);
		e = policy_dir__who_of_pid(pid, &ac->who[idx], err, sizeof(err));
		if (e) {
			snprintf(reply, CONTROL_LINE_MAX, "error: pid %d: %s", (int)pid, err);
			return e;
		}
	}
	s = &ac->stdio[idx];
	memset(s, 0, sizeof(*s));
	ac->pids[idx] = pid;
	ac->pslot[idx] = MCPF_PSLOTS; /* none yet: pointed at its slot below */
	if (idx == ac->npids)
		ac->npids++;
	log__clear_error();
	e = attach_policies__apply(ac, ac->dir, false, true);
	if (e) {
		snprintf(reply, CONTROL_LINE_MAX, "error: %s",
			 log__last_error()[0] ? log__last_error() : strerror(-e));
		goto undo;
	}
	/*
	 * A pipe stdin: the tracepoints first, so that no write of its client falls between its
	 * stream's registration (and, fresh, the bytes taken out) and their start.
	 */
	if (stdio_find__fd_is(pid, 0, "pipe") &&
	    bpf_program__autoload(ac->skel->progs.handle_pipe_judge)) {
		e = pipes_on(ac, true);
		if (e) {
			snprintf(reply, CONTROL_LINE_MAX, "error: %s",
				 log__last_error()[0] ? log__last_error() : strerror(-e));
			goto undo;
		}
	}
	e = kernel_stdio__add_fresh(ac->skel, idx, pid, ac->pipe_action, s, fresh);
	if (!e)
		e = pipes_on(ac, false);
	if (e) {
		free(s->held);
		s->held = NULL;
		if (e == -EALREADY)
			snprintf(reply, CONTROL_LINE_MAX,
				 "error: pid %d: its stdin is enforced on already, as another "
				 "session's (a process that shares it)",
				 (int)pid);
		else
			snprintf(reply, CONTROL_LINE_MAX, "error: %s",
				 log__last_error()[0] ? log__last_error() : strerror(-e));
		/* what was put in the maps goes */
		slot = 2 * idx;
		bpf_map_delete_elem(bpf_map__fd(ac->skel->maps.stdio_socks), &slot);
		kernel_stdio__remove(ac->skel, s);
		kernel__drop_stdio_budgets(ac->skel, idx);
		goto undo;
	}
	ac->ev.nstdio = ac->npids;
	/* what its client sent before it ran, judged now (the hooks are on) */
	kernel_stdio__resend(s);
	status_row(ac, idx);
	status_save(ac);
	log_info("pid %d (%s): enrolled: %s", (int)pid, s->comm, s->desc);
	snprintf(reply, CONTROL_LINE_MAX, "ok pid %d (%s): %s; policy %s", (int)pid, s->comm,
		 s->desc,
		 ac->slots[ac->pslot[idx]].pol ? ac->slots[ac->pslot[idx]].pol->source : "?");
	return 0;
undo:
	s->ended = true;
	if (idx == before)
		ac->npids = before;
	return e;
}

int attach__repick(struct attach_ctx *ac)
{
	log__clear_error();
	return attach_policies__apply(ac, ac->dir, false, true);
}

/* A request on the control socket. */
static void on_control(void *ctx, const char *line, char *reply)
{
	struct attach_ctx *ac = ctx;
	long pid;

	if (strncmp(line, "enroll ", 7) || !cmd_number(line + 7, 1, 0x3fffffff, &pid)) {
		snprintf(reply, CONTROL_LINE_MAX,
			 "error: not a request this attach takes (enroll PID)");
		return;
	}
	attach__enroll(ac, (pid_t)pid, false, NULL, reply);
}

static void attach_usage(FILE *f)
{
	fprintf(f,
		"usage: mcpfence attach (--policy P | --policy-dir DIR) (--port N | --pid PID | --enroll)...\n"
		"                       [OPTIONS]\n"
		"  --policy P        policy.json to enforce; SIGHUP loads it again\n"
		"  --policy-dir DIR  a directory of policies: each server gets the first whose\n"
		"                    \"match\" fits it, else default.json; followed as it changes\n"
		"  --port N          enforce on TCP connections to or from port N (up to %d)\n"
		"  --pid PID         enforce on the stdio server running as PID (up to %d)\n"
		"  --enroll          take more stdio servers while running (mcpfence enroll):\n"
		"                    the programs of both stdin kinds are loaded\n" OPTIONS_BOTH,
		MCPF_TCP_MAX_PORTS, MCPF_STDIO_MAX_SESSIONS);
}

int cmd_attach(int argc, char **argv)
{
	return attach__main(argc, argv, false);
}

int attach__main(int argc, char **argv, bool daemon)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "policy-dir", required_argument, NULL, 'D' },
		{ "port", required_argument, NULL, 'P' },
		{ "pid", required_argument, NULL, 'i' },
		{ "pipe-action", required_argument, NULL, 'A' },
		{ "enroll", no_argument, NULL, 'E' },
		{ "cgroup", required_argument, NULL, 'c' },
		{ "audit", required_argument, NULL, 'a' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *policy_path = NULL, *audit_path = NULL, *policy_dir = NULL;
	char cgroup[PATH_MAX] = "";
	struct attach_ctx ac = {};
	struct ring_buffer *rb = NULL;
	struct bpf_link *link = NULL, *egress = NULL;
	struct sigaction sa = {};
	uint16_t ports[MCPF_TCP_MAX_PORTS];
	unsigned nports = 0, npids = 0;
	pid_t pids[MCPF_STDIO_MAX_SESSIONS];
	enum mcpf_pipe_action pipe_action = MCPF_PIPE_AUDIT;
	bool pipe_action_given = false, enroll_any = false, adopt = false, leave = false,
	     busy = false;
	char audit_buf[PATH_MAX], why[256];
	int c, err, cg_fd = -1, lock_fd = -1, ret = 1;
	unsigned nadopted = 0;
	uint64_t last, next_sync, next_watch;

	ac.ev.kc = ac.kc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (daemon && (c == 'p' || c == 'i' || c == 'E')) {
			log_err("daemon: --%s is attach's: the daemon takes --policy-dir and finds its "
				"servers itself",
				c == 'p' ? "policy" :
				c == 'i' ? "pid" :
					   "enroll");
			attach_daemon__usage(stderr);
			return EXIT_USAGE;
		}
		switch (c) {
		case 'p':
			policy_path = optarg;
			break;
		case 'D':
			policy_dir = optarg;
			break;
		case 'P': {
			long v;

			if (!cmd_number(optarg, 1, 65535, &v) || nports >= MCPF_TCP_MAX_PORTS) {
				log_err("--port %s: not a port (1-65535, at most %d)", optarg,
					MCPF_TCP_MAX_PORTS);
				return EXIT_USAGE;
			}
			ports[nports++] = v;
			break;
		}
		case 'i': {
			long v;

			if (!cmd_number(optarg, 1, 0x3fffffff, &v) ||
			    npids >= MCPF_STDIO_MAX_SESSIONS) {
				log_err("--pid %s: not a process id (at most %d of them)", optarg,
					MCPF_STDIO_MAX_SESSIONS);
				return EXIT_USAGE;
			}
			pids[npids++] = (pid_t)v;
			break;
		}
		case 'A':
			if (!strcmp(optarg, "audit")) {
				pipe_action = MCPF_PIPE_AUDIT;
			} else if (!strcmp(optarg, "kill")) {
				pipe_action = MCPF_PIPE_KILL;
			} else if (!strcmp(optarg, "refuse")) {
				pipe_action = MCPF_PIPE_REFUSE;
			} else {
				log_err("--pipe-action %s: one of audit, kill, refuse", optarg);
				return EXIT_USAGE;
			}
			pipe_action_given = true;
			break;
		case 'E':
			enroll_any = true;
			break;
		case 'c':
			if (!*optarg || strlen(optarg) >= sizeof(cgroup)) {
				log_err("--cgroup %s: not a path", optarg);
				return EXIT_USAGE;
			}
			strcpy(cgroup, optarg);
			break;
		case 'a':
			audit_path = optarg;
			break;
		case 'q':
			ac.ev.quiet = true;
			break;
		case 'v':
			log_level = LOG_LVL_DEBUG;
			break;
		case 'h':
			(daemon ? attach_daemon__usage : attach_usage)(stdout);
			return 0;
		default:
			(daemon ? attach_daemon__usage : attach_usage)(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		log_err("%s: unexpected argument '%s'", daemon ? "daemon" : "attach", argv[optind]);
		(daemon ? attach_daemon__usage : attach_usage)(stderr);
		return EXIT_USAGE;
	}
	if (daemon && !policy_dir) {
		log_err("daemon needs --policy-dir");
		attach_daemon__usage(stderr);
		return EXIT_USAGE;
	}
	if (daemon)
		enroll_any = true;
	ac.daemon = daemon;
	ac.status.daemon = daemon;
	if ((!nports && !npids && !enroll_any) || !policy_path == !policy_dir) {
		log_err("attach needs --policy or --policy-dir (one of them) and at least one --port, "
			"--pid or --enroll");
		attach_usage(stderr);
		return EXIT_USAGE;
	}
	ac.is_dir = policy_dir != NULL;
	ac.policy_path = policy_dir ? policy_dir : policy_path;
	memcpy(ac.ports, ports, sizeof(ports));
	ac.nports = nports;
	memcpy(ac.pids, pids, sizeof(pids));
	ac.npids = npids;
	ac.ev.many_policies = ac.is_dir;
	ac.pipe_action = pipe_action;
	ac.control_fd = -1;
	if (kernel__probe(cgroup, sizeof(cgroup)))
		return 1;
	if (pipe_action == MCPF_PIPE_REFUSE && features__lsm(why, sizeof(why))) {
		log_err("--pipe-action refuse needs the BPF LSM: %s (--pipe-action audit counts and "
			"audits a denied call on a pipe; kill stops it where the kernel has "
			"bpf_send_signal_task)",
			why);
		return 1;
	}
	switch (kernel__attachment()) {
	case KERNEL_ATTACHED_LIVE:
		log_err("%s holds the attachment of a running `mcpfence attach`: stop it, or run "
			"`mcpfence detach`",
			MCPF_PIN_DIR);
		return 1;
	case KERNEL_ATTACHED_STALE:
		/* a daemon takes back what a daemon left: its programs enforce meanwhile */
		if (daemon && !kernel__stamp_check(ports, nports, why, sizeof(why))) {
			adopt = true;
			break;
		}
		log_err("%s holds a stale attachment (its `mcpfence attach` is gone; its programs "
			"may still enforce the policy they had)%s%s: run `mcpfence detach` first",
			MCPF_PIN_DIR, daemon ? ", which this daemon cannot adopt: " : "",
			daemon ? why : "");
		return 1;
	default:
		break;
	}
	if (ac.is_dir) {
		char err[POLICY_ERR_LEN];

		/* watched from before it is read: no change is missed */
		if (policy_watch__open(&ac.watch, policy_dir, err)) {
			log_err("%s", err);
			return 1;
		}
		ac.watching = true;
		ac.dir_first = ac.watch.cur;
		ac.who = calloc(MCPF_STDIO_MAX_SESSIONS, sizeof(*ac.who));
		if (!ac.who)
			goto out;
		/* who each server is, now: what its "match" is read against, then and at reloads */
		for (unsigned i = 0; i < npids; i++)
			if (policy_dir__who_of_pid(pids[i], &ac.who[i], err, sizeof(err))) {
				log_err("--pid %d: %s", (int)pids[i], err);
				goto out;
			}
	} else {
		ac.dir_first = attach_policies__load(&ac);
		if (!ac.dir_first)
			return 1;
	}
	if (!audit_path) {
		if (audit__default_path(audit_buf, sizeof(audit_buf)))
			snprintf(audit_buf, sizeof(audit_buf), "-");
		audit_path = audit_buf;
	}
	ac.ev.audit = audit__open(audit_path);
	if (!ac.ev.audit)
		goto out;
	{
		struct kernel_load_opts lo = { .stdio = npids > 0 || enroll_any,
					       .no_tcp = !nports,
					       .pipe_refuse = pipe_action == MCPF_PIPE_REFUSE };

		if (!enroll_any)
			stdin_kinds(pids, npids, &lo);
		if (adopt) {
			/* no other daemon adopts it meanwhile */
			lock_fd = kernel__pins_lock();
			if (lock_fd < 0) {
				log_err("%s: flock: %s", MCPF_PIN_DIR, strerror(-lock_fd));
				goto out;
			}
			lo.adopt = true;
			leave = true; /* from here on, whatever happens, the pins stay */
		}
		ac.skel = kernel__load_opts(&lo);
	}
	if (!ac.skel)
		goto out;
	if (nports)
		log_info("replies to denied calls found by %s",
			 kernel__search_kfunc(ac.skel) ? "the bpf_strnstr kfunc" :
							 "a bpf_loop search, 8 bytes a step");
	for (unsigned s = 0; s < MCPF_PSLOTS; s++)
		ac.slots[s].gen = 1; /* generation 0 of each is filled first */
	if (adopt)
		nadopted = attach_daemon__adopt(&ac);
	if (attach_policies__take(&ac, ac.dir_first, true))
		goto out;
	ac.dir_first = NULL; /* the attachment's now */
	if (adopt) {
		if (attach_daemon__adopted(&ac, nadopted))
			goto out;
		goto adopted;
	}
	/* the TCP plane: nothing of it for `--pid` alone (no cgroup, no sysctl touched) */
	if (nports && attach_tcp(&ac, cgroup, &cg_fd, &egress, &link))
		goto out;
	if (kernel__pin_all(ac.skel, link, egress))
		goto out_detach;
	lock_fd = kernel__pins_lock();
	if (lock_fd < 0) {
		log_err("%s: flock: %s", MCPF_PIN_DIR, strerror(-lock_fd));
		goto out_detach;
	}
	if (kernel__stamp_write(daemon, ports, nports))
		goto out_detach;
	if (nports && kernel__tfo_client_off())
		goto out_detach;
	err = nports ? kernel__adopt_existing(bpf_map__fd(ac.skel->maps.tcp_socks),
					      bpf_map__fd(ac.skel->maps.tcp_unwatched),
					      bpf_map__fd(ac.skel->maps.data_unwatched), ports,
					      nports) :
		       0;
	if (err > 0)
		log_info("%d connection%s established before the attachment now enforced too", err,
			 err == 1 ? "" : "s");
	if (bpf_program__autoload(ac.skel->progs.handle_stdio_skb) &&
	    kernel_stdio__attach_prog(ac.skel))
		goto out_detach;
	if (npids) {
		/* the pipe tracepoints before any pipe's stream is registered (as enroll does) */
		for (unsigned i = 0; i < npids; i++)
			if (stdio_find__fd_is(pids[i], 0, "pipe") &&
			    bpf_program__autoload(ac.skel->progs.handle_pipe_judge) &&
			    pipes_on(&ac, true))
				goto out_detach;
		for (unsigned i = 0; i < npids; i++) {
			if (kernel_stdio__add(ac.skel, i, pids[i], pipe_action, &ac.stdio[i]))
				goto out_detach;
			printf("pid %d (%s): %s\n", ac.stdio[i].pid, ac.stdio[i].comm,
			       ac.stdio[i].desc);
		}
		ac.ev.nstdio = npids;
		if (kernel_stdio__has_pipes(ac.stdio, npids)) {
			if (pipes_on(&ac, false))
				goto out_detach;
			if (!pipe_action_given)
				log_info(
					"pipes: calls are counted and audited, not stopped "
					"(--pipe-action audit; see --pipe-action kill and refuse)");
		}
	}
adopted:
	ac.ev.stdio = ac.stdio;
	ac.ev.nstdio = ac.npids;
	ac.control_fd = control__listen(CONTROL_PATH);
	if (ac.control_fd < 0)
		goto out_detach;
	rb = ring_buffer__new(bpf_map__fd(ac.skel->maps.tcp_events), kernel__on_event, &ac.ev,
			      NULL);
	if (!rb) {
		log_err("tcp_events: ring buffer: %s", strerror(errno));
		goto out_detach;
	}
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	ac.ev.mono_to_real_us = mono_to_real_us();
	ac.ev.status = &ac.status;
	ac.started_us = (uint64_t)time(NULL) * 1000000;
	/* a daemon that came back goes on with the rows of the one before (read at adopt) */
	for (unsigned i = 0; i < ac.npids; i++)
		if (!ac.stdio[i].ended)
			status_row(&ac, i);
	if (adopt)
		attach_daemon__status_adopted(&ac);
	status_save(&ac);
	if (daemon) {
		unsigned n;

		/* the finder first: a server that starts during the scan is found by one or both */
		if (daemon_find__start(&ac.find, attach_daemon__on_exec, attach_daemon__on_named,
				       &ac))
			goto out_detach;
		ac.finding = true;
		attach_daemon__names(&ac);
		n = daemon_find__scan(attach_daemon__scanned, &ac);
		log_debug("%u running programs have a pipe or socket as stdin and stdout", n);
		attach_daemon__found(&ac);
	}
	for (unsigned i = 0; i < nports; i++)
		printf("%s%u", i ? "," : "watching TCP port ", ports[i]);
	if (nports)
		printf(" in cgroup %s; ", cgroup);
	for (unsigned i = 0; i < npids; i++)
		printf("%s%d", i ? "," : "watching the stdio of pid ", pids[i]);
	if (npids)
		printf("; ");
	if (daemon)
		printf("daemon: finding the stdio servers %s's policies name; ", policy_dir);
	else if (!npids && !nports)
		printf("watching the stdio servers `mcpfence enroll` names; ");
	printf("pins in %s\n", MCPF_PIN_DIR);
	fflush(stdout);
	ac.rb = rb;
	last = realtime_s();
	next_sync = clock__mono_ms() + SYNC_MS;
	next_watch = clock__mono_ms() + KERNEL_STDIO_WATCH_MS;
	while (!stop_flag) {
		int timeout = next_window_ms(&ac);
		uint64_t now;

		/*
		 * Allowed calls' events do not wake this loop (tcp_stats.bpf.h, event_emit): drain
		 * often, and every millisecond while they come fast, so that the ring stays below
		 * the mark where the senders wake it (a self-IPI each: 40 us in a nested VM).
		 */
		if (timeout > MCPF_EVENTS_POLL_MS)
			timeout = MCPF_EVENTS_POLL_MS;
		if (busy && timeout > MCPF_EVENTS_BUSY_POLL_MS)
			timeout = MCPF_EVENTS_BUSY_POLL_MS;

		if (ac.ev.limits) {
			int64_t to_sync = (int64_t)(next_sync - clock__mono_ms());

			if (to_sync < timeout)
				timeout = to_sync < 1 ? 1 : (int)to_sync;
		}
		{
			/* the events, and `mcpfence enroll` on the control socket */
			struct pollfd pf[3] = {
				{ .fd = ring_buffer__epoll_fd(rb), .events = POLLIN },
				{ .fd = ac.control_fd, .events = POLLIN },
				{ .fd = ac.finding ? daemon_find__fd(&ac.find) : -1,
				  .events = POLLIN },
			};

			err = poll(pf, 3, timeout) < 0 ? -errno : 0;
			if (err >= 0 || err == -EINTR)
				err = ring_buffer__consume(rb);
			busy = err >= MCPF_EVENTS_BUSY;
			/* a program stopped at its start waits for this */
			if (ac.finding)
				attach_daemon__found(&ac);
			if (pf[1].revents & POLLIN)
				control__serve(ac.control_fd, on_control, &ac);
		}
		if (err < 0 && err != -EINTR) {
			log_err("tcp_events: poll: %s", strerror(-err));
			break;
		}
		if (reload_flag) {
			reload_flag = 0;
			attach_policies__reload(&ac);
		}
		if (ac.watching)
			attach_policies__changed(&ac);
		attach_daemon__names(&ac);
		now = realtime_s();
		if (now != last) {
			for (unsigned s = 0; s < MCPF_PSLOTS; s++) {
				if (!ac.slots[s].pol)
					continue;
				kernel__refill(ac.skel, attach_policies__slot_kc(&ac, s), now,
					       last);
				/* the new window, less what the gateways took of it already */
				attach_policies__sync_global(&ac, attach_policies__slot_kc(&ac, s));
			}
			say_unwatched(&ac);
			/* the events of its last calls first: drained above */
			sessions_ended(&ac, ac.npids);
			if (ac.status.dirty)
				status_save(&ac);
			last = now;
			if (!kernel__attached()) {
				log_info("the pins in %s are gone (mcpfence detach): stopping",
					 MCPF_PIN_DIR);
				break;
			}
		}
		if (ac.npids && clock__mono_ms() >= next_watch) {
			kernel_stdio__unstick(ac.stdio, ac.npids);
			next_watch = clock__mono_ms() + KERNEL_STDIO_WATCH_MS;
		}
		if (ac.ev.limits && clock__mono_ms() >= next_sync) {
			for (unsigned s = 0; s < MCPF_PSLOTS; s++)
				if (ac.slots[s].pol)
					attach_policies__sync_global(
						&ac, attach_policies__slot_kc(&ac, s));
			next_sync = clock__mono_ms() + SYNC_MS;
		}
	}
	ring_buffer__consume(rb);
	ret = 0;
	/* a daemon leaves its attachment enforcing, for the next to take back (not detached) */
	leave = daemon && kernel__attached();
out_detach:
	if (ac.finding)
		attach_daemon__stop(&ac, leave);
	control__close(ac.control_fd, CONTROL_PATH);
	ac.control_fd = -1;
	if (leave) {
		if (rb)
			ring_buffer__consume(rb);
		status_save(&ac);
		log_info("leaving the attachment in %s enforcing: no budget is refilled until a "
			 "daemon takes it back (`mcpfence detach` removes it)",
			 MCPF_PIN_DIR);
	} else {
		unlink(STATUS_PATH);
		kernel__detach();
	}
out:
	if (lock_fd >= 0)
		close(lock_fd);
	ring_buffer__free(rb);
	bpf_link__destroy(link);
	bpf_link__destroy(egress);
	if (cg_fd >= 0)
		close(cg_fd);
	if (ac.skel)
		tcp_bpf__destroy(ac.skel);
	status__free(&ac.status);
	ac.watch.cur = NULL; /* it is dir, freed here */
	if (ac.is_dir)
		policy_watch__close(&ac.watch);
	policy_dir__free(ac.dir);
	policy_dir__free(ac.dir_old);
	policy_dir__free(ac.dir_first);
	if (ac.who)
		for (unsigned i = 0; i < MCPF_STDIO_MAX_SESSIONS; i++)
			policy_dir__who_free(&ac.who[i]);
	free(ac.who);
	limits__free(ac.ev.limits);
	audit__close(ac.ev.audit);
	return ret;
}

static const char detach_usage[] = "usage: mcpfence detach\n"
				   "  -h, --help        print this help\n";

int cmd_detach(int argc, char **argv)
{
	unsigned n;

	if (argc > 1) {
		if (argc == 2 && cmd_is_help(argv[1])) {
			fputs(detach_usage, stdout);
			return 0;
		}
		log_err("detach: unexpected argument '%s' (it takes none)", argv[1]);
		fputs(detach_usage, stderr);
		return EXIT_USAGE;
	}
	if (geteuid() != 0) {
		log_err("detach needs root");
		return 1;
	}
	features__mount();
	/* what a killed daemon left stopped goes on: nothing will take it any more */
	n = daemon_find__release_pinned();
	if (n)
		printf("continued %u process%s a killed daemon had left stopped\n", n,
		       n == 1 ? "" : "es");
	if (!kernel__detach())
		printf("nothing attached\n");
	else
		printf("detached\n");
	return 0;
}
