/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* CompareExperiments (src/experiment/experiment-compare.h): the two experiments' definitions, provenance and
 * iterations are read from the store on the event loop (as DescribeExperiment reads them: the store is not
 * thread-safe), checked, and the statistics (the bootstrap, seconds for many counters) computed in a worker
 * thread; the reply comes when it ends. A caller that hangs up cancels its comparison (the worker stops before
 * its next counter and is waited for). At most COMPARISONS_RUNNING_MAX comparisons run at once: more get an
 * InternalError with EBUSY. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/worker.h"
#include "daemon/manager-experiment.h"
#include "experiment/experiment-compare.h"
#include "experiment/experiment-store.h"

#define COMPARISONS_RUNNING_MAX 4U

/* The daemon has one Manager: the comparisons in flight are counted here. */
static unsigned comparisons_running = 0;

typedef struct CompareJob {
        Manager *manager;
        VarlinkConnection *conn;
        ExperimentCompare *compare;
        Worker *worker;
        json_object *result;
} CompareJob;

static void job_on_closed(VarlinkConnection *c, void *userdata);

static CompareJob *job_free(CompareJob *j) {
        if (!j)
                return NULL;
        experiment_compare_cancel(j->compare);
        if (j->worker) {
                worker_free(j->worker);         /* waits for the thread: at most the counter in flight */
                comparisons_running--;
        }
        varlink_connection_clear_close_callback(j->conn, job_on_closed, j);
        varlink_connection_unref(j->conn);
        experiment_compare_free(j->compare);
        json_object_put(j->result);
        return mfree(j);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(CompareJob *, job_free);

static void job_on_closed(VarlinkConnection *c, void *userdata) {
        CompareJob *j = userdata;

        (void) c;
        log_debug("CompareExperiments: the caller hung up, comparison cancelled.");
        job_free(j);
}

static int job_run(Worker *w, void *arg) {
        CompareJob *j = arg;

        (void) w;
        return experiment_compare_run(j->compare, &j->result);
}

static int reply_internal(VarlinkConnection *c, int error) {
        json_object *p = json_object_new_object();

        if (!p || json_add_int(p, "errno", -error) < 0 || json_add_string(p, "message", strerror(-error)) < 0) {
                json_object_put(p);
                p = NULL;
        }
        return varlink_error(c, VARLINK_ERROR(INTERNAL_ERROR), p);
}

static void job_done(Worker *w, int code, bool done, int result, void *userdata) {
        CompareJob *j = userdata;
        json_object *reply;

        (void) w;
        (void) code;
        if (!done)
                return;
        /* A send over the output bound closes the connection: its close callback must not free j under us. */
        varlink_connection_clear_close_callback(j->conn, job_on_closed, j);
        if (result < 0) {
                log_warning_errno(result, "CompareExperiments failed: %m");
                (void) reply_internal(j->conn, result);
        } else {
                reply = json_object_new_object();
                if (!reply || json_add(reply, "comparison", TAKE_PTR(j->result)) < 0) {
                        json_object_put(reply);
                        (void) reply_internal(j->conn, -ENOMEM);
                } else
                        (void) varlink_reply(j->conn, reply);
        }
        job_free(j);
}

/* ---- the call ---- */

static int invalid(VarlinkConnection *c, const char *field, const char *reason) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "field", field) < 0 || json_add_string(p, "reason", reason) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, VARLINK_ERROR(INVALID_EXPERIMENT), p);
}

static int no_such(VarlinkConnection *c, const char *id) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "id", id) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, VARLINK_ERROR(NO_SUCH_EXPERIMENT), p);
}

static int store_failed(VarlinkConnection *c, const char *id, const char *what) {
        _cleanup_free_ char *reason = NULL;
        json_object *p;

        if (asprintf(&reason, "experiment %s: %s", id, what) < 0)
                return -ENOMEM;
        p = json_object_new_object();
        if (!p || json_add_string(p, "reason", reason) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, VARLINK_ERROR(EXPERIMENT_STORE_FAILED), p);
}

typedef struct AddSide {
        ExperimentCompare *compare;
        ExperimentCompareSide side;
} AddSide;

static int add_record(uint64_t index, json_object *record, void *userdata) {
        AddSide *s = userdata;

        (void) index;
        return experiment_compare_add(s->compare, s->side, record);
}

/* A variant's provenance: the run's, with the variant's own guest and settings in place of the matrix. */
static int variant_provenance(json_object *provenance, const char *variant, json_object **ret, char **ret_reason) {
        _cleanup_json_ json_object *p = NULL;
        json_object *m, *variants, *found = NULL, *guest = NULL, *settings = NULL;
        _cleanup_free_ char *labels = NULL;
        size_t n;

        if (!json_object_object_get_ex(provenance, "matrix", &m) ||
            !json_object_object_get_ex(m, "variants", &variants) || !json_object_is_type(variants, json_type_array))
                return asprintf(ret_reason, "it is not a matrix run: it has no variant %s", variant) < 0 ? -ENOMEM
                                                                                                  : -EINVAL;
        n = json_object_array_length(variants);
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(variants, i);
                const char *l = json_get_string(e, "variant");
                char *t;

                if (l && streq(l, variant))
                        found = e;
                if (asprintf(&t, "%s%s%s", strempty(labels), labels ? ", " : "", strna(l)) < 0)
                        return -ENOMEM;
                free(labels);
                labels = t;
        }
        if (!found)
                return asprintf(ret_reason, "the matrix run has no variant %s (it has %s)", variant,
                                strempty(labels)) < 0 ? -ENOMEM : -EINVAL;
        if (json_object_deep_copy(provenance, &p, NULL) < 0)
                return -ENOMEM;
        json_object_object_del(p, "matrix");
        (void) json_object_object_get_ex(found, "guest", &guest);
        (void) json_object_object_get_ex(found, "settings", &settings);
        if (guest && json_add(p, "guest", json_object_get(guest)) < 0)
                return -ENOMEM;
        if (json_add(p, "variant", json_object_get(settings)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(p);
        return 0;
}

/* One side from the store: ref is "ID" or, for one variant of a matrix run, "ID:VARIANT". > 0 when it replied
 * (an error), 0 when loaded. */
static int load_side(VarlinkConnection *c, ExperimentStore *store, ExperimentCompare *compare,
                     ExperimentCompareSide side, const char *field, const char *ref) {
        _cleanup_json_ json_object *definition = NULL, *provenance = NULL, *vprov = NULL;
        _cleanup_free_ char *id = NULL, *reason = NULL;
        const char *colon = strchr(ref, ':'), *variant = colon ? colon + 1 : NULL;
        const ExperimentInfo *info;
        AddSide add = { compare, side };
        json_object *m;
        int r;

        id = colon ? strndup(ref, (size_t) (colon - ref)) : strdup(ref);
        if (!id)
                return -ENOMEM;
        info = experiment_store_find(store, id);
        if (!info)
                return no_such(c, id) ?: 1;
        if (info->error)
                return store_failed(c, id, info->error) ?: 1;
        r = experiment_store_read_document(store, id, EXPERIMENT_DOCUMENT_DEFINITION, &definition);
        if (r >= 0)
                r = experiment_store_read_document(store, id, EXPERIMENT_DOCUMENT_PROVENANCE, &provenance);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return store_failed(c, id, strerror(-r)) ?: 1;
        if (variant) {
                r = variant_provenance(provenance, variant, &vprov, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return invalid(c, field, reason) ?: 1;
                r = experiment_compare_set_variant(compare, side, variant);
        } else if (json_object_object_get_ex(provenance, "matrix", &m)) {
                if (asprintf(&reason, "%s is a matrix run, whose variants are never pooled: name one as %s:A, "
                             "%s:B, …", id, id, id) < 0)
                        return -ENOMEM;
                return invalid(c, field, reason) ?: 1;
        }
        if (r >= 0)
                r = experiment_compare_set(compare, side, ref, definition, vprov ?: provenance);
        if (r >= 0)
                r = experiment_store_read_iterations(store, id, add_record, &add);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return store_failed(c, id, strerror(-r)) ?: 1;
        return 0;
}

/* The counters parameter: an array of strings (the bounds are experiment_compare_prepare()'s). */
static int parse_globs(json_object *parameters, char ***ret, size_t *ret_n, const char **ret_bad) {
        json_object *a = NULL;
        _cleanup_free_ char **l = NULL;
        size_t n;

        *ret = NULL;
        *ret_n = 0;
        *ret_bad = NULL;
        if (!json_object_object_get_ex(parameters, "counters", &a) || !a)
                return 0;
        n = json_object_array_length(a);
        if (n > EXPERIMENT_COMPARE_GLOBS_MAX) {
                *ret_bad = "too many counter globs";
                return 0;
        }
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_array_get_idx(a, i);

                if (!json_object_is_type(s, json_type_string)) {
                        *ret_bad = "counters must be strings (fnmatch globs)";
                        return 0;
                }
                l[i] = (char *) json_object_get_string(s);
        }
        *ret = TAKE_PTR(l);
        *ret_n = n;
        return 0;
}

static int vl_compare_experiments(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                  void *userdata) {
        Manager *m = userdata;
        ExperimentStore *store = manager_experiment_store(m);
        _cleanup_(experiment_compare_freep) ExperimentCompare *compare = NULL;
        _cleanup_(job_freep) CompareJob *job = NULL;
        _cleanup_free_ char **globs = NULL;
        _cleanup_free_ char *reason = NULL;
        ExperimentCompareOptions o = EXPERIMENT_COMPARE_OPTIONS_DEFAULT;
        const char *a = json_get_string(parameters, "a"), *b = json_get_string(parameters, "b"), *field = NULL,
                   *bad = NULL;
        json_object *v;
        int r;

        if (!store)
                return -ENODEV;
        if (json_object_object_get_ex(parameters, "seed", &v) && v) {
                if (json_object_get_int64(v) < 0)
                        return invalid(c, "seed", "the seed must be 0 or more");
                o.seed = (uint64_t) json_object_get_int64(v);
        }
        if (json_object_object_get_ex(parameters, "resamples", &v) && v) {
                int64_t n = json_object_get_int64(v);

                if (n < 1 || n > (int64_t) EXPERIMENT_COMPARE_RESAMPLES_MAX)
                        return invalid(c, "resamples", "resamples must be 1 … 100000");
                o.resamples = (size_t) n;
        }
        r = parse_globs(parameters, &globs, &o.n_counters, &bad);
        if (r < 0)
                return r;
        if (bad)
                return invalid(c, "counters", bad);
        o.counters = globs;
        /* Before anything is read: a caller who reads no answer, or one over the bound, costs nothing. */
        if (flags & VARLINK_CALL_ONEWAY)
                return varlink_reply(c, NULL);  /* ends the call (sends nothing): nobody reads the figures */
        if (comparisons_running >= COMPARISONS_RUNNING_MAX)
                return -EBUSY;

        r = experiment_compare_new(&compare);
        if (r < 0)
                return r;
        r = load_side(c, store, compare, EXPERIMENT_COMPARE_A, "a", a);
        if (r != 0)
                return r < 0 ? r : 0;
        r = load_side(c, store, compare, EXPERIMENT_COMPARE_B, "b", b);
        if (r != 0)
                return r < 0 ? r : 0;
        r = experiment_compare_prepare(compare, &o, &field, &reason);
        if (r == -EINVAL || r == -E2BIG)
                return invalid(c, field, reason);
        if (r < 0)
                return r;
        job = calloc(1, sizeof(*job));
        if (!job)
                return -ENOMEM;
        job->manager = m;
        job->compare = TAKE_PTR(compare);
        r = worker_start(m->event, "experiment-compare", job_run, job, job_done, job, &job->worker);
        if (r < 0)
                return r;
        comparisons_running++;
        job->conn = varlink_connection_ref(c);
        varlink_connection_set_close_callback(c, job_on_closed, job);
        log_debug("CompareExperiments %s against %s (seed %" PRIu64 ", %zu resamples) by uid %u.", a, b, o.seed,
                  o.resamples, (unsigned) varlink_connection_get_peer_uid(c));
        TAKE_PTR(job);
        return 0;
}

static const VarlinkMethod compare_methods[] = {
        { "CompareExperiments", vl_compare_experiments,
          (const VarlinkField[]) {
                  { "a", VARLINK_STRING, 0 },
                  { "b", VARLINK_STRING, 0 },
                  { "counters", VARLINK_ARRAY, VARLINK_NULLABLE },
                  { "seed", VARLINK_INT, VARLINK_NULLABLE },
                  { "resamples", VARLINK_INT, VARLINK_NULLABLE },
                  { NULL } },
          0 },
        { NULL },
};

const VarlinkMethod *manager_experiment_compare_methods(void) {
        return compare_methods;
}
