/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>

#include "basic/utf8.h"

bool utf8_is_valid_text(const char *s, size_t n) {
        const unsigned char *p = (const unsigned char *) s, *end = p + n;

        while (p < end) {
                unsigned char c = *p;
                uint32_t cp, min;
                size_t len;

                if (c == 0)
                        return false;
                if (c < 0x80) {
                        p++;
                        continue;
                }
                if ((c & 0xE0) == 0xC0) {
                        len = 2, cp = c & 0x1F, min = 0x80;
                } else if ((c & 0xF0) == 0xE0) {
                        len = 3, cp = c & 0x0F, min = 0x800;
                } else if ((c & 0xF8) == 0xF0) {
                        len = 4, cp = c & 0x07, min = 0x10000;
                } else
                        return false;   /* a continuation byte first, or 0xF8..0xFF */
                if ((size_t) (end - p) < len)
                        return false;
                for (size_t i = 1; i < len; i++) {
                        if ((p[i] & 0xC0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i] & 0x3F);
                }
                if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                        return false;
                p += len;
        }
        return true;
}
