/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest state machine (src/vm/vm.c) against a fake QEMU (fake-qemu.py) that speaks QMP on fd 3:
 * start, graceful stop, stop escalation to SIGTERM, crash with restart policy and start limit, start
 * timeout, kill. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "fileio.h"
#include "log.h"
#include "vm.h"

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
                cmocka_unit_test_setup_teardown(test_missing_emulator, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
