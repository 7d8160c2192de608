/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>

#include "basic/parse.h"

int parse_boolean(const char *s) {
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off" };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

int parse_uint64(const char *s, uint64_t *ret) {
        unsigned long long v;
        char *end;

        if (!s || !isdigit((unsigned char) s[0]))
                return -EINVAL;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno != 0 || *end != 0)
                return -EINVAL;

        *ret = (uint64_t) v;
        return 0;
}

int parse_unsigned(const char *s, unsigned *ret) {
        uint64_t v;
        int r;

        r = parse_uint64(s, &v);
        if (r < 0)
                return r;
        if (v > UINT_MAX)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

int parse_int(const char *s, int *ret) {
        long v;
        char *end;

        if (!s || !(isdigit((unsigned char) s[0]) || (s[0] == '-' && isdigit((unsigned char) s[1]))))
                return -EINVAL;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno == ERANGE || v > INT_MAX || v < INT_MIN)
                return -ERANGE;
        if (errno != 0 || *end != 0)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* Parses "<digits>[.<digits>]" at *p; returns the integer and fractional parts (fraction scaled to 1e9). */
static int parse_decimal(const char **p, uint64_t *ret_int, uint64_t *ret_frac_nano) {
        const char *s = *p;
        uint64_t i = 0, frac = 0, scale = UINT64_C(100000000);

        if (!isdigit((unsigned char) *s))
                return -EINVAL;
        for (; isdigit((unsigned char) *s); s++) {
                uint64_t d = (uint64_t) (*s - '0');

                if (i > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                i = i * 10 + d;
        }
        if (*s == '.') {
                s++;
                if (!isdigit((unsigned char) *s))
                        return -EINVAL;
                for (; isdigit((unsigned char) *s); s++) {
                        frac += (uint64_t) (*s - '0') * scale;
                        scale /= 10;
                }
        }
        *p = s;
        *ret_int = i;
        *ret_frac_nano = frac;
        return 0;
}

static int mul_add_frac(uint64_t i, uint64_t frac_nano, uint64_t factor, uint64_t *ret) {
        uint64_t v, f;

        if (factor != 0 && i > UINT64_MAX / factor)
                return -ERANGE;
        v = i * factor;
        /* frac_nano < 1e9; factor may be up to 2^60: split to avoid overflow */
        f = (uint64_t) ((long double) frac_nano * (long double) factor / 1e9L);
        if (v > UINT64_MAX - f)
                return -ERANGE;
        *ret = v + f;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        static const struct {
                char c;
                uint64_t factor;
        } suffixes[] = {
                { 'K', UINT64_C(1) << 10 }, { 'M', UINT64_C(1) << 20 }, { 'G', UINT64_C(1) << 30 },
                { 'T', UINT64_C(1) << 40 }, { 'P', UINT64_C(1) << 50 }, { 'E', UINT64_C(1) << 60 },
        };
        uint64_t i, frac, factor = 1, v;
        const char *p = s;
        int r;

        if (!s)
                return -EINVAL;

        r = parse_decimal(&p, &i, &frac);
        if (r < 0)
                return r;

        if (*p != 0) {
                bool found = false;

                for (size_t k = 0; k < ELEMENTSOF(suffixes); k++)
                        if (toupper((unsigned char) *p) == suffixes[k].c) {
                                factor = suffixes[k].factor;
                                found = true;
                                break;
                        }
                if (found) {
                        p++;
                        if (*p == 'i' && p[1] == 'B')
                                p += 2;
                        else if (*p == 'B')
                                p++;
                } else if (*p == 'B')
                        p++;
                if (*p != 0)
                        return -EINVAL;
        }

        if (factor == 1 && frac != 0)
                return -EINVAL; /* fractions of a byte */

        r = mul_add_frac(i, frac, factor, &v);
        if (r < 0)
                return r;
        *ret = v;
        return 0;
}

int parse_sec(const char *s, uint64_t *ret_usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                /* longest first so "ms" wins over "m" */
                { "usec", 1 }, { "us", 1 }, { "msec", USEC_PER_MSEC }, { "ms", USEC_PER_MSEC },
                { "seconds", USEC_PER_SEC }, { "second", USEC_PER_SEC }, { "sec", USEC_PER_SEC },
                { "s", USEC_PER_SEC }, { "minutes", 60 * USEC_PER_SEC }, { "minute", 60 * USEC_PER_SEC },
                { "min", 60 * USEC_PER_SEC }, { "m", 60 * USEC_PER_SEC }, { "hours", 3600 * USEC_PER_SEC },
                { "hour", 3600 * USEC_PER_SEC }, { "hr", 3600 * USEC_PER_SEC }, { "h", 3600 * USEC_PER_SEC },
        };
        const char *p = s;
        uint64_t total = 0;
        bool any = false;
        int r;

        if (!s)
                return -EINVAL;
        if (streq(s, "infinity")) {
                *ret_usec = USEC_INFINITY;
                return 0;
        }

        for (;;) {
                uint64_t i, frac, factor = USEC_PER_SEC, v;

                while (*p == ' ')
                        p++;
                if (*p == 0)
                        break;

                r = parse_decimal(&p, &i, &frac);
                if (r < 0)
                        return r;

                if (*p != 0 && *p != ' ') {
                        bool found = false;

                        for (size_t k = 0; k < ELEMENTSOF(units); k++) {
                                const char *e = startswith(p, units[k].suffix);
                                if (e && (*e == 0 || *e == ' ' || isdigit((unsigned char) *e))) {
                                        factor = units[k].usec;
                                        p = e;
                                        found = true;
                                        break;
                                }
                        }
                        if (!found)
                                return -EINVAL;
                }

                r = mul_add_frac(i, frac, factor, &v);
                if (r < 0)
                        return r;
                if (v > UINT64_MAX - 1 - total)
                        return -ERANGE;
                total += v;
                any = true;
        }

        if (!any)
                return -EINVAL;
        *ret_usec = total;
        return 0;
}

int parse_mode(const char *s, mode_t *ret) {
        unsigned long v;
        char *end;

        if (!s || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 8);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno != 0 || *end != 0)
                return -EINVAL;
        if (v > 07777)
                return -ERANGE;
        *ret = (mode_t) v;
        return 0;
}

const char *format_size(char *buf, size_t l, uint64_t bytes) {
        static const char suffixes[] = "KMGTPE";

        if (bytes < 1024) {
                snprintf(buf, l, "%" PRIu64 "B", bytes);
                return buf;
        }
        for (int i = (int) strlen(suffixes) - 1; i >= 0; i--) {
                uint64_t f = UINT64_C(1) << (10 * (i + 1));
                if (bytes >= f) {
                        if (bytes % f == 0)
                                snprintf(buf, l, "%" PRIu64 "%c", bytes / f, suffixes[i]);
                        else
                                snprintf(buf, l, "%.1f%c", (double) bytes / (double) f, suffixes[i]);
                        return buf;
                }
        }
        return buf;
}

const char *format_timespan(char *buf, size_t l, uint64_t usec) {
        uint64_t h, m;
        double s;

        if (usec == USEC_INFINITY) {
                snprintf(buf, l, "infinity");
                return buf;
        }
        h = usec / (3600 * USEC_PER_SEC);
        m = (usec / (60 * USEC_PER_SEC)) % 60;
        s = (double) (usec % (60 * USEC_PER_SEC)) / (double) USEC_PER_SEC;

        if (h > 0)
                snprintf(buf, l, "%" PRIu64 "h %" PRIu64 "min %.0fs", h, m, s);
        else if (m > 0)
                snprintf(buf, l, "%" PRIu64 "min %.3gs", m, s);
        else if (usec >= USEC_PER_SEC)
                snprintf(buf, l, "%.3fs", s);
        else if (usec >= USEC_PER_MSEC)
                snprintf(buf, l, "%.3gms", (double) usec / (double) USEC_PER_MSEC);
        else
                snprintf(buf, l, "%" PRIu64 "us", usec);
        return buf;
}
