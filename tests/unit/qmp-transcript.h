/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reading the recorded QEMU transcripts of tests/data/qmp (QMP_TRANSCRIPTS_DIR, see its README: "C: " lines
 * the client sent, "S: " lines QEMU sent) in cmocka tests. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "basic/fileio.h"
#include "basic/macro.h"

/* The reply (the first "S: " message that is not an event) after the nth (0-based) "C: " line containing needle,
 * parsed; with needle NULL the first "S: " message of the file (the greeting). Fails the test when there is
 * none. */
static inline json_object *qmp_transcript_reply(const char *file, const char *needle, unsigned nth) {
        _cleanup_free_ char *path = path_join(QMP_TRANSCRIPTS_DIR, file), *text = NULL;
        bool armed = !needle;
        char *save = NULL;

        assert_int_equal(read_full_file(path, 1 << 20, &text, NULL), 0);
        for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                if (startswith(l, "C: ") && needle && strstr(l, needle)) {
                        if (nth-- == 0)
                                armed = true;
                } else if (armed && startswith(l, "S: ")) {
                        json_object *o = json_tokener_parse(l + 3);
                        assert_non_null(o);
                        if (!json_object_object_get_ex(o, "event", NULL))
                                return o;
                        json_object_put(o);
                }
        }
        fail_msg("no reply after %s in %s", needle ?: "(start)", file);
        return NULL;
}

/* The "return" value of that reply (the test fails when it is an error). */
static inline json_object *qmp_transcript_return(const char *file, const char *needle) {
        json_object *reply = qmp_transcript_reply(file, needle, 0), *ret = NULL;

        assert_true(json_object_object_get_ex(reply, "return", &ret));
        json_object_get(ret);
        json_object_put(reply);
        return ret;
}
