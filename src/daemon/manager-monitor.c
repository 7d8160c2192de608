/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Monitor passthrough on io.memvisor.Manager: ExecuteMonitorCommand sends a QMP command, or an HMP line through
 * human-monitor-command, to a running guest's QEMU on the daemon's own QMP connection (Vm.qmp) and answers with
 * QEMU's reply as it came, within QMP_MONITOR_MAX_REPLY. Admin only. Commands that would change what the daemon
 * supervises (src/qmp/qmp-monitor.h says which and why) are refused unless forced. Every call is logged with the
 * caller, the guest and the command; a forced one at notice level. Varlink here, D-Bus in manager-dbus.c (both
 * through ManagerCompletion); DescribeMemoryLayout is manager-layout.c's. */
#include <stdio.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-guest.h"
#include "daemon/manager-monitor.h"
#include "qmp/qmp-monitor.h"

#define MONITOR_TIMEOUT_USEC (30U * USEC_PER_SEC)
#define MONITOR_LOG_MAX 512     /* bytes of a command's arguments in the journal */

typedef struct MonitorCall {
        char *name, *command;           /* the guest; the QMP command or the HMP verb */
        bool hmp;
        ManagerCompletion completion;
} MonitorCall;

static MonitorCall *monitor_call_free(MonitorCall *call) {
        if (!call)
                return NULL;
        manager_completion_drop(&call->completion);
        free(call->name);
        free(call->command);
        return mfree(call);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(MonitorCall *, monitor_call_free);

int manager_monitor_fail_too_large(ManagerError *e, const char *name, const char *what, size_t bytes, size_t limit) {
        _cleanup_json_ json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "name", name) < 0 || json_add_string(p, "what", what) < 0 ||
            json_add_uint(p, "bytes", bytes) < 0 || json_add_uint(p, "limitBytes", limit) < 0)
                return -ENOMEM;
        return manager_error_set(e, -E2BIG, VARLINK_ERROR(MONITOR_MESSAGE_TOO_LARGE), TAKE_PTR(p));
}

int manager_monitor_fail_command(ManagerError *e, const char *name, const char *command, int error,
                                 const char *error_class, const char *desc) {
        _cleanup_json_ json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "name", name) < 0 || json_add_string(p, "command", command) < 0 ||
            json_add_string(p, "errorClass", error == -EIO ? strempty(error_class) : "") < 0 ||
            json_add_string(p, "description",
                            error == -EIO ? strempty(desc) :
                            error == -ETIMEDOUT ? "QEMU did not answer in time" :
                            error == -ECONNRESET ? "QEMU's monitor connection closed (the guest stopped)" :
                                                   strerror(-error)) < 0)
                return -ENOMEM;
        return manager_error_set(e, error, VARLINK_ERROR(MONITOR_COMMAND_FAILED), TAKE_PTR(p));
}

/* The running guest's QMP client, or NoSuchVM / InvalidState. */
int manager_monitor_client(Manager *m, const char *name, Vm **ret, ManagerError *e) {
        Vm *vm = manager_find_vm(m, name);

        if (!vm)
                return manager_guest_fail(e, -ENOENT, VARLINK_ERROR(NO_SUCH_VM), name, NULL);
        if (!vm_is_active(vm) || vm->state != VM_STATE_RUNNING || !vm->qmp ||
            qmp_client_get_state(vm->qmp) != QMP_CLIENT_RUNNING)
                return manager_guest_fail(e, -ESRCH, VARLINK_ERROR(INVALID_STATE), vm->name,
                                          vm_state_to_string(vm->state));
        *ret = vm;
        return 0;
}

static void finish_error(MonitorCall *call, int r, ManagerError *e) {
        _cleanup_json_ json_object *p = NULL;

        if (e->name) {
                manager_completion_finish(&call->completion, e->name, e->parameters);
                *e = (ManagerError) {};
                return;
        }
        p = json_object_new_object();
        if (p && json_add_int(p, "errno", -r) >= 0 && json_add_string(p, "message", strerror(-r)) >= 0)
                manager_completion_finish(&call->completion, VARLINK_ERROR(INTERNAL_ERROR), TAKE_PTR(p));
        else
                manager_completion_finish(&call->completion, VARLINK_ERROR(INTERNAL_ERROR), NULL);
}

static void on_reply(QmpClient *q, int error, json_object *result, const char *error_class, const char *error_desc,
                     void *userdata) {
        _cleanup_(monitor_call_freep) MonitorCall *call = userdata;
        _cleanup_json_ json_object *reply = NULL;
        ManagerError e = {};
        size_t len = 0;
        int r;

        if (error == -E2BIG) {          /* over the QMP client's message bound: dropped unread */
                r = manager_monitor_fail_too_large(&e, call->name, "reply", QMP_MAX_MESSAGE_SIZE + 1ULL,
                                                   QMP_MONITOR_MAX_REPLY);
                finish_error(call, r, &e);
                return;
        }
        if (error < 0) {
                log_info("Guest %s: monitor command %s failed: %s%s%s", call->name, call->command,
                         error == -EIO ? strempty(error_class) : strerror(-error), error == -EIO ? ": " : "",
                         error == -EIO ? strempty(error_desc) : "");
                r = manager_monitor_fail_command(&e, call->name, call->command, error, error_class, error_desc);
                finish_error(call, r, &e);
                return;
        }
        if (call->hmp && !json_object_is_type(result, json_type_string)) {
                r = manager_monitor_fail_command(&e, call->name, call->command, -EIO, "",
                                                 "human-monitor-command returned something other than text");
                finish_error(call, r, &e);
                return;
        }
        if (!json_to_plain(result, &len)) {
                finish_error(call, -ENOMEM, &e);
                return;
        }
        if (len > QMP_MONITOR_MAX_REPLY) {
                r = manager_monitor_fail_too_large(&e, call->name, "reply", len, QMP_MONITOR_MAX_REPLY);
                finish_error(call, r, &e);
                return;
        }
        reply = json_object_new_object();
        if (!reply || json_add(reply, call->hmp ? "output" : "reply", json_object_get(result)) < 0) {
                finish_error(call, -ENOMEM, &e);
                return;
        }
        manager_completion_finish(&call->completion, NULL, TAKE_PTR(reply));
}

int manager_monitor_execute(Manager *m, const MonitorRequest *req, ManagerCompletion *completion,
                            ManagerError *ret_error) {
        _cleanup_(monitor_call_freep) MonitorCall *call = NULL;
        _cleanup_json_ json_object *args = NULL;
        _cleanup_free_ char *verb = NULL, *logged = NULL;
        const char *refusal, *s;
        size_t size;
        Vm *vm;
        int r;

        call = calloc(1, sizeof(MonitorCall));
        if (!call) {
                manager_completion_drop(completion);
                return -ENOMEM;
        }
        call->completion = *completion;
        *completion = (ManagerCompletion) {};
        call->hmp = req->hmp;

        if (isempty(req->command))
                return manager_error_invalid_parameter(ret_error, "command");
        if (req->hmp && req->arguments)
                return manager_error_invalid_parameter(ret_error, "arguments");
        if (req->arguments && !json_object_is_type(req->arguments, json_type_object))
                return manager_error_invalid_parameter(ret_error, "arguments");
        r = manager_monitor_client(m, req->name, &vm, ret_error);
        if (r < 0)
                return r;

        /* The request as it goes to QEMU, bounded. */
        if (req->hmp) {
                args = json_object_new_object();
                if (!args || json_add_string(args, "command-line", req->command) < 0)
                        return -ENOMEM;
                r = qmp_monitor_hmp_verb(req->command, &verb);
                if (r == -EINVAL)
                        return manager_error_invalid_parameter(ret_error, "command");
                if (r < 0)
                        return r;
        } else {
                args = req->arguments ? json_object_get(req->arguments) : NULL;
                verb = strdup(req->command);
                if (!verb)
                        return -ENOMEM;
        }
        s = args ? json_to_plain(args, &size) : "";
        if (!s)
                return -ENOMEM;
        if (!args)
                size = 0;
        size += strlen(req->command);
        if (size > QMP_MONITOR_MAX_REQUEST)
                return manager_monitor_fail_too_large(ret_error, vm->name, "request", size, QMP_MONITOR_MAX_REQUEST);
        if ((req->hmp ? asprintf(&logged, "HMP \"%.*s%s\"", MONITOR_LOG_MAX, req->command,
                                 strlen(req->command) > MONITOR_LOG_MAX ? "…" : "") :
                        asprintf(&logged, "QMP %s%s%.*s%s", req->command, args ? " " : "", MONITOR_LOG_MAX,
                                 args ? s : "", args && strlen(s) > MONITOR_LOG_MAX ? "…" : "")) < 0)
                return -ENOMEM;

        refusal = req->hmp ? qmp_monitor_hmp_refusal(req->command) : qmp_monitor_qmp_refusal(req->command, args);
        if (refusal && !req->force) {
                _cleanup_json_ json_object *p = json_object_new_object();

                log_struct(LOG_NOTICE, 0, STRV(req->vm_field, req->uid_field),
                           "Guest %s: monitor command %s by %s refused: it %s.", vm->name, logged, req->caller, refusal);
                if (!p || json_add_string(p, "name", vm->name) < 0 || json_add_string(p, "command", verb) < 0 ||
                    json_add_string(p, "reason", refusal) < 0)
                        return -ENOMEM;
                return manager_error_set(ret_error, -EPERM, VARLINK_ERROR(MONITOR_COMMAND_REFUSED), TAKE_PTR(p));
        }
        if (refusal) {
                r = manager_experiment_check_busy(m, vm->name, ret_error);
                if (r < 0)
                        return r;
                log_struct(LOG_NOTICE, 0, STRV(req->vm_field, req->uid_field),
                           "Guest %s: monitor command %s by %s, forced (it %s).", vm->name, logged, req->caller, refusal);
        } else
                log_struct(LOG_INFO, 0, STRV(req->vm_field, req->uid_field), "Guest %s: monitor command %s by %s.",
                           vm->name, logged, req->caller);

        call->name = strdup(vm->name);
        call->command = TAKE_PTR(verb);
        if (!call->name)
                return -ENOMEM;
        r = qmp_client_execute(vm->qmp, req->hmp ? "human-monitor-command" : req->command, TAKE_PTR(args),
                               MONITOR_TIMEOUT_USEC, on_reply, call);
        if (r < 0)
                return r;
        TAKE_PTR(call);
        return 0;
}

/* ---- varlink ---------------------------------------------------------------------------------- */

static int vl_execute_monitor_command(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                      void *userdata) {
        const char *name = json_get_string(parameters, "name");
        ManagerCompletion completion;
        char caller[64], vm_field[128 + 8], uid_field[32];
        unsigned uid = (unsigned) varlink_connection_get_peer_uid(c);
        json_object *args = NULL;
        ManagerError e = {};
        int r;

        (void) json_object_object_get_ex(parameters, "arguments", &args);
        if (json_object_is_type(args, json_type_null))
                args = NULL;
        (void) snprintf(caller, sizeof(caller), "varlink uid %u", uid);
        (void) snprintf(vm_field, sizeof(vm_field), "VM=%s", strempty(name));
        (void) snprintf(uid_field, sizeof(uid_field), "CALLER_UID=%u", uid);
        completion = manager_varlink_completion(c);
        r = manager_monitor_execute(userdata,
                                    &(MonitorRequest) {
                                            .name = name,
                                            .command = json_get_string(parameters, "command"),
                                            .arguments = args,
                                            .hmp = json_get_bool(parameters, "hmp", false),
                                            .force = json_get_bool(parameters, "force", false),
                                            .caller = caller,
                                            .vm_field = vm_field,
                                            .uid_field = uid_field,
                                    },
                                    &completion, &e);
        return r < 0 ? manager_error_varlink_reply(c, &e, r) : 0;
}

static const VarlinkMethod monitor_methods[] = {
        { "ExecuteMonitorCommand", vl_execute_monitor_command,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "command", VARLINK_STRING, 0 },
                  { "arguments", VARLINK_OBJECT, VARLINK_NULLABLE },
                  { "hmp", VARLINK_BOOL, VARLINK_NULLABLE },
                  { "force", VARLINK_BOOL, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "DescribeMemoryLayout", manager_layout_vl_describe,
          (const VarlinkField[]) { { "name", VARLINK_STRING, 0 }, { NULL } }, VARLINK_METHOD_PRIVILEGED },
        { NULL },
};

const VarlinkMethod *manager_monitor_methods(void) {
        return monitor_methods;
}
