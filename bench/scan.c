// SPDX-License-Identifier: Apache-2.0
/*
 * bench/scan: the in-kernel MCP scanner's cost, measured by the kernel (BPF_PROG_TEST_RUN with
 * repeat, bpf/scan_test.bpf.c): ns per message for tools/call requests of 200 B, 2 KB and 20 KB
 * (compact, as the SDK sends them), the same pretty-printed, and an empty object for the fixed
 * cost (test run, copy into the scratch buffer, result reset); plus the instructions the verifier
 * walked. Target: <= 1 us per 1 KB scanned. Root only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "mcpfence.h"
#include "scan_test.skel.h"
#include "feature_probes.h"

#define HDR 16
#define REPEAT 5000

static char *sized_call(size_t len, int pretty, size_t *out_len)
{
	static const char *const compact = "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":"
					   "\"tools/call\",\"params\":{\"name\":\"echo\","
					   "\"arguments\":{\"message\":\"";
	static const char *const spaced = "{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 42,\n  "
					  "\"method\": \"tools/call\",\n  \"params\": {\n    "
					  "\"name\": \"echo\",\n    \"arguments\": {\n      "
					  "\"message\": \"";
	const char *head = pretty ? spaced : compact;
	const char *tail = pretty ? "\"\n    }\n  }\n}" : "\"}}}";
	size_t h = strlen(head), t = strlen(tail), fill = len > h + t ? len - h - t : 0, i;
	char *m = malloc(HDR + h + fill + t + 1);

	if (!m)
		return NULL;
	memset(m, 0, HDR);
	memcpy(m + HDR, head, h);
	for (i = 0; i < fill; i++)
		m[HDR + h + i] =
			"lorem ipsum dolor sit amet, consectetur adipiscing elit. "[i % 57];
	memcpy(m + HDR + h + fill, tail, t + 1);
	*out_len = h + fill + t;
	return m;
}

static int run(struct scan_test_bpf *skel, const char *in, size_t len, __u32 *ns)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = HDR + len,
		    .repeat = REPEAT);
	int err;

	err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.scan_test_xdp), &opts);
	if (err)
		return err;
	if (skel->bss->scan_out.status != MCPF_SCAN_OK)
		return -EINVAL;
	*ns = opts.duration;
	return 0;
}

int main(void)
{
	static const size_t sizes[] = { 200, 2000, 20000 };
	struct bpf_prog_info info = {};
	__u32 info_len = sizeof(info), ns, base;
	struct scan_test_bpf *skel;
	char empty[HDR + 2] = { 0 };
	size_t i, len;
	int pretty, err;
	char *m;

	if (geteuid()) {
		fprintf(stderr, "bench/scan: skipped: not root (the test run needs CAP_BPF)\n");
		return 0;
	}
	features__mount();
	skel = scan_test_bpf__open_and_load();
	if (!skel) {
		fprintf(stderr, "bench/scan: the test-run program does not load: %s\n",
			strerror(errno));
		return 1;
	}
	err = bpf_obj_get_info_by_fd(bpf_program__fd(skel->progs.scan_test_xdp), &info, &info_len);
	if (!err)
		printf("scanner: %u instructions verified (scan_test_xdp), %u bytes xlated\n",
		       info.verified_insns, info.xlated_prog_len);
	memcpy(empty + HDR, "{}", 2);
	err = run(skel, empty, 2, &base);
	if (err)
		goto out;
	printf("scanner: fixed cost (\"{}\"): %u ns\n", base);
	for (pretty = 0; pretty < 2; pretty++) {
		for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			m = sized_call(sizes[i], pretty, &len);
			err = m ? run(skel, m, len, &ns) : -ENOMEM;
			free(m);
			if (err)
				goto out;
			printf("scanner: %-7s %6zu B: %6u ns per message, %5.0f ns per KB "
			       "(%5.0f without the fixed cost)\n",
			       pretty ? "pretty" : "compact", len, ns, ns * 1024.0 / len,
			       ns > base ? (ns - base) * 1024.0 / len : 0.0);
		}
	}
out:
	if (err)
		fprintf(stderr, "bench/scan: test run failed: %s\n", strerror(-err));
	scan_test_bpf__destroy(skel);
	return err ? 1 : 0;
}
