/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/fileio.h"
#include "numa/numa-migrate.h"

static const char *const numa_migrate_phase_table[_NUMA_MIGRATE_PHASE_MAX] = {
        [NUMA_MIGRATE_PHASE_MEASURED] = "measured",
        [NUMA_MIGRATE_PHASE_MOVED] = "moved",
};

DEFINE_STRING_TABLE(numa_migrate_phase, NumaMigratePhase, _NUMA_MIGRATE_PHASE_MAX);

static uint64_t monotonic_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

NumaMigrateJob *numa_migrate_job_free(NumaMigrateJob *j) {
        if (!j)
                return NULL;
        free(j->numa_maps_path);
        free(j->smaps_path);
        free(j->scope_reason);
        guest_ram_ranges_free(j->ranges, j->n_ranges);
        return mfree(j);
}

int numa_migrate_job_new(const char *proc_root, pid_t pid, uint64_t from_mask, uint64_t to_mask, NumaMigrateJob **ret) {
        _cleanup_(numa_migrate_job_freep) NumaMigrateJob *j = NULL;

        if (pid <= 0 || from_mask == 0 || to_mask == 0)
                return -EINVAL;
        j = calloc(1, sizeof(NumaMigrateJob));
        if (!j)
                return -ENOMEM;
        j->pid = pid;
        j->from_mask = from_mask;
        j->to_mask = to_mask;
        if (asprintf(&j->numa_maps_path, "%s/%i/numa_maps", proc_root, (int) pid) < 0) {
                j->numa_maps_path = NULL;
                return -ENOMEM;
        }
        *ret = TAKE_PTR(j);
        return 0;
}

int numa_migrate_job_set_guest_ram(NumaMigrateJob *j, const char *proc_root, const uint64_t *backend_sizes, size_t n) {
        if (n == 0 || n > NUMA_GUEST_RAM_MAX_BACKENDS)
                return -EINVAL;
        if (asprintf(&j->smaps_path, "%s/%i/smaps", proc_root, (int) j->pid) < 0) {
                j->smaps_path = NULL;
                return -ENOMEM;
        }
        memcpy(j->backend_sizes, backend_sizes, n * sizeof(uint64_t));
        j->n_backends = n;
        j->scope = MIGRATION_SCOPE_GUEST_RAM;
        return 0;
}

static int job_find_guest_ram(NumaMigrateJob *j) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = read_full_file(j->smaps_path, NUMA_GUEST_RAM_MAX_SMAPS_SIZE, &text, &size);
        if (r < 0) {
                if (asprintf(&j->scope_reason, "scope guest-ram: cannot read %s: %s", j->smaps_path, strerror(-r)) < 0)
                        j->scope_reason = NULL;
                return r;
        }
        r = guest_ram_find(text, size, j->backend_sizes, j->n_backends, &j->ranges, &j->n_ranges, &j->scope_reason);
        if (r < 0) {
                _cleanup_free_ char *why = TAKE_PTR(j->scope_reason);

                if (asprintf(&j->scope_reason, "scope guest-ram: the guest's RAM mappings cannot be found: %s",
                             why ?: strerror(-r)) < 0)
                        j->scope_reason = NULL;
                return r == -ENOTUNIQ ? -ENOENT : r;
        }
        return 0;
}

int numa_migrate_job_run(Worker *w, void *arg) {
        NumaMigrateJob *j = arg;
        /* The kernel reads maxnode - 1 bits. */
        unsigned long from[2] = { (unsigned long) j->from_mask, 0 }, to[2] = { (unsigned long) j->to_mask, 0 };
        long n = 0;
        int r;

        if (j->scope == MIGRATION_SCOPE_GUEST_RAM) {
                r = job_find_guest_ram(j);
                if (r < 0)
                        return r;
        }
        r = numa_residency_read(j->numa_maps_path, &j->before);
        if (r < 0)
                return r;
        j->have_before = true;
        worker_post(w, NUMA_MIGRATE_PHASE_MEASURED);

        j->start_usec = monotonic_usec();
        if (j->scope == MIGRATION_SCOPE_GUEST_RAM) {
                r = guest_ram_move(j->pid, j->ranges, j->n_ranges, j->from_mask, j->to_mask, &j->guest_ram);
                j->end_usec = monotonic_usec();
                if (r < 0)
                        j->syscall_error = r;
                else {
                        j->have_guest_ram = true;
                        j->not_moved = (long) j->guest_ram.pages_failed;
                }
        } else {
                n = migrate_pages(j->pid, sizeof(unsigned long) * 8 + 1, from, to);
                j->end_usec = monotonic_usec();
                if (n < 0)
                        j->syscall_error = -errno;
                else
                        j->not_moved = n;
        }
        worker_post(w, NUMA_MIGRATE_PHASE_MOVED);

        r = numa_residency_read(j->numa_maps_path, &j->after);
        if (r >= 0)
                j->have_after = true;
        if (j->syscall_error < 0)
                return j->syscall_error;
        return r;
}

void numa_migrate_summarize(const NumaResidency *before, const NumaResidency *after, uint64_t from_mask,
                            uint64_t to_mask, uint64_t duration_usec, NumaMigrateSummary *ret) {
        NumaMigrateSummary s = { .duration_usec = duration_usec };

        for (unsigned n = 0; n < NUMA_NODES_MAX; n++) {
                if (!(from_mask & (UINT64_C(1) << n)))
                        continue;
                s.bytes_before_from += before->bytes[n];
                s.bytes_not_moved += after->bytes[n];
                s.pages_not_moved += after->pages[n];
                if (before->pages[n] > after->pages[n]) {
                        s.pages_moved += before->pages[n] - after->pages[n];
                        s.bytes_moved += before->bytes[n] - MIN(before->bytes[n], after->bytes[n]);
                }
        }
        s.bytes_on_target_after = numa_residency_bytes_on(after, to_mask);
        s.total_bytes_after = after->total_bytes;
        s.fraction_on_target = s.total_bytes_after > 0 ? (double) s.bytes_on_target_after / (double) s.total_bytes_after : 0;
        s.bytes_per_sec = duration_usec > 0 ? (double) s.bytes_moved * USEC_PER_SEC / (double) duration_usec : 0;
        *ret = s;
}
