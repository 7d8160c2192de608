/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The keys of [Matrix] that name keys of the guest's .vm, for experiment-spec.c (parsing, output, copies,
 * equality, validation). */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>

#include "experiment/experiment-spec.h"

void experiment_matrix_free(ExperimentSpec *s);
/* name as written ("Append", "VM.Append"); one value added (distinct, bounded), or the key's values dropped. */
int experiment_matrix_add(ExperimentSpec *s, const char *name, const char *value, char **ret_reason);
int experiment_matrix_reset(ExperimentSpec *s, const char *name, char **ret_reason);
/* An INI line's text: values split like a shell's words; empty: the key's values dropped. */
int experiment_matrix_apply_text(ExperimentSpec *s, const char *name, const char *text, char **ret_reason);
/* c is a shallow copy of s: its matrix is replaced by a deep copy (-ENOMEM leaves what was copied to free). */
int experiment_matrix_copy(const ExperimentSpec *s, ExperimentSpec *c);
bool experiment_matrix_equal(const ExperimentSpec *a, const ExperimentSpec *b);
/* "VM.Append=a 'b c'" lines, and "VM.Append": ["a", "b c"] members. */
int experiment_matrix_to_ini(const ExperimentSpec *s, FILE *f);
int experiment_matrix_to_json(const ExperimentSpec *s, json_object *section);
int experiment_matrix_validate(const ExperimentSpec *s, char ret_field[static 64], char **ret_reason);
