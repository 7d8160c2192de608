/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The key table behind experiment-spec.h: one ExperimentKey per [Section] Key= of memvisor.experiment(5) says
 * where its value lives, its type, its default, its limits and to which operation (or workload) it belongs.
 * Parsing (INI and JSON), the defaults, the output, equality, copies, the per-value checks of validation and the
 * documentation check (man/experiment-spec-keys.c) all walk it; the checks across keys are in
 * experiment-spec-validate.c. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "experiment/experiment-spec.h"

typedef enum ExperimentKeyType {
        EXPERIMENT_KEY_STRING,          /* char *, NULL when unset */
        EXPERIMENT_KEY_STRV,            /* char ** with a size_t count at n_offset; assignments append */
        EXPERIMENT_KEY_BOOL,            /* bool */
        EXPERIMENT_KEY_UNSIGNED,        /* unsigned, min … max */
        EXPERIMENT_KEY_UINT64,          /* uint64_t, full range */
        EXPERIMENT_KEY_SIZE,            /* uint64_t bytes, whole MiB, min … max */
        EXPERIMENT_KEY_SEC,             /* uint64_t usec, min … max */
        EXPERIMENT_KEY_ENUM,            /* int with a string table */
        EXPERIMENT_KEY_NODES,           /* uint64_t node mask, a node list; exactly two nodes when max == 2 */
        EXPERIMENT_KEY_COUNTERS,        /* uint64_t counter mask: the first assignment replaces the default */
        _EXPERIMENT_KEY_TYPE_MAX,
} ExperimentKeyType;

typedef struct ExperimentKey ExperimentKey;

typedef struct ExperimentSpecParser {
        ExperimentSpec *spec;
        uint64_t assigned;              /* bit i: key i of the table got a non-empty value */
        size_t text_bytes;              /* JSON: the value text taken so far */
} ExperimentSpecParser;

struct ExperimentKey {
        const char *section;
        const char *key;
        ExperimentKeyType type;
        size_t offset;                  /* of the member in ExperimentSpec */
        size_t n_offset;                /* STRV: of its count */
        uint64_t def;                   /* BOOL, UNSIGNED, UINT64, SIZE, SEC, ENUM, NODES, COUNTERS */
        const char *def_s;              /* STRING */
        uint64_t min, max;              /* UNSIGNED, SIZE, SEC; STRV: max elements; NODES: max == 2: two nodes */
        bool (*is_valid)(const char *s);        /* STRING, STRV (each element) */
        const char *expected;                   /* STRING, STRV: what a valid value looks like */
        int (*from_string)(const char *s);      /* ENUM */
        const char *(*to_string)(int i);        /* ENUM */
        bool quote;                             /* STRV: split like a shell, quoted in the output */
        unsigned operations;            /* [Provoke]: bit op: the key belongs to Operation=op; 0: to every one */
        bool workload;                  /* [Workload]: belongs only when When= is not none */
        bool matrix;                    /* [Matrix]: belongs only when some key of the guest's .vm varies */
};

extern const ExperimentKey experiment_keys[];
extern const size_t experiment_keys_n;
extern const char *const experiment_sections[];
extern const size_t experiment_sections_n;

const ExperimentKey *experiment_key_find(const char *section, const char *key);
bool experiment_section_known(const char *section);

static inline void *experiment_key_field(const ExperimentKey *k, ExperimentSpec *s) {
        return (uint8_t *) s + k->offset;
}
static inline const void *experiment_key_field_const(const ExperimentKey *k, const ExperimentSpec *s) {
        return (const uint8_t *) s + k->offset;
}

/* Whether the key is used by the spec's Operation= and When=. */
bool experiment_key_belongs(const ExperimentKey *k, const ExperimentSpec *s);
/* Why it does not: "Operation=none" / "When=none", and the operations it belongs to ("migrate"). */
int experiment_key_foreign_reason(const ExperimentKey *k, const ExperimentSpec *s, char **ret_reason);

/* Sets the key to its default (a list: empty). */
int experiment_key_reset(const ExperimentKey *k, ExperimentSpec *s);
/* Checks the text, resets on an empty value, parses it otherwise (lists append). */
int experiment_key_apply(ExperimentSpecParser *p, const ExperimentKey *k, const char *value, char **ret_reason);
/* Whether the key holds its default; whether two specs hold the same value. */
bool experiment_key_is_default(const ExperimentKey *k, const ExperimentSpec *s);
bool experiment_key_equal(const ExperimentKey *k, const ExperimentSpec *a, const ExperimentSpec *b);
/* Checks a value as the parser would have (for specs not made by the parser); the reason says why not. */
int experiment_key_check(const ExperimentKey *k, const ExperimentSpec *s, char **ret_reason);
/* The value as INI text (a list: one text per element, quoted when the key says so); NULL strings as "". */
int experiment_key_format(const ExperimentKey *k, const ExperimentSpec *s, char ***ret_values);

int experiment_spec_reasonf(char **ret_reason, int error, const char *fmt, ...) _printf_(3, 4);

/* Value checks. */
bool experiment_name_is_valid(const char *name);
bool experiment_text_is_storable(const char *v);
bool experiment_tracepoint_is_valid(const char *t);
char *experiment_nodes_format(uint64_t mask);

/* Fills field ("Provoke.To") and reason; -EINVAL on the first problem, 0 if the spec is fine. */
int experiment_spec_validate_internal(const ExperimentSpec *s, char ret_field[static 64], char **ret_reason);
