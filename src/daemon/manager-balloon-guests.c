/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The balloon controllers of the guests (balloon-controller.h), kept in the guests' records (manager-guest.h):
 * a Vm may be freed and defined again, and a controller's records outlive a run. They start and stop as
 * guests enter and leave the running state, get QEMU's BALLOON_CHANGE, and the host-pressure policy (balloon-policy-run.h) runs over them on a
 * timer with the host memory read from [Balloon] HostMeminfoPath=. The API methods are in manager-balloon.c
 * (varlink) and manager-dbus.c. */
#include "balloon/balloon-controller.h"
#include "balloon/balloon-policy-run.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-guest.h"
#include "daemon/manager-persist.h"
#include "daemon/manager.h"

struct ManagerBalloon {
        Manager *manager;
        sd_event_source *policy_timer;
        BalloonPolicyRunner policy;
        uint64_t host_used_monotonic;   /* the metrics host sample the last round acted on */
};

/* ---- guests ----------------------------------------------------------------------------------- */

static uint64_t effective_stats_interval(Manager *m, const VmSpec *spec) {
        return MAX(spec->balloon_stats_interval_usec ?: m->config.balloon_stats_interval_usec, USEC_PER_SEC);
}

void manager_balloon_guest_config(Manager *m, const Vm *vm, BalloonGuestConfig *ret) {
        const VmSpec *spec = vm->running_spec ?: vm->spec;

        *ret = (BalloonGuestConfig) {
                .device = spec->balloon,
                .memory_bytes = spec->memory_bytes,
                .floor_bytes = spec->balloon_floor,
                .ceiling_bytes = spec->balloon_ceiling ?: spec->memory_bytes,
                .stats_interval_usec = effective_stats_interval(m, spec),
                .schedule = spec->balloon_schedule,
                .confidential = spec->confidential != VM_CONFIDENTIAL_NO,
                .pid = vm->pid,
                .starttime = vm->starttime,
        };
}

bool manager_balloon_policy_enabled(Manager *m, const Vm *vm) {
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

static void balloon_on_state(Vm *vm, VmState old_state, void *userdata) {
        Manager *m = userdata;
        BalloonGuestConfig cfg;
        ManagerGuest *g;

        if (!m->balloon)
                return;
        if (vm->state != VM_STATE_RUNNING || !vm->qmp || !vm->running_spec || !vm->running_spec->balloon) {
                g = manager_guest_find(m, vm->name);
                if (g && g->balloon)
                        balloon_controller_stop(g->balloon);
                return;
        }
        if (manager_guest_get(m, vm->name, &g) < 0 ||
            manager_guest_balloon_new(m, g) < 0) {
                log_oom();
                return;
        }
        manager_balloon_guest_config(m, vm, &cfg);
        balloon_controller_start(g->balloon, vm->qmp, &cfg);
}

static void balloon_on_event(Vm *vm, const QmpEvent *event, void *userdata) {
        if (event->type == QMP_EVENT_BALLOON_CHANGE)
                balloon_controller_on_balloon_change(manager_balloon_controller(userdata, vm->name),
                                                     event->balloon_change.actual);
}

/* ---- policy ----------------------------------------------------------------------------------- */

static int policy_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        ManagerBalloon *mb = userdata;
        Manager *m = mb->manager;
        BalloonController *which[MANAGER_MAX_VMS];
        BalloonPolicyParams params;
        size_t n = 0;

        (void) sd_event_source_set_time_relative(s, m->config.balloon_policy_interval_usec);

        for (size_t i = 0; i < m->guests.n_vms && n < MANAGER_MAX_VMS; i++) {
                Vm *vm = m->guests.vms[i];
                BalloonController *c;

                if (vm->state != VM_STATE_RUNNING || !vm->running_spec || !vm->running_spec->balloon ||
                    !manager_balloon_policy_enabled(m, vm))
                        continue;
                if (manager_experiment_running_on(m, vm->name))
                        continue;       /* an experiment measures it: the policy leaves it alone meanwhile */
                c = manager_balloon_controller(m, vm->name);
                if (balloon_controller_policy_eligible(c))
                        which[n++] = c;
        }
        if (n == 0)
                return 0;
        params = (BalloonPolicyParams) {
                .available_low_percent = m->config.balloon_available_low_percent,
                .available_high_percent = m->config.balloon_available_high_percent,
                .commit_high_percent = m->config.balloon_commit_high_percent,
                .commit_low_percent = m->config.balloon_commit_low_percent,
                .guest_reserve_bytes = m->config.balloon_guest_reserve,
                .max_step_bytes = m->config.balloon_max_step,
        };
        if (m->config.balloon_host_meminfo_path)
                /* a file of /proc/meminfo's form given for testing: read it */
                balloon_policy_run_meminfo(&mb->policy, &params, m->config.balloon_host_meminfo_path, which, n);
        else {
                /* one source of truth: the host sample the metrics sampler took last (every
                 * HostSampleIntervalSec=), not a read of /proc/meminfo of our own; without one (the sampler
                 * logs why) the round is skipped */
                const HostSample *h = manager_metrics_host(m);

                /* Each sample drives one round at most: a sampler that failed since (it keeps its last good
                 * sample) or samples less often than the policy runs must not have the same reading squeeze the
                 * guests again and again. */
                if (!h || h->monotonic_usec <= mb->host_used_monotonic)
                        log_debug("Balloon policy: no new host memory sample since the last round, skipping.");
                else {
                        mb->host_used_monotonic = h->monotonic_usec;
                        balloon_policy_run(&mb->policy, &params, &h->host, which, n);
                }
        }
        return 0;
}

BalloonHostState manager_balloon_host_state(Manager *m) {
        return m->balloon ? m->balloon->policy.host_state : BALLOON_HOST_NORMAL;
}

/* ---- start/done ------------------------------------------------------------------------------- */

int manager_balloon_start(Manager *m) {
        _cleanup_free_ ManagerBalloon *mb = NULL;
        int r;

        mb = calloc(1, sizeof(ManagerBalloon));
        if (!mb)
                return log_oom();
        mb->manager = m;
        mb->policy = BALLOON_POLICY_RUNNER_INIT;

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
        for (size_t i = 0; i < m->guests.n_vms; i++)
                balloon_on_state(m->guests.vms[i], m->guests.vms[i]->state, m);
        return 0;
}

void manager_balloon_done(Manager *m) {
        ManagerBalloon *mb = m->balloon;

        if (!mb)
                return;
        m->balloon = NULL;
        mb->policy_timer = sd_event_source_disable_unref(mb->policy_timer);
        free(mb);
}
