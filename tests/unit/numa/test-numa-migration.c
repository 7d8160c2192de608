/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/numa's migration runner and pinning: request validation against fixture topologies
 * (tests/data/numa), runs driven by a fake worker and KVM statistics from the recorded QMP transcript
 * (tests/data/qmp/query-stats-kvm.qmp), a real migrate_pages(2) of this process's anonymous memory to a node
 * the machine does not have, report and error rendering, and pinning this test's own thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "numa/numa-migration.h"
#include "numa/numa-pin.h"
#include "qmp-transcript.h"

static const char *data_dir;

static char *data_path(const char *name) {
        char *p;
        assert_true(asprintf(&p, "%s/%s", data_dir, name) > 0);
        return p;
}

/* ---- the fake guest and worker ---------------------------------------------------------------- */

typedef enum FakeJob {
        FAKE_JOB_OK,
        FAKE_JOB_EINVAL,        /* migrate_pages fails */
        FAKE_JOB_EPERM,
        FAKE_JOB_NO_NUMA_MAPS,  /* numa_maps unreadable: nothing measured */
} FakeJob;

static FakeJob fake_job = FAKE_JOB_OK;

static unsigned lowest_node(uint64_t mask) {
        return (unsigned) __builtin_ctzll(mask);
}

/* A WorkerFn: 256 pages of 4 KiB on the lowest source node before, on the lowest target node after. */
static int fake_job_run(Worker *w, void *arg) {
        NumaMigrateJob *j = arg;
        unsigned from = lowest_node(j->from_mask), to = lowest_node(j->to_mask);

        if (fake_job == FAKE_JOB_NO_NUMA_MAPS)
                return -ENOENT;
        j->before = (NumaResidency) { .total_bytes = 1 << 20, .max_node = from + 1 };
        j->before.pages[from] = 256;
        j->before.bytes[from] = 1 << 20;
        j->have_before = true;
        worker_post(w, NUMA_MIGRATE_PHASE_MEASURED);
        j->start_usec = 1000;
        j->end_usec = 1500;
        if (fake_job == FAKE_JOB_EINVAL || fake_job == FAKE_JOB_EPERM) {
                j->syscall_error = fake_job == FAKE_JOB_EINVAL ? -EINVAL : -EPERM;
                j->after = j->before;
        } else {
                j->after = (NumaResidency) { .total_bytes = 1 << 20, .max_node = to + 1 };
                j->after.pages[to] = 256;
                j->after.bytes[to] = 1 << 20;
        }
        j->have_after = true;
        worker_post(w, NUMA_MIGRATE_PHASE_MOVED);
        return j->syscall_error;
}

/* KVM statistics of the transcript; the n-th snapshot has every counter raised by n and is n s later. */
static KvmStats *transcript_stats(unsigned n) {
        _cleanup_json_ json_object *vm = qmp_transcript_return("query-stats-kvm.qmp", "\"target\": \"vm\"}}"),
                                   *vcpu = qmp_transcript_return("query-stats-kvm.qmp", "{\"target\": \"vcpu\"}}"),
                                   *schemas = qmp_transcript_return("query-stats-kvm.qmp", "query-stats-schemas\"}");
        KvmStats *s = NULL;

        assert_int_equal(kvm_stats_from_json(vm, vcpu, schemas, &s), 0);
        s->monotonic_usec = n * USEC_PER_SEC;
        for (size_t i = 0; i < s->vm.n; i++)
                s->vm.stats[i].value += n;
        for (size_t k = 0; k < s->n_vcpus; k++)
                for (size_t i = 0; i < s->vcpus[k].n; i++)
                        s->vcpus[k].stats[i].value += n;
        return s;
}

typedef struct Fake {
        sd_event *event;
        MigrationContext ctx;
        MigrationHistory *history;
        bool running;
        bool capable;
        bool kvm;                       /* query_stats answers from the transcript; else -ENOTCONN */
        unsigned queries;
        KvmStatsCallback stats_cb;      /* the query waiting for its answer */
        void *stats_userdata;
        sd_event_source *stats_source;
        bool cancel_after_moved;
        /* what the callbacks saw */
        char phases[512];
        unsigned n_finished;
        int error;
        NumaErrorCode code;
        char *reason;
        MigrationReport *error_report;
        MigrationSummary summary;
} Fake;

static int fake_lookup(const char *name, void *userdata, MigrationGuest *ret) {
        Fake *f = userdata;

        assert_string_equal(name, "g");
        if (!f->running)
                return -ESRCH;
        *ret = (MigrationGuest) { .pid = getpid(), .tcg = true };
        return 0;
}

static int fake_stats_deliver(sd_event_source *s, void *userdata) {
        Fake *f = userdata;
        KvmStatsCallback cb = f->stats_cb;

        f->stats_source = sd_event_source_unref(f->stats_source);
        f->stats_cb = NULL;
        cb(transcript_stats(f->queries), 0, f->stats_userdata);
        return 0;
}

static int fake_query_stats(const char *name, pid_t pid, uint64_t timeout_usec, KvmStatsCallback cb,
                            void *cb_userdata, void *userdata) {
        Fake *f = userdata;

        assert_int_equal(pid, getpid());
        if (!f->kvm)
                return -ENOTCONN;
        assert_null(f->stats_cb);
        f->queries++;
        f->stats_cb = cb;
        f->stats_userdata = cb_userdata;
        assert_int_equal(sd_event_add_defer(f->event, &f->stats_source, fake_stats_deliver, f), 0);
        return 0;
}

static Fake *fake_capable_now;

static bool fake_have_capability(void) {
        return fake_capable_now->capable;
}

static void fake_init(Fake *f, const char *sysfs) {
        *f = (Fake) { .running = true, .capable = true };
        assert_int_equal(sd_event_new(&f->event), 0);
        f->ctx = (MigrationContext) {
                .event = f->event,
                .proc_root = "/proc",
                .sysfs_root = sysfs,
                .lookup = fake_lookup,
                .query_stats = fake_query_stats,
                .userdata = f,
                .have_capability = fake_have_capability,
                .job_fn = fake_job_run,
        };
        fake_capable_now = f;
        fake_job = FAKE_JOB_OK;
        assert_int_equal(migration_history_new("g", &f->history), 0);
}

static void fake_done(Fake *f) {
        migration_history_free(f->history);
        sd_event_source_unref(f->stats_source);
        sd_event_unref(f->event);
        free(f->reason);
        migration_report_unref(f->error_report);
        migration_report_unref(f->summary.last_report);
}

static void on_progress(const MigrationProgress *p, void *userdata) {
        Fake *f = userdata;
        _cleanup_json_ json_object *o = NULL;

        strncat(f->phases, migration_phase_to_string(p->phase), sizeof(f->phases) - strlen(f->phases) - 2);
        strcat(f->phases, " ");
        /* every notification renders */
        assert_int_equal(migration_progress_to_json(p, &o), 0);
        assert_string_equal(json_get_string(o, "phase"), migration_phase_to_string(p->phase));
        assert_int_equal(json_get_int(o, "move", 0), p->move);
        if (p->phase == MIGRATION_PHASE_MOVED && f->cancel_after_moved)
                migration_history_cancel(f->history);
}

static void on_finished(int error, const NumaError *details, const MigrationSummary *s, void *userdata) {
        Fake *f = userdata;

        f->n_finished++;
        f->error = error;
        if (error > 0) {
                assert_non_null(details);
                f->code = details->code;
                f->reason = details->reason ? strdup(details->reason) : NULL;
                f->error_report = migration_report_ref(details->report);
        }
        f->summary = *s;
        migration_report_ref(s->last_report);
}

static const MigrationCallbacks callbacks = { .progress = on_progress, .finished = on_finished };

static void run_until_finished(Fake *f) {
        for (unsigned i = 0; i < 2000 && f->n_finished == 0; i++)
                assert_true(sd_event_run(f->event, 100 * 1000) >= 0);
        assert_int_equal(f->n_finished, 1);
        assert_false(migration_history_busy(f->history, NULL));
}

static int start(Fake *f, MigrationRequest *req, NumaError *e) {
        MigrationRun *run;
        int r;

        if (req->pid == 0)
                req->pid = getpid();
        r = migration_run_new(f->history, &f->ctx, req, &callbacks, f, &run, e);
        if (r == 0) {
                assert_true(migration_history_busy(f->history, NULL));
                migration_run_begin(run);
        }
        return r;
}

/* ---- request validation ----------------------------------------------------------------------- */

static void check_invalid(MigrationRequest req, const char *parameter) {
        NumaError e = {};

        assert_int_equal(migration_request_validate(&req, &e), NUMA_ERROR_INVALID_PARAMETER);
        assert_int_equal(e.code, NUMA_ERROR_INVALID_PARAMETER);
        assert_string_equal(e.parameter, parameter);
        numa_error_done(&e);
}

static void test_request_validate(void **state) {
        MigrationRequest ok = MIGRATION_REQUEST_INIT, r;

        ok.from = "0";
        ok.to = "1";
        assert_int_equal(migration_request_validate(&ok, NULL), 0);

        r = ok, r.from = NULL;
        check_invalid(r, "from");
        r = ok, r.to = NULL;
        check_invalid(r, "to");
        r = ok, r.from = "x";
        check_invalid(r, "from");
        r = ok, r.to = "64";
        check_invalid(r, "to");
        r = ok, r.count = 2;            /* one move: count unset or 1 */
        check_invalid(r, "count");
        r = ok, r.count = 1;
        assert_int_equal(migration_request_validate(&r, NULL), 0);
        r = ok, r.settle_usec = -1;     /* also an explicit null */
        check_invalid(r, "settleUSec");
        r = ok, r.settle_usec = 601 * USEC_PER_SEC;
        check_invalid(r, "settleUSec");
        r = ok, r.settle_usec = 0;
        assert_int_equal(migration_request_validate(&r, NULL), 0);

        r = (MigrationRequest) MIGRATION_REQUEST_INIT;
        r.between = "0,1";
        assert_int_equal(migration_request_validate(&r, NULL), 0);
        r.from = "0";
        check_invalid(r, "from");
        r.from = NULL, r.to = "1";
        check_invalid(r, "to");
        r.to = NULL, r.between = "0";
        check_invalid(r, "between");
        r.between = "0-2";
        check_invalid(r, "between");
        r.between = "1,64";
        check_invalid(r, "between");
        r.between = "1,3", r.count = 0;
        check_invalid(r, "count");
        r.count = NUMA_MIGRATION_MAX_MOVES + 1;
        check_invalid(r, "count");
        r.count = NUMA_MIGRATION_MAX_MOVES, r.every_usec = -1;
        check_invalid(r, "everyUSec");
        r.every_usec = NUMA_MIGRATION_EVERY_MAX_USEC + 1;
        check_invalid(r, "everyUSec");
        r.every_usec = NUMA_MIGRATION_EVERY_MAX_USEC;
        assert_int_equal(migration_request_validate(&r, NULL), 0);
}

static void check_host_error(Fake *f, MigrationRequest req, NumaErrorCode code, const char *json) {
        _cleanup_(numa_error_done) NumaError e = {};
        _cleanup_json_ json_object *p = NULL;

        assert_int_equal(start(f, &req, &e), code);
        assert_int_equal(e.code, code);
        assert_int_equal(numa_error_parameters_json(&e, "g", &p), 0);
        assert_string_equal(json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN), json);
        assert_int_equal(f->n_finished, 0);
}

static void test_request_host(void **state) {
        _cleanup_free_ char *flat = data_path("flat"), *two = data_path("sysfs2"), *big = data_path("sysfs63");
        MigrationRequest req = MIGRATION_REQUEST_INIT, r;
        MigrationRun *run;
        Fake f;

        req.from = "0";
        req.to = "1";
        req.settle_usec = 0;

        fake_init(&f, flat);
        check_host_error(&f, req, NUMA_ERROR_SINGLE_NODE, "{\"nodes\":1,\"reason\":\"the host has a single NUMA node: "
                         "there is no other node to move memory to\"}");
        fake_done(&f);

        fake_init(&f, two);
        r = req, r.to = "0,5";
        check_host_error(&f, r, NUMA_ERROR_NO_SUCH_NODE, "{\"parameter\":\"to\",\"node\":5,\"nodes\":\"0-1\"}");
        r = (MigrationRequest) MIGRATION_REQUEST_INIT, r.between = "1,7";
        check_host_error(&f, r, NUMA_ERROR_NO_SUCH_NODE, "{\"parameter\":\"between\",\"node\":7,\"nodes\":\"0-1\"}");
        r = req, r.to = "0-0";
        check_host_error(&f, r, NUMA_ERROR_IDENTICAL_NODES, "{\"from\":\"0\",\"to\":\"0-0\"}");
        f.capable = false;
        check_host_error(&f, req, NUMA_ERROR_MISSING_CAPABILITY, "{\"capability\":\"CAP_SYS_NICE\",\"reason\":"
                         "\"migrate_pages(2) of another process's memory needs CAP_SYS_NICE\"}");
        f.capable = true;
        /* not running is checked after the nodes, before the capability */
        r = req, r.pid = -1;
        assert_int_equal(migration_run_new(f.history, &f.ctx, &r, &callbacks, &f, &run, NULL), NUMA_ERROR_NOT_RUNNING);
        /* huge pages: the fixture's node 1 has 4 free of 2 MiB (no /proc/meminfo there: cannot tell, go on) */
        r = req, r.hugepages = true, r.memory_bytes = 64 << 20, r.pid = getpid();
        assert_int_equal(migration_run_new(f.history, &f.ctx, &r, &callbacks, &f, &run, NULL), 0);
        /* a second request while the first is set up */
        check_host_error(&f, req, NUMA_ERROR_BUSY, "{\"name\":\"g\",\"operation\":\"page migration\"}");
        migration_run_begin(run);
        run_until_finished(&f);
        assert_int_equal(f.error, 0);
        fake_done(&f);

        fake_init(&f, big);
        r = req, r.to = "63", r.hugepages = true, r.memory_bytes = 64 << 20;
        check_host_error(&f, r, NUMA_ERROR_MEMORY_CANNOT_MOVE, "{\"reason\":\"the guest's memory is in huge pages "
                         "(67108864 bytes) but the target node(s) have only 4 free huge pages of 2097152 bytes\"}");
        r.memory_bytes = 8 << 20;
        assert_int_equal(start(&f, &r, NULL), 0);
        run_until_finished(&f);
        fake_done(&f);
}

/* ---- runs ------------------------------------------------------------------------------------- */

static const char *const report_keys[] = {
        "id", "name", "from", "to", "pid", "startedRealtimeUSec", "settleUSec", "totalUSec", "result",
        "residencyBefore", "residencyAfter", "durationUSec", "pagesMoved", "bytesMoved", "pagesNotMoved",
        "bytesNotMoved", "bytesOnTargetAfter", "residentBytesAfter", "fractionOnTarget", "bytesPerSecond",
        "syscallPagesNotMoved", "kvmStats", "tracepoints", NULL,
};

static void check_keys(json_object *o, const char *const *keys) {
        size_t i = 0;

        json_object_object_foreach(o, k, v) {
                (void) v;
                assert_non_null(keys[i]);
                assert_string_equal(k, keys[i]);
                i++;
        }
        assert_null(keys[i]);
}

static void test_run_one_move(void **state) {
        _cleanup_free_ char *two = data_path("sysfs2");
        _cleanup_json_ json_object *o = NULL, *summary = NULL, *kvm = NULL, *list = NULL;
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        const MigrationTotals *t;
        MetricsNuma metrics;
        MigrationReport *rep;
        Fake f;

        fake_init(&f, two);
        f.kvm = true;
        req.from = "0";
        req.to = "1";
        req.settle_usec = 1000;
        assert_int_equal(start(&f, &req, NULL), 0);
        run_until_finished(&f);
        assert_int_equal(f.error, 0);
        assert_string_equal(f.phases, "started migrating measuring settling moved ");
        assert_int_equal(f.queries, 2);
        assert_int_equal(f.summary.moves, 1);
        assert_int_equal(f.summary.moves_failed, 0);
        assert_int_equal(f.summary.pages_moved, 256);
        assert_int_equal(f.summary.bytes_moved, 1 << 20);
        assert_int_equal(f.summary.duration_usec, 500);
        assert_int_equal(f.summary.first_report_id, 1);

        rep = f.summary.last_report;
        assert_non_null(rep);
        assert_int_equal(rep->id, 1);
        assert_int_equal(rep->from, 1);
        assert_int_equal(rep->to, 2);
        assert_int_equal(rep->pingpong_move, 0);
        assert_true(rep->kvm.available);
        assert_int_equal(rep->kvm.interval_usec, USEC_PER_SEC);
        assert_false(rep->tracepoints.available);
        assert_string_equal(rep->tracepoints.reason, "not measured");
        assert_int_equal(migration_report_to_json(rep, &o), 0);
        check_keys(o, report_keys);
        assert_string_equal(json_get_string(o, "from"), "0");
        assert_string_equal(json_get_string(o, "to"), "1");
        assert_string_equal(json_get_string(o, "result"), "done");
        assert_int_equal(json_get_int(o, "settleUSec", 0), 1000);
        assert_true(json_get_int(o, "totalUSec", 0) >= 1000);
        assert_int_equal(json_get_int(o, "bytesOnTargetAfter", 0), 1 << 20);

        /* the typed KVM counters render as qmp-stats renders the snapshots they came from */
        {
                _cleanup_(kvm_stats_freep) KvmStats *b = transcript_stats(1), *a = transcript_stats(2);
                json_object *mine;
                assert_int_equal(kvm_stats_delta_json(b, a, &kvm), 0);
                assert_true(json_object_object_get_ex(o, "kvmStats", &mine));
                assert_string_equal(json_object_to_json_string_ext(mine, JSON_C_TO_STRING_PLAIN),
                                    json_object_to_json_string_ext(kvm, JSON_C_TO_STRING_PLAIN));
        }

        assert_int_equal(migration_summary_to_json(&f.summary, &summary), 0);
        check_keys(summary, (const char *const[]) { "phase", "moves", "movesFailed", "pagesMoved", "bytesMoved",
                                                   "durationUSec", "elapsedUSec", "firstReportId", "lastReportId",
                                                   "report", NULL });

        t = migration_history_totals(f.history);
        assert_int_equal(t->migrations_total, 1);
        assert_int_equal(t->migration_failures, 0);
        assert_int_equal(t->pages_moved, 256);
        assert_int_equal(t->bytes_moved, 1 << 20);
        assert_int_equal(t->migrate_usec, 500);
        migration_history_get_metrics(f.history, &metrics);
        assert_int_equal(metrics.migrations_total, 1);
        assert_int_equal(metrics.pages_moved, 256);
        assert_int_equal(metrics.bytes_moved, 1 << 20);
        assert_int_equal(metrics.migrate_usec, 500);
        migration_history_get_metrics(NULL, &metrics);
        assert_int_equal(metrics.migrations_total, 0);
        assert_int_equal(migration_history_to_json(f.history, &list), 0);
        assert_int_equal(json_object_array_length(list), 1);
        fake_done(&f);
}

static void test_run_failures(void **state) {
        _cleanup_free_ char *two = data_path("sysfs2");
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        Fake f;

        req.from = "1";
        req.to = "0";
        req.settle_usec = 0;

        /* migrate_pages fails: MigrationFailed with the report, recorded and counted */
        fake_init(&f, two);
        fake_job = FAKE_JOB_EINVAL;
        assert_int_equal(start(&f, &req, NULL), 0);
        run_until_finished(&f);
        assert_int_equal(f.error, NUMA_ERROR_MIGRATION_FAILED);
        assert_string_equal(f.reason, "Invalid argument");
        assert_non_null(f.error_report);
        assert_int_equal(f.error_report->error, -EINVAL);
        assert_false(f.error_report->kvm.available);
        assert_string_equal(f.error_report->kvm.reason, "query-stats failed: no QMP connection to the guest");
        assert_string_equal(f.phases, "started migrating measuring moved ");
        assert_int_equal(migration_history_totals(f.history)->migration_failures, 1);
        assert_int_equal(f.summary.moves_failed, 1);
        fake_done(&f);

        /* EPERM: MissingCapability, nothing recorded */
        fake_init(&f, two);
        fake_job = FAKE_JOB_EPERM;
        assert_int_equal(start(&f, &req, NULL), 0);
        run_until_finished(&f);
        assert_int_equal(f.error, NUMA_ERROR_MISSING_CAPABILITY);
        assert_string_equal(f.reason, "migrate_pages(2) refused: EPERM");
        assert_int_equal(migration_history_totals(f.history)->migrations_total, 0);
        fake_done(&f);

        /* numa_maps unreadable: MigrationFailed without a report */
        fake_init(&f, two);
        fake_job = FAKE_JOB_NO_NUMA_MAPS;
        assert_int_equal(start(&f, &req, NULL), 0);
        run_until_finished(&f);
        assert_int_equal(f.error, NUMA_ERROR_MIGRATION_FAILED);
        assert_string_equal(f.reason, "No such file or directory");
        assert_null(f.error_report);
        fake_done(&f);

        /* the guest stopped before the first move */
        fake_init(&f, two);
        f.running = false;
        assert_int_equal(start(&f, &req, NULL), 0);
        assert_int_equal(f.n_finished, 1);      /* at once */
        assert_int_equal(f.error, NUMA_ERROR_NOT_RUNNING);
        fake_done(&f);
}

static void test_run_pingpong(void **state) {
        _cleanup_free_ char *two = data_path("sysfs2");
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        MigrationReport *const *reports;
        MigrationRunStatus st;
        size_t n;
        Fake f;

        fake_init(&f, two);
        req.between = "0,1";
        req.count = 3;
        req.settle_usec = 0;
        assert_int_equal(start(&f, &req, NULL), 0);
        assert_true(migration_history_busy(f.history, &st));
        assert_true(st.pingpong);
        assert_int_equal(st.count, 3);
        run_until_finished(&f);
        assert_int_equal(f.error, 0);
        assert_int_equal(f.summary.moves, 3);
        assert_int_equal(f.summary.first_report_id, 1);
        assert_int_equal(f.summary.last_report->id, 3);
        reports = migration_history_reports(f.history, &n);
        assert_int_equal(n, 3);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(reports[i]->pingpong_move, i + 1);
                assert_int_equal(reports[i]->from, i % 2 == 0 ? 1 : 2);
                assert_int_equal(reports[i]->to, i % 2 == 0 ? 2 : 1);
        }

        /* a failed move does not end a ping-pong; the next request gets the next ids */
        fake_job = FAKE_JOB_EINVAL;
        f.n_finished = 0;
        migration_report_unref(f.summary.last_report);
        assert_int_equal(start(&f, &req, NULL), 0);
        run_until_finished(&f);
        assert_int_equal(f.error, 0);
        assert_int_equal(f.summary.moves_failed, 3);
        assert_int_equal(f.summary.first_report_id, 4);
        assert_int_equal(migration_history_totals(f.history)->migrations_total, 6);
        assert_int_equal(migration_history_totals(f.history)->migration_failures, 3);
        fake_done(&f);
}

static void test_run_cancel(void **state) {
        _cleanup_free_ char *two = data_path("sysfs2");
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        Fake f;

        /* cancelled while the first move runs: it finishes and is recorded, no second one */
        fake_init(&f, two);
        req.between = "0,1";
        req.count = 5;
        req.every_usec = 3600 * USEC_PER_SEC;
        req.settle_usec = 0;
        f.cancel_after_moved = true;
        assert_int_equal(start(&f, &req, NULL), 0);
        run_until_finished(&f);
        assert_int_equal(f.error, 0);
        assert_int_equal(f.summary.moves, 1);
        fake_done(&f);

        /* cancelled while waiting for the next move: ends at once */
        fake_init(&f, two);
        assert_int_equal(start(&f, &req, NULL), 0);
        for (unsigned i = 0; i < 2000 && !strstr(f.phases, "moved"); i++)
                assert_true(sd_event_run(f.event, 100 * 1000) >= 0);
        assert_int_equal(f.n_finished, 0);
        migration_history_cancel(f.history);
        assert_int_equal(f.n_finished, 1);
        assert_int_equal(f.summary.moves, 1);
        fake_done(&f);

        /* the history goes away first (the daemon exits): finished once with -ECANCELED */
        fake_init(&f, two);
        assert_int_equal(start(&f, &req, NULL), 0);
        f.history = migration_history_free(f.history);
        assert_int_equal(f.n_finished, 1);
        assert_int_equal(f.error, -ECANCELED);
        fake_done(&f);
}

/* A real migrate_pages(2) of this process's anonymous memory to node 63, which the fixture topology has and
 * no machine here does: the kernel refuses it (EINVAL with CAP_SYS_NICE, EPERM without), and the run says so. */
static void test_run_real_worker(void **state) {
        _cleanup_free_ char *big = data_path("sysfs63");
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        size_t size = 4 << 20;
        char *mem;
        Fake f;

        if (access("/proc/self/numa_maps", R_OK) < 0)
                skip();
        mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(mem != MAP_FAILED);
        memset(mem, 0x5a, size);

        fake_init(&f, big);
        f.ctx.job_fn = NULL;            /* numa_migrate_job_run */
        req.from = "0";
        req.to = "63";
        req.settle_usec = 0;
        assert_int_equal(start(&f, &req, NULL), 0);
        run_until_finished(&f);
        if (f.error == NUMA_ERROR_MISSING_CAPABILITY)
                assert_string_equal(f.reason, "migrate_pages(2) refused: EPERM");
        else {
                assert_int_equal(f.error, NUMA_ERROR_MIGRATION_FAILED);
                assert_string_equal(f.reason, strerror(EINVAL));
                assert_non_null(f.error_report);
                assert_true(f.error_report->have_before);
                assert_true(f.error_report->have_after);
                assert_true(f.error_report->before.bytes[0] >= size);
                assert_int_equal(f.error_report->summary.pages_moved, 0);
                assert_int_equal(migration_history_totals(f.history)->migration_failures, 1);
        }
        fake_done(&f);
        munmap(mem, size);
}

/* Scope guest-ram with the real worker on our own process: a named memfd of a size nothing else has is "the
 * guest RAM"; on the one-node fixture from 0 to 0 is allowed (each page asked to stay on node 0). A backend
 * size that no mapping has is refused with the reason, nothing moved. */
static void test_run_guest_ram_real_worker(void **state) {
        _cleanup_free_ char *flat = data_path("flat");
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        size_t size = (5 << 20) + (12 << 10), touched = 700, ps = (size_t) sysconf(_SC_PAGESIZE);
        uint64_t sizes[1] = { size }, missing[1] = { (7 << 20) + (4 << 10) };
        _cleanup_json_ json_object *o = NULL;
        json_object *g;
        char *mem;
        Fake f;
        int fd;

        if (access("/proc/self/smaps", R_OK) < 0 || access("/proc/self/numa_maps", R_OK) < 0)
                skip();
        fd = memfd_create("gram-test", 0);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t) size), 0);
        mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        assert_true(mem != MAP_FAILED);
        for (size_t i = 0; i < touched; i++)
                mem[i * ps] = 1;

        fake_init(&f, flat);
        f.ctx.job_fn = NULL;            /* numa_migrate_job_run */
        req.from = "0";
        req.to = "0";
        req.settle_usec = 0;
        req.scope = "guest-ram";
        req.backend_sizes = sizes;
        req.n_backends = 1;
        assert_int_equal(start(&f, &req, NULL), 0);
        run_until_finished(&f);
        assert_int_equal(f.error, 0);
        assert_non_null(f.summary.last_report);
        assert_true(f.summary.last_report->have_guest_ram);
        assert_int_equal(f.summary.last_report->n_guest_ram_ranges, 1);
        assert_int_equal(f.summary.last_report->guest_ram_ranges[0].start, (uintptr_t) mem);
        assert_int_equal(f.summary.last_report->guest_ram.pages_asked, touched);
        assert_int_equal(f.summary.last_report->guest_ram.pages_moved, touched);
        assert_int_equal(migration_report_to_json(f.summary.last_report, &o), 0);
        assert_string_equal(json_get_string(o, "scope"), "guest-ram");
        g = json_object_object_get(o, "guestRam");
        assert_int_equal(json_get_int(g, "pagesAsked", 0), touched);
        assert_int_equal(json_get_int(g, "pagesTotal", 0), size / ps);
        assert_string_equal(json_get_string(json_object_array_get_idx(json_object_object_get(g, "ranges"), 0), "path"),
                            "/memfd:gram-test (deleted)");
        fake_done(&f);

        fake_init(&f, flat);
        f.ctx.job_fn = NULL;
        req.backend_sizes = missing;
        assert_int_equal(start(&f, &req, NULL), 0);
        run_until_finished(&f);
        assert_int_equal(f.error, NUMA_ERROR_MEMORY_CANNOT_MOVE);
        assert_non_null(strstr(f.reason, "scope guest-ram: the guest's RAM mappings cannot be found"));
        assert_non_null(strstr(f.reason, "no read-write mapping of 7344128 bytes"));
        assert_int_equal(migration_history_totals(f.history)->migrations_total, 0);
        fake_done(&f);

        /* process scope keeps refusing a one-node host */
        fake_init(&f, flat);
        req.scope = "process";
        check_host_error(&f, req, NUMA_ERROR_SINGLE_NODE, "{\"nodes\":1,\"reason\":\"the host has a single NUMA node: "
                         "there is no other node to move memory to\"}");
        fake_done(&f);
        munmap(mem, size);
        close(fd);
}

/* ---- reports and errors ----------------------------------------------------------------------- */

static void test_report_json(void **state) {
        _cleanup_(migration_report_unrefp) MigrationReport *r = NULL;
        _cleanup_(numa_error_done) NumaError e = {};
        _cleanup_json_ json_object *o = NULL, *p = NULL;

        assert_int_equal(migration_report_new(&r), 0);
        r->id = 7;
        r->name = strdup("g");
        r->from = 2;
        r->to = 1;
        r->pid = 42;
        r->started_realtime_usec = 5;
        r->settle_usec = 6;
        r->total_usec = 9;
        r->pingpong_move = 2;
        r->error = -EIO;
        r->have_before = true;
        r->before.pages[1] = 3;
        r->before.bytes[1] = 12288;
        r->before.total_bytes = 12288;
        r->before.max_node = 2;
        r->tracepoints = (MigrationTracepoints) { .available = true, .kvm_page_faults = 10, .kvm_exits = 11 };
        assert_int_equal(migration_report_to_json(r, &o), 0);
        assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                            "{\"id\":7,\"name\":\"g\",\"from\":\"1\",\"to\":\"0\",\"pid\":42,\"startedRealtimeUSec\":5,"
                            "\"settleUSec\":6,\"totalUSec\":9,\"pingPongMove\":2,\"result\":\"failed\","
                            "\"error\":\"Input\\/output error\",\"residencyBefore\":[{\"node\":1,\"bytes\":12288,"
                            "\"pages\":3}],\"kvmStats\":{\"available\":false,\"reason\":\"query-stats returned no "
                            "KVM statistics\"},\"tracepoints\":{\"available\":true,\"kvmPageFault\":10,"
                            "\"kvmExit\":11}}");

        assert_int_equal(numa_error_set_reason(&e, NUMA_ERROR_MIGRATION_FAILED, "Input/output error"),
                         NUMA_ERROR_MIGRATION_FAILED);
        e.report = migration_report_ref(r);
        assert_int_equal(numa_error_parameters_json(&e, "g", &p), 0);
        assert_int_equal(json_object_object_length(p), 2);
        assert_string_equal(json_get_string(p, "reason"), "Input/output error");
        assert_string_equal(numa_error_code_to_string(NUMA_ERROR_MIGRATION_FAILED), "migration-failed");
}

/* ---- pinning ---------------------------------------------------------------------------------- */

static void check_pin_error(const NumaPinRequest *req, const NumaTopology *t, NumaErrorCode code, const char *json) {
        _cleanup_(numa_pin_result_done) NumaPinResult res = {};
        _cleanup_(numa_error_done) NumaError e = {};
        _cleanup_json_ json_object *p = NULL;

        assert_int_equal(numa_pin(req, t, &res, &e), code);
        assert_int_equal(numa_error_parameters_json(&e, "g", &p), 0);
        assert_string_equal(json_object_to_json_string_ext(p, JSON_C_TO_STRING_PLAIN), json);
}

static void test_pin(void **state) {
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        _cleanup_(numa_pin_result_done) NumaPinResult res = {};
        _cleanup_json_ json_object *a = NULL;
        _cleanup_free_ char *online = NULL, *json = NULL;
        NumaVcpuThread self = { .index = 0, .thread_id = gettid() };
        NumaPinRequest req = { .proc_root = "/proc", .pid = getpid(), .vcpus = &self, .n_vcpus = 1 };
        CpuSet before, first = {};
        int cpu;

        assert_int_equal(numa_topology_read("/", &t), 0);
        assert_int_equal(thread_get_affinity(self.thread_id, &before), 0);
        assert_int_equal(cpu_list_format(&t->online_cpus, &online), 0);
        for (cpu = 0; cpu < (int) CPU_SET_MAX && !cpu_set_contains(&before, cpu); cpu++)
                ;
        cpu_set_add(&first, cpu);

        /* parameters */
        req.map = "0:";
        assert_int_equal(numa_pin_request_validate(&req, NULL), NUMA_ERROR_INVALID_PARAMETER);
        check_pin_error(&req, t, NUMA_ERROR_INVALID_PARAMETER, "{\"parameter\":\"map\"}");
        req.map = NULL, req.emulator = "x";
        check_pin_error(&req, t, NUMA_ERROR_INVALID_PARAMETER, "{\"parameter\":\"emulator\"}");

        /* checked before anything changes */
        req.emulator = NULL, req.map = "1:0";
        check_pin_error(&req, t, NUMA_ERROR_NO_SUCH_VCPU, "{\"vcpu\":1,\"vcpus\":1}");
        req.map = "0:1023";
        assert_true(asprintf(&json, "{\"parameter\":\"map\",\"cpu\":1023,\"online\":\"%s\"}", online) > 0);
        check_pin_error(&req, t, NUMA_ERROR_NO_SUCH_CPU, json);
        json = mfree(json);
        req.map = NULL, req.emulator = "1023";
        assert_true(asprintf(&json, "{\"parameter\":\"emulator\",\"cpu\":1023,\"online\":\"%s\"}", online) > 0);
        check_pin_error(&req, t, NUMA_ERROR_NO_SUCH_CPU, json);

        /* this thread as vCPU 0, pinned to the first CPU it may use, verified, then back */
        req.emulator = NULL;
        json = mfree(json);
        assert_true(asprintf(&json, "0:%i", cpu) > 0);
        req.map = json;
        assert_int_equal(numa_pin(&req, t, &res, NULL), 0);
        assert_int_equal(res.n_vcpus, 1);
        assert_int_equal(res.vcpus[0].thread_id, self.thread_id);
        assert_true(cpu_set_equal(&res.vcpus[0].effective, &first));
        assert_int_equal(res.n_emulator_threads, -1);
        assert_int_equal(numa_vcpu_placements_json("/proc", getpid(), t, &self, 1, &a), 0);
        assert_int_equal(json_object_array_length(a), 1);
        assert_int_equal(json_get_int(json_object_array_get_idx(a, 0), "threadId", 0), self.thread_id);
        assert_int_equal(thread_pin(self.thread_id, &before, NULL), 0);
}

int main(int argc, char *argv[]) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_request_validate),
                cmocka_unit_test(test_request_host),
                cmocka_unit_test(test_run_one_move),
                cmocka_unit_test(test_run_failures),
                cmocka_unit_test(test_run_pingpong),
                cmocka_unit_test(test_run_cancel),
                cmocka_unit_test(test_run_real_worker),
                cmocka_unit_test(test_run_guest_ram_real_worker),
                cmocka_unit_test(test_report_json),
                cmocka_unit_test(test_pin),
        };

        data_dir = argc > 1 ? argv[1] : "tests/data/numa";
        return cmocka_run_group_tests(tests, NULL, NULL);
}
