/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The comparison of two experiments A and B of the same operation (memvisor.experiment(5), "COMPARISON"): per
 * counter measured on both sides (warm-up iterations excluded), the medians, the ratio of medians B/A with a
 * percentile-bootstrap 95 % interval (stats_bootstrap_median_ratio(): a stated seed and resample count), the
 * two-sided Mann–Whitney U test of B against A (stats_mann_whitney()), Cliff's delta of B against A
 * (stats_cliffs_delta()), and the Holm-adjusted p-values across the counters compared (stats_holm()), a counter
 * being significant when its adjusted p is below EXPERIMENT_COMPARE_ALPHA. The counters measured on one side only
 * are listed apart with the reason; the provenance differences come first (provenance_diff() without the volatile
 * items). Every figure is that of src/stats (checked against scipy by tests/unit/stats and, through this file,
 * tests/unit/experiment/test-experiment-compare-scipy.py).
 *
 * Use: experiment_compare_new(), experiment_compare_set() and experiment_compare_add() for each side,
 * experiment_compare_prepare() (cheap: the checks, with a reason for the caller), then experiment_compare_run(),
 * which may take seconds (the bootstrap) and belongs in a worker thread; experiment_compare_cancel() may be
 * called from another thread meanwhile. Not otherwise thread-safe. Memory: that of two ExperimentSummary. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"

#define EXPERIMENT_COMPARE_COUNTERS_MAX 1024U           /* counters compared at once */
#define EXPERIMENT_COMPARE_GLOBS_MAX 64U                /* counter globs */
#define EXPERIMENT_COMPARE_GLOB_MAX 256U                /* bytes of one glob */
#define EXPERIMENT_COMPARE_SEED_DEFAULT UINT64_C(1)
#define EXPERIMENT_COMPARE_RESAMPLES_DEFAULT 10000U
#define EXPERIMENT_COMPARE_RESAMPLES_MAX 100000U
/* resamples × Σ (nA + nB) over the counters compared: the values the bootstrap draws in all. */
#define EXPERIMENT_COMPARE_DRAWS_MAX (UINT64_C(1) << 30)
#define EXPERIMENT_COMPARE_ALPHA 0.05

typedef enum ExperimentCompareSide {
        EXPERIMENT_COMPARE_A,
        EXPERIMENT_COMPARE_B,
        _EXPERIMENT_COMPARE_SIDE_MAX,
} ExperimentCompareSide;

typedef struct ExperimentCompareOptions {
        char **counters;                /* fnmatch(3) globs; none: every counter */
        size_t n_counters;
        uint64_t seed;                  /* the bootstrap's seed */
        size_t resamples;               /* 1 … EXPERIMENT_COMPARE_RESAMPLES_MAX */
} ExperimentCompareOptions;

#define EXPERIMENT_COMPARE_OPTIONS_DEFAULT                              \
        ((ExperimentCompareOptions) {                                   \
                .seed = EXPERIMENT_COMPARE_SEED_DEFAULT,                \
                .resamples = EXPERIMENT_COMPARE_RESAMPLES_DEFAULT,      \
        })

typedef struct ExperimentCompare ExperimentCompare;

int experiment_compare_new(ExperimentCompare **ret);
ExperimentCompare *experiment_compare_free(ExperimentCompare *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(ExperimentCompare *, experiment_compare_free);

/* A side's experiment: its id, its definition (as definition.json holds it: the operation is
 * Provoke.Operation, "none" when absent) and its provenance (an object, or NULL when there is none); references
 * are taken. */
int experiment_compare_set(ExperimentCompare *c, ExperimentCompareSide side, const char *id, json_object *definition,
                           json_object *provenance);

/* A side that is one variant of a matrix run ("B"): only the records of that variant count. Before the first
 * record. */
int experiment_compare_set_variant(ExperimentCompare *c, ExperimentCompareSide side, const char *variant);

/* Adds one iteration record of a side (experiment_summary_add(): -EBADMSG, -E2BIG, -ENOMEM). */
int experiment_compare_add(ExperimentCompare *c, ExperimentCompareSide side, json_object *record);

/* Checks the options and the two sides, and selects the counters compared. -EINVAL with *ret_field (the
 * option at fault, or NULL for the experiments) and *ret_reason (a sentence, to free) for: the two experiments
 * of different operations, a side not set, resamples out of range, a glob empty or too long, too many globs;
 * -E2BIG with a reason for more than EXPERIMENT_COMPARE_COUNTERS_MAX counters, or more than
 * EXPERIMENT_COMPARE_DRAWS_MAX draws; -ENOMEM. */
int experiment_compare_prepare(ExperimentCompare *c, const ExperimentCompareOptions *options, const char **ret_field,
                               char **ret_reason);

/* The comparison (after experiment_compare_prepare()), in the IDL's shape (io.memvisor.Manager.varlink,
 * CompareExperiments):
 *   {"a": SIDE, "b": SIDE, "operation", "seed", "resamples", "level": 0.95, "alpha": 0.05,
 *    "counterGlobs": [..] or null,
 *    "provenanceDifferences": [{"key", "a"?, "b"?}], "comparisons": [COMPARISON], "notCompared": [{"counter",
 *    "side": "a"|"b" (the side that has it), "reason"}]}
 *   SIDE = {"id", "iterations", "warmUp"}
 *   COMPARISON = {"counter", "unit", "nA", "nB", "medianA", "medianB", "ratio" (medianB / medianA, null when
 *     medianA is 0), "ratioCILow", "ratioCIHigh" (null when no interval), "ratioNote" (why a ratio or interval
 *     is null, else null), "u" (U of B), "p", "method" ("exact"|"asymptotic"), "cliffsDelta" (of B against A),
 *     "pHolm", "significant"}
 * Comparisons and notCompared are sorted by counter name. BLOCKING (CPU): for a worker thread. -ECANCELED after
 * experiment_compare_cancel(), -ENOMEM. */
int experiment_compare_run(ExperimentCompare *c, json_object **ret);

/* From any thread: experiment_compare_run() stops before its next counter. */
void experiment_compare_cancel(ExperimentCompare *c);
