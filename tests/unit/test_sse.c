// SPDX-License-Identifier: Apache-2.0
/*
 * sse: events of a text/event-stream as a server may cut and end them. The same stream, fed
 * whole, a byte at a time and cut at every place, with each line ending (\n, \r\n, \r, mixed),
 * gives the same events with the same data; a \r at the end of one piece and a \n at the start
 * of the next are one line ending; the end of the stream ends a last \r's line and drops an
 * event without its empty line; an event over the bound is an error. Then an event's data as a
 * client reads it, and the event written again with other data.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "sse.h"

#define MAX_EVENTS 16

/* What the reader handed over: each event's data. */
struct seen {
	char data[MAX_EVENTS][128];
	size_t n;
	int fail_at; /* the callback fails for this event (1-based); 0: never */
};

static int collect(void *ctx, const char *s, size_t n)
{
	struct seen *sn = ctx;
	struct wbuf d = { 0 };

	if (sn->fail_at && (int)sn->n + 1 == sn->fail_at)
		return -EPIPE;
	assert_true(sn->n < MAX_EVENTS);
	assert_int_equal(sse__data(s, n, &d), 0);
	snprintf(sn->data[sn->n++], sizeof(sn->data[0]), "%.*s", (int)d.len, d.buf ? d.buf : "");
	wbuf__free(&d);
	return 0;
}

/* The stream s fed in pieces cut after the offsets cuts[0..ncuts), then its end. */
static void feed_cut(const char *s, const size_t *cuts, size_t ncuts, struct seen *sn)
{
	struct sse_reader rd = { .max = 1 << 20 };
	size_t at = 0, len = strlen(s);

	memset(sn, 0, sizeof(*sn));
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		assert_int_equal(sse__feed(&rd, s + at, to - at, false, collect, sn), 0);
		at = to;
	}
	assert_int_equal(sse__feed(&rd, NULL, 0, true, collect, sn), 0);
	sse__reader_free(&rd);
}

static void expect(const struct seen *sn, const char *const *want, size_t n, const char *what)
{
	if (sn->n != n)
		fail_msg("%s: %zu events, want %zu", what, sn->n, n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(sn->data[i], want[i]))
			fail_msg("%s: event %zu has \"%s\", want \"%s\"", what, i, sn->data[i],
				 want[i]);
}

/* Every ending, every cut: the same three events. */
static void test_every_cut_every_ending(void **state)
{
	static const char *const want[] = { "{\"id\":1}", "a\nb", "" };
	static const char *const eol[] = { "\n", "\r\n", "\r" };
	/* mixed: no \r ending right before a \n one (that would be one \r\n ending) */
	static const char *const mixed[] = { "\r\n", "\r", "\r", "\r\n", "\n", "\r\n" };
	char s[256];
	struct seen sn;

	for (int e = 0; e < 4; e++) {
		const char *l[6];

		for (int i = 0; i < 6; i++)
			l[i] = e < 3 ? eol[e] : mixed[i];
		snprintf(s, sizeof(s),
			 "id: 7%sevent: message%sdata: {\"id\":1}%s%s: a comment%sdata:a%sdata: b%s"
			 "%sdata%s%s",
			 l[0], l[1], l[2], l[3], l[4], l[5], l[0], l[1], l[2], l[3]);
		feed_cut(s, NULL, 0, &sn);
		expect(&sn, want, 3, "whole");
		for (size_t a = 1; a < strlen(s); a++) {
			size_t one[] = { a };

			feed_cut(s, one, 1, &sn);
			expect(&sn, want, 3, "cut once");
		}
		{
			size_t all[256], n = strlen(s);

			for (size_t i = 0; i + 1 < n; i++)
				all[i] = i + 1;
			feed_cut(s, all, n - 1, &sn);
			expect(&sn, want, 3, "a byte at a time");
		}
	}
}

/* \r then \n in the next piece: one ending, not an empty line that would end the event. */
static void test_cr_then_lf_in_the_next_piece(void **state)
{
	static const char *const want[] = { "x\ny" };
	const char *s = "data: x\r\ndata: y\r\n\r\n";
	size_t cut[] = { 8 }; /* after "data: x\r" */
	struct seen sn;

	feed_cut(s, cut, 1, &sn);
	expect(&sn, want, 1, "\\r|\\n");
}

/* The end of the stream: a last \r ends its line; an event without its empty line is dropped. */
static void test_end_of_stream(void **state)
{
	static const char *const one[] = { "a" };
	struct sse_reader rd = { .max = 1024 };
	struct seen sn = { 0 };

	assert_int_equal(sse__feed(&rd, "data: a\r\r", 9, false, collect, &sn), 0);
	assert_int_equal(sn.n, 0); /* the last \r may be a \r\n */
	assert_int_equal(sse__feed(&rd, "data: b\n", 8, true, collect, &sn), 0);
	expect(&sn, one, 1, "eof");
	/* and the reader starts afresh */
	assert_int_equal(sse__feed(&rd, "data: c\n\n", 9, false, collect, &sn), 0);
	assert_string_equal(sn.data[1], "c");
	sse__reader_free(&rd);
}

/* An event over the bound is an error, as is the callback's; nothing after it is handed over. */
static void test_bounds_and_errors(void **state)
{
	struct sse_reader rd = { .max = 16 };
	struct seen sn = { 0 };

	assert_int_equal(sse__feed(&rd, "data: 0123456789abcdef", 22, false, collect, &sn), -E2BIG);
	assert_int_equal(sn.n, 0);
	rd.max = 1024;
	sn.fail_at = 2;
	assert_int_equal(
		sse__feed(&rd, "data: 1\n\ndata: 2\n\ndata: 3\n\n", 27, false, collect, &sn),
		-EPIPE);
	assert_int_equal(sn.n, 1);
	sse__reader_free(&rd);
}

/* The data of an event as a client reads it. */
static void test_data(void **state)
{
	static const struct {
		const char *event, *data;
	} cases[] = {
		{ "data:x\n\n", "x" },
		{ "data: x\n\n", "x" },
		{ "data:  x\n\n", " x" },
		{ "data\n\n", "" },
		{ "data: a\ndata: b\n\n", "a\nb" },
		{ "data: a\r\ndata\r\ndata: c\r\n\r\n", "a\n\nc" },
		{ "datax: no\nData: no\n: data: no\nid: 1\n\n", "" },
		{ "data: {\"a\":\"b\\nc\"}\rid: 2\r\r", "{\"a\":\"b\\nc\"}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wbuf d = { 0 };

		assert_int_equal(sse__data(cases[i].event, strlen(cases[i].event), &d), 0);
		if (d.len != strlen(cases[i].data) ||
		    (d.len && memcmp(d.buf, cases[i].data, d.len)))
			fail_msg("case %zu: \"%.*s\", want \"%s\"", i, (int)d.len,
				 d.buf ? d.buf : "", cases[i].data);
		wbuf__free(&d);
	}
}

/* An event written again with other data: its other lines kept, endings \n, one data line. */
static void test_with_data(void **state)
{
	const char *ev = "id: 9\r\nevent: message\r\ndata: old\r\ndata: more\r\nretry: 5\r\n\r\n";
	const char *want = "id: 9\nevent: message\nretry: 5\ndata: {\"new\":1}\n\n";
	struct wbuf out = { 0 }, d = { 0 };

	assert_int_equal(sse__with_data(ev, strlen(ev), "{\"new\":1}", 9, &out), 0);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.buf, want, out.len);
	assert_int_equal(sse__data(out.buf, out.len, &d), 0);
	assert_int_equal(d.len, 9);
	assert_memory_equal(d.buf, "{\"new\":1}", 9);
	wbuf__free(&out);
	wbuf__free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_cut_every_ending),
		cmocka_unit_test(test_cr_then_lf_in_the_next_piece),
		cmocka_unit_test(test_end_of_stream),
		cmocka_unit_test(test_bounds_and_errors),
		cmocka_unit_test(test_data),
		cmocka_unit_test(test_with_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
