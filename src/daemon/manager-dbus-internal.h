/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the files of io.memvisor.Manager1 (manager-dbus.c and the manager-dbus-*.c it lists in its vtable). */

#include <stdio.h>

#include "basic/macro.h"
#include "daemon/manager-errors.h"
#include "daemon/manager.h"
#include "dbus/bus-util.h"

#define BUS_NAME "io.memvisor.Manager1"
#define BUS_MANAGER_PATH "/io/memvisor/Manager1"
#define BUS_MANAGER_INTERFACE "io.memvisor.Manager1"
#define BUS_VM_PREFIX "/io/memvisor/Manager1/vm"
#define BUS_VM_INTERFACE "io.memvisor.VM1"

/* The D-Bus error of a failed operation r: its API error, or r itself when internal. Consumes *e. */
static inline int bus_error_from_manager(sd_bus_error *error, ManagerError *e, int r) {
        if (!e->name)
                return r;
        r = bus_error_set_from_varlink(error, manager_error_bus_from_varlink(e->name), e->name, e->parameters);
        manager_error_done(e);
        return r;
}

/* "D-Bus :1.42", for the log. */
static inline char *bus_caller(sd_bus_message *message) {
        char *s = NULL;

        if (asprintf(&s, "D-Bus %s", strna(sd_bus_message_get_sender(message))) < 0)
                return NULL;
        return s;
}

/* manager-dbus-console.c: GetConsole (s name, x boot, t lines, x offset) → (ay data, a{sv} console). */
int manager_dbus_get_console(sd_bus_message *message, void *userdata, sd_bus_error *error);
/* manager-dbus-compare.c: CompareExperiments (s a, s b, as counters, t seed, u resamples) → s: the comparison as
 * JSON text (seed 0 and resamples 0: the defaults). */
int manager_dbus_compare_experiments(sd_bus_message *message, void *userdata, sd_bus_error *error);
/* manager-dbus-experiment.c */
int method_start_experiment(sd_bus_message *message, void *userdata, sd_bus_error *error);
int method_cancel_experiment(sd_bus_message *message, void *userdata, sd_bus_error *error);
int method_delete_experiment(sd_bus_message *message, void *userdata, sd_bus_error *error);
int method_list_experiments(sd_bus_message *message, void *userdata, sd_bus_error *error);
int method_describe_experiment(sd_bus_message *message, void *userdata, sd_bus_error *error);
