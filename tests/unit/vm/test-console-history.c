/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The console history of a guest (src/vm/console-history.c): boot files numbered on from the newest, the oldest
 * removed first down to KeepBoots, the header line, the size bound with its notice, the panic marker also when
 * split over writes or past the bound, journalctl-like --boot resolution, tails by lines and bytes, reads from an
 * offset, and the panic lines. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/strv.h"
#include "vm/console-history.h"

typedef struct Fixture {
        char *dir;
        int fd;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        assert_true(asprintf(&f->dir, "%s/test-console-history.XXXXXX", getenv("TMPDIR") ?: "/tmp") >= 0);
        assert_non_null(mkdtemp(f->dir));
        f->fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->fd >= 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        assert_int_equal(console_history_clear(f->fd), 0);
        safe_close(f->fd);
        assert_int_equal(rmdir(f->dir), 0);     /* nothing but boot files was made */
        free(f->dir);
        free(f);
        return 0;
}

static void begin(Fixture *f, ConsoleWriter *w, unsigned keep, uint64_t max, const char *previous) {
        ConsoleBootHeader h = { .guest = "g1", .realtime_usec = 1764899400ULL * 1000000, .pid = 4242,
                                .previous_end = previous };

        assert_int_equal(console_writer_begin(w, f->fd, keep, max, &h), 0);
        assert_int_equal(w->boot, h.boot);
}

static char *read_boot(Fixture *f, uint64_t boot) {
        char name[64];
        char *text = NULL;

        snprintf(name, sizeof(name), "boot-%llu.log", (unsigned long long) boot);
        assert_int_equal(read_full_file_at(f->fd, name, 1 << 20, &text, NULL), 0);
        return text;
}

static void assert_boots(Fixture *f, const uint64_t *want, size_t n_want) {
        _cleanup_free_ uint64_t *boots = NULL;
        size_t n = 0;

        assert_int_equal(console_boots_list(f->fd, &boots, &n), 0);
        assert_int_equal(n, n_want);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(boots[i], want[i]);
}

static void test_rotation_keeps_the_newest(void **state) {
        Fixture *f = *state;
        ConsoleWriter w = CONSOLE_WRITER_INIT;
        _cleanup_free_ char *text = NULL;

        for (unsigned i = 1; i <= 5; i++) {
                char line[32];

                begin(f, &w, 3, 4096, i == 1 ? NULL : "killed by signal KILL");
                assert_int_equal(w.boot, i);
                snprintf(line, sizeof(line), "boot %u says hi\n", i);
                assert_int_equal(console_writer_write(&w, line, strlen(line)), (ssize_t) strlen(line));
        }
        console_writer_close(&w);
        assert_boots(f, (const uint64_t[]) { 3, 4, 5 }, 3);

        text = read_boot(f, 5);
        assert_string_equal(text, "-- memvisor: guest g1, boot 5, started 2025-12-05 01:50:00 UTC, QEMU pid 4242; "
                                  "previous boot ended: killed by signal KILL --\nboot 5 says hi\n");
        free(text);
        text = read_boot(f, 3);
        assert_non_null(strstr(text, "boot 3 says hi\n"));

        /* Keeping fewer now: the next boot removes the oldest down to the new bound. */
        begin(f, &w, 1, 4096, NULL);
        console_writer_close(&w);
        assert_boots(f, (const uint64_t[]) { 6 }, 1);
        free(text);
        text = read_boot(f, 6);
        assert_non_null(strstr(text, "previous boot ended: not known --\n"));

        /* Files that are not boot files are no boots, and are left alone. */
        assert_int_equal(mkdirat(f->fd, "boot-7.log.d", 0700), 0);
        assert_boots(f, (const uint64_t[]) { 6 }, 1);
        assert_int_equal(unlinkat(f->fd, "boot-7.log.d", AT_REMOVEDIR), 0);
}

static void test_size_bound(void **state) {
        Fixture *f = *state;
        ConsoleWriter w = CONSOLE_WRITER_INIT;
        _cleanup_free_ char *text = NULL, *big = malloc(10000);
        struct stat st;
        uint64_t header;

        begin(f, &w, 10, 4096, NULL);
        header = w.size;
        memset(big, 'x', 10000);
        assert_int_equal(console_writer_write(&w, big, 1000), 1000);
        assert_false(w.capped);
        assert_int_equal(console_writer_write(&w, big, 10000), (ssize_t) (4096 - header - 1000));
        assert_true(w.capped);
        assert_int_equal(console_writer_write(&w, big, 10000), 0);
        /* The panic marker is still seen in dropped output. */
        assert_int_equal(console_writer_write(&w, "Kernel panic - not syncing: x\n", 30), 0);
        assert_true(w.panic_seen);
        console_writer_close(&w);

        assert_int_equal(fstatat(f->fd, "boot-1.log", &st, 0), 0);
        assert_true((uint64_t) st.st_size > 4096 && st.st_size < 4096 + 200);
        text = read_boot(f, 1);
        assert_non_null(strstr(text, "\n-- memvisor: console output of boot 1 capped at 4096 bytes ([Console] "
                                     "MaxBootSize=); the rest of this boot is dropped --\n"));

        /* Resuming a capped boot (a daemon restart) stays capped. */
        assert_int_equal(console_writer_resume(&w, f->fd, 4096), 0);
        assert_true(w.capped);
        assert_int_equal(w.boot, 1);
        assert_int_equal(console_writer_write(&w, "more", 4), 0);
        console_writer_close(&w);
}

static void test_panic_marker_split(void **state) {
        Fixture *f = *state;
        const char *msg = "[   12.3] Kernel panic - not syncing: sysrq triggered crash\n";

        /* Cut at every place, in two and in one-byte writes. */
        for (size_t cut = 0; cut <= strlen(msg); cut++) {
                ConsoleWriter w = CONSOLE_WRITER_INIT;

                begin(f, &w, 2, 1 << 20, NULL);
                assert_int_equal(console_writer_write(&w, msg, cut), (ssize_t) cut);
                assert_int_equal(console_writer_write(&w, msg + cut, strlen(msg) - cut), (ssize_t) (strlen(msg) - cut));
                assert_true(w.panic_seen);
                console_writer_close(&w);
        }
        {
                ConsoleWriter w = CONSOLE_WRITER_INIT;

                begin(f, &w, 2, 1 << 20, NULL);
                for (const char *p = msg; *p; p++)
                        assert_int_equal(console_writer_write(&w, p, 1), 1);
                assert_true(w.panic_seen);
                console_writer_close(&w);

                begin(f, &w, 2, 1 << 20, NULL);
                assert_int_equal(console_writer_write(&w, "Kernel panic - not syncin", 25), 25);
                assert_int_equal(console_writer_write(&w, "x g\nKernel pan", 14), 14);
                assert_false(w.panic_seen);
                console_writer_close(&w);
        }
}

static void test_resolve(void **state) {
        const uint64_t boots[] = { 4, 5, 7 };
        uint64_t b = 0;

        assert_int_equal(console_boot_resolve(boots, 3, 0, &b), 0);
        assert_int_equal(b, 7);
        assert_int_equal(console_boot_resolve(boots, 3, -1, &b), 0);
        assert_int_equal(b, 5);
        assert_int_equal(console_boot_resolve(boots, 3, -2, &b), 0);
        assert_int_equal(b, 4);
        assert_int_equal(console_boot_resolve(boots, 3, -3, &b), -ENOENT);
        assert_int_equal(console_boot_resolve(boots, 3, INT64_MIN, &b), -ENOENT);
        assert_int_equal(console_boot_resolve(boots, 3, 5, &b), 0);
        assert_int_equal(b, 5);
        assert_int_equal(console_boot_resolve(boots, 3, 6, &b), -ENOENT);
        assert_int_equal(console_boot_resolve(boots, 3, 1, &b), -ENOENT);
        assert_int_equal(console_boot_resolve(NULL, 0, 0, &b), -ENODATA);
}

static void test_read(void **state) {
        Fixture *f = *state;
        ConsoleWriter w = CONSOLE_WRITER_INIT;
        ConsoleChunk c = {};
        uint64_t header;

        begin(f, &w, 3, 1 << 20, NULL);
        header = w.size;
        assert_int_equal(console_writer_write(&w, "one\ntwo\nthree\nfour", 18), 18);
        console_writer_close(&w);

        /* All of it. */
        assert_int_equal(console_boot_read(f->fd, 1, UINT64_MAX, 0, 1 << 20, &c), 0);
        assert_int_equal(c.size, header + 18);
        assert_int_equal(c.start, 0);
        assert_false(c.truncated);
        assert_memory_equal(c.data + header, "one\ntwo\nthree\nfour", 18);
        console_chunk_done(&c);

        /* The last 2 lines (the unfinished last one counts). */
        assert_int_equal(console_boot_read(f->fd, 1, UINT64_MAX, 2, 1 << 20, &c), 0);
        assert_int_equal(c.size, 10);
        assert_memory_equal(c.data, "three\nfour", 10);
        assert_int_equal(c.end, header + 18);
        assert_true(c.truncated);
        console_chunk_done(&c);

        /* Within 7 bytes: "ee\nfour" cut at a line start → "four". */
        assert_int_equal(console_boot_read(f->fd, 1, UINT64_MAX, 0, 7, &c), 0);
        assert_int_equal(c.size, 4);
        assert_memory_equal(c.data, "four", 4);
        assert_true(c.truncated);
        console_chunk_done(&c);

        /* From an offset, at most max bytes; the end is no error, past it is. */
        assert_int_equal(console_boot_read(f->fd, 1, header + 4, 0, 5, &c), 0);
        assert_int_equal(c.size, 5);
        assert_memory_equal(c.data, "two\nt", 5);
        assert_int_equal(c.start, header + 4);
        assert_int_equal(c.end, header + 9);
        console_chunk_done(&c);
        assert_int_equal(console_boot_read(f->fd, 1, header + 18, 0, 5, &c), 0);
        assert_int_equal(c.size, 0);
        console_chunk_done(&c);
        assert_int_equal(console_boot_read(f->fd, 1, header + 19, 0, 5, &c), -ERANGE);
        assert_int_equal(console_boot_read(f->fd, 2, UINT64_MAX, 0, 5, &c), -ENOENT);
}

static void test_panic_lines(void **state) {
        const char text[] = "boot\n[ 1.0] sysrq: Trigger a crash\n[ 1.1] Kernel panic - not syncing: sysrq\n"
                            "[ 1.2] CPU: 0 PID: 1\x1b[31m\n[ 1.3] Call Trace:\n";
        char **lines = NULL;

        assert_int_equal(console_panic_lines(text, sizeof(text) - 1, 20, &lines), 0);
        assert_int_equal(strv_length(lines), 3);
        assert_string_equal(lines[0], "[ 1.1] Kernel panic - not syncing: sysrq");
        assert_string_equal(lines[1], "[ 1.2] CPU: 0 PID: 1\\x1b[31m");
        assert_string_equal(lines[2], "[ 1.3] Call Trace:");
        lines = strv_free(lines);

        assert_int_equal(console_panic_lines(text, sizeof(text) - 1, 2, &lines), 0);
        assert_int_equal(strv_length(lines), 2);
        lines = strv_free(lines);

        /* No marker: the last lines. */
        assert_int_equal(console_panic_lines("a\nb\nc\nd", 7, 2, &lines), 0);
        assert_int_equal(strv_length(lines), 2);
        assert_string_equal(lines[0], "c");
        assert_string_equal(lines[1], "d");
        lines = strv_free(lines);
        assert_int_equal(console_panic_lines("a\r\nb\r\n", 6, 5, &lines), 0);
        assert_int_equal(strv_length(lines), 2);
        assert_string_equal(lines[0], "a");
        lines = strv_free(lines);
        assert_int_equal(console_panic_lines("", 0, 5, &lines), 0);
        assert_int_equal(strv_length(lines), 0);
        lines = strv_free(lines);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_rotation_keeps_the_newest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_size_bound, setup, teardown),
                cmocka_unit_test_setup_teardown(test_panic_marker_split, setup, teardown),
                cmocka_unit_test(test_resolve),
                cmocka_unit_test_setup_teardown(test_read, setup, teardown),
                cmocka_unit_test(test_panic_lines),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
