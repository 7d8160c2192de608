/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* KVM statistics from real query-stats / query-stats-schemas replies (tests/data/qmp/query-stats-*.qmp). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "qmp/qmp-stats.h"
#include "qmp-transcript.h"

static void test_kvm_replies(void **state) {
        _cleanup_json_ json_object *vm = qmp_transcript_return("query-stats-kvm.qmp", "\"target\": \"vm\"}}"),
                                   *vcpu = qmp_transcript_return("query-stats-kvm.qmp", "{\"target\": \"vcpu\"}}"),
                                   *schemas = qmp_transcript_return("query-stats-kvm.qmp", "query-stats-schemas\"}");
        _cleanup_(kvm_stats_freep) KvmStats *s = NULL;
        uint64_t v;

        assert_int_equal(kvm_stats_from_json(vm, vcpu, schemas, &s), 0);
        assert_true(kvm_stats_available(s));
        assert_int_equal(s->n_vcpus, 2U);
        assert_true(s->vm.n > 10);
        assert_int_equal(kvm_stats_get(s, "remote_tlb_flush_requests", &v), 0);
        assert_int_equal(v, 3U);
        /* a vcpu stat is summed over both vCPUs */
        assert_int_equal(kvm_stats_get(s, "mmio_exits", &v), 0);
        assert_true(v >= 823);
        assert_int_equal(kvm_stats_get(s, "no_such_stat", &v), -ENOENT);
        /* schema types: pages_4k is an instant value, exits are cumulative */
        for (size_t i = 0; i < s->vm.n; i++) {
                if (streq(s->vm.stats[i].name, "pages_4k"))
                        assert_false(s->vm.stats[i].cumulative);
                if (streq(s->vm.stats[i].name, "remote_tlb_flush"))
                        assert_true(s->vm.stats[i].cumulative);
        }
}

static void test_tcg_is_unavailable(void **state) {
        _cleanup_json_ json_object *vm = qmp_transcript_return("query-stats-tcg.qmp", "\"vm\""),
                                   *delta = NULL;
        _cleanup_(kvm_stats_freep) KvmStats *a = NULL, *b = NULL;

        assert_int_equal(json_object_array_length(vm), 0U);
        assert_int_equal(kvm_stats_from_json(vm, vm, NULL, &a), 0);
        assert_int_equal(kvm_stats_from_json(vm, vm, NULL, &b), 0);
        assert_false(kvm_stats_available(a));
        assert_int_equal(kvm_stats_delta_json(a, b, &delta), 0);
        assert_false(json_get_bool(delta, "available", true));
        assert_non_null(json_get_string(delta, "reason"));
}

static json_object *stats_json(const char *target, uint64_t tlb, uint64_t pages, uint64_t exits) {
        char buf[512];

        if (streq(target, "vm"))
                snprintf(buf, sizeof(buf),
                         "[{\"provider\":\"kvm\",\"stats\":[{\"name\":\"remote_tlb_flush\",\"value\":%llu},"
                         "{\"name\":\"pages_4k\",\"value\":%llu}]}]",
                         (unsigned long long) tlb, (unsigned long long) pages);
        else
                snprintf(buf, sizeof(buf),
                         "[{\"provider\":\"kvm\",\"qom-path\":\"/a\",\"stats\":[{\"name\":\"exits\",\"value\":%llu}]},"
                         "{\"provider\":\"kvm\",\"qom-path\":\"/b\",\"stats\":[{\"name\":\"exits\",\"value\":%llu}]}]",
                         (unsigned long long) exits, (unsigned long long) exits * 2);
        return json_tokener_parse(buf);
}

static void test_delta(void **state) {
        _cleanup_json_ json_object *schemas = json_tokener_parse(
                "[{\"provider\":\"kvm\",\"stats\":[{\"name\":\"remote_tlb_flush\",\"type\":\"cumulative\"},"
                "{\"name\":\"pages_4k\",\"type\":\"instant\"},{\"name\":\"exits\",\"type\":\"cumulative\"}]}]");
        _cleanup_json_ json_object *v1 = stats_json("vm", 10, 500, 0), *c1 = stats_json("vcpu", 0, 0, 100),
                                   *v2 = stats_json("vm", 25, 300, 0), *c2 = stats_json("vcpu", 0, 0, 130),
                                   *d = NULL;
        _cleanup_(kvm_stats_freep) KvmStats *a = NULL, *b = NULL;
        json_object *vm, *vcpus, *e;

        assert_int_equal(kvm_stats_from_json(v1, c1, schemas, &a), 0);
        assert_int_equal(kvm_stats_from_json(v2, c2, schemas, &b), 0);
        assert_int_equal(kvm_stats_delta_json(a, b, &d), 0);
        assert_true(json_get_bool(d, "available", false));
        assert_true(json_object_object_get_ex(d, "vm", &vm));
        assert_true(json_object_object_get_ex(vm, "remote_tlb_flush", &e));
        assert_int_equal(json_get_int(e, "delta", -1), 15);
        assert_true(json_object_object_get_ex(vm, "pages_4k", &e));
        assert_false(json_object_object_get_ex(e, "delta", NULL)); /* instant: before/after only */
        assert_int_equal(json_get_int(e, "before", -1), 500);
        assert_int_equal(json_get_int(e, "after", -1), 300);
        assert_true(json_object_object_get_ex(d, "vcpus", &vcpus));
        assert_true(json_object_object_get_ex(vcpus, "exits", &e));
        assert_int_equal(json_get_int(e, "before", -1), 300);  /* 100 + 200 */
        assert_int_equal(json_get_int(e, "after", -1), 390);   /* 130 + 260 */
        assert_int_equal(json_get_int(e, "delta", -1), 90);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kvm_replies),
                cmocka_unit_test(test_tcg_is_unavailable),
                cmocka_unit_test(test_delta),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
