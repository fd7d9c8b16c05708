/* SPDX-License-Identifier: Apache-2.0 */
/* The subcommands of mcpfence: each gets argv from its own name on and returns the exit code. */
#ifndef MCPFENCE_CMD_H
#define MCPFENCE_CMD_H

#include <stdbool.h>
#include <string.h>

#define EXIT_USAGE 2

/* -h or --help: every command then prints its usage, every option on a line, and exits 0. */
static inline bool cmd_is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

int cmd_check(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_approvals(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_deny(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_stats(int argc, char **argv);

#endif
