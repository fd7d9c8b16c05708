// SPDX-License-Identifier: Apache-2.0
/* wbuf: a write buffer for a non-blocking descriptor. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "wbuf.h"

int wbuf__put(struct wbuf *w, const void *data, size_t len)
{
	if (!len) /* nothing to add, and no arithmetic on a buffer not yet made */
		return 0;
	if (w->off && w->off == w->len)
		w->off = w->len = 0;
	if (w->len + len > w->cap) {
		size_t held = w->len - w->off, cap = w->cap ? w->cap : 65536;
		char *nb;

		if (w->off) {
			memmove(w->buf, w->buf + w->off, held);
			w->len = held;
			w->off = 0;
		}
		while (cap < w->len + len)
			cap *= 2;
		if (cap != w->cap) {
			nb = realloc(w->buf, cap);
			if (!nb)
				return -ENOMEM;
			w->buf = nb;
			w->cap = cap;
		}
	}
	memcpy(w->buf + w->len, data, len);
	w->len += len;
	return 0;
}
size_t wbuf__pending(const struct wbuf *w)
{
	return w->len - w->off;
}
void wbuf__clear(struct wbuf *w)
{
	w->off = w->len = 0;
	if (w->cap > (1u << 20)) {
		free(w->buf);
		w->buf = NULL;
		w->cap = 0;
	}
}
/* Write what the fd takes now; 0, or -errno other than EAGAIN. */
int wbuf__flush(struct wbuf *w, int fd)
{
	while (wbuf__pending(w)) {
		ssize_t n = write(fd, w->buf + w->off, wbuf__pending(w));

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return errno == EINTR ? wbuf__flush(w, fd) : 0;
			return -errno;
		}
		w->off += n;
	}
	wbuf__clear(w);
	return 0;
}

void wbuf__free(struct wbuf *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->off = w->cap = 0;
}
