/* SPDX-License-Identifier: Apache-2.0 */
/* The subcommands of mcpfence: each gets argv from its own name on and returns the exit code. */
#ifndef MCPFENCE_CMD_H
#define MCPFENCE_CMD_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

/* -h or --help: every command then prints its usage, every option on a line, and exits 0. */
static inline bool cmd_is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

/* arg, whole, as a decimal number from lo to hi, into *v; false when it is not one. */
static inline bool cmd_number(const char *arg, long lo, long hi, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(arg, &end, 10);
	return !errno && end != arg && !*end && *v >= lo && *v <= hi;
}

int cmd_check(int argc, char **argv);
int cmd_features(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_proxy(int argc, char **argv);
int cmd_approvals(int argc, char **argv);
int cmd_approve(int argc, char **argv);
int cmd_deny(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_detach(int argc, char **argv);
int cmd_daemon(int argc, char **argv);
int cmd_enroll(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_status(int argc, char **argv);

#endif
