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

#endif
