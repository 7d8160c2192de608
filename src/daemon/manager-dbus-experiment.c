/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The experiments on io.memvisor.Manager1 (manager-dbus.c's vtable): StartExperiment, CancelExperiment and
 * DeleteExperiment (privileged, checked asynchronously), ListExperiments and DescribeExperiment (open to
 * everybody), and the ExperimentProgress signal. The operations are manager-experiment.c's, shared with varlink. */

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

/* ---- experiments ------------------------------------------------------------------------------------------ */

/* StartExperiment's reply: the id once the first iteration starts (ExperimentProgress tells the rest), or the
 * error. */
static void experiment_started(const char *error, json_object *parameters, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_json_ json_object *p = parameters;
        BusPending *pending = userdata;
        int r;

        if (error) {
                r = bus_error_set_from_varlink(&e, manager_error_bus_from_varlink(error), error, p);
                (void) bus_pending_reply_error(pending, &e, r);
        } else {
                r = sd_bus_reply_method_return(pending->request, "s", strempty(json_get_string(p, "id")));
                if (r < 0)
                        log_debug_errno(r, "Failed to reply to StartExperiment, ignoring: %m");
        }
        bus_pending_free(pending);
}

static int privileged_start_experiment(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_free_ char *caller = NULL;
        ManagerCompletion completion;
        Manager *m = userdata;
        ManagerError e = {};
        BusPending *pending;
        const char *text;
        uint64_t iterations;
        int64_t n;
        int r;

        r = sd_bus_message_read(message, "st", &text, &iterations);
        if (r < 0)
                return r;
        n = (int64_t) MIN(iterations, (uint64_t) INT64_MAX);    /* too many: refused as InvalidArgs */
        caller = bus_caller(message);
        if (!caller)
                return -ENOMEM;
        r = bus_pending_new(message, "", m, &pending);
        if (r < 0)
                return r;
        completion = (ManagerCompletion) { .done = experiment_started, .free = bus_pending_free, .userdata = pending };
        r = manager_experiment_run(m, text, NULL, iterations > 0 ? &n : NULL, caller, &completion, NULL, &e);
        return r < 0 ? bus_error_from_manager(error, &e, r) : 1;
}

static int privileged_cancel_or_delete(sd_bus_message *message, Manager *m, sd_bus_error *error, bool delete) {
        _cleanup_free_ char *caller = NULL;
        ManagerError e = {};
        const char *id;
        int r;

        r = sd_bus_message_read(message, "s", &id);
        if (r < 0)
                return r;
        caller = bus_caller(message);
        if (!caller)
                return -ENOMEM;
        r = delete ? manager_experiment_delete(m, id, caller, &e) : manager_experiment_cancel(m, id, caller, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);
        return sd_bus_reply_method_return(message, NULL);
}

static int privileged_cancel_experiment(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged_cancel_or_delete(message, userdata, error, false);
}

static int privileged_delete_experiment(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        return privileged_cancel_or_delete(message, userdata, error, true);
}

int method_start_experiment(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return bus_verify_privileged_async(message, m->admin_gid, privileged_start_experiment, m, error);
}

int method_cancel_experiment(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return bus_verify_privileged_async(message, m->admin_gid, privileged_cancel_experiment, m, error);
}

int method_delete_experiment(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return bus_verify_privileged_async(message, m->admin_gid, privileged_delete_experiment, m, error);
}

/* One dictionary per experiment (the varlink ListExperiments' objects). */
int method_list_experiments(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *a = NULL;
        ManagerError e = {};
        const char *guest;
        int r;

        r = sd_bus_message_read(message, "s", &guest);
        if (r < 0)
                return r;
        r = manager_experiment_list(userdata, isempty(guest) ? NULL : guest, &reply, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);
        (void) json_object_object_get_ex(reply, "experiments", &a);
        return bus_reply_json_dict_array(message, a);
}

/* The JSON of the varlink DescribeExperiment (provenance and statistics are deep: no a{sv}). */
int method_describe_experiment(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_json_ json_object *reply = NULL;
        ManagerError e = {};
        const char *id;
        int r;

        r = sd_bus_message_read(message, "s", &id);
        if (r < 0)
                return r;
        r = manager_experiment_describe(userdata, id, &reply, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);
        return sd_bus_reply_method_return(message, "s",
                                          json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN));
}

void manager_dbus_experiment_progress(Manager *m, const char *id, const char *guest, uint64_t done, uint64_t planned,
                                      const char *state, const char *reason) {
        sd_bus *bus = bus_connection_bus(m->dbus);
        int r;

        if (!bus)
                return;
        r = sd_bus_emit_signal(bus, BUS_MANAGER_PATH, BUS_MANAGER_INTERFACE, "ExperimentProgress", "ssttss", id, guest,
                               done, planned, state, strempty(reason));
        if (r < 0)
                log_debug_errno(r, "Failed to emit ExperimentProgress for experiment %s, ignoring: %m", id);
}
