/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NUMA on io.memvisor.Manager: the host topology, vCPU pinning (at start through VmContext.prerun, and at
 * runtime) and placement of a guest; page migration is in manager-numa-migrate.c. The work is src/numa's
 * (numa-pin.h, numa-migration.h): these files turn varlink calls, D-Bus calls (manager.h) and the .vm
 * ping-pong into its typed requests, and its results and NumaErrors into replies. Each guest's
 * MigrationHistory is kept in its record (manager-guest.h). */
#include <stdio.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-numa.h"
#include "numa/numa-pin.h"
#include "numa/numa-guest-placement.h"
#include "numa/numa-topology.h"
#include "basic/parse.h"


/* ---- errors ----------------------------------------------------------------------------------- */

int manager_numa_fail_no_such_vm(ManagerError *ret, const char *name) {
        return manager_guest_fail(ret, -ENOENT, VARLINK_ERROR(NO_SUCH_VM), name, NULL);
}

static int fail_invalid_state(ManagerError *ret, const char *name, Vm *vm) {
        return manager_guest_fail(ret, -ESRCH, VARLINK_ERROR(INVALID_STATE), name,
                                  vm ? vm_state_to_string(vm->state) : "undefined");
}

/* The API error of each NumaErrorCode (NUMA_ERROR_INVALID_PARAMETER is varlink's own InvalidParameter and
 * NUMA_ERROR_NOT_RUNNING is answered as InvalidState with the guest's state, below). */
static const ManagerErrorCode numa_errors[_NUMA_ERROR_MAX] = {
        [NUMA_ERROR_INVALID_PARAMETER] = _MANAGER_ERROR_INVALID,
        [NUMA_ERROR_NOT_RUNNING] = MANAGER_ERROR_INVALID_STATE,
        [NUMA_ERROR_SINGLE_NODE] = MANAGER_ERROR_SINGLE_NUMA_NODE,
        [NUMA_ERROR_NO_SUCH_NODE] = MANAGER_ERROR_NO_SUCH_NODE,
        [NUMA_ERROR_IDENTICAL_NODES] = MANAGER_ERROR_IDENTICAL_NODES,
        [NUMA_ERROR_MEMORY_CANNOT_MOVE] = MANAGER_ERROR_MEMORY_CANNOT_MOVE,
        [NUMA_ERROR_MISSING_CAPABILITY] = MANAGER_ERROR_MISSING_CAPABILITY,
        [NUMA_ERROR_BUSY] = MANAGER_ERROR_BUSY,
        [NUMA_ERROR_NO_SUCH_VCPU] = MANAGER_ERROR_NO_SUCH_VCPU,
        [NUMA_ERROR_NO_SUCH_CPU] = MANAGER_ERROR_NO_SUCH_CPU,
        [NUMA_ERROR_PINNING_FAILED] = MANAGER_ERROR_PINNING_FAILED,
        [NUMA_ERROR_MIGRATION_FAILED] = MANAGER_ERROR_MIGRATION_FAILED,
};

int manager_numa_fail(Manager *m, const char *name, int code, const NumaError *e, ManagerError *ret) {
        json_object *p = NULL;
        int r;

        if (code <= 0 || code >= _NUMA_ERROR_MAX || !e)
                return code < 0 ? code : -EIO;
        if (code == NUMA_ERROR_NOT_RUNNING)
                return fail_invalid_state(ret, name, manager_find_vm(m, name));
        r = numa_error_parameters_json(e, name, &p);
        if (r < 0)
                return r;
        return manager_error_set(ret, e->cause < 0 ? e->cause : -EINVAL,
                                 code == NUMA_ERROR_INVALID_PARAMETER ? MANAGER_ERROR_INVALID_PARAMETER :
                                 manager_error_varlink(numa_errors[code]), p);
}

bool manager_numa_vm_running(Vm *vm) {
        return vm->state == VM_STATE_RUNNING && vm->pid > 0;
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

/* The start-up hook: applies [CPU] VCPUAffinity= and EmulatorAffinity= while the guest is paused. */
static int numa_prerun(Vm *vm, void *userdata) {
        Manager *m = userdata;
        const VmSpec *spec = vm->running_spec ?: vm->spec;
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        _cleanup_(numa_pin_result_done) NumaPinResult res = {};
        _cleanup_(numa_error_done) NumaError e = {};
        _cleanup_free_ NumaVcpuThread *vcpus = manager_guest_vcpu_threads(vm);
        _cleanup_free_ char *map = NULL, *why = NULL;
        int r;

        r = numa_topology_read(m->numa->sysfs_root, &t);
        if (r < 0)
                return log_error_errno(r, "Failed to read the NUMA topology for pinning guest %s: %m", vm->name);
        if (!vcpus)
                return log_oom();
        /* VCPUAffinity=node becomes a map from the guest nodes' host nodes on this host. */
        r = vm_spec_vcpu_affinity_map(spec, t, &map, &why);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "Guest %s: cannot pin its vCPUs: %s", vm->name, why ?: strerror(-r));
        if (map && !streq(map, strempty(spec->vcpu_affinity)))
                log_info("Guest %s: VCPUAffinity=%s is %s on this host.", vm->name, spec->vcpu_affinity, map);
        r = numa_pin(&(NumaPinRequest) { .proc_root = vm->ctx->proc_root, .pid = vm->pid, .vcpus = vcpus,
                                         .n_vcpus = vm->n_vcpus, .map = map,
                                         .emulator = spec->emulator_affinity },
                     t, &res, &e);
        if (r > 0)
                return numa_pin_log_error(vm->name, map, spec->emulator_affinity, &e);
        if (r < 0)
                return log_error_errno(r, "Guest %s: failed to pin its threads: %m", vm->name);
        numa_pin_log(vm->name, &res, spec->emulator_affinity);
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
                return manager_numa_fail(m, name, r, &e, ret_error);
        vm = manager_find_vm(m, name);
        if (!vm)
                return manager_numa_fail_no_such_vm(ret_error, name);
        r = manager_experiment_check_busy(m, vm->name, ret_error);
        if (r < 0)
                return r;
        if (!manager_numa_vm_running(vm) || vm->n_vcpus == 0)
                return fail_invalid_state(ret_error, vm->name, vm);
        r = numa_topology_read(m->numa->sysfs_root, &t);
        if (r < 0)
                return r;
        vcpus = manager_guest_vcpu_threads(vm);
        if (!vcpus)
                return -ENOMEM;
        req.proc_root = vm->ctx->proc_root;
        req.pid = vm->pid;
        req.vcpus = vcpus;
        req.n_vcpus = vm->n_vcpus;
        r = numa_pin(&req, t, &res, &e);
        if (r != 0)
                return manager_numa_fail(m, vm->name, r, &e, ret_error);
        numa_pin_log(vm->name, &(NumaPinResult) { .vcpus = res.vcpus, .n_vcpus = res.n_vcpus, .n_emulator_threads = -1 },
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

struct PlacementRequest {
        ManagerNuma *numa;
        VarlinkConnection *conn;
        NumaPlacementRead *read;
};

static PlacementRequest *placement_request_free(PlacementRequest *q) {
        if (!q)
                return NULL;
        numa_placement_read_free(q->read);
        varlink_connection_unref(q->conn);
        return mfree(q);
}

/* GetPlacement's reply {"placement": placement} (taken); NULL on OOM. */
static json_object *placement_reply(json_object *placement) {
        json_object *p = json_object_new_object();

        if (!p || json_add(p, "placement", placement) < 0) {
                json_object_put(p ?: placement);
                return NULL;
        }
        return p;
}

static void placement_done(int r, json_object *placement, void *userdata) {
        PlacementRequest *q = userdata;
        ManagerNuma *n = q->numa;
        json_object *p = r < 0 ? NULL : placement_reply(placement);

        if (p)
                (void) varlink_reply(q->conn, p);
        else
                (void) varlink_error(q->conn, VARLINK_ERROR(INTERNAL_ERROR), NULL);
        for (size_t i = 0; i < n->n_requests; i++)
                if (n->requests[i] == q) {
                        memmove(n->requests + i, n->requests + i + 1, (n->n_requests - i - 1) * sizeof(void *));
                        n->n_requests--;
                        break;
                }
        placement_request_free(q);
}

static int vl_get_placement(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        ManagerNuma *n = m->numa;
        _cleanup_free_ NumaVcpuThread *vcpus = NULL;
        const char *name = json_get_string(parameters, "name");
        json_object *placement = NULL;
        PlacementRequest *q, **tq;
        ManagerError e = {};
        const VmSpec *spec;
        Vm *vm;
        int r;

        vm = manager_find_vm(m, name);
        if (!vm)
                return manager_error_varlink_reply(c, &e, manager_numa_fail_no_such_vm(&e, name));
        spec = vm->running_spec ?: vm->spec;
        vcpus = manager_guest_vcpu_threads(vm);
        q = calloc(1, sizeof(PlacementRequest));
        tq = reallocarray(n->requests, n->n_requests + 1, sizeof(void *));
        if (tq)
                n->requests = tq;
        if (!vcpus || !q || !tq) {
                free(q);
                return -ENOMEM;
        }
        r = numa_placement_read(m->event,
                                &(NumaPlacementRequest) {
                                        .sysfs_root = n->sysfs_root,
                                        .proc_root = vm->ctx->proc_root,
                                        .pid = manager_numa_vm_running(vm) ? vm->pid : 0,
                                        .vcpus = vcpus,
                                        .n_vcpus = vm->n_vcpus,
                                        .name = vm->name,
                                        .state = vm_state_to_string(vm->state),
                                        .memory_policy = vm_memory_policy_to_string(spec->policy),
                                        .host_nodes = spec->host_nodes,
                                        .vcpu_affinity = spec->vcpu_affinity,
                                        .emulator_affinity = spec->emulator_affinity,
                                        .migrating = migration_history_busy(manager_guest_migrations(m, vm->name), NULL),
                                },
                                placement_done, q, &placement, &q->read);
        if (r < 0 || placement) {
                free(q);
                if (r < 0)
                        return r;
                placement = placement_reply(placement);
                return placement ? varlink_reply(c, placement) : -ENOMEM;
        }
        q->numa = n;
        q->conn = varlink_connection_ref(c);
        n->requests[n->n_requests++] = q;
        return 0;
}

/* ---- module ----------------------------------------------------------------------------------- */

int manager_numa_start(Manager *m) {
        ManagerNuma *n;
        int r;

        n = calloc(1, sizeof(ManagerNuma));
        if (!n)
                return log_oom();
        n->manager = m;
        n->sysfs_root = "/";
        manager_numa_migration_context(n);
        m->numa = n;
        m->vmctx.prerun = numa_prerun;
        m->vmctx.prerun_userdata = m;
        r = vm_context_add_state_watch(&m->vmctx, manager_numa_on_vm_state, m);
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
        { "MigratePages", manager_numa_vl_migrate_pages,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "from", VARLINK_STRING, VARLINK_NULLABLE },
                  { "to", VARLINK_STRING, VARLINK_NULLABLE },
                  { "between", VARLINK_STRING, VARLINK_NULLABLE },
                  { "count", VARLINK_INT, VARLINK_NULLABLE },
                  { "everyUSec", VARLINK_INT, VARLINK_NULLABLE },
                  { "settleUSec", VARLINK_INT, VARLINK_NULLABLE },
                  { "scope", VARLINK_STRING, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "CancelMigrations", manager_numa_vl_cancel_migrations, name_only, VARLINK_METHOD_PRIVILEGED },
        { "ListMigrations", manager_numa_vl_list_migrations, name_only, 0 },
        { NULL },
};

const VarlinkMethod *manager_numa_methods(void) {
        return numa_methods;
}

const MigrationContext *manager_numa_context(Manager *m) {
        return m->numa ? &m->numa->ctx : NULL;
}
