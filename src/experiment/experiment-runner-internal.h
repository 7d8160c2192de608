/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by experiment-runner.c (starting, provenance, the end) and experiment-iteration.c (one iteration:
 * readings, provocation, workload, record). */

#include "basic/worker.h"
#include "experiment/experiment-measure.h"
#include "experiment/experiment-runner.h"
#include "experiment/provenance.h"
#include "qmp/qmp-dirty-rate.h"

typedef enum RunStep {
        RUN_STEP_BEFORE,                /* the readings before */
        RUN_STEP_PROVOKE,               /* the provocation (and a When=during workload) */
        RUN_STEP_WORKLOAD,              /* a When=after workload */
        RUN_STEP_AFTER,                 /* the readings after */
} RunStep;

struct ExperimentRun {
        const ExperimentContext *ctx;
        ExperimentSpec *spec;
        ExperimentRunCallbacks callbacks;
        void *userdata;
        ExperimentMeasure *measure;
        pid_t pid;                      /* the QEMU the experiment started on */
        char *id;
        uint64_t done, planned;
        bool cancelled;
        bool over;                      /* ended or abandoned: pending operations only come back to free it */
        unsigned n_pending;             /* asynchronous operations whose callback is still to come */

        /* starting */
        Worker *worker;
        struct ProvenanceJob *job;
        Provenance provenance;
        json_object *guest_provenance;
        char *guest_provenance_error;

        /* the iteration in flight */
        RunStep step;
        uint64_t iteration_start_usec, started_realtime_usec;
        uint64_t provoke_start_usec, provoke_usec;
        ExperimentSnapshot before, after;
        ExperimentRecord record;
        bool provoke_done, workload_running, workload_done;
        uint64_t workload_usec;
        json_object *workload_json;
        char *workload_error;
        char *provoke_error;
        BalloonWait *balloon_wait;
        bool balloon_returning;         /* the second step: back to balloon_back_bytes */
        bool balloon_owed;              /* a Target= was sent and the return has not completed */
        uint64_t balloon_back_bytes;
        uint64_t balloon_target_usec;   /* from the provocation's start until Target= was reached */
        uint64_t balloon_start_bytes;   /* the guest's memory as the balloon left it, before … */
        uint64_t balloon_reached_bytes; /* … and at Target= (BALLOON_SIZE_UNKNOWN when not known) */
        void *hotplug;                  /* the virtio-mem step in flight (ctx->hotplug_cancel()) */
        bool hotplug_returning;         /* the second step: back to Return= */
        bool hotplug_owed;              /* a Target= was sent and the return has not completed */
        uint64_t hotplug_target_usec;   /* from the provocation's start until Target= was reached */
        uint64_t hotplug_reached_bytes, hotplug_returned_bytes; /* the plugged sizes read (UINT64_MAX: not read) */
        DirtyRateMeasurement *dirty_rate;       /* the measurement in flight in the settle phase */
        uint64_t settle_start_usec;
        MigrationHistory *migrations_busy;      /* a migration run of ours is in progress there */
        bool have_residency_before;
        NumaResidency residency_before, residency_after;
        bool have_residency_after;
        uint64_t moved_pages, moved_bytes, migrate_usec, moves, moves_failed;
        bool have_guest_ram;            /* Scope=guest-ram: what move_pages(2) reported, summed over the moves */
        uint64_t guest_ram_asked, guest_ram_moved, guest_ram_failed;
        GuestRamErrno guest_ram_errnos[NUMA_GUEST_RAM_MAX_ERRNOS];
        size_t n_guest_ram_errnos;
        sd_event_source *timer;         /* Settle= between iterations */
        struct ExperimentSummary *summary; /* the statistics of the iterations recorded so far (NULL: read back) */
        json_object *provenance_doc;    /* what provenance.json holds (a matrix run adds to it) */

        /* a matrix run (experiment-matrix-run.c); n_variants == 0 otherwise */
        size_t n_variants;
        size_t *schedule, n_blocks;     /* the variant of each block, in order */
        size_t block;                   /* the block in flight (n_blocks: all done) */
        uint64_t block_done;            /* iterations recorded in it */
        uint64_t block_planned;         /* its warm-up and measured iterations */
        uint64_t *variant_measured;     /* measured iterations recorded per variant */
        bool *variant_booted;           /* its guest provenance is in provenance_doc */
        struct ExperimentSummary **variant_summaries;  /* per variant, as summary (NULL: read back) */
        void *restart;                  /* the restart in flight (ctx->restart_cancel()) */
        bool restore_owed;              /* a variant may run: give the guest its definition back at the end */
};

static inline json_object *json_unavailable_new(const char *reason) {
        json_object *o = json_object_new_object();

        if (o && json_object_object_add(o, "unavailable", json_object_new_string(reason ?: "unknown")) < 0) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

bool run_op_end(ExperimentRun *run);
void run_finish(ExperimentRun *run, ExperimentState state, const char *reason);
void run_fail(ExperimentRun *run, const char *format, ...) _printf_(2, 3);
int run_guest(ExperimentRun *run, ExperimentGuest *ret);
void run_create(ExperimentRun *run);
void run_iteration_begin(ExperimentRun *run);
int run_guest_provenance(ExperimentRun *run, const ExperimentGuest *g, json_object **ret);
void run_settle_then_iterate(ExperimentRun *run);

/* Matrix runs (experiment-matrix-run.c). */
static inline bool run_is_matrix(const ExperimentRun *run) {
        return run->n_variants > 0;
}
int run_matrix_init(ExperimentRun *run, const ExperimentGuest *g, ExperimentStartFailure *f);
int run_matrix_provenance(ExperimentRun *run, json_object *provenance);
void run_matrix_free(ExperimentRun *run);
/* The next block: the guest restarted with its variant, then its iterations. */
void run_block_begin(ExperimentRun *run);
/* An iteration of the block in flight was recorded: the next iteration, the next block or the end. */
void run_matrix_recorded(ExperimentRun *run, json_object *record);
/* The record's "variant" and "block", and whether it is a warm-up iteration. */
int run_matrix_record_fields(ExperimentRun *run, json_object *o);
bool run_is_warm_up(const ExperimentRun *run);
/* The statistics: {"iterations","warmUp","statistics":[],"unavailable":[],"variants":[…]}. */
int run_matrix_summary(ExperimentRun *run, json_object **ret);
void run_matrix_end(ExperimentRun *run, bool restore);

/* An experiment that ends with its balloon at Target= gives the guest its memory back (no wait, no callback). */
void run_balloon_restore(ExperimentRun *run);
/* The same for a virtio-mem device left at Target=: back to Return= (no wait). */
void run_hotplug_restore(ExperimentRun *run);
