/* SPDX-License-Identifier: Apache-2.0 */
/*
 * redis_store: budgets kept in Redis (a policy's "state": {"redis": URL}), so that every gateway
 * and attachment, on every host, that names the same server and prefix shares them. Each budget
 * of a window is one integer key, PREFIX "b:" HEX(SHA-256 of its name) ":" WINDOW_START, that
 * expires a minute after its window ends. A call's budgets are checked and taken in one Lua
 * script: all or none, atomically on the server. One blocking connection (hiredis), made again
 * on the next operation after a failure, at most once a second; every operation is bounded by
 * the configured timeout.
 */
#ifndef MCPFENCE_REDIS_STORE_H
#define MCPFENCE_REDIS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REDIS_DEFAULT_PORT 6379
#define REDIS_DEFAULT_PREFIX "mcpfence:"
#define REDIS_DEFAULT_TIMEOUT_MS 500
#define REDIS_KEY_MAX 320
#define REDIS_ERR_LEN 224

/* A policy's "state" (README: "Budgets shared between hosts"). */
struct redis_conf {
	char *url;	/* as written: two policies naming the same URL share one connection */
	char *shown;	/* the URL with its password left out, for messages */
	char *host;	/* a name or an address; an IPv6 address without its brackets */
	char *user;	/* NULL: AUTH with the password alone */
	char *password; /* NULL: no AUTH */
	char *prefix;
	int port;
	int db;
	bool fail_open; /* "unreachable": "allow" */
	uint32_t timeout_ms;
};

/*
 * Read redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] into c (its url, shown, host, user and
 * password; the other fields are left as they are). Returns 0, or -EINVAL with why (len bytes)
 * saying what is wrong; the password is never in why.
 */
int redis_conf__parse_url(const char *url, struct redis_conf *c, char *why, size_t len);
void redis_conf__free(struct redis_conf *c);

struct redis_store;

/* A store for c (copied); nothing is connected until the first operation. NULL: no memory. */
struct redis_store *redis_store__new(const struct redis_conf *c);
void redis_store__free(struct redis_store *s);
const struct redis_conf *redis_store__conf(const struct redis_store *s);
/* Why the last operation failed (the server as shown, and what went wrong). */
const char *redis_store__error(const struct redis_store *s);

/* The key of the budget whose name digests to digest, for its window starting at window_start. */
void redis_store__key(const struct redis_store *s, const uint8_t digest[32], uint64_t window_start,
		      char out[REDIS_KEY_MAX]);

/*
 * Take one unit of each of the n budgets keys[i] (a key given twice is taken once) if each has
 * room (its count + 1 <= max[i]), else none; each key taken expires in ttl_s[i] seconds.
 * Returns 0 when taken; 1 when not, full[i] set for each key without room; -errno when Redis
 * did not answer as it should (redis_store__error says why: fail per the policy).
 */
int redis_store__reserve(struct redis_store *s, size_t n, const char *const keys[],
			 const uint64_t max[], const uint64_t ttl_s[], bool full[]);
/* Give one unit of each key back (a key at 0 or gone is left alone). 0 or -errno. */
int redis_store__release(struct redis_store *s, size_t n, const char *const keys[]);
/* Count one use that was let through elsewhere: unconditional. 0 or -errno. */
int redis_store__charge(struct redis_store *s, const char *key, uint64_t ttl_s);
/* The count of key (0 when it does not exist). 0 or -errno. */
int redis_store__get(struct redis_store *s, const char *key, uint64_t *used);

/*
 * A secret every user of the server and prefix shares: the value of PREFIX name, set to
 * candidate (64 hex digits) by whoever asks first, never expiring; into hex. 0 or -errno.
 */
int redis_store__secret(struct redis_store *s, const char *name, const char candidate[65],
			char hex[65]);
/* Mark PREFIX name used, for ttl_s seconds: 0 the first time, 1 when it was already; -errno. */
int redis_store__once(struct redis_store *s, const char *name, uint64_t ttl_s);

#endif
