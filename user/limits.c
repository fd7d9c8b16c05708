// SPDX-License-Identifier: Apache-2.0
/*
 * limits: budgets in fixed windows. A budget is named by (counter, scope, window length,
 * scope key); its window starts at a multiple of the window length since the epoch, so every
 * process and the kernel plane agree on window edges without talking to each other.
 *
 * A call reserves one unit from every budget that applies to it, or from none. Budgets of
 * scope session, and every budget of a process without the host-wide table, live in a slot
 * array (stable indices, reused after gc with a new generation) behind an open-addressing
 * index; the others in the host-wide table (below), slots with generations too, so that a
 * reservation can be given back safely at any later time.
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
#include <openssl/evp.h>
#include <openssl/sha.h>
#include "limits.h"
#include "log.h"
#include "redis_store.h"

/*
 * Redis configurations (server, prefix, timeout) a process uses in its life, policy reloads
 * included: a store stays while a reservation may name it.
 */
#define LIMITS_MAX_STORES 8
#define REDIS_GRACE_S 60 /* a window's key outlives its end by this: clocks of hosts differ */

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
 * The host-wide table: the budgets of scopes grant, agent and global, in a file that every
 * process of the host maps (the gateways and the kernel plane's attach), guarded by flock().
 * A slot is named by the SHA-256 of its budget's name (budget_name), found by linear probing
 * from the digest. A slot whose window is over may take another budget: it gets a new
 * generation, so that a reservation of the old one given back late leaves the new one alone.
 * Expired slots just before a free one are freed, so that probe runs stay short.
 */
#define TABLE_MAGIC "MCPFBUDG"
#define TABLE_VERSION 2
#define TABLE_MAX_SLOTS (1u << 20)
/* the layout of earlier versions: "MCPFGLB1", 4096 slots of a 232-byte name, global only */
#define TABLE_V1_MAGIC "MCPFGLB1"

struct table_head {
	char magic[8];
	uint32_t version;
	uint32_t nslots;
	uint32_t slot_size;
	uint32_t _pad[11];
};

struct table_slot {
	uint8_t key[SHA256_DIGEST_LENGTH]; /* SHA-256 of the budget's name */
	struct cell c;			   /* c.window_s == 0: free */
	uint32_t gen;			   /* bumped each time the slot takes another budget */
	uint32_t _pad;
};

_Static_assert(sizeof(struct table_head) == 64, "table head is 64 bytes");
_Static_assert(sizeof(struct table_slot) == 64, "table slot is 64 bytes");

struct limits {
	limits_clock_fn clock;
	void *ctx;
	struct budget *slots;
	size_t nslots, cap;
	uint32_t *index; /* slot + 1, 0 = empty */
	size_t index_mask;
	size_t live;
	struct table_head *table; /* NULL: host-wide scopes are this process's */
	struct table_slot *tslots;
	size_t table_size;
	int table_fd;
	char *table_path;
	char table_err[320]; /* why the table could not be used: host-wide scopes are denied */
	struct {
		struct redis_store *s;
		char logged[REDIS_ERR_LEN]; /* the failure last logged: each is logged once */
	} stores[LIMITS_MAX_STORES];
	size_t nstores;
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
	l->table_fd = -1;
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
	if (l->table)
		munmap(l->table, l->table_size);
	if (l->table_fd >= 0)
		close(l->table_fd);
	free(l->table_path);
	for (size_t i = 0; i < l->nstores; i++)
		redis_store__free(l->stores[i].s);
	free(l);
}

static uint64_t hash_key(const char *s);

/* Bring a budget to the window that holds now. */
static void roll(struct cell *c, uint64_t now)
{
	uint64_t start = now - now % c->window_s;

	if (c->window_start != start) {
		c->window_start = start;
		c->used = 0;
	}
}

/*
 * The table's directory, opened (not followed if a symlink: it could be turned elsewhere between
 * a check and the open). Whoever may write it may replace the table: only root or its owner, or
 * others where the sticky bit keeps them from removing what is not theirs (/tmp). Sets *base to
 * the file's name in it. Returns a descriptor or -errno, why says what.
 */
static int open_dir(const char *path, const char **base, char *why, size_t len)
{
	char *dir = strdup(path), *slash;
	struct stat st;
	int fd = -1, err = 0;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	*base = slash ? path + (slash - dir) + 1 : path;
	if (slash == dir)
		slash[1] = 0;
	else if (slash)
		*slash = 0;
	else
		strcpy(dir, ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		err = -errno;
		if (!lstat(dir, &st) && S_ISLNK(st.st_mode))
			err = -ELOOP;
		snprintf(why, len, "%s: %s", dir,
			 err == -ELOOP ? "a symbolic link: name the directory itself" :
					 strerror(-err));
	} else if ((st.st_uid != geteuid() && st.st_uid != 0) ||
		   ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))) {
		err = -EPERM;
		snprintf(why, len,
			 "its directory %s is owned by uid %u, mode %04o: others could replace the "
			 "table",
			 dir, st.st_uid, st.st_mode & 07777);
	}
	free(dir);
	if (err && fd >= 0)
		close(fd);
	return err ? err : fd;
}

/* Check an existing table's head, or write a new one's; the file is locked. */
static int table_open(int fd, const struct stat *st, uint32_t nslots, struct table_head **out,
		      size_t *size, char *why, size_t len)
{
	static const char zero[8];
	struct table_head h = {};
	struct table_head *t;
	bool fresh;

	if (st->st_size && pread(fd, &h, sizeof(h), 0) < 0) {
		snprintf(why, len, "%s", strerror(errno));
		return -errno;
	}
	/* a head of zeros: its creator died before writing it (it does so before unlocking) */
	fresh = !st->st_size || (st->st_size >= (off_t)sizeof(h) && !memcmp(h.magic, zero, 8));
	*size = sizeof(h) + (size_t)(fresh ? nslots : h.nslots) * sizeof(struct table_slot);
	if (fresh) {
		if (ftruncate(fd, 0) || ftruncate(fd, *size)) {
			snprintf(why, len, "%s", strerror(errno));
			return -errno;
		}
	} else if (!memcmp(h.magic, TABLE_V1_MAGIC, 8)) {
		snprintf(why, len,
			 "a budget table of an earlier mcpfence (global budgets only, 4096 "
			 "slots); stop the mcpfence processes that use it (run, attach), "
			 "remove the file and start them again (a reboot clears it too)");
		return -EINVAL;
	} else if (memcmp(h.magic, TABLE_MAGIC, 8)) {
		snprintf(why, len, "not a budget table");
		return -EINVAL;
	} else if (h.version != TABLE_VERSION || h.slot_size != sizeof(struct table_slot)) {
		snprintf(why, len,
			 "a budget table of another version of mcpfence (layout %u, this one reads "
			 "%u); stop the mcpfence processes that use it, remove the file and start "
			 "them again",
			 h.version, TABLE_VERSION);
		return -EINVAL;
	} else if (!h.nslots || h.nslots > TABLE_MAX_SLOTS || st->st_size != (off_t)*size) {
		snprintf(why, len, "damaged: %u slots, %lld bytes", h.nslots,
			 (long long)st->st_size);
		return -EINVAL;
	}
	t = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (t == MAP_FAILED) {
		snprintf(why, len, "mmap: %s", strerror(errno));
		return -errno;
	}
	if (fresh) {
		t->version = TABLE_VERSION;
		t->nslots = nslots;
		t->slot_size = sizeof(struct table_slot);
		memcpy(t->magic, TABLE_MAGIC, 8); /* last: a head with a magic is whole */
	}
	*out = t;
	return 0;
}

int limits__share_table(struct limits *l, const char *path, uint32_t nslots)
{
	struct table_head *t = NULL;
	const char *base;
	char why[256] = "";
	struct stat st;
	size_t size = 0;
	int fd = -1, dfd, err;

	if (!nslots || nslots > TABLE_MAX_SLOTS)
		nslots = LIMITS_TABLE_SLOTS;
	dfd = open_dir(path, &base, why, sizeof(why));
	if (dfd < 0) {
		err = dfd;
		goto out_fail;
	}
	fd = openat(dfd, base, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	close(dfd);
	if (fd < 0) {
		err = -errno;
		snprintf(why, sizeof(why), "%s", strerror(errno));
		goto out_fail;
	}
	if (flock(fd, LOCK_EX) || fstat(fd, &st)) {
		err = -errno;
		snprintf(why, sizeof(why), "%s", strerror(errno));
		goto out_close;
	}
	/* only a table that its owner alone can write is trusted with budgets */
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
		err = -EPERM;
		snprintf(why, sizeof(why),
			 "not a regular file owned by uid %u and writable by it alone", geteuid());
		goto out_close;
	}
	err = table_open(fd, &st, nslots, &t, &size, why, sizeof(why));
	if (err)
		goto out_close;
	flock(fd, LOCK_UN);
	if (l->table)
		munmap(l->table, l->table_size);
	if (l->table_fd >= 0)
		close(l->table_fd);
	free(l->table_path);
	l->table = t;
	l->tslots = (struct table_slot *)(t + 1);
	l->table_size = size;
	l->table_fd = fd;
	l->table_path = strdup(path);
	l->table_err[0] = 0;
	return 0;
out_close:
	close(fd); /* and its lock */
out_fail:
	log_err("%s: %s", path, why);
	if (!l->table)
		snprintf(l->table_err, sizeof(l->table_err), "%.100s: %.200s", path, why);
	return err;
}

/* Free the expired slots that end just before the free slot at, walking back. */
static void table_trim(struct limits *l, uint32_t at, uint64_t now)
{
	uint32_t n = l->table->nslots;

	for (uint32_t i = 0; i + 1 < n; i++) {
		struct table_slot *s;

		at = at ? at - 1 : n - 1;
		s = &l->tslots[at];
		if (!s->c.window_s || s->c.window_start + s->c.window_s > now)
			return;
		s->c.window_s = 0; /* first: a slot half cleared is free, not a budget */
		memset(s->key, 0, sizeof(s->key));
		s->c.used = s->c.window_start = 0;
	}
}

/*
 * The slot of the budget whose name digests to key; with create, brought to the window that
 * holds now, and taken when missing: the first free or expired slot along the probe sequence.
 * -ENOENT, or -ENOSPC when every slot holds a budget whose window is not over (*soonest: when
 * the first of them ends). The table is locked.
 */
static long table_find(struct limits *l, const uint8_t key[SHA256_DIGEST_LENGTH], uint32_t window_s,
		       uint64_t now, bool create, uint64_t *soonest)
{
	uint32_t n = l->table->nslots, at;
	struct table_slot *s;
	long take = -1;
	uint64_t h;

	memcpy(&h, key, sizeof(h));
	at = (uint32_t)(h % n);
	*soonest = UINT64_MAX;
	for (uint32_t probe = 0; probe < n; probe++, at = at + 1 == n ? 0 : at + 1) {
		s = &l->tslots[at];
		if (!s->c.window_s) { /* the key is not further along */
			if (take < 0)
				take = at;
			table_trim(l, at, now);
			break;
		}
		if (!memcmp(s->key, key, SHA256_DIGEST_LENGTH))
			goto out_found;
		if (s->c.window_start + s->c.window_s <= now) {
			if (take < 0)
				take = at;
		} else if (s->c.window_start + s->c.window_s < *soonest) {
			*soonest = s->c.window_start + s->c.window_s;
		}
	}
	if (!create)
		return -ENOENT;
	if (take < 0)
		return -ENOSPC;
	at = (uint32_t)take;
	s = &l->tslots[at];
	s->c.window_s = 0;
	memcpy(s->key, key, SHA256_DIGEST_LENGTH);
	s->c.used = 0;
	s->c.window_start = 0;
	s->gen++;
	s->c.window_s = window_s; /* last: the slot is a budget from here on */
out_found:
	/* in a live window, no later lookup of this call frees or takes it; a read leaves it be */
	if (create)
		roll(&s->c, now);
	return (long)at;
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

static const char *key_of(const char *v)
{
	return v ? v : "";
}

/*
 * Scopes whose budgets outlive a process: kept in the host-wide table when there is one, unless
 * the policy keeps them in Redis.
 */
static bool host_wide(const struct limit *lim)
{
	return lim->scope != SCOPE_SESSION && !lim->redis;
}

/* The store of a Redis configuration (one per server and prefix); NULL: none could be made. */
static long store_of(struct limits *l, const struct redis_conf *rc)
{
	struct redis_store *s;

	for (size_t i = 0; i < l->nstores; i++) {
		const struct redis_conf *c = redis_store__conf(l->stores[i].s);

		if (!strcmp(c->url, rc->url) && !strcmp(c->prefix, rc->prefix) &&
		    c->timeout_ms == rc->timeout_ms)
			return (long)i;
	}
	if (l->nstores == LIMITS_MAX_STORES)
		return -ENOSPC;
	s = redis_store__new(rc);
	if (!s)
		return -ENOMEM;
	l->stores[l->nstores].s = s;
	l->stores[l->nstores].logged[0] = 0;
	return (long)l->nstores++;
}

const char *limits__remote_error(struct limits *l, const struct limit *lim)
{
	for (size_t i = 0; l && lim->redis && i < l->nstores; i++) {
		const struct redis_conf *c = redis_store__conf(l->stores[i].s);

		if (!strcmp(c->url, lim->redis->url) && !strcmp(c->prefix, lim->redis->prefix) &&
		    c->timeout_ms == lim->redis->timeout_ms)
			return l->stores[i].logged[0] ? l->stores[i].logged : NULL;
	}
	return NULL;
}

/* Log a store's failure once, and its recovery once. */
static void store_note(struct limits *l, size_t i, int err)
{
	const char *why = redis_store__error(l->stores[i].s);

	if (err && strcmp(why, l->stores[i].logged)) {
		log_err("%s", why);
		snprintf(l->stores[i].logged, sizeof(l->stores[i].logged), "%s", why);
	} else if (!err && l->stores[i].logged[0]) {
		log_info("Redis at %s: reachable again", redis_store__conf(l->stores[i].s)->shown);
		l->stores[i].logged[0] = 0;
	}
}

/* What snprintf would write, without its format parsing: limits__reserve names a budget a call. */
struct name_out {
	char *out;
	size_t size, len;
};

static void name_put(struct name_out *o, const char *s, size_t n)
{
	if (o->len < o->size) {
		size_t room = o->size - o->len;

		memcpy(o->out + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static void name_str(struct name_out *o, const char *s)
{
	name_put(o, s, strlen(s));
}

static void name_num(struct name_out *o, unsigned long long v)
{
	char t[24];
	size_t i = sizeof(t);

	do
		t[--i] = (char)('0' + v % 10);
	while ((v /= 10));
	name_put(o, t + i, sizeof(t) - i);
}

/*
 * A budget's name: counter \x1f scope \x1f window \x1f owner \x1f scope key. Counter names
 * cannot hold a unit separator and the fields before the last but one are fixed, so the name
 * reads back one way only; owner, and the policy in a grant key, carry their length.
 * - owner: a limit without a counter is named by its pointer; it is a budget of its own in its
 *   policy, so the policy's path goes with it. Empty for named counters, which every policy
 *   that names them shares.
 * - scope key: session id; agent "uid:exe"; grant the policy's path and the server identity;
 *   global none.
 */
int limits__budget_name(char *out, size_t size, const struct limit *lim, const struct scope_keys *k)
{
	const char *policy = key_of(k ? k->policy : NULL), *key = "";
	bool unnamed = !strcmp(lim->counter, lim->ptr);
	size_t plen = strlen(policy);
	struct name_out o = { out, size, 0 };

	switch (lim->scope) {
	case SCOPE_SESSION:
		key = k && k->session ? k->session : "-";
		break;
	case SCOPE_AGENT:
		key = k && k->agent ? k->agent : "-";
		break;
	default:
		break;
	}
	name_str(&o, lim->counter);
	name_put(&o, "\x1f", 1);
	name_str(&o, policy__scope_name(lim->scope));
	name_put(&o, "\x1f", 1);
	name_num(&o, lim->window_s);
	name_put(&o, "\x1f", 1);
	name_num(&o, unnamed ? plen : 0);
	name_put(&o, ":", 1);
	name_str(&o, unnamed ? policy : "");
	name_put(&o, "\x1f", 1);
	if (lim->scope == SCOPE_GRANT) {
		name_num(&o, plen);
		name_put(&o, ":", 1);
		name_str(&o, policy);
		key = key_of(k ? k->server : NULL);
	}
	name_str(&o, key);
	if (size)
		out[o.len < size ? o.len : size - 1] = 0;
	return o.len > 0x7fffffff ? -1 : (int)o.len;
}

/*
 * The name into buf (size bytes) when it fits, else into memory of its own: the caller frees
 * what is not buf. NULL: out of memory.
 */
static char *budget_name(const struct limit *lim, const struct scope_keys *k, char *buf,
			 size_t size)
{
	int n = limits__budget_name(buf, size, lim, k);
	char *name;

	if (n < 0)
		return NULL;
	if ((size_t)n < size)
		return buf;
	name = malloc((size_t)n + 1);
	if (name)
		limits__budget_name(name, (size_t)n + 1, lim, k);
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
static long find_or_add(struct limits *l, const char *name, uint32_t window_s, bool create)
{
	size_t h = hash_key(name) & l->index_mask, slot;

	while (l->index[h]) {
		struct budget *b = &l->slots[l->index[h] - 1];

		if (!strcmp(b->key, name))
			return (long)(l->index[h] - 1);
		h = (h + 1) & l->index_mask;
	}
	if (!create)
		return -ENOENT;
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
	l->slots[slot].key = strdup(name);
	if (!l->slots[slot].key)
		goto out_nomem;
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
	return -ENOMEM;
}

/* A budget that one call touches: where it lives, and how to find it again for give-back. */
struct bref {
	struct cell *c;
	uint32_t idx, gen;
	bool shared;
};

/*
 * Resolve a limit to its budget; one in the table (locked by the caller) is brought to the
 * window that holds now when create. -ENOSPC sets *soonest (table_find).
 */
static int resolve(struct limits *l, const struct limit *lim, const struct scope_keys *k,
		   bool create, struct bref *b, uint64_t *soonest)
{
	char buf[512], *name = budget_name(lim, k, buf, sizeof(buf));
	uint8_t key[SHA256_DIGEST_LENGTH];
	uint64_t unused;
	long slot;

	if (!name)
		return -ENOMEM;
	if (l->table && host_wide(lim)) {
		bool hashed = EVP_Digest(name, strlen(name), key, NULL, EVP_sha256(), NULL);

		slot = -EIO;
		if (hashed)
			slot = table_find(l, key, lim->window_s, limits__now(l), create,
					  soonest ? soonest : &unused);
	} else if (l->table_err[0] && host_wide(lim)) {
		slot = -ENOLINK; /* the table was to hold it: fail closed */
	} else {
		slot = find_or_add(l, name, lim->window_s, create);
	}
	if (name != buf)
		free(name);
	if (slot < 0)
		return (int)slot;
	if (l->table && host_wide(lim))
		*b = (struct bref){ &l->tslots[slot].c, (uint32_t)slot, l->tslots[slot].gen, true };
	else
		*b = (struct bref){ &l->slots[slot].c, (uint32_t)slot, l->slots[slot].gen, false };
	return 0;
}

static bool any_in_table(struct limits *l, const struct limit *const *all, size_t n)
{
	for (size_t i = 0; l->table && i < n; i++)
		if (host_wide(all[i]))
			return true;
	return false;
}

/* Why a budget cannot be had, in the words of a denial (d's pointer is lim's). */
static void deny_unkept(struct limits *l, const struct limit *lim, int err, uint64_t soonest,
			uint64_t now, struct decision *d)
{
	if (err == -ENOSPC) {
		decide__deny(d, KIND_LIMIT, lim->ptr,
			     "the host-wide budget table %s is full (%u budgets in their window); "
			     "retry in %llu s",
			     l->table_path, l->table->nslots,
			     (unsigned long long)(soonest > now ? soonest - now : 1));
		d->retry_after_s = soonest > now ? soonest - now : 1;
	} else if (err == -ENOLINK) {
		decide__deny(d, KIND_LIMIT, lim->ptr,
			     "budgets of scope %s are kept host-wide and the table cannot be used "
			     "(%s)",
			     policy__scope_name(lim->scope), l->table_err);
	} else {
		decide__deny(d, KIND_LIMIT, lim->ptr, "cannot keep this budget: %s",
			     strerror(-err));
	}
}

/* A budget kept in Redis: its store, and its key in the window that holds now. */
struct rref {
	uint32_t store;
	uint8_t digest[SHA256_DIGEST_LENGTH];
	uint64_t window_start;
	uint64_t ttl_s;
	char key[REDIS_KEY_MAX];
};

static int remote_ref(struct limits *l, const struct limit *lim, const struct scope_keys *k,
		      uint64_t now, struct rref *r)
{
	char buf[512], *name = budget_name(lim, k, buf, sizeof(buf));
	bool hashed;
	long st;

	if (!name)
		return -ENOMEM;
	hashed = EVP_Digest(name, strlen(name), r->digest, NULL, EVP_sha256(), NULL);
	if (name != buf)
		free(name);
	if (!hashed)
		return -EIO;
	st = store_of(l, lim->redis);
	if (st < 0)
		return (int)st;
	r->store = (uint32_t)st;
	r->window_start = now - now % lim->window_s;
	r->ttl_s = r->window_start + lim->window_s - now + REDIS_GRACE_S;
	redis_store__key(l->stores[st].s, r->digest, r->window_start, r->key);
	return 0;
}

/* A limit that fired, retry seconds before its window ends, in the words of a denial. */
static void deny_limit(struct decision *d, const struct limit *fired, uint64_t retry)
{
	char win[32];

	policy__window_name(fired->window_s, win, sizeof(win));
	decide__deny(d, KIND_LIMIT, fired->ptr,
		     "rate limit of %llu calls per %s reached; retry in %llu s",
		     (unsigned long long)fired->max, win, (unsigned long long)retry);
	d->retry_after_s = retry ? retry : 1;
}

/*
 * The call's budgets kept in Redis (all of one policy, so of one store), checked and taken in
 * one script; recorded in res for give-back. The other budgets had room.
 */
static int reserve_remote(struct limits *l, const struct limit *const *all, size_t n,
			  const struct scope_keys *k, uint64_t now, struct reservation *res,
			  struct decision *d)
{
	struct rref rr[LIMITS_MAX_PER_CALL];
	const struct limit *which[LIMITS_MAX_PER_CALL], *fired = NULL;
	const char *keys[LIMITS_MAX_PER_CALL];
	uint64_t max[LIMITS_MAX_PER_CALL], ttl[LIMITS_MAX_PER_CALL], worst = 0;
	bool full[LIMITS_MAX_PER_CALL];
	const struct redis_conf *rc;
	size_t m = 0;
	int err;

	for (size_t i = 0; i < n; i++) {
		if (!all[i]->redis)
			continue;
		err = remote_ref(l, all[i], k, now, &rr[m]);
		if (err) {
			decide__deny(d, KIND_LIMIT, all[i]->ptr, "cannot keep this budget: %s",
				     err == -ENOSPC ?
					     "the policies in force name more than 8 Redis "
					     "servers or prefixes" :
					     strerror(-err));
			return err;
		}
		keys[m] = rr[m].key;
		max[m] = all[i]->max;
		ttl[m] = rr[m].ttl_s;
		which[m++] = all[i];
	}
	rc = which[0]->redis;
	err = redis_store__reserve(l->stores[rr[0].store].s, m, keys, max, ttl, full);
	store_note(l, rr[0].store, err < 0 ? err : 0);
	if (err < 0) {
		const char *why = redis_store__error(l->stores[rr[0].store].s);

		if (rc->fail_open) {
			snprintf(d->note, sizeof(d->note),
				 "budgets of scopes agent and global not counted (%s): let "
				 "through, as \"unreachable\": \"allow\" says",
				 why);
			return 0;
		}
		decide__deny(d, KIND_LIMIT, which[0]->ptr,
			     "the budgets of scope %s cannot be counted (%s): denied until Redis "
			     "answers",
			     policy__scope_name(which[0]->scope), why);
		return -EIO;
	}
	if (err) {
		for (size_t i = 0; i < m; i++) {
			uint64_t retry = rr[i].window_start + which[i]->window_s - now;

			if (full[i] && (!fired || retry > worst)) {
				fired = which[i];
				worst = retry;
			}
		}
		deny_limit(d, fired ? fired : which[0], worst);
		return -EDQUOT;
	}
	for (size_t i = 0; i < m; i++) {
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			seen |= !strcmp(rr[j].key, rr[i].key);
		if (seen)
			continue;
		res->slot[res->n].budget = rr[i].store;
		res->slot[res->n].gen = 0;
		res->slot[res->n].shared = false;
		res->slot[res->n].remote = true;
		memcpy(res->slot[res->n].digest, rr[i].digest, sizeof(rr[i].digest));
		res->slot[res->n].window_start = rr[i].window_start;
		res->n++;
	}
	return 0;
}

int limits__reserve(struct limits *l, const struct policy *p, const struct rule *r,
		    const struct scope_keys *k, struct reservation *res, struct decision *d)
{
	const struct limit *all[LIMITS_MAX_PER_CALL];
	struct bref b[LIMITS_MAX_PER_CALL];
	uint64_t now, worst_retry = 0, soonest = 0;
	const struct limit *fired = NULL;
	bool locked = false;
	size_t n = 0, nb = 0, nremote = 0;
	int err = 0;

	/* slots past n are never read: most calls have no limit, and 32 slots cost more than them */
	res->n = 0;
	for (size_t i = 0; i < p->nall_limits && n < LIMITS_MAX_PER_CALL; i++)
		all[n++] = &p->all_limits[i];
	for (size_t i = 0; r && i < r->nlimits && n < LIMITS_MAX_PER_CALL; i++)
		all[n++] = &r->limits[i];
	if (!n)
		return 0;
	now = limits__now(l);
	if (any_in_table(l, all, n)) {
		if (flock(l->table_fd, LOCK_EX)) {
			err = -errno;
			decide__deny(d, KIND_LIMIT, all[0]->ptr,
				     "host-wide budgets unavailable: %s", strerror(errno));
			return err;
		}
		locked = true;
	}
	/* resolve every budget first (growing the local table may move it), then take cells */
	for (; nb < n; nb++) {
		if (all[nb]->redis) {
			b[nb] = (struct bref){ NULL, 0, 0, false };
			nremote++;
			continue;
		}
		err = resolve(l, all[nb], k, true, &b[nb], &soonest);
		if (err) {
			deny_unkept(l, all[nb], err, soonest, now, d);
			goto out_unlock;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (!b[i].shared && !all[i]->redis)
			b[i].c = &l->slots[b[i].idx].c;
	/* check every limit first: all or none */
	for (size_t i = 0; i < n; i++) {
		uint64_t retry;

		if (!b[i].c)
			continue;
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
		deny_limit(d, fired, worst_retry);
		err = -EDQUOT;
		goto out_unlock;
	}
	/* the others had room: now those in Redis, all or none there too */
	if (nremote && (err = reserve_remote(l, all, n, k, now, res, d)))
		goto out_unlock;
	/* limits sharing a budget count the call once */
	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		if (!b[i].c)
			continue;
		for (size_t j = 0; j < i; j++)
			seen |= b[j].c == b[i].c;
		if (seen)
			continue;
		b[i].c->used++;
		res->slot[res->n].budget = b[i].idx;
		res->slot[res->n].gen = b[i].gen;
		res->slot[res->n].shared = b[i].shared;
		res->slot[res->n].remote = false;
		res->slot[res->n].window_start = b[i].c->window_start;
		res->n++;
	}
out_unlock:
	/*
	 * A denied call takes no slot either: an unused budget of the table is as good as none,
	 * so it is left expired, for any budget to take (its key stays: probes pass it).
	 */
	for (size_t i = 0; err && i < nb; i++)
		if (b[i].shared && b[i].c && !b[i].c->used)
			b[i].c->window_start = 0;
	if (locked)
		flock(l->table_fd, LOCK_UN);
	return err;
}

/* Give back the reservation's budgets kept in Redis, store by store. */
static void release_remote(struct limits *l, const struct reservation *res)
{
	char keys[LIMITS_MAX_PER_CALL][REDIS_KEY_MAX];
	const char *kp[LIMITS_MAX_PER_CALL];

	for (size_t st = 0; st < l->nstores; st++) {
		size_t m = 0;
		int err;

		for (size_t i = 0; i < res->n; i++) {
			if (!res->slot[i].remote || res->slot[i].budget != st)
				continue;
			redis_store__key(l->stores[st].s, res->slot[i].digest,
					 res->slot[i].window_start, keys[m]);
			kp[m] = keys[m];
			m++;
		}
		if (!m)
			continue;
		err = redis_store__release(l->stores[st].s, m, kp);
		store_note(l, st, err);
	}
}

void limits__release(struct limits *l, const struct reservation *res)
{
	bool locked = false;

	release_remote(l, res);
	for (size_t i = 0; i < res->n; i++) {
		struct cell *c = NULL;

		if (res->slot[i].remote)
			continue;
		if (res->slot[i].shared) {
			struct table_slot *s;

			if (!l->table || res->slot[i].budget >= l->table->nslots)
				continue;
			if (!locked && !flock(l->table_fd, LOCK_EX))
				locked = true;
			s = &l->tslots[res->slot[i].budget];
			/* a slot that took another budget since has another generation */
			if (s->c.window_s && s->gen == res->slot[i].gen)
				c = &s->c;
		} else if (res->slot[i].budget < l->nslots) {
			struct budget *b = &l->slots[res->slot[i].budget];

			if (b->key && b->gen == res->slot[i].gen)
				c = &b->c;
		}
		if (c && c->window_start == res->slot[i].window_start && c->used > 0)
			c->used--;
	}
	if (locked)
		flock(l->table_fd, LOCK_UN);
}

/* Lock the table when lim's budget is in it; false when that fails (logged). */
static bool lock_for(struct limits *l, const struct limit *lim, bool *locked)
{
	*locked = false;
	if (!l->table || !host_wide(lim))
		return true;
	if (flock(l->table_fd, LOCK_EX)) {
		log_err("%s: lock: %s", l->table_path, strerror(errno));
		return false;
	}
	*locked = true;
	return true;
}

int limits__charge(struct limits *l, const struct limit *lim, const struct scope_keys *k,
		   uint64_t at)
{
	uint64_t now = limits__now(l);
	bool locked;
	struct bref b;
	int err;

	if (!at || at > now)
		at = now;
	if (lim->redis) {
		struct rref rr;

		err = remote_ref(l, lim, k, now, &rr);
		if (err)
			return err;
		if (at - at % lim->window_s != rr.window_start)
			return -ESTALE;
		err = redis_store__charge(l->stores[rr.store].s, rr.key, rr.ttl_s);
		store_note(l, rr.store, err);
		return err;
	}
	if (!lock_for(l, lim, &locked))
		return -EIO;
	err = resolve(l, lim, k, true, &b, NULL);
	if (err) {
		log_err("%s: cannot keep this budget: %s", lim->ptr,
			err == -ENOLINK ? l->table_err :
			err == -ENOSPC	? "the host-wide budget table is full" :
					  strerror(-err));
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
		flock(l->table_fd, LOCK_UN);
	return err;
}

/* A budget that cannot be kept (table full or unusable) has nothing left: fail closed. */
uint64_t limits__left(struct limits *l, const struct limit *lim, const struct scope_keys *k)
{
	uint64_t now = limits__now(l), used = UINT64_MAX;
	bool locked;
	struct bref b;
	int err;

	if (lim->redis) {
		struct rref rr;

		err = remote_ref(l, lim, k, now, &rr);
		if (!err) {
			err = redis_store__get(l->stores[rr.store].s, rr.key, &used);
			store_note(l, rr.store, err);
		}
		if (err)
			return lim->redis->fail_open ? lim->max : 0;
		return used >= lim->max ? 0 : lim->max - used;
	}
	if (!lock_for(l, lim, &locked))
		return 0;
	/* made in the table when missing: a full table says so (and a budget read is one used) */
	err = resolve(l, lim, k, locked, &b, NULL);
	if (!err) {
		roll(b.c, now);
		used = b.c->used;
	} else if (err == -ENOENT) {
		used = 0;
	}
	if (locked)
		flock(l->table_fd, LOCK_UN);
	return used >= lim->max ? 0 : lim->max - used;
}

uint64_t limits__used(struct limits *l, const struct limit *lim, const struct scope_keys *k)
{
	uint64_t now = limits__now(l), used = 0;
	bool locked;
	struct bref b;

	if (lim->redis) {
		struct rref rr;
		int err = remote_ref(l, lim, k, now, &rr);

		if (!err) {
			err = redis_store__get(l->stores[rr.store].s, rr.key, &used);
			store_note(l, rr.store, err);
		}
		return err ? 0 : used;
	}
	if (!lock_for(l, lim, &locked))
		return 0;
	if (!resolve(l, lim, k, false, &b, NULL) && b.c->window_start == now - now % b.c->window_s)
		used = b.c->used;
	if (locked)
		flock(l->table_fd, LOCK_UN);
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

const char *limits__default_table_path(char *buf, size_t len)
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
