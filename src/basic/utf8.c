/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "basic/utf8.h"

/* The length of the well-formed multi-byte sequence at p (c = *p >= 0x80) and its code point, or 0. */
static size_t utf8_decode_multi(const unsigned char *p, const unsigned char *end, uint32_t *ret_cp) {
        unsigned char c = *p;
        uint32_t cp, min;
        size_t len;

        if ((c & 0xE0) == 0xC0) {
                len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
                len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
                len = 4, cp = c & 0x07, min = 0x10000;
        } else
                return 0;       /* a continuation byte first, or 0xF8..0xFF */
        if ((size_t) (end - p) < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xC0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        *ret_cp = cp;
        return len;
}

bool utf8_is_valid_text(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s, *end = p + n;

        while (p < end) {
                uint32_t cp;
                size_t len;

                if (*p == 0)
                        return false;
                if (*p < 0x80) {
                        p++;
                        continue;
                }
                len = utf8_decode_multi(p, end, &cp);
                if (len == 0)
                        return false;
                p += len;
        }
        return true;
}

char *utf8_escape_untrusted(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s, *end = p + n;
        char *buf, *o;

        /* At most 6 characters out for each byte in ("\u0085" for the 2 bytes of a C1 control is 3 a byte). */
        if (n > (SIZE_MAX - 1) / 6)
                return NULL;
        buf = o = malloc(n * 6 + 1);
        if (!buf)
                return NULL;

        while (p < end) {
                unsigned char c = *p;
                uint32_t cp;
                size_t len;

                if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f)) {
                        *o++ = (char) c;
                        p++;
                        continue;
                }
                if (c == '\r' && p + 1 < end && p[1] == '\n') {
                        p++;    /* the newline follows */
                        continue;
                }
                if (c < 0x80) {
                        o += sprintf(o, "\\x%02x", c);
                        p++;
                        continue;
                }
                len = utf8_decode_multi(p, end, &cp);
                if (len == 0) {
                        o += sprintf(o, "\\x%02x", c);
                        p++;
                        continue;
                }
                if (cp < 0xA0)
                        o += sprintf(o, "\\u%04x", (unsigned) cp);
                else
                        for (size_t i = 0; i < len; i++)
                                *o++ = (char) p[i];
                p += len;
        }
        *o = 0;
        return buf;
}
