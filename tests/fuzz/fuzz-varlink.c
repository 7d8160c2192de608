/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds the input as a client byte stream into a VarlinkServer connection over a socketpair, in chunks of
 * varying size with the event loop run in between, so partial reads, pipelining and every protocol path
 * are exercised. The small test interface has synchronous, asynchronous, streaming and failing methods.
 *
 * Besides the sanitizers, it checks what a client would see: every reply is a NUL-terminated JSON object
 * with an object "parameters", and the server never spins. */

#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>

#include "basic/buffer.h"
#include "fuzz.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "varlink/varlink.h"

typedef struct Context {
        sd_event *event;
        VarlinkConnection *pending;     /* Later */
        sd_event_source *later;
} Context;

static int method_echo(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        return varlink_reply(c, json_object_get(parameters));
}

static int method_stream(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        int64_t n = json_get_int(parameters, "count", 2);
        const char *text = json_get_string(parameters, "text");
        int r;

        for (int64_t i = 0; i < MIN(n, (int64_t) 64); i++) {
                json_object *p = json_object_new_object();

                if (!p || json_add_int(p, "index", i) < 0 || json_add_string(p, "text", text) < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                r = varlink_notify(c, p);
                if (r < 0)
                        return r;
        }
        return varlink_reply(c, NULL);
}

static int later_fire(sd_event_source *s, void *userdata) {
        Context *ctx = userdata;

        (void) varlink_reply(ctx->pending, NULL);
        ctx->pending = varlink_connection_unref(ctx->pending);
        ctx->later = sd_event_source_disable_unref(ctx->later);
        return 0;
}

static int method_later(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Context *ctx = userdata;
        int r;

        if (ctx->later)
                abort(); /* calls on one connection must not overlap */
        r = sd_event_add_defer(ctx->event, &ctx->later, later_fire, ctx);
        if (r < 0)
                return r;
        ctx->pending = varlink_connection_ref(c);
        return 0;
}

static int method_fail(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        return -EIO;
}

static int method_error(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        const char *name = json_get_string(parameters, "name");

        return varlink_error_invalid_parameter(c, name ?: "name");
}

static const VarlinkInterface fuzz_interface = {
        .name = "org.example.fuzz",
        .description = "interface org.example.fuzz\n",
        .methods = (const VarlinkMethod[]) {
                { "Echo", method_echo,
                  (const VarlinkField[]) {
                          { "text", VARLINK_STRING, VARLINK_NULLABLE },
                          { "number", VARLINK_FLOAT, VARLINK_NULLABLE },
                          { "flag", VARLINK_BOOL, VARLINK_NULLABLE },
                          { "list", VARLINK_ARRAY, VARLINK_NULLABLE },
                          { "value", VARLINK_ANY, VARLINK_NULLABLE },
                          { NULL },
                  }, 0 },
                { "Stream", method_stream,
                  (const VarlinkField[]) {
                          { "count", VARLINK_INT, VARLINK_NULLABLE },
                          { "text", VARLINK_STRING, VARLINK_NULLABLE },
                          { NULL },
                  }, VARLINK_METHOD_REQUIRES_MORE },
                { "Later", method_later, NULL, 0 },
                { "Fail", method_fail, NULL, 0 },
                { "Error", method_error, (const VarlinkField[]) { { "name", VARLINK_STRING, 0 }, { NULL } }, 0 },
                { "Privileged", method_echo, NULL, VARLINK_METHOD_PRIVILEGED },
                { "Unchecked", method_echo, NULL, VARLINK_METHOD_UNCHECKED },
                { NULL },
        },
};

/* Reads what the server sent and checks each complete message. Returns false on EOF. */
static bool drain_replies(int fd, ByteBuffer *in) {
        for (;;) {
                int r = fuzz_recv(fd, in);

                if (r <= 0)
                        return r == 0;

                for (;;) {
                        size_t size = byte_buffer_size(in);
                        const char *head, *nul;
                        json_object *m, *params;

                        if (size == 0)
                                break;
                        head = byte_buffer_head(in);
                        nul = memchr(head, 0, size);
                        if (!nul)
                                break;
                        m = json_tokener_parse(head);
                        if (!m || !json_object_is_type(m, json_type_object) ||
                            !json_object_object_get_ex(m, "parameters", &params) ||
                            !json_object_is_type(params, json_type_object)) {
                                fprintf(stderr, "Malformed reply: %s\n", head);
                                abort();
                        }
                        json_object_put(m);
                        byte_buffer_consume(in, (size_t) (nul - head) + 1);
                }
        }
}

/* One run of the whole input against a fresh server with the given limits. */
static void run(const uint8_t *data, size_t size, const VarlinkServerLimits *limits) {
        _cleanup_(varlink_server_freep) VarlinkServer *s = NULL;
        _cleanup_close_ int fd = -EBADF;
        ByteBuffer in = {};
        Context ctx = {};
        bool open = true;
        size_t off = 0;
        int pair[2];

        if (sd_event_new(&ctx.event) < 0 ||
            varlink_server_new(&s, ctx.event, "fuzz", "fuzz-varlink", "0", "https://example.org") < 0 ||
            varlink_server_set_limits(s, limits) < 0 ||
            varlink_server_add_interface(s, &fuzz_interface) < 0)
                abort();
        varlink_server_set_userdata(s, &ctx);

        fuzz_socketpair(pair);
        fd = pair[1];
        if (varlink_server_add_connection(s, pair[0]) < 0)
                abort();

        for (size_t i = 0; open && off < size; i++) {
                if (!fuzz_send_chunk(fd, data, size, &off, i))
                        break;/* the server hung up on us */

                fuzz_run_until_idle(ctx.event);
                open = drain_replies(fd, &in);
        }

        /* End of input: half-close, let the server finish, collect the rest. */
        (void) shutdown(fd, SHUT_WR);
        for (unsigned i = 0; open && i < 64; i++) {
                fuzz_run_until_idle(ctx.event);
                open = drain_replies(fd, &in);
                if (open && varlink_server_connection_count(s) == 0)
                        abort(); /* closed on the server side, but no EOF here */
        }
        /* After a half-close with everything answered, the server closes the connection. */
        if (open) {
                fprintf(stderr, "Connection still open after the client's EOF.\n");
                abort();
        }

        ctx.later = sd_event_source_disable_unref(ctx.later);
        s = varlink_server_free(s);
        ctx.pending = varlink_connection_unref(ctx.pending);
        ctx.event = sd_event_unref(ctx.event);
        byte_buffer_done(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* Small limits, so that inputs reach them... */
        static const VarlinkServerLimits small = {
                .max_message_size = 4096,
                .max_output_size = 16384,
                .max_connections = 4,
                .max_connections_per_uid = 4,
                .max_json_depth = 16,
        };
        /* ...and the daemon's defaults, whose 64 KiB reads take other buffer paths. */
        const VarlinkServerLimits defaults = VARLINK_SERVER_LIMITS_DEFAULT;

        if (size > 256 * 1024)
                return 0;
        fuzz_setup_logging();

        run(data, size, &small);
        run(data, size, &defaults);
        return 0;
}
