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
void text__utf8_clean(const char *s, size_t max, char *out, bool ctl);

#endif
