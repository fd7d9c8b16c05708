// SPDX-License-Identifier: Apache-2.0
/*
 * A directory of policies (policy_dir): which file a server gets ("match", name order,
 * default.json, none), what makes the whole directory refused, and who a real process is; and
 * the directory watched (policy_watch), with real inotify: what reloads it, a bad file that
 * leaves the old policies in force, an editor's way of saving, the directory gone.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include "daemon_find.h"
#include "policy_dir.h"
#include "policy_watch.h"

static char dir[64];

static void put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/mcpfence-pdir-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The file name (after the directory) of the policy w gets, or "none". */
static const char *picked(const struct policy_dir *d, const struct session_who *w)
{
	const struct policy *p = policy_dir__pick(d, w);

	return p ? p->source + strlen(dir) + 1 : "none";
}

#define POLICY(m) "{\"version\":\"1\",\"default\":\"deny\",\"match\":" m "}"

/* The first file in name order whose every key fits; then default.json. */
static void test_pick_order(void **state)
{
	char err[POLICY_ERR_LEN];
	struct policy_dir *d;
	struct session_who node = { .exe = "/usr/bin/node",
				    .argv = "node /srv/alpha/index.js --stdio",
				    .cgroup = "/system.slice/alpha.service",
				    .port = -1,
				    .has_uid = true,
				    .uid = 4242 };
	struct session_who other = node;

	put("20-uid.json", POLICY("{\"uid\":4242}"));
	put("10-alpha.json", POLICY("{\"exe\":\"/usr/bin/node\",\"argv\":\"* */alpha/*\"}"));
	put("30-named.json", POLICY("{\"server_name\":\"alpha-*\"}"));
	put("40-port.json", POLICY("{\"port\":8080,\"cgroup\":\"/system.slice/*\"}"));
	put("default.json", "{\"version\":\"1\",\"default\":\"deny\"}");
	/* not policies of the directory: hidden, backups, other names */
	put(".50-hidden.json", "not json");
	put("60-backup.json~", "not json");
	put("README", "not json");
	assert_int_equal(mkdir(strcat(strcpy(err, dir), "/70-dir.d"), 0700), 0);

	d = policy_dir__load(dir, err);
	if (!d)
		fail_msg("refused: %s", err);
	assert_int_equal(d->nfiles, 4);
	assert_non_null(d->def);
	/* 10 and 20 both fit: the first by name */
	assert_string_equal(picked(d, &node), "10-alpha.json");
	other.argv = "node /srv/beta/index.js";
	assert_string_equal(picked(d, &other), "20-uid.json");
	other.uid = 1000;
	assert_string_equal(picked(d, &other), "default.json");
	/* a key whose value is not known does not fit: no answer named the server yet */
	assert_string_equal(picked(d, &other), "default.json");
	other.server_name = "alpha-server";
	assert_string_equal(picked(d, &other), "30-named.json");
	other.server_name = NULL;
	/* every key must fit: the port, and the cgroup */
	other.port = 8080;
	assert_string_equal(picked(d, &other), "40-port.json");
	other.cgroup = "/user.slice/x";
	assert_string_equal(picked(d, &other), "default.json");
	other.cgroup = NULL;
	assert_string_equal(picked(d, &other), "default.json");
	/* the uid unknown: 20 does not fit */
	other = node;
	other.argv = "x";
	other.has_uid = false;
	assert_string_equal(picked(d, &other), "default.json");
	policy_dir__free(d);

	/* without default.json, none: the session is audited only */
	assert_int_equal(unlink(strcat(strcpy(err, dir), "/default.json")), 0);
	d = policy_dir__load(dir, err);
	assert_non_null(d);
	assert_null(d->def);
	assert_string_equal(picked(d, &other), "none");
	assert_string_equal(picked(d, &node), "10-alpha.json");
	policy_dir__free(d);
}

/* An empty directory is valid: every session is audited only. */
static void test_empty(void **state)
{
	char err[POLICY_ERR_LEN];
	struct policy_dir *d = policy_dir__load(dir, err);
	struct session_who w = { .exe = "/bin/x", .port = -1 };

	assert_non_null(d);
	assert_int_equal(d->nfiles, 0);
	assert_null(policy_dir__pick(d, &w));
	policy_dir__free(d);
}

/* One bad file refuses the whole directory, naming the file and what is wrong. */
static void test_refused(void **state)
{
	static const struct {
		const char *name, *text, *want;
	} cases[] = {
		{ "10-bad.json", "{\"version\":\"1\"}", "10-bad.json: /default: is required" },
		{ "10-nomatch.json", "{\"version\":\"1\",\"default\":\"allow\"}",
		  "10-nomatch.json: /match: is required in a policy directory" },
		{ "default.json", POLICY("{\"uid\":0}"),
		  "default.json: /match: default.json has none" },
		{ "10-port.json", POLICY("{\"port\":70000}"),
		  "10-port.json: /match/port: 70000 is out of range" },
	};
	char err[POLICY_ERR_LEN];

	put("05-good.json", POLICY("{\"uid\":0}"));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[256];

		put(cases[i].name, cases[i].text);
		errno = 0;
		assert_null(policy_dir__load(dir, err));
		assert_int_equal(errno, EINVAL);
		if (!strstr(err, cases[i].want) || strncmp(err, dir, strlen(dir)))
			fail_msg("%s: got \"%s\", want the directory and \"%s\"", cases[i].name,
				 err, cases[i].want);
		snprintf(path, sizeof(path), "%s/%s", dir, cases[i].name);
		unlink(path);
	}
	/* a directory named like a policy */
	snprintf(err, sizeof(err), "%s/20-sub.json", dir);
	assert_int_equal(mkdir(err, 0700), 0);
	assert_null(policy_dir__load(dir, err));
	assert_non_null(strstr(err, "20-sub.json: not a regular file"));
	snprintf(err, sizeof(err), "%s/20-sub.json", dir);
	assert_int_equal(rmdir(err), 0);
	/* a FIFO named like a policy: refused at once, not waited on for a writer */
	snprintf(err, sizeof(err), "%s/20-fifo.json", dir);
	assert_int_equal(mkfifo(err, 0600), 0);
	assert_null(policy_dir__load(dir, err));
	assert_non_null(strstr(err, "20-fifo.json: not a regular file"));
	snprintf(err, sizeof(err), "%s/20-fifo.json", dir);
	assert_int_equal(unlink(err), 0);
	/* a name that would print as something else: a control character, ill-formed UTF-8 */
	put("30-\x1b[2J.json", POLICY("{\"uid\":0}"));
	assert_null(policy_dir__load(dir, err));
	assert_int_equal(errno, EINVAL);
	if (!strstr(err, "\"30-\\x1b[2J.json\": a policy's file name must be printable UTF-8"))
		fail_msg("%s", err);
	snprintf(err, sizeof(err), "%s/30-\x1b[2J.json", dir);
	assert_int_equal(unlink(err), 0);
	put("30-\xff.json", POLICY("{\"uid\":0}"));
	assert_null(policy_dir__load(dir, err));
	assert_non_null(strstr(err, "\"30-\xef\xbf\xbd.json\""));
	/* no directory */
	assert_null(policy_dir__load("/nonexistent/policies", err));
	assert_int_equal(errno, ENOENT);
	assert_string_equal(err, "/nonexistent/policies: No such file or directory");
}

/* More files than POLICY_DIR_MAX_FILES: refused, saying so. */
static void test_too_many(void **state)
{
	char err[POLICY_ERR_LEN], name[32];

	for (int i = 0; i <= POLICY_DIR_MAX_FILES; i++) {
		snprintf(name, sizeof(name), "%05d.json", i);
		put(name, POLICY("{\"uid\":0}"));
	}
	assert_null(policy_dir__load(dir, err));
	assert_int_equal(errno, EFBIG);
	assert_non_null(strstr(err, ": more than 1024 policy files"));
}

/* Who a real process is: executable, command line, uid, cgroup; an ended one is ESRCH. */
static void test_who_of_pid(void **state)
{
	char err[512], cg[4096] = "", sh[4096], *line = NULL;
	struct proc_who pw, *moved;
	size_t cap = 0;
	FILE *f;
	int status;
	pid_t pid;

	assert_non_null(realpath("/bin/sh", sh));
	pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0); /* its sleep goes with it */
		execl("/bin/sh", "sh", "-c", "sleep 30; :", "two words", (char *)NULL);
		_exit(127);
	}
	/* until it has exec'd */
	for (int i = 0; i < 2000; i++) {
		char exe[256];
		ssize_t n;

		snprintf(err, sizeof(err), "/proc/%d/exe", (int)pid);
		n = readlink(err, exe, sizeof(exe) - 1);
		if (n > 0 && (exe[n] = 0, !strcmp(exe, sh)))
			break;
		usleep(1000);
	}
	if (policy_dir__who_of_pid(pid, &pw, err, sizeof(err)))
		fail_msg("pid %d: %s", (int)pid, err);
	assert_string_equal(pw.who.exe, sh);
	assert_string_equal(pw.who.argv, "sh -c sleep 30; : two words");
	assert_true(pw.who.has_uid);
	assert_int_equal(pw.who.uid, geteuid());
	assert_int_equal(pw.who.port, -1);
	assert_null(pw.who.server_name);
	f = fopen("/proc/self/cgroup", "r");
	assert_non_null(f);
	while (getline(&line, &cap, f) > 0)
		if (!strncmp(line, "0::", 3))
			snprintf(cg, sizeof(cg), "%.*s", (int)strcspn(line + 3, "\n"), line + 3);
	fclose(f);
	free(line);
	if (cg[0])
		assert_string_equal(pw.who.cgroup, cg);
	else
		assert_null(pw.who.cgroup);
	/* taken over whole: the pointers name the new holder's fields, the old holds nothing */
	moved = calloc(1, sizeof(*moved));
	assert_non_null(moved);
	policy_dir__who_move(moved, &pw);
	assert_ptr_equal(moved->who.exe, moved->exe);
	assert_string_equal(moved->who.exe, sh);
	assert_string_equal(moved->who.argv, "sh -c sleep 30; : two words");
	if (cg[0])
		assert_ptr_equal(moved->who.cgroup, moved->cgroup);
	assert_null(pw.argv);
	assert_null(pw.who.argv);
	policy_dir__who_free(&pw);
	policy_dir__who_free(moved);
	free(moved);

	kill(-pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(policy_dir__who_of_pid(pid, &pw, err, sizeof(err)), -ESRCH);
	assert_non_null(strstr(err, "pid "));
}

static void path_of(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
}

/* What the next look at the events gives, after they were announced on the fd (1 s at most). */
static int changed(struct policy_watch *w)
{
	struct pollfd p = { .fd = w->fd, .events = POLLIN };
	struct policy_dir *old = NULL;
	int r;

	if (poll(&p, 1, 1000) != 1)
		return 0;
	r = policy_watch__changed(w, &old);
	policy_dir__free(old);
	return r;
}

static void test_reload(void **state)
{
	struct policy_watch w;
	char err[POLICY_ERR_LEN], a[256], b[256];

	put("default.json", "{\"version\":\"1\",\"default\":\"deny\"}");
	assert_int_equal(policy_watch__open(&w, dir, err), 0);
	assert_int_equal(w.cur->nfiles, 0);
	assert_non_null(w.cur->def);

	/* a new file, written and closed */
	put("10-a.json", POLICY("{\"uid\":1}"));
	assert_int_equal(changed(&w), 1);
	assert_int_equal(w.cur->nfiles, 1);

	/* a bad one: refused, naming it; the old policies stay */
	put("20-b.json", "{\"version\":\"1\",\"default\":\"deny\"}");
	assert_int_equal(changed(&w), -EINVAL);
	assert_non_null(strstr(w.err, "20-b.json: /match: is required"));
	assert_int_equal(w.cur->nfiles, 1);

	/* an editor saves the fix beside it and renames it over: in force, the error cleared */
	put(".20-b.json.swp", POLICY("{\"uid\":2}"));
	assert_int_equal(changed(&w), 0); /* not a policy file's name */
	path_of(a, sizeof(a), ".20-b.json.swp");
	path_of(b, sizeof(b), "20-b.json");
	assert_int_equal(rename(a, b), 0);
	assert_int_equal(changed(&w), 1);
	assert_string_equal(w.err, "");
	assert_int_equal(w.cur->nfiles, 2);

	/* names that are not policies change nothing */
	put("README", "x");
	put("30-c.json~", "x");
	assert_int_equal(changed(&w), 0);

	/* deleted */
	assert_int_equal(unlink(b), 0);
	assert_int_equal(changed(&w), 1);
	assert_int_equal(w.cur->nfiles, 1);

	/* made unreadable, as a user not root: the mode change reloads, and it is refused */
	if (geteuid()) {
		path_of(a, sizeof(a), "10-a.json");
		assert_int_equal(chmod(a, 0), 0);
		assert_int_equal(changed(&w), -EACCES);
		assert_int_equal(w.cur->nfiles, 1);
	}
	policy_watch__close(&w);
}

/* The directory gone: the policies stay in force, and it says so. */
static void test_dir_gone(void **state)
{
	struct policy_watch w;
	char err[POLICY_ERR_LEN], moved[128], cmd[300];

	put("10-a.json", POLICY("{\"uid\":1}"));
	assert_int_equal(policy_watch__open(&w, dir, err), 0);
	snprintf(moved, sizeof(moved), "%s.moved", dir);
	assert_int_equal(rename(dir, moved), 0);
	assert_int_equal(changed(&w), -ENOENT);
	assert_non_null(strstr(w.err, "was moved or deleted: the policies loaded from it stay"));
	assert_int_equal(w.cur->nfiles, 1);
	policy_watch__close(&w);
	snprintf(cmd, sizeof(cmd), "mv '%s' '%s'", moved, dir);
	assert_int_equal(system(cmd), 0);
}

/* A directory that cannot be loaded is not watched: the error says why. */
static void test_open_refused(void **state)
{
	struct policy_watch w;
	char err[POLICY_ERR_LEN], path[256];

	put("10-a.json", "{");
	assert_int_equal(policy_watch__open(&w, dir, err), -EINVAL);
	assert_non_null(strstr(err, "10-a.json:1:"));
	assert_int_equal(policy_watch__open(&w, "/nonexistent/policies", err), -ENOENT);
	path_of(path, sizeof(path), "10-a.json");
	assert_int_equal(policy_watch__open(&w, path, err), -ENOTDIR);
	assert_non_null(strstr(err, "not a directory"));
}

/* The directory as it is now, and its names into n. */
static struct policy_dir *names_of(struct daemon_names *n)
{
	char err[POLICY_ERR_LEN];
	struct policy_dir *d = policy_dir__load(dir, err);

	if (!d)
		fail_msg("%s", err);
	daemon_find__names(d, n);
	return d;
}

/*
 * The names the daemon's finder stops programs by (daemon_find__names): the file name of each
 * "exe" whose last part is literal, with or without a "server_name" (its answer says the rest);
 * a file that can fit a program of any name makes it every one; a file with a "port" gives
 * none (a stdio server listens on none).
 */
static void test_daemon_names(void **state)
{
	struct daemon_names *n = calloc(1, sizeof(*n));
	struct policy_dir *d;
	char err[POLICY_ERR_LEN];

	assert_non_null(n);
	put("10-a.json", POLICY("{\"exe\":\"/usr/*/node\",\"argv\":\"* server.js\"}"));
	put("20-b.json", POLICY("{\"exe\":\"*/python3.11\"}"));
	put("30-c.json", POLICY("{\"exe\":\"/opt/x/bin/node\"}")); /* node again: once */
	put("40-d.json", POLICY("{\"exe\":\"*/deno\",\"server_name\":\"x\"}"));
	put("50-e.json", POLICY("{\"port\":8080}"));
	put("60-f.json", POLICY("{\"exe\":\"/opt/a-name-longer-than-thirty-one-bytes-x\"}"));
	d = names_of(n);
	assert_false(n->every);
	assert_int_equal(n->n, 4);
	assert_string_equal(n->names[0].name, "node");
	assert_string_equal(n->names[1].name, "python3.11");
	assert_string_equal(n->names[2].name, "deno");
	/* cut as the kernel's copy of the dentry's name is: 31 bytes and a NUL */
	assert_string_equal(n->names[3].name, "a-name-longer-than-thirty-one-b");
	assert_false(daemon_find__findable(d->files[3]));
	assert_true(daemon_find__nameable(d->files[3]));
	assert_false(daemon_find__findable(d->files[4]));
	assert_false(daemon_find__nameable(d->files[4]));
	policy_dir__free(d);

	/* a name alone can be any program's */
	put("45-h.json", POLICY("{\"server_name\":\"x\"}"));
	d = names_of(n);
	assert_true(n->every);
	assert_non_null(strstr(n->why_every, "45-h.json"));
	policy_dir__free(d);
	unlink(strcat(strcpy(err, dir), "/45-h.json"));

	/* a wildcard in the file name, or no exe at all: every name */
	put("70-g.json", POLICY("{\"exe\":\"/usr/bin/node*\"}"));
	d = names_of(n);
	assert_true(n->every);
	assert_int_equal(n->n, 0);
	assert_non_null(strstr(n->why_every, "70-g.json"));
	policy_dir__free(d);
	unlink(strcat(strcpy(err, dir), "/70-g.json"));
	put("70-g.json", POLICY("{\"argv\":\"* server.py\"}"));
	d = names_of(n);
	assert_true(n->every);
	policy_dir__free(d);
	free(n);
}

/*
 * A file with "server_name", for a server whose first answer is still to come: its other keys
 * fit or not (policy__match_fits_but_name); the whole of it fits once the name is known.
 */
static void test_fits_but_name(void **state)
{
	struct policy_dir *d;
	char err[POLICY_ERR_LEN];
	struct session_who w = { .exe = "/usr/bin/node", .argv = "node s.js", .port = -1 };

	put("10-a.json", POLICY("{\"exe\":\"*/node\",\"server_name\":\"fs-*\"}"));
	put("20-b.json", POLICY("{\"exe\":\"*/python3\",\"server_name\":\"fs-*\"}"));
	d = policy_dir__load(dir, err);
	assert_non_null(d);
	assert_false(policy__match_fits(d->files[0], &w));
	assert_true(policy__match_fits_but_name(d->files[0], &w));
	assert_false(policy__match_fits_but_name(d->files[1], &w));
	w.server_name = "fs-server";
	assert_true(policy__match_fits(d->files[0], &w));
	w.server_name = "other";
	assert_false(policy__match_fits(d->files[0], &w));
	assert_true(policy__match_fits_but_name(d->files[0], &w));
	policy_dir__free(d);
}

static int answer(const char *line, bool cut, char *name, char *why)
{
	return daemon_find__answer_name(line, strlen(line), cut, name, 256, why, 200);
}

/*
 * The name a server's first result gives it (daemon_find__answer_name): initialize's and
 * server/discover's serverInfo, or the 2026-07-28 _meta's; a result without one gives none,
 * and says why (the daemon then decides as if it had none); errors and notifications before
 * it are passed over.
 */
static void test_answer_name(void **state)
{
	char name[256], why[200];

	assert_int_equal(answer("{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{\"protocolVersion\":"
				"\"2025-06-18\",\"serverInfo\":{\"name\":\"fs\",\"version\":"
				"\"1\"}}}\n",
				false, name, why),
			 0);
	assert_string_equal(name, "fs");
	/* 2026-07-28: in the _meta of a result */
	assert_int_equal(answer("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[],\"_meta\""
				":{\"io.modelcontextprotocol/serverInfo\":{\"name\":\"v2\"}}}}\r\n",
				false, name, why),
			 0);
	assert_string_equal(name, "v2");
	/* the bytes after the line's end are another message's */
	assert_int_equal(answer("{\"id\":0,\"result\":{\"serverInfo\":{\"name\":\"a\"}}}\n{\"x\"",
				false, name, why),
			 0);
	assert_string_equal(name, "a");
	/* a line longer than what was read: none, however much of a name it shows */
	assert_int_equal(
		answer("{\"id\":0,\"result\":{\"serverInfo\":{\"name\":\"a\"}}", true, name, why),
		-1);
	assert_non_null(strstr(why, "longer than"));
	/* a line its next write goes on with: not yet (the writes are read on, put together) */
	assert_int_equal(
		answer("{\"id\":0,\"result\":{\"serverInfo\":{\"name\":\"a\"}}}", false, name, why),
		1);
	/* a name in a tool's text is no serverInfo */
	assert_int_equal(answer("{\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":"
				"\"{\\\"serverInfo\\\":{\\\"name\\\":\\\"fs\\\"}}\"}]}}\n",
				false, name, why),
			 -1);
	assert_non_null(strstr(why, "no serverInfo"));
	/* duplicate keys: the server's JSON could be read two ways */
	assert_int_equal(answer("{\"id\":0,\"result\":{\"serverInfo\":{\"name\":\"a\",\"name\":"
				"\"b\"}}}\n",
				false, name, why),
			 -1);
	assert_int_equal(answer("{\"id\":0,\"result\":{\"serverInfo\":{\"name\":\"a\\u0000b\"}}}\n",
				false, name, why),
			 -1);
	assert_non_null(strstr(why, "NUL"));
	/* an error or a notification names nothing yet: the next write may */
	assert_int_equal(answer("{\"id\":0,\"error\":{\"code\":-32601}}\n", false, name, why), 1);
	assert_int_equal(answer("{\"method\":\"notifications/message\"}\n\n", false, name, why), 1);
	assert_int_equal(answer("{\"method\":\"notifications/message\"}\n{\"id\":0,\"result\":"
				"{\"serverInfo\":{\"name\":\"after\"}}}\n",
				false, name, why),
			 0);
	assert_string_equal(name, "after");
	assert_int_equal(answer("not json\n", false, name, why), -1);
	assert_non_null(strstr(why, "no JSON"));
	assert_int_equal(answer("", false, name, why), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pick_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many, setup, teardown),
		cmocka_unit_test(test_who_of_pid),
		cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dir_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_daemon_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fits_but_name, setup, teardown),
		cmocka_unit_test(test_answer_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
