// SPDX-License-Identifier: Apache-2.0
/*
 * globset: the first matching glob of a list, at the cost of a hash lookup or so rather than one
 * try per glob (a name no rule matched went through all 100 globs of a 1,000-rule policy).
 *
 * A glob's literal prefix (its bytes before the first '*' or '?') and literal suffix (after the
 * last) are matched byte for byte by policy__glob_match: a name that does not begin with the
 * one and end with the other cannot match. So each glob is filed under its prefix, or under its
 * suffix when its prefix is empty, or kept aside when both are ("*", "?x*"); a name is hashed
 * once forwards and once backwards, looked up at each length some prefix or suffix has, and
 * tried against the globs it finds there and those kept aside. Among the globs that match, the
 * lowest index wins, as in a scan of the list in order; policy__glob_match alone says whether
 * a glob matches, so the syntax and its corners stay those of the matcher.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "globset.h"
#include "policy.h"

#define FNV_OFFSET 0xcbf29ce484222325ull /* FNV-1a, as the exact-name index */
#define FNV_PRIME 0x100000001b3ull

/* The globs filed under one prefix (or one suffix). */
struct glob_key {
	uint64_t hash;	/* of the key's bytes: forwards for a prefix, backwards for a suffix */
	uint32_t len;	/* bytes of the key; 0 for a free slot */
	uint32_t first; /* its globs are members[first..first + count), in ascending order */
	uint32_t count;
};

/* Keys by hash, open addressing; lens lists the key lengths a name must be looked up at. */
struct glob_table {
	struct glob_key *slots;
	size_t mask;
	uint32_t *lens; /* distinct, ascending */
	size_t nlens;
};

struct glob_info {
	uint32_t len;	 /* of the pattern */
	uint32_t plen;	 /* literal prefix; the whole pattern when it has no wildcard */
	uint32_t slen;	 /* literal suffix; 0 when the pattern has no wildcard */
	uint32_t minlen; /* bytes of the shortest name it can match: all but its '*' */
};

struct globset {
	const char *const *pats;
	struct glob_info *info;
	size_t n;
	struct glob_table pre, suf;
	struct glob_key any; /* neither prefix nor suffix: tried for every name */
	uint32_t *members;
};

static int table__init(struct glob_table *t, size_t n)
{
	size_t size = 16;

	while (size < 2 * n)
		size <<= 1;
	t->slots = calloc(size, sizeof(*t->slots));
	t->lens = calloc(n + 1, sizeof(*t->lens));
	if (!t->slots || !t->lens)
		return -ENOMEM;
	t->mask = size - 1;
	return 0;
}

/*
 * The key of this hash and length, added when new. Keys whose bytes differ but whose hashes
 * collide share one: every glob is checked against the name's bytes before it is matched.
 */
static struct glob_key *table__add(struct glob_table *t, uint64_t hash, uint32_t len)
{
	size_t slot = hash & t->mask;

	while (t->slots[slot].len) {
		if (t->slots[slot].hash == hash && t->slots[slot].len == len)
			return &t->slots[slot];
		slot = (slot + 1) & t->mask;
	}
	t->slots[slot].hash = hash;
	t->slots[slot].len = len;
	t->lens[t->nlens++] = len;
	return &t->slots[slot];
}

static const struct glob_key *table__find(const struct glob_table *t, uint64_t hash, uint32_t len)
{
	size_t slot = hash & t->mask;

	while (t->slots[slot].len) {
		if (t->slots[slot].hash == hash && t->slots[slot].len == len)
			return &t->slots[slot];
		slot = (slot + 1) & t->mask;
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorted, each length once. */
static void table__sort_lens(struct glob_table *t)
{
	size_t n = 0;

	qsort(t->lens, t->nlens, sizeof(*t->lens), cmp_u32);
	for (size_t i = 0; i < t->nlens; i++)
		if (!n || t->lens[n - 1] != t->lens[i])
			t->lens[n++] = t->lens[i];
	t->nlens = n;
}

static void table__free(struct glob_table *t)
{
	free(t->slots);
	free(t->lens);
}

static uint64_t hash_forwards(const char *s, size_t len)
{
	uint64_t h = FNV_OFFSET;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * FNV_PRIME;
	return h;
}

/* The hash of s[0..len) read from its end: a suffix's, as globset__first reads a name. */
static uint64_t hash_backwards(const char *s, size_t len)
{
	uint64_t h = FNV_OFFSET;

	for (size_t i = len; i > 0; i--)
		h = (h ^ (unsigned char)s[i - 1]) * FNV_PRIME;
	return h;
}

static void info__init(struct glob_info *gi, const char *pat)
{
	size_t len = strlen(pat), plen = strcspn(pat, "*?"), slen = 0, stars = 0;

	if (plen < len)
		while (slen < len && pat[len - 1 - slen] != '*' && pat[len - 1 - slen] != '?')
			slen++;
	for (size_t i = 0; i < len; i++)
		stars += pat[i] == '*';
	gi->len = (uint32_t)len;
	gi->plen = (uint32_t)plen;
	gi->slen = (uint32_t)slen;
	/* a literal byte takes one byte of the name, a '?' one character: one byte or more */
	gi->minlen = (uint32_t)(len - stars);
}

/* Give every key its range of members, then fill the ranges in pattern order. */
static void place_members(struct globset *g, struct glob_key **home)
{
	struct glob_table *tables[] = { &g->pre, &g->suf };
	uint32_t next = 0;

	for (size_t t = 0; t < 2; t++)
		for (size_t s = 0; s <= tables[t]->mask; s++) {
			tables[t]->slots[s].first = next;
			next += tables[t]->slots[s].count;
			tables[t]->slots[s].count = 0;
		}
	g->any.first = next;
	g->any.count = 0;
	for (size_t i = 0; i < g->n; i++)
		g->members[home[i]->first + home[i]->count++] = (uint32_t)i;
}

struct globset *globset__new(const char *const *pats, size_t n)
{
	struct glob_key **home = NULL; /* the key each pattern is filed under */
	struct globset *g = NULL;
	int err = -ENOMEM;

	/* pattern lengths are kept in 32 bits too: longer ones come from no policy file */
	if (n >= UINT32_MAX) {
		err = -EINVAL;
		goto out_free;
	}
	g = calloc(1, sizeof(*g));
	home = calloc(n + 1, sizeof(*home));
	if (!g || !home)
		goto out_free;
	g->pats = pats;
	g->n = n;
	g->info = calloc(n + 1, sizeof(*g->info));
	g->members = calloc(n + 1, sizeof(*g->members));
	if (!g->info || !g->members || table__init(&g->pre, n) || table__init(&g->suf, n))
		goto out_free;
	for (size_t i = 0; i < n; i++) {
		struct glob_info *gi = &g->info[i];

		if (strlen(pats[i]) >= UINT32_MAX) {
			err = -EINVAL;
			goto out_free;
		}
		info__init(gi, pats[i]);
		if (gi->plen)
			home[i] = table__add(&g->pre, hash_forwards(pats[i], gi->plen), gi->plen);
		else if (gi->slen)
			home[i] = table__add(&g->suf,
					     hash_backwards(pats[i] + gi->len - gi->slen, gi->slen),
					     gi->slen);
		else
			home[i] = &g->any;
		home[i]->count++;
	}
	table__sort_lens(&g->pre);
	table__sort_lens(&g->suf);
	place_members(g, home);
	free(home);
	return g;

out_free:
	free(home);
	globset__free(g);
	errno = -err;
	return NULL;
}

void globset__free(struct globset *g)
{
	if (!g)
		return;
	table__free(&g->pre);
	table__free(&g->suf);
	free(g->info);
	free(g->members);
	free(g);
}

static bool glob_try(const struct globset *g, uint32_t i, const char *name, size_t len)
{
	const struct glob_info *gi = &g->info[i];
	const char *pat = g->pats[i];

	if (len < gi->minlen || memcmp(pat, name, gi->plen) ||
	    memcmp(pat + gi->len - gi->slen, name + len - gi->slen, gi->slen))
		return false;
	/* the prefix matched byte for byte: the matcher goes on from there as it would have */
	return policy__glob_match(pat + gi->plen, name + gi->plen);
}

/* The first glob of this key that matches, into *best when it comes before *best. */
static void key_try(const struct globset *g, const struct glob_key *k, const char *name, size_t len,
		    size_t *best)
{
	for (uint32_t j = 0; j < k->count; j++) {
		uint32_t i = g->members[k->first + j];

		if (i >= *best)
			return;
		if (glob_try(g, i, name, len)) {
			*best = i;
			return;
		}
	}
}

long globset__first(const struct globset *g, const char *name, size_t len)
{
	const struct glob_table *pre = &g->pre, *suf = &g->suf;
	size_t best = SIZE_MAX, i = 0;
	uint64_t h = FNV_OFFSET;

	for (size_t k = 0; k < pre->nlens && pre->lens[k] <= len; k++) {
		const struct glob_key *key;

		for (; i < pre->lens[k]; i++)
			h = (h ^ (unsigned char)name[i]) * FNV_PRIME;
		if ((key = table__find(pre, h, pre->lens[k])))
			key_try(g, key, name, len, &best);
	}
	h = FNV_OFFSET;
	i = 0;
	for (size_t k = 0; k < suf->nlens && suf->lens[k] <= len; k++) {
		const struct glob_key *key;

		for (; i < suf->lens[k]; i++)
			h = (h ^ (unsigned char)name[len - 1 - i]) * FNV_PRIME;
		if ((key = table__find(suf, h, suf->lens[k])))
			key_try(g, key, name, len, &best);
	}
	key_try(g, &g->any, name, len, &best);
	return best == SIZE_MAX ? -1 : (long)best;
}
