/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The errors of memvisord's API, each once. An error has one name in both interfaces: varlink
 * io.memvisor.Manager.<Name> (declared by an `error <Name> (...)` line in io.memvisor.Manager.varlink) and
 * D-Bus io.memvisor.Manager1.<Name>; a few exist on one interface only. tests/layers/check-errors.py checks
 * this table against the IDL both ways, and that no other file spells an io.memvisor.Manager error name.
 *
 * The feature folders (src/vm, src/balloon, src/numa, src/metrics) know none of this: they fail with a
 * negative errno or their own error codes, and the daemon's adapters choose the API error. Adapters name an
 * error as VARLINK_ERROR(NO_SUCH_VM) / BUS_ERROR(NO_SUCH_VM), so a misspelt one does not compile. */

#include "basic/macro.h"

#define MANAGER_ERROR_VARLINK_PREFIX "io.memvisor.Manager."
#define MANAGER_ERROR_BUS_PREFIX "io.memvisor.Manager1."

/* X(CODE, Name, where): where is VARLINK, BUS or BOTH. */
#define MANAGER_ERRORS(X)                                               \
        X(NO_SUCH_VM,                   NoSuchVM,                 BOTH) \
        X(VM_EXISTS,                    VMExists,                 VARLINK) \
        X(INVALID_DEFINITION,           InvalidDefinition,        VARLINK) \
        X(INVALID_STATE,                InvalidState,             BOTH) \
        X(DEFINITION_READ_ONLY,         DefinitionReadOnly,       VARLINK) \
        X(START_FAILED,                 StartFailed,              BOTH) \
        X(TOO_MANY_SUBSCRIBERS,         TooManySubscribers,       VARLINK) \
        X(NO_SAMPLE,                    NoSample,                 BOTH) \
        X(TOO_MANY_WATCHERS,            TooManyWatchers,          VARLINK) \
        X(NO_BALLOON_DEVICE,            NoBalloonDevice,          BOTH) \
        X(BALLOON_TARGET_OUT_OF_RANGE,  BalloonTargetOutOfRange,  BOTH) \
        X(BALLOON_TIMEOUT,              BalloonTimeout,           VARLINK) \
        X(BALLOON_FAILED,               BalloonFailed,            BOTH) \
        X(INVALID_BALLOON_SCHEDULE,     InvalidBalloonSchedule,   VARLINK) \
        X(NO_BALLOON_SCHEDULE,          NoBalloonSchedule,        VARLINK) \
        X(SINGLE_NUMA_NODE,             SingleNUMANode,           BOTH) \
        X(NO_SUCH_NODE,                 NoSuchNode,               BOTH) \
        X(IDENTICAL_NODES,              IdenticalNodes,           BOTH) \
        X(MEMORY_CANNOT_MOVE,           MemoryCannotMove,         BOTH) \
        X(MISSING_CAPABILITY,           MissingCapability,        BOTH) \
        X(BUSY,                         Busy,                     BOTH) \
        X(NO_SUCH_VCPU,                 NoSuchVCPU,               BOTH) \
        X(NO_SUCH_CPU,                  NoSuchCPU,                BOTH) \
        X(PINNING_FAILED,               PinningFailed,            BOTH) \
        X(MIGRATION_FAILED,             MigrationFailed,          BOTH) \
        X(AGENT_NOT_CONNECTED,          AgentNotConnected,        BOTH) \
        X(AGENT_TIMEOUT,                AgentTimeout,             BOTH) \
        X(AGENT_COMMAND_FAILED,         AgentCommandFailed,       BOTH) \
        X(NO_SUCH_EXPERIMENT,           NoSuchExperiment,         BOTH) \
        X(EXPERIMENT_RUNNING,           ExperimentRunning,        BOTH) \
        X(EXPERIMENT_NOT_RUNNING,       ExperimentNotRunning,     BOTH) \
        X(INVALID_EXPERIMENT,           InvalidExperiment,        BOTH) \
        X(COUNTER_UNAVAILABLE,          CounterUnavailable,       BOTH) \
        X(GUEST_BUSY,                   GuestBusy,                BOTH) \
        X(EXPERIMENT_STORE_FAILED,      ExperimentStoreFailed,    BOTH) \
        X(EXPERIMENT_FAILED,            ExperimentFailed,         BOTH) \
        X(CONFIG_INVALID,               ConfigInvalid,            BOTH) \
        X(MONITOR_COMMAND_REFUSED,      MonitorCommandRefused,    BOTH) \
        X(MONITOR_COMMAND_FAILED,       MonitorCommandFailed,     BOTH) \
        X(MONITOR_MESSAGE_TOO_LARGE,    MonitorMessageTooLarge,   BOTH) \
        X(MEMORY_LAYOUT_UNAVAILABLE,    MemoryLayoutUnavailable,  BOTH) \
        X(DIRTY_RATE_OUT_OF_RANGE,      DirtyRateOutOfRange,      BOTH) \
        X(DIRTY_RATE_FAILED,            DirtyRateFailed,          BOTH) \
        X(NO_SUCH_BOOT,                 NoSuchBoot,               BOTH) \
        X(NO_HOTPLUG_DEVICE,            NoHotplugDevice,          BOTH) \
        X(HOTPLUG_SIZE_OUT_OF_RANGE,    HotplugSizeOutOfRange,    BOTH) \
        X(HOTPLUG_TIMEOUT,              HotplugTimeout,           BOTH) \
        X(HOTPLUG_FAILED,               HotplugFailed,            BOTH) \
        X(CONFIDENTIAL_GUEST,           ConfidentialGuest,        BOTH) \
        X(INTERNAL_ERROR,               InternalError,            VARLINK) \
        X(INVALID_SIGNAL,               InvalidSignal,            BUS)

typedef enum ManagerErrorCode {
#define MANAGER_ERROR_ENUM(code, name, where) MANAGER_ERROR_##code,
        MANAGER_ERRORS(MANAGER_ERROR_ENUM)
#undef MANAGER_ERROR_ENUM
        _MANAGER_ERROR_MAX,
        _MANAGER_ERROR_INVALID = -EINVAL,
} ManagerErrorCode;

/* "io.memvisor.Manager.<Name>" / "io.memvisor.Manager1.<Name>": static strings, never NULL for a code that
 * exists on that interface (asking for the other one is a programming error and asserts). */
const char *manager_error_varlink(ManagerErrorCode code) _pure_;
const char *manager_error_bus(ManagerErrorCode code) _pure_;
/* The code of a varlink error name, or -EINVAL when it is not one of ours. */
ManagerErrorCode manager_error_from_varlink(const char *name) _pure_;
/* The D-Bus name of a varlink error name, or NULL when it is not one of ours or has none on D-Bus. */
const char *manager_error_bus_from_varlink(const char *name) _pure_;

#define VARLINK_ERROR(code) manager_error_varlink(MANAGER_ERROR_##code)
#define BUS_ERROR(code) manager_error_bus(MANAGER_ERROR_##code)
