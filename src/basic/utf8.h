/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..n) is well-formed UTF-8 as RFC 3629 defines it and holds no NUL: no overlong forms, no
 * encoded surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequence. Every string the
 * daemon takes from a peer (varlink parameters, configuration and .vm text) is checked with it. */
bool utf8_is_valid_text(const char *s, size_t n);

/* Makes s[0..n), bytes from an untrusted source (a guest's console), safe to print on a terminal: newlines and
 * tabs stay, "\r\n" becomes "\n", well-formed UTF-8 that is printable stays; every other control character (C0,
 * DEL, C1, so no escape sequence reaches the terminal) is written as \xNN (C1 as \u00NN), and every byte that is
 * not part of well-formed UTF-8 as \xNN. Returns a malloc'ed NUL-terminated string, valid UTF-8 text, or NULL
 * (ENOMEM). */
char *utf8_escape_untrusted(const char *s, size_t n);
