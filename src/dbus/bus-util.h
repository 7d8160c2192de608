/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Helpers for memvisord's D-Bus objects (io.memvisor.Manager1 and the per-guest io.memvisor.VM1): object
 * paths of guests, and the privilege check for state-changing methods, done asynchronously with the bus's
 * GetConnectionCredentials so that the event loop never waits for the bus. */

#include <stdbool.h>
#include <sys/types.h>
#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "basic/macro.h"

#define BUS_NAME "io.memvisor.Manager1"
#define BUS_MANAGER_PATH "/io/memvisor/Manager1"
#define BUS_MANAGER_INTERFACE "io.memvisor.Manager1"
#define BUS_VM_PREFIX "/io/memvisor/Manager1/vm"
#define BUS_VM_INTERFACE "io.memvisor.VM1"

/* Errors of the operations shared with varlink: io.memvisor.Manager.X there (bus_error_set_from_varlink()). */
#define BUS_ERROR_PREFIX "io.memvisor.Manager1."
#define BUS_VARLINK_ERROR_PREFIX "io.memvisor.Manager."

/* "/io/memvisor/Manager1/vm/<escaped name>" (sd_bus_path_encode escaping). */
int bus_vm_path(const char *name, char **ret);
/* The guest name of a path below BUS_VM_PREFIX; 0 (and *ret = NULL) when the path is not a guest's. */
int bus_vm_name_from_path(const char *path, char **ret);

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
/* A varlink error as a D-Bus error: io.memvisor.Manager.X → io.memvisor.Manager1.X with the error's
 * parameters as JSON for the message; org.varlink.service.InvalidParameter → InvalidArgs naming the
 * parameter; anything else → org.freedesktop.DBus.Error.Failed. Returns a negative errno, as
 * sd_bus_error_set(). */
int bus_error_set_from_varlink(sd_bus_error *e, const char *name, json_object *parameters);
