/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The tracepoint counts of an experiment (src/trace): kvm:kvm_exit per exit reason and kvm:kvm_page_fault,
 * kvm:kvm_pv_tlb_flush per vCPU thread (host-kvm-exits); tlb:tlb_flush (host-tlb) and migrate:mm_migrate_pages
 * (host-migrate) on the QEMU process's threads and system-wide; the Tracepoints= of [Measure] on the QEMU threads.
 * Counters are opened once for the whole experiment and read before and after each iteration. The QEMU threads
 * are those that exist when the experiment starts (a thread QEMU starts later is not counted: its system-wide
 * counterpart is). */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/log.h"
#include "basic/strv.h"
#include "experiment/experiment-counter.h"
#include "experiment/experiment-measure-internal.h"

#define QEMU_THREADS_MAX 1024U

static int qemu_threads(const char *root, pid_t pid, pid_t **ret, size_t *ret_n) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ pid_t *t = NULL;
        DIR *d;
        size_t n = 0;
        struct dirent *de;

        if (asprintf(&path, "%s/proc/%d/task", streq(root, "/") ? "" : root, (int) pid) < 0)
                return -ENOMEM;
        d = opendir(path);
        if (!d)
                return -errno;
        t = reallocarray(NULL, QEMU_THREADS_MAX, sizeof(pid_t));
        if (!t) {
                closedir(d);
                return -ENOMEM;
        }
        while ((de = readdir(d)) && n < QEMU_THREADS_MAX) {
                char *end;
                long tid = strtol(de->d_name, &end, 10);

                if (*end || tid <= 0)
                        continue;
                t[n++] = (pid_t) tid;
        }
        closedir(d);
        *ret = TAKE_PTR(t);
        *ret_n = n;
        return 0;
}

static int trace_add(ExperimentMeasure *m, MeasureTraceKind kind, ExperimentCounter set, const char *name,
                     MeasureTrace **ret) {
        MeasureTrace *a = reallocarray(m->traces, m->n_traces + 1, sizeof *a);

        if (!a)
                return -ENOMEM;
        m->traces = a;
        a[m->n_traces] = (MeasureTrace) { .kind = kind, .set = set, .name = strdup(name) };
        if (!a[m->n_traces].name)
                return -ENOMEM;
        *ret = &a[m->n_traces++];
        return 0;
}

/* One event on a set of threads or the whole host. */
static int open_event(ExperimentMeasure *m, MeasureTraceKind kind, ExperimentCounter set, const char *name,
                      const char *system, const char *event, const pid_t *tids, size_t n_tids) {
        TraceCounterSpec spec = { .system = system, .event = event };
        MeasureTrace *t;
        int r;

        r = trace_add(m, kind, set, name, &t);
        if (r < 0)
                return r;
        r = trace_counters_open(m->tracing_dir, &spec, 1, kind == MEASURE_TRACE_HOST ? TRACE_TARGET_HOST
                                                                                      : TRACE_TARGET_THREADS,
                                tids, n_tids, &t->counters);
        if (r < 0)
                return r;
        t->n_values = trace_counters_n_targets(t->counters);
        t->offset = m->n_trace_values;
        m->n_trace_values += t->n_values;
        return 0;
}

static int open_kvm(ExperimentMeasure *m, const ExperimentGuest *g) {
        TraceKvmIsa isa;
        MeasureTrace *t;
        int r;

        r = trace_kvm_isa(m->root, &isa);
        if (r < 0)
                return measure_set_unavailable(m, EXPERIMENT_COUNTER_HOST_KVM_EXITS,
                                               "the CPU vendor is neither Intel nor AMD: exit reasons unknown");
        r = trace_add(m, MEASURE_TRACE_KVM_EXITS, EXPERIMENT_COUNTER_HOST_KVM_EXITS, "host.kvm_exit", &t);
        if (r < 0)
                return r;
        r = trace_kvm_exits_open(m->tracing_dir, isa, g->vcpu_threads, g->n_vcpu_threads, &t->counters,
                                 &t->reasons, &t->n_reasons);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                _cleanup_free_ char *why = NULL;

                m->n_traces--;
                free(t->name);
                if (asprintf(&why, "kvm:kvm_exit cannot be counted: %s", strerror(-r)) < 0)
                        return -ENOMEM;
                return measure_set_unavailable(m, EXPERIMENT_COUNTER_HOST_KVM_EXITS, why);
        }
        t->n_values = (t->n_reasons + 1) * g->n_vcpu_threads;
        t->offset = m->n_trace_values;
        m->n_trace_values += t->n_values;
        if (trace_counters_unavailable(t->counters, t->n_reasons))
                /* Not even the total (the unfiltered spec) counts: the set is not there at all. */
                return measure_set_unavailable(m, EXPERIMENT_COUNTER_HOST_KVM_EXITS,
                                               trace_counters_unavailable(t->counters, t->n_reasons));
        r = open_event(m, MEASURE_TRACE_VCPU, EXPERIMENT_COUNTER_HOST_KVM_EXITS, "host.kvm_page_fault", "kvm",
                       "kvm_page_fault", g->vcpu_threads, g->n_vcpu_threads);
        if (r < 0)
                return r;
        return open_event(m, MEASURE_TRACE_VCPU, EXPERIMENT_COUNTER_HOST_KVM_EXITS, "host.kvm_pv_tlb_flush", "kvm",
                          "kvm_pv_tlb_flush", g->vcpu_threads, g->n_vcpu_threads);
}

int measure_trace_open(ExperimentMeasure *m, const ExperimentSpec *spec, const ExperimentGuest *guest) {
        _cleanup_free_ char *reason = NULL;
        _cleanup_free_ pid_t *tids = NULL;
        size_t n_tids = 0;
        bool kvm = spec->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_HOST_KVM_EXITS),
             tlb = spec->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_HOST_TLB),
             migrate = spec->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_HOST_MIGRATE);
        int r;

        m->n_vcpus = guest->n_vcpu_threads;
        if (!kvm && !tlb && !migrate && spec->n_tracepoints == 0)
                return 0;
        r = trace_find_tracing_dir(m->root, &m->tracing_dir, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                m->tracing_reason = strdup(reason ?: "tracefs is not mounted");
                if (!m->tracing_reason)
                        return -ENOMEM;
                for (ExperimentCounter c = EXPERIMENT_COUNTER_HOST_KVM_EXITS; c <= EXPERIMENT_COUNTER_HOST_MIGRATE;
                     c++)
                        if (c != EXPERIMENT_COUNTER_HOST_KVM_STATS &&
                            (r = measure_set_unavailable(m, c, reason ?: "tracefs is not mounted")) < 0)
                                return r;
                return 0;
        }
        if (kvm) {
                if (guest->tcg)
                        r = measure_set_unavailable(m, EXPERIMENT_COUNTER_HOST_KVM_EXITS,
                                                    "no KVM exits: the guest runs under TCG (no /dev/kvm)");
                else if (guest->n_vcpu_threads == 0)
                        r = measure_set_unavailable(m, EXPERIMENT_COUNTER_HOST_KVM_EXITS,
                                                    "the guest's vCPU threads are not known");
                else
                        r = open_kvm(m, guest);
                if (r < 0)
                        return r;
        }
        r = qemu_threads(m->root, guest->pid, &tids, &n_tids);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                n_tids = 0;     /* each QEMU-thread counter is then unavailable: "no threads" */
        if (tlb) {
                r = open_event(m, MEASURE_TRACE_QEMU, EXPERIMENT_COUNTER_HOST_TLB, "host.tlb_flush.qemu", "tlb",
                               "tlb_flush", tids, n_tids);
                if (r >= 0)
                        r = open_event(m, MEASURE_TRACE_HOST, EXPERIMENT_COUNTER_HOST_TLB, "host.tlb_flush.host",
                                       "tlb", "tlb_flush", NULL, 0);
                if (r < 0)
                        return r;
        }
        if (migrate) {
                r = open_event(m, MEASURE_TRACE_QEMU, EXPERIMENT_COUNTER_HOST_MIGRATE, "host.mm_migrate_pages.qemu",
                               "migrate", "mm_migrate_pages", tids, n_tids);
                if (r >= 0)
                        r = open_event(m, MEASURE_TRACE_HOST, EXPERIMENT_COUNTER_HOST_MIGRATE,
                                       "host.mm_migrate_pages.host", "migrate", "mm_migrate_pages", NULL, 0);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < spec->n_tracepoints; i++) {
                _cleanup_free_ char *system = NULL, *name = NULL;
                const char *colon = strchr(spec->tracepoints[i], ':');

                if (!colon)
                        continue;       /* the spec checked the form */
                system = strndup(spec->tracepoints[i], colon - spec->tracepoints[i]);
                if (!system || asprintf(&name, "host.tracepoint.%s.qemu", spec->tracepoints[i]) < 0)
                        return -ENOMEM;
                r = open_event(m, MEASURE_TRACE_QEMU, _EXPERIMENT_COUNTER_MAX, name, system, colon + 1, tids,
                               n_tids);
                if (r < 0)
                        return r;
        }
        /* A set none of whose events can be counted is unavailable as a whole, with the first reason. */
        for (ExperimentCounter c = EXPERIMENT_COUNTER_HOST_TLB; c <= EXPERIMENT_COUNTER_HOST_MIGRATE; c++) {
                const char *why = NULL;
                bool any = false, ok = false;

                for (size_t i = 0; i < m->n_traces; i++) {
                        const char *u;

                        if (m->traces[i].set != c)
                                continue;
                        any = true;
                        u = trace_counters_unavailable(m->traces[i].counters, 0);
                        if (u)
                                why = why ?: u;
                        else
                                ok = true;
                }
                if (any && !ok && (r = measure_set_unavailable(m, c, why ?: "cannot be counted")) < 0)
                        return r;
        }
        return 0;
}

void measure_trace_close(ExperimentMeasure *m) {
        for (size_t i = 0; i < m->n_traces; i++) {
                MeasureTrace *t = &m->traces[i];

                trace_counters_free(t->counters);
                for (size_t j = 0; j < t->n_reasons; j++)
                        free(t->reasons[j].name);
                free(t->reasons);
                free(t->name);
        }
        m->traces = mfree(m->traces);
        m->n_traces = m->n_trace_values = 0;
        m->tracing_dir = mfree(m->tracing_dir);
}

int measure_trace_read(ExperimentMeasure *m, ExperimentSnapshot *s) {
        if (m->n_trace_values == 0)
                return 0;
        s->trace = calloc(m->n_trace_values, sizeof(uint64_t));
        s->trace_bad = calloc(m->n_trace_values, sizeof(bool));
        if (!s->trace || !s->trace_bad)
                return -ENOMEM;
        s->n_trace = m->n_trace_values;
        for (size_t i = 0; i < m->n_traces; i++) {
                MeasureTrace *t = &m->traces[i];
                size_t specs = t->kind == MEASURE_TRACE_KVM_EXITS ? t->n_reasons + 1 : 1;
                size_t targets = t->n_values / specs;

                /* every count of the set at once: the kvm_exit group of each vCPU thread is read in one go, so
                 * that its total minus the reasons ("other") is exact but for an exit being counted meanwhile */
                if (trace_counters_read_all(t->counters, s->trace + t->offset) < 0)
                        for (size_t v = 0; v < specs * targets; v++)
                                s->trace_bad[t->offset + v] = true;
        }
        return 0;
}

static int add_delta(ExperimentRecord *r, const char *name, uint64_t before, uint64_t after) {
        if (after < before)
                return experiment_record_unavailable(r, name, "the count went down (%" PRIu64 " → %" PRIu64 ")",
                                                     before, after);
        return experiment_record_add_int(r, name, (int64_t) MIN(after - before, (uint64_t) INT64_MAX));
}

static bool bad(const ExperimentSnapshot *a, const ExperimentSnapshot *b, size_t i) {
        return a->trace_bad[i] || b->trace_bad[i];
}

/* Per reason summed over the vCPUs, per vCPU and reason (up to EXPERIMENT_PER_VCPU_MAX vCPUs), the total per
 * vCPU and in all, and "other" = total − the named reasons, exact only when every reason counts. A reason whose
 * filter the kernel refused, or a count that could not be read, is unavailable with the reason. */
static int delta_kvm_exits(const MeasureTrace *t, const ExperimentSnapshot *sa, const ExperimentSnapshot *sb,
                           ExperimentRecord *r) {
        const uint64_t *a = sa->trace + t->offset, *b = sb->trace + t->offset;
        size_t specs = t->n_reasons + 1, vcpus = t->n_values / specs;
        bool per_vcpu = vcpus <= EXPERIMENT_PER_VCPU_MAX, all_named = true, have_total = false;
        uint64_t total = 0, named = 0;
        int k;

        for (size_t s = 0; s < specs; s++) {
                const char *reason = s < t->n_reasons ? t->reasons[s].name : "total";
                const char *why = trace_counters_unavailable(t->counters, s);
                char name[EXPERIMENT_COUNTER_NAME_MAX + 1];
                uint64_t sum = 0;
                bool ok = !why;

                for (size_t v = 0; ok && v < vcpus; v++)
                        if (bad(sa, sb, t->offset + s * vcpus + v) || b[s * vcpus + v] < a[s * vcpus + v]) {
                                why = "a count could not be read or went down";
                                ok = false;
                        }
                snprintf(name, sizeof name, "host.kvm_exit.%s", reason);
                if (!ok) {
                        if (s < t->n_reasons)
                                all_named = false;
                        k = experiment_record_unavailable(r, name, "%s", why);
                        if (k < 0)
                                return k;
                        continue;
                }
                for (size_t v = 0; v < vcpus; v++) {
                        uint64_t d = b[s * vcpus + v] - a[s * vcpus + v];

                        sum += d;
                        if (!per_vcpu && s < t->n_reasons)
                                continue;       /* a large guest: per vCPU only the totals */
                        snprintf(name, sizeof name, "host.kvm_exit.%s.vcpu%zu", reason, v);
                        k = experiment_record_add_int(r, name, (int64_t) MIN(d, (uint64_t) INT64_MAX));
                        if (k < 0)
                                return k;
                }
                if (s < t->n_reasons)
                        named += sum;
                else {
                        total = sum;
                        have_total = true;
                }
                snprintf(name, sizeof name, "host.kvm_exit.%s", reason);
                k = experiment_record_add_int(r, name, (int64_t) MIN(sum, (uint64_t) INT64_MAX));
                if (k < 0)
                        return k;
        }
        if (!have_total || !all_named || t->n_reasons == 0)
                return experiment_record_unavailable(r, "host.kvm_exit.other", "%s",
                                                     t->n_reasons == 0 ? (trace_counters_note(t->counters) ?:
                                                                          "the exit reasons are not known")
                                                                       : "not every count is there");
        k = experiment_record_add_int(r, "host.kvm_exit.other",
                                      total >= named ? (int64_t) MIN(total - named, (uint64_t) INT64_MAX) : 0);
        if (k >= 0 && !per_vcpu)
                k = experiment_record_unavailable(r, "host.kvm_exit.per_vcpu",
                                                  "the guest has %zu vCPUs: counts by reason are split per vCPU for "
                                                  "at most %u", vcpus, EXPERIMENT_PER_VCPU_MAX);
        return k;
}

int measure_trace_delta(ExperimentMeasure *m, const ExperimentSnapshot *before, const ExperimentSnapshot *after,
                        ExperimentRecord *r) {
        int k;

        /* Tracepoints= without tracefs: each is unavailable with why (the sets say it as a whole). */
        for (size_t i = 0; !m->tracing_dir && m->spec && i < m->spec->n_tracepoints; i++) {
                char name[EXPERIMENT_COUNTER_NAME_MAX + 1];

                snprintf(name, sizeof name, "host.tracepoint.%s.qemu", m->spec->tracepoints[i]);
                k = experiment_record_unavailable(r, name, "%s", m->tracing_reason ?: "tracefs is not mounted");
                if (k < 0)
                        return k;
        }
        if (m->n_trace_values == 0)
                return 0;
        if (!before->trace || !after->trace)
                return 0;
        for (size_t i = 0; i < m->n_traces; i++) {
                const MeasureTrace *t = &m->traces[i];
                const uint64_t *a = before->trace + t->offset, *b = after->trace + t->offset;
                const char *why = trace_counters_unavailable(t->counters, 0);
                uint64_t sa = 0, sb = 0;

                if (t->set < _EXPERIMENT_COUNTER_MAX && m->unavailable[t->set])
                        continue;       /* the whole set is said unavailable */
                if (t->kind == MEASURE_TRACE_KVM_EXITS) {
                        k = delta_kvm_exits(t, before, after, r);
                        if (k < 0)
                                return k;
                        continue;
                }
                for (size_t v = 0; !why && v < t->n_values; v++)
                        if (bad(before, after, t->offset + v))
                                why = "a count could not be read";
                if (why) {
                        k = experiment_record_unavailable(r, t->name, "%s", why);
                        if (k < 0)
                                return k;
                        continue;
                }
                for (size_t v = 0; v < t->n_values; v++) {
                        sa += a[v];
                        sb += b[v];
                        if (t->kind == MEASURE_TRACE_VCPU && t->n_values <= EXPERIMENT_PER_VCPU_MAX) {
                                char name[EXPERIMENT_COUNTER_NAME_MAX + 1];

                                snprintf(name, sizeof name, "%s.vcpu%zu", t->name, v);
                                k = add_delta(r, name, a[v], b[v]);
                                if (k < 0)
                                        return k;
                        }
                }
                k = add_delta(r, t->name, sa, sb);
                if (k < 0)
                        return k;
        }
        return 0;
}

int experiment_measure_check_tracepoints(ExperimentMeasure *m, const ExperimentSpec *spec, const char **ret_name,
                                         char **ret_known) {
        if (!m->tracing_dir)
                return 0;
        for (size_t i = 0; i < spec->n_tracepoints; i++) {
                _cleanup_free_ char *system = NULL;
                char **events = NULL;
                const char *colon = strchr(spec->tracepoints[i], ':');
                uint64_t id;
                size_t len = 0;
                char *known;
                FILE *f;
                int r;

                if (!colon || !(system = strndup(spec->tracepoints[i], colon - spec->tracepoints[i])))
                        return -ENOMEM;
                r = trace_event_id(m->tracing_dir, system, colon + 1, &id);
                if (r != -ENOENT)
                        continue;
                if (trace_list_events(m->tracing_dir, system, &events) < 0)
                        events = NULL;
                if (!events || !events[0]) {
                        strv_free(events);
                        if (trace_list_events(m->tracing_dir, NULL, &events) < 0)
                                events = NULL;
                }
                f = open_memstream(&known, &len);
                if (!f) {
                        strv_free(events);
                        return -ENOMEM;
                }
                for (size_t k = 0; events && events[k] && k < 64; k++)
                        fprintf(f, "%s%s", k ? ", " : "", events[k]);
                if (events && strv_length(events) > 64)
                        fprintf(f, ", … (%zu in all)", strv_length(events));
                strv_free(events);
                if (fclose(f) != 0) {
                        free(known);
                        return -ENOMEM;
                }
                *ret_name = spec->tracepoints[i];
                *ret_known = known;
                return -ENOENT;
        }
        return 0;
}
