/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The host-pressure balloon policy, a pure function of its inputs (modelled on oVirt MoM's balloon rules, but
 * Committed_AS against CommitLimit counts as pressure too).
 *
 * Host state, with hysteresis:
 *   pressure  when MemAvailable < AvailableLow% of MemTotal, or Committed_AS > CommitHigh% of CommitLimit;
 *   normal    when MemAvailable ≥ AvailableHigh% and Committed_AS ≤ CommitLow% ("relieved");
 *   otherwise the previous state is kept.
 *
 * Under pressure the policy wants back "need" bytes: enough to bring MemAvailable up to AvailableHigh% and
 * Committed_AS down to CommitLow%. Guests give memory in order of how much they can spare (their available
 * memory from the balloon stats above the guest reserve, their balloon above their floor, at most MaxStep per
 * interval), most first, until the need is covered. Guests without stats are not squeezed.
 *
 * When the host is relieved, guests get memory back (up to their ceiling, at most MaxStep each) from the
 * headroom above AvailableHigh%, neediest (least available) first. In the band between the thresholds only
 * guests whose available memory is under the reserve are given memory (from the headroom above AvailableLow%).
 * Targets move in whole MiB. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "basic/macro.h"
#include "metrics/meminfo.h"

typedef enum BalloonHostState {
        BALLOON_HOST_NORMAL,
        BALLOON_HOST_PRESSURE,
        _BALLOON_HOST_STATE_MAX,
        _BALLOON_HOST_STATE_INVALID = -EINVAL,
} BalloonHostState;

typedef enum BalloonPolicyAction {
        BALLOON_POLICY_HOLD,
        BALLOON_POLICY_SQUEEZE,
        BALLOON_POLICY_GROW,
        _BALLOON_POLICY_ACTION_MAX,
        _BALLOON_POLICY_ACTION_INVALID = -EINVAL,
} BalloonPolicyAction;

typedef enum BalloonPolicyReason {
        BALLOON_REASON_HOST_PRESSURE,           /* squeeze: the host needs memory */
        BALLOON_REASON_HOST_RELIEF,             /* grow: the host has room again */
        BALLOON_REASON_GUEST_LOW,               /* grow: guest's available memory under the reserve */
        BALLOON_REASON_AT_FLOOR,                /* hold: pressure, but the balloon is at the floor */
        BALLOON_REASON_GUEST_RESERVE,           /* hold: pressure, but the guest has nothing above its reserve */
        BALLOON_REASON_NO_STATS,                /* hold: pressure, but the guest reports no stats */
        BALLOON_REASON_NEED_COVERED,            /* hold: pressure, other guests cover the need */
        BALLOON_REASON_AT_CEILING,              /* hold: relief, but the balloon is at the ceiling */
        BALLOON_REASON_NO_HEADROOM,             /* hold: relief, but other guests took the headroom */
        BALLOON_REASON_HOST_BAND,               /* hold: host between the thresholds */
        _BALLOON_POLICY_REASON_MAX,
        _BALLOON_POLICY_REASON_INVALID = -EINVAL,
} BalloonPolicyReason;

DECLARE_STRING_TABLE(balloon_host_state, BalloonHostState);
DECLARE_STRING_TABLE(balloon_policy_action, BalloonPolicyAction);
DECLARE_STRING_TABLE(balloon_policy_reason, BalloonPolicyReason);

typedef struct BalloonPolicyParams {
        unsigned available_low_percent;         /* of MemTotal */
        unsigned available_high_percent;
        unsigned commit_high_percent;           /* of CommitLimit */
        unsigned commit_low_percent;
        uint64_t guest_reserve_bytes;           /* keep at least this available in each guest */
        uint64_t max_step_bytes;                /* per guest and interval */
} BalloonPolicyParams;

#define BALLOON_POLICY_PARAMS_DEFAULT                                   \
        ((BalloonPolicyParams) {                                        \
                .available_low_percent = 10,                            \
                .available_high_percent = 20,                           \
                .commit_high_percent = 100,                             \
                .commit_low_percent = 90,                               \
                .guest_reserve_bytes = UINT64_C(64) << 20,              \
                .max_step_bytes = UINT64_C(64) << 20,                   \
        })

/* Checks low < high for both pairs, percentages ≤ 1000, max step ≥ 1 MiB. -EINVAL with the offending
 * parameter's name (as in memvisord.conf) in *ret_field. */
int balloon_policy_params_validate(const BalloonPolicyParams *p, const char **ret_field);

typedef struct BalloonPolicyGuest {
        uint64_t actual_bytes;                  /* balloon size now (query-balloon) */
        uint64_t floor_bytes;
        uint64_t ceiling_bytes;                 /* ≤ boot memory */
        uint64_t available_bytes;               /* guest stats; BALLOON_POLICY_UNKNOWN when none */
} BalloonPolicyGuest;

#define BALLOON_POLICY_UNKNOWN UINT64_MAX

typedef struct BalloonPolicyDecision {
        BalloonPolicyAction action;
        BalloonPolicyReason reason;
        uint64_t target_bytes;                  /* == actual_bytes when holding */
} BalloonPolicyDecision;

typedef struct BalloonPolicyResult {
        BalloonHostState state;
        bool available_low;                     /* MemAvailable under AvailableLow% */
        bool commit_high;                       /* Committed_AS over CommitHigh% */
        bool relieved;                          /* both at or past the "high"/"low" sides */
        uint64_t need_bytes;                    /* under pressure: bytes wanted back */
        uint64_t headroom_bytes;                /* otherwise: bytes that may be handed out */
} BalloonPolicyResult;

/* Decides for n guests; decisions[i] belongs to guests[i]. */
void balloon_policy_decide(const BalloonPolicyParams *p, const HostMemory *host, BalloonHostState previous,
                           const BalloonPolicyGuest *guests, size_t n, BalloonPolicyDecision *decisions,
                           BalloonPolicyResult *ret_result);
