// SPDX-License-Identifier: Apache-2.0
/* status: attach's rows of sessions, written for `mcpfence status`, and printed by it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/limits.h>
#include <sys/stat.h>
#include "log.h"
#include "status.h"
#include "text.h"

struct status_session *status__get(struct status *st, const char *conn)
{
	struct status_session *s;

	for (size_t i = 0; i < st->n; i++)
		if (!strcmp(st->s[i].conn, conn))
			return &st->s[i];
	if (st->n == STATUS_MAX) {
		/* forget the TCP connection idle longest: a --pid server's row stays */
		size_t old = st->n;

		for (size_t i = 0; i < st->n; i++)
			if (!st->s[i].pinned &&
			    (old == st->n || st->s[i].last_us < st->s[old].last_us))
				old = i;
		if (old == st->n)
			return NULL;
		st->s[old] = st->s[--st->n];
		st->forgotten++;
	}
	if (st->n == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 16;
		struct status_session *ns = realloc(st->s, cap * sizeof(*ns));

		if (!ns)
			return NULL;
		st->s = ns;
		st->cap = cap;
	}
	s = &st->s[st->n++];
	memset(s, 0, sizeof(*s));
	snprintf(s->conn, sizeof(s->conn), "%s", conn);
	st->dirty = true;
	return s;
}

void status__forget_ended(struct status *st, size_t keep)
{
	size_t ended = 0;

	for (size_t i = 0; i < st->n; i++)
		ended += st->s[i].ended;
	while (ended > keep) {
		size_t old = st->n;

		for (size_t i = 0; i < st->n; i++)
			if (st->s[i].ended &&
			    (old == st->n || st->s[i].last_us < st->s[old].last_us))
				old = i;
		memmove(&st->s[old], &st->s[old + 1], (st->n - old - 1) * sizeof(st->s[0]));
		st->n--;
		ended--;
		st->dirty = true;
	}
}

void status__count(struct status *st, struct status_session *s, bool call, bool denied,
		   uint64_t time_us)
{
	s->calls += call;
	s->denied += denied;
	if (time_us > s->last_us)
		s->last_us = time_us;
	st->dirty = true;
}

/* s, at most max bytes, as valid UTF-8 (names come from /proc): JSON escapes the rest */
static json_t *clean_string(const char *s, size_t max)
{
	char out[4 * 256 + 1];

	if (max > 256)
		max = 256;
	text__utf8_clean(s, max, out, false);
	return json_string(out);
}

static json_t *session_json(const struct status_session *s)
{
	json_t *o = json_object();

	json_object_set_new(o, "plane", json_string(s->plane));
	json_object_set_new(o, "conn", clean_string(s->conn, sizeof(s->conn)));
	json_object_set_new(o, "server", clean_string(s->server, sizeof(s->server)));
	json_object_set_new(o, "server_pid",
			    s->server_pid ? json_integer(s->server_pid) : json_null());
	json_object_set_new(o, "client",
			    s->client[0] ? clean_string(s->client, sizeof(s->client)) :
					   json_null());
	json_object_set_new(o, "client_pid",
			    s->client_pid ? json_integer(s->client_pid) : json_null());
	json_object_set_new(o, "policy",
			    s->policy[0] ? clean_string(s->policy, sizeof(s->policy)) :
					   json_null());
	json_object_set_new(o, "server_name",
			    s->server_name[0] ?
				    clean_string(s->server_name, sizeof(s->server_name)) :
				    json_null());
	json_object_set_new(o, "calls", json_integer((json_int_t)s->calls));
	json_object_set_new(o, "denied", json_integer((json_int_t)s->denied));
	json_object_set_new(o, "last_us",
			    s->last_us ? json_integer((json_int_t)s->last_us) : json_null());
	json_object_set_new(o, "ended", json_boolean(s->ended));
	return o;
}

void status__set_policy(struct status_session *s, const char *path)
{
	if (!strncmp(s->policy, path, sizeof(s->policy) - 1))
		return;
	snprintf(s->policy, sizeof(s->policy), "%s", path);
}

int status__write(struct status *st, const char *path, const char *policy, pid_t attach_pid,
		  uint64_t started_us)
{
	char tmp[PATH_MAX];
	json_t *doc = json_object(), *rows = json_array();
	int fd, err = 0;

	for (size_t i = 0; i < st->n; i++)
		json_array_append_new(rows, session_json(&st->s[i]));
	json_object_set_new(doc, "attach_pid", json_integer(attach_pid));
	json_object_set_new(doc, "command", json_string(st->daemon ? "daemon" : "attach"));
	json_object_set_new(doc, "policy", clean_string(policy, strlen(policy)));
	json_object_set_new(doc, "started_us", json_integer((json_int_t)started_us));
	json_object_set_new(doc, "forgotten", json_integer((json_int_t)st->forgotten));
	json_object_set_new(doc, "sessions", rows);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp)) {
		err = -ENAMETOOLONG;
		goto out;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	if (json_dumpfd(doc, fd, JSON_COMPACT) || write(fd, "\n", 1) != 1 || fsync(fd))
		err = errno ? -errno : -EIO;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
out:
	json_decref(doc);
	if (err)
		log_warn("%s: %s: `mcpfence status` shows what was written before", path,
			 strerror(-err));
	else
		st->dirty = false;
	return err;
}

/* The string at key of o into out (size bytes), "" when it is not one. */
static void read_str(json_t *o, const char *key, char *out, size_t size)
{
	const char *v = json_string_value(json_object_get(o, key));

	snprintf(out, size, "%s", v ? v : "");
}

static uint64_t read_u64(json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));

	return v > 0 ? (uint64_t)v : 0;
}

int status__read(struct status *st, const char *path)
{
	json_t *doc = json_load_file(path, 0, NULL), *rows = json_object_get(doc, "sessions"), *o;
	size_t i;

	if (!doc)
		return -ENOENT;
	if (!json_is_array(rows)) {
		json_decref(doc);
		return -EINVAL;
	}
	json_array_foreach(rows, i, o) {
		char conn[sizeof(st->s[0].conn)];
		struct status_session *s;

		read_str(o, "conn", conn, sizeof(conn));
		if (!conn[0] || !(s = status__get(st, conn)))
			continue;
		read_str(o, "plane", s->plane, sizeof(s->plane));
		read_str(o, "server", s->server, sizeof(s->server));
		read_str(o, "client", s->client, sizeof(s->client));
		read_str(o, "policy", s->policy, sizeof(s->policy));
		read_str(o, "server_name", s->server_name, sizeof(s->server_name));
		s->server_pid = (pid_t)read_u64(o, "server_pid");
		s->client_pid = (pid_t)read_u64(o, "client_pid");
		s->calls = read_u64(o, "calls");
		s->denied = read_u64(o, "denied");
		s->last_us = read_u64(o, "last_us");
		s->ended = json_is_true(json_object_get(o, "ended"));
	}
	st->forgotten = read_u64(doc, "forgotten");
	st->dirty = true;
	json_decref(doc);
	return 0;
}

void status__free(struct status *st)
{
	free(st->s);
	memset(st, 0, sizeof(*st));
}

/* "pid 42 (name)", "name" or "-" */
static void who(char *out, size_t size, json_t *pid, json_t *name)
{
	const char *n = json_string_value(name);
	char clean[4 * 256 + 1];

	/* control characters escaped: a terminal must never get them */
	text__utf8_clean(n ? n : "", 256, clean, true);
	if (json_is_integer(pid))
		snprintf(out, size, "pid %" JSON_INTEGER_FORMAT " (%s)", json_integer_value(pid),
			 n ? clean : "?");
	else
		snprintf(out, size, "%s", n ? clean : "-");
}

static void time_of(char *out, size_t size, json_t *us, bool date)
{
	time_t t;
	struct tm tm;

	if (!json_is_integer(us) || json_integer_value(us) <= 0) {
		snprintf(out, size, "-");
		return;
	}
	t = (time_t)(json_integer_value(us) / 1000000);
	gmtime_r(&t, &tm);
	strftime(out, size, date ? "%Y-%m-%dT%H:%M:%SZ" : "%H:%M:%SZ", &tm);
}

void status__print(FILE *f, json_t *doc, const char *state, bool json)
{
	json_t *rows = json_object_get(doc, "sessions"), *r;
	char since[32], server[1100], client[1100], last[32], policy[4 * 256 + 1];
	bool many = false;
	const char *cmd;
	size_t i;

	if (json) {
		json_object_set_new(doc, "attachment", json_string(state));
		json_dumpf(doc, f, JSON_INDENT(2));
		fputc('\n', f);
		return;
	}
	time_of(since, sizeof(since), json_object_get(doc, "started_us"), true);
	text__utf8_clean(json_string_value(json_object_get(doc, "policy")) ?: "?", 256, policy,
			 true);
	cmd = json_string_value(json_object_get(doc, "command"));
	cmd = cmd && !strcmp(cmd, "daemon") ? "daemon" : "attach";
	fprintf(f, "attachment: %s, %s pid %" JSON_INTEGER_FORMAT ", policy %s, since %s\n",
		!strcmp(state, "live") ? "live" : "stale", cmd,
		json_integer_value(json_object_get(doc, "attach_pid")), policy, since);
	if (strcmp(state, "live"))
		fprintf(f,
			"  (%s is gone; its programs enforce the policy they had until `mcpfence "
			"detach`%s): sessions as it last wrote them\n",
			cmd, !strcmp(cmd, "daemon") ? ", or the next daemon takes them back" : "");
	json_array_foreach(rows, i, r)
		many |= json_is_string(json_object_get(r, "policy"));
	fprintf(f, "%-13s %-24s %-30s %8s %8s  %-9s  %*s%s\n", "PLANE", "SERVER", "CLIENT", "CALLS",
		"DENIED", "LAST", many ? -7 : 0, "SESSION", many ? "  POLICY" : "");
	json_array_foreach(rows, i, r) {
		char pol[4 * 256 + 1] = "-";
		who(server, sizeof(server), json_object_get(r, "server_pid"),
		    json_object_get(r, "server"));
		who(client, sizeof(client), json_object_get(r, "client_pid"),
		    json_object_get(r, "client"));
		time_of(last, sizeof(last), json_object_get(r, "last_us"), false);
		if (json_is_string(json_object_get(r, "policy")))
			text__utf8_clean(json_string_value(json_object_get(r, "policy")), 256, pol,
					 true);
		fprintf(f,
			"%-13s %-24s %-30s %8" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT
			"  %-9s  %*s%s%s\n",
			json_string_value(json_object_get(r, "plane")) ?: "?", server, client,
			json_integer_value(json_object_get(r, "calls")),
			json_integer_value(json_object_get(r, "denied")), last, many ? -7 : 0,
			json_is_true(json_object_get(r, "ended")) ? "ended" : "open",
			many ? "  " : "", many ? pol : "");
	}
	if (!json_array_size(rows))
		fprintf(f, "(no session yet)\n");
	if (json_integer_value(json_object_get(doc, "forgotten")))
		fprintf(f, "%" JSON_INTEGER_FORMAT " TCP connections forgotten (rows kept: %d)\n",
			json_integer_value(json_object_get(doc, "forgotten")), STATUS_MAX);
}
