/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Two samples compared: the Mann–Whitney U test, Cliff's delta, the bootstrap interval of the ratio of medians with
 * its generator, and the Holm correction across comparisons (stats.h says exactly what each computes). */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"
#include "stats/stats-internal.h"

static const char *const mwu_method_table[_STATS_MWU_METHOD_MAX] = {
        [STATS_MWU_EXACT] = "exact",
        [STATS_MWU_ASYMPTOTIC] = "asymptotic",
};

const char *stats_mwu_method_to_string(StatsMwuMethod m) {
        if (m < 0 || m >= _STATS_MWU_METHOD_MAX)
                return NULL;
        return mwu_method_table[m];
}

typedef struct Tagged {
        double v;
        bool from_x;
} Tagged;

static int cmp_tagged(const void *a, const void *b) {
        double x = ((const Tagged *) a)->v, y = ((const Tagged *) b)->v;

        return (x > y) - (x < y);
}

static int check_two(const double *x, size_t nx, const double *y, size_t ny) {
        int r;

        r = stats_check_sample(x, nx);
        if (r < 0)
                return r;
        return stats_check_sample(y, ny);
}

/* The rank sum of x in x ∪ y (mid-ranks for ties) turned into u1, with Σ (t³ − t) over the groups of equal values
 * and whether there is any such group. */
static int rank_u1(const double *x, size_t nx, const double *y, size_t ny, double *ret_u1, double *ret_tie_term,
                   bool *ret_ties) {
        _cleanup_free_ Tagged *all = NULL;
        size_t n = nx + ny;
        double rx = 0.0, tie_term = 0.0;
        bool ties = false;

        all = malloc(n * sizeof(Tagged));
        if (!all)
                return -ENOMEM;
        for (size_t i = 0; i < nx; i++)
                all[i] = (Tagged) { .v = x[i], .from_x = true };
        for (size_t j = 0; j < ny; j++)
                all[nx + j] = (Tagged) { .v = y[j], .from_x = false };
        qsort(all, n, sizeof(Tagged), cmp_tagged);

        for (size_t i = 0; i < n;) {
                size_t j = i, in_x = 0;
                double t, rank;

                while (j < n && all[j].v == all[i].v) {
                        in_x += all[j].from_x;
                        j++;
                }
                /* positions i+1 … j (1-based) share the mid-rank (i + 1 + j) / 2, a multiple of ½: exact */
                rank = ((double) i + 1.0 + (double) j) / 2.0;
                rx += rank * (double) in_x;
                t = (double) (j - i);
                if (j - i > 1) {
                        ties = true;
                        tie_term += t * t * t - t;
                }
                i = j;
        }

        *ret_u1 = rx - (double) nx * ((double) nx + 1.0) / 2.0;
        *ret_tie_term = tie_term;
        *ret_ties = ties;
        return 0;
}

/* P(U' <= kc) under the null for sizes m <= n: the frequencies of U' = 0 … kc are the first coefficients of the
 * Gaussian binomial [n + m choose m]_q = Π_{i=1..m} (1 − q^{n+i}) / (1 − q^i) (Harding 1984), built factor by
 * factor, each series truncated at degree kc (valid since every factor's constant term is 1): dividing by
 * (1 − q^i) first keeps every intermediate coefficient non-negative. Divided by the total C(n + m, m). */
static int mwu_exact_cdf(size_t m, size_t n, size_t kc, double *ret) {
        _cleanup_free_ double *c = NULL;
        double total = 1.0, sum = 0.0;

        c = calloc(kc + 1, sizeof(double));
        if (!c)
                return -ENOMEM;
        c[0] = 1.0;
        for (size_t i = 1; i <= m; i++) {
                for (size_t j = i; j <= kc; j++)
                        c[j] += c[j - i];
                for (size_t j = kc; j >= n + i && j <= kc; j--)
                        c[j] -= c[j - (n + i)];
                total = total * (double) (n + i) / (double) i;
        }
        for (size_t u = 0; u <= kc; u++)
                sum += c[u];
        *ret = sum / total;
        return 0;
}

int stats_mann_whitney(const double *x, size_t nx, const double *y, size_t ny, StatsMannWhitney *ret) {
        StatsMannWhitney w = {};
        double u1, tie_term, big, mn;
        bool ties;
        int r;

        if (!ret)
                return -EINVAL;
        r = check_two(x, nx, y, ny);
        if (r < 0)
                return r;
        r = rank_u1(x, nx, y, ny, &u1, &tie_term, &ties);
        if (r < 0)
                return r;

        mn = (double) nx * (double) ny;
        w.u1 = u1;
        w.u2 = mn - u1;
        w.ties = ties;
        big = MAX(w.u1, w.u2);

        if (MIN(nx, ny) <= STATS_MWU_EXACT_MAX_N && !ties) {
                double cdf;

                /* P(U' >= U) = P(U' <= nx ny − U) by symmetry; U is an integer here (no ties) */
                w.method = STATS_MWU_EXACT;
                w.z = NAN;
                r = mwu_exact_cdf(MIN(nx, ny), MAX(nx, ny), (size_t) (mn - big), &cdf);
                if (r < 0)
                        return r;
                w.p = MIN(1.0, 2.0 * cdf);
        } else {
                double n = (double) (nx + ny);
                double s = sqrt(mn / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0))));
                double num = big - mn / 2.0 - 0.5;

                w.method = STATS_MWU_ASYMPTOTIC;
                if (s > 0.0) {
                        w.z = num / s;
                        w.p = MIN(1.0, erfc(w.z / M_SQRT2));
                } else {
                        /* every value equal: U = nx ny / 2, num = −½, z = −∞ (scipy: p = 2 → clipped to 1) */
                        w.z = -INFINITY;
                        w.p = 1.0;
                }
        }
        w.p = MAX(0.0, w.p);

        *ret = w;
        return 0;
}

int stats_cliffs_delta(const double *x, size_t nx, const double *y, size_t ny, double *ret) {
        double u1, tie_term, mn;
        bool ties;
        int r;

        if (!ret)
                return -EINVAL;
        r = check_two(x, nx, y, ny);
        if (r < 0)
                return r;
        r = rank_u1(x, nx, y, ny, &u1, &tie_term, &ties);
        if (r < 0)
                return r;

        /* u1 = #gt + ½ #eq and #gt + #eq + #lt = nx ny, so #gt − #lt = 2 u1 − nx ny (exact: integers) */
        mn = (double) nx * (double) ny;
        *ret = (2.0 * u1 - mn) / mn;
        return 0;
}

typedef struct Indexed {
        double p;
        size_t i;
} Indexed;

static int cmp_indexed(const void *a, const void *b) {
        const Indexed *x = a, *y = b;

        if (x->p != y->p)
                return x->p < y->p ? -1 : 1;
        return (x->i > y->i) - (x->i < y->i);
}

int stats_holm(const double *p, size_t m, double *ret_adjusted) {
        _cleanup_free_ Indexed *s = NULL;
        double running = 0.0;

        if (m == 0)
                return 0;
        if (!p || !ret_adjusted)
                return -EINVAL;
        if (m > STATS_N_MAX)
                return -E2BIG;
        for (size_t i = 0; i < m; i++)
                if (!(p[i] >= 0.0 && p[i] <= 1.0))
                        return -EINVAL;

        s = malloc(m * sizeof(Indexed));
        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < m; i++)
                s[i] = (Indexed) { .p = p[i], .i = i };
        qsort(s, m, sizeof(Indexed), cmp_indexed);

        for (size_t k = 0; k < m; k++) {
                /* the (k+1)-th smallest is multiplied by m − k; the running maximum keeps the order monotone */
                running = MAX(running, (double) (m - k) * s[k].p);
                ret_adjusted[s[k].i] = MIN(1.0, running);
        }
        return 0;
}

uint64_t stats_splitmix64(uint64_t *state) {
        uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

void stats_rng_seed(StatsRng *rng, uint64_t seed) {
        uint64_t sm = seed;

        for (size_t i = 0; i < ELEMENTSOF(rng->s); i++)
                rng->s[i] = stats_splitmix64(&sm);
}

static uint64_t rotl(uint64_t x, int k) {
        return (x << k) | (x >> (64 - k));
}

uint64_t stats_rng_next(StatsRng *rng) {
        uint64_t *s = rng->s;
        uint64_t result = rotl(s[1] * 5, 7) * 9;
        uint64_t t = s[1] << 17;

        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
}

uint64_t stats_rng_below(StatsRng *rng, uint64_t n) {
        uint64_t threshold, r;

        if (n <= 1)
                return 0;
        threshold = (0 - n) % n;        /* 2^64 mod n: rejecting r < threshold leaves a multiple of n values */
        do
                r = stats_rng_next(rng);
        while (r < threshold);
        return r % n;
}

int stats_bootstrap_median_ratio(const double *x, size_t nx, const double *y, size_t ny, uint64_t seed,
                                 size_t resamples, StatsBootstrapRatio *ret) {
        return stats_bootstrap_median_ratio_cancellable(x, nx, y, ny, seed, resamples, NULL, ret);
}

int stats_bootstrap_median_ratio_cancellable(const double *x, size_t nx, const double *y, size_t ny, uint64_t seed,
                                             size_t resamples, atomic_bool *cancelled, StatsBootstrapRatio *ret) {
        _cleanup_free_ double *xs = NULL, *ys = NULL, *ratios = NULL;
        StatsRng rng;
        double mx, my;
        int r;

        if (!ret || resamples == 0)
                return -EINVAL;
        if (resamples > STATS_RESAMPLES_MAX)
                return -E2BIG;
        r = check_two(x, nx, y, ny);
        if (r < 0)
                return r;

        xs = malloc(nx * sizeof(double));
        ys = malloc(ny * sizeof(double));
        ratios = malloc(resamples * sizeof(double));
        if (!xs || !ys || !ratios)
                return -ENOMEM;

        memcpy(xs, x, nx * sizeof(double));
        memcpy(ys, y, ny * sizeof(double));
        stats_sort(xs, nx);
        stats_sort(ys, ny);
        mx = stats_median_sorted(xs, nx);
        my = stats_median_sorted(ys, ny);
        if (mx == 0.0)
                return -EDOM;

        stats_rng_seed(&rng, seed);
        for (size_t b = 0; b < resamples; b++) {
                double bx, by;

                if (cancelled && atomic_load_explicit(cancelled, memory_order_relaxed))
                        return -ECANCELED;
                for (size_t i = 0; i < nx; i++)
                        xs[i] = x[stats_rng_below(&rng, nx)];
                for (size_t j = 0; j < ny; j++)
                        ys[j] = y[stats_rng_below(&rng, ny)];
                stats_sort(xs, nx);
                stats_sort(ys, ny);
                bx = stats_median_sorted(xs, nx);
                by = stats_median_sorted(ys, ny);
                if (bx == 0.0)
                        return -EDOM;
                ratios[b] = by / bx;
                if (!isfinite(ratios[b]))
                        return -EDOM;   /* overflow of a huge ratio: no interval to give */
        }
        stats_sort(ratios, resamples);

        *ret = (StatsBootstrapRatio) {
                .ratio = my / mx,
                .low = stats_quantile_sorted(ratios, resamples, 0.025),
                .high = stats_quantile_sorted(ratios, resamples, 0.975),
                .level = 0.95,
                .seed = seed,
                .resamples = resamples,
        };
        return 0;
}
