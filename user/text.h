/* SPDX-License-Identifier: Apache-2.0 */
/* text: bytes from outside as text a person or a parser can read. */
#ifndef MCPFENCE_TEXT_H
#define MCPFENCE_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * s (at most max bytes, NUL-terminated or not) as valid UTF-8, into out (4 * max + 1 bytes):
 * each byte that is not part of a well-formed sequence as U+FFFD, and with ctl control
 * characters and backslashes as \xNN.
 */
/* Length of the well-formed UTF-8 sequence at s (n bytes left, n > 0), 0 when it is not one. */
size_t text__utf8_seq(const unsigned char *s, size_t n);

void text__utf8_clean(const char *s, size_t max, char *out, bool ctl);

/*
 * The n bytes at s as a UTF-8 decoder of the WHATWG Encoding standard reads them (Node's
 * Buffer.toString, TextDecoder): each maximal part of an ill-formed sequence becomes one U+FFFD.
 * A new buffer (*out_len bytes, NUL-terminated) when some bytes were ill-formed; NULL when s
 * is well-formed UTF-8 already (or memory ran out: *out_len is then 0).
 */
char *text__utf8_repair(const char *s, size_t n, size_t *out_len);

#endif
