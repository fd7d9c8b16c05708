// SPDX-License-Identifier: Apache-2.0
/* The mcpfence binary as a user runs it: exit codes, what check prints, every --help. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <jansson.h>

struct run {
	int status;
	char out[65536];
	char err[8192];
};

static const char *bin(void)
{
	const char *b = getenv("MCPFENCE");

	return b ? b : "build/mcpfence";
}

static void drain(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	while (n + 1 < len && (r = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
}

/*
 * What JOURNAL_STREAM the next run sets: none, the stderr it gives mcpfence (as systemd does for
 * a service's journal stream), or another stream's.
 */
static enum { JS_NONE, JS_STDERR, JS_OTHER } journal;

/* Run mcpfence with argv (NULL-terminated), collect status, stdout, stderr. */
static void run(struct run *r, const char *const *argv)
{
	int out[2], err[2];
	pid_t pid;

	assert_int_equal(pipe(out), 0);
	assert_int_equal(pipe(err), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stat st;
		char js[64];

		dup2(out[1], 1);
		dup2(err[1], 2);
		unsetenv("JOURNAL_STREAM");
		if (journal != JS_NONE && !fstat(journal == JS_STDERR ? 2 : 1, &st)) {
			snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
				 (unsigned long long)st.st_ino);
			setenv("JOURNAL_STREAM", js, 1);
		}
		execv(bin(), (char *const *)argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	drain(err[0], r->err, sizeof(r->err)); /* small: cannot fill its pipe first */
	drain(out[0], r->out, sizeof(r->out));
	close(out[0]);
	close(err[0]);
	assert_int_equal(waitpid(pid, &r->status, 0), pid);
	assert_true(WIFEXITED(r->status));
	r->status = WEXITSTATUS(r->status);
}

static void test_check_valid(void **state)
{
	struct run r;

	if (access(bin(), X_OK))
		skip();
	run(&r, (const char *const[]){ bin(), "check", "policies/payments-approval.json", NULL });
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "policies/payments-approval.json: valid"));
	assert_non_null(strstr(r.out, "tool create_charge: allow  (/tools/create_charge)"));
	assert_non_null(strstr(r.out, "require args.currency in [\"usd\",\"eur\"]"));
	assert_non_null(strstr(r.out, "kernel plane: require/deny_if: arguments are not read"));
	assert_non_null(strstr(r.out, "tool create_refund: approve"));
	assert_non_null(strstr(r.out, "glob delete_*: deny"));
}

static void test_check_invalid_and_mixed(void **state)
{
	struct run r;

	if (access(bin(), X_OK))
		skip();
	run(&r, (const char *const[]){ bin(), "check", "tests/data/policies/invalid/max-zero.json",
				       NULL });
	assert_int_equal(r.status, 1);
	assert_string_equal(r.err,
			    "tests/data/policies/invalid/max-zero.json: /tools/x/limits/0/max: "
			    "must be at least 1 (to forbid a tool, use \"action\": \"deny\")\n");
	run(&r, (const char *const[]){ bin(), "check", "policies/binance-us.json",
				       "tests/data/policies/invalid/version-2.json", NULL });
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.out, "policies/binance-us.json: valid"));
	assert_non_null(strstr(r.err, "version-2.json: /version: must be the string \"1\""));
}

static void test_check_usage(void **state)
{
	struct run r;

	if (access(bin(), X_OK))
		skip();
	run(&r, (const char *const[]){ bin(), "check", NULL });
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "no policy given"));
	run(&r,
	    (const char *const[]){ bin(), "check", "--yaml", "policies/binance-us.json", NULL });
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "unknown option '--yaml'"));
	run(&r, (const char *const[]){ bin(), "chek", NULL });
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "unknown command 'chek'"));
	run(&r, (const char *const[]){ bin(), NULL });
	assert_int_equal(r.status, 2);
	run(&r, (const char *const[]){ bin(), "version", NULL });
	assert_int_equal(r.status, 0);
	assert_true(!strncmp(r.out, "mcpfence ", 9));
}

static void test_check_json(void **state)
{
	json_error_t jerr;
	struct run r;
	json_t *doc, *bad;

	if (access(bin(), X_OK))
		skip();
	run(&r, (const char *const[]){ bin(), "check", "--json", "policies/binance-futures.json",
				       "tests/data/policies/invalid/unknown-top-key.json", NULL });
	assert_int_equal(r.status, 1);
	doc = json_loads(r.out, 0, &jerr);
	assert_non_null(doc);
	assert_int_equal(json_array_size(doc), 2);
	assert_true(json_is_true(json_object_get(json_array_get(doc, 0), "valid")));
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(json_array_get(doc, 0), "rules"), 0),
			"tool")),
		"BinanceFuturesCloseListenKey");
	bad = json_array_get(doc, 1);
	assert_true(json_is_false(json_object_get(bad, "valid")));
	assert_non_null(strstr(json_string_value(json_object_get(bad, "error")),
			       "/tool: unknown key \"tool\""));
	json_decref(doc);
}

/* The three seeds, unchanged from their pages: valid, each alone and together, both planes. */
static void test_check_seeds(void **state)
{
	static const char *const seeds[] = { "policies/binance-futures.json",
					     "policies/binance-us.json",
					     "policies/streams-cleanup.json" };
	char want[256];
	struct run r;

	if (access(bin(), X_OK))
		skip();
	for (size_t i = 0; i < 3; i++) {
		run(&r, (const char *const[]){ bin(), "check", seeds[i], NULL });
		assert_int_equal(r.status, 0);
		assert_string_equal(r.err, "");
		snprintf(want, sizeof(want), "%s: valid\n", seeds[i]);
		assert_true(!strncmp(r.out, want, strlen(want)));
		assert_non_null(strstr(r.out, "gateway plane: enforces all of it"));
		assert_non_null(strstr(r.out, "kernel plane: enforces all of it"));
		assert_null(strstr(r.out, "neutralized"));
	}
	run(&r, (const char *const[]){ bin(), "check", seeds[0], seeds[1], seeds[2], NULL });
	assert_int_equal(r.status, 0);
	assert_string_equal(r.err, "");
	for (size_t i = 0; i < 3; i++) {
		snprintf(want, sizeof(want), "%s: valid\n", seeds[i]);
		assert_non_null(strstr(r.out, want));
	}
	assert_non_null(strstr(r.out, "limit 10 calls per minute, counter "
				      "\"binancefuturescloselistenkey_rate\", scope grant  "
				      "(/tools/BinanceFuturesCloseListenKey/limits/0)"));
	assert_non_null(strstr(r.out, "limit 30 calls per minute, counter "
				      "\"binance_us_close_listen_key_rate\", scope grant  "
				      "(/tools/binance_us_close_listen_key/limits/0)"));
	assert_non_null(
		strstr(r.out, "tool cleanup_all_streams: allow  (/tools/cleanup_all_streams)"));
}

/*
 * check --policy-dir: the files in the order they are tried, and which one a running process
 * gets (--pid, text and JSON); one bad file makes the directory invalid, naming it.
 */
static void test_check_policy_dir(void **state)
{
	char dir[] = "/tmp/mcpfence-cli-XXXXXX", path[128], pid_s[16], cmd[128];
	static struct run r;
	json_t *j, *p;
	FILE *f;
	pid_t pid;

	if (access(bin(), X_OK))
		skip();
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/10-sleep.json", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("{\"version\":\"1\",\"default\":\"deny\",\"match\":{\"argv\":\"sleep 3600*\"}}", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/default.json", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("{\"version\":\"1\",\"default\":\"allow\"}", f);
	fclose(f);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/bin/sleep", "sleep", "3600", (char *)NULL);
		_exit(127);
	}
	snprintf(pid_s, sizeof(pid_s), "%d", (int)pid);
	for (int i = 0; i < 2000; i++) { /* until it has exec'd */
		char c[64] = "";
		FILE *cf;

		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		if ((cf = fopen(path, "r"))) {
			size_t n = fread(c, 1, sizeof(c) - 1, cf);

			fclose(cf);
			if (n && !strcmp(c, "sleep"))
				break;
		}
		usleep(1000);
	}
	run(&r, (const char *const[]){ bin(), "check", "--policy-dir", dir, "--pid", pid_s, NULL });
	snprintf(path, sizeof(path), "  policy: %s/10-sleep.json (the first file", dir);
	if (r.status || !strstr(r.out, "1 policies with a match") || !strstr(r.out, path))
		fail_msg("exit %d\n%s\n%s", r.status, r.out, r.err);
	run(&r, (const char *const[]){ bin(), "check", "--json", "--policy-dir", dir, "--pid",
				       pid_s, NULL });
	assert_int_equal(r.status, 0);
	assert_non_null(j = json_loads(r.out, 0, NULL));
	assert_true(json_is_true(json_object_get(j, "valid")));
	assert_int_equal(json_array_size(json_object_get(j, "files")), 2);
	p = json_array_get(json_object_get(j, "pids"), 0);
	assert_string_equal(json_string_value(json_object_get(p, "argv")), "sleep 3600");
	snprintf(path, sizeof(path), "%s/10-sleep.json", dir);
	assert_string_equal(json_string_value(json_object_get(p, "policy")), path);
	json_decref(j);
	/* what a session adds: a port, a server name; a file that matches on them */
	snprintf(path, sizeof(path), "%s/05-named.json", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("{\"version\":\"1\",\"default\":\"deny\",\"match\":{\"port\":8080,"
	      "\"server_name\":\"mcp-*\"}}",
	      f);
	fclose(f);
	run(&r, (const char *const[]){ bin(), "check", "--policy-dir", dir, "--pid", pid_s,
				       "--port", "8080", NULL });
	snprintf(path, sizeof(path), "  policy: %s/10-sleep.json (the first file", dir);
	if (r.status || !strstr(r.out, ", port 8080\n") || !strstr(r.out, path))
		fail_msg("a port alone: exit %d\n%s\n%s", r.status, r.out, r.err);
	run(&r, (const char *const[]){ bin(), "check", "--json", "--policy-dir", dir, "--pid",
				       pid_s, "--port", "8080", "--server-name", "mcp-x", NULL });
	assert_int_equal(r.status, 0);
	assert_non_null(j = json_loads(r.out, 0, NULL));
	p = json_array_get(json_object_get(j, "pids"), 0);
	assert_int_equal(json_integer_value(json_object_get(p, "port")), 8080);
	assert_string_equal(json_string_value(json_object_get(p, "server_name")), "mcp-x");
	snprintf(path, sizeof(path), "%s/05-named.json", dir);
	assert_string_equal(json_string_value(json_object_get(p, "policy")), path);
	json_decref(j);
	assert_int_equal(unlink(path), 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* a command line of any bytes: shown escaped, as valid UTF-8, in text and in JSON */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0); /* its sleep goes with it */
		execl("/bin/sh", "sh", "-c", "sleep 3600; :", "\x1b[2J\xff", (char *)NULL);
		_exit(127);
	}
	snprintf(pid_s, sizeof(pid_s), "%d", (int)pid);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	for (int i = 0; i < 2000; i++) { /* until it has exec'd */
		char c[8] = "";
		FILE *cf = fopen(path, "r");

		if (cf && fread(c, 1, 3, cf) == 3 && !strcmp(c, "sh")) {
			fclose(cf);
			break;
		}
		if (cf)
			fclose(cf);
		usleep(1000);
	}
	run(&r, (const char *const[]){ bin(), "check", "--policy-dir", dir, "--pid", pid_s, NULL });
	if (r.status || !strstr(r.out, "argv \"sh -c sleep 3600; : \\x1b[2J\xef\xbf\xbd\"") ||
	    strchr(r.out, '\x1b'))
		fail_msg("exit %d\n%s\n%s", r.status, r.out, r.err);
	run(&r, (const char *const[]){ bin(), "check", "--json", "--policy-dir", dir, "--pid",
				       pid_s, NULL });
	assert_int_equal(r.status, 0);
	assert_non_null(j = json_loads(r.out, 0, NULL));
	p = json_array_get(json_object_get(j, "pids"), 0);
	assert_string_equal(json_string_value(json_object_get(p, "argv")),
			    "sh -c sleep 3600; : \\x1b[2J\xef\xbf\xbd");
	json_decref(j);
	kill(-pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* the pid has ended: an error that names it, exit 1 */
	run(&r, (const char *const[]){ bin(), "check", "--policy-dir", dir, "--pid", pid_s, NULL });
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, pid_s));
	/* one bad file: the directory is invalid */
	snprintf(path, sizeof(path), "%s/20-nomatch.json", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("{\"version\":\"1\",\"default\":\"deny\"}", f);
	fclose(f);
	run(&r, (const char *const[]){ bin(), "check", "--policy-dir", dir, NULL });
	assert_int_equal(r.status, 1);
	if (!strstr(r.err, "20-nomatch.json: /match: is required in a policy directory"))
		fail_msg("stderr: %s", r.err);
	/* --pid alone, --port without --pid, or with POLICY files: usage errors */
	run(&r, (const char *const[]){ bin(), "check", "--pid", "1", NULL });
	assert_int_equal(r.status, 2);
	run(&r, (const char *const[]){ bin(), "check", "--policy-dir", dir, "--port", "1", NULL });
	assert_int_equal(r.status, 2);
	run(&r, (const char *const[]){ bin(), "check", "--policy-dir", dir, "--pid", "1", "--port",
				       "65536", NULL });
	assert_int_equal(r.status, 2);
	run(&r, (const char *const[]){ bin(), "check", "--policy-dir", dir, "x.json", NULL });
	assert_int_equal(r.status, 2);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/*
 * Under systemd (JOURNAL_STREAM names the stderr it is given), each message carries its
 * priority for the journal instead of the program's name; elsewhere it does not. A line break
 * in what a message quotes does not start a line of its own.
 */
static void test_journal_priorities(void **state)
{
	static struct run r;

	if (access(bin(), X_OK))
		skip();
	journal = JS_STDERR;
	run(&r, (const char *const[]){ bin(), "check", "/nonexistent/x.json", NULL });
	assert_int_equal(r.status, 1);
	assert_string_equal(r.err, "/nonexistent/x.json: No such file or directory\n");
	run(&r, (const char *const[]){ bin(), "check", "--bogus", NULL });
	assert_int_equal(r.status, 2);
	if (!starts(r.err, "<3>error: check: unknown option '--bogus'\n"))
		fail_msg("stderr: %s", r.err);
	run(&r,
	    (const char *const[]){ bin(), "check", "--pid", "x\ny", "--policy-dir", ".", NULL });
	if (!starts(r.err, "<3>error: check: --pid 'x y': not a process id\n"))
		fail_msg("stderr: %s", r.err);
	/* another stream's: the usual prefix */
	journal = JS_OTHER;
	run(&r, (const char *const[]){ bin(), "check", "--bogus", NULL });
	if (!starts(r.err, "mcpfence: error: check: unknown option '--bogus'\n"))
		fail_msg("stderr: %s", r.err);
	journal = JS_NONE;
}

/* Every command: `mcpfence --help` must keep listing each of them. */
static const char *const commands[] = { "check",   "features", "run",	 "proxy",  "approvals",
					"approve", "deny",     "attach", "enroll", "daemon",
					"detach",  "stats",    "status", "version" };

/* A value that the option of this metavariable takes, so that parsing it proves the option. */
static const char *sample_arg(const char *meta)
{
	static const char *const samples[][2] = {
		{ "P", "policies/binance-us.json" },
		{ "FILE", "-" },
		{ "NAME", "x" },
		{ "S", "1" },
		{ "N", "8080" },
		{ "PID", "1" },
		{ "A", "audit" },
		{ "PATH", "/sys/fs/cgroup" },
		{ "T", "x" },
		{ "DURATION", "10m" },
		{ "DIR", "policies" },
		{ "ADDR:PORT", "127.0.0.1:8080" },
		{ "URL", "http://127.0.0.1:3001" },
	};

	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		if (!strcmp(meta, samples[i][0]))
			return samples[i][1];
	return NULL;
}

/*
 * cmd --help and -h print the usage on stdout and exit 0; each option it lists (a line "  -x,
 * --long META  what") is accepted: `cmd OPTION [VALUE] --help` parses it and then prints the
 * same usage; an unknown option is an error on stderr that names it.
 */
static void check_command_help(const char *cmd)
{
	static struct run help, r;
	char want[64], *text, *line, *save = NULL;

	snprintf(want, sizeof(want), "usage: mcpfence %s", cmd);
	run(&help, (const char *const[]){ bin(), cmd, "--help", NULL });
	if (help.status || strncmp(help.out, want, strlen(want)) || help.err[0])
		fail_msg("%s --help: exit %d, stdout \"%.80s\", stderr \"%.200s\"", cmd,
			 help.status, help.out, help.err);
	run(&r, (const char *const[]){ bin(), cmd, "-h", NULL });
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, help.out);
	text = strdup(help.out);
	assert_non_null(text);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *names[4], *meta = NULL, *end = strstr(line + 2, "  ");
		char col[64], *tok, *tsave = NULL;
		size_t n = 0;

		if (strncmp(line, "  -", 3))
			continue;
		assert_non_null(end);
		snprintf(col, sizeof(col), "%.*s", (int)(end - line - 2), line + 2);
		for (tok = strtok_r(col, ", ", &tsave); tok; tok = strtok_r(NULL, ", ", &tsave))
			if (tok[0] == '-' && n < 4 && strcmp(tok, "-h") && strcmp(tok, "--help"))
				names[n++] = tok; /* -h and --help were run above */
			else if (tok[0] != '-')
				meta = tok;
		for (size_t i = 0; i < n; i++) {
			const char *argv[8] = { bin(), cmd },
				   *value = meta ? sample_arg(meta) : NULL;
			int k = 2;

			if (meta && !value)
				fail_msg("%s %s %s: no sample value for %s in this test", cmd,
					 names[i], meta, meta);
			if (!strcmp(cmd, "approve")) { /* its options are those of a ticket */
				argv[k++] = "--tool";
				argv[k++] = "x";
			}
			argv[k++] = names[i];
			if (value)
				argv[k++] = value;
			argv[k++] = "--help";
			run(&r, argv);
			if (r.status || strcmp(r.out, help.out) || r.err[0])
				fail_msg("%s %s %s --help: exit %d, stderr \"%.200s\"", cmd,
					 names[i], value ? value : "", r.status, r.err);
		}
	}
	free(text);
	assert_true(strstr(help.out, "\n  -h, --help ") != NULL);
	run(&r, (const char *const[]){ bin(), cmd, "--no-such-option", NULL });
	if (r.status != 2 || r.out[0] || !strstr(r.err, "--no-such-option"))
		fail_msg("%s --no-such-option: exit %d, stdout \"%.80s\", stderr \"%.200s\"", cmd,
			 r.status, r.out, r.err);
}

static void test_help(void **state)
{
	static struct run top;
	char *text, *line, *save = NULL, name[32];
	bool listing = false;
	size_t listed = 0;

	if (access(bin(), X_OK))
		skip();
	run(&top, (const char *const[]){ bin(), "--help", NULL });
	assert_int_equal(top.status, 0);
	assert_string_equal(top.err, "");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		snprintf(name, sizeof(name), "\n  %s ", commands[i]);
		if (!strstr(top.out, name))
			fail_msg("mcpfence --help does not list %s", commands[i]);
	}
	text = strdup(top.out);
	assert_non_null(text);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] != ' ') {
			listing = !strcmp(line, "commands:");
			continue;
		}
		if (!listing || sscanf(line, " %31s", name) != 1)
			continue;
		check_command_help(name);
		listed++;
	}
	free(text);
	assert_int_equal(listed, sizeof(commands) / sizeof(commands[0]));
	run(&top, (const char *const[]){ bin(), "-h", NULL });
	assert_int_equal(top.status, 0);
	assert_true(!strncmp(top.out, "usage: mcpfence COMMAND", 23));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* every command's --help, and the options it lists */
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_check_valid),
		cmocka_unit_test(test_check_invalid_and_mixed),
		cmocka_unit_test(test_check_usage),
		cmocka_unit_test(test_check_json),
		/* the seeds in policies/, as published */
		cmocka_unit_test(test_check_seeds),
		cmocka_unit_test(test_check_policy_dir),
		cmocka_unit_test(test_journal_priorities),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
