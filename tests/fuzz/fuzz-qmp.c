/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds the input as the byte stream QEMU sends (greeting, replies, events, garbage) into a QmpClient over a
 * socketpair, in chunks of varying size with the event loop run in between, so partial reads and messages
 * split anywhere are exercised. Everything from QEMU is untrusted input.
 *
 * The client is used the way memvisord uses it: commands queued before the greeting (query-status, whose
 * callback queues another command; a kvm_stats_query(), which parses the query-stats replies), an event
 * observer that removes itself on STOP, and a disconnect from inside an event callback on SHUTDOWN. Ids are
 * given when a command is queued: query-status 1, query-memdev 2, qmp_capabilities 3 (after the greeting),
 * query-stats vm 4, vcpu 5 and query-stats-schemas 6 (once running), query-name 7 (after query-status's
 * reply); the seeds answer those.
 *
 * Besides the sanitizers, it checks the client's central promise: every command callback runs exactly once
 * (reply, error or -ECONNRESET at the end), and nothing runs after its owner is gone. A callback run twice or
 * never is abort()ed on, so a lifetime bug becomes a finding. Observers get a typed event (qmp-event.h) that is
 * consistent with itself: a name, the type that name stands for, and that type's fields. */

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "qmp/qmp-client.h"
#include "qmp/qmp-stats.h"

typedef struct Context {
        sd_event *event;
        QmpClient *qmp;                 /* our reference */
        QmpClient *client;              /* the same client, for comparisons after we dropped it */
        unsigned calls[4];              /* per command slot: callback runs */
        unsigned stats_calls;
        bool stats_queued;
        bool followup_queued;
        bool observing;
} Context;

static void check_reply(int error, json_object *result, const char *cls, const char *desc) {
        if (error == 0 && (cls || desc))
                abort();
        if (error == -EIO && (!cls || !desc))
                abort();
        if (error != 0 && result)
                abort();
        if (error != 0 && error != -EIO && error != -ECONNRESET && error != -EPROTO && error != -ETIMEDOUT)
                abort();
}

typedef struct Slot {
        Context *ctx;
        unsigned index;
} Slot;

static Slot slots[ELEMENTSOF(((Context *) NULL)->calls)];

static void on_command(QmpClient *q, int error, json_object *result, const char *cls, const char *desc,
                       void *userdata) {
        Slot *s = userdata;
        Context *ctx = s->ctx;

        check_reply(error, result, cls, desc);
        if (++ctx->calls[s->index] != 1) {
                fprintf(stderr, "Callback of command %u ran %u times.\n", s->index, ctx->calls[s->index]);
                abort();
        }
        if (q != ctx->client)
                abort();

        /* The first reply queues a follow-up, as the VM code does from its callbacks. */
        if (s->index == 0 && error == 0) {
                int r = qmp_client_execute(q, "query-name", NULL, USEC_INFINITY, on_command, &slots[3]);
                if (r < 0 && r != -ENOTCONN)
                        abort();
                ctx->followup_queued = r >= 0;
        }
}

static void on_stats(KvmStats *stats, int error, void *userdata) {
        Context *ctx = userdata;

        if (++ctx->stats_calls != 1) {
                fprintf(stderr, "Stats callback ran %u times.\n", ctx->stats_calls);
                abort();
        }
        if ((error < 0) != !stats)
                abort();
        if (stats) {
                _cleanup_json_ json_object *d = NULL;
                uint64_t v;

                for (size_t i = 0; i < stats->vm.n; i++)
                        if (kvm_stats_get(stats, stats->vm.stats[i].name, &v) < 0)
                                abort();
                for (size_t i = 0; i < stats->n_vcpus; i++)
                        for (size_t k = 0; k < stats->vcpus[i].n; k++)
                                if (kvm_stats_get(stats, stats->vcpus[i].stats[k].name, &v) < 0)
                                        abort();
                if (kvm_stats_delta_json(stats, stats, &d) < 0)
                        abort();
                kvm_stats_free(stats);
        }
}

/* The typed event must be self-consistent whatever QEMU sent: a name, a type that matches it, and the typed
 * fields of that type set. Touching every string makes ASan see a dangling one. */
static void check_event(const QmpEvent *e) {
        const char *want;

        if (!e->name) {
                fprintf(stderr, "Event without a name.\n");
                abort();
        }
        (void) strlen(e->name);
        if (e->type < 0 || e->type >= _QMP_EVENT_TYPE_MAX)
                abort();
        want = qmp_event_type_to_string(e->type);
        if (want && !streq(want, e->name)) {
                fprintf(stderr, "Event %s typed as %s.\n", e->name, want);
                abort();
        }
        switch (e->type) {
        case QMP_EVENT_SHUTDOWN:
        case QMP_EVENT_RESET:
                if (!e->shutdown.reason || !json_object_is_type(e->data, json_type_object))
                        abort();
                (void) strlen(e->shutdown.reason);
                break;
        case QMP_EVENT_GUEST_PANICKED:
                if (!e->guest_panicked.action)
                        abort();
                (void) strlen(e->guest_panicked.action);
                break;
        case QMP_EVENT_BALLOON_CHANGE:
                if (e->balloon_change.actual > INT64_MAX)
                        abort();
                break;
        case QMP_EVENT_VSERPORT_CHANGE:
                if (!e->vserport_change.id || !json_object_is_type(e->data, json_type_object))
                        abort();
                (void) strlen(e->vserport_change.id);
                break;
        case QMP_EVENT_UNKNOWN:
        case QMP_EVENT_POWERDOWN:
        case QMP_EVENT_STOP:
        case QMP_EVENT_RESUME:
        case QMP_EVENT_SUSPEND:
        case QMP_EVENT_WAKEUP:
        case _QMP_EVENT_TYPE_MAX:
        case _QMP_EVENT_TYPE_INVALID:
                break;
        }
}

static void on_event(QmpClient *q, const QmpEvent *event, void *userdata) {
        Context *ctx = userdata;

        if (!ctx->observing)
                abort(); /* called after it was removed */
        check_event(event);
        if (event->type == QMP_EVENT_STOP) {
                qmp_client_remove_event_observer(q, on_event, ctx);
                ctx->observing = false;
        } else if (event->type == QMP_EVENT_SHUTDOWN)
                qmp_client_disconnect(q, 0);
}

static void on_state(QmpClient *q, QmpClientState state, int error, void *userdata) {
        Context *ctx = userdata;

        if (state < 0 || state >= _QMP_CLIENT_STATE_MAX)
                abort();
        /* Once connected, ask for the stats the way the metrics sampler does. */
        if (state == QMP_CLIENT_RUNNING && !ctx->stats_queued) {
                ctx->stats_queued = true;
                if (kvm_stats_query(q, USEC_INFINITY, on_stats, ctx) < 0)
                        ctx->stats_calls++; /* never queued: counts as its one run */
        }
}

/* Reads and discards what the client sent (it must not block on a full socket). */
static void drain(int fd) {
        char buf[16384];

        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n <= 0)
                        return;
        }
}

static void run(const uint8_t *data, size_t size, bool hang_up) {
        _cleanup_close_ int fd = -EBADF;
        Context ctx = {};
        size_t off = 0, n_sends = 0;
        int pair[2];

        if (sd_event_new(&ctx.event) < 0)
                abort();
        fuzz_socketpair(pair);
        fd = pair[1];
        if (qmp_client_new(&ctx.qmp, ctx.event, pair[0]) < 0)
                abort();
        ctx.client = ctx.qmp;
        qmp_client_set_description(ctx.qmp, "fuzz");
        qmp_client_set_state_callback(ctx.qmp, on_state, &ctx);
        if (qmp_client_add_event_observer(ctx.qmp, on_event, &ctx) < 0)
                abort();
        ctx.observing = true;

        for (unsigned i = 0; i < ELEMENTSOF(slots); i++)
                slots[i] = (Slot) { &ctx, i };
        /* Queued before the greeting, so they get ids 1 and 2, qmp_capabilities 3. */
        if (qmp_client_execute(ctx.qmp, "query-status", NULL, USEC_INFINITY, on_command, &slots[0]) < 0 ||
            qmp_client_execute(ctx.qmp, "query-memdev", NULL, USEC_INFINITY, on_command, &slots[1]) < 0)
                abort();
        ctx.calls[2] = 1; /* slot 2 unused */

        while (off < size) {
                if (!fuzz_send_chunk(fd, data, size, &off, n_sends++))
                        break; /* the client hung up */

                fuzz_run_until_idle(ctx.event);
                drain(fd);
                if (qmp_client_get_state(ctx.qmp) == QMP_CLIENT_DISCONNECTED)
                        break;
        }

        if (hang_up) {
                /* QEMU exits: EOF, every command still open fails with -ECONNRESET. */
                fd = safe_close(fd);
                fuzz_run_until_idle(ctx.event);
                if (qmp_client_get_state(ctx.qmp) != QMP_CLIENT_DISCONNECTED || qmp_client_pending(ctx.qmp) != 0) {
                        fprintf(stderr, "Client not disconnected after EOF.\n");
                        abort();
                }
        }
        /* Otherwise the owner lets go while QEMU is still there: the callbacks run inside unref... */
        if (ctx.observing)
                qmp_client_remove_event_observer(ctx.qmp, on_event, &ctx);
        ctx.observing = false;
        ctx.qmp = qmp_client_unref(ctx.qmp);
        /* ...unless an unfinished kvm_stats_query() holds a reference of its own: then the client lives on
         * until QEMU answers or goes away. It goes away now. */
        fd = safe_close(fd);
        fuzz_run_until_idle(ctx.event);

        for (unsigned i = 0; i < ELEMENTSOF(ctx.calls); i++)
                if (ctx.calls[i] != (i == 3 && !ctx.followup_queued ? 0U : 1U)) {
                        fprintf(stderr, "Callback of command %u ran %u times.\n", i, ctx.calls[i]);
                        abort();
                }
        if (ctx.stats_calls != (ctx.stats_queued ? 1U : 0U)) {
                fprintf(stderr, "Stats callback ran %u times.\n", ctx.stats_calls);
                abort();
        }

        fuzz_run_until_idle(ctx.event);
        ctx.event = sd_event_unref(ctx.event);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > 256 * 1024)
                return 0;
        fuzz_setup_logging();

        run(data, size, true);
        run(data, size, false);
        return 0;
}
