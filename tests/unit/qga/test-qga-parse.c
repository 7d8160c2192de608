/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The parsers of guest files (qga-parse.c) on real samples (this host and a Debian 12 test guest, kept in the
 * fuzz corpus) and on what a kernel never writes; the snapshot's unavailable parts; the delta of two snapshots. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "qga/qga-ops.h"

static char *sample(const char *name, size_t *ret_size) {
        _cleanup_free_ char *path = NULL;
        char *text = NULL;

        assert_true(asprintf(&path, "%s/%s", QGA_PARSE_CORPUS, name) > 0);
        assert_int_equal(read_full_file(path, 1024 * 1024, &text, ret_size), 0);
        return text;
}

static const QgaCounter *find(const QgaCounter *a, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (streq(a[i].name, name))
                        return &a[i];
        return NULL;
}

static const QgaUnavailable *find_unavailable(const QgaUnavailable *a, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (streq(a[i].name, name))
                        return &a[i];
        return NULL;
}

/* ---- vmstat ---- */

static void test_vmstat_samples(void **state) {
        static const char *const names[] = { "debian-guest-vmstat", "host-vmstat" };

        for (size_t s = 0; s < ELEMENTSOF(names); s++) {
                _cleanup_free_ char *text = NULL;
                QgaCounter *a = NULL;
                size_t size, n = 0, lines = 0;

                text = sample(names[s], &size);
                for (size_t i = 0; i < size; i++)
                        lines += text[i] == '\n';
                assert_int_equal(qga_parse_vmstat(text, size, &a, &n), 0);
                assert_int_equal(n, lines);                     /* every key, in file order */
                assert_string_equal(a[0].name, "nr_free_pages");
                assert_non_null(find(a, n, "pgfault"));
                assert_true(find(a, n, "pgfault")->value > 0);
                qga_counters_free_array(a, n);
        }
}

static void test_vmstat_values(void **state) {
        static const char text[] = "nr_free_pages 123\npgfault 18446744073709551615\nnuma_hit 0";      /* no final \n */
        QgaCounter *a = NULL;
        size_t n = 0;

        assert_int_equal(qga_parse_vmstat(text, strlen(text), &a, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(a[0].name, "nr_free_pages");
        assert_int_equal(a[0].value, 123);
        assert_true(a[1].value == UINT64_MAX);
        assert_string_equal(a[2].name, "numa_hit");
        assert_int_equal(a[2].value, 0);
        qga_counters_free_array(a, n);
}

static void test_vmstat_refused(void **state) {
        static const char *const bad[] = {
                "",
                "\n",
                "pgfault 1\n\npgmajfault 2\n",          /* empty line */
                "pgfault -1\n",
                "pgfault +1\n",
                "pgfault\n",
                "pgfault \n",
                "pgfault 1 \n",
                "pgfault  1\n",
                "pgfault\t1\n",
                "pgfault 1x\n",
                " pgfault 1\n",
                "pg-fault 1\n",
                "pgfault 18446744073709551616\n",       /* one over UINT64_MAX: no wrap, no clamp */
                "pgfault 1\npgfault 2\n",               /* duplicate */
                "pgfault 1\nnuma_hit 2\ngarbage\n",     /* one bad line refuses the file */
                "a234567890123456789012345678901234567890123456789012345678901234567890 1\n",
                "\xff\xfe 1\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                QgaCounter *a = (QgaCounter *) 0x1;
                size_t n = 77;

                assert_int_equal(qga_parse_vmstat(bad[i], strlen(bad[i]), &a, &n), -EBADMSG);
                assert_ptr_equal(a, (QgaCounter *) 0x1);
                assert_int_equal(n, 77);
        }

        /* A NUL inside the given size. */
        {
                QgaCounter *a = NULL;
                size_t n = 0;

                assert_int_equal(qga_parse_vmstat("pgfault 1\0\npgmajfault 2\n", 24, &a, &n), -EBADMSG);
        }
}

static void test_vmstat_bounded(void **state) {
        _cleanup_free_ char *text = NULL;
        size_t l = 0, cap = 2000 * 32;
        QgaCounter *a = NULL;
        size_t n = 0;

        text = malloc(cap);
        assert_non_null(text);
        for (unsigned i = 0; i < 2000; i++)
                l += (size_t) snprintf(text + l, cap - l, "key%u %u\n", i, i);
        assert_int_equal(qga_parse_vmstat(text, l, &a, &n), -EBADMSG);
}

/* ---- meminfo ---- */

static void test_meminfo_samples(void **state) {
        _cleanup_free_ char *text = NULL, *node = NULL;
        QgaCounter *a = NULL;
        size_t size, n = 0;
        char *p;
        uint64_t kb;

        text = sample("debian-guest-meminfo", &size);
        assert_int_equal(qga_parse_meminfo(text, size, &a, &n), 0);
        assert_string_equal(a[0].name, "MemTotal");
        p = strstr(text, "MemTotal:");
        assert_non_null(p);
        assert_int_equal(sscanf(p, "MemTotal: %" SCNu64 " kB", &kb), 1);
        assert_true(a[0].value == kb * 1024);
        /* Lines without a unit are taken as they are. */
        assert_non_null(find(a, n, "HugePages_Total"));
        assert_int_equal(find(a, n, "HugePages_Total")->value, 0);
        assert_non_null(find(a, n, "Hugepagesize"));
        assert_int_equal(find(a, n, "Hugepagesize")->value, 2048 * 1024);
        qga_counters_free_array(a, n);

        free(text);
        text = sample("host-meminfo", &size);
        assert_int_equal(qga_parse_meminfo(text, size, &a, &n), 0);
        assert_non_null(find(a, n, "Committed_AS"));
        qga_counters_free_array(a, n);

        /* A node's file: "Node 1 MemTotal: …" */
        node = sample("debian-guest-node1-meminfo", &size);
        assert_int_equal(qga_parse_meminfo(node, size, &a, &n), 0);
        assert_string_equal(a[0].name, "MemTotal");
        assert_true(a[0].value > 0);
        assert_non_null(find(a, n, "MemFree"));
        qga_counters_free_array(a, n);
}

static void test_meminfo_refused(void **state) {
        static const char *const bad[] = {
                "",
                "MemTotal: 18014398509481984 kB\n",     /* × 1024 overflows */
                "MemTotal: 18446744073709551616\n",
                "MemTotal: 100 MB\n",
                "MemTotal: 100 kB \n",
                "MemTotal: 100kB\n",
                "MemTotal:100 kB\n",
                "MemTotal 100 kB\n",
                "MemTotal: -1 kB\n",
                "MemTotal: kB\n",
                ": 1 kB\n",
                "MemTotal: 1 kB\nMemTotal: 2 kB\n",
                "Node 0 MemTotal: 1 kB\nNode 1 MemFree: 2 kB\n",        /* two nodes in one file */
                "Node 0 MemTotal: 1 kB\nMemFree: 2 kB\n",
                "Node x MemTotal: 1 kB\n",
                "MemTotal: 1 kB\nMemFree: 2 kB\n\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                QgaCounter *a = (QgaCounter *) 0x1;
                size_t n = 77;

                assert_int_equal(qga_parse_meminfo(bad[i], strlen(bad[i]), &a, &n), -EBADMSG);
                assert_ptr_equal(a, (QgaCounter *) 0x1);
                assert_int_equal(n, 77);
        }

        /* The largest kB value that fits. */
        {
                static const char ok[] = "MemTotal: 18014398509481983 kB\nDirectMap4k(x): 7\n";
                QgaCounter *a = NULL;
                size_t n = 0;

                assert_int_equal(qga_parse_meminfo(ok, strlen(ok), &a, &n), 0);
                assert_true(a[0].value == UINT64_C(18014398509481983) * 1024);
                assert_int_equal(a[1].value, 7);
                qga_counters_free_array(a, n);
        }
}

/* ---- interrupts ---- */

static const char *const tlb_cal[] = { "TLB", "CAL", NULL };

static void test_interrupts_samples(void **state) {
        _cleanup_free_ char *text = NULL;
        QgaIrqRow rows[2] = {};
        unsigned cpus = 0;
        size_t size;

        text = sample("debian-guest-interrupts", &size);
        assert_int_equal(qga_parse_interrupts(text, size, tlb_cal, rows, &cpus), 0);
        assert_int_equal(cpus, 2);
        assert_true(rows[0].present);
        assert_int_equal(rows[0].n_cpus, 2);
        assert_int_equal(rows[0].per_cpu[0], 0);
        assert_string_equal(rows[0].description, "TLB shootdowns");
        assert_true(rows[1].present);
        assert_int_equal(rows[1].per_cpu[0], 1209);
        assert_int_equal(rows[1].per_cpu[1], 148);
        assert_string_equal(rows[1].description, "Function call interrupts");
        assert_int_equal(rows[1].cpu_ids[0], 0);
        assert_int_equal(rows[1].cpu_ids[1], 1);
        qga_irq_row_done(&rows[0]);
        qga_irq_row_done(&rows[1]);

        {
                /* CPU1 offline: the file lists CPU0 and CPU2, and the columns say which CPU they are. */
                static const char offline[] =
                        "           CPU0       CPU2       \n"
                        "TLB:          3          7   TLB shootdowns\n";
                static const char *const tlb[] = { "TLB", NULL };
                QgaIrqRow row = {};

                assert_int_equal(qga_parse_interrupts(offline, strlen(offline), tlb, &row, &cpus), 0);
                assert_int_equal(cpus, 2);
                assert_int_equal(row.cpu_ids[0], 0);
                assert_int_equal(row.cpu_ids[1], 2);
                assert_int_equal(row.per_cpu[1], 7);
                qga_irq_row_done(&row);
        }

        free(text);
        text = sample("host-interrupts", &size);
        assert_int_equal(qga_parse_interrupts(text, size, tlb_cal, rows, &cpus), 0);
        assert_true(cpus >= 1);
        assert_true(rows[1].present);
        assert_int_equal(rows[1].n_cpus, cpus);
        qga_irq_row_done(&rows[0]);
        qga_irq_row_done(&rows[1]);
}

static void test_interrupts_rows(void **state) {
        /* arm64-like: no TLB/CAL rows; a row with one count (ERR) is fine when nobody asks for it. */
        static const char arm[] =
                "           CPU0       CPU1       CPU2       \n"
                " 11:       1000        900        800     GICv3  27 Level     arch_timer\n"
                "IPI0:         5          6          7       Rescheduling interrupts\n"
                "Err:          0\n";
        static const char *const ipi[] = { "IPI0", "TLB", NULL };
        QgaIrqRow rows[2] = {};
        unsigned cpus = 0;

        assert_int_equal(qga_parse_interrupts(arm, strlen(arm), ipi, rows, &cpus), 0);
        assert_int_equal(cpus, 3);
        assert_true(rows[0].present);
        assert_int_equal(rows[0].per_cpu[2], 7);
        assert_string_equal(rows[0].description, "Rescheduling interrupts");
        assert_false(rows[1].present);
        assert_null(rows[1].per_cpu);
        qga_irq_row_done(&rows[0]);

        /* A requested row with nothing after the counts has an empty description. */
        assert_int_equal(qga_parse_interrupts("  CPU0\nTLB: 4\n", 14, tlb_cal, rows, &cpus), 0);
        assert_int_equal(cpus, 1);
        assert_int_equal(rows[0].per_cpu[0], 4);
        assert_string_equal(rows[0].description, "");
        qga_irq_row_done(&rows[0]);
}

static void test_interrupts_refused(void **state) {
        static const char *const bad[] = {
                "",
                "\n",
                "CPU0 CPU1\n",                                          /* header only is fine … */
                "   CPUx\nTLB: 1\n",
                "   CPU0 cpu1\nTLB: 1 1\n",
                "   CPU0 CPU1\nTLB: 1\n",                               /* fewer counts than CPUs */
                "   CPU0 CPU1\nTLB: 1 x TLB shootdowns\n",
                "   CPU0 CPU1\nTLB: 1 -2 TLB shootdowns\n",
                "   CPU0 CPU1\nTLB: 1 18446744073709551616\n",
                "   CPU0 CPU1\nTLB: 1 2 a\nTLB: 1 2 b\n",               /* the row twice */
                "   CPU0 CPU1\nno colon here\n",
                "   CPU0 CPU1\nNMI: 1 2 \x01\n",                        /* control characters */
                "   CPU0 CPU1\n: 1 2\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                QgaIrqRow rows[2] = { { .n_cpus = 99 }, { .n_cpus = 99 } };
                unsigned cpus = 12345;
                int r = qga_parse_interrupts(bad[i], strlen(bad[i]), tlb_cal, rows, &cpus);

                if (i == 2) {   /* … when the rows are merely absent */
                        assert_int_equal(r, 0);
                        assert_false(rows[0].present);
                        continue;
                }
                assert_int_equal(r, -EBADMSG);
                assert_int_equal(cpus, 12345);
                assert_int_equal(rows[0].n_cpus, 99);
                assert_int_equal(rows[1].n_cpus, 99);
        }
}

/* ---- lists ---- */

static void test_id_list(void **state) {
        static const struct {
                const char *text;
                size_t n;
                unsigned first, last;
        } good[] = {
                { "0-1\n", 2, 0, 1 },
                { "0\n", 1, 0, 0 },
                { "0,2-3,7", 4, 0, 7 },
                { "\n", 0, 0, 0 },
                { "", 0, 0, 0 },
                { "4095", 1, 4095, 4095 },
        };
        static const char *const bad[] = { "1-0", "0,0", "2,1", "0-2,2", "0,", ",0", "0--1", "4096", "0 1", "0\n\n",
                                           "-1", "0-" };
        unsigned *ids = NULL;
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                assert_int_equal(qga_parse_id_list(good[i].text, strlen(good[i].text), 4095, &ids, &n), 0);
                assert_int_equal(n, good[i].n);
                if (n > 0) {
                        assert_int_equal(ids[0], good[i].first);
                        assert_int_equal(ids[n - 1], good[i].last);
                }
                free(ids);
                ids = NULL;
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(qga_parse_id_list(bad[i], strlen(bad[i]), 4095, &ids, &n), -EBADMSG);
}

/* ---- the snapshot ---- */

static void test_counters_debian_guest(void **state) {
        _cleanup_free_ char *vmstat = NULL, *irq = NULL, *meminfo = NULL;
        size_t vs, is, ms;
        QgaGuestCounters c = {};
        const QgaUnavailable *u;

        vmstat = sample("debian-guest-vmstat", &vs);
        irq = sample("debian-guest-interrupts", &is);
        meminfo = sample("debian-guest-meminfo", &ms);
        assert_int_equal(qga_guest_counters_parse(&c, vmstat, vs, irq, is, meminfo, ms), 0);

        assert_true(c.n_vmstat > 100);
        assert_true(c.n_meminfo > 30);
        assert_int_equal(c.interrupt_cpus, 2);
        assert_true(c.tlb.present);
        assert_true(c.cal.present);
        /* Debian's kernel lacks CONFIG_DEBUG_TLBFLUSH: the four counters are unavailable, and nothing else. */
        assert_int_equal(c.n_unavailable, 4);
        u = find_unavailable(c.unavailable, c.n_unavailable, "nr_tlb_remote_flush_received");
        assert_non_null(u);
        assert_string_equal(u->reason, "unavailable: guest kernel without CONFIG_DEBUG_TLBFLUSH");
        assert_non_null(find_unavailable(c.unavailable, c.n_unavailable, "nr_tlb_remote_flush"));
        assert_non_null(find_unavailable(c.unavailable, c.n_unavailable, "nr_tlb_local_flush_all"));
        assert_non_null(find_unavailable(c.unavailable, c.n_unavailable, "nr_tlb_local_flush_one"));
        assert_null(find(c.vmstat, c.n_vmstat, "nr_tlb_remote_flush"));         /* not invented as 0 */
        qga_guest_counters_done(&c);
        assert_null(c.vmstat);
}

static void test_counters_unavailable(void **state) {
        static const char vmstat[] = "pgfault 10\nnr_tlb_remote_flush 1\nnr_tlb_remote_flush_received 2\n"
                                     "nr_tlb_local_flush_all 3\nnr_tlb_local_flush_one 4\n";
        static const char vmstat_bad[] = "pgfault 10\npgmajfault ten\n";
        static const char irq_no_cal[] = "  CPU0\nTLB: 1 TLB shootdowns\n";
        static const char meminfo[] = "MemTotal: 4 kB\n";
        QgaGuestCounters c = {};
        const QgaUnavailable *u;

        /* A kernel with CONFIG_DEBUG_TLBFLUSH; an interrupts file without the CAL: row. */
        assert_int_equal(qga_guest_counters_parse(&c, vmstat, strlen(vmstat), irq_no_cal, strlen(irq_no_cal), meminfo,
                                                  strlen(meminfo)), 0);
        assert_int_equal(c.n_vmstat, 5);
        assert_int_equal(c.n_unavailable, 1);
        assert_string_equal(c.unavailable[0].name, "cal");
        assert_non_null(strstr(c.unavailable[0].reason, "no CAL: row"));
        assert_int_equal(c.meminfo[0].value, 4096);
        qga_guest_counters_done(&c);

        /* A vmstat that does not parse: unavailable with the line, no nr_tlb_* entries of its own, no counters. */
        assert_int_equal(qga_guest_counters_parse(&c, vmstat_bad, strlen(vmstat_bad), NULL, 0, NULL, 0), 0);
        assert_int_equal(c.n_vmstat, 0);
        assert_int_equal(c.n_unavailable, 1);
        u = &c.unavailable[0];
        assert_string_equal(u->name, "vmstat");
        assert_non_null(strstr(u->reason, "line 2"));
        assert_false(c.tlb.present);
        qga_guest_counters_done(&c);
}

/* ---- the delta ---- */

static void test_delta(void **state) {
        static const char v1[] = "pgfault 10\npgmajfault 5\nnr_free_pages 100\nonly_first 1\n";
        static const char v2[] = "pgfault 25\npgmajfault 5\nnr_free_pages 90\nonly_second 1\n";
        static const char i1[] = "  CPU0 CPU1\nTLB: 1 2 TLB shootdowns\nCAL: 5 5 Function call interrupts\n";
        static const char i2[] = "  CPU0 CPU1\nTLB: 4 2 TLB shootdowns\n";
        QgaGuestCounters a = {}, b = {};
        QgaCounter *d = NULL;
        QgaUnavailable *u = NULL;
        size_t n = 0, nu = 0;

        assert_int_equal(qga_guest_counters_parse(&a, v1, strlen(v1), i1, strlen(i1), NULL, 0), 0);
        assert_int_equal(qga_guest_counters_parse(&b, v2, strlen(v2), i2, strlen(i2), NULL, 0), 0);
        assert_int_equal(qga_guest_counters_delta(&a, &b, &d, &n, &u, &nu), 0);

        assert_int_equal(find(d, n, "pgfault")->value, 15);
        assert_int_equal(find(d, n, "pgmajfault")->value, 0);
        assert_null(find(d, n, "nr_free_pages"));       /* went down: not a delta */
        assert_non_null(strstr(find_unavailable(u, nu, "nr_free_pages")->reason, "went down from 100 to 90"));
        assert_non_null(strstr(find_unavailable(u, nu, "only_first")->reason, "only in the first"));
        assert_non_null(strstr(find_unavailable(u, nu, "only_second")->reason, "only in the second"));
        assert_int_equal(find(d, n, "tlb.cpu0")->value, 3);
        assert_int_equal(find(d, n, "tlb.cpu1")->value, 0);
        assert_null(find(d, n, "cal.cpu0"));
        assert_non_null(strstr(find_unavailable(u, nu, "cal")->reason, "missing in the second"));
        assert_int_equal(n, 4);
        assert_int_equal(nu, 4);
        qga_counters_free_array(d, n);
        qga_unavailable_free_array(u, nu);
        qga_guest_counters_done(&b);

        /* The guest's CPU columns changed (a CPU went offline). */
        static const char i3[] = "  CPU0\nTLB: 9 TLB shootdowns\nCAL: 9 Function call interrupts\n";
        assert_int_equal(qga_guest_counters_parse(&b, v1, strlen(v1), i3, strlen(i3), NULL, 0), 0);
        assert_int_equal(qga_guest_counters_delta(&a, &b, &d, &n, &u, &nu), 0);
        assert_non_null(strstr(find_unavailable(u, nu, "tlb")->reason, "changed from 2 to 1"));
        assert_non_null(find_unavailable(u, nu, "cal"));
        assert_int_equal(n, 4);         /* the vmstat keys, all 0 */
        qga_counters_free_array(d, n);
        qga_unavailable_free_array(u, nu);
        qga_guest_counters_done(&a);
        qga_guest_counters_done(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vmstat_samples),
                cmocka_unit_test(test_vmstat_values),
                cmocka_unit_test(test_vmstat_refused),
                cmocka_unit_test(test_vmstat_bounded),
                cmocka_unit_test(test_meminfo_samples),
                cmocka_unit_test(test_meminfo_refused),
                cmocka_unit_test(test_interrupts_samples),
                cmocka_unit_test(test_interrupts_rows),
                cmocka_unit_test(test_interrupts_refused),
                cmocka_unit_test(test_id_list),
                cmocka_unit_test(test_counters_debian_guest),
                cmocka_unit_test(test_counters_unavailable),
                cmocka_unit_test(test_delta),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
