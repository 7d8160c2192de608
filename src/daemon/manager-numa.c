/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NUMA: the host topology, vCPU pinning (at start through VmContext.prerun, and at runtime), placement of a
 * guest (vCPU threads, allowed and last CPUs, memory resident per node), and page migration between nodes
 * with migrate_pages(2) in a worker thread, measured with numa_maps, QMP query-stats and, where the host allows
 * it, perf counts of the kvm tracepoints. Records of the moves are kept per guest (bounded). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/capability.h>
#include <time.h>

#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "meminfo.h"
#include "numa-migrate.h"
#include "numa-perf.h"
#include "numa-placement.h"
#include "numa-topology.h"
#include "numa-worker.h"
#include "parse.h"
#include "qmp-stats.h"

#define ERROR_NO_SUCH_VM "io.memvisor.Manager.NoSuchVM"
#define ERROR_INVALID_STATE "io.memvisor.Manager.InvalidState"
#define ERROR_SINGLE_NODE "io.memvisor.Manager.SingleNUMANode"
#define ERROR_NO_SUCH_NODE "io.memvisor.Manager.NoSuchNode"
#define ERROR_IDENTICAL_NODES "io.memvisor.Manager.IdenticalNodes"
#define ERROR_MEMORY_CANNOT_MOVE "io.memvisor.Manager.MemoryCannotMove"
#define ERROR_MISSING_CAPABILITY "io.memvisor.Manager.MissingCapability"
#define ERROR_BUSY "io.memvisor.Manager.Busy"
#define ERROR_NO_SUCH_VCPU "io.memvisor.Manager.NoSuchVCPU"
#define ERROR_NO_SUCH_CPU "io.memvisor.Manager.NoSuchCPU"
#define ERROR_PINNING_FAILED "io.memvisor.Manager.PinningFailed"
#define ERROR_MIGRATION_FAILED "io.memvisor.Manager.MigrationFailed"

#define NUMA_MAX_RECORDS 64U            /* per guest; older records are dropped */
#define NUMA_MAX_MOVES 10000U           /* per ping-pong */
#define NUMA_SETTLE_DEFAULT_USEC (1 * USEC_PER_SEC)
#define NUMA_SETTLE_MAX_USEC (600 * USEC_PER_SEC)
#define NUMA_EVERY_MAX_USEC (86400 * USEC_PER_SEC)
#define NUMA_KVM_STATS_TIMEOUT_USEC (5 * USEC_PER_SEC)

typedef struct NumaGuest NumaGuest;
typedef struct MigrationOp MigrationOp;

/* Userdata of a kvm_stats_query: outlives the operation when it is freed first. */
typedef struct StatsToken {
        MigrationOp *op;
        bool after;
} StatsToken;

struct MigrationOp {
        NumaGuest *guest;
        VarlinkConnection *conn;        /* NULL once the caller went away: the moves go on and are recorded */
        bool more;
        ManagerCompletion completion;   /* a D-Bus caller (manager_numa_migrate_pages) instead of conn */

        uint64_t nodes[2];              /* from, to (for a ping-pong: the two nodes) */
        unsigned count;                 /* moves in all (1 for a single move) */
        unsigned done;
        bool pingpong;
        bool cancelled;
        uint64_t every_usec;
        uint64_t settle_usec;
        uint64_t started_monotonic;     /* of the call, for elapsedUSec */

        /* the summary of this call's moves, for the final reply (each report was streamed and recorded) */
        unsigned moves_failed;
        uint64_t pages_moved, bytes_moved, duration_usec;
        uint64_t first_report_id;
        json_object *last_report;

        /* the move in progress */
        uint64_t from, to;
        pid_t pid;
        uint64_t move_started_monotonic;
        uint64_t move_started_realtime;
        NumaMigrateJob *job;
        NumaWorker *worker;
        NumaPerf *perf;
        KvmStats *stats_before;
        char *stats_reason;             /* why KVM counters are unavailable */
        StatsToken *token;
        sd_event_source *timer;         /* settle time, or the wait for the next move */
        bool tcg;
};

struct NumaGuest {
        ManagerNuma *numa;
        char *name;
        json_object *records;           /* array, oldest first */
        ManagerNumaInfo totals;         /* over every record, also those dropped from records */
        uint64_t next_id;
        MigrationOp *op;
        const char *schedule_refused;   /* the error the .vm schedule was last refused with (logged once) */
};

typedef struct PlacementRequest {
        ManagerNuma *numa;
        VarlinkConnection *conn;
        json_object *placement;
        NumaResidency residency;
        char *path;
        NumaWorker *worker;
} PlacementRequest;

struct ManagerNuma {
        Manager *manager;
        const char *sysfs_root;         /* "/" */
        NumaGuest **guests;
        size_t n_guests;
        PlacementRequest **requests;
        size_t n_requests;
};

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* ---- errors ----------------------------------------------------------------------------------- */

/* fmt_keys: "s:key" / "i:key" pairs separated by blanks, values follow as varargs. */
static int numa_error_paramsv(const char *fmt_keys, va_list ap, json_object **ret) {
        _cleanup_json_ json_object *p = json_object_new_object();
        const char *k = fmt_keys;
        int r = 0;

        if (!p)
                return -ENOMEM;
        while (k && *k) {
                char type = k[0], key[64];
                size_t len;

                k += 2;
                len = strcspn(k, " ");
                snprintf(key, sizeof(key), "%.*s", (int) len, k);
                k += len;
                k += strspn(k, " ");
                if (type == 's')
                        r = json_add_string(p, key, va_arg(ap, const char *));
                else
                        r = json_add_int(p, key, va_arg(ap, int64_t));
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

static int numa_error(VarlinkConnection *c, const char *error, const char *fmt_keys, ...) {
        json_object *p = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt_keys);
        r = numa_error_paramsv(fmt_keys, ap, &p);
        va_end(ap);
        if (r < 0)
                return r;
        return varlink_error(c, error, p);
}

/* The same for the operations shared with D-Bus (manager.h): sets *e and returns error. */
static int numa_fail(ManagerError *e, int error, const char *name, const char *fmt_keys, ...) {
        json_object *p = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt_keys);
        r = numa_error_paramsv(fmt_keys, ap, &p);
        va_end(ap);
        if (r < 0)
                return r;
        return manager_error_set(e, error, name, p);
}

static int fail_invalid_state(ManagerError *e, Vm *vm) {
        return numa_fail(e, -ESRCH, ERROR_INVALID_STATE, "s:name s:state", vm->name, vm_state_to_string(vm->state));
}

static Vm *lookup_or_reply(Manager *m, VarlinkConnection *c, json_object *parameters, int *ret) {
        const char *name = json_get_string(parameters, "name");
        Vm *vm = manager_find_vm(m, name);

        if (!vm)
                *ret = numa_error(c, ERROR_NO_SUCH_VM, "s:name", name);
        return vm;
}

static bool vm_is_running(Vm *vm) {
        return vm->state == VM_STATE_RUNNING && vm->pid > 0;
}

static bool have_cap_sys_nice(void) {
        cap_flag_value_t v = CAP_CLEAR;
        cap_t caps;

        caps = cap_get_proc();
        if (!caps)
                return false;
        if (cap_get_flag(caps, CAP_SYS_NICE, CAP_EFFECTIVE, &v) < 0)
                v = CAP_CLEAR;
        cap_free(caps);
        return v == CAP_SET;
}

static char *node_mask_format(uint64_t mask) {
        CpuSet s = { .bits = { mask } };
        char *t = NULL;

        if (cpu_list_format(&s, &t) < 0)
                return NULL;
        return t;
}

/* ---- guests ----------------------------------------------------------------------------------- */

static NumaGuest *numa_guest_get(ManagerNuma *n, const char *name, bool create) {
        _cleanup_free_ NumaGuest *g = NULL;
        NumaGuest **t;

        for (size_t i = 0; i < n->n_guests; i++)
                if (streq(n->guests[i]->name, name))
                        return n->guests[i];
        if (!create)
                return NULL;
        g = calloc(1, sizeof(NumaGuest));
        if (!g)
                return NULL;
        g->numa = n;
        g->next_id = 1;
        g->name = strdup(name);
        g->records = json_object_new_array();
        if (!g->name || !g->records) {
                free(g->name);
                json_object_put(g->records);
                return NULL;
        }
        t = realloc(n->guests, (n->n_guests + 1) * sizeof(NumaGuest *));
        if (!t) {
                free(g->name);
                json_object_put(g->records);
                return NULL;
        }
        n->guests = t;
        n->guests[n->n_guests++] = g;
        return TAKE_PTR(g);
}

static void numa_guest_add_record(NumaGuest *g, json_object *report) {
        g->totals.migrations_total++;
        if (streq_ptr(json_get_string(report, "result"), "failed"))
                g->totals.migration_failures++;
        g->totals.pages_moved += (uint64_t) MAX(json_get_int(report, "pagesMoved", 0), (int64_t) 0);
        g->totals.bytes_moved += (uint64_t) MAX(json_get_int(report, "bytesMoved", 0), (int64_t) 0);
        g->totals.migrate_usec += (uint64_t) MAX(json_get_int(report, "durationUSec", 0), (int64_t) 0);

        if (json_object_array_length(g->records) >= NUMA_MAX_RECORDS)
                (void) json_object_array_del_idx(g->records, 0, 1);
        (void) json_object_array_add(g->records, json_object_get(report));
}

/* ---- topology --------------------------------------------------------------------------------- */

static int vl_get_topology(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        _cleanup_json_ json_object *o = NULL;
        int r;

        r = numa_topology_read(m->numa->sysfs_root, &t);
        if (r < 0)
                return log_warning_errno(r, "Failed to read the NUMA topology: %m");
        r = numa_topology_to_json(t, &o);
        if (r < 0)
                return r;
        return varlink_reply(c, TAKE_PTR(o));
}

/* ---- pinning ---------------------------------------------------------------------------------- */

static const VmVcpu *vm_find_vcpu(Vm *vm, unsigned index) {
        for (size_t i = 0; i < vm->n_vcpus; i++)
                if (vm->vcpus[i].index == index)
                        return &vm->vcpus[i];
        return NULL;
}

static bool vm_is_vcpu_thread(Vm *vm, pid_t tid) {
        for (size_t i = 0; i < vm->n_vcpus; i++)
                if (vm->vcpus[i].thread_id == tid)
                        return true;
        return false;
}

/* Pins QEMU's threads other than the vCPUs; returns how many. */
static int pin_emulator_threads(Vm *vm, const CpuSet *cpus) {
        _cleanup_free_ pid_t *tids = NULL;
        size_t n = 0;
        int r, k = 0;

        r = process_list_threads(vm->ctx->proc_root, vm->pid, &tids, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (vm_is_vcpu_thread(vm, tids[i]))
                        continue;
                r = thread_pin(tids[i], cpus, NULL);
                if (r == -ESRCH)
                        continue;       /* a short-lived worker thread ended */
                if (r < 0)
                        return r;
                k++;
        }
        return k;
}

/* The start-up hook: applies [CPU] VCPUAffinity= and EmulatorAffinity= while the guest is paused. */
static int numa_prerun(Vm *vm, void *userdata) {
        Manager *m = userdata;
        const VmSpec *spec = vm->running_spec ?: vm->spec;
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        _cleanup_(vcpu_pin_map_done) VcpuPinMap map = {};
        int r;

        r = numa_topology_read(m->numa->sysfs_root, &t);
        if (r < 0)
                return log_error_errno(r, "Failed to read the NUMA topology for pinning guest %s: %m", vm->name);

        if (spec->vcpu_affinity) {
                r = vcpu_pin_map_parse(spec->vcpu_affinity, &map, NULL);
                if (r < 0)
                        return log_error_errno(r, "Guest %s: invalid VCPUAffinity=%s: %m", vm->name, spec->vcpu_affinity);
                for (size_t i = 0; i < map.n; i++) {
                        const VmVcpu *v = vm_find_vcpu(vm, map.pins[i].vcpu);
                        _cleanup_free_ char *want = NULL, *got = NULL;
                        CpuSet eff = {};

                        (void) cpu_list_format(&map.pins[i].cpus, &want);
                        if (!v || v->thread_id <= 0)
                                return log_error_errno(-ENOENT, "Guest %s: VCPUAffinity= names vCPU %u, whose thread "
                                                       "QEMU did not report.", vm->name, map.pins[i].vcpu);
                        if (!cpu_set_is_subset(&map.pins[i].cpus, &t->online_cpus))
                                return log_error_errno(-EINVAL, "Guest %s: VCPUAffinity= pins vCPU %u to CPUs %s, "
                                                       "which are not all online.", vm->name, v->index, strna(want));
                        r = thread_pin(v->thread_id, &map.pins[i].cpus, &eff);
                        (void) cpu_list_format(&eff, &got);
                        if (r == -EXDEV)
                                return log_error_errno(r, "Guest %s: vCPU %u (thread %i) pinned to %s, but the kernel "
                                                       "allows %s.", vm->name, v->index, (int) v->thread_id,
                                                       strna(want), strna(got));
                        if (r < 0)
                                return log_error_errno(r, "Guest %s: failed to pin vCPU %u (thread %i) to %s: %m",
                                                       vm->name, v->index, (int) v->thread_id, strna(want));
                        log_info("Guest %s: vCPU %u (thread %i) pinned to CPUs %s (verified).", vm->name, v->index,
                                 (int) v->thread_id, strna(got));
                }
        }
        if (spec->emulator_affinity) {
                CpuSet cpus;

                r = cpu_list_parse(spec->emulator_affinity, &cpus);
                if (r < 0)
                        return log_error_errno(r, "Guest %s: invalid EmulatorAffinity=%s: %m", vm->name,
                                               spec->emulator_affinity);
                if (!cpu_set_is_subset(&cpus, &t->online_cpus))
                        return log_error_errno(-EINVAL, "Guest %s: EmulatorAffinity=%s names CPUs that are not online.",
                                               vm->name, spec->emulator_affinity);
                r = pin_emulator_threads(vm, &cpus);
                if (r < 0)
                        return log_error_errno(r, "Guest %s: failed to pin QEMU's other threads to %s: %m", vm->name,
                                               spec->emulator_affinity);
                log_info("Guest %s: %i QEMU threads besides the vCPUs pinned to CPUs %s.", vm->name, r,
                         spec->emulator_affinity);
        }
        return 0;
}

static int vcpu_placement_json(Vm *vm, const NumaTopology *t, const VmVcpu *v, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        _cleanup_free_ char *allowed = NULL, *stat = NULL;
        unsigned last;
        CpuSet cpus;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_int(o, "index", v->index)) < 0 || (r = json_add_int(o, "threadId", v->thread_id)) < 0)
                return r;
        if (thread_get_affinity(v->thread_id, &cpus) >= 0) {
                r = cpu_list_format(&cpus, &allowed);
                if (r < 0)
                        return r;
                r = json_add_string(o, "allowedCPUs", allowed);
                if (r < 0)
                        return r;
        }
        if (asprintf(&stat, "%s/%i/task/%i/stat", vm->ctx->proc_root, (int) vm->pid, (int) v->thread_id) < 0) {
                stat = NULL;
                return -ENOMEM;
        }
        if (task_stat_read_last_cpu(stat, &last) >= 0) {
                int node = numa_topology_node_of_cpu(t, last);
                if ((r = json_add_int(o, "lastCPU", last)) < 0)
                        return r;
                if (node >= 0 && (r = json_add_int(o, "lastNode", node)) < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

int manager_numa_pin_vcpus(Manager *m, const char *name, const char *map_s, const char *emulator,
                           json_object **ret_reply, ManagerError *ret_error) {
        _cleanup_(vcpu_pin_map_done) VcpuPinMap map = {};
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        _cleanup_json_ json_object *p = NULL, *a = NULL;
        CpuSet emu = {};
        Vm *vm;
        int r = 0;

        if (!map_s || vcpu_pin_map_parse(map_s, &map, NULL) < 0)
                return manager_error_invalid_parameter(ret_error, "map");
        if (emulator && cpu_list_parse(emulator, &emu) < 0)
                return manager_error_invalid_parameter(ret_error, "emulator");
        vm = manager_find_vm(m, name);
        if (!vm)
                return numa_fail(ret_error, -ENOENT, ERROR_NO_SUCH_VM, "s:name", name);
        if (!vm_is_running(vm) || vm->n_vcpus == 0)
                return fail_invalid_state(ret_error, vm);
        r = numa_topology_read(m->numa->sysfs_root, &t);
        if (r < 0)
                return r;

        /* Check everything before changing anything. */
        for (size_t i = 0; i < map.n; i++) {
                const VmVcpu *v = vm_find_vcpu(vm, map.pins[i].vcpu);
                if (!v || v->thread_id <= 0)
                        return numa_fail(ret_error, -ENOENT, ERROR_NO_SUCH_VCPU, "i:vcpu i:vcpus",
                                         (int64_t) map.pins[i].vcpu, (int64_t) vm->n_vcpus);
                for (unsigned cpu = 0; cpu < CPU_SET_MAX; cpu++)
                        if (cpu_set_contains(&map.pins[i].cpus, cpu) && !cpu_set_contains(&t->online_cpus, cpu)) {
                                _cleanup_free_ char *online = NULL;
                                (void) cpu_list_format(&t->online_cpus, &online);
                                return numa_fail(ret_error, -ENOENT, ERROR_NO_SUCH_CPU, "s:parameter i:cpu s:online",
                                                 "map", (int64_t) cpu, strna(online));
                        }
        }
        if (emulator && !cpu_set_is_subset(&emu, &t->online_cpus)) {
                _cleanup_free_ char *online = NULL;
                (void) cpu_list_format(&t->online_cpus, &online);
                return numa_fail(ret_error, -ENOENT, ERROR_NO_SUCH_CPU, "s:parameter i:cpu s:online", "emulator",
                                 (int64_t) cpu_set_last(&emu), strna(online));
        }

        for (size_t i = 0; i < map.n; i++) {
                const VmVcpu *v = vm_find_vcpu(vm, map.pins[i].vcpu);
                _cleanup_free_ char *want = NULL, *got = NULL;
                CpuSet eff = {};

                r = thread_pin(v->thread_id, &map.pins[i].cpus, &eff);
                (void) cpu_list_format(&map.pins[i].cpus, &want);
                (void) cpu_list_format(&eff, &got);
                if (r < 0) {
                        _cleanup_free_ char *reason = NULL;
                        if (asprintf(&reason, r == -EXDEV ? "the kernel allows other CPUs than requested%s"
                                                          : "sched_setaffinity failed: %s",
                                     r == -EXDEV ? "" : strerror(-r)) < 0)
                                return -ENOMEM;
                        return numa_fail(ret_error, r, ERROR_PINNING_FAILED,
                                         "i:vcpu i:threadId s:requested s:effective s:reason", (int64_t) v->index,
                                         (int64_t) v->thread_id, strna(want), r == -EXDEV ? got : NULL, reason);
                }
                log_info("Guest %s: vCPU %u (thread %i) pinned to CPUs %s (verified).", vm->name, v->index,
                         (int) v->thread_id, strna(got));
        }
        if (emulator) {
                r = pin_emulator_threads(vm, &emu);
                if (r < 0)
                        return numa_fail(ret_error, r, ERROR_PINNING_FAILED, "i:threadId s:requested s:reason",
                                         (int64_t) vm->pid, emulator, strerror(-r));
        }

        p = json_object_new_object();
        a = json_object_new_array();
        if (!p || !a)
                return -ENOMEM;
        for (size_t i = 0; i < vm->n_vcpus; i++) {
                _cleanup_json_ json_object *o = NULL;
                r = vcpu_placement_json(vm, t, &vm->vcpus[i], &o);
                if (r < 0)
                        return r;
                if (json_object_array_add(a, TAKE_PTR(o)) < 0)
                        return -ENOMEM;
        }
        r = json_add(p, "vcpus", TAKE_PTR(a));
        if (r < 0)
                return r;
        *ret_reply = TAKE_PTR(p);
        return 0;
}

static int vl_pin_vcpus(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        ManagerError e = {};
        json_object *reply = NULL;
        int r;

        r = manager_numa_pin_vcpus(userdata, json_get_string(parameters, "name"), json_get_string(parameters, "map"),
                                   json_get_string(parameters, "emulator"), &reply, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        return varlink_reply(c, reply);
}

/* ---- placement -------------------------------------------------------------------------------- */

static PlacementRequest *placement_request_free(PlacementRequest *q) {
        if (!q)
                return NULL;
        numa_worker_free(q->worker);
        varlink_connection_unref(q->conn);
        json_object_put(q->placement);
        free(q->path);
        return mfree(q);
}

static void placement_request_remove(ManagerNuma *n, PlacementRequest *q) {
        for (size_t i = 0; i < n->n_requests; i++)
                if (n->requests[i] == q) {
                        memmove(n->requests + i, n->requests + i + 1, (n->n_requests - i - 1) * sizeof(void *));
                        n->n_requests--;
                        break;
                }
        placement_request_free(q);
}

static int placement_read_residency(NumaWorker *w, void *arg) {
        PlacementRequest *q = arg;
        return numa_residency_read(q->path, &q->residency);
}

static void placement_on_worker(NumaWorker *w, int code, bool done, int result, void *userdata) {
        PlacementRequest *q = userdata;
        _cleanup_json_ json_object *res = NULL, *p = NULL;
        int r;

        if (!done)
                return;
        if (result >= 0) {
                r = numa_residency_to_json(&q->residency, &res);
                if (r >= 0)
                        r = json_add(q->placement, "residency", TAKE_PTR(res));
                if (r >= 0)
                        r = json_add_uint(q->placement, "residentBytes", q->residency.total_bytes);
        } else
                r = json_add_string(q->placement, "residencyUnavailable", strerror(-result));
        p = json_object_new_object();
        if (r >= 0 && p && json_add(p, "placement", TAKE_PTR(q->placement)) >= 0)
                (void) varlink_reply(q->conn, TAKE_PTR(p));
        else
                (void) varlink_error(q->conn, VARLINK_ERROR_INTERNAL, NULL);
        placement_request_remove(q->numa, q);
}

static int vl_get_placement(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        _cleanup_json_ json_object *o = NULL, *a = NULL;
        PlacementRequest *q, **tq;
        const VmSpec *spec;
        NumaGuest *g;
        Vm *vm;
        int r = 0;

        vm = lookup_or_reply(m, c, parameters, &r);
        if (!vm)
                return r;
        spec = vm->running_spec ?: vm->spec;
        o = json_object_new_object();
        a = json_object_new_array();
        if (!o || !a)
                return -ENOMEM;
        if ((r = json_add_string(o, "name", vm->name)) < 0 ||
            (r = json_add_string(o, "state", vm_state_to_string(vm->state))) < 0 ||
            (r = json_add_string(o, "memoryPolicy", vm_memory_policy_to_string(spec->policy))) < 0 ||
            (r = json_add_string(o, "hostNodes", spec->host_nodes)) < 0 ||
            (r = json_add_string(o, "vcpuAffinity", spec->vcpu_affinity)) < 0 ||
            (r = json_add_string(o, "emulatorAffinity", spec->emulator_affinity)) < 0)
                return r;
        g = numa_guest_get(m->numa, vm->name, false);
        if ((r = json_add_bool(o, "migrating", g && g->op)) < 0)
                return r;

        if (!vm_is_running(vm)) {
                _cleanup_json_ json_object *p = json_object_new_object();
                if (!p || json_add(o, "vcpus", TAKE_PTR(a)) < 0 || json_add(p, "placement", TAKE_PTR(o)) < 0)
                        return -ENOMEM;
                return varlink_reply(c, TAKE_PTR(p));
        }

        r = numa_topology_read(m->numa->sysfs_root, &t);
        if (r < 0)
                return r;
        for (size_t i = 0; i < vm->n_vcpus; i++) {
                _cleanup_json_ json_object *v = NULL;
                r = vcpu_placement_json(vm, t, &vm->vcpus[i], &v);
                if (r < 0)
                        return r;
                if (json_object_array_add(a, TAKE_PTR(v)) < 0)
                        return -ENOMEM;
        }
        r = json_add(o, "vcpus", TAKE_PTR(a));
        if (r < 0)
                return r;

        /* numa_maps walks the page tables of the whole guest: off the loop. */
        q = calloc(1, sizeof(PlacementRequest));
        if (!q)
                return -ENOMEM;
        q->numa = m->numa;
        q->placement = TAKE_PTR(o);
        if (asprintf(&q->path, "%s/%i/numa_maps", vm->ctx->proc_root, (int) vm->pid) < 0) {
                q->path = NULL;
                placement_request_free(q);
                return -ENOMEM;
        }
        tq = realloc(m->numa->requests, (m->numa->n_requests + 1) * sizeof(void *));
        if (!tq) {
                placement_request_free(q);
                return -ENOMEM;
        }
        m->numa->requests = tq;
        r = numa_worker_start(m->event, "numa-placement", placement_read_residency, q, placement_on_worker, q,
                              &q->worker);
        if (r < 0) {
                placement_request_free(q);
                return r;
        }
        q->conn = varlink_connection_ref(c);
        m->numa->requests[m->numa->n_requests++] = q;
        return 0;
}

/* ---- migration -------------------------------------------------------------------------------- */

static void op_free(MigrationOp *op);
static void op_begin_move(MigrationOp *op);

static void op_reset_move(MigrationOp *op) {
        op->worker = numa_worker_free(op->worker);
        op->job = numa_migrate_job_free(op->job);
        op->perf = numa_perf_free(op->perf);
        op->stats_before = kvm_stats_free(op->stats_before);
        op->stats_reason = mfree(op->stats_reason);
        op->timer = sd_event_source_disable_unref(op->timer);
        if (op->token) {
                op->token->op = NULL;   /* the query's callback frees it */
                op->token = NULL;
        }
}

static void op_on_connection_closed(VarlinkConnection *c, void *userdata) {
        MigrationOp *op = userdata;

        if (op->conn == c)
                op->conn = varlink_connection_unref(op->conn);
}

/* Takes the caller's connection out of the operation: no longer its close callback (the connection outlives
 * the operation and may carry other calls). Returns the reference. */
static VarlinkConnection *op_steal_connection(MigrationOp *op) {
        varlink_connection_clear_close_callback(op->conn, op_on_connection_closed, op);
        return TAKE_PTR(op->conn);
}

static void op_free(MigrationOp *op) {
        if (!op)
                return;
        op_reset_move(op);
        if (op->guest && op->guest->op == op)
                op->guest->op = NULL;
        varlink_connection_unref(op_steal_connection(op));
        manager_completion_drop(&op->completion);
        json_object_put(op->last_report);
        free(op);
}

static void op_notify(MigrationOp *op, const char *phase, json_object *extra) {
        _cleanup_json_ json_object *p = NULL;

        if (!op->conn || !op->more) {
                json_object_put(extra);
                return;
        }
        p = extra ?: json_object_new_object();
        if (!p)
                return;
        if (json_add_string(p, "phase", phase) < 0 || json_add_int(p, "move", op->done + 1) < 0 ||
            json_add_int(p, "moves", op->count) < 0)
                return;
        (void) varlink_notify(op->conn, TAKE_PTR(p));
}

/* The final reply of a successful call: a summary of its moves, not their reports. Each report was streamed as
 * its move ended ("moved") and recorded for ListMigrations; a ping-pong of thousands of moves would otherwise
 * outgrow the output limit (16 MiB) in one reply, and the server would close the connection with the results. */
static int op_summary(MigrationOp *op, json_object **ret) {
        _cleanup_json_ json_object *p = json_object_new_object();
        int r;

        if (!p)
                return -ENOMEM;
        if ((r = json_add_string(p, "phase", "done")) < 0 ||
            (r = json_add_int(p, "moves", op->done)) < 0 ||
            (r = json_add_int(p, "movesFailed", op->moves_failed)) < 0 ||
            (r = json_add_uint(p, "pagesMoved", op->pages_moved)) < 0 ||
            (r = json_add_uint(p, "bytesMoved", op->bytes_moved)) < 0 ||
            (r = json_add_uint(p, "durationUSec", op->duration_usec)) < 0 ||
            (r = json_add_uint(p, "elapsedUSec", now_usec(CLOCK_MONOTONIC) - op->started_monotonic)) < 0)
                return r;
        if (op->last_report &&
            ((r = json_add_uint(p, "firstReportId", op->first_report_id)) < 0 ||
             (r = json_add_int(p, "lastReportId", json_get_int(op->last_report, "id", 0))) < 0 ||
             (r = json_add(p, "report", json_object_get(op->last_report))) < 0))
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

/* The end of the whole operation: the final reply (the summary, or the error). */
static void op_finish(MigrationOp *op, const char *error, json_object *error_params) {
        /* Ours until the reply is queued (queuing may close the connection), then no longer this op's. */
        _cleanup_(varlink_connection_unrefp) VarlinkConnection *c = op_steal_connection(op);

        if (c || manager_completion_pending(&op->completion)) {
                json_object *p = NULL;

                if (!error) {
                        if (op_summary(op, &p) < 0)
                                error = VARLINK_ERROR_INTERNAL;
                } else
                        p = TAKE_PTR(error_params);
                if (c)
                        (void) (error ? varlink_error(c, error, p) : varlink_reply(c, p));
                else
                        manager_completion_finish(&op->completion, error, p);
        }
        json_object_put(error_params);
        op_free(op);
}

static int add_residency(json_object *o, const char *key, const NumaResidency *r) {
        _cleanup_json_ json_object *a = NULL;
        int k;

        k = numa_residency_to_json(r, &a);
        if (k < 0)
                return k;
        return json_add(o, key, TAKE_PTR(a));
}

static int build_report(MigrationOp *op, KvmStats *after, const char *after_reason, json_object **ret) {
        NumaMigrateJob *j = op->job;
        _cleanup_json_ json_object *o = json_object_new_object(), *kvm = NULL, *tp = NULL;
        _cleanup_free_ char *from = node_mask_format(op->from), *to = node_mask_format(op->to);
        NumaMigrateSummary s = {};
        uint64_t faults, exits;
        int r;

        if (!o || !from || !to)
                return -ENOMEM;
        if ((r = json_add_uint(o, "id", op->guest->next_id)) < 0 ||
            (r = json_add_string(o, "name", op->guest->name)) < 0 ||
            (r = json_add_string(o, "from", from)) < 0 ||
            (r = json_add_string(o, "to", to)) < 0 ||
            (r = json_add_int(o, "pid", op->pid)) < 0 ||
            (r = json_add_uint(o, "startedRealtimeUSec", op->move_started_realtime)) < 0 ||
            (r = json_add_uint(o, "settleUSec", op->settle_usec)) < 0 ||
            (r = json_add_uint(o, "totalUSec", now_usec(CLOCK_MONOTONIC) - op->move_started_monotonic)) < 0)
                return r;
        if (op->pingpong && (r = json_add_int(o, "pingPongMove", op->done + 1)) < 0)
                return r;

        if (j->syscall_error < 0) {
                if ((r = json_add_string(o, "result", "failed")) < 0 ||
                    (r = json_add_string(o, "error", strerror(-j->syscall_error))) < 0)
                        return r;
        } else if ((r = json_add_string(o, "result", "done")) < 0)
                return r;

        if (j->have_before && (r = add_residency(o, "residencyBefore", &j->before)) < 0)
                return r;
        if (j->have_after && (r = add_residency(o, "residencyAfter", &j->after)) < 0)
                return r;
        if (j->have_before && j->have_after) {
                numa_migrate_summarize(&j->before, &j->after, op->from, op->to,
                                       j->end_usec > j->start_usec ? j->end_usec - j->start_usec : 0, &s);
                if ((r = json_add_uint(o, "durationUSec", s.duration_usec)) < 0 ||
                    (r = json_add_uint(o, "pagesMoved", s.pages_moved)) < 0 ||
                    (r = json_add_uint(o, "bytesMoved", s.bytes_moved)) < 0 ||
                    (r = json_add_uint(o, "pagesNotMoved", s.pages_not_moved)) < 0 ||
                    (r = json_add_uint(o, "bytesNotMoved", s.bytes_not_moved)) < 0 ||
                    (r = json_add_uint(o, "bytesOnTargetAfter", s.bytes_on_target_after)) < 0 ||
                    (r = json_add_uint(o, "residentBytesAfter", s.total_bytes_after)) < 0 ||
                    (r = json_add_double(o, "fractionOnTarget", s.fraction_on_target)) < 0 ||
                    (r = json_add_double(o, "bytesPerSecond", s.bytes_per_sec)) < 0)
                        return r;
        }
        if (j->syscall_error == 0 && (r = json_add_int(o, "syscallPagesNotMoved", j->not_moved)) < 0)
                return r;

        /* KVM counters over the move plus the settle time. */
        if (op->stats_before && after && kvm_stats_available(op->stats_before) && kvm_stats_available(after)) {
                r = kvm_stats_delta_json(op->stats_before, after, &kvm);
                if (r < 0)
                        return r;
        } else {
                kvm = json_object_new_object();
                if (!kvm)
                        return -ENOMEM;
                if ((r = json_add_bool(kvm, "available", false)) < 0 ||
                    (r = json_add_string(kvm, "reason", op->stats_reason ?: after_reason ?:
                                         "query-stats returned no KVM statistics")) < 0)
                        return r;
        }
        r = json_add(o, "kvmStats", TAKE_PTR(kvm));
        if (r < 0)
                return r;

        tp = json_object_new_object();
        if (!tp)
                return -ENOMEM;
        if (!op->perf || numa_perf_unavailable_reason(op->perf)) {
                if ((r = json_add_bool(tp, "available", false)) < 0 ||
                    (r = json_add_string(tp, "reason", op->perf ? numa_perf_unavailable_reason(op->perf)
                                                                 : "not measured")) < 0)
                        return r;
        } else if ((r = numa_perf_read(op->perf, &faults, &exits)) < 0) {
                if ((r = json_add_bool(tp, "available", false)) < 0 ||
                    (r = json_add_string(tp, "reason", strerror(-r))) < 0)
                        return r;
        } else if ((r = json_add_bool(tp, "available", true)) < 0 ||
                   (r = json_add_uint(tp, "kvmPageFault", faults)) < 0 ||
                   (r = json_add_uint(tp, "kvmExit", exits)) < 0)
                return r;
        r = json_add(o, "tracepoints", TAKE_PTR(tp));
        if (r < 0)
                return r;

        op->guest->next_id++;
        *ret = TAKE_PTR(o);
        return 0;
}

static int op_on_next_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        MigrationOp *op = userdata;

        op->timer = sd_event_source_disable_unref(op->timer);
        op_begin_move(op);
        return 0;
}

/* A move ended (its report is built): record it, then the next move or the end. */
static void op_move_done(MigrationOp *op, json_object *report) {
        Manager *m = op->guest->numa->manager;
        bool failed = streq_ptr(json_get_string(report, "result"), "failed");
        uint64_t elapsed, delay;
        int r;

        numa_guest_add_record(op->guest, report);
        if (!op->last_report)
                op->first_report_id = (uint64_t) json_get_int(report, "id", 0);
        json_object_put(op->last_report);
        op->last_report = json_object_get(report);
        op->moves_failed += failed;
        op->pages_moved += (uint64_t) MAX(json_get_int(report, "pagesMoved", 0), (int64_t) 0);
        op->bytes_moved += (uint64_t) MAX(json_get_int(report, "bytesMoved", 0), (int64_t) 0);
        op->duration_usec += (uint64_t) MAX(json_get_int(report, "durationUSec", 0), (int64_t) 0);
        log_info("Guest %s: pages moved from node(s) %s to %s: %s, %" PRIi64 " bytes in %" PRIi64 " us.",
                 op->guest->name, strna(json_get_string(report, "from")), strna(json_get_string(report, "to")),
                 strna(json_get_string(report, "result")), json_get_int(report, "bytesMoved", 0),
                 json_get_int(report, "durationUSec", 0));
        op_notify(op, "moved", ({
                json_object *x = json_object_new_object();
                if (x && json_add(x, "report", json_object_get(report)) < 0) {
                        json_object_put(x);
                        x = NULL;
                }
                x;
        }));
        op->done++;
        elapsed = now_usec(CLOCK_MONOTONIC) - op->move_started_monotonic;
        op_reset_move(op);

        if (failed && !op->pingpong) {
                json_object *p = json_object_new_object();
                if (p && (json_add_string(p, "reason", json_get_string(report, "error")) < 0 ||
                          json_add(p, "report", json_object_get(report)) < 0)) {
                        json_object_put(p);
                        p = NULL;
                }
                json_object_put(report);
                return op_finish(op, ERROR_MIGRATION_FAILED, p);
        }
        json_object_put(report);
        if (op->done >= op->count || op->cancelled)
                return op_finish(op, NULL, NULL);

        delay = op->every_usec > elapsed ? op->every_usec - elapsed : 0;
        r = sd_event_add_time_relative(m->event, &op->timer, CLOCK_MONOTONIC, delay, 0, op_on_next_timer, op);
        if (r < 0) {
                log_error_errno(r, "Failed to schedule the next move of guest %s: %m", op->guest->name);
                return op_finish(op, VARLINK_ERROR_INTERNAL, NULL);
        }
        (void) sd_event_source_set_description(op->timer, "numa-pingpong");
}

static void op_on_stats(KvmStats *stats, int error, void *userdata);

static void op_query_stats(MigrationOp *op, bool after) {
        Vm *vm = manager_find_vm(op->guest->numa->manager, op->guest->name);
        StatsToken *t;
        int r;

        t = calloc(1, sizeof(StatsToken));
        if (!t)
                return op_on_stats(NULL, -ENOMEM, &(StatsToken) { .op = op, .after = after });
        t->op = op;
        t->after = after;
        if (!vm || !vm->qmp || vm->pid != op->pid)
                r = -ENOTCONN;
        else
                r = kvm_stats_query(vm->qmp, NUMA_KVM_STATS_TIMEOUT_USEC, op_on_stats, t);
        if (r < 0) {
                /* Report synchronously through the same path. */
                t->op = NULL;
                free(t);
                return op_on_stats(NULL, r, &(StatsToken) { .op = op, .after = after });
        }
        op->token = t;
}

static void op_on_migrated(NumaWorker *w, int code, bool done, int result, void *userdata);

static void op_start_worker(MigrationOp *op) {
        Manager *m = op->guest->numa->manager;
        int r;

        r = numa_migrate_job_new(m->vmctx.proc_root, op->pid, op->from, op->to, &op->job);
        if (r >= 0)
                r = numa_worker_start(m->event, "numa-migrate", numa_migrate_job_run, op->job, op_on_migrated, op,
                                      &op->worker);
        if (r < 0) {
                log_error_errno(r, "Failed to start the page migration of guest %s: %m", op->guest->name);
                return op_finish(op, VARLINK_ERROR_INTERNAL, NULL);
        }
}

static int op_on_settled(sd_event_source *s, uint64_t usec, void *userdata) {
        MigrationOp *op = userdata;

        op->timer = sd_event_source_disable_unref(op->timer);
        op_query_stats(op, true);
        return 0;
}

static void op_on_stats(KvmStats *stats, int error, void *userdata) {
        StatsToken *t = userdata, tok = *t;
        MigrationOp *op = tok.op;
        _cleanup_(kvm_stats_freep) KvmStats *s = stats;
        _cleanup_free_ char *reason = NULL;
        json_object *report = NULL;
        int r;

        /* Tokens on the stack are the synchronous error path; heap ones came from kvm_stats_query. */
        if (op && op->token == t) {
                op->token = NULL;
                free(t);
        } else if (!op) {
                free(t);
                return;         /* the operation is gone */
        }

        if (error < 0)
                (void) asprintf(&reason, "query-stats failed: %s", error == -EIO ? "QEMU refused it" :
                                error == -ENOTCONN ? "no QMP connection to the guest" : strerror(-error));
        else if (!kvm_stats_available(s))
                (void) asprintf(&reason, "query-stats returned no KVM statistics (the guest runs under %s)",
                                op->tcg ? "TCG" : "an accelerator without KVM statistics");

        if (!tok.after) {
                if (reason)
                        op->stats_reason = TAKE_PTR(reason);
                else
                        op->stats_before = TAKE_PTR(s);
                return op_start_worker(op);
        }

        r = build_report(op, s, reason, &report);
        if (r < 0) {
                log_error_errno(r, "Failed to build the migration report of guest %s: %m", op->guest->name);
                return op_finish(op, VARLINK_ERROR_INTERNAL, NULL);
        }
        op_move_done(op, report);
}

static void op_on_migrated(NumaWorker *w, int code, bool done, int result, void *userdata) {
        MigrationOp *op = userdata;
        Manager *m = op->guest->numa->manager;
        int r;

        if (!done) {
                json_object *x = json_object_new_object();

                if (code == NUMA_MIGRATE_PHASE_MEASURED && x) {
                        json_object *a = NULL;
                        if (numa_residency_to_json(&op->job->before, &a) >= 0)
                                (void) json_add(x, "residencyBefore", a);
                        op_notify(op, "migrating", x);
                } else if (code == NUMA_MIGRATE_PHASE_MOVED && x) {
                        (void) json_add_uint(x, "durationUSec", op->job->end_usec - op->job->start_usec);
                        op_notify(op, "measuring", x);
                } else
                        json_object_put(x);
                return;
        }

        op->worker = numa_worker_free(op->worker);
        if (!op->job->have_before) {
                /* numa_maps could not be read: the guest is gone (or was never ours to read). */
                json_object *p = json_object_new_object();
                if (p && json_add_string(p, "reason", strerror(-result)) < 0) {
                        json_object_put(p);
                        p = NULL;
                }
                log_warning_errno(result, "Guest %s: cannot read its numa_maps: %m", op->guest->name);
                return op_finish(op, ERROR_MIGRATION_FAILED, p);
        }
        if (op->job->syscall_error == -EPERM) {
                json_object *p = json_object_new_object();
                if (p && (json_add_string(p, "capability", "CAP_SYS_NICE") < 0 ||
                          json_add_string(p, "reason", "migrate_pages(2) refused: EPERM") < 0)) {
                        json_object_put(p);
                        p = NULL;
                }
                return op_finish(op, ERROR_MISSING_CAPABILITY, p);
        }

        /* Let the guest touch its moved pages, then read the KVM counters again. */
        r = sd_event_add_time_relative(m->event, &op->timer, CLOCK_MONOTONIC, op->settle_usec, 0, op_on_settled, op);
        if (r < 0) {
                log_error_errno(r, "Failed to arm the settle timer of guest %s: %m", op->guest->name);
                return op_finish(op, VARLINK_ERROR_INTERNAL, NULL);
        }
        (void) sd_event_source_set_description(op->timer, "numa-settle");
        if (op->settle_usec > 0) {
                json_object *x = json_object_new_object();
                if (x)
                        (void) json_add_uint(x, "settleUSec", op->settle_usec);
                op_notify(op, "settling", x);
        }
}

static void op_begin_move(MigrationOp *op) {
        Manager *m = op->guest->numa->manager;
        Vm *vm = manager_find_vm(m, op->guest->name);
        _cleanup_free_ pid_t *tids = NULL;
        int r;

        if (!vm || !vm_is_running(vm)) {
                json_object *p = json_object_new_object();
                if (p && (json_add_string(p, "name", op->guest->name) < 0 ||
                          json_add_string(p, "state", vm ? vm_state_to_string(vm->state) : "undefined") < 0)) {
                        json_object_put(p);
                        p = NULL;
                }
                log_info("Guest %s is not running any more; %s after %u move(s).", op->guest->name,
                         op->pingpong ? "ping-pong ends" : "migration abandoned", op->done);
                if (op->done > 0) {
                        json_object_put(p);
                        return op_finish(op, NULL, NULL);
                }
                return op_finish(op, ERROR_INVALID_STATE, p);
        }

        op->pid = vm->pid;
        op->tcg = vm->accel == VM_ACCEL_TCG;
        op->move_started_monotonic = now_usec(CLOCK_MONOTONIC);
        op->move_started_realtime = now_usec(CLOCK_REALTIME);
        if (op->pingpong) {
                bool forward = op->done % 2 == 0;
                op->from = forward ? op->nodes[0] : op->nodes[1];
                op->to = forward ? op->nodes[1] : op->nodes[0];
        } else {
                op->from = op->nodes[0];
                op->to = op->nodes[1];
        }

        if (op->tcg)
                r = numa_perf_open(m->numa->sysfs_root, NULL, 0, &op->perf) < 0 ? -ENOMEM : 0;
        else {
                tids = calloc(MAX(vm->n_vcpus, (size_t) 1), sizeof(pid_t));
                if (!tids)
                        return op_finish(op, VARLINK_ERROR_INTERNAL, NULL);
                for (size_t i = 0; i < vm->n_vcpus; i++)
                        tids[i] = vm->vcpus[i].thread_id;
                r = numa_perf_open(m->numa->sysfs_root, tids, vm->n_vcpus, &op->perf);
        }
        if (r < 0)
                return op_finish(op, VARLINK_ERROR_INTERNAL, NULL);
        if (op->tcg) {
                /* No KVM exits under TCG: counting would give zeros that mean nothing. */
                op->perf = numa_perf_free(op->perf);
        }

        op_notify(op, "started", NULL);
        op_query_stats(op, false);
}

static bool node_mask_subset(uint64_t mask, const NumaTopology *t, unsigned *ret_bad) {
        for (unsigned n = 0; n < NUMA_NODES_MAX; n++)
                if ((mask & (UINT64_C(1) << n)) && !numa_topology_find_node(t, n)) {
                        *ret_bad = n;
                        return false;
                }
        return true;
}

static int check_hugepages(Manager *m, const VmSpec *spec, uint64_t to, char **ret_reason) {
        _cleanup_free_ char *path = NULL;
        uint64_t free_pages = 0, page_size = 0;
        Meminfo *mi;

        if (!spec->hugepages)
                return 0;
        mi = malloc(sizeof(Meminfo));
        if (!mi)
                return -ENOMEM;
        path = path_join(m->numa->sysfs_root, "proc/meminfo");
        if (!path || meminfo_read(path, mi) < 0 || meminfo_get(mi, "Hugepagesize", &page_size) < 0) {
                free(mi);
                return 0; /* cannot tell: migrate_pages will say */
        }
        for (unsigned n = 0; n < NUMA_NODES_MAX; n++) {
                _cleanup_free_ char *p = NULL;
                uint64_t v;

                if (!(to & (UINT64_C(1) << n)))
                        continue;
                if (asprintf(&p, "%s/sys/devices/system/node/node%u/meminfo", m->numa->sysfs_root, n) < 0) {
                        free(mi);
                        return -ENOMEM;
                }
                if (meminfo_read(p, mi) >= 0 && meminfo_get(mi, "HugePages_Free", &v) >= 0)
                        free_pages += v;
        }
        free(mi);
        if (free_pages * page_size < spec->memory_bytes) {
                if (asprintf(ret_reason, "the guest's memory is in huge pages (%" PRIu64 " bytes) but the target "
                             "node(s) have only %" PRIu64 " free huge pages of %" PRIu64 " bytes",
                             spec->memory_bytes, free_pages, page_size) < 0)
                        return -ENOMEM;
                return 1;
        }
        return 0;
}

static int parse_nodes_param(ManagerError *e, json_object *parameters, const char *key, uint64_t *ret) {
        const char *s = json_get_string(parameters, key);

        if (!s || numa_node_list_parse(s, ret) < 0 || *ret == 0)
                return manager_error_invalid_parameter(e, key);
        return 1;
}

/* Checks a MigratePages request and sets up its operation (not started yet). */
static int migrate_prepare(Manager *m, json_object *parameters, MigrationOp **ret_op, ManagerError *e) {
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        _cleanup_free_ char *why = NULL;
        const char *between = json_get_string(parameters, "between");
        const char *from_s = json_get_string(parameters, "from"), *to_s = json_get_string(parameters, "to");
        uint64_t nodes[2] = {}, every = 0, settle = NUMA_SETTLE_DEFAULT_USEC;
        int64_t count = 1;
        MigrationOp *op;
        NumaGuest *g;
        unsigned bad;
        Vm *vm;
        int r = 0;

        /* Parameters first: they are wrong whatever the state. */
        if (between) {
                CpuSet s;
                if (from_s || to_s)
                        return manager_error_invalid_parameter(e, from_s ? "from" : "to");
                if (cpu_list_parse(between, &s) < 0 || cpu_set_count(&s) != 2 || cpu_set_last(&s) >= (int) NUMA_NODES_MAX)
                        return manager_error_invalid_parameter(e, "between");
                for (unsigned n = 0, k = 0; n < NUMA_NODES_MAX; n++)
                        if (cpu_set_contains(&s, n))
                                nodes[k++] = UINT64_C(1) << n;
                count = json_get_int(parameters, "count", 2);
                if (count < 1 || count > NUMA_MAX_MOVES)
                        return manager_error_invalid_parameter(e, "count");
                every = (uint64_t) json_get_int(parameters, "everyUSec", 0);
                if (json_get_int(parameters, "everyUSec", 0) < 0 || every > NUMA_EVERY_MAX_USEC)
                        return manager_error_invalid_parameter(e, "everyUSec");
        } else {
                if (json_object_object_get_ex(parameters, "count", NULL) && json_get_int(parameters, "count", 1) != 1)
                        return manager_error_invalid_parameter(e, "count");
                if (!from_s)
                        return manager_error_invalid_parameter(e, "from");
                if (!to_s)
                        return manager_error_invalid_parameter(e, "to");
                if ((r = parse_nodes_param(e, parameters, "from", &nodes[0])) <= 0 ||
                    (r = parse_nodes_param(e, parameters, "to", &nodes[1])) <= 0)
                        return r;
        }
        if (json_object_object_get_ex(parameters, "settleUSec", NULL)) {
                int64_t v = json_get_int(parameters, "settleUSec", -1);
                if (v < 0 || (uint64_t) v > NUMA_SETTLE_MAX_USEC)
                        return manager_error_invalid_parameter(e, "settleUSec");
                settle = (uint64_t) v;
        }

        vm = manager_find_vm(m, json_get_string(parameters, "name"));
        if (!vm)
                return numa_fail(e, -ENOENT, ERROR_NO_SUCH_VM, "s:name", json_get_string(parameters, "name"));

        r = numa_topology_read(m->numa->sysfs_root, &t);
        if (r < 0)
                return log_warning_errno(r, "Failed to read the NUMA topology: %m");
        if (t->n_nodes < 2)
                return numa_fail(e, -EXDEV, ERROR_SINGLE_NODE, "i:nodes s:reason", (int64_t) t->n_nodes,
                                 "the host has a single NUMA node: there is no other node to move memory to");
        for (size_t i = 0; i < 2; i++)
                if (!node_mask_subset(nodes[i], t, &bad)) {
                        _cleanup_free_ char *online = NULL;
                        CpuSet s = {};
                        for (size_t k = 0; k < t->n_nodes; k++)
                                cpu_set_add(&s, t->nodes[k].id);
                        (void) cpu_list_format(&s, &online);
                        return numa_fail(e, -ENOENT, ERROR_NO_SUCH_NODE, "s:parameter i:node s:nodes",
                                         between ? "between" : i == 0 ? "from" : "to", (int64_t) bad, strna(online));
                }
        if (nodes[0] == nodes[1])
                return numa_fail(e, -EINVAL, ERROR_IDENTICAL_NODES, "s:from s:to", between ?: from_s, between ?: to_s);
        if (!vm_is_running(vm))
                return fail_invalid_state(e, vm);

        g = numa_guest_get(m->numa, vm->name, true);
        if (!g)
                return -ENOMEM;
        if (g->op)
                return numa_fail(e, -EBUSY, ERROR_BUSY, "s:name s:operation", vm->name,
                                 g->op->pingpong ? "ping-pong migration" : "page migration");
        if (!have_cap_sys_nice())
                return numa_fail(e, -EPERM, ERROR_MISSING_CAPABILITY, "s:capability s:reason", "CAP_SYS_NICE",
                                 "migrate_pages(2) of another process's memory needs CAP_SYS_NICE");
        r = check_hugepages(m, vm->running_spec ?: vm->spec, between ? nodes[0] | nodes[1] : nodes[1], &why);
        if (r < 0)
                return r;
        if (r > 0)
                return numa_fail(e, -ENOMEM, ERROR_MEMORY_CANNOT_MOVE, "s:reason", why);

        op = calloc(1, sizeof(MigrationOp));
        if (!op)
                return -ENOMEM;
        op->guest = g;
        op->started_monotonic = now_usec(CLOCK_MONOTONIC);
        op->nodes[0] = nodes[0];
        op->nodes[1] = nodes[1];
        op->pingpong = between;
        op->count = (unsigned) count;
        op->every_usec = every;
        op->settle_usec = settle;
        g->op = op;
        *ret_op = op;
        return 0;
}

static int vl_migrate_pages(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        ManagerError e = {};
        MigrationOp *op;
        int r;

        r = migrate_prepare(userdata, parameters, &op, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        op->more = flags & VARLINK_CALL_MORE;
        if (flags & VARLINK_CALL_ONEWAY)
                /* Nothing to answer: end the call now (sends nothing), so that the connection serves the next one;
                 * the moves go on and are recorded. */
                (void) varlink_reply(c, NULL);
        else {
                op->conn = varlink_connection_ref(c);
                varlink_connection_set_close_callback(c, op_on_connection_closed, op);
        }
        op_begin_move(op);      /* replies now on errors, later otherwise */
        return 0;
}

int manager_numa_migrate_pages(Manager *m, json_object *parameters, ManagerCompletion *completion,
                               ManagerError *ret_error) {
        MigrationOp *op;
        int r;

        r = migrate_prepare(m, parameters, &op, ret_error);
        if (r < 0) {
                manager_completion_drop(completion);
                return r;
        }
        op->completion = *completion;
        *completion = (ManagerCompletion) {};
        op_begin_move(op);      /* completes now on errors, later otherwise */
        return 0;
}

static int vl_cancel_migrations(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        NumaGuest *g;
        Vm *vm;
        int r = 0;

        vm = lookup_or_reply(m, c, parameters, &r);
        if (!vm)
                return r;
        g = numa_guest_get(m->numa, vm->name, false);
        if (g && g->op) {
                g->op->cancelled = true;
                if (g->op->timer && !g->op->job) {
                        /* Waiting for the next move: end now. */
                        op_finish(g->op, NULL, NULL);
                }
        }
        return varlink_reply(c, NULL);
}

static int vl_list_migrations(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        _cleanup_json_ json_object *p = json_object_new_object();
        NumaGuest *g;
        Vm *vm;
        int r = 0;

        vm = lookup_or_reply(m, c, parameters, &r);
        if (!vm)
                return r;
        if (!p)
                return -ENOMEM;
        g = numa_guest_get(m->numa, vm->name, false);
        r = json_add(p, "migrations", g ? json_object_get(g->records) : json_object_new_array());
        if (r < 0)
                return r;
        r = json_add_bool(p, "inProgress", g && g->op);
        if (r < 0)
                return r;
        return varlink_reply(c, TAKE_PTR(p));
}

/* ---- the ping-pong of the .vm file ------------------------------------------------------------ */

/* [Memory] MigrateBetween=/MigrateEverySec=/MigrateCount=/MigrateSettleSec=: started each time the guest
 * reaches running, as a MigratePages call with between/everyUSec/count/settleUSec and no caller (its moves are
 * recorded for ListMigrations). A refusal (a one-node host, missing CAP_SYS_NICE, …) is logged once per guest
 * and reason, and the guest runs on. */
static void schedule_start(Manager *m, Vm *vm, const VmSpec *spec) {
        _cleanup_json_ json_object *p = json_object_new_object();
        ManagerError e = {};
        MigrationOp *op;
        NumaGuest *g;
        char every[64];
        int r;

        if (!p ||
            json_add_string(p, "name", vm->name) < 0 ||
            json_add_string(p, "between", spec->migrate_between) < 0 ||
            json_add_int(p, "count", spec->migrate_count) < 0 ||
            json_add_int(p, "everyUSec", (int64_t) spec->migrate_every_usec) < 0 ||
            json_add_int(p, "settleUSec", (int64_t) spec->migrate_settle_usec) < 0) {
                (void) log_oom();
                return;
        }

        r = migrate_prepare(m, p, &op, &e);
        if (r < 0) {
                g = numa_guest_get(m->numa, vm->name, true);
                if (e.name) {
                        const char *reason = json_get_string(e.parameters, "reason");
                        bool again = g && g->schedule_refused == e.name;

                        log_full(again ? LOG_DEBUG : LOG_WARNING,
                                 "Guest %s: ping-pong migration of [Memory] MigrateBetween=%s not started: %s%s%s, "
                                 "ignoring.", vm->name, spec->migrate_between, e.name, reason ? ": " : "",
                                 strempty(reason));
                        if (g)
                                g->schedule_refused = e.name;
                } else
                        log_warning_errno(r, "Guest %s: failed to start the ping-pong migration of [Memory] "
                                          "MigrateBetween=%s, ignoring: %m", vm->name, spec->migrate_between);
                manager_error_done(&e);
                return;
        }

        op->guest->schedule_refused = NULL;
        log_info("Guest %s: ping-pong migration between nodes %s started ([Memory] MigrateBetween=): %u move(s), "
                 "one every %s.", vm->name, spec->migrate_between, spec->migrate_count,
                 format_timespan(every, sizeof(every), spec->migrate_every_usec));
        op_begin_move(op);      /* no caller: errors end it here, moves are recorded */
}

/* Ends a migration like CancelMigrations: no further move; one in progress finishes and is recorded. */
static void schedule_stop(Manager *m, Vm *vm) {
        NumaGuest *g = numa_guest_get(m->numa, vm->name, false);

        if (!g || !g->op || g->op->cancelled)
                return;
        log_info("Guest %s is %s: %s ends after %u move(s).", vm->name, vm_state_to_string(vm->state),
                 g->op->pingpong ? "ping-pong migration" : "page migration", g->op->done);
        g->op->cancelled = true;
        if (g->op->timer && !g->op->job)
                op_finish(g->op, NULL, NULL);   /* waiting for the next move: end now */
}

static void numa_on_vm_state(Vm *vm, VmState old_state, void *userdata) {
        Manager *m = userdata;
        const VmSpec *spec = vm->running_spec ?: vm->spec;

        if (!m->numa || vm->state == old_state)
                return;
        if (old_state == VM_STATE_RUNNING)
                schedule_stop(m, vm);
        else if (vm->state == VM_STATE_RUNNING && spec && spec->migrate_between)
                schedule_start(m, vm, spec);
}

/* ---- module ----------------------------------------------------------------------------------- */

int manager_numa_guest_info(Manager *m, const char *name, ManagerNumaInfo *ret) {
        NumaGuest *g = m->numa && name ? numa_guest_get(m->numa, name, /* create= */ false) : NULL;

        if (!g)
                return -ENOENT;
        *ret = g->totals;
        return 0;
}

int manager_numa_start(Manager *m) {
        ManagerNuma *n;
        int r;

        n = calloc(1, sizeof(ManagerNuma));
        if (!n)
                return log_oom();
        n->manager = m;
        n->sysfs_root = "/";
        m->numa = n;
        m->vmctx.prerun = numa_prerun;
        m->vmctx.prerun_userdata = m;
        r = vm_context_add_state_watch(&m->vmctx, numa_on_vm_state, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch guest states for NUMA: %m");
        return 0;
}

void manager_numa_done(Manager *m) {
        ManagerNuma *n = m->numa;

        if (!n)
                return;
        m->vmctx.prerun = NULL;
        for (size_t i = 0; i < n->n_requests; i++)
                placement_request_free(n->requests[i]);
        free(n->requests);
        for (size_t i = 0; i < n->n_guests; i++) {
                NumaGuest *g = n->guests[i];
                op_free(g->op);     /* joins a running migrate_pages */
                json_object_put(g->records);
                free(g->name);
                free(g);
        }
        free(n->guests);
        m->numa = mfree(n);
}

static const VarlinkField name_only[] = { { "name", VARLINK_STRING, 0 }, { NULL } };

static const VarlinkMethod numa_methods[] = {
        { "GetTopology", vl_get_topology, (const VarlinkField[]) { { NULL } }, 0 },
        { "GetPlacement", vl_get_placement, name_only, 0 },
        { "PinVCPUs", vl_pin_vcpus,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "map", VARLINK_STRING, 0 },
                  { "emulator", VARLINK_STRING, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "MigratePages", vl_migrate_pages,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "from", VARLINK_STRING, VARLINK_NULLABLE },
                  { "to", VARLINK_STRING, VARLINK_NULLABLE },
                  { "between", VARLINK_STRING, VARLINK_NULLABLE },
                  { "count", VARLINK_INT, VARLINK_NULLABLE },
                  { "everyUSec", VARLINK_INT, VARLINK_NULLABLE },
                  { "settleUSec", VARLINK_INT, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "CancelMigrations", vl_cancel_migrations, name_only, VARLINK_METHOD_PRIVILEGED },
        { "ListMigrations", vl_list_migrations, name_only, 0 },
        { NULL },
};

const VarlinkMethod *manager_numa_methods(void) {
        return numa_methods;
}
