/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..n) is well-formed UTF-8 as RFC 3629 defines it and holds no NUL: no overlong forms, no
 * encoded surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequence. Every string the
 * daemon takes from a peer (varlink parameters, configuration and .vm text) is checked with it. */
bool utf8_is_valid_text(const char *s, size_t n);
