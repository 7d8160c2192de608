/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"
#include "macro.h"
#include "varlink.h"
#include "vm.h"

/* MESSAGE_IDs of notable journal entries (documented in memvisord(8)). */
#define MESSAGE_ID_DAEMON_STARTED "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a60"
#define MESSAGE_ID_DAEMON_STOPPED "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a61"
#define MESSAGE_ID_CONFIG_RELOADED "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a62"
#define MESSAGE_ID_CONFIG_INVALID "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a63"

/* Feature modules, each owning its state behind an opaque pointer (see the manager-*.c files). */
typedef struct ManagerMetrics ManagerMetrics;   /* manager-metrics.c: sampler, metrics API, exporter */
typedef struct ManagerBalloon ManagerBalloon;   /* manager-balloon.c: balloon control, schedules, policy */
typedef struct ManagerNuma ManagerNuma;         /* manager-numa.c: pinning, placement, page migration */
typedef struct ManagerDbus ManagerDbus;         /* manager-dbus.c: io.memvisor.Manager1 on D-Bus (optional) */

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

        /* Guests (manager-vms.c), sorted by name. */
        VmContext vmctx;
        bool vmctx_ready;
        Vm **vms;
        size_t n_vms;
        sd_event_source *gc_source;     /* forgets transient guests once they ended */
        VarlinkConnection **subscribers; /* SubscribeEvents calls in progress */
        size_t n_subscribers;

        ManagerMetrics *metrics;
        ManagerBalloon *balloon;
        ManagerNuma *numa;
        ManagerDbus *dbus;              /* NULL: no bus (or [DBus] Address=none) */
        bool stopping_guests;           /* StopGuestsOnExit=: exit once every guest has stopped */
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
#define MESSAGE_ID_VM_DEFINITION_INVALID "MESSAGE_ID=3a6e2f1b9c0d4e8f8b7a6c5d4e3f2a17"
#define MANAGER_MAX_SUBSCRIBERS 64U
#define MANAGER_MAX_VMS 1024U

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
void manager_update_status(Manager *m);

/* manager-dbus.c: connects to the bus (system bus, $DBUS_SYSTEM_BUS_ADDRESS or [DBus] Address=); a missing
 * bus is logged once and is not an error. Start after manager_vms_start(). */
int manager_dbus_start(Manager *m);
void manager_dbus_done(Manager *m);
bool manager_dbus_connected(Manager *m);
