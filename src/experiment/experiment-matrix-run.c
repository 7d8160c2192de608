/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Matrix runs (issue 16, memvisor.experiment(5) "MATRIX RUNS"): the experiment's iterations in blocks, one
 * variant per block in the order of experiment_spec_schedule(); before every block the guest is restarted with
 * its variant's settings (the caller's restart(), which waits for it to run and for its agent), the counters
 * are opened again on the new QEMU's threads, the variant's guest provenance is added the first time it boots,
 * and Settle= passes; then WarmUp= warm-up iterations and up to Block= measured ones. Every record carries its
 * "variant" and "block". At the end (whatever ends it) the guest gets its own definition back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "experiment/experiment-measure.h"
#include "experiment/experiment-runner-internal.h"
#include "experiment/experiment-summary.h"
#include "vm/vm-spec.h"

static size_t block_variant(const ExperimentRun *run) {
        return run->schedule[run->block];
}

/* "VM.Append=quiet, VM.Memory=1G", for messages. */
static char *variant_text(const ExperimentSpec *s, size_t v) {
        const char *names[EXPERIMENT_MATRIX_KEYS_MAX], *values[EXPERIMENT_MATRIX_KEYS_MAX];
        char *t = NULL;
        size_t size = 0;
        FILE *f;

        if (experiment_spec_variant(s, v, names, values) < 0)
                return NULL;
        f = open_memstream(&t, &size);
        if (!f)
                return NULL;
        for (size_t i = 0; i < s->n_matrix; i++)
                fprintf(f, "%s%s=%s", i > 0 ? ", " : "", names[i], values[i]);
        if (fclose(f) != 0) {
                free(t);
                return NULL;
        }
        return t;
}

static int settings_json(const ExperimentSpec *s, size_t v, json_object **ret) {
        const char *names[EXPERIMENT_MATRIX_KEYS_MAX], *values[EXPERIMENT_MATRIX_KEYS_MAX];
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        r = experiment_spec_variant(s, v, names, values);
        for (size_t i = 0; r >= 0 && i < s->n_matrix; i++)
                r = json_add_string(o, names[i], values[i]);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

int run_matrix_init(ExperimentRun *run, const ExperimentGuest *g, ExperimentStartFailure *f) {
        const ExperimentSpec *s = run->spec;
        _cleanup_(vm_spec_freep) VmSpec *base = NULL;
        size_t nv = experiment_spec_n_variants(s);
        int r;

        if (nv == 0)
                return 0;
        *f = (ExperimentStartFailure) { .error = EXPERIMENT_START_INVALID, .field = "Matrix" };
        if (!run->ctx->restart || !run->ctx->restore)
                return (f->reason = strdup("matrix runs are not available here")) ? -EINVAL : -ENOMEM;
        r = g->definition ? vm_spec_parse_ini(NULL, g->definition, s->guest, &base, NULL) : -ENODATA;
        if (r < 0)
                return asprintf(&f->reason, "the definition of the guest %s could not be read back: %s", s->guest,
                                strerror(-r)) < 0 ? -ENOMEM : -EINVAL;
        /* Every variant is checked now, so that a mistake in the last one does not show hours into the run. */
        for (size_t v = 0; v < nv; v++) {
                const char *names[EXPERIMENT_MATRIX_KEYS_MAX], *values[EXPERIMENT_MATRIX_KEYS_MAX];
                _cleanup_(vm_spec_freep) VmSpec *variant = NULL;
                _cleanup_free_ char *field = NULL, *reason = NULL, *text = NULL;

                r = experiment_spec_variant(s, v, names, values);
                if (r >= 0)
                        r = vm_spec_with_settings(base, (char *const *) names, (char *const *) values, s->n_matrix,
                                                  &variant, &field, &reason);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        text = variant_text(s, v);
                        return asprintf(&f->reason, "variant %s (%s): %s%s%s", experiment_variant_label(v),
                                        strna(text), field ?: "", field ? ": " : "",
                                        reason ?: strerror(-r)) < 0 ? -ENOMEM : -EINVAL;
                }
        }
        *f = (ExperimentStartFailure) {};

        r = experiment_spec_schedule(s, &run->schedule, &run->n_blocks);
        if (r < 0)
                return r;
        run->variant_measured = calloc(nv, sizeof(uint64_t));
        run->variant_booted = calloc(nv, sizeof(bool));
        run->variant_summaries = calloc(nv, sizeof(ExperimentSummary *));
        if (!run->variant_measured || !run->variant_booted || !run->variant_summaries)
                return -ENOMEM;
        run->n_variants = nv;
        for (size_t v = 0; v < nv; v++)
                if (experiment_summary_new(&run->variant_summaries[v]) < 0 ||
                    experiment_summary_set_variant(run->variant_summaries[v], experiment_variant_label(v)) < 0)
                        run->variant_summaries[v] = experiment_summary_free(run->variant_summaries[v]);
        run->planned = experiment_spec_planned(s);
        return 0;
}

void run_matrix_free(ExperimentRun *run) {
        for (size_t v = 0; run->variant_summaries && v < run->n_variants; v++)
                experiment_summary_free(run->variant_summaries[v]);
        free(run->variant_summaries);
        free(run->variant_measured);
        free(run->variant_booted);
        free(run->schedule);
}

int run_matrix_provenance(ExperimentRun *run, json_object *provenance) {
        const ExperimentSpec *s = run->spec;
        _cleanup_json_ json_object *m = json_object_new_object(), *variants = json_object_new_array(),
                                   *schedule = json_object_new_array();
        int r;

        if (!m || !variants || !schedule)
                return -ENOMEM;
        for (size_t v = 0; v < run->n_variants; v++) {
                _cleanup_json_ json_object *o = json_object_new_object(), *settings = NULL;

                r = o ? settings_json(s, v, &settings) : -ENOMEM;
                if (r >= 0)
                        r = json_add_string(o, "variant", experiment_variant_label(v));
                if (r >= 0)
                        r = json_add(o, "settings", TAKE_PTR(settings));
                if (r >= 0)     /* null until it first boots */
                        r = json_object_object_add(o, "guest", NULL) < 0 ? -ENOMEM : 0;
                if (r >= 0)
                        r = json_object_array_add(variants, TAKE_PTR(o)) < 0 ? -ENOMEM : 0;
                if (r < 0)
                        return r;
        }
        for (size_t b = 0; b < run->n_blocks; b++)
                if (json_object_array_add(schedule, json_object_new_string(
                                                    experiment_variant_label(run->schedule[b]))) < 0)
                        return -ENOMEM;
        r = json_add_string(m, "order", experiment_matrix_order_to_string(s->order));
        if (r >= 0)
                r = json_add(m, "seed", json_object_new_uint64(s->seed));
        if (r >= 0)
                r = json_add_uint(m, "block", s->block);
        if (r >= 0)
                r = json_add_uint(m, "warmUpPerBlock", s->warm_up);
        if (r >= 0)
                r = json_add_uint(m, "bootTimeoutUSec", s->boot_timeout_usec);
        if (r >= 0)
                r = json_add(m, "variants", TAKE_PTR(variants));
        if (r >= 0)
                r = json_add(m, "schedule", TAKE_PTR(schedule));
        if (r >= 0)
                r = json_add(provenance, "matrix", TAKE_PTR(m));
        return r;
}

/* ---- a block ---- */

static json_object *variant_provenance(ExperimentRun *run, size_t v) {
        json_object *m, *variants;

        if (!json_object_object_get_ex(run->provenance_doc, "matrix", &m) ||
            !json_object_object_get_ex(m, "variants", &variants))
                return NULL;
        return json_object_array_get_idx(variants, v);
}

static void variant_booted(ExperimentRun *run) {
        int r;

        run->variant_booted[block_variant(run)] = true;
        r = experiment_store_update_provenance(run->ctx->store, run->id, run->provenance_doc);
        if (r < 0)
                return run_fail(run, "the provenance of variant %s could not be stored: %s",
                                experiment_variant_label(block_variant(run)), strerror(-r));
        if (run->cancelled)
                return run_finish(run, EXPERIMENT_CANCELLED, "cancelled");
        run_settle_then_iterate(run);
}

static void variant_info_cb(QgaClient *c, const QgaError *error, const QgaGuestInfo *info, void *userdata) {
        ExperimentRun *run = userdata;
        json_object *guest;
        int r;

        (void) c;
        if (!run_op_end(run))
                return;
        if (!json_object_object_get_ex(variant_provenance(run, block_variant(run)), "guest", &guest) || !guest)
                return run_fail(run, "out of memory");
        if (error || !info || !info->kernel_release)
                r = json_add(guest, "kernelRelease",
                             json_unavailable_new(error && error->description ? error->description
                                                                               : "the guest agent did not say"));
        else
                r = json_add_string(guest, "kernelRelease", info->kernel_release);
        if (r >= 0 && info && info->agent_version)
                r = json_add_string(guest, "agentVersion", info->agent_version);
        if (r < 0)
                return run_fail(run, "out of memory");
        variant_booted(run);
}

static void restart_done(int error, const char *reason, void *userdata) {
        ExperimentRun *run = userdata;
        size_t v = block_variant(run);
        _cleanup_json_ json_object *guest = NULL;
        ExperimentGuest g;
        int r;

        run->restart = NULL;
        if (!run_op_end(run))
                return;
        if (run->cancelled)     /* before the boot was over (the restart cancelled), or right after it */
                return run_finish(run, EXPERIMENT_CANCELLED, "cancelled");
        if (error < 0) {
                _cleanup_free_ char *text = variant_text(run->spec, v);

                return run_fail(run, "variant %s (%s) did not come up for block %zu: %s",
                                experiment_variant_label(v), strna(text), run->block + 1,
                                reason ?: strerror(-error));
        }
        r = run->ctx->lookup(run->spec->guest, run->ctx->userdata, &g);
        if (r < 0)
                return run_fail(run, "the guest %s stopped after its restart for variant %s",
                                run->spec->guest, experiment_variant_label(v));
        run->pid = g.pid;
        /* The counters follow the new QEMU's threads. */
        run->measure = experiment_measure_free(run->measure);
        r = experiment_measure_open(run->ctx->root, run->spec, &g, &run->measure);
        if (r < 0)
                return run_fail(run, "the counters could not be opened on the guest's new QEMU %d: %s",
                                (int) g.pid, strerror(-r));
        if (run->variant_booted[v])
                return run_settle_then_iterate(run);

        r = run_guest_provenance(run, &g, &guest);
        if (r >= 0)
                r = json_add(variant_provenance(run, v), "guest", json_object_get(guest));
        if (r < 0)
                return run_fail(run, "the provenance of variant %s: %s", experiment_variant_label(v),
                                strerror(-r));
        if (!g.agent) {
                r = json_add(guest, "kernelRelease",
                             json_unavailable_new(g.agent_reason ?: "the guest agent is not connected"));
                if (r < 0)
                        return run_fail(run, "out of memory");
                return variant_booted(run);
        }
        r = qga_get_guest_info(g.agent, variant_info_cb, run);
        if (r < 0) {
                r = json_add(guest, "kernelRelease", json_unavailable_new(strerror(-r)));
                if (r < 0)
                        return run_fail(run, "out of memory");
                return variant_booted(run);
        }
        run->n_pending++;
}

static bool needs_agent(const ExperimentSpec *s) {
        return s->when != EXPERIMENT_WORKLOAD_NONE ||
               (s->counters & (EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_GUEST_VMSTAT) |
                               EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_GUEST_INTERRUPTS)));
}

void run_block_begin(ExperimentRun *run) {
        const char *names[EXPERIMENT_MATRIX_KEYS_MAX], *values[EXPERIMENT_MATRIX_KEYS_MAX];
        _cleanup_free_ char *label = NULL;
        uint64_t left;
        size_t v;
        int r;

        if (run->over)
                return;
        if (run->block >= run->n_blocks)
                return run_finish(run, EXPERIMENT_COMPLETED, NULL);
        if (run->cancelled)
                return run_finish(run, EXPERIMENT_CANCELLED, "cancelled");
        v = block_variant(run);
        left = run->spec->iterations - MIN(run->variant_measured[v], (uint64_t) run->spec->iterations);
        run->block_done = 0;
        run->block_planned = run->spec->warm_up + MIN(left, (uint64_t) run->spec->block);
        r = experiment_spec_variant(run->spec, v, names, values);
        if (r < 0)
                return run_fail(run, "variant %zu: %s", v, strerror(-r));
        if (asprintf(&label, "experiment %s, variant %s", run->id, experiment_variant_label(v)) < 0)
                return run_fail(run, "out of memory");
        log_info("Experiment %s: block %zu of %zu, variant %s: restarting %s.", run->id, run->block + 1,
                 run->n_blocks, experiment_variant_label(v), run->spec->guest);
        run->restore_owed = true;
        run->n_pending++;
        r = run->ctx->restart(run->spec->guest, label, names, values, run->spec->n_matrix, needs_agent(run->spec),
                              run->spec->boot_timeout_usec, restart_done, run, run->ctx->userdata, &run->restart);
        if (r < 0) {
                run->restart = NULL;
                if (!run_op_end(run))
                        return;
                return run_fail(run, "the guest %s could not be restarted for variant %s: %s", run->spec->guest,
                                experiment_variant_label(v), strerror(-r));
        }
}

bool run_is_warm_up(const ExperimentRun *run) {
        if (run_is_matrix(run))
                return run->block_done < run->spec->warm_up;
        return run->done < run->spec->warm_up;
}

int run_matrix_record_fields(ExperimentRun *run, json_object *o) {
        int r;

        if (!run_is_matrix(run))
                return 0;
        r = json_add_string(o, "variant", experiment_variant_label(block_variant(run)));
        if (r >= 0)
                r = json_add_uint(o, "block", run->block + 1);
        return r;
}

void run_matrix_recorded(ExperimentRun *run, json_object *record) {
        size_t v = block_variant(run);

        if (run->variant_summaries[v] && experiment_summary_add(run->variant_summaries[v], record) < 0)
                run->variant_summaries[v] = experiment_summary_free(run->variant_summaries[v]);
        if (!run_is_warm_up(run))
                run->variant_measured[v]++;
        run->block_done++;
        if (run->block_done >= run->block_planned) {
                run->block++;
                return run_block_begin(run);
        }
        if (run->cancelled)
                return run_finish(run, EXPERIMENT_CANCELLED, "cancelled");
        run_settle_then_iterate(run);
}

/* The statistics of a matrix run: per variant (summary, or read back when NULL), with its settings. */
static int matrix_summary(ExperimentStore *store, const char *id, size_t n_variants, ExperimentSummary **summaries,
                          json_object *const *settings, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *variants = json_object_new_array();
        uint64_t iterations = 0, warm_up = 0;
        int r;

        if (!o || !variants)
                return -ENOMEM;
        for (size_t v = 0; v < n_variants; v++) {
                _cleanup_json_ json_object *sv = NULL;

                if (summaries && summaries[v])
                        r = experiment_summary_to_json(summaries[v], &sv);
                else
                        r = experiment_summary_from_store(store, id, experiment_variant_label(v), &sv);
                if (r >= 0)
                        r = json_add_string(sv, "variant", experiment_variant_label(v));
                if (r >= 0)
                        r = json_add(sv, "settings", json_object_get(settings[v]));
                if (r < 0)
                        return r;
                iterations += (uint64_t) json_get_int(sv, "iterations", 0);
                warm_up += (uint64_t) json_get_int(sv, "warmUp", 0);
                if (json_object_array_add(variants, TAKE_PTR(sv)) < 0)
                        return -ENOMEM;
        }
        r = json_add_uint(o, "iterations", iterations);
        if (r >= 0)
                r = json_add_uint(o, "warmUp", warm_up);
        if (r >= 0)
                r = json_add(o, "statistics", json_object_new_array());
        if (r >= 0)
                r = json_add(o, "unavailable", json_object_new_array());
        if (r >= 0)
                r = json_add(o, "variants", TAKE_PTR(variants));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

int run_matrix_summary(ExperimentRun *run, json_object **ret) {
        json_object *settings[EXPERIMENT_VARIANTS_MAX] = {};
        int r = 0;

        for (size_t v = 0; r >= 0 && v < run->n_variants; v++)
                r = settings_json(run->spec, v, &settings[v]);
        if (r >= 0)
                r = matrix_summary(run->ctx->store, run->id, run->n_variants, run->variant_summaries, settings, ret);
        for (size_t v = 0; v < run->n_variants; v++)
                json_object_put(settings[v]);
        return r;
}

int experiment_matrix_summary_from_store(ExperimentStore *store, const char *id, json_object *provenance,
                                         json_object **ret) {
        json_object *m, *variants, *settings[EXPERIMENT_VARIANTS_MAX];
        size_t n;

        if (!json_object_object_get_ex(provenance, "matrix", &m) ||
            !json_object_object_get_ex(m, "variants", &variants) ||
            !json_object_is_type(variants, json_type_array))
                return -ENOENT;
        n = json_object_array_length(variants);
        if (n == 0 || n > EXPERIMENT_VARIANTS_MAX)
                return -EBADMSG;
        for (size_t v = 0; v < n; v++) {
                json_object *e = json_object_array_get_idx(variants, v);

                if (!streq_ptr(json_get_string(e, "variant"), experiment_variant_label(v)) ||
                    !json_object_object_get_ex(e, "settings", &settings[v]))
                        return -EBADMSG;
        }
        return matrix_summary(store, id, n, NULL, settings, ret);
}

void run_matrix_end(ExperimentRun *run, bool restore) {
        if (!run_is_matrix(run))
                return;
        if (run->restart)
                run->ctx->restart_cancel(run->restart, run->ctx->userdata);     /* its done() comes now */
        run->restart = NULL;
        if (restore && run->restore_owed) {
                run->restore_owed = false;
                log_info("Experiment %s: %s gets its own definition back.", strna(run->id), run->spec->guest);
                run->ctx->restore(run->spec->guest, run->ctx->userdata);
        }
}
