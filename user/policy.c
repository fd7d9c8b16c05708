// SPDX-License-Identifier: Apache-2.0
/*
 * policy: parse policy.json with jansson, validate every field, compile names and globs.
 * A bad policy is refused as a whole with one message that names the file and the JSON
 * Pointer (or line:column for syntax errors) of what is wrong.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <pcre2.h>
#include "globset.h"
#include "policy.h"
#include "limits.h"
#include "policy_parse.h"

#define REASON_MAX_BYTES 200 /* fits the decision's reason with room for a prefix */
#define HIDE_MAX 1024
#define RULES_MAX 100000
#define WINDOW_MAX_S (366u * 86400u)
#define MAX_MAX 1000000000ull

int policy_ctx__fail(struct policy_ctx *c, const char *ptr, const char *fmt, ...)
{
	char msg[POLICY_ERR_LEN / 2];
	va_list ap;

	if (c->failed)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->err, POLICY_ERR_LEN, "%.100s: %.120s: %s", c->source, ptr[0] ? ptr : "/", msg);
	/* names from the file are echoed: keep the message on one printable line */
	for (char *e = c->err; *e; e++)
		if ((unsigned char)*e < 0x20 || *e == 0x7f)
			*e = '?';
	c->failed = true;
	return -EINVAL;
}

/* policy_ctx__fail() at ptr followed by a suffix ("/3"): for entries whose pointer is built on the stack. */
int policy_ctx__fail_at(struct policy_ctx *c, const char *ptr, const char *suffix, const char *fmt,
			...)
{
	char msg[POLICY_ERR_LEN / 2], *full = NULL;
	va_list ap;
	int err;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (asprintf(&full, "%s%s", ptr, suffix) < 0)
		full = NULL;
	err = policy_ctx__fail(c, full ? full : ptr, "%s", msg);
	free(full);
	return err;
}

/* JSON Pointer of key under base: '~' becomes "~0" and '/' becomes "~1" (RFC 6901). */
char *policy_ctx__ptr_key(const char *base, const char *key)
{
	size_t n = strlen(base) + 2 * strlen(key) + 2;
	char *out = malloc(n), *o;

	if (!out)
		return NULL;
	o = out + sprintf(out, "%s/", base);
	for (const char *k = key; *k; k++) {
		if (*k == '~' || *k == '/') {
			*o++ = '~';
			*o++ = *k == '~' ? '0' : '1';
		} else {
			*o++ = *k;
		}
	}
	*o = 0;
	return out;
}

char *policy_ctx__ptr_idx(const char *base, size_t i)
{
	char *out;

	return asprintf(&out, "%s/%zu", base, i) < 0 ? NULL : out;
}

/* A short, printable rendering of a JSON value for messages. */
void policy_ctx__show(const json_t *v, char *buf, size_t len)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

	if (!s) {
		snprintf(buf, len, "(value)");
		return;
	}
	if (strlen(s) > 40)
		snprintf(buf, len, "%.37s...", s);
	else
		snprintf(buf, len, "%s", s);
	free(s);
}

const char *policy_ctx__type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

int policy_ctx__want(struct policy_ctx *c, const char *ptr, const json_t *v, json_type t,
		     const char *what)
{
	if (json_typeof(v) == t)
		return 0;
	return policy_ctx__fail(c, ptr, "must be %s, not %s", what, policy_ctx__type_name(v));
}

/* Every key of obj must be in allowed (NULL-terminated). */
int policy_ctx__known_keys(struct policy_ctx *c, const char *ptr, const json_t *obj,
			   const char *const *allowed)
{
	const char *key;
	json_t *v;
	char list[256] = "";

	json_object_foreach((json_t *)obj, key, v) {
		size_t i;

		for (i = 0; allowed[i]; i++)
			if (!strcmp(key, allowed[i]))
				break;
		if (allowed[i])
			continue;
		for (i = 0; allowed[i]; i++)
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 i ? ", " : "", allowed[i]);
		char *kp = policy_ctx__ptr_key(ptr, key);
		policy_ctx__fail(c, kp ? kp : ptr, "unknown key \"%s\" (expected one of: %s)", key,
				 list);
		free(kp);
		return -EINVAL;
	}
	return 0;
}

/* A name (tool, counter, hide entry): non-empty, bounded, no control characters. */
int policy_ctx__check_name(struct policy_ctx *c, const char *ptr, const char *s, size_t len,
			   const char *what)
{
	if (len == 0)
		return policy_ctx__fail(c, ptr, "%s must not be empty", what);
	if (len > NAME_MAX_BYTES)
		return policy_ctx__fail(c, ptr, "%s is %zu bytes; at most %d", what, len,
					NAME_MAX_BYTES);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return policy_ctx__fail(
				c, ptr, "%s contains a control character (byte %zu)", what, i);
	return 0;
}

static int parse_window(struct policy_ctx *c, const char *ptr, const json_t *v, uint32_t *out)
{
	static const struct {
		const char *name;
		uint32_t s;
	} names[] = { { "second", 1 }, { "minute", 60 }, { "hour", 3600 }, { "day", 86400 } };
	char buf[64];

	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);

		if (n < 1 || n > WINDOW_MAX_S)
			return policy_ctx__fail(c, ptr,
						"%lld is not a window: seconds from 1 to %u",
						(long long)n, WINDOW_MAX_S);
		*out = (uint32_t)n;
		return 0;
	}
	if (json_is_string(v)) {
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(json_string_value(v), names[i].name)) {
				*out = names[i].s;
				return 0;
			}
	}
	policy_ctx__show(v, buf, sizeof(buf));
	return policy_ctx__fail(
		c, ptr,
		"%s is not a window (\"second\", \"minute\", \"hour\", \"day\" or whole seconds)",
		buf);
}

int policy__duration_text(const char *s, uint64_t *seconds, bool *unit)
{
	unsigned long long n;
	uint64_t mul = 1;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s || n == 0 || n > UINT32_MAX)
		return -EINVAL;
	*unit = *end != 0;
	if (*end) {
		if (end[1])
			return -EINVAL;
		switch (*end) {
		case 's':
			mul = 1;
			break;
		case 'm':
			mul = 60;
			break;
		case 'h':
			mul = 3600;
			break;
		case 'd':
			mul = 86400;
			break;
		default:
			return -EINVAL;
		}
	}
	*seconds = n * mul;
	return 0;
}

/* Durations: whole seconds, or a string "<n>s|m|h|d" ("90s", "2m", "1h"). */
int policy_ctx__parse_duration(struct policy_ctx *c, const char *ptr, const json_t *v,
			       uint32_t *out)
{
	uint64_t n = 0;
	bool unit = false;
	char buf[64];

	if (json_is_integer(v)) {
		if (json_integer_value(v) < 1)
			goto bad;
		n = (uint64_t)json_integer_value(v);
	} else if (!json_is_string(v) || policy__duration_text(json_string_value(v), &n, &unit) ||
		   !unit) {
		goto bad; /* a string says its unit */
	}
	if (n > APPROVAL_MAX_S)
		return policy_ctx__fail(c, ptr, "duration is longer than %u seconds",
					APPROVAL_MAX_S);
	*out = (uint32_t)n;
	return 0;
bad:
	policy_ctx__show(v, buf, sizeof(buf));
	return policy_ctx__fail(
		c, ptr, "%s is not a duration (whole seconds, or \"90s\", \"2m\", \"1h\", \"1d\")",
		buf);
}

static int parse_max(struct policy_ctx *c, const char *ptr, const json_t *v, uint64_t *out)
{
	char buf[64];

	if (!json_is_integer(v)) {
		policy_ctx__show(v, buf, sizeof(buf));
		return policy_ctx__fail(c, ptr, "%s is not a whole number of calls", buf);
	}
	if (json_integer_value(v) < 1)
		return policy_ctx__fail(
			c, ptr, "must be at least 1 (to forbid a tool, use \"action\": \"deny\")");
	if ((unsigned long long)json_integer_value(v) > MAX_MAX)
		return policy_ctx__fail(c, ptr, "must be at most %llu", MAX_MAX);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static const char *const scope_names[] = { "grant", "session", "agent", "global" };

static int parse_limit(struct policy_ctx *c, const char *ptr, const json_t *v, struct limit *lim)
{
	static const char *const keys[] = { "counter", "window", "max", "scope", NULL };
	json_t *counter, *window, *max, *scope;
	char *kp = NULL;
	int err;

	if ((err = policy_ctx__want(c, ptr, v, JSON_OBJECT,
				    "an object {counter, window, max, scope}")) ||
	    (err = policy_ctx__known_keys(c, ptr, v, keys)))
		return err;
	counter = json_object_get(v, "counter");
	window = json_object_get(v, "window");
	max = json_object_get(v, "max");
	scope = json_object_get(v, "scope");
	if (!window)
		return policy_ctx__fail(c, ptr, "\"window\" is required");
	if (!max)
		return policy_ctx__fail(c, ptr, "\"max\" is required");
	lim->scope = SCOPE_GRANT;
	if (counter) {
		kp = policy_ctx__ptr_key(ptr, "counter");
		if ((err = policy_ctx__want(c, kp, counter, JSON_STRING, "a string")) ||
		    (err = policy_ctx__check_name(c, kp, json_string_value(counter),
						  json_string_length(counter), "counter")))
			goto out;
		lim->counter = strdup(json_string_value(counter));
	} else {
		lim->counter = strdup(ptr); /* a budget of its own */
	}
	free(kp);
	kp = policy_ctx__ptr_key(ptr, "window");
	if ((err = parse_window(c, kp, window, &lim->window_s)))
		goto out;
	free(kp);
	kp = policy_ctx__ptr_key(ptr, "max");
	if ((err = parse_max(c, kp, max, &lim->max)))
		goto out;
	if (scope) {
		size_t i;

		free(kp);
		kp = policy_ctx__ptr_key(ptr, "scope");
		if ((err = policy_ctx__want(c, kp, scope, JSON_STRING, "a string")))
			goto out;
		for (i = 0; i < 4; i++)
			if (!strcmp(json_string_value(scope), scope_names[i]))
				break;
		if (i == 4) {
			err = policy_ctx__fail(
				c, kp, "\"%s\" is not a scope (grant, session, agent, global)",
				json_string_value(scope));
			goto out;
		}
		lim->scope = (enum scope)i;
	}
	lim->ptr = strdup(ptr);
	err = lim->ptr && lim->counter ? 0 : -ENOMEM;
out:
	free(kp);
	return err;
}

/*
 * "rate_limit": "10/minute" (Intercept's form: scope grant) or {"max": 10, "window": 60}
 * (PolicyLayer's FAQ form: tracked per agent session). Either is one limit with a budget of
 * its own.
 */
static int parse_rate_limit(struct policy_ctx *c, const char *ptr, const json_t *v,
			    struct limit *lim)
{
	static const char *const keys[] = { "max", "window", NULL };
	int err;

	if (json_is_string(v)) {
		const char *s = json_string_value(v), *slash = strchr(s, '/');
		unsigned long long n;
		char *end;
		json_t *w;

		errno = 0;
		n = strtoull(s, &end, 10);
		if (!slash || end != slash || s[0] < '0' || s[0] > '9' || errno)
			return policy_ctx__fail(
				c, ptr,
				"\"%s\" is not a rate (\"<calls>/<window>\", e.g. \"10/minute\")",
				s);
		if (n < 1)
			return policy_ctx__fail(
				c, ptr,
				"must allow at least 1 call (to forbid a tool, use \"action\": \"deny\")");
		if (n > MAX_MAX)
			return policy_ctx__fail(c, ptr, "must be at most %llu calls", MAX_MAX);
		w = json_string(slash + 1);
		if (!w)
			return -ENOMEM;
		err = parse_window(c, ptr, w, &lim->window_s);
		json_decref(w);
		if (err)
			return err;
		lim->max = n;
		lim->scope = SCOPE_GRANT;
	} else {
		json_t *max, *window;
		char *kp;

		if ((err = policy_ctx__want(c, ptr, v, JSON_OBJECT,
					    "a string \"10/minute\" or an object {max, window}")) ||
		    (err = policy_ctx__known_keys(c, ptr, v, keys)))
			return err;
		max = json_object_get(v, "max");
		window = json_object_get(v, "window");
		if (!max || !window)
			return policy_ctx__fail(c, ptr, "\"max\" and \"window\" are both required");
		kp = policy_ctx__ptr_key(ptr, "max");
		err = parse_max(c, kp, max, &lim->max);
		free(kp);
		if (err)
			return err;
		kp = policy_ctx__ptr_key(ptr, "window");
		err = parse_window(c, kp, window, &lim->window_s);
		free(kp);
		if (err)
			return err;
		lim->scope = SCOPE_SESSION;
	}
	lim->ptr = strdup(ptr);
	lim->counter = strdup(ptr);
	return lim->ptr && lim->counter ? 0 : -ENOMEM;
}

/* One more limit at the end of *arr, from a rate_limit shorthand. */
static int append_rate_limit(struct policy_ctx *c, const char *ptr, const json_t *v,
			     struct limit **arr, size_t *n)
{
	struct limit *grown = reallocarray(*arr, *n + 1, sizeof(*grown));

	if (!grown)
		return -ENOMEM;
	*arr = grown;
	memset(&grown[*n], 0, sizeof(*grown));
	(*n)++; /* counted first: freed even half-built */
	return parse_rate_limit(c, ptr, v, &grown[*n - 1]);
}

static int parse_limits(struct policy_ctx *c, const char *ptr, const json_t *v, struct limit **out,
			size_t *n)
{
	size_t i;
	json_t *e;
	int err;

	if ((err = policy_ctx__want(c, ptr, v, JSON_ARRAY, "an array")))
		return err;
	if (json_array_size(v) > LIMITS_MAX_PER_CALL)
		return policy_ctx__fail(c, ptr, "%zu limits; at most %d apply to one call",
					json_array_size(v), LIMITS_MAX_PER_CALL);
	*out = calloc(json_array_size(v) + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	json_array_foreach((json_t *)v, i, e) {
		char *ip = policy_ctx__ptr_idx(ptr, i);

		err = ip ? parse_limit(c, ip, e, &(*out)[i]) : -ENOMEM;
		free(ip);
		*n = i + 1;
		if (err)
			return err;
	}
	return 0;
}

static int parse_action(struct policy_ctx *c, const char *ptr, const json_t *v, enum action *a)
{
	static const struct {
		const char *name;
		enum action a;
	} names[] = { { "allow", ACTION_ALLOW },
		      { "deny", ACTION_DENY },
		      { "approve", ACTION_APPROVE },
		      { "require_approval", ACTION_APPROVE } };
	int err;

	if ((err = policy_ctx__want(c, ptr, v, JSON_STRING, "a string")))
		return err;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(json_string_value(v), names[i].name)) {
			*a = names[i].a;
			return 0;
		}
	return policy_ctx__fail(c, ptr,
				"\"%s\" is not an action (allow, deny, approve, require_approval)",
				json_string_value(v));
}

static int parse_reason(struct policy_ctx *c, const char *ptr, const json_t *v, char **out)
{
	int err;

	if ((err = policy_ctx__want(c, ptr, v, JSON_STRING, "a string")))
		return err;
	if (json_string_length(v) == 0)
		return policy_ctx__fail(c, ptr, "must not be empty");
	if (json_string_length(v) > REASON_MAX_BYTES)
		return policy_ctx__fail(c, ptr, "is %zu bytes; at most %d", json_string_length(v),
					REASON_MAX_BYTES);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return policy_ctx__fail(c, ptr, "contains a NUL character");
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

/* A rule body: everything a tool key can hold. */
static int parse_rule(struct policy_ctx *c, const char *name, const json_t *v, struct rule *r)
{
	static const char *const keys[] = { "action",	   "reason",	 "on_deny",
					    "limits",	   "rate_limit", "require",
					    "deny_if",	   "approval",	 "approval_timeout",
					    "description", NULL };
	const char *key;
	json_t *e;
	int err;

	r->name = strdup(name);
	r->ptr = policy_ctx__ptr_key("/tools", name);
	if (!r->name || !r->ptr)
		return -ENOMEM;
	r->action_ptr = policy_ctx__ptr_key(r->ptr, "action");
	if (!r->action_ptr)
		return -ENOMEM;
	r->approval_timeout_s = APPROVAL_DEFAULT_S;
	r->approval_via = VIA_CLIENT | VIA_OPERATOR;
	if ((err = policy_ctx__check_name(c, r->ptr, name, strlen(name), "a tool name")) ||
	    (err = policy_ctx__want(c, r->ptr, v, JSON_OBJECT,
				    "an object (use {} to allow the tool)")) ||
	    (err = policy_ctx__known_keys(c, r->ptr, v, keys)))
		return err;
	if (json_object_get(v, "reason") && json_object_get(v, "on_deny"))
		return policy_ctx__fail(c, r->ptr,
					"\"reason\" and \"on_deny\" are the same thing; give one");
	if (json_object_get(v, "approval_timeout") &&
	    json_object_get(json_object_get(v, "approval"), "timeout"))
		return policy_ctx__fail(
			c, r->ptr,
			"\"approval_timeout\" and \"approval\": {\"timeout\"} are the same thing; give one");
	if (json_object_get(v, "limits") && json_object_get(v, "rate_limit") &&
	    json_array_size(json_object_get(v, "limits")) + 1 > LIMITS_MAX_PER_CALL)
		return policy_ctx__fail(c, r->ptr, "more than %d limits", LIMITS_MAX_PER_CALL);
	json_object_foreach((json_t *)v, key, e) {
		char *kp = policy_ctx__ptr_key(r->ptr, key);

		if (!kp)
			return -ENOMEM;
		if (!strcmp(key, "action")) {
			err = parse_action(c, kp, e, &r->action);
		} else if (!strcmp(key, "reason") || !strcmp(key, "on_deny")) {
			err = parse_reason(c, kp, e, &r->reason);
		} else if (!strcmp(key, "limits")) {
			struct limit *l = NULL, *merged;
			size_t n = 0;

			err = parse_limits(c, kp, e, &l, &n);
			/* keep rate_limit (if already parsed) after limits[] */
			merged = err ? NULL : reallocarray(l, n + r->nlimits + 1, sizeof(*l));
			if (merged) {
				if (r->nlimits)
					memcpy(merged + n, r->limits, r->nlimits * sizeof(*l));
				free(r->limits);
				r->limits = merged;
				r->nlimits += n;
			} else {
				for (size_t i = 0; i < n; i++) {
					free(l[i].ptr);
					free(l[i].counter);
				}
				free(l);
				err = err ? err : -ENOMEM;
			}
		} else if (!strcmp(key, "rate_limit")) {
			err = append_rate_limit(c, kp, e, &r->limits, &r->nlimits);
		} else if (!strcmp(key, "require")) {
			err = policy__parse_conds(c, kp, e, &r->require, &r->nrequire);
		} else if (!strcmp(key, "deny_if")) {
			err = policy__parse_conds(c, kp, e, &r->deny_if, &r->ndeny_if);
		} else if (!strcmp(key, "approval")) {
			err = policy__parse_approval(c, kp, e, r);
		} else if (!strcmp(key, "approval_timeout")) {
			err = policy_ctx__parse_duration(c, kp, e, &r->approval_timeout_s);
		} else { /* description */
			err = policy_ctx__want(c, kp, e, JSON_STRING, "a string");
		}
		free(kp);
		if (err)
			return err;
	}
	if (r->action == ACTION_DENY &&
	    (r->nlimits || r->nrequire || r->ndeny_if || json_object_get(v, "approval") ||
	     json_object_get(v, "approval_timeout")))
		return policy_ctx__fail(
			c, r->ptr,
			"a rule with \"action\": \"deny\" takes no limits, rate_limit, require, deny_if or approval");
	if (r->action != ACTION_APPROVE &&
	    (json_object_get(v, "approval") || json_object_get(v, "approval_timeout")))
		return policy_ctx__fail(c, r->ptr,
					"approval settings need \"action\": \"approve\"");
	r->glob = strpbrk(name, "*?") != NULL;
	return 0;
}

/* Exact names before globs, so that an exact name wins over any glob as the README says. */
static int build_index(struct policy *p)
{
	size_t n = 0;

	p->lookup_names = calloc(p->nrules + 1, sizeof(*p->lookup_names));
	p->lookup_rules = calloc(p->nrules + 1, sizeof(*p->lookup_rules));
	if (!p->lookup_names || !p->lookup_rules)
		return -ENOMEM;
	for (int glob = 0; glob < 2; glob++)
		for (size_t i = 0; i < p->nrules; i++) {
			if (p->rules[i].glob != glob)
				continue;
			p->lookup_names[n] = p->rules[i].name;
			p->lookup_rules[n++] = i;
		}
	p->rule_index = globset__new(p->lookup_names, n);
	return p->rule_index ? 0 : -errno;
}

static int parse_tools(struct policy_ctx *c, const json_t *tools, struct policy *p)
{
	const char *name;
	json_t *v;
	int err;

	if ((err = policy_ctx__want(c, "/tools", tools, JSON_OBJECT, "an object of tool rules")))
		return err;
	if (json_object_size(tools) > RULES_MAX)
		return policy_ctx__fail(c, "/tools", "%zu rules; at most %d",
					json_object_size(tools), RULES_MAX);
	p->rules = calloc(json_object_size(tools) + 1, sizeof(*p->rules));
	if (!p->rules)
		return -ENOMEM;
	/* jansson keeps insertion order: rules stay in file order, as glob lookup needs */
	json_object_foreach((json_t *)tools, name, v) {
		struct rule *r = &p->rules[p->nrules++]; /* counted first: freed even half-built */

		if ((err = parse_rule(c, name, v, r)))
			return err;
		if (r->nlimits + p->nall_limits > LIMITS_MAX_PER_CALL)
			return policy_ctx__fail(
				c, r->ptr,
				"with the all_tools limits, %zu limits would apply to one call; at most %d",
				r->nlimits + p->nall_limits, LIMITS_MAX_PER_CALL);
	}
	return build_index(p);
}

static int parse_hide(struct policy_ctx *c, const json_t *v, struct policy *p)
{
	size_t i;
	json_t *e;
	int err;

	if ((err = policy_ctx__want(c, "/hide", v, JSON_ARRAY, "an array of tool names or globs")))
		return err;
	if (json_array_size(v) > HIDE_MAX)
		return policy_ctx__fail(c, "/hide", "%zu entries; at most %d", json_array_size(v),
					HIDE_MAX);
	p->hide = calloc(json_array_size(v) + 1, sizeof(*p->hide));
	if (!p->hide)
		return -ENOMEM;
	json_array_foreach((json_t *)v, i, e) {
		char ip[32];

		snprintf(ip, sizeof(ip), "/hide/%zu", i);
		if ((err = policy_ctx__want(c, ip, e, JSON_STRING, "a string")) ||
		    (err = policy_ctx__check_name(c, ip, json_string_value(e),
						  json_string_length(e), "a hide entry")))
			return err;
		p->hide[i] = strdup(json_string_value(e));
		if (!p->hide[i])
			return -ENOMEM;
		p->nhide = i + 1;
	}
	p->hide_index = globset__new((const char *const *)p->hide, p->nhide);
	return p->hide_index ? 0 : -errno;
}

static int parse_all_tools(struct policy_ctx *c, const json_t *v, struct policy *p)
{
	static const char *const keys[] = { "limits", "rate_limit", NULL };
	json_t *limits, *rate;
	int err;

	if ((err = policy_ctx__want(c, "/all_tools", v, JSON_OBJECT, "an object {limits}")) ||
	    (err = policy_ctx__known_keys(c, "/all_tools", v, keys)))
		return err;
	limits = json_object_get(v, "limits");
	rate = json_object_get(v, "rate_limit");
	if (limits &&
	    (err = parse_limits(c, "/all_tools/limits", limits, &p->all_limits, &p->nall_limits)))
		return err;
	if (rate) {
		if (p->nall_limits + 1 > LIMITS_MAX_PER_CALL)
			return policy_ctx__fail(c, "/all_tools", "more than %d limits",
						LIMITS_MAX_PER_CALL);
		return append_rate_limit(c, "/all_tools/rate_limit", rate, &p->all_limits,
					 &p->nall_limits);
	}
	return 0;
}

/*
 * "state": {"redis": URL, "prefix": S, "unreachable": "deny"|"allow", "timeout_ms": N}: the
 * budgets of scopes agent and global are kept in that Redis, shared with every mcpfence that
 * names it.
 */
static int parse_state(struct policy_ctx *c, const json_t *v, struct policy *p)
{
	static const char *const keys[] = { "redis", "prefix", "unreachable", "timeout_ms", NULL };
	struct redis_conf *rc;
	char why[200];
	json_t *e;
	int err;

	if ((err = policy_ctx__want(c, "/state", v, JSON_OBJECT, "an object {redis}")) ||
	    (err = policy_ctx__known_keys(c, "/state", v, keys)))
		return err;
	e = json_object_get(v, "redis");
	if (!e)
		return policy_ctx__fail(c, "/state/redis",
					"is required (\"redis\": \"redis://HOST:6379/0\")");
	if ((err = policy_ctx__want(c, "/state/redis", e, JSON_STRING, "a string")))
		return err;
	rc = p->redis = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	if (redis_conf__parse_url(json_string_value(e), rc, why, sizeof(why)))
		return policy_ctx__fail(c, "/state/redis", "%s", why);
	rc->timeout_ms = REDIS_DEFAULT_TIMEOUT_MS;
	if ((e = json_object_get(v, "prefix"))) {
		const char *s;

		if ((err = policy_ctx__want(c, "/state/prefix", e, JSON_STRING, "a string")))
			return err;
		s = json_string_value(e);
		if (strlen(s) > 64 || strlen(s) != json_string_length(e))
			return policy_ctx__fail(c, "/state/prefix",
						"must be at most 64 bytes, no NUL");
		rc->prefix = strdup(s);
	} else {
		rc->prefix = strdup(REDIS_DEFAULT_PREFIX);
	}
	if (!rc->prefix)
		return -ENOMEM;
	if ((e = json_object_get(v, "unreachable"))) {
		if (json_is_string(e) && !strcmp(json_string_value(e), "allow"))
			rc->fail_open = true;
		else if (!json_is_string(e) || strcmp(json_string_value(e), "deny"))
			return policy_ctx__fail(c, "/state/unreachable",
						"must be \"deny\" or \"allow\"");
	}
	if ((e = json_object_get(v, "timeout_ms"))) {
		if (!json_is_integer(e) || json_integer_value(e) < 1 ||
		    json_integer_value(e) > 60000)
			return policy_ctx__fail(c, "/state/timeout_ms",
						"must be a whole number of ms from 1 to 60000");
		rc->timeout_ms = (uint32_t)json_integer_value(e);
	}
	return 0;
}

/* The limits of scopes agent and global are the state's, when there is one. */
static void limits_to_state(struct limit *l, size_t n, const struct redis_conf *rc)
{
	for (size_t i = 0; i < n; i++)
		if (l[i].scope == SCOPE_AGENT || l[i].scope == SCOPE_GLOBAL)
			l[i].redis = rc;
}

/* {"key": "a"|"b"} objects: kernel.unparsed and audit.arguments. */
static int parse_switch(struct policy_ctx *c, const char *ptr, const json_t *v, const char *key,
			const char *off, const char *on, bool *out)
{
	const char *const keys[] = { key, NULL };
	json_t *e;
	char kp[64];
	int err;

	if ((err = policy_ctx__want(c, ptr, v, JSON_OBJECT, "an object")) ||
	    (err = policy_ctx__known_keys(c, ptr, v, keys)))
		return err;
	e = json_object_get(v, key);
	if (!e)
		return 0;
	snprintf(kp, sizeof(kp), "%s/%s", ptr, key);
	if (json_is_string(e) && !strcmp(json_string_value(e), on)) {
		*out = true;
		return 0;
	}
	if (json_is_string(e) && !strcmp(json_string_value(e), off)) {
		*out = false;
		return 0;
	}
	return policy_ctx__fail(c, kp, "must be \"%s\" or \"%s\"", off, on);
}

static int parse_top(struct policy_ctx *c, const json_t *root, struct policy *p)
{
	static const char *const keys[] = { "version", "default",   "description", "$schema",
					    "hide",    "all_tools", "tools",	   "kernel",
					    "audit",   "match",	    "state",	   NULL };
	json_t *version, *def, *v;
	int err;

	if ((err = policy_ctx__want(c, "", root, JSON_OBJECT, "an object")) ||
	    (err = policy_ctx__known_keys(c, "", root, keys)))
		return err;
	version = json_object_get(root, "version");
	def = json_object_get(root, "default");
	if (!version)
		return policy_ctx__fail(c, "/version", "is required (\"version\": \"1\")");
	if (!json_is_string(version) || strcmp(json_string_value(version), "1"))
		return policy_ctx__fail(c, "/version", "must be the string \"1\"");
	if (!def)
		return policy_ctx__fail(c, "/default", "is required (\"allow\" or \"deny\")");
	if (json_is_string(def) && !strcmp(json_string_value(def), "allow"))
		p->def = ACTION_ALLOW;
	else if (json_is_string(def) && !strcmp(json_string_value(def), "deny"))
		p->def = ACTION_DENY;
	else
		return policy_ctx__fail(c, "/default", "must be \"allow\" or \"deny\"");
	if ((v = json_object_get(root, "description")) &&
	    (err = policy_ctx__want(c, "/description", v, JSON_STRING, "a string")))
		return err;
	if ((v = json_object_get(root, "$schema")) &&
	    (err = policy_ctx__want(c, "/$schema", v, JSON_STRING, "a string")))
		return err;
	if ((v = json_object_get(root, "hide")) && (err = parse_hide(c, v, p)))
		return err;
	if ((v = json_object_get(root, "all_tools")) && (err = parse_all_tools(c, v, p)))
		return err;
	if ((v = json_object_get(root, "kernel")) &&
	    (err = parse_switch(c, "/kernel", v, "unparsed", "deny", "allow",
				&p->kernel_unparsed_allow)))
		return err;
	if ((v = json_object_get(root, "audit")) &&
	    (err = parse_switch(c, "/audit", v, "arguments", "keys", "values", &p->audit_values)))
		return err;
	if ((v = json_object_get(root, "match")) && (err = policy__parse_match(c, v, &p->match)))
		return err;
	if ((v = json_object_get(root, "state")) && (err = parse_state(c, v, p)))
		return err;
	v = json_object_get(root, "tools");
	if (v && (err = parse_tools(c, v, p)))
		return err;
	if (p->redis) {
		limits_to_state(p->all_limits, p->nall_limits, p->redis);
		for (size_t i = 0; i < p->nrules; i++)
			limits_to_state(p->rules[i].limits, p->rules[i].nlimits, p->redis);
	}
	return v ? 0 : build_index(p);
}

struct policy *policy__parse(const char *buf, size_t len, const char *source, char *err)
{
	struct policy_ctx c = { .source = source, .err = err };
	struct policy *p = NULL;
	json_error_t jerr;
	json_t *root = NULL;
	int ret = -ENOMEM;

	err[0] = 0;
	if (len > POLICY_MAX_BYTES) {
		ret = policy_ctx__fail(&c, "", "file is %zu bytes; a policy is at most %u", len,
				       POLICY_MAX_BYTES);
		goto out_fail;
	}
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, POLICY_ERR_LEN, "%s:%d:%d: %s", source, jerr.line, jerr.column,
			 jerr.text);
		ret = -EINVAL;
		goto out_fail;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->source = strdup(source)))
		goto out_fail;
	p->digest = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++)
		p->digest = (p->digest ^ (unsigned char)buf[i]) * 0x100000001b3ULL;
	ret = parse_top(&c, root, p);
	if (ret)
		goto out_fail;
	json_decref(root);
	return p;
out_fail:
	if (ret == -ENOMEM && !err[0])
		snprintf(err, POLICY_ERR_LEN, "%s: out of memory", source);
	json_decref(root);
	policy__free(p);
	errno = -ret;
	return NULL;
}

struct policy *policy__load(const char *path, char *err)
{
	struct policy *p = NULL;
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, saved;

	/* O_NONBLOCK: a FIFO (refused below) must not hang the open until a writer comes */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st)) {
		saved = errno;
		snprintf(err, POLICY_ERR_LEN, "%s: %s", path, strerror(saved));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		saved = EINVAL;
		snprintf(err, POLICY_ERR_LEN, "%s: not a regular file", path);
		goto out_close;
	}
	if ((size_t)st.st_size > POLICY_MAX_BYTES) {
		saved = EFBIG;
		snprintf(err, POLICY_ERR_LEN, "%s: file is %lld bytes; a policy is at most %u",
			 path, (long long)st.st_size, POLICY_MAX_BYTES);
		goto out_close;
	}
	buf = malloc(POLICY_MAX_BYTES + 1);
	if (!buf) {
		saved = ENOMEM;
		snprintf(err, POLICY_ERR_LEN, "%s: out of memory", path);
		goto out_close;
	}
	/* read to EOF: the file may have grown since fstat */
	for (;;) {
		ssize_t n = read(fd, buf + len, POLICY_MAX_BYTES + 1 - len);

		if (n < 0) {
			saved = errno;
			snprintf(err, POLICY_ERR_LEN, "%s: %s", path, strerror(saved));
			goto out_close;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > POLICY_MAX_BYTES)
			break;
	}
	p = policy__parse(buf, len, path, err);
	saved = errno;
out_close:
	free(buf);
	if (fd >= 0)
		close(fd);
	errno = p ? 0 : saved;
	return p;
}

struct policy *policy__deny_all(void)
{
	struct policy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->source = strdup("(no policy)");
	p->def = ACTION_DENY;
	p->deny_all = true;
	if (!p->source || build_index(p)) {
		policy__free(p);
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

static void free_limits(struct limit *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(l[i].ptr);
		free(l[i].counter);
	}
	free(l);
}

static void free_conds(struct cond *cd, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < cd[i].nsegs; j++)
			free(cd[i].segs[j].key);
		free(cd[i].segs);
		free(cd[i].ptr);
		free(cd[i].path);
		json_decref(cd[i].value);
		pcre2_code_free(cd[i].re);
	}
	free(cd);
}

static void free_approvers(struct approver *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i].name);
	free(a);
}

void policy__free(struct policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nrules; i++) {
		struct rule *r = &p->rules[i];

		free(r->name);
		free(r->ptr);
		free(r->action_ptr);
		free(r->reason);
		free_limits(r->limits, r->nlimits);
		free_conds(r->require, r->nrequire);
		free_conds(r->deny_if, r->ndeny_if);
		free_approvers(r->approvers.users, r->approvers.nusers);
		free_approvers(r->approvers.groups, r->approvers.ngroups);
	}
	free(p->rules);
	for (size_t i = 0; i < p->nhide; i++)
		free(p->hide[i]);
	free(p->hide);
	free_limits(p->all_limits, p->nall_limits);
	free(p->lookup_names);
	free(p->lookup_rules);
	globset__free(p->rule_index);
	globset__free(p->hide_index);
	policy__match_free(&p->match);
	redis_conf__free(p->redis);
	free(p->redis);
	free(p->source);
	free(p);
}

bool policy__glob_match(const char *pat, const char *s)
{
	const char *star = NULL, *resume = NULL;

	/* iterative matching with one backtrack point: linear in practice, no recursion */
	while (*s) {
		if (*pat == '*') {
			star = pat++;
			resume = s;
		} else if (*pat == '?') {
			/* one character: a UTF-8 lead byte and its continuation bytes */
			pat++;
			s++;
			while ((*s & 0xc0) == 0x80)
				s++;
		} else if (*pat == *s) {
			pat++;
			s++;
		} else if (star) {
			pat = star + 1;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == 0;
}

const struct rule *policy__lookup(const struct policy *p, const char *tool)
{
	long i = globset__first(p->rule_index, tool, strlen(tool));

	return i < 0 ? NULL : &p->rules[p->lookup_rules[i]];
}

long policy__hidden(const struct policy *p, const char *tool)
{
	return p->nhide ? globset__first(p->hide_index, tool, strlen(tool)) : -1;
}

const char *policy__action_name(enum action a)
{
	return a == ACTION_DENY ? "deny" : a == ACTION_APPROVE ? "approve" : "allow";
}

const char *policy__window_name(uint32_t window_s, char *buf, size_t len)
{
	static const struct {
		uint32_t s;
		const char *name;
	} names[] = { { 1, "second" }, { 60, "minute" }, { 3600, "hour" }, { 86400, "day" } };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (window_s == names[i].s) {
			snprintf(buf, len, "%s", names[i].name);
			return buf;
		}
	snprintf(buf, len, "%u s", window_s);
	return buf;
}

const char *policy__scope_name(enum scope s)
{
	return (unsigned)s < 4 ? scope_names[s] : "?";
}

const char *policy__approver_name(const struct approver *a, bool group, char *buf, size_t len)
{
	const char *kind = group ? "group" : "user";

	if (!a->resolved)
		snprintf(buf, len, "%s %s (not on this host: never matches)", kind, a->name);
	else if (a->name)
		snprintf(buf, len, "%s %u (%s)", group ? "group" : "uid", a->id, a->name);
	else
		snprintf(buf, len, "%s %u", group ? "group" : "uid", a->id);
	return buf;
}
