/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "basic/ini.h"
#include "basic/log.h"
#include "basic/parse.h"
#include "basic/utf8.h"

static char *strstrip(char *s) {
        char *e;

        while (isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                e--;
        *e = 0;
        return s;
}

static int reasonf(char **ret_reason, const char *fmt, ...) _printf_(2, 3);
static int reasonf(char **ret_reason, const char *fmt, ...) {
        va_list ap;

        if (!ret_reason)
                return 0;
        va_start(ap, fmt);
        if (vasprintf(ret_reason, fmt, ap) < 0)
                *ret_reason = NULL;
        va_end(ap);
        return 0;
}

static int errorf(char **ret_error, const char *filename, unsigned line, const char *fmt, ...) _printf_(4, 5);
static int errorf(char **ret_error, const char *filename, unsigned line, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);

        if (ret_error && asprintf(ret_error, "%s:%u: %s", filename, line, msg ?: "out of memory") < 0)
                *ret_error = NULL;
        return 0;
}

static const IniItem *find_item(const IniItem *items, const char *section, const char *key, bool *ret_section_known) {
        bool known = false;

        for (const IniItem *i = items; i->section; i++) {
                if (!streq(i->section, section))
                        continue;
                known = true;
                if (streq(i->key, key))
                        return i;
        }
        *ret_section_known = known;
        return NULL;
}

static bool section_known(const IniItem *items, const char *section) {
        for (const IniItem *i = items; i->section; i++)
                if (streq(i->section, section))
                        return true;
        return false;
}

int ini_parse_buffer(const char *filename, const char *buf, const IniItem *items, void *userdata,
                     char **ret_error) {
        _cleanup_free_ char *copy = NULL, *section = NULL, *joined = NULL;
        unsigned line = 0, start_line = 0;
        char *p, *next;
        int r;

        /* Text only: no invalid or overlong UTF-8 and no encoded surrogates. */
        for (const char *l = buf; *l; ) {
                const char *eol = strchrnul(l, '\n');

                line++;
                if (!utf8_is_valid_text(l, (size_t) (eol - l))) {
                        errorf(ret_error, filename, line, "Line is not valid UTF-8 text");
                        return -EINVAL;
                }
                l = *eol ? eol + 1 : eol;
        }
        line = 0;

        copy = strdup(buf);
        if (!copy)
                return -ENOMEM;

        for (p = copy; p; p = next) {
                char *l, *eq, *key, *value;
                size_t len;

                next = strchr(p, '\n');
                if (next)
                        *next++ = 0;
                line++;

                /* Continuation lines: a trailing backslash joins the next line with a space. */
                /* Comment lines are never continued (as in systemd). */
                if (!joined) {
                        const char *q = p;

                        while (isspace((unsigned char) *q))
                                q++;
                        if (*q == '#' || *q == ';')
                                continue;
                }

                len = strlen(p);
                if (len > 0 && p[len - 1] == '\\' && !joined) {
                        p[len - 1] = 0;
                        if (next) {
                                joined = strdup(p);
                                if (!joined)
                                        return -ENOMEM;
                                start_line = line;
                                continue;
                        }
                        /* A continuation on the last line of the file: nothing follows. */
                }
                if (joined) {
                        _cleanup_free_ char *t = NULL;
                        bool cont = len > 0 && p[len - 1] == '\\';

                        if (cont)
                                p[len - 1] = 0;
                        if (asprintf(&t, "%s %s", joined, strstrip(p)) < 0)
                                return -ENOMEM;
                        free(joined);
                        joined = TAKE_PTR(t);
                        if (cont && next)
                                continue;
                        l = strstrip(joined);
                } else {
                        start_line = line;
                        l = strstrip(p);
                }

                if (*l == 0 || *l == '#' || *l == ';')
                        goto next_line;

                if (*l == '[') {
                        size_t n = strlen(l);

                        if (n < 3 || l[n - 1] != ']') {
                                errorf(ret_error, filename, start_line, "Invalid section header '%s'", l);
                                return -EINVAL;
                        }
                        l[n - 1] = 0;
                        if (!section_known(items, l + 1)) {
                                errorf(ret_error, filename, start_line, "Unknown section [%s]", l + 1);
                                return -EINVAL;
                        }
                        r = free_and_strdup(&section, l + 1);
                        if (r < 0)
                                return r;
                        goto next_line;
                }

                eq = strchr(l, '=');
                if (!eq) {
                        errorf(ret_error, filename, start_line, "Expected 'Key=Value', got '%s'", l);
                        return -EINVAL;
                }
                *eq = 0;
                key = strstrip(l);
                value = strstrip(eq + 1);

                if (*key == 0) {
                        errorf(ret_error, filename, start_line, "Missing key before '='");
                        return -EINVAL;
                }
                if (!section) {
                        errorf(ret_error, filename, start_line, "Assignment '%s=' outside of any section", key);
                        return -EINVAL;
                }

                {
                        _cleanup_free_ char *reason = NULL;
                        bool known;
                        const IniItem *item = find_item(items, section, key, &known);

                        if (!item) {
                                errorf(ret_error, filename, start_line, "Unknown key '%s' in section [%s]", key, section);
                                return -EINVAL;
                        }

                        r = item->parse(key, value, (uint8_t *) userdata + item->offset, item->aux, &reason);
                        if (r < 0) {
                                if (r == -ENOMEM)
                                        return r;
                                errorf(ret_error, filename, start_line, "Invalid value '%s' for %s=: %s",
                                       value, key, reason ?: strerror(-r));
                                return r;
                        }
                }

        next_line:
                joined = mfree(joined);
        }

        return 0;
}

int ini_parse_file(const char *path, const IniItem *items, void *userdata, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r;

        r = read_full_file(path, INI_FILE_MAX, &buf, &size);
        if (r == -ENOENT)
                return r;
        if (r < 0) {
                errorf(ret_error, path, 0, "Failed to read file: %s", strerror(-r));
                return r;
        }
        if (strlen(buf) != size) {
                errorf(ret_error, path, 0, "File contains a NUL byte");
                return -EINVAL;
        }

        return ini_parse_buffer(path, buf, items, userdata, ret_error);
}

unsigned ini_file_key_line(const char *path, const char *section, const char *key) {
        _cleanup_free_ char *buf = NULL;
        unsigned line = 0, found = 0;
        bool in_section = false;
        size_t size, kl = strlen(key), sl = strlen(section);

        if (read_full_file(path, INI_FILE_MAX, &buf, &size) < 0)
                return 0;
        for (char *p = buf, *eol; p && *p; p = eol ? eol + 1 : NULL) {
                eol = strchr(p, '\n');
                if (eol)
                        *eol = 0;
                line++;
                while (*p == ' ' || *p == '\t')
                        p++;
                if (*p == '[')
                        in_section = strncmp(p + 1, section, sl) == 0 && p[1 + sl] == ']';
                else if (in_section && strncmp(p, key, kl) == 0) {
                        const char *q = p + kl;

                        while (*q == ' ' || *q == '\t')
                                q++;
                        if (*q == '=')
                                found = line;
                }
        }
        return found;
}

int ini_parse_string(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        char **s = data;

        return free_and_strdup(s, isempty(value) ? NULL : value);
}

int ini_parse_path(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        char **s = data;

        if (isempty(value))
                return free_and_strdup(s, NULL);
        if (value[0] != '/') {
                reasonf(ret_reason, "not an absolute path");
                return -EINVAL;
        }
        return free_and_strdup(s, value);
}

int ini_parse_bool(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        bool *b = data;
        int r;

        r = parse_boolean(value);
        if (r < 0) {
                reasonf(ret_reason, "expected a boolean (yes/no, true/false, on/off, 1/0)");
                return r;
        }
        *b = r;
        return 0;
}

static int check_range(uint64_t v, const void *aux, char **ret_reason) {
        const IniRange *range = aux;

        if (range && (v < range->min || v > range->max)) {
                reasonf(ret_reason, "out of range %" PRIu64 "…%" PRIu64, range->min, range->max);
                return -ERANGE;
        }
        return 0;
}

int ini_parse_unsigned(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        unsigned *u = data, v;
        int r;

        r = parse_unsigned(value, &v);
        if (r < 0) {
                reasonf(ret_reason, r == -ERANGE ? "number too large" : "expected an unsigned integer");
                return r;
        }
        r = check_range(v, aux, ret_reason);
        if (r < 0)
                return r;
        *u = v;
        return 0;
}

int ini_parse_size(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        uint64_t *u = data, v;
        int r;

        r = parse_size(value, &v);
        if (r < 0) {
                reasonf(ret_reason, r == -ERANGE ? "size too large" : "expected a size such as 4096, 64K, 16M");
                return r;
        }
        r = check_range(v, aux, ret_reason);
        if (r < 0)
                return r;
        *u = v;
        return 0;
}

int ini_parse_sec(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        uint64_t *u = data, v;
        int r;

        r = parse_sec(value, &v);
        if (r < 0) {
                reasonf(ret_reason, r == -ERANGE ? "time span too large" : "expected a time span such as 5s, 100ms, 2min");
                return r;
        }
        r = check_range(v, aux, ret_reason);
        if (r < 0)
                return r;
        *u = v;
        return 0;
}

int ini_parse_mode(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        mode_t *m = data, v;
        int r;

        r = parse_mode(value, &v);
        if (r < 0) {
                reasonf(ret_reason, "expected an octal file mode such as 0660");
                return r;
        }
        *m = v;
        return 0;
}

int ini_parse_log_level(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        int *l = data, v;

        v = log_level_from_string(value);
        if (v < 0) {
                reasonf(ret_reason, "expected one of emerg, alert, crit, err, warning, notice, info, debug");
                return v;
        }
        *l = v;
        return 0;
}
