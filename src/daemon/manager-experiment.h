/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* manager-experiment.c: experiments over the API, and GuestBusy for the other state-changing calls. */

#include "daemon/manager.h"

typedef struct ManagerExperiments ManagerExperiments;

int manager_experiment_start(Manager *m);
void manager_experiment_done(Manager *m);
const VarlinkMethod *manager_experiment_methods(void);

/* GuestBusy (0 when no experiment runs on the guest called name): sets *e and returns -EBUSY. */
int manager_experiment_check_busy(Manager *m, const char *name, ManagerError *e);
/* The same as a varlink reply: 1 when it replied GuestBusy, 0 when the guest is free, < 0 on failure. */
int manager_experiment_reply_busy(Manager *m, VarlinkConnection *c, const char *name);
/* The id of the experiment running on name (or "(starting)"), NULL when none. */
const char *manager_experiment_running_on(Manager *m, const char *name);
size_t manager_experiments_running(Manager *m);

typedef struct ExperimentStore ExperimentStore;
/* The store of experiments (NULL before manager_experiment_start()), for manager-experiment-compare.c. */
ExperimentStore *manager_experiment_store(Manager *m);

/* manager-experiment-compare.c: CompareExperiments. */
const VarlinkMethod *manager_experiment_compare_methods(void);
