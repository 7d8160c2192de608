/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "metrics/metrics-sampler.h"
#include "basic/worker.h"

#define QMP_SAMPLE_TIMEOUT_USEC (5U * USEC_PER_SEC)
#define MAX_RENDER_SIZE (32U * 1024U * 1024U)

/* What one host sample leaves in the history ring. */
typedef struct HostRingEntry {
        uint64_t realtime_usec;
        uint64_t mem_total, mem_free, mem_available, committed_as, commit_limit, swap_total, swap_free;
} HostRingEntry;

typedef struct GuestData {
        char *name;
        MetricsGuestSample sample;
        const QmpClient *qmp;           /* the client the requests below went to; compared, never used */
        unsigned generation;            /* changes with the process or the QMP client: older replies are stale */
        unsigned pending;               /* QMP requests of this generation in flight */
} GuestData;

typedef struct QmpRequest QmpRequest;
struct QmpRequest {
        MetricsSampler *sampler;        /* NULL once the sampler is gone */
        QmpRequest *prev, *next;
        char *name;
        unsigned generation;
        QmpClient *qmp;
};

typedef struct NumaJob {
        char *name;
        pid_t pid;
        int r;
        NumaMaps maps;
} NumaJob;

typedef struct NumaBatch {
        char *proc_root;
        NumaJob *jobs;
        size_t n_jobs;
} NumaBatch;

struct MetricsSampler {
        sd_event *event;
        MetricsSamplerOps ops;
        void *userdata;
        sd_event_source *host_timer, *guest_timer;

        HostSample host;
        bool have_host;
        int last_host_error;
        HostRingEntry *ring;
        size_t ring_size, ring_start, ring_n;

        GuestData *guests;
        size_t n_guests;
        QmpRequest *requests;

        MetricSet *snapshot;            /* sealed; replaced, never changed */
        ByteBuffer snapshot_text;       /* its text form, rendered on first use */
        bool snapshot_text_valid;

        MetricsSamplerStats stats;

        /* numa_maps is read in a worker thread: for a large guest it walks page tables, and during a page
         * migration it waits for the guest's mmap lock — neither may stall the event loop. */
        Worker *numa_worker;
        NumaBatch *numa_batch;
        uint64_t numa_last_monotonic;
};

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static NumaBatch *numa_batch_free(NumaBatch *b) {
        if (!b)
                return NULL;
        for (size_t i = 0; i < b->n_jobs; i++) {
                numa_maps_done(&b->jobs[i].maps);
                free(b->jobs[i].name);
        }
        free(b->jobs);
        free(b->proc_root);
        free(b);
        return NULL;
}

/* ---- guest data -------------------------------------------------------------------------------- */

static void guest_data_clear(GuestData *g) {
        g->sample.have_status = false;
        g->sample.have_numa = false;
        numa_maps_done(&g->sample.numa);
        g->sample.kvm = kvm_stats_free(g->sample.kvm);
        g->sample.pid = 0;
        g->qmp = NULL;
        g->generation++;
        g->pending = 0;
}

static void guest_data_done(GuestData *g) {
        guest_data_clear(g);
        free(g->name);
}

static GuestData *guest_data_find(MetricsSampler *s, const char *name) {
        for (size_t i = 0; i < s->n_guests; i++)
                if (streq(s->guests[i].name, name))
                        return &s->guests[i];
        return NULL;
}

static GuestData *guest_data_get(MetricsSampler *s, const char *name) {
        GuestData *g = guest_data_find(s, name), *t;

        if (g)
                return g;
        t = reallocarray(s->guests, s->n_guests + 1, sizeof(GuestData));
        if (!t)
                return NULL;
        s->guests = t;
        g = &s->guests[s->n_guests];
        *g = (GuestData) { .name = strdup(name) };
        if (!g->name)
                return NULL;
        s->n_guests++;
        return g;
}

/* Forgets guests that are no longer defined. */
static void guest_data_prune(MetricsSampler *s, const MetricsGuestInput *in, size_t n) {
        for (size_t i = 0; i < s->n_guests;) {
                bool found = false;

                for (size_t k = 0; k < n && !found; k++)
                        found = streq(in[k].name, s->guests[i].name);
                if (found) {
                        i++;
                        continue;
                }
                guest_data_done(&s->guests[i]);
                memmove(s->guests + i, s->guests + i + 1, (s->n_guests - i - 1) * sizeof(GuestData));
                s->n_guests--;
        }
}

/* The readings of a running guest, started over when its process changed. NULL on OOM. */
static GuestData *guest_data_for(MetricsSampler *s, const MetricsGuestInput *in) {
        GuestData *g = guest_data_get(s, in->name);

        if (!g)
                return NULL;
        if (g->sample.pid != in->pid) {
                guest_data_clear(g);
                g->sample.pid = in->pid;
        }
        return g;
}

static int fetch_guests(MetricsSampler *s, bool vcpus, MetricsGuestInput **ret, size_t *ret_n) {
        int r;

        *ret = NULL;
        *ret_n = 0;
        r = s->ops.guests(s->userdata, vcpus, ret, ret_n);
        if (r < 0)
                return r;
        guest_data_prune(s, *ret, *ret_n);
        return 0;
}

/* ---- QMP: KVM statistics ------------------------------------------------------------------------ */

static QmpRequest *qmp_request_new(MetricsSampler *s, GuestData *g, QmpClient *qmp) {
        QmpRequest *r = calloc(1, sizeof(QmpRequest));

        if (!r)
                return NULL;
        r->name = strdup(g->name);
        if (!r->name)
                return mfree(r);
        r->sampler = s;
        r->generation = g->generation;
        r->qmp = qmp_client_ref(qmp);
        r->next = s->requests;
        if (s->requests)
                s->requests->prev = r;
        s->requests = r;
        return r;
}

static void qmp_request_free(QmpRequest *r) {
        if (r->sampler) {
                if (r->prev)
                        r->prev->next = r->next;
                else
                        r->sampler->requests = r->next;
                if (r->next)
                        r->next->prev = r->prev;
        }
        qmp_client_unref(r->qmp);
        free(r->name);
        free(r);
}

/* The guest this reply is for, if it still runs the same process with the same QMP client. */
static GuestData *qmp_request_guest(QmpRequest *r) {
        GuestData *g;

        if (!r->sampler)
                return NULL;
        g = guest_data_find(r->sampler, r->name);
        if (!g || g->generation != r->generation)
                return NULL;
        if (g->pending > 0)
                g->pending--;
        return g;
}

static void on_kvm_stats(KvmStats *stats, int error, void *userdata) {
        QmpRequest *r = userdata;
        GuestData *g = qmp_request_guest(r);

        if (g) {
                g->sample.kvm = kvm_stats_free(g->sample.kvm);
                if (error >= 0 && stats && kvm_stats_available(stats))
                        g->sample.kvm = TAKE_PTR(stats);
                /* -EIO: QEMU's answer; -ECONNRESET: QMP closed (QEMU exited or the guest let go of it) */
                else if (error < 0 && error != -EIO && error != -ECONNRESET) {
                        r->sampler->stats.guest_errors++;
                        log_debug_errno(error, "query-stats of %s failed: %m", r->name);
                }
        }
        kvm_stats_free(stats);
        qmp_request_free(r);
}

static void sample_guest_qmp(MetricsSampler *s, const MetricsGuestInput *in, GuestData *g) {
        QmpRequest *r;
        int k;

        if (g->qmp != in->qmp) {
                /* Another client (or none): replies to the old one are no longer counted. */
                g->qmp = in->qmp;
                g->generation++;
                g->pending = 0;
        }
        if (!in->qmp || qmp_client_get_state(in->qmp) != QMP_CLIENT_RUNNING || g->pending > 0)
                return;

        r = qmp_request_new(s, g, in->qmp);
        if (!r)
                return (void) log_oom();
        k = kvm_stats_query(in->qmp, QMP_SAMPLE_TIMEOUT_USEC, on_kvm_stats, r);
        if (k < 0) {
                qmp_request_free(r);
                s->stats.guest_errors++;
        } else
                g->pending++;
}

/* ---- /proc ------------------------------------------------------------------------------------- */

/* /proc status of one guest: on the host tick, so that the snapshot's RSS is fresh. */
static void sample_guest_proc(MetricsSampler *s, const char *proc_root, GuestData *g) {
        char path[PATH_MAX];
        int r;

        (void) snprintf(path, sizeof(path), "%s/%i/status", proc_root, (int) g->sample.pid);
        r = proc_status_read(path, &g->sample.status);
        g->sample.have_status = r >= 0;
        if (r < 0 && r != -ENOENT) {
                s->stats.guest_errors++;
                log_debug_errno(r, "Failed to read %s, ignoring: %m", path);
        }
}

/* In the worker thread: touches nothing but the batch. */
static int numa_batch_run(Worker *w, void *arg) {
        NumaBatch *b = arg;

        for (size_t i = 0; i < b->n_jobs; i++) {
                NumaJob *j = &b->jobs[i];
                char path[PATH_MAX];

                (void) snprintf(path, sizeof(path), "%s/%i/numa_maps", b->proc_root, (int) j->pid);
                j->r = numa_maps_read(path, &j->maps);
        }
        return 0;
}

/* Back on the event loop: hand the results to guests that still run the same process. */
static void numa_batch_done(Worker *w, int code, bool done, int result, void *userdata) {
        MetricsSampler *s = userdata;
        NumaBatch *b = s->numa_batch;

        if (!done)
                return;
        for (size_t i = 0; b && i < b->n_jobs; i++) {
                NumaJob *j = &b->jobs[i];
                GuestData *g = guest_data_find(s, j->name);

                if (!g || g->sample.pid != j->pid)
                        continue;
                numa_maps_done(&g->sample.numa);
                g->sample.have_numa = j->r >= 0;
                if (j->r >= 0) {
                        g->sample.numa = j->maps;
                        j->maps = (NumaMaps) {};
                } else if (j->r != -ENOENT) {
                        s->stats.guest_errors++;
                        log_debug_errno(j->r, "Failed to read numa_maps of pid %i, ignoring: %m", (int) j->pid);
                }
        }
        s->numa_batch = numa_batch_free(s->numa_batch);
        s->numa_worker = worker_free(w);
}

/* Starts reading numa_maps of every running guest off the loop, unless the last batch is still at it. */
static void sample_guests_numa(MetricsSampler *s, const char *proc_root, const MetricsGuestInput *in, size_t n) {
        NumaBatch *b;
        int r;

        if (s->numa_worker)
                return;
        b = calloc(1, sizeof(NumaBatch));
        if (!b || !(b->proc_root = strdup(proc_root)) || !(b->jobs = calloc(MAX(n, (size_t) 1), sizeof(NumaJob)))) {
                numa_batch_free(b);
                return (void) log_oom();
        }
        for (size_t i = 0; i < n; i++) {
                if (!in[i].active || in[i].pid <= 0)
                        continue;
                b->jobs[b->n_jobs].name = strdup(in[i].name);
                if (!b->jobs[b->n_jobs].name) {
                        numa_batch_free(b);
                        return (void) log_oom();
                }
                b->jobs[b->n_jobs++].pid = in[i].pid;
        }
        if (b->n_jobs == 0) {
                numa_batch_free(b);
                return;
        }
        s->numa_batch = b;
        r = worker_start(s->event, "metrics-numa-maps", numa_batch_run, b, numa_batch_done, s, &s->numa_worker);
        if (r < 0) {
                log_warning_errno(r, "Failed to start the numa_maps reader, skipping this sample: %m");
                s->numa_batch = numa_batch_free(s->numa_batch);
        }
}

/* ---- snapshot ---------------------------------------------------------------------------------- */

static int build_snapshot(MetricsSampler *s, const char *const *states, const MetricsGuestInput *in, size_t n) {
        _cleanup_(metric_set_freep) MetricSet *set = metric_set_new();
        int r;

        if (!set)
                return -ENOMEM;
        if (s->have_host) {
                r = metrics_render_host(set, &s->host);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n; i++) {
                GuestData *g = guest_data_find(s, in[i].name);

                r = metrics_render_guest(set, &in[i], states, g ? &g->sample : NULL);
                if (r < 0)
                        return r;
        }
        metric_set_seal(set);

        metric_set_free(s->snapshot);
        s->snapshot = TAKE_PTR(set);
        s->snapshot_text_valid = false;
        return 0;
}

static int build_daemon(MetricsSampler *s, const MetricsDaemonInput *d, MetricSet **ret) {
        _cleanup_(metric_set_freep) MetricSet *set = metric_set_new();
        MetricsSamplerStats st;
        int r;

        if (!set)
                return -ENOMEM;
        metrics_sampler_stats(s, &st);
        r = metrics_render_daemon(set, &st, d);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(set);
        return 0;
}

int metrics_sampler_render_text(MetricsSampler *s, const MetricsDaemonInput *d, ByteBuffer *out, size_t max_size) {
        _cleanup_(metric_set_freep) MetricSet *set = NULL;
        int r;

        r = build_daemon(s, d, &set);
        if (r < 0)
                return r;
        /* memvisor_daemon_* sorts before memvisor_guest_* and memvisor_host_*: the order stays stable. */
        r = metric_set_render_text(set, out, max_size);
        if (r < 0)
                return r;
        if (!s->snapshot)
                return 0;
        if (!s->snapshot_text_valid) {
                byte_buffer_consume(&s->snapshot_text, byte_buffer_size(&s->snapshot_text));
                r = metric_set_render_text(s->snapshot, &s->snapshot_text, MAX_RENDER_SIZE);
                if (r < 0)
                        return r;
                s->snapshot_text_valid = true;
        }
        return byte_buffer_append(out, byte_buffer_head(&s->snapshot_text), byte_buffer_size(&s->snapshot_text),
                                  max_size);
}

int metrics_sampler_render_json(MetricsSampler *s, const MetricsDaemonInput *d, json_object *array) {
        _cleanup_(metric_set_freep) MetricSet *set = NULL;
        int r;

        r = build_daemon(s, d, &set);
        if (r >= 0)
                r = metric_set_to_json(set, array);
        if (r >= 0 && s->snapshot)
                r = metric_set_to_json(s->snapshot, array);
        return r;
}

/* ---- host samples and the history ------------------------------------------------------------- */

static void ring_resize(MetricsSampler *s, size_t size) {
        HostRingEntry *t;
        size_t keep;

        if (size == s->ring_size || size == 0)
                return;
        t = calloc(size, sizeof(HostRingEntry));
        if (!t)
                return (void) log_oom();
        keep = MIN(s->ring_n, size);
        for (size_t i = 0; i < keep; i++)
                t[i] = s->ring[(s->ring_start + s->ring_n - keep + i) % s->ring_size];
        free(s->ring);
        s->ring = t;
        s->ring_size = size;
        s->ring_start = 0;
        s->ring_n = keep;
}

static void ring_push(MetricsSampler *s, const HostSample *h, size_t size) {
        HostRingEntry e = {
                .realtime_usec = h->realtime_usec,
                .mem_total = h->host.mem_total,
                .mem_free = h->host.mem_free,
                .mem_available = h->host.mem_available,
                .committed_as = h->host.committed_as,
                .commit_limit = h->host.commit_limit,
                .swap_total = h->host.swap_total,
                .swap_free = h->host.swap_free,
        };

        ring_resize(s, size);
        if (!s->ring)
                return;
        if (s->ring_n < s->ring_size)
                s->ring[(s->ring_start + s->ring_n++) % s->ring_size] = e;
        else {
                s->ring[s->ring_start] = e;
                s->ring_start = (s->ring_start + 1) % s->ring_size;
        }
}

size_t metrics_sampler_history_size(MetricsSampler *s) {
        return s->ring_n;
}

int metrics_sampler_history_json(MetricsSampler *s, size_t limit, json_object *array) {
        limit = MIN(limit, s->ring_n);
        for (size_t i = s->ring_n - limit; i < s->ring_n; i++) {
                const HostRingEntry *e = &s->ring[(s->ring_start + i) % s->ring_size];
                _cleanup_json_ json_object *o = json_object_new_object();

                if (!o || json_add_uint(o, "realtimeUSec", e->realtime_usec) < 0 ||
                    json_add_uint(o, "memTotalBytes", e->mem_total) < 0 ||
                    json_add_uint(o, "memFreeBytes", e->mem_free) < 0 ||
                    json_add_uint(o, "memAvailableBytes", e->mem_available) < 0 ||
                    json_add_uint(o, "committedASBytes", e->committed_as) < 0 ||
                    json_add_uint(o, "commitLimitBytes", e->commit_limit) < 0 ||
                    json_add_uint(o, "swapTotalBytes", e->swap_total) < 0 ||
                    json_add_uint(o, "swapFreeBytes", e->swap_free) < 0 ||
                    json_object_array_add(array, TAKE_PTR(o)) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int arm_timer(MetricsSampler *s, sd_event_source **source, uint64_t interval, sd_event_time_handler_t cb,
                     const char *description) {
        int r;

        if (*source) {
                r = sd_event_source_set_time_relative(*source, interval);
                if (r >= 0)
                        r = sd_event_source_set_enabled(*source, SD_EVENT_ONESHOT);
                return r;
        }
        r = sd_event_add_time_relative(s->event, source, CLOCK_MONOTONIC, interval, 0, cb, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(*source, description);
        return 0;
}

static void sample_host(MetricsSampler *s, const MetricsSettings *set) {
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        MetricsGuestInput *in = NULL;
        size_t n = 0;
        HostSample h;
        int r;

        r = host_sample_read(set->proc_root, set->sys_root, &h);
        if (r < 0) {
                s->stats.host_errors++;
                if (r != s->last_host_error)
                        log_warning_errno(r, "Failed to sample host memory from %s and %s, keeping the last sample: %m",
                                          set->proc_root, set->sys_root);
                s->last_host_error = r;
        } else {
                if (s->last_host_error != 0)
                        log_info("Sampling host memory works again.");
                s->last_host_error = 0;
                host_sample_done(&s->host);
                s->host = h;
                s->have_host = true;
                s->stats.host_samples++;
                ring_push(s, &h, set->history);
        }

        /* The guests' resident memory and vCPU placement, with the same freshness as the host's. */
        r = fetch_guests(s, /* vcpus= */ true, &in, &n);
        if (r < 0) {
                log_warning_errno(r, "Failed to list the guests, keeping the last metrics snapshot: %m");
                return;
        }
        for (size_t i = 0; i < n; i++) {
                GuestData *g;

                s->stats.guest_errors += in[i].errors;
                if (!in[i].active || in[i].pid <= 0) {
                        if ((g = guest_data_find(s, in[i].name)))
                                guest_data_clear(g);
                        continue;
                }
                g = guest_data_for(s, &in[i]);
                if (!g) {
                        log_oom();
                        break;
                }
                sample_guest_proc(s, set->proc_root, g);
        }

        s->stats.host_duration_usec = now_usec(CLOCK_MONOTONIC) - start;
        r = build_snapshot(s, set->guest_states, in, n);
        if (r < 0)
                log_warning_errno(r, "Failed to build the metrics snapshot, keeping the last one: %m");
        metrics_guest_inputs_free(in, n);
}

static int on_host_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        MetricsSampler *s = userdata;
        MetricsSettings set;
        int r;

        s->ops.settings(s->userdata, &set);
        sample_host(s, &set);
        r = arm_timer(s, &s->host_timer, set.host_interval_usec, on_host_timer, "metrics-host-sampler");
        if (r < 0)
                log_error_errno(r, "Failed to re-arm the host sampler: %m");
        return 0;
}

static int on_guest_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        MetricsSampler *s = userdata;
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        MetricsGuestInput *in = NULL;
        bool numa_missing = false;
        MetricsSettings set;
        size_t n = 0;
        int r;

        s->ops.settings(s->userdata, &set);
        r = fetch_guests(s, /* vcpus= */ false, &in, &n);
        if (r < 0)
                log_warning_errno(r, "Failed to list the guests for the metrics sampler: %m");
        for (size_t i = 0; i < n; i++) {
                GuestData *g;

                if (!in[i].active || in[i].pid <= 0)
                        continue;
                g = guest_data_for(s, &in[i]);
                if (!g) {
                        log_oom();
                        break;
                }
                sample_guest_qmp(s, &in[i], g);
                if (!g->sample.have_numa)
                        numa_missing = true;
        }
        /* On NumaMapsIntervalSec, and at once for a guest that has no reading yet. */
        if (r >= 0 && (numa_missing || s->numa_last_monotonic == 0 ||
                       start - s->numa_last_monotonic >= set.numa_interval_usec)) {
                s->numa_last_monotonic = start;
                sample_guests_numa(s, set.proc_root, in, n);
        }
        metrics_guest_inputs_free(in, n);
        s->stats.guest_samples++;
        s->stats.guest_duration_usec = now_usec(CLOCK_MONOTONIC) - start;

        r = arm_timer(s, &s->guest_timer, set.guest_interval_usec, on_guest_timer, "metrics-guest-sampler");
        if (r < 0)
                log_error_errno(r, "Failed to re-arm the guest sampler: %m");
        return 0;
}

/* ---- the object -------------------------------------------------------------------------------- */

int metrics_sampler_new(MetricsSampler **ret, sd_event *event, const MetricsSamplerOps *ops, void *userdata) {
        MetricsSampler *s;

        if (!ops->settings || !ops->guests)
                return -EINVAL;
        s = calloc(1, sizeof(MetricsSampler));
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(event);
        s->ops = *ops;
        s->userdata = userdata;
        *ret = s;
        return 0;
}

int metrics_sampler_start(MetricsSampler *s) {
        MetricsSettings set;
        int r;

        s->ops.settings(s->userdata, &set);
        /* A first sample right away, so that the API has data as soon as the daemon is ready. */
        sample_host(s, &set);
        r = arm_timer(s, &s->host_timer, set.host_interval_usec, on_host_timer, "metrics-host-sampler");
        if (r < 0)
                return r;
        return arm_timer(s, &s->guest_timer, MIN(set.guest_interval_usec, USEC_PER_SEC), on_guest_timer,
                         "metrics-guest-sampler");
}

MetricsSampler *metrics_sampler_free(MetricsSampler *s) {
        if (!s)
                return NULL;
        /* Requests in flight belong to their QMP commands, whose callbacks each run exactly once (at the latest
         * when the guests' QMP connections close). They only forget the sampler here; the callbacks free them. */
        while (s->requests) {
                QmpRequest *r = s->requests;

                s->requests = r->next;
                r->sampler = NULL;
                r->prev = r->next = NULL;
        }
        s->numa_worker = worker_free(s->numa_worker); /* waits for a running thread */
        s->numa_batch = numa_batch_free(s->numa_batch);
        sd_event_source_disable_unref(s->host_timer);
        sd_event_source_disable_unref(s->guest_timer);
        for (size_t i = 0; i < s->n_guests; i++)
                guest_data_done(&s->guests[i]);
        free(s->guests);
        host_sample_done(&s->host);
        free(s->ring);
        metric_set_free(s->snapshot);
        byte_buffer_done(&s->snapshot_text);
        sd_event_unref(s->event);
        return mfree(s);
}

const HostSample *metrics_sampler_host(MetricsSampler *s) {
        return s->have_host ? &s->host : NULL;
}

int metrics_sampler_last_error(MetricsSampler *s) {
        return s->last_host_error;
}

void metrics_sampler_stats(MetricsSampler *s, MetricsSamplerStats *ret) {
        *ret = s->stats;
        ret->have_host = s->have_host;
        ret->last_host_realtime_usec = s->have_host ? s->host.realtime_usec : 0;
}
