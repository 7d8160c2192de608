/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The statistics of an experiment's iterations (experiment-summary.h), by hand: n = 0, 1, 2, ties and the median's
 * interval at n = 10, warm-up records excluded, counters in only some iterations, unavailable names counted with
 * their last reason, bad records refused with the summary unchanged, the bounds (counters, unavailable names,
 * iterations) and long reasons cut on a character boundary. numpy/scipy check the figures on generated data in
 * test-experiment-summary-numpy.py. */

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
#include "basic/utf8.h"
#include "experiment/experiment-spec.h"
#include "experiment/experiment-summary.h"

static json_object *parse(const char *text) {
        json_object *o = json_tokener_parse(text);

        assert_non_null(o);
        return o;
}

/* A record of iteration i with the counters and unavailable members given as JSON text (NULL: leave out). */
static json_object *record(unsigned i, bool warm_up, const char *counters, const char *unavailable) {
        _cleanup_free_ char *text = NULL;

        assert_true(asprintf(&text,
                             "{\"iteration\": %u, \"warmUp\": %s, \"startedRealtimeUSec\": 1796000000000000, "
                             "\"durationUSec\": 1000, \"counters\": %s%s%s}",
                             i, warm_up ? "true" : "false", counters ? counters : "{}",
                             unavailable ? ", \"unavailable\": " : "", unavailable ? unavailable : "") >= 0);
        return parse(text);
}

static int add(ExperimentSummary *s, unsigned i, bool warm_up, const char *counters, const char *unavailable) {
        _cleanup_json_ json_object *r = record(i, warm_up, counters, unavailable);

        return experiment_summary_add(s, r);
}

static json_object *summary_json(ExperimentSummary *s) {
        json_object *o = NULL;

        assert_int_equal(experiment_summary_to_json(s, &o), 0);
        assert_non_null(o);
        return o;
}

/* The plain text of the summary, to compare before and after a refused record. */
static char *summary_text(ExperimentSummary *s) {
        _cleanup_json_ json_object *o = summary_json(s);
        char *t = strdup(json_to_plain(o, NULL));

        assert_non_null(t);
        return t;
}

static json_object *statistic(json_object *summary, size_t i) {
        json_object *a;

        assert_true(json_object_object_get_ex(summary, "statistics", &a));
        assert_true((size_t) json_object_array_length(a) > i);
        return json_object_array_get_idx(a, i);
}

static double num(json_object *o, const char *key) {
        json_object *v;

        assert_true(json_object_object_get_ex(o, key, &v));
        assert_non_null(v);
        return json_object_get_double(v);
}

static bool is_null(json_object *o, const char *key) {
        json_object *v;

        assert_true(json_object_object_get_ex(o, key, &v));
        return v == NULL;
}

static void assert_close(double got, double want) {
        if (fabs(got - want) > 1e-12 * MAX(1.0, fabs(want)))
                fail_msg("got %.17g, want %.17g", got, want);
}

static void test_empty(void **state) {
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        _cleanup_free_ char *t = NULL;

        (void) state;
        assert_int_equal(experiment_summary_new(&s), 0);
        t = summary_text(s);
        assert_string_equal(t, "{\"iterations\":0,\"warmUp\":0,\"statistics\":[],\"unavailable\":[]}");
        assert_int_equal(experiment_summary_iterations(s), 0);
        assert_null(experiment_summary_free(NULL));
        assert_int_equal(experiment_summary_add(NULL, NULL), -EINVAL);
        assert_int_equal(experiment_summary_to_json(NULL, NULL), -EINVAL);
}

static void test_one_and_two(void **state) {
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        _cleanup_json_ json_object *o = NULL, *o2 = NULL;
        json_object *st;

        (void) state;
        assert_int_equal(experiment_summary_new(&s), 0);
        assert_int_equal(add(s, 1, false, "{\"time.provoke_usec\": 5}", NULL), 0);
        o = summary_json(s);
        st = statistic(o, 0);
        assert_string_equal(json_get_string(st, "counter"), "time.provoke_usec");
        assert_string_equal(json_get_string(st, "unit"), "us");
        assert_int_equal(json_get_int(st, "n", -1), 1);
        assert_close(num(st, "median"), 5);
        assert_close(num(st, "p5"), 5);
        assert_close(num(st, "p95"), 5);
        assert_close(num(st, "mean"), 5);
        assert_close(num(st, "min"), 5);
        assert_close(num(st, "max"), 5);
        assert_true(is_null(st, "stddev"));
        assert_true(is_null(st, "medianCILow"));
        assert_true(is_null(st, "medianCIHigh"));
        assert_true(is_null(st, "medianCICoverage"));

        /* n = 2: the type 7 quantiles interpolate between the two values; the sample standard deviation */
        assert_int_equal(add(s, 2, false, "{\"time.provoke_usec\": 3.0}", NULL), 0);
        o2 = summary_json(s);
        st = statistic(o2, 0);
        assert_int_equal(json_get_int(st, "n", -1), 2);
        assert_close(num(st, "median"), 4);
        assert_close(num(st, "p5"), 3.1);
        assert_close(num(st, "p95"), 4.9);
        assert_close(num(st, "mean"), 4);
        assert_close(num(st, "stddev"), sqrt(2.0));
        assert_close(num(st, "min"), 3);
        assert_close(num(st, "max"), 5);
        assert_true(is_null(st, "medianCILow"));
        assert_int_equal(json_get_int(o2, "iterations", -1), 2);
        assert_int_equal(json_get_int(o2, "warmUp", -1), 0);
}

static void test_ties_and_interval(void **state) {
        static const int values[] = { 7, 5, 5, 7, 5, 5, 7, 5, 5, 7 };
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        _cleanup_json_ json_object *o = NULL;
        json_object *st;

        (void) state;
        assert_int_equal(experiment_summary_new(&s), 0);
        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                char c[64];

                snprintf(c, sizeof c, "{\"host.migrate.moved_pages\": %d}", values[i]);
                assert_int_equal(add(s, i + 1, false, c, NULL), 0);
        }
        o = summary_json(s);
        st = statistic(o, 0);
        assert_string_equal(json_get_string(st, "unit"), "pages");
        assert_int_equal(json_get_int(st, "n", -1), 10);
        assert_close(num(st, "median"), 5);             /* sorted: 5 ×6, 7 ×4 */
        assert_close(num(st, "p5"), 5);
        assert_close(num(st, "p95"), 7);
        assert_close(num(st, "mean"), 5.8);
        /* n = 10: ranks 2 and 9 (P(K <= 1) = 11/1024), coverage 1 − 22/1024 */
        assert_close(num(st, "medianCILow"), 5);
        assert_close(num(st, "medianCIHigh"), 7);
        assert_close(num(st, "medianCICoverage"), 1.0 - 22.0 / 1024.0);
}

static void test_warm_up_and_partial_counters(void **state) {
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        _cleanup_json_ json_object *o = NULL;
        json_object *st, *a, *u;

        (void) state;
        assert_int_equal(experiment_summary_new(&s), 0);
        /* warm-up: counted, its counters and unavailable names not */
        assert_int_equal(add(s, 1, true, "{\"z.count\": 1e9, \"warm.only\": 1}", "{\"guest.vmstat\": \"warm\"}"), 0);
        assert_int_equal(add(s, 2, true, "{\"z.count\": -1e9}", NULL), 0);
        assert_int_equal(add(s, 3, false, "{\"z.count\": 1, \"workload.elapsed_ns\": 10}",
                             "{\"host.kvm_exit\": \"no /dev/kvm\"}"), 0);
        assert_int_equal(add(s, 4, false, "{\"z.count\": 2}", "{\"host.kvm_exit\": \"still no /dev/kvm\"}"), 0);
        assert_int_equal(add(s, 5, false, "{\"z.count\": 3, \"a.bytes\": 4096}", NULL), 0);
        assert_int_equal(experiment_summary_iterations(s), 5);
        assert_int_equal(experiment_summary_warm_up(s), 2);

        o = summary_json(s);
        assert_int_equal(json_get_int(o, "iterations", -1), 5);
        assert_int_equal(json_get_int(o, "warmUp", -1), 2);
        assert_true(json_object_object_get_ex(o, "statistics", &a));
        assert_int_equal(json_object_array_length(a), 3);       /* warm.only is not there */

        st = statistic(o, 0);                                   /* sorted by name */
        assert_string_equal(json_get_string(st, "counter"), "a.bytes");
        assert_string_equal(json_get_string(st, "unit"), "bytes");
        assert_int_equal(json_get_int(st, "n", -1), 1);
        st = statistic(o, 1);
        assert_string_equal(json_get_string(st, "counter"), "workload.elapsed_ns");
        assert_string_equal(json_get_string(st, "unit"), "ns");
        assert_int_equal(json_get_int(st, "n", -1), 1);
        st = statistic(o, 2);
        assert_string_equal(json_get_string(st, "counter"), "z.count");
        assert_string_equal(json_get_string(st, "unit"), "count");
        assert_int_equal(json_get_int(st, "n", -1), 3);
        assert_close(num(st, "min"), 1);                        /* the warm-up ±1e9 are out */
        assert_close(num(st, "max"), 3);
        assert_close(num(st, "mean"), 2);
        assert_close(num(st, "stddev"), 1);

        assert_true(json_object_object_get_ex(o, "unavailable", &a));
        assert_int_equal(json_object_array_length(a), 1);       /* guest.vmstat was said in a warm-up only */
        u = json_object_array_get_idx(a, 0);
        assert_string_equal(json_get_string(u, "counter"), "host.kvm_exit");
        assert_string_equal(json_get_string(u, "reason"), "still no /dev/kvm");
        assert_int_equal(json_get_int(u, "iterations", -1), 2);
}

static void test_numbers(void **state) {
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        _cleanup_json_ json_object *o = NULL;
        json_object *st;

        (void) state;
        assert_int_equal(experiment_summary_new(&s), 0);
        /* unsigned 64-bit, negative (a delta of an instant value), doubles */
        assert_int_equal(add(s, 1, false, "{\"a\": 18446744073709551615, \"b\": -5, \"c\": 1e300}", NULL), 0);
        assert_int_equal(add(s, 2, false, "{\"a\": 0, \"b\": -7, \"c\": -1e300}", NULL), 0);
        o = summary_json(s);
        st = statistic(o, 0);
        assert_close(num(st, "max"), 18446744073709551615.0);
        st = statistic(o, 1);
        assert_close(num(st, "median"), -6);
        st = statistic(o, 2);
        assert_close(num(st, "mean"), 0);
        assert_true(is_null(st, "stddev"));     /* √(2e600) does not fit a double */
}

static void test_bad_records(void **state) {
        static const char *const bad[] = {
                "[]",
                "5",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": []}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": null}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {\"a\": \"1\"}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {\"a\": true}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {\"a\": null}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {\"a\": 1e301}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {\"a\": NaN}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {\"a\": Infinity}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {\"a..b\": 1}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {\"\": 1}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {\"a b\": 1}}",
                /* a valid new counter before a bad value: nothing of it may stay */
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {\"new\": 1, "
                "\"x\": \"bad\"}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {}, "
                "\"unavailable\": {\"host.kvm_exit\": \"\"}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {}, "
                "\"unavailable\": {\"host.kvm_exit\": 0}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {}, "
                "\"unavailable\": {\"a,b\": \"x\"}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {}, "
                "\"unavailable\": [\"x\"]}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {}, "
                "\"unavailable\": {\"x\": \"a\\u0000b\"}}",
                "{\"iteration\": 0, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {}}",
                "{\"iteration\": 10001, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {}}",
                "{\"iteration\": 1.5, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {}}",
                "{\"warmUp\": false, \"startedRealtimeUSec\": 1, \"counters\": {}}",
                "{\"iteration\": 3, \"startedRealtimeUSec\": 1, \"counters\": {}}",
                "{\"iteration\": 3, \"warmUp\": 0, \"startedRealtimeUSec\": 1, \"counters\": {}}",
                "{\"iteration\": 3, \"warmUp\": false, \"counters\": {}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": -1, \"counters\": {}}",
                "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 1, \"durationUSec\": \"1s\", "
                "\"counters\": {}}",
                /* warm-up records are checked as well */
                "{\"iteration\": 3, \"warmUp\": true, \"startedRealtimeUSec\": 1, \"counters\": {\"a\": \"x\"}}",
        };
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        _cleanup_free_ char *before = NULL;

        (void) state;
        assert_int_equal(experiment_summary_new(&s), 0);
        assert_int_equal(add(s, 1, false, "{\"x\": 1, \"y\": 2.5}", "{\"host.kvm_exit\": \"no /dev/kvm\"}"), 0);
        assert_int_equal(add(s, 2, true, "{\"x\": 100}", NULL), 0);
        before = summary_text(s);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_json_ json_object *r = json_tokener_parse(bad[i]);
                _cleanup_free_ char *after = NULL;

                assert_non_null(r);
                if (experiment_summary_add(s, r) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
                assert_int_equal(experiment_record_validate(r), -EBADMSG);
                after = summary_text(s);
                assert_string_equal(before, after);
        }
        assert_int_equal(experiment_summary_add(s, NULL), -EBADMSG);

        /* optional members: null is the same as absent; other members are ignored */
        {
                _cleanup_json_ json_object *r = parse(
                        "{\"iteration\": 3, \"warmUp\": false, \"startedRealtimeUSec\": 0, \"durationUSec\": null, "
                        "\"counters\": {\"x\": 2}, \"unavailable\": null, \"workload\": {\"any\": [\"thing\"]}, "
                        "\"future\": 1}");

                assert_int_equal(experiment_summary_add(s, r), 0);
                assert_int_equal(experiment_summary_iterations(s), 3);
        }
}

static void test_counter_bound(void **state) {
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        _cleanup_json_ json_object *full = NULL, *more = NULL, *umore = NULL;
        _cleanup_free_ char *before = NULL, *after = NULL;
        json_object *c, *u;

        (void) state;
        assert_int_equal(experiment_summary_new(&s), 0);
        full = record(1, false, NULL, "{}");
        assert_true(json_object_object_get_ex(full, "counters", &c));
        assert_true(json_object_object_get_ex(full, "unavailable", &u));
        for (unsigned i = 0; i < EXPERIMENT_SUMMARY_COUNTERS_MAX; i++) {
                char name[32];

                snprintf(name, sizeof name, "c.%05u", EXPERIMENT_SUMMARY_COUNTERS_MAX - 1 - i);   /* descending */
                assert_int_equal(json_add_int(c, name, i), 0);
                assert_int_equal(json_add_string(u, name, "gone"), 0);
        }
        assert_int_equal(experiment_summary_add(s, full), 0);
        assert_int_equal(experiment_summary_add(s, full), 0);   /* the same names again: fine */
        before = summary_text(s);

        /* one name more: refused, nothing changed (the known counters of the record neither) */
        more = record(3, false, "{\"c.00000\": 5, \"c.zzz\": 1}", NULL);
        assert_int_equal(experiment_summary_add(s, more), -E2BIG);
        umore = record(3, false, "{\"c.00000\": 5}", "{\"u.zzz\": \"gone\"}");
        assert_int_equal(experiment_summary_add(s, umore), -E2BIG);
        after = summary_text(s);
        assert_string_equal(before, after);
        assert_int_equal(experiment_summary_iterations(s), 2);

        {
                _cleanup_json_ json_object *o = summary_json(s);
                json_object *a, *st;

                assert_true(json_object_object_get_ex(o, "statistics", &a));
                assert_int_equal(json_object_array_length(a), EXPERIMENT_SUMMARY_COUNTERS_MAX);
                st = json_object_array_get_idx(a, 0);
                assert_string_equal(json_get_string(st, "counter"), "c.00000");
                assert_int_equal(json_get_int(st, "n", -1), 2);
                assert_close(num(st, "median"), EXPERIMENT_SUMMARY_COUNTERS_MAX - 1);
                st = json_object_array_get_idx(a, EXPERIMENT_SUMMARY_COUNTERS_MAX - 1);
                assert_string_equal(json_get_string(st, "counter"), "c.04095");
                assert_true(json_object_object_get_ex(o, "unavailable", &a));
                assert_int_equal(json_object_array_length(a), EXPERIMENT_SUMMARY_COUNTERS_MAX);
                assert_int_equal(json_get_int(json_object_array_get_idx(a, 7), "iterations", -1), 2);
        }
}

static void test_iteration_bound(void **state) {
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        _cleanup_json_ json_object *o = NULL;

        (void) state;
        assert_int_equal(experiment_summary_new(&s), 0);
        for (unsigned i = 1; i <= EXPERIMENT_ITERATIONS_MAX; i++)
                assert_int_equal(add(s, i, i <= 10, "{\"time.iteration_usec\": 1}", NULL), 0);
        assert_int_equal(add(s, EXPERIMENT_ITERATIONS_MAX, false, "{\"time.iteration_usec\": 1}", NULL), -E2BIG);
        assert_int_equal(add(s, 1, true, "{}", NULL), -E2BIG);
        o = summary_json(s);
        assert_int_equal(json_get_int(o, "iterations", -1), EXPERIMENT_ITERATIONS_MAX);
        assert_int_equal(json_get_int(o, "warmUp", -1), 10);
        assert_int_equal(json_get_int(statistic(o, 0), "n", -1), EXPERIMENT_ITERATIONS_MAX - 10);
}

static void test_long_reason(void **state) {
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        _cleanup_json_ json_object *r = NULL, *o = NULL;
        _cleanup_free_ char *reason = NULL;
        json_object *u, *a;
        const char *kept;

        (void) state;
        /* "x" then 1000 two-byte characters: byte 1024 is the second byte of one, so 1023 bytes are kept */
        reason = malloc(1 + 2 * 1000 + 1);
        assert_non_null(reason);
        reason[0] = 'x';
        for (size_t i = 0; i < 1000; i++)
                memcpy(reason + 1 + 2 * i, "\xc3\xa9", 2);
        reason[1 + 2 * 1000] = 0;

        assert_int_equal(experiment_summary_new(&s), 0);
        r = record(1, false, NULL, "{}");
        assert_true(json_object_object_get_ex(r, "unavailable", &u));
        assert_int_equal(json_add_string(u, "guest.vmstat", reason), 0);
        assert_int_equal(experiment_summary_add(s, r), 0);
        o = summary_json(s);
        assert_true(json_object_object_get_ex(o, "unavailable", &a));
        kept = json_get_string(json_object_array_get_idx(a, 0), "reason");
        assert_non_null(kept);
        assert_int_equal(strlen(kept), 1023);
        assert_true(utf8_is_valid_text(kept, strlen(kept)));
        assert_memory_equal(kept, reason, 1023);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_one_and_two),
                cmocka_unit_test(test_ties_and_interval),
                cmocka_unit_test(test_warm_up_and_partial_counters),
                cmocka_unit_test(test_numbers),
                cmocka_unit_test(test_bad_records),
                cmocka_unit_test(test_counter_bound),
                cmocka_unit_test(test_iteration_bound),
                cmocka_unit_test(test_long_reason),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
