/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metrics: the samplers (host memory every HostSampleIntervalSec=, guests every GuestSampleIntervalSec=), the
 * immutable snapshot they produce, the varlink methods that read it (GetHostMemory, GetHostMemoryHistory,
 * GetMetrics, WatchMetrics) and the Prometheus exporter (src/exporter) that renders it.
 *
 * Nothing here reads /proc or asks QEMU anything in a request path: the host timer reads meminfo and the
 * guests' /proc files, the guest timer queries QMP asynchronously, and each host tick seals a new MetricSet.
 * Requests render the last set; its text form is rendered once and reused until the next tick. */
#include <limits.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "host-sample.h"
#include "http-server.h"
#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "numa-worker.h"
#include "metric-families.h"
#include "numa-maps.h"
#include "numa-placement.h"
#include "proc-status.h"
#include "qmp-stats.h"

#define MAX_WATCHERS 64U
#define WATCH_MIN_USEC (100U * USEC_PER_MSEC)
#define WATCH_MAX_USEC (3600U * USEC_PER_SEC)
#define QMP_SAMPLE_TIMEOUT_USEC (5U * USEC_PER_SEC)
#define MAX_RENDER_SIZE (32U * 1024U * 1024U)

/* What one host sample leaves in the history ring. */
typedef struct HostRingEntry {
        uint64_t realtime_usec;
        uint64_t mem_total, mem_free, mem_available, committed_as, commit_limit, swap_total, swap_free;
} HostRingEntry;

/* Placement of one vCPU thread, read on the host tick. */
typedef struct VcpuData {
        unsigned index;
        bool have_affinity;
        bool pinned;                    /* named by VCPUAffinity=, or an affinity other than the daemon's */
        CpuSet allowed;
        bool have_last_cpu;
        unsigned last_cpu;
} VcpuData;

typedef struct GuestData {
        char *name;
        pid_t pid;                      /* the process the data below is about */
        bool have_status;
        ProcStatus status;
        VcpuData *vcpus;
        size_t n_vcpus;
        bool have_numa;
        NumaMaps numa;
        bool have_balloon;
        uint64_t balloon_actual;
        KvmStats *kvm;
        unsigned pending;               /* QMP requests in flight */
} GuestData;

typedef struct QmpRequest QmpRequest;
struct QmpRequest {
        ManagerMetrics *mm;
        QmpRequest *prev, *next;
        char *name;
        QmpClient *qmp;
};

typedef struct Watcher {
        ManagerMetrics *mm;
        VarlinkConnection *connection;
        sd_event_source *timer;
        uint64_t interval_usec;
} Watcher;

struct ManagerMetrics {
        Manager *manager;
        sd_event_source *host_timer, *guest_timer;

        HostSample host;
        bool have_host;
        HostRingEntry *ring;
        size_t ring_size, ring_start, ring_n;

        GuestData *guests;
        size_t n_guests;
        QmpRequest *requests;

        MetricSet *snapshot;            /* sealed; replaced, never changed */
        ByteBuffer snapshot_text;       /* its text form, rendered on first use */
        bool snapshot_text_valid;

        HttpServer *http;
        int exporter_fd;                /* socket-activated, until the server takes it */

        Watcher **watchers;
        size_t n_watchers;

        uint64_t host_samples, host_errors, guest_samples, guest_errors;
        uint64_t host_duration_usec, guest_duration_usec;
        int last_host_error;

        /* numa_maps is read in a worker thread: for a large guest it walks page tables, and during a page
         * migration it waits for the guest's mmap lock — neither may stall the event loop. */
        NumaWorker *numa_worker;
        struct NumaBatch *numa_batch;
        uint64_t numa_last_monotonic;
};

typedef struct NumaJob {
        char name[VM_NAME_MAX + 1];
        pid_t pid;
        int r;
        NumaMaps maps;
} NumaJob;

typedef struct NumaBatch {
        char *proc_root;
        NumaJob *jobs;
        size_t n_jobs;
} NumaBatch;

static NumaBatch *numa_batch_free(NumaBatch *b) {
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n_jobs; i++)
                numa_maps_done(&b->jobs[i].maps);
        free(b->jobs);
        free(b->proc_root);
        free(b);
        return NULL;
}

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* ---- guest data -------------------------------------------------------------------------------- */

static void guest_data_clear(GuestData *g) {
        g->have_status = false;
        g->vcpus = mfree(g->vcpus);
        g->n_vcpus = 0;
        g->have_numa = false;
        numa_maps_done(&g->numa);
        g->have_balloon = false;
        g->kvm = kvm_stats_free(g->kvm);
        g->pid = 0;
}

static void guest_data_done(GuestData *g) {
        guest_data_clear(g);
        free(g->name);
}

static GuestData *guest_data_find(ManagerMetrics *mm, const char *name) {
        for (size_t i = 0; i < mm->n_guests; i++)
                if (streq(mm->guests[i].name, name))
                        return &mm->guests[i];
        return NULL;
}

static GuestData *guest_data_get(ManagerMetrics *mm, const char *name) {
        GuestData *g = guest_data_find(mm, name), *t;

        if (g)
                return g;
        t = reallocarray(mm->guests, mm->n_guests + 1, sizeof(GuestData));
        if (!t)
                return NULL;
        mm->guests = t;
        g = &mm->guests[mm->n_guests];
        *g = (GuestData) { .name = strdup(name) };
        if (!g->name)
                return NULL;
        mm->n_guests++;
        return g;
}

/* Forgets guests that are no longer defined. */
static void guest_data_prune(ManagerMetrics *mm) {
        Manager *m = mm->manager;

        for (size_t i = 0; i < mm->n_guests;) {
                if (manager_find_vm(m, mm->guests[i].name)) {
                        i++;
                        continue;
                }
                guest_data_done(&mm->guests[i]);
                memmove(mm->guests + i, mm->guests + i + 1, (mm->n_guests - i - 1) * sizeof(GuestData));
                mm->n_guests--;
        }
}

static QmpRequest *qmp_request_new(ManagerMetrics *mm, Vm *vm) {
        QmpRequest *r = calloc(1, sizeof(QmpRequest));

        if (!r)
                return NULL;
        r->name = strdup(vm->name);
        if (!r->name)
                return mfree(r);
        r->mm = mm;
        r->qmp = qmp_client_ref(vm->qmp);
        r->next = mm->requests;
        if (mm->requests)
                mm->requests->prev = r;
        mm->requests = r;
        return r;
}

static void qmp_request_free(QmpRequest *r) {
        if (r->mm) {
                if (r->prev)
                        r->prev->next = r->next;
                else
                        r->mm->requests = r->next;
                if (r->next)
                        r->next->prev = r->prev;
        }
        qmp_client_unref(r->qmp);
        free(r->name);
        free(r);
}

/* The guest this reply is for, if it is still the same process. */
static GuestData *qmp_request_guest(QmpRequest *r) {
        GuestData *g;
        Vm *vm;

        if (!r->mm)
                return NULL;
        g = guest_data_find(r->mm, r->name);
        vm = manager_find_vm(r->mm->manager, r->name);
        if (!g || !vm || vm->qmp != r->qmp)
                return NULL;
        if (g->pending > 0)
                g->pending--;
        return g;
}

static void on_balloon_reply(QmpClient *q, int error, json_object *result, const char *error_class,
                             const char *error_desc, void *userdata) {
        QmpRequest *r = userdata;
        GuestData *g = qmp_request_guest(r);

        if (g) {
                int64_t actual = result ? json_get_int(result, "actual", -1) : -1;

                /* A guest without a balloon device answers DeviceNotActive: no series then. */
                g->have_balloon = error == 0 && actual >= 0;
                g->balloon_actual = actual >= 0 ? (uint64_t) actual : 0;
                /* -EIO: QEMU's answer; -ECONNRESET: QMP closed (QEMU exited or the guest let go of it) */
                if (error < 0 && error != -EIO && error != -ECONNRESET) {
                        r->mm->guest_errors++;
                        log_debug_errno(error, "query-balloon of %s failed: %m", r->name);
                }
        }
        qmp_request_free(r);
}

static void on_kvm_stats(KvmStats *stats, int error, void *userdata) {
        QmpRequest *r = userdata;
        GuestData *g = qmp_request_guest(r);

        if (g) {
                kvm_stats_free(g->kvm);
                g->kvm = NULL;
                if (error >= 0 && stats && kvm_stats_available(stats))
                        g->kvm = TAKE_PTR(stats);
                else if (error < 0 && error != -EIO && error != -ECONNRESET) {
                        r->mm->guest_errors++;
                        log_debug_errno(error, "query-stats of %s failed: %m", r->name);
                }
        }
        kvm_stats_free(stats);
        qmp_request_free(r);
}

static void sample_guest_qmp(ManagerMetrics *mm, Vm *vm, GuestData *g) {
        QmpRequest *r;
        int k;

        if (!vm->qmp || qmp_client_get_state(vm->qmp) != QMP_CLIENT_RUNNING || g->pending > 0)
                return;

        r = qmp_request_new(mm, vm);
        if (!r)
                return (void) log_oom();
        k = qmp_client_execute(vm->qmp, "query-balloon", NULL, QMP_SAMPLE_TIMEOUT_USEC, on_balloon_reply, r);
        if (k < 0) {
                qmp_request_free(r);
                mm->guest_errors++;
        } else
                g->pending++;

        r = qmp_request_new(mm, vm);
        if (!r)
                return (void) log_oom();
        k = kvm_stats_query(vm->qmp, QMP_SAMPLE_TIMEOUT_USEC, on_kvm_stats, r);
        if (k < 0) {
                qmp_request_free(r);
                mm->guest_errors++;
        } else
                g->pending++;
}

/* /proc reads for one guest: on the host tick, so that the snapshot's RSS is fresh. */
static void sample_guest_proc(ManagerMetrics *mm, Vm *vm, GuestData *g) {
        const char *proc = mm->manager->config.proc_root;
        char path[256];
        int r;

        if (g->pid != vm->pid) {
                guest_data_clear(g);
                g->pid = vm->pid;
        }

        (void) snprintf(path, sizeof(path), "%s/%i/status", proc, (int) vm->pid);
        r = proc_status_read(path, &g->status);
        g->have_status = r >= 0;
        if (r < 0 && r != -ENOENT) {
                mm->guest_errors++;
                log_debug_errno(r, "Failed to read %s, ignoring: %m", path);
        }
}

/* Affinity (sched_getaffinity) and last CPU (/proc/PID/task/TID/stat) of each vCPU thread: one system call
 * and one small procfs read per vCPU, on the host tick. own is the daemon's affinity (what QEMU inherited),
 * NULL when unknown. */
static void sample_guest_vcpus(ManagerMetrics *mm, Vm *vm, GuestData *g, const CpuSet *own) {
        const VmSpec *spec = vm->running_spec ?: vm->spec;
        _cleanup_(vcpu_pin_map_done) VcpuPinMap map = {};
        char path[PATH_MAX];
        int r;

        if (g->n_vcpus != vm->n_vcpus) {
                VcpuData *t = reallocarray(g->vcpus, MAX(vm->n_vcpus, (size_t) 1), sizeof(VcpuData));

                if (!t)
                        return (void) log_oom();
                g->vcpus = t;
                g->n_vcpus = vm->n_vcpus;
        }
        if (spec && spec->vcpu_affinity)
                (void) vcpu_pin_map_parse(spec->vcpu_affinity, &map, NULL);

        for (size_t i = 0; i < vm->n_vcpus; i++) {
                const VmVcpu *v = &vm->vcpus[i];
                VcpuData *d = &g->vcpus[i];

                *d = (VcpuData) { .index = v->index };
                if (v->thread_id <= 0)
                        continue;

                r = thread_get_affinity(v->thread_id, &d->allowed);
                d->have_affinity = r >= 0;
                if (r >= 0)
                        d->pinned = vcpu_pin_map_find(&map, v->index) || (own && !cpu_set_equal(&d->allowed, own));
                else if (r != -ESRCH) {
                        mm->guest_errors++;
                        log_debug_errno(r, "Failed to read the affinity of thread %i, ignoring: %m",
                                        (int) v->thread_id);
                }

                (void) snprintf(path, sizeof(path), "%s/%i/task/%i/stat", mm->manager->config.proc_root,
                                (int) vm->pid, (int) v->thread_id);
                r = task_stat_read_last_cpu(path, &d->last_cpu);
                d->have_last_cpu = r >= 0;
                if (r < 0 && r != -ENOENT) {
                        mm->guest_errors++;
                        log_debug_errno(r, "Failed to read %s, ignoring: %m", path);
                }
        }
}


/* In the worker thread: touches nothing but the batch. */
static int numa_batch_run(NumaWorker *w, void *arg) {
        NumaBatch *b = arg;

        for (size_t i = 0; i < b->n_jobs; i++) {
                NumaJob *j = &b->jobs[i];
                char path[PATH_MAX];

                (void) snprintf(path, sizeof(path), "%s/%i/numa_maps", b->proc_root, (int) j->pid);
                j->r = numa_maps_read(path, &j->maps);
        }
        return 0;
}

/* Back on the event loop: hand the results to guests that still run the same process. */
static void numa_batch_done(NumaWorker *w, int code, bool done, int result, void *userdata) {
        ManagerMetrics *mm = userdata;
        NumaBatch *b = mm->numa_batch;

        if (!done)
                return;
        for (size_t i = 0; b && i < b->n_jobs; i++) {
                NumaJob *j = &b->jobs[i];
                GuestData *g = guest_data_find(mm, j->name);

                if (!g || g->pid != j->pid)
                        continue;
                numa_maps_done(&g->numa);
                g->have_numa = j->r >= 0;
                if (j->r >= 0) {
                        g->numa = j->maps;
                        j->maps = (NumaMaps) {};
                } else if (j->r != -ENOENT) {
                        mm->guest_errors++;
                        log_debug_errno(j->r, "Failed to read numa_maps of pid %i, ignoring: %m", (int) j->pid);
                }
        }
        mm->numa_batch = numa_batch_free(mm->numa_batch);
        mm->numa_worker = numa_worker_free(w);
}

/* Starts reading numa_maps of every running guest off the loop, unless the last batch is still at it. */
static void sample_guests_numa(ManagerMetrics *mm) {
        Manager *m = mm->manager;
        NumaBatch *b;
        int r;

        if (mm->numa_worker)
                return;
        b = calloc(1, sizeof(NumaBatch));
        if (!b || !(b->proc_root = strdup(m->config.proc_root)) ||
            !(b->jobs = calloc(MAX(m->n_vms, (size_t) 1), sizeof(NumaJob)))) {
                numa_batch_free(b);
                return (void) log_oom();
        }
        for (size_t i = 0; i < m->n_vms; i++) {
                Vm *vm = m->vms[i];

                if (!vm_is_active(vm) || vm->pid <= 0)
                        continue;
                snprintf(b->jobs[b->n_jobs].name, sizeof(b->jobs[0].name), "%s", vm->name);
                b->jobs[b->n_jobs++].pid = vm->pid;
        }
        if (b->n_jobs == 0) {
                numa_batch_free(b);
                return;
        }
        mm->numa_batch = b;
        r = numa_worker_start(m->event, "metrics-numa-maps", numa_batch_run, b, numa_batch_done, mm, &mm->numa_worker);
        if (r < 0) {
                log_warning_errno(r, "Failed to start the numa_maps reader, skipping this sample: %m");
                mm->numa_batch = numa_batch_free(mm->numa_batch);
        }
}

/* ---- snapshot ---------------------------------------------------------------------------------- */

static int add(MetricSet *s, MetricId id, const char *const *labels, double v) {
        return metric_set_add(s, &metric_families[id], labels, v);
}

static int build_host(MetricSet *s, const HostSample *h) {
        char node[24];
        int r;

        for (size_t i = 0; i < n_meminfo_metrics; i++) {
                uint64_t v;

                if (meminfo_get(&h->meminfo, meminfo_metrics[i].field, &v) < 0)
                        continue;
                r = add(s, meminfo_metrics[i].id, NULL, (double) v);
                if (r < 0)
                        return r;
        }
        if ((r = add(s, METRIC_HOST_OVERCOMMIT_RATIO, NULL, host_memory_overcommit_ratio(&h->host))) < 0 ||
            (r = add(s, METRIC_HOST_HUGEPAGES, STRV("total"), (double) h->hugepages_total)) < 0 ||
            (r = add(s, METRIC_HOST_HUGEPAGES, STRV("free"), (double) h->hugepages_free)) < 0 ||
            (r = add(s, METRIC_HOST_HUGEPAGES, STRV("reserved"), (double) h->hugepages_rsvd)) < 0 ||
            (r = add(s, METRIC_HOST_HUGEPAGES, STRV("surplus"), (double) h->hugepages_surp)) < 0)
                return r;

        for (size_t i = 0; i < h->n_nodes; i++) {
                const NodeMemory *n = &h->nodes[i];

                (void) snprintf(node, sizeof(node), "%u", n->node);
                if ((r = add(s, METRIC_HOST_NODE_MEMORY_TOTAL, STRV(node), (double) n->mem_total)) < 0 ||
                    (r = add(s, METRIC_HOST_NODE_MEMORY_FREE, STRV(node), (double) n->mem_free)) < 0 ||
                    (r = add(s, METRIC_HOST_NODE_MEMORY_USED, STRV(node), (double) n->mem_used)) < 0 ||
                    (r = add(s, METRIC_HOST_NODE_HUGEPAGES, STRV(node, "total"), (double) n->hugepages_total)) < 0 ||
                    (r = add(s, METRIC_HOST_NODE_HUGEPAGES, STRV(node, "free"), (double) n->hugepages_free)) < 0)
                        return r;
        }
        return 0;
}

static int build_kvm_set(MetricSet *s, const char *vm, const KvmStatSet *set, const char *vcpu) {
        int r;

        for (size_t i = 0; i < set->n; i++) {
                _cleanup_free_ char *name = NULL;
                MetricFamily f;
                double scale;

                r = metric_kvm_family(!!vcpu, set->stats[i].name, set->stats[i].cumulative, &f, &name, &scale);
                if (r < 0)
                        continue;       /* a name we cannot export */
                r = metric_set_add(s, &f, vcpu ? STRV(vm, vcpu) : STRV(vm), (double) set->stats[i].value * scale);
                if (r == -EEXIST)
                        continue;       /* same name, other type: keep the first */
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Running totals of the NUMA and balloon modules (in memory, no I/O): for every defined guest, balloon steps
 * for those with Balloon=yes; 0 until something happened, so that rate() sees the first increase. */
static int build_guest_totals(Manager *m, MetricSet *s, Vm *vm) {
        const VmSpec *spec = vm->running_spec ?: vm->spec;
        const char *const *l = STRV(vm->name);
        ManagerNumaInfo n = {};
        ManagerBalloonInfo b = {};
        int r;

        (void) manager_numa_guest_info(m, vm->name, &n);
        if ((r = add(s, METRIC_GUEST_MIGRATIONS, l, (double) n.migrations_total)) < 0 ||
            (r = add(s, METRIC_GUEST_MIGRATION_FAILURES, l, (double) n.migration_failures)) < 0 ||
            (r = add(s, METRIC_GUEST_MIGRATION_PAGES, l, (double) n.pages_moved)) < 0 ||
            (r = add(s, METRIC_GUEST_MIGRATION_BYTES, l, (double) n.bytes_moved)) < 0 ||
            (r = add(s, METRIC_GUEST_MIGRATION_SECONDS, l, (double) n.migrate_usec / 1e6)) < 0)
                return r;

        if (!spec || !spec->balloon)
                return 0;
        (void) manager_balloon_guest_info(m, vm->name, &b);
        if ((r = add(s, METRIC_GUEST_BALLOON_STEPS, l, (double) b.steps_total)) < 0 ||
            (r = add(s, METRIC_GUEST_BALLOON_STEPS_REACHED, l, (double) b.steps_reached_total)) < 0 ||
            (r = add(s, METRIC_GUEST_BALLOON_STEP_SECONDS, l, (double) b.steps_reached_usec / 1e6)) < 0)
                return r;
        return 0;
}

/* The balloon target and the guest's own statistics, while the balloon module tracks the guest. */
static int build_guest_balloon(Manager *m, MetricSet *s, Vm *vm) {
        const char *const *l = STRV(vm->name);
        ManagerBalloonInfo b;
        int r;

        if (manager_balloon_guest_info(m, vm->name, &b) < 0 || !b.tracking)
                return 0;
        r = add(s, METRIC_GUEST_BALLOON_TARGET, l, (double) b.target_bytes);
        if (r < 0 || !balloon_guest_stats_valid(&b.stats))
                return r;

        const struct {
                MetricId id;
                uint64_t value;
        } stats[] = {
                { METRIC_GUEST_BALLOON_FREE, b.stats.free_bytes },
                { METRIC_GUEST_BALLOON_AVAILABLE, b.stats.available_bytes },
                { METRIC_GUEST_BALLOON_TOTAL, b.stats.total_bytes },
                { METRIC_GUEST_BALLOON_DISK_CACHES, b.stats.disk_caches_bytes },
                { METRIC_GUEST_BALLOON_SWAP_IN, b.stats.swap_in_bytes },
                { METRIC_GUEST_BALLOON_SWAP_OUT, b.stats.swap_out_bytes },
                { METRIC_GUEST_BALLOON_MAJOR_FAULTS, b.stats.major_faults },
                { METRIC_GUEST_BALLOON_MINOR_FAULTS, b.stats.minor_faults },
        };
        for (size_t i = 0; i < ELEMENTSOF(stats); i++) {
                if (stats[i].value == BALLOON_STAT_UNSET)
                        continue;       /* the guest does not report it */
                r = add(s, stats[i].id, l, (double) stats[i].value);
                if (r < 0)
                        return r;
        }
        return add(s, METRIC_GUEST_BALLOON_STATS_TIMESTAMP, l, (double) b.stats.last_update_sec);
}

static int build_guest_vcpus(MetricSet *s, Vm *vm, const GuestData *g) {
        int r = 0;

        for (size_t i = 0; i < g->n_vcpus; i++) {
                const VcpuData *d = &g->vcpus[i];
                char vcpu[24], cpu[24];

                (void) snprintf(vcpu, sizeof(vcpu), "%u", d->index);
                if (d->have_affinity) {
                        r = add(s, METRIC_GUEST_VCPU_ALLOWED_CPUS, STRV(vm->name, vcpu), cpu_set_count(&d->allowed));
                        /* One series per allowed CPU only when pinned: bounded by what was asked for. */
                        for (unsigned c = 0; r >= 0 && d->pinned && c < CPU_SET_MAX; c++) {
                                if (!cpu_set_contains(&d->allowed, c))
                                        continue;
                                (void) snprintf(cpu, sizeof(cpu), "%u", c);
                                r = add(s, METRIC_GUEST_VCPU_PINNED_CPU, STRV(vm->name, vcpu, cpu), 1);
                        }
                }
                if (r >= 0 && d->have_last_cpu)
                        r = add(s, METRIC_GUEST_VCPU_LAST_CPU, STRV(vm->name, vcpu), d->last_cpu);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int build_guest(Manager *m, MetricSet *s, Vm *vm, const GuestData *g) {
        int r;

        for (VmState st = 0; st < _VM_STATE_MAX; st++) {
                r = add(s, METRIC_GUEST_STATE, STRV(vm->name, vm_state_to_string(st)), st == vm->state);
                if (r < 0)
                        return r;
        }
        r = add(s, METRIC_GUEST_RESTARTS, STRV(vm->name), vm->restarts);
        if (r >= 0)
                r = build_guest_totals(m, s, vm);
        if (r < 0)
                return r;
        if (!vm_is_active(vm))
                return 0;

        r = add(s, METRIC_GUEST_VCPUS, STRV(vm->name), (double) vm->n_vcpus);
        if (r >= 0 && vm->running_spec)
                r = add(s, METRIC_GUEST_MEMORY_SIZE, STRV(vm->name), (double) vm->running_spec->memory_bytes);
        if (r >= 0)
                r = build_guest_balloon(m, s, vm);
        if (r < 0)
                return r;
        if (!g || g->pid != vm->pid)
                return 0;

        r = build_guest_vcpus(s, vm, g);
        if (r < 0)
                return r;
        if (g->have_status && (r = add(s, METRIC_GUEST_RESIDENT, STRV(vm->name), (double) g->status.vm_rss)) < 0)
                return r;
        if (g->have_numa)
                for (size_t i = 0; i < g->numa.n_nodes; i++) {
                        char node[24];

                        if (g->numa.nodes[i].bytes == 0 && i + 1 < g->numa.n_nodes)
                                continue;
                        (void) snprintf(node, sizeof(node), "%zu", i);
                        r = add(s, METRIC_GUEST_NODE_RESIDENT, STRV(vm->name, node), (double) g->numa.nodes[i].bytes);
                        if (r < 0)
                                return r;
                }
        if (g->have_balloon &&
            (r = add(s, METRIC_GUEST_BALLOON_ACTUAL, STRV(vm->name), (double) g->balloon_actual)) < 0)
                return r;
        if (g->kvm) {
                r = build_kvm_set(s, vm->name, &g->kvm->vm, NULL);
                for (size_t i = 0; r >= 0 && i < g->kvm->n_vcpus; i++) {
                        char vcpu[24];

                        (void) snprintf(vcpu, sizeof(vcpu), "%zu", i);
                        r = build_kvm_set(s, vm->name, &g->kvm->vcpus[i], vcpu);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int build_snapshot(ManagerMetrics *mm) {
        _cleanup_(metric_set_freep) MetricSet *s = metric_set_new();
        Manager *m = mm->manager;
        int r;

        if (!s)
                return -ENOMEM;
        if (mm->have_host) {
                r = build_host(s, &mm->host);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < m->n_vms; i++) {
                r = build_guest(m, s, m->vms[i], guest_data_find(mm, m->vms[i]->name));
                if (r < 0)
                        return r;
        }
        metric_set_seal(s);

        metric_set_free(mm->snapshot);
        mm->snapshot = TAKE_PTR(s);
        mm->snapshot_text_valid = false;
        return 0;
}

/* The families of the daemon itself: counters that change with every request, so built per request (from
 * counters in memory, no I/O). */
static int build_daemon(ManagerMetrics *mm, MetricSet *s) {
        Manager *m = mm->manager;
        int codes[16], r;
        uint64_t counts[16];
        size_t n;

        if ((r = add(s, METRIC_DAEMON_VARLINK_CONNECTIONS, NULL, varlink_server_connection_count(m->varlink))) < 0 ||
            (r = add(s, METRIC_DAEMON_VARLINK_CONNECTIONS_TOTAL, NULL,
                     (double) varlink_server_connections_total(m->varlink))) < 0 ||
            (r = add(s, METRIC_DAEMON_VARLINK_CALLS, NULL, (double) varlink_server_calls_total(m->varlink))) < 0 ||
            (r = add(s, METRIC_DAEMON_VARLINK_PROTOCOL_ERRORS, NULL,
                     (double) varlink_server_protocol_errors(m->varlink))) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLE_DURATION, STRV("host"), (double) mm->host_duration_usec / 1e6)) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLE_DURATION, STRV("guest"), (double) mm->guest_duration_usec / 1e6)) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLES, STRV("host"), (double) mm->host_samples)) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLES, STRV("guest"), (double) mm->guest_samples)) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLE_ERRORS, STRV("host"), (double) mm->host_errors)) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLE_ERRORS, STRV("guest"), (double) mm->guest_errors)) < 0)
                return r;
        if (mm->have_host &&
            (r = add(s, METRIC_DAEMON_LAST_SAMPLE, NULL, (double) mm->host.realtime_usec / 1e6)) < 0)
                return r;
        if (mm->http) {
                if ((r = add(s, METRIC_DAEMON_SCRAPES, NULL, (double) http_server_scrapes(mm->http))) < 0 ||
                    (r = add(s, METRIC_DAEMON_HTTP_CONNECTIONS, NULL, http_server_connections(mm->http))) < 0)
                        return r;
                for (HttpEviction e = 0; e < _HTTP_EVICTION_MAX; e++)
                        if ((r = add(s, METRIC_DAEMON_HTTP_EVICTED, STRV(http_eviction_to_string(e)),
                                     (double) http_server_evictions(mm->http, e))) < 0)
                                return r;
                for (HttpRefusal f = 0; f < _HTTP_REFUSAL_MAX; f++)
                        if ((r = add(s, METRIC_DAEMON_HTTP_REFUSED, STRV(http_refusal_to_string(f)),
                                     (double) http_server_refusals(mm->http, f))) < 0)
                                return r;
                n = http_server_responses(mm->http, codes, counts, ELEMENTSOF(codes));
                for (size_t i = 0; i < n; i++) {
                        char code[16];

                        (void) snprintf(code, sizeof(code), "%d", codes[i]);
                        r = add(s, METRIC_DAEMON_HTTP_RESPONSES, STRV(code), (double) counts[i]);
                        if (r < 0)
                                return r;
                }
        }
        metric_set_seal(s);
        return 0;
}

static int render_metrics(ByteBuffer *out, size_t max_size, void *userdata) {
        ManagerMetrics *mm = userdata;
        _cleanup_(metric_set_freep) MetricSet *d = metric_set_new();
        int r;

        if (!d)
                return -ENOMEM;
        r = build_daemon(mm, d);
        if (r < 0)
                return r;
        /* memvisor_daemon_* sorts before memvisor_guest_* and memvisor_host_*: the order stays stable. */
        r = metric_set_render_text(d, out, max_size);
        if (r < 0)
                return r;
        if (!mm->snapshot)
                return 0;
        if (!mm->snapshot_text_valid) {
                byte_buffer_consume(&mm->snapshot_text, byte_buffer_size(&mm->snapshot_text));
                r = metric_set_render_text(mm->snapshot, &mm->snapshot_text, MAX_RENDER_SIZE);
                if (r < 0)
                        return r;
                mm->snapshot_text_valid = true;
        }
        return byte_buffer_append(out, byte_buffer_head(&mm->snapshot_text), byte_buffer_size(&mm->snapshot_text),
                                  max_size);
}

/* ---- host samples ------------------------------------------------------------------------------ */

static void ring_resize(ManagerMetrics *mm, size_t size) {
        HostRingEntry *t;
        size_t keep;

        if (size == mm->ring_size || size == 0)
                return;
        t = calloc(size, sizeof(HostRingEntry));
        if (!t)
                return (void) log_oom();
        keep = MIN(mm->ring_n, size);
        for (size_t i = 0; i < keep; i++)
                t[i] = mm->ring[(mm->ring_start + mm->ring_n - keep + i) % mm->ring_size];
        free(mm->ring);
        mm->ring = t;
        mm->ring_size = size;
        mm->ring_start = 0;
        mm->ring_n = keep;
}

static void ring_push(ManagerMetrics *mm, const HostSample *h) {
        HostRingEntry e = {
                .realtime_usec = h->realtime_usec,
                .mem_total = h->host.mem_total,
                .mem_free = h->host.mem_free,
                .mem_available = h->host.mem_available,
                .committed_as = h->host.committed_as,
                .commit_limit = h->host.commit_limit,
                .swap_total = h->host.swap_total,
                .swap_free = h->host.swap_free,
        };

        ring_resize(mm, mm->manager->config.host_history);
        if (!mm->ring)
                return;
        if (mm->ring_n < mm->ring_size)
                mm->ring[(mm->ring_start + mm->ring_n++) % mm->ring_size] = e;
        else {
                mm->ring[mm->ring_start] = e;
                mm->ring_start = (mm->ring_start + 1) % mm->ring_size;
        }
}

static int arm_timer(ManagerMetrics *mm, sd_event_source **source, uint64_t interval,
                     sd_event_time_handler_t cb, const char *description) {
        int r;

        if (*source) {
                r = sd_event_source_set_time_relative(*source, interval);
                if (r >= 0)
                        r = sd_event_source_set_enabled(*source, SD_EVENT_ONESHOT);
                return r;
        }
        r = sd_event_add_time_relative(mm->manager->event, source, CLOCK_MONOTONIC, interval, 0, cb, mm);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(*source, description);
        return 0;
}

static void sample_host(ManagerMetrics *mm) {
        Manager *m = mm->manager;
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        bool have_own;
        HostSample h;
        CpuSet own;
        int r;

        r = host_sample_read(m->config.proc_root, m->config.sys_root, &h);
        if (r < 0) {
                mm->host_errors++;
                if (r != mm->last_host_error)
                        log_warning_errno(r, "Failed to sample host memory from %s and %s, keeping the last sample: %m",
                                          m->config.proc_root, m->config.sys_root);
                mm->last_host_error = r;
        } else {
                if (mm->last_host_error != 0)
                        log_info("Sampling host memory works again.");
                mm->last_host_error = 0;
                host_sample_done(&mm->host);
                mm->host = h;
                mm->have_host = true;
                mm->host_samples++;
                ring_push(mm, &h);
        }

        /* The guests' resident memory and vCPU placement, with the same freshness as the host's. */
        have_own = thread_get_affinity(0, &own) >= 0;
        guest_data_prune(mm);
        for (size_t i = 0; i < m->n_vms; i++) {
                Vm *vm = m->vms[i];
                GuestData *g;

                if (!vm_is_active(vm) || vm->pid <= 0) {
                        if ((g = guest_data_find(mm, vm->name)))
                                guest_data_clear(g);
                        continue;
                }
                g = guest_data_get(mm, vm->name);
                if (!g)
                        return (void) log_oom();
                sample_guest_proc(mm, vm, g);
                sample_guest_vcpus(mm, vm, g, have_own ? &own : NULL);
        }

        mm->host_duration_usec = now_usec(CLOCK_MONOTONIC) - start;
        r = build_snapshot(mm);
        if (r < 0)
                log_warning_errno(r, "Failed to build the metrics snapshot, keeping the last one: %m");
}

static int on_host_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ManagerMetrics *mm = userdata;
        int r;

        sample_host(mm);
        r = arm_timer(mm, &mm->host_timer, mm->manager->config.host_sample_interval_usec, on_host_timer,
                      "metrics-host-sampler");
        if (r < 0)
                log_error_errno(r, "Failed to re-arm the host sampler: %m");
        return 0;
}

static int on_guest_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ManagerMetrics *mm = userdata;
        Manager *m = mm->manager;
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        bool numa_missing = false;
        int r;

        guest_data_prune(mm);
        for (size_t i = 0; i < m->n_vms; i++) {
                Vm *vm = m->vms[i];
                GuestData *g;

                if (!vm_is_active(vm) || vm->pid <= 0)
                        continue;
                g = guest_data_get(mm, vm->name);
                if (!g) {
                        log_oom();
                        break;
                }
                if (g->pid != vm->pid) {
                        guest_data_clear(g);
                        g->pid = vm->pid;
                }
                sample_guest_qmp(mm, vm, g);
                if (!g->have_numa)
                        numa_missing = true;
        }
        /* On NumaMapsIntervalSec, and at once for a guest that has no reading yet. */
        if (numa_missing || mm->numa_last_monotonic == 0 ||
            start - mm->numa_last_monotonic >= m->config.numa_sample_interval_usec) {
                mm->numa_last_monotonic = start;
                sample_guests_numa(mm);
        }
        mm->guest_samples++;
        mm->guest_duration_usec = now_usec(CLOCK_MONOTONIC) - start;

        r = arm_timer(mm, &mm->guest_timer, m->config.guest_sample_interval_usec, on_guest_timer,
                      "metrics-guest-sampler");
        if (r < 0)
                log_error_errno(r, "Failed to re-arm the guest sampler: %m");
        return 0;
}

/* ---- JSON views -------------------------------------------------------------------------------- */

static json_object *host_memory_json(const HostSample *h) {
        _cleanup_json_ json_object *o = json_object_new_object(), *nodes = json_object_new_array(),
                                   *huge = json_object_new_object();

        if (!o || !nodes || !huge)
                return NULL;
        if (json_add_uint(o, "realtimeUSec", h->realtime_usec) < 0 ||
            json_add_uint(o, "memTotalBytes", h->host.mem_total) < 0 ||
            json_add_uint(o, "memFreeBytes", h->host.mem_free) < 0 ||
            json_add_uint(o, "memAvailableBytes", h->host.mem_available) < 0 ||
            json_add_uint(o, "committedASBytes", h->host.committed_as) < 0 ||
            json_add_uint(o, "commitLimitBytes", h->host.commit_limit) < 0 ||
            json_add_double(o, "overcommitRatio", host_memory_overcommit_ratio(&h->host)) < 0 ||
            json_add_uint(o, "swapTotalBytes", h->host.swap_total) < 0 ||
            json_add_uint(o, "swapFreeBytes", h->host.swap_free) < 0 ||
            json_add_uint(huge, "total", h->hugepages_total) < 0 ||
            json_add_uint(huge, "free", h->hugepages_free) < 0 ||
            json_add_uint(huge, "reserved", h->hugepages_rsvd) < 0 ||
            json_add_uint(huge, "surplus", h->hugepages_surp) < 0 ||
            json_add_uint(huge, "pageSizeBytes", h->hugepage_size) < 0)
                return NULL;
        for (size_t i = 0; i < h->n_nodes; i++) {
                _cleanup_json_ json_object *n = json_object_new_object();
                const NodeMemory *nm = &h->nodes[i];

                if (!n || json_add_uint(n, "node", nm->node) < 0 ||
                    json_add_uint(n, "memTotalBytes", nm->mem_total) < 0 ||
                    json_add_uint(n, "memFreeBytes", nm->mem_free) < 0 ||
                    json_add_uint(n, "memUsedBytes", nm->mem_used) < 0 ||
                    json_add_uint(n, "hugePagesTotal", nm->hugepages_total) < 0 ||
                    json_add_uint(n, "hugePagesFree", nm->hugepages_free) < 0 ||
                    json_object_array_add(nodes, TAKE_PTR(n)) < 0)
                        return NULL;
        }
        if (json_add(o, "hugePages", TAKE_PTR(huge)) < 0 || json_add(o, "nodes", TAKE_PTR(nodes)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static int reply_no_sample(VarlinkConnection *c, ManagerMetrics *mm) {
        _cleanup_json_ json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "reason", mm->last_host_error < 0 ? strerror(-mm->last_host_error)
                                                                        : "no sample taken yet") < 0)
                return -ENOMEM;
        return varlink_error(c, "io.memvisor.Manager.NoSample", TAKE_PTR(p));
}

int manager_metrics_host_memory(Manager *m, json_object **ret_reply, ManagerError *ret_error) {
        ManagerMetrics *mm = m->metrics;
        _cleanup_json_ json_object *p = json_object_new_object();
        json_object *sample;

        if (!mm || !mm->have_host) {
                json_object *e = json_object_new_object();

                if (!e || json_add_string(e, "reason", mm && mm->last_host_error < 0 ? strerror(-mm->last_host_error)
                                                                                     : "no sample taken yet") < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
                return manager_error_set(ret_error, -ENODATA, "io.memvisor.Manager.NoSample", e);
        }
        sample = host_memory_json(&mm->host);
        if (!p || !sample || json_add(p, "sample", sample) < 0 ||
            json_add_uint(p, "sampleIntervalUSec", m->config.host_sample_interval_usec) < 0 ||
            json_add_uint(p, "sampleDurationUSec", mm->host.duration_usec) < 0)
                return -ENOMEM;
        *ret_reply = TAKE_PTR(p);
        return 0;
}

static int vl_get_host_memory(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        ManagerError e = {};
        json_object *reply = NULL;
        int r;

        r = manager_metrics_host_memory(userdata, &reply, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        return varlink_reply(c, reply);
}

static int vl_get_host_memory_history(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                      void *userdata) {
        Manager *m = userdata;
        ManagerMetrics *mm = m->metrics;
        _cleanup_json_ json_object *p = json_object_new_object(), *samples = json_object_new_array();
        json_object *limit_o = NULL;
        size_t limit = mm ? mm->ring_n : 0;

        if (json_object_object_get_ex(parameters, "limit", &limit_o) && limit_o) {
                int64_t l = json_object_get_int64(limit_o);
                if (l < 1 || l > 86400)
                        return varlink_error_invalid_parameter(c, "limit");
                limit = MIN(limit, (size_t) l);
        }
        if (!p || !samples)
                return -ENOMEM;
        for (size_t i = mm ? mm->ring_n - limit : 0; mm && i < mm->ring_n; i++) {
                const HostRingEntry *e = &mm->ring[(mm->ring_start + i) % mm->ring_size];
                _cleanup_json_ json_object *o = json_object_new_object();

                if (!o || json_add_uint(o, "realtimeUSec", e->realtime_usec) < 0 ||
                    json_add_uint(o, "memTotalBytes", e->mem_total) < 0 ||
                    json_add_uint(o, "memFreeBytes", e->mem_free) < 0 ||
                    json_add_uint(o, "memAvailableBytes", e->mem_available) < 0 ||
                    json_add_uint(o, "committedASBytes", e->committed_as) < 0 ||
                    json_add_uint(o, "commitLimitBytes", e->commit_limit) < 0 ||
                    json_add_uint(o, "swapTotalBytes", e->swap_total) < 0 ||
                    json_add_uint(o, "swapFreeBytes", e->swap_free) < 0 ||
                    json_object_array_add(samples, TAKE_PTR(o)) < 0)
                        return -ENOMEM;
        }
        if (json_add_uint(p, "sampleIntervalUSec", m->config.host_sample_interval_usec) < 0 ||
            json_add_uint(p, "capacity", m->config.host_history) < 0 || json_add(p, "samples", TAKE_PTR(samples)) < 0)
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(p));
}

static int vl_get_metrics(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        ManagerMetrics *mm = m->metrics;
        _cleanup_(metric_set_freep) MetricSet *d = metric_set_new();
        _cleanup_json_ json_object *p = json_object_new_object(), *arr = json_object_new_array();
        int r;

        if (!mm)
                return reply_no_sample(c, mm);
        if (!d || !p || !arr)
                return -ENOMEM;
        r = build_daemon(mm, d);
        if (r >= 0)
                r = metric_set_to_json(d, arr);
        if (r >= 0 && mm->snapshot)
                r = metric_set_to_json(mm->snapshot, arr);
        if (r < 0)
                return r;
        if (json_add(p, "metrics", TAKE_PTR(arr)) < 0 ||
            (mm->have_host && json_add_uint(p, "realtimeUSec", mm->host.realtime_usec) < 0))
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(p));
}

static Watcher *watcher_free(Watcher *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->timer);
        varlink_connection_set_close_callback(w->connection, NULL, NULL);
        varlink_connection_unref(w->connection);
        return mfree(w);
}

static void watcher_remove(ManagerMetrics *mm, Watcher *w) {
        for (size_t i = 0; i < mm->n_watchers; i++)
                if (mm->watchers[i] == w) {
                        memmove(mm->watchers + i, mm->watchers + i + 1, (mm->n_watchers - i - 1) * sizeof(Watcher *));
                        mm->n_watchers--;
                        break;
                }
        watcher_free(w);
}

static void watcher_closed(VarlinkConnection *c, void *userdata) {
        Watcher *w = userdata;
        watcher_remove(w->mm, w);
}

static int watcher_send(Watcher *w) {
        json_object *p = json_object_new_object(), *sample;

        if (!p)
                return -ENOMEM;
        sample = w->mm->have_host ? host_memory_json(&w->mm->host) : NULL;
        if (!sample || json_add(p, "sample", sample) < 0) {
                json_object_put(p);
                return w->mm->have_host ? -ENOMEM : 0;
        }
        return varlink_notify(w->connection, p);
}

static int on_watch_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Watcher *w = userdata;
        VarlinkConnection *c;
        bool closed;
        int r;

        if (varlink_connection_is_closed(w->connection)) {
                watcher_remove(w->mm, w);
                return 0;
        }
        /* A sample over the client's output limit closes the connection, and the close callback frees w (and
         * its reference): look at the connection through a reference of our own afterwards, not through w. */
        c = varlink_connection_ref(w->connection);
        r = watcher_send(w);
        closed = varlink_connection_is_closed(c);
        varlink_connection_unref(c);
        if (r < 0 && !closed)
                log_debug_errno(r, "Failed to send a host sample to a watcher: %m");
        if (closed)
                return 0;       /* the close callback removed it */
        (void) sd_event_source_set_time(s, usec + w->interval_usec);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static int vl_watch_metrics(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        ManagerMetrics *mm = m->metrics;
        uint64_t interval = m->config.host_sample_interval_usec;
        json_object *o = NULL;
        Watcher *w, **t;
        int r;

        if (json_object_object_get_ex(parameters, "intervalUSec", &o) && o) {
                int64_t v = json_object_get_int64(o);
                if (v < (int64_t) WATCH_MIN_USEC || v > (int64_t) WATCH_MAX_USEC)
                        return varlink_error_invalid_parameter(c, "intervalUSec");
                interval = (uint64_t) v;
        }
        if (!mm)
                return reply_no_sample(c, mm);
        if (mm->n_watchers >= MAX_WATCHERS)
                return varlink_error(c, "io.memvisor.Manager.TooManyWatchers", NULL);

        w = calloc(1, sizeof(Watcher));
        if (!w)
                return -ENOMEM;
        *w = (Watcher) { .mm = mm, .connection = varlink_connection_ref(c), .interval_usec = interval };
        r = sd_event_add_time(m->event, &w->timer, CLOCK_MONOTONIC, now_usec(CLOCK_MONOTONIC) + interval, 0,
                              on_watch_timer, w);
        if (r < 0) {
                watcher_free(w);
                return r;
        }
        (void) sd_event_source_set_description(w->timer, "metrics-watch");
        t = reallocarray(mm->watchers, mm->n_watchers + 1, sizeof(Watcher *));
        if (!t) {
                watcher_free(w);
                return -ENOMEM;
        }
        mm->watchers = t;
        mm->watchers[mm->n_watchers++] = w;
        varlink_connection_set_close_callback(c, watcher_closed, w);

        /* The first sample right away. */
        r = watcher_send(w);
        if (r < 0)
                log_debug_errno(r, "Failed to send a host sample to a watcher: %m");
        return 0;
}

static const VarlinkMethod metrics_methods[] = {
        { "GetHostMemory", vl_get_host_memory, (const VarlinkField[]) { { NULL } }, 0 },
        { "GetHostMemoryHistory", vl_get_host_memory_history,
          (const VarlinkField[]) { { "limit", VARLINK_INT, VARLINK_NULLABLE }, { NULL } }, 0 },
        { "GetMetrics", vl_get_metrics, (const VarlinkField[]) { { NULL } }, 0 },
        { "WatchMetrics", vl_watch_metrics,
          (const VarlinkField[]) { { "intervalUSec", VARLINK_INT, VARLINK_NULLABLE }, { NULL } },
          VARLINK_METHOD_REQUIRES_MORE },
        { NULL },
};

const VarlinkMethod *manager_metrics_methods(void) {
        return metrics_methods;
}

/* ---- start / stop ------------------------------------------------------------------------------ */

static int metrics_get(Manager *m, ManagerMetrics **ret) {
        if (!m->metrics) {
                m->metrics = calloc(1, sizeof(ManagerMetrics));
                if (!m->metrics)
                        return -ENOMEM;
                m->metrics->manager = m;
                m->metrics->exporter_fd = -EBADF;
        }
        *ret = m->metrics;
        return 0;
}

int manager_metrics_adopt_exporter_fd(Manager *m, int fd) {
        ManagerMetrics *mm;
        int r;

        r = metrics_get(m, &mm);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        if (mm->exporter_fd >= 0) {
                safe_close(fd);
                return -EEXIST;
        }
        mm->exporter_fd = fd;
        return 0;
}

static int start_exporter(ManagerMetrics *mm) {
        Manager *m = mm->manager;
        int r;

        if (!m->config.exporter_enabled && mm->exporter_fd < 0) {
                log_debug("Prometheus exporter disabled.");
                return 0;
        }
        r = http_server_new(&mm->http, m->event, render_metrics, mm);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Prometheus exporter: %m");
        http_server_set_limits(mm->http, &(HttpServerLimits) {
                .max_connections = m->config.exporter_max_connections,
                .max_connections_per_address = m->config.exporter_max_connections_per_address,
                .timeout_usec = m->config.exporter_timeout_usec,
                .header_timeout_usec = m->config.exporter_header_timeout_usec,
        });

        if (mm->exporter_fd >= 0) {
                r = http_server_listen_fd(mm->http, TAKE_FD(mm->exporter_fd));
                if (r < 0)
                        return log_error_errno(r, "Failed to serve the exporter on the passed socket: %m");
        } else {
                r = http_server_listen_address(mm->http, m->config.exporter_address);
                if (r < 0) {
                        /* The exporter is an extra: the daemon runs on without it, loudly. */
                        log_error_errno(r, "Failed to listen on %s for the Prometheus exporter, running without it: %m",
                                        m->config.exporter_address);
                        mm->http = http_server_free(mm->http);
                        return 0;
                }
        }
        log_info("Prometheus exporter listening on http://%s/metrics", http_server_address(mm->http));
        return 0;
}

int manager_metrics_start(Manager *m) {
        ManagerMetrics *mm;
        int r;

        r = metrics_get(m, &mm);
        if (r < 0)
                return log_oom();

        /* A first sample right away, so that the API has data as soon as the daemon is ready. */
        sample_host(mm);
        r = arm_timer(mm, &mm->host_timer, m->config.host_sample_interval_usec, on_host_timer,
                      "metrics-host-sampler");
        if (r >= 0)
                r = arm_timer(mm, &mm->guest_timer, MIN(m->config.guest_sample_interval_usec, USEC_PER_SEC),
                              on_guest_timer, "metrics-guest-sampler");
        if (r < 0)
                return log_error_errno(r, "Failed to set up the metrics samplers: %m");

        return start_exporter(mm);
}

void manager_metrics_done(Manager *m) {
        ManagerMetrics *mm = m->metrics;

        if (!mm)
                return;
        /* Requests in flight belong to their QMP commands, whose callbacks each run exactly once — at the
         * latest when manager_vms_done() closes the guests' QMP connections, after this. They only forget
         * the module here; the callbacks free them. */
        while (mm->requests) {
                QmpRequest *r = mm->requests;

                mm->requests = r->next;
                r->mm = NULL;
                r->prev = r->next = NULL;
        }
        mm->numa_worker = numa_worker_free(mm->numa_worker); /* waits for a running thread */
        mm->numa_batch = numa_batch_free(mm->numa_batch);
        while (mm->n_watchers > 0)
                watcher_remove(mm, mm->watchers[mm->n_watchers - 1]);
        free(mm->watchers);
        http_server_free(mm->http);
        safe_close(mm->exporter_fd);
        sd_event_source_disable_unref(mm->host_timer);
        sd_event_source_disable_unref(mm->guest_timer);
        for (size_t i = 0; i < mm->n_guests; i++)
                guest_data_done(&mm->guests[i]);
        free(mm->guests);
        host_sample_done(&mm->host);
        free(mm->ring);
        metric_set_free(mm->snapshot);
        byte_buffer_done(&mm->snapshot_text);
        m->metrics = mfree(mm);
}

int manager_metrics_list(void) {
        return metric_families_markdown(stdout);
}
