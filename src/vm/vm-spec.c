/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Guest definitions (vm-spec.h): parsing the INI and JSON forms, the canonical output, equality and copies, each
 * a walk over the key table (vm-spec-keys.c). */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "basic/ini.h"
#include "basic/json-util.h"
#include "basic/strv.h"
#include "basic/utf8.h"
#include "vm/vm-spec-internal.h"

/* Fills *e (which may be NULL) with field and the formatted message; returns error. */
static int spec_error(VmSpecError *e, int error, const char *field, const char *fmt, ...) _printf_(4, 5);
static int spec_error(VmSpecError *e, int error, const char *field, const char *fmt, ...) {
        va_list ap;

        if (!e)
                return error;

        *e = (VmSpecError) {};
        if (field)
                e->field = strdup(field);
        va_start(ap, fmt);
        if (vasprintf(&e->message, fmt, ap) < 0)
                e->message = NULL;
        va_end(ap);
        return error;
}

void vm_spec_error_done(VmSpecError *e) {
        if (!e)
                return;
        e->field = mfree(e->field);
        e->message = mfree(e->message);
}

VmSpec *vm_spec_new(void) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;

        s = calloc(1, sizeof(VmSpec));
        if (!s)
                return NULL;

        for (size_t i = 0; i < vm_keys_n; i++)
                if (vm_key_reset(vm_keys + i, s) < 0)
                        return NULL;

        return TAKE_PTR(s);
}

VmSpec *vm_spec_free(VmSpec *s) {
        if (!s)
                return NULL;

        for (size_t i = 0; i < vm_keys_n; i++)
                switch (vm_keys[i].type) {
                case VM_KEY_STRING:
                        free(*(char **) vm_key_field(vm_keys + i, s));
                        break;
                case VM_KEY_STRV:
                        strv_free(*(char ***) vm_key_field(vm_keys + i, s));
                        break;
                case VM_KEY_BOOL:
                case VM_KEY_UNSIGNED:
                case VM_KEY_SIZE:
                case VM_KEY_SEC:
                case VM_KEY_ENUM:
                        break;
                }
        return mfree(s);
}

int vm_spec_validate(const VmSpec *s, VmSpecError *ret_error) {
        _cleanup_free_ char *reason = NULL;
        const char *field = NULL;
        int r;

        r = vm_spec_validate_internal(s, &field, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, r, field, "%s: %s", field, strna(reason));
        return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* INI */

/* The IniItem callback: data is the VmSpecParser, aux the VmKey. */
static int vm_key_dispatch_ini(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        return vm_key_apply(data, aux, value, ret_reason);
}

/* The name a file gives: its basename without ".vm", or NULL if it does not end in ".vm". */
static int name_from_filename(const char *filename, char **ret) {
        const char *base;
        size_t n;

        *ret = NULL;
        if (!filename)
                return 0;
        base = strrchr(filename, '/');
        base = base ? base + 1 : filename;
        n = strlen(base);
        if (n <= 3 || !streq(base + n - 3, ".vm"))
                return 0;
        *ret = strndup(base, n - 3);
        return *ret ? 0 : -ENOMEM;
}

/* ini_parse_buffer() reports unknown sections and keys only in its message; recover the field from it. */
static char *field_from_ini_error(const char *message) {
        const char *p, *e;

        p = strstr(message, ": Unknown key '");
        if (p) {
                _cleanup_free_ char *key = NULL;
                const char *section;

                p += strlen(": Unknown key '");
                e = strchr(p, '\'');
                if (!e)
                        return NULL;
                key = strndup(p, (size_t) (e - p));
                section = strstr(e, " in section [");
                if (!key || !section)
                        return NULL;
                section += strlen(" in section [");
                e = strchr(section, ']');
                if (!e)
                        return NULL;
                {
                        char *f = NULL;

                        if (asprintf(&f, "%.*s.%s", (int) (e - section), section, key) < 0)
                                return NULL;
                        return f;
                }
        }

        p = strstr(message, ": Unknown section [");
        if (p) {
                p += strlen(": Unknown section [");
                e = strchr(p, ']');
                return e ? strndup(p, (size_t) (e - p)) : NULL;
        }
        return NULL;
}

int vm_spec_parse_ini(const char *filename, const char *text, const char *name_hint, VmSpec **ret,
                      VmSpecError *ret_error) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;
        _cleanup_free_ char *file_name = NULL, *error = NULL, *reason = NULL;
        _cleanup_free_ IniItem *items = NULL;
        VmSpecParser p;
        const char *field = NULL;
        int r;

        if (!filename)
                filename = "<input>";
        if (!text || !ret)
                return -EINVAL;
        if (strlen(text) > INI_FILE_MAX)
                return spec_error(ret_error, -EFBIG, NULL, "%s: the text is %zu bytes, over the limit of %u bytes "
                                  "for a .vm file", filename, strlen(text), INI_FILE_MAX);

        s = vm_spec_new();
        if (!s)
                return -ENOMEM;

        r = name_from_filename(filename, &file_name);
        if (r < 0)
                return r;

        p = (VmSpecParser) { .spec = s };
        if (name_hint) {
                p.expected_name = name_hint;
                p.expected_name_why = "the name the VM is defined under";
        } else if (file_name) {
                p.expected_name = file_name;
                p.expected_name_why = "the file name";
        }

        items = calloc(vm_keys_n + 1, sizeof(IniItem));
        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < vm_keys_n; i++)
                items[i] = (IniItem) {
                        .section = vm_keys[i].section,
                        .key = vm_keys[i].key,
                        .parse = vm_key_dispatch_ini,
                        .offset = 0,
                        .aux = vm_keys + i,
                };

        r = ini_parse_buffer(filename, text, items, &p, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                _cleanup_free_ char *f = NULL;

                if (p.failed) {
                        if (asprintf(&f, "%s.%s", p.failed->section, p.failed->key) < 0)
                                return -ENOMEM;
                } else if (error)
                        f = field_from_ini_error(error);
                return spec_error(ret_error, r, f, "%s", error ?: "Failed to parse");
        }

        if (!s->name && p.expected_name) {
                s->name = strdup(p.expected_name);
                if (!s->name)
                        return -ENOMEM;
        }

        r = vm_spec_validate_internal(s, &field, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, r, field, "%s: %s", filename, strna(reason));

        *ret = TAKE_PTR(s);
        return 0;
}

int vm_spec_parse_file(const char *path, VmSpec **ret, VmSpecError *ret_error) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r;

        if (!path || !ret)
                return -EINVAL;

        r = read_full_file(path, INI_FILE_MAX, &buf, &size);
        if (r < 0)
                return spec_error(ret_error, r, NULL, "%s: Failed to read file: %s", path, strerror(-r));
        if (strlen(buf) != size)
                return spec_error(ret_error, -EINVAL, NULL, "%s: File contains a NUL byte", path);

        return vm_spec_parse_ini(path, buf, NULL, ret, ret_error);
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

/* A JSON scalar as the text an INI assignment would carry. null → "" (reset). -EMEDIUMTYPE for objects and
 * arrays. */
static int json_scalar_to_text(json_object *v, char **ret) {
        char *t = NULL;

        switch (json_object_get_type(v)) {
        case json_type_null:
                t = strdup("");
                break;
        case json_type_boolean:
                t = strdup(json_object_get_boolean(v) ? "yes" : "no");
                break;
        case json_type_int: {
                int64_t i = json_object_get_int64(v);

                if (i >= 0) {
                        if (asprintf(&t, "%" PRIu64, json_object_get_uint64(v)) < 0)
                                t = NULL;
                } else if (asprintf(&t, "%" PRIi64, i) < 0)
                        t = NULL;
                break;
        }
        case json_type_double:
                t = strdup(json_object_get_string(v));
                break;
        case json_type_string:
                t = strip_dup(json_object_get_string(v));
                break;
        case json_type_object:
        case json_type_array:
                return -EMEDIUMTYPE;
        }

        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

static int json_apply(VmSpecParser *p, const VmKey *k, json_object *v, VmSpecError *ret_error) {
        _cleanup_free_ char *text = NULL, *reason = NULL;
        int r;

        r = json_scalar_to_text(v, &text);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, -EINVAL, NULL, "%s.%s: expected a string, number, boolean or null%s",
                                  k->section, k->key, k->type == VM_KEY_STRV ? ", or an array of those" : "");
        /* Text as a .vm line must be (ini.c): valid UTF-8 without NUL — json-c checks neither. */
        if (json_object_is_type(v, json_type_string) &&
            !utf8_is_valid_text(json_object_get_string(v), (size_t) json_object_get_string_len(v)))
                return spec_error(ret_error, -EINVAL, NULL, "%s.%s: Invalid value: not valid UTF-8 text without NUL",
                                  k->section, k->key);

        r = vm_key_apply(p, k, text, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, r, NULL, "%s.%s: Invalid value '%s': %s", k->section, k->key, text,
                                  reason ?: strerror(-r));
        return 0;
}

static int json_apply_key(VmSpecParser *p, const VmKey *k, json_object *v, VmSpecError *ret_error) {
        size_t n;
        int r;

        if (!json_object_is_type(v, json_type_array))
                return json_apply(p, k, v, ret_error);

        if (k->type != VM_KEY_STRV)
                return spec_error(ret_error, -EINVAL, NULL, "%s.%s: expected a string, number, boolean or null, "
                                  "not an array (%s= does not take a list)", k->section, k->key, k->key);

        /* An array is the whole list: reset, then one assignment per element. */
        r = vm_key_reset(k, p->spec);
        if (r < 0)
                return r;

        n = json_object_array_length(v);
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(v, i);

                if (!e || json_object_is_type(e, json_type_null) || json_object_is_type(e, json_type_array) ||
                    json_object_is_type(e, json_type_object))
                        return spec_error(ret_error, -EINVAL, NULL, "%s.%s: expected an array of strings, numbers "
                                          "or booleans", k->section, k->key);
                r = json_apply(p, k, e, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

int vm_spec_parse_json(json_object *definition, const char *name_hint, VmSpec **ret, VmSpecError *ret_error) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;
        _cleanup_free_ char *reason = NULL;
        VmSpecParser p;
        const char *field = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        if (!definition || !json_object_is_type(definition, json_type_object))
                return spec_error(ret_error, -EINVAL, NULL,
                                  "The VM definition must be a JSON object with the sections VM, Memory, CPU, Restart and Balloon");

        s = vm_spec_new();
        if (!s)
                return -ENOMEM;

        p = (VmSpecParser) {
                .spec = s,
                .expected_name = name_hint,
                .expected_name_why = "the name the VM is defined under",
        };

        json_object_object_foreach(definition, section, keys) {
                if (!vm_section_known(section))
                        return spec_error(ret_error, -EINVAL, section,
                                          "%s: Unknown section, expected VM, Memory, CPU, Restart or Balloon", section);
                if (!keys)
                        continue;       /* "Memory": null is the same as leaving the section out */
                if (!json_object_is_type(keys, json_type_object))
                        return spec_error(ret_error, -EINVAL, section,
                                          "%s: expected an object with the keys of section [%s]", section, section);

                json_object_object_foreach(keys, key, value) {
                        const VmKey *k = vm_key_find(section, key);
                        _cleanup_free_ char *f = NULL;

                        if (asprintf(&f, "%s.%s", section, key) < 0)
                                return -ENOMEM;
                        if (!k)
                                return spec_error(ret_error, -EINVAL, f, "%s: Unknown key in section [%s]", f,
                                                  section);

                        r = json_apply_key(&p, k, value, ret_error);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                if (ret_error) {
                                        free(ret_error->field);
                                        ret_error->field = TAKE_PTR(f);
                                }
                                return r;
                        }
                }
        }

        if (!s->name && name_hint) {
                s->name = strdup(name_hint);
                if (!s->name)
                        return -ENOMEM;
        }

        r = vm_spec_validate_internal(s, &field, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, r, field, "%s: %s", field, strna(reason));

        *ret = TAKE_PTR(s);
        return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Output */

/* The canonical INI text of one key: "Key=value" lines, one per element of a list ("Key=" for an empty one). */
static int key_to_ini(FILE *f, const VmKey *k, const VmSpec *s) {
        const void *field = vm_key_field_const(k, s);
        char buf[64];

        switch (k->type) {
        case VM_KEY_STRING:
                fprintf(f, "%s=%s\n", k->key, strempty(*(char *const *) field));
                return 0;
        case VM_KEY_STRV: {
                char *const *l = *(char **const *) field;

                if (*(const size_t *) ((const uint8_t *) s + k->n_offset) == 0)
                        fprintf(f, "%s=\n", k->key);
                for (char *const *i = l; i && *i; i++) {
                        /* ExtraArgs=: quoted so that splitting gives each word back. */
                        _cleanup_free_ char *q = k->quote ? shell_quote(*i) : strdup(*i);

                        if (!q)
                                return -ENOMEM;
                        fprintf(f, "%s=%s\n", k->key, q);
                }
                return 0;
        }
        case VM_KEY_BOOL:
                fprintf(f, "%s=%s\n", k->key, *(const bool *) field ? "yes" : "no");
                return 0;
        case VM_KEY_UNSIGNED:
                fprintf(f, "%s=%u\n", k->key, *(const unsigned *) field);
                return 0;
        case VM_KEY_SIZE:
                vm_spec_format_size(buf, *(const uint64_t *) field);
                fprintf(f, "%s=%s\n", k->key, buf);
                return 0;
        case VM_KEY_SEC:
                vm_spec_format_sec(buf, *(const uint64_t *) field);
                fprintf(f, "%s=%s\n", k->key, buf);
                return 0;
        case VM_KEY_ENUM:
                fprintf(f, "%s=%s\n", k->key, strempty(k->to_string(*(const int *) field)));
                return 0;
        }
        return -EINVAL;
}

int vm_spec_to_ini(const VmSpec *s, char **ret) {
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

        for (size_t i = 0; i < vm_keys_n && r >= 0; i++) {
                if (!section || !streq(section, vm_keys[i].section)) {
                        fprintf(f, "%s[%s]\n", section ? "\n" : "", vm_keys[i].section);
                        section = vm_keys[i].section;
                }
                r = key_to_ini(f, vm_keys + i, s);
        }

        if (fclose(f) != 0 || !buf)
                return -ENOMEM;
        if (r < 0)
                return r;

        *ret = TAKE_PTR(buf);
        return 0;
}

static int json_add_strv(json_object *o, const char *key, char *const *l, bool quote) {
        _cleanup_json_ json_object *a = json_object_new_array();
        int r;

        if (!a)
                return -ENOMEM;
        for (char *const *i = l; i && *i; i++) {
                _cleanup_free_ char *q = quote ? shell_quote(*i) : strdup(*i);
                json_object *e;

                if (!q)
                        return -ENOMEM;
                e = json_object_new_string(q);
                if (!e)
                        return -ENOMEM;
                r = json_object_array_add(a, e);
                if (r < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
        }
        return json_add(o, key, TAKE_PTR(a));
}

/* One key in the JSON form: typed values (numbers for counts and bytes, booleans), NULL strings as null (which
 * parses back as "reset to the default"). */
static int key_to_json(json_object *o, const VmKey *k, const VmSpec *s) {
        const void *field = vm_key_field_const(k, s);
        const char *str;
        char buf[64];

        switch (k->type) {
        case VM_KEY_STRING:
                str = *(char *const *) field;
                if (!str)
                        return json_object_object_add(o, k->key, NULL) < 0 ? -ENOMEM : 0;
                return json_add_string(o, k->key, str);
        case VM_KEY_STRV:
                return json_add_strv(o, k->key, *(char **const *) field, k->quote);
        case VM_KEY_BOOL:
                return json_add_bool(o, k->key, *(const bool *) field);
        case VM_KEY_UNSIGNED:
                return json_add_uint(o, k->key, *(const unsigned *) field);
        case VM_KEY_SIZE:
                return json_add_uint(o, k->key, *(const uint64_t *) field);
        case VM_KEY_SEC:
                vm_spec_format_sec(buf, *(const uint64_t *) field);
                return json_add_string(o, k->key, buf);
        case VM_KEY_ENUM:
                return json_add_string(o, k->key, k->to_string(*(const int *) field));
        }
        return -EINVAL;
}

int vm_spec_to_json(const VmSpec *s, json_object **ret) {
        _cleanup_json_ json_object *root = NULL;
        int r;

        if (!s || !ret)
                return -EINVAL;

        root = json_object_new_object();
        if (!root)
                return -ENOMEM;

        for (size_t i = 0; i < vm_sections_n; i++) {
                _cleanup_json_ json_object *section = json_object_new_object();

                if (!section)
                        return -ENOMEM;
                for (size_t k = 0; k < vm_keys_n; k++) {
                        if (!streq(vm_keys[k].section, vm_sections[i]))
                                continue;
                        r = key_to_json(section, vm_keys + k, s);
                        if (r < 0)
                                return r;
                }
                r = json_add(root, vm_sections[i], TAKE_PTR(section));
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(root);
        return 0;
}

static bool key_equal(const VmKey *k, const VmSpec *a, const VmSpec *b) {
        const void *x = vm_key_field_const(k, a), *y = vm_key_field_const(k, b);

        switch (k->type) {
        case VM_KEY_STRING:
                return streq_ptr(*(char *const *) x, *(char *const *) y);
        case VM_KEY_STRV:
                return *(const size_t *) ((const uint8_t *) a + k->n_offset) ==
                               *(const size_t *) ((const uint8_t *) b + k->n_offset) &&
                       strv_equal(*(char **const *) x, *(char **const *) y);
        case VM_KEY_BOOL:
                return *(const bool *) x == *(const bool *) y;
        case VM_KEY_UNSIGNED:
                return *(const unsigned *) x == *(const unsigned *) y;
        case VM_KEY_SIZE:
        case VM_KEY_SEC:
                return *(const uint64_t *) x == *(const uint64_t *) y;
        case VM_KEY_ENUM:
                return *(const int *) x == *(const int *) y;
        }
        return false;
}

bool vm_spec_equal(const VmSpec *a, const VmSpec *b) {
        if (a == b)
                return true;
        if (!a || !b)
                return false;

        for (size_t i = 0; i < vm_keys_n; i++)
                if (!key_equal(vm_keys + i, a, b))
                        return false;
        return true;
}

static int key_copy(const VmKey *k, const VmSpec *from, VmSpec *to) {
        const void *x = vm_key_field_const(k, from);
        void *y = vm_key_field(k, to);

        switch (k->type) {
        case VM_KEY_STRING:
                return free_and_strdup(y, *(char *const *) x);
        case VM_KEY_STRV: {
                char **l = NULL;

                if (*(char **const *) x) {
                        l = strv_copy(*(char **const *) x);
                        if (!l)
                                return -ENOMEM;
                }
                strv_free(*(char ***) y);
                *(char ***) y = l;
                *(size_t *) ((uint8_t *) to + k->n_offset) = *(const size_t *) ((const uint8_t *) from + k->n_offset);
                return 0;
        }
        case VM_KEY_BOOL:
                *(bool *) y = *(const bool *) x;
                return 0;
        case VM_KEY_UNSIGNED:
                *(unsigned *) y = *(const unsigned *) x;
                return 0;
        case VM_KEY_SIZE:
        case VM_KEY_SEC:
                *(uint64_t *) y = *(const uint64_t *) x;
                return 0;
        case VM_KEY_ENUM:
                *(int *) y = *(const int *) x;
                return 0;
        }
        return -EINVAL;
}

int vm_spec_copy(const VmSpec *s, VmSpec **ret) {
        _cleanup_(vm_spec_freep) VmSpec *c = NULL;
        int r;

        if (!s || !ret)
                return -EINVAL;

        c = calloc(1, sizeof(VmSpec));
        if (!c)
                return -ENOMEM;
        for (size_t i = 0; i < vm_keys_n; i++) {
                r = key_copy(vm_keys + i, s, c);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}
