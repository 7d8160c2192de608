/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "metrics/metric-families.h"
#include "metrics/metrics-render.h"

void metrics_guest_inputs_free(MetricsGuestInput *inputs, size_t n) {
        for (size_t i = 0; inputs && i < n; i++)
                free(inputs[i].vcpus);
        free(inputs);
}

static int add(MetricSet *s, MetricId id, const char *const *labels, double v) {
        return metric_set_add(s, &metric_families[id], labels, v);
}

void metrics_guest_counters_done(MetricsGuestCounters *c) {
        free(c->tlb);
        free(c->cal);
        free(c->tlb_cpus);
        free(c->cal_cpus);
        *c = (MetricsGuestCounters) {};
}

static int render_guest_counters(MetricSet *s, const MetricsGuestInput *g) {
        const MetricsGuestCounters *c = g->guest_counters;
        char cpu[24];
        int r = 0;

        if (!c || !c->valid)
                return 0;
        for (size_t i = 0; r >= 0 && i < c->n_tlb; i++) {
                (void) snprintf(cpu, sizeof(cpu), "%u", c->tlb_cpus ? c->tlb_cpus[i] : (unsigned) i);
                r = add(s, METRIC_GUEST_TLB_SHOOTDOWNS, STRV(g->name, cpu), (double) c->tlb[i]);
        }
        for (size_t i = 0; r >= 0 && i < c->n_cal; i++) {
                (void) snprintf(cpu, sizeof(cpu), "%u", c->cal_cpus ? c->cal_cpus[i] : (unsigned) i);
                r = add(s, METRIC_GUEST_CALL_INTERRUPTS, STRV(g->name, cpu), (double) c->cal[i]);
        }
        for (size_t i = 0; r >= 0 && i < c->n_vmstat; i++)
                r = add(s, METRIC_GUEST_VMSTAT_EVENTS, STRV(g->name, c->vmstat_names[i]), (double) c->vmstat_values[i]);
        if (r >= 0)
                r = add(s, METRIC_GUEST_COUNTERS_TIMESTAMP, STRV(g->name), (double) c->realtime_usec / USEC_PER_SEC);
        return r;
}

int metrics_render_host(MetricSet *s, const HostSample *h) {
        char node[24];
        int r;

        for (size_t i = 0; i < n_meminfo_metrics; i++) {
                uint64_t v;

                if (meminfo_get(&h->meminfo, meminfo_metrics[i].field, &v) < 0)
                        continue;
                r = add(s, meminfo_metrics[i].id, NULL, (double) v);
                if (r < 0)
                        return r;
        }
        if ((r = add(s, METRIC_HOST_OVERCOMMIT_RATIO, NULL, host_memory_overcommit_ratio(&h->host))) < 0 ||
            (r = add(s, METRIC_HOST_HUGEPAGES, STRV("total"), (double) h->hugepages_total)) < 0 ||
            (r = add(s, METRIC_HOST_HUGEPAGES, STRV("free"), (double) h->hugepages_free)) < 0 ||
            (r = add(s, METRIC_HOST_HUGEPAGES, STRV("reserved"), (double) h->hugepages_rsvd)) < 0 ||
            (r = add(s, METRIC_HOST_HUGEPAGES, STRV("surplus"), (double) h->hugepages_surp)) < 0)
                return r;

        for (size_t i = 0; i < h->n_nodes; i++) {
                const NodeMemory *n = &h->nodes[i];

                (void) snprintf(node, sizeof(node), "%u", n->node);
                if ((r = add(s, METRIC_HOST_NODE_MEMORY_TOTAL, STRV(node), (double) n->mem_total)) < 0 ||
                    (r = add(s, METRIC_HOST_NODE_MEMORY_FREE, STRV(node), (double) n->mem_free)) < 0 ||
                    (r = add(s, METRIC_HOST_NODE_MEMORY_USED, STRV(node), (double) n->mem_used)) < 0 ||
                    (r = add(s, METRIC_HOST_NODE_HUGEPAGES, STRV(node, "total"), (double) n->hugepages_total)) < 0 ||
                    (r = add(s, METRIC_HOST_NODE_HUGEPAGES, STRV(node, "free"), (double) n->hugepages_free)) < 0)
                        return r;
        }
        return 0;
}

static int render_kvm_set(MetricSet *s, const char *vm, const KvmStatSet *set, const char *vcpu) {
        int r;

        for (size_t i = 0; i < set->n; i++) {
                _cleanup_free_ char *name = NULL;
                MetricFamily f;
                double scale;

                r = metric_kvm_family(!!vcpu, set->stats[i].name, set->stats[i].cumulative, &f, &name, &scale);
                if (r < 0)
                        continue;       /* a name we cannot export */
                r = metric_set_add(s, &f, vcpu ? STRV(vm, vcpu) : STRV(vm), (double) set->stats[i].value * scale);
                if (r == -EEXIST)
                        continue;       /* same name, other type: keep the first */
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Running totals of the NUMA and balloon modules, for every defined guest, balloon steps for those with
 * Balloon=yes; 0 until something happened, so that rate() sees the first increase. */
static int render_guest_totals(MetricSet *s, const MetricsGuestInput *g) {
        const char *const *l = STRV(g->name);
        int r;

        if ((r = add(s, METRIC_GUEST_MIGRATIONS, l, (double) g->numa.migrations_total)) < 0 ||
            (r = add(s, METRIC_GUEST_MIGRATION_FAILURES, l, (double) g->numa.migration_failures)) < 0 ||
            (r = add(s, METRIC_GUEST_MIGRATION_PAGES, l, (double) g->numa.pages_moved)) < 0 ||
            (r = add(s, METRIC_GUEST_MIGRATION_BYTES, l, (double) g->numa.bytes_moved)) < 0 ||
            (r = add(s, METRIC_GUEST_MIGRATION_SECONDS, l, (double) g->numa.migrate_usec / 1e6)) < 0)
                return r;
        if (g->have_dirty_rate &&
            ((r = add(s, METRIC_GUEST_DIRTY_RATE, l, g->dirty_rate_bytes_per_sec)) < 0 ||
             (r = add(s, METRIC_GUEST_DIRTY_RATE_TIMESTAMP, l, (double) g->dirty_rate_realtime_usec / 1e6)) < 0))
                return r;

        if (!g->balloon_enabled)
                return 0;
        if ((r = add(s, METRIC_GUEST_BALLOON_STEPS, l, (double) g->balloon.steps_total)) < 0 ||
            (r = add(s, METRIC_GUEST_BALLOON_STEPS_REACHED, l, (double) g->balloon.steps_reached_total)) < 0 ||
            (r = add(s, METRIC_GUEST_BALLOON_STEP_SECONDS, l, (double) g->balloon.steps_reached_usec / 1e6)) < 0)
                return r;
        return 0;
}

/* The balloon's target and actual size and the guest's own statistics, while the balloon module tracks it. */
static int render_guest_balloon(MetricSet *s, const MetricsGuestInput *g) {
        const MetricsBalloon *b = &g->balloon;
        const char *const *l = STRV(g->name);
        int r;

        if (!b->tracking)
                return 0;
        r = add(s, METRIC_GUEST_BALLOON_TARGET, l, (double) b->target_bytes);
        if (r >= 0 && b->actual_bytes != METRICS_UNSET && g->pid > 0)
                r = add(s, METRIC_GUEST_BALLOON_ACTUAL, l, (double) b->actual_bytes);
        if (r < 0 || !b->stats_valid)
                return r;

        const struct {
                MetricId id;
                uint64_t value;
        } stats[] = {
                { METRIC_GUEST_BALLOON_FREE, b->free_bytes },
                { METRIC_GUEST_BALLOON_AVAILABLE, b->available_bytes },
                { METRIC_GUEST_BALLOON_TOTAL, b->total_bytes },
                { METRIC_GUEST_BALLOON_DISK_CACHES, b->disk_caches_bytes },
                { METRIC_GUEST_BALLOON_SWAP_IN, b->swap_in_bytes },
                { METRIC_GUEST_BALLOON_SWAP_OUT, b->swap_out_bytes },
                { METRIC_GUEST_BALLOON_MAJOR_FAULTS, b->major_faults },
                { METRIC_GUEST_BALLOON_MINOR_FAULTS, b->minor_faults },
        };
        for (size_t i = 0; i < ELEMENTSOF(stats); i++) {
                if (stats[i].value == METRICS_UNSET)
                        continue;       /* the guest does not report it */
                r = add(s, stats[i].id, l, (double) stats[i].value);
                if (r < 0)
                        return r;
        }
        return add(s, METRIC_GUEST_BALLOON_STATS_TIMESTAMP, l, (double) b->stats_last_update_sec);
}

static int render_guest_vcpus(MetricSet *s, const MetricsGuestInput *g) {
        int r = 0;

        for (size_t i = 0; i < g->n_vcpu_samples; i++) {
                const MetricsVcpu *d = &g->vcpus[i];
                char vcpu[24], cpu[24];

                (void) snprintf(vcpu, sizeof(vcpu), "%u", d->index);
                if (d->have_affinity) {
                        r = add(s, METRIC_GUEST_VCPU_ALLOWED_CPUS, STRV(g->name, vcpu), CPU_COUNT(&d->allowed));
                        /* One series per allowed CPU only when pinned: bounded by what was asked for. */
                        for (unsigned c = 0; r >= 0 && d->pinned && c < CPU_SETSIZE; c++) {
                                if (!CPU_ISSET(c, &d->allowed))
                                        continue;
                                (void) snprintf(cpu, sizeof(cpu), "%u", c);
                                r = add(s, METRIC_GUEST_VCPU_PINNED_CPU, STRV(g->name, vcpu, cpu), 1);
                        }
                }
                if (r >= 0 && d->have_last_cpu)
                        r = add(s, METRIC_GUEST_VCPU_LAST_CPU, STRV(g->name, vcpu), d->last_cpu);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int render_guest_sample(MetricSet *s, const MetricsGuestInput *g, const MetricsGuestSample *p) {
        int r;

        if (p->have_status && (r = add(s, METRIC_GUEST_RESIDENT, STRV(g->name), (double) p->status.vm_rss)) < 0)
                return r;
        if (p->have_numa)
                for (size_t i = 0; i < p->numa.n_nodes; i++) {
                        char node[24];

                        if (p->numa.nodes[i].bytes == 0 && i + 1 < p->numa.n_nodes)
                                continue;
                        (void) snprintf(node, sizeof(node), "%zu", i);
                        r = add(s, METRIC_GUEST_NODE_RESIDENT, STRV(g->name, node), (double) p->numa.nodes[i].bytes);
                        if (r < 0)
                                return r;
                }
        if (p->kvm) {
                r = render_kvm_set(s, g->name, &p->kvm->vm, NULL);
                for (size_t i = 0; r >= 0 && i < p->kvm->n_vcpus; i++) {
                        char vcpu[24];

                        (void) snprintf(vcpu, sizeof(vcpu), "%zu", i);
                        r = render_kvm_set(s, g->name, &p->kvm->vcpus[i], vcpu);
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

int metrics_render_guest(MetricSet *s, const MetricsGuestInput *g, const char *const *states,
                         const MetricsGuestSample *sample) {
        int r;

        for (const char *const *st = states; st && *st; st++) {
                r = add(s, METRIC_GUEST_STATE, STRV(g->name, *st), streq(*st, g->state));
                if (r < 0)
                        return r;
        }
        r = add(s, METRIC_GUEST_RESTARTS, STRV(g->name), g->restarts);
        if (r >= 0)
                r = render_guest_totals(s, g);
        if (r < 0)
                return r;
        if (!g->active)
                return 0;

        r = add(s, METRIC_GUEST_VCPUS, STRV(g->name), (double) g->n_vcpus);
        for (const char *const *st = g->agent_states; r >= 0 && g->agent_state && st && *st; st++)
                r = add(s, METRIC_GUEST_AGENT_STATE, STRV(g->name, *st), streq(*st, g->agent_state));
        if (r >= 0 && g->have_memory)
                r = add(s, METRIC_GUEST_MEMORY_SIZE, STRV(g->name), (double) g->memory_bytes);
        if (r >= 0 && g->have_commit_charge)
                r = add(s, METRIC_GUEST_COMMIT_CHARGE, STRV(g->name), (double) g->commit_charge_bytes);
        if (r >= 0)
                r = render_guest_counters(s, g);
        if (r >= 0)
                r = render_guest_balloon(s, g);
        if (r >= 0)
                r = render_guest_vcpus(s, g);
        if (r < 0)
                return r;
        if (!sample || g->pid <= 0 || sample->pid != g->pid)
                return 0;
        return render_guest_sample(s, g, sample);
}

/* The experiment runner's families: every guest's iterations (0 until its first), the three ends always. */
static int render_experiments(MetricSet *s, const MetricsExperiments *x) {
        int r;

        if (!x->enabled)
                return 0;
        if ((r = add(s, METRIC_EXPERIMENTS_RUNNING, NULL, (double) x->running)) < 0 ||
            (r = add(s, METRIC_EXPERIMENTS_ENDED, STRV("completed"), (double) x->completed)) < 0 ||
            (r = add(s, METRIC_EXPERIMENTS_ENDED, STRV("failed"), (double) x->failed)) < 0 ||
            (r = add(s, METRIC_EXPERIMENTS_ENDED, STRV("cancelled"), (double) x->cancelled)) < 0 ||
            (r = add(s, METRIC_EXPERIMENTS_STORED, NULL, (double) x->stored)) < 0 ||
            (r = add(s, METRIC_EXPERIMENTS_STORED_BYTES, NULL, (double) x->stored_bytes)) < 0)
                return r;
        for (size_t i = 0; i < x->n_guests; i++)
                if ((r = add(s, METRIC_EXPERIMENT_ITERATIONS, STRV(x->guests[i].vm),
                             (double) x->guests[i].iterations)) < 0)
                        return r;
        return 0;
}

/* The families of the daemon itself: counters that change with every request, so built per request. */
int metrics_render_daemon(MetricSet *s, const MetricsSamplerStats *st, const MetricsDaemonInput *d) {
        int r;

        if ((r = add(s, METRIC_DAEMON_VARLINK_CONNECTIONS, NULL, d->varlink_connections)) < 0 ||
            (r = add(s, METRIC_DAEMON_VARLINK_CONNECTIONS_TOTAL, NULL, (double) d->varlink_connections_total)) < 0 ||
            (r = add(s, METRIC_DAEMON_VARLINK_CALLS, NULL, (double) d->varlink_calls)) < 0 ||
            (r = add(s, METRIC_DAEMON_VARLINK_PROTOCOL_ERRORS, NULL, (double) d->varlink_protocol_errors)) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLE_DURATION, STRV("host"), (double) st->host_duration_usec / 1e6)) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLE_DURATION, STRV("guest"), (double) st->guest_duration_usec / 1e6)) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLES, STRV("host"), (double) st->host_samples)) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLES, STRV("guest"), (double) st->guest_samples)) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLE_ERRORS, STRV("host"), (double) st->host_errors)) < 0 ||
            (r = add(s, METRIC_DAEMON_SAMPLE_ERRORS, STRV("guest"), (double) st->guest_errors)) < 0)
                return r;
        if (st->have_host &&
            (r = add(s, METRIC_DAEMON_LAST_SAMPLE, NULL, (double) st->last_host_realtime_usec / 1e6)) < 0)
                return r;
        if (d->exporter) {
                if ((r = add(s, METRIC_DAEMON_SCRAPES, NULL, (double) d->scrapes)) < 0 ||
                    (r = add(s, METRIC_DAEMON_HTTP_CONNECTIONS, NULL, d->http_connections)) < 0)
                        return r;
                for (size_t i = 0; i < d->n_evicted; i++)
                        if ((r = add(s, METRIC_DAEMON_HTTP_EVICTED, STRV(d->evicted[i].label),
                                     (double) d->evicted[i].count)) < 0)
                                return r;
                for (size_t i = 0; i < d->n_refused; i++)
                        if ((r = add(s, METRIC_DAEMON_HTTP_REFUSED, STRV(d->refused[i].label),
                                     (double) d->refused[i].count)) < 0)
                                return r;
                for (size_t i = 0; i < d->n_responses; i++) {
                        char code[16];

                        (void) snprintf(code, sizeof(code), "%d", d->responses[i].code);
                        r = add(s, METRIC_DAEMON_HTTP_RESPONSES, STRV(code), (double) d->responses[i].count);
                        if (r < 0)
                                return r;
                }
        }
        r = render_experiments(s, &d->experiments);
        if (r < 0)
                return r;
        metric_set_seal(s);
        return 0;
}

json_object *metrics_host_memory_json(const HostSample *h) {
        _cleanup_json_ json_object *o = json_object_new_object(), *nodes = json_object_new_array(),
                                   *huge = json_object_new_object();

        if (!o || !nodes || !huge)
                return NULL;
        if (json_add_uint(o, "realtimeUSec", h->realtime_usec) < 0 ||
            json_add_uint(o, "memTotalBytes", h->host.mem_total) < 0 ||
            json_add_uint(o, "memFreeBytes", h->host.mem_free) < 0 ||
            json_add_uint(o, "memAvailableBytes", h->host.mem_available) < 0 ||
            json_add_uint(o, "committedASBytes", h->host.committed_as) < 0 ||
            json_add_uint(o, "commitLimitBytes", h->host.commit_limit) < 0 ||
            json_add_double(o, "overcommitRatio", host_memory_overcommit_ratio(&h->host)) < 0 ||
            json_add_uint(o, "swapTotalBytes", h->host.swap_total) < 0 ||
            json_add_uint(o, "swapFreeBytes", h->host.swap_free) < 0 ||
            json_add_uint(huge, "total", h->hugepages_total) < 0 ||
            json_add_uint(huge, "free", h->hugepages_free) < 0 ||
            json_add_uint(huge, "reserved", h->hugepages_rsvd) < 0 ||
            json_add_uint(huge, "surplus", h->hugepages_surp) < 0 ||
            json_add_uint(huge, "pageSizeBytes", h->hugepage_size) < 0)
                return NULL;
        for (size_t i = 0; i < h->n_nodes; i++) {
                _cleanup_json_ json_object *n = json_object_new_object();
                const NodeMemory *nm = &h->nodes[i];

                if (!n || json_add_uint(n, "node", nm->node) < 0 ||
                    json_add_uint(n, "memTotalBytes", nm->mem_total) < 0 ||
                    json_add_uint(n, "memFreeBytes", nm->mem_free) < 0 ||
                    json_add_uint(n, "memUsedBytes", nm->mem_used) < 0 ||
                    json_add_uint(n, "hugePagesTotal", nm->hugepages_total) < 0 ||
                    json_add_uint(n, "hugePagesFree", nm->hugepages_free) < 0 ||
                    json_object_array_add(nodes, TAKE_PTR(n)) < 0)
                        return NULL;
        }
        if (json_add(o, "hugePages", TAKE_PTR(huge)) < 0 || json_add(o, "nodes", TAKE_PTR(nodes)) < 0)
                return NULL;
        return TAKE_PTR(o);
}
