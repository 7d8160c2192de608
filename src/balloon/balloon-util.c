/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "balloon/balloon-util.h"
#include "basic/json-util.h"
#include "basic/parse.h"

#define MIB (UINT64_C(1) << 20)

static const char *const balloon_target_check_table[_BALLOON_TARGET_CHECK_MAX] = {
        [BALLOON_TARGET_OK] = "ok",
        [BALLOON_TARGET_ZERO] = "zero",
        [BALLOON_TARGET_BELOW_FLOOR] = "below-floor",
        [BALLOON_TARGET_ABOVE_MEMORY] = "above-memory",
};
DEFINE_STRING_TABLE(balloon_target_check, BalloonTargetCheck, _BALLOON_TARGET_CHECK_MAX);

static const char *const balloon_schedule_mode_table[_BALLOON_SCHEDULE_MODE_MAX] = {
        [BALLOON_SCHEDULE_NONE] = "none",
        [BALLOON_SCHEDULE_OSCILLATE] = "oscillate",
        [BALLOON_SCHEDULE_RAMP] = "ramp",
};
DEFINE_STRING_TABLE(balloon_schedule_mode, BalloonScheduleMode, _BALLOON_SCHEDULE_MODE_MAX);

static uint64_t stat_value(json_object *stats, const char *key) {
        json_object *v;
        int64_t i;

        if (!json_object_object_get_ex(stats, key, &v) || !json_object_is_type(v, json_type_int))
                return BALLOON_STAT_UNSET;
        i = json_object_get_int64(v);
        return i < 0 ? BALLOON_STAT_UNSET : (uint64_t) i;
}

int balloon_guest_stats_parse(json_object *reply, BalloonGuestStats *ret) {
        json_object *stats, *lu;
        uint64_t last = 0;

        if (!json_object_is_type(reply, json_type_object) || !json_object_object_get_ex(reply, "stats", &stats) ||
            !json_object_is_type(stats, json_type_object))
                return -EINVAL;
        if (json_object_object_get_ex(reply, "last-update", &lu) && json_object_is_type(lu, json_type_int) &&
            json_object_get_int64(lu) > 0)
                last = (uint64_t) json_object_get_int64(lu);

        *ret = (BalloonGuestStats) {
                .free_bytes = stat_value(stats, "stat-free-memory"),
                .available_bytes = stat_value(stats, "stat-available-memory"),
                .total_bytes = stat_value(stats, "stat-total-memory"),
                .disk_caches_bytes = stat_value(stats, "stat-disk-caches"),
                .swap_in_bytes = stat_value(stats, "stat-swap-in"),
                .swap_out_bytes = stat_value(stats, "stat-swap-out"),
                .major_faults = stat_value(stats, "stat-major-faults"),
                .minor_faults = stat_value(stats, "stat-minor-faults"),
                .last_update_sec = last,
        };
        return 0;
}

bool balloon_guest_stats_valid(const BalloonGuestStats *s) {
        return s->last_update_sec > 0;
}

static int add_stat(json_object *o, const char *key, uint64_t v) {
        if (v == BALLOON_STAT_UNSET)
                return 0;
        return json_add_uint(o, key, v);
}

int balloon_guest_stats_to_json(const BalloonGuestStats *s, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        if (add_stat(o, "freeBytes", s->free_bytes) < 0 ||
            add_stat(o, "availableBytes", s->available_bytes) < 0 ||
            add_stat(o, "totalBytes", s->total_bytes) < 0 ||
            add_stat(o, "diskCachesBytes", s->disk_caches_bytes) < 0 ||
            add_stat(o, "swapInBytes", s->swap_in_bytes) < 0 ||
            add_stat(o, "swapOutBytes", s->swap_out_bytes) < 0 ||
            add_stat(o, "majorFaults", s->major_faults) < 0 ||
            add_stat(o, "minorFaults", s->minor_faults) < 0 ||
            (s->last_update_sec > 0 &&
             json_add_uint(o, "lastUpdateRealtimeUSec", s->last_update_sec * USEC_PER_SEC) < 0))
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

BalloonTargetCheck balloon_target_check(uint64_t target, uint64_t floor_bytes, uint64_t memory_bytes) {
        if (target == 0)
                return BALLOON_TARGET_ZERO;
        if (target > memory_bytes)
                return BALLOON_TARGET_ABOVE_MEMORY;
        if (target < floor_bytes)
                return BALLOON_TARGET_BELOW_FLOOR;
        return BALLOON_TARGET_OK;
}

int balloon_schedule_validate(const BalloonSchedule *s, const char **ret_field, const char **ret_reason) {
        const char *field = NULL, *reason = NULL;

        if (s->mode != BALLOON_SCHEDULE_OSCILLATE && s->mode != BALLOON_SCHEDULE_RAMP) {
                field = "mode";
                reason = "expected oscillate or ramp";
        } else if (s->from_bytes == 0) {
                field = "from";
                reason = "must be greater than 0";
        } else if (s->to_bytes == 0) {
                field = "to";
                reason = "must be greater than 0";
        } else if (s->from_bytes == s->to_bytes) {
                field = "to";
                reason = "must differ from the first size";
        } else if (s->every_usec < BALLOON_SCHEDULE_MIN_EVERY_USEC || s->every_usec == USEC_INFINITY) {
                field = "every";
                reason = "must be at least 100ms and finite";
        } else if (s->count < 1 || s->count > BALLOON_SCHEDULE_MAX_COUNT) {
                field = "count";
                reason = "must be between 1 and 100000";
        } else if (s->mode == BALLOON_SCHEDULE_RAMP && s->count < 2) {
                field = "count";
                reason = "a ramp needs at least 2 steps";
        }
        if (!field)
                return 0;
        if (ret_field)
                *ret_field = field;
        if (ret_reason)
                *ret_reason = reason;
        return -EINVAL;
}

uint64_t balloon_schedule_target(const BalloonSchedule *s, unsigned step) {
        switch (s->mode) {
        case BALLOON_SCHEDULE_OSCILLATE:
                return step % 2 == 0 ? s->from_bytes : s->to_bytes;
        case BALLOON_SCHEDULE_RAMP: {
                unsigned last = s->count > 1 ? s->count - 1 : 1;
                uint64_t span;

                if (step >= last)
                        return s->to_bytes;
                if (s->to_bytes > s->from_bytes) {
                        span = s->to_bytes - s->from_bytes;
                        return (s->from_bytes + (uint64_t) ((unsigned __int128) span * step / last)) & ~(MIB - 1);
                }
                span = s->from_bytes - s->to_bytes;
                return (s->from_bytes - (uint64_t) ((unsigned __int128) span * step / last)) & ~(MIB - 1);
        }
        case BALLOON_SCHEDULE_NONE:
        case _BALLOON_SCHEDULE_MODE_MAX:
        case _BALLOON_SCHEDULE_MODE_INVALID:
                break;
        }
        return 0;
}

uint64_t balloon_schedule_step_start(const BalloonSchedule *s, uint64_t start_usec, unsigned step) {
        return start_usec + (uint64_t) step * s->every_usec;
}

int balloon_schedule_step_at(const BalloonSchedule *s, uint64_t start_usec, uint64_t now_usec) {
        uint64_t i;

        if (now_usec < start_usec || s->every_usec == 0)
                return -ENOENT;
        i = (now_usec - start_usec) / s->every_usec;
        return i >= s->count ? (int) s->count : (int) i;
}

int balloon_schedule_to_json(const BalloonSchedule *s, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o || json_add_string(o, "mode", balloon_schedule_mode_to_string(s->mode)) < 0 ||
            json_add_uint(o, "fromBytes", s->from_bytes) < 0 || json_add_uint(o, "toBytes", s->to_bytes) < 0 ||
            json_add_uint(o, "everyUSec", s->every_usec) < 0 || json_add_uint(o, "count", s->count) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

bool balloon_reached(uint64_t actual, uint64_t target) {
        return (actual > target ? actual - target : target - actual) < BALLOON_REACHED_SLACK;
}

int balloon_parse_size_pair(const char *s, uint64_t *ret_a, uint64_t *ret_b, unsigned *ret_which) {
        _cleanup_free_ char *first = NULL;
        const char *comma;
        uint64_t a, b;
        int r;

        comma = strchr(s, ',');
        if (!comma) {
                if (ret_which)
                        *ret_which = 1;
                return -EINVAL;
        }
        first = strndup(s, comma - s);
        if (!first)
                return -ENOMEM;
        r = parse_size(first, &a);
        if (r < 0) {
                if (ret_which)
                        *ret_which = 0;
                return r;
        }
        r = parse_size(comma + 1, &b);
        if (r < 0) {
                if (ret_which)
                        *ret_which = 1;
                return r;
        }
        *ret_a = a;
        *ret_b = b;
        return 0;
}
