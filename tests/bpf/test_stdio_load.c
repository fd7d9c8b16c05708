// SPDX-License-Identifier: Apache-2.0
/*
 * The stdio plane's programs (bpf/stdio.bpf.h, bpf/stdio_pipe.bpf.h) load on this kernel, with
 * the TCP plane's, as `attach --pid` loads them; and `attach --port` alone does not load them.
 * On a kernel that has every piece they use, a refusal is a bug of mcpfence: the test fails and
 * prints the verifier's log (the kernel matrix runs it on Debian's 6.1 and 6.12).
 * Root only: skips with the reason otherwise.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <bpf/libbpf.h>
#include "feature_probes.h"
#include "kernel.h"
#include "log.h"
#include "tcp.skel.h"

static char why[256];

static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		snprintf(why, sizeof(why), "needs root (loads BPF programs)");
	else
		features__tcp(why, sizeof(why)); /* what the kernel lacks, if anything */
	return 0;
}

static void test_stdio_programs_load(void **state)
{
	struct kernel_load_opts o = { .stdio = true };
	struct tcp_bpf *skel;

	(void)state;
	if (why[0]) {
		print_message("skipped: %s\n", why);
		skip();
	}
	log_level = LOG_LVL_DEBUG; /* the verifier's log, if it refuses */
	skel = kernel__load_opts(&o);
	log_level = LOG_LVL_INFO;
	assert_non_null(skel);
	assert_true(bpf_program__fd(skel->progs.handle_stdio_skb) >= 0);
	assert_true(bpf_program__fd(skel->progs.handle_stdio_skb_replies) >= 0);
	assert_true(bpf_program__fd(skel->progs.handle_pipe_write) >= 0);
	assert_true(bpf_program__fd(skel->progs.handle_pipe_judge) >= 0);
	/* the kill stage is there exactly where its kfuncs are */
	assert_int_equal(bpf_program__fd(skel->progs.handle_pipe_kill) >= 0,
			 features__signal_task());
	tcp_bpf__destroy(skel);
}

static void test_tcp_alone_skips_them(void **state)
{
	struct kernel_load_opts o = { 0 };
	struct tcp_bpf *skel;

	(void)state;
	if (why[0]) {
		print_message("skipped: %s\n", why);
		skip();
	}
	skel = kernel__load_opts(&o);
	assert_non_null(skel);
	assert_true(bpf_program__fd(skel->progs.handle_sk_msg) >= 0);
	assert_false(bpf_program__autoload(skel->progs.handle_stdio_skb));
	assert_false(bpf_program__autoload(skel->progs.handle_pipe_write));
	tcp_bpf__destroy(skel);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stdio_programs_load),
		cmocka_unit_test(test_tcp_alone_skips_them),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
