/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One iteration of an experiment: readings before, the provocation with the workload around it, readings after,
 * the record (experiment-runner.h). Each asynchronous step counts itself in run->n_pending and, when its callback
 * comes, goes on only while the run is not over (run_op_end()). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/strv.h"
#include "experiment/experiment-measure-internal.h"
#include "experiment/experiment-runner-internal.h"
#include "experiment/experiment-summary.h"

#define STATS_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define WORKLOAD_OUTPUT_MAX (256U * 1024U)

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static bool want(const ExperimentRun *run, ExperimentCounter c) {
        return run->spec->counters & EXPERIMENT_COUNTER_MASK(c);
}

static ExperimentSnapshot *snapshot(ExperimentRun *run) {
        return run->step == RUN_STEP_BEFORE ? &run->before : &run->after;
}

static void provoke(ExperimentRun *run);
static void after_provocation(ExperimentRun *run);
static void record_iteration(ExperimentRun *run);
static void settle_measure(ExperimentRun *run);

/* ---- the readings (before and after) ---- */

static void readings_done(ExperimentRun *run) {
        ExperimentGuest g;

        if (run_guest(run, &g) < 0)     /* a reading failed because the guest went away: that ends it */
                return;
        if (run->step == RUN_STEP_BEFORE)
                provoke(run);
        else
                settle_measure(run);
}

static void guest_counters_cb(QgaClient *c, const QgaError *error, const QgaGuestCounters *counters,
                              void *userdata) {
        ExperimentRun *run = userdata;
        ExperimentSnapshot *s;
        int r = 0;

        (void) c;
        if (!run_op_end(run))
                return;
        s = snapshot(run);
        if (error || !counters)
                r = asprintf(&s->guest_error, "the guest agent: %s",
                             error && error->description ? error->description : "no reading") < 0 ? -ENOMEM : 0;
        else
                r = experiment_snapshot_set_guest(s, counters);
        if (r < 0)
                return run_fail(run, "out of memory");
        readings_done(run);
}

static void read_guest(ExperimentRun *run) {
        ExperimentSnapshot *s = snapshot(run);
        ExperimentGuest g;
        int r;

        if (!want(run, EXPERIMENT_COUNTER_GUEST_VMSTAT) && !want(run, EXPERIMENT_COUNTER_GUEST_INTERRUPTS))
                return readings_done(run);
        if (run_guest(run, &g) < 0)
                return;
        if (!g.agent)
                r = (s->guest_error = strdup(g.agent_reason ?: "the guest agent is not connected")) ? 0 : -ENOMEM;
        else {
                r = qga_get_counters(g.agent, guest_counters_cb, run);
                if (r >= 0) {
                        run->n_pending++;
                        return;
                }
                r = asprintf(&s->guest_error, "the guest agent: %s", strerror(-r)) < 0 ? -ENOMEM : 0;
        }
        if (r < 0)
                return run_fail(run, "out of memory");
        readings_done(run);
}

static void kvm_stats_cb(KvmStats *stats, int error, void *userdata) {
        ExperimentRun *run = userdata;
        ExperimentSnapshot *s;

        if (!run_op_end(run)) {
                kvm_stats_free(stats);
                return;
        }
        s = snapshot(run);
        if (error < 0 || !stats || !kvm_stats_available(stats)) {
                kvm_stats_free(stats);
                if (asprintf(&s->kvm_error, "query-stats: %s", error < 0 ? strerror(-error) : "no statistics") < 0)
                        return run_fail(run, "out of memory");
        } else
                s->kvm = stats;
        read_guest(run);
}

static void readings(ExperimentRun *run) {
        ExperimentSnapshot *s = snapshot(run);
        ExperimentGuest g;
        int r;

        experiment_snapshot_done(s);
        s->monotonic_usec = now_usec(CLOCK_MONOTONIC);
        r = experiment_measure_read(run->measure, s);
        if (r < 0)
                return run_fail(run, "the host's counters could not be read: %s", strerror(-r));
        if (!want(run, EXPERIMENT_COUNTER_HOST_KVM_STATS) ||
            experiment_measure_unavailable(run->measure, EXPERIMENT_COUNTER_HOST_KVM_STATS))
                return read_guest(run);
        if (run_guest(run, &g) < 0)
                return;
        r = g.qmp ? kvm_stats_query(g.qmp, STATS_TIMEOUT_USEC, kvm_stats_cb, run) : -ENOTCONN;
        if (r < 0) {
                if (asprintf(&s->kvm_error, "query-stats: %s", strerror(-r)) < 0)
                        return run_fail(run, "out of memory");
                return read_guest(run);
        }
        run->n_pending++;
}

/* ---- the workload ---- */

/* The first line of what the program wrote to stderr, printable ASCII only, at most 200 bytes. */
static char *first_line(const char *s, size_t size) {
        size_t n = 0;
        char *t;

        while (n < size && n < 200 && s[n] != '\n')
                n++;
        t = strndup(s, n);
        if (t)
                for (char *p = t; *p; p++)
                        if ((unsigned char) *p < 0x20 || (unsigned char) *p >= 0x7f)
                                *p = '?';
        return t;
}

static void workload_cb(QgaClient *c, const QgaError *error, const QgaExecResult *result, void *userdata) {
        ExperimentRun *run = userdata;
        _cleanup_free_ char *line = NULL;
        int r = 0;

        (void) c;
        if (!run_op_end(run))
                return;
        run->workload_running = false;
        run->workload_done = true;
        if (error || !result)
                r = asprintf(&run->workload_error, "the workload could not run: %s",
                             error && error->description ? error->description : "no result");
        else if (!result->exited || result->exit_code != 0 || result->timed_out) {
                line = first_line(result->err ?: "", result->err_size);
                if (result->timed_out)
                        r = asprintf(&run->workload_error, "the workload %s did not end within its Timeout=",
                                     run->spec->program);
                else if (result->signal > 0)
                        r = asprintf(&run->workload_error, "the workload %s was killed by signal %d: %s",
                                     run->spec->program, result->signal, strempty(line));
                else
                        r = asprintf(&run->workload_error, "the workload %s exited with status %d: %s",
                                     run->spec->program, result->exit_code, strempty(line));
        } else {
                run->workload_usec = result->duration_usec;
                if (want(run, EXPERIMENT_COUNTER_WORKLOAD))
                        r = experiment_measure_workload(&run->record, result->out ?: "", result->out_size,
                                                        &run->workload_json);
        }
        if (r < 0)
                return run_fail(run, "out of memory");
        after_provocation(run);
}

static int workload_start(ExperimentRun *run) {
        _cleanup_(strv_freep) char **argv = NULL, **env = NULL;
        ExperimentGuest g;
        QgaExecRequest req;
        int r;

        if (run_guest(run, &g) < 0)
                return -ESRCH;
        if (!g.agent) {
                run_fail(run, "the workload runs through the guest agent, which is not connected: %s",
                         g.agent_reason ?: "unknown");
                return -ENOTCONN;
        }
        r = strv_extend(&argv, run->spec->program);
        for (size_t i = 0; r >= 0 && i < run->spec->n_arguments; i++)
                r = strv_extend(&argv, run->spec->arguments[i]);
        if (r < 0) {
                run_fail(run, "out of memory");
                return r;
        }
        r = strv_extend(&env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        if (r >= 0)
                r = strv_extendf(&env, "MEMVISOR_SEED=%" PRIu64, run->spec->seed + run->done);
        if (r >= 0)
                r = strv_extendf(&env, "MEMVISOR_EXPERIMENT_ITERATION=%" PRIu64, run->done + 1);
        if (r < 0) {
                run_fail(run, "out of memory");
                return r;
        }
        req = (QgaExecRequest) { .argv = argv, .env = env, .timeout_usec = run->spec->workload_timeout_usec,
                                 .max_output = WORKLOAD_OUTPUT_MAX };
        r = qga_exec(g.agent, &req, workload_cb, run);
        if (r < 0) {
                run_fail(run, "the workload could not be started: %s", strerror(-r));
                return r;
        }
        run->n_pending++;
        run->workload_running = true;
        return 0;
}

/* ---- the provocation ---- */

static void provocation_ended(ExperimentRun *run) {
        run->provoke_done = true;
        run->provoke_usec = now_usec(CLOCK_MONOTONIC) - run->provoke_start_usec;
        after_provocation(run);
}

static void migration_progress(const MigrationProgress *p, void *userdata) {
        ExperimentRun *run = userdata;

        if (run->over)
                return;
        if (p->phase == MIGRATION_PHASE_MIGRATING && p->move == 1 && p->residency_before) {
                run->residency_before = *p->residency_before;
                run->have_residency_before = true;
        } else if (p->phase == MIGRATION_PHASE_MOVED && p->report) {
                const MigrationReport *rep = p->report;

                run->have_residency_after = rep->have_after;
                if (rep->have_after)
                        run->residency_after = rep->after;
                if (rep->scope == MIGRATION_SCOPE_GUEST_RAM && rep->have_guest_ram) {
                        run->have_guest_ram = true;
                        run->guest_ram_asked += rep->guest_ram.pages_asked;
                        run->guest_ram_moved += rep->guest_ram.pages_moved;
                        run->guest_ram_failed += rep->guest_ram.pages_failed;
                        for (size_t i = 0; i < rep->guest_ram.n_failed && i < NUMA_GUEST_RAM_MAX_ERRNOS; i++) {
                                const GuestRamErrno *e = rep->guest_ram.failed + i;
                                size_t j = 0;

                                while (j < run->n_guest_ram_errnos && run->guest_ram_errnos[j].error != e->error)
                                        j++;
                                if (j == run->n_guest_ram_errnos) {
                                        if (j == NUMA_GUEST_RAM_MAX_ERRNOS)
                                                j--;    /* the rest under the last slot, as the report does */
                                        else    /* a new slot starts at 0 (not at the last iteration's) */
                                                run->guest_ram_errnos[run->n_guest_ram_errnos++] =
                                                        (GuestRamErrno) { .error = e->error };
                                }
                                run->guest_ram_errnos[j].pages += e->pages;
                        }
                }
        }
}

static void migration_finished(int error, const NumaError *details, const MigrationSummary *summary,
                               void *userdata) {
        ExperimentRun *run = userdata;

        run->migrations_busy = NULL;
        if (!run_op_end(run))
                return;
        if (error != 0) {
                const char *why = details && details->reason ? details->reason
                                  : error > 0 ? numa_error_code_to_string(error) : strerror(-error);

                if (asprintf(&run->provoke_error, "the migration failed: %s", strna(why)) < 0)
                        return run_fail(run, "out of memory");
        } else if (summary) {
                run->moves = summary->moves;
                run->moves_failed = summary->moves_failed;
                run->moved_pages = summary->pages_moved;
                run->moved_bytes = summary->bytes_moved;
                run->migrate_usec = summary->duration_usec;
                if (summary->moves_failed > 0 &&
                    asprintf(&run->provoke_error, "%" PRIu64 " of %" PRIu64 " moves failed",
                             (uint64_t) summary->moves_failed, (uint64_t) summary->moves) < 0)
                        return run_fail(run, "out of memory");
        }
        provocation_ended(run);
}

static int node_list(uint64_t mask, char *buf, size_t size) {
        size_t len = 0;

        buf[0] = 0;
        for (unsigned n = 0; n < 64; n++)
                if (mask & (UINT64_C(1) << n)) {
                        int w = snprintf(buf + len, size - len, "%s%u", len ? "," : "", n);

                        if (w < 0 || (size_t) w >= size - len)
                                return -ENOBUFS;
                        len += w;
                }
        return 0;
}

static void provoke_migration(ExperimentRun *run, const ExperimentGuest *g) {
        static const MigrationCallbacks callbacks = { .progress = migration_progress,
                                                      .finished = migration_finished };
        char from[256], to[256], between[256];
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        _cleanup_(numa_error_done) NumaError e = {};
        MigrationRun *mrun;
        int r;

        if (run->spec->operation == EXPERIMENT_OPERATION_MIGRATE) {
                if (node_list(run->spec->from_nodes, from, sizeof from) < 0 ||
                    node_list(run->spec->to_nodes, to, sizeof to) < 0)
                        return run_fail(run, "node lists too long");
                req.from = from;
                req.to = to;
        } else {
                if (node_list(run->spec->between_nodes, between, sizeof between) < 0)
                        return run_fail(run, "node lists too long");
                req.between = between;
                req.count = run->spec->moves;
                req.every_usec = 0;
        }
        req.settle_usec = 0;            /* the experiment reads its own counters after the provocation */
        req.pid = g->pid;
        req.hugepages = g->hugepages;
        req.memory_bytes = g->memory_bytes;
        req.scope = migration_scope_to_string(run->spec->scope);
        req.backend_sizes = g->backend_sizes;   /* copied by migration_run_new() */
        req.n_backends = g->n_backends;
        r = migration_run_new(g->migrations, g->migration_context, &req, &callbacks, run, &mrun, &e);
        if (r < 0 || e.code != 0)
                return run_fail(run, "the migration could not start: %s",
                                e.reason ?: e.code > 0 ? numa_error_code_to_string(e.code) : strerror(-r));
        run->migrations_busy = g->migrations;
        run->n_pending++;
        migration_run_begin(mrun);      /* may finish at once */
}

static void balloon_cb(int r, const BalloonTargetResult *result, const BalloonErrorInfo *error, void *userdata);

static void balloon_step(ExperimentRun *run, uint64_t target, bool returning) {
        _cleanup_(balloon_error_info_done) BalloonErrorInfo e = {};
        ExperimentGuest g;
        BalloonTargetRequest req = {
                .target_bytes = target,
                .requester = returning ? "experiment (return)" : "experiment",
                .wait = run->spec->wait,
                .timeout_usec = run->spec->timeout_usec,
        };
        int r;

        if (run_guest(run, &g) < 0)
                return;
        if (!g.balloon)
                return run_fail(run, "the guest %s has no balloon any more", run->spec->guest);
        run->balloon_returning = returning;
        r = balloon_controller_set_target(g.balloon, g.balloon_config, &req, balloon_cb, run, &run->balloon_wait,
                                          &e);
        if (r == 0 && !returning)
                run->balloon_owed = true;
        if (r != 0) {
                const char *why = e.reason ?: (r > 0 ? "refused" : strerror(-r));

                return run_fail(run, "the balloon could not be set to %" PRIu64 " bytes: %s", target, why);
        }
        run->n_pending++;
}

static void balloon_cb(int r, const BalloonTargetResult *result, const BalloonErrorInfo *error, void *userdata) {
        ExperimentRun *run = userdata;

        run->balloon_wait = NULL;
        if (!run_op_end(run))
                return;
        if (r != 0) {
                if (asprintf(&run->provoke_error, "the balloon did not reach %" PRIu64 " bytes: %s",
                             result ? result->target_bytes : 0,
                             error && error->reason ? error->reason : r < 0 ? strerror(-r) : "failed") < 0)
                        return run_fail(run, "out of memory");
                return provocation_ended(run);
        }
        if (run->balloon_returning)
                run->balloon_owed = false;
        if (!run->balloon_returning) {
                run->balloon_target_usec = now_usec(CLOCK_MONOTONIC) - run->provoke_start_usec;
                run->balloon_reached_bytes = result ? result->actual_bytes : BALLOON_SIZE_UNKNOWN;
                return balloon_step(run, run->balloon_back_bytes, true);
        }
        provocation_ended(run);
}

static void hotplug_cb(int error, const char *reason, uint64_t size_bytes, uint64_t elapsed_usec, void *userdata);

static void hotplug_step(ExperimentRun *run, uint64_t size, bool returning) {
        _cleanup_free_ char *reason = NULL;
        int r;

        run->hotplug_returning = returning;
        r = run->ctx->hotplug(run->spec->guest, size, run->spec->wait, run->spec->timeout_usec, hotplug_cb, run,
                              run->ctx->userdata, &run->hotplug, &reason);
        if (r < 0)
                return run_fail(run, "the virtio-mem device could not be set to %" PRIu64 " bytes: %s", size,
                                reason ?: strerror(-r));
        if (!returning)
                run->hotplug_owed = true;
        run->n_pending++;
}

static void hotplug_cb(int error, const char *reason, uint64_t size_bytes, uint64_t elapsed_usec, void *userdata) {
        ExperimentRun *run = userdata;

        (void) elapsed_usec;
        run->hotplug = NULL;
        if (!run_op_end(run))
                return;
        if (error < 0) {
                if (asprintf(&run->provoke_error, "the virtio-mem device did not reach %" PRIu64 " bytes: %s",
                             run->hotplug_returning ? run->spec->return_bytes : run->spec->target_bytes,
                             reason ?: strerror(-error)) < 0)
                        return run_fail(run, "out of memory");
                return provocation_ended(run);
        }
        if (!run->hotplug_returning) {
                run->hotplug_target_usec = now_usec(CLOCK_MONOTONIC) - run->provoke_start_usec;
                run->hotplug_reached_bytes = size_bytes;
                return hotplug_step(run, run->spec->return_bytes, true);
        }
        run->hotplug_owed = false;
        run->hotplug_returned_bytes = size_bytes;
        provocation_ended(run);
}

static void provoke(ExperimentRun *run) {
        ExperimentGuest g;
        uint64_t target = 0, actual = 0;

        run->step = RUN_STEP_PROVOKE;
        if (run->spec->when == EXPERIMENT_WORKLOAD_DURING && workload_start(run) < 0)
                return;
        if (run->over)
                return;
        if (run_guest(run, &g) < 0)
                return;
        run->provoke_start_usec = now_usec(CLOCK_MONOTONIC);
        switch (run->spec->operation) {
        case EXPERIMENT_OPERATION_NONE:
                return provocation_ended(run);
        case EXPERIMENT_OPERATION_MIGRATE:
        case EXPERIMENT_OPERATION_MIGRATE_PINGPONG:
                return provoke_migration(run, &g);
        case EXPERIMENT_OPERATION_BALLOON:
                if (!g.balloon)
                        return run_fail(run, "the guest %s has no balloon device", run->spec->guest);
                run->balloon_start_bytes = BALLOON_SIZE_UNKNOWN;
                if (balloon_controller_get_sizes(g.balloon, &target, &actual) && actual > 0 &&
                    actual != BALLOON_SIZE_UNKNOWN)
                        run->balloon_start_bytes = actual;
                if (run->spec->return_bytes > 0)
                        run->balloon_back_bytes = run->spec->return_bytes;
                else if (run->balloon_start_bytes != BALLOON_SIZE_UNKNOWN)
                        run->balloon_back_bytes = run->balloon_start_bytes;
                else
                        return run_fail(run, "the balloon's size is not known yet: give Return=");
                return balloon_step(run, run->spec->target_bytes, false);
        case EXPERIMENT_OPERATION_HOTPLUG:
                if (!run->ctx->hotplug)
                        return run_fail(run, "virtio-mem is not available here");
                return hotplug_step(run, run->spec->target_bytes, false);
        case _EXPERIMENT_OPERATION_MAX:
        case _EXPERIMENT_OPERATION_INVALID:
                break;
        }
        run_fail(run, "unknown operation");
}

/* The provocation ended or the workload did: go on once both are through. */
static void after_provocation(ExperimentRun *run) {
        if (run->over || !run->provoke_done || run->workload_running)
                return;
        if (run->provoke_error)
                return run_fail(run, "iteration %" PRIu64 ": %s", run->done + 1, run->provoke_error);
        if (run->workload_error)
                return run_fail(run, "iteration %" PRIu64 ": %s", run->done + 1, run->workload_error);
        if (run->spec->when == EXPERIMENT_WORKLOAD_AFTER && !run->workload_done) {
                run->step = RUN_STEP_WORKLOAD;
                (void) workload_start(run);
                return;
        }
        run->step = RUN_STEP_AFTER;
        readings(run);
}

/* ---- the record ---- */

/* Scope=guest-ram: move_pages(2)'s own account, summed over the iteration's moves. */
static int add_guest_ram(ExperimentRun *run) {
        ExperimentRecord *r = &run->record;
        int k;

        if (!run->have_guest_ram)
                return experiment_record_unavailable(r, "host.migrate.guest_ram",
                                                     "no move reported the guest RAM's pages (none ran to the end)");
        k = experiment_record_add_int(r, "host.migrate.guest_ram.asked_pages", (int64_t) run->guest_ram_asked);
        if (k >= 0)
                k = experiment_record_add_int(r, "host.migrate.guest_ram.moved_pages", (int64_t) run->guest_ram_moved);
        if (k >= 0)
                k = experiment_record_add_int(r, "host.migrate.guest_ram.failed_pages",
                                              (int64_t) run->guest_ram_failed);
        for (size_t i = 0; k >= 0 && i < run->n_guest_ram_errnos; i++) {
                const char *e = strerrorname_np(run->guest_ram_errnos[i].error);
                char name[96];

                if (e)
                        snprintf(name, sizeof name, "host.migrate.guest_ram.failed.%s_pages", e);
                else
                        snprintf(name, sizeof name, "host.migrate.guest_ram.failed.errno%d_pages",
                                 run->guest_ram_errnos[i].error);
                k = experiment_record_add_int(r, name, (int64_t) run->guest_ram_errnos[i].pages);
        }
        return k;
}

static int add_provocation(ExperimentRun *run) {
        ExperimentRecord *r = &run->record;
        int k = experiment_record_add_int(r, "time.provoke_usec", (int64_t) run->provoke_usec);

        if (k >= 0 && run->workload_done)
                k = experiment_record_add_int(r, "time.workload_usec", (int64_t) run->workload_usec);
        if (k < 0)
                return k;
        switch (run->spec->operation) {
        case EXPERIMENT_OPERATION_MIGRATE:
        case EXPERIMENT_OPERATION_MIGRATE_PINGPONG:
                k = experiment_record_add_int(r, "host.migrate.moves", (int64_t) run->moves);
                if (k >= 0)
                        k = experiment_record_add_int(r, "host.migrate.moved_pages", (int64_t) run->moved_pages);
                if (k >= 0)
                        k = experiment_record_add_int(r, "host.migrate.moved_bytes", (int64_t) run->moved_bytes);
                if (k >= 0)
                        k = experiment_record_add_int(r, "host.migrate.syscall_usec", (int64_t) run->migrate_usec);
                if (k >= 0 && run->spec->scope == MIGRATION_SCOPE_GUEST_RAM)
                        k = add_guest_ram(run);
                if (k < 0)
                        return k;
                if (!run->have_residency_before || !run->have_residency_after)
                        return experiment_record_unavailable(r, "host.residency",
                                                             "the QEMU process's numa_maps could not be read");
                /* Every node the operation moves from or to has its delta, 0 included: the nodes a ping-pong
                 * passes through hold nothing before and after it (0 → 1 → 0), and a missing value is no data. */
                unsigned end = MAX(run->residency_before.max_node, run->residency_after.max_node);
                uint64_t op_nodes = run->spec->from_nodes | run->spec->to_nodes | run->spec->between_nodes;

                for (unsigned n = 0; n < MIN(NUMA_NODES_MAX, 64u); n++)
                        if (op_nodes & (UINT64_C(1) << n))
                                end = MAX(end, n + 1);
                for (unsigned n = 0; n < end; n++) {
                        char name[64];

                        snprintf(name, sizeof name, "host.residency.node%u.delta_bytes", n);
                        k = experiment_record_add_int(r, name, (int64_t) run->residency_after.bytes[n] -
                                                                      (int64_t) run->residency_before.bytes[n]);
                        if (k < 0)
                                return k;
                }
                return 0;
        case EXPERIMENT_OPERATION_BALLOON:
                k = experiment_record_add_int(r, "time.balloon_target_usec", (int64_t) run->balloon_target_usec);
                if (k < 0)
                        return k;
                if (run->balloon_start_bytes == BALLOON_SIZE_UNKNOWN ||
                    run->balloon_reached_bytes == BALLOON_SIZE_UNKNOWN)
                        return experiment_record_unavailable(r, "host.balloon.moved_bytes",
                                                             "the balloon's size was not known before or at Target=");
                return experiment_record_add_int(r, "host.balloon.moved_bytes",
                                                 run->balloon_start_bytes >= run->balloon_reached_bytes
                                                         ? (int64_t) (run->balloon_start_bytes - run->balloon_reached_bytes)
                                                         : (int64_t) (run->balloon_reached_bytes - run->balloon_start_bytes));
        case EXPERIMENT_OPERATION_HOTPLUG:
                k = experiment_record_add_int(r, "time.hotplug_target_usec", (int64_t) run->hotplug_target_usec);
                if (k < 0)
                        return k;
                k = run->hotplug_reached_bytes == UINT64_MAX
                            ? experiment_record_unavailable(r, "host.hotplug.reached_bytes",
                                                            "the virtio-mem device's size was not read at Target=")
                            : experiment_record_add_int(r, "host.hotplug.reached_bytes",
                                                        (int64_t) run->hotplug_reached_bytes);
                if (k < 0)
                        return k;
                return run->hotplug_returned_bytes == UINT64_MAX
                               ? experiment_record_unavailable(r, "host.hotplug.returned_bytes",
                                                               "the virtio-mem device's size was not read at Return=")
                               : experiment_record_add_int(r, "host.hotplug.returned_bytes",
                                                           (int64_t) run->hotplug_returned_bytes);
        case EXPERIMENT_OPERATION_NONE:
        case _EXPERIMENT_OPERATION_MAX:
        case _EXPERIMENT_OPERATION_INVALID:
                break;
        }
        return 0;
}

static int build_record(ExperimentRun *run, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        /* The iteration ends where its settle phase begins (a dirty-rate measurement in it is not part of it). */
        uint64_t now = run->settle_start_usec > 0 ? run->settle_start_usec : now_usec(CLOCK_MONOTONIC);
        int k;

        if (!o)
                return -ENOMEM;
        k = experiment_measure_delta(run->measure, run->spec, &run->before, &run->after, &run->record);
        if (k >= 0)
                k = add_provocation(run);
        if (k >= 0)
                k = experiment_record_add_int(&run->record, "time.iteration_usec",
                                              (int64_t) (now - run->iteration_start_usec));
        if (k >= 0)
                k = json_add_uint(o, "iteration", run->done + 1);
        if (k >= 0)
                k = json_add_bool(o, "warmUp", run_is_warm_up(run));
        if (k >= 0)
                k = run_matrix_record_fields(run, o);
        if (k >= 0)
                k = json_add_uint(o, "startedRealtimeUSec", run->started_realtime_usec);
        if (k >= 0 && run->spec->when != EXPERIMENT_WORKLOAD_NONE)
                k = json_add_uint(o, "seed", run->spec->seed + run->done);
        if (k >= 0)
                k = json_add_uint(o, "durationUSec", now - run->iteration_start_usec);
        if (k >= 0)
                k = json_add(o, "counters", json_object_get(run->record.counters));
        if (k >= 0)
                k = json_add(o, "unavailable", json_object_get(run->record.unavailable));
        if (k >= 0 && run->workload_json)
                k = json_add(o, "workload", json_object_get(run->workload_json));
        if (k < 0)
                return k;
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- the settle phase: Counters=dirty-rate ---- */

static int add_dirty_rate(ExperimentRun *run, const DirtyRateInfo *info) {
        ExperimentRecord *r = &run->record;
        int k;

        if (!info->has_rate)
                return experiment_record_unavailable(r, "host.dirty_rate", "QEMU reported no rate");
        k = experiment_record_add_int(r, "host.dirty_rate_mb_per_sec", info->rate);
        if (k >= 0)
                k = experiment_record_add_int(r, "host.dirty_rate.period_usec", info->calc_time * (int64_t) USEC_PER_SEC);
        if (k < 0)
                return k;
        if (info->n_vcpus == 0)
                return experiment_record_unavailable(r, "host.dirty_rate.per_vcpu",
                                                     "DirtyRateMode=%s gives no rate per vCPU (dirty-ring does)",
                                                     dirty_rate_mode_to_string(info->mode));
        /* Named by QEMU's vCPU ids, which are taken only when they are what a guest has: distinct, below
         * EXPERIMENT_PER_VCPU_MAX, at most that many (as every per-vCPU split: a record stays within what the
         * statistics take) */
        if (info->n_vcpus > EXPERIMENT_PER_VCPU_MAX)
                return experiment_record_unavailable(r, "host.dirty_rate.per_vcpu",
                                                     "QEMU reported %zu vCPUs: rates per vCPU are kept for at most %u",
                                                     info->n_vcpus, EXPERIMENT_PER_VCPU_MAX);
        for (size_t i = 0; i < info->n_vcpus; i++) {
                bool seen = false;

                for (size_t j = 0; j < i; j++)
                        seen = seen || info->vcpus[j].id == info->vcpus[i].id;
                if (seen || info->vcpus[i].id < 0 || info->vcpus[i].id >= (int64_t) EXPERIMENT_PER_VCPU_MAX)
                        return experiment_record_unavailable(r, "host.dirty_rate.per_vcpu",
                                                             "QEMU reported vCPU id %" PRIi64 " %s",
                                                             info->vcpus[i].id, seen ? "twice" : "out of range");
        }
        for (size_t i = 0; i < info->n_vcpus; i++) {
                char name[96];

                snprintf(name, sizeof name, "host.dirty_rate.vcpu%" PRIi64 "_mb_per_sec", info->vcpus[i].id);
                k = experiment_record_add_int(r, name, info->vcpus[i].rate);
                if (k < 0)
                        return k;
        }
        return 0;
}

static void dirty_rate_cb(const DirtyRateInfo *info, const DirtyRateError *error, void *userdata) {
        ExperimentRun *run = userdata;
        int k;

        run->dirty_rate = NULL;
        if (!run_op_end(run))
                return;
        if (error || !info)
                k = experiment_record_unavailable(&run->record, "host.dirty_rate", "%s: %s",
                                                  error ? strna(error->command) : "query-dirty-rate",
                                                  error ? error->description ?: strerror(-error->error) : "no result");
        else
                k = add_dirty_rate(run, info);
        if (k < 0)
                return run_fail(run, "out of memory");
        record_iteration(run);
}

/* Counters=dirty-rate: a measurement over Settle= in whole seconds (1 … 60, QEMU's limits; validation keeps
 * Settle= at 1 s at least) from the start of the settle phase; the record waits for it and the next iteration
 * comes Settle= after the phase began (or when the measurement ended, if later). */
static void settle_measure(ExperimentRun *run) {
        DirtyRateParams p = {
                .mode = run->spec->dirty_rate_mode,
                .calc_time_sec = (unsigned) MAX(MIN(run->spec->settle_usec / USEC_PER_SEC,
                                                    (uint64_t) DIRTY_RATE_CALC_TIME_MAX),
                                                (uint64_t) DIRTY_RATE_CALC_TIME_MIN),
        };
        ExperimentGuest g;
        int r;

        run->settle_start_usec = now_usec(CLOCK_MONOTONIC);
        if (!want(run, EXPERIMENT_COUNTER_DIRTY_RATE))
                return record_iteration(run);
        if (run_guest(run, &g) < 0)
                return;
        r = g.qmp ? dirty_rate_measure(g.qmp, run->ctx->event, &p, NULL, dirty_rate_cb, run, &run->dirty_rate)
                  : -ENOTCONN;
        if (r < 0) {
                if (experiment_record_unavailable(&run->record, "host.dirty_rate", "calc-dirty-rate: %s",
                                                  r == -ENOTCONN ? "QMP is not connected" : strerror(-r)) < 0)
                        return run_fail(run, "out of memory");
                return record_iteration(run);
        }
        run->n_pending++;
}

static int settle_cb(sd_event_source *s, uint64_t usec, void *userdata) {
        ExperimentRun *run = userdata;

        (void) s;
        (void) usec;
        run->timer = sd_event_source_disable_unref(run->timer);
        run_iteration_begin(run);
        return 0;
}

static void record_iteration(ExperimentRun *run) {
        _cleanup_json_ json_object *record = NULL;
        int r;

        r = build_record(run, &record);
        if (r < 0)
                return run_fail(run, "iteration %" PRIu64 " could not be recorded: %s", run->done + 1,
                                strerror(-r));
        r = experiment_record_validate(record);
        if (r < 0)
                return run_fail(run, "iteration %" PRIu64 " gave a record that would not read back", run->done + 1);
        r = experiment_store_append(run->ctx->store, run->id, record, NULL);
        if (r < 0)
                return run_fail(run, "iteration %" PRIu64 " could not be stored: %s", run->done + 1, strerror(-r));
        run->done++;
        if (run->summary && experiment_summary_add(run->summary, record) < 0) {
                log_debug("Experiment %s: the running statistics gave up; they are read back at the end.", run->id);
                run->summary = experiment_summary_free(run->summary);
        }
        if (run->callbacks.iteration) {
                run->n_pending++;       /* the callback may abandon the run: it must not be freed under us */
                run->callbacks.iteration(run, run->done, run->planned, record, run->userdata);
                if (!run_op_end(run))
                        return;
        }
        if (run->over)
                return;
        if (run_is_matrix(run))
                return run_matrix_recorded(run, record);
        if (run->done >= run->planned)
                return run_finish(run, EXPERIMENT_COMPLETED, NULL);
        if (run->cancelled)
                return run_finish(run, EXPERIMENT_CANCELLED, "cancelled");
        run_settle_then_iterate(run);
}

void run_settle_then_iterate(ExperimentRun *run) {
        uint64_t wait = run->spec->settle_usec;
        int r;

        /* The settle phase began before a measurement in it (settle_measure()): only what is left of it. */
        if (run->settle_start_usec > 0) {
                uint64_t spent = now_usec(CLOCK_MONOTONIC) - run->settle_start_usec;

                wait = spent >= wait ? 0 : wait - spent;
                run->settle_start_usec = 0;
        }
        r = sd_event_add_time_relative(run->ctx->event, &run->timer, CLOCK_MONOTONIC, wait, 0, settle_cb, run);
        if (r < 0)
                return run_fail(run, "could not arm the settle timer: %s", strerror(-r));
        (void) sd_event_source_set_description(run->timer, "experiment-settle");
}

void run_iteration_begin(ExperimentRun *run) {
        int r;

        if (run->over)
                return;
        experiment_snapshot_done(&run->before);
        experiment_snapshot_done(&run->after);
        experiment_record_done(&run->record);
        json_object_put(run->workload_json);
        run->workload_json = NULL;
        run->workload_error = mfree(run->workload_error);
        run->provoke_error = mfree(run->provoke_error);
        run->provoke_done = run->workload_running = run->workload_done = false;
        run->have_residency_before = run->have_residency_after = false;
        run->moves = run->moves_failed = run->moved_pages = run->moved_bytes = run->migrate_usec = 0;
        run->have_guest_ram = false;
        run->guest_ram_asked = run->guest_ram_moved = run->guest_ram_failed = 0;
        run->n_guest_ram_errnos = 0;
        memset(run->guest_ram_errnos, 0, sizeof(run->guest_ram_errnos));
        run->hotplug_target_usec = 0;
        run->hotplug_reached_bytes = run->hotplug_returned_bytes = UINT64_MAX;
        run->settle_start_usec = 0;
        run->provoke_usec = run->workload_usec = run->balloon_target_usec = 0;
        r = experiment_record_init(&run->record);
        if (r < 0)
                return run_fail(run, "out of memory");
        run->iteration_start_usec = now_usec(CLOCK_MONOTONIC);
        run->started_realtime_usec = now_usec(CLOCK_REALTIME);
        run->step = RUN_STEP_BEFORE;
        readings(run);
}

void run_balloon_restore(ExperimentRun *run) {
        _cleanup_(balloon_error_info_done) BalloonErrorInfo e = {};
        BalloonTargetRequest req = {
                .target_bytes = run->balloon_back_bytes,
                .requester = "experiment (ended before its return step)",
        };
        ExperimentGuest g;
        int r;

        if (!run->balloon_owed)
                return;
        run->balloon_owed = false;
        if (run->ctx->lookup(run->spec->guest, run->ctx->userdata, &g) < 0 || g.pid != run->pid || !g.balloon)
                return;         /* the guest is gone: nothing to give back */
        r = balloon_controller_set_target(g.balloon, g.balloon_config, &req, NULL, NULL, NULL, &e);
        if (r != 0)
                log_warning("Experiment %s: could not return the balloon of %s to %" PRIu64 " bytes: %s",
                            strna(run->id), run->spec->guest, run->balloon_back_bytes,
                            e.reason ?: (r > 0 ? "refused" : strerror(-r)));
        else
                log_info("Experiment %s: the balloon of %s goes back to %" PRIu64 " bytes.", strna(run->id),
                         run->spec->guest, run->balloon_back_bytes);
}

void run_hotplug_restore(ExperimentRun *run) {
        _cleanup_free_ char *reason = NULL;
        ExperimentGuest g;
        int r;

        if (!run->hotplug_owed || run->hotplug || !run->ctx->hotplug)
                return;         /* nothing owed, or a step is still out (it ends on its own) */
        run->hotplug_owed = false;
        if (run->ctx->lookup(run->spec->guest, run->ctx->userdata, &g) < 0 || g.pid != run->pid)
                return;         /* the guest is gone: nothing to give back */
        r = run->ctx->hotplug(run->spec->guest, run->spec->return_bytes, false, 0, NULL, NULL, run->ctx->userdata,
                              NULL, &reason);
        if (r < 0)
                log_warning("Experiment %s: could not return the virtio-mem device of %s to %" PRIu64 " bytes: %s",
                            strna(run->id), run->spec->guest, run->spec->return_bytes, reason ?: strerror(-r));
        else
                log_info("Experiment %s: the virtio-mem device of %s goes back to %" PRIu64 " bytes.",
                         strna(run->id), run->spec->guest, run->spec->return_bytes);
}
