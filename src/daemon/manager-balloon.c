/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Ballooning over varlink: the io.memvisor.Manager balloon methods turn their parameters into calls of the
 * typed API of src/balloon (balloon-controller.h) and its results and errors into replies; D-Bus does the same
 * in manager-dbus.c. The guests' controllers and the policy timer are in manager-balloon-guests.c. */
#include <limits.h>
#include <stdio.h>

#include "balloon/balloon-controller.h"
#include "balloon/balloon-json.h"
#include "basic/json-util.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-guest.h"
#include "daemon/manager-persist.h"

/* ---- errors and replies ----------------------------------------------------------------------- */

static const char *varlink_parameter(const char *field) {
        static const char *const names[][2] = {
                { "target", "targetBytes" }, { "from", "fromBytes" }, { "to", "toBytes" },
                { "every", "everyUSec" },    { "count", "count" },    { "mode", "mode" },
        };

        for (size_t i = 0; field && i < ELEMENTSOF(names); i++)
                if (streq(names[i][0], field))
                        return names[i][1];
        return field;
}

int manager_balloon_error(Manager *m, const char *name, int r, const BalloonErrorInfo *info, ManagerError *ret_error) {
        _cleanup_json_ json_object *p = json_object_new_object();
        const Vm *vm;

        if (r <= 0)
                return r;
        if (!p || json_add_string(p, "name", name) < 0)
                return -ENOMEM;
        switch ((BalloonError) r) {
        case BALLOON_ERROR_NO_DEVICE:
                return manager_error_set(ret_error, -ENODEV, VARLINK_ERROR(NO_BALLOON_DEVICE), TAKE_PTR(p));
        case BALLOON_ERROR_INVALID_STATE:
                vm = manager_find_vm(m, name);
                return manager_guest_fail(ret_error, -ESRCH, VARLINK_ERROR(INVALID_STATE), name,
                                          vm ? vm_state_to_string(vm->state) : "undefined");
        case BALLOON_ERROR_OUT_OF_RANGE:
                if (json_add_string(p, "parameter", varlink_parameter(info->field)) < 0 ||
                    json_add_uint(p, "targetBytes", info->target_bytes) < 0 ||
                    json_add_uint(p, "minimumBytes", info->minimum_bytes) < 0 ||
                    json_add_uint(p, "maximumBytes", info->maximum_bytes) < 0 ||
                    json_add_string(p, "reason", strna(info->reason)) < 0)
                        return -ENOMEM;
                return manager_error_set(ret_error, -ERANGE, VARLINK_ERROR(BALLOON_TARGET_OUT_OF_RANGE), TAKE_PTR(p));
        case BALLOON_ERROR_TIMEOUT:
                if (json_add_uint(p, "targetBytes", info->target_bytes) < 0 ||
                    (info->actual_bytes != BALLOON_SIZE_UNKNOWN && json_add_uint(p, "actualBytes", info->actual_bytes) < 0) ||
                    json_add_string(p, "reason", strna(info->reason)) < 0)
                        return -ENOMEM;
                return manager_error_set(ret_error, -ETIMEDOUT, VARLINK_ERROR(BALLOON_TIMEOUT), TAKE_PTR(p));
        case BALLOON_ERROR_FAILED:
                if (json_add_string(p, "reason", info->reason) < 0 ||
                    (info->cause == -EIO && (json_add_string(p, "qmpErrorClass", info->qmp_error_class) < 0 ||
                                             json_add_string(p, "qmpErrorDesc", info->qmp_error_desc) < 0)))
                        return -ENOMEM;
                return manager_error_set(ret_error, info->cause < 0 ? info->cause : -EIO, VARLINK_ERROR(BALLOON_FAILED),
                                         TAKE_PTR(p));
        case BALLOON_ERROR_INVALID_SCHEDULE:
                json_object_put(p);
                p = json_object_new_object();
                if (!p || json_add_string(p, "parameter", varlink_parameter(info->field)) < 0 ||
                    json_add_string(p, "reason", info->reason) < 0)
                        return -ENOMEM;
                return manager_error_set(ret_error, -EINVAL, VARLINK_ERROR(INVALID_BALLOON_SCHEDULE), TAKE_PTR(p));
        case BALLOON_ERROR_NO_SCHEDULE:
                return manager_error_set(ret_error, -ENOENT, VARLINK_ERROR(NO_BALLOON_SCHEDULE), TAKE_PTR(p));
        case BALLOON_ERROR_CONFIDENTIAL:
                vm = manager_find_vm(m, name);
                if (!vm)
                        return manager_guest_fail(ret_error, -ENOENT, VARLINK_ERROR(NO_SUCH_VM), name, NULL);
                r = manager_guest_check_confidential(vm, VM_CONFIDENTIAL_OP_BALLOON, ret_error);
                return r < 0 ? r : -EINVAL;
        case _BALLOON_ERROR_MAX:
        case _BALLOON_ERROR_INVALID:
                break;
        }
        return -EINVAL;
}

/* The varlink error reply of a typed call's result r (> 0), or r itself (< 0). */
static int reply_balloon_error(VarlinkConnection *c, Manager *m, const char *name, int r, BalloonErrorInfo *info) {
        ManagerError e = {};

        r = manager_balloon_error(m, name, r, info, &e);
        balloon_error_info_done(info);
        return manager_error_varlink_reply(c, &e, r);
}

/* ---- SetBalloon ------------------------------------------------------------------------------- */

/* A SetBalloon call waiting for its answer. */
typedef struct BalloonCall {
        Manager *manager;
        char *name;
        VarlinkConnection *conn;
        BalloonWait *wait;              /* with wait, until done */
        uint64_t last_notified;
} BalloonCall;

static void call_closed(VarlinkConnection *c, void *userdata);

static BalloonCall *call_free(BalloonCall *call) {
        if (!call)
                return NULL;
        varlink_connection_clear_close_callback(call->conn, call_closed, call);
        varlink_connection_unref(call->conn);
        free(call->name);
        free(call);
        return NULL;
}

static int call_progress_reply(BalloonCall *call, const BalloonTargetResult *result, bool final) {
        json_object *p = NULL;
        int r;

        r = balloon_target_result_to_json(call->name, result, &p);
        if (r < 0)
                return r;
        /* A message over the client's output limit closes the connection, and the close callback would cancel the
         * wait under us: detach it while sending. */
        varlink_connection_clear_close_callback(call->conn, call_closed, call);
        if (final)
                return varlink_reply(call->conn, p);
        r = varlink_notify(call->conn, p);
        if (r >= 0 && varlink_connection_is_closed(call->conn))
                r = -ENOTCONN;
        if (r >= 0)
                varlink_connection_set_close_callback(call->conn, call_closed, call);
        return r;
}

static int call_on_progress(const BalloonTargetResult *progress, void *userdata) {
        BalloonCall *call = userdata;

        if (progress->actual_bytes == call->last_notified)
                return 0;
        call->last_notified = progress->actual_bytes;
        return call_progress_reply(call, progress, false);
}

static void call_done(int r, const BalloonTargetResult *result, const BalloonErrorInfo *error, void *userdata) {
        BalloonCall *call = userdata;
        ManagerError e = {};

        call->wait = NULL;
        varlink_connection_clear_close_callback(call->conn, call_closed, call);
        if (r == 0)
                (void) call_progress_reply(call, result, true);
        else if (r > 0) {
                r = manager_balloon_error(call->manager, call->name, r, error, &e);
                (void) (e.name ? manager_error_varlink_reply(call->conn, &e, r)
                               : varlink_error(call->conn, VARLINK_ERROR(BALLOON_FAILED), NULL));
        }
        call_free(call);
}

static void call_closed(VarlinkConnection *c, void *userdata) {
        BalloonCall *call = userdata;

        balloon_wait_cancel(call->wait);
}

static int vl_set_balloon(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        int64_t target = json_get_int(parameters, "targetBytes", -1);
        int64_t timeout = json_get_int(parameters, "timeoutUSec", -1);
        bool wait = json_get_bool(parameters, "wait", false) || (flags & VARLINK_CALL_MORE);
        bool more = flags & VARLINK_CALL_MORE;
        const char *name = json_get_string(parameters, "name");
        _cleanup_(balloon_error_info_done) BalloonErrorInfo info = {};
        _cleanup_free_ char *requester = NULL;
        BalloonCall *call;
        BalloonGuestConfig cfg;
        BalloonController *ctl;
        uint64_t t, actual;
        Vm *vm;
        int r;

        if (json_object_object_get_ex(parameters, "timeoutUSec", NULL) && timeout != -1 && timeout <= 0)
                return varlink_error_invalid_parameter(c, "timeoutUSec");
        if (asprintf(&requester, "varlink by uid %u", (unsigned) varlink_connection_get_peer_uid(c)) < 0) {
                requester = NULL;
                return -ENOMEM;
        }
        vm = manager_find_vm(m, name);
        if (!vm)
                return manager_guest_reply_no_such_vm(c, name);
        r = manager_experiment_reply_busy(m, c, vm->name);
        if (r != 0)
                return r < 0 ? r : 0;
        manager_balloon_guest_config(m, vm, &cfg);
        ctl = manager_balloon_controller(m, vm->name);
        if (target < 0) {
                r = balloon_controller_check_running(ctl, &cfg, &info);
                if (r != 0)
                        return reply_balloon_error(c, m, vm->name, r, &info);
                return varlink_error_invalid_parameter(c, "targetBytes");
        }

        call = calloc(1, sizeof(BalloonCall));
        if (!call)
                return -ENOMEM;
        *call = (BalloonCall) {
                .manager = m,
                .name = strdup(vm->name),
                .conn = varlink_connection_ref(c),
                .last_notified = BALLOON_SIZE_UNKNOWN,
        };
        if (!call->name) {
                call_free(call);
                return -ENOMEM;
        }
        r = balloon_controller_set_target(ctl, &cfg,
                                          &(BalloonTargetRequest) {
                                                  .target_bytes = (uint64_t) target,
                                                  .requester = requester,
                                                  .wait = wait,
                                                  .timeout_usec = timeout > 0 ? (uint64_t) timeout
                                                                              : m->config.balloon_wait_timeout_usec,
                                                  .progress = more ? call_on_progress : NULL,
                                          },
                                          call_done, call, &call->wait, &info);
        if (r != 0) {
                call_free(call);
                return reply_balloon_error(c, m, vm->name, r, &info);
        }
        manager_persist_flush(m, vm->name);     /* the target is on disk before the caller hears of it */
        if (!wait)
                return 0;

        varlink_connection_set_close_callback(c, call_closed, call);
        if (more && balloon_controller_get_sizes(ctl, &t, &actual) && actual != BALLOON_SIZE_UNKNOWN) {
                call->last_notified = actual;
                r = call_progress_reply(call,
                                        &(BalloonTargetResult) {
                                                .target_bytes = (uint64_t) target,
                                                .actual_bytes = actual,
                                                .elapsed_usec = 0,
                                        },
                                        false);
                if (r < 0) {
                        balloon_wait_cancel(call->wait);
                        return r;
                }
        }
        return 0;
}

/* ---- GetBalloon, GetBalloonSteps, GetBalloonDecisions ----------------------------------------- */

int manager_balloon_describe(Manager *m, const char *name, json_object **ret_reply, ManagerError *ret_error) {
        _cleanup_json_ json_object *p = json_object_new_object(), *b = NULL;
        Vm *vm = manager_find_vm(m, name);
        BalloonGuestConfig cfg;
        BalloonStatus st;
        ManagerGuest *g;
        int r;

        if (!vm)
                return manager_guest_fail(ret_error, -ENOENT, VARLINK_ERROR(NO_SUCH_VM), name, NULL);
        manager_balloon_guest_config(m, vm, &cfg);
        if (!cfg.device)
                return manager_balloon_error(m, vm->name, BALLOON_ERROR_NO_DEVICE, NULL, ret_error);
        if (!p)
                return -ENOMEM;
        balloon_controller_get_status(manager_balloon_controller(m, vm->name), &st);
        r = balloon_info_to_json(vm->name, vm_state_to_string(vm->state), &cfg, manager_balloon_policy_enabled(m, vm),
                                 &st, &b);
        if (r < 0)
                return r;
        g = manager_guest_find(m, vm->name);
        if (g && json_add_string(b, "recordError", g->record_error) < 0)
                return -ENOMEM;
        if (json_add(p, "balloon", TAKE_PTR(b)) < 0)
                return -ENOMEM;
        *ret_reply = TAKE_PTR(p);
        return 0;
}

static int vl_get_balloon(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        ManagerError e = {};
        json_object *reply = NULL;
        int r;

        r = manager_balloon_describe(userdata, json_get_string(parameters, "name"), &reply, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        return varlink_reply(c, reply);
}

/* Replies {key: [...]} with the guest's records (records_to_json); hostState too when given. */
static int reply_records(VarlinkConnection *c, Manager *m, json_object *parameters, const char *key,
                         int (*records_to_json)(const BalloonController *c, json_object **ret),
                         const char *host_state) {
        const char *name = json_get_string(parameters, "name");
        _cleanup_json_ json_object *p = json_object_new_object(), *list = NULL;
        int r;

        if (!manager_find_vm(m, name))
                return manager_guest_reply_no_such_vm(c, name);
        if (!p)
                return -ENOMEM;
        r = records_to_json(manager_balloon_controller(m, name), &list);
        if (r < 0)
                return r;
        if (json_add_string(p, "hostState", host_state) < 0 || json_add(p, key, TAKE_PTR(list)) < 0)
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(p));
}

static int vl_get_balloon_steps(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                void *userdata) {
        return reply_records(c, userdata, parameters, "steps", balloon_steps_to_json, NULL);
}

static int vl_get_balloon_decisions(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                    void *userdata) {
        Manager *m = userdata;

        return reply_records(c, m, parameters, "decisions", balloon_decisions_to_json,
                             balloon_host_state_to_string(manager_balloon_host_state(m)));
}

/* ---- schedules -------------------------------------------------------------------------------- */

/* The guest, its configuration and controller for a call on a running guest; replies with the error and
 * returns NULL (*ret: the handler's return value) otherwise. */
static Vm *lookup_running(Manager *m, VarlinkConnection *c, json_object *parameters, BalloonGuestConfig *ret_cfg,
                          BalloonController **ret_ctl, int *ret) {
        _cleanup_(balloon_error_info_done) BalloonErrorInfo info = {};
        const char *name = json_get_string(parameters, "name");
        Vm *vm = manager_find_vm(m, name);
        int r;

        if (!vm) {
                *ret = manager_guest_reply_no_such_vm(c, name);
                return NULL;
        }
        r = manager_experiment_reply_busy(m, c, vm->name);
        if (r != 0) {
                *ret = r < 0 ? r : 0;
                return NULL;
        }
        manager_balloon_guest_config(m, vm, ret_cfg);
        *ret_ctl = manager_balloon_controller(m, vm->name);
        r = balloon_controller_check_running(*ret_ctl, ret_cfg, &info);
        if (r != 0) {
                *ret = reply_balloon_error(c, m, vm->name, r, &info);
                return NULL;
        }
        return vm;
}

/* Checks a schedule's size parameter: negative → InvalidParameter, out of range → its error. */
static int check_size(VarlinkConnection *c, Manager *m, Vm *vm, BalloonController *ctl, const char *field,
                      int64_t value, int *ret) {
        _cleanup_(balloon_error_info_done) BalloonErrorInfo info = {};
        int r;

        if (value < 0) {
                *ret = varlink_error_invalid_parameter(c, varlink_parameter(field));
                return -EINVAL;
        }
        r = balloon_controller_check_target(ctl, field, (uint64_t) value, &info);
        if (r != 0) {
                *ret = reply_balloon_error(c, m, vm->name, r, &info);
                return -EINVAL;
        }
        return 0;
}

static int vl_set_balloon_schedule(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                   void *userdata) {
        Manager *m = userdata;
        const char *mode = json_get_string(parameters, "mode");
        int64_t from = json_get_int(parameters, "fromBytes", -1), to = json_get_int(parameters, "toBytes", -1);
        int64_t every = json_get_int(parameters, "everyUSec", -1), count = json_get_int(parameters, "count", -1);
        _cleanup_(balloon_error_info_done) BalloonErrorInfo info = {};
        _cleanup_json_ json_object *p = json_object_new_object(), *s = NULL;
        BalloonController *ctl = NULL;
        BalloonGuestConfig cfg;
        BalloonSchedule sched;
        Vm *vm;
        int r = 0;

        vm = lookup_running(m, c, parameters, &cfg, &ctl, &r);
        if (!vm)
                return r;
        if (!p)
                return -ENOMEM;
        if (balloon_schedule_mode_from_string(mode) < 0)
                return varlink_error_invalid_parameter(c, "mode");
        if (every < 0)
                return varlink_error_invalid_parameter(c, "everyUSec");
        if (count < 0 || count > UINT_MAX)
                return varlink_error_invalid_parameter(c, "count");
        if (check_size(c, m, vm, ctl, "from", from, &r) < 0 || check_size(c, m, vm, ctl, "to", to, &r) < 0)
                return r;

        sched = (BalloonSchedule) {
                .mode = balloon_schedule_mode_from_string(mode),
                .from_bytes = (uint64_t) from,
                .to_bytes = (uint64_t) to,
                .every_usec = (uint64_t) every,
                .count = (unsigned) count,
        };
        r = balloon_controller_set_schedule(ctl, &cfg, &sched, &info);
        if (r != 0)
                return reply_balloon_error(c, m, vm->name, r, &info);
        manager_persist_flush(m, vm->name);     /* on disk before the caller hears it runs */
        r = balloon_schedule_to_json(&sched, &s);
        if (r < 0)
                return r;
        if (json_add(p, "schedule", TAKE_PTR(s)) < 0)
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(p));
}

static int vl_cancel_balloon_schedule(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                      void *userdata) {
        Manager *m = userdata;
        const char *name = json_get_string(parameters, "name");
        _cleanup_(balloon_error_info_done) BalloonErrorInfo info = {};
        _cleanup_free_ char *requester = NULL;
        BalloonGuestConfig cfg;
        Vm *vm = manager_find_vm(m, name);
        int r;

        if (!vm)
                return manager_guest_reply_no_such_vm(c, name);
        if (asprintf(&requester, "varlink by uid %u", (unsigned) varlink_connection_get_peer_uid(c)) < 0) {
                requester = NULL;
                return -ENOMEM;
        }
        manager_balloon_guest_config(m, vm, &cfg);
        r = balloon_controller_cancel_schedule(manager_balloon_controller(m, vm->name), &cfg, requester, &info);
        if (r != 0)
                return reply_balloon_error(c, m, vm->name, r, &info);
        manager_persist_flush(m, vm->name);
        return varlink_reply(c, NULL);
}

static const VarlinkField name_only[] = { { "name", VARLINK_STRING, 0 }, { NULL } };

static const VarlinkMethod balloon_methods[] = {
        { "SetBalloon", vl_set_balloon,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "targetBytes", VARLINK_INT, 0 },
                  { "wait", VARLINK_BOOL, VARLINK_NULLABLE },
                  { "timeoutUSec", VARLINK_INT, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "GetBalloon", vl_get_balloon, name_only, 0 },
        { "GetBalloonSteps", vl_get_balloon_steps, name_only, 0 },
        { "GetBalloonDecisions", vl_get_balloon_decisions, name_only, 0 },
        { "SetBalloonSchedule", vl_set_balloon_schedule,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "mode", VARLINK_STRING, 0 },
                  { "fromBytes", VARLINK_INT, 0 },
                  { "toBytes", VARLINK_INT, 0 },
                  { "everyUSec", VARLINK_INT, 0 },
                  { "count", VARLINK_INT, 0 },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "CancelBalloonSchedule", vl_cancel_balloon_schedule, name_only, VARLINK_METHOD_PRIVILEGED },
        { NULL },
};

const VarlinkMethod *manager_balloon_methods(void) {
        return balloon_methods;
}
