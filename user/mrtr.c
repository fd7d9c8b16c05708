// SPDX-License-Identifier: Apache-2.0
/*
 * Approval state for the 2026-07-28 revision (mrtr.h). A state is
 *
 *	"mcpfence1." HEX(payload) "." HEX(HMAC-SHA256(key, "mcpfence1." HEX(payload) "." digest))
 *
 * where payload is compact JSON {"e": expiry, "n": nonce, "r": responses?, "s": state?} and
 * digest the hex SHA-256 of the tool and its arguments. The key never leaves the process, but
 * when it is shared (mrtr__share): it is then the one kept in Redis.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "approval.h"
#include "clock.h"
#include "mrtr.h"
#include "redis_store.h"

static void hex(const unsigned char *p, size_t n, char *out);
static bool unhex(const char *s, size_t n, unsigned char *out);

int mrtr__init(struct mrtr *m)
{
	memset(m, 0, sizeof(*m));
	if (getrandom(m->own_key, sizeof(m->own_key), 0) != sizeof(m->own_key))
		return -EIO;
	memcpy(m->key, m->own_key, sizeof(m->key));
	m->used = calloc(MRTR_MAX_LIVE, sizeof(*m->used));
	return m->used ? 0 : -ENOMEM;
}

void mrtr__free(struct mrtr *m)
{
	free(m->used);
	OPENSSL_cleanse(m->key, sizeof(m->key));
	OPENSSL_cleanse(m->own_key, sizeof(m->own_key));
	m->used = NULL;
	m->nused = 0;
	m->shared = NULL;
}

/* This process's own key again (and its uses forgotten: their expiries were the wall clock's). */
static void own_key_again(struct mrtr *m)
{
	if (!m->shared)
		return;
	memcpy(m->key, m->own_key, sizeof(m->key));
	m->shared = NULL;
	m->nused = 0;
}

int mrtr__share(struct mrtr *m, struct redis_store *s)
{
	unsigned char fresh[32];
	char candidate[65], got[65];
	int err;

	if (!s) {
		own_key_again(m);
		return 0;
	}
	if (getrandom(fresh, sizeof(fresh), 0) != sizeof(fresh)) {
		own_key_again(m);
		return -EIO;
	}
	hex(fresh, sizeof(fresh), candidate);
	OPENSSL_cleanse(fresh, sizeof(fresh));
	err = redis_store__secret(s, "approval-key", candidate, got);
	OPENSSL_cleanse(candidate, sizeof(candidate));
	if (err) {
		own_key_again(m);
		return err;
	}
	if (!m->shared)
		m->nused = 0; /* expiries were monotonic: from now on, the wall clock's */
	unhex(got, 64, m->key);
	OPENSSL_cleanse(got, sizeof(got));
	m->shared = s;
	return 0;
}

uint64_t mrtr__now(const struct mrtr *m)
{
	return m->shared ? (uint64_t)time(NULL) : clock__mono_us() / 1000000;
}

bool mrtr__ours(const json_t *params)
{
	const char *s = json_string_value(json_object_get(params, "requestState"));

	return s && !strncmp(s, MRTR_PREFIX, strlen(MRTR_PREFIX));
}

static void hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

static int unhex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* n hex digits (lower case) at s into out (n / 2 bytes); false if one is not. */
static bool unhex(const char *s, size_t n, unsigned char *out)
{
	if (n % 2)
		return false;
	for (size_t i = 0; i < n; i += 2) {
		int hi = unhex_digit(s[i]), lo = unhex_digit(s[i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

/* mac (64 hex digits and NUL) over "mcpfence1." payload_hex "." digest. */
static int mac_of(const struct mrtr *m, const char *payload_hex, size_t n, const char *digest,
		  char mac[65])
{
	size_t plen = strlen(MRTR_PREFIX) + n + 1 + 64;
	char *text = malloc(plen + 1);
	unsigned char md[32];
	size_t mdlen = 0;

	if (!text)
		return -ENOMEM;
	snprintf(text, plen + 1, "%s%.*s.%s", MRTR_PREFIX, (int)n, payload_hex, digest);
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, m->key, sizeof(m->key),
		       (unsigned char *)text, plen, md, sizeof(md), &mdlen) ||
	    mdlen != sizeof(md)) {
		free(text);
		return -EIO;
	}
	free(text);
	hex(md, sizeof(md), mac);
	return 0;
}

/* Forget the uses of states that expired (they are refused as expired anyway). */
static void forget_expired(struct mrtr *m, uint64_t now_s)
{
	size_t j = 0;

	for (size_t i = 0; i < m->nused; i++)
		if (m->used[i].expiry_s >= now_s)
			m->used[j++] = m->used[i];
	m->nused = j;
}

json_t *mrtr__ask(struct mrtr *m, const char *tool, const json_t *params, const char *message,
		  uint32_t timeout_s, uint64_t now_s)
{
	json_t *payload, *resp, *state_v = json_object_get(params, "requestState");
	json_t *responses = json_object_get(params, "inputResponses"), *result = NULL;
	unsigned char nonce[16];
	char nonce_hex[33], digest[65], mac[65], *text = NULL, *state = NULL;
	size_t n;

	errno = ENOMEM;
	if (getrandom(nonce, sizeof(nonce), 0) != sizeof(nonce)) {
		errno = EIO;
		return NULL;
	}
	hex(nonce, sizeof(nonce), nonce_hex);
	payload = json_pack("{s:I, s:s}", "e", (json_int_t)(now_s + timeout_s), "n", nonce_hex);
	if (!payload)
		return NULL;
	/* what the server asked the client in an earlier leg, and its state: carried */
	if (json_is_string(state_v))
		json_object_set(payload, "s", state_v);
	if (json_is_object(responses) && json_object_size(responses)) {
		resp = json_deep_copy(responses);
		json_object_del(resp, MRTR_KEY);
		if (json_object_size(resp))
			json_object_set(payload, "r", resp);
		json_decref(resp);
	}
	text = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		goto out;
	n = strlen(text);
	if (n > MRTR_MAX_CARRIED) {
		errno = E2BIG;
		goto out;
	}
	state = malloc(strlen(MRTR_PREFIX) + 2 * n + 1 + 64 + 1);
	if (!state || approval__digest(tool, json_object_get(params, "arguments"), digest))
		goto out;
	strcpy(state, MRTR_PREFIX);
	hex((unsigned char *)text, n, state + strlen(MRTR_PREFIX));
	if (mac_of(m, state + strlen(MRTR_PREFIX), 2 * n, digest, mac))
		goto out;
	strcat(state, ".");
	strcat(state, mac);
	result = json_pack("{s:s, s:{s:{s:s, s:o}}, s:s}", "resultType", "input_required",
			   "inputRequests", MRTR_KEY, "method", "elicitation/create", "params",
			   approval__elicit_params(message), "requestState", state);
out:
	free(state);
	free(text);
	json_decref(payload);
	return result;
}

static enum mrtr_answer refuse(char *why, size_t len, enum mrtr_answer a, const char *what)
{
	snprintf(why, len, "%s", what);
	return a;
}

enum mrtr_answer mrtr__answer(struct mrtr *m, const char *tool, json_t *params, uint64_t now_s,
			      char *why, size_t why_len)
{
	const char *state = json_string_value(json_object_get(params, "requestState"));
	const char *p = state ? state + strlen(MRTR_PREFIX) : NULL, *dot;
	json_t *responses = json_object_get(params, "inputResponses"), *payload, *answer;
	char digest[65], mac[65], *text;
	const char *nonce, *action;
	uint64_t expiry;
	size_t n;

	if (!mrtr__ours(params) || !(dot = strchr(p, '.')) || strlen(dot + 1) != 64)
		return refuse(why, why_len, MRTR_REFUSED,
			      "the approval state is not one mcpfence gave");
	n = (size_t)(dot - p);
	if (n > 2 * MRTR_MAX_CARRIED ||
	    approval__digest(tool, json_object_get(params, "arguments"), digest) ||
	    mac_of(m, p, n, digest, mac) || CRYPTO_memcmp(mac, dot + 1, 64))
		return refuse(why, why_len, MRTR_REFUSED,
			      "the approval state was not given for this tool and these arguments");
	/* ours, for this call: the payload is what we wrote */
	text = malloc(n / 2 + 1);
	if (!text || !unhex(p, n, (unsigned char *)text)) {
		free(text);
		return refuse(why, why_len, MRTR_REFUSED, "the approval state cannot be read");
	}
	text[n / 2] = 0;
	payload = json_loads(text, 0, NULL);
	free(text);
	nonce = json_string_value(json_object_get(payload, "n"));
	expiry = (uint64_t)json_integer_value(json_object_get(payload, "e"));
	if (!nonce || strlen(nonce) != 32) {
		json_decref(payload);
		return refuse(why, why_len, MRTR_REFUSED, "the approval state cannot be read");
	}
	if (now_s > expiry) {
		json_decref(payload);
		return refuse(why, why_len, MRTR_EXPIRED,
			      "nobody approved the call in time (its approval state expired)");
	}
	forget_expired(m, now_s);
	for (size_t i = 0; i < m->nused; i++) {
		if (!strcmp(m->used[i].nonce, nonce)) {
			json_decref(payload);
			return refuse(why, why_len, MRTR_REPLAYED,
				      "the approval was used already (a state is good once)");
		}
	}
	if (m->nused >= MRTR_MAX_LIVE) {
		json_decref(payload);
		return refuse(why, why_len, MRTR_REFUSED,
			      "too many approvals in flight to remember this one's use");
	}
	if (m->shared) { /* and not used through another gateway */
		char name[64];
		int u;

		snprintf(name, sizeof(name), "approval-used:%s", nonce);
		u = redis_store__once(m->shared, name, expiry - now_s + 60);
		if (u) {
			json_decref(payload);
			if (u > 0)
				return refuse(
					why, why_len, MRTR_REPLAYED,
					"the approval was used already (a state is good once)");
			snprintf(why, why_len,
				 "cannot make sure the approval was not used already (%.150s)",
				 redis_store__error(m->shared));
			return MRTR_REFUSED;
		}
	}
	snprintf(m->used[m->nused].nonce, sizeof(m->used[0].nonce), "%s", nonce);
	m->used[m->nused++].expiry_s = expiry;

	answer = json_object_get(responses, MRTR_KEY);
	action = json_string_value(json_object_get(answer, "action"));
	if (!action || strcmp(action, "accept") ||
	    !json_is_true(json_object_get(json_object_get(answer, "content"), "approve"))) {
		json_decref(payload);
		snprintf(why, why_len, "a human declined the call (elicitation: %s)",
			 action ? action : "no answer");
		return MRTR_DECLINED;
	}
	/* approved: the call as the server expects it, with what it carried put back */
	json_object_del(params, "requestState");
	if (json_is_object(responses))
		json_object_del(responses, MRTR_KEY);
	if (json_is_object(json_object_get(payload, "r"))) {
		if (!json_is_object(responses)) {
			json_object_set_new(params, "inputResponses", json_object());
			responses = json_object_get(params, "inputResponses");
		}
		json_object_update(responses, json_object_get(payload, "r"));
	}
	if (json_is_object(responses) && !json_object_size(responses))
		json_object_del(params, "inputResponses");
	if (json_is_string(json_object_get(payload, "s")))
		json_object_set(params, "requestState", json_object_get(payload, "s"));
	json_decref(payload);
	why[0] = 0;
	return MRTR_APPROVED;
}
