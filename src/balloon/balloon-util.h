/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Pure helpers of the balloon module: the guest statistics of a virtio-balloon device (QOM property
 * guest-stats), the check of a balloon target against a guest's bounds, and balloon schedules (oscillate
 * between two sizes, or ramp in steps) as functions of the step number. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"

/* Guest statistics from "qom-get /machine/peripheral/balloon0 guest-stats". A value the guest did not report
 * (absent, or -1 as QEMU says for unsupported ones) is UINT64_MAX. */
#define BALLOON_STAT_UNSET UINT64_MAX

typedef struct BalloonGuestStats {
        uint64_t free_bytes;
        uint64_t available_bytes;
        uint64_t total_bytes;
        uint64_t disk_caches_bytes;
        uint64_t swap_in_bytes;
        uint64_t swap_out_bytes;
        uint64_t major_faults;
        uint64_t minor_faults;
        uint64_t last_update_sec;       /* CLOCK_REALTIME seconds; 0: the guest never reported */
} BalloonGuestStats;

/* Parses the reply of qom-get guest-stats: {"stats": {"stat-free-memory": n, …}, "last-update": n}.
 * Not an object, or "stats" missing → -EINVAL. */
int balloon_guest_stats_parse(json_object *reply, BalloonGuestStats *ret);
/* True once the guest's driver has reported at least once. */
bool balloon_guest_stats_valid(const BalloonGuestStats *s);
/* {"freeBytes": …, …, "lastUpdateRealtimeUSec": …}; unset values are left out. */
int balloon_guest_stats_to_json(const BalloonGuestStats *s, json_object **ret);

/* Checks a target against what the guest may be given: 0 < floor ≤ target ≤ memory (the boot memory).
 * Returns 0 when fine, -ERANGE otherwise, with a reason ("256.0M is below the floor 384.0M"). */
typedef enum BalloonTargetCheck {
        BALLOON_TARGET_OK,
        BALLOON_TARGET_ZERO,
        BALLOON_TARGET_BELOW_FLOOR,
        BALLOON_TARGET_ABOVE_MEMORY,
        _BALLOON_TARGET_CHECK_MAX,
        _BALLOON_TARGET_CHECK_INVALID = -EINVAL,
} BalloonTargetCheck;

DECLARE_STRING_TABLE(balloon_target_check, BalloonTargetCheck);

BalloonTargetCheck balloon_target_check(uint64_t target, uint64_t floor_bytes, uint64_t memory_bytes);

/* Schedules. */
typedef enum BalloonScheduleMode {
        BALLOON_SCHEDULE_NONE,
        BALLOON_SCHEDULE_OSCILLATE,     /* from, to, from, to, … (count steps) */
        BALLOON_SCHEDULE_RAMP,          /* count steps spaced evenly from "from" to "to", both included */
        _BALLOON_SCHEDULE_MODE_MAX,
        _BALLOON_SCHEDULE_MODE_INVALID = -EINVAL,
} BalloonScheduleMode;

DECLARE_STRING_TABLE(balloon_schedule_mode, BalloonScheduleMode);

#define BALLOON_SCHEDULE_MAX_COUNT 100000U
#define BALLOON_SCHEDULE_MIN_EVERY_USEC (100U * USEC_PER_MSEC)

typedef struct BalloonSchedule {
        BalloonScheduleMode mode;
        uint64_t from_bytes;
        uint64_t to_bytes;
        uint64_t every_usec;            /* period between step starts */
        unsigned count;                 /* number of steps */
} BalloonSchedule;

/* Checks the schedule on its own (mode set, from ≠ to, every ≥ 100 ms, 1 ≤ count ≤ 100000; ramp needs
 * count ≥ 2). On failure returns -EINVAL and the name of the offending field ("from", "to", "every",
 * "count", "mode") in *ret_field and a reason in *ret_reason (static strings). */
int balloon_schedule_validate(const BalloonSchedule *s, const char **ret_field, const char **ret_reason);
/* Target of step i (0-based, i < count), rounded down to whole MiB for ramps. */
uint64_t balloon_schedule_target(const BalloonSchedule *s, unsigned step);
/* Monotonic time step i starts, given when step 0 started. */
uint64_t balloon_schedule_step_start(const BalloonSchedule *s, uint64_t start_usec, unsigned step);
/* The step that is due at now (the last one whose start ≤ now), or -ENOENT before start, or count when the
 * schedule is over (the last step's period has ended). */
int balloon_schedule_step_at(const BalloonSchedule *s, uint64_t start_usec, uint64_t now_usec);
int balloon_schedule_to_json(const BalloonSchedule *s, json_object **ret);

/* Whether a balloon actual counts as having reached its target (less than 1 MiB away). */
#define BALLOON_REACHED_SLACK (UINT64_C(1) << 20)
bool balloon_reached(uint64_t actual, uint64_t target);

/* "256M,512M" → two sizes (parse_size each). -EINVAL/-ERANGE from parse_size; a missing comma or an empty
 * side → -EINVAL. *ret_which (optional) says which side failed: 0 first, 1 second. */
int balloon_parse_size_pair(const char *s, uint64_t *ret_a, uint64_t *ret_b, unsigned *ret_which);
