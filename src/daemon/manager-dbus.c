/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The D-Bus interface: io.memvisor.Manager1 at /io/memvisor/Manager1 (the operations of the varlink
 * io.memvisor.Manager interface) and one io.memvisor.VM1 object per guest below it, on the daemon's
 * sd_event loop. The bus is optional: without one the daemon runs on and says so once.
 *
 * State-changing methods check the caller asynchronously (bus_verify_privileged_async: uid 0 or AdminGroup=),
 * like the varlink PermissionDenied check; the system-bus policy file is defence in depth. Every method is
 * SD_BUS_VTABLE_UNPRIVILEGED so that sd-bus does not run its own (synchronous, CAP_SYS_ADMIN) check.
 *
 * Pinning, ballooning, page migration and host memory call the same functions as the varlink methods
 * (manager.h: manager_numa_pin_vcpus(), manager_numa_migrate() with src/numa's MigrationRequest, and friends;
 * ballooning the typed API of balloon-controller.h); their
 * JSON replies become a{sv} and their varlink errors io.memvisor.Manager1.* errors
 * (bus_error_set_from_varlink()). Nothing waits in the loop: SetBalloon replies when QEMU answered the
 * balloon command (its typed callback keeps the request), and MigratePages
 * replies once the moves started, MigrationFinished tells how they ended. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "balloon/balloon-json.h"
#include "build-config.h"
#include "dbus/bus-util.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager.h"
#include "numa/numa-migration.h"
#include "basic/strv.h"

struct ManagerDbus {
        sd_bus *bus;
        char *address;          /* what we connected to, for GetDaemonStatus and the log */
        bool name_acquired;
        bool disconnected;
};

#define MANAGER_FROM_VM(vm) ((Manager *) ((char *) (vm)->ctx - offsetof(Manager, vmctx)))

static uint64_t now_monotonic(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
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

static Vm *vm_from_request(Manager *m, sd_bus_message *message, const char *name, sd_bus_error *error) {
        _cleanup_free_ char *from_path = NULL;
        Vm *vm;

        if (!name) {
                /* A method of a guest object: the guest is the path. */
                if (bus_vm_name_from_path(sd_bus_message_get_path(message), &from_path) <= 0) {
                        sd_bus_error_setf(error, BUS_ERROR(NO_SUCH_VM), "No guest at %s.",
                                          strna(sd_bus_message_get_path(message)));
                        return NULL;
                }
                name = from_path;
        }
        vm = manager_find_vm(m, name);
        if (!vm)
                sd_bus_error_setf(error, BUS_ERROR(NO_SUCH_VM), "No guest named '%s'.", name);
        return vm;
}

/* Manager methods take the name as the first argument; guest methods take it from the path. */
static Vm *vm_from_args(Manager *m, sd_bus_message *message, sd_bus_error *error, int *ret) {
        const char *name = NULL;

        if (streq_ptr(sd_bus_message_get_interface(message), BUS_MANAGER_INTERFACE)) {
                *ret = sd_bus_message_read(message, "s", &name);
                if (*ret < 0)
                        return NULL;
        }
        *ret = -ENOENT;
        return vm_from_request(m, message, name, error);
}

/* ---- state-changing operations (run once the caller is known to be privileged) --------------------------- */

static int run_start(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *reason = NULL;
        Manager *m = userdata;
        Vm *vm;
        int r;

        vm = vm_from_args(m, message, error, &r);
        if (!vm)
                return r;
        r = vm_start(vm, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR(START_FAILED), "Failed to start guest %s: %s", vm->name,
                                         reason ?: strerror(-r));
        return sd_bus_reply_method_return(message, NULL);
}

static int run_stop(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        Vm *vm;
        int r;

        vm = vm_from_args(m, message, error, &r);
        if (!vm)
                return r;
        r = vm_stop(vm);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, NULL);
}

static int run_restart(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *reason = NULL;
        Manager *m = userdata;
        Vm *vm;
        int r;

        vm = vm_from_args(m, message, error, &r);
        if (!vm)
                return r;
        r = vm_restart(vm, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR(START_FAILED), "Failed to restart guest %s: %s",
                                         vm->name, reason ?: strerror(-r));
        return sd_bus_reply_method_return(message, NULL);
}

static int run_kill(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        const char *signame = NULL;
        Manager *m = userdata;
        Vm *vm;
        int r, sig;

        vm = vm_from_args(m, message, error, &r);
        if (!vm)
                return r;
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
        Manager *m = userdata;
        int r;

        log_info("Reload requested over D-Bus by %s.", strna(sd_bus_message_get_sender(message)));
        r = manager_reload(m, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, BUS_ERROR(CONFIG_INVALID), "%s", reason ?: strerror(-r));
        return sd_bus_reply_method_return(message, NULL);
}

/* A failed shared operation (manager.h) as the D-Bus reply: its error, or r when internal. Consumes *e. */
static int bus_error_from_manager(sd_bus_error *error, ManagerError *e, int r) {
        if (!e->name)
                return r;
        r = bus_error_set_from_varlink(error, e->name, e->parameters);
        manager_error_done(e);
        return r;
}

/* The caller of an operation that answers later (manager.h ManagerCompletion): the request to reply to (when
 * the reply waits for the answer) and the guest's name (for signals). */
typedef struct BusPending {
        Manager *manager;
        sd_bus_message *request;
        char *name;
} BusPending;

static void bus_pending_free(void *userdata) {
        BusPending *p = userdata;

        if (!p)
                return;
        sd_bus_message_unref(p->request);
        free(p->name);
        free(p);
}

static int bus_pending_alloc(Manager *m, sd_bus_message *request, const char *name, BusPending **ret) {
        BusPending *p;

        p = calloc(1, sizeof(BusPending));
        if (!p)
                return -ENOMEM;
        p->manager = m;
        p->name = strdup(name);
        if (!p->name) {
                free(p);
                return -ENOMEM;
        }
        p->request = request ? sd_bus_message_ref(request) : NULL;
        *ret = p;
        return 0;
}

static int bus_pending_new(Manager *m, sd_bus_message *request, const char *name, ManagerCompletion *ret,
                           void (*done)(const char *error, json_object *parameters, void *userdata)) {
        BusPending *p;
        int r;

        r = bus_pending_alloc(m, request, name, &p);
        if (r < 0)
                return r;
        *ret = (ManagerCompletion) { .done = done, .free = bus_pending_free, .userdata = p };
        return 0;
}

static bool dbus_usable(Manager *m) {
        return m->dbus && m->dbus->bus && !m->dbus->disconnected;
}

static void emit_balloon_changed(Manager *m, const char *name) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (!dbus_usable(m) || bus_vm_path(name, &path) < 0)
                return;
        r = sd_bus_emit_properties_changed(m->dbus->bus, path, BUS_VM_INTERFACE, "BalloonTarget", "BalloonActual",
                                           NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for guest %s, ignoring: %m", name);
}

static int run_pin_vcpus(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ json_object *result = NULL;
        const char *map, *emulator;
        ManagerError e = {};
        Manager *m = userdata;
        json_object *vcpus = NULL;
        Vm *vm;
        int r;

        vm = vm_from_args(m, message, error, &r);
        if (!vm)
                return r;
        r = sd_bus_message_read(message, "ss", &map, &emulator);
        if (r < 0)
                return r;
        r = manager_numa_pin_vcpus(m, vm->name, map, isempty(emulator) ? NULL : emulator, &result, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "a{sv}");
        if (r < 0)
                return r;
        (void) json_object_object_get_ex(result, "vcpus", &vcpus);
        for (size_t i = 0; i < json_object_array_length(vcpus); i++) {
                r = bus_message_append_json_dict(reply, json_object_array_get_idx(vcpus, i));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* QEMU answered the balloon command: SetBalloon's reply. */
static void set_balloon_done(int r, const BalloonTargetResult *result, const BalloonErrorInfo *info,
                             void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_json_ json_object *p = NULL;
        ManagerError me = {};
        BusPending *pending = userdata;

        if (r == 0) {
                r = balloon_target_result_to_json(pending->name, result, &p);
                if (r >= 0)
                        r = sd_bus_message_new_method_return(pending->request, &reply);
                if (r >= 0)
                        r = bus_message_append_json_dict(reply, p);
                if (r >= 0)
                        r = sd_bus_send(NULL, reply, NULL);
                if (r < 0)
                        (void) sd_bus_reply_method_errno(pending->request, r, NULL);
                emit_balloon_changed(pending->manager, pending->name);
        } else {
                r = bus_error_from_manager(&e, &me, manager_balloon_error(pending->manager, pending->name, r, info,
                                                                          &me));
                (void) (sd_bus_error_is_set(&e) ? sd_bus_reply_method_error(pending->request, &e)
                                                : sd_bus_reply_method_errno(pending->request, r, NULL));
        }
        bus_pending_free(pending);
}

static int run_set_balloon(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(balloon_error_info_done) BalloonErrorInfo info = {};
        _cleanup_free_ char *requester = NULL;
        BalloonGuestConfig cfg;
        ManagerError e = {};
        Manager *m = userdata;
        BusPending *pending;
        uint64_t target;
        Vm *vm;
        int r;

        vm = vm_from_args(m, message, error, &r);
        if (!vm)
                return r;
        r = sd_bus_message_read(message, "t", &target);
        if (r < 0)
                return r;
        if (target > INT64_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: target_bytes");
        if (asprintf(&requester, "D-Bus by %s", strna(sd_bus_message_get_sender(message))) < 0) {
                requester = NULL;
                return -ENOMEM;
        }
        r = bus_pending_alloc(m, message, vm->name, &pending);
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
        return 1;
}

/* A migration ended: MigrationFinished with the final reply (or the error and its parameters). */
static void migrate_done(const char *error, json_object *parameters, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *s = NULL;
        _cleanup_json_ json_object *p = parameters;
        _cleanup_free_ char *path = NULL;
        BusPending *pending = userdata;
        Manager *m = pending->manager;
        int r;

        if (error)
                (void) bus_error_set_from_varlink(&e, error, p);
        if (!dbus_usable(m))
                goto finish;
        r = bus_vm_path(pending->name, &path);
        if (r >= 0)
                r = sd_bus_message_new_signal(m->dbus->bus, &s, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE,
                                              "MigrationFinished");
        if (r >= 0)
                r = sd_bus_message_append(s, "sos", pending->name, path, error ? strempty(e.name) : "");
        if (r >= 0)
                r = bus_message_append_json_dict(s, p);
        if (r >= 0)
                r = sd_bus_send(m->dbus->bus, s, NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to emit MigrationFinished for guest %s, ignoring: %m", pending->name);
finish:
        bus_pending_free(pending);
}

static int run_migrate_pages(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        ManagerCompletion completion = {};
        ManagerError e = {};
        Manager *m = userdata;
        Vm *vm;
        int r;

        vm = vm_from_args(m, message, error, &r);
        if (!vm)
                return r;
        r = sd_bus_message_read(message, "ss", &req.from, &req.to);
        if (r < 0)
                return r;
        /* The request is not kept: the moves can take long, the reply says they started, MigrationFinished
         * says how they ended. */
        r = bus_pending_new(m, NULL, vm->name, &completion, migrate_done);
        if (r < 0)
                return r;
        r = manager_numa_migrate(m, vm->name, &req, &completion, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);
        return sd_bus_reply_method_return(message, NULL);
}

static int privileged(sd_bus_message *message, Manager *m, BusPrivilegedHandler handler, sd_bus_error *error) {
        return bus_verify_privileged_async(message, m->admin_gid, handler, m, error);
}

static int method_start_vm(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, userdata, run_start, error);
}
static int method_stop_vm(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, userdata, run_stop, error);
}
static int method_restart_vm(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, userdata, run_restart, error);
}
static int method_kill_vm(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, userdata, run_kill, error);
}
static int method_reload(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, userdata, run_reload, error);
}
static int method_pin_vcpus(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, userdata, run_pin_vcpus, error);
}
static int method_set_balloon(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, userdata, run_set_balloon, error);
}
static int method_migrate_pages(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, userdata, run_migrate_pages, error);
}

/* The guest objects' userdata is the Vm; the privileged runs look it up again by path when the credentials
 * are in (the guest may be gone by then). */
static int method_vm_start(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, MANAGER_FROM_VM((Vm *) userdata), run_start, error);
}
static int method_vm_stop(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, MANAGER_FROM_VM((Vm *) userdata), run_stop, error);
}
static int method_vm_restart(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, MANAGER_FROM_VM((Vm *) userdata), run_restart, error);
}
static int method_vm_kill(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, MANAGER_FROM_VM((Vm *) userdata), run_kill, error);
}
static int method_vm_pin_vcpus(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, MANAGER_FROM_VM((Vm *) userdata), run_pin_vcpus, error);
}
static int method_vm_set_balloon(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, MANAGER_FROM_VM((Vm *) userdata), run_set_balloon, error);
}
static int method_vm_migrate_pages(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged(message, MANAGER_FROM_VM((Vm *) userdata), run_migrate_pages, error);
}

/* ---- read-only methods --------------------------------------------------------------------------------- */

static int method_list_vms(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sso)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_vms; i++) {
                _cleanup_free_ char *path = NULL;

                r = bus_vm_path(m->vms[i]->name, &path);
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "(sso)", m->vms[i]->name, vm_state_to_string(m->vms[i]->state),
                                          path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_vm(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *path = NULL;
        const char *name;
        Vm *vm;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        vm = vm_from_request(userdata, message, name, error);
        if (!vm)
                return -ENOENT;
        r = bus_vm_path(vm->name, &path);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, "o", path);
}

static int reply_describe(sd_bus_message *message, Vm *vm) {
        _cleanup_json_ json_object *d = NULL;
        int r;

        r = vm_describe_json(vm, &d);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(message, "s", json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN));
}

static int method_describe_vm(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        const char *name;
        Vm *vm;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        vm = vm_from_request(userdata, message, name, error);
        if (!vm)
                return -ENOENT;
        return reply_describe(message, vm);
}

static int method_vm_describe(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return reply_describe(message, userdata);
}

static int method_get_daemon_status(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        unsigned running = 0;
        int r;

        for (size_t i = 0; i < m->n_vms; i++)
                if (m->vms[i]->state == VM_STATE_RUNNING)
                        running++;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "a{sv}", 10,
                                  "Version", "s", PROJECT_VERSION,
                                  "PID", "u", (uint32_t) getpid(),
                                  "UptimeUSec", "t", now_monotonic() - m->start_usec,
                                  "Status", "s", strempty(m->status),
                                  "ConfigPath", "s", m->config_path,
                                  "VarlinkAddress", "s", strempty(m->varlink_address),
                                  "LogLevel", "s", log_level_to_string(log_get_max_level()),
                                  "AdminGroup", "s", strempty(m->config.admin_group),
                                  "Guests", "u", (uint32_t) m->n_vms,
                                  "GuestsRunning", "u", (uint32_t) running);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* Replies with the a{sv} of a shared operation's JSON reply (member key of it, or all of it). */
static int reply_json_dict(sd_bus_message *message, json_object *result, const char *key) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        json_object *o = result;
        int r;

        if (key)
                (void) json_object_object_get_ex(result, key, &o);
        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = bus_message_append_json_dict(reply, o);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int get_balloon(sd_bus_message *message, Manager *m, const char *name, sd_bus_error *error) {
        _cleanup_json_ json_object *result = NULL;
        ManagerError e = {};
        int r;

        r = manager_balloon_describe(m, name, &result, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);
        return reply_json_dict(message, result, "balloon");
}

static int method_get_balloon(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        const char *name;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        return get_balloon(message, userdata, name, error);
}

static int method_vm_get_balloon(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;
        return get_balloon(message, MANAGER_FROM_VM(vm), vm->name, error);
}

static int method_get_host_memory(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_json_ json_object *result = NULL, *flat = NULL;
        json_object *sample = NULL;
        ManagerError e = {};
        int r;

        r = manager_metrics_host_memory(userdata, &result, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);
        /* One dictionary: the sample's fields, then the sampler's. */
        (void) json_object_object_get_ex(result, "sample", &sample);
        flat = json_object_new_object();
        if (!flat)
                return -ENOMEM;
        json_object_object_foreach(sample, k1, v1)
                if (json_add(flat, k1, json_object_get(v1)) < 0)
                        return -ENOMEM;
        json_object_object_foreach(result, k2, v2)
                if (!streq(k2, "sample") && json_add(flat, k2, json_object_get(v2)) < 0)
                        return -ENOMEM;
        return reply_json_dict(message, flat, NULL);
}

/* ---- properties ---------------------------------------------------------------------------------------- */

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PROJECT_VERSION);
}

static int property_get_status(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "s", strempty(m->status));
}

static int property_get_guests(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) m->n_vms);
}

static const VmSpec *vm_effective_spec(const Vm *vm) {
        return vm->running_spec && vm_is_active(vm) ? vm->running_spec : vm->spec;
}

static int property_get_vm(sd_bus *bus, const char *path, const char *interface, const char *property,
                           sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Vm *vm = userdata;

        if (streq(property, "Name"))
                return sd_bus_message_append(reply, "s", vm->name);
        if (streq(property, "State"))
                return sd_bus_message_append(reply, "s", vm_state_to_string(vm->state));
        if (streq(property, "StateReason"))
                return sd_bus_message_append(reply, "s", strempty(vm->reason));
        if (streq(property, "StateSinceRealtimeUSec"))
                return sd_bus_message_append(reply, "t", vm->state_since_realtime);
        if (streq(property, "Pid"))
                return sd_bus_message_append(reply, "u", (uint32_t) (vm_is_active(vm) ? vm->pid : 0));
        if (streq(property, "Restarts"))
                return sd_bus_message_append(reply, "u", (uint32_t) vm->restarts);
        if (streq(property, "VCPUs"))
                return sd_bus_message_append(reply, "u", (uint32_t) vm_effective_spec(vm)->vcpus);
        if (streq(property, "MemoryBytes"))
                return sd_bus_message_append(reply, "t", vm_effective_spec(vm)->memory_bytes);
        if (streq(property, "Autostart"))
                return sd_bus_message_append(reply, "b", vm->spec->autostart);
        if (streq(property, "Transient"))
                return sd_bus_message_append(reply, "b", vm->transient);
        if (streq(property, "Source"))
                return sd_bus_message_append(reply, "s", strempty(vm->source));
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
        SD_BUS_PROPERTY("Status", "s", property_get_status, 0, 0),
        SD_BUS_PROPERTY("Guests", "u", property_get_guests, 0, 0),
        SD_BUS_METHOD_WITH_NAMES("ListVMs", "", , "a(sso)", SD_BUS_PARAM(vms), method_list_vms,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetVM", "s", SD_BUS_PARAM(name), "o", SD_BUS_PARAM(path), method_get_vm,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("DescribeVM", "s", SD_BUS_PARAM(name), "s", SD_BUS_PARAM(json),
                                 method_describe_vm, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("StartVM", "s", SD_BUS_PARAM(name), "", , method_start_vm,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("StopVM", "s", SD_BUS_PARAM(name), "", , method_stop_vm, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("RestartVM", "s", SD_BUS_PARAM(name), "", , method_restart_vm,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("KillVM", "ss", SD_BUS_PARAM(name) SD_BUS_PARAM(signal), "", , method_kill_vm,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Reload", "", "", method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetDaemonStatus", "", , "a{sv}", SD_BUS_PARAM(status), method_get_daemon_status,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("PinVCPUs", "sss", SD_BUS_PARAM(name) SD_BUS_PARAM(map) SD_BUS_PARAM(emulator),
                                 "aa{sv}", SD_BUS_PARAM(vcpus), method_pin_vcpus, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("SetBalloon", "st", SD_BUS_PARAM(name) SD_BUS_PARAM(target_bytes), "a{sv}",
                                 SD_BUS_PARAM(result), method_set_balloon, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetBalloon", "s", SD_BUS_PARAM(name), "a{sv}", SD_BUS_PARAM(balloon),
                                 method_get_balloon, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("MigratePages", "sss", SD_BUS_PARAM(name) SD_BUS_PARAM(from) SD_BUS_PARAM(to), "", ,
                                 method_migrate_pages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetHostMemory", "", , "a{sv}", SD_BUS_PARAM(memory), method_get_host_memory,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_NAMES("StateChanged", "sosss",
                                 SD_BUS_PARAM(name) SD_BUS_PARAM(vm) SD_BUS_PARAM(state) SD_BUS_PARAM(previous_state)
                                 SD_BUS_PARAM(reason), 0),
        SD_BUS_SIGNAL_WITH_NAMES("MigrationFinished", "sosa{sv}",
                                 SD_BUS_PARAM(name) SD_BUS_PARAM(vm) SD_BUS_PARAM(error) SD_BUS_PARAM(result), 0),
        SD_BUS_VTABLE_END,
};

static const sd_bus_vtable vm_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateReason", "s", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateSinceRealtimeUSec", "t", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Pid", "u", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Restarts", "u", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("VCPUs", "u", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemoryBytes", "t", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Autostart", "b", property_get_vm, 0, 0),
        SD_BUS_PROPERTY("Transient", "b", property_get_vm, 0, 0),
        SD_BUS_PROPERTY("Source", "s", property_get_vm, 0, 0),
        SD_BUS_PROPERTY("BalloonTarget", "t", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BalloonActual", "t", property_get_vm, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD("Start", "", "", method_vm_start, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Stop", "", "", method_vm_stop, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD("Restart", "", "", method_vm_restart, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Kill", "s", SD_BUS_PARAM(signal), "", , method_vm_kill, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("Describe", "", , "s", SD_BUS_PARAM(json), method_vm_describe,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("PinVCPUs", "ss", SD_BUS_PARAM(map) SD_BUS_PARAM(emulator), "aa{sv}",
                                 SD_BUS_PARAM(vcpus), method_vm_pin_vcpus, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("SetBalloon", "t", SD_BUS_PARAM(target_bytes), "a{sv}", SD_BUS_PARAM(result),
                                 method_vm_set_balloon, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("GetBalloon", "", , "a{sv}", SD_BUS_PARAM(balloon), method_vm_get_balloon,
                                 SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_NAMES("MigratePages", "ss", SD_BUS_PARAM(from) SD_BUS_PARAM(to), "", ,
                                 method_vm_migrate_pages, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int vm_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                          sd_bus_error *error) {
        _cleanup_free_ char *name = NULL;
        Manager *m = userdata;
        Vm *vm;
        int r;

        r = bus_vm_name_from_path(path, &name);
        if (r <= 0)
                return 0;
        vm = manager_find_vm(m, name);
        if (!vm)
                return 0;
        *found = vm;
        return 1;
}

static int vm_node_enumerator(sd_bus *bus, const char *prefix, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        char **l;

        l = calloc(m->n_vms + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_vms; i++) {
                int r = bus_vm_path(m->vms[i]->name, &l[i]);
                if (r < 0) {
                        strv_free(l);
                        return r;
                }
        }
        *nodes = l;
        return 0;
}

/* ---- events -------------------------------------------------------------------------------------------- */

static void dbus_on_vm_state(Vm *vm, VmState old_state, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ char *path = NULL;
        int r;

        if (!m->dbus || !m->dbus->bus || m->dbus->disconnected)
                return;
        r = bus_vm_path(vm->name, &path);
        if (r < 0)
                return;

        r = sd_bus_emit_properties_changed(m->dbus->bus, path, BUS_VM_INTERFACE, "State", "StateReason",
                                           "StateSinceRealtimeUSec", "Pid", "Restarts", "VCPUs", "MemoryBytes",
                                           "BalloonTarget", "BalloonActual", NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged for guest %s, ignoring: %m", vm->name);
        r = sd_bus_emit_signal(m->dbus->bus, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, "StateChanged", "sosss",
                               vm->name, path, vm_state_to_string(vm->state), vm_state_to_string(old_state),
                               strempty(vm->reason));
        if (r < 0)
                log_debug_errno(r, "Failed to emit StateChanged for guest %s, ignoring: %m", vm->name);
}

/* QEMU's BALLOON_CHANGE: the balloon module (whose watch runs first) has the new size. */
static void dbus_on_vm_event(Vm *vm, const QmpEvent *event, void *userdata) {
        if (event->type == QMP_EVENT_BALLOON_CHANGE)
                emit_balloon_changed(userdata, vm->name);
}

static int on_name_acquired(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;
        const sd_bus_error *e;

        if (!m->dbus)
                return 0;
        e = sd_bus_message_get_error(reply);
        if (e) {
                log_warning("Failed to acquire the bus name %s on %s, serving on the unique name only: %s", BUS_NAME,
                            m->dbus->address, strna(e->message));
                return 0;
        }
        m->dbus->name_acquired = true;
        log_info("Serving D-Bus name %s on %s.", BUS_NAME, m->dbus->address);
        return 0;
}

static int on_disconnected(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        Manager *m = userdata;

        if (m->dbus && !m->dbus->disconnected) {
                m->dbus->disconnected = true;
                log_warning("Lost the connection to D-Bus (%s); D-Bus stays unavailable until memvisord restarts, "
                            "varlink is unaffected.", m->dbus->address);
        }
        return 0;
}

static int dbus_connect(Manager *m, ManagerDbus *d) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        (void) sd_bus_set_description(bus, "memvisord");
        if (m->config.dbus_address)
                r = sd_bus_set_address(bus, m->config.dbus_address);
        else {
                const char *e = secure_getenv("DBUS_SYSTEM_BUS_ADDRESS");
                r = sd_bus_set_address(bus, e ?: "unix:path=/run/dbus/system_bus_socket");
        }
        if (r < 0)
                return r;
        r = sd_bus_set_bus_client(bus, true);
        if (r < 0)
                return r;
        /* connect() on an AF_UNIX socket does not wait; authentication and Hello run on the event loop. */
        r = sd_bus_start(bus);
        if (r < 0)
                return r;

        d->bus = TAKE_PTR(bus);
        return 0;
}

int manager_dbus_start(Manager *m) {
        _cleanup_free_ ManagerDbus *d = NULL;
        int r;

        if (m->config.dbus_disabled) {
                log_debug("D-Bus disabled by [DBus] Address=none.");
                return 0;
        }

        d = calloc(1, sizeof(*d));
        if (!d)
                return log_oom();
        d->address = strdup(m->config.dbus_address ?: (secure_getenv("DBUS_SYSTEM_BUS_ADDRESS") ?: "the system bus"));
        if (!d->address)
                return log_oom();

        r = dbus_connect(m, d);
        if (r < 0) {
                /* Optional: say so once and go on with varlink only. */
                log_notice_errno(r, "D-Bus not available (%s: %m), continuing without the D-Bus interface.",
                                 d->address);
                free(d->address);
                return 0;
        }

        r = sd_bus_add_object_vtable(d->bus, NULL, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, manager_vtable, m);
        if (r >= 0)
                r = sd_bus_add_fallback_vtable(d->bus, NULL, BUS_VM_PREFIX, BUS_VM_INTERFACE, vm_vtable,
                                               vm_object_find, m);
        if (r >= 0)
                r = sd_bus_add_node_enumerator(d->bus, NULL, BUS_VM_PREFIX, vm_node_enumerator, m);
        if (r >= 0)
                r = sd_bus_add_object_manager(d->bus, NULL, BUS_MANAGER_PATH);
        if (r >= 0)
                r = sd_bus_match_signal_async(d->bus, NULL, "org.freedesktop.DBus.Local", NULL,
                                              "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, NULL, m);
        if (r < 0)
                goto fail;
        r = sd_bus_attach_event(d->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                goto fail;
        r = sd_bus_request_name_async(d->bus, NULL, BUS_NAME, 0, on_name_acquired, m);
        if (r < 0)
                goto fail;
        r = vm_context_add_state_watch(&m->vmctx, dbus_on_vm_state, m);
        if (r < 0)
                goto fail;
        r = vm_context_add_event_watch(&m->vmctx, dbus_on_vm_event, m);
        if (r < 0)
                goto fail;

        m->dbus = TAKE_PTR(d);
        return 0;

fail:
        log_warning_errno(r, "Failed to set up the D-Bus interface on %s, continuing without it: %m", d->address);
        d->bus = sd_bus_flush_close_unref(d->bus);
        free(d->address);
        return 0;
}

void manager_dbus_done(Manager *m) {
        if (!m->dbus)
                return;
        /* Queued signals (the last state changes) go out before we close. */
        if (m->dbus->bus && !m->dbus->disconnected)
                (void) sd_bus_flush(m->dbus->bus);
        m->dbus->bus = sd_bus_close_unref(m->dbus->bus);
        free(m->dbus->address);
        m->dbus = mfree(m->dbus);
}

bool manager_dbus_connected(Manager *m) {
        return m->dbus && m->dbus->bus && !m->dbus->disconnected;
}
