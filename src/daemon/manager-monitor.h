/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Monitor passthrough (manager-monitor.c) and the memory layout (manager-layout.c), for the varlink methods
 * there and the D-Bus ones in manager-dbus.c. */

#include <systemd/sd-bus.h>

#include "daemon/manager.h"

typedef struct MonitorRequest {
        const char *name;               /* the guest */
        const char *command;            /* a QMP command name, or an HMP line with hmp */
        json_object *arguments;         /* QMP only: an object, or NULL; borrowed */
        bool hmp, force;
        const char *caller;             /* "varlink uid 1000", "D-Bus :1.42": logged */
        const char *vm_field, *uid_field; /* journal fields "VM=…", "CALLER_UID=…" (or another "KEY=value") */
} MonitorRequest;

/* ExecuteMonitorCommand. completion (always consumed) gets {"reply": QEMU's return value} (QMP) or
 * {"output": "…"} (HMP), or MonitorCommandFailed with QEMU's error class and description, or
 * MonitorMessageTooLarge for a reply over QMP_MONITOR_MAX_REPLY. Refusals and bad requests fail at once. */
int manager_monitor_execute(Manager *m, const MonitorRequest *req, ManagerCompletion *completion,
                            ManagerError *ret_error);

/* DescribeMemoryLayout. completion (always consumed) gets {"layout": {...}} (the IDL's MemoryLayout). */
int manager_layout_describe(Manager *m, const char *name, ManagerCompletion *completion, ManagerError *ret_error);

/* Shared by both files: the running guest (NoSuchVM, InvalidState), and the errors. */
int manager_monitor_client(Manager *m, const char *name, Vm **ret, ManagerError *e);
int manager_monitor_fail_too_large(ManagerError *e, const char *name, const char *what, size_t bytes, size_t limit);
/* error -EIO: QEMU's error (class, description); otherwise -ETIMEDOUT, -ECONNRESET, … */
int manager_monitor_fail_command(ManagerError *e, const char *name, const char *command, int error,
                                 const char *error_class, const char *desc);
int manager_layout_vl_describe(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata);

/* manager-dbus-monitor.c: the D-Bus methods (sd_bus_message_handler_t, userdata the Manager). */
int manager_dbus_execute_monitor_command(sd_bus_message *message, void *userdata, sd_bus_error *error);
int manager_dbus_describe_memory_layout(sd_bus_message *message, void *userdata, sd_bus_error *error);
