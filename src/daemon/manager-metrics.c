/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Metrics, the daemon's side of src/metrics: what the sampler (MetricsSampler) is told about the guests (their
 * state from the guest table, their records' balloon and NUMA readings (manager-guest.h), their vCPUs'
 * placement), the daemon's own counters and the experiment runner's (manager_experiment_metrics()) read per
 * request, the varlink methods that read its snapshot (GetHostMemory, GetHostMemoryHistory, GetMetrics,
 * WatchMetrics) and the Prometheus exporter (src/exporter) that renders it. */
#include <stdio.h>

#include "numa/cpu-set.h"
#include "exporter/http-server.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-guest.h"
#include "daemon/manager.h"
#include "metrics/metric-families.h"
#include "metrics/metrics-sampler.h"
#include "numa/numa-placement.h"

#define MAX_WATCHERS 64U
#define WATCH_MIN_USEC (100U * USEC_PER_MSEC)
#define WATCH_MAX_USEC (3600U * USEC_PER_SEC)

typedef struct Watcher {
        ManagerMetrics *mm;
        VarlinkConnection *connection;
        sd_event_source *timer;
        uint64_t interval_usec;
} Watcher;

struct ManagerMetrics {
        Manager *manager;
        MetricsSampler *sampler;
        HttpServer *http;
        int exporter_fd;                /* socket-activated, until the server takes it */
        Watcher **watchers;
        size_t n_watchers;
};

/* ---- what the sampler is told ------------------------------------------------------------------ */

static const char *const *guest_states(void) {
        static const char *states[_VM_STATE_MAX + 1];

        if (!states[0])
                for (VmState st = 0; st < _VM_STATE_MAX; st++)
                        states[st] = vm_state_to_string(st);
        return states;
}

static void sampler_settings(void *userdata, MetricsSettings *ret) {
        ManagerMetrics *mm = userdata;
        const DaemonConfig *c = &mm->manager->config;

        *ret = (MetricsSettings) {
                .proc_root = c->proc_root,
                .sys_root = c->sys_root,
                .host_interval_usec = c->host_sample_interval_usec,
                .guest_interval_usec = c->guest_sample_interval_usec,
                .numa_interval_usec = c->numa_sample_interval_usec,
                .history = c->host_history,
                .guest_states = guest_states(),
        };
}

/* A running guest's vCPU placement (src/numa reads it: one system call and one small procfs read per vCPU, on
 * the host tick). own is the daemon's affinity (what QEMU inherited), NULL when unknown. */
static int guest_vcpus(Manager *m, Vm *vm, const CpuSet *own, MetricsGuestInput *g) {
        const VmSpec *spec = vm->running_spec ?: vm->spec;
        _cleanup_free_ NumaVcpuThread *threads = NULL;

        if (vm->n_vcpus == 0)
                return 0;
        threads = manager_guest_vcpu_threads(vm);
        g->vcpus = calloc(vm->n_vcpus, sizeof(MetricsVcpu));
        if (!threads || !g->vcpus)
                return -ENOMEM;
        g->n_vcpu_samples = vm->n_vcpus;
        g->errors += numa_vcpus_metrics(m->config.proc_root, vm->pid, threads, vm->n_vcpus,
                                        spec ? spec->vcpu_affinity : NULL, own, g->vcpus);
        return 0;
}

static const char *const agent_states[] = { "absent", "connecting", "ready", NULL };
_Static_assert(ELEMENTSOF(agent_states) == _QGA_STATE_MAX + 1, "one name per agent state");

static int sampler_guests(void *userdata, bool vcpus, MetricsGuestInput **ret, size_t *ret_n) {
        ManagerMetrics *mm = userdata;
        Manager *m = mm->manager;
        MetricsGuestInput *in;
        bool have_own = false;
        CpuSet own;

        in = calloc(MAX(m->guests.n_vms, (size_t) 1), sizeof(MetricsGuestInput));
        if (!in)
                return -ENOMEM;
        if (vcpus)
                have_own = thread_get_affinity(0, &own) >= 0;

        for (size_t i = 0; i < m->guests.n_vms; i++) {
                Vm *vm = m->guests.vms[i];
                const VmSpec *spec = vm->running_spec ?: vm->spec;
                const ManagerGuest *g = manager_guest_find(m, vm->name);
                bool active = vm_is_active(vm);

                in[i] = (MetricsGuestInput) {
                        .name = vm->name,
                        .state = vm_state_to_string(vm->state),
                        .restarts = vm->restarts,
                        .active = active,
                        .pid = active ? vm->pid : 0,
                        .qmp = vm->qmp,
                        .n_vcpus = vm->n_vcpus,
                        .have_memory = vm->running_spec,
                        .memory_bytes = vm->running_spec ? vm->running_spec->memory_bytes : 0,
                        .have_commit_charge = vm->commit.have_after,
                        .commit_charge_bytes = vm_commit_charge_bytes(vm),
                        .balloon_enabled = spec && spec->balloon,
                        .agent_state = active && vm->qga ? qga_state_to_string(qga_client_get_state(vm->qga)) : NULL,
                        .agent_states = agent_states,
                        .guest_counters = active && g && vm->state == VM_STATE_RUNNING && vm->qga &&
                                          qga_client_get_state(vm->qga) == QGA_STATE_READY ? &g->agent_counters
                                                                                            : NULL,
                };
                /* The balloon and NUMA readings: what the guest's record holds (in memory, no I/O). */
                balloon_controller_get_metrics(g ? g->balloon : NULL, &in[i].balloon);
                migration_history_get_metrics(g ? g->migrations : NULL, &in[i].numa);
                in[i].have_dirty_rate = manager_dirty_rate_metrics(m, vm->name, &in[i].dirty_rate_bytes_per_sec,
                                                                   &in[i].dirty_rate_realtime_usec);
                if (vcpus && active && vm->pid > 0 && guest_vcpus(m, vm, have_own ? &own : NULL, &in[i]) < 0) {
                        metrics_guest_inputs_free(in, i + 1);
                        return -ENOMEM;
                }
        }
        *ret = in;
        *ret_n = m->guests.n_vms;
        return 0;
}

static int daemon_counters(ManagerMetrics *mm, MetricsDaemonInput *ret) {
        VarlinkServer *v = mm->manager->varlink;
        int codes[METRICS_MAX_LABELLED];
        uint64_t counts[METRICS_MAX_LABELLED];
        int r;

        *ret = (MetricsDaemonInput) {
                .varlink_connections = varlink_server_connection_count(v),
                .varlink_connections_total = varlink_server_connections_total(v),
                .varlink_calls = varlink_server_calls_total(v),
                .varlink_protocol_errors = varlink_server_protocol_errors(v),
                .exporter = mm->http,
        };
        r = manager_experiment_metrics(mm->manager, &ret->experiments);
        if (r < 0)
                return r;
        if (!mm->http)
                return 0;
        _Static_assert(_HTTP_EVICTION_MAX <= METRICS_MAX_LABELLED && _HTTP_REFUSAL_MAX <= METRICS_MAX_LABELLED, "");
        ret->scrapes = http_server_scrapes(mm->http);
        ret->http_connections = http_server_connections(mm->http);
        for (HttpEviction e = 0; e < _HTTP_EVICTION_MAX; e++)
                ret->evicted[ret->n_evicted++] = (MetricsCount) { http_eviction_to_string(e),
                                                                  http_server_evictions(mm->http, e) };
        for (HttpRefusal f = 0; f < _HTTP_REFUSAL_MAX; f++)
                ret->refused[ret->n_refused++] = (MetricsCount) { http_refusal_to_string(f),
                                                                  http_server_refusals(mm->http, f) };
        ret->n_responses = http_server_responses(mm->http, codes, counts, ELEMENTSOF(codes));
        for (size_t i = 0; i < ret->n_responses; i++)
                ret->responses[i] = (MetricsCodeCount) { codes[i], counts[i] };
        return 0;
}

static int render_metrics(ByteBuffer *out, size_t max_size, void *userdata) {
        ManagerMetrics *mm = userdata;
        MetricsDaemonInput d;
        int r;

        r = daemon_counters(mm, &d);
        if (r < 0)
                return r;
        return metrics_sampler_render_text(mm->sampler, &d, out, max_size);
}

/* ---- varlink ----------------------------------------------------------------------------------- */

static int no_sample_parameters(ManagerMetrics *mm, json_object **ret) {
        int e = mm && mm->sampler ? metrics_sampler_last_error(mm->sampler) : 0;
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "reason", e < 0 ? strerror(-e) : "no sample taken yet") < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

static int reply_no_sample(VarlinkConnection *c, ManagerMetrics *mm) {
        json_object *p = NULL;
        int r;

        r = no_sample_parameters(mm, &p);
        if (r < 0)
                return r;
        return varlink_error(c, VARLINK_ERROR(NO_SAMPLE), p);
}

static const HostSample *last_host(ManagerMetrics *mm) {
        return mm && mm->sampler ? metrics_sampler_host(mm->sampler) : NULL;
}

const HostSample *manager_metrics_host(Manager *m) {
        return last_host(m->metrics);
}

int manager_metrics_host_memory(Manager *m, json_object **ret_reply, ManagerError *ret_error) {
        _cleanup_json_ json_object *p = json_object_new_object();
        const HostSample *h = last_host(m->metrics);
        json_object *sample;
        int r;

        if (!h) {
                json_object *e = NULL;

                r = no_sample_parameters(m->metrics, &e);
                if (r < 0)
                        return r;
                return manager_error_set(ret_error, -ENODATA, VARLINK_ERROR(NO_SAMPLE), e);
        }
        sample = metrics_host_memory_json(h);
        if (!p || !sample || json_add(p, "sample", sample) < 0 ||
            json_add_uint(p, "sampleIntervalUSec", m->config.host_sample_interval_usec) < 0 ||
            json_add_uint(p, "sampleDurationUSec", h->duration_usec) < 0)
                return -ENOMEM;
        *ret_reply = TAKE_PTR(p);
        return 0;
}

static int vl_get_host_memory(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        ManagerError e = {};
        json_object *reply = NULL;
        int r;

        r = manager_metrics_host_memory(userdata, &reply, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        return varlink_reply(c, reply);
}

static int vl_get_host_memory_history(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                      void *userdata) {
        Manager *m = userdata;
        ManagerMetrics *mm = m->metrics;
        _cleanup_json_ json_object *p = json_object_new_object(), *samples = json_object_new_array();
        json_object *limit_o = NULL;
        size_t limit = SIZE_MAX;

        if (json_object_object_get_ex(parameters, "limit", &limit_o) && limit_o) {
                int64_t l = json_object_get_int64(limit_o);
                if (l < 1 || l > 86400)
                        return varlink_error_invalid_parameter(c, "limit");
                limit = (size_t) l;
        }
        if (!p || !samples)
                return -ENOMEM;
        if (mm && mm->sampler && metrics_sampler_history_json(mm->sampler, limit, samples) < 0)
                return -ENOMEM;
        if (json_add_uint(p, "sampleIntervalUSec", m->config.host_sample_interval_usec) < 0 ||
            json_add_uint(p, "capacity", m->config.host_history) < 0 || json_add(p, "samples", TAKE_PTR(samples)) < 0)
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(p));
}

static int vl_get_metrics(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        ManagerMetrics *mm = m->metrics;
        _cleanup_json_ json_object *p = json_object_new_object(), *arr = json_object_new_array();
        const HostSample *h = last_host(mm);
        MetricsDaemonInput d;
        int r;

        if (!mm || !mm->sampler)
                return reply_no_sample(c, mm);
        if (!p || !arr)
                return -ENOMEM;
        r = daemon_counters(mm, &d);
        if (r < 0)
                return r;
        r = metrics_sampler_render_json(mm->sampler, &d, arr);
        if (r < 0)
                return r;
        if (json_add(p, "metrics", TAKE_PTR(arr)) < 0 || (h && json_add_uint(p, "realtimeUSec", h->realtime_usec) < 0))
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(p));
}

static Watcher *watcher_free(Watcher *w) {
        if (!w)
                return NULL;
        sd_event_source_disable_unref(w->timer);
        varlink_connection_set_close_callback(w->connection, NULL, NULL);
        varlink_connection_unref(w->connection);
        return mfree(w);
}

static void watcher_remove(ManagerMetrics *mm, Watcher *w) {
        for (size_t i = 0; i < mm->n_watchers; i++)
                if (mm->watchers[i] == w) {
                        memmove(mm->watchers + i, mm->watchers + i + 1, (mm->n_watchers - i - 1) * sizeof(Watcher *));
                        mm->n_watchers--;
                        break;
                }
        watcher_free(w);
}

static void watcher_closed(VarlinkConnection *c, void *userdata) {
        Watcher *w = userdata;
        watcher_remove(w->mm, w);
}

static int watcher_send(Watcher *w) {
        const HostSample *h = last_host(w->mm);
        json_object *p = json_object_new_object(), *sample;

        if (!p)
                return -ENOMEM;
        sample = h ? metrics_host_memory_json(h) : NULL;
        if (!sample || json_add(p, "sample", sample) < 0) {
                json_object_put(p);
                return h ? -ENOMEM : 0;
        }
        return varlink_notify(w->connection, p);
}

static int on_watch_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Watcher *w = userdata;
        VarlinkConnection *c;
        bool closed;
        int r;

        if (varlink_connection_is_closed(w->connection)) {
                watcher_remove(w->mm, w);
                return 0;
        }
        /* A sample over the client's output limit closes the connection, and the close callback frees w (and
         * its reference): look at the connection through a reference of our own afterwards, not through w. */
        c = varlink_connection_ref(w->connection);
        r = watcher_send(w);
        closed = varlink_connection_is_closed(c);
        varlink_connection_unref(c);
        if (r < 0 && !closed)
                log_debug_errno(r, "Failed to send a host sample to a watcher: %m");
        if (closed)
                return 0;       /* the close callback removed it */
        (void) sd_event_source_set_time(s, usec + w->interval_usec);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static int vl_watch_metrics(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        ManagerMetrics *mm = m->metrics;
        uint64_t interval = m->config.host_sample_interval_usec;
        json_object *o = NULL;
        Watcher *w, **t;
        int r;

        if (json_object_object_get_ex(parameters, "intervalUSec", &o) && o) {
                int64_t v = json_object_get_int64(o);
                if (v < (int64_t) WATCH_MIN_USEC || v > (int64_t) WATCH_MAX_USEC)
                        return varlink_error_invalid_parameter(c, "intervalUSec");
                interval = (uint64_t) v;
        }
        if (!mm || !mm->sampler)
                return reply_no_sample(c, mm);
        if (mm->n_watchers >= MAX_WATCHERS)
                return varlink_error(c, VARLINK_ERROR(TOO_MANY_WATCHERS), NULL);

        w = calloc(1, sizeof(Watcher));
        if (!w)
                return -ENOMEM;
        *w = (Watcher) { .mm = mm, .connection = varlink_connection_ref(c), .interval_usec = interval };
        r = sd_event_add_time_relative(m->event, &w->timer, CLOCK_MONOTONIC, interval, 0, on_watch_timer, w);
        if (r < 0) {
                watcher_free(w);
                return r;
        }
        (void) sd_event_source_set_description(w->timer, "metrics-watch");
        t = reallocarray(mm->watchers, mm->n_watchers + 1, sizeof(Watcher *));
        if (!t) {
                watcher_free(w);
                return -ENOMEM;
        }
        mm->watchers = t;
        mm->watchers[mm->n_watchers++] = w;
        varlink_connection_set_close_callback(c, watcher_closed, w);

        /* The first sample right away. */
        r = watcher_send(w);
        if (r < 0)
                log_debug_errno(r, "Failed to send a host sample to a watcher: %m");
        return 0;
}

static const VarlinkMethod metrics_methods[] = {
        { "GetHostMemory", vl_get_host_memory, (const VarlinkField[]) { { NULL } }, 0 },
        { "GetHostMemoryHistory", vl_get_host_memory_history,
          (const VarlinkField[]) { { "limit", VARLINK_INT, VARLINK_NULLABLE }, { NULL } }, 0 },
        { "GetMetrics", vl_get_metrics, (const VarlinkField[]) { { NULL } }, 0 },
        { "WatchMetrics", vl_watch_metrics,
          (const VarlinkField[]) { { "intervalUSec", VARLINK_INT, VARLINK_NULLABLE }, { NULL } },
          VARLINK_METHOD_REQUIRES_MORE },
        { NULL },
};

const VarlinkMethod *manager_metrics_methods(void) {
        return metrics_methods;
}

/* ---- start / stop ------------------------------------------------------------------------------ */

static int metrics_get(Manager *m, ManagerMetrics **ret) {
        if (!m->metrics) {
                m->metrics = calloc(1, sizeof(ManagerMetrics));
                if (!m->metrics)
                        return -ENOMEM;
                m->metrics->manager = m;
                m->metrics->exporter_fd = -EBADF;
        }
        *ret = m->metrics;
        return 0;
}

int manager_metrics_adopt_exporter_fd(Manager *m, int fd) {
        ManagerMetrics *mm;
        int r;

        r = metrics_get(m, &mm);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        if (mm->exporter_fd >= 0) {
                safe_close(fd);
                return -EEXIST;
        }
        mm->exporter_fd = fd;
        return 0;
}

static int start_exporter(ManagerMetrics *mm) {
        Manager *m = mm->manager;
        int r;

        if (!m->config.exporter_enabled && mm->exporter_fd < 0) {
                log_debug("Prometheus exporter disabled.");
                return 0;
        }
        r = http_server_new(&mm->http, m->event, render_metrics, mm);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Prometheus exporter: %m");
        http_server_set_limits(mm->http, &(HttpServerLimits) {
                .max_connections = m->config.exporter_max_connections,
                .max_connections_per_address = m->config.exporter_max_connections_per_address,
                .timeout_usec = m->config.exporter_timeout_usec,
                .header_timeout_usec = m->config.exporter_header_timeout_usec,
        });

        if (mm->exporter_fd >= 0) {
                r = http_server_listen_fd(mm->http, TAKE_FD(mm->exporter_fd));
                if (r < 0)
                        return log_error_errno(r, "Failed to serve the exporter on the passed socket: %m");
        } else {
                r = http_server_listen_address(mm->http, m->config.exporter_address);
                if (r < 0) {
                        /* The exporter is an extra: the daemon runs on without it, loudly. */
                        log_error_errno(r, "Failed to listen on %s for the Prometheus exporter, running without it: %m",
                                        m->config.exporter_address);
                        mm->http = http_server_free(mm->http);
                        return 0;
                }
        }
        log_info("Prometheus exporter listening on http://%s/metrics", http_server_address(mm->http));
        return 0;
}

int manager_metrics_start(Manager *m) {
        static const MetricsSamplerOps ops = {
                .settings = sampler_settings,
                .guests = sampler_guests,
        };
        ManagerMetrics *mm;
        int r;

        r = metrics_get(m, &mm);
        if (r < 0)
                return log_oom();
        r = metrics_sampler_new(&mm->sampler, m->event, &ops, mm);
        if (r < 0)
                return log_oom();
        r = metrics_sampler_start(mm->sampler);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the metrics samplers: %m");

        return start_exporter(mm);
}

void manager_metrics_done(Manager *m) {
        ManagerMetrics *mm = m->metrics;

        if (!mm)
                return;
        while (mm->n_watchers > 0)
                watcher_remove(mm, mm->watchers[mm->n_watchers - 1]);
        free(mm->watchers);
        http_server_free(mm->http);
        safe_close(mm->exporter_fd);
        /* QMP commands of the sampler still in flight end at the latest when manager_vms_done() closes the
         * guests' QMP connections, after this; their callbacks then only free themselves. */
        metrics_sampler_free(mm->sampler);
        m->metrics = mfree(mm);
}

int manager_metrics_list(void) {
        return metric_families_markdown(stdout);
}
