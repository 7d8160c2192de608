/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* manager-experiment.c: experiments over the API, and GuestBusy for the other state-changing calls. The
 * operations below are shared by the transports (manager.h): varlink's methods in
 * manager-experiment-varlink.c, D-Bus's in manager-dbus.c. Replies and errors are the varlink interface's (io.memvisor.Manager.varlink, "Experiments"). */

#include "daemon/manager.h"
#include "experiment/experiment-runner.h"
#include "experiment/experiment-store.h"
#include "metrics/metrics-render.h"

typedef struct ManagerExperiments ManagerExperiments;

/* manager-experiment-restart.c: the guest restarts of matrix runs (ExperimentContext.restart, restart_cancel,
 * restore, with the same meaning). */
typedef struct ExperimentRestarts ExperimentRestarts;
int experiment_restarts_new(Manager *m, ExperimentRestarts **ret);
/* Pending restarts end with -ECANCELED. */
ExperimentRestarts *experiment_restarts_free(ExperimentRestarts *o);
int experiment_restart_start(ExperimentRestarts *o, const char *guest, const char *label, const char *const *names,
                             const char *const *values, size_t n, bool agent, uint64_t timeout_usec,
                             ExperimentRestartDone done, void *done_userdata, void **ret_handle);
void experiment_restart_cancel(ExperimentRestarts *o, void *handle);
void experiment_restart_restore(ExperimentRestarts *o, const char *guest);

/* manager-experiment-hotplug.c: Operation=hotplug's steps (ExperimentContext.hotplug, hotplug_cancel, with the
 * same meaning) through manager_hotplug_set(); the GuestBusy check of the experiment's guest is the caller's to
 * lift (manager-experiment.c). */
int manager_experiment_hotplug(Manager *m, const char *guest, uint64_t size_bytes, bool wait, uint64_t timeout_usec,
                               ExperimentHotplugDone done, void *done_userdata, void **ret_handle, char **ret_reason);
void manager_experiment_hotplug_cancel(void *handle);

int manager_experiment_start(Manager *m);
void manager_experiment_done(Manager *m);
/* The daemon stops: every running experiment is left as it is on disk (the next start marks it interrupted), its
 * readings in flight are dropped. Before StopGuestsOnExit= stops the guests, so that they end as interrupted, not
 * as failed because their guest stopped. */
void manager_experiment_interrupt_all(Manager *m);
const VarlinkMethod *manager_experiment_methods(void);

/* Each step of a started experiment ({"id", "state", "reason", "iterationsDone", "iterationsPlanned",
 * "iteration"}, taken), called with the completion's userdata. */
typedef void (*ManagerExperimentNotify)(json_object *reply, void *userdata);

/* StartExperiment: one of text (the INI of memvisor.experiment(5)) and definition (its JSON); iterations NULL: as
 * the definition says. caller ("varlink by uid 0") is logged. Returns 0 once the run began; completion (always
 * consumed) then gets the first step ({"id", "state": "running", ...}), or ExperimentFailed when it failed before
 * it had an id. With notify, notify gets every step and completion the end ({"state": "completed"|"failed"|
 * "cancelled", "reason"}). Every experiment's steps are also manager_dbus_experiment_progress()'s. */
int manager_experiment_run(Manager *m, const char *text, json_object *definition, const int64_t *iterations,
                           const char *caller, ManagerCompletion *completion, ManagerExperimentNotify notify,
                           ManagerError *ret_error);
/* ListExperiments' reply ({"experiments": [...]}, guest NULL: all), DescribeExperiment's; CancelExperiment and
 * DeleteExperiment (caller logged as above). */
int manager_experiment_list(Manager *m, const char *guest, json_object **ret_reply, ManagerError *ret_error);
int manager_experiment_describe(Manager *m, const char *id, json_object **ret_reply, ManagerError *ret_error);
int manager_experiment_cancel(Manager *m, const char *id, const char *caller, ManagerError *ret_error);
int manager_experiment_delete(Manager *m, const char *id, const char *caller, ManagerError *ret_error);
/* For the adapters: a stored experiment by id (NoSuchExperiment), the store, and ExperimentStoreFailed for a
 * store error (a negative errno, returned). */
int manager_experiment_find(Manager *m, const char *id, const ExperimentInfo **ret, ManagerError *ret_error);
ExperimentStore *manager_experiment_store(Manager *m);
int manager_experiment_store_failed(ManagerError *ret_error, int error);

/* GuestBusy (0 when no experiment runs on the guest called name): sets *e and returns -EBUSY. */
int manager_experiment_check_busy(Manager *m, const char *name, ManagerError *e);
/* The same as a varlink reply: 1 when it replied GuestBusy, 0 when the guest is free, < 0 on failure. */
int manager_experiment_reply_busy(Manager *m, VarlinkConnection *c, const char *name);
/* The id of the experiment running on name (or "(starting)"), NULL when none. */
const char *manager_experiment_running_on(Manager *m, const char *name);
size_t manager_experiments_running(Manager *m);

/* The experiment series for src/metrics (memvisor_experiment*, their meaning in src/metrics/metric-families.c):
 * ret->guests lists every defined guest and stays valid until the next call or manager_experiment_done(). */
int manager_experiment_metrics(Manager *m, MetricsExperiments *ret);

/* manager-experiment-compare.c: CompareExperiments. The two sides ("ID" or "ID:VARIANT") are read from the store
 * now and the figures computed in a worker thread; completion (always consumed) gets {"comparison": …} or the
 * error when they are ready. *ret_job (optional) is the comparison in flight, for
 * manager_experiment_compare_cancel() (its caller went away: the completion is dropped). caller is logged. */
typedef struct ManagerCompareJob ManagerCompareJob;
typedef struct ExperimentCompareOptions ExperimentCompareOptions;
int manager_experiment_compare(Manager *m, const char *a, const char *b, const ExperimentCompareOptions *o,
                               const char *caller, ManagerCompletion *completion, ManagerCompareJob **ret_job,
                               ManagerError *ret_error);
void manager_experiment_compare_cancel(ManagerCompareJob *j);
const VarlinkMethod *manager_experiment_compare_methods(void);
