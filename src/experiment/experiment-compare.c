/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The comparison of two experiments (see experiment-compare.h). Each side's records go into an ExperimentSummary
 * (which validates them, drops the warm-up and bounds the memory); the counters are then walked in name order on
 * both sides at once. */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "experiment/experiment-compare.h"
#include "experiment/experiment-counter.h"
#include "experiment/experiment-summary.h"
#include "experiment/provenance.h"
#include "stats/stats.h"

typedef struct CompareSide {
        char *id;
        char *operation;
        json_object *provenance;
        ExperimentSummary *summary;
} CompareSide;

/* A counter of the walk: its index on each side (SIZE_MAX: not there). */
typedef struct Selected {
        size_t ia, ib;
} Selected;

struct ExperimentCompare {
        CompareSide side[_EXPERIMENT_COMPARE_SIDE_MAX];
        ExperimentCompareOptions options;       /* the globs copied */
        bool prepared;
        Selected *selected;                     /* the counters that pass the globs, both sides or one */
        size_t n_selected, n_both;
        atomic_bool cancelled;
};

static void strv_free_n(char **l, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(l[i]);
        free(l);
}

ExperimentCompare *experiment_compare_free(ExperimentCompare *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < _EXPERIMENT_COMPARE_SIDE_MAX; i++) {
                free(c->side[i].id);
                free(c->side[i].operation);
                json_object_put(c->side[i].provenance);
                experiment_summary_free(c->side[i].summary);
        }
        strv_free_n(c->options.counters, c->options.n_counters);
        free(c->selected);
        return mfree(c);
}

int experiment_compare_new(ExperimentCompare **ret) {
        _cleanup_(experiment_compare_freep) ExperimentCompare *c = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        atomic_init(&c->cancelled, false);
        for (size_t i = 0; i < _EXPERIMENT_COMPARE_SIDE_MAX; i++) {
                r = experiment_summary_new(&c->side[i].summary);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int experiment_compare_set(ExperimentCompare *c, ExperimentCompareSide side, const char *id, json_object *definition,
                           json_object *provenance) {
        json_object *provoke = NULL;
        const char *op;
        char *i, *o;

        if (!c || side < 0 || side >= _EXPERIMENT_COMPARE_SIDE_MAX || !id)
                return -EINVAL;
        if (provenance && !json_object_is_type(provenance, json_type_object))
                return -EINVAL;
        (void) json_object_object_get_ex(definition, "Provoke", &provoke);
        op = json_get_string(provoke, "Operation") ?: "none";
        i = strdup(id);
        o = strdup(op);
        if (!i || !o) {
                free(i);
                free(o);
                return -ENOMEM;
        }
        free(c->side[side].id);
        free(c->side[side].operation);
        json_object_put(c->side[side].provenance);
        c->side[side].id = i;
        c->side[side].operation = o;
        c->side[side].provenance = provenance ? json_object_get(provenance) : NULL;
        c->prepared = false;
        return 0;
}

int experiment_compare_set_variant(ExperimentCompare *c, ExperimentCompareSide side, const char *variant) {
        if (!c || side < 0 || side >= _EXPERIMENT_COMPARE_SIDE_MAX)
                return -EINVAL;
        return experiment_summary_set_variant(c->side[side].summary, variant);
}

int experiment_compare_add(ExperimentCompare *c, ExperimentCompareSide side, json_object *record) {
        if (!c || side < 0 || side >= _EXPERIMENT_COMPARE_SIDE_MAX)
                return -EINVAL;
        c->prepared = false;
        return experiment_summary_add(c->side[side].summary, record);
}

void experiment_compare_cancel(ExperimentCompare *c) {
        if (c)
                atomic_store(&c->cancelled, true);
}

/* ---- prepare ---- */

static int fail(int error, const char *field, const char **ret_field, char **ret_reason, const char *format, ...)
        _printf_(5, 6);

static int fail(int error, const char *field, const char **ret_field, char **ret_reason, const char *format, ...) {
        va_list ap;

        *ret_field = field;
        va_start(ap, format);
        if (vasprintf(ret_reason, format, ap) < 0) {
                *ret_reason = NULL;
                error = -ENOMEM;
        }
        va_end(ap);
        return error;
}

static bool selected_by(const ExperimentCompareOptions *o, const char *name) {
        if (o->n_counters == 0)
                return true;
        for (size_t i = 0; i < o->n_counters; i++)
                if (fnmatch(o->counters[i], name, 0) == 0)
                        return true;
        return false;
}

static int copy_globs(ExperimentCompare *c, const ExperimentCompareOptions *o) {
        char **l = NULL;

        strv_free_n(c->options.counters, c->options.n_counters);
        c->options.counters = NULL;
        c->options.n_counters = 0;
        if (o->n_counters > 0) {
                l = calloc(o->n_counters, sizeof(char *));
                if (!l)
                        return -ENOMEM;
                for (size_t i = 0; i < o->n_counters; i++) {
                        l[i] = strdup(o->counters[i]);
                        if (!l[i]) {
                                strv_free_n(l, i);
                                return -ENOMEM;
                        }
                }
        }
        c->options = *o;
        c->options.counters = l;
        return 0;
}

/* The walk over both sides' counters (sorted by name), those the globs take. */
static int select_counters(ExperimentCompare *c) {
        const ExperimentSummary *a = c->side[EXPERIMENT_COMPARE_A].summary, *b = c->side[EXPERIMENT_COMPARE_B].summary;
        size_t na = experiment_summary_n_counters(a), nb = experiment_summary_n_counters(b), ia = 0, ib = 0;
        Selected *s;

        s = calloc(na + nb + 1, sizeof(Selected));
        if (!s)
                return -ENOMEM;
        free(c->selected);
        c->selected = s;
        c->n_selected = c->n_both = 0;
        while (ia < na || ib < nb) {
                const double *v;
                size_t n;
                const char *x = ia < na ? experiment_summary_counter(a, ia, &v, &n) : NULL;
                const char *y = ib < nb ? experiment_summary_counter(b, ib, &v, &n) : NULL;
                int d = !x ? 1 : !y ? -1 : strcmp(x, y);
                Selected e = {
                        .ia = d <= 0 ? ia++ : SIZE_MAX,
                        .ib = d >= 0 ? ib++ : SIZE_MAX,
                };

                if (!selected_by(&c->options, d <= 0 ? x : y))
                        continue;
                s[c->n_selected++] = e;
                if (e.ia != SIZE_MAX && e.ib != SIZE_MAX)
                        c->n_both++;
        }
        return 0;
}

int experiment_compare_prepare(ExperimentCompare *c, const ExperimentCompareOptions *options, const char **ret_field,
                               char **ret_reason) {
        const CompareSide *a, *b;
        uint64_t draws = 0;
        int r;

        if (!c || !options || !ret_field || !ret_reason)
                return -EINVAL;
        *ret_field = NULL;
        *ret_reason = NULL;
        c->prepared = false;
        a = &c->side[EXPERIMENT_COMPARE_A];
        b = &c->side[EXPERIMENT_COMPARE_B];
        if (!a->id || !b->id)
                return fail(-EINVAL, NULL, ret_field, ret_reason, "both experiments must be given");
        /* A baseline (Operation=none) is the control of every operation; two different operations are not
         * comparable. */
        if (!streq(a->operation, b->operation) && !streq(a->operation, "none") && !streq(b->operation, "none"))
                return fail(-EINVAL, NULL, ret_field, ret_reason,
                            "%s provokes %s and %s provokes %s: only experiments of the same operation, or one "
                            "against a baseline (Operation=none), are compared", a->id, a->operation, b->id,
                            b->operation);
        if (options->resamples < 1 || options->resamples > EXPERIMENT_COMPARE_RESAMPLES_MAX)
                return fail(-EINVAL, "resamples", ret_field, ret_reason, "resamples must be 1 … %u, not %zu",
                            EXPERIMENT_COMPARE_RESAMPLES_MAX, options->resamples);
        if (options->n_counters > EXPERIMENT_COMPARE_GLOBS_MAX)
                return fail(-EINVAL, "counters", ret_field, ret_reason, "at most %u counter globs, not %zu",
                            EXPERIMENT_COMPARE_GLOBS_MAX, options->n_counters);
        for (size_t i = 0; i < options->n_counters; i++) {
                size_t l = options->counters[i] ? strlen(options->counters[i]) : 0;

                if (l == 0 || l > EXPERIMENT_COMPARE_GLOB_MAX)
                        return fail(-EINVAL, "counters", ret_field, ret_reason,
                                    "a counter glob must have 1 … %u bytes", EXPERIMENT_COMPARE_GLOB_MAX);
        }
        r = copy_globs(c, options);
        if (r < 0)
                return r;
        r = select_counters(c);
        if (r < 0)
                return r;
        if (c->n_both > EXPERIMENT_COMPARE_COUNTERS_MAX)
                return fail(-E2BIG, "counters", ret_field, ret_reason,
                            "%zu counters are in both experiments, at most %u are compared at once: choose them with "
                            "counter globs", c->n_both, EXPERIMENT_COMPARE_COUNTERS_MAX);
        for (size_t i = 0; i < c->n_selected; i++) {
                const double *v;
                size_t na, nb;

                if (c->selected[i].ia == SIZE_MAX || c->selected[i].ib == SIZE_MAX)
                        continue;
                (void) experiment_summary_counter(a->summary, c->selected[i].ia, &v, &na);
                (void) experiment_summary_counter(b->summary, c->selected[i].ib, &v, &nb);
                draws += (uint64_t) (na + nb) * options->resamples;
        }
        if (draws > EXPERIMENT_COMPARE_DRAWS_MAX)
                return fail(-E2BIG, "resamples", ret_field, ret_reason,
                            "the bootstrap would draw %" PRIu64 " values (resamples × the values of the counters "
                            "compared), more than %" PRIu64 ": fewer resamples or counters",
                            draws, EXPERIMENT_COMPARE_DRAWS_MAX);
        c->prepared = true;
        return 0;
}

/* ---- run ---- */

/* The reason an unavailable entry of the other side gives for name (the name itself or a set it belongs to). */
static const char *unavailable_reason(const ExperimentSummary *s, const char *name) {
        for (size_t i = 0; i < experiment_summary_n_unavailable(s); i++) {
                const char *reason, *u = experiment_summary_unavailable(s, i, &reason);
                size_t l = strlen(u);

                if (streq(u, name) || (strncmp(name, u, l) == 0 && name[l] == '.'))
                        return reason;
        }
        return NULL;
}

static int not_compared_to_json(const ExperimentCompare *c, const char *name, ExperimentCompareSide has,
                                json_object **ret) {
        ExperimentCompareSide other = has == EXPERIMENT_COMPARE_A ? EXPERIMENT_COMPARE_B : EXPERIMENT_COMPARE_A;
        const char *why = unavailable_reason(c->side[other].summary, name);
        _cleanup_json_ json_object *o = json_object_new_object();
        _cleanup_free_ char *reason = NULL;
        int r;

        if (!o)
                return -ENOMEM;
        if (why)
                r = asprintf(&reason, "unavailable in %s: %s", other == EXPERIMENT_COMPARE_A ? "A" : "B", why);
        else
                r = asprintf(&reason, "not measured in %s", other == EXPERIMENT_COMPARE_A ? "A" : "B");
        if (r < 0)
                return -ENOMEM;
        if ((r = json_add_string(o, "counter", name)) < 0 ||
            (r = json_add_string(o, "side", has == EXPERIMENT_COMPARE_A ? "a" : "b")) < 0 ||
            (r = json_add_string(o, "reason", reason)) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int add_double_or_null(json_object *o, const char *key, bool has, double v) {
        if (!has || !isfinite(v))
                return json_object_object_add(o, key, NULL) < 0 ? -ENOMEM : 0;
        return json_add_double(o, key, v);
}

/* One counter on both sides; its p goes to *ret_p for Holm. */
static int comparison_to_json(ExperimentCompare *c, const char *name, const double *a, size_t na,
                              const double *b, size_t nb, json_object **ret, double *ret_p) {
        _cleanup_json_ json_object *o = json_object_new_object();
        StatsSummary sa, sb;
        StatsMannWhitney mw;
        StatsBootstrapRatio boot = {};
        const char *note = NULL;
        bool has_ratio, has_ci;
        double delta;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = stats_summary(a, na, &sa)) < 0 || (r = stats_summary(b, nb, &sb)) < 0 ||
            (r = stats_mann_whitney(b, nb, a, na, &mw)) < 0 || (r = stats_cliffs_delta(b, nb, a, na, &delta)) < 0)
                return r;
        r = stats_bootstrap_median_ratio_cancellable(a, na, b, nb, c->options.seed, c->options.resamples, &c->cancelled,
                                                     &boot);
        if (r == -EDOM) {
                has_ratio = sa.median != 0.0 && isfinite(sb.median / sa.median);
                has_ci = false;
                note = sa.median == 0.0 ? "the median of A is 0: no ratio"
                                        : "a resample of A has a median of 0 (or a ratio overflows): no interval";
                boot.ratio = has_ratio ? sb.median / sa.median : NAN;
        } else if (r < 0)
                return r;
        else
                has_ratio = has_ci = true;

        if ((r = json_add_string(o, "counter", name)) < 0 ||
            (r = json_add_string(o, "unit", experiment_counter_unit(name))) < 0 ||
            (r = json_add_uint(o, "nA", na)) < 0 ||
            (r = json_add_uint(o, "nB", nb)) < 0 ||
            (r = json_add_double(o, "medianA", sa.median)) < 0 ||
            (r = json_add_double(o, "medianB", sb.median)) < 0 ||
            (r = add_double_or_null(o, "ratio", has_ratio, boot.ratio)) < 0 ||
            (r = add_double_or_null(o, "ratioCILow", has_ci, boot.low)) < 0 ||
            (r = add_double_or_null(o, "ratioCIHigh", has_ci, boot.high)) < 0 ||
            (r = json_add_string(o, "ratioNote", note)) < 0 ||
            (r = json_add_double(o, "u", mw.u1)) < 0 ||
            (r = json_add_double(o, "p", mw.p)) < 0 ||
            (r = json_add_string(o, "method", stats_mwu_method_to_string(mw.method))) < 0 ||
            (r = json_add_double(o, "cliffsDelta", delta)) < 0)
                return r;
        *ret_p = mw.p;
        *ret = TAKE_PTR(o);
        return 0;
}

static int side_to_json(const CompareSide *s, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "id", s->id)) < 0 ||
            (r = json_add_uint(o, "iterations", experiment_summary_iterations(s->summary))) < 0 ||
            (r = json_add_uint(o, "warmUp", experiment_summary_warm_up(s->summary))) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

/* provenance_diff() of the two sides; nothing to list when a side has none (or an empty one). */
static int provenance_differences(const ExperimentCompare *c, json_object **ret) {
        _cleanup_(provenance_diff_done) ProvenanceDiff d = {};
        json_object *pa = c->side[EXPERIMENT_COMPARE_A].provenance, *pb = c->side[EXPERIMENT_COMPARE_B].provenance;
        int r;

        if (!pa || !pb || json_object_object_length(pa) == 0 || json_object_object_length(pb) == 0) {
                *ret = json_object_new_array();
                return *ret ? 0 : -ENOMEM;
        }
        r = provenance_diff(pa, pb, PROVENANCE_DIFF_SKIP_VOLATILE, &d);
        if (r < 0)
                return r;
        return provenance_diff_to_json(&d, ret);
}

static int array_add(json_object *a, json_object *e) {
        if (json_object_array_add(a, e) < 0) {
                json_object_put(e);
                return -ENOMEM;
        }
        return 0;
}

static int globs_to_json(const ExperimentCompare *c, json_object **ret) {
        _cleanup_json_ json_object *a = NULL;

        if (c->options.n_counters == 0) {
                *ret = NULL;
                return 0;
        }
        a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < c->options.n_counters; i++) {
                json_object *s = json_object_new_string(c->options.counters[i]);

                if (!s || array_add(a, s) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(a);
        return 0;
}

int experiment_compare_run(ExperimentCompare *c, json_object **ret) {
        _cleanup_json_ json_object *o = NULL, *comparisons = NULL, *not_compared = NULL, *diffs = NULL, *sa = NULL,
                                   *sb = NULL, *globs = NULL;
        _cleanup_free_ double *p = NULL, *holm = NULL;
        const ExperimentSummary *a, *b;
        size_t m = 0;
        int r;

        if (!c || !ret || !c->prepared)
                return -EINVAL;
        a = c->side[EXPERIMENT_COMPARE_A].summary;
        b = c->side[EXPERIMENT_COMPARE_B].summary;
        o = json_object_new_object();
        comparisons = json_object_new_array();
        not_compared = json_object_new_array();
        p = calloc(c->n_both + 1, sizeof(double));
        holm = calloc(c->n_both + 1, sizeof(double));
        if (!o || !comparisons || !not_compared || !p || !holm)
                return -ENOMEM;

        r = provenance_differences(c, &diffs);
        if (r < 0)
                return r;

        for (size_t i = 0; i < c->n_selected; i++) {
                const Selected *s = &c->selected[i];
                const double *va = NULL, *vb = NULL;
                size_t na = 0, nb = 0;
                const char *name = NULL;
                json_object *e = NULL;

                if (atomic_load(&c->cancelled))
                        return -ECANCELED;
                if (s->ia != SIZE_MAX)
                        name = experiment_summary_counter(a, s->ia, &va, &na);
                if (s->ib != SIZE_MAX)
                        name = experiment_summary_counter(b, s->ib, &vb, &nb);
                if (va && vb) {
                        r = comparison_to_json(c, name, va, na, vb, nb, &e, &p[m]);
                        if (r < 0)
                                return r;
                        m++;
                        r = array_add(comparisons, e);
                } else {
                        r = not_compared_to_json(c, name, va ? EXPERIMENT_COMPARE_A : EXPERIMENT_COMPARE_B, &e);
                        if (r < 0)
                                return r;
                        r = array_add(not_compared, e);
                }
                if (r < 0)
                        return r;
        }

        r = stats_holm(p, m, holm);
        if (r < 0)
                return r;
        for (size_t i = 0; i < m; i++) {
                json_object *e = json_object_array_get_idx(comparisons, i);

                if ((r = json_add_double(e, "pHolm", holm[i])) < 0 ||
                    (r = json_add_bool(e, "significant", holm[i] < EXPERIMENT_COMPARE_ALPHA)) < 0)
                        return r;
        }

        r = side_to_json(&c->side[EXPERIMENT_COMPARE_A], &sa);
        if (r >= 0)
                r = side_to_json(&c->side[EXPERIMENT_COMPARE_B], &sb);
        if (r >= 0)
                r = globs_to_json(c, &globs);
        if (r < 0)
                return r;
        if ((r = json_add(o, "a", TAKE_PTR(sa))) < 0 ||
            (r = json_add(o, "b", TAKE_PTR(sb))) < 0 ||
            (r = json_add_string(o, "operation", streq(c->side[EXPERIMENT_COMPARE_A].operation, "none")
                                                         ? c->side[EXPERIMENT_COMPARE_B].operation
                                                         : c->side[EXPERIMENT_COMPARE_A].operation)) < 0 ||
            (r = json_add_string(o, "baseline", !streq(c->side[EXPERIMENT_COMPARE_A].operation,
                                                       c->side[EXPERIMENT_COMPARE_B].operation)
                                                ? (streq(c->side[EXPERIMENT_COMPARE_A].operation, "none") ? "a" : "b")
                                                : NULL)) < 0 ||
            (r = json_add_uint(o, "seed", c->options.seed)) < 0 ||
            (r = json_add_uint(o, "resamples", c->options.resamples)) < 0 ||
            (r = json_add_double(o, "level", 0.95)) < 0 ||
            (r = json_add_double(o, "alpha", EXPERIMENT_COMPARE_ALPHA)) < 0 ||
            (r = globs ? json_add(o, "counterGlobs", TAKE_PTR(globs))
                       : (json_object_object_add(o, "counterGlobs", NULL) < 0 ? -ENOMEM : 0)) < 0 ||
            (r = json_add(o, "provenanceDifferences", TAKE_PTR(diffs))) < 0 ||
            (r = json_add(o, "comparisons", TAKE_PTR(comparisons))) < 0 ||
            (r = json_add(o, "notCompared", TAKE_PTR(not_compared))) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}
