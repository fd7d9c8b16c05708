// SPDX-License-Identifier: Apache-2.0
/* mcpfence: policy on the tool calls AI agents make to MCP servers. */
#include <stdio.h>
#include <string.h>
#include "cmd.h"
#include "log.h"

#ifndef MCPFENCE_VERSION
#define MCPFENCE_VERSION "0.1.0"
#endif

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
};

static const struct command commands[] = {
	{ "check", cmd_check, "check [--json] POLICY...      validate policies and explain them" },
	{ "features", cmd_features, "features                      probe what this kernel offers" },
	{ "run", cmd_run,
	  "run [--policy P] [--audit FILE] -- CMD ARGS...  enforce on a stdio server" },
	{ "approvals", cmd_approvals,
	  "approvals [--json] [--pid P]  list the calls that wait for a human" },
	{ "approve", cmd_approve,
	  "approve ID | --tool T [--count N] [--for D]  let a waiting call / tool calls through" },
	{ "deny", cmd_deny, "deny ID                       refuse a waiting call" },
	{ "attach", cmd_attach,
	  "attach --policy P --port N     enforce in the kernel on TCP port N" },
	{ "detach", cmd_detach, "detach                        remove the kernel attachment" },
	{ "stats", cmd_stats, "stats [--json|--prometheus]   live counters of the kernel plane" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: mcpfence COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s\n", commands[i].usage);
	fprintf(f, "  version                       print the version\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		printf("mcpfence %s\n", MCPFENCE_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	log_err("unknown command '%s' (try: mcpfence --help)", argv[1]);
	return EXIT_USAGE;
}
