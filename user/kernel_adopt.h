/* SPDX-License-Identifier: Apache-2.0 */
/* kernel_adopt: the connections of watched ports opened before attach, into tcp_socks. */
#ifndef MCPFENCE_KERNEL_ADOPT_H
#define MCPFENCE_KERNEL_ADOPT_H

#include <stdint.h>

/*
 * Put every established TCP socket of this host with a local or remote port in ports[] into
 * the SOCKHASH map_fd, taken from the processes that hold it. A socket the SOCKHASH refuses (it
 * is full) is marked in the socket storage unwatched_fd instead (and the flag any_fd, the
 * egress program's .data.unwatched, set first), so that the egress program drops its packets:
 * it is logged, never left unwatched. Returns how many were adopted.
 */
int kernel__adopt_existing(int map_fd, int unwatched_fd, int any_fd, const uint16_t *ports,
			   unsigned nports);

#endif
