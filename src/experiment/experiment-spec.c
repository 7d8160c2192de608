/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Experiment definitions (experiment-spec.h): the INI and JSON forms, the canonical output, equality and copies,
 * each a walk over the key table (experiment-spec-keys.c). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "basic/ini.h"
#include "basic/json-util.h"
#include "basic/strv.h"
#include "basic/utf8.h"
#include "experiment/experiment-spec-internal.h"
#include "experiment/experiment-spec-matrix.h"
#include "vm/vm-spec.h"

/* Fills *e (which may be NULL) with field and the formatted message; returns error. */
static int spec_error(ExperimentSpecError *e, int error, const char *field, const char *fmt, ...) _printf_(4, 5);
static int spec_error(ExperimentSpecError *e, int error, const char *field, const char *fmt, ...) {
        va_list ap;

        if (!e)
                return error;

        *e = (ExperimentSpecError) {};
        if (field)
                e->field = strdup(field);
        va_start(ap, fmt);
        if (vasprintf(&e->message, fmt, ap) < 0)
                e->message = NULL;
        va_end(ap);
        return error;
}

void experiment_spec_error_done(ExperimentSpecError *e) {
        if (!e)
                return;
        e->field = mfree(e->field);
        e->message = mfree(e->message);
}

ExperimentSpec *experiment_spec_new(void) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = NULL;

        s = calloc(1, sizeof(ExperimentSpec));
        if (!s)
                return NULL;
        for (size_t i = 0; i < experiment_keys_n; i++)
                if (experiment_key_reset(experiment_keys + i, s) < 0)
                        return NULL;
        return TAKE_PTR(s);
}

ExperimentSpec *experiment_spec_free(ExperimentSpec *s) {
        if (!s)
                return NULL;
        free(s->name);
        free(s->description);
        free(s->guest);
        free(s->program);
        strv_free(s->arguments);
        strv_free(s->tracepoints);
        experiment_matrix_free(s);
        return mfree(s);
}

/* Validation with the message prefixed by where the spec came from ("ping.experiment: "), if anywhere. */
static int validate_with_prefix(const ExperimentSpec *s, const char *prefix, ExperimentSpecError *ret_error) {
        _cleanup_free_ char *reason = NULL;
        char field[64] = "";
        int r;

        r = experiment_spec_validate_internal(s, field, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, r, field, "%s%s%s: %s", strempty(prefix), prefix ? ": " : "", field,
                                  strna(reason));
        return 0;
}

int experiment_spec_validate(const ExperimentSpec *s, ExperimentSpecError *ret_error) {
        if (!s)
                return -EINVAL;
        return validate_with_prefix(s, NULL, ret_error);
}

/* The keys given a value that the chosen operation or workload does not use: the first one, in table order. */
static int check_assigned(const ExperimentSpecParser *p, const char *prefix, ExperimentSpecError *ret_error) {
        for (size_t i = 0; i < experiment_keys_n; i++) {
                const ExperimentKey *k = experiment_keys + i;
                _cleanup_free_ char *reason = NULL, *field = NULL;

                if (!(p->assigned & (UINT64_C(1) << i)) || experiment_key_belongs(k, p->spec))
                        continue;
                (void) experiment_key_foreign_reason(k, p->spec, &reason);
                if (asprintf(&field, "%s.%s", k->section, k->key) < 0)
                        return -ENOMEM;
                return spec_error(ret_error, -EINVAL, field, "%s%s%s: %s", strempty(prefix), prefix ? ": " : "",
                                  field, strna(reason));
        }
        return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* INI */

typedef struct IniDispatch {
        ExperimentSpecParser *parser;
        const ExperimentKey *failed;
        const char *failed_matrix;      /* a [Matrix] key naming a .vm key, as written */
} IniDispatch;

/* The IniItem callback: data is the IniDispatch, aux the ExperimentKey. */
static int key_dispatch_ini(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        IniDispatch *d = data;
        int r;

        r = experiment_key_apply(d->parser, aux, value, ret_reason);
        if (r < 0 && r != -ENOMEM)
                d->failed = aux;
        return r;
}

/* A [Matrix] key naming a key of the guest's .vm: aux is the name as written. */
static int matrix_dispatch_ini(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        IniDispatch *d = data;
        int r;

        (void) key;
        r = experiment_matrix_apply_text(d->parser->spec, aux, value, ret_reason);
        if (r < 0 && r != -ENOMEM)
                d->failed_matrix = aux;
        return r;
}

/* Every way to name a .vm key in [Matrix]: "Section.Key" and "Key" (an ambiguous one is refused when used). */
static int matrix_items(char ***ret_names) {
        _cleanup_(strv_freep) char **names = NULL;
        const char *section, *key;

        for (size_t i = 0; vm_spec_key_get(i, &section, &key, NULL); i++) {
                if (strv_extendf(&names, "%s.%s", section, key) < 0)
                        return -ENOMEM;
                if (!strv_contains(names, key) && strv_extend(&names, key) < 0)
                        return -ENOMEM;
        }
        *ret_names = TAKE_PTR(names);
        return 0;
}

/* ini_parse_buffer() names unknown sections and keys only in its message; take the field from it. */
static char *field_from_ini_error(const char *message) {
        const char *p, *e, *section;

        p = strstr(message, ": Unknown key '");
        if (p) {
                char *f = NULL;

                p += strlen(": Unknown key '");
                e = strchr(p, '\'');
                section = e ? strstr(e, " in section [") : NULL;
                if (!section)
                        return NULL;
                section += strlen(" in section [");
                if (!strchr(section, ']'))
                        return NULL;
                if (asprintf(&f, "%.*s.%.*s", (int) (strchr(section, ']') - section), section, (int) (e - p), p) < 0)
                        return NULL;
                return f;
        }

        p = strstr(message, ": Unknown section [");
        if (p) {
                p += strlen(": Unknown section [");
                e = strchr(p, ']');
                return e ? strndup(p, (size_t) (e - p)) : NULL;
        }
        return NULL;
}

int experiment_spec_parse_ini(const char *filename, const char *text, ExperimentSpec **ret,
                              ExperimentSpecError *ret_error) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = NULL;
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ IniItem *items = NULL;
        _cleanup_(strv_freep) char **matrix_names = NULL;
        ExperimentSpecParser p;
        IniDispatch d;
        size_t n, n_matrix;
        int r;

        if (!filename)
                filename = "<input>";
        if (!text || !ret)
                return -EINVAL;
        n = strlen(text);
        if (n > EXPERIMENT_FILE_MAX)
                return spec_error(ret_error, -EFBIG, NULL, "%s: the text is %zu bytes, over the limit of %u bytes "
                                  "for an experiment", filename, n, EXPERIMENT_FILE_MAX);

        s = experiment_spec_new();
        if (!s)
                return -ENOMEM;
        p = (ExperimentSpecParser) { .spec = s };
        d = (IniDispatch) { .parser = &p };

        r = matrix_items(&matrix_names);
        if (r < 0)
                return r;
        n_matrix = strv_length(matrix_names);
        items = calloc(experiment_keys_n + n_matrix + 1, sizeof(IniItem));
        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < n_matrix; i++)
                items[experiment_keys_n + i] = (IniItem) {
                        .section = "Matrix",
                        .key = matrix_names[i],
                        .parse = matrix_dispatch_ini,
                        .aux = matrix_names[i],
                };
        for (size_t i = 0; i < experiment_keys_n; i++)
                items[i] = (IniItem) {
                        .section = experiment_keys[i].section,
                        .key = experiment_keys[i].key,
                        .parse = key_dispatch_ini,
                        .aux = experiment_keys + i,
                };

        r = ini_parse_buffer(filename, text, items, &d, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                _cleanup_free_ char *f = NULL;

                if (d.failed) {
                        if (asprintf(&f, "%s.%s", d.failed->section, d.failed->key) < 0)
                                return -ENOMEM;
                } else if (d.failed_matrix) {
                        if (asprintf(&f, "Matrix.%s", d.failed_matrix) < 0)
                                return -ENOMEM;
                } else if (error)
                        f = field_from_ini_error(error);
                return spec_error(ret_error, r, f, "%s", error ?: "Failed to parse");
        }

        r = check_assigned(&p, filename, ret_error);
        if (r < 0)
                return r;
        r = validate_with_prefix(s, filename, ret_error);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

int experiment_spec_parse_file(const char *path, ExperimentSpec **ret, ExperimentSpecError *ret_error) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r;

        if (!path || !ret)
                return -EINVAL;

        r = read_full_file(path, EXPERIMENT_FILE_MAX, &buf, &size);
        if (r < 0)
                return spec_error(ret_error, r, NULL, "%s: Failed to read file: %s%s", path, strerror(-r),
                                  r == -EFBIG ? " (an experiment is at most 64 KiB)" : "");
        if (strlen(buf) != size)
                return spec_error(ret_error, -EINVAL, NULL, "%s: File contains a NUL byte", path);

        return experiment_spec_parse_ini(path, buf, ret, ret_error);
}

/* ---------------------------------------------------------------------------------------------------- */
/* JSON */

static char *strip_dup(const char *s) {
        const char *e;

        while (isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                e--;
        return strndup(s, (size_t) (e - s));
}

/* A JSON scalar as the text an INI assignment would carry: null → "" (reset). -EMEDIUMTYPE for objects and
 * arrays, -EINVAL for strings with NUL or invalid UTF-8. */
static int json_scalar_to_text(json_object *v, char **ret) {
        char *t = NULL;

        switch (json_object_get_type(v)) {
        case json_type_null:
                t = strdup("");
                break;
        case json_type_boolean:
                t = strdup(json_object_get_boolean(v) ? "yes" : "no");
                break;
        case json_type_int:
        case json_type_double:
                t = strdup(json_object_get_string(v));
                break;
        case json_type_string: {
                const char *s = json_object_get_string(v);
                size_t n = (size_t) json_object_get_string_len(v);

                if (strlen(s) != n || !utf8_is_valid_text(s, n))
                        return -EINVAL;
                t = strip_dup(s);
                break;
        }
        case json_type_object:
        case json_type_array:
                return -EMEDIUMTYPE;
        }

        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

static bool key_is_list(const ExperimentKey *k) {
        return k->type == EXPERIMENT_KEY_STRV || k->type == EXPERIMENT_KEY_COUNTERS;
}

static int json_apply(ExperimentSpecParser *p, const ExperimentKey *k, const char *field, json_object *v,
                      ExperimentSpecError *ret_error) {
        _cleanup_free_ char *text = NULL, *reason = NULL;
        int r;

        r = json_scalar_to_text(v, &text);
        if (r == -ENOMEM)
                return r;
        if (r == -EMEDIUMTYPE)
                return spec_error(ret_error, -EINVAL, field, "%s: expected a string, number, boolean or null%s", field,
                                  key_is_list(k) ? ", or an array of those" : "");
        if (r < 0)
                return spec_error(ret_error, r, field, "%s: Invalid value: not valid UTF-8 text without NUL", field);

        p->text_bytes += strlen(text);
        if (p->text_bytes > EXPERIMENT_FILE_MAX)
                return spec_error(ret_error, -EFBIG, field, "%s: the values are over the limit of %u bytes for an "
                                  "experiment", field, EXPERIMENT_FILE_MAX);

        r = experiment_key_apply(p, k, text, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, r, field, "%s: Invalid value '%s': %s", field, text,
                                  reason ?: strerror(-r));
        return 0;
}

static int json_apply_key(ExperimentSpecParser *p, const ExperimentKey *k, const char *field, json_object *v,
                          ExperimentSpecError *ret_error) {
        size_t n;
        int r;

        if (!json_object_is_type(v, json_type_array))
                return json_apply(p, k, field, v, ret_error);

        if (!key_is_list(k))
                return spec_error(ret_error, -EINVAL, field, "%s: expected a string, number, boolean or null, not an "
                                  "array (%s= does not take a list)", field, k->key);

        /* An array is the whole list: reset, then one assignment per element. */
        r = experiment_key_apply(p, k, "", NULL);
        if (r < 0)
                return r;

        n = json_object_array_length(v);
        if (n > EXPERIMENT_FILE_MAX)
                return spec_error(ret_error, -E2BIG, field, "%s: too many elements", field);
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(v, i);

                /* An empty element would empty the list (as "Key=" does): refused, '' is an empty argument. */
                if (!e || json_object_is_type(e, json_type_null) || json_object_is_type(e, json_type_array) ||
                    json_object_is_type(e, json_type_object) ||
                    (json_object_is_type(e, json_type_string) && isempty(json_object_get_string(e))))
                        return spec_error(ret_error, -EINVAL, field, "%s: expected an array of non-empty strings, "
                                          "numbers or booleans", field);
                r = json_apply(p, k, field, e, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A [Matrix] key naming a key of the guest's .vm: an array of values (strings, numbers or booleans, each one
 * value), one such value, or null (none). */
static int json_apply_matrix(ExperimentSpec *s, const char *field, const char *key, json_object *v,
                             ExperimentSpecError *ret_error) {
        _cleanup_free_ char *reason = NULL;
        size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 1;
        int r = 0;

        if (!v)
                r = experiment_matrix_reset(s, key, &reason);
        for (size_t i = 0; v && r >= 0 && i < n; i++) {
                json_object *e = json_object_is_type(v, json_type_array) ? json_object_array_get_idx(v, i) : v;
                _cleanup_free_ char *text = NULL;

                r = json_scalar_to_text(e, &text);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return spec_error(ret_error, -EINVAL, field, "%s: expected an array of values (strings, "
                                          "numbers or booleans)", field);
                r = experiment_matrix_add(s, key, text, &reason);
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, r, field, "%s: %s", field, strna(reason));
        return 0;
}

int experiment_spec_parse_json(json_object *definition, ExperimentSpec **ret, ExperimentSpecError *ret_error) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = NULL;
        ExperimentSpecParser p;
        int r;

        if (!ret)
                return -EINVAL;
        if (!definition || !json_object_is_type(definition, json_type_object))
                return spec_error(ret_error, -EINVAL, NULL, "The experiment must be a JSON object with the sections "
                                  "Experiment, Provoke, Workload and Measure");

        s = experiment_spec_new();
        if (!s)
                return -ENOMEM;
        p = (ExperimentSpecParser) { .spec = s };

        json_object_object_foreach(definition, section, keys) {
                if (!experiment_section_known(section))
                        return spec_error(ret_error, -EINVAL, section, "%s: Unknown section, expected Experiment, "
                                          "Provoke, Workload, Measure or Matrix", section);
                if (!keys)
                        continue;       /* "Workload": null is the same as leaving the section out */
                if (!json_object_is_type(keys, json_type_object))
                        return spec_error(ret_error, -EINVAL, section, "%s: expected an object with the keys of "
                                          "section [%s]", section, section);

                json_object_object_foreach(keys, key, value) {
                        const ExperimentKey *k = experiment_key_find(section, key);
                        _cleanup_free_ char *f = NULL;

                        if (asprintf(&f, "%s.%s", section, key) < 0)
                                return -ENOMEM;
                        if (!k && streq(section, "Matrix")) {
                                r = json_apply_matrix(s, f, key, value, ret_error);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (!k)
                                return spec_error(ret_error, -EINVAL, f, "%s: Unknown key in section [%s]", f, section);

                        r = json_apply_key(&p, k, f, value, ret_error);
                        if (r < 0)
                                return r;
                }
        }

        r = check_assigned(&p, NULL, ret_error);
        if (r < 0)
                return r;
        r = validate_with_prefix(s, NULL, ret_error);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Output */

int experiment_spec_to_ini(const ExperimentSpec *s, char **ret) {
        _cleanup_free_ char *buf = NULL;
        const char *section = NULL;
        size_t size = 0;
        FILE *f;
        int r = 0;

        if (!s || !ret)
                return -EINVAL;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        for (size_t i = 0; i < experiment_keys_n && r >= 0; i++) {
                const ExperimentKey *k = experiment_keys + i;
                _cleanup_(strv_freep) char **values = NULL;

                if (!experiment_key_belongs(k, s))
                        continue;
                if (!section || !streq(section, k->section)) {
                        fprintf(f, "%s[%s]\n", section ? "\n" : "", k->section);
                        section = k->section;
                }
                r = experiment_key_format(k, s, &values);
                if (r < 0)
                        break;
                if (k->type == EXPERIMENT_KEY_COUNTERS) {
                        /* One line: a later line would add to it. */
                        fprintf(f, "%s=", k->key);
                        for (char **v = values; *v; v++)
                                fprintf(f, "%s%s", v == values ? "" : " ", *v);
                        fputc('\n', f);
                } else if (!values[0])
                        fprintf(f, "%s=\n", k->key);
                else
                        for (char **v = values; *v; v++)
                                fprintf(f, "%s=%s\n", k->key, *v);
        }

        if (r >= 0 && s->n_matrix > 0)
                r = experiment_matrix_to_ini(s, f);
        if (fclose(f) != 0 || !buf)
                return -ENOMEM;
        if (r < 0)
                return r;

        *ret = TAKE_PTR(buf);
        return 0;
}

/* One key in the JSON form: typed values; a NULL string as null (which parses back as "the default"). */
static int key_to_json(json_object *o, const ExperimentKey *k, const ExperimentSpec *s) {
        _cleanup_(strv_freep) char **values = NULL;
        const void *x = experiment_key_field_const(k, s);
        int r;

        switch (k->type) {
        case EXPERIMENT_KEY_STRING:
                if (!*(char *const *) x)
                        return json_object_object_add(o, k->key, NULL) < 0 ? -ENOMEM : 0;
                return json_add_string(o, k->key, *(char *const *) x);
        case EXPERIMENT_KEY_BOOL:
                return json_add_bool(o, k->key, *(const bool *) x);
        case EXPERIMENT_KEY_UNSIGNED:
                return json_add_uint(o, k->key, *(const unsigned *) x);
        case EXPERIMENT_KEY_UINT64:
                return json_add(o, k->key, json_object_new_uint64(*(const uint64_t *) x));
        case EXPERIMENT_KEY_SIZE:
                return json_add_uint(o, k->key, *(const uint64_t *) x);
        case EXPERIMENT_KEY_SEC:
        case EXPERIMENT_KEY_ENUM:
        case EXPERIMENT_KEY_NODES:
                r = experiment_key_format(k, s, &values);
                if (r < 0)
                        return r;
                return json_add_string(o, k->key, values[0]);
        case EXPERIMENT_KEY_STRV:
        case EXPERIMENT_KEY_COUNTERS: {
                _cleanup_json_ json_object *a = json_object_new_array();

                if (!a)
                        return -ENOMEM;
                r = experiment_key_format(k, s, &values);
                if (r < 0)
                        return r;
                for (char **v = values; *v; v++) {
                        json_object *e = json_object_new_string(*v);

                        if (!e || json_object_array_add(a, e) < 0) {
                                json_object_put(e);
                                return -ENOMEM;
                        }
                }
                return json_add(o, k->key, TAKE_PTR(a));
        }
        case _EXPERIMENT_KEY_TYPE_MAX:
                break;
        }
        return -EINVAL;
}

int experiment_spec_to_json(const ExperimentSpec *s, json_object **ret) {
        _cleanup_json_ json_object *root = NULL;
        int r;

        if (!s || !ret)
                return -EINVAL;

        root = json_object_new_object();
        if (!root)
                return -ENOMEM;

        for (size_t i = 0; i < experiment_sections_n; i++) {
                _cleanup_json_ json_object *section = json_object_new_object();

                if (!section)
                        return -ENOMEM;
                if (streq(experiment_sections[i], "Matrix") && s->n_matrix == 0)
                        continue;       /* no matrix: the form stays as it was before there were any */
                for (size_t k = 0; k < experiment_keys_n; k++) {
                        if (!streq(experiment_keys[k].section, experiment_sections[i]) ||
                            !experiment_key_belongs(experiment_keys + k, s))
                                continue;
                        r = key_to_json(section, experiment_keys + k, s);
                        if (r < 0)
                                return r;
                }
                if (streq(experiment_sections[i], "Matrix")) {
                        r = experiment_matrix_to_json(s, section);
                        if (r < 0)
                                return r;
                }
                r = json_add(root, experiment_sections[i], TAKE_PTR(section));
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(root);
        return 0;
}

bool experiment_spec_equal(const ExperimentSpec *a, const ExperimentSpec *b) {
        if (a == b)
                return true;
        if (!a || !b)
                return false;
        for (size_t i = 0; i < experiment_keys_n; i++)
                if (!experiment_key_equal(experiment_keys + i, a, b))
                        return false;
        return experiment_matrix_equal(a, b);
}

int experiment_spec_copy(const ExperimentSpec *s, ExperimentSpec **ret) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *c = NULL;

        if (!s || !ret)
                return -EINVAL;

        c = calloc(1, sizeof(ExperimentSpec));
        if (!c)
                return -ENOMEM;
        *c = *s;
        c->name = c->description = c->guest = c->program = NULL;
        c->arguments = c->tracepoints = NULL;
        if (experiment_matrix_copy(s, c) < 0)
                return -ENOMEM;
        if (free_and_strdup(&c->name, s->name) < 0 ||
            free_and_strdup(&c->description, s->description) < 0 ||
            free_and_strdup(&c->guest, s->guest) < 0 ||
            free_and_strdup(&c->program, s->program) < 0)
                return -ENOMEM;
        if (s->arguments && !(c->arguments = strv_copy(s->arguments)))
                return -ENOMEM;
        if (s->tracepoints && !(c->tracepoints = strv_copy(s->tracepoints)))
                return -ENOMEM;

        *ret = TAKE_PTR(c);
        return 0;
}
