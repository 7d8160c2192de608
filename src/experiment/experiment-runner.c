/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/strv.h"
#include "basic/worker.h"
#include "experiment/experiment-measure.h"
#include "experiment/experiment-runner-internal.h"
#include "experiment/experiment-summary.h"
#include "experiment/provenance.h"

#define QEMU_VERSION_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define STATS_TIMEOUT_USEC (5 * USEC_PER_SEC)

void experiment_start_failure_done(ExperimentStartFailure *f) {
        free(f->counter);
        free(f->reason);
        *f = (ExperimentStartFailure) {};
}

static int start_failure(ExperimentStartFailure *f, ExperimentStartError e, const char *field, const char *counter,
                         const char *format, ...) _printf_(5, 6);
static int start_failure(ExperimentStartFailure *f, ExperimentStartError e, const char *field, const char *counter,
                         const char *format, ...) {
        va_list ap;
        int k;

        experiment_start_failure_done(f);
        f->error = e;
        f->field = field;
        if (counter && !(f->counter = strdup(counter)))
                return -ENOMEM;
        va_start(ap, format);
        k = vasprintf(&f->reason, format, ap);
        va_end(ap);
        return k < 0 ? -ENOMEM : -EINVAL;
}

/* ---- lifetime ---- */

static void run_free(ExperimentRun *run) {
        if (!run)
                return;
        sd_event_source_disable_unref(run->timer);
        worker_free(run->worker);
        provenance_done(&run->provenance);
        free(run->guest_provenance_error);
        json_object_put(run->guest_provenance);
        experiment_snapshot_done(&run->before);
        experiment_snapshot_done(&run->after);
        experiment_record_done(&run->record);
        json_object_put(run->workload_json);
        free(run->workload_error);
        free(run->provoke_error);
        experiment_measure_free(run->measure);
        experiment_summary_free(run->summary);
        run_matrix_free(run);
        json_object_put(run->provenance_doc);
        experiment_spec_free(run->spec);
        free(run->id);
        free(run);
}

/* An asynchronous operation of the run ends: false when the run is over (ended or abandoned) and must not go on;
 * the last such operation frees it. */
bool run_op_end(ExperimentRun *run) {
        assert(run->n_pending > 0);
        run->n_pending--;
        if (!run->over)
                return true;
        if (run->n_pending == 0)
                run_free(run);
        return false;
}

static void run_release(ExperimentRun *run) {
        run->over = true;
        sd_event_source_disable_unref(run->timer);
        run->timer = NULL;
        if (run->n_pending == 0)
                run_free(run);
}

/* The statistics of what was recorded: kept as it was recorded, else read back from the store. */
static int run_summary(ExperimentRun *run, json_object **ret) {
        if (run_is_matrix(run))
                return run_matrix_summary(run, ret);
        if (run->summary)
                return experiment_summary_to_json(run->summary, ret);
        return experiment_summary_from_store(run->ctx->store, run->id, NULL, ret);
}

/* The end: recorded in the store (when it has the experiment), then the owner told once. */
void run_finish(ExperimentRun *run, ExperimentState state, const char *reason) {
        _cleanup_json_ json_object *summary = NULL;
        _cleanup_free_ char *why = NULL;
        int r;

        if (run->over)
                return;
        run_balloon_restore(run);
        run_hotplug_restore(run);
        if (run->id) {
                r = run_summary(run, &summary);
                if (r < 0)
                        log_warning_errno(r, "Experiment %s: its statistics could not be computed, ignoring: %m",
                                          run->id);
                r = experiment_store_finish(run->ctx->store, run->id, state, reason, summary);
                if (r < 0 && summary) {
                        /* A full disk: the end counts more than the statistics, which a reader can compute
                         * again from the iterations. */
                        log_warning_errno(r, "Experiment %s: could not write its statistics, recording its end "
                                          "without them: %m", run->id);
                        r = experiment_store_finish(run->ctx->store, run->id, state, reason, NULL);
                }
                if (r < 0) {
                        log_warning_errno(r, "Experiment %s: could not record its end (%s): %m", run->id,
                                          experiment_state_to_string(state));
                        if (state == EXPERIMENT_COMPLETED) {
                                state = EXPERIMENT_FAILED;
                                if (asprintf(&why, "its end could not be recorded: %s", strerror(-r)) < 0)
                                        why = NULL;
                                reason = why ?: "its end could not be recorded";
                        }
                }
        }
        if (state == EXPERIMENT_FAILED)
                log_warning("Experiment %s on %s failed after %" PRIu64 " of %" PRIu64 " iterations: %s",
                            strna(run->id), run->spec->guest, run->done, run->planned, strna(reason));
        else
                log_info("Experiment %s on %s %s after %" PRIu64 " of %" PRIu64 " iterations.", strna(run->id),
                         run->spec->guest, experiment_state_to_string(state), run->done, run->planned);
        run->over = true;       /* no callback of a pending operation goes on from here */
        run->n_pending++;       /* a restart cancelled now calls back: it must not free the run under us */
        run_matrix_end(run, /* restore= */ true);
        run->n_pending--;
        if (run->callbacks.finished)
                run->callbacks.finished(run, run->id, state, reason, run->userdata);
        run_release(run);
}

void run_fail(ExperimentRun *run, const char *format, ...) {
        _cleanup_free_ char *reason = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&reason, format, ap) < 0)
                reason = NULL;
        va_end(ap);
        run_finish(run, EXPERIMENT_FAILED, reason ?: "out of memory");
}

/* ---- the guest ---- */

/* Where the guest runs now, only while it is the QEMU the experiment started on. */
int run_guest(ExperimentRun *run, ExperimentGuest *ret) {
        int r = run->ctx->lookup(run->spec->guest, run->ctx->userdata, ret);

        if (r == -ESRCH) {
                run_fail(run, "the guest %s stopped", run->spec->guest);
                return r;
        }
        if (r < 0) {
                run_fail(run, "the guest %s could not be looked up: %s", run->spec->guest, strerror(-r));
                return r;
        }
        if (ret->pid != run->pid) {
                run_fail(run, "the guest %s restarted (QEMU %d, now %d)", run->spec->guest, (int) run->pid,
                         (int) ret->pid);
                return -ESRCH;
        }
        return 0;
}

/* ---- starting ---- */

static int check_required(ExperimentRun *run, const ExperimentGuest *g, ExperimentStartFailure *f) {
        const ExperimentSpec *s = run->spec;

        for (ExperimentCounter c = 0; c < _EXPERIMENT_COUNTER_MAX; c++) {
                const char *why = NULL;

                if (!(s->counters & EXPERIMENT_COUNTER_MASK(c)))
                        continue;
                if (c == EXPERIMENT_COUNTER_GUEST_VMSTAT || c == EXPERIMENT_COUNTER_GUEST_INTERRUPTS ||
                    c == EXPERIMENT_COUNTER_WORKLOAD)
                        why = g->agent ? NULL : (g->agent_reason ?: "the guest agent is not connected");
                else if (c == EXPERIMENT_COUNTER_DIRTY_RATE)
                        /* What can be known before QEMU is asked (qmp-dirty-rate.h refuses the same). */
                        why = !g->qmp ? "QMP is not connected"
                              : g->tcg && s->dirty_rate_mode != DIRTY_RATE_MODE_PAGE_SAMPLING
                                      ? "DirtyRateMode=dirty-bitmap and dirty-ring need KVM; the guest runs under TCG"
                                      : NULL;
                else
                        why = experiment_measure_unavailable(run->measure, c);
                if (c == EXPERIMENT_COUNTER_WORKLOAD && s->when == EXPERIMENT_WORKLOAD_NONE)
                        why = "no workload ([Workload] When=none)";
                if (why && (s->required & EXPERIMENT_COUNTER_MASK(c)))
                        return start_failure(f, EXPERIMENT_START_COUNTER_UNAVAILABLE, "Measure.Require",
                                             experiment_counter_to_string(c), "%s: %s",
                                             experiment_counter_to_string(c), why);
        }
        return 0;
}

static int check_operation(ExperimentRun *run, const ExperimentGuest *g, ExperimentStartFailure *f) {
        const ExperimentSpec *s = run->spec;

        if (g->private_memory && (s->operation == EXPERIMENT_OPERATION_BALLOON ||
                                  s->operation == EXPERIMENT_OPERATION_HOTPLUG ||
                                  s->operation == EXPERIMENT_OPERATION_MIGRATE ||
                                  s->operation == EXPERIMENT_OPERATION_MIGRATE_PINGPONG))
                return start_failure(f, EXPERIMENT_START_INVALID, "Provoke.Operation", NULL, "the guest %s: %s",
                                     s->guest, g->private_memory);
        switch (s->operation) {
        case EXPERIMENT_OPERATION_BALLOON:
                if (!g->balloon || !g->balloon_config || !g->balloon_config->device)
                        return start_failure(f, EXPERIMENT_START_INVALID, "Provoke.Operation", NULL,
                                             "the guest %s has no balloon device (Balloon=yes in its .vm)",
                                             s->guest);
                return 0;
        case EXPERIMENT_OPERATION_HOTPLUG:
                if (!run->ctx->hotplug || g->hotplug_bytes == 0 || g->hotplug_block_bytes == 0)
                        return start_failure(f, EXPERIMENT_START_INVALID, "Provoke.Operation", NULL,
                                             "the guest %s has no virtio-mem device ([Memory] MaxMemory= and "
                                             "HotplugSize= in its .vm)", s->guest);
                if (s->target_bytes > g->hotplug_bytes || s->target_bytes % g->hotplug_block_bytes != 0)
                        return start_failure(f, EXPERIMENT_START_INVALID, "Provoke.Target", NULL,
                                             "Target= must be a multiple of %" PRIu64 " (the device's block size) "
                                             "up to %" PRIu64 " (HotplugSize= of %s)", g->hotplug_block_bytes,
                                             g->hotplug_bytes, s->guest);
                if (s->return_bytes > g->hotplug_bytes || s->return_bytes % g->hotplug_block_bytes != 0)
                        return start_failure(f, EXPERIMENT_START_INVALID, "Provoke.Return", NULL,
                                             "Return= must be a multiple of %" PRIu64 " (the device's block size) "
                                             "up to %" PRIu64 " (HotplugSize= of %s)", g->hotplug_block_bytes,
                                             g->hotplug_bytes, s->guest);
                return 0;
        case EXPERIMENT_OPERATION_MIGRATE:
        case EXPERIMENT_OPERATION_MIGRATE_PINGPONG:
                if (!g->migrations || !g->migration_context)
                        return start_failure(f, EXPERIMENT_START_INVALID, "Provoke.Operation", NULL,
                                             "page migration is not available for the guest %s", s->guest);
                if (migration_history_busy(g->migrations, NULL))
                        return start_failure(f, EXPERIMENT_START_INVALID, "Provoke.Operation", NULL,
                                             "a migration of the guest %s is in progress: cancel it first "
                                             "(CancelMigrations)", s->guest);
                return 0;
        case EXPERIMENT_OPERATION_NONE:
        case _EXPERIMENT_OPERATION_MAX:
        case _EXPERIMENT_OPERATION_INVALID:
                break;
        }
        return 0;
}

int experiment_run_new(const ExperimentContext *ctx, ExperimentSpec *spec, const ExperimentRunCallbacks *cb,
                       void *userdata, ExperimentRun **ret, ExperimentStartFailure *ret_failure) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = spec;
        ExperimentGuest g = {};
        ExperimentRun *run;
        int r;

        assert(ctx && spec && ret && ret_failure);
        *ret_failure = (ExperimentStartFailure) {};
        r = ctx->lookup(spec->guest, ctx->userdata, &g);
        if (r == -ESRCH)
                return start_failure(ret_failure, EXPERIMENT_START_NOT_RUNNING, "Experiment.Guest", NULL,
                                     "the guest %s is not running", spec->guest);
        if (r < 0)
                return r;

        run = calloc(1, sizeof(ExperimentRun));
        if (!run)
                return -ENOMEM;
        run->ctx = ctx;
        run->spec = TAKE_PTR(s);
        run->callbacks = cb ? *cb : (ExperimentRunCallbacks) {};
        run->userdata = userdata;
        run->pid = g.pid;
        run->planned = run->spec->iterations;
        r = experiment_measure_open(ctx->root, run->spec, &g, &run->measure);
        if (r >= 0)
                r = check_operation(run, &g, ret_failure);
        if (r >= 0 && run->spec->when != EXPERIMENT_WORKLOAD_NONE && !g.agent)
                r = start_failure(ret_failure, EXPERIMENT_START_INVALID, "Workload.When", NULL,
                                  "the workload runs through the guest agent, which is not connected: %s",
                                  g.agent_reason ?: "unknown");
        if (r >= 0)
                r = check_required(run, &g, ret_failure);
        if (r >= 0)
                r = run_matrix_init(run, &g, ret_failure);
        if (r >= 0) {
                _cleanup_free_ char *known = NULL;
                const char *name = NULL;

                r = experiment_measure_check_tracepoints(run->measure, run->spec, &name, &known);
                if (r == -ENOENT)
                        r = start_failure(ret_failure, EXPERIMENT_START_INVALID, "Measure.Tracepoints", NULL,
                                          "the kernel has no tracepoint %s; there are: %s", name, strempty(known));
        }
        if (r < 0) {
                run_free(run);
                return r;
        }
        *ret = run;
        return 0;
}

/* ---- provenance (worker thread, then the guest side on the loop) ---- */

typedef struct ProvenanceJob {
        char *root;
        char *qemu_binary;
        Provenance *p;
} ProvenanceJob;

static int provenance_job(Worker *w, void *arg) {
        ProvenanceJob *job = arg;
        int r;

        (void) w;
        r = provenance_collect(job->root, job->p);
        if (r < 0)
                return r;
        return provenance_collect_qemu(job->p, job->qemu_binary ?: "qemu-system-x86_64",
                                       QEMU_VERSION_TIMEOUT_USEC);
}

static ProvenanceJob *provenance_job_free(ProvenanceJob *job) {
        if (!job)
                return NULL;
        free(job->root);
        free(job->qemu_binary);
        return mfree(job);
}

int run_guest_provenance(ExperimentRun *run, const ExperimentGuest *g, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *argv = json_object_new_array();
        _cleanup_free_ char *path = NULL, *cmdline = NULL;
        size_t size = 0;
        int r;

        if (!o || !argv)
                return -ENOMEM;
        r = json_add_string(o, "name", run->spec->guest);
        if (r >= 0)
                r = json_add_int(o, "qemuPid", g->pid);
        if (r >= 0)
                r = json_add_string(o, "accelerator", g->tcg ? "tcg" : "kvm");
        if (r >= 0)
                r = json_add_int(o, "vcpuThreads", (int64_t) g->n_vcpu_threads);
        if (r >= 0)
                r = json_add_string(o, "definition", g->definition);
        if (r < 0)
                return r;
        if (asprintf(&path, "%s/proc/%d/cmdline", streq(run->ctx->root ?: "/", "/") ? "" : run->ctx->root,
                     (int) g->pid) < 0)
                return -ENOMEM;
        r = read_full_file(path, 256 * 1024, &cmdline, &size);
        if (r >= 0) {
                for (size_t i = 0; i < size; i += strlen(cmdline + i) + 1)
                        if (json_object_array_add(argv, json_object_new_string(cmdline + i)) < 0)
                                return -ENOMEM;
                r = json_add(o, "qemuArgv", TAKE_PTR(argv));
        } else
                r = json_add(o, "qemuArgv", json_unavailable_new(strerror(-r)));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static void provenance_done_cb(Worker *w, int code, bool done, int result, void *userdata);

static void guest_info_cb(QgaClient *c, const QgaError *error, const QgaGuestInfo *info, void *userdata) {
        ExperimentRun *run = userdata;
        int r;

        (void) c;
        if (!run_op_end(run))
                return;
        if (error || !info)
                r = json_add(run->guest_provenance, "kernelRelease",
                             json_unavailable_new(error && error->description ? error->description
                                                                               : "the guest agent did not say"));
        else if (info->kernel_release)
                r = json_add_string(run->guest_provenance, "kernelRelease", info->kernel_release);
        else
                r = json_add(run->guest_provenance, "kernelRelease",
                             json_unavailable_new("the guest agent did not say"));
        if (r >= 0 && info && info->agent_version)
                r = json_add_string(run->guest_provenance, "agentVersion", info->agent_version);
        if (r < 0)
                return run_fail(run, "out of memory");
        run_create(run);
}

void experiment_run_begin(ExperimentRun *run) {
        ProvenanceJob *job;
        ExperimentGuest g;
        int r;

        if (run_guest(run, &g) < 0)
                return;
        r = run_guest_provenance(run, &g, &run->guest_provenance);
        if (r < 0)
                return run_fail(run, "the guest's provenance: %s", strerror(-r));
        job = calloc(1, sizeof(ProvenanceJob));
        if (!job || !(job->root = strdup(run->ctx->root ?: "/")) ||
            (g.qemu_binary && !(job->qemu_binary = strdup(g.qemu_binary)))) {
                provenance_job_free(job);
                return run_fail(run, "out of memory");
        }
        job->p = &run->provenance;
        run->job = job;
        r = worker_start(run->ctx->event, "experiment-provenance", provenance_job, job, provenance_done_cb, run,
                         &run->worker);
        if (r < 0) {
                run->job = provenance_job_free(job);
                return run_fail(run, "could not start the provenance worker: %s", strerror(-r));
        }
        run->n_pending++;
}

static void provenance_done_cb(Worker *w, int code, bool done, int result, void *userdata) {
        ExperimentRun *run = userdata;
        ExperimentGuest g;
        int r;

        (void) w;
        (void) code;
        if (!done)
                return;
        run->job = provenance_job_free(run->job);
        run->worker = worker_free(run->worker);         /* joined already: the callback may free it */
        if (!run_op_end(run))
                return;
        if (result < 0)
                return run_fail(run, "the provenance could not be collected: %s", strerror(-result));
        if (run_guest(run, &g) < 0)
                return;
        if (!g.agent) {
                r = json_add(run->guest_provenance, "kernelRelease",
                             json_unavailable_new(g.agent_reason ?: "the guest agent is not connected"));
                if (r < 0)
                        return run_fail(run, "out of memory");
                return run_create(run);
        }
        r = qga_get_guest_info(g.agent, guest_info_cb, run);
        if (r < 0) {
                r = json_add(run->guest_provenance, "kernelRelease", json_unavailable_new(strerror(-r)));
                if (r < 0)
                        return run_fail(run, "out of memory");
                return run_create(run);
        }
        run->n_pending++;
}

/* The experiment goes into the store with its definition and provenance; then the first iteration. */
void run_create(ExperimentRun *run) {
        _cleanup_json_ json_object *definition = NULL, *provenance = NULL;
        const char *id;
        int r;

        r = experiment_spec_to_json(run->spec, &definition);
        if (r >= 0)
                r = provenance_to_json(&run->provenance, &provenance);
        if (r >= 0)
                r = json_add(provenance, "guest", json_object_get(run->guest_provenance));
        if (r >= 0 && run_is_matrix(run))
                r = run_matrix_provenance(run, provenance);
        if (r < 0)
                return run_fail(run, "the definition or provenance could not be written: %s", strerror(-r));
        r = experiment_store_create(run->ctx->store, run->spec->guest, run->planned, definition, provenance, &id);
        if (r < 0)
                return run_fail(run, "the experiment could not be stored: %s", strerror(-r));
        run->id = strdup(id);
        if (!run->id)
                return run_fail(run, "out of memory");
        run->provenance_doc = json_object_get(provenance);
        log_info("Experiment %s on %s started: %s, %" PRIu64 " iterations.", run->id, run->spec->guest,
                 experiment_operation_to_string(run->spec->operation), run->planned);
        if (!run_is_matrix(run) && experiment_summary_new(&run->summary) < 0)
                run->summary = NULL;    /* read back at the end instead */
        if (run->callbacks.started) {
                run->n_pending++;       /* the callback may abandon the run: it must not be freed under us */
                run->callbacks.started(run, run->id, run->userdata);
                if (!run_op_end(run))
                        return;
        }
        if (run->over)
                return;
        if (run_is_matrix(run))
                return run_block_begin(run);
        run_iteration_begin(run);
}

/* ---- the owner's handles ---- */

void experiment_run_cancel(ExperimentRun *run) {
        if (!run || run->over)
                return;
        run->cancelled = true;
        if (run->restart) {     /* a matrix run's restart: its done() comes now, and ends the run */
                run->ctx->restart_cancel(run->restart, run->ctx->userdata);
                return;
        }
        if (run->timer) {       /* between iterations: end now */
                run->timer = sd_event_source_disable_unref(run->timer);
                run_finish(run, EXPERIMENT_CANCELLED, "cancelled");
        }
}

ExperimentRun *experiment_run_abandon(ExperimentRun *run) {
        if (!run || run->over)
                return NULL;
        /* Over first, so that what the cancellations below call back with goes no further, and held by a
         * pending count of our own, so that none of them frees the run under us. */
        run->over = true;
        run->n_pending++;
        if (run->balloon_wait)
                balloon_wait_cancel(run->balloon_wait);         /* its callback comes now */
        run_matrix_end(run, /* restore= */ false);               /* the same for a restart in flight */
        run_balloon_restore(run);
        if (run->hotplug)
                run->ctx->hotplug_cancel(run->hotplug, run->ctx->userdata);     /* its callback comes now */
        if (run->dirty_rate)
                dirty_rate_measurement_abort(run->dirty_rate, -ECANCELED, "the daemon is stopping");
        if (run->migrations_busy)
                migration_history_cancel(run->migrations_busy); /* the move in flight ends, then it calls back */
        if (run->worker) {
                /* The provenance: wait for the thread here, as its notification would never come once the
                 * loop stopped. */
                run->worker = worker_free(run->worker);
                run->job = provenance_job_free(run->job);
                run->n_pending--;
        }
        run->n_pending--;
        run_release(run);
        return NULL;
}

const char *experiment_run_guest(const ExperimentRun *run) {
        return run->spec->guest;
}

const char *experiment_run_id(const ExperimentRun *run) {
        return run->id;
}

uint64_t experiment_run_done(const ExperimentRun *run) {
        return run->done;
}

uint64_t experiment_run_planned(const ExperimentRun *run) {
        return run->planned;
}

int experiment_run_statistics(ExperimentRun *run, json_object **ret) {
        if (!run->id)
                return -ESRCH;
        return run_summary(run, ret);
}

const ExperimentSpec *experiment_run_spec(const ExperimentRun *run) {
        return run->spec;
}
