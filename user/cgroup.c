// SPDX-License-Identifier: Apache-2.0
/* cgroup: find the cgroup v2 mount of this host (see cgroup.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include "cgroup.h"

/* mountinfo escapes space, tab, newline and backslash as \ooo: undo it in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

/* Preference of a cgroup v2 mount point: lower is better. */
static int rank(const char *mnt)
{
	if (!strcmp(mnt, "/sys/fs/cgroup"))
		return 0;
	if (!strcmp(mnt, "/sys/fs/cgroup/unified"))
		return 1;
	return 2;
}

int cgroup__v2_mount_from(const char *mountinfo, char *path, size_t size)
{
	FILE *f = fopen(mountinfo, "re");
	char *line = NULL, best[4096] = "";
	size_t cap = 0;
	int best_rank = 3, err = 0;

	if (!f)
		return -errno;
	/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS */
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *tok, *mnt = NULL, *type = NULL;
		int field = 0;
		bool sep = false;

		for (tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
			if (sep) {
				type = tok;
				break;
			}
			if (field == 4)
				mnt = tok;
			else if (field > 5 && !strcmp(tok, "-"))
				sep = true;
			field++;
		}
		if (!mnt || !type || strcmp(type, "cgroup2"))
			continue;
		unescape(mnt);
		if (rank(mnt) < best_rank && strlen(mnt) < sizeof(best)) {
			best_rank = rank(mnt);
			strcpy(best, mnt);
		}
	}
	if (ferror(f))
		err = -EIO;
	free(line);
	fclose(f);
	if (err)
		return err;
	if (!best[0])
		return -ENOENT;
	if (strlen(best) >= size)
		return -ENAMETOOLONG;
	strcpy(path, best);
	return 0;
}

int cgroup__v2_root(char *path, size_t size, char *why, size_t why_size)
{
	struct statfs st;
	int err = cgroup__v2_mount_from("/proc/self/mountinfo", path, size);

	if (err == -ENOENT) {
		snprintf(
			why, why_size,
			"no cgroup v2 is mounted on this host (none in "
			"/proc/self/mountinfo): mount one (mount -t cgroup2 none /sys/fs/cgroup) or "
			"give --cgroup PATH");
		return err;
	}
	if (err) {
		snprintf(why, why_size, "/proc/self/mountinfo: %s: give --cgroup PATH",
			 strerror(-err));
		return err;
	}
	if (statfs(path, &st) || st.f_type != CGROUP2_SUPER_MAGIC) {
		snprintf(why, why_size,
			 "%s is listed as cgroup v2 in /proc/self/mountinfo but is "
			 "not one: give --cgroup PATH",
			 path);
		return -ENOENT;
	}
	return 0;
}
