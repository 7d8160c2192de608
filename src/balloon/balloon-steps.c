/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Balloon schedules (oscillate/ramp, balloon-util.h) on a timer, and the record of each step: its target, how
 * long the balloon took to get there, and the KVM counter deltas over the step (query-stats before the balloon
 * command and once the step is over). */
#include <inttypes.h>
#include <stdio.h>

#include "balloon/balloon-controller-private.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/parse.h"

static const char *const balloon_schedule_origin_table[_BALLOON_SCHEDULE_ORIGIN_MAX] = {
        [BALLOON_SCHEDULE_ORIGIN_DEFINITION] = "definition",
        [BALLOON_SCHEDULE_ORIGIN_API] = "api",
};

DEFINE_STRING_TABLE(balloon_schedule_origin, BalloonScheduleOrigin, _BALLOON_SCHEDULE_ORIGIN_MAX);

/* ---- the record ------------------------------------------------------------------------------- */

static void slot_done(BalloonStepSlot *s) {
        s->before = kvm_stats_free(s->before);
        if (s->step.kvm)
                (void) json_object_put(s->step.kvm);
        s->step.kvm = NULL;
        s->step.error = mfree(s->step.error);
}

void balloon_controller_steps_free(BalloonController *c) {
        for (size_t i = 0; c->steps && i < BALLOON_STEPS_MAX; i++)
                slot_done(c->steps + i);
        c->steps = mfree(c->steps);
        c->n_steps = c->steps_head = 0;
        c->current_step = NULL;
}

size_t balloon_controller_n_steps(const BalloonController *c) {
        return c ? c->n_steps : 0;
}

static BalloonStepSlot *slot_at(const BalloonController *c, size_t i) {
        return c->steps + (c->steps_head + i) % BALLOON_STEPS_MAX;
}

const BalloonStep *balloon_controller_get_step(const BalloonController *c, size_t i) {
        if (!c || i >= c->n_steps)
                return NULL;
        return &slot_at(c, i)->step;
}

static BalloonStepSlot *find_slot(BalloonController *c, uint64_t id) {
        for (size_t i = 0; i < c->n_steps; i++)
                if (slot_at(c, i)->step.id == id)
                        return slot_at(c, i);
        return NULL;
}

BalloonStep *balloon_controller_new_step(BalloonController *c) {
        BalloonStepSlot *s;

        if (!c->steps) {
                c->steps = calloc(BALLOON_STEPS_MAX, sizeof(BalloonStepSlot));
                if (!c->steps)
                        return NULL;
        }
        if (c->n_steps == BALLOON_STEPS_MAX) {
                s = c->steps + c->steps_head;
                if (c->current_step == &s->step)
                        c->current_step = NULL;
                c->steps_head = (c->steps_head + 1) % BALLOON_STEPS_MAX;
                c->n_steps--;
        }
        s = slot_at(c, c->n_steps);
        slot_done(s);
        *s = (BalloonStepSlot) { .step.id = ++c->steps_total };
        c->n_steps++;
        return &s->step;
}

static json_object *kvm_unavailable(const char *reason) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o || json_add_bool(o, "available", false) < 0 || json_add_string(o, "reason", reason) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* ---- KVM counters ----------------------------------------------------------------------------- */

static void on_kvm_before(KvmStats *stats, int error, void *userdata) {
        _cleanup_(balloon_request_freep) BalloonRequest *req = userdata;
        _cleanup_(kvm_stats_freep) KvmStats *st = stats;
        BalloonController *c = req->controller;
        BalloonStepSlot *s;

        if (!c)
                return;
        s = find_slot(c, req->step_id);
        if (!s || s->step.kvm)
                return;
        if (error == -ECONNRESET)
                s->step.kvm = kvm_unavailable("query-stats failed: the QMP connection closed");
        else if (error < 0)
                s->step.kvm = kvm_unavailable("query-stats failed: QEMU offers no KVM statistics");
        else if (!kvm_stats_available(st))
                s->step.kvm = kvm_unavailable("unavailable: the guest does not run under KVM (TCG has no KVM "
                                              "counters)");
        else
                s->before = TAKE_PTR(st);
        if (s->step.kvm)
                balloon_controller_changed(c);
}

static void on_kvm_after(KvmStats *stats, int error, void *userdata) {
        _cleanup_(balloon_request_freep) BalloonRequest *req = userdata;
        _cleanup_(kvm_stats_freep) KvmStats *st = stats;
        BalloonController *c = req->controller;
        BalloonStepSlot *s;

        if (!c)
                return;
        s = find_slot(c, req->step_id);
        if (!s || s->step.kvm)
                return;
        if (error < 0 || !s->before || !kvm_stats_available(st)) {
                s->step.kvm = kvm_unavailable(error == -ECONNRESET ? "query-stats failed at the end of the step: the "
                                                                     "QMP connection closed"
                                              : error < 0 ? "query-stats failed at the end of the step"
                                                          : "unavailable: no KVM counters at the start of the step");
                balloon_controller_changed(c);
                return;
        }
        if (kvm_stats_delta_json(s->before, st, &s->step.kvm) < 0)
                s->step.kvm = kvm_unavailable("failed to compute the KVM counter deltas");
        s->before = kvm_stats_free(s->before);
        balloon_controller_changed(c);
}

static int query_kvm(BalloonController *c, BalloonStep *s, KvmStatsCallback cb) {
        BalloonRequest *req = balloon_request_new(c);
        int r;

        if (!req)
                return -ENOMEM;
        req->step_id = s->id;
        r = kvm_stats_query(c->qmp, BALLOON_QMP_TIMEOUT_USEC, cb, req);
        if (r < 0) {
                balloon_request_free(req);
                return r;
        }
        return 0;
}

/* ---- steps ------------------------------------------------------------------------------------ */

static void step_log(BalloonController *c, BalloonStep *s) {
        char t[FORMAT_SIZE_MAX], a[FORMAT_SIZE_MAX], d[FORMAT_TIMESPAN_MAX];
        _cleanup_free_ char *field = NULL;

        if (asprintf(&field, "VM=%s", c->name) < 0)
                return;
        log_struct(LOG_INFO, 0, STRV(MESSAGE_ID_BALLOON_STEP, field),
                   "Guest %s: balloon step %u: target %s, %s %s%s%s", c->name, s->index,
                   format_size(t, sizeof(t), s->target_bytes), s->reached ? "reached in" : "not reached, at",
                   s->reached ? format_timespan(d, sizeof(d), s->reached_usec)
                              : (s->actual_bytes == BALLOON_SIZE_UNKNOWN ? "unknown"
                                                                        : format_size(a, sizeof(a), s->actual_bytes)),
                   s->error ? "; " : "", strempty(s->error));
}

/* The step is over (reached, superseded, or its guest stopped): take the "after" KVM counters. */
void balloon_controller_step_finish(BalloonController *c, BalloonStep *s) {
        if (s->done)
                return;
        s->done = true;
        if (s->reached) {
                c->steps_reached_total++;
                c->steps_reached_usec += s->reached_usec;
        }
        if (c->current_step == s)
                c->current_step = NULL;
        step_log(c, s);
        balloon_controller_changed(c);

        if (!balloon_controller_usable(c)) {
                if (!s->kvm)
                        s->kvm = kvm_unavailable("the guest stopped before the step ended");
                return;
        }
        if (!s->kvm && query_kvm(c, s, on_kvm_after) < 0)
                s->kvm = kvm_unavailable("failed to query KVM statistics");
}

void balloon_controller_step_actual(BalloonController *c) {
        BalloonStep *s = c->current_step;

        if (!s || s->done)
                return;
        if (s->actual_start_bytes == BALLOON_SIZE_UNKNOWN)
                s->actual_start_bytes = c->actual;
        s->actual_bytes = c->actual;
        if (!s->reached && balloon_reached(c->actual, s->target_bytes)) {
                s->reached = true;
                s->reached_usec = balloon_now_usec(CLOCK_MONOTONIC) - s->start_monotonic_usec;
                balloon_controller_step_finish(c, s);
        }
}

static void on_step_target(QmpClient *q, int error, json_object *result, const char *error_class,
                           const char *error_desc, void *userdata) {
        _cleanup_(balloon_request_freep) BalloonRequest *req = userdata;
        BalloonController *c = req->controller;
        BalloonStepSlot *s;

        if (!c || error >= 0)
                return;
        s = find_slot(c, req->step_id);
        if (s) {
                _cleanup_free_ char *e = NULL;
                (void) asprintf(&e, "balloon command failed: %s", error_desc ?: strerror(-error));
                (void) free_and_strdup(&s->step.error, e);
                balloon_controller_changed(c);
        }
}

/* ---- schedules -------------------------------------------------------------------------------- */

void balloon_controller_schedule_stop(BalloonController *c) {
        if (c->schedule_active)
                balloon_controller_changed(c);
        c->schedule_active = false;
        c->schedule_timer = sd_event_source_disable_unref(c->schedule_timer);
        if (c->current_step)
                balloon_controller_step_finish(c, c->current_step);
}

static int schedule_on_timer(sd_event_source *src, uint64_t usec, void *userdata);

static int schedule_arm(BalloonController *c) {
        uint64_t when = balloon_schedule_step_start(&c->schedule, c->schedule_start, c->schedule_next);
        int r;

        if (c->schedule_timer)
                return sd_event_source_set_time(c->schedule_timer, when) < 0 ? -EIO :
                       sd_event_source_set_enabled(c->schedule_timer, SD_EVENT_ONESHOT);
        r = sd_event_add_time(c->event, &c->schedule_timer, CLOCK_MONOTONIC, when, 0, schedule_on_timer, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(c->schedule_timer, "balloon-schedule");
        return 0;
}

static int schedule_on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        BalloonController *c = userdata;
        BalloonRequest *req;
        BalloonStep *s;
        int r;

        if (c->current_step)
                balloon_controller_step_finish(c, c->current_step);
        if (!balloon_controller_usable(c) || !c->schedule_active)
                return 0;
        if (c->schedule_next >= c->schedule.count) {
                log_info("Guest %s: balloon schedule (%s, %u steps) finished.", c->name,
                         balloon_schedule_mode_to_string(c->schedule.mode), c->schedule.count);
                c->schedule_active = false;
                balloon_controller_changed(c);
                return 0;
        }

        s = balloon_controller_new_step(c);
        if (!s) {
                log_oom();
                c->schedule_active = false;
                return 0;
        }
        s->index = c->schedule_next;
        s->target_bytes = balloon_schedule_target(&c->schedule, c->schedule_next);
        s->start_realtime_usec = balloon_now_usec(CLOCK_REALTIME);
        s->start_monotonic_usec = balloon_now_usec(CLOCK_MONOTONIC);
        s->actual_start_bytes = c->actual_known ? c->actual : BALLOON_SIZE_UNKNOWN;
        s->actual_bytes = s->actual_start_bytes;
        c->current_step = s;
        c->target = s->target_bytes;
        c->target_set = true;

        /* QEMU handles commands in order: the counters are read before the balloon moves. */
        if (query_kvm(c, s, on_kvm_before) < 0)
                s->kvm = kvm_unavailable("failed to query KVM statistics");
        req = balloon_request_new(c);
        if (req)
                req->step_id = s->id;
        if (balloon_request_execute(req, "balloon", balloon_command_args(s->target_bytes), on_step_target) < 0)
                (void) free_and_strdup(&s->error, "failed to send the balloon command");

        c->schedule_next++;
        r = schedule_arm(c);
        if (r < 0) {
                log_error_errno(r, "Guest %s: failed to arm the balloon schedule, stopping it: %m", c->name);
                c->schedule_active = false;
        }
        if (c->actual_known && balloon_reached(c->actual, s->target_bytes)) {
                s->reached = true;
                s->reached_usec = 0;
                balloon_controller_step_finish(c, s);
        }
        balloon_controller_rearm_poll(c);
        balloon_controller_changed(c);
        return 0;
}

int balloon_controller_schedule_start(BalloonController *c, const BalloonSchedule *sched,
                                      BalloonScheduleOrigin origin) {
        balloon_controller_schedule_stop(c);
        c->schedule = *sched;
        c->schedule_origin = origin;
        c->schedule_active = true;
        c->schedule_start = balloon_now_usec(CLOCK_MONOTONIC);
        c->schedule_start_realtime = balloon_now_usec(CLOCK_REALTIME);
        c->schedule_next = 0;
        balloon_schedule_interruption_done(&c->interrupted);    /* a new schedule replaces that report */
        balloon_controller_changed(c);
        log_info("Guest %s: balloon schedule started (%s): %s %" PRIu64 " → %" PRIu64 " bytes, %u steps, every %" PRIu64
                 " us.", c->name, balloon_schedule_origin_to_string(origin),
                 balloon_schedule_mode_to_string(sched->mode), sched->from_bytes, sched->to_bytes, sched->count,
                 sched->every_usec);
        return schedule_arm(c);
}

int balloon_controller_schedule_resume(BalloonController *c, const BalloonSchedule *sched, BalloonScheduleOrigin origin,
                                       uint64_t start_realtime, unsigned next) {
        uint64_t now_rt = balloon_now_usec(CLOCK_REALTIME), now_mono = balloon_now_usec(CLOCK_MONOTONIC);
        uint64_t ago = now_rt > start_realtime ? now_rt - start_realtime : 0;

        balloon_controller_schedule_stop(c);
        c->schedule = *sched;
        c->schedule_origin = origin;
        c->schedule_active = true;
        c->schedule_start = now_mono > ago ? now_mono - ago : 0;
        c->schedule_start_realtime = start_realtime;
        c->schedule_next = next;
        balloon_controller_changed(c);
        log_info("Guest %s: balloon schedule (%s, %s) resumed at step %u of %u.", c->name,
                 balloon_schedule_origin_to_string(origin), balloon_schedule_mode_to_string(sched->mode), next,
                 sched->count);
        return schedule_arm(c);
}

int balloon_controller_set_schedule(BalloonController *c, const BalloonGuestConfig *guest,
                                    const BalloonSchedule *schedule, BalloonErrorInfo *ret_error) {
        const char *field = NULL, *reason = NULL;
        int r;

        r = balloon_controller_check_running(c, guest, ret_error);
        if (r != 0)
                return r;
        r = balloon_controller_check_target(c, "from", schedule->from_bytes, ret_error);
        if (r != 0)
                return r;
        r = balloon_controller_check_target(c, "to", schedule->to_bytes, ret_error);
        if (r != 0)
                return r;
        if (balloon_schedule_validate(schedule, &field, &reason) < 0) {
                if (ret_error) {
                        balloon_error_info_done(ret_error);
                        *ret_error = (BalloonErrorInfo) {
                                .error = BALLOON_ERROR_INVALID_SCHEDULE,
                                .field = field,
                                .reason = reason ? strdup(reason) : NULL,
                        };
                }
                return BALLOON_ERROR_INVALID_SCHEDULE;
        }
        return balloon_controller_schedule_start(c, schedule, BALLOON_SCHEDULE_ORIGIN_API);
}

int balloon_controller_cancel_schedule(BalloonController *c, const BalloonGuestConfig *guest, const char *requester,
                                       BalloonErrorInfo *ret_error) {
        int r;

        r = balloon_controller_check_running(c, guest, ret_error);
        if (r != 0)
                return r;
        if (!c->schedule_active) {
                if (ret_error) {
                        balloon_error_info_done(ret_error);
                        ret_error->error = BALLOON_ERROR_NO_SCHEDULE;
                }
                return BALLOON_ERROR_NO_SCHEDULE;
        }
        log_info("Guest %s: balloon schedule cancelled over %s after %u of %u steps.", c->name, strna(requester),
                 c->schedule_next, c->schedule.count);
        balloon_controller_schedule_stop(c);
        return 0;
}
