/* SPDX-License-Identifier: Apache-2.0 */
/* kernel_adopt: the connections of watched ports opened before attach, into tcp_socks. */
#ifndef MCPFENCE_KERNEL_ADOPT_H
#define MCPFENCE_KERNEL_ADOPT_H

#include <stdint.h>

/*
 * Put every established TCP socket of this host with a local or remote port in ports[] into
 * the SOCKHASH map_fd, taken from the processes that hold it. Returns how many were adopted, or
 * -errno (logged).
 */
int kernel__adopt_existing(int map_fd, const uint16_t *ports, unsigned nports);

#endif
