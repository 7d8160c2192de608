/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The drawing of memvisorctl experiment plot: per counter a panel, with a box plot per experiment and its
 * iterations as jittered points, or (over time) a line per experiment over the iteration numbers with the warm-up
 * iterations hollow. cairo draws it on its SVG surface or on an image surface written as PNG. Plain arrays in (see
 * ctl-plot.h), so that the unit test needs no daemon. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "build-config.h"
#include "basic/macro.h"
#include "basic/utf8.h"
#include "ctl/ctl-plot.h"
#include "ctl/ctl-units.h"

#if HAVE_CAIRO
#include <cairo.h>
#include <cairo-svg.h>
#include <fontconfig/fontconfig.h>
#endif

bool plot_supported(void) {
        return HAVE_CAIRO;
}

int plot_format_from_path(const char *path) {
        const char *dot = path ? strrchr(path, '.') : NULL;

        if (!dot || strchr(dot, '/'))
                return -EINVAL;
        if (strcasecmp(dot, ".svg") == 0)
                return PLOT_FORMAT_SVG;
        if (strcasecmp(dot, ".png") == 0)
                return PLOT_FORMAT_PNG;
        return -EINVAL;
}

void plot_default_size(size_t n_panels, unsigned *ret_width, unsigned *ret_height) {
        size_t cols = n_panels <= 1 ? 1 : n_panels <= 4 ? 2 : 3, rows = (MAX(n_panels, 1U) + cols - 1) / cols;

        *ret_width = (unsigned) (cols * 420);
        *ret_height = (unsigned) (rows * 320);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

/* The p-quantile of sorted v[0…n-1], n > 0: linear between the order statistics (numpy's "linear"). */
static double quantile(const double *v, size_t n, double p) {
        double h = p * (double) (n - 1);
        size_t i = (size_t) floor(h);

        if (i + 1 >= n)
                return v[n - 1];
        return v[i] + (h - (double) i) * (v[i + 1] - v[i]);
}

int plot_box(const double *values, const bool *warm_up, size_t n, PlotBox *ret) {
        _cleanup_free_ double *v = NULL;
        size_t k = 0;
        double iqr;

        v = malloc(MAX(n, 1U) * sizeof(double));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (isfinite(values[i]) && !(warm_up && warm_up[i]))
                        v[k++] = values[i];
        if (k == 0)
                return -ENODATA;
        qsort(v, k, sizeof(double), cmp_double);
        *ret = (PlotBox) {
                .q1 = quantile(v, k, 0.25),
                .median = quantile(v, k, 0.5),
                .q3 = quantile(v, k, 0.75),
                .n = k,
        };
        iqr = ret->q3 - ret->q1;
        ret->whisker_low = ret->q1;
        ret->whisker_high = ret->q3;
        for (size_t i = 0; i < k; i++)
                if (v[i] >= ret->q1 - 1.5 * iqr) {
                        ret->whisker_low = MIN(v[i], ret->q1);
                        break;
                }
        for (size_t i = k; i > 0; i--)
                if (v[i - 1] <= ret->q3 + 1.5 * iqr) {
                        ret->whisker_high = MAX(v[i - 1], ret->q3);
                        break;
                }
        return 0;
}

#if HAVE_CAIRO

/* Okabe–Ito, readable by the colour-blind; black for the 8th. */
static const double palette[PLOT_EXPERIMENTS_MAX][3] = {
        { 0.000, 0.447, 0.698 }, { 0.835, 0.369, 0.000 }, { 0.000, 0.620, 0.451 }, { 0.800, 0.475, 0.655 },
        { 0.902, 0.624, 0.000 }, { 0.337, 0.706, 0.914 }, { 0.400, 0.400, 0.400 }, { 0.000, 0.000, 0.000 },
};

typedef struct Rect {
        double x, y, w, h;
} Rect;

typedef struct Axis {
        double lo, hi;          /* the values at the ends */
        double step;            /* between ticks, in the values' unit */
        Scale scale;
} Axis;

/* splitmix64: the jitter of the points, seeded per panel and experiment. */
static uint64_t next_random(uint64_t *state) {
        uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static double jitter(uint64_t *state) {
        return (double) (next_random(state) >> 11) / 9007199254740992.0 * 2.0 - 1.0;      /* [-1, 1) */
}

static double nice_step(double range, unsigned ticks) {
        double raw = range / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;

        return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static Axis make_axis(double lo, double hi, const char *unit, unsigned ticks) {
        Axis a;
        double pad;

        if (hi <= lo) {
                pad = lo == 0 ? 1 : fabs(lo) * 0.1;
                lo -= pad, hi += pad;
        } else {
                pad = (hi - lo) * 0.05;
                lo -= pad, hi += pad;
        }
        a.scale = pick_scale(unit, MAX(fabs(lo), fabs(hi)));
        a.step = nice_step((hi - lo) / a.scale.factor, ticks) * a.scale.factor;
        a.lo = lo, a.hi = hi;
        return a;
}

static double axis_pos(const Axis *a, double start, double length, double v) {
        return start + (v - a->lo) / (a->hi - a->lo) * length;
}

/* Text that cairo accepts (valid UTF-8, no control characters): as it is, or with '?' for each other byte. */
static void sanitize(char *buf, size_t l, const char *s) {
        size_t n = strlen(s);

        if (utf8_is_valid_text(s, n) && n < l) {
                memcpy(buf, s, n + 1);
                return;
        }
        for (n = 0; s[n] && n + 1 < l; n++)
                buf[n] = (unsigned char) s[n] >= 0x20 && (unsigned char) s[n] < 0x7f ? s[n] : '?';
        buf[n] = 0;
}

/* Draws s with its anchor (0 left, 0.5 centre, 1 right) at x and its baseline at y, cut with "…" to max_w. */
static void text(cairo_t *cr, const char *s, double x, double y, double anchor, double max_w) {
        char buf[512];
        cairo_text_extents_t e;
        size_t n;

        sanitize(buf, sizeof(buf) - 4, s);
        n = strlen(buf);
        cairo_text_extents(cr, buf, &e);
        while (e.x_advance > max_w && n > 0) {
                do                      /* back to the start of a character */
                        n--;
                while (n > 0 && ((unsigned char) buf[n] & 0xc0) == 0x80);
                memcpy(buf + n, "…", sizeof("…"));
                cairo_text_extents(cr, buf, &e);
        }
        cairo_move_to(cr, x - anchor * e.x_advance, y);
        cairo_show_text(cr, buf);
}

static void tick_label(char *buf, size_t l, const Axis *a, double v) {
        double step = a->step / a->scale.factor, x = v / a->scale.factor;
        int decimals = step >= 1 ? 0 : (int) MIN(9.0, ceil(-log10(step) - 1e-9));

        if (fabs(x) < step * 1e-6)
                x = 0;
        snprintf(buf, l, "%.*f", decimals, x);
}

/* The y axis: grid lines and labels at the ticks, the unit turned along the axis. */
static void draw_y_axis(cairo_t *cr, const Rect *area, const Axis *a) {
        double first = ceil(a->lo / a->step) * a->step;
        char label[64];

        cairo_set_font_size(cr, 10);
        for (unsigned i = 0; i < 50; i++) {
                double v = first + i * a->step, y;

                if (v > a->hi)
                        break;
                y = axis_pos(a, area->y + area->h, -area->h, v);
                cairo_set_source_rgb(cr, 0.88, 0.88, 0.88);
                cairo_set_line_width(cr, 1);
                cairo_move_to(cr, area->x, y);
                cairo_line_to(cr, area->x + area->w, y);
                cairo_stroke(cr);
                cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
                tick_label(label, sizeof(label), a, v);
                text(cr, label, area->x - 5, y + 3.5, 1, 40);
        }
        cairo_save(cr);
        cairo_translate(cr, area->x - 48, area->y + area->h / 2);
        cairo_rotate(cr, -M_PI / 2);
        cairo_set_font_size(cr, 11);
        text(cr, a->scale.unit, 0, 0, 0.5, area->h);
        cairo_restore(cr);
}

static void point(cairo_t *cr, double x, double y, const double *rgb, bool hollow) {
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, 2.6, 0, 2 * M_PI);
        if (hollow) {
                cairo_set_source_rgb(cr, 1, 1, 1);
                cairo_fill_preserve(cr);
                cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
                cairo_set_line_width(cr, 1.2);
                cairo_stroke(cr);
        } else {
                cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.75);
                cairo_fill(cr);
        }
}

/* The boxes of one panel, warm-up iterations left out. Returns the boxes drawn, or -ENOMEM. */
static int draw_boxes(cairo_t *cr, const PlotSpec *spec, size_t p, const Rect *area, const Axis *a) {
        const PlotPanel *panel = &spec->panels[p];
        double slot = area->w / (double) spec->n_experiments, bw = MIN(slot * 0.55, 90);
        int boxes = 0, r;

        for (size_t e = 0; e < spec->n_experiments; e++) {
                const PlotSeries *s = &panel->series[e];
                const double *rgb = palette[e];
                double cx = area->x + slot * ((double) e + 0.5), y1, y3;
                uint64_t seed = PLOT_JITTER_SEED ^ ((uint64_t) p << 32) ^ ((uint64_t) e << 16);
                PlotBox b;

                cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
                cairo_set_font_size(cr, 11);
                text(cr, spec->labels[e], cx, area->y + area->h + 16, 0.5, slot - 4);

                r = plot_box(s->values, s->warm_up, s->n, &b);
                if (r == -ENODATA) {
                        cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
                        cairo_set_font_size(cr, 10);
                        text(cr, "no values", cx, area->y + area->h / 2, 0.5, slot - 4);
                        continue;
                }
                if (r < 0)
                        return r;

                y1 = axis_pos(a, area->y + area->h, -area->h, b.q1);
                y3 = axis_pos(a, area->y + area->h, -area->h, b.q3);
                cairo_rectangle(cr, cx - bw / 2, y3, bw, MAX(y1 - y3, 0.5));
                cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], PLOT_BOX_OPACITY);
                cairo_fill_preserve(cr);
                cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
                cairo_set_line_width(cr, 1.2);
                cairo_stroke(cr);
                boxes++;

                /* Whiskers and their caps. */
                for (int side = 0; side < 2; side++) {
                        double from = side ? y3 : y1,
                               to = axis_pos(a, area->y + area->h, -area->h, side ? b.whisker_high : b.whisker_low);

                        cairo_move_to(cr, cx, from);
                        cairo_line_to(cr, cx, to);
                        cairo_move_to(cr, cx - bw / 4, to);
                        cairo_line_to(cr, cx + bw / 4, to);
                }
                cairo_stroke(cr);

                /* The median. */
                cairo_set_line_width(cr, 2.5);
                cairo_move_to(cr, cx - bw / 2, axis_pos(a, area->y + area->h, -area->h, b.median));
                cairo_line_to(cr, cx + bw / 2, axis_pos(a, area->y + area->h, -area->h, b.median));
                cairo_stroke(cr);

                for (size_t i = 0; i < s->n; i++)
                        if (isfinite(s->values[i]) && !(s->warm_up && s->warm_up[i]))
                                point(cr, cx + jitter(&seed) * bw * 0.4,
                                      axis_pos(a, area->y + area->h, -area->h, s->values[i]), rgb, false);
        }
        return boxes;
}

/* The lines of one panel over the iteration numbers, warm-up iterations as hollow points, and a legend. */
static void draw_lines(cairo_t *cr, const PlotSpec *spec, size_t p, const Rect *area, const Axis *a) {
        const PlotPanel *panel = &spec->panels[p];
        size_t last = 1;
        Axis x;
        char label[32];
        bool any_warm_up = false;

        for (size_t e = 0; e < spec->n_experiments; e++)
                last = MAX(last, panel->series[e].n);
        x = (Axis) { .lo = 0.5, .hi = (double) last + 0.5, .scale = { "iteration", 1 } };
        x.step = MAX(1.0, nice_step((double) last, 6));

        cairo_set_font_size(cr, 10);
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        for (double v = x.step > 1 ? x.step : 1; v <= (double) last; v += x.step) {
                snprintf(label, sizeof(label), "%.0f", v);
                text(cr, label, axis_pos(&x, area->x, area->w, v), area->y + area->h + 13, 0.5, 40);
        }
        cairo_set_font_size(cr, 11);
        text(cr, "iteration", area->x + area->w / 2, area->y + area->h + 27, 0.5, area->w);

        for (size_t e = 0; e < spec->n_experiments; e++) {
                const PlotSeries *s = &panel->series[e];
                const double *rgb = palette[e];
                bool pen = false;

                cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
                cairo_set_line_width(cr, 1.5);
                for (size_t i = 0; i < s->n; i++) {
                        double px = axis_pos(&x, area->x, area->w, (double) (i + 1));

                        if (!isfinite(s->values[i])) {
                                pen = false;    /* a gap where the counter was not taken */
                                continue;
                        }
                        if (pen)
                                cairo_line_to(cr, px, axis_pos(a, area->y + area->h, -area->h, s->values[i]));
                        else
                                cairo_move_to(cr, px, axis_pos(a, area->y + area->h, -area->h, s->values[i]));
                        pen = true;
                }
                cairo_stroke(cr);
                for (size_t i = 0; i < s->n; i++)
                        if (isfinite(s->values[i])) {
                                bool w = s->warm_up && s->warm_up[i];

                                any_warm_up = any_warm_up || w;
                                point(cr, axis_pos(&x, area->x, area->w, (double) (i + 1)),
                                      axis_pos(a, area->y + area->h, -area->h, s->values[i]), rgb, w);
                        }
        }

        /* The legend, top right inside the area, on white. */
        cairo_rectangle(cr, area->x + area->w - 136, area->y + 2, 134,
                        13 * (double) (spec->n_experiments + any_warm_up) + 6);
        cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
        cairo_fill(cr);
        cairo_set_font_size(cr, 10);
        for (size_t e = 0; e <= spec->n_experiments; e++) {
                double ly = area->y + 12 + 13 * (double) e, lx = area->x + area->w - 130;

                if (e == spec->n_experiments) {
                        if (!any_warm_up)
                                break;
                        point(cr, lx + 9, ly - 3.5, palette[PLOT_EXPERIMENTS_MAX - 1], true);
                        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
                        text(cr, "warm-up", lx + 22, ly, 0, 105);
                        break;
                }
                cairo_set_source_rgb(cr, palette[e][0], palette[e][1], palette[e][2]);
                cairo_set_line_width(cr, 2);
                cairo_move_to(cr, lx, ly - 3.5);
                cairo_line_to(cr, lx + 18, ly - 3.5);
                cairo_stroke(cr);
                cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
                text(cr, spec->labels[e], lx + 22, ly, 0, 105);
        }
}

/* One panel in cell: title, axes, boxes or lines. Returns the boxes drawn, or -ENOMEM. */
static int draw_panel(cairo_t *cr, const PlotSpec *spec, size_t p, const Rect *cell) {
        const PlotPanel *panel = &spec->panels[p];
        Rect area = { cell->x + 66, cell->y + 30, cell->w - 66 - 14, cell->h - 30 - 40 };
        double lo = INFINITY, hi = -INFINITY;
        Axis a;
        int r = 0;

        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
        cairo_set_font_size(cr, 12);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text(cr, panel->counter, cell->x + cell->w / 2, cell->y + 18, 0.5, cell->w - 8);
        cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
        if (area.w < 20 || area.h < 20)
                return 0;

        for (size_t e = 0; e < spec->n_experiments; e++) {
                const PlotSeries *s = &panel->series[e];

                for (size_t i = 0; i < s->n; i++)
                        if (isfinite(s->values[i]) && (spec->over_time || !(s->warm_up && s->warm_up[i]))) {
                                lo = MIN(lo, s->values[i]);
                                hi = MAX(hi, s->values[i]);
                        }
        }
        if (lo > hi)
                lo = hi = 0;
        a = make_axis(lo, hi, panel->unit, MAX(2U, (unsigned) (area.h / 45)));
        draw_y_axis(cr, &area, &a);

        if (spec->over_time)
                draw_lines(cr, spec, p, &area, &a);
        else
                r = draw_boxes(cr, spec, p, &area, &a);

        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        cairo_set_line_width(cr, 1);
        cairo_rectangle(cr, area.x, area.y, area.w, area.h);
        cairo_stroke(cr);
        return r;
}

DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(cairo_surface_t *, cairo_surface_destroy);
DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(cairo_t *, cairo_destroy);

static int spec_valid(const PlotSpec *spec) {
        if (!spec || spec->n_experiments == 0 || spec->n_experiments > PLOT_EXPERIMENTS_MAX || spec->n_panels == 0 ||
            spec->n_panels > PLOT_PANELS_MAX || !spec->labels || !spec->panels)
                return -EINVAL;
        if ((spec->width || spec->height) &&
            (spec->width < PLOT_SIZE_MIN || spec->width > PLOT_SIZE_MAX || spec->height < PLOT_SIZE_MIN ||
             spec->height > PLOT_SIZE_MAX))
                return -EINVAL;
        for (size_t p = 0; p < spec->n_panels; p++) {
                if (!spec->panels[p].counter || !spec->panels[p].series)
                        return -EINVAL;
                for (size_t e = 0; e < spec->n_experiments; e++)
                        if (spec->panels[p].series[e].n > 0 && !spec->panels[p].series[e].values)
                                return -EINVAL;
        }
        for (size_t e = 0; e < spec->n_experiments; e++)
                if (!spec->labels[e])
                        return -EINVAL;
        return 0;
}

int plot_render(const PlotSpec *spec, const char *path, PlotFormat format, size_t *ret_boxes) {
        _cleanup_(cairo_surface_destroyp) cairo_surface_t *surface = NULL;
        unsigned width, height;
        size_t cols, rows, boxes = 0;
        int r = 0;

        if (spec_valid(spec) < 0 || !path || (format != PLOT_FORMAT_SVG && format != PLOT_FORMAT_PNG))
                return -EINVAL;
        plot_default_size(spec->n_panels, &width, &height);
        if (spec->width)
                width = spec->width, height = spec->height;
        cols = spec->n_panels <= 1 ? 1 : spec->n_panels <= 4 ? 2 : 3;
        rows = (spec->n_panels + cols - 1) / cols;

        if (format == PLOT_FORMAT_SVG) {
                surface = cairo_svg_surface_create(path, width, height);
                if (cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS)
                        cairo_svg_surface_set_document_unit(surface, CAIRO_SVG_UNIT_PX);
        } else
                surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int) width, (int) height);
        if (cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS)
                return cairo_surface_status(surface) == CAIRO_STATUS_NO_MEMORY ? -ENOMEM : -EIO;

        {
                _cleanup_(cairo_destroyp) cairo_t *cr = cairo_create(surface);

                cairo_set_source_rgb(cr, 1, 1, 1);
                cairo_paint(cr);
                for (size_t p = 0; p < spec->n_panels && r >= 0; p++) {
                        Rect cell = { (double) (p % cols) * width / (double) cols,
                                      (double) (p / cols) * height / (double) rows,
                                      width / (double) cols, height / (double) rows };

                        r = draw_panel(cr, spec, p, &cell);
                        if (r > 0)
                                boxes += (size_t) r;
                }
                if (r >= 0 && cairo_status(cr) != CAIRO_STATUS_SUCCESS)
                        r = cairo_status(cr) == CAIRO_STATUS_NO_MEMORY ? -ENOMEM : -EIO;
        }
        if (r >= 0 && format == PLOT_FORMAT_PNG && cairo_surface_write_to_png(surface, path) != CAIRO_STATUS_SUCCESS)
                r = -EIO;
        cairo_surface_finish(surface);          /* writes the SVG */
        if (r >= 0 && cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS)
                r = -EIO;
        if (r < 0) {
                (void) unlink(path);
                return r;
        }
        if (ret_boxes)
                *ret_boxes = boxes;
        return 0;
}

void plot_finish(void) {
        cairo_debug_reset_static_data();
        FcFini();
}

#else

void plot_finish(void) {
}

int plot_render(const PlotSpec *spec, const char *path, PlotFormat format, size_t *ret_boxes) {
        return -EOPNOTSUPP;
}

#endif
