/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Typed QEMU events (qmp-event.h): every event of the recorded transcripts (tests/data/qmp), and hostile
 * payloads, which become QMP_EVENT_UNKNOWN or are refused, never a crash or a half-filled typed field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "qmp/qmp-event.h"

typedef struct Parsed {
        json_object *message;
        QmpEvent event;
        int r;
} Parsed;

static Parsed parse(const char *text) {
        Parsed p = { .message = json_tokener_parse(text) };

        assert_non_null(p.message);
        memset(&p.event, 0x5a, sizeof(p.event)); /* untouched on failure, fully written on success */
        p.r = qmp_event_parse(p.message, &p.event);
        return p;
}

static void parsed_done(Parsed *p) {
        json_object_put(p->message);
}

static void test_type_names(void **state) {
        assert_null(qmp_event_type_to_string(QMP_EVENT_UNKNOWN));
        for (QmpEventType t = QMP_EVENT_UNKNOWN + 1; t < _QMP_EVENT_TYPE_MAX; t++) {
                assert_non_null(qmp_event_type_to_string(t));
                assert_int_equal(qmp_event_type_from_string(qmp_event_type_to_string(t)), t);
        }
        assert_int_equal(qmp_event_type_from_string("shutdown"), -EINVAL); /* QEMU's names are upper case */
        assert_int_equal(qmp_event_type_from_string(NULL), -EINVAL);
        assert_null(qmp_event_type_to_string(_QMP_EVENT_TYPE_MAX));
        assert_null(qmp_event_type_to_string(-1));
}

static void test_well_formed(void **state) {
        Parsed p;

        p = parse("{\"timestamp\": {\"seconds\": 1795315045, \"microseconds\": 359148}, \"event\": \"SHUTDOWN\", "
                  "\"data\": {\"guest\": true, \"reason\": \"guest-shutdown\"}}");
        assert_int_equal(p.r, 0);
        assert_int_equal(p.event.type, QMP_EVENT_SHUTDOWN);
        assert_string_equal(p.event.name, "SHUTDOWN");
        assert_int_equal(p.event.timestamp_usec, UINT64_C(1795315045359148));
        assert_true(p.event.shutdown.guest);
        assert_string_equal(p.event.shutdown.reason, "guest-shutdown");
        assert_non_null(p.event.data);
        parsed_done(&p);

        p = parse("{\"event\": \"RESET\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-system-reset\"}}");
        assert_int_equal(p.r, 0);
        assert_int_equal(p.event.type, QMP_EVENT_RESET);
        assert_false(p.event.reset.guest);
        assert_string_equal(p.event.reset.reason, "host-qmp-system-reset");
        assert_int_equal(p.event.timestamp_usec, 0U);
        parsed_done(&p);

        p = parse("{\"event\": \"BALLOON_CHANGE\", \"data\": {\"actual\": 536870912}}");
        assert_int_equal(p.r, 0);
        assert_int_equal(p.event.type, QMP_EVENT_BALLOON_CHANGE);
        assert_int_equal(p.event.balloon_change.actual, UINT64_C(536870912));
        parsed_done(&p);

        p = parse("{\"event\": \"GUEST_PANICKED\", \"data\": {\"action\": \"pause\", \"info\": {\"type\": \"hyper-v\"}}}");
        assert_int_equal(p.r, 0);
        assert_int_equal(p.event.type, QMP_EVENT_GUEST_PANICKED);
        assert_string_equal(p.event.guest_panicked.action, "pause");
        parsed_done(&p);

        p = parse("{\"event\": \"VSERPORT_CHANGE\", \"data\": {\"open\": true, \"id\": \"qga0\"}}");
        assert_int_equal(p.r, 0);
        assert_int_equal(p.event.type, QMP_EVENT_VSERPORT_CHANGE);
        assert_string_equal(p.event.vserport_change.id, "qga0");
        assert_true(p.event.vserport_change.open);
        parsed_done(&p);

        p = parse("{\"event\": \"STOP\"}");
        assert_int_equal(p.r, 0);
        assert_int_equal(p.event.type, QMP_EVENT_STOP);
        assert_null(p.event.data);
        parsed_done(&p);

        /* An event we do not model keeps its name and raw data. */
        p = parse("{\"event\": \"BLOCK_JOB_COMPLETED\", \"data\": {\"device\": \"d0\"}}");
        assert_int_equal(p.r, 0);
        assert_int_equal(p.event.type, QMP_EVENT_UNKNOWN);
        assert_string_equal(p.event.name, "BLOCK_JOB_COMPLETED");
        assert_string_equal(json_get_string(p.event.data, "device"), "d0");
        parsed_done(&p);
}

/* Known names with data of the wrong shape: UNKNOWN with the name, timestamp and raw data kept. */
static void test_malformed_data(void **state) {
        static const char *const hostile[] = {
                "{\"event\": \"SHUTDOWN\"}",
                "{\"event\": \"SHUTDOWN\", \"data\": null}",
                "{\"event\": \"SHUTDOWN\", \"data\": \"guest-shutdown\"}",
                "{\"event\": \"SHUTDOWN\", \"data\": {\"reason\": \"guest-shutdown\"}}",
                "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true}}",
                "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": 1, \"reason\": \"guest-shutdown\"}}",
                "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": null}}",
                "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": [\"guest-shutdown\"]}}",
                "{\"event\": \"RESET\", \"data\": {\"guest\": \"true\", \"reason\": \"guest-reset\"}}",
                "{\"event\": \"BALLOON_CHANGE\"}",
                "{\"event\": \"BALLOON_CHANGE\", \"data\": [536870912]}",
                "{\"event\": \"BALLOON_CHANGE\", \"data\": {}}",
                "{\"event\": \"BALLOON_CHANGE\", \"data\": {\"actual\": -1}}",
                "{\"event\": \"BALLOON_CHANGE\", \"data\": {\"actual\": \"536870912\"}}",
                "{\"event\": \"BALLOON_CHANGE\", \"data\": {\"actual\": 5.5e8}}",
                "{\"event\": \"BALLOON_CHANGE\", \"data\": {\"actual\": null}}",
                "{\"event\": \"GUEST_PANICKED\"}",
                "{\"event\": \"GUEST_PANICKED\", \"data\": {\"action\": 1}}",
                "{\"event\": \"VSERPORT_CHANGE\", \"data\": {\"id\": \"qga0\"}}",
                "{\"event\": \"VSERPORT_CHANGE\", \"data\": {\"id\": \"qga0\", \"open\": 1}}",
                "{\"event\": \"VSERPORT_CHANGE\", \"data\": {\"id\": 7, \"open\": false}}",
        };

        for (size_t i = 0; i < ELEMENTSOF(hostile); i++) {
                Parsed p = parse(hostile[i]);
                json_object *data = NULL;

                (void) json_object_object_get_ex(p.message, "data", &data);
                assert_int_equal(p.r, 0);
                assert_int_equal(p.event.type, QMP_EVENT_UNKNOWN);
                assert_non_null(p.event.name);
                assert_ptr_equal(p.event.data, data);
                parsed_done(&p);
        }
}

/* Not an event at all: refused, the output untouched. */
static void test_not_an_event(void **state) {
        static const char *const hostile[] = {
                "{\"event\": null}",
                "{\"event\": 42}",
                "{\"event\": true}",
                "{\"event\": [\"SHUTDOWN\"]}",
                "{\"event\": {\"name\": \"SHUTDOWN\"}}",
                "{\"return\": {}}",
                "[\"event\", \"SHUTDOWN\"]",
                "\"SHUTDOWN\"",
                "null",
        };
        QmpEvent poison;

        memset(&poison, 0x5a, sizeof(poison));
        for (size_t i = 0; i < ELEMENTSOF(hostile); i++) {
                json_object *m = json_tokener_parse(hostile[i]);
                QmpEvent e = poison;

                assert_int_equal(qmp_event_parse(m, &e), -EBADMSG);
                assert_memory_equal(&e, &poison, sizeof(e));
                json_object_put(m);
        }
        assert_int_equal(qmp_event_parse(NULL, &poison), -EBADMSG);
}

/* Timestamps: negative or mistyped parts give 0, the event itself still counts. */
static void test_timestamps(void **state) {
        static const char *const bad[] = {
                "{\"event\": \"STOP\", \"timestamp\": \"now\"}",
                "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": -1, \"microseconds\": 5}}",
                "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 5, \"microseconds\": -1}}",
                "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 5}}",
                "{\"event\": \"STOP\", \"timestamp\": null}",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                Parsed p = parse(bad[i]);

                assert_int_equal(p.r, 0);
                assert_int_equal(p.event.type, QMP_EVENT_STOP);
                assert_int_equal(p.event.timestamp_usec, 0U);
                parsed_done(&p);
        }
}

/* Every event QEMU 7.2 really sent in the recorded transcripts parses to its type with its fields. */
static void test_transcripts(void **state) {
        static const char *const files[] = {
                "balloon-events.qmp",   "guest-panicked-pause.qmp", "guest-panicked.qmp", "guest-poweroff.qmp",
                "powerdown-shutdown.qmp", "quit-shutdown.qmp",      "stop-cont-reset.qmp",
        };
        unsigned n = 0, typed = 0;

        for (size_t f = 0; f < ELEMENTSOF(files); f++) {
                _cleanup_free_ char *path = path_join(QMP_TRANSCRIPTS_DIR, files[f]), *text = NULL;
                char *save = NULL;

                assert_int_equal(read_full_file(path, 1 << 20, &text, NULL), 0);
                for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                        json_object *m, *v;
                        QmpEvent e;

                        if (!startswith(l, "S: ") || !strstr(l, "\"event\""))
                                continue;
                        m = json_tokener_parse(l + 3);
                        assert_non_null(m);
                        if (!json_object_object_get_ex(m, "event", &v)) {
                                json_object_put(m);
                                continue;
                        }
                        assert_int_equal(qmp_event_parse(m, &e), 0);
                        assert_true(e.timestamp_usec > 0);
                        n++;
                        if (e.type != QMP_EVENT_UNKNOWN) {
                                typed++;
                                assert_string_equal(qmp_event_type_to_string(e.type), e.name);
                        }
                        if (e.type == QMP_EVENT_SHUTDOWN)
                                assert_non_null(e.shutdown.reason);
                        if (e.type == QMP_EVENT_BALLOON_CHANGE)
                                assert_true(e.balloon_change.actual >= UINT64_C(256) << 20);
                        if (e.type == QMP_EVENT_GUEST_PANICKED)
                                assert_true(streq(e.guest_panicked.action, "pause") || streq(e.guest_panicked.action, "poweroff"));
                        json_object_put(m);
                }
        }
        assert_true(n >= 16);
        assert_int_equal(typed, n); /* all of them are ones we model */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_type_names),
                cmocka_unit_test(test_well_formed),
                cmocka_unit_test(test_malformed_data),
                cmocka_unit_test(test_not_an_event),
                cmocka_unit_test(test_timestamps),
                cmocka_unit_test(test_transcripts),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
