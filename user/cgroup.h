/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cgroup: where this host mounts the cgroup v2 hierarchy. Found in /proc/self/mountinfo, not
 * assumed: /sys/fs/cgroup on a pure v2 (systemd) host, /sys/fs/cgroup/unified on a hybrid one,
 * anywhere else an administrator put it.
 */
#ifndef MCPFENCE_CGROUP_H
#define MCPFENCE_CGROUP_H

#include <stddef.h>

/*
 * The mount point of cgroup v2 that mountinfo (a /proc/PID/mountinfo file) lists, into path:
 * /sys/fs/cgroup first, then /sys/fs/cgroup/unified, then the first one listed. 0, or -ENOENT
 * when it lists none, -ENAMETOOLONG, or -errno of reading it.
 */
int cgroup__v2_mount_from(const char *mountinfo, char *path, size_t size);

/*
 * The cgroup v2 root of this host, from /proc/self/mountinfo, checked by its superblock magic.
 * 0, or -ENOENT with why (a sentence) when there is none.
 */
int cgroup__v2_root(char *path, size_t size, char *why, size_t why_size);

#endif
