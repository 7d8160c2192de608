/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Counter names and the units that follow from them. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "experiment/experiment-counter.h"

static void test_units(void **state) {
        (void) state;
        assert_string_equal(experiment_counter_unit("time.provoke_usec"), "us");
        assert_string_equal(experiment_counter_unit("workload.elapsed_ns"), "ns");
        assert_string_equal(experiment_counter_unit("host.dirty_rate_mb_per_sec"), "MB/s");
        assert_string_equal(experiment_counter_unit("host.dirty_rate.vcpu1_mb_per_sec"), "MB/s");
        assert_string_equal(experiment_counter_unit("host.dirty_rate.period_usec"), "us");
        assert_string_equal(experiment_counter_unit("host.migrate.guest_ram.failed.EBUSY_pages"), "pages");
        assert_string_equal(experiment_counter_unit("host.hotplug.reached_bytes"), "bytes");
        assert_string_equal(experiment_counter_unit("workload.per_thread.0.bytes_per_sec"), "bytes/s");
        assert_string_equal(experiment_counter_unit("host.migrate.moved_bytes"), "bytes");
        assert_string_equal(experiment_counter_unit("workload.per_thread.0.bytes"), "bytes");
        assert_string_equal(experiment_counter_unit("host.migrate.moved_pages"), "pages");
        assert_string_equal(experiment_counter_unit("host.kvm_exit.EPT_VIOLATION.vcpu0"), "count");
        assert_string_equal(experiment_counter_unit("guest.vmstat.pgfault"), "count");
        assert_string_equal(experiment_counter_unit("x_usecs"), "count");
        assert_string_equal(experiment_counter_unit("workload.bytes_touched"), "bytes");
        assert_string_equal(experiment_counter_unit("workload.pages_touched"), "pages");
        assert_string_equal(experiment_counter_unit("workload.touched_pages_x"), "count");
}

static void test_names(void **state) {
        char big[EXPERIMENT_COUNTER_NAME_MAX + 2];

        (void) state;
        assert_true(experiment_counter_name_is_valid("host.tracepoint.tlb:tlb_flush.qemu"));
        assert_true(experiment_counter_name_is_valid("guest.vmstat.nr_tlb_remote_flush"));
        assert_false(experiment_counter_name_is_valid(""));
        assert_false(experiment_counter_name_is_valid(NULL));
        assert_false(experiment_counter_name_is_valid(".a"));
        assert_false(experiment_counter_name_is_valid("a."));
        assert_false(experiment_counter_name_is_valid("a..b"));
        assert_false(experiment_counter_name_is_valid("a b"));
        assert_false(experiment_counter_name_is_valid("a,b"));
        assert_false(experiment_counter_name_is_valid("a\"b"));
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = 0;
        assert_false(experiment_counter_name_is_valid(big));
        big[EXPERIMENT_COUNTER_NAME_MAX] = 0;
        assert_true(experiment_counter_name_is_valid(big));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_units),
                cmocka_unit_test(test_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
