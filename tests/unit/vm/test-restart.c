/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The restart policy as a pure function: policies, backoff, reset after a stable run, start limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "vm/restart.h"
#include "vm/vm-spec.h"

#define S USEC_PER_SEC
#define MS USEC_PER_MSEC

static VmSpec *spec_with(VmRestartPolicy p) {
        VmSpec *s = vm_spec_new();

        assert_non_null(s);
        s->restart = p;
        s->restart_usec = 100 * MS;
        s->restart_max_usec = 1 * S;
        s->start_limit_burst = 5;
        s->start_limit_interval_usec = 60 * S;
        return s;
}

static void test_policies(void **state) {
        RestartTracker t = {};
        uint64_t delay = 0;
        VmSpec *no = spec_with(VM_RESTART_NO), *onf = spec_with(VM_RESTART_ON_FAILURE),
               *always = spec_with(VM_RESTART_ALWAYS);

        assert_int_equal(restart_decide(&t, no, false, 0, 10 * S, &delay), RESTART_DECISION_NONE);
        assert_int_equal(restart_decide(&t, no, true, 0, 10 * S, &delay), RESTART_DECISION_NONE);
        assert_int_equal(restart_decide(&t, onf, true, 0, 10 * S, &delay), RESTART_DECISION_NONE);
        assert_int_equal(restart_decide(&t, onf, false, 0, 10 * S, &delay), RESTART_DECISION_RESTART);
        assert_int_equal(delay, 100 * MS);
        restart_tracker_reset(&t);
        assert_int_equal(restart_decide(&t, always, true, 0, 10 * S, &delay), RESTART_DECISION_RESTART);
        assert_int_equal(delay, 100 * MS);
        assert_string_equal(restart_decision_to_string(RESTART_DECISION_LIMIT_HIT), "start-limit-hit");
        vm_spec_free(no);
        vm_spec_free(onf);
        vm_spec_free(always);
}

static void test_backoff_doubles_and_caps(void **state) {
        RestartTracker t = {};
        VmSpec *s = spec_with(VM_RESTART_ON_FAILURE);
        uint64_t delay = 0, now = 1000 * S;
        const uint64_t want[] = { 100 * MS, 200 * MS, 400 * MS, 800 * MS, 1 * S, 1 * S };

        s->start_limit_burst = 100;
        for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                restart_tracker_record_start(&t, s, now);
                now += 10 * MS;
                assert_int_equal(restart_decide(&t, s, false, 10 * MS, now, &delay), RESTART_DECISION_RESTART);
                assert_int_equal(delay, want[i]);
                now += delay;
        }

        /* A run of at least RestartMaxDelaySec is stable: the backoff starts over. */
        restart_tracker_record_start(&t, s, now);
        now += 2 * S;
        assert_int_equal(restart_decide(&t, s, false, 2 * S, now, &delay), RESTART_DECISION_RESTART);
        assert_int_equal(delay, 100 * MS);
        vm_spec_free(s);
}

static void test_start_limit(void **state) {
        RestartTracker t = {};
        VmSpec *s = spec_with(VM_RESTART_ALWAYS);
        uint64_t delay, now = 5000 * S;

        s->start_limit_burst = 3;
        s->start_limit_interval_usec = 10 * S;

        /* Three starts within 10 s: the third failure hits the limit. */
        for (int i = 0; i < 2; i++) {
                restart_tracker_record_start(&t, s, now);
                now += S;
                assert_int_equal(restart_decide(&t, s, false, S, now, &delay), RESTART_DECISION_RESTART);
                now += delay;
        }
        restart_tracker_record_start(&t, s, now);
        now += S;
        assert_int_equal(restart_decide(&t, s, false, S, now, &delay), RESTART_DECISION_LIMIT_HIT);

        /* Once the oldest start falls out of the interval, a restart is allowed again. */
        now += 8 * S;
        assert_int_equal(restart_decide(&t, s, false, S, now, &delay), RESTART_DECISION_RESTART);

        /* A reset (user start) forgets the history. */
        restart_tracker_record_start(&t, s, now);
        restart_tracker_record_start(&t, s, now);
        restart_tracker_record_start(&t, s, now);
        assert_int_equal(restart_decide(&t, s, false, S, now, &delay), RESTART_DECISION_LIMIT_HIT);
        restart_tracker_reset(&t);
        assert_int_equal(restart_decide(&t, s, false, S, now, &delay), RESTART_DECISION_RESTART);
        assert_int_equal(delay, 100 * MS);
        vm_spec_free(s);
}

static void test_history_is_bounded(void **state) {
        RestartTracker t = {};
        VmSpec *s = spec_with(VM_RESTART_ALWAYS);

        s->start_limit_burst = 1000;
        s->start_limit_interval_usec = 3600 * S;
        for (int i = 0; i < 10 * RESTART_HISTORY_MAX; i++)
                restart_tracker_record_start(&t, s, (uint64_t) i * S);
        assert_int_equal(t.n_starts, RESTART_HISTORY_MAX);
        assert_true(t.starts[RESTART_HISTORY_MAX - 1] == (uint64_t) (10 * RESTART_HISTORY_MAX - 1) * S);
        vm_spec_free(s);
}

static void test_infinite_interval(void **state) {
        RestartTracker t = {};
        VmSpec *s = spec_with(VM_RESTART_ALWAYS);
        uint64_t delay, now = 10 * S;

        /* StartLimitIntervalSec=infinity counts every start ever made. */
        s->start_limit_burst = 2;
        s->start_limit_interval_usec = USEC_INFINITY;
        restart_tracker_record_start(&t, s, now);
        now += 3600 * S;
        assert_int_equal(restart_decide(&t, s, false, S, now, &delay), RESTART_DECISION_RESTART);
        restart_tracker_record_start(&t, s, now);
        now += 24 * 3600 * S;
        assert_int_equal(restart_decide(&t, s, false, S, now, &delay), RESTART_DECISION_LIMIT_HIT);
        vm_spec_free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_policies),
                cmocka_unit_test(test_backoff_doubles_and_caps),
                cmocka_unit_test(test_start_limit),
                cmocka_unit_test(test_history_is_bounded),
                cmocka_unit_test(test_infinite_interval),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
