/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "balloon/policy.h"

#define MIB (UINT64_C(1) << 20)

static const char *const balloon_host_state_table[_BALLOON_HOST_STATE_MAX] = {
        [BALLOON_HOST_NORMAL] = "normal",
        [BALLOON_HOST_PRESSURE] = "pressure",
};
DEFINE_STRING_TABLE(balloon_host_state, BalloonHostState, _BALLOON_HOST_STATE_MAX);

static const char *const balloon_policy_action_table[_BALLOON_POLICY_ACTION_MAX] = {
        [BALLOON_POLICY_HOLD] = "hold",
        [BALLOON_POLICY_SQUEEZE] = "squeeze",
        [BALLOON_POLICY_GROW] = "grow",
};
DEFINE_STRING_TABLE(balloon_policy_action, BalloonPolicyAction, _BALLOON_POLICY_ACTION_MAX);

static const char *const balloon_policy_reason_table[_BALLOON_POLICY_REASON_MAX] = {
        [BALLOON_REASON_HOST_PRESSURE] = "host-pressure",
        [BALLOON_REASON_HOST_RELIEF] = "host-relief",
        [BALLOON_REASON_GUEST_LOW] = "guest-low",
        [BALLOON_REASON_AT_FLOOR] = "at-floor",
        [BALLOON_REASON_GUEST_RESERVE] = "guest-reserve",
        [BALLOON_REASON_NO_STATS] = "no-stats",
        [BALLOON_REASON_NEED_COVERED] = "need-covered",
        [BALLOON_REASON_AT_CEILING] = "at-ceiling",
        [BALLOON_REASON_NO_HEADROOM] = "no-headroom",
        [BALLOON_REASON_HOST_BAND] = "host-band",
};
DEFINE_STRING_TABLE(balloon_policy_reason, BalloonPolicyReason, _BALLOON_POLICY_REASON_MAX);

int balloon_policy_params_validate(const BalloonPolicyParams *p, const char **ret_field) {
        const char *field = NULL;

        if (p->available_low_percent > 100)
                field = "HostAvailableLowPercent";
        else if (p->available_high_percent > 100 || p->available_high_percent <= p->available_low_percent)
                field = "HostAvailableHighPercent";
        else if (p->commit_high_percent > 1000)
                field = "CommitHighPercent";
        else if (p->commit_low_percent >= p->commit_high_percent)
                field = "CommitLowPercent";
        else if (p->max_step_bytes < MIB)
                field = "MaxStep";
        if (field) {
                if (ret_field)
                        *ret_field = field;
                return -EINVAL;
        }
        return 0;
}

static uint64_t sub0(uint64_t a, uint64_t b) {
        return a > b ? a - b : 0;
}

static uint64_t mib_down(uint64_t v) {
        return v & ~(MIB - 1);
}

static uint64_t mib_up(uint64_t v) {
        return v > UINT64_MAX - (MIB - 1) ? mib_down(v) : mib_down(v + MIB - 1);
}

/* a * pct / 100 without overflow for the sizes of real machines. */
static uint64_t percent_of(uint64_t a, unsigned pct) {
        return (uint64_t) ((unsigned __int128) a * pct / 100);
}

static uint64_t guest_spare(const BalloonPolicyParams *p, const BalloonPolicyGuest *g) {
        uint64_t spare;

        if (g->available_bytes == BALLOON_POLICY_UNKNOWN)
                return 0;
        spare = MIN(sub0(g->actual_bytes, g->floor_bytes), sub0(g->available_bytes, p->guest_reserve_bytes));
        return mib_down(MIN(spare, p->max_step_bytes));
}

static void squeeze(const BalloonPolicyParams *p, const BalloonPolicyGuest *guests, size_t n,
                    BalloonPolicyDecision *d, uint64_t need) {
        /* Most spare first; ties by order given. */
        for (;;) {
                size_t best = SIZE_MAX;
                uint64_t best_spare = 0, take;

                for (size_t i = 0; i < n; i++) {
                        uint64_t s;

                        if (d[i].action != _BALLOON_POLICY_ACTION_INVALID)
                                continue;
                        s = guest_spare(p, guests + i);
                        if (best == SIZE_MAX || s > best_spare) {
                                best = i;
                                best_spare = s;
                        }
                }
                if (best == SIZE_MAX)
                        return;

                const BalloonPolicyGuest *g = guests + best;
                d[best] = (BalloonPolicyDecision) { .action = BALLOON_POLICY_HOLD, .target_bytes = g->actual_bytes };
                if (g->available_bytes == BALLOON_POLICY_UNKNOWN)
                        d[best].reason = BALLOON_REASON_NO_STATS;
                else if (need == 0)
                        d[best].reason = BALLOON_REASON_NEED_COVERED;
                else if (best_spare == 0)
                        d[best].reason = g->actual_bytes <= g->floor_bytes ? BALLOON_REASON_AT_FLOOR
                                                                           : BALLOON_REASON_GUEST_RESERVE;
                else {
                        take = MIN(best_spare, mib_up(need));
                        d[best].action = BALLOON_POLICY_SQUEEZE;
                        d[best].reason = BALLOON_REASON_HOST_PRESSURE;
                        d[best].target_bytes = g->actual_bytes - take;
                        need = sub0(need, take);
                }
        }
}

static void grow(const BalloonPolicyParams *p, const BalloonPolicyGuest *guests, size_t n, BalloonPolicyDecision *d,
                 uint64_t headroom, bool only_low) {
        /* Neediest (least available; unknown last) first. */
        for (;;) {
                size_t best = SIZE_MAX;
                uint64_t give;

                for (size_t i = 0; i < n; i++) {
                        if (d[i].action != _BALLOON_POLICY_ACTION_INVALID)
                                continue;
                        if (best == SIZE_MAX || guests[i].available_bytes < guests[best].available_bytes)
                                best = i;
                }
                if (best == SIZE_MAX)
                        return;

                const BalloonPolicyGuest *g = guests + best;
                bool low = g->available_bytes != BALLOON_POLICY_UNKNOWN && g->available_bytes < p->guest_reserve_bytes;

                d[best] = (BalloonPolicyDecision) { .action = BALLOON_POLICY_HOLD, .target_bytes = g->actual_bytes };
                if (only_low && !low) {
                        d[best].reason = BALLOON_REASON_HOST_BAND;
                        continue;
                }
                give = mib_down(MIN(MIN(p->max_step_bytes, sub0(g->ceiling_bytes, g->actual_bytes)), headroom));
                if (g->actual_bytes >= g->ceiling_bytes)
                        d[best].reason = BALLOON_REASON_AT_CEILING;
                else if (give == 0)
                        d[best].reason = BALLOON_REASON_NO_HEADROOM;
                else {
                        d[best].action = BALLOON_POLICY_GROW;
                        d[best].reason = low ? BALLOON_REASON_GUEST_LOW : BALLOON_REASON_HOST_RELIEF;
                        d[best].target_bytes = g->actual_bytes + give;
                        headroom -= give;
                }
        }
}

void balloon_policy_decide(const BalloonPolicyParams *p, const HostMemory *host, BalloonHostState previous,
                           const BalloonPolicyGuest *guests, size_t n, BalloonPolicyDecision *decisions,
                           BalloonPolicyResult *ret_result) {
        uint64_t avail_low = percent_of(host->mem_total, p->available_low_percent);
        uint64_t avail_high = percent_of(host->mem_total, p->available_high_percent);
        uint64_t commit_high = percent_of(host->commit_limit, p->commit_high_percent);
        uint64_t commit_low = percent_of(host->commit_limit, p->commit_low_percent);
        BalloonPolicyResult res = {};

        res.available_low = host->mem_available < avail_low;
        res.commit_high = host->commit_limit > 0 && host->committed_as > commit_high;
        res.relieved = host->mem_available >= avail_high &&
                       (host->commit_limit == 0 || host->committed_as <= commit_low);
        if (res.available_low || res.commit_high)
                res.state = BALLOON_HOST_PRESSURE;
        else if (res.relieved)
                res.state = BALLOON_HOST_NORMAL;
        else
                res.state = previous;

        for (size_t i = 0; i < n; i++)
                decisions[i] = (BalloonPolicyDecision) { .action = _BALLOON_POLICY_ACTION_INVALID };

        switch (res.state) {
        case BALLOON_HOST_PRESSURE:
                res.need_bytes = sub0(avail_high, host->mem_available);
                if (host->commit_limit > 0)
                        res.need_bytes = MAX(res.need_bytes, sub0(host->committed_as, commit_low));
                squeeze(p, guests, n, decisions, res.need_bytes);
                break;
        case BALLOON_HOST_NORMAL:
        case _BALLOON_HOST_STATE_MAX:
        case _BALLOON_HOST_STATE_INVALID:
                res.state = BALLOON_HOST_NORMAL;
                if (res.relieved)
                        res.headroom_bytes = sub0(host->mem_available, avail_high);
                else
                        res.headroom_bytes = sub0(host->mem_available, avail_low);
                grow(p, guests, n, decisions, res.headroom_bytes, !res.relieved);
                break;
        }

        if (ret_result)
                *ret_result = res;
}
