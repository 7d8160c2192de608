/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* /proc/PID/numa_maps parser: where a process's memory resides, per host NUMA node. Takes a path or a buffer
 * (tests feed fixtures). Each line is "ADDRESS POLICY [key[=value]]…"; the "N<node>=<pages>" entries count
 * pages of "kernelpagesize_kB" each. Pages are sorted into kinds by the line's other keys: "huge" (hugetlbfs),
 * "anon=" (anonymous), "file=" (file-backed, including memfd and shared memory), everything else "other". */

#include "basic/macro.h"

#define NUMA_MAPS_MAX_NODE 4095U                /* N<node> above this → -ERANGE */
#define NUMA_MAPS_MAX_SIZE (64U * 1024U * 1024U) /* larger files → -EFBIG */

typedef enum NumaMapsKind {
        NUMA_MAPS_ANON,
        NUMA_MAPS_FILE,
        NUMA_MAPS_HUGE,
        NUMA_MAPS_OTHER,
        _NUMA_MAPS_KIND_MAX,
        _NUMA_MAPS_KIND_INVALID = -EINVAL,
} NumaMapsKind;

DECLARE_STRING_TABLE(numa_maps_kind, NumaMapsKind);

typedef struct NumaMapsNode {
        uint64_t pages;                         /* in each mapping's own page size, summed */
        uint64_t bytes;                         /* pages × page size */
        uint64_t kind_bytes[_NUMA_MAPS_KIND_MAX];
} NumaMapsNode;

typedef struct NumaMaps {
        NumaMapsNode *nodes;                    /* indexed by node number; n_nodes = highest node seen + 1 */
        size_t n_nodes;
        uint64_t total_bytes;                   /* over all nodes */
        uint64_t kind_bytes[_NUMA_MAPS_KIND_MAX];
        size_t n_mappings;                      /* lines parsed */
} NumaMaps;

/* Parses numa_maps text. An empty text is valid (a process without mappings, e.g. a zombie). A line that is
 * not "hexaddress policy …", a malformed N<node>=<pages> or kernelpagesize_kB= → -EINVAL; overflow → -ERANGE. */
int numa_maps_parse(const char *text, NumaMaps *ret);
/* Reads and parses a file; a missing file → -ENOENT (also ESRCH from the kernel for a vanished process). */
int numa_maps_read(const char *path, NumaMaps *ret);
void numa_maps_done(NumaMaps *m);

/* Bytes on one node (0 when the node was not seen). */
uint64_t numa_maps_node_bytes(const NumaMaps *m, unsigned node);
