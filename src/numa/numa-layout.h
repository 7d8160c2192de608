/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where the guest's RAM regions live in the QEMU process: for each region's host virtual range (from QEMU's
 * gpa2hva), the mappings of /proc/PID/maps that hold it and, from /proc/PID/numa_maps, the pages of those
 * mappings on each host node. numa_maps counts per mapping, not per range: when a mapping reaches beyond the
 * region (one RAM block split into several guest-physical ranges) the residency is the mapping's, and
 * residency_is_region says so. Both files are read in a worker thread (numa_maps walks the page tables of
 * the whole guest), never on the event loop. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "basic/macro.h"
#include "numa/numa-topology.h"

#define NUMA_LAYOUT_MAX_MAPS_SIZE (32U * 1024U * 1024U)  /* /proc/PID/maps */
#define NUMA_LAYOUT_MAX_MAPPINGS 262144U
#define NUMA_LAYOUT_MAX_REGIONS 256U

typedef struct NumaLayoutRegion {
        uint64_t host_start, size;      /* in: the region in QEMU's address space */
        /* out */
        bool mapped;                    /* every byte of the range lies in a mapping */
        unsigned n_mappings;            /* mappings overlapping the range */
        uint64_t map_start, map_end;    /* from the first one's start to the last one's end (exclusive) */
        char *map_path;                 /* the first one's path ("/memfd:m0 (deleted)"); NULL: anonymous */
        bool have_residency;            /* numa_maps had every overlapping mapping */
        bool residency_is_region;       /* the mappings lie within the range */
        uint64_t node_bytes[NUMA_NODES_MAX];
        uint64_t resident_bytes;
        unsigned max_node;              /* highest node with pages + 1 */
} NumaLayoutRegion;

void numa_layout_regions_free(NumaLayoutRegion *regions, size_t n);

/* Fills the out fields of regions from the text of maps and numa_maps (NULL numa_maps: no residency).
 * Malformed → -EBADMSG; more than NUMA_LAYOUT_MAX_MAPPINGS mappings → -E2BIG; a node ≥ NUMA_NODES_MAX → -ERANGE. */
int numa_layout_fill(const char *maps, size_t maps_size, const char *numa_maps, size_t numa_maps_size,
                     NumaLayoutRegion *regions, size_t n);

typedef struct NumaLayoutRead NumaLayoutRead;

/* r < 0: the files could not be read (the regions are as given). The regions stay the reader's. */
typedef void (*NumaLayoutCallback)(int r, const NumaLayoutRegion *regions, size_t n, void *userdata);

/* Reads PROC_ROOT/PID/maps and numa_maps in a thread and fills regions (taken, freed with the reader); cb is
 * called once on the event loop, never after numa_layout_read_free(). */
int numa_layout_read(sd_event *event, const char *proc_root, pid_t pid, NumaLayoutRegion *regions, size_t n,
                     NumaLayoutCallback cb, void *userdata, NumaLayoutRead **ret);
NumaLayoutRead *numa_layout_read_free(NumaLayoutRead *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(NumaLayoutRead *, numa_layout_read_free);
