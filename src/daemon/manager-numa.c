/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NUMA on io.memvisor.Manager: the host topology, vCPU pinning (at start through VmContext.prerun, and at
 * runtime), placement of a guest, and page migration. The work is src/numa's (numa-pin.h, numa-migration.h);
 * this file turns varlink calls, D-Bus calls (manager.h) and the .vm ping-pong into its typed requests, and its
 * results and NumaErrors into replies. Each guest's MigrationHistory is kept here by name. */
#include <stdio.h>

#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "numa-migration.h"
#include "numa-pin.h"
#include "numa-placement.h"
#include "numa-topology.h"
#include "numa-worker.h"
#include "parse.h"

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

typedef struct NumaGuest {
        MigrationHistory *history;
        const char *schedule_refused;   /* the error the .vm schedule was last refused with (logged once) */
} NumaGuest;

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
        MigrationContext ctx;
        NumaGuest **guests;
        size_t n_guests;
        PlacementRequest **requests;
        size_t n_requests;
        pid_t *tids;                    /* MigrationContext.lookup's answer */
};

/* A MigratePages caller: a varlink call, a D-Bus call, or none (the .vm ping-pong). */
typedef struct MigrateCall {
        ManagerNuma *numa;
        char *name;
        VarlinkConnection *conn;        /* NULL once the caller went away: the moves go on and are recorded */
        bool more;
        ManagerCompletion completion;
} MigrateCall;

/* ---- errors ----------------------------------------------------------------------------------- */

static int error_json(ManagerError *ret, int error, const char *name, json_object *p, int r) {
        if (r < 0 || !p) {
                json_object_put(p);
                return r < 0 ? r : -ENOMEM;
        }
        return manager_error_set(ret, error, name, p);
}

static int fail_no_such_vm(ManagerError *ret, const char *name) {
        json_object *p = json_object_new_object();
        return error_json(ret, -ENOENT, ERROR_NO_SUCH_VM, p, p ? json_add_string(p, "name", name) : 0);
}

static int fail_invalid_state(ManagerError *ret, const char *name, Vm *vm) {
        json_object *p = json_object_new_object();
        int r = p ? json_add_string(p, "name", name) : 0;

        if (r >= 0 && p)
                r = json_add_string(p, "state", vm ? vm_state_to_string(vm->state) : "undefined");
        return error_json(ret, -ESRCH, ERROR_INVALID_STATE, p, r);
}

static const char *const numa_error_names[_NUMA_ERROR_MAX] = {
        [NUMA_ERROR_INVALID_PARAMETER] = MANAGER_ERROR_INVALID_PARAMETER,
        [NUMA_ERROR_NOT_RUNNING] = ERROR_INVALID_STATE,
        [NUMA_ERROR_SINGLE_NODE] = ERROR_SINGLE_NODE,
        [NUMA_ERROR_NO_SUCH_NODE] = ERROR_NO_SUCH_NODE,
        [NUMA_ERROR_IDENTICAL_NODES] = ERROR_IDENTICAL_NODES,
        [NUMA_ERROR_MEMORY_CANNOT_MOVE] = ERROR_MEMORY_CANNOT_MOVE,
        [NUMA_ERROR_MISSING_CAPABILITY] = ERROR_MISSING_CAPABILITY,
        [NUMA_ERROR_BUSY] = ERROR_BUSY,
        [NUMA_ERROR_NO_SUCH_VCPU] = ERROR_NO_SUCH_VCPU,
        [NUMA_ERROR_NO_SUCH_CPU] = ERROR_NO_SUCH_CPU,
        [NUMA_ERROR_PINNING_FAILED] = ERROR_PINNING_FAILED,
        [NUMA_ERROR_MIGRATION_FAILED] = ERROR_MIGRATION_FAILED,
};

/* A NumaError of the guest called name as the API error (code > 0), or code itself (internal). */
static int numa_fail(Manager *m, const char *name, int code, const NumaError *e, ManagerError *ret) {
        json_object *p = NULL;
        int r;

        if (code <= 0 || code >= _NUMA_ERROR_MAX || !e)
                return code < 0 ? code : -EIO;
        if (code == NUMA_ERROR_NOT_RUNNING)
                return fail_invalid_state(ret, name, manager_find_vm(m, name));
        r = numa_error_parameters_json(e, name, &p);
        if (r < 0)
                return r;
        return manager_error_set(ret, e->cause < 0 ? e->cause : -EINVAL, numa_error_names[code], p);
}

static bool vm_is_running(Vm *vm) {
        return vm->state == VM_STATE_RUNNING && vm->pid > 0;
}

static NumaVcpuThread *vm_vcpu_threads(Vm *vm) {
        NumaVcpuThread *v = calloc(MAX(vm->n_vcpus, (size_t) 1), sizeof(NumaVcpuThread));

        for (size_t i = 0; v && i < vm->n_vcpus; i++)
                v[i] = (NumaVcpuThread) { .index = vm->vcpus[i].index, .thread_id = vm->vcpus[i].thread_id };
        return v;
}

/* ---- guests ----------------------------------------------------------------------------------- */

static NumaGuest *numa_guest_get(ManagerNuma *n, const char *name, bool create) {
        _cleanup_free_ NumaGuest *g = NULL;
        NumaGuest **t;

        for (size_t i = 0; i < n->n_guests; i++)
                if (streq(migration_history_name(n->guests[i]->history), name))
                        return n->guests[i];
        if (!create)
                return NULL;
        g = calloc(1, sizeof(NumaGuest));
        if (!g || migration_history_new(name, &g->history) < 0)
                return NULL;
        t = realloc(n->guests, (n->n_guests + 1) * sizeof(NumaGuest *));
        if (!t) {
                migration_history_free(g->history);
                return NULL;
        }
        n->guests = t;
        n->guests[n->n_guests++] = g;
        return TAKE_PTR(g);
}

static MigrationHistory *numa_history(ManagerNuma *n, const char *name) {
        NumaGuest *g = numa_guest_get(n, name, false);
        return g ? g->history : NULL;
}

/* ---- topology and pinning --------------------------------------------------------------------- */

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

static void log_pinned(Vm *vm, const NumaPinResult *res, const char *emulator) {
        for (size_t i = 0; i < res->n_vcpus; i++) {
                _cleanup_free_ char *got = NULL;

                (void) cpu_list_format(&res->vcpus[i].effective, &got);
                log_info("Guest %s: vCPU %u (thread %i) pinned to CPUs %s (verified).", vm->name, res->vcpus[i].vcpu,
                         (int) res->vcpus[i].thread_id, strna(got));
        }
        if (res->n_emulator_threads >= 0)
                log_info("Guest %s: %i QEMU threads besides the vCPUs pinned to CPUs %s.", vm->name,
                         res->n_emulator_threads, emulator);
}

/* Why [CPU] VCPUAffinity=/EmulatorAffinity= could not be applied at start. */
static int prerun_log_error(Vm *vm, const VmSpec *spec, const NumaError *e) {
        bool vcpu = e->has_vcpu || streq_ptr(e->parameter, "map");

        if (e->code == NUMA_ERROR_INVALID_PARAMETER)
                return log_error_errno(e->cause, "Guest %s: invalid %s=%s: %m", vm->name,
                                       vcpu ? "VCPUAffinity" : "EmulatorAffinity",
                                       vcpu ? spec->vcpu_affinity : spec->emulator_affinity);
        if (e->code == NUMA_ERROR_NO_SUCH_VCPU)
                return log_error_errno(-ENOENT, "Guest %s: VCPUAffinity= names vCPU %u, whose thread QEMU did not "
                                       "report.", vm->name, e->vcpu);
        if (e->code == NUMA_ERROR_NO_SUCH_CPU && vcpu)
                return log_error_errno(-EINVAL, "Guest %s: VCPUAffinity= pins vCPU %u to CPUs %s, which are not all "
                                       "online.", vm->name, e->vcpu, strna(e->requested));
        if (e->code == NUMA_ERROR_NO_SUCH_CPU)
                return log_error_errno(-EINVAL, "Guest %s: EmulatorAffinity=%s names CPUs that are not online.",
                                       vm->name, spec->emulator_affinity);
        if (e->code == NUMA_ERROR_PINNING_FAILED && !e->has_vcpu)
                return log_error_errno(e->cause, "Guest %s: failed to pin QEMU's other threads to %s: %m", vm->name,
                                       spec->emulator_affinity);
        if (e->code == NUMA_ERROR_PINNING_FAILED && e->cause == -EXDEV)
                return log_error_errno(e->cause, "Guest %s: vCPU %u (thread %i) pinned to %s, but the kernel allows "
                                       "%s.", vm->name, e->vcpu, (int) e->thread_id, strna(e->requested),
                                       strna(e->effective));
        return log_error_errno(e->cause < 0 ? e->cause : -EINVAL, "Guest %s: failed to pin vCPU %u (thread %i) to %s: %m",
                               vm->name, e->vcpu, (int) e->thread_id, strna(e->requested));
}

/* The start-up hook: applies [CPU] VCPUAffinity= and EmulatorAffinity= while the guest is paused. */
static int numa_prerun(Vm *vm, void *userdata) {
        Manager *m = userdata;
        const VmSpec *spec = vm->running_spec ?: vm->spec;
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        _cleanup_(numa_pin_result_done) NumaPinResult res = {};
        _cleanup_(numa_error_done) NumaError e = {};
        _cleanup_free_ NumaVcpuThread *vcpus = vm_vcpu_threads(vm);
        int r;

        r = numa_topology_read(m->numa->sysfs_root, &t);
        if (r < 0)
                return log_error_errno(r, "Failed to read the NUMA topology for pinning guest %s: %m", vm->name);
        if (!vcpus)
                return log_oom();
        r = numa_pin(&(NumaPinRequest) { .proc_root = vm->ctx->proc_root, .pid = vm->pid, .vcpus = vcpus,
                                         .n_vcpus = vm->n_vcpus, .map = spec->vcpu_affinity,
                                         .emulator = spec->emulator_affinity },
                     t, &res, &e);
        if (r > 0)
                return prerun_log_error(vm, spec, &e);
        if (r < 0)
                return log_error_errno(r, "Guest %s: failed to pin its threads: %m", vm->name);
        log_pinned(vm, &res, spec->emulator_affinity);
        return 0;
}

int manager_numa_pin_vcpus(Manager *m, const char *name, const char *map_s, const char *emulator,
                           json_object **ret_reply, ManagerError *ret_error) {
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        _cleanup_(numa_pin_result_done) NumaPinResult res = {};
        _cleanup_(numa_error_done) NumaError e = {};
        _cleanup_free_ NumaVcpuThread *vcpus = NULL;
        _cleanup_json_ json_object *p = NULL, *a = NULL;
        NumaPinRequest req = { .map = map_s, .emulator = emulator };
        Vm *vm;
        int r;

        if (!map_s)
                return manager_error_invalid_parameter(ret_error, "map");
        r = numa_pin_request_validate(&req, &e);
        if (r != 0)
                return numa_fail(m, name, r, &e, ret_error);
        vm = manager_find_vm(m, name);
        if (!vm)
                return fail_no_such_vm(ret_error, name);
        if (!vm_is_running(vm) || vm->n_vcpus == 0)
                return fail_invalid_state(ret_error, vm->name, vm);
        r = numa_topology_read(m->numa->sysfs_root, &t);
        if (r < 0)
                return r;
        vcpus = vm_vcpu_threads(vm);
        if (!vcpus)
                return -ENOMEM;
        req.proc_root = vm->ctx->proc_root;
        req.pid = vm->pid;
        req.vcpus = vcpus;
        req.n_vcpus = vm->n_vcpus;
        r = numa_pin(&req, t, &res, &e);
        if (r != 0)
                return numa_fail(m, vm->name, r, &e, ret_error);
        log_pinned(vm, &(NumaPinResult) { .vcpus = res.vcpus, .n_vcpus = res.n_vcpus, .n_emulator_threads = -1 },
                   NULL);

        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        r = numa_vcpu_placements_json(vm->ctx->proc_root, vm->pid, t, vcpus, vm->n_vcpus, &a);
        if (r < 0)
                return r;
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

DEFINE_TRIVIAL_CLEANUP_FUNC(PlacementRequest *, placement_request_free);

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
        _cleanup_free_ NumaVcpuThread *vcpus = NULL;
        _cleanup_(placement_request_freep) PlacementRequest *q = NULL;
        const char *name = json_get_string(parameters, "name");
        ManagerError e = {};
        PlacementRequest **tq;
        const VmSpec *spec;
        Vm *vm;
        int r;

        vm = manager_find_vm(m, name);
        if (!vm)
                return manager_error_varlink_reply(c, &e, fail_no_such_vm(&e, name));
        spec = vm->running_spec ?: vm->spec;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "name", vm->name)) < 0 ||
            (r = json_add_string(o, "state", vm_state_to_string(vm->state))) < 0 ||
            (r = json_add_string(o, "memoryPolicy", vm_memory_policy_to_string(spec->policy))) < 0 ||
            (r = json_add_string(o, "hostNodes", spec->host_nodes)) < 0 ||
            (r = json_add_string(o, "vcpuAffinity", spec->vcpu_affinity)) < 0 ||
            (r = json_add_string(o, "emulatorAffinity", spec->emulator_affinity)) < 0 ||
            (r = json_add_bool(o, "migrating", migration_history_busy(numa_history(m->numa, vm->name), NULL))) < 0)
                return r;

        if (!vm_is_running(vm)) {
                _cleanup_json_ json_object *p = json_object_new_object();
                if (!p || json_add(o, "vcpus", json_object_new_array()) < 0 || json_add(p, "placement", TAKE_PTR(o)) < 0)
                        return -ENOMEM;
                return varlink_reply(c, TAKE_PTR(p));
        }

        r = numa_topology_read(m->numa->sysfs_root, &t);
        if (r < 0)
                return r;
        vcpus = vm_vcpu_threads(vm);
        if (!vcpus)
                return -ENOMEM;
        r = numa_vcpu_placements_json(vm->ctx->proc_root, vm->pid, t, vcpus, vm->n_vcpus, &a);
        if (r < 0)
                return r;
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
                return -ENOMEM;
        }
        tq = realloc(m->numa->requests, (m->numa->n_requests + 1) * sizeof(void *));
        if (!tq)
                return -ENOMEM;
        m->numa->requests = tq;
        r = numa_worker_start(m->event, "numa-placement", placement_read_residency, q, placement_on_worker, q,
                              &q->worker);
        if (r < 0)
                return r;
        q->conn = varlink_connection_ref(c);
        m->numa->requests[m->numa->n_requests++] = TAKE_PTR(q);
        return 0;
}

/* ---- migration -------------------------------------------------------------------------------- */

static MigrateCall *migrate_call_free(MigrateCall *call);

static void migrate_on_connection_closed(VarlinkConnection *c, void *userdata) {
        MigrateCall *call = userdata;

        if (call->conn == c)
                call->conn = varlink_connection_unref(call->conn);
}

/* Takes the caller's connection out of the call: no longer its close callback (the connection outlives the
 * call and may carry other calls). Returns the reference. */
static VarlinkConnection *migrate_call_steal_connection(MigrateCall *call) {
        varlink_connection_clear_close_callback(call->conn, migrate_on_connection_closed, call);
        return TAKE_PTR(call->conn);
}

static MigrateCall *migrate_call_free(MigrateCall *call) {
        if (!call)
                return NULL;
        varlink_connection_unref(migrate_call_steal_connection(call));
        manager_completion_drop(&call->completion);
        free(call->name);
        return mfree(call);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(MigrateCall *, migrate_call_free);

static void migrate_on_progress(const MigrationProgress *p, void *userdata) {
        MigrateCall *call = userdata;
        _cleanup_json_ json_object *x = NULL;

        if (p->phase == MIGRATION_PHASE_MOVED) {
                const MigrationReport *rep = p->report;
                _cleanup_free_ char *from = NULL, *to = NULL;
                CpuSet f = { .bits = { rep->from } }, t = { .bits = { rep->to } };
                bool both = rep->have_before && rep->have_after;

                (void) cpu_list_format(&f, &from);
                (void) cpu_list_format(&t, &to);
                log_info("Guest %s: pages moved from node(s) %s to %s: %s, %" PRIu64 " bytes in %" PRIu64 " us.",
                         call->name, strna(from), strna(to), migration_report_failed(rep) ? "failed" : "done",
                         both ? rep->summary.bytes_moved : 0, both ? rep->summary.duration_usec : 0);
        }
        if (call->conn && call->more && migration_progress_to_json(p, &x) >= 0)
                (void) varlink_notify(call->conn, TAKE_PTR(x));
}

/* The end of the run: the final reply (the summary, or the error). */
static void migrate_on_finished(int error, const NumaError *details, const MigrationSummary *s, void *userdata) {
        _cleanup_(migrate_call_freep) MigrateCall *call = userdata;
        /* Ours until the reply is queued (queuing may close the connection), then no longer this call's. */
        _cleanup_(varlink_connection_unrefp) VarlinkConnection *c = migrate_call_steal_connection(call);
        ManagerError e = {};
        json_object *p = NULL;
        int r;

        if (error == -ECANCELED || (!c && !manager_completion_pending(&call->completion)))
                return;         /* the daemon shuts down, or nobody to tell */
        if (error == 0)
                r = migration_summary_to_json(s, &p);
        else
                r = numa_fail(call->numa->manager, call->name, error, details, &e);
        if (r < 0 && !e.name)
                e.name = VARLINK_ERROR_INTERNAL;
        if (c)
                (void) (e.name ? varlink_error(c, e.name, TAKE_PTR(e.parameters)) : varlink_reply(c, TAKE_PTR(p)));
        else
                manager_completion_finish(&call->completion, e.name, e.name ? TAKE_PTR(e.parameters) : TAKE_PTR(p));
        json_object_put(p);
        manager_error_done(&e);
}

static const MigrationCallbacks migrate_callbacks = {
        .progress = migrate_on_progress,
        .finished = migrate_on_finished,
};

/* Checks a MigratePages request of the guest called name and sets up its run for call (taken on success). */
static int migrate_prepare(Manager *m, const char *name, MigrationRequest *req, MigrateCall **call,
                           MigrationRun **ret_run, ManagerError *ret_error) {
        _cleanup_(numa_error_done) NumaError e = {};
        NumaGuest *g;
        Vm *vm;
        int r;

        /* Parameters first: they are wrong whatever the state. */
        r = migration_request_validate(req, &e);
        if (r != 0)
                return numa_fail(m, name, r, &e, ret_error);
        vm = manager_find_vm(m, name);
        if (!vm)
                return fail_no_such_vm(ret_error, name);
        req->pid = vm_is_running(vm) ? vm->pid : 0;
        req->hugepages = (vm->running_spec ?: vm->spec)->hugepages;
        req->memory_bytes = (vm->running_spec ?: vm->spec)->memory_bytes;
        g = numa_guest_get(m->numa, vm->name, true);
        if (!g)
                return -ENOMEM;
        (*call)->numa = m->numa;
        (*call)->name = strdup(vm->name);
        if (!(*call)->name)
                return -ENOMEM;
        r = migration_run_new(g->history, &m->numa->ctx, req, &migrate_callbacks, *call, ret_run, &e);
        if (r != 0)
                return numa_fail(m, vm->name, r, &e, ret_error);
        *call = NULL;           /* the run's now */
        return 0;
}

static int vl_migrate_pages(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        _cleanup_(migrate_call_freep) MigrateCall *call = calloc(1, sizeof(MigrateCall));
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        MigrateCall *owned = call;
        ManagerError e = {};
        MigrationRun *run;
        int r;

        if (!call)
                return -ENOMEM;
        req.from = json_get_string(parameters, "from");
        req.to = json_get_string(parameters, "to");
        req.between = json_get_string(parameters, "between");
        req.count = json_get_int(parameters, "count", MIGRATION_UNSET);
        req.every_usec = json_get_int(parameters, "everyUSec", MIGRATION_UNSET);
        if (json_object_object_get_ex(parameters, "settleUSec", NULL))
                req.settle_usec = json_get_int(parameters, "settleUSec", -1);
        r = migrate_prepare(userdata, json_get_string(parameters, "name"), &req, &call, &run, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        owned->more = flags & VARLINK_CALL_MORE;
        if (flags & VARLINK_CALL_ONEWAY)
                /* Nothing to answer: end the call now (sends nothing), so that the connection serves the next one;
                 * the moves go on and are recorded. */
                (void) varlink_reply(c, NULL);
        else {
                owned->conn = varlink_connection_ref(c);
                varlink_connection_set_close_callback(c, migrate_on_connection_closed, owned);
        }
        migration_run_begin(run);       /* replies now on errors, later otherwise */
        return 0;
}

int manager_numa_migrate_pages(Manager *m, const char *name, const char *from, const char *to,
                               ManagerCompletion *completion, ManagerError *ret_error) {
        _cleanup_(migrate_call_freep) MigrateCall *call = calloc(1, sizeof(MigrateCall));
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        MigrateCall *owned = call;
        MigrationRun *run;
        int r;

        if (!call) {
                manager_completion_drop(completion);
                return -ENOMEM;
        }
        req.from = from;
        req.to = to;
        r = migrate_prepare(m, name, &req, &call, &run, ret_error);
        if (r < 0) {
                manager_completion_drop(completion);
                return r;
        }
        owned->completion = *completion;
        *completion = (ManagerCompletion) {};
        migration_run_begin(run);       /* completes now on errors, later otherwise */
        return 0;
}

static int vl_cancel_migrations(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        const char *name = json_get_string(parameters, "name");
        ManagerError e = {};
        Vm *vm;

        vm = manager_find_vm(m, name);
        if (!vm)
                return manager_error_varlink_reply(c, &e, fail_no_such_vm(&e, name));
        migration_history_cancel(numa_history(m->numa, vm->name));
        return varlink_reply(c, NULL);
}

static int vl_list_migrations(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        _cleanup_json_ json_object *p = json_object_new_object(), *a = NULL;
        const char *name = json_get_string(parameters, "name");
        MigrationHistory *h;
        ManagerError e = {};
        Vm *vm;
        int r;

        vm = manager_find_vm(m, name);
        if (!vm)
                return manager_error_varlink_reply(c, &e, fail_no_such_vm(&e, name));
        if (!p)
                return -ENOMEM;
        h = numa_history(m->numa, vm->name);
        r = migration_history_to_json(h, &a);
        if (r < 0)
                return r;
        if ((r = json_add(p, "migrations", TAKE_PTR(a))) < 0 ||
            (r = json_add_bool(p, "inProgress", migration_history_busy(h, NULL))) < 0)
                return r;
        return varlink_reply(c, TAKE_PTR(p));
}

/* ---- the ping-pong of the .vm file ------------------------------------------------------------ */

/* [Memory] MigrateBetween=/MigrateEverySec=/MigrateCount=/MigrateSettleSec=: started each time the guest
 * reaches running, as a MigratePages call with between/everyUSec/count/settleUSec and no caller (its moves are
 * recorded for ListMigrations). A refusal (a one-node host, missing CAP_SYS_NICE, …) is logged once per guest
 * and reason, and the guest runs on. */
static void schedule_start(Manager *m, Vm *vm, const VmSpec *spec) {
        _cleanup_(migrate_call_freep) MigrateCall *call = calloc(1, sizeof(MigrateCall));
        MigrationRequest req = {
                .between = spec->migrate_between,
                .count = spec->migrate_count,
                .every_usec = (int64_t) spec->migrate_every_usec,
                .settle_usec = (int64_t) spec->migrate_settle_usec,
        };
        ManagerError e = {};
        MigrationRun *run;
        NumaGuest *g;
        char every[64];
        int r;

        if (!call) {
                (void) log_oom();
                return;
        }
        r = migrate_prepare(m, vm->name, &req, &call, &run, &e);
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

        numa_guest_get(m->numa, vm->name, false)->schedule_refused = NULL;
        log_info("Guest %s: ping-pong migration between nodes %s started ([Memory] MigrateBetween=): %u move(s), "
                 "one every %s.", vm->name, spec->migrate_between, spec->migrate_count,
                 format_timespan(every, sizeof(every), spec->migrate_every_usec));
        migration_run_begin(run);       /* no caller: errors end it here, moves are recorded */
}

/* Ends a migration like CancelMigrations: no further move; one in progress finishes and is recorded. */
static void schedule_stop(Manager *m, Vm *vm) {
        MigrationHistory *h = numa_history(m->numa, vm->name);
        MigrationRunStatus st;

        if (!migration_history_busy(h, &st) || st.cancelled)
                return;
        log_info("Guest %s is %s: %s ends after %u move(s).", vm->name, vm_state_to_string(vm->state),
                 st.pingpong ? "ping-pong migration" : "page migration", st.done);
        migration_history_cancel(h);
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

/* MigrationContext.lookup: where the guest runs now. */
static int numa_lookup(const char *name, void *userdata, MigrationGuest *ret) {
        ManagerNuma *n = userdata;
        Vm *vm = manager_find_vm(n->manager, name);
        pid_t *t;

        if (!vm || !vm_is_running(vm))
                return -ESRCH;
        t = realloc(n->tids, MAX(vm->n_vcpus, (size_t) 1) * sizeof(pid_t));
        if (!t)
                return -ENOMEM;
        n->tids = t;
        for (size_t i = 0; i < vm->n_vcpus; i++)
                t[i] = vm->vcpus[i].thread_id;
        *ret = (MigrationGuest) { .pid = vm->pid, .tcg = vm->accel == VM_ACCEL_TCG, .vcpu_threads = t,
                                  .n_vcpu_threads = vm->n_vcpus };
        return 0;
}

/* MigrationContext.query_stats: only while the QEMU the run measures is the guest's. */
static int numa_query_stats(const char *name, pid_t pid, uint64_t timeout_usec, KvmStatsCallback cb,
                            void *cb_userdata, void *userdata) {
        ManagerNuma *n = userdata;
        Vm *vm = manager_find_vm(n->manager, name);

        if (!vm || !vm->qmp || vm->pid != pid)
                return -ENOTCONN;
        return kvm_stats_query(vm->qmp, timeout_usec, cb, cb_userdata);
}

int manager_numa_guest_info(Manager *m, const char *name, ManagerNumaInfo *ret) {
        MigrationHistory *h = m->numa && name ? numa_history(m->numa, name) : NULL;
        const MigrationTotals *t;

        if (!h)
                return -ENOENT;
        t = migration_history_totals(h);
        *ret = (ManagerNumaInfo) {
                .migrations_total = t->migrations_total,
                .migration_failures = t->migration_failures,
                .pages_moved = t->pages_moved,
                .bytes_moved = t->bytes_moved,
                .migrate_usec = t->migrate_usec,
        };
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
        n->ctx = (MigrationContext) {
                .event = m->event,
                .proc_root = m->vmctx.proc_root,
                .sysfs_root = n->sysfs_root,
                .lookup = numa_lookup,
                .query_stats = numa_query_stats,
                .userdata = n,
        };
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
                migration_history_free(n->guests[i]->history);     /* joins a running migrate_pages */
                free(n->guests[i]);
        }
        free(n->guests);
        free(n->tids);
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
