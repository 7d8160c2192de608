/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The typed operations against the real qemu-ga (Debian 12's is QEMU 7.2), run on the host in unix-listen mode with
 * every command blocked except the ones the operations use: the reply shapes, base64, guest-exec's PATH search
 * (for kill) and output capture as the real agent does them. The agent runs as us, on the host, so the programs
 * are harmless ones (echo, sh, sleep, head, chmod on a file of our scratch directory). Skipped when qemu-ga is not
 * installed (Debian: qemu-guest-agent). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>

#include "basic/fileio.h"
#include "basic/strv.h"
#include "qga/qga-client-internal.h"
#include "qga/qga-ops.h"

static const char *const allowed[] = {
        "guest-sync-delimited", "guest-info", "guest-get-time", "guest-file-open", "guest-file-read",
        "guest-file-write", "guest-file-close", "guest-get-osinfo", "guest-get-vcpus", "guest-get-memory-blocks",
        "guest-get-memory-block-info", "guest-exec", "guest-exec-status",
};

static sd_event *event;
static QgaClient *client;
static pid_t agent = -1;
static char dir[] = "/tmp/test-qga-real-ops-XXXXXX";

typedef struct Done {
        unsigned calls;
        int error;
        char *text;                     /* what the test looks at, formatted by the callback */
        QgaExecResult exec;
} Done;

static char *find_qemu_ga(void) {
        static const char *const dirs[] = { "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin" };
        char *p;

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                assert_true(asprintf(&p, "%s/qemu-ga", dirs[i]) >= 0);
                if (access(p, X_OK) == 0)
                        return p;
                free(p);
        }
        return NULL;
}

static char *blocklist(const char *qemu_ga) {
        char *cmd, line[256], *list = NULL;
        size_t n = 0;
        FILE *f;

        assert_true(asprintf(&cmd, "%s -b help 2>&1", qemu_ga) >= 0);
        f = popen(cmd, "r");
        free(cmd);
        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                bool ok = false;

                line[strcspn(line, "\n")] = 0;
                for (size_t i = 0; i < ELEMENTSOF(allowed); i++)
                        ok = ok || streq(line, allowed[i]);
                if (!startswith(line, "guest-") || ok)
                        continue;
                list = realloc(list, n + strlen(line) + 2);
                assert_non_null(list);
                n += (size_t) sprintf(list + n, "%s%s", n > 0 ? "," : "", line);
        }
        pclose(f);
        return list;
}

static void run_until(Done *d) {
        for (unsigned i = 0; i < 3000 && d->calls == 0; i++)
                assert_true(sd_event_run(event, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(d->calls, 1);
}

static int setup(void **state) {
        _cleanup_free_ char *qemu_ga = find_qemu_ga(), *blocked = NULL;
        char sock[128];

        if (!qemu_ga) {
                print_message("qemu-ga is not installed (Debian: qemu-guest-agent): skipping.\n");
                return 0;
        }
        blocked = blocklist(qemu_ga);
        assert_non_null(mkdtemp(dir));
        (void) snprintf(sock, sizeof(sock), "%s/qga.sock", dir);

        agent = fork();
        assert_true(agent >= 0);
        if (agent == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);

                if (null >= 0) {
                        (void) dup2(null, STDOUT_FILENO);
                        (void) dup2(null, STDERR_FILENO);
                }
                execl(qemu_ga, qemu_ga, "-m", "unix-listen", "-p", sock, "-t", dir, "-b", blocked, (char *) NULL);
                _exit(127);
        }

        assert_int_equal(sd_event_new(&event), 0);
        assert_int_equal(qga_client_new(&client, event, sock), 0);
        qga_client_set_timeouts(client, 3 * USEC_PER_SEC, 100 * USEC_PER_MSEC, 100 * USEC_PER_MSEC);
        for (unsigned i = 0; i < 3000 && qga_client_get_state(client) != QGA_STATE_READY; i++)
                assert_true(sd_event_run(event, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(qga_client_get_state(client), QGA_STATE_READY);
        print_message("qemu-ga %s\n", qga_client_get_version(client));
        return 0;
}

static int teardown(void **state) {
        char *rm;

        client = qga_client_unref(client);
        event = sd_event_unref(event);
        if (agent > 0) {
                (void) kill(agent, SIGTERM);
                (void) waitpid(agent, NULL, 0);
                assert_true(asprintf(&rm, "rm -rf '%s'", dir) >= 0);
                (void) !system(rm);
                free(rm);
        }
        return 0;
}

#define SKIP_WITHOUT_AGENT()            \
        do {                            \
                if (!client)            \
                        skip();         \
        } while (0)

static void on_counters(QgaClient *c, const QgaError *error, const QgaGuestCounters *k, void *userdata) {
        Done *d = userdata;
        const char *tlb_reason = NULL;

        d->calls++;
        d->error = error ? error->error : 0;
        if (error) {
                print_message("%s: %s\n", strna(error->command), error->description);
                return;
        }
        for (size_t i = 0; i < k->n_unavailable; i++)
                if (streq(k->unavailable[i].name, "nr_tlb_remote_flush"))
                        tlb_reason = k->unavailable[i].reason;
        assert_true(asprintf(&d->text, "vmstat=%zu meminfo=%zu cpus=%u tlb=%d cal=%d time=%d nr_tlb=%s", k->n_vmstat,
                             k->n_meminfo, k->interrupt_cpus, k->tlb.present && k->tlb.n_cpus == k->interrupt_cpus,
                             k->cal.present, k->guest_realtime_nsec > UINT64_C(1600000000) * 1000000000,
                             tlb_reason ?: "present") > 0);
}

static void test_counters(void **state) {
        _cleanup_free_ char *vmstat = NULL, *expected = NULL;
        size_t lines = 0, size;
        Done d = {};

        SKIP_WITHOUT_AGENT();
        assert_int_equal(read_full_file("/proc/vmstat", 1024 * 1024, &vmstat, &size), 0);
        for (size_t i = 0; i < size; i++)
                lines += vmstat[i] == '\n';

        assert_int_equal(qga_get_counters(client, on_counters, &d), 0);
        run_until(&d);
        assert_int_equal(d.error, 0);
        print_message("%s\n", d.text);
        /* The same host, read by the agent: the same keys (the count can only differ if the kernel changed). */
        assert_true(asprintf(&expected, "vmstat=%zu ", lines) > 0);
        assert_true(startswith(d.text, expected));
        assert_non_null(strstr(d.text, " time=1 "));
        if (!strstr(vmstat, "nr_tlb_remote_flush "))
                assert_non_null(strstr(d.text, "nr_tlb=unavailable: guest kernel without CONFIG_DEBUG_TLBFLUSH"));
        else
                assert_non_null(strstr(d.text, "nr_tlb=present"));
        free(d.text);
}

static void on_info(QgaClient *c, const QgaError *error, const QgaGuestInfo *info, void *userdata) {
        Done *d = userdata;

        d->calls++;
        d->error = error ? error->error : 0;
        if (error)
                return;
        assert_true(asprintf(&d->text, "%s|%u|%zu|%s", strna(info->kernel_release), info->vcpus, info->n_nodes,
                             info->n_nodes > 0 ? info->nodes[0].cpulist : "-") > 0);
        for (size_t i = 0; i < info->n_unavailable; i++)
                print_message("unavailable %s: %s\n", info->unavailable[i].name, info->unavailable[i].reason);
        for (size_t i = 0; i < info->n_nodes; i++)
                assert_true(info->nodes[i].mem_total_bytes >= info->nodes[i].mem_free_bytes);
}

static void test_guest_info(void **state) {
        _cleanup_free_ char *prefix = NULL;
        struct utsname u;
        Done d = {};

        SKIP_WITHOUT_AGENT();
        assert_int_equal(uname(&u), 0);
        assert_int_equal(qga_get_guest_info(client, on_info, &d), 0);
        run_until(&d);
        assert_int_equal(d.error, 0);
        print_message("%s\n", d.text);
        assert_true(asprintf(&prefix, "%s|", u.release) > 0);
        assert_true(startswith(d.text, prefix));
        if (access("/sys/devices/system/node/online", F_OK) == 0)
                assert_null(strstr(d.text, "|0|-"));    /* at least one node */
        free(d.text);
}

static void on_read(QgaClient *c, const QgaError *error, const char *data, size_t size, bool truncated,
                    void *userdata) {
        Done *d = userdata;

        d->calls++;
        d->error = error ? error->error : 0;
        if (!error) {
                d->text = malloc(size + 1);
                memcpy(d->text, data, size + 1);
                d->exec.out_size = size;
                d->exec.out_truncated = truncated;
        }
}

static void on_copy(QgaClient *c, const QgaError *error, uint64_t bytes_written, void *userdata) {
        Done *d = userdata;

        d->calls++;
        d->error = error ? error->error : 0;
        d->exec.out_size = bytes_written;
}

static void test_copy_and_read(void **state) {
        _cleanup_free_ char *path = NULL, *data = NULL;
        size_t n = 100 * 1024 + 7;
        struct stat st;
        Done d = {};

        SKIP_WITHOUT_AGENT();
        data = malloc(n);
        for (size_t i = 0; i < n; i++)
                data[i] = (char) (i * 131 + 7);
        assert_true(asprintf(&path, "%s/copied", dir) > 0);

        assert_int_equal(qga_copy_to_guest(client, data, n, path, 0750, on_copy, &d), 0);
        run_until(&d);
        assert_int_equal(d.error, 0);
        assert_int_equal(d.exec.out_size, n);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, n);
        assert_int_equal(st.st_mode & 07777, 0750);

        d = (Done) {};
        assert_int_equal(qga_read_file(client, path, 0, on_read, &d), 0);
        run_until(&d);
        assert_int_equal(d.error, 0);
        assert_int_equal(d.exec.out_size, n);
        assert_memory_equal(d.text, data, n);
        assert_false(d.exec.out_truncated);
        free(d.text);

        d = (Done) {};
        assert_int_equal(qga_read_file(client, path, 1000, on_read, &d), 0);
        run_until(&d);
        assert_int_equal(d.exec.out_size, 1000);
        assert_true(d.exec.out_truncated);
        free(d.text);
}

static void on_exec(QgaClient *c, const QgaError *error, const QgaExecResult *res, void *userdata) {
        Done *d = userdata;

        d->calls++;
        d->error = error ? error->error : 0;
        if (error) {
                d->text = strdup(error->description);
                return;
        }
        d->exec = *res;
        d->exec.out = strdup(res->out);
        d->exec.err = strdup(res->err);
        d->exec.kill_error = res->kill_error ? strdup(res->kill_error) : NULL;
}

static void exec_done(Done *d) {
        free(d->exec.out);
        free(d->exec.err);
        free(d->exec.kill_error);
        free(d->text);
        *d = (Done) {};
}

static void run_exec(Done *d, char **argv, uint64_t timeout, size_t max_output) {
        assert_int_equal(qga_exec(client, &(QgaExecRequest) { .argv = argv, .timeout_usec = timeout,
                                                              .max_output = max_output },
                                  on_exec, d), 0);
        run_until(d);
}

static void test_exec(void **state) {
        char *echo[] = { (char *) "echo", (char *) "hello", NULL };
        char *exit3[] = { (char *) "sh", (char *) "-c", (char *) "echo oops >&2; exit 3", NULL };
        char *segv[] = { (char *) "sh", (char *) "-c", (char *) "kill -SEGV $$", NULL };
        char *big[] = { (char *) "head", (char *) "-c", (char *) "100000", (char *) "/dev/zero", NULL };
        char *sleep_[] = { (char *) "sleep", (char *) "30", NULL };
        char *missing[] = { (char *) "/nonexistent/program", NULL };
        Done d = {};

        SKIP_WITHOUT_AGENT();
        run_exec(&d, echo, 0, 0);
        assert_int_equal(d.error, 0);
        assert_true(d.exec.exited);
        assert_int_equal(d.exec.exit_code, 0);
        assert_string_equal(d.exec.out, "hello\n");
        exec_done(&d);

        run_exec(&d, exit3, 0, 0);
        assert_true(d.exec.exited);
        assert_int_equal(d.exec.exit_code, 3);
        assert_string_equal(d.exec.err, "oops\n");
        exec_done(&d);

        run_exec(&d, segv, 0, 0);
        assert_false(d.exec.exited);
        assert_int_equal(d.exec.signal, SIGSEGV);
        exec_done(&d);

        run_exec(&d, big, 0, 1000);
        assert_int_equal(d.error, 0);
        assert_int_equal(d.exec.out_size, 1000);
        assert_true(d.exec.out_truncated);
        exec_done(&d);

        /* A timeout: killed through "kill -KILL PID", found in the agent's PATH; its death reported. */
        run_exec(&d, sleep_, 300 * USEC_PER_MSEC, 0);
        assert_int_equal(d.error, 0);
        assert_true(d.exec.timed_out);
        if (d.exec.kill_error)
                print_message("kill_error: %s\n", d.exec.kill_error);
        assert_true(d.exec.killed);
        assert_int_equal(d.exec.signal, SIGKILL);
        assert_true(d.exec.duration_usec < 10 * USEC_PER_SEC);
        exec_done(&d);

        run_exec(&d, missing, 0, 0);
        assert_int_equal(d.error, -EIO);
        print_message("missing program: %s\n", d.text);
        exec_done(&d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_counters),
                cmocka_unit_test(test_guest_info),
                cmocka_unit_test(test_copy_and_read),
                cmocka_unit_test(test_exec),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
