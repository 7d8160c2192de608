/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The balloon record as text (balloon-persist.h): a round trip keeps everything, bounds hold, a step cut short
 * by the restart is closed, a restored schedule of a QEMU that is gone is reported interrupted, and damaged
 * text is refused without touching the controller. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "balloon/balloon-controller-private.h"
#include "balloon/balloon-persist.h"
#include "basic/json-util.h"

#define MiB (UINT64_C(1) << 20)

static BalloonController *new_controller(const char *name) {
        BalloonController *c = NULL;

        assert_int_equal(balloon_controller_new(&c, NULL, name), 0);
        return c;
}

static json_object *kvm_json(uint64_t exits) {
        json_object *o = json_object_new_object();

        assert_int_equal(json_add_bool(o, "available", true), 0);
        assert_int_equal(json_add_uint(o, "exits", exits), 0);
        return o;
}

/* A controller as a daemon would have it: tracking a QEMU, a schedule at step 7, 300 steps (256 kept), 70
 * decisions (64 kept), an earlier schedule reported interrupted. */
static BalloonController *populated(void) {
        BalloonController *c = new_controller("g1");

        for (unsigned i = 0; i < 300; i++) {
                BalloonStep *s = balloon_controller_new_step(c);

                assert_non_null(s);
                s->index = i;
                s->start_realtime_usec = 1000000 + i;
                s->target_bytes = (i % 2 ? 40 : 56) * MiB;
                s->actual_start_bytes = i % 3 ? 64 * MiB : BALLOON_SIZE_UNKNOWN;
                s->actual_bytes = 60 * MiB;
                s->reached = i % 5 == 0;
                s->reached_usec = s->reached ? 1234 : 0;
                s->done = true;
                s->error = i == 299 ? strdup("balloon command failed: no") : NULL;
                s->kvm = kvm_json(i);
        }
        for (unsigned i = 0; i < 70; i++) {
                BalloonDecisionRecord *d = balloon_controller_new_decision(c);

                assert_non_null(d);
                *d = (BalloonDecisionRecord) {
                        .realtime_usec = 2000000 + i,
                        .decision = { .action = BALLOON_POLICY_SQUEEZE, .reason = BALLOON_REASON_HOST_PRESSURE,
                                      .target_bytes = 48 * MiB },
                        .input = { .actual_bytes = 64 * MiB, .floor_bytes = 16 * MiB, .ceiling_bytes = 64 * MiB,
                                   .available_bytes = i % 2 ? BALLOON_POLICY_UNKNOWN : 10 * MiB },
                        .host = { .mem_total = 1 << 30, .mem_free = 1 << 20, .mem_available = 2 << 20,
                                  .committed_as = 3 << 20, .commit_limit = 4 << 20, .swap_total = 5, .swap_free = 6 },
                        .result = { .state = BALLOON_HOST_PRESSURE, .available_low = true, .need_bytes = 7 },
                };
        }
        c->steps_reached_total = 60;
        c->steps_reached_usec = 60 * 1234;
        c->tracking = true;
        c->config.pid = 4242;
        c->config.starttime = 777;
        c->target_set = true;
        c->target = 40 * MiB;
        c->schedule_active = true;
        c->schedule = (BalloonSchedule) { .mode = BALLOON_SCHEDULE_OSCILLATE, .from_bytes = 40 * MiB,
                                          .to_bytes = 56 * MiB, .every_usec = 1000000, .count = 10 };
        c->schedule_next = 7;
        c->schedule_origin = BALLOON_SCHEDULE_ORIGIN_API;
        c->schedule_start_realtime = 123456789;
        c->interrupted = (BalloonScheduleInterruption) {
                .set = true, .schedule = { .mode = BALLOON_SCHEDULE_RAMP, .from_bytes = 56 * MiB,
                                           .to_bytes = 40 * MiB, .every_usec = 500000, .count = 3 },
                .next = 1, .origin = BALLOON_SCHEDULE_ORIGIN_DEFINITION, .realtime_usec = 99,
                .reason = strdup("the guest stopped while memvisord was not running"),
        };
        return c;
}

static void test_round_trip(void **state) {
        BalloonController *c1 = populated(), *c2 = new_controller("g1"), *c3 = new_controller("g1");
        char *t1 = NULL, *t2 = NULL, *t3 = NULL;
        const char *reason = NULL;
        const BalloonStep *s;
        const BalloonDecisionRecord *d;
        BalloonStatus st;
        size_t n1, n2, n3;

        assert_int_equal(balloon_record_save(c1, &t1, &n1), 0);
        assert_int_equal(strlen(t1), n1);
        assert_true(n1 < BALLOON_RECORD_SIZE_MAX);
        assert_int_equal(balloon_record_load(c2, t1, n1, &reason), 0);

        /* what the readers show */
        assert_int_equal(balloon_controller_n_steps(c2), BALLOON_STEPS_MAX);
        s = balloon_controller_get_step(c2, 0);
        assert_int_equal(s->id, 300 - BALLOON_STEPS_MAX + 1);
        assert_int_equal(s->index, 300 - BALLOON_STEPS_MAX);
        s = balloon_controller_get_step(c2, BALLOON_STEPS_MAX - 1);
        assert_int_equal(s->id, 300);
        assert_string_equal(s->error, "balloon command failed: no");
        assert_int_equal(json_get_int(s->kvm, "exits", -1), 299);
        assert_int_equal(balloon_controller_n_decisions(c2), BALLOON_DECISIONS_MAX);
        d = balloon_controller_get_decision(c2, BALLOON_DECISIONS_MAX - 1);
        assert_int_equal(d->realtime_usec, 2000069);
        assert_int_equal(d->host.swap_free, 6);
        assert_int_equal(d->input.available_bytes, BALLOON_POLICY_UNKNOWN);
        balloon_controller_get_status(c2, &st);
        assert_false(st.tracking);
        assert_non_null(st.interrupted);
        assert_string_equal(st.interrupted->reason, "the guest stopped while memvisord was not running");
        assert_int_equal(st.interrupted->schedule.count, 3);

        /* saved again before it is applied: the same text, the pending QEMU state included */
        assert_int_equal(balloon_record_save(c2, &t2, &n2), 0);
        assert_string_equal(t1, t2);
        assert_int_equal(balloon_record_load(c3, t2, n2, NULL), 0);
        assert_int_equal(balloon_record_save(c3, &t3, &n3), 0);
        assert_string_equal(t1, t3);

        /* a fresh controller only */
        assert_int_equal(balloon_record_load(c3, t1, n1, NULL), -EBUSY);

        c1->tracking = false;
        balloon_controller_free(c1);
        balloon_controller_free(c2);
        balloon_controller_free(c3);
        free(t1);
        free(t2);
        free(t3);
}

static const char *const schedule_json =
        "{\"mode\":\"oscillate\",\"fromBytes\":41943040,\"toBytes\":58720256,\"everyUSec\":1000000,\"count\":10,"
        "\"nextStep\":3,\"origin\":\"api\",\"startRealtimeUSec\":5}";

static void test_gone_qemu_interrupts(void **state) {
        BalloonController *c = new_controller("g2");
        char *text = NULL, *saved = NULL;
        BalloonStatus st;
        const BalloonStep *s;

        assert_true(asprintf(&text,
                             "{\"version\":1,\"name\":\"g2\",\"pid\":100,\"starttime\":5,\"targetBytes\":41943040,"
                             "\"schedule\":%s,\"stepsTotal\":3,\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,"
                             "\"steps\":[{\"index\":2,\"id\":3,\"realtimeUSec\":9,\"targetBytes\":58720256,"
                             "\"reached\":false,\"finished\":false,\"timeToReachUSec\":0}],\"decisions\":[]}",
                             schedule_json) > 0);
        assert_int_equal(balloon_record_load(c, text, strlen(text), NULL), 0);

        /* the step the restart cut short is closed */
        s = balloon_controller_get_step(c, 0);
        assert_true(s->done);
        assert_non_null(strstr(s->error, "memvisord restarted"));
        assert_false(json_get_bool(s->kvm, "available", true));

        /* its QEMU is gone (the owner stops a guest that does not run): interrupted, not resumed */
        balloon_controller_get_status(c, &st);
        assert_null(st.interrupted);
        balloon_controller_stop(c);
        balloon_controller_get_status(c, &st);
        assert_false(st.schedule_active);
        assert_non_null(st.interrupted);
        assert_int_equal(st.interrupted->next, 3);
        assert_int_equal(st.interrupted->origin, BALLOON_SCHEDULE_ORIGIN_API);
        assert_non_null(strstr(st.interrupted->reason, "stopped while memvisord was not running"));
        assert_true(st.interrupted->realtime_usec > 0);

        /* saved now: no QEMU state any more, the interruption is kept */
        assert_int_equal(balloon_record_save(c, &saved, NULL), 0);
        assert_null(strstr(saved, "\"pid\""));
        assert_null(strstr(saved, "\"schedule\""));
        assert_non_null(strstr(saved, "\"interrupted\""));

        balloon_controller_free(c);
        free(text);
        free(saved);
}

static void test_bounds(void **state) {
        BalloonController *c = new_controller("g3");
        json_object *o = json_object_new_object(), *a = json_object_new_array();
        const char *text;

        assert_int_equal(json_add_int(o, "version", 1), 0);
        assert_int_equal(json_add_string(o, "name", "g3"), 0);
        assert_int_equal(json_add_uint(o, "stepsTotal", 10), 0);  /* less than the ids say: ids win */
        assert_int_equal(json_add_uint(o, "stepsReachedTotal", 0), 0);
        assert_int_equal(json_add_uint(o, "stepsReachedUSec", 0), 0);
        for (unsigned i = 1; i <= 1000; i++) {
                json_object *s = json_object_new_object();

                assert_int_equal(json_add_uint(s, "index", i), 0);
                assert_int_equal(json_add_uint(s, "id", i), 0);
                assert_int_equal(json_add_uint(s, "realtimeUSec", i), 0);
                assert_int_equal(json_add_uint(s, "targetBytes", MiB), 0);
                assert_int_equal(json_add_bool(s, "reached", false), 0);
                assert_int_equal(json_add_bool(s, "finished", true), 0);
                assert_int_equal(json_add_uint(s, "timeToReachUSec", 0), 0);
                assert_int_equal(json_object_array_add(a, s), 0);
        }
        assert_int_equal(json_add(o, "steps", a), 0);
        assert_int_equal(json_add(o, "decisions", json_object_new_array()), 0);
        text = json_object_to_json_string(o);
        assert_int_equal(balloon_record_load(c, text, strlen(text), NULL), 0);
        assert_int_equal(balloon_controller_n_steps(c), BALLOON_STEPS_MAX);
        assert_int_equal(balloon_controller_get_step(c, 0)->id, 1000 - BALLOON_STEPS_MAX + 1);
        /* the next step gets the next id */
        assert_int_equal(balloon_controller_new_step(c)->id, 1001);
        assert_int_equal(balloon_controller_n_steps(c), BALLOON_STEPS_MAX);
        json_object_put(o);
        balloon_controller_free(c);
}

static void test_corrupt(void **state) {
        static const char *const bad[] = {
                "",
                "{",
                "[]",
                "{\"version\":1,\"name\":\"g4\",\"steps\":[",
                "{\"version\":2,\"name\":\"g4\",\"stepsTotal\":0,\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,"
                "\"steps\":[],\"decisions\":[]}",
                "{\"version\":1,\"name\":\"other\",\"stepsTotal\":0,\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,"
                "\"steps\":[],\"decisions\":[]}",
                "{\"version\":1,\"name\":\"g4\",\"stepsTotal\":-1,\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,"
                "\"steps\":[],\"decisions\":[]}",
                "{\"version\":1,\"name\":\"g4\",\"stepsTotal\":0,\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,"
                "\"steps\":{},\"decisions\":[]}",
                "{\"version\":1,\"name\":\"g4\",\"stepsTotal\":0,\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,"
                "\"steps\":[{\"index\":0,\"id\":1,\"error\":\"x\"}],\"decisions\":[]}",
                "{\"version\":1,\"name\":\"g4\",\"stepsTotal\":0,\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,"
                "\"steps\":[],\"decisions\":[{\"realtimeUSec\":1,\"action\":\"explode\"}]}",
                "{\"version\":1,\"name\":\"g4\",\"pid\":5,\"starttime\":1,\"schedule\":{\"mode\":\"spin\"},"
                "\"stepsTotal\":0,\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,\"steps\":[],\"decisions\":[]}",
                "{\"version\":1,\"name\":\"g4\",\"pid\":5,\"starttime\":1,\"schedule\":{\"mode\":\"oscillate\","
                "\"fromBytes\":1,\"toBytes\":1,\"everyUSec\":1,\"count\":0,\"nextStep\":0,\"origin\":\"api\","
                "\"startRealtimeUSec\":0},\"stepsTotal\":0,\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,"
                "\"steps\":[],\"decisions\":[]}",
                "{\"version\":1,\"name\":\"g4\",\"stepsTotal\":0,\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,"
                "\"steps\":[],\"decisions\":[]} trailing",
                "{\"version\":1,\"name\":\"g4\\u0000x\",\"stepsTotal\":0,\"stepsReachedTotal\":0,"
                "\"stepsReachedUSec\":0,\"steps\":[],\"decisions\":[]}",
                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
                "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        };
        BalloonController *c = new_controller("g4");
        static const char with_nul[] = "{\"version\":1,\0\"name\":\"g4\"}";
        const char *reason;
        char *big;
        BalloonStatus st;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                reason = NULL;
                assert_int_equal(balloon_record_load(c, bad[i], strlen(bad[i]), &reason), -EBADMSG);
                assert_non_null(reason);
                assert_int_equal(balloon_controller_n_steps(c), 0);
                assert_int_equal(balloon_controller_n_decisions(c), 0);
                assert_false(c->restored);
                balloon_controller_get_status(c, &st);
                assert_null(st.interrupted);
        }
        assert_int_equal(balloon_record_load(c, with_nul, sizeof(with_nul) - 1, &reason), -EBADMSG);
        big = malloc(BALLOON_RECORD_SIZE_MAX + 2);
        assert_non_null(big);
        memset(big, ' ', BALLOON_RECORD_SIZE_MAX + 1);
        big[BALLOON_RECORD_SIZE_MAX + 1] = 0;
        assert_int_equal(balloon_record_load(c, big, BALLOON_RECORD_SIZE_MAX + 1, &reason), -E2BIG);
        free(big);
        /* and a good one still loads afterwards */
        assert_int_equal(balloon_record_load(c, "{\"version\":1,\"name\":\"g4\",\"stepsTotal\":0,\"stepsReachedTotal\":0,"
                                                "\"stepsReachedUSec\":0,\"steps\":[],\"decisions\":[]}",
                                             strlen("{\"version\":1,\"name\":\"g4\",\"stepsTotal\":0,"
                                                    "\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,\"steps\":[],"
                                                    "\"decisions\":[]}"),
                                             NULL),
                         0);
        balloon_controller_free(c);
}

static unsigned changes;

static void on_change(BalloonController *c, void *userdata) {
        changes++;
}

static void test_change_callback(void **state) {
        BalloonController *c = new_controller("g5");
        char *text = NULL;

        balloon_controller_set_change_callback(c, on_change, NULL);
        assert_true(asprintf(&text,
                             "{\"version\":1,\"name\":\"g5\",\"pid\":100,\"starttime\":5,\"schedule\":%s,"
                             "\"stepsTotal\":0,\"stepsReachedTotal\":0,\"stepsReachedUSec\":0,\"steps\":[],"
                             "\"decisions\":[]}",
                             schedule_json) > 0);
        assert_int_equal(balloon_record_load(c, text, strlen(text), NULL), 0);
        changes = 0;
        balloon_controller_stop(c);     /* interrupted: the record changed */
        assert_true(changes > 0);
        balloon_controller_free(c);
        free(text);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_gone_qemu_interrupts),
                cmocka_unit_test(test_bounds),
                cmocka_unit_test(test_corrupt),
                cmocka_unit_test(test_change_callback),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
