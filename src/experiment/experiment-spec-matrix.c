/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* [Matrix] of an experiment (issue 16): the keys of the guest's .vm that vary, the variants they make and the
 * order of their blocks. The section's own keys (Order=, Block=, BootTimeout=) are in the key table; every other
 * key of the section names a key of memvisor.vm(5) and is kept here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/strv.h"
#include "experiment/experiment-spec-internal.h"
#include "experiment/experiment-spec-matrix.h"
#include "vm/vm-spec.h"

static const char *const labels[EXPERIMENT_VARIANTS_MAX] = {
        "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P",
};

const char *experiment_variant_label(size_t v) {
        return v < ELEMENTSOF(labels) ? labels[v] : NULL;
}

int experiment_variant_from_label(const char *label) {
        for (size_t i = 0; label && i < ELEMENTSOF(labels); i++)
                if (streq(label, labels[i]))
                        return (int) i;
        return -EINVAL;
}

void experiment_matrix_free(ExperimentSpec *s) {
        for (size_t i = 0; i < s->n_matrix; i++) {
                free(s->matrix[i].name);
                strv_free(s->matrix[i].values);
        }
        s->matrix = mfree(s->matrix);
        s->n_matrix = 0;
}

size_t experiment_spec_n_variants(const ExperimentSpec *s) {
        size_t n = 1;

        if (!s || s->n_matrix == 0)
                return 0;
        for (size_t i = 0; i < s->n_matrix; i++) {
                if (s->matrix[i].n_values == 0 || n > SIZE_MAX / s->matrix[i].n_values)
                        return 0;
                n *= s->matrix[i].n_values;
        }
        return n;
}

int experiment_spec_variant(const ExperimentSpec *s, size_t v, const char **names, const char **values) {
        if (v >= experiment_spec_n_variants(s))
                return -EINVAL;
        /* Mixed radix, the last key the lowest digit: it varies fastest. */
        for (size_t i = s->n_matrix; i > 0; i--) {
                const ExperimentMatrixKey *k = s->matrix + i - 1;

                names[i - 1] = k->name;
                values[i - 1] = k->values[v % k->n_values];
                v /= k->n_values;
        }
        return 0;
}

unsigned experiment_spec_blocks(const ExperimentSpec *s) {
        if (s->n_matrix == 0)
                return 1;
        return (s->iterations + s->block - 1) / MAX(s->block, 1U);
}

uint64_t experiment_spec_planned(const ExperimentSpec *s) {
        if (s->n_matrix == 0)
                return s->iterations;
        return (uint64_t) experiment_spec_n_variants(s) *
               ((uint64_t) s->iterations + (uint64_t) experiment_spec_blocks(s) * s->warm_up);
}

/* splitmix64: a stated, portable sequence from Seed=, so that the order can be told from the definition. */
static uint64_t next_random(uint64_t *state) {
        uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

int experiment_spec_schedule(const ExperimentSpec *s, size_t **ret, size_t *ret_n) {
        size_t nv = experiment_spec_n_variants(s), blocks = experiment_spec_blocks(s), n = 0;
        _cleanup_free_ size_t *order = NULL;
        uint64_t state = s->seed;

        if (nv == 0)
                return -EINVAL;
        order = calloc(nv * blocks, sizeof(size_t));
        if (!order)
                return -ENOMEM;
        for (size_t round = 0; round < blocks; round++) {
                size_t *r = order + n;

                for (size_t v = 0; v < nv; v++)
                        r[v] = v;
                if (s->order == EXPERIMENT_MATRIX_RANDOM)
                        for (size_t i = nv - 1; i > 0; i--) {     /* Fisher–Yates */
                                size_t j = (size_t) (next_random(&state) % (i + 1)), t = r[i];

                                r[i] = r[j];
                                r[j] = t;
                        }
                n += nv;
        }
        *ret = TAKE_PTR(order);
        *ret_n = n;
        return 0;
}

static ExperimentMatrixKey *matrix_find(ExperimentSpec *s, const char *name) {
        for (size_t i = 0; i < s->n_matrix; i++)
                if (streq(s->matrix[i].name, name))
                        return s->matrix + i;
        return NULL;
}

/* The canonical name of a key, "Section.Key". */
static int matrix_name(const char *name, char **ret, char **ret_reason) {
        const char *section, *key;
        int r;

        r = vm_spec_key_resolve(name, &section, &key, ret_reason);
        if (r < 0)
                return r;
        return asprintf(ret, "%s.%s", section, key) < 0 ? -ENOMEM : 0;
}

int experiment_matrix_reset(ExperimentSpec *s, const char *name, char **ret_reason) {
        _cleanup_free_ char *canonical = NULL;
        ExperimentMatrixKey *k;
        int r;

        r = matrix_name(name, &canonical, ret_reason);
        if (r < 0)
                return r;
        k = matrix_find(s, canonical);
        if (!k)
                return 0;
        free(k->name);
        strv_free(k->values);
        memmove(k, k + 1, (size_t) (s->matrix + s->n_matrix - (k + 1)) * sizeof(*k));
        s->n_matrix--;
        return 0;
}

int experiment_matrix_add(ExperimentSpec *s, const char *name, const char *value, char **ret_reason) {
        _cleanup_free_ char *canonical = NULL;
        ExperimentMatrixKey *k;
        size_t variants;
        int r;

        r = matrix_name(name, &canonical, ret_reason);
        if (r < 0)
                return r;
        if (!value || !experiment_text_is_storable(value) || strlen(value) > VM_ARG_MAX)
                return experiment_spec_reasonf(ret_reason, -EINVAL, "expected values of at most %u bytes of "
                                               "UTF-8 text without control characters", VM_ARG_MAX);
        k = matrix_find(s, canonical);
        if (!k) {
                ExperimentMatrixKey *m;

                if (s->n_matrix >= EXPERIMENT_MATRIX_KEYS_MAX)
                        return experiment_spec_reasonf(ret_reason, -E2BIG, "at most %u keys may vary",
                                                       EXPERIMENT_MATRIX_KEYS_MAX);
                m = reallocarray(s->matrix, s->n_matrix + 1, sizeof(ExperimentMatrixKey));
                if (!m)
                        return -ENOMEM;
                s->matrix = m;
                k = s->matrix + s->n_matrix++;
                *k = (ExperimentMatrixKey) { .name = TAKE_PTR(canonical) };
        }
        if (strv_contains(k->values, value))
                return experiment_spec_reasonf(ret_reason, -EINVAL, "the value '%s' of %s is given twice", value,
                                               k->name);
        if (k->n_values >= EXPERIMENT_MATRIX_VALUES_MAX)
                return experiment_spec_reasonf(ret_reason, -E2BIG, "at most %u values per key",
                                               EXPERIMENT_MATRIX_VALUES_MAX);
        r = strv_extend(&k->values, value);
        if (r < 0)
                return r;
        k->n_values++;
        variants = experiment_spec_n_variants(s);
        if (variants > EXPERIMENT_VARIANTS_MAX) {
                /* Leave the spec as it was: the value is refused. */
                free(k->values[--k->n_values]);
                k->values[k->n_values] = NULL;
                return experiment_spec_reasonf(ret_reason, -E2BIG, "the matrix would have %zu variants, at most "
                                               "%u are run", variants, EXPERIMENT_VARIANTS_MAX);
        }
        return 0;
}

int experiment_matrix_apply_text(ExperimentSpec *s, const char *name, const char *text, char **ret_reason) {
        _cleanup_(strv_freep) char **words = NULL;
        int r;

        if (isempty(text))
                return experiment_matrix_reset(s, name, ret_reason);
        r = strv_split_quoted(text, &words);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return experiment_spec_reasonf(ret_reason, -EINVAL, "expected values split like a shell's words "
                                               "(quote a value with spaces): %s", strerror(-r));
        for (char **w = words; *w; w++) {
                r = experiment_matrix_add(s, name, *w, ret_reason);
                if (r < 0)
                        return r;
        }
        return 0;
}

int experiment_matrix_copy(const ExperimentSpec *s, ExperimentSpec *c) {
        c->matrix = NULL;
        c->n_matrix = 0;
        if (s->n_matrix == 0)
                return 0;
        c->matrix = calloc(s->n_matrix, sizeof(ExperimentMatrixKey));
        if (!c->matrix)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_matrix; i++) {
                c->matrix[i].name = strdup(s->matrix[i].name);
                c->matrix[i].values = strv_copy(s->matrix[i].values);
                c->n_matrix++;
                if (!c->matrix[i].name || !c->matrix[i].values)
                        return -ENOMEM;
                c->matrix[i].n_values = s->matrix[i].n_values;
        }
        return 0;
}

bool experiment_matrix_equal(const ExperimentSpec *a, const ExperimentSpec *b) {
        if (a->n_matrix != b->n_matrix)
                return false;
        for (size_t i = 0; i < a->n_matrix; i++)
                if (!streq(a->matrix[i].name, b->matrix[i].name) ||
                    !strv_equal(a->matrix[i].values, b->matrix[i].values))
                        return false;
        return true;
}

int experiment_matrix_to_ini(const ExperimentSpec *s, FILE *f) {
        for (size_t i = 0; i < s->n_matrix; i++) {
                fprintf(f, "%s=", s->matrix[i].name);
                for (char **v = s->matrix[i].values; *v; v++) {
                        _cleanup_free_ char *q = shell_quote(*v);

                        if (!q)
                                return -ENOMEM;
                        fprintf(f, "%s%s", v == s->matrix[i].values ? "" : " ", q);
                }
                fputc('\n', f);
        }
        return 0;
}

int experiment_matrix_to_json(const ExperimentSpec *s, json_object *section) {
        for (size_t i = 0; i < s->n_matrix; i++) {
                json_object *a = json_object_new_array();

                if (!a || json_object_object_add(section, s->matrix[i].name, a) < 0) {
                        json_object_put(a);
                        return -ENOMEM;
                }
                for (char **v = s->matrix[i].values; *v; v++) {
                        json_object *e = json_object_new_string(*v);

                        if (!e || json_object_array_add(a, e) < 0) {
                                json_object_put(e);
                                return -ENOMEM;
                        }
                }
        }
        return 0;
}

int experiment_matrix_validate(const ExperimentSpec *s, char ret_field[static 64], char **ret_reason) {
        size_t n = experiment_spec_n_variants(s);

        if (s->n_matrix == 0)
                return 0;
        for (size_t i = 0; i < s->n_matrix; i++)
                if (s->matrix[i].n_values == 0) {
                        snprintf(ret_field, 64, "Matrix.%s", s->matrix[i].name);
                        return experiment_spec_reasonf(ret_reason, -EINVAL, "%s= has no value", s->matrix[i].name);
                }
        if (n == 0 || n > EXPERIMENT_VARIANTS_MAX) {
                snprintf(ret_field, 64, "Matrix");
                return experiment_spec_reasonf(ret_reason, -E2BIG, "the matrix has %zu variants, at most %u are "
                                               "run", n, EXPERIMENT_VARIANTS_MAX);
        }
        if (experiment_spec_planned(s) > (uint64_t) EXPERIMENT_ITERATIONS_MAX) {
                snprintf(ret_field, 64, "Experiment.Iterations");
                return experiment_spec_reasonf(ret_reason, -E2BIG, "the run would record %" PRIu64 " iterations, "
                                               "at most %u", experiment_spec_planned(s),
                                               EXPERIMENT_ITERATIONS_MAX);
        }
        return 0;
}
