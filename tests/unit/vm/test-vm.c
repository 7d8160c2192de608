/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest state machine (src/vm/vm.c) against a fake QEMU (fake-qemu.py) that speaks QMP on fd 3:
 * start, graceful stop, stop escalation to SIGTERM, crash with restart policy and start limit, start
 * timeout, kill; and the lifetime rules at the QMP edge: QEMU exiting with a command open, a Vm freed while
 * someone else holds its QMP client. */
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "vm/vm.h"

typedef struct Fixture {
        sd_event *event;
        VmContext ctx;
        char dir[64];
        char states[64][16];
        unsigned n_states;
} Fixture;

static void on_state(Vm *vm, VmState old, void *userdata) {
        Fixture *f = userdata;

        if (f->n_states < 64)
                snprintf(f->states[f->n_states++], 16, "%s", vm_state_to_string(vm->state));
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));
        sigset_t ss;

        assert_non_null(f);
        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        assert_int_equal(sigprocmask(SIG_BLOCK, &ss, NULL), 0);
        assert_int_equal(sd_event_new(&f->event), 0);
        snprintf(f->dir, sizeof(f->dir), "/tmp/memvisor-test-vm.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(vm_context_init(&f->ctx, f->event, f->dir, false), 0);
        assert_int_equal(vm_context_add_state_watch(&f->ctx, on_state, f), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[128];

        vm_context_done(&f->ctx);
        sd_event_unref(f->event);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        (void) system(cmd);
        free(f);
        return 0;
}

static Vm *make_vm(Fixture *f, const char *extra) {
        _cleanup_free_ char *ini = NULL;
        VmSpec *spec = NULL;
        VmSpecError e = {};
        Vm *vm = NULL;

        assert_true(asprintf(&ini, "[VM]\nName=t\nVCPUs=2\nDisk=/dev/null\nAccelerator=tcg\nEmulator=%s\n%s",
                             FAKE_QEMU, extra) > 0);
        if (vm_spec_parse_ini("t.vm", ini, NULL, &spec, &e) < 0)
                fail_msg("%s", e.message);
        assert_int_equal(vm_new(&f->ctx, spec, NULL, &vm), 0);
        return vm;
}

static void run_until(Fixture *f, Vm *vm, VmState state, unsigned min_states) {
        for (int i = 0; i < 2000; i++) {
                if (vm->state == state && f->n_states >= min_states)
                        return;
                assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
        }
        fail_msg("state %s not reached (now %s)", vm_state_to_string(state), vm_state_to_string(vm->state));
}

static void assert_states(Fixture *f, const char *const *want) {
        size_t n = 0;

        for (; want[n]; n++) {
                assert_true(n < f->n_states);
                assert_string_equal(f->states[n], want[n]);
        }
        assert_int_equal(f->n_states, n);
}

static void test_start_and_graceful_stop(void **state) {
        Fixture *f = *state;
        Vm *vm = make_vm(f, "");

        setenv("FAKE_QEMU_MODE", "normal", 1);
        assert_int_equal(vm_start(vm, NULL), 0);
        run_until(f, vm, VM_STATE_RUNNING, 2);
        assert_true(vm_is_active(vm));
        assert_int_equal(vm->n_vcpus, 2U);
        assert_string_equal(vm->qemu_status, "running");
        assert_true(access(vm->state_path, F_OK) == 0);        /* re-adoption state written */

        assert_int_equal(vm_stop(vm), 0);
        run_until(f, vm, VM_STATE_STOPPED, 4);
        assert_states(f, STRV("starting", "running", "stopping", "stopped"));
        assert_false(vm_is_active(vm));
        assert_true(vm->last_exit.status_known);
        assert_int_equal(vm->last_exit.code, 0);
        assert_string_equal(vm->last_exit.shutdown_reason, "guest-shutdown");
        assert_true(access(vm->state_path, F_OK) < 0);         /* cleaned up */
        vm_free(vm);
}

static void test_stop_escalates_to_sigterm(void **state) {
        Fixture *f = *state;
        Vm *vm = make_vm(f, "StopTimeoutSec=100ms\n");

        setenv("FAKE_QEMU_MODE", "stubborn", 1);
        assert_int_equal(vm_start(vm, NULL), 0);
        run_until(f, vm, VM_STATE_RUNNING, 2);
        assert_int_equal(vm_stop(vm), 0);
        run_until(f, vm, VM_STATE_STOPPED, 4);
        assert_states(f, STRV("starting", "running", "stopping", "stopped"));
        assert_int_equal(vm->last_exit.code, 0);    /* exited on SIGTERM */
        assert_null(vm->last_exit.shutdown_reason); /* it never shut down by itself */
        vm_free(vm);
}

static void test_infinite_stop_timeout_waits(void **state) {
        Fixture *f = *state;
        Vm *vm = make_vm(f, "StopTimeoutSec=infinity\nStartTimeoutSec=infinity\n");

        setenv("FAKE_QEMU_MODE", "stubborn", 1);
        assert_int_equal(vm_start(vm, NULL), 0);
        run_until(f, vm, VM_STATE_RUNNING, 2);
        assert_int_equal(vm_stop(vm), 0);
        /* It ignores the power button and is never sent SIGTERM: still stopping after a while. */
        for (int i = 0; i < 50; i++)
                assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(vm->state, VM_STATE_STOPPING);
        assert_true(vm_is_active(vm));
        assert_int_equal(vm_kill(vm, SIGKILL), 0);
        run_until(f, vm, VM_STATE_STOPPED, 4);
        vm_free(vm);
}

static void test_crash_restart_and_start_limit(void **state) {
        Fixture *f = *state;
        Vm *vm = make_vm(f, "[Restart]\nPolicy=on-failure\nRestartSec=10ms\nRestartMaxDelaySec=20ms\n"
                            "StartLimitBurst=3\n");

        setenv("FAKE_QEMU_MODE", "crash", 1);
        assert_int_equal(vm_start(vm, NULL), 0);
        run_until(f, vm, VM_STATE_FAILED, 6);
        assert_states(f, STRV("starting", "restarting", "starting", "restarting", "starting", "failed"));
        assert_int_equal(vm->restarts, 2U);
        assert_non_null(strstr(vm->reason, "start limit hit"));
        assert_non_null(strstr(vm->reason, "exited with status 3"));
        assert_int_equal(vm->last_exit.code, 3);
        vm_free(vm);
}

static void test_policy_no_means_failed(void **state) {
        Fixture *f = *state;
        Vm *vm = make_vm(f, "");

        setenv("FAKE_QEMU_MODE", "crash", 1);
        assert_int_equal(vm_start(vm, NULL), 0);
        run_until(f, vm, VM_STATE_FAILED, 2);
        assert_states(f, STRV("starting", "failed"));
        assert_string_equal(vm->reason, "exited with status 3");
        assert_int_equal(vm->restarts, 0U);
        vm_free(vm);
}

static void test_start_timeout(void **state) {
        Fixture *f = *state;
        Vm *vm = make_vm(f, "StartTimeoutSec=200ms\n");

        setenv("FAKE_QEMU_MODE", "hang", 1);
        assert_int_equal(vm_start(vm, NULL), 0);
        run_until(f, vm, VM_STATE_FAILED, 2);
        assert_states(f, STRV("starting", "failed"));
        assert_non_null(strstr(vm->reason, "start timeout"));
        assert_int_equal(vm->last_exit.signal, SIGKILL);
        vm_free(vm);
}

static void test_kill_and_restart(void **state) {
        Fixture *f = *state;
        Vm *vm = make_vm(f, "[Restart]\nPolicy=always\nRestartSec=10ms\n");
        pid_t first;

        setenv("FAKE_QEMU_MODE", "normal", 1);
        assert_int_equal(vm_kill(vm, SIGKILL), -ESRCH); /* not running */
        assert_int_equal(vm_start(vm, NULL), 0);
        run_until(f, vm, VM_STATE_RUNNING, 2);
        first = vm->pid;

        /* A kill on request is not a failure: Policy=always does not restart it. */
        assert_int_equal(vm_kill(vm, SIGKILL), 0);
        run_until(f, vm, VM_STATE_STOPPED, 4);
        assert_int_equal(vm->last_exit.signal, SIGKILL);

        /* restart of a stopped guest starts it; of a running one stops and starts it */
        assert_int_equal(vm_restart(vm, NULL), 0);
        run_until(f, vm, VM_STATE_RUNNING, 6);
        assert_true(vm->pid != first);
        first = vm->pid;
        assert_int_equal(vm_restart(vm, NULL), 0);
        run_until(f, vm, VM_STATE_RUNNING, 10);
        assert_true(vm->pid != first);
        assert_states(f, STRV("starting", "running", "stopping", "stopped", "starting", "running", "stopping",
                              "stopped", "starting", "running"));
        assert_int_equal(vm->restarts, 0U); /* none of these was the policy's doing */
        assert_int_equal(vm_kill(vm, SIGKILL), 0);
        run_until(f, vm, VM_STATE_STOPPED, 12);
        vm_free(vm);
}

/* A QMP command callback that records how, how often and when it was called. */
typedef struct Probe {
        Vm *vm;                 /* looked at during the call when set */
        unsigned calls;
        int error;
        VmState state_at_call;
        bool active_at_call;
        bool shutdown_seen_at_call;
} Probe;

static void on_probe(QmpClient *q, int error, json_object *result, const char *cls, const char *desc,
                     void *userdata) {
        Probe *p = userdata;

        p->calls++;
        p->error = error;
        if (p->vm) {
                p->state_at_call = p->vm->state;
                p->active_at_call = vm_is_active(p->vm);
                p->shutdown_seen_at_call = p->vm->shutdown_reason != NULL;
        }
}

/* QEMU writes a SHUTDOWN event and exits with a command open: the event, then the EOF (the command fails with
 * -ECONNRESET, exactly once), then the exit — in that order, whatever epoll reports first. */
static void test_qemu_exit_fails_open_command(void **state) {
        Fixture *f = *state;
        Vm *vm = make_vm(f, "");
        Probe p = {};

        setenv("FAKE_QEMU_MODE", "die", 1);
        assert_int_equal(vm_start(vm, NULL), 0);
        run_until(f, vm, VM_STATE_RUNNING, 2);
        p.vm = vm;
        assert_int_equal(qmp_client_execute(vm->qmp, "stop", NULL, 0, on_probe, &p), 0);
        run_until(f, vm, VM_STATE_FAILED, 3);

        assert_int_equal(p.calls, 1U);
        assert_int_equal(p.error, -ECONNRESET);
        assert_int_equal(p.state_at_call, VM_STATE_RUNNING); /* before the exit was handled */
        assert_true(p.active_at_call);
        assert_true(p.shutdown_seen_at_call);                 /* after the event QEMU wrote first */
        assert_true(vm->last_exit.status_known);
        assert_int_equal(vm->last_exit.code, 1);
        assert_string_equal(vm->last_exit.shutdown_reason, "host-signal");
        assert_null(vm->qmp);
        vm_free(vm);
}

/* The exit is seen while the QMP connection is still open (a child of QEMU holds it): the Vm lets go of the
 * client and the open command still gets its one -ECONNRESET. */
static void test_exit_before_eof_fails_open_command(void **state) {
        Fixture *f = *state;
        Vm *vm = make_vm(f, "");
        Probe p = {};

        setenv("FAKE_QEMU_MODE", "linger", 1);
        assert_int_equal(vm_start(vm, NULL), 0);
        run_until(f, vm, VM_STATE_RUNNING, 2);
        p.vm = vm;
        assert_int_equal(qmp_client_execute(vm->qmp, "stop", NULL, USEC_INFINITY, on_probe, &p), 0);
        run_until(f, vm, VM_STATE_FAILED, 3);

        assert_int_equal(p.calls, 1U);
        assert_int_equal(p.error, -ECONNRESET);
        assert_int_equal(p.state_at_call, VM_STATE_RUNNING);
        assert_int_equal(vm->last_exit.code, 1);
        /* nothing more arrives later */
        for (int i = 0; i < 20; i++)
                assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(p.calls, 1U);
        vm_free(vm);
}

/* Someone else (metrics, KVM statistics) holds a reference to the guest's QMP client when the Vm is freed, and
 * QEMU goes on talking: a reply and a SHUTDOWN event are on their way. Neither may reach the freed Vm (under
 * ASan this was a heap-use-after-free in vm_on_qmp_event); the open command fails once with -ECONNRESET. */
static void test_free_while_client_referenced(void **state) {
        Fixture *f = *state;
        Vm *vm = make_vm(f, "");
        QmpClient *q;
        Probe p = {};
        pid_t pid;

        setenv("FAKE_QEMU_MODE", "normal", 1);
        assert_int_equal(vm_start(vm, NULL), 0);
        run_until(f, vm, VM_STATE_RUNNING, 2);
        q = qmp_client_ref(vm->qmp);
        pid = vm->pid;
        /* queued now, written by the loop after the Vm is gone: QEMU answers and sends SHUTDOWN */
        assert_int_equal(qmp_client_execute(q, "system_powerdown", NULL, 0, on_probe, &p), 0);
        vm_free(vm);

        for (int i = 0; i < 50; i++)
                assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(p.calls, 1U);
        assert_int_equal(p.error, -ECONNRESET);
        assert_int_equal(qmp_client_get_state(q), QMP_CLIENT_DISCONNECTED);
        qmp_client_unref(q);

        (void) kill(pid, SIGKILL);
        assert_int_equal(waitpid(pid, NULL, 0), pid);
}

static void test_missing_emulator(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *error = NULL;
        VmSpec *spec = NULL;
        VmSpecError e = {};
        Vm *vm = NULL;

        assert_int_equal(vm_spec_parse_ini("t.vm", "[VM]\nName=t\nDisk=/dev/null\nEmulator=/nonexistent/qemu\n", NULL,
                                           &spec, &e),
                         0);
        assert_int_equal(vm_new(&f->ctx, spec, NULL, &vm), 0);
        assert_int_equal(vm_start(vm, &error), -ENOENT);
        assert_string_equal(error, "emulator /nonexistent/qemu not found");
        assert_int_equal(vm->state, VM_STATE_FAILED);
        assert_states(f, STRV("failed"));
        vm_free(vm);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_start_and_graceful_stop, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stop_escalates_to_sigterm, setup, teardown),
                cmocka_unit_test_setup_teardown(test_infinite_stop_timeout_waits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_crash_restart_and_start_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_policy_no_means_failed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_start_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kill_and_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_qemu_exit_fails_open_command, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exit_before_eof_fails_open_command, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_while_client_referenced, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_emulator, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
