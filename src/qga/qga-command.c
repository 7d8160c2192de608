/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>

#include "basic/json-util.h"
#include "qga/qga-command.h"

QgaCommand *qga_command_free(QgaCommand *cmd) {
        if (!cmd)
                return NULL;
        free(cmd->name);
        free(cmd->text);
        free(cmd);
        return NULL;
}

int qga_command_new(uint64_t id, const char *command, json_object *arguments, uint64_t timeout_usec,
                    size_t max_reply_bytes, QgaCommand **ret) {
        _cleanup_json_ json_object *args = arguments, *m = NULL;
        QgaCommand *cmd;
        const char *text;
        size_t size;
        int r;

        m = json_object_new_object();
        if (!m)
                return -ENOMEM;
        if ((r = json_add_string(m, "execute", command)) < 0)
                return r;
        if (args && (r = json_add(m, "arguments", TAKE_PTR(args))) < 0)
                return r;

        cmd = calloc(1, sizeof(*cmd));
        if (!cmd)
                return -ENOMEM;
        cmd->id = id;
        cmd->name = strdup(command);
        if (!cmd->name || json_add_uint(m, "id", cmd->id) < 0 || !(text = json_to_plain(m, &size)) ||
            (size < QGA_MAX_COMMAND_SIZE && asprintf(&cmd->text, "%s\n", text) < 0)) {
                qga_command_free(cmd);
                return -ENOMEM;
        }
        if (size >= QGA_MAX_COMMAND_SIZE) {
                qga_command_free(cmd);
                return -EMSGSIZE;
        }
        cmd->size = size + 1;
        cmd->timeout_usec = timeout_usec == 0 ? QGA_DEFAULT_TIMEOUT_USEC : timeout_usec;
        cmd->max_reply_bytes = max_reply_bytes == 0 ? QGA_MAX_MESSAGE_SIZE : max_reply_bytes;
        *ret = cmd;
        return 0;
}

void qga_command_complete(QgaClient *c, QgaCommand *cmd, int error, json_object *result, const char *cls,
                          const char *desc) {
        if (cmd->internal)
                cmd->internal(c, error, result, cls, desc);
        else if (cmd->callback)
                cmd->callback(c, error, result, cls, desc, cmd->userdata);
        qga_command_free(cmd);
}
