/* SPDX-License-Identifier: Apache-2.0 */
/*
 * log: one line per message on stderr, prefixed with the program name; when stderr is the
 * journal's stream (JOURNAL_STREAM), with its priority instead (<3> error ... <7> debug).
 */
#ifndef MCPFENCE_LOG_H
#define MCPFENCE_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_NONE = -1, /* nothing at all (tests that expect errors) */
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN = 1,
	LOG_LVL_INFO = 2,
	LOG_LVL_DEBUG = 3,
};

extern enum log_level log_level;

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * The last error logged (its first 511 bytes, on one line), "" when none since
 * log__clear_error: what a request that failed answers (attach's control socket).
 */
const char *log__last_error(void);
void log__clear_error(void);
#define log_err(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
