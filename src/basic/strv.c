/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>

#include "basic/strv.h"

char **strv_free(char **l) {
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l) {
        size_t n = 0;

        for (; l && *l; l++)
                n++;
        return n;
}

char **strv_copy(char *const *l) {
        size_t n = strv_length(l);
        char **c = calloc(n + 1, sizeof(char *));

        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                c[i] = strdup(l[i]);
                if (!c[i])
                        return strv_free(c);
        }
        return c;
}

bool strv_contains(char *const *l, const char *s) {
        for (; l && *l; l++)
                if (streq(*l, s))
                        return true;
        return false;
}

int strv_consume(char ***l, char *s) {
        size_t n = strv_length(*l);
        char **t;

        if (!s)
                return -ENOMEM;
        t = realloc(*l, (n + 2) * sizeof(char *));
        if (!t) {
                free(s);
                return -ENOMEM;
        }
        t[n] = s;
        t[n + 1] = NULL;
        *l = t;
        return 0;
}

int strv_extend(char ***l, const char *s) {
        return strv_consume(l, strdup(s));
}

int strv_extendf(char ***l, const char *format, ...) {
        char *s;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        return strv_consume(l, s);
}

bool strv_equal(char *const *a, char *const *b) {
        size_t n = strv_length(a);

        if (n != strv_length(b))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!streq(a[i], b[i]))
                        return false;
        return true;
}

int strv_split_quoted(const char *s, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        _cleanup_free_ char *word = NULL;
        size_t n = 0;
        bool in_word = false;
        char quote = 0;
        int r;

        word = malloc(strlen(s) + 1);
        if (!word)
                return -ENOMEM;

        for (const char *p = s;; p++) {
                char c = *p;

                if (c == 0) {
                        if (quote)
                                return -EINVAL;
                        break;
                }

                if (quote == '\'') {
                        if (c == '\'')
                                quote = 0;
                        else
                                word[n++] = c;
                        continue;
                }

                if (c == '\\') {
                        if (p[1] == 0)
                                return -EINVAL;
                        word[n++] = *++p;
                        in_word = true;
                        continue;
                }

                if (quote == '"') {
                        if (c == '"')
                                quote = 0;
                        else
                                word[n++] = c;
                        continue;
                }

                if (c == '\'' || c == '"') {
                        quote = c;
                        in_word = true;
                        continue;
                }

                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                        if (in_word) {
                                r = strv_consume(&l, strndup(word, n));
                                if (r < 0)
                                        return r;
                                n = 0;
                                in_word = false;
                        }
                        continue;
                }

                word[n++] = c;
                in_word = true;
        }

        if (in_word) {
                r = strv_consume(&l, strndup(word, n));
                if (r < 0)
                        return r;
        }
        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

char *shell_quote(const char *s) {
        static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:=,@%+-";
        size_t n = 0;
        char *r, *p;

        if (*s && strspn(s, safe) == strlen(s))
                return strdup(s);

        for (const char *c = s; *c; c++)
                n += *c == '\'' ? 4 : 1;
        r = malloc(n + 3);
        if (!r)
                return NULL;
        p = r;
        *p++ = '\'';
        for (const char *c = s; *c; c++) {
                if (*c == '\'') {
                        memcpy(p, "'\\''", 4);
                        p += 4;
                } else
                        *p++ = *c;
        }
        *p++ = '\'';
        *p = 0;
        return r;
}
