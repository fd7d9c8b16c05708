/* SPDX-License-Identifier: Apache-2.0 */
/* check: the explanation of a policy that `mcpfence check --json` prints. */
#ifndef MCPFENCE_CHECK_H
#define MCPFENCE_CHECK_H

#include <jansson.h>
#include "policy.h"

/* A new reference: the compiled policy, rule by rule, with what each plane enforces. */
json_t *check__policy_json(const char *file, const struct policy *p);

#endif
