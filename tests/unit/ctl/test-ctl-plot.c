/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The drawing of memvisorctl experiment plot (src/ctl/ctl-plot.c) on known data, 2 experiments × 2 counters: the
 * box statistics; a PNG with its signature and the size in its IHDR; an SVG that python3's xml.etree parses, with
 * an <svg> root of the size asked and exactly one filled box per experiment and counter; the same bytes for the
 * same data (the jitter is seeded); the lines over the iterations; refusals. Built without cairo: -EOPNOTSUPP. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build-config.h"
#include "basic/fileio.h"
#include "basic/macro.h"
#include "ctl/ctl-plot.h"

/* Experiment A: a warm-up iteration (900) and 9 others; B: a warm-up, one iteration without the counter, an
 * outlier (400). Counter 2 in bytes, around 2 and 3 MiB. */
static const double a_time[] = { 900, 100, 120, 110, 130, 105, 125, 118, 140, 99 };
static const double b_time[] = { 800, 150, 160, 155, 170, 152, NAN, 158, 400, 161 };
static const double a_bytes[] = { 1e6, 2e6, 2.1e6, 1.9e6, 2.05e6, 2.2e6, 1.8e6, 2e6, 2.3e6, 1.95e6 };
static const double b_bytes[] = { 3e6, 3.1e6, 2.9e6, 3.3e6, 3.2e6, 3.05e6, 2.95e6, 3.15e6, 3.4e6, 3e6 };
static const bool warm[] = { true, false, false, false, false, false, false, false, false, false };
static const char *const labels[] = { "baseline", "20261204-230000-abcdef" };

static PlotSeries series_time[2], series_bytes[2];
static PlotPanel panels[2];

static PlotSpec known_spec(bool over_time, unsigned width, unsigned height) {
        series_time[0] = (PlotSeries) { a_time, warm, ELEMENTSOF(a_time) };
        series_time[1] = (PlotSeries) { b_time, warm, ELEMENTSOF(b_time) };
        series_bytes[0] = (PlotSeries) { a_bytes, warm, ELEMENTSOF(a_bytes) };
        series_bytes[1] = (PlotSeries) { b_bytes, warm, ELEMENTSOF(b_bytes) };
        panels[0] = (PlotPanel) { "time.provoke_usec", "us", series_time };
        panels[1] = (PlotPanel) { "host.migrate.moved_bytes", "bytes", series_bytes };
        return (PlotSpec) { labels, 2, panels, 2, over_time, width, height };
}

static void test_format(void **state) {
        (void) state;
        assert_int_equal(plot_format_from_path("a.svg"), PLOT_FORMAT_SVG);
        assert_int_equal(plot_format_from_path("dir/B.PNG"), PLOT_FORMAT_PNG);
        assert_int_equal(plot_format_from_path("a.pdf"), -EINVAL);
        assert_int_equal(plot_format_from_path("svg"), -EINVAL);
        assert_int_equal(plot_format_from_path("dir.svg/x"), -EINVAL);
        assert_int_equal(plot_format_from_path(NULL), -EINVAL);
}

static void test_box(void **state) {
        const double v[] = { 1000, 8, 7, 6, 5, 4, 3, 2, 1, 100, NAN };
        const bool w[] = { true, false, false, false, false, false, false, false, false, false, false };
        const double none[] = { NAN, 5 };
        const bool all_warm[] = { false, true };
        PlotBox b;

        (void) state;
        /* 1…8 and 100 (the warm-up 1000 and the NAN left out): numpy's quartiles 3, 5, 7; IQR 4, so the upper
         * whisker stops at 8 (100 > 7 + 6) and the lower one at 1 (≥ 3 − 6). */
        assert_int_equal(plot_box(v, w, ELEMENTSOF(v), &b), 0);
        assert_int_equal(b.n, 9);
        assert_true(b.q1 == 3 && b.median == 5 && b.q3 == 7);
        assert_true(b.whisker_low == 1 && b.whisker_high == 8);
        /* Without the warm-up flags 1000 counts: 10 values, quartiles between order statistics. */
        assert_int_equal(plot_box(v, NULL, ELEMENTSOF(v), &b), 0);
        assert_int_equal(b.n, 10);
        assert_true(fabs(b.q1 - 3.25) < 1e-12 && fabs(b.median - 5.5) < 1e-12 && fabs(b.q3 - 7.75) < 1e-12);
        assert_true(b.whisker_high == 8);
        assert_int_equal(plot_box(none, all_warm, 2, &b), -ENODATA);
        assert_int_equal(plot_box(none, NULL, 0, &b), -ENODATA);
}

#if HAVE_CAIRO

static char *scratch_path(const char *name) {
        char *p;

        assert_true(asprintf(&p, "%s/test-ctl-plot-%d-%s", SCRATCH_DIR, (int) getpid(), name) >= 0);
        return p;
}

static void read_all(const char *path, char **ret, size_t *ret_size) {
        assert_int_equal(read_full_file(path, 16U * 1024U * 1024U, ret, ret_size), 0);
}

static size_t count(const char *haystack, const char *needle) {
        size_t n = 0;

        for (const char *p = strstr(haystack, needle); p; p = strstr(p + 1, needle))
                n++;
        return n;
}

/* cairo numbers its surfaces per process: "surface74" becomes "surface" to compare two renderings. */
static size_t normalize(char *s) {
        char *w = s;

        for (const char *r = s; *r;) {
                bool id = startswith(r, "surface");

                if (id) {
                        memcpy(w, "surface", strlen("surface"));
                        w += strlen("surface"), r += strlen("surface");
                        while (*r >= '0' && *r <= '9')
                                r++;
                } else
                        *w++ = *r++;
        }
        *w = 0;
        return (size_t) (w - s);
}

static uint32_t be32(const unsigned char *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static void test_png(void **state) {
        _cleanup_free_ char *path = scratch_path("boxes.png"), *data = NULL;
        PlotSpec spec = known_spec(false, 640, 480);
        const unsigned char *p;
        size_t boxes = 0, size;

        (void) state;
        assert_int_equal(plot_render(&spec, path, PLOT_FORMAT_PNG, &boxes), 0);
        assert_int_equal(boxes, 4);     /* 2 experiments × 2 counters */
        read_all(path, &data, &size);
        p = (const unsigned char *) data;
        assert_true(size > 33);
        assert_memory_equal(p, "\x89PNG\r\n\x1a\n", 8);
        assert_memory_equal(p + 12, "IHDR", 4);
        assert_int_equal(be32(p + 16), 640);
        assert_int_equal(be32(p + 20), 480);
        assert_int_equal(unlink(path), 0);
}

/* python3's xml.etree parses it, and its root is <svg> of width×height px. */
static void check_svg_parses(const char *path, unsigned width, unsigned height) {
        char script[512];
        int status;
        pid_t pid;

        snprintf(script, sizeof(script),
                 "import sys, xml.etree.ElementTree as E\n"
                 "r = E.parse(sys.argv[1]).getroot()\n"
                 "assert r.tag == '{http://www.w3.org/2000/svg}svg', r.tag\n"
                 "assert r.get('width') == '%upx' and r.get('height') == '%upx', r.attrib\n", width, height);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                execl(PYTHON3, PYTHON3, "-c", script, path, (char *) NULL);
                _exit(127);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_svg(void **state) {
        _cleanup_free_ char *path = scratch_path("boxes.svg"), *again = scratch_path("again.svg"), *data = NULL,
                            *data2 = NULL;
        PlotSpec spec = known_spec(false, 0, 0);
        char fill[64];
        size_t boxes = 0, size, size2;
        unsigned w, h;

        (void) state;
        assert_int_equal(plot_render(&spec, path, PLOT_FORMAT_SVG, &boxes), 0);
        assert_int_equal(boxes, 4);
        plot_default_size(2, &w, &h);
        check_svg_parses(path, w, h);
        read_all(path, &data, &size);
        assert_non_null(strstr(data, "<svg"));
        /* The boxes are the only shapes filled at PLOT_BOX_OPACITY: one per experiment and counter. */
        snprintf(fill, sizeof(fill), "fill-opacity:%g;", PLOT_BOX_OPACITY);
        assert_int_equal(count(data, fill), 4);

        /* Seeded jitter: the same data, the same drawing (but for cairo's surface numbers). */
        assert_int_equal(plot_render(&spec, again, PLOT_FORMAT_SVG, NULL), 0);
        read_all(again, &data2, &size2);
        size = normalize(data);
        size2 = normalize(data2);
        assert_int_equal(size, size2);
        assert_memory_equal(data, data2, size);

        /* An experiment without a value of a counter gets no box there. */
        series_bytes[1] = (PlotSeries) { b_bytes, NULL, 0 };
        assert_int_equal(plot_render(&spec, again, PLOT_FORMAT_SVG, &boxes), 0);
        assert_int_equal(boxes, 3);
        free(data2);
        read_all(again, &data2, &size2);
        assert_int_equal(count(data2, fill), 3);

        assert_int_equal(unlink(path), 0);
        assert_int_equal(unlink(again), 0);
}

static void test_over_time(void **state) {
        _cleanup_free_ char *svg = scratch_path("lines.svg"), *png = scratch_path("lines.png"), *data = NULL;
        PlotSpec spec = known_spec(true, 900, 300);
        size_t boxes = 99, size;
        char fill[64];

        (void) state;
        assert_int_equal(plot_render(&spec, svg, PLOT_FORMAT_SVG, &boxes), 0);
        assert_int_equal(boxes, 0);
        check_svg_parses(svg, 900, 300);
        read_all(svg, &data, &size);
        snprintf(fill, sizeof(fill), "fill-opacity:%g;", PLOT_BOX_OPACITY);
        assert_int_equal(count(data, fill), 0);
        assert_int_equal(plot_render(&spec, png, PLOT_FORMAT_PNG, NULL), 0);
        assert_int_equal(unlink(svg), 0);
        assert_int_equal(unlink(png), 0);
}

static void test_refusals(void **state) {
        _cleanup_free_ char *path = scratch_path("refused.svg");
        PlotSpec spec = known_spec(false, 0, 0);
        const char *bad_label[] = { "ok", "bad\xff\x01label" };

        (void) state;
        spec.n_experiments = 0;
        assert_int_equal(plot_render(&spec, path, PLOT_FORMAT_SVG, NULL), -EINVAL);
        spec = known_spec(false, 0, 0);
        spec.n_panels = PLOT_PANELS_MAX + 1;
        assert_int_equal(plot_render(&spec, path, PLOT_FORMAT_SVG, NULL), -EINVAL);
        spec = known_spec(false, 100, 100);
        assert_int_equal(plot_render(&spec, path, PLOT_FORMAT_SVG, NULL), -EINVAL);
        assert_int_equal(access(path, F_OK), -1);
        spec = known_spec(false, 0, 0);
        assert_int_equal(plot_render(&spec, "/nonexistent-dir/x.png", PLOT_FORMAT_PNG, NULL), -EIO);
        assert_int_equal(plot_render(&spec, "/nonexistent-dir/x.svg", PLOT_FORMAT_SVG, NULL), -EIO);

        /* A label that is not text (from the daemon: untrusted) is drawn with '?' and does not stop cairo. */
        spec.labels = bad_label;
        assert_int_equal(plot_render(&spec, path, PLOT_FORMAT_SVG, NULL), 0);
        assert_int_equal(unlink(path), 0);
}

#else

static void test_unsupported(void **state) {
        PlotSpec spec = known_spec(false, 0, 0);

        (void) state;
        assert_false(plot_supported());
        assert_int_equal(plot_render(&spec, SCRATCH_DIR "/x.svg", PLOT_FORMAT_SVG, NULL), -EOPNOTSUPP);
}

#endif

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format),
                cmocka_unit_test(test_box),
#if HAVE_CAIRO
                cmocka_unit_test(test_png),
                cmocka_unit_test(test_svg),
                cmocka_unit_test(test_over_time),
                cmocka_unit_test(test_refusals),
#else
                cmocka_unit_test(test_unsupported),
#endif
        };

        int r = cmocka_run_group_tests(tests, NULL, NULL);

        plot_finish();
        return r;
}
