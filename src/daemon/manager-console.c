/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GetConsole: a guest's console history (src/vm/console-history.h), one boot at a time, its tail or from an
 * offset on (what `memvisorctl console --follow` polls), at most CONSOLE_REPLY_MAX_BYTES a reply; the operation
 * for varlink here and D-Bus in manager-dbus-console.c. The bytes are the guest's, as it wrote them: base64 in the
 * varlink reply, so that no JSON string ever carries what is not text (ay on D-Bus); the client escapes them for a
 * terminal. Admin only: a console shows what the guest prints, passwords included. */
#include <inttypes.h>

#include "basic/base64.h"
#include "basic/json-util.h"
#include "daemon/manager-errors.h"
#include "daemon/manager-guest.h"
#include "daemon/manager.h"
#include "vm/console-history.h"

#define CONSOLE_REPLY_MAX_BYTES (256U * 1024)
#define CONSOLE_LINES_MAX 100000

static int fail_no_such_boot(ManagerError *e, const char *name, int64_t boot, const uint64_t *boots, size_t n) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "name", name) < 0 || json_add_int(p, "boot", boot) < 0 ||
            (n > 0 && (json_add_uint(p, "first", boots[0]) < 0 || json_add_uint(p, "last", boots[n - 1]) < 0 ||
                       json_add_uint(p, "kept", n) < 0))) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, -ENOENT, VARLINK_ERROR(NO_SUCH_BOOT), p);
}

int manager_console_get(Manager *m, const char *name, int64_t boot, int64_t lines, int64_t offset,
                        ConsoleChunk *ret_chunk, json_object **ret_info, ManagerError *ret_error) {
        _cleanup_(console_chunk_done) ConsoleChunk chunk = {};
        _cleanup_json_ json_object *info = NULL;
        _cleanup_free_ uint64_t *boots = NULL;
        _cleanup_close_ int dir_fd = -EBADF;
        uint64_t which;
        size_t n = 0;
        Vm *vm;
        int r;

        vm = manager_find_vm(m, name);
        if (!vm)
                return manager_guest_fail(ret_error, -ENOENT, VARLINK_ERROR(NO_SUCH_VM), name, NULL);
        if (lines < 0 || lines > CONSOLE_LINES_MAX)
                return manager_error_invalid_parameter(ret_error, "lines");
        if (offset < -1)
                return manager_error_invalid_parameter(ret_error, "offset");

        dir_fd = vm_console_dir_open(&m->vmctx, vm->name, false);
        if (dir_fd >= 0) {
                r = console_boots_list(dir_fd, &boots, &n);
                if (r < 0)
                        return r;
        } else if (dir_fd != -ENOENT)
                return dir_fd;

        r = console_boot_resolve(boots, n, boot, &which);
        if (r == -ENOENT || r == -ENODATA)
                return fail_no_such_boot(ret_error, vm->name, boot, boots, n);
        if (r < 0)
                return r;

        r = console_boot_read(dir_fd, which, offset >= 0 ? (uint64_t) offset : UINT64_MAX, (size_t) lines,
                              CONSOLE_REPLY_MAX_BYTES, &chunk);
        if (r == -ERANGE)
                return manager_error_invalid_parameter(ret_error, "offset");
        if (r == -ENOENT) /* rotated away meanwhile */
                return fail_no_such_boot(ret_error, vm->name, boot, boots, n);
        if (r < 0)
                return r;

        info = json_object_new_object();
        if (!info)
                return -ENOMEM;
        if ((r = json_add_uint(info, "boot", which)) < 0 || (r = json_add_uint(info, "first", boots[0])) < 0 ||
            (r = json_add_uint(info, "last", boots[n - 1])) < 0 ||
            (r = json_add_bool(info, "active", which == vm->console_boot && vm_is_active(vm))) < 0 ||
            (r = json_add_uint(info, "start", chunk.start)) < 0 || (r = json_add_uint(info, "end", chunk.end)) < 0 ||
            (r = json_add_uint(info, "size", chunk.file_size)) < 0 ||
            (r = json_add_bool(info, "truncated", chunk.truncated)) < 0)
                return r;
        *ret_chunk = chunk;
        chunk = (ConsoleChunk) {};
        *ret_info = TAKE_PTR(info);
        return 0;
}

static int vl_get_console(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        _cleanup_(console_chunk_done) ConsoleChunk chunk = {};
        _cleanup_json_ json_object *reply = NULL;
        _cleanup_free_ char *data = NULL;
        ManagerError e = {};
        int r;

        r = manager_console_get(userdata, json_get_string(parameters, "name"), json_get_int(parameters, "boot", 0),
                                json_get_int(parameters, "lines", 0), json_get_int(parameters, "offset", -1), &chunk,
                                &reply, &e);
        if (r < 0)
                return manager_error_varlink_reply(c, &e, r);
        data = base64_encode(chunk.data, chunk.size);
        if (!data)
                return -ENOMEM;
        r = json_add_string(reply, "data", data);
        if (r < 0)
                return r;
        return varlink_reply(c, TAKE_PTR(reply));
}

static const VarlinkMethod console_methods[] = {
        { "GetConsole", vl_get_console,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, 0 },
                  { "boot", VARLINK_INT, VARLINK_NULLABLE },
                  { "lines", VARLINK_INT, VARLINK_NULLABLE },
                  { "offset", VARLINK_INT, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { NULL },
};

const VarlinkMethod *manager_console_methods(void) {
        return console_methods;
}
