/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* memvisorctl experiment plot (issue 16): the drawing (ctl-plot.c, cairo; plain arrays in, an SVG or PNG file
 * out, no daemon) and the command that feeds it from DescribeExperiment and GetExperimentResults
 * (ctl-experiment-plot.c). Built without cairo (meson -Dplot=disabled) the drawing returns -EOPNOTSUPP and the
 * command says so. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLOT_PANELS_MAX 12U             /* counters in one plot */
#define PLOT_EXPERIMENTS_MAX 8U         /* experiments in one plot */
#define PLOT_SIZE_MIN 200U              /* --width=, --height= in pixels */
#define PLOT_SIZE_MAX 8000U
#define PLOT_JITTER_SEED UINT64_C(0x6d656d7669736f72)   /* the points' jitter: the same file for the same data */
#define PLOT_BOX_OPACITY 0.35           /* only the boxes are filled with it: how a test finds them in an SVG */

typedef enum PlotFormat {
        PLOT_FORMAT_SVG,
        PLOT_FORMAT_PNG,
} PlotFormat;

/* One experiment's values of one counter, iteration 1 first: NAN where the counter was not taken. */
typedef struct PlotSeries {
        const double *values;
        const bool *warm_up;            /* per iteration; NULL: no warm-up */
        size_t n;
} PlotSeries;

typedef struct PlotPanel {
        const char *counter;            /* the panel's title */
        const char *unit;               /* us, ns, bytes, bytes/s, pages or count (experiment_counter_unit()) */
        const PlotSeries *series;       /* one per experiment, in the order of PlotSpec.labels */
} PlotPanel;

typedef struct PlotSpec {
        const char *const *labels;      /* one per experiment: its Name= or id */
        size_t n_experiments;           /* 1 … PLOT_EXPERIMENTS_MAX */
        const PlotPanel *panels;
        size_t n_panels;                /* 1 … PLOT_PANELS_MAX */
        bool over_time;                 /* a line per experiment over the iterations instead of boxes */
        unsigned width, height;         /* pixels (points in an SVG); 0: plot_default_size() */
} PlotSpec;

/* A box of the box plot: the quartiles (linear interpolation between order statistics, as numpy's default),
 * and the whiskers at the most extreme values within 1.5 IQR of the box (Tukey). */
typedef struct PlotBox {
        double q1, median, q3;
        double whisker_low, whisker_high;
        size_t n;                       /* the values in it: finite, warm-up excluded */
} PlotBox;

/* False when built without cairo. */
bool plot_supported(void);
/* From the file name's extension (.svg or .png, any case): PLOT_FORMAT_*, or -EINVAL. */
int plot_format_from_path(const char *path);
/* The box of the finite values that are not warm-up ones; -ENODATA when there are none, -ENOMEM. */
int plot_box(const double *values, const bool *warm_up, size_t n, PlotBox *ret);
/* The size for n panels: a grid of up to 3 columns, 420 × 320 each. */
void plot_default_size(size_t n_panels, unsigned *ret_width, unsigned *ret_height);
/* Draws spec into path as format. *ret_boxes (may be NULL): the boxes drawn (0 with over_time). -EINVAL for a
 * spec out of bounds, -EIO when the file cannot be written (errno-less: cairo says no more), -ENOMEM,
 * -EOPNOTSUPP without cairo. */
int plot_render(const PlotSpec *spec, const char *path, PlotFormat format, size_t *ret_boxes);
/* Frees what cairo and fontconfig keep after drawing (their font caches), so that a leak checker sees nothing
 * left: once, when no plot_render() follows. */
void plot_finish(void);

/* ---- the command (ctl-experiment-plot.c) ---- */

/* Option values of experiment plot, forwarded by ctl-experiment.c's option handler (--counter= too, as
 * ARG_PLOT_COUNTER). */
enum {
        ARG_PLOT_COUNTER = 0x180,
        ARG_PLOT_OVER_TIME,
        ARG_PLOT_WIDTH,
        ARG_PLOT_HEIGHT,
};
#define PLOT_OPTIONS                                                    \
        { "over-time", no_argument, NULL, ARG_PLOT_OVER_TIME },         \
        { "width", required_argument, NULL, ARG_PLOT_WIDTH },           \
        { "height", required_argument, NULL, ARG_PLOT_HEIGHT }

/* Returns 0, or EXIT_USAGE for an invalid value or an option that is not plot's. */
int experiment_plot_option(int c, const char *arg);
/* --over-time, --width= or --height= was given (they go with plot only). */
bool experiment_plot_options_given(void);
/* experiment plot ID… -o FILE: returns an exit code. */
int experiment_plot(int n_ids, char **ids, const char *output);
