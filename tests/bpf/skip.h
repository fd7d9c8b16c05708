/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The first line of each BPF test: fail when the tests should run and cannot (env.broken), skip
 * saying why when they cannot run here (env.skip). Needs `env` with both strings in scope.
 */
#ifndef MCPFENCE_TESTS_SKIP_H
#define MCPFENCE_TESTS_SKIP_H

#define SKIP_IF_NEEDED()                                          \
	do {                                                      \
		if (env.broken[0])                                \
			fail_msg("%s", env.broken);               \
		if (env.skip[0]) {                                \
			print_message("skipped: %s\n", env.skip); \
			skip();                                   \
		}                                                 \
	} while (0)

#endif
