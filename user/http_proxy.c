// SPDX-License-Identifier: Apache-2.0
/*
 * http_proxy: the gateway plane for Streamable HTTP (README: "HTTP servers: mcpfence proxy").
 *
 * One thread. libmicrohttpd runs in external epoll mode: its epoll descriptor, libcurl's
 * sockets (CURLMOPT_SOCKETFUNCTION) and a signalfd are in one epoll set, and the loop's timeout
 * is the sooner of the two libraries' timers. A request's body is read whole (bounded), judged,
 * and either answered here (a denial, a refusal) or sent upstream while its connection is
 * suspended; the upstream answer's head resumes it, and its body streams to the client through
 * a content reader that suspends the connection when it has nothing to give (and pauses the
 * upstream transfer when the client is slower than the server). An answer to tools/list is
 * read whole instead, filtered as the stdio gateway filters it, then sent.
 */
#include <errno.h>
#include <limits.h>
#include <linux/limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include "approval.h"
#include "audit.h"
#include "cmd.h"
#include "clock.h"
#include "decide.h"
#include "http_proxy.h"
#include "jsonrpc.h"
#include "limits.h"
#include "log.h"
#include "mcp_param.h"
#include "mcpfence.h"
#include "mrtr.h"
#include "policy.h"
#include "proxy_addr.h"
#include "proxy_redirect.h"
#include "redis_store.h"
#include "sse.h"
#include "stdio_gateway.h"
#include "wbuf.h"

#define TAG_MHD 1ull
#define TAG_SIGNAL 2ull
#define TAG_CURL 3ull
#define TAG_APPROVALS 4ull
#define MAX_HELD 64 /* calls waiting for approval; more are denied */
#define MAX_HEADERS 64
#define MAX_HEADER_LEN 8192
#define SESSIONS 1024	   /* 2025 sessions whose client said whether it can ask its user */
#define SESSION_ID_LEN 128 /* a longer Mcp-Session-Id is not kept: its client is not asked */
#define ELICIT_PREFIX "mcpfence-approval-" /* our elicitation/create ids: never the server's */

/* A 2025 session, as its initialize said: can its client ask its user (elicitation)? */
struct session {
	char id[SESSION_ID_LEN];
	bool elicit;
};

struct req;

struct px {
	const struct proxy_opts *o;
	struct MHD_Daemon *mhd;
	CURLM *multi;
	int ep, sigfd;
	uint64_t curl_due_ms; /* 0: no curl timer */
	struct policy *policy;
	char policy_real[PATH_MAX];
	struct limits *limits;
	struct audit *audit;
	char upstream[512]; /* scheme://host[:port], no slash at the end */
	char server[256];   /* grant budgets' server key and the audit's server */
	char listen_host[64];
	unsigned listen_port;
	struct proxy_hosts hosts; /* what a Host or Origin may name */
	struct req *reqs;	  /* every request under way: resumed at shutdown */
	CURL *spare[32];	  /* easy handles done with, reset, for the next requests */
	size_t nspare;
	struct approvals approvals; /* calls held for the operator (the control socket) */
	int aep;		    /* an epoll set of the control socket's descriptors, or -1 */
	struct pollfd watched[1 + APPROVAL_CONNS]; /* what aep holds */
	size_t nwatched;
	bool astale;		  /* the control socket served a turn: aep is made again */
	struct mrtr mrtr;	  /* input_required (2026-07-28): the client's user approves */
	struct session *sessions; /* SESSIONS of them, the oldest replaced first */
	size_t next_session;
	struct proxy_redirect *redirect; /* --redirect-port */
	struct redis_store *mrtr_store;	 /* the policy's "state": input_required shared there */
	struct mcp_param params;	 /* the listed tools' schemas, for Mcp-Param-* headers */
	bool stop;
};

struct req {
	struct px *px;
	struct req *next, **pprev;
	struct MHD_Connection *conn;
	char method[8];
	char path[1024];
	char *body;
	size_t len;
	bool too_big, started, suspended;
	/* the upstream transfer */
	CURL *easy;
	struct curl_slist *hdrs;
	bool headers_done, done, paused;
	bool whole; /* the answer is read whole first: tools/list's, or a small JSON one */
	bool init, init_elicit; /* an initialize (2025), and whether it declared elicitation */
	/*
	 * The answer is our event stream (a 2025 client asked through elicitation/create): the
	 * question, then the call's answer, the server's events as they come or its JSON answer
	 * (read whole into up) as one event.
	 */
	bool stream;
	struct wbuf up;
	char elicit_id[64];
	CURLcode cres;
	long status;
	char *rh[MAX_HEADERS]; /* the answer's headers to pass on, "Name: value" */
	size_t nrh;
	struct wbuf out; /* upstream bytes the client has not had yet */
	json_t *list_id; /* the id of the tools/list whose answer is filtered */
	/*
	 * A GET stream: a server replays the events after Last-Event-ID there, a tools/list
	 * answer among them. Its events are held whole (ev) and such answers filtered.
	 */
	bool replay;
	struct sse_reader ev;
	struct reservation res;
	bool has_res;
	/* a call held for the operator: what was decided, once it was */
	struct approval *held;
	json_t *held_msg;
	enum approval_state held_state;
	char held_by[96], held_why[200];
	uint32_t held_timeout_s;
	uint64_t t0;
};

/* --- answers made here --- */

/* A header of the client's request (the first of its name), or NULL. */
static const char *req_header(const struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result answer(struct req *r, unsigned status, const char *ctype, const char *body,
			      size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	if (ctype)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result answer_json(struct req *r, unsigned status, json_t *msg)
{
	char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	enum MHD_Result ret;

	json_decref(msg);
	if (!text)
		return MHD_NO;
	ret = answer(r, status, "application/json", text, strlen(text));
	free(text);
	return ret;
}

/* A JSON-RPC error for a request that never reaches the server (HTTP status, and why). */
static enum MHD_Result refuse(struct req *r, unsigned status, const json_t *id, int code,
			      const char *why)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "mcpfence: %s", why);
	log_info("proxy: %s %s refused (%u): %s", r->method, r->path, status, why);
	return answer_json(r, status, jsonrpc__error(id, code, msg));
}

/* --- audit --- */

/* The client's address (an IPv6 one in brackets) and port. */
static void client_addr(const struct req *r, char *out, size_t len, unsigned *port_out)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ci->client_addr;

		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		port = ntohs(s->sin_port);
	} else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ci->client_addr;

		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		port = ntohs(s->sin6_port);
	}
	snprintf(out, len, strchr(a, ':') ? "[%s]" : "%s", a);
	*port_out = port;
}

static void audit_call(struct req *r, const char *tool, const json_t *args, const json_t *id,
		       const struct decision *d, const char *by, uint64_t t0)
{
	const char *session = req_header(r, "Mcp-Session-Id");
	char idtext[128], peer[80], conn[120];
	unsigned port;
	struct audit_event ev = {
		.plane = "http",
		.server = r->px->server,
		.session = session,
		.conn = conn,
		.client_uid = (uid_t)-1,
		.method = "tools/call",
		.tool = tool,
		.args = args,
		.approved_by = by,
		.latency_us = clock__mono_us() - t0,
		.request_id = idtext,
	};

	audit__set_decision(&ev, d);
	client_addr(r, peer, sizeof(peer), &port);
	snprintf(conn, sizeof(conn), "tcp:%s:%u->%u", peer, port, r->px->listen_port);
	jsonrpc__id_text(id, idtext, sizeof(idtext));
	audit__write(r->px->audit, &ev);
}

/* --- 2025 sessions --- */

static struct session *session_find(struct px *px, const char *id)
{
	for (size_t i = 0; id && px->sessions && i < SESSIONS; i++)
		if (px->sessions[i].id[0] && !strcmp(px->sessions[i].id, id))
			return &px->sessions[i];
	return NULL;
}

/* A 2025 session begun (its Mcp-Session-Id, and what its initialize said), or ended (id only). */
static void session_put(struct px *px, const char *id, bool elicit)
{
	struct session *s = session_find(px, id);

	if (!s && id && px->sessions && strlen(id) < SESSION_ID_LEN) {
		s = &px->sessions[px->next_session++ % SESSIONS];
		snprintf(s->id, sizeof(s->id), "%s", id);
	}
	if (s)
		s->elicit = elicit;
}

static void session_end(struct px *px, const char *id)
{
	struct session *s = session_find(px, id);

	if (s)
		s->id[0] = 0;
}

/* --- the upstream transfer --- */

static void wake(struct req *r)
{
	if (r->suspended) {
		r->suspended = false;
		MHD_resume_connection(r->conn);
	}
}

static void sleep_conn(struct req *r)
{
	if (!r->suspended) {
		r->suspended = true;
		MHD_suspend_connection(r->conn);
	}
}

static bool hop_by_hop(const char *name, size_t n)
{
	static const char *const hop[] = { "connection",
					   "keep-alive",
					   "proxy-authenticate",
					   "proxy-authorization",
					   "te",
					   "trailer",
					   "transfer-encoding",
					   "upgrade",
					   "content-length",
					   "host",
					   "accept-encoding",
					   "expect",
					   "proxy-connection" };

	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (strlen(hop[i]) == n && !strncasecmp(name, hop[i], n))
			return true;
	return false;
}

static const char *answer_header(const struct req *r, const char *name);
static ssize_t on_read(void *cls, uint64_t pos, char *buf, size_t max);
static int replay_event(void *ctx, const char *s, size_t n);

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
	struct req *r = ud;
	size_t len = size * n, k = len;
	const char *colon;

	if (len >= 5 && !strncmp(buf, "HTTP/", 5)) { /* a status line: 1xx, then the answer's */
		while (r->nrh)
			free(r->rh[--r->nrh]);
		return len;
	}
	while (k && (buf[k - 1] == '\n' || buf[k - 1] == '\r'))
		k--;
	if (!k) {
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
		if (r->status >= 200) {
			const char *ct = answer_header(r, "Content-Type");
			curl_off_t cl = -1;

			r->headers_done = true;
			if (r->init && r->status < 300) /* a 2025 session begins */
				session_put(r->px, answer_header(r, "Mcp-Session-Id"),
					    r->init_elicit);
			/* a small JSON answer goes in one piece: no chunks, fewer turns of the loop */
			curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
			r->replay = !strcmp(r->method, "GET") && ct &&
				    !strncasecmp(ct, "text/event-stream", 17);
			r->ev.max = PROXY_LIST_MAX;
			if (r->stream) /* on our stream: events as they come, else one at the end */
				r->whole = r->status >= 300 || !ct ||
					   strncasecmp(ct, "text/event-stream", 17);
			else if (cl >= 0 && cl <= PROXY_WHOLE_MAX && ct &&
				 !strncasecmp(ct, "application/json", 16))
				r->whole = true;
			if (!r->whole)
				wake(r);
		}
		return len;
	}
	colon = memchr(buf, ':', k);
	if (!colon || hop_by_hop(buf, (size_t)(colon - buf)))
		return len;
	if (r->nrh == MAX_HEADERS || k > MAX_HEADER_LEN)
		return 0; /* more than a server of MCP sends: the transfer fails */
	r->rh[r->nrh] = strndup(buf, k);
	if (!r->rh[r->nrh])
		return 0;
	r->nrh++;
	return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
	struct req *r = ud;
	size_t len = size * n;

	if (r->whole) {
		struct wbuf *w = r->stream ? &r->up : &r->out;

		if (w->len + len > PROXY_LIST_MAX || wbuf__put(w, buf, len))
			return 0; /* the transfer fails: 502 */
		return len;
	}
	if (wbuf__pending(&r->out) >= PROXY_STREAM_BUF) {
		r->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	if (r->replay ? sse__feed(&r->ev, buf, len, false, replay_event, r) :
			wbuf__put(&r->out, buf, len))
		return 0;
	wake(r);
	return len;
}

static char *header_line(const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 3;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s: %s", name, value);
	return s;
}

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct req *r = cls;
	struct curl_slist *l;
	char *line;

	if (hop_by_hop(key, strlen(key)))
		return MHD_YES;
	line = header_line(key, value ? value : "");
	l = line ? curl_slist_append(r->hdrs, line) : NULL;
	free(line);
	if (l)
		r->hdrs = l;
	return MHD_YES;
}

/* An easy handle done with: out of the multi, kept for the next request (or freed). */
static void easy_done(struct px *px, CURL *e, bool in_multi)
{
	if (in_multi)
		curl_multi_remove_handle(px->multi, e);
	if (px->nspare < sizeof(px->spare) / sizeof(px->spare[0])) {
		curl_easy_reset(e);
		px->spare[px->nspare++] = e;
	} else {
		curl_easy_cleanup(e);
	}
}

/*
 * The proxy's own connections to the server carry MCPF_PROXY_MARK: a kernel plane on the
 * server's port (attach --port) leaves them alone, so that no call is judged twice. Without
 * CAP_NET_ADMIN the mark cannot be set: said once.
 */
static int on_sockopt(void *ud, curl_socket_t fd, curlsocktype purpose)
{
	static bool warned;
	unsigned mark = MCPF_PROXY_MARK;

	if (purpose == CURLSOCKTYPE_IPCXN &&
	    setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) && !warned) {
		warned = true;
		log_info("proxy: its connections to the server cannot be marked (%s): a kernel "
			 "plane attached to the server's port would judge their calls again",
			 strerror(errno));
	}
	return CURL_SOCKOPT_OK;
}

/* Send the request upstream: 0, or -1 when the transfer cannot start. */
static int start_upstream(struct req *r)
{
	char url[sizeof(r->px->upstream) + sizeof(r->path)];
	struct curl_slist *l;
	CURL *e = r->px->nspare ? r->px->spare[--r->px->nspare] : curl_easy_init();

	if (!e)
		return -1;
	r->easy = e;
	snprintf(url, sizeof(url), "%s%s", r->px->upstream, r->path);
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, copy_header, r);
	/* no 100-continue round trip; identity bodies, so that a tools/list answer can be read */
	l = curl_slist_append(r->hdrs, "Expect:");
	if (l)
		r->hdrs = l;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
	if (r->px->o->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, r->px->o->ca_file);
	if (!strcmp(r->method, "POST")) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
	} else if (!strcmp(r->method, "DELETE")) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	if (curl_multi_add_handle(r->px->multi, e) != CURLM_OK) {
		easy_done(r->px, e, false);
		r->easy = NULL;
		return -1;
	}
	return 0;
}

/* The request upstream; the connection sleeps until the answer's head is here. */
static enum MHD_Result forward(struct req *r)
{
	if (start_upstream(r))
		return refuse(r, 500, NULL, JSONRPC_INTERNAL_ERROR,
			      "cannot start the upstream request");
	sleep_conn(r);
	return MHD_YES;
}

/* --- judging --- */

/*
 * Mcp-Method and Mcp-Name (2026-07-28), when sent, must say what the body says: a server
 * routes by the header and runs the body, so two readings would mean two calls.
 */
static const char *headers_disagree(struct req *r, const struct jr_msg *m)
{
	const char *hm = req_header(r, "Mcp-Method");
	const char *hn = req_header(r, "Mcp-Name");
	const char *want = NULL, *bad = NULL;
	char *got;
	size_t len;
	bool same;

	if (hm && (!m->method || strcmp(hm, m->method)))
		return "Mcp-Method disagrees with the body's method";
	if (!hn)
		return NULL;
	if (m->method && (!strcmp(m->method, "tools/call") || !strcmp(m->method, "prompts/get")))
		want = json_string_value(json_object_get(m->params, "name"));
	else if (m->method && !strcmp(m->method, "resources/read"))
		want = json_string_value(json_object_get(m->params, "uri"));
	/* as Mcp-Param-* values are read: a value that is not of the header form disagrees */
	got = mcp_param__value(hn, &len, &bad);
	same = want && got && !strcmp(got, want);
	free(got);
	return same ? NULL : "Mcp-Name disagrees with the body";
}

/* One request header to the Mcp-Param-* ones gathered in cls (the others left out). */
static enum MHD_Result param_header(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value)
{
	mcp_param__add_header(cls, key, value);
	return MHD_YES;
}

/* Mcp-Param-* headers (2026-07-28) of a tools/call, all of them, against its arguments. */
static const char *params_disagree(struct req *r, const struct jr_msg *m, char *why, size_t len)
{
	struct mcp_param_hdrs h = { .n = 0 };

	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, param_header, &h);
	return mcp_param__check(&r->px->params,
				json_string_value(json_object_get(m->params, "name")),
				json_object_get(m->params, "arguments"), &h, why, len);
}

/*
 * The last steps of a call the rules let through (d: allowed, or approved by by): its
 * budgets and the audit line. true: on to the server; false: denied (d says why).
 */
static bool admit(struct req *r, const json_t *msg, const char *tool, struct decision *d,
		  const char *by, uint64_t t0)
{
	const json_t *params = json_object_get(msg, "params");
	const json_t *args = json_object_get(params, "arguments"), *id = json_object_get(msg, "id");
	const char *session = req_header(r, "Mcp-Session-Id");
	char agent[96], peer[80];
	struct scope_keys keys;
	unsigned port;

	client_addr(r, peer, sizeof(peer), &port);
	snprintf(agent, sizeof(agent), "ip:%s", peer);
	keys = (struct scope_keys){ .session = session,
				    .agent = agent,
				    .policy = r->px->policy_real,
				    .server = r->px->server };
	if (d->verdict != VERDICT_DENY &&
	    !limits__reserve(r->px->limits, r->px->policy, d->rule, &keys, &r->res, d)) {
		r->has_res = true;
		d->verdict = VERDICT_ALLOW;
		audit_call(r, tool, args, id, d, by, t0);
		return true;
	}
	d->verdict = VERDICT_DENY;
	audit_call(r, tool, args, id, d, by, t0);
	return false;
}

static json_t *denial(const json_t *msg, const struct decision *d)
{
	return stdio_gateway__denial(msg, d->reason, d->pointer, decide__kind_name(d->kind),
				     d->kind == KIND_LIMIT ? d->retry_after_s : 0, NULL);
}

/* The server, or the denial the client reads. */
static enum MHD_Result go_on(struct req *r, const json_t *msg, const char *tool, struct decision *d,
			     const char *by, uint64_t t0)
{
	return admit(r, msg, tool, d, by, t0) ? forward(r) : answer_json(r, 200, denial(msg, d));
}

/* --- approvals --- */

/*
 * input_required approvals shared with every proxy of the policy's "state" (a retry may reach
 * another one behind a load balancer). Tried when the policy is loaded and, while Redis does not
 * answer, again before each approval (at most once a second): meanwhile the key is this
 * proxy's own, and a retry that reaches another proxy is denied.
 */
static void share_approvals(struct px *px, bool loaded)
{
	const struct redis_conf *c = px->policy->redis;

	if (loaded) {
		struct redis_store *old = px->mrtr_store;

		px->mrtr_store = c ? redis_store__new(c) : NULL;
		mrtr__share(&px->mrtr, NULL);
		redis_store__free(old);
	}
	if (!px->mrtr_store || px->mrtr.shared)
		return;
	if (!mrtr__share(&px->mrtr, px->mrtr_store))
		log_info("proxy: approvals through input_required are shared through %s", c->shown);
	else if (loaded)
		log_warn("proxy: approvals through input_required are this proxy's alone until "
			 "Redis answers: %s",
			 redis_store__error(px->mrtr_store));
}

/*
 * Why a 2025 client cannot be asked on the answer's event stream (NULL: it can). What it can
 * do was said in its initialize, which began the session its Mcp-Session-Id names.
 */
static const char *cannot_elicit(struct req *r)
{
	const char *accept = req_header(r, "Accept");
	const struct session *s = session_find(r->px, req_header(r, "Mcp-Session-Id"));

	if (!s)
		return "the proxy did not see its session begin (initialize, where a client says "
		       "it can ask its user)";
	if (!s->elicit)
		return "it did not declare the elicitation capability";
	if (!accept || !strcasestr(accept, "text/event-stream"))
		return "it does not take an event stream (Accept)";
	return NULL;
}

/* msg (stolen) as one event of our stream. */
static void put_event(struct req *r, json_t *msg)
{
	char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

	json_decref(msg);
	if (!text || wbuf__put(&r->out, "event: message\ndata: ", 21) ||
	    wbuf__put(&r->out, text, strlen(text)) || wbuf__put(&r->out, "\n\n", 2))
		log_err("proxy: out of memory: an event of %s %s is lost", r->method, r->path);
	free(text);
}

/* The operator decides a, on the control socket (denied now when it cannot be opened). */
static void ask_operator(struct px *px, struct approval *a)
{
	if (approvals__listen(&px->approvals)) {
		a->state = APPROVAL_UNASKABLE;
		snprintf(a->why, sizeof(a->why), "the control socket cannot be used");
		return;
	}
	a->on_socket = true;
	log_info("call %s (tool \"%s\") waits for approval: mcpfence approve %s, or mcpfence deny "
		 "%s (denied in %u s)",
		 a->id, a->tool, a->id, a->id, a->timeout_s);
}

/* Hold the call for a decision (r->held); NULL when it cannot be held, d then says why. */
static struct approval *hold(struct req *r, const struct jr_msg *m, const char *tool,
			     struct decision *d, uint32_t timeout, uint64_t t0)
{
	char ptr[DECIDE_PTR_LEN];
	struct approval *a;
	size_t held = 0;

	for (a = r->px->approvals.head; a; a = a->next)
		held++;
	a = held < MAX_HELD ? approvals__add(&r->px->approvals, tool, json_incref(m->root), r->body,
					     r->len, timeout, clock__mono_us()) :
			      NULL;
	if (!a) {
		snprintf(ptr, sizeof(ptr), "%s", d->pointer);
		decide__deny(d, KIND_APPROVAL, ptr, "%s",
			     held < MAX_HELD ? "cannot hold the call" :
					       "too many calls already wait for approval");
		return NULL;
	}
	r->held = a;
	r->held_msg = json_incref(m->root);
	r->held_state = APPROVAL_WAITING;
	r->t0 = t0;
	return a;
}

/*
 * A 2025 client that can ask its user: the answer is an event stream at once, whose first
 * event is our elicitation/create; the client answers it in a POST of its own (elicit_answer),
 * and the call's answer follows on this stream (finish_stream).
 */
static enum MHD_Result ask_in_stream(struct req *r, const struct jr_msg *m, const char *tool,
				     struct decision *d, uint32_t timeout, uint64_t t0)
{
	unsigned char rnd[16];
	char text[1200], *id;
	struct approval *a;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	size_t k;

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		char ptr[DECIDE_PTR_LEN];

		snprintf(ptr, sizeof(ptr), "%s", d->pointer);
		decide__deny(d, KIND_APPROVAL, ptr, "cannot ask for approval: %s", strerror(errno));
		return go_on(r, m->root, tool, d, NULL, t0);
	}
	k = (size_t)snprintf(r->elicit_id, sizeof(r->elicit_id), ELICIT_PREFIX);
	for (size_t i = 0; i < sizeof(rnd); i++, k += 2)
		snprintf(r->elicit_id + k, sizeof(r->elicit_id) - k, "%02x", rnd[i]);
	id = strdup(r->elicit_id);
	if (!id)
		return refuse(r, 500, m->id, JSONRPC_INTERNAL_ERROR, "out of memory");
	a = hold(r, m, tool, d, timeout, t0);
	if (!a) {
		free(id);
		r->elicit_id[0] = 0;
		return go_on(r, m->root, tool, d, NULL, t0);
	}
	a->elicit_id = id;
	approvals__listen(&r->px->approvals); /* where every held call is listed */
	approval__question(tool, r->px->server, json_object_get(m->params, "arguments"), d->pointer,
			   timeout, text, sizeof(text));
	put_event(r, approval__elicit_request(r->elicit_id, text));
	r->stream = true;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, on_read, r, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	ret = MHD_queue_response(r->conn, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

/*
 * A call a human must approve. 2026-07-28, to a client that can ask its user and a rule that
 * trusts it: an input_required result that asks (the retry carries the answer). A 2025 client
 * that can: elicitation/create on the answer's event stream. Else, when the rule lets the
 * operator decide: held, its connection asleep, until the control socket says (mcpfence
 * approve, deny) or its time is up. Else denied, saying why the client cannot be asked.
 */
static enum MHD_Result ask(struct req *r, const struct jr_msg *m, const char *tool,
			   struct decision *d, uint64_t t0)
{
	const json_t *caps =
		json_object_get(json_object_get(m->params, "_meta"), MCP_META_CLIENT_CAPS);
	uint32_t timeout =
		d->rule && d->rule->approval_timeout_s ? d->rule->approval_timeout_s : 120;
	unsigned via = d->rule ? d->rule->approval_via : VIA_CLIENT | VIA_OPERATOR;
	bool modern = jsonrpc__request_revision(m->params) != NULL;
	const char *why_not =
		modern ? "it did not declare the elicitation capability" : cannot_elicit(r);
	char text[1200], ptr[DECIDE_PTR_LEN];
	struct approval *a;

	snprintf(ptr, sizeof(ptr), "%s", d->pointer);
	if ((via & VIA_CLIENT) && modern && json_is_object(json_object_get(caps, "elicitation"))) {
		json_t *result;

		approval__question(tool, r->px->server, json_object_get(m->params, "arguments"),
				   d->pointer, timeout, text, sizeof(text));
		share_approvals(r->px, false);
		result = mrtr__ask(&r->px->mrtr, tool, m->params, text, timeout,
				   mrtr__now(&r->px->mrtr));
		if (result)
			return answer_json(r, 200, jsonrpc__result(m->id, result));
		decide__deny(d, KIND_APPROVAL, ptr, "cannot ask for approval: %s",
			     errno == E2BIG ? "the server's state to carry is too large" :
					      strerror(errno));
		return go_on(r, m->root, tool, d, NULL, t0);
	}
	if ((via & VIA_CLIENT) && !modern && !why_not)
		return ask_in_stream(r, m, tool, d, timeout, t0);
	if (!(via & VIA_OPERATOR)) {
		decide__deny(
			d, KIND_APPROVAL, ptr,
			"the rule asks only the client (\"via\": [\"client\"]), and this client "
			"cannot be asked: %s",
			why_not);
		return go_on(r, m->root, tool, d, NULL, t0);
	}
	a = hold(r, m, tool, d, timeout, t0);
	if (!a)
		return go_on(r, m->root, tool, d, NULL, t0);
	ask_operator(r->px, a);
	sleep_conn(r);
	return MHD_YES;
}

/*
 * The client answered one of our elicitation/create (a POST of its own, in the session of the
 * call it was asked about). Ours by the id's prefix: never the server's, even late.
 */
static enum MHD_Result elicit_answer(struct req *r, const struct jr_msg *m)
{
	const char *id = json_string_value(m->id), *session = req_header(r, "Mcp-Session-Id");
	struct approval *a = approvals__find_elicit(&r->px->approvals, id);
	const char *held_session = NULL;
	struct req *h = r->px->reqs;

	while (a && h && h->held != a)
		h = h->next;
	if (a && h)
		held_session = req_header(h, "Mcp-Session-Id");
	if (!a || a->state != APPROVAL_WAITING || !held_session || !session ||
	    strcmp(session, held_session)) {
		log_info("proxy: an answer to %s, which no longer waits or was not asked in this "
			 "session: not taken",
			 id);
		return answer(r, 202, NULL, "", 0);
	}
	if (approval__elicit_answer(a, m->root, policy__lookup(r->px->policy, a->tool)))
		ask_operator(r->px, a);
	if (!a->elicit_id)
		h->elicit_id[0] = 0; /* an error: the question needs no taking back */
	return answer(r, 202, NULL, "", 0);
}

/*
 * notifications/cancelled from a 2025 client for a call of its session that waits for approval:
 * no longer held, denied (its answer goes nowhere; the audit says why). The notice goes on to
 * the server all the same. Without a session, nothing says whose call an id is: no effect.
 */
static void cancelled(struct req *r, const struct jr_msg *m)
{
	const json_t *id = json_object_get(m->params, "requestId");
	const char *session = req_header(r, "Mcp-Session-Id");

	for (struct req *h = r->px->reqs; id && h; h = h->next) {
		const char *hs = h->held ? req_header(h, "Mcp-Session-Id") : NULL;

		if (h->held && h->held->state == APPROVAL_WAITING &&
		    json_equal(json_object_get(h->held_msg, "id"), (json_t *)id) && hs && session &&
		    !strcmp(hs, session)) {
			h->held->state = APPROVAL_UNASKABLE;
			snprintf(h->held->why, sizeof(h->held->why),
				 "cancelled by the client while waiting for approval");
		}
	}
}

/*
 * A call held on our event stream was decided: our question taken back when the client did not
 * answer it, then the call's denial, or the server's answer as it comes (stream_end).
 */
static void finish_stream(struct req *r)
{
	const json_t *params = json_object_get(r->held_msg, "params");
	const char *tool = json_string_value(json_object_get(params, "name"));
	const char *by = r->held_by[0] ? r->held_by : NULL;
	struct decision d;

	if (r->elicit_id[0] && (!by || strcmp(by, "elicitation")))
		put_event(r, approval__elicit_cancelled(r->elicit_id,
							r->held_state == APPROVAL_EXPIRED ?
								"approval timed out" :
								"decided otherwise"));
	decide__call(r->px->policy, tool, json_object_get(params, "arguments"), &d);
	approval__deny_unless_approved(&d, r->held_state, r->held_timeout_s, r->held_why, by);
	if (!admit(r, r->held_msg, tool, &d, by, r->t0)) {
		put_event(r, denial(r->held_msg, &d));
	} else if (start_upstream(r)) {
		limits__release(r->px->limits, &r->res);
		r->has_res = false;
		put_event(r,
			  jsonrpc__error(json_object_get(r->held_msg, "id"), JSONRPC_INTERNAL_ERROR,
					 "mcpfence: cannot start the upstream request"));
	} else {
		return; /* the answer's head, then its body, come to on_header and on_body */
	}
	r->done = true;
}

/* The server's answer to a call on our event stream, at its end: the last events. */
static void stream_end(struct req *r)
{
	const json_t *id = json_object_get(r->held_msg, "id");
	char why[300];
	json_t *v = NULL;

	if (!r->headers_done || r->cres != CURLE_OK) {
		snprintf(why, sizeof(why), "mcpfence: the server at %.100s did not answer: %s",
			 r->px->upstream, curl_easy_strerror(r->cres));
		v = jsonrpc__error(id, JSONRPC_INTERNAL_ERROR, why);
	} else if (r->whole) {
		v = json_loadb(r->up.buf ? r->up.buf : "", r->up.len, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(v)) {
			json_decref(v);
			snprintf(
				why, sizeof(why),
				"mcpfence: the server at %.100s answered HTTP %ld with no JSON-RPC "
				"message",
				r->px->upstream, r->status);
			v = jsonrpc__error(id, JSONRPC_INTERNAL_ERROR, why);
		}
	}
	if (v)
		put_event(r, v);
	r->cres = CURLE_OK; /* the stream itself ends well */
}

/* The operator decided on a held call (or its time was up): on, or the denial. */
static enum MHD_Result finish_held(struct req *r)
{
	const json_t *params = json_object_get(r->held_msg, "params");
	const char *tool = json_string_value(json_object_get(params, "name"));
	const char *by = r->held_by[0] ? r->held_by : NULL;
	struct decision d;

	decide__call(r->px->policy, tool, json_object_get(params, "arguments"), &d);
	approval__deny_unless_approved(&d, r->held_state, r->held_timeout_s, r->held_why, by);
	return go_on(r, r->held_msg, tool, &d, by, r->t0);
}

/*
 * A retry (2026-07-28) that carries the state of our input_required: on when the user approved
 * (the params as the server expects them, the body made again from them), or when the policy
 * in force now allows the call outright; else the denial, saying why.
 */
static enum MHD_Result judge_retry(struct req *r, const struct jr_msg *m, const char *tool,
				   struct decision *d, uint64_t t0)
{
	char why[200], ptr[DECIDE_PTR_LEN];
	enum mrtr_answer a;
	char *body;

	share_approvals(r->px, false);
	a = mrtr__answer(&r->px->mrtr, tool, m->params, mrtr__now(&r->px->mrtr), why, sizeof(why));
	if (a != MRTR_APPROVED && d->verdict == VERDICT_APPROVE) {
		snprintf(ptr, sizeof(ptr), "%s", d->pointer);
		decide__deny(d, KIND_APPROVAL, ptr, "%s", why);
		return go_on(r, m->root, tool, d, a == MRTR_DECLINED ? "elicitation" : NULL, t0);
	}
	if (a != MRTR_APPROVED) { /* allowed outright now: without what was ours */
		json_object_del(m->params, "requestState");
		json_object_del(json_object_get(m->params, "inputResponses"), MRTR_KEY);
	}
	body = json_dumps(m->root, JSON_COMPACT);
	if (!body)
		return refuse(r, 500, m->id, JSONRPC_INTERNAL_ERROR, "out of memory");
	free(r->body);
	r->body = body;
	r->len = strlen(body);
	return go_on(r, m->root, tool, d,
		     a == MRTR_APPROVED && d->verdict == VERDICT_APPROVE ? "elicitation" : NULL,
		     t0);
}

static enum MHD_Result judge_call(struct req *r, const struct jr_msg *m)
{
	const char *tool = json_string_value(json_object_get(m->params, "name"));
	const json_t *args = json_object_get(m->params, "arguments");
	uint64_t t0 = clock__mono_us();
	struct decision d;

	decide__call(r->px->policy, tool, args, &d);
	if (d.verdict != VERDICT_DENY && mrtr__ours(m->params))
		return judge_retry(r, m, tool, &d, t0);
	if (d.verdict == VERDICT_APPROVE)
		return ask(r, m, tool, &d, t0);
	return go_on(r, m->root, tool, &d, NULL, t0);
}

/* What a batch may hold: nothing the proxy would have to judge or filter. */
static bool batch_plain(const json_t *batch)
{
	size_t i;
	json_t *v;

	json_array_foreach(batch, i, v) {
		struct jr_msg e;

		jsonrpc__classify(v, &e);
		if ((e.kind == JR_REQUEST || e.kind == JR_NOTIFICATION) && e.method &&
		    (!strcmp(e.method, "tools/call") || !strcmp(e.method, "tools/list")))
			return false;
	}
	return true;
}

static enum MHD_Result judge_post(struct req *r)
{
	const char *enc = req_header(r, "Content-Encoding");
	const char *ct = req_header(r, "Content-Type");
	char pwhy[MCP_PARAM_WHY_LEN];
	const char *why;
	struct jr_msg m;
	enum MHD_Result ret;

	if (r->too_big)
		return refuse(r, 413, NULL, JSONRPC_INVALID_REQUEST, "the body is over 4 MiB");
	if (enc && strcasecmp(enc, "identity"))
		return refuse(r, 415, NULL, JSONRPC_INVALID_REQUEST,
			      "a Content-Encoding body is not read: send it as it is");
	/* a body in another charset reads as another message to a server that decodes it */
	if (ct && strcasestr(ct, "charset") && !strcasestr(ct, "charset=utf-8") &&
	    !strcasestr(ct, "charset=\"utf-8\""))
		return refuse(r, 415, NULL, JSONRPC_INVALID_REQUEST,
			      "a body in a charset other than UTF-8 is not read");
	if (jsonrpc__parse(r->body ? r->body : "", r->len, JR_STRICT, &m))
		return refuse(r, 400, NULL, JSONRPC_PARSE_ERROR, m.err);
	if (m.kind == JR_INVALID) {
		ret = refuse(r, 400, m.id, JSONRPC_INVALID_REQUEST, m.err);
	} else if (m.kind == JR_RESPONSE && json_is_string(m.id) &&
		   !strncmp(json_string_value(m.id), ELICIT_PREFIX, strlen(ELICIT_PREFIX))) {
		ret = elicit_answer(r, &m);
	} else if (m.kind == JR_BATCH) {
		ret = batch_plain(m.root) ?
			      forward(r) :
			      refuse(r, 400, NULL, JSONRPC_INVALID_REQUEST,
				     "a batch with tools/call or tools/list is not taken: send "
				     "them one by one");
	} else if (m.kind == JR_NOTIFICATION && !strcmp(m.method, "tools/call")) {
		/* a call without an id cannot be answered: some servers would still run it */
		ret = refuse(r, 400, NULL, JSONRPC_INVALID_REQUEST,
			     "tools/call without an \"id\" is not allowed");
	} else if ((why = headers_disagree(r, &m))) {
		ret = refuse(r, 400, m.id, JSONRPC_INVALID_REQUEST, why);
	} else if (m.kind == JR_REQUEST && !strcmp(m.method, "tools/call") &&
		   (why = params_disagree(r, &m, pwhy, sizeof(pwhy)))) {
		/* -32020: a client of 2026-07-28 lists the tools again and retries once */
		ret = refuse(r, 400, m.id, JSONRPC_HEADER_MISMATCH, why);
	} else if (m.kind == JR_REQUEST && !strcmp(m.method, "tools/call")) {
		ret = judge_call(r, &m);
	} else {
		if (m.kind == JR_REQUEST && !strcmp(m.method, "tools/list")) {
			r->whole = true;
			r->list_id = json_incref(m.id);
		}
		if (m.kind == JR_NOTIFICATION && !strcmp(m.method, "notifications/cancelled"))
			cancelled(r, &m);
		if (m.kind == JR_REQUEST && !strcmp(m.method, "initialize")) {
			const json_t *e = json_object_get(json_object_get(m.params, "capabilities"),
							  "elicitation");

			/* {} is the form mode; a client of the url mode alone cannot answer ours */
			r->init = true;
			r->init_elicit = json_is_object(e) &&
					 (json_object_get(e, "form") || !json_object_get(e, "url"));
		}
		ret = forward(r);
	}
	jsonrpc__msg_free(&m);
	return ret;
}

/* --- the answer --- */

static const char *answer_header(const struct req *r, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < r->nrh; i++)
		if (!strncasecmp(r->rh[i], name, n) && r->rh[i][n] == ':')
			return r->rh[i] + n + 1 + strspn(r->rh[i] + n + 1, " \t");
	return NULL;
}

/* The tools/list answer in msg (an object), filtered; true when it was that answer. */
static bool filter_msg(struct req *r, json_t *msg)
{
	json_t *result = json_object_get(msg, "result");

	if (!json_is_object(result) ||
	    (r->replay ? !json_is_array(json_object_get(result, "tools")) ||
				 !json_object_get(msg, "id") :
			 !json_equal(json_object_get(msg, "id"), r->list_id)))
		return false;
	stdio_gateway__filter_tools(r->px->policy, result);
	stdio_gateway__private_view(result);
	mcp_param__learn(&r->px->params, json_object_get(result, "tools"));
	return true;
}

/* One whole event of n bytes at s into out: filtered when it is the answer (filter_msg). */
static int filter_event(struct req *r, const char *s, size_t n, struct wbuf *out)
{
	struct wbuf data = {};
	char *text = NULL;
	json_t *msg;
	int err;

	err = sse__data(s, n, &data);
	msg = !err && data.len ? json_loadb(data.buf, data.len, JSON_REJECT_DUPLICATES, NULL) :
				 NULL;
	if (msg && filter_msg(r, msg) && (text = json_dumps(msg, JSON_COMPACT)))
		err = sse__with_data(s, n, text, strlen(text), out);
	else
		err = err || wbuf__put(out, s, n);
	json_decref(msg);
	wbuf__free(&data);
	free(text);
	return err ? -ENOMEM : 0;
}

struct list_events {
	struct req *r;
	struct wbuf out;
};

/* An event of a tools/list answer read whole: filtered, into the output. */
static int list_event(void *ctx, const char *s, size_t n)
{
	struct list_events *le = ctx;

	return filter_event(le->r, s, n, &le->out);
}

/* An event of a GET stream, on to the client: filtered when it may be a tools/list answer. */
static int replay_event(void *ctx, const char *s, size_t n)
{
	struct req *r = ctx;

	if (!memmem(s, n, "\"tools\"", 7))
		return wbuf__put(&r->out, s, n);
	return filter_event(r, s, n, &r->out);
}

/*
 * The whole tools/list answer in r->out, filtered in place (JSON or SSE). Out of memory, or an
 * answer that is not one, it stays as it came.
 */
static void filter_answer(struct req *r)
{
	const char *ct = answer_header(r, "Content-Type");
	struct list_events le = { .r = r };
	bool done = false;

	if (!r->out.len)
		return;
	if (ct && !strncasecmp(ct, "application/json", 16)) {
		json_t *v = json_loadb(r->out.buf, r->out.len, JSON_REJECT_DUPLICATES, NULL);
		bool found = v && filter_msg(r, v);
		char *text = found ? json_dumps(v, JSON_COMPACT) : NULL;

		done = text && !wbuf__put(&le.out, text, strlen(text));
		free(text);
		json_decref(v);
		if (!found)
			log_warn(
				"proxy: an answer to tools/list that is not one: passed as it came");
	} else if (ct && !strncasecmp(ct, "text/event-stream", 17)) {
		struct sse_reader rd = { .max = PROXY_LIST_MAX };

		/* its events, each filtered; one left without its empty line is dropped */
		done = !sse__feed(&rd, r->out.buf, r->out.len, true, list_event, &le);
		sse__reader_free(&rd);
	}
	if (done) {
		wbuf__free(&r->out);
		r->out = le.out;
	} else {
		wbuf__free(&le.out);
	}
}

static ssize_t on_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct req *r = cls;
	size_t avail;

	if (r->px->stop)
		return MHD_CONTENT_READER_END_WITH_ERROR; /* no sleeping while the proxy stops */
	for (int tries = 0; tries < 2; tries++) {
		avail = wbuf__pending(&r->out);
		if (avail) {
			size_t n = avail < max ? avail : max;

			memcpy(buf, r->out.buf + r->out.off, n);
			r->out.off += n;
			if (r->paused && r->easy) { /* room again: the server may go on */
				r->paused = false;
				curl_easy_pause(r->easy, CURLPAUSE_CONT);
			}
			return (ssize_t)n;
		}
		if (r->done)
			return r->cres == CURLE_OK ? MHD_CONTENT_READER_END_OF_STREAM :
						     MHD_CONTENT_READER_END_WITH_ERROR;
		if (!r->paused || !r->easy)
			break;
		r->paused = false;
		curl_easy_pause(r->easy, CURLPAUSE_CONT); /* may hand over bytes at once */
	}
	sleep_conn(r);
	return 0;
}

static enum MHD_Result answer_upstream(struct req *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if (!r->headers_done) {
		char why[200];

		snprintf(why, sizeof(why), "the server at %.100s did not answer: %s",
			 r->px->upstream, curl_easy_strerror(r->cres));
		return refuse(r, 502, r->list_id, JSONRPC_INTERNAL_ERROR, why);
	}
	if (r->whole) {
		if (!r->done)
			return sleep_conn(r), MHD_YES;
		if (r->cres != CURLE_OK)
			return refuse(r, 502, r->list_id, JSONRPC_INTERNAL_ERROR,
				      "the server's answer could not be read whole");
		if (r->list_id)
			filter_answer(r);
		resp = MHD_create_response_from_buffer(r->out.len, r->out.buf,
						       MHD_RESPMEM_MUST_COPY);
	} else {
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, on_read, r,
							 NULL);
	}
	if (!resp)
		return MHD_NO;
	for (size_t i = 0; i < r->nrh; i++) {
		char *colon = strchr(r->rh[i], ':');

		*colon = 0;
		MHD_add_response_header(resp, r->rh[i], colon + 1 + strspn(colon + 1, " \t"));
		*colon = ':';
	}
	ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* --- libmicrohttpd's callbacks --- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *size, void **con_cls)
{
	struct px *px = cls;
	struct req *r = *con_cls;

	if (!r) {
		const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
		const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");

		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->px = px;
		r->conn = c;
		snprintf(r->method, sizeof(r->method), "%s", method);
		snprintf(r->path, sizeof(r->path), "%s", url);
		r->next = px->reqs;
		if (px->reqs)
			px->reqs->pprev = &r->next;
		r->pprev = &px->reqs;
		px->reqs = r;
		*con_cls = r;
		if (strcmp(method, "POST") && strcmp(method, "GET") && strcmp(method, "DELETE"))
			return refuse(r, 405, NULL, JSONRPC_INVALID_REQUEST,
				      "only POST, GET and DELETE are MCP's");
		if (!host || !proxy_addr__host_ok(&px->hosts, host, strlen(host)))
			return refuse(r, 403, NULL, JSONRPC_INVALID_REQUEST,
				      "the Host header does not name this proxy (--allow-host)");
		if (origin && !proxy_addr__origin_ok(&px->hosts, origin))
			return refuse(r, 403, NULL, JSONRPC_INVALID_REQUEST,
				      "the Origin is not this host's (--allow-host)");
		if (strlen(url) >= sizeof(r->path))
			return refuse(r, 414, NULL, JSONRPC_INVALID_REQUEST,
				      "the path is too long");
		return MHD_YES;
	}
	if (*size) {
		if (r->len + *size > PROXY_BODY_MAX) {
			r->too_big = true;
		} else if (!r->too_big) {
			char *n = realloc(r->body, r->len + *size + 1);

			if (!n)
				return MHD_NO;
			r->body = n;
			memcpy(r->body + r->len, data, *size);
			r->len += *size;
			r->body[r->len] = 0;
		}
		*size = 0;
		return MHD_YES;
	}
	if (px->stop)
		return MHD_NO;
	if (!r->started) {
		r->started = true;
		if (!strcmp(r->method, "DELETE"))
			session_end(px, req_header(r, "Mcp-Session-Id"));
		return strcmp(r->method, "POST") ? forward(r) : judge_post(r);
	}
	if (r->held_msg && !r->easy && !r->headers_done && !r->done) {
		if (r->held_state == APPROVAL_WAITING)
			return sleep_conn(r), MHD_YES; /* still waiting */
		return finish_held(r);
	}
	return answer_upstream(r);
}

static void req_free(struct px *px, struct req *r)
{
	if (r->easy)
		easy_done(px, r->easy, true);
	curl_slist_free_all(r->hdrs);
	while (r->nrh)
		free(r->rh[--r->nrh]);
	json_decref(r->list_id);
	if (r->held)
		approvals__remove(&px->approvals, r->held);
	json_decref(r->held_msg);
	*r->pprev = r->next;
	if (r->next)
		r->next->pprev = r->pprev;
	free(r->body);
	wbuf__free(&r->out);
	wbuf__free(&r->up);
	sse__reader_free(&r->ev);
	free(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	if (*con_cls)
		req_free(cls, *con_cls);
	*con_cls = NULL;
}

/* --- libcurl's sockets and timer, in the loop --- */

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct px *px = userp;
	struct epoll_event ev = { .data.u64 = TAG_CURL << 32 | (uint32_t)s };

	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(px->ep, EPOLL_CTL_DEL, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (epoll_ctl(px->ep, EPOLL_CTL_MOD, s, &ev) && errno == ENOENT)
		epoll_ctl(px->ep, EPOLL_CTL_ADD, s, &ev);
	return 0;
}

static int on_curl_timer(CURLM *m, long ms, void *userp)
{
	struct px *px = userp;

	px->curl_due_ms = ms < 0 ? 0 : clock__mono_ms() + (uint64_t)ms;
	return 0;
}

/* Transfers that ended: their requests go on (an answer, or an error). */
static void curl_done(struct px *px)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(px->multi, &left))) {
		struct req *r = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		r->done = true;
		r->cres = msg->data.result;
		/* a call that never reached the server gives its budgets back */
		if (r->has_res && !r->headers_done &&
		    (r->cres == CURLE_COULDNT_CONNECT || r->cres == CURLE_COULDNT_RESOLVE_HOST)) {
			limits__release(px->limits, &r->res);
			r->has_res = false;
		}
		if (r->cres != CURLE_OK)
			log_warn("proxy: %s %s upstream: %s", r->method, r->path,
				 curl_easy_strerror(r->cres));
		if (r->stream)
			stream_end(r);
		if (r->replay && sse__feed(&r->ev, NULL, 0, true, replay_event, r))
			r->cres = CURLE_OUT_OF_MEMORY;
		easy_done(px, r->easy, true);
		r->easy = NULL;
		r->paused = false;
		wake(r);
	}
}

/* --- policy --- */

static int load_policy(struct px *px, bool reload)
{
	char err[POLICY_ERR_LEN], real[PATH_MAX];
	struct policy *p;

	if (!px->o->policy_path) {
		px->policy = policy__deny_all();
		return px->policy ? 0 : -ENOMEM;
	}
	p = policy__load(px->o->policy_path, err);
	if (!p) {
		log_err("%s%s", reload ? "SIGHUP: " : "", err);
		if (reload)
			log_err("SIGHUP: keeping the policy in force");
		return -EINVAL;
	}
	policy__free(px->policy);
	px->policy = p;
	audit__set_values(px->audit, p->audit_values);
	if (realpath(px->o->policy_path, real))
		memcpy(px->policy_real, real, sizeof(real));
	if (reload)
		log_info("SIGHUP: policy %s reloaded", px->o->policy_path);
	return 0;
}

static void on_signal(struct px *px)
{
	struct signalfd_siginfo si;

	while (read(px->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP && !load_policy(px, true))
			share_approvals(px, true);
		else
			px->stop = true;
	}
}

/* --- the control socket, in the loop --- */

/*
 * Its descriptors change as operators connect: they are put in an epoll set of their own,
 * made again each turn while the socket is open, which the loop's set holds as one.
 */
static void approvals_watch(struct px *px, struct pollfd *pfd, size_t *n, size_t max)
{
	bool same;

	*n = px->approvals.listen_fd >= 0 ? approvals__pollfds(&px->approvals, pfd, max) : 0;
	/*
	 * The same descriptors wanting the same: the set stands. Once the control socket served
	 * a turn it is made again: a connection closed and another accepted may share a number.
	 */
	same = px->aep >= 0 && !px->astale && *n == px->nwatched;
	for (size_t i = 0; same && i < *n; i++)
		same = pfd[i].fd == px->watched[i].fd && pfd[i].events == px->watched[i].events;
	if (same)
		return;
	memcpy(px->watched, pfd, *n * sizeof(*pfd));
	px->nwatched = *n;
	px->astale = false;
	if (px->aep >= 0)
		close(px->aep); /* and out of the loop's set */
	px->aep = -1;
	if (!*n)
		return;
	px->aep = epoll_create1(EPOLL_CLOEXEC);
	for (size_t i = 0; px->aep >= 0 && i < *n; i++) {
		struct epoll_event ev = { .events = (pfd[i].events & POLLIN ? EPOLLIN : 0) |
						    (pfd[i].events & POLLOUT ? EPOLLOUT : 0),
					  .data.u64 = (uint64_t)i };

		epoll_ctl(px->aep, EPOLL_CTL_ADD, pfd[i].fd, &ev);
	}
	if (px->aep >= 0) {
		struct epoll_event ev = { .events = EPOLLIN,
					  .data.u64 = TAG_APPROVALS << 32 | (uint32_t)px->aep };

		epoll_ctl(px->ep, EPOLL_CTL_ADD, px->aep, &ev);
	}
}

/* Calls decided (or out of time): their requests go on. true when one did. */
static bool approvals_decided(struct px *px, uint64_t now_us)
{
	struct approval *a;
	bool woke = false;

	approvals__expire(&px->approvals, now_us);
	while ((a = approvals__decided(&px->approvals))) {
		struct req *r = px->reqs;

		while (r && r->held != a)
			r = r->next;
		if (r) {
			r->held_state = a->state;
			r->held_timeout_s = a->timeout_s;
			snprintf(r->held_by, sizeof(r->held_by), "%s", a->by);
			snprintf(r->held_why, sizeof(r->held_why), "%s", a->why);
			r->held = NULL;
			if (r->stream)
				finish_stream(r); /* its answer is under way: on_request is done */
			wake(r);
			woke = true;
		}
		approvals__remove(&px->approvals, a);
	}
	return woke;
}

/* --- the loop --- */

static int loop(struct px *px)
{
	struct epoll_event evs[64];

	while (!px->stop) {
		struct pollfd apfd[1 + APPROVAL_CONNS];
		MHD_UNSIGNED_LONG_LONG mhd_ms;
		uint64_t now = clock__mono_ms(), adue;
		int timeout = 1000, n, running;
		size_t an = 0;

		if (px->approvals.head && approvals_decided(px, clock__mono_us()))
			MHD_run(px->mhd); /* the requests just woken */
		adue = approvals__expire(&px->approvals, clock__mono_us()) / 1000;
		if (adue)
			timeout = adue <= now ? 0 : adue - now < 1000 ? (int)(adue - now) : 1000;
		approvals_watch(px, apfd, &an, sizeof(apfd) / sizeof(apfd[0]));

		if (MHD_get_timeout(px->mhd, &mhd_ms) == MHD_YES && mhd_ms < (unsigned)timeout)
			timeout = (int)mhd_ms;
		if (px->curl_due_ms)
			timeout = px->curl_due_ms <= now ? 0 :
				  px->curl_due_ms - now < (uint64_t)timeout ?
							   (int)(px->curl_due_ms - now) :
							   timeout;
		if (audit__deadline(px->audit)) { /* kept lines are written 10 ms after the first */
			uint64_t due = audit__deadline(px->audit) / 1000, t = clock__mono_ms();

			timeout = due <= t		      ? 0 :
				  due - t < (uint64_t)timeout ? (int)(due - t) :
								timeout;
		}
		n = epoll_wait(px->ep, evs, 64, timeout);
		if (n < 0 && errno != EINTR) {
			log_err("proxy: epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64 >> 32;

			if (tag == TAG_SIGNAL) {
				on_signal(px);
			} else if (tag == TAG_APPROVALS) {
				if (an && poll(apfd, an, 0) > 0) {
					px->astale = true;
					approvals__serve(&px->approvals, px->policy, apfd, an,
							 clock__mono_us());
				}
			} else if (tag == TAG_CURL) {
				int flags =
					(evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
					(evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
					(evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR :
										 0);

				curl_multi_socket_action(px->multi,
							 (curl_socket_t)(uint32_t)evs[i].data.u64,
							 flags, &running);
			}
		}
		if (px->curl_due_ms && clock__mono_ms() >= px->curl_due_ms) {
			px->curl_due_ms = 0;
			curl_multi_socket_action(px->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
		curl_done(px);
		MHD_run(px->mhd);
		audit__flush_due(px->audit, clock__mono_us());
	}
	return 0;
}

static int add_fd(struct px *px, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag << 32 | (uint32_t)fd };

	return epoll_ctl(px->ep, EPOLL_CTL_ADD, fd, &ev);
}

int http_proxy__run(const struct proxy_opts *o)
{
	struct px px = { .o = o, .ep = -1, .sigfd = -1, .aep = -1 };
	struct sockaddr_storage sa;
	const union MHD_DaemonInfo *di;
	const char *why = NULL;
	char path[300];
	socklen_t salen;
	sigset_t mask;
	int ret = 1;

	if (proxy_addr__parse_listen(o->listen, &sa, &salen, px.listen_host, sizeof(px.listen_host),
				     &px.listen_port)) {
		log_err("proxy: --listen %s: not ADDR:PORT (127.0.0.1:8080, [::1]:8080)",
			o->listen);
		return 2;
	}
	px.hosts = (struct proxy_hosts){ .listen_host = px.listen_host,
					 .allowed = o->allowed,
					 .nallowed = o->nallowed };
	if (proxy_addr__parse_upstream(o->upstream, px.upstream, sizeof(px.upstream), &why)) {
		log_err("proxy: --upstream %s: %s", o->upstream, why);
		return 2;
	}
	snprintf(px.server, sizeof(px.server), "%.255s", o->name ? o->name : px.upstream);
	approvals__init(&px.approvals);
	px.approvals.server = px.server;
	if (mrtr__init(&px.mrtr)) {
		log_err("proxy: cannot draw a key for approvals: %s", strerror(errno));
		return 1;
	}
	px.audit = audit__open(o->audit_path);
	if (!px.audit) {
		mrtr__free(&px.mrtr);
		return 1;
	}
	audit__set_buffered(px.audit, true); /* off the calls' path, as run's */
	if (load_policy(&px, false))
		goto out;
	share_approvals(&px, true);
	px.limits = limits__new(NULL, NULL);
	px.sessions = calloc(SESSIONS, sizeof(*px.sessions));
	if (!px.limits || !px.sessions)
		goto out;
	if (limits__share_table(px.limits, limits__default_table_path(path, sizeof(path)), 0))
		log_warn("proxy: calls that need a budget of the host-wide table are denied");
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		log_err("proxy: libcurl did not start");
		goto out;
	}
	px.multi = curl_multi_init();
	px.ep = epoll_create1(EPOLL_CLOEXEC);
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	px.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (!px.multi || px.ep < 0 || px.sigfd < 0 || add_fd(&px, px.sigfd, TAG_SIGNAL)) {
		log_err("proxy: cannot set up its loop: %s", strerror(errno));
		goto out;
	}
	curl_multi_setopt(px.multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(px.multi, CURLMOPT_SOCKETDATA, &px);
	curl_multi_setopt(px.multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(px.multi, CURLMOPT_TIMERDATA, &px);
	px.mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
					  (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
				  (uint16_t)px.listen_port, NULL, NULL, on_request, &px,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, &px,
				  MHD_OPTION_CONNECTION_LIMIT, o->max_conns ? o->max_conns : 1024u,
				  MHD_OPTION_CONNECTION_TIMEOUT, 600u, MHD_OPTION_END);
	if (!px.mhd) {
		log_err("proxy: cannot listen on %s: %s", o->listen, strerror(errno));
		goto out;
	}
	di = MHD_get_daemon_info(px.mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di || add_fd(&px, di->epoll_fd, TAG_MHD)) {
		log_err("proxy: cannot watch the HTTP server: %s", strerror(errno));
		goto out;
	}
	if (o->redirect_port) {
		struct sockaddr_storage up;

		if (proxy_addr__upstream(px.upstream, &up) ||
		    ntohs(((struct sockaddr_in *)&up)->sin_port) != o->redirect_port) {
			log_err("proxy: --redirect-port %u: --upstream must name the server there by "
				"its address (http://127.0.0.1:%u)",
				o->redirect_port, o->redirect_port);
			goto out;
		}
		if (proxy_redirect__start(&up, &sa, o->cgroup, &px.redirect))
			goto out;
		log_info("proxy: local connections to %s are sent here (getpeername says %s)",
			 px.upstream, px.upstream);
	}
	log_info("proxy: listening on %s, forwarding to %s under %s", o->listen, px.upstream,
		 o->policy_path ? o->policy_path : "no policy (every call is denied)");
	ret = loop(&px) ? 1 : 0;
	log_info("proxy: stopping");
	proxy_redirect__stop(px.redirect); /* first: clients go to the server itself again */
	px.redirect = NULL;
out:
	/* requests whose connection sleeps are woken to be closed */
	for (struct req *r = px.reqs; r; r = r->next)
		wake(r);
	if (px.mhd) {
		px.stop = true;
		MHD_run(px.mhd);
		MHD_stop_daemon(px.mhd);
	}
	while (px.nspare)
		curl_easy_cleanup(px.spare[--px.nspare]);
	if (px.multi)
		curl_multi_cleanup(px.multi);
	curl_global_cleanup();
	if (px.sigfd >= 0)
		close(px.sigfd);
	if (px.ep >= 0)
		close(px.ep);
	proxy_redirect__stop(px.redirect);
	approvals__fini(&px.approvals);
	if (px.aep >= 0)
		close(px.aep);
	mrtr__free(&px.mrtr);
	redis_store__free(px.mrtr_store);
	free(px.sessions);
	mcp_param__free(&px.params);
	limits__free(px.limits);
	policy__free(px.policy);
	audit__close(px.audit);
	return ret;
}
