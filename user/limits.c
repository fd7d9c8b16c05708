// SPDX-License-Identifier: Apache-2.0
/*
 * limits: budgets in fixed windows. A budget is named by (counter, scope, window length,
 * scope key); its window starts at a multiple of the window length since the epoch, so every
 * process and the kernel plane agree on window edges without talking to each other.
 *
 * A call reserves one unit from every budget that applies to it, or from none. Budgets live in
 * a slot array (stable indices, reused after gc with a new generation) behind an
 * open-addressing index, so that a reservation can be given back safely at any later time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "limits.h"
#include "log.h"

/* What a budget counts: the same in process memory and in the host-wide table. */
struct cell {
	uint64_t window_start;
	uint64_t used;
	uint32_t window_s;
	uint32_t _pad;
};

struct budget {
	char *key; /* NULL: free slot */
	struct cell c;
	uint32_t gen;
};

/*
 * Scope "global" across processes: a table in a file that every gateway of the host maps,
 * guarded by flock(). Entries are never removed (one per global counter and window: few).
 */
#define SHARED_MAGIC "MCPFGLB1"
#define SHARED_SLOTS 4096
#define SHARED_KEY 232

struct shared_slot {
	char key[SHARED_KEY]; /* NUL-terminated; empty: free */
	struct cell c;
};

struct shared_table {
	char magic[8];
	uint32_t nslots;
	uint32_t slot_size;
	struct shared_slot slots[SHARED_SLOTS];
};

struct limits {
	limits_clock_fn clock;
	void *ctx;
	struct budget *slots;
	size_t nslots, cap;
	uint32_t *index; /* slot + 1, 0 = empty */
	size_t index_mask;
	size_t live;
	struct shared_table *shared; /* NULL: "global" budgets are this process's */
	int shared_fd;
};

static uint64_t real_clock(void *ctx)
{
	return (uint64_t)time(NULL);
}

struct limits *limits__new(limits_clock_fn clock, void *ctx)
{
	struct limits *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->clock = clock ? clock : real_clock;
	l->ctx = ctx;
	l->shared_fd = -1;
	l->index_mask = 63;
	l->index = calloc(l->index_mask + 1, sizeof(*l->index));
	if (!l->index) {
		free(l);
		errno = ENOMEM;
		return NULL;
	}
	return l;
}

void limits__free(struct limits *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nslots; i++)
		free(l->slots[i].key);
	free(l->slots);
	free(l->index);
	if (l->shared)
		munmap(l->shared, sizeof(*l->shared));
	if (l->shared_fd >= 0)
		close(l->shared_fd);
	free(l);
}

static uint64_t hash_key(const char *s);

int limits__share_global(struct limits *l, const char *path)
{
	struct shared_table *t = MAP_FAILED;
	struct stat st;
	int fd, err;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err = -errno;
		log_err("%s: %s", path, strerror(errno));
		return err;
	}
	if (flock(fd, LOCK_EX) || fstat(fd, &st)) {
		err = -errno;
		log_err("%s: %s", path, strerror(errno));
		goto out_close;
	}
	/* only a table that its owner alone can write is trusted with budgets */
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
		err = -EPERM;
		log_err("%s: not a regular file owned by uid %u and writable by it alone", path,
			geteuid());
		goto out_unlock;
	}
	if (st.st_size == 0 && ftruncate(fd, sizeof(*t))) {
		err = -errno;
		log_err("%s: %s", path, strerror(errno));
		goto out_unlock;
	}
	if (st.st_size != 0 && st.st_size != (off_t)sizeof(*t)) {
		err = -EINVAL;
		log_err("%s: %lld bytes, not a budget table of %zu", path, (long long)st.st_size,
			sizeof(*t));
		goto out_unlock;
	}
	t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (t == MAP_FAILED) {
		err = -errno;
		log_err("%s: mmap: %s", path, strerror(errno));
		goto out_unlock;
	}
	if (st.st_size == 0) {
		memcpy(t->magic, SHARED_MAGIC, 8);
		t->nslots = SHARED_SLOTS;
		t->slot_size = sizeof(struct shared_slot);
	} else if (memcmp(t->magic, SHARED_MAGIC, 8) || t->nslots != SHARED_SLOTS ||
		   t->slot_size != sizeof(struct shared_slot)) {
		err = -EINVAL;
		log_err("%s: not a budget table of this version", path);
		munmap(t, sizeof(*t));
		goto out_unlock;
	}
	flock(fd, LOCK_UN);
	if (l->shared)
		munmap(l->shared, sizeof(*l->shared));
	if (l->shared_fd >= 0)
		close(l->shared_fd);
	l->shared = t;
	l->shared_fd = fd;
	return 0;
out_unlock:
	flock(fd, LOCK_UN);
out_close:
	close(fd);
	return err;
}

/* The host-wide slot named name (created when missing and create), or -errno; locked. */
static long shared_find(struct shared_table *t, const char *name, uint32_t window_s, bool create)
{
	size_t h;

	if (strlen(name) >= SHARED_KEY)
		return -ENAMETOOLONG;
	h = hash_key(name) % SHARED_SLOTS;
	for (size_t probe = 0; probe < SHARED_SLOTS; probe++, h = (h + 1) % SHARED_SLOTS) {
		struct shared_slot *s = &t->slots[h];

		if (!s->key[0]) {
			if (!create)
				return -ENOENT;
			snprintf(s->key, sizeof(s->key), "%s", name);
			memset(&s->c, 0, sizeof(s->c));
			s->c.window_s = window_s;
			return (long)h;
		}
		if (!strncmp(s->key, name, sizeof(s->key)))
			return (long)h;
	}
	return -ENOSPC;
}

uint64_t limits__now(struct limits *l)
{
	return l->clock(l->ctx);
}

static uint64_t hash_key(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static const char *scope_key(const struct limit *lim, const struct scope_keys *k)
{
	switch (lim->scope) {
	case SCOPE_SESSION:
		return k && k->session ? k->session : "-";
	case SCOPE_AGENT:
		return k && k->agent ? k->agent : "-";
	default:
		return "";
	}
}

/* counter \x1f scope \x1f window \x1f key: unit separators cannot occur in validated names */
static char *budget_name(const struct limit *lim, const struct scope_keys *k)
{
	char *name;

	if (asprintf(&name, "%s\x1f%s\x1f%u\x1f%s", lim->counter, policy__scope_name(lim->scope),
		     lim->window_s, scope_key(lim, k)) < 0)
		return NULL;
	return name;
}

static void fill_index(struct limits *l, uint32_t *index, size_t size)
{
	free(l->index);
	l->index = index;
	l->index_mask = size - 1;
	for (size_t i = 0; i < l->nslots; i++) {
		size_t h;

		if (!l->slots[i].key)
			continue;
		h = hash_key(l->slots[i].key) & l->index_mask;
		while (l->index[h])
			h = (h + 1) & l->index_mask;
		l->index[h] = (uint32_t)i + 1;
	}
}

static int rebuild_index(struct limits *l, size_t size)
{
	uint32_t *index = calloc(size, sizeof(*index));

	if (!index)
		return -ENOMEM;
	fill_index(l, index, size);
	return 0;
}

/* The budget named name, created empty when missing and create; takes ownership of name. */
static long find_or_add(struct limits *l, char *name, uint32_t window_s, bool create)
{
	size_t h = hash_key(name) & l->index_mask, slot;

	while (l->index[h]) {
		struct budget *b = &l->slots[l->index[h] - 1];

		if (!strcmp(b->key, name)) {
			free(name);
			return (long)(l->index[h] - 1);
		}
		h = (h + 1) & l->index_mask;
	}
	if (!create) {
		free(name);
		return -ENOENT;
	}
	if (2 * (l->live + 1) > l->index_mask + 1 && rebuild_index(l, 2 * (l->index_mask + 1)))
		goto out_nomem;
	for (slot = 0; slot < l->nslots; slot++) /* reuse a slot freed by gc */
		if (!l->slots[slot].key)
			break;
	if (slot == l->nslots) {
		if (l->nslots == l->cap) {
			size_t cap = l->cap ? 2 * l->cap : 16;
			struct budget *n = reallocarray(l->slots, cap, sizeof(*n));

			if (!n || cap > UINT32_MAX - 1)
				goto out_nomem;
			l->slots = n;
			l->cap = cap;
		}
		memset(&l->slots[l->nslots++], 0, sizeof(struct budget));
	}
	l->slots[slot].key = name;
	memset(&l->slots[slot].c, 0, sizeof(struct cell));
	l->slots[slot].c.window_s = window_s;
	l->slots[slot].gen++;
	l->live++;
	h = hash_key(name) & l->index_mask;
	while (l->index[h])
		h = (h + 1) & l->index_mask;
	l->index[h] = (uint32_t)slot + 1;
	return (long)slot;
out_nomem:
	free(name);
	return -ENOMEM;
}

/* Bring a budget to the window that holds now. */
static void roll(struct cell *c, uint64_t now)
{
	uint64_t start = now - now % c->window_s;

	if (c->window_start != start) {
		c->window_start = start;
		c->used = 0;
	}
}

/* A budget that one call touches: where it lives, and how to find it again for give-back. */
struct bref {
	struct cell *c;
	uint32_t idx, gen;
	bool shared;
};

/* Resolve a limit to its budget; a host-wide one only when the table lock is held. */
static int resolve(struct limits *l, const struct limit *lim, const struct scope_keys *k,
		   bool create, struct bref *b)
{
	char *name = budget_name(lim, k);
	long slot;

	if (!name)
		return -ENOMEM;
	if (lim->scope == SCOPE_GLOBAL && l->shared) {
		slot = shared_find(l->shared, name, lim->window_s, create);
		free(name);
		if (slot < 0)
			return (int)slot;
		*b = (struct bref){ &l->shared->slots[slot].c, (uint32_t)slot, 0, true };
		return 0;
	}
	slot = find_or_add(l, name, lim->window_s, create);
	if (slot < 0)
		return (int)slot;
	*b = (struct bref){ &l->slots[slot].c, (uint32_t)slot, l->slots[slot].gen, false };
	return 0;
}

static bool any_global(const struct limit *const *all, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (all[i]->scope == SCOPE_GLOBAL)
			return true;
	return false;
}

int limits__reserve(struct limits *l, const struct policy *p, const struct rule *r,
		    const struct scope_keys *k, struct reservation *res, struct decision *d)
{
	const struct limit *all[LIMITS_MAX_PER_CALL];
	struct bref b[LIMITS_MAX_PER_CALL];
	uint64_t now = limits__now(l), worst_retry = 0;
	const struct limit *fired = NULL;
	bool locked = false;
	size_t n = 0;
	int err = 0;

	memset(res, 0, sizeof(*res));
	for (size_t i = 0; i < p->nall_limits && n < LIMITS_MAX_PER_CALL; i++)
		all[n++] = &p->all_limits[i];
	for (size_t i = 0; r && i < r->nlimits && n < LIMITS_MAX_PER_CALL; i++)
		all[n++] = &r->limits[i];
	if (!n)
		return 0;
	if (l->shared && any_global(all, n)) {
		if (flock(l->shared_fd, LOCK_EX)) {
			err = -errno;
			decide__deny(d, KIND_LIMIT, all[0]->ptr, "host-wide budgets unavailable: %s",
				     strerror(errno));
			return err;
		}
		locked = true;
	}
	/* resolve every budget first (growing the local table may move it), then take cells */
	for (size_t i = 0; i < n; i++) {
		err = resolve(l, all[i], k, true, &b[i]);
		if (err) {
			decide__deny(d, KIND_LIMIT, all[i]->ptr, "cannot keep this budget: %s",
				     strerror(-err));
			goto out_unlock;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (!b[i].shared)
			b[i].c = &l->slots[b[i].idx].c;
	/* check every limit first: all or none */
	for (size_t i = 0; i < n; i++) {
		uint64_t retry;

		roll(b[i].c, now);
		if (b[i].c->used + 1 <= all[i]->max)
			continue;
		retry = b[i].c->window_start + b[i].c->window_s - now;
		if (!fired || retry > worst_retry) {
			fired = all[i];
			worst_retry = retry;
		}
	}
	if (fired) {
		char win[32];

		policy__window_name(fired->window_s, win, sizeof(win));
		decide__deny(d, KIND_LIMIT, fired->ptr,
			     "rate limit of %llu calls per %s reached; retry in %llu s",
			     (unsigned long long)fired->max, win, (unsigned long long)worst_retry);
		d->retry_after_s = worst_retry ? worst_retry : 1;
		err = -EDQUOT;
		goto out_unlock;
	}
	/* limits sharing a budget count the call once */
	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			seen |= b[j].c == b[i].c;
		if (seen)
			continue;
		b[i].c->used++;
		res->slot[res->n].budget = b[i].idx;
		res->slot[res->n].gen = b[i].gen;
		res->slot[res->n].shared = b[i].shared;
		res->slot[res->n].window_start = b[i].c->window_start;
		res->n++;
	}
out_unlock:
	if (locked)
		flock(l->shared_fd, LOCK_UN);
	return err;
}

void limits__release(struct limits *l, const struct reservation *res)
{
	bool locked = false;

	for (size_t i = 0; i < res->n; i++) {
		struct cell *c = NULL;

		if (res->slot[i].shared) {
			if (!l->shared || res->slot[i].budget >= SHARED_SLOTS)
				continue;
			if (!locked && !flock(l->shared_fd, LOCK_EX))
				locked = true;
			c = &l->shared->slots[res->slot[i].budget].c;
		} else if (res->slot[i].budget < l->nslots) {
			struct budget *b = &l->slots[res->slot[i].budget];

			if (b->key && b->gen == res->slot[i].gen)
				c = &b->c;
		}
		if (c && c->window_start == res->slot[i].window_start && c->used > 0)
			c->used--;
	}
	if (locked)
		flock(l->shared_fd, LOCK_UN);
}

int limits__charge(struct limits *l, const struct limit *lim, const struct scope_keys *k,
		   uint64_t at)
{
	uint64_t now = limits__now(l);
	bool locked = false;
	struct bref b;
	int err;

	if (!at || at > now)
		at = now;
	if (lim->scope == SCOPE_GLOBAL && l->shared) {
		if (flock(l->shared_fd, LOCK_EX)) {
			err = -errno;
			log_err("host-wide budgets: lock: %s", strerror(errno));
			return err;
		}
		locked = true;
	}
	err = resolve(l, lim, k, true, &b);
	if (err) {
		log_err("%s: cannot keep this budget: %s", lim->ptr, strerror(-err));
		goto out_unlock;
	}
	roll(b.c, now);
	if (at - at % b.c->window_s != b.c->window_start) {
		err = -ESTALE; /* its window is over: nothing left to count against */
		goto out_unlock;
	}
	b.c->used++;
out_unlock:
	if (locked)
		flock(l->shared_fd, LOCK_UN);
	return err;
}

uint64_t limits__left(struct limits *l, const struct limit *lim, const struct scope_keys *k)
{
	uint64_t used = limits__used(l, lim, k);

	return used >= lim->max ? 0 : lim->max - used;
}

uint64_t limits__used(struct limits *l, const struct limit *lim, const struct scope_keys *k)
{
	uint64_t now = limits__now(l), used = 0;
	bool locked = false;
	struct bref b;

	if (lim->scope == SCOPE_GLOBAL && l->shared && !flock(l->shared_fd, LOCK_EX))
		locked = true;
	if (!resolve(l, lim, k, false, &b) && b.c->window_start == now - now % b.c->window_s)
		used = b.c->used;
	if (locked)
		flock(l->shared_fd, LOCK_UN);
	return used;
}

size_t limits__gc(struct limits *l)
{
	uint64_t now = limits__now(l);
	size_t dropped = 0;
	uint32_t *index;

	/* the new index first: on failure nothing is dropped and the old one stays valid */
	index = calloc(l->index_mask + 1, sizeof(*index));
	if (!index)
		return 0;
	for (size_t i = 0; i < l->nslots; i++) {
		struct budget *b = &l->slots[i];

		if (!b->key || b->c.window_start + b->c.window_s > now)
			continue;
		free(b->key);
		b->key = NULL;
		l->live--;
		dropped++;
	}
	fill_index(l, index, l->index_mask + 1);
	return dropped;
}

const char *limits__default_global_path(char *buf, size_t len)
{
	const char *env = getenv("MCPFENCE_RUNTIME_DIR"), *rt = getenv("XDG_RUNTIME_DIR");
	char dir[256];

	if (env && *env)
		snprintf(dir, sizeof(dir), "%.200s", env);
	else if (geteuid() == 0)
		snprintf(dir, sizeof(dir), "/run/mcpfence");
	else if (rt && rt[0] == '/')
		snprintf(dir, sizeof(dir), "%.200s/mcpfence", rt);
	else
		snprintf(dir, sizeof(dir), "/tmp/mcpfence-%u", geteuid());
	mkdir(dir, 0700);
	snprintf(buf, len, "%s/global-budgets", dir);
	return buf;
}
