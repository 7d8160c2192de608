/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Exact counts of kernel tracepoints with perf_event_open(2): counting events (PERF_TYPE_TRACEPOINT, config =
 * the event's id), no sampling, no ring buffer. One event per (spec, target): targets are threads (a vCPU, a
 * QEMU thread) or every online CPU (the whole host). A spec may carry a kernel-side filter
 * (PERF_EVENT_IOC_SET_FILTER, e.g. "exit_reason == 48").
 *
 * Opening never fails for lack of support: each spec is available or has a reason (tracefs missing, no such
 * event, perf_event_open refused, a filter refused, a thread gone), and a spec is available only when it
 * counts on every target (a sum over part of the vCPUs would pass for the whole). Only -ENOMEM and -EINVAL
 * (bad arguments) fail. Counters are opened disabled, filtered, then all enabled at the end of
 * trace_counters_open(). Reading does not stop them: take deltas. The values of different specs are read one
 * after another, so a sum over specs matches the total exactly only while the targets are not producing
 * events during the read (for vCPU threads: a handful of exits at most) — unless the set is grouped
 * (trace_counters_open_group()): then the specs of each target are one perf group, started together and read in
 * one go by trace_counters_read_all(), so their counts are of the same instant, up to the one event the kernel
 * may be counting on that target at that moment (it bumps a tracepoint's events one after another): a total
 * minus the sum of its filtered parts is off by at most one per target, not by every event between two reads. */

#include <sys/types.h>

#include "basic/macro.h"
#include "trace/trace-format.h"

/* At most this many perf events (file descriptors) per TraceCounters: specs × targets. Over it every spec is
 * unavailable with a reason saying so. */
#define TRACE_COUNTERS_FDS_MAX 4096U

typedef enum TraceTarget {
        TRACE_TARGET_THREADS,   /* the thread ids given: pid = tid, cpu = -1 (follows the thread on any CPU) */
        TRACE_TARGET_HOST,      /* every online CPU, system-wide: pid = -1, cpu = N */
} TraceTarget;

typedef struct TraceCounterSpec {
        const char *system;     /* "kvm" */
        const char *event;      /* "kvm_exit" */
        const char *filter;     /* NULL or a tracefs filter expression: "exit_reason == 48" */
} TraceCounterSpec;

typedef struct TraceCounters TraceCounters;

/* tracing_dir may be NULL (tracefs not found): every spec is then unavailable with that reason; so is every
 * spec when n_tids is 0 for TRACE_TARGET_THREADS (tids are ignored for TRACE_TARGET_HOST). */
int trace_counters_open(const char *tracing_dir, const TraceCounterSpec *specs, size_t n_specs, TraceTarget target,
                        const pid_t *tids, size_t n_tids, TraceCounters **ret);
/* The same, with the specs of each target in one perf group led by the spec leader (its event must count at
 * least what the others count for the readings to add up, e.g. kvm:kvm_exit without a filter). Without the
 * leader (unavailable), the others count as separate events, as trace_counters_open() opens them. */
int trace_counters_open_group(const char *tracing_dir, const TraceCounterSpec *specs, size_t n_specs,
                              TraceTarget target, const pid_t *tids, size_t n_tids, size_t leader,
                              TraceCounters **ret);
TraceCounters *trace_counters_free(TraceCounters *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(TraceCounters *, trace_counters_free);

size_t trace_counters_n_specs(const TraceCounters *c);
/* The number of targets: n_tids, or the online CPUs at open. */
size_t trace_counters_n_targets(const TraceCounters *c);
/* The CPU number of each target of a TRACE_TARGET_HOST set (the tid for TRACE_TARGET_THREADS). */
int trace_counters_target_id(const TraceCounters *c, size_t target);

/* NULL when the spec counts; otherwise why not. */
const char *trace_counters_unavailable(const TraceCounters *c, size_t spec);

/* The current counts of spec: per target (ret_per_target: an array of n_targets, in the order of tids or of
 * the online CPUs; may be NULL) and their sum. Returns 0, or 1 when some counter did not run for all the time
 * it was enabled (multiplexed by the kernel: the count is what was counted, not scaled up). -EOPNOTSUPP for an
 * unavailable spec, -ERANGE for a spec index out of range, another negative errno when read() fails. */
int trace_counters_read(TraceCounters *c, size_t spec, uint64_t *ret_per_target, uint64_t *ret_total);
/* Every count at once: ret[spec × n_targets + target] (0 for an unavailable spec); a grouped set with one read
 * per target, its group's counts of one instant. Returns 0, 1 when some counter was multiplexed, or a negative
 * errno when a read failed. */
int trace_counters_read_all(TraceCounters *c, uint64_t *ret);

/* Why a set is smaller than asked (trace_kvm_exits_open() without the exit reasons), or NULL. */
const char *trace_counters_note(const TraceCounters *c);

/* kvm:kvm_exit by exit reason: one spec per reason of isa (the kernel's own table, trace_kvm_exit_reasons())
 * with the filter "exit_reason == VALUE", then a last spec without a filter, the total, leading a group per vCPU
 * thread (trace_counters_open_group()), so that other = total − sum of the reasons, read with
 * trace_counters_read_all(), is exact but for an exit being counted during the read (one per vCPU at most) (exits outside the table, and VMX exits with flag bits above the basic reason,
 * such as FAILED_VMENTRY, land there). ret_reasons[i] is spec i; *ret_n_reasons + 1 specs in all. When the
 * reasons cannot be had (no tracefs, no kvm_exit, a format without a table) the set has only the total spec,
 * *ret_n_reasons is 0, trace_counters_note() says why, and the total is counted if it can be. Over TRACE_COUNTERS_FDS_MAX events (reasons + 1)
 * × threads: every spec unavailable with that reason. */
int trace_kvm_exits_open(const char *tracing_dir, TraceKvmIsa isa, const pid_t *vcpu_tids, size_t n_vcpu_tids,
                         TraceCounters **ret, TraceSymbol **ret_reasons, size_t *ret_n_reasons);
