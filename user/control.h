/* SPDX-License-Identifier: Apache-2.0 */
/*
 * control: the socket through which a running `mcpfence attach` takes requests from root (`mcpfence
 * enroll --pid N`): one request line, one answer line, per connection.
 */
#ifndef MCPFENCE_CONTROL_H
#define MCPFENCE_CONTROL_H

#include <stddef.h>
#include "status.h"

#define CONTROL_PATH STATUS_DIR "/control.sock"
#define CONTROL_LINE_MAX 1024 /* a request or an answer, its newline included */

/*
 * Listen on path (AF_UNIX stream, mode 0600, its directory made 0700 if missing; a file
 * left by a dead attach is replaced). Returns the non-blocking listening fd, or -errno after
 * logging what and where.
 */
int control__listen(const char *path);

/*
 * What to answer request line (NUL-terminated, without its newline): the answer, without
 * newline, into reply (CONTROL_LINE_MAX bytes; cut to CONTROL_LINE_MAX - 2 when sent).
 */
typedef void (*control_fn)(void *ctx, const char *line, char *reply);

/*
 * Take the connections waiting on lfd: from root only (SO_PEERCRED), one line of at most
 * CONTROL_LINE_MAX bytes read within a second, answered by fn. Never blocks longer than that.
 */
void control__serve(int lfd, control_fn fn, void *ctx);

/* Close lfd and remove path. */
void control__close(int lfd, const char *path);

/*
 * Send request line to the attach listening on path and read its answer (reply,
 * CONTROL_LINE_MAX bytes, without newline), waiting up to timeout_ms. 0, or -errno after
 * logging what.
 */
int control__request(const char *path, const char *line, char *reply, int timeout_ms);

#endif
