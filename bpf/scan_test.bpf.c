// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Test-run harness of the MCP scanner: runs mcp_scan() (bpf/mcp_scan.bpf.h, the code the hooks
 * inline) on the bytes given to BPF_PROG_TEST_RUN and leaves the result in scan_out.
 * Why XDP: its test run takes data_in of any size up to ~70 KB when the program is xdp.frags (the
 * bytes past the first page come as fragments that bpf_xdp_load_bytes reads), and it honours
 * `repeat` with a measured duration. skb-based types (socket filter, tc) cap data_in at one page
 * and syscall programs cannot repeat. It sees only what the test gives it; it attaches nowhere.
 * data_in: a 16-byte header, then the message. The header's first 4 bytes (host order) are
 * where the scan starts (mcp_scan_from); the rest is zero. It also keeps short messages above
 * XDP's 14-byte minimum.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "mcp_scan.bpf.h"

#define SCAN_TEST_HDR 16
#define SCAN_TEST_CHUNK 4096

struct mcpf_scan_buf scan_buf;
struct mcpf_scan_result scan_out;

/*
 * The scan, in a global function (as the hooks call it, from one): verified on its own, with
 * start and len unknown. Called straight from the program, the inline step took 6.18.44's
 * verifier past a million instructions.
 */
__noinline int scan_test_run(__u32 start, __u32 len)
{
	mcp_scan_from(&scan_buf, start, len, &scan_out);
	return 0;
}

SEC("xdp.frags")
int scan_test_xdp(struct xdp_md *ctx)
{
	__u32 total = bpf_xdp_get_buff_len(ctx), len, off, n, i, start;

	if (total < SCAN_TEST_HDR)
		return XDP_ABORTED;
	len = total - SCAN_TEST_HDR;
	if (len > MCPF_SCAN_BUF_MAX)
		len = MCPF_SCAN_BUF_MAX;
	for (i = 0; i < MCPF_SCAN_BUF_MAX / SCAN_TEST_CHUNK; i++) {
		off = i * SCAN_TEST_CHUNK;
		if (off >= len)
			break;
		n = len - off;
		barrier_var(n);
		n = ((n - 1) & (SCAN_TEST_CHUNK - 1)) + 1;
		if (len - off > SCAN_TEST_CHUNK)
			n = SCAN_TEST_CHUNK;
		if (bpf_xdp_load_bytes(ctx, SCAN_TEST_HDR + off, &scan_buf.data[off], n))
			return XDP_ABORTED;
	}
	if (bpf_xdp_load_bytes(ctx, 0, &start, sizeof(start)))
		return XDP_ABORTED;
	scan_test_run(start, len);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
