/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The migration history as text (migration_history_save/load): a round trip shows the same reports and totals,
 * ids go on, the kept reports stay bounded, and damaged text is refused without touching the history. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "basic/json-util.h"
#include "numa/numa-migration.h"

static void record(MigrationHistory *h, unsigned i) {
        MigrationReport *r = NULL;

        assert_int_equal(migration_report_new(&r), 0);
        r->name = strdup(migration_history_name(h));
        r->from = 1;
        r->to = 2;
        r->pid = 4242;
        r->started_realtime_usec = 1000 + i;
        r->error = i % 3 == 0 ? -EINVAL : 0;
        r->have_before = r->have_after = i % 2 == 0;
        r->summary.pages_moved = i;
        r->summary.bytes_moved = 4096 * i;
        r->summary.duration_usec = 10;
        r->kvm.reason = strdup("TCG");
        r->tracepoints.reason = strdup("no perf");
        assert_int_equal(migration_history_record(h, r), 0);
        migration_report_unref(r);
}

static char *list(const MigrationHistory *h) {
        json_object *a = NULL;
        char *s;

        assert_int_equal(migration_history_to_json(h, &a), 0);
        s = strdup(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN));
        json_object_put(a);
        return s;
}

static void test_round_trip(void **state) {
        MigrationHistory *h1 = NULL, *h2 = NULL;
        char *text = NULL, *l1, *l2;
        const char *reason = NULL;
        json_object *a = NULL;
        size_t size;

        assert_int_equal(migration_history_new("g1", &h1), 0);
        for (unsigned i = 1; i <= 70; i++)
                record(h1, i);
        assert_int_equal(migration_history_save(h1, &text, &size), 0);
        assert_int_equal(strlen(text), size);

        assert_int_equal(migration_history_new("g1", &h2), 0);
        assert_int_equal(migration_history_load(h2, text, size, &reason), 0);
        l1 = list(h1);
        l2 = list(h2);
        assert_string_equal(l1, l2);
        assert_memory_equal(migration_history_totals(h1), migration_history_totals(h2), sizeof(MigrationTotals));
        assert_int_equal(migration_history_totals(h2)->migrations_total, 70);
        assert_int_equal(migration_history_load(h2, text, size, NULL), -EBUSY);

        /* ids go on; the oldest restored report makes room */
        record(h2, 71);
        assert_int_equal(migration_history_to_json(h2, &a), 0);
        assert_int_equal(json_object_array_length(a), NUMA_MIGRATION_MAX_RECORDS);
        assert_int_equal(json_get_int(json_object_array_get_idx(a, 0), "id", 0), 70 - NUMA_MIGRATION_MAX_RECORDS + 2);
        assert_int_equal(json_get_int(json_object_array_get_idx(a, NUMA_MIGRATION_MAX_RECORDS - 1), "id", 0), 71);
        assert_int_equal(migration_history_totals(h2)->migrations_total, 71);
        json_object_put(a);

        free(l1);
        free(l2);
        free(text);
        migration_history_free(h1);
        migration_history_free(h2);
}

static void test_corrupt(void **state) {
        static const char *const bad[] = {
                "",
                "{\"version\":1",
                "{\"version\":2,\"name\":\"g2\",\"nextId\":1,\"totals\":{\"migrations\":0,\"failures\":0,"
                "\"pagesMoved\":0,\"bytesMoved\":0,\"migrateUSec\":0},\"reports\":[]}",
                "{\"version\":1,\"name\":\"gX\",\"nextId\":1,\"totals\":{\"migrations\":0,\"failures\":0,"
                "\"pagesMoved\":0,\"bytesMoved\":0,\"migrateUSec\":0},\"reports\":[]}",
                "{\"version\":1,\"name\":\"g2\",\"nextId\":1,\"totals\":{},\"reports\":[]}",
                /* ids must rise and stay below nextId, and name the guest */
                "{\"version\":1,\"name\":\"g2\",\"nextId\":5,\"totals\":{\"migrations\":0,\"failures\":0,"
                "\"pagesMoved\":0,\"bytesMoved\":0,\"migrateUSec\":0},\"reports\":[{\"id\":2,\"name\":\"g2\"},"
                "{\"id\":2,\"name\":\"g2\"}]}",
                "{\"version\":1,\"name\":\"g2\",\"nextId\":2,\"totals\":{\"migrations\":0,\"failures\":0,"
                "\"pagesMoved\":0,\"bytesMoved\":0,\"migrateUSec\":0},\"reports\":[{\"id\":2,\"name\":\"g2\"}]}",
                "{\"version\":1,\"name\":\"g2\",\"nextId\":5,\"totals\":{\"migrations\":0,\"failures\":0,"
                "\"pagesMoved\":0,\"bytesMoved\":0,\"migrateUSec\":0},\"reports\":[{\"id\":1,\"name\":\"gX\"}]}",
                "{\"version\":1,\"name\":\"g2\",\"nextId\":5,\"totals\":{\"migrations\":0,\"failures\":0,"
                "\"pagesMoved\":0,\"bytesMoved\":0,\"migrateUSec\":0},\"reports\":[7]}",
        };
        MigrationHistory *h = NULL;
        const char *reason;
        char *l;

        assert_int_equal(migration_history_new("g2", &h), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                reason = NULL;
                assert_int_equal(migration_history_load(h, bad[i], strlen(bad[i]), &reason), -EBADMSG);
                assert_non_null(reason);
                l = list(h);
                assert_string_equal(l, "[]");
                free(l);
                assert_int_equal(migration_history_totals(h)->migrations_total, 0);
        }
        assert_int_equal(migration_history_load(h, "x", MIGRATION_HISTORY_SIZE_MAX + 1, &reason), -E2BIG);
        migration_history_free(h);
}

static void test_bounded(void **state) {
        MigrationHistory *h = NULL;
        json_object *o = json_object_new_object(), *t = json_object_new_object(), *a = json_object_new_array();
        const char *text;
        char *l;

        assert_int_equal(json_add_int(o, "version", 1), 0);
        assert_int_equal(json_add_string(o, "name", "g3"), 0);
        assert_int_equal(json_add_uint(o, "nextId", 501), 0);
        for (const char *const *k = (const char *const[]) { "migrations", "failures", "pagesMoved", "bytesMoved",
                                                             "migrateUSec", NULL };
             *k; k++)
                assert_int_equal(json_add_uint(t, *k, 1), 0);
        assert_int_equal(json_add(o, "totals", t), 0);
        for (unsigned i = 1; i <= 500; i++) {
                json_object *r = json_object_new_object();

                assert_int_equal(json_add_uint(r, "id", i), 0);
                assert_int_equal(json_add_string(r, "name", "g3"), 0);
                assert_int_equal(json_object_array_add(a, r), 0);
        }
        assert_int_equal(json_add(o, "reports", a), 0);
        text = json_object_to_json_string(o);
        assert_int_equal(migration_history_new("g3", &h), 0);
        assert_int_equal(migration_history_load(h, text, strlen(text), NULL), 0);
        l = list(h);
        assert_non_null(strstr(l, "{\"id\":437,\"name\":\"g3\"}"));
        assert_null(strstr(l, "{\"id\":436,"));
        free(l);
        json_object_put(o);
        migration_history_free(h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_corrupt),
                cmocka_unit_test(test_bounded),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
