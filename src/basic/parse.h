/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

#include "basic/macro.h"

/* All parsers reject leading/trailing garbage, signs where unsigned, and overflow (-ERANGE);
 * other malformed input gives -EINVAL. Output parameters are untouched on failure. */

int parse_boolean(const char *s);   /* 1/yes/true/on → 1, 0/no/false/off → 0 */
int parse_uint64(const char *s, uint64_t *ret);
int parse_unsigned(const char *s, unsigned *ret);
int parse_int(const char *s, int *ret);

/* Byte sizes with optional binary suffix: "4096", "16M", "1.5G", "512KiB" (K, M, G, T, P, E; B optional;
 * "iB" spelling accepted; powers of 1024). */
int parse_size(const char *s, uint64_t *ret);

/* Time spans: "5s", "100ms", "2min", "1h", "250us", "1.5s", "1s 500ms"; a bare number is seconds.
 * "infinity" → USEC_INFINITY. */
int parse_sec(const char *s, uint64_t *ret_usec);

/* Octal file mode, at most 07777. */
int parse_mode(const char *s, mode_t *ret);

/* Formats a byte size with binary suffix ("16.0M") into buf. */
const char *format_size(char *buf, size_t l, uint64_t bytes);
#define FORMAT_SIZE_MAX 32
/* Formats a time span ("1min 5.250s") into buf. */
const char *format_timespan(char *buf, size_t l, uint64_t usec);
#define FORMAT_TIMESPAN_MAX 64
