/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The host's NUMA topology read from sysfs under a root directory ("/" on a host, a fixture tree in tests):
 * SYSROOT/sys/devices/system/node/{online,possible,nodeN/{cpulist,meminfo,distance}} and
 * SYSROOT/sys/devices/system/cpu/online. A kernel without NUMA (no node directory) is one node 0 holding every
 * online CPU and the memory of /proc/meminfo. */

#include <json-c/json.h>

#include "numa/cpu-set.h"
#include "basic/macro.h"

#define NUMA_NODES_MAX 64U

typedef struct NumaNode {
        unsigned id;
        CpuSet cpus;
        uint64_t mem_total;     /* bytes */
        uint64_t mem_free;      /* bytes */
        unsigned *distances;    /* n_distances, in the order of the topology's nodes */
        size_t n_distances;
} NumaNode;

typedef struct NumaTopology {
        NumaNode *nodes;        /* online nodes, ascending id */
        size_t n_nodes;
        CpuSet online_cpus;
} NumaTopology;

NumaTopology *numa_topology_free(NumaTopology *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(NumaTopology *, numa_topology_free);

/* root: "/" for the host. */
int numa_topology_read(const char *root, NumaTopology **ret);
const NumaNode *numa_topology_find_node(const NumaTopology *t, unsigned id);
/* Node holding that CPU, -ENOENT if none. */
int numa_topology_node_of_cpu(const NumaTopology *t, unsigned cpu);
/* {"nodes": [{"node", "cpus", "memTotalBytes", "memFreeBytes", "distances": [..]}], "onlineCPUs": "0-3"} */
int numa_topology_to_json(const NumaTopology *t, json_object **ret);

/* Node lists ("0", "0-1", "0,2") share the CPU list syntax; nodes ≥ NUMA_NODES_MAX → -ERANGE. */
int numa_node_list_parse(const char *s, uint64_t *ret_mask);
