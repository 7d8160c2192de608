/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "experiment/experiment-counter.h"
#include "experiment/experiment-files.h"
#include "experiment/experiment-measure-internal.h"

#define HOST_VMSTAT_MAX (256U * 1024U)

/* ---- the record ---- */

int experiment_record_init(ExperimentRecord *r) {
        *r = (ExperimentRecord) { .counters = json_object_new_object(), .unavailable = json_object_new_object() };
        if (!r->counters || !r->unavailable) {
                experiment_record_done(r);
                return -ENOMEM;
        }
        return 0;
}

void experiment_record_done(ExperimentRecord *r) {
        json_object_put(r->counters);
        json_object_put(r->unavailable);
        *r = (ExperimentRecord) {};
}

int experiment_record_add_int(ExperimentRecord *r, const char *name, int64_t value) {
        if (!experiment_counter_name_is_valid(name))
                return 0;       /* a name from a guest that is not one of ours: left out */
        return json_add_int(r->counters, name, value);
}

int experiment_record_add_double(ExperimentRecord *r, const char *name, double value) {
        if (!experiment_counter_name_is_valid(name) || !isfinite(value) || fabs(value) > 1e300)
                return 0;       /* not a number a record holds (experiment_record_validate()) */
        return json_add_double(r->counters, name, value);
}

int experiment_record_unavailable(ExperimentRecord *r, const char *name, const char *format, ...) {
        _cleanup_free_ char *reason = NULL;
        va_list ap;
        int k;

        if (json_object_object_get_ex(r->unavailable, name, NULL))
                return 0;       /* the first reason stays */
        va_start(ap, format);
        k = vasprintf(&reason, format, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        return json_add_string(r->unavailable, name, reason);
}

void experiment_snapshot_done(ExperimentSnapshot *s) {
        qga_counters_free_array(s->host_vmstat, s->n_host_vmstat);
        free(s->host_vmstat_error);
        free(s->trace);
        free(s->trace_bad);
        kvm_stats_free(s->kvm);
        free(s->kvm_error);
        qga_counters_free_array(s->guest, s->n_guest);
        qga_unavailable_free_array(s->guest_unavailable, s->n_guest_unavailable);
        free(s->guest_error);
        *s = (ExperimentSnapshot) {};
}

/* ---- opening ---- */

int experiment_measure_open(const char *root, const ExperimentSpec *spec, const ExperimentGuest *guest,
                            ExperimentMeasure **ret) {
        _cleanup_(experiment_measure_freep) ExperimentMeasure *m = NULL;
        int r;

        m = calloc(1, sizeof(ExperimentMeasure));
        if (!m)
                return -ENOMEM;
        m->root = strdup(root ?: "/");
        if (!m->root)
                return -ENOMEM;
        m->counters = spec->counters;
        m->spec = spec;
        if ((spec->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_HOST_KVM_STATS))) {
                if (guest->tcg)
                        r = measure_set_unavailable(m, EXPERIMENT_COUNTER_HOST_KVM_STATS,
                                                    "no KVM statistics: the guest runs under TCG (no /dev/kvm)");
                else if (!guest->qmp)
                        r = measure_set_unavailable(m, EXPERIMENT_COUNTER_HOST_KVM_STATS,
                                                    "no QMP connection to the guest's QEMU");
                else
                        r = 0;
                if (r < 0)
                        return r;
        }
        r = measure_trace_open(m, spec, guest);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

ExperimentMeasure *experiment_measure_free(ExperimentMeasure *m) {
        if (!m)
                return NULL;
        measure_trace_close(m);
        for (size_t i = 0; i < _EXPERIMENT_COUNTER_MAX; i++)
                free(m->unavailable[i]);
        free(m->root);
        free(m->tracing_reason);
        return mfree(m);
}

int measure_set_unavailable(ExperimentMeasure *m, ExperimentCounter c, const char *reason) {
        char *s = strdup(reason);

        if (!s)
                return -ENOMEM;
        free(m->unavailable[c]);
        m->unavailable[c] = s;
        return 0;
}

const char *experiment_measure_unavailable(const ExperimentMeasure *m, ExperimentCounter c) {
        if (c < 0 || c >= _EXPERIMENT_COUNTER_MAX)
                return NULL;
        return m->unavailable[c];
}

/* ---- synchronous readings ---- */

static bool host_vmstat_selected(const char *key) {
        static const char *const prefixes[] = { "pgmigrate_", "numa_", "thp_migration_", "nr_tlb_", "pgfault",
                                                "pgmajfault", "thp_fault_", "thp_split_", "compact_" };

        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(key, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

static int read_host_vmstat(ExperimentMeasure *m, ExperimentSnapshot *s) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        QgaCounter *all = NULL;
        size_t size = 0, n = 0, k = 0;
        int r;

        if (asprintf(&path, "%s/proc/vmstat", streq(m->root, "/") ? "" : m->root) < 0)
                return -ENOMEM;
        r = read_full_file(path, HOST_VMSTAT_MAX, &text, &size);
        if (r >= 0)
                r = qga_parse_vmstat(text, size, &all, &n);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return asprintf(&s->host_vmstat_error, "%s: %s", path, strerror(-r)) < 0 ? -ENOMEM : 0;
        for (size_t i = 0; i < n; i++) {
                if (host_vmstat_selected(all[i].name))
                        all[k++] = all[i];
                else
                        free(all[i].name);
        }
        s->host_vmstat = all;
        s->n_host_vmstat = k;
        return 0;
}

int experiment_measure_read(ExperimentMeasure *m, ExperimentSnapshot *s) {
        int r;

        if (m->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_HOST_VMSTAT)) {
                r = read_host_vmstat(m, s);
                if (r < 0)
                        return r;
        }
        return measure_trace_read(m, s);
}

/* ---- deltas ---- */

static int64_t delta(uint64_t before, uint64_t after) {
        if (after >= before)
                return after - before > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) (after - before);
        return before - after > (uint64_t) INT64_MAX ? INT64_MIN : -(int64_t) (before - after);
}

static int delta_host_vmstat(const ExperimentSnapshot *a, const ExperimentSnapshot *b, ExperimentRecord *r) {
        int k;

        if (a->host_vmstat_error || b->host_vmstat_error)
                return experiment_record_unavailable(r, "host.vmstat", "%s",
                                                     a->host_vmstat_error ?: b->host_vmstat_error);
        for (size_t i = 0; i < b->n_host_vmstat; i++)
                for (size_t j = 0; j < a->n_host_vmstat; j++) {
                        _cleanup_free_ char *name = NULL;

                        if (!streq(a->host_vmstat[j].name, b->host_vmstat[i].name))
                                continue;
                        if (asprintf(&name, "host.vmstat.%s", b->host_vmstat[i].name) < 0)
                                return -ENOMEM;
                        k = experiment_record_add_int(r, name, delta(a->host_vmstat[j].value,
                                                                     b->host_vmstat[i].value));
                        if (k < 0)
                                return k;
                        break;
                }
        return 0;
}

static int add_kvm_set(ExperimentRecord *r, const char *prefix, const KvmStatSet *a, const KvmStatSet *b) {
        for (size_t i = 0; i < b->n; i++)
                for (size_t j = 0; j < a->n; j++) {
                        _cleanup_free_ char *name = NULL;
                        int k;

                        if (!streq(a->stats[j].name, b->stats[i].name))
                                continue;
                        if (asprintf(&name, "%s.%s", prefix, b->stats[i].name) < 0)
                                return -ENOMEM;
                        k = experiment_record_add_int(r, name, delta(a->stats[j].value, b->stats[i].value));
                        if (k < 0)
                                return k;
                        break;
                }
        return 0;
}

/* vm statistics, each vCPU's, and the vCPUs' sums: deltas of cumulative and instant values alike (an instant
 * value's delta is its change over the iteration). */
static int delta_kvm_stats(const ExperimentSnapshot *a, const ExperimentSnapshot *b, ExperimentRecord *r) {
        int k;

        if (!a->kvm || !b->kvm)
                return experiment_record_unavailable(r, "host.kvm_stats", "%s",
                                                     a->kvm_error ?: b->kvm_error ?: "query-stats gave nothing");
        k = add_kvm_set(r, "host.kvm_stats.vm", &a->kvm->vm, &b->kvm->vm);
        if (k < 0)
                return k;
        for (size_t v = 0; v < MIN(a->kvm->n_vcpus, b->kvm->n_vcpus) && b->kvm->n_vcpus <= EXPERIMENT_PER_VCPU_MAX;
             v++) {
                char prefix[64];

                snprintf(prefix, sizeof prefix, "host.kvm_stats.vcpu%zu", v);
                k = add_kvm_set(r, prefix, &a->kvm->vcpus[v], &b->kvm->vcpus[v]);
                if (k < 0)
                        return k;
        }
        if (b->kvm->n_vcpus > 0)
                for (size_t i = 0; i < b->kvm->vcpus[0].n; i++) {
                        const char *stat = b->kvm->vcpus[0].stats[i].name;
                        _cleanup_free_ char *name = NULL;
                        uint64_t x, y;

                        if (kvm_stats_get(a->kvm, stat, &x) < 0 || kvm_stats_get(b->kvm, stat, &y) < 0)
                                continue;
                        if (asprintf(&name, "host.kvm_stats.vcpu.%s", stat) < 0)
                                return -ENOMEM;
                        k = experiment_record_add_int(r, name, delta(x, y));
                        if (k < 0)
                                return k;
                }
        return 0;
}

static int guest_add(ExperimentSnapshot *s, size_t *allocated, const char *format, unsigned x, const char *key,
                     uint64_t value) {
        char *name;

        if (s->n_guest >= *allocated) {
                size_t n = MAX(*allocated * 2, (size_t) 64);
                QgaCounter *a = reallocarray(s->guest, n, sizeof *a);

                if (!a)
                        return -ENOMEM;
                s->guest = a;
                *allocated = n;
        }
        if ((key ? asprintf(&name, format, key) : asprintf(&name, format, x)) < 0)
                return -ENOMEM;
        s->guest[s->n_guest++] = (QgaCounter) { .name = name, .value = value };
        return 0;
}

int experiment_snapshot_set_guest(ExperimentSnapshot *s, const QgaGuestCounters *c) {
        size_t allocated = 0;
        int k = 0;

        for (size_t i = 0; i < c->n_vmstat && k >= 0; i++)
                k = guest_add(s, &allocated, "vmstat.%s", 0, c->vmstat[i].name, c->vmstat[i].value);
        /* Per CPU for the first EXPERIMENT_PER_GUEST_CPU_MAX CPUs, the others in one "rest": a guest with
         * thousands of CPUs makes neither the record nor the work of the delta large. */
        for (unsigned row = 0; row < 2 && k >= 0; row++) {
                const QgaIrqRow *q = row == 0 ? &c->tlb : &c->cal;
                const char *prefix = row == 0 ? "tlb" : "cal";
                uint64_t rest = 0;
                bool have_rest = false;
                char format[16];

                snprintf(format, sizeof format, "%s.cpu%%u", prefix);
                for (size_t i = 0; q->present && i < q->n_cpus && k >= 0; i++) {
                        if (q->cpu_ids[i] < EXPERIMENT_PER_GUEST_CPU_MAX)
                                k = guest_add(s, &allocated, format, q->cpu_ids[i], NULL, q->per_cpu[i]);
                        else {
                                rest += q->per_cpu[i];
                                have_rest = true;
                        }
                }
                if (k >= 0 && have_rest)
                        k = guest_add(s, &allocated, row == 0 ? "tlb.%s" : "cal.%s", 0, "rest", rest);
        }
        for (size_t i = 0; i < c->n_unavailable && k >= 0; i++)
                k = qga_unavailable_add(&s->guest_unavailable, &s->n_guest_unavailable, c->unavailable[i].name,
                                        "%s", c->unavailable[i].reason);
        if (k < 0)
                return k;
        s->have_guest = true;
        return 0;
}

/* The agent's deltas: vmstat keys as guest.vmstat.KEY, TLB:/CAL: rows per CPU and summed. A key in one reading
 * only, or one that went down (a CPU went offline and back), is unavailable with the reason, never a delta. */
static int delta_guest(const ExperimentSpec *spec, const ExperimentSnapshot *a, const ExperimentSnapshot *b,
                       ExperimentRecord *r) {
        bool want_vmstat = spec->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_GUEST_VMSTAT);
        bool want_irq = spec->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_GUEST_INTERRUPTS);
        int64_t tlb = 0, cal = 0;
        bool have_tlb = false, have_cal = false;
        int k = 0;

        if (!a->have_guest || !b->have_guest) {
                const char *why = a->guest_error ?: b->guest_error ?: "the guest agent gave nothing";

                if (want_vmstat && (k = experiment_record_unavailable(r, "guest.vmstat", "%s", why)) < 0)
                        return k;
                if (want_irq && (k = experiment_record_unavailable(r, "guest.tlb_shootdowns", "%s", why)) < 0)
                        return k;
                if (want_irq && (k = experiment_record_unavailable(r, "guest.function_call_interrupts", "%s",
                                                                   why)) < 0)
                        return k;
                return 0;
        }
        for (size_t i = 0; i < b->n_guest && k >= 0; i++) {
                const char *key = b->guest[i].name;
                _cleanup_free_ char *name = NULL;
                const QgaCounter *before = NULL;
                bool is_tlb = startswith(key, "tlb."), is_cal = startswith(key, "cal.");
                unsigned cpu = 0;

                if ((is_tlb || is_cal) ? !want_irq : !want_vmstat)
                        continue;
                if (is_tlb || is_cal)
                        (void) sscanf(key + 4, "cpu%u", &cpu);
                if (asprintf(&name, is_tlb   ? "guest.tlb_shootdowns.%s"
                                    : is_cal ? "guest.function_call_interrupts.%s"
                                             : "guest.%s", is_tlb || is_cal ? key + 4 : key) < 0)
                        return -ENOMEM;
                for (size_t j = 0; j < a->n_guest; j++)
                        if (streq(a->guest[j].name, key)) {
                                before = &a->guest[j];
                                break;
                        }
                if (!before)
                        k = experiment_record_unavailable(r, name, "not in the reading before (a CPU came online?)");
                else if ((is_tlb || is_cal) && b->guest[i].value < before->value)
                        /* an interrupt count only grows: a CPU went offline and back */
                        k = experiment_record_unavailable(r, name, "went down from %" PRIu64 " to %" PRIu64,
                                                          before->value, b->guest[i].value);
                else {
                        /* vmstat holds gauges (nr_free_pages) as well as event counts: a signed delta */
                        int64_t d = delta(before->value, b->guest[i].value);

                        if (is_tlb) {
                                tlb += d;
                                have_tlb = true;
                        } else if (is_cal) {
                                cal += d;
                                have_cal = true;
                        }
                        k = experiment_record_add_int(r, name, d);
                }
        }
        if (k >= 0 && want_irq)
                k = have_tlb ? experiment_record_add_int(r, "guest.tlb_shootdowns", tlb)
                             : experiment_record_unavailable(r, "guest.tlb_shootdowns",
                                                             "the guest's /proc/interrupts has no TLB: row");
        if (k >= 0 && want_irq)
                k = have_cal ? experiment_record_add_int(r, "guest.function_call_interrupts", cal)
                             : experiment_record_unavailable(r, "guest.function_call_interrupts",
                                                             "the guest's /proc/interrupts has no CAL: row");
        for (size_t i = 0; i < b->n_guest_unavailable && k >= 0; i++) {
                _cleanup_free_ char *name = NULL;
                const char *key = b->guest_unavailable[i].name;

                if (!want_vmstat || streq(key, "tlb") || streq(key, "cal") || streq(key, "interrupts"))
                        continue;       /* the rows are said above */
                if (asprintf(&name, "guest.vmstat.%s", key) < 0)
                        return -ENOMEM;
                k = experiment_record_unavailable(r, name, "%s", b->guest_unavailable[i].reason);
        }
        return k < 0 ? k : 0;
}

int experiment_measure_delta(ExperimentMeasure *m, const ExperimentSpec *spec, const ExperimentSnapshot *before,
                             const ExperimentSnapshot *after, ExperimentRecord *r) {
        int k;

        for (ExperimentCounter c = 0; c < _EXPERIMENT_COUNTER_MAX; c++) {
                static const char *const set_name[_EXPERIMENT_COUNTER_MAX] = {
                        [EXPERIMENT_COUNTER_HOST_KVM_EXITS] = "host.kvm_exit",
                        [EXPERIMENT_COUNTER_HOST_KVM_STATS] = "host.kvm_stats",
                        [EXPERIMENT_COUNTER_HOST_TLB] = "host.tlb_flush",
                        [EXPERIMENT_COUNTER_HOST_MIGRATE] = "host.mm_migrate_pages",
                        [EXPERIMENT_COUNTER_HOST_VMSTAT] = "host.vmstat",
                };

                if (!(spec->counters & EXPERIMENT_COUNTER_MASK(c)) || !m->unavailable[c] || !set_name[c])
                        continue;
                k = experiment_record_unavailable(r, set_name[c], "%s", m->unavailable[c]);
                if (k < 0)
                        return k;
        }
        if ((spec->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_HOST_VMSTAT)) &&
            (k = delta_host_vmstat(before, after, r)) < 0)
                return k;
        if ((spec->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_HOST_KVM_STATS)) &&
            !m->unavailable[EXPERIMENT_COUNTER_HOST_KVM_STATS] && (k = delta_kvm_stats(before, after, r)) < 0)
                return k;
        if ((spec->counters & (EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_GUEST_VMSTAT) |
                               EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_GUEST_INTERRUPTS))) &&
            (k = delta_guest(spec, before, after, r)) < 0)
                return k;
        return measure_trace_delta(m, before, after, r);
}

/* ---- the workload's own JSON ---- */

static int flatten(ExperimentRecord *r, json_object *o, char *path, size_t len, size_t size, unsigned *budget,
                   unsigned depth) {
        int k;

        if (*budget == 0 || depth > 8)
                return 0;
        switch (json_object_get_type(o)) {
        case json_type_int:
                (*budget)--;
                return experiment_record_add_int(r, path, json_object_get_int64(o));
        case json_type_double:
                (*budget)--;
                return experiment_record_add_double(r, path, json_object_get_double(o));
        case json_type_object: {
                json_object *bytes, *ns;

                json_object_object_foreach(o, key, v) {
                        int w = snprintf(path + len, size - len, ".%s", key);

                        if (w < 0 || (size_t) w >= size - len)
                                continue;
                        k = flatten(r, v, path, len + w, size, budget, depth + 1);
                        path[len] = 0;
                        if (k < 0)
                                return k;
                }
                /* A part of the work with its bytes and time (memvisor-touch's per_thread): its throughput. */
                if (json_object_object_get_ex(o, "bytes", &bytes) && json_object_object_get_ex(o, "ns", &ns) &&
                    json_object_is_type(bytes, json_type_int) && json_object_is_type(ns, json_type_int) &&
                    json_object_get_int64(ns) > 0 && *budget > 0) {
                        int w = snprintf(path + len, size - len, ".bytes_per_sec");

                        if (w > 0 && (size_t) w < size - len) {
                                (*budget)--;
                                k = experiment_record_add_double(r, path, (double) json_object_get_int64(bytes) *
                                                                 1e9 / (double) json_object_get_int64(ns));
                                path[len] = 0;
                                if (k < 0)
                                        return k;
                        }
                }
                return 0;
        }
        case json_type_array: {
                size_t n = json_object_array_length(o);

                for (size_t i = 0; i < MIN(n, (size_t) 64); i++) {
                        int w = snprintf(path + len, size - len, ".%zu", i);

                        if (w < 0 || (size_t) w >= size - len)
                                continue;
                        k = flatten(r, json_object_array_get_idx(o, i), path, len + w, size, budget, depth + 1);
                        path[len] = 0;
                        if (k < 0)
                                return k;
                }
                return 0;
        }
        case json_type_null:
        case json_type_boolean:
        case json_type_string:
                break;          /* kept in "workload", not counters */
        }
        return 0;
}

int experiment_measure_workload(ExperimentRecord *r, const char *out, size_t size, json_object **ret_json) {
        _cleanup_json_ json_object *o = NULL;
        json_tokener *tok;
        char path[EXPERIMENT_COUNTER_NAME_MAX + 1] = "workload";
        unsigned budget = EXPERIMENT_WORKLOAD_COUNTERS_MAX;
        int k;

        *ret_json = NULL;
        while (size > 0 && strchr(" \t\r\n", out[size - 1]))
                size--;
        if (size == 0)
                return experiment_record_unavailable(r, "workload", "the program printed nothing");
        if (size > EXPERIMENT_WORKLOAD_JSON_MAX)
                return experiment_record_unavailable(r, "workload", "the program printed over %u bytes",
                                                     EXPERIMENT_WORKLOAD_JSON_MAX);
        tok = json_tokener_new_ex(16);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, out, (int) size);
        if (o && json_tokener_get_parse_end(tok) != size)
                json_object_putp(&o);
        json_tokener_free(tok);
        if (!o || !json_object_is_type(o, json_type_object))
                return experiment_record_unavailable(r, "workload", "its output is not one JSON object");
        if (!experiment_json_is_finite(o))
                return experiment_record_unavailable(r, "workload", "its output holds a number JSON cannot (1e400)");
        k = flatten(r, o, path, strlen(path), sizeof path, &budget, 0);
        if (k < 0)
                return k;
        *ret_json = TAKE_PTR(o);
        return 0;
}
