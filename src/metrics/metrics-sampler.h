/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The metrics sampler: host memory every host interval (with each guest's /proc status, so that RSS is as fresh
 * as the host's), the guests' KVM statistics (QMP query-stats, asynchronous) every guest interval and their
 * numa_maps (in a worker thread) every NUMA interval; a history ring of host samples; and after each host
 * sample an immutable snapshot (MetricSet) that requests render as they are, its text form rendered once.
 *
 * It knows guests only through its owner's callbacks (MetricsSamplerOps): the settings and the list of
 * guests (MetricsGuestInput, metrics-render.h) are asked for at every tick, so a reload takes effect at the
 * next one. Nothing here is read in a request path. */

#include <systemd/sd-event.h>

#include "basic/buffer.h"
#include "metrics/metrics-render.h"

typedef struct MetricsSampler MetricsSampler;

typedef struct MetricsSettings {
        const char *proc_root;          /* "/proc" (tests point it elsewhere) */
        const char *sys_root;           /* "/sys" */
        uint64_t host_interval_usec;
        uint64_t guest_interval_usec;
        uint64_t numa_interval_usec;    /* numa_maps, at most once per guest tick */
        size_t history;                 /* host samples kept for the history */
        const char *const *guest_states;/* every guest state name, NULL-terminated */
} MetricsSettings;

typedef struct MetricsSamplerOps {
        /* The settings now; strings must stay valid until the next call. */
        void (*settings)(void *userdata, MetricsSettings *ret);
        /* Every defined guest, in a stable order (the snapshot's), as an array the sampler frees with
         * metrics_guest_inputs_free(). vcpus: fill in the vCPU placement too (on the host tick). */
        int (*guests)(void *userdata, bool vcpus, MetricsGuestInput **ret, size_t *ret_n);
} MetricsSamplerOps;

int metrics_sampler_new(MetricsSampler **ret, sd_event *event, const MetricsSamplerOps *ops, void *userdata);
/* QMP commands in flight keep running to their callbacks, which then only free themselves; a numa_maps
 * reader thread still running is waited for. */
MetricsSampler *metrics_sampler_free(MetricsSampler *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MetricsSampler *, metrics_sampler_free);

/* Takes a first host sample right away and arms both timers. */
int metrics_sampler_start(MetricsSampler *s);

/* The last host sample, NULL while there is none; then metrics_sampler_last_error() says why (0: no sample
 * taken yet). */
const HostSample *metrics_sampler_host(MetricsSampler *s);
int metrics_sampler_last_error(MetricsSampler *s);
void metrics_sampler_stats(MetricsSampler *s, MetricsSamplerStats *ret);

/* The last limit host samples of the history (all: SIZE_MAX), oldest first, appended to array as
 * GetHostMemoryHistory's sample objects. */
int metrics_sampler_history_json(MetricsSampler *s, size_t limit, json_object *array);
size_t metrics_sampler_history_size(MetricsSampler *s);

/* The daemon families (built now from d and the sampler's counters) and then the last snapshot: as the
 * Prometheus text format appended to out (at most max_size bytes), or as JSON appended to array. */
int metrics_sampler_render_text(MetricsSampler *s, const MetricsDaemonInput *d, ByteBuffer *out, size_t max_size);
int metrics_sampler_render_json(MetricsSampler *s, const MetricsDaemonInput *d, json_object *array);
