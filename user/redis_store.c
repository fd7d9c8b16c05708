// SPDX-License-Identifier: Apache-2.0
/*
 * redis_store: budgets in Redis, through hiredis (Debian's libhiredis): one blocking connection
 * per server, three Lua scripts loaded at connect and called by their SHA-1 (loaded again when
 * the server answers NOSCRIPT, after a restart or a SCRIPT FLUSH). A failure drops the
 * connection; the next operation makes it again, but not within a second of the failure, so
 * that a Redis that is down costs each call one quick error, not a timeout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <hiredis/hiredis.h>
#include "clock.h"
#include "redis_store.h"

#define RETRY_MS 1000
#define SCRIPT_RESERVE 0
#define SCRIPT_RELEASE 1
#define SCRIPT_CHARGE 2
#define NSCRIPTS 3

/*
 * reserve: KEYS the budgets, ARGV max and ttl of each in turn. 0 when every one had room and
 * was taken (a key named twice once), else an array of 0/1: 1 for each without room.
 */
static const char *const scripts[NSCRIPTS] = {
	"local full, any = {}, false\n"
	"for i = 1, #KEYS do\n"
	"  local used = tonumber(redis.call('GET', KEYS[i]) or '0')\n"
	"  if used + 1 > tonumber(ARGV[2 * i - 1]) then full[i] = 1; any = true else full[i] = 0 end\n"
	"end\n"
	"if any then return full end\n"
	"local seen = {}\n"
	"for i = 1, #KEYS do\n"
	"  if not seen[KEYS[i]] then\n"
	"    seen[KEYS[i]] = true\n"
	"    redis.call('INCR', KEYS[i])\n"
	"    redis.call('EXPIRE', KEYS[i], ARGV[2 * i])\n"
	"  end\n"
	"end\n"
	"return 0\n",
	/* release: KEYS given back one unit each; a key at 0 or gone is left alone */
	"for i = 1, #KEYS do\n"
	"  local used = tonumber(redis.call('GET', KEYS[i]) or '0')\n"
	"  if used > 0 then redis.call('DECR', KEYS[i]) end\n"
	"end\n"
	"return 0\n",
	/* charge: KEYS[1] counts one more, whatever its max; ARGV[1] its ttl */
	"local used = redis.call('INCR', KEYS[1])\n"
	"redis.call('EXPIRE', KEYS[1], ARGV[1])\n"
	"return used\n",
};

struct redis_store {
	struct redis_conf c;
	redisContext *ctx;
	uint64_t next_try_ms; /* after a failure: no new connection before */
	char sha[NSCRIPTS][41];
	char err[REDIS_ERR_LEN];
};

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* %XX decoded into a new string; NULL (why says so) on a bad escape, a NUL or no memory. */
static char *pct_decode(const char *s, size_t n, const char *what, char *why, size_t len)
{
	char *out = malloc(n + 1);
	size_t o = 0;

	if (!out) {
		snprintf(why, len, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		hi = i + 2 < n ? hex_val(s[i + 1]) : -1;
		lo = i + 2 < n ? hex_val(s[i + 2]) : -1;
		if (hi < 0 || lo < 0 || !(hi | lo)) {
			snprintf(why, len, "the %s has a bad %%-escape (%%XX, not %%00)", what);
			free(out);
			return NULL;
		}
		out[o++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[o] = 0;
	return out;
}

static bool all_digits(const char *s, size_t n)
{
	if (!n || n > 9)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

int redis_conf__parse_url(const char *url, struct redis_conf *c, char *why, size_t len)
{
	const char *p, *auth_end, *at = NULL, *host, *host_end, *port = NULL, *colon;
	char shown[300], *h = NULL, *user = NULL, *pass = NULL;
	size_t hlen;
	long portv = REDIS_DEFAULT_PORT, db = 0;

	if (!strncmp(url, "rediss://", 9)) {
		snprintf(why, len,
			 "TLS (rediss://) is not supported: this build's hiredis has no TLS; reach "
			 "Redis over a private network or through a local TLS tunnel (redis://)");
		return -EINVAL;
	}
	if (strncmp(url, "redis://", 8)) {
		snprintf(why, len, "must be redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]");
		return -EINVAL;
	}
	p = url + 8;
	auth_end = p + strcspn(p, "/?#");
	for (const char *q = p; q < auth_end; q++)
		if (*q == '@')
			at = q;
	if (*auth_end == '?' || *auth_end == '#') {
		snprintf(why, len,
			 "has a query or fragment (\"%c...\"), which mcpfence does not read",
			 *auth_end);
		return -EINVAL;
	}
	host = p;
	if (at) {
		const char *ucolon = memchr(p, ':', (size_t)(at - p));

		if (!ucolon) {
			snprintf(why, len,
				 "the part before '@' must be USER:PASSWORD or :PASSWORD");
			return -EINVAL;
		}
		if (ucolon > p && !(user = pct_decode(p, (size_t)(ucolon - p), "user", why, len)))
			return -EINVAL;
		pass = pct_decode(ucolon + 1, (size_t)(at - ucolon - 1), "password", why, len);
		if (!pass)
			goto fail;
		if (!*pass) {
			snprintf(why, len, "the password after ':' is empty");
			goto fail;
		}
		host = at + 1;
	}
	if (*host == '[') {
		host_end = memchr(host, ']', (size_t)(auth_end - host));
		if (!host_end || host_end == host + 1) {
			snprintf(why, len, "an IPv6 address must be whole in brackets: [::1]");
			goto fail;
		}
		h = strndup(host + 1, (size_t)(host_end - host - 1));
		colon = host_end + 1 < auth_end ? host_end + 1 : NULL;
		if (colon && *colon != ':') {
			snprintf(why, len, "after the IPv6 address's ']' comes ':PORT' or nothing");
			goto fail;
		}
	} else {
		colon = memchr(host, ':', (size_t)(auth_end - host));
		host_end = colon ? colon : auth_end;
		h = strndup(host, (size_t)(host_end - host));
	}
	if (!h) {
		snprintf(why, len, "out of memory");
		goto fail;
	}
	hlen = strlen(h);
	if (!hlen) {
		snprintf(why, len, "names no host");
		goto fail;
	}
	for (size_t i = 0; i < hlen; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:",
			    h[i])) {
			snprintf(why, len,
				 "the host has a character a host name or address cannot have");
			goto fail;
		}
	if (colon) {
		port = colon + 1;
		if (!all_digits(port, (size_t)(auth_end - port)) ||
		    (portv = strtol(port, NULL, 10)) < 1 || portv > 65535) {
			snprintf(why, len, "the port must be a number from 1 to 65535");
			goto fail;
		}
	}
	if (*auth_end == '/' && auth_end[1]) {
		const char *d = auth_end + 1;

		if (!all_digits(d, strlen(d)) || (db = strtol(d, NULL, 10)) > 9999) {
			snprintf(why, len,
				 "the database after '/' must be a number from 0 to 9999");
			goto fail;
		}
	}
	snprintf(shown, sizeof(shown), "redis://%s%s%s%s%s:%ld/%ld", user ? user : "",
		 pass ? ":(password)@" : "", strchr(h, ':') ? "[" : "", h,
		 strchr(h, ':') ? "]" : "", portv, db);
	free(c->url);
	free(c->shown);
	free(c->host);
	free(c->user);
	free(c->password);
	c->url = strdup(url);
	c->shown = strdup(shown);
	c->host = h;
	c->user = user;
	c->password = pass;
	c->port = (int)portv;
	c->db = (int)db;
	if (!c->url || !c->shown) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	return 0;
fail:
	free(h);
	free(user);
	free(pass);
	return -EINVAL;
}

void redis_conf__free(struct redis_conf *c)
{
	if (!c)
		return;
	free(c->url);
	free(c->shown);
	free(c->host);
	free(c->user);
	if (c->password)
		memset(c->password, 0, strlen(c->password));
	free(c->password);
	free(c->prefix);
	memset(c, 0, sizeof(*c));
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d = s ? strdup(s) : NULL;

	if (s && !d)
		*oom = true;
	return d;
}

struct redis_store *redis_store__new(const struct redis_conf *c)
{
	struct redis_store *s = calloc(1, sizeof(*s));
	bool oom = false;

	if (!s)
		return NULL;
	s->c = *c;
	s->c.url = dup_or_null(c->url, &oom);
	s->c.shown = dup_or_null(c->shown, &oom);
	s->c.host = dup_or_null(c->host, &oom);
	s->c.user = dup_or_null(c->user, &oom);
	s->c.password = dup_or_null(c->password, &oom);
	s->c.prefix = dup_or_null(c->prefix ? c->prefix : REDIS_DEFAULT_PREFIX, &oom);
	if (!s->c.timeout_ms)
		s->c.timeout_ms = REDIS_DEFAULT_TIMEOUT_MS;
	if (oom || !s->c.shown || !s->c.host) {
		redis_store__free(s);
		return NULL;
	}
	return s;
}

void redis_store__free(struct redis_store *s)
{
	if (!s)
		return;
	if (s->ctx)
		redisFree(s->ctx);
	redis_conf__free(&s->c);
	free(s);
}

const struct redis_conf *redis_store__conf(const struct redis_store *s)
{
	return &s->c;
}

const char *redis_store__error(const struct redis_store *s)
{
	return s->err;
}

void redis_store__key(const struct redis_store *s, const uint8_t digest[32], uint64_t window_start,
		      char out[REDIS_KEY_MAX])
{
	static const char hex[] = "0123456789abcdef";
	char d[65];

	for (int i = 0; i < 32; i++) {
		d[2 * i] = hex[digest[i] >> 4];
		d[2 * i + 1] = hex[digest[i] & 15];
	}
	d[64] = 0;
	snprintf(out, REDIS_KEY_MAX, "%.200sb:%s:%llu", s->c.prefix, d,
		 (unsigned long long)window_start);
}

/* The connection is no good: say why, drop it, and wait a while before the next. */
static int store_fail(struct redis_store *s, int err, const char *fmt, const char *what)
{
	char msg[160];

	snprintf(msg, sizeof(msg), fmt, what ? what : "");
	snprintf(s->err, sizeof(s->err), "Redis at %.80s: %.100s", s->c.shown, msg);
	if (s->ctx) {
		redisFree(s->ctx);
		s->ctx = NULL;
	}
	s->next_try_ms = clock__mono_ms() + RETRY_MS;
	return err;
}

/* A reply of type want (or NULL after store_fail): the command as argv. */
static redisReply *command(struct redis_store *s, int argc, const char **argv, const size_t *lens)
{
	redisReply *r = redisCommandArgv(s->ctx, argc, argv, lens);

	if (!r)
		store_fail(s, -EIO, "%s", s->ctx->errstr[0] ? s->ctx->errstr : "no answer");
	return r;
}

/* command() of argc NUL-terminated words (8 at most). */
static redisReply *command_str(struct redis_store *s, int argc, const char **argv)
{
	size_t lens[8];

	for (int i = 0; i < argc && i < 8; i++)
		lens[i] = strlen(argv[i]);
	return command(s, argc < 8 ? argc : 8, argv, lens);
}

static int load_scripts(struct redis_store *s)
{
	for (int i = 0; i < NSCRIPTS; i++) {
		const char *argv[] = { "SCRIPT", "LOAD", scripts[i] };
		size_t lens[] = { 6, 4, strlen(scripts[i]) };
		redisReply *r = command(s, 3, argv, lens);

		if (!r)
			return -EIO;
		if (r->type != REDIS_REPLY_STRING || r->len != 40) {
			int err = store_fail(s, -EPROTO, "SCRIPT LOAD: %s",
					     r->type == REDIS_REPLY_ERROR ? r->str : "not a SHA-1");

			freeReplyObject(r);
			return err;
		}
		memcpy(s->sha[i], r->str, 40);
		s->sha[i][40] = 0;
		freeReplyObject(r);
	}
	return 0;
}

/* A command whose answer must be +OK (AUTH, SELECT). */
static int command_ok(struct redis_store *s, int argc, const char **argv, const char *what)
{
	redisReply *r;
	int err = 0;

	r = command_str(s, argc, argv);
	if (!r)
		return -EIO;
	if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK")) {
		char msg[140];

		snprintf(msg, sizeof(msg), "%s: %.120s", what,
			 r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected answer");
		err = store_fail(s, -EACCES, "%s", msg);
	}
	freeReplyObject(r);
	return err;
}

static int store_connect(struct redis_store *s)
{
	struct timeval tv = { s->c.timeout_ms / 1000, (s->c.timeout_ms % 1000) * 1000 };
	char db[16];
	int err;

	if (s->ctx)
		return 0;
	if (clock__mono_ms() < s->next_try_ms)
		return -EAGAIN; /* s->err still says why */
	s->ctx = redisConnectWithTimeout(s->c.host, s->c.port, tv);
	if (!s->ctx)
		return store_fail(s, -ENOMEM, "%s", "out of memory");
	if (s->ctx->err)
		return store_fail(s, -ECONNREFUSED, "%s", s->ctx->errstr);
	if (redisSetTimeout(s->ctx, tv) != REDIS_OK)
		return store_fail(s, -EIO, "%s", "cannot set its timeout");
	if (s->c.password) {
		const char *argv[] = { "AUTH", s->c.user ? s->c.user : s->c.password,
				       s->c.password };

		err = command_ok(s, s->c.user ? 3 : 2, argv, "AUTH refused");
		if (err)
			return err;
	}
	if (s->c.db) {
		const char *argv[] = { "SELECT", db };

		snprintf(db, sizeof(db), "%d", s->c.db);
		err = command_ok(s, 2, argv, "SELECT refused");
		if (err)
			return err;
	}
	err = load_scripts(s);
	if (!err)
		s->err[0] = 0;
	return err;
}

#define MAX_ARGS (3 + 32 + 64)

/* EVALSHA of script i with keys and args: the reply, or NULL (s->err says why). */
static redisReply *eval(struct redis_store *s, int script, size_t nkeys, const char *const keys[],
			size_t nargs, char args[][24])
{
	const char *argv[MAX_ARGS];
	size_t lens[MAX_ARGS];
	char nk[16];
	int argc = 0;

	if (3 + nkeys + nargs > MAX_ARGS) {
		snprintf(s->err, sizeof(s->err), "Redis at %.80s: too many budgets in one call",
			 s->c.shown);
		return NULL;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		redisReply *r;

		if (store_connect(s))
			return NULL;
		snprintf(nk, sizeof(nk), "%zu", nkeys);
		argc = 0;
		argv[argc++] = "EVALSHA";
		argv[argc++] = s->sha[script];
		argv[argc++] = nk;
		for (size_t i = 0; i < nkeys; i++)
			argv[argc++] = keys[i];
		for (size_t i = 0; i < nargs; i++)
			argv[argc++] = args[i];
		for (int i = 0; i < argc; i++)
			lens[i] = strlen(argv[i]);
		r = command(s, argc, argv, lens);
		if (!r)
			return NULL;
		if (r->type != REDIS_REPLY_ERROR)
			return r;
		/* the server forgot the scripts (a restart, SCRIPT FLUSH): load them again */
		if (!attempt && !strncmp(r->str, "NOSCRIPT", 8)) {
			freeReplyObject(r);
			if (load_scripts(s))
				return NULL;
			continue;
		}
		snprintf(s->err, sizeof(s->err), "Redis at %.80s: %.100s", s->c.shown, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return NULL;
}

int redis_store__reserve(struct redis_store *s, size_t n, const char *const keys[],
			 const uint64_t max[], const uint64_t ttl_s[], bool full[])
{
	char args[64][24];
	redisReply *r;
	int ret = -EPROTO;

	if (n > 32)
		return -E2BIG;
	for (size_t i = 0; i < n; i++) {
		snprintf(args[2 * i], 24, "%llu", (unsigned long long)max[i]);
		snprintf(args[2 * i + 1], 24, "%llu", (unsigned long long)ttl_s[i]);
		full[i] = false;
	}
	r = eval(s, SCRIPT_RESERVE, n, keys, 2 * n, args);
	if (!r)
		return -EIO;
	if (r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
		ret = 0;
	} else if (r->type == REDIS_REPLY_ARRAY && r->elements == n) {
		ret = 1;
		for (size_t i = 0; i < n; i++) {
			if (r->element[i]->type != REDIS_REPLY_INTEGER) {
				ret = -EPROTO;
				break;
			}
			full[i] = r->element[i]->integer != 0;
		}
	}
	if (ret == -EPROTO)
		snprintf(s->err, sizeof(s->err),
			 "Redis at %.80s: an unexpected answer to a reservation", s->c.shown);
	freeReplyObject(r);
	return ret;
}

int redis_store__release(struct redis_store *s, size_t n, const char *const keys[])
{
	redisReply *r;

	if (!n)
		return 0;
	r = eval(s, SCRIPT_RELEASE, n, keys, 0, NULL);
	if (!r)
		return -EIO;
	freeReplyObject(r);
	return 0;
}

int redis_store__charge(struct redis_store *s, const char *key, uint64_t ttl_s)
{
	char args[1][24];
	redisReply *r;

	snprintf(args[0], 24, "%llu", (unsigned long long)ttl_s);
	r = eval(s, SCRIPT_CHARGE, 1, &key, 1, args);
	if (!r)
		return -EIO;
	freeReplyObject(r);
	return 0;
}

int redis_store__get(struct redis_store *s, const char *key, uint64_t *used)
{
	const char *argv[] = { "GET", key };
	redisReply *r;
	int ret = 0;

	*used = 0;
	if (store_connect(s))
		return -EIO;
	r = command_str(s, 2, argv);
	if (!r)
		return -EIO;
	if (r->type == REDIS_REPLY_STRING) {
		char *end;
		unsigned long long v = strtoull(r->str, &end, 10);

		if (*end || r->str[0] == '-')
			ret = -EPROTO;
		else
			*used = v;
	} else if (r->type != REDIS_REPLY_NIL) {
		ret = -EPROTO;
	}
	if (ret)
		snprintf(s->err, sizeof(s->err), "Redis at %.80s: %s is not a count", s->c.shown,
			 key);
	freeReplyObject(r);
	return ret;
}

/* PREFIX name into key; -ENAMETOOLONG when it does not fit. */
static int named_key(struct redis_store *s, const char *name, char key[REDIS_KEY_MAX])
{
	if ((size_t)snprintf(key, REDIS_KEY_MAX, "%s%s", s->c.prefix, name) < REDIS_KEY_MAX)
		return 0;
	snprintf(s->err, sizeof(s->err), "Redis at %.80s: the prefix is too long", s->c.shown);
	return -ENAMETOOLONG;
}

int redis_store__secret(struct redis_store *s, const char *name, const char candidate[65],
			char hex[65])
{
	char key[REDIS_KEY_MAX];
	const char *set[] = { "SET", key, candidate, "NX" };
	const char *get[] = { "GET", key };
	redisReply *r;
	int ret = -EPROTO;

	if (named_key(s, name, key) || store_connect(s))
		return -EIO;
	r = command_str(s, 4, set);
	if (!r)
		return -EIO;
	freeReplyObject(r);
	r = command_str(s, 2, get);
	if (!r)
		return -EIO;
	if (r->type == REDIS_REPLY_STRING && r->len == 64 &&
	    strspn(r->str, "0123456789abcdef") == 64) {
		memcpy(hex, r->str, 65);
		ret = 0;
	} else {
		snprintf(s->err, sizeof(s->err), "Redis at %.80s: %.100s is not a secret of ours",
			 s->c.shown, key);
	}
	freeReplyObject(r);
	return ret;
}

int redis_store__once(struct redis_store *s, const char *name, uint64_t ttl_s)
{
	char key[REDIS_KEY_MAX], ttl[24];
	const char *argv[] = { "SET", key, "1", "NX", "EX", ttl };
	redisReply *r;
	int ret = -EPROTO;

	if (named_key(s, name, key) || store_connect(s))
		return -EIO;
	snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(ttl_s ? ttl_s : 1));
	r = command_str(s, 6, argv);
	if (!r)
		return -EIO;
	if (r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK"))
		ret = 0;
	else if (r->type == REDIS_REPLY_NIL)
		ret = 1;
	else
		snprintf(s->err, sizeof(s->err), "Redis at %.80s: SET NX: %.100s", s->c.shown,
			 r->type == REDIS_REPLY_ERROR ? r->str : "an unexpected answer");
	freeReplyObject(r);
	return ret;
}
