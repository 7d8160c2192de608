/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vm/restart.h"

static const char *const restart_decision_table[_RESTART_DECISION_MAX] = {
        [RESTART_DECISION_NONE] = "none",
        [RESTART_DECISION_RESTART] = "restart",
        [RESTART_DECISION_LIMIT_HIT] = "start-limit-hit",
};

DEFINE_STRING_TABLE(restart_decision, RestartDecision, _RESTART_DECISION_MAX);

static void tracker_expire(RestartTracker *t, const VmSpec *spec, uint64_t now) {
        unsigned keep = 0;

        for (unsigned i = 0; i < t->n_starts; i++)
                if (now - t->starts[i] < spec->start_limit_interval_usec) /* no overflow with "infinity" */
                        t->starts[keep++] = t->starts[i];
        t->n_starts = keep;
}

void restart_tracker_record_start(RestartTracker *t, const VmSpec *spec, uint64_t now) {
        tracker_expire(t, spec, now);
        if (t->n_starts == RESTART_HISTORY_MAX) {
                memmove(t->starts, t->starts + 1, (RESTART_HISTORY_MAX - 1) * sizeof(uint64_t));
                t->n_starts--;
        }
        t->starts[t->n_starts++] = now;
}

void restart_tracker_reset(RestartTracker *t) {
        *t = (RestartTracker) {};
}

RestartDecision restart_decide(RestartTracker *t, const VmSpec *spec, bool clean, uint64_t uptime_usec,
                               uint64_t now, uint64_t *ret_delay_usec) {
        uint64_t delay;

        switch (spec->restart) {
        case VM_RESTART_NO:
                return RESTART_DECISION_NONE;
        case VM_RESTART_ON_FAILURE:
                if (clean)
                        return RESTART_DECISION_NONE;
                break;
        case VM_RESTART_ALWAYS:
                break;
        case _VM_RESTART_MAX:
        case _VM_RESTART_INVALID:
                return RESTART_DECISION_NONE;
        }

        if (uptime_usec >= spec->restart_max_usec)
                t->consecutive = 0;

        tracker_expire(t, spec, now);
        if (t->n_starts >= spec->start_limit_burst)
                return RESTART_DECISION_LIMIT_HIT;

        delay = spec->restart_usec;
        for (unsigned i = 0; i < t->consecutive && delay < spec->restart_max_usec; i++)
                delay = delay > UINT64_MAX / 2 ? UINT64_MAX : delay * 2;
        if (delay > spec->restart_max_usec)
                delay = spec->restart_max_usec;

        t->consecutive++;
        *ret_delay_usec = delay;
        return RESTART_DECISION_RESTART;
}
