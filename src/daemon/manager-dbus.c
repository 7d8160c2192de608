/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The D-Bus interface: io.memvisor.Manager1 at /io/memvisor/Manager1 (the operations of the varlink
 * io.memvisor.Manager interface) and one io.memvisor.VM1 object per guest below it, on the daemon's
 * sd_event loop; the sd-bus machinery (connection, named objects, pending requests, JSON as a{sv}, error
 * sentences) is src/dbus's. The bus is optional: without one the daemon runs on and says so once.
 *
 * State-changing methods check the caller asynchronously (bus_verify_privileged_async: uid 0 or AdminGroup=),
 * like the varlink PermissionDenied check; the system-bus policy file is defence in depth. Every method is
 * SD_BUS_VTABLE_UNPRIVILEGED so that sd-bus does not run its own (synchronous, CAP_SYS_ADMIN) check.
 *
 * The operations call what the varlink methods call (manager.h, balloon-controller.h); JSON replies become
 * a{sv}, errors the D-Bus names of the error table. Nothing waits in the loop: SetBalloon replies when QEMU
 * answered, MigratePages once the moves started (MigrationFinished tells how they ended), StartExperiment once
 * the first iteration starts (ExperimentProgress tells each step of every experiment, whoever started it). */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include "balloon/balloon-json.h"
#include "build-config.h"
#include "dbus/bus-object.h"
#include "dbus/bus-util.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-dbus-internal.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-monitor.h"
#include "daemon/manager-persist.h"
#include "daemon/manager.h"
#include "basic/strv.h"
#include "numa/numa-migration.h"
#include "qga/qga-ops.h"
#include "qmp/qmp-dirty-rate.h"


#define MANAGER_FROM_VM(vm) ((Manager *) ((char *) (vm)->ctx - offsetof(Manager, vmctx)))

/* A method's userdata is the Manager on the manager object, the Vm on a guest object. */
static Manager *manager_of(sd_bus_message *message, void *userdata) {
        if (streq_ptr(sd_bus_message_get_interface(message), BUS_MANAGER_INTERFACE))
                return userdata;
        return MANAGER_FROM_VM((Vm *) userdata);
}

static int parse_signal_name(const char *s) {
        if (isempty(s))
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

/* A failed shared operation (manager.h) as the D-Bus reply: its error (the table's D-Bus name), or r when
 * internal. Consumes *e. */
/* Manager methods take the name as the first argument; guest methods take it from the path. */
static Vm *vm_from_args(Manager *m, sd_bus_message *message, sd_bus_error *error, int *ret) {
        _cleanup_free_ char *from_path = NULL;
        const char *name = NULL;
        Vm *vm;

        if (streq_ptr(sd_bus_message_get_interface(message), BUS_MANAGER_INTERFACE)) {
                *ret = sd_bus_message_read(message, "s", &name);
                if (*ret < 0)
                        return NULL;
        } else if (bus_object_name_from_path(BUS_VM_PREFIX, sd_bus_message_get_path(message), &from_path) > 0)
                name = from_path;
        *ret = -ENOENT;
        if (!name) {
                sd_bus_error_setf(error, BUS_ERROR(NO_SUCH_VM), "No guest at %s.",
                                  strna(sd_bus_message_get_path(message)));
                return NULL;
        }
        vm = manager_find_vm(m, name);
        if (!vm)
                sd_bus_error_setf(error, BUS_ERROR(NO_SUCH_VM), "No guest named '%s'.", name);
        return vm;
}

static void emit_balloon_changed(Manager *m, const char *name) {
        sd_bus *bus = bus_connection_bus(m->dbus);
        int r;

        if (!bus)
                return;
        r = bus_emit_named_properties_changed(bus, BUS_VM_PREFIX, name, BUS_VM_INTERFACE,
                                              (char *[]) { "BalloonTarget", "BalloonActual", NULL });
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for guest %s, ignoring: %m", name);
}

/* ---- state-changing operations (run once the caller is known to be privileged) --------------------------- */

static int start_like(sd_bus_message *message, Vm *vm, sd_bus_error *error,
                      int (*action)(Vm *vm, char **ret_reason), const char *verb) {
        _cleanup_free_ char *reason = NULL;
        int r;

        r = action(vm, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR(START_FAILED), "Failed to %s guest %s: %s", verb, vm->name,
                                         reason ?: strerror(-r));
        return sd_bus_reply_method_return(message, NULL);
}

static int run_start(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        return start_like(message, vm, error, vm_start, "start");
}

static int run_restart(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        return start_like(message, vm, error, vm_restart, "restart");
}

static int run_stop(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        int r;

        r = vm_stop(vm);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, NULL);
}

static int run_kill(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        const char *signame = NULL;
        int r, sig;

        r = sd_bus_message_read(message, "s", &signame);
        if (r < 0)
                return r;
        sig = parse_signal_name(signame);
        if (sig < 0)
                return sd_bus_error_setf(error, BUS_ERROR(INVALID_SIGNAL), "Unknown signal '%s'.", signame);
        r = vm_kill(vm, sig);
        if (r == -ESRCH)
                return sd_bus_error_setf(error, BUS_ERROR(INVALID_STATE), "Guest %s is %s, not running.", vm->name,
                                         vm_state_to_string(vm->state));
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, NULL);
}

static int run_reload(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *reason = NULL;
        int r;

        log_info("Reload requested over D-Bus by %s.", strna(sd_bus_message_get_sender(message)));
        r = manager_reload(userdata, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR(CONFIG_INVALID), "%s", reason ?: strerror(-r));
        return sd_bus_reply_method_return(message, NULL);
}

static int run_pin_vcpus(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        _cleanup_json_ json_object *result = NULL;
        const char *map, *emulator;
        ManagerError e = {};
        json_object *vcpus = NULL;
        int r;

        r = sd_bus_message_read(message, "ss", &map, &emulator);
        if (r < 0)
                return r;
        r = manager_numa_pin_vcpus(m, vm->name, map, isempty(emulator) ? NULL : emulator, &result, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);
        (void) json_object_object_get_ex(result, "vcpus", &vcpus);
        return bus_reply_json_dict_array(message, vcpus);
}

/* QEMU answered the balloon command: SetBalloon's reply. */
static void set_balloon_done(int r, const BalloonTargetResult *result, const BalloonErrorInfo *info,
                             void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_json_ json_object *p = NULL;
        ManagerError me = {};
        BusPending *pending = userdata;

        if (r == 0) {
                r = balloon_target_result_to_json(pending->name, result, &p);
                (void) (r < 0 ? bus_pending_reply_error(pending, NULL, r) : bus_pending_reply_json_dict(pending, p));
                emit_balloon_changed(pending->userdata, pending->name);
        } else {
                r = bus_error_from_manager(&e, &me, manager_balloon_error(pending->userdata, pending->name, r, info,
                                                                          &me));
                (void) bus_pending_reply_error(pending, &e, r);
        }
        bus_pending_free(pending);
}

static int run_set_balloon(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        _cleanup_(balloon_error_info_done) BalloonErrorInfo info = {};
        _cleanup_free_ char *requester = NULL;
        BalloonGuestConfig cfg;
        ManagerError e = {};
        BusPending *pending;
        uint64_t target;
        int r;

        r = sd_bus_message_read(message, "t", &target);
        if (r < 0)
                return r;
        if (target > INT64_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: target_bytes");
        if (asprintf(&requester, "D-Bus by %s", strna(sd_bus_message_get_sender(message))) < 0) {
                requester = NULL;
                return -ENOMEM;
        }
        r = bus_pending_new(message, vm->name, m, &pending);
        if (r < 0)
                return r;
        /* The reply goes out when QEMU answered (within the QMP timeout, well below D-Bus's). Waiting for the
         * balloon to reach the target is not a method: watch BalloonActual instead. */
        manager_balloon_guest_config(m, vm, &cfg);
        r = balloon_controller_set_target(manager_balloon_controller(m, vm->name), &cfg,
                                          &(BalloonTargetRequest) { .target_bytes = target, .requester = requester },
                                          set_balloon_done, pending, NULL, &info);
        if (r != 0) {
                bus_pending_free(pending);
                r = manager_balloon_error(m, vm->name, r, &info, &e);
                return bus_error_from_manager(error, &e, r);
        }
        manager_persist_flush(m, vm->name);
        return 1;
}

/* A migration ended: MigrationFinished with the final reply (or the error and its parameters). */
static void migrate_done(const char *error, json_object *parameters, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_json_ json_object *p = parameters;
        _cleanup_free_ char *path = NULL;
        BusPending *pending = userdata;
        sd_bus *bus = bus_connection_bus(((Manager *) pending->userdata)->dbus);
        int r;

        if (error)
                (void) bus_error_set_from_varlink(&e, manager_error_bus_from_varlink(error), error, p);
        r = bus ? bus_object_path(BUS_VM_PREFIX, pending->name, &path) : 0;
        if (bus && r >= 0)
                r = bus_emit_signal_json_dict(bus, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, "MigrationFinished", p,
                                              "sos", pending->name, path, error ? strempty(e.name) : "");
        if (r < 0)
                log_debug_errno(r, "Failed to emit MigrationFinished for guest %s, ignoring: %m", pending->name);
        bus_pending_free(pending);
}

static int run_migrate_pages(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        ManagerError e = {};
        BusPending *pending;
        int r;

        r = sd_bus_message_read(message, "ss", &req.from, &req.to);
        if (r < 0)
                return r;
        /* The request is not kept: the moves can take long, the reply says they started, MigrationFinished
         * says how they ended. */
        r = bus_pending_new(NULL, vm->name, m, &pending);
        if (r < 0)
                return r;
        r = manager_numa_migrate(m, vm->name, &req,
                                 &(ManagerCompletion) { .done = migrate_done, .free = bus_pending_free,
                                                        .userdata = pending }, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);
        return sd_bus_reply_method_return(message, NULL);
}

/* MigratePagesScoped: MigratePages with a scope ("process" or "guest-ram"). */
static int run_migrate_pages_scoped(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        ManagerError e = {};
        BusPending *pending;
        int r;

        r = sd_bus_message_read(message, "sss", &req.from, &req.to, &req.scope);
        if (r < 0)
                return r;
        r = bus_pending_new(NULL, vm->name, m, &pending);
        if (r < 0)
                return r;
        r = manager_numa_migrate(m, vm->name, &req,
                                 &(ManagerCompletion) { .done = migrate_done, .free = bus_pending_free,
                                                        .userdata = pending }, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);
        return sd_bus_reply_method_return(message, NULL);
}

static int method_run_reload(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return bus_verify_privileged_async(message, m->admin_gid, run_reload, m, error);
}

/* The methods check the caller first; the guest is looked up (again, by path on guest objects) once the
 * credentials are in, as it may be gone by then. */
#define DEFINE_PRIVILEGED(run)                                                                                  \
        static int privileged_##run(sd_bus_message *message, void *userdata, sd_bus_error *error) {             \
                Vm *vm;                                                                                         \
                int r;                                                                                          \
                                                                                                                \
                ManagerError e = {};                                                                            \
                                                                                                                \
                vm = vm_from_args(userdata, message, error, &r);                                                \
                if (!vm)                                                                                        \
                        return r;                                                                               \
                r = manager_experiment_check_busy(userdata, vm->name, &e);                                      \
                if (r < 0)                                                                                      \
                        return bus_error_from_manager(error, &e, r);                                            \
                return run(message, userdata, vm, error);                                                       \
        }                                                                                                       \
        static int method_##run(sd_bus_message *message, void *userdata, sd_bus_error *error) {                 \
                Manager *m = manager_of(message, userdata);                                                     \
                return bus_verify_privileged_async(message, m->admin_gid, privileged_##run, m, error);          \
        }
DEFINE_PRIVILEGED(run_start)
DEFINE_PRIVILEGED(run_stop)
DEFINE_PRIVILEGED(run_restart)
DEFINE_PRIVILEGED(run_kill)
DEFINE_PRIVILEGED(run_pin_vcpus)
DEFINE_PRIVILEGED(run_set_balloon)
DEFINE_PRIVILEGED(run_migrate_pages)
DEFINE_PRIVILEGED(run_migrate_pages_scoped)

/* ---- the guest agent ---------------------------------------------------------------------------------- */

/* An agent operation ended: its reply (the varlink reply's one member, as a{sv}) or its error. */
static void agent_done(const char *error, json_object *parameters, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_json_ json_object *p = parameters;
        BusPending *pending = userdata;
        json_object *inner = NULL;

        if (error) {
                int r = bus_error_set_from_varlink(&e, manager_error_bus_from_varlink(error), error, p);
                (void) bus_pending_reply_error(pending, &e, r);
        } else {
                /* {"info": {...}}, {"counters": {...}}, {"result": {...}} → the inner object; {"bytes": N} as is. */
                json_object_object_foreach(p, k, v) {
                        (void) k;
                        if (json_object_is_type(v, json_type_object))
                                inner = v;
                }
                (void) bus_pending_reply_json_dict(pending, inner ?: p);
        }
        bus_pending_free(pending);
}

static int agent_completion(sd_bus_message *message, Vm *vm, ManagerCompletion *ret) {
        BusPending *pending;
        int r;

        r = bus_pending_new(message, vm->name, NULL, &pending);
        if (r < 0)
                return r;
        *ret = (ManagerCompletion) { .done = agent_done, .free = bus_pending_free, .userdata = pending };
        return 0;
}

static int method_guest_reading(sd_bus_message *message, void *userdata, sd_bus_error *error, bool counters) {
        Manager *m = manager_of(message, userdata);
        ManagerCompletion completion;
        ManagerError e = {};
        Vm *vm;
        int r;

        vm = vm_from_args(m, message, error, &r);
        if (!vm)
                return r;
        r = agent_completion(message, vm, &completion);
        if (r < 0)
                return r;
        r = counters ? manager_agent_counters(m, vm->name, &completion, &e)
                     : manager_agent_info(m, vm->name, &completion, &e);
        return r < 0 ? bus_error_from_manager(error, &e, r) : 1;
}

static int method_guest_info(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_guest_reading(message, userdata, error, false);
}

static int method_guest_counters(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return method_guest_reading(message, userdata, error, true);
}

static int run_guest_exec(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        _cleanup_(strv_freep) char **argv = NULL;
        _cleanup_free_ char *caller = NULL;
        ManagerCompletion completion;
        ManagerError e = {};
        uint64_t timeout;
        int r;

        r = sd_bus_message_read_strv(message, &argv);
        if (r < 0)
                return r;
        r = sd_bus_message_read(message, "t", &timeout);
        if (r < 0)
                return r;
        if (!argv || isempty(argv[0]))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: argv");
        if (timeout > 24 * 3600 * USEC_PER_SEC)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: timeout_usec");
        caller = bus_caller(message);
        if (!caller)
                return -ENOMEM;
        r = agent_completion(message, vm, &completion);
        if (r < 0)
                return r;
        r = manager_agent_exec(m, vm->name, &(QgaExecRequest) { .argv = argv, .timeout_usec = timeout }, caller,
                               &completion, &e);
        return r < 0 ? bus_error_from_manager(error, &e, r) : 1;
}

/* MeasureDirtyRate: answered with the measured rate (the varlink reply's dirtyRate) once QEMU measured it, after
 * period_sec and a poll; callers wait longer than D-Bus's default 25 s for long periods. mode "" and
 * sample_pages 0 are the defaults (page-sampling, QEMU's 512). */
static int run_measure_dirty_rate(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        _cleanup_free_ char *caller = NULL;
        ManagerCompletion completion;
        uint32_t period, pages;
        ManagerError e = {};
        DirtyRateParams p;
        const char *mode;
        int r;

        r = sd_bus_message_read(message, "usu", &period, &mode, &pages);
        if (r < 0)
                return r;
        p = (DirtyRateParams) {
                .mode = isempty(mode) ? DIRTY_RATE_MODE_PAGE_SAMPLING : dirty_rate_mode_from_string(mode),
                .calc_time_sec = period,
                .sample_pages = pages,
        };
        if ((int) p.mode < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: mode");
        caller = bus_caller(message);
        if (!caller)
                return -ENOMEM;
        r = agent_completion(message, vm, &completion);
        if (r < 0)
                return r;
        r = manager_dirty_rate_measure(m, vm->name, &p, caller, NULL, &completion, &e);
        return r < 0 ? bus_error_from_manager(error, &e, r) : 1;
}

static int run_guest_copy(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        _cleanup_free_ char *caller = NULL;
        ManagerCompletion completion;
        ManagerError e = {};
        const char *path;
        const void *data;
        size_t size;
        uint32_t mode;
        int r;

        r = sd_bus_message_read(message, "s", &path);
        if (r < 0)
                return r;
        r = sd_bus_message_read_array(message, 'y', &data, &size);
        if (r < 0)
                return r;
        r = sd_bus_message_read(message, "u", &mode);
        if (r < 0)
                return r;
        if (path[0] != '/')
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: path");
        if (mode > 07777)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: mode");
        caller = bus_caller(message);
        if (!caller)
                return -ENOMEM;
        r = agent_completion(message, vm, &completion);
        if (r < 0)
                return r;
        r = manager_agent_copy(m, vm->name, data, size, path, (mode_t) mode, caller, &completion, &e);
        return r < 0 ? bus_error_from_manager(error, &e, r) : 1;
}

/* SetHotplugMemory: answered with the varlink reply's hotplug once QEMU reports the size (with wait: once it is
 * size_bytes); timeout_usec 0 is the default (60 s). */
static int run_set_hotplug_memory(sd_bus_message *message, Manager *m, Vm *vm, sd_bus_error *error) {
        _cleanup_free_ char *caller = NULL;
        ManagerCompletion completion;
        uint64_t size, timeout;
        ManagerError e = {};
        int wait, r;

        r = sd_bus_message_read(message, "tbt", &size, &wait, &timeout);
        if (r < 0)
                return r;
        caller = bus_caller(message);
        if (!caller)
                return -ENOMEM;
        r = agent_completion(message, vm, &completion);
        if (r < 0)
                return r;
        r = manager_hotplug_set(m, vm->name, size, wait, timeout, caller, NULL, &completion, &e);
        return r < 0 ? bus_error_from_manager(error, &e, r) : 1;
}

DEFINE_PRIVILEGED(run_guest_exec)
DEFINE_PRIVILEGED(run_guest_copy)
DEFINE_PRIVILEGED(run_measure_dirty_rate)
DEFINE_PRIVILEGED(run_set_hotplug_memory)

/* ---- read-only methods --------------------------------------------------------------------------------- */

static const char *vm_name_at(size_t i, void *userdata) {
        Manager *m = userdata;
        return i < m->guests.n_vms ? m->guests.vms[i]->name : NULL;
}

static const char *vm_state_at(size_t i, void *userdata) {
        Manager *m = userdata;
        return vm_state_to_string(m->guests.vms[i]->state);
}

static int method_list_vms(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return bus_reply_named_objects(message, BUS_VM_PREFIX, vm_name_at, vm_state_at, userdata);
}

static int method_get_vm(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *path = NULL;
        Vm *vm;
        int r;

        vm = vm_from_args(userdata, message, error, &r);
        if (!vm)
                return r;
        r = bus_object_path(BUS_VM_PREFIX, vm->name, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, "o", path);
}

static int method_describe(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_json_ json_object *d = NULL;
        Vm *vm;
        int r;

        vm = vm_from_args(manager_of(message, userdata), message, error, &r);
        if (!vm)
                return r;
        r = vm_describe_json(vm, &d);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, "s", json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
}

static int method_get_daemon_status(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        unsigned running = 0;
        uint64_t now = 0;
        int r;

        for (size_t i = 0; i < m->guests.n_vms; i++)
                if (m->guests.vms[i]->state == VM_STATE_RUNNING)
                        running++;
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "a{sv}", 10,
                                  "Version", "s", PROJECT_VERSION,
                                  "PID", "u", (uint32_t) getpid(),
                                  "UptimeUSec", "t", now - m->start_usec,
                                  "Status", "s", strempty(m->status),
                                  "ConfigPath", "s", m->config_path,
                                  "VarlinkAddress", "s", strempty(m->varlink_address),
                                  "LogLevel", "s", log_level_to_string(log_get_max_level()),
                                  "AdminGroup", "s", strempty(m->config.admin_group),
                                  "Guests", "u", (uint32_t) m->guests.n_vms,
                                  "GuestsRunning", "u", (uint32_t) running);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* The name of an unknown guest is manager_balloon_describe()'s to refuse. */
static int method_get_balloon(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_json_ json_object *result = NULL;
        Manager *m = manager_of(message, userdata);
        const char *name;
        ManagerError e = {};
        int r;

        if (m == userdata) {
                r = sd_bus_message_read(message, "s", &name);
                if (r < 0)
                        return r;
        } else
                name = ((Vm *) userdata)->name;
        r = manager_balloon_describe(m, name, &result, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);
        return bus_reply_json_dict(message, result, "balloon");
}

static int method_get_host_memory(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_json_ json_object *result = NULL;
        ManagerError e = {};
        int r;

        r = manager_metrics_host_memory(userdata, &result, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);
        /* One dictionary: the sample's fields, then the sampler's. */
        return bus_reply_json_dict_flattened(message, result, "sample");
}

/* GetHostInfo: answered once QEMU listed its objects (a worker thread): the varlink reply as a{sv}. */
static void host_info_done(const char *error, json_object *parameters, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_json_ json_object *p = parameters;
        BusPending *pending = userdata;

        if (error) {
                int r = bus_error_set_from_varlink(&e, manager_error_bus_from_varlink(error), error, p);

                (void) bus_pending_reply_error(pending, &e, r);
        } else
                (void) bus_pending_reply_json_dict(pending, p);
        bus_pending_free(pending);
}

static int method_get_host_info(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        ManagerCompletion completion;
        BusPending *pending;
        ManagerError e = {};
        int r;

        r = bus_pending_new(message, "host", NULL, &pending);
        if (r < 0)
                return r;
        completion = (ManagerCompletion) { .done = host_info_done, .free = bus_pending_free, .userdata = pending };
        r = manager_host_info(userdata, &completion, &e);
        return r < 0 ? bus_error_from_manager(error, &e, r) : 1;
}

/* ---- properties ---------------------------------------------------------------------------------------- */

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PROJECT_VERSION);
}

static int property_get_guests(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) m->guests.n_vms);
}

static const VmSpec *vm_effective_spec(const Vm *vm) {
        return vm->running_spec && vm_is_active(vm) ? vm->running_spec : vm->spec;
}

/* The guest's properties that are not a plain field of Vm (those use bus_property_get_*). */
static int property_get_vm(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;

        if (streq(property, "State"))
                return sd_bus_message_append(reply, "s", vm_state_to_string(vm->state));
        if (streq(property, "Pid"))
                return sd_bus_message_append(reply, "u", (uint32_t) (vm_is_active(vm) ? vm->pid : 0));
        if (streq(property, "VCPUs"))
                return sd_bus_message_append(reply, "u", (uint32_t) vm_effective_spec(vm)->vcpus);
        if (streq(property, "MemoryBytes"))
                return sd_bus_message_append(reply, "t", vm_effective_spec(vm)->memory_bytes);
        if (streq(property, "Autostart"))
                return sd_bus_message_append(reply, "b", vm->spec->autostart);
        if (streq(property, "BalloonTarget") || streq(property, "BalloonActual")) {
                uint64_t target = UINT64_MAX, actual = UINT64_MAX;

                if (!balloon_controller_get_sizes(manager_balloon_controller(MANAGER_FROM_VM(vm), vm->name), &target,
                                                  &actual))
                        target = actual = UINT64_MAX;
                return sd_bus_message_append(reply, "t", streq(property, "BalloonTarget") ? target : actual);
        }
        return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_PROPERTY, "Unknown property %s.", property);
}

/* ---- vtables ------------------------------------------------------------------------------------------- */

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Status", "s", bus_property_get_string, offsetof(Manager, status), 0),
        SD_BUS_PROPERTY("Guests", "u", property_get_guests, 0, 0),
        SD_BUS_METHOD_WITH_NAMES("ListVMs", "", , "a(sso)", SD_BUS_PARAM(vms), method_list_vms,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetVM", "s", SD_BUS_PARAM(name), "o", SD_BUS_PARAM(path), method_get_vm,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("DescribeVM", "s", SD_BUS_PARAM(name), "s", SD_BUS_PARAM(json),
                                 method_describe, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("StartVM", "s", SD_BUS_PARAM(name), "", , method_run_start,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("StopVM", "s", SD_BUS_PARAM(name), "", , method_run_stop, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("RestartVM", "s", SD_BUS_PARAM(name), "", , method_run_restart,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("KillVM", "ss", SD_BUS_PARAM(name) SD_BUS_PARAM(signal), "", , method_run_kill,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reload", "", "", method_run_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetDaemonStatus", "", , "a{sv}", SD_BUS_PARAM(status), method_get_daemon_status,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("PinVCPUs", "sss", SD_BUS_PARAM(name) SD_BUS_PARAM(map) SD_BUS_PARAM(emulator),
                                 "aa{sv}", SD_BUS_PARAM(vcpus), method_run_pin_vcpus, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("SetBalloon", "st", SD_BUS_PARAM(name) SD_BUS_PARAM(target_bytes), "a{sv}",
                                 SD_BUS_PARAM(result), method_run_set_balloon, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetBalloon", "s", SD_BUS_PARAM(name), "a{sv}", SD_BUS_PARAM(balloon),
                                 method_get_balloon, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("MigratePages", "sss", SD_BUS_PARAM(name) SD_BUS_PARAM(from) SD_BUS_PARAM(to), "", ,
                                 method_run_migrate_pages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("MigratePagesScoped", "ssss", SD_BUS_PARAM(name) SD_BUS_PARAM(from) SD_BUS_PARAM(to)
                                 SD_BUS_PARAM(scope), "", , method_run_migrate_pages_scoped, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetHostMemory", "", , "a{sv}", SD_BUS_PARAM(memory), method_get_host_memory,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetHostInfo", "", , "a{sv}", SD_BUS_PARAM(info), method_get_host_info,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GuestInfo", "s", SD_BUS_PARAM(name), "a{sv}", SD_BUS_PARAM(info), method_guest_info,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GuestCounters", "s", SD_BUS_PARAM(name), "a{sv}", SD_BUS_PARAM(counters),
                                 method_guest_counters, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GuestExec", "sast", SD_BUS_PARAM(name) SD_BUS_PARAM(argv) SD_BUS_PARAM(timeout_usec),
                                 "a{sv}", SD_BUS_PARAM(result), method_run_guest_exec, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GuestCopy", "ssayu", SD_BUS_PARAM(name) SD_BUS_PARAM(path) SD_BUS_PARAM(data)
                                 SD_BUS_PARAM(mode), "a{sv}", SD_BUS_PARAM(result), method_run_guest_copy,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("MeasureDirtyRate", "susu", SD_BUS_PARAM(name) SD_BUS_PARAM(period_sec) SD_BUS_PARAM(mode)
                                 SD_BUS_PARAM(sample_pages), "a{sv}", SD_BUS_PARAM(dirty_rate),
                                 method_run_measure_dirty_rate, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("SetHotplugMemory", "stbt", SD_BUS_PARAM(name) SD_BUS_PARAM(size_bytes)
                                 SD_BUS_PARAM(wait) SD_BUS_PARAM(timeout_usec), "a{sv}", SD_BUS_PARAM(hotplug),
                                 method_run_set_hotplug_memory, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("StartExperiment", "st", SD_BUS_PARAM(definition_text) SD_BUS_PARAM(iterations), "s",
                                 SD_BUS_PARAM(id), method_start_experiment, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ListExperiments", "s", SD_BUS_PARAM(guest), "aa{sv}", SD_BUS_PARAM(experiments),
                                 method_list_experiments, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("DescribeExperiment", "s", SD_BUS_PARAM(id), "s", SD_BUS_PARAM(json),
                                 method_describe_experiment, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("CancelExperiment", "s", SD_BUS_PARAM(id), "", , method_cancel_experiment,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("DeleteExperiment", "s", SD_BUS_PARAM(id), "", , method_delete_experiment,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("CompareExperiments", "ssastu", SD_BUS_PARAM(a) SD_BUS_PARAM(b) SD_BUS_PARAM(counters)
                                 SD_BUS_PARAM(seed) SD_BUS_PARAM(resamples), "s", SD_BUS_PARAM(json),
                                 manager_dbus_compare_experiments, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("ExecuteMonitorCommand", "sssbb", SD_BUS_PARAM(name) SD_BUS_PARAM(command)
                                 SD_BUS_PARAM(arguments) SD_BUS_PARAM(hmp) SD_BUS_PARAM(force), "s", SD_BUS_PARAM(json),
                                 manager_dbus_execute_monitor_command, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("DescribeMemoryLayout", "s", SD_BUS_PARAM(name), "s", SD_BUS_PARAM(json),
                                 manager_dbus_describe_memory_layout, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetConsole", "sxtx", SD_BUS_PARAM(name) SD_BUS_PARAM(boot) SD_BUS_PARAM(lines)
                                 SD_BUS_PARAM(offset), "aya{sv}", SD_BUS_PARAM(data) SD_BUS_PARAM(console),
                                 manager_dbus_get_console, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_NAMES("StateChanged", "sosss",
                                 SD_BUS_PARAM(name) SD_BUS_PARAM(vm) SD_BUS_PARAM(state) SD_BUS_PARAM(previous_state)
                                 SD_BUS_PARAM(reason), 0),
        SD_BUS_SIGNAL_WITH_NAMES("MigrationFinished", "sosa{sv}",
                                 SD_BUS_PARAM(name) SD_BUS_PARAM(vm) SD_BUS_PARAM(error) SD_BUS_PARAM(result), 0),
        SD_BUS_SIGNAL_WITH_NAMES("ExperimentProgress", "ssttss",
                                 SD_BUS_PARAM(id) SD_BUS_PARAM(guest) SD_BUS_PARAM(done) SD_BUS_PARAM(planned)
                                 SD_BUS_PARAM(state) SD_BUS_PARAM(reason), 0),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable vm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", bus_property_get_string, offsetof(Vm, name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateReason", "s", bus_property_get_string, offsetof(Vm, reason),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateSinceRealtimeUSec", "t", bus_property_get_uint64, offsetof(Vm, state_since_realtime),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Pid", "u", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Restarts", "u", bus_property_get_unsigned, offsetof(Vm, restarts),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("VCPUs", "u", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemoryBytes", "t", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Autostart", "b", property_get_vm, 0, 0),
        SD_BUS_PROPERTY("Transient", "b", bus_property_get_bool, offsetof(Vm, transient), 0),
        SD_BUS_PROPERTY("Source", "s", bus_property_get_string, offsetof(Vm, source), 0),
        SD_BUS_PROPERTY("BalloonTarget", "t", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BalloonActual", "t", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("Start", "", "", method_run_start, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Stop", "", "", method_run_stop, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Restart", "", "", method_run_restart, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Kill", "s", SD_BUS_PARAM(signal), "", , method_run_kill, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Describe", "", , "s", SD_BUS_PARAM(json), method_describe,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("PinVCPUs", "ss", SD_BUS_PARAM(map) SD_BUS_PARAM(emulator), "aa{sv}",
                                 SD_BUS_PARAM(vcpus), method_run_pin_vcpus, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("SetBalloon", "t", SD_BUS_PARAM(target_bytes), "a{sv}", SD_BUS_PARAM(result),
                                 method_run_set_balloon, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetBalloon", "", , "a{sv}", SD_BUS_PARAM(balloon), method_get_balloon,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("MigratePages", "ss", SD_BUS_PARAM(from) SD_BUS_PARAM(to), "", ,
                                 method_run_migrate_pages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("MigratePagesScoped", "sss", SD_BUS_PARAM(from) SD_BUS_PARAM(to) SD_BUS_PARAM(scope),
                                 "", , method_run_migrate_pages_scoped, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GuestInfo", "", , "a{sv}", SD_BUS_PARAM(info), method_guest_info,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GuestCounters", "", , "a{sv}", SD_BUS_PARAM(counters), method_guest_counters,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GuestExec", "ast", SD_BUS_PARAM(argv) SD_BUS_PARAM(timeout_usec), "a{sv}",
                                 SD_BUS_PARAM(result), method_run_guest_exec, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GuestCopy", "sayu", SD_BUS_PARAM(path) SD_BUS_PARAM(data) SD_BUS_PARAM(mode),
                                 "a{sv}", SD_BUS_PARAM(result), method_run_guest_copy, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static void *vm_lookup(const char *name, void *userdata) {
        return manager_find_vm(userdata, name);
}

/* ---- events -------------------------------------------------------------------------------------------- */

static void dbus_on_vm_state(Vm *vm, VmState old_state, void *userdata) {
        _cleanup_free_ char *path = NULL;
        sd_bus *bus = bus_connection_bus(((Manager *) userdata)->dbus);
        int r;

        if (!bus || bus_object_path(BUS_VM_PREFIX, vm->name, &path) < 0)
                return;
        r = sd_bus_emit_properties_changed(bus, path, BUS_VM_INTERFACE, "State", "StateReason",
                                           "StateSinceRealtimeUSec", "Pid", "Restarts", "VCPUs", "MemoryBytes",
                                           "BalloonTarget", "BalloonActual", NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for guest %s, ignoring: %m", vm->name);
        r = sd_bus_emit_signal(bus, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, "StateChanged", "sosss", vm->name, path,
                               vm_state_to_string(vm->state), vm_state_to_string(old_state), strempty(vm->reason));
        if (r < 0)
                log_debug_errno(r, "Failed to emit StateChanged for guest %s, ignoring: %m", vm->name);
}

/* QEMU's BALLOON_CHANGE: the balloon module (whose watch runs first) has the new size. */
static void dbus_on_vm_event(Vm *vm, const QmpEvent *event, void *userdata) {
        if (event->type == QMP_EVENT_BALLOON_CHANGE)
                emit_balloon_changed(userdata, vm->name);
}

int manager_dbus_start(Manager *m) {
        _cleanup_(bus_connection_closep) BusConnection *c = NULL;
        int r;

        if (m->config.dbus_disabled) {
                log_debug("D-Bus disabled by [DBus] Address=none.");
                return 0;
        }

        r = bus_connection_open(m->event, m->config.dbus_address, "memvisord", BUS_NAME, &c);
        if (r < 0) {
                /* Optional: say so once and go on with varlink only. */
                log_notice_errno(r, "D-Bus not available (%s: %m), continuing without the D-Bus interface.",
                                 bus_address_describe(m->config.dbus_address));
                return 0;
        }

        r = sd_bus_add_object_vtable(c->bus, NULL, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, manager_vtable, m);
        if (r >= 0)
                r = bus_add_named_objects(c->bus, BUS_VM_PREFIX, BUS_VM_INTERFACE, vm_vtable, vm_lookup, vm_name_at, m);
        if (r >= 0)
                r = sd_bus_add_object_manager(c->bus, NULL, BUS_MANAGER_PATH);
        if (r >= 0)
                r = vm_context_add_state_watch(&m->vmctx, dbus_on_vm_state, m);
        if (r >= 0)
                r = vm_context_add_event_watch(&m->vmctx, dbus_on_vm_event, m);
        if (r < 0) {
                log_warning_errno(r, "Failed to set up the D-Bus interface on %s, continuing without it: %m",
                                  c->address);
                return 0;
        }

        m->dbus = TAKE_PTR(c);
        return 0;
}

void manager_dbus_done(Manager *m) {
        m->dbus = bus_connection_close(m->dbus);
}

bool manager_dbus_connected(Manager *m) {
        return bus_connection_bus(m->dbus);
}
