// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The scanner's test-run harness (bpf/scan_test.bpf.c) with MCP_SCAN_GLOBAL_STEP: each bpf_loop
 * step is a global function, verified once. Tests run the corpus through both builds.
 */
#define MCP_SCAN_GLOBAL_STEP
#include "scan_test.bpf.c"
