// SPDX-License-Identifier: Apache-2.0
/*
 * daemon_find: the daemon's finder (daemon_find.h, bpf/daemon.bpf.c).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "daemon.skel.h"
#include "daemon_find.h"
#include "kernel.h"
#include "log.h"
#include "stdio_find.h"

bool daemon_find__findable(const struct policy *p)
{
	const struct policy_match *m = &p->match;

	return m->present && !m->server_name && !m->has_port;
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

		if (!daemon_find__findable(p))
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
		       void (*on_exec)(void *ctx, const struct mcpf_exec_event *ev), void *ctx)
{
	bool reused;
	int err;

	memset(f, 0, sizeof(*f));
	f->on_exec = on_exec;
	f->ctx = ctx;
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
	f->rb = ring_buffer__new(bpf_map__fd(f->skel->maps.daemon_execs), on_ring, f, NULL);
	if (!f->rb) {
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
