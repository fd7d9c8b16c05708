/* SPDX-License-Identifier: Apache-2.0 */
/* kernel_tickets: approval tickets of the kernel plane, which BPF takes one call at a time. */
#ifndef MCPFENCE_KERNEL_TICKETS_H
#define MCPFENCE_KERNEL_TICKETS_H

#include <stdint.h>

/*
 * `mcpfence approve --tool T [--count N] [--for DURATION]`: a ticket BPF takes. usage is what
 * --help prints (on stdout), and a bad option (on stderr).
 */
int kernel__approve_ticket(int argc, char **argv, const char *usage);

/* Parse "30s", "10m", "2h", "1d" or plain seconds; -EINVAL otherwise. */
int kernel__parse_duration(const char *s, uint64_t *seconds);

#endif
