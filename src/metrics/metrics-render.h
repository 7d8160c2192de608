/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The metric families of a snapshot, built from plain structs: the host sample, and per guest what its owner
 * (the daemon) says about it (MetricsGuestInput: state, the balloon and NUMA modules' readings, vCPU placement)
 * plus what the sampler read itself (MetricsGuestSample: /proc status, numa_maps, KVM statistics). Nothing
 * here reads a file or asks QEMU: it only turns what it is given into samples. Also the JSON views of host
 * memory that the varlink methods reply with. */

#include <json-c/json.h>
#include <sched.h>
#include <sys/types.h>

#include "metrics/host-sample.h"
#include "basic/macro.h"
#include "metrics/metric-registry.h"
#include "metrics/numa-maps.h"
#include "metrics/proc-status.h"
#include "qmp/qmp-client.h"
#include "qmp/qmp-stats.h"

#define METRICS_UNSET UINT64_MAX

/* Placement of one vCPU thread (its affinity and the CPU it last ran on), read on the host tick. */
typedef struct MetricsVcpu {
        unsigned index;
        bool have_affinity;
        bool pinned;                    /* named by VCPUAffinity=, or an affinity other than the daemon's */
        cpu_set_t allowed;
        bool have_last_cpu;
        unsigned last_cpu;
} MetricsVcpu;

/* What the balloon module holds about a guest. Counters are running totals kept over restarts. */
typedef struct MetricsBalloon {
        bool tracking;                  /* running with a balloon device: target, actual and stats are valid */
        uint64_t target_bytes;          /* the last target sent, or the boot memory while none was */
        uint64_t actual_bytes;          /* the last size QEMU reported; METRICS_UNSET while not known */
        bool stats_valid;               /* the guest's driver reported at least once */
        uint64_t free_bytes, available_bytes, total_bytes, disk_caches_bytes; /* METRICS_UNSET: not reported */
        uint64_t swap_in_bytes, swap_out_bytes, major_faults, minor_faults;
        uint64_t stats_last_update_sec; /* CLOCK_REALTIME seconds */
        uint64_t steps_total;           /* schedule steps started */
        uint64_t steps_reached_total;   /* … whose target was reached */
        uint64_t steps_reached_usec;    /* time those took to reach it, summed */
} MetricsBalloon;

/* What the NUMA module holds about a guest: page migration totals. */
typedef struct MetricsNuma {
        uint64_t migrations_total;
        uint64_t migration_failures;
        uint64_t pages_moved;
        uint64_t bytes_moved;
        uint64_t migrate_usec;
} MetricsNuma;

/* The guest's own counters as its agent last read them (GuestCountersIntervalSec= of [Metrics]): the per-CPU
 * TLB: and CAL: rows of its /proc/interrupts and a few /proc/vmstat event counters. A row or counter the guest
 * does not have is left out (no series), never reported as 0. */
#define METRICS_GUEST_VMSTAT_MAX 16
typedef struct MetricsGuestCounters {
        bool valid;                     /* a snapshot was read */
        uint64_t realtime_usec;         /* when it was complete (host clock) */
        uint64_t *tlb, *cal;            /* one per CPU column; NULL when the guest has no such row */
        unsigned *tlb_cpus, *cal_cpus;  /* the guest CPU of each column (its label) */
        size_t n_tlb, n_cal;
        const char *vmstat_names[METRICS_GUEST_VMSTAT_MAX];     /* static strings */
        uint64_t vmstat_values[METRICS_GUEST_VMSTAT_MAX];
        size_t n_vmstat;
} MetricsGuestCounters;

void metrics_guest_counters_done(MetricsGuestCounters *c);

/* One defined guest, as its owner describes it at a sampler tick. Strings and qmp are borrowed for the tick. */
typedef struct MetricsGuestInput {
        const char *name;
        const char *state;              /* one of the names in MetricsSettings.guest_states */
        unsigned restarts;
        bool active;                    /* has a QEMU process (starting, running, stopping) */
        pid_t pid;                      /* > 0 while active */
        QmpClient *qmp;                 /* NULL while not connected */
        size_t n_vcpus;
        bool have_memory;               /* running with a definition: memory_bytes is its Memory= */
        uint64_t memory_bytes;
        bool have_commit_charge;        /* the start's Committed_AS difference is known */
        int64_t commit_charge_bytes;
        MetricsVcpu *vcpus;             /* owned; host ticks only, while active */
        size_t n_vcpu_samples;
        unsigned errors;                /* reads that failed while filling this in (sampler error counter) */
        bool balloon_enabled;           /* Balloon=yes: the step counters are exported */
        MetricsBalloon balloon;
        MetricsNuma numa;
        const char *agent_state;        /* the guest agent channel's state; NULL: no agent port (not exported) */
        const char *const *agent_states;/* every state agent_state can be, NULL-terminated */
        const MetricsGuestCounters *guest_counters; /* NULL or !valid: not read (none exported) */
        bool have_dirty_rate;           /* a dirty rate was measured: its rate and when (CLOCK_REALTIME) */
        double dirty_rate_bytes_per_sec;
        uint64_t dirty_rate_realtime_usec;
} MetricsGuestInput;

void metrics_guest_inputs_free(MetricsGuestInput *inputs, size_t n);

/* What the sampler read itself about a guest's current process. */
typedef struct MetricsGuestSample {
        pid_t pid;                      /* the process the readings are about */
        bool have_status;
        ProcStatus status;
        bool have_numa;
        NumaMaps numa;
        KvmStats *kvm;                  /* NULL: none (TCG, or QEMU without query-stats) */
} MetricsGuestSample;

/* The sampler's own counters (memvisor_daemon_sample*). */
typedef struct MetricsSamplerStats {
        uint64_t host_samples, host_errors, guest_samples, guest_errors;
        uint64_t host_duration_usec, guest_duration_usec;
        bool have_host;
        uint64_t last_host_realtime_usec;
} MetricsSamplerStats;

#define METRICS_MAX_LABELLED 16U

typedef struct MetricsCount {
        const char *label;              /* static */
        uint64_t count;
} MetricsCount;

typedef struct MetricsCodeCount {
        int code;
        uint64_t count;
} MetricsCodeCount;

/* One defined guest's experiment iterations (memvisor_experiment_iterations_total). */
typedef struct MetricsExperimentGuest {
        const char *vm;                 /* borrowed */
        uint64_t iterations;            /* recorded by this daemon while the guest stayed defined */
} MetricsExperimentGuest;

/* The experiment runner and its store, read per request (memvisor_experiment*). */
typedef struct MetricsExperiments {
        bool enabled;                   /* the store is open: the families below are exported */
        uint64_t running;               /* runs begun and not ended, those still before their first iteration too */
        uint64_t completed, failed, cancelled;  /* ended since the daemon started */
        uint64_t stored, stored_bytes;  /* experiments in the store (every state) and their files' bytes */
        const MetricsExperimentGuest *guests;   /* borrowed, one per defined guest */
        size_t n_guests;
} MetricsExperiments;

/* The daemon's own counters, read per request. */
typedef struct MetricsDaemonInput {
        unsigned varlink_connections;
        uint64_t varlink_connections_total, varlink_calls, varlink_protocol_errors;
        bool exporter;                  /* the exporter runs: the families below are exported */
        uint64_t scrapes;
        unsigned http_connections;
        MetricsCount evicted[METRICS_MAX_LABELLED];     /* by reason */
        size_t n_evicted;
        MetricsCount refused[METRICS_MAX_LABELLED];     /* by reason */
        size_t n_refused;
        MetricsCodeCount responses[METRICS_MAX_LABELLED]; /* by HTTP status code */
        size_t n_responses;
        MetricsExperiments experiments;
} MetricsDaemonInput;

int metrics_render_host(MetricSet *s, const HostSample *h);
/* states: every guest state name (NULL-terminated), for the one-hot memvisor_guest_state. sample: NULL when the
 * sampler has no readings of the guest's current process. */
int metrics_render_guest(MetricSet *s, const MetricsGuestInput *g, const char *const *states,
                         const MetricsGuestSample *sample);
int metrics_render_daemon(MetricSet *s, const MetricsSamplerStats *stats, const MetricsDaemonInput *d);

/* GetHostMemory's "sample" object; NULL on OOM. */
json_object *metrics_host_memory_json(const HostSample *h);
