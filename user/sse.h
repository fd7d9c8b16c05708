/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sse: a text/event-stream (Server-Sent Events, as Streamable HTTP carries JSON-RPC messages)
 * cut into whole events, whatever the cuts of the bytes, and an event's data read and written.
 * Lines end at \n, \r\n or \r alone; an empty line ends an event; a "data" line's value (after
 * "data:" and one space) is a line of the event's data, joined by \n. Nothing else of the
 * format matters here: other fields pass as they are.
 */
#ifndef MCPFENCE_SSE_H
#define MCPFENCE_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include "wbuf.h"

/* The bytes of the event not whole yet. Zeroed, with max set: ready. */
struct sse_reader {
	struct wbuf buf;
	size_t scan; /* where to look on */
	size_t line; /* where the current line began */
	size_t max;  /* an event over this many bytes is an error */
};

/* An event, whole: n bytes at s, its line endings as they came, its empty line included. */
typedef int (*sse_event_fn)(void *ctx, const char *s, size_t n);

/*
 * Feed len bytes of the stream; each event that becomes whole goes to fn, in order. At the
 * stream's end (eof; len may be 0), a last \r ends its line, and an event without its empty
 * line is dropped, as a client drops it. 0, -E2BIG (an event over max), -ENOMEM, or what fn
 * returned (not 0: nothing more is fed).
 */
int sse__feed(struct sse_reader *rd, const char *buf, size_t len, bool eof, sse_event_fn fn,
	      void *ctx);
void sse__reader_free(struct sse_reader *rd);

/* The data of the event of n bytes at s, into out (nothing when it has none). 0 or -ENOMEM. */
int sse__data(const char *s, size_t n, struct wbuf *out);
/*
 * The event of n bytes at s again, its data lines replaced by one, "data: " data, after its
 * other lines (as they were, each ended by \n), then the empty line; into out. data must hold no
 * line ending (compact JSON holds none). 0 or -ENOMEM.
 */
int sse__with_data(const char *s, size_t n, const char *data, size_t dlen, struct wbuf *out);

#endif
