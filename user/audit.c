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
#include "text.h"
#include "log.h"

struct audit {
	int fd;
	bool own_fd;
	bool values;
	bool failing; /* a write failed and was logged; log again only once it works again */
	bool buffered;
	char *buf; /* buffered lines */
	size_t len;
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
	a->fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (a->fd < 0) {
		err = -errno;
		log_err("audit: cannot open %s: %s", a->path, strerror(-err));
		goto out_free;
	}
	a->own_fd = true;
	return a;
out_free:
	free(a);
	errno = -err;
	return NULL;
}

#define AUDIT_BUF (64u << 10)

static int write_out(struct audit *a, const char *data, size_t len)
{
	ssize_t n = write(a->fd, data, len);
	int err;

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

/* v as a JSON string; bytes that are not UTF-8 (a path, a name from outside) as U+FFFD. */
static void set_str(json_t *o, const char *k, const char *v)
{
	json_t *s;
	char *clean;

	if (!v)
		return;
	s = json_string(v);
	if (!s) {
		clean = malloc(4 * strlen(v) + 1);
		if (clean) {
			text__utf8_clean(v, strlen(v), clean, false);
			s = json_string(clean);
			free(clean);
		}
	}
	json_object_set_new(o, k, s ? s : json_string("(not UTF-8, and no memory to show it)"));
}

static json_t *args_field(const struct audit *a, const json_t *args)
{
	const char *key;
	json_t *v, *keys;

	if (!json_is_object(args))
		return NULL;
	if (a->values)
		return json_deep_copy(args);
	keys = json_array();
	json_object_foreach((json_t *)args, key, v)
		json_array_append_new(keys, json_string(key));
	return keys;
}

int audit__write(struct audit *a, const struct audit_event *ev)
{
	uint64_t t = ev->time_us ? ev->time_us : audit__now_us();
	json_t *o = json_object(), *client, *id = NULL, *args;
	char ts[40], date[32];
	time_t sec = t / 1000000;
	struct tm tm;
	char *line = NULL;
	size_t len;
	int err = 0;

	if (!o)
		return -ENOMEM;
	gmtime_r(&sec, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts, sizeof(ts), "%s.%06uZ", date, (unsigned)(t % 1000000));
	json_object_set_new(o, "time", json_string(ts));
	set_str(o, "plane", ev->plane);
	set_str(o, "server", ev->server);
	set_str(o, "session", ev->session);
	set_str(o, "conn", ev->conn);
	client = json_object();
	if (ev->client_pid)
		json_object_set_new(client, "pid", json_integer(ev->client_pid));
	if (ev->client_uid != (uid_t)-1)
		json_object_set_new(client, "uid", json_integer(ev->client_uid));
	set_str(client, "exe", ev->client_exe);
	set_str(client, "name", ev->client_name);
	json_object_set_new(o, "client", client);
	set_str(o, "method", ev->method);
	set_str(o, "tool", ev->tool);
	args = args_field(a, ev->args);
	if (args)
		json_object_set_new(o, a->values ? "arguments" : "argument_keys", args);
	set_str(o, "decision", ev->decision);
	set_str(o, "kind", ev->kind);
	set_str(o, "rule", ev->rule);
	set_str(o, "reason", ev->reason);
	set_str(o, "approved_by", ev->approved_by);
	json_object_set_new(o, "latency_us", json_integer(ev->latency_us));
	if (ev->request_id) {
		id = json_loads(ev->request_id, JSON_DECODE_ANY, NULL);
		json_object_set_new(o, "id", id ? id : json_string(ev->request_id));
	}
	line = json_dumps(o, JSON_COMPACT);
	if (!line) {
		err = -ENOMEM;
		goto out_free;
	}
	len = strlen(line);
	line[len++] = '\n'; /* replaces the NUL: written by length */
	if (!a->buffered || len > AUDIT_BUF) {
		audit__flush(a);
		err = write_out(a, line, len);
		goto out_free;
	}
	if (a->len + len > AUDIT_BUF)
		audit__flush(a);
	if (!a->buf) {
		a->buf = malloc(AUDIT_BUF);
		if (!a->buf) {
			err = write_out(a, line, len);
			goto out_free;
		}
	}
	memcpy(a->buf + a->len, line, len);
	a->len += len;
out_free:
	free(line);
	json_decref(o);
	return err;
}
