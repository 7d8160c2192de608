/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A daemon's connection to a bus and its objects on it: connecting without waiting (authentication and Hello
 * run on the event loop), the bus name, noticing a lost connection; named objects below a path prefix (one
 * fallback vtable whose objects are looked up by name, and their enumeration); requests answered later. */

#include <stdbool.h>
#include <json-c/json.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "basic/macro.h"

typedef struct BusConnection {
        sd_bus *bus;
        char *address;          /* what we connect to, for the log: the address, or "the system bus" */
        char *name;             /* the name requested */
        sd_bus_slot *disconnected_slot, *name_slot;
        bool name_acquired;
        bool disconnected;      /* the bus went away; it stays away */
} BusConnection;

/* What address (NULL: the system bus) names, for the log: itself, $DBUS_SYSTEM_BUS_ADDRESS or "the system
 * bus". */
const char *bus_address_describe(const char *address);
/* Connects to address (NULL: $DBUS_SYSTEM_BUS_ADDRESS or the system bus socket) as a bus client on event,
 * watches for the end of the connection and asks for name: the answer is logged (without the name the daemon
 * serves on its unique name). Add the objects before the loop runs. */
int bus_connection_open(sd_event *event, const char *address, const char *description, const char *name,
                        BusConnection **ret);
/* The bus while it is connected, otherwise NULL. */
sd_bus *bus_connection_bus(const BusConnection *c);
/* Sends what is queued (when still connected), closes and frees. */
BusConnection *bus_connection_close(BusConnection *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusConnection *, bus_connection_close);

/* Named objects below prefix with interface's vtable: lookup() gives an object's userdata by name (NULL:
 * none), name_at() the names for enumeration (NULL after the last). */
typedef void *(*BusObjectLookup)(const char *name, void *userdata);
typedef const char *(*BusObjectNameAt)(size_t i, void *userdata);
int bus_add_named_objects(sd_bus *bus, const char *prefix, const char *interface, const sd_bus_vtable *vtable,
                          BusObjectLookup lookup, BusObjectNameAt name_at, void *userdata);
/* Replies with a(sso): for each named object its name, what attribute_at() says of it, its path. */
int bus_reply_named_objects(sd_bus_message *message, const char *prefix, BusObjectNameAt name_at,
                            BusObjectNameAt attribute_at, void *userdata);
/* PropertiesChanged of the object named name below prefix (properties: NULL-terminated). */
int bus_emit_named_properties_changed(sd_bus *bus, const char *prefix, const char *name, const char *interface,
                                      char **properties);

/* Emits member of interface on path: the arguments of types (as sd_bus_message_append()), then o as a{sv}. */
int bus_emit_signal_json_dict(sd_bus *bus, const char *path, const char *interface, const char *member,
                              json_object *o, const char *types, ...);

/* A request answered later (when its operation ends), with the name of the object it is about and the
 * caller's userdata. request may be NULL (the reply went out already, the end is signalled). */
typedef struct BusPending {
        sd_bus_message *request;
        char *name;
        void *userdata;
} BusPending;

int bus_pending_new(sd_bus_message *request, const char *name, void *userdata, BusPending **ret);
/* Takes void * so that it can serve as a destroy callback. */
void bus_pending_free(void *p);
/* The reply: o as a{sv}; or error (errno r when not set). Neither frees p. */
int bus_pending_reply_json_dict(BusPending *p, json_object *o);
int bus_pending_reply_error(BusPending *p, const sd_bus_error *error, int r);
