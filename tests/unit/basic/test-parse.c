/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* parse_size, parse_sec, parse_boolean, parse_mode, parse_uint64/unsigned/int and format_size. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/parse.h"

#define K (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)
#define PiB (UINT64_C(1) << 50)
#define EiB (UINT64_C(1) << 60)

/* Output parameters must be untouched on failure: every check starts from this value. */
#define SENTINEL UINT64_C(0x5a5a5a5a5a5a5a5a)

static void size_ok(const char *s, uint64_t expected) {
        uint64_t v = SENTINEL;
        int r = parse_size(s, &v);

        if (r != 0 || v != expected)
                fail_msg("parse_size(\"%s\"): expected %" PRIu64 ", got r=%d v=%" PRIu64, s, expected, r, v);
}

static void size_fails(const char *s, int expected) {
        uint64_t v = SENTINEL;
        int r = parse_size(s, &v);

        if (r != expected || v != SENTINEL)
                fail_msg("parse_size(\"%s\"): expected %d, got r=%d v=%" PRIu64, s, expected, r, v);
}

static void test_parse_size(void **state) {
        size_ok("0", 0);
        size_ok("4096", 4096);
        size_ok("007", 7);
        size_ok("1B", 1);
        size_ok("1K", K);
        size_ok("1k", K);
        size_ok("1KB", K);
        size_ok("512KiB", 512 * K);
        size_ok("16M", 16 * MiB);
        size_ok("16MiB", 16 * MiB);
        size_ok("16m", 16 * MiB);
        size_ok("2G", 2 * GiB);
        size_ok("3T", 3 * TiB);
        size_ok("5P", 5 * PiB);
        size_ok("1E", EiB);
        size_ok("15E", 15 * EiB);
        size_ok("18446744073709551615", UINT64_MAX);
        size_ok("18446744073709551615B", UINT64_MAX);
        size_ok("17179869183G", UINT64_C(17179869183) * GiB);

        /* fractions with a suffix */
        size_ok("1.5G", GiB + GiB / 2);
        size_ok("1.5K", 1536);
        size_ok("0.5K", 512);
        size_ok("0.25M", 256 * K);
        size_ok("1.1K", 1126);          /* 1126.4 rounded down */
        size_ok("2.0M", 2 * MiB);
        size_ok("0.000000001G", 1);
        size_ok("1.00000000000000000001K", K);  /* digits beyond nanos are ignored */
        size_ok("15.5E", 15 * EiB + EiB / 2);

        /* overflow */
        size_fails("16E", -ERANGE);
        size_fails("16.0E", -ERANGE);
        size_fails("17179869184G", -ERANGE);
        size_fails("18446744073709551616", -ERANGE);
        size_fails("99999999999999999999999", -ERANGE);
        size_fails("18014398509481984K", -ERANGE);

        /* malformed */
        size_fails("", -EINVAL);
        size_fails("-1", -EINVAL);
        size_fails("+1", -EINVAL);
        size_fails(" 1", -EINVAL);
        size_fails("1 ", -EINVAL);
        size_fails("1 K", -EINVAL);
        size_fails("12Q", -EINVAL);
        size_fails("K", -EINVAL);
        size_fails("1KK", -EINVAL);
        size_fails("1Ki", -EINVAL);
        size_fails("1KiBx", -EINVAL);
        size_fails("1iB", -EINVAL);
        size_fails("1b", -EINVAL);
        size_fails("1BB", -EINVAL);
        size_fails("0x10", -EINVAL);
        size_fails("1e3", -EINVAL);
        size_fails("1.", -EINVAL);
        size_fails(".5K", -EINVAL);
        size_fails("1..5K", -EINVAL);
        size_fails("1.5", -EINVAL);     /* a fraction of a byte */
        size_fails("1.5B", -EINVAL);
        size_fails("1,5K", -EINVAL);
        size_fails("infinity", -EINVAL);
        size_fails(NULL, -EINVAL);
}

static void sec_ok(const char *s, uint64_t expected) {
        uint64_t v = SENTINEL;
        int r = parse_sec(s, &v);

        if (r != 0 || v != expected)
                fail_msg("parse_sec(\"%s\"): expected %" PRIu64 ", got r=%d v=%" PRIu64, s, expected, r, v);
}

static void sec_fails(const char *s, int expected) {
        uint64_t v = SENTINEL;
        int r = parse_sec(s, &v);

        if (r != expected || v != SENTINEL)
                fail_msg("parse_sec(\"%s\"): expected %d, got r=%d v=%" PRIu64, s, expected, r, v);
}

static void test_parse_sec(void **state) {
        sec_ok("0", 0);
        sec_ok("5", 5 * USEC_PER_SEC);          /* a bare number is seconds */
        sec_ok("5s", 5 * USEC_PER_SEC);
        sec_ok("5sec", 5 * USEC_PER_SEC);
        sec_ok("5second", 5 * USEC_PER_SEC);
        sec_ok("5seconds", 5 * USEC_PER_SEC);
        sec_ok("100ms", 100 * USEC_PER_MSEC);
        sec_ok("100msec", 100 * USEC_PER_MSEC);
        sec_ok("250us", 250);
        sec_ok("250usec", 250);
        sec_ok("2min", 120 * USEC_PER_SEC);
        sec_ok("2minutes", 120 * USEC_PER_SEC);
        sec_ok("1m", 60 * USEC_PER_SEC);
        sec_ok("1h", 3600 * USEC_PER_SEC);
        sec_ok("1hr", 3600 * USEC_PER_SEC);
        sec_ok("2hours", 7200 * USEC_PER_SEC);
        sec_ok("1.5s", 1500 * USEC_PER_MSEC);
        sec_ok("0.5ms", 500);
        sec_ok("1.5", 1500 * USEC_PER_MSEC);
        sec_ok("1.0000005s", 1000000);          /* below a microsecond is dropped */
        sec_ok("1s 500ms", 1500 * USEC_PER_MSEC);
        sec_ok("1min 5s 250ms", 65250 * USEC_PER_MSEC);
        sec_ok("1s500ms", 1500 * USEC_PER_MSEC);
        sec_ok("1h 1h", 7200 * USEC_PER_SEC);
        sec_ok("infinity", USEC_INFINITY);
        sec_ok("5124095576h", UINT64_C(5124095576) * 3600 * USEC_PER_SEC);

        sec_fails("", -EINVAL);
        sec_fails("   ", -EINVAL);
        sec_fails("s", -EINVAL);
        sec_fails("5x", -EINVAL);
        sec_fails("5 s", -EINVAL);
        sec_fails("5sx", -EINVAL);
        sec_fails("5secs", -EINVAL);
        sec_fails("-1s", -EINVAL);
        sec_fails("+1s", -EINVAL);
        sec_fails("1.s", -EINVAL);
        sec_fails(".5s", -EINVAL);
        sec_fails("1d", -EINVAL);
        sec_fails("Infinity", -EINVAL);
        sec_fails("infinity 1s", -EINVAL);
        sec_fails(NULL, -EINVAL);

        /* overflow, and sums that would reach the infinity value */
        sec_fails("5124095577h", -ERANGE);
        sec_fails("99999999999999999999999s", -ERANGE);
        sec_fails("10000000000000000000us 10000000000000000000us", -ERANGE);
        sec_fails("18446744073709551615us", -ERANGE);
        sec_ok("18446744073709551614us", UINT64_MAX - 1);
}

static void test_parse_boolean(void **state) {
        static const char *const yes[] = { "1", "yes", "y", "true", "t", "on", "YES", "True", "ON", "Y" };
        static const char *const no[] = { "0", "no", "n", "false", "f", "off", "NO", "False", "OFF", "N" };
        static const char *const bad[] = { "", " yes", "yes ", "2", "-1", "oui", "yess", "of", "enable", "10" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                assert_int_equal(parse_boolean(yes[i]), 1);
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                assert_int_equal(parse_boolean(no[i]), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (parse_boolean(bad[i]) != -EINVAL)
                        fail_msg("parse_boolean(\"%s\") accepted", bad[i]);
        assert_int_equal(parse_boolean(NULL), -EINVAL);
}

static void test_parse_mode(void **state) {
        static const struct {
                const char *s;
                int r;
                mode_t mode;
        } cases[] = {
                { "0", 0, 0 },
                { "0660", 0, 0660 },
                { "660", 0, 0660 },
                { "0666", 0, 0666 },
                { "755", 0, 0755 },
                { "07777", 0, 07777 },
                { "4755", 0, 04755 },
                { "0000000644", 0, 0644 },
                { "10000", -ERANGE, 0 },
                { "077777", -ERANGE, 0 },
                { "777777777777777777777777", -ERANGE, 0 },
                { "0668", -EINVAL, 0 },
                { "9", -EINVAL, 0 },
                { "", -EINVAL, 0 },
                { "-644", -EINVAL, 0 },
                { "+644", -EINVAL, 0 },
                { " 644", -EINVAL, 0 },
                { "644 ", -EINVAL, 0 },
                { "0x1ff", -EINVAL, 0 },
                { "rw-r--r--", -EINVAL, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                mode_t m = 01234;
                int r = parse_mode(cases[i].s, &m);

                if (r != cases[i].r)
                        fail_msg("parse_mode(\"%s\"): expected %d, got %d", cases[i].s, cases[i].r, r);
                assert_int_equal(m, r == 0 ? cases[i].mode : 01234);
        }
        {
                mode_t m = 01234;
                assert_int_equal(parse_mode(NULL, &m), -EINVAL);
                assert_int_equal(m, 01234);
        }
}

static void test_parse_uint64(void **state) {
        static const struct {
                const char *s;
                int r;
                uint64_t v;
        } cases[] = {
                { "0", 0, 0 },
                { "1", 0, 1 },
                { "007", 0, 7 },
                { "4294967296", 0, UINT64_C(4294967296) },
                { "18446744073709551615", 0, UINT64_MAX },
                { "18446744073709551616", -ERANGE, 0 },
                { "99999999999999999999999999", -ERANGE, 0 },
                { "", -EINVAL, 0 },
                { "-1", -EINVAL, 0 },
                { "-0", -EINVAL, 0 },
                { "+1", -EINVAL, 0 },
                { " 1", -EINVAL, 0 },
                { "1 ", -EINVAL, 0 },
                { "1x", -EINVAL, 0 },
                { "0x10", -EINVAL, 0 },
                { "1.0", -EINVAL, 0 },
                { "1e3", -EINVAL, 0 },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint64_t v = SENTINEL;
                int r = parse_uint64(cases[i].s, &v);

                if (r != cases[i].r)
                        fail_msg("parse_uint64(\"%s\"): expected %d, got %d", cases[i].s, cases[i].r, r);
                assert_int_equal(v, r == 0 ? cases[i].v : SENTINEL);
        }
        {
                uint64_t v = SENTINEL;
                assert_int_equal(parse_uint64(NULL, &v), -EINVAL);
                assert_int_equal(v, SENTINEL);
        }
}

static void test_parse_unsigned_int(void **state) {
        unsigned u = 42;
        int i = 42;

        assert_int_equal(parse_unsigned("4294967295", &u), 0);
        assert_int_equal(u, UINT32_MAX);
        u = 42;
        assert_int_equal(parse_unsigned("4294967296", &u), -ERANGE);
        assert_int_equal(u, 42);
        assert_int_equal(parse_unsigned("-1", &u), -EINVAL);
        assert_int_equal(u, 42);

        assert_int_equal(parse_int("-2147483648", &i), 0);
        assert_int_equal(i, INT32_MIN);
        assert_int_equal(parse_int("2147483647", &i), 0);
        assert_int_equal(i, INT32_MAX);
        assert_int_equal(parse_int("0", &i), 0);
        assert_int_equal(i, 0);
        i = 42;
        assert_int_equal(parse_int("2147483648", &i), -ERANGE);
        assert_int_equal(parse_int("-2147483649", &i), -ERANGE);
        assert_int_equal(parse_int("99999999999999999999", &i), -ERANGE);
        assert_int_equal(parse_int("-", &i), -EINVAL);
        assert_int_equal(parse_int("--1", &i), -EINVAL);
        assert_int_equal(parse_int("+1", &i), -EINVAL);
        assert_int_equal(parse_int("1 ", &i), -EINVAL);
        assert_int_equal(parse_int("", &i), -EINVAL);
        assert_int_equal(i, 42);
}

static void test_format_size(void **state) {
        static const struct {
                uint64_t bytes;
                const char *text;
        } cases[] = {
                { 0, "0B" },
                { 1, "1B" },
                { 1023, "1023B" },
                { 1024, "1K" },
                { 1536, "1.5K" },
                { 4096, "4K" },
                { 16 * MiB, "16M" },
                { GiB + GiB / 2, "1.5G" },
                { 3 * TiB, "3T" },
                { PiB, "1P" },
                { 15 * EiB, "15E" },
                { UINT64_MAX, "16.0E" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char buf[FORMAT_SIZE_MAX];
                assert_string_equal(format_size(buf, sizeof(buf), cases[i].bytes), cases[i].text);
        }

        /* Exact multiples survive a round trip through parse_size. */
        for (unsigned shift = 0; shift < 64; shift++) {
                char buf[FORMAT_SIZE_MAX];
                uint64_t v = UINT64_C(1) << shift, back = 0;

                assert_int_equal(parse_size(format_size(buf, sizeof(buf), v), &back), 0);
                assert_int_equal(back, v);
        }

        /* A short buffer is truncated, never overrun. */
        {
                char buf[4] = "xxx";
                assert_ptr_equal(format_size(buf, 3, 16 * MiB), buf);
                assert_string_equal(buf, "16");
        }
}

static void test_format_timespan(void **state) {
        char buf[FORMAT_TIMESPAN_MAX];

        assert_string_equal(format_timespan(buf, sizeof(buf), USEC_INFINITY), "infinity");
        assert_string_equal(format_timespan(buf, sizeof(buf), 0), "0us");
        assert_string_equal(format_timespan(buf, sizeof(buf), 250), "250us");
        assert_string_equal(format_timespan(buf, sizeof(buf), 100 * USEC_PER_MSEC), "100ms");
        assert_string_equal(format_timespan(buf, sizeof(buf), 1500 * USEC_PER_MSEC), "1.500s");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_size),
                cmocka_unit_test(test_parse_sec),
                cmocka_unit_test(test_parse_boolean),
                cmocka_unit_test(test_parse_mode),
                cmocka_unit_test(test_parse_uint64),
                cmocka_unit_test(test_parse_unsigned_int),
                cmocka_unit_test(test_format_size),
                cmocka_unit_test(test_format_timespan),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
