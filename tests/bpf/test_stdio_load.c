// SPDX-License-Identifier: Apache-2.0
/*
 * The stdio plane's programs (bpf/stdio.bpf.h, bpf/stdio_pipe.bpf.h) load on this kernel, with
 * the TCP plane's, as `attach --pid --port` loads them; `attach --port` alone does not load them,
 * and `attach --pid` alone loads only them. The daemon's (bpf/daemon.bpf.c: the finder at exec,
 * the naming tracepoints) load and attach.
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
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "feature_probes.h"
#include "kernel.h"
#include "log.h"
#include "daemon.skel.h"
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

/* Every program of the object loaded (fd) exactly when its name begins with prefix. */
static void only_loaded(struct tcp_bpf *skel, const char *prefix, bool refuse)
{
	struct bpf_program *p;

	bpf_object__for_each_program(p, skel->obj) {
		const char *name = bpf_program__name(p);
		bool want = !strncmp(name, prefix, strlen(prefix));

		if (!strcmp(name, "handle_pipe_kill"))
			want = want && features__signal_task();
		if (!strcmp(name, "handle_pipe_refuse"))
			want = want && refuse;
		if ((bpf_program__fd(p) >= 0) != want)
			fail_msg("%s: %s, expected %s", name,
				 bpf_program__fd(p) >= 0 ? "loaded" : "not loaded",
				 want ? "loaded" : "not");
	}
}

/*
 * `attach --pid` without --port verifies only what its servers' stdins need: the socketpairs'
 * programs, or the pipes', and nothing of the TCP plane (whose stages stay out of tcp_progs).
 */
static void test_stdio_alone_loads_its_own(void **state)
{
	struct kernel_load_opts sp = { .stdio = true, .no_tcp = true, .no_pipes = true };
	struct kernel_load_opts pipe = { .stdio = true, .no_tcp = true, .no_socketpairs = true };
	char lsm_why[512];
	struct tcp_bpf *skel;
	__u32 slot = 0, fd;

	(void)state;
	if (why[0]) {
		print_message("skipped: %s\n", why);
		skip();
	}
	skel = kernel__load_opts(&sp);
	assert_non_null(skel);
	only_loaded(skel, "handle_stdio_", false);
	assert_int_not_equal(bpf_map_lookup_elem(bpf_map__fd(skel->maps.tcp_progs), &slot, &fd), 0);
	tcp_bpf__destroy(skel);
	skel = kernel__load_opts(&pipe);
	assert_non_null(skel);
	only_loaded(skel, "handle_pipe_", false);
	tcp_bpf__destroy(skel);
	/* --pipe-action refuse adds the BPF LSM program, where the kernel runs one */
	pipe.pipe_refuse = true;
	if (features__lsm(lsm_why, sizeof(lsm_why))) {
		print_message("the BPF LSM program not loaded: %s\n", lsm_why);
		return;
	}
	skel = kernel__load_opts(&pipe);
	assert_non_null(skel);
	only_loaded(skel, "handle_pipe_", true);
	tcp_bpf__destroy(skel);
}

/* The daemon's object loads, and each of its programs attaches (then detaches). */
static void test_daemon_programs_load(void **state)
{
	struct daemon_bpf *skel;
	struct bpf_program *p;
	char vlog[1 << 16] = "";
	LIBBPF_OPTS(bpf_object_open_opts, oo, .kernel_log_buf = vlog,
		    .kernel_log_size = sizeof(vlog));

	(void)state;
	if (why[0]) {
		print_message("skipped: %s\n", why);
		skip();
	}
	skel = daemon_bpf__open_opts(&oo);
	assert_non_null(skel);
	if (daemon_bpf__load(skel))
		fail_msg("bpf/daemon.bpf.c refused:\n%s", vlog);
	bpf_object__for_each_program(p, skel->obj) {
		struct bpf_link *l = bpf_program__attach(p);

		if (!l)
			fail_msg("%s: attach: %s", bpf_program__name(p), strerror(errno));
		bpf_link__destroy(l);
	}
	daemon_bpf__destroy(skel);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stdio_programs_load),
		cmocka_unit_test(test_tcp_alone_skips_them),
		cmocka_unit_test(test_stdio_alone_loads_its_own),
		cmocka_unit_test(test_daemon_programs_load),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
