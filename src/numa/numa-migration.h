/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Page migration runs of a guest: a MigrationRequest (one move between node sets, or a ping-pong of moves
 * between two nodes) is checked against the host and the guest's history, then each move runs in a Worker
 * (numa_maps, migrate_pages(2), numa_maps), measured with QMP query-stats before the move and after a settle
 * time, and with perf counts of the kvm tracepoints. Each move gives a MigrationReport, kept in the guest's
 * MigrationHistory (the last NUMA_MIGRATION_MAX_RECORDS) and added to its running totals.
 *
 * The guest is known to this module by name only: the caller's MigrationContext says where it runs now
 * (lookup) and asks its QEMU for statistics (query_stats), so that nothing here depends on how guests are
 * supervised. */

#include <systemd/sd-event.h>

#include "basic/macro.h"
#include "numa/numa-error.h"
#include "metrics/metrics-render.h"
#include "numa/numa-report.h"
#include "basic/worker.h"
#include "qmp/qmp-stats.h"

#define NUMA_MIGRATION_MAX_RECORDS 64U          /* per guest; older reports are dropped */
#define NUMA_MIGRATION_MAX_MOVES 10000U         /* per ping-pong */
#define NUMA_MIGRATION_SETTLE_DEFAULT_USEC (1 * USEC_PER_SEC)
#define NUMA_MIGRATION_SETTLE_MAX_USEC (600 * USEC_PER_SEC)
#define NUMA_MIGRATION_EVERY_MAX_USEC (86400 * USEC_PER_SEC)
#define NUMA_MIGRATION_STATS_TIMEOUT_USEC (5 * USEC_PER_SEC)

/* An integer option of a request that was not given. */
#define MIGRATION_UNSET INT64_MIN

/* Where a guest runs now. */
typedef struct MigrationGuest {
        pid_t pid;                      /* QEMU */
        bool tcg;                       /* no KVM: no KVM statistics, no kvm tracepoints */
        const pid_t *vcpu_threads;      /* valid during the call */
        size_t n_vcpu_threads;
} MigrationGuest;

typedef struct MigrationContext {
        sd_event *event;
        const char *proc_root;          /* "/proc" */
        const char *sysfs_root;         /* "/": topology, meminfo, tracefs */
        /* 0 and *ret while the guest runs, -ESRCH when it does not (any more). */
        int (*lookup)(const char *name, void *userdata, MigrationGuest *ret);
        /* query-stats of the guest while its QEMU is pid: as kvm_stats_query() (cb exactly once when it
         * returns ≥ 0); -ENOTCONN when there is no QMP connection to that QEMU. */
        int (*query_stats)(const char *name, pid_t pid, uint64_t timeout_usec, KvmStatsCallback cb,
                           void *cb_userdata, void *userdata);
        void *userdata;
        /* Whether the daemon may migrate_pages(2) another process's memory (NULL: CAP_SYS_NICE is checked). */
        bool (*have_capability)(void);
        /* Runs a NumaMigrateJob in the worker (NULL: numa_migrate_job_run); tests pass a fake. */
        WorkerFn job_fn;
} MigrationContext;

/* What to move, as MigratePages' parameters, and what the caller knows of the guest. */
typedef struct MigrationRequest {
        const char *from, *to;          /* node lists ("0", "1-2") for one move; or */
        const char *between;            /* two nodes ("0,1") for a ping-pong */
        int64_t count;                  /* moves of a ping-pong (default 2); one move: unset or 1 */
        int64_t every_usec;             /* ping-pong: from the start of one move to the next (default 0) */
        int64_t settle_usec;            /* after each move, before the KVM counters are read (default 1 s) */
        pid_t pid;                      /* QEMU; 0: the guest is not running */
        bool hugepages;                 /* the guest's memory is in huge pages … */
        uint64_t memory_bytes;          /* … of this size */
        const char *scope;              /* "process" (NULL: the default) or "guest-ram" */
        /* guest-ram: the sizes of the guest's memory backends (none: one backend of memory_bytes) */
        const uint64_t *backend_sizes;
        size_t n_backends;
} MigrationRequest;

#define MIGRATION_REQUEST_INIT \
        { .count = MIGRATION_UNSET, .every_usec = MIGRATION_UNSET, .settle_usec = MIGRATION_UNSET }

/* The parameters alone, as the method checks them first: NUMA_ERROR_INVALID_PARAMETER naming the one at
 * fault. */
int migration_request_validate(const MigrationRequest *req, NumaError *ret_error);

typedef enum MigrationPhase {
        MIGRATION_PHASE_STARTED,        /* a move starts: KVM counters before are read */
        MIGRATION_PHASE_MIGRATING,      /* residency_before known, migrate_pages runs */
        MIGRATION_PHASE_MEASURING,      /* migrate_pages returned after duration_usec */
        MIGRATION_PHASE_SETTLING,       /* waiting settle_usec before the KVM counters are read again */
        MIGRATION_PHASE_MOVED,          /* the move ended: report (recorded) */
        _MIGRATION_PHASE_MAX,
        _MIGRATION_PHASE_INVALID = -EINVAL,
} MigrationPhase;

DECLARE_STRING_TABLE(migration_phase, MigrationPhase);

typedef struct MigrationProgress {
        MigrationPhase phase;
        unsigned move;                  /* 1, 2, … */
        unsigned moves;                 /* in all */
        const NumaResidency *residency_before;
        uint64_t duration_usec;
        uint64_t settle_usec;
        MigrationReport *report;
} MigrationProgress;

/* MigratePages' progress notification: {extra…, "phase", "move", "moves"}, the extra field being
 * residencyBefore (migrating), durationUSec (measuring), settleUSec (settling) or report (moved). */
int migration_progress_to_json(const MigrationProgress *p, json_object **ret);

typedef struct MigrationHistory MigrationHistory;
typedef struct MigrationRun MigrationRun;

typedef struct MigrationCallbacks {
        /* Optional: each step of each move. */
        void (*progress)(const MigrationProgress *p, void *userdata);
        /* Exactly once per begun run: error 0 and the summary; a positive NumaErrorCode and its details; a
         * negative errno for an internal failure; -ECANCELED when the history is freed first. */
        void (*finished)(int error, const NumaError *details, const MigrationSummary *summary, void *userdata);
} MigrationCallbacks;

int migration_history_new(const char *name, MigrationHistory **ret);
/* Ends a run in progress (finished with -ECANCELED; a running migrate_pages is waited for). */
MigrationHistory *migration_history_free(MigrationHistory *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(MigrationHistory *, migration_history_free);

const char *migration_history_name(const MigrationHistory *h);
const MigrationTotals *migration_history_totals(const MigrationHistory *h);
/* The totals as the metrics take them (metrics-render.h); all zero for a NULL history. */
void migration_history_get_metrics(const MigrationHistory *h, MetricsNuma *ret);
/* The recorded reports, oldest first (valid until the history changes). */
MigrationReport *const *migration_history_reports(const MigrationHistory *h, size_t *ret_n);
/* ListMigrations' migrations: the reports as an array (empty for a NULL history). */
int migration_history_to_json(const MigrationHistory *h, json_object **ret);
/* The history as text, to keep it over a restart of the owner (who writes it where and when it likes): the
 * reports as ListMigrations shows them, the totals and the next id. A history loaded from it shows the saved
 * reports first (as they were shown; the oldest go first when new ones come), counts on from the saved totals
 * and ids. Load: into a fresh history only (-EBUSY otherwise); -EBADMSG for text that is not such a record
 * (*ret_reason, static, says why), -E2BIG over MIGRATION_HISTORY_SIZE_MAX; h is unchanged on failure. */
#define MIGRATION_HISTORY_VERSION 1
#define MIGRATION_HISTORY_SIZE_MAX (8U * 1024U * 1024U)
int migration_history_save(const MigrationHistory *h, char **ret_text, size_t *ret_size);
int migration_history_load(MigrationHistory *h, const char *text, size_t size, const char **ret_reason);
/* Appends a report (as a run does): gives it the next id, counts it in the totals. */
int migration_history_record(MigrationHistory *h, MigrationReport *r);

typedef struct MigrationRunStatus {
        bool pingpong;
        bool cancelled;
        unsigned done;                  /* moves ended */
        unsigned count;
} MigrationRunStatus;

/* Whether a run is in progress, and its status. */
bool migration_history_busy(const MigrationHistory *h, MigrationRunStatus *ret_status);
/* No further move: a move in progress finishes and is recorded, a wait for the next move ends now. */
void migration_history_cancel(MigrationHistory *h);

/* Checks the request (parameters, then the host's nodes, the guest's state, a run in progress, the
 * capability, huge pages) and sets up its run, which keeps the history busy; ctx must outlive it. 0 and
 * *ret, or an error as numa-error.h says. */
int migration_run_new(MigrationHistory *h, const MigrationContext *ctx, const MigrationRequest *req,
                      const MigrationCallbacks *callbacks, void *userdata, MigrationRun **ret,
                      NumaError *ret_error);
/* Starts the first move. From here on finished() is called exactly once, possibly before this returns; the
 * run frees itself after it. */
void migration_run_begin(MigrationRun *run);
