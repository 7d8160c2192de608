/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The statistics of an experiment's iterations (memvisor.experiment(5), "RESULTS"): the iteration records are
 * added one by one as they end (or read back from iterations.jsonl), and experiment_summary_to_json() gives, per
 * counter, the figures of src/stats (stats_summary(): n, median, p5, p95, mean, sample standard deviation, min,
 * max and the distribution-free 95 % confidence interval of the median), plus the counters that could not be
 * taken, with the reason. The output has the shapes of the IDL's ExperimentStatistic and ExperimentUnavailable
 * (src/varlink/io.memvisor.Manager.varlink).
 *
 * An iteration record (experiment_record_validate()) is a JSON object:
 *   "iteration"            integer, 1 … EXPERIMENT_ITERATIONS_MAX
 *   "warmUp"               boolean
 *   "startedRealtimeUSec"  integer >= 0
 *   "durationUSec"         integer >= 0, optional
 *   "counters"             object: counter name (experiment_counter_name_is_valid()) → an integer or a finite
 *                          double of magnitude at most EXPERIMENT_COUNTER_VALUE_MAX (so that sums over the
 *                          iterations stay finite)
 *   "unavailable"          object, optional: counter name or counter-set prefix (a valid counter name) → the
 *                          reason: a non-empty string without NUL
 *   "workload"             anything, optional (not read here: the runner flattens it into workload.* counters)
 * Other members are ignored.
 *
 * Warm-up records are counted (iterations, warmUp) but neither their counters nor their unavailable entries are
 * in the statistics: every figure is over the measured iterations only. A counter present in only some
 * iterations has its own n. The memory held is bounded: at most EXPERIMENT_SUMMARY_COUNTERS_MAX distinct
 * counters and as many distinct unavailable names, at most EXPERIMENT_ITERATIONS_MAX records, so at most
 * EXPERIMENT_SUMMARY_COUNTERS_MAX × EXPERIMENT_ITERATIONS_MAX values (8 bytes each) and reasons cut to
 * EXPERIMENT_SUMMARY_REASON_MAX bytes. Not thread-safe; nothing here blocks or logs. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"

#define EXPERIMENT_SUMMARY_COUNTERS_MAX 4096U
#define EXPERIMENT_SUMMARY_REASON_MAX 1024U     /* bytes of a reason kept (cut on a UTF-8 character boundary) */
#define EXPERIMENT_COUNTER_VALUE_MAX 1e300      /* |value| of a counter */

typedef struct ExperimentSummary ExperimentSummary;

/* 0 when record is an iteration record as documented above, -EBADMSG otherwise. */
int experiment_record_validate(json_object *record);

int experiment_summary_new(ExperimentSummary **ret);
ExperimentSummary *experiment_summary_free(ExperimentSummary *s);

/* Adds one iteration record (borrowed: nothing of it is kept). All or nothing: on failure s is unchanged.
 * -EBADMSG for a record that is not as documented, -E2BIG when s already holds EXPERIMENT_ITERATIONS_MAX
 * records or the record would bring more than EXPERIMENT_SUMMARY_COUNTERS_MAX distinct counters (or unavailable
 * names), -ENOMEM. */
int experiment_summary_add(ExperimentSummary *s, json_object *record);

/* From now on only the records whose "variant" is variant (a matrix run's "A", "B", …) count; the others are
 * skipped by experiment_summary_add() (which returns 0 for them). NULL: every record. Only before the first. */
int experiment_summary_set_variant(ExperimentSummary *s, const char *variant);

/* Records added, and how many of them were warm-up iterations. */
uint64_t experiment_summary_iterations(const ExperimentSummary *s);
uint64_t experiment_summary_warm_up(const ExperimentSummary *s);

/* {"iterations": n, "warmUp": n, "statistics": [ExperimentStatistic…], "unavailable": [ExperimentUnavailable…]}:
 * statistics sorted by counter name, each {"counter", "unit" (experiment_counter_unit()), "n", "median", "p5",
 * "p95", "mean", "stddev" (null when n < 2, or when it does not fit a double), "min", "max", "medianCILow",
 * "medianCIHigh", "medianCICoverage" (the three null when n < 6, where no order-statistic interval reaches
 * 95 %)}; unavailable sorted by name, each {"counter", "reason" (the last one seen), "iterations" (how many
 * measured records said it)}. -ENOMEM. */
int experiment_summary_to_json(const ExperimentSummary *s, json_object **ret);

typedef struct ExperimentStore ExperimentStore;
/* The statistics of a stored experiment's iterations, read back one line at a time (as experiment_summary_to_json()
 * gives them): for an experiment that has no summary.json, or whose run kept none. variant (optional): only
 * that variant's records (experiment_summary_set_variant()). */
int experiment_summary_from_store(ExperimentStore *store, const char *id, const char *variant, json_object **ret);

DEFINE_TRIVIAL_CLEANUP_FUNC(ExperimentSummary *, experiment_summary_free);

/* The measured values the summary holds, for comparisons (experiment-compare.c): the counters, sorted by name,
 * i < experiment_summary_n_counters(); *ret_values (borrowed, valid until the next add or the free) holds
 * *ret_n >= 1 values in the order of the records. And the unavailable names, sorted, with the last reason. */
size_t experiment_summary_n_counters(const ExperimentSummary *s);
const char *experiment_summary_counter(const ExperimentSummary *s, size_t i, const double **ret_values,
                                       size_t *ret_n);
size_t experiment_summary_n_unavailable(const ExperimentSummary *s);
const char *experiment_summary_unavailable(const ExperimentSummary *s, size_t i, const char **ret_reason);
