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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "limits.h"

struct budget {
	char *key; /* NULL: free slot */
	uint64_t window_start;
	uint64_t used;
	uint32_t window_s;
	uint32_t gen;
};

struct limits {
	limits_clock_fn clock;
	void *ctx;
	struct budget *slots;
	size_t nslots, cap;
	uint32_t *index; /* slot + 1, 0 = empty */
	size_t index_mask;
	size_t live;
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
	free(l);
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

/* The budget named name, created empty when missing; takes ownership of name. */
static long find_or_add(struct limits *l, char *name, uint32_t window_s)
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
	l->slots[slot].window_s = window_s;
	l->slots[slot].window_start = 0;
	l->slots[slot].used = 0;
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
static void roll(struct budget *b, uint64_t now)
{
	uint64_t start = now - now % b->window_s;

	if (b->window_start != start) {
		b->window_start = start;
		b->used = 0;
	}
}

int limits__reserve(struct limits *l, const struct policy *p, const struct rule *r,
		    const struct scope_keys *k, struct reservation *res, struct decision *d)
{
	const struct limit *all[LIMITS_MAX_PER_CALL];
	long slot[LIMITS_MAX_PER_CALL];
	uint64_t now = limits__now(l), worst_retry = 0;
	const struct limit *fired = NULL;
	size_t n = 0;

	memset(res, 0, sizeof(*res));
	for (size_t i = 0; i < p->nall_limits && n < LIMITS_MAX_PER_CALL; i++)
		all[n++] = &p->all_limits[i];
	for (size_t i = 0; r && i < r->nlimits && n < LIMITS_MAX_PER_CALL; i++)
		all[n++] = &r->limits[i];
	for (size_t i = 0; i < n; i++) {
		char *name = budget_name(all[i], k);

		slot[i] = name ? find_or_add(l, name, all[i]->window_s) : -ENOMEM;
		if (slot[i] < 0) {
			decide__deny(d, KIND_LIMIT, all[i]->ptr, "out of memory keeping budgets");
			return -ENOMEM;
		}
	}
	/* check every limit first: all or none */
	for (size_t i = 0; i < n; i++) {
		struct budget *b = &l->slots[slot[i]];
		uint64_t retry;

		roll(b, now);
		if (b->used + 1 <= all[i]->max)
			continue;
		retry = b->window_start + b->window_s - now;
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
		return -EDQUOT;
	}
	/* limits sharing a budget count the call once */
	for (size_t i = 0; i < n; i++) {
		struct budget *b = &l->slots[slot[i]];
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			seen |= slot[j] == slot[i];
		if (seen)
			continue;
		b->used++;
		res->slot[res->n].budget = (uint32_t)slot[i];
		res->slot[res->n].gen = b->gen;
		res->slot[res->n].window_start = b->window_start;
		res->n++;
	}
	return 0;
}

void limits__release(struct limits *l, const struct reservation *res)
{
	for (size_t i = 0; i < res->n; i++) {
		struct budget *b;

		if (res->slot[i].budget >= l->nslots)
			continue;
		b = &l->slots[res->slot[i].budget];
		if (b->key && b->gen == res->slot[i].gen &&
		    b->window_start == res->slot[i].window_start && b->used > 0)
			b->used--;
	}
}

uint64_t limits__used(struct limits *l, const struct limit *lim, const struct scope_keys *k)
{
	char *name = budget_name(lim, k);
	uint64_t now = limits__now(l), used = 0;
	size_t h;

	if (!name)
		return 0;
	h = hash_key(name) & l->index_mask;
	while (l->index[h]) {
		struct budget *b = &l->slots[l->index[h] - 1];

		if (!strcmp(b->key, name)) {
			if (b->window_start == now - now % b->window_s)
				used = b->used;
			break;
		}
		h = (h + 1) & l->index_mask;
	}
	free(name);
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

		if (!b->key || b->window_start + b->window_s > now)
			continue;
		free(b->key);
		b->key = NULL;
		l->live--;
		dropped++;
	}
	fill_index(l, index, l->index_mask + 1);
	return dropped;
}
