/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SetHotplugMemory: the size of a guest's virtio-mem device ([Memory] HotplugSize=, memvisor.vm(5)), for varlink
 * here and D-Bus in manager-dbus.c (both through ManagerCompletion). It sets the device's QOM requested-size
 * (qom-set on /machine/peripheral/vmem0dev) and reads back its plugged size from query-memory-devices; with
 * wait it reads that again every HOTPLUG_POLL_USEC and on each MEMORY_DEVICE_SIZE_CHANGE event until the size
 * is the requested one or timeoutUSec passed, with a progress notification for each new size. The guest plugs
 * and unplugs the blocks itself (its virtio_mem driver): a guest without one never follows. QEMU's replies are
 * untrusted: a size that is not a number within the device's limits fails the call. One call per guest. */
#include <inttypes.h>
#include <stdio.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-guest.h"
#include "vm/qemu-argv.h"

#define HOTPLUG_POLL_USEC (200 * USEC_PER_MSEC)
#define HOTPLUG_QMP_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define HOTPLUG_WAIT_DEFAULT_USEC (60 * USEC_PER_SEC)
#define HOTPLUG_WAIT_MAX_USEC (3600 * USEC_PER_SEC)

struct ManagerHotplugCall {
        Manager *manager;
        char *name;
        uint64_t requested, maximum, block;
        bool wait;
        uint64_t start_usec, deadline_usec;     /* CLOCK_MONOTONIC */
        uint64_t last_size;                     /* UINT64_MAX: none read yet */
        bool qmp_pending;                       /* a command is out: its callback frees a finished call */
        bool finished;
        sd_event_source *timer;
        ManagerCompletion completion;
        ManagerHotplugProgress progress;        /* optional; called with completion.userdata */
        VarlinkConnection *peer;                /* a varlink caller whose hang-up ends the wait; NULL: none */
        bool in_progress, abandoned;            /* peer hung up while progress() ran: abandon after it */
};

static void call_peer_closed(VarlinkConnection *c, void *userdata);

static void call_unwatch_peer(ManagerHotplugCall *call) {
        varlink_connection_clear_close_callback(call->peer, call_peer_closed, call);
        call->peer = varlink_connection_unref(call->peer);
}

static void call_free(ManagerHotplugCall *call) {
        if (!call)
                return;
        sd_event_source_disable_unref(call->timer);
        call_unwatch_peer(call);
        manager_completion_drop(&call->completion);
        free(call->name);
        free(call);
}

static uint64_t now_usec(Manager *m) {
        uint64_t t = 0;

        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &t);
        return t;
}

static int result_json(const ManagerHotplugCall *call, json_object **ret) {
        _cleanup_json_ json_object *p = json_object_new_object(), *h = json_object_new_object();

        if (!p || !h || json_add_string(h, "name", call->name) < 0 ||
            json_add_uint(h, "requestedBytes", call->requested) < 0 ||
            (call->last_size != UINT64_MAX && json_add_uint(h, "sizeBytes", call->last_size) < 0) ||
            json_add_uint(h, "maximumBytes", call->maximum) < 0 ||
            json_add_uint(h, "elapsedUSec", now_usec(call->manager) - call->start_usec) < 0 ||
            json_add(p, "hotplug", TAKE_PTR(h)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(p);
        return 0;
}

/* Ends the call with error (a varlink error name, NULL: success) and parameters (consumed); frees it unless a
 * QMP command is still out. */
static void call_finish(ManagerHotplugCall *call, const char *error, json_object *parameters) {
        ManagerGuest *g = manager_guest_find(call->manager, call->name);

        if (g && g->hotplug == call)
                g->hotplug = NULL;
        /* The reply may close the connection (over its output limit): not a hang-up to handle any more. */
        call_unwatch_peer(call);
        call->finished = true;
        call->timer = sd_event_source_disable_unref(call->timer);
        manager_completion_finish(&call->completion, error, parameters);
        if (!call->qmp_pending)
                call_free(call);
}

static void call_fail(ManagerHotplugCall *call, const char *error, const char *reason, const char *qmp_class) {
        json_object *p = json_object_new_object();

        log_info("Guest %s: SetHotplugMemory %" PRIu64 " failed: %s", call->name, call->requested, reason);
        if (!p || json_add_string(p, "name", call->name) < 0 || json_add_string(p, "reason", reason) < 0 ||
            json_add_uint(p, "requestedBytes", call->requested) < 0 ||
            (call->last_size != UINT64_MAX && json_add_uint(p, "sizeBytes", call->last_size) < 0) ||
            (qmp_class && json_add_string(p, "qmpErrorClass", qmp_class) < 0)) {
                json_object_put(p);
                call_finish(call, VARLINK_ERROR(INTERNAL_ERROR), NULL);
                return;
        }
        call_finish(call, error, p);
}

static void call_succeed(ManagerHotplugCall *call) {
        json_object *p = NULL;

        if (result_json(call, &p) < 0) {
                call_finish(call, VARLINK_ERROR(INTERNAL_ERROR), NULL);
                return;
        }
        log_info("Guest %s: virtio-mem size %" PRIu64 " (requested %" PRIu64 ").", call->name, call->last_size,
                 call->requested);
        call_finish(call, NULL, p);
}

static int query_size(ManagerHotplugCall *call);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ManagerHotplugCall *call = userdata;

        call->timer = sd_event_source_disable_unref(call->timer);
        if (!call->qmp_pending && query_size(call) < 0)
                call_fail(call, VARLINK_ERROR(HOTPLUG_FAILED), "cannot send query-memory-devices", NULL);
        return 0;
}

/* The device's plugged size from a query-memory-devices reply: -EBADMSG when QEMU's answer does not have our
 * device with a size within its limits. */
static int size_from_reply(const ManagerHotplugCall *call, json_object *result, uint64_t *ret) {
        size_t n;

        if (!result || !json_object_is_type(result, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(result);
        for (size_t i = 0; i < n && i < 256; i++) {
                json_object *d = json_object_array_get_idx(result, i), *data, *v;

                if (!streq_ptr(json_get_string(d, "type"), "virtio-mem") ||
                    !json_object_object_get_ex(d, "data", &data) ||
                    !streq_ptr(json_get_string(data, "id"), QEMU_VMEM_DEVICE_ID))
                        continue;
                if (!json_object_object_get_ex(data, "size", &v) || !json_object_is_type(v, json_type_int))
                        return -EBADMSG;
                if (json_object_get_int64(v) < 0 || (uint64_t) json_object_get_int64(v) > call->maximum)
                        return -EBADMSG;
                *ret = (uint64_t) json_object_get_int64(v);
                return 0;
        }
        return -EBADMSG;
}

static void on_query(QmpClient *q, int error, json_object *result, const char *error_class, const char *error_desc,
                     void *userdata) {
        ManagerHotplugCall *call = userdata;
        uint64_t size = 0;
        int r;

        call->qmp_pending = false;
        if (call->finished) {
                call_free(call);
                return;
        }
        if (error < 0) {
                _cleanup_free_ char *reason = NULL;

                if (asprintf(&reason, "query-memory-devices failed: %s",
                             error == -EIO ? strna(error_desc) : strerror(-error)) < 0)
                        reason = NULL;
                call_fail(call, VARLINK_ERROR(HOTPLUG_FAILED), reason ?: "query-memory-devices failed",
                          error == -EIO ? error_class : NULL);
                return;
        }
        r = size_from_reply(call, result, &size);
        if (r < 0) {
                call_fail(call, VARLINK_ERROR(HOTPLUG_FAILED),
                          "QEMU's query-memory-devices reply has no usable size of the virtio-mem device", NULL);
                return;
        }
        if (size != call->last_size && size != call->requested && call->progress && call->wait) {
                call->last_size = size;
                call->in_progress = true;
                call->progress(call->requested, size, now_usec(call->manager) - call->start_usec,
                               call->completion.userdata);
                call->in_progress = false;
                if (call->abandoned) {  /* the notification found the caller gone */
                        call_peer_closed(NULL, call);
                        return;
                }
        }
        call->last_size = size;
        if (!call->wait || size == call->requested) {
                call_succeed(call);
                return;
        }
        if (now_usec(call->manager) >= call->deadline_usec) {
                call_fail(call, VARLINK_ERROR(HOTPLUG_TIMEOUT),
                          "the guest did not plug or unplug the blocks in time (does it have the virtio_mem driver, "
                          "with hotplugged memory onlined?)", NULL);
                return;
        }
        if (!call->timer &&
            sd_event_add_time_relative(call->manager->event, &call->timer, CLOCK_MONOTONIC, HOTPLUG_POLL_USEC, 0,
                                       on_timer, call) < 0)
                call_fail(call, VARLINK_ERROR(HOTPLUG_FAILED), "cannot arm the wait timer", NULL);
}

static int query_size(ManagerHotplugCall *call) {
        Vm *vm = manager_find_vm(call->manager, call->name);
        int r;

        if (!vm || !vm->qmp)
                return -ESRCH;
        r = qmp_client_execute(vm->qmp, "query-memory-devices", NULL, HOTPLUG_QMP_TIMEOUT_USEC, on_query, call);
        if (r >= 0)
                call->qmp_pending = true;
        return r;
}

static void on_qom_set(QmpClient *q, int error, json_object *result, const char *error_class, const char *error_desc,
                       void *userdata) {
        ManagerHotplugCall *call = userdata;
        _cleanup_free_ char *reason = NULL;

        call->qmp_pending = false;
        if (call->finished) {
                call_free(call);
                return;
        }
        if (error < 0) {
                if (asprintf(&reason, "qom-set requested-size failed: %s",
                             error == -EIO ? strna(error_desc) : strerror(-error)) < 0)
                        reason = NULL;
                call_fail(call, VARLINK_ERROR(HOTPLUG_FAILED), reason ?: "qom-set failed",
                          error == -EIO ? error_class : NULL);
                return;
        }
        if (query_size(call) < 0)
                call_fail(call, VARLINK_ERROR(HOTPLUG_FAILED), "cannot send query-memory-devices", NULL);
}

static int fail_simple(ManagerError *e, const char *error, int r, const char *name, const char *parameter,
                       const char *reason) {
        _cleanup_json_ json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "name", name) < 0 || (parameter && json_add_string(p, "parameter", parameter) < 0) ||
            json_add_string(p, "reason", reason) < 0)
                return -ENOMEM;
        return manager_error_set(e, r, error, TAKE_PTR(p));
}

int manager_hotplug_set(Manager *m, const char *name, uint64_t size, bool wait, uint64_t timeout_usec,
                        const char *caller, ManagerHotplugProgress progress, ManagerCompletion *completion,
                        ManagerError *ret_error) {
        _cleanup_json_ json_object *args = NULL;
        _cleanup_free_ char *reason = NULL;
        ManagerHotplugCall *call = NULL;
        const VmSpec *spec;
        ManagerGuest *g;
        uint64_t block;
        Vm *vm;
        int r;

        vm = manager_find_vm(m, name);
        if (!vm) {
                manager_completion_drop(completion);
                return manager_guest_fail(ret_error, -ENOENT, VARLINK_ERROR(NO_SUCH_VM), name, NULL);
        }
        /* Before the state: a confidential guest never can, running or not. */
        r = manager_guest_check_confidential(vm, VM_CONFIDENTIAL_OP_HOTPLUG, ret_error);
        if (r < 0) {
                manager_completion_drop(completion);
                return r;
        }
        if (!vm_is_active(vm) || vm->state != VM_STATE_RUNNING || !vm->qmp) {
                manager_completion_drop(completion);
                return manager_guest_fail(ret_error, -ESRCH, VARLINK_ERROR(INVALID_STATE), vm->name,
                                          vm_state_to_string(vm->state));
        }
        if (manager_experiment_check_busy(m, vm->name, ret_error) < 0) {
                manager_completion_drop(completion);
                return -EBUSY;
        }
        spec = vm->running_spec ?: vm->spec;
        if (!spec || spec->hotplug_bytes == 0) {
                manager_completion_drop(completion);
                return fail_simple(ret_error, VARLINK_ERROR(NO_HOTPLUG_DEVICE), -ENODEV, vm->name, NULL,
                                   "the guest was started without a virtio-mem device ([Memory] HotplugSize=)");
        }
        block = vm_spec_hotplug_block_size(spec);
        if (size > spec->hotplug_bytes || size % block != 0) {
                _cleanup_json_ json_object *p = json_object_new_object();

                manager_completion_drop(completion);
                if (asprintf(&reason, "sizeBytes must be a multiple of %" PRIu64 " (the device's block size) from 0 "
                             "to %" PRIu64 " (HotplugSize=)", block, spec->hotplug_bytes) < 0)
                        return -ENOMEM;
                if (!p || json_add_string(p, "name", vm->name) < 0 || json_add_string(p, "parameter", "sizeBytes") < 0 ||
                    json_add_uint(p, "sizeBytes", size) < 0 || json_add_uint(p, "maximumBytes", spec->hotplug_bytes) < 0 ||
                    json_add_uint(p, "blockBytes", block) < 0 || json_add_string(p, "reason", reason) < 0)
                        return -ENOMEM;
                return manager_error_set(ret_error, -ERANGE, VARLINK_ERROR(HOTPLUG_SIZE_OUT_OF_RANGE), TAKE_PTR(p));
        }
        if (timeout_usec > HOTPLUG_WAIT_MAX_USEC) {
                manager_completion_drop(completion);
                return manager_error_invalid_parameter(ret_error, "timeoutUSec");
        }
        r = manager_guest_get(m, vm->name, &g);
        if (r < 0) {
                manager_completion_drop(completion);
                return r;
        }
        if (g->hotplug) {
                _cleanup_json_ json_object *p = json_object_new_object();

                manager_completion_drop(completion);
                if (!p || json_add_string(p, "name", vm->name) < 0 || json_add_string(p, "operation", "hotplug") < 0)
                        return -ENOMEM;
                return manager_error_set(ret_error, -EBUSY, VARLINK_ERROR(BUSY), TAKE_PTR(p));
        }

        args = json_object_new_object();
        if (!args || json_add_string(args, "path", "/machine/peripheral/" QEMU_VMEM_DEVICE_ID) < 0 ||
            json_add_string(args, "property", "requested-size") < 0 || json_add_uint(args, "value", size) < 0) {
                manager_completion_drop(completion);
                return -ENOMEM;
        }
        call = calloc(1, sizeof(*call));
        if (!call || !(call->name = strdup(vm->name))) {
                free(call);
                manager_completion_drop(completion);
                return -ENOMEM;
        }
        call->manager = m;
        call->requested = size;
        call->maximum = spec->hotplug_bytes;
        call->block = block;
        call->wait = wait;
        call->start_usec = now_usec(m);
        call->deadline_usec = call->start_usec + (timeout_usec ?: HOTPLUG_WAIT_DEFAULT_USEC);
        call->last_size = UINT64_MAX;
        call->progress = progress;
        call->completion = *completion;
        *completion = (ManagerCompletion) {};

        log_info("Guest %s: virtio-mem requested-size %" PRIu64 " for %s.", vm->name, size, caller);
        r = qmp_client_execute(vm->qmp, "qom-set", TAKE_PTR(args), HOTPLUG_QMP_TIMEOUT_USEC, on_qom_set, call);
        if (r < 0) {
                /* Nothing was sent: no callback comes. */
                call_free(call);
                return r;
        }
        call->qmp_pending = true;
        g->hotplug = call;
        return 0;
}

/* The varlink caller of a waiting call hung up (memvisorctl hotplug --wait interrupted): nobody waits any more, so
 * the wait ends at once rather than at its timeout, and the guest's next SetHotplugMemory is not Busy. The
 * requested-size stays set: the guest goes on plugging or unplugging towards it. */
static void call_peer_closed(VarlinkConnection *c, void *userdata) {
        ManagerHotplugCall *call = userdata;

        if (call->finished)
                return;
        if (call->in_progress) {
                call->abandoned = true;
                return;
        }
        log_info("Guest %s: the caller waiting for virtio-mem size %" PRIu64 " went away; the wait ends (the "
                 "requested size stays).", call->name, call->requested);
        manager_completion_drop(&call->completion);
        call_finish(call, NULL, NULL);
}

/* A guest leaving the running state ends its call; a MEMORY_DEVICE_SIZE_CHANGE of it reads the size at once. */
static void hotplug_on_state(Vm *vm, VmState old_state, void *userdata) {
        ManagerGuest *g = manager_guest_find(userdata, vm->name);

        if (!g || !g->hotplug || vm->state == VM_STATE_RUNNING)
                return;
        call_fail(g->hotplug, VARLINK_ERROR(HOTPLUG_FAILED), "the guest left the running state during the wait", NULL);
}

static void hotplug_on_event(Vm *vm, const QmpEvent *event, void *userdata) {
        ManagerGuest *g = manager_guest_find(userdata, vm->name);
        ManagerHotplugCall *call;

        if (!g || !g->hotplug || !streq_ptr(event->name, "MEMORY_DEVICE_SIZE_CHANGE"))
                return;
        call = g->hotplug;
        if (call->qmp_pending || !call->timer)
                return;         /* a query is out, or the call is between qom-set and its first reading */
        call->timer = sd_event_source_disable_unref(call->timer);
        if (query_size(call) < 0)
                call_fail(call, VARLINK_ERROR(HOTPLUG_FAILED), "cannot send query-memory-devices", NULL);
}

int manager_hotplug_start(Manager *m) {
        int r;

        r = vm_context_add_state_watch(&m->vmctx, hotplug_on_state, m);
        if (r >= 0)
                r = vm_context_add_event_watch(&m->vmctx, hotplug_on_event, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch guests for virtio-mem calls: %m");
        return 0;
}

void manager_hotplug_done(Manager *m) {
        for (size_t i = 0; i < m->n_records; i++) {
                ManagerHotplugCall *call = m->records[i]->hotplug;

                if (!call)
                        continue;
                /* Shutting down: nobody is answered. */
                manager_completion_drop(&call->completion);
                call_finish(call, NULL, NULL);
        }
}

/* ---- varlink ---------------------------------------------------------------------------------- */

static void vl_progress(uint64_t requested, uint64_t size, uint64_t elapsed_usec, void *userdata) {
        json_object *p = json_object_new_object(), *h = json_object_new_object();

        if (!p || !h || json_add_uint(h, "requestedBytes", requested) < 0 || json_add_uint(h, "sizeBytes", size) < 0 ||
            json_add_uint(h, "elapsedUSec", elapsed_usec) < 0 || json_add(p, "hotplug", h) < 0) {
                json_object_put(p);
                json_object_put(h);
                return;
        }
        (void) varlink_notify(userdata, p);
}

static int vl_set_hotplug_memory(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                 void *userdata) {
        int64_t size = json_get_int(parameters, "sizeBytes", -1), timeout = json_get_int(parameters, "timeoutUSec", 0);
        bool wait = json_get_bool(parameters, "wait", false) || (flags & VARLINK_CALL_MORE);
        _cleanup_free_ char *caller = NULL;
        ManagerCompletion completion;
        ManagerGuest *g;
        ManagerError e = {};
        int r;

        if (size < 0)
                return varlink_error_invalid_parameter(c, "sizeBytes");
        if (timeout < 0)
                return varlink_error_invalid_parameter(c, "timeoutUSec");
        if (asprintf(&caller, "varlink uid %u", (unsigned) varlink_connection_get_peer_uid(c)) < 0)
                return -ENOMEM;
        completion = manager_varlink_completion(c);
        r = manager_hotplug_set(userdata, json_get_string(parameters, "name"), (uint64_t) size, wait,
                                (uint64_t) timeout, caller, (flags & VARLINK_CALL_MORE) ? vl_progress : NULL,
                                &completion, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        g = manager_guest_find(userdata, json_get_string(parameters, "name"));
        if (wait && g && g->hotplug && !g->hotplug->finished) {
                g->hotplug->peer = varlink_connection_ref(c);
                varlink_connection_set_close_callback(c, call_peer_closed, g->hotplug);
        }
        return 0;
}

static const VarlinkMethod hotplug_methods[] = {
        { "SetHotplugMemory", vl_set_hotplug_memory,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "sizeBytes", VARLINK_INT, 0 },
                  { "wait", VARLINK_BOOL, VARLINK_NULLABLE },
                  { "timeoutUSec", VARLINK_INT, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { NULL },
};

const VarlinkMethod *manager_hotplug_methods(void) {
        return hotplug_methods;
}
