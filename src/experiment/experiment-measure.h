/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The readings an experiment takes before and after each provocation, and the iteration record built from their
 * deltas (memvisor.experiment(5), RESULTS). Internal to the runner: experiment-runner.c takes the asynchronous
 * readings (QMP query-stats, the guest agent) and hands them over; the synchronous ones (/proc/vmstat, the
 * tracepoint counts) are read here. */

#include <json-c/json.h>

#include "experiment/experiment-runner.h"
#include "qga/qga-ops.h"
#include "qmp/qmp-stats.h"

/* The record under construction: counters {name: number} and unavailable {name: reason}. */
typedef struct ExperimentRecord {
        json_object *counters;
        json_object *unavailable;
} ExperimentRecord;

int experiment_record_init(ExperimentRecord *r);
void experiment_record_done(ExperimentRecord *r);
int experiment_record_add_int(ExperimentRecord *r, const char *name, int64_t value);
int experiment_record_add_double(ExperimentRecord *r, const char *name, double value);
int experiment_record_unavailable(ExperimentRecord *r, const char *name, const char *format, ...) _printf_(3, 4);

/* One side (before or after) of an iteration. */
typedef struct ExperimentSnapshot {
        uint64_t monotonic_usec;
        QgaCounter *host_vmstat;        /* the selected keys of the host's /proc/vmstat */
        size_t n_host_vmstat;
        char *host_vmstat_error;
        uint64_t *trace;                /* the tracepoint counts, in the order of ExperimentMeasure's counters */
        bool *trace_bad;                /* … each one that could not be read */
        size_t n_trace;
        KvmStats *kvm;                  /* NULL: kvm_error says why */
        char *kvm_error;
        bool have_guest;                /* the agent's reading: */
        QgaCounter *guest;              /* "vmstat.KEY", "tlb.cpuN", "cal.cpuN" */
        size_t n_guest;
        QgaUnavailable *guest_unavailable;
        size_t n_guest_unavailable;
        char *guest_error;              /* why there is no reading */
} ExperimentSnapshot;

void experiment_snapshot_done(ExperimentSnapshot *s);
/* Copies what the record needs of an agent reading (valid for the call only) into s. */
int experiment_snapshot_set_guest(ExperimentSnapshot *s, const QgaGuestCounters *c);

typedef struct ExperimentMeasure ExperimentMeasure;

/* Opens what is counted for the whole experiment (tracepoint counters on the guest's threads and the host), per
 * the spec's [Measure]. Sets whose counting cannot work are kept with their reason (experiment_measure_unavailable).
 * Only -ENOMEM fails. */
int experiment_measure_open(const char *root, const ExperimentSpec *spec, const ExperimentGuest *guest,
                            ExperimentMeasure **ret);
ExperimentMeasure *experiment_measure_free(ExperimentMeasure *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(ExperimentMeasure *, experiment_measure_free);

/* Why the counter set c cannot be taken on this guest and host (NULL: it can, as far as is known before the first
 * reading; the agent's sets are decided by the caller). */
const char *experiment_measure_unavailable(const ExperimentMeasure *m, ExperimentCounter c);

/* The first Tracepoints= entry of spec that the kernel does not have: 0 when all exist (or tracefs is missing: each
 * is then unavailable with that reason), -ENOENT with *ret_name (borrowed from spec) and *ret_known ("tlb:tlb_flush,
 * …": what its system has, or every system's when the system is unknown, at most 64 names) otherwise. */
int experiment_measure_check_tracepoints(ExperimentMeasure *m, const ExperimentSpec *spec, const char **ret_name,
                                         char **ret_known);

/* The synchronous readings into s (host vmstat, tracepoint counts). */
int experiment_measure_read(ExperimentMeasure *m, ExperimentSnapshot *s);

/* The deltas after − before of every set the spec measures into r, and each set's unavailability. */
int experiment_measure_delta(ExperimentMeasure *m, const ExperimentSpec *spec, const ExperimentSnapshot *before,
                             const ExperimentSnapshot *after, ExperimentRecord *r);

/* The workload's standard output: when it is a JSON object, its numbers flattened into r as "workload.KEY…" (objects
 * by key, arrays by index, at most EXPERIMENT_WORKLOAD_COUNTERS_MAX), with "bytes_per_sec" computed for each object
 * that has "bytes" and "ns"; the parsed object returned in *ret_json (NULL when not JSON, and an "workload" entry
 * in unavailable says why). */
#define EXPERIMENT_WORKLOAD_COUNTERS_MAX 256U
#define EXPERIMENT_WORKLOAD_JSON_MAX (64U * 1024U)
int experiment_measure_workload(ExperimentRecord *r, const char *out, size_t size, json_object **ret_json);
