/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* src/stats on small cases worked out by hand (the figures in the comments); test-stats-scipy.py checks the same
 * functions against numpy/scipy on many generated data sets. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>

#include "basic/macro.h"
#include "stats/stats.h"

static bool close_enough(double a, double b) {
        return fabs(a - b) <= 1e-12 * MAX(1.0, fabs(b));
}
#define assert_close(a, b) assert_true(close_enough((a), (b)))

static void test_summary_one_to_ten(void **state) {
        /* 1..10 shuffled: mean 5.5; Σ (x − 5.5)² = 82.5, std = sqrt(82.5 / 9); type 7: p5 at h = 0.45 → 1.45, p95 at
         * h = 8.55 → 9.55. Median CI: P(K <= 0) = 1/1024, P(K <= 1) = 11/1024, P(K <= 2) = 56/1024: lo = 2 has
         * coverage 1 − 22/1024 = 0.978515625, lo = 3 only 1 − 112/1024 = 0.890625: [x_(2), x_(9)] = [2, 9]. */
        const double x[] = { 7, 3, 10, 1, 5, 9, 2, 8, 6, 4 };
        StatsSummary s;

        assert_int_equal(stats_summary(x, ELEMENTSOF(x), &s), 0);
        assert_int_equal(s.n, 10);
        assert_close(s.min, 1);
        assert_close(s.max, 10);
        assert_close(s.mean, 5.5);
        assert_true(s.has_stddev);
        assert_close(s.stddev, sqrt(82.5 / 9.0));
        assert_close(s.median, 5.5);
        assert_close(s.p5, 1.45);
        assert_close(s.p95, 9.55);
        assert_true(s.has_median_ci);
        assert_int_equal(s.median_ci_low_rank, 2);
        assert_int_equal(s.median_ci_high_rank, 9);
        assert_close(s.median_ci_low, 2);
        assert_close(s.median_ci_high, 9);
        assert_close(s.median_ci_coverage, 1.0 - 22.0 / 1024.0);
}

static void test_summary_small(void **state) {
        const double one[] = { 4.25 }, five[] = { 5, 1, 4, 2, 3 }, six[] = { 6, 1, 5, 2, 4, 3 };
        StatsSummary s;

        /* n = 1: every quantile is the value; no standard deviation, no interval */
        assert_int_equal(stats_summary(one, 1, &s), 0);
        assert_false(s.has_stddev);
        assert_true(isnan(s.stddev));
        assert_close(s.median, 4.25);
        assert_close(s.p5, 4.25);
        assert_close(s.p95, 4.25);
        assert_false(s.has_median_ci);
        assert_true(isnan(s.median_ci_low) && isnan(s.median_ci_high) && isnan(s.median_ci_coverage));

        /* n = 5: [x_(1), x_(5)] covers only 1 − 2/32 = 0.9375 < 95 % */
        assert_int_equal(stats_summary(five, 5, &s), 0);
        assert_false(s.has_median_ci);
        assert_int_equal(s.median_ci_low_rank, 0);
        assert_close(s.median, 3);
        assert_close(s.stddev, sqrt(2.5));

        /* n = 6: [x_(1), x_(6)] covers 1 − 2/64 = 0.96875 */
        assert_int_equal(stats_summary(six, 6, &s), 0);
        assert_true(s.has_median_ci);
        assert_int_equal(s.median_ci_low_rank, 1);
        assert_int_equal(s.median_ci_high_rank, 6);
        assert_close(s.median_ci_low, 1);
        assert_close(s.median_ci_high, 6);
        assert_close(s.median_ci_coverage, 0.96875);
        assert_close(s.median, 3.5);
}

static void test_summary_refused(void **state) {
        double x[] = { 1, 2, 3 };
        StatsSummary s = { .n = 77 };

        assert_int_equal(stats_summary(x, 0, &s), -ENODATA);
        x[1] = NAN;
        assert_int_equal(stats_summary(x, 3, &s), -EINVAL);
        x[1] = INFINITY;
        assert_int_equal(stats_summary(x, 3, &s), -EINVAL);
        x[1] = -INFINITY;
        assert_int_equal(stats_summary(x, 3, &s), -EINVAL);
        assert_int_equal(stats_summary(NULL, 3, &s), -EINVAL);
        assert_int_equal(s.n, 77);             /* untouched on failure */
}

static void test_quantile_and_binomial(void **state) {
        const double x[] = { 1, 2 }, y[] = { 10, 20, 30, 40, 50 };
        size_t lo, hi;
        double c;

        assert_close(stats_quantile_sorted(x, 2, 0.5), 1.5);
        assert_close(stats_quantile_sorted(x, 2, 0.0), 1.0);
        assert_close(stats_quantile_sorted(x, 2, 1.0), 2.0);
        assert_close(stats_quantile_sorted(y, 5, 0.3), 22);     /* h = 1.2: 20 + 0.2 · 10 */
        assert_close(stats_quantile_sorted(y, 5, 0.9), 46);     /* h = 3.6: 40 + 0.6 · 10 */
        assert_true(isnan(stats_quantile_sorted(x, 2, 1.5)));
        assert_true(isnan(stats_quantile_sorted(x, 2, NAN)));
        assert_true(isnan(stats_quantile_sorted(x, 0, 0.5)));

        assert_close(stats_binomial_half_cdf(10, 2), 56.0 / 1024.0);
        assert_close(stats_binomial_half_cdf(10, 7), 968.0 / 1024.0);
        assert_close(stats_binomial_half_cdf(10, 10), 1.0);
        assert_close(stats_binomial_half_cdf(1, 0), 0.5);

        assert_int_equal(stats_median_ci_ranks(5, 0.95, &lo, &hi, &c), -EDOM);
        assert_int_equal(stats_median_ci_ranks(5, 0.90, &lo, &hi, &c), 0);     /* 0.9375 >= 90 % */
        assert_int_equal(lo, 1);
        assert_int_equal(hi, 5);
        assert_int_equal(stats_median_ci_ranks(10, 1.0, &lo, &hi, &c), -EINVAL);
        /* large n: the interval narrows around the middle, coverage stays just above 95 % */
        assert_int_equal(stats_median_ci_ranks(1000, 0.95, &lo, &hi, &c), 0);
        assert_true(lo > 460 && lo < 480 && hi == 1001 - lo);
        assert_true(c >= 0.95 && c < 0.96);
}

static void test_mann_whitney_exact(void **state) {
        /* x = {1, 2, 3}, y = {4, 5, 6}: u1 = 0, U = 9, P(U' >= 9) = 1 / C(6, 3) = 1/20, p = 0.1 */
        const double a[] = { 1, 2, 3 }, b[] = { 4, 5, 6 };
        /* x = {1, 3, 5}, y = {2, 4, 6}: u1 = 3, U = 6; U' for 3 + 3 has frequencies 1 1 2 3 3 3 3 2 1 1 (u = 0..9),
         * P(U' >= 6) = 7/20, p = 0.7 */
        const double c[] = { 1, 3, 5 }, d[] = { 2, 4, 6 };
        StatsMannWhitney w;
        double delta;

        assert_int_equal(stats_mann_whitney(a, 3, b, 3, &w), 0);
        assert_int_equal(w.method, STATS_MWU_EXACT);
        assert_false(w.ties);
        assert_close(w.u1, 0);
        assert_close(w.u2, 9);
        assert_close(w.p, 0.1);
        assert_true(isnan(w.z));
        assert_int_equal(stats_cliffs_delta(a, 3, b, 3, &delta), 0);
        assert_close(delta, -1.0);

        assert_int_equal(stats_mann_whitney(c, 3, d, 3, &w), 0);
        assert_close(w.u1, 3);
        assert_close(w.p, 0.7);
        assert_int_equal(stats_cliffs_delta(c, 3, d, 3, &delta), 0);
        assert_close(delta, (3.0 - 6.0) / 9.0);

        /* symmetric: swapping x and y swaps u1/u2, keeps p, negates delta */
        assert_int_equal(stats_mann_whitney(d, 3, c, 3, &w), 0);
        assert_close(w.u1, 6);
        assert_close(w.p, 0.7);
        assert_string_equal(stats_mwu_method_to_string(w.method), "exact");
}

static void test_mann_whitney_asymptotic(void **state) {
        /* x = {1, 1}, y = {1, 2}: ranks 2 2 | 2 4, R_x = 4, u1 = 1, U = 3, μ = 2; ties: Σ (t³ − t) = 24, N = 4:
         * σ = sqrt(4/12 · (5 − 24/12)) = 1, z = (3 − 2 − ½) / 1 = ½, p = 2 (1 − Φ(½)) = 0.61707507745197... */
        const double x[] = { 1, 1 }, y[] = { 1, 2 }, e[] = { 3, 3, 3 };
        StatsMannWhitney w;
        double delta;

        assert_int_equal(stats_mann_whitney(x, 2, y, 2, &w), 0);
        assert_int_equal(w.method, STATS_MWU_ASYMPTOTIC);
        assert_true(w.ties);
        assert_close(w.u1, 1);
        assert_close(w.z, 0.5);
        assert_true(fabs(w.p - 0.6170750774519738) < 1e-14);
        /* Cliff: x > y never, x < y twice (1 < 2), 2 ties: (0 − 2) / 4 */
        assert_int_equal(stats_cliffs_delta(x, 2, y, 2, &delta), 0);
        assert_close(delta, -0.5);

        /* every value equal: σ = 0, p = 1 */
        assert_int_equal(stats_mann_whitney(e, 3, e, 2, &w), 0);
        assert_int_equal(w.method, STATS_MWU_ASYMPTOTIC);
        assert_close(w.p, 1.0);
        assert_true(isinf(w.z) && w.z < 0);

        assert_int_equal(stats_mann_whitney(x, 0, y, 2, &w), -ENODATA);
        assert_int_equal(stats_cliffs_delta(x, 2, y, 0, &delta), -ENODATA);
}

static void test_mann_whitney_large_exact(void **state) {
        /* 8 against 1000 distinct values (exact, one scratch array of 4001 doubles): x all above y gives the
         * smallest p, 2 / C(1008, 8); x interleaved with y gives p near 1 */
        double x[8], y[1000];
        StatsMannWhitney w;

        for (size_t i = 0; i < 1000; i++)
                y[i] = (double) i;
        for (size_t i = 0; i < 8; i++)
                x[i] = 2000.0 + (double) i;
        assert_int_equal(stats_mann_whitney(x, 8, y, 1000, &w), 0);
        assert_int_equal(w.method, STATS_MWU_EXACT);
        assert_true(w.p > 0 && fabs(w.p / (2.0 / 2.5708099169553627e+19) - 1.0) < 1e-6);
        for (size_t i = 0; i < 8; i++)
                x[i] = 62.5 + 125.0 * (double) i;
        assert_int_equal(stats_mann_whitney(x, 8, y, 1000, &w), 0);
        assert_true(fabs(w.p - 0.996659457115633) < 1e-12);   /* scipy 1.10, method='exact' */
}

static void test_holm(void **state) {
        /* sorted 0.01 · 4 = 0.04, 0.03 · 3 = 0.09, 0.04 · 2 = 0.08 → 0.09 (monotone), 0.5 · 1 = 0.5 */
        const double p[] = { 0.01, 0.04, 0.03, 0.5 }, q[] = { 0.5, 0.6 }, bad[] = { 0.1, 1.5 }, nan[] = { NAN };
        double adj[4];

        assert_int_equal(stats_holm(p, 4, adj), 0);
        assert_close(adj[0], 0.04);
        assert_close(adj[1], 0.09);
        assert_close(adj[2], 0.09);
        assert_close(adj[3], 0.5);
        assert_int_equal(stats_holm(q, 2, adj), 0);    /* 0.5 · 2 = 1, capped */
        assert_close(adj[0], 1.0);
        assert_close(adj[1], 1.0);
        assert_int_equal(stats_holm(p, 0, adj), 0);
        assert_int_equal(stats_holm(bad, 2, adj), -EINVAL);
        assert_int_equal(stats_holm(nan, 1, adj), -EINVAL);
}

static void test_rng(void **state) {
        /* reference outputs: splitmix64 from state 0; xoshiro256** from the state {1, 2, 3, 4} */
        StatsRng rng = { .s = { 1, 2, 3, 4 } };
        uint64_t sm = 0, counts[3] = {};

        assert_true(stats_splitmix64(&sm) == UINT64_C(0xe220a8397b1dcdaf));
        assert_true(stats_rng_next(&rng) == 11520);
        assert_true(stats_rng_next(&rng) == 0);
        assert_true(stats_rng_next(&rng) == 1509978240);
        assert_true(stats_rng_next(&rng) == UINT64_C(1215971899390074240));

        stats_rng_seed(&rng, 42);
        for (size_t i = 0; i < 3000; i++) {
                uint64_t v = stats_rng_below(&rng, 3);

                assert_true(v < 3);
                counts[v]++;
        }
        for (size_t i = 0; i < 3; i++)
                assert_true(counts[i] > 900 && counts[i] < 1100);
        assert_true(stats_rng_below(&rng, 1) == 0);
}

static void test_bootstrap(void **state) {
        const double x[] = { 10, 12, 11, 13, 9, 10.5, 12.5, 11.5 }, y[] = { 20, 25, 22, 21, 24, 23, 26 };
        const double c[] = { 4, 4, 4 }, d[] = { 6, 6 }, z[] = { 0, 0, 0, 1 }, zz[] = { 0, 1, 1, 1, 1 };
        StatsBootstrapRatio a, b, e;

        assert_int_equal(stats_bootstrap_median_ratio(x, 8, y, 7, 7, 2000, &a), 0);
        assert_close(a.ratio, 23.0 / 11.25);
        assert_true(a.low <= a.ratio && a.ratio <= a.high);
        assert_true(a.low > 1.5 && a.high < 3.0);
        assert_int_equal(a.resamples, 2000);
        assert_true(a.seed == 7);
        assert_close(a.level, 0.95);

        /* the same seed: the same interval, bit for bit; another seed: another one */
        assert_int_equal(stats_bootstrap_median_ratio(x, 8, y, 7, 7, 2000, &b), 0);
        assert_true(a.low == b.low && a.high == b.high);
        assert_int_equal(stats_bootstrap_median_ratio(x, 8, y, 7, 8, 2000, &e), 0);
        assert_true(a.low != e.low || a.high != e.high);

        /* constant samples: every resample gives 6/4 */
        assert_int_equal(stats_bootstrap_median_ratio(c, 3, d, 2, 1, 100, &e), 0);
        assert_close(e.ratio, 1.5);
        assert_close(e.low, 1.5);
        assert_close(e.high, 1.5);

        /* a zero median of x, or of one of its resamples: no ratio */
        assert_int_equal(stats_bootstrap_median_ratio(z, 4, d, 2, 1, 100, &e), -EDOM);
        assert_int_equal(stats_bootstrap_median_ratio(zz, 5, d, 2, 1, 1000, &e), -EDOM);
        assert_int_equal(stats_bootstrap_median_ratio(x, 8, y, 7, 1, 0, &e), -EINVAL);
        assert_int_equal(stats_bootstrap_median_ratio(x, 8, y, 7, 1, STATS_RESAMPLES_MAX + 1, &e), -E2BIG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_summary_one_to_ten),
                cmocka_unit_test(test_summary_small),
                cmocka_unit_test(test_summary_refused),
                cmocka_unit_test(test_quantile_and_binomial),
                cmocka_unit_test(test_mann_whitney_exact),
                cmocka_unit_test(test_mann_whitney_asymptotic),
                cmocka_unit_test(test_mann_whitney_large_exact),
                cmocka_unit_test(test_holm),
                cmocka_unit_test(test_rng),
                cmocka_unit_test(test_bootstrap),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
