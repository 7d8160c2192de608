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

struct ManagerCompareJob {
        ExperimentCompare *compare;
        Worker *worker;
        json_object *result;
        ManagerCompletion completion;
};

static ManagerCompareJob *job_free(ManagerCompareJob *j) {
        if (!j)
                return NULL;
        experiment_compare_cancel(j->compare);
        if (j->worker) {
                worker_free(j->worker);         /* waits for the thread: at most the counter in flight */
                comparisons_running--;
        }
        manager_completion_drop(&j->completion);
        experiment_compare_free(j->compare);
        json_object_put(j->result);
        return mfree(j);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(ManagerCompareJob *, job_free);

void manager_experiment_compare_cancel(ManagerCompareJob *j) {
        if (!j)
                return;
        log_debug("CompareExperiments: the caller went away, comparison cancelled.");
        job_free(j);
}

static int job_run(Worker *w, void *arg) {
        ManagerCompareJob *j = arg;

        (void) w;
        return experiment_compare_run(j->compare, &j->result);
}

static json_object *internal_error(int error) {
        json_object *p = json_object_new_object();

        if (!p || json_add_int(p, "errno", -error) < 0 || json_add_string(p, "message", strerror(-error)) < 0) {
                json_object_put(p);
                return NULL;
        }
        return p;
}

static void job_done(Worker *w, int code, bool done, int result, void *userdata) {
        ManagerCompareJob *j = userdata;
        ManagerCompletion completion;
        json_object *reply;

        (void) w;
        (void) code;
        if (!done)
                return;
        /* The completion goes first: what it does with its caller (a reply that closes the connection) must not
         * find the job still there. */
        completion = j->completion;
        j->completion = (ManagerCompletion) {};
        if (result < 0) {
                log_warning_errno(result, "CompareExperiments failed: %m");
                reply = NULL;
        } else {
                reply = json_object_new_object();
                if (reply && json_add(reply, "comparison", TAKE_PTR(j->result)) < 0) {
                        json_object_put(reply);
                        reply = NULL;
                }
                if (!reply)
                        result = -ENOMEM;
        }
        job_free(j);
        if (result < 0)
                manager_completion_finish(&completion, VARLINK_ERROR(INTERNAL_ERROR), internal_error(result));
        else
                manager_completion_finish(&completion, NULL, reply);
}

/* ---- the call ---- */

static int invalid(ManagerError *e, const char *field, const char *reason) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "field", field) < 0 || json_add_string(p, "reason", reason) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, -EINVAL, VARLINK_ERROR(INVALID_EXPERIMENT), p);
}

static int no_such(ManagerError *e, const char *id) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "id", id) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, -ESRCH, VARLINK_ERROR(NO_SUCH_EXPERIMENT), p);
}

static int store_failed(ManagerError *e, const char *id, const char *what) {
        _cleanup_free_ char *reason = NULL;
        json_object *p;

        if (asprintf(&reason, "experiment %s: %s", id, what) < 0)
                return -ENOMEM;
        p = json_object_new_object();
        if (!p || json_add_string(p, "reason", reason) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, -EIO, VARLINK_ERROR(EXPERIMENT_STORE_FAILED), p);
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

/* One side from the store: ref is "ID" or, for one variant of a matrix run, "ID:VARIANT". 0 when loaded, else
 * the error (in *c for the caller's). */
static int load_side(ManagerError *c, ExperimentStore *store, ExperimentCompare *compare,
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
                return no_such(c, id);
        if (info->error)
                return store_failed(c, id, info->error);
        r = experiment_store_read_document(store, id, EXPERIMENT_DOCUMENT_DEFINITION, &definition);
        if (r >= 0)
                r = experiment_store_read_document(store, id, EXPERIMENT_DOCUMENT_PROVENANCE, &provenance);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return store_failed(c, id, strerror(-r));
        if (variant) {
                r = variant_provenance(provenance, variant, &vprov, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return invalid(c, field, reason);
                r = experiment_compare_set_variant(compare, side, variant);
        } else if (json_object_object_get_ex(provenance, "matrix", &m)) {
                if (asprintf(&reason, "%s is a matrix run, whose variants are never pooled: name one as %s:A, "
                             "%s:B, …", id, id, id) < 0)
                        return -ENOMEM;
                return invalid(c, field, reason);
        }
        if (r >= 0)
                r = experiment_compare_set(compare, side, ref, definition, vprov ?: provenance);
        if (r >= 0)
                r = experiment_store_read_iterations(store, id, add_record, &add);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return store_failed(c, id, strerror(-r));
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

int manager_experiment_compare(Manager *m, const char *a, const char *b, const ExperimentCompareOptions *o,
                               const char *caller, ManagerCompletion *completion, ManagerCompareJob **ret_job,
                               ManagerError *e) {
        _cleanup_(experiment_compare_freep) ExperimentCompare *compare = NULL;
        _cleanup_(job_freep) ManagerCompareJob *job = NULL;
        ExperimentStore *store = manager_experiment_store(m);
        _cleanup_free_ char *reason = NULL;
        const char *field = NULL;
        int r;

        if (!store) {
                manager_completion_drop(completion);
                return -ENODEV;
        }
        job = calloc(1, sizeof(*job));
        if (!job) {
                manager_completion_drop(completion);
                return -ENOMEM;
        }
        job->completion = *completion;  /* dropped with the job when it does not start */
        *completion = (ManagerCompletion) {};
        if (comparisons_running >= COMPARISONS_RUNNING_MAX)
                return -EBUSY;
        r = experiment_compare_new(&compare);
        if (r >= 0)
                r = load_side(e, store, compare, EXPERIMENT_COMPARE_A, "a", a);
        if (r >= 0)
                r = load_side(e, store, compare, EXPERIMENT_COMPARE_B, "b", b);
        if (r >= 0) {
                r = experiment_compare_prepare(compare, o, &field, &reason);
                if (r == -EINVAL || r == -E2BIG)
                        return invalid(e, field, reason);
        }
        if (r < 0)
                return r;
        job->compare = TAKE_PTR(compare);
        r = worker_start(m->event, "experiment-compare", job_run, job, job_done, job, &job->worker);
        if (r < 0)
                return r;
        comparisons_running++;
        log_debug("CompareExperiments %s against %s (seed %" PRIu64 ", %zu resamples) by %s.", a, b, o->seed,
                  o->resamples, strna(caller));
        if (ret_job)
                *ret_job = job;
        TAKE_PTR(job);
        return 0;
}

/* ---- varlink ---- */

typedef struct VarlinkCompare {
        VarlinkConnection *conn;
        ManagerCompareJob *job;
} VarlinkCompare;

static void vl_compare_on_closed(VarlinkConnection *c, void *userdata);

static void vl_compare_free(void *userdata) {
        VarlinkCompare *v = userdata;

        varlink_connection_clear_close_callback(v->conn, vl_compare_on_closed, v);
        varlink_connection_unref(v->conn);
        free(v);
}

static void vl_compare_on_closed(VarlinkConnection *c, void *userdata) {
        VarlinkCompare *v = userdata;

        (void) c;
        manager_experiment_compare_cancel(v->job);      /* drops its completion: v goes with it */
}

static void vl_compare_done(const char *error, json_object *parameters, void *userdata) {
        VarlinkCompare *v = userdata;

        /* A send over the output bound closes the connection: its close callback must not come back here. */
        varlink_connection_clear_close_callback(v->conn, vl_compare_on_closed, v);
        if (error)
                (void) varlink_error(v->conn, error, parameters);
        else
                (void) varlink_reply(v->conn, parameters);
        vl_compare_free(v);
}

static int vl_invalid(VarlinkConnection *c, const char *field, const char *reason) {
        ManagerError e = {};
        int r = invalid(&e, field, reason);

        return manager_error_varlink_reply(c, &e, r);
}

static int vl_compare_experiments(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                  void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ char **globs = NULL;
        _cleanup_free_ char *caller = NULL;
        ExperimentCompareOptions o = EXPERIMENT_COMPARE_OPTIONS_DEFAULT;
        const char *a = json_get_string(parameters, "a"), *b = json_get_string(parameters, "b"), *bad = NULL;
        ManagerCompletion completion;
        ManagerError e = {};
        VarlinkCompare *v;
        json_object *val;
        int r;

        if (json_object_object_get_ex(parameters, "seed", &val) && val) {
                if (json_object_get_int64(val) < 0)
                        return vl_invalid(c, "seed", "the seed must be 0 or more");
                o.seed = (uint64_t) json_object_get_int64(val);
        }
        if (json_object_object_get_ex(parameters, "resamples", &val) && val) {
                int64_t n = json_object_get_int64(val);

                if (n < 1 || n > (int64_t) EXPERIMENT_COMPARE_RESAMPLES_MAX)
                        return vl_invalid(c, "resamples", "resamples must be 1 … 100000");
                o.resamples = (size_t) n;
        }
        r = parse_globs(parameters, &globs, &o.n_counters, &bad);
        if (r < 0)
                return r;
        if (bad)
                return vl_invalid(c, "counters", bad);
        o.counters = globs;
        /* Before anything is read: a caller who reads no answer, or one over the bound, costs nothing. */
        if (flags & VARLINK_CALL_ONEWAY)
                return varlink_reply(c, NULL);  /* ends the call (sends nothing): nobody reads the figures */

        v = calloc(1, sizeof(VarlinkCompare));
        if (!v)
                return -ENOMEM;
        v->conn = varlink_connection_ref(c);
        completion = (ManagerCompletion) { .done = vl_compare_done, .free = vl_compare_free, .userdata = v };
        if (asprintf(&caller, "varlink uid %u", (unsigned) varlink_connection_get_peer_uid(c)) < 0)
                caller = NULL;
        r = manager_experiment_compare(m, a, b, &o, caller, &completion, &v->job, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);   /* v went with the completion */
        varlink_connection_set_close_callback(c, vl_compare_on_closed, v);
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
