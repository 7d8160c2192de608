/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The JSON form of the balloon controller's records, as the API shows them (the BalloonStep, BalloonDecision and
 * BalloonInfo types of io.memvisor.Manager; D-Bus shows the same objects as a{sv}), beside
 * balloon_guest_stats_to_json() and balloon_schedule_to_json() in balloon-util.h. Sizes that are not known are
 * left out. */

#include <json-c/json.h>

#include "balloon/balloon-controller.h"

/* {"index", "realtimeUSec", "targetBytes", "actualStartBytes", "actualBytes", "reached", "finished",
 * "timeToReachUSec", "error", "kvm"}. */
int balloon_step_to_json(const BalloonStep *s, json_object **ret);
/* {"realtimeUSec", "action", "reason", "targetBytes", "actualBytes", "floorBytes", "ceilingBytes",
 * "guestAvailableBytes", "host": {…}}. */
int balloon_decision_to_json(const BalloonDecisionRecord *d, json_object **ret);
/* GetBalloon's BalloonInfo: {"name", "state", "tracking", "memoryBytes", "floorBytes", "ceilingBytes", "policy",
 * "statsIntervalUSec"} of a guest (its state's name, its configuration, whether the policy moves it) and what
 * balloon_status_to_json() adds. */
int balloon_info_to_json(const char *name, const char *state, const BalloonGuestConfig *cfg, bool policy,
                         const BalloonStatus *st, json_object **ret);
/* Adds what the controller knows to a BalloonInfo object: while tracking "targetBytes", "actualBytes",
 * "guestStats", "schedule"; "scheduleInterrupted" (a schedule a restart cut short: the BalloonSchedule with
 * "interruptedRealtimeUSec" and "interruptedReason"), "lastDecision". */
int balloon_status_to_json(const BalloonStatus *st, json_object *o);
/* {"name", "targetBytes", "actualBytes", "reached", "elapsedUSec"}: SetBalloon's reply and progress. */
int balloon_target_result_to_json(const char *name, const BalloonTargetResult *r, json_object **ret);
/* Every step (GetBalloonSteps' "steps") or decision (GetBalloonDecisions' "decisions") the controller keeps, as
 * an array, oldest first (a NULL controller has none). */
int balloon_steps_to_json(const BalloonController *c, json_object **ret);
int balloon_decisions_to_json(const BalloonController *c, json_object **ret);
