/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host-pressure balloon policy, table-driven: thresholds, hysteresis, bounds, step limit, guests competing. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>

#include "balloon/policy.h"

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define UNKNOWN BALLOON_POLICY_UNKNOWN

#define HOLD BALLOON_POLICY_HOLD
#define SQUEEZE BALLOON_POLICY_SQUEEZE
#define GROW BALLOON_POLICY_GROW
#define NORMAL BALLOON_HOST_NORMAL
#define PRESSURE BALLOON_HOST_PRESSURE

/* MemTotal 16G, CommitLimit 20G: AvailableLow 10% = 1.6G, AvailableHigh 20% = 3.2G, CommitHigh 100% = 20G,
 * CommitLow 90% = 18G; reserve 64M, step 64M. */
#define HOST(avail, committed) { .mem_total = 16 * GiB, .mem_available = (avail), .committed_as = (committed), \
                                 .commit_limit = 20 * GiB }
#define AVAIL_LOW (16 * GiB / 10)
#define AVAIL_HIGH (16 * GiB / 5)

/* actual, floor, ceiling, available */
#define G(a, f, c, av) { .actual_bytes = (a), .floor_bytes = (f), .ceiling_bytes = (c), .available_bytes = (av) }
#define D(act, rsn, t) { .action = (act), .reason = BALLOON_REASON_##rsn, .target_bytes = (t) }

typedef struct Case {
        const char *name;
        HostMemory host;
        BalloonHostState previous;
        size_t n;
        BalloonPolicyGuest guests[3];
        BalloonHostState state;
        BalloonPolicyDecision expected[3];
} Case;

static const Case cases[] = {
        { "available under the low threshold squeezes by one step", HOST(1 * GiB, 10 * GiB), NORMAL, 1,
          { G(512 * MiB, 256 * MiB, 512 * MiB, 400 * MiB) }, PRESSURE,
          { D(SQUEEZE, HOST_PRESSURE, 448 * MiB) } },
        { "just at the low threshold is not pressure (band, was normal)", HOST(AVAIL_LOW, 10 * GiB), NORMAL, 1,
          { G(512 * MiB, 256 * MiB, 512 * MiB, 400 * MiB) }, NORMAL,
          { D(HOLD, HOST_BAND, 512 * MiB) } },
        { "one byte under the low threshold is pressure", HOST(AVAIL_LOW - 1, 10 * GiB), NORMAL, 1,
          { G(512 * MiB, 256 * MiB, 512 * MiB, 400 * MiB) }, PRESSURE,
          { D(SQUEEZE, HOST_PRESSURE, 448 * MiB) } },
        { "hysteresis: in the band after pressure keeps squeezing", HOST(2 * GiB, 10 * GiB), PRESSURE, 1,
          { G(448 * MiB, 256 * MiB, 512 * MiB, 340 * MiB) }, PRESSURE,
          { D(SQUEEZE, HOST_PRESSURE, 384 * MiB) } },
        { "hysteresis: in the band after normal does not give back", HOST(2 * GiB, 10 * GiB), NORMAL, 1,
          { G(256 * MiB, 256 * MiB, 512 * MiB, 200 * MiB) }, NORMAL,
          { D(HOLD, HOST_BAND, 256 * MiB) } },
        { "relieved: memory given back one step", HOST(8 * GiB, 10 * GiB), PRESSURE, 1,
          { G(256 * MiB, 256 * MiB, 512 * MiB, 200 * MiB) }, NORMAL,
          { D(GROW, HOST_RELIEF, 320 * MiB) } },
        { "relieved on available but Committed_AS above CommitLow: band", HOST(8 * GiB, 19 * GiB), PRESSURE, 1,
          { G(256 * MiB, 256 * MiB, 512 * MiB, 200 * MiB) }, PRESSURE,
          { D(SQUEEZE, AT_FLOOR, 256 * MiB) } },
        { "Committed_AS over CommitLimit is pressure even with plenty available", HOST(8 * GiB, 21 * GiB), NORMAL,
          1, { G(512 * MiB, 128 * MiB, 512 * MiB, 400 * MiB) }, PRESSURE,
          { D(SQUEEZE, HOST_PRESSURE, 448 * MiB) } },
        { "bounds: floor, reserve, no stats, partial room above the floor", HOST(1 * GiB, 10 * GiB), NORMAL, 3,
          { G(256 * MiB, 256 * MiB, 512 * MiB, 300 * MiB), G(512 * MiB, 128 * MiB, 512 * MiB, 60 * MiB),
            G(512 * MiB, 128 * MiB, 512 * MiB, UNKNOWN) }, PRESSURE,
          { D(HOLD, AT_FLOOR, 256 * MiB), D(HOLD, GUEST_RESERVE, 512 * MiB), D(HOLD, NO_STATS, 512 * MiB) } },
        { "bounds: the floor limits a step", HOST(1 * GiB, 10 * GiB), NORMAL, 1,
          { G(280 * MiB, 256 * MiB, 512 * MiB, 300 * MiB) }, PRESSURE,
          { D(SQUEEZE, HOST_PRESSURE, 256 * MiB) } },
        { "bounds: the reserve limits a step", HOST(1 * GiB, 10 * GiB), NORMAL, 1,
          { G(512 * MiB, 128 * MiB, 512 * MiB, 100 * MiB) }, PRESSURE,
          { D(SQUEEZE, HOST_PRESSURE, 476 * MiB) } },
        { "bounds: ceiling below boot memory", HOST(8 * GiB, 10 * GiB), NORMAL, 2,
          { G(384 * MiB, 128 * MiB, 384 * MiB, 200 * MiB), G(350 * MiB, 128 * MiB, 384 * MiB, 200 * MiB) }, NORMAL,
          { D(HOLD, AT_CEILING, 384 * MiB), D(GROW, HOST_RELIEF, 384 * MiB) } },
        { "competing: the guest with most to spare gives first, need covered", HOST(AVAIL_HIGH - 32 * MiB, 10 * GiB),
          PRESSURE, 3,
          { G(512 * MiB, 256 * MiB, 512 * MiB, 100 * MiB), G(512 * MiB, 256 * MiB, 512 * MiB, 400 * MiB),
            G(512 * MiB, 256 * MiB, 512 * MiB, 90 * MiB) }, PRESSURE,
          { D(HOLD, NEED_COVERED, 512 * MiB), D(SQUEEZE, HOST_PRESSURE, 480 * MiB), D(HOLD, NEED_COVERED, 512 * MiB) } },
        { "competing: need larger than one step spreads over guests", HOST(AVAIL_HIGH - 100 * MiB, 10 * GiB),
          PRESSURE, 3,
          { G(512 * MiB, 256 * MiB, 512 * MiB, 100 * MiB), G(512 * MiB, 256 * MiB, 512 * MiB, 400 * MiB),
            G(512 * MiB, 256 * MiB, 512 * MiB, 80 * MiB) }, PRESSURE,
          { D(SQUEEZE, HOST_PRESSURE, 476 * MiB), D(SQUEEZE, HOST_PRESSURE, 448 * MiB), D(HOLD, NEED_COVERED, 512 * MiB) } },
        { "competing: limited headroom goes to the neediest first", HOST(AVAIL_HIGH + 80 * MiB, 10 * GiB), PRESSURE,
          3,
          { G(256 * MiB, 128 * MiB, 512 * MiB, 300 * MiB), G(256 * MiB, 128 * MiB, 512 * MiB, 50 * MiB),
            G(256 * MiB, 128 * MiB, 512 * MiB, 500 * MiB) }, NORMAL,
          { D(GROW, HOST_RELIEF, 272 * MiB), D(GROW, GUEST_LOW, 320 * MiB), D(HOLD, NO_HEADROOM, 256 * MiB) } },
        { "band: only guests under their reserve get memory", HOST(2 * GiB, 10 * GiB), NORMAL, 2,
          { G(256 * MiB, 128 * MiB, 512 * MiB, 30 * MiB), G(256 * MiB, 128 * MiB, 512 * MiB, 300 * MiB) }, NORMAL,
          { D(GROW, GUEST_LOW, 320 * MiB), D(HOLD, HOST_BAND, 256 * MiB) } },
        { "pressure: a guest under its reserve is not squeezed nor grown", HOST(1 * GiB, 10 * GiB), NORMAL, 1,
          { G(256 * MiB, 128 * MiB, 512 * MiB, 30 * MiB) }, PRESSURE,
          { D(HOLD, GUEST_RESERVE, 256 * MiB) } },
        { "no guests", HOST(1 * GiB, 10 * GiB), NORMAL, 0, {}, PRESSURE, {} },
};

static void test_policy_table(void **state) {
        BalloonPolicyParams p = BALLOON_POLICY_PARAMS_DEFAULT;

        p.commit_high_percent = 100;
        p.commit_low_percent = 90;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const Case *c = cases + i;
                BalloonPolicyDecision d[3];
                BalloonPolicyResult res;

                balloon_policy_decide(&p, &c->host, c->previous, c->guests, c->n, d, &res);
                if (res.state != c->state)
                        fail_msg("%s: state %s, expected %s", c->name, balloon_host_state_to_string(res.state),
                                 balloon_host_state_to_string(c->state));
                for (size_t j = 0; j < c->n; j++) {
                        const BalloonPolicyDecision *e = c->expected + j;
                        /* the table writes "SQUEEZE, AT_FLOOR" for a hold whose reason is at-floor */
                        BalloonPolicyAction ea = e->target_bytes == c->guests[j].actual_bytes ? HOLD : e->action;

                        if (d[j].action != ea || d[j].reason != e->reason || d[j].target_bytes != e->target_bytes)
                                fail_msg("%s: guest %zu: got %s/%s/%" PRIu64 " MiB, expected %s/%s/%" PRIu64 " MiB",
                                         c->name, j, balloon_policy_action_to_string(d[j].action),
                                         balloon_policy_reason_to_string(d[j].reason), d[j].target_bytes / MiB,
                                         balloon_policy_action_to_string(ea),
                                         balloon_policy_reason_to_string(e->reason), e->target_bytes / MiB);
                }
        }
}

static void test_policy_need_and_headroom(void **state) {
        BalloonPolicyParams p = BALLOON_POLICY_PARAMS_DEFAULT;
        HostMemory h = HOST(1 * GiB, 19 * GiB);
        BalloonPolicyResult res;

        p.commit_high_percent = 100;
        p.commit_low_percent = 90;
        balloon_policy_decide(&p, &h, NORMAL, NULL, 0, NULL, &res);
        assert_int_equal(res.state, PRESSURE);
        assert_true(res.available_low);
        assert_false(res.commit_high);
        /* up to AvailableHigh: 3.2G - 1G; Committed_AS down to 18G: 1G; the larger wins */
        assert_int_equal(res.need_bytes, AVAIL_HIGH - 1 * GiB);

        h = (HostMemory) HOST(8 * GiB, 10 * GiB);
        balloon_policy_decide(&p, &h, PRESSURE, NULL, 0, NULL, &res);
        assert_int_equal(res.state, NORMAL);
        assert_true(res.relieved);
        assert_int_equal(res.headroom_bytes, 8 * GiB - AVAIL_HIGH);

        /* CommitLimit 0 (no overcommit accounting): only MemAvailable counts */
        h = (HostMemory) { .mem_total = 16 * GiB, .mem_available = 8 * GiB, .committed_as = 30 * GiB };
        balloon_policy_decide(&p, &h, PRESSURE, NULL, 0, NULL, &res);
        assert_int_equal(res.state, NORMAL);
}

static void test_policy_params(void **state) {
        BalloonPolicyParams p = BALLOON_POLICY_PARAMS_DEFAULT;
        const char *field = NULL;

        assert_int_equal(balloon_policy_params_validate(&p, &field), 0);
        p.available_high_percent = p.available_low_percent;
        assert_int_equal(balloon_policy_params_validate(&p, &field), -EINVAL);
        assert_string_equal(field, "HostAvailableHighPercent");
        p = BALLOON_POLICY_PARAMS_DEFAULT;
        p.commit_low_percent = p.commit_high_percent;
        assert_int_equal(balloon_policy_params_validate(&p, &field), -EINVAL);
        assert_string_equal(field, "CommitLowPercent");
        p = BALLOON_POLICY_PARAMS_DEFAULT;
        p.max_step_bytes = 4096;
        assert_int_equal(balloon_policy_params_validate(&p, &field), -EINVAL);
        assert_string_equal(field, "MaxStep");
        p = BALLOON_POLICY_PARAMS_DEFAULT;
        p.available_low_percent = 101;
        assert_int_equal(balloon_policy_params_validate(&p, &field), -EINVAL);
        assert_string_equal(field, "HostAvailableLowPercent");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_policy_table),
                cmocka_unit_test(test_policy_need_and_headroom),
                cmocka_unit_test(test_policy_params),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
