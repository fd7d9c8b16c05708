// SPDX-License-Identifier: Apache-2.0
/* approval: held calls, and the control socket through which a human decides on them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include "approval.h"
#include "kernel.h"
#include "cmd.h"
#include "log.h"

#define CMD_MAX 256
#define IO_TIMEOUT_MS 200

void approvals__init(struct approvals *q)
{
	memset(q, 0, sizeof(*q));
	q->next_n = 1;
	q->listen_fd = -1;
}

static void approval_free(struct approval *a)
{
	free(a->tool);
	json_decref(a->args);
	json_decref(a->msg);
	free(a->raw);
	free(a->elicit_id);
	free(a);
}

void approvals__fini(struct approvals *q)
{
	while (q->head)
		approvals__remove(q, q->head);
	if (q->listen_fd >= 0) {
		close(q->listen_fd);
		unlink(q->sock_path);
	}
	q->listen_fd = -1;
}

struct approval *approvals__add(struct approvals *q, const char *tool, json_t *msg,
				const char *raw, size_t raw_len, uint32_t timeout_s,
				uint64_t now_us)
{
	struct approval *a = calloc(1, sizeof(*a)), **tail;
	json_t *params = json_object_get(msg, "params");

	if (!a)
		goto out_fail;
	a->tool = strdup(tool);
	if (!a->tool)
		goto out_fail;
	a->args = json_incref(json_object_get(params, "arguments"));
	a->msg = msg;
	msg = NULL;
	if (raw) {
		a->raw = malloc(raw_len);
		if (!a->raw)
			goto out_fail;
		memcpy(a->raw, raw, raw_len);
		a->raw_len = raw_len;
	}
	a->n = q->next_n++;
	a->timeout_s = timeout_s;
	a->started_us = now_us;
	a->deadline_us = now_us + (uint64_t)timeout_s * 1000000;
	for (tail = &q->head; *tail; tail = &(*tail)->next)
		;
	*tail = a;
	return a;
out_fail:
	json_decref(msg);
	if (a)
		approval_free(a);
	errno = ENOMEM;
	return NULL;
}

void approvals__remove(struct approvals *q, struct approval *a)
{
	for (struct approval **p = &q->head; *p; p = &(*p)->next) {
		if (*p == a) {
			*p = a->next;
			approval_free(a);
			return;
		}
	}
}

struct approval *approvals__find_elicit(struct approvals *q, const char *elicit_id)
{
	for (struct approval *a = q->head; a; a = a->next)
		if (a->elicit_id && !strcmp(a->elicit_id, elicit_id))
			return a;
	return NULL;
}

struct approval *approvals__find_request(struct approvals *q, const json_t *id)
{
	for (struct approval *a = q->head; a; a = a->next)
		if (id && json_equal(json_object_get(a->msg, "id"), (json_t *)id))
			return a;
	return NULL;
}

uint64_t approvals__expire(struct approvals *q, uint64_t now_us)
{
	uint64_t next = 0;

	for (struct approval *a = q->head; a; a = a->next) {
		if (a->state != APPROVAL_WAITING)
			continue;
		if (a->deadline_us <= now_us) {
			a->state = APPROVAL_EXPIRED;
			continue;
		}
		if (!next || a->deadline_us < next)
			next = a->deadline_us;
	}
	return next;
}

struct approval *approvals__decided(struct approvals *q)
{
	for (struct approval *a = q->head; a; a = a->next)
		if (a->state != APPROVAL_WAITING)
			return a;
	return NULL;
}

/* A directory only we can enter: ours, a directory (not a link), no access for others. */
static int check_private_dir(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
		log_err("%s: must be a directory owned by uid %u with mode 0700", dir, geteuid());
		return -EPERM;
	}
	return 0;
}

int approval__dir(char *buf, size_t size, bool create)
{
	const char *env = getenv("MCPFENCE_RUNTIME_DIR"), *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (env && *env)
		n = snprintf(buf, size, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(buf, size, "/run/mcpfence");
	else if (xdg && *xdg == '/')
		n = snprintf(buf, size, "%s/mcpfence", xdg);
	else
		n = snprintf(buf, size, "/tmp/mcpfence-%u", geteuid());
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	if (create && mkdir(buf, 0700) && errno != EEXIST) {
		log_err("cannot create %s: %s", buf, strerror(errno));
		return -errno;
	}
	return check_private_dir(buf);
}

int approvals__listen(struct approvals *q)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[80];
	int fd = -1, err;

	if (q->listen_fd >= 0)
		return 0;
	err = approval__dir(dir, sizeof(dir), true);
	if (err)
		return err;
	snprintf(q->sock_path, sizeof(q->sock_path), "%s/%d.sock", dir, (int)getpid());
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", q->sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto out_err;
	unlink(q->sock_path); /* a stale socket of an earlier process with our pid */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(q->sock_path, 0600) ||
	    listen(fd, 8))
		goto out_err;
	q->listen_fd = fd;
	return 0;
out_err:
	err = -errno;
	log_err("control socket %s: %s", q->sock_path, strerror(-err));
	if (fd >= 0)
		close(fd);
	return err;
}

static void set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = IO_TIMEOUT_MS * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void send_str(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		s += n;
		len -= n;
	}
}

static void serve_list(struct approvals *q, int fd, uint64_t now_us)
{
	char id[48];

	for (struct approval *a = q->head; a; a = a->next) {
		json_t *o;
		char *line;

		if (a->state != APPROVAL_WAITING)
			continue;
		snprintf(id, sizeof(id), "%d-%llu", (int)getpid(), (unsigned long long)a->n);
		o = json_pack("{s:s, s:s?, s:s, s:O?, s:I, s:I}", "id", id, "server", q->server,
			      "tool", a->tool, "arguments", a->args, "waiting_s",
			      (json_int_t)((now_us - a->started_us) / 1000000), "timeout_s",
			      (json_int_t)a->timeout_s);
		line = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (line) {
			send_str(fd, line);
			send_str(fd, "\n");
		}
		free(line);
		json_decref(o);
	}
}

static void serve_decide(struct approvals *q, int fd, const char *arg, bool yes)
{
	char *end;
	unsigned long long n = strtoull(arg, &end, 10);
	char reply[128];

	for (struct approval *a = q->head; a && *arg && !*end; a = a->next) {
		if (a->n != n || a->state != APPROVAL_WAITING)
			continue;
		a->state = yes ? APPROVAL_APPROVED : APPROVAL_DENIED;
		a->by = "socket";
		send_str(fd, "ok\n");
		return;
	}
	snprintf(reply, sizeof(reply), "error: no call %.40s waits for approval here\n", arg);
	send_str(fd, reply);
}

void approvals__serve(struct approvals *q, uint64_t now_us)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	char cmd[CMD_MAX];
	ssize_t n;
	size_t len = 0;
	int fd;

	fd = accept4(q->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) ||
	    (cred.uid != geteuid() && cred.uid != 0)) {
		send_str(fd, "error: permission denied\n");
		goto out_close;
	}
	set_timeouts(fd);
	/* one command line: "list", "approve N", "deny N" */
	while (len < sizeof(cmd) - 1) {
		n = recv(fd, cmd + len, sizeof(cmd) - 1 - len, 0);
		if (n <= 0)
			break;
		len += n;
		if (memchr(cmd, '\n', len))
			break;
	}
	cmd[len] = 0;
	cmd[strcspn(cmd, "\r\n")] = 0;
	if (!strcmp(cmd, "list"))
		serve_list(q, fd, now_us);
	else if (!strncmp(cmd, "approve ", 8))
		serve_decide(q, fd, cmd + 8, true);
	else if (!strncmp(cmd, "deny ", 5))
		serve_decide(q, fd, cmd + 5, false);
	else
		send_str(fd, "error: unknown command\n");
out_close:
	close(fd);
}

/* Send one command to the enforcer whose socket is path and copy its answer to out. */
static int ask(const char *path, const char *cmd, FILE *out, bool *ok)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[4096];
	ssize_t n;
	int fd, err = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	set_timeouts(fd);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		goto out_close;
	}
	send_str(fd, cmd);
	*ok = false;
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
		if (!strncmp(buf, "ok\n", 3))
			*ok = true;
		fwrite(buf, 1, n, out);
	}
out_close:
	close(fd);
	return err;
}

static int list_all(bool json)
{
	char dir[80], path[384], reply_buf[1 << 16];
	struct dirent *de;
	DIR *d;
	int err, shown = 0;

	err = approval__dir(dir, sizeof(dir), false);
	if (err == -ENOENT) {
		printf("no call waits for approval\n");
		return 0;
	}
	if (err)
		return 1;
	d = opendir(dir);
	if (!d) {
		log_err("cannot read %s: %s", dir, strerror(errno));
		return 1;
	}
	if (!json)
		printf("%-14s %-24s %-24s %9s  %s\n", "ID", "SERVER", "TOOL", "WAITING",
		       "ARGUMENTS");
	while ((de = readdir(d))) {
		FILE *mem;
		bool ok;
		char *line, *save = NULL;

		if (!strstr(de->d_name, ".sock"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		mem = fmemopen(reply_buf, sizeof(reply_buf) - 1, "w");
		if (!mem)
			continue;
		err = ask(path, "list\n", mem, &ok);
		reply_buf[ftell(mem)] = 0;
		fclose(mem);
		if (err)
			continue; /* an enforcer that is gone */
		for (line = strtok_r(reply_buf, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			json_t *o = json_loads(line, 0, NULL);
			char *args;

			shown++;
			if (json || !o) {
				printf("%s\n", line);
				json_decref(o);
				continue;
			}
			args = json_dumps(json_object_get(o, "arguments"), JSON_COMPACT);
			printf("%-14s %-24s %-24s %5llds/%llds  %.120s\n",
			       json_string_value(json_object_get(o, "id")),
			       json_string_value(json_object_get(o, "server")) ?: "-",
			       json_string_value(json_object_get(o, "tool")),
			       (long long)json_integer_value(json_object_get(o, "waiting_s")),
			       (long long)json_integer_value(json_object_get(o, "timeout_s")),
			       args ? args : "{}");
			free(args);
			json_decref(o);
		}
	}
	closedir(d);
	if (!shown && !json)
		printf("no call waits for approval\n");
	return 0;
}

int cmd_approvals(int argc, char **argv)
{
	bool json = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else {
			log_err("usage: mcpfence approvals [--json]");
			return EXIT_USAGE;
		}
	}
	return list_all(json);
}

static int decide_one(int argc, char **argv, bool yes)
{
	char dir[80], path[160], cmd[96];
	const char *id, *dash;
	bool ok = false;
	char *end;
	long pid;
	int err;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--tool"))
			continue;
		if (yes) /* a kernel-plane ticket */
			return kernel__approve_ticket(argc, argv);
		log_err("deny --tool: the kernel plane denies without a ticket already; "
			"`mcpfence deny` takes an ID from `mcpfence approvals`");
		return EXIT_USAGE;
	}
	if (argc != 2 || argv[1][0] == '-') {
		log_err("usage: mcpfence %s ID   (IDs from `mcpfence approvals`)", argv[0]);
		return EXIT_USAGE;
	}
	id = argv[1];
	dash = strchr(id, '-');
	pid = strtol(id, &end, 10);
	if (!dash || end != dash || pid <= 0 || !dash[1] || strspn(dash + 1, "0123456789") !=
	    strlen(dash + 1)) {
		log_err("%s: '%s' is not an approval ID (PID-N, from `mcpfence approvals`)",
			argv[0], id);
		return EXIT_USAGE;
	}
	err = approval__dir(dir, sizeof(dir), false);
	if (err) {
		log_err("no enforcer waits for approvals (%s)", strerror(-err));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%ld.sock", dir, pid);
	snprintf(cmd, sizeof(cmd), "%s %s\n", yes ? "approve" : "deny", dash + 1);
	err = ask(path, cmd, stdout, &ok);
	if (err) {
		log_err("%s: no enforcer with pid %ld waits for approvals (%s: %s)", id, pid, path,
			strerror(-err));
		return 1;
	}
	return ok ? 0 : 1;
}

int cmd_approve(int argc, char **argv)
{
	return decide_one(argc, argv, true);
}

int cmd_deny(int argc, char **argv)
{
	return decide_one(argc, argv, false);
}
