// SPDX-License-Identifier: Apache-2.0
/*
 * kernel_events: what BPF decided, from the tcp_events ring buffer into audit lines and attach's
 * log lines, naming the rule that fired and, for bytes refused unread, why; and the charge of
 * each call let through on a global budget in the host-wide table.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/limits.h>
#include "audit.h"
#include "decide.h"
#include "kernel_events.h"
#include "kernel_stdio.h"
#include "limits.h"
#include "log.h"
#include "mcpfence.h"
#include "status.h"
#include "stdio_find.h"

static const char *const kind_names[MCPF_KIND_MAX] = {
	"allow",    "hidden", "default", "rule",     "condition",
	"approval", "limit",  "invalid", "unparsed",
};

const char *kernel__kind_name(unsigned kind)
{
	return kind < MCPF_KIND_MAX ? kind_names[kind] : "?";
}

const char *kernel__why_text(uint32_t why)
{
	static const char *const text[MCPF_WHY_MAX] = {
		[MCPF_WHY_NONE] = "message not readable with certainty",
		[MCPF_WHY_JSON] = "not valid JSON or not valid UTF-8",
		[MCPF_WHY_BOUND] = "past a bound of the scanner (nesting, batch size, or a method, "
				   "name or id too long)",
		[MCPF_WHY_DUP_KEY] = "a key that matters appears twice (servers read the last one)",
		[MCPF_WHY_FOLDED_KEY] = "a key equal to one that matters without regard to case "
					"(servers that match keys so read it)",
		[MCPF_WHY_SHAPE] = "not a JSON-RPC message as servers read it",
		[MCPF_WHY_ID] =
			"a tools/call id that servers may write back otherwise (a fraction, "
			"an exponent, over 15 digits, escapes, <>&)",
		[MCPF_WHY_TRAILING] = "bytes after the JSON value",
		[MCPF_WHY_NEWLINE] = "a raw line end (\\n, or \\r that some readers take for one) "
				     "inside one message",
		[MCPF_WHY_FRAMING] = "HTTP framing that cannot be followed",
		[MCPF_WHY_ENCODING] = "a Content-Encoding (the body is not read)",
		[MCPF_WHY_MEDIA_TYPE] = "a Content-Type other than application/json",
		[MCPF_WHY_CHARSET] = "a charset other than utf-8 (servers decode the body by it)",
		[MCPF_WHY_HEADERS] = "Mcp-Method/Mcp-Name disagree with the body",
		[MCPF_WHY_TOO_LARGE] = "a body over 64 KiB (not read)",
		[MCPF_WHY_BUSY] = "every working slot of its CPU was held by runs in flight "
				  "(preempted)",
		[MCPF_WHY_INCOMPLETE] = "the message never ended",
		[MCPF_WHY_STDIO_LARGE] = "a stdio message of 48 KiB or more (too large to read)",
		[MCPF_WHY_RESEND] = "the rest of a short write to the pipe came back different",
		[MCPF_WHY_OPAQUE] = "written into the pipe by splice, tee, vmsplice, sendfile or "
				    "copy_file_range (bytes the tracepoints cannot read)",
		[MCPF_WHY_IOVECS] = "a writev of more than 16 iovecs",
		[MCPF_WHY_UNJUDGED] = "read by the server before the verdict took it (a race of "
				      "the kernel's AF_UNIX sockmap)",
		[MCPF_WHY_UNSEEN] =
			"written into the pipe by a path no tracepoint reads (io_uring)",
		[MCPF_WHY_DEAD] = "written after a refused write that ended inside a message (the "
				  "server holds its start: nothing may follow it)",
	};

	return why < MCPF_WHY_MAX && text[why] ? text[why] : text[MCPF_WHY_NONE];
}

static void rule_pointer(const struct kernel_compiled *kc, const struct mcpf_event *e, char *buf,
			 size_t size, const char **reason)
{
	const struct policy *p = kc->pol;
	const struct rule *r = p && e->rule < p->nrules ? &p->rules[e->rule] : NULL;

	*reason = NULL;
	switch (e->kind) {
	case MCPF_KIND_ALLOW:
		snprintf(buf, size, "%s", r ? r->ptr : "(default allow)");
		break;
	case MCPF_KIND_HIDDEN:
		snprintf(buf, size, "/hide/%u", e->limit);
		*reason = "hidden";
		break;
	case MCPF_KIND_DEFAULT:
		snprintf(buf, size, "(default deny)");
		*reason = "not allowed by the policy";
		break;
	case MCPF_KIND_RULE:
		snprintf(buf, size, "%s", r ? r->action_ptr : "(rule)");
		*reason = r && r->reason ? r->reason : "denied by rule";
		break;
	case MCPF_KIND_CONDITION:
		snprintf(buf, size, "%s/%s", r ? r->ptr : "(rule)",
			 r && r->nrequire ? "require" : "deny_if");
		*reason = "its conditions cannot be checked in the kernel plane";
		break;
	case MCPF_KIND_APPROVAL:
		snprintf(buf, size, "%s", r ? r->action_ptr : "(rule)");
		*reason = "needs approval: no ticket (mcpfence approve --tool)";
		break;
	case MCPF_KIND_LIMIT:
		snprintf(buf, size, "%s",
			 e->limit < kc->nslots ? kc->slots[e->limit].lim->ptr : "(limit)");
		*reason = "rate limit reached";
		break;
	case MCPF_KIND_INVALID:
		snprintf(buf, size, "(invalid)");
		*reason = "tools/call without a readable tool name";
		break;
	default:
		snprintf(buf, size, "(unparsed)");
		*reason = kernel__why_text(e->why);
	}
}

const char *kernel__reason(const struct kernel_compiled *kc, unsigned kind, unsigned rule,
			   unsigned limit)
{
	struct mcpf_event e = { .kind = kind, .rule = rule, .limit = limit };
	const char *reason;
	char ptr[300];

	rule_pointer(kc, &e, ptr, sizeof(ptr), &reason);
	return reason;
}

/*
 * A call BPF let through took its budgets there: count it in the host-wide table too, for each
 * global limit of the call (all_tools, then its rule's; a budget once however many limits name
 * it, as the gateway counts), in the window the call was decided in. The generation is the one
 * in force when the event was written; a SIGHUP flip between BPF's decision and its event (a few
 * microseconds) would read the rule index against the other policy.
 */
static void charge_event(struct kernel_events *ac, const struct mcpf_event *e)
{
	const struct kernel_compiled *kc = &ac->kc[e->gen & (MCPF_GENS - 1)];
	const struct scope_keys keys = { .policy = kc->policy_path };
	const struct policy *p = kc->pol;
	const struct rule *r;
	const struct limit *lims[2 * MCPF_TCP_CALL_LIMITS];
	uint64_t at;
	size_t n = 0;

	if (!ac->limits || !p || e->kind != MCPF_KIND_ALLOW || (e->flags & MCPF_EV_NEUTRALIZED))
		return;
	r = e->rule < p->nrules ? &p->rules[e->rule] : NULL;
	for (size_t i = 0; i < p->nall_limits && n < 2 * MCPF_TCP_CALL_LIMITS; i++)
		lims[n++] = &p->all_limits[i];
	for (size_t i = 0; r && i < r->nlimits && n < 2 * MCPF_TCP_CALL_LIMITS; i++)
		lims[n++] = &r->limits[i];
	at = (uint64_t)((int64_t)(e->ts_ns / 1000) + ac->mono_to_real_us) / 1000000;
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		int err;

		if (lims[i]->scope != SCOPE_GLOBAL)
			continue;
		for (size_t j = 0; j < i; j++)
			seen |= lims[j]->scope == SCOPE_GLOBAL &&
				lims[j]->window_s == lims[i]->window_s &&
				!strcmp(lims[j]->counter, lims[i]->counter);
		if (seen)
			continue;
		err = limits__charge(ac->limits, lims[i], &keys, at);
		if (err && err != -ESTALE)
			log_warn("%s: a kernel-plane call not counted in the host-wide table: %s",
				 lims[i]->ptr, strerror(-err));
	}
}

int kernel__on_event(void *ctx, void *data, size_t size)
{
	struct kernel_events *ac = ctx;
	const struct mcpf_event *e = data;
	char method[MCPF_METHOD_MAX + 1], name[MCPF_NAME_MAX + 1], id[MCPF_ID_MAX + 1];
	char session[MCPF_TCP_SESSION_MAX + 1], comm[17], server[32], ptr[300], exe[PATH_MAX];
	char conn[40], why[320];
	const struct kernel_stdio_session *st = NULL;
	const struct kernel_compiled *kc;
	struct audit_event ev = {};
	const char *reason, *rerr;
	char outcome[640];
	const char *tag = "";
	uint32_t e_pid, e_uid;
	bool stopped;

	if (size < sizeof(*e))
		return 0;
	e_pid = e->pid;
	e_uid = e->uid;
	charge_event(ac, e);
	snprintf(method, sizeof(method), "%.*s", MCPF_METHOD_MAX, e->method);
	snprintf(name, sizeof(name), "%.*s", MCPF_NAME_MAX, e->name);
	snprintf(id, sizeof(id), "%.*s", MCPF_ID_MAX, e->id);
	snprintf(session, sizeof(session), "%.*s", MCPF_TCP_SESSION_MAX, e->session);
	snprintf(comm, sizeof(comm), "%.*s", 16, e->comm);
	snprintf(server, sizeof(server), "tcp:%u", e->sport);
	snprintf(conn, sizeof(conn), "tcp:%u->%u", e->cport, e->sport);
	if (e->stdio) {
		st = e->stdio <= ac->nstdio ? &ac->stdio[e->stdio - 1] : NULL;
		snprintf(server, sizeof(server), "pid:%d", st ? st->pid : 0);
		kernel_stdio__conn(st, conn, sizeof(conn));
	}
	if (st && st->client_pid && e->pid == (uint32_t)getpid()) {
		/* bytes its client sent before the server ran, which the daemon sent again: the
		 * client's (kernel_stdio__resend) */
		char path[32];
		struct stat sb;

		e_pid = (uint32_t)st->client_pid;
		snprintf(path, sizeof(path), "/proc/%d", (int)st->client_pid);
		e_uid = stat(path, &sb) ? (uint32_t)-1 : sb.st_uid;
		snprintf(comm, sizeof(comm), "%.16s", st->client_comm);
	}
	stdio_find__exe((pid_t)e_pid, exe, sizeof(exe), comm);
	kc = &ac->kc[e->gen & (MCPF_GENS - 1)];
	rule_pointer(kc, e, ptr, sizeof(ptr), &reason);
	if (ac->many_policies && kc->pol)
		ev.policy = kc->pol->source;
	ev.time_us = e->ts_ns / 1000 + ac->mono_to_real_us;
	ev.plane = e->stdio ? "stdio-kernel" : "kernel";
	ev.server = server;
	ev.session = session[0] ? session : NULL;
	ev.conn = conn;
	ev.client_pid = e_pid;
	ev.client_uid = e_uid;
	ev.client_exe = exe;
	ev.method = method[0] ? method : NULL;
	ev.tool = name[0] ? name : NULL;
	ev.decision = e->flags & MCPF_EV_NEUTRALIZED ? "deny" : "allow";
	stopped = e->flags & MCPF_EV_NEUTRALIZED;
	ev.kind = e->kind == MCPF_KIND_ALLOW ? NULL : decide__kind_name(e->kind);
	if (e->kind == MCPF_KIND_LIMIT && e->limit < kc->nslots &&
	    (rerr = limits__remote_error(ac->limits, kc->slots[e->limit].lim))) {
		/* the sync gave BPF nothing left: the store cannot be read (fail closed) */
		snprintf(why, sizeof(why), "its budget is kept in Redis, which cannot be read (%s)",
			 rerr);
		reason = why;
	} else if (e->kind == MCPF_KIND_UNPARSED) {
		snprintf(why, sizeof(why), "%s: %s",
			 e->flags & MCPF_EV_NEUTRALIZED ?
				 "refused unread" :
				 "passed unread (policy kernel.unparsed: allow)",
			 reason);
		reason = why;
	}
	if (e->flags & MCPF_EV_NEUTRALIZED)
		tag = " (neutralized)";
	if (stopped && st && st->transport == MCPF_STDIO_PIPE) {
		/* a pipe cannot be rewritten: the action says what became of the call */
		static const char *const tags[] = {
			[MCPF_PIPE_AUDIT] = " (not stopped: --pipe-action audit)",
			[MCPF_PIPE_KILL] = " (the server was killed)",
			[MCPF_PIPE_REFUSE] = " (its write refused)",
		};
		static const char *const outcomes[] = {
			[MCPF_PIPE_AUDIT] = "not stopped: --pipe-action audit",
			[MCPF_PIPE_KILL] = "the server was killed before it could read it",
			[MCPF_PIPE_REFUSE] =
				"its write failed with EPERM; the server read none of it",
		};
		unsigned a = st->action <= MCPF_PIPE_REFUSE ? st->action : MCPF_PIPE_AUDIT;

		tag = tags[a];
		snprintf(outcome, sizeof(outcome), "%s (%s)", reason ? reason : "denied",
			 outcomes[a]);
		reason = outcome;
	} else if (e->why == MCPF_WHY_UNJUDGED) {
		snprintf(outcome, sizeof(outcome),
			 "%s: the reader, pid %u (%s), was killed before it could act on it",
			 reason, e->pid, comm);
		reason = outcome;
		/* the event ran in the reader: the client is not known */
		ev.client_pid = 0;
		ev.client_uid = (uid_t)-1;
		ev.client_exe = NULL;
	} else if (stopped && (e->flags & MCPF_EV_BROKEN)) {
		snprintf(outcome, sizeof(outcome), "%s (%s)", reason ? reason : "denied",
			 "its line made unreadable: the server reads no call and sends no answer");
		reason = outcome;
	}
	if (ac->status) {
		struct status_session *row = status__get(ac->status, conn);

		if (row && !row->plane[0]) { /* a TCP connection's first decision */
			snprintf(row->plane, sizeof(row->plane), "%s", ev.plane);
			snprintf(row->server, sizeof(row->server), "%s", server);
		}
		if (row && ev.policy)
			status__set_policy(row, ev.policy);
		if (row && !row->client_pid && ev.client_pid) {
			row->client_pid = ev.client_pid;
			snprintf(row->client, sizeof(row->client), "%s", ev.client_exe);
		}
		if (row)
			status__count(ac->status, row, !strcmp(method, "tools/call"), stopped,
				      ev.time_us);
	}
	ev.rule = ptr;
	ev.reason = reason;
	ev.approved_by = e->flags & MCPF_EV_TICKET ? "ticket" : NULL;
	ev.request_id = id[0] ? id : NULL;
	if (ac->audit)
		audit__write(ac->audit, &ev);
	if (!ac->quiet) {
		printf("%s %s tool=%s id=%s kind=%s rule=%s pid=%u exe=%s conn=%s%s%s%s\n",
		       ev.decision, method[0] ? method : "-", name[0] ? name : "-",
		       id[0] ? id : "-", e->kind < MCPF_KIND_MAX ? kernel__kind_name(e->kind) : "?",
		       ptr, e_pid, exe, conn, tag, e->kind == MCPF_KIND_UNPARSED ? ": " : "",
		       e->kind == MCPF_KIND_UNPARSED ? reason : "");
		fflush(stdout);
	}
	return 0;
}
