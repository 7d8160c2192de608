/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The typed metrics API: the families rendered from plain per-guest inputs (metrics-render.h), and the
 * sampler (metrics-sampler.h) driven by its callbacks on a real event loop against the fixture tree and this
 * process as the "guest". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "metrics/metrics-render.h"
#include "metrics/metrics-sampler.h"

static const char *data_dir;

static char *data(const char *name) {
        static char buf[4096];
        snprintf(buf, sizeof(buf), "%s/%s", data_dir, name);
        return buf;
}

static const char *const states[] = { "defined", "running", "stopped", NULL };

static double get(const MetricSet *s, const char *name, const char *const *labels) {
        double v = -1;

        assert_int_equal(metric_set_get(s, name, labels, &v), 0);
        return v;
}

static bool has(const MetricSet *s, const char *name, const char *const *labels) {
        double v;

        return metric_set_get(s, name, labels, &v) >= 0;
}

static MetricsGuestInput guest(const char *name, bool active) {
        return (MetricsGuestInput) {
                .name = name,
                .state = active ? "running" : "stopped",
                .restarts = 3,
                .active = active,
                .pid = active ? 4242 : 0,
                .n_vcpus = 2,
                .have_memory = active,
                .memory_bytes = 1 << 30,
                .balloon = { .actual_bytes = METRICS_UNSET },
                .numa = { .migrations_total = 5, .bytes_moved = 4096 },
        };
}

static void test_render_guest_stopped(void **state) {
        _cleanup_(metric_set_freep) MetricSet *s = metric_set_new();
        MetricsGuestInput g = guest("web", false);

        g.balloon_enabled = true;
        g.balloon.steps_total = 7;
        assert_int_equal(metrics_render_guest(s, &g, states, NULL), 0);
        metric_set_seal(s);

        assert_true(get(s, "memvisor_guest_state", STRV("web", "stopped")) == 1);
        assert_true(get(s, "memvisor_guest_state", STRV("web", "running")) == 0);
        assert_true(get(s, "memvisor_guest_restarts_total", STRV("web")) == 3);
        assert_true(get(s, "memvisor_guest_migrations_total", STRV("web")) == 5);
        assert_true(get(s, "memvisor_guest_migration_bytes_total", STRV("web")) == 4096);
        assert_true(get(s, "memvisor_guest_balloon_steps_total", STRV("web")) == 7);
        /* Not running: nothing about a process. */
        assert_false(has(s, "memvisor_guest_vcpus", STRV("web")));
        assert_false(has(s, "memvisor_guest_memory_size_bytes", STRV("web")));
        assert_false(has(s, "memvisor_guest_balloon_target_bytes", STRV("web")));
}

static void test_render_guest_balloon(void **state) {
        _cleanup_(metric_set_freep) MetricSet *s = metric_set_new(), *t = metric_set_new(), *u = metric_set_new();
        MetricsGuestInput g = guest("web", true);

        /* Balloon=no: no step counters, no balloon series. */
        assert_int_equal(metrics_render_guest(s, &g, states, NULL), 0);
        metric_set_seal(s);
        assert_false(has(s, "memvisor_guest_balloon_steps_total", STRV("web")));
        assert_false(has(s, "memvisor_guest_balloon_actual_bytes", STRV("web")));
        assert_true(get(s, "memvisor_guest_memory_size_bytes", STRV("web")) == 1 << 30);
        assert_true(get(s, "memvisor_guest_vcpus", STRV("web")) == 2);

        /* Tracked, the actual size not known yet: the target only. */
        g.balloon_enabled = true;
        g.balloon.tracking = true;
        g.balloon.target_bytes = 512 << 20;
        assert_int_equal(metrics_render_guest(t, &g, states, NULL), 0);
        metric_set_seal(t);
        assert_true(get(t, "memvisor_guest_balloon_target_bytes", STRV("web")) == 512 << 20);
        assert_false(has(t, "memvisor_guest_balloon_actual_bytes", STRV("web")));
        assert_false(has(t, "memvisor_guest_balloon_free_bytes", STRV("web")));

        /* The balloon module's actual size and the guest's statistics, those it reports. */
        g.balloon.actual_bytes = 600 << 20;
        g.balloon.stats_valid = true;
        g.balloon.free_bytes = 100 << 20;
        g.balloon.available_bytes = METRICS_UNSET;
        g.balloon.total_bytes = g.balloon.disk_caches_bytes = METRICS_UNSET;
        g.balloon.swap_in_bytes = g.balloon.swap_out_bytes = METRICS_UNSET;
        g.balloon.major_faults = g.balloon.minor_faults = METRICS_UNSET;
        g.balloon.stats_last_update_sec = 1700000000;
        assert_int_equal(metrics_render_guest(u, &g, states, NULL), 0);
        metric_set_seal(u);
        assert_true(get(u, "memvisor_guest_balloon_actual_bytes", STRV("web")) == 600 << 20);
        assert_true(get(u, "memvisor_guest_balloon_free_bytes", STRV("web")) == 100 << 20);
        assert_false(has(u, "memvisor_guest_balloon_available_bytes", STRV("web")));
        assert_true(get(u, "memvisor_guest_balloon_stats_timestamp_seconds", STRV("web")) == 1700000000);
}

static void test_render_guest_process(void **state) {
        _cleanup_(metric_set_freep) MetricSet *s = metric_set_new(), *t = metric_set_new();
        MetricsGuestInput g = guest("db", true);
        MetricsGuestSample sample = { .pid = 4242, .have_status = true, .status = { .vm_rss = 123456 } };
        MetricsVcpu vcpus[2] = {
                { .index = 0, .have_affinity = true, .pinned = true, .have_last_cpu = true, .last_cpu = 3 },
                { .index = 1, .have_affinity = true, .pinned = false },
        };

        CPU_ZERO(&vcpus[0].allowed);
        CPU_SET(2, &vcpus[0].allowed);
        CPU_SET(3, &vcpus[0].allowed);
        CPU_ZERO(&vcpus[1].allowed);
        for (unsigned c = 0; c < 8; c++)
                CPU_SET(c, &vcpus[1].allowed);
        g.vcpus = vcpus;
        g.n_vcpu_samples = 2;

        assert_int_equal(metrics_render_guest(s, &g, states, &sample), 0);
        metric_set_seal(s);
        assert_true(get(s, "memvisor_guest_resident_bytes", STRV("db")) == 123456);
        assert_true(get(s, "memvisor_guest_vcpu_allowed_cpus", STRV("db", "0")) == 2);
        assert_true(get(s, "memvisor_guest_vcpu_allowed_cpus", STRV("db", "1")) == 8);
        /* One series per CPU of a pinned vCPU only. */
        assert_true(get(s, "memvisor_guest_vcpu_pinned_cpu", STRV("db", "0", "2")) == 1);
        assert_true(get(s, "memvisor_guest_vcpu_pinned_cpu", STRV("db", "0", "3")) == 1);
        assert_false(has(s, "memvisor_guest_vcpu_pinned_cpu", STRV("db", "1", "0")));
        assert_true(get(s, "memvisor_guest_vcpu_last_cpu", STRV("db", "0")) == 3);
        assert_false(has(s, "memvisor_guest_vcpu_last_cpu", STRV("db", "1")));

        /* Readings of another process (the guest restarted since) are not shown. */
        sample.pid = 4243;
        g.vcpus = NULL;
        g.n_vcpu_samples = 0;
        assert_int_equal(metrics_render_guest(t, &g, states, &sample), 0);
        metric_set_seal(t);
        assert_false(has(t, "memvisor_guest_resident_bytes", STRV("db")));
        assert_true(get(t, "memvisor_guest_vcpus", STRV("db")) == 2);
}

static void test_render_daemon(void **state) {
        _cleanup_(metric_set_freep) MetricSet *s = metric_set_new(), *t = metric_set_new();
        MetricsSamplerStats st = { .host_samples = 9, .guest_errors = 2, .have_host = true,
                                   .last_host_realtime_usec = 5 * USEC_PER_SEC };
        MetricsDaemonInput d = { .varlink_connections = 1, .varlink_calls = 40 };

        assert_int_equal(metrics_render_daemon(s, &st, &d), 0);
        assert_true(get(s, "memvisor_daemon_samples_total", STRV("host")) == 9);
        assert_true(get(s, "memvisor_daemon_sample_errors_total", STRV("guest")) == 2);
        assert_true(get(s, "memvisor_daemon_varlink_calls_total", NULL) == 40);
        assert_true(get(s, "memvisor_daemon_last_sample_timestamp_seconds", NULL) == 5);
        assert_false(has(s, "memvisor_daemon_scrapes_total", NULL));     /* no exporter */

        d.exporter = true;
        d.scrapes = 4;
        d.responses[0] = (MetricsCodeCount) { 200, 3 };
        d.responses[1] = (MetricsCodeCount) { 404, 1 };
        d.n_responses = 2;
        assert_int_equal(metrics_render_daemon(t, &st, &d), 0);
        assert_true(get(t, "memvisor_daemon_scrapes_total", NULL) == 4);
        assert_true(get(t, "memvisor_daemon_http_responses_total", STRV("404")) == 1);
        /* No experiment store: no experiment series. */
        assert_false(has(t, "memvisor_experiments_running", NULL));
        assert_false(has(t, "memvisor_experiments_ended_total", STRV("completed")));
}

static void test_render_experiments(void **state) {
        _cleanup_(metric_set_freep) MetricSet *s = metric_set_new();
        _cleanup_(byte_buffer_done) ByteBuffer b = {};
        const MetricsExperimentGuest guests[] = { { "db", 7 }, { "web", 0 } };
        MetricsSamplerStats st = {};
        MetricsDaemonInput d = {
                .experiments = {
                        .enabled = true,
                        .running = 1,
                        .completed = 3,
                        .failed = 0,
                        .cancelled = 2,
                        .stored = 6,
                        .stored_bytes = UINT64_C(5000000000),
                        .guests = guests,
                        .n_guests = ELEMENTSOF(guests),
                },
        };
        _cleanup_free_ char *t = NULL;

        assert_int_equal(metrics_render_daemon(s, &st, &d), 0);
        assert_true(get(s, "memvisor_experiments_running", NULL) == 1);
        assert_true(get(s, "memvisor_experiment_iterations_total", STRV("db")) == 7);
        /* A guest without iterations has its series at 0, so that rate() sees the first one. */
        assert_true(get(s, "memvisor_experiment_iterations_total", STRV("web")) == 0);
        assert_false(has(s, "memvisor_experiment_iterations_total", STRV("other")));
        assert_true(get(s, "memvisor_experiments_ended_total", STRV("completed")) == 3);
        assert_true(get(s, "memvisor_experiments_ended_total", STRV("cancelled")) == 2);
        /* Every end state is there, the ones that never happened at 0; no others. */
        assert_true(get(s, "memvisor_experiments_ended_total", STRV("failed")) == 0);
        assert_false(has(s, "memvisor_experiments_ended_total", STRV("interrupted")));
        assert_false(has(s, "memvisor_experiments_ended_total", STRV("running")));
        assert_true(get(s, "memvisor_experiments_stored", NULL) == 6);
        assert_true(get(s, "memvisor_experiments_stored_bytes", NULL) == 5e9);

        /* The text form: types as the registry says, the families sorted. */
        assert_int_equal(metric_set_render_text(s, &b, SIZE_MAX), 0);
        t = strndup(byte_buffer_head(&b), byte_buffer_size(&b));
        assert_non_null(t);
        assert_non_null(strstr(t, "# TYPE memvisor_experiments_running gauge\nmemvisor_experiments_running 1\n"));
        assert_non_null(strstr(t, "# TYPE memvisor_experiment_iterations_total counter\n"
                                  "memvisor_experiment_iterations_total{vm=\"db\"} 7\n"
                                  "memvisor_experiment_iterations_total{vm=\"web\"} 0\n"));
        assert_non_null(strstr(t, "# TYPE memvisor_experiments_ended_total counter\n"
                                  "memvisor_experiments_ended_total{state=\"cancelled\"} 2\n"
                                  "memvisor_experiments_ended_total{state=\"completed\"} 3\n"
                                  "memvisor_experiments_ended_total{state=\"failed\"} 0\n"));
        assert_non_null(strstr(t, "memvisor_experiments_stored_bytes 5000000000\n"));
        assert_true(strstr(t, "memvisor_daemon_samples_total") < strstr(t, "memvisor_experiment_iterations_total"));
        assert_true(strstr(t, "memvisor_experiment_iterations_total") < strstr(t, "memvisor_experiments_ended_total"));
}

/* ---- the sampler on an event loop ----------------------------------------------------------------- */

typedef struct Owner {
        const char *proc_root;
        size_t history;
        bool active;
        unsigned guest_calls, vcpu_calls;
        int fail;
} Owner;

static void owner_settings(void *userdata, MetricsSettings *ret) {
        Owner *o = userdata;

        *ret = (MetricsSettings) {
                .proc_root = o->proc_root,
                .sys_root = data("root/sys"),
                .host_interval_usec = 50 * USEC_PER_MSEC,
                .guest_interval_usec = 50 * USEC_PER_MSEC,
                .numa_interval_usec = 50 * USEC_PER_MSEC,
                .history = o->history,
                .guest_states = states,
        };
}

static int owner_guests(void *userdata, bool vcpus, MetricsGuestInput **ret, size_t *ret_n) {
        Owner *o = userdata;
        MetricsGuestInput *in;

        if (o->fail < 0)
                return o->fail;
        in = calloc(1, sizeof(MetricsGuestInput));
        assert_non_null(in);
        *in = guest("self", o->active);
        in->pid = o->active ? getpid() : 0;
        in->errors = 1;         /* counted as guest sample errors, on every call */
        o->guest_calls++;
        if (vcpus) {
                o->vcpu_calls++;
                in->vcpus = calloc(1, sizeof(MetricsVcpu));
                assert_non_null(in->vcpus);
                in->n_vcpu_samples = 1;
        }
        *ret = in;
        *ret_n = 1;
        return 0;
}

static const MetricsSamplerOps owner_ops = { .settings = owner_settings, .guests = owner_guests };

static void run_until(sd_event *e, MetricsSampler *s, uint64_t min_host_samples) {
        MetricsSamplerStats st;

        for (unsigned i = 0; i < 200; i++) {
                metrics_sampler_stats(s, &st);
                if (st.host_samples >= min_host_samples && st.guest_samples > 0)
                        return;
                assert_true(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0);
        }
        fail_msg("the sampler did not tick");
}

static bool text_has(MetricsSampler *s, const char *needle) {
        _cleanup_(byte_buffer_done) ByteBuffer b = {};
        MetricsDaemonInput d = {};
        bool found;
        char *t;

        assert_int_equal(metrics_sampler_render_text(s, &d, &b, SIZE_MAX), 0);
        t = strndup(byte_buffer_head(&b), byte_buffer_size(&b));
        assert_non_null(t);
        found = strstr(t, needle);
        free(t);
        return found;
}

static void test_sampler(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(metrics_sampler_freep) MetricsSampler *s = NULL;
        _cleanup_json_ json_object *history = json_object_new_array(), *all = json_object_new_array();
        _cleanup_free_ char *proc = strdup("/proc");
        Owner o = { .proc_root = proc, .history = 2, .active = true };
        MetricsSamplerStats st;
        const HostSample *h;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(metrics_sampler_new(&s, e, &owner_ops, &o), 0);
        assert_null(metrics_sampler_host(s));
        assert_int_equal(metrics_sampler_last_error(s), 0);

        /* The first host sample at once, with the guests' /proc reads and their vCPUs. */
        assert_int_equal(metrics_sampler_start(s), 0);
        h = metrics_sampler_host(s);
        assert_non_null(h);
        assert_true(h->host.mem_total > 0);
        assert_int_equal(o.vcpu_calls, 1);
        metrics_sampler_stats(s, &st);
        assert_int_equal(st.host_samples, 1);
        assert_int_equal(st.guest_errors, 1);
        assert_true(text_has(s, "memvisor_guest_resident_bytes{vm=\"self\"}"));
        assert_true(text_has(s, "memvisor_guest_state{vm=\"self\",state=\"running\"} 1"));
        assert_true(text_has(s, "memvisor_host_memory_total_bytes"));
        assert_true(text_has(s, "memvisor_daemon_samples_total{sampler=\"host\"} 1"));

        /* Ticks: the ring keeps HostHistory= samples, asked for at every tick. */
        run_until(e, s, 4);
        assert_int_equal(metrics_sampler_history_size(s), 2);
        o.history = 3;
        run_until(e, s, 8);
        assert_int_equal(metrics_sampler_history_size(s), 3);
        assert_int_equal(metrics_sampler_history_json(s, 1, history), 0);
        assert_int_equal(json_object_array_length(history), 1);
        assert_int_equal(metrics_sampler_history_json(s, SIZE_MAX, all), 0);
        assert_int_equal(json_object_array_length(all), 3);

        /* Stopped: the process series go, the state stays. */
        o.active = false;
        run_until(e, s, 10);
        run_until(e, s, 11);
        assert_false(text_has(s, "memvisor_guest_resident_bytes{vm=\"self\"}"));
        assert_true(text_has(s, "memvisor_guest_state{vm=\"self\",state=\"stopped\"} 1"));

        /* A host sample that fails keeps the last one and says why. */
        o.proc_root = data("no-proc");
        run_until(e, s, 11);
        for (unsigned i = 0; i < 200 && metrics_sampler_last_error(s) == 0; i++)
                assert_true(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0);
        assert_int_equal(metrics_sampler_last_error(s), -ENOENT);
        assert_non_null(metrics_sampler_host(s));
        metrics_sampler_stats(s, &st);
        assert_true(st.host_errors > 0);

        /* The owner failing to list its guests keeps the last snapshot. */
        o.proc_root = proc;
        o.fail = -ENOMEM;
        assert_true(sd_event_run(e, 200 * USEC_PER_MSEC) >= 0);
        assert_true(text_has(s, "memvisor_guest_state{vm=\"self\",state=\"stopped\"} 1"));
}

static void test_sampler_new_invalid(void **state) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        MetricsSampler *s = NULL;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(metrics_sampler_new(&s, e, &(MetricsSamplerOps) { .settings = owner_settings }, NULL),
                         -EINVAL);
        assert_null(s);
        assert_null(metrics_sampler_free(NULL));
}

int main(int argc, char *argv[]) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_render_guest_stopped),
                cmocka_unit_test(test_render_guest_balloon),
                cmocka_unit_test(test_render_guest_process),
                cmocka_unit_test(test_render_daemon),
                cmocka_unit_test(test_render_experiments),
                cmocka_unit_test(test_sampler),
                cmocka_unit_test(test_sampler_new_invalid),
        };

        data_dir = getenv("METRICS_TEST_DATA") ?: (argc > 1 ? argv[1] : "tests/data/metrics");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
