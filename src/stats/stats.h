/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Statistics on arrays of doubles, for experiment results: a summary of one sample (stats_summary()) and the
 * comparison of two (stats_mann_whitney(), stats_cliffs_delta(), stats_bootstrap_median_ratio()) with the Holm
 * correction across several comparisons (stats_holm()). Pure functions: no state, no logging, inputs never
 * modified; each allocates at most a scratch copy of its input (freed before returning). Every value must be
 * finite: a NaN or an infinity anywhere gives -EINVAL. A sample holds at most STATS_N_MAX values (-E2BIG).
 *
 * The definitions are those of numpy 1.24 / scipy 1.10 (Debian 12) and are checked against them by
 * tests/unit/stats/test-stats-scipy.py on many random data sets (normal, lognormal, heavy ties, n = 1..40):
 *   - quantiles: numpy.percentile(x, 100 p, method='linear'), i.e. Hyndman & Fan (1996) type 7;
 *   - standard deviation: numpy.std(x, ddof=1), the sample standard deviation;
 *   - the median's confidence interval: the exact distribution-free order-statistic interval (binomial, p = ½),
 *     e.g. Conover, Practical Nonparametric Statistics (1999), section 3.2, coverage from scipy.stats.binom;
 *   - Mann–Whitney: scipy.stats.mannwhitneyu(x, y, use_continuity=True, alternative='two-sided',
 *     method='auto');
 *   - Holm: statsmodels.stats.multitest.multipletests(p, method='holm')[1].
 * Returns: 0 or a negative errno (-EINVAL, -E2BIG, -ENODATA for an empty sample, -ENOMEM, -EDOM where said). */

#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_N_MAX ((size_t) 1 << 20)          /* values in one sample */
#define STATS_RESAMPLES_MAX ((size_t) 1 << 20)  /* bootstrap resamples */
#define STATS_MWU_EXACT_MAX_N 8                 /* scipy's 'auto': exact when min(n1, n2) <= 8 and no ties */

/* Summary of one sample of n values x[0..n-1]; x_(1) <= … <= x_(n) are the values sorted. */
typedef struct StatsSummary {
        size_t n;
        double min, max;
        double mean;                    /* the arithmetic mean, summed with Neumaier's compensation */
        bool has_stddev;                /* n >= 2 */
        double stddev;                  /* sqrt(Σ (x_i − mean)² / (n − 1)); NaN when !has_stddev */
        double median;                  /* the 0.5 quantile (type 7: the mean of the two middle values for even n) */
        double p5, p95;                 /* the 0.05 and 0.95 quantiles, type 7 (stats_quantile_sorted()) */
        /* The 95 % confidence interval of the median (stats_median_ci_ranks()): [x_(lo), x_(hi)], its exact
         * coverage, and false (NaN bounds, ranks 0) when n < 6, where no order-statistic interval reaches 95 %. */
        bool has_median_ci;
        double median_ci_low, median_ci_high;
        size_t median_ci_low_rank, median_ci_high_rank;         /* lo and hi, 1-based ranks */
        double median_ci_coverage;                              /* P(lo <= K <= n − lo), K ~ Binomial(n, ½) */
} StatsSummary;

/* stats_summary(): fills *ret with the summary of x[0..n-1] (see StatsSummary for each figure). -ENODATA when
 * n == 0, -EINVAL for a NaN or an infinite value. */
int stats_summary(const double *x, size_t n, StatsSummary *ret);

/* stats_quantile_sorted(): the p quantile (0 <= p <= 1) of sorted[0..n-1] (ascending, n >= 1) by Hyndman & Fan
 * type 7, numpy's default 'linear' method: h = (n − 1) p, j = ⌊h⌋, g = h − j, Q = x_j + g (x_{j+1} − x_j) with
 * 0-based x_j (Q = x_j when g = 0), evaluated as numpy does (b − (b − a)(1 − g) when g >= ½). Returns NaN for
 * n == 0 or p outside [0, 1]. */
double stats_quantile_sorted(const double *sorted, size_t n, double p);

/* stats_median_ci_ranks(): the distribution-free confidence interval of the median of n values at confidence
 * level `level` (0 < level < 1): the ranks lo <= hi = n + 1 − lo of the narrowest symmetric interval
 * [x_(lo), x_(hi)] whose coverage P(lo <= K <= n − lo) = 1 − 2 P(K <= lo − 1), K ~ Binomial(n, ½), is at least
 * `level` (the largest such lo). The coverage is exact (for n values from any continuous distribution, the
 * interval contains the population median with that probability) and is returned in *ret_coverage. -EDOM when no
 * lo >= 1 reaches the level (for 95 %: n < 6), -EINVAL for a level outside (0, 1) or n > STATS_N_MAX. */
int stats_median_ci_ranks(size_t n, double level, size_t *ret_lo, size_t *ret_hi, double *ret_coverage);

/* stats_binomial_half_cdf(): P(K <= k) for K ~ Binomial(n, ½), summed from the smaller tail in log space
 * (lgamma), to about 1e-13 relative. */
double stats_binomial_half_cdf(size_t n, size_t k);

typedef enum StatsMwuMethod {
        STATS_MWU_EXACT,
        STATS_MWU_ASYMPTOTIC,
        _STATS_MWU_METHOD_MAX,
        _STATS_MWU_METHOD_INVALID = -22,
} StatsMwuMethod;

const char *stats_mwu_method_to_string(StatsMwuMethod m);

typedef struct StatsMannWhitney {
        double u1;              /* U of x (scipy's statistic): R_x − nx (nx + 1) / 2 = #(x_i > y_j) + ½ #(x_i = y_j) */
        double u2;              /* U of y: n_x n_y − u1 */
        double p;               /* two-sided p-value, in [0, 1] */
        StatsMwuMethod method;
        double z;               /* ASYMPTOTIC: the continuity-corrected z below; NaN for EXACT */
        bool ties;              /* some value occurs more than once in x ∪ y */
} StatsMannWhitney;

/* stats_mann_whitney(): the two-sided Mann–Whitney U test of x[0..nx-1] against y[0..ny-1], as
 * scipy.stats.mannwhitneyu(x, y, use_continuity=True, alternative='two-sided', method='auto'). With
 * U = max(u1, u2):
 *   - EXACT when min(nx, ny) <= 8 and no value occurs twice in x ∪ y: p = min(1, 2 P(U' >= U)) with U' the null
 *     distribution of U for sizes (nx, ny), all C(nx + ny, nx) rankings equally likely (its frequencies are the
 *     coefficients of the Gaussian binomial [nx + ny choose nx]_q, computed by Harding's (1984) recurrence in
 *     doubles: exact while they stay below 2^53, otherwise to about 1e-15 relative to the total; it takes
 *     O(min(nx, ny) · nx ny / 2) steps and a scratch array of at most 4 max(nx, ny) + 1 doubles);
 *   - ASYMPTOTIC otherwise: z = (U − nx ny / 2 − ½) / σ with the tie-corrected
 *     σ = sqrt(nx ny / 12 · ((N + 1) − Σ (t³ − t) / (N (N − 1)))), N = nx + ny, t running over the sizes of the
 *     groups of equal values; p = min(1, 2 (1 − Φ(z))) = min(1, erfc(z / √2)); σ = 0 (every value equal) gives
 *     p = 1.
 * -ENODATA when nx or ny is 0. */
int stats_mann_whitney(const double *x, size_t nx, const double *y, size_t ny, StatsMannWhitney *ret);

/* stats_cliffs_delta(): Cliff's delta of x against y, δ = (#(x_i > y_j) − #(x_i < y_j)) / (nx ny), in [−1, 1];
 * positive when x tends to be larger. Exact (computed from the rank sum: δ = 2 u1 / (nx ny) − 1). -ENODATA when
 * nx or ny is 0. */
int stats_cliffs_delta(const double *x, size_t nx, const double *y, size_t ny, double *ret);

/* stats_holm(): Holm's (1979) step-down adjusted p-values of p[0..m-1] (each in [0, 1]): with p_(1) <= … <= p_(m)
 * sorted (ties kept in input order), p̃_(i) = min(1, max_{j <= i} (m − j + 1) p_(j)); written to
 * ret_adjusted[0..m-1] in the input's order. Reject hypothesis i at family-wise level α when p̃_i <= α. m == 0 is
 * allowed (nothing written). -EINVAL for a p outside [0, 1]. */
int stats_holm(const double *p, size_t m, double *ret_adjusted);

/* The pseudo-random generator of the bootstrap: xoshiro256** 1.0 (Blackman & Vigna, 2018), its four state words
 * set from the seed by four successive outputs of splitmix64 (state = seed). stats_rng_below(n) draws an index
 * in [0, n) without bias: draws r until r >= 2^64 mod n, returns r mod n. */
typedef struct StatsRng {
        uint64_t s[4];
} StatsRng;

void stats_rng_seed(StatsRng *rng, uint64_t seed);
uint64_t stats_rng_next(StatsRng *rng);
uint64_t stats_rng_below(StatsRng *rng, uint64_t n);
uint64_t stats_splitmix64(uint64_t *state);

typedef struct StatsBootstrapRatio {
        double ratio;           /* median(y) / median(x), the point estimate */
        double low, high;       /* the percentile interval */
        double level;           /* 0.95 */
        uint64_t seed;
        size_t resamples;
} StatsBootstrapRatio;

/* stats_bootstrap_median_ratio(): a percentile-bootstrap 95 % confidence interval of median(y) / median(x)
 * (medians as in StatsSummary). With the generator seeded by `seed` (stats_rng_seed()), each of the `resamples`
 * (1 <= resamples <= STATS_RESAMPLES_MAX) resamples draws nx indices into x with replacement
 * (stats_rng_below(nx)), then ny indices into y, and gives r_b = median(y*) / median(x*); low and high are the
 * 0.025 and 0.975 type-7 quantiles of r_1 … r_B (stats_quantile_sorted()). The same inputs and seed always give
 * the same interval. -EDOM when median(x) or the median of some resample of x is 0 (the ratio is undefined);
 * -ENODATA when nx or ny is 0. */
int stats_bootstrap_median_ratio(const double *x, size_t nx, const double *y, size_t ny, uint64_t seed,
                                 size_t resamples, StatsBootstrapRatio *ret);
/* The same, returning -ECANCELED as soon as *cancelled (may be NULL) is set: checked before each resample, so that
 * a caller on another thread stops it within one resample. */
int stats_bootstrap_median_ratio_cancellable(const double *x, size_t nx, const double *y, size_t ny, uint64_t seed,
                                             size_t resamples, atomic_bool *cancelled, StatsBootstrapRatio *ret);
