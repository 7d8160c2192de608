/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One record per guest name: the feature modules' state of a guest (its balloon controller, its page
 * migration history), which the metrics read. A record lives while the daemon knows the guest by name, over
 * restarts and redefinitions, and is dropped when the guest is undefined or forgotten (manager_guests_prune()
 * in manager.h); one with something still running then (a move finishing) goes with the next prune. */

#include "balloon/balloon-controller.h"
#include "metrics/metrics-render.h"
#include "daemon/manager.h"
#include "numa/numa-migration.h"
#include "numa/numa-pin.h"
#include "vm/vm-confidential.h"

typedef struct ManagerGuest {
        char *name;
        BalloonController *balloon;     /* NULL until it first ran with a balloon device */
        MigrationHistory *migrations;   /* NULL until a migration of it was asked for */
        const char *schedule_refused;   /* the error the .vm ping-pong was last refused with (logged once) */
        MetricsGuestCounters agent_counters; /* the guest's own counters, as its agent last read them */
        bool agent_sampling;            /* a reading of them is in flight */
        bool balloon_dirty;             /* manager-persist.c: the balloon record is to be saved */
        uint64_t balloon_saved_usec;    /* … and when its last save started (CLOCK_MONOTONIC) */
        char *record_error;             /* the last save of a record failed: why (GetBalloon's recordError) */
        uint64_t experiment_iterations; /* experiment iterations recorded on it since the daemon started */
        ManagerDirtyRateCall *dirty_rate; /* manager-dirty-rate.c: the measurement in flight, NULL: none */
        bool dirty_rate_valid;          /* … the last one measured: its rate (MB/s) and when (CLOCK_REALTIME) */
        int64_t dirty_rate_mb_per_sec;
        uint64_t dirty_rate_realtime_usec;
        ManagerHotplugCall *hotplug;    /* manager-hotplug.c: the SetHotplugMemory in flight, NULL: none */
} ManagerGuest;

/* NULL: the daemon holds nothing of a guest called name. */
ManagerGuest *manager_guest_find(Manager *m, const char *name);
/* The record of name, made (after a prune) when there is none. */
int manager_guest_get(Manager *m, const char *name, ManagerGuest **ret);

/* The migration history of name: NULL when none was ever asked for; _get makes it (NULL on OOM). */
MigrationHistory *manager_guest_migrations(Manager *m, const char *name);
MigrationHistory *manager_guest_get_migrations(Manager *m, const char *name);

/* The vCPU threads of vm as src/numa takes them (n_vcpus entries, at least one allocated); NULL on OOM. */
NumaVcpuThread *manager_guest_vcpu_threads(const Vm *vm);

/* Sets *e to the API error name with {"name": guest, "state": state (left out when NULL)}; returns error. */
int manager_guest_fail(ManagerError *e, int error, const char *name, const char *guest, const char *state);
/* Replies NoSuchVM {"name": guest}. */
int manager_guest_reply_no_such_vm(VarlinkConnection *c, const char *guest);
/* The operations that cannot act on a confidential guest's private memory (vm-confidential.h) check here first:
 * 0, or -EOPNOTSUPP with *e ConfidentialGuest {name, confidential, operation, reason}. The guest's running
 * definition decides when it runs. */
int manager_guest_check_confidential(const Vm *vm, VmConfidentialOperation op, ManagerError *e);
