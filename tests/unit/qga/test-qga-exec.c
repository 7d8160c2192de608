/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qga_exec against the fake agent of qga-fake-agent.h: exit code, signal, stdin and environment, output over the
 * bound (truncation stated), the agent's own truncation, a missing program, a timeout that kills the program (and
 * one where the guest has no kill), a malformed status, a lost connection. */

#include "qga-fake-agent.h"
#include "qga/qga-op.h"

static void on_exec(QgaClient *c, const QgaError *error, const QgaExecResult *res, void *userdata) {
        Result *r = userdata;

        result_error(r, error);
        if (error) {
                assert_null(res);
                return;
        }
        assert_non_null(res->out);
        assert_non_null(res->err);
        assert_int_equal(res->out[res->out_size], 0);
        assert_int_equal(res->err[res->err_size], 0);
        r->exec = *res;
        r->exec.out = malloc(res->out_size + 1);
        memcpy(r->exec.out, res->out, res->out_size + 1);
        r->exec.err = strdup(res->err);
        r->exec.kill_error = res->kill_error ? strdup(res->kill_error) : NULL;
}

static void run(Result *r, char **argv, const QgaExecRequest *extra, int expect_return) {
        QgaExecRequest req = extra ? *extra : (QgaExecRequest) {};

        req.argv = argv;
        assert_int_equal(qga_exec(client, &req, on_exec, r), expect_return);
        if (expect_return == 0)
                wait_for(r, 20 * USEC_PER_SEC);
}

static void test_exec_exit(void **state) {
        char *echo[] = { (char *) "echo", (char *) "hello", NULL };
        char *fail[] = { (char *) "false", NULL };
        char *segv[] = { (char *) "segv", NULL };
        Result r = {};

        run(&r, echo, NULL, 0);
        assert_int_equal(r.error, 0);
        assert_true(r.exec.pid > 0);
        assert_true(r.exec.exited);
        assert_int_equal(r.exec.exit_code, 0);
        assert_int_equal(r.exec.signal, 0);
        assert_string_equal(r.exec.out, "hello\n");
        assert_int_equal(r.exec.out_size, 6);
        assert_string_equal(r.exec.err, "");
        assert_false(r.exec.timed_out);
        assert_false(r.exec.out_truncated);
        assert_true(r.exec.duration_usec > 0);
        assert_int_equal(log_count("guest-exec-status"), 3);   /* running, running, exited */
        result_done(&r);

        run(&r, fail, NULL, 0);
        assert_int_equal(r.error, 0);
        assert_true(r.exec.exited);
        assert_int_equal(r.exec.exit_code, 3);
        assert_string_equal(r.exec.err, "it failed\n");
        result_done(&r);

        /* Death by a signal: no exit code. */
        run(&r, segv, NULL, 0);
        assert_int_equal(r.error, 0);
        assert_false(r.exec.exited);
        assert_int_equal(r.exec.signal, 11);
        result_done(&r);
}

static void test_exec_input_env(void **state) {
        char *cat[] = { (char *) "cat", NULL };
        char *env[] = { (char *) "env", NULL };
        char *vars[] = { (char *) "MEMVISOR=1", NULL };
        static const char input[] = "line one\nline \xff two\n";
        Result r = {};

        run(&r, cat, &(QgaExecRequest) { .input = input, .input_size = sizeof(input) - 1 }, 0);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.exec.out_size, sizeof(input) - 1);
        assert_memory_equal(r.exec.out, input, sizeof(input) - 1);
        result_done(&r);

        run(&r, env, &(QgaExecRequest) { .env = vars }, 0);
        assert_string_equal(r.exec.out, "MEMVISOR=1");
        result_done(&r);

        /* Bad requests call nothing back. */
        run(&r, cat, &(QgaExecRequest) { .max_output = 17 * 1024 * 1024 }, -EINVAL);
        run(&r, cat, &(QgaExecRequest) { .input_size = 3 }, -EINVAL);
        assert_int_equal(qga_exec(client, &(QgaExecRequest) { .argv = (char *[]) { NULL } }, on_exec, &r), -EINVAL);
        assert_int_equal(r.calls, 0);
}

static void test_exec_output_bounded(void **state) {
        char *yes[] = { (char *) "yes", NULL };
        char *cat[] = { (char *) "cat", NULL };
        Result r = {};

        /* 100 000 bytes, bound 1000: cut and stated (the agent's flag is set as well here). */
        run(&r, yes, &(QgaExecRequest) { .max_output = 1000 }, 0);
        assert_int_equal(r.error, 0);
        assert_int_equal(r.exec.out_size, 1000);
        assert_int_equal(strlen(r.exec.out), 1000);
        assert_true(r.exec.out_truncated);
        assert_false(r.exec.err_truncated);
        result_done(&r);

        /* Under the bound but the agent says it truncated: stated too. */
        run(&r, yes, NULL, 0);
        assert_int_equal(r.exec.out_size, 100000);
        assert_true(r.exec.out_truncated);
        result_done(&r);

        /* Exactly at the bound and no agent flag: not truncated; one byte over the bound: truncated. */
        run(&r, cat, &(QgaExecRequest) { .input = "12345", .input_size = 5, .max_output = 5 }, 0);
        assert_int_equal(r.exec.out_size, 5);
        assert_false(r.exec.out_truncated);
        result_done(&r);
        run(&r, cat, &(QgaExecRequest) { .input = "123456", .input_size = 6, .max_output = 5 }, 0);
        assert_int_equal(r.exec.out_size, 5);
        assert_string_equal(r.exec.out, "12345");
        assert_true(r.exec.out_truncated);
        result_done(&r);
}

static void test_exec_missing(void **state) {
        char *missing[] = { (char *) "missing", NULL };
        Result r = {};

        run(&r, missing, NULL, 0);
        assert_int_equal(r.error, -EIO);
        assert_string_equal(r.command, "guest-exec");
        assert_non_null(strstr(r.description, "No such file or directory"));
        result_done(&r);
}

/* An agent slower than the client's default command timeout (10 s) to answer guest-exec: the command may take what
 * the program's own timeout allows (a busy guest, its pages being migrated, answered after 10 s), so the error
 * comes no earlier than that timeout. */
static void test_exec_slow_agent(void **state) {
        char *echo[] = { (char *) "echo", (char *) "hello", NULL };
        Result r = {};
        uint64_t start;

        fake.silent_command = "guest-exec";
        start = qga_now(CLOCK_MONOTONIC);
        run(&r, echo, &(QgaExecRequest) { .timeout_usec = QGA_DEFAULT_TIMEOUT_USEC + 2 * USEC_PER_SEC }, 0);
        assert_int_equal(r.error, -ETIMEDOUT);
        assert_string_equal(r.command, "guest-exec");
        assert_true(qga_now(CLOCK_MONOTONIC) - start >= QGA_DEFAULT_TIMEOUT_USEC + 2 * USEC_PER_SEC);
        result_done(&r);
}

static void test_exec_timeout_kill(void **state) {
        char *sleep_[] = { (char *) "sleep", (char *) "1000", NULL };
        const FakeProc *k = NULL;
        Result r = {};

        run(&r, sleep_, &(QgaExecRequest) { .timeout_usec = 300 * USEC_PER_MSEC }, 0);
        assert_int_equal(r.error, 0);
        assert_true(r.exec.timed_out);
        assert_true(r.exec.killed);
        assert_null(r.exec.kill_error);
        /* Reaped after the kill: its death by SIGKILL and its output. */
        assert_false(r.exec.exited);
        assert_int_equal(r.exec.signal, 9);
        assert_string_equal(r.exec.out, "partial");
        assert_true(r.exec.duration_usec >= 300 * USEC_PER_MSEC);
        for (size_t i = 0; i < fake.n_procs; i++)
                if (streq(fake.procs[i].path, "kill"))
                        k = &fake.procs[i];
        assert_non_null(k);
        assert_string_equal(k->args[0], "-KILL");
        assert_int_equal(strtoll(k->args[1], NULL, 10), r.exec.pid);
        result_done(&r);
}

static void test_exec_timeout_no_kill(void **state) {
        char *sleep_[] = { (char *) "sleep", (char *) "1000", NULL };
        Result r = {};

        /* The guest has no kill program: the result says it could not be killed and why; still running. */
        fake.no_kill = true;
        run(&r, sleep_, &(QgaExecRequest) { .timeout_usec = 200 * USEC_PER_MSEC }, 0);
        assert_int_equal(r.error, 0);
        assert_true(r.exec.timed_out);
        assert_false(r.exec.killed);
        assert_non_null(r.exec.kill_error);
        assert_non_null(strstr(r.exec.kill_error, "guest-exec of kill failed"));
        assert_false(r.exec.exited);
        assert_int_equal(r.exec.signal, 0);
        result_done(&r);
}

static void test_exec_garbage(void **state) {
        char *echo[] = { (char *) "echo", (char *) "x", NULL };
        Result r = {};

        fake.garbage_command = "guest-exec-status";
        run(&r, echo, NULL, 0);
        assert_int_equal(r.error, -EBADMSG);
        assert_string_equal(r.command, "guest-exec-status");
        result_done(&r);

        fake.garbage_command = "guest-exec";
        run(&r, echo, NULL, 0);
        assert_int_equal(r.error, -EBADMSG);
        assert_string_equal(r.command, "guest-exec");
        result_done(&r);
}

static void test_exec_hangup(void **state) {
        char *sleep_[] = { (char *) "sleep", (char *) "1000", NULL };
        Result r = {};

        /* The connection goes while polling; the caller dropped its client reference meanwhile. */
        fake.hangup_command = "guest-exec-status";
        run(&r, sleep_, NULL, 0);
        assert_true(r.error == -ECONNRESET || r.error == -ENOTCONN);
        assert_string_equal(r.command, "guest-exec-status");
        result_done(&r);

        fake.hangup_command = NULL;
        assert_int_equal(qga_exec(client, &(QgaExecRequest) { .argv = sleep_ }, on_exec, &r), -ENOTCONN);
        assert_int_equal(r.calls, 0);
}

static void test_exec_unsupported(void **state) {
        char *echo[] = { (char *) "echo", (char *) "x", NULL };
        Result r = {};

        /* guest-exec is not in guest-info's list (setup_…: a fresh client): refused at once, nothing sent. */
        run(&r, echo, NULL, -ENOTSUP);
        assert_false(log_contains("guest-exec"));
        assert_int_equal(r.calls, 0);
}

static void test_exec_disabled(void **state) {
        char *echo[] = { (char *) "echo", (char *) "x", NULL };
        Result r = {};

        /* Listed, but answered CommandNotFound (disabled since guest-info was read): -ENOTSUP, naming it. */
        fake.fail_command = "guest-exec-status";
        fake.fail_nth = 1;
        fake.fail_class = "CommandNotFound";
        run(&r, echo, NULL, 0);
        assert_int_equal(r.error, -ENOTSUP);
        assert_string_equal(r.command, "guest-exec-status");
        assert_null(r.error_class);
        result_done(&r);
}

int main(void) {
        static const char *no_exec = "guest-exec";
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_prestate_setup_teardown(test_exec_unsupported, setup, teardown, (void *) no_exec),
                cmocka_unit_test_setup_teardown(test_exec_disabled, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exec_exit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exec_input_env, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exec_output_bounded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exec_missing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exec_slow_agent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exec_timeout_kill, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exec_timeout_no_kill, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exec_garbage, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exec_hangup, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
