/* SPDX-License-Identifier: Apache-2.0 */
/*
 * globset: the first of a list of globs (policy__glob_match) that matches a name, without
 * trying them one by one: a pattern without a wildcard is keyed whole, a glob by its literal
 * prefix, or by its literal suffix when it starts with a wildcard, and a name is tried only
 * against the patterns keyed under itself, its own prefixes and suffixes, and the globs with
 * neither prefix nor suffix (such as "*").
 */
#ifndef MCPFENCE_GLOBSET_H
#define MCPFENCE_GLOBSET_H

#include <stddef.h>

struct globset;

/*
 * An index of pats[0..n), which it borrows: they must outlive it. NULL with errno set
 * (ENOMEM, or EINVAL for more than 2^32 - 2 patterns).
 */
struct globset *globset__new(const char *const *pats, size_t n);
void globset__free(struct globset *g);

/* Index of the first pattern, in list order, that matches name (of len bytes), or -1. */
long globset__first(const struct globset *g, const char *name, size_t len);

#endif
