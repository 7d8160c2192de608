/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where a guest's RAM regions are in QEMU (numa-layout.h): the mappings of /proc/PID/maps that hold each host
 * range and the residency numa_maps gives them, on texts shaped as the kernel writes them; malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "numa/numa-layout.h"

/* A 64 MiB memfd block split into two guest ranges, an anonymous 2 MiB block in two mappings. */
static const char maps[] =
        "55f3a6b41000-55f3a6f48000 r--p 00000000 fe:00 10977371                   /usr/bin/qemu-system-x86_64\n"
        "7f0000000000-7f0004000000 rw-s 00000000 00:01 2049                       /memfd:m0 (deleted)\n"
        "7f0010000000-7f0010100000 rw-p 00000000 00:00 0 \n"
        "7f0010100000-7f0010200000 rw-p 00000000 00:00 0\n"
        "7ffc12345000-7ffc12366000 rw-p 00000000 00:00 0                          [stack]\n";

static const char numa_maps[] =
        "55f3a6b41000 default file=/usr/bin/qemu-system-x86_64 mapped=100 N0=100 kernelpagesize_kB=4\n"
        "7f0000000000 bind:0-1 file=/memfd:m0\\040(deleted) dirty=1000 N0=1000 N1=24 kernelpagesize_kB=4\n"
        "7f0010000000 default anon=256 dirty=256 N1=256 kernelpagesize_kB=4\n"
        "7f0010100000 default anon=1 dirty=1 N0=1 kernelpagesize_kB=2048\n"
        "7ffc12345000 default stack anon=3 dirty=3 N0=3 kernelpagesize_kB=4\n";

static void test_fill(void **state) {
        NumaLayoutRegion r[4] = {
                { .host_start = 0x7f0000000000, .size = 0xc0000 },               /* below the hole */
                { .host_start = 0x7f0000100000, .size = 0x3f00000 },             /* the rest of the block */
                { .host_start = 0x7f0010000000, .size = 0x200000 },              /* two anonymous mappings */
                { .host_start = 0x7f0020000000, .size = 0x1000 },                /* nothing there */
        };

        assert_int_equal(numa_layout_fill(maps, strlen(maps), numa_maps, strlen(numa_maps), r, ELEMENTSOF(r)), 0);
        for (size_t i = 0; i < 2; i++) {
                assert_true(r[i].mapped);
                assert_int_equal(r[i].n_mappings, 1);
                assert_int_equal(r[i].map_start, 0x7f0000000000);
                assert_int_equal(r[i].map_end, 0x7f0004000000);
                assert_string_equal(r[i].map_path, "/memfd:m0 (deleted)");
                assert_true(r[i].have_residency);
                assert_false(r[i].residency_is_region);         /* the mapping is the whole block */
                assert_int_equal(r[i].node_bytes[0], 1000 * 4096);
                assert_int_equal(r[i].node_bytes[1], 24 * 4096);
                assert_int_equal(r[i].resident_bytes, 1024 * 4096);
                assert_int_equal(r[i].max_node, 2);
        }
        assert_true(r[2].mapped);
        assert_int_equal(r[2].n_mappings, 2);
        assert_null(r[2].map_path);
        assert_true(r[2].residency_is_region);
        assert_int_equal(r[2].node_bytes[1], 256 * 4096);
        assert_int_equal(r[2].node_bytes[0], 2 * 1024 * 1024);  /* one 2 MiB page */
        assert_false(r[3].mapped);
        assert_int_equal(r[3].n_mappings, 0);
        assert_int_equal(r[3].resident_bytes, 0);
        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                free(r[i].map_path);
}

static void test_partial(void **state) {
        /* a range reaching past its mapping, and one over a hole; without numa_maps no residency */
        NumaLayoutRegion r[2] = {
                { .host_start = 0x7f0003000000, .size = 0x2000000 },
                { .host_start = 0x7f000ff00000, .size = 0x200000 },
        };

        assert_int_equal(numa_layout_fill(maps, strlen(maps), NULL, 0, r, ELEMENTSOF(r)), 0);
        assert_false(r[0].mapped);
        assert_int_equal(r[0].n_mappings, 1);
        assert_false(r[0].have_residency);
        assert_false(r[1].mapped);
        assert_int_equal(r[1].n_mappings, 1);
        assert_int_equal(r[1].map_start, 0x7f0010000000);
        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                free(r[i].map_path);
}

static void test_malformed(void **state) {
        static const char *const bad_maps[] = {
                "zzzz-7f0004000000 rw-s 00000000 00:01 2049\n",
                "7f0004000000-7f0000000000 rw-s 00000000 00:01 2049\n",          /* end before start */
                "7f0000000000-7f0004000000 rw-s\n",                              /* fields missing */
                "7f0000000000-7f0004000000 rw-p 0 0 0\n7f0000001000-7f0000002000 rw-p 0 0 0\n", /* overlap */
                "7f00000000000000000-7f0004000000 rw-p 0 0 0\n",
        };
        static const char *const bad_numa[] = {
                "7f0000000000 default N0=x kernelpagesize_kB=4\n",
                "7f0000000000 default N64=1 kernelpagesize_kB=4\n",
                "7f0000000000 default N0=1 kernelpagesize_kB=0\n",
                "nothex default N0=1\n",
        };
        const char *good = "7f0000000000-7f0004000000 rw-s 00000000 00:01 2049\n";
        NumaLayoutRegion r = { .host_start = 0x7f0000000000, .size = 0x1000 };

        for (size_t i = 0; i < ELEMENTSOF(bad_maps); i++)
                if (numa_layout_fill(bad_maps[i], strlen(bad_maps[i]), NULL, 0, &r, 1) >= 0)
                        fail_msg("accepted maps: %s", bad_maps[i]);
        for (size_t i = 0; i < ELEMENTSOF(bad_numa); i++)
                if (numa_layout_fill(good, strlen(good), bad_numa[i], strlen(bad_numa[i]), &r, 1) >= 0)
                        fail_msg("accepted numa_maps: %s", bad_numa[i]);
        assert_int_equal(numa_layout_fill(good, strlen(good), "7f0000000000 default N64=1\n", 27, &r, 1), -ERANGE);
        free(r.map_path);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fill),
                cmocka_unit_test(test_partial),
                cmocka_unit_test(test_malformed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
