// SPDX-License-Identifier: Apache-2.0
/*
 * Mcp-Param-* headers against the body (mcp_param.h). What a header may say is read from the
 * tool's inputSchema as a client of the 2026-07-28 revision reads it: "x-mcp-header" on a
 * property reached from the root through "properties" alone; anywhere else (items, anyOf,
 * $defs, ...) it makes the schema invalid. Whatever this cannot check with certainty is
 * refused, as a header that disagrees is: with -32020, on which the client lists and retries.
 * ASCII only: no locale decides what a letter, a digit or a space is.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "mcp_param.h"
#include "text.h"

#define NAME_SHOWN 32	/* bytes of a name quoted in a message */
#define MAX_NESTING 512 /* schemas nested deeper are invalid */

/* --- the store --- */

int mcp_param__learn(struct mcp_param *s, const json_t *tools)
{
	size_t i;
	json_t *t;

	if (!json_is_array(tools))
		return 0;
	if (!s->tools && !(s->tools = json_object()))
		return -ENOMEM;
	json_array_foreach((json_t *)tools, i, t) {
		const char *name = json_string_value(json_object_get(t, "name"));
		json_t *schema = json_object_get(t, "inputSchema");

		if (!name)
			continue;
		if (!json_object_get(s->tools, name) &&
		    json_object_size(s->tools) >= MCP_PARAM_MAX_TOOLS) {
			if (!s->full_told)
				log_warn(
					"proxy: over %d tools listed: the others' schemas are not "
					"kept, and their calls with Mcp-Param-* headers are refused",
					MCP_PARAM_MAX_TOOLS);
			s->full_told = true;
			continue;
		}
		/* a tool without a schema object declares no header */
		if (json_object_set_new(s->tools, name,
					json_is_object(schema) ? json_incref(schema) :
								 json_object()))
			return -ENOMEM;
	}
	return 0;
}

void mcp_param__free(struct mcp_param *s)
{
	json_decref(s->tools);
	s->tools = NULL;
}

/* --- header names --- */

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

/* c in lower case, '_' as '-' (CGI-style servers read Mcp_Param_X as Mcp-Param-X) */
static char fold(char c)
{
	return c == '_' ? '-' : c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* the first n bytes of a and b (or up to their end) equal once folded */
static bool fold_eq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char x = fold(a[i]), y = fold(b[i]);

		if (x != y)
			return false;
		if (!x)
			return true;
	}
	return true;
}

static bool name_eq(const char *a, const char *b)
{
	return strlen(a) == strlen(b) && fold_eq(a, b, strlen(a));
}

void mcp_param__add_header(struct mcp_param_hdrs *h, const char *name, const char *value)
{
	if (strlen(name) < 10 || !fold_eq(name, "mcp-param-", 10))
		return;
	if (h->n == MCP_PARAM_MAX_HDRS) {
		h->more = true;
		return;
	}
	h->h[h->n].name = name + 10;
	h->h[h->n].value = value ? value : "";
	h->n++;
}

/* RFC 9110 token: 1*tchar */
static bool token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!digit(*s) && !(fold(*s) >= 'a' && fold(*s) <= 'z') &&
		    !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

/* --- the schema's declarations --- */

struct decl {
	const char *name;    /* its x-mcp-header */
	const json_t *value; /* the body's value at its path; NULL: absent */
};

struct scan {
	struct decl d[MCP_PARAM_MAX_DECLS];
	size_t n;
	const char *bad; /* why the schema is invalid */
};

/* Where a schema's subschemas are not reached through properties alone. */
static const char *const UNREACHABLE[] = {
	"items",
	"prefixItems",
	"contains",
	"additionalProperties",
	"unevaluatedProperties",
	"unevaluatedItems",
	"propertyNames",
	"patternProperties",
	"dependentSchemas",
	"oneOf",
	"anyOf",
	"allOf",
	"not",
	"if",
	"then",
	"else",
	"$defs",
	"definitions",
};

static void visit(struct scan *sc, const json_t *node, const json_t *value, bool reachable,
		  unsigned depth);

/* The subschemas under keyword k of node: one, an array of them, or an object of them. */
static void visit_unreachable(struct scan *sc, const json_t *sub, const char *k, unsigned depth)
{
	const char *key;
	size_t i;
	json_t *v;

	if (json_is_array(sub)) {
		json_array_foreach((json_t *)sub, i, v)
			visit(sc, v, NULL, false, depth + 1);
	} else if (json_is_object(sub) &&
		   (!strcmp(k, "patternProperties") || !strcmp(k, "dependentSchemas") ||
		    !strcmp(k, "$defs") || !strcmp(k, "definitions"))) {
		json_object_foreach((json_t *)sub, key, v)
			visit(sc, v, NULL, false, depth + 1);
	} else {
		visit(sc, sub, NULL, false, depth + 1);
	}
}

/* The x-mcp-header of node (a property at depth, reachable or not), when it has one. */
static void declare(struct scan *sc, const json_t *node, const json_t *value, bool reachable,
		    unsigned depth)
{
	const json_t *x = json_object_get(node, "x-mcp-header");
	const char *name = json_string_value(x), *type;

	if (!x)
		return;
	type = json_string_value(json_object_get(node, "type"));
	if (!reachable || !depth)
		sc->bad = "an x-mcp-header outside a chain of properties";
	else if (!name || !token(name))
		sc->bad = "an x-mcp-header that is not an RFC 9110 token";
	else if (!type ||
		 (strcmp(type, "string") && strcmp(type, "integer") && strcmp(type, "boolean")))
		sc->bad = "an x-mcp-header on a type other than string, integer or boolean";
	else if (sc->n == MCP_PARAM_MAX_DECLS)
		sc->bad = "more x-mcp-header than mcpfence reads";
	for (size_t i = 0; !sc->bad && i < sc->n; i++)
		if (name_eq(sc->d[i].name, name))
			sc->bad = "two x-mcp-header names equal but for case, or '_' for '-'";
	if (!sc->bad)
		sc->d[sc->n++] = (struct decl){ .name = name, .value = value };
}

/* node, a schema at depth; value, the body's value there when reachable (NULL: absent). */
static void visit(struct scan *sc, const json_t *node, const json_t *value, bool reachable,
		  unsigned depth)
{
	const json_t *props = json_object_get(node, "properties");
	const char *key;
	json_t *child;

	if (sc->bad || !json_is_object(node))
		return;
	if (depth > MAX_NESTING) {
		sc->bad = "nested too deep";
		return;
	}
	declare(sc, node, value, reachable, depth);
	if (json_is_object(props))
		json_object_foreach((json_t *)props, key, child)
			visit(sc, child, reachable ? json_object_get(value, key) : NULL, reachable,
			      depth + 1);
	for (size_t i = 0; i < sizeof(UNREACHABLE) / sizeof(UNREACHABLE[0]); i++) {
		const json_t *sub = json_object_get(node, UNREACHABLE[i]);

		if (sub)
			visit_unreachable(sc, sub, UNREACHABLE[i], depth);
	}
}

/* --- values --- */

static int b64(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Canonical base64 (padded, no spare bit set) of s[0, n) decoded into out (n / 4 * 3 + 1). */
static int unbase64(const char *s, size_t n, unsigned char *out, size_t *len)
{
	size_t o = 0;

	if (n % 4)
		return -EINVAL;
	for (size_t i = 0; i < n; i += 4) {
		int pad = i + 4 == n && s[i + 3] == '=' ? (s[i + 2] == '=' ? 2 : 1) : 0;
		int a = b64(s[i]), b = b64(s[i + 1]);
		int c = pad == 2 ? 0 : b64(s[i + 2]), d = pad ? 0 : b64(s[i + 3]);

		if (a < 0 || b < 0 || c < 0 || d < 0 || (pad == 2 && (b & 15)) ||
		    (pad == 1 && (c & 3)))
			return -EINVAL;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		if (pad < 2)
			out[o++] = (unsigned char)((b & 15) << 4 | c >> 2);
		if (!pad)
			out[o++] = (unsigned char)((c & 3) << 6 | d);
	}
	out[o] = 0;
	*len = o;
	return 0;
}

char *mcp_param__value(const char *v, size_t *len, const char **bad)
{
	size_t n = strlen(v);
	unsigned char *out = NULL;

	if (n < 10 || strncmp(v, "=?base64?", 9) || strcmp(v + n - 2, "?=")) {
		bool unsafe =
			n && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t');

		for (size_t i = 0; i < n && !unsafe; i++)
			unsafe = (v[i] < 0x20 || v[i] > 0x7e) && v[i] != '\t';
		if (unsafe) {
			*bad = "is not printable ASCII without surrounding spaces: such a value is "
			       "sent as =?base64?...?=";
			return NULL;
		}
		*len = n;
		return strdup(v);
	}
	if (n < 11) /* "=?base64?=": the prefix and the suffix overlap */
		goto out_bad;
	out = malloc((n - 11) / 4 * 3 + 1);
	if (!out)
		return NULL; /* *bad not set: out of memory */
	if (unbase64(v + 9, n - 11, out, len) || memchr(out, 0, *len))
		goto out_bad;
	for (size_t i = 0, l; i < *len; i += l)
		if (!(l = text__utf8_seq(out + i, *len - i)))
			goto out_bad;
	return (char *)out;
out_bad:
	*bad = "is not =?base64?...?= of UTF-8 text without NUL";
	free(out);
	return NULL;
}

/* s (NUL-terminated): -?(0|[1-9][0-9]*), not -0, within long long; into *x. */
static bool canonical_int(const char *s, long long *x)
{
	const char *d = s + (*s == '-');
	char *end;

	if (!digit(*d) || (*d == '0' && (d[1] || d != s)))
		return false;
	for (const char *p = d; *p; p++)
		if (!digit(*p))
			return false;
	errno = 0;
	*x = strtoll(s, &end, 10);
	return !errno && !*end;
}

/*
 * Does s (n bytes, the decoded header) say the body's value v? Strings byte for byte, booleans
 * true/false, integers (a number with no fraction, within 2^53) as canonical decimals. *bad:
 * v cannot be said in a header at all.
 */
static bool says(const json_t *v, const char *s, size_t n, const char **bad)
{
	long long x;
	double r;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return n == json_string_length(v) && !memcmp(s, json_string_value(v), n);
	case JSON_TRUE:
		return !strcmp(s, "true");
	case JSON_FALSE:
		return !strcmp(s, "false");
	case JSON_INTEGER:
		return canonical_int(s, &x) && x == json_integer_value(v);
	case JSON_REAL:
		r = json_real_value(v);
		if (r != trunc(r) || fabs(r) > 9007199254740992.0) {
			*bad = "the body's value is a number but not an integer up to 2^53";
			return false;
		}
		return canonical_int(s, &x) && x == (long long)r;
	default:
		*bad = "the body's value is not a string, integer or boolean";
		return false;
	}
}

/* --- the check --- */

static const char *say(char *why, size_t len, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "Mcp-Param-<name>" then the rest: the name cleaned (valid UTF-8, controls escaped), cut. */
static const char *say(char *why, size_t len, const char *name, const char *fmt, ...)
{
	char shown[4 * NAME_SHOWN + 1];
	va_list ap;
	int k;

	text__utf8_clean(name, NAME_SHOWN, shown, true);
	k = snprintf(why, len, "Mcp-Param-%s%s", shown, strlen(name) > NAME_SHOWN ? "..." : "");
	va_start(ap, fmt);
	vsnprintf(why + k, len - (size_t)k, fmt, ap);
	va_end(ap);
	return why;
}

/* One header, its declaration d (NULL: none): NULL when it says what the body says. */
static const char *check_one(const struct decl *d, const char *name, const char *value, char *why,
			     size_t len)
{
	const char *bad = NULL;
	size_t n;
	char *got;
	bool same;

	if (!d)
		return say(why, len, name, ": the tool's inputSchema declares no such header");
	if (!d->value || json_is_null(d->value))
		return say(why, len, name, " is sent, but the body has no value there");
	got = mcp_param__value(value, &n, &bad);
	if (!got)
		return say(why, len, name, ": the value %s", bad ? bad : "cannot be read");
	same = says(d->value, got, n, &bad);
	free(got);
	if (bad)
		return say(why, len, name, ": %s", bad);
	return same ? NULL : say(why, len, name, " disagrees with the body's value");
}

const char *mcp_param__check(const struct mcp_param *s, const char *tool, const json_t *args,
			     const struct mcp_param_hdrs *h, char *why, size_t len)
{
	const json_t *schema = tool ? json_object_get(s->tools, tool) : NULL;
	struct scan sc = { .n = 0 };

	if (!h->n)
		return NULL;
	if (h->more)
		return say(why, len, "*", ": more than %d such headers", MCP_PARAM_MAX_HDRS);
	if (!schema)
		return say(why, len, h->h[0].name,
			   ": this tool's inputSchema was not listed through mcpfence: list the "
			   "tools (tools/list), then call again");
	visit(&sc, schema, args, true, 0);
	if (sc.bad)
		return say(why, len, h->h[0].name, ": the tool's inputSchema is invalid (%s)",
			   sc.bad);
	for (size_t i = 0; i < h->n; i++) {
		const struct decl *d = NULL;

		for (size_t j = 0; j < i; j++)
			if (name_eq(h->h[j].name, h->h[i].name))
				return say(why, len, h->h[i].name, " is sent twice");
		for (size_t j = 0; j < sc.n && !d; j++)
			if (name_eq(sc.d[j].name, h->h[i].name))
				d = &sc.d[j];
		if (check_one(d, h->h[i].name, h->h[i].value, why, len))
			return why;
	}
	return NULL;
}
