/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Experiments over the API (src/experiment): StartExperiment, ListExperiments, DescribeExperiment,
 * GetExperimentResults, CancelExperiment and DeleteExperiment. The store lives in STATE_DIR/experiments; each
 * running experiment is an ExperimentRun handed the guest through the lookup below (its QEMU, agent, balloon and
 * migration history), so src/experiment knows nothing of the guest table. While one runs on a guest the other
 * state-changing calls on it fail with GuestBusy (manager_experiment_check_busy()). The operations here are
 * shared by the transports: manager-experiment-varlink.c adapts them to varlink, manager-dbus.c to D-Bus. */

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
#define EXPERIMENTS_RUNNING_MAX 64U

/* A running experiment and who waits for it. */
typedef struct Running {
        ManagerExperiments *owner;
        ExperimentRun *run;
        char *guest;
        ManagerCompletion completion;   /* the StartExperiment caller still waiting, or none */
        ManagerExperimentNotify notify; /* set: each step goes there, the completion gets the end */
} Running;

#define STATS_CACHE_SIZE 8U

struct ManagerExperiments {
        Manager *manager;
        int dir_fd;
        ExperimentStore *store;
        ExperimentContext ctx;
        Running **running;
        size_t n_running;
        struct DefinitionInfo *cache;   /* definition_info() */
        size_t n_cache;
        /* statistics(): the last ones computed without a summary.json (a running or an interrupted experiment),
         * by id and the iterations they cover, so that repeated DescribeExperiment calls do not redo them */
        struct {
                char *id;
                uint64_t iterations;
                json_object *summary;
        } stats_cache[STATS_CACHE_SIZE];
        size_t stats_cache_next;
        /* the lookup's answer, valid until the next lookup */
        pid_t *tids;
        BalloonGuestConfig balloon_config;
        char *definition;
        uint64_t ended[_EXPERIMENT_STATE_MAX];  /* since the daemon started, by state (the metrics) */
        MetricsExperimentGuest *metrics_guests; /* manager_experiment_metrics()' answer */
        ExperimentRestarts *restarts;           /* matrix runs' restarts */
        const char *own_call;                   /* the guest of an experiment's own call in progress: not busy */
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
        if (spec && spec->confidential != VM_CONFIDENTIAL_NO)
                ret->private_memory = "it is confidential (Confidential=): its private memory cannot be reclaimed "
                                      "through the balloon or virtio-mem or moved between host nodes";
        if (spec && spec->hotplug_bytes > 0) {
                ret->hotplug_bytes = spec->hotplug_bytes;
                ret->hotplug_block_bytes = vm_spec_hotplug_block_size(spec);
        }
        if (spec)
                return manager_numa_guest_backend_sizes(spec, ret->backend_sizes, &ret->n_backends);
        return 0;
}

static int hotplug(const char *guest, uint64_t size_bytes, bool wait, uint64_t timeout_usec, ExperimentHotplugDone done,
                   void *done_userdata, void *userdata, void **ret_handle, char **ret_reason) {
        ManagerExperiments *x = userdata;
        int r;

        x->own_call = guest;    /* the experiment's own step: its guest is not busy for it */
        r = manager_experiment_hotplug(x->manager, guest, size_bytes, wait, timeout_usec, done, done_userdata,
                                       ret_handle, ret_reason);
        x->own_call = NULL;
        return r;
}

static void hotplug_cancel(void *handle, void *userdata) {
        manager_experiment_hotplug_cancel(handle);
}

static int restart(const char *guest, const char *label, const char *const *names, const char *const *values,
                   size_t n, bool agent, uint64_t timeout_usec, ExperimentRestartDone done, void *done_userdata,
                   void *userdata, void **ret_handle) {
        ManagerExperiments *x = userdata;

        return experiment_restart_start(x->restarts, guest, label, names, values, n, agent, timeout_usec, done,
                                        done_userdata, ret_handle);
}

static void restart_cancel(void *handle, void *userdata) {
        ManagerExperiments *x = userdata;

        experiment_restart_cancel(x->restarts, handle);
}

static void restore(const char *guest, void *userdata) {
        ManagerExperiments *x = userdata;

        experiment_restart_restore(x->restarts, guest);
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

static void running_remove(Running *r) {
        ManagerExperiments *x = r->owner;

        for (size_t i = 0; i < x->n_running; i++)
                if (x->running[i] == r) {
                        memmove(x->running + i, x->running + i + 1, (x->n_running - i - 1) * sizeof(Running *));
                        x->n_running--;
                        break;
                }
        manager_completion_drop(&r->completion);
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

/* Every experiment's steps, whoever started it, as D-Bus signals. */
static void progress_signal(Running *r, const char *state, const char *reason) {
        const char *id = experiment_run_id(r->run);

        if (id)
                manager_dbus_experiment_progress(r->owner->manager, id, r->guest, experiment_run_done(r->run),
                                                 experiment_run_planned(r->run), state, reason);
}

static void on_started(ExperimentRun *run, const char *id, void *userdata) {
        Running *r = userdata;
        json_object *reply = NULL;

        (void) run;
        progress_signal(r, "running", NULL);
        if (!manager_completion_pending(&r->completion))
                return;
        if (progress_reply(r, id, "running", NULL, NULL, &reply) < 0)
                return;
        if (r->notify)
                r->notify(reply, r->completion.userdata);
        else
                manager_completion_finish(&r->completion, NULL, reply);
}

static void on_iteration(ExperimentRun *run, uint64_t done, uint64_t planned, json_object *record, void *userdata) {
        Running *r = userdata;
        json_object *reply = NULL;
        ManagerGuest *g;

        (void) run;
        (void) done;
        (void) planned;
        if (manager_guest_get(r->owner->manager, r->guest, &g) >= 0)
                g->experiment_iterations++;
        progress_signal(r, "running", NULL);
        if (!manager_completion_pending(&r->completion) || !r->notify)
                return;
        if (progress_reply(r, experiment_run_id(r->run), "running", NULL, record, &reply) < 0)
                return;
        r->notify(reply, r->completion.userdata);
}

static void on_finished(ExperimentRun *run, const char *id, ExperimentState state, const char *reason,
                        void *userdata) {
        Running *r = userdata;
        json_object *reply = NULL;

        (void) run;
        if (state >= 0 && state < _EXPERIMENT_STATE_MAX)
                r->owner->ended[state]++;
        if (manager_completion_pending(&r->completion) && !id) {
                json_object *p = json_object_new_object();

                if (p && json_add_string(p, "reason", reason ?: "failed") >= 0)
                        manager_completion_finish(&r->completion, VARLINK_ERROR(EXPERIMENT_FAILED), p);
                else
                        json_object_put(p);
        } else if (manager_completion_pending(&r->completion) &&
                   progress_reply(r, id, experiment_state_to_string(state), reason, NULL, &reply) >= 0)
                manager_completion_finish(&r->completion, NULL, reply);
        progress_signal(r, experiment_state_to_string(state), reason);
        manager_update_status(r->owner->manager);
        running_remove(r);      /* drops a completion still pending (out of memory above) */
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

        if (!m->experiments || !name || streq_ptr(m->experiments->own_call, name))
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

int manager_experiment_metrics(Manager *m, MetricsExperiments *ret) {
        ManagerExperiments *x = m->experiments;
        MetricsExperimentGuest *t;

        *ret = (MetricsExperiments) {};
        if (!x || !x->store)
                return 0;
        t = reallocarray(x->metrics_guests, MAX(m->guests.n_vms, (size_t) 1), sizeof(MetricsExperimentGuest));
        if (!t)
                return -ENOMEM;
        x->metrics_guests = t;
        for (size_t i = 0; i < m->guests.n_vms; i++) {
                const char *name = m->guests.vms[i]->name;
                const ManagerGuest *g = manager_guest_find(m, name);

                t[i] = (MetricsExperimentGuest) { name, g ? g->experiment_iterations : 0 };
        }
        *ret = (MetricsExperiments) {
                .enabled = true,
                .running = x->n_running,
                .completed = x->ended[EXPERIMENT_COMPLETED],
                .failed = x->ended[EXPERIMENT_FAILED],
                .cancelled = x->ended[EXPERIMENT_CANCELLED],
                .stored = experiment_store_size(x->store),
                .stored_bytes = experiment_store_bytes(x->store),
                .guests = t,
                .n_guests = m->guests.n_vms,
        };
        return 0;
}

/* ---- StartExperiment ---- */

static int invalid_experiment(ManagerError *e, const char *field, const char *reason) {
        json_object *p = json_object_new_object();

        if (!p || (field && json_add_string(p, "field", field) < 0) || json_add_string(p, "reason", reason) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, -EINVAL, VARLINK_ERROR(INVALID_EXPERIMENT), p);
}

static int parse_definition(const char *text, json_object *definition, const int64_t *iterations,
                            ExperimentSpec **ret, ManagerError *e) {
        _cleanup_(experiment_spec_error_done) ExperimentSpecError pe = {};
        ExperimentSpec *s = NULL;
        int r;

        if (json_object_is_type(definition, json_type_null))
                definition = NULL;
        if (!!definition == !!text)
                return invalid_experiment(e, NULL, "give exactly one of definition and text");
        if (text && strlen(text) > EXPERIMENT_FILE_MAX)
                return invalid_experiment(e, NULL, "the text is over 64 KiB");
        r = text ? experiment_spec_parse_ini("definition", text, &s, &pe)
                 : experiment_spec_parse_json(definition, &s, &pe);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return invalid_experiment(e, pe.field, pe.message ?: "invalid definition");
        if (iterations) {
                if (*iterations < 1 || *iterations > EXPERIMENT_ITERATIONS_MAX) {
                        experiment_spec_free(s);
                        return manager_error_invalid_parameter(e, "iterations");
                }
                s->iterations = (unsigned) *iterations;
                /* Checked again with the new count: WarmUp= below it, a matrix run's whole size. */
                r = experiment_spec_validate(s, &pe);
                if (r < 0) {
                        experiment_spec_free(s);
                        if (r == -ENOMEM)
                                return r;
                        return invalid_experiment(e, "iterations", pe.message ?: "invalid iterations");
                }
        }
        *ret = s;
        return 0;
}

static int start_failure(Manager *m, const char *guest, ExperimentStartFailure *f, ManagerError *e) {
        json_object *p;
        Vm *vm;

        switch (f->error) {
        case EXPERIMENT_START_NOT_RUNNING:
                vm = manager_find_vm(m, guest);
                return manager_guest_fail(e, -ESRCH, VARLINK_ERROR(INVALID_STATE), guest,
                                          vm ? vm_state_to_string(vm->state) : "undefined");
        case EXPERIMENT_START_COUNTER_UNAVAILABLE:
                p = json_object_new_object();
                if (!p || json_add_string(p, "counter", f->counter) < 0 ||
                    json_add_string(p, "reason", f->reason) < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                return manager_error_set(e, -EOPNOTSUPP, VARLINK_ERROR(COUNTER_UNAVAILABLE), p);
        case EXPERIMENT_START_OK:
        case EXPERIMENT_START_INVALID:
                break;
        }
        return invalid_experiment(e, f->field, f->reason ?: "invalid");
}

int manager_experiment_run(Manager *m, const char *text, json_object *definition, const int64_t *iterations,
                           const char *caller, ManagerCompletion *completion, ManagerExperimentNotify notify,
                           ManagerError *e) {
        ManagerExperiments *x = m->experiments;
        _cleanup_(experiment_start_failure_done) ExperimentStartFailure f = {};
        ExperimentSpec *spec = NULL;
        Running *run = NULL, **a;
        int r;

        r = parse_definition(text, definition, iterations, &spec, e);
        if (r < 0)
                goto fail;
        if (!manager_find_vm(m, spec->guest)) {
                r = manager_guest_fail(e, -ENOENT, VARLINK_ERROR(NO_SUCH_VM), spec->guest, NULL);
                goto fail;
        }
        r = manager_experiment_check_busy(m, spec->guest, e);
        if (r < 0)
                goto fail;
        if (x->n_running >= EXPERIMENTS_RUNNING_MAX) {
                r = invalid_experiment(e, NULL, "too many experiments run already");
                goto fail;
        }
        run = calloc(1, sizeof(Running));
        if (!run || !(run->guest = strdup(spec->guest))) {
                r = -ENOMEM;
                goto fail;
        }
        run->owner = x;
        r = experiment_run_new(&x->ctx, TAKE_PTR(spec), &run_callbacks, run, &run->run, &f);
        if (r < 0) {
                if (f.error != EXPERIMENT_START_OK)
                        r = start_failure(m, run->guest, &f, e);
                goto fail;
        }
        a = reallocarray(x->running, x->n_running + 1, sizeof(Running *));
        if (!a) {
                experiment_run_abandon(run->run);
                r = -ENOMEM;
                goto fail;
        }
        x->running = a;
        x->running[x->n_running++] = run;
        run->completion = *completion;
        *completion = (ManagerCompletion) {};
        run->notify = notify;
        log_info("Experiment on %s requested over %s.", run->guest, caller);
        experiment_run_begin(run->run);        /* answers now on early errors, later otherwise */
        return 0;

fail:
        experiment_spec_free(spec);
        if (run)
                free(run->guest);
        free(run);
        manager_completion_drop(completion);
        return r;
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

int manager_experiment_list(Manager *m, const char *guest, json_object **ret_reply, ManagerError *e) {
        ManagerExperiments *x = m->experiments;
        _cleanup_json_ json_object *reply = json_object_new_object(), *a = json_object_new_array();
        int r;

        (void) e;
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
        *ret_reply = TAKE_PTR(reply);
        return 0;
}

static int find_experiment(ManagerExperiments *x, const char *id, const ExperimentInfo **ret, ManagerError *e) {
        const ExperimentInfo *info = id ? experiment_store_find(x->store, id) : NULL;
        json_object *p;

        if (info) {
                *ret = info;
                return 0;
        }
        p = json_object_new_object();
        if (!p || json_add_string(p, "id", id ?: "") < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, -ENOENT, VARLINK_ERROR(NO_SUCH_EXPERIMENT), p);
}

int manager_experiment_find(Manager *m, const char *id, const ExperimentInfo **ret, ManagerError *e) {
        return find_experiment(m->experiments, id, ret, e);
}

ExperimentStore *manager_experiment_store(Manager *m) {
        return m->experiments->store;
}

int manager_experiment_store_failed(ManagerError *e, int error) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "reason", strerror(-error)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, error, VARLINK_ERROR(EXPERIMENT_STORE_FAILED), p);
}

/* The statistics: kept by the run while it runs, summary.json once it ended, read back from the iterations when
 * there is no summary (an interrupted experiment, or one whose summary could not be written). */
static void stats_cache_clear(ManagerExperiments *x) {
        for (size_t i = 0; i < STATS_CACHE_SIZE; i++) {
                free(x->stats_cache[i].id);
                json_object_put(x->stats_cache[i].summary);
                x->stats_cache[i].id = NULL;
                x->stats_cache[i].summary = NULL;
        }
}

static int statistics_computed(ManagerExperiments *x, const char *id, Running *running, json_object **ret) {
        const ExperimentInfo *info = experiment_store_find(x->store, id);
        uint64_t n = info ? info->iterations_done : 0;
        size_t k;
        char *copy;
        int r;

        for (size_t i = 0; i < STATS_CACHE_SIZE; i++)
                if (x->stats_cache[i].id && streq(x->stats_cache[i].id, id) && x->stats_cache[i].iterations == n) {
                        *ret = json_object_get(x->stats_cache[i].summary);
                        return 0;
                }
        if (running)
                r = experiment_run_statistics(running->run, ret);
        else {
                _cleanup_json_ json_object *provenance = NULL;

                r = experiment_store_read_document(x->store, id, EXPERIMENT_DOCUMENT_PROVENANCE, &provenance);
                if (r >= 0)
                        r = experiment_matrix_summary_from_store(x->store, id, provenance, ret);
                if (r == -ENOENT)
                        r = experiment_summary_from_store(x->store, id, NULL, ret);
        }
        if (r < 0)
                return r;
        copy = strdup(id);
        if (!copy)
                return 0;       /* not kept: computed again next time */
        k = x->stats_cache_next++ % STATS_CACHE_SIZE;
        free(x->stats_cache[k].id);
        json_object_put(x->stats_cache[k].summary);
        x->stats_cache[k].id = copy;
        x->stats_cache[k].iterations = n;
        x->stats_cache[k].summary = json_object_get(*ret);
        return 0;
}

static int statistics(ManagerExperiments *x, const char *id, json_object **ret) {
        Running *running = running_find_id(x, id);
        int r;

        if (!running) {
                r = experiment_store_read_document(x->store, id, EXPERIMENT_DOCUMENT_SUMMARY, ret);
                if (r != -ENOENT)
                        return r;
        }
        return statistics_computed(x, id, running, ret);
}

int manager_experiment_describe(Manager *m, const char *id, json_object **ret_reply, ManagerError *e) {
        ManagerExperiments *x = m->experiments;
        _cleanup_json_ json_object *reply = json_object_new_object(), *definition = NULL, *provenance = NULL,
                                   *summary = NULL, *info = NULL;
        const ExperimentInfo *i;
        json_object *v;
        int r;

        if (!reply)
                return -ENOMEM;
        r = find_experiment(x, id, &i, e);
        if (r < 0)
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
                if (r < 0)
                        return manager_experiment_store_failed(e, r);
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
        if (r >= 0 && json_object_object_get_ex(summary, "variants", &v))
                r = json_add(reply, "variants", json_object_get(v));
        if (r < 0)
                return r;
        *ret_reply = TAKE_PTR(reply);
        return 0;
}

int manager_experiment_cancel(Manager *m, const char *id, const char *caller, ManagerError *e) {
        const ExperimentInfo *i;
        Running *run;
        json_object *p;
        int r;

        r = find_experiment(m->experiments, id, &i, e);
        if (r < 0)
                return r;
        run = running_find_id(m->experiments, i->id);
        if (!run) {
                p = json_object_new_object();
                if (!p || json_add_string(p, "id", i->id) < 0 ||
                    json_add_string(p, "state", i->state >= 0 ? experiment_state_to_string(i->state) : "damaged") < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                return manager_error_set(e, -ESRCH, VARLINK_ERROR(EXPERIMENT_NOT_RUNNING), p);
        }
        log_info("Experiment %s on %s cancelled over %s.", i->id, run->guest, caller);
        experiment_run_cancel(run->run);        /* may end it now */
        return 0;
}

int manager_experiment_delete(Manager *m, const char *id, const char *caller, ManagerError *e) {
        ManagerExperiments *x = m->experiments;
        _cleanup_free_ char *copy = NULL;
        const ExperimentInfo *i;
        json_object *p;
        int r;

        r = find_experiment(x, id, &i, e);
        if (r < 0)
                return r;
        copy = strdup(i->id);
        if (!copy)
                return -ENOMEM;
        r = experiment_store_delete(x->store, copy);
        if (r == -EBUSY) {
                p = json_object_new_object();
                if (!p || json_add_string(p, "id", copy) < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                return manager_error_set(e, -EBUSY, VARLINK_ERROR(EXPERIMENT_RUNNING), p);
        }
        if (r < 0)
                return r;
        definition_cache_clear(x);
        stats_cache_clear(x);
        log_info("Experiment %s deleted over %s.", copy, caller);
        return 0;
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
                .restart = restart,
                .restart_cancel = restart_cancel,
                .restore = restore,
                .hotplug = hotplug,
                .hotplug_cancel = hotplug_cancel,
                .userdata = x,
        };
        r = experiment_restarts_new(m, &x->restarts);
        if (r < 0)
                return log_oom();
        log_debug("%zu experiments in %s.", experiment_store_size(x->store), dir);
        return 0;
}

/* Before the guests go: a running experiment is abandoned (the store marks it interrupted at the next start). */
void manager_experiment_interrupt_all(Manager *m) {
        ManagerExperiments *x = m->experiments;

        while (x && x->n_running > 0) {
                Running *r = x->running[x->n_running - 1];

                log_notice("Experiment %s on %s interrupted: the daemon stops after %" PRIu64 " iterations.",
                           strna(experiment_run_id(r->run)), r->guest, experiment_run_done(r->run));
                experiment_run_abandon(r->run);
                running_remove(r);
        }
}

void manager_experiment_done(Manager *m) {
        ManagerExperiments *x = m->experiments;

        if (!x)
                return;
        manager_experiment_interrupt_all(m);
        x->restarts = experiment_restarts_free(x->restarts);
        free(x->running);
        experiment_store_free(x->store);
        safe_close(x->dir_fd);
        free(x->tids);
        free(x->definition);
        free(x->metrics_guests);
        definition_cache_clear(x);
        stats_cache_clear(x);
        m->experiments = mfree(x);
}
