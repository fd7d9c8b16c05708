// SPDX-License-Identifier: Apache-2.0
/*
 * sse: whole events of a text/event-stream (sse.h). The reader keeps the bytes of the event
 * under way and where its current line began, so that each byte is looked at once, whatever the
 * cuts; a \r at the end of what came so far waits for the next byte (\r\n or \r alone).
 */
#include <errno.h>
#include <string.h>
#include "sse.h"

int sse__feed(struct sse_reader *rd, const char *buf, size_t len, bool eof, sse_event_fn fn,
	      void *ctx)
{
	struct wbuf *b = &rd->buf;
	size_t start = 0, i;
	int err = 0;

	if (len && wbuf__put(b, buf, len))
		return -ENOMEM;
	for (i = rd->scan; i < b->len; i++) {
		size_t eol = 1;

		if (b->buf[i] != '\r' && b->buf[i] != '\n')
			continue;
		if (b->buf[i] == '\r' && i + 1 == b->len && !eof)
			break; /* \r alone or \r\n: the next byte says */
		if (b->buf[i] == '\r' && i + 1 < b->len && b->buf[i + 1] == '\n')
			eol = 2;
		if (i == rd->line) { /* an empty line: the event is whole */
			err = fn(ctx, b->buf + start, i + eol - start);
			if (err)
				break;
			start = i + eol;
		}
		i += eol - 1;
		rd->line = i + 1;
	}
	if (start) {
		memmove(b->buf, b->buf + start, b->len - start);
		b->len -= start;
	}
	rd->scan = i - start;
	rd->line -= start;
	if (!err && b->len > rd->max)
		err = -E2BIG;
	if (eof || err) { /* what is left is no event */
		b->len = 0;
		rd->scan = rd->line = 0;
	}
	return err;
}

void sse__reader_free(struct sse_reader *rd)
{
	wbuf__free(&rd->buf);
	rd->scan = rd->line = 0;
}

/* The next line of [s, s + n) from *i: its length (*line: where it starts); *i past its end. */
static size_t next_line(const char *s, size_t n, size_t *i, const char **line)
{
	size_t k = *i;

	*line = s + k;
	while (k < n && s[k] != '\r' && s[k] != '\n')
		k++;
	*i = k + (k < n && s[k] == '\r' && k + 1 < n && s[k + 1] == '\n' ? 2 : k < n ? 1 : 0);
	return k - (size_t)(*line - s);
}

/* A data line's value (its length; *v where it starts), or -1 when the line is not one. */
static long data_value(const char *line, size_t len, const char **v)
{
	if (len == 4 && !memcmp(line, "data", 4)) { /* a field without a colon: an empty value */
		*v = line + 4;
		return 0;
	}
	if (len < 5 || memcmp(line, "data:", 5))
		return -1;
	*v = line + 5 + (len > 5 && line[5] == ' ');
	return (long)(len - (size_t)(*v - line));
}

int sse__data(const char *s, size_t n, struct wbuf *out)
{
	bool first = true;

	for (size_t i = 0; i < n;) {
		const char *line, *v;
		size_t len = next_line(s, n, &i, &line);
		long k = data_value(line, len, &v);

		if (k < 0)
			continue;
		if ((!first && wbuf__put(out, "\n", 1)) || wbuf__put(out, v, (size_t)k))
			return -ENOMEM;
		first = false;
	}
	return 0;
}

int sse__with_data(const char *s, size_t n, const char *data, size_t dlen, struct wbuf *out)
{
	for (size_t i = 0; i < n;) {
		const char *line, *v;
		size_t len = next_line(s, n, &i, &line);

		if (len && data_value(line, len, &v) < 0 &&
		    (wbuf__put(out, line, len) || wbuf__put(out, "\n", 1)))
			return -ENOMEM;
	}
	if (wbuf__put(out, "data: ", 6) || wbuf__put(out, data, dlen) || wbuf__put(out, "\n\n", 2))
		return -ENOMEM;
	return 0;
}
