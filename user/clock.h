/* SPDX-License-Identifier: Apache-2.0 */
/* clock: the monotonic clock every deadline of mcpfence is kept in. */
#ifndef MCPFENCE_CLOCK_H
#define MCPFENCE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in µs: deadlines, timeouts, latencies. */
static inline uint64_t clock__mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The same in ms: polls and ticks. */
static inline uint64_t clock__mono_ms(void)
{
	return clock__mono_us() / 1000;
}

#endif
