/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* JsonStream: messages split anywhere, whitespace between them, the size and depth bounds, garbage, reset, a
 * bound raised for one message, and a handler that stops the feeding. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <cmocka.h>

#include "basic/json-stream.h"
#include "basic/json-util.h"

typedef struct Seen {
        char texts[8][64];
        unsigned n;
        unsigned stop_after;            /* return 1 after this many messages (0: never) */
} Seen;

static int on_message(json_object *m, void *userdata) {
        Seen *s = userdata;

        assert_true(s->n < ELEMENTSOF(s->texts));
        snprintf(s->texts[s->n], sizeof(s->texts[0]), "%s", json_to_plain(m, NULL));
        s->n++;
        return s->stop_after > 0 && s->n >= s->stop_after;
}

static void test_split_anywhere(void **state) {
        static const char input[] = " {\"a\": [1, 2]}\r\n{\"b\": \"x y\"}\n\t7 \"s\" ";

        /* Every split into two pieces gives the same four messages. */
        for (size_t cut = 0; cut <= strlen(input); cut++) {
                _cleanup_(json_stream_freep) JsonStream *s = NULL;
                Seen seen = {};

                assert_int_equal(json_stream_new(&s, 8, 1024), 0);
                assert_int_equal(json_stream_feed(s, input, cut, on_message, &seen), 0);
                assert_int_equal(json_stream_feed(s, input + cut, strlen(input) - cut, on_message, &seen), 0);
                assert_int_equal(seen.n, 4);
                assert_string_equal(seen.texts[0], "{\"a\":[1,2]}");
                assert_string_equal(seen.texts[1], "{\"b\":\"x y\"}");
                assert_string_equal(seen.texts[2], "7");
                assert_string_equal(seen.texts[3], "\"s\"");
                assert_int_equal(json_stream_pending(s), 0);
        }
}

static void test_byte_by_byte(void **state) {
        _cleanup_(json_stream_freep) JsonStream *s = NULL;
        static const char input[] = "{\"return\": {\"x\": [true, null, 1.5]}}\n{}";
        Seen seen = {};

        assert_int_equal(json_stream_new(&s, 8, 1024), 0);
        for (size_t i = 0; i < strlen(input); i++)
                assert_int_equal(json_stream_feed(s, input + i, 1, on_message, &seen), 0);
        assert_int_equal(seen.n, 2);
        assert_string_equal(seen.texts[0], "{\"return\":{\"x\":[true,null,1.5]}}");
        assert_string_equal(seen.texts[1], "{}");
}

static void test_size_bound(void **state) {
        _cleanup_(json_stream_freep) JsonStream *s = NULL;
        Seen seen = {};

        /* Exactly at the bound is fine, one byte more is not: complete in one piece or in several. */
        assert_int_equal(json_stream_new(&s, 8, 10), 0);
        assert_int_equal(json_stream_feed(s, "{\"a\":\"12\"}", 10, on_message, &seen), 0);
        assert_int_equal(seen.n, 1);
        assert_int_equal(json_stream_feed(s, "{\"a\":\"123\"}", 11, on_message, &seen), -EMSGSIZE);
        json_stream_reset(s);
        assert_int_equal(json_stream_feed(s, "{\"a\":", 5, on_message, &seen), 0);
        assert_int_equal(json_stream_pending(s), 5);
        assert_int_equal(json_stream_feed(s, "\"123\"", 5, on_message, &seen), 0);
        assert_int_equal(json_stream_feed(s, "}", 1, on_message, &seen), -EMSGSIZE);
        assert_int_equal(seen.n, 1);

        /* An unfinished message that never ends is cut at the bound. */
        json_stream_reset(s);
        assert_int_equal(json_stream_feed(s, "\"aaaaa", 6, on_message, &seen), 0);
        assert_int_equal(json_stream_feed(s, "aaaaa", 5, on_message, &seen), -EMSGSIZE);

        /* Raised for one message, then lowered again; the bytes read so far count against a lowered bound. */
        json_stream_reset(s);
        json_stream_set_max_message_size(s, 100);
        assert_int_equal(json_stream_get_max_message_size(s), 100);
        assert_int_equal(json_stream_feed(s, "{\"a\":\"123456789012345\"}", 23, on_message, &seen), 0);
        assert_int_equal(seen.n, 2);
        assert_int_equal(json_stream_feed(s, "[\"123456789012", 14, on_message, &seen), 0);
        json_stream_set_max_message_size(s, 10);
        assert_int_equal(json_stream_feed(s, "\"]", 2, on_message, &seen), -EMSGSIZE);
}

static void test_garbage_and_depth(void **state) {
        _cleanup_(json_stream_freep) JsonStream *s = NULL;
        Seen seen = {};

        assert_int_equal(json_stream_new(&s, 4, 1024), 0);
        assert_int_equal(json_stream_feed(s, "{\"a\":1} }", 9, on_message, &seen), -EBADMSG);
        assert_int_equal(seen.n, 1);

        json_stream_reset(s);
        assert_int_equal(json_stream_feed(s, "[[[[1]]]]", 9, on_message, &seen), -EBADMSG);
        json_stream_reset(s);
        assert_int_equal(json_stream_feed(s, "[[[1]]]", 7, on_message, &seen), 0);
        assert_int_equal(seen.n, 2);

        /* A reset drops the unfinished message: what follows starts afresh. */
        assert_int_equal(json_stream_feed(s, "{\"half", 6, on_message, &seen), 0);
        json_stream_reset(s);
        assert_int_equal(json_stream_pending(s), 0);
        assert_int_equal(json_stream_feed(s, "{\"b\":2}", 7, on_message, &seen), 0);
        assert_int_equal(seen.n, 3);
        assert_string_equal(seen.texts[2], "{\"b\":2}");
}

static void test_handler_stops(void **state) {
        _cleanup_(json_stream_freep) JsonStream *s = NULL;
        Seen seen = { .stop_after = 1 };

        assert_int_equal(json_stream_new(&s, 8, 1024), 0);
        assert_int_equal(json_stream_feed(s, "{}{}{}", 6, on_message, &seen), 0);
        assert_int_equal(seen.n, 1);
        assert_int_equal(json_stream_new(&(JsonStream *) { NULL }, 0, 10), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_split_anywhere),
                cmocka_unit_test(test_byte_by_byte),
                cmocka_unit_test(test_size_bound),
                cmocka_unit_test(test_garbage_and_depth),
                cmocka_unit_test(test_handler_stops),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
