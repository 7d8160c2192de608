/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The balloon controller of one guest: balloon targets over QMP (optionally waiting until the balloon got
 * there), the guest statistics of the virtio-balloon device (polled), schedules (oscillate/ramp) with a record
 * of each step and its KVM counter deltas, and the decisions of the host-pressure policy (balloon-policy-run.h
 * runs it over all guests).
 *
 * A controller lives as long as its owner knows the guest by name, over restarts: counters and records are
 * running totals. balloon_controller_start() begins tracking a running QEMU through its QmpClient, and
 * balloon_controller_stop() ends it when the guest leaves the running state. The controller knows nothing of
 * the layers above it: what it needs about the guest comes in a BalloonGuestConfig, QEMU's events come in
 * through balloon_controller_on_balloon_change().
 *
 * Errors: functions return a negative errno for internal failures (-ENOMEM), 0 on success, or a positive
 * BalloonError when the caller asked for something that cannot be done; *ret_error (optional) then says more.
 * Asynchronous operations complete through a callback that is called exactly once when the call returned 0,
 * never when it returned anything else. The calls that act on a running guest (check, set target, schedules)
 * and the readers take c == NULL as a guest that never ran: INVALID_STATE, nothing recorded. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "balloon/balloon-util.h"
#include "basic/macro.h"
#include "metrics/metrics-render.h"
#include "metrics/meminfo.h"
#include "balloon/policy.h"
#include "qmp/qmp-client.h"

#define BALLOON_SIZE_UNKNOWN UINT64_MAX
#define BALLOON_STEPS_MAX 256U          /* records kept per guest */
#define BALLOON_DECISIONS_MAX 64U       /* records kept per guest */
#define BALLOON_WAITERS_MAX 16U         /* waits at a time per guest */

typedef struct BalloonController BalloonController;
typedef struct BalloonWait BalloonWait;

typedef enum BalloonError {
        BALLOON_ERROR_NO_DEVICE = 1,    /* the guest has no virtio-balloon device */
        BALLOON_ERROR_OUT_OF_RANGE,     /* a target outside floor..boot memory */
        BALLOON_ERROR_INVALID_STATE,    /* the guest is not running (not tracked) */
        BALLOON_ERROR_TIMEOUT,          /* a wait ended before the balloon reached its target */
        BALLOON_ERROR_FAILED,           /* the balloon command failed; cause says how */
        BALLOON_ERROR_INVALID_SCHEDULE, /* a schedule that cannot run (field, reason) */
        BALLOON_ERROR_NO_SCHEDULE,      /* no schedule is running */
        BALLOON_ERROR_CONFIDENTIAL,     /* the guest's memory is private to it (a confidential guest) */
        _BALLOON_ERROR_MAX,
        _BALLOON_ERROR_INVALID = -EINVAL,
} BalloonError;

DECLARE_STRING_TABLE(balloon_error, BalloonError);

/* What an error is about. Strings are owned (balloon_error_info_done()) except field. */
typedef struct BalloonErrorInfo {
        BalloonError error;
        /* FAILED: -EIO QEMU refused the command (qmp_error_class, qmp_error_desc), -ETIMEDOUT QEMU did not answer,
         * -ECONNRESET the QMP connection closed first, -EBUSY too many waits, -ESRCH the guest stopped first. */
        int cause;
        const char *field;              /* OUT_OF_RANGE, INVALID_SCHEDULE: "target", "from", "to", "every",
                                         * "count" or "mode" (static) */
        char *reason;                   /* OUT_OF_RANGE, TIMEOUT, FAILED, INVALID_SCHEDULE: for people */
        char *qmp_error_class;
        char *qmp_error_desc;
        uint64_t target_bytes;          /* OUT_OF_RANGE, TIMEOUT */
        uint64_t minimum_bytes;         /* OUT_OF_RANGE: max(floor, 1) */
        uint64_t maximum_bytes;         /* OUT_OF_RANGE: the boot memory */
        uint64_t actual_bytes;          /* TIMEOUT: BALLOON_SIZE_UNKNOWN when not known */
} BalloonErrorInfo;

void balloon_error_info_done(BalloonErrorInfo *e);

/* What the owner knows about the guest: from the definition, or what its running QEMU was started with. */
typedef struct BalloonGuestConfig {
        bool device;                    /* it has a virtio-balloon device, balloon0 */
        uint64_t memory_bytes;          /* boot memory */
        uint64_t floor_bytes;           /* targets below are refused */
        uint64_t ceiling_bytes;         /* the policy gives no more (≤ memory) */
        uint64_t stats_interval_usec;   /* guest statistics polling (≥ 1 s) */
        BalloonSchedule schedule;       /* started with tracking; mode NONE: none */
        bool confidential;              /* a confidential guest: its memory cannot be reclaimed through the
                                         * balloon, so targets, schedules and the policy leave it alone */
        /* Which QEMU process this is (pid and its start time, /proc/PID/stat field 22): a record restored by
         * balloon_record_load() (balloon-persist.h) is resumed only by the process it was saved for. 0: not
         * known (never resumes). */
        pid_t pid;
        uint64_t starttime;
} BalloonGuestConfig;

int balloon_controller_new(BalloonController **ret, sd_event *event, const char *name);
/* Ends what is still open: waits complete with -ECANCELED; QMP answers that come later are dropped (a target's
 * callback gets FAILED, cause -ESRCH). */
BalloonController *balloon_controller_free(BalloonController *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(BalloonController *, balloon_controller_free);

const char *balloon_controller_get_name(const BalloonController *c);

/* Called (not re-entered) whenever something a record of the controller keeps changed: the target, the
 * schedule or its position, a step, a decision; the owner saves the record (balloon-persist.h) then. */
typedef void (*BalloonChangeCallback)(BalloonController *c, void *userdata);
void balloon_controller_set_change_callback(BalloonController *c, BalloonChangeCallback cb, void *userdata);
bool balloon_controller_is_tracking(const BalloonController *c);

/* The guest runs with a balloon device behind qmp (a reference is taken): enables the guest statistics,
 * starts polling and the configured schedule. Nothing happens when already tracking. Failures to send
 * are logged, not returned. */
void balloon_controller_start(BalloonController *c, QmpClient *qmp, const BalloonGuestConfig *guest);
/* The guest left the running state: waits complete with INVALID_STATE, the schedule ends, what QEMU answers
 * to commands still open is dropped. For a controller with a restored record that was never started, this
 * says the QEMU the record was saved for is gone: a schedule it was running is reported interrupted. */
void balloon_controller_stop(BalloonController *c);

/* QEMU's BALLOON_CHANGE event: the balloon's actual size now. */
void balloon_controller_on_balloon_change(BalloonController *c, uint64_t actual_bytes);

/* CONFIDENTIAL for a confidential guest, NO_DEVICE when guest has none, INVALID_STATE when not tracking, else 0. */
int balloon_controller_check_running(const BalloonController *c, const BalloonGuestConfig *guest,
                                     BalloonErrorInfo *ret_error);
/* OUT_OF_RANGE unless 0 < max(floor, 1) ≤ target ≤ memory of the running guest; field names the target in the
 * error ("target", "from", "to"). INVALID_STATE when not tracking. */
int balloon_controller_check_target(const BalloonController *c, const char *field, uint64_t target_bytes,
                                    BalloonErrorInfo *ret_error);

/* ---- targets ---- */

typedef struct BalloonTargetResult {
        uint64_t target_bytes;
        uint64_t actual_bytes;          /* BALLOON_SIZE_UNKNOWN when not known */
        bool reached;                   /* actual within BALLOON_REACHED_SLACK of the target */
        uint64_t elapsed_usec;          /* since the wait started (0 without one) */
} BalloonTargetResult;

/* r == 0: result. r > 0: a BalloonError, error says more. r < 0: -ECANCELED (balloon_wait_cancel(), the
 * controller was freed) or the error a progress callback returned. Pointers are valid for the call only. */
typedef void (*BalloonTargetCallback)(int r, const BalloonTargetResult *result, const BalloonErrorInfo *error,
                                      void *userdata);
/* While waiting: called whenever the controller learns the actual size (the same size may come again), not
 * for the size that completes the wait. A negative return ends the wait: the callback gets that error. */
typedef int (*BalloonProgressCallback)(const BalloonTargetResult *progress, void *userdata);

typedef struct BalloonTargetRequest {
        uint64_t target_bytes;
        const char *requester;          /* names the caller in the log */
        bool wait;                      /* complete when the balloon reached the target, not when QEMU took
                                         * the command */
        uint64_t timeout_usec;          /* with wait: TIMEOUT after this long (> 0) */
        BalloonProgressCallback progress; /* with wait; optional */
} BalloonTargetRequest;

/* Checks (NO_DEVICE, INVALID_STATE, OUT_OF_RANGE, FAILED -EBUSY when BALLOON_WAITERS_MAX waits are open), stops
 * a running schedule and sends the balloon command. cb (optional without wait) completes when QEMU answered
 * (without wait: reached says whether the balloon is already there) or, with wait, when the balloon reached
 * the target, the wait timed out, QEMU refused the command (FAILED), the guest stopped (INVALID_STATE).
 * *ret_wait (with wait, optional) is the handle to cancel the wait with; it is valid until cb runs. */
int balloon_controller_set_target(BalloonController *c, const BalloonGuestConfig *guest,
                                  const BalloonTargetRequest *req, BalloonTargetCallback cb, void *userdata,
                                  BalloonWait **ret_wait, BalloonErrorInfo *ret_error);
/* The waiter went away: its callback runs now with -ECANCELED. */
void balloon_wait_cancel(BalloonWait *w);

/* ---- schedules and steps ---- */

typedef enum BalloonScheduleOrigin {
        BALLOON_SCHEDULE_ORIGIN_DEFINITION,     /* from the guest's definition, started with the guest */
        BALLOON_SCHEDULE_ORIGIN_API,
        _BALLOON_SCHEDULE_ORIGIN_MAX,
        _BALLOON_SCHEDULE_ORIGIN_INVALID = -EINVAL,
} BalloonScheduleOrigin;

DECLARE_STRING_TABLE(balloon_schedule_origin, BalloonScheduleOrigin);

/* Checks (as balloon_controller_check_running(), the range of from and to, balloon_schedule_validate():
 * INVALID_SCHEDULE) and starts it, replacing a running one. */
int balloon_controller_set_schedule(BalloonController *c, const BalloonGuestConfig *guest,
                                    const BalloonSchedule *schedule, BalloonErrorInfo *ret_error);
/* NO_SCHEDULE when none runs; requester names the caller in the log. */
int balloon_controller_cancel_schedule(BalloonController *c, const BalloonGuestConfig *guest, const char *requester,
                                       BalloonErrorInfo *ret_error);

/* One step of a schedule. */
typedef struct BalloonStep {
        unsigned index;                 /* within its schedule */
        uint64_t id;                    /* per guest, counting from 1 */
        uint64_t start_realtime_usec;
        uint64_t start_monotonic_usec;
        uint64_t target_bytes;
        uint64_t actual_start_bytes;    /* BALLOON_SIZE_UNKNOWN when not known */
        uint64_t actual_bytes;          /* last seen during the step; BALLOON_SIZE_UNKNOWN when not known */
        uint64_t reached_usec;          /* time to reach the target, when reached */
        bool reached;
        bool done;
        char *error;                    /* the balloon command failed */
        json_object *kvm;               /* kvm_stats_delta_json(), {"available": false, "reason": …}, or NULL
                                         * while the counters are not known yet */
} BalloonStep;

/* The steps recorded (at most BALLOON_STEPS_MAX), oldest first; i < balloon_controller_n_steps(). */
size_t balloon_controller_n_steps(const BalloonController *c);
const BalloonStep *balloon_controller_get_step(const BalloonController *c, size_t i);

/* ---- reading ---- */

/* A policy decision and what it was made from. */
typedef struct BalloonDecisionRecord {
        uint64_t realtime_usec;
        BalloonPolicyDecision decision;
        BalloonPolicyGuest input;
        HostMemory host;
        BalloonPolicyResult result;
} BalloonDecisionRecord;

/* The decisions recorded (at most BALLOON_DECISIONS_MAX), oldest first. */
size_t balloon_controller_n_decisions(const BalloonController *c);
const BalloonDecisionRecord *balloon_controller_get_decision(const BalloonController *c, size_t i);

/* A schedule that a restart of the owner cut short (balloon-persist.h): it could not be resumed. */
typedef struct BalloonScheduleInterruption {
        bool set;
        BalloonSchedule schedule;
        unsigned next;                  /* the step it would have run next */
        BalloonScheduleOrigin origin;
        uint64_t realtime_usec;         /* when the interruption was found */
        char *reason;                   /* for people */
} BalloonScheduleInterruption;

typedef struct BalloonStatus {
        bool tracking;                  /* the rest is valid only while tracking, but last_decision */
        uint64_t target_bytes;          /* the last target sent, or the boot memory while none was */
        uint64_t actual_bytes;          /* BALLOON_SIZE_UNKNOWN when not known yet */
        BalloonGuestStats stats;        /* balloon_guest_stats_valid() once the guest reported */
        bool schedule_active;
        BalloonSchedule schedule;
        unsigned schedule_next;         /* the next step */
        BalloonScheduleOrigin schedule_origin;
        const BalloonDecisionRecord *last_decision;     /* NULL: none */
        const BalloonScheduleInterruption *interrupted; /* NULL: none */
} BalloonStatus;

void balloon_controller_get_status(const BalloonController *c, BalloonStatus *ret);

/* What the metrics show. Counters are running totals over the controller's life. */
typedef struct BalloonControllerInfo {
        bool tracking;                  /* running with a balloon device: target and stats are valid */
        uint64_t target_bytes;          /* the last target sent, or the boot memory while none was */
        BalloonGuestStats stats;        /* the last guest statistics (balloon_guest_stats_valid()) */
        uint64_t steps_total;           /* schedule steps started */
        uint64_t steps_reached_total;   /* … whose target was reached */
        uint64_t steps_reached_usec;    /* time those took to reach it, summed */
} BalloonControllerInfo;

void balloon_controller_get_info(const BalloonController *c, BalloonControllerInfo *ret);
/* The same and the actual size as the metrics take them (metrics-render.h); a NULL controller reads as a
 * guest that never ran. */
void balloon_controller_get_metrics(const BalloonController *c, MetricsBalloon *ret);
/* The last target and the actual size; false when not tracking. *ret_actual is BALLOON_SIZE_UNKNOWN when not
 * known yet. */
bool balloon_controller_get_sizes(const BalloonController *c, uint64_t *ret_target, uint64_t *ret_actual);
