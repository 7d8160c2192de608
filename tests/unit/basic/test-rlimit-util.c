/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "basic/rlimit-util.h"

static void test_bump_and_restore(void **state) {
        struct rlimit rl, now;
        pid_t pid;
        int status;

        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_max <= 64)
                skip();
        /* start from a low soft limit, as a service does */
        now = (struct rlimit) { .rlim_cur = 64, .rlim_max = rl.rlim_max };
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &now), 0);

        long got = rlimit_nofile_bump(rl.rlim_max == RLIM_INFINITY ? 4096 : rl.rlim_max + 1000);
        assert_true(got > 64);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
        assert_int_equal((long) now.rlim_cur, got);
        assert_true(now.rlim_cur <= now.rlim_max);        /* capped at the hard limit */
        assert_int_equal(rlimit_nofile_bump(65), got);     /* never lowered */

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                rlimit_nofile_restore();
                _exit(getrlimit(RLIMIT_NOFILE, &now) == 0 && now.rlim_cur == 64 ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        /* the parent keeps its raised limit */
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &now), 0);
        assert_int_equal((long) now.rlim_cur, got);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_bump_and_restore),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
