/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy_dir: a directory of policies, one of which each session gets (README: Which policy a
 * session gets): the first file, in the byte order of the names, whose "match" fits the server;
 * else default.json; else none, and the session is audited only.
 */
#ifndef MCPFENCE_POLICY_DIR_H
#define MCPFENCE_POLICY_DIR_H

#include <stdbool.h>
#include <linux/limits.h>
#include <stddef.h>
#include <sys/types.h>
#include "policy.h"

#define POLICY_DIR_MAX_FILES 1024
#define POLICY_DIR_DEFAULT "default.json"

struct policy_dir {
	char *path;
	struct policy **files; /* those with "match", in name order */
	size_t nfiles;
	struct policy *def; /* default.json; NULL when there is none */
};

/*
 * Load every file of dir whose name ends in ".json" and does not begin with '.'. All or none:
 * on the first file that is not a valid policy (or default.json with a "match", or another file
 * without one) returns NULL, sets errno and writes why, naming the file, into err
 * (POLICY_ERR_LEN bytes).
 */
struct policy_dir *policy_dir__load(const char *dir, char *err);
void policy_dir__free(struct policy_dir *d);
/* A name policy_dir__load reads: it ends in ".json" and does not begin with '.'. */
bool policy_dir__is_policy_name(const char *name);

/* The policy of a session whose server is w; NULL: none fits (audit only). */
const struct policy *policy_dir__pick(const struct policy_dir *d, const struct session_who *w);

/* Who a running process is, read from /proc, for "match". */
struct proc_who {
	struct session_who who; /* points into the fields below */
	char exe[PATH_MAX];
	char cgroup[PATH_MAX];
	char *argv;
	char server_name[256]; /* who.server_name, once its first answer named it */
};

/*
 * Read who process pid is: its executable, command line (arguments joined by one space), its
 * effective uid and cgroup v2 path. port -1 and no server_name: the caller knows those. 0, or
 * -ESRCH (no such process, or it ended while being read), -EAGAIN (an exec under way did not
 * end within 200 ms; a kernel thread), -EACCES, -ENOMEM; why into err.
 */
int policy_dir__who_of_pid(pid_t pid, struct proc_who *pw, char *err, size_t err_size);
void policy_dir__who_free(struct proc_who *pw);
/* dst (freed first) takes what src holds; src is left with nothing to free. */
void policy_dir__who_move(struct proc_who *dst, struct proc_who *src);

#endif
