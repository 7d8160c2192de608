/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Exact counts of the kvm:kvm_page_fault and kvm:kvm_exit tracepoints for a set of threads (a guest's vCPU
 * threads) with perf events. The tracepoint ids come from tracefs under a root directory
 * (ROOT/sys/kernel/tracing or ROOT/sys/kernel/debug/tracing). When they cannot be counted (tracefs not
 * mounted, no kvm events, perf_event_open refused) the reason says why. */

#include <sys/types.h>

#include "basic/macro.h"

typedef struct NumaPerf NumaPerf;

/* Never fails for lack of support: *ret is then a NumaPerf that says unavailable with its reason. Only
 * -ENOMEM is returned. */
int numa_perf_open(const char *root, const pid_t *tids, size_t n_tids, NumaPerf **ret);
NumaPerf *numa_perf_free(NumaPerf *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(NumaPerf *, numa_perf_free);

/* NULL when counting works. */
const char *numa_perf_unavailable_reason(const NumaPerf *p);
/* Sums since numa_perf_open() over all threads. */
int numa_perf_read(NumaPerf *p, uint64_t *ret_page_faults, uint64_t *ret_exits);

/* A tracepoint's id from ROOT/…/events/SYSTEM/NAME/id; -ENOENT when tracefs has no such event. */
int tracepoint_id(const char *root, const char *system, const char *name, uint64_t *ret);
