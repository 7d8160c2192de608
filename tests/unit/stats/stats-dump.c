/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The figures of src/stats for data sets read from stdin, as one JSON object a line, for test-stats-scipy.py to
 * compare with numpy/scipy. One request a line (numbers as C's strtod reads them, 17 significant digits round-trip):
 *   summary N x1 … xN
 *   compare NX NY x1 … xNX y1 … yNY           (Mann–Whitney and Cliff's delta)
 *   holm M p1 … pM
 *   boot NX NY SEED RESAMPLES x1 … xNX y1 … yNY
 *   rng SEED COUNT BELOW                      (COUNT draws of stats_rng_below(BELOW), 0: stats_rng_next())
 * A figure that is not available prints as null; a refused request as {"error": -errno}. */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/macro.h"
#include "stats/stats.h"

#define LINE_MAX_VALUES 100000

static void num(const char *key, double v, bool comma) {
        if (isfinite(v))
                printf("\"%s\": %.17g", key, v);
        else
                printf("\"%s\": null", key);
        if (comma)
                fputs(", ", stdout);
}

/* A request the library refused is an answer, not a failure of stats-dump. */
static int refused(int r) {
        printf("{\"error\": %d}\n", r);
        return 0;
}

static int read_values(char **p, double *v, size_t n) {
        for (size_t i = 0; i < n; i++) {
                char *end;

                errno = 0;
                v[i] = strtod(*p, &end);
                if (end == *p || errno != 0)
                        return -EINVAL;
                *p = end;
        }
        return 0;
}

static int read_size(char **p, uint64_t *ret) {
        char *end;

        errno = 0;
        *ret = strtoull(*p, &end, 10);
        if (end == *p || errno != 0)
                return -EINVAL;
        *p = end;
        return 0;
}

static int handle(char *line) {
        _cleanup_free_ double *v = NULL, *out = NULL;
        char kind[16], *p = line;
        uint64_t a = 0, b = 0, seed = 0, count = 0;
        int off = 0, r;

        if (sscanf(p, "%15s%n", kind, &off) != 1)
                return 0;       /* blank line */
        p += off;

        if (streq(kind, "rng")) {
                StatsRng rng;

                if (read_size(&p, &seed) < 0 || read_size(&p, &count) < 0 || read_size(&p, &b) < 0)
                        return -EINVAL;
                stats_rng_seed(&rng, seed);
                printf("{\"draws\": [");
                for (uint64_t i = 0; i < count; i++)
                        printf("%s%" PRIu64, i ? ", " : "", b ? stats_rng_below(&rng, b) : stats_rng_next(&rng));
                printf("]}\n");
                return 0;
        }

        if (read_size(&p, &a) < 0)
                return -EINVAL;
        if (!streq(kind, "summary") && !streq(kind, "holm") && read_size(&p, &b) < 0)
                return -EINVAL;
        if (streq(kind, "boot") && (read_size(&p, &seed) < 0 || read_size(&p, &count) < 0))
                return -EINVAL;
        if (a + b > LINE_MAX_VALUES)
                return -E2BIG;
        v = malloc((a + b + 1) * sizeof(double));
        out = malloc((a + 1) * sizeof(double));
        if (!v || !out)
                return -ENOMEM;
        r = read_values(&p, v, a + b);
        if (r < 0)
                return r;

        if (streq(kind, "summary")) {
                StatsSummary s;

                r = stats_summary(v, a, &s);
                if (r < 0)
                        return refused(r);
                printf("{\"n\": %zu, ", s.n);
                num("min", s.min, true);
                num("max", s.max, true);
                num("mean", s.mean, true);
                num("std", s.stddev, true);
                num("median", s.median, true);
                num("p5", s.p5, true);
                num("p95", s.p95, true);
                num("ci_low", s.median_ci_low, true);
                num("ci_high", s.median_ci_high, true);
                printf("\"ci_low_rank\": %zu, \"ci_high_rank\": %zu, ", s.median_ci_low_rank,
                       s.median_ci_high_rank);
                num("ci_coverage", s.median_ci_coverage, false);
                printf("}\n");
        } else if (streq(kind, "compare")) {
                StatsMannWhitney w;
                double d;

                r = stats_mann_whitney(v, a, v + a, b, &w);
                if (r < 0)
                        return refused(r);
                r = stats_cliffs_delta(v, a, v + a, b, &d);
                if (r < 0)
                        return refused(r);
                printf("{\"method\": \"%s\", \"ties\": %s, ", stats_mwu_method_to_string(w.method),
                       w.ties ? "true" : "false");
                num("u1", w.u1, true);
                num("u2", w.u2, true);
                num("p", w.p, true);
                num("z", w.z, true);
                num("cliffs_delta", d, false);
                printf("}\n");
        } else if (streq(kind, "holm")) {
                r = stats_holm(v, a, out);
                if (r < 0)
                        return refused(r);
                printf("{\"adjusted\": [");
                for (size_t i = 0; i < a; i++)
                        printf("%s%.17g", i ? ", " : "", out[i]);
                printf("]}\n");
        } else if (streq(kind, "boot")) {
                StatsBootstrapRatio br;

                r = stats_bootstrap_median_ratio(v, a, v + a, b, seed, count, &br);
                if (r < 0)
                        return refused(r);
                printf("{\"seed\": %" PRIu64 ", \"resamples\": %zu, ", br.seed, br.resamples);
                num("ratio", br.ratio, true);
                num("low", br.low, true);
                num("high", br.high, false);
                printf("}\n");
        } else
                return -EINVAL;
        return 0;
}

int main(void) {
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        ssize_t l;

        while ((l = getline(&line, &size, stdin)) >= 0) {
                int r = handle(line);

                if (r < 0) {
                        fprintf(stderr, "stats-dump: bad request (%s): %s", strerror(-r), line);
                        return EXIT_FAILURE;
                }
        }
        return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
