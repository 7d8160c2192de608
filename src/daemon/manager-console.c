/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Varlink GetConsole: a guest's console history (src/vm/console-history.h), one boot at a time, its tail or from an
 * offset on (what `memvisorctl console --follow` polls), at most CONSOLE_REPLY_MAX_BYTES a reply. The bytes are
 * the guest's, as it wrote them: base64 in the reply, so that no JSON string ever carries what is not text; the
 * client escapes them for a terminal. Admin only: a console shows what the guest prints, passwords included. */
#include <inttypes.h>

#include "basic/base64.h"
#include "basic/json-util.h"
#include "daemon/manager-errors.h"
#include "daemon/manager.h"
#include "vm/console-history.h"

#define CONSOLE_REPLY_MAX_BYTES (256U * 1024)
#define CONSOLE_LINES_MAX 100000

static int error_no_such_boot(VarlinkConnection *c, const char *name, int64_t boot, const uint64_t *boots, size_t n) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "name", name) < 0 || json_add_int(p, "boot", boot) < 0 ||
            (n > 0 && (json_add_uint(p, "first", boots[0]) < 0 || json_add_uint(p, "last", boots[n - 1]) < 0 ||
                       json_add_uint(p, "kept", n) < 0))) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, VARLINK_ERROR(NO_SUCH_BOOT), p);
}

static int vl_get_console(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        const char *name = json_get_string(parameters, "name");
        int64_t boot = json_get_int(parameters, "boot", 0), lines = json_get_int(parameters, "lines", 0),
                offset = json_get_int(parameters, "offset", -1);
        _cleanup_(console_chunk_done) ConsoleChunk chunk = {};
        _cleanup_json_ json_object *reply = NULL, *err = NULL;
        _cleanup_free_ uint64_t *boots = NULL;
        _cleanup_free_ char *data = NULL;
        _cleanup_close_ int dir_fd = -EBADF;
        uint64_t which;
        size_t n = 0;
        Vm *vm;
        int r;

        vm = manager_find_vm(m, name);
        if (!vm) {
                err = json_object_new_object();
                if (!err || json_add_string(err, "name", name) < 0)
                        return -ENOMEM;
                return varlink_error(c, VARLINK_ERROR(NO_SUCH_VM), TAKE_PTR(err));
        }
        if (lines < 0 || lines > CONSOLE_LINES_MAX)
                return varlink_error_invalid_parameter(c, "lines");
        if (offset < -1)
                return varlink_error_invalid_parameter(c, "offset");

        dir_fd = vm_console_dir_open(&m->vmctx, vm->name, false);
        if (dir_fd >= 0) {
                r = console_boots_list(dir_fd, &boots, &n);
                if (r < 0)
                        return r;
        } else if (dir_fd != -ENOENT)
                return dir_fd;

        r = console_boot_resolve(boots, n, boot, &which);
        if (r == -ENOENT || r == -ENODATA)
                return error_no_such_boot(c, vm->name, boot, boots, n);
        if (r < 0)
                return r;

        r = console_boot_read(dir_fd, which, offset >= 0 ? (uint64_t) offset : UINT64_MAX, (size_t) lines,
                              CONSOLE_REPLY_MAX_BYTES, &chunk);
        if (r == -ERANGE)
                return varlink_error_invalid_parameter(c, "offset");
        if (r == -ENOENT) /* rotated away meanwhile */
                return error_no_such_boot(c, vm->name, boot, boots, n);
        if (r < 0)
                return r;

        data = base64_encode(chunk.data, chunk.size);
        reply = json_object_new_object();
        if (!data || !reply)
                return -ENOMEM;
        if ((r = json_add_uint(reply, "boot", which)) < 0 || (r = json_add_uint(reply, "first", boots[0])) < 0 ||
            (r = json_add_uint(reply, "last", boots[n - 1])) < 0 ||
            (r = json_add_bool(reply, "active", which == vm->console_boot && vm_is_active(vm))) < 0 ||
            (r = json_add_string(reply, "data", data)) < 0 || (r = json_add_uint(reply, "start", chunk.start)) < 0 ||
            (r = json_add_uint(reply, "end", chunk.end)) < 0 || (r = json_add_uint(reply, "size", chunk.file_size)) < 0 ||
            (r = json_add_bool(reply, "truncated", chunk.truncated)) < 0)
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
