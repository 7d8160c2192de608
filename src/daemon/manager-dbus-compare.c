/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* CompareExperiments on io.memvisor.Manager1 (manager-dbus.c's vtable): everybody may compare, as on varlink;
 * the reply is the varlink reply's comparison as JSON text, sent when the worker is done. A caller that leaves
 * meanwhile only loses its answer (at most 4 comparisons run at once, whoever asked). */
#include <stdio.h>
#include <stdlib.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/strv.h"
#include "daemon/manager-dbus-internal.h"
#include "daemon/manager-experiment.h"
#include "dbus/bus-object.h"
#include "experiment/experiment-compare.h"

static void compare_done(const char *error, json_object *parameters, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_json_ json_object *p = parameters;
        BusPending *pending = userdata;
        json_object *comparison = NULL;
        int r;

        if (error) {
                r = bus_error_set_from_varlink(&e, manager_error_bus_from_varlink(error), error, p);
                (void) bus_pending_reply_error(pending, &e, r);
        } else {
                (void) json_object_object_get_ex(p, "comparison", &comparison);
                r = sd_bus_reply_method_return(pending->request, "s",
                                               json_object_to_json_string_ext(comparison ?: p, JSON_C_TO_STRING_PLAIN));
                if (r < 0)
                        log_debug_errno(r, "Failed to reply to CompareExperiments, ignoring: %m");
        }
        bus_pending_free(pending);
}

int manager_dbus_compare_experiments(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(strv_freep) char **counters = NULL;
        _cleanup_free_ char *caller = NULL;
        ExperimentCompareOptions o = EXPERIMENT_COMPARE_OPTIONS_DEFAULT;
        ManagerCompletion completion;
        ManagerError e = {};
        BusPending *pending;
        const char *a, *b;
        uint64_t seed;
        uint32_t resamples;
        int r;

        r = sd_bus_message_read(message, "ss", &a, &b);
        if (r >= 0)
                r = sd_bus_message_read_strv(message, &counters);
        if (r >= 0)
                r = sd_bus_message_read(message, "tu", &seed, &resamples);
        if (r < 0)
                return r;
        if (strv_length(counters) > EXPERIMENT_COMPARE_GLOBS_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: counters (at most %u)",
                                         EXPERIMENT_COMPARE_GLOBS_MAX);
        o.counters = counters;
        o.n_counters = strv_length(counters);
        if (seed > 0)
                o.seed = seed;
        if (resamples > 0)
                o.resamples = resamples;
        caller = bus_caller(message);
        if (!caller)
                return -ENOMEM;
        r = bus_pending_new(message, "", NULL, &pending);
        if (r < 0)
                return r;
        completion = (ManagerCompletion) { .done = compare_done, .free = bus_pending_free, .userdata = pending };
        r = manager_experiment_compare(userdata, a, b, &o, caller, &completion, NULL, &e);
        return r < 0 ? bus_error_from_manager(error, &e, r) : 1;
}
