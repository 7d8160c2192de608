/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* calc-dirty-rate / query-dirty-rate (qmp-dirty-rate.h): QEMU 7.2's parameter limits, the parser of
 * query-dirty-rate replies (real ones from QEMU 7.2, then missing, mistyped and out-of-range fields), and the
 * polled measurement against a fake QEMU on a socketpair: measured, refused by QEMU, refused under TCG, QEMU
 * vanishing, aborted; its callback exactly once each time. */
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/json-util.h"
#include "qmp/qmp-dirty-rate.h"

/* ---- parameters ------------------------------------------------------------------------------------------------ */

#define P(mode, calc_time, sample_pages) (&(DirtyRateParams) { DIRTY_RATE_MODE_##mode, calc_time, sample_pages })

static void test_params(void **state) {
        const char *f = NULL;

        assert_int_equal(dirty_rate_params_check(P(PAGE_SAMPLING, 1, 0), &f), 0);
        assert_null(f);
        assert_int_equal(dirty_rate_params_check(P(PAGE_SAMPLING, 60, 16384), &f), 0);
        assert_int_equal(dirty_rate_params_check(P(PAGE_SAMPLING, 0, 0), &f), -ERANGE);
        assert_string_equal(f, "calc-time");
        assert_int_equal(dirty_rate_params_check(P(DIRTY_RING, 61, 0), &f), -ERANGE);
        assert_string_equal(f, "calc-time");
        assert_int_equal(dirty_rate_params_check(P(PAGE_SAMPLING, 1, 127), &f), -ERANGE);
        assert_string_equal(f, "sample-pages");
        assert_int_equal(dirty_rate_params_check(P(PAGE_SAMPLING, 1, 16385), &f), -ERANGE);
        assert_string_equal(f, "sample-pages");
        assert_int_equal(dirty_rate_params_check(P(DIRTY_BITMAP, 1, 512), &f), -EINVAL);
        assert_string_equal(f, "sample-pages");
        assert_int_equal(dirty_rate_params_check(&(DirtyRateParams) { _DIRTY_RATE_MODE_MAX, 1, 0 }, &f), -EINVAL);
        assert_string_equal(f, "mode");
        assert_int_equal(dirty_rate_mode_from_string("dirty-ring"), DIRTY_RATE_MODE_DIRTY_RING);
        assert_int_equal(dirty_rate_mode_from_string("dirty"), -EINVAL);
}

/* ---- the parser ------------------------------------------------------------------------------------------------ */

static int parse(const char *text, DirtyRateInfo **ret) {
        _cleanup_json_ json_object *o = json_tokener_parse(text);

        assert_non_null(o);
        return dirty_rate_info_from_json(o, ret);
}

static void test_parse_real_replies(void **state) {
        _cleanup_(dirty_rate_info_freep) DirtyRateInfo *a = NULL, *b = NULL, *c = NULL;
        _cleanup_json_ json_object *j = NULL;

        /* QEMU 7.2 before any measurement, while measuring, and measured (page-sampling, TCG). */
        assert_int_equal(parse("{\"status\": \"unstarted\", \"sample-pages\": 0, \"mode\": \"page-sampling\", "
                               "\"start-time\": 0, \"calc-time\": 0}", &a), 0);
        assert_int_equal(a->status, DIRTY_RATE_STATUS_UNSTARTED);
        assert_false(a->has_rate);
        assert_int_equal(parse("{\"status\": \"measuring\", \"sample-pages\": 512, \"mode\": \"page-sampling\", "
                               "\"start-time\": 42572, \"calc-time\": 1}", &b), 0);
        assert_int_equal(b->status, DIRTY_RATE_STATUS_MEASURING);
        assert_int_equal(b->sample_pages, 512U);
        assert_int_equal(parse("{\"status\": \"measured\", \"sample-pages\": 512, \"dirty-rate\": 37, "
                               "\"mode\": \"page-sampling\", \"start-time\": 42572, \"calc-time\": 1}", &c), 0);
        assert_int_equal(c->status, DIRTY_RATE_STATUS_MEASURED);
        assert_true(c->has_rate);
        assert_int_equal(c->rate, 37);
        assert_int_equal(c->calc_time, 1);
        assert_int_equal(c->start_time, 42572);
        assert_null(c->vcpus);
        assert_int_equal(dirty_rate_info_to_json(c, &j), 0);
        assert_int_equal(json_get_int(j, "rateMBPerSec", -1), 37);
        assert_int_equal(json_get_int(j, "samplePages", -1), 512);
        assert_string_equal(json_get_string(j, "mode"), "page-sampling");
        assert_false(json_object_object_get_ex(j, "vcpus", NULL));
}

static void test_parse_vcpus(void **state) {
        _cleanup_(dirty_rate_info_freep) DirtyRateInfo *i = NULL;
        _cleanup_json_ json_object *j = NULL;
        json_object *a;

        assert_int_equal(parse("{\"status\": \"measured\", \"sample-pages\": 0, \"dirty-rate\": 12, "
                               "\"mode\": \"dirty-ring\", \"start-time\": 5, \"calc-time\": 2, \"vcpu-dirty-rate\": "
                               "[{\"id\": 0, \"dirty-rate\": 10}, {\"id\": 1, \"dirty-rate\": 2}]}", &i), 0);
        assert_int_equal(i->n_vcpus, 2U);
        assert_int_equal(i->vcpus[1].id, 1);
        assert_int_equal(i->vcpus[1].rate, 2);
        assert_int_equal(dirty_rate_info_to_json(i, &j), 0);
        assert_true(json_object_object_get_ex(j, "vcpus", &a));
        assert_int_equal(json_object_array_length(a), 2U);
        assert_int_equal(json_get_int(json_object_array_get_idx(a, 0), "rateMBPerSec", -1), 10);
        assert_false(json_object_object_get_ex(j, "samplePages", NULL));
}

static void test_parse_bad(void **state) {
        static const char *const bad[] = {
                "[]",
                "{}",
                /* missing fields */
                "{\"sample-pages\": 0, \"mode\": \"page-sampling\", \"start-time\": 0, \"calc-time\": 0}",
                "{\"status\": \"measured\", \"sample-pages\": 0, \"mode\": \"page-sampling\", \"start-time\": 0, "
                "\"calc-time\": 1}",
                "{\"status\": \"measuring\", \"sample-pages\": 0, \"start-time\": 0, \"calc-time\": 1}",
                "{\"status\": \"measuring\", \"sample-pages\": 0, \"mode\": \"page-sampling\", \"calc-time\": 1}",
                /* odd values and types */
                "{\"status\": \"done\", \"sample-pages\": 0, \"mode\": \"page-sampling\", \"start-time\": 0, "
                "\"calc-time\": 1}",
                "{\"status\": \"measuring\", \"sample-pages\": 0, \"mode\": \"sampling\", \"start-time\": 0, "
                "\"calc-time\": 1}",
                "{\"status\": 1, \"sample-pages\": 0, \"mode\": \"page-sampling\", \"start-time\": 0, "
                "\"calc-time\": 1}",
                "{\"status\": \"measured\", \"dirty-rate\": -1, \"sample-pages\": 0, \"mode\": \"page-sampling\", "
                "\"start-time\": 0, \"calc-time\": 1}",
                "{\"status\": \"measured\", \"dirty-rate\": 1.5, \"sample-pages\": 0, \"mode\": \"page-sampling\", "
                "\"start-time\": 0, \"calc-time\": 1}",
                "{\"status\": \"measured\", \"dirty-rate\": \"3\", \"sample-pages\": 0, \"mode\": \"page-sampling\", "
                "\"start-time\": 0, \"calc-time\": 1}",
                "{\"status\": \"measured\", \"dirty-rate\": 99999999999999999999, \"sample-pages\": 0, "
                "\"mode\": \"page-sampling\", \"start-time\": 0, \"calc-time\": 1}",
                "{\"status\": \"measuring\", \"sample-pages\": -4, \"mode\": \"page-sampling\", \"start-time\": 0, "
                "\"calc-time\": 1}",
                "{\"status\": \"measured\", \"dirty-rate\": 1, \"sample-pages\": 0, \"mode\": \"dirty-ring\", "
                "\"start-time\": 0, \"calc-time\": 1, \"vcpu-dirty-rate\": {}}",
                "{\"status\": \"measured\", \"dirty-rate\": 1, \"sample-pages\": 0, \"mode\": \"dirty-ring\", "
                "\"start-time\": 0, \"calc-time\": 1, \"vcpu-dirty-rate\": [{\"id\": 0}]}",
                "{\"status\": \"measured\", \"dirty-rate\": 1, \"sample-pages\": 0, \"mode\": \"dirty-ring\", "
                "\"start-time\": 0, \"calc-time\": 1, \"vcpu-dirty-rate\": [3]}",
                "{\"status\": \"measured\", \"dirty-rate\": 1, \"sample-pages\": 0, \"mode\": \"dirty-ring\", "
                "\"start-time\": 0, \"calc-time\": 1, \"vcpu-dirty-rate\": [{\"id\": -1, \"dirty-rate\": 0}]}",
        };
        for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
                DirtyRateInfo *i = NULL;

                if (parse(bad[k], &i) != -EBADMSG)
                        fail_msg("accepted or wrong error: %s", bad[k]);
                assert_null(i);
        }
}

static void test_parse_too_many_vcpus(void **state) {
        _cleanup_json_ json_object *o = json_tokener_parse(
                "{\"status\": \"measured\", \"dirty-rate\": 1, \"sample-pages\": 0, \"mode\": \"dirty-ring\", "
                "\"start-time\": 0, \"calc-time\": 1}");
        json_object *a = json_object_new_array();
        DirtyRateInfo *i = NULL;

        for (unsigned k = 0; k <= DIRTY_RATE_MAX_VCPUS; k++) {
                json_object *e = json_object_new_object();

                assert_int_equal(json_add_int(e, "id", k), 0);
                assert_int_equal(json_add_int(e, "dirty-rate", 1), 0);
                assert_int_equal(json_object_array_add(a, e), 0);
        }
        assert_int_equal(json_add(o, "vcpu-dirty-rate", a), 0);
        assert_int_equal(dirty_rate_info_from_json(o, &i), -E2BIG);
        assert_null(i);
}

/* ---- the measurement against a fake QEMU -------------------------------------------------------------------- */

typedef struct Outcome {
        unsigned calls;
        unsigned progress;
        int error;
        int64_t rate;
        char error_class[64];
        char description[256];
} Outcome;

typedef struct Fake {
        sd_event *event;
        QmpClient *q;
        int peer;
        char inbuf[1 << 14];
        size_t inlen;
        Outcome out;
} Fake;

static void on_done(const DirtyRateInfo *info, const DirtyRateError *error, void *userdata) {
        Outcome *o = userdata;

        o->calls++;
        assert_int_equal(o->calls, 1U);
        assert_true(!info != !error);
        if (error) {
                o->error = error->error;
                snprintf(o->error_class, sizeof(o->error_class), "%s", error->error_class ?: "");
                snprintf(o->description, sizeof(o->description), "%s", error->description ?: "");
        } else
                o->rate = info->rate;
}

static void on_progress(uint64_t elapsed_usec, void *userdata) {
        ((Outcome *) userdata)->progress++;
}

static void fake_write(Fake *f, const char *s) {
        assert_int_equal(write(f->peer, s, strlen(s)), (ssize_t) strlen(s));
        assert_int_equal(write(f->peer, "\r\n", 2), 2);
}

/* The id of the next command the client sent, which must be expect; runs the loop until it comes. */
static int64_t fake_read(Fake *f, const char *expect) {
        for (int tries = 0; tries < 4000; tries++) {
                char *end = memmem(f->inbuf, f->inlen, "\r\n", 2);
                if (end) {
                        size_t l = (size_t) (end - f->inbuf);
                        _cleanup_free_ char *text = strndup(f->inbuf, l);
                        _cleanup_json_ json_object *o = json_tokener_parse(text);
                        int64_t id;

                        memmove(f->inbuf, end + 2, f->inlen - l - 2);
                        f->inlen -= l + 2;
                        assert_non_null(o);
                        assert_string_equal(json_get_string(o, "execute"), expect);
                        id = json_get_int(o, "id", -1);
                        assert_true(id >= 0);
                        return id;
                }
                assert_true(sd_event_run(f->event, 10000) >= 0);
                struct pollfd p = { .fd = f->peer, .events = POLLIN };
                if (poll(&p, 1, 0) == 1) {
                        ssize_t k = read(f->peer, f->inbuf + f->inlen, sizeof(f->inbuf) - f->inlen);
                        assert_true(k > 0);
                        f->inlen += (size_t) k;
                }
        }
        fail_msg("the client never sent %s", expect);
        return -1;
}

static void fake_reply(Fake *f, int64_t id, const char *ret) {
        char buf[1024];

        snprintf(buf, sizeof(buf), "{\"return\": %s, \"id\": %" PRIi64 "}", ret, id);
        fake_write(f, buf);
}

static void fake_init(Fake *f) {
        int sv[2];

        memset(f, 0, sizeof(*f));
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        f->peer = sv[1];
        assert_int_equal(qmp_client_new(&f->q, f->event, sv[0]), 0);
        fake_write(f, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
                      "\"package\": \"\"}, \"capabilities\": []}}");
        fake_reply(f, fake_read(f, "qmp_capabilities"), "{}");
}

static void fake_done(Fake *f) {
        qmp_client_unref(f->q);
        if (f->peer >= 0)
                close(f->peer);
        sd_event_unref(f->event);
}

static void run_until_done(Fake *f) {
        for (int i = 0; i < 300 && f->out.calls == 0; i++)
                assert_true(sd_event_run(f->event, 10000) >= 0);
}

#define MEASURING \
        "{\"status\": \"measuring\", \"sample-pages\": 512, \"mode\": \"page-sampling\", \"start-time\": 9, " \
        "\"calc-time\": 1}"
#define MEASURED \
        "{\"status\": \"measured\", \"sample-pages\": 512, \"dirty-rate\": 210, \"mode\": \"page-sampling\", " \
        "\"start-time\": 9, \"calc-time\": 1}"

static void test_measure_page_sampling(void **state) {
        Fake f;

        fake_init(&f);
        assert_int_equal(dirty_rate_measure(f.q, f.event, P(PAGE_SAMPLING, 1, 0),
                                            on_progress, on_done, &f.out, NULL), 0);
        fake_reply(&f, fake_read(&f, "calc-dirty-rate"), "{}");
        fake_reply(&f, fake_read(&f, "query-dirty-rate"), MEASURING);
        fake_reply(&f, fake_read(&f, "query-dirty-rate"), MEASURED);
        run_until_done(&f);
        assert_int_equal(f.out.calls, 1U);
        assert_int_equal(f.out.error, 0);
        assert_int_equal(f.out.rate, 210);
        assert_int_equal(f.out.progress, 1U);
        fake_done(&f);
}

static void test_measure_qemu_refuses(void **state) {
        Fake f;

        fake_init(&f);
        assert_int_equal(dirty_rate_measure(f.q, f.event, P(PAGE_SAMPLING, 1, 0),
                                            NULL, on_done, &f.out, NULL), 0);
        int64_t id = fake_read(&f, "calc-dirty-rate");
        char buf[256];
        snprintf(buf, sizeof(buf), "{\"error\": {\"class\": \"GenericError\", \"desc\": \"the dirty rate is already "
                                   "being measured.\"}, \"id\": %" PRIi64 "}", id);
        fake_write(&f, buf);
        run_until_done(&f);
        assert_int_equal(f.out.calls, 1U);
        assert_int_equal(f.out.error, -EIO);
        assert_string_equal(f.out.error_class, "GenericError");
        assert_string_equal(f.out.description, "the dirty rate is already being measured.");
        fake_done(&f);
}

static void test_measure_bitmap_under_tcg(void **state) {
        Fake f;

        fake_init(&f);
        assert_int_equal(dirty_rate_measure(f.q, f.event, P(DIRTY_BITMAP, 1, 0),
                                            NULL, on_done, &f.out, NULL), 0);
        fake_reply(&f, fake_read(&f, "query-kvm"), "{\"enabled\": false, \"present\": true}");
        run_until_done(&f);
        assert_int_equal(f.out.calls, 1U);
        assert_int_equal(f.out.error, -EOPNOTSUPP);
        assert_non_null(strstr(f.out.description, "TCG"));
        /* calc-dirty-rate was never sent */
        assert_int_equal(qmp_client_pending(f.q), 0U);
        fake_done(&f);
}

static void test_measure_qemu_vanishes(void **state) {
        Fake f;

        fake_init(&f);
        assert_int_equal(dirty_rate_measure(f.q, f.event, P(PAGE_SAMPLING, 1, 0),
                                            NULL, on_done, &f.out, NULL), 0);
        fake_reply(&f, fake_read(&f, "calc-dirty-rate"), "{}");
        (void) fake_read(&f, "query-dirty-rate");
        close(f.peer);
        f.peer = -1;
        run_until_done(&f);
        assert_int_equal(f.out.calls, 1U);
        assert_int_equal(f.out.error, -ECONNRESET);
        fake_done(&f);
}

static void test_measure_garbage_and_abort(void **state) {
        DirtyRateMeasurement *m = NULL;
        Fake f;

        /* An unusable reply ends it. */
        fake_init(&f);
        assert_int_equal(dirty_rate_measure(f.q, f.event, P(PAGE_SAMPLING, 1, 0),
                                            NULL, on_done, &f.out, NULL), 0);
        fake_reply(&f, fake_read(&f, "calc-dirty-rate"), "{}");
        fake_reply(&f, fake_read(&f, "query-dirty-rate"), "{\"status\": \"measured\"}");
        run_until_done(&f);
        assert_int_equal(f.out.calls, 1U);
        assert_int_equal(f.out.error, -EBADMSG);
        fake_done(&f);

        /* Aborted while a command is in flight: once, now; QEMU's late reply changes nothing. */
        fake_init(&f);
        assert_int_equal(dirty_rate_measure(f.q, f.event, P(PAGE_SAMPLING, 2, 0),
                                            NULL, on_done, &f.out, &m), 0);
        int64_t id = fake_read(&f, "calc-dirty-rate");
        dirty_rate_measurement_abort(m, -ESRCH, "the guest stopped");
        assert_int_equal(f.out.calls, 1U);
        assert_int_equal(f.out.error, -ESRCH);
        assert_string_equal(f.out.description, "the guest stopped");
        fake_reply(&f, id, "{}");
        for (int i = 0; i < 20; i++)
                assert_true(sd_event_run(f.event, 10000) >= 0);
        assert_int_equal(f.out.calls, 1U);
        fake_done(&f);

        /* Aborted while waiting on the timer. */
        fake_init(&f);
        assert_int_equal(dirty_rate_measure(f.q, f.event, P(PAGE_SAMPLING, 1, 0),
                                            NULL, on_done, &f.out, &m), 0);
        fake_reply(&f, fake_read(&f, "calc-dirty-rate"), "{}");
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(f.event, 0) >= 0);
        assert_int_equal(qmp_client_pending(f.q), 0U);
        dirty_rate_measurement_abort(m, -ESRCH, "the guest stopped");
        assert_int_equal(f.out.calls, 1U);
        for (int i = 0; i < 20; i++)
                assert_true(sd_event_run(f.event, 10000) >= 0);
        assert_int_equal(f.out.calls, 1U);
        fake_done(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_params),
                cmocka_unit_test(test_parse_real_replies),
                cmocka_unit_test(test_parse_vcpus),
                cmocka_unit_test(test_parse_bad),
                cmocka_unit_test(test_parse_too_many_vcpus),
                cmocka_unit_test(test_measure_page_sampling),
                cmocka_unit_test(test_measure_qemu_refuses),
                cmocka_unit_test(test_measure_bitmap_under_tcg),
                cmocka_unit_test(test_measure_qemu_vanishes),
                cmocka_unit_test(test_measure_garbage_and_abort),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
