// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the MCP scanner (bpf/mcp_scan.bpf.h built for userspace) against jansson on
 * arbitrary bytes. Any input where the scanner says OK and jansson reads another value, method,
 * tool name or id — or says INCOMPLETE where jansson reads a whole value — aborts; so does
 * the scanner refusing a message that jansson reads with no duplicate key and within every bound
 * of the scanner (scan_ref__must_read).
 * Run: tests/fuzz/run.sh SECONDS (make fuzz).
 */
#include <stdint.h>
#include <stdlib.h>
#include "scan_ref.h"

static struct mcpf_scan_buf buf;
static struct mcpf_scan_result res;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];
	size_t n = size > MCPF_SCAN_BUF_MAX ? MCPF_SCAN_BUF_MAX : size;
	__u32 start, i, k;

	memcpy(buf.data, data, n);
	/* bytes past the message must never matter: make them look like a tempting tail */
	memset(buf.data + n, '"', sizeof(buf.data) - n);
	mcp_scan(&buf, size, &res);
	if (scan_ref__check((const char *)data, size, &res, why, sizeof(why))) {
		fprintf(stderr, "scanner disagrees with jansson (status %s): %s\n",
			scan_ref__status_name(res.status), why);
		abort();
	}
	if (res.status != MCPF_SCAN_OK && scan_ref__must_read((const char *)data, size)) {
		fprintf(stderr, "scanner says %s (at %u) on a message jansson reads cleanly\n",
			scan_ref__status_name(res.status), res.end);
		abort();
	}
	/* packed messages: each next one read in place, as if it started the buffer */
	for (i = 0; i < 4 && res.status == MCPF_SCAN_OK && (res.flags & MCPF_SCAN_TRAILING); i++) {
		start = res.end;
		mcp_scan_from(&buf, start, size, &res);
		res.end -= start;
		for (k = 0; k < res.ncalls; k++)
			res.calls[k].method_off -= start;
		if (scan_ref__check((const char *)data + start, n - start, &res, why,
				    sizeof(why))) {
			fprintf(stderr, "scanner from %u disagrees with jansson (status %s): %s\n",
				start, scan_ref__status_name(res.status), why);
			abort();
		}
		res.end += start;
	}
	return 0;
}
