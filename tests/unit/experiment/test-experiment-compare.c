/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The comparison of two experiments (experiment-compare.h), by hand: A = {1, 2, 3} against B = {4, 5, 6} (U of B
 * 9, the exact p 2/20, Cliff's delta 1, the ratio 5/2), warm-up records left out, a counter on one side only,
 * different operations refused with a reason, the bounds on resamples and globs, the same seed giving the same
 * interval, and a cancelled run. scipy checks the figures on more data in test-experiment-compare-scipy.py. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "experiment/experiment-compare.h"

static json_object *record(unsigned i, bool warm_up, const char *counters) {
        _cleanup_free_ char *text = NULL;
        json_object *o;

        assert_true(asprintf(&text, "{\"iteration\": %u, \"warmUp\": %s, \"startedRealtimeUSec\": 1, \"counters\": %s}",
                             i, warm_up ? "true" : "false", counters) >= 0);
        o = json_tokener_parse(text);
        assert_non_null(o);
        return o;
}

static void add(ExperimentCompare *c, ExperimentCompareSide side, unsigned i, bool warm_up, const char *counters) {
        _cleanup_json_ json_object *r = record(i, warm_up, counters);

        assert_int_equal(experiment_compare_add(c, side, r), 0);
}

static ExperimentCompare *make(const char *op_a, const char *op_b) {
        _cleanup_json_ json_object *da = json_tokener_parse(op_a), *db = json_tokener_parse(op_b);
        ExperimentCompare *c = NULL;

        assert_int_equal(experiment_compare_new(&c), 0);
        assert_int_equal(experiment_compare_set(c, EXPERIMENT_COMPARE_A, "ida", da, NULL), 0);
        assert_int_equal(experiment_compare_set(c, EXPERIMENT_COMPARE_B, "idb", db, NULL), 0);
        add(c, EXPERIMENT_COMPARE_A, 1, true, "{\"time.provoke_usec\": 1e9}");
        for (unsigned i = 0; i < 3; i++) {
                char buf[128];

                snprintf(buf, sizeof(buf), "{\"time.provoke_usec\": %u, \"host.tlb_flush.qemu\": 1}", i + 1);
                add(c, EXPERIMENT_COMPARE_A, i + 2, false, buf);
                snprintf(buf, sizeof(buf), "{\"time.provoke_usec\": %u}", i + 4);
                add(c, EXPERIMENT_COMPARE_B, i + 1, false, buf);
        }
        return c;
}

static double num(json_object *o, const char *key) {
        json_object *v;

        assert_true(json_object_object_get_ex(o, key, &v));
        return json_object_get_double(v);
}

static void test_by_hand(void **state) {
        _cleanup_(experiment_compare_freep) ExperimentCompare *c =
                make("{}", "{\"Provoke\": {\"Operation\": \"none\"}}");
        _cleanup_json_ json_object *out = NULL;
        _cleanup_free_ char *reason = NULL;
        ExperimentCompareOptions o = EXPERIMENT_COMPARE_OPTIONS_DEFAULT;
        const char *field = NULL;
        json_object *cmp, *nc, *e;

        assert_int_equal(experiment_compare_prepare(c, &o, &field, &reason), 0);
        assert_int_equal(experiment_compare_run(c, &out), 0);
        assert_true(json_object_object_get_ex(out, "comparisons", &cmp));
        assert_int_equal(json_object_array_length(cmp), 1);
        e = json_object_array_get_idx(cmp, 0);
        assert_string_equal(json_get_string(e, "counter"), "time.provoke_usec");
        assert_string_equal(json_get_string(e, "unit"), "us");
        assert_true(num(e, "medianA") == 2.0 && num(e, "medianB") == 5.0 && num(e, "ratio") == 2.5);
        assert_true(num(e, "u") == 9.0 && num(e, "cliffsDelta") == 1.0);
        assert_true(fabs(num(e, "p") - 0.1) < 1e-12 && fabs(num(e, "pHolm") - 0.1) < 1e-12);
        assert_string_equal(json_get_string(e, "method"), "exact");
        assert_false(json_get_bool(e, "significant", true));
        assert_true(num(e, "ratioCILow") <= 2.5 && num(e, "ratioCIHigh") >= 2.5);
        assert_int_equal(json_get_int(out, "seed", 0), 1);
        assert_int_equal(json_get_int(out, "resamples", 0), 10000);
        assert_string_equal(json_get_string(out, "operation"), "none");
        assert_int_equal(json_get_int(json_object_object_get(out, "a"), "warmUp", -1), 1);
        assert_true(json_object_object_get_ex(out, "notCompared", &nc));
        assert_int_equal(json_object_array_length(nc), 1);
        e = json_object_array_get_idx(nc, 0);
        assert_string_equal(json_get_string(e, "counter"), "host.tlb_flush.qemu");
        assert_string_equal(json_get_string(e, "side"), "a");
        assert_string_equal(json_get_string(e, "reason"), "not measured in B");
}

static void test_refused(void **state) {
        _cleanup_(experiment_compare_freep) ExperimentCompare *c =
                make("{\"Provoke\": {\"Operation\": \"migrate\"}}", "{\"Provoke\": {\"Operation\": \"balloon\"}}");
        _cleanup_(experiment_compare_freep) ExperimentCompare *d = make("{}", "{}");
        ExperimentCompareOptions o = EXPERIMENT_COMPARE_OPTIONS_DEFAULT;
        char *globs[] = { (char *) "" };
        const char *field = NULL;
        char *reason = NULL;
        json_object *out = NULL;

        assert_int_equal(experiment_compare_prepare(c, &o, &field, &reason), -EINVAL);
        assert_null(field);
        assert_non_null(strstr(reason, "migrate"));
        assert_non_null(strstr(reason, "balloon"));
        reason = mfree(reason);
        assert_int_equal(experiment_compare_run(c, &out), -EINVAL);     /* not prepared */

        o.resamples = EXPERIMENT_COMPARE_RESAMPLES_MAX + 1;
        assert_int_equal(experiment_compare_prepare(d, &o, &field, &reason), -EINVAL);
        assert_string_equal(field, "resamples");
        reason = mfree(reason);
        o = EXPERIMENT_COMPARE_OPTIONS_DEFAULT;
        o.counters = globs;
        o.n_counters = 1;
        assert_int_equal(experiment_compare_prepare(d, &o, &field, &reason), -EINVAL);
        assert_string_equal(field, "counters");
        reason = mfree(reason);
}

static void test_seed_and_cancel(void **state) {
        _cleanup_(experiment_compare_freep) ExperimentCompare *c = make("{}", "{}");
        _cleanup_json_ json_object *x = NULL, *y = NULL, *z = NULL;
        ExperimentCompareOptions o = EXPERIMENT_COMPARE_OPTIONS_DEFAULT;
        const char *field = NULL;
        char *reason = NULL;

        o.seed = 42;
        o.resamples = 500;
        assert_int_equal(experiment_compare_prepare(c, &o, &field, &reason), 0);
        assert_int_equal(experiment_compare_run(c, &x), 0);
        assert_int_equal(experiment_compare_run(c, &y), 0);
        assert_true(json_object_equal(x, y));
        assert_int_equal(json_get_int(x, "seed", 0), 42);
        experiment_compare_cancel(c);
        assert_int_equal(experiment_compare_run(c, &z), -ECANCELED);
        assert_null(z);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_by_hand),
                cmocka_unit_test(test_refused),
                cmocka_unit_test(test_seed_and_cancel),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
