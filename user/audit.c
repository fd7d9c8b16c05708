// SPDX-License-Identifier: Apache-2.0
/* audit: one JSON line per decision. */
#include <errno.h>
#include <fcntl.h>
#include <linux/limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include "audit.h"
#include "decide.h"
#include "clock.h"
#include "text.h"
#include "log.h"

struct audit {
	int fd;
	bool own_fd;
	bool values;
	bool failing; /* a write failed and was logged; log again only once it works again */
	bool buffered;
	bool oom;  /* the line being written found no memory */
	char *buf; /* lines not written yet, the one being written last */
	size_t len, cap;
	uint64_t held_since; /* monotonic µs: when the oldest line held was written */
	uint64_t checked_us; /* monotonic µs: when path was last seen to be the file we write */
	dev_t dev;	     /* the file we write (own_fd) */
	ino_t ino;
	time_t date_sec; /* the second date[] shows */
	char date[32];
	char path[PATH_MAX];
};

uint64_t audit__now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int audit__default_path(char *buf, size_t size)
{
	const char *env = getenv("MCPFENCE_AUDIT"), *state = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	int n;

	if (env && *env)
		n = snprintf(buf, size, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, size, "/var/log/mcpfence/audit.jsonl");
	else if (state && *state == '/')
		n = snprintf(buf, size, "%s/mcpfence/audit.jsonl", state);
	else if (home && *home == '/')
		n = snprintf(buf, size, "%s/.local/state/mcpfence/audit.jsonl", home);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* mkdir -p of the directory part of path, 0700 for what we create */
static int make_parents(const char *path)
{
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s", path);
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(dir, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

static int open_file(struct audit *a)
{
	struct stat st;
	int fd, err;

	fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st)) {
		err = -errno;
		log_err("audit: cannot open %s: %s", a->path, strerror(-err));
		if (fd >= 0)
			close(fd);
		return err;
	}
	a->fd = fd;
	a->dev = st.st_dev;
	a->ino = st.st_ino;
	a->checked_us = clock__mono_us();
	return 0;
}

struct audit *audit__open(const char *path)
{
	struct audit *a = calloc(1, sizeof(*a));
	int err;

	if (!a)
		return NULL;
	if (path && !strcmp(path, "-")) {
		a->fd = STDERR_FILENO;
		snprintf(a->path, sizeof(a->path), "(stderr)");
		return a;
	}
	if (!path) {
		err = audit__default_path(a->path, sizeof(a->path));
		if (err) {
			log_err("audit: no default location (set HOME, or use --audit FILE): %s",
				strerror(-err));
			goto out_free;
		}
	} else {
		snprintf(a->path, sizeof(a->path), "%s", path);
	}
	err = make_parents(a->path);
	if (err) {
		log_err("audit: cannot create the directory of %s: %s", a->path, strerror(-err));
		goto out_free;
	}
	err = open_file(a);
	if (err)
		goto out_free;
	a->own_fd = true;
	return a;
out_free:
	free(a);
	errno = -err;
	return NULL;
}

#define AUDIT_BUF (64u << 10) /* buffered lines are written once they fill this */
#define SHRINK_ABOVE (1u << 20)
#define AUDIT_HOLD_US 10000 /* a buffered line is written at most this long after */

#define REOPEN_CHECK_US 1000000 /* how often a log of our own is checked for rotation */

/*
 * logrotate (or anyone) renamed or removed the log: what was written before the check went to
 * the renamed file, what follows goes to a new file at the path. No signal and no copytruncate:
 * no line is lost or written twice.
 */
static void follow_rotation(struct audit *a)
{
	uint64_t now = clock__mono_us();
	struct stat st;
	int old = a->fd;

	if (!a->own_fd || now - a->checked_us < REOPEN_CHECK_US)
		return;
	a->checked_us = now;
	if (!stat(a->path, &st) && st.st_dev == a->dev && st.st_ino == a->ino)
		return;
	if (make_parents(a->path) || open_file(a))
		return; /* keep writing where we were: open_file said why */
	close(old);
	log_info("audit: %s was rotated: writing to a new file there", a->path);
}

static int write_out(struct audit *a, const char *data, size_t len)
{
	ssize_t n;
	int err;

	follow_rotation(a);
	n = write(a->fd, data, len);

	if (n == (ssize_t)len) {
		a->failing = false;
		return 0;
	}
	err = n < 0 ? -errno : -EIO;
	if (!a->failing)
		log_err("audit: cannot write to %s: %s", a->path, strerror(-err));
	a->failing = true;
	return err;
}

int audit__flush(struct audit *a)
{
	int err = 0;

	if (a && a->len) {
		err = write_out(a, a->buf, a->len);
		a->len = 0;
	}
	/* a line of arguments' values may have grown it: give that back */
	if (a && a->cap > SHRINK_ABOVE) {
		free(a->buf);
		a->buf = NULL;
		a->cap = 0;
	}
	return err;
}

void audit__set_buffered(struct audit *a, bool buffered)
{
	if (!buffered)
		audit__flush(a);
	a->buffered = buffered;
}

void audit__close(struct audit *a)
{
	if (!a)
		return;
	audit__flush(a);
	free(a->buf);
	if (a->own_fd)
		close(a->fd);
	free(a);
}

void audit__set_values(struct audit *a, bool values)
{
	a->values = values;
}

const char *audit__path(const struct audit *a)
{
	return a->path;
}

/*
 * The line is written by hand into the buffer, byte for byte as jansson's compact dump of the
 * same object would be (fields in this order, strings escaped as jansson escapes them): building
 * and dumping a json_t cost about 50,000 instructions a line, ten times the rest of a call.
 */

/* Room for more bytes at the end of the buffer; false (a->oom) when there is no memory. */
static bool reserve(struct audit *a, size_t more)
{
	size_t cap = a->cap ? a->cap : AUDIT_BUF;
	char *nb;

	if (a->oom)
		return false;
	if (a->len + more <= a->cap)
		return true;
	while (cap < a->len + more)
		cap *= 2;
	nb = realloc(a->buf, cap);
	if (!nb) {
		a->oom = true;
		return false;
	}
	a->buf = nb;
	a->cap = cap;
	return true;
}

/* Inline, as put_key: most of what a line holds is short and known when compiled. */
static inline void put(struct audit *a, const char *s, size_t n)
{
	if (a->len + n > a->cap && !reserve(a, n))
		return;
	memcpy(a->buf + a->len, s, n);
	a->len += n;
}

static void put_int(struct audit *a, long long v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;

	do
		*--p = '0' + u % 10;
	while (u /= 10);
	if (v < 0)
		*--p = '-';
	put(a, p, tmp + sizeof(tmp) - p);
}

/* s (valid UTF-8) as a JSON string: what jansson escapes, as it escapes it. */
static void put_escaped(struct audit *a, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t from = 0;

	put(a, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		char esc[8] = { '\\', 0 };
		size_t elen = 2;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		put(a, s + from, i - from);
		from = i + 1;
		switch (c) {
		case '"':
		case '\\':
			esc[1] = c;
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		put(a, esc, elen);
	}
	put(a, s + from, n - from);
	put(a, "\"", 1);
}

/* v as a JSON string; bytes that are not UTF-8 (a path, a name from outside) as U+FFFD. */
static void put_str(struct audit *a, const char *v)
{
	size_t n = strlen(v), i = text__plain_words((const unsigned char *)v, n);
	char *clean;

	while (i < n && text__plain_byte[(unsigned char)v[i]])
		i++;
	if (i == n) {
		put(a, "\"", 1);
		put(a, v, n);
		put(a, "\"", 1);
		return;
	}
	for (; i < n; i++) {
		if (!(v[i] & 0x80))
			continue;
		/* cleaning leaves valid UTF-8 as it is */
		clean = malloc(4 * n + 1);
		if (!clean) {
			put_escaped(a, "(not UTF-8, and no memory to show it)", 37);
			return;
		}
		text__utf8_clean(v, n, clean, false);
		put_escaped(a, clean, strlen(clean));
		free(clean);
		return;
	}
	put_escaped(a, v, n);
}

/* ,"k": — the first field of an object has no comma (*first says whether one came yet). */
static inline void put_key(struct audit *a, const char *k, bool *first)
{
	if (!*first)
		put(a, ",", 1);
	*first = false;
	put(a, "\"", 1);
	put(a, k, strlen(k));
	put(a, "\":", 2);
}

static void field_str(struct audit *a, const char *k, const char *v, bool *first)
{
	if (!v)
		return;
	put_key(a, k, first);
	put_str(a, v);
}

/* A value through jansson, compact (what has no plain form here). false: nothing written. */
static bool put_json(struct audit *a, const json_t *v)
{
	size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);

	if (!n || !reserve(a, n))
		return false;
	if (json_dumpb(v, a->buf + a->len, n, JSON_COMPACT | JSON_ENCODE_ANY) != n)
		return false;
	a->len += n;
	return true;
}

static void field_args(struct audit *a, const json_t *args, bool *first)
{
	size_t mark = a->len;
	bool one = true, was_first = *first;
	const char *key;
	json_t *v;

	if (!json_is_object(args))
		return;
	put_key(a, a->values ? "arguments" : "argument_keys", first);
	if (a->values) {
		if (!put_json(a, args)) {
			a->len = mark;
			*first = was_first;
		}
		return;
	}
	put(a, "[", 1);
	json_object_foreach((json_t *)args, key, v) {
		if (!one)
			put(a, ",", 1);
		one = false;
		put_str(a, key);
	}
	put(a, "]", 1);
}

/* An id the way jansson writes it back: a plain integer or ASCII string as it is. */
static bool id_plain(const char *t)
{
	size_t n = strlen(t);
	bool neg;

	if (n >= 2 && t[0] == '"' && t[n - 1] == '"') {
		for (size_t i = 1; i < n - 1; i++)
			if (t[i] < 0x20 || t[i] > 0x7e || t[i] == '"' || t[i] == '\\')
				return false;
		return true;
	}
	neg = t[0] == '-';
	t += neg;
	n -= neg;
	/* jansson writes "-0" back as 0, and reads no "007" */
	if (!n || n > 18 || (t[0] == '0' && (n > 1 || neg)))
		return false;
	return strspn(t, "0123456789") == n;
}

static void field_id(struct audit *a, const char *text, bool *first)
{
	bool was_first;
	json_t *id;
	size_t mark;

	if (!text)
		return;
	if (id_plain(text)) {
		put_key(a, "id", first);
		put(a, text, strlen(text));
		return;
	}
	/* anything else is read and written back by jansson, as it always was */
	id = json_loads(text, JSON_DECODE_ANY, NULL);
	if (!id)
		id = json_string(text);
	if (!id)
		return;
	mark = a->len;
	was_first = *first;
	put_key(a, "id", first);
	if (!put_json(a, id)) {
		a->len = mark;
		*first = was_first;
	}
	json_decref(id);
}

/* "2023-11-14T22:13:20.123456Z"; the date part is kept from the last line of the same second. */
static void field_time(struct audit *a, uint64_t t, bool *first)
{
	time_t sec = t / 1000000;
	unsigned us = (unsigned)(t % 1000000);
	char frac[8] = { '.' };
	struct tm tm;

	if (sec != a->date_sec || !a->date[0]) {
		gmtime_r(&sec, &tm);
		strftime(a->date, sizeof(a->date), "%Y-%m-%dT%H:%M:%S", &tm);
		a->date_sec = sec;
	}
	/* ".%06uZ" */
	for (int i = 6; i > 0; i--, us /= 10)
		frac[i] = (char)('0' + us % 10);
	frac[7] = 'Z';
	put_key(a, "time", first);
	put(a, "\"", 1);
	put(a, a->date, strlen(a->date));
	put(a, frac, 8);
	put(a, "\"", 1);
}

static void put_client(struct audit *a, const struct audit_event *ev, bool *first)
{
	bool one = true;

	put_key(a, "client", first);
	put(a, "{", 1);
	if (ev->client_pid) {
		put_key(a, "pid", &one);
		put_int(a, ev->client_pid);
	}
	if (ev->client_uid != (uid_t)-1) {
		put_key(a, "uid", &one);
		put_int(a, ev->client_uid);
	}
	field_str(a, "exe", ev->client_exe, &one);
	field_str(a, "name", ev->client_name, &one);
	put(a, "}", 1);
}

int audit__write(struct audit *a, const struct audit_event *ev)
{
	uint64_t t = ev->time_us ? ev->time_us : audit__now_us();
	size_t start = a->len;
	bool first = true;

	reserve(a, 1024); /* most lines fit: put seldom needs to grow the buffer */
	put(a, "{", 1);
	field_time(a, t, &first);
	field_str(a, "plane", ev->plane, &first);
	field_str(a, "server", ev->server, &first);
	field_str(a, "session", ev->session, &first);
	field_str(a, "conn", ev->conn, &first);
	put_client(a, ev, &first);
	field_str(a, "method", ev->method, &first);
	field_str(a, "tool", ev->tool, &first);
	field_args(a, ev->args, &first);
	field_str(a, "decision", ev->decision, &first);
	field_str(a, "kind", ev->kind, &first);
	field_str(a, "rule", ev->rule, &first);
	field_str(a, "policy", ev->policy, &first);
	field_str(a, "reason", ev->reason, &first);
	field_str(a, "approved_by", ev->approved_by, &first);
	field_str(a, "note", ev->note, &first);
	put_key(a, "latency_us", &first);
	put_int(a, (long long)ev->latency_us);
	field_id(a, ev->request_id, &first);
	put(a, "}\n", 2);
	if (a->oom) {
		/* no line rather than half of one; what was held before stays */
		a->oom = false;
		a->len = start;
		return -ENOMEM;
	}
	if (!a->buffered || a->len >= AUDIT_BUF)
		return audit__flush(a);
	if (!start)
		a->held_since = clock__mono_us();
	return 0;
}

uint64_t audit__deadline(const struct audit *a)
{
	return a && a->len ? a->held_since + AUDIT_HOLD_US : 0;
}

int audit__flush_due(struct audit *a, uint64_t now)
{
	uint64_t due = audit__deadline(a);

	return due && now >= due ? audit__flush(a) : 0;
}

void audit__set_decision(struct audit_event *ev, const struct decision *d)
{
	bool allow = d->verdict == VERDICT_ALLOW;

	ev->decision = allow ? "allow" : "deny";
	ev->kind = allow ? NULL : decide__kind_name(d->kind);
	ev->rule = d->pointer[0] ? d->pointer : NULL;
	ev->reason = allow ? NULL : d->reason;
	ev->note = d->note[0] ? d->note : NULL;
}
