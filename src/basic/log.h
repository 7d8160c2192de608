/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <syslog.h>

#include "basic/macro.h"

typedef enum LogTarget {
        LOG_TARGET_AUTO,        /* journal when stderr is connected to it (JOURNAL_STREAM), console otherwise */
        LOG_TARGET_JOURNAL,
        LOG_TARGET_CONSOLE,
        _LOG_TARGET_MAX,
        _LOG_TARGET_INVALID = -EINVAL,
} LogTarget;

DECLARE_STRING_TABLE(log_target, LogTarget);

/* "emerg" … "debug" or a number 0…7 → syslog priority, or -EINVAL. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);

void log_set_target(LogTarget target);
LogTarget log_get_target(void);
/* The target actually used after resolving LOG_TARGET_AUTO. */
LogTarget log_get_effective_target(void);
void log_set_max_level(int level);
int log_get_max_level(void);
void log_set_identifier(const char *ident);

/* Logs a message; fields is NULL or a NULL-terminated list of extra "KEY=value" journal fields
 * (MESSAGE_ID=…, VM=…). Sets errno to error while formatting, so "%m" works. Returns -abs(error). */
int log_internal(int level, int error, const char *const *fields,
                 const char *file, int line, const char *func,
                 const char *format, ...) _printf_(7, 8);

#define log_full_errno(level, error, ...)                                                       \
        ({                                                                                      \
                int _level_ = (level), _e_ = (error);                                           \
                _level_ <= log_get_max_level()                                                  \
                        ? log_internal(_level_, _e_, NULL, __FILE__, __LINE__, __func__, __VA_ARGS__) \
                        : -abs(_e_);                                                            \
        })

#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_notice_errno(error, ...) log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

/* Structured message with extra journal fields, e.g.
 * log_struct(LOG_NOTICE, 0, STRV("MESSAGE_ID=" MESSAGE_ID_STARTED), "Started %s", name); */
#define STRV(...) ((const char *const[]) { __VA_ARGS__, NULL })
#define log_struct(level, error, fields, ...)                                                   \
        ({                                                                                      \
                int _level_ = (level), _e_ = (error);                                           \
                _level_ <= log_get_max_level()                                                  \
                        ? log_internal(_level_, _e_, fields, __FILE__, __LINE__, __func__, __VA_ARGS__) \
                        : -abs(_e_);                                                            \
        })

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
