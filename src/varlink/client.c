/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "varlink/address.h"
#include "basic/buffer.h"
#include "varlink/client.h"
#include "basic/json-util.h"

#define CLIENT_MAX_MESSAGE (64U * 1024U * 1024U)

struct VarlinkClient {
        int fd;                 /* read from */
        int output_fd;          /* written to: fd, or the other end of a pipe pair */
        bool output_is_socket;  /* send() with MSG_NOSIGNAL, else write() */
        ByteBuffer input;
        json_tokener *tokener;
};

int varlink_client_new_from_fds(VarlinkClient **ret, int input_fd, int output_fd) {
        struct stat st;
        VarlinkClient *c;

        if (input_fd < 0 || output_fd < 0)
                return -EBADF;
        if (fstat(output_fd, &st) < 0)
                return -errno;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->tokener = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
        if (!c->tokener) {
                free(c);
                return -ENOMEM;
        }
        c->fd = input_fd;
        c->output_fd = output_fd;
        c->output_is_socket = S_ISSOCK(st.st_mode);
        *ret = c;
        return 0;
}

int varlink_client_connect(VarlinkClient **ret, const char *address) {
        _cleanup_close_ int fd = -EBADF;
        VarlinkAddress a;
        int r;

        r = varlink_address_parse(address, &a, NULL);
        if (r < 0)
                return r;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &a.sa, a.salen) < 0)
                return -errno;

        r = varlink_client_new_from_fds(ret, fd, fd);
        if (r < 0)
                return r;
        TAKE_FD(fd);
        return 0;
}

VarlinkClient *varlink_client_free(VarlinkClient *c) {
        if (!c)
                return NULL;
        if (c->output_fd != c->fd)
                safe_close(c->output_fd);
        safe_close(c->fd);
        byte_buffer_done(&c->input);
        json_tokener_free(c->tokener);
        free(c);
        return NULL;
}

int varlink_client_fd(VarlinkClient *c) {
        return c->fd;
}

static int write_all(VarlinkClient *c, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = c->output_is_socket ? send(c->output_fd, p, n, MSG_NOSIGNAL) : write(c->output_fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

int varlink_client_send(VarlinkClient *c, const char *method, json_object *parameters, VarlinkCallFlags flags) {
        _cleanup_json_ json_object *m = json_object_new_object();
        const char *text;
        size_t len;
        int r;

        if (!m)
                return -ENOMEM;
        if ((r = json_add_string(m, "method", method)) < 0)
                return r;
        if (parameters && (r = json_add(m, "parameters", json_object_get(parameters))) < 0)
                return r;
        if ((flags & VARLINK_CALL_MORE) && (r = json_add_bool(m, "more", true)) < 0)
                return r;
        if ((flags & VARLINK_CALL_ONEWAY) && (r = json_add_bool(m, "oneway", true)) < 0)
                return r;

        text = json_to_plain(m, &len);
        if (!text)
                return -ENOMEM;
        return write_all(c, text, len + 1);
}

int varlink_client_receive(VarlinkClient *c, json_object **ret_reply) {
        for (;;) {
                const char *head = byte_buffer_head(&c->input);
                size_t size = byte_buffer_size(&c->input);
                const char *nul = size > 0 ? memchr(head, 0, size) : NULL;

                if (nul) {
                        json_object *o;

                        json_tokener_reset(c->tokener);
                        o = json_tokener_parse_ex(c->tokener, head, (int) (nul - head));
                        byte_buffer_consume(&c->input, (size_t) (nul - head) + 1);
                        if (!o || !json_object_is_type(o, json_type_object)) {
                                json_object_put(o);
                                return -EBADMSG;
                        }
                        *ret_reply = o;
                        return 0;
                }

                char *p = byte_buffer_reserve(&c->input, 64 * 1024, CLIENT_MAX_MESSAGE);
                if (!p)
                        return -errno;
                ssize_t n = read(c->fd, p, 64 * 1024);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -ECONNRESET;
                byte_buffer_commit(&c->input, (size_t) n);
        }
}

int varlink_client_call(VarlinkClient *c, const char *method, json_object *parameters, json_object **ret_reply) {
        int r;

        r = varlink_client_send(c, method, parameters, 0);
        if (r < 0)
                return r;
        return varlink_client_receive(c, ret_reply);
}
