/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest-RAM-only migration (numa-guest-ram.h): the backends' mappings found in smaps texts shaped as the kernel
 * writes them (QEMU's heap, the TCG code buffer and the stack are never taken), the batching and status
 * counting, malformed input, and a real move_pages(2) of this process's own pages to node 0 (which every host
 * has) over more than one batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "numa/numa-guest-ram.h"
#include "numa/numa-migration.h"

#define MiB (UINT64_C(1) << 20)

/* A 256 MiB guest: QEMU's heap (256 MiB too, but [heap]), the TCG buffer (rwx, 256 MiB), the memfd backend m0
 * and a 64 MiB anonymous backend m1. */
static const char smaps[] =
        "55f3a6b41000-55f3a6f48000 r--p 00000000 fe:00 10977371                   /usr/bin/qemu-system-x86_64\n"
        "Size:               4124 kB\n"
        "KernelPageSize:        4 kB\n"
        "Rss:                4000 kB\n"
        "VmFlags: rd mr mw me sd\n"
        "55f3b0000000-55f3c0000000 rw-p 00000000 00:00 0                          [heap]\n"
        "KernelPageSize:        4 kB\n"
        "Rss:                1000 kB\n"
        "7e0000000000-7e0010000000 rwxp 00000000 00:00 0 \n"
        "KernelPageSize:        4 kB\n"
        "Rss:                 512 kB\n"
        "7f0000000000-7f0010000000 rw-s 00000000 00:01 2049                       /memfd:m0 (deleted)\n"
        "Size:             262144 kB\n"
        "KernelPageSize:        4 kB\n"
        "Rss:               81920 kB\n"
        "7f0020000000-7f0024000000 rw-p 00000000 00:00 0 \n"
        "KernelPageSize:        4 kB\n"
        "Rss:                2048 kB\n"
        "7ffc12345000-7ffc12366000 rw-p 00000000 00:00 0                          [stack]\n"
        "Rss:                  12 kB\n";

static void test_find(void **state) {
        uint64_t sizes[] = { 256 * MiB, 64 * MiB };
        GuestRamRange *r = NULL;
        char *reason = NULL;
        size_t n = 0;

        assert_int_equal(guest_ram_find(smaps, strlen(smaps), sizes, 2, &r, &n, &reason), 0);
        assert_int_equal(n, 2);
        assert_int_equal(r[0].start, 0x7f0000000000);         /* the memfd, not the heap nor the TCG buffer */
        assert_int_equal(r[0].size, 256 * MiB);
        assert_string_equal(r[0].path, "/memfd:m0 (deleted)");
        assert_int_equal(r[0].rss_bytes, 81920 * 1024);
        assert_int_equal(r[0].page_size, 4096);
        assert_int_equal(r[1].start, 0x7f0020000000);
        assert_null(r[1].path);
        assert_int_equal(r[1].rss_bytes, 2048 * 1024);
        assert_null(reason);
        guest_ram_ranges_free(r, n);
}

static void test_not_found(void **state) {
        uint64_t sizes[] = { 128 * MiB }, twice[] = { 256 * MiB, 256 * MiB };
        static const char two_anon[] =
                "7f0000000000-7f0004000000 rw-p 00000000 00:00 0 \n"
                "7f0010000000-7f0014000000 rw-p 00000000 00:00 0 \n";
        uint64_t anon[] = { 64 * MiB };
        GuestRamRange *r = NULL;
        char *reason = NULL;
        size_t n = 0;

        assert_int_equal(guest_ram_find(smaps, strlen(smaps), sizes, 1, &r, &n, &reason), -ENOENT);
        assert_non_null(strstr(reason, "no read-write mapping of 134217728 bytes"));
        free(reason);
        reason = NULL;
        /* one 256 MiB memfd: the second backend of that size finds nothing (the heap is not a candidate) */
        assert_int_equal(guest_ram_find(smaps, strlen(smaps), twice, 2, &r, &n, &reason), -ENOENT);
        assert_non_null(strstr(reason, "backend 1"));
        free(reason);
        reason = NULL;
        assert_int_equal(guest_ram_find(two_anon, strlen(two_anon), anon, 1, &r, &n, &reason), -ENOTUNIQ);
        assert_non_null(strstr(reason, "2 anonymous mappings"));
        free(reason);
        assert_int_equal(guest_ram_find(smaps, strlen(smaps), sizes, 0, &r, &n, NULL), -EINVAL);
}

static void test_malformed(void **state) {
        static const char *const bad[] = {
                "Rss: 4 kB\n",                                          /* a field before any mapping */
                "7f0000000000-7f0004000000\n",                          /* a header cut short */
                "7f0004000000-7f0000000000 rw-p 00000000 00:00 0\n",    /* end before start */
                "zz-7f0004000000 rw-p 00000000 00:00 0\n",
        };
        uint64_t sizes[] = { 64 * MiB };
        GuestRamRange *r = NULL;
        size_t n = 0;
        char nul[] = "7f0000000000-7f0004000000 rw-p 00000000 00:00 0\n";

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (guest_ram_find(bad[i], strlen(bad[i]), sizes, 1, &r, &n, NULL) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
        nul[5] = '\0';
        assert_int_equal(guest_ram_find(nul, sizeof(nul) - 1, sizes, 1, &r, &n, NULL), -EBADMSG);
}

static void test_counting(void **state) {
        int query[] = { 0, 1, 1, -ENOENT, -EFAULT, 70 }, moved[] = { 1, 1, -EBUSY, -ENOMEM, -EBUSY, 0 };
        uint64_t per_node[NUMA_NODES_MAX] = {}, not_present = 0;
        GuestRamResult r = {};

        assert_int_equal(guest_ram_batches(0), 0);
        assert_int_equal(guest_ram_batches(1), 1);
        assert_int_equal(guest_ram_batches(NUMA_GUEST_RAM_BATCH), 1);
        assert_int_equal(guest_ram_batches(NUMA_GUEST_RAM_BATCH + 1), 2);
        assert_int_equal(guest_ram_batches(65536), 16);      /* 256 MiB of 4 KiB pages */

        guest_ram_count_residency(query, ELEMENTSOF(query), per_node, &not_present);
        assert_int_equal(per_node[0], 1);
        assert_int_equal(per_node[1], 2);
        assert_int_equal(not_present, 3);                     /* ENOENT, EFAULT and a node out of range */

        guest_ram_count_moves(moved, ELEMENTSOF(moved), UINT64_C(1) << 1, &r);
        assert_int_equal(r.pages_moved, 2);
        assert_int_equal(r.pages_failed, 4);
        assert_int_equal(r.n_failed, 3);
        assert_int_equal(r.failed[0].error, EBUSY);
        assert_int_equal(r.failed[0].pages, 2);
        assert_int_equal(r.failed[1].error, ENOMEM);
        assert_int_equal(r.failed[2].error, EAGAIN);          /* on node 0, not the target */

        assert_int_equal(guest_ram_target_node(0x6, 0), 1);
        assert_int_equal(guest_ram_target_node(0x6, 1), 2);
        assert_int_equal(guest_ram_target_node(0x6, 2), 1);
        assert_int_equal(guest_ram_target_node(0, 0), -EINVAL);
        assert_int_equal(migration_scope_from_string("guest-ram"), MIGRATION_SCOPE_GUEST_RAM);
        assert_int_equal(migration_scope_from_string("process"), MIGRATION_SCOPE_PROCESS);
        assert_true(migration_scope_from_string("guest") < 0);
}

static void test_move_self(void **state) {
        size_t ps = (size_t) sysconf(_SC_PAGESIZE), pages = NUMA_GUEST_RAM_BATCH + 904, touched = 4500;
        GuestRamRange range;
        GuestRamResult r;
        char *p;

        p = mmap(NULL, pages * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        for (size_t i = 0; i < touched; i++)
                p[i * ps] = 1;
        range = (GuestRamRange) { .start = (uintptr_t) p, .size = pages * ps, .page_size = ps };

        assert_int_equal(guest_ram_move(getpid(), &range, 1, 1, 1, &r), 0);
        assert_int_equal(r.pages_total, pages);
        assert_int_equal(r.pages_asked, touched);             /* resident pages only */
        assert_int_equal(r.pages_moved, touched);             /* already on node 0: status 0 */
        assert_int_equal(r.pages_failed, 0);
        assert_int_equal(r.calls, 2);                         /* two batches */
        assert_int_equal(r.before[0], touched);
        assert_int_equal(r.after[0], touched);
        assert_int_equal(r.not_present_before, pages - touched);
        assert_int_equal(r.not_present_after, pages - touched);

        /* a source set where nothing is: nothing asked, nothing moved */
        assert_int_equal(guest_ram_move(getpid(), &range, 1, UINT64_C(1) << 5, 1, &r), 0);
        assert_int_equal(r.pages_asked, 0);
        assert_int_equal(r.calls, 0);
        assert_int_equal(r.before[0], touched);
        munmap(p, pages * ps);
}

static void test_request_scope(void **state) {
        MigrationRequest req = MIGRATION_REQUEST_INIT;
        NumaError e = {};

        req.from = "0";
        req.to = "0";
        assert_int_equal(migration_request_validate(&req, NULL), 0);
        req.scope = "guest-ram";
        assert_int_equal(migration_request_validate(&req, NULL), 0);
        req.scope = "process";
        assert_int_equal(migration_request_validate(&req, NULL), 0);
        req.scope = "bogus";
        assert_int_equal(migration_request_validate(&req, &e), NUMA_ERROR_INVALID_PARAMETER);
        assert_string_equal(e.parameter, "scope");
        numa_error_done(&e);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_find),
                cmocka_unit_test(test_not_found),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_counting),
                cmocka_unit_test(test_move_self),
                cmocka_unit_test(test_request_scope),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
