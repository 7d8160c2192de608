/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "basic/log.h"

static LogTarget log_target = LOG_TARGET_AUTO;
static int log_max_level = LOG_INFO;
static const char *log_identifier = NULL;
static int journal_stream_checked = -1; /* -1 unknown, 0 no, 1 yes */

static const char *const log_target_table[_LOG_TARGET_MAX] = {
        [LOG_TARGET_AUTO] = "auto",
        [LOG_TARGET_JOURNAL] = "journal",
        [LOG_TARGET_CONSOLE] = "console",
};

DEFINE_STRING_TABLE(log_target, LogTarget, _LOG_TARGET_MAX);

static const char *const log_level_table[] = {
        [LOG_EMERG] = "emerg",   [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
        [LOG_ERR] = "err",       [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",     [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(log_level_table); i++)
                if (streq(log_level_table[i], s))
                        return (int) i;
        if (streq(s, "error"))
                return LOG_ERR;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == 0)
                return s[0] - '0';
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        if (level < 0 || (size_t) level >= ELEMENTSOF(log_level_table))
                return NULL;
        return log_level_table[level];
}

void log_set_target(LogTarget target) {
        log_target = target;
}

LogTarget log_get_target(void) {
        return log_target;
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

void log_set_identifier(const char *ident) {
        log_identifier = ident;
}

/* stderr is connected to the journal when JOURNAL_STREAM names its device and inode (systemd sets this
 * for services with StandardError=journal). */
static bool stderr_is_journal(void) {
        const char *e;
        unsigned long long dev, ino;
        struct stat st;

        if (journal_stream_checked >= 0)
                return journal_stream_checked;

        journal_stream_checked = 0;
        e = getenv("JOURNAL_STREAM");
        if (e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) >= 0 &&
            (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino)
                journal_stream_checked = 1;

        return journal_stream_checked;
}

LogTarget log_get_effective_target(void) {
        if (log_target != LOG_TARGET_AUTO)
                return log_target;
        return stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_CONSOLE;
}

static int log_to_journal(int level, int error, const char *const *fields, const char *file, int line,
                          const char *func, const char *msg) {
#define LOG_MAX_FIELDS 16
        struct iovec iov[8 + LOG_MAX_FIELDS];
        char *prio = NULL, *cfile = NULL, *cline = NULL, *cfunc = NULL, *errnostr = NULL, *ident = NULL;
        _cleanup_free_ char *m = NULL;
        size_t n = 0;
        int r;

        if (asprintf(&m, "MESSAGE=%s", msg) < 0)
                return -ENOMEM;
        iov[n++] = (struct iovec) { m, strlen(m) };

        if (asprintf(&prio, "PRIORITY=%i", level) >= 0)
                iov[n++] = (struct iovec) { prio, strlen(prio) };
        if (asprintf(&cfile, "CODE_FILE=%s", file) >= 0)
                iov[n++] = (struct iovec) { cfile, strlen(cfile) };
        if (asprintf(&cline, "CODE_LINE=%i", line) >= 0)
                iov[n++] = (struct iovec) { cline, strlen(cline) };
        if (asprintf(&cfunc, "CODE_FUNC=%s", func) >= 0)
                iov[n++] = (struct iovec) { cfunc, strlen(cfunc) };
        if (error != 0 && asprintf(&errnostr, "ERRNO=%i", abs(error)) >= 0)
                iov[n++] = (struct iovec) { errnostr, strlen(errnostr) };
        if (log_identifier && asprintf(&ident, "SYSLOG_IDENTIFIER=%s", log_identifier) >= 0)
                iov[n++] = (struct iovec) { ident, strlen(ident) };

        for (const char *const *f = fields; f && *f && n < ELEMENTSOF(iov); f++)
                iov[n++] = (struct iovec) { (void *) *f, strlen(*f) };

        r = sd_journal_sendv(iov, (int) n);

        free(prio);
        free(cfile);
        free(cline);
        free(cfunc);
        free(errnostr);
        free(ident);
        return r;
}

static void log_to_console(int level, const char *const *fields, const char *msg) {
        const char *vm = NULL;

        for (const char *const *f = fields; f && *f; f++) {
                const char *v = startswith(*f, "VM=");
                if (v)
                        vm = v;
        }

        fprintf(stderr, "%s%s%s%s%s%s%s\n",
                log_identifier ?: "", log_identifier ? ": " : "",
                level <= LOG_ERR ? "error: " : level == LOG_WARNING ? "warning: " : "",
                vm ? "[" : "", vm ?: "", vm ? "] " : "",
                msg);
}

int log_internal(int level, int error, const char *const *fields,
                 const char *file, int line, const char *func,
                 const char *format, ...) {
        char buf[LINE_MAX * 2];
        int saved_errno = errno;
        va_list ap;

        if (level > log_max_level)
                return -abs(error);

        errno = abs(error);
        va_start(ap, format);
        (void) vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);

        if (log_get_effective_target() == LOG_TARGET_JOURNAL) {
                if (log_to_journal(level, error, fields, file, line, func, buf) < 0)
                        log_to_console(level, fields, buf);
        } else
                log_to_console(level, fields, buf);

        errno = saved_errno;
        return -abs(error);
}
