/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* base64: the RFC 4648 test vectors both ways, round trips of every length and byte value, and the strict
 * decoder's refusals (whitespace, bad length, misplaced padding, non-canonical trailing bits, the size bound). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "basic/base64.h"

static const struct {
        const char *plain, *encoded;
} vectors[] = {
        { "", "" },
        { "f", "Zg==" },
        { "fo", "Zm8=" },
        { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" },
        { "fooba", "Zm9vYmE=" },
        { "foobar", "Zm9vYmFy" },
};

static void test_vectors(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(vectors); i++) {
                _cleanup_free_ char *e = NULL, *d = NULL;
                size_t n = SIZE_MAX;

                e = base64_encode(vectors[i].plain, strlen(vectors[i].plain));
                assert_non_null(e);
                assert_string_equal(e, vectors[i].encoded);
                assert_int_equal(base64_encoded_size(strlen(vectors[i].plain)), strlen(vectors[i].encoded));

                assert_int_equal(base64_decode(vectors[i].encoded, strlen(vectors[i].encoded), 100, &d, &n), 0);
                assert_int_equal(n, strlen(vectors[i].plain));
                assert_string_equal(d, vectors[i].plain);       /* NUL-terminated */
        }
}

static void test_round_trip(void **state) {
        uint8_t buf[300];

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (uint8_t) (i * 7 + 3);

        for (size_t n = 0; n <= sizeof(buf); n++) {
                _cleanup_free_ char *e = NULL, *d = NULL;
                size_t m;

                e = base64_encode(buf, n);
                assert_non_null(e);
                assert_int_equal(strlen(e), base64_encoded_size(n));
                assert_int_equal(base64_decode(e, strlen(e), n, &d, &m), 0);
                assert_int_equal(m, n);
                if (n > 0)
                        assert_memory_equal(d, buf, n);
                assert_int_equal(d[n], 0);
        }
}

static void test_every_byte(void **state) {
        uint8_t buf[256];
        _cleanup_free_ char *e = NULL, *d = NULL;
        size_t m;

        for (size_t i = 0; i < 256; i++)
                buf[i] = (uint8_t) i;
        e = base64_encode(buf, sizeof(buf));
        assert_non_null(e);
        assert_int_equal(base64_decode(e, strlen(e), SIZE_MAX, &d, &m), 0);
        assert_int_equal(m, 256);
        assert_memory_equal(d, buf, 256);
}

static void test_refused(void **state) {
        static const char *const bad[] = {
                "Zg=",          /* length not a multiple of 4 */
                "Zg",
                "Z",
                "Zm9v\n",
                "Zm 9v",        /* whitespace */
                "Zm9v\nYmFy",
                "Zg==Zm9v",     /* padding before the end */
                "Z===",         /* one significant character */
                "====",
                "=Zm9",
                "Zm=v",         /* padding inside the last group */
                "Zh==",         /* trailing bits not zero: not canonical */
                "Zm9=",
                "Zm9v!A==",     /* not in the alphabet */
                "Zm9v-_==",     /* URL-safe alphabet is not accepted */
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *d = (char *) 0x1;
                size_t m = 77;

                assert_int_equal(base64_decode(bad[i], strlen(bad[i]), 100, &d, &m), -EINVAL);
                /* Untouched on failure. */
                assert_ptr_equal(d, (char *) 0x1);
                assert_int_equal(m, 77);
        }

        /* Embedded NUL: the length given counts, not the string's. */
        {
                char *d = NULL;

                assert_int_equal(base64_decode("Zm\0v", 4, 100, &d, NULL), -EINVAL);
                assert_null(d);
        }
}

static void test_bound(void **state) {
        _cleanup_free_ char *d = NULL;
        size_t m;

        /* "foobar" is 6 bytes: 5 is too few, 6 is enough. */
        assert_int_equal(base64_decode("Zm9vYmFy", 8, 5, &d, &m), -EFBIG);
        assert_null(d);
        assert_int_equal(base64_decode("Zm9vYmFy", 8, 6, &d, &m), 0);
        assert_int_equal(m, 6);
        /* Padding counts: "Zg==" is one byte. */
        free(d);
        d = NULL;
        assert_int_equal(base64_decode("Zg==", 4, 1, &d, &m), 0);
        assert_int_equal(m, 1);
        assert_int_equal(base64_decoded_size_max(8), 6);
        assert_int_equal(base64_encoded_size(SIZE_MAX), SIZE_MAX);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vectors),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_every_byte),
                cmocka_unit_test(test_refused),
                cmocka_unit_test(test_bound),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
