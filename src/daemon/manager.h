/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "balloon/balloon-controller.h"
#include "config/config.h"
#include "basic/macro.h"
#include "daemon/manager-errors.h"
#include "varlink/varlink.h"
#include "vm/vm-table.h"
#include "vm/vm.h"

/* MESSAGE_IDs of notable journal entries (documented in memvisord(8)). */
#define MESSAGE_ID_DAEMON_STARTED "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a60"
#define MESSAGE_ID_DAEMON_STOPPED "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a61"
#define MESSAGE_ID_CONFIG_RELOADED "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a62"
#define MESSAGE_ID_CONFIG_INVALID "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a63"

/* Feature modules, each owning its state behind an opaque pointer (see the manager-*.c files). */
typedef struct ManagerMetrics ManagerMetrics;   /* manager-metrics.c: sampler, metrics API, exporter */
typedef struct ManagerBalloon ManagerBalloon;   /* manager-balloon-guests.c: the balloon policy */
typedef struct ManagerNuma ManagerNuma;         /* manager-numa.c: pinning, placement, page migration */
typedef struct BusConnection BusConnection;     /* src/dbus; manager-dbus.c: io.memvisor.Manager1 (optional) */
typedef struct ManagerGuest ManagerGuest;       /* manager-guest.h: a guest's balloon and NUMA state, by name */
typedef struct ManagerPersist ManagerPersist;   /* manager-persist.c: saving and loading the guests' records */
typedef struct ManagerExperiments ManagerExperiments; /* manager-experiment.c: experiments, STATE_DIR/experiments */
typedef struct LayoutRequest LayoutRequest;     /* manager-layout.c: a DescribeMemoryLayout call in flight */
typedef struct HostProbe HostProbe;             /* manager-host.c: a GetHostInfo call asking QEMU */
#define MANAGER_HOST_PROBES_MAX 4

typedef struct Manager {
        sd_event *event;

        char *config_path;
        ConfigOverrides overrides;
        DaemonConfig config;
        bool config_file_found;
        gid_t admin_gid;                /* (gid_t) -1: none */

        VarlinkServer *varlink;
        char *varlink_address;          /* the path we bound, or "socket-activated" */
        VarlinkInterface interface;     /* io.memvisor.Manager */
        VarlinkMethod *methods;

        uint64_t start_usec;            /* CLOCK_MONOTONIC */
        char *status;
        bool reloading;

        /* Guests (manager-vms.c): src/vm's table (vm/vm-table.h), sorted by name. */
        VmContext vmctx;
        bool vmctx_ready;
        VmTable guests;
        sd_event_source *gc_source;     /* forgets transient guests once they ended */
        sd_event_source *agent_timer;   /* manager-agent.c: GuestCountersIntervalSec= */
        uint64_t agent_interval_usec;   /* … the interval it runs at */
        struct AgentSample *agent_samples; /* manager-agent.c: guest counter readings in flight */
        VarlinkConnection **subscribers; /* SubscribeEvents calls in progress */
        size_t n_subscribers;

        ManagerGuest **records;         /* manager-guest.h: each guest's balloon and NUMA state, sorted by name */
        size_t n_records;
        ManagerPersist *persist;        /* manager-persist.c: the records kept over restarts, STATE_DIR/guests */
        ManagerExperiments *experiments;
        ManagerMetrics *metrics;
        ManagerBalloon *balloon;
        ManagerNuma *numa;
        BusConnection *dbus;            /* NULL: no bus (or [DBus] Address=none) */
        bool stopping_guests;           /* StopGuestsOnExit=: exit once every guest has stopped */
        int lock_fds[2];                /* flock(2) on the runtime and state directories: one daemon each */
        LayoutRequest **layouts;        /* manager-layout.c: DescribeMemoryLayout calls in flight */
        size_t n_layouts;
        HostProbe *host_probes[MANAGER_HOST_PROBES_MAX]; /* manager-host.c: GetHostInfo calls in flight */
} Manager;

/* Takes ownership of config_path and overrides. */
int manager_new(Manager **ret, char *config_path, ConfigOverrides *overrides);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Loads the configuration; fails (logged as file:line) when it is invalid. */
int manager_load_config(Manager *m);
/* Binds or adopts sockets, sets up signals and the watchdog. */
int manager_start(Manager *m);
int manager_run(Manager *m);

/* Re-reads the config; on error keeps the old one. *ret_error (optional) says what was wrong. */
int manager_reload(Manager *m, char **ret_error);

void manager_set_status(Manager *m, const char *format, ...) _printf_(2, 3);

/* manager-varlink.c */
int manager_varlink_register(Manager *m);

/* manager-vms.c */
#define MANAGER_MAX_SUBSCRIBERS 64U
#define MANAGER_MAX_VMS VM_TABLE_MAX
/* Soft RLIMIT_NOFILE memvisord raises itself to: two fds per guest (QMP socket, pidfd), the varlink, D-Bus
 * and exporter connections, with room to spare. */
#define MANAGER_RLIMIT_NOFILE 16384U

int manager_vms_start(Manager *m);              /* load definitions, re-adopt, autostart */
int manager_vms_reload(Manager *m);             /* re-read VMDirectory */
void manager_vms_done(Manager *m);
Vm *manager_find_vm(Manager *m, const char *name);
const VarlinkMethod *manager_vm_methods(void);

/* Feature modules: start after the guest table is loaded, done before it is freed; their varlink methods
 * join io.memvisor.Manager. */
int manager_metrics_start(Manager *m);
void manager_metrics_done(Manager *m);
const VarlinkMethod *manager_metrics_methods(void);
/* Keeps a socket-activated exporter socket (fd name "exporter") for manager_metrics_start(); takes fd. */
int manager_metrics_adopt_exporter_fd(Manager *m, int fd);
/* memvisord --list-metrics: the metric families as markdown (docs/metrics.md). */
int manager_metrics_list(void);
int manager_balloon_start(Manager *m);
void manager_balloon_done(Manager *m);
const VarlinkMethod *manager_balloon_methods(void);
int manager_numa_start(Manager *m);
void manager_numa_done(Manager *m);
const VarlinkMethod *manager_numa_methods(void);
const VarlinkMethod *manager_agent_methods(void);
/* manager-monitor.c, manager-layout.c: ExecuteMonitorCommand and DescribeMemoryLayout; done abandons the layout
 * calls in flight. */
const VarlinkMethod *manager_monitor_methods(void);
void manager_layout_done(Manager *m);
/* manager-dirty-rate.c: MeasureDirtyRate; start watches the guests' states (leaving running ends a measurement),
 * done ends the measurements in flight without answering. */
const VarlinkMethod *manager_dirty_rate_methods(void);
int manager_dirty_rate_start(Manager *m);
void manager_dirty_rate_done(Manager *m);
/* manager-hotplug.c: SetHotplugMemory; start watches the guests (leaving running ends a call, a
 * MEMORY_DEVICE_SIZE_CHANGE reads the size at once), done ends the calls in flight without answering. */
const VarlinkMethod *manager_hotplug_methods(void);
int manager_hotplug_start(Manager *m);
void manager_hotplug_done(Manager *m);
/* manager-host.c: GetHostInfo (varlink, D-Bus): /dev/kvm and, per confidential guest kind, what the host, the
 * QEMU binary (`-object help`, run in a worker thread) and this build support, each "no" with its reason.
 * completion (always consumed) gets {"kvm", "kvmReason", "qemuBinary", "confidential": [...]}; Busy while
 * MANAGER_HOST_PROBES_MAX calls are in flight. done abandons them. */
const VarlinkMethod *manager_host_methods(void);
void manager_host_done(Manager *m);
/* manager-console.c: GetConsole. */
const VarlinkMethod *manager_console_methods(void);
/* manager-agent.c: start watches the agents and arms the guest counters timer; apply_config (re)arms it from
 * the configuration; done stops it. */
int manager_agent_start(Manager *m);
void manager_agent_apply_config(Manager *m);
void manager_agent_done(Manager *m);
void manager_update_status(Manager *m);
/* manager-guest.c: drops the records of guests no longer defined; frees them all (before the modules' done). */
void manager_guests_prune(Manager *m);
void manager_guests_done(Manager *m);

/* ---- operations shared by the transports (varlink in the manager-*.c modules, D-Bus in manager-dbus.c) ----
 *
 * An operation fails with a negative errno; when *ret_error has a name the failure is the caller's (reply
 * with that error), otherwise it is internal. Error names are those of the varlink interface
 * (io.memvisor.Manager.X, org.varlink.service.InvalidParameter); D-Bus gives them their D-Bus names through
 * the error table (manager_error_bus_from_varlink()). Replies and error parameters are the varlink JSON objects. */
typedef struct ManagerError {
        const char *name;               /* static string; NULL: no error set */
        json_object *parameters;        /* owned; may be NULL */
} ManagerError;

#define MANAGER_ERROR_INVALID_PARAMETER "org.varlink.service.InvalidParameter"

/* Sets *e (taking parameters, NULL for none) and returns error (a negative errno). */
static inline int manager_error_set(ManagerError *e, int error, const char *name, json_object *parameters) {
        if (e) {
                json_object_put(e->parameters);
                *e = (ManagerError) { .name = name, .parameters = parameters };
        } else
                json_object_put(parameters);
        return error;
}

static inline int manager_error_invalid_parameter(ManagerError *e, const char *parameter) {
        json_object *p = json_object_new_object();

        if (!p || json_object_object_add(p, "parameter", json_object_new_string(parameter)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, -EINVAL, MANAGER_ERROR_INVALID_PARAMETER, p);
}

static inline void manager_error_done(ManagerError *e) {
        json_object_put(e->parameters);
        *e = (ManagerError) {};
}

/* The varlink reply of a failed operation r: its error, or r itself when internal. Consumes *e. */
static inline int manager_error_varlink_reply(VarlinkConnection *c, ManagerError *e, int r) {
        if (!e->name)
                return r;
        r = varlink_error(c, e->name, e->parameters);
        *e = (ManagerError) {};
        return r;
}

/* Whoever waits for an operation that answers later (a QMP round trip, a page migration), whatever the
 * transport: done() is called once, with the reply (error NULL) or an error name, and takes parameters.
 * free() releases userdata when the operation goes away without an answer (the daemon shuts down). */
typedef struct ManagerCompletion {
        void (*done)(const char *error, json_object *parameters, void *userdata);
        void (*free)(void *userdata);
        void *userdata;
} ManagerCompletion;

static inline bool manager_completion_pending(const ManagerCompletion *c) {
        return c->done;
}

static inline void manager_completion_finish(ManagerCompletion *c, const char *error, json_object *parameters) {
        ManagerCompletion copy = *c;

        *c = (ManagerCompletion) {};
        if (copy.done)
                copy.done(error, parameters, copy.userdata);
        else
                json_object_put(parameters);
}

static inline void manager_completion_drop(ManagerCompletion *c) {
        if (c->free)
                c->free(c->userdata);
        *c = (ManagerCompletion) {};
}

/* manager-varlink.c: the completion of a varlink call: done() answers c (reply or error), free() drops it; holds a
 * reference on c until then. userdata is c, for progress callbacks that notify it. */
ManagerCompletion manager_varlink_completion(VarlinkConnection *c);

/* manager-numa.c: PinVCPUs. map as VCPUAffinity= ("0:0-1 1:2"), emulator optional; *ret_reply is the
 * varlink reply ({"vcpus": [...]}). Synchronous: sched_setaffinity only. */
int manager_numa_pin_vcpus(Manager *m, const char *name, const char *map, const char *emulator,
                           json_object **ret_reply, ManagerError *ret_error);
/* manager-numa-migrate.c: MigratePages (src/numa's MigrationRequest; the guest's fields are filled in here).
 * Returns 0 once the migration started; completion (always consumed) gets the final reply (the varlink
 * method's) or the error when it ends. */
typedef struct MigrationRequest MigrationRequest;
int manager_numa_migrate(Manager *m, const char *name, MigrationRequest *req, ManagerCompletion *completion,
                         ManagerError *ret_error);
/* manager-agent.c: the guest agent operations (src/qga's qga-ops.h) of a running guest; completion (always
 * consumed) gets the varlink reply ({"info"}, {"counters"}, {"result"}, {"bytes"}) or the error. caller ("varlink
 * uid 0") is logged with every exec and copy. */
typedef struct QgaExecRequest QgaExecRequest;
int manager_agent_info(Manager *m, const char *name, ManagerCompletion *completion, ManagerError *ret_error);
int manager_agent_counters(Manager *m, const char *name, ManagerCompletion *completion, ManagerError *ret_error);
int manager_agent_exec(Manager *m, const char *name, const QgaExecRequest *req, const char *caller,
                       ManagerCompletion *completion, ManagerError *ret_error);
int manager_agent_copy(Manager *m, const char *name, const void *data, size_t size, const char *dest, mode_t mode,
                       const char *caller, ManagerCompletion *completion, ManagerError *ret_error);
/* manager-guest.c, manager-balloon-guests.c: the typed balloon API (balloon-controller.h) for the transports.
 * The controller of a guest by name, NULL while it never ran with a balloon device (the API's calls take NULL as "not running");
 * what the controller is told about a guest (its running configuration, or its definition); whether the
 * host-pressure policy moves the guest's balloon (Policy=, [Balloon] Policy=); the policy's host state. */
BalloonController *manager_balloon_controller(Manager *m, const char *name);
void manager_balloon_guest_config(Manager *m, const Vm *vm, BalloonGuestConfig *ret);
bool manager_balloon_policy_enabled(Manager *m, const Vm *vm);
BalloonHostState manager_balloon_host_state(Manager *m);
/* manager-balloon.c: the API error of a typed balloon call's result r (> 0) about guest name, as the varlink error; r < 0 is
 * returned as is. */
int manager_balloon_error(Manager *m, const char *name, int r, const BalloonErrorInfo *info, ManagerError *ret_error);
/* manager-balloon.c: GetBalloon's reply ({"balloon": {...}}). */
int manager_balloon_describe(Manager *m, const char *name, json_object **ret_reply, ManagerError *ret_error);
/* manager-metrics.c: GetHostMemory's reply (the last snapshot, not a new /proc read). */
int manager_metrics_host_memory(Manager *m, json_object **ret_reply, ManagerError *ret_error);
/* manager-metrics.c: the last host sample (NULL while there is none), the one reading of host memory the balloon
 * policy and the metrics share. */
typedef struct HostSample HostSample;
const HostSample *manager_metrics_host(Manager *m);

/* manager-dbus.c: connects to the bus (system bus, $DBUS_SYSTEM_BUS_ADDRESS or [DBus] Address=); a missing
 * bus is logged once and is not an error. Start after manager_vms_start(). */
int manager_dbus_start(Manager *m);
void manager_dbus_done(Manager *m);
bool manager_dbus_connected(Manager *m);
/* The ExperimentProgress signal (nothing without a bus): a step of experiment id on guest, state running at the
 * start and after each iteration, then completed, failed or cancelled with the reason. */
void manager_dbus_experiment_progress(Manager *m, const char *id, const char *guest, uint64_t done, uint64_t planned,
                                      const char *state, const char *reason);

/* manager-dirty-rate.c: MeasureDirtyRate (src/qmp's DirtyRateParams). Returns 0 once the measurement started;
 * completion (always consumed) gets the varlink reply ({"dirtyRate": {...}}) or the error when it ends. progress
 * (optional) is called with completion's userdata while QEMU measures. caller ("varlink uid 0") is logged. The
 * guest's last measured rate for the metrics: false while there is none. */
typedef struct DirtyRateParams DirtyRateParams;
typedef struct ManagerDirtyRateCall ManagerDirtyRateCall;
typedef void (*ManagerDirtyRateProgress)(uint64_t elapsed_usec, uint64_t period_usec, void *userdata);
int manager_dirty_rate_measure(Manager *m, const char *name, const DirtyRateParams *params, const char *caller,
                               ManagerDirtyRateProgress progress, ManagerCompletion *completion,
                               ManagerError *ret_error);
bool manager_dirty_rate_metrics(Manager *m, const char *name, double *ret_bytes_per_sec, uint64_t *ret_realtime_usec);
/* manager-host.c: GetHostInfo (above). */
int manager_host_info(Manager *m, ManagerCompletion *completion, ManagerError *ret_error);
/* manager-console.c: GetConsole (varlink, D-Bus): boot (0: the current one, -1 the one before, or a boot number)
 * of guest name, its last lines (0: all within the reply bound) when offset is -1, else from the byte offset on.
 * *ret_chunk gets the bytes, *ret_info the reply without them ({boot, first, last, active, start, end, size,
 * truncated}); errors NoSuchVM, NoSuchBoot, InvalidParameter (lines, offset). */
typedef struct ConsoleChunk ConsoleChunk;
int manager_console_get(Manager *m, const char *name, int64_t boot, int64_t lines, int64_t offset,
                        ConsoleChunk *ret_chunk, json_object **ret_info, ManagerError *ret_error);
/* manager-hotplug.c: SetHotplugMemory: sets the virtio-mem device's requested-size to size; completion (always
 * consumed) gets {"hotplug": {name, requestedBytes, sizeBytes, maximumBytes, elapsedUSec}} once QEMU reports the
 * size (with wait: once it equals size, within timeout_usec, 0: 60 s) or the error. progress (optional, with
 * wait) is called with completion's userdata for each new size. */
typedef struct ManagerHotplugCall ManagerHotplugCall;
typedef void (*ManagerHotplugProgress)(uint64_t requested, uint64_t size, uint64_t elapsed_usec, void *userdata);
int manager_hotplug_set(Manager *m, const char *name, uint64_t size, bool wait, uint64_t timeout_usec,
                        const char *caller, ManagerHotplugProgress progress, ManagerCompletion *completion,
                        ManagerError *ret_error);
