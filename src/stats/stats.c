/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One sample: quantiles, mean, standard deviation, the median's order-statistic confidence interval (stats.h). The
 * comparison of two samples is in stats-compare.c. */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"
#include "stats/stats-internal.h"

int stats_check_sample(const double *x, size_t n) {
        if (n == 0)
                return -ENODATA;
        if (!x)
                return -EINVAL;
        if (n > STATS_N_MAX)
                return -E2BIG;
        for (size_t i = 0; i < n; i++)
                if (!isfinite(x[i]))
                        return -EINVAL;
        return 0;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return (x > y) - (x < y);
}

void stats_sort(double *x, size_t n) {
        qsort(x, n, sizeof(double), cmp_double);
}

double stats_quantile_sorted(const double *sorted, size_t n, double p) {
        double h, g, a, b, d;
        size_t j;

        if (n == 0 || !sorted || !(p >= 0.0 && p <= 1.0))
                return NAN;

        h = (double) (n - 1) * p;
        j = (size_t) floor(h);
        if (j >= n - 1)
                return sorted[n - 1];
        g = h - (double) j;
        a = sorted[j];
        b = sorted[j + 1];
        d = b - a;
        /* numpy's _lerp(): a + d g, or b − d (1 − g) from the upper end when g >= ½ (exact at both ends). */
        return g >= 0.5 ? b - d * (1.0 - g) : a + d * g;
}

double stats_median_sorted(const double *sorted, size_t n) {
        /* numpy.median: the middle value, or the mean of the two middle ones (what type 7 gives at p = ½ too, but
         * computed as numpy does: (a + b) / 2). */
        if (n % 2 == 1)
                return sorted[n / 2];
        return (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
}

/* Neumaier's compensated sum of f(x_i): the mean and the squared deviations to (nearly) the correctly rounded
 * result, whatever the order of the values. */
static double sum_compensated(const double *x, size_t n, double center, bool square) {
        double s = 0.0, c = 0.0;

        for (size_t i = 0; i < n; i++) {
                double v = square ? (x[i] - center) * (x[i] - center) : x[i];
                double t = s + v;

                if (fabs(s) >= fabs(v))
                        c += (s - t) + v;
                else
                        c += (v - t) + s;
                s = t;
        }
        return s + c;
}

double stats_binomial_half_cdf(size_t n, size_t k) {
        double lognorm, sum = 0.0;
        bool upper;
        size_t lo, hi;

        if (k >= n)
                return 1.0;
        /* Sum the smaller side: P(K <= k) directly when k < n/2, else 1 − P(K >= k + 1) = 1 − P(K <= n − k − 1)
         * by symmetry. Terms are exp(log C(n, i) − n log 2), added from the smallest up. */
        upper = 2 * k >= n;
        if (upper) {
                lo = 0;
                hi = n - k - 1;
        } else {
                lo = 0;
                hi = k;
        }
        lognorm = lgamma((double) n + 1.0) - (double) n * M_LN2;
        for (size_t i = lo; i <= hi; i++)
                sum += exp(lognorm - lgamma((double) i + 1.0) - lgamma((double) (n - i) + 1.0));
        return upper ? 1.0 - sum : sum;
}

int stats_median_ci_ranks(size_t n, double level, size_t *ret_lo, size_t *ret_hi, double *ret_coverage) {
        double tail = 0.0, lognorm, coverage = NAN;
        size_t best = 0;

        if (!(level > 0.0 && level < 1.0) || n > STATS_N_MAX)
                return -EINVAL;
        if (n == 0)
                return -EDOM;

        /* Coverage of [x_(lo), x_(n+1−lo)] is 1 − 2 P(K <= lo − 1); it falls as lo grows. Walk lo = 1, 2, … while
         * it stays >= level, accumulating the binomial tail P(K <= lo − 1) term by term. */
        lognorm = lgamma((double) n + 1.0) - (double) n * M_LN2;
        for (size_t lo = 1; 2 * lo <= n + 1; lo++) {
                size_t i = lo - 1;
                double c;

                tail += exp(lognorm - lgamma((double) i + 1.0) - lgamma((double) (n - i) + 1.0));
                c = 1.0 - 2.0 * tail;
                if (c < level)
                        break;
                best = lo;
                coverage = c;
        }
        if (best == 0)
                return -EDOM;

        *ret_lo = best;
        *ret_hi = n + 1 - best;
        *ret_coverage = coverage;
        return 0;
}

int stats_summary(const double *x, size_t n, StatsSummary *ret) {
        _cleanup_free_ double *sorted = NULL;
        StatsSummary s = {};
        size_t lo, hi;
        double coverage;
        int r;

        if (!ret)
                return -EINVAL;
        r = stats_check_sample(x, n);
        if (r < 0)
                return r;

        sorted = malloc(n * sizeof(double));
        if (!sorted)
                return -ENOMEM;
        memcpy(sorted, x, n * sizeof(double));
        stats_sort(sorted, n);

        s.n = n;
        s.min = sorted[0];
        s.max = sorted[n - 1];
        s.mean = sum_compensated(x, n, 0.0, false) / (double) n;
        s.has_stddev = n >= 2;
        s.stddev = s.has_stddev ? sqrt(sum_compensated(x, n, s.mean, true) / (double) (n - 1)) : NAN;
        s.median = stats_median_sorted(sorted, n);
        s.p5 = stats_quantile_sorted(sorted, n, 0.05);
        s.p95 = stats_quantile_sorted(sorted, n, 0.95);

        r = stats_median_ci_ranks(n, 0.95, &lo, &hi, &coverage);
        if (r >= 0) {
                s.has_median_ci = true;
                s.median_ci_low = sorted[lo - 1];
                s.median_ci_high = sorted[hi - 1];
                s.median_ci_low_rank = lo;
                s.median_ci_high_rank = hi;
                s.median_ci_coverage = coverage;
        } else if (r == -EDOM) {
                s.median_ci_low = s.median_ci_high = s.median_ci_coverage = NAN;
        } else
                return r;

        *ret = s;
        return 0;
}
