// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence run [OPTIONS] -- CMD ARGS...`: the gateway plane on a stdio server. Parses the
 * options, makes this process untraceable by the agent's uid, and hands over to the gateway
 * (stdio_gateway__run), whose exit code is the server's.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include "cmd.h"
#include "log.h"
#include "stdio_gateway.h"

#define DEFAULT_GRACE_MS 2000

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mcpfence run [OPTIONS] -- CMD [ARGS...]\n"
		"  -p, --policy P    policy.json to enforce (none: every call is denied)\n"
		"  -a, --audit FILE  audit log, - for stderr (default: $MCPFENCE_AUDIT, or\n"
		"                    /var/log/mcpfence/audit.jsonl for root, else\n"
		"                    ${XDG_STATE_HOME:-~/.local/state}/mcpfence/audit.jsonl)\n"
		"  -n, --name NAME   the server's name for grant budgets (default: its command\n"
		"                    line) and the audit log (default: what the server says)\n"
		"  -g, --grace S     seconds from closing the server's stdin to SIGTERM, and on\n"
		"                    to SIGKILL (default 2)\n"
		"  -v, --verbose     log debug messages\n"
		"  -h, --help        print this help\n");
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "audit", required_argument, NULL, 'a' },
		{ "name", required_argument, NULL, 'n' },
		{ "grace", required_argument, NULL, 'g' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct gateway_opts o = { .grace_ms = DEFAULT_GRACE_MS };
	char *end;
	double grace;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:a:n:g:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o.policy_path = optarg;
			break;
		case 'a':
			o.audit_path = optarg;
			break;
		case 'n':
			o.name = optarg;
			break;
		case 'g':
			grace = strtod(optarg, &end);
			if (*end || grace < 0 || grace > 3600) {
				log_err("run: --grace %s: not a number of seconds (0 to 3600)",
					optarg);
				return EXIT_USAGE;
			}
			o.grace_ms = grace * 1000;
			break;
		case 'v':
			log_level = LOG_LVL_DEBUG;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		log_err("run: no server command (mcpfence run [OPTIONS] -- CMD ARGS...)");
		usage(stderr);
		return EXIT_USAGE;
	}
	/*
	 * The agent runs as our uid: were we dumpable, it could ptrace us or write our
	 * /proc/PID/mem and approve from inside. Not dumpable, our /proc/PID files are root's
	 * and only CAP_SYS_PTRACE may attach. The server we exec is dumpable again (execve).
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		log_warn("run: PR_SET_DUMPABLE: %s: the agent's uid may trace this gateway",
			 strerror(errno));
	return stdio_gateway__run(&o, argv + optind);
}
