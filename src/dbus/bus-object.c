/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "dbus/bus-object.h"
#include "dbus/bus-util.h"
#include "basic/log.h"
#include "basic/strv.h"

const char *bus_address_describe(const char *address) {
        return address ?: (secure_getenv("DBUS_SYSTEM_BUS_ADDRESS") ?: "the system bus");
}

static int on_disconnected(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        BusConnection *c = userdata;

        if (!c->disconnected) {
                c->disconnected = true;
                log_warning("Lost the connection to D-Bus (%s); D-Bus stays unavailable until %s restarts.",
                            c->address, program_invocation_short_name);
        }
        return 0;
}

static int on_name_acquired(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        BusConnection *c = userdata;
        const sd_bus_error *e;

        e = sd_bus_message_get_error(reply);
        if (e) {
                log_warning("Failed to acquire the bus name %s on %s, serving on the unique name only: %s", c->name,
                            c->address, strna(e->message));
                return 0;
        }
        c->name_acquired = true;
        log_info("Serving D-Bus name %s on %s.", c->name, c->address);
        return 0;
}

int bus_connection_open(sd_event *event, const char *address, const char *description, const char *name,
                        BusConnection **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(bus_connection_closep) BusConnection *c = NULL;
        const char *env = secure_getenv("DBUS_SYSTEM_BUS_ADDRESS");
        int r;

        r = sd_bus_new(&bus);
        if (r < 0)
                return r;
        (void) sd_bus_set_description(bus, description);
        r = sd_bus_set_address(bus, address ?: (env ?: "unix:path=/run/dbus/system_bus_socket"));
        if (r < 0)
                return r;
        r = sd_bus_set_bus_client(bus, true);
        if (r < 0)
                return r;
        /* connect() on an AF_UNIX socket does not wait; authentication and Hello run on the event loop. */
        r = sd_bus_start(bus);
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->bus = TAKE_PTR(bus);
        c->address = strdup(bus_address_describe(address));
        c->name = strdup(name);
        if (!c->address || !c->name)
                return -ENOMEM;
        r = sd_bus_match_signal_async(c->bus, &c->disconnected_slot, "org.freedesktop.DBus.Local", NULL,
                                      "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, NULL, c);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(c->bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        /* Answered on the loop, after the caller added its objects. */
        r = sd_bus_request_name_async(c->bus, &c->name_slot, name, 0, on_name_acquired, c);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

sd_bus *bus_connection_bus(const BusConnection *c) {
        return c && c->bus && !c->disconnected ? c->bus : NULL;
}

BusConnection *bus_connection_close(BusConnection *c) {
        if (!c)
                return NULL;
        /* Queued signals (the last state changes) go out before we close. */
        if (c->bus && !c->disconnected)
                (void) sd_bus_flush(c->bus);
        /* Our callbacks go first: the bus may outlive us (messages still referenced). */
        sd_bus_slot_unref(c->disconnected_slot);
        sd_bus_slot_unref(c->name_slot);
        c->bus = sd_bus_close_unref(c->bus);
        free(c->address);
        free(c->name);
        free(c);
        return NULL;
}

typedef struct NamedObjects {
        char *prefix;
        BusObjectLookup lookup;
        BusObjectNameAt name_at;
        void *userdata;
} NamedObjects;

static void named_objects_free(void *p) {
        NamedObjects *o = p;

        if (!o)
                return;
        free(o->prefix);
        free(o);
}

static NamedObjects *named_objects_new(const char *prefix, BusObjectLookup lookup, BusObjectNameAt name_at,
                                       void *userdata) {
        NamedObjects *o = calloc(1, sizeof(*o));

        if (!o)
                return NULL;
        *o = (NamedObjects) { .prefix = strdup(prefix), .lookup = lookup, .name_at = name_at, .userdata = userdata };
        if (!o->prefix)
                return mfree(o);
        return o;
}

static int named_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                             sd_bus_error *error) {
        _cleanup_free_ char *name = NULL;
        NamedObjects *o = userdata;
        void *object;

        if (bus_object_name_from_path(o->prefix, path, &name) <= 0)
                return 0;
        object = o->lookup(name, o->userdata);
        if (!object)
                return 0;
        *found = object;
        return 1;
}

static int named_object_enumerate(sd_bus *bus, const char *prefix, void *userdata, char ***nodes,
                                  sd_bus_error *error) {
        NamedObjects *o = userdata;
        size_t n = 0;
        char **l;

        while (o->name_at(n, o->userdata))
                n++;
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                int r = bus_object_path(o->prefix, o->name_at(i, o->userdata), &l[i]);
                if (r < 0) {
                        strv_free(l);
                        return r;
                }
        }
        *nodes = l;
        return 0;
}

/* Each slot owns its copy of the lookup: it goes with the slot, whichever goes first. */
static int add_floating(sd_bus *bus, bool enumerator, const char *prefix, const char *interface,
                        const sd_bus_vtable *vtable, NamedObjects *o) {
        sd_bus_slot *slot = NULL;
        int r;

        if (!o)
                return -ENOMEM;
        if (enumerator)
                r = sd_bus_add_node_enumerator(bus, &slot, prefix, named_object_enumerate, o);
        else
                r = sd_bus_add_fallback_vtable(bus, &slot, prefix, interface, vtable, named_object_find, o);
        if (r < 0) {
                named_objects_free(o);
                return r;
        }
        (void) sd_bus_slot_set_destroy_callback(slot, named_objects_free);
        (void) sd_bus_slot_set_floating(slot, 1);
        sd_bus_slot_unref(slot);
        return 0;
}

int bus_add_named_objects(sd_bus *bus, const char *prefix, const char *interface, const sd_bus_vtable *vtable,
                          BusObjectLookup lookup, BusObjectNameAt name_at, void *userdata) {
        int r;

        r = add_floating(bus, false, prefix, interface, vtable, named_objects_new(prefix, lookup, name_at, userdata));
        if (r < 0)
                return r;
        return add_floating(bus, true, prefix, NULL, NULL, named_objects_new(prefix, lookup, name_at, userdata));
}

int bus_reply_named_objects(sd_bus_message *message, const char *prefix, BusObjectNameAt name_at,
                            BusObjectNameAt attribute_at, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *name;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sso)");
        if (r < 0)
                return r;
        for (size_t i = 0; (name = name_at(i, userdata)); i++) {
                _cleanup_free_ char *path = NULL;

                r = bus_object_path(prefix, name, &path);
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "(sso)", name, attribute_at(i, userdata), path);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int bus_emit_signal_json_dict(sd_bus *bus, const char *path, const char *interface, const char *member,
                              json_object *o, const char *types, ...) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *s = NULL;
        va_list ap;
        int r;

        r = sd_bus_message_new_signal(bus, &s, path, interface, member);
        if (r < 0)
                return r;
        va_start(ap, types);
        r = sd_bus_message_appendv(s, types, ap);
        va_end(ap);
        if (r < 0)
                return r;
        r = bus_message_append_json_dict(s, o);
        if (r < 0)
                return r;
        return sd_bus_send(bus, s, NULL);
}

int bus_emit_named_properties_changed(sd_bus *bus, const char *prefix, const char *name, const char *interface,
                                      char **properties) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = bus_object_path(prefix, name, &path);
        if (r < 0)
                return r;
        return sd_bus_emit_properties_changed_strv(bus, path, interface, properties);
}

int bus_pending_new(sd_bus_message *request, const char *name, void *userdata, BusPending **ret) {
        BusPending *p;

        p = calloc(1, sizeof(BusPending));
        if (!p)
                return -ENOMEM;
        p->name = strdup(name);
        if (!p->name) {
                free(p);
                return -ENOMEM;
        }
        p->request = request ? sd_bus_message_ref(request) : NULL;
        p->userdata = userdata;
        *ret = p;
        return 0;
}

void bus_pending_free(void *userdata) {
        BusPending *p = userdata;

        if (!p)
                return;
        sd_bus_message_unref(p->request);
        free(p->name);
        free(p);
}

int bus_pending_reply_json_dict(BusPending *p, json_object *o) {
        int r;

        r = bus_reply_json_dict(p->request, o, NULL);
        if (r < 0)
                (void) sd_bus_reply_method_errno(p->request, r, NULL);
        return r;
}

int bus_pending_reply_error(BusPending *p, const sd_bus_error *error, int r) {
        return bus_reply_error(p->request, error, r);
}
