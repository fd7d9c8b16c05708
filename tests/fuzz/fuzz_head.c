// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the request head parser of the TCP hook (bpf/http_head.bpf.h, built for
 * userspace) against the byte-at-a-time reference (tests/unit/head_ref.h) on arbitrary bytes.
 * Any difference in what they read (refused or not, where the head ends, Content-Length, the
 * headers seen, Mcp-Method, Mcp-Name, Mcp-Session-Id) aborts.
 * Run: tests/fuzz/run.sh SECONDS (make fuzz).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "head_ref.h"

static struct mcpf_scan_buf buf;
static struct http_head h;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = size > MCPF_TCP_HDR_MAX ? MCPF_TCP_HDR_MAX : size;
	struct head_ref r;
	int same;

	memcpy(buf.data, data, n);
	memset(buf.data + n, '\r', sizeof(buf.data) - n); /* bytes past the head never matter */
	http_head_parse(&buf, n, &h);
	head_ref_parse(data, n, &r);
	same = head_ref_agrees(&h, &buf, &r);
	if (!same) {
		fprintf(stderr,
			"head parser disagrees with the reference: error %u/%d end %u/%u "
			"cl %llu/%llu seen %x/%x\n",
			h.hc.error, r.error, h.hc.end, r.end, (unsigned long long)h.hc.cl,
			(unsigned long long)r.cl, h.hc.seen, r.seen);
		abort();
	}
	return 0;
}
