// SPDX-License-Identifier: Apache-2.0
/*
 * The scanner's expectations (tests/data/messages/NAME.expect, status OK) against JSON.parse of
 * Node, the parser of the real MCP servers: same methods, same params.name, same ids
 * (tests/bpf/scan_expect_node.js). It needs node, not a kernel: the BPF tests that check the
 * scanner against these expectations run on every kernel of the matrix, where there is no node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

static void test_expectations_node(void **state)
{
	if (system("command -v node >/dev/null 2>&1")) {
		print_message("skipped: no node in PATH: the expectations are not checked against "
			      "JSON.parse (scripts/setup.sh test installs it)\n");
		skip();
	}
	assert_int_equal(access("tests/data/messages", R_OK), 0);
	assert_int_equal(system("node tests/bpf/scan_expect_node.js tests/data/messages"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expectations_node),
	};

	return cmocka_run_group_tests_name("scan expectations against JSON.parse", tests, NULL,
					   NULL);
}
