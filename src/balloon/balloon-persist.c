/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The record of a balloon controller as JSON text (balloon-persist.h), and what a restored record does when
 * the controller starts or stops: resume, or report the schedule interrupted. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>

#include "balloon/balloon-controller-private.h"
#include "balloon/balloon-persist.h"
#include "basic/json-util.h"
#include "basic/log.h"

#define RECORD_DEPTH_MAX 16
#define RECORD_STRING_MAX 4096U

/* ---- interruptions ---------------------------------------------------------------------------- */

void balloon_schedule_interruption_done(BalloonScheduleInterruption *i) {
        free(i->reason);
        *i = (BalloonScheduleInterruption) {};
}

int balloon_controller_interrupt(BalloonController *c, const BalloonSchedule *sched, unsigned next,
                                 BalloonScheduleOrigin origin, const char *reason) {
        char *copy = strdup(reason);

        if (!copy)
                return log_oom();
        balloon_schedule_interruption_done(&c->interrupted);
        c->interrupted = (BalloonScheduleInterruption) {
                .set = true,
                .schedule = *sched,
                .next = next,
                .origin = origin,
                .realtime_usec = balloon_now_usec(CLOCK_REALTIME),
                .reason = copy,
        };
        log_warning("Guest %s: the balloon schedule (%s, %s) was interrupted before step %u of %u: %s.", c->name,
                    balloon_schedule_origin_to_string(origin), balloon_schedule_mode_to_string(sched->mode), next,
                    sched->count, reason);
        balloon_controller_changed(c);
        return 0;
}

static bool schedule_equal(const BalloonSchedule *a, const BalloonSchedule *b) {
        return a->mode == b->mode && a->from_bytes == b->from_bytes && a->to_bytes == b->to_bytes &&
               a->every_usec == b->every_usec && a->count == b->count;
}

/* Resumes rs's schedule at the step due now, or reports it interrupted. */
static void schedule_restore(BalloonController *c, const BalloonRestored *rs) {
        uint64_t now_rt = balloon_now_usec(CLOCK_REALTIME);
        unsigned next = rs->schedule_next;
        int due, r;

        due = balloon_schedule_step_at(&rs->schedule, rs->schedule_start_realtime, now_rt);
        if (due >= 0 && (unsigned) due > next) {
                if ((unsigned) due >= rs->schedule.count) {
                        (void) balloon_controller_interrupt(c, &rs->schedule, next, rs->schedule_origin,
                                                            "its remaining steps fell due while memvisord was not "
                                                            "running");
                        return;
                }
                log_notice("Guest %s: %u balloon schedule step(s) fell due while memvisord was not running, "
                           "skipping them.", c->name, (unsigned) due - next);
                next = (unsigned) due;
        }
        r = balloon_controller_schedule_resume(c, &rs->schedule, rs->schedule_origin, rs->schedule_start_realtime, next);
        if (r < 0) {
                log_error_errno(r, "Guest %s: failed to resume the balloon schedule: %m", c->name);
                c->schedule_active = false;
                (void) balloon_controller_interrupt(c, &rs->schedule, next, rs->schedule_origin,
                                                    "it could not be resumed");
        }
}

bool balloon_controller_restore_apply(BalloonController *c, const BalloonGuestConfig *guest) {
        _cleanup_free_ BalloonRestored *rs = NULL;
        bool same;

        if (!c->restored)
                return false;
        rs = TAKE_PTR(c->restore);
        c->restored = false;
        if (!rs)
                return false;

        same = guest && guest->pid > 0 && rs->pid == guest->pid && rs->starttime == guest->starttime;
        if (same && rs->target_set) {
                c->target = rs->target;
                c->target_set = true;
                log_info("Guest %s: balloon target %" PRIu64 " bytes restored from its record.", c->name, rs->target);
        }
        if (rs->schedule_active) {
                if (!same)
                        (void) balloon_controller_interrupt(c, &rs->schedule, rs->schedule_next, rs->schedule_origin,
                                                            guest ? "the guest's QEMU was started anew while "
                                                                    "memvisord was not running"
                                                                  : "the guest stopped while memvisord was not "
                                                                    "running");
                else if (rs->schedule_origin == BALLOON_SCHEDULE_ORIGIN_DEFINITION &&
                         !schedule_equal(&rs->schedule, &guest->schedule))
                        (void) balloon_controller_interrupt(c, &rs->schedule, rs->schedule_next, rs->schedule_origin,
                                                            "the guest's definition has another schedule now");
                else
                        schedule_restore(c, rs);
        }
        balloon_controller_changed(c);
        return same;
}

/* ---- saving ----------------------------------------------------------------------------------- */

static int schedule_to_json(const BalloonSchedule *s, unsigned next, BalloonScheduleOrigin origin,
                            json_object **ret) {
        _cleanup_json_ json_object *o = NULL;
        int r;

        r = balloon_schedule_to_json(s, &o);
        if (r < 0)
                return r;
        if (json_add_uint(o, "nextStep", next) < 0 ||
            json_add_string(o, "origin", balloon_schedule_origin_to_string(origin)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

static int step_save(const BalloonStep *s, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o || json_add_uint(o, "index", s->index) < 0 || json_add_uint(o, "id", s->id) < 0 ||
            json_add_uint(o, "realtimeUSec", s->start_realtime_usec) < 0 ||
            json_add_uint(o, "targetBytes", s->target_bytes) < 0 ||
            (s->actual_start_bytes != BALLOON_SIZE_UNKNOWN && json_add_uint(o, "actualStartBytes", s->actual_start_bytes) < 0) ||
            (s->actual_bytes != BALLOON_SIZE_UNKNOWN && json_add_uint(o, "actualBytes", s->actual_bytes) < 0) ||
            json_add_bool(o, "reached", s->reached) < 0 || json_add_bool(o, "finished", s->done) < 0 ||
            json_add_uint(o, "timeToReachUSec", s->reached_usec) < 0 || json_add_string(o, "error", s->error) < 0 ||
            (s->kvm && json_add(o, "kvm", json_object_get(s->kvm)) < 0))
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

static int decision_save(const BalloonDecisionRecord *d, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *h = json_object_new_object(),
                                   *res = json_object_new_object();

        if (!o || !h || !res || json_add_uint(o, "realtimeUSec", d->realtime_usec) < 0 ||
            json_add_string(o, "action", balloon_policy_action_to_string(d->decision.action)) < 0 ||
            json_add_string(o, "reason", balloon_policy_reason_to_string(d->decision.reason)) < 0 ||
            json_add_uint(o, "targetBytes", d->decision.target_bytes) < 0 ||
            json_add_uint(o, "actualBytes", d->input.actual_bytes) < 0 ||
            json_add_uint(o, "floorBytes", d->input.floor_bytes) < 0 ||
            json_add_uint(o, "ceilingBytes", d->input.ceiling_bytes) < 0 ||
            (d->input.available_bytes != BALLOON_POLICY_UNKNOWN &&
             json_add_uint(o, "guestAvailableBytes", d->input.available_bytes) < 0) ||
            json_add_uint(h, "memTotal", d->host.mem_total) < 0 || json_add_uint(h, "memFree", d->host.mem_free) < 0 ||
            json_add_uint(h, "memAvailable", d->host.mem_available) < 0 ||
            json_add_uint(h, "committedAS", d->host.committed_as) < 0 ||
            json_add_uint(h, "commitLimit", d->host.commit_limit) < 0 ||
            json_add_uint(h, "swapTotal", d->host.swap_total) < 0 || json_add_uint(h, "swapFree", d->host.swap_free) < 0 ||
            json_add_string(res, "state", balloon_host_state_to_string(d->result.state)) < 0 ||
            json_add_bool(res, "availableLow", d->result.available_low) < 0 ||
            json_add_bool(res, "commitHigh", d->result.commit_high) < 0 ||
            json_add_bool(res, "relieved", d->result.relieved) < 0 ||
            json_add_uint(res, "needBytes", d->result.need_bytes) < 0 ||
            json_add_uint(res, "headroomBytes", d->result.headroom_bytes) < 0 || json_add(o, "host", TAKE_PTR(h)) < 0 ||
            json_add(o, "result", TAKE_PTR(res)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

static int array_add(json_object *a, json_object *o) {
        if (json_object_array_add(a, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return 0;
}

int balloon_record_save(const BalloonController *c, char **ret_text, size_t *ret_size) {
        _cleanup_json_ json_object *o = json_object_new_object(), *steps = json_object_new_array(),
                                   *decisions = json_object_new_array(), *x = NULL;
        BalloonRestored view = {};
        const char *text;
        size_t len;
        int r;

        if (!o || !steps || !decisions)
                return -ENOMEM;

        /* What runs now, or what a record not applied yet said about it. */
        if (c->tracking)
                view = (BalloonRestored) {
                        .pid = c->config.pid,
                        .starttime = c->config.starttime,
                        .target_set = c->target_set,
                        .target = c->target,
                        .schedule_active = c->schedule_active,
                        .schedule = c->schedule,
                        .schedule_next = c->schedule_next,
                        .schedule_origin = c->schedule_origin,
                        .schedule_start_realtime = c->schedule_start_realtime,
                };
        else if (c->restored && c->restore)
                view = *c->restore;

        if (json_add_int(o, "version", BALLOON_RECORD_VERSION) < 0 || json_add_string(o, "name", c->name) < 0)
                return -ENOMEM;
        if (view.pid > 0 &&
            (json_add_int(o, "pid", view.pid) < 0 || json_add_uint(o, "starttime", view.starttime) < 0 ||
             (view.target_set && json_add_uint(o, "targetBytes", view.target) < 0) ||
             (c->tracking && c->actual_known && json_add_uint(o, "actualBytes", c->actual) < 0)))
                return -ENOMEM;
        if (view.pid > 0 && view.schedule_active) {
                r = schedule_to_json(&view.schedule, view.schedule_next, view.schedule_origin, &x);
                if (r < 0)
                        return r;
                if (json_add_uint(x, "startRealtimeUSec", view.schedule_start_realtime) < 0 ||
                    json_add(o, "schedule", TAKE_PTR(x)) < 0)
                        return -ENOMEM;
        }
        if (c->interrupted.set) {
                r = schedule_to_json(&c->interrupted.schedule, c->interrupted.next, c->interrupted.origin, &x);
                if (r < 0)
                        return r;
                if (json_add_uint(x, "realtimeUSec", c->interrupted.realtime_usec) < 0 ||
                    json_add_string(x, "reason", c->interrupted.reason) < 0 || json_add(o, "interrupted", TAKE_PTR(x)) < 0)
                        return -ENOMEM;
        }
        if (json_add_uint(o, "stepsTotal", c->steps_total) < 0 ||
            json_add_uint(o, "stepsReachedTotal", c->steps_reached_total) < 0 ||
            json_add_uint(o, "stepsReachedUSec", c->steps_reached_usec) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < balloon_controller_n_steps(c); i++) {
                r = step_save(balloon_controller_get_step(c, i), &x);
                if (r < 0 || (r = array_add(steps, TAKE_PTR(x))) < 0)
                        return r;
        }
        for (size_t i = 0; i < balloon_controller_n_decisions(c); i++) {
                r = decision_save(balloon_controller_get_decision(c, i), &x);
                if (r < 0 || (r = array_add(decisions, TAKE_PTR(x))) < 0)
                        return r;
        }
        if (json_add(o, "steps", TAKE_PTR(steps)) < 0 || json_add(o, "decisions", TAKE_PTR(decisions)) < 0)
                return -ENOMEM;

        text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!text)
                return -ENOMEM;
        *ret_text = strndup(text, len);
        if (!*ret_text)
                return -ENOMEM;
        if (ret_size)
                *ret_size = len;
        return 0;
}

/* ---- loading ---------------------------------------------------------------------------------- */

/* A record being read: what goes into the controller once all of it was read. */
typedef struct Loading {
        const char *reason;
        BalloonRestored restore;
        bool have_instance;
        BalloonScheduleInterruption interrupted;
        uint64_t steps_total, steps_reached_total, steps_reached_usec;
        BalloonStepSlot *steps;         /* BALLOON_STEPS_MAX */
        size_t n_steps;
        BalloonDecisionRecord *decisions;       /* BALLOON_DECISIONS_MAX */
        size_t n_decisions;
} Loading;

static void loading_done(Loading *l) {
        for (size_t i = 0; l->steps && i < l->n_steps; i++) {
                if (l->steps[i].step.kvm)
                        json_object_put(l->steps[i].step.kvm);
                free(l->steps[i].step.error);
        }
        free(l->steps);
        free(l->decisions);
        balloon_schedule_interruption_done(&l->interrupted);
}

/* Reads key of o as an unsigned integer into *ret; absent: def when optional. False (l->reason) otherwise. */
static bool get_u64(Loading *l, json_object *o, const char *key, bool optional, uint64_t def, uint64_t *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v)) {
                if (!optional) {
                        l->reason = "a required field is missing";
                        return false;
                }
                *ret = def;
                return true;
        }
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0) {
                l->reason = "a field is not a non-negative integer";
                return false;
        }
        *ret = (uint64_t) json_object_get_int64(v);
        return true;
}

static bool get_unsigned(Loading *l, json_object *o, const char *key, unsigned *ret) {
        uint64_t v;

        if (!get_u64(l, o, key, false, 0, &v))
                return false;
        if (v > UINT_MAX) {
                l->reason = "a count is out of range";
                return false;
        }
        *ret = (unsigned) v;
        return true;
}

static bool get_bool(Loading *l, json_object *o, const char *key, bool *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean)) {
                l->reason = "a flag is missing or not a boolean";
                return false;
        }
        *ret = json_object_get_boolean(v);
        return true;
}

/* A string (NULL when absent and optional); bounded. */
static bool get_string(Loading *l, json_object *o, const char *key, bool optional, const char **ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v)) {
                *ret = NULL;
                if (!optional)
                        l->reason = "a required string is missing";
                return optional;
        }
        if (!json_object_is_type(v, json_type_string) || (size_t) json_object_get_string_len(v) > RECORD_STRING_MAX ||
            strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v)) {
                l->reason = "a string is invalid or too long";
                return false;
        }
        *ret = json_object_get_string(v);
        return true;
}

static json_object *get_object(Loading *l, json_object *o, const char *key, bool optional) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v)) {
                if (!optional)
                        l->reason = "a required object is missing";
                return NULL;
        }
        if (!json_object_is_type(v, json_type_object)) {
                l->reason = "a field is not an object";
                return NULL;
        }
        return v;
}

static bool schedule_load(Loading *l, json_object *o, BalloonSchedule *ret, unsigned *ret_next,
                          BalloonScheduleOrigin *ret_origin) {
        const char *mode, *origin, *field, *why;
        BalloonSchedule s = {};
        unsigned next;

        if (!get_string(l, o, "mode", false, &mode) || !get_string(l, o, "origin", false, &origin) ||
            !get_u64(l, o, "fromBytes", false, 0, &s.from_bytes) || !get_u64(l, o, "toBytes", false, 0, &s.to_bytes) ||
            !get_u64(l, o, "everyUSec", false, 0, &s.every_usec) || !get_unsigned(l, o, "count", &s.count) ||
            !get_unsigned(l, o, "nextStep", &next))
                return false;
        s.mode = balloon_schedule_mode_from_string(mode);
        *ret_origin = balloon_schedule_origin_from_string(origin);
        if (s.mode < 0 || *ret_origin < 0 || balloon_schedule_validate(&s, &field, &why) < 0 || next > s.count) {
                l->reason = "a schedule is invalid";
                return false;
        }
        *ret = s;
        *ret_next = next;
        return true;
}

static bool step_load(Loading *l, json_object *o, BalloonStepSlot *slot) {
        BalloonStep *s = &slot->step;
        const char *error;
        uint64_t index;
        json_object *kvm;

        *slot = (BalloonStepSlot) {};
        if (!json_object_is_type(o, json_type_object)) {
                l->reason = "a step is not an object";
                return false;
        }
        if (!get_u64(l, o, "index", false, 0, &index) || !get_u64(l, o, "id", false, 0, &s->id) ||
            !get_u64(l, o, "realtimeUSec", false, 0, &s->start_realtime_usec) ||
            !get_u64(l, o, "targetBytes", false, 0, &s->target_bytes) ||
            !get_u64(l, o, "actualStartBytes", true, BALLOON_SIZE_UNKNOWN, &s->actual_start_bytes) ||
            !get_u64(l, o, "actualBytes", true, BALLOON_SIZE_UNKNOWN, &s->actual_bytes) ||
            !get_bool(l, o, "reached", &s->reached) || !get_bool(l, o, "finished", &s->done) ||
            !get_u64(l, o, "timeToReachUSec", false, 0, &s->reached_usec) || !get_string(l, o, "error", true, &error))
                return false;
        if (index >= BALLOON_SCHEDULE_MAX_COUNT) {
                l->reason = "a step index is out of range";
                return false;
        }
        s->index = (unsigned) index;
        kvm = get_object(l, o, "kvm", true);
        if (!kvm && json_object_object_get_ex(o, "kvm", NULL))
                return false;
        if (error) {
                s->error = strdup(error);
                if (!s->error)
                        return false;
        }
        /* A step the restart cut short is over, without its "after" counters. */
        if (!s->done) {
                s->done = true;
                if (!s->error) {
                        s->error = strdup("cut short: memvisord restarted during the step");
                        if (!s->error)
                                return false;
                }
        }
        s->kvm = kvm ? json_object_get(kvm) : NULL;
        if (!s->kvm) {
                _cleanup_json_ json_object *u = json_object_new_object();

                if (!u || json_add_bool(u, "available", false) < 0 ||
                    json_add_string(u, "reason", "memvisord restarted before the step's counters were read") < 0)
                        return false;
                s->kvm = TAKE_PTR(u);
        }
        return true;
}

static bool decision_load(Loading *l, json_object *o, BalloonDecisionRecord *d) {
        const char *action, *reason, *state;
        json_object *h, *res;

        *d = (BalloonDecisionRecord) {};
        if (!json_object_is_type(o, json_type_object)) {
                l->reason = "a decision is not an object";
                return false;
        }
        h = get_object(l, o, "host", false);
        res = get_object(l, o, "result", false);
        if (!h || !res || !get_u64(l, o, "realtimeUSec", false, 0, &d->realtime_usec) ||
            !get_string(l, o, "action", false, &action) || !get_string(l, o, "reason", false, &reason) ||
            !get_u64(l, o, "targetBytes", false, 0, &d->decision.target_bytes) ||
            !get_u64(l, o, "actualBytes", false, 0, &d->input.actual_bytes) ||
            !get_u64(l, o, "floorBytes", false, 0, &d->input.floor_bytes) ||
            !get_u64(l, o, "ceilingBytes", false, 0, &d->input.ceiling_bytes) ||
            !get_u64(l, o, "guestAvailableBytes", true, BALLOON_POLICY_UNKNOWN, &d->input.available_bytes) ||
            !get_u64(l, h, "memTotal", false, 0, &d->host.mem_total) ||
            !get_u64(l, h, "memFree", false, 0, &d->host.mem_free) ||
            !get_u64(l, h, "memAvailable", false, 0, &d->host.mem_available) ||
            !get_u64(l, h, "committedAS", false, 0, &d->host.committed_as) ||
            !get_u64(l, h, "commitLimit", false, 0, &d->host.commit_limit) ||
            !get_u64(l, h, "swapTotal", false, 0, &d->host.swap_total) ||
            !get_u64(l, h, "swapFree", false, 0, &d->host.swap_free) || !get_string(l, res, "state", false, &state) ||
            !get_bool(l, res, "availableLow", &d->result.available_low) ||
            !get_bool(l, res, "commitHigh", &d->result.commit_high) ||
            !get_bool(l, res, "relieved", &d->result.relieved) ||
            !get_u64(l, res, "needBytes", false, 0, &d->result.need_bytes) ||
            !get_u64(l, res, "headroomBytes", false, 0, &d->result.headroom_bytes))
                return false;
        d->decision.action = balloon_policy_action_from_string(action);
        d->decision.reason = balloon_policy_reason_from_string(reason);
        d->result.state = balloon_host_state_from_string(state);
        if (d->decision.action < 0 || d->decision.reason < 0 || d->result.state < 0) {
                l->reason = "a decision names an unknown action, reason or host state";
                return false;
        }
        return true;
}

/* Reads key's array of records into the n newest of at most max slots of size bytes each. */
static bool records_load(Loading *l, json_object *o, const char *key, size_t max, void *slots, size_t size,
                         bool (*load)(Loading *l, json_object *o, void *slot), size_t *ret_n) {
        json_object *a;
        size_t n, first;

        if (!json_object_object_get_ex(o, key, &a) || !json_object_is_type(a, json_type_array)) {
                l->reason = "the steps or decisions are missing or not an array";
                return false;
        }
        n = json_object_array_length(a);
        first = n > max ? n - max : 0;
        *ret_n = 0;
        for (size_t i = first; i < n; i++) {
                if (!load(l, json_object_array_get_idx(a, i), (char *) slots + (i - first) * size)) {
                        /* a slot that failed half way may hold something to free */
                        (*ret_n)++;
                        return false;
                }
                (*ret_n)++;
        }
        return true;
}

static bool step_load_slot(Loading *l, json_object *o, void *slot) {
        return step_load(l, o, slot);
}

static bool decision_load_slot(Loading *l, json_object *o, void *slot) {
        return decision_load(l, o, slot);
}

static bool record_load(Loading *l, json_object *o, const char *name) {
        const char *n, *reason;
        json_object *x;
        uint64_t version, pid;

        if (!json_object_is_type(o, json_type_object)) {
                l->reason = "not a JSON object";
                return false;
        }
        if (!get_u64(l, o, "version", false, 0, &version) || !get_string(l, o, "name", false, &n))
                return false;
        if (version != BALLOON_RECORD_VERSION) {
                l->reason = "an unknown version";
                return false;
        }
        if (!streq(n, name)) {
                l->reason = "the record is of another guest";
                return false;
        }
        if (!get_u64(l, o, "pid", true, 0, &pid))
                return false;
        if (pid > INT32_MAX) {
                l->reason = "the pid is out of range";
                return false;
        }
        l->restore.pid = (pid_t) pid;
        if (pid > 0) {
                l->have_instance = true;
                if (!get_u64(l, o, "starttime", false, 0, &l->restore.starttime) ||
                    !get_u64(l, o, "targetBytes", true, UINT64_MAX, &l->restore.target))
                        return false;
                l->restore.target_set = l->restore.target != UINT64_MAX;
                x = get_object(l, o, "schedule", true);
                if (!x && json_object_object_get_ex(o, "schedule", NULL))
                        return false;
                if (x) {
                        if (!schedule_load(l, x, &l->restore.schedule, &l->restore.schedule_next,
                                           &l->restore.schedule_origin) ||
                            !get_u64(l, x, "startRealtimeUSec", false, 0, &l->restore.schedule_start_realtime))
                                return false;
                        l->restore.schedule_active = true;
                }
        }
        x = get_object(l, o, "interrupted", true);
        if (!x && json_object_object_get_ex(o, "interrupted", NULL))
                return false;
        if (x) {
                if (!schedule_load(l, x, &l->interrupted.schedule, &l->interrupted.next, &l->interrupted.origin) ||
                    !get_u64(l, x, "realtimeUSec", false, 0, &l->interrupted.realtime_usec) ||
                    !get_string(l, x, "reason", false, &reason))
                        return false;
                l->interrupted.reason = strdup(reason);
                if (!l->interrupted.reason)
                        return false;
                l->interrupted.set = true;
        }
        if (!get_u64(l, o, "stepsTotal", false, 0, &l->steps_total) ||
            !get_u64(l, o, "stepsReachedTotal", false, 0, &l->steps_reached_total) ||
            !get_u64(l, o, "stepsReachedUSec", false, 0, &l->steps_reached_usec))
                return false;
        return records_load(l, o, "steps", BALLOON_STEPS_MAX, l->steps, sizeof(BalloonStepSlot), step_load_slot,
                            &l->n_steps) &&
               records_load(l, o, "decisions", BALLOON_DECISIONS_MAX, l->decisions, sizeof(BalloonDecisionRecord),
                            decision_load_slot, &l->n_decisions);
}

int balloon_record_load(BalloonController *c, const char *text, size_t size, const char **ret_reason) {
        _cleanup_(loading_done) Loading l = {};
        _cleanup_json_ json_object *o = NULL;
        json_tokener *tok;
        bool ok;

        if (c->tracking || c->n_steps > 0 || c->n_decisions > 0 || c->restored)
                return -EBUSY;
        if (size > BALLOON_RECORD_SIZE_MAX) {
                if (ret_reason)
                        *ret_reason = "the record is too large";
                return -E2BIG;
        }
        if (memchr(text, 0, size)) {
                if (ret_reason)
                        *ret_reason = "the record contains a NUL byte";
                return -EBADMSG;
        }
        tok = json_tokener_new_ex(RECORD_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, text, (int) size);
        ok = o && json_tokener_get_error(tok) == json_tokener_success &&
             json_tokener_get_parse_end(tok) == size;
        json_tokener_free(tok);
        if (!ok) {
                if (ret_reason)
                        *ret_reason = "not valid JSON";
                return -EBADMSG;
        }

        l.steps = calloc(BALLOON_STEPS_MAX, sizeof(BalloonStepSlot));
        l.decisions = calloc(BALLOON_DECISIONS_MAX, sizeof(BalloonDecisionRecord));
        if (!l.steps || !l.decisions)
                return -ENOMEM;
        if (!record_load(&l, o, c->name)) {
                if (!l.reason)
                        return -ENOMEM;
                if (ret_reason)
                        *ret_reason = l.reason;
                return -EBADMSG;
        }

        if (l.have_instance) {
                c->restore = malloc(sizeof(BalloonRestored));
                if (!c->restore)
                        return -ENOMEM;
                *c->restore = l.restore;
                c->restored = true;
        }
        c->interrupted = l.interrupted;
        l.interrupted = (BalloonScheduleInterruption) {};
        c->steps_total = MAX(l.steps_total, l.n_steps > 0 ? l.steps[l.n_steps - 1].step.id : 0);
        c->steps_reached_total = l.steps_reached_total;
        c->steps_reached_usec = l.steps_reached_usec;
        if (l.n_steps > 0) {
                c->steps = TAKE_PTR(l.steps);
                c->n_steps = l.n_steps;
                c->steps_head = 0;
        }
        l.n_steps = 0;
        if (l.n_decisions > 0) {
                c->decisions = TAKE_PTR(l.decisions);
                c->n_decisions = l.n_decisions;
                c->decisions_head = 0;
        }
        return 0;
}
