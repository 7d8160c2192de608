/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A guest's QMP connection: the handshake, the start-up queries (status, vCPU threads, then cont for a guest
 * started paused) and QEMU's events, which go on to the context's event watches. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>

#include "basic/json-util.h"
#include "vm/vm-internal.h"

static void vm_on_qmp_event(QmpClient *q, const QmpEvent *event, void *userdata);

/* The Vm lets go of its QMP connection (QEMU ended, a new connection replaces it, the Vm is freed). Others
 * (metrics, KVM statistics) may hold references that keep the client alive, so first nothing of it may reach
 * this Vm any more; then the connection is closed, so that every command still open — the Vm's own and
 * everybody else's — fails with -ECONNRESET now, while the Vm is whole and vm->qmp already NULL. */
void vm_release_qmp(Vm *vm) {
        _cleanup_(qmp_client_unrefp) QmpClient *q = TAKE_PTR(vm->qmp);

        if (!q)
                return;
        qmp_client_remove_event_observer(q, vm_on_qmp_event, vm);
        qmp_client_set_state_callback(q, NULL, NULL);
        qmp_client_disconnect(q, 0);
}

static void vm_start_done(Vm *vm) {
        if (vm->state != VM_STATE_STARTING || vm->start_done)
                return;
        vm->start_done = true;
        vm_disarm_timer(vm);
        vm_commit_charge_after(vm);
        log_vm_id(vm, LOG_INFO, 0, MESSAGE_ID_VM_STARTED, "Guest %s started (pid %i, %s, %u vCPUs).", vm->name,
                  (int) vm->pid, vm_accel_to_string(vm->accel), (unsigned) vm->n_vcpus);
        vm_set_state(vm, VM_STATE_RUNNING, NULL);
}

static void on_cont(QmpClient *q, int error, json_object *result, const char *cls, const char *desc, void *userdata) {
        Vm *vm = userdata;

        if (error == -ECONNRESET)
                return; /* QMP went away: the exit (or the start timeout) is handled elsewhere */
        if (error < 0) {
                log_vm(vm, LOG_ERR, error, "Failed to resume guest %s: %s", vm->name,
                       error == -EIO ? desc : strerror(-error));
                return; /* the start timeout will deal with it */
        }
        vm_start_done(vm);
}

static void on_query_cpus(QmpClient *q, int error, json_object *result, const char *cls, const char *desc,
                          void *userdata) {
        Vm *vm = userdata;
        size_t n;
        VmVcpu *v;

        if (error == -ECONNRESET)
                return; /* no start-up steps on a connection that is gone */
        if (error < 0) {
                log_vm(vm, LOG_WARNING, error, "query-cpus-fast failed for guest %s: %s", vm->name,
                       error == -EIO ? desc : strerror(-error));
        } else if (json_object_is_type(result, json_type_array)) {
                n = json_object_array_length(result);
                v = calloc(MAX(n, (size_t) 1), sizeof(VmVcpu));
                if (v) {
                        for (size_t i = 0; i < n; i++) {
                                json_object *cpu = json_object_array_get_idx(result, i);
                                v[i].index = (unsigned) json_get_int(cpu, "cpu-index", (int64_t) i);
                                v[i].thread_id = (pid_t) json_get_int(cpu, "thread-id", 0);
                        }
                        free(vm->vcpus);
                        vm->vcpus = v;
                        vm->n_vcpus = n;
                }
        }

        if (vm->state != VM_STATE_STARTING)
                return;
        if (vm->start_paused && vm->ctx->prerun) {
                int r = vm->ctx->prerun(vm, vm->ctx->prerun_userdata);
                if (r < 0) {
                        log_vm(vm, LOG_ERR, r, "Start-up step before the vCPUs run failed for guest %s, killing it: %m",
                               vm->name);
                        vm_signal(vm, SIGKILL);
                        return;
                }
        }
        if (vm->start_paused) {
                int r = qmp_client_execute(q, "cont", NULL, QMP_COMMAND_TIMEOUT_USEC, on_cont, vm);
                if (r < 0)
                        log_vm(vm, LOG_ERR, r, "Failed to queue cont for guest %s: %m", vm->name);
        } else
                vm_start_done(vm);
}

static void on_query_status(QmpClient *q, int error, json_object *result, const char *cls, const char *desc,
                            void *userdata) {
        Vm *vm = userdata;

        if (error == 0)
                (void) free_and_strdup(&vm->qemu_status, json_get_string(result, "status"));
}

static void vm_on_qmp_event(QmpClient *q, const QmpEvent *event, void *userdata) {
        Vm *vm = userdata;

        switch (event->type) {
        case QMP_EVENT_SHUTDOWN:
                (void) free_and_strdup(&vm->shutdown_reason, event->shutdown.reason);
                log_vm(vm, LOG_INFO, 0, "Guest %s is shutting down (%s).", vm->name, strna(vm->shutdown_reason));
                break;
        case QMP_EVENT_STOP:
                (void) free_and_strdup(&vm->qemu_status, "paused");
                break;
        case QMP_EVENT_RESUME:
                (void) free_and_strdup(&vm->qemu_status, "running");
                break;
        case QMP_EVENT_VSERPORT_CHANGE:
                vm_agent_on_port_change(vm, event->vserport_change.id, event->vserport_change.open);
                break;
        case QMP_EVENT_GUEST_PANICKED:
                vm_console_on_guest_panicked(vm);
                break;
        case QMP_EVENT_UNKNOWN:
        case QMP_EVENT_POWERDOWN:
        case QMP_EVENT_RESET:
        case QMP_EVENT_SUSPEND:
        case QMP_EVENT_WAKEUP:
        case QMP_EVENT_BALLOON_CHANGE:
        case _QMP_EVENT_TYPE_MAX:
        case _QMP_EVENT_TYPE_INVALID:
                break;
        }

        for (size_t i = 0; i < vm->ctx->n_event_watches; i++)
                vm->ctx->event_watches[i].cb(vm, event, vm->ctx->event_watches[i].userdata);
}

static void vm_on_qmp_state(QmpClient *q, QmpClientState state, int error, void *userdata) {
        Vm *vm = userdata;
        json_object *greeting, *ver, *qemu;
        int r;

        switch (state) {
        case QMP_CLIENT_RUNNING:
                greeting = qmp_client_get_greeting(q);
                if (json_object_object_get_ex(greeting, "version", &ver) &&
                    json_object_object_get_ex(ver, "qemu", &qemu)) {
                        char v[64];
                        snprintf(v, sizeof(v), "%" PRIi64 ".%" PRIi64 ".%" PRIi64, json_get_int(qemu, "major", 0),
                                 json_get_int(qemu, "minor", 0), json_get_int(qemu, "micro", 0));
                        (void) free_and_strdup(&vm->qemu_version, v);
                }
                /* The first greeting of a start: before the vCPUs are pinned and continued. */
                if (vm->state == VM_STATE_STARTING && !vm->start_done && !vm->emulator_check.done)
                        vm_emulator_check_at_greeting(vm);
                r = qmp_client_execute(q, "query-status", NULL, QMP_COMMAND_TIMEOUT_USEC, on_query_status, vm);
                if (r >= 0)
                        r = qmp_client_execute(q, "query-cpus-fast", NULL, QMP_COMMAND_TIMEOUT_USEC, on_query_cpus, vm);
                if (r < 0)
                        log_vm(vm, LOG_ERR, r, "Failed to queue QMP commands for guest %s: %m", vm->name);
                vm_agent_on_qmp_running(vm);
                break;
        case QMP_CLIENT_DISCONNECTED:
                /* QMP events run ahead of the process exit: when QEMU ended, its exit is handled next. */
                if (vm_is_active(vm) && vm->state == VM_STATE_RUNNING && !vm_process_exited(vm))
                        log_vm(vm, LOG_WARNING, error, "Lost the QMP connection of guest %s.", vm->name);
                break;
        case QMP_CLIENT_CONNECTING:
        case QMP_CLIENT_NEGOTIATING:
        case _QMP_CLIENT_STATE_MAX:
        case _QMP_CLIENT_STATE_INVALID:
                break;
        }
}

int vm_connect_qmp(Vm *vm, int fd) {
        _cleanup_(qmp_client_unrefp) QmpClient *q = NULL;
        int r;

        if (fd >= 0)
                r = qmp_client_new(&q, vm->ctx->event, fd);
        else
                r = qmp_client_connect(&q, vm->ctx->event, vm->qmp_path);
        if (r < 0)
                return r;

        qmp_client_set_description(q, vm->name);
        qmp_client_set_state_callback(q, vm_on_qmp_state, vm);
        r = qmp_client_add_event_observer(q, vm_on_qmp_event, vm);
        if (r < 0)
                return r;

        vm_release_qmp(vm);
        vm->qmp = TAKE_PTR(q);
        return 0;
}
