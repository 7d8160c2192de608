/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ExecuteMonitorCommand and DescribeMemoryLayout on io.memvisor.Manager1 (manager-dbus.c's vtable): both
 * privileged, checked asynchronously as the other state-changing methods are; the replies are the varlink
 * replies as JSON text. */
#include <stdio.h>

#include "dbus/bus-object.h"
#include "dbus/bus-util.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-dbus-internal.h"
#include "daemon/manager-monitor.h"

/* The varlink reply (ExecuteMonitorCommand's {"reply"} or {"output"}, DescribeMemoryLayout's {"layout"}) as JSON
 * text, or the error. */
static void monitor_done(const char *error, json_object *parameters, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_json_ json_object *p = parameters;
        BusPending *pending = userdata;
        json_object *layout = NULL;
        int r;

        if (error) {
                r = bus_error_set_from_varlink(&e, manager_error_bus_from_varlink(error), error, p);
                (void) bus_pending_reply_error(pending, &e, r);
        } else {
                (void) json_object_object_get_ex(p, "layout", &layout);
                r = sd_bus_reply_method_return(pending->request, "s",
                                               json_object_to_json_string_ext(layout ?: p, JSON_C_TO_STRING_PLAIN));
                if (r < 0)
                        log_debug_errno(r, "Failed to reply on D-Bus, ignoring: %m");
        }
        bus_pending_free(pending);
}

static int monitor_completion(sd_bus_message *message, const char *name, ManagerCompletion *ret) {
        BusPending *pending;
        int r;

        r = bus_pending_new(message, name, NULL, &pending);
        if (r < 0)
                return r;
        *ret = (ManagerCompletion) { .done = monitor_done, .free = bus_pending_free, .userdata = pending };
        return 0;
}

/* (s name, s command, s arguments: a JSON object or "", b hmp, b force) → s: the reply as JSON text. */
static int run_execute_monitor_command(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_json_ json_object *args = NULL;
        _cleanup_free_ char *caller = NULL, *vm_field = NULL, *sender_field = NULL;
        const char *name, *command, *arguments;
        ManagerCompletion completion;
        ManagerError e = {};
        int hmp, force, r;

        r = sd_bus_message_read(message, "sssbb", &name, &command, &arguments, &hmp, &force);
        if (r < 0)
                return r;
        if (!isempty(arguments) && !json_object_is_type(args = json_tokener_parse(arguments), json_type_object))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: arguments");
        caller = bus_caller(message);
        if (!caller || asprintf(&vm_field, "VM=%s", name) < 0 ||
            asprintf(&sender_field, "DBUS_SENDER=%s", strna(sd_bus_message_get_sender(message))) < 0)
                return -ENOMEM;
        r = monitor_completion(message, name, &completion);
        if (r < 0)
                return r;
        r = manager_monitor_execute(userdata,
                                    &(MonitorRequest) { .name = name, .command = command, .arguments = args,
                                                        .hmp = hmp, .force = force, .caller = caller,
                                                        .vm_field = vm_field, .uid_field = sender_field },
                                    &completion, &e);
        return r < 0 ? bus_error_from_manager(error, &e, r) : 1;
}

int manager_dbus_execute_monitor_command(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return bus_verify_privileged_async(message, m->admin_gid, run_execute_monitor_command, m, error);
}

/* (s name) → s: the layout as JSON text. */
static int run_describe_memory_layout(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        ManagerCompletion completion;
        ManagerError e = {};
        const char *name;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        r = monitor_completion(message, name, &completion);
        if (r < 0)
                return r;
        r = manager_layout_describe(userdata, name, &completion, &e);
        return r < 0 ? bus_error_from_manager(error, &e, r) : 1;
}

int manager_dbus_describe_memory_layout(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return bus_verify_privileged_async(message, m->admin_gid, run_describe_memory_layout, m, error);
}
