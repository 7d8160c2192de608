/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Placement from the first instruction (vm-placement.c, process.c): EmulatorAffinity= as the CPU set QEMU is
 * executed with (offline CPUs refused with the figures), set by process_spawn()'s child before execv (a real
 * child reads its own Cpus_allowed_list; a set the kernel refuses ends the child with its status and message),
 * and the check of every thread's Cpus_allowed_list at the first QMP greeting, on a fake /proc, with the
 * thread-context threads of Prealloc= counted apart. */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "vm/process.h"
#include "vm/vm-internal.h"

static char *root;

static void put(const char *rel, const char *text) {
        _cleanup_free_ char *path = NULL, *dir = NULL;

        assert_true(asprintf(&path, "%s/%s", root, rel) > 0);
        dir = strdup(path);
        assert_non_null(dir);
        *strrchr(dir, '/') = 0;
        assert_int_equal(mkdir_p(dir, 0755), 0);
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
}

static void put_thread(pid_t pid, pid_t tid, const char *comm, const char *cpus) {
        _cleanup_free_ char *a = NULL, *b = NULL, *status = NULL, *c = NULL;

        assert_true(asprintf(&a, "proc/%i/task/%i/status", (int) pid, (int) tid) > 0);
        assert_true(asprintf(&b, "proc/%i/task/%i/comm", (int) pid, (int) tid) > 0);
        assert_true(asprintf(&status, "Name:\t%s\nState:\tS (sleeping)\nCpus_allowed:\tff\nCpus_allowed_list:\t%s\n"
                             "Mems_allowed_list:\t0\n", comm, cpus) > 0);
        assert_true(asprintf(&c, "%s\n", comm) > 0);
        put(a, status);
        put(b, c);
}

static int setup(void **state) {
        assert_true(asprintf(&root, "%s/test-vm-placement.XXXXXX", getenv("TMPDIR") ?: "/tmp") > 0);
        assert_non_null(mkdtemp(root));
        put("sys/devices/system/cpu/online", "0-3\n");
        put("proc/meminfo", "MemTotal:       16384000 kB\n");
        return 0;
}

static int teardown(void **state) {
        _cleanup_free_ char *cmd = NULL;

        assert_true(asprintf(&cmd, "rm -rf '%s'", root) > 0);
        assert_int_equal(system(cmd), 0);
        root = mfree(root);
        return 0;
}

static void test_status(void **state) {
        CpuSet s, want = {};

        assert_int_equal(vm_status_allowed_cpus("Name:\tx\nCpus_allowed:\tb\nCpus_allowed_list:\t0-1,3\nX:\t1\n", &s),
                         0);
        cpu_set_add(&want, 0);
        cpu_set_add(&want, 1);
        cpu_set_add(&want, 3);
        assert_true(cpu_set_equal(&s, &want));
        assert_int_equal(vm_status_allowed_cpus("Name:\tx\nCpus_allowed:\tb\n", &s), -ENOENT);
        assert_int_equal(vm_status_allowed_cpus("Cpus_allowed_list:\t3-1\n", &s), -EINVAL);
        assert_int_equal(vm_status_allowed_cpus("Cpus_allowed_list:\n", &s), -EINVAL);
        assert_int_equal(vm_status_allowed_cpus("", &s), -ENOENT);

        assert_true(vm_thread_is_prealloc_context("TC tc0"));
        assert_true(vm_thread_is_prealloc_context("TC tc12"));
        assert_false(vm_thread_is_prealloc_context("TC other"));
        assert_false(vm_thread_is_prealloc_context("qemu-system-x86"));
        assert_false(vm_thread_is_prealloc_context("CPU 0/TCG"));
        assert_false(vm_thread_is_prealloc_context(NULL));
}

static void test_check_read(void **state) {
        _cleanup_(vm_emulator_check_done) VmEmulatorCheck c = {}, d = {};
        _cleanup_free_ char *proc = NULL;

        assert_true(asprintf(&proc, "%s/proc", root) > 0);
        /* QEMU 100: main thread and RCU inside 0-1, a vCPU thread on 0-3, a thread-context on its node's 2-3. */
        put_thread(100, 100, "qemu-system-x86", "0-1");
        put_thread(100, 101, "call_rcu", "1");
        put_thread(100, 102, "CPU 0/TCG", "0-3");
        put_thread(100, 103, "TC tc0", "2-3");
        assert_int_equal(vm_emulator_check_read(proc, 100, "0-1", &c), 0);
        assert_true(c.done);
        assert_string_equal(c.affinity, "0-1");
        assert_int_equal(c.threads, 3);
        assert_int_equal(c.outside, 1);
        assert_int_equal(c.context_threads, 1);
        assert_string_equal(c.first_outside, "thread 102 (CPU 0/TCG) may run on CPUs 0-3");

        /* All inside: nothing outside, no first_outside. */
        put_thread(200, 200, "qemu-system-x86", "0");
        put_thread(200, 201, "worker", "0");
        assert_int_equal(vm_emulator_check_read(proc, 200, "0", &d), 0);
        assert_int_equal(d.threads, 2);
        assert_int_equal(d.outside, 0);
        assert_null(d.first_outside);

        /* No such process; a status without the list; no affinity. */
        vm_emulator_check_done(&d);
        assert_true(vm_emulator_check_read(proc, 300, "0", &d) < 0);
        put("proc/400/task/400/status", "Name:\tq\n");
        assert_int_equal(vm_emulator_check_read(proc, 400, "0", &d), -ENOENT);
        assert_int_equal(vm_emulator_check_read(proc, 200, NULL, &d), -EINVAL);
        assert_false(d.done);
}

static VmSpec *spec(const char *cpu_ini) {
        _cleanup_free_ char *text = NULL;
        VmSpecError e = {};
        VmSpec *s = NULL;

        assert_true(asprintf(&text, "[VM]\nName=g\nKernel=/boot/vmlinuz\n%s", cpu_ini) > 0);
        if (vm_spec_parse_ini(NULL, text, NULL, &s, &e) < 0)
                fail_msg("%s", e.message);
        return s;
}

static void test_affinity(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *none = spec(""), *ok = spec("[CPU]\nEmulatorAffinity=1,3\n"),
                                        *off = spec("[CPU]\nEmulatorAffinity=2-5,7\n");
        _cleanup_free_ char *why = NULL;
        cpu_set_t set;

        assert_int_equal(vm_emulator_affinity(none, root, &set, &why), 0);
        assert_null(why);
        CPU_ZERO(&set);
        assert_int_equal(vm_emulator_affinity(ok, root, &set, &why), 1);
        assert_int_equal(CPU_COUNT(&set), 2);
        assert_true(CPU_ISSET(1, &set) && CPU_ISSET(3, &set));
        assert_int_equal(vm_emulator_affinity(off, root, &set, &why), -EINVAL);
        assert_string_equal(why, "EmulatorAffinity=2-5,7: CPUs 4-5,7 are not online (online: 0-3)");
}

/* Runs sh -c script through process_spawn with affinity; returns its output and exit status. */
static char *spawn(const char *script, const cpu_set_t *affinity, int *ret_status) {
        char *argv[] = { (char *) "sh", (char *) "-c", (char *) script, NULL };
        _cleanup_close_ int pidfd = -EBADF;
        char buf[4096];
        int p[2], status;
        ssize_t n, k = 0;
        pid_t pid;

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(process_spawn("/bin/sh", argv, p[1], NULL, 0, affinity, &pid, &pidfd), 0);
        close(p[1]);
        while ((n = read(p[0], buf + k, sizeof(buf) - 1 - (size_t) k)) > 0)
                k += n;
        close(p[0]);
        buf[k] = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        *ret_status = WEXITSTATUS(status);
        return strdup(buf);
}

static void test_spawn_affinity(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *want = NULL;
        cpu_set_t own, one, none;
        int cpu = -1, status;

        assert_int_equal(sched_getaffinity(0, sizeof(own), &own), 0);
        for (int i = 0; i < CPU_SETSIZE && cpu < 0; i++)
                if (CPU_ISSET(i, &own))
                        cpu = i;
        assert_true(cpu >= 0);

        /* The child runs the program already confined: its own status says so from its first instruction. */
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        a = spawn("grep Cpus_allowed_list /proc/self/status", &one, &status);
        assert_int_equal(status, 0);
        assert_true(asprintf(&want, "Cpus_allowed_list:\t%i\n", cpu) > 0);
        assert_string_equal(a, want);

        /* Without: the parent's affinity, unchanged. */
        b = spawn("grep -c Cpus_allowed_list /proc/self/status", NULL, &status);
        assert_int_equal(status, 0);
        assert_string_equal(b, "1\n");

        /* A set the kernel refuses (no CPU at all): the program is never executed. */
        CPU_ZERO(&none);
        c = spawn("echo executed", &none, &status);
        assert_int_equal(status, PROCESS_SPAWN_EXIT_AFFINITY);
        assert_string_equal(c, PROCESS_SPAWN_AFFINITY_FAILED " (errno 22)\n");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_status),
                cmocka_unit_test(test_check_read),
                cmocka_unit_test(test_affinity),
                cmocka_unit_test(test_spawn_affinity),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
