/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "numa/numa-report.h"

/* ---- KVM counters ----------------------------------------------------------------------------- */

static void kvm_stat_deltas_free(KvmStatDelta *d, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(d[i].name);
        free(d);
}

void migration_kvm_counters_done(MigrationKvmCounters *c) {
        if (!c)
                return;
        free(c->reason);
        kvm_stat_deltas_free(c->vm, c->n_vm);
        kvm_stat_deltas_free(c->vcpus, c->n_vcpus);
        *c = (MigrationKvmCounters) {};
}

static const KvmStat *stat_set_find(const KvmStatSet *s, const char *name) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->stats[i].name, name))
                        return &s->stats[i];
        return NULL;
}

static bool deltas_contain(const KvmStatDelta *d, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (streq(d[i].name, name))
                        return true;
        return false;
}

/* Every name seen in either snapshot, in the order seen (before first); vcpu values summed over vCPUs. */
static int deltas_build(const KvmStats *before, const KvmStats *after, bool vcpu, KvmStatDelta **ret,
                        size_t *ret_n) {
        const KvmStats *both[2] = { before, after };
        KvmStatDelta *d = NULL;
        size_t n = 0;

        for (size_t k = 0; k < 2; k++) {
                const KvmStats *s = both[k];
                size_t nsets = vcpu ? s->n_vcpus : 1;

                for (size_t set = 0; set < nsets; set++) {
                        const KvmStatSet *ss = vcpu ? &s->vcpus[set] : &s->vm;

                        for (size_t i = 0; i < ss->n; i++) {
                                const char *name = ss->stats[i].name;
                                KvmStatDelta e = { .cumulative = ss->stats[i].cumulative }, *t;

                                if (deltas_contain(d, n, name))
                                        continue;
                                if (vcpu) {
                                        e.have_before = kvm_stats_get(before, name, &e.before) >= 0 &&
                                                        !stat_set_find(&before->vm, name);
                                        e.have_after = kvm_stats_get(after, name, &e.after) >= 0 &&
                                                       !stat_set_find(&after->vm, name);
                                        if (!e.have_before)
                                                e.before = 0;
                                        if (!e.have_after)
                                                e.after = 0;
                                } else {
                                        const KvmStat *x = stat_set_find(&before->vm, name),
                                                      *y = stat_set_find(&after->vm, name);
                                        e.have_before = x;
                                        e.have_after = y;
                                        e.before = x ? x->value : 0;
                                        e.after = y ? y->value : 0;
                                }
                                e.name = strdup(name);
                                t = e.name ? realloc(d, (n + 1) * sizeof(KvmStatDelta)) : NULL;
                                if (!t) {
                                        free(e.name);
                                        kvm_stat_deltas_free(d, n);
                                        return -ENOMEM;
                                }
                                d = t;
                                d[n++] = e;
                        }
                }
        }
        *ret = d;
        *ret_n = n;
        return 0;
}

int migration_kvm_counters_from_stats(const KvmStats *before, const KvmStats *after, MigrationKvmCounters *ret) {
        MigrationKvmCounters c = { .available = true };
        int r;

        if (!kvm_stats_available(before) || !kvm_stats_available(after))
                return -EINVAL;
        c.interval_usec = after->monotonic_usec - before->monotonic_usec;
        r = deltas_build(before, after, false, &c.vm, &c.n_vm);
        if (r < 0)
                return r;
        r = deltas_build(before, after, true, &c.vcpus, &c.n_vcpus);
        if (r < 0) {
                migration_kvm_counters_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

/* after - before as a signed number, saturated (the values may be anything up to UINT64_MAX). */
static int64_t counter_delta(uint64_t before, uint64_t after) {
        if (after >= before)
                return after - before > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) (after - before);
        return before - after > (uint64_t) INT64_MAX ? INT64_MIN : -(int64_t) (before - after);
}

static int deltas_to_json(const KvmStatDelta *d, size_t n, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_json_ json_object *e = json_object_new_object();

                if (!e)
                        return -ENOMEM;
                if (d[i].have_before && (r = json_add_uint(e, "before", d[i].before)) < 0)
                        return r;
                if (d[i].have_after && (r = json_add_uint(e, "after", d[i].after)) < 0)
                        return r;
                if (d[i].cumulative && d[i].have_before && d[i].have_after &&
                    (r = json_add_int(e, "delta", counter_delta(d[i].before, d[i].after))) < 0)
                        return r;
                if ((r = json_add_bool(e, "cumulative", d[i].cumulative)) < 0 ||
                    (r = json_add(o, d[i].name, TAKE_PTR(e))) < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

static int kvm_counters_to_json(const MigrationKvmCounters *c, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *vm = NULL, *vcpus = NULL;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_bool(o, "available", c->available)) < 0)
                return r;
        if (!c->available) {
                r = json_add_string(o, "reason", c->reason ?: "query-stats returned no KVM statistics");
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(o);
                return 0;
        }
        if ((r = json_add_uint(o, "intervalUSec", c->interval_usec)) < 0 ||
            (r = deltas_to_json(c->vm, c->n_vm, &vm)) < 0 ||
            (r = deltas_to_json(c->vcpus, c->n_vcpus, &vcpus)) < 0 ||
            (r = json_add(o, "vm", TAKE_PTR(vm))) < 0 ||
            (r = json_add(o, "vcpus", TAKE_PTR(vcpus))) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int tracepoints_to_json(const MigrationTracepoints *t, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_bool(o, "available", t->available)) < 0)
                return r;
        if (!t->available)
                r = json_add_string(o, "reason", t->reason ?: "not measured");
        else if ((r = json_add_uint(o, "kvmPageFault", t->kvm_page_faults)) >= 0)
                r = json_add_uint(o, "kvmExit", t->kvm_exits);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- reports ---------------------------------------------------------------------------------- */

int migration_report_new(MigrationReport **ret) {
        MigrationReport *r = calloc(1, sizeof(MigrationReport));

        if (!r)
                return -ENOMEM;
        r->n_ref = 1;
        *ret = r;
        return 0;
}

MigrationReport *migration_report_ref(MigrationReport *r) {
        if (r)
                r->n_ref++;
        return r;
}

MigrationReport *migration_report_unref(MigrationReport *r) {
        if (!r || --r->n_ref > 0)
                return NULL;
        free(r->name);
        migration_kvm_counters_done(&r->kvm);
        free(r->tracepoints.reason);
        guest_ram_ranges_free(r->guest_ram_ranges, r->n_guest_ram_ranges);
        return mfree(r);
}

void migration_report_summarize(MigrationReport *r, uint64_t syscall_usec) {
        if (r->have_before && r->have_after)
                numa_migrate_summarize(&r->before, &r->after, r->from, r->to, syscall_usec, &r->summary);
}

static char *node_mask_format(uint64_t mask) {
        CpuSet s = { .bits = { mask } };
        char *t = NULL;

        if (cpu_list_format(&s, &t) < 0)
                return NULL;
        return t;
}

static int add_residency(json_object *o, const char *key, const NumaResidency *res) {
        _cleanup_json_ json_object *a = NULL;
        int r;

        r = numa_residency_to_json(res, &a);
        if (r < 0)
                return r;
        return json_add(o, key, TAKE_PTR(a));
}

static int guest_ram_pages_json(const uint64_t per_node[static NUMA_NODES_MAX], uint64_t page_size, json_object **ret) {
        _cleanup_json_ json_object *a = json_object_new_array();

        if (!a)
                return -ENOMEM;
        for (unsigned n = 0; n < NUMA_NODES_MAX; n++) {
                _cleanup_json_ json_object *x = NULL;

                if (per_node[n] == 0)
                        continue;
                x = json_object_new_object();
                if (!x || json_add_int(x, "node", n) < 0 || json_add_uint(x, "pages", per_node[n]) < 0 ||
                    json_add_uint(x, "bytes", per_node[n] * page_size) < 0 ||
                    json_object_array_add(a, x) < 0)
                        return -ENOMEM;
                TAKE_PTR(x);
        }
        *ret = TAKE_PTR(a);
        return 0;
}

/* "guestRam": {"ranges": [{"start", "size", "pageSize", "rssBytes", "path"?}], "pagesTotal", "pagesAsked",
 * "pagesMoved", "pagesFailed", "failed": [{"errno", "pages"}], "residencyBefore", "residencyAfter" (pages per
 * node of the ranges alone, from move_pages' queries), "notPresentBefore", "notPresentAfter", "calls",
 * "moveUSec", "bytesPerSecond"} */
static int guest_ram_to_json(const MigrationReport *rep, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *ranges = json_object_new_array(),
                *failed = json_object_new_array(), *before = NULL, *after = NULL;
        const GuestRamResult *g = &rep->guest_ram;
        uint64_t page_size = rep->n_guest_ram_ranges > 0 ? rep->guest_ram_ranges[0].page_size : 4096;

        if (!o || !ranges || !failed)
                return -ENOMEM;
        for (size_t i = 0; i < rep->n_guest_ram_ranges; i++) {
                const GuestRamRange *x = &rep->guest_ram_ranges[i];
                _cleanup_json_ json_object *j = json_object_new_object();

                if (!j || json_add_uint(j, "start", x->start) < 0 || json_add_uint(j, "size", x->size) < 0 ||
                    json_add_uint(j, "pageSize", x->page_size) < 0 || json_add_uint(j, "rssBytes", x->rss_bytes) < 0 ||
                    (x->path && json_add_string(j, "path", x->path) < 0) || json_object_array_add(ranges, j) < 0)
                        return -ENOMEM;
                TAKE_PTR(j);
        }
        for (size_t i = 0; i < g->n_failed; i++) {
                _cleanup_json_ json_object *j = json_object_new_object();
                const char *name = strerrorname_np(g->failed[i].error);
                char buf[32];

                if (!name) {
                        (void) snprintf(buf, sizeof(buf), "%i", g->failed[i].error);
                        name = buf;
                }
                if (!j || json_add_string(j, "errno", name) < 0 || json_add_uint(j, "pages", g->failed[i].pages) < 0 ||
                    json_object_array_add(failed, j) < 0)
                        return -ENOMEM;
                TAKE_PTR(j);
        }
        if (guest_ram_pages_json(g->before, page_size, &before) < 0 ||
            guest_ram_pages_json(g->after, page_size, &after) < 0 ||
            json_add(o, "ranges", TAKE_PTR(ranges)) < 0 ||
            json_add_uint(o, "pagesTotal", g->pages_total) < 0 ||
            json_add_uint(o, "pagesAsked", g->pages_asked) < 0 ||
            json_add_uint(o, "pagesMoved", g->pages_moved) < 0 ||
            json_add_uint(o, "pagesFailed", g->pages_failed) < 0 ||
            json_add(o, "failed", TAKE_PTR(failed)) < 0 ||
            json_add(o, "residencyBefore", TAKE_PTR(before)) < 0 ||
            json_add(o, "residencyAfter", TAKE_PTR(after)) < 0 ||
            json_add_uint(o, "notPresentBefore", g->not_present_before) < 0 ||
            json_add_uint(o, "notPresentAfter", g->not_present_after) < 0 ||
            json_add_uint(o, "calls", g->calls) < 0 ||
            json_add_uint(o, "moveUSec", g->move_usec) < 0 ||
            json_add_double(o, "bytesPerSecond", g->move_usec > 0 ?
                            (double) g->pages_moved * (double) page_size * USEC_PER_SEC / (double) g->move_usec : 0) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int migration_report_to_json(const MigrationReport *rep, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *kvm = NULL, *tp = NULL;
        _cleanup_free_ char *from = node_mask_format(rep->from), *to = node_mask_format(rep->to);
        const NumaMigrateSummary *s = &rep->summary;
        int r;

        if (!o || !from || !to)
                return -ENOMEM;
        if ((r = json_add_uint(o, "id", rep->id)) < 0 ||
            (r = json_add_string(o, "name", rep->name)) < 0 ||
            (r = json_add_string(o, "from", from)) < 0 ||
            (r = json_add_string(o, "to", to)) < 0 ||
            (r = json_add_int(o, "pid", rep->pid)) < 0 ||
            (r = json_add_uint(o, "startedRealtimeUSec", rep->started_realtime_usec)) < 0 ||
            (r = json_add_uint(o, "settleUSec", rep->settle_usec)) < 0 ||
            (r = json_add_uint(o, "totalUSec", rep->total_usec)) < 0)
                return r;
        if (rep->pingpong_move > 0 && (r = json_add_int(o, "pingPongMove", rep->pingpong_move)) < 0)
                return r;
        if (rep->scope != MIGRATION_SCOPE_PROCESS &&
            (r = json_add_string(o, "scope", migration_scope_to_string(rep->scope))) < 0)
                return r;
        if (rep->have_guest_ram) {
                _cleanup_json_ json_object *g = NULL;

                if ((r = guest_ram_to_json(rep, &g)) < 0 || (r = json_add(o, "guestRam", TAKE_PTR(g))) < 0)
                        return r;
        }

        if (migration_report_failed(rep)) {
                if ((r = json_add_string(o, "result", "failed")) < 0 ||
                    (r = json_add_string(o, "error", strerror(-rep->error))) < 0)
                        return r;
        } else if ((r = json_add_string(o, "result", "done")) < 0)
                return r;

        if (rep->have_before && (r = add_residency(o, "residencyBefore", &rep->before)) < 0)
                return r;
        if (rep->have_after && (r = add_residency(o, "residencyAfter", &rep->after)) < 0)
                return r;
        if (rep->have_before && rep->have_after &&
            ((r = json_add_uint(o, "durationUSec", s->duration_usec)) < 0 ||
             (r = json_add_uint(o, "pagesMoved", s->pages_moved)) < 0 ||
             (r = json_add_uint(o, "bytesMoved", s->bytes_moved)) < 0 ||
             (r = json_add_uint(o, "pagesNotMoved", s->pages_not_moved)) < 0 ||
             (r = json_add_uint(o, "bytesNotMoved", s->bytes_not_moved)) < 0 ||
             (r = json_add_uint(o, "bytesOnTargetAfter", s->bytes_on_target_after)) < 0 ||
             (r = json_add_uint(o, "residentBytesAfter", s->total_bytes_after)) < 0 ||
             (r = json_add_double(o, "fractionOnTarget", s->fraction_on_target)) < 0 ||
             (r = json_add_double(o, "bytesPerSecond", s->bytes_per_sec)) < 0))
                return r;
        if (!migration_report_failed(rep) &&
            (r = json_add_int(o, "syscallPagesNotMoved", rep->syscall_pages_not_moved)) < 0)
                return r;

        if ((r = kvm_counters_to_json(&rep->kvm, &kvm)) < 0 ||
            (r = json_add(o, "kvmStats", TAKE_PTR(kvm))) < 0 ||
            (r = tracepoints_to_json(&rep->tracepoints, &tp)) < 0 ||
            (r = json_add(o, "tracepoints", TAKE_PTR(tp))) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- summaries and totals --------------------------------------------------------------------- */

int migration_summary_to_json(const MigrationSummary *s, json_object **ret) {
        _cleanup_json_ json_object *p = json_object_new_object(), *report = NULL;
        int r;

        if (!p)
                return -ENOMEM;
        if ((r = json_add_string(p, "phase", "done")) < 0 ||
            (r = json_add_int(p, "moves", s->moves)) < 0 ||
            (r = json_add_int(p, "movesFailed", s->moves_failed)) < 0 ||
            (r = json_add_uint(p, "pagesMoved", s->pages_moved)) < 0 ||
            (r = json_add_uint(p, "bytesMoved", s->bytes_moved)) < 0 ||
            (r = json_add_uint(p, "durationUSec", s->duration_usec)) < 0 ||
            (r = json_add_uint(p, "elapsedUSec", s->elapsed_usec)) < 0)
                return r;
        if (s->last_report &&
            ((r = json_add_uint(p, "firstReportId", s->first_report_id)) < 0 ||
             (r = json_add_uint(p, "lastReportId", s->last_report->id)) < 0 ||
             (r = migration_report_to_json(s->last_report, &report)) < 0 ||
             (r = json_add(p, "report", TAKE_PTR(report))) < 0))
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

void migration_totals_add(MigrationTotals *t, const MigrationReport *r) {
        t->migrations_total++;
        if (migration_report_failed(r))
                t->migration_failures++;
        if (r->have_before && r->have_after) {
                t->pages_moved += r->summary.pages_moved;
                t->bytes_moved += r->summary.bytes_moved;
                t->migrate_usec += r->summary.duration_usec;
        }
}

void migration_report_log(const char *name, const MigrationReport *r) {
        _cleanup_free_ char *from = NULL, *to = NULL;
        CpuSet f = { .bits = { r->from } }, t = { .bits = { r->to } };
        bool both = r->have_before && r->have_after;

        (void) cpu_list_format(&f, &from);
        (void) cpu_list_format(&t, &to);
        log_info("Guest %s: pages moved from node(s) %s to %s: %s, %" PRIu64 " bytes in %" PRIu64 " us.", name,
                 strna(from), strna(to), migration_report_failed(r) ? "failed" : "done",
                 both ? r->summary.bytes_moved : 0, both ? r->summary.duration_usec : 0);
}
