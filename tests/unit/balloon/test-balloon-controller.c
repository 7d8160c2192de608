/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The balloon controller against a fake QEMU on the other end of a socketpair, in the same event loop. The
 * fake answers each command with QEMU's recorded reply (tests/data/qmp: balloon-events.qmp,
 * balloon-guest-stats.qmp, errors.qmp, query-stats-kvm.qmp) and sends the recorded BALLOON_CHANGE events.
 * Checked: a target reached (with progress), a wait timing out, QEMU refusing the balloon command, a guest
 * without a balloon device, QEMU going away while a wait is open, the guest stopping mid-wait, a schedule
 * step with its KVM counters, and the policy runner sending its target. Every callback exactly once. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "balloon/balloon-controller.h"
#include "balloon/balloon-policy-run.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "qmp-transcript.h"

#define MiB (UINT64_C(1) << 20)
#define MAX_QUERIES 8

/* ---- recorded replies ------------------------------------------------------------------------- */

/* The recorded BALLOON_CHANGE events of balloon-events.qmp, in order. */
static size_t recorded_events(json_object **ret, size_t max) {
        _cleanup_free_ char *path = path_join(QMP_TRANSCRIPTS_DIR, "balloon-events.qmp"), *text = NULL;
        char *save = NULL;
        size_t n = 0;

        assert_int_equal(read_full_file(path, 1 << 20, &text, NULL), 0);
        for (char *l = strtok_r(text, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save))
                if (startswith(l, "S: ") && strstr(l, "\"BALLOON_CHANGE\"")) {
                        ret[n] = json_tokener_parse(l + 3);
                        assert_non_null(ret[n]);
                        n++;
                }
        return n;
}

static uint64_t actual_of(json_object *reply_or_event) {
        json_object *o = NULL;

        if (!json_object_object_get_ex(reply_or_event, "return", &o))
                assert_true(json_object_object_get_ex(reply_or_event, "data", &o));
        return (uint64_t) json_get_int(o, "actual", -1);
}

/* ---- the fake QEMU ---------------------------------------------------------------------------- */

typedef enum BalloonAnswer {
        ANSWER_OK,              /* {"return": {}}, then the first recorded BALLOON_CHANGE */
        ANSWER_ERROR,           /* DeviceNotActive, as recorded in errors.qmp */
        ANSWER_HANG_UP,         /* close the connection instead */
} BalloonAnswer;

typedef struct Fake {
        int fd;
        sd_event_source *io;
        char buf[1 << 16];
        size_t len;

        BalloonAnswer answer;
        bool stuck;                     /* the balloon never moves: no event, query-balloon stays */
        bool moves;                     /* after a balloon command, query-balloon walks the recording */
        json_object *greeting, *empty, *device_not_active, *guest_stats, *stats_vm, *stats_vcpu, *schemas;
        json_object *query_balloon[MAX_QUERIES];
        size_t n_query, next_query;
        json_object *events[MAX_QUERIES];
        size_t n_events;

        unsigned n_balloon, n_query_balloon, n_query_stats, n_qom_set, n_qom_get;
        uint64_t last_balloon_value;
} Fake;

static void fake_send(Fake *f, json_object *m, json_object *id) {
        _cleanup_json_ json_object *copy = NULL;
        const char *s;

        assert_int_equal(json_object_deep_copy(m, &copy, NULL), 0);
        if (id)
                assert_int_equal(json_add(copy, "id", json_object_get(id)), 0);
        s = json_object_to_json_string_ext(copy, JSON_C_TO_STRING_PLAIN);
        assert_int_equal(write(f->fd, s, strlen(s)), (ssize_t) strlen(s));
        assert_int_equal(write(f->fd, "\r\n", 2), 2);
}

static void fake_hang_up(Fake *f) {
        f->io = sd_event_source_disable_unref(f->io);
        if (f->fd >= 0)
                close(f->fd);
        f->fd = -1;
}

static void fake_command(Fake *f, json_object *cmd) {
        const char *name = json_get_string(cmd, "execute");
        json_object *id = NULL, *args = NULL;

        assert_non_null(name);
        (void) json_object_object_get_ex(cmd, "id", &id);
        (void) json_object_object_get_ex(cmd, "arguments", &args);

        if (streq(name, "qmp_capabilities"))
                fake_send(f, f->empty, id);
        else if (streq(name, "query-balloon")) {
                size_t i = f->next_query;

                f->n_query_balloon++;
                if (f->moves && f->next_query + 1 < f->n_query)
                        f->next_query++;
                fake_send(f, f->query_balloon[i], id);
        } else if (streq(name, "balloon")) {
                f->n_balloon++;
                f->last_balloon_value = (uint64_t) json_get_int(args, "value", -1);
                switch (f->answer) {
                case ANSWER_OK:
                        fake_send(f, f->empty, id);
                        if (!f->stuck) {
                                f->moves = true;
                                fake_send(f, f->events[0], NULL);
                        }
                        break;
                case ANSWER_ERROR:
                        fake_send(f, f->device_not_active, id);
                        break;
                case ANSWER_HANG_UP:
                        fake_hang_up(f);
                        break;
                }
        } else if (streq(name, "qom-set")) {
                f->n_qom_set++;
                assert_string_equal(json_get_string(args, "path"), "/machine/peripheral/balloon0");
                assert_string_equal(json_get_string(args, "property"), "guest-stats-polling-interval");
                fake_send(f, f->empty, id);
        } else if (streq(name, "qom-get")) {
                f->n_qom_get++;
                assert_string_equal(json_get_string(args, "property"), "guest-stats");
                fake_send(f, f->guest_stats, id);
        } else if (streq(name, "query-stats")) {
                f->n_query_stats++;
                fake_send(f, streq(json_get_string(args, "target"), "vm") ? f->stats_vm : f->stats_vcpu, id);
        } else if (streq(name, "query-stats-schemas"))
                fake_send(f, f->schemas, id);
        else
                fail_msg("unexpected command %s", name);
}

static int fake_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Fake *f = userdata;
        ssize_t k;
        char *end;

        k = read(fd, f->buf + f->len, sizeof(f->buf) - f->len);
        if (k <= 0) {
                fake_hang_up(f);
                return 0;
        }
        f->len += (size_t) k;
        while (f->fd >= 0 && (end = memmem(f->buf, f->len, "\r\n", 2))) {
                size_t l = (size_t) (end - f->buf);
                _cleanup_free_ char *text = strndup(f->buf, l);
                _cleanup_json_ json_object *cmd = json_tokener_parse(text);

                memmove(f->buf, end + 2, f->len - l - 2);
                f->len -= l + 2;
                assert_non_null(cmd);
                fake_command(f, cmd);
        }
        return 0;
}

/* ---- the harness ------------------------------------------------------------------------------ */

typedef struct Done {
        unsigned calls;
        int r;
        BalloonTargetResult result;
        BalloonError error;
        int cause;
        char *qmp_error_class, *qmp_error_desc, *reason;
        uint64_t actual_bytes;
        unsigned progress_calls;
        uint64_t progress_last;
} Done;

typedef struct Harness {
        sd_event *event;
        QmpClient *qmp;
        Fake fake;
        BalloonController *ctl;
        BalloonGuestConfig cfg;
        Done done;
} Harness;

/* As the daemon does: QEMU's BALLOON_CHANGE goes to the controller. */
static void on_qmp_event(QmpClient *q, const QmpEvent *event, void *userdata) {
        Harness *h = userdata;

        if (event->type == QMP_EVENT_BALLOON_CHANGE)
                balloon_controller_on_balloon_change(h->ctl, event->balloon_change.actual);
}

static void harness_init(Harness *h) {
        int sv[2];

        *h = (Harness) {};
        assert_int_equal(sd_event_new(&h->event), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
        assert_int_equal(qmp_client_new(&h->qmp, h->event, sv[0]), 0);
        qmp_client_set_description(h->qmp, "test");
        assert_int_equal(qmp_client_add_event_observer(h->qmp, on_qmp_event, h), 0);

        h->fake.fd = sv[1];
        h->fake.greeting = qmp_transcript_reply("balloon-events.qmp", NULL, 0);
        h->fake.empty = qmp_transcript_reply("balloon-guest-stats.qmp", "\"qom-set\"", 0);
        h->fake.device_not_active = qmp_transcript_reply("errors.qmp", "\"value\": 268435456", 0);
        h->fake.guest_stats = qmp_transcript_reply("balloon-guest-stats.qmp", "\"property\": \"guest-stats\"}", 0);
        h->fake.stats_vm = qmp_transcript_reply("query-stats-kvm.qmp", "{\"target\": \"vm\"}}", 0);
        h->fake.stats_vcpu = qmp_transcript_reply("query-stats-kvm.qmp", "{\"target\": \"vcpu\"}}", 0);
        h->fake.schemas = qmp_transcript_reply("query-stats-kvm.qmp", "\"provider\": \"kvm\"}}", 0);
        /* 512 MiB, then on the way to 256 MiB, then there */
        for (unsigned i = 0; i < 3; i++)
                h->fake.query_balloon[h->fake.n_query++] = qmp_transcript_reply("balloon-events.qmp", "query-balloon", i);
        h->fake.n_events = recorded_events(h->fake.events, MAX_QUERIES);
        assert_true(h->fake.n_events >= 2);
        assert_int_equal(actual_of(h->fake.query_balloon[0]), 512 * MiB);
        assert_int_equal(actual_of(h->fake.query_balloon[2]), 256 * MiB);
        assert_int_equal(sd_event_add_io(h->event, &h->fake.io, h->fake.fd, EPOLLIN, fake_on_io, &h->fake), 0);
        fake_send(&h->fake, h->fake.greeting, NULL);

        h->cfg = (BalloonGuestConfig) {
                .device = true,
                .memory_bytes = 512 * MiB,
                .floor_bytes = 128 * MiB,
                .ceiling_bytes = 512 * MiB,
                .stats_interval_usec = USEC_PER_SEC,
        };
        assert_int_equal(balloon_controller_new(&h->ctl, h->event, "web"), 0);
}

static void harness_done(Harness *h) {
        h->ctl = balloon_controller_free(h->ctl);
        qmp_client_remove_event_observer(h->qmp, on_qmp_event, h);
        h->qmp = qmp_client_unref(h->qmp);
        fake_hang_up(&h->fake);
        json_object_put(h->fake.greeting);
        json_object_put(h->fake.empty);
        json_object_put(h->fake.device_not_active);
        json_object_put(h->fake.guest_stats);
        json_object_put(h->fake.stats_vm);
        json_object_put(h->fake.stats_vcpu);
        json_object_put(h->fake.schemas);
        for (size_t i = 0; i < h->fake.n_query; i++)
                json_object_put(h->fake.query_balloon[i]);
        for (size_t i = 0; i < h->fake.n_events; i++)
                json_object_put(h->fake.events[i]);
        free(h->done.qmp_error_class);
        free(h->done.qmp_error_desc);
        free(h->done.reason);
        h->event = sd_event_unref(h->event);
}

static uint64_t now_usec(void) {
        struct timespec ts;

        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* Runs the loop until *flag is set (or for the whole time with flag NULL); fails on the deadline. */
static void run_until(Harness *h, const unsigned *flag, uint64_t usec) {
        uint64_t deadline = now_usec() + usec;

        while (!flag || *flag == 0) {
                if (now_usec() >= deadline) {
                        if (flag)
                                fail_msg("timed out waiting");
                        return;
                }
                assert_true(sd_event_run(h->event, 50 * USEC_PER_MSEC) >= 0);
        }
}

static void on_done(int r, const BalloonTargetResult *result, const BalloonErrorInfo *error, void *userdata) {
        Done *d = userdata;

        d->calls++;
        assert_int_equal(d->calls, 1); /* exactly once */
        d->r = r;
        if (r == 0) {
                assert_non_null(result);
                d->result = *result;
        } else if (r > 0) {
                assert_non_null(error);
                assert_int_equal(error->error, r);
                d->error = error->error;
                d->cause = error->cause;
                d->actual_bytes = error->actual_bytes;
                d->qmp_error_class = error->qmp_error_class ? strdup(error->qmp_error_class) : NULL;
                d->qmp_error_desc = error->qmp_error_desc ? strdup(error->qmp_error_desc) : NULL;
                d->reason = error->reason ? strdup(error->reason) : NULL;
        }
}

static int on_progress(const BalloonTargetResult *progress, void *userdata) {
        Done *d = userdata;

        assert_int_equal(d->calls, 0);
        assert_false(progress->reached);
        d->progress_calls++;
        d->progress_last = progress->actual_bytes;
        return 0;
}

/* Starts tracking and waits for the first query-balloon answer. */
static void harness_start(Harness *h) {
        uint64_t target, actual = BALLOON_SIZE_UNKNOWN;
        unsigned qom_set = h->fake.n_qom_set;

        balloon_controller_start(h->ctl, h->qmp, &h->cfg);
        assert_true(balloon_controller_is_tracking(h->ctl));
        for (int i = 0; i < 100 && actual == BALLOON_SIZE_UNKNOWN; i++) {
                assert_true(sd_event_run(h->event, 50 * USEC_PER_MSEC) >= 0);
                assert_true(balloon_controller_get_sizes(h->ctl, &target, &actual));
        }
        assert_int_equal(actual, 512 * MiB);
        assert_int_equal(target, 512 * MiB);     /* no target sent yet: the boot memory */
        assert_int_equal(h->fake.n_qom_set, qom_set + 1);
}

static int set_target(Harness *h, uint64_t target, bool wait, uint64_t timeout_usec, BalloonWait **ret_wait) {
        BalloonTargetRequest req = {
                .target_bytes = target,
                .requester = "the test",
                .wait = wait,
                .timeout_usec = timeout_usec,
                .progress = wait ? on_progress : NULL,
        };

        return balloon_controller_set_target(h->ctl, &h->cfg, &req, on_done, &h->done, ret_wait, NULL);
}

/* ---- tests ------------------------------------------------------------------------------------ */

static void test_target_reached(void **state) {
        BalloonControllerInfo info;
        BalloonWait *w = NULL;
        Harness h;

        harness_init(&h);
        harness_start(&h);

        assert_int_equal(set_target(&h, 256 * MiB, true, 10 * USEC_PER_SEC, &w), 0);
        assert_non_null(w);
        run_until(&h, &h.done.calls, 10 * USEC_PER_SEC);
        assert_int_equal(h.done.r, 0);
        assert_true(h.done.result.reached);
        assert_int_equal(h.done.result.target_bytes, 256 * MiB);
        assert_int_equal(h.done.result.actual_bytes, 256 * MiB);
        assert_int_equal(h.fake.n_balloon, 1);
        assert_int_equal(h.fake.last_balloon_value, 256 * MiB);
        /* the BALLOON_CHANGE event QEMU sent on the way (passed on as the daemon does) and 413 MiB from
         * query-balloon: progress, before the end */
        assert_true(h.done.progress_calls >= 1);
        assert_true(h.done.progress_last < 512 * MiB && h.done.progress_last > 256 * MiB);

        balloon_controller_get_info(h.ctl, &info);
        assert_true(info.tracking);
        assert_int_equal(info.target_bytes, 256 * MiB);
        assert_true(balloon_guest_stats_valid(&info.stats));
        assert_int_equal(info.stats.available_bytes, UINT64_C(448311296));

        /* a BALLOON_CHANGE is taken as the new size */
        balloon_controller_on_balloon_change(h.ctl, actual_of(h.fake.events[1]));
        {
                uint64_t t, a;
                assert_true(balloon_controller_get_sizes(h.ctl, &t, &a));
                assert_int_equal(a, actual_of(h.fake.events[1]));
        }

        /* without wait: done when QEMU took the command */
        h.done = (Done) {};
        assert_int_equal(set_target(&h, 256 * MiB, false, 0, NULL), 0);
        run_until(&h, &h.done.calls, 5 * USEC_PER_SEC);
        assert_int_equal(h.done.r, 0);
        assert_int_equal(h.done.result.elapsed_usec, 0);
        assert_int_equal(h.fake.n_balloon, 2);
        run_until(&h, NULL, 300 * USEC_PER_MSEC);
        assert_int_equal(h.done.calls, 1);
        harness_done(&h);
}

static void test_timeout(void **state) {
        Harness h;

        harness_init(&h);
        harness_start(&h);
        h.fake.stuck = true;

        assert_int_equal(set_target(&h, 256 * MiB, true, 600 * USEC_PER_MSEC, NULL), 0);
        run_until(&h, &h.done.calls, 5 * USEC_PER_SEC);
        assert_int_equal(h.done.r, BALLOON_ERROR_TIMEOUT);
        assert_int_equal(h.done.actual_bytes, 512 * MiB);
        assert_non_null(h.done.reason);
        assert_non_null(strstr(h.done.reason, "no progress within"));
        /* fast polling while waiting */
        assert_true(h.fake.n_query_balloon >= 3);
        run_until(&h, NULL, 500 * USEC_PER_MSEC);
        assert_int_equal(h.done.calls, 1);
        harness_done(&h);
}

static void test_qemu_error(void **state) {
        Harness h;

        harness_init(&h);
        harness_start(&h);
        h.fake.answer = ANSWER_ERROR;

        /* a wait ends at once */
        assert_int_equal(set_target(&h, 256 * MiB, true, 30 * USEC_PER_SEC, NULL), 0);
        run_until(&h, &h.done.calls, 5 * USEC_PER_SEC);
        assert_int_equal(h.done.r, BALLOON_ERROR_FAILED);
        assert_int_equal(h.done.cause, -EIO);
        assert_string_equal(h.done.qmp_error_class, "DeviceNotActive");
        assert_string_equal(h.done.qmp_error_desc, "No balloon device has been activated");
        assert_string_equal(h.done.reason, h.done.qmp_error_desc);

        /* so does the answer without wait */
        free(h.done.qmp_error_class);
        free(h.done.qmp_error_desc);
        free(h.done.reason);
        h.done = (Done) {};
        assert_int_equal(set_target(&h, 300 * MiB, false, 0, NULL), 0);
        run_until(&h, &h.done.calls, 5 * USEC_PER_SEC);
        assert_int_equal(h.done.r, BALLOON_ERROR_FAILED);
        assert_string_equal(h.done.qmp_error_class, "DeviceNotActive");
        run_until(&h, NULL, 300 * USEC_PER_MSEC);
        assert_int_equal(h.done.calls, 1);
        harness_done(&h);
}

static void test_refused(void **state) {
        BalloonErrorInfo info = {};
        Harness h;

        harness_init(&h);

        /* no device: said at once, the callback never runs */
        h.cfg.device = false;
        assert_int_equal(balloon_controller_set_target(h.ctl, &h.cfg, &(BalloonTargetRequest) { .target_bytes = 256 * MiB },
                                                       on_done, &h.done, NULL, &info),
                         BALLOON_ERROR_NO_DEVICE);
        assert_int_equal(info.error, BALLOON_ERROR_NO_DEVICE);
        assert_string_equal(balloon_error_to_string(info.error), "no-device");
        h.cfg.device = true;

        /* a confidential guest: refused before anything else, running or not */
        h.cfg.confidential = true;
        assert_int_equal(balloon_controller_set_target(h.ctl, &h.cfg, &(BalloonTargetRequest) { .target_bytes = 256 * MiB },
                                                       on_done, &h.done, NULL, &info),
                         BALLOON_ERROR_CONFIDENTIAL);
        assert_int_equal(info.error, BALLOON_ERROR_CONFIDENTIAL);
        assert_string_equal(balloon_error_to_string(info.error), "confidential");
        assert_int_equal(balloon_controller_check_running(NULL, &h.cfg, NULL), BALLOON_ERROR_CONFIDENTIAL);
        h.cfg.confidential = false;

        /* not running */
        assert_int_equal(set_target(&h, 256 * MiB, false, 0, NULL), BALLOON_ERROR_INVALID_STATE);
        assert_int_equal(balloon_controller_check_running(NULL, &h.cfg, NULL), BALLOON_ERROR_INVALID_STATE);
        {
                BalloonStatus st;
                uint64_t t, a;

                /* a guest without a controller reads as one that never ran */
                balloon_controller_get_status(NULL, &st);
                assert_false(st.tracking);
                assert_null(st.last_decision);
                assert_false(balloon_controller_get_sizes(NULL, &t, &a));
                assert_int_equal(balloon_controller_n_steps(NULL), 0);
                assert_int_equal(balloon_controller_n_decisions(NULL), 0);
        }

        harness_start(&h);
        /* out of range, with the bounds */
        assert_int_equal(balloon_controller_set_target(h.ctl, &h.cfg, &(BalloonTargetRequest) { .target_bytes = 64 * MiB },
                                                       on_done, &h.done, NULL, &info),
                         BALLOON_ERROR_OUT_OF_RANGE);
        assert_string_equal(info.field, "target");
        assert_int_equal(info.target_bytes, 64 * MiB);
        assert_int_equal(info.minimum_bytes, 128 * MiB);
        assert_int_equal(info.maximum_bytes, 512 * MiB);
        assert_non_null(strstr(info.reason, "below the guest's balloon floor"));
        assert_int_equal(balloon_controller_check_target(h.ctl, "to", 1024 * MiB, &info), BALLOON_ERROR_OUT_OF_RANGE);
        assert_non_null(strstr(info.reason, "above the guest's boot memory"));
        balloon_error_info_done(&info);

        /* no schedule to cancel */
        assert_int_equal(balloon_controller_cancel_schedule(h.ctl, &h.cfg, "the test", NULL), BALLOON_ERROR_NO_SCHEDULE);
        /* an impossible schedule */
        assert_int_equal(balloon_controller_set_schedule(h.ctl, &h.cfg,
                                                         &(BalloonSchedule) { .mode = BALLOON_SCHEDULE_RAMP,
                                                                              .from_bytes = 256 * MiB,
                                                                              .to_bytes = 512 * MiB,
                                                                              .every_usec = USEC_PER_SEC,
                                                                              .count = 1 },
                                                         &info),
                         BALLOON_ERROR_INVALID_SCHEDULE);
        assert_string_equal(info.field, "count");
        balloon_error_info_done(&info);

        run_until(&h, NULL, 200 * USEC_PER_MSEC);
        assert_int_equal(h.done.calls, 0);
        assert_int_equal(h.fake.n_balloon, 0);
        harness_done(&h);
}

static void test_qemu_goes_away(void **state) {
        Harness h;

        harness_init(&h);
        harness_start(&h);
        h.fake.answer = ANSWER_HANG_UP;

        assert_int_equal(set_target(&h, 256 * MiB, true, USEC_PER_SEC, NULL), 0);
        run_until(&h, &h.done.calls, 5 * USEC_PER_SEC);
        assert_int_equal(h.done.r, BALLOON_ERROR_FAILED);
        assert_int_equal(h.done.cause, -ECONNRESET);
        assert_null(h.done.qmp_error_class);
        assert_non_null(strstr(h.done.reason, "closed before QEMU answered"));
        /* past the wait's timeout: nothing more */
        run_until(&h, NULL, 1500 * USEC_PER_MSEC);
        assert_int_equal(h.done.calls, 1);

        balloon_controller_stop(h.ctl);
        assert_false(balloon_controller_is_tracking(h.ctl));
        assert_int_equal(h.done.calls, 1);
        harness_done(&h);
}

static void test_stop_mid_wait(void **state) {
        Done nowait = {};
        Harness h;

        harness_init(&h);
        harness_start(&h);
        h.fake.stuck = true;

        assert_int_equal(set_target(&h, 256 * MiB, true, 10 * USEC_PER_SEC, NULL), 0);
        run_until(&h, &h.fake.n_balloon, 5 * USEC_PER_SEC);
        /* a second command whose answer comes after the stop */
        assert_int_equal(balloon_controller_set_target(h.ctl, &h.cfg,
                                                       &(BalloonTargetRequest) { .target_bytes = 300 * MiB },
                                                       on_done, &nowait, NULL, NULL),
                         0);
        balloon_controller_stop(h.ctl);
        assert_int_equal(h.done.calls, 1);
        assert_int_equal(h.done.r, BALLOON_ERROR_INVALID_STATE);
        run_until(&h, &nowait.calls, 5 * USEC_PER_SEC);
        assert_int_equal(nowait.r, BALLOON_ERROR_FAILED);
        assert_int_equal(nowait.cause, -ESRCH);
        assert_string_equal(nowait.reason, "the guest stopped");
        free(nowait.reason);

        /* cancelling: -ECANCELED, once */
        harness_start(&h);
        h.done = (Done) {};
        {
                BalloonWait *w = NULL;
                assert_int_equal(set_target(&h, 256 * MiB, true, 10 * USEC_PER_SEC, &w), 0);
                balloon_wait_cancel(w);
        }
        assert_int_equal(h.done.calls, 1);
        assert_int_equal(h.done.r, -ECANCELED);
        run_until(&h, NULL, 300 * USEC_PER_MSEC);
        assert_int_equal(h.done.calls, 1);
        harness_done(&h);
}

static void test_schedule_step(void **state) {
        BalloonSchedule sched = {
                .mode = BALLOON_SCHEDULE_OSCILLATE,
                .from_bytes = 256 * MiB,
                .to_bytes = 512 * MiB,
                .every_usec = 10 * USEC_PER_SEC,
                .count = 2,
        };
        const BalloonStep *s = NULL;
        BalloonControllerInfo info;
        BalloonStatus st;
        json_object *v;
        Harness h;

        harness_init(&h);
        harness_start(&h);

        assert_int_equal(balloon_controller_set_schedule(h.ctl, &h.cfg, &sched, NULL), 0);
        balloon_controller_get_status(h.ctl, &st);
        assert_true(st.schedule_active);
        assert_int_equal(st.schedule_origin, BALLOON_SCHEDULE_ORIGIN_API);
        assert_false(balloon_controller_policy_eligible(h.ctl));

        /* step 0 starts at once: counters, balloon 256 MiB, reached, counters again */
        for (int i = 0; i < 200; i++) {
                s = balloon_controller_get_step(h.ctl, 0);
                if (s && s->done && s->kvm)
                        break;
                assert_true(sd_event_run(h.event, 50 * USEC_PER_MSEC) >= 0);
        }
        assert_non_null(s);
        assert_int_equal(balloon_controller_n_steps(h.ctl), 1);
        assert_int_equal(s->index, 0);
        assert_int_equal(s->target_bytes, 256 * MiB);
        assert_int_equal(s->actual_start_bytes, 512 * MiB);
        assert_true(s->reached);
        assert_true(s->done);
        assert_null(s->error);
        assert_true(json_get_bool(s->kvm, "available", false));
        assert_true(json_object_object_get_ex(s->kvm, "vm", &v));
        assert_int_equal(h.fake.n_query_stats, 4);  /* vm and vcpu, before and after */
        assert_int_equal(h.fake.last_balloon_value, 256 * MiB);

        balloon_controller_get_info(h.ctl, &info);
        assert_int_equal(info.steps_total, 1);
        assert_int_equal(info.steps_reached_total, 1);

        assert_int_equal(balloon_controller_cancel_schedule(h.ctl, &h.cfg, "the test", NULL), 0);
        balloon_controller_get_status(h.ctl, &st);
        assert_false(st.schedule_active);
        harness_done(&h);
}

static void test_policy_run(void **state) {
        BalloonPolicyRunner runner = BALLOON_POLICY_RUNNER_INIT;
        BalloonPolicyParams params = BALLOON_POLICY_PARAMS_DEFAULT;
        HostMemory host = {
                .mem_total = 8192 * MiB,
                .mem_available = 256 * MiB,     /* pressure */
                .committed_as = 4096 * MiB,
                .commit_limit = 8192 * MiB,
        };
        const BalloonDecisionRecord *d;
        BalloonController *ctls[1];
        BalloonStatus st;
        Harness h;

        harness_init(&h);
        harness_start(&h);
        /* the guest statistics are in: the guest can spare memory */
        run_until(&h, &h.fake.n_qom_get, USEC_PER_SEC);
        run_until(&h, NULL, 200 * USEC_PER_MSEC);
        assert_true(balloon_controller_policy_eligible(h.ctl));

        ctls[0] = h.ctl;
        balloon_policy_run(&runner, &params, &host, ctls, 1);
        assert_int_equal(runner.host_state, BALLOON_HOST_PRESSURE);
        assert_int_equal(balloon_controller_n_decisions(h.ctl), 1);
        d = balloon_controller_get_decision(h.ctl, 0);
        assert_int_equal(d->decision.action, BALLOON_POLICY_SQUEEZE);
        assert_int_equal(d->decision.target_bytes, 512 * MiB - params.max_step_bytes);
        balloon_controller_get_status(h.ctl, &st);
        assert_ptr_equal(st.last_decision, d);
        assert_int_equal(st.target_bytes, 512 * MiB - params.max_step_bytes);
        run_until(&h, &h.fake.n_balloon, 5 * USEC_PER_SEC);
        assert_int_equal(h.fake.last_balloon_value, 512 * MiB - params.max_step_bytes);
        harness_done(&h);
}

/* The policy reading the host from a meminfo file: a file it cannot read skips the round; one under pressure
 * squeezes as above. And the metrics' view of the controller. */
static void test_policy_run_meminfo(void **state) {
        static const char text[] = "MemTotal:        8388608 kB\nMemFree:          131072 kB\n"
                                   "MemAvailable:     262144 kB\nCommitLimit:     8388608 kB\n"
                                   "Committed_AS:    4194304 kB\n";
        BalloonPolicyRunner runner = BALLOON_POLICY_RUNNER_INIT;
        BalloonPolicyParams params = BALLOON_POLICY_PARAMS_DEFAULT;
        BalloonController *ctls[1];
        MetricsBalloon mb;
        char path[64];
        Harness h;
        int fd;

        balloon_controller_get_metrics(NULL, &mb);
        assert_false(mb.tracking);
        assert_true(mb.actual_bytes == METRICS_UNSET);

        harness_init(&h);
        harness_start(&h);
        run_until(&h, &h.fake.n_qom_get, USEC_PER_SEC);
        run_until(&h, NULL, 200 * USEC_PER_MSEC);
        assert_true(balloon_controller_policy_eligible(h.ctl));
        balloon_controller_get_metrics(h.ctl, &mb);
        assert_true(mb.tracking);
        assert_int_equal(mb.actual_bytes, 512 * MiB);
        assert_true(mb.stats_valid);

        ctls[0] = h.ctl;
        balloon_policy_run_meminfo(&runner, &params, "/nonexistent/meminfo", ctls, 1);
        assert_int_equal(runner.last_host_error, -ENOENT);
        assert_int_equal(balloon_controller_n_decisions(h.ctl), 0);

        fd = memfd_create("meminfo", MFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        (void) snprintf(path, sizeof(path), "/proc/self/fd/%i", fd);
        balloon_policy_run_meminfo(&runner, &params, path, ctls, 1);
        assert_int_equal(runner.last_host_error, 0);
        assert_int_equal(runner.host_state, BALLOON_HOST_PRESSURE);
        assert_int_equal(balloon_controller_n_decisions(h.ctl), 1);
        assert_int_equal(balloon_controller_get_decision(h.ctl, 0)->decision.action, BALLOON_POLICY_SQUEEZE);
        close(fd);
        harness_done(&h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_target_reached),
                cmocka_unit_test(test_timeout),
                cmocka_unit_test(test_qemu_error),
                cmocka_unit_test(test_refused),
                cmocka_unit_test(test_qemu_goes_away),
                cmocka_unit_test(test_stop_mid_wait),
                cmocka_unit_test(test_schedule_step),
                cmocka_unit_test(test_policy_run),
                cmocka_unit_test(test_policy_run_meminfo),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
