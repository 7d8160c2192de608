/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One round of the host-pressure policy over the guests' balloon controllers. */
#include <inttypes.h>
#include <stdio.h>

#include "balloon/balloon-controller-private.h"
#include "balloon/balloon-policy-run.h"
#include "basic/log.h"
#include "basic/parse.h"

bool balloon_controller_policy_eligible(const BalloonController *c) {
        return c && c->tracking && c->actual_known && !c->schedule_active && !c->config.confidential;
}

static BalloonPolicyGuest policy_input(const BalloonController *c) {
        const BalloonGuestStats *st = &c->stats;

        return (BalloonPolicyGuest) {
                .actual_bytes = c->actual,
                .floor_bytes = c->config.floor_bytes,
                .ceiling_bytes = c->config.ceiling_bytes,
                .available_bytes = !balloon_guest_stats_valid(st)           ? BALLOON_POLICY_UNKNOWN
                                   : st->available_bytes != BALLOON_STAT_UNSET ? st->available_bytes
                                   : st->free_bytes != BALLOON_STAT_UNSET      ? st->free_bytes
                                                                               : BALLOON_POLICY_UNKNOWN,
        };
}

static void decision_log(const BalloonController *c, const BalloonDecisionRecord *d) {
        char act[FORMAT_SIZE_MAX], tgt[FORMAT_SIZE_MAX], av[FORMAT_SIZE_MAX], tot[FORMAT_SIZE_MAX],
                ca[FORMAT_SIZE_MAX], cl[FORMAT_SIZE_MAX], ga[FORMAT_SIZE_MAX], fl[FORMAT_SIZE_MAX], ce[FORMAT_SIZE_MAX];
        _cleanup_free_ char *field = NULL;

        if (asprintf(&field, "VM=%s", c->name) < 0)
                return;
        log_struct(d->decision.action == BALLOON_POLICY_HOLD ? LOG_DEBUG : LOG_INFO, 0,
                   STRV(MESSAGE_ID_BALLOON_DECISION, field),
                   "Balloon policy: %s guest %s %s → %s (%s); host %s: MemAvailable %s of %s, Committed_AS %s of "
                   "CommitLimit %s; guest available %s, floor %s, ceiling %s",
                   balloon_policy_action_to_string(d->decision.action), c->name,
                   format_size(act, sizeof(act), d->input.actual_bytes),
                   format_size(tgt, sizeof(tgt), d->decision.target_bytes),
                   balloon_policy_reason_to_string(d->decision.reason),
                   balloon_host_state_to_string(d->result.state), format_size(av, sizeof(av), d->host.mem_available),
                   format_size(tot, sizeof(tot), d->host.mem_total), format_size(ca, sizeof(ca), d->host.committed_as),
                   format_size(cl, sizeof(cl), d->host.commit_limit),
                   d->input.available_bytes == BALLOON_POLICY_UNKNOWN
                           ? "unknown"
                           : format_size(ga, sizeof(ga), d->input.available_bytes),
                   format_size(fl, sizeof(fl), d->input.floor_bytes),
                   format_size(ce, sizeof(ce), d->input.ceiling_bytes));
}

BalloonDecisionRecord *balloon_controller_new_decision(BalloonController *c) {
        BalloonDecisionRecord *d;

        if (!c->decisions) {
                c->decisions = calloc(BALLOON_DECISIONS_MAX, sizeof(BalloonDecisionRecord));
                if (!c->decisions)
                        return NULL;
        }
        if (c->n_decisions == BALLOON_DECISIONS_MAX) {
                c->decisions_head = (c->decisions_head + 1) % BALLOON_DECISIONS_MAX;
                c->n_decisions--;
        }
        d = c->decisions + (c->decisions_head + c->n_decisions) % BALLOON_DECISIONS_MAX;
        c->n_decisions++;
        return d;
}

void balloon_policy_run(BalloonPolicyRunner *runner, const BalloonPolicyParams *params, const HostMemory *host,
                        BalloonController *const *controllers, size_t n) {
        _cleanup_free_ BalloonPolicyGuest *inputs = NULL;
        _cleanup_free_ BalloonPolicyDecision *decisions = NULL;
        BalloonPolicyResult result;
        int r;

        if (n == 0)
                return;
        inputs = calloc(n, sizeof(BalloonPolicyGuest));
        decisions = calloc(n, sizeof(BalloonPolicyDecision));
        if (!inputs || !decisions) {
                log_oom();
                return;
        }
        for (size_t i = 0; i < n; i++)
                inputs[i] = policy_input(controllers[i]);

        balloon_policy_decide(params, host, runner->host_state, inputs, n, decisions, &result);
        if (result.state != runner->host_state)
                log_notice("Balloon policy: host memory state %s → %s (MemAvailable %" PRIu64 " of %" PRIu64
                           " bytes, Committed_AS %" PRIu64 " of CommitLimit %" PRIu64 ").",
                           balloon_host_state_to_string(runner->host_state), balloon_host_state_to_string(result.state),
                           host->mem_available, host->mem_total, host->committed_as, host->commit_limit);
        runner->host_state = result.state;

        for (size_t i = 0; i < n; i++) {
                BalloonController *c = controllers[i];
                BalloonDecisionRecord *d;
                BalloonRequest *req;

                d = balloon_controller_new_decision(c);
                if (!d) {
                        log_oom();
                        continue;
                }
                *d = (BalloonDecisionRecord) {
                        .realtime_usec = balloon_now_usec(CLOCK_REALTIME),
                        .decision = decisions[i],
                        .input = inputs[i],
                        .host = *host,
                        .result = result,
                };
                decision_log(c, d);
                balloon_controller_changed(c);  /* the owner saves after the round: the target below too */

                if (decisions[i].action == BALLOON_POLICY_HOLD || !balloon_controller_usable(c))
                        continue;
                c->target = decisions[i].target_bytes;
                c->target_set = true;
                req = balloon_request_new(c);
                if (req)
                        req->target = decisions[i].target_bytes;
                r = balloon_request_execute(req, "balloon", balloon_command_args(decisions[i].target_bytes),
                                            balloon_on_target_reply);
                if (r < 0)
                        log_warning_errno(r, "Guest %s: failed to send the policy's balloon target, ignoring: %m",
                                          c->name);
                balloon_controller_rearm_poll(c);
        }
}

void balloon_policy_run_meminfo(BalloonPolicyRunner *runner, const BalloonPolicyParams *params,
                                const char *meminfo_path, BalloonController *const *controllers, size_t n) {
        HostMemory host;
        Meminfo mi;
        int r;

        r = meminfo_read(meminfo_path, &mi);
        if (r >= 0)
                r = host_memory_from_meminfo(&mi, &host);
        if (r < 0) {
                if (r != runner->last_host_error)
                        log_warning_errno(r, "Balloon policy: failed to read host memory from %s, skipping: %m",
                                          meminfo_path);
                runner->last_host_error = r;
                return;
        }
        runner->last_host_error = 0;
        balloon_policy_run(runner, params, &host, controllers, n);
}
