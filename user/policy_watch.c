// SPDX-License-Identifier: Apache-2.0
/*
 * policy_watch: a directory of policies reloaded when a policy file in it changes.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/inotify.h>
#include "policy_watch.h"

#define WATCH_EVENTS                                                                        \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE | IN_ATTRIB | \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

int policy_watch__open(struct policy_watch *w, const char *dir, char *err)
{
	int e;

	memset(w, 0, sizeof(*w));
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		e = errno;
		snprintf(err, POLICY_ERR_LEN, "%s: inotify: %s", dir, strerror(e));
		return -e;
	}
	/* watched before it is read: a change made while it loads is not missed */
	if (inotify_add_watch(w->fd, dir, WATCH_EVENTS) < 0) {
		e = errno;
		snprintf(err, POLICY_ERR_LEN, "%s: %s", dir,
			 e == ENOTDIR ? "not a directory" : strerror(e));
		goto out_close;
	}
	w->cur = policy_dir__load(dir, err);
	if (!w->cur) {
		e = errno;
		goto out_close;
	}
	return 0;
out_close:
	close(w->fd);
	w->fd = -1;
	return -e;
}

int policy_watch__changed(struct policy_watch *w, struct policy_dir **old)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool reload = false, gone = false;
	struct policy_dir *d;
	ssize_t n;

	*old = NULL;
	while ((n = read(w->fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
				gone = true;
			else if (ev->mask & IN_Q_OVERFLOW)
				reload = true;
			else if (ev->len && policy_dir__is_policy_name(ev->name))
				reload = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	if (gone) {
		snprintf(w->err, sizeof(w->err),
			 "%s: the directory was moved or deleted: the policies loaded from it stay "
			 "in force, and its changes are no longer followed",
			 w->cur->path);
		return -ENOENT;
	}
	if (!reload)
		return 0;
	d = policy_dir__load(w->cur->path, w->err);
	if (!d)
		return errno ? -errno : -EINVAL;
	w->err[0] = 0;
	*old = w->cur;
	w->cur = d;
	return 1;
}

void policy_watch__close(struct policy_watch *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	policy_dir__free(w->cur);
	w->cur = NULL;
}
