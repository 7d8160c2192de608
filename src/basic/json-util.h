/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "basic/macro.h"

static inline void json_object_putp(json_object **p) {
        if (*p)
                (void) json_object_put(*p);
        *p = NULL;
}
#define _cleanup_json_ _cleanup_(json_object_putp)

/* Adders that return -ENOMEM on failure; o must be an object. */
int json_add_string(json_object *o, const char *key, const char *value); /* NULL value → skipped */
int json_add_int(json_object *o, const char *key, int64_t value);
int json_add_uint(json_object *o, const char *key, uint64_t value);  /* clamps to INT64_MAX */
int json_add_bool(json_object *o, const char *key, bool value);
int json_add_double(json_object *o, const char *key, double value);
int json_add(json_object *o, const char *key, json_object *value); /* takes ownership of value */

/* Getters for validated parameters; absent or null → the default. */
const char *json_get_string(json_object *o, const char *key);
int64_t json_get_int(json_object *o, const char *key, int64_t def);
bool json_get_bool(json_object *o, const char *key, bool def);

/* The plain (no whitespace, no escaped slashes) serialization. */
const char *json_to_plain(json_object *o, size_t *ret_len);
