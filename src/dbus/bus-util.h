/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* sd-bus helpers for a daemon's objects: object paths of named objects below a prefix, the privilege check
 * for state-changing methods (done asynchronously with the bus's GetConnectionCredentials, so that the event
 * loop never waits for the bus), JSON replies as a{sv}, and varlink errors as D-Bus errors. Nothing here
 * knows a daemon's names: callers pass their prefixes and error names in. */

#include <stdbool.h>
#include <sys/types.h>
#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "basic/macro.h"

/* "<prefix>/<escaped name>" (sd_bus_path_encode escaping). */
int bus_object_path(const char *prefix, const char *name, char **ret);
/* The name of a path below prefix; 0 (and *ret = NULL) when the path is not one of a named object. */
int bus_object_name_from_path(const char *prefix, const char *path, char **ret);

/* Who may change state: uid 0, or a member (primary or supplementary) of admin_gid ((gid_t) -1: nobody but
 * root). Pure: the caller supplies the credentials. */
bool bus_creds_privileged(uid_t uid, const gid_t *gids, size_t n_gids, gid_t admin_gid);

/* Runs handler(request, userdata, error) once the sender of request is known to be privileged; otherwise
 * replies org.freedesktop.DBus.Error.AccessDenied. Returns 1 (the reply is sent later) or < 0 when the query
 * could not even be sent. userdata must outlive the bus connection. */
typedef int (*BusPrivilegedHandler)(sd_bus_message *request, void *userdata, sd_bus_error *error);
int bus_verify_privileged_async(sd_bus_message *request, gid_t admin_gid, BusPrivilegedHandler handler,
                                void *userdata, sd_bus_error *error);

/* JSON replies of the shared operations (varlink's) on D-Bus: a JSON object as a{sv}, keys with their first
 * letter upper-cased ("memTotalBytes" → "MemTotalBytes"); integers are t (x when negative), doubles d,
 * booleans b, strings s, objects a{sv}, arrays av; null members are left out. */
int bus_message_append_json_dict(sd_bus_message *m, json_object *o);
/* Replies to message with a JSON object as a{sv}: result, or its member key when key is set. */
int bus_reply_json_dict(sd_bus_message *message, json_object *result, const char *key);
/* … with aa{sv}: the objects of a JSON array. */
int bus_reply_json_dict_array(sd_bus_message *message, json_object *array);
/* … with one a{sv}: the members of result's object member key first, then result's other members. */
int bus_reply_json_dict_flattened(sd_bus_message *message, json_object *result, const char *key);

/* A varlink error as a D-Bus error with a sentence for its message (never raw JSON): its "reason" parameter
 * (or the last part of its name in words), then the other scalar parameters. bus_name is the D-Bus name the
 * caller gives the varlink error name (NULL: none); org.varlink.service.InvalidParameter → InvalidArgs naming
 * the parameter; an error without a D-Bus name → org.freedesktop.DBus.Error.Failed "<varlink name>:
 * <sentence>". Returns a negative errno, as sd_bus_error_set(). */
int bus_error_set_from_varlink(sd_bus_error *e, const char *bus_name, const char *varlink_name,
                               json_object *parameters);
/* Replies to request with error, or with errno r when error is not set. */
int bus_reply_error(sd_bus_message *request, const sd_bus_error *error, int r);

/* Property getters of plain fields (SD_BUS_PROPERTY with offsetof()): char * as s (NULL as ""), bool as b,
 * unsigned as u, uint64_t as t. */
int bus_property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error);
int bus_property_get_bool(sd_bus *bus, const char *path, const char *interface, const char *property,
                          sd_bus_message *reply, void *userdata, sd_bus_error *error);
int bus_property_get_unsigned(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error);
int bus_property_get_uint64(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error);
