/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QEMU's "info mtree -f" and "gpa2hva" output (qmp-mtree.h), from the recorded QEMU 7.2 output in tests/data/qmp
 * and hostile variants; and which monitor commands are refused unless forced (qmp-monitor.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/strv.h"
#include "qmp/qmp-monitor.h"
#include "qmp/qmp-mtree.h"

static int parse_file(const char *name, QmpMtree *ret) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        size_t size = 0;

        assert_true(asprintf(&path, "%s/%s", QMP_TRANSCRIPTS_DIR, name) > 0);
        assert_int_equal(read_full_file(path, QMP_MTREE_MAX_TEXT, &text, &size), 0);
        return qmp_mtree_parse(text, size, ret);
}

static int parse_text(const char *text) {
        QmpMtree t = {};
        int r = qmp_mtree_parse(text, strlen(text), &t);

        qmp_mtree_done(&t);
        return r;
}

static uint64_t ram_bytes(const QmpMtreeView *v, const char *region) {
        uint64_t sum = 0;

        for (size_t i = 0; i < v->n_ranges; i++)
                if (v->ranges[i].kind == QMP_MTREE_RAM && streq(v->ranges[i].name, region))
                        sum += qmp_mtree_range_size(v->ranges + i);
        return sum;
}

static void test_q35_memfd(void **state) {
        QmpMtree t = {};
        const QmpMtreeView *v;
        const QmpMtreeRange *r;

        assert_int_equal(parse_file("mtree-q35-memfd.txt", &t), 0);
        assert_int_equal(t.n_views, 4);
        v = qmp_mtree_find_view(&t, "memory");
        assert_non_null(v);
        assert_true(strv_contains(v->address_spaces, "cpu-memory-0"));
        assert_string_equal(v->root, "system");
        /* 64 MiB but the 256 KiB hole at 0xc0000 (option ROM and BIOS) */
        assert_int_equal(ram_bytes(v, "m0"), 64 * 1024 * 1024 - 256 * 1024);
        r = v->ranges + 3;
        assert_int_equal(r->start, 0x100000);
        assert_int_equal(r->last, 0x3ffffff);
        assert_int_equal(r->kind, QMP_MTREE_RAM);
        assert_true(r->has_offset);
        assert_int_equal(r->offset, 0x100000);
        assert_string_equal(r->name, "m0");
        assert_null(r->accelerators);
        assert_false(v->ranges[0].has_offset);
        assert_int_equal(v->ranges[1].kind, QMP_MTREE_ROM);
        /* the bus masters' view: "Root memory region: (none)", "No rendered FlatView" */
        assert_ptr_equal(qmp_mtree_find_view(&t, "mch"), t.views);
        assert_null(t.views[0].root);
        assert_int_equal(t.views[0].n_ranges, 0);
        assert_ptr_equal(qmp_mtree_find_view(&t, "I/O"), t.views + 2);
        assert_null(qmp_mtree_find_view(&t, "no-such-space"));
        qmp_mtree_done(&t);
}

static void test_pc_4g(void **state) {
        QmpMtree t = {};
        const QmpMtreeView *v;

        assert_int_equal(parse_file("mtree-pc-4g.txt", &t), 0);
        v = qmp_mtree_find_view(&t, "memory");
        assert_non_null(v);
        /* below 3 GiB and above 4 GiB: the whole 4 GiB but the hole */
        assert_int_equal(ram_bytes(v, "pc.ram"), 4ULL * 1024 * 1024 * 1024 - 256 * 1024);
        qmp_mtree_done(&t);

        assert_int_equal(parse_file("mtree-q35-3g-balloon.txt", &t), 0);
        assert_int_equal(ram_bytes(qmp_mtree_find_view(&t, "memory"), "pc.ram"), 3ULL * 1024 * 1024 * 1024 - 256 * 1024);
        qmp_mtree_done(&t);
}

static void test_variants(void **state) {
        const char *text = "FlatView #0\r\n AS \"memory\", root: system\r\n Root memory region: system\r\n"
                           "  0000000000000000-000000000009ffff (prio 0, nv-ram): pc ram @00000000000a0000 KVM\r\n"
                           "  00000000000a0000-00000000000bffff (prio -1, romd): vga lowmem KVM HAX\r\n"
                           "  00000000000c0000-00000000000cffff (prio 2, ramd): KVM\n";
        const QmpMtreeView *v;
        QmpMtree t = {};

        assert_int_equal(qmp_mtree_parse(text, strlen(text), &t), 0);
        v = qmp_mtree_find_view(&t, "memory");
        assert_int_equal(v->n_ranges, 3);
        assert_true(v->ranges[0].nonvolatile);
        assert_int_equal(v->ranges[0].kind, QMP_MTREE_RAM);
        assert_string_equal(v->ranges[0].name, "pc ram");
        assert_int_equal(v->ranges[0].offset, 0xa0000);
        assert_string_equal(v->ranges[0].accelerators, "KVM");
        assert_string_equal(v->ranges[1].name, "vga lowmem");
        assert_int_equal(v->ranges[1].priority, -1);
        assert_string_equal(v->ranges[1].accelerators, "KVM HAX");
        /* a region named like an accelerator stays a name */
        assert_string_equal(v->ranges[2].name, "KVM");
        assert_null(v->ranges[2].accelerators);
        qmp_mtree_done(&t);
}

static void test_malformed(void **state) {
        static const char *const head = "FlatView #0\n AS \"memory\", root: system\n Root memory region: system\n";
        static const char *const bad_ranges[] = {
                "  0000000000000010-000000000000000f (prio 0, ram): x\n",           /* last < start */
                "  00000000000000000-0000000000000010 (prio 0, ram): x\n",          /* 17 digits */
                "  0000000000000000-0000000000000010 (prio 0, ram):\n",             /* no name */
                "  0000000000000000-0000000000000010 (prio 0, flash): x\n",         /* unknown kind */
                "  0000000000000000-0000000000000010 (prio 0, ram): x @zz\n",       /* bad offset */
                "  0000000000000000-0000000000000010 (prio x, ram): x\n",
                "  0000000000000000-0000000000000010 (prio 99999999999, ram): x\n",
                "  0000000000000000-0000000000000010 (prio 0, ram): x\x01y\n",      /* control character */
                ("  0000000000000000-0000000000000010 (prio 0, ram): x\n"
                 "  0000000000000010-0000000000000020 (prio 0, ram): y\n"),         /* overlap */
                "   0000000000000000-0000000000000010 (prio 0, ram): x\n",          /* indentation */
                "  something else\n",
        };
        char buf[1024];
        _cleanup_free_ char *big = NULL;

        assert_int_equal(parse_text(""), -EBADMSG);
        assert_int_equal(parse_text("FlatView #1\n AS \"memory\", root: system\n"), -EBADMSG);  /* numbering */
        assert_int_equal(parse_text("FlatView #0\n Root memory region: system\n"), -EBADMSG);   /* no AS */
        assert_int_equal(parse_text(" AS \"memory\", root: system\n"), -EBADMSG);               /* no view */
        assert_int_equal(parse_text("FlatView #0\n AS \"memory\", root: system\n  0000000000000000-0000000000000010 "
                                    "(prio 0, ram): x\n"), -EBADMSG);                           /* no root line */
        assert_int_equal(parse_text("FlatView #0\n AS \"mem\"ory\", root: system\n Root memory region: system\n"),
                         -EBADMSG);
        for (size_t i = 0; i < ELEMENTSOF(bad_ranges); i++) {
                assert_true(snprintf(buf, sizeof(buf), "%s%s", head, bad_ranges[i]) < (int) sizeof(buf));
                if (parse_text(buf) != -EBADMSG)
                        fail_msg("accepted: %s", bad_ranges[i]);
        }
        /* a NUL in the text, an over-long line, over the size bound */
        assert_int_equal(qmp_mtree_parse("FlatView #0\0\n", 13, &(QmpMtree) {}), -EBADMSG);
        big = malloc(QMP_MTREE_MAX_TEXT + 1);
        assert_non_null(big);
        memset(big, 'x', QMP_MTREE_MAX_TEXT + 1);
        assert_int_equal(qmp_mtree_parse(big, 2000, &(QmpMtree) {}), -EBADMSG);
        assert_int_equal(qmp_mtree_parse(big, QMP_MTREE_MAX_TEXT + 1, &(QmpMtree) {}), -EFBIG);
}

static void test_gpa2hva(void **state) {
        _cleanup_free_ char *region = NULL;
        uint64_t gpa = 0, hva = 0;
        const char *ok = "Host virtual address for 0x100000 (m0) is 0x7f01b80ff000\r\n";

        assert_int_equal(qmp_gpa2hva_parse(ok, strlen(ok), &gpa, &region, &hva), 0);
        assert_int_equal(gpa, 0x100000);
        assert_int_equal(hva, 0x7f01b80ff000);
        assert_string_equal(region, "m0");
        assert_int_equal(qmp_gpa2hva_parse("Memory at address 0xfee00000 is not RAM\r\n", 41, NULL, NULL, &hva), -ENXIO);
        assert_int_equal(qmp_gpa2hva_parse("No memory is mapped at address 0x500000000\r\n", 44, NULL, NULL, &hva),
                         -ENXIO);
        assert_int_equal(qmp_gpa2hva_parse("Host virtual address for 0x1 (m0) is 0x\r\n", 41, NULL, NULL, &hva), -EBADMSG);
        assert_int_equal(qmp_gpa2hva_parse("Host virtual address for 0x1 (m0) is 0x12 \n", 43, NULL, NULL, &hva),
                         -EBADMSG);
        assert_int_equal(qmp_gpa2hva_parse("unknown command: 'gpa2hva'\r\n", 28, NULL, NULL, &hva), -EBADMSG);
}

static void test_refusal(void **state) {
        _cleanup_json_ json_object *hmp_quit = json_tokener_parse("{\"command-line\": \"  quit now\"}"),
                                   *hmp_info = json_tokener_parse("{\"command-line\": \"info status\"}");
        _cleanup_free_ char *verb = NULL;

        /* QMP */
        static const char *const refused[] = { "quit", "system_reset", "system_powerdown", "stop", "cont", "device_del",
                                               "migrate", "migrate-incoming", "migrate_cancel", "balloon", "object-del",
                                               "netdev_del", "chardev-remove", "chardev-change", "x-exit-preconfig",
                                               "snapshot-load", "set-action", "watchdog-set-action", "calc-dirty-rate",
                                               "qom-set", "dump-guest-memory", "inject-nmi", "system_wakeup" };
        for (size_t i = 0; i < ELEMENTSOF(refused); i++)
                assert_non_null(qmp_monitor_qmp_refusal(refused[i], NULL));
        assert_null(qmp_monitor_qmp_refusal("query-status", NULL));
        assert_null(qmp_monitor_qmp_refusal("query-migrate", NULL));
        assert_null(qmp_monitor_qmp_refusal("quit-not", NULL));
        assert_null(qmp_monitor_qmp_refusal("device_add", NULL));
        /* an HMP line carried by QMP */
        assert_non_null(qmp_monitor_qmp_refusal("human-monitor-command", hmp_quit));
        assert_null(qmp_monitor_qmp_refusal("human-monitor-command", hmp_info));
        assert_null(qmp_monitor_qmp_refusal("human-monitor-command", NULL));

        /* HMP: the verb, with QEMU's short forms and its blanks */
        static const char *const hmp_refused[] = { "q", "quit", "\tq", "system_reset", "system_powerdown", "s", "stop",
                                                   "c", "cont", "device_del balloon0", "migrate -d tcp:x:1",
                                                   "migrate_set_parameter x 1", "balloon 100", "object_del m0",
                                                   "netdev_del n", "chardev-remove charmonitor", "loadvm x", "watchdog_action pause",
                                                   "\vquit", "device_del/machine/peripheral/balloon0", "q/",
                                                   "calc_dirty_rate -b 1", "o /w 0x604 0x2000", "gdbserver",
                                                   "qom-set /machine/peripheral/vmem0dev requested-size 0", "savevm x",
                                                   "nmi" };
        for (size_t i = 0; i < ELEMENTSOF(hmp_refused); i++)
                if (!qmp_monitor_hmp_refusal(hmp_refused[i]))
                        fail_msg("not refused: %s", hmp_refused[i]);
        assert_null(qmp_monitor_hmp_refusal("info status"));
        assert_null(qmp_monitor_hmp_refusal("x/4xb 0"));                /* reads, with a /fmt: "x" */
        assert_null(qmp_monitor_hmp_refusal("info migrate"));
        assert_null(qmp_monitor_hmp_refusal("quitx"));
        assert_null(qmp_monitor_hmp_refusal("cq"));
        assert_null(qmp_monitor_hmp_refusal(""));
        assert_null(qmp_monitor_hmp_refusal("   "));

        assert_int_equal(qmp_monitor_hmp_verb("  info   mtree -f", &verb), 0);
        assert_string_equal(verb, "info");
        assert_int_equal(qmp_monitor_hmp_verb(" \t ", &(char *) { NULL }), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_q35_memfd),
                cmocka_unit_test(test_pc_4g),
                cmocka_unit_test(test_variants),
                cmocka_unit_test(test_malformed),
                cmocka_unit_test(test_gpa2hva),
                cmocka_unit_test(test_refusal),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
