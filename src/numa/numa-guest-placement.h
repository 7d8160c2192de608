/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where a guest is: GetPlacement's placement object. Its configuration and its vCPUs' placement are read at
 * once; its memory's residency per node (numa_maps, which walks the page tables of the whole guest) in a
 * worker thread, off the event loop. */

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "numa/numa-pin.h"

typedef struct NumaPlacementRequest {
        const char *sysfs_root;         /* "/": the topology */
        const char *proc_root;          /* "/proc" */
        pid_t pid;                      /* QEMU; 0: not running (no vCPUs, no residency) */
        const NumaVcpuThread *vcpus;
        size_t n_vcpus;
        const char *name, *state, *memory_policy, *host_nodes, *vcpu_affinity, *emulator_affinity;
        bool migrating;
} NumaPlacementRequest;

typedef struct NumaPlacementRead NumaPlacementRead;

/* The placement, complete (r = 0, placement taken) or not (r < 0, placement NULL). */
typedef void (*NumaPlacementCallback)(int r, json_object *placement, void *userdata);

/* Reads the placement of req: *ret_placement complete when the guest is not running (*ret NULL), otherwise
 * the residency is read in a thread and cb gets the placement once (never after numa_placement_read_free()). */
int numa_placement_read(sd_event *event, const NumaPlacementRequest *req, NumaPlacementCallback cb, void *userdata,
                        json_object **ret_placement, NumaPlacementRead **ret);
NumaPlacementRead *numa_placement_read_free(NumaPlacementRead *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(NumaPlacementRead *, numa_placement_read_free);
