/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI shared by the BPF programs and userspace: fixed-size structs, __uN types only,
 * explicit padding. Userspace checks every size with _Static_assert (user/kernel.c).
 */
#ifndef MCPFENCE_ABI_H
#define MCPFENCE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define MCPF_PIN_DIR "/sys/fs/bpf/mcpfence"

/* probe.bpf.c: the feature probe counts getpid() calls of one process. */
struct mcpf_probe_cfg {
	__u32 pid;
	__u32 _pad;
};

/*
 * Scanner results (bpf/mcp_scan.bpf.h). One message is one JSON value: an object (a request,
 * a notification, a response) or a batch (array) of them. Names and methods are decoded (JSON
 * escapes resolved); the id is kept raw, as it stands in the message.
 */
#define MCPF_METHOD_MAX 48
#define MCPF_NAME_MAX 128
#define MCPF_ID_MAX 48
#define MCPF_SCAN_MAX_CALLS 8 /* a batch with more elements is UNPARSED */

enum mcpf_scan_status {
	MCPF_SCAN_OK = 0,         /* read with certainty */
	MCPF_SCAN_UNPARSED = 1,   /* not read with certainty: denied unless the policy says so */
	MCPF_SCAN_INCOMPLETE = 2, /* the value goes on past the bytes given */
};

enum mcpf_call_flags {
	MCPF_CALL_HAS_ID = 1,      /* a request (else a notification) */
	MCPF_CALL_ID_STRING = 2,   /* the raw id is a JSON string (quotes included in id[]) */
	MCPF_CALL_HAS_NAME = 4,    /* params.name was present (tools/call) */
	MCPF_CALL_HAS_METHOD = 8,  /* a method was present (else a response) */
};

enum mcpf_scan_flags {
	MCPF_SCAN_BATCH = 1,    /* the value is an array of messages */
	MCPF_SCAN_TRAILING = 2, /* bytes other than whitespace follow the value (packed messages) */
	MCPF_SCAN_NEWLINE = 4,  /* a raw newline inside the value (it is not one stdio line) */
};

/*
 * The bytes one scan reads: a hook copies one message (or the start of one) here, usually in a
 * per-CPU slot. A value longer than MCPF_SCAN_BUF_MAX is UNPARSED. The pad lets the scanner read
 * 8 bytes at any offset below MCPF_SCAN_BUF_MAX; it never reads bytes at or past the length given.
 */
#define MCPF_SCAN_BUF_MAX 65536
#define MCPF_SCAN_BUF_PAD 64
struct mcpf_scan_buf {
	__u8 data[MCPF_SCAN_BUF_MAX + MCPF_SCAN_BUF_PAD];
};

/* One JSON-RPC message inside the scanned value (one element of a batch). */
struct mcpf_call {
	__u32 method_off;  /* offset of the method value's opening quote in the scanned bytes */
	__u32 method_span; /* its length there, quotes included (escapes make it > method_len + 2) */
	__u16 method_len;
	__u16 name_len;
	__u16 id_len;
	__u16 flags; /* enum mcpf_call_flags */
	char method[MCPF_METHOD_MAX];
	char name[MCPF_NAME_MAX];
	char id[MCPF_ID_MAX];
};

struct mcpf_scan_result {
	__u32 status; /* enum mcpf_scan_status */
	__u32 ncalls;
	__u32 end;   /* offset just past the scanned JSON value */
	__u32 flags; /* enum mcpf_scan_flags */
	struct mcpf_call calls[MCPF_SCAN_MAX_CALLS];
};

#endif
