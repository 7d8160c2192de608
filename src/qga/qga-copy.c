/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Copying bytes into a guest file: guest-file-open (mode "w"), guest-file-write in chunks of at most 48 KiB,
 * guest-file-close on every path where the connection is still there (its failure counts: buffered data may not
 * have been written), then, with a mode, chmod through qga_exec(). */

#include <inttypes.h>
#include <stdio.h>

#include "basic/base64.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "qga/qga-op.h"

#define COPY_MAX (64U * 1024U * 1024U)

/* ---- copying into the guest ---- */

typedef struct Copy {
        QgaClient *client;
        QgaCopyCallback callback;
        void *userdata;
        uint8_t *data;
        size_t size, offset, chunk;
        char *dest;
        mode_t mode;
        int64_t handle;
        bool open;
        QgaOpError error;
} Copy;

static void copy_finish(Copy *s) {
        QgaError view = qga_op_error_view(&s->error);

        s->callback(s->client, s->error.error != 0 ? &view : NULL, s->offset, s->userdata);
        qga_op_error_done(&s->error);
        free(s->data);
        free(s->dest);
        qga_client_unref(s->client);
        free(s);
}

static void copy_on_chmod(QgaClient *c, const QgaError *error, const QgaExecResult *result, void *userdata) {
        Copy *s = userdata;

        if (error)
                (void) qga_op_error_set(&s->error, c, error->error, error->command, error->error_class,
                                        error->description);
        else if (!result->exited || result->exit_code != 0)
                (void) qga_op_error_setf(&s->error, -EIO, "guest-exec", "chmod %04o %s in the guest failed (%s %d): %s",
                                         (unsigned) s->mode, s->dest, result->exited ? "exit status" : "signal",
                                         result->exited ? result->exit_code : result->signal,
                                         result->err_size > 0 ? result->err : "no output");
        copy_finish(s);
}

static void copy_chmod(Copy *s) {
        char mode[16];
        char *argv[] = { (char *) "chmod", mode, s->dest, NULL };
        int k;

        (void) snprintf(mode, sizeof(mode), "%04o", (unsigned) s->mode);
        k = qga_exec(s->client, &(QgaExecRequest) { .argv = argv, .timeout_usec = 30 * USEC_PER_SEC,
                                                    .max_output = 4096 },
                     copy_on_chmod, s);
        if (k < 0) {
                (void) qga_op_error_set(&s->error, s->client, k, "guest-exec", NULL, NULL);
                copy_finish(s);
        }
}

static void copy_on_close(QgaClient *c, int error, json_object *result, const char *error_class,
                          const char *error_desc, void *userdata) {
        Copy *s = userdata;

        /* For a file written, closing is part of writing (buffered data is flushed): its failure counts. */
        if (error < 0)
                (void) qga_op_error_set(&s->error, c, error, "guest-file-close", error_class, error_desc);
        if (s->error.error == 0 && s->mode != 0)
                return copy_chmod(s);
        copy_finish(s);
}

static void copy_close(Copy *s) {
        json_object *args;
        int k;

        if (!s->open || qga_error_connection_gone(s->error.error))
                return copy_finish(s);
        s->open = false;
        args = qga_args_handle(s->handle);
        if (!args) {
                (void) qga_op_error_set(&s->error, s->client, -ENOMEM, "guest-file-close", NULL, NULL);
                return copy_finish(s);
        }
        k = qga_client_execute(s->client, "guest-file-close", args, 0, 0, copy_on_close, s);
        if (k < 0) {
                (void) qga_op_error_set(&s->error, s->client, k, "guest-file-close", NULL, NULL);
                copy_finish(s);
        }
}

static void copy_write_next(Copy *s);

static void copy_on_write(QgaClient *c, int error, json_object *result, const char *error_class,
                          const char *error_desc, void *userdata) {
        Copy *s = userdata;
        int64_t count;

        if (error < 0) {
                (void) qga_op_error_set(&s->error, c, error, "guest-file-write", error_class, error_desc);
                return copy_close(s);
        }
        if (qga_json_int(result, "count", 0, (int64_t) s->chunk, &count) < 0) {
                (void) qga_op_error_setf(&s->error, -EBADMSG, "guest-file-write",
                                         "the agent's reply to guest-file-write of %s is malformed", s->dest);
                return copy_close(s);
        }
        s->offset += (size_t) count;
        if ((size_t) count != s->chunk) {
                (void) qga_op_error_setf(&s->error, -EIO, "guest-file-write",
                                         "short write to %s in the guest: %" PRIi64 " of %zu bytes", s->dest, count,
                                         s->chunk);
                return copy_close(s);
        }
        if (s->offset >= s->size)
                return copy_close(s);
        copy_write_next(s);
}

static void copy_write_next(Copy *s) {
        _cleanup_json_ json_object *args = NULL;
        _cleanup_free_ char *b64 = NULL;
        int k;

        s->chunk = MIN((size_t) QGA_FILE_CHUNK, s->size - s->offset);
        b64 = base64_encode(s->data + s->offset, s->chunk);
        args = qga_args_handle(s->handle);
        if (!b64 || !args || json_add_string(args, "buf-b64", b64) < 0 ||
            json_add_int(args, "count", (int64_t) s->chunk) < 0) {
                (void) qga_op_error_set(&s->error, s->client, -ENOMEM, "guest-file-write", NULL, NULL);
                return copy_close(s);
        }
        k = qga_client_execute(s->client, "guest-file-write", TAKE_PTR(args), 0, 0, copy_on_write, s);
        if (k < 0) {
                (void) qga_op_error_set(&s->error, s->client, k, "guest-file-write", NULL, NULL);
                copy_close(s);
        }
}

static void copy_on_open(QgaClient *c, int error, json_object *result, const char *error_class,
                         const char *error_desc, void *userdata) {
        Copy *s = userdata;

        if (error < 0) {
                (void) qga_op_error_set(&s->error, c, error, "guest-file-open", error_class, error_desc);
                return copy_finish(s);
        }
        if (!json_object_is_type(result, json_type_int) || json_object_get_int64(result) < 0) {
                (void) qga_op_error_setf(&s->error, -EBADMSG, "guest-file-open",
                                         "the agent's reply to guest-file-open of %s is not a handle", s->dest);
                return copy_finish(s);
        }
        s->handle = json_object_get_int64(result);
        s->open = true;
        if (s->size == 0)
                return copy_close(s);
        copy_write_next(s);
}

int qga_copy_to_guest(QgaClient *c, const void *data, size_t size, const char *dest, mode_t mode,
                      QgaCopyCallback cb, void *userdata) {
        _cleanup_json_ json_object *args = NULL;
        Copy *s;
        int k;

        if (!c || (!data && size > 0) || size > COPY_MAX || isempty(dest) || dest[0] != '/' || (mode & ~07777) ||
            !cb)
                return -EINVAL;
        k = qga_op_require(c, STRV("guest-file-open", "guest-file-write", "guest-file-close"));
        if (k >= 0 && mode != 0)
                k = qga_op_require(c, STRV("guest-exec", "guest-exec-status"));
        if (k < 0)
                return k;

        args = json_object_new_object();
        if (!args || json_add_string(args, "path", dest) < 0 || json_add_string(args, "mode", "w") < 0)
                return -ENOMEM;
        s = calloc(1, sizeof(Copy));
        if (!s)
                return -ENOMEM;
        *s = (Copy) {
                .client = qga_client_ref(c),
                .callback = cb,
                .userdata = userdata,
                .data = malloc(MAX(size, (size_t) 1)),
                .size = size,
                .dest = strdup(dest),
                .mode = mode,
        };
        if (!s->data || !s->dest) {
                free(s->data);
                free(s->dest);
                qga_client_unref(s->client);
                free(s);
                return -ENOMEM;
        }
        if (size > 0)
                memcpy(s->data, data, size);

        k = qga_client_execute(c, "guest-file-open", TAKE_PTR(args), 0, 0, copy_on_open, s);
        if (k < 0) {
                free(s->data);
                free(s->dest);
                qga_client_unref(s->client);
                free(s);
                return k;
        }
        return 0;
}
