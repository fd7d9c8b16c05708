/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wbuf: bytes waiting to be written to a non-blocking descriptor, in order, however much the
 * peer falls behind (the caller stops reading its other side at a high-water mark).
 */
#ifndef MCPFENCE_WBUF_H
#define MCPFENCE_WBUF_H

#include <stddef.h>

struct wbuf {
	char *buf;
	size_t len, off, cap;
};

/* Append len bytes; 0 or -ENOMEM (nothing appended). */
int wbuf__put(struct wbuf *w, const void *data, size_t len);
/* Bytes not written yet. */
size_t wbuf__pending(const struct wbuf *w);
/* Forget what waits; a large buffer is given back. */
void wbuf__clear(struct wbuf *w);
/* Write what fd takes now: 0 (some may still wait), or -errno other than EAGAIN. */
int wbuf__flush(struct wbuf *w, int fd);
void wbuf__free(struct wbuf *w);

#endif
