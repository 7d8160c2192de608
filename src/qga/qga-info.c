/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest-info's reply, untrusted: {"version": "7.2.22", "supported_commands": [{"name": …, "enabled": bool}, …]}. */
#include <ctype.h>
#include <stdlib.h>

#include "basic/strv.h"
#include "qga/qga-client-internal.h"

#define QGA_MAX_COMMANDS 1024U                  /* names kept from guest-info */
#define QGA_MAX_NAME 128U
#define QGA_MAX_VERSION 128U

static bool valid_name(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > QGA_MAX_NAME)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("-_.", *s))
                        return false;
        return true;
}

static bool valid_version(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > QGA_MAX_VERSION)
                return false;
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

static int cmp_string(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int qga_parse_info(json_object *result, char **ret_version, char ***ret_commands) {
        _cleanup_(strv_freep) char **commands = NULL;
        json_object *v, *list;
        const char *version = NULL;
        size_t n = 0, k = 0;
        int r;

        if (!json_object_is_type(result, json_type_object))
                return -EBADMSG;
        if (json_object_object_get_ex(result, "version", &v) && json_object_is_type(v, json_type_string) &&
            valid_version(json_object_get_string(v)))
                version = json_object_get_string(v);

        if (!json_object_object_get_ex(result, "supported_commands", &list) ||
            !json_object_is_type(list, json_type_array))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(list) && n < QGA_MAX_COMMANDS; i++) {
                json_object *e = json_object_array_get_idx(list, i), *name, *enabled;

                if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "name", &name) ||
                    !json_object_is_type(name, json_type_string) || !valid_name(json_object_get_string(name)))
                        continue;
                if (!json_object_object_get_ex(e, "enabled", &enabled) ||
                    !json_object_is_type(enabled, json_type_boolean) || !json_object_get_boolean(enabled))
                        continue;
                r = strv_extend(&commands, json_object_get_string(name));
                if (r < 0)
                        return r;
                n++;
        }
        if (!commands) {
                commands = calloc(1, sizeof(char *));
                if (!commands)
                        return -ENOMEM;
        }
        /* Sorted, without duplicates. */
        qsort(commands, n, sizeof(char *), cmp_string);
        for (size_t i = 0; i < n; i++) {
                if (k > 0 && streq(commands[k - 1], commands[i])) {
                        free(commands[i]);
                        continue;
                }
                commands[k++] = commands[i];
        }
        commands[k] = NULL;

        if (version) {
                *ret_version = strdup(version);
                if (!*ret_version)
                        return -ENOMEM;
        } else
                *ret_version = NULL;
        *ret_commands = TAKE_PTR(commands);
        return 0;
}
