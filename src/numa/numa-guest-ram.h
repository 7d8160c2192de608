/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Guest-RAM-only page migration (MigratePages' scope "guest-ram"): the guest's RAM is found in the QEMU
 * process as the mappings of /proc/PID/smaps whose size is a backend's (a named memfd or file mapping is
 * preferred over an anonymous one; the TCG code buffer and other executable mappings never match), and only
 * the pages of those ranges are moved, with move_pages(2) in batches of NUMA_GUEST_RAM_BATCH pages. Each
 * batch is queried first (nodes = NULL): its resident pages on the source nodes are the pages asked; after
 * all batches the ranges are queried again. Parsing and counting are pure functions; the system calls run in
 * the migration's worker thread, never on the event loop. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "basic/macro.h"
#include "numa/numa-topology.h"

#define NUMA_GUEST_RAM_BATCH 4096U              /* pages per move_pages(2) call */
#define NUMA_GUEST_RAM_MAX_BACKENDS 64U
#define NUMA_GUEST_RAM_MAX_SMAPS_SIZE (64U * 1024U * 1024U)
#define NUMA_GUEST_RAM_MAX_ERRNOS 16U           /* distinct errnos counted; the rest go under the last slot */

typedef enum MigrationScope {
        MIGRATION_SCOPE_PROCESS,        /* migrate_pages(2) of the whole QEMU process (the default) */
        MIGRATION_SCOPE_GUEST_RAM,      /* move_pages(2) of the guest RAM mappings alone */
        _MIGRATION_SCOPE_MAX,
        _MIGRATION_SCOPE_INVALID = -EINVAL,
} MigrationScope;

DECLARE_STRING_TABLE(migration_scope, MigrationScope);

typedef struct GuestRamRange {
        uint64_t start, size;           /* in QEMU's address space */
        uint64_t page_size;             /* KernelPageSize of the mapping */
        uint64_t rss_bytes;             /* Rss of the mapping as smaps saw it */
        char *path;                     /* "/memfd:m0 (deleted)"; NULL: anonymous */
} GuestRamRange;

void guest_ram_ranges_free(GuestRamRange *ranges, size_t n);

/* For each of the n backend sizes, the one rw, non-executable mapping of that exact size in the smaps text
 * (each mapping used once). 0 and the ranges; -ENOENT when a backend has no such mapping, -ENOTUNIQ when it has
 * several anonymous candidates and no named one, -EBADMSG for malformed text, -E2BIG for too many backends;
 * *ret_reason (allocated) says which backend and why on -ENOENT/-ENOTUNIQ. */
int guest_ram_find(const char *smaps, size_t smaps_size, const uint64_t *backend_sizes, size_t n_backends,
                   GuestRamRange **ret, size_t *ret_n, char **ret_reason);

/* move_pages(2) calls needed for pages pages. */
static inline uint64_t guest_ram_batches(uint64_t pages) {
        return (pages + NUMA_GUEST_RAM_BATCH - 1) / NUMA_GUEST_RAM_BATCH;
}

typedef struct GuestRamErrno {
        int error;                      /* positive errno */
        uint64_t pages;
} GuestRamErrno;

typedef struct GuestRamResult {
        uint64_t pages_total;           /* pages in the ranges */
        uint64_t pages_asked;           /* resident on a source node before: passed to move_pages */
        uint64_t pages_moved;           /* status: a target node */
        uint64_t pages_failed;          /* status: an errno (or a node outside the target set, counted as EAGAIN) */
        GuestRamErrno failed[NUMA_GUEST_RAM_MAX_ERRNOS];
        size_t n_failed;
        uint64_t before[NUMA_NODES_MAX], after[NUMA_NODES_MAX]; /* resident pages of the ranges per node */
        uint64_t not_present_before, not_present_after;
        unsigned calls;                 /* move_pages calls that moved pages */
        uint64_t move_usec;             /* time in those calls */
} GuestRamResult;

/* Counts a query's status array (nodes = NULL) into per_node pages; not-present pages (-ENOENT, -EFAULT) into
 * *not_present. */
void guest_ram_count_residency(const int *status, size_t n, uint64_t per_node[static NUMA_NODES_MAX],
                               uint64_t *not_present);
/* Counts a move's status array into r (moved, failed by errno); to_mask is the target node set. */
void guest_ram_count_moves(const int *status, size_t n, uint64_t to_mask, GuestRamResult *r);
/* The i-th target node of a move: the nodes of to_mask in turn (pages spread over the target set). */
int guest_ram_target_node(uint64_t to_mask, uint64_t i);

/* Moves the ranges' resident pages on from_mask to to_mask in pid (the worker's part): 0 and *r filled;
 * a negative errno when a query failed as a whole (ESRCH: the process is gone). */
int guest_ram_move(pid_t pid, const GuestRamRange *ranges, size_t n, uint64_t from_mask, uint64_t to_mask,
                   GuestRamResult *r);
