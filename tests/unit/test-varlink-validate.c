/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* varlink_validate_parameters(): types, nullability, missing and unknown parameters. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "json-util.h"
#include "varlink.h"

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

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_type_matrix),
                cmocka_unit_test(test_numbers),
                cmocka_unit_test(test_nullable),
                cmocka_unit_test(test_missing),
                cmocka_unit_test(test_unknown),
                cmocka_unit_test(test_result_points_into_input),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
