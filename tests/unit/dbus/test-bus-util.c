/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus_error_set_from_varlink() with the daemon's error table (manager_error_bus_from_varlink()), as
 * manager-dbus.c calls it: D-Bus callers get an error name and a sentence, never raw JSON. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <setjmp.h>
#include <cmocka.h>

#include "dbus/bus-util.h"
#include "daemon/manager-errors.h"
#include "basic/json-util.h"

static void check(const char *name, const char *params, const char *bus_name, const char *message) {
        _cleanup_json_ json_object *p = params ? json_tokener_parse(params) : NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;

        assert_true(bus_error_set_from_varlink(&e, manager_error_bus_from_varlink(name), name, p) < 0);
        assert_string_equal(e.name, bus_name);
        assert_string_equal(e.message, message);
        sd_bus_error_free(&e);
}

static void test_sentences(void **state) {
        check("io.memvisor.Manager.SingleNUMANode",
              "{\"nodes\":1,\"reason\":\"the host has a single NUMA node\"}",
              "io.memvisor.Manager1.SingleNUMANode", "The host has a single NUMA node (nodes 1).");
        check("io.memvisor.Manager.InvalidState", "{\"name\":\"web\",\"state\":\"defined\"}",
              "io.memvisor.Manager1.InvalidState", "Invalid state (name web, state defined).");
        check("io.memvisor.Manager.NoBalloonDevice", "{\"name\":\"fw\"}",
              "io.memvisor.Manager1.NoBalloonDevice", "No balloon device (name fw).");
        check("io.memvisor.Manager.SingleNUMANode", NULL, "io.memvisor.Manager1.SingleNUMANode",
              "Single NUMA node.");
        check("io.memvisor.Manager.BalloonFailed",
              "{\"name\":\"fw\",\"steps\":[1,2],\"detail\":{\"a\":1},\"ok\":false,\"x\":null}",
              "io.memvisor.Manager1.BalloonFailed", "Balloon failed (name fw, steps …, detail …, ok false, x null).");
        check("org.varlink.service.InvalidParameter", "{\"parameter\":\"to\"}",
              SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: to");
        check("org.example.Other.Thing", "{\"a\":\"b\"}", SD_BUS_ERROR_FAILED, "org.example.Other.Thing: Thing (a b).");
        /* An error of the table that has no D-Bus name is not given one. */
        check("io.memvisor.Manager.InternalError", NULL, SD_BUS_ERROR_FAILED,
              "io.memvisor.Manager.InternalError: Internal error.");
}

static void test_error_table(void **state) {
        assert_string_equal(manager_error_bus_from_varlink("io.memvisor.Manager.NoSuchVM"),
                            "io.memvisor.Manager1.NoSuchVM");
        assert_null(manager_error_bus_from_varlink("io.memvisor.Manager.VMExists"));
        assert_null(manager_error_bus_from_varlink("io.memvisor.Manager.Nope"));
        assert_null(manager_error_bus_from_varlink("org.varlink.service.InvalidParameter"));
        assert_null(manager_error_bus_from_varlink(NULL));
}

static void test_object_paths(void **state) {
        char *path = NULL, *name = NULL;

        assert_int_equal(bus_object_path("/org/example/vm", "web-1", &path), 0);
        assert_string_equal(path, "/org/example/vm/web_2d1");
        assert_int_equal(bus_object_name_from_path("/org/example/vm", path, &name), 1);
        assert_string_equal(name, "web-1");
        free(name);
        free(path);
        assert_int_equal(bus_object_name_from_path("/org/example/vm", "/org/example/other/x", &name), 0);
        assert_null(name);
        assert_int_equal(bus_object_name_from_path("/org/example/vm", "/org/example/vm", &name), 0);
        assert_null(name);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sentences),
                cmocka_unit_test(test_error_table),
                cmocka_unit_test(test_object_paths),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
