/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What ctl-experiment.c shares with the other experiment files of memvisorctl (ctl-experiment-compare.c). */

#include <stddef.h>
#include <stdint.h>

#include "ctl/ctl-units.h"

/* memvisorctl experiment compare A B: CompareExperiments, printed (or its JSON with --json). globs: the
 * --counter= values; seed UINT64_MAX and resamples 0: the daemon's defaults. Returns an exit code. */
int ctl_experiment_compare(const char *a, const char *b, char **globs, size_t n_globs, uint64_t seed,
                           unsigned resamples);
