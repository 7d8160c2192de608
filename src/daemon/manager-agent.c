/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest agent over the API: GuestInfo, GuestCounters, GuestExec and GuestCopy turn into the typed operations of
 * src/qga (qga-ops.h) on the guest's agent client (Vm.qga), and their results and errors into replies, for varlink
 * here and D-Bus in manager-dbus.c (both through ManagerCompletion). GuestExec and GuestCopy are privileged, and
 * every one of them is logged with the caller. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "basic/base64.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/strv.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-guest.h"
#include "qga/qga-json.h"
#include "qga/qga-ops.h"

/* What travels in one varlink message (MaxMessageSize=, 16 MiB by default) as base64: a copy of at most 8 MiB
 * (10.7 MiB encoded), a program's output of at most 4 MiB per stream (both streams 10.7 MiB encoded), its stdin
 * at most 2 MiB (what qga_exec() takes in one guest-exec). */
#define AGENT_COPY_MAX (8U * 1024U * 1024U)
#define AGENT_OUTPUT_MAX (4 * 1024 * 1024)
#define AGENT_INPUT_MAX (2U * 1024U * 1024U)

typedef enum AgentOp {
        AGENT_OP_INFO,
        AGENT_OP_COUNTERS,
        AGENT_OP_EXEC,
        AGENT_OP_COPY,
} AgentOp;

typedef struct AgentCall {
        char *name;
        AgentOp op;
        ManagerCompletion completion;
} AgentCall;

static AgentCall *agent_call_free(AgentCall *call) {
        if (!call)
                return NULL;
        manager_completion_drop(&call->completion);
        free(call->name);
        return mfree(call);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(AgentCall *, agent_call_free);

/* The API error of an agent failure. */
static int agent_error(ManagerError *e, const char *name, const QgaError *error, QgaClient *c) {
        _cleanup_json_ json_object *p = json_object_new_object();
        const char *desc = error->description ?: strerror(-error->error);

        if (!p || json_add_string(p, "name", name) < 0)
                return -ENOMEM;
        switch (error->error) {
        case -ENOTCONN:
        case -ECONNRESET:
        case -ECANCELED:
                if (json_add_string(p, "state", c ? qga_state_to_string(qga_client_get_state(c)) : "absent") < 0 ||
                    json_add_string(p, "reason", (c ? qga_client_get_reason(c) : NULL) ?: desc) < 0)
                        return -ENOMEM;
                return manager_error_set(e, error->error, VARLINK_ERROR(AGENT_NOT_CONNECTED), TAKE_PTR(p));
        case -ETIMEDOUT:
                if (json_add_string(p, "command", error->command ?: "guest-sync-delimited") < 0)
                        return -ENOMEM;
                return manager_error_set(e, error->error, VARLINK_ERROR(AGENT_TIMEOUT), TAKE_PTR(p));
        default:
                if (json_add_string(p, "command", error->command ?: "guest-info") < 0 ||
                    json_add_string(p, "errorClass", error->error_class) < 0 ||
                    json_add_string(p, "description", desc) < 0)
                        return -ENOMEM;
                return manager_error_set(e, error->error < 0 ? error->error : -EIO, VARLINK_ERROR(AGENT_COMMAND_FAILED),
                                         TAKE_PTR(p));
        }
}

static void agent_call_finish(AgentCall *call, QgaClient *c, const QgaError *error, json_object *reply) {
        ManagerError e = {};
        int r;

        if (!error) {
                manager_completion_finish(&call->completion, NULL, reply);
                return;
        }
        json_object_put(reply);
        log_debug("Guest agent call on %s failed: %s: %s", call->name, strna(error->command),
                  error->description ?: strerror(-error->error));
        r = error->error == -ENOMEM ? -ENOMEM : agent_error(&e, call->name, error, c);
        if (r < 0 && !e.name) {
                _cleanup_json_ json_object *p = json_object_new_object();

                if (p && json_add_int(p, "errno", -r) >= 0 && json_add_string(p, "message", strerror(-r)) >= 0)
                        manager_completion_finish(&call->completion, VARLINK_ERROR(INTERNAL_ERROR), TAKE_PTR(p));
                else
                        manager_completion_finish(&call->completion, VARLINK_ERROR(INTERNAL_ERROR), NULL);
                return;
        }
        manager_completion_finish(&call->completion, e.name, e.parameters);
}

static void on_info(QgaClient *c, const QgaError *error, const QgaGuestInfo *info, void *userdata) {
        _cleanup_(agent_call_freep) AgentCall *call = userdata;
        json_object *o = NULL, *reply = NULL;

        if (!error && (qga_guest_info_to_json(info, &o) < 0 || !(reply = json_object_new_object()) ||
                       json_add(reply, "info", TAKE_PTR(o)) < 0)) {
                json_object_put(o);
                json_object_put(reply);
                agent_call_finish(call, c, &(QgaError) { .error = -ENOMEM, .description = "out of memory" }, NULL);
                return;
        }
        agent_call_finish(call, c, error, reply);
}

static void on_counters(QgaClient *c, const QgaError *error, const QgaGuestCounters *counters, void *userdata) {
        _cleanup_(agent_call_freep) AgentCall *call = userdata;
        json_object *o = NULL, *reply = NULL;

        if (!error && (qga_guest_counters_to_json(counters, &o) < 0 || !(reply = json_object_new_object()) ||
                       json_add(reply, "counters", TAKE_PTR(o)) < 0)) {
                json_object_put(o);
                json_object_put(reply);
                agent_call_finish(call, c, &(QgaError) { .error = -ENOMEM, .description = "out of memory" }, NULL);
                return;
        }
        agent_call_finish(call, c, error, reply);
}

static void on_exec(QgaClient *c, const QgaError *error, const QgaExecResult *result, void *userdata) {
        _cleanup_(agent_call_freep) AgentCall *call = userdata;
        json_object *o = NULL, *reply = NULL;

        if (!error && (qga_exec_result_to_json(result, &o) < 0 || !(reply = json_object_new_object()) ||
                       json_add(reply, "result", TAKE_PTR(o)) < 0)) {
                json_object_put(o);
                json_object_put(reply);
                agent_call_finish(call, c, &(QgaError) { .error = -ENOMEM, .description = "out of memory" }, NULL);
                return;
        }
        if (!error)
                log_info("Guest %s: guest-exec pid %" PRIi64 " %s%s.", call->name, result->pid,
                         result->timed_out ? "timed out" : result->exited ? "exited" : "ended",
                         result->killed ? ", killed" : "");
        agent_call_finish(call, c, error, reply);
}

static void on_copy(QgaClient *c, const QgaError *error, uint64_t bytes, void *userdata) {
        _cleanup_(agent_call_freep) AgentCall *call = userdata;
        json_object *reply = NULL;

        if (!error && (!(reply = json_object_new_object()) || json_add_uint(reply, "bytes", bytes) < 0)) {
                json_object_put(reply);
                agent_call_finish(call, c, &(QgaError) { .error = -ENOMEM, .description = "out of memory" }, NULL);
                return;
        }
        agent_call_finish(call, c, error, reply);
}

/* The guest's agent client, or the API error: NoSuchVM, InvalidState (not running), AgentNotConnected (no agent
 * port: GuestAgent=no, or a QEMU started without one). */
static int agent_client(Manager *m, const char *name, QgaClient **ret, ManagerError *e) {
        Vm *vm = manager_find_vm(m, name);
        json_object *p;

        if (!vm)
                return manager_guest_fail(e, -ENOENT, VARLINK_ERROR(NO_SUCH_VM), name, NULL);
        if (!vm_is_active(vm) || vm->state != VM_STATE_RUNNING)
                return manager_guest_fail(e, -ESRCH, VARLINK_ERROR(INVALID_STATE), vm->name,
                                          vm_state_to_string(vm->state));
        if (!vm->qga) {
                p = json_object_new_object();
                if (!p || json_add_string(p, "name", vm->name) < 0 || json_add_string(p, "state", "absent") < 0 ||
                    json_add_string(p, "reason", "the guest has no agent port ([VM] GuestAgent=no when it started)") < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                return manager_error_set(e, -ENOTCONN, VARLINK_ERROR(AGENT_NOT_CONNECTED), p);
        }
        *ret = vm->qga;
        return 0;
}

/* The agent command an operation begins with (what a refusal before it started is about). */
static const char *agent_op_command(AgentOp op) {
        switch (op) {
        case AGENT_OP_INFO:
                return "guest-get-osinfo";
        case AGENT_OP_COUNTERS:
                return "guest-file-open";
        case AGENT_OP_EXEC:
                return "guest-exec";
        case AGENT_OP_COPY:
                return "guest-file-write";
        }
        return "guest-info";
}

/* An operation refused before it started (qga-client.h/qga-ops.h: no callback comes). */
static int agent_start_error(ManagerError *e, const char *name, AgentOp op, int r, QgaClient *c) {
        _cleanup_json_ json_object *p = NULL;

        switch (r) {
        case -ENOMEM:
                return r;       /* InternalError */
        case -E2BIG:
        case -EINVAL:
                return manager_error_invalid_parameter(e, op == AGENT_OP_COPY ? "data" : "argv");
        case -ENOTSUP:
                p = json_object_new_object();
                if (!p || json_add_string(p, "name", name) < 0 || json_add_string(p, "command", agent_op_command(op)) < 0 ||
                    json_add_string(p, "description", "the guest's agent does not offer a command this needs "
                                                      "(disabled or too old); DescribeVM's agent.commands lists "
                                                      "what it offers") < 0)
                        return -ENOMEM;
                return manager_error_set(e, r, VARLINK_ERROR(AGENT_COMMAND_FAILED), TAKE_PTR(p));
        default:
                return agent_error(e, name, &(QgaError) { .error = r, .command = agent_op_command(op),
                                                          .description = strerror(-r) }, c);
        }
}

static int agent_call_new(const char *name, AgentOp op, ManagerCompletion *completion, AgentCall **ret) {
        AgentCall *call = calloc(1, sizeof(AgentCall));

        if (!call || !(call->name = strdup(name))) {
                free(call);
                manager_completion_drop(completion);
                return -ENOMEM;
        }
        call->op = op;
        call->completion = *completion;
        *completion = (ManagerCompletion) {};
        *ret = call;
        return 0;
}

/* Starts op on the guest's agent. Consumes completion. */
static int agent_start(Manager *m, const char *name, AgentOp op, const void *args, ManagerCompletion *completion,
                       ManagerError *ret_error) {
        _cleanup_(agent_call_freep) AgentCall *call = NULL;
        QgaClient *c = NULL;
        int r;

        r = agent_client(m, name, &c, ret_error);
        if (r < 0) {
                manager_completion_drop(completion);
                return r;
        }
        r = agent_call_new(name, op, completion, &call);
        if (r < 0)
                return r;
        switch (op) {
        case AGENT_OP_INFO:
                r = qga_get_guest_info(c, on_info, call);
                break;
        case AGENT_OP_COUNTERS:
                r = qga_get_counters(c, on_counters, call);
                break;
        case AGENT_OP_EXEC:
                r = qga_exec(c, args, on_exec, call);
                break;
        case AGENT_OP_COPY: {
                const struct { const void *data; size_t size; const char *dest; mode_t mode; } *a = args;
                r = qga_copy_to_guest(c, a->data, a->size, a->dest, a->mode, on_copy, call);
                break;
        }
        }
        if (r < 0)
                /* Not started: no callback comes. */
                return agent_start_error(ret_error, name, op, r, c);
        TAKE_PTR(call);
        return 0;
}

int manager_agent_info(Manager *m, const char *name, ManagerCompletion *completion, ManagerError *ret_error) {
        return agent_start(m, name, AGENT_OP_INFO, NULL, completion, ret_error);
}

int manager_agent_counters(Manager *m, const char *name, ManagerCompletion *completion, ManagerError *ret_error) {
        return agent_start(m, name, AGENT_OP_COUNTERS, NULL, completion, ret_error);
}

int manager_agent_exec(Manager *m, const char *name, const QgaExecRequest *req, const char *caller,
                       ManagerCompletion *completion, ManagerError *ret_error) {
        _cleanup_free_ char *line = NULL;
        size_t len = 0;
        FILE *f;

        f = open_memstream(&line, &len);
        if (f) {
                for (char *const *a = req->argv; a && *a; a++)
                        fprintf(f, "%s%s", a == req->argv ? "" : " ", *a);
                (void) fclose(f);
        }
        if (req->input_size > AGENT_INPUT_MAX) {
                manager_completion_drop(completion);
                return manager_error_invalid_parameter(ret_error, "stdin");
        }
        if (manager_experiment_check_busy(m, name, ret_error) < 0) {
                manager_completion_drop(completion);
                return -EBUSY;
        }
        if (manager_find_vm(m, name))
                log_info("Guest %s: guest-exec of \"%s\" by %s.", name, strna(line), caller);
        return agent_start(m, name, AGENT_OP_EXEC, req, completion, ret_error);
}

int manager_agent_copy(Manager *m, const char *name, const void *data, size_t size, const char *dest, mode_t mode,
                       const char *caller, ManagerCompletion *completion, ManagerError *ret_error) {
        const struct { const void *data; size_t size; const char *dest; mode_t mode; } a = { data, size, dest, mode };

        if (manager_experiment_check_busy(m, name, ret_error) < 0) {
                manager_completion_drop(completion);
                return -EBUSY;
        }
        if (size > AGENT_COPY_MAX) {
                manager_completion_drop(completion);
                return manager_error_invalid_parameter(ret_error, "data");
        }
        if (manager_find_vm(m, name))
                log_info("Guest %s: copying %zu bytes to %s in the guest, by %s.", name, size, dest, caller);
        return agent_start(m, name, AGENT_OP_COPY, &a, completion, ret_error);
}

/* ---- varlink ---------------------------------------------------------------------------------- */

static int vl_guest_info(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        ManagerCompletion completion = manager_varlink_completion(c);
        ManagerError e = {};
        int r;

        r = manager_agent_info(userdata, json_get_string(parameters, "name"), &completion, &e);
        return r < 0 ? manager_error_varlink_reply(c, &e, r) : 0;
}

static int vl_guest_counters(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        ManagerCompletion completion = manager_varlink_completion(c);
        ManagerError e = {};
        int r;

        r = manager_agent_counters(userdata, json_get_string(parameters, "name"), &completion, &e);
        return r < 0 ? manager_error_varlink_reply(c, &e, r) : 0;
}

/* A []string parameter (already checked to be an array): NUL-free strings, at most max of them. */
static int strv_from_json(json_object *a, size_t max, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        size_t n;

        if (!a) {
                *ret = NULL;
                return 0;
        }
        n = json_object_array_length(a);
        if (n > max)
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_array_get_idx(a, i);

                if (!json_object_is_type(s, json_type_string) ||
                    strlen(json_object_get_string(s)) != (size_t) json_object_get_string_len(s))
                        return -EINVAL;
                if (strv_extend(&l, json_object_get_string(s)) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static char *caller_of(VarlinkConnection *c) {
        char *s = NULL;

        if (asprintf(&s, "varlink uid %u", (unsigned) varlink_connection_get_peer_uid(c)) < 0)
                return NULL;
        return s;
}

static int vl_guest_exec(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        _cleanup_(strv_freep) char **argv = NULL, **env = NULL;
        _cleanup_free_ char *input = NULL;
        _cleanup_free_ char *caller = NULL;
        ManagerCompletion completion;
        json_object *a = NULL;
        const char *stdin_b64 = json_get_string(parameters, "stdin");
        int64_t timeout = json_get_int(parameters, "timeoutUSec", 0), max_output = json_get_int(parameters,
                                                                                             "maxOutputBytes", 0);
        size_t input_size = 0;
        ManagerError e = {};
        int r;

        (void) json_object_object_get_ex(parameters, "argv", &a);
        if (strv_from_json(a, 4096, &argv) < 0 || !argv || isempty(argv[0]))
                return varlink_error_invalid_parameter(c, "argv");
        a = NULL;
        (void) json_object_object_get_ex(parameters, "env", &a);
        if (strv_from_json(a, 4096, &env) < 0)
                return varlink_error_invalid_parameter(c, "env");
        for (char **s = env; s && *s; s++)
                if (!strchr(*s, '=') || **s == '=')
                        return varlink_error_invalid_parameter(c, "env");
        if (stdin_b64 && base64_decode(stdin_b64, strlen(stdin_b64), AGENT_INPUT_MAX, &input, &input_size) < 0)
                return varlink_error_invalid_parameter(c, "stdin");
        if (timeout < 0 || (uint64_t) timeout > 24 * 3600 * USEC_PER_SEC)
                return varlink_error_invalid_parameter(c, "timeoutUSec");
        if (max_output < 0 || max_output > AGENT_OUTPUT_MAX)
                return varlink_error_invalid_parameter(c, "maxOutputBytes");
        caller = caller_of(c);
        if (!caller)
                return -ENOMEM;

        completion = manager_varlink_completion(c);
        r = manager_agent_exec(userdata, json_get_string(parameters, "name"),
                               &(QgaExecRequest) {
                                       .argv = argv,
                                       .env = env,
                                       .input = input,
                                       .input_size = input_size,
                                       .timeout_usec = (uint64_t) timeout,
                                       .max_output = (size_t) max_output,
                               },
                               caller, &completion, &e);
        return r < 0 ? manager_error_varlink_reply(c, &e, r) : 0;
}

static int vl_guest_copy(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        const char *path = json_get_string(parameters, "path"), *data = json_get_string(parameters, "data");
        int64_t mode = json_get_int(parameters, "mode", 0);
        _cleanup_free_ char *caller = NULL;
        _cleanup_free_ char *bytes = NULL;
        ManagerCompletion completion;
        ManagerError e = {};
        json_object *v;
        size_t size = 0;
        int r;

        if (!path || path[0] != '/' || !json_object_object_get_ex(parameters, "path", &v) ||
            strlen(path) != (size_t) json_object_get_string_len(v))
                return varlink_error_invalid_parameter(c, "path");
        if (!data || base64_decode(data, strlen(data), AGENT_COPY_MAX, &bytes, &size) < 0)
                return varlink_error_invalid_parameter(c, "data");
        if (mode < 0 || mode > 07777)
                return varlink_error_invalid_parameter(c, "mode");
        caller = caller_of(c);
        if (!caller)
                return -ENOMEM;

        completion = manager_varlink_completion(c);
        r = manager_agent_copy(userdata, json_get_string(parameters, "name"), bytes, size, path, (mode_t) mode, caller,
                               &completion, &e);
        return r < 0 ? manager_error_varlink_reply(c, &e, r) : 0;
}

static const VarlinkField name_only[] = { { "name", VARLINK_STRING, 0 }, { NULL } };

static const VarlinkMethod agent_methods[] = {
        { "GuestInfo", vl_guest_info, name_only, 0 },
        { "GuestCounters", vl_guest_counters, name_only, 0 },
        { "GuestExec", vl_guest_exec,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "argv", VARLINK_ARRAY, 0 },
                  { "env", VARLINK_ARRAY, VARLINK_NULLABLE },
                  { "stdin", VARLINK_STRING, VARLINK_NULLABLE },
                  { "timeoutUSec", VARLINK_INT, VARLINK_NULLABLE },
                  { "maxOutputBytes", VARLINK_INT, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "GuestCopy", vl_guest_copy,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "path", VARLINK_STRING, 0 },
                  { "data", VARLINK_STRING, 0 },
                  { "mode", VARLINK_INT, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { NULL },
};

const VarlinkMethod *manager_agent_methods(void) {
        return agent_methods;
}

/* ---- the guest counters for the exporter (GuestCountersIntervalSec=) ---------------------------- */

/* The /proc/vmstat event counters the metrics show (metric-families.c, memvisor_guest_vmstat_events_total). */
static const char *const sampled_vmstat[] = {
        "pgfault", "pgmajfault", "pgmigrate_success", "pgmigrate_fail", "numa_hint_faults", "numa_pages_migrated",
        "thp_fault_alloc", "nr_tlb_remote_flush", "nr_tlb_remote_flush_received", "nr_tlb_local_flush_all",
        "nr_tlb_local_flush_one",
};
_Static_assert(ELEMENTSOF(sampled_vmstat) <= METRICS_GUEST_VMSTAT_MAX, "room for every sampled counter");

typedef struct AgentSample {
        Manager *manager;               /* NULL once the daemon shuts down */
        char *name;
        struct AgentSample *next;
} AgentSample;

static int copy_row(const QgaIrqRow *row, uint64_t **ret, unsigned **ret_cpus, size_t *ret_n) {
        *ret = NULL;
        *ret_cpus = NULL;
        *ret_n = 0;
        if (!row->present || row->n_cpus == 0)
                return 0;
        /* A guest has at most VM_MAX_VCPUS CPUs: a row claiming more does not get more series. */
        *ret_n = MIN(row->n_cpus, (size_t) VM_MAX_VCPUS);
        *ret = malloc(*ret_n * sizeof(uint64_t));
        if (!*ret)
                return -ENOMEM;
        memcpy(*ret, row->per_cpu, *ret_n * sizeof(uint64_t));
        if (row->cpu_ids) {
                *ret_cpus = malloc(*ret_n * sizeof(unsigned));
                if (!*ret_cpus)
                        return -ENOMEM;
                memcpy(*ret_cpus, row->cpu_ids, *ret_n * sizeof(unsigned));
        }
        return 0;
}

static void on_sample(QgaClient *c, const QgaError *error, const QgaGuestCounters *counters, void *userdata) {
        AgentSample *s = userdata, **p;
        ManagerGuest *g = NULL;
        MetricsGuestCounters mc = {};

        if (s->manager) {
                for (p = &s->manager->agent_samples; *p && *p != s; p = &(*p)->next)
                        ;
                if (*p)
                        *p = s->next;
                /* Turned off (GuestCountersIntervalSec=0) while it ran: not kept. */
                if (s->manager->agent_timer)
                        g = manager_guest_find(s->manager, s->name);
                else if ((g = manager_guest_find(s->manager, s->name)))
                        g->agent_sampling = false, g = NULL;
        }
        if (g) {
                g->agent_sampling = false;
                if (error)
                        log_debug("Reading the counters of guest %s through its agent failed: %s", s->name,
                                  error->description ?: strerror(-error->error));
                else if (copy_row(&counters->tlb, &mc.tlb, &mc.tlb_cpus, &mc.n_tlb) >= 0 &&
                         copy_row(&counters->cal, &mc.cal, &mc.cal_cpus, &mc.n_cal) >= 0) {
                        mc.valid = true;
                        mc.realtime_usec = counters->host_realtime_usec;
                        for (size_t i = 0; i < ELEMENTSOF(sampled_vmstat); i++)
                                for (size_t k = 0; k < counters->n_vmstat; k++)
                                        if (streq(counters->vmstat[k].name, sampled_vmstat[i])) {
                                                mc.vmstat_names[mc.n_vmstat] = sampled_vmstat[i];
                                                mc.vmstat_values[mc.n_vmstat++] = counters->vmstat[k].value;
                                                break;
                                        }
                        metrics_guest_counters_done(&g->agent_counters);
                        g->agent_counters = mc;
                        mc = (MetricsGuestCounters) {};
                }
        }
        metrics_guest_counters_done(&mc);
        free(s->name);
        free(s);
}

static int agent_sample_tick(sd_event_source *source, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t interval = m->config.guest_counters_interval_usec;

        for (size_t i = 0; i < m->guests.n_vms; i++) {
                Vm *vm = m->guests.vms[i];
                ManagerGuest *g;
                AgentSample *s;

                if (!vm_is_active(vm) || vm->state != VM_STATE_RUNNING || !vm->qga ||
                    qga_client_get_state(vm->qga) != QGA_STATE_READY)
                        continue;
                if (manager_guest_get(m, vm->name, &g) < 0) {
                        (void) log_oom();
                        break;
                }
                if (g->agent_sampling)
                        continue;       /* the last reading is still going: never more than one per guest */
                s = calloc(1, sizeof(AgentSample));
                if (!s || !(s->name = strdup(vm->name))) {
                        free(s);
                        (void) log_oom();
                        break;
                }
                s->manager = m;
                if (qga_get_counters(vm->qga, on_sample, s) < 0) {
                        free(s->name);
                        free(s);
                        continue;
                }
                s->next = m->agent_samples;
                m->agent_samples = s;
                g->agent_sampling = true;
        }
        if (interval > 0) {
                (void) sd_event_source_set_time(source, usec + interval);
                (void) sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
        }
        return 0;
}

/* The agent went away (or came back after an absence): the last snapshot belongs to an agent that is gone and
 * is not shown any more; the next reading replaces it. */
static void agent_on_state(Vm *vm, QgaState state, void *userdata) {
        ManagerGuest *g;

        if (state == QGA_STATE_READY)
                return;
        g = manager_guest_find(userdata, vm->name);
        if (g)
                metrics_guest_counters_done(&g->agent_counters);
}

int manager_agent_start(Manager *m) {
        int r;

        r = vm_context_add_agent_watch(&m->vmctx, agent_on_state, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the guest agents: %m");
        manager_agent_apply_config(m);
        return 0;
}

void manager_agent_apply_config(Manager *m) {
        uint64_t interval = m->config.guest_counters_interval_usec, now;
        int r;

        if (interval == 0) {
                m->agent_timer = sd_event_source_disable_unref(m->agent_timer);
                m->agent_interval_usec = 0;
                for (size_t i = 0; i < m->n_records; i++)
                        metrics_guest_counters_done(&m->records[i]->agent_counters);
                return;
        }
        if (sd_event_now(m->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        if (m->agent_timer) {
                /* A reload that keeps the interval keeps the deadline: frequent reloads must not starve it. */
                if (interval != m->agent_interval_usec) {
                        (void) sd_event_source_set_time(m->agent_timer, now + interval);
                        (void) sd_event_source_set_enabled(m->agent_timer, SD_EVENT_ONESHOT);
                }
                m->agent_interval_usec = interval;
                return;
        }
        m->agent_interval_usec = interval;
        r = sd_event_add_time(m->event, &m->agent_timer, CLOCK_MONOTONIC, now + interval, USEC_PER_SEC / 10,
                              agent_sample_tick, m);
        if (r < 0) {
                log_warning_errno(r, "Failed to set up the guest counters timer, not reading them: %m");
                return;
        }
        (void) sd_event_source_set_description(m->agent_timer, "agent-counters");
}

void manager_agent_done(Manager *m) {
        m->agent_timer = sd_event_source_disable_unref(m->agent_timer);
        /* Readings still in flight end when their guest's agent client goes (with the guest): they must not
         * find the Manager then. */
        for (AgentSample *s = m->agent_samples; s; s = s->next)
                s->manager = NULL;
        m->agent_samples = NULL;
}
