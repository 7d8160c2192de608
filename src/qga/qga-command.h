/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One agent command of a QgaClient (qga-client.c): its request, serialized once, its bounds and its callback.
 * Internal to src/qga. */

#include "qga/qga-client.h"

/* The largest request written (guest-file-write chunks, guest-exec input). */
#define QGA_MAX_COMMAND_SIZE (4U * 1024U * 1024U)

typedef struct QgaCommand QgaCommand;
typedef void (*QgaInternalCallback)(QgaClient *c, int error, json_object *result, const char *cls, const char *desc);

struct QgaCommand {
        QgaCommand *next;
        uint64_t id;
        char *name;
        char *text;                     /* the serialized request and its newline, until written */
        size_t size;
        uint64_t timeout_usec;
        uint64_t deadline;              /* CLOCK_MONOTONIC usec, once written */
        size_t max_reply_bytes;
        QgaCommandCallback callback;
        QgaInternalCallback internal;   /* guest-info, sent by the client itself */
        void *userdata;
};

/* {"execute": command, "arguments": arguments, "id": id}; arguments is consumed. timeout_usec 0 →
 * QGA_DEFAULT_TIMEOUT_USEC, max_reply_bytes 0 → QGA_MAX_MESSAGE_SIZE. -EMSGSIZE when the request is
 * QGA_MAX_COMMAND_SIZE or more. */
int qga_command_new(uint64_t id, const char *command, json_object *arguments, uint64_t timeout_usec,
                    size_t max_reply_bytes, QgaCommand **ret);
QgaCommand *qga_command_free(QgaCommand *cmd);
/* Calls the callback (or the internal one) once, then frees the command. */
void qga_command_complete(QgaClient *c, QgaCommand *cmd, int error, json_object *result, const char *cls,
                          const char *desc);
