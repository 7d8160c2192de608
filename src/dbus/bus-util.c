/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dbus/bus-util.h"
#include "basic/json-util.h"
#include "basic/log.h"

int bus_object_path(const char *prefix, const char *name, char **ret) {
        return sd_bus_path_encode(prefix, name, ret);
}

int bus_object_name_from_path(const char *prefix, const char *path, char **ret) {
        char *name = NULL;
        int r;

        r = sd_bus_path_decode(path, prefix, &name);
        if (r <= 0) {
                *ret = NULL;
                return r;
        }
        if (isempty(name)) {
                free(name);
                *ret = NULL;
                return 0;
        }
        *ret = name;
        return 1;
}

bool bus_creds_privileged(uid_t uid, const gid_t *gids, size_t n_gids, gid_t admin_gid) {
        if (uid == 0)
                return true;
        if (admin_gid == (gid_t) -1)
                return false;
        for (size_t i = 0; i < n_gids; i++)
                if (gids[i] == admin_gid)
                        return true;
        return false;
}

typedef struct PrivilegeQuery {
        sd_bus_message *request;
        gid_t admin_gid;
        BusPrivilegedHandler handler;
        void *userdata;
} PrivilegeQuery;

static void privilege_query_free(void *p) {
        PrivilegeQuery *q = p;

        if (!q)
                return;
        sd_bus_message_unref(q->request);
        free(q);
}

/* Parses the a{sv} of GetConnectionCredentials: UnixUserID and UnixGroupIDs (dbus-daemon ≥ 1.14,
 * dbus-broker). Without UnixGroupIDs only uid 0 is privileged. */
static int parse_credentials(sd_bus_message *reply, uid_t *ret_uid, gid_t **ret_gids, size_t *ret_n) {
        _cleanup_free_ gid_t *gids = NULL;
        size_t n = 0;
        bool have_uid = false;
        uint32_t uid = 0;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;

                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        return r;
                if (streq(key, "UnixUserID")) {
                        r = sd_bus_message_read(reply, "v", "u", &uid);
                        if (r < 0)
                                return r;
                        have_uid = true;
                } else if (streq(key, "UnixGroupIDs")) {
                        uint32_t g;

                        r = sd_bus_message_enter_container(reply, 'v', "au");
                        if (r < 0)
                                return r;
                        r = sd_bus_message_enter_container(reply, 'a', "u");
                        if (r < 0)
                                return r;
                        while ((r = sd_bus_message_read(reply, "u", &g)) > 0) {
                                gid_t *t;

                                if (n >= 65536)
                                        return -E2BIG;
                                t = realloc(gids, (n + 1) * sizeof(gid_t));
                                if (!t)
                                        return -ENOMEM;
                                gids = t;
                                gids[n++] = (gid_t) g;
                        }
                        if (r < 0)
                                return r;
                        r = sd_bus_message_exit_container(reply);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_exit_container(reply);
                        if (r < 0)
                                return r;
                } else {
                        r = sd_bus_message_skip(reply, "v");
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return r;
        if (!have_uid)
                return -ENODATA;

        *ret_uid = (uid_t) uid;
        *ret_gids = TAKE_PTR(gids);
        *ret_n = n;
        return 0;
}

static int on_credentials(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        PrivilegeQuery *q = userdata;
        _cleanup_free_ gid_t *gids = NULL;
        size_t n = 0;
        uid_t uid = (uid_t) -1;
        int r;

        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);

                log_warning("Failed to get the credentials of %s, denying: %s",
                            strna(sd_bus_message_get_sender(q->request)), e ? strna(e->message) : "unknown error");
                (void) sd_bus_reply_method_errorf(q->request, SD_BUS_ERROR_ACCESS_DENIED,
                                                  "Cannot determine the credentials of the caller.");
                return 0;
        }

        r = parse_credentials(reply, &uid, &gids, &n);
        if (r < 0) {
                log_warning_errno(r, "Failed to parse the credentials of %s, denying: %m",
                                  strna(sd_bus_message_get_sender(q->request)));
                (void) sd_bus_reply_method_errorf(q->request, SD_BUS_ERROR_ACCESS_DENIED,
                                                  "Cannot determine the credentials of the caller.");
                return 0;
        }

        if (!bus_creds_privileged(uid, gids, n, q->admin_gid)) {
                log_debug("Denied %s.%s to uid %u.", strna(sd_bus_message_get_interface(q->request)),
                          strna(sd_bus_message_get_member(q->request)), (unsigned) uid);
                (void) sd_bus_reply_method_errorf(q->request, SD_BUS_ERROR_ACCESS_DENIED,
                                                  "%s needs uid 0 or membership in AdminGroup=.",
                                                  strna(sd_bus_message_get_member(q->request)));
                return 0;
        }

        r = sd_bus_message_rewind(q->request, true);
        if (r >= 0)
                r = q->handler(q->request, q->userdata, &error);
        if (r < 0) {
                if (sd_bus_error_is_set(&error))
                        (void) sd_bus_reply_method_error(q->request, &error);
                else
                        (void) sd_bus_reply_method_errno(q->request, r, NULL);
        }
        return 0;
}

int bus_verify_privileged_async(sd_bus_message *request, gid_t admin_gid, BusPrivilegedHandler handler,
                                void *userdata, sd_bus_error *error) {
        sd_bus_slot *slot = NULL;
        PrivilegeQuery *q;
        int r;

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        *q = (PrivilegeQuery) {
                .request = sd_bus_message_ref(request),
                .admin_gid = admin_gid,
                .handler = handler,
                .userdata = userdata,
        };

        r = sd_bus_call_method_async(sd_bus_message_get_bus(request), &slot, "org.freedesktop.DBus",
                                     "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetConnectionCredentials",
                                     on_credentials, q, "s", sd_bus_message_get_sender(request));
        if (r < 0) {
                privilege_query_free(q);
                return r;
        }
        /* The slot belongs to the bus from now on; the query goes with it. */
        (void) sd_bus_slot_set_destroy_callback(slot, privilege_query_free);
        (void) sd_bus_slot_set_floating(slot, 1);
        sd_bus_slot_unref(slot);
        return 1;
}

static int append_json_variant(sd_bus_message *m, json_object *v);

static int append_json_array(sd_bus_message *m, json_object *a) {
        size_t n = json_object_array_length(a);
        int r;

        r = sd_bus_message_open_container(m, 'a', "v");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = append_json_variant(m, json_object_array_get_idx(a, i));
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

static int append_json_variant(sd_bus_message *m, json_object *v) {
        int r;

        switch (json_object_get_type(v)) {
        case json_type_object:
                r = sd_bus_message_open_container(m, 'v', "a{sv}");
                if (r < 0)
                        return r;
                r = bus_message_append_json_dict(m, v);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        case json_type_array:
                r = sd_bus_message_open_container(m, 'v', "av");
                if (r < 0)
                        return r;
                r = append_json_array(m, v);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        case json_type_boolean:
                return sd_bus_message_append(m, "v", "b", (int) json_object_get_boolean(v));
        case json_type_double:
                return sd_bus_message_append(m, "v", "d", json_object_get_double(v));
        case json_type_int:
                if (json_object_get_int64(v) < 0)
                        return sd_bus_message_append(m, "v", "x", json_object_get_int64(v));
                return sd_bus_message_append(m, "v", "t", json_object_get_uint64(v));
        case json_type_string:
                return sd_bus_message_append(m, "v", "s", json_object_get_string(v));
        case json_type_null:
                return sd_bus_message_append(m, "v", "s", "");
        }
        return -EINVAL;
}

int bus_message_append_json_dict(sd_bus_message *m, json_object *o) {
        int r;

        if (o && !json_object_is_type(o, json_type_object))
                return -EINVAL;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        if (o) {
                json_object_object_foreach(o, key, v) {
                        _cleanup_free_ char *k = NULL;

                        if (!v || json_object_is_type(v, json_type_null))
                                continue;
                        k = strdup(key);
                        if (!k)
                                return -ENOMEM;
                        k[0] = (char) toupper((unsigned char) k[0]);
                        r = sd_bus_message_open_container(m, 'e', "sv");
                        if (r < 0)
                                return r;
                        r = sd_bus_message_append(m, "s", k);
                        if (r < 0)
                                return r;
                        r = append_json_variant(m, v);
                        if (r < 0)
                                return r;
                        r = sd_bus_message_close_container(m);
                        if (r < 0)
                                return r;
                }
        }
        return sd_bus_message_close_container(m);
}

/* "BalloonTargetOutOfRange" → "Balloon target out of range". */
static int humanize_error_name(const char *suffix, FILE *f) {
        for (const char *c = suffix; *c; c++) {
                if (c != suffix && isupper((unsigned char) *c) &&
                    (islower((unsigned char) c[-1]) || (c[1] && islower((unsigned char) c[1]))))
                        fputc(' ', f);
                fputc(c == suffix ? *c : (isupper((unsigned char) *c) && !(c[1] && isupper((unsigned char) c[1])) &&
                                          !(isupper((unsigned char) c[-1]) && !(c[1] && islower((unsigned char) c[1])))
                                          ? tolower((unsigned char) *c) : *c), f);
        }
        return 0;
}

/* A sentence for a D-Bus caller from a varlink error: its "reason" (or its name in words), then the other
 * scalar parameters as "key value" in parentheses. Never raw JSON. */
static char *error_sentence(const char *suffix, json_object *parameters) {
        _cleanup_free_ char *buf = NULL;
        json_object *reason = NULL;
        size_t size = 0, n = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;
        if (json_object_object_get_ex(parameters, "reason", &reason) && json_object_is_type(reason, json_type_string)) {
                const char *r = json_object_get_string(reason);

                fputc(toupper((unsigned char) r[0]), f);
                fputs(r[0] ? r + 1 : "", f);
        } else
                (void) humanize_error_name(suffix, f);
        if (parameters && json_object_is_type(parameters, json_type_object)) {
                json_object_object_foreach(parameters, k, v) {
                        if (streq(k, "reason"))
                                continue;
                        fputs(n++ == 0 ? " (" : ", ", f);
                        fputs(k, f);
                        fputc(' ', f);
                        switch (json_object_get_type(v)) {
                        case json_type_string:
                                fputs(json_object_get_string(v), f);
                                break;
                        case json_type_int:
                        case json_type_double:
                        case json_type_boolean:
                        case json_type_null:
                                fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), f);
                                break;
                        case json_type_object:
                        case json_type_array:
                                fputs("…", f);
                                break;
                        }
                }
        }
        if (n > 0)
                fputc(')', f);
        fputc('.', f);
        if (fclose(f) != 0)
                return NULL;
        return TAKE_PTR(buf);
}

int bus_error_set_from_varlink(sd_bus_error *e, const char *bus_name, const char *varlink_name,
                               json_object *parameters) {
        _cleanup_free_ char *message = NULL;
        const char *suffix;

        if (streq_ptr(varlink_name, "org.varlink.service.InvalidParameter")) {
                json_object *p = NULL;

                (void) json_object_object_get_ex(parameters, "parameter", &p);
                return sd_bus_error_setf(e, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: %s",
                                         p ? strna(json_object_get_string(p)) : "unknown");
        }
        suffix = strrchr(strna(bus_name ?: varlink_name), '.');
        message = error_sentence(suffix ? suffix + 1 : strna(bus_name ?: varlink_name), parameters);
        if (!message)
                return -ENOMEM;
        if (bus_name)
                return sd_bus_error_setf(e, bus_name, "%s", message);
        return sd_bus_error_setf(e, SD_BUS_ERROR_FAILED, "%s: %s", strna(varlink_name), message);
}

int bus_reply_error(sd_bus_message *request, const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error))
                return sd_bus_reply_method_error(request, error);
        return sd_bus_reply_method_errno(request, r, NULL);
}

int bus_reply_json_dict(sd_bus_message *message, json_object *result, const char *key) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        json_object *o = result;
        int r;

        if (key)
                (void) json_object_object_get_ex(result, key, &o);
        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = bus_message_append_json_dict(reply, o);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int bus_reply_json_dict_array(sd_bus_message *message, json_object *array) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < json_object_array_length(array); i++) {
                r = bus_message_append_json_dict(reply, json_object_array_get_idx(array, i));
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int bus_reply_json_dict_flattened(sd_bus_message *message, json_object *result, const char *key) {
        _cleanup_json_ json_object *flat = NULL;
        json_object *inner = NULL;

        (void) json_object_object_get_ex(result, key, &inner);
        flat = json_object_new_object();
        if (!flat)
                return -ENOMEM;
        json_object_object_foreach(inner, k1, v1)
                if (json_add(flat, k1, json_object_get(v1)) < 0)
                        return -ENOMEM;
        json_object_object_foreach(result, k2, v2)
                if (!streq(k2, key) && json_add(flat, k2, json_object_get(v2)) < 0)
                        return -ENOMEM;
        return bus_reply_json_dict(message, flat, NULL);
}

int bus_property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", strempty(*(char **) userdata));
}

int bus_property_get_bool(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "b", (int) *(bool *) userdata);
}

int bus_property_get_unsigned(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "u", (uint32_t) *(unsigned *) userdata);
}

int bus_property_get_uint64(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "t", *(uint64_t *) userdata);
}
