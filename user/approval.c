// SPDX-License-Identifier: Apache-2.0
/*
 * approval: held calls, who may decide on them, and the control socket through which an
 * operator does. The commands that talk to the socket are in approval_cli.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <openssl/evp.h>
#include "approval.h"
#include "log.h"

#define CONN_TIMEOUT_US 3000000ull /* a control connection says what it wants and reads within */
#define LIST_ARGS_MAX (16u << 10)  /* larger arguments are listed by their size only */
#define REFUSALS_LOGGED 20	   /* then one in 100 */

void approvals__init(struct approvals *q)
{
	memset(q, 0, sizeof(*q));
	q->listen_fd = -1;
	q->pid = getpid();
	q->client_uid = (uid_t)-1;
	for (size_t i = 0; i < APPROVAL_CONNS; i++)
		q->conns[i].fd = -1;
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

static void conn_close(struct approval_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->groups);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void approvals__fini(struct approvals *q)
{
	while (q->head)
		approvals__remove(q, q->head);
	for (size_t i = 0; i < APPROVAL_CONNS; i++)
		conn_close(&q->conns[i]);
	if (q->listen_fd >= 0)
		close(q->listen_fd); /* an abstract name goes with its last descriptor */
	q->listen_fd = -1;
}

/* --- what is approved: the digest and the ID --- */

int approval__digest(const char *tool, const json_t *args, char hex[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	json_t *empty = args ? NULL : json_object(), *pair = NULL;
	char *text = NULL;
	int err = -ENOMEM;

	if (!args && !empty)
		goto out_free;
	pair = json_pack("[s, O]", tool, args ? (json_t *)args : empty);
	if (!pair)
		goto out_free;
	text = json_dumps(pair, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (!text)
		goto out_free;
	if (!EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
		err = -EIO;
		goto out_free;
	}
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	err = 0;
out_free:
	free(text);
	json_decref(pair);
	json_decref(empty);
	return err;
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

int approval__parse_id(const char *id, pid_t *pid, char token[APPROVAL_TOKEN_HEX + 1],
		       char digest[APPROVAL_ID_DIGEST_HEX + 1])
{
	size_t np = strspn(id, "0123456789");
	const char *t = id + np + 1, *d = t + APPROVAL_TOKEN_HEX + 1;
	long long v;

	if (!np || np > 10 || id[0] == '0' || id[np] != '-')
		return -EINVAL;
	if (strlen(t) != APPROVAL_TOKEN_HEX + 1 + APPROVAL_ID_DIGEST_HEX ||
	    !all_hex(t, APPROVAL_TOKEN_HEX) || t[APPROVAL_TOKEN_HEX] != '-' ||
	    !all_hex(d, APPROVAL_ID_DIGEST_HEX))
		return -EINVAL;
	v = strtoll(id, NULL, 10);
	if (v <= 0 || v > 0x7fffffff)
		return -EINVAL;
	*pid = (pid_t)v;
	memcpy(token, t, APPROVAL_TOKEN_HEX);
	token[APPROVAL_TOKEN_HEX] = 0;
	memcpy(digest, d, APPROVAL_ID_DIGEST_HEX);
	digest[APPROVAL_ID_DIGEST_HEX] = 0;
	return 0;
}

/* 8 random hex digits that no other held call of ours has (a stale ID names no new call). */
static int new_token(struct approvals *q, char token[APPROVAL_TOKEN_HEX + 1])
{
	for (int tries = 0; tries < 16; tries++) {
		uint32_t r;
		bool taken = false;

		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			return -EIO;
		snprintf(token, APPROVAL_TOKEN_HEX + 1, "%08x", r);
		for (struct approval *a = q->head; a && !taken; a = a->next)
			taken = !strcmp(a->token, token);
		if (!taken)
			return 0;
	}
	return -EAGAIN;
}

/* --- the queue --- */

struct approval *approvals__add(struct approvals *q, const char *tool, json_t *msg, const char *raw,
				size_t raw_len, uint32_t timeout_s, uint64_t now_us)
{
	struct approval *a = calloc(1, sizeof(*a)), **tail;
	json_t *params = json_object_get(msg, "params");
	int err = -ENOMEM;

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
	if ((err = approval__digest(a->tool, a->args, a->digest)) || (err = new_token(q, a->token)))
		goto out_fail;
	snprintf(a->id, sizeof(a->id), "%d-%s-%.*s", (int)q->pid, a->token, APPROVAL_ID_DIGEST_HEX,
		 a->digest);
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
	errno = -err;
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
	for (size_t i = 0; i < APPROVAL_CONNS; i++) {
		struct approval_conn *c = &q->conns[i];

		if (c->fd < 0)
			continue;
		if (c->deadline_us <= now_us) {
			conn_close(c);
			continue;
		}
		if (!next || c->deadline_us < next)
			next = c->deadline_us;
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

/* --- who may approve --- */

const char *approval__uid_name(uid_t uid, char *buf, size_t size)
{
	struct passwd pw, *res = NULL;
	char tmp[4096];

	if (!getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) && res)
		snprintf(buf, size, "uid %u (%s)", (unsigned)uid, res->pw_name);
	else
		snprintf(buf, size, "uid %u", (unsigned)uid);
	return buf;
}

static const struct approver *find_id(const struct approver *a, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].resolved && a[i].id == id)
			return &a[i];
	return NULL;
}

int approval__authorize(const struct approvers *ap, const struct approval_peer *peer,
			uid_t client_uid, uid_t gateway_uid, char *how, size_t size)
{
	static const struct approvers none;
	const struct approver *m;
	char name[300];

	if (!ap)
		ap = &none;
	if (peer->uid == 0) {
		snprintf(how, size, "root");
		return 0;
	}
	m = find_id(ap->users, ap->nusers, peer->uid);
	if (m) {
		snprintf(how, size, "in approvers.users as %s",
			 policy__approver_name(m, false, name, sizeof(name)));
		return 0;
	}
	/*
	 * The agent runs as its client's uid, and so does the gateway the client spawned: only
	 * naming that uid in approvers.users lets it approve, never a group it belongs to.
	 */
	if (peer->uid == client_uid) {
		snprintf(how, size,
			 "it is the uid of the client that made the call (only approvers.users "
			 "naming it would allow that)");
		return -EPERM;
	}
	if (peer->uid == gateway_uid) {
		snprintf(how, size,
			 "it is the uid this gateway runs as, which its client spawned (only "
			 "approvers.users naming it would allow that)");
		return -EPERM;
	}
	if (!ap->nusers && !ap->ngroups) {
		snprintf(how, size, "the rule names no approvers: only root may approve");
		return -EPERM;
	}
	m = find_id(ap->groups, ap->ngroups, peer->gid);
	for (size_t i = 0; !m && i < peer->ngroups; i++)
		m = find_id(ap->groups, ap->ngroups, peer->groups[i]);
	if (m) {
		snprintf(how, size, "a member of %s, in approvers.groups",
			 policy__approver_name(m, true, name, sizeof(name)));
		return 0;
	}
	snprintf(how, size, "not root, not in approvers.users, not a member of approvers.groups");
	return -EPERM;
}

void approval__who(const struct approvers *ap, unsigned via, char *buf, size_t size)
{
	size_t len;
	char name[300];

	if (!(via & VIA_OPERATOR)) {
		snprintf(buf, size,
			 "nobody here: the rule asks the client only (\"via\": [\"client\"])");
		return;
	}
	len = (size_t)snprintf(buf, size, "root");
	for (size_t i = 0; ap && i < ap->nusers && len < size; i++)
		len += (size_t)snprintf(
			buf + len, size - len, ", %s",
			policy__approver_name(&ap->users[i], false, name, sizeof(name)));
	for (size_t i = 0; ap && i < ap->ngroups && len < size; i++)
		len += (size_t)snprintf(
			buf + len, size - len, ", members of %s",
			policy__approver_name(&ap->groups[i], true, name, sizeof(name)));
}

void approval__warn_unresolved(const struct policy *p)
{
	for (size_t i = 0; i < p->nrules; i++) {
		const struct approvers *ap = &p->rules[i].approvers;

		for (size_t j = 0; j < ap->nusers; j++)
			if (!ap->users[j].resolved)
				log_warn("%s: approvers.users: user \"%s\" does not exist here: it "
					 "approves nothing (resolved when the policy is loaded)",
					 p->rules[i].ptr, ap->users[j].name);
		for (size_t j = 0; j < ap->ngroups; j++)
			if (!ap->groups[j].resolved)
				log_warn("%s: approvers.groups: group \"%s\" does not exist here: "
					 "its members approve nothing (resolved when the policy is "
					 "loaded)",
					 p->rules[i].ptr, ap->groups[j].name);
	}
}

/* --- the control socket --- */

static socklen_t abstract_addr(struct sockaddr_un *sa, const char *name)
{
	size_t len = strlen(name);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path + 1, name, len); /* sun_path[0] stays 0: abstract */
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

/* Who holds an abstract name now, for the log: "pid N, uid U", or why we cannot tell. */
static void holder(const char *name, char *buf, size_t size)
{
	struct sockaddr_un sa;
	socklen_t salen = abstract_addr(&sa, name);
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd >= 0 && !connect(fd, (struct sockaddr *)&sa, salen) &&
	    !getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen))
		snprintf(buf, size, "pid %d, uid %u", (int)cred.pid, (unsigned)cred.uid);
	else
		snprintf(buf, size, "a socket that does not accept connections");
	if (fd >= 0)
		close(fd);
}

static int bind_name(int fd, const char *name)
{
	struct sockaddr_un sa;
	socklen_t salen = abstract_addr(&sa, name);

	return bind(fd, (struct sockaddr *)&sa, salen) ? -errno : 0;
}

int approvals__listen(struct approvals *q)
{
	char who[64];
	uint32_t r = 0;
	int fd, err;

	if (q->listen_fd >= 0)
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		err = -errno;
		log_err("control socket: %s", strerror(-err));
		return err;
	}
	snprintf(q->sock_name, sizeof(q->sock_name), APPROVAL_SOCK_PREFIX "%d", (int)q->pid);
	err = bind_name(fd, q->sock_name);
	if (err == -EADDRINUSE) {
		/*
		 * Someone took our name first (an earlier process cannot have: an abstract name
		 * dies with its socket). A name of our own with a random suffix still works: the
		 * commands find it in /proc/net/unix and check that its listener is our pid.
		 */
		holder(q->sock_name, who, sizeof(who));
		log_warn("control socket @%s is taken (%s): not by this gateway", q->sock_name,
			 who);
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (uint32_t)random();
		snprintf(q->sock_name, sizeof(q->sock_name), APPROVAL_SOCK_PREFIX "%d.%08x",
			 (int)q->pid, r);
		err = bind_name(fd, q->sock_name);
	}
	if (!err && listen(fd, 16))
		err = -errno;
	if (err) {
		log_err("control socket @%s: %s", q->sock_name, strerror(-err));
		close(fd);
		return err;
	}
	q->listen_fd = fd;
	return 0;
}

size_t approvals__pollfds(struct approvals *q, struct pollfd *pfd, size_t max)
{
	size_t n = 0;

	if (q->listen_fd < 0 || !max)
		return 0;
	pfd[n++] = (struct pollfd){ .fd = q->listen_fd, .events = POLLIN };
	for (size_t i = 0; i < APPROVAL_CONNS && n < max; i++) {
		struct approval_conn *c = &q->conns[i];

		if (c->fd >= 0)
			pfd[n++] =
				(struct pollfd){ .fd = c->fd, .events = c->out ? POLLOUT : POLLIN };
	}
	return n;
}

static void conn_reply(struct approval_conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Append to the connection's answer (sent once the command is handled). */
static void conn_reply(struct approval_conn *c, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL, *nb;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	nb = realloc(c->out, c->out_len + (size_t)n + 1);
	if (nb) {
		memcpy(nb + c->out_len, s, (size_t)n + 1);
		c->out = nb;
		c->out_len += (size_t)n;
	}
	free(s);
}

static const struct rule *approve_rule(const struct policy *p, const char *tool)
{
	const struct rule *r = p ? policy__lookup(p, tool) : NULL;

	return r && r->action == ACTION_APPROVE ? r : NULL;
}

static int authorize(struct approvals *q, const struct rule *r, const struct approval_peer *peer,
		     char *how, size_t size)
{
	return approval__authorize(r ? &r->approvers : NULL, peer, q->client_uid, geteuid(), how,
				   size);
}

/* Root, the agent itself (its uid, the gateway's) and whoever may approve the call see it. */
static bool may_see(struct approvals *q, const struct rule *r, const struct approval_peer *peer)
{
	char how[400];

	return peer->uid == 0 || peer->uid == q->client_uid || peer->uid == geteuid() ||
	       !authorize(q, r, peer, how, sizeof(how));
}

/* A JSON string of s, which may not be UTF-8 (a path, a server's argv[0]); null for NULL. */
static json_t *json_text(const char *s)
{
	json_t *j;
	char *c;

	if (!s)
		return json_null();
	j = json_string(s);
	if (j || !(c = strdup(s)))
		return j;
	/* not UTF-8: each byte beyond ASCII becomes '?', so the call is still listed */
	for (char *p = c; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(c);
	free(c);
	return j;
}

static json_t *call_json(struct approvals *q, const struct approval *a, const struct rule *r,
			 uint64_t now_us)
{
	unsigned via = r ? r->approval_via : VIA_CLIENT | VIA_OPERATOR;
	char who[1024];
	json_t *o, *vias = json_array();
	char *args = a->args ? json_dumps(a->args, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	approval__who(r ? &r->approvers : NULL, via, who, sizeof(who));
	if (vias && (via & VIA_CLIENT))
		json_array_append_new(vias, json_string("client"));
	if (vias && (via & VIA_OPERATOR))
		json_array_append_new(vias, json_string("operator"));
	o = json_pack("{s:s, s:i, s:o, s:s, s:s, s:{s:i, s:i, s:o}, s:i, s:I, s:I, s:s?, s:o, "
		      "s:s, s:s}",
		      "id", a->id, "pid", (int)q->pid, "server", json_text(q->server), "tool",
		      a->tool, "digest", a->digest, "client", "pid", (int)q->client_pid, "uid",
		      (int)q->client_uid, "exe", json_text(q->client_exe), "gateway_uid",
		      (int)geteuid(), "waiting_s", (json_int_t)((now_us - a->started_us) / 1000000),
		      "timeout_s", (json_int_t)a->timeout_s, "rule", r ? r->ptr : NULL, "via", vias,
		      "asked",
		      a->elicit_id ? "client" :
		      a->on_socket ? "operator" :
				     "nobody",
		      "may_approve", who);
	/* an approver reads what they approve; beyond a size, only its digest and size */
	if (o && (!args || strlen(args) <= LIST_ARGS_MAX))
		json_object_set_new(o, "arguments", a->args ? json_incref(a->args) : json_object());
	else if (o)
		json_object_set_new(o, "arguments_bytes", json_integer((json_int_t)strlen(args)));
	free(args);
	return o;
}

static void serve_list(struct approvals *q, struct approval_conn *c, const struct policy *p,
		       uint64_t now_us)
{
	size_t waiting = 0, shown = 0;

	for (struct approval *a = q->head; a; a = a->next) {
		const struct rule *r = approve_rule(p, a->tool);
		json_t *o;
		char *line;

		if (a->state != APPROVAL_WAITING)
			continue;
		waiting++;
		if (!may_see(q, r, &c->peer))
			continue;
		o = call_json(q, a, r, now_us);
		line = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (line)
			conn_reply(c, "%s\n", line);
		shown++;
		free(line);
		json_decref(o);
	}
	if (waiting && !shown)
		conn_reply(c,
			   "error: permission denied: uid %u may not see the calls waiting here\n",
			   (unsigned)c->peer.uid);
}

static void refused(struct approvals *q, const struct approval_conn *c, const char *id,
		    const char *verb, const char *why)
{
	q->refusals++;
	if (q->refusals <= REFUSALS_LOGGED || q->refusals % 100 == 0)
		log_warn("control socket: uid %u (pid %d) may not %s call %s: %s (refusal %lu)",
			 (unsigned)c->peer.uid, (int)c->peer.pid, verb, id, why, q->refusals);
}

static void serve_decide(struct approvals *q, struct approval_conn *c, const struct policy *p,
			 const char *id, bool yes)
{
	const char *verb = yes ? "approve" : "deny";
	char token[APPROVAL_TOKEN_HEX + 1], digest[APPROVAL_ID_DIGEST_HEX + 1], how[400];
	struct approval *a;
	const struct rule *r;
	pid_t pid;

	if (approval__parse_id(id, &pid, token, digest)) {
		conn_reply(c,
			   "error: '%.60s' is not an approval ID (PID-CALL-DIGEST, from "
			   "`mcpfence approvals`)\n",
			   id);
		return;
	}
	if (pid != q->pid) {
		conn_reply(c, "error: call %s is not held by this gateway (pid %d)\n", id,
			   (int)q->pid);
		return;
	}
	for (a = q->head; a; a = a->next)
		if (a->state == APPROVAL_WAITING && !strcmp(a->token, token))
			break;
	if (!a) {
		conn_reply(c,
			   "error: no call %s waits for approval here (decided, expired, "
			   "cancelled, or never held)\n",
			   id);
		return;
	}
	/* the same call number with other arguments: a stale or forged ID decides nothing */
	if (strncmp(a->digest, digest, APPROVAL_ID_DIGEST_HEX)) {
		refused(q, c, id, verb, "its digest is not that of the call's tool and arguments");
		conn_reply(c,
			   "error: %s does not name the call waiting as %s (its tool and "
			   "arguments have the digest %.16s): nothing decided\n",
			   id, token, a->digest);
		return;
	}
	r = approve_rule(p, a->tool);
	if (r && !(r->approval_via & VIA_OPERATOR)) {
		refused(q, c, id, verb, "the rule asks the client only");
		conn_reply(c,
			   "error: call %s is asked through the client only (%s has \"via\": "
			   "[\"client\"]): the control socket does not decide it\n",
			   id, r->ptr);
		return;
	}
	if (authorize(q, r, &c->peer, how, sizeof(how))) {
		refused(q, c, id, verb, how);
		conn_reply(c, "error: permission denied: uid %u may not %s this call: %s\n",
			   (unsigned)c->peer.uid, verb, how);
		return;
	}
	a->state = yes ? APPROVAL_APPROVED : APPROVAL_DENIED;
	approval__uid_name(c->peer.uid, a->by, sizeof(a->by));
	log_info("call %s (tool \"%s\") %s by %s (%s)", id, a->tool, yes ? "approved" : "denied",
		 a->by, how);
	conn_reply(c, "ok: call %s (tool \"%s\" of %s) %s\n", id, a->tool,
		   q->server ? q->server : "this server", yes ? "approved" : "denied");
}

static void conn_command(struct approvals *q, struct approval_conn *c, const struct policy *p,
			 uint64_t now_us)
{
	char *cmd = c->in;

	cmd[strcspn(cmd, "\r\n")] = 0;
	if (!strcmp(cmd, "list"))
		serve_list(q, c, p, now_us);
	else if (!strncmp(cmd, "approve ", 8))
		serve_decide(q, c, p, cmd + 8, true);
	else if (!strncmp(cmd, "deny ", 5))
		serve_decide(q, c, p, cmd + 5, false);
	else
		conn_reply(c, "error: unknown command (list, approve ID, deny ID)\n");
	if (!c->out)
		conn_reply(c, "%s", ""); /* an empty list: the answer is EOF */
}

static void conn_io(struct approvals *q, struct approval_conn *c, short revents,
		    const struct policy *p, uint64_t now_us)
{
	ssize_t n;

	if (!c->out && (revents & (POLLIN | POLLHUP))) {
		n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->in_len += (size_t)n;
		c->in[c->in_len] = 0;
		if (!memchr(c->in, '\n', c->in_len)) {
			if (c->in_len < sizeof(c->in) - 1)
				return;
			conn_reply(c, "error: command too long\n");
		} else {
			conn_command(q, c, p, now_us);
		}
	} else if (!c->out && (revents & (POLLERR | POLLNVAL))) {
		conn_close(c);
		return;
	}
	/* write what the socket takes; the rest when poll says it has room */
	while (c->out && c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0)
			break;
		c->out_off += (size_t)n;
	}
	if (c->out)
		conn_close(c);
}

/*
 * A free slot, else the one of the oldest connection of the uid that holds the most: a uid
 * that opens connections and never finishes them only ever pushes out its own.
 */
static struct approval_conn *conn_slot(struct approvals *q)
{
	struct approval_conn *victim = NULL;
	size_t most = 0;

	for (size_t i = 0; i < APPROVAL_CONNS; i++)
		if (q->conns[i].fd < 0)
			return &q->conns[i];
	for (size_t i = 0; i < APPROVAL_CONNS; i++) {
		size_t count = 0;

		for (size_t j = 0; j < APPROVAL_CONNS; j++)
			count += q->conns[j].peer.uid == q->conns[i].peer.uid;
		if (count > most ||
		    (count == most && q->conns[i].deadline_us < victim->deadline_us)) {
			most = count;
			victim = &q->conns[i];
		}
	}
	conn_close(victim);
	return victim;
}

static void conn_accept(struct approvals *q, uint64_t now_us)
{
	for (int i = 0; i < APPROVAL_CONNS; i++) {
		struct ucred cred;
		socklen_t clen = sizeof(cred), glen = 0;
		struct approval_conn *c;
		gid_t *groups = NULL;
		int fd = accept4(q->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0)
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen)) {
			close(fd);
			continue;
		}
		/* the groups the peer had when it connected; none known: its primary group only */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &glen) && errno == ERANGE &&
		    glen && (groups = malloc(glen)) &&
		    getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen))
			glen = 0;
		c = conn_slot(q);
		c->fd = fd;
		c->groups = groups;
		c->peer = (struct approval_peer){ .pid = cred.pid,
						  .uid = cred.uid,
						  .gid = cred.gid,
						  .groups = groups,
						  .ngroups = groups ? glen / sizeof(gid_t) : 0 };
		c->deadline_us = now_us + CONN_TIMEOUT_US;
	}
}

void approvals__serve(struct approvals *q, const struct policy *p, const struct pollfd *pfd,
		      size_t n, uint64_t now_us)
{
	bool incoming = false;

	/* the connections first: one closed here may free a descriptor that accept reuses */
	for (size_t i = 0; i < n; i++) {
		if (!pfd[i].revents)
			continue;
		if (pfd[i].fd == q->listen_fd) {
			incoming = true;
			continue;
		}
		for (size_t j = 0; j < APPROVAL_CONNS; j++)
			if (q->conns[j].fd >= 0 && q->conns[j].fd == pfd[i].fd)
				conn_io(q, &q->conns[j], pfd[i].revents, p, now_us);
	}
	if (incoming)
		conn_accept(q, now_us);
}

void approval__question(const char *tool, const char *server, const json_t *args,
			const char *pointer, uint32_t timeout_s, char *msg, size_t size)
{
	char *text = args ? json_dumps(args, JSON_COMPACT) : NULL;

	snprintf(msg, size,
		 "mcpfence: the agent asks to call the tool \"%.100s\" of %.100s with arguments "
		 "%.600s. Allow this call? (policy rule %.100s; without an answer in %u s it is "
		 "denied)",
		 tool, server, text ? text : "{}", pointer, timeout_s);
	free(text);
}

json_t *approval__elicit_params(const char *message)
{
	return json_pack("{s:s, s:{s:s, s:{s:{s:s, s:s, s:s, s:b}}, s:[s]}}", "message", message,
			 "requestedSchema", "type", "object", "properties", "approve", "type",
			 "boolean", "title", "Allow this call", "description",
			 "Allow the agent to make this tool call once", "default", 0, "required",
			 "approve");
}

json_t *approval__elicit_request(const char *id, const char *message)
{
	return json_pack("{s:s, s:s, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method",
			 "elicitation/create", "params", approval__elicit_params(message));
}

json_t *approval__elicit_cancelled(const char *id, const char *reason)
{
	json_t *params = json_pack("{s:s}", "requestId", id);

	if (params && reason)
		json_object_set_new(params, "reason", json_string(reason));
	return json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", "notifications/cancelled",
			 "params", params);
}

bool approval__elicit_answer(struct approval *a, const json_t *msg, const struct rule *r)
{
	const json_t *result = json_object_get(msg, "result");
	const char *action = json_string_value(json_object_get(result, "action"));
	const json_t *approve = json_object_get(json_object_get(result, "content"), "approve");
	const char *err;

	if (result) {
		snprintf(a->by, sizeof(a->by), "elicitation");
		a->state = action && !strcmp(action, "accept") && json_is_true(approve) ?
				   APPROVAL_APPROVED :
				   APPROVAL_DENIED;
		return false;
	}
	err = json_string_value(json_object_get(json_object_get(msg, "error"), "message"));
	free(a->elicit_id);
	a->elicit_id = NULL;
	if (!r || (r->approval_via & VIA_OPERATOR)) {
		log_warn(
			"the client refused elicitation/create (%.80s); falling back to the control "
			"socket",
			err ? err : "error");
		return true;
	}
	a->state = APPROVAL_UNASKABLE;
	snprintf(a->why, sizeof(a->why),
		 "the client could not ask its user (%.80s) and the rule asks nobody else "
		 "(\"via\": [\"client\"])",
		 err ? err : "error");
	return false;
}

void approval__deny_unless_approved(struct decision *d, enum approval_state state,
				    uint32_t timeout_s, const char *why, const char *by)
{
	char ptr[DECIDE_PTR_LEN];

	if (d->verdict == VERDICT_DENY || state == APPROVAL_APPROVED)
		return;
	snprintf(ptr, sizeof(ptr), "%s", d->pointer);
	if (state == APPROVAL_EXPIRED)
		decide__deny(d, KIND_APPROVAL, ptr, "nobody approved the call within %u s",
			     timeout_s);
	else if (state == APPROVAL_UNASKABLE)
		decide__deny(d, KIND_APPROVAL, ptr, "%s", why);
	else
		decide__deny(d, KIND_APPROVAL, ptr, "a human declined the call (%s)",
			     by ? by : "?");
}
