// SPDX-License-Identifier: Apache-2.0
/* text: bytes from outside (tool names, paths, arguments) as text a person or a parser can read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "text.h"

size_t text__utf8_seq(const unsigned char *s, size_t n)
{
	unsigned lo = 0x80, hi = 0xbf, need;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 1;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 2;
		lo = s[0] == 0xe0 ? 0xa0 : lo;
		hi = s[0] == 0xed ? 0x9f : hi;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 3;
		lo = s[0] == 0xf0 ? 0x90 : lo;
		hi = s[0] == 0xf4 ? 0x8f : hi;
	} else {
		return 0;
	}
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
	unsigned lo = 0x80, hi = 0xbf, need;
	size_t k;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 1;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 2;
		lo = s[0] == 0xe0 ? 0xa0 : lo;
		hi = s[0] == 0xed ? 0x9f : hi;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 3;
		lo = s[0] == 0xf0 ? 0x90 : lo;
		hi = s[0] == 0xf4 ? 0x8f : hi;
	} else {
		return 1;
	}
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
