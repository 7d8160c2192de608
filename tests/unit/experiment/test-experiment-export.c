/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The tidy CSV of an experiment's iterations (experiment-export.h), byte for byte: the header, rows sorted by
 * counter then the unavailable ones, exact numbers, RFC 4180 quoting, and nothing written for a bad record.
 * python3-pandas reads the output back in test-experiment-export-pandas.py. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "experiment/experiment-export.h"

typedef struct Memory {
        char *buf;
        size_t size;
        FILE *f;
} Memory;

static void memory_open(Memory *m) {
        *m = (Memory) {};
        m->f = open_memstream(&m->buf, &m->size);
        assert_non_null(m->f);
}

/* Closes the stream and returns what was written (owned by m). */
static const char *memory_close(Memory *m) {
        assert_int_equal(fclose(m->f), 0);
        m->f = NULL;
        return m->buf;
}

static void test_header(void **state) {
        _cleanup_free_ char *buf = NULL;
        Memory m;

        (void) state;
        memory_open(&m);
        assert_int_equal(experiment_export_csv_header(m.f), 0);
        assert_string_equal(memory_close(&m),
                            "experiment,guest,variant,iteration,warm_up,started_realtime_usec,counter,value,unit,unavailable\n");
        buf = m.buf;
        assert_int_equal(experiment_export_csv_header(NULL), -EINVAL);
}

static void test_variant(void **state) {
        _cleanup_json_ json_object *r = json_tokener_parse(
                "{\"iteration\": 2, \"warmUp\": true, \"startedRealtimeUSec\": 7, \"variant\": \"B\", "
                "\"block\": 1, \"counters\": {\"b\": 1}}");
        _cleanup_json_ json_object *bad = json_tokener_parse(
                "{\"iteration\": 2, \"warmUp\": true, \"startedRealtimeUSec\": 7, \"variant\": \"B,\\n\", "
                "\"counters\": {\"b\": 1}}");
        _cleanup_free_ char *buf = NULL;
        Memory m;

        (void) state;
        assert_non_null(r);
        assert_non_null(bad);
        memory_open(&m);
        assert_int_equal(experiment_export_csv_record(m.f, "X", "web", r), 0);
        assert_int_equal(experiment_export_csv_record(m.f, "X", "web", bad), -EBADMSG);
        assert_string_equal(memory_close(&m), "X,web,B,2,true,7,b,1,count,\n");
        buf = m.buf;
}

static void test_record(void **state) {
        _cleanup_json_ json_object *r = json_tokener_parse(
                "{\"iteration\": 4, \"warmUp\": false, \"startedRealtimeUSec\": 1796000000123456, "
                "\"durationUSec\": 99, "
                "\"counters\": {\"time.provoke_usec\": 81234, \"b\": -3, \"a.bytes\": 18446744073709551615, "
                "\"workload.per_thread.0.bytes_per_sec\": 0.1, \"c_ns\": 2.0, \"d\": -0.0, \"e\": 1e300}, "
                "\"unavailable\": {\"host.kvm_exit\": \"no /dev/kvm: the guest runs under TCG\", "
                "\"guest.tlb_shootdowns\": \"agent said \\\"no\\\", twice\\nand left\"}, "
                "\"workload\": {\"elapsed_ns\": 5}}");
        _cleanup_free_ char *buf = NULL;
        Memory m;

        (void) state;
        assert_non_null(r);
        memory_open(&m);
        assert_int_equal(experiment_export_csv_record(m.f, "20261204-222222-abcdef", "web,1", r), 0);
        assert_string_equal(memory_close(&m),
                "20261204-222222-abcdef,\"web,1\",,4,false,1796000000123456,a.bytes,18446744073709551615,bytes,\n"
                "20261204-222222-abcdef,\"web,1\",,4,false,1796000000123456,b,-3,count,\n"
                "20261204-222222-abcdef,\"web,1\",,4,false,1796000000123456,c_ns,2,ns,\n"
                "20261204-222222-abcdef,\"web,1\",,4,false,1796000000123456,d,-0,count,\n"
                "20261204-222222-abcdef,\"web,1\",,4,false,1796000000123456,e,1.0000000000000001e+300,count,\n"
                "20261204-222222-abcdef,\"web,1\",,4,false,1796000000123456,time.provoke_usec,81234,us,\n"
                "20261204-222222-abcdef,\"web,1\",,4,false,1796000000123456,"
                "workload.per_thread.0.bytes_per_sec,0.10000000000000001,bytes/s,\n"
                "20261204-222222-abcdef,\"web,1\",,4,false,1796000000123456,guest.tlb_shootdowns,,count,"
                "\"agent said \"\"no\"\", twice\nand left\"\n"
                "20261204-222222-abcdef,\"web,1\",,4,false,1796000000123456,host.kvm_exit,,count,"
                "no /dev/kvm: the guest runs under TCG\n");
        buf = m.buf;
}

static void test_warm_up_and_empty(void **state) {
        _cleanup_json_ json_object *r = json_tokener_parse(
                "{\"iteration\": 1, \"warmUp\": true, \"startedRealtimeUSec\": 0, \"counters\": {}}");
        _cleanup_json_ json_object *r2 = json_tokener_parse(
                "{\"iteration\": 2, \"warmUp\": true, \"startedRealtimeUSec\": 7, \"counters\": {\"x\": 1}, "
                "\"unavailable\": null}");
        _cleanup_free_ char *buf = NULL, *buf2 = NULL;
        Memory m, m2;

        (void) state;
        memory_open(&m);
        assert_int_equal(experiment_export_csv_record(m.f, "id", "g", r), 0);
        assert_string_equal(memory_close(&m), "");
        buf = m.buf;
        memory_open(&m2);
        assert_int_equal(experiment_export_csv_record(m2.f, "id", "\"quoted\"", r2), 0);
        assert_string_equal(memory_close(&m2), "id,\"\"\"quoted\"\"\",,2,true,7,x,1,count,\n");
        buf2 = m2.buf;
}

static void test_bad(void **state) {
        static const char *const bad[] = {
                "[1]",
                "{\"iteration\": 1, \"warmUp\": false, \"startedRealtimeUSec\": 0}",
                "{\"iteration\": 1, \"warmUp\": false, \"startedRealtimeUSec\": 0, \"counters\": {\"a\": 1, "
                "\"b\": \"2\"}}",
                "{\"iteration\": 1, \"warmUp\": false, \"startedRealtimeUSec\": 0, \"counters\": {\"a\": 1}, "
                "\"unavailable\": {\"b\": 2}}",
                "{\"iteration\": 1, \"warmUp\": \"no\", \"startedRealtimeUSec\": 0, \"counters\": {}}",
        };
        _cleanup_json_ json_object *good = json_tokener_parse(
                "{\"iteration\": 1, \"warmUp\": false, \"startedRealtimeUSec\": 0, \"counters\": {}}");

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_json_ json_object *r = json_tokener_parse(bad[i]);
                _cleanup_free_ char *buf = NULL;
                Memory m;

                assert_non_null(r);
                memory_open(&m);
                assert_int_equal(experiment_export_csv_record(m.f, "id", "g", r), -EBADMSG);
                assert_string_equal(memory_close(&m), "");
                buf = m.buf;
        }
        assert_int_equal(experiment_export_csv_record(stdout, NULL, "g", good), -EINVAL);
        assert_int_equal(experiment_export_csv_record(stdout, "id", NULL, good), -EINVAL);
        assert_int_equal(experiment_export_csv_record(stdout, "id", "g", NULL), -EBADMSG);
}

/* A stream that fails to write: -EIO. */
static void test_write_error(void **state) {
        _cleanup_json_ json_object *r = json_tokener_parse(
                "{\"iteration\": 1, \"warmUp\": false, \"startedRealtimeUSec\": 0, \"counters\": {\"a\": 1}}");
        FILE *f = fopen("/dev/full", "we");

        (void) state;
        if (!f)
                skip();
        assert_int_equal(setvbuf(f, NULL, _IONBF, 0), 0);
        assert_int_equal(experiment_export_csv_record(f, "id", "g", r), -EIO);
        clearerr(f);
        assert_int_equal(experiment_export_csv_header(f), -EIO);
        (void) fclose(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_header),
                cmocka_unit_test(test_record),
                cmocka_unit_test(test_variant),
                cmocka_unit_test(test_warm_up_and_empty),
                cmocka_unit_test(test_bad),
                cmocka_unit_test(test_write_error),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
