// SPDX-License-Identifier: Apache-2.0
/*
 * `mcpfence enroll --pid PID...`: put running stdio servers under the running `mcpfence attach`,
 * with no moment unenforced for the others and no restart of anything. attach answers each
 * (control.h): what it found, and which policy decides.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd.h"
#include "control.h"
#include "log.h"
#include "mcpfence.h"

static void enroll_usage(FILE *f)
{
	fprintf(f,
		"usage: mcpfence enroll --pid PID [--pid PID]...\n"
		"  --pid PID         a running stdio server for the running attach to enforce on\n"
		"  -h, --help        print this help\n");
}

int cmd_enroll(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long pids[MCPF_STDIO_MAX_SESSIONS];
	unsigned npids = 0;
	int c, ret = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (npids >= MCPF_STDIO_MAX_SESSIONS ||
			    !cmd_number(optarg, 1, 0x3fffffff, &pids[npids])) {
				log_err("--pid %s: not a process id (at most %d of them)", optarg,
					MCPF_STDIO_MAX_SESSIONS);
				return EXIT_USAGE;
			}
			npids++;
			break;
		case 'h':
			enroll_usage(stdout);
			return 0;
		default:
			enroll_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc || !npids) {
		if (optind < argc)
			log_err("enroll: unexpected argument '%s'", argv[optind]);
		else
			log_err("enroll needs at least one --pid");
		enroll_usage(stderr);
		return EXIT_USAGE;
	}
	if (geteuid() != 0) {
		log_err("enroll needs root");
		return 1;
	}
	for (unsigned i = 0; i < npids; i++) {
		char line[64], reply[CONTROL_LINE_MAX];

		snprintf(line, sizeof(line), "enroll %ld", pids[i]);
		/* attach reads the server's fds and may compile a policy: seconds on a slow VM */
		if (control__request(CONTROL_PATH, line, reply, 30000))
			return 1;
		if (!strncmp(reply, "ok ", 3)) {
			printf("%s\n", reply + 3);
		} else {
			/* attach's answers name the pid */
			log_err("%s", !strncmp(reply, "error: ", 7) ? reply + 7 : reply);
			ret = 1;
		}
	}
	return ret;
}
