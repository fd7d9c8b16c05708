// SPDX-License-Identifier: Apache-2.0
/*
 * mcpfence's view of hostile bytes, for the differential tier (tests/diff/run.py): what each plane
 * decides on them, with the project's own code, and the bytes it lets through to the server.
 *
 * In: one JSON line per case, {"id": ID, "plane": "stdio" | "http", "data": BASE64}: the bytes a
 * client writes to a server's stdin, or sends on one TCP connection to its HTTP port.
 * Out: one JSON line per case, {"id": ID, "views": {NAME: VIEW, ...}}, where a VIEW is
 *   {"refused": [why, ...], "calls": [tool, ...], "methods": [method, ...],
 *    "pass": BASE64, "pass_deny": BASE64}
 * "calls" are the tools/call names the plane decided (each one then allowed or denied by the
 * policy), "refused" says what it refused unread and why. "pass" is what reaches the server when
 * every call decided is allowed, "pass_deny" when every one is denied (absent for a plane that
 * is not built yet). Views:
 *   gateway  `mcpfence run` (stdio): client_line() of user/stdio_gateway.c, line by line:
 *            jsonrpc__parse(JR_STRICT), then message by message as client_msg() and
 *            client_batch() go (batch elements one by one, each sent on its own line)
 *   kstdio   the scanner on each line, as a line-framed kernel plane must use it (NEWLINE and
 *            TRAILING refused); the stdio kernel plane is not built yet: no "pass"
 *   kernel   `mcpfence attach --port` (bpf/tcp.bpf.c): client_send() framing each request with
 *            http_head_parse(), then body_handle(): http_head_body_why(), the scanner on the
 *            whole body, http_body_why(); pipelined requests one after the other, as the
 *            sk_msg program runs again on what follows a request
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "jsonrpc.h"
#include "kernel.h"
#include "http_head.bpf.h"

static struct mcpf_scan_buf buf;
static struct mcpf_scan_result res;
static struct http_head head;

static const char *const why_names[MCPF_WHY_MAX] = {
	[MCPF_WHY_NONE] = "none",
	[MCPF_WHY_JSON] = "json",
	[MCPF_WHY_BOUND] = "bound",
	[MCPF_WHY_DUP_KEY] = "dup-key",
	[MCPF_WHY_FOLDED_KEY] = "folded-key",
	[MCPF_WHY_SHAPE] = "shape",
	[MCPF_WHY_ID] = "id",
	[MCPF_WHY_TRAILING] = "trailing",
	[MCPF_WHY_NEWLINE] = "newline",
	[MCPF_WHY_FRAMING] = "framing",
	[MCPF_WHY_ENCODING] = "encoding",
	[MCPF_WHY_MEDIA_TYPE] = "media-type",
	[MCPF_WHY_CHARSET] = "charset",
	[MCPF_WHY_HEADERS] = "headers",
	[MCPF_WHY_TOO_LARGE] = "too-large",
	[MCPF_WHY_BUSY] = "busy",
	[MCPF_WHY_INCOMPLETE] = "incomplete",
};

/* --- bytes --- */

struct bytes {
	unsigned char *p;
	size_t len, cap;
};

static void put(struct bytes *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + len + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p) {
			perror("view");
			exit(2);
		}
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_decode(const char *s, struct bytes *out)
{
	unsigned int acc = 0, bits = 0;

	for (; *s && *s != '='; s++) {
		const char *c = strchr(b64chars, *s);
		unsigned char byte;

		if (!c)
			return -EINVAL;
		acc = acc << 6 | (unsigned int)(c - b64chars);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			byte = acc >> bits & 0xff;
			put(out, &byte, 1);
		}
	}
	return 0;
}

static json_t *b64_encode(const struct bytes *b)
{
	size_t n = (b->len + 2) / 3 * 4, o = 0;
	char *s = malloc(n + 1);
	json_t *j;

	for (size_t i = 0; i < b->len; i += 3) {
		unsigned int v = b->p[i] << 16;

		v |= i + 1 < b->len ? b->p[i + 1] << 8 : 0;
		v |= i + 2 < b->len ? b->p[i + 2] : 0;
		s[o++] = b64chars[v >> 18 & 63];
		s[o++] = b64chars[v >> 12 & 63];
		s[o++] = i + 1 < b->len ? b64chars[v >> 6 & 63] : '=';
		s[o++] = i + 2 < b->len ? b64chars[v & 63] : '=';
	}
	s[o] = 0;
	j = json_string(s);
	free(s);
	return j;
}

/* --- one view --- */

struct view {
	json_t *refused, *calls, *methods;
	struct bytes pass, pass_deny;
	bool passes; /* the plane exists: report what passes */
};

static void view_init(struct view *v, bool passes)
{
	memset(v, 0, sizeof(*v));
	v->refused = json_array();
	v->calls = json_array();
	v->methods = json_array();
	v->passes = passes;
}

static json_t *view_json(struct view *v)
{
	json_t *j = json_pack("{s:o, s:o, s:o}", "refused", v->refused, "calls", v->calls,
			      "methods", v->methods);

	if (v->passes) {
		json_object_set_new(j, "pass", b64_encode(&v->pass));
		json_object_set_new(j, "pass_deny", b64_encode(&v->pass_deny));
	}
	free(v->pass.p);
	free(v->pass_deny.p);
	return j;
}

static void refuse(struct view *v, const char *why)
{
	json_array_append_new(v->refused, json_string(why));
}

/* Both ways to the server. */
static void pass_both(struct view *v, const void *data, size_t len)
{
	put(&v->pass, data, len);
	put(&v->pass_deny, data, len);
}

/* --- gateway: client_line(), client_msg(), client_batch() --- */

static void gw_forward(struct view *v, json_t *msg, const char *raw, size_t len, bool call)
{
	char *line = NULL;

	if (!raw) {
		line = jsonrpc__dump_line(msg, &len);
		raw = line;
		len--; /* its newline is added below */
	}
	put(&v->pass, raw, len);
	put(&v->pass, "\n", 1);
	if (!call) {
		put(&v->pass_deny, raw, len);
		put(&v->pass_deny, "\n", 1);
	}
	free(line);
}

static void gw_msg(struct view *v, json_t *val, const char *raw, size_t len)
{
	struct jr_msg m;
	const char *tool;

	jsonrpc__classify(val, &m);
	if (m.method)
		json_array_append_new(v->methods, json_string(m.method));
	switch (m.kind) {
	case JR_INVALID:
		refuse(v, m.err);
		break;
	case JR_BATCH:
		for (size_t i = 0; i < json_array_size(val); i++) {
			json_t *e = json_array_get(val, i);

			if (json_is_array(e))
				refuse(v, "nested batch");
			else
				gw_msg(v, e, NULL, 0);
		}
		break;
	case JR_RESPONSE:
		gw_forward(v, val, raw, len, false);
		break;
	case JR_NOTIFICATION:
		if (!strcmp(m.method, "tools/call"))
			refuse(v, "tools/call without an \"id\" is not allowed");
		else
			gw_forward(v, val, raw, len, false);
		break;
	case JR_REQUEST:
		if (strcmp(m.method, "tools/call")) {
			gw_forward(v, val, raw, len, false);
			break;
		}
		tool = json_string_value(json_object_get(m.params, "name"));
		if (!json_is_object(m.params) || !tool) {
			refuse(v, "tools/call needs \"params\" with a string \"name\"");
			break;
		}
		json_array_append_new(v->calls, json_string(tool));
		gw_forward(v, val, raw, len, true);
		break;
	}
}

/*
 * The quick reading of a tools/call took a line that the strict reading refuses, or reads as
 * another call: the gateway would have let it through as judged. Stop the tier, loudly.
 */
static void disagree(const char *line, size_t len, const char *why)
{
	fprintf(stderr,
		"view: the quick reading takes a line the strict one reads otherwise (%s): %.*s\n",
		why, (int)(len > 300 ? 300 : len), line);
	exit(3);
}

static void gateway(const struct bytes *in, struct view *v)
{
	struct jr_call_view cv;
	struct jr_reader r;
	enum jr_line kind;
	const char *line;
	json_t *name;
	size_t len;
	bool quick;

	jsonrpc__reader_init(&r, 0);
	jsonrpc__reader_feed(&r, in->p, in->len);
	while ((kind = jsonrpc__next_line(&r, true, &line, &len)) != JR_LINE_NONE) {
		struct jr_msg m;

		if (kind != JR_LINE_WHOLE) {
			refuse(v, "message longer than the longest line");
			continue;
		}
		if (jsonrpc__blank(line, len))
			continue;
		/* quick_call() forwards what this takes before the strict reading: they must agree */
		quick = jsonrpc__plain_call(line, len, &cv);
		if (jsonrpc__parse(line, len, JR_STRICT, &m)) {
			if (quick)
				disagree(line, len, m.err);
			refuse(v, m.err);
			continue;
		}
		name = json_object_get(m.params, "name");
		if (quick && (m.kind != JR_REQUEST || strcmp(m.method, "tools/call") ||
			      json_string_length(name) != cv.tool_len ||
			      memcmp(json_string_value(name), cv.tool, cv.tool_len)))
			disagree(line, len, "another call");
		gw_msg(v, m.root, line, len);
		jsonrpc__msg_free(&m);
	}
	jsonrpc__reader_free(&r);
}

/* --- the scanner's calls --- */

static bool is_tools_call(const struct mcpf_call *c)
{
	return (c->flags & MCPF_CALL_HAS_METHOD) && c->method_len == 10 &&
	       !memcmp(c->method, "tools/call", 10);
}

/* The calls of res (read OK) into v; the number of tools/call among them. */
static unsigned int scan_calls(struct view *v)
{
	unsigned int n = 0;

	for (__u32 i = 0; i < res.ncalls; i++) {
		const struct mcpf_call *c = &res.calls[i];

		if (c->flags & MCPF_CALL_HAS_METHOD)
			json_array_append_new(v->methods, json_stringn(c->method, c->method_len));
		if (!is_tools_call(c))
			continue;
		n++;
		/* call_one(): a call without a name is decided as invalid (denied) */
		if ((c->flags & MCPF_CALL_HAS_NAME) && c->name_len < MCPF_NAME_MAX)
			json_array_append_new(v->calls, json_stringn(c->name, c->name_len));
		else
			json_array_append_new(v->calls, json_string("(invalid)"));
	}
	return n;
}

/* --- the stdio kernel plane (not built yet): the scanner on each line --- */

static void kstdio(const struct bytes *in, struct view *v)
{
	size_t pos = 0;

	while (pos < in->len) {
		const unsigned char *nl = memchr(in->p + pos, '\n', in->len - pos);
		size_t len = nl ? (size_t)(nl - (in->p + pos)) : in->len - pos;

		if (!jsonrpc__blank((const char *)in->p + pos, len)) {
			size_t n = len > MCPF_SCAN_BUF_MAX ? MCPF_SCAN_BUF_MAX : len;

			memcpy(buf.data, in->p + pos, n);
			memset(buf.data + n, '"', sizeof(buf.data) - n);
			mcp_scan(&buf, len, &res);
			if (res.status != MCPF_SCAN_OK)
				refuse(v, why_names[res.status == MCPF_SCAN_INCOMPLETE ?
							    MCPF_WHY_INCOMPLETE :
						    res.why < MCPF_WHY_MAX ? res.why :
									     0]);
			else if (res.flags & (MCPF_SCAN_NEWLINE | MCPF_SCAN_TRAILING))
				refuse(v, why_names[res.flags & MCPF_SCAN_NEWLINE ?
							    MCPF_WHY_NEWLINE :
							    MCPF_WHY_TRAILING]);
			else
				scan_calls(v);
		}
		pos += len + 1;
	}
}

/* --- the TCP kernel plane: client_send() and body_handle() of bpf/tcp.bpf.c --- */

/* request_refuse(): the send's first byte made invalid; it passes, later sends are dropped. */
static void k_refuse_send(struct view *v, const unsigned char *send, size_t size, __u32 why)
{
	unsigned char poison = 0x01;

	refuse(v, why_names[why]);
	pass_both(v, &poison, 1);
	pass_both(v, send + 1, size - 1);
}

/* The rewrite of neutralize_method(): the method's string (quotes kept) is "rpc.denied___". */
static int k_neutralize(unsigned char *p, size_t avail, __u32 off, __u32 span)
{
	static const char w[] = "rpc.denied";

	if (span < 12 || span > 320 || off + span > avail)
		return -1;
	for (__u32 j = 0; j + 2 < span; j++)
		p[off + 1 + j] = j < 10 ? w[j] : '_';
	return 0;
}

/*
 * One request at the start of send: how many bytes it takes, or 0 when it ends the case (refused
 * whole, or held: corked for bytes that never come).
 */
static size_t k_request(struct view *v, const unsigned char *send, size_t size)
{
	size_t n = size < MCPF_TCP_HDR_MAX ? size : MCPF_TCP_HDR_MAX, total;
	unsigned char *copy;
	__u32 why, end, cl, base = 0;
	bool scanned = false;
	unsigned int ncalls = 0;

	memcpy(buf.data, send, n);
	memset(buf.data + n, '\r', MCPF_TCP_HDR_MAX + 64 - n);
	http_head_parse(&buf, n, &head);
	if (head.hc.error) {
		k_refuse_send(v, send, size, MCPF_WHY_FRAMING);
		return 0;
	}
	if (!head.hc.end) {
		if (size >= MCPF_TCP_HDR_MAX) {
			k_refuse_send(v, send, size, MCPF_WHY_FRAMING);
			return 0;
		}
		refuse(v, "held: the head never ends");
		return 0;
	}
	if (head.hc.seen & (1u << HDR_TRANSFER_ENCODING)) {
		k_refuse_send(v, send, size, MCPF_WHY_FRAMING);
		return 0;
	}
	end = head.hc.end;
	cl = (__u32)head.hc.cl;
	total = (size_t)end + cl;
	if (head.hc.cl > MCPF_SCAN_BUF_MAX) {
		if (size <= end) {
			refuse(v, "held: the body never comes");
			return 0;
		}
		why = MCPF_WHY_TOO_LARGE;
	} else if (size < total) {
		refuse(v, "held: the body never ends");
		return 0;
	} else if (!cl) {
		pass_both(v, send, total);
		return total;
	} else {
		why = http_head_body_why(&head, &buf);
	}
	if (why == MCPF_WHY_NONE) {
		/* body_load(): the body in place after the head's copy when it fits, else at 0 */
		base = total <= MCPF_SCAN_BUF_MAX ? 0 : end;

		memcpy(buf.data, send + base, total - base);
		memset(buf.data + (total - base), '"', sizeof(buf.data) - (total - base));
		mcp_scan_from(&buf, end - base, total - base, &res);
		why = http_body_why(&head, &res);
		scanned = true;
	}
	if (total > size)
		total = size; /* a body too large to read: the rest of it passes later */
	copy = malloc(total);
	memcpy(copy, send, total);
	if (why != MCPF_WHY_NONE) {
		refuse(v, why_names[why]);
		copy[end] = 0x01; /* poison_at(msg, off) */
		pass_both(v, copy, total);
	} else if (scanned) {
		ncalls = scan_calls(v);
		put(&v->pass, copy, total);
		/* every tools/call neutralized in place, or the body refused */
		for (__u32 i = 0; ncalls && i < res.ncalls; i++) {
			const struct mcpf_call *c = &res.calls[i];
			__u32 off = c->method_off + base;

			if (is_tools_call(c) && k_neutralize(copy, total, off, c->method_span))
				copy[end] = 0x01;
		}
		/* and Mcp-Method with them: neutralize_method_header() */
		if (ncalls && (head.hc.seen & (1u << HDR_MCP_METHOD)) && head.h_method_len == 10 &&
		    head.h_method_off + 10 <= end)
			memcpy(copy + head.h_method_off, "rpc.denied", 10);
		put(&v->pass_deny, copy, total);
	}
	free(copy);
	return total;
}

static void kernel(const struct bytes *in, struct view *v)
{
	size_t pos = 0, used;

	while (pos < in->len) {
		used = k_request(v, in->p + pos, in->len - pos);
		if (!used)
			break;
		pos += used;
	}
}

/* --- main --- */

static int one(const char *line)
{
	json_error_t err;
	json_t *c = json_loads(line, 0, &err), *views, *out;
	const char *plane, *data;
	struct bytes in = { 0 };
	struct view v;
	char *s;

	if (!c) {
		fprintf(stderr, "view: a case that is not JSON: %s\n", err.text);
		return -EINVAL;
	}
	plane = json_string_value(json_object_get(c, "plane"));
	data = json_string_value(json_object_get(c, "data"));
	if (!plane || !data || b64_decode(data, &in)) {
		fprintf(stderr, "view: a case needs \"plane\" and \"data\" (base64)\n");
		json_decref(c);
		return -EINVAL;
	}
	views = json_object();
	if (!strcmp(plane, "stdio")) {
		view_init(&v, true);
		gateway(&in, &v);
		json_object_set_new(views, "gateway", view_json(&v));
		view_init(&v, false);
		kstdio(&in, &v);
		json_object_set_new(views, "kstdio", view_json(&v));
	} else {
		view_init(&v, true);
		kernel(&in, &v);
		json_object_set_new(views, "kernel", view_json(&v));
	}
	out = json_pack("{s:O, s:o}", "id", json_object_get(c, "id"), "views", views);
	s = json_dumps(out, JSON_COMPACT);
	puts(s);
	free(s);
	json_decref(out);
	json_decref(c);
	free(in.p);
	return 0;
}

int main(int argc, char **argv)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	if (argc > 1) {
		fprintf(stderr, "usage: %s < cases.jsonl > views.jsonl\n", argv[0]);
		return 2;
	}
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (n <= 1)
			continue;
		if (one(line))
			rc = 1;
	}
	free(line);
	return rc;
}
