// SPDX-License-Identifier: Apache-2.0
/* text: bytes from outside (tool names, paths, arguments) as text a person or a parser can read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "text.h"

/*
 * A lead byte c of a multi-byte sequence: the continuation bytes it needs, and the range its
 * first one must be in (narrower after E0, ED, F0, F4: no overlong form, surrogate or value past
 * U+10FFFF). False for a byte that leads no sequence.
 */
static bool utf8_lead(unsigned char c, unsigned *need, unsigned *lo, unsigned *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		*need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		*need = 2;
		*lo = c == 0xe0 ? 0xa0 : *lo;
		*hi = c == 0xed ? 0x9f : *hi;
	} else if (c >= 0xf0 && c <= 0xf4) {
		*need = 3;
		*lo = c == 0xf0 ? 0x90 : *lo;
		*hi = c == 0xf4 ? 0x8f : *hi;
	} else {
		return false;
	}
	return true;
}

const bool text__plain_byte[256] = { [0x20 ... 0x21] = true,
				     [0x23 ... 0x5b] = true,
				     [0x5d ... 0x7f] = true };

size_t text__utf8_seq(const unsigned char *s, size_t n)
{
	unsigned lo, hi, need;

	if (s[0] < 0x80)
		return 1;
	if (!utf8_lead(s[0], &need, &lo, &hi))
		return 0;
	if (n <= need || s[1] < lo || s[1] > hi)
		return 0;
	for (unsigned i = 2; i <= need; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return need + 1;
}

/*
 * The first max bytes of s (names from files and from the traffic are outside input) as valid
 * UTF-8, each byte that is not part of a valid sequence as U+FFFD; with ctl (a table on a
 * terminal), control characters and backslashes as \xNN. out holds 4 * max + 1 bytes.
 */
void text__utf8_clean(const char *s, size_t max, char *out, bool ctl)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strnlen(s, max), o = 0;

	for (size_t i = 0; i < n;) {
		size_t l = text__utf8_seq(u + i, n - i);

		if (ctl && l == 1 && (u[i] < 0x20 || u[i] == 0x7f || u[i] == '\\')) {
			o += sprintf(out + o, "\\x%02x", u[i]);
			i++;
		} else if (!l) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, s + i, l);
			o += l;
			i += l;
		}
	}
	out[o] = 0;
}

/*
 * The bytes at s (n > 0 left, starting no well-formed sequence) that one U+FFFD replaces: a lead
 * byte and the continuation bytes that still fit it (the maximal subpart), else the one byte.
 */
static size_t utf8_bad_len(const unsigned char *s, size_t n)
{
	unsigned lo, hi, need;
	size_t k;

	if (!utf8_lead(s[0], &need, &lo, &hi))
		return 1;
	for (k = 1; k < n && k <= need; k++) {
		if (s[k] < (k == 1 ? lo : 0x80) || s[k] > (k == 1 ? hi : 0xbf))
			break;
	}
	return k; /* k <= need: the sequence was not whole, or it would be well-formed */
}

char *text__utf8_repair(const char *s, size_t n, size_t *out_len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, o = 0, l;
	char *out;

	*out_len = 0;
	while (i < n && (l = text__utf8_seq(u + i, n - i)))
		i += l;
	if (i == n)
		return NULL;
	out = malloc(3 * n + 1);
	if (!out)
		return NULL;
	memcpy(out, s, i);
	o = i;
	while (i < n) {
		l = text__utf8_seq(u + i, n - i);
		if (l) {
			memcpy(out + o, s + i, l);
			o += l;
			i += l;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i += utf8_bad_len(u + i, n - i);
		}
	}
	out[o] = 0;
	*out_len = o;
	return out;
}
