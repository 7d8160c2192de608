/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus_error_set_from_varlink() with the daemon's error table (manager_error_bus_from_varlink()), as
 * manager-dbus.c calls it: D-Bus callers get an error name and a sentence, never raw JSON. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sentences),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
