/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tracepoint counters (trace-counters.h) counting for real on this host: our own getpid() calls through
 * raw_syscalls:sys_enter with a kernel filter, sched:sched_switch on every CPU. When tracefs is not mounted and
 * we are root, it is mounted in a private mount namespace of this test (the host's mounts are untouched);
 * otherwise, and when perf_event_open is refused, those tests are skipped with the reason, never passed. The
 * paths that need no kernel (no tracefs, no threads, the fd bound) run everywhere. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "basic/fileio.h"
#include "trace/trace-counters.h"

static char *host_tracing_dir;          /* NULL: tracefs cannot be had here */
static char *host_why;

static int setup(void **state) {
        int r;

        r = trace_find_tracing_dir("/", &host_tracing_dir, &host_why);
        if (r == -ENOENT && geteuid() == 0) {
                /* A private mount namespace: the tracefs we mount is gone with this process */
                if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                    mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) < 0) {
                        free(host_why);
                        assert_true(asprintf(&host_why, "tracefs is not mounted and mounting it failed: %m") > 0);
                        return 0;
                }
                host_why = mfree(host_why);
                r = trace_find_tracing_dir("/", &host_tracing_dir, &host_why);
        }
        return 0;
}

static int teardown(void **state) {
        free(host_tracing_dir);
        free(host_why);
        return 0;
}

/* Skips the test when the kernel cannot count here, saying why. */
static void need_tracefs(void) {
        if (!host_tracing_dir) {
                print_message("SKIP: %s\n", strna(host_why));
                skip();
        }
}

static void skip_if_refused(const TraceCounters *c, size_t spec) {
        const char *why = trace_counters_unavailable(c, spec);

        if (why && strstr(why, "perf_event_open: ") && (strstr(why, "CAP_PERFMON"))) {
                print_message("SKIP: %s\n", why);
                skip();
        }
}

static void test_getpid(void **state) {
#if defined(__x86_64__)
        const TraceCounterSpec specs[] = {
                { "raw_syscalls", "sys_enter", "id == 39" },            /* getpid on x86_64 */
                { "raw_syscalls", "sys_enter", "id == 1000000" },       /* no such syscall */
                { "nosuchsystem", "nosuchevent", NULL },
                { "raw_syscalls", "sys_enter", "no_such_field == 1" },
        };
        _cleanup_(trace_counters_freep) TraceCounters *c = NULL;
        pid_t self = (pid_t) syscall(SYS_gettid);
        uint64_t before, after, per_thread[1], none;

        need_tracefs();
        assert_int_equal(trace_counters_open(host_tracing_dir, specs, ELEMENTSOF(specs), TRACE_TARGET_THREADS,
                                             &self, 1, &c), 0);
        skip_if_refused(c, 0);
        assert_int_equal(trace_counters_n_specs(c), 4);
        assert_int_equal(trace_counters_n_targets(c), 1);
        assert_int_equal(trace_counters_target_id(c, 0), self);
        assert_null(trace_counters_unavailable(c, 0));
        assert_null(trace_counters_unavailable(c, 1));
        /* The missing event and the refused filter are unavailable, each with its reason; the others count */
        assert_non_null(strstr(trace_counters_unavailable(c, 2), "no tracepoint nosuchsystem:nosuchevent"));
        assert_non_null(strstr(trace_counters_unavailable(c, 3), "refused the filter \"no_such_field == 1\""));
        assert_int_equal(trace_counters_read(c, 2, NULL, &none), -EOPNOTSUPP);
        assert_int_equal(trace_counters_read(c, 4, NULL, &none), -ERANGE);

        assert_int_equal(trace_counters_read(c, 0, NULL, &before), 0);
        for (unsigned i = 0; i < 1000; i++)
                (void) syscall(SYS_getpid);
        assert_int_equal(trace_counters_read(c, 0, per_thread, &after), 0);
        print_message("getpid: %" PRIu64 " counted for 1000 calls\n", after - before);
        assert_true(after - before >= 1000);
        assert_true(after - before < 1100);     /* nothing else of ours calls getpid */
        assert_int_equal(per_thread[0], after);
        assert_int_equal(trace_counters_read(c, 1, NULL, &none), 0);
        assert_int_equal(none, 0);
#else
        print_message("SKIP: the getpid syscall number (39) is that of x86_64\n");
        skip();
#endif
}

static void test_host_sched_switch(void **state) {
        const TraceCounterSpec specs[] = { { "sched", "sched_switch", NULL } };
        _cleanup_(trace_counters_freep) TraceCounters *c = NULL;
        _cleanup_free_ uint64_t *per_cpu = NULL;
        uint64_t before, after, sum = 0;
        long n_cpus = sysconf(_SC_NPROCESSORS_ONLN);

        need_tracefs();
        assert_int_equal(trace_counters_open(host_tracing_dir, specs, 1, TRACE_TARGET_HOST, NULL, 0, &c), 0);
        skip_if_refused(c, 0);
        assert_null(trace_counters_unavailable(c, 0));
        assert_int_equal(trace_counters_n_targets(c), n_cpus);
        per_cpu = calloc(trace_counters_n_targets(c), sizeof(uint64_t));
        assert_non_null(per_cpu);

        assert_int_equal(trace_counters_read(c, 0, NULL, &before), 0);
        for (unsigned i = 0; i < 10; i++)
                usleep(1000);           /* each sleep switches away from us at least once */
        assert_int_equal(trace_counters_read(c, 0, per_cpu, &after), 0);
        for (size_t i = 0; i < trace_counters_n_targets(c); i++)
                sum += per_cpu[i];
        print_message("sched_switch: %" PRIu64 " on %zu CPUs over 10 sleeps\n", after - before,
                      trace_counters_n_targets(c));
        assert_true(after - before >= 10);
        assert_int_equal(sum, after);
}

static void test_dead_thread(void **state) {
        const TraceCounterSpec specs[] = { { "sched", "sched_switch", NULL } };
        _cleanup_(trace_counters_freep) TraceCounters *c = NULL;
        pid_t pids[2], child;

        need_tracefs();
        child = fork();
        assert_true(child >= 0);
        if (child == 0)
                _exit(0);
        assert_int_equal(waitpid(child, NULL, 0), child);

        pids[0] = (pid_t) syscall(SYS_gettid);
        pids[1] = child;        /* reaped: gone */
        assert_int_equal(trace_counters_open(host_tracing_dir, specs, 1, TRACE_TARGET_THREADS, pids, 2, &c), 0);
        skip_if_refused(c, 0);
        /* Counting on one of two threads would pass for both: the spec is unavailable, naming the thread */
        assert_non_null(trace_counters_unavailable(c, 0));
        print_message("dead thread: %s\n", trace_counters_unavailable(c, 0));
        assert_non_null(strstr(trace_counters_unavailable(c, 0), "is gone"));
}

static void test_kvm_exits_here(void **state) {
        _cleanup_(trace_counters_freep) TraceCounters *c = NULL;
        pid_t self = (pid_t) syscall(SYS_gettid);
        TraceSymbol *reasons = NULL;
        size_t n = 0;
        uint64_t total;
        TraceKvmIsa isa;

        need_tracefs();
        if (trace_kvm_isa("/", &isa) < 0)
                isa = TRACE_KVM_ISA_VMX;
        assert_int_equal(trace_kvm_exits_open(host_tracing_dir, isa, &self, 1, &c, &reasons, &n), 0);
        assert_int_equal(trace_counters_n_specs(c), n + 1);
        skip_if_refused(c, n);
        if (n == 0) {
                /* No kvm module: the set is the total alone, and the note says why */
                assert_non_null(trace_counters_note(c));
                print_message("kvm_exit: %s\n", trace_counters_note(c));
        } else {
                print_message("kvm_exit: %zu reasons (%s)\n", n, trace_kvm_isa_to_string(isa));
                assert_null(trace_counters_note(c));
                /* Every filter "exit_reason == N" is accepted by the kernel; we are no vCPU: nothing counted */
                for (size_t i = 0; i <= n; i++) {
                        assert_null(trace_counters_unavailable(c, i));
                        assert_int_equal(trace_counters_read(c, i, NULL, &total), 0);
                        assert_int_equal(total, 0);
                }
        }
        trace_symbols_free(reasons, n);
}

static void test_unavailable_without_kernel(void **state) {
        const TraceCounterSpec specs[] = { { "sched", "sched_switch", NULL }, { "kvm", "kvm_exit", "x == 1" } };
        _cleanup_(trace_counters_freep) TraceCounters *c = NULL;
        pid_t self = (pid_t) syscall(SYS_gettid);
        uint64_t v;

        /* No tracefs */
        assert_int_equal(trace_counters_open(NULL, specs, 2, TRACE_TARGET_THREADS, &self, 1, &c), 0);
        for (size_t i = 0; i < 2; i++) {
                assert_non_null(strstr(trace_counters_unavailable(c, i), "tracefs is not mounted"));
                assert_int_equal(trace_counters_read(c, i, NULL, &v), -EOPNOTSUPP);
        }
        c = trace_counters_free(c);

        /* No threads */
        assert_int_equal(trace_counters_open("/nonexistent", specs, 2, TRACE_TARGET_THREADS, NULL, 0, &c), 0);
        assert_string_equal(trace_counters_unavailable(c, 0), "no threads to count on");
        c = trace_counters_free(c);

        /* Bad arguments */
        assert_int_equal(trace_counters_open(NULL, NULL, 2, TRACE_TARGET_THREADS, &self, 1, &c), -EINVAL);
        assert_int_equal(trace_counters_open(NULL, specs, 2, 7, &self, 1, &c), -EINVAL);
}

static void test_fd_bound(void **state) {
        _cleanup_free_ char *root = NULL, *dir = NULL, *why = NULL;
        _cleanup_(trace_counters_freep) TraceCounters *c = NULL;
        pid_t tids[64];
        TraceSymbol *reasons = NULL;
        size_t n = 0;

        /* The host fixture's VMX table: 65 reasons + the total = 66 specs; × 64 threads = 4224 > 4096 */
        assert_true(asprintf(&root, "%s/trace/host", TRACE_DATA) > 0);
        assert_int_equal(trace_find_tracing_dir(root, &dir, &why), 0);
        for (size_t i = 0; i < ELEMENTSOF(tids); i++)
                tids[i] = 1;
        assert_int_equal(trace_kvm_exits_open(dir, TRACE_KVM_ISA_VMX, tids, ELEMENTSOF(tids), &c, &reasons, &n), 0);
        assert_int_equal(n, 65);
        assert_int_equal(trace_counters_n_specs(c), 66);
        for (size_t i = 0; i <= n; i++)
                assert_non_null(strstr(trace_counters_unavailable(c, i), "exceed the limit of 4096 perf events"));
        print_message("bound: %s\n", trace_counters_unavailable(c, 0));
        trace_symbols_free(reasons, n);
        c = trace_counters_free(c);

        /* Without a tracefs: only the total, and the note says why the reasons are missing */
        assert_int_equal(trace_kvm_exits_open(NULL, TRACE_KVM_ISA_VMX, tids, 1, &c, &reasons, &n), 0);
        assert_int_equal(n, 0);
        assert_null(reasons);
        assert_int_equal(trace_counters_n_specs(c), 1);
        assert_non_null(trace_counters_note(c));
        assert_non_null(trace_counters_unavailable(c, 0));
}

/* A thread that makes no system call but getpid while phase is 1 (it spins before and stops after). */
static atomic_int group_phase;
static atomic_int group_tid;

static void *getpid_loop(void *arg) {
        atomic_store(&group_tid, (int) syscall(SYS_gettid));
        while (atomic_load(&group_phase) == 0)
                ;
        while (atomic_load(&group_phase) == 1)
                (void) syscall(SYS_getpid);
        return NULL;
}

/* A grouped set (trace_counters_open_group): getpid and getuid filtered, the unfiltered total leading, counted on
 * a thread calling getpid as fast as it can, read while it runs. Every reading of the group is of one instant up
 * to the one system call the kernel may be counting at that moment (its events are bumped one after the other,
 * and the read may come between): |total − (getpid + getuid)| ≤ 1 each time, where separate reads drift apart by
 * every call made between them (printed for comparison). */
static void test_group_exact(void **state) {
#if defined(__x86_64__)
        const TraceCounterSpec specs[] = {
                { "raw_syscalls", "sys_enter", "id == 39" },    /* getpid */
                { "raw_syscalls", "sys_enter", "id == 102" },   /* getuid */
                { "raw_syscalls", "sys_enter", NULL },          /* every system call: the leader */
        };
        _cleanup_(trace_counters_freep) TraceCounters *c = NULL;
        uint64_t v[3], last = 0, total, parts;
        unsigned skewed = 0, off_by_one = 0;
        pthread_t thread;
        pid_t tid;

        need_tracefs();
        atomic_store(&group_phase, 0);
        atomic_store(&group_tid, 0);
        assert_int_equal(pthread_create(&thread, NULL, getpid_loop, NULL), 0);
        while (atomic_load(&group_tid) == 0)
                sched_yield();
        tid = atomic_load(&group_tid);
        assert_int_equal(trace_counters_open_group(host_tracing_dir, specs, 3, TRACE_TARGET_THREADS, &tid, 1, 2, &c),
                         0);
        if (trace_counters_unavailable(c, 2)) {
                atomic_store(&group_phase, 2);
                assert_int_equal(pthread_join(thread, NULL), 0);
                skip_if_refused(c, 2);
        }
        for (size_t i = 0; i < 3; i++)
                assert_null(trace_counters_unavailable(c, i));

        atomic_store(&group_phase, 1);
        /* 2000 readings, and on until the thread has had the CPU for 1000 calls (a loaded machine may not run
         * it at first); at most a million readings */
        for (unsigned i = 0; i < 1000000 && (i < 2000 || last < 1000); i++) {
                if (i >= 2000)
                        sched_yield();
                assert_true(trace_counters_read_all(c, v) >= 0);
                /* nothing but getpid; of one instant, but for the call being counted */
                assert_true(v[2] + 1 >= v[0] + v[1] && v[2] <= v[0] + v[1] + 1);
                off_by_one += v[2] != v[0] + v[1];
                assert_int_equal(v[1], 0);
                assert_true(v[0] >= last);
                last = v[0];
                /* The same with separate reads, for comparison (not asserted: it depends on the timing) */
                assert_true(trace_counters_read(c, 0, NULL, &parts) >= 0);
                assert_true(trace_counters_read(c, 2, NULL, &total) >= 0);
                skewed += total != parts;
        }
        atomic_store(&group_phase, 2);
        assert_int_equal(pthread_join(thread, NULL), 0);
        print_message("group: %" PRIu64 " getpid counted; total = getpid in every group reading but %u (off by one: "
                      "a call being counted); separate reads disagreed %u times\n", last, off_by_one, skewed);
        assert_true(last >= 1000);
#else
        print_message("SKIP: the syscall numbers (39, 102) are those of x86_64\n");
        skip();
#endif
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_getpid),
                cmocka_unit_test(test_group_exact),
                cmocka_unit_test(test_host_sched_switch),
                cmocka_unit_test(test_dead_thread),
                cmocka_unit_test(test_kvm_exits_here),
                cmocka_unit_test(test_unavailable_without_kernel),
                cmocka_unit_test(test_fd_bound),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
