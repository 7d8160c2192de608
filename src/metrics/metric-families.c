/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "metrics/metric-families.h"

#define L(...) { __VA_ARGS__, NULL }

const MetricFamily metric_families[_METRIC_ID_MAX] = {
        [METRIC_DAEMON_SCRAPES] = { "memvisor_daemon_scrapes_total", METRIC_COUNTER, "",
                                    "Scrapes of /metrics served by the exporter.", L(NULL) },
        [METRIC_DAEMON_HTTP_CONNECTIONS] = { "memvisor_daemon_http_connections", METRIC_GAUGE, "",
                                             "Open connections to the exporter.", L(NULL) },
        [METRIC_DAEMON_HTTP_RESPONSES] = { "memvisor_daemon_http_responses_total", METRIC_COUNTER, "",
                                           "HTTP responses sent by the exporter, by status code.", L("code") },
        [METRIC_DAEMON_HTTP_EVICTED] = { "memvisor_daemon_http_connections_evicted_total", METRIC_COUNTER, "",
                                         "Exporter connections closed to make room for a new one, by what they "
                                         "were doing (idle: kept alive between requests; slow_request: still "
                                         "sending a request head, answered 408).", L("reason") },
        [METRIC_DAEMON_HTTP_REFUSED] = { "memvisor_daemon_http_connections_refused_total", METRIC_COUNTER, "",
                                         "New exporter connections answered 503 and closed, by the limit in the "
                                         "way (max_connections, max_connections_per_address).", L("reason") },
        [METRIC_DAEMON_VARLINK_CONNECTIONS] = { "memvisor_daemon_varlink_connections", METRIC_GAUGE, "",
                                                "Open varlink connections.", L(NULL) },
        [METRIC_DAEMON_VARLINK_CONNECTIONS_TOTAL] = { "memvisor_daemon_varlink_connections_total", METRIC_COUNTER, "",
                                                      "Varlink connections accepted since the daemon started.",
                                                      L(NULL) },
        [METRIC_DAEMON_VARLINK_CALLS] = { "memvisor_daemon_varlink_calls_total", METRIC_COUNTER, "",
                                          "Varlink method calls dispatched since the daemon started.", L(NULL) },
        [METRIC_DAEMON_VARLINK_PROTOCOL_ERRORS] = { "memvisor_daemon_varlink_protocol_errors_total", METRIC_COUNTER,
                                                    "", "Varlink connections closed for a protocol violation.",
                                                    L(NULL) },
        [METRIC_DAEMON_SAMPLE_DURATION] = { "memvisor_daemon_sample_duration_seconds", METRIC_GAUGE, "seconds",
                                            "Time the last sample took, by sampler (host, guest).", L("sampler") },
        [METRIC_DAEMON_SAMPLES] = { "memvisor_daemon_samples_total", METRIC_COUNTER, "",
                                    "Samples taken, by sampler (host, guest).", L("sampler") },
        [METRIC_DAEMON_SAMPLE_ERRORS] = { "memvisor_daemon_sample_errors_total", METRIC_COUNTER, "",
                                          "Samples or parts of samples that failed, by sampler (host, guest).",
                                          L("sampler") },
        [METRIC_DAEMON_LAST_SAMPLE] = { "memvisor_daemon_last_sample_timestamp_seconds", METRIC_GAUGE, "seconds",
                                        "When the host sample this scrape shows was taken (Unix time).", L(NULL) },

        [METRIC_EXPERIMENTS_RUNNING] = { "memvisor_experiments_running", METRIC_GAUGE, "",
                                         "Experiments running now: started (StartExperiment) and not yet ended, "
                                         "those still collecting their provenance before the first iteration "
                                         "included. At most one per guest.", L(NULL) },
        [METRIC_EXPERIMENT_ITERATIONS] = { "memvisor_experiment_iterations_total", METRIC_COUNTER, "",
                                           "Experiment iterations recorded on the guest (appended to its "
                                           "experiment's iterations.jsonl and synced) by this daemon since it "
                                           "started, warm-up iterations included; 0 until the first. For every "
                                           "defined guest; undefining the guest drops its count (defined again, "
                                           "it starts from 0).", L("vm") },
        [METRIC_EXPERIMENTS_ENDED] = { "memvisor_experiments_ended_total", METRIC_COUNTER, "",
                                       "Experiments that ended since the daemon started, by how (state): completed "
                                       "(every iteration recorded), failed (the guest stopped or restarted, the "
                                       "operation, the workload or the store failed; also before the first "
                                       "iteration, the experiment then not in the store), cancelled "
                                       "(CancelExperiment). The three series are always there, 0 until the first "
                                       "such end. Refused starts (InvalidExperiment, GuestBusy, "
                                       "CounterUnavailable, ...) are not counted, nor experiments that a daemon "
                                       "restart marked interrupted.", L("state") },
        [METRIC_EXPERIMENTS_STORED] = { "memvisor_experiments_stored", METRIC_GAUGE, "",
                                        "Experiments in the store (STATE_DIR/experiments/): running, ended, "
                                        "interrupted and damaged ones, until DeleteExperiment or the retention "
                                        "bound ([Experiments] MaxExperiments=, MaxBytes=) removes them.", L(NULL) },
        [METRIC_EXPERIMENTS_STORED_BYTES] = { "memvisor_experiments_stored_bytes", METRIC_GAUGE, "bytes",
                                              "Sizes of the stored experiments' files summed (a running one's "
                                              "64 KiB reserve included), as [Experiments] MaxBytes= counts them.",
                                              L(NULL) },

        [METRIC_HOST_MEMORY_TOTAL] = { "memvisor_host_memory_total_bytes", METRIC_GAUGE, "bytes",
                                       "Usable RAM (MemTotal in /proc/meminfo).", L(NULL) },
        [METRIC_HOST_MEMORY_FREE] = { "memvisor_host_memory_free_bytes", METRIC_GAUGE, "bytes",
                                      "Unused RAM (MemFree).", L(NULL) },
        [METRIC_HOST_MEMORY_AVAILABLE] = { "memvisor_host_memory_available_bytes", METRIC_GAUGE, "bytes",
                                           "RAM available for new allocations without swapping (MemAvailable).",
                                           L(NULL) },
        [METRIC_HOST_MEMORY_BUFFERS] = { "memvisor_host_memory_buffers_bytes", METRIC_GAUGE, "bytes",
                                         "Block device buffers (Buffers).", L(NULL) },
        [METRIC_HOST_MEMORY_CACHED] = { "memvisor_host_memory_cached_bytes", METRIC_GAUGE, "bytes",
                                        "Page cache (Cached).", L(NULL) },
        [METRIC_HOST_MEMORY_ANON] = { "memvisor_host_memory_anon_bytes", METRIC_GAUGE, "bytes",
                                      "Anonymous pages mapped into user space (AnonPages).", L(NULL) },
        [METRIC_HOST_MEMORY_ANON_HUGE] = { "memvisor_host_memory_anon_hugepages_bytes", METRIC_GAUGE, "bytes",
                                           "Anonymous transparent huge pages (AnonHugePages).", L(NULL) },
        [METRIC_HOST_MEMORY_SHMEM] = { "memvisor_host_memory_shmem_bytes", METRIC_GAUGE, "bytes",
                                       "Shared memory and tmpfs (Shmem).", L(NULL) },
        [METRIC_HOST_MEMORY_COMMITTED_AS] = { "memvisor_host_memory_committed_as_bytes", METRIC_GAUGE, "bytes",
                                              "Memory committed to all processes (Committed_AS).", L(NULL) },
        [METRIC_HOST_MEMORY_COMMIT_LIMIT] = { "memvisor_host_memory_commit_limit_bytes", METRIC_GAUGE, "bytes",
                                              "Commit limit under strict overcommit (CommitLimit).", L(NULL) },
        [METRIC_HOST_SWAP_TOTAL] = { "memvisor_host_swap_total_bytes", METRIC_GAUGE, "bytes",
                                     "Swap space (SwapTotal).", L(NULL) },
        [METRIC_HOST_SWAP_FREE] = { "memvisor_host_swap_free_bytes", METRIC_GAUGE, "bytes",
                                    "Unused swap space (SwapFree).", L(NULL) },
        [METRIC_HOST_HUGEPAGES] = { "memvisor_host_hugepages", METRIC_GAUGE, "",
                                    "Huge pages of the default size, by state (total, free, reserved, surplus).",
                                    L("state") },
        [METRIC_HOST_HUGEPAGE_SIZE] = { "memvisor_host_hugepage_size_bytes", METRIC_GAUGE, "bytes",
                                        "Default huge page size (Hugepagesize).", L(NULL) },
        [METRIC_HOST_OVERCOMMIT_RATIO] = { "memvisor_host_memory_overcommit_ratio", METRIC_GAUGE, "ratio",
                                           "Committed_AS divided by CommitLimit.", L(NULL) },
        [METRIC_HOST_NODE_MEMORY_TOTAL] = { "memvisor_host_node_memory_total_bytes", METRIC_GAUGE, "bytes",
                                            "RAM of a NUMA node (node meminfo MemTotal).", L("node") },
        [METRIC_HOST_NODE_MEMORY_FREE] = { "memvisor_host_node_memory_free_bytes", METRIC_GAUGE, "bytes",
                                           "Unused RAM of a NUMA node (MemFree).", L("node") },
        [METRIC_HOST_NODE_MEMORY_USED] = { "memvisor_host_node_memory_used_bytes", METRIC_GAUGE, "bytes",
                                           "Used RAM of a NUMA node (MemUsed).", L("node") },
        [METRIC_HOST_NODE_HUGEPAGES] = { "memvisor_host_node_hugepages", METRIC_GAUGE, "",
                                         "Huge pages of the default size on a NUMA node, by state (total, free).",
                                         L("node", "state") },

        [METRIC_GUEST_STATE] = { "memvisor_guest_state", METRIC_GAUGE, "",
                                 "1 for the state the guest is in, 0 for the others.", L("vm", "state") },
        [METRIC_GUEST_RESTARTS] = { "memvisor_guest_restarts_total", METRIC_COUNTER, "",
                                    "Restarts by the restart policy since the guest was defined.", L("vm") },
        [METRIC_GUEST_AGENT_STATE] = { "memvisor_guest_agent_state", METRIC_GAUGE, "",
                                       "1 for the state the guest agent channel is in (absent, connecting, ready), "
                                       "0 for the others. Only for running guests with GuestAgent=yes.",
                                       L("vm", "state") },
        [METRIC_GUEST_TLB_SHOOTDOWNS] = { "memvisor_guest_tlb_shootdowns_total", METRIC_COUNTER, "",
                                          "TLB shootdown interrupts a guest CPU received: the TLB: row of the "
                                          "guest's /proc/interrupts, read through its agent every "
                                          "GuestCountersIntervalSec= (off by default). Absent while not read.",
                                          L("vm", "cpu") },
        [METRIC_GUEST_CALL_INTERRUPTS] = { "memvisor_guest_function_call_interrupts_total", METRIC_COUNTER, "",
                                           "Function call interrupts a guest CPU received (the CAL: row of the "
                                           "guest's /proc/interrupts), read like the TLB shootdowns.",
                                           L("vm", "cpu") },
        [METRIC_GUEST_VMSTAT_EVENTS] = { "memvisor_guest_vmstat_events_total", METRIC_COUNTER, "",
                                         "Event counters of the guest's /proc/vmstat, read like the TLB shootdowns: "
                                         "pgfault, pgmajfault, pgmigrate_success, pgmigrate_fail, "
                                         "numa_hint_faults, numa_pages_migrated, thp_fault_alloc and, in kernels "
                                         "built with CONFIG_DEBUG_TLBFLUSH, nr_tlb_remote_flush, "
                                         "nr_tlb_remote_flush_received, nr_tlb_local_flush_all, "
                                         "nr_tlb_local_flush_one. A counter the guest kernel lacks has no series.",
                                         L("vm", "counter") },
        [METRIC_GUEST_COUNTERS_TIMESTAMP] = { "memvisor_guest_counters_read_timestamp_seconds", METRIC_GAUGE,
                                              "seconds", "When the guest's counters above were last read (host "
                                              "realtime clock).", L("vm") },
        [METRIC_GUEST_VCPUS] = { "memvisor_guest_vcpus", METRIC_GAUGE, "",
                                 "vCPUs of the running guest (threads reported by QEMU).", L("vm") },
        [METRIC_GUEST_VCPU_ALLOWED_CPUS] = { "memvisor_guest_vcpu_allowed_cpus", METRIC_GAUGE, "",
                                             "Host CPUs a vCPU thread may run on (its sched_getaffinity mask).",
                                             L("vm", "vcpu") },
        [METRIC_GUEST_VCPU_PINNED_CPU] = { "memvisor_guest_vcpu_pinned_cpu", METRIC_GAUGE, "",
                                           "1 for each host CPU a pinned vCPU may run on. Only for guests with "
                                           "VCPUAffinity= and for vCPUs whose affinity differs from the daemon's "
                                           "own (pinned by PinVCPUs or from outside).",
                                           L("vm", "vcpu", "cpu") },
        [METRIC_GUEST_VCPU_LAST_CPU] = { "memvisor_guest_vcpu_last_cpu", METRIC_GAUGE, "",
                                         "Host CPU a vCPU thread last ran on (/proc/PID/task/TID/stat field 39).",
                                         L("vm", "vcpu") },
        [METRIC_GUEST_MEMORY_SIZE] = { "memvisor_guest_memory_size_bytes", METRIC_GAUGE, "bytes",
                                       "Guest RAM size the running QEMU was started with.", L("vm") },
        [METRIC_GUEST_COMMIT_CHARGE] = { "memvisor_guest_commit_charge_bytes", METRIC_GAUGE, "bytes",
                                         "The host's Committed_AS (/proc/meminfo) once the guest ran (QMP up, any "
                                         "Prealloc= done) minus Committed_AS just before its QEMU was spawned: "
                                         "what the last start added to the host-wide commit charge. A host-wide "
                                         "difference, so whatever else ran on the host meanwhile (other starts, "
                                         "other processes) adds to it or takes from it; may be negative. QEMU's "
                                         "own commitments (its TCG translation cache, about 1 GiB) are part of "
                                         "it. While the guest runs.", L("vm") },
        [METRIC_GUEST_RESIDENT] = { "memvisor_guest_resident_bytes", METRIC_GAUGE, "bytes",
                                    "Resident set of the QEMU process (VmRSS).", L("vm") },
        [METRIC_GUEST_NODE_RESIDENT] = { "memvisor_guest_node_resident_bytes", METRIC_GAUGE, "bytes",
                                         "Memory of the QEMU process resident on a host NUMA node (numa_maps).",
                                         L("vm", "node") },
        [METRIC_GUEST_BALLOON_ACTUAL] = { "memvisor_guest_balloon_actual_bytes", METRIC_GAUGE, "bytes",
                                          "Memory the guest has with its balloon inflated (QEMU's actual size), as "
                                          "the balloon module last saw it: on each BALLOON_CHANGE event from QEMU "
                                          "and from its query-balloon every StatsIntervalSec= of [Balloon] (10 s "
                                          "by default, less often than the guest sampler's 5 s). While the balloon "
                                          "is tracked (running, Balloon=yes).", L("vm") },
        [METRIC_GUEST_BALLOON_TARGET] = { "memvisor_guest_balloon_target_bytes", METRIC_GAUGE, "bytes",
                                          "Balloon target last sent to the guest (SetBalloon, a schedule step or "
                                          "the policy); its boot memory while none was. While the balloon is "
                                          "tracked (running, Balloon=yes).", L("vm") },
        [METRIC_GUEST_BALLOON_FREE] = { "memvisor_guest_balloon_free_bytes", METRIC_GAUGE, "bytes",
                                        "Unused memory as the guest's balloon driver reports it "
                                        "(stat-free-memory).", L("vm") },
        [METRIC_GUEST_BALLOON_AVAILABLE] = { "memvisor_guest_balloon_available_bytes", METRIC_GAUGE, "bytes",
                                             "Memory available to new guest applications, from its balloon driver "
                                             "(stat-available-memory).", L("vm") },
        [METRIC_GUEST_BALLOON_TOTAL] = { "memvisor_guest_balloon_total_bytes", METRIC_GAUGE, "bytes",
                                         "Memory the guest kernel manages, from its balloon driver "
                                         "(stat-total-memory).", L("vm") },
        [METRIC_GUEST_BALLOON_DISK_CACHES] = { "memvisor_guest_balloon_disk_caches_bytes", METRIC_GAUGE, "bytes",
                                               "Guest page cache that could be reclaimed, from its balloon driver "
                                               "(stat-disk-caches).", L("vm") },
        [METRIC_GUEST_BALLOON_SWAP_IN] = { "memvisor_guest_balloon_swap_in_bytes_total", METRIC_COUNTER, "bytes",
                                           "Memory the guest swapped in since it booted, from its balloon driver "
                                           "(stat-swap-in).", L("vm") },
        [METRIC_GUEST_BALLOON_SWAP_OUT] = { "memvisor_guest_balloon_swap_out_bytes_total", METRIC_COUNTER, "bytes",
                                            "Memory the guest swapped out since it booted, from its balloon driver "
                                            "(stat-swap-out).", L("vm") },
        [METRIC_GUEST_BALLOON_MAJOR_FAULTS] = { "memvisor_guest_balloon_major_faults_total", METRIC_COUNTER, "",
                                                "Major page faults in the guest since it booted, from its balloon "
                                                "driver (stat-major-faults).", L("vm") },
        [METRIC_GUEST_BALLOON_MINOR_FAULTS] = { "memvisor_guest_balloon_minor_faults_total", METRIC_COUNTER, "",
                                                "Minor page faults in the guest since it booted, from its balloon "
                                                "driver (stat-minor-faults).", L("vm") },
        [METRIC_GUEST_BALLOON_STATS_TIMESTAMP] = { "memvisor_guest_balloon_stats_timestamp_seconds", METRIC_GAUGE,
                                                   "seconds",
                                                   "When the guest's balloon driver last reported its statistics "
                                                   "(Unix time).", L("vm") },
        [METRIC_GUEST_BALLOON_STEPS] = { "memvisor_guest_balloon_steps_total", METRIC_COUNTER, "",
                                         "Balloon schedule steps started since the daemon started. For guests "
                                         "with Balloon=yes.", L("vm") },
        [METRIC_GUEST_BALLOON_STEPS_REACHED] = { "memvisor_guest_balloon_steps_reached_total", METRIC_COUNTER, "",
                                                 "Balloon schedule steps whose target was reached.", L("vm") },
        [METRIC_GUEST_BALLOON_STEP_SECONDS] = { "memvisor_guest_balloon_step_seconds_total", METRIC_COUNTER,
                                                "seconds",
                                                "Time reached balloon steps took to reach their target, summed "
                                                "(divide by memvisor_guest_balloon_steps_reached_total).",
                                                L("vm") },
        [METRIC_GUEST_MIGRATIONS] = { "memvisor_guest_migrations_total", METRIC_COUNTER, "",
                                      "Page migrations between NUMA nodes (each move of MigratePages or a "
                                      "ping-pong) since the daemon started, failed ones included.", L("vm") },
        [METRIC_GUEST_MIGRATION_FAILURES] = { "memvisor_guest_migration_failures_total", METRIC_COUNTER, "",
                                              "Page migrations whose migrate_pages(2) failed.", L("vm") },
        [METRIC_GUEST_MIGRATION_PAGES] = { "memvisor_guest_migration_pages_total", METRIC_COUNTER, "",
                                           "Pages that page migrations moved to their target node(s) (numa_maps "
                                           "before and after).", L("vm") },
        [METRIC_GUEST_MIGRATION_BYTES] = { "memvisor_guest_migration_bytes_total", METRIC_COUNTER, "bytes",
                                           "Memory that page migrations moved to their target node(s).", L("vm") },
        [METRIC_GUEST_MIGRATION_SECONDS] = { "memvisor_guest_migration_seconds_total", METRIC_COUNTER, "seconds",
                                             "Time page migrations spent in migrate_pages(2).", L("vm") },
        [METRIC_GUEST_DIRTY_RATE] = { "memvisor_guest_dirty_rate_bytes_per_second", METRIC_GAUGE, "bytes_per_second",
                                      "The guest's dirty-page rate as the last MeasureDirtyRate measured it (QEMU's "
                                      "calc-dirty-rate, MB/s times 2^20). Absent until the first measurement since "
                                      "the daemon started; kept while the guest is defined.", L("vm") },
        [METRIC_GUEST_DIRTY_RATE_TIMESTAMP] = { "memvisor_guest_dirty_rate_timestamp_seconds", METRIC_GAUGE, "seconds",
                                                "When that measurement ended (Unix time).", L("vm") },
        [METRIC_GUEST_KVM_VM_COUNTER] = { "memvisor_guest_kvm_<stat>_total", METRIC_COUNTER, "",
                                          "KVM statistic <stat> of the VM (QMP query-stats, cumulative).", L("vm") },
        [METRIC_GUEST_KVM_VM_GAUGE] = { "memvisor_guest_kvm_<stat>", METRIC_GAUGE, "",
                                        "KVM statistic <stat> of the VM (QMP query-stats, instant or peak).",
                                        L("vm") },
        [METRIC_GUEST_KVM_VCPU_COUNTER] = { "memvisor_guest_kvm_vcpu_<stat>_total", METRIC_COUNTER, "",
                                            "KVM statistic <stat> of one vCPU (QMP query-stats, cumulative).",
                                            L("vm", "vcpu") },
        [METRIC_GUEST_KVM_VCPU_GAUGE] = { "memvisor_guest_kvm_vcpu_<stat>", METRIC_GAUGE, "",
                                          "KVM statistic <stat> of one vCPU (QMP query-stats, instant or peak).",
                                          L("vm", "vcpu") },
};

const MeminfoMetric meminfo_metrics[] = {
        { "MemTotal", METRIC_HOST_MEMORY_TOTAL },
        { "MemFree", METRIC_HOST_MEMORY_FREE },
        { "MemAvailable", METRIC_HOST_MEMORY_AVAILABLE },
        { "Buffers", METRIC_HOST_MEMORY_BUFFERS },
        { "Cached", METRIC_HOST_MEMORY_CACHED },
        { "AnonPages", METRIC_HOST_MEMORY_ANON },
        { "AnonHugePages", METRIC_HOST_MEMORY_ANON_HUGE },
        { "Shmem", METRIC_HOST_MEMORY_SHMEM },
        { "Committed_AS", METRIC_HOST_MEMORY_COMMITTED_AS },
        { "CommitLimit", METRIC_HOST_MEMORY_COMMIT_LIMIT },
        { "SwapTotal", METRIC_HOST_SWAP_TOTAL },
        { "SwapFree", METRIC_HOST_SWAP_FREE },
        { "Hugepagesize", METRIC_HOST_HUGEPAGE_SIZE },
};

const size_t n_meminfo_metrics = ELEMENTSOF(meminfo_metrics);

int metric_kvm_family(bool vcpu, const char *stat, bool cumulative, MetricFamily *ret_family, char **ret_name,
                      double *ret_scale) {
        const MetricFamily *pattern = &metric_families[vcpu ? (cumulative ? METRIC_GUEST_KVM_VCPU_COUNTER
                                                                          : METRIC_GUEST_KVM_VCPU_GAUGE)
                                                            : (cumulative ? METRIC_GUEST_KVM_VM_COUNTER
                                                                          : METRIC_GUEST_KVM_VM_GAUGE)];
        _cleanup_free_ char *s = NULL, *name = NULL;
        const char *unit = "";
        double scale = 1;
        size_t l;

        s = metric_name_sanitize(stat);
        if (!s)
                return -ENOMEM;
        l = strlen(s);
        if (l == 0 || l > 100)
                return -EINVAL;
        if (l > 3 && streq(s + l - 3, "_ns")) {
                s[l - 3] = 0;
                unit = "seconds";
                scale = 1e-9;
        }
        if (asprintf(&name, "memvisor_guest_kvm_%s%s%s%s", vcpu ? "vcpu_" : "", s,
                     *unit ? "_seconds" : "", cumulative ? "_total" : "") < 0)
                return -ENOMEM;
        if (!metric_name_is_valid(name))
                return -EINVAL;

        *ret_family = *pattern;
        ret_family->name = name;
        ret_family->unit = unit;
        *ret_name = TAKE_PTR(name);
        *ret_scale = scale;
        return 0;
}

int metric_families_markdown(FILE *f) {
        fputs("# memvisor metrics\n"
              "\n"
              "<!-- Generated by `memvisord --list-metrics` from src/metrics/metric-families.c; do not edit. -->\n"
              "\n"
              "The exporter (`GET /metrics`, Prometheus text format 0.0.4) and the varlink method\n"
              "`io.memvisor.Manager.GetMetrics` publish these families. Names carry the `memvisor_` prefix and\n"
              "base units; counters end in `_total`. `<stat>` stands for a KVM statistic from QMP `query-stats`\n"
              "(such as `pf_taken`, `exits`, `remote_tlb_flush`); statistics in nanoseconds are exported in\n"
              "seconds with a `_seconds` suffix. Guest series exist while the guest is defined; KVM series only\n"
              "while it runs under KVM.\n"
              "\n"
              "| name | type | unit | labels | description |\n"
              "| --- | --- | --- | --- | --- |\n", f);
        for (size_t i = 0; i < _METRIC_ID_MAX; i++) {
                const MetricFamily *m = &metric_families[i];

                fprintf(f, "| `%s` | %s | %s | ", m->name, metric_type_to_string(m->type),
                        isempty(m->unit) ? "-" : m->unit);
                if (!m->labels[0])
                        fputs("-", f);
                for (size_t k = 0; k < METRIC_MAX_LABELS && m->labels[k]; k++)
                        fprintf(f, "%s`%s`", k > 0 ? ", " : "", m->labels[k]);
                fprintf(f, " | %s |\n", m->help);
        }
        return ferror(f) ? -EIO : 0;
}
