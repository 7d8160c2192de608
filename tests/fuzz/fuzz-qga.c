/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds the input as what the guest agent writes into a QgaClient over a socketpair, in chunks of varying size with
 * the event loop run in between, so 0xFF sentinels, sync replies and messages split anywhere are exercised.
 * Everything from the agent is untrusted.
 *
 * The first byte chooses what the owner does meanwhile: bit 0 closes the agent port halfway through the input (and
 * bit 1 opens it again right after), bit 2 drops the client from inside the first command's callback, bit 3 hangs
 * up after the input (else the owner drops the client while the agent is still there). The rest is the agent's
 * output. Ids are deterministic: the sync is 1 (the fuzz target closes and opens the port once before anything
 * to get a sync with the id it chose), the commands queued before it answers 2 (guest-ping), 3 (guest-exec-status
 * with a 4 KiB reply bound), guest-info 4, then a command queued from the first callback 5; a resync after a bad
 * reply takes the next free id. The seeds answer those.
 *
 * Besides the sanitizers it checks the client's promise: every callback runs exactly once with a documented
 * error, an -EIO error carries class and description, the enabled commands are sorted and unique. A callback run
 * twice or never is abort()ed on. */

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "basic/strv.h"
#include "qga/qga-client-internal.h"

#define N_SLOTS 3

typedef struct Context {
        sd_event *event;
        QgaClient *client;              /* our reference, NULL once dropped */
        unsigned calls[N_SLOTS];
        bool queued[N_SLOTS];
        bool drop_in_callback;
} Context;

typedef struct Slot {
        Context *ctx;
        unsigned index;
} Slot;

static Slot slots[N_SLOTS];

static void check_commands(QgaClient *c) {
        char *const *l = qga_client_get_commands(c);

        if (qga_client_get_state(c) == QGA_STATE_READY && !l)
                abort();
        for (size_t i = 0; l && l[i]; i++) {
                (void) strlen(l[i]);
                if (i > 0 && strcmp(l[i - 1], l[i]) >= 0)
                        abort();
                if (!qga_client_supports(c, l[i]))
                        abort();
        }
        if (qga_client_get_version(c))
                (void) strlen(qga_client_get_version(c));
}

static void on_command(QgaClient *c, int error, json_object *result, const char *cls, const char *desc,
                       void *userdata) {
        Slot *s = userdata;
        Context *ctx = s->ctx;

        if (getenv("FUZZ_DEBUG"))
                fprintf(stderr, "command %u: %d %s %s\n", s->index, error, strna(cls), strna(desc));
        if (++ctx->calls[s->index] != 1) {
                fprintf(stderr, "Callback of command %u ran %u times.\n", s->index, ctx->calls[s->index]);
                abort();
        }
        FUZZ_CHECK_ERROR(error, -EIO, -ETIMEDOUT, -ENOTCONN, -ECONNRESET, -EMSGSIZE, -EPROTO, -ECANCELED);
        if ((error == 0) != !!result || (error == -EIO) != !!cls || (error == -EIO) != !!desc)
                abort();
        if (result)
                (void) json_object_to_json_string(result);
        if (cls)
                (void) (strlen(cls) + strlen(desc));
        check_commands(c);

        if (s->index == 0) {
                /* The first callback queues another command, as the typed operations do. */
                int r = qga_client_execute(c, "guest-file-read", json_object_new_object(), 0, 0, on_command,
                                           &slots[2]);
                FUZZ_CHECK_ERROR(r, -ENOTCONN);
                ctx->queued[2] = r >= 0;
                if (ctx->drop_in_callback && ctx->client)
                        ctx->client = qga_client_unref(ctx->client);
        }
}

static void on_state(QgaClient *c, QgaState state, void *userdata) {
        if (state < 0 || state >= _QGA_STATE_MAX)
                abort();
        if (getenv("FUZZ_DEBUG"))
                fprintf(stderr, "state %s (%s)\n", qga_state_to_string(state), strna(qga_client_get_reason(c)));
        check_commands(c);
        (void) strlen(strempty(qga_client_get_reason(c)));
}

static void drain(int fd) {
        char buf[16384];

        while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        Context ctx = {};
        size_t off = 1, n_sends = 0;
        uint8_t flags;
        int pair[2];

        if (size < 1 || size > 256 * 1024)
                return 0;
        fuzz_setup_logging();
        if (getenv("FUZZ_DEBUG"))
                log_set_max_level(LOG_DEBUG);
        flags = data[0];
        ctx.drop_in_callback = flags & 4;

        if (sd_event_new(&ctx.event) < 0)
                abort();
        fuzz_socketpair(pair);
        fd = pair[1];
        if (qga_client_new_fd(&ctx.client, ctx.event, pair[0]) < 0)
                abort();
        qga_client_set_description(ctx.client, "VM=fuzz");
        qga_client_set_state_callback(ctx.client, on_state, &ctx);
        /* A sync with a known id: closing and opening the port drops the first one. */
        qga_client_set_next_id(ctx.client, 1);
        qga_client_port_changed(ctx.client, false);
        qga_client_port_changed(ctx.client, true);

        for (unsigned i = 0; i < N_SLOTS; i++)
                slots[i] = (Slot) { &ctx, i };
        if (qga_client_execute(ctx.client, "guest-ping", NULL, 0, 0, on_command, &slots[0]) < 0 ||
            qga_client_execute(ctx.client, "guest-exec-status", NULL, 0, 4096, on_command, &slots[1]) < 0)
                abort();
        ctx.queued[0] = ctx.queued[1] = true;

        while (off < size) {
                if (!fuzz_send_chunk(fd, data, size, &off, n_sends++))
                        break;
                fuzz_run_until_idle(ctx.event);
                drain(fd);
                if (ctx.client && (flags & 1) && off >= size / 2) {
                        flags &= ~1;
                        qga_client_port_changed(ctx.client, false);
                        /* The callbacks that ran may have dropped the client. */
                        if (ctx.client && qga_client_pending(ctx.client) != 0)
                                abort();
                        if (ctx.client && (flags & 2))
                                qga_client_port_changed(ctx.client, true);
                }
                if (!ctx.client)
                        break;
        }

        if (ctx.client && (flags & 8)) {
                fd = safe_close(fd);
                fuzz_run_until_idle(ctx.event);
                if (ctx.client &&
                    (qga_client_get_state(ctx.client) != QGA_STATE_ABSENT || qga_client_pending(ctx.client) != 0)) {
                        fprintf(stderr, "Client not absent after EOF.\n");
                        abort();
                }
        }
        /* Taken off the context first: a callback run inside this unref must not drop it again. */
        qga_client_unref(TAKE_PTR(ctx.client));
        fuzz_run_until_idle(ctx.event);

        for (unsigned i = 0; i < N_SLOTS; i++)
                if (ctx.calls[i] != (ctx.queued[i] ? 1U : 0U)) {
                        fprintf(stderr, "Callback of command %u ran %u times.\n", i, ctx.calls[i]);
                        abort();
                }
        ctx.event = sd_event_unref(ctx.event);
        return 0;
}
