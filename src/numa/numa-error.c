/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "numa/numa-error.h"
#include "numa/numa-report.h"

static const char *const numa_error_code_table[_NUMA_ERROR_MAX] = {
        [NUMA_ERROR_INVALID_PARAMETER] = "invalid-parameter",
        [NUMA_ERROR_NOT_RUNNING] = "not-running",
        [NUMA_ERROR_SINGLE_NODE] = "single-node",
        [NUMA_ERROR_NO_SUCH_NODE] = "no-such-node",
        [NUMA_ERROR_IDENTICAL_NODES] = "identical-nodes",
        [NUMA_ERROR_MEMORY_CANNOT_MOVE] = "memory-cannot-move",
        [NUMA_ERROR_MISSING_CAPABILITY] = "missing-capability",
        [NUMA_ERROR_BUSY] = "busy",
        [NUMA_ERROR_NO_SUCH_VCPU] = "no-such-vcpu",
        [NUMA_ERROR_NO_SUCH_CPU] = "no-such-cpu",
        [NUMA_ERROR_PINNING_FAILED] = "pinning-failed",
        [NUMA_ERROR_MIGRATION_FAILED] = "migration-failed",
};

DEFINE_STRING_TABLE(numa_error_code, NumaErrorCode, _NUMA_ERROR_MAX);

void numa_error_done(NumaError *e) {
        if (!e)
                return;
        free(e->list);
        free(e->from);
        free(e->to);
        free(e->requested);
        free(e->effective);
        free(e->reason);
        migration_report_unref(e->report);
        *e = (NumaError) {};
}

int numa_error_set(NumaError *e, NumaErrorCode code) {
        if (e) {
                numa_error_done(e);
                e->code = code;
        }
        return code;
}

int numa_error_set_reason(NumaError *e, NumaErrorCode code, const char *reason) {
        if (!e)
                return code;
        numa_error_set(e, code);
        if (reason) {
                e->reason = strdup(reason);
                if (!e->reason)
                        return -ENOMEM;
        }
        return code;
}

int numa_error_invalid_parameter(NumaError *e, const char *parameter) {
        numa_error_set(e, NUMA_ERROR_INVALID_PARAMETER);
        if (e)
                e->parameter = parameter;
        return NUMA_ERROR_INVALID_PARAMETER;
}

int numa_error_parameters_json(const NumaError *e, const char *name, json_object **ret) {
        _cleanup_json_ json_object *p = json_object_new_object(), *report = NULL;
        int r = 0;

        if (!p)
                return -ENOMEM;
        switch (e->code) {
        case NUMA_ERROR_INVALID_PARAMETER:
                r = json_add_string(p, "parameter", e->parameter);
                break;
        case NUMA_ERROR_NOT_RUNNING:
                r = json_add_string(p, "name", name);
                break;
        case NUMA_ERROR_SINGLE_NODE:
                if ((r = json_add_int(p, "nodes", (int64_t) e->n)) >= 0)
                        r = json_add_string(p, "reason", e->reason);
                break;
        case NUMA_ERROR_NO_SUCH_NODE:
                if ((r = json_add_string(p, "parameter", e->parameter)) >= 0 &&
                    (r = json_add_int(p, "node", e->number)) >= 0)
                        r = json_add_string(p, "nodes", e->list);
                break;
        case NUMA_ERROR_IDENTICAL_NODES:
                if ((r = json_add_string(p, "from", e->from)) >= 0)
                        r = json_add_string(p, "to", e->to);
                break;
        case NUMA_ERROR_MEMORY_CANNOT_MOVE:
                r = json_add_string(p, "reason", e->reason);
                break;
        case NUMA_ERROR_MISSING_CAPABILITY:
                if ((r = json_add_string(p, "capability", e->capability)) >= 0)
                        r = json_add_string(p, "reason", e->reason);
                break;
        case NUMA_ERROR_BUSY:
                if ((r = json_add_string(p, "name", name)) >= 0)
                        r = json_add_string(p, "operation", e->operation);
                break;
        case NUMA_ERROR_NO_SUCH_VCPU:
                if ((r = json_add_int(p, "vcpu", e->vcpu)) >= 0)
                        r = json_add_int(p, "vcpus", (int64_t) e->n);
                break;
        case NUMA_ERROR_NO_SUCH_CPU:
                if ((r = json_add_string(p, "parameter", e->parameter)) >= 0 &&
                    (r = json_add_int(p, "cpu", e->number)) >= 0)
                        r = json_add_string(p, "online", e->list);
                break;
        case NUMA_ERROR_PINNING_FAILED:
                if ((!e->has_vcpu || (r = json_add_int(p, "vcpu", e->vcpu)) >= 0) &&
                    (r = json_add_int(p, "threadId", e->thread_id)) >= 0 &&
                    (r = json_add_string(p, "requested", strna(e->requested))) >= 0 &&
                    (r = json_add_string(p, "effective", e->effective)) >= 0)
                        r = json_add_string(p, "reason", e->reason);
                break;
        case NUMA_ERROR_MIGRATION_FAILED:
                if ((r = json_add_string(p, "reason", e->reason)) >= 0 && e->report &&
                    (r = migration_report_to_json(e->report, &report)) >= 0)
                        r = json_add(p, "report", TAKE_PTR(report));
                break;
        case _NUMA_ERROR_MAX:
        case _NUMA_ERROR_INVALID:
                return -EINVAL;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}
