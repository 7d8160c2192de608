/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "basic/json-util.h"

int json_add(json_object *o, const char *key, json_object *value) {
        if (!value)
                return -ENOMEM;
        if (json_object_object_add(o, key, value) < 0) {
                json_object_put(value);
                return -ENOMEM;
        }
        return 0;
}

int json_add_string(json_object *o, const char *key, const char *value) {
        if (!value)
                return 0;
        return json_add(o, key, json_object_new_string(value));
}

int json_add_int(json_object *o, const char *key, int64_t value) {
        return json_add(o, key, json_object_new_int64(value));
}

int json_add_uint(json_object *o, const char *key, uint64_t value) {
        return json_add(o, key, json_object_new_int64(value > INT64_MAX ? INT64_MAX : (int64_t) value));
}

int json_add_bool(json_object *o, const char *key, bool value) {
        return json_add(o, key, json_object_new_boolean(value));
}

int json_add_double(json_object *o, const char *key, double value) {
        return json_add(o, key, json_object_new_double(value));
}

const char *json_get_string(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

int64_t json_get_int(json_object *o, const char *key, int64_t def) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return def;
        return json_object_get_int64(v);
}

bool json_get_bool(json_object *o, const char *key, bool def) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
                return def;
        return json_object_get_boolean(v);
}

const char *json_to_plain(json_object *o, size_t *ret_len) {
        return json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, ret_len);
}
