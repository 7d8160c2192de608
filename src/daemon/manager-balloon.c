/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Ballooning: balloon targets on request (SetBalloon, optionally following progress), guest statistics from
 * virtio-balloon stats polling, schedules (oscillate/ramp) with a record of each step and its KVM counter
 * deltas, and the host-pressure policy (src/balloon/policy.c) on a timer.
 *
 * Per guest state lives in a BalloonGuest, kept by name (a Vm may be freed and defined again). QMP replies
 * and KVM statistics come back through a BalloonRequest that names the guest and the generation it was sent
 * for: replies for a guest that stopped (or a daemon shutting down, m->balloon == NULL) are dropped. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <time.h>

#include "balloon-util.h"
#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "meminfo.h"
#include "parse.h"
#include "policy.h"
#include "qmp-stats.h"

#define ERROR_NO_SUCH_VM "io.memvisor.Manager.NoSuchVM"
#define ERROR_INVALID_STATE "io.memvisor.Manager.InvalidState"
#define ERROR_NO_BALLOON "io.memvisor.Manager.NoBalloonDevice"
#define ERROR_TARGET_OUT_OF_RANGE "io.memvisor.Manager.BalloonTargetOutOfRange"
#define ERROR_BALLOON_TIMEOUT "io.memvisor.Manager.BalloonTimeout"
#define ERROR_BALLOON_FAILED "io.memvisor.Manager.BalloonFailed"
#define ERROR_INVALID_SCHEDULE "io.memvisor.Manager.InvalidBalloonSchedule"
#define ERROR_NO_SCHEDULE "io.memvisor.Manager.NoBalloonSchedule"

#define MESSAGE_ID_BALLOON_DECISION "MESSAGE_ID=5b0e1d7c3a924f6e8d1c2b3a4f5e6d70"
#define MESSAGE_ID_BALLOON_STEP "MESSAGE_ID=5b0e1d7c3a924f6e8d1c2b3a4f5e6d71"

#define BALLOON_DEVICE_PATH "/machine/peripheral/balloon0"
#define BALLOON_STEPS_MAX 256U
#define BALLOON_DECISIONS_MAX 64U
#define BALLOON_WAITERS_MAX 16U
#define BALLOON_FAST_POLL_USEC (250U * USEC_PER_MSEC)
#define BALLOON_QMP_TIMEOUT_USEC (5U * USEC_PER_SEC)

typedef struct BalloonGuest BalloonGuest;

typedef struct BalloonStep {
        unsigned index;                 /* within its schedule */
        uint64_t id;                    /* per guest, since the daemon started */
        uint64_t start_realtime;
        uint64_t start_monotonic;
        uint64_t target;
        uint64_t actual_start;          /* UINT64_MAX: unknown */
        uint64_t actual;                /* last seen during the step */
        uint64_t reached_usec;          /* time to reach; valid when reached */
        bool reached;
        bool done;
        char *error;                    /* balloon command failed */
        KvmStats *before;
        bool before_pending;
        json_object *kvm;               /* delta JSON, or {"available": false, "reason": …} */
} BalloonStep;

typedef struct BalloonWaiter {
        BalloonGuest *guest;
        uint64_t id;                    /* names it in the BalloonRequest of its balloon command */
        VarlinkConnection *conn;
        bool more;
        uint64_t target;
        uint64_t start_monotonic;
        uint64_t timeout_usec;
        uint64_t actual_start;          /* UINT64_MAX: unknown when the wait started */
        uint64_t last_notified;
        sd_event_source *timer;
} BalloonWaiter;

typedef struct BalloonDecisionRecord {
        uint64_t realtime;
        BalloonPolicyDecision decision;
        BalloonPolicyGuest input;
        HostMemory host;
        BalloonPolicyResult result;
} BalloonDecisionRecord;

struct BalloonGuest {
        ManagerBalloon *mb;
        char *name;
        uint64_t generation;            /* bumped whenever tracking starts or stops */
        bool tracking;                  /* running with a balloon device */

        bool actual_known;
        uint64_t actual;
        bool target_set;
        uint64_t target;
        uint64_t memory;                /* boot memory of the running QEMU */

        BalloonGuestStats stats;
        uint64_t stats_interval_usec;
        uint64_t next_stats_monotonic;
        bool balloon_query_pending, stats_query_pending;
        sd_event_source *poll_timer;

        BalloonWaiter *waiters[BALLOON_WAITERS_MAX];
        size_t n_waiters;

        BalloonSchedule schedule;
        bool schedule_active;
        const char *schedule_origin;    /* "definition" or "api" */
        uint64_t schedule_start;
        unsigned schedule_next;
        sd_event_source *schedule_timer;

        BalloonStep *steps;                     /* ring of BALLOON_STEPS_MAX, allocated on first use */
        size_t n_steps, steps_head;
        uint64_t steps_total;
        uint64_t steps_reached_total, steps_reached_usec;       /* running totals, for the metrics */
        BalloonStep *current_step;

        BalloonDecisionRecord *decisions;       /* ring of BALLOON_DECISIONS_MAX, allocated on first use */
        size_t n_decisions, decisions_head;
};

struct ManagerBalloon {
        Manager *manager;
        BalloonGuest **guests;
        size_t n_guests;
        sd_event_source *policy_timer;
        BalloonHostState host_state;
        int last_host_error;
        uint64_t last_waiter_id;
};

typedef enum BalloonRequestKind {
        BALLOON_REQUEST_QUERY,
        BALLOON_REQUEST_STATS,
        BALLOON_REQUEST_SET_POLLING,
        BALLOON_REQUEST_SET_TARGET,
        BALLOON_REQUEST_STEP_TARGET,
        BALLOON_REQUEST_STEP_BEFORE,
        BALLOON_REQUEST_STEP_AFTER,
        _BALLOON_REQUEST_KIND_MAX,
        _BALLOON_REQUEST_KIND_INVALID = -EINVAL,
} BalloonRequestKind;

typedef struct BalloonRequest {
        Manager *manager;
        char *name;
        uint64_t generation;
        BalloonRequestKind kind;
        uint64_t step_id;
        uint64_t target;
        VarlinkConnection *conn;        /* SetBalloon without wait: reply when QEMU answered */
        ManagerCompletion completion;   /* the same for manager_balloon_set_target() (D-Bus) */
        uint64_t waiter_id;             /* SetBalloon with wait: QEMU's error ends that wait (0: none) */
} BalloonRequest;

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* ---- guests ----------------------------------------------------------------------------------- */

static json_object *json_drop(json_object *o) {
        if (o)
                (void) json_object_put(o);
        return NULL;
}

static void step_done_free(BalloonStep *s) {
        s->before = kvm_stats_free(s->before);
        s->kvm = json_drop(s->kvm);
        s->error = mfree(s->error);
}

static void waiter_free(BalloonWaiter *w);

static BalloonGuest *balloon_guest_free(BalloonGuest *g) {
        if (!g)
                return NULL;
        while (g->n_waiters > 0)
                waiter_free(g->waiters[g->n_waiters - 1]);
        g->poll_timer = sd_event_source_disable_unref(g->poll_timer);
        g->schedule_timer = sd_event_source_disable_unref(g->schedule_timer);
        for (size_t i = 0; g->steps && i < BALLOON_STEPS_MAX; i++)
                step_done_free(g->steps + i);
        free(g->steps);
        free(g->decisions);
        free(g->name);
        free(g);
        return NULL;
}

static BalloonGuest *balloon_guest_find(ManagerBalloon *mb, const char *name) {
        for (size_t i = 0; i < mb->n_guests; i++)
                if (streq(mb->guests[i]->name, name))
                        return mb->guests[i];
        return NULL;
}

static int balloon_guest_get(ManagerBalloon *mb, const char *name, BalloonGuest **ret) {
        _cleanup_free_ BalloonGuest *g = NULL;
        BalloonGuest **t;

        *ret = balloon_guest_find(mb, name);
        if (*ret)
                return 0;

        /* Forget guests that are no longer defined and have nothing running, to stay bounded. */
        for (size_t i = 0; i < mb->n_guests;) {
                BalloonGuest *o = mb->guests[i];
                if (!o->tracking && !manager_find_vm(mb->manager, o->name)) {
                        balloon_guest_free(o);
                        memmove(mb->guests + i, mb->guests + i + 1, (mb->n_guests - i - 1) * sizeof(BalloonGuest *));
                        mb->n_guests--;
                        continue;
                }
                i++;
        }

        g = calloc(1, sizeof(BalloonGuest));
        if (!g)
                return -ENOMEM;
        g->mb = mb;
        g->name = strdup(name);
        if (!g->name)
                return -ENOMEM;
        t = realloc(mb->guests, (mb->n_guests + 1) * sizeof(BalloonGuest *));
        if (!t) {
                free(g->name);
                return -ENOMEM;
        }
        mb->guests = t;
        mb->guests[mb->n_guests++] = g;
        *ret = TAKE_PTR(g);
        return 0;
}

static Vm *guest_vm(BalloonGuest *g) {
        Vm *vm = manager_find_vm(g->mb->manager, g->name);

        if (!vm || vm->state != VM_STATE_RUNNING || !vm->qmp || !vm->running_spec || !vm->running_spec->balloon)
                return NULL;
        return vm;
}

/* ---- QMP requests ----------------------------------------------------------------------------- */

static BalloonRequest *balloon_request_free(BalloonRequest *r) {
        if (!r)
                return NULL;
        if (r->conn)
                varlink_connection_unref(r->conn);
        manager_completion_drop(&r->completion);
        free(r->name);
        free(r);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(BalloonRequest *, balloon_request_free);

static BalloonRequest *balloon_request_new(BalloonGuest *g, BalloonRequestKind kind) {
        BalloonRequest *r = calloc(1, sizeof(BalloonRequest));

        if (!r)
                return NULL;
        *r = (BalloonRequest) { .manager = g->mb->manager, .generation = g->generation, .kind = kind };
        r->name = strdup(g->name);
        if (!r->name)
                return mfree(r);
        return r;
}

/* The guest a reply belongs to, or NULL when it is stale. */
static BalloonGuest *balloon_request_guest(BalloonRequest *r) {
        BalloonGuest *g;

        if (!r->manager->balloon)
                return NULL;
        g = balloon_guest_find(r->manager->balloon, r->name);
        if (!g || g->generation != r->generation || !g->tracking)
                return NULL;
        return g;
}

/* Whether someone waits for QEMU's answer to a SetBalloon: a varlink call or a manager_balloon_set_target()
 * caller. */
static bool balloon_request_waited_for(const BalloonRequest *req) {
        return req->conn || manager_completion_pending(&req->completion);
}

/* Answers it, whichever transport it came by; takes p. */
static void balloon_request_answer(BalloonRequest *req, const char *error, json_object *p) {
        if (req->conn)
                (void) (error ? varlink_error(req->conn, error, p) : varlink_reply(req->conn, p));
        else
                manager_completion_finish(&req->completion, error, p);
}

static void on_qmp_reply(QmpClient *q, int error, json_object *result, const char *error_class,
                         const char *error_desc, void *userdata);

static int balloon_execute(BalloonGuest *g, Vm *vm, BalloonRequest *req, const char *command, json_object *args) {
        _cleanup_(balloon_request_freep) BalloonRequest *owned = req;
        _cleanup_json_ json_object *a = args;
        int r;

        if (!req)
                return -ENOMEM;
        r = qmp_client_execute(vm->qmp, command, TAKE_PTR(a), BALLOON_QMP_TIMEOUT_USEC, on_qmp_reply, req);
        if (r < 0)
                return r;
        TAKE_PTR(owned);
        return 0;
}

static json_object *balloon_args(uint64_t target) {
        _cleanup_json_ json_object *a = json_object_new_object();

        if (!a || json_add_uint(a, "value", target) < 0)
                return NULL;
        return TAKE_PTR(a);
}

static json_object *qom_args(const char *property, json_object *value) {
        _cleanup_json_ json_object *a = json_object_new_object(), *v = value;

        if (!a || json_add_string(a, "path", BALLOON_DEVICE_PATH) < 0 || json_add_string(a, "property", property) < 0)
                return NULL;
        if (v && json_add(a, "value", TAKE_PTR(v)) < 0)
                return NULL;
        return TAKE_PTR(a);
}

/* ---- progress: waiters and steps -------------------------------------------------------------- */

static void guest_rearm_poll(BalloonGuest *g);
static void step_finish(BalloonGuest *g, BalloonStep *s);

static void waiter_closed(VarlinkConnection *c, void *userdata);

static int reply_progress(BalloonWaiter *w, bool final, bool reached) {
        BalloonGuest *g = w->guest;
        _cleanup_json_ json_object *p = json_object_new_object();
        int r;

        if (!p || json_add_string(p, "name", g->name) < 0 || json_add_uint(p, "targetBytes", w->target) < 0 ||
            (g->actual_known && json_add_uint(p, "actualBytes", g->actual) < 0) ||
            json_add_bool(p, "reached", reached) < 0 ||
            json_add_uint(p, "elapsedUSec", now_usec(CLOCK_MONOTONIC) - w->start_monotonic) < 0)
                return -ENOMEM;
        /* A message over the client's output limit closes the connection, and the close callback would free w
         * under us (and the caller would free it again): detach it while sending. The caller frees w after a
         * final reply or a failure. */
        varlink_connection_set_close_callback(w->conn, NULL, NULL);
        if (final)
                return varlink_reply(w->conn, TAKE_PTR(p));
        r = varlink_notify(w->conn, TAKE_PTR(p));
        if (r >= 0 && varlink_connection_is_closed(w->conn))
                r = -ENOTCONN;
        if (r >= 0)
                varlink_connection_set_close_callback(w->conn, waiter_closed, w);
        return r;
}

static void waiter_closed(VarlinkConnection *c, void *userdata) {
        waiter_free(userdata);
}

static void waiter_free(BalloonWaiter *w) {
        BalloonGuest *g;

        if (!w)
                return;
        g = w->guest;
        for (size_t i = 0; i < g->n_waiters; i++)
                if (g->waiters[i] == w) {
                        memmove(g->waiters + i, g->waiters + i + 1, (g->n_waiters - i - 1) * sizeof(BalloonWaiter *));
                        g->n_waiters--;
                        break;
                }
        w->timer = sd_event_source_disable_unref(w->timer);
        varlink_connection_set_close_callback(w->conn, NULL, NULL);
        varlink_connection_unref(w->conn);
        free(w);
}

static void waiter_fail(BalloonWaiter *w, const char *error, json_object *params) {
        varlink_connection_set_close_callback(w->conn, NULL, NULL);   /* as in reply_progress() */
        (void) varlink_error(w->conn, error, params);
        waiter_free(w);
}

static BalloonWaiter *guest_find_waiter(BalloonGuest *g, uint64_t id) {
        for (size_t i = 0; id > 0 && i < g->n_waiters; i++)
                if (g->waiters[i]->id == id)
                        return g->waiters[i];
        return NULL;
}

static int waiter_on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        BalloonWaiter *w = userdata;
        BalloonGuest *g = w->guest;
        char tbuf[FORMAT_TIMESPAN_MAX], a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX], t[FORMAT_SIZE_MAX];
        _cleanup_free_ char *reason = NULL;
        json_object *p;
        bool moved;

        format_timespan(tbuf, sizeof(tbuf), w->timeout_usec);
        moved = g->actual_known && w->actual_start != UINT64_MAX && !balloon_reached(g->actual, w->actual_start);
        if (!moved)
                (void) asprintf(&reason,
                                "no progress within %s: the balloon stayed at %s instead of moving to %s; the guest's "
                                "virtio_balloon driver may not be loaded",
                                tbuf, g->actual_known ? format_size(a, sizeof(a), g->actual) : "an unknown size",
                                format_size(t, sizeof(t), w->target));
        else
                (void) asprintf(&reason, "target %s not reached within %s: the balloon moved from %s to %s",
                                format_size(t, sizeof(t), w->target), tbuf,
                                format_size(a, sizeof(a), w->actual_start), format_size(b, sizeof(b), g->actual));
        log_warning("Guest %s: balloon wait: %s", g->name, strna(reason));

        p = json_object_new_object();
        if (p && (json_add_string(p, "name", g->name) < 0 || json_add_uint(p, "targetBytes", w->target) < 0 ||
                  (g->actual_known && json_add_uint(p, "actualBytes", g->actual) < 0) ||
                  json_add_string(p, "reason", strna(reason)) < 0))
                p = json_drop(p);
        waiter_fail(w, ERROR_BALLOON_TIMEOUT, p);
        guest_rearm_poll(g);
        return 0;
}

static BalloonStep *guest_find_step(BalloonGuest *g, uint64_t id) {
        for (size_t i = 0; i < g->n_steps; i++) {
                BalloonStep *s = g->steps + (g->steps_head + i) % BALLOON_STEPS_MAX;
                if (s->id == id)
                        return s;
        }
        return NULL;
}

static void guest_actual_changed(BalloonGuest *g) {
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        /* Copy: replying may free waiters. */
        BalloonWaiter *copy[BALLOON_WAITERS_MAX];
        size_t n = g->n_waiters;

        memcpy(copy, g->waiters, n * sizeof(BalloonWaiter *));
        for (size_t i = 0; i < n; i++) {
                BalloonWaiter *w = copy[i];
                bool still = false;

                for (size_t j = 0; j < g->n_waiters; j++)
                        still = still || g->waiters[j] == w;
                if (!still)
                        continue;
                if (w->actual_start == UINT64_MAX)
                        w->actual_start = g->actual;
                if (balloon_reached(g->actual, w->target)) {
                        (void) reply_progress(w, true, true);
                        waiter_free(w);
                } else if (w->more && g->actual != w->last_notified) {
                        w->last_notified = g->actual;
                        if (reply_progress(w, false, false) < 0)
                                waiter_free(w);
                }
        }

        if (g->current_step && !g->current_step->done) {
                BalloonStep *s = g->current_step;

                if (s->actual_start == UINT64_MAX)
                        s->actual_start = g->actual;
                s->actual = g->actual;
                if (!s->reached && balloon_reached(g->actual, s->target)) {
                        s->reached = true;
                        s->reached_usec = now - s->start_monotonic;
                        step_finish(g, s);
                }
        }
        guest_rearm_poll(g);
}

static void guest_set_actual(BalloonGuest *g, uint64_t actual) {
        g->actual = actual;
        g->actual_known = true;
        guest_actual_changed(g);
}

/* ---- steps ------------------------------------------------------------------------------------ */

static void on_kvm_stats(KvmStats *stats, int error, void *userdata);

static int step_query_kvm(BalloonGuest *g, Vm *vm, BalloonStep *s, BalloonRequestKind kind) {
        _cleanup_(balloon_request_freep) BalloonRequest *req = balloon_request_new(g, kind);
        int r;

        if (!req)
                return -ENOMEM;
        req->step_id = s->id;
        r = kvm_stats_query(vm->qmp, BALLOON_QMP_TIMEOUT_USEC, on_kvm_stats, req);
        if (r < 0)
                return r;
        TAKE_PTR(req);
        return 0;
}

static json_object *kvm_unavailable(const char *reason) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o || json_add_bool(o, "available", false) < 0 || json_add_string(o, "reason", reason) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static void step_log(BalloonGuest *g, BalloonStep *s) {
        char t[FORMAT_SIZE_MAX], a[FORMAT_SIZE_MAX], d[FORMAT_TIMESPAN_MAX];
        _cleanup_free_ char *field = NULL;

        if (asprintf(&field, "VM=%s", g->name) < 0)
                return;
        log_struct(LOG_INFO, 0, STRV(MESSAGE_ID_BALLOON_STEP, field),
                   "Guest %s: balloon step %u: target %s, %s %s%s%s", g->name, s->index,
                   format_size(t, sizeof(t), s->target), s->reached ? "reached in" : "not reached, at",
                   s->reached ? format_timespan(d, sizeof(d), s->reached_usec)
                              : (s->actual == UINT64_MAX ? "unknown" : format_size(a, sizeof(a), s->actual)),
                   s->error ? "; " : "", strempty(s->error));
}

/* The step is over (reached, superseded, or its guest stopped): take the "after" KVM counters. */
static void step_finish(BalloonGuest *g, BalloonStep *s) {
        Vm *vm;

        if (s->done)
                return;
        s->done = true;
        if (s->reached) {
                g->steps_reached_total++;
                g->steps_reached_usec += s->reached_usec;
        }
        if (g->current_step == s)
                g->current_step = NULL;
        step_log(g, s);

        vm = guest_vm(g);
        if (!vm) {
                if (!s->kvm)
                        s->kvm = kvm_unavailable("the guest stopped before the step ended");
                return;
        }
        if (!s->kvm && step_query_kvm(g, vm, s, BALLOON_REQUEST_STEP_AFTER) < 0)
                s->kvm = kvm_unavailable("failed to query KVM statistics");
}

static void on_kvm_stats(KvmStats *stats, int error, void *userdata) {
        _cleanup_(balloon_request_freep) BalloonRequest *req = userdata;
        _cleanup_(kvm_stats_freep) KvmStats *st = stats;
        BalloonGuest *g = balloon_request_guest(req);
        BalloonStep *s;

        if (!g)
                return;
        s = guest_find_step(g, req->step_id);
        if (!s || s->kvm)
                return;

        if (req->kind == BALLOON_REQUEST_STEP_BEFORE) {
                s->before_pending = false;
                if (error == -ECONNRESET)
                        s->kvm = kvm_unavailable("query-stats failed: the QMP connection closed");
                else if (error < 0)
                        s->kvm = kvm_unavailable("query-stats failed: QEMU offers no KVM statistics");
                else if (!kvm_stats_available(st))
                        s->kvm = kvm_unavailable("unavailable: the guest does not run under KVM (TCG has no KVM "
                                                 "counters)");
                else
                        s->before = TAKE_PTR(st);
                return;
        }

        /* after */
        if (error < 0 || !s->before || !kvm_stats_available(st)) {
                s->kvm = kvm_unavailable(error == -ECONNRESET ? "query-stats failed at the end of the step: the QMP "
                                                                "connection closed"
                                         : error < 0 ? "query-stats failed at the end of the step"
                                                     : "unavailable: no KVM counters at the start of the step");
                return;
        }
        if (kvm_stats_delta_json(s->before, st, &s->kvm) < 0)
                s->kvm = kvm_unavailable("failed to compute the KVM counter deltas");
        s->before = kvm_stats_free(s->before);
}

static BalloonStep *guest_new_step(BalloonGuest *g) {
        BalloonStep *s;

        if (!g->steps) {
                g->steps = calloc(BALLOON_STEPS_MAX, sizeof(BalloonStep));
                if (!g->steps)
                        return NULL;
        }
        if (g->n_steps == BALLOON_STEPS_MAX) {
                s = g->steps + g->steps_head;
                if (g->current_step == s)
                        g->current_step = NULL;
                g->steps_head = (g->steps_head + 1) % BALLOON_STEPS_MAX;
                g->n_steps--;
        }
        s = g->steps + (g->steps_head + g->n_steps) % BALLOON_STEPS_MAX;
        step_done_free(s);
        *s = (BalloonStep) { .id = ++g->steps_total };
        g->n_steps++;
        return s;
}

static void schedule_stop(BalloonGuest *g) {
        g->schedule_active = false;
        g->schedule_timer = sd_event_source_disable_unref(g->schedule_timer);
        if (g->current_step)
                step_finish(g, g->current_step);
}

static int schedule_on_timer(sd_event_source *src, uint64_t usec, void *userdata);

static int schedule_arm(BalloonGuest *g) {
        uint64_t when = balloon_schedule_step_start(&g->schedule, g->schedule_start, g->schedule_next);
        int r;

        if (g->schedule_timer)
                return sd_event_source_set_time(g->schedule_timer, when) < 0 ? -EIO :
                       sd_event_source_set_enabled(g->schedule_timer, SD_EVENT_ONESHOT);
        r = sd_event_add_time(g->mb->manager->event, &g->schedule_timer, CLOCK_MONOTONIC, when, 0, schedule_on_timer, g);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(g->schedule_timer, "balloon-schedule");
        return 0;
}

static int schedule_on_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        BalloonGuest *g = userdata;
        BalloonStep *s;
        Vm *vm = guest_vm(g);
        int r;

        if (g->current_step)
                step_finish(g, g->current_step);
        if (!vm || !g->schedule_active)
                return 0;
        if (g->schedule_next >= g->schedule.count) {
                log_info("Guest %s: balloon schedule (%s, %u steps) finished.", g->name,
                         balloon_schedule_mode_to_string(g->schedule.mode), g->schedule.count);
                g->schedule_active = false;
                return 0;
        }

        s = guest_new_step(g);
        if (!s) {
                log_oom();
                g->schedule_active = false;
                return 0;
        }
        s->index = g->schedule_next;
        s->target = balloon_schedule_target(&g->schedule, g->schedule_next);
        s->start_realtime = now_usec(CLOCK_REALTIME);
        s->start_monotonic = now_usec(CLOCK_MONOTONIC);
        s->actual_start = g->actual_known ? g->actual : UINT64_MAX;
        s->actual = s->actual_start;
        g->current_step = s;
        g->target = s->target;
        g->target_set = true;

        /* QEMU handles commands in order: the counters are read before the balloon moves. */
        r = step_query_kvm(g, vm, s, BALLOON_REQUEST_STEP_BEFORE);
        if (r < 0)
                s->kvm = kvm_unavailable("failed to query KVM statistics");
        else
                s->before_pending = true;
        {
                BalloonRequest *req = balloon_request_new(g, BALLOON_REQUEST_STEP_TARGET);
                if (req)
                        req->step_id = s->id;
                r = balloon_execute(g, vm, req, "balloon", balloon_args(s->target));
                if (r < 0)
                        (void) free_and_strdup(&s->error, "failed to send the balloon command");
        }

        g->schedule_next++;
        r = schedule_arm(g);
        if (r < 0)
                log_error_errno(r, "Guest %s: failed to arm the balloon schedule, stopping it: %m", g->name);
        if (r < 0)
                g->schedule_active = false;
        if (g->actual_known && balloon_reached(g->actual, s->target)) {
                s->reached = true;
                s->reached_usec = 0;
                step_finish(g, s);
        }
        guest_rearm_poll(g);
        return 0;
}

static int schedule_start(BalloonGuest *g, const BalloonSchedule *sched, const char *origin) {
        schedule_stop(g);
        g->schedule = *sched;
        g->schedule_origin = origin;
        g->schedule_active = true;
        g->schedule_start = now_usec(CLOCK_MONOTONIC);
        g->schedule_next = 0;
        log_info("Guest %s: balloon schedule started (%s): %s %" PRIu64 " → %" PRIu64 " bytes, %u steps, every %" PRIu64
                 " us.", g->name, origin, balloon_schedule_mode_to_string(sched->mode), sched->from_bytes,
                 sched->to_bytes, sched->count, sched->every_usec);
        return schedule_arm(g);
}

/* ---- polling ---------------------------------------------------------------------------------- */

static uint64_t guest_poll_interval(BalloonGuest *g) {
        if (g->n_waiters > 0 || (g->current_step && !g->current_step->done))
                return BALLOON_FAST_POLL_USEC;
        return g->stats_interval_usec;
}

static int guest_on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        BalloonGuest *g = userdata;
        Vm *vm = guest_vm(g);
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        if (!vm)
                return 0;
        if (!g->balloon_query_pending &&
            balloon_execute(g, vm, balloon_request_new(g, BALLOON_REQUEST_QUERY), "query-balloon", NULL) >= 0)
                g->balloon_query_pending = true;
        if (!g->stats_query_pending && now >= g->next_stats_monotonic &&
            balloon_execute(g, vm, balloon_request_new(g, BALLOON_REQUEST_STATS), "qom-get",
                            qom_args("guest-stats", NULL)) >= 0) {
                g->stats_query_pending = true;
                g->next_stats_monotonic = now + g->stats_interval_usec;
        }
        guest_rearm_poll(g);
        return 0;
}

static void guest_rearm_poll(BalloonGuest *g) {
        uint64_t when;
        int r;

        if (!g->tracking)
                return;
        when = now_usec(CLOCK_MONOTONIC) + guest_poll_interval(g);
        if (g->poll_timer) {
                uint64_t cur = 0;
                int enabled = 0;

                /* Only ever bring the next poll forward, or arm it when off. */
                (void) sd_event_source_get_time(g->poll_timer, &cur);
                (void) sd_event_source_get_enabled(g->poll_timer, &enabled);
                if (enabled != SD_EVENT_OFF && cur <= when)
                        return;
                (void) sd_event_source_set_time(g->poll_timer, when);
                (void) sd_event_source_set_enabled(g->poll_timer, SD_EVENT_ONESHOT);
                return;
        }
        r = sd_event_add_time(g->mb->manager->event, &g->poll_timer, CLOCK_MONOTONIC, when, 0, guest_on_poll, g);
        if (r < 0) {
                log_warning_errno(r, "Guest %s: failed to arm the balloon poll timer, ignoring: %m", g->name);
                return;
        }
        (void) sd_event_source_set_description(g->poll_timer, "balloon-poll");
}

static uint64_t effective_stats_interval(Manager *m, const VmSpec *spec) {
        uint64_t t = spec->balloon_stats_interval_usec ?: m->config.balloon_stats_interval_usec;

        return MAX(t, USEC_PER_SEC);
}

/* BalloonFailed's parameters for a balloon command that failed: QEMU's own error (class and description) when
 * QEMU refused it, otherwise what happened to the command. */
static json_object *balloon_failed_params(const char *name, int error, const char *error_class,
                                          const char *error_desc) {
        _cleanup_json_ json_object *p = json_object_new_object();
        const char *reason;

        switch (error) {
        case -EIO:
                reason = error_desc;
                break;
        case -ETIMEDOUT:
                reason = "QEMU did not answer the balloon command in time";
                break;
        case -ECONNRESET:
                reason = "the QMP connection to QEMU closed before QEMU answered (QEMU exited?)";
                break;
        default:
                reason = strerror(-error);
        }
        if (!p || json_add_string(p, "name", name) < 0 || json_add_string(p, "reason", reason) < 0 ||
            (error == -EIO && (json_add_string(p, "qmpErrorClass", error_class) < 0 ||
                               json_add_string(p, "qmpErrorDesc", error_desc) < 0)))
                return NULL;
        return TAKE_PTR(p);
}

static void on_qmp_reply(QmpClient *q, int error, json_object *result, const char *error_class,
                         const char *error_desc, void *userdata) {
        _cleanup_(balloon_request_freep) BalloonRequest *req = userdata;
        BalloonGuest *g = balloon_request_guest(req);
        BalloonGuestStats st;
        json_object *v, *p;

        if (!g) {
                if (balloon_request_waited_for(req)) {
                        p = json_object_new_object();
                        if (p && (json_add_string(p, "name", req->name) < 0 ||
                                  json_add_string(p, "reason", "the guest stopped") < 0))
                                p = json_drop(p);
                        balloon_request_answer(req, ERROR_BALLOON_FAILED, p);
                }
                return;
        }

        switch (req->kind) {
        case BALLOON_REQUEST_QUERY:
                g->balloon_query_pending = false;
                if (error == 0 && json_object_object_get_ex(result, "actual", &v) &&
                    json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0)
                        guest_set_actual(g, (uint64_t) json_object_get_int64(v));
                else if (error < 0)
                        log_debug("Guest %s: query-balloon failed: %s", g->name, error_desc ?: strerror(-error));
                break;
        case BALLOON_REQUEST_STATS:
                g->stats_query_pending = false;
                if (error == 0 && balloon_guest_stats_parse(result, &st) >= 0)
                        g->stats = st;
                else
                        log_debug("Guest %s: qom-get guest-stats failed: %s", g->name,
                                  error_desc ?: strerror(error < 0 ? -error : EINVAL));
                break;
        case BALLOON_REQUEST_SET_POLLING:
                if (error < 0 && error != -ECONNRESET) /* QMP went away: the guest's end is logged */
                        log_warning("Guest %s: failed to enable balloon statistics polling, ignoring: %s", g->name,
                                    error_desc ?: strerror(-error));
                break;
        case BALLOON_REQUEST_SET_TARGET:
                if (error < 0) {
                        BalloonWaiter *w = guest_find_waiter(g, req->waiter_id);

                        log_full(error == -ECONNRESET ? LOG_DEBUG : LOG_WARNING,
                                 "Guest %s: the balloon target %" PRIu64 " bytes failed: %s%s%s", g->name, req->target,
                                 error == -EIO ? strna(error_class) : "", error == -EIO ? ": " : "",
                                 error == -EIO ? strna(error_desc) : strerror(-error));
                        /* the caller hears it now, not after a wait for a balloon that will not move */
                        if (w) {
                                waiter_fail(w, ERROR_BALLOON_FAILED,
                                            balloon_failed_params(g->name, error, error_class, error_desc));
                                guest_rearm_poll(g);
                        } else if (balloon_request_waited_for(req))
                                balloon_request_answer(req, ERROR_BALLOON_FAILED,
                                                       balloon_failed_params(g->name, error, error_class,
                                                                             error_desc));
                        break;
                }
                if (!balloon_request_waited_for(req))
                        break;
                p = json_object_new_object();
                if (p && (json_add_string(p, "name", g->name) < 0 || json_add_uint(p, "targetBytes", req->target) < 0 ||
                          (g->actual_known && json_add_uint(p, "actualBytes", g->actual) < 0) ||
                          json_add_bool(p, "reached", g->actual_known && balloon_reached(g->actual, req->target)) < 0 ||
                          json_add_uint(p, "elapsedUSec", 0) < 0))
                        p = json_drop(p);
                balloon_request_answer(req, NULL, p);
                break;
        case BALLOON_REQUEST_STEP_TARGET:
                if (error < 0) {
                        BalloonStep *s = guest_find_step(g, req->step_id);
                        if (s) {
                                _cleanup_free_ char *e = NULL;
                                (void) asprintf(&e, "balloon command failed: %s", error_desc ?: strerror(-error));
                                (void) free_and_strdup(&s->error, e);
                        }
                }
                break;
        case BALLOON_REQUEST_STEP_BEFORE:
        case BALLOON_REQUEST_STEP_AFTER:
        case _BALLOON_REQUEST_KIND_MAX:
        case _BALLOON_REQUEST_KIND_INVALID:
                break;
        }
}

static void balloon_on_event(Vm *vm, const QmpEvent *event, void *userdata) {
        Manager *m = userdata;
        BalloonGuest *g;

        if (!m->balloon || event->type != QMP_EVENT_BALLOON_CHANGE)
                return;
        g = balloon_guest_find(m->balloon, vm->name);
        if (!g || !g->tracking)
                return;
        guest_set_actual(g, event->balloon_change.actual);
}

/* ---- start/stop tracking ---------------------------------------------------------------------- */

static void guest_stop_tracking(BalloonGuest *g) {
        if (!g->tracking)
                return;
        schedule_stop(g);
        g->tracking = false;
        g->generation++;
        g->poll_timer = sd_event_source_disable_unref(g->poll_timer);
        g->balloon_query_pending = g->stats_query_pending = false;
        g->actual_known = false;
        g->target_set = false;
        while (g->n_waiters > 0) {
                BalloonWaiter *w = g->waiters[g->n_waiters - 1];
                json_object *p = json_object_new_object();
                Vm *vm = manager_find_vm(g->mb->manager, g->name);

                if (p && (json_add_string(p, "name", g->name) < 0 ||
                          json_add_string(p, "state", vm ? vm_state_to_string(vm->state) : "undefined") < 0))
                        p = json_drop(p);
                waiter_fail(w, ERROR_INVALID_STATE, p);
        }
}

static void guest_start_tracking(ManagerBalloon *mb, Vm *vm) {
        Manager *m = mb->manager;
        BalloonGuest *g;
        int r;

        r = balloon_guest_get(mb, vm->name, &g);
        if (r < 0) {
                log_oom();
                return;
        }
        if (g->tracking)
                return;
        g->tracking = true;
        g->generation++;
        g->memory = vm->running_spec->memory_bytes;
        g->stats = (BalloonGuestStats) {};
        g->stats_interval_usec = effective_stats_interval(m, vm->running_spec);
        g->next_stats_monotonic = 0;

        r = balloon_execute(g, vm, balloon_request_new(g, BALLOON_REQUEST_SET_POLLING), "qom-set",
                            qom_args("guest-stats-polling-interval",
                                     json_object_new_int64((int64_t) (g->stats_interval_usec / USEC_PER_SEC))));
        if (r < 0)
                log_warning_errno(r, "Guest %s: failed to enable balloon statistics, ignoring: %m", g->name);
        guest_rearm_poll(g);
        (void) guest_on_poll(NULL, 0, g);

        if (vm->running_spec->balloon_schedule.mode != BALLOON_SCHEDULE_NONE) {
                r = schedule_start(g, &vm->running_spec->balloon_schedule, "definition");
                if (r < 0)
                        log_error_errno(r, "Guest %s: failed to start the balloon schedule: %m", g->name);
        }
}

static void balloon_on_state(Vm *vm, VmState old_state, void *userdata) {
        Manager *m = userdata;
        BalloonGuest *g;

        if (!m->balloon)
                return;
        if (vm->state == VM_STATE_RUNNING && vm->qmp && vm->running_spec && vm->running_spec->balloon) {
                guest_start_tracking(m->balloon, vm);
                return;
        }
        g = balloon_guest_find(m->balloon, vm->name);
        if (g)
                guest_stop_tracking(g);
}

/* ---- policy ----------------------------------------------------------------------------------- */

static bool guest_policy_enabled(Manager *m, Vm *vm) {
        /* GetBalloon asks about guests that are not running, too. */
        switch ((vm->running_spec ?: vm->spec)->balloon_policy) {
        case VM_BALLOON_POLICY_YES:
                return true;
        case VM_BALLOON_POLICY_NO:
                return false;
        case VM_BALLOON_POLICY_INHERIT:
        case _VM_BALLOON_POLICY_MAX:
        case _VM_BALLOON_POLICY_INVALID:
                break;
        }
        return m->config.balloon_policy;
}

static uint64_t guest_ceiling(const VmSpec *spec) {
        return spec->balloon_ceiling ?: spec->memory_bytes;
}

static BalloonPolicyParams policy_params(const DaemonConfig *c) {
        return (BalloonPolicyParams) {
                .available_low_percent = c->balloon_available_low_percent,
                .available_high_percent = c->balloon_available_high_percent,
                .commit_high_percent = c->balloon_commit_high_percent,
                .commit_low_percent = c->balloon_commit_low_percent,
                .guest_reserve_bytes = c->balloon_guest_reserve,
                .max_step_bytes = c->balloon_max_step,
        };
}

static void decision_log(BalloonGuest *g, const BalloonDecisionRecord *d) {
        char act[FORMAT_SIZE_MAX], tgt[FORMAT_SIZE_MAX], av[FORMAT_SIZE_MAX], tot[FORMAT_SIZE_MAX],
                ca[FORMAT_SIZE_MAX], cl[FORMAT_SIZE_MAX], ga[FORMAT_SIZE_MAX], fl[FORMAT_SIZE_MAX], ce[FORMAT_SIZE_MAX];
        _cleanup_free_ char *field = NULL;

        if (asprintf(&field, "VM=%s", g->name) < 0)
                return;
        log_struct(d->decision.action == BALLOON_POLICY_HOLD ? LOG_DEBUG : LOG_INFO, 0,
                   STRV(MESSAGE_ID_BALLOON_DECISION, field),
                   "Balloon policy: %s guest %s %s → %s (%s); host %s: MemAvailable %s of %s, Committed_AS %s of "
                   "CommitLimit %s; guest available %s, floor %s, ceiling %s",
                   balloon_policy_action_to_string(d->decision.action), g->name,
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

static int policy_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ManagerBalloon *mb = userdata;
        Manager *m = mb->manager;
        const char *path = m->config.balloon_host_meminfo_path ?: "/proc/meminfo";
        BalloonPolicyParams params = policy_params(&m->config);
        BalloonPolicyGuest inputs[MANAGER_MAX_VMS];
        BalloonGuest *which[MANAGER_MAX_VMS];
        BalloonPolicyDecision decisions[MANAGER_MAX_VMS];
        BalloonPolicyResult result;
        HostMemory host;
        Meminfo mi;
        size_t n = 0;
        int r;

        (void) sd_event_source_set_time_relative(s, m->config.balloon_policy_interval_usec);

        for (size_t i = 0; i < m->n_vms && n < MANAGER_MAX_VMS; i++) {
                Vm *vm = m->vms[i];
                BalloonGuest *g;

                if (vm->state != VM_STATE_RUNNING || !vm->running_spec || !vm->running_spec->balloon ||
                    !guest_policy_enabled(m, vm))
                        continue;
                g = balloon_guest_find(mb, vm->name);
                if (!g || !g->tracking || !g->actual_known || g->schedule_active)
                        continue;
                which[n] = g;
                inputs[n] = (BalloonPolicyGuest) {
                        .actual_bytes = g->actual,
                        .floor_bytes = vm->running_spec->balloon_floor,
                        .ceiling_bytes = guest_ceiling(vm->running_spec),
                        .available_bytes = !balloon_guest_stats_valid(&g->stats) ? BALLOON_POLICY_UNKNOWN
                                           : g->stats.available_bytes != BALLOON_STAT_UNSET ? g->stats.available_bytes
                                           : g->stats.free_bytes != BALLOON_STAT_UNSET ? g->stats.free_bytes
                                                                                       : BALLOON_POLICY_UNKNOWN,
                };
                n++;
        }
        if (n == 0)
                return 0;

        r = meminfo_read(path, &mi);
        if (r >= 0)
                r = host_memory_from_meminfo(&mi, &host);
        if (r < 0) {
                if (r != mb->last_host_error)
                        log_warning_errno(r, "Balloon policy: failed to read host memory from %s, skipping: %m", path);
                mb->last_host_error = r;
                return 0;
        }
        mb->last_host_error = 0;

        balloon_policy_decide(&params, &host, mb->host_state, inputs, n, decisions, &result);
        if (result.state != mb->host_state)
                log_notice("Balloon policy: host memory state %s → %s (MemAvailable %" PRIu64 " of %" PRIu64
                           " bytes, Committed_AS %" PRIu64 " of CommitLimit %" PRIu64 ").",
                           balloon_host_state_to_string(mb->host_state), balloon_host_state_to_string(result.state),
                           host.mem_available, host.mem_total, host.committed_as, host.commit_limit);
        mb->host_state = result.state;

        for (size_t i = 0; i < n; i++) {
                BalloonGuest *g = which[i];
                BalloonDecisionRecord *d;
                Vm *vm = guest_vm(g);

                if (!g->decisions) {
                        g->decisions = calloc(BALLOON_DECISIONS_MAX, sizeof(BalloonDecisionRecord));
                        if (!g->decisions) {
                                log_oom();
                                continue;
                        }
                }
                if (g->n_decisions == BALLOON_DECISIONS_MAX) {
                        g->decisions_head = (g->decisions_head + 1) % BALLOON_DECISIONS_MAX;
                        g->n_decisions--;
                }
                d = g->decisions + (g->decisions_head + g->n_decisions) % BALLOON_DECISIONS_MAX;
                g->n_decisions++;
                *d = (BalloonDecisionRecord) {
                        .realtime = now_usec(CLOCK_REALTIME),
                        .decision = decisions[i],
                        .input = inputs[i],
                        .host = host,
                        .result = result,
                };
                decision_log(g, d);

                if (decisions[i].action == BALLOON_POLICY_HOLD || !vm)
                        continue;
                g->target = decisions[i].target_bytes;
                g->target_set = true;
                r = balloon_execute(g, vm, balloon_request_new(g, BALLOON_REQUEST_SET_TARGET), "balloon",
                                    balloon_args(decisions[i].target_bytes));
                if (r < 0)
                        log_warning_errno(r, "Guest %s: failed to send the policy's balloon target, ignoring: %m",
                                          g->name);
                guest_rearm_poll(g);
        }
        return 0;
}

/* ---- varlink ---------------------------------------------------------------------------------- */

static int error_name(VarlinkConnection *c, const char *error, const char *name) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "name", name) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, error, p);
}

static int fail_name(ManagerError *e, int error, const char *name, const char *guest) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "name", guest) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, error, name, p);
}

/* Finds a running guest with a balloon device; sets *e otherwise. */
static Vm *balloon_lookup_running(Manager *m, const char *name, BalloonGuest **ret_guest, ManagerError *e, int *ret) {
        Vm *vm = manager_find_vm(m, name);
        BalloonGuest *g;

        if (!vm) {
                *ret = fail_name(e, -ENOENT, ERROR_NO_SUCH_VM, name);
                return NULL;
        }
        if (!(vm->running_spec ?: vm->spec)->balloon) {
                *ret = fail_name(e, -ENODEV, ERROR_NO_BALLOON, vm->name);
                return NULL;
        }
        g = m->balloon ? balloon_guest_find(m->balloon, vm->name) : NULL;
        if (vm->state != VM_STATE_RUNNING || !g || !g->tracking) {
                json_object *p = json_object_new_object();

                if (!p || json_add_string(p, "name", vm->name) < 0 ||
                    json_add_string(p, "state", vm_state_to_string(vm->state)) < 0) {
                        json_object_put(p);
                        *ret = -ENOMEM;
                } else
                        *ret = manager_error_set(e, -ESRCH, ERROR_INVALID_STATE, p);
                return NULL;
        }
        *ret_guest = g;
        return vm;
}

/* The same, replying with the error and returning NULL. */
static Vm *lookup_running(Manager *m, VarlinkConnection *c, json_object *parameters, BalloonGuest **ret_guest,
                          int *ret) {
        ManagerError e = {};
        Vm *vm;

        vm = balloon_lookup_running(m, json_get_string(parameters, "name"), ret_guest, &e, ret);
        if (!vm)
                *ret = manager_error_varlink_reply(c, &e, *ret);
        return vm;
}

static int balloon_check_target(ManagerError *e, Vm *vm, const char *parameter, int64_t target) {
        uint64_t floor_bytes = vm->running_spec->balloon_floor, memory = vm->running_spec->memory_bytes;
        char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX];
        _cleanup_free_ char *reason = NULL;
        BalloonTargetCheck k;
        json_object *p;

        if (target < 0)
                return manager_error_invalid_parameter(e, parameter);
        k = balloon_target_check((uint64_t) target, floor_bytes, memory);
        switch (k) {
        case BALLOON_TARGET_OK:
                return 0;
        case BALLOON_TARGET_ZERO:
                reason = strdup("the target must be greater than 0");
                break;
        case BALLOON_TARGET_BELOW_FLOOR:
                (void) asprintf(&reason, "%s is below the guest's balloon floor %s ([Balloon] Floor=)",
                                format_size(a, sizeof(a), (uint64_t) target), format_size(b, sizeof(b), floor_bytes));
                break;
        case BALLOON_TARGET_ABOVE_MEMORY:
                (void) asprintf(&reason, "%s is above the guest's boot memory %s",
                                format_size(a, sizeof(a), (uint64_t) target), format_size(b, sizeof(b), memory));
                break;
        case _BALLOON_TARGET_CHECK_MAX:
        case _BALLOON_TARGET_CHECK_INVALID:
                break;
        }
        p = json_object_new_object();
        if (!p || json_add_string(p, "name", vm->name) < 0 || json_add_string(p, "parameter", parameter) < 0 ||
            json_add_uint(p, "targetBytes", (uint64_t) target) < 0 || json_add_uint(p, "minimumBytes", MAX(floor_bytes, 1)) < 0 ||
            json_add_uint(p, "maximumBytes", memory) < 0 || json_add_string(p, "reason", strna(reason)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, -ERANGE, ERROR_TARGET_OUT_OF_RANGE, p);
}

/* The same, replying with the error: < 0 then, and *ret is the handler's return value. */
static int check_target(VarlinkConnection *c, Vm *vm, const char *parameter, int64_t target, int *ret) {
        ManagerError e = {};
        int r;

        r = balloon_check_target(&e, vm, parameter, target);
        if (r < 0)
                *ret = manager_error_varlink_reply(c, &e, r);
        return r;
}

/* SetBalloon's part common to the transports: checks, then sends the balloon command. QEMU's answer goes to
 * conn or to completion (always consumed) when given; with wait, a waiter slot must be free. */
static int balloon_set_target(Manager *m, const char *name, int64_t target, uint64_t waiter_id,
                              const char *requester, VarlinkConnection *conn, ManagerCompletion *completion,
                              BalloonGuest **ret_guest, ManagerError *e) {
        ManagerCompletion owned = {};
        BalloonGuest *g = NULL;
        BalloonRequest *req;
        Vm *vm;
        int r = 0;

        if (completion) {
                owned = *completion;
                *completion = (ManagerCompletion) {};
        }
        vm = balloon_lookup_running(m, name, &g, e, &r);
        if (!vm)
                goto fail;
        r = balloon_check_target(e, vm, "targetBytes", target);
        if (r < 0)
                goto fail;
        if (waiter_id > 0 && g->n_waiters >= BALLOON_WAITERS_MAX) {
                json_object *p = json_object_new_object();

                if (!p || json_add_string(p, "name", vm->name) < 0 ||
                    json_add_string(p, "reason", "too many balloon waits pending for this guest (16)") < 0) {
                        json_object_put(p);
                        r = -ENOMEM;
                } else
                        r = manager_error_set(e, -EBUSY, ERROR_BALLOON_FAILED, p);
                goto fail;
        }

        log_info("Guest %s: balloon target %" PRIi64 " bytes set over %s%s.", vm->name, target, requester,
                 g->schedule_active ? " (stops its schedule)" : "");
        if (g->schedule_active)
                schedule_stop(g);

        req = balloon_request_new(g, BALLOON_REQUEST_SET_TARGET);
        if (!req) {
                r = -ENOMEM;
                goto fail;
        }
        req->target = (uint64_t) target;
        req->waiter_id = waiter_id;
        if (conn)
                req->conn = varlink_connection_ref(conn);
        req->completion = owned;        /* freed with req when sending fails */
        r = balloon_execute(g, vm, req, "balloon", balloon_args((uint64_t) target));
        if (r < 0)
                return r;
        g->target = (uint64_t) target;
        g->target_set = true;
        if (ret_guest)
                *ret_guest = g;
        return 0;

fail:
        manager_completion_drop(&owned);
        return r;
}

int manager_balloon_set_target(Manager *m, const char *name, int64_t target_bytes, const char *requester,
                               ManagerCompletion *completion, ManagerError *ret_error) {
        return balloon_set_target(m, name, target_bytes, /* waiter_id= */ 0, requester, NULL, completion, NULL,
                                  ret_error);
}

static int vl_set_balloon(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        int64_t target = json_get_int(parameters, "targetBytes", -1);
        int64_t timeout = json_get_int(parameters, "timeoutUSec", -1);
        bool wait = json_get_bool(parameters, "wait", false) || (flags & VARLINK_CALL_MORE);
        _cleanup_free_ char *requester = NULL;
        ManagerError e = {};
        BalloonGuest *g = NULL;
        uint64_t waiter_id = 0;
        int r;

        if (json_object_object_get_ex(parameters, "timeoutUSec", NULL) && timeout != -1 && timeout <= 0)
                return varlink_error_invalid_parameter(c, "timeoutUSec");
        if (asprintf(&requester, "varlink by uid %u", (unsigned) varlink_connection_get_peer_uid(c)) < 0) {
                requester = NULL;
                return -ENOMEM;
        }
        /* With wait, the reply is the waiter's: QEMU's answer reaches it through the waiter's id (an error ends
         * the wait at once); without, the request answers on c. */
        if (wait && m->balloon)
                waiter_id = ++m->balloon->last_waiter_id;
        r = balloon_set_target(m, json_get_string(parameters, "name"), target, waiter_id, requester,
                               wait ? NULL : c, NULL, &g, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);

        if (wait) {
                BalloonWaiter *w = calloc(1, sizeof(BalloonWaiter));

                if (!w)
                        return -ENOMEM;
                *w = (BalloonWaiter) {
                        .guest = g,
                        .id = waiter_id,
                        .conn = varlink_connection_ref(c),
                        .more = flags & VARLINK_CALL_MORE,
                        .target = (uint64_t) target,
                        .start_monotonic = now_usec(CLOCK_MONOTONIC),
                        .timeout_usec = timeout > 0 ? (uint64_t) timeout : m->config.balloon_wait_timeout_usec,
                        .actual_start = g->actual_known ? g->actual : UINT64_MAX,
                        .last_notified = UINT64_MAX,
                };
                r = sd_event_add_time_relative(m->event, &w->timer, CLOCK_MONOTONIC, w->timeout_usec, 0,
                                               waiter_on_timeout, w);
                if (r < 0) {
                        varlink_connection_unref(w->conn);
                        free(w);
                        return r;
                }
                (void) sd_event_source_set_description(w->timer, "balloon-wait");
                g->waiters[g->n_waiters++] = w;
                varlink_connection_set_close_callback(c, waiter_closed, w);
                if (w->more && g->actual_known) {
                        w->last_notified = g->actual;
                        r = reply_progress(w, false, false);
                        if (r < 0) {
                                waiter_free(w);
                                return r;
                        }
                }
                guest_rearm_poll(g);
                /* the next query-balloon reply (fast polling now) tells whether it is there */
                (void) guest_on_poll(NULL, 0, g);
        }
        return 0;
}

static int step_to_json(const BalloonStep *s, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o || json_add_uint(o, "index", s->index) < 0 || json_add_uint(o, "realtimeUSec", s->start_realtime) < 0 ||
            json_add_uint(o, "targetBytes", s->target) < 0 ||
            (s->actual_start != UINT64_MAX && json_add_uint(o, "actualStartBytes", s->actual_start) < 0) ||
            (s->actual != UINT64_MAX && json_add_uint(o, "actualBytes", s->actual) < 0) ||
            json_add_bool(o, "reached", s->reached) < 0 || json_add_bool(o, "finished", s->done) < 0 ||
            (s->reached && json_add_uint(o, "timeToReachUSec", s->reached_usec) < 0) ||
            json_add_string(o, "error", s->error) < 0)
                return -ENOMEM;
        if (s->kvm) {
                if (json_add(o, "kvm", json_object_get(s->kvm)) < 0)
                        return -ENOMEM;
        } else if (json_add(o, "kvm", kvm_unavailable(s->done ? "pending" : "the step is in progress")) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

static int decision_to_json(const BalloonDecisionRecord *d, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *h = json_object_new_object();

        if (!o || !h || json_add_uint(o, "realtimeUSec", d->realtime) < 0 ||
            json_add_string(o, "action", balloon_policy_action_to_string(d->decision.action)) < 0 ||
            json_add_string(o, "reason", balloon_policy_reason_to_string(d->decision.reason)) < 0 ||
            json_add_uint(o, "targetBytes", d->decision.target_bytes) < 0 ||
            json_add_uint(o, "actualBytes", d->input.actual_bytes) < 0 ||
            json_add_uint(o, "floorBytes", d->input.floor_bytes) < 0 ||
            json_add_uint(o, "ceilingBytes", d->input.ceiling_bytes) < 0 ||
            (d->input.available_bytes != BALLOON_POLICY_UNKNOWN &&
             json_add_uint(o, "guestAvailableBytes", d->input.available_bytes) < 0) ||
            json_add_string(h, "state", balloon_host_state_to_string(d->result.state)) < 0 ||
            json_add_uint(h, "memTotalBytes", d->host.mem_total) < 0 ||
            json_add_uint(h, "memAvailableBytes", d->host.mem_available) < 0 ||
            json_add_uint(h, "committedASBytes", d->host.committed_as) < 0 ||
            json_add_uint(h, "commitLimitBytes", d->host.commit_limit) < 0 ||
            json_add_bool(h, "availableLow", d->result.available_low) < 0 ||
            json_add_bool(h, "commitHigh", d->result.commit_high) < 0 ||
            json_add_bool(h, "relieved", d->result.relieved) < 0 ||
            json_add_uint(h, "needBytes", d->result.need_bytes) < 0 ||
            json_add_uint(h, "headroomBytes", d->result.headroom_bytes) < 0 || json_add(o, "host", TAKE_PTR(h)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

bool manager_balloon_sizes(Manager *m, const char *name, uint64_t *ret_target, uint64_t *ret_actual) {
        BalloonGuest *g = m->balloon ? balloon_guest_find(m->balloon, name) : NULL;

        if (!g || !g->tracking)
                return false;
        *ret_target = g->target_set ? g->target : g->memory;
        *ret_actual = g->actual_known ? g->actual : UINT64_MAX;
        return true;
}

int manager_balloon_describe(Manager *m, const char *name, json_object **ret_reply, ManagerError *ret_error) {
        _cleanup_json_ json_object *p = json_object_new_object(), *b = json_object_new_object();
        Vm *vm = manager_find_vm(m, name);
        BalloonGuest *g;
        const VmSpec *spec;
        int r;

        if (!vm)
                return fail_name(ret_error, -ENOENT, ERROR_NO_SUCH_VM, name);
        spec = vm->running_spec ?: vm->spec;
        if (!spec->balloon)
                return fail_name(ret_error, -ENODEV, ERROR_NO_BALLOON, vm->name);
        if (!p || !b)
                return -ENOMEM;
        g = m->balloon ? balloon_guest_find(m->balloon, vm->name) : NULL;

        if (json_add_string(b, "name", vm->name) < 0 || json_add_string(b, "state", vm_state_to_string(vm->state)) < 0 ||
            json_add_bool(b, "tracking", g && g->tracking) < 0 || json_add_uint(b, "memoryBytes", spec->memory_bytes) < 0 ||
            json_add_uint(b, "floorBytes", spec->balloon_floor) < 0 ||
            json_add_uint(b, "ceilingBytes", guest_ceiling(spec)) < 0 ||
            json_add_bool(b, "policy", guest_policy_enabled(m, vm)) < 0 ||
            json_add_uint(b, "statsIntervalUSec", effective_stats_interval(m, spec)) < 0)
                return -ENOMEM;
        if (g && g->tracking) {
                if (json_add_uint(b, "targetBytes", g->target_set ? g->target : g->memory) < 0 ||
                    (g->actual_known && json_add_uint(b, "actualBytes", g->actual) < 0))
                        return -ENOMEM;
                if (balloon_guest_stats_valid(&g->stats)) {
                        json_object *s = NULL;
                        r = balloon_guest_stats_to_json(&g->stats, &s);
                        if (r < 0)
                                return r;
                        if (json_add(b, "guestStats", s) < 0)
                                return -ENOMEM;
                }
                if (g->schedule_active) {
                        json_object *s = NULL;
                        r = balloon_schedule_to_json(&g->schedule, &s);
                        if (r < 0)
                                return r;
                        if (json_add_uint(s, "nextStep", g->schedule_next) < 0 ||
                            json_add_string(s, "origin", g->schedule_origin) < 0 || json_add(b, "schedule", s) < 0) {
                                json_object_put(s);
                                return -ENOMEM;
                        }
                }
        }
        if (g && g->n_decisions > 0) {
                json_object *d = NULL;
                r = decision_to_json(g->decisions + (g->decisions_head + g->n_decisions - 1) % BALLOON_DECISIONS_MAX, &d);
                if (r < 0)
                        return r;
                if (json_add(b, "lastDecision", d) < 0)
                        return -ENOMEM;
        }
        if (json_add(p, "balloon", TAKE_PTR(b)) < 0)
                return -ENOMEM;
        *ret_reply = TAKE_PTR(p);
        return 0;
}

static int vl_get_balloon(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        ManagerError e = {};
        json_object *reply = NULL;
        int r;

        r = manager_balloon_describe(userdata, json_get_string(parameters, "name"), &reply, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        return varlink_reply(c, reply);
}

static int vl_get_balloon_steps(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                void *userdata) {
        Manager *m = userdata;
        const char *name = json_get_string(parameters, "name");
        _cleanup_json_ json_object *p = json_object_new_object(), *list = json_object_new_array();
        BalloonGuest *g;
        int r;

        if (!manager_find_vm(m, name))
                return error_name(c, ERROR_NO_SUCH_VM, name);
        if (!p || !list)
                return -ENOMEM;
        g = m->balloon ? balloon_guest_find(m->balloon, name) : NULL;
        for (size_t i = 0; g && i < g->n_steps; i++) {
                json_object *s = NULL;

                r = step_to_json(g->steps + (g->steps_head + i) % BALLOON_STEPS_MAX, &s);
                if (r < 0)
                        return r;
                if (json_object_array_add(list, s) < 0) {
                        json_object_put(s);
                        return -ENOMEM;
                }
        }
        if (json_add(p, "steps", TAKE_PTR(list)) < 0)
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(p));
}

static int vl_get_balloon_decisions(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                    void *userdata) {
        Manager *m = userdata;
        const char *name = json_get_string(parameters, "name");
        _cleanup_json_ json_object *p = json_object_new_object(), *list = json_object_new_array();
        BalloonGuest *g;
        int r;

        if (!manager_find_vm(m, name))
                return error_name(c, ERROR_NO_SUCH_VM, name);
        if (!p || !list)
                return -ENOMEM;
        g = m->balloon ? balloon_guest_find(m->balloon, name) : NULL;
        for (size_t i = 0; g && i < g->n_decisions; i++) {
                json_object *d = NULL;

                r = decision_to_json(g->decisions + (g->decisions_head + i) % BALLOON_DECISIONS_MAX, &d);
                if (r < 0)
                        return r;
                if (json_object_array_add(list, d) < 0) {
                        json_object_put(d);
                        return -ENOMEM;
                }
        }
        if (json_add_string(p, "hostState", balloon_host_state_to_string(m->balloon->host_state)) < 0 ||
            json_add(p, "decisions", TAKE_PTR(list)) < 0)
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(p));
}

static int vl_set_balloon_schedule(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                   void *userdata) {
        Manager *m = userdata;
        const char *mode = json_get_string(parameters, "mode"), *field = NULL, *reason = NULL;
        int64_t from = json_get_int(parameters, "fromBytes", -1), to = json_get_int(parameters, "toBytes", -1);
        int64_t every = json_get_int(parameters, "everyUSec", -1), count = json_get_int(parameters, "count", -1);
        _cleanup_json_ json_object *p = json_object_new_object(), *s = NULL;
        BalloonSchedule sched;
        BalloonGuest *g = NULL;
        Vm *vm;
        int r = 0;

        vm = lookup_running(m, c, parameters, &g, &r);
        if (!vm)
                return r;
        if (!p)
                return -ENOMEM;
        if (balloon_schedule_mode_from_string(mode) < 0)
                return varlink_error_invalid_parameter(c, "mode");
        if (every < 0)
                return varlink_error_invalid_parameter(c, "everyUSec");
        if (count < 0 || count > UINT_MAX)
                return varlink_error_invalid_parameter(c, "count");
        if (check_target(c, vm, "fromBytes", from, &r) < 0 || check_target(c, vm, "toBytes", to, &r) < 0)
                return r;

        sched = (BalloonSchedule) {
                .mode = balloon_schedule_mode_from_string(mode),
                .from_bytes = (uint64_t) from,
                .to_bytes = (uint64_t) to,
                .every_usec = (uint64_t) every,
                .count = (unsigned) count,
        };
        if (balloon_schedule_validate(&sched, &field, &reason) < 0) {
                json_object *e = json_object_new_object();
                static const char *const names[][2] = {
                        { "mode", "mode" }, { "from", "fromBytes" }, { "to", "toBytes" },
                        { "every", "everyUSec" }, { "count", "count" },
                };
                const char *param = field;

                for (size_t i = 0; i < ELEMENTSOF(names); i++)
                        if (streq(names[i][0], field))
                                param = names[i][1];
                if (!e || json_add_string(e, "parameter", param) < 0 || json_add_string(e, "reason", reason) < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
                return varlink_error(c, ERROR_INVALID_SCHEDULE, e);
        }

        r = schedule_start(g, &sched, "api");
        if (r < 0)
                return r;
        r = balloon_schedule_to_json(&sched, &s);
        if (r < 0)
                return r;
        if (json_add(p, "schedule", TAKE_PTR(s)) < 0)
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(p));
}

static int vl_cancel_balloon_schedule(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                      void *userdata) {
        Manager *m = userdata;
        BalloonGuest *g = NULL;
        Vm *vm;
        int r = 0;

        vm = lookup_running(m, c, parameters, &g, &r);
        if (!vm)
                return r;
        if (!g->schedule_active)
                return error_name(c, ERROR_NO_SCHEDULE, vm->name);
        log_info("Guest %s: balloon schedule cancelled over varlink by uid %u after %u of %u steps.", vm->name,
                 (unsigned) varlink_connection_get_peer_uid(c), g->schedule_next, g->schedule.count);
        schedule_stop(g);
        return varlink_reply(c, NULL);
}

static const VarlinkField name_only[] = { { "name", VARLINK_STRING, 0 }, { NULL } };

static const VarlinkMethod balloon_methods[] = {
        { "SetBalloon", vl_set_balloon,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "targetBytes", VARLINK_INT, 0 },
                  { "wait", VARLINK_BOOL, VARLINK_NULLABLE },
                  { "timeoutUSec", VARLINK_INT, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "GetBalloon", vl_get_balloon, name_only, 0 },
        { "GetBalloonSteps", vl_get_balloon_steps, name_only, 0 },
        { "GetBalloonDecisions", vl_get_balloon_decisions, name_only, 0 },
        { "SetBalloonSchedule", vl_set_balloon_schedule,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "mode", VARLINK_STRING, 0 },
                  { "fromBytes", VARLINK_INT, 0 },
                  { "toBytes", VARLINK_INT, 0 },
                  { "everyUSec", VARLINK_INT, 0 },
                  { "count", VARLINK_INT, 0 },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "CancelBalloonSchedule", vl_cancel_balloon_schedule, name_only, VARLINK_METHOD_PRIVILEGED },
        { NULL },
};

const VarlinkMethod *manager_balloon_methods(void) {
        return balloon_methods;
}

/* ---- metrics ---------------------------------------------------------------------------------- */

int manager_balloon_guest_info(Manager *m, const char *name, ManagerBalloonInfo *ret) {
        BalloonGuest *g = m->balloon && name ? balloon_guest_find(m->balloon, name) : NULL;

        if (!g)
                return -ENOENT;
        *ret = (ManagerBalloonInfo) {
                .tracking = g->tracking,
                .target_bytes = g->tracking ? (g->target_set ? g->target : g->memory) : 0,
                .stats = g->tracking ? g->stats : (BalloonGuestStats) {},
                .steps_total = g->steps_total,
                .steps_reached_total = g->steps_reached_total,
                .steps_reached_usec = g->steps_reached_usec,
        };
        return 0;
}

/* ---- start/done ------------------------------------------------------------------------------- */

int manager_balloon_start(Manager *m) {
        _cleanup_free_ ManagerBalloon *mb = NULL;
        int r;

        mb = calloc(1, sizeof(ManagerBalloon));
        if (!mb)
                return log_oom();
        mb->manager = m;
        mb->host_state = BALLOON_HOST_NORMAL;

        /* Observers get the Manager: they look up m->balloon, which is NULL once this module is done. */
        r = vm_context_add_state_watch(&m->vmctx, balloon_on_state, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch guest states for ballooning: %m");
        r = vm_context_add_event_watch(&m->vmctx, balloon_on_event, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch guest events for ballooning: %m");

        r = sd_event_add_time_relative(m->event, &mb->policy_timer, CLOCK_MONOTONIC,
                                       m->config.balloon_policy_interval_usec, 0, policy_on_timer, mb);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the balloon policy timer: %m");
        (void) sd_event_source_set_enabled(mb->policy_timer, SD_EVENT_ON);
        (void) sd_event_source_set_description(mb->policy_timer, "balloon-policy");

        m->balloon = TAKE_PTR(mb);

        /* Guests re-adopted before we were started are already running. */
        for (size_t i = 0; i < m->n_vms; i++)
                if (m->vms[i]->state == VM_STATE_RUNNING && m->vms[i]->qmp && m->vms[i]->running_spec &&
                    m->vms[i]->running_spec->balloon)
                        guest_start_tracking(m->balloon, m->vms[i]);
        return 0;
}

void manager_balloon_done(Manager *m) {
        ManagerBalloon *mb = m->balloon;

        if (!mb)
                return;
        m->balloon = NULL;
        mb->policy_timer = sd_event_source_disable_unref(mb->policy_timer);
        for (size_t i = 0; i < mb->n_guests; i++)
                balloon_guest_free(mb->guests[i]);
        free(mb->guests);
        free(mb);
}
