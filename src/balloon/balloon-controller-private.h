/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The inside of a BalloonController, shared by balloon-controller.c (tracking, targets, waits, polling),
 * balloon-steps.c (schedules and steps) and balloon-policy-run.c. Not for use outside src/balloon. */

#include "balloon/balloon-controller.h"
#include "qmp/qmp-stats.h"

#define BALLOON_DEVICE_PATH "/machine/peripheral/balloon0"
#define BALLOON_FAST_POLL_USEC (250U * USEC_PER_MSEC)
#define BALLOON_QMP_TIMEOUT_USEC (5U * USEC_PER_SEC)

#define MESSAGE_ID_BALLOON_DECISION "MESSAGE_ID=5b0e1d7c3a924f6e8d1c2b3a4f5e6d70"
#define MESSAGE_ID_BALLOON_STEP "MESSAGE_ID=5b0e1d7c3a924f6e8d1c2b3a4f5e6d71"

/* A QMP command (or KVM statistics query) in flight. Its controller keeps it in a list so that stopping or
 * freeing the controller detaches it: what QEMU answers later is dropped. */
typedef struct BalloonRequest BalloonRequest;
struct BalloonRequest {
        BalloonController *controller;  /* NULL once detached */
        BalloonRequest *prev, *next;
        uint64_t step_id;               /* step commands */
        uint64_t target;                /* balloon command */
        uint64_t wait_id;               /* a wait that QEMU's refusal ends (0: none) */
        BalloonTargetCallback cb;       /* without wait: QEMU's answer */
        void *userdata;
};

struct BalloonWait {
        BalloonController *controller;
        uint64_t id;                    /* names it in the BalloonRequest of its balloon command */
        uint64_t target;
        uint64_t start_monotonic;
        uint64_t timeout_usec;
        uint64_t actual_start;          /* BALLOON_SIZE_UNKNOWN: unknown when the wait started */
        sd_event_source *timer;
        BalloonTargetCallback cb;
        BalloonProgressCallback progress;
        void *userdata;
};

typedef struct BalloonStepSlot {
        BalloonStep step;
        KvmStats *before;               /* counters at the start of the step */
} BalloonStepSlot;

/* A restored record's state of the QEMU it was saved for (balloon-persist.c). */
typedef struct BalloonRestored {
        pid_t pid;
        uint64_t starttime;
        bool target_set;
        uint64_t target;
        bool schedule_active;
        BalloonSchedule schedule;
        unsigned schedule_next;
        BalloonScheduleOrigin schedule_origin;
        uint64_t schedule_start_realtime;
} BalloonRestored;

struct BalloonController {
        sd_event *event;
        char *name;
        bool tracking;                  /* running with a balloon device */
        QmpClient *qmp;                 /* while tracking */
        BalloonGuestConfig config;      /* of the running QEMU */
        BalloonRequest *requests;       /* in flight */

        bool actual_known;
        uint64_t actual;
        bool target_set;
        uint64_t target;

        BalloonGuestStats stats;
        uint64_t next_stats_monotonic;
        bool balloon_query_pending, stats_query_pending;
        sd_event_source *poll_timer;

        BalloonWait *waiters[BALLOON_WAITERS_MAX];
        size_t n_waiters;
        uint64_t last_wait_id;

        BalloonSchedule schedule;
        bool schedule_active;
        BalloonScheduleOrigin schedule_origin;
        uint64_t schedule_start;
        uint64_t schedule_start_realtime;       /* the same on CLOCK_REALTIME, for the record */
        unsigned schedule_next;
        sd_event_source *schedule_timer;

        BalloonStepSlot *steps;         /* ring of BALLOON_STEPS_MAX, allocated on first use */
        size_t n_steps, steps_head;
        uint64_t steps_total;
        uint64_t steps_reached_total, steps_reached_usec;       /* running totals, for the metrics */
        BalloonStep *current_step;

        BalloonDecisionRecord *decisions;       /* ring of BALLOON_DECISIONS_MAX, allocated on first use */
        size_t n_decisions, decisions_head;

        BalloonChangeCallback on_change;
        void *on_change_userdata;
        bool in_change;

        /* What balloon_record_load() restored, until the next start (same QEMU: resumed) or stop (gone). */
        bool restored;
        BalloonRestored *restore;
        BalloonScheduleInterruption interrupted;
};

uint64_t balloon_now_usec(clockid_t clock);

/* Tracking, and QEMU's QMP connection still up. */
bool balloon_controller_usable(const BalloonController *c);

/* A request linked into c; NULL on OOM. */
BalloonRequest *balloon_request_new(BalloonController *c);
/* Unlinks and frees it. */
BalloonRequest *balloon_request_free(BalloonRequest *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(BalloonRequest *, balloon_request_free);
/* Sends command (args consumed) with req (consumed, freed on failure) as the callback's userdata. */
int balloon_request_execute(BalloonRequest *req, const char *command, json_object *args, QmpCommandCallback cb);
json_object *balloon_command_args(uint64_t target);
/* The reply to a balloon command of a target (req->target): logs a failure, ends the wait req->wait_id or
 * answers req->cb. */
void balloon_on_target_reply(QmpClient *q, int error, json_object *result, const char *error_class,
                             const char *error_desc, void *userdata);

/* Brings the next poll forward as the waits and steps need it. */
void balloon_controller_rearm_poll(BalloonController *c);

/* balloon-steps.c */
void balloon_controller_step_actual(BalloonController *c);     /* the actual size changed */
void balloon_controller_step_finish(BalloonController *c, BalloonStep *s);
void balloon_controller_schedule_stop(BalloonController *c);
int balloon_controller_schedule_start(BalloonController *c, const BalloonSchedule *s, BalloonScheduleOrigin origin);
void balloon_controller_steps_free(BalloonController *c);
/* A new step record (the oldest goes when BALLOON_STEPS_MAX are kept); NULL on OOM. */
BalloonStep *balloon_controller_new_step(BalloonController *c);
/* Starts sched at step next as if its step 0 had started at start_realtime (CLOCK_REALTIME). */
int balloon_controller_schedule_resume(BalloonController *c, const BalloonSchedule *sched, BalloonScheduleOrigin origin,
                                       uint64_t start_realtime, unsigned next);

/* balloon-policy-run.c: a new decision record (the oldest goes when full); NULL on OOM. */
BalloonDecisionRecord *balloon_controller_new_decision(BalloonController *c);

/* Tells the owner a record changed (balloon_controller_set_change_callback()). */
void balloon_controller_changed(BalloonController *c);

/* balloon-persist.c: at start, what a restored record says about this QEMU (resume, or interrupted); true
 * when the record was saved for this very process (then the definition's schedule is not started anew). */
bool balloon_controller_restore_apply(BalloonController *c, const BalloonGuestConfig *guest);
void balloon_schedule_interruption_done(BalloonScheduleInterruption *i);
int balloon_controller_interrupt(BalloonController *c, const BalloonSchedule *sched, unsigned next,
                                 BalloonScheduleOrigin origin, const char *reason);
