/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "basic/macro.h"

/* Standard base64 (RFC 4648 section 4: A-Z a-z 0-9 + /, '=' padding), as the QEMU guest agent writes and reads it
 * (glib's g_base64_encode). The decoder is strict because its input is untrusted: no whitespace, no line breaks,
 * length a multiple of 4, padding only at the very end, and the unused bits of the last group zero (the canonical
 * form every encoder writes); anything else is -EINVAL. */

/* The length of the encoding of n bytes (without a NUL), or SIZE_MAX when that does not fit a size_t. */
size_t base64_encoded_size(size_t n);
/* The most bytes an encoding of l characters can decode to. */
static inline size_t base64_decoded_size_max(size_t l) {
        return l / 4 * 3;
}

/* Returns a malloc'ed NUL-terminated encoding of p[0..n), or NULL (errno ENOMEM). */
char *base64_encode(const void *p, size_t n);

/* Decodes s[0..l) into a malloc'ed buffer, NUL-terminated (not counted in *ret_size) so text can be used as a
 * string. -EINVAL: not canonical base64; -EFBIG: it would decode to more than max_size bytes (checked before
 * anything is allocated); -ENOMEM. */
int base64_decode(const char *s, size_t l, size_t max_size, char **ret, size_t *ret_size);
