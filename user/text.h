/* SPDX-License-Identifier: Apache-2.0 */
/* text: bytes from outside as text a person or a parser can read. */
#ifndef MCPFENCE_TEXT_H
#define MCPFENCE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at s (n bytes left, n > 0), 0 when it is not one. */
size_t text__utf8_seq(const unsigned char *s, size_t n);

/* Bytes a JSON string holds as they are: printable ASCII but '"' and '\\'. */
extern const bool text__plain_byte[256];

/*
 * How many of the n bytes at s, from the start and in whole words of eight, are printable
 * ASCII other than '"' and '\\': what a JSON string holds with no escape and no UTF-8 to
 * check. In a word, a byte < 0x20, '"', '\\' or >= 0x80 sets its high bit in the test (a byte
 * after one of them may too): the word with one is left to the caller, byte by byte.
 */
static inline size_t text__plain_words(const unsigned char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	size_t i = 0;
	uint64_t w;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		if (((w - ones * 0x20) | ((w ^ ones * '"') - ones) | ((w ^ ones * '\\') - ones) |
		     w) &
		    high)
			break;
	}
	return i;
}

/*
 * s (at most max bytes, NUL-terminated or not) as valid UTF-8, into out (4 * max + 1 bytes):
 * each byte that is not part of a well-formed sequence as U+FFFD, and with ctl control
 * characters and backslashes as \xNN.
 */
void text__utf8_clean(const char *s, size_t max, char *out, bool ctl);

/*
 * The n bytes at s as a UTF-8 decoder of the WHATWG Encoding standard reads them (Node's
 * Buffer.toString, TextDecoder): each maximal part of an ill-formed sequence becomes one U+FFFD.
 * A new buffer (*out_len bytes, NUL-terminated) when some bytes were ill-formed; NULL when s
 * is well-formed UTF-8 already (or memory ran out: *out_len is then 0).
 */
char *text__utf8_repair(const char *s, size_t n, size_t *out_len);

#endif
