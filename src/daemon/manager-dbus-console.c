/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GetConsole on io.memvisor.Manager1 (manager-dbus.c's vtable): manager-console.c's operation, privileged and
 * checked asynchronously as the varlink method is admin only (a console shows what the guest prints). The bytes
 * are an ay, as the guest wrote them; the rest of the varlink reply is the a{sv}. */
#include "dbus/bus-util.h"
#include "basic/json-util.h"
#include "daemon/manager-dbus-internal.h"
#include "vm/console-history.h"

/* (s name, x boot, t lines, x offset) → (ay data, a{sv} console): boot 0 the current one, -1 the one before, or
 * a boot number; lines 0: all within the reply bound; offset -1: the tail, else from that byte on. */
static int run_get_console(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(console_chunk_done) ConsoleChunk chunk = {};
        _cleanup_json_ json_object *info = NULL;
        int64_t boot, offset;
        ManagerError e = {};
        const char *name;
        uint64_t lines;
        int r;

        r = sd_bus_message_read(message, "sxtx", &name, &boot, &lines, &offset);
        if (r < 0)
                return r;
        if (lines > INT64_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Invalid argument: lines");
        r = manager_console_get(userdata, name, boot, (int64_t) lines, offset, &chunk, &info, &e);
        if (r < 0)
                return bus_error_from_manager(error, &e, r);

        r = sd_bus_message_new_method_return(message, &reply);
        if (r >= 0)
                r = sd_bus_message_append_array(reply, 'y', chunk.data ?: "", chunk.size);
        if (r >= 0)
                r = bus_message_append_json_dict(reply, info);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

int manager_dbus_get_console(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return bus_verify_privileged_async(message, m->admin_gid, run_get_console, m, error);
}
