/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The JSON views of a guest for the API (ListVMs, DescribeVM). */
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "vm/qemu-argv.h"
#include "vm/vm-internal.h"

/* ---- JSON views ------------------------------------------------------------------------------- */

static int add_common(Vm *vm, json_object *o) {
        const VmSpec *s = vm->running_spec && vm_is_active(vm) ? vm->running_spec : vm->spec;
        uint64_t now = now_usec(CLOCK_MONOTONIC);
        int r;

        if ((r = json_add_string(o, "name", vm->name)) < 0 ||
            (r = json_add_string(o, "state", vm_state_to_string(vm->state))) < 0 ||
            (r = json_add_string(o, "stateReason", vm->reason)) < 0 ||
            (r = json_add_uint(o, "stateSinceRealtimeUSec", vm->state_since_realtime)) < 0 ||
            (r = json_add_uint(o, "vcpus", s->vcpus)) < 0 ||
            (r = json_add_uint(o, "memoryBytes", s->memory_bytes)) < 0 ||
            (r = json_add_uint(o, "restarts", vm->restarts)) < 0 ||
            (r = json_add_bool(o, "autostart", vm->spec->autostart)) < 0)
                return r;
        if (vm_is_active(vm)) {
                if ((r = json_add_int(o, "pid", vm->pid)) < 0 ||
                    (r = json_add_uint(o, "uptimeUSec", now - vm->started_monotonic)) < 0 ||
                    (r = json_add_uint(o, "startedRealtimeUSec", vm->started_realtime)) < 0)
                        return r;
        }
        return 0;
}

/* "agent": {state, reason, version, commands, socket} of a running guest with the agent port. */
static int vm_agent_json(Vm *vm, json_object *o) {
        _cleanup_json_ json_object *a = NULL, *cmds = NULL;
        int r;

        if (!vm->qga)
                return 0;
        a = json_object_new_object();
        cmds = json_object_new_array();
        if (!a || !cmds)
                return -ENOMEM;
        for (char *const *c = qga_client_get_commands(vm->qga); c && *c; c++)
                if (json_object_array_add(cmds, json_object_new_string(*c)) < 0)
                        return -ENOMEM;
        if ((r = json_add_string(a, "state", qga_state_to_string(qga_client_get_state(vm->qga)))) < 0 ||
            (qga_client_get_state(vm->qga) != QGA_STATE_READY &&
             (r = json_add_string(a, "reason", qga_client_get_reason(vm->qga))) < 0) ||
            (r = json_add_string(a, "version", qga_client_get_version(vm->qga))) < 0 ||
            (r = json_add_string(a, "socket", vm->qga_path)) < 0 ||
            (r = json_add(a, "commands", TAKE_PTR(cmds))) < 0)
                return r;
        return json_add(o, "agent", TAKE_PTR(a));
}

int vm_summary_json(Vm *vm, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        r = add_common(vm, o);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

int vm_describe_json(Vm *vm, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *def = NULL, *vcpus = NULL, *argv = NULL;
        _cleanup_free_ char *cmdline = NULL, *console_dir = path_join(vm->ctx->console_dir, vm->name);
        int r;

        if (!o || !console_dir)
                return -ENOMEM;
        r = add_common(vm, o);
        if (r < 0)
                return r;

        r = vm_spec_to_json(vm->spec, &def);
        if (r < 0)
                return r;
        if ((r = json_add(o, "definition", TAKE_PTR(def))) < 0 || (r = json_add_string(o, "source", vm->source)) < 0 ||
            (r = json_add_bool(o, "transient", vm->transient)) < 0 ||
            (r = json_add_string(o, "runtimeDirectory", vm->run_dir)) < 0 ||
            (r = json_add_string(o, "qmpSocket", vm->qmp_path)) < 0 ||
            (r = json_add_string(o, "consoleLog", vm->console_path)) < 0 ||
            (r = json_add_string(o, "consoleDirectory", console_dir)) < 0 ||
            (vm->console_boot > 0 && (r = json_add_uint(o, "consoleBoot", vm->console_boot)) < 0) ||
            (r = json_add_string(o, "qemuLog", vm->ctx->log_to_journal ? NULL : vm->log_path)) < 0 ||
            (r = json_add_string(o, "definitionProblem", vm->definition_problem)) < 0)
                return r;

        if (vm->running_variant && vm_is_active(vm) &&
            (r = json_add_string(o, "runningVariant", vm->running_variant)) < 0)
                return r;
        if (vm->running_spec && vm_is_active(vm) && !vm_spec_equal(vm->running_spec, vm->spec) &&
            (r = json_add_bool(o, "definitionChangedSinceStart", true)) < 0)
                return r;

        if (vm->argv) {
                argv = json_object_new_array();
                if (!argv)
                        return -ENOMEM;
                for (char **a = vm->argv; *a; a++)
                        if (json_object_array_add(argv, json_object_new_string(*a)) < 0)
                                return -ENOMEM;
                cmdline = qemu_argv_to_string(vm->argv);
                if ((r = json_add(o, "argv", TAKE_PTR(argv))) < 0 || (r = json_add_string(o, "commandLine", cmdline)) < 0)
                        return r;
        }

        if (vm_is_active(vm)) {
                if ((r = json_add_bool(o, "adopted", vm->adopted)) < 0 ||
                    (r = json_add_string(o, "accelerator", vm_accel_to_string(vm->accel))) < 0 ||
                    (r = json_add_string(o, "qmpState", vm->qmp ? qmp_client_state_to_string(qmp_client_get_state(vm->qmp))
                                                                 : "disconnected")) < 0 ||
                    (r = json_add_string(o, "qemuStatus", vm->qemu_status)) < 0 ||
                    (r = json_add_string(o, "qemuVersion", vm->qemu_version)) < 0)
                        return r;
                if (vm->accel == VM_ACCEL_TCG && (r = json_add_string(o, "kvmFallbackReason", vm->kvm_failure)) < 0)
                        return r;

                vcpus = json_object_new_array();
                if (!vcpus)
                        return -ENOMEM;
                for (size_t i = 0; i < vm->n_vcpus; i++) {
                        _cleanup_json_ json_object *c = json_object_new_object();
                        if (!c || json_add_uint(c, "index", vm->vcpus[i].index) < 0 ||
                            json_add_int(c, "threadId", vm->vcpus[i].thread_id) < 0 ||
                            json_object_array_add(vcpus, TAKE_PTR(c)) < 0)
                                return -ENOMEM;
                }
                if ((r = json_add(o, "vcpuThreads", TAKE_PTR(vcpus))) < 0)
                        return r;
                if ((r = vm_agent_json(vm, o)) < 0)
                        return r;
        }

        if (vm->state == VM_STATE_RESTARTING && vm->timer) {
                uint64_t t = 0;
                if (sd_event_source_get_time(vm->timer, &t) >= 0) {
                        uint64_t now = now_usec(CLOCK_MONOTONIC);
                        if ((r = json_add_uint(o, "restartInUSec", t > now ? t - now : 0)) < 0)
                                return r;
                }
        }

        if ((r = vm_commit_charge_json(vm, o)) < 0)
                return r;
        if ((r = vm_emulator_check_json(vm, o)) < 0)
                return r;

        if (vm->last_exit.valid) {
                _cleanup_json_ json_object *e = json_object_new_object();
                if (!e || json_add_bool(e, "statusKnown", vm->last_exit.status_known) < 0 ||
                    json_add_string(e, "description", vm->last_exit.description) < 0 ||
                    json_add_string(e, "shutdownReason", vm->last_exit.shutdown_reason) < 0 ||
                    json_add_uint(e, "realtimeUSec", vm->last_exit.realtime_usec) < 0)
                        return -ENOMEM;
                if (vm->last_exit.code >= 0 && json_add_int(e, "exitCode", vm->last_exit.code) < 0)
                        return -ENOMEM;
                if (vm->last_exit.signal > 0 &&
                    json_add_string(e, "signal", sigabbrev_np(vm->last_exit.signal)) < 0)
                        return -ENOMEM;
                /* The boot whose console tells how it ended; with a panic, its lines. */
                if (vm->last_exit.console_boot > 0 &&
                    (json_add_uint(e, "consoleBoot", vm->last_exit.console_boot) < 0 ||
                     json_add_bool(e, "panicked", vm->last_exit.panicked) < 0))
                        return -ENOMEM;
                if (vm->last_exit.panic_lines) {
                        _cleanup_json_ json_object *l = json_object_new_array();

                        if (!l)
                                return -ENOMEM;
                        for (char **x = vm->last_exit.panic_lines; *x; x++)
                                if (json_object_array_add(l, json_object_new_string(*x)) < 0)
                                        return -ENOMEM;
                        if ((r = json_add(e, "panicLines", TAKE_PTR(l))) < 0)
                                return r;
                }
                if ((r = json_add(o, "lastExit", TAKE_PTR(e))) < 0)
                        return r;
        }

        *ret = TAKE_PTR(o);
        return 0;
}
