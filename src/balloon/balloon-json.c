/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The JSON form of the balloon controller's records (balloon-json.h). */
#include "balloon/balloon-json.h"
#include "basic/json-util.h"

static json_object *kvm_unavailable(const char *reason) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o || json_add_bool(o, "available", false) < 0 || json_add_string(o, "reason", reason) < 0)
                return NULL;
        return TAKE_PTR(o);
}

int balloon_step_to_json(const BalloonStep *s, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o || json_add_uint(o, "index", s->index) < 0 || json_add_uint(o, "realtimeUSec", s->start_realtime_usec) < 0 ||
            json_add_uint(o, "targetBytes", s->target_bytes) < 0 ||
            (s->actual_start_bytes != BALLOON_SIZE_UNKNOWN && json_add_uint(o, "actualStartBytes", s->actual_start_bytes) < 0) ||
            (s->actual_bytes != BALLOON_SIZE_UNKNOWN && json_add_uint(o, "actualBytes", s->actual_bytes) < 0) ||
            json_add_bool(o, "reached", s->reached) < 0 || json_add_bool(o, "finished", s->done) < 0 ||
            (s->reached && json_add_uint(o, "timeToReachUSec", s->reached_usec) < 0) ||
            json_add_string(o, "error", s->error) < 0)
                return -ENOMEM;
        if (json_add(o, "kvm", s->kvm ? json_object_get(s->kvm)
                                      : kvm_unavailable(s->done ? "pending" : "the step is in progress")) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int balloon_decision_to_json(const BalloonDecisionRecord *d, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *h = json_object_new_object();

        if (!o || !h || json_add_uint(o, "realtimeUSec", d->realtime_usec) < 0 ||
            json_add_string(o, "action", balloon_policy_action_to_string(d->decision.action)) < 0 ||
            json_add_string(o, "reason", balloon_policy_reason_to_string(d->decision.reason)) < 0 ||
            json_add_uint(o, "targetBytes", d->decision.target_bytes) < 0 ||
            json_add_uint(o, "actualBytes", d->input.actual_bytes) < 0 ||
            json_add_uint(o, "floorBytes", d->input.floor_bytes) < 0 ||
            json_add_uint(o, "ceilingBytes", d->input.ceiling_bytes) < 0 ||
            (d->input.available_bytes != BALLOON_POLICY_UNKNOWN &&
             json_add_uint(o, "guestAvailableBytes", d->input.available_bytes) < 0) ||
            json_add_string(h, "state", balloon_host_state_to_string(d->result.state)) < 0 ||
            json_add_uint(h, "memTotalBytes", d->host.mem_total) < 0 ||
            json_add_uint(h, "memAvailableBytes", d->host.mem_available) < 0 ||
            json_add_uint(h, "committedASBytes", d->host.committed_as) < 0 ||
            json_add_uint(h, "commitLimitBytes", d->host.commit_limit) < 0 ||
            json_add_bool(h, "availableLow", d->result.available_low) < 0 ||
            json_add_bool(h, "commitHigh", d->result.commit_high) < 0 ||
            json_add_bool(h, "relieved", d->result.relieved) < 0 ||
            json_add_uint(h, "needBytes", d->result.need_bytes) < 0 ||
            json_add_uint(h, "headroomBytes", d->result.headroom_bytes) < 0 || json_add(o, "host", TAKE_PTR(h)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

int balloon_status_to_json(const BalloonStatus *st, json_object *b) {
        json_object *s = NULL;
        int r;

        if (st->tracking) {
                if (json_add_uint(b, "targetBytes", st->target_bytes) < 0 ||
                    (st->actual_bytes != BALLOON_SIZE_UNKNOWN && json_add_uint(b, "actualBytes", st->actual_bytes) < 0))
                        return -ENOMEM;
                if (balloon_guest_stats_valid(&st->stats)) {
                        r = balloon_guest_stats_to_json(&st->stats, &s);
                        if (r < 0)
                                return r;
                        if (json_add(b, "guestStats", TAKE_PTR(s)) < 0)
                                return -ENOMEM;
                }
                if (st->schedule_active) {
                        r = balloon_schedule_to_json(&st->schedule, &s);
                        if (r < 0)
                                return r;
                        if (json_add_uint(s, "nextStep", st->schedule_next) < 0 ||
                            json_add_string(s, "origin", balloon_schedule_origin_to_string(st->schedule_origin)) < 0 ||
                            json_add(b, "schedule", s) < 0) {
                                json_object_put(s);
                                return -ENOMEM;
                        }
                }
        }
        if (st->interrupted) {
                r = balloon_schedule_to_json(&st->interrupted->schedule, &s);
                if (r < 0)
                        return r;
                if (json_add_uint(s, "nextStep", st->interrupted->next) < 0 ||
                    json_add_string(s, "origin", balloon_schedule_origin_to_string(st->interrupted->origin)) < 0 ||
                    json_add_uint(s, "interruptedRealtimeUSec", st->interrupted->realtime_usec) < 0 ||
                    json_add_string(s, "interruptedReason", st->interrupted->reason) < 0 ||
                    json_add(b, "scheduleInterrupted", s) < 0) {
                        json_object_put(s);
                        return -ENOMEM;
                }
        }
        if (st->last_decision) {
                r = balloon_decision_to_json(st->last_decision, &s);
                if (r < 0)
                        return r;
                if (json_add(b, "lastDecision", s) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int balloon_target_result_to_json(const char *name, const BalloonTargetResult *result, json_object **ret) {
        _cleanup_json_ json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "name", name) < 0 || json_add_uint(p, "targetBytes", result->target_bytes) < 0 ||
            (result->actual_bytes != BALLOON_SIZE_UNKNOWN && json_add_uint(p, "actualBytes", result->actual_bytes) < 0) ||
            json_add_bool(p, "reached", result->reached) < 0 || json_add_uint(p, "elapsedUSec", result->elapsed_usec) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(p);
        return 0;
}

static int step_to_json(const BalloonController *c, size_t i, json_object **ret) {
        return balloon_step_to_json(balloon_controller_get_step(c, i), ret);
}

static int decision_to_json(const BalloonController *c, size_t i, json_object **ret) {
        return balloon_decision_to_json(balloon_controller_get_decision(c, i), ret);
}

static int records_to_json(const BalloonController *c, size_t n,
                           int (*record_to_json)(const BalloonController *c, size_t i, json_object **ret),
                           json_object **ret) {
        _cleanup_json_ json_object *list = json_object_new_array();
        int r;

        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *o = NULL;

                r = record_to_json(c, i, &o);
                if (r < 0)
                        return r;
                if (json_object_array_add(list, o) < 0) {
                        json_object_put(o);
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(list);
        return 0;
}

int balloon_steps_to_json(const BalloonController *c, json_object **ret) {
        return records_to_json(c, balloon_controller_n_steps(c), step_to_json, ret);
}

int balloon_decisions_to_json(const BalloonController *c, json_object **ret) {
        return records_to_json(c, balloon_controller_n_decisions(c), decision_to_json, ret);
}

int balloon_info_to_json(const char *name, const char *state, const BalloonGuestConfig *cfg, bool policy,
                         const BalloonStatus *st, json_object **ret) {
        _cleanup_json_ json_object *b = json_object_new_object();
        int r;

        if (!b || json_add_string(b, "name", name) < 0 || json_add_string(b, "state", state) < 0 ||
            json_add_bool(b, "tracking", st->tracking) < 0 || json_add_uint(b, "memoryBytes", cfg->memory_bytes) < 0 ||
            json_add_uint(b, "floorBytes", cfg->floor_bytes) < 0 ||
            json_add_uint(b, "ceilingBytes", cfg->ceiling_bytes) < 0 || json_add_bool(b, "policy", policy) < 0 ||
            json_add_uint(b, "statsIntervalUSec", cfg->stats_interval_usec) < 0)
                return -ENOMEM;
        r = balloon_status_to_json(st, b);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(b);
        return 0;
}
