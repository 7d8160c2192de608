/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the operations of qga-ops.c, qga-copy.c and qga-exec.c share (private to src/qga): the first error of an operation,
 * kept until its callback, and small readers of agent replies. */

#include <json-c/json.h>
#include <time.h>

#include "qga/qga-ops.h"

/* 48 KiB raw per guest-file-read/-write: 64 KiB of base64, well inside any reply bound. */
#define QGA_FILE_CHUNK (48U * 1024U)

typedef struct QgaOpError {
        int error;                      /* 0: none yet */
        char *command;
        char *error_class;
        char *description;
} QgaOpError;

/* Records an error unless one is recorded already (the first one is what the caller hears about). description
 * NULL: the client's words for the errno (and its reason for a lost connection). The agent's CommandNotFound (a
 * command disabled or unknown) becomes -ENOTSUP. Returns -ENOMEM or 0. */
int qga_op_error_set(QgaOpError *e, QgaClient *c, int error, const char *command, const char *error_class,
                     const char *description);
int qga_op_error_setf(QgaOpError *e, int error, const char *command, const char *format, ...) _printf_(4, 5);
void qga_op_error_done(QgaOpError *e);
/* The view passed to a callback (valid while e is). */
QgaError qga_op_error_view(const QgaOpError *e);

/* The connection is gone (nothing more can be sent on it for this operation). */
static inline bool qga_error_connection_gone(int error) {
        return error == -ENOTCONN || error == -ECONNRESET || error == -ECANCELED || error == -EMSGSIZE;
}

/* Readers of reply values: 0, or -EBADMSG when the value is missing or of another type/range. */
int qga_json_int(json_object *o, const char *key, int64_t min, int64_t max, int64_t *ret);
int qga_json_bool(json_object *o, const char *key, bool *ret);
/* A string of at most max bytes without control characters; NULL when absent and optional. */
int qga_json_string(json_object *o, const char *key, size_t max, bool optional, const char **ret);

uint64_t qga_now(clockid_t clock);

/* -ENOTSUP when the agent's command list is known (READY) and lacks one of the NULL-terminated commands. */
int qga_op_require(QgaClient *c, const char *const *commands);

/* {"handle": handle}, or NULL (no memory). */
json_object *qga_args_handle(int64_t handle);
