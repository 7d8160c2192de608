/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Every metric family memvisord exports. docs/metrics.md is generated from this table (memvisord
 * --list-metrics), so the documentation cannot drift from the code. */

#include <stdio.h>

#include "metrics/metric-registry.h"

typedef enum MetricId {
        /* the daemon itself (rendered per scrape) */
        METRIC_DAEMON_SCRAPES,
        METRIC_DAEMON_HTTP_CONNECTIONS,
        METRIC_DAEMON_HTTP_RESPONSES,
        METRIC_DAEMON_HTTP_EVICTED,
        METRIC_DAEMON_HTTP_REFUSED,
        METRIC_DAEMON_VARLINK_CONNECTIONS,
        METRIC_DAEMON_VARLINK_CONNECTIONS_TOTAL,
        METRIC_DAEMON_VARLINK_CALLS,
        METRIC_DAEMON_VARLINK_PROTOCOL_ERRORS,
        METRIC_DAEMON_SAMPLE_DURATION,
        METRIC_DAEMON_SAMPLES,
        METRIC_DAEMON_SAMPLE_ERRORS,
        METRIC_DAEMON_LAST_SAMPLE,
        /* experiments (rendered per scrape) */
        METRIC_EXPERIMENTS_RUNNING,
        METRIC_EXPERIMENT_ITERATIONS,
        METRIC_EXPERIMENTS_ENDED,
        METRIC_EXPERIMENTS_STORED,
        METRIC_EXPERIMENTS_STORED_BYTES,
        /* host */
        METRIC_HOST_MEMORY_TOTAL,
        METRIC_HOST_MEMORY_FREE,
        METRIC_HOST_MEMORY_AVAILABLE,
        METRIC_HOST_MEMORY_BUFFERS,
        METRIC_HOST_MEMORY_CACHED,
        METRIC_HOST_MEMORY_ANON,
        METRIC_HOST_MEMORY_ANON_HUGE,
        METRIC_HOST_MEMORY_SHMEM,
        METRIC_HOST_MEMORY_COMMITTED_AS,
        METRIC_HOST_MEMORY_COMMIT_LIMIT,
        METRIC_HOST_SWAP_TOTAL,
        METRIC_HOST_SWAP_FREE,
        METRIC_HOST_HUGEPAGES,
        METRIC_HOST_HUGEPAGE_SIZE,
        METRIC_HOST_OVERCOMMIT_RATIO,
        METRIC_HOST_NODE_MEMORY_TOTAL,
        METRIC_HOST_NODE_MEMORY_FREE,
        METRIC_HOST_NODE_MEMORY_USED,
        METRIC_HOST_NODE_HUGEPAGES,
        /* guests */
        METRIC_GUEST_STATE,
        METRIC_GUEST_RESTARTS,
        METRIC_GUEST_AGENT_STATE,
        METRIC_GUEST_TLB_SHOOTDOWNS,
        METRIC_GUEST_CALL_INTERRUPTS,
        METRIC_GUEST_VMSTAT_EVENTS,
        METRIC_GUEST_COUNTERS_TIMESTAMP,
        METRIC_GUEST_VCPUS,
        METRIC_GUEST_VCPU_ALLOWED_CPUS,
        METRIC_GUEST_VCPU_PINNED_CPU,
        METRIC_GUEST_VCPU_LAST_CPU,
        METRIC_GUEST_MEMORY_SIZE,
        METRIC_GUEST_COMMIT_CHARGE,
        METRIC_GUEST_RESIDENT,
        METRIC_GUEST_NODE_RESIDENT,
        METRIC_GUEST_BALLOON_ACTUAL,
        METRIC_GUEST_BALLOON_TARGET,
        METRIC_GUEST_BALLOON_FREE,
        METRIC_GUEST_BALLOON_AVAILABLE,
        METRIC_GUEST_BALLOON_TOTAL,
        METRIC_GUEST_BALLOON_DISK_CACHES,
        METRIC_GUEST_BALLOON_SWAP_IN,
        METRIC_GUEST_BALLOON_SWAP_OUT,
        METRIC_GUEST_BALLOON_MAJOR_FAULTS,
        METRIC_GUEST_BALLOON_MINOR_FAULTS,
        METRIC_GUEST_BALLOON_STATS_TIMESTAMP,
        METRIC_GUEST_BALLOON_STEPS,
        METRIC_GUEST_BALLOON_STEPS_REACHED,
        METRIC_GUEST_BALLOON_STEP_SECONDS,
        METRIC_GUEST_MIGRATIONS,
        METRIC_GUEST_MIGRATION_FAILURES,
        METRIC_GUEST_MIGRATION_PAGES,
        METRIC_GUEST_MIGRATION_BYTES,
        METRIC_GUEST_MIGRATION_SECONDS,
        METRIC_GUEST_DIRTY_RATE,
        METRIC_GUEST_DIRTY_RATE_TIMESTAMP,
        METRIC_GUEST_KVM_VM_COUNTER,            /* pattern: the name is built per stat */
        METRIC_GUEST_KVM_VM_GAUGE,
        METRIC_GUEST_KVM_VCPU_COUNTER,
        METRIC_GUEST_KVM_VCPU_GAUGE,
        _METRIC_ID_MAX,
} MetricId;

extern const MetricFamily metric_families[_METRIC_ID_MAX];

/* Families whose name is a pattern: the <stat> part is filled in per KVM statistic. */
static inline bool metric_id_is_pattern(MetricId id) {
        return id >= METRIC_GUEST_KVM_VM_COUNTER;
}

/* The family of host meminfo fields: /proc/meminfo field name → family. */
typedef struct MeminfoMetric {
        const char *field;
        MetricId id;
} MeminfoMetric;

extern const MeminfoMetric meminfo_metrics[];
extern const size_t n_meminfo_metrics;

/* Builds the name of a KVM statistic's family: memvisor_guest_kvm_[vcpu_]<stat>[_seconds][_total]. Stats in
 * nanoseconds (name ending in _ns) are exported in seconds (*ret_scale = 1e-9). */
int metric_kvm_family(bool vcpu, const char *stat, bool cumulative, MetricFamily *ret_family, char **ret_name,
                      double *ret_scale);

/* Markdown list of every family (docs/metrics.md). */
int metric_families_markdown(FILE *f);
