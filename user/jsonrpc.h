/* SPDX-License-Identifier: Apache-2.0 */
/*
 * jsonrpc: newline-delimited JSON-RPC 2.0 (the MCP stdio transport). A reader frames lines out
 * of partial reads; a parser classifies each line into request, notification, response or
 * batch, strictly enough that the server cannot read a different message than the one judged
 * (duplicate keys, invalid UTF-8 and NUL in strings are refused).
 */
#ifndef MCPFENCE_JSONRPC_H
#define MCPFENCE_JSONRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#define JSONRPC_MAX_LINE (16u << 20) /* a longer client line is refused, a server line streamed */

/* JSON-RPC error codes */
#define JSONRPC_PARSE_ERROR -32700
#define JSONRPC_INVALID_REQUEST -32600
#define JSONRPC_INTERNAL_ERROR -32603
#define JSONRPC_HEADER_MISMATCH -32020 /* 2026-07-28: headers that disagree with the body */

/* Line framing over partial reads. */
struct jr_reader {
	char *buf;
	size_t len; /* bytes held */
	size_t cap;
	size_t scan;   /* bytes before this offset hold no newline */
	size_t off;    /* start of the next line */
	size_t max;    /* longest line kept whole */
	bool oversize; /* inside a line longer than max: it comes out in parts */
};

enum jr_line {
	JR_LINE_NONE = 0,     /* no complete line held: read more */
	JR_LINE_WHOLE = 1,    /* one line, newline excluded */
	JR_LINE_PART = 2,     /* a piece of a line longer than max (newline excluded) */
	JR_LINE_PART_END = 3, /* the last piece of such a line */
};

void jsonrpc__reader_init(struct jr_reader *r, size_t max);
void jsonrpc__reader_free(struct jr_reader *r);
/* Read once from fd into the reader: bytes read, 0 at EOF, or -errno (-EAGAIN included). */
long jsonrpc__reader_fill(struct jr_reader *r, int fd);
/* Append bytes as if read (tests, and callers that read themselves). 0 or -ENOMEM. */
int jsonrpc__reader_feed(struct jr_reader *r, const void *data, size_t len);
/*
 * Next line or piece. *line stays valid until the next call. At EOF call with eof true to get
 * an unterminated last line (as JR_LINE_WHOLE, or JR_LINE_PART_END).
 */
enum jr_line jsonrpc__next_line(struct jr_reader *r, bool eof, const char **line, size_t *len);
/* Does the reader hold a whole line that jsonrpc__next_line has not handed out yet? */
bool jsonrpc__reader_has_line(struct jr_reader *r);

enum jr_kind {
	JR_INVALID = 0,	     /* JSON, but not JSON-RPC (err says why; id kept if readable) */
	JR_REQUEST = 1,	     /* method and id */
	JR_NOTIFICATION = 2, /* method, no id */
	JR_RESPONSE = 3,     /* result or error, and id */
	JR_BATCH = 4,	     /* an array of messages: classify each element */
};

#define JSONRPC_ERR_LEN 160

struct jr_msg {
	enum jr_kind kind;
	json_t *root;	    /* owned: the whole value */
	const char *method; /* borrowed from root */
	json_t *id;	    /* borrowed; NULL when absent */
	json_t *params;	    /* borrowed; NULL when absent */
	char err[JSONRPC_ERR_LEN];
};

/*
 * Parse flags. JR_STRICT, for what comes from the client: refuse a message that some server
 * could read as another one than the one judged: a duplicate key anywhere (servers read the
 * last one); in a message object or its params, a key that equals one that matters only
 * without regard to case (jsonrpc__key_folds_to: "NAME", "paramſ"); a bare CR inside the line
 * (servers reading with universal newlines end the line there).
 */
#define JR_STRICT 1u

/*
 * Parse one line. Returns 0 with m filled (kind JR_INVALID when it is JSON but not JSON-RPC),
 * or -EINVAL when the line is not JSON (m->err says where and why; m->root NULL).
 */
int jsonrpc__parse(const char *line, size_t len, unsigned flags, struct jr_msg *m);
/* Classify one value (a batch element); m->root is borrowed, not owned, in that case. */
void jsonrpc__classify(json_t *v, struct jr_msg *m);
void jsonrpc__msg_free(struct jr_msg *m);
/*
 * The kind jsonrpc__parse (not strict) would give the line, for a line simple enough to be
 * sure of it without parsing: plain strings (no \u escape), short numbers, little depth.
 * JR_INVALID: not sure (parse it), or not a message.
 */
enum jr_kind jsonrpc__plain_kind(const char *line, size_t len);

/* A tools/call as the plain reading sees it: its tool's name, bytes of the line as they are. */
struct jr_call_view {
	const char *tool;
	size_t tool_len;
};

/*
 * Is the line, for certain, a tools/call that jsonrpc__parse(JR_STRICT) reads as a request
 * without refusing it, with this tool name? True only for what the plain reading knows and
 * nothing that asks for a closer look: an object of "jsonrpc": "2.0", an integer or plain
 * string "id", "method": "tools/call" and "params" of a plain "name", an object "arguments"
 * and an object "_meta", each once and spelled so, no other key there, no key twice in any
 * object (nor one with an escape), no CR but one that ends the line. False: not sure.
 */
bool jsonrpc__plain_call(const char *line, size_t len, struct jr_call_view *v);

/*
 * Does key (klen bytes of UTF-8) equal target (tlen bytes) without regard to case, as servers
 * that match keys case-insensitively read it, while not being the same bytes? Folding: ASCII
 * letters; U+017F (long s) and U+212A (Kelvin), which Go's encoding/json folds to s and k;
 * U+0131 and U+0130, which .NET's case-insensitive match takes for i. Any other non-ASCII
 * character is taken to fold to any other one (so "é" and "É" count as equal: when in doubt,
 * refuse).
 */
bool jsonrpc__key_folds_to(const char *key, size_t klen, const char *target, size_t tlen);

/* Is the line only blanks (space, tab, CR)? */
bool jsonrpc__blank(const char *line, size_t len);

/* Compact serialization of a message followed by '\n'; malloc'ed, *len set. NULL on ENOMEM. */
char *jsonrpc__dump_line(const json_t *v, size_t *len);
/* Keys of the 2026-07-28 revision in params._meta of every request, and in a result's _meta. */
#define MCP_META_PROTOCOL_VERSION "io.modelcontextprotocol/protocolVersion"
#define MCP_META_CLIENT_INFO "io.modelcontextprotocol/clientInfo"
#define MCP_META_CLIENT_CAPS "io.modelcontextprotocol/clientCapabilities"
#define MCP_META_SERVER_INFO "io.modelcontextprotocol/serverInfo"
/*
 * The revision a request names in params._meta (2026-07-28 on, every request carries it), or
 * NULL: an earlier revision, which named it once, in initialize.
 */
const char *jsonrpc__request_revision(const json_t *params);

/* {"jsonrpc":"2.0","id":id|null,"error":{"code":code,"message":message}} */
json_t *jsonrpc__error(const json_t *id, int code, const char *message);
/* {"jsonrpc":"2.0","id":id,"result":result}; steals result */
json_t *jsonrpc__result(const json_t *id, json_t *result);

/* The id as compact JSON text (for comparing ids: 1 and "1" differ); into buf, or "null". */
void jsonrpc__id_text(const json_t *id, char *buf, size_t size);

#endif
