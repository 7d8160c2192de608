/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <time.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "metrics/meminfo.h"
#include "numa/numa-migration.h"
#include "numa/numa-perf.h"
#include "numa/numa-topology.h"

static const char *const migration_phase_table[_MIGRATION_PHASE_MAX] = {
        [MIGRATION_PHASE_STARTED] = "started",
        [MIGRATION_PHASE_MIGRATING] = "migrating",
        [MIGRATION_PHASE_MEASURING] = "measuring",
        [MIGRATION_PHASE_SETTLING] = "settling",
        [MIGRATION_PHASE_MOVED] = "moved",
};

DEFINE_STRING_TABLE(migration_phase, MigrationPhase, _MIGRATION_PHASE_MAX);

int migration_progress_to_json(const MigrationProgress *p, json_object **ret) {
        _cleanup_json_ json_object *x = json_object_new_object(), *a = NULL;
        int r = 0;

        if (!x)
                return -ENOMEM;
        switch (p->phase) {
        case MIGRATION_PHASE_STARTED:
                break;
        case MIGRATION_PHASE_MIGRATING:
                if (numa_residency_to_json(p->residency_before, &a) >= 0)
                        r = json_add(x, "residencyBefore", TAKE_PTR(a));
                break;
        case MIGRATION_PHASE_MEASURING:
                r = json_add_uint(x, "durationUSec", p->duration_usec);
                break;
        case MIGRATION_PHASE_SETTLING:
                r = json_add_uint(x, "settleUSec", p->settle_usec);
                break;
        case MIGRATION_PHASE_MOVED:
                if ((r = migration_report_to_json(p->report, &a)) >= 0)
                        r = json_add(x, "report", TAKE_PTR(a));
                break;
        case _MIGRATION_PHASE_MAX:
        case _MIGRATION_PHASE_INVALID:
                return -EINVAL;
        }
        if (r < 0 ||
            (r = json_add_string(x, "phase", migration_phase_to_string(p->phase))) < 0 ||
            (r = json_add_int(x, "move", p->move)) < 0 ||
            (r = json_add_int(x, "moves", p->moves)) < 0)
                return r;
        *ret = TAKE_PTR(x);
        return 0;
}

/* Userdata of a query_stats call: outlives the run when the run is freed first. */
typedef struct StatsToken {
        MigrationRun *run;
        bool after;
} StatsToken;

struct MigrationHistory {
        char *name;
        json_object **restored;         /* reports from a saved history (their JSON form), oldest first, before … */
        size_t n_restored;
        MigrationReport **reports;      /* … these, oldest first */
        size_t n_reports;
        MigrationTotals totals;         /* over every report, also those dropped */
        uint64_t next_id;
        MigrationRun *run;
};

struct MigrationRun {
        MigrationHistory *history;
        const MigrationContext *ctx;
        MigrationCallbacks callbacks;
        void *userdata;

        uint64_t nodes[2];              /* from, to (for a ping-pong: the two nodes) */
        unsigned count;                 /* moves in all (1 for a single move) */
        unsigned done;
        bool pingpong;
        bool cancelled;
        MigrationScope scope;
        uint64_t backend_sizes[NUMA_GUEST_RAM_MAX_BACKENDS];
        size_t n_backends;
        uint64_t every_usec;
        uint64_t settle_usec;
        uint64_t started_monotonic;
        MigrationSummary summary;

        /* the move in progress */
        uint64_t from, to;
        pid_t pid;
        bool tcg;
        uint64_t move_started_monotonic;
        uint64_t move_started_realtime;
        NumaMigrateJob *job;
        Worker *worker;
        NumaPerf *perf;
        KvmStats *stats_before;
        char *stats_reason;             /* why KVM counters are unavailable */
        StatsToken *token;
        sd_event_source *timer;         /* settle time, or the wait for the next move */
};

/* The request's parameters, checked. */
typedef struct MigrationPlan {
        uint64_t nodes[2];
        unsigned count;
        uint64_t every_usec, settle_usec;
        bool pingpong;
        MigrationScope scope;
} MigrationPlan;

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* ---- requests --------------------------------------------------------------------------------- */

static int parse_nodes(const char *s, const char *parameter, uint64_t *ret, NumaError *e) {
        if (!s)
                return numa_error_invalid_parameter(e, parameter);
        if (numa_node_list_parse(s, ret) < 0 || *ret == 0)
                return numa_error_invalid_parameter(e, parameter);
        return 0;
}

static int request_parse(const MigrationRequest *req, MigrationPlan *ret, NumaError *e) {
        MigrationPlan p = { .count = 1, .settle_usec = NUMA_MIGRATION_SETTLE_DEFAULT_USEC };
        int r;

        if (req->between) {
                int64_t count = req->count == MIGRATION_UNSET ? 2 : req->count;
                int64_t every = req->every_usec == MIGRATION_UNSET ? 0 : req->every_usec;
                CpuSet s;

                if (req->from || req->to)
                        return numa_error_invalid_parameter(e, req->from ? "from" : "to");
                if (cpu_list_parse(req->between, &s) < 0 || cpu_set_count(&s) != 2 ||
                    cpu_set_last(&s) >= (int) NUMA_NODES_MAX)
                        return numa_error_invalid_parameter(e, "between");
                for (unsigned n = 0, k = 0; n < NUMA_NODES_MAX; n++)
                        if (cpu_set_contains(&s, n))
                                p.nodes[k++] = UINT64_C(1) << n;
                if (count < 1 || count > NUMA_MIGRATION_MAX_MOVES)
                        return numa_error_invalid_parameter(e, "count");
                if (every < 0 || (uint64_t) every > NUMA_MIGRATION_EVERY_MAX_USEC)
                        return numa_error_invalid_parameter(e, "everyUSec");
                p.pingpong = true;
                p.count = (unsigned) count;
                p.every_usec = (uint64_t) every;
        } else {
                if (req->count != MIGRATION_UNSET && req->count != 1)
                        return numa_error_invalid_parameter(e, "count");
                if (!req->from)
                        return numa_error_invalid_parameter(e, "from");
                if (!req->to)
                        return numa_error_invalid_parameter(e, "to");
                if ((r = parse_nodes(req->from, "from", &p.nodes[0], e)) != 0 ||
                    (r = parse_nodes(req->to, "to", &p.nodes[1], e)) != 0)
                        return r;
        }
        if (req->settle_usec != MIGRATION_UNSET) {
                if (req->settle_usec < 0 || (uint64_t) req->settle_usec > NUMA_MIGRATION_SETTLE_MAX_USEC)
                        return numa_error_invalid_parameter(e, "settleUSec");
                p.settle_usec = (uint64_t) req->settle_usec;
        }
        p.scope = req->scope ? migration_scope_from_string(req->scope) : MIGRATION_SCOPE_PROCESS;
        if (p.scope < 0 || req->n_backends > NUMA_GUEST_RAM_MAX_BACKENDS)
                return numa_error_invalid_parameter(e, "scope");
        *ret = p;
        return 0;
}

int migration_request_validate(const MigrationRequest *req, NumaError *ret_error) {
        MigrationPlan p;

        return request_parse(req, &p, ret_error);
}

static bool have_cap_sys_nice(void) {
        cap_flag_value_t v = CAP_CLEAR;
        cap_t caps;

        caps = cap_get_proc();
        if (!caps)
                return false;
        if (cap_get_flag(caps, CAP_SYS_NICE, CAP_EFFECTIVE, &v) < 0)
                v = CAP_CLEAR;
        cap_free(caps);
        return v == CAP_SET;
}

static bool node_mask_subset(uint64_t mask, const NumaTopology *t, unsigned *ret_bad) {
        for (unsigned n = 0; n < NUMA_NODES_MAX; n++)
                if ((mask & (UINT64_C(1) << n)) && !numa_topology_find_node(t, n)) {
                        *ret_bad = n;
                        return false;
                }
        return true;
}

/* > 0 with *ret_reason when the guest's huge pages do not fit the free huge pages of the target nodes. */
static int check_hugepages(const char *sysfs_root, const MigrationRequest *req, uint64_t to, char **ret_reason) {
        _cleanup_free_ Meminfo *mi = NULL;
        _cleanup_free_ char *path = NULL;
        uint64_t free_pages = 0, page_size = 0;

        if (!req->hugepages)
                return 0;
        mi = malloc(sizeof(Meminfo));
        if (!mi)
                return -ENOMEM;
        path = path_join(sysfs_root, "proc/meminfo");
        if (!path || meminfo_read(path, mi) < 0 || meminfo_get(mi, "Hugepagesize", &page_size) < 0)
                return 0; /* cannot tell: migrate_pages will say */
        for (unsigned n = 0; n < NUMA_NODES_MAX; n++) {
                _cleanup_free_ char *p = NULL;
                uint64_t v;

                if (!(to & (UINT64_C(1) << n)))
                        continue;
                if (asprintf(&p, "%s/sys/devices/system/node/node%u/meminfo", sysfs_root, n) < 0)
                        return -ENOMEM;
                if (meminfo_read(p, mi) >= 0 && meminfo_get(mi, "HugePages_Free", &v) >= 0)
                        free_pages += v;
        }
        if (free_pages * page_size < req->memory_bytes) {
                if (asprintf(ret_reason, "the guest's memory is in huge pages (%" PRIu64 " bytes) but the target "
                             "node(s) have only %" PRIu64 " free huge pages of %" PRIu64 " bytes",
                             req->memory_bytes, free_pages, page_size) < 0)
                        return -ENOMEM;
                return 1;
        }
        return 0;
}

static int check_host(const MigrationContext *ctx, const MigrationRequest *req, const MigrationPlan *p,
                      NumaError *e) {
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        unsigned bad;
        int r;

        r = numa_topology_read(ctx->sysfs_root, &t);
        if (r < 0)
                return log_warning_errno(r, "Failed to read the NUMA topology: %m");
        /* move_pages(2) to the node a page is on is a valid (measurable) call: guest-ram allows one node. */
        if (t->n_nodes < 2 && p->scope != MIGRATION_SCOPE_GUEST_RAM) {
                r = numa_error_set_reason(e, NUMA_ERROR_SINGLE_NODE, "the host has a single NUMA node: there is "
                                          "no other node to move memory to");
                if (e)
                        e->n = t->n_nodes;
                return r;
        }
        for (size_t i = 0; i < 2; i++)
                if (!node_mask_subset(p->nodes[i], t, &bad)) {
                        _cleanup_free_ char *online = NULL;
                        CpuSet s = {};

                        for (size_t k = 0; k < t->n_nodes; k++)
                                cpu_set_add(&s, t->nodes[k].id);
                        (void) cpu_list_format(&s, &online);
                        numa_error_set(e, NUMA_ERROR_NO_SUCH_NODE);
                        if (e) {
                                e->parameter = p->pingpong ? "between" : i == 0 ? "from" : "to";
                                e->number = bad;
                                e->list = strdup(strna(online));
                                if (!e->list)
                                        return -ENOMEM;
                        }
                        return NUMA_ERROR_NO_SUCH_NODE;
                }
        if (p->nodes[0] == p->nodes[1] && p->scope != MIGRATION_SCOPE_GUEST_RAM) {
                numa_error_set(e, NUMA_ERROR_IDENTICAL_NODES);
                if (e) {
                        e->from = strdup(req->between ?: req->from);
                        e->to = strdup(req->between ?: req->to);
                        if (!e->from || !e->to)
                                return -ENOMEM;
                }
                return NUMA_ERROR_IDENTICAL_NODES;
        }
        return 0;
}

/* ---- history ---------------------------------------------------------------------------------- */

static void run_free(MigrationRun *run);

int migration_history_new(const char *name, MigrationHistory **ret) {
        MigrationHistory *h;

        h = calloc(1, sizeof(MigrationHistory));
        if (!h)
                return -ENOMEM;
        h->name = strdup(name);
        if (!h->name) {
                free(h);
                return -ENOMEM;
        }
        h->next_id = 1;
        *ret = h;
        return 0;
}

MigrationHistory *migration_history_free(MigrationHistory *h) {
        if (!h)
                return NULL;
        run_free(h->run);       /* joins a running migrate_pages */
        for (size_t i = 0; i < h->n_reports; i++)
                migration_report_unref(h->reports[i]);
        free(h->reports);
        for (size_t i = 0; i < h->n_restored; i++)
                json_object_put(h->restored[i]);
        free(h->restored);
        free(h->name);
        return mfree(h);
}

const char *migration_history_name(const MigrationHistory *h) {
        return h->name;
}

const MigrationTotals *migration_history_totals(const MigrationHistory *h) {
        return &h->totals;
}

void migration_history_get_metrics(const MigrationHistory *h, MetricsNuma *ret) {
        const MigrationTotals *t = h ? migration_history_totals(h) : NULL;

        *ret = t ? (MetricsNuma) {
                .migrations_total = t->migrations_total,
                .migration_failures = t->migration_failures,
                .pages_moved = t->pages_moved,
                .bytes_moved = t->bytes_moved,
                .migrate_usec = t->migrate_usec,
        } : (MetricsNuma) {};
}

MigrationReport *const *migration_history_reports(const MigrationHistory *h, size_t *ret_n) {
        *ret_n = h->n_reports;
        return h->reports;
}

int migration_history_to_json(const MigrationHistory *h, json_object **ret) {
        _cleanup_json_ json_object *a = json_object_new_array();
        int r;

        if (!a)
                return -ENOMEM;
        for (size_t i = 0; h && i < h->n_restored; i++)
                if (json_object_array_add(a, json_object_get(h->restored[i])) < 0) {
                        json_object_put(h->restored[i]);
                        return -ENOMEM;
                }
        for (size_t i = 0; h && i < h->n_reports; i++) {
                json_object *o = NULL;

                r = migration_report_to_json(h->reports[i], &o);
                if (r < 0)
                        return r;
                if (json_object_array_add(a, o) < 0) {
                        json_object_put(o);
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(a);
        return 0;
}

int migration_history_record(MigrationHistory *h, MigrationReport *r) {
        if (h->n_restored > 0 && h->n_restored + h->n_reports >= NUMA_MIGRATION_MAX_RECORDS) {
                json_object_put(h->restored[0]);
                memmove(h->restored, h->restored + 1, (h->n_restored - 1) * sizeof(json_object *));
                h->n_restored--;
        }
        if (h->n_reports >= NUMA_MIGRATION_MAX_RECORDS) {
                migration_report_unref(h->reports[0]);
                memmove(h->reports, h->reports + 1, (h->n_reports - 1) * sizeof(MigrationReport *));
                h->n_reports--;
        } else {
                MigrationReport **t = realloc(h->reports, (h->n_reports + 1) * sizeof(MigrationReport *));
                if (!t)
                        return -ENOMEM;
                h->reports = t;
        }
        r->id = h->next_id++;
        migration_totals_add(&h->totals, r);
        h->reports[h->n_reports++] = migration_report_ref(r);
        return 0;
}

int migration_history_save(const MigrationHistory *h, char **ret_text, size_t *ret_size) {
        _cleanup_json_ json_object *o = json_object_new_object(), *t = json_object_new_object(), *a = NULL;
        const char *text;
        size_t len;
        int r;

        if (!o || !t)
                return -ENOMEM;
        r = migration_history_to_json(h, &a);
        if (r < 0)
                return r;
        if (json_add_int(o, "version", MIGRATION_HISTORY_VERSION) < 0 || json_add_string(o, "name", h->name) < 0 ||
            json_add_uint(o, "nextId", h->next_id) < 0 ||
            json_add_uint(t, "migrations", h->totals.migrations_total) < 0 ||
            json_add_uint(t, "failures", h->totals.migration_failures) < 0 ||
            json_add_uint(t, "pagesMoved", h->totals.pages_moved) < 0 ||
            json_add_uint(t, "bytesMoved", h->totals.bytes_moved) < 0 ||
            json_add_uint(t, "migrateUSec", h->totals.migrate_usec) < 0 || json_add(o, "totals", TAKE_PTR(t)) < 0 ||
            json_add(o, "reports", TAKE_PTR(a)) < 0)
                return -ENOMEM;
        text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!text || !(*ret_text = strndup(text, len)))
                return -ENOMEM;
        if (ret_size)
                *ret_size = len;
        return 0;
}

static bool get_count(json_object *o, const char *key, uint64_t *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) < 0)
                return false;
        *ret = (uint64_t) json_object_get_int64(v);
        return true;
}

static const char *history_check(const MigrationHistory *h, json_object *o, uint64_t *ret_next_id,
                                 MigrationTotals *ret_totals, json_object **ret_reports) {
        json_object *t, *a, *v;
        uint64_t version, last = 0;

        if (!json_object_is_type(o, json_type_object) || !get_count(o, "version", &version) ||
            !json_object_object_get_ex(o, "name", &v) || !json_object_is_type(v, json_type_string) ||
            !get_count(o, "nextId", ret_next_id) || !json_object_object_get_ex(o, "totals", &t) ||
            !json_object_object_get_ex(o, "reports", &a) || !json_object_is_type(a, json_type_array))
                return "a required field is missing or of the wrong type";
        if (version != MIGRATION_HISTORY_VERSION)
                return "an unknown version";
        if (!streq(json_object_get_string(v), h->name))
                return "the record is of another guest";
        if (!json_object_is_type(t, json_type_object) || !get_count(t, "migrations", &ret_totals->migrations_total) ||
            !get_count(t, "failures", &ret_totals->migration_failures) ||
            !get_count(t, "pagesMoved", &ret_totals->pages_moved) ||
            !get_count(t, "bytesMoved", &ret_totals->bytes_moved) ||
            !get_count(t, "migrateUSec", &ret_totals->migrate_usec))
                return "the totals are invalid";
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                json_object *rep = json_object_array_get_idx(a, i), *n;
                uint64_t id;

                /* Kept as they were shown; what identifies them must hold. */
                if (!json_object_is_type(rep, json_type_object) || !get_count(rep, "id", &id) || id <= last ||
                    id >= *ret_next_id || !json_object_object_get_ex(rep, "name", &n) ||
                    !json_object_is_type(n, json_type_string) || !streq(json_object_get_string(n), h->name))
                        return "a report is invalid (its id or name)";
                last = id;
        }
        *ret_reports = a;
        return NULL;
}

int migration_history_load(MigrationHistory *h, const char *text, size_t size, const char **ret_reason) {
        _cleanup_json_ json_object *o = NULL;
        MigrationTotals totals = {};
        json_object *a = NULL, **restored;
        const char *why;
        uint64_t next_id = 0;
        size_t n, first;
        json_tokener *tok;
        bool ok;

        if (h->run || h->n_reports > 0 || h->n_restored > 0)
                return -EBUSY;
        if (size > MIGRATION_HISTORY_SIZE_MAX) {
                if (ret_reason)
                        *ret_reason = "the record is too large";
                return -E2BIG;
        }
        tok = json_tokener_new_ex(16);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = memchr(text, 0, size) ? NULL : json_tokener_parse_ex(tok, text, (int) size);
        ok = o && json_tokener_get_error(tok) == json_tokener_success && json_tokener_get_parse_end(tok) == size;
        json_tokener_free(tok);
        why = ok ? history_check(h, o, &next_id, &totals, &a) : "not valid JSON";
        if (why) {
                if (ret_reason)
                        *ret_reason = why;
                return -EBADMSG;
        }

        n = json_object_array_length(a);
        first = n > NUMA_MIGRATION_MAX_RECORDS ? n - NUMA_MIGRATION_MAX_RECORDS : 0;
        restored = n > first ? calloc(n - first, sizeof(json_object *)) : NULL;
        if (n > first && !restored)
                return -ENOMEM;
        for (size_t i = first; i < n; i++)
                restored[i - first] = json_object_get(json_object_array_get_idx(a, i));
        h->restored = restored;
        h->n_restored = n - first;
        h->next_id = MAX(next_id, (uint64_t) 1);
        h->totals = totals;
        return 0;
}

bool migration_history_busy(const MigrationHistory *h, MigrationRunStatus *ret_status) {
        if (!h || !h->run)
                return false;
        if (ret_status)
                *ret_status = (MigrationRunStatus) {
                        .pingpong = h->run->pingpong,
                        .cancelled = h->run->cancelled,
                        .done = h->run->done,
                        .count = h->run->count,
                };
        return true;
}

/* ---- runs ------------------------------------------------------------------------------------- */

static void run_begin_move(MigrationRun *run);

static void run_reset_move(MigrationRun *run) {
        run->worker = worker_free(run->worker);
        run->job = numa_migrate_job_free(run->job);
        run->perf = numa_perf_free(run->perf);
        run->stats_before = kvm_stats_free(run->stats_before);
        run->stats_reason = mfree(run->stats_reason);
        run->timer = sd_event_source_disable_unref(run->timer);
        if (run->token) {
                run->token->run = NULL;  /* the query's callback frees it */
                run->token = NULL;
        }
}

/* The end of the run: finished() once, then the run is freed. Consumes *details. */
static void run_finish(MigrationRun *run, int error, NumaError *details) {
        MigrationCallbacks cb = run->callbacks;

        run_reset_move(run);
        if (run->history && run->history->run == run)
                run->history->run = NULL;
        run->summary.moves = run->done;
        run->summary.elapsed_usec = now_usec(CLOCK_MONOTONIC) - run->started_monotonic;
        if (cb.finished)
                cb.finished(error, details && details->code > 0 ? details : NULL, &run->summary, run->userdata);
        numa_error_done(details);
        migration_report_unref(run->summary.last_report);
        free(run);
}

static void run_free(MigrationRun *run) {
        if (run)
                run_finish(run, -ECANCELED, NULL);
}

void migration_history_cancel(MigrationHistory *h) {
        MigrationRun *run = h ? h->run : NULL;

        if (!run)
                return;
        run->cancelled = true;
        if (run->timer && !run->job)
                run_finish(run, 0, NULL);       /* waiting for the next move: end now */
}

static void run_progress(MigrationRun *run, MigrationProgress p) {
        if (!run->callbacks.progress)
                return;
        p.move = run->done + 1;
        p.moves = run->count;
        run->callbacks.progress(&p, run->userdata);
}

static int run_build_report(MigrationRun *run, const KvmStats *after, const char *after_reason,
                            MigrationReport **ret) {
        _cleanup_(migration_report_unrefp) MigrationReport *rep = NULL;
        NumaMigrateJob *j = run->job;
        const char *reason;
        int r;

        r = migration_report_new(&rep);
        if (r < 0)
                return r;
        rep->name = strdup(run->history->name);
        if (!rep->name)
                return -ENOMEM;
        rep->from = run->from;
        rep->to = run->to;
        rep->pid = run->pid;
        rep->started_realtime_usec = run->move_started_realtime;
        rep->settle_usec = run->settle_usec;
        rep->total_usec = now_usec(CLOCK_MONOTONIC) - run->move_started_monotonic;
        rep->pingpong_move = run->pingpong ? run->done + 1 : 0;
        rep->error = j->syscall_error;
        rep->have_before = j->have_before;
        rep->have_after = j->have_after;
        rep->before = j->before;
        rep->after = j->after;
        rep->syscall_pages_not_moved = j->not_moved;
        rep->scope = j->scope;
        if (j->have_guest_ram) {
                rep->have_guest_ram = true;
                rep->guest_ram = j->guest_ram;
                rep->guest_ram_ranges = TAKE_PTR(j->ranges);
                rep->n_guest_ram_ranges = j->n_ranges;
                j->n_ranges = 0;
        }
        migration_report_summarize(rep, j->end_usec > j->start_usec ? j->end_usec - j->start_usec : 0);

        /* KVM counters over the move plus the settle time. */
        if (run->stats_before && after && kvm_stats_available(run->stats_before) && kvm_stats_available(after)) {
                r = migration_kvm_counters_from_stats(run->stats_before, after, &rep->kvm);
                if (r < 0)
                        return r;
        } else if ((reason = run->stats_reason ?: after_reason)) {
                rep->kvm.reason = strdup(reason);
                if (!rep->kvm.reason)
                        return -ENOMEM;
        }

        reason = !run->perf ? "not measured" : numa_perf_unavailable_reason(run->perf);
        if (!reason) {
                r = numa_perf_read(run->perf, &rep->tracepoints.kvm_page_faults, &rep->tracepoints.kvm_exits);
                if (r < 0)
                        reason = strerror(-r);
                else
                        rep->tracepoints.available = true;
        }
        if (reason) {
                rep->tracepoints.reason = strdup(reason);
                if (!rep->tracepoints.reason)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(rep);
        return 0;
}

static int run_on_next_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        MigrationRun *run = userdata;

        run->timer = sd_event_source_disable_unref(run->timer);
        run_begin_move(run);
        return 0;
}

/* A move ended with its report: record it, then the next move or the end. */
static void run_move_done(MigrationRun *run, MigrationReport *report) {
        bool failed = migration_report_failed(report);
        uint64_t elapsed, delay;
        int r;

        r = migration_history_record(run->history, report);
        if (r < 0) {
                migration_report_unref(report);
                return run_finish(run, r, NULL);
        }
        if (!run->summary.last_report)
                run->summary.first_report_id = report->id;
        migration_report_unref(run->summary.last_report);
        run->summary.last_report = migration_report_ref(report);
        run->summary.moves_failed += failed;
        if (report->have_before && report->have_after) {
                run->summary.pages_moved += report->summary.pages_moved;
                run->summary.bytes_moved += report->summary.bytes_moved;
                run->summary.duration_usec += report->summary.duration_usec;
        }
        run_progress(run, (MigrationProgress) { .phase = MIGRATION_PHASE_MOVED, .report = report });
        run->done++;
        elapsed = now_usec(CLOCK_MONOTONIC) - run->move_started_monotonic;
        run_reset_move(run);

        if (failed && !run->pingpong) {
                NumaError e = {};

                r = numa_error_set_reason(&e, NUMA_ERROR_MIGRATION_FAILED, strerror(-report->error));
                e.report = report;      /* takes our reference */
                return run_finish(run, r, &e);
        }
        migration_report_unref(report);
        if (run->done >= run->count || run->cancelled)
                return run_finish(run, 0, NULL);

        delay = run->every_usec > elapsed ? run->every_usec - elapsed : 0;
        r = sd_event_add_time_relative(run->ctx->event, &run->timer, CLOCK_MONOTONIC, delay, 0, run_on_next_timer,
                                       run);
        if (r < 0) {
                log_error_errno(r, "Failed to schedule the next move of guest %s: %m", run->history->name);
                return run_finish(run, r, NULL);
        }
        (void) sd_event_source_set_description(run->timer, "numa-pingpong");
}

static void run_on_stats(KvmStats *stats, int error, void *userdata);

static void run_query_stats(MigrationRun *run, bool after) {
        StatsToken *t;
        int r;

        t = calloc(1, sizeof(StatsToken));
        if (!t)
                return run_on_stats(NULL, -ENOMEM, &(StatsToken) { .run = run, .after = after });
        t->run = run;
        t->after = after;
        r = run->ctx->query_stats ? run->ctx->query_stats(run->history->name, run->pid,
                                                          NUMA_MIGRATION_STATS_TIMEOUT_USEC, run_on_stats, t,
                                                          run->ctx->userdata)
                                  : -ENOTCONN;
        if (r < 0) {
                /* Report synchronously through the same path. */
                free(t);
                return run_on_stats(NULL, r, &(StatsToken) { .run = run, .after = after });
        }
        run->token = t;
}

static void run_on_migrated(Worker *w, int code, bool done, int result, void *userdata);

static void run_start_worker(MigrationRun *run) {
        const MigrationContext *ctx = run->ctx;
        int r;

        r = numa_migrate_job_new(ctx->proc_root, run->pid, run->from, run->to, &run->job);
        if (r >= 0 && run->scope == MIGRATION_SCOPE_GUEST_RAM)
                r = numa_migrate_job_set_guest_ram(run->job, ctx->proc_root, run->backend_sizes, run->n_backends);
        if (r >= 0)
                r = worker_start(ctx->event, "numa-migrate", ctx->job_fn ?: numa_migrate_job_run, run->job,
                                      run_on_migrated, run, &run->worker);
        if (r < 0) {
                log_error_errno(r, "Failed to start the page migration of guest %s: %m", run->history->name);
                return run_finish(run, r, NULL);
        }
}

static int run_on_settled(sd_event_source *s, uint64_t usec, void *userdata) {
        MigrationRun *run = userdata;

        run->timer = sd_event_source_disable_unref(run->timer);
        run_query_stats(run, true);
        return 0;
}

static void run_on_stats(KvmStats *stats, int error, void *userdata) {
        StatsToken *t = userdata, tok = *t;
        MigrationRun *run = tok.run;
        _cleanup_(kvm_stats_freep) KvmStats *s = stats;
        _cleanup_free_ char *reason = NULL;
        MigrationReport *report = NULL;
        int r;

        /* Tokens on the stack are the synchronous error path; heap ones came from query_stats. */
        if (run && run->token == t) {
                run->token = NULL;
                free(t);
        } else if (!run) {
                free(t);
                return;         /* the run is gone */
        }

        if (error < 0)
                (void) asprintf(&reason, "query-stats failed: %s", error == -EIO ? "QEMU refused it" :
                                error == -ENOTCONN ? "no QMP connection to the guest" : strerror(-error));
        else if (!kvm_stats_available(s))
                (void) asprintf(&reason, "query-stats returned no KVM statistics (the guest runs under %s)",
                                run->tcg ? "TCG" : "an accelerator without KVM statistics");

        if (!tok.after) {
                if (reason)
                        run->stats_reason = TAKE_PTR(reason);
                else
                        run->stats_before = TAKE_PTR(s);
                return run_start_worker(run);
        }

        r = run_build_report(run, s, reason, &report);
        if (r < 0) {
                log_error_errno(r, "Failed to build the migration report of guest %s: %m", run->history->name);
                return run_finish(run, r, NULL);
        }
        run_move_done(run, report);
}

static void run_on_migrated(Worker *w, int code, bool done, int result, void *userdata) {
        MigrationRun *run = userdata;
        NumaError e = {};
        int r;

        if (!done) {
                if (code == NUMA_MIGRATE_PHASE_MEASURED)
                        run_progress(run, (MigrationProgress) { .phase = MIGRATION_PHASE_MIGRATING,
                                                                .residency_before = &run->job->before });
                else if (code == NUMA_MIGRATE_PHASE_MOVED)
                        run_progress(run, (MigrationProgress) {
                                .phase = MIGRATION_PHASE_MEASURING,
                                .duration_usec = run->job->end_usec - run->job->start_usec });
                return;
        }

        run->worker = worker_free(run->worker);
        if (run->job->scope_reason || (run->job->scope == MIGRATION_SCOPE_GUEST_RAM && !run->job->ranges)) {
                log_warning("Guest %s: %s", run->history->name, strna(run->job->scope_reason));
                r = numa_error_set_reason(&e, NUMA_ERROR_MEMORY_CANNOT_MOVE,
                                          run->job->scope_reason ?: "scope guest-ram: the guest's RAM mappings cannot be found");
                return run_finish(run, r, &e);
        }
        if (!run->job->have_before) {
                /* numa_maps could not be read: the guest is gone (or was never ours to read). */
                log_warning_errno(result, "Guest %s: cannot read its numa_maps: %m", run->history->name);
                r = numa_error_set_reason(&e, NUMA_ERROR_MIGRATION_FAILED, strerror(-result));
                return run_finish(run, r, &e);
        }
        if (run->job->syscall_error == -EPERM) {
                r = numa_error_set_reason(&e, NUMA_ERROR_MISSING_CAPABILITY, "migrate_pages(2) refused: EPERM");
                e.capability = "CAP_SYS_NICE";
                return run_finish(run, r, &e);
        }

        /* Let the guest touch its moved pages, then read the KVM counters again. */
        r = sd_event_add_time_relative(run->ctx->event, &run->timer, CLOCK_MONOTONIC, run->settle_usec, 0,
                                       run_on_settled, run);
        if (r < 0) {
                log_error_errno(r, "Failed to arm the settle timer of guest %s: %m", run->history->name);
                return run_finish(run, r, NULL);
        }
        (void) sd_event_source_set_description(run->timer, "numa-settle");
        if (run->settle_usec > 0)
                run_progress(run, (MigrationProgress) { .phase = MIGRATION_PHASE_SETTLING,
                                                        .settle_usec = run->settle_usec });
}

static void run_begin_move(MigrationRun *run) {
        const MigrationContext *ctx = run->ctx;
        MigrationGuest g = {};
        int r;

        r = ctx->lookup(run->history->name, ctx->userdata, &g);
        if (r < 0 && r != -ESRCH)
                return run_finish(run, r, NULL);
        if (r < 0) {
                log_info("Guest %s is not running any more; %s after %u move(s).", run->history->name,
                         run->pingpong ? "ping-pong ends" : "migration abandoned", run->done);
                return run_finish(run, run->done > 0 ? 0 : NUMA_ERROR_NOT_RUNNING,
                                  &(NumaError) { .code = run->done > 0 ? 0 : NUMA_ERROR_NOT_RUNNING });
        }

        run->pid = g.pid;
        run->tcg = g.tcg;
        run->move_started_monotonic = now_usec(CLOCK_MONOTONIC);
        run->move_started_realtime = now_usec(CLOCK_REALTIME);
        if (run->pingpong) {
                bool forward = run->done % 2 == 0;
                run->from = forward ? run->nodes[0] : run->nodes[1];
                run->to = forward ? run->nodes[1] : run->nodes[0];
        } else {
                run->from = run->nodes[0];
                run->to = run->nodes[1];
        }

        /* No KVM exits under TCG: counting would give zeros that mean nothing. */
        if (!run->tcg) {
                r = numa_perf_open(ctx->sysfs_root, g.vcpu_threads, g.n_vcpu_threads, &run->perf);
                if (r < 0)
                        return run_finish(run, r, NULL);
        }

        run_progress(run, (MigrationProgress) { .phase = MIGRATION_PHASE_STARTED });
        run_query_stats(run, false);
}

int migration_run_new(MigrationHistory *h, const MigrationContext *ctx, const MigrationRequest *req,
                      const MigrationCallbacks *callbacks, void *userdata, MigrationRun **ret,
                      NumaError *ret_error) {
        _cleanup_free_ char *why = NULL;
        MigrationRun *run;
        MigrationPlan p;
        int r;

        r = request_parse(req, &p, ret_error);
        if (r != 0)
                return r;
        r = check_host(ctx, req, &p, ret_error);
        if (r != 0)
                return r;
        if (req->pid <= 0)
                return numa_error_set(ret_error, NUMA_ERROR_NOT_RUNNING);
        if (h->run) {
                numa_error_set(ret_error, NUMA_ERROR_BUSY);
                if (ret_error)
                        ret_error->operation = h->run->pingpong ? "ping-pong migration" : "page migration";
                return NUMA_ERROR_BUSY;
        }
        if (!(ctx->have_capability ?: have_cap_sys_nice)()) {
                r = numa_error_set_reason(ret_error, NUMA_ERROR_MISSING_CAPABILITY,
                                          "migrate_pages(2) of another process's memory needs CAP_SYS_NICE");
                if (ret_error)
                        ret_error->capability = "CAP_SYS_NICE";
                return r;
        }
        r = check_hugepages(ctx->sysfs_root, req, p.pingpong ? p.nodes[0] | p.nodes[1] : p.nodes[1], &why);
        if (r < 0)
                return r;
        if (r > 0)
                return numa_error_set_reason(ret_error, NUMA_ERROR_MEMORY_CANNOT_MOVE, why);

        run = calloc(1, sizeof(MigrationRun));
        if (!run)
                return -ENOMEM;
        run->history = h;
        run->ctx = ctx;
        run->callbacks = *callbacks;
        run->userdata = userdata;
        run->started_monotonic = now_usec(CLOCK_MONOTONIC);
        run->nodes[0] = p.nodes[0];
        run->nodes[1] = p.nodes[1];
        run->pingpong = p.pingpong;
        run->count = p.count;
        run->every_usec = p.every_usec;
        run->settle_usec = p.settle_usec;
        run->scope = p.scope;
        if (req->n_backends > 0) {
                memcpy(run->backend_sizes, req->backend_sizes, req->n_backends * sizeof(uint64_t));
                run->n_backends = req->n_backends;
        } else {
                run->backend_sizes[0] = req->memory_bytes;
                run->n_backends = 1;
        }
        h->run = run;
        *ret = run;
        return 0;
}

void migration_run_begin(MigrationRun *run) {
        run_begin_move(run);
}
