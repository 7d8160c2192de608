/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Human numbers (ctl-units.c), shared by show, compare and plot. */

#include <stddef.h>

/* The unit a value is shown in: us → ms or s, ns → us, ms or s, bytes → KiB, MiB, GiB (and per second); pages
 * and counts as they are. */
typedef struct Scale {
        const char *unit;
        double factor;
        int decimals;           /* for the numbers of a row: 1 from 100 up, 2 from 10, 3 below */
} Scale;

/* The scale for a value v of a counter's unit (experiment_counter_unit()). */
Scale pick_scale(const char *unit, double v);
/* v in scale s ("81.2"; "-" for a value that is not finite). */
const char *format_scaled(char *buf, size_t l, double v, const Scale *s);
/* "81.2ms", "64.0MiB", "3": a value with its unit chosen for it. */
const char *format_value(char *buf, size_t l, const char *unit, double v);
