/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Experiments over the API (src/experiment): StartExperiment, ListExperiments, DescribeExperiment,
 * GetExperimentResults, CancelExperiment and DeleteExperiment. The store lives in STATE_DIR/experiments; each
 * running experiment is an ExperimentRun handed the guest through the lookup below (its QEMU, agent, balloon and
 * migration history), so src/experiment knows nothing of the guest table. While one runs on a guest the other
 * state-changing calls on it fail with GuestBusy (manager_experiment_check_busy()). */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-guest.h"
#include "daemon/manager-numa.h"
#include "experiment/experiment-runner.h"
#include "experiment/experiment-store.h"
#include "experiment/experiment-summary.h"
#include "vm/vm-spec.h"

#define EXPERIMENTS_DIR "experiments"
#define RESULTS_BATCH 64U
#define EXPERIMENTS_RUNNING_MAX 64U

/* A running experiment and who waits for it. */
typedef struct Running {
        ManagerExperiments *owner;
        ExperimentRun *run;
        char *guest;
        VarlinkConnection *conn;        /* a StartExperiment caller still waiting, or NULL */
        bool more;
} Running;

struct ManagerExperiments {
        Manager *manager;
        int dir_fd;
        ExperimentStore *store;
        ExperimentContext ctx;
        Running **running;
        size_t n_running;
        struct DefinitionInfo *cache;   /* definition_info() */
        size_t n_cache;
        /* the lookup's answer, valid until the next lookup */
        pid_t *tids;
        BalloonGuestConfig balloon_config;
        char *definition;
};

/* ---- the guest, as an experiment sees it ---- */

static int lookup(const char *name, void *userdata, ExperimentGuest *ret) {
        ManagerExperiments *x = userdata;
        Manager *m = x->manager;
        Vm *vm = manager_find_vm(m, name);
        ManagerGuest *g;
        const VmSpec *spec;
        pid_t *t;

        if (!vm || !manager_numa_vm_running(vm))
                return -ESRCH;
        spec = vm->running_spec ?: vm->spec;
        t = realloc(x->tids, MAX(vm->n_vcpus, (size_t) 1) * sizeof(pid_t));
        if (!t)
                return -ENOMEM;
        x->tids = t;
        for (size_t i = 0; i < vm->n_vcpus; i++)
                t[i] = vm->vcpus[i].thread_id;
        x->definition = mfree(x->definition);
        if (spec && vm_spec_to_ini(spec, &x->definition) < 0)
                return -ENOMEM;
        *ret = (ExperimentGuest) {
                .pid = vm->pid,
                .tcg = vm->accel == VM_ACCEL_TCG,
                .vcpu_threads = t,
                .n_vcpu_threads = vm->n_vcpus,
                .qmp = vm->qmp,
                .definition = x->definition,
                .qemu_binary = spec ? spec->qemu_binary : NULL,
                .hugepages = spec && spec->hugepages,
                .memory_bytes = spec ? spec->memory_bytes : 0,
        };
        if (vm->qga && qga_client_get_state(vm->qga) == QGA_STATE_READY)
                ret->agent = vm->qga;
        else
                ret->agent_reason = !vm->qga ? "the guest has no agent port ([VM] GuestAgent=no)"
                                             : qga_client_get_reason(vm->qga) ?: "the guest agent is not ready";
        g = manager_guest_find(m, name);
        if (g && g->balloon) {
                manager_balloon_guest_config(m, vm, &x->balloon_config);
                ret->balloon = g->balloon;
                ret->balloon_config = &x->balloon_config;
        }
        ret->migrations = manager_guest_get_migrations(m, name);
        if (!ret->migrations)
                return -ENOMEM;
        ret->migration_context = manager_numa_context(m);
        return 0;
}

/* ---- running experiments ---- */

static Running *running_find_guest(ManagerExperiments *x, const char *guest) {
        for (size_t i = 0; i < x->n_running; i++)
                if (streq(x->running[i]->guest, guest))
                        return x->running[i];
        return NULL;
}

static Running *running_find_id(ManagerExperiments *x, const char *id) {
        for (size_t i = 0; i < x->n_running; i++) {
                const char *rid = experiment_run_id(x->running[i]->run);

                if (rid && streq(rid, id))
                        return x->running[i];
        }
        return NULL;
}

static void on_connection_closed(VarlinkConnection *c, void *userdata) {
        Running *r = userdata;

        (void) c;
        r->conn = varlink_connection_unref(r->conn);   /* the experiment goes on; nobody waits for it */
}

static VarlinkConnection *running_steal_conn(Running *r) {
        VarlinkConnection *c = r->conn;

        varlink_connection_clear_close_callback(c, on_connection_closed, r);
        r->conn = NULL;
        return c;
}

static void running_remove(Running *r) {
        ManagerExperiments *x = r->owner;

        for (size_t i = 0; i < x->n_running; i++)
                if (x->running[i] == r) {
                        memmove(x->running + i, x->running + i + 1, (x->n_running - i - 1) * sizeof(Running *));
                        x->n_running--;
                        break;
                }
        varlink_connection_unref(running_steal_conn(r));
        free(r->guest);
        free(r);
}

static int progress_reply(Running *r, const char *id, const char *state, const char *reason, json_object *record,
                          json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int k;

        if (!o)
                return -ENOMEM;
        k = json_add_string(o, "id", id ?: "");
        if (k >= 0)
                k = json_add_string(o, "state", state);
        if (k >= 0)
                k = json_add_string(o, "reason", reason);
        if (k >= 0)
                k = json_add_uint(o, "iterationsDone", experiment_run_done(r->run));
        if (k >= 0)
                k = json_add_uint(o, "iterationsPlanned", experiment_run_planned(r->run));
        if (k >= 0 && record)
                k = json_add(o, "iteration", json_object_get(record));
        if (k < 0)
                return k;
        *ret = TAKE_PTR(o);
        return 0;
}

static void on_started(ExperimentRun *run, const char *id, void *userdata) {
        Running *r = userdata;
        json_object *reply = NULL;

        (void) run;
        if (!r->conn)
                return;
        if (progress_reply(r, id, "running", NULL, NULL, &reply) < 0)
                return;
        if (r->more)
                (void) varlink_notify(r->conn, reply);
        else {
                VarlinkConnection *conn = running_steal_conn(r);

                (void) varlink_reply(conn, reply);
                varlink_connection_unref(conn);
        }
}

static void on_iteration(ExperimentRun *run, uint64_t done, uint64_t planned, json_object *record, void *userdata) {
        Running *r = userdata;
        json_object *reply = NULL;

        (void) run;
        (void) done;
        (void) planned;
        if (!r->conn || !r->more)
                return;
        if (progress_reply(r, experiment_run_id(r->run), "running", NULL, record, &reply) < 0)
                return;
        (void) varlink_notify(r->conn, reply);
}

static void on_finished(ExperimentRun *run, const char *id, ExperimentState state, const char *reason,
                        void *userdata) {
        Running *r = userdata;
        _cleanup_(varlink_connection_unrefp) VarlinkConnection *c = running_steal_conn(r);
        json_object *reply = NULL;

        (void) run;
        if (c && !id) {
                json_object *p = json_object_new_object();

                if (p && json_add_string(p, "reason", reason ?: "failed") >= 0)
                        (void) varlink_error(c, VARLINK_ERROR(EXPERIMENT_FAILED), p);
                else
                        json_object_put(p);
        } else if (c && progress_reply(r, id, experiment_state_to_string(state), reason, NULL, &reply) >= 0)
                (void) varlink_reply(c, reply);
        manager_update_status(r->owner->manager);
        running_remove(r);
}

static const ExperimentRunCallbacks run_callbacks = {
        .started = on_started,
        .iteration = on_iteration,
        .finished = on_finished,
};

/* ---- GuestBusy ---- */

int manager_experiment_check_busy(Manager *m, const char *name, ManagerError *e) {
        Running *r;
        json_object *p;

        if (!m->experiments || !name)
                return 0;
        r = running_find_guest(m->experiments, name);
        if (!r)
                return 0;
        p = json_object_new_object();
        if (!p || json_add_string(p, "name", name) < 0 ||
            json_add_string(p, "experiment", experiment_run_id(r->run) ?: "(starting)") < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, -EBUSY, VARLINK_ERROR(GUEST_BUSY), p);
}

int manager_experiment_reply_busy(Manager *m, VarlinkConnection *c, const char *name) {
        ManagerError e = {};
        int r = manager_experiment_check_busy(m, name, &e);

        if (r == 0)
                return 0;
        r = manager_error_varlink_reply(c, &e, r);
        return r < 0 ? r : 1;
}

const char *manager_experiment_running_on(Manager *m, const char *name) {
        Running *r = m->experiments ? running_find_guest(m->experiments, name) : NULL;

        return r ? experiment_run_id(r->run) ?: "(starting)" : NULL;
}

size_t manager_experiments_running(Manager *m) {
        return m->experiments ? m->experiments->n_running : 0;
}

/* ---- StartExperiment ---- */

static int invalid_experiment(VarlinkConnection *c, const char *field, const char *reason) {
        json_object *p = json_object_new_object();

        if (!p || (field && json_add_string(p, "field", field) < 0) || json_add_string(p, "reason", reason) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, VARLINK_ERROR(INVALID_EXPERIMENT), p);
}

static int parse_definition(VarlinkConnection *c, json_object *parameters, ExperimentSpec **ret) {
        _cleanup_(experiment_spec_error_done) ExperimentSpecError e = {};
        json_object *definition = NULL, *iterations = NULL;
        const char *text = json_get_string(parameters, "text");
        ExperimentSpec *s = NULL;
        int r;

        (void) json_object_object_get_ex(parameters, "definition", &definition);
        if (json_object_is_type(definition, json_type_null))
                definition = NULL;
        if (!!definition == !!text)
                return invalid_experiment(c, NULL, "give exactly one of definition and text");
        if (text && strlen(text) > EXPERIMENT_FILE_MAX)
                return invalid_experiment(c, NULL, "the text is over 64 KiB");
        r = text ? experiment_spec_parse_ini("definition", text, &s, &e) : experiment_spec_parse_json(definition, &s, &e);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return invalid_experiment(c, e.field, e.message ?: "invalid definition");
        if (json_object_object_get_ex(parameters, "iterations", &iterations) &&
            !json_object_is_type(iterations, json_type_null)) {
                int64_t n = json_object_get_int64(iterations);

                if (n < 1 || n > EXPERIMENT_ITERATIONS_MAX || (uint64_t) n <= s->warm_up) {
                        experiment_spec_free(s);
                        return varlink_error_invalid_parameter(c, "iterations");
                }
                s->iterations = (unsigned) n;
        }
        *ret = s;
        return 1;
}

static int start_failure_reply(VarlinkConnection *c, Manager *m, const char *guest, ExperimentStartFailure *f) {
        json_object *p = json_object_new_object();
        Vm *vm;

        if (!p)
                return -ENOMEM;
        switch (f->error) {
        case EXPERIMENT_START_NOT_RUNNING:
                vm = manager_find_vm(m, guest);
                if (json_add_string(p, "name", guest) < 0 ||
                    json_add_string(p, "state", vm ? vm_state_to_string(vm->state) : "undefined") < 0)
                        break;
                return varlink_error(c, VARLINK_ERROR(INVALID_STATE), p);
        case EXPERIMENT_START_COUNTER_UNAVAILABLE:
                if (json_add_string(p, "counter", f->counter) < 0 || json_add_string(p, "reason", f->reason) < 0)
                        break;
                return varlink_error(c, VARLINK_ERROR(COUNTER_UNAVAILABLE), p);
        case EXPERIMENT_START_OK:
        case EXPERIMENT_START_INVALID:
                json_object_put(p);
                return invalid_experiment(c, f->field, f->reason ?: "invalid");
        }
        json_object_put(p);
        return -ENOMEM;
}

static int vl_start_experiment(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                               void *userdata) {
        Manager *m = userdata;
        ManagerExperiments *x = m->experiments;
        _cleanup_(experiment_start_failure_done) ExperimentStartFailure f = {};
        _cleanup_free_ char *guest = NULL;
        ExperimentSpec *spec = NULL;
        Running *run, **a;
        int r;

        r = parse_definition(c, parameters, &spec);
        if (r <= 0)
                return r;
        guest = strdup(spec->guest);
        if (!guest) {
                experiment_spec_free(spec);
                return -ENOMEM;
        }
        if (!manager_find_vm(m, spec->guest)) {
                r = manager_guest_reply_no_such_vm(c, spec->guest);
                experiment_spec_free(spec);
                return r;
        }
        r = manager_experiment_reply_busy(m, c, spec->guest);
        if (r != 0) {
                experiment_spec_free(spec);
                return r < 0 ? r : 0;
        }
        if (x->n_running >= EXPERIMENTS_RUNNING_MAX) {
                experiment_spec_free(spec);
                return invalid_experiment(c, NULL, "too many experiments run already");
        }
        run = calloc(1, sizeof(Running));
        if (!run || !(run->guest = strdup(spec->guest))) {
                free(run);
                experiment_spec_free(spec);
                return -ENOMEM;
        }
        run->owner = x;
        run->more = flags & VARLINK_CALL_MORE;
        r = experiment_run_new(&x->ctx, spec, &run_callbacks, run, &run->run, &f);      /* takes spec */
        if (r < 0) {
                free(run->guest);
                free(run);
                if (f.error != EXPERIMENT_START_OK)
                        return start_failure_reply(c, m, guest, &f);
                return r;
        }
        a = reallocarray(x->running, x->n_running + 1, sizeof(Running *));
        if (!a) {
                experiment_run_abandon(run->run);
                free(run->guest);
                free(run);
                return -ENOMEM;
        }
        x->running = a;
        x->running[x->n_running++] = run;
        if (!(flags & VARLINK_CALL_ONEWAY)) {
                run->conn = varlink_connection_ref(c);
                varlink_connection_set_close_callback(c, on_connection_closed, run);
        }
        log_info("Experiment on %s requested over varlink by uid %u.", run->guest,
                 (unsigned) varlink_connection_get_peer_uid(c));
        experiment_run_begin(run->run);        /* replies now on early errors, later otherwise */
        return 0;
}

/* ---- reading the store ---- */

/* Name=, Operation= and WarmUp= of a stored experiment, from its definition.json (read once, then kept). */
typedef struct DefinitionInfo {
        char *id;
        char *name, *operation;
        uint64_t warm_up;
} DefinitionInfo;

static void definition_cache_clear(ManagerExperiments *x) {
        for (size_t i = 0; i < x->n_cache; i++) {
                free(x->cache[i].id);
                free(x->cache[i].name);
                free(x->cache[i].operation);
        }
        x->cache = mfree(x->cache);
        x->n_cache = 0;
}

static const DefinitionInfo *definition_info(ManagerExperiments *x, const char *id) {
        _cleanup_json_ json_object *d = NULL;
        json_object *e = NULL, *p = NULL;
        DefinitionInfo *a, info = {};

        if (x->n_cache > 2 * experiment_store_size(x->store) + 16)
                definition_cache_clear(x);      /* entries of experiments the retention removed */
        for (size_t i = 0; i < x->n_cache; i++)
                if (streq(x->cache[i].id, id))
                        return &x->cache[i];
        if (experiment_store_read_document(x->store, id, EXPERIMENT_DOCUMENT_DEFINITION, &d) < 0)
                return NULL;
        (void) json_object_object_get_ex(d, "Experiment", &e);
        (void) json_object_object_get_ex(d, "Provoke", &p);
        info.id = strdup(id);
        info.name = json_get_string(e, "Name") ? strdup(json_get_string(e, "Name")) : NULL;
        info.operation = strdup(json_get_string(p, "Operation") ?: "none");
        info.warm_up = (uint64_t) MAX(json_get_int(e, "WarmUp", 0), 0);
        a = reallocarray(x->cache, x->n_cache + 1, sizeof *a);
        if (!info.id || !info.operation || !a) {
                free(info.id);
                free(info.name);
                free(info.operation);
                if (a)
                        x->cache = a;
                return NULL;
        }
        x->cache = a;
        x->cache[x->n_cache] = info;
        return &x->cache[x->n_cache++];
}

static int info_to_json(ManagerExperiments *x, const ExperimentInfo *i, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        const DefinitionInfo *d = i->error ? NULL : definition_info(x, i->id);
        int r;

        if (!o)
                return -ENOMEM;
        r = json_add_string(o, "id", i->id);
        if (r >= 0)
                r = json_add_string(o, "guest", i->guest);
        if (r >= 0 && d)
                r = json_add_string(o, "name", d->name);
        if (r >= 0 && d)
                r = json_add_string(o, "operation", d->operation);
        if (r >= 0)
                r = json_add_string(o, "state", i->state >= 0 ? experiment_state_to_string(i->state) : "damaged");
        if (r >= 0)
                r = json_add_string(o, "reason", i->reason);
        if (r >= 0)
                r = json_add_uint(o, "createdRealtimeUSec", i->created_usec);
        if (r >= 0 && i->ended_usec > 0)
                r = json_add_uint(o, "endedRealtimeUSec", i->ended_usec);
        if (r >= 0)
                r = json_add_uint(o, "iterationsDone", i->iterations_done);
        if (r >= 0)
                r = json_add_uint(o, "iterationsPlanned", i->iterations_planned);
        if (r >= 0)
                r = json_add_uint(o, "warmUp", d ? d->warm_up : 0);
        if (r >= 0)
                r = json_add_uint(o, "bytes", i->bytes);
        if (r >= 0)
                r = json_add_string(o, "error", i->error);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

static int vl_list_experiments(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                               void *userdata) {
        Manager *m = userdata;
        ManagerExperiments *x = m->experiments;
        _cleanup_json_ json_object *reply = json_object_new_object(), *a = json_object_new_array();
        const char *guest = json_get_string(parameters, "guest");
        int r;

        (void) flags;
        if (!reply || !a)
                return -ENOMEM;
        for (size_t i = 0; i < experiment_store_size(x->store); i++) {
                const ExperimentInfo *info = experiment_store_get(x->store, i);
                json_object *o;

                if (guest && !streq_ptr(info->guest, guest))
                        continue;
                r = info_to_json(x, info, &o);
                if (r < 0)
                        return r;
                if (json_object_array_add(a, o) < 0) {
                        json_object_put(o);
                        return -ENOMEM;
                }
        }
        r = json_add(reply, "experiments", TAKE_PTR(a));
        if (r < 0)
                return r;
        return varlink_reply(c, TAKE_PTR(reply));
}

static const ExperimentInfo *find_or_reply(ManagerExperiments *x, VarlinkConnection *c, json_object *parameters,
                                           int *ret) {
        const char *id = json_get_string(parameters, "id");
        const ExperimentInfo *info = id ? experiment_store_find(x->store, id) : NULL;
        json_object *p;

        *ret = 0;
        if (info)
                return info;
        p = json_object_new_object();
        if (!p || json_add_string(p, "id", id ?: "") < 0) {
                json_object_put(p);
                *ret = -ENOMEM;
                return NULL;
        }
        *ret = varlink_error(c, VARLINK_ERROR(NO_SUCH_EXPERIMENT), p);
        return NULL;
}

static int summary_add(uint64_t index, json_object *record, void *userdata) {
        (void) index;
        return experiment_summary_add(userdata, record);
}

/* The statistics: summary.json once it ended, computed from the iterations while it runs (or when the summary
 * is missing: an interrupted experiment). */
static int statistics(ManagerExperiments *x, const char *id, json_object **ret) {
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        int r;

        r = experiment_store_read_document(x->store, id, EXPERIMENT_DOCUMENT_SUMMARY, ret);
        if (r != -ENOENT)
                return r;
        r = experiment_summary_new(&s);
        if (r < 0)
                return r;
        r = experiment_store_read_iterations(x->store, id, summary_add, s);
        if (r < 0)
                return r;
        return experiment_summary_to_json(s, ret);
}

static int vl_describe_experiment(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                  void *userdata) {
        Manager *m = userdata;
        ManagerExperiments *x = m->experiments;
        _cleanup_json_ json_object *reply = json_object_new_object(), *definition = NULL, *provenance = NULL,
                                   *summary = NULL, *info = NULL;
        const ExperimentInfo *i;
        json_object *v;
        int r;

        (void) flags;
        if (!reply)
                return -ENOMEM;
        i = find_or_reply(x, c, parameters, &r);
        if (!i)
                return r;
        r = info_to_json(x, i, &info);
        if (r < 0)
                return r;
        if (i->error) {
                definition = json_object_new_object();
                provenance = json_object_new_object();
                summary = json_object_new_object();
                if (!definition || !provenance || !summary)
                        return -ENOMEM;
        } else {
                r = experiment_store_read_document(x->store, i->id, EXPERIMENT_DOCUMENT_DEFINITION, &definition);
                if (r >= 0)
                        r = experiment_store_read_document(x->store, i->id, EXPERIMENT_DOCUMENT_PROVENANCE,
                                                           &provenance);
                if (r >= 0)
                        r = statistics(x, i->id, &summary);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        json_object *p = json_object_new_object();

                        if (!p || json_add_string(p, "reason", strerror(-r)) < 0) {
                                json_object_put(p);
                                return -ENOMEM;
                        }
                        return varlink_error(c, VARLINK_ERROR(EXPERIMENT_STORE_FAILED), p);
                }
        }
        r = json_add(reply, "experiment", TAKE_PTR(info));
        if (r >= 0)
                r = json_add(reply, "definition", TAKE_PTR(definition));
        if (r >= 0)
                r = json_add(reply, "provenance", TAKE_PTR(provenance));
        if (r >= 0)
                r = json_add(reply, "statistics", json_object_object_get_ex(summary, "statistics", &v)
                                                          ? json_object_get(v) : json_object_new_array());
        if (r >= 0)
                r = json_add(reply, "unavailable", json_object_object_get_ex(summary, "unavailable", &v)
                                                           ? json_object_get(v) : json_object_new_array());
        if (r < 0)
                return r;
        return varlink_reply(c, TAKE_PTR(reply));
}

/* GetExperimentResults: batches of RESULTS_BATCH records, one per turn of the event loop, and only while the
 * replies queued for all clients stay under RESULTS_QUEUED_MAX, so that a large experiment streams at the pace its
 * reader reads instead of being queued whole. */
#define RESULTS_QUEUED_MAX (4U * 1024U * 1024U)
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

        r->batch = NULL;
        if (!reply || !batch || json_add(reply, "iterations", batch) < 0) {
                json_object_put(reply);
                return -ENOMEM;
        }
        return last ? varlink_reply(r->conn, reply) : varlink_notify(r->conn, reply);
}

static int results_error(ResultsStream *r, int error) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "reason", strerror(-error)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(r->conn, VARLINK_ERROR(EXPERIMENT_STORE_FAILED), p);
}

static int results_step(sd_event_source *s, uint64_t usec, void *userdata) {
        ResultsStream *r = userdata;
        uint64_t before = r->pos.index;
        int k;

        (void) s;
        (void) usec;
        if (varlink_server_output_queued(r->manager->varlink) > RESULTS_QUEUED_MAX)
                goto again;     /* readers are behind: wait for them */
        k = experiment_store_read_iterations_from(r->manager->experiments->store, r->id, &r->pos, results_add, r);
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
        int r;

        (void) flags;
        i = find_or_reply(m->experiments, c, parameters, &r);
        if (!i)
                return r;
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

static int vl_cancel_experiment(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                void *userdata) {
        Manager *m = userdata;
        const ExperimentInfo *i;
        Running *run;
        json_object *p;
        int r;

        (void) flags;
        i = find_or_reply(m->experiments, c, parameters, &r);
        if (!i)
                return r;
        run = running_find_id(m->experiments, i->id);
        if (!run) {
                p = json_object_new_object();
                if (!p || json_add_string(p, "id", i->id) < 0 ||
                    json_add_string(p, "state", i->state >= 0 ? experiment_state_to_string(i->state) : "damaged") < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                return varlink_error(c, VARLINK_ERROR(EXPERIMENT_NOT_RUNNING), p);
        }
        log_info("Experiment %s on %s cancelled over varlink by uid %u.", i->id, run->guest,
                 (unsigned) varlink_connection_get_peer_uid(c));
        experiment_run_cancel(run->run);        /* may end it now */
        return varlink_reply(c, NULL);
}

static int vl_delete_experiment(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                                void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ char *id = NULL;
        const ExperimentInfo *i;
        json_object *p;
        int r;

        (void) flags;
        i = find_or_reply(m->experiments, c, parameters, &r);
        if (!i)
                return r;
        id = strdup(i->id);
        if (!id)
                return -ENOMEM;
        ManagerExperiments *x = m->experiments;

        r = experiment_store_delete(x->store, id);
        if (r == -EBUSY) {
                p = json_object_new_object();
                if (!p || json_add_string(p, "id", id) < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                return varlink_error(c, VARLINK_ERROR(EXPERIMENT_RUNNING), p);
        }
        if (r < 0)
                return r;
        definition_cache_clear(x);
        log_info("Experiment %s deleted over varlink by uid %u.", id, (unsigned) varlink_connection_get_peer_uid(c));
        return varlink_reply(c, NULL);
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

/* ---- the module ---- */

int manager_experiment_start(Manager *m) {
        _cleanup_free_ char *dir = path_join(m->config.state_dir, EXPERIMENTS_DIR);
        ManagerExperiments *x;
        ExperimentStoreLimits limits = {
                .max_experiments = m->config.experiments_max,
                .max_bytes = m->config.experiments_max_bytes,
        };
        int r;

        if (!dir)
                return log_oom();
        x = calloc(1, sizeof(ManagerExperiments));
        if (!x)
                return log_oom();
        x->manager = m;
        x->dir_fd = -EBADF;
        m->experiments = x;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create %s: %m", dir);
        x->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (x->dir_fd < 0)
                return log_error_errno(errno, "Failed to open %s: %m", dir);
        r = experiment_store_open(x->dir_fd, &limits, &x->store);
        if (r < 0)
                return log_error_errno(r, "Failed to load the experiments in %s: %m", dir);
        r = experiment_store_apply_retention(x->store, NULL);
        if (r > 0)
                log_info("Removed %d old experiments over the retention bound.", r);
        x->ctx = (ExperimentContext) {
                .event = m->event,
                .root = "/",
                .store = x->store,
                .lookup = lookup,
                .userdata = x,
        };
        log_debug("%zu experiments in %s.", experiment_store_size(x->store), dir);
        return 0;
}

/* Before the guests go: a running experiment is abandoned (the store marks it interrupted at the next start). */
void manager_experiment_done(Manager *m) {
        ManagerExperiments *x = m->experiments;

        if (!x)
                return;
        while (x->n_running > 0) {
                Running *r = x->running[x->n_running - 1];

                log_notice("Experiment %s on %s interrupted: the daemon stops after %" PRIu64 " iterations.",
                           strna(experiment_run_id(r->run)), r->guest, experiment_run_done(r->run));
                experiment_run_abandon(r->run);
                running_remove(r);
        }
        free(x->running);
        experiment_store_free(x->store);
        safe_close(x->dir_fd);
        free(x->tids);
        free(x->definition);
        definition_cache_clear(x);
        m->experiments = mfree(x);
}

/* For manager-experiment-compare.c: the store, to read two experiments. */
ExperimentStore *manager_experiment_store(Manager *m) {
        return m->experiments ? m->experiments->store : NULL;
}
