/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The host-pressure policy (policy.h) applied to the guests' balloon controllers: one round decides for all of
 * them at once from one reading of the host's memory, records each guest's decision in its controller, logs it
 * and sends the targets that move. The owner runs a round on its own timer. */

#include <stddef.h>

#include "balloon/balloon-controller.h"
#include "metrics/meminfo.h"
#include "balloon/policy.h"

typedef struct BalloonPolicyRunner {
        BalloonHostState host_state;    /* of the last round, for the hysteresis */
        int last_host_error;            /* of balloon_policy_run_meminfo()'s last reading (logged once) */
} BalloonPolicyRunner;

#define BALLOON_POLICY_RUNNER_INIT ((BalloonPolicyRunner) { .host_state = BALLOON_HOST_NORMAL })

/* Whether the policy may move this guest's balloon now: tracked, its actual size known, no schedule running.
 * (Whether the guest takes part at all — Policy= — is the owner's to say.) */
bool balloon_controller_policy_eligible(const BalloonController *c);

/* One round over n eligible controllers. */
void balloon_policy_run(BalloonPolicyRunner *runner, const BalloonPolicyParams *params, const HostMemory *host,
                        BalloonController *const *controllers, size_t n);
/* The same with the host memory read from meminfo_path now (a file in the format of /proc/meminfo); a reading
 * that fails is logged (once while it fails alike) and skips the round. */
void balloon_policy_run_meminfo(BalloonPolicyRunner *runner, const BalloonPolicyParams *params,
                                const char *meminfo_path, BalloonController *const *controllers, size_t n);
