/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * mcp_scan: the in-kernel MCP scanner. From the bytes of one message it reads, for each JSON-RPC
 * message in the value (an object, or a batch of up to MCPF_SCAN_MAX_CALLS objects), the decoded
 * `method`, the raw `id` and the decoded `params.name`, and nothing else.
 *
 *   static __always_inline int mcp_scan(struct mcpf_scan_buf *buf, __u32 len,
 *                                       struct mcpf_scan_result *out);
 *
 * buf:  the message bytes in buf->data[0..len) (a map value: per-CPU slot of the hook);
 *       len > MCPF_SCAN_BUF_MAX is clamped, and a value that does not end inside
 *       MCPF_SCAN_BUF_MAX bytes is UNPARSED. Bytes at or past len are never read.
 * out:  a map value; filled completely (zeroed first). Returns out->status:
 *   MCPF_SCAN_OK          the first JSON value in buf (leading whitespace allowed) was read with
 *                         certainty: out->ncalls messages in out->calls[], out->end just past it.
 *                         MCPF_SCAN_TRAILING: other bytes follow (packed messages: scan again
 *                         from out->end); MCPF_SCAN_NEWLINE: a raw newline inside the value.
 *   MCPF_SCAN_INCOMPLETE  the bytes end inside a value that is valid so far: wait for more and
 *                         scan again from the start (out->end == len).
 *   MCPF_SCAN_UNPARSED    anything else: invalid JSON or UTF-8, a bound exceeded (nesting deeper
 *                         than MCPF_SCAN_MAX_DEPTH, more than MCPF_SCAN_MAX_CALLS messages,
 *                         method >= MCPF_METHOD_MAX bytes, id >= MCPF_ID_MAX bytes), a duplicate
 *                         of a key that matters ("method", "id", "params" in a message, "name" in
 *                         params: the server's parser takes the last one), a top-level value
 *                         other than an object or an array of objects, a non-string method, a
 *                         tools/call without a string params.name shorter than MCPF_NAME_MAX, a
 *                         NUL in a method or a name. out->end is where it stopped.
 * method_off/method_span locate the method's string (quotes included) in buf, for a same-length
 * rewrite in place. MCPF_CALL_HAS_NAME is set whenever params.name is a readable string (so
 * prompts/get has it too); for tools/call it is always set on OK.
 *
 * The tokenizer is a bpf_loop over steps, each one token or a run of string bytes; the stack
 * holds < 128 bytes. It compiles for userspace too (the fuzzer), with the shims below.
 */
#ifndef MCPFENCE_MCP_SCAN_BPF_H
#define MCPFENCE_MCP_SCAN_BPF_H

#include "mcpfence.h"

#define MCPF_SCAN_MAX_DEPTH 128

static __always_inline int mcp_scan(struct mcpf_scan_buf *buf, __u32 len,
				    struct mcpf_scan_result *out)
{
	/* The tokenizer lands next; until then nothing is read with certainty. */
	out->status = MCPF_SCAN_UNPARSED;
	out->ncalls = 0;
	out->end = 0;
	out->flags = 0;
	return out->status;
}

#endif
