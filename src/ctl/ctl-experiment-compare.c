/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl experiment compare A B: CompareExperiments, printed as the provenance differences, then one row per
 * counter (in the units of experiment show), then the counters measured on one side only. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "ctl/ctl-experiment.h"
#include "ctl/ctl.h"

#define M "io.memvisor.Manager."

/* The errors of CompareExperiments in a sentence; the others as ctl_report_error() prints them. */
static int report_error(json_object *reply) {
        const char *error = json_get_string(reply, "error");
        json_object *p = ctl_reply_parameters(reply);

        if (streq_ptr(error, M "NoSuchExperiment")) {
                fprintf(stderr, "%s\nNo experiment %s.\n", error, strna(json_get_string(p, "id")));
                return EXIT_VARLINK_ERROR;
        }
        if (streq_ptr(error, M "InvalidExperiment")) {
                const char *field = json_get_string(p, "field");

                fprintf(stderr, "%s\nCannot compare: %s%s%s\n", error, field ? "--" : "", field ? field : "",
                        field ? ": " : "");
                fprintf(stderr, "%s\n", strna(json_get_string(p, "reason")));
                return EXIT_VARLINK_ERROR;
        }
        if (streq_ptr(error, M "ExperimentStoreFailed")) {
                fprintf(stderr, "%s\nCannot read the experiments: %s\n", error, strna(json_get_string(p, "reason")));
                return EXIT_VARLINK_ERROR;
        }
        return ctl_report_error(reply);
}

static double number(json_object *o, const char *key, bool *ok) {
        json_object *v = ctl_obj_get(o, key);

        *ok = v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double));
        return *ok ? json_object_get_double(v) : NAN;
}

/* A provenance value as text: strings as they are, the rest as JSON; "(absent)" when that side lacks it. */
static const char *prov_value(json_object *d, const char *key) {
        json_object *v = NULL;

        if (!json_object_object_get_ex(d, key, &v))
                return "(absent)";
        if (json_object_is_type(v, json_type_string))
                return json_object_get_string(v);
        return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Whether text (lines) has the line [l, l + n). */
static bool has_line(const char *text, const char *l, size_t n) {
        for (const char *p = text; p; ) {
                const char *e = strchrnul(p, '\n');

                if ((size_t) (e - p) == n && strncmp(p, l, n) == 0)
                        return true;
                p = *e ? e + 1 : NULL;
        }
        return false;
}

/* Multi-line values (a guest's definition): only the lines one side has and the other lacks. */
static void print_text_difference(const char *key, const char *a, const char *b) {
        printf("  %s (the lines that differ):\n", key);
        for (int side = 0; side < 2; side++) {
                const char *t = side == 0 ? a : b, *other = side == 0 ? b : a;

                for (const char *p = t; p; ) {
                        const char *e = strchrnul(p, '\n');

                        if (e > p && !has_line(other, p, (size_t) (e - p)))
                                printf("    %s %.*s\n", side == 0 ? "A" : "B", (int) (e - p), p);
                        p = *e ? e + 1 : NULL;
                }
        }
}

static void print_header(json_object *cmp) {
        json_object *a = ctl_obj_get(cmp, "a"), *b = ctl_obj_get(cmp, "b"), *diffs;

        printf("%12s %s (%" PRIi64 " iterations, %" PRIi64 " warm-up)\n", "A:", strna(json_get_string(a, "id")),
               json_get_int(a, "iterations", 0), json_get_int(a, "warmUp", 0));
        printf("%12s %s (%" PRIi64 " iterations, %" PRIi64 " warm-up)\n", "B:", strna(json_get_string(b, "id")),
               json_get_int(b, "iterations", 0), json_get_int(b, "warmUp", 0));
        printf("%12s %s%s%s%s\n", "Operation:", strna(json_get_string(cmp, "operation")),
               json_get_string(cmp, "baseline") ? " (" : "", json_get_string(cmp, "baseline") ?
               (streq(json_get_string(cmp, "baseline"), "a") ? "A" : "B") : "",
               json_get_string(cmp, "baseline") ? " is its baseline: Operation=none)" : "");
        printf("%12s seed %" PRIi64 ", %" PRIi64 " resamples\n", "Bootstrap:", json_get_int(cmp, "seed", 0),
               json_get_int(cmp, "resamples", 0));

        diffs = ctl_obj_get(cmp, "provenanceDifferences");
        if (!diffs || ctl_array_length(diffs) == 0) {
                printf("%12s no differences (collection time and free memory left out)\n", "Provenance:");
                return;
        }
        printf("\nProvenance differences (%zu): the experiments differ in more than what they measure if these "
               "are not what was varied:\n", ctl_array_length(diffs));
        for (size_t i = 0; i < ctl_array_length(diffs); i++) {
                json_object *d = ctl_array_get(diffs, i);
                _cleanup_free_ char *va = strdup(prov_value(d, "a"));
                const char *vb = prov_value(d, "b");

                if (va && (strchr(va, '\n') || strchr(vb, '\n')))
                        print_text_difference(strna(json_get_string(d, "key")), va, vb);
                else
                        printf("  %s: A %s, B %s\n", strna(json_get_string(d, "key")), strna(va), vb);
        }
}

static void print_table(json_object *rows) {
        int w = 7;
        size_t n = rows ? ctl_array_length(rows) : 0, significant = 0;

        for (size_t i = 0; i < n; i++)
                w = MAX(w, (int) strlen(strempty(json_get_string(ctl_array_get(rows, i), "counter"))));
        if (arg_legend)
                /* "Δ" is two bytes for one column: its field is one wider than the rows'. */
                printf("%-*s %10s %10s %-26s %9s %10s %3s %s\n", w, "COUNTER", "A MEDIAN", "B MEDIAN", "RATIO [95% CI]",
                       "P (HOLM)", "Δ (CLIFF)", "SIG", "UNIT");
        for (size_t i = 0; i < n; i++) {
                json_object *c = ctl_array_get(rows, i);
                char ma[32], mb[32], ratio[64], p[32], delta[32];
                bool ok_a, ok_b, ok_r, ok_lo, ok_hi, ok;
                double a = number(c, "medianA", &ok_a), b = number(c, "medianB", &ok_b);
                double r = number(c, "ratio", &ok_r), lo = number(c, "ratioCILow", &ok_lo),
                       hi = number(c, "ratioCIHigh", &ok_hi);
                Scale sc = pick_scale(json_get_string(c, "unit"), MAX(fabs(ok_a ? a : 0), fabs(ok_b ? b : 0)));
                bool sig = json_get_bool(c, "significant", false);

                if (!ok_r)
                        snprintf(ratio, sizeof(ratio), "-");
                else if (ok_lo && ok_hi)
                        snprintf(ratio, sizeof(ratio), "%.3f [%.3f, %.3f]", r, lo, hi);
                else
                        snprintf(ratio, sizeof(ratio), "%.3f [-]", r);
                snprintf(p, sizeof(p), "%.3g", number(c, "pHolm", &ok));
                snprintf(delta, sizeof(delta), "%+.2f", number(c, "cliffsDelta", &ok));
                significant += sig;
                printf("%-*s %10s %10s %-26s %9s %9s %3s %s\n", w, strempty(json_get_string(c, "counter")),
                       format_scaled(ma, sizeof(ma), a, &sc), format_scaled(mb, sizeof(mb), b, &sc), ratio, p, delta,
                       sig ? "*" : "", sc.unit);
        }
        if (arg_legend && n == 0)
                printf("(no counter measured in both)\n");
        else if (arg_legend)
                printf("\n%zu of %zu counters differ significantly (*: Holm-adjusted p < 0.05 across the %zu "
                       "compared; ratio = B median / A median; Δ > 0: B larger).\n", significant, n, n);
}

static void print_not_compared(json_object *rows) {
        for (size_t i = 0; rows && i < ctl_array_length(rows); i++) {
                json_object *c = ctl_array_get(rows, i);

                if (i == 0)
                        printf("\nNot compared:\n");
                printf("  %s (in %s only): %s\n", strempty(json_get_string(c, "counter")),
                       streq_ptr(json_get_string(c, "side"), "a") ? "A" : "B", strna(json_get_string(c, "reason")));
        }
}

int ctl_experiment_compare(const char *a, const char *b, char **globs, size_t n_globs, uint64_t seed,
                           unsigned resamples) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_json_ json_object *params = json_object_new_object(), *reply = NULL, *list = NULL;
        json_object *cmp;
        int r;

        if (!params || json_add_string(params, "a", a) < 0 || json_add_string(params, "b", b) < 0)
                return log_oom(), EXIT_CONNECTION;
        if (n_globs > 0) {
                list = json_object_new_array();
                if (!list)
                        return log_oom(), EXIT_CONNECTION;
                for (size_t i = 0; i < n_globs; i++)
                        if (json_object_array_add(list, json_object_new_string(globs[i])) < 0)
                                return log_oom(), EXIT_CONNECTION;
                if (json_add(params, "counters", TAKE_PTR(list)) < 0)
                        return log_oom(), EXIT_CONNECTION;
        }
        if ((seed != UINT64_MAX && json_add_uint(params, "seed", seed) < 0) ||
            (resamples > 0 && json_add_uint(params, "resamples", resamples) < 0))
                return log_oom(), EXIT_CONNECTION;

        r = ctl_connect(&c);
        if (r < 0)
                return -r;
        r = varlink_client_call(c, M "CompareExperiments", params, &reply);
        if (r < 0)
                return ctl_connection_failed(r, "Failed to call CompareExperiments");
        if (json_get_string(reply, "error"))
                return report_error(reply);
        cmp = ctl_obj_get(ctl_reply_parameters(reply), "comparison");
        if (arg_json) {
                ctl_print_json(ctl_reply_parameters(reply));
                return EXIT_OK;
        }
        print_header(cmp);
        printf("\n");
        print_table(ctl_obj_get(cmp, "comparisons"));
        print_not_compared(ctl_obj_get(cmp, "notCompared"));
        return EXIT_OK;
}
