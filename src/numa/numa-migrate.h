/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One page migration of a process between NUMA node sets with migrate_pages(2), run by a Worker:
 * numa_maps before, the system call, numa_maps after. The summary arithmetic is a pure function. */

#include <sys/types.h>

#include "numa/numa-guest-ram.h"
#include "numa/numa-placement.h"
#include "basic/worker.h"

typedef enum NumaMigratePhase {
        NUMA_MIGRATE_PHASE_MEASURED,    /* residency before is known; migrate_pages starts */
        NUMA_MIGRATE_PHASE_MOVED,       /* migrate_pages returned; measuring residency after */
        _NUMA_MIGRATE_PHASE_MAX,
        _NUMA_MIGRATE_PHASE_INVALID = -EINVAL,
} NumaMigratePhase;

DECLARE_STRING_TABLE(numa_migrate_phase, NumaMigratePhase);

typedef struct NumaMigrateJob {
        /* in */
        pid_t pid;
        char *numa_maps_path;           /* PROC_ROOT/PID/numa_maps */
        uint64_t from_mask, to_mask;    /* node bit masks */
        MigrationScope scope;           /* guest-ram: move_pages(2) of the ranges found for backend_sizes */
        uint64_t backend_sizes[NUMA_GUEST_RAM_MAX_BACKENDS];
        size_t n_backends;
        char *smaps_path;               /* PROC_ROOT/PID/smaps */
        /* out, valid once the worker ended */
        NumaResidency before, after;
        bool have_before, have_after;
        long not_moved;                 /* migrate_pages' return: pages it could not move */
        int syscall_error;              /* negative errno of migrate_pages, or 0 */
        uint64_t start_usec, end_usec;  /* CLOCK_MONOTONIC around migrate_pages */
        /* guest-ram scope */
        char *scope_reason;             /* the guest RAM could not be found: why (nothing was moved) */
        GuestRamRange *ranges;
        size_t n_ranges;
        bool have_guest_ram;
        GuestRamResult guest_ram;
} NumaMigrateJob;

NumaMigrateJob *numa_migrate_job_free(NumaMigrateJob *j);
DEFINE_TRIVIAL_CLEANUP_FUNC(NumaMigrateJob *, numa_migrate_job_free);
int numa_migrate_job_new(const char *proc_root, pid_t pid, uint64_t from_mask, uint64_t to_mask, NumaMigrateJob **ret);
/* Makes the job a guest-ram one: only the mappings of these backend sizes move (n ≤ NUMA_GUEST_RAM_MAX_BACKENDS). */
int numa_migrate_job_set_guest_ram(NumaMigrateJob *j, const char *proc_root, const uint64_t *backend_sizes, size_t n);

/* A WorkerFn: arg is the job; posts NUMA_MIGRATE_PHASE_*; returns the first error (numa_maps unreadable,
 * migrate_pages failed). A guest-ram job first finds the ranges in smaps (scope_reason and -ENOENT, nothing
 * posted, when it cannot), then moves them with guest_ram_move() in place of migrate_pages. */
int numa_migrate_job_run(Worker *w, void *arg);

typedef struct NumaMigrateSummary {
        uint64_t bytes_before_from;     /* resident on the source nodes before */
        uint64_t bytes_moved;           /* that left the source nodes */
        uint64_t pages_moved;
        uint64_t bytes_not_moved;       /* still on the source nodes after */
        uint64_t pages_not_moved;
        uint64_t bytes_on_target_after;
        uint64_t total_bytes_after;
        double fraction_on_target;      /* of all resident memory after, 0…1 (0 with nothing resident) */
        uint64_t duration_usec;
        double bytes_per_sec;           /* bytes_moved / duration; 0 for a zero duration */
} NumaMigrateSummary;

void numa_migrate_summarize(const NumaResidency *before, const NumaResidency *after, uint64_t from_mask,
                            uint64_t to_mask, uint64_t duration_usec, NumaMigrateSummary *ret);
