// SPDX-License-Identifier: Apache-2.0
#include <stdio.h>
#include "log.h"

enum log_level log_level = LOG_LVL_INFO;

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *const tag[] = { "error: ", "warning: ", "", "debug: " };
	char line[4096];
	va_list ap;

	if (lvl > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one write, so that lines from several processes do not interleave */
	fprintf(stderr, "mcpfence: %s%s\n", tag[lvl], line);
}
