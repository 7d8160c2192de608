/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What one page migration (one move) measured, and the summary of a MigratePages call's moves, as structs and
 * as the JSON objects of the io.memvisor.Manager interface (MigratePages' report, ListMigrations' records). */

#include <json-c/json.h>
#include <sys/types.h>

#include "basic/macro.h"
#include "numa/numa-migrate.h"
#include "numa/numa-placement.h"
#include "qmp/qmp-stats.h"

/* One KVM statistic before and after a move (values of vcpu-target statistics summed over the vCPUs). */
typedef struct KvmStatDelta {
        char *name;
        bool cumulative;
        bool have_before, have_after;
        uint64_t before, after;
} KvmStatDelta;

typedef struct MigrationKvmCounters {
        bool available;
        char *reason;                   /* why not, when not available */
        uint64_t interval_usec;         /* between the two snapshots */
        KvmStatDelta *vm;               /* vm-target statistics, in QEMU's order */
        size_t n_vm;
        KvmStatDelta *vcpus;            /* vcpu-target statistics */
        size_t n_vcpus;
} MigrationKvmCounters;

/* Both snapshots must be available (kvm_stats_available()). */
int migration_kvm_counters_from_stats(const KvmStats *before, const KvmStats *after, MigrationKvmCounters *ret);
void migration_kvm_counters_done(MigrationKvmCounters *c);

typedef struct MigrationTracepoints {
        bool available;
        char *reason;                   /* why not, when not available */
        uint64_t kvm_page_faults;       /* kvm:kvm_page_fault over the vCPU threads */
        uint64_t kvm_exits;             /* kvm:kvm_exit */
} MigrationTracepoints;

typedef struct MigrationReport {
        unsigned n_ref;
        uint64_t id;                    /* per guest, from 1 */
        char *name;                     /* the guest */
        uint64_t from, to;              /* node masks */
        pid_t pid;                      /* QEMU */
        uint64_t started_realtime_usec;
        uint64_t settle_usec;
        uint64_t total_usec;            /* from the start of the move to the report, settle time included */
        unsigned pingpong_move;         /* 1, 2, … in a ping-pong; 0 for a single move */
        int error;                      /* negative errno of migrate_pages(2); 0: it returned */
        bool have_before, have_after;   /* numa_maps could be read */
        NumaResidency before, after;
        NumaMigrateSummary summary;     /* valid with have_before && have_after */
        long syscall_pages_not_moved;   /* migrate_pages' return, valid when error == 0 */
        MigrationKvmCounters kvm;       /* over the move and the settle time */
        MigrationTracepoints tracepoints;
        MigrationScope scope;
        bool have_guest_ram;            /* scope guest-ram and move_pages ran: */
        GuestRamResult guest_ram;
        GuestRamRange *guest_ram_ranges;
        size_t n_guest_ram_ranges;
} MigrationReport;

int migration_report_new(MigrationReport **ret);
MigrationReport *migration_report_ref(MigrationReport *r);
MigrationReport *migration_report_unref(MigrationReport *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(MigrationReport *, migration_report_unref);

static inline bool migration_report_failed(const MigrationReport *r) {
        return r->error < 0;
}

/* Logs the end of one move of the guest name: from and to, done or failed, bytes moved and time taken. */
void migration_report_log(const char *name, const MigrationReport *r);

/* Fills summary from the residencies and the syscall's duration (with have_before && have_after). */
void migration_report_summarize(MigrationReport *r, uint64_t syscall_usec);

/* {"id", "name", "from", "to", "pid", "startedRealtimeUSec", "settleUSec", "totalUSec", "pingPongMove"?,
 *  "result", "error"?, "residencyBefore"?, "residencyAfter"?, "durationUSec"?, "pagesMoved"?, …,
 *  "syscallPagesNotMoved"?, "kvmStats", "tracepoints", "scope"?, "guestRam"?} ("scope" only when not "process") */
int migration_report_to_json(const MigrationReport *r, json_object **ret);

/* The moves of one MigratePages call (or ping-pong) so far. */
typedef struct MigrationSummary {
        unsigned moves;
        unsigned moves_failed;
        uint64_t pages_moved, bytes_moved;
        uint64_t duration_usec;         /* in migrate_pages(2) */
        uint64_t elapsed_usec;          /* since the call */
        uint64_t first_report_id;
        MigrationReport *last_report;   /* a reference; NULL before the first move ended */
} MigrationSummary;

/* MigratePages' final reply: {"phase": "done", "moves", "movesFailed", "pagesMoved", "bytesMoved",
 * "durationUSec", "elapsedUSec", "firstReportId"?, "lastReportId"?, "report"?}. */
int migration_summary_to_json(const MigrationSummary *s, json_object **ret);

/* Running totals over every move of a guest. */
typedef struct MigrationTotals {
        uint64_t migrations_total;      /* moves recorded */
        uint64_t migration_failures;    /* … whose migrate_pages(2) failed */
        uint64_t pages_moved;           /* pages that left the source nodes */
        uint64_t bytes_moved;
        uint64_t migrate_usec;          /* time in migrate_pages(2) */
} MigrationTotals;

void migration_totals_add(MigrationTotals *t, const MigrationReport *r);
