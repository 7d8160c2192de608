/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The restarts of matrix runs (ExperimentContext.restart, restart_cancel and restore): the guest's variant is
 * set on its Vm (vm_set_variant(): its definition stays as it is), the guest restarted the usual way (graceful
 * stop, then start), and the restart is over when the new QEMU runs and, when asked, its agent is ready — or
 * when it failed or stopped, or the boot timeout passed: then the reason carries the last lines of its console.
 * The state is checked by a short timer rather than by watches, so that nothing outlives what it points at. */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/log.h"
#include "basic/utf8.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager.h"
#include "vm/vm-spec.h"
#include "vm/vm.h"

#define POLL_USEC (250 * USEC_PER_MSEC)
#define CONSOLE_TAIL_BYTES 4096
#define CONSOLE_TAIL_LINES 12

typedef struct Restart Restart;

struct ExperimentRestarts {
        Manager *manager;
        Restart **pending;
        size_t n_pending;
        sd_event_source *timer;
};

struct Restart {
        ExperimentRestarts *owner;
        char *guest;
        pid_t old_pid;
        bool agent;
        uint64_t deadline;
        ExperimentRestartDone done;
        void *userdata;
};

int experiment_restarts_new(Manager *m, ExperimentRestarts **ret) {
        ExperimentRestarts *r = calloc(1, sizeof(ExperimentRestarts));

        if (!r)
                return -ENOMEM;
        r->manager = m;
        *ret = r;
        return 0;
}

static void restart_end(Restart *x, int error, const char *reason) {
        ExperimentRestarts *o = x->owner;
        ExperimentRestartDone done = x->done;
        void *userdata = x->userdata;

        for (size_t i = 0; i < o->n_pending; i++)
                if (o->pending[i] == x) {
                        memmove(o->pending + i, o->pending + i + 1, (o->n_pending - i - 1) * sizeof(Restart *));
                        o->n_pending--;
                        break;
                }
        if (o->n_pending == 0)
                o->timer = sd_event_source_disable_unref(o->timer);
        free(x->guest);
        free(x);
        done(error, reason, userdata);
}

ExperimentRestarts *experiment_restarts_free(ExperimentRestarts *o) {
        if (!o)
                return NULL;
        while (o->n_pending > 0)
                restart_end(o->pending[o->n_pending - 1], -ECANCELED, "the daemon stops");
        sd_event_source_disable_unref(o->timer);
        free(o->pending);
        return mfree(o);
}

/* The last lines of what the guest printed, made safe to log and send (utf8_escape_untrusted(): control
 * characters and invalid UTF-8 escaped). Bounded: the last CONSOLE_TAIL_BYTES of the current boot's file. */
static char *console_tail(Vm *vm) {
        char buf[CONSOLE_TAIL_BYTES + 1];
        size_t lines = 0;
        const char *start;
        off_t end;
        ssize_t n;
        int fd;

        if (!vm->console_path)
                return NULL;
        fd = open(vm->console_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return NULL;
        end = lseek(fd, 0, SEEK_END);
        n = end < 0 ? -1 : pread(fd, buf, CONSOLE_TAIL_BYTES, MAX(end - CONSOLE_TAIL_BYTES, (off_t) 0));
        (void) close(fd);
        if (n <= 0)
                return NULL;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                n--;
        buf[n] = 0;
        start = buf + n;
        while (start > buf && lines < CONSOLE_TAIL_LINES)
                if (*--start == '\n')
                        lines++;
        if (*start == '\n')
                start++;
        return utf8_escape_untrusted(start, (size_t) (buf + n - start));
}

static void restart_fail(Restart *x, Vm *vm, int error, const char *what) {
        _cleanup_free_ char *tail = vm ? console_tail(vm) : NULL, *reason = NULL;

        if (asprintf(&reason, "%s%s%s", what, tail ? "; its console ended with:\n" : " (its console is empty)",
                     strempty(tail)) < 0)
                reason = NULL;
        restart_end(x, error, reason ?: what);
}

/* 1: over (ended), 0: still waiting. */
static int restart_check(Restart *x, uint64_t now) {
        Vm *vm = manager_find_vm(x->owner->manager, x->guest);
        _cleanup_free_ char *what = NULL;

        if (!vm) {
                restart_end(x, -ESRCH, "the guest was undefined");
                return 1;
        }
        if (vm->state == VM_STATE_FAILED || (vm->state == VM_STATE_STOPPED && !vm_is_active(vm))) {
                if (asprintf(&what, "the guest %s (%s)", vm_state_to_string(vm->state),
                             vm->last_exit.valid && vm->last_exit.description ? vm->last_exit.description
                                                                              : strna(vm->reason)) < 0)
                        what = NULL;
                restart_fail(x, vm, -EIO, what ?: "the guest failed");
                return 1;
        }
        if (vm->pid > 0 && vm->pid != x->old_pid && vm->console_panic_how) {
                if (asprintf(&what, "the guest's kernel panicked while it booted (%s)", vm->console_panic_how) < 0)
                        what = NULL;
                restart_fail(x, vm, -EIO, what ?: "the guest's kernel panicked");
                return 1;
        }
        if (vm->state == VM_STATE_RUNNING && vm->pid > 0 && vm->pid != x->old_pid && vm->start_done &&
            (!x->agent || (vm->qga && qga_client_get_state(vm->qga) == QGA_STATE_READY))) {
                restart_end(x, 0, NULL);
                return 1;
        }
        if (now >= x->deadline) {
                if (asprintf(&what, "the guest was not %s within the boot timeout (state %s)",
                             x->agent ? "running with its agent ready" : "running",
                             vm_state_to_string(vm->state)) < 0)
                        what = NULL;
                restart_fail(x, vm, -ETIMEDOUT, what ?: "boot timeout");
                return 1;
        }
        return 0;
}

static int on_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        ExperimentRestarts *o = userdata;
        int r;

        (void) s;
        /* restart_end() may call back into a run that starts another restart: walk from the end, again. */
        for (size_t i = o->n_pending; i > 0; i--)
                if (i <= o->n_pending)
                        (void) restart_check(o->pending[i - 1], usec);
        if (o->n_pending > 0 && o->timer) {
                r = sd_event_source_set_time_relative(o->timer, POLL_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(o->timer, SD_EVENT_ONESHOT);
                if (r < 0)
                        log_warning_errno(r, "Failed to re-arm the experiment restart timer: %m");
        }
        return 0;
}

int experiment_restart_start(ExperimentRestarts *o, const char *guest, const char *label, const char *const *names,
                             const char *const *values, size_t n, bool agent, uint64_t timeout_usec,
                             ExperimentRestartDone done, void *done_userdata, void **ret_handle) {
        _cleanup_(vm_spec_freep) VmSpec *variant = NULL;
        _cleanup_free_ char *field = NULL, *reason = NULL, *error = NULL, *msg = NULL;
        Vm *vm = manager_find_vm(o->manager, guest);
        Restart *x, **p;
        uint64_t now;
        int r;

        if (!vm)
                return -ESRCH;
        r = vm_spec_with_settings(vm->spec, (char *const *) names, (char *const *) values, n, &variant, &field,
                                  &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                *ret_handle = NULL;
                if (asprintf(&msg, "%s%s%s", strempty(field), field ? ": " : "", reason ?: strerror(-r)) < 0)
                        msg = NULL;
                done(r, msg ?: "the variant is not valid", done_userdata);
                return 0;
        }

        p = reallocarray(o->pending, o->n_pending + 1, sizeof(Restart *));
        if (!p)
                return -ENOMEM;
        o->pending = p;
        x = calloc(1, sizeof(Restart));
        if (!x || !(x->guest = strdup(guest))) {
                free(x);
                return -ENOMEM;
        }
        if (!o->timer) {
                r = sd_event_add_time_relative(o->manager->event, &o->timer, CLOCK_MONOTONIC, POLL_USEC, 0, on_poll,
                                               o);
                if (r < 0) {
                        free(x->guest);
                        free(x);
                        return r;
                }
                (void) sd_event_source_set_description(o->timer, "experiment-restart");
        }
        (void) sd_event_now(o->manager->event, CLOCK_MONOTONIC, &now);
        *x = (Restart) {
                .owner = o,
                .guest = x->guest,
                .old_pid = vm_is_active(vm) ? vm->pid : 0,
                .agent = agent,
                .deadline = now + timeout_usec,
                .done = done,
                .userdata = done_userdata,
        };
        o->pending[o->n_pending++] = x;
        *ret_handle = x;

        vm_set_variant(vm, TAKE_PTR(variant), label);
        r = vm_restart(vm, &error);
        if (r < 0) {
                *ret_handle = NULL;
                if (asprintf(&msg, "the guest could not be restarted: %s", error ?: strerror(-r)) < 0)
                        msg = NULL;
                restart_end(x, r, msg ?: "the guest could not be restarted");
        }
        return 0;
}

void experiment_restart_cancel(ExperimentRestarts *o, void *handle) {
        for (size_t i = 0; i < o->n_pending; i++)
                if (o->pending[i] == handle)
                        return restart_end(handle, -ECANCELED, "cancelled");
}

void experiment_restart_restore(ExperimentRestarts *o, const char *guest) {
        _cleanup_free_ char *error = NULL;
        Vm *vm = manager_find_vm(o->manager, guest);
        bool variant_runs;
        int r;

        if (!vm)
                return;
        variant_runs = vm_is_active(vm) && vm->running_variant;
        vm_set_variant(vm, NULL, NULL);
        if (vm_is_active(vm) && !variant_runs)
                return;
        /* A variant runs, or its QEMU ended (a variant that failed): the guest ran when the run began, so it runs
         * its own definition again. */
        r = variant_runs ? vm_restart(vm, &error) : vm_start(vm, &error);
        if (r < 0)
                log_warning("Guest %s could not be restarted with its own definition after a matrix run: %s", guest,
                            error ?: strerror(-r));
}
