/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Runs one experiment (experiment-spec.h) on one running guest: provenance first, then Iterations= times
 *
 *     before:  host /proc/vmstat, tracepoint counts (trace/), QMP query-stats, the guest's counters (agent)
 *     provoke: nothing | one migration (numa-migration.h) | a ping-pong of Moves= | balloon to Target= and back
 *              | virtio-mem to Target= and back (the context's hotplug())
 *              with the workload (agent guest-exec) started before it (When=during) or after it (When=after)
 *     after:   the same readings again
 *     record:  one JSON record of the deltas (docs: memvisor.experiment(5) RESULTS), appended to the store and
 *              fsync()ed, then Settle= before the next iteration; with Counters=dirty-rate a dirty-rate
 *              measurement (qmp-dirty-rate.h) runs at the start of Settle= and the record waits for it
 *
 * The provocation goes through the typed balloon and NUMA APIs, handed what the caller's lookup returns; nothing
 * here knows how guests are supervised or how the result reaches a client. Every step is asynchronous on the
 * event loop; the provenance (which runs QEMU --version) is collected in a worker thread. A counter set that
 * cannot be taken is recorded in each iteration's "unavailable" with the reason, never as 0; those listed in
 * Require= fail the start instead.
 *
 * An experiment ends completed (every iteration recorded), cancelled (experiment_run_cancel(): after the
 * iteration in flight, which is recorded when it completes), or failed: the guest stopped or restarted, a
 * provocation or the workload failed, the store could not write. Its iterations so far stay in the store. */

#include <systemd/sd-event.h>

#include "balloon/balloon-controller.h"
#include "basic/macro.h"
#include "experiment/experiment-spec.h"
#include "experiment/experiment-store.h"
#include "numa/numa-guest-ram.h"
#include "numa/numa-migration.h"
#include "qga/qga-client.h"
#include "qmp/qmp-client.h"

/* Where the guest runs now and the handles to act on it; pointers are borrowed for the call that got them. */
typedef struct ExperimentGuest {
        pid_t pid;                              /* QEMU */
        bool tcg;                               /* no KVM: no KVM exits or statistics */
        const pid_t *vcpu_threads;
        size_t n_vcpu_threads;
        QmpClient *qmp;                         /* NULL: not connected */
        QgaClient *agent;                       /* NULL: no agent ready */
        const char *agent_reason;               /* why not, when agent is NULL */
        BalloonController *balloon;             /* NULL: no balloon device */
        const BalloonGuestConfig *balloon_config;
        MigrationHistory *migrations;           /* the guest's history (moves are recorded there too) */
        const MigrationContext *migration_context;
        const char *private_memory;             /* a confidential guest ([VM] Confidential=): why the balloon,
                                                 * virtio-mem and page migration cannot act on its memory;
                                                 * NULL: they can */
        bool hugepages;                         /* the guest's memory is in huge pages … */
        uint64_t memory_bytes;                  /* … of this size (for the migration's checks) */
        uint64_t hotplug_bytes;                 /* the virtio-mem device's HotplugSize=; 0: the guest has none */
        uint64_t hotplug_block_bytes;           /* … and its block size */
        uint64_t backend_sizes[NUMA_GUEST_RAM_MAX_BACKENDS];    /* Scope=guest-ram: the memory backends' sizes */
        size_t n_backends;                      /* (none: one backend of memory_bytes) */
        const char *definition;                 /* the guest's .vm text, for the provenance */
        const char *qemu_binary;
} ExperimentGuest;

/* The end of a virtio-mem step: error 0 and the device's plugged size (UINT64_MAX: not read), or a negative
 * errno with the reason in words; elapsed_usec from the request until then. */
typedef void (*ExperimentHotplugDone)(int error, const char *reason, uint64_t size_bytes, uint64_t elapsed_usec,
                                      void *userdata);

/* A matrix run's restart of its guest: 0, or a negative errno with the reason in words (a guest that did not
 * boot: what its console showed last). */
typedef void (*ExperimentRestartDone)(int error, const char *reason, void *userdata);

typedef struct ExperimentContext {
        sd_event *event;
        const char *root;                       /* "/": /proc, /sys (tracefs below it) */
        ExperimentStore *store;
        /* 0 and *ret while the guest runs; -ESRCH when it does not. */
        int (*lookup)(const char *guest, void *userdata, ExperimentGuest *ret);
        /* Matrix runs (NULL: refused). Restarts the guest with names[i]=values[i] applied to its definition
         * (vm_spec_with_settings(); label says whose variant it is), and waits until it runs and, when agent,
         * its agent is ready, at most timeout_usec; then done() exactly once, possibly from within the call.
         * *ret_handle is for restart_cancel(), which makes done() come at once with -ECANCELED. */
        int (*restart)(const char *guest, const char *label, const char *const *names, const char *const *values,
                       size_t n, bool agent, uint64_t timeout_usec, ExperimentRestartDone done, void *done_userdata,
                       void *userdata, void **ret_handle);
        void (*restart_cancel)(void *handle, void *userdata);
        /* After a matrix run: the guest gets its definition back (a restart when a variant runs), not waited for. */
        void (*restore)(const char *guest, void *userdata);
        /* Operation=hotplug (NULL: refused). Sets the guest's virtio-mem requested size through the API of
         * SetHotplugMemory and, with wait, follows its size until it is size_bytes or timeout_usec passed; then
         * done() exactly once, never from within the call (done NULL: nobody waits). A negative errno with
         * *ret_reason when nothing was sent. *ret_handle is for hotplug_cancel(), which makes done() come at once
         * with -ECANCELED. */
        int (*hotplug)(const char *guest, uint64_t size_bytes, bool wait, uint64_t timeout_usec,
                       ExperimentHotplugDone done, void *done_userdata, void *userdata, void **ret_handle,
                       char **ret_reason);
        void (*hotplug_cancel)(void *handle, void *userdata);
        void *userdata;
} ExperimentContext;

typedef struct ExperimentRun ExperimentRun;

typedef struct ExperimentRunCallbacks {
        /* The provenance is written and the first iteration starts: id is the experiment's (optional). */
        void (*started)(ExperimentRun *run, const char *id, void *userdata);
        /* An iteration was recorded (record borrowed for the call). Optional. */
        void (*iteration)(ExperimentRun *run, uint64_t done, uint64_t planned, json_object *record, void *userdata);
        /* Exactly once per begun run: the end (state completed, failed or cancelled; reason for failed). id is
         * NULL when the experiment never reached the store (the failure came before, reason says why). The
         * run frees itself after this returns. */
        void (*finished)(ExperimentRun *run, const char *id, ExperimentState state, const char *reason,
                         void *userdata);
} ExperimentRunCallbacks;

/* The statistics of a stored matrix run (its provenance has "matrix"), as the run gives them: {"iterations",
 * "warmUp", "statistics": [], "unavailable": [], "variants": [{"variant", "settings", "iterations", "warmUp",
 * "statistics", "unavailable"}]}. -ENOENT when the provenance is not a matrix run's. */
int experiment_matrix_summary_from_store(ExperimentStore *store, const char *id, json_object *provenance,
                                         json_object **ret);

/* Why a start was refused before anything ran: the field of the definition or the counter set at fault. */
typedef enum ExperimentStartError {
        EXPERIMENT_START_OK,
        EXPERIMENT_START_NOT_RUNNING,           /* the guest does not run */
        EXPERIMENT_START_COUNTER_UNAVAILABLE,   /* a Require= counter set cannot be taken: counter, reason */
        EXPERIMENT_START_INVALID,               /* the operation cannot run on this guest: field, reason */
} ExperimentStartError;

typedef struct ExperimentStartFailure {
        ExperimentStartError error;
        const char *field;                      /* static: "Provoke.To", or NULL */
        char *counter;
        char *reason;
} ExperimentStartFailure;

void experiment_start_failure_done(ExperimentStartFailure *f);

/* Checks that the guest runs and the counters of Require= can be taken, opens the counters, and returns the run
 * (not started). Takes spec. ctx must outlive the run. -EINVAL etc. with *ret_failure filled for the caller's
 * errors; other negative errnos are internal. */
int experiment_run_new(const ExperimentContext *ctx, ExperimentSpec *spec, const ExperimentRunCallbacks *cb,
                       void *userdata, ExperimentRun **ret, ExperimentStartFailure *ret_failure);
/* Starts it (the provenance in a worker first). From here on finished() is called exactly once, possibly from
 * within this call; the run frees itself after it. */
void experiment_run_begin(ExperimentRun *run);
/* No further iteration; the one in flight completes and is recorded. */
void experiment_run_cancel(ExperimentRun *run);
/* The daemon goes away: ends the run now without a callback; the store marks the experiment interrupted at the
 * next load (its state stays "running" on disk). */
ExperimentRun *experiment_run_abandon(ExperimentRun *run);

const char *experiment_run_guest(const ExperimentRun *run);
const char *experiment_run_id(const ExperimentRun *run);        /* NULL before the store has it */
uint64_t experiment_run_done(const ExperimentRun *run);
uint64_t experiment_run_planned(const ExperimentRun *run);
const ExperimentSpec *experiment_run_spec(const ExperimentRun *run);
/* The statistics of the iterations recorded so far, as experiment_summary_to_json() gives them, kept as they are
 * recorded (no reading back); -ESRCH before the store has the experiment. */
int experiment_run_statistics(ExperimentRun *run, json_object **ret);
