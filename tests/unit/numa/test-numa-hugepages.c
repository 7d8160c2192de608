/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Huge pages on a fake sysfs tree (made here, in a temporary directory): which sizes the host offers, its
 * default size, the free-page check for the whole host and for bound nodes (bind: the nodes together;
 * interleave: each its share) with the figures in the reason, and the [Memory] checks of a guest definition
 * (vm_memory_check_definition at DefineVM, vm_memory_check_start before QEMU is spawned). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "numa/numa-hugepages.h"
#include "vm/vm.h"

#define MB (UINT64_C(1) << 20)
#define GB (UINT64_C(1) << 30)

static char *root;

static void put(const char *rel, const char *text) {
        _cleanup_free_ char *path = NULL, *dir = NULL;

        assert_true(asprintf(&path, "%s/%s", root, rel) > 0);
        dir = strdup(path);
        assert_non_null(dir);
        *strrchr(dir, '/') = 0;
        assert_int_equal(mkdir_p(dir, 0755), 0);
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

static int setup(void **state) {
        assert_true(asprintf(&root, "%s/test-numa-hugepages.XXXXXX", getenv("TMPDIR") ?: "/tmp") > 0);
        assert_non_null(mkdtemp(root));
        /* Two sizes; 100 free 2M pages of which 20 are reserved by a mapping that exists; nodes 0 and 1. */
        put("sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "100\n");
        put("sys/kernel/mm/hugepages/hugepages-2048kB/resv_hugepages", "20\n");
        put("sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "0\n");
        put("sys/kernel/mm/hugepages/hugepages-1048576kB/resv_hugepages", "0\n");
        put("sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages", "30\n");
        put("sys/devices/system/node/node1/hugepages/hugepages-2048kB/free_hugepages", "70\n");
        put("sys/devices/system/node/node0/hugepages/hugepages-1048576kB/free_hugepages", "0\n");
        put("sys/devices/system/node/node1/hugepages/hugepages-1048576kB/free_hugepages", "0\n");
        put("proc/meminfo", "MemTotal:       16384000 kB\nHugepagesize:       2048 kB\n");
        return 0;
}

static int teardown(void **state) {
        _cleanup_free_ char *cmd = NULL;

        assert_true(asprintf(&cmd, "rm -rf '%s'", root) > 0);
        assert_int_equal(system(cmd), 0);
        root = mfree(root);
        return 0;
}

static void test_sizes(void **state) {
        _cleanup_free_ char *text = NULL;
        uint64_t d = 0;

        assert_int_equal(hugepages_size_offered(root, 2 * MB), 1);
        assert_int_equal(hugepages_size_offered(root, GB), 1);
        assert_int_equal(hugepages_size_offered(root, 16 * MB), 0);
        assert_int_equal(hugepages_size_offered(root, 100), 0);
        assert_int_equal(hugepages_sizes_text(root, &text), 0);
        assert_string_equal(text, "2M, 1G");
        assert_int_equal(hugepages_default_size(root, &d), 0);
        assert_int_equal(d, 2 * MB);
}

static void check(uint64_t size, uint64_t bytes, uint64_t mask, HugepagesSpread spread, int expect, const char *reason) {
        _cleanup_free_ char *why = NULL;

        assert_int_equal(hugepages_check(root, size, bytes, mask, spread, &why), expect);
        if (reason)
                assert_string_equal(why, reason);
        else
                assert_null(why);
}

#define HOW "(/proc/sys/vm/nr_hugepages, or per node /sys/devices/system/node/nodeN/hugepages/hugepages-2048kB/" \
            "nr_hugepages, sets how many there are)"

static void test_check(void **state) {
        /* The whole host: 80 pages free once the 20 reserved ones are taken off. */
        check(2 * MB, 160 * MB, 0, HUGEPAGES_ANYWHERE, 0, NULL);
        check(2 * MB, 162 * MB, 0, HUGEPAGES_ANYWHERE, -ENOSPC,
              "the guest needs 81 huge pages of 2M (162M); the host has 80 free, not reserved " HOW);
        /* bind: the nodes together; node 0 alone has 30. */
        check(2 * MB, 160 * MB, 0x3, HUGEPAGES_ANY_OF, 0, NULL);
        check(2 * MB, 64 * MB, 0x1, HUGEPAGES_ANY_OF, -ENOSPC,
              "the guest needs 32 huge pages of 2M (64M) on host node 0 (bind); free: node 0: 30; whole host: 80 "
              "free, not reserved " HOW);
        check(2 * MB, 60 * MB, 0x1, HUGEPAGES_ANY_OF, 0, NULL);
        /* interleave: each node its share (31 of 62 on node 0, which has 30). */
        check(2 * MB, 124 * MB, 0x3, HUGEPAGES_EACH, -ENOSPC,
              "the guest needs 62 huge pages of 2M (124M) on host nodes 0,1 (interleave: each an equal share); "
              "free: node 0: 30, node 1: 70; whole host: 80 free, not reserved " HOW);
        check(2 * MB, 120 * MB, 0x3, HUGEPAGES_EACH, 0, NULL);
        /* Preferred (or no binding) ignores the nodes. */
        check(2 * MB, 64 * MB, 0x1, HUGEPAGES_ANYWHERE, 0, NULL);
        /* A node the host lacks; a size it does not offer; 1G offered but none free. */
        check(2 * MB, 64 * MB, 0x5, HUGEPAGES_ANY_OF, -ENOENT,
              "host node 2 does not exist (or has no huge pages of 2M)");
        check(16 * MB, 64 * MB, 0, HUGEPAGES_ANYWHERE, -EOPNOTSUPP,
              "the host has no huge pages of 16M (it offers: 2M, 1G)");
        check(GB, 2 * GB, 0x1, HUGEPAGES_ANY_OF, -ENOSPC,
              "the guest needs 2 huge pages of 1G (2G) on host node 0 (bind); free: node 0: 0; whole host: 0 free, "
              "not reserved (/proc/sys/vm/nr_hugepages, or per node /sys/devices/system/node/nodeN/hugepages/"
              "hugepages-1048576kB/nr_hugepages, sets how many there are)");
}

static VmSpec *spec(const char *memory_ini) {
        _cleanup_free_ char *text = NULL;
        VmSpecError e = {};
        VmSpec *s = NULL;

        assert_true(asprintf(&text, "[VM]\nName=g\nKernel=/boot/vmlinuz\n%s", memory_ini) > 0);
        if (vm_spec_parse_ini(NULL, text, NULL, &s, &e) < 0)
                fail_msg("%s", e.message);
        return s;
}

static void test_guest(void **state) {
        static const struct {
                const char *ini;
                const char *def_field, *def_reason;     /* vm_memory_check_definition */
                int start;                              /* vm_memory_check_start */
                const char *start_reason;
        } cases[] = {
                { "Memory=128M\n", NULL, NULL, 0, NULL },
                { "Memory=128M\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=2M\n", NULL, NULL, 0, NULL },
                { "Memory=128M\n[Memory]\nBackend=memfd\nHugePages=yes\n", NULL, NULL, 0, NULL },
                { "Memory=256M\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=2M\n", NULL, NULL, -ENOSPC,
                  "HugePageSize=2M: the guest needs 128 huge pages of 2M (256M); the host has 80 free, not "
                  "reserved " HOW },
                { "Memory=256M\n[Memory]\nBackend=memfd\nHugePages=yes\n", NULL, NULL, -ENOSPC,
                  "HugePages=yes: the guest needs 128 huge pages of 2M (256M); the host has 80 free, not "
                  "reserved " HOW },
                { "Memory=64M\n[Memory]\nBackend=memfd\nHugePages=yes\nPolicy=bind\nHostNodes=0\n", NULL, NULL,
                  -ENOSPC, "HugePages=yes: the guest needs 32 huge pages of 2M (64M) on host node 0 (bind); free: "
                  "node 0: 30; whole host: 80 free, not reserved " HOW },
                { "Memory=64M\n[Memory]\nBackend=memfd\nHugePages=yes\nPolicy=preferred\nHostNodes=0\n", NULL, NULL,
                  0, NULL },
                { "Memory=2G\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=1G\n", NULL, NULL, -ENOSPC,
                  NULL },
                { "Memory=64M\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=16M\n", "Memory.HugePageSize",
                  "HugePageSize=16M: the host offers no huge pages of 16M (it offers: 2M, 1G)", -EOPNOTSUPP,
                  "HugePageSize=16M: the host has no huge pages of 16M (it offers: 2M, 1G)" },
                /* Not on hugetlbfs: refused only with HugePages=yes. */
                { "Memory=64M\n[Memory]\nBackend=file\nPath=/\n", NULL, NULL, 0, NULL },
                { "Memory=64M\n[Memory]\nBackend=file\nPath=/\nHugePages=yes\n", NULL, NULL, -EINVAL,
                  "HugePages=yes: Path=/ is not on a hugetlbfs mount" },
                /* GuestNode= bound to a host node this host lacks (no node/online here: node 0 only). */
                { "Memory=128M\nVCPUs=2\n[Memory]\nGuestNode=64M cpus=0 hostnodes=0 policy=bind\n"
                  "GuestNode=64M cpus=1 hostnodes=1 policy=bind\n", "Memory.GuestNode",
                  "GuestNode=64M cpus=1 hostnodes=1 policy=bind: guest node 1 is bound to host node 1, but the host "
                  "has node 0 only", -EOPNOTSUPP,
                  "GuestNode=64M cpus=1 hostnodes=1 policy=bind: guest node 1 is bound to host node 1, but the host "
                  "has node 0 only" },
                { "Memory=128M\nVCPUs=2\n[Memory]\nGuestNode=64M cpus=0 hostnodes=0 policy=bind\n"
                  "GuestNode=64M cpus=1 hostnodes=0 policy=preferred\n", NULL, NULL, 0, NULL },
                /* Huge pages per guest node, on that node's host nodes (node 0: 30 free). */
                { "Memory=128M\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=2M\n"
                  "GuestNode=64M cpus=0 hostnodes=0 policy=bind\nGuestNode=64M\n", NULL, NULL, -ENOSPC,
                  "GuestNode=64M cpus=0 hostnodes=0 policy=bind (guest node 0): the guest needs 32 huge pages of 2M "
                  "(64M) on host node 0 (bind); free: node 0: 30; whole host: 80 free, not reserved " HOW },
                { "Memory=128M\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=2M\n"
                  "GuestNode=32M cpus=0 hostnodes=0 policy=bind\nGuestNode=96M\n", NULL, NULL, 0, NULL },
                { "Memory=256M\n[Memory]\nBackend=memfd\nHugePages=yes\n"
                  "GuestNode=32M cpus=0 hostnodes=0 policy=bind\nGuestNode=224M\n", NULL, NULL, -ENOSPC,
                  "HugePages=yes: the guest needs 128 huge pages of 2M (256M); the host has 80 free, not "
                  "reserved " HOW },
                /* HotplugSize=: the virtio-mem backend has the same page size and needs its pages too (64M + 128M
                 * = 96 pages > 80 free; 64M + 64M fits), on the host nodes of its guest node HotplugNode=. */
                { "Memory=64M\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=2M\nHotplugSize=128M\n", NULL,
                  NULL, -ENOSPC, "HugePageSize=2M: the guest needs 96 huge pages of 2M (192M); the host has 80 free, "
                  "not reserved " HOW " (counting HotplugSize=, the virtio-mem backend, with Memory=)" },
                { "Memory=64M\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=2M\nHotplugSize=64M\n", NULL,
                  NULL, 0, NULL },
                { "Memory=64M\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=2M\nHotplugSize=32M\n"
                  "GuestNode=32M cpus=0 hostnodes=0 policy=bind\nGuestNode=32M\n", NULL, NULL, -ENOSPC,
                  "GuestNode=32M cpus=0 hostnodes=0 policy=bind (guest node 0): the guest needs 32 huge pages of 2M "
                  "(64M) on host node 0 (bind); free: node 0: 30; whole host: 80 free, not reserved " HOW
                  " (counting HotplugSize=, the virtio-mem backend, with Memory=)" },
                { "Memory=64M\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=2M\nHotplugSize=32M\n"
                  "HotplugNode=1\nGuestNode=32M cpus=0 hostnodes=0 policy=bind\nGuestNode=32M\n", NULL, NULL, 0,
                  NULL },
                /* A node without policy= takes HostNodes= of [Memory]. */
                { "Memory=128M\n[Memory]\nPolicy=interleave\nHostNodes=0-1\nGuestNode=128M cpus=0\n",
                  "Memory.GuestNode", "GuestNode=128M cpus=0: guest node 0 is bound to host nodes 0-1, but the host "
                  "has node 0 only", -EOPNOTSUPP, NULL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(vm_spec_freep) VmSpec *s = spec(cases[i].ini);
                _cleanup_free_ char *why = NULL, *start_why = NULL;
                const char *field = NULL;
                int r;

                r = vm_memory_check_definition(s, root, &field, &why);
                assert_int_equal(r, cases[i].def_field ? -EOPNOTSUPP : 0);
                assert_string_equal(strna(field), strna(cases[i].def_field));
                assert_string_equal(strna(why), strna(cases[i].def_reason));

                r = vm_memory_check_start(s, root, &start_why);
                if (r != cases[i].start)
                        fail_msg("case %zu: %d (%s)", i, r, strna(start_why));
                if (cases[i].start_reason)
                        assert_string_equal(strna(start_why), cases[i].start_reason);
                assert_true(!!start_why == (r < 0));
        }
}

/* A host with nodes 0-1 online: node 1 is fine, node 2 is not. */
static void test_guest_nodes_online(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *good = NULL, *bad = NULL;
        _cleanup_free_ char *why = NULL, *path = NULL;
        const char *field = NULL;

        put("sys/devices/system/node/online", "0-1\n");
        good = spec("Memory=128M\n[Memory]\nGuestNode=64M cpus=0 hostnodes=1 policy=bind\n"
                    "GuestNode=64M hostnodes=0-1 policy=interleave\n");
        assert_int_equal(vm_memory_check_definition(good, root, &field, &why), 0);
        assert_null(why);
        bad = spec("Memory=128M\n[Memory]\nGuestNode=64M cpus=0 hostnodes=1 policy=bind\n"
                   "GuestNode=64M hostnodes=1-2 policy=interleave\n");
        assert_int_equal(vm_memory_check_definition(bad, root, &field, &why), -EOPNOTSUPP);
        assert_string_equal(field, "Memory.GuestNode");
        assert_string_equal(why, "GuestNode=64M hostnodes=1-2 policy=interleave: guest node 1 is bound to host nodes "
                            "1-2, but the host has nodes 0-1 only");
        assert_true(asprintf(&path, "%s/sys/devices/system/node/online", root) > 0);
        assert_int_equal(unlink(path), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sizes),
                cmocka_unit_test(test_check),
                cmocka_unit_test(test_guest),
                cmocka_unit_test(test_guest_nodes_online),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
