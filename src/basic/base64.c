/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "basic/base64.h"

static const char table[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of a base64 character, or -1. */
static int unbase64(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

size_t base64_encoded_size(size_t n) {
        size_t groups = n / 3 + (n % 3 != 0);

        if (groups > SIZE_MAX / 4)
                return SIZE_MAX;
        return groups * 4;
}

char *base64_encode(const void *p, size_t n) {
        const uint8_t *in = p;
        size_t l = base64_encoded_size(n);
        char *out, *o;

        if (l == SIZE_MAX) {
                errno = ENOMEM;
                return NULL;
        }
        out = malloc(l + 1);
        if (!out)
                return NULL;

        o = out;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) in[i] << 16;
                size_t k = MIN(n - i, (size_t) 3);

                if (k > 1)
                        v |= (uint32_t) in[i + 1] << 8;
                if (k > 2)
                        v |= in[i + 2];
                *o++ = table[(v >> 18) & 63];
                *o++ = table[(v >> 12) & 63];
                *o++ = k > 1 ? table[(v >> 6) & 63] : '=';
                *o++ = k > 2 ? table[v & 63] : '=';
        }
        *o = 0;
        return out;
}

int base64_decode(const char *s, size_t l, size_t max_size, char **ret, size_t *ret_size) {
        _cleanup_free_ char *out = NULL;
        size_t pad = 0, n, o = 0;

        if (l % 4 != 0)
                return -EINVAL;
        if (l > 0 && s[l - 1] == '=')
                pad = (l > 1 && s[l - 2] == '=') ? 2 : 1;
        n = l / 4 * 3 - pad;
        if (n > max_size)
                return -EFBIG;

        out = malloc(n + 1);
        if (!out)
                return -ENOMEM;

        for (size_t i = 0; i < l; i += 4) {
                bool last = i + 4 == l;
                size_t chars = last ? 4 - pad : 4;       /* significant characters in this group */
                uint32_t v = 0;

                for (size_t k = 0; k < 4; k++) {
                        int d;

                        if (k >= chars) {       /* padding, only in the last group (checked above) */
                                if (s[i + k] != '=')
                                        return -EINVAL;
                                v <<= 6;
                                continue;
                        }
                        d = unbase64(s[i + k]);
                        if (d < 0)
                                return -EINVAL;
                        v = (v << 6) | (uint32_t) d;
                }

                /* Canonical: the bits beyond the last whole byte are zero. */
                if ((chars == 2 && (v & 0xFFFF) != 0) || (chars == 3 && (v & 0xFF) != 0))
                        return -EINVAL;
                if (chars < 2)
                        return -EINVAL;

                out[o++] = (char) (v >> 16);
                if (chars > 2)
                        out[o++] = (char) (v >> 8);
                if (chars > 3)
                        out[o++] = (char) v;
        }

        out[o] = 0;
        *ret = TAKE_PTR(out);
        if (ret_size)
                *ret_size = o;
        return 0;
}
