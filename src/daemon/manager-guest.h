/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One record per guest name: the feature modules' state of a guest (its balloon controller, its page
 * migration history) and what the metrics read of them. A record lives while the daemon knows the guest by
 * name, over restarts and redefinitions; once the guest is undefined or forgotten it is dropped as soon as
 * nothing of it still runs (no balloon tracked, no migration in progress), at the latest when the next
 * record is made. */

#include "balloon/balloon-controller.h"
#include "daemon/manager.h"
#include "metrics/metrics-render.h"
#include "numa/numa-migration.h"
#include "numa/numa-pin.h"

typedef struct ManagerGuest {
        char *name;
        BalloonController *balloon;     /* NULL until it first ran with a balloon device */
        MigrationHistory *migrations;   /* NULL until a migration of it was asked for */
        const char *schedule_refused;   /* the error the .vm ping-pong was last refused with (logged once) */
} ManagerGuest;

/* NULL: the daemon holds nothing of a guest called name. */
ManagerGuest *manager_guest_find(Manager *m, const char *name);
/* The record of name, made (and the dropped guests' records freed) when there is none. */
int manager_guest_get(Manager *m, const char *name, ManagerGuest **ret);
/* The migration history of name: NULL when none was ever asked for; _get makes it (NULL on OOM). */
MigrationHistory *manager_guest_migrations(Manager *m, const char *name);
MigrationHistory *manager_guest_get_migrations(Manager *m, const char *name);

/* The balloon and NUMA readings of a guest for the metrics (in memory, no I/O). */
void manager_guest_readings(Manager *m, const char *name, MetricsBalloon *ret_balloon, MetricsNuma *ret_numa);
/* The vCPU threads of vm as src/numa takes them (n_vcpus entries, at least one allocated); NULL on OOM. */
NumaVcpuThread *manager_guest_vcpu_threads(const Vm *vm);

/* Sets *e to the API error name with {"name": guest, "state": state (left out when NULL)}; returns error. */
int manager_guest_fail(ManagerError *e, int error, const char *name, const char *guest, const char *state);
/* Replies NoSuchVM {"name": guest}. */
int manager_guest_reply_no_such_vm(VarlinkConnection *c, const char *guest);
