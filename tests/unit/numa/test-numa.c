/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/numa: CPU lists and pin maps, topology from a fake sysfs tree, task stat and numa_maps
 * parsers on fixtures, the migration summary arithmetic, and pinning the test's own thread. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "numa/cpu-set.h"
#include "numa/numa-migrate.h"
#include "numa/numa-perf.h"
#include "numa/numa-pin.h"
#include "numa/numa-placement.h"
#include "numa/numa-topology.h"

static const char *data_dir;

static char *data_path(const char *name) {
        char *p;
        assert_true(asprintf(&p, "%s/%s", data_dir, name) > 0);
        return p;
}

static void check_list(const char *in, const char *canonical) {
        CpuSet s;
        char *out;

        assert_int_equal(cpu_list_parse(in, &s), 0);
        assert_int_equal(cpu_list_format(&s, &out), 0);
        assert_string_equal(out, canonical);
        free(out);
}

static void test_cpu_list(void **state) {
        CpuSet s;

        check_list("0", "0");
        check_list("0-3", "0-3");
        check_list("3,2,1,0", "0-3");
        check_list("0-1, 4 ,6-7,8", "0-1,4,6-8");
        check_list("1023", "1023");
        assert_int_equal(cpu_list_parse("", &s), -EINVAL);
        assert_int_equal(cpu_list_parse("3-1", &s), -EINVAL);
        assert_int_equal(cpu_list_parse("1,", &s), -EINVAL);
        assert_int_equal(cpu_list_parse("-1", &s), -EINVAL);
        assert_int_equal(cpu_list_parse("a", &s), -EINVAL);
        assert_int_equal(cpu_list_parse("1024", &s), -ERANGE);
        assert_int_equal(cpu_list_parse("0-1024", &s), -ERANGE);
        assert_int_equal(cpu_list_parse("0-3,8", &s), 0);
        assert_int_equal(cpu_set_count(&s), 5);
        assert_int_equal(cpu_set_last(&s), 8);
        assert_true(cpu_set_contains(&s, 8));
        assert_false(cpu_set_contains(&s, 4));
}

static void test_pin_map(void **state) {
        VcpuPinMap m = {};
        char *out, *bad = NULL;

        assert_int_equal(vcpu_pin_map_parse("0:2 1:3", &m, NULL), 0);
        assert_int_equal(m.n, 2);
        assert_true(cpu_set_contains(&vcpu_pin_map_find(&m, 1)->cpus, 3));
        vcpu_pin_map_done(&m);

        /* the CLI's spelling, out of order, with lists */
        assert_int_equal(vcpu_pin_map_parse("  3=4-5,7\t0=1 ", &m, NULL), 0);
        assert_int_equal(vcpu_pin_map_format(&m, &out), 0);
        assert_string_equal(out, "0:1 3:4-5,7");
        free(out);
        assert_null(vcpu_pin_map_find(&m, 1));
        vcpu_pin_map_done(&m);

        assert_int_equal(vcpu_pin_map_parse("0:1 0:2", &m, &bad), -EEXIST);
        assert_string_equal(bad, "0:2");
        free(bad);
        bad = NULL;
        assert_int_equal(vcpu_pin_map_parse("0=x", &m, &bad), -EINVAL);
        assert_string_equal(bad, "0=x");
        free(bad);
        bad = NULL;
        assert_int_equal(vcpu_pin_map_parse("2", &m, NULL), -EINVAL);
        assert_int_equal(vcpu_pin_map_parse(":2", &m, NULL), -EINVAL);
        assert_int_equal(vcpu_pin_map_parse("", &m, NULL), -EINVAL);
        assert_int_equal(vcpu_pin_map_parse("512:0", &m, NULL), -ERANGE);
        assert_int_equal(vcpu_pin_map_parse("0:2000", &m, NULL), -ERANGE);
}

static void test_topology(void **state) {
        NumaTopology *t = NULL;
        char *root = data_path("sysfs2"), *cpus;
        json_object *j;

        assert_int_equal(numa_topology_read(root, &t), 0);
        assert_int_equal(t->n_nodes, 2);
        assert_int_equal(t->nodes[1].id, 1);
        assert_int_equal(t->nodes[0].mem_total, 1048576ULL * 1024);
        assert_int_equal(t->nodes[1].mem_free, 1048576ULL * 1024);
        assert_int_equal(t->nodes[0].n_distances, 2);
        assert_int_equal(t->nodes[0].distances[1], 21);
        assert_int_equal(numa_topology_node_of_cpu(t, 3), 1);
        assert_int_equal(numa_topology_node_of_cpu(t, 9), -ENOENT);
        assert_int_equal(cpu_list_format(&t->nodes[1].cpus, &cpus), 0);
        assert_string_equal(cpus, "2-3");
        free(cpus);
        assert_int_equal(numa_topology_to_json(t, &j), 0);
        assert_string_equal(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN),
                            "{\"nodes\":[{\"node\":0,\"cpus\":\"0-1\",\"memTotalBytes\":1073741824,"
                            "\"memFreeBytes\":536870912,\"distances\":[10,21]},{\"node\":1,\"cpus\":\"2-3\","
                            "\"memTotalBytes\":2147483648,\"memFreeBytes\":1073741824,\"distances\":[21,10]}],"
                            "\"onlineCPUs\":\"0-3\"}");
        json_object_put(j);
        numa_topology_free(t);
        free(root);

        /* a kernel without NUMA */
        root = data_path("flat");
        assert_int_equal(numa_topology_read(root, &t), 0);
        assert_int_equal(t->n_nodes, 1);
        assert_int_equal(t->nodes[0].mem_total, 4096 * 1024);
        assert_true(cpu_set_contains(&t->nodes[0].cpus, 1));
        numa_topology_free(t);
        free(root);

        assert_int_equal(numa_topology_read("/nonexistent-root", &t), -ENOENT);
}

static void test_task_stat(void **state) {
        char *p;
        unsigned cpu = 99;

        p = data_path("stat-cpu3");
        assert_int_equal(task_stat_read_last_cpu(p, &cpu), 0);
        assert_int_equal(cpu, 3);
        free(p);
        p = data_path("stat-parens");
        assert_int_equal(task_stat_read_last_cpu(p, &cpu), 0);
        assert_int_equal(cpu, 1);
        free(p);
        p = data_path("stat-short");
        assert_int_equal(task_stat_read_last_cpu(p, &cpu), -EINVAL);
        free(p);
        p = data_path("missing");
        assert_int_equal(task_stat_read_last_cpu(p, &cpu), -ENOENT);
        free(p);
        assert_int_equal(task_stat_parse_last_cpu("garbage", &cpu), -EINVAL);
        /* our own thread, through /proc */
        assert_int_equal(task_stat_read_last_cpu("/proc/thread-self/stat", &cpu), 0);
        assert_true(cpu < CPU_SET_MAX);
}

static void test_numa_maps(void **state) {
        NumaResidency r;
        char *p;

        p = data_path("numa_maps");
        assert_int_equal(numa_residency_read(p, &r), 0);
        free(p);
        assert_int_equal(r.pages[0], 200000 + 100 + 3);
        assert_int_equal(r.pages[1], 62144 + 2);
        assert_int_equal(r.bytes[0], (200000ULL + 100 + 3) * 4096);
        assert_int_equal(r.bytes[1], 62144ULL * 4096 + 2ULL * 2048 * 1024);
        assert_int_equal(r.total_bytes, r.bytes[0] + r.bytes[1]);
        assert_int_equal(r.huge_bytes, 2ULL * 2048 * 1024);
        assert_int_equal(r.max_node, 2);
        assert_int_equal(numa_residency_bytes_on(&r, 2), r.bytes[1]);

        p = data_path("numa_maps-bad");
        assert_int_equal(numa_residency_read(p, &r), -EINVAL);
        free(p);
        assert_int_equal(numa_residency_parse("7f00 default N64=1 kernelpagesize_kB=4\n", &r), -ERANGE);
        assert_int_equal(numa_residency_parse("", &r), 0);
        assert_int_equal(r.total_bytes, 0);
        p = data_path("missing");
        assert_int_equal(numa_residency_read(p, &r), -ENOENT);
        free(p);
        /* our own process */
        assert_int_equal(numa_residency_read("/proc/self/numa_maps", &r), 0);
        assert_true(r.total_bytes > 0);
}

static void test_summary(void **state) {
        NumaResidency before = {}, after = {};
        NumaMigrateSummary s;

        before.pages[0] = 1000; before.bytes[0] = 1000 * 4096;
        before.pages[1] = 10;   before.bytes[1] = 10 * 4096;
        before.total_bytes = 1010 * 4096;
        after.pages[0] = 30;    after.bytes[0] = 30 * 4096;
        after.pages[1] = 980;   after.bytes[1] = 980 * 4096;
        after.total_bytes = 1010 * 4096;

        numa_migrate_summarize(&before, &after, 1, 2, 500000, &s);
        assert_int_equal(s.pages_moved, 970);
        assert_int_equal(s.bytes_moved, 970 * 4096);
        assert_int_equal(s.pages_not_moved, 30);
        assert_int_equal(s.bytes_not_moved, 30 * 4096);
        assert_int_equal(s.bytes_before_from, 1000 * 4096);
        assert_int_equal(s.bytes_on_target_after, 980 * 4096);
        assert_true(s.fraction_on_target > 0.970 && s.fraction_on_target < 0.971);
        assert_true(s.bytes_per_sec > 970.0 * 4096 * 2 - 1 && s.bytes_per_sec < 970.0 * 4096 * 2 + 1);

        /* nothing resident, zero duration: no division by zero, nothing moved */
        numa_migrate_summarize(&(NumaResidency) {}, &(NumaResidency) {}, 1, 2, 0, &s);
        assert_int_equal(s.bytes_moved, 0);
        assert_true(s.fraction_on_target == 0 && s.bytes_per_sec == 0);

        /* memory that grew on the source node counts as not moved, never as negative movement */
        numa_migrate_summarize(&after, &before, 2, 1, 1000, &s);
        assert_int_equal(s.pages_moved, 970);
        numa_migrate_summarize(&before, &after, 2, 1, 1000, &s);
        assert_int_equal(s.pages_moved, 0);
        assert_int_equal(s.pages_not_moved, 980);
}

static void test_pin_self(void **state) {
        CpuSet all, one = {}, eff;
        pid_t tid = gettid();

        assert_int_equal(thread_get_affinity(tid, &all), 0);
        assert_false(cpu_set_is_empty(&all));
        cpu_set_add(&one, (unsigned) cpu_set_last(&all));
        assert_int_equal(thread_pin(tid, &one, &eff), 0);
        assert_true(cpu_set_equal(&eff, &one));
        assert_int_equal(thread_pin(tid, &all, NULL), 0);
        assert_int_equal(thread_pin(tid, &(CpuSet) {}, NULL), -EINVAL);
}

static void test_threads(void **state) {
        pid_t *tids = NULL;
        size_t n = 0;
        bool found = false;

        assert_int_equal(process_list_threads("/proc", getpid(), &tids, &n), 0);
        for (size_t i = 0; i < n; i++)
                found = found || tids[i] == gettid();
        assert_true(found);
        free(tids);
        assert_int_equal(process_list_threads("/nonexistent", getpid(), &tids, &n), -ENOENT);
}

static void test_perf_unavailable(void **state) {
        NumaPerf *p = NULL;
        uint64_t a, b;
        pid_t self = gettid();

        /* A root without tracefs: unavailable with a reason, never zeros. */
        assert_int_equal(numa_perf_open("/nonexistent-root", &self, 1, &p), 0);
        assert_non_null(numa_perf_unavailable_reason(p));
        assert_non_null(strstr(numa_perf_unavailable_reason(p), "tracefs"));
        assert_int_equal(numa_perf_read(p, &a, &b), -EOPNOTSUPP);
        numa_perf_free(p);
        assert_int_equal(numa_perf_open("/", NULL, 0, &p), 0);
        assert_non_null(numa_perf_unavailable_reason(p));
        numa_perf_free(p);
}

/* The metrics' view of vCPU threads: this thread as vCPU 0, a vCPU QEMU did not report as vCPU 1. */
static void test_vcpus_metrics(void **state) {
        NumaVcpuThread vcpus[] = { { .index = 0, .thread_id = gettid() }, { .index = 1, .thread_id = 0 } };
        MetricsVcpu out[2] = {};
        CpuSet own;

        assert_int_equal(thread_get_affinity(0, &own), 0);
        assert_int_equal(numa_vcpus_metrics("/proc", getpid(), vcpus, 2, NULL, &own, out), 0);
        assert_int_equal(out[0].index, 0);
        assert_true(out[0].have_affinity);
        assert_false(out[0].pinned);            /* the daemon's own affinity */
        assert_true(out[0].have_last_cpu);
        assert_int_equal(out[1].index, 1);
        assert_false(out[1].have_affinity);
        assert_false(out[1].have_last_cpu);

        memset(out, 0, sizeof(out));
        assert_int_equal(numa_vcpus_metrics("/proc", getpid(), vcpus, 2, "0:0", &own, out), 0);
        assert_true(out[0].pinned);             /* named by the pin map */
}

int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cpu_list),
                cmocka_unit_test(test_pin_map),
                cmocka_unit_test(test_topology),
                cmocka_unit_test(test_task_stat),
                cmocka_unit_test(test_numa_maps),
                cmocka_unit_test(test_summary),
                cmocka_unit_test(test_pin_self),
                cmocka_unit_test(test_threads),
                cmocka_unit_test(test_perf_unavailable),
                cmocka_unit_test(test_vcpus_metrics),
        };

        data_dir = argc > 1 ? argv[1] : "tests/data/numa";
        return cmocka_run_group_tests(tests, NULL, NULL);
}
