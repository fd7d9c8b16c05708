// SPDX-License-Identifier: Apache-2.0
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include "log.h"

enum log_level log_level = LOG_LVL_INFO;

/*
 * Is stderr the journal's stream? systemd sets JOURNAL_STREAM to "device:inode" of the stream
 * it connects a service's stderr to; a stderr redirected since (a pipe, a file) is not it.
 * Looked at once.
 */
static bool to_journal(void)
{
	static int known = -1;
	const char *js;
	unsigned long long dev, ino;
	struct stat st;
	char end;

	if (known >= 0)
		return known;
	js = getenv("JOURNAL_STREAM");
	known = js && sscanf(js, "%llu:%llu%c", &dev, &ino, &end) == 2 && !fstat(2, &st) &&
		st.st_dev == dev && st.st_ino == ino;
	return known;
}

static char last_error[512];

const char *log__last_error(void)
{
	return last_error;
}

void log__clear_error(void)
{
	last_error[0] = 0;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *const tag[] = { "error: ", "warning: ", "", "debug: " };
	/* syslog(3) priorities, as sd-daemon(3) prefixes: err, warning, info, debug */
	static const char *const prio[] = { "<3>", "<4>", "<6>", "<7>" };
	char line[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (lvl == LOG_LVL_ERROR)
		snprintf(last_error, sizeof(last_error), "%.*s", (int)sizeof(last_error) - 1, line);
	if (lvl > log_level)
		return;
	/* one message, one line: a line break from what it quotes would start a record of its own */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	/* one write, so that lines from several processes do not interleave */
	if (to_journal())
		fprintf(stderr, "%s%s%s\n", prio[lvl], tag[lvl], line);
	else
		fprintf(stderr, "mcpfence: %s%s\n", tag[lvl], line);
}
