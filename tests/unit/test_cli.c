// SPDX-License-Identifier: Apache-2.0
/* The mcpfence binary as a user runs it: exit codes and what check prints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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
		dup2(out[1], 1);
		dup2(err[1], 2);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_valid),
		cmocka_unit_test(test_check_invalid_and_mixed),
		cmocka_unit_test(test_check_usage),
		cmocka_unit_test(test_check_json),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
