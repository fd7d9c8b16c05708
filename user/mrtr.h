/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Approval in the 2026-07-28 revision: the gateway answers a call that needs a human with an
 * `input_required` result (a Multi Round-Trip Request) that embeds an elicitation/create, and the
 * client retries the same call with the user's answer in `inputResponses` and the gateway's
 * `requestState` echoed. The state is the gateway's own: an HMAC-SHA256, under a key drawn at
 * start, over a nonce, an expiry and the digest of the tool and its arguments (approval__digest)
 * — so a retry with another tool or other arguments, an altered or made-up state, an expired one
 * or one used before is refused. A server's own requestState and inputResponses, when the call
 * already carried them (the server continues the call with input_required of its own), ride
 * inside the state and are put back before the call goes on.
 */
#ifndef MCPFENCE_MRTR_H
#define MCPFENCE_MRTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* The key of our question in inputRequests, and of its answer in inputResponses. */
#define MRTR_KEY "mcpfence-approval"
/* Our requestState begins so. */
#define MRTR_PREFIX "mcpfence1."
/* Uses remembered (single use): at most this many unexpired states at once. */
#define MRTR_MAX_LIVE 4096
/* A server's requestState and inputResponses carried inside ours: at most this many bytes. */
#define MRTR_MAX_CARRIED (64 * 1024)

struct mrtr_used {
	char nonce[33];
	uint64_t expiry_s;
};

struct redis_store;

struct mrtr {
	unsigned char key[32];	   /* in use: own_key, or the one shared through Redis */
	unsigned char own_key[32]; /* drawn at start */
	struct mrtr_used *used;
	size_t nused;
	struct redis_store *shared; /* borrowed; NULL: this process's alone */
};

/* A fresh key. 0, or -errno. */
int mrtr__init(struct mrtr *m);
void mrtr__free(struct mrtr *m);

/*
 * Share approvals with every gateway that names the same Redis and prefix (a policy's "state"),
 * so that a retry may reach another one (behind a load balancer): the key becomes the one kept
 * there (PREFIX "approval-key", made by whoever asks first), and a state is good once across
 * them all (PREFIX "approval-used:" NONCE, set when it is used; a Redis that cannot say is a
 * refusal). s is borrowed; NULL: this process's own key again. 0, or -errno (the key stays this
 * process's own; redis_store__error says why).
 */
int mrtr__share(struct mrtr *m, struct redis_store *s);
/* Now, in the seconds mrtr__ask and mrtr__answer take: monotonic; when shared, the wall clock. */
uint64_t mrtr__now(const struct mrtr *m);

/* Does this tools/call's params carry a requestState of ours? */
bool mrtr__ours(const json_t *params);

/*
 * The input_required result (the "result" object) that asks the client's user to approve the
 * call of tool with params (its "arguments" are what is approved), within timeout_s from now_s
 * (monotonic seconds). message: the question shown. NULL and errno: ENOMEM, E2BIG (what the
 * server carried is over MRTR_MAX_CARRIED).
 */
json_t *mrtr__ask(struct mrtr *m, const char *tool, const json_t *params, const char *message,
		  uint32_t timeout_s, uint64_t now_s);

enum mrtr_answer {
	MRTR_APPROVED, /* params restored: ours taken out, what the server carried put back */
	MRTR_DECLINED, /* the user declined, cancelled, or did not say approve: true */
	MRTR_REFUSED,  /* the state is not one we gave for this tool and these arguments */
	MRTR_EXPIRED,
	MRTR_REPLAYED, /* used before */
};

/*
 * Judge a retry whose params carry our requestState (mrtr__ours): the state is checked against
 * tool and params' arguments, used up, and the answer read. why: a sentence for a denial.
 */
enum mrtr_answer mrtr__answer(struct mrtr *m, const char *tool, json_t *params, uint64_t now_s,
			      char *why, size_t why_len);

#endif
