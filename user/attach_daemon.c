// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence daemon`: `attach --policy-dir DIR --enroll` that finds its stdio servers itself
 * (attach.h). The finder (daemon_find) names the programs it stopped at their exec; those a
 * file's "match" fits are enrolled, then continued; the servers that ran before it, and those a
 * new file names, are found in /proc. A daemon that comes back takes back the attachment the
 * one before left (its sessions, slots and status rows).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "attach.h"
#include "cmd.h"
#include "control.h"
#include "log.h"
#include "stdio_find.h"
#include "tcp.skel.h"

void attach_daemon__usage(FILE *f)
{
	fprintf(f,
		"usage: mcpfence daemon --policy-dir DIR [OPTIONS]\n"
		"  --policy-dir DIR  a directory of policies, followed as it changes: each stdio\n"
		"                    server a file's \"match\" fits is found and enforced on, at its\n"
		"                    start or running already; default.json decides for the\n"
		"                    servers mcpfence enroll names and ports no file names\n"
		"  --port N          enforce on TCP connections to or from port N (up to %d)\n" OPTIONS_BOTH,
		MCPF_TCP_MAX_PORTS);
}

int cmd_daemon(int argc, char **argv)
{
	return attach__main(argc, argv, true);
}

/*
 * The finder stops the programs a file of the directory in force may fit (daemon_find); after
 * a reload, the servers already running that a new file names are enrolled too.
 */
void attach_daemon__names(struct attach_ctx *ac)
{
	struct daemon_names *n;
	bool reload;

	if (!ac->finding || ac->find_dir == ac->dir)
		return;
	reload = ac->find_dir != NULL;
	n = calloc(1, sizeof(*n));
	if (!n) {
		log_err("daemon: the names of %s: %s", ac->dir->path, strerror(ENOMEM));
		return;
	}
	daemon_find__names(ac->dir, n);
	daemon_find__set(&ac->find, n);
	ac->find_dir = ac->dir;
	if (n->every)
		log_warn(
			"%s fits programs of any name: every program started with a pipe or "
			"socketpair as stdin and stdout waits for the daemon to read who it is (give "
			"its \"match\" an \"exe\" whose file name has no wildcard to narrow it)",
			n->why_every);
	else if (!n->n)
		log_info("no policy of %s has a \"match\" a server can fit at its start: the "
			 "daemon finds no server by itself (mcpfence enroll still enrolls)",
			 ac->dir->path);
	else {
		char list[1024] = "";
		size_t len = 0;

		for (unsigned i = 0; i < n->n && len < sizeof(list) - 40; i++)
			len += snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
					n->names[i].name);
		log_info("the daemon looks at programs named %s started with a pipe or socketpair "
			 "as stdin and stdout",
			 list);
	}
	free(n);
	if (reload)
		daemon_find__scan(attach_daemon__scanned, ac);
}

/* The first file of d that can make the program w a server (a "match" it fits), or NULL. */
static const struct policy *fitting(const struct policy_dir *d, const struct proc_who *w)
{
	for (size_t i = 0; i < d->nfiles; i++)
		if (daemon_find__findable(d->files[i]) && policy__match_fits(d->files[i], &w->who))
			return d->files[i];
	return NULL;
}

/*
 * The first file of d that names a server by its first answer ("server_name") and whose other
 * keys fit w, when it comes before `before` (the file that fits w without a name; NULL: none).
 */
static const struct policy *naming(const struct policy_dir *d, const struct proc_who *w,
				   const struct policy *before)
{
	for (size_t i = 0; i < d->nfiles && d->files[i] != before; i++)
		if (daemon_find__nameable(d->files[i]) &&
		    policy__match_fits_but_name(d->files[i], &w->who))
			return d->files[i];
	return NULL;
}

/*
 * Watch server pid (stopped at its exec, so it has answered nothing) for the name its first
 * answer gives it: the readers of its stdout stop once it has written it, until the daemon has
 * read the name and moved the session to the file it fits (on_named).
 */
static void naming_watch(struct attach_ctx *ac, pid_t pid)
{
	struct stdio_end in, out;
	pid_t clients[DAEMON_NAMING_CLIENTS];
	unsigned n = 0;

	if (stdio_find__server(pid, &in, &out))
		return;
	for (unsigned i = 0; i < out.npeers && n < DAEMON_NAMING_CLIENTS; i++)
		clients[n++] = out.peers[i].pid;
	if (!n)
		log_warn("pid %d: no process reads its stdout: nothing is stopped at its first "
			 "answer",
			 (int)pid);
	if (!daemon_find__watch(&ac->find, pid, out.ino, clients, n))
		log_debug("pid %d: watched for the name its first answer gives it", (int)pid);
}

/* Is pid, stopped at its exec, a child of a server that waits for its name (its stdout)? */
static bool naming_child(struct attach_ctx *ac, pid_t pid)
{
	char path[64];
	struct stat st;

	if (!ac->find.nnaming)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/fd/1", (int)pid);
	return !stat(path, &st) && daemon_find__child(&ac->find, pid, (uint64_t)st.st_ino);
}

/* The index of the session enforced on now whose server is pid, or -1. */
static int session_of(const struct attach_ctx *ac, pid_t pid)
{
	for (unsigned i = 0; i < ac->npids; i++)
		if (!ac->stdio[i].ended && ac->stdio[i].pid == pid)
			return (int)i;
	return -1;
}

/* Session i's status row keeps the name: a daemon that takes the session back keeps it too. */
static void row_name(struct attach_ctx *ac, unsigned i, const char *name)
{
	struct status_session *row;
	char conn[40];

	kernel_stdio__conn(&ac->stdio[i], conn, sizeof(conn));
	row = status__get(&ac->status, conn);
	if (row) {
		snprintf(row->server_name, sizeof(row->server_name), "%s", name);
		ac->status.dirty = true;
	}
}

void attach_daemon__on_named(void *ctx, pid_t pid, const char *name, const char *why)
{
	struct attach_ctx *ac = ctx;
	char err[POLICY_ERR_LEN], reply[CONTROL_LINE_MAX];
	const struct policy *p;
	struct proc_who w = {};
	int idx = session_of(ac, pid), e;

	if (!name) {
		/* a program enrolled by no file is not said at info level: it may be no server */
		if (idx < 0)
			log_debug("pid %d: %s: not enrolled", (int)pid, why);
		else
			log_info("pid %d: %s: no \"server_name\" fits it; its policy stays",
				 (int)pid, why);
		return;
	}
	if (idx >= 0) {
		struct proc_who *pw = &ac->who[idx];

		snprintf(pw->server_name, sizeof(pw->server_name), "%s", name);
		pw->who.server_name = pw->server_name;
		row_name(ac, (unsigned)idx, name);
		e = attach__repick(ac);
		p = ac->slots[ac->pslot[idx]].pol;
		if (e)
			log_err("pid %d (%s): its first answer names it \"%s\", but its policy "
				"stays %s",
				(int)pid, pw->exe, name, p ? p->source : "?");
		else
			log_info("pid %d (%s): its first answer names it \"%s\": policy %s",
				 (int)pid, pw->exe, name, p ? p->source : "?");
		return;
	}
	/* no file fitted it without a name, and there is no default.json: enrolled now if one does */
	if (policy_dir__who_of_pid(pid, &w, err, sizeof(err))) {
		log_info("pid %d: %s: not enrolled", (int)pid, err);
		return;
	}
	snprintf(w.server_name, sizeof(w.server_name), "%s", name);
	w.who.server_name = w.server_name;
	p = policy_dir__pick(ac->dir, &w.who);
	if (!p)
		log_info("pid %d (%s): its first answer names it \"%s\", which no file fits: not "
			 "enforced on",
			 (int)pid, w.exe, name);
	else if ((e = attach__enroll(ac, pid, false, &w, reply)))
		log_warn("pid %d (%s) fits %s by its name \"%s\" but is not enforced on: %s",
			 (int)pid, w.exe, p->source, name, reply);
	else {
		log_info("pid %d: its first answer names it \"%s\": enrolled under %s (what its "
			 "client sent before that answer was not judged)",
			 (int)pid, name, p->source);
		idx = session_of(ac, pid);
		if (idx >= 0)
			row_name(ac, (unsigned)idx, name);
	}
	policy_dir__who_free(&w);
}

/* A program the finder stopped at its exec: taken once its ring is read (enroll reads rings). */
void attach_daemon__on_exec(void *ctx, const struct mcpf_exec_event *ev)
{
	struct attach_ctx *ac = ctx;

	if (ac->nfound == DAEMON_FOUND_MAX) {
		log_warn("pid %u (%s): more than %d programs started at once: not enrolled",
			 ev->pid, ev->exe, DAEMON_FOUND_MAX);
		if (ev->stopped)
			kill((pid_t)ev->pid, SIGCONT);
		return;
	}
	ac->found[ac->nfound].pid = (pid_t)ev->pid;
	ac->found[ac->nfound].stopped = ev->stopped;
	ac->found[ac->nfound].left = ac->find.left;
	ac->nfound++;
}

/*
 * Server pid, found by the daemon: enrolled when a file of the directory fits it by its "match"
 * (default.json does not make a program a server). fresh: stopped at its exec, it has read
 * nothing; continued here, enrolled or not, but for one a policy fits while every session
 * index is taken: that one stays stopped, to be taken when a session ends (true returned).
 */
static bool daemon_take(struct attach_ctx *ac, pid_t pid, bool fresh)
{
	const struct policy *p, *named;
	char err[POLICY_ERR_LEN], reply[CONTROL_LINE_MAX];
	struct proc_who w = {};
	int e;

	if (session_of(ac, pid) >= 0)
		goto out;
	if (policy_dir__who_of_pid(pid, &w, err, sizeof(err))) {
		log_debug("pid %d: %s: not enrolled", (int)pid, err);
		goto out;
	}
	p = fitting(ac->dir, &w);
	/*
	 * A file that names it by its first answer: only one stopped at its exec has given none;
	 * a child of a server that waits for its name (npx starting node) writes it for that one.
	 */
	named = fresh && !naming_child(ac, pid) ? naming(ac->dir, &w, p) : NULL;
	if (!p && !(named && ac->dir->def)) {
		if (named) {
			/* debug: every program with pipes, when that file names no exe */
			log_debug(
				"pid %d (%s): %s may fit it by the name of its first answer: not "
				"enrolled until then (no file fits it before, and there is no %s)",
				(int)pid, w.exe, named->source, POLICY_DIR_DEFAULT);
			naming_watch(ac, pid);
		} else
			log_debug("pid %d (%s): no policy's \"match\" fits it: not enrolled",
				  (int)pid, w.exe);
		goto out;
	}
	if (named)
		log_info("pid %d (%s): %s may fit it by the name of its first answer: until then, "
			 "%s decides",
			 (int)pid, w.exe, named->source, p ? p->source : POLICY_DIR_DEFAULT);
	e = attach__enroll(ac, pid, fresh, &w, reply); /* which logs it, and takes w over */
	if (!e && named)
		naming_watch(ac, pid);
	if (e == -ENOSPC && fresh) {
		/* a server its policy names does not run unenforced: it waits, stopped */
		policy_dir__who_free(&w);
		return true;
	}
	if (e && e != -EALREADY) /* -EALREADY: its stdin is a session's, said */
		log_warn("pid %d (%s) fits %s but is not enforced on: %s", (int)pid, w.exe,
			 p ? p->source : POLICY_DIR_DEFAULT, reply);
out:
	policy_dir__who_free(&w);
	if (fresh)
		kill(pid, SIGCONT);
	return false;
}

/* Keep pid stopped until a session index is free (said once). */
static void daemon_wait(struct attach_ctx *ac, pid_t pid)
{
	for (unsigned i = 0; i < ac->nwaiting; i++)
		if (ac->waiting[i] == pid)
			return;
	if (ac->nwaiting == DAEMON_FOUND_MAX) {
		log_err("pid %d: more than %d servers wait for a session to end: continued, not "
			"enforced on",
			(int)pid, DAEMON_FOUND_MAX);
		kill(pid, SIGCONT);
		return;
	}
	log_warn("pid %d: a policy fits it, but %d stdio sessions are enforced on already: kept "
		 "stopped until one ends",
		 (int)pid, MCPF_STDIO_MAX_SESSIONS);
	ac->waiting[ac->nwaiting++] = pid;
}

void attach_daemon__found(struct attach_ctx *ac)
{
	unsigned n = ac->nwaiting;

	bool missed = daemon_find__poll(&ac->find); /* first answers too (on_named) */

	daemon_find__naming_tick(&ac->find);

	/* those that wait first, in the order they came */
	ac->nwaiting = 0;
	for (unsigned i = 0; i < n; i++) {
		pid_t pid = ac->waiting[i];

		if (kill(pid, 0) && errno == ESRCH)
			continue;
		if (daemon_take(ac, pid, true)) {
			/* still no room: it and those after it wait on */
			memmove(ac->waiting, ac->waiting + i, (n - i) * sizeof(pid_t));
			ac->nwaiting = n - i;
			break;
		}
	}
	for (unsigned i = 0; i < ac->nfound; i++) {
		if (ac->found[i].left) {
			/* still stopped: it has read nothing, and waits for a daemon */
			bool still =
				ac->found[i].stopped && stdio_find__stopped(ac->found[i].pid, 100);

			log_info(
				"pid %d: stopped at its start by a daemon that was killed before it "
				"read it: %s",
				(int)ac->found[i].pid,
				still ? "taken now" : "no longer stopped: taken as it runs");
			ac->found[i].stopped = still;
		}
		if (!ac->found[i].stopped) {
			/* enrolled as it runs, as a --pid: bytes it read meanwhile were not judged */
			if (!ac->found[i].left)
				log_warn(
					"pid %d: could not be stopped at its start: enrolled as it "
					"runs",
					(int)ac->found[i].pid);
			daemon_take(ac, ac->found[i].pid, false);
		} else if (ac->nwaiting || daemon_take(ac, ac->found[i].pid, true))
			daemon_wait(ac, ac->found[i].pid);
	}
	ac->nfound = 0;
	/* programs the ring had no room for ran on: those a policy names are enrolled as they run */
	if (missed)
		daemon_find__scan(attach_daemon__scanned, ac);
}

void attach_daemon__scanned(void *ctx, pid_t pid)
{
	daemon_take(ctx, pid, false);
}

void attach_daemon__stop(struct attach_ctx *ac, bool enroll)
{
	/* no program is stopped any more; those that were are enrolled, or go on */
	bpf_link__destroy(ac->find.link);
	ac->find.link = NULL;
	daemon_find__poll(&ac->find);
	for (unsigned i = 0; i < ac->nfound; i++)
		if (ac->found[i].stopped && !(enroll && !daemon_take(ac, ac->found[i].pid, true)))
			kill(ac->found[i].pid, SIGCONT);
	ac->nfound = 0;
	for (unsigned i = 0; i < ac->nwaiting; i++) {
		log_warn(
			"pid %d: continued, not enforced on (no session index came free before the "
			"daemon stopped)",
			(int)ac->waiting[i]);
		kill(ac->waiting[i], SIGCONT);
	}
	ac->nwaiting = 0;
	daemon_find__stop(&ac->find);
	ac->finding = false;
}

/* A program of /proc: the server of a session the adopted maps hold? */
static void adopt_scanned(void *ctx, pid_t pid)
{
	struct attach_ctx *ac = ctx;
	struct kernel_stdio_session s;
	const struct policy *p;
	char err[POLICY_ERR_LEN], conn[40];
	struct proc_who w = {};
	int idx = kernel_stdio__readopt(ac->skel, pid, &s);

	if (idx < 0 || ac->adopted[idx])
		return;
	if (policy_dir__who_of_pid(pid, &w, err, sizeof(err))) {
		log_info("pid %d: %s: its session is dropped", (int)pid, err);
		goto out;
	}
	/* the name its first result gave it, under the daemon before (its row): it keeps it */
	kernel_stdio__conn(&s, conn, sizeof(conn));
	for (size_t r = 0; r < ac->status.n; r++)
		if (!strcmp(ac->status.s[r].conn, conn) && ac->status.s[r].server_name[0]) {
			snprintf(w.server_name, sizeof(w.server_name), "%s",
				 ac->status.s[r].server_name);
			w.who.server_name = w.server_name;
		}
	p = fitting(ac->dir_first, &w);
	/*
	 * One a "server_name" file named (or may name, under default.json until then) was
	 * enrolled by the whole directory's pick
	 */
	if (!p && (w.who.server_name || naming(ac->dir_first, &w, NULL)))
		p = policy_dir__pick(ac->dir_first, &w.who);
	if (!p) {
		log_info("pid %d (%s): no policy's \"match\" fits it any more: its session is "
			 "dropped",
			 (int)pid, w.exe);
		goto out;
	}
	policy_dir__who_move(&ac->who[idx], &w);
	ac->stdio[idx] = s;
	ac->pids[idx] = pid;
	ac->adopted[idx] = true;
	if ((unsigned)idx >= ac->npids)
		ac->npids = idx + 1;
	log_info("pid %d (%s): session %d taken back: %s", (int)pid, s.comm, idx, s.desc);
out:
	policy_dir__who_free(&w);
}

/*
 * Slot s's generation in force, compiled by the daemon that left: when its file is still the
 * one it compiled (the same path and bytes), described, so that the events it wrote name their
 * rules and policy (and charge the host-wide budgets), and the file keeps its slot.
 */
static void adopt_slot(struct attach_ctx *ac, __u32 s)
{
	unsigned gen = MCPF_GEN_INDEX(s, ac->slots[s].gen);
	struct mcpf_gen_cfg gc = {};
	struct mcpf_policy_info info = {};
	char real[PATH_MAX];

	if (bpf_map_lookup_elem(bpf_map__fd(ac->skel->maps.tcp_gen), &gen, &gc) ||
	    bpf_map_lookup_elem(bpf_map__fd(ac->skel->maps.tcp_policies), &gc.policy, &info))
		return;
	/* the files, then default.json (a port no file names has it) */
	for (size_t i = 0; i <= ac->dir_first->nfiles; i++) {
		const struct policy *p =
			i < ac->dir_first->nfiles ? ac->dir_first->files[i] : ac->dir_first->def;

		if (!p || p->digest != info.digest || !realpath(p->source, real) ||
		    strncmp(real, info.path, sizeof(info.path)))
			continue;
		if (!kernel__describe(ac->skel, p, gen, &ac->kc[gen]))
			ac->slots[s].pol = p;
		return;
	}
	log_info("slot %u: the policy in force, %.*s, is not in %s as it was: the audit lines of "
		 "calls made while no daemon ran do not name their rule",
		 s, (int)sizeof(info.path), info.path, ac->dir_first->path);
}

unsigned attach_daemon__adopt(struct attach_ctx *ac)
{
	unsigned n = 0;

	for (__u32 s = 0; s < MCPF_PSLOTS; s++) {
		struct mcpf_active act = {};

		bpf_map_lookup_elem(bpf_map__fd(ac->skel->maps.tcp_active), &s, &act);
		/* the generation in force stays so until the new one is compiled beside it */
		ac->slots[s].gen = act.loaded ? act.gen & 1 : 1;
		if (act.loaded)
			adopt_slot(ac, s);
	}
	/* the rows of the daemon before, which it goes on with: the names its sessions had */
	status__read(&ac->status, STATUS_PATH);
	daemon_find__scan(adopt_scanned, ac);
	for (unsigned i = 0; i < ac->npids; i++) {
		if (ac->adopted[i]) {
			n++;
			continue;
		}
		memset(&ac->stdio[i], 0, sizeof(ac->stdio[i]));
		ac->stdio[i].ended = true;
		ac->stdio[i].idx = i;
	}
	return n;
}

/*
 * A daemon that came back, its policies in force on the maps it adopted: the sessions it did not
 * take back go, and the slots none needs; this build's programs go where new sockets meet them.
 * n: sessions taken back. 0 or -errno (logged).
 */
int attach_daemon__adopted(struct attach_ctx *ac, unsigned n)
{
	unsigned dropped = kernel_stdio__drop_unadopted(ac->skel, ac->adopted);
	int e;

	for (__u32 s = 0; s < MCPF_PSLOTS; s++) {
		struct mcpf_active act = {};

		if (!ac->slots[s].pol &&
		    !bpf_map_lookup_elem(bpf_map__fd(ac->skel->maps.tcp_active), &s, &act) &&
		    act.loaded)
			kernel__deactivate(ac->skel, s);
	}
	e = kernel_stdio__adopt_progs(ac->skel, ac->pipe_action, &ac->pipes_attached);
	if (e)
		return e;
	log_info(
		"took back the attachment a daemon left in %s: %u session%s (%u dropped: its "
		"server is gone, or no policy fits it any more); counters, budgets and the answers "
		"awaited kept",
		MCPF_PIN_DIR, n, n == 1 ? "" : "s", dropped);
	return 0;
}

/*
 * The stdio rows read back that no session taken back made its own (status_row pins them):
 * ended (their servers are gone).
 */
void attach_daemon__status_adopted(struct attach_ctx *ac)
{
	for (size_t r = 0; r < ac->status.n; r++) {
		struct status_session *row = &ac->status.s[r];

		if (!row->pinned && !row->ended && !strcmp(row->plane, "stdio-kernel"))
			row->ended = true;
	}
	status__forget_ended(&ac->status, STATUS_ENDED_KEEP);
}
