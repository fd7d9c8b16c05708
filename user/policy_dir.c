// SPDX-License-Identifier: Apache-2.0
/*
 * policy_dir: a directory of policies and the one each session gets; who a process is, from
 * /proc, for their "match".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include "policy_dir.h"
#include "text.h"

#define CMDLINE_MAX (4u << 20) /* bytes of /proc/PID/cmdline read; more: refused */

bool policy_dir__is_policy_name(const char *name)
{
	size_t len = strlen(name);

	return name[0] != '.' && len >= 6 && !strcmp(name + len - 5, ".json");
}

/* Printable UTF-8: no control character, no ill-formed sequence. */
static bool printable(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s);

	for (size_t i = 0, k; i < n; i += k)
		if (u[i] < 0x20 || u[i] == 0x7f || !(k = text__utf8_seq(u + i, n - i)))
			return false;
	return true;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the policy files of dir, sorted; *n of them. NULL and errno on failure. */
static char **list_files(const char *dir, size_t *n, char *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t cap = 0;
	int saved = 0;

	*n = 0;
	if (!d) {
		saved = errno;
		snprintf(err, POLICY_ERR_LEN, "%s: %s", dir, strerror(saved));
		errno = saved;
		return NULL;
	}
	while ((errno = 0, de = readdir(d))) {
		if (!policy_dir__is_policy_name(de->d_name))
			continue;
		if (!printable(de->d_name)) {
			char shown[4 * NAME_MAX + 1];

			text__utf8_clean(de->d_name, strlen(de->d_name), shown, true);
			saved = EINVAL;
			snprintf(
				err, POLICY_ERR_LEN,
				"%.200s: \"%.200s\": a policy's file name must be printable UTF-8 (it "
				"names the policy in audit lines)",
				dir, shown);
			break;
		}
		if (*n == POLICY_DIR_MAX_FILES) {
			saved = EFBIG;
			snprintf(err, POLICY_ERR_LEN, "%s: more than %d policy files", dir,
				 POLICY_DIR_MAX_FILES);
			break;
		}
		if (*n == cap) {
			char **g = realloc(names, (cap ? cap * 2 : 16) * sizeof(*names));

			if (!g) {
				saved = ENOMEM;
				break;
			}
			names = g;
			cap = cap ? cap * 2 : 16;
		}
		if (!(names[*n] = strdup(de->d_name))) {
			saved = ENOMEM;
			break;
		}
		(*n)++;
	}
	if (!saved && errno) {
		saved = errno;
		snprintf(err, POLICY_ERR_LEN, "%s: %s", dir, strerror(saved));
	}
	closedir(d);
	if (saved) {
		if (saved == ENOMEM)
			snprintf(err, POLICY_ERR_LEN, "%s: out of memory", dir);
		for (size_t i = 0; i < *n; i++)
			free(names[i]);
		free(names);
		*n = 0;
		errno = saved;
		return NULL;
	}
	if (*n)
		qsort(names, *n, sizeof(*names), by_name);
	return names ? names : calloc(1, sizeof(*names));
}

struct policy_dir *policy_dir__load(const char *dir, char *err)
{
	struct policy_dir *d = calloc(1, sizeof(*d));
	size_t n = 0;
	char **names = NULL;
	int saved = ENOMEM;

	err[0] = 0;
	if (!d || !(d->path = strdup(dir)))
		goto out_free;
	names = list_files(dir, &n, err);
	if (!names) {
		saved = errno;
		goto out_free;
	}
	if (n && !(d->files = calloc(n, sizeof(*d->files))))
		goto out_free;
	for (size_t i = 0; i < n; i++) {
		bool is_def = !strcmp(names[i], POLICY_DIR_DEFAULT);
		struct policy *p;
		char *path;

		if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
			goto out_free;
		p = policy__load(path, err);
		saved = errno;
		free(path);
		if (!p)
			goto out_free;
		if (is_def && p->match.present) {
			snprintf(err, POLICY_ERR_LEN,
				 "%s: /match: " POLICY_DIR_DEFAULT
				 " has none: it takes every session "
				 "no other file matches",
				 p->source);
			policy__free(p);
			saved = EINVAL;
			goto out_free;
		}
		if (!is_def && !p->match.present) {
			snprintf(
				err, POLICY_ERR_LEN,
				"%s: /match: is required in a policy directory (which servers the "
				"file is for); the sessions no file matches take " POLICY_DIR_DEFAULT,
				p->source);
			policy__free(p);
			saved = EINVAL;
			goto out_free;
		}
		if (is_def)
			d->def = p;
		else
			d->files[d->nfiles++] = p;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return d;
out_free:
	if (saved == ENOMEM && !err[0])
		snprintf(err, POLICY_ERR_LEN, "%s: out of memory", dir);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	policy_dir__free(d);
	errno = saved;
	return NULL;
}

void policy_dir__free(struct policy_dir *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nfiles; i++)
		policy__free(d->files[i]);
	free(d->files);
	policy__free(d->def);
	free(d->path);
	free(d);
}

const struct policy *policy_dir__pick(const struct policy_dir *d, const struct session_who *w)
{
	for (size_t i = 0; i < d->nfiles; i++)
		if (policy__match_fits(d->files[i], w))
			return d->files[i];
	return d->def;
}

/* The whole of a /proc file into a new buffer (NUL-terminated), at most max bytes. */
static char *read_proc(const char *path, size_t max, size_t *len, int *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096;
	char *buf = NULL;

	*len = 0;
	if (fd < 0) {
		*e = errno;
		return NULL;
	}
	for (;;) {
		ssize_t r;

		if (!buf || *len + 1 >= cap) {
			char *g;

			if (buf)
				cap *= 2;
			if (cap > max + 1 || !(g = realloc(buf, cap))) {
				*e = cap > max + 1 ? E2BIG : ENOMEM;
				goto out_close;
			}
			buf = g;
		}
		r = read(fd, buf + *len, cap - 1 - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*e = errno;
			goto out_close;
		}
		if (r == 0)
			break;
		*len += (size_t)r;
	}
	close(fd);
	buf[*len] = 0;
	return buf;
out_close:
	close(fd);
	free(buf);
	return NULL;
}

/* When process pid started (field 22 of /proc/PID/stat, in clock ticks); 0 when it is gone. */
static unsigned long long start_time(pid_t pid)
{
	char path[64], *text, *p;
	unsigned long long t = 0;
	size_t len;
	int e;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	text = read_proc(path, 1 << 16, &len, &e);
	/* after the command's closing parenthesis (the command may hold any byte): field 3 on */
	p = text ? strrchr(text, ')') : NULL;
	if (p && sscanf(p + 1,
			" %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			"%*d %*d %llu",
			&t) != 1)
		t = 0;
	free(text);
	return t;
}

/* Still the process that was read: its pidfd has not become readable (it ended), or, without a
 * pidfd, it started when it did before. */
static bool same_process(pid_t pid, int pidfd, unsigned long long started)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	if (pidfd >= 0)
		return poll(&p, 1, 0) == 0;
	return started && start_time(pid) == started;
}

#define EXEC_TRIES 40 /* 5 ms apart: how long an exec under way is waited for */

/*
 * The executable and command line of pid, read so that they belong together: the executable
 * read before and after the command line is the same, and the command line is not empty (both
 * are seen so while an exec is under way: its new executable is set before its arguments are).
 * 0, or a positive errno with why in err.
 */
static int exe_and_argv(pid_t pid, struct proc_who *pw, char *err, size_t err_size)
{
	char path[64], again[PATH_MAX];
	size_t len = 0;
	ssize_t n, m;
	int e = 0;

	for (int tries = 0; tries < EXEC_TRIES; tries++, usleep(5000)) {
		free(pw->argv);
		pw->argv = NULL;
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
		n = readlink(path, pw->exe, sizeof(pw->exe) - 1);
		if (n < 0) {
			e = errno;
			snprintf(err, err_size, "pid %d: its executable (%s): %s", (int)pid, path,
				 strerror(e));
			return e;
		}
		pw->exe[n] = 0;
		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		pw->argv = read_proc(path, CMDLINE_MAX, &len, &e);
		if (!pw->argv) {
			snprintf(err, err_size, "pid %d: its command line (%s): %s", (int)pid, path,
				 strerror(e));
			return e;
		}
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
		m = readlink(path, again, sizeof(again) - 1);
		if (len && m == n && !memcmp(again, pw->exe, n))
			break;
		len = 0;
	}
	if (!len) {
		snprintf(
			err, err_size,
			"pid %d: its command line is empty or its executable changes (an exec under "
			"way for %d ms, or a kernel thread)",
			(int)pid, EXEC_TRIES * 5);
		return EAGAIN;
	}
	/* arguments end in NUL each: joined by one space */
	while (len && !pw->argv[len - 1])
		len--;
	pw->argv[len] = 0;
	for (size_t i = 0; i < len; i++)
		if (!pw->argv[i])
			pw->argv[i] = ' ';
	pw->who.exe = pw->exe;
	pw->who.argv = pw->argv;
	return 0;
}

int policy_dir__who_of_pid(pid_t pid, struct proc_who *pw, char *err, size_t err_size)
{
	char path[64], *text;
	unsigned long long started = 0;
	size_t len;
	int pidfd, e = 0;

	memset(pw, 0, sizeof(*pw));
	pw->who.port = -1;
	/*
	 * The process, held: pid reuse is caught when it has ended by the end of the reading.
	 * Without pidfd_open (before 5.3; valgrind), its start time read before and after.
	 */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 && errno == ENOSYS && !(started = start_time(pid)))
		errno = ESRCH;
	if (pidfd < 0 && !started) {
		e = errno;
		snprintf(err, err_size, "pid %d: %s", (int)pid, strerror(e));
		return -e;
	}
	if ((e = exe_and_argv(pid, pw, err, err_size)))
		goto out_release;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	text = read_proc(path, 1 << 20, &len, &e);
	if (!text) {
		snprintf(err, err_size, "pid %d: %s: %s", (int)pid, path, strerror(e));
		goto out_release;
	}
	for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		unsigned long ruid, euid;

		if (sscanf(l, "Uid:\t%lu\t%lu", &ruid, &euid) == 2) {
			pw->who.has_uid = true;
			pw->who.uid = (uint32_t)euid;
			break;
		}
	}
	free(text);
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	text = read_proc(path, 1 << 20, &len, &e);
	if (!text) {
		snprintf(err, err_size, "pid %d: %s: %s", (int)pid, path, strerror(e));
		goto out_release;
	}
	/* the cgroup v2 line, "0::/path" (a hybrid host lists its v1 hierarchies too) */
	for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (!strncmp(l, "0::", 3)) {
			size_t k = strcspn(l + 3, "\n");

			if (k < sizeof(pw->cgroup)) {
				memcpy(pw->cgroup, l + 3, k);
				pw->cgroup[k] = 0;
				pw->who.cgroup = pw->cgroup;
			}
			break;
		}
	}
	free(text);
	if (!same_process(pid, pidfd, started)) {
		e = ESRCH;
		snprintf(err, err_size, "pid %d: ended while it was read", (int)pid);
		goto out_release;
	}
	if (pidfd >= 0)
		close(pidfd);
	return 0;
out_release:
	if (pidfd >= 0)
		close(pidfd);
	policy_dir__who_free(pw);
	/* a process gone between the steps reads as ENOENT */
	return e == ENOENT ? -ESRCH : -e;
}

void policy_dir__who_move(struct proc_who *dst, struct proc_who *src)
{
	policy_dir__who_free(dst);
	memcpy(dst, src, sizeof(*dst));
	if (src->who.exe == src->exe)
		dst->who.exe = dst->exe;
	if (src->who.cgroup == src->cgroup)
		dst->who.cgroup = dst->cgroup;
	if (src->who.server_name == src->server_name)
		dst->who.server_name = dst->server_name;
	src->argv = NULL;
	src->who.argv = NULL;
}

void policy_dir__who_free(struct proc_who *pw)
{
	free(pw->argv);
	pw->argv = NULL;
	pw->who.argv = NULL;
}
