/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The experiments' varlink methods (io.memvisor.Manager, "Experiments"): adapters of the operations of
 * manager-experiment.c, as manager-dbus.c is on D-Bus. StartExperiment with more streams every step;
 * GetExperimentResults streams the records at the pace its reader reads. */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "experiment/experiment-store.h"

#define RESULTS_BATCH 64U

/* ---- StartExperiment ---- */

/* The varlink caller of StartExperiment, until its connection closes. */
typedef struct StartWaiter {
        VarlinkConnection *conn;
} StartWaiter;

static void waiter_closed(VarlinkConnection *c, void *userdata) {
        StartWaiter *w = userdata;

        (void) c;
        w->conn = varlink_connection_unref(w->conn);    /* the experiment goes on; nobody waits for it */
}

static VarlinkConnection *waiter_take(StartWaiter *w) {
        VarlinkConnection *c = TAKE_PTR(w->conn);

        if (c)
                varlink_connection_clear_close_callback(c, waiter_closed, w);
        free(w);
        return c;
}

static void waiter_free(void *userdata) {
        varlink_connection_unref(waiter_take(userdata));
}

static void waiter_done(const char *error, json_object *parameters, void *userdata) {
        _cleanup_(varlink_connection_unrefp) VarlinkConnection *c = waiter_take(userdata);

        if (!c)
                json_object_put(parameters);
        else if (error)
                (void) varlink_error(c, error, parameters);
        else
                (void) varlink_reply(c, parameters);
}

static void waiter_notify(json_object *reply, void *userdata) {
        StartWaiter *w = userdata;

        if (w->conn)
                (void) varlink_notify(w->conn, reply);
        else
                json_object_put(reply);
}

static int vl_start_experiment(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                               void *userdata) {
        Manager *m = userdata;
        ManagerCompletion completion = {};
        json_object *definition = NULL, *v = NULL;
        char caller[64];
        ManagerError e = {};
        int64_t n, *iterations = NULL;
        StartWaiter *w;
        int r;

        (void) json_object_object_get_ex(parameters, "definition", &definition);
        if (json_object_object_get_ex(parameters, "iterations", &v) && !json_object_is_type(v, json_type_null)) {
                n = json_object_get_int64(v);
                iterations = &n;
        }
        if (!(flags & VARLINK_CALL_ONEWAY)) {
                w = calloc(1, sizeof(StartWaiter));
                if (!w)
                        return -ENOMEM;
                w->conn = varlink_connection_ref(c);
                varlink_connection_set_close_callback(c, waiter_closed, w);
                completion = (ManagerCompletion) { .done = waiter_done, .free = waiter_free, .userdata = w };
        }
        (void) snprintf(caller, sizeof caller, "varlink by uid %u", (unsigned) varlink_connection_get_peer_uid(c));
        r = manager_experiment_run(m, json_get_string(parameters, "text"), definition, iterations, caller, &completion,
                                   flags & VARLINK_CALL_MORE ? waiter_notify : NULL, &e);
        return r < 0 ? manager_error_varlink_reply(c, &e, r) : 0;
}

/* ---- the varlink methods ---- */

static int vl_list_experiments(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                               void *userdata) {
        _cleanup_json_ json_object *reply = NULL;
        ManagerError e = {};
        int r;

        (void) flags;
        r = manager_experiment_list(userdata, json_get_string(parameters, "guest"), &reply, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        return varlink_reply(c, TAKE_PTR(reply));
}

static int vl_describe_experiment(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                  void *userdata) {
        _cleanup_json_ json_object *reply = NULL;
        ManagerError e = {};
        int r;

        (void) flags;
        r = manager_experiment_describe(userdata, json_get_string(parameters, "id"), &reply, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        return varlink_reply(c, TAKE_PTR(reply));
}

/* GetExperimentResults: batches of RESULTS_BATCH records, one per turn of the event loop, and only while the
 * replies queued for this client stay under RESULTS_QUEUED_MAX, so that a large experiment streams at the pace its
 * reader reads instead of being queued whole. */
#define RESULTS_QUEUED_MAX (1U * 1024U * 1024U)
#define RESULTS_RETRY_USEC (20 * USEC_PER_MSEC)

typedef struct ResultsStream {
        Manager *manager;
        VarlinkConnection *conn;
        char *id;
        ExperimentReadPosition pos;
        json_object *batch;
        sd_event_source *source;
} ResultsStream;

static ResultsStream *results_stream_free(ResultsStream *r);

static void results_on_closed(VarlinkConnection *c, void *userdata) {
        (void) c;
        results_stream_free(userdata);
}

static ResultsStream *results_stream_free(ResultsStream *r) {
        if (!r)
                return NULL;
        varlink_connection_clear_close_callback(r->conn, results_on_closed, r);
        varlink_connection_unref(r->conn);
        sd_event_source_disable_unref(r->source);
        json_object_put(r->batch);
        free(r->id);
        return mfree(r);
}

static int results_add(uint64_t index, json_object *record, void *userdata) {
        ResultsStream *r = userdata;

        (void) index;
        if (!r->batch && !(r->batch = json_object_new_array()))
                return -ENOMEM;
        if (json_object_array_add(r->batch, json_object_get(record)) < 0)
                return -ENOMEM;
        return json_object_array_length(r->batch) >= RESULTS_BATCH;   /* > 0: this batch is full */
}

static int results_send(ResultsStream *r, bool last) {
        json_object *reply = json_object_new_object();
        json_object *batch = r->batch ?: json_object_new_array();

        int k;

        r->batch = NULL;
        if (!reply || !batch || json_add(reply, "iterations", batch) < 0) {
                json_object_put(reply);
                return -ENOMEM;
        }
        /* A send over the connection's output bound closes it, which would run the close callback and free r
         * under us: the caller frees r on an error instead. */
        varlink_connection_clear_close_callback(r->conn, results_on_closed, r);
        k = last ? varlink_reply(r->conn, reply) : varlink_notify(r->conn, reply);
        if (k >= 0 && !last && !varlink_connection_is_closed(r->conn))
                varlink_connection_set_close_callback(r->conn, results_on_closed, r);
        else if (k >= 0 && !last)
                k = -ECONNRESET;
        return k;
}

static int results_error(ResultsStream *r, int error) {
        ManagerError e = {};

        varlink_connection_clear_close_callback(r->conn, results_on_closed, r);        /* as in results_send() */
        return manager_error_varlink_reply(r->conn, &e, manager_experiment_store_failed(&e, error));
}

static int results_step(sd_event_source *s, uint64_t usec, void *userdata) {
        ResultsStream *r = userdata;
        uint64_t before = r->pos.index;
        int k;

        (void) s;
        (void) usec;
        if (varlink_connection_output_queued(r->conn) > RESULTS_QUEUED_MAX)
                goto again;     /* this reader is behind: wait for it (others go on) */
        k = experiment_store_read_iterations_from(manager_experiment_store(r->manager), r->id, &r->pos, results_add, r);
        if (k < 0) {
                (void) results_error(r, k);
                results_stream_free(r);
                return 0;
        }
        if (r->pos.index - before < RESULTS_BATCH) {    /* the end: the rest goes in the final reply */
                (void) results_send(r, true);
                results_stream_free(r);
                return 0;
        }
        if (results_send(r, false) < 0) {
                results_stream_free(r);
                return 0;
        }
again:
        k = sd_event_source_set_time_relative(r->source, r->pos.index == before ? RESULTS_RETRY_USEC : 0);
        if (k >= 0)
                k = sd_event_source_set_enabled(r->source, SD_EVENT_ONESHOT);
        if (k < 0)
                results_stream_free(r);
        return 0;
}

static int vl_get_experiment_results(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                     void *userdata) {
        Manager *m = userdata;
        ResultsStream *rs;
        const ExperimentInfo *i;
        ManagerError e = {};
        int r;

        (void) flags;
        r = manager_experiment_find(m, json_get_string(parameters, "id"), &i, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        rs = calloc(1, sizeof(ResultsStream));
        if (!rs || !(rs->id = strdup(i->id))) {
                free(rs);
                return -ENOMEM;
        }
        rs->manager = m;
        r = sd_event_add_time_relative(m->event, &rs->source, CLOCK_MONOTONIC, 0, 0, results_step, rs);
        if (r < 0) {
                results_stream_free(rs);
                return r;
        }
        (void) sd_event_source_set_description(rs->source, "experiment-results");
        rs->conn = varlink_connection_ref(c);
        varlink_connection_set_close_callback(c, results_on_closed, rs);
        return 0;
}

static int vl_cancel_or_delete(VarlinkConnection *c, json_object *parameters, Manager *m, bool delete) {
        const char *id = json_get_string(parameters, "id");
        ManagerError e = {};
        char caller[64];
        int r;

        (void) snprintf(caller, sizeof caller, "varlink by uid %u", (unsigned) varlink_connection_get_peer_uid(c));
        r = delete ? manager_experiment_delete(m, id, caller, &e) : manager_experiment_cancel(m, id, caller, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        return varlink_reply(c, NULL);
}

static int vl_cancel_experiment(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                void *userdata) {
        (void) flags;
        return vl_cancel_or_delete(c, parameters, userdata, false);
}

static int vl_delete_experiment(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                void *userdata) {
        (void) flags;
        return vl_cancel_or_delete(c, parameters, userdata, true);
}

static const VarlinkField id_only[] = { { "id", VARLINK_STRING, 0 }, { NULL } };

static const VarlinkMethod experiment_methods[] = {
        { "StartExperiment", vl_start_experiment,
          (const VarlinkField[]) {
                  { "definition", VARLINK_OBJECT, VARLINK_NULLABLE },
                  { "text", VARLINK_STRING, VARLINK_NULLABLE },
                  { "iterations", VARLINK_INT, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "ListExperiments", vl_list_experiments,
          (const VarlinkField[]) { { "guest", VARLINK_STRING, VARLINK_NULLABLE }, { NULL } }, 0 },
        { "DescribeExperiment", vl_describe_experiment, id_only, 0 },
        { "GetExperimentResults", vl_get_experiment_results, id_only, VARLINK_METHOD_REQUIRES_MORE },
        { "CancelExperiment", vl_cancel_experiment, id_only, VARLINK_METHOD_PRIVILEGED },
        { "DeleteExperiment", vl_delete_experiment, id_only, VARLINK_METHOD_PRIVILEGED },
        { NULL },
};

const VarlinkMethod *manager_experiment_methods(void) {
        return experiment_methods;
}
