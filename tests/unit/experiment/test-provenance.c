/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for src/experiment/provenance: the fixture trees of tests/data/provenance (an Intel host with two
 * NUMA nodes and kvm_intel, exact values; a partial AMD host whose missing and malformed files must become
 * unavailable items with their reasons; a root that does not exist), the real host (the kernel release is
 * uname's), the QEMU version runner, and the diff of two provenance JSON objects. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/json-util.h"
#include "build-config.h"
#include "experiment/provenance.h"

static const char *data_dir;

static char *data_path(const char *name) {
        char *p;
        assert_true(asprintf(&p, "%s/%s", data_dir, name) > 0);
        return p;
}

static uint64_t realtime_usec(void) {
        struct timespec ts;
        assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
        return (uint64_t) ts.tv_sec * 1000000U + (uint64_t) ts.tv_nsec / 1000U;
}

/* The JSON value at a dotted path ("kvm.vendor.kvm_intel.ept"); fails the test when absent. */
static json_object *at(json_object *o, const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        char *s = copy, *k;

        assert_non_null(copy);
        while ((k = strsep(&s, "."))) {
                json_object *next;
                if (!json_object_object_get_ex(o, k, &next))
                        fail_msg("no \"%s\" in %s", k, path);
                o = next;
        }
        return o;
}

static void assert_json_string(json_object *o, const char *path, const char *want) {
        json_object *v = at(o, path);
        if (!json_object_is_type(v, json_type_string))
                fail_msg("%s is %s, not the string \"%s\"", path, json_object_to_json_string(v), want);
        assert_string_equal(json_object_get_string(v), want);
}

static void assert_json_int(json_object *o, const char *path, int64_t want) {
        json_object *v = at(o, path);
        if (!json_object_is_type(v, json_type_int))
                fail_msg("%s is %s, not the integer %" PRIi64, path, json_object_to_json_string(v), want);
        assert_int_equal(json_object_get_int64(v), want);
}

static void assert_unavailable(json_object *o, const char *path, const char *reason) {
        json_object *v = at(o, path), *u = NULL;

        if (!json_object_is_type(v, json_type_object) || json_object_object_length(v) != 1 ||
            !json_object_object_get_ex(v, "unavailable", &u))
                fail_msg("%s is %s, not unavailable", path, json_object_to_json_string(v));
        assert_string_equal(json_object_get_string(u), reason);
}

static void test_fixture_intel(void **state) {
        _cleanup_free_ char *root = data_path("intel");
        _cleanup_(provenance_done) Provenance p = {};
        _cleanup_json_ json_object *j = NULL;
        uint64_t before = realtime_usec(), after;
        const char *keys[] = { "memvisorVersion", "collectedRealtimeUSec", "collectedAt", "kernel", "cpu", "kvm",
                               "memory", "numa", "perfEventParanoid", "qemu" };
        size_t i = 0;

        assert_int_equal(provenance_collect(root, &p), 0);
        after = realtime_usec();
        assert_true(p.collected_usec >= before && p.collected_usec <= after);

        /* The typed struct. */
        assert_string_equal(p.kernel_release.value, "6.1.0-28-amd64");
        assert_null(p.kernel_release.unavailable);
        assert_string_equal(p.cpu_vendor.value, "GenuineIntel");
        assert_true(p.cpu_family.available);
        assert_int_equal(p.cpu_family.value, 6);
        assert_int_equal(p.cpu_processors.value, 4);
        assert_true(p.cpu_uniform.available && p.cpu_uniform.value);
        assert_string_equal(p.kvm.name, "kvm");
        assert_int_equal(p.kvm.n_parameters, 5);
        assert_string_equal(p.kvm.parameters[0].name, "eager_page_split");   /* sorted by name */
        assert_string_equal(p.kvm.parameters[4].name, "tdp_mmu");
        assert_int_equal(p.n_kvm_vendor, 1);
        assert_string_equal(p.kvm_vendor[0].name, "kvm_intel");
        assert_int_equal(p.kvm_vendor[0].n_parameters, 6);
        assert_false(p.kvm_device_usable);
        assert_non_null(p.numa);
        assert_int_equal(p.numa->n_nodes, 2);

        assert_int_equal(provenance_to_json(&p, &j), 0);

        /* Stable key order. */
        json_object_object_foreach(j, key, val) {
                (void) val;
                assert_true(i < ELEMENTSOF(keys));
                assert_string_equal(key, keys[i++]);
        }
        assert_int_equal(i, ELEMENTSOF(keys));

        assert_json_string(j, "memvisorVersion", PROJECT_VERSION);
        assert_json_int(j, "collectedRealtimeUSec", (int64_t) p.collected_usec);
        assert_int_equal(strlen(json_object_get_string(at(j, "collectedAt"))), strlen("2026-12-04T20:30:00.123456Z"));
        assert_json_string(j, "kernel.release", "6.1.0-28-amd64");
        assert_json_string(j, "kernel.version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)");
        assert_json_string(j, "kernel.hostname", "bench-host-1");
        assert_json_string(j, "kernel.cmdline",
                           "BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=/dev/sda1 ro quiet intel_iommu=on "
                           "default_hugepagesz=1G");
        assert_json_string(j, "cpu.vendor", "GenuineIntel");
        assert_json_string(j, "cpu.modelName", "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz");
        assert_json_int(j, "cpu.family", 6);
        assert_json_int(j, "cpu.model", 85);
        assert_json_int(j, "cpu.stepping", 7);
        assert_json_string(j, "cpu.microcode", "0x5003604");
        assert_json_int(j, "cpu.processors", 4);
        assert_true(json_object_get_boolean(at(j, "cpu.uniform")));
        assert_json_string(j, "cpu.online", "0-3");
        assert_string_equal(json_to_plain(at(j, "kvm.parameters"), NULL),
                            "{\"eager_page_split\":\"Y\",\"halt_poll_ns\":\"200000\",\"mmio_caching\":\"Y\","
                            "\"nx_huge_pages\":\"auto\",\"tdp_mmu\":\"Y\"}");
        assert_string_equal(json_to_plain(at(j, "kvm.vendor"), NULL),
                            "{\"kvm_intel\":{\"enable_pml\":\"Y\",\"ept\":\"Y\",\"nested\":\"N\","
                            "\"preemption_timer\":\"Y\",\"unrestricted_guest\":\"Y\",\"vpid\":\"Y\"}}");
        assert_false(json_object_get_boolean(at(j, "kvm.device.usable")));
        assert_json_string(j, "kvm.device.reason", "/dev/kvm: No such file or directory");
        assert_json_string(j, "memory.thpEnabled", "madvise");
        assert_json_string(j, "memory.thpDefrag", "madvise");
        assert_json_string(j, "memory.thpKhugepagedDefrag", "1");
        assert_json_int(j, "memory.numaBalancing", 1);
        assert_json_int(j, "memory.overcommitMemory", 0);
        assert_json_int(j, "memory.overcommitRatio", 50);
        assert_string_equal(json_to_plain(at(j, "numa"), NULL),
                            "{\"nodes\":[{\"node\":0,\"cpus\":\"0-1\",\"memTotalBytes\":8589934592,"
                            "\"memFreeBytes\":6442450944,\"distances\":[10,21]},"
                            "{\"node\":1,\"cpus\":\"2-3\",\"memTotalBytes\":8589934592,"
                            "\"memFreeBytes\":4294967296,\"distances\":[21,10]}],\"onlineCPUs\":\"0-3\"}");
        assert_json_int(j, "perfEventParanoid", 2);
        assert_unavailable(j, "qemu.binary", "not collected");
        assert_unavailable(j, "qemu.version", "not collected");

        /* The QEMU version, once given. */
        assert_int_equal(provenance_set_qemu_version(&p, "/usr/bin/qemu-system-x86_64",
                                                     "QEMU emulator version 7.2.15"), 0);
        json_object_put(TAKE_PTR(j));
        assert_int_equal(provenance_to_json(&p, &j), 0);
        assert_json_string(j, "qemu.binary", "/usr/bin/qemu-system-x86_64");
        assert_json_string(j, "qemu.version", "QEMU emulator version 7.2.15");
        assert_int_equal(provenance_set_qemu_unavailable(&p, "qemu-kvm", "cannot run qemu-kvm: No such file"), 0);
        json_object_put(TAKE_PTR(j));
        assert_int_equal(provenance_to_json(&p, &j), 0);
        assert_json_string(j, "qemu.binary", "qemu-kvm");
        assert_unavailable(j, "qemu.version", "cannot run qemu-kvm: No such file");
}

static void test_fixture_partial(void **state) {
        _cleanup_free_ char *root = data_path("partial");
        _cleanup_(provenance_done) Provenance p = {};
        _cleanup_json_ json_object *j = NULL;

        assert_int_equal(provenance_collect(root, &p), 0);
        assert_null(p.kernel_version.value);
        assert_string_equal(p.kernel_version.unavailable, "/proc/sys/kernel/version: No such file or directory");
        assert_false(p.cpu_stepping.available && p.cpu_uniform.value);
        assert_int_equal(provenance_to_json(&p, &j), 0);

        assert_json_string(j, "kernel.release", "6.12.0-rc1");
        assert_unavailable(j, "kernel.version", "/proc/sys/kernel/version: No such file or directory");
        assert_unavailable(j, "kernel.hostname", "/proc/sys/kernel/hostname is empty");
        assert_unavailable(j, "kernel.cmdline", "/proc/cmdline: No such file or directory");
        assert_json_string(j, "cpu.vendor", "AuthenticAMD");
        assert_json_string(j, "cpu.modelName", "AMD EPYC 7713 64-Core Processor");
        assert_json_int(j, "cpu.family", 25);
        assert_json_int(j, "cpu.stepping", 1);     /* the first processor's */
        assert_unavailable(j, "cpu.microcode", "no \"microcode\" line in /proc/cpuinfo");
        assert_json_int(j, "cpu.processors", 2);
        assert_true(json_object_is_type(at(j, "cpu.uniform"), json_type_boolean));
        assert_false(json_object_get_boolean(at(j, "cpu.uniform")));     /* stepping 1 and 2 */
        assert_json_string(j, "kvm.parameters.halt_poll_ns", "0");
        assert_unavailable(j, "kvm.parameters.unreadable", "/sys/module/kvm/parameters/unreadable: Is a directory");
        assert_unavailable(j, "kvm.vendor", "no kvm vendor module (kvm_intel, kvm_amd, …) loaded");
        assert_unavailable(j, "memory.thpEnabled", "/sys/kernel/mm/transparent_hugepage/enabled: no [selected] value");
        assert_unavailable(j, "memory.thpDefrag", "/sys/kernel/mm/transparent_hugepage/defrag: No such file or directory");
        assert_unavailable(j, "memory.thpKhugepagedDefrag",
                           "/sys/kernel/mm/transparent_hugepage/khugepaged/defrag: No such file or directory");
        assert_unavailable(j, "memory.numaBalancing", "/proc/sys/kernel/numa_balancing: not an integer: \"yes\"");
        assert_unavailable(j, "memory.overcommitMemory", "/proc/sys/vm/overcommit_memory: No such file or directory");
        assert_json_int(j, "memory.overcommitRatio", 50);
        assert_unavailable(j, "numa", "cannot read the NUMA topology below /sys/devices/system: "
                           "No such file or directory");     /* node/online says 0-1, node1 is missing */
        assert_json_int(j, "perfEventParanoid", -1);
}

/* A root with nothing in it: every item unavailable, none empty or zero. */
static void test_missing_root(void **state) {
        _cleanup_free_ char *root = data_path("does-not-exist");
        _cleanup_(provenance_done) Provenance p = {};
        _cleanup_json_ json_object *j = NULL;
        const char *paths[] = { "kernel.release", "kernel.version", "kernel.hostname", "kernel.cmdline",
                                "cpu.vendor", "cpu.modelName", "cpu.family", "cpu.model", "cpu.stepping",
                                "cpu.microcode", "cpu.processors", "cpu.uniform", "cpu.online", "kvm.parameters",
                                "kvm.vendor", "memory.thpEnabled", "memory.thpDefrag", "memory.thpKhugepagedDefrag",
                                "memory.numaBalancing", "memory.overcommitMemory", "memory.overcommitRatio", "numa",
                                "perfEventParanoid", "qemu.version" };

        assert_int_equal(provenance_collect("relative/root", &p), -EINVAL);
        assert_int_equal(provenance_collect(root, &p), 0);
        assert_int_equal(provenance_to_json(&p, &j), 0);
        for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
                json_object *u;
                if (!json_object_object_get_ex(at(j, paths[i]), "unavailable", &u))
                        fail_msg("%s is %s", paths[i], json_object_to_json_string(at(j, paths[i])));
                assert_true(strlen(json_object_get_string(u)) > 0);
        }
        assert_unavailable(j, "kvm.parameters", "kvm module not loaded");
        assert_unavailable(j, "cpu.family", "/proc/cpuinfo: No such file or directory");
        assert_unavailable(j, "kvm.vendor", "/sys/module: No such file or directory");
        assert_false(json_object_get_boolean(at(j, "kvm.device.usable")));
        assert_json_string(j, "kvm.device.reason", "/dev/kvm: No such file or directory");
}

static void test_host(void **state) {
        _cleanup_(provenance_done) Provenance p = {};
        _cleanup_(provenance_diff_done) ProvenanceDiff d = {};
        _cleanup_json_ json_object *j = NULL, *j2 = NULL;
        struct utsname u;

        assert_int_equal(uname(&u), 0);
        assert_int_equal(provenance_collect(NULL, &p), 0);
        assert_non_null(p.kernel_release.value);
        assert_string_equal(p.kernel_release.value, u.release);
        assert_string_equal(p.kernel_version.value, u.version);
        assert_string_equal(p.hostname.value, u.nodename);
        assert_non_null(p.cpu_online.value);
        assert_true(p.cpu_processors.available);
        assert_int_equal(p.cpu_processors.value, sysconf(_SC_NPROCESSORS_CONF));
        assert_true(p.kvm_device_usable == (access("/dev/kvm", R_OK | W_OK) == 0));
        if (!p.kvm_device_usable)
                assert_non_null(p.kvm_device_reason);
        else
                assert_int_equal(p.kvm_api_version, 12);
        assert_true(!!p.numa != !!p.numa_unavailable);
        assert_int_equal(provenance_to_json(&p, &j), 0);
        printf("host provenance: %s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));

        /* Against itself collected again: nothing differs but the volatile values. */
        provenance_done(&p);
        assert_int_equal(provenance_collect("/", &p), 0);
        assert_int_equal(provenance_to_json(&p, &j2), 0);
        assert_int_equal(provenance_diff(j, j2, PROVENANCE_DIFF_SKIP_VOLATILE, &d), 0);
        for (size_t i = 0; i < d.n_differences; i++)
                print_message("differs: %s\n", d.differences[i].key);
        assert_int_equal(d.n_differences, 0);
}

static void test_qemu_version(void **state) {
        _cleanup_(provenance_done) Provenance p = {};
        _cleanup_free_ char *slow = data_path("slow-version"), *v = NULL;
        _cleanup_json_ json_object *j = NULL;

        /* Any program answering --version shows the path: coreutils' echo prints one line. */
        assert_int_equal(provenance_read_qemu_version("/bin/echo", 5 * 1000000U, &v), 0);
        assert_true(strstr(v, "echo") != NULL);
        assert_null(strchr(v, '\n'));
        v = mfree(v);
        assert_int_equal(provenance_read_qemu_version("/nonexistent/qemu-system-x86_64", 1000000U, &v), -ENOENT);
        assert_int_equal(provenance_read_qemu_version("/bin/false", 1000000U, &v), -EBADMSG);
        assert_int_equal(provenance_read_qemu_version(slow, 200 * 1000U, &v), -ETIMEDOUT);
        assert_null(v);
        assert_int_equal(provenance_read_qemu_version("", 1000000U, &v), -EINVAL);

        assert_int_equal(provenance_collect(data_dir, &p), 0);
        assert_int_equal(provenance_collect_qemu(&p, "/nonexistent/qemu", 1000000U), 0);
        assert_string_equal(p.qemu_binary.value, "/nonexistent/qemu");
        assert_string_equal(p.qemu_version.unavailable, "cannot run /nonexistent/qemu: No such file or directory");
        assert_int_equal(provenance_collect_qemu(&p, slow, 100 * 1000U), 0);
        assert_true(strstr(p.qemu_version.unavailable, "did not exit within 100 ms") != NULL);

        if (access("/usr/bin/qemu-system-x86_64", X_OK) == 0) {
                assert_int_equal(provenance_collect_qemu(&p, "qemu-system-x86_64", 30 * 1000000U), 0);
                assert_non_null(p.qemu_version.value);
                assert_true(startswith(p.qemu_version.value, "QEMU emulator version "));
                assert_int_equal(provenance_to_json(&p, &j), 0);
                assert_json_string(j, "qemu.version", p.qemu_version.value);
                print_message("qemu: %s\n", p.qemu_version.value);
        } else
                print_message("qemu-system-x86_64 not installed: the real QEMU is not asked\n");
}

static json_object *parse(const char *s) {
        json_object *o = json_tokener_parse(s);
        assert_non_null(o);
        return o;
}

static void assert_difference(const ProvenanceDiff *d, size_t i, const char *key, const char *a, const char *b) {
        assert_true(i < d->n_differences);
        assert_string_equal(d->differences[i].key, key);
        if (a)
                assert_string_equal(json_to_plain(d->differences[i].a, NULL), a);
        else
                assert_null(d->differences[i].a);
        if (b)
                assert_string_equal(json_to_plain(d->differences[i].b, NULL), b);
        else
                assert_null(d->differences[i].b);
}

static void test_diff(void **state) {
        _cleanup_json_ json_object *a = NULL, *b = NULL, *out = NULL, *deep = NULL;
        _cleanup_(provenance_diff_done) ProvenanceDiff d = {};

        a = parse("{\"collectedRealtimeUSec\": 1, \"collectedAt\": \"x\","
                  " \"kernel\": {\"release\": \"6.1.0\", \"cmdline\": \"ro\"},"
                  " \"kvm\": {\"parameters\": {\"ept\": \"Y\", \"tdp_mmu\": \"Y\"}, \"vendor\": {\"unavailable\": \"none\"}},"
                  " \"numa\": {\"nodes\": [{\"node\": 0, \"cpus\": \"0-1\", \"memFreeBytes\": 5}]},"
                  " \"memory\": {\"numaBalancing\": 1}, \"empty\": {}}");
        b = parse("{\"collectedRealtimeUSec\": 2, \"collectedAt\": \"y\","
                  " \"kernel\": {\"release\": \"6.12.0\", \"cmdline\": \"ro\"},"
                  " \"kvm\": {\"parameters\": {\"ept\": \"N\", \"enable_pml\": \"Y\"}, \"vendor\": {\"kvm_amd\": {\"npt\": \"Y\"}}},"
                  " \"numa\": {\"nodes\": [{\"node\": 0, \"cpus\": \"0-3\", \"memFreeBytes\": 6},"
                  " {\"node\": 1, \"cpus\": \"4-7\", \"memFreeBytes\": 7}]},"
                  " \"memory\": {\"numaBalancing\": {\"unavailable\": \"/proc/sys/kernel/numa_balancing: No such file\"}},"
                  " \"empty\": []}");

        /* Identical objects: nothing. */
        assert_int_equal(provenance_diff(a, a, 0, &d), 0);
        assert_int_equal(d.n_differences, 0);

        assert_int_equal(provenance_diff(a, b, PROVENANCE_DIFF_SKIP_VOLATILE, &d), 0);
        assert_difference(&d, 0, "kernel.release", "\"6.1.0\"", "\"6.12.0\"");
        assert_difference(&d, 1, "kvm.parameters.ept", "\"Y\"", "\"N\"");
        assert_difference(&d, 2, "kvm.parameters.tdp_mmu", "\"Y\"", NULL);
        assert_difference(&d, 3, "kvm.vendor", "{\"unavailable\":\"none\"}", NULL);
        assert_difference(&d, 4, "numa.nodes[0].cpus", "\"0-1\"", "\"0-3\"");
        assert_difference(&d, 5, "memory.numaBalancing", "1",
                          "{\"unavailable\":\"/proc/sys/kernel/numa_balancing: No such file\"}");
        assert_difference(&d, 6, "empty", "{}", "[]");
        assert_difference(&d, 7, "kvm.parameters.enable_pml", NULL, "\"Y\"");
        assert_difference(&d, 8, "kvm.vendor.kvm_amd.npt", NULL, "\"Y\"");
        assert_difference(&d, 9, "numa.nodes[1].node", NULL, "1");
        assert_difference(&d, 10, "numa.nodes[1].cpus", NULL, "\"4-7\"");
        assert_int_equal(d.n_differences, 11);  /* memFreeBytes of node 1 is volatile too */

        assert_int_equal(provenance_diff_to_json(&d, &out), 0);
        assert_string_equal(json_to_plain(json_object_array_get_idx(out, 2), NULL),
                            "{\"key\":\"kvm.parameters.tdp_mmu\",\"a\":\"Y\"}");
        assert_string_equal(json_to_plain(json_object_array_get_idx(out, 7), NULL),
                            "{\"key\":\"kvm.parameters.enable_pml\",\"b\":\"Y\"}");
        assert_string_equal(json_to_plain(json_object_array_get_idx(out, 0), NULL),
                            "{\"key\":\"kernel.release\",\"a\":\"6.1.0\",\"b\":\"6.12.0\"}");
        provenance_diff_done(&d);

        /* Without the flag the volatile values are listed too, in a's order. */
        assert_int_equal(provenance_diff(a, b, 0, &d), 0);
        assert_int_equal(d.n_differences, 15);
        assert_difference(&d, 0, "collectedRealtimeUSec", "1", "2");
        assert_difference(&d, 1, "collectedAt", "\"x\"", "\"y\"");
        assert_difference(&d, 7, "numa.nodes[0].memFreeBytes", "5", "6");
        provenance_diff_done(&d);

        /* Not objects, and nesting beyond the bound. */
        assert_int_equal(provenance_diff(a, json_object_object_get(a, "collectedAt"), 0, &d), -EINVAL);
        deep = json_object_new_object();
        for (unsigned i = 0; i < PROVENANCE_DIFF_DEPTH_MAX + 2; i++) {
                json_object *o = json_object_new_object();
                assert_int_equal(json_object_object_add(o, "x", deep), 0);
                assert_int_equal(json_object_object_add(o, "y", json_object_new_int(1)), 0);
                deep = o;
        }
        assert_int_equal(provenance_diff(deep, a, 0, &d), -E2BIG);
}

/* Two fixture hosts, through the whole path: collect, JSON, diff. */
static void test_diff_fixtures(void **state) {
        _cleanup_free_ char *intel = data_path("intel"), *partial = data_path("partial");
        _cleanup_(provenance_done) Provenance p = {}, q = {};
        _cleanup_(provenance_diff_done) ProvenanceDiff d = {};
        _cleanup_json_ json_object *a = NULL, *b = NULL, *roundtrip = NULL;
        bool release = false, ept = false;

        assert_int_equal(provenance_collect(intel, &p), 0);
        assert_int_equal(provenance_collect(partial, &q), 0);
        assert_int_equal(provenance_to_json(&p, &a), 0);
        assert_int_equal(provenance_to_json(&q, &b), 0);

        /* As stored on disk and read back, the same object. */
        roundtrip = parse(json_object_to_json_string(a));
        assert_int_equal(provenance_diff(a, roundtrip, 0, &d), 0);
        assert_int_equal(d.n_differences, 0);

        assert_int_equal(provenance_diff(a, b, PROVENANCE_DIFF_SKIP_VOLATILE, &d), 0);
        for (size_t i = 0; i < d.n_differences; i++) {
                if (streq(d.differences[i].key, "kernel.release")) {
                        assert_string_equal(json_object_get_string(d.differences[i].a), "6.1.0-28-amd64");
                        assert_string_equal(json_object_get_string(d.differences[i].b), "6.12.0-rc1");
                        release = true;
                }
                if (streq(d.differences[i].key, "kvm.vendor.kvm_intel.ept")) {
                        assert_null(d.differences[i].b);
                        ept = true;
                }
                assert_false(streq(d.differences[i].key, "memory.overcommitRatio"));   /* 50 on both */
                assert_false(streq(d.differences[i].key, "kvm.device.reason"));        /* the same reason */
        }
        assert_true(release && ept);
}

int main(int argc, char *argv[]) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fixture_intel),
                cmocka_unit_test(test_fixture_partial),
                cmocka_unit_test(test_missing_root),
                cmocka_unit_test(test_host),
                cmocka_unit_test(test_qemu_version),
                cmocka_unit_test(test_diff),
                cmocka_unit_test(test_diff_fixtures),
        };

        if (argc != 2) {
                fprintf(stderr, "usage: %s DATA-DIR (tests/data/provenance)\n", argv[0]);
                return 2;
        }
        data_dir = argv[1];
        return cmocka_run_group_tests(tests, NULL, NULL);
}
