/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The record of a balloon controller as text, so that its owner can keep it over a restart: the last target
 * and actual size of the QEMU it was tracking (by pid and start time), the schedule that was running and its
 * position (next step, when step 0 started, who started it), a schedule reported interrupted, the steps
 * (at most BALLOON_STEPS_MAX) and decisions (at most BALLOON_DECISIONS_MAX) and the step counters.
 *
 * Where and when the text is written is the owner's (the daemon writes it atomically into its state
 * directory whenever balloon_controller_set_change_callback() says so). A restored record is applied when the
 * controller next starts tracking: the same QEMU process (BalloonGuestConfig pid and starttime) gets its
 * target back (nothing is sent) and its schedule resumed at the step due now; any other start, or a stop
 * before a start, reports the schedule as interrupted (BalloonStatus.interrupted) with when and why. A step
 * that was in progress is closed as cut short by the restart. */

#include <stddef.h>

#include "balloon/balloon-controller.h"

#define BALLOON_RECORD_VERSION 1
/* A record is at most this large: 256 steps of KVM counter deltas and 64 decisions fit well within. */
#define BALLOON_RECORD_SIZE_MAX (8U * 1024U * 1024U)

/* JSON text of c's record (NUL-terminated, *ret_size without the NUL). */
int balloon_record_save(const BalloonController *c, char **ret_text, size_t *ret_size);

/* Restores text (size bytes) into c, which must be fresh (not tracking, no steps, no decisions). -EBADMSG for
 * text that is not a valid record (*ret_reason, optional, says what is wrong; static), -E2BIG over
 * BALLOON_RECORD_SIZE_MAX; c is left unchanged on failure. Records of more steps or decisions than kept keep
 * the newest. */
int balloon_record_load(BalloonController *c, const char *text, size_t size, const char **ret_reason);
