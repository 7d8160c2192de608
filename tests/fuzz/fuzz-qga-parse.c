/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds the input to every parser of guest files (qga-parse.c): /proc/vmstat, /proc/meminfo (and a node's),
 * /proc/interrupts with the TLB and CAL rows asked for, the sysfs list format, the whole snapshot built from the
 * input as all three files, and the delta of that snapshot with itself. Besides the sanitizers it checks the
 * parsers' contract: failure is -EBADMSG (or -ENOMEM) with the outputs untouched; success means non-empty names,
 * kB values scaled without overflow, one count per CPU column in a present row, increasing list ids, a delta of
 * a snapshot with itself all zero. */

#include "fuzz.h"
#include "qga/qga-ops.h"

static void check_counters(const QgaCounter *a, size_t n) {
        if (n == 0 || !a)
                abort();
        for (size_t i = 0; i < n; i++)
                if (!a[i].name || !a[i].name[0])
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const labels[] = { "TLB", "CAL", NULL };
        const char *text = (const char *) data;
        QgaCounter *a = (QgaCounter *) 0x1;
        size_t n = 77;
        QgaIrqRow rows[2] = { { .n_cpus = 99 }, { .n_cpus = 99 } };
        unsigned cpus = 12345, *ids = NULL;
        QgaGuestCounters c = {};
        QgaCounter *d = NULL;
        QgaUnavailable *u = NULL;
        size_t nd = 0, nu = 0;
        int r;

        if (size > 1024 * 1024)
                return 0;
        fuzz_setup_logging();

        r = qga_parse_vmstat(text, size, &a, &n);
        if (r < 0) {
                FUZZ_CHECK_ERROR(r, -EBADMSG, -ENOMEM);
                if (a != (QgaCounter *) 0x1 || n != 77)
                        abort();
        } else {
                check_counters(a, n);
                qga_counters_free_array(a, n);
        }

        a = (QgaCounter *) 0x1;
        n = 77;
        r = qga_parse_meminfo(text, size, &a, &n);
        if (r < 0) {
                FUZZ_CHECK_ERROR(r, -EBADMSG, -ENOMEM);
                if (a != (QgaCounter *) 0x1 || n != 77)
                        abort();
        } else {
                check_counters(a, n);
                qga_counters_free_array(a, n);
        }

        r = qga_parse_interrupts(text, size, labels, rows, &cpus);
        if (r < 0) {
                FUZZ_CHECK_ERROR(r, -EBADMSG, -ENOMEM);
                if (cpus != 12345 || rows[0].n_cpus != 99 || rows[1].n_cpus != 99)
                        abort();
        } else {
                if (cpus == 0)
                        abort();
                for (size_t k = 0; k < 2; k++) {
                        if (rows[k].present && (rows[k].n_cpus != cpus || !rows[k].per_cpu || !rows[k].description))
                                abort();
                        if (!rows[k].present && (rows[k].per_cpu || rows[k].n_cpus != 0))
                                abort();
                        qga_irq_row_done(&rows[k]);
                }
        }

        r = qga_parse_id_list(text, size, 4095, &ids, &n);
        if (r < 0)
                FUZZ_CHECK_ERROR(r, -EBADMSG, -ENOMEM);
        else {
                for (size_t i = 0; i < n; i++)
                        if (ids[i] > 4095 || (i > 0 && ids[i] <= ids[i - 1]))
                                abort();
                free(ids);
        }

        /* The snapshot from the input as all three files, and its delta with itself: all zero, nothing
         * unavailable but the rows it lacks. */
        if (qga_guest_counters_parse(&c, text, size, text, size, text, size) < 0)
                abort();
        for (size_t i = 0; i < c.n_unavailable; i++)
                if (!c.unavailable[i].name || !c.unavailable[i].reason)
                        abort();
        if (qga_guest_counters_delta(&c, &c, &d, &nd, &u, &nu) < 0)
                abort();
        if (nd != c.n_vmstat + (c.tlb.present ? c.tlb.n_cpus : 0) + (c.cal.present ? c.cal.n_cpus : 0))
                abort();
        for (size_t i = 0; i < nd; i++)
                if (d[i].value != 0)
                        abort();
        if (nu != (size_t) ((c.tlb.present ? 0 : 1) + (c.cal.present ? 0 : 1)))
                abort();
        qga_counters_free_array(d, nd);
        qga_unavailable_free_array(u, nu);
        qga_guest_counters_done(&c);
        return 0;
}
