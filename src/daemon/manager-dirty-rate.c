/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* MeasureDirtyRate: a guest's dirty-page rate through src/qmp's measurement (qmp-dirty-rate.h), for varlink here and
 * D-Bus in manager-dbus.c (both through ManagerCompletion). It is privileged: calc-dirty-rate changes QEMU's
 * state (a measuring thread; dirty logging in the dirty-bitmap and dirty-ring modes, which slows the guest's
 * writes) and QEMU runs one measurement at a time. One per guest (Busy otherwise); the guest leaving the running
 * state ends it with DirtyRateFailed. The last result of each guest is kept in its record for the metrics
 * (memvisor_guest_dirty_rate_bytes_per_second). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-guest.h"
#include "qmp/qmp-dirty-rate.h"

struct ManagerDirtyRateCall {
        Manager *manager;
        char *name;
        DirtyRateParams params;
        DirtyRateMeasurement *measurement;
        ManagerCompletion completion;
        ManagerDirtyRateProgress progress;      /* optional; called with completion.userdata */
};

static void call_free(ManagerDirtyRateCall *call) {
        if (!call)
                return;
        manager_completion_drop(&call->completion);
        free(call->name);
        free(call);
}

static int dirty_rate_error(ManagerError *e, const char *name, const DirtyRateError *error) {
        _cleanup_json_ json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "name", name) < 0 || json_add_string(p, "command", error->command) < 0 ||
            json_add_string(p, "reason", error->description ?: strerror(-error->error)) < 0 ||
            (error->error_class && json_add_string(p, "qmpErrorClass", error->error_class) < 0))
                return -ENOMEM;
        return manager_error_set(e, error->error, VARLINK_ERROR(DIRTY_RATE_FAILED), TAKE_PTR(p));
}

static void on_progress(uint64_t elapsed_usec, void *userdata) {
        ManagerDirtyRateCall *call = userdata;

        if (call->progress)
                call->progress(elapsed_usec, call->params.calc_time_sec * USEC_PER_SEC, call->completion.userdata);
}

static void on_done(const DirtyRateInfo *info, const DirtyRateError *error, void *userdata) {
        ManagerDirtyRateCall *call = userdata;
        ManagerGuest *g = manager_guest_find(call->manager, call->name);
        _cleanup_json_ json_object *reply = NULL, *o = NULL;
        ManagerError e = {};
        struct timespec ts;
        int r;

        if (g && g->dirty_rate == call)
                g->dirty_rate = NULL;
        call->measurement = NULL;
        if (error) {
                log_info("Guest %s: dirty rate measurement failed in %s: %s", call->name, error->command,
                         error->description ?: strerror(-error->error));
                r = dirty_rate_error(&e, call->name, error);
                if (r == -ENOMEM && !e.name)
                        manager_completion_finish(&call->completion, VARLINK_ERROR(INTERNAL_ERROR), NULL);
                else
                        manager_completion_finish(&call->completion, e.name, e.parameters);
                call_free(call);
                return;
        }
        if (g) {
                (void) clock_gettime(CLOCK_REALTIME, &ts);
                g->dirty_rate_valid = true;
                g->dirty_rate_mb_per_sec = info->rate;
                g->dirty_rate_realtime_usec = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
        }
        log_info("Guest %s: dirty rate %" PRIi64 " MB/s (%s, %" PRIi64 " s).", call->name, info->rate,
                 dirty_rate_mode_to_string(info->mode), info->calc_time);
        reply = json_object_new_object();
        if (!reply || dirty_rate_info_to_json(info, &o) < 0 || json_add(reply, "dirtyRate", TAKE_PTR(o)) < 0)
                manager_completion_finish(&call->completion, VARLINK_ERROR(INTERNAL_ERROR), NULL);
        else
                manager_completion_finish(&call->completion, NULL, TAKE_PTR(reply));
        call_free(call);
}

/* The API error of parameters QEMU would refuse: DirtyRateOutOfRange naming the API parameter and the limits, or
 * InvalidParameter. */
static int params_error(ManagerError *e, int r, const char *field, int64_t value) {
        _cleanup_json_ json_object *o = NULL;
        bool period = streq_ptr(field, "calc-time");

        if (r != -ERANGE)
                return manager_error_invalid_parameter(e, streq_ptr(field, "sample-pages") ? "samplePages" : "mode");
        o = json_object_new_object();
        if (!o || json_add_string(o, "parameter", period ? "periodSec" : "samplePages") < 0 ||
            json_add_int(o, "value", value) < 0 ||
            json_add_int(o, "minimum", period ? DIRTY_RATE_CALC_TIME_MIN : DIRTY_RATE_SAMPLE_PAGES_MIN) < 0 ||
            json_add_int(o, "maximum", period ? DIRTY_RATE_CALC_TIME_MAX : DIRTY_RATE_SAMPLE_PAGES_MAX) < 0)
                return -ENOMEM;
        return manager_error_set(e, r, VARLINK_ERROR(DIRTY_RATE_OUT_OF_RANGE), TAKE_PTR(o));
}

int manager_dirty_rate_measure(Manager *m, const char *name, const DirtyRateParams *params, const char *caller,
                               ManagerDirtyRateProgress progress, ManagerCompletion *completion,
                               ManagerError *ret_error) {
        ManagerDirtyRateCall *call = NULL;
        const char *field = NULL;
        ManagerGuest *g;
        json_object *p;
        Vm *vm;
        int r;

        r = dirty_rate_params_check(params, &field);
        if (r < 0) {
                manager_completion_drop(completion);
                return params_error(ret_error, r, field,
                                    streq_ptr(field, "calc-time") ? params->calc_time_sec : params->sample_pages);
        }
        vm = manager_find_vm(m, name);
        if (!vm) {
                manager_completion_drop(completion);
                return manager_guest_fail(ret_error, -ENOENT, VARLINK_ERROR(NO_SUCH_VM), name, NULL);
        }
        if (!vm_is_active(vm) || vm->state != VM_STATE_RUNNING || !vm->qmp) {
                manager_completion_drop(completion);
                return manager_guest_fail(ret_error, -ESRCH, VARLINK_ERROR(INVALID_STATE), vm->name,
                                          vm_state_to_string(vm->state));
        }
        if (manager_experiment_check_busy(m, name, ret_error) < 0) {
                manager_completion_drop(completion);
                return -EBUSY;
        }
        r = manager_guest_get(m, vm->name, &g);
        if (r < 0) {
                manager_completion_drop(completion);
                return r;
        }
        if (g->dirty_rate) {
                manager_completion_drop(completion);
                p = json_object_new_object();
                if (!p || json_add_string(p, "name", vm->name) < 0 ||
                    json_add_string(p, "operation", "dirty-rate") < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                return manager_error_set(ret_error, -EBUSY, VARLINK_ERROR(BUSY), p);
        }

        call = calloc(1, sizeof(*call));
        if (!call || !(call->name = strdup(vm->name))) {
                free(call);
                manager_completion_drop(completion);
                return -ENOMEM;
        }
        call->manager = m;
        call->params = *params;
        call->progress = progress;
        call->completion = *completion;
        *completion = (ManagerCompletion) {};

        log_info("Guest %s: measuring the dirty rate (%s, %u s) for %s.", vm->name,
                 dirty_rate_mode_to_string(params->mode), params->calc_time_sec, caller);
        r = dirty_rate_measure(vm->qmp, m->event, params, on_progress, on_done, call, &call->measurement);
        if (r < 0) {
                /* Nothing was sent: no callback comes. */
                call_free(call);
                return r;
        }
        g->dirty_rate = call;
        return 0;
}

/* A guest leaving the running state ends its measurement. */
static void dirty_rate_on_state(Vm *vm, VmState old_state, void *userdata) {
        ManagerGuest *g = manager_guest_find(userdata, vm->name);
        _cleanup_free_ char *reason = NULL;

        if (!g || !g->dirty_rate || vm->state == VM_STATE_RUNNING)
                return;
        if (asprintf(&reason, "the guest left the running state (now %s) during the measurement",
                     vm_state_to_string(vm->state)) < 0)
                reason = NULL;
        dirty_rate_measurement_abort(g->dirty_rate->measurement, -ESRCH,
                                     reason ?: "the guest left the running state during the measurement");
}

int manager_dirty_rate_start(Manager *m) {
        int r;

        r = vm_context_add_state_watch(&m->vmctx, dirty_rate_on_state, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch guest states for dirty rate measurements: %m");
        return 0;
}

void manager_dirty_rate_done(Manager *m) {
        for (size_t i = 0; i < m->n_records; i++) {
                ManagerDirtyRateCall *call = m->records[i]->dirty_rate;

                if (!call)
                        continue;
                /* Shutting down: nobody is answered. */
                manager_completion_drop(&call->completion);
                dirty_rate_measurement_abort(call->measurement, -ECANCELED, "the daemon is stopping");
        }
}

bool manager_dirty_rate_metrics(Manager *m, const char *name, double *ret_bytes_per_sec, uint64_t *ret_realtime_usec) {
        const ManagerGuest *g = manager_guest_find(m, name);

        if (!g || !g->dirty_rate_valid)
                return false;
        *ret_bytes_per_sec = (double) g->dirty_rate_mb_per_sec * 1048576.0;
        *ret_realtime_usec = g->dirty_rate_realtime_usec;
        return true;
}

/* ---- varlink ---------------------------------------------------------------------------------- */

static void vl_progress(uint64_t elapsed_usec, uint64_t period_usec, void *userdata) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "state", "measuring") < 0 || json_add_uint(p, "elapsedUSec", elapsed_usec) < 0 ||
            json_add_uint(p, "periodUSec", period_usec) < 0) {
                json_object_put(p);
                return;
        }
        (void) varlink_notify(userdata, p);
}

static int vl_measure_dirty_rate(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                 void *userdata) {
        const char *mode = json_get_string(parameters, "mode");
        int64_t period = json_get_int(parameters, "periodSec", DIRTY_RATE_CALC_TIME_DEFAULT),
                pages = json_get_int(parameters, "samplePages", 0);
        _cleanup_free_ char *caller = NULL;
        ManagerCompletion completion;
        DirtyRateParams p = {};
        ManagerError e = {};
        bool bad_period, bad_pages;
        json_object *v;
        int r;

        p.mode = mode ? dirty_rate_mode_from_string(mode) : DIRTY_RATE_MODE_PAGE_SAMPLING;
        if ((int) p.mode < 0)
                return varlink_error_invalid_parameter(c, "mode");
        /* Values an unsigned cannot hold are out of range all the same; a samplePages of 0 is below the minimum
         * (only an absent one means QEMU's default). */
        bad_period = period < DIRTY_RATE_CALC_TIME_MIN || period > DIRTY_RATE_CALC_TIME_MAX;
        bad_pages = json_object_object_get_ex(parameters, "samplePages", &v) && v &&
                    (pages < DIRTY_RATE_SAMPLE_PAGES_MIN || pages > DIRTY_RATE_SAMPLE_PAGES_MAX);
        if (bad_period || bad_pages) {
                r = params_error(&e, -ERANGE, bad_period ? "calc-time" : "sample-pages", bad_period ? period : pages);
                return manager_error_varlink_reply(c, &e, r);
        }
        p.calc_time_sec = (unsigned) period;
        p.sample_pages = (unsigned) pages;
        if (asprintf(&caller, "varlink uid %u", (unsigned) varlink_connection_get_peer_uid(c)) < 0)
                return -ENOMEM;

        completion = manager_varlink_completion(c);
        r = manager_dirty_rate_measure(userdata, json_get_string(parameters, "name"), &p, caller,
                                       (flags & VARLINK_CALL_MORE) ? vl_progress : NULL, &completion, &e);
        return r < 0 ? manager_error_varlink_reply(c, &e, r) : 0;
}

static const VarlinkMethod dirty_rate_methods[] = {
        { "MeasureDirtyRate", vl_measure_dirty_rate,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "periodSec", VARLINK_INT, VARLINK_NULLABLE },
                  { "mode", VARLINK_STRING, VARLINK_NULLABLE },
                  { "samplePages", VARLINK_INT, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { NULL },
};

const VarlinkMethod *manager_dirty_rate_methods(void) {
        return dirty_rate_methods;
}
