// SPDX-License-Identifier: Apache-2.0
/* jsonrpc: line framing and message classification for the MCP stdio transport. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "jsonrpc.h"
#include "text.h"

#define READ_CHUNK (64u << 10)
#define SHRINK_ABOVE (1u << 20)

void jsonrpc__reader_init(struct jr_reader *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	r->max = max ? max : JSONRPC_MAX_LINE;
}

void jsonrpc__reader_free(struct jr_reader *r)
{
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

/* Move what is unread to the front, and give back a large buffer once it is mostly empty. */
static void reader_compact(struct jr_reader *r)
{
	size_t held = r->len - r->off;

	if (r->off) {
		memmove(r->buf, r->buf + r->off, held);
		r->scan = r->scan > r->off ? r->scan - r->off : 0;
		r->len = held;
		r->off = 0;
	}
	if (r->cap > SHRINK_ABOVE && held < READ_CHUNK) {
		char *nb = realloc(r->buf, 2 * READ_CHUNK);

		if (nb) {
			r->buf = nb;
			r->cap = 2 * READ_CHUNK;
		}
	}
}

static int reader_reserve(struct jr_reader *r, size_t more)
{
	size_t need, cap;
	char *nb;

	reader_compact(r);
	need = r->len + more;
	if (need <= r->cap)
		return 0;
	cap = r->cap ? r->cap : 2 * READ_CHUNK;
	while (cap < need)
		cap *= 2;
	nb = realloc(r->buf, cap);
	if (!nb)
		return -ENOMEM;
	r->buf = nb;
	r->cap = cap;
	return 0;
}

long jsonrpc__reader_fill(struct jr_reader *r, int fd)
{
	ssize_t n;
	int err;

	err = reader_reserve(r, READ_CHUNK);
	if (err)
		return err;
	n = read(fd, r->buf + r->len, r->cap - r->len);
	if (n < 0)
		return -errno;
	r->len += n;
	return n;
}

int jsonrpc__reader_feed(struct jr_reader *r, const void *data, size_t len)
{
	int err = reader_reserve(r, len);

	if (err)
		return err;
	memcpy(r->buf + r->len, data, len);
	r->len += len;
	return 0;
}

bool jsonrpc__reader_has_line(struct jr_reader *r)
{
	size_t from = r->scan > r->off ? r->scan : r->off;

	if (r->len > from && memchr(r->buf + from, '\n', r->len - from))
		return true;
	r->scan = r->len; /* not searched again */
	return false;
}

enum jr_line jsonrpc__next_line(struct jr_reader *r, bool eof, const char **line, size_t *len)
{
	size_t from = r->scan > r->off ? r->scan : r->off;
	size_t held = r->len - r->off;
	char *nl = NULL;

	if (!held)
		return JR_LINE_NONE;
	if (r->len > from)
		nl = memchr(r->buf + from, '\n', r->len - from);
	*line = r->buf + r->off;
	if (nl) {
		size_t n = nl - (r->buf + r->off);
		bool part = r->oversize;

		*len = n;
		r->off += n + 1;
		r->scan = r->off;
		r->oversize = false;
		return part ? JR_LINE_PART_END : JR_LINE_WHOLE;
	}
	r->scan = r->len;
	if (eof) {
		bool part = r->oversize;

		*len = held;
		r->off = r->len;
		r->oversize = false;
		return part ? JR_LINE_PART_END : JR_LINE_WHOLE;
	}
	if (r->oversize || held > r->max) {
		/* too long to keep whole: hand out what is held, the rest follows in parts */
		r->oversize = true;
		*len = held;
		r->off = r->len;
		return JR_LINE_PART;
	}
	return JR_LINE_NONE;
}

#define FOLD_OTHER 0x110000u /* any non-ASCII character that folds to no ASCII letter */

/* The next character of [*p, end) (valid UTF-8, as jansson hands it out), folded. */
static uint32_t fold_next(const unsigned char **p, const unsigned char *end)
{
	uint32_t c = *(*p)++, cp;
	int n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;

	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
	cp = c & (0x3f >> n);
	for (; n > 0 && *p < end; n--)
		cp = cp << 6 | (*(*p)++ & 0x3f);
	switch (cp) {
	case 0x17f: /* long s */
		return 's';
	case 0x212a: /* Kelvin sign */
		return 'k';
	case 0x130: /* capital I with dot above */
	case 0x131: /* dotless i */
		return 'i';
	}
	return FOLD_OTHER;
}

bool jsonrpc__key_folds_to(const char *key, size_t klen, const char *target, size_t tlen)
{
	const unsigned char *k = (const unsigned char *)key, *ke = k + klen;
	const unsigned char *t = (const unsigned char *)target, *te = t + tlen;

	if (klen == tlen && !memcmp(key, target, klen))
		return false;
	/* most keys differ in their first character, both ASCII: the same answer, sooner */
	if (klen && tlen && k[0] < 0x80 && t[0] < 0x80 && (k[0] | 0x20) != (t[0] | 0x20))
		return false;
	while (k < ke && t < te)
		if (fold_next(&k, ke) != fold_next(&t, te))
			return false;
	return k == ke && t == te;
}

/* The keys of a message object, or of its params, that must be read as written. */
struct fold_key {
	const char *name;
	size_t len;
};
#define FOLD_KEY(s)              \
	{                        \
		s, sizeof(s) - 1 \
	}
static const struct fold_key msg_keys[] = { FOLD_KEY("jsonrpc"), FOLD_KEY("id"),
					    FOLD_KEY("method"),	 FOLD_KEY("params"),
					    FOLD_KEY("result"),	 FOLD_KEY("error"),
					    { NULL, 0 } };
static const struct fold_key params_keys[] = { FOLD_KEY("name"),
					       FOLD_KEY("arguments"),
					       { NULL, 0 } };

/* jsonrpc__key_folds_to for an ASCII key and target of n bytes each: only A-Z fold. */
static bool ascii_folds_to(const char *key, const char *target, size_t n)
{
	bool differ = false;

	for (size_t i = 0; i < n; i++) {
		unsigned char a = key[i], b = target[i];

		if (a == b)
			continue;
		if (a >= 'A' && a <= 'Z')
			a += 'a' - 'A';
		if (b >= 'A' && b <= 'Z')
			b += 'a' - 'A';
		if (a != b)
			return false;
		differ = true;
	}
	return differ;
}

/*
 * A key of obj that folds to one of keys[] without being it: its name in err, -EINVAL. An
 * ASCII key folds only to a target of its length (only a few non-ASCII characters fold to an
 * ASCII letter): most keys are settled by their length.
 */
static int check_folded(const json_t *obj, const struct fold_key *keys, const char *where,
			char *err, size_t errlen)
{
	const char *key;
	size_t klen;
	json_t *v;

	json_object_keylen_foreach((json_t *)obj, key, klen, v)
	{
		bool ascii = true;

		for (size_t i = 0; i < klen && ascii; i++)
			ascii = !(key[i] & 0x80);
		for (size_t i = 0; keys[i].name; i++) {
			if (ascii ? klen != keys[i].len ||
					    !ascii_folds_to(key, keys[i].name, klen) :
				    !jsonrpc__key_folds_to(key, klen, keys[i].name, keys[i].len))
				continue;
			snprintf(
				err, errlen,
				"%s key \"%.40s\" is \"%s\" to servers that match keys without regard "
				"to case",
				where, key, keys[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_message_keys(const json_t *msg, char *err, size_t errlen)
{
	const json_t *params = json_object_get(msg, "params");
	int rc;

	if (!json_is_object(msg))
		return 0;
	rc = check_folded(msg, msg_keys, "message", err, errlen);
	if (!rc && json_is_object(params))
		rc = check_folded(params, params_keys, "params", err, errlen);
	return rc;
}

bool jsonrpc__blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return false;
	return true;
}

static void invalid(struct jr_msg *m, const char *why)
{
	m->kind = JR_INVALID;
	m->method = NULL;
	m->params = NULL;
	snprintf(m->err, sizeof(m->err), "%s", why);
}

static bool id_valid(const json_t *id)
{
	return json_is_string(id) || json_is_integer(id);
}

void jsonrpc__classify(json_t *v, struct jr_msg *m)
{
	json_t *ver, *method, *result, *error;

	m->root = v;
	m->method = NULL;
	m->id = NULL;
	m->params = NULL;
	m->err[0] = 0;
	if (json_is_array(v)) {
		m->kind = JR_BATCH;
		if (!json_array_size(v))
			invalid(m, "empty batch");
		return;
	}
	if (!json_is_object(v))
		return invalid(m, "a JSON-RPC message is an object");
	m->id = json_object_get(v, "id");
	ver = json_object_get(v, "jsonrpc");
	if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0"))
		return invalid(m, "\"jsonrpc\" must be \"2.0\"");
	method = json_object_get(v, "method");
	result = json_object_get(v, "result");
	error = json_object_get(v, "error");
	m->params = json_object_get(v, "params");
	if (method) {
		if (!json_is_string(method))
			return invalid(m, "\"method\" must be a string");
		if (result || error)
			return invalid(m, "a request has no \"result\" or \"error\"");
		if (m->params && !json_is_object(m->params) && !json_is_array(m->params))
			return invalid(m, "\"params\" must be an object or an array");
		if (m->id && !id_valid(m->id))
			return invalid(m, "\"id\" must be a string or an integer");
		m->method = json_string_value(method);
		m->kind = m->id ? JR_REQUEST : JR_NOTIFICATION;
		return;
	}
	m->params = NULL;
	if (!result == !error)
		return invalid(m, "a message needs \"method\", or one of \"result\" and \"error\"");
	if (!m->id || (!id_valid(m->id) && !(error && json_is_null(m->id))))
		return invalid(m, "a response needs a string or integer \"id\"");
	if (error && !json_is_object(error))
		return invalid(m, "\"error\" must be an object");
	m->kind = JR_RESPONSE;
}

/*
 * The plain reading: a scanner that says for certain what jansson and jsonrpc__classify make of
 * a line, for the lines it understands, and gives up on the others (they are parsed). It knows
 * no \u escape, no number longer than 15 characters or with an exponent, nothing deeper than
 * PLAIN_DEPTH: where jansson could refuse or decode, it gives up rather than guess.
 */
#define PLAIN_DEPTH 32

enum plain_type {
	PT_NONE = 0,
	PT_STRING = 1,
	PT_INTEGER = 2,
	PT_OTHER = 3, /* real, true, false */
	PT_NULL = 4,
	PT_OBJECT = 5,
	PT_ARRAY = 6,
};

struct plain {
	const unsigned char *p, *end;
	/* the quick reading of a call (jsonrpc__plain_call): objects hold no key twice */
	bool unique;
};

static void plain_ws(struct plain *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\r'))
		s->p++;
}

/* A string at s->p ('"'): false when not one the plain reading knows. */
static bool plain_string(struct plain *s)
{
	const unsigned char *p = s->p + 1;

	while (p < s->end) {
		unsigned char c;
		size_t l;

		p += text__plain_words(p, s->end - p);
		while (p < s->end && text__plain_byte[*p])
			p++;
		if (p >= s->end)
			break;
		c = *p;
		if (c == '"') {
			s->p = p + 1;
			return true;
		}
		if (c == '\\') {
			if (p + 1 >= s->end || !strchr("\"\\/bfnrt", p[1]) || !p[1])
				return false;
			p += 2;
			continue;
		}
		if (c < 0x20)
			return false;
		l = c < 0x80 ? 1 : text__utf8_seq(p, s->end - p);
		if (!l)
			return false;
		p += l;
	}
	return false;
}

static bool plain_number(struct plain *s, enum plain_type *t)
{
	const unsigned char *p = s->p, *digits;

	if (*p == '-')
		p++;
	digits = p;
	while (p < s->end && *p >= '0' && *p <= '9')
		p++;
	if (p == digits || (*digits == '0' && p - digits > 1))
		return false;
	*t = PT_INTEGER;
	if (p < s->end && *p == '.') {
		digits = ++p;
		while (p < s->end && *p >= '0' && *p <= '9')
			p++;
		if (p == digits)
			return false;
		*t = PT_OTHER;
	}
	if (p - s->p > 15 || (p < s->end && (*p == 'e' || *p == 'E')))
		return false;
	s->p = p;
	return true;
}

static bool plain_literal(struct plain *s, const char *word, enum plain_type type,
			  enum plain_type *t)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n))
		return false;
	s->p += n;
	*t = type;
	return true;
}

/* The keys of the top level that classify reads, and the type of the last value of each. */
struct plain_top {
	enum plain_type jsonrpc, id, method, params, result, error;
	bool version; /* the last "jsonrpc" is "2.0" */
};

static bool plain_value(struct plain *s, int depth, enum plain_type *t, struct plain_top *top);

static bool key_is(const unsigned char *key, size_t klen, const char *name)
{
	return klen == strlen(name) && !memcmp(key, name, klen);
}

/*
 * A key of the top level and the type of its value (the last one of a key wins, as jansson
 * reads duplicates). A key with an escape is none of these: none has a character to escape.
 */
static void plain_note(struct plain_top *top, const unsigned char *key, size_t klen,
		       enum plain_type t, bool is_2_0)
{
	if (key_is(key, klen, "jsonrpc")) {
		top->jsonrpc = t;
		top->version = is_2_0;
	} else if (key_is(key, klen, "id")) {
		top->id = t;
	} else if (key_is(key, klen, "method")) {
		top->method = t;
	} else if (key_is(key, klen, "params")) {
		top->params = t;
	} else if (key_is(key, klen, "result")) {
		top->result = t;
	} else if (key_is(key, klen, "error")) {
		top->error = t;
	}
}

/* The key at s->p ('"'): its bytes as written in *key, *klen; then past its ':'. */
static bool plain_key(struct plain *s, const unsigned char **key, size_t *klen)
{
	*key = s->p + 1;
	if (s->p >= s->end || *s->p != '"' || !plain_string(s))
		return false;
	*klen = s->p - 1 - *key;
	plain_ws(s);
	if (s->p >= s->end || *s->p != ':')
		return false;
	s->p++;
	plain_ws(s);
	return true;
}

/*
 * Is key, of an object, none of the n keys before it (keys[], lens[]), which it joins? False
 * also for a key with an escape (another spelling could be the same key) or past the 32nd
 * key: not sure.
 */
#define UNIQUE_KEYS 32
static bool key_new(const unsigned char **keys, size_t *lens, size_t *n, const unsigned char *key,
		    size_t klen)
{
	if (*n == UNIQUE_KEYS || memchr(key, '\\', klen))
		return false;
	for (size_t i = 0; i < *n; i++)
		if (lens[i] == klen && !memcmp(keys[i], key, klen))
			return false;
	keys[*n] = key;
	lens[(*n)++] = klen;
	return true;
}

/* An object or array at s->p; top: note the keys (the top level). */
static bool plain_container(struct plain *s, int depth, struct plain_top *top)
{
	const unsigned char *keys[UNIQUE_KEYS];
	bool object = *s->p == '{';
	char close = object ? '}' : ']';
	size_t lens[UNIQUE_KEYS], nkeys = 0;
	enum plain_type vt;

	if (depth > PLAIN_DEPTH)
		return false;
	s->p++;
	plain_ws(s);
	if (s->p < s->end && *s->p == close) {
		s->p++;
		return true;
	}
	for (;;) {
		const unsigned char *key = NULL, *value;
		size_t klen = 0;

		if (object && (!plain_key(s, &key, &klen) ||
			       (s->unique && !key_new(keys, lens, &nkeys, key, klen))))
			return false;
		value = s->p;
		if (!plain_value(s, depth + 1, &vt, NULL))
			return false;
		if (top && key)
			plain_note(top, key, klen, vt,
				   s->p - value == 5 && !memcmp(value, "\"2.0\"", 5));
		plain_ws(s);
		if (s->p >= s->end)
			return false;
		if (*s->p == close) {
			s->p++;
			return true;
		}
		if (*s->p != ',')
			return false;
		s->p++;
		plain_ws(s);
	}
}

static bool plain_value(struct plain *s, int depth, enum plain_type *t, struct plain_top *top)
{
	bool ok;

	if (s->p >= s->end)
		return false;
	switch (*s->p) {
	case '"':
		*t = PT_STRING;
		return plain_string(s);
	case '{':
	case '[':
		*t = *s->p == '{' ? PT_OBJECT : PT_ARRAY;
		return plain_container(s, depth, top);
	case 't':
		ok = plain_literal(s, "true", PT_OTHER, t);
		break;
	case 'f':
		ok = plain_literal(s, "false", PT_OTHER, t);
		break;
	case 'n':
		ok = plain_literal(s, "null", PT_NULL, t);
		break;
	default:
		ok = (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) && plain_number(s, t);
	}
	/* "truex", "1x": one token for jansson, and not JSON */
	return ok && (s->p >= s->end ||
		      !((*s->p >= 'a' && *s->p <= 'z') || (*s->p >= 'A' && *s->p <= 'Z') ||
			(*s->p >= '0' && *s->p <= '9') || *s->p == '.'));
}

enum jr_kind jsonrpc__plain_kind(const char *line, size_t len)
{
	struct plain s = { (const unsigned char *)line, (const unsigned char *)line + len };
	struct plain_top top = { 0 };
	enum plain_type t;
	bool id_ok;

	plain_ws(&s);
	if (s.p >= s.end || *s.p != '{' || !plain_value(&s, 0, &t, &top))
		return JR_INVALID;
	plain_ws(&s);
	if (s.p != s.end || !top.version)
		return JR_INVALID;
	id_ok = top.id == PT_STRING || top.id == PT_INTEGER;
	if (top.method) {
		if (top.method != PT_STRING || top.result || top.error)
			return JR_INVALID;
		if (top.params && top.params != PT_OBJECT && top.params != PT_ARRAY)
			return JR_INVALID;
		if (top.id && !id_ok)
			return JR_INVALID;
		return top.id ? JR_REQUEST : JR_NOTIFICATION;
	}
	if (!top.result == !top.error)
		return JR_INVALID;
	if (!top.id || (!id_ok && !(top.error && top.id == PT_NULL)))
		return JR_INVALID;
	if (top.error && top.error != PT_OBJECT)
		return JR_INVALID;
	return JR_RESPONSE;
}

/* The quick reading of a tools/call (jsonrpc__plain_call): the members a call has. */

/* The key at s->p, with no escape: its bytes in *key, *klen; then past its ':'. */
static bool call_key(struct plain *s, const unsigned char **key, size_t *klen)
{
	return plain_key(s, key, klen) && !memchr(*key, '\\', *klen);
}

/*
 * After a member: true at '}' (taken); false at ',' (taken, and the space after it) with *ok;
 * *ok false otherwise.
 */
static bool call_next(struct plain *s, bool *ok)
{
	plain_ws(s);
	*ok = s->p < s->end && (*s->p == '}' || *s->p == ',');
	if (!*ok || *s->p++ == '}')
		return *ok;
	plain_ws(s);
	return false;
}

static int key_index(const unsigned char *key, size_t klen, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		if (key_is(key, klen, names[i]))
			return i;
	return -1;
}

/* The literal value at s->p is these bytes exactly (a string with its quotes). */
static bool literal(struct plain *s, const char *want)
{
	size_t n = strlen(want);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, want, n))
		return false;
	s->p += n;
	return true;
}

static bool call_params(struct plain *s, struct jr_call_view *v)
{
	static const char *const names[] = { "name", "arguments", "_meta", NULL };
	bool seen[3] = { false }, ok;
	enum plain_type t;

	if (s->p >= s->end || *s->p != '{')
		return false;
	s->p++;
	plain_ws(s);
	do {
		const unsigned char *key, *at;
		size_t klen;
		int i;

		if (!call_key(s, &key, &klen) || (i = key_index(key, klen, names)) < 0 || seen[i])
			return false;
		seen[i] = true;
		at = s->p;
		if (i == 0) {
			if (s->p >= s->end || *s->p != '"' || !plain_string(s) ||
			    memchr(at + 1, '\\', s->p - at - 2))
				return false;
			v->tool = (const char *)at + 1;
			v->tool_len = s->p - at - 2;
		} else if (s->p >= s->end || *s->p != '{' || !plain_value(s, 2, &t, NULL)) {
			return false;
		}
	} while (!call_next(s, &ok) && ok);
	return ok && seen[0];
}

bool jsonrpc__plain_call(const char *line, size_t len, struct jr_call_view *v)
{
	static const char *const names[] = { "jsonrpc", "id", "method", "params", NULL };
	struct plain s = { (const unsigned char *)line, (const unsigned char *)line + len, true };
	bool seen[4] = { false }, ok;
	enum plain_type t;

	/* a CR that ends the line is a CRLF's */
	if (len > 1 && memchr(line, '\r', len - 1))
		return false;
	plain_ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return false;
	s.p++;
	plain_ws(&s);
	do {
		const unsigned char *key, *at;
		size_t klen;
		int i;

		if (!call_key(&s, &key, &klen) || (i = key_index(key, klen, names)) < 0 || seen[i])
			return false;
		seen[i] = true;
		at = s.p;
		switch (i) {
		case 0:
			if (!literal(&s, "\"2.0\""))
				return false;
			break;
		case 1:
			if (!plain_value(&s, 1, &t, NULL) ||
			    (t != PT_INTEGER &&
			     (t != PT_STRING || memchr(at + 1, '\\', s.p - at - 2))))
				return false;
			break;
		case 2:
			if (!literal(&s, "\"tools/call\""))
				return false;
			break;
		default:
			if (!call_params(&s, v))
				return false;
		}
	} while (!call_next(&s, &ok) && ok);
	if (!ok || !seen[0] || !seen[1] || !seen[2] || !seen[3])
		return false;
	plain_ws(&s);
	return s.p == s.end;
}

/*
 * The fast load: the value jansson would build, for lines the plain reading knows (no \u
 * escape, integers of at most 15 characters, no real, depth 32), built without jansson's
 * lexer, which takes about 150 instructions a byte. NULL: not sure, or not JSON, or a
 * duplicate key in strict mode; jansson then reads the line and says what is wrong, as before.
 */
struct fast {
	struct plain s;
	bool strict; /* a duplicate key: not sure (jansson refuses it) */
};

static json_t *fast_value(struct fast *f, int depth);

/* The string at f->s.p ('"'), decoded: in *out (n bytes, *own to free when it had escapes). */
static bool fast_string(struct fast *f, const char **out, size_t *n, char **own)
{
	struct plain s = { f->s.p, f->s.end };
	const unsigned char *from = f->s.p + 1, *q;
	char *d;

	*own = NULL;
	if (!plain_string(&s))
		return false;
	f->s.p = s.p;
	*out = (const char *)from;
	*n = s.p - 1 - from;
	if (!memchr(from, '\\', *n))
		return true;
	d = malloc(*n);
	if (!d)
		return false;
	*own = d;
	*out = d;
	for (q = from; q < s.p - 1; q++) {
		if (*q != '\\') {
			*d++ = *q;
			continue;
		}
		switch (*++q) {
		case 'b':
			*d++ = '\b';
			break;
		case 'f':
			*d++ = '\f';
			break;
		case 'n':
			*d++ = '\n';
			break;
		case 'r':
			*d++ = '\r';
			break;
		case 't':
			*d++ = '\t';
			break;
		default: /* " \ / (plain_string let no other through) */
			*d++ = *q;
		}
	}
	*n = d - *own;
	return true;
}

static json_t *fast_object(struct fast *f, int depth)
{
	json_t *o = json_object(), *v;
	size_t klen, size;
	const char *key;
	char *own;

	f->s.p++;
	plain_ws(&f->s);
	if (f->s.p < f->s.end && *f->s.p == '}') {
		f->s.p++;
		return o;
	}
	while (o) {
		if (f->s.p >= f->s.end || *f->s.p != '"' || !fast_string(f, &key, &klen, &own))
			goto out_fail;
		plain_ws(&f->s);
		v = NULL;
		if (f->s.p < f->s.end && *f->s.p == ':') {
			f->s.p++;
			plain_ws(&f->s);
			v = fast_value(f, depth + 1);
		}
		/*
		 * a key set again replaces its value: strict, that is a duplicate. The set takes v,
		 * also when it fails (no memory).
		 */
		size = json_object_size(o);
		if (!v || json_object_setn_new_nocheck(o, key, klen, v) ||
		    (f->strict && json_object_size(o) == size)) {
			free(own);
			goto out_fail;
		}
		free(own);
		plain_ws(&f->s);
		if (f->s.p < f->s.end && *f->s.p == '}') {
			f->s.p++;
			return o;
		}
		if (f->s.p >= f->s.end || *f->s.p != ',')
			goto out_fail;
		f->s.p++;
		plain_ws(&f->s);
	}
out_fail:
	json_decref(o);
	return NULL;
}

static json_t *fast_array(struct fast *f, int depth)
{
	json_t *a = json_array(), *v;

	f->s.p++;
	plain_ws(&f->s);
	if (f->s.p < f->s.end && *f->s.p == ']') {
		f->s.p++;
		return a;
	}
	while (a) {
		v = fast_value(f, depth + 1);
		if (!v || json_array_append_new(a, v))
			goto out_fail;
		plain_ws(&f->s);
		if (f->s.p < f->s.end && *f->s.p == ']') {
			f->s.p++;
			return a;
		}
		if (f->s.p >= f->s.end || *f->s.p != ',')
			goto out_fail;
		f->s.p++;
		plain_ws(&f->s);
	}
out_fail:
	json_decref(a);
	return NULL;
}

static json_t *fast_value(struct fast *f, int depth)
{
	struct plain s = { f->s.p, f->s.end };
	enum plain_type t;
	const char *str;
	char num[24], *own;
	size_t n;
	json_t *v;

	if (f->s.p >= f->s.end || depth > PLAIN_DEPTH)
		return NULL;
	switch (*f->s.p) {
	case '{':
		return fast_object(f, depth);
	case '[':
		return fast_array(f, depth);
	case '"':
		if (!fast_string(f, &str, &n, &own))
			return NULL;
		/* jansson refuses a NUL, which only \u0000 could write: not plain */
		v = json_stringn_nocheck(str, n);
		free(own);
		return v;
	}
	if (!plain_value(&s, depth, &t, NULL))
		return NULL;
	if (t == PT_OTHER && *f->s.p != 't' && *f->s.p != 'f')
		return NULL; /* a real: what jansson's strtod makes of it is its own */
	n = s.p - f->s.p;
	f->s.p = s.p;
	switch (t) {
	case PT_INTEGER:
		memcpy(num, s.p - n, n);
		num[n] = 0;
		return json_integer(strtoll(num, NULL, 10));
	case PT_NULL:
		return json_null();
	default:
		return json_boolean(n == 4);
	}
}

static json_t *fast_load(const char *line, size_t len, bool strict)
{
	struct fast f = { { (const unsigned char *)line, (const unsigned char *)line + len },
			  strict };
	json_t *v;

	plain_ws(&f.s);
	if (f.s.p >= f.s.end || (*f.s.p != '{' && *f.s.p != '['))
		return NULL;
	v = fast_value(&f, 0);
	plain_ws(&f.s);
	if (v && f.s.p != f.s.end) {
		json_decref(v);
		return NULL;
	}
	return v;
}

int jsonrpc__parse(const char *line, size_t len, unsigned flags, struct jr_msg *m)
{
	size_t jflags = JSON_DECODE_ANY;
	json_error_t jerr;
	json_t *v;

	const char *cr;
	int rc = 0;

	memset(m, 0, sizeof(*m));
	if (flags & JR_STRICT)
		jflags |= JSON_REJECT_DUPLICATES;
	v = fast_load(line, len, flags & JR_STRICT);
	if (!v)
		v = json_loadb(line, len, jflags, &jerr);
	if (!v) {
		snprintf(m->err, sizeof(m->err), "not JSON: %.100s at byte %d", jerr.text,
			 jerr.position);
		m->kind = JR_INVALID;
		return -EINVAL;
	}
	if (flags & JR_STRICT) {
		/* a CR that ends the line is a CRLF; one before that ends a line for some servers */
		cr = len > 1 ? memchr(line, '\r', len - 1) : NULL;
		if (cr) {
			snprintf(
				m->err, sizeof(m->err),
				"a bare CR at byte %zu: servers that read universal newlines end the "
				"line there",
				(size_t)(cr - line));
			rc = -EINVAL;
		}
		for (size_t i = 0; !rc && json_is_array(v) && i < json_array_size(v); i++)
			rc = check_message_keys(json_array_get(v, i), m->err, sizeof(m->err));
		if (!rc)
			rc = check_message_keys(v, m->err, sizeof(m->err));
		if (rc) {
			json_decref(v);
			m->kind = JR_INVALID;
			return rc;
		}
	}
	jsonrpc__classify(v, m);
	return 0;
}

void jsonrpc__msg_free(struct jr_msg *m)
{
	json_decref(m->root);
	m->root = NULL;
	m->id = NULL;
	m->params = NULL;
	m->method = NULL;
}

char *jsonrpc__dump_line(const json_t *v, size_t *len)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t n;
	char *out;

	if (!s)
		return NULL;
	n = strlen(s);
	out = realloc(s, n + 2);
	if (!out) {
		free(s);
		return NULL;
	}
	out[n] = '\n';
	out[n + 1] = 0;
	*len = n + 1;
	return out;
}

json_t *jsonrpc__error(const json_t *id, int code, const char *message)
{
	json_t *jid = id ? (json_t *)id : json_null();

	return json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", jid, "error", "code",
			 code, "message", message);
}

const char *jsonrpc__request_revision(const json_t *params)
{
	json_t *meta = json_object_get(params, "_meta");

	return json_string_value(json_object_get(meta, MCP_META_PROTOCOL_VERSION));
}

json_t *jsonrpc__result(const json_t *id, json_t *result)
{
	return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", (json_t *)id, "result", result);
}

void jsonrpc__id_text(const json_t *id, char *buf, size_t size)
{
	size_t n;

	/* an integer as jansson's dump writes it ("%" JSON_INTEGER_FORMAT), without its dump */
	if (json_is_integer(id) && size >= 21) {
		json_int_t v = json_integer_value(id);
		unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
		char tmp[24], *p = tmp + sizeof(tmp);

		do
			*--p = (char)('0' + u % 10);
		while (u /= 10);
		if (v < 0)
			*--p = '-';
		memcpy(buf, p, tmp + sizeof(tmp) - p);
		buf[tmp + sizeof(tmp) - p] = 0;
		return;
	}
	if (json_is_integer(id)) {
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(id));
		return;
	}
	n = id ? json_dumpb(id, buf, size - 1, JSON_COMPACT | JSON_ENCODE_ANY) : 0;

	if (!n || n >= size)
		snprintf(buf, size, "%s", id ? "\"(id too long)\"" : "null");
	else
		buf[n] = 0;
}
