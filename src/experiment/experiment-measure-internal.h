/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by experiment-measure.c (the record, vmstat, KVM statistics, the agent's counters, the workload) and
 * experiment-measure-trace.c (the tracepoint counts). */

#include "experiment/experiment-measure.h"
#include "trace/trace-counters.h"
#include "trace/trace-format.h"

/* vCPUs beyond which counts are not split per vCPU and reason (nor KVM statistics per vCPU): the counters of one
 * record stay within what the statistics take (EXPERIMENT_SUMMARY_COUNTERS_MAX). */
#define EXPERIMENT_PER_VCPU_MAX 16U
/* Guest CPUs whose TLB:/CAL: rows are kept per CPU (all are summed). */
#define EXPERIMENT_PER_GUEST_CPU_MAX 64U

/* One group of tracepoint counters and how its counts become counters of the record. */
typedef enum MeasureTraceKind {
        MEASURE_TRACE_KVM_EXITS,        /* per exit reason on the vCPU threads, and the total */
        MEASURE_TRACE_VCPU,             /* one event on the vCPU threads: per vCPU and summed */
        MEASURE_TRACE_QEMU,             /* one event on the QEMU threads: summed */
        MEASURE_TRACE_HOST,             /* one event system-wide: summed over the CPUs */
} MeasureTraceKind;

typedef struct MeasureTrace {
        MeasureTraceKind kind;
        ExperimentCounter set;          /* the counter set it belongs to */
        char *name;                     /* the record's counter name ("host.tlb_flush.qemu"); kvm exits: the prefix */
        TraceCounters *counters;
        TraceSymbol *reasons;           /* kvm exits: one spec per reason, then the total */
        size_t n_reasons;
        size_t offset;                  /* of its values in a snapshot's trace[] */
        size_t n_values;                /* specs × targets */
} MeasureTrace;

struct ExperimentMeasure {
        char *root;
        uint64_t counters;              /* the spec's [Measure] Counters= */
        char *unavailable[_EXPERIMENT_COUNTER_MAX];
        const ExperimentSpec *spec;     /* borrowed: the run owns it and outlives this */
        char *tracing_dir;
        char *tracing_reason;           /* why there is no tracing_dir */
        MeasureTrace *traces;
        size_t n_traces;
        size_t n_trace_values;
        size_t n_vcpus;
};

int measure_set_unavailable(ExperimentMeasure *m, ExperimentCounter c, const char *reason);

int measure_trace_open(ExperimentMeasure *m, const ExperimentSpec *spec, const ExperimentGuest *guest);
void measure_trace_close(ExperimentMeasure *m);
int measure_trace_read(ExperimentMeasure *m, ExperimentSnapshot *s);
int measure_trace_delta(ExperimentMeasure *m, const ExperimentSnapshot *before, const ExperimentSnapshot *after,
                        ExperimentRecord *r);
