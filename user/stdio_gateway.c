// SPDX-License-Identifier: Apache-2.0
/*
 * stdio_gateway: `mcpfence run` — the server's stdin and stdout are pipes to us, our own stdin
 * and stdout are the client's. One poll loop moves whole lines both ways, in order, and judges
 * what the client sends: decide__call, a human when the rule asks, limits__reserve, forward.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include "approval.h"
#include "audit.h"
#include "clock.h"
#include "decide.h"
#include "jsonrpc.h"
#include "limits.h"
#include "log.h"
#include "mrtr.h"
#include "policy.h"
#include "server_proc.h"
#include "stdio_find.h"
#include "stdio_gateway.h"
#include "text.h"
#include "wbuf.h"

#define HIGH_WATER (8u << 20) /* stop reading a side while this much waits to be written */
#define MAX_SERVER_WARNINGS 10
#define MAX_HELD 64 /* calls waiting for approval; more are denied */

/*
 * A client batch (2025-03-26): its elements are judged and sent to the server one by one (a
 * server may not read batches), and their answers go back to the client as one array.
 */
struct batch {
	json_t *pending; /* ids whose answers belong in this batch and are not in yet */
	json_t *replies; /* answers gathered */
	struct batch *next;
};

struct gw {
	struct policy *policy;
	const char *policy_path;
	char policy_real[PATH_MAX]; /* the policy file's real path: grant budgets' key */
	char *server_id;	    /* server_proc__identity: grant budgets' key */
	struct limits *limits;
	struct audit *audit;
	struct approvals approvals;
	struct mrtr mrtr; /* approval state of the 2026-07-28 revision */
	struct server_proc srv;
	int sig_fd;
	int in_flags, out_flags; /* our stdin/stdout flags, restored at exit */
	struct jr_reader cin, sin;
	struct wbuf cout, sout; /* to the client, to the server */
	bool client_eof, client_gone, server_eof;
	bool client_oversize, server_oversize;
	char session[40];
	char own_prefix[48]; /* our request ids: "mcpfence-<128 random bits>-N" */
	uint64_t own_next;
	bool client_elicitation;
	char server_name[128];
	bool name_given;
	bool list_changed; /* the server said it sends notifications/tools/list_changed */
	pid_t client_pid;
	uid_t client_uid;
	char client_exe[256];
	char client_name[128]; /* clientInfo.name: of initialize, or of the last request's _meta */
	char agent[300];
	json_t *init_id;       /* id of initialize or server/discover, to learn the server's name */
	json_t *server_info;   /* the server's serverInfo, once it said it (any revision) */
	struct batch *batches; /* client batches whose answers are not all in */
	struct batch *cur;     /* the batch being read */
	unsigned server_warnings;
};

/* --- what goes out --- */

static void to_client_json(struct gw *g, json_t *msg)
{
	size_t len;
	char *line;

	if (!msg)
		return;
	line = jsonrpc__dump_line(msg, &len);
	json_decref(msg);
	if (!line || g->client_gone) {
		free(line);
		return;
	}
	if (wbuf__put(&g->cout, line, len))
		log_err("out of memory: a message to the client is lost");
	free(line);
}

static bool take_id(json_t *ids, const json_t *id)
{
	for (size_t i = 0; id && i < json_array_size(ids); i++) {
		if (json_equal(json_array_get(ids, i), (json_t *)id)) {
			json_array_remove(ids, i);
			return true;
		}
	}
	return false;
}

static void batch_free(struct gw *g, struct batch *b)
{
	for (struct batch **p = &g->batches; *p; p = &(*p)->next) {
		if (*p == b) {
			*p = b->next;
			break;
		}
	}
	json_decref(b->pending);
	json_decref(b->replies);
	free(b);
}

/* Send the batch's answers when none is missing (or when force: none can come any more). */
static void batch_done(struct gw *g, struct batch *b, bool force)
{
	if (json_array_size(b->pending) && !force)
		return;
	if (json_array_size(b->replies))
		to_client_json(g, json_incref(b->replies));
	batch_free(g, b);
}

/* An answer of the server or of ours that belongs to a batch goes there (steals msg). */
static bool batch_take(struct gw *g, json_t *msg)
{
	const json_t *id = json_object_get(msg, "id");

	for (struct batch *b = g->batches; b; b = b->next) {
		if (take_id(b->pending, id)) {
			json_array_append_new(b->replies, msg);
			batch_done(g, b, false);
			return true;
		}
	}
	return false;
}

/* An answer to the client: into the batch being read, a batch waiting for it, or out. */
static void reply(struct gw *g, json_t *msg)
{
	if (!msg)
		return;
	if (g->cur) {
		json_array_append_new(g->cur->replies, msg);
		return;
	}
	if (g->batches && batch_take(g, msg))
		return;
	to_client_json(g, msg);
}

static void to_client_raw(struct gw *g, const char *line, size_t len, bool newline)
{
	if (g->client_gone)
		return;
	if (wbuf__put(&g->cout, line, len) || (newline && wbuf__put(&g->cout, "\n", 1)))
		log_err("out of memory: a message to the client is lost");
}

/* Queue a line for the server; -EPIPE when its stdin is closed. */
static int to_server_raw(struct gw *g, const char *line, size_t len, bool newline)
{
	if (g->srv.in_closed)
		return -EPIPE;
	if (wbuf__put(&g->sout, line, len) || (newline && wbuf__put(&g->sout, "\n", 1))) {
		log_err("out of memory: a message to the server is lost");
		return -ENOMEM;
	}
	return 0;
}

/* The message as it came (raw, without its newline), or its compact form when raw is NULL. */
static int to_server_msg(struct gw *g, const json_t *msg, const char *raw, size_t raw_len)
{
	size_t len;
	char *line;
	int err;

	if (raw)
		return to_server_raw(g, raw, raw_len, true);
	line = jsonrpc__dump_line(msg, &len);
	if (!line)
		return -ENOMEM;
	err = to_server_raw(g, line, len, false);
	free(line);
	return err;
}

/* --- policy helpers (exported for tests) --- */

bool stdio_gateway__listable(const struct policy *p, const char *tool)
{
	const struct rule *r;

	if (p->deny_all || !tool || !tool[0] || policy__hidden(p, tool) >= 0)
		return false;
	r = policy__lookup(p, tool);
	if (r)
		return r->action != ACTION_DENY;
	return p->def == ACTION_ALLOW;
}

size_t stdio_gateway__filter_tools(const struct policy *p, json_t *result)
{
	json_t *tools = json_object_get(result, "tools");
	size_t removed = 0;

	if (!json_is_array(tools))
		return 0;
	for (size_t i = 0; i < json_array_size(tools);) {
		json_t *name = json_object_get(json_array_get(tools, i), "name");

		if (stdio_gateway__listable(p, json_string_value(name))) {
			i++;
			continue;
		}
		json_array_remove(tools, i);
		removed++;
	}
	return removed;
}

bool stdio_gateway__private_view(json_t *result)
{
	const char *scope = json_string_value(json_object_get(result, "cacheScope"));

	if (!json_object_get(result, "cacheScope") || (scope && !strcmp(scope, "private")))
		return false;
	json_object_set_new(result, "cacheScope", json_string("private"));
	return true;
}

json_t *stdio_gateway__denial(const json_t *req, const char *reason, const char *rule,
			      const char *kind, uint64_t retry_after_s, const json_t *server_info)
{
	char text[DECIDE_REASON_LEN + 32];
	json_t *retry = retry_after_s ? json_integer(retry_after_s) : json_null();
	json_t *result, *meta;

	snprintf(text, sizeof(text), "denied by policy: %s", reason);
	result = json_pack("{s:[{s:s, s:s}], s:b, s:{s:s, s:s, s:o}}", "content", "type", "text",
			   "text", text, "isError", 1, "_meta", "rule", rule, "kind", kind,
			   "retry_after_s", retry);
	meta = json_object_get(result, "_meta");
	if (result && jsonrpc__request_revision(json_object_get(req, "params"))) {
		json_object_set_new(result, "resultType", json_string("complete"));
		if (json_is_object(server_info))
			json_object_set(meta, MCP_META_SERVER_INFO, (json_t *)server_info);
	}
	return jsonrpc__result(json_object_get(req, "id"), result);
}

/* --- audit --- */

static void audit_call(struct gw *g, const char *method, const char *tool, const json_t *args,
		       const json_t *id, const struct decision *d, const char *approved_by,
		       uint64_t t0)
{
	char idtext[128];
	struct audit_event ev = {
		.plane = "stdio",
		.server = g->server_name,
		.session = g->session,
		.client_pid = g->client_pid,
		.client_uid = g->client_uid,
		.client_exe = g->client_exe[0] ? g->client_exe : NULL,
		.client_name = g->client_name[0] ? g->client_name : NULL,
		.method = method,
		.tool = tool,
		.args = args,
		.approved_by = approved_by,
		.latency_us = clock__mono_us() - t0,
		.request_id = idtext,
	};

	audit__set_decision(&ev, d);
	jsonrpc__id_text(id, idtext, sizeof(idtext));
	audit__write(g->audit, &ev);
}

/* A denial of the call req, audited with who declined it when a human did (by), else NULL. */
static void deny_call_by(struct gw *g, const json_t *req, const char *tool, const json_t *args,
			 const struct decision *d, const char *by, uint64_t t0)
{
	audit_call(g, "tools/call", tool, args, json_object_get(req, "id"), d, by, t0);
	reply(g,
	      stdio_gateway__denial(req, d->reason, d->pointer, decide__kind_name(d->kind),
				    d->kind == KIND_LIMIT ? d->retry_after_s : 0, g->server_info));
}

static void deny_call(struct gw *g, const json_t *req, const char *tool, const json_t *args,
		      const struct decision *d, uint64_t t0)
{
	deny_call_by(g, req, tool, args, d, NULL, t0);
}

/* --- tools/call --- */

static void close_server_stdin(struct gw *g);

static void flush_server(struct gw *g)
{
	int err;

	if (!wbuf__pending(&g->sout) || g->srv.in_closed)
		return;
	err = wbuf__flush(&g->sout, g->srv.to_fd);
	if (err) {
		log_warn("writing to the server: %s", strerror(-err));
		close_server_stdin(g);
	}
}

/*
 * A call goes to the server as soon as it is judged, before its audit line is formatted, when
 * no other whole line of the client waits to be read behind it (those go out together, in one
 * write, at the top of the loop). Order is kept: what is queued goes first.
 */
static void send_early(struct gw *g)
{
	if (!jsonrpc__reader_has_line(&g->cin))
		flush_server(g);
}

/* The keys of this gateway's budgets, by scope. */
static struct scope_keys keys_of(const struct gw *g)
{
	return (struct scope_keys){ .session = g->session,
				    .agent = g->agent,
				    .policy = g->policy_real,
				    .server = g->server_id };
}

/* Limits, then the server: the last steps of an allowed call. */
static void reserve_and_forward(struct gw *g, const json_t *msg, const char *raw, size_t len,
				const char *tool, const json_t *args, struct decision *d,
				const char *approved_by, uint64_t t0)
{
	const json_t *id = json_object_get(msg, "id");
	struct scope_keys keys = keys_of(g);
	struct reservation res;

	if (limits__reserve(g->limits, g->policy, d->rule, &keys, &res, d)) {
		deny_call(g, msg, tool, args, d, t0);
		return;
	}
	if (to_server_msg(g, msg, raw, len)) {
		/* the call never reaches the server: give its budget back */
		limits__release(g->limits, &res);
		reply(g,
		      jsonrpc__error(id, JSONRPC_INTERNAL_ERROR, "mcpfence: the server is gone"));
		return;
	}
	d->verdict = VERDICT_ALLOW;
	send_early(g);
	audit_call(g, "tools/call", tool, args, id, d, approved_by, t0);
}

/* The question a client's user is asked about a call (elicitation/create's message). */
static void question(const struct gw *g, const char *tool, const json_t *args,
		     const struct decision *d, uint32_t timeout_s, char *msg, size_t size)
{
	approval__question(tool, g->server_name, args, d->pointer, timeout_s, msg, size);
}

static void ask_client(struct gw *g, struct approval *a, const struct decision *d)
{
	char id[80], msg[1200];
	json_t *req;

	snprintf(id, sizeof(id), "%s%llu", g->own_prefix, (unsigned long long)++g->own_next);
	question(g, a->tool, a->args, d, a->timeout_s, msg, sizeof(msg));
	req = approval__elicit_request(id, msg);
	a->elicit_id = strdup(id);
	if (!req || !a->elicit_id) {
		json_decref(req);
		return;
	}
	to_client_json(g, req);
}

/* Nobody the rule lets decide can be asked: the call is denied with why. */
static void unaskable(struct approval *a, const char *why)
{
	a->state = APPROVAL_UNASKABLE;
	snprintf(a->why, sizeof(a->why), "%s", why);
}

static void ask_socket(struct gw *g, struct approval *a)
{
	/* logged; nobody could answer: denied now rather than at the timeout */
	if (approvals__listen(&g->approvals)) {
		unaskable(a, "the control socket cannot be used");
		return;
	}
	a->on_socket = true;
	log_info("call %s (tool \"%s\") waits for approval: mcpfence approve %s, or mcpfence "
		 "deny %s (denied in %u s)",
		 a->id, a->tool, a->id, a->id, a->timeout_s);
}

/*
 * A call of the 2026-07-28 revision whose client can ask its user (elicitation among the
 * capabilities in the request's _meta) is answered with an input_required result that asks;
 * the client's retry carries the answer (judge_retry). true: asked.
 */
static bool ask_in_result(struct gw *g, const json_t *msg, const char *tool,
			  const struct decision *d, uint32_t timeout_s, uint64_t t0)
{
	json_t *params = json_object_get(msg, "params");
	json_t *caps = json_object_get(json_object_get(params, "_meta"), MCP_META_CLIENT_CAPS);
	json_t *result;
	char text[1200];

	if (!jsonrpc__request_revision(params) ||
	    !json_is_object(json_object_get(caps, "elicitation")))
		return false;
	question(g, tool, json_object_get(params, "arguments"), d, timeout_s, text, sizeof(text));
	result = mrtr__ask(&g->mrtr, tool, params, text, timeout_s, mrtr__now(&g->mrtr));
	if (!result) {
		struct decision dd = *d;

		decide__deny(&dd, KIND_APPROVAL, d->pointer, "cannot ask for approval: %s",
			     errno == E2BIG ? "the server's state to carry is too large" :
					      strerror(errno));
		deny_call(g, msg, tool, json_object_get(params, "arguments"), &dd, t0);
		return true;
	}
	if (json_is_object(g->server_info))
		json_object_set_new(result, "_meta",
				    json_pack("{s:O}", MCP_META_SERVER_INFO, g->server_info));
	reply(g, jsonrpc__result(json_object_get(msg, "id"), result));
	return true;
}

static void hold_call(struct gw *g, json_t *msg, const char *raw, size_t len, const char *tool,
		      const struct decision *d, uint64_t t0)
{
	uint32_t timeout =
		d->rule && d->rule->approval_timeout_s ? d->rule->approval_timeout_s : 120;
	unsigned via = d->rule ? d->rule->approval_via : VIA_CLIENT | VIA_OPERATOR;
	struct approval *a = NULL;
	size_t held = 0;

	if ((via & VIA_CLIENT) && ask_in_result(g, msg, tool, d, timeout, t0))
		return;

	for (a = g->approvals.head; a; a = a->next)
		held++;
	if (held < MAX_HELD)
		a = approvals__add(&g->approvals, tool, json_incref(msg), raw, len, timeout,
				   clock__mono_us());
	if (!a) {
		struct decision dd = *d;

		if (held < MAX_HELD)
			decide__deny(&dd, KIND_APPROVAL, d->pointer, "cannot hold the call: %s",
				     strerror(errno));
		else
			decide__deny(&dd, KIND_APPROVAL, d->pointer,
				     "too many calls already wait for approval");
		deny_call(g, msg, tool, NULL, &dd, clock__mono_us());
		return;
	}
	/*
	 * The control socket lists every held call, whoever is asked: the agent's uid and the
	 * operators see what waits. "via": the client when it can ask its user and the rule
	 * trusts it to, else the operator.
	 */
	approvals__listen(&g->approvals);
	if ((via & VIA_CLIENT) && g->client_elicitation)
		ask_client(g, a, d);
	else if (via & VIA_OPERATOR)
		ask_socket(g, a);
	else
		unaskable(a, "the rule asks only the client (\"via\": [\"client\"]) and this "
			     "client cannot ask its user (it did not declare the elicitation "
			     "capability)");
}

/*
 * A retry of the 2026-07-28 revision carrying the approval state we gave (ask_in_result): the
 * call goes on, as the server expects it (mrtr__answer restores it), when the user approved it
 * or the policy in force allows it outright; otherwise it is denied with why.
 */
static void judge_retry(struct gw *g, json_t *msg, const char *tool, const json_t *args,
			struct decision *d, uint64_t t0)
{
	json_t *params = json_object_get(msg, "params");
	enum mrtr_answer a;
	char why[200], ptr[DECIDE_PTR_LEN];

	if (d->verdict == VERDICT_DENY) {
		deny_call(g, msg, tool, args, d, t0);
		return;
	}
	a = mrtr__answer(&g->mrtr, tool, params, mrtr__now(&g->mrtr), why, sizeof(why));
	if (a == MRTR_APPROVED) {
		reserve_and_forward(g, msg, NULL, 0, tool, args, d,
				    d->verdict == VERDICT_APPROVE ? "elicitation" : NULL, t0);
		return;
	}
	if (d->verdict == VERDICT_APPROVE) {
		snprintf(ptr, sizeof(ptr), "%s", d->pointer);
		decide__deny(d, KIND_APPROVAL, ptr, "%s", why);
		deny_call_by(g, msg, tool, args, d, a == MRTR_DECLINED ? "elicitation" : NULL, t0);
		return;
	}
	/* allowed outright now (the policy was reloaded): without what was ours */
	json_object_del(params, "requestState");
	json_object_del(json_object_get(params, "inputResponses"), MRTR_KEY);
	reserve_and_forward(g, msg, NULL, 0, tool, args, d, NULL, t0);
}

static void judge_call(struct gw *g, json_t *msg, const char *raw, size_t len)
{
	uint64_t t0 = clock__mono_us();
	json_t *params = json_object_get(msg, "params");
	json_t *name = json_object_get(params, "name");
	json_t *args = json_object_get(params, "arguments");
	const char *tool = json_string_value(name);
	struct decision d;

	if (!json_is_object(params) || !tool) {
		memset(&d, 0, sizeof(d));
		decide__deny(&d, KIND_INVALID, "(invalid call)",
			     "tools/call needs \"params\" with a string \"name\"");
		deny_call(g, msg, tool, NULL, &d, t0);
		return;
	}
	decide__call(g->policy, tool, args, &d);
	if (d.verdict == VERDICT_DENY) {
		deny_call(g, msg, tool, args, &d, t0);
		return;
	}
	if (mrtr__ours(params)) {
		judge_retry(g, msg, tool, args, &d, t0);
		return;
	}
	if (d.verdict == VERDICT_APPROVE) {
		hold_call(g, msg, raw, len, tool, &d, t0);
		return;
	}
	reserve_and_forward(g, msg, raw, len, tool, args, &d, NULL, t0);
}

/* A held call is decided: judge it again under the policy in force now, then limits. */
static void finish_approval(struct gw *g, struct approval *a)
{
	const char *by = a->by[0] ? a->by : NULL; /* who decided, when someone did */
	struct decision d;

	decide__call(g->policy, a->tool, a->args, &d);
	approval__deny_unless_approved(&d, a->state, a->timeout_s, a->why, by);
	/* the client still shows our question when the call ended otherwise: take it back */
	if (a->elicit_id && (!by || strcmp(by, "elicitation"))) {
		const char *reason = a->state == APPROVAL_EXPIRED ? "approval timed out" :
								    "decided by an operator";

		to_client_json(g, approval__elicit_cancelled(a->elicit_id, reason));
	}
	if (d.verdict == VERDICT_DENY)
		deny_call_by(g, a->msg, a->tool, a->args, &d, by, a->started_us);
	else
		reserve_and_forward(g, a->msg, a->raw, a->raw_len, a->tool, a->args, &d, by,
				    a->started_us);
	approvals__remove(&g->approvals, a);
}

/* The client answered one of our elicitation/create requests. */
static void elicitation_answer(struct gw *g, const json_t *msg, const char *id)
{
	struct approval *a = approvals__find_elicit(&g->approvals, id);

	if (!a || a->state != APPROVAL_WAITING) {
		log_debug("answer to %s, which no longer waits", id);
		return;
	}
	if (approval__elicit_answer(a, msg, policy__lookup(g->policy, a->tool)))
		ask_socket(g, a);
}

/* --- messages from the client --- */

static void client_invalid(struct gw *g, const json_t *id, int code, const char *why)
{
	struct decision d;

	memset(&d, 0, sizeof(d));
	decide__deny(&d, KIND_INVALID, "(invalid message)", "%s", why);
	log_warn("client message refused: %s", why);
	audit_call(g, NULL, NULL, NULL, id, &d, NULL, clock__mono_us());
	reply(g, jsonrpc__error(id, code, why));
}

static bool own_id(const struct gw *g, const json_t *id)
{
	return json_is_string(id) &&
	       !strncmp(json_string_value(id), g->own_prefix, strlen(g->own_prefix));
}

static void client_msg(struct gw *g, json_t *v, const char *raw, size_t len);

static void client_notification(struct gw *g, struct jr_msg *m, const char *raw, size_t len)
{
	if (!strcmp(m->method, "tools/call")) {
		/* a call without an id cannot be answered: it is judged invalid and dropped */
		client_invalid(g, NULL, JSONRPC_INVALID_REQUEST,
			       "tools/call without an \"id\" is not allowed");
		return;
	}
	if (!strcmp(m->method, "notifications/cancelled")) {
		json_t *rid = json_object_get(m->params, "requestId");
		struct approval *a = approvals__find_request(&g->approvals, rid);

		/* the server will not answer a cancelled request: its batch does not wait */
		for (struct batch *b = g->batches; b; b = b->next) {
			if (take_id(b->pending, rid)) {
				batch_done(g, b, false);
				break;
			}
		}

		if (a) {
			struct decision d;

			/* the server never saw the call: nothing to tell it */
			memset(&d, 0, sizeof(d));
			decide__deny(&d, KIND_APPROVAL, "(cancelled)",
				     "cancelled by the client while waiting for approval");
			audit_call(g, "tools/call", a->tool, a->args, rid, &d, NULL, a->started_us);
			if (a->elicit_id)
				to_client_json(g, approval__elicit_cancelled(a->elicit_id, NULL));
			approvals__remove(&g->approvals, a);
			return;
		}
	}
	to_server_msg(g, m->root, raw, len);
}

/* The client's name, from initialize's clientInfo or a 2026-07-28 request's _meta. */
static void learn_client(struct gw *g, const json_t *info)
{
	const char *name = json_string_value(json_object_get(info, "name"));

	if (name)
		snprintf(g->client_name, sizeof(g->client_name), "%s", name);
}

static void client_request(struct gw *g, struct jr_msg *m, const char *raw, size_t len)
{
	learn_client(g, json_object_get(json_object_get(m->params, "_meta"), MCP_META_CLIENT_INFO));
	if (!strcmp(m->method, "tools/call")) {
		judge_call(g, m->root, raw, len);
		return;
	}
	if (!strcmp(m->method, "initialize")) {
		json_t *caps = json_object_get(m->params, "capabilities");

		g->client_elicitation = json_is_object(json_object_get(caps, "elicitation"));
		learn_client(g, json_object_get(m->params, "clientInfo"));
	}
	if (!strcmp(m->method, "initialize") || !strcmp(m->method, "server/discover")) {
		json_decref(g->init_id);
		g->init_id = json_incref(m->id);
	}
	if (to_server_msg(g, m->root, raw, len))
		reply(g, jsonrpc__error(m->id, JSONRPC_INTERNAL_ERROR,
					"mcpfence: the server is gone"));
}

/* Each element judged on its own and sent on its own line, in order; answers as one array. */
static void client_batch(struct gw *g, json_t *v)
{
	struct batch *b = calloc(1, sizeof(*b));

	if (!b || !(b->pending = json_array()) || !(b->replies = json_array())) {
		if (b) {
			json_decref(b->pending);
			free(b);
		}
		client_invalid(g, NULL, JSONRPC_INTERNAL_ERROR, "out of memory for a batch");
		return;
	}
	b->next = g->batches;
	g->batches = b;
	g->cur = b;
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *e = json_array_get(v, i);
		size_t answered = json_array_size(b->replies);
		struct jr_msg m;

		if (json_is_array(e)) {
			client_invalid(g, NULL, JSONRPC_INVALID_REQUEST, "nested batch");
			continue;
		}
		client_msg(g, e, NULL, 0);
		jsonrpc__classify(e, &m);
		/* a request not answered at once waits for the server or a human */
		if (m.kind == JR_REQUEST && json_array_size(b->replies) == answered)
			json_array_append(b->pending, m.id);
	}
	g->cur = NULL;
	batch_done(g, b, false);
}

/* One message (v borrowed); raw is its bytes when it stands alone on its line, else NULL. */
static void client_msg(struct gw *g, json_t *v, const char *raw, size_t len)
{
	struct jr_msg m;

	jsonrpc__classify(v, &m);
	switch (m.kind) {
	case JR_INVALID:
		client_invalid(
			g, m.id && (json_is_string(m.id) || json_is_integer(m.id)) ? m.id : NULL,
			JSONRPC_INVALID_REQUEST, m.err);
		break;
	case JR_BATCH:
		client_batch(g, v);
		break;
	case JR_RESPONSE:
		if (own_id(g, m.id))
			elicitation_answer(g, v, json_string_value(m.id));
		else
			to_server_msg(g, v, raw, len);
		break;
	case JR_NOTIFICATION:
		client_notification(g, &m, raw, len);
		break;
	case JR_REQUEST:
		client_request(g, &m, raw, len);
		break;
	}
}

/*
 * The quick path of an allowed call. A tools/call that the plain reading knows for certain
 * (jsonrpc__plain_call) and that the policy allows by its name alone (no argument check, no
 * approval), with its budgets reserved, goes to the server before its value is built: building
 * it cost more than the rest of the call. The value is built after, for the audit line and the
 * client's name, as the line would have been read otherwise. Anything else (a denial, a limit
 * reached, a closer look) is read the usual way, from the start: nothing was taken.
 */
static bool quick_call(struct gw *g, const char *line, size_t len)
{
	struct scope_keys keys = keys_of(g);
	struct jr_call_view v;
	struct reservation res;
	struct decision d;
	struct jr_msg m;
	char tool[256];
	uint64_t t0;

	if (g->srv.in_closed || !jsonrpc__plain_call(line, len, &v) || v.tool_len >= sizeof(tool))
		return false;
	t0 = clock__mono_us();
	memcpy(tool, v.tool, v.tool_len);
	tool[v.tool_len] = 0;
	decide__call(g->policy, tool, NULL, &d);
	if (d.verdict != VERDICT_ALLOW || (d.rule && (d.rule->nrequire || d.rule->ndeny_if)) ||
	    limits__reserve(g->limits, g->policy, d.rule, &keys, &res, &d))
		return false;
	if (to_server_raw(g, line, len, true)) {
		limits__release(g->limits, &res);
		return false;
	}
	send_early(g);
	if (jsonrpc__parse(line, len, JR_STRICT, &m) || m.kind != JR_REQUEST) {
		/* the unit tests hold the two readings to agree: this is a bug of mcpfence */
		log_err("a call read quickly as \"%s\" went to the server, but the whole reading "
			"refuses its line: %s",
			tool, m.err);
		audit_call(g, "tools/call", tool, NULL, NULL, &d, NULL, t0);
		jsonrpc__msg_free(&m);
		return true;
	}
	learn_client(g, json_object_get(json_object_get(m.params, "_meta"), MCP_META_CLIENT_INFO));
	audit_call(g, "tools/call", tool, json_object_get(m.params, "arguments"), m.id, &d, NULL,
		   t0);
	jsonrpc__msg_free(&m);
	return true;
}

static void client_line(struct gw *g, const char *line, size_t len)
{
	struct jr_msg m;

	if (jsonrpc__blank(line, len))
		return;
	if (quick_call(g, line, len))
		return;
	if (jsonrpc__parse(line, len, JR_STRICT, &m)) {
		struct jr_msg loose;
		json_t *id = NULL;

		/* JSON with a duplicate key: refused, but answered with its id when it has one */
		if (!jsonrpc__parse(line, len, 0, &loose)) {
			id = json_object_get(loose.root, "id");
			if (!json_is_string(id) && !json_is_integer(id))
				id = NULL;
		}
		client_invalid(g, id,
			       id || loose.root ? JSONRPC_INVALID_REQUEST : JSONRPC_PARSE_ERROR,
			       m.err);
		jsonrpc__msg_free(&loose);
		return;
	}
	client_msg(g, m.root, line, len);
	jsonrpc__msg_free(&m);
}

/* --- messages from the server --- */

static void server_warn(struct gw *g, const char *what, size_t len)
{
	if (g->server_warnings++ < MAX_SERVER_WARNINGS)
		log_warn("server sent a line that is not JSON-RPC (%zu bytes, passed on): %s", len,
			 what);
}

/* The server's serverInfo (info: an object with a string "name"), the first time it says it. */
static void learn_server(struct gw *g, json_t *info)
{
	const char *name = json_string_value(json_object_get(info, "name"));

	if (!name || g->server_info)
		return;
	g->server_info = json_deep_copy(info);
	if (!g->name_given)
		snprintf(g->server_name, sizeof(g->server_name), "%s", name);
}

/*
 * Filter a response to tools/list; learn the server's name from initialize or server/discover
 * (2026-07-28), or from the serverInfo a 2026-07-28 server puts in every result's _meta.
 * true: changed.
 */
static bool server_response(struct gw *g, json_t *v)
{
	json_t *id = json_object_get(v, "id"), *result = json_object_get(v, "result");
	bool changed;

	if (g->init_id && json_equal(id, g->init_id)) {
		json_t *tools = json_object_get(json_object_get(result, "capabilities"), "tools");

		learn_server(g, json_object_get(result, "serverInfo"));
		g->list_changed = json_is_true(json_object_get(tools, "listChanged"));
		json_decref(g->init_id);
		g->init_id = NULL;
	}
	learn_server(g, json_object_get(json_object_get(result, "_meta"), MCP_META_SERVER_INFO));
	/*
	 * Every answer that carries a list of tools is filtered, whatever its id: matching answers
	 * to tools/list requests by id would let a list through whose id the server wrote
	 * otherwise (9007199254740993 comes back from a JavaScript server as ...992), or that
	 * came after its id was forgotten.
	 */
	if (!json_is_array(json_object_get(result, "tools")))
		return false;
	changed = stdio_gateway__filter_tools(g->policy, result) > 0;
	return stdio_gateway__private_view(result) || changed;
}

/*
 * A line of the server that needs no parse: a request or notification, or an answer that no
 * batch waits for, that is not the handshake's, that cannot carry a list of tools, and that
 * cannot name the server when its name is still to learn. It goes out as it came; the other
 * lines are parsed, and the same ones among them go out the same way.
 */
static bool server_plain(struct gw *g, const char *line, size_t len)
{
	enum jr_kind kind = jsonrpc__plain_kind(line, len);

	if (kind == JR_REQUEST || kind == JR_NOTIFICATION)
		return true;
	if (kind != JR_RESPONSE || g->batches || g->init_id)
		return false;
	/* escaped keys are not plain: the names are there as they are or not at all */
	return !memmem(line, len, "tools", 5) &&
	       (g->server_info || !memmem(line, len, "serverInfo", 10));
}

static void server_line(struct gw *g, const char *line, size_t len);

/*
 * Could this line, which jansson did not parse, be a list of tools to a client's parser? It is
 * JSON-like (an object or an array) and holds "tools", or an escape of one of its letters
 * (\u0074, \u006f, \u006c, \u0073): a key that reads "tools" has one or the other.
 */
static bool may_list_tools(const char *line, size_t len)
{
	const char *p = line, *end = line + len;
	size_t i = 0;

	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	if (i == len || (line[i] != '{' && line[i] != '['))
		return false;
	if (memmem(line, len, "tools", 5))
		return true;
	while ((p = memmem(p, end - p, "\\u00", 4)) && end - p >= 6) {
		char hex[3] = { p[4], p[5], 0 };
		unsigned long c = strtoul(hex, NULL, 16);

		if (c == 't' || c == 'o' || c == 'l' || c == 's')
			return true;
		p += 4;
	}
	return false;
}

/*
 * A server line jansson does not parse (err). Bytes that are not UTF-8: the client's decoder
 * (Node's, WHATWG) reads each ill-formed part as U+FFFD, so the line is judged as it will read
 * it, and passed on so. Otherwise, a line that could list tools is withheld (its tools could not
 * be filtered; the client is told with an error of id null), and any other passes as it is.
 */
static void server_unread(struct gw *g, const char *line, size_t len, const char *err)
{
	size_t rlen;
	char *fixed = text__utf8_repair(line, len, &rlen);

	if (fixed) {
		server_line(g, fixed, rlen);
		free(fixed);
		return;
	}
	if (may_list_tools(line, len)) {
		if (g->server_warnings++ < MAX_SERVER_WARNINGS)
			log_err("server sent a line that could list tools and cannot be read "
				"(%zu bytes, withheld: its tools cannot be filtered): %s",
				len, err);
		to_client_json(g,
			       jsonrpc__error(NULL, JSONRPC_INTERNAL_ERROR,
					      "mcpfence: withheld a server message that could not "
					      "be read"));
		return;
	}
	server_warn(g, err, len);
	to_client_raw(g, line, len, true);
}

static void server_line(struct gw *g, const char *line, size_t len)
{
	struct jr_msg m;
	bool changed = false;

	if (jsonrpc__blank(line, len) || server_plain(g, line, len)) {
		to_client_raw(g, line, len, true);
		return;
	}
	if (jsonrpc__parse(line, len, 0, &m)) {
		server_unread(g, line, len, m.err);
		return;
	}
	if (m.kind == JR_RESPONSE) {
		changed = server_response(g, m.root);
		if (g->batches) {
			json_incref(m.root);
			if (batch_take(g, m.root)) {
				jsonrpc__msg_free(&m);
				return;
			}
			json_decref(m.root); /* batch_take did not keep it */
		}
	} else if (m.kind == JR_BATCH) {
		for (size_t i = 0; i < json_array_size(m.root); i++) {
			struct jr_msg e;

			jsonrpc__classify(json_array_get(m.root, i), &e);
			if (e.kind == JR_RESPONSE)
				changed |= server_response(g, e.root);
		}
	} else if (m.kind == JR_INVALID) {
		server_warn(g, m.err, len);
	}
	if (changed)
		to_client_json(g, json_incref(m.root));
	else
		to_client_raw(g, line, len, true);
	jsonrpc__msg_free(&m);
}

/* --- reading --- */

static void read_client(struct gw *g)
{
	enum jr_line kind;
	const char *line;
	size_t len;
	long n = jsonrpc__reader_fill(&g->cin, STDIN_FILENO);

	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n < 0)
		log_warn("reading from the client: %s", strerror(-n));
	if (n <= 0)
		g->client_eof = true;
	while ((kind = jsonrpc__next_line(&g->cin, g->client_eof, &line, &len)) != JR_LINE_NONE) {
		if (kind == JR_LINE_WHOLE) {
			client_line(g, line, len);
			continue;
		}
		if (!g->client_oversize) {
			char why[96];

			snprintf(why, sizeof(why), "message longer than %u bytes",
				 (unsigned)JSONRPC_MAX_LINE);
			client_invalid(g, NULL, JSONRPC_PARSE_ERROR, why);
		}
		g->client_oversize = kind == JR_LINE_PART;
	}
}

static void read_server(struct gw *g)
{
	enum jr_line kind;
	const char *line;
	size_t len;
	long n = jsonrpc__reader_fill(&g->sin, g->srv.from_fd);

	if (n == -EAGAIN || n == -EINTR)
		return;
	if (n < 0)
		log_warn("reading from the server: %s", strerror(-n));
	if (n <= 0)
		g->server_eof = true;
	while ((kind = jsonrpc__next_line(&g->sin, g->server_eof, &line, &len)) != JR_LINE_NONE) {
		if (kind == JR_LINE_WHOLE) {
			server_line(g, line, len);
			continue;
		}
		/* too long to judge; the server side is passed on as it is, in pieces */
		if (!g->server_oversize)
			server_warn(g, "line too long to parse", len);
		g->server_oversize = kind == JR_LINE_PART;
		to_client_raw(g, line, len, kind == JR_LINE_PART_END);
	}
}

static void close_server_stdin(struct gw *g)
{
	server_proc__close_stdin(&g->srv, clock__mono_us());
	wbuf__clear(&g->sout);
}

static void share_budgets(struct limits *l);

static void reload(struct gw *g)
{
	char err[POLICY_ERR_LEN], real[PATH_MAX];
	struct policy *p;

	if (!g->policy_path) {
		log_warn("SIGHUP: no --policy to reload; every call stays denied");
		return;
	}
	p = policy__load(g->policy_path, err);
	if (!p) {
		log_err("SIGHUP: %s; keeping the policy in force", err);
		return;
	}
	policy__free(g->policy);
	g->policy = p;
	approval__warn_unresolved(p);
	audit__set_values(g->audit, p->audit_values);
	/* the file the path names now (a symlink may have moved), and the table as it is now */
	if (realpath(g->policy_path, real))
		memcpy(g->policy_real, real, sizeof(real));
	else
		log_warn("SIGHUP: %s: %s (grant budgets stay those of %s)", g->policy_path,
			 strerror(errno), g->policy_real);
	share_budgets(g->limits);
	log_info("SIGHUP: policy %s reloaded", g->policy_path);
	/* what tools/list may show has changed: a client that listens lists again */
	if (g->list_changed)
		to_client_json(g, json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method",
					    "notifications/tools/list_changed"));
}

static void on_signal(struct gw *g)
{
	struct signalfd_siginfo si;

	while (read(g->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			server_proc__reap(&g->srv, clock__mono_us());
			break;
		case SIGHUP:
			reload(g);
			break;
		default: /* SIGTERM, SIGINT, SIGQUIT: the server decides how to stop */
			server_proc__signal(&g->srv, si.ssi_signo, clock__mono_us());
			break;
		}
	}
}

/* Deny every held call without an answer (nobody is left to answer or be answered). */
static void drop_held(struct gw *g, const char *why)
{
	struct decision d;

	for (struct approval *a = g->approvals.head; a; a = a->next) {
		memset(&d, 0, sizeof(d));
		decide__deny(&d, KIND_APPROVAL, "(dropped)", "%s", why);
		audit_call(g, "tools/call", a->tool, a->args, json_object_get(a->msg, "id"), &d,
			   NULL, a->started_us);
	}
	approvals__fini(&g->approvals);
}

/* --- the loop --- */

/*
 * The effective uid of a process, from the Uid: line of its status ((uid_t)-1: unknown). Not
 * the owner of /proc/PID: that is root for a process that is not dumpable, whoever runs it.
 */
static uid_t proc_uid(pid_t pid)
{
	char path[64], line[256];
	unsigned ruid, euid;
	uid_t uid = (uid_t)-1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return uid;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %u %u", &ruid, &euid) == 2) {
			uid = euid;
			break;
		}
	fclose(f);
	return uid;
}

static void client_identity(struct gw *g)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);

	g->client_uid = (uid_t)-1;
	if (!getsockopt(STDIN_FILENO, SOL_SOCKET, SO_PEERCRED, &cred, &clen) && cred.pid > 0) {
		g->client_pid = cred.pid;
		g->client_uid = cred.uid;
	} else {
		g->client_pid = getppid();
		g->client_uid = proc_uid(g->client_pid);
	}
	stdio_find__exe(g->client_pid, g->client_exe, sizeof(g->client_exe), "");
	snprintf(g->agent, sizeof(g->agent), "%u:%s", (unsigned)g->client_uid, g->client_exe);
	g->approvals.client_pid = g->client_pid;
	g->approvals.client_uid = g->client_uid;
	g->approvals.client_exe = g->client_exe[0] ? g->client_exe : NULL;
}

static void make_ids(struct gw *g)
{
	unsigned char r[24];

	if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
		/* no entropy: still unique per process, though guessable */
		uint64_t t = clock__mono_us() ^ ((uint64_t)getpid() << 32);

		memset(r, 0, sizeof(r));
		memcpy(r, &t, sizeof(t));
	}
	snprintf(g->own_prefix, sizeof(g->own_prefix), "mcpfence-");
	for (int i = 0; i < 16; i++)
		sprintf(g->own_prefix + 9 + 2 * i, "%02x", r[i]);
	strcat(g->own_prefix, "-");
	for (int i = 0; i < 8; i++)
		sprintf(g->session + 2 * i, "%02x", r[16 + i]);
}

static bool finished(struct gw *g, uint64_t now)
{
	bool late = server_proc__drained(&g->srv, now);

	if (!g->srv.exited)
		return false;
	if (!g->server_eof && !late)
		return false;
	return !wbuf__pending(&g->cout) || g->client_gone || late;
}

static int timeout_ms(struct gw *g, uint64_t now)
{
	uint64_t next = approvals__expire(&g->approvals, now);
	uint64_t t[] = { next, server_proc__deadline(&g->srv), audit__deadline(g->audit) };
	uint64_t soon = 0;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i] && (!soon || t[i] < soon))
			soon = t[i];
	if (!soon)
		return -1;
	return soon <= now ? 0 : (int)((soon - now + 999) / 1000);
}

static void flush_all(struct gw *g)
{
	int err;

	flush_server(g);
	if (wbuf__pending(&g->cout) && !g->client_gone) {
		err = wbuf__flush(&g->cout, STDOUT_FILENO);
		if (err) {
			if (err != -EPIPE)
				log_warn("writing to the client: %s", strerror(-err));
			g->client_gone = true;
			g->client_eof = true;
			wbuf__clear(&g->cout);
		}
	}
}

static int loop(struct gw *g)
{
	struct approval *a;

	for (;;) {
		uint64_t now = clock__mono_us();
		struct pollfd pfd[6 + 1 + APPROVAL_CONNS];
		int n = 0, ci = -1, co = -1, si = -1, so = -1, li = -1, sg;
		size_t nl = 0;

		approvals__expire(&g->approvals, now);
		while ((a = approvals__decided(&g->approvals)))
			finish_approval(g, a);
		server_proc__timers(&g->srv, now);
		flush_all(g);
		/* after the messages, and kept up to 10 ms: audit lines are not on their path */
		audit__flush_due(g->audit, now);
		/* the client is done: once all it sent reached the server, close the server's stdin */
		if (g->client_eof && !g->srv.in_closed && !wbuf__pending(&g->sout)) {
			drop_held(g, "the client went away while the call waited for approval");
			close_server_stdin(g);
		}
		/* no answer can come any more: what the batches have goes out as it is */
		while (g->batches && (g->server_eof || g->srv.in_closed))
			batch_done(g, g->batches, true);
		if (finished(g, now))
			break;
		bool room = wbuf__pending(&g->cout) < HIGH_WATER;

		sg = n;
		pfd[n++] = (struct pollfd){ .fd = g->sig_fd, .events = POLLIN };
		if (!g->client_eof && room && wbuf__pending(&g->sout) < HIGH_WATER) {
			ci = n;
			pfd[n++] = (struct pollfd){ .fd = STDIN_FILENO, .events = POLLIN };
		}
		if (!g->client_gone && wbuf__pending(&g->cout)) {
			co = n;
			pfd[n++] = (struct pollfd){ .fd = STDOUT_FILENO, .events = POLLOUT };
		}
		if (!g->server_eof && (room || g->client_gone)) {
			si = n;
			pfd[n++] = (struct pollfd){ .fd = g->srv.from_fd, .events = POLLIN };
		}
		if (!g->srv.in_closed && wbuf__pending(&g->sout)) {
			so = n;
			pfd[n++] = (struct pollfd){ .fd = g->srv.to_fd, .events = POLLOUT };
		}
		li = n;
		nl = approvals__pollfds(&g->approvals, pfd + n, sizeof(pfd) / sizeof(pfd[0]) - n);
		n += (int)nl;
		if (poll(pfd, n, timeout_ms(g, now)) < 0) {
			if (errno == EINTR)
				continue;
			log_err("poll: %s", strerror(errno));
			return -errno;
		}
		if (pfd[sg].revents)
			on_signal(g);
		if (ci >= 0 && pfd[ci].revents)
			read_client(g);
		if (si >= 0 && pfd[si].revents) {
			read_server(g);
			if (g->server_eof) {
				close(g->srv.from_fd);
				g->srv.from_fd = -1;
				close_server_stdin(g);
			}
		}
		if (nl)
			approvals__serve(&g->approvals, g->policy, pfd + li, nl, clock__mono_us());
		(void)co;
		(void)so;
	}
	return 0;
}

/*
 * Budgets of scopes grant, agent and global outlive this process: they are kept in the
 * host-wide table. When it cannot be used, calls that need one are denied (limits.c says why
 * in the denial) until a SIGHUP opens it again.
 */
static void share_budgets(struct limits *l)
{
	char path[300];

	if (limits__share_table(l, limits__default_table_path(path, sizeof(path)), 0))
		log_warn(
			"budgets of scopes grant, agent and global are kept in %s, which cannot be "
			"used: calls that need one are denied",
			path);
}

static void base_name(struct gw *g, const char *cmd)
{
	const char *slash = strrchr(cmd, '/');

	snprintf(g->server_name, sizeof(g->server_name), "%s", slash ? slash + 1 : cmd);
}

int stdio_gateway__run(const struct gateway_opts *o, char **argv)
{
	char err[POLICY_ERR_LEN];
	struct gw g = { .sig_fd = -1, .policy_path = o->policy_path };
	sigset_t mask, oldmask;
	int rc = 1;

	approvals__init(&g.approvals);
	if (mrtr__init(&g.mrtr)) {
		log_err("run: cannot draw the key of approval states: %s", strerror(errno));
		goto out_free;
	}
	server_proc__init(&g.srv, o->grace_ms);
	if (o->name) {
		base_name(&g, o->name);
		g.name_given = true;
	}
	g.policy = g.policy_path ? policy__load(g.policy_path, err) : policy__deny_all();
	if (!g.policy) {
		if (g.policy_path)
			log_err("%s", err);
		goto out_free;
	}
	if (!g.policy_path)
		log_warn("run: no --policy: every tool call is denied");
	approval__warn_unresolved(g.policy);
	g.audit = audit__open(o->audit_path);
	g.limits = limits__new(NULL, NULL);
	if (!g.audit || !g.limits)
		goto out_free;
	/* grant budgets are the policy file's (however named) and the server's */
	if (g.policy_path && !realpath(g.policy_path, g.policy_real)) {
		log_err("%s: %s", g.policy_path, strerror(errno));
		goto out_free;
	}
	g.server_id = server_proc__identity(argv, o->name);
	if (!g.server_id)
		goto out_free;
	log_debug("grant budgets are those of policy %s and server %s", g.policy_real, g.server_id);
	share_budgets(g.limits);
	audit__set_values(g.audit, g.policy->audit_values);
	audit__set_buffered(g.audit, true);
	if (!g.name_given)
		base_name(&g, argv[0]);
	g.approvals.server = g.server_name;
	make_ids(&g);
	client_identity(&g);
	jsonrpc__reader_init(&g.cin, JSONRPC_MAX_LINE);
	jsonrpc__reader_init(&g.sin, JSONRPC_MAX_LINE);

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGQUIT);
	sigprocmask(SIG_BLOCK, &mask, &oldmask);
	signal(SIGPIPE, SIG_IGN);
	g.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (g.sig_fd < 0) {
		log_err("signalfd: %s", strerror(errno));
		goto out_free;
	}
	if (server_proc__spawn(&g.srv, argv, &oldmask))
		goto out_free;
	g.in_flags = fcntl(STDIN_FILENO, F_GETFL);
	g.out_flags = fcntl(STDOUT_FILENO, F_GETFL);
	if (g.in_flags >= 0)
		fcntl(STDIN_FILENO, F_SETFL, g.in_flags | O_NONBLOCK);
	if (g.out_flags >= 0)
		fcntl(STDOUT_FILENO, F_SETFL, g.out_flags | O_NONBLOCK);
	if (!loop(&g))
		rc = g.srv.status;
	drop_held(&g, "the server exited while the call waited for approval");
	if (g.in_flags >= 0)
		fcntl(STDIN_FILENO, F_SETFL, g.in_flags);
	if (g.out_flags >= 0)
		fcntl(STDOUT_FILENO, F_SETFL, g.out_flags);
out_free:
	server_proc__stop(&g.srv);
	approvals__fini(&g.approvals);
	mrtr__free(&g.mrtr);
	jsonrpc__reader_free(&g.cin);
	jsonrpc__reader_free(&g.sin);
	wbuf__free(&g.cout);
	wbuf__free(&g.sout);
	if (g.sig_fd >= 0)
		close(g.sig_fd);
	while (g.batches)
		batch_free(&g, g.batches);
	json_decref(g.init_id);
	json_decref(g.server_info);
	free(g.server_id);
	limits__free(g.limits);
	audit__close(g.audit);
	policy__free(g.policy);
	return rc;
}
