// SPDX-License-Identifier: Apache-2.0
/*
 * policy_approval: a rule's "approval": its timeout, through whom it is asked ("via") and who
 * may approve ("approvers": users and groups by name or number, resolved here, at load).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "policy.h"
#include "policy_parse.h"

/* A uid or gid written as a number: 0 to 2^32 - 2 ((uid_t)-1 means "no id" to the kernel). */
static int parse_id_number(struct policy_ctx *c, const char *ptr, const json_t *v, const char *what,
			   uint32_t *out)
{
	json_int_t n = json_integer_value(v);

	if (n < 0 || n > (json_int_t)UINT32_MAX - 1)
		return policy_ctx__fail(c, ptr, "%lld is not a %s (0 to %u)", (long long)n, what,
					UINT32_MAX - 1);
	*out = (uint32_t)n;
	return 0;
}
/* Look a name up in the user or group database, now; false when it has no entry. */
static bool resolve_name(const char *name, bool group, uint32_t *id)
{
	size_t size = 4096;
	bool found = false;
	char *buf = NULL;
	int err;

	for (;;) {
		char *nb = realloc(buf, size);

		if (!nb)
			break;
		buf = nb;
		if (group) {
			struct group gr, *res = NULL;

			err = getgrnam_r(name, &gr, buf, size, &res);
			if (!err && res)
				*id = res->gr_gid;
			found = !err && res;
		} else {
			struct passwd pw, *res = NULL;

			err = getpwnam_r(name, &pw, buf, size, &res);
			if (!err && res)
				*id = res->pw_uid;
			found = !err && res;
		}
		/* a lookup that fails for another reason than room leaves the name unresolved */
		if (err != ERANGE || size >= (1u << 20))
			break;
		size *= 2;
	}
	free(buf);
	return found;
}
/* approvers.users or approvers.groups: names or numbers, each once. */
static int parse_approver_list(struct policy_ctx *c, const char *ptr, const json_t *v, bool group,
			       struct approver **out, size_t *n)
{
	const char *what = group ? "gid" : "uid";
	size_t i;
	json_t *e;
	int err;

	if ((err = policy_ctx__want(c, ptr, v, JSON_ARRAY,
				    group ? "an array of group names or gids" :
					    "an array of user names or uids")))
		return err;
	if (json_array_size(v) > APPROVERS_MAX)
		return policy_ctx__fail(c, ptr, "%zu entries; at most %d", json_array_size(v),
					APPROVERS_MAX);
	*out = calloc(json_array_size(v) + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	json_array_foreach((json_t *)v, i, e) {
		char *ip = policy_ctx__ptr_idx(ptr, i);
		struct approver *a = &(*out)[i];
		const char *s = json_string_value(e);

		*n = i + 1;
		if (!ip)
			return -ENOMEM;
		if (json_is_integer(e)) {
			err = parse_id_number(c, ip, e, what, &a->id);
			a->resolved = true;
		} else if (!s) {
			err = policy_ctx__fail(c, ip, "must be a %s name or a %s, not %s",
					       group ? "group" : "user", what,
					       policy_ctx__type_name(e));
		} else if (!(err = policy_ctx__check_name(c, ip, s, json_string_length(e),
							  "a name"))) {
			if (strspn(s, "0123456789") == strlen(s))
				err = policy_ctx__fail(
					c, ip,
					"\"%s\" is a number in a string: write %s for a %s, "
					"or a name",
					s, s, what);
			else if (strpbrk(s, ":/ ") || strlen(s) != json_string_length(e))
				err = policy_ctx__fail(c, ip, "\"%s\" is not a %s name", s,
						       group ? "group" : "user");
			else if (!(a->name = strdup(s)))
				err = -ENOMEM;
			else
				a->resolved = resolve_name(s, group, &a->id);
		}
		for (size_t j = 0; !err && j < i; j++) {
			const struct approver *b = &(*out)[j];
			bool same = a->name ? b->name && !strcmp(a->name, b->name) :
					      !b->name && a->id == b->id;

			if (same && a->name)
				err = policy_ctx__fail(c, ip,
						       "\"%s\" is listed twice (also at %s/%zu)",
						       a->name, ptr, j);
			else if (same)
				err = policy_ctx__fail(c, ip, "%u is listed twice (also at %s/%zu)",
						       a->id, ptr, j);
		}
		free(ip);
		if (err)
			return err;
	}
	return 0;
}
static int parse_approvers(struct policy_ctx *c, const char *ptr, const json_t *v,
			   struct approvers *ap)
{
	static const char *const keys[] = { "users", "groups", NULL };
	json_t *e;
	char *kp;
	int err;

	if ((err = policy_ctx__want(c, ptr, v, JSON_OBJECT, "an object {users, groups}")) ||
	    (err = policy_ctx__known_keys(c, ptr, v, keys)))
		return err;
	if ((e = json_object_get(v, "users"))) {
		kp = policy_ctx__ptr_key(ptr, "users");
		err = kp ? parse_approver_list(c, kp, e, false, &ap->users, &ap->nusers) : -ENOMEM;
		free(kp);
		if (err)
			return err;
	}
	if ((e = json_object_get(v, "groups"))) {
		kp = policy_ctx__ptr_key(ptr, "groups");
		err = kp ? parse_approver_list(c, kp, e, true, &ap->groups, &ap->ngroups) : -ENOMEM;
		free(kp);
	}
	return err;
}
static int parse_via(struct policy_ctx *c, const char *ptr, const json_t *v, unsigned *via)
{
	size_t i;
	json_t *e;
	int err;

	if ((err = policy_ctx__want(c, ptr, v, JSON_ARRAY, "an array of \"client\", \"operator\"")))
		return err;
	if (!json_array_size(v))
		return policy_ctx__fail(c, ptr,
					"must name at least one of \"client\", \"operator\"");
	*via = 0;
	json_array_foreach((json_t *)v, i, e) {
		const char *s = json_string_value(e);
		unsigned bit = !s		      ? 0 :
			       !strcmp(s, "client")   ? VIA_CLIENT :
			       !strcmp(s, "operator") ? VIA_OPERATOR :
							0;
		char ip[32];

		snprintf(ip, sizeof(ip), "/%zu", i);
		if (!bit) {
			char buf[64];

			policy_ctx__show(e, buf, sizeof(buf));
			return policy_ctx__fail_at(
				c, ptr, ip, "%s is not a way to ask (\"client\", \"operator\")",
				buf);
		}
		if (*via & bit)
			return policy_ctx__fail_at(c, ptr, ip, "\"%s\" is listed twice", s);
		*via |= bit;
	}
	return 0;
}
int policy__parse_approval(struct policy_ctx *c, const char *ptr, const json_t *v, struct rule *r)
{
	static const char *const keys[] = { "timeout", "approvers", "via", NULL };
	json_t *t;
	char *kp;
	int err;

	if ((err = policy_ctx__want(c, ptr, v, JSON_OBJECT,
				    "an object {timeout, approvers, via}")) ||
	    (err = policy_ctx__known_keys(c, ptr, v, keys)))
		return err;
	if ((t = json_object_get(v, "timeout"))) {
		kp = policy_ctx__ptr_key(ptr, "timeout");
		err = kp ? policy_ctx__parse_duration(c, kp, t, &r->approval_timeout_s) : -ENOMEM;
		free(kp);
		if (err)
			return err;
	}
	if ((t = json_object_get(v, "via"))) {
		kp = policy_ctx__ptr_key(ptr, "via");
		err = kp ? parse_via(c, kp, t, &r->approval_via) : -ENOMEM;
		free(kp);
		if (err)
			return err;
	}
	if ((t = json_object_get(v, "approvers"))) {
		kp = policy_ctx__ptr_key(ptr, "approvers");
		err = kp ? parse_approvers(c, kp, t, &r->approvers) : -ENOMEM;
		if (!err && !(r->approval_via & VIA_OPERATOR))
			err = policy_ctx__fail(
				c, kp,
				"approvers decide on the control socket: \"via\" must include "
				"\"operator\"");
		free(kp);
	}
	return err;
}
