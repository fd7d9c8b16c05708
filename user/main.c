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
	const char *what;
};

static const char version_usage[] = "usage: mcpfence version\n"
				    "  -h, --help        print this help\n";

static int cmd_version(int argc, char **argv)
{
	if (argc > 1) {
		if (argc == 2 && cmd_is_help(argv[1])) {
			fputs(version_usage, stdout);
			return 0;
		}
		log_err("version: unexpected argument '%s' (it takes none)", argv[1]);
		fputs(version_usage, stderr);
		return EXIT_USAGE;
	}
	printf("mcpfence %s\n", MCPFENCE_VERSION);
	return 0;
}

/* `mcpfence COMMAND --help` prints a command's options; mcpfence(8) says more. */
static const struct command commands[] = {
	{ "check", cmd_check, "validate policies and explain what each plane enforces" },
	{ "features", cmd_features, "probe what this kernel offers the kernel plane" },
	{ "run", cmd_run, "enforce a policy on a stdio MCP server (the gateway plane)" },
	{ "proxy", cmd_proxy,
	  "enforce a policy on a Streamable HTTP MCP server (the gateway plane)" },
	{ "approvals", cmd_approvals, "list the calls that wait for a human" },
	{ "approve", cmd_approve, "let a waiting call through, or give a kernel-plane ticket" },
	{ "deny", cmd_deny, "refuse a waiting call" },
	{ "attach", cmd_attach, "enforce a policy in the kernel on TCP ports and stdio servers" },
	{ "enroll", cmd_enroll, "put running stdio servers under the running attach" },
	{ "daemon", cmd_daemon,
	  "find the stdio servers a directory of policies names, and enforce" },
	{ "detach", cmd_detach, "remove the kernel attachment" },
	{ "stats", cmd_stats, "print the live counters of the kernel plane" },
	{ "status", cmd_status, "list the sessions the kernel attachment enforces on" },
	{ "version", cmd_version, "print the version" },
};

/* "commands:" comes last: dist/mcpfence.bash takes every line after it for a command */
static void usage(FILE *f)
{
	fprintf(f, "usage: mcpfence COMMAND [OPTIONS] [ARGS]\n\n"
		   "options:\n"
		   "  -h, --help  print this help (mcpfence COMMAND --help: the command's)\n"
		   "  --version   print the version\n\n"
		   "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].what);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (cmd_is_help(argv[1]) || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version"))
		return cmd_version(1, argv);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	log_err("unknown command '%s' (try: mcpfence --help)", argv[1]);
	return EXIT_USAGE;
}
