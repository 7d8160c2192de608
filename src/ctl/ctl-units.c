/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Human numbers for memvisorctl's experiment commands (show, compare, plot's axes). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "basic/macro.h"
#include "ctl/ctl-units.h"

/* The scale for a value of the counter's unit: us → ms or s, ns → us, ms or s, bytes → KiB, MiB, GiB (and per
 * second); pages and counts as they are. */
Scale pick_scale(const char *unit, double v) {
        static const Scale us[] = { { "us", 1 }, { "ms", 1e3 }, { "s", 1e6 } };
        static const Scale ns[] = { { "ns", 1 }, { "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 } };
        static const Scale bytes[] = { { "B", 1 }, { "KiB", 1024.0 }, { "MiB", 1048576.0 }, { "GiB", 1073741824.0 } };
        static const Scale rate[] = { { "B/s", 1 }, { "KiB/s", 1024.0 }, { "MiB/s", 1048576.0 },
                                      { "GiB/s", 1073741824.0 } };
        const Scale *t;
        size_t n, i;
        Scale r;

        if (streq_ptr(unit, "us"))
                t = us, n = ELEMENTSOF(us);
        else if (streq_ptr(unit, "ns"))
                t = ns, n = ELEMENTSOF(ns);
        else if (streq_ptr(unit, "bytes"))
                t = bytes, n = ELEMENTSOF(bytes);
        else if (streq_ptr(unit, "bytes/s"))
                t = rate, n = ELEMENTSOF(rate);
        else
                t = NULL, n = 0;
        for (i = 0; i + 1 < n && fabs(v) >= t[i + 1].factor; i++)
                ;
        r = t ? t[i] : (Scale) { unit ?: "count", 1, 0 };
        r.decimals = fabs(v / r.factor) >= 100 ? 1 : fabs(v / r.factor) >= 10 ? 2 : 3;
        return r;
}

const char *format_scaled(char *buf, size_t l, double v, const Scale *s) {
        double x = v / s->factor;

        if (!isfinite(x))
                snprintf(buf, l, "-");
        else if (s->factor == 1 && x == (double) (int64_t) x && fabs(x) < 1e15)
                snprintf(buf, l, "%" PRIi64, (int64_t) x);
        else
                snprintf(buf, l, "%.*f", s->decimals, x);
        return buf;
}

/* "81.2ms", "64.0MiB", "3": a value with its unit chosen for it. */
const char *format_value(char *buf, size_t l, const char *unit, double v) {
        Scale s = pick_scale(unit, v);
        char n[40];

        format_scaled(n, sizeof(n), v, &s);
        if (streq(s.unit, "count") || streq(s.unit, "pages"))
                snprintf(buf, l, "%s%s", n, streq(s.unit, "pages") ? " pages" : "");
        else
                snprintf(buf, l, "%s%s", n, s.unit);
        return buf;
}

