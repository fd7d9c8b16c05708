/* SPDX-License-Identifier: Apache-2.0 */
/* check: the explanation of a policy that `mcpfence check --json` prints. */
#ifndef MCPFENCE_CHECK_H
#define MCPFENCE_CHECK_H

#include <jansson.h>
#include "policy.h"

/* What the kernel plane cannot do of a rule, in words, into notes[2]; how many (0: all). */
size_t check__kernel_notes(const struct rule *r, const char **notes);
/* The same for hide[]. */
extern const char check__hide_note[];

/* A new reference: the compiled policy, rule by rule, with what each plane enforces. */
json_t *check__policy_json(const char *file, const struct policy *p);
/* A new reference: a "match" as an object of the keys it gives. */
json_t *check__match_json(const struct policy_match *m);

#endif
