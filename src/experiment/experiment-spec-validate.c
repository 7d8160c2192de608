/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* experiment_spec_validate(): each value on its own (for specs not made by the parser), then the checks across
 * keys, in the order whose first failure is reported. */
#include <stdio.h>

#include "experiment/experiment-spec-internal.h"
#include "experiment/experiment-spec-matrix.h"

#define reasonf experiment_spec_reasonf

int experiment_spec_validate_internal(const ExperimentSpec *s, char ret_field[static 64], char **ret_reason) {
        int r;

#define FAIL(f, ...)                                                    \
        do {                                                            \
                (void) snprintf(ret_field, 64, "%s", (f));              \
                return reasonf(ret_reason, -EINVAL, __VA_ARGS__);       \
        } while (0)

        /* Each key: its value as the parser would take it, and only the keys of the chosen operation and workload
         * away from their defaults. */
        for (size_t i = 0; i < experiment_keys_n; i++) {
                const ExperimentKey *k = experiment_keys + i;

                (void) snprintf(ret_field, 64, "%s.%s", k->section, k->key);
                r = experiment_key_check(k, s, ret_reason);
                if (r < 0)
                        return r;
                if (!experiment_key_belongs(k, s) && !experiment_key_is_default(k, s))
                        return experiment_key_foreign_reason(k, s, ret_reason);
        }

        /* [Experiment] */
        if (!s->guest)
                FAIL("Experiment.Guest", "Guest= is not set: the experiment needs a guest");
        /* In a matrix run the warm-up iterations come on top, at the start of every block. */
        if (s->n_matrix == 0 && s->warm_up >= s->iterations)
                FAIL("Experiment.WarmUp", "WarmUp=%u leaves no iteration to measure: it must be below Iterations=%u",
                     s->warm_up, s->iterations);

        /* [Provoke] */
        switch (s->operation) {
        case EXPERIMENT_OPERATION_NONE:
                break;
        case EXPERIMENT_OPERATION_MIGRATE:
                if (s->from_nodes == 0)
                        FAIL("Provoke.From", "Operation=migrate needs From=, the nodes the memory moves from");
                if (s->to_nodes == 0)
                        FAIL("Provoke.To", "Operation=migrate needs To=, the nodes the memory moves to");
                /* Scope=guest-ram may ask move_pages(2) for the node a page is on: a valid, measured call (as
                 * MigratePages allows it, on a one-node host too). */
                if (s->from_nodes == s->to_nodes && s->scope != MIGRATION_SCOPE_GUEST_RAM)
                        FAIL("Provoke.To", "To= is the same as From=: nothing would move (Scope=guest-ram allows it)");
                break;
        case EXPERIMENT_OPERATION_MIGRATE_PINGPONG:
                if (s->between_nodes == 0)
                        FAIL("Provoke.Between", "Operation=migrate-pingpong needs Between=, two nodes such as 0,1");
                break;
        case EXPERIMENT_OPERATION_BALLOON:
                if (s->target_bytes == 0)
                        FAIL("Provoke.Target", "Operation=balloon needs Target=, the size the balloon gives the guest");
                if (s->return_bytes == s->target_bytes)
                        FAIL("Provoke.Return", "Return= is the same as Target=: the balloon would not move back");
                break;
        case EXPERIMENT_OPERATION_HOTPLUG:
                if (s->target_bytes == 0)
                        FAIL("Provoke.Target", "Operation=hotplug needs Target=, the size the virtio-mem device grows "
                             "to");
                if (s->return_bytes == s->target_bytes)
                        FAIL("Provoke.Return", "Return= is the same as Target=: the device would not move back");
                if (s->timeout_usec > EXPERIMENT_HOTPLUG_TIMEOUT_MAX)
                        FAIL("Provoke.Timeout", "Operation=hotplug waits at most 1h for each step "
                             "(SetHotplugMemory's longest wait)");
                break;
        case _EXPERIMENT_OPERATION_MAX:
        case _EXPERIMENT_OPERATION_INVALID:
                FAIL("Provoke.Operation", "unknown operation");
        }

        /* [Measure] */
        if (s->counters == 0)
                FAIL("Measure.Counters", "Counters= is empty: expected some of %s", experiment_counter_names());
        if (s->required & ~s->counters)
                for (int c = 0; c < _EXPERIMENT_COUNTER_MAX; c++)
                        if ((s->required & ~s->counters) & EXPERIMENT_COUNTER_MASK(c))
                                FAIL("Measure.Require", "Require= names %s, which Counters= does not take",
                                     experiment_counter_to_string(c));

        if (s->dirty_rate_mode != DIRTY_RATE_MODE_PAGE_SAMPLING &&
            !(s->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_DIRTY_RATE)))
                FAIL("Measure.DirtyRateMode", "DirtyRateMode= is only used when Counters= takes dirty-rate");
        /* The measurement runs in the settle phase, for Settle= in whole seconds: QEMU measures for 1 s at least. */
        if ((s->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_DIRTY_RATE)) && s->settle_usec < USEC_PER_SEC)
                FAIL("Experiment.Settle", "Counters=dirty-rate is measured in the settle phase, which must be at least "
                     "1s (QEMU's shortest calc-time)");

        /* [Matrix] */
        return experiment_matrix_validate(s, ret_field, ret_reason);
#undef FAIL
}
