/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The statistics of an experiment's iterations (see experiment-summary.h). Counters and unavailable names are
 * kept in arrays sorted by name (binary search, insertion by memmove: at most EXPERIMENT_SUMMARY_COUNTERS_MAX
 * each). Adding a record is done in two passes so that a failure leaves the summary as it was: the first checks
 * the record and the bounds and makes every allocation the record needs (new entries on the side, room in the
 * existing arrays — more room changes nothing that can be seen), the second, which cannot fail, puts it in. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "experiment/experiment-counter.h"
#include "experiment/experiment-spec.h"
#include "experiment/experiment-store.h"
#include "experiment/experiment-summary.h"
#include "stats/stats.h"

#define VALUES_INITIAL 16U

/* A counter (name, values) or an unavailable name (name, reason, iterations): one type for both arrays. */
typedef struct SummaryEntry {
        char *name;
        double *values;
        size_t n, allocated;
        char *reason;
        uint64_t iterations;
} SummaryEntry;

struct ExperimentSummary {
        char *variant;                          /* only the records of this variant of a matrix run; NULL: all */
        uint64_t iterations, warm_up;
        SummaryEntry **counters;                /* sorted by name */
        size_t n_counters, allocated_counters;
        SummaryEntry **unavailable;             /* sorted by name */
        size_t n_unavailable, allocated_unavailable;
};

static SummaryEntry *summary_entry_free(SummaryEntry *e) {
        if (!e)
                return NULL;
        free(e->name);
        free(e->values);
        free(e->reason);
        return mfree(e);
}

ExperimentSummary *experiment_summary_free(ExperimentSummary *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_counters; i++)
                summary_entry_free(s->counters[i]);
        free(s->counters);
        for (size_t i = 0; i < s->n_unavailable; i++)
                summary_entry_free(s->unavailable[i]);
        free(s->unavailable);
        free(s->variant);
        return mfree(s);
}

int experiment_summary_new(ExperimentSummary **ret) {
        ExperimentSummary *s;

        if (!ret)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

uint64_t experiment_summary_iterations(const ExperimentSummary *s) {
        return s ? s->iterations : 0;
}

uint64_t experiment_summary_warm_up(const ExperimentSummary *s) {
        return s ? s->warm_up : 0;
}

/* ---- the record ---- */

static bool int_in(json_object *v, int64_t min, int64_t max) {
        int64_t i;

        if (!json_object_is_type(v, json_type_int))
                return false;
        i = json_object_get_int64(v);   /* an unsigned value above INT64_MAX reads as INT64_MAX */
        return i >= min && i <= max;
}

static bool counter_value(json_object *v, double *ret) {
        double d;

        if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
                return false;
        d = json_object_get_double(v);  /* int64 and uint64 alike */
        if (!isfinite(d) || fabs(d) > EXPERIMENT_COUNTER_VALUE_MAX)
                return false;
        if (ret)
                *ret = d;
        return true;
}

static bool reason_is_valid(json_object *v) {
        if (!json_object_is_type(v, json_type_string))
                return false;
        return json_object_get_string_len(v) > 0 &&
               strlen(json_object_get_string(v)) == (size_t) json_object_get_string_len(v);
}

/* The member key of record: false when it is there and not of the kind, or required and absent (or null). */
static bool member(json_object *record, const char *key, json_type type, bool required, json_object **ret) {
        json_object *v = NULL;

        if (!json_object_object_get_ex(record, key, &v) || !v) {
                *ret = NULL;
                return !required;
        }
        *ret = v;
        return json_object_is_type(v, type);
}

int experiment_record_validate(json_object *record) {
        json_object *v, *counters, *unavailable;

        if (!json_object_is_type(record, json_type_object))
                return -EBADMSG;
        if (!member(record, "iteration", json_type_int, true, &v) || !int_in(v, 1, EXPERIMENT_ITERATIONS_MAX))
                return -EBADMSG;
        if (!member(record, "warmUp", json_type_boolean, true, &v))
                return -EBADMSG;
        if (!member(record, "startedRealtimeUSec", json_type_int, true, &v) || !int_in(v, 0, INT64_MAX))
                return -EBADMSG;
        if (!member(record, "durationUSec", json_type_int, false, &v) || (v && !int_in(v, 0, INT64_MAX)))
                return -EBADMSG;
        if (!member(record, "counters", json_type_object, true, &counters))
                return -EBADMSG;
        if (!member(record, "unavailable", json_type_object, false, &unavailable))
                return -EBADMSG;

        json_object_object_foreach(counters, name, value)
                if (!experiment_counter_name_is_valid(name) || !counter_value(value, NULL))
                        return -EBADMSG;
        if (unavailable) {
                json_object_object_foreach(unavailable, uname, reason)
                        if (!experiment_counter_name_is_valid(uname) || !reason_is_valid(reason))
                                return -EBADMSG;
        }
        return 0;
}

/* ---- sorted arrays of entries ---- */

/* The index of name in items[0..n-1] (sorted), or where it would go; *ret_found says which. */
static size_t entry_find(SummaryEntry **items, size_t n, const char *name, bool *ret_found) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(items[mid]->name, name);

                if (c == 0) {
                        *ret_found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_found = false;
        return lo;
}

/* Inserts entry (whose name is not there yet) into items[0..*n-1]; the room is there already. */
static void entry_insert(SummaryEntry **items, size_t *n, SummaryEntry *entry) {
        bool found;
        size_t i = entry_find(items, *n, entry->name, &found);

        memmove(items + i + 1, items + i, (*n - i) * sizeof(SummaryEntry *));
        items[i] = entry;
        (*n)++;
}

static int reserve(SummaryEntry ***items, size_t *allocated, size_t need) {
        SummaryEntry **p;
        size_t a;

        if (need <= *allocated)
                return 0;
        a = MAX(need, MIN(*allocated * 2, (size_t) EXPERIMENT_SUMMARY_COUNTERS_MAX));
        p = realloc(*items, a * sizeof(SummaryEntry *));
        if (!p)
                return -ENOMEM;
        *items = p;
        *allocated = a;
        return 0;
}

static int counter_reserve(SummaryEntry *c, size_t need) {
        double *p;
        size_t a;

        if (need <= c->allocated)
                return 0;
        a = MAX(need, MAX(c->allocated * 2, (size_t) VALUES_INITIAL));
        p = realloc(c->values, a * sizeof(double));
        if (!p)
                return -ENOMEM;
        c->values = p;
        c->allocated = a;
        return 0;
}

/* A copy of reason cut to EXPERIMENT_SUMMARY_REASON_MAX bytes, before a UTF-8 continuation byte. */
static char *reason_dup(const char *reason) {
        size_t n = strlen(reason);

        if (n > EXPERIMENT_SUMMARY_REASON_MAX) {
                n = EXPERIMENT_SUMMARY_REASON_MAX;
                while (n > 0 && ((unsigned char) reason[n] & 0xC0) == 0x80)
                        n--;
        }
        return strndup(reason, n);
}

/* ---- adding a record ---- */

/* What the first pass prepares for the second. */
typedef struct Pending {
        SummaryEntry **counters;              /* new counters */
        size_t n_counters;
        SummaryEntry **unavailable;       /* new unavailable names */
        size_t n_unavailable;
        char **reasons;                         /* the record's reasons, in its order */
        size_t n_reasons;
} Pending;

static void pending_done(Pending *p) {
        for (size_t i = 0; i < p->n_counters; i++)
                summary_entry_free(p->counters[i]);
        free(p->counters);
        for (size_t i = 0; i < p->n_unavailable; i++)
                summary_entry_free(p->unavailable[i]);
        free(p->unavailable);
        for (size_t i = 0; i < p->n_reasons; i++)
                free(p->reasons[i]);
        free(p->reasons);
}

static int prepare_counters(ExperimentSummary *s, json_object *counters, Pending *p) {
        size_t n_new = 0;
        int r;

        json_object_object_foreach(counters, name, value) {
                bool found;

                (void) value;
                (void) entry_find(s->counters, s->n_counters, name, &found);
                if (!found)
                        n_new++;
        }
        if (n_new > EXPERIMENT_SUMMARY_COUNTERS_MAX - s->n_counters)
                return -E2BIG;
        r = reserve(&s->counters, &s->allocated_counters, s->n_counters + n_new);
        if (r < 0)
                return r;
        if (n_new > 0) {
                p->counters = calloc(n_new, sizeof(SummaryEntry *));
                if (!p->counters)
                        return -ENOMEM;
        }

        json_object_object_foreach(counters, name2, value2) {
                bool found;
                size_t i = entry_find(s->counters, s->n_counters, name2, &found);
                SummaryEntry *c;

                (void) value2;
                if (found) {
                        r = counter_reserve(s->counters[i], s->counters[i]->n + 1);
                        if (r < 0)
                                return r;
                        continue;
                }
                c = calloc(1, sizeof(*c));
                if (!c)
                        return -ENOMEM;
                p->counters[p->n_counters++] = c;
                c->name = strdup(name2);
                if (!c->name)
                        return -ENOMEM;
                r = counter_reserve(c, 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int prepare_unavailable(ExperimentSummary *s, json_object *unavailable, Pending *p) {
        size_t n_new = 0, n = json_object_object_length(unavailable);
        int r;

        json_object_object_foreach(unavailable, name, reason) {
                bool found;

                (void) reason;
                (void) entry_find(s->unavailable, s->n_unavailable, name, &found);
                if (!found)
                        n_new++;
        }
        if (n_new > EXPERIMENT_SUMMARY_COUNTERS_MAX - s->n_unavailable)
                return -E2BIG;
        r = reserve(&s->unavailable, &s->allocated_unavailable, s->n_unavailable + n_new);
        if (r < 0)
                return r;
        p->reasons = calloc(n, sizeof(char *));
        if (n_new > 0)
                p->unavailable = calloc(n_new, sizeof(SummaryEntry *));
        if ((n > 0 && !p->reasons) || (n_new > 0 && !p->unavailable))
                return -ENOMEM;

        json_object_object_foreach(unavailable, name2, reason2) {
                bool found;
                SummaryEntry *u;

                p->reasons[p->n_reasons] = reason_dup(json_object_get_string(reason2));
                if (!p->reasons[p->n_reasons++])
                        return -ENOMEM;
                (void) entry_find(s->unavailable, s->n_unavailable, name2, &found);
                if (found)
                        continue;
                u = calloc(1, sizeof(*u));
                if (!u)
                        return -ENOMEM;
                p->unavailable[p->n_unavailable++] = u;
                u->name = strdup(name2);
                if (!u->name)
                        return -ENOMEM;
        }
        return 0;
}

/* The second pass: everything is allocated, nothing can fail. */
static void commit(ExperimentSummary *s, json_object *counters, json_object *unavailable, Pending *p) {
        for (size_t i = 0; i < p->n_counters; i++)
                entry_insert(s->counters, &s->n_counters, TAKE_PTR(p->counters[i]));
        p->n_counters = 0;
        for (size_t i = 0; i < p->n_unavailable; i++)
                entry_insert(s->unavailable, &s->n_unavailable, TAKE_PTR(p->unavailable[i]));
        p->n_unavailable = 0;

        json_object_object_foreach(counters, name, value) {
                bool found;
                SummaryEntry *c = s->counters[entry_find(s->counters, s->n_counters, name, &found)];

                (void) counter_value(value, &c->values[c->n++]);
        }
        if (unavailable) {
                size_t k = 0;

                json_object_object_foreach(unavailable, name2, reason) {
                        bool found;
                        SummaryEntry *u =
                                s->unavailable[entry_find(s->unavailable, s->n_unavailable, name2, &found)];

                        (void) reason;
                        free(u->reason);
                        u->reason = TAKE_PTR(p->reasons[k]);
                        k++;
                        u->iterations++;
                }
        }
}

int experiment_summary_add(ExperimentSummary *s, json_object *record) {
        _cleanup_(pending_done) Pending p = {};
        json_object *counters, *unavailable = NULL;
        int r;

        if (!s)
                return -EINVAL;
        r = experiment_record_validate(record);
        if (r < 0)
                return r;
        if (s->variant && !streq_ptr(json_get_string(record, "variant"), s->variant))
                return 0;
        if (s->iterations >= EXPERIMENT_ITERATIONS_MAX)
                return -E2BIG;

        if (json_get_bool(record, "warmUp", false)) {
                s->iterations++;
                s->warm_up++;
                return 0;
        }

        (void) json_object_object_get_ex(record, "counters", &counters);
        (void) json_object_object_get_ex(record, "unavailable", &unavailable);
        r = prepare_counters(s, counters, &p);
        if (r < 0)
                return r;
        if (unavailable) {
                r = prepare_unavailable(s, unavailable, &p);
                if (r < 0)
                        return r;
        }

        commit(s, counters, unavailable, &p);
        s->iterations++;
        return 0;
}

/* ---- output ---- */

/* A double, or null when there is none (or it does not fit a double: a standard deviation of huge values). */
static int add_double_or_null(json_object *o, const char *key, bool has, double v) {
        if (!has || !isfinite(v))
                return json_object_object_add(o, key, NULL) < 0 ? -ENOMEM : 0;
        return json_add_double(o, key, v);
}

static int statistic_to_json(const SummaryEntry *c, json_object **ret) {
        _cleanup_json_ json_object *o = NULL;
        StatsSummary st;
        int r;

        r = stats_summary(c->values, c->n, &st);
        if (r < 0)
                return r;

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "counter", c->name)) < 0 ||
            (r = json_add_string(o, "unit", experiment_counter_unit(c->name))) < 0 ||
            (r = json_add_uint(o, "n", st.n)) < 0 ||
            (r = json_add_double(o, "median", st.median)) < 0 ||
            (r = json_add_double(o, "p5", st.p5)) < 0 ||
            (r = json_add_double(o, "p95", st.p95)) < 0 ||
            (r = json_add_double(o, "mean", st.mean)) < 0 ||
            (r = add_double_or_null(o, "stddev", st.has_stddev, st.stddev)) < 0 ||
            (r = json_add_double(o, "min", st.min)) < 0 ||
            (r = json_add_double(o, "max", st.max)) < 0 ||
            (r = add_double_or_null(o, "medianCILow", st.has_median_ci, st.median_ci_low)) < 0 ||
            (r = add_double_or_null(o, "medianCIHigh", st.has_median_ci, st.median_ci_high)) < 0 ||
            (r = add_double_or_null(o, "medianCICoverage", st.has_median_ci, st.median_ci_coverage)) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int unavailable_to_json(const SummaryEntry *u, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "counter", u->name)) < 0 ||
            (r = json_add_string(o, "reason", u->reason)) < 0 ||
            (r = json_add_uint(o, "iterations", u->iterations)) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int array_add(json_object *a, json_object *e) {
        if (json_object_array_add(a, e) < 0) {
                json_object_put(e);
                return -ENOMEM;
        }
        return 0;
}

int experiment_summary_to_json(const ExperimentSummary *s, json_object **ret) {
        _cleanup_json_ json_object *o = NULL, *statistics = NULL, *unavailable = NULL;
        int r;

        if (!s || !ret)
                return -EINVAL;
        o = json_object_new_object();
        statistics = json_object_new_array();
        unavailable = json_object_new_array();
        if (!o || !statistics || !unavailable)
                return -ENOMEM;

        for (size_t i = 0; i < s->n_counters; i++) {
                json_object *e = NULL;

                r = statistic_to_json(s->counters[i], &e);
                if (r < 0)
                        return r;
                r = array_add(statistics, e);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < s->n_unavailable; i++) {
                json_object *e = NULL;

                r = unavailable_to_json(s->unavailable[i], &e);
                if (r < 0)
                        return r;
                r = array_add(unavailable, e);
                if (r < 0)
                        return r;
        }

        if ((r = json_add_uint(o, "iterations", s->iterations)) < 0 ||
            (r = json_add_uint(o, "warmUp", s->warm_up)) < 0 ||
            (r = json_add(o, "statistics", TAKE_PTR(statistics))) < 0 ||
            (r = json_add(o, "unavailable", TAKE_PTR(unavailable))) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- access for comparisons ---- */

size_t experiment_summary_n_counters(const ExperimentSummary *s) {
        return s ? s->n_counters : 0;
}

const char *experiment_summary_counter(const ExperimentSummary *s, size_t i, const double **ret_values,
                                       size_t *ret_n) {
        if (!s || i >= s->n_counters)
                return NULL;
        *ret_values = s->counters[i]->values;
        *ret_n = s->counters[i]->n;
        return s->counters[i]->name;
}

size_t experiment_summary_n_unavailable(const ExperimentSummary *s) {
        return s ? s->n_unavailable : 0;
}

const char *experiment_summary_unavailable(const ExperimentSummary *s, size_t i, const char **ret_reason) {
        if (!s || i >= s->n_unavailable)
                return NULL;
        *ret_reason = s->unavailable[i]->reason;
        return s->unavailable[i]->name;
}

static int summary_add_record(uint64_t index, json_object *record, void *userdata) {
        (void) index;
        return experiment_summary_add(userdata, record);
}

int experiment_summary_set_variant(ExperimentSummary *s, const char *variant) {
        if (!s || s->iterations > 0)
                return -EINVAL;
        return free_and_strdup(&s->variant, variant);
}

int experiment_summary_from_store(ExperimentStore *store, const char *id, const char *variant, json_object **ret) {
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        int r;

        r = experiment_summary_new(&s);
        if (r >= 0)
                r = experiment_summary_set_variant(s, variant);
        if (r >= 0)
                r = experiment_store_read_iterations(store, id, summary_add_record, s);
        if (r >= 0)
                r = experiment_summary_to_json(s, ret);
        return r;
}
