/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Restart policy as a pure function of its inputs, so it can be tested without processes or clocks. */

#include "basic/macro.h"
#include "vm/vm-spec.h"

#define RESTART_HISTORY_MAX 64

typedef struct RestartTracker {
        uint64_t starts[RESTART_HISTORY_MAX];   /* CLOCK_MONOTONIC usec of recent starts, oldest first */
        unsigned n_starts;
        unsigned consecutive;                   /* automatic restarts since the guest last ran stably */
} RestartTracker;

typedef enum RestartDecision {
        RESTART_DECISION_NONE,          /* policy says no */
        RESTART_DECISION_RESTART,       /* restart after *ret_delay_usec */
        RESTART_DECISION_LIMIT_HIT,     /* policy says yes but the start limit is reached */
        _RESTART_DECISION_MAX,
        _RESTART_DECISION_INVALID = -EINVAL,
} RestartDecision;

DECLARE_STRING_TABLE(restart_decision, RestartDecision);

/* Records a start at now (drops entries older than the start limit interval). */
void restart_tracker_record_start(RestartTracker *t, const VmSpec *spec, uint64_t now);
/* Forgets history (a start requested by the user resets the limit, like systemctl reset-failed). */
void restart_tracker_reset(RestartTracker *t);

/* Decides what to do after the guest ended. clean: it ended on its own without error (exit code 0 after a
 * guest-initiated shutdown). uptime_usec: how long it ran; a run of at least RestartMaxDelaySec counts as
 * stable and resets the backoff. The delay doubles with each consecutive automatic restart, from RestartSec
 * up to RestartMaxDelaySec. The start limit: at most StartLimitBurst starts within StartLimitIntervalSec. */
RestartDecision restart_decide(RestartTracker *t, const VmSpec *spec, bool clean, uint64_t uptime_usec,
                               uint64_t now, uint64_t *ret_delay_usec);
