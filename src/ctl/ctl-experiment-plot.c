/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl experiment plot ID… -o FILE.svg|.png: the counters of each experiment's statistics
 * (DescribeExperiment) and its iteration records (GetExperimentResults, in batches) into the plain arrays that
 * plot_render() (ctl-plot.c) draws. */
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/parse.h"
#include "ctl/ctl-plot.h"
#include "ctl/ctl.h"
#include "experiment/experiment-counter.h"
#include "experiment/experiment-spec.h"

#define M "io.memvisor.Manager."

static const char *arg_plot_counters[PLOT_PANELS_MAX * 4];
static size_t arg_plot_n_counters = 0;
static bool arg_plot_over_time = false;
static unsigned arg_plot_width = 0, arg_plot_height = 0;

int experiment_plot_option(int c, const char *arg) {
        unsigned *size;

        switch (c) {
        case ARG_PLOT_COUNTER:
                if (arg_plot_n_counters >= ELEMENTSOF(arg_plot_counters)) {
                        fprintf(stderr, "Too many --counter= options (at most %zu).\n", ELEMENTSOF(arg_plot_counters));
                        return EXIT_USAGE;
                }
                arg_plot_counters[arg_plot_n_counters++] = arg;
                return 0;
        case ARG_PLOT_OVER_TIME:
                arg_plot_over_time = true;
                return 0;
        case ARG_PLOT_WIDTH:
        case ARG_PLOT_HEIGHT:
                size = c == ARG_PLOT_WIDTH ? &arg_plot_width : &arg_plot_height;
                if (parse_unsigned(arg, size) < 0 || *size < PLOT_SIZE_MIN || *size > PLOT_SIZE_MAX) {
                        fprintf(stderr, "Invalid --%s=%s: expected pixels from %u to %u.\n",
                                c == ARG_PLOT_WIDTH ? "width" : "height", arg, PLOT_SIZE_MIN, PLOT_SIZE_MAX);
                        return EXIT_USAGE;
                }
                return 0;
        default:
                return EXIT_USAGE;
        }
}

bool experiment_plot_options_given(void) {
        return arg_plot_over_time || arg_plot_width > 0 || arg_plot_height > 0;
}

typedef struct PlotExperiment {
        json_object *describe;          /* DescribeExperiment's parameters */
        char *id;                       /* the experiment's id */
        const char *variant;            /* one variant of a matrix run ("A"; borrowed from describe), or NULL */
        json_object *statistics;        /* the statistics of the experiment or the variant (borrowed) */
        char label[96];
        size_t n;                       /* iterations received */
        bool *warm_up;                  /* [n] */
        double *values;                 /* [n × counters]: iteration-major */
} PlotExperiment;

static bool counter_selected(const char *name) {
        if (arg_plot_n_counters == 0)
                return true;
        for (size_t i = 0; i < arg_plot_n_counters; i++)
                if (fnmatch(arg_plot_counters[i], name, 0) == 0)
                        return true;
        return false;
}

/* The counters to plot: without --counter= those of the first experiment's statistics, with it those of every
 * experiment's statistics that match one, in the order they first appear. Returns an exit code. */
static int select_counters(PlotExperiment *x, size_t n_x, const char **counters, size_t *ret_n) {
        size_t n = 0;

        for (size_t e = 0; e < (arg_plot_n_counters > 0 ? n_x : 1); e++) {
                json_object *stats = x[e].statistics;

                for (size_t i = 0; stats && i < ctl_array_length(stats); i++) {
                        const char *name = json_get_string(ctl_array_get(stats, i), "counter");
                        bool seen = false;

                        if (!name || !experiment_counter_name_is_valid(name) || !counter_selected(name))
                                continue;
                        for (size_t k = 0; k < n && !seen; k++)
                                seen = streq(counters[k], name);
                        if (seen)
                                continue;
                        if (n == PLOT_PANELS_MAX) {
                                fprintf(stderr, "More than %u counters to plot, but a plot has at most %u panels: "
                                        "choose them with --counter=GLOB (such as --counter='time.*' "
                                        "--counter=host.vmstat.pgmigrate_success).\n", PLOT_PANELS_MAX,
                                        PLOT_PANELS_MAX);
                                return EXIT_USAGE;
                        }
                        counters[n++] = name;
                }
        }
        if (n == 0) {
                if (arg_plot_n_counters > 0)
                        fprintf(stderr, "No counter of the experiments' statistics matches --counter=%s%s "
                                "(see memvisorctl experiment show ID).\n", arg_plot_counters[0],
                                arg_plot_n_counters > 1 ? " or the others" : "");
                else
                        fprintf(stderr, "Experiment %s has no statistics yet (no iteration after the warm-up): "
                                "nothing to plot.\n",
                                strna(json_get_string(ctl_obj_get(x[0].describe, "experiment"), "id")));
                return EXIT_USAGE;
        }
        *ret_n = n;
        return EXIT_OK;
}

/* GetExperimentResults with more: the selected counters of every record (NAN where one is missing). */
static int fetch_records(VarlinkClient *c, PlotExperiment *x, const char **counters, size_t n_counters) {
        const char *id = x->id;
        _cleanup_json_ json_object *params = json_object_new_object();
        size_t cap = 0;
        int r;

        if (!params || json_add_string(params, "id", id) < 0)
                return log_oom(), EXIT_CONNECTION;
        r = varlink_client_send(c, M "GetExperimentResults", params, VARLINK_CALL_MORE);
        if (r < 0)
                return ctl_connection_failed(r, "Failed to call GetExperimentResults");
        for (;;) {
                _cleanup_json_ json_object *reply = NULL;
                json_object *its;

                r = varlink_client_receive(c, &reply);
                if (r < 0)
                        return ctl_connection_failed(r, "GetExperimentResults");
                if (json_get_string(reply, "error"))
                        return ctl_report_error(reply);
                its = ctl_obj_get(ctl_reply_parameters(reply), "iterations");
                for (size_t i = 0; its && i < ctl_array_length(its); i++) {
                        json_object *rec = ctl_array_get(its, i), *cs = ctl_obj_get(rec, "counters");

                        if (x->variant && !streq_ptr(json_get_string(rec, "variant"), x->variant))
                                continue;
                        if (x->n >= EXPERIMENT_ITERATIONS_MAX) {
                                fprintf(stderr, "The daemon sent more than %u iteration records for %s.\n",
                                        EXPERIMENT_ITERATIONS_MAX, id);
                                return EXIT_CONNECTION;
                        }
                        if (x->n == cap) {
                                size_t ncap = MAX(cap * 2, 64U);
                                bool *w = reallocarray(x->warm_up, ncap, sizeof(bool));
                                double *v;

                                if (!w)
                                        return log_oom(), EXIT_CONNECTION;
                                x->warm_up = w;
                                v = reallocarray(x->values, ncap * n_counters, sizeof(double));
                                if (!v)
                                        return log_oom(), EXIT_CONNECTION;
                                x->values = v;
                                cap = ncap;
                        }
                        x->warm_up[x->n] = json_get_bool(rec, "warmUp", false);
                        for (size_t k = 0; k < n_counters; k++) {
                                json_object *v = ctl_obj_get(cs, counters[k]);

                                x->values[x->n * n_counters + k] =
                                        v && (json_object_is_type(v, json_type_int) ||
                                              json_object_is_type(v, json_type_double)) ?
                                        json_object_get_double(v) : NAN;
                        }
                        x->n++;
                }
                if (!json_get_bool(reply, "continues", false))
                        return EXIT_OK;
        }
}

/* The x labels: the experiments' names when each has one of its own, else their ids; a variant as "ID:A", or
 * as "A" when every box is a variant of one run. */
static void pick_labels(PlotExperiment *x, size_t n_x, const char **labels) {
        bool names = true, one_run = true;

        for (size_t e = 0; e < n_x; e++) {
                one_run = one_run && x[e].variant && streq(x[e].id, x[0].id);
                labels[e] = json_get_string(ctl_obj_get(x[e].describe, "experiment"), "name");
                if (isempty(labels[e]) || x[e].variant)
                        names = false;
                for (size_t k = 0; names && k < e; k++)
                        names = !streq(labels[k], labels[e]);
        }
        for (size_t e = 0; !names && e < n_x; e++) {
                if (x[e].variant)
                        snprintf(x[e].label, sizeof(x[e].label), "%s%s%s", one_run ? "" : x[e].id,
                                 one_run ? "" : ":", x[e].variant);
                else
                        snprintf(x[e].label, sizeof(x[e].label), "%s", x[e].id);
                labels[e] = x[e].label;
        }
}

static int render(PlotExperiment *x, size_t n_x, const char **counters, size_t n_counters,
                  const char *output, PlotFormat format) {
        _cleanup_free_ double *values = NULL;
        PlotSeries series[PLOT_PANELS_MAX][PLOT_EXPERIMENTS_MAX];
        PlotPanel panels[PLOT_PANELS_MAX];
        const char *labels[PLOT_EXPERIMENTS_MAX];
        size_t total = 0, off = 0, boxes;
        PlotSpec spec;
        int r;

        for (size_t e = 0; e < n_x; e++)
                total += x[e].n;
        values = malloc(MAX(total * n_counters, 1U) * sizeof(double));
        if (!values)
                return log_oom(), EXIT_CONNECTION;
        for (size_t k = 0; k < n_counters; k++) {
                panels[k] = (PlotPanel) { counters[k], experiment_counter_unit(counters[k]), series[k] };
                for (size_t e = 0; e < n_x; e++) {
                        series[k][e] = (PlotSeries) { values + off, x[e].warm_up, x[e].n };
                        for (size_t i = 0; i < x[e].n; i++)
                                values[off++] = x[e].values[i * n_counters + k];
                }
        }
        pick_labels(x, n_x, labels);
        spec = (PlotSpec) {
                .labels = labels,
                .n_experiments = n_x,
                .panels = panels,
                .n_panels = n_counters,
                .over_time = arg_plot_over_time,
        };
        if (arg_plot_width > 0 || arg_plot_height > 0) {
                plot_default_size(n_counters, &spec.width, &spec.height);
                spec.width = arg_plot_width ?: MIN(MAX(spec.width, PLOT_SIZE_MIN), PLOT_SIZE_MAX);
                spec.height = arg_plot_height ?: MIN(MAX(spec.height, PLOT_SIZE_MIN), PLOT_SIZE_MAX);
        }
        r = plot_render(&spec, output, format, &boxes);
        if (r < 0) {
                fprintf(stderr, "Failed to write the plot to %s: %s\n", output,
                        r == -EIO ? "cannot write the file" : strerror(-r));
                return EXIT_USAGE;
        }
        return EXIT_OK;
}

int experiment_plot(int n_ids, char **ids, const char *output) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        PlotExperiment x[PLOT_EXPERIMENTS_MAX] = {};
        const char *counters[PLOT_PANELS_MAX];
        size_t n_counters = 0, n_x = 0;
        int format, r;

        if (n_ids < 1 || (unsigned) n_ids > PLOT_EXPERIMENTS_MAX) {
                fprintf(stderr, "experiment plot takes 1 to %u experiment IDs.\n", PLOT_EXPERIMENTS_MAX);
                return EXIT_USAGE;
        }
        format = plot_format_from_path(output);
        if (format < 0) {
                fprintf(stderr, "experiment plot needs -o FILE.svg or -o FILE.png (the format follows the "
                        "extension).\n");
                return EXIT_USAGE;
        }
        if (!plot_supported()) {
                fprintf(stderr, "memvisorctl was built without plotting (cairo): rebuild with -Dplot=enabled\n");
                return EXIT_VARLINK_ERROR;
        }

        r = ctl_connect(&c);
        if (r < 0)
                return -r;
        for (int e = 0; e < n_ids; e++) {
                _cleanup_json_ json_object *params = json_object_new_object(), *reply = NULL;
                _cleanup_free_ char *id = NULL;
                const char *colon = strchr(ids[e], ':'), *variant = colon ? colon + 1 : NULL;
                json_object *describe, *variants;
                size_t first = n_x;

                id = colon ? strndup(ids[e], (size_t) (colon - ids[e])) : strdup(ids[e]);
                if (!id || !params || json_add_string(params, "id", id) < 0) {
                        log_oom();
                        r = EXIT_CONNECTION;
                        goto finish;
                }
                r = varlink_client_call(c, M "DescribeExperiment", params, &reply);
                if (r < 0) {
                        r = ctl_connection_failed(r, "Failed to call DescribeExperiment");
                        goto finish;
                }
                if (json_get_string(reply, "error")) {
                        r = ctl_report_error(reply);
                        goto finish;
                }
                describe = ctl_reply_parameters(reply);
                variants = ctl_obj_get(describe, "variants");
                /* A matrix run: one box per variant (or the one named); otherwise the experiment. */
                for (size_t v = 0; v < (variants ? ctl_array_length(variants) : 1); v++) {
                        json_object *vo = variants ? ctl_array_get(variants, v) : NULL;
                        const char *label = vo ? json_get_string(vo, "variant") : NULL;

                        if (variants && (!label || (variant && !streq(label, variant))))
                                continue;
                        if (n_x == PLOT_EXPERIMENTS_MAX) {
                                fprintf(stderr, "A plot has at most %u boxes per counter: name fewer experiments "
                                        "or variants (ID:A).\n", PLOT_EXPERIMENTS_MAX);
                                r = EXIT_USAGE;
                                goto finish;
                        }
                        x[n_x] = (PlotExperiment) {
                                .describe = json_object_get(describe),
                                .id = strdup(id),
                                .variant = label,
                                .statistics = ctl_obj_get(vo ?: describe, "statistics"),
                        };
                        if (!x[n_x++].id) {
                                log_oom();
                                r = EXIT_CONNECTION;
                                goto finish;
                        }
                }
                if (n_x == first) {
                        fprintf(stderr, variants ? "Experiment %s has no variant %s.\n"
                                                 : "Experiment %s is not a matrix run: it has no variant %s.\n",
                                id, strna(variant));
                        r = EXIT_USAGE;
                        goto finish;
                }
                if (variant && !variants) {
                        fprintf(stderr, "Experiment %s is not a matrix run: it has no variant %s.\n", id, variant);
                        r = EXIT_USAGE;
                        goto finish;
                }
        }
        r = select_counters(x, n_x, counters, &n_counters);
        for (size_t e = 0; r == EXIT_OK && e < n_x; e++)
                r = fetch_records(c, &x[e], counters, n_counters);
        if (r == EXIT_OK)
                r = render(x, n_x, counters, n_counters, output, format);
finish:
        for (size_t e = 0; e < PLOT_EXPERIMENTS_MAX; e++) {
                json_object_put(x[e].describe);
                free(x[e].id);
                free(x[e].warm_up);
                free(x[e].values);
        }
        plot_finish();
        return r;
}
