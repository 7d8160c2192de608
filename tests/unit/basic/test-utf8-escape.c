/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* utf8_escape_untrusted(): what a guest's console may hold reaches a terminal only as printable text. Control
 * characters (escape sequences, bells, backspaces, C1), invalid UTF-8 (overlong, surrogates, truncated, stray
 * continuation bytes) come out as \xNN / \u00NN; printable UTF-8, newlines and tabs stay, CRLF becomes LF. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "basic/macro.h"
#include "basic/utf8.h"

static void check(const char *in, size_t n, const char *want) {
        _cleanup_free_ char *out = utf8_escape_untrusted(in, n);

        assert_non_null(out);
        assert_string_equal(out, want);
        assert_true(utf8_is_valid_text(out, strlen(out)));
        for (const char *p = out; *p; p++)
                assert_true((unsigned char) *p >= 0x20 || *p == '\n' || *p == '\t');
}

#define CHECK(in, want) check(in, sizeof(in) - 1, want)

static void test_plain_text_stays(void **state) {
        CHECK("", "");
        CHECK("Booting Linux\n[    0.000000] x\tdone\n", "Booting Linux\n[    0.000000] x\tdone\n");
        CHECK("gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80", "gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80");
        CHECK("a\\b", "a\\b");
        CHECK("line\r\nnext\r\n", "line\nnext\n");
}

static void test_controls_are_escaped(void **state) {
        CHECK("\x1b[2J\x1b]0;owned\x07", "\\x1b[2J\\x1b]0;owned\\x07");
        CHECK("a\rb", "a\\x0db");
        CHECK("x\r", "x\\x0d");
        CHECK("\x08\x7f", "\\x08\\x7f");
        CHECK("nul\0byte", "nul\\x00byte");
        /* C1 controls, well-formed UTF-8: U+009B is CSI on some terminals. */
        CHECK("\xc2\x9b" "31m", "\\u009b31m");
        CHECK("\xc2\x85", "\\u0085");
        CHECK("\xc2\xa0", "\xc2\xa0");  /* U+00A0 is printable */
}

static void test_invalid_utf8_is_escaped(void **state) {
        CHECK("\xc0\xaf", "\\xc0\\xaf");                /* overlong */
        CHECK("\xed\xa0\x80", "\\xed\\xa0\\x80");       /* surrogate */
        CHECK("\xe2\x82", "\\xe2\\x82");                /* truncated */
        CHECK("\x80" "ok", "\\x80ok");                  /* stray continuation */
        CHECK("\xff\xfe", "\\xff\\xfe");
        CHECK("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
        /* An 8-bit CSI (0x9b alone) is not UTF-8: escaped too. */
        CHECK("\x9b" "2J", "\\x9b2J");
}

static void test_every_byte(void **state) {
        char all[256];

        for (unsigned i = 0; i < 256; i++)
                all[i] = (char) i;
        /* check() asserts that nothing but printable text, newline and tab comes out. */
        check(all, sizeof(all), "\\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\t\n\\x0b\\x0c\\x0d\\x0e\\x0f"
              "\\x10\\x11\\x12\\x13\\x14\\x15\\x16\\x17\\x18\\x19\\x1a\\x1b\\x1c\\x1d\\x1e\\x1f"
              " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
              "\\x7f\\x80\\x81\\x82\\x83\\x84\\x85\\x86\\x87\\x88\\x89\\x8a\\x8b\\x8c\\x8d\\x8e\\x8f"
              "\\x90\\x91\\x92\\x93\\x94\\x95\\x96\\x97\\x98\\x99\\x9a\\x9b\\x9c\\x9d\\x9e\\x9f"
              "\\xa0\\xa1\\xa2\\xa3\\xa4\\xa5\\xa6\\xa7\\xa8\\xa9\\xaa\\xab\\xac\\xad\\xae\\xaf"
              "\\xb0\\xb1\\xb2\\xb3\\xb4\\xb5\\xb6\\xb7\\xb8\\xb9\\xba\\xbb\\xbc\\xbd\\xbe\\xbf"
              "\\xc0\\xc1\\xc2\\xc3\\xc4\\xc5\\xc6\\xc7\\xc8\\xc9\\xca\\xcb\\xcc\\xcd\\xce\\xcf"
              "\\xd0\\xd1\\xd2\\xd3\\xd4\\xd5\\xd6\\xd7\\xd8\\xd9\\xda\\xdb\\xdc\\xdd\\xde\\xdf"
              "\\xe0\\xe1\\xe2\\xe3\\xe4\\xe5\\xe6\\xe7\\xe8\\xe9\\xea\\xeb\\xec\\xed\\xee\\xef"
              "\\xf0\\xf1\\xf2\\xf3\\xf4\\xf5\\xf6\\xf7\\xf8\\xf9\\xfa\\xfb\\xfc\\xfd\\xfe\\xff");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain_text_stays),
                cmocka_unit_test(test_controls_are_escaped),
                cmocka_unit_test(test_invalid_utf8_is_escaped),
                cmocka_unit_test(test_every_byte),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
