/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What stats.c and stats-compare.c share; not part of the API. */

#include "stats/stats.h"

/* 0, -ENODATA (n == 0), -E2BIG (n > STATS_N_MAX) or -EINVAL (NULL, NaN, infinity). */
int stats_check_sample(const double *x, size_t n);
void stats_sort(double *x, size_t n);
/* The median of sorted[0..n-1], n >= 1, as numpy.median. */
double stats_median_sorted(const double *sorted, size_t n);
