/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MigratePages (varlink and D-Bus), CancelMigrations, ListMigrations and the .vm ping-pong as
 * MigrationRequests to src/numa's runner (numa-migration.h); its progress, summary and errors as replies. */
#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-numa.h"
#include "numa/numa-guest-ram.h"
#include "daemon/manager-persist.h"
#include "basic/parse.h"

/* A MigratePages caller: a varlink call, a D-Bus call, or none (the .vm ping-pong). */
typedef struct MigrateCall {
        ManagerNuma *numa;
        char *name;
        VarlinkConnection *conn;        /* NULL once the caller went away: the moves go on and are recorded */
        bool more;
        ManagerCompletion completion;
} MigrateCall;

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
                migration_report_log(call->name, p->report);
                /* on disk before the caller hears of it */
                (void) manager_persist_save_migrations(call->numa->manager, call->name);
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
                r = manager_numa_fail(call->numa->manager, call->name, error, details, &e);
        if (r < 0 && !e.name)
                e.name = VARLINK_ERROR(INTERNAL_ERROR);
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

int manager_numa_guest_backend_sizes(const VmSpec *spec, uint64_t sizes[static NUMA_GUEST_RAM_MAX_BACKENDS],
                                     size_t *ret_n) {
        size_t n = 0;
        int r;

        for (size_t i = 0; i < spec->n_guest_nodes && n < NUMA_GUEST_RAM_MAX_BACKENDS; i++) {
                _cleanup_(vm_guest_node_done) VmGuestNode g = {};

                r = vm_spec_guest_node(spec, i, &g);
                if (r < 0)
                        return r;
                sizes[n++] = g.size_bytes;
        }
        if (n == 0)
                sizes[n++] = spec->memory_bytes;
        if (spec->hotplug_bytes != 0 && n < NUMA_GUEST_RAM_MAX_BACKENDS)
                sizes[n++] = spec->hotplug_bytes;
        *ret_n = n;
        return 0;
}

/* Checks a MigratePages request of the guest called name and sets up its run for call (taken on success). */
static int migrate_prepare(Manager *m, const char *name, MigrationRequest *req, MigrateCall **call,
                           MigrationRun **ret_run, ManagerError *ret_error) {
        _cleanup_(numa_error_done) NumaError e = {};
        uint64_t backend_sizes[NUMA_GUEST_RAM_MAX_BACKENDS];
        MigrationHistory *h;
        Vm *vm;
        int r;

        /* Parameters first: they are wrong whatever the state. */
        r = migration_request_validate(req, &e);
        if (r != 0)
                return manager_numa_fail(m, name, r, &e, ret_error);
        vm = manager_find_vm(m, name);
        if (!vm)
                return manager_numa_fail_no_such_vm(ret_error, name);
        r = manager_experiment_check_busy(m, vm->name, ret_error);
        if (r < 0)
                return r;
        r = manager_guest_check_confidential(vm, VM_CONFIDENTIAL_OP_MIGRATE, ret_error);
        if (r < 0)
                return r;
        req->pid = manager_numa_vm_running(vm) ? vm->pid : 0;
        req->hugepages = (vm->running_spec ?: vm->spec)->hugepages;
        req->memory_bytes = (vm->running_spec ?: vm->spec)->memory_bytes;
        r = manager_numa_guest_backend_sizes(vm->running_spec ?: vm->spec, backend_sizes, &req->n_backends);
        if (r < 0)
                return r;
        req->backend_sizes = backend_sizes;     /* copied by migration_run_new() below */
        h = manager_guest_get_migrations(m, vm->name);
        if (!h)
                return -ENOMEM;
        (*call)->numa = m->numa;
        (*call)->name = strdup(vm->name);
        if (!(*call)->name)
                return -ENOMEM;
        r = migration_run_new(h, &m->numa->ctx, req, &migrate_callbacks, *call, ret_run, &e);
        if (r != 0)
                return manager_numa_fail(m, vm->name, r, &e, ret_error);
        *call = NULL;           /* the run's now */
        return 0;
}

int manager_numa_vl_migrate_pages(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                  void *userdata) {
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
        req.scope = json_get_string(parameters, "scope");
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

int manager_numa_migrate(Manager *m, const char *name, MigrationRequest *req, ManagerCompletion *completion,
                         ManagerError *ret_error) {
        _cleanup_(migrate_call_freep) MigrateCall *call = calloc(1, sizeof(MigrateCall));
        MigrateCall *owned = call;
        MigrationRun *run;
        int r;

        if (!call) {
                manager_completion_drop(completion);
                return -ENOMEM;
        }
        r = migrate_prepare(m, name, req, &call, &run, ret_error);
        if (r < 0) {
                manager_completion_drop(completion);
                return r;
        }
        owned->completion = *completion;
        *completion = (ManagerCompletion) {};
        migration_run_begin(run);       /* completes now on errors, later otherwise */
        return 0;
}

int manager_numa_vl_cancel_migrations(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                      void *userdata) {
        Manager *m = userdata;
        const char *name = json_get_string(parameters, "name");
        ManagerError e = {};
        Vm *vm;

        vm = manager_find_vm(m, name);
        if (!vm)
                return manager_error_varlink_reply(c, &e, manager_numa_fail_no_such_vm(&e, name));
        if (manager_experiment_check_busy(m, vm->name, &e) < 0)
                return manager_error_varlink_reply(c, &e, -EBUSY);
        migration_history_cancel(manager_guest_migrations(m, vm->name));
        return varlink_reply(c, NULL);
}

int manager_numa_vl_list_migrations(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                    void *userdata) {
        Manager *m = userdata;
        _cleanup_json_ json_object *p = json_object_new_object(), *a = NULL;
        const char *name = json_get_string(parameters, "name");
        MigrationHistory *h;
        ManagerError e = {};
        Vm *vm;
        int r;

        vm = manager_find_vm(m, name);
        if (!vm)
                return manager_error_varlink_reply(c, &e, manager_numa_fail_no_such_vm(&e, name));
        if (!p)
                return -ENOMEM;
        h = manager_guest_migrations(m, vm->name);
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
        ManagerGuest *g;
        char every[64];
        int r;

        if (!call) {
                (void) log_oom();
                return;
        }
        r = migrate_prepare(m, vm->name, &req, &call, &run, &e);
        if (r < 0) {
                if (manager_guest_get(m, vm->name, &g) < 0)
                        g = NULL;
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

        manager_guest_find(m, vm->name)->schedule_refused = NULL;
        log_info("Guest %s: ping-pong migration between nodes %s started ([Memory] MigrateBetween=): %u move(s), "
                 "one every %s.", vm->name, spec->migrate_between, spec->migrate_count,
                 format_timespan(every, sizeof(every), spec->migrate_every_usec));
        migration_run_begin(run);       /* no caller: errors end it here, moves are recorded */
}

/* Ends a migration like CancelMigrations: no further move; one in progress finishes and is recorded. */
static void schedule_stop(Manager *m, Vm *vm) {
        MigrationHistory *h = manager_guest_migrations(m, vm->name);
        MigrationRunStatus st;

        if (!migration_history_busy(h, &st) || st.cancelled)
                return;
        log_info("Guest %s is %s: %s ends after %u move(s).", vm->name, vm_state_to_string(vm->state),
                 st.pingpong ? "ping-pong migration" : "page migration", st.done);
        migration_history_cancel(h);
}

void manager_numa_on_vm_state(Vm *vm, VmState old_state, void *userdata) {
        Manager *m = userdata;
        const VmSpec *spec = vm->running_spec ?: vm->spec;

        if (!m->numa || vm->state == old_state)
                return;
        if (old_state == VM_STATE_RUNNING)
                schedule_stop(m, vm);
        else if (vm->state == VM_STATE_RUNNING && spec && spec->migrate_between)
                schedule_start(m, vm, spec);
}

/* ---- the migration context --------------------------------------------------------------------- */

/* MigrationContext.lookup: where the guest runs now. */
static int numa_lookup(const char *name, void *userdata, MigrationGuest *ret) {
        ManagerNuma *n = userdata;
        Vm *vm = manager_find_vm(n->manager, name);
        pid_t *t;

        if (!vm || !manager_numa_vm_running(vm))
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

void manager_numa_migration_context(ManagerNuma *n) {
        n->ctx = (MigrationContext) {
                .event = n->manager->event,
                .proc_root = n->manager->vmctx.proc_root,
                .sysfs_root = n->sysfs_root,
                .lookup = numa_lookup,
                .query_stats = numa_query_stats,
                .userdata = n,
        };
}
