// SPDX-License-Identifier: Apache-2.0
/*
 * policy_match: a policy's "match", which says for which servers a file of the daemon's policy
 * directory is (README: Which policy a session gets), and whether a server fits it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "policy.h"
#include "policy_parse.h"

#define MATCH_GLOB_MAX 4096 /* bytes of one glob: a command line can be long */

/* A glob of "match" at /match/key: a non-empty string of at most MATCH_GLOB_MAX bytes. */
static int parse_glob(struct policy_ctx *c, const json_t *m, const char *key, char **out)
{
	const json_t *v = json_object_get(m, key);
	char ptr[64];
	size_t len;
	int err;

	if (!v)
		return 0;
	snprintf(ptr, sizeof(ptr), "/match/%s", key);
	if ((err = policy_ctx__want(c, ptr, v, JSON_STRING, "a string (a glob)")))
		return err;
	len = json_string_length(v);
	if (!len)
		return policy_ctx__fail(c, ptr, "must not be empty");
	if (len > MATCH_GLOB_MAX)
		return policy_ctx__fail(c, ptr, "is %zu bytes; at most %d", len, MATCH_GLOB_MAX);
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

/* A whole number of "match" at /match/key, from lo to hi. */
static int parse_number(struct policy_ctx *c, const json_t *m, const char *key, long long lo,
			long long hi, bool *has, long long *out)
{
	const json_t *v = json_object_get(m, key);
	char ptr[64];
	int err;

	if (!v)
		return 0;
	snprintf(ptr, sizeof(ptr), "/match/%s", key);
	if ((err = policy_ctx__want(c, ptr, v, JSON_INTEGER, "a whole number")))
		return err;
	if (json_integer_value(v) < lo || json_integer_value(v) > hi)
		return policy_ctx__fail(c, ptr, "%lld is out of range (%lld to %lld)",
					(long long)json_integer_value(v), lo, hi);
	*has = true;
	*out = json_integer_value(v);
	return 0;
}

int policy__parse_match(struct policy_ctx *c, const json_t *v, struct policy_match *m)
{
	static const char *const keys[] = { "exe",  "argv", "server_name", "cgroup",
					    "port", "uid",  NULL };
	long long n = 0;
	int err;

	if ((err = policy_ctx__want(c, "/match", v, JSON_OBJECT, "an object")) ||
	    (err = policy_ctx__known_keys(c, "/match", v, keys)))
		return err;
	if (!json_object_size(v))
		return policy_ctx__fail(
			c, "/match",
			"is empty: name at least one of exe, argv, server_name, "
			"cgroup, port, uid (default.json takes every other session)");
	if ((err = parse_glob(c, v, "exe", &m->exe)) ||
	    (err = parse_glob(c, v, "argv", &m->argv)) ||
	    (err = parse_glob(c, v, "server_name", &m->server_name)) ||
	    (err = parse_glob(c, v, "cgroup", &m->cgroup)))
		return err;
	if ((err = parse_number(c, v, "port", 1, 65535, &m->has_port, &n)))
		return err;
	m->port = (uint16_t)n;
	/* (uid_t)-1 means "no id" to the kernel */
	if ((err = parse_number(c, v, "uid", 0, (long long)UINT32_MAX - 1, &m->has_uid, &n)))
		return err;
	m->uid = (uint32_t)n;
	m->present = true;
	return 0;
}

void policy__match_free(struct policy_match *m)
{
	free(m->exe);
	free(m->argv);
	free(m->server_name);
	free(m->cgroup);
	memset(m, 0, sizeof(*m));
}

/* A glob of "match" fits the value (not given: fits anything; value unknown: does not). */
static bool glob_fits(const char *glob, const char *value)
{
	return !glob || (value && policy__glob_match(glob, value));
}

/* Does p's "match" fit w (name: its "server_name" too)? */
static bool fits(const struct policy *p, const struct session_who *w, bool name)
{
	const struct policy_match *m = &p->match;

	if (!m->present)
		return false;
	if (m->has_port && (w->port < 0 || w->port != m->port))
		return false;
	if (m->has_uid && (!w->has_uid || w->uid != m->uid))
		return false;
	if (name && !glob_fits(m->server_name, w->server_name))
		return false;
	return glob_fits(m->exe, w->exe) && glob_fits(m->argv, w->argv) &&
	       glob_fits(m->cgroup, w->cgroup);
}

bool policy__match_fits(const struct policy *p, const struct session_who *w)
{
	return fits(p, w, true);
}

bool policy__match_fits_but_name(const struct policy *p, const struct session_who *w)
{
	return fits(p, w, false);
}
