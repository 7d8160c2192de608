/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guests' varlink methods over src/vm's guest table (vm/vm-table.h) and definition store (vm/vm-store.h):
 * loading VMDirectory and the definitions DefineVM saved under STATE_DIR/vms, re-adoption of running guests at
 * start, autostart, reloads; the event stream is manager-events.c. */
#include <signal.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-events.h"
#include "daemon/manager-guest.h"
#include "daemon/manager-persist.h"
#include "daemon/manager.h"
#include "varlink/varlink-idl.h"
#include "vm/vm-confidential.h"

Vm *manager_find_vm(Manager *m, const char *name) {
        return vm_table_find(&m->guests, name);
}

void manager_update_status(Manager *m) {
        VmTableCounts c;

        if (m->reloading)
                return;
        c = vm_table_count(&m->guests);
        manager_set_status(m, "%u guest%s running, %u failed%s%.0u%s, %zu defined; listening on %s", c.running,
                           c.running == 1 ? "" : "s", c.failed, c.changing ? ", " : "", c.changing,
                           c.changing ? " changing state" : "", m->guests.n_vms, strna(m->varlink_address));
}

/* ---- state changes, forgetting ended transient guests ----------------------------------------- */

static int manager_gc(sd_event_source *s, void *userdata) {
        Manager *m = userdata;

        vm_table_gc(&m->guests);
        manager_guests_prune(m);
        manager_update_status(m);
        return 0;
}

static void manager_on_vm_state(Vm *vm, VmState old_state, void *userdata) {
        Manager *m = userdata;

        manager_events_vm_state(m, vm, old_state);
        if (vm->transient && !vm_is_active(vm) && m->gc_source)
                (void) sd_event_source_set_enabled(m->gc_source, SD_EVENT_ONESHOT);
        manager_update_status(m);
}

static void manager_on_table_change(Vm *vm, VmTableChange change, void *userdata) {
        manager_events_emit(userdata, vm_table_change_to_string(change), vm);
}

/* ---- loading ---------------------------------------------------------------------------------- */

static char *api_vm_dir(Manager *m) {
        return path_join(m->config.state_dir, "vms");
}

static void load_dir(Manager *m, const char *dir, bool api) {
        _cleanup_(vm_store_set_done) VmStoreSet set = {};

        if (vm_store_load(dir, m->admin_gid, &set) >= 0)
                vm_table_add_set(&m->guests, &set, api);
}

int manager_vms_start(Manager *m) {
        _cleanup_free_ char *api_dir = NULL;
        int r;

        r = vm_context_init(&m->vmctx, m->event, m->config.runtime_dir,
                            log_get_effective_target() == LOG_TARGET_JOURNAL);
        if (r < 0)
                return log_error_errno(r, "Failed to set up %s/vms: %m", m->config.runtime_dir);
        m->vmctx_ready = true;
        {
                _cleanup_free_ char *consoles = path_join(m->config.state_dir, "consoles");

                if (!consoles)
                        return log_oom();
                r = vm_context_set_console(&m->vmctx, consoles, m->config.console_keep_boots,
                                           m->config.console_max_boot_size);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up %s: %m", consoles);
        }
        vm_table_init(&m->guests, &m->vmctx, manager_on_table_change, m);

        r = vm_context_add_state_watch(&m->vmctx, manager_on_vm_state, m);
        if (r < 0)
                return r;

        r = sd_event_add_defer(m->event, &m->gc_source, manager_gc, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->gc_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->gc_source, "vm-gc");

        api_dir = api_vm_dir(m);
        if (!api_dir)
                return log_oom();
        r = mkdir_p(api_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", api_dir);

        (void) vm_store_remove_leftovers(api_dir);
        load_dir(m, m->config.vm_dir, false);
        load_dir(m, api_dir, true);
        vm_table_adopt_running(&m->guests);
        vm_table_autostart(&m->guests);

        log_info("%zu guest%s defined.", m->guests.n_vms, m->guests.n_vms == 1 ? "" : "s");
        return 0;
}

void manager_vms_done(Manager *m) {
        /* Guests keep running: only our handles on them go. */
        vm_table_done(&m->guests);
        manager_events_done(m);
        m->gc_source = sd_event_source_disable_unref(m->gc_source);
        if (m->vmctx_ready)
                vm_context_done(&m->vmctx);
        m->vmctx_ready = false;
}

/* Re-reads VMDirectory: new files add guests, changed ones replace definitions (from the next start for a
 * running guest), removed ones forget stopped guests and make running ones transient. */
int manager_vms_reload(Manager *m) {
        _cleanup_(vm_store_set_done) VmStoreSet set = {};
        _cleanup_(vm_reload_plan_done) VmReloadPlan plan = {};
        int r;

        if (!m->vmctx_ready)
                return 0;

        (void) vm_context_set_console(&m->vmctx, NULL, m->config.console_keep_boots, m->config.console_max_boot_size);
        (void) vm_store_load(m->config.vm_dir, m->admin_gid, &set);
        r = vm_reload_plan(&m->guests, &set, &plan);
        if (r < 0)
                return log_oom();
        vm_reload_plan_apply(&m->guests, &plan);
        manager_guests_prune(m);
        manager_update_status(m);
        return 0;
}

/* ---- varlink ---------------------------------------------------------------------------------- */

/* The error with parameters {k1: v1, k2: v2} (k2 may be NULL). */
static int error_strings(VarlinkConnection *c, const char *error, const char *k1, const char *v1, const char *k2,
                         const char *v2) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, k1, v1) < 0 || (k2 && json_add_string(p, k2, v2) < 0)) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, error, p);
}

static int error_read_only(VarlinkConnection *c, Vm *vm) {
        return error_strings(c, VARLINK_ERROR(DEFINITION_READ_ONLY), "name", vm->name, "source", vm->source);
}

static int error_invalid_state(VarlinkConnection *c, Vm *vm) {
        return error_strings(c, VARLINK_ERROR(INVALID_STATE), "name", vm->name, "state", vm_state_to_string(vm->state));
}

static Vm *lookup_or_reply(Manager *m, VarlinkConnection *c, json_object *parameters, int *ret) {
        const char *name = json_get_string(parameters, "name");
        Vm *vm = manager_find_vm(m, name);

        if (!vm)
                *ret = error_strings(c, VARLINK_ERROR(NO_SUCH_VM), "name", name, NULL, NULL);
        return vm;
}

/* Replies {key: value} (value made by r = make(…), taken). */
static int reply_one(VarlinkConnection *c, const char *key, int r, json_object *value) {
        _cleanup_json_ json_object *p = NULL;

        if (r < 0)
                return r;
        p = json_object_new_object();
        if (!p) {
                json_object_put(value);
                return -ENOMEM;
        }
        r = json_add(p, key, value);
        if (r < 0)
                return r;
        return varlink_reply(c, TAKE_PTR(p));
}

static int reply_summary(VarlinkConnection *c, Vm *vm) {
        json_object *s = NULL;
        int r = vm_summary_json(vm, &s);

        return reply_one(c, "vm", r, s);
}

static int vl_list_vms(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        json_object *list = NULL;
        int r = vm_table_summary_json(&m->guests, &list);

        return reply_one(c, "vms", r, list);
}

static int vl_describe_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        json_object *d = NULL;
        Vm *vm;
        int r = 0;

        vm = lookup_or_reply(userdata, c, parameters, &r);
        if (!vm)
                return r;
        r = vm_describe_json(vm, &d);
        return reply_one(c, "vm", r, d);
}

static int reply_invalid_definition(VarlinkConnection *c, const VmSpecError *e, int error) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "field", e->field) < 0 ||
            json_add_string(p, "reason", e->message ?: strerror(-error)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, VARLINK_ERROR(INVALID_DEFINITION), p);
}

static int vl_define_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        const char *name = json_get_string(parameters, "name"), *ini = json_get_string(parameters, "ini");
        const char *filename = json_get_string(parameters, "filename");
        bool replace = json_get_bool(parameters, "replace", false);
        _cleanup_(vm_spec_freep) VmSpec *spec = NULL;
        _cleanup_free_ char *dir = NULL;
        json_object *definition = NULL;
        VmSpecError e = {};
        Vm *vm;
        int r;

        if (json_object_object_get_ex(parameters, "definition", &definition) &&
            json_object_is_type(definition, json_type_null))
                definition = NULL;
        if (!!definition == !!ini)
                return varlink_error_invalid_parameter(c, definition ? "ini" : "definition");
        if (name && !vm_name_is_valid(name)) {
                VmSpecError ne = { .field = (char *) "VM.Name",
                                   .message = (char *) "invalid name: use 1-64 characters from a-z A-Z 0-9 _ . - "
                                                       "not starting with . or -" };
                return reply_invalid_definition(c, &ne, -EINVAL);
        }

        if (ini)
                r = vm_spec_parse_ini(filename ?: "DefineVM", ini, name, &spec, &e);
        else
                r = vm_spec_parse_json(definition, name, &spec, &e);
        if (r == -ENOMEM) {
                vm_spec_error_done(&e);
                return r;
        }
        if (r < 0) {
                r = reply_invalid_definition(c, &e, r);
                vm_spec_error_done(&e);
                return r;
        }

        /* What the host cannot give is refused here too, with the key: huge pages of a size it lacks. */
        {
                _cleanup_free_ char *why = NULL, *conf_why = NULL;
                const char *field = NULL;

                r = vm_memory_check_definition(spec, m->vmctx.sysfs_root, &field, &why);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 && field) {
                        log_info("DefineVM of %s refused: %s", spec->name, why);
                        return reply_invalid_definition(c, &(VmSpecError) { .field = (char *) field, .message = why }, r);
                }
                /* A confidential guest this host (or this build) cannot start. */
                r = vm_confidential_check(spec, m->vmctx.sysfs_root, &conf_why);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        log_info("DefineVM of %s refused: %s", spec->name, conf_why);
                        return reply_invalid_definition(
                                c, &(VmSpecError) { .field = (char *) "VM.Confidential", .message = conf_why }, r);
                }
        }

        vm = manager_find_vm(m, spec->name);
        if (vm && vm->source && !vm->transient)
                return error_read_only(c, vm);
        if (vm && !replace && !vm->transient)
                return error_strings(c, VARLINK_ERROR(VM_EXISTS), "name", spec->name, NULL, NULL);
        if (!vm && m->guests.n_vms >= MANAGER_MAX_VMS)
                return -E2BIG;

        /* Save first: nothing changes unless the definition is on disk. */
        dir = api_vm_dir(m);
        if (!dir)
                return -ENOMEM;
        r = vm_store_save(dir, spec);
        if (r < 0)
                return r;

        if (vm) {
                log_info("Guest %s redefined over varlink by uid %u%s.", vm->name,
                         (unsigned) varlink_connection_get_peer_uid(c),
                         vm_is_active(vm) ? "; it applies from the next start" : "");
                vm_set_spec(vm, TAKE_PTR(spec), NULL);
                manager_events_emit(m, "redefined", vm);
        } else {
                /* A new guest starts without the records a former one of the name may have left. */
                if (!manager_guest_find(m, spec->name))
                        manager_persist_remove(m, spec->name);
                r = vm_new(&m->vmctx, spec, NULL, &vm);
                if (r < 0) {
                        (void) vm_store_remove(dir, spec->name);
                        return r;
                }
                TAKE_PTR(spec);
                r = vm_table_add(&m->guests, vm);
                if (r < 0) {
                        (void) vm_store_remove(dir, vm->name);
                        vm_free(vm);
                        return r;
                }
                log_info("Guest %s defined over varlink by uid %u.", vm->name, (unsigned) varlink_connection_get_peer_uid(c));
                manager_events_emit(m, "defined", vm);
        }
        manager_update_status(m);
        return reply_summary(c, vm);
}

static void remove_run_dir(Manager *m, const char *name) {
        int r;

        /* Relative to RUNTIME_DIR/vms, never through a link: a symbolic link in place of the directory goes
         * itself, and whatever it points to stays as it is. */
        r = vm_remove_runtime_dir(&m->vmctx, name);
        if (r > 0)
                log_notice("%s/%s was a symbolic link, not a directory of memvisord's: removed the link, left its "
                           "target alone.", m->vmctx.vms_dir, name);
        else if (r < 0)
                log_warning_errno(r, "Failed to remove %s/%s, ignoring: %m", m->vmctx.vms_dir, name);
        /* A guest defined again under this name starts without a former one's console history. */
        r = vm_console_remove(&m->vmctx, name);
        if (r < 0)
                log_warning_errno(r, "Failed to remove the console history %s/%s, ignoring: %m", m->vmctx.console_dir,
                                  name);
}

static int vl_undefine_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ char *dir = NULL;
        Vm *vm;
        int r = 0;

        vm = lookup_or_reply(m, c, parameters, &r);
        if (!vm)
                return r;
        r = manager_experiment_reply_busy(m, c, vm->name);
        if (r != 0)
                return r < 0 ? r : 0;
        if (vm_is_active(vm) || vm->state == VM_STATE_RESTARTING || vm->state == VM_STATE_STARTING ||
            vm->state == VM_STATE_STOPPING)
                return error_invalid_state(c, vm);
        if (vm->source && !vm->transient)
                return error_read_only(c, vm);

        dir = api_vm_dir(m);
        if (!dir)
                return -ENOMEM;
        r = vm_store_remove(dir, vm->name);
        if (r < 0)
                return r;

        log_info("Guest %s undefined over varlink by uid %u.", vm->name, (unsigned) varlink_connection_get_peer_uid(c));
        manager_events_emit(m, "undefined", vm);
        remove_run_dir(m, vm->name);
        manager_persist_remove(m, vm->name);
        vm_table_remove(&m->guests, vm);
        manager_guests_prune(m);
        manager_update_status(m);
        return varlink_reply(c, NULL);
}

/* StartVM and RestartVM: both may fail to start QEMU, which StartFailed reports. */
static int start_like(VarlinkConnection *c, json_object *parameters, void *userdata, int (*op)(Vm *vm, char **ret_error)) {
        _cleanup_free_ char *error = NULL;
        Vm *vm;
        int r = 0;

        vm = lookup_or_reply(userdata, c, parameters, &r);
        if (!vm)
                return r;
        r = manager_experiment_reply_busy(userdata, c, vm->name);
        if (r != 0)
                return r < 0 ? r : 0;
        r = op(vm, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return error_strings(c, VARLINK_ERROR(START_FAILED), "name", vm->name, "reason", error ?: strerror(-r));
        return reply_summary(c, vm);
}

static int vl_start_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        return start_like(c, parameters, userdata, vm_start);
}

static int vl_stop_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Vm *vm;
        int r = 0;

        vm = lookup_or_reply(userdata, c, parameters, &r);
        if (!vm)
                return r;
        r = manager_experiment_reply_busy(userdata, c, vm->name);
        if (r != 0)
                return r < 0 ? r : 0;
        r = vm_stop(vm);
        if (r < 0)
                return r;
        return reply_summary(c, vm);
}

static int vl_restart_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        return start_like(c, parameters, userdata, vm_restart);
}

static int parse_signal(const char *s) {
        if (!s)
                return SIGKILL;
        if (startswith(s, "SIG"))
                s += 3;
        for (int sig = 1; sig < SIGRTMIN; sig++) {
                const char *n = sigabbrev_np(sig);
                if (n && streq(n, s))
                        return sig;
        }
        return -EINVAL;
}

static int vl_kill_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Vm *vm;
        int r = 0, sig;

        vm = lookup_or_reply(userdata, c, parameters, &r);
        if (!vm)
                return r;
        r = manager_experiment_reply_busy(userdata, c, vm->name);
        if (r != 0)
                return r < 0 ? r : 0;
        sig = parse_signal(json_get_string(parameters, "signal"));
        if (sig < 0)
                return varlink_error_invalid_parameter(c, "signal");
        r = vm_kill(vm, sig);
        if (r == -ESRCH)
                return error_invalid_state(c, vm);
        if (r < 0)
                return r;
        return reply_summary(c, vm);
}

static const VarlinkField name_only[] = { { "name", VARLINK_STRING, 0 }, { NULL } };

static const VarlinkMethod vm_methods[] = {
        { "ListVMs", vl_list_vms, (const VarlinkField[]) { { NULL } }, 0 },
        { "DescribeVM", vl_describe_vm, name_only, 0 },
        { "DefineVM", vl_define_vm,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, VARLINK_NULLABLE },
                  { "definition", VARLINK_OBJECT, VARLINK_NULLABLE },
                  { "ini", VARLINK_STRING, VARLINK_NULLABLE },
                  { "filename", VARLINK_STRING, VARLINK_NULLABLE },
                  { "replace", VARLINK_BOOL, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "UndefineVM", vl_undefine_vm, name_only, VARLINK_METHOD_PRIVILEGED },
        { "StartVM", vl_start_vm, name_only, VARLINK_METHOD_PRIVILEGED },
        { "StopVM", vl_stop_vm, name_only, VARLINK_METHOD_PRIVILEGED },
        { "RestartVM", vl_restart_vm, name_only, VARLINK_METHOD_PRIVILEGED },
        { "KillVM", vl_kill_vm,
          (const VarlinkField[]) { { "name", VARLINK_STRING, 0 }, { "signal", VARLINK_STRING, VARLINK_NULLABLE }, { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "SubscribeEvents", manager_events_subscribe, (const VarlinkField[]) { { NULL } }, VARLINK_METHOD_REQUIRES_MORE },
        { NULL },
};

const VarlinkMethod *manager_vm_methods(void) {
        return vm_methods;
}
