/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A guest's agent channel: the host side of the virtio-serial port org.qemu.guest_agent.0 (RUNTIME_DIR/vms/NAME/
 * qga.sock, a socket the daemon creates and QEMU inherits), the guest agent client on it (src/qga), and what QMP
 * says about the port: VSERPORT_CHANGE when the guest opens or closes it, query-chardev's frontend-open for a guest
 * found running (re-adopted). The agent only ever affects its own client: supervision never waits for it. */
#include <string.h>

#include "basic/json-util.h"
#include "vm/qemu-argv.h"
#include "vm/vm-internal.h"

/* Whether the QEMU that runs has our agent port: its command line has our chardev on an inherited socket (argv is
 * what we built, or what the state file of an adopted guest recorded); a port of the user's own ExtraArgs= is
 * not ours. */
static bool vm_has_agent_port(Vm *vm) {
        for (char **a = vm->argv; a && *a; a++)
                if (startswith(*a, "socket,id=" QEMU_AGENT_CHARDEV ",fd="))
                        return true;
        return false;
}

void vm_release_agent(Vm *vm) {
        _cleanup_(qga_client_unrefp) QgaClient *c = TAKE_PTR(vm->qga);

        if (!c)
                return;
        qga_client_set_state_callback(c, NULL, NULL);
        /* Dropping our reference fails what is open (-ECANCELED) unless an operation in flight still holds one:
         * then its commands fail when the connection does (QEMU is gone, or going). */
        qga_client_port_changed(c, false);
}

static void vm_on_agent_state(QgaClient *c, QgaState state, void *userdata) {
        Vm *vm = userdata;

        log_vm(vm, LOG_DEBUG, 0, "Guest agent of %s: %s%s%s", vm->name,
               qga_state_to_string(state), qga_client_get_reason(c) ? ", " : "", strempty(qga_client_get_reason(c)));
        for (size_t i = 0; i < vm->ctx->n_agent_watches; i++)
                vm->ctx->agent_watches[i].cb(vm, state, vm->ctx->agent_watches[i].userdata);
}

int vm_connect_agent(Vm *vm) {
        _cleanup_(qga_client_unrefp) QgaClient *c = NULL;
        int r;

        vm_release_agent(vm);
        if (!vm_has_agent_port(vm))
                return 0;

        r = qga_client_new(&c, vm->ctx->event, vm->qga_path);
        if (r < 0)
                return r;
        qga_client_set_description(c, vm->name);
        qga_client_set_state_callback(c, vm_on_agent_state, vm);
        vm->qga = TAKE_PTR(c);
        return 0;
}

/* The guest opened or closed the agent port. An "open" while the client is ready changes nothing (query-chardev
 * after a reconnect of QMP says what the client already knows); an agent that restarted closed the port first. */
static void vm_agent_port(Vm *vm, bool open) {
        if (open && qga_client_get_state(vm->qga) == QGA_STATE_READY)
                return;
        qga_client_port_changed(vm->qga, open);
}

static void on_query_chardev(QmpClient *q, int error, json_object *result, const char *cls, const char *desc,
                             void *userdata) {
        Vm *vm = userdata;
        json_object *open;

        if (error < 0 || !vm->qga || !json_object_is_type(result, json_type_array))
                return;
        for (size_t i = 0; i < json_object_array_length(result); i++) {
                json_object *c = json_object_array_get_idx(result, i);

                if (!streq_ptr(json_get_string(c, "label"), QEMU_AGENT_CHARDEV))
                        continue;
                if (json_object_object_get_ex(c, "frontend-open", &open) &&
                    json_object_is_type(open, json_type_boolean))
                        vm_agent_port(vm, json_object_get_boolean(open));
                return;
        }
}

void vm_agent_on_qmp_running(Vm *vm) {
        int r;

        if (!vm->qga)
                return;
        r = qmp_client_execute(vm->qmp, "query-chardev", NULL, QMP_COMMAND_TIMEOUT_USEC, on_query_chardev, vm);
        if (r < 0)
                log_vm(vm, LOG_DEBUG, r, "Failed to queue query-chardev for guest %s: %m", vm->name);
}

void vm_agent_on_port_change(Vm *vm, const char *id, bool open) {
        if (vm->qga && streq_ptr(id, QEMU_AGENT_PORT_ID))
                vm_agent_port(vm, open);
}
