// SPDX-License-Identifier: Apache-2.0
/*
 * daemon_find: the daemon's finder (daemon_find.h, bpf/daemon.bpf.c).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>
#include "daemon.skel.h"
#include "clock.h"
#include "daemon_find.h"
#include "jsonrpc.h"
#include "kernel.h"
#include "log.h"
#include "stdio_find.h"

bool daemon_find__findable(const struct policy *p)
{
	const struct policy_match *m = &p->match;

	return m->present && !m->server_name && !m->has_port;
}

bool daemon_find__nameable(const struct policy *p)
{
	const struct policy_match *m = &p->match;

	return m->present && m->server_name && !m->has_port;
}

void daemon_find__names(const struct policy_dir *d, struct daemon_names *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < d->nfiles && !out->every; i++) {
		const struct policy *p = d->files[i];
		const char *exe = p->match.exe, *last;
		struct mcpf_exe_name k = {};
		bool seen = false;
		size_t len;

		if (!daemon_find__findable(p) && !daemon_find__nameable(p))
			continue;
		last = exe ? strrchr(exe, '/') : NULL;
		last = last ? last + 1 : exe;
		if (!last || !*last || strpbrk(last, "*?") || out->n == MCPF_DAEMON_EXES) {
			out->every = true;
			out->why_every = p->source;
			break;
		}
		len = strlen(last);
		memcpy(k.name, last, len < MCPF_EXE_NAME - 1 ? len : MCPF_EXE_NAME - 1);
		for (unsigned j = 0; j < out->n && !seen; j++)
			seen = !memcmp(&out->names[j], &k, sizeof(k));
		if (!seen)
			out->names[out->n++] = k;
	}
	if (out->every)
		out->n = 0;
}

static int on_ring(void *ctx, void *data, size_t size)
{
	struct daemon_find *f = ctx;
	struct mcpf_exec_event ev;

	if (size < sizeof(ev))
		return 0;
	memcpy(&ev, data, sizeof(ev));
	ev.exe[MCPF_EXE_NAME - 1] = 0;
	f->on_exec(f->ctx, &ev);
	return 0;
}

/* One line of a server's answer: 0 its name, -1 a result with none (why), 1 no result. */
static int line_name(const char *line, size_t len, char *name, size_t size, char *why,
		     size_t why_size)
{
	json_error_t jerr;
	json_t *v, *result, *info;
	const char *n;
	int ret = -1;

	v = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!v) {
		snprintf(why, why_size, "its first answer is no JSON object (%s)", jerr.text);
		return -1;
	}
	result = json_object_get(v, "result");
	info = json_object_get(result, "serverInfo");
	if (!info)
		info = json_object_get(json_object_get(result, "_meta"), MCP_META_SERVER_INFO);
	n = json_string_value(json_object_get(info, "name"));
	if (!json_is_object(v) || !json_is_object(result))
		ret = 1; /* an error, a notification, a request of its own: not yet */
	else if (!n || !*n)
		snprintf(why, why_size, "its first result has no serverInfo with a name");
	else if (strlen(n) != json_string_length(json_object_get(info, "name")) ||
		 strlen(n) >= size)
		snprintf(why, why_size,
			 "the name in its first result holds a NUL or is longer "
			 "than %zu bytes",
			 size - 1);
	else {
		memcpy(name, n, strlen(n) + 1);
		ret = 0;
	}
	json_decref(v);
	return ret;
}

int daemon_find__answer_name(const void *bytes, size_t len, bool cut, char *name, size_t size,
			     char *why, size_t why_size)
{
	const char *p = bytes, *end = p + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		int r;

		if (!nl && cut) {
			snprintf(why, why_size, "its first result is longer than the %d bytes read",
				 MCPF_ANSWER_BYTES);
			return -1;
		}
		if (!nl)
			return 1; /* the line goes on in its next write */
		if (strspn(p, " \t\r") < (size_t)(e - p)) {
			r = line_name(p, (size_t)(e - p), name, size, why, why_size);
			if (r <= 0)
				return r;
		}
		p = e + 1;
	}
	return 1;
}

/*
 * A read that saw the state before it was DONE stops its client a few microseconds later at
 * most: after this long, a stop marked is continued, and the entries go.
 */
#define DAEMON_NAMING_LATE_MS 100

static struct daemon_naming *naming_of(struct daemon_find *f, pid_t pid)
{
	for (unsigned i = 0; i < f->nnaming; i++)
		if (f->naming[i].pid == pid)
			return &f->naming[i];
	return NULL;
}

static void naming_state(struct daemon_find *f, struct daemon_naming *d, uint64_t state);

static int on_answer(void *ctx, void *data, size_t size)
{
	struct daemon_find *f = ctx;
	const struct mcpf_answer_event *ev = data;
	char name[256], why[200];
	struct daemon_naming *d;
	size_t n;
	bool cut;
	pid_t pid;
	int r;

	if (size < sizeof(*ev))
		return 0;
	pid = (pid_t)ev->pid;
	d = naming_of(f, pid);
	if (!d || d->done)
		return 0;
	/* its writes so far, up to MCPF_ANSWER_BYTES in all: a line may take several */
	n = ev->len < MCPF_ANSWER_BYTES ? ev->len : MCPF_ANSWER_BYTES;
	cut = ev->count > n;
	if (!d->acc)
		d->acc = malloc(MCPF_ANSWER_BYTES);
	if (!d->acc) {
		r = -1;
		snprintf(why, sizeof(why), "out of memory");
		goto out;
	}
	if (n > MCPF_ANSWER_BYTES - d->nacc) {
		n = MCPF_ANSWER_BYTES - d->nacc;
		cut = true;
	}
	memcpy(d->acc + d->nacc, ev->bytes, n);
	d->nacc += n;
	r = daemon_find__answer_name(d->acc, d->nacc, cut, name, sizeof(name), why, sizeof(why));
	if (r > 0 && ++d->writes < DAEMON_NAMING_WRITES) {
		/* no result yet (an error, a notification, a line cut short): the next write may */
		naming_state(f, d, MCPF_NAMING_WATCH);
		return 0;
	}
out:
	if (r > 0)
		snprintf(why, sizeof(why), "no result in its first %d writes",
			 DAEMON_NAMING_WRITES);
	f->on_named(f->ctx, pid, r ? NULL : name, r ? why : NULL);
	daemon_find__named(f, pid);
	return 0;
}

/* Continue the clients a pinned daemon_naming_clients (fd) marks stopped; how many. */
static unsigned clients_continue(int fd, bool drop)
{
	struct mcpf_naming_client c;
	__u32 k, next;
	unsigned n = 0;

	for (int more = !bpf_map_get_next_key(fd, NULL, &k); more; k = next) {
		more = !bpf_map_get_next_key(fd, &k, &next);
		if (!bpf_map_lookup_elem(fd, &k, &c) && c.stopped && !kill((pid_t)k, SIGCONT))
			n++;
		if (drop)
			bpf_map_delete_elem(fd, &k);
	}
	return n;
}

static int left_exec(void *ctx, void *data, size_t size)
{
	const struct mcpf_exec_event *ev = data;

	if (size >= sizeof(*ev) && ev->stopped && !kill((pid_t)ev->pid, SIGCONT))
		(*(unsigned *)ctx)++;
	return 0;
}

unsigned daemon_find__release_pinned(void)
{
	unsigned n = 0;
	int fd = bpf_obj_get(DAEMON_PIN_NAMING);

	if (fd >= 0) {
		n += clients_continue(fd, true);
		close(fd);
	}
	fd = bpf_obj_get(DAEMON_PIN_EXECS);
	if (fd >= 0) {
		struct ring_buffer *rb = ring_buffer__new(fd, left_exec, &n, NULL);

		if (rb) {
			ring_buffer__consume(rb);
			ring_buffer__free(rb);
		}
		close(fd);
	}
	return n;
}

int daemon_find__naming(struct daemon_find *f, bool on)
{
	struct bpf_program *progs[DAEMON_NAMING_LINKS] = {
		f->skel->progs.handle_naming_write,    f->skel->progs.handle_naming_writev,
		f->skel->progs.handle_naming_pwritev2, f->skel->progs.handle_naming_read,
		f->skel->progs.handle_naming_readv,    f->skel->progs.handle_naming_preadv2,
		f->skel->progs.handle_naming_recvfrom, f->skel->progs.handle_naming_recvmsg,
	};

	if (!on) {
		for (int i = 0; i < DAEMON_NAMING_LINKS; i++) {
			bpf_link__destroy(f->naming_links[i]);
			f->naming_links[i] = NULL;
		}
		return 0;
	}
	for (int i = 0; i < DAEMON_NAMING_LINKS; i++) {
		if (f->naming_links[i])
			continue;
		f->naming_links[i] = bpf_program__attach(progs[i]);
		if (!f->naming_links[i]) {
			int err = -errno;

			log_err("%s: attach: %s: no server is named by its first answer",
				bpf_program__name(progs[i]), strerror(-err));
			return err;
		}
	}
	return 0;
}

int daemon_find__watch(struct daemon_find *f, pid_t pid, uint64_t out_ino, const pid_t *clients,
		       unsigned nclients)
{
	int sfd = bpf_map__fd(f->skel->maps.daemon_naming);
	int cfd = bpf_map__fd(f->skel->maps.daemon_naming_clients);
	struct mcpf_naming w = { .out_ino = out_ino, .state = MCPF_NAMING_WATCH, .server = pid };
	struct daemon_naming *d;
	__u32 k = (__u32)pid;

	if (f->nnaming == MCPF_NAMING_SERVERS) {
		log_warn("pid %d: %d servers wait for their first answers: its own is not read, "
			 "no \"server_name\" fits it",
			 (int)pid, MCPF_NAMING_SERVERS);
		return -ENOSPC;
	}
	/* on while a server waits for its name (they cost every read and write of the host) */
	if (daemon_find__naming(f, true)) {
		if (!f->nnaming)
			daemon_find__naming(f, false);
		return -ENOTSUP;
	}
	d = &f->naming[f->nnaming];
	memset(d, 0, sizeof(*d));
	d->pid = pid;
	d->out_ino = out_ino;
	for (unsigned i = 0; i < nclients && d->nclients < DAEMON_NAMING_CLIENTS; i++) {
		struct mcpf_naming_client c = {};
		__u32 ck = (__u32)clients[i];
		bool seen = false;
		int j;

		for (unsigned m = 0; m < d->nclients; m++)
			seen |= d->clients[m] == clients[i];
		if (seen)
			continue;
		bpf_map_lookup_elem(cfd, &ck, &c);
		for (j = 0; j < MCPF_NAMING_PER_CLIENT && c.server[j]; j++)
			;
		if (j == MCPF_NAMING_PER_CLIENT) {
			log_warn(
				"pid %d: its client %d waits for %d other servers' first answers: "
				"it is not stopped at this one's (calls it sends before the name is "
				"read are decided as if it had none)",
				(int)pid, (int)clients[i], MCPF_NAMING_PER_CLIENT);
			continue;
		}
		c.server[j] = k;
		if (bpf_map_update_elem(cfd, &ck, &c, BPF_ANY)) {
			log_warn("daemon_naming_clients: update: %s", strerror(errno));
			continue;
		}
		d->clients[d->nclients++] = clients[i];
	}
	if (bpf_map_update_elem(sfd, &k, &w, BPF_ANY)) {
		int err = -errno;

		log_err("daemon_naming: update: %s", strerror(-err));
		d->done = true;
		f->nnaming++;
		return err;
	}
	f->nnaming++;
	return 0;
}

/*
 * d's state in the map (WATCH again, or DONE), then its clients stopped at its answer
 * continued: nothing stops them in either state.
 */
static void naming_state(struct daemon_find *f, struct daemon_naming *d, uint64_t state)
{
	struct mcpf_naming w;
	int cfd = bpf_map__fd(f->skel->maps.daemon_naming_clients);
	__u32 k = (__u32)d->pid;

	if (!bpf_map_lookup_elem(bpf_map__fd(f->skel->maps.daemon_naming), &k, &w)) {
		w.state = state;
		bpf_map_update_elem(bpf_map__fd(f->skel->maps.daemon_naming), &k, &w, BPF_EXIST);
	}
	d->since_ms = clock__mono_ms();
	for (unsigned i = 0; i < d->nclients; i++) {
		struct mcpf_naming_client c;
		__u32 ck = (__u32)d->clients[i];

		if (bpf_map_lookup_elem(cfd, &ck, &c) || !c.stopped)
			continue;
		c.stopped = 0;
		bpf_map_update_elem(cfd, &ck, &c, BPF_EXIST);
		kill(d->clients[i], SIGCONT);
		log_debug("pid %d: its client %d, stopped at its answer, continued", (int)d->pid,
			  (int)d->clients[i]);
	}
}

bool daemon_find__child(struct daemon_find *f, pid_t pid, uint64_t out_ino)
{
	for (unsigned i = 0; i < f->nnaming; i++) {
		struct daemon_naming *d = &f->naming[i];
		struct mcpf_naming w = { .out_ino = out_ino, .server = (__u32)d->pid };
		__u32 k = (__u32)pid;

		if (d->done || d->out_ino != out_ino || d->pid == pid)
			continue;
		if (d->nchildren == DAEMON_NAMING_CHILDREN ||
		    bpf_map_update_elem(bpf_map__fd(f->skel->maps.daemon_naming), &k, &w,
					BPF_ANY)) {
			log_warn(
				"pid %d: a child of pid %d, which waits for its name: its writes are "
				"not read",
				(int)pid, (int)d->pid);
			return true;
		}
		d->children[d->nchildren++] = pid;
		log_debug(
			"pid %d: a child of pid %d, which waits for its name: its writes are read "
			"as its",
			(int)pid, (int)d->pid);
		return true;
	}
	return false;
}

void daemon_find__named(struct daemon_find *f, pid_t pid)
{
	struct daemon_naming *d = naming_of(f, pid);

	if (!d || d->done)
		return;
	d->done = true;
	naming_state(f, d, MCPF_NAMING_DONE);
}

/* d's entries out of the maps: its clients' (continued if a late stop came), then its own. */
static void naming_drop(struct daemon_find *f, struct daemon_naming *d)
{
	int cfd = bpf_map__fd(f->skel->maps.daemon_naming_clients);
	__u32 k = (__u32)d->pid;

	for (unsigned i = 0; i < d->nclients; i++) {
		struct mcpf_naming_client c;
		__u32 ck = (__u32)d->clients[i];
		bool any = false;

		if (bpf_map_lookup_elem(cfd, &ck, &c))
			continue;
		if (c.stopped) {
			kill(d->clients[i], SIGCONT);
			c.stopped = 0;
		}
		for (int j = 0; j < MCPF_NAMING_PER_CLIENT; j++) {
			if (c.server[j] == k)
				c.server[j] = 0;
			any |= c.server[j] != 0;
		}
		if (any)
			bpf_map_update_elem(cfd, &ck, &c, BPF_EXIST);
		else
			bpf_map_delete_elem(cfd, &ck);
	}
	bpf_map_delete_elem(bpf_map__fd(f->skel->maps.daemon_naming), &k);
	for (unsigned i = 0; i < d->nchildren; i++) {
		__u32 ck = (__u32)d->children[i];

		bpf_map_delete_elem(bpf_map__fd(f->skel->maps.daemon_naming), &ck);
	}
	free(d->acc);
	*d = f->naming[--f->nnaming];
	if (!f->nnaming)
		daemon_find__naming(f, false);
}

void daemon_find__naming_tick(struct daemon_find *f)
{
	for (unsigned i = 0; i < f->nnaming;) {
		struct daemon_naming *d = &f->naming[i];
		bool settled = clock__mono_ms() - d->since_ms >= DAEMON_NAMING_LATE_MS;
		struct mcpf_naming w;
		__u32 k = (__u32)d->pid;

		if (d->done && settled) {
			naming_drop(f, d); /* the last entry moved into i */
			continue;
		}
		i++;
		if (d->done ||
		    bpf_map_lookup_elem(bpf_map__fd(f->skel->maps.daemon_naming), &k, &w))
			continue;
		if (w.state == MCPF_NAMING_MISSED) {
			f->on_named(f->ctx, d->pid, NULL,
				    "its first answer found the daemon's ring full");
			daemon_find__named(f, d->pid);
		} else if (kill(d->pid, 0) && errno == ESRCH) {
			daemon_find__named(f, d->pid); /* ended before it answered */
		} else if (w.state == MCPF_NAMING_WATCH && settled) {
			naming_state(f, d, MCPF_NAMING_WATCH); /* a stop that raced the last */
		}
	}
}

/* The ring a daemon before pinned, when there is one of m's shape: reused (true). */
static bool ring_reuse(struct bpf_map *m)
{
	char why[200];
	int err = kernel__map_reuse_pinned(m, DAEMON_PIN_EXECS, why, sizeof(why));

	if (err && err != -ENOENT) {
		log_warn("%s: replaced", why);
		unlink(DAEMON_PIN_EXECS);
	}
	return !err;
}

int daemon_find__start(struct daemon_find *f,
		       void (*on_exec)(void *ctx, const struct mcpf_exec_event *ev),
		       void (*on_named)(void *ctx, pid_t pid, const char *name, const char *why),
		       void *ctx)
{
	bool reused;
	int err, fd;

	memset(f, 0, sizeof(*f));
	f->on_exec = on_exec;
	f->on_named = on_named;
	f->ctx = ctx;
	/* clients a killed daemon stopped at a first answer it never read: continued */
	fd = bpf_obj_get(DAEMON_PIN_NAMING);
	if (fd >= 0) {
		unsigned n = clients_continue(fd, false);

		if (n)
			log_info("%u client%s stopped at a server's first answer by a daemon that "
				 "was killed: continued (the server is taken as one that runs, "
				 "with no name)",
				 n, n == 1 ? "" : "s");
		close(fd);
		unlink(DAEMON_PIN_NAMING);
	}
	f->skel = daemon_bpf__open();
	if (!f->skel) {
		err = -errno;
		log_err("bpf/daemon.bpf.c: open: %s", strerror(-err));
		return err;
	}
	reused = ring_reuse(f->skel->maps.daemon_execs);
	err = daemon_bpf__load(f->skel);
	if (err) {
		log_err("bpf/daemon.bpf.c: load: %s", strerror(-err));
		goto fail;
	}
	if (!reused && bpf_map__pin(f->skel->maps.daemon_execs, DAEMON_PIN_EXECS))
		log_warn(
			"%s: pin: %s: a program stopped at its start when a daemon is killed stays "
			"stopped",
			DAEMON_PIN_EXECS, strerror(errno));
	if (bpf_map__pin(f->skel->maps.daemon_naming_clients, DAEMON_PIN_NAMING))
		log_warn(
			"%s: pin: %s: a client stopped at a server's first answer when a daemon is "
			"killed stays stopped",
			DAEMON_PIN_NAMING, strerror(errno));
	f->rb = ring_buffer__new(bpf_map__fd(f->skel->maps.daemon_execs), on_ring, f, NULL);
	if (!f->rb ||
	    ring_buffer__add(f->rb, bpf_map__fd(f->skel->maps.daemon_answers), on_answer, f)) {
		err = -errno;
		log_err("daemon_execs: ring buffer: %s", strerror(-err));
		goto fail;
	}
	/* the programs a killed daemon had stopped and not read, before any new one */
	f->left = true;
	ring_buffer__consume(f->rb);
	f->left = false;
	f->link = bpf_program__attach(f->skel->progs.handle_daemon_exec);
	if (!f->link) {
		err = -errno;
		log_err("tracepoint sched/sched_process_exec: attach: %s", strerror(-err));
		goto fail;
	}
	return 0;
fail:
	daemon_find__stop(f);
	return err;
}

int daemon_find__set(struct daemon_find *f, const struct daemon_names *names)
{
	int fd = bpf_map__fd(f->skel->maps.daemon_exes);
	struct mcpf_exe_name k, next;
	__u32 key = MCPF_DAEMON_CFG_EVERY;
	__u64 every = names->every;
	__u8 one = 1;
	int err = 0;

	/* the new names first, then every, then the old names out: none is missed meanwhile */
	for (unsigned i = 0; i < names->n; i++)
		if (bpf_map_update_elem(fd, &names->names[i], &one, BPF_ANY)) {
			err = -errno;
			log_err("daemon_exes: update: %s", strerror(errno));
			every = 1;
		}
	if (bpf_map_update_elem(bpf_map__fd(f->skel->maps.daemon_cfg), &key, &every, BPF_ANY)) {
		log_err("daemon_cfg: update: %s", strerror(errno));
		return -errno;
	}
	for (int more = !bpf_map_get_next_key(fd, NULL, &k); more; k = next) {
		bool keep = false;

		more = !bpf_map_get_next_key(fd, &k, &next);
		for (unsigned i = 0; i < names->n && !keep; i++)
			keep = !memcmp(&names->names[i], &k, sizeof(k));
		if (!keep)
			bpf_map_delete_elem(fd, &k);
	}
	return err;
}

int daemon_find__fd(const struct daemon_find *f)
{
	return ring_buffer__epoll_fd(f->rb);
}

bool daemon_find__poll(struct daemon_find *f)
{
	__u32 key = MCPF_DAEMON_CFG_MISSED;
	__u64 missed = 0;

	ring_buffer__consume(f->rb);
	if (bpf_map_lookup_elem(bpf_map__fd(f->skel->maps.daemon_cfg), &key, &missed) ||
	    missed <= f->missed)
		return false;
	log_warn("%llu program%s that may be stdio servers started while the ring of exec events "
		 "was full: not stopped; looked for in /proc, enrolled as they run",
		 (unsigned long long)(missed - f->missed), missed - f->missed == 1 ? "" : "s");
	f->missed = missed;
	return true;
}

void daemon_find__stop(struct daemon_find *f)
{
	bpf_link__destroy(f->link);
	f->link = NULL;
	/* no client is stopped any more, those that were are continued */
	for (int i = 0; i < DAEMON_NAMING_LINKS; i++) {
		bpf_link__destroy(f->naming_links[i]);
		f->naming_links[i] = NULL;
	}
	while (f->skel && f->nnaming) {
		daemon_find__named(f, f->naming[0].pid);
		naming_drop(f, &f->naming[0]);
	}
	ring_buffer__free(f->rb);
	f->rb = NULL;
	daemon_bpf__destroy(f->skel);
	f->skel = NULL;
}

/* Is fd of pid a pipe or a socket? */
static bool stdio_like(pid_t pid, int fd)
{
	return stdio_find__fd_is(pid, fd, "pipe") || stdio_find__fd_is(pid, fd, "socket");
}

unsigned daemon_find__scan(void (*fn)(void *ctx, pid_t pid), void *ctx)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	unsigned n = 0;

	if (!d) {
		log_err("/proc: %s", strerror(errno));
		return 0;
	}
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);

		if (*end || pid <= 0 || pid == getpid())
			continue;
		if (!stdio_like((pid_t)pid, 0) || !stdio_like((pid_t)pid, 1))
			continue;
		fn(ctx, (pid_t)pid);
		n++;
	}
	closedir(d);
	return n;
}
