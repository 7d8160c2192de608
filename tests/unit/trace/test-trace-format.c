/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tracepoint formats (trace-format.h) on fixture trees (tests/data/trace: a 6.18 host's files, a 4.x-layout
 * kvm_exit under the debugfs path) and on formats no kernel writes. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "basic/strv.h"
#include "trace/trace-format.h"

static char *data_dir(const char *name) {
        char *p;

        assert_true(asprintf(&p, "%s/trace/%s", TRACE_DATA, name) > 0);
        return p;
}

static char *tracing_dir(const char *root_name) {
        _cleanup_free_ char *root = data_dir(root_name), *reason = NULL;
        char *dir = NULL;

        assert_int_equal(trace_find_tracing_dir(root, &dir, &reason), 0);
        assert_null(reason);
        return dir;
}

static const char *name_of(const TraceSymbol *s, size_t n, uint64_t value) {
        for (size_t i = 0; i < n; i++)
                if (s[i].value == value)
                        return s[i].name;
        return NULL;
}

static void test_find_tracing_dir(void **state) {
        _cleanup_free_ char *host = data_dir("host"), *old = data_dir("old"), *none = data_dir("nothing-here");
        _cleanup_free_ char *dir = NULL, *reason = NULL, *expected = NULL;

        assert_int_equal(trace_find_tracing_dir(host, &dir, &reason), 0);
        expected = path_join(host, "sys/kernel/tracing");
        assert_string_equal(dir, expected);
        dir = mfree(dir);
        expected = mfree(expected);

        /* Only the debugfs path has events/ */
        assert_int_equal(trace_find_tracing_dir(old, &dir, &reason), 0);
        expected = path_join(old, "sys/kernel/debug/tracing");
        assert_string_equal(dir, expected);
        dir = mfree(dir);

        assert_int_equal(trace_find_tracing_dir(none, &dir, &reason), -ENOENT);
        assert_null(dir);
        assert_non_null(reason);
        assert_non_null(strstr(reason, "tracefs is not mounted at /sys/kernel/tracing"));
        assert_int_equal(trace_find_tracing_dir(NULL, &dir, &reason), -EINVAL);
}

static void test_event_id(void **state) {
        _cleanup_free_ char *dir = tracing_dir("host");
        uint64_t id = 0;

        assert_int_equal(trace_event_id(dir, "kvm", "kvm_exit", &id), 0);
        assert_int_equal(id, 103);
        assert_int_equal(trace_event_id(dir, "tlb", "tlb_flush", &id), 0);
        assert_int_equal(id, 188);
        assert_int_equal(trace_event_id(dir, "migrate", "mm_migrate_pages", &id), 0);
        assert_int_equal(id, 713);
        assert_int_equal(trace_event_id(dir, "kvm", "kvm_nothing", &id), -ENOENT);
        assert_int_equal(trace_event_id(dir, "nosys", "kvm_exit", &id), -ENOENT);
        /* Names from a definition never walk out of events/ */
        assert_int_equal(trace_event_id(dir, "..", "kvm_exit", &id), -EINVAL);
        assert_int_equal(trace_event_id(dir, "kvm", "../../kvm/kvm_exit", &id), -EINVAL);
        assert_int_equal(trace_event_id(dir, "", "kvm_exit", &id), -EINVAL);
        assert_false(trace_name_is_valid("a/b"));
        assert_false(trace_name_is_valid("a b"));
        assert_true(trace_name_is_valid("sched_switch"));
}

static void test_list_events(void **state) {
        _cleanup_free_ char *dir = tracing_dir("host");
        _cleanup_(strv_freep) char **all = NULL, **kvm = NULL, **none = NULL;

        assert_int_equal(trace_list_events(dir, "kvm", &kvm), 0);
        assert_int_equal(strv_length(kvm), 2);
        assert_string_equal(kvm[0], "kvm:kvm_exit");
        assert_string_equal(kvm[1], "kvm:kvm_page_fault");

        assert_int_equal(trace_list_events(dir, NULL, &all), 0);
        assert_int_equal(strv_length(all), 4);
        assert_string_equal(all[0], "kvm:kvm_exit");
        assert_string_equal(all[2], "migrate:mm_migrate_pages");
        assert_string_equal(all[3], "tlb:tlb_flush");

        assert_int_equal(trace_list_events(dir, "nosys", &none), -ENOENT);
        assert_int_equal(trace_list_events(dir, "../x", &none), -EINVAL);
}

static void test_vmx_reasons(void **state) {
        _cleanup_free_ char *dir = tracing_dir("host"), *reason = NULL;
        TraceSymbol *s = NULL;
        size_t n = 0;

        assert_int_equal(trace_kvm_exit_reasons(dir, TRACE_KVM_ISA_VMX, &s, &n, &reason), 0);
        assert_null(reason);
        /* The VMX table of the 6.18 format has 65 entries, from 0 EXCEPTION_NMI to 85 MSR_WRITE_IMM */
        assert_int_equal(n, 65);
        assert_string_equal(name_of(s, n, 48), "EPT_VIOLATION");
        assert_string_equal(name_of(s, n, 12), "HLT");
        assert_string_equal(name_of(s, n, 30), "IO_INSTRUCTION");
        assert_string_equal(name_of(s, n, 0), "EXCEPTION_NMI");
        assert_string_equal(name_of(s, n, 85), "MSR_WRITE_IMM");
        assert_null(name_of(s, n, 0x400));        /* an SVM value */
        for (size_t i = 1; i < n; i++)
                assert_true(s[i - 1].value < s[i].value);
        trace_symbols_free(s, n);
}

static void test_svm_reasons(void **state) {
        _cleanup_free_ char *dir = tracing_dir("host"), *reason = NULL;
        TraceSymbol *s = NULL;
        size_t n = 0;

        assert_int_equal(trace_kvm_exit_reasons(dir, TRACE_KVM_ISA_SVM, &s, &n, &reason), 0);
        assert_int_equal(n, 110);
        assert_string_equal(name_of(s, n, 0x400), "npf");
        assert_string_equal(name_of(s, n, 0x078), "hlt");
        assert_string_equal(name_of(s, n, 0x000), "read_cr0");
        assert_string_equal(name_of(s, n, 0x040 + 14), "PF excp");     /* "0x040 + 14", evaluated */
        assert_string_equal(name_of(s, n, 0x8000fffd), "vmgexit_hypervisor_feature");
        /* { -1, "invalid_guest_state" } on an unsigned int field */
        assert_string_equal(name_of(s, n, UINT32_MAX), "invalid_guest_state");
        assert_string_equal(name_of(s, n, 48), "write_dr0");          /* 0x030, not VMX's EPT_VIOLATION */
        trace_symbols_free(s, n);
}

static void test_old_format(void **state) {
        _cleanup_free_ char *dir = tracing_dir("old"), *reason = NULL;
        TraceSymbol *s = NULL;
        size_t n = 0;

        assert_int_equal(trace_kvm_exit_reasons(dir, TRACE_KVM_ISA_VMX, &s, &n, &reason), 0);
        assert_int_equal(n, 21);
        assert_string_equal(name_of(s, n, 48), "EPT_VIOLATION");
        assert_string_equal(name_of(s, n, 7), "PENDING_INTERRUPT");
        assert_string_equal(name_of(s, n, 62), "PML_FULL");
        trace_symbols_free(s, n);

        assert_int_equal(trace_kvm_exit_reasons(dir, TRACE_KVM_ISA_SVM, &s, &n, &reason), 0);
        assert_int_equal(n, 10);
        assert_string_equal(name_of(s, n, 0x400), "npf");
        assert_string_equal(name_of(s, n, 0x04e), "PF excp");
        trace_symbols_free(s, n);
}

static void test_missing_event(void **state) {
        _cleanup_free_ char *root = data_dir("host"), *reason = NULL;
        _cleanup_free_ char *dir = NULL;
        TraceSymbol *s = NULL;
        size_t n = 0;

        /* A tracing dir without kvm (the kvm module not loaded) */
        dir = path_join(root, "sys/kernel/tracing/events/tlb");
        assert_int_equal(trace_kvm_exit_reasons(dir, TRACE_KVM_ISA_VMX, &s, &n, &reason), -ENOENT);
        assert_non_null(reason);
        assert_non_null(strstr(reason, "kvm:kvm_exit"));
        assert_null(s);
}

static int parse_text(const char *text, TraceKvmIsa isa, size_t *ret_n, char **ret_reason) {
        TraceSymbol *s = NULL;
        int r;

        r = trace_kvm_exit_reasons_from_format(text, strlen(text), isa, &s, ret_n, ret_reason);
        if (r >= 0)
                trace_symbols_free(s, *ret_n);
        else
                assert_null(s);
        return r;
}

#define HEAD "name: kvm_exit\nID: 7\nformat:\n" \
        "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n" \
        "\tfield:unsigned int exit_reason;\toffset:8;\tsize:4;\tsigned:0;\n" \
        "\tfield:u32 isa;\toffset:12;\tsize:4;\tsigned:0;\n\n"

static void test_garbage(void **state) {
        static const char *const bad[] = {
                "",
                "garbage",
                "name: kvm_exit\n",
                HEAD,                                                               /* no print fmt */
                HEAD "print fmt: \"reason %u\", REC->exit_reason\n",                 /* no table */
                HEAD "print fmt: \"%s\", __print_symbolic(REC->exit_reason, { 1 \"x\" })\n",
                HEAD "print fmt: \"%s\", __print_symbolic(REC->exit_reason, { \"x\", \"y\" })\n",
                HEAD "print fmt: \"%s\", __print_symbolic(REC->exit_reason, { (((((((((1, \"y\" })\n",
                HEAD "print fmt: \"%s\", (REC->isa == 2) ? __print_symbolic(REC->exit_reason, { 1, \"a\" }) : \"\"\n",
                "name: kvm_entry\nID: 7\nformat:\n\tfield:unsigned int exit_reason;\toffset:8;\tsize:4;\tsigned:0;\n\n"
                "print fmt: \"%s\", __print_symbolic(REC->exit_reason, { 1, \"a\" })\n", /* another event */
                "name: kvm_exit\nID: 7\nformat:\n\tfield:unsigned int other;\toffset:8;\tsize:4;\tsigned:0;\n\n"
                "print fmt: \"%s\", __print_symbolic(REC->other, { 1, \"a\" })\n",         /* no exit_reason */
        };
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *reason = NULL;
                int r = parse_text(bad[i], TRACE_KVM_ISA_VMX, &n, &reason);

                if (r != -EBADMSG)
                        print_error("case %zu: %d (%s)\n", i, r, strna(reason));
                assert_int_equal(r, -EBADMSG);
                assert_non_null(reason);
        }

        /* A format without the isa condition: its one table is taken for either ISA */
        {
                _cleanup_free_ char *reason = NULL;
                assert_int_equal(parse_text(HEAD "print fmt: \"%s\", __print_symbolic(REC->exit_reason, "
                                            "{ 1, \"a\" }, { 2, \"b\" }, { 1, \"dup\" })\n",
                                            TRACE_KVM_ISA_SVM, &n, &reason), 0);
                assert_int_equal(n, 2);         /* the duplicate 1 dropped */
        }
        {
                _cleanup_free_ char *reason = NULL;
                TraceSymbol *s = NULL;
                assert_int_equal(trace_kvm_exit_reasons_from_format("x", TRACE_FORMAT_SIZE_MAX + 1,
                                                                    TRACE_KVM_ISA_VMX, &s, &n, &reason), -EFBIG);
                assert_non_null(reason);
                assert_int_equal(trace_kvm_exit_reasons_from_format("x", 1, 3, &s, &n, &reason), -EINVAL);
        }
}

/* A format on which libtraceevent 1.7.1 (Debian 12) dereferences NULL, found by fuzz-trace-format: the parse runs
 * in a child, so it is an error with a reason here (or a plain parse error with a library that copes). */
static void test_library_crash(void **state) {
        _cleanup_free_ char *path = data_dir("kvm-exit-crashes-libtraceevent-1.7"), *text = NULL, *reason = NULL;
        TraceSymbol *s = NULL;
        size_t size, n = 0;

        assert_int_equal(read_full_file(path, TRACE_FORMAT_SIZE_MAX, &text, &size), 0);
        assert_int_equal(trace_kvm_exit_reasons_from_format(text, size, TRACE_KVM_ISA_VMX, &s, &n, &reason),
                         -EBADMSG);
        assert_null(s);
        assert_non_null(reason);
        print_message("%s\n", reason);
}

static void test_kvm_isa(void **state) {
        _cleanup_free_ char *host = data_dir("host"), *old = data_dir("old"), *none = data_dir("nothing-here");
        TraceKvmIsa isa = 0;

        assert_int_equal(trace_kvm_isa(host, &isa), 0);
        assert_int_equal(isa, TRACE_KVM_ISA_VMX);
        assert_int_equal(trace_kvm_isa(old, &isa), 0);
        assert_int_equal(isa, TRACE_KVM_ISA_SVM);
        assert_int_equal(trace_kvm_isa(none, &isa), -ENOENT);
        assert_string_equal(trace_kvm_isa_to_string(TRACE_KVM_ISA_SVM), "svm");
        assert_null(trace_kvm_isa_to_string(0));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_find_tracing_dir),
                cmocka_unit_test(test_event_id),
                cmocka_unit_test(test_list_events),
                cmocka_unit_test(test_vmx_reasons),
                cmocka_unit_test(test_svm_reasons),
                cmocka_unit_test(test_old_format),
                cmocka_unit_test(test_missing_event),
                cmocka_unit_test(test_garbage),
                cmocka_unit_test(test_library_crash),
                cmocka_unit_test(test_kvm_isa),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
