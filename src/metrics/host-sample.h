/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One sample of host memory: PROC_ROOT/meminfo and, per NUMA node, SYS_ROOT/devices/system/node/nodeN/meminfo.
 * The roots are "/proc" and "/sys" normally; tests point them at fixture trees. */

#include "metrics/meminfo.h"

#define HOST_SAMPLE_MAX_NODES 1024U

typedef struct NodeMemory {
        unsigned node;
        uint64_t mem_total;             /* bytes */
        uint64_t mem_free;
        uint64_t mem_used;
        uint64_t file_pages;
        uint64_t anon_pages;
        uint64_t hugepages_total;       /* pages of the default huge page size */
        uint64_t hugepages_free;
} NodeMemory;

typedef struct HostSample {
        uint64_t realtime_usec;         /* when it was taken */
        uint64_t monotonic_usec;
        uint64_t duration_usec;         /* how long reading took */
        Meminfo meminfo;                /* every field of /proc/meminfo */
        HostMemory host;
        uint64_t hugepages_total, hugepages_free, hugepages_rsvd, hugepages_surp, hugepage_size;
        NodeMemory *nodes;              /* sorted by node number */
        size_t n_nodes;
} HostSample;

/* Reads a sample. /proc/meminfo missing → -ENOENT, malformed → -EINVAL, without the four required fields →
 * -ENODATA. A missing node directory means "no NUMA information" (n_nodes = 0); a node whose meminfo is
 * malformed fails the whole sample. */
int host_sample_read(const char *proc_root, const char *sys_root, HostSample *ret);
void host_sample_done(HostSample *s);
