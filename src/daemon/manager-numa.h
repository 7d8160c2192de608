/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the NUMA adapter's two files only: manager-numa.c (topology, pinning, placement, the module) and
 * manager-numa-migrate.c (MigratePages, CancelMigrations, ListMigrations, the .vm ping-pong). */

#include "daemon/manager-guest.h"
#include "daemon/manager.h"
#include "numa/numa-migration.h"

typedef struct PlacementRequest PlacementRequest;

struct ManagerNuma {
        Manager *manager;
        const char *sysfs_root;         /* "/" */
        MigrationContext ctx;
        PlacementRequest **requests;
        size_t n_requests;
        pid_t *tids;                    /* MigrationContext.lookup's answer */
};

bool manager_numa_vm_running(Vm *vm);
/* The page migration context (NULL before the module started), for experiments. */
const MigrationContext *manager_numa_context(Manager *m);
/* The sizes of the guest's memory backends, for Scope=guest-ram: one per guest node (or Memory=), and the
 * virtio-mem device's (HotplugSize=). MigratePages and experiments. */
int manager_numa_guest_backend_sizes(const VmSpec *spec, uint64_t sizes[static NUMA_GUEST_RAM_MAX_BACKENDS],
                                     size_t *ret_n);
int manager_numa_fail_no_such_vm(ManagerError *ret, const char *name);
/* A NumaError of the guest called name as the API error (code > 0), or code itself (internal). */
int manager_numa_fail(Manager *m, const char *name, int code, const NumaError *e, ManagerError *ret);

/* manager-numa-migrate.c */
void manager_numa_migration_context(ManagerNuma *n);
void manager_numa_on_vm_state(Vm *vm, VmState old_state, void *userdata);
int manager_numa_vl_migrate_pages(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                  void *userdata);
int manager_numa_vl_cancel_migrations(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                      void *userdata);
int manager_numa_vl_list_migrations(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                    void *userdata);
