/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* varlink_validate_parameters(): types, nullability, missing and unknown parameters, strings that are not text;
 * utf8_is_valid_text(). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "basic/json-util.h"
#include "basic/utf8.h"
#include "varlink/varlink.h"

static json_object *parse(const char *text) {
        json_object *o = json_tokener_parse(text);

        if (!o)
                fail_msg("test JSON does not parse: %s", text);
        return o;
}

/* Validates text against fields and compares the offending name (NULL = valid). */
static void check(const char *text, const VarlinkField *fields, const char *expected) {
        _cleanup_json_ json_object *o = parse(text);
        const char *bad = varlink_validate_parameters(o, fields);

        if (!streq_ptr(bad, expected))
                fail_msg("%s: expected %s, got %s", text, expected ?: "(valid)", bad ?: "(valid)");
}

static void test_type_matrix(void **state) {
        /* One sample of each JSON type. */
        static const char *const samples[] = {
                "true", "-3", "2.5", "\"s\"", "{\"k\":1}", "[1,2]",
        };
        enum { S_BOOL, S_INT, S_DOUBLE, S_STRING, S_OBJECT, S_ARRAY, _S_MAX };
        static const struct {
                VarlinkType type;
                bool accepts[_S_MAX];
        } matrix[] = {
                { VARLINK_BOOL,   { [S_BOOL] = true } },
                { VARLINK_INT,    { [S_INT] = true } },
                { VARLINK_FLOAT,  { [S_INT] = true, [S_DOUBLE] = true } },
                { VARLINK_STRING, { [S_STRING] = true } },
                { VARLINK_OBJECT, { [S_OBJECT] = true } },
                { VARLINK_ARRAY,  { [S_ARRAY] = true } },
                { VARLINK_ANY,    { true, true, true, true, true, true } },
        };

        for (size_t i = 0; i < ELEMENTSOF(matrix); i++)
                for (size_t j = 0; j < _S_MAX; j++) {
                        const VarlinkField fields[] = { { "v", matrix[i].type, 0 }, { NULL } };
                        _cleanup_free_ char *text = NULL;

                        assert_true(asprintf(&text, "{\"v\":%s}", samples[j]) > 0);
                        check(text, fields, matrix[i].accepts[j] ? NULL : "v");
                }
}

static void test_numbers(void **state) {
        const VarlinkField ints[] = { { "n", VARLINK_INT, 0 }, { NULL } };
        const VarlinkField floats[] = { { "f", VARLINK_FLOAT, 0 }, { NULL } };

        check("{\"n\":0}", ints, NULL);
        check("{\"n\":-9223372036854775808}", ints, NULL);
        check("{\"n\":9223372036854775807}", ints, NULL);
        check("{\"n\":1.0}", ints, "n");
        check("{\"n\":1e3}", ints, "n");
        check("{\"n\":\"1\"}", ints, "n");
        check("{\"n\":false}", ints, "n");

        check("{\"f\":0}", floats, NULL);
        check("{\"f\":-1}", floats, NULL);
        check("{\"f\":1e-3}", floats, NULL);
        check("{\"f\":\"0.5\"}", floats, "f");
        check("{\"f\":[0.5]}", floats, "f");
}

static void test_nullable(void **state) {
        const VarlinkField fields[] = {
                { "required", VARLINK_STRING, 0 },
                { "optional", VARLINK_INT, VARLINK_NULLABLE },
                { "anything", VARLINK_ANY, VARLINK_NULLABLE },
                { NULL },
        };

        check("{\"required\":\"x\"}", fields, NULL);
        check("{\"required\":\"x\",\"optional\":null}", fields, NULL);
        check("{\"required\":\"x\",\"optional\":5}", fields, NULL);
        check("{\"required\":\"x\",\"optional\":\"5\"}", fields, "optional");
        check("{\"required\":\"x\",\"anything\":null}", fields, NULL);
        check("{\"required\":\"x\",\"anything\":[{}]}", fields, NULL);

        /* null is not a value for a non-nullable field, not even of type any */
        check("{\"required\":null}", fields, "required");
        {
                const VarlinkField any[] = { { "a", VARLINK_ANY, 0 }, { NULL } };
                check("{\"a\":null}", any, "a");
                check("{\"a\":0}", any, NULL);
                check("{}", any, "a");
        }
}

static void test_missing(void **state) {
        const VarlinkField fields[] = {
                { "first", VARLINK_STRING, 0 },
                { "maybe", VARLINK_BOOL, VARLINK_NULLABLE },
                { "second", VARLINK_INT, 0 },
                { NULL },
        };

        check("{\"first\":\"a\",\"second\":1}", fields, NULL);
        check("{\"first\":\"a\",\"second\":1,\"maybe\":true}", fields, NULL);
        /* several missing: the first in table order */
        check("{}", fields, "first");
        check("{\"maybe\":true}", fields, "first");
        check("{\"first\":\"a\"}", fields, "second");
        check("{\"second\":1}", fields, "first");
}

static void test_unknown(void **state) {
        const VarlinkField fields[] = {
                { "name", VARLINK_STRING, 0 },
                { "count", VARLINK_INT, VARLINK_NULLABLE },
                { NULL },
        };
        const VarlinkField none[] = { { NULL } };

        check("{\"name\":\"a\",\"bogus\":1}", fields, "bogus");
        check("{\"Name\":\"a\"}", fields, "Name");        /* case sensitive */
        check("{\"name\":\"a\",\"\":1}", fields, "");
        check("{\"name \":\"a\"}", fields, "name ");
        /* unknown and wrong type are reported in the order sent, before missing ones */
        check("{\"bogus\":1}", fields, "bogus");
        check("{\"count\":\"x\",\"bogus\":1}", fields, "count");
        check("{\"bogus\":1,\"count\":\"x\"}", fields, "bogus");

        /* a method that takes no parameters: an empty table or none at all */
        check("{}", none, NULL);
        check("{\"x\":null}", none, "x");
        check("{}", NULL, NULL);
        check("{\"x\":1}", NULL, "x");
}

static void test_result_points_into_input(void **state) {
        const VarlinkField fields[] = { { "a", VARLINK_INT, 0 }, { NULL } };
        _cleanup_json_ json_object *o = parse("{\"a\":1,\"zz\":2}");
        const char *bad = varlink_validate_parameters(o, fields);

        /* Usable for as long as the parameters object lives, e.g. to build the error reply. */
        assert_non_null(bad);
        assert_string_equal(bad, "zz");
        assert_true(json_object_object_get_ex(o, bad, NULL));
}

static void test_utf8(void **state) {
        static const struct {
                const char *s;
                size_t n;
                bool valid;
        } cases[] = {
                { "", 0, true },
                { "plain ascii", 11, true },
                { "caf\xc3\xa9", 5, true },                   /* é */
                { "\xe2\x82\xac", 3, true },                   /* € */
                { "\xf0\x9f\x98\x80", 4, true },               /* U+1F600 */
                { "\xef\xbf\xbf", 3, true },                   /* U+FFFF */
                { "\xf4\x8f\xbf\xbf", 4, true },               /* U+10FFFF, the last */
                { "nul4\0x", 6, false },                       /* an embedded NUL */
                { "\xc0\x80", 2, false },                       /* overlong NUL */
                { "\xc1\xbf", 2, false },                       /* overlong DEL */
                { "\xe0\x80\xaf", 3, false },                   /* overlong '/' */
                { "\xf0\x80\x80\xaf", 4, false },               /* overlong '/' */
                { "\xed\xa0\x80", 3, false },                   /* U+D800, an encoded surrogate */
                { "\xed\xbf\xbf", 3, false },                   /* U+DFFF */
                { "\xf4\x90\x80\x80", 4, false },               /* above U+10FFFF */
                { "\xf8\x88\x80\x80\x80", 5, false },           /* 5-byte form */
                { "\x80", 1, false },                           /* a lone continuation byte */
                { "\xc3", 1, false },                           /* truncated */
                { "\xe2\x82", 2, false },                       /* truncated */
                { "\xc3\x28", 2, false },                       /* bad continuation */
                { "\xff", 1, false },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                if (utf8_is_valid_text(cases[i].s, cases[i].n) != cases[i].valid)
                        fail_msg("case %zu: expected %s", i, cases[i].valid ? "valid" : "invalid");
}

static void test_strings_must_be_text(void **state) {
        const VarlinkField fields[] = {
                { "name", VARLINK_STRING, 0 },
                { "spec", VARLINK_OBJECT, VARLINK_NULLABLE },
                { "list", VARLINK_ARRAY, VARLINK_NULLABLE },
                { NULL }
        };

        check("{\"name\":\"ok \u00e9\"}", fields, NULL);
        /* json-c keeps "\u0000" inside the string; a C string would end there. */
        check("{\"name\":\"nul4\\u0000x\"}", fields, "name");
        check("{\"name\":\"n\",\"spec\":{\"Kernel\":\"/ok\\u0000-evil\"}}", fields, "spec");
        check("{\"name\":\"n\",\"list\":[\"a\",[\"b\\u0000\"]]}", fields, "list");
        check("{\"name\":\"n\",\"spec\":{\"a\":{\"b\":[1,2,{\"c\":\"ok\"}]}}}", fields, NULL);
        /* Raw overlong UTF-8 and an encoded surrogate, in values and in keys. */
        check("{\"name\":\"\xc0\xaf\"}", fields, "name");
        check("{\"name\":\"\xed\xa0\x80\"}", fields, "name");
        check("{\"name\":\"n\",\"spec\":{\"\xc0\xaf\":1}}", fields, "spec");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_type_matrix),
                cmocka_unit_test(test_numbers),
                cmocka_unit_test(test_nullable),
                cmocka_unit_test(test_missing),
                cmocka_unit_test(test_unknown),
                cmocka_unit_test(test_result_points_into_input),
                cmocka_unit_test(test_utf8),
                cmocka_unit_test(test_strings_must_be_text),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
