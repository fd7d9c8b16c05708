// SPDX-License-Identifier: Apache-2.0
/*
 * globset: the first matching glob of a list, at the cost of a hash lookup or so rather than one
 * try per glob (a name no rule matched went through all 100 globs of a 1,000-rule policy).
 *
 * A glob's literal prefix (its bytes before the first '*' or '?') and literal suffix (after the
 * last) are matched byte for byte by policy__glob_match: a name that does not begin with the
 * one and end with the other cannot match. So a pattern without a wildcard is keyed whole, a
 * glob under the first 1, 2, 4, 8... bytes of its prefix, or of its suffix when its prefix is
 * empty, or kept aside when both are ("*", "?x*"). A name is looked up whole, then at the few
 * lengths its prefixes and suffixes are keyed at, and tried against the patterns it finds and
 * those kept aside. Among the patterns that match, the lowest index wins, as in a scan of the
 * list in order; policy__glob_match alone says whether a pattern matches, so the syntax and its
 * corners stay those of the matcher.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "globset.h"
#include "policy.h"

#define HASH_SEED 0x9e3779b97f4a7c15ull

/* The patterns keyed under one name, prefix or suffix. */
struct glob_key {
	uint32_t len;	/* bytes of the key */
	uint32_t first; /* its patterns are members[first..first + count), in ascending order */
	uint32_t count;
};

/* A slot of a table: small, so that a name's lookups stay in the cache. */
struct glob_slot {
	uint32_t check; /* the upper half of the key's hash */
	uint32_t key;	/* 1 + its index into keys; 0 for a free slot */
};

/*
 * Keys by hash (hash_bytes: forwards for a name or a prefix, backwards for a suffix), open
 * addressing; lens lists the key lengths a name must be looked up at.
 */
struct glob_table {
	struct glob_slot *slots;
	size_t mask;
	struct glob_key *keys;
	uint32_t nkeys;
	uint32_t *lens; /* distinct, ascending */
	size_t nlens;
};

struct glob_pat {
	const char *pat;
	uint32_t len;	 /* of the pattern */
	uint32_t plen;	 /* literal prefix; the whole pattern when it has no wildcard */
	uint32_t slen;	 /* literal suffix; 0 when the pattern has no wildcard */
	uint32_t minlen; /* bytes of the shortest name it can match: all but its '*' */
	/*
	 * 1 when its prefix and suffix decide: no wildcard (a name of its length), or only '*'
	 * between them (a name long enough); 0 when the matcher must read the middle
	 */
	uint32_t plain;
};

enum glob_kind {
	KEY_EXACT = 0, /* no wildcard: keyed whole */
	KEY_PREFIX = 1,
	KEY_SUFFIX = 2,
	KEY_ANY = 3, /* neither prefix nor suffix: tried for every name */
};

struct globset {
	struct glob_pat *pats;
	size_t n;
	struct glob_table tables[3]; /* by enum glob_kind */
	struct glob_key any;
	uint32_t *members;
	size_t first_glob; /* the index of the first pattern with a wildcard, or n */
};

/* Room for n keys; the table is kept at most half full. */
static int table__init(struct glob_table *t, size_t n)
{
	size_t size = 16;

	while (size < 2 * n)
		size <<= 1;
	t->slots = calloc(size, sizeof(*t->slots));
	t->keys = calloc(n + 1, sizeof(*t->keys));
	t->lens = calloc(n + 1, sizeof(*t->lens));
	if (!t->slots || !t->keys || !t->lens)
		return -ENOMEM;
	t->mask = size - 1;
	return 0;
}

/*
 * The key of this hash and length, added when new. Keys whose bytes differ but whose hashes
 * collide share one: every pattern is checked against the name's bytes before it is matched.
 */
static struct glob_key *table__add(struct glob_table *t, uint64_t hash, uint32_t len)
{
	size_t slot = hash & t->mask;

	for (; t->slots[slot].key; slot = (slot + 1) & t->mask) {
		struct glob_key *k = &t->keys[t->slots[slot].key - 1];

		if (t->slots[slot].check == (uint32_t)(hash >> 32) && k->len == len)
			return k;
	}
	t->slots[slot].check = (uint32_t)(hash >> 32);
	t->slots[slot].key = ++t->nkeys;
	t->keys[t->nkeys - 1].len = len;
	t->lens[t->nlens++] = len;
	return &t->keys[t->nkeys - 1];
}

static const struct glob_key *table__find(const struct glob_table *t, uint64_t hash, uint32_t len)
{
	size_t slot = hash & t->mask;

	for (; t->slots[slot].key; slot = (slot + 1) & t->mask) {
		const struct glob_key *k = &t->keys[t->slots[slot].key - 1];

		if (t->slots[slot].check == (uint32_t)(hash >> 32) && k->len == len)
			return k;
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
	free(t->keys);
	free(t->lens);
}

/*
 * Bytes are hashed eight at a time (byte by byte, as FNV-1a does, hashing cost more than all the
 * rest of a lookup), and the prefixes of a name share the words they have in common.
 */
static inline uint64_t hash__word(uint64_t h, uint64_t w)
{
	h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 29);
}

/* The length goes in last: keys that differ only by zeros padding a word stay apart. */
static inline uint64_t hash__end(uint64_t h, size_t len)
{
	h = (h ^ len) * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

/* n <= 8 bytes of p as one word, the rest zero */
static inline uint64_t load_word(const char *p, size_t n)
{
	uint64_t w = 0;

	memcpy(&w, p, n);
	return w;
}

/*
 * s[0..len) in words from its start, or from its end when back (a suffix), the short word
 * last: as globset__first reads a name's prefixes and suffixes.
 */
static uint64_t hash_bytes(const char *s, size_t len, bool back)
{
	uint64_t h = HASH_SEED;
	size_t j;

	for (j = 0; j + 8 <= len; j += 8)
		h = hash__word(h, load_word(back ? s + len - j - 8 : s + j, 8));
	if (len > j)
		h = hash__word(h, load_word(back ? s : s + j, len - j));
	return hash__end(h, len);
}

static enum glob_kind pat__init(struct glob_pat *gp, const char *pat)
{
	size_t len = strlen(pat), plen = strcspn(pat, "*?"), slen = 0, stars = 0;

	if (plen < len)
		while (slen < len && pat[len - 1 - slen] != '*' && pat[len - 1 - slen] != '?')
			slen++;
	for (size_t i = 0; i < len; i++)
		stars += pat[i] == '*';
	gp->pat = pat;
	gp->len = (uint32_t)len;
	gp->plen = (uint32_t)plen;
	gp->slen = (uint32_t)slen;
	/* a literal byte takes one byte of the name, a '?' one character: one byte or more */
	gp->minlen = (uint32_t)(len - stars);
	gp->plain = plen == len || plen + slen + stars == len;
	if (len && plen == len)
		return KEY_EXACT;
	return plen ? KEY_PREFIX : slen ? KEY_SUFFIX : KEY_ANY;
}

/* The largest power of two <= n (n > 0). */
static uint32_t pow2_floor(uint32_t n)
{
	return 1u << (31 - __builtin_clz(n));
}

/*
 * The key pattern i is filed under; its bytes are hashed as globset__first reads a name. A
 * glob's key is the first (last) 1, 2, 4, 8... bytes of its prefix (suffix), the most it has:
 * a name is then looked up at a few lengths rather than at every length some glob's prefix
 * has, and a key still holds at least half of each of its globs' prefix.
 */
static struct glob_key *key_of(struct glob_table *t, const struct glob_pat *gp, enum glob_kind kind)
{
	uint32_t l;

	switch (kind) {
	case KEY_EXACT:
		return table__add(t, hash_bytes(gp->pat, gp->len, false), gp->len);
	case KEY_PREFIX:
		l = pow2_floor(gp->plen);
		return table__add(t, hash_bytes(gp->pat, l, false), l);
	default:
		l = pow2_floor(gp->slen);
		return table__add(t, hash_bytes(gp->pat + gp->len - l, l, true), l);
	}
}

static struct glob_key *file_under(struct globset *g, size_t i, enum glob_kind kind)
{
	return kind == KEY_ANY ? &g->any : key_of(&g->tables[kind], &g->pats[i], kind);
}

/*
 * A glob with both a prefix and a suffix can be keyed by either: by the one fewer globs share,
 * so that globs of one prefix ("github_*_issue", "github_*_pr") are not tried one by one.
 */
static int choose_keys(struct globset *g, unsigned char *kinds)
{
	struct glob_table pre = { 0 }, suf = { 0 };
	int err = -ENOMEM;

	if (table__init(&pre, g->n) || table__init(&suf, g->n))
		goto out_free;
	for (size_t i = 0; i < g->n; i++) {
		if (kinds[i] == KEY_PREFIX)
			key_of(&pre, &g->pats[i], KEY_PREFIX)->count++;
		if ((kinds[i] == KEY_PREFIX || kinds[i] == KEY_SUFFIX) && g->pats[i].slen)
			key_of(&suf, &g->pats[i], KEY_SUFFIX)->count++;
	}
	for (size_t i = 0; i < g->n; i++)
		if (kinds[i] == KEY_PREFIX && g->pats[i].slen &&
		    key_of(&suf, &g->pats[i], KEY_SUFFIX)->count <
			    key_of(&pre, &g->pats[i], KEY_PREFIX)->count)
			kinds[i] = KEY_SUFFIX;
	err = 0;
out_free:
	table__free(&pre);
	table__free(&suf);
	return err;
}

/* Give every key its range of members, then fill the ranges in pattern order. */
static void place_members(struct globset *g, struct glob_key **home)
{
	uint32_t next = 0;

	for (size_t t = 0; t < 3; t++)
		for (size_t k = 0; k < g->tables[t].nkeys; k++) {
			g->tables[t].keys[k].first = next;
			next += g->tables[t].keys[k].count;
			g->tables[t].keys[k].count = 0;
		}
	g->any.first = next;
	g->any.count = 0;
	for (size_t i = 0; i < g->n; i++)
		g->members[home[i]->first + home[i]->count++] = (uint32_t)i;
}

struct globset *globset__new(const char *const *pats, size_t n)
{
	struct glob_key **home = NULL; /* the key each pattern is filed under */
	unsigned char *kinds = NULL;
	size_t nkind[4] = { 0 };
	struct globset *g = NULL;
	int err = -ENOMEM;

	/* pattern lengths are kept in 32 bits too: longer ones come from no policy file */
	if (n >= UINT32_MAX) {
		err = -EINVAL;
		goto out_free;
	}
	g = calloc(1, sizeof(*g));
	home = calloc(n + 1, sizeof(*home));
	kinds = calloc(n + 1, sizeof(*kinds));
	if (!g || !home || !kinds)
		goto out_free;
	g->n = n;
	g->pats = calloc(n + 1, sizeof(*g->pats));
	g->members = calloc(n + 1, sizeof(*g->members));
	if (!g->pats || !g->members)
		goto out_free;
	for (size_t i = 0; i < n; i++) {
		if (strlen(pats[i]) >= UINT32_MAX) {
			err = -EINVAL;
			goto out_free;
		}
		kinds[i] = pat__init(&g->pats[i], pats[i]);
	}
	if (choose_keys(g, kinds))
		goto out_free;
	for (size_t i = 0; i < n; i++)
		nkind[kinds[i]]++;
	for (g->first_glob = 0; g->first_glob < n; g->first_glob++)
		if (kinds[g->first_glob] != KEY_EXACT)
			break;
	for (size_t t = 0; t < 3; t++)
		if (table__init(&g->tables[t], nkind[t]))
			goto out_free;
	for (size_t i = 0; i < n; i++) {
		home[i] = file_under(g, i, kinds[i]);
		home[i]->count++;
	}
	for (size_t t = 0; t < 3; t++)
		table__sort_lens(&g->tables[t]);
	place_members(g, home);
	free(kinds);
	free(home);
	return g;

out_free:
	free(kinds);
	free(home);
	globset__free(g);
	errno = -err;
	return NULL;
}

void globset__free(struct globset *g)
{
	if (!g)
		return;
	for (size_t t = 0; t < 3; t++)
		table__free(&g->tables[t]);
	free(g->pats);
	free(g->members);
	free(g);
}

/*
 * memcmp(a, b, n) == 0 for the few bytes of a name, in 8-byte loads (the last one
 * overlapping): a call into libc per prefix and suffix cost more than the compare.
 */
static inline bool same_bytes(const char *a, const char *b, size_t n)
{
	uint64_t x, y;
	uint32_t u, v;

	if (n >= 8) {
		for (size_t j = 0; j + 8 < n; j += 8) {
			memcpy(&x, a + j, 8);
			memcpy(&y, b + j, 8);
			if (x != y)
				return false;
		}
		memcpy(&x, a + n - 8, 8);
		memcpy(&y, b + n - 8, 8);
		return x == y;
	}
	if (n >= 4) {
		memcpy(&u, a, 4);
		memcpy(&v, b, 4);
		if (u != v)
			return false;
		memcpy(&u, a + n - 4, 4);
		memcpy(&v, b + n - 4, 4);
		return u == v;
	}
	for (size_t j = 0; j < n; j++)
		if (a[j] != b[j])
			return false;
	return true;
}

static bool glob_try(const struct globset *g, uint32_t i, const char *name, size_t len)
{
	const struct glob_pat *gp = &g->pats[i];

	if (len < gp->minlen || !same_bytes(gp->pat, name, gp->plen) ||
	    !same_bytes(gp->pat + gp->len - gp->slen, name + len - gp->slen, gp->slen))
		return false;
	/* a name of a wildcard-free pattern's length, or only '*' between prefix and suffix */
	if (gp->plain)
		return gp->plen < gp->len || len == gp->len;
	/* the prefix matched byte for byte: the matcher goes on from there as it would have */
	return policy__glob_match(gp->pat + gp->plen, name + gp->plen);
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

/*
 * The name whole, then its prefixes at each length some glob's key has, its suffixes likewise,
 * and the globs with neither; an exact name found before every glob
 * ends the search there (a policy's rules: exact names come first).
 */
long globset__first(const struct globset *g, const char *name, size_t len)
{
	const struct glob_table *exact = &g->tables[KEY_EXACT], *pre = &g->tables[KEY_PREFIX],
				*suf = &g->tables[KEY_SUFFIX];
	uint64_t words = HASH_SEED, h, pre_hash[32];
	const struct glob_key *key;
	size_t best = SIZE_MAX, j = 0, npre = 0;

	/*
	 * One pass over the name's words from its start: the hash of each prefix a key has (lens
	 * are distinct powers of two: at most 32), then of the whole name.
	 */
	for (size_t k = 0; k < pre->nlens && pre->lens[k] <= len && npre < 32; k++) {
		size_t l = pre->lens[k];

		for (; j + 8 <= l; j += 8)
			words = hash__word(words, load_word(name + j, 8));
		h = l > j ? hash__word(words, load_word(name + j, l - j)) : words;
		pre_hash[npre++] = hash__end(h, l);
	}
	if (exact->nkeys) {
		for (; j + 8 <= len; j += 8)
			words = hash__word(words, load_word(name + j, 8));
		h = len > j ? hash__word(words, load_word(name + j, len - j)) : words;
		if ((key = table__find(exact, hash__end(h, len), len)))
			key_try(g, key, name, len, &best);
		if (best < g->first_glob)
			return (long)best;
	}
	for (size_t k = 0; k < npre; k++)
		if ((key = table__find(pre, pre_hash[k], pre->lens[k])))
			key_try(g, key, name, len, &best);
	words = HASH_SEED;
	j = 0;
	for (size_t k = 0; k < suf->nlens && suf->lens[k] <= len; k++) {
		size_t l = suf->lens[k];

		for (; j + 8 <= l; j += 8)
			words = hash__word(words, load_word(name + len - j - 8, 8));
		h = l > j ? hash__word(words, load_word(name + len - l, l - j)) : words;
		if ((key = table__find(suf, hash__end(h, l), l)))
			key_try(g, key, name, len, &best);
	}
	key_try(g, &g->any, name, len, &best);
	return best == SIZE_MAX ? -1 : (long)best;
}
