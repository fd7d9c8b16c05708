/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy_watch: a directory of policies kept in force as it changes (inotify). A change to a
 * policy file reloads the whole directory; when the new one is refused, the old stays in force
 * and the reason is kept to be said.
 */
#ifndef MCPFENCE_POLICY_WATCH_H
#define MCPFENCE_POLICY_WATCH_H

#include "policy_dir.h"

struct policy_watch {
	int fd; /* inotify, non-blocking: poll it for POLLIN, then policy_watch__changed */
	struct policy_dir *cur;	  /* in force */
	char err[POLICY_ERR_LEN]; /* why the last reload was refused; "" when it was not */
};

/*
 * Load dir and watch it. 0, or -errno with why in err (POLICY_ERR_LEN bytes): a directory that
 * cannot be loaded is not watched.
 */
int policy_watch__open(struct policy_watch *w, const char *dir, char *err);

/*
 * Read the pending events. When one concerns a policy file (a name policy_dir reads: created,
 * written and closed, moved in or out, deleted, its mode changed) or the events overflowed, the
 * directory is loaded again:
 *   1   the new one is in force; the old one into *old, for the caller to free when nothing
 *       uses its policies any more;
 *   0   nothing that concerns a policy file changed;
 *   -EINVAL and the like: the new one was refused; the old stays in force; why in w->err;
 *   -ENOENT: the directory itself was moved or deleted: the old stays in force, and no more
 *       changes come (w->err says so).
 */
int policy_watch__changed(struct policy_watch *w, struct policy_dir **old);

void policy_watch__close(struct policy_watch *w);

#endif
