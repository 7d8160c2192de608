/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The balloon controller of one guest: tracking a running QEMU, targets and waits, polling the balloon's size
 * and the guest statistics (schedules and steps are in balloon-steps.c, the policy in balloon-policy-run.c).
 *
 * Every QMP command goes out with a BalloonRequest of its own and its own callback; stopping or freeing the
 * controller detaches the requests still in flight, so what QEMU answers for a guest that stopped is
 * dropped (a target's caller hears that the guest stopped). */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "balloon/balloon-controller-private.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/parse.h"

static const char *const balloon_error_table[_BALLOON_ERROR_MAX] = {
        [BALLOON_ERROR_NO_DEVICE] = "no-device",
        [BALLOON_ERROR_OUT_OF_RANGE] = "out-of-range",
        [BALLOON_ERROR_INVALID_STATE] = "invalid-state",
        [BALLOON_ERROR_TIMEOUT] = "timeout",
        [BALLOON_ERROR_FAILED] = "failed",
        [BALLOON_ERROR_INVALID_SCHEDULE] = "invalid-schedule",
        [BALLOON_ERROR_NO_SCHEDULE] = "no-schedule",
        [BALLOON_ERROR_CONFIDENTIAL] = "confidential",
};

DEFINE_STRING_TABLE(balloon_error, BalloonError, _BALLOON_ERROR_MAX);

void balloon_error_info_done(BalloonErrorInfo *e) {
        if (!e)
                return;
        free(e->reason);
        free(e->qmp_error_class);
        free(e->qmp_error_desc);
        *e = (BalloonErrorInfo) {};
}

/* Fills *ret_error (optional, taking reason) and returns error. */
static int error_set(BalloonErrorInfo *ret_error, BalloonError error, BalloonErrorInfo info, char *reason) {
        if (ret_error) {
                balloon_error_info_done(ret_error);
                *ret_error = info;
                ret_error->error = error;
                ret_error->reason = reason;
        } else
                free(reason);
        return error;
}

uint64_t balloon_now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* ---- requests --------------------------------------------------------------------------------- */

BalloonRequest *balloon_request_new(BalloonController *c) {
        BalloonRequest *r = calloc(1, sizeof(BalloonRequest));

        if (!r)
                return NULL;
        r->controller = c;
        r->next = c->requests;
        if (c->requests)
                c->requests->prev = r;
        c->requests = r;
        return r;
}

/* Unlinks req from its controller; returns the controller, NULL when the request was detached. */
static BalloonController *request_unlink(BalloonRequest *req) {
        BalloonController *c = req->controller;

        if (!c)
                return NULL;
        if (req->prev)
                req->prev->next = req->next;
        else
                c->requests = req->next;
        if (req->next)
                req->next->prev = req->prev;
        req->controller = NULL;
        req->prev = req->next = NULL;
        return c;
}

BalloonRequest *balloon_request_free(BalloonRequest *r) {
        if (!r)
                return NULL;
        (void) request_unlink(r);
        free(r);
        return NULL;
}

static void detach_requests(BalloonController *c) {
        while (c->requests)
                (void) request_unlink(c->requests);
}

int balloon_request_execute(BalloonRequest *req, const char *command, json_object *args, QmpCommandCallback cb) {
        _cleanup_(balloon_request_freep) BalloonRequest *owned = req;
        _cleanup_json_ json_object *a = args;
        int r;

        if (!req)
                return -ENOMEM;
        r = qmp_client_execute(req->controller->qmp, command, TAKE_PTR(a), BALLOON_QMP_TIMEOUT_USEC, cb, req);
        if (r < 0)
                return r;
        TAKE_PTR(owned);
        return 0;
}

json_object *balloon_command_args(uint64_t target) {
        _cleanup_json_ json_object *a = json_object_new_object();

        if (!a || json_add_uint(a, "value", target) < 0)
                return NULL;
        return TAKE_PTR(a);
}

static json_object *qom_args(const char *property, json_object *value) {
        _cleanup_json_ json_object *a = json_object_new_object(), *v = value;

        if (!a || json_add_string(a, "path", BALLOON_DEVICE_PATH) < 0 || json_add_string(a, "property", property) < 0)
                return NULL;
        if (v && json_add(a, "value", TAKE_PTR(v)) < 0)
                return NULL;
        return TAKE_PTR(a);
}

/* ---- the controller --------------------------------------------------------------------------- */

int balloon_controller_new(BalloonController **ret, sd_event *event, const char *name) {
        _cleanup_free_ BalloonController *c = NULL;

        c = calloc(1, sizeof(BalloonController));
        if (!c)
                return -ENOMEM;
        c->name = strdup(name);
        if (!c->name)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        *ret = TAKE_PTR(c);
        return 0;
}

static void wait_complete(BalloonWait *w, int r, const BalloonTargetResult *result, const BalloonErrorInfo *error);

BalloonController *balloon_controller_free(BalloonController *c) {
        if (!c)
                return NULL;
        while (c->n_waiters > 0)
                wait_complete(c->waiters[c->n_waiters - 1], -ECANCELED, NULL, NULL);
        detach_requests(c);
        c->poll_timer = sd_event_source_disable_unref(c->poll_timer);
        c->schedule_timer = sd_event_source_disable_unref(c->schedule_timer);
        balloon_controller_steps_free(c);
        free(c->decisions);
        free(c->restore);
        balloon_schedule_interruption_done(&c->interrupted);
        c->qmp = qmp_client_unref(c->qmp);
        sd_event_unref(c->event);
        free(c->name);
        free(c);
        return NULL;
}

const char *balloon_controller_get_name(const BalloonController *c) {
        return c->name;
}

void balloon_controller_set_change_callback(BalloonController *c, BalloonChangeCallback cb, void *userdata) {
        c->on_change = cb;
        c->on_change_userdata = userdata;
}

void balloon_controller_changed(BalloonController *c) {
        if (!c->on_change || c->in_change)
                return;
        c->in_change = true;
        c->on_change(c, c->on_change_userdata);
        c->in_change = false;
}

bool balloon_controller_is_tracking(const BalloonController *c) {
        return c && c->tracking;
}

bool balloon_controller_usable(const BalloonController *c) {
        return c->tracking && c->qmp && qmp_client_get_state(c->qmp) != QMP_CLIENT_DISCONNECTED;
}

/* ---- waits ------------------------------------------------------------------------------------ */

static BalloonWait *find_wait(BalloonController *c, uint64_t id) {
        for (size_t i = 0; id > 0 && i < c->n_waiters; i++)
                if (c->waiters[i]->id == id)
                        return c->waiters[i];
        return NULL;
}

static BalloonTargetResult wait_result(const BalloonWait *w, bool reached) {
        const BalloonController *c = w->controller;

        return (BalloonTargetResult) {
                .target_bytes = w->target,
                .actual_bytes = c->actual_known ? c->actual : BALLOON_SIZE_UNKNOWN,
                .reached = reached,
                .elapsed_usec = balloon_now_usec(CLOCK_MONOTONIC) - w->start_monotonic,
        };
}

/* Takes w off its controller and frees it, then calls its callback. */
static void wait_complete(BalloonWait *w, int r, const BalloonTargetResult *result, const BalloonErrorInfo *error) {
        BalloonController *c = w->controller;
        BalloonTargetCallback cb = w->cb;
        void *userdata = w->userdata;

        for (size_t i = 0; i < c->n_waiters; i++)
                if (c->waiters[i] == w) {
                        memmove(c->waiters + i, c->waiters + i + 1, (c->n_waiters - i - 1) * sizeof(BalloonWait *));
                        c->n_waiters--;
                        break;
                }
        w->timer = sd_event_source_disable_unref(w->timer);
        free(w);
        if (cb)
                cb(r, result, error, userdata);
}

void balloon_wait_cancel(BalloonWait *w) {
        if (w)
                wait_complete(w, -ECANCELED, NULL, NULL);
}

static int wait_on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        BalloonWait *w = userdata;
        BalloonController *c = w->controller;
        char tbuf[FORMAT_TIMESPAN_MAX], a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX], t[FORMAT_SIZE_MAX];
        _cleanup_(balloon_error_info_done) BalloonErrorInfo info = {};
        char *reason = NULL;
        bool moved;

        format_timespan(tbuf, sizeof(tbuf), w->timeout_usec);
        moved = c->actual_known && w->actual_start != BALLOON_SIZE_UNKNOWN && !balloon_reached(c->actual, w->actual_start);
        if (!moved)
                (void) asprintf(&reason,
                                "no progress within %s: the balloon stayed at %s instead of moving to %s; the guest's "
                                "virtio_balloon driver may not be loaded",
                                tbuf, c->actual_known ? format_size(a, sizeof(a), c->actual) : "an unknown size",
                                format_size(t, sizeof(t), w->target));
        else
                (void) asprintf(&reason, "target %s not reached within %s: the balloon moved from %s to %s",
                                format_size(t, sizeof(t), w->target), tbuf,
                                format_size(a, sizeof(a), w->actual_start), format_size(b, sizeof(b), c->actual));
        log_warning("Guest %s: balloon wait: %s", c->name, strna(reason));

        (void) error_set(&info, BALLOON_ERROR_TIMEOUT,
                         (BalloonErrorInfo) {
                                 .target_bytes = w->target,
                                 .actual_bytes = c->actual_known ? c->actual : BALLOON_SIZE_UNKNOWN,
                         },
                         reason);
        wait_complete(w, BALLOON_ERROR_TIMEOUT, NULL, &info);
        balloon_controller_rearm_poll(c);
        return 0;
}

/* The actual size is known anew: waits that got there complete, the others hear the progress. */
static void actual_changed(BalloonController *c) {
        uint64_t ids[BALLOON_WAITERS_MAX];
        size_t n = c->n_waiters;
        int r;

        /* By id: callbacks may end other waits. */
        for (size_t i = 0; i < n; i++)
                ids[i] = c->waiters[i]->id;
        for (size_t i = 0; i < n; i++) {
                BalloonWait *w = find_wait(c, ids[i]);
                BalloonTargetResult result;

                if (!w)
                        continue;
                if (w->actual_start == BALLOON_SIZE_UNKNOWN)
                        w->actual_start = c->actual;
                if (balloon_reached(c->actual, w->target)) {
                        result = wait_result(w, true);
                        wait_complete(w, 0, &result, NULL);
                } else if (w->progress) {
                        result = wait_result(w, false);
                        r = w->progress(&result, w->userdata);
                        if (r < 0 && (w = find_wait(c, ids[i])))
                                wait_complete(w, r, NULL, NULL);
                }
        }

        balloon_controller_step_actual(c);
        balloon_controller_rearm_poll(c);
}

static void set_actual(BalloonController *c, uint64_t actual) {
        c->actual = actual;
        c->actual_known = true;
        actual_changed(c);
}

void balloon_controller_on_balloon_change(BalloonController *c, uint64_t actual_bytes) {
        if (c && c->tracking)
                set_actual(c, actual_bytes);
}

/* ---- polling ---------------------------------------------------------------------------------- */

static void on_query_balloon(QmpClient *q, int error, json_object *result, const char *error_class,
                             const char *error_desc, void *userdata) {
        _cleanup_(balloon_request_freep) BalloonRequest *req = userdata;
        BalloonController *c = request_unlink(req);
        json_object *v;

        if (!c)
                return;
        c->balloon_query_pending = false;
        if (error == 0 && json_object_object_get_ex(result, "actual", &v) && json_object_is_type(v, json_type_int) &&
            json_object_get_int64(v) >= 0)
                set_actual(c, (uint64_t) json_object_get_int64(v));
        else if (error < 0)
                log_debug("Guest %s: query-balloon failed: %s", c->name, error_desc ?: strerror(-error));
}

static void on_guest_stats(QmpClient *q, int error, json_object *result, const char *error_class,
                           const char *error_desc, void *userdata) {
        _cleanup_(balloon_request_freep) BalloonRequest *req = userdata;
        BalloonController *c = request_unlink(req);
        BalloonGuestStats st;

        if (!c)
                return;
        c->stats_query_pending = false;
        if (error == 0 && balloon_guest_stats_parse(result, &st) >= 0)
                c->stats = st;
        else
                log_debug("Guest %s: qom-get guest-stats failed: %s", c->name,
                          error_desc ?: strerror(error < 0 ? -error : EINVAL));
}

static void on_set_polling(QmpClient *q, int error, json_object *result, const char *error_class,
                           const char *error_desc, void *userdata) {
        _cleanup_(balloon_request_freep) BalloonRequest *req = userdata;
        BalloonController *c = request_unlink(req);

        if (c && error < 0 && error != -ECONNRESET) /* QMP went away: the guest's end is logged */
                log_warning("Guest %s: failed to enable balloon statistics polling, ignoring: %s", c->name,
                            error_desc ?: strerror(-error));
}

static uint64_t poll_interval(const BalloonController *c) {
        if (c->n_waiters > 0 || (c->current_step && !c->current_step->done))
                return BALLOON_FAST_POLL_USEC;
        return c->config.stats_interval_usec;
}

static void poll_now(BalloonController *c) {
        uint64_t now = balloon_now_usec(CLOCK_MONOTONIC);

        if (!balloon_controller_usable(c))
                return;
        if (!c->balloon_query_pending &&
            balloon_request_execute(balloon_request_new(c), "query-balloon", NULL, on_query_balloon) >= 0)
                c->balloon_query_pending = true;
        if (!c->stats_query_pending && now >= c->next_stats_monotonic &&
            balloon_request_execute(balloon_request_new(c), "qom-get", qom_args("guest-stats", NULL),
                                    on_guest_stats) >= 0) {
                c->stats_query_pending = true;
                c->next_stats_monotonic = now + c->config.stats_interval_usec;
        }
        balloon_controller_rearm_poll(c);
}

static int on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        poll_now(userdata);
        return 0;
}

void balloon_controller_rearm_poll(BalloonController *c) {
        uint64_t when;
        int r;

        if (!c->tracking)
                return;
        when = balloon_now_usec(CLOCK_MONOTONIC) + poll_interval(c);
        if (c->poll_timer) {
                uint64_t cur = 0;
                int enabled = 0;

                /* Only ever bring the next poll forward, or arm it when off. */
                (void) sd_event_source_get_time(c->poll_timer, &cur);
                (void) sd_event_source_get_enabled(c->poll_timer, &enabled);
                if (enabled != SD_EVENT_OFF && cur <= when)
                        return;
                (void) sd_event_source_set_time(c->poll_timer, when);
                (void) sd_event_source_set_enabled(c->poll_timer, SD_EVENT_ONESHOT);
                return;
        }
        r = sd_event_add_time(c->event, &c->poll_timer, CLOCK_MONOTONIC, when, 0, on_poll_timer, c);
        if (r < 0) {
                log_warning_errno(r, "Guest %s: failed to arm the balloon poll timer, ignoring: %m", c->name);
                return;
        }
        (void) sd_event_source_set_description(c->poll_timer, "balloon-poll");
}

/* ---- start/stop tracking ---------------------------------------------------------------------- */

void balloon_controller_start(BalloonController *c, QmpClient *qmp, const BalloonGuestConfig *guest) {
        bool same_qemu;
        int r;

        if (c->tracking)
                return;
        c->tracking = true;
        c->qmp = qmp_client_ref(qmp);
        c->config = *guest;
        c->stats = (BalloonGuestStats) {};
        c->next_stats_monotonic = 0;

        r = balloon_request_execute(balloon_request_new(c), "qom-set",
                                    qom_args("guest-stats-polling-interval",
                                             json_object_new_int64((int64_t) (c->config.stats_interval_usec /
                                                                              USEC_PER_SEC))),
                                    on_set_polling);
        if (r < 0)
                log_warning_errno(r, "Guest %s: failed to enable balloon statistics, ignoring: %m", c->name);
        balloon_controller_rearm_poll(c);
        poll_now(c);

        /* A record saved for this very QEMU says what runs: its target, its schedule (resumed). */
        same_qemu = balloon_controller_restore_apply(c, guest);
        if (!same_qemu && guest->schedule.mode != BALLOON_SCHEDULE_NONE && !guest->confidential) {
                r = balloon_controller_schedule_start(c, &guest->schedule, BALLOON_SCHEDULE_ORIGIN_DEFINITION);
                if (r < 0)
                        log_error_errno(r, "Guest %s: failed to start the balloon schedule: %m", c->name);
        }
}

void balloon_controller_stop(BalloonController *c) {
        if (!c->tracking) {
                if (c->restored)        /* the QEMU of the record is gone */
                        (void) balloon_controller_restore_apply(c, NULL);
                return;
        }
        /* First: the step that ends now must find the guest gone, not ask it for counters. */
        c->tracking = false;
        balloon_controller_schedule_stop(c);
        detach_requests(c);
        c->poll_timer = sd_event_source_disable_unref(c->poll_timer);
        c->balloon_query_pending = c->stats_query_pending = false;
        c->actual_known = false;
        c->target_set = false;
        while (c->n_waiters > 0) {
                BalloonErrorInfo info = { .error = BALLOON_ERROR_INVALID_STATE };

                wait_complete(c->waiters[c->n_waiters - 1], BALLOON_ERROR_INVALID_STATE, NULL, &info);
        }
        c->qmp = qmp_client_unref(c->qmp);
}

/* ---- checks ----------------------------------------------------------------------------------- */

int balloon_controller_check_running(const BalloonController *c, const BalloonGuestConfig *guest,
                                     BalloonErrorInfo *ret_error) {
        if (guest->confidential)
                return error_set(ret_error, BALLOON_ERROR_CONFIDENTIAL, (BalloonErrorInfo) {}, NULL);
        if (!guest->device)
                return error_set(ret_error, BALLOON_ERROR_NO_DEVICE, (BalloonErrorInfo) {}, NULL);
        if (!c || !c->tracking)
                return error_set(ret_error, BALLOON_ERROR_INVALID_STATE, (BalloonErrorInfo) {}, NULL);
        return 0;
}

int balloon_controller_check_target(const BalloonController *c, const char *field, uint64_t target,
                                    BalloonErrorInfo *ret_error) {
        char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX];
        uint64_t floor_bytes, memory;
        char *reason = NULL;

        if (!c || !c->tracking)
                return error_set(ret_error, BALLOON_ERROR_INVALID_STATE, (BalloonErrorInfo) {}, NULL);
        floor_bytes = c->config.floor_bytes;
        memory = c->config.memory_bytes;
        switch (balloon_target_check(target, floor_bytes, memory)) {
        case BALLOON_TARGET_OK:
                return 0;
        case BALLOON_TARGET_ZERO:
                reason = strdup("the target must be greater than 0");
                break;
        case BALLOON_TARGET_BELOW_FLOOR:
                (void) asprintf(&reason, "%s is below the guest's balloon floor %s ([Balloon] Floor=)",
                                format_size(a, sizeof(a), target), format_size(b, sizeof(b), floor_bytes));
                break;
        case BALLOON_TARGET_ABOVE_MEMORY:
                (void) asprintf(&reason, "%s is above the guest's boot memory %s", format_size(a, sizeof(a), target),
                                format_size(b, sizeof(b), memory));
                break;
        case _BALLOON_TARGET_CHECK_MAX:
        case _BALLOON_TARGET_CHECK_INVALID:
                break;
        }
        return error_set(ret_error, BALLOON_ERROR_OUT_OF_RANGE,
                         (BalloonErrorInfo) {
                                 .field = field,
                                 .target_bytes = target,
                                 .minimum_bytes = MAX(floor_bytes, 1),
                                 .maximum_bytes = memory,
                         },
                         reason);
}

/* ---- targets ---------------------------------------------------------------------------------- */

/* FAILED for a balloon command that failed: QEMU's own error (class and description) when QEMU refused it,
 * otherwise what happened to the command. */
static void failed_info(BalloonErrorInfo *ret, int error, const char *error_class, const char *error_desc) {
        const char *reason;

        switch (error) {
        case -EIO:
                reason = error_desc;
                break;
        case -ETIMEDOUT:
                reason = "QEMU did not answer the balloon command in time";
                break;
        case -ECONNRESET:
                reason = "the QMP connection to QEMU closed before QEMU answered (QEMU exited?)";
                break;
        default:
                reason = strerror(-error);
        }
        *ret = (BalloonErrorInfo) {
                .error = BALLOON_ERROR_FAILED,
                .cause = error,
                .reason = reason ? strdup(reason) : NULL,
                .qmp_error_class = error == -EIO && error_class ? strdup(error_class) : NULL,
                .qmp_error_desc = error == -EIO && error_desc ? strdup(error_desc) : NULL,
        };
}

void balloon_on_target_reply(QmpClient *q, int error, json_object *result, const char *error_class,
                          const char *error_desc, void *userdata) {
        _cleanup_(balloon_request_freep) BalloonRequest *req = userdata;
        _cleanup_(balloon_error_info_done) BalloonErrorInfo info = {};
        BalloonController *c = request_unlink(req);
        BalloonTargetResult res;
        BalloonWait *w;

        if (!c) {
                if (req->cb) {
                        info = (BalloonErrorInfo) {
                                .error = BALLOON_ERROR_FAILED,
                                .cause = -ESRCH,
                                .reason = strdup("the guest stopped"),
                        };
                        req->cb(BALLOON_ERROR_FAILED, NULL, &info, req->userdata);
                }
                return;
        }

        if (error < 0) {
                log_full(error == -ECONNRESET ? LOG_DEBUG : LOG_WARNING,
                         "Guest %s: the balloon target %" PRIu64 " bytes failed: %s%s%s", c->name, req->target,
                         error == -EIO ? strna(error_class) : "", error == -EIO ? ": " : "",
                         error == -EIO ? strna(error_desc) : strerror(-error));
                failed_info(&info, error, error_class, error_desc);
                /* the caller hears it now, not after a wait for a balloon that will not move */
                w = find_wait(c, req->wait_id);
                if (w) {
                        wait_complete(w, BALLOON_ERROR_FAILED, NULL, &info);
                        balloon_controller_rearm_poll(c);
                } else if (req->cb)
                        req->cb(BALLOON_ERROR_FAILED, NULL, &info, req->userdata);
                return;
        }
        if (!req->cb)
                return;
        res = (BalloonTargetResult) {
                .target_bytes = req->target,
                .actual_bytes = c->actual_known ? c->actual : BALLOON_SIZE_UNKNOWN,
                .reached = c->actual_known && balloon_reached(c->actual, req->target),
        };
        req->cb(0, &res, NULL, req->userdata);
}

int balloon_controller_set_target(BalloonController *c, const BalloonGuestConfig *guest,
                                  const BalloonTargetRequest *req, BalloonTargetCallback cb, void *userdata,
                                  BalloonWait **ret_wait, BalloonErrorInfo *ret_error) {
        BalloonRequest *rq;
        BalloonWait *w;
        uint64_t wait_id = 0;
        int r;

        r = balloon_controller_check_running(c, guest, ret_error);
        if (r != 0)
                return r;
        r = balloon_controller_check_target(c, "target", req->target_bytes, ret_error);
        if (r != 0)
                return r;
        if (req->wait && c->n_waiters >= BALLOON_WAITERS_MAX)
                return error_set(ret_error, BALLOON_ERROR_FAILED, (BalloonErrorInfo) { .cause = -EBUSY },
                                 strdup("too many balloon waits pending for this guest (16)"));

        log_info("Guest %s: balloon target %" PRIu64 " bytes set over %s%s.", c->name, req->target_bytes,
                 strna(req->requester), c->schedule_active ? " (stops its schedule)" : "");
        if (c->schedule_active)
                balloon_controller_schedule_stop(c);

        /* With wait, QEMU's answer reaches the wait through its id (an error ends it at once); without, the
         * request answers. */
        if (req->wait)
                wait_id = ++c->last_wait_id;
        rq = balloon_request_new(c);
        if (!rq)
                return -ENOMEM;
        rq->target = req->target_bytes;
        rq->wait_id = wait_id;
        if (!req->wait) {
                rq->cb = cb;
                rq->userdata = userdata;
        }
        r = balloon_request_execute(rq, "balloon", balloon_command_args(req->target_bytes), balloon_on_target_reply);
        if (r < 0)
                return r;
        c->target = req->target_bytes;
        c->target_set = true;
        balloon_controller_changed(c);
        if (!req->wait)
                return 0;

        w = calloc(1, sizeof(BalloonWait));
        if (!w)
                return -ENOMEM;
        *w = (BalloonWait) {
                .controller = c,
                .id = wait_id,
                .target = req->target_bytes,
                .start_monotonic = balloon_now_usec(CLOCK_MONOTONIC),
                .timeout_usec = req->timeout_usec,
                .actual_start = c->actual_known ? c->actual : BALLOON_SIZE_UNKNOWN,
                .cb = cb,
                .progress = req->progress,
                .userdata = userdata,
        };
        r = sd_event_add_time_relative(c->event, &w->timer, CLOCK_MONOTONIC, w->timeout_usec, 0, wait_on_timeout, w);
        if (r < 0) {
                free(w);
                return r;
        }
        (void) sd_event_source_set_description(w->timer, "balloon-wait");
        c->waiters[c->n_waiters++] = w;
        if (ret_wait)
                *ret_wait = w;
        balloon_controller_rearm_poll(c);
        /* the next query-balloon reply (fast polling now) tells whether it is there */
        poll_now(c);
        return 0;
}

/* ---- reading ---------------------------------------------------------------------------------- */

size_t balloon_controller_n_decisions(const BalloonController *c) {
        return c ? c->n_decisions : 0;
}

const BalloonDecisionRecord *balloon_controller_get_decision(const BalloonController *c, size_t i) {
        if (!c || i >= c->n_decisions)
                return NULL;
        return c->decisions + (c->decisions_head + i) % BALLOON_DECISIONS_MAX;
}

static uint64_t current_target(const BalloonController *c) {
        return c->target_set ? c->target : c->config.memory_bytes;
}

void balloon_controller_get_status(const BalloonController *c, BalloonStatus *ret) {
        if (!c) {
                *ret = (BalloonStatus) { .actual_bytes = BALLOON_SIZE_UNKNOWN };
                return;
        }
        *ret = (BalloonStatus) {
                .tracking = c->tracking,
                .target_bytes = current_target(c),
                .actual_bytes = c->actual_known ? c->actual : BALLOON_SIZE_UNKNOWN,
                .stats = c->stats,
                .schedule_active = c->schedule_active,
                .schedule = c->schedule,
                .schedule_next = c->schedule_next,
                .schedule_origin = c->schedule_origin,
                .last_decision = c->n_decisions > 0 ? balloon_controller_get_decision(c, c->n_decisions - 1) : NULL,
                .interrupted = c->interrupted.set ? &c->interrupted : NULL,
        };
}

void balloon_controller_get_info(const BalloonController *c, BalloonControllerInfo *ret) {
        if (!c) {
                *ret = (BalloonControllerInfo) {};
                return;
        }
        *ret = (BalloonControllerInfo) {
                .tracking = c->tracking,
                .target_bytes = c->tracking ? current_target(c) : 0,
                .stats = c->tracking ? c->stats : (BalloonGuestStats) {},
                .steps_total = c->steps_total,
                .steps_reached_total = c->steps_reached_total,
                .steps_reached_usec = c->steps_reached_usec,
        };
}

void balloon_controller_get_metrics(const BalloonController *c, MetricsBalloon *ret) {
        BalloonControllerInfo b;
        uint64_t target, actual;

        balloon_controller_get_info(c, &b);
        *ret = (MetricsBalloon) {
                .tracking = b.tracking,
                .target_bytes = b.target_bytes,
                .actual_bytes = METRICS_UNSET,
                .stats_valid = balloon_guest_stats_valid(&b.stats),
                .free_bytes = b.stats.free_bytes,
                .available_bytes = b.stats.available_bytes,
                .total_bytes = b.stats.total_bytes,
                .disk_caches_bytes = b.stats.disk_caches_bytes,
                .swap_in_bytes = b.stats.swap_in_bytes,
                .swap_out_bytes = b.stats.swap_out_bytes,
                .major_faults = b.stats.major_faults,
                .minor_faults = b.stats.minor_faults,
                .stats_last_update_sec = b.stats.last_update_sec,
                .steps_total = b.steps_total,
                .steps_reached_total = b.steps_reached_total,
                .steps_reached_usec = b.steps_reached_usec,
        };
        /* METRICS_UNSET while the size was not heard yet. */
        if (b.tracking && balloon_controller_get_sizes(c, &target, &actual))
                ret->actual_bytes = actual;
}

bool balloon_controller_get_sizes(const BalloonController *c, uint64_t *ret_target, uint64_t *ret_actual) {
        if (!c || !c->tracking)
                return false;
        *ret_target = current_target(c);
        *ret_actual = c->actual_known ? c->actual : BALLOON_SIZE_UNKNOWN;
        return true;
}
