/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sha256: FIPS 180-4 SHA-256, for names that must not collide by accident and that other
 * tools can compute too (the host-wide budget table is keyed by the digest of a budget's name).
 */
#ifndef MCPFENCE_SHA256_H
#define MCPFENCE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

void sha256__digest(const void *data, size_t len, uint8_t out[SHA256_LEN]);

#endif
