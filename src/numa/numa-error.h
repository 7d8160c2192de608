/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The errors of the NUMA API (pinning and page migration) that a caller must be told about, as a code and the
 * details its reply needs. Functions of src/numa return 0 on success, a negative errno for internal failures
 * and a positive NumaErrorCode (with *ret_error filled) for errors of the request or the host, in the
 * dbus-broker style. The daemon maps codes to its API error names. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "basic/macro.h"

typedef struct MigrationReport MigrationReport;

typedef enum NumaErrorCode {
        NUMA_ERROR_INVALID_PARAMETER = 1, /* parameter */
        NUMA_ERROR_NOT_RUNNING,           /* the guest has no QEMU process (its state is the caller's to say) */
        NUMA_ERROR_SINGLE_NODE,           /* n (nodes of the host), reason */
        NUMA_ERROR_NO_SUCH_NODE,          /* parameter, number (the node), list (online nodes) */
        NUMA_ERROR_IDENTICAL_NODES,       /* from, to (as the request wrote them) */
        NUMA_ERROR_MEMORY_CANNOT_MOVE,    /* reason */
        NUMA_ERROR_MISSING_CAPABILITY,    /* capability, reason */
        NUMA_ERROR_BUSY,                  /* operation */
        NUMA_ERROR_NO_SUCH_VCPU,          /* vcpu, n (vCPUs of the guest) */
        NUMA_ERROR_NO_SUCH_CPU,           /* parameter, number (the CPU), list (online CPUs); vcpu/requested for map */
        NUMA_ERROR_PINNING_FAILED,        /* vcpu (has_vcpu), thread_id, requested, effective (optional), reason */
        NUMA_ERROR_MIGRATION_FAILED,      /* reason (optional), report (optional) */
        _NUMA_ERROR_MAX,
        _NUMA_ERROR_INVALID = -EINVAL,
} NumaErrorCode;

DECLARE_STRING_TABLE(numa_error_code, NumaErrorCode);

typedef struct NumaError {
        NumaErrorCode code;             /* 0: none */
        int cause;                      /* the negative errno behind it, where there is one */
        const char *parameter;          /* static: the request field at fault */
        const char *capability;         /* static */
        const char *operation;          /* static: what keeps the guest busy */
        int64_t number;                 /* node or CPU */
        uint64_t n;                     /* nodes of the host, vCPUs of the guest */
        bool has_vcpu;
        unsigned vcpu;
        pid_t thread_id;
        char *list;                     /* online nodes or CPUs */
        char *from, *to;
        char *requested, *effective;
        char *reason;
        MigrationReport *report;        /* a reference */
} NumaError;

void numa_error_done(NumaError *e);

/* Set the code (and a copy of reason) in *e, which may be NULL, and return the code; -ENOMEM when the copy
 * fails. Callers fill the other details before returning the code. */
int numa_error_set(NumaError *e, NumaErrorCode code);
int numa_error_set_reason(NumaError *e, NumaErrorCode code, const char *reason);
int numa_error_invalid_parameter(NumaError *e, const char *parameter);

/* The error's parameters as the io.memvisor.Manager interface names them (SingleNUMANode's {nodes, reason},
 * …); name is the guest's (Busy). Not for NUMA_ERROR_NOT_RUNNING, whose state only the caller knows. */
int numa_error_parameters_json(const NumaError *e, const char *name, json_object **ret);
