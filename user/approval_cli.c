// SPDX-License-Identifier: Apache-2.0
/*
 * approval_cli: `mcpfence approvals`, `mcpfence approve ID`, `mcpfence deny ID`, the operator's
 * side of the gateways' control sockets. Gateways are found in /proc/net/unix by their
 * abstract names; a name proves nothing (any process may bind any free name), so each is
 * believed only when the kernel says its listener is the pid the name carries, and a listing
 * only when every call's ID carries that pid and the digest of the tool and arguments shown.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "approval.h"
#include "clock.h"
#include "cmd.h"
#include "kernel_tickets.h"
#include "log.h"

#define REPLY_MAX (16u << 20)	  /* what one gateway may answer */
#define REPLY_TIMEOUT_MS 3000	  /* and how long it may take */
#define LIST_TIMEOUT_MS 10000	  /* and all of them, for a listing */
#define UNIX_ACCEPTCON 0x00010000 /* /proc/net/unix flags: a listening socket */

struct gw_sock {
	char name[64]; /* without the leading NUL */
	pid_t pid;     /* the pid the name carries */
};

/* The pid in "mcpfence/approvals/<pid>" or "mcpfence/approvals/<pid>.<8 hex>"; 0: not ours. */
static pid_t name_pid(const char *name)
{
	const char *p = name + strlen(APPROVAL_SOCK_PREFIX), *end;
	size_t digits;
	long v;

	if (strncmp(name, APPROVAL_SOCK_PREFIX, strlen(APPROVAL_SOCK_PREFIX)))
		return 0;
	digits = strspn(p, "0123456789");
	if (!digits || digits > 10 || *p == '0')
		return 0;
	end = p + digits;
	if (*end &&
	    (*end != '.' || strlen(end + 1) != 8 || strspn(end + 1, "0123456789abcdef") != 8))
		return 0;
	v = strtol(p, NULL, 10);
	return v > 0 && v <= 0x7fffffff ? (pid_t)v : 0;
}

/* Listening control sockets in this network namespace, of pid only (0: all); 0 or -errno. */
static int find_sockets(pid_t only, struct gw_sock **out, size_t *n)
{
	FILE *f = fopen("/proc/net/unix", "re");
	char *line = NULL;
	size_t cap = 0;
	int err = 0;

	*out = NULL;
	*n = 0;
	if (!f) {
		err = -errno;
		log_err("/proc/net/unix: %s", strerror(-err));
		return err;
	}
	while (getline(&line, &cap, f) > 0) {
		unsigned flags, type, st;
		unsigned long inode;
		int off = 0;
		char *path;
		pid_t pid;
		struct gw_sock *nb;
		bool seen = false;

		if (sscanf(line, "%*[^:]: %*x %*x %x %x %x %lu %n", &flags, &type, &st, &inode,
			   &off) != 4 ||
		    !off)
			continue;
		path = line + off;
		path[strcspn(path, "\n")] = 0;
		if (path[0] != '@' || !(flags & UNIX_ACCEPTCON) || type != SOCK_STREAM ||
		    strlen(path + 1) >= sizeof((*out)->name))
			continue;
		pid = name_pid(path + 1);
		if (!pid || (only && pid != only))
			continue;
		for (size_t i = 0; i < *n && !seen; i++)
			seen = !strcmp((*out)[i].name, path + 1);
		if (seen)
			continue;
		nb = reallocarray(*out, *n + 1, sizeof(**out));
		if (!nb) {
			err = -ENOMEM;
			break;
		}
		*out = nb;
		snprintf(nb[*n].name, sizeof(nb[*n].name), "%s", path + 1);
		nb[(*n)++].pid = pid;
	}
	free(line);
	fclose(f);
	return err;
}

/*
 * Connect to a gateway's socket; the descriptor, or -errno with why filled in. The kernel
 * tells who listens: anyone but the pid the name carries has only taken that name.
 */
static int gateway_connect(const struct gw_sock *gs, char *why, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(gs->name);
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int fd, err;

	memcpy(sa.sun_path + 1, gs->name, len);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		err = -errno;
		snprintf(why, size, "socket: %s", strerror(-err));
		return err;
	}
	if (connect(fd, (struct sockaddr *)&sa, offsetof(struct sockaddr_un, sun_path) + 1 + len)) {
		err = -errno;
		snprintf(why, size, "@%s: %s", gs->name, strerror(-err));
		goto out_close;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen)) {
		err = -errno;
		snprintf(why, size, "@%s: SO_PEERCRED: %s", gs->name, strerror(-err));
		goto out_close;
	}
	if (cred.pid != gs->pid) {
		err = -EPERM;
		snprintf(why, size,
			 "@%s is held by pid %d (uid %u), not by pid %d: not that gateway's socket",
			 gs->name, (int)cred.pid, (unsigned)cred.uid, (int)gs->pid);
		goto out_close;
	}
	return fd;
out_close:
	close(fd);
	return err;
}

/*
 * Send one command line and read the whole answer (NUL-terminated, malloc'd) by the time end
 * (CLOCK_MONOTONIC ms) at the latest; 0 or -errno.
 */
static int ask(int fd, const char *cmd, uint64_t end, char **reply)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd)) {
		err = -errno;
		goto out_free;
	}
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = clock__mono_ms();
		ssize_t n;

		if (now >= end || poll(&pfd, 1, (int)(end - now)) <= 0) {
			err = -ETIMEDOUT;
			goto out_free;
		}
		if (len + 4096 + 1 > cap) {
			char *nb = cap >= REPLY_MAX ? NULL : realloc(buf, cap * 2);

			if (!nb) {
				err = -EFBIG;
				goto out_free;
			}
			buf = nb;
			cap *= 2;
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			goto out_free;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	*reply = buf;
	return 0;
out_free:
	free(buf);
	return err;
}

/*
 * Print text from a gateway for a terminal: control bytes, C1 controls and the bidirectional
 * overrides become escapes, so a tool name cannot move the cursor or reorder what is shown.
 */
static void put_safe(const char *s, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	for (; u[i] && i < max; i++) {
		if (u[i] < 0x20 || u[i] == 0x7f) {
			printf("\\x%02x", u[i]);
		} else if (u[i] == 0xc2 && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f) {
			printf("\\u%04x", u[++i]);
		} else if (u[i] == 0xe2 &&
			   ((u[i + 1] == 0x80 && u[i + 2] >= 0xaa && u[i + 2] <= 0xae) ||
			    (u[i + 1] == 0x81 && u[i + 2] >= 0xa6 && u[i + 2] <= 0xa9))) {
			printf("\\u20%02x", u[i + 1] == 0x80 ? u[i + 2] - 0x80 : u[i + 2] - 0x40);
			i += 2;
		} else {
			putchar(u[i]);
		}
	}
	if (u[i])
		printf("...");
}

/* The same, in place, for a line that goes to stderr: each such character becomes '?'. */
static char *sanitize(char *s)
{
	unsigned char *u = (unsigned char *)s, *o = u;

	while (*u) {
		if (*u < 0x20 || *u == 0x7f) {
			u++;
		} else if (u[0] == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f) {
			u += 2;
		} else if (u[0] == 0xe2 && ((u[1] == 0x80 && u[2] >= 0xaa && u[2] <= 0xae) ||
					    (u[1] == 0x81 && u[2] >= 0xa6 && u[2] <= 0xa9))) {
			u += 3;
		} else {
			*o++ = *u++;
			continue;
		}
		*o++ = '?';
	}
	*o = 0;
	return s;
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/*
 * A listed call is shown only when its ID is this gateway's and carries the digest of the
 * tool and arguments it lists: a listing cannot show one call and name another.
 */
static bool call_checks(const json_t *o, const struct gw_sock *gs, char *why, size_t size)
{
	char token[APPROVAL_TOKEN_HEX + 1], dig[APPROVAL_ID_DIGEST_HEX + 1], hex[65];
	const char *id = str(o, "id"), *tool = str(o, "tool"), *digest = str(o, "digest");
	json_t *args = json_object_get(o, "arguments");
	pid_t pid;

	if (!id || !tool || !digest || approval__parse_id(id, &pid, token, dig)) {
		snprintf(why, size, "a call without a valid id, tool and digest");
		return false;
	}
	if (pid != gs->pid) {
		snprintf(why, size, "call %.48s is not of pid %d", id, (int)gs->pid);
		return false;
	}
	if (strlen(digest) != 64 || strncmp(digest, dig, APPROVAL_ID_DIGEST_HEX)) {
		snprintf(why, size, "call %.48s: its ID and digest differ", id);
		return false;
	}
	if (args || !json_object_get(o, "arguments_bytes")) {
		if (approval__digest(tool, args ? args : NULL, hex) || strcmp(hex, digest)) {
			snprintf(why, size,
				 "call %.48s: the tool and arguments listed do not have "
				 "its digest",
				 id);
			return false;
		}
	}
	return true;
}

static void print_call(const json_t *o)
{
	const json_t *client = json_object_get(o, "client");
	json_t *args = json_object_get(o, "arguments");
	char *text =
		args ? json_dumps(args, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY) : NULL;
	json_int_t cuid = json_integer_value(json_object_get(client, "uid"));
	char who[128];

	printf("%s\n  server ", str(o, "id"));
	put_safe(str(o, "server") ?: "-", 128);
	printf(", tool \"");
	put_safe(str(o, "tool"), 256);
	printf("\", arguments sha256 %.16s...\n  arguments ", str(o, "digest"));
	if (text)
		put_safe(text, 400);
	else
		printf("(%lld bytes, not listed)",
		       (long long)json_integer_value(json_object_get(o, "arguments_bytes")));
	if (cuid >= 0)
		approval__uid_name((uid_t)cuid, who, sizeof(who));
	else
		snprintf(who, sizeof(who), "uid unknown");
	printf("\n  client pid %lld, %s, ",
	       (long long)json_integer_value(json_object_get(client, "pid")), who);
	put_safe(str(client, "exe") ?: "(executable unknown)", 256);
	printf("\n  waiting %llds of %llds, asked: ",
	       (long long)json_integer_value(json_object_get(o, "waiting_s")),
	       (long long)json_integer_value(json_object_get(o, "timeout_s")));
	put_safe(str(o, "asked") ?: "?", 32);
	printf(", rule ");
	put_safe(str(o, "rule") ?: "(none now)", 256);
	printf("\n  may approve: ");
	put_safe(str(o, "may_approve") ?: "?", 1024);
	printf("\n\n");
	free(text);
}

/* List what one gateway shows us, answering by end; how many calls were printed. */
static size_t list_one(const struct gw_sock *gs, bool json, uint64_t end)
{
	char why[256], *reply = NULL, *line, *save = NULL;
	size_t shown = 0;
	int fd, err;

	fd = gateway_connect(gs, why, sizeof(why));
	if (fd < 0) {
		if (fd == -EPERM)
			log_warn("ignored: %s", why);
		return 0; /* a gateway that exited in between */
	}
	err = ask(fd, "list\n", end, &reply);
	close(fd);
	if (err) {
		log_warn("gateway pid %d: %s", (int)gs->pid, strerror(-err));
		return 0;
	}
	for (line = strtok_r(reply, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_t *o;

		if (!strncmp(line, "error: ", 7)) {
			log_warn("gateway pid %d: %.300s", (int)gs->pid, sanitize(line + 7));
			continue;
		}
		o = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(o) || !call_checks(o, gs, why, sizeof(why))) {
			log_warn("gateway pid %d: left out of the list: %s", (int)gs->pid,
				 o ? why : "a line that is not JSON");
			json_decref(o);
			continue;
		}
		if (json) {
			char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);

			if (s)
				printf("%s\n", s);
			free(s);
		} else {
			print_call(o);
		}
		shown++;
		json_decref(o);
	}
	free(reply);
	return shown;
}

static const char approvals_usage[] =
	"usage: mcpfence approvals [--json] [--pid PID]\n"
	"  --json            print a JSON object per waiting call, one per line\n"
	"  --pid PID         ask only the gateway (mcpfence run) of process PID\n"
	"  -h, --help        print this help\n";

int cmd_approvals(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "pid", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct gw_sock *socks = NULL;
	size_t n = 0, shown = 0;
	uint64_t all_end;
	bool json = false;
	long only = 0;
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'p':
			only = strtol(optarg, &end, 10);
			if (*end || only <= 0 || only > 0x7fffffff) {
				log_err("approvals: --pid %s: not a pid", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(approvals_usage, stdout);
			return 0;
		default:
			fputs(approvals_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		log_err("approvals: unexpected argument '%s'", argv[optind]);
		fputs(approvals_usage, stderr);
		return EXIT_USAGE;
	}
	if (find_sockets((pid_t)only, &socks, &n))
		return 1;
	all_end = clock__mono_ms() + LIST_TIMEOUT_MS;
	/* each gateway has a few seconds, and all of them together a few more: a process that
	 * listens under its own pid and never answers delays the listing, it does not stop it */
	for (size_t i = 0; i < n; i++) {
		uint64_t now = clock__mono_ms();

		if (now >= all_end) {
			log_warn("%zu gateway(s) not asked: no time left", n - i);
			break;
		}
		shown += list_one(&socks[i], json,
				  now + (all_end - now < REPLY_TIMEOUT_MS ? all_end - now :
									    REPLY_TIMEOUT_MS));
	}
	free(socks);
	if (!shown && !json)
		printf("no call waits for approval\n");
	return 0;
}

/* Connect to the gateway of pid: its own name first, then a suffixed one (its was taken). */
static int connect_pid(pid_t pid, char *why, size_t size)
{
	struct gw_sock gs = { .pid = pid }, *socks = NULL;
	size_t n = 0;
	int fd;

	snprintf(gs.name, sizeof(gs.name), APPROVAL_SOCK_PREFIX "%d", (int)pid);
	fd = gateway_connect(&gs, why, size);
	if (fd >= 0 || find_sockets(pid, &socks, &n))
		return fd;
	for (size_t i = 0; i < n && fd < 0; i++)
		if (strcmp(socks[i].name, gs.name))
			fd = gateway_connect(&socks[i], why, size);
	free(socks);
	return fd;
}

static const char approve_usage[] =
	"usage: mcpfence approve ID\n"
	"       mcpfence approve --tool T [--count N] [--for DURATION]\n"
	"  ID                a call that waits, from mcpfence approvals: let it through\n"
	"  --tool T          give a kernel-plane ticket for calls of tool T (root only)\n"
	"  --count N         calls the ticket lets through (1 to 1000000, default 1)\n"
	"  --for DURATION    how long it holds: 30s, 10m, 2h, 1d or seconds (default 10m)\n"
	"  -h, --help        print this help\n";

static const char deny_usage[] =
	"usage: mcpfence deny ID\n"
	"  ID                a call that waits, from mcpfence approvals: refuse it\n"
	"  -h, --help        print this help\n";

static int decide_one(int argc, char **argv, bool yes)
{
	char token[APPROVAL_TOKEN_HEX + 1], digest[APPROVAL_ID_DIGEST_HEX + 1], why[256];
	const char *usage = yes ? approve_usage : deny_usage, *bad = NULL;
	char cmd[128], *reply = NULL;
	bool ticket = false, help = false;
	pid_t pid;
	int fd, err, rc = 1;

	for (int i = 1; i < argc; i++) {
		if (cmd_is_help(argv[i]))
			help = true;
		else if (!strncmp(argv[i], "--tool", 6) && (!argv[i][6] || argv[i][6] == '='))
			ticket = true;
		else if (argv[i][0] == '-' && !bad)
			bad = argv[i];
	}
	if (ticket && yes) /* a kernel-plane ticket: its options, --help among them */
		return kernel__approve_ticket(argc, argv, approve_usage);
	if (help) {
		fputs(usage, stdout);
		return 0;
	}
	if (ticket) {
		log_err("deny --tool: the kernel plane denies without a ticket already; "
			"`mcpfence deny` takes an ID from `mcpfence approvals`");
		return EXIT_USAGE;
	}
	if (bad || argc != 2) {
		if (bad)
			log_err("%s: unknown option '%s'", argv[0], bad);
		else
			log_err("%s: %s", argv[0], argc < 2 ? "no ID given" : "one ID at a time");
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (approval__parse_id(argv[1], &pid, token, digest)) {
		log_err("%s: '%.80s' is not an approval ID (PID-CALL-DIGEST, from `mcpfence "
			"approvals`)",
			argv[0], argv[1]);
		return EXIT_USAGE;
	}
	fd = connect_pid(pid, why, sizeof(why));
	if (fd < 0) {
		log_err("%s: no gateway of pid %d takes approvals (%s): it exited, or the ID is "
			"stale",
			argv[1], (int)pid, why);
		return 1;
	}
	snprintf(cmd, sizeof(cmd), "%s %s\n", yes ? "approve" : "deny", argv[1]);
	err = ask(fd, cmd, clock__mono_ms() + REPLY_TIMEOUT_MS, &reply);
	close(fd);
	if (err) {
		log_err("%s: gateway pid %d: %s", argv[1], (int)pid, strerror(-err));
		return 1;
	}
	reply[strcspn(reply, "\n")] = 0;
	if (!strncmp(reply, "ok", 2)) {
		put_safe(reply, 2048);
		putchar('\n');
		rc = 0;
	} else {
		sanitize(reply);
		log_err("%.1000s", strncmp(reply, "error: ", 7) ? reply : reply + 7);
	}
	free(reply);
	return rc;
}

int cmd_approve(int argc, char **argv)
{
	return decide_one(argc, argv, true);
}

int cmd_deny(int argc, char **argv)
{
	return decide_one(argc, argv, false);
}
