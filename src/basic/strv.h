/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "basic/macro.h"

/* NULL-terminated arrays of malloc'ed strings. */

char **strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
size_t strv_length(char *const *l);
char **strv_copy(char *const *l);
bool strv_contains(char *const *l, const char *s);
/* Appends a copy of s; *l may be NULL. */
int strv_extend(char ***l, const char *s);
/* Appends a formatted string. */
int strv_extendf(char ***l, const char *format, ...) _printf_(2, 3);
/* Takes ownership of s (freed on failure). */
int strv_consume(char ***l, char *s);
bool strv_equal(char *const *a, char *const *b);

/* Shell-like word splitting: whitespace separates words, '…' and "…" quote, backslash escapes the next
 * character (outside single quotes); no expansion of any kind. Unbalanced quotes or a trailing backslash →
 * -EINVAL. */
int strv_split_quoted(const char *s, char ***ret);

/* Quotes a word for display if it contains anything but [A-Za-z0-9_./:=,@%+-]. */
char *shell_quote(const char *s);
