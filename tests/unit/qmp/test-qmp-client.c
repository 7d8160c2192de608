/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QMP client against real QEMU transcripts (tests/data/qmp/NAME.qmp, recorded from QEMU 7.2) played back
 * through a socketpair — whole messages, byte by byte, and several messages per write — and against
 * hand-made failure cases: QEMU vanishing mid-command, command timeouts, garbage, oversize input. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "qmp/qmp-client.h"

#define MAX_CMDS 64

typedef enum Chunking {
        CHUNK_WHOLE,    /* each message in one write */
        CHUNK_BYTES,    /* one byte per write, the loop runs between bytes */
        CHUNK_BATCH,    /* consecutive server messages in one write */
} Chunking;

typedef struct Result {
        bool done;
        unsigned calls;         /* must end at exactly 1 */
        int error;
        char *result;           /* serialized "return" */
        char *error_class;
} Result;

typedef struct Harness {
        sd_event *event;
        QmpClient *q;
        int peer;               /* the fake QEMU's end */
        char inbuf[1 << 16];
        size_t inlen;
        Result results[MAX_CMDS];
        unsigned n_events;
        char events[MAX_CMDS][64];
        QmpClientState last_state;
        int disconnect_error;
        unsigned state_changes;
} Harness;

static void on_result(QmpClient *q, int error, json_object *result, const char *cls, const char *desc, void *userdata) {
        Result *r = userdata;

        r->calls++;
        assert_false(r->done); /* exactly once */
        r->done = true;
        r->error = error;
        if (result)
                r->result = strdup(json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN));
        if (cls)
                r->error_class = strdup(cls);
}

static void on_event(QmpClient *q, const QmpEvent *event, void *userdata) {
        Harness *h = userdata;

        assert_true(h->n_events < MAX_CMDS);
        snprintf(h->events[h->n_events++], 64, "%s", event->name);
        assert_true(event->timestamp_usec > 0);
}

static void on_state(QmpClient *q, QmpClientState state, int error, void *userdata) {
        Harness *h = userdata;

        h->last_state = state;
        h->state_changes++;
        if (state == QMP_CLIENT_DISCONNECTED)
                h->disconnect_error = error;
}

static void harness_init(Harness *h) {
        int sv[2];

        memset(h, 0, sizeof(*h));
        assert_int_equal(sd_event_new(&h->event), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        h->peer = sv[1];
        assert_int_equal(qmp_client_new(&h->q, h->event, sv[0]), 0);
        qmp_client_set_description(h->q, "test");
        qmp_client_set_state_callback(h->q, on_state, h);
        assert_int_equal(qmp_client_add_event_observer(h->q, on_event, h), 0);
}

static void harness_done(Harness *h) {
        for (size_t i = 0; i < MAX_CMDS; i++) {
                free(h->results[i].result);
                free(h->results[i].error_class);
        }
        qmp_client_unref(h->q);
        if (h->peer >= 0)
                close(h->peer);
        sd_event_unref(h->event);
}

/* Runs the loop for a few iterations without blocking long. */
static void spin(Harness *h) {
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(h->event, 0) >= 0);
}

static void peer_write(Harness *h, const char *data, size_t n, Chunking chunking) {
        if (chunking == CHUNK_BYTES) {
                for (size_t i = 0; i < n; i++) {
                        assert_int_equal(write(h->peer, data + i, 1), 1);
                        spin(h);
                }
                return;
        }
        assert_int_equal(write(h->peer, data, n), (ssize_t) n);
}

/* Reads one "\r\n"-terminated message the client sent, running the loop until it arrives. */
static json_object *peer_read_message(Harness *h) {
        for (int tries = 0; tries < 2000; tries++) {
                char *end = memmem(h->inbuf, h->inlen, "\r\n", 2);
                if (end) {
                        size_t l = (size_t) (end - h->inbuf);
                        char *text = strndup(h->inbuf, l);
                        json_object *o = json_tokener_parse(text);
                        free(text);
                        memmove(h->inbuf, end + 2, h->inlen - l - 2);
                        h->inlen -= l + 2;
                        assert_non_null(o);
                        return o;
                }
                assert_true(sd_event_run(h->event, 1000) >= 0);
                struct pollfd p = { .fd = h->peer, .events = POLLIN };
                if (poll(&p, 1, 0) == 1) {
                        ssize_t k = read(h->peer, h->inbuf + h->inlen, sizeof(h->inbuf) - h->inlen);
                        assert_true(k > 0);
                        h->inlen += (size_t) k;
                }
        }
        fail_msg("the client never sent the expected command");
        return NULL;
}

/* ---- transcript replay ------------------------------------------------------------------------ */

typedef struct Expected {
        json_object *command;   /* the C: line */
        Result *result;         /* where its callback writes; NULL for qmp_capabilities */
        int64_t actual_id;
        json_object *reply;     /* the S: reply, once seen */
} Expected;

static void replay(const char *path, Chunking chunking) {
        _cleanup_free_ char *text = NULL;
        Harness h;
        Expected exp[MAX_CMDS] = {};
        size_t n_exp = 0, next_reply = 0, n_results = 0;
        unsigned events_expected = 0;
        char batch[1 << 16];
        size_t batch_len = 0;
        bool eof = false, negotiated = false;
        char *save = NULL;

        assert_int_equal(read_full_file(path, 1 << 20, &text, NULL), 0);
        harness_init(&h);

        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (line[0] == '#' || line[0] == 0)
                        continue;
                if (startswith(line, "EOF")) { /* "EOF" or "EOF ECONNRESET": QEMU closed the connection */
                        eof = true;
                        break;
                }
                if (startswith(line, "C: ")) {
                        json_object *cmd = json_tokener_parse(line + 3);
                        const char *name;

                        /* Lines our client would never send (malformed input recorded on purpose) end the
                         * part of the transcript that can be replayed. */
                        if (!cmd || !json_object_is_type(cmd, json_type_object) || !json_get_string(cmd, "execute")) {
                                json_object_put(cmd);
                                break;
                        }
                        name = json_get_string(cmd, "execute");
                        /* Our client negotiates first and exactly once; transcripts that show other
                         * orders (recorded to document QEMU's answers) are replayed up to that point. */
                        if (negotiated == streq(name, "qmp_capabilities")) {
                                json_object_put(cmd);
                                break;
                        }
                        negotiated = true;
                        assert_true(n_exp < MAX_CMDS);
                        exp[n_exp].command = cmd;
                        if (!streq(name, "qmp_capabilities")) {
                                json_object *args = NULL;
                                exp[n_exp].result = &h.results[n_results++];
                                (void) json_object_object_get_ex(cmd, "arguments", &args);
                                assert_int_equal(qmp_client_execute(h.q, name, args ? json_object_get(args) : NULL, 0,
                                                                    on_result, exp[n_exp].result),
                                                 0);
                        }
                        n_exp++;
                        continue;
                }
                assert_non_null(startswith(line, "S: "));

                json_object *msg = json_tokener_parse(line + 3);
                assert_non_null(msg);
                const char *out = line + 3;
                _cleanup_free_ char *rewritten = NULL;

                if (json_object_object_get_ex(msg, "return", NULL) || json_object_object_get_ex(msg, "error", NULL)) {
                        /* The reply to the oldest command still open: make sure the client sent it as recorded,
                         * and answer with the id our client chose. */
                        json_object *sent, *want_args = NULL, *got_args = NULL;

                        assert_true(next_reply < n_exp);
                        if (batch_len > 0) {
                                peer_write(&h, batch, batch_len, chunking);
                                batch_len = 0;
                        }
                        sent = peer_read_message(&h);
                        assert_string_equal(json_get_string(sent, "execute"),
                                            json_get_string(exp[next_reply].command, "execute"));
                        (void) json_object_object_get_ex(exp[next_reply].command, "arguments", &want_args);
                        (void) json_object_object_get_ex(sent, "arguments", &got_args);
                        assert_true(json_object_equal(want_args, got_args));
                        exp[next_reply].actual_id = json_get_int(sent, "id", -1);
                        assert_true(exp[next_reply].actual_id > 0);
                        json_object_put(sent);

                        json_object_object_add(msg, "id", json_object_new_int64(exp[next_reply].actual_id));
                        exp[next_reply].reply = json_object_get(msg);
                        next_reply++;
                        rewritten = strdup(json_object_to_json_string_ext(msg, JSON_C_TO_STRING_SPACED));
                        out = rewritten;
                } else if (json_object_object_get_ex(msg, "event", NULL))
                        events_expected++;
                json_object_put(msg);

                size_t l = strlen(out);
                if (chunking == CHUNK_BATCH && batch_len + l + 2 < sizeof(batch)) {
                        memcpy(batch + batch_len, out, l);
                        memcpy(batch + batch_len + l, "\r\n", 2);
                        batch_len += l + 2;
                } else {
                        peer_write(&h, out, l, chunking);
                        peer_write(&h, "\r\n", 2, chunking);
                        spin(&h);
                }
        }
        if (batch_len > 0)
                peer_write(&h, batch, batch_len, chunking);
        for (int i = 0; i < 50; i++)
                assert_true(sd_event_run(h.event, 2000) >= 0);

        /* Every replied command got exactly its recorded result. */
        for (size_t i = 0; i < next_reply; i++) {
                json_object *ret = NULL, *err = NULL;
                Result *r = exp[i].result;

                if (!r)
                        continue;
                assert_true(r->done);
                if (json_object_object_get_ex(exp[i].reply, "return", &ret)) {
                        assert_int_equal(r->error, 0);
                        assert_string_equal(r->result, json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN));
                } else {
                        assert_true(json_object_object_get_ex(exp[i].reply, "error", &err));
                        assert_int_equal(r->error, -EIO);
                        assert_string_equal(r->error_class, json_get_string(err, "class"));
                }
        }
        assert_int_equal(h.n_events, events_expected);

        if (eof) {
                close(h.peer);
                h.peer = -EBADF;
                for (int i = 0; i < 20 && h.last_state != QMP_CLIENT_DISCONNECTED; i++)
                        assert_true(sd_event_run(h.event, 100000) >= 0);
                assert_int_equal(h.last_state, QMP_CLIENT_DISCONNECTED);
        } else if (next_reply > 0)
                assert_int_equal(qmp_client_get_state(h.q), QMP_CLIENT_RUNNING);

        /* Commands never answered in the transcript fail once QEMU goes away. */
        if (h.peer >= 0) {
                close(h.peer);
                h.peer = -EBADF;
        }
        for (int i = 0; i < 20 && qmp_client_get_state(h.q) != QMP_CLIENT_DISCONNECTED; i++)
                assert_true(sd_event_run(h.event, 100000) >= 0);
        for (size_t i = next_reply; i < n_exp; i++)
                if (exp[i].result) {
                        assert_true(exp[i].result->done);
                        assert_int_equal(exp[i].result->error, -ECONNRESET);
                }

        for (size_t i = 0; i < n_exp; i++) {
                json_object_put(exp[i].command);
                json_object_put(exp[i].reply);
        }
        harness_done(&h);
}

static const char *data_dir(void) {
        return getenv("QMP_TRANSCRIPTS") ?: QMP_TRANSCRIPTS_DIR;
}

static void replay_all(Chunking chunking) {
        struct dirent **list;
        int n = scandir(data_dir(), &list, NULL, alphasort), replayed = 0;

        assert_true(n > 0);
        for (int i = 0; i < n; i++) {
                const char *name = list[i]->d_name;
                size_t l = strlen(name);

                if (l > 4 && streq(name + l - 4, ".qmp")) {
                        _cleanup_free_ char *p = path_join(data_dir(), name);
                        print_message("replaying %s (chunking %d)\n", name, (int) chunking);
                        replay(p, chunking);
                        replayed++;
                }
                free(list[i]);
        }
        free(list);
        assert_true(replayed >= 10);
}

static void test_transcripts_whole(void **state) {
        replay_all(CHUNK_WHOLE);
}

static void test_transcripts_bytewise(void **state) {
        replay_all(CHUNK_BYTES);
}

static void test_transcripts_batched(void **state) {
        replay_all(CHUNK_BATCH);
}

/* ---- failure cases ---------------------------------------------------------------------------- */

static const char greeting[] =
        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, "
        "\"capabilities\": [\"oob\"]}}\r\n";

static void negotiate(Harness *h) {
        json_object *caps;
        char reply[128];

        peer_write(h, greeting, strlen(greeting), CHUNK_WHOLE);
        caps = peer_read_message(h);
        assert_string_equal(json_get_string(caps, "execute"), "qmp_capabilities");
        snprintf(reply, sizeof(reply), "{\"return\": {}, \"id\": %" PRIi64 "}\r\n", json_get_int(caps, "id", -1));
        json_object_put(caps);
        peer_write(h, reply, strlen(reply), CHUNK_WHOLE);
        for (int i = 0; i < 10 && qmp_client_get_state(h->q) != QMP_CLIENT_RUNNING; i++)
                assert_true(sd_event_run(h->event, 100000) >= 0);
        assert_int_equal(qmp_client_get_state(h->q), QMP_CLIENT_RUNNING);
        assert_non_null(qmp_client_get_greeting(h->q));
}

static void test_vanish_mid_command(void **state) {
        Harness h;
        json_object *cmd;

        harness_init(&h);
        /* Commands queued before the greeting are sent only after negotiation. */
        assert_int_equal(qmp_client_execute(h.q, "query-status", NULL, 0, on_result, &h.results[0]), 0);
        assert_int_equal(qmp_client_pending(h.q), 1U);
        negotiate(&h);
        cmd = peer_read_message(&h);
        assert_string_equal(json_get_string(cmd, "execute"), "query-status");
        json_object_put(cmd);
        assert_int_equal(qmp_client_execute(h.q, "query-cpus-fast", NULL, 0, on_result, &h.results[1]), 0);
        spin(&h);

        /* QEMU dies: half a reply, then EOF. */
        peer_write(&h, "{\"return\": {\"sta", 16, CHUNK_WHOLE);
        spin(&h);
        close(h.peer);
        h.peer = -EBADF;
        for (int i = 0; i < 20 && h.last_state != QMP_CLIENT_DISCONNECTED; i++)
                assert_true(sd_event_run(h.event, 100000) >= 0);

        assert_int_equal(h.last_state, QMP_CLIENT_DISCONNECTED);
        assert_int_equal(h.results[0].calls, 1U);
        assert_int_equal(h.results[0].error, -ECONNRESET);
        assert_int_equal(h.results[1].calls, 1U);
        assert_int_equal(h.results[1].error, -ECONNRESET);
        assert_int_equal(qmp_client_pending(h.q), 0U);
        /* Nothing can be queued on a dead connection. */
        assert_int_equal(qmp_client_execute(h.q, "query-status", NULL, 0, on_result, &h.results[2]), -ENOTCONN);
        /* and nothing is called again when the last reference goes. */
        h.q = qmp_client_unref(h.q);
        assert_int_equal(h.results[0].calls, 1U);
        assert_int_equal(h.results[1].calls, 1U);
        assert_int_equal(h.results[2].calls, 0U);
        harness_done(&h);
}

static void test_timeout_and_late_reply(void **state) {
        Harness h;
        json_object *cmd;
        char reply[128];
        int64_t id;

        harness_init(&h);
        negotiate(&h);
        assert_int_equal(qmp_client_execute(h.q, "query-status", NULL, 20 * USEC_PER_MSEC, on_result, &h.results[0]), 0);
        cmd = peer_read_message(&h);
        id = json_get_int(cmd, "id", -1);
        json_object_put(cmd);

        for (int i = 0; i < 50 && !h.results[0].done; i++)
                assert_true(sd_event_run(h.event, 10000) >= 0);
        assert_true(h.results[0].done);
        assert_int_equal(h.results[0].error, -ETIMEDOUT);

        /* The late reply is ignored; the connection stays usable. */
        snprintf(reply, sizeof(reply), "{\"return\": {\"status\": \"running\"}, \"id\": %" PRIi64 "}\r\n", id);
        peer_write(&h, reply, strlen(reply), CHUNK_WHOLE);
        assert_int_equal(qmp_client_execute(h.q, "query-name", NULL, 0, on_result, &h.results[1]), 0);
        cmd = peer_read_message(&h);
        snprintf(reply, sizeof(reply), "{\"return\": {}, \"id\": %" PRIi64 "}\r\n", json_get_int(cmd, "id", -1));
        json_object_put(cmd);
        peer_write(&h, reply, strlen(reply), CHUNK_WHOLE);
        for (int i = 0; i < 20 && !h.results[1].done; i++)
                assert_true(sd_event_run(h.event, 10000) >= 0);
        assert_int_equal(h.results[1].error, 0);
        assert_string_equal(h.results[1].result, "{}");
        assert_int_equal(qmp_client_get_state(h.q), QMP_CLIENT_RUNNING);
        harness_done(&h);
}

static void test_garbage_disconnects(void **state) {
        Harness h;

        harness_init(&h);
        negotiate(&h);
        assert_int_equal(qmp_client_execute(h.q, "query-status", NULL, 0, on_result, &h.results[0]), 0);
        peer_write(&h, "{\"return\": }\r\n", 15, CHUNK_WHOLE);
        for (int i = 0; i < 20 && h.last_state != QMP_CLIENT_DISCONNECTED; i++)
                assert_true(sd_event_run(h.event, 10000) >= 0);
        assert_int_equal(h.last_state, QMP_CLIENT_DISCONNECTED);
        assert_int_equal(h.disconnect_error, -EBADMSG);
        assert_true(h.results[0].done && h.results[0].error == -ECONNRESET);
        harness_done(&h);
}

static void test_second_greeting_is_a_protocol_error(void **state) {
        Harness h;

        harness_init(&h);
        negotiate(&h);
        peer_write(&h, greeting, strlen(greeting), CHUNK_WHOLE);
        for (int i = 0; i < 20 && h.last_state != QMP_CLIENT_DISCONNECTED; i++)
                assert_true(sd_event_run(h.event, 10000) >= 0);
        assert_int_equal(h.last_state, QMP_CLIENT_DISCONNECTED);
        assert_int_equal(h.disconnect_error, -EPROTO);
        harness_done(&h);
}

static void test_oversize_message_is_dropped(void **state) {
        Harness h;
        json_object *cmd;
        char chunk[65536], reply[128];
        size_t sent = 0;

        harness_init(&h);
        negotiate(&h);
        /* A reply over QMP_MAX_MESSAGE_SIZE (HMP xp of a large range): dropped up to its newline, never buffered
         * whole; it fails the command it answers with -E2BIG, and the connection goes on. */
        assert_int_equal(qmp_client_execute(h.q, "human-monitor-command", NULL, 0, on_result, &h.results[0]), 0);
        cmd = peer_read_message(&h);
        json_object_put(cmd);
        memset(chunk, 'x', sizeof(chunk));
        (void) signal(SIGPIPE, SIG_IGN);
        assert_int_equal(write(h.peer, "{\"return\": \"", 12), 12);
        assert_int_equal(fcntl(h.peer, F_SETFL, O_NONBLOCK), 0);
        while (sent < QMP_MAX_MESSAGE_SIZE + 4 * sizeof(chunk) && h.last_state != QMP_CLIENT_DISCONNECTED) {
                ssize_t k = write(h.peer, chunk, sizeof(chunk));
                if (k > 0)
                        sent += (size_t) k;
                assert_true(sd_event_run(h.event, 1000) >= 0);
        }
        if (qmp_client_get_state(h.q) != QMP_CLIENT_RUNNING)
                fail_msg("disconnected: %d", h.disconnect_error);
        assert_int_equal(fcntl(h.peer, F_SETFL, 0), 0);
        peer_write(&h, "\"}\r\n", 4, CHUNK_WHOLE);
        for (int i = 0; i < 50 && !h.results[0].done; i++)
                assert_true(sd_event_run(h.event, 10000) >= 0);
        assert_true(h.results[0].done);
        assert_int_equal(h.results[0].error, -E2BIG);

        /* The next command is answered as usual. */
        assert_int_equal(qmp_client_execute(h.q, "query-name", NULL, 0, on_result, &h.results[1]), 0);
        cmd = peer_read_message(&h);
        snprintf(reply, sizeof(reply), "{\"return\": {}, \"id\": %" PRIi64 "}\r\n", json_get_int(cmd, "id", -1));
        json_object_put(cmd);
        peer_write(&h, reply, strlen(reply), CHUNK_WHOLE);
        for (int i = 0; i < 20 && !h.results[1].done; i++)
                assert_true(sd_event_run(h.event, 10000) >= 0);
        assert_int_equal(h.results[1].error, 0);
        assert_int_equal(qmp_client_get_state(h.q), QMP_CLIENT_RUNNING);
        harness_done(&h);
}

static void test_capabilities_refused(void **state) {
        Harness h;
        json_object *caps;
        char reply[256];

        harness_init(&h);
        assert_int_equal(qmp_client_execute(h.q, "query-status", NULL, 0, on_result, &h.results[0]), 0);
        peer_write(&h, greeting, strlen(greeting), CHUNK_WHOLE);
        caps = peer_read_message(&h);
        snprintf(reply, sizeof(reply),
                 "{\"id\": %" PRIi64 ", \"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\r\n",
                 json_get_int(caps, "id", -1));
        json_object_put(caps);
        peer_write(&h, reply, strlen(reply), CHUNK_WHOLE);
        for (int i = 0; i < 20 && h.last_state != QMP_CLIENT_DISCONNECTED; i++)
                assert_true(sd_event_run(h.event, 10000) >= 0);
        assert_int_equal(h.last_state, QMP_CLIENT_DISCONNECTED);
        assert_int_equal(h.disconnect_error, -EPROTO);
        assert_true(h.results[0].done && h.results[0].error == -ECONNRESET);
        harness_done(&h);
}

/* Dropping the last reference fails every open command — sent or still queued — with -ECONNRESET, each exactly
 * once, from inside the unref: a BalloonRequest or a varlink call waiting on it must not be forgotten. */
static void test_unref_fails_pending(void **state) {
        Harness h;
        json_object *cmd;

        harness_init(&h);
        assert_int_equal(qmp_client_execute(h.q, "query-status", NULL, 0, on_result, &h.results[0]), 0);
        negotiate(&h);
        cmd = peer_read_message(&h);
        json_object_put(cmd);
        assert_int_equal(qmp_client_execute(h.q, "query-cpus-fast", NULL, 0, on_result, &h.results[1]), 0);
        assert_int_equal(qmp_client_execute(h.q, "query-balloon", NULL, USEC_INFINITY, on_result, &h.results[2]), 0);
        assert_int_equal(qmp_client_pending(h.q), 3U);

        h.q = qmp_client_unref(h.q);
        for (size_t i = 0; i < 3; i++) {
                assert_int_equal(h.results[i].calls, 1U);
                assert_int_equal(h.results[i].error, -ECONNRESET);
        }
        spin(&h); /* no source of the freed client is left to run */
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(h.results[i].calls, 1U);
        harness_done(&h);
}

/* The same before the greeting: commands that were never sent fail too. */
static void test_unref_before_greeting(void **state) {
        Harness h;

        harness_init(&h);
        assert_int_equal(qmp_client_execute(h.q, "query-status", NULL, 0, on_result, &h.results[0]), 0);
        assert_int_equal(qmp_client_execute(h.q, "balloon", NULL, 0, on_result, &h.results[1]), 0);
        h.q = qmp_client_unref(h.q);
        assert_int_equal(h.results[0].calls, 1U);
        assert_int_equal(h.results[0].error, -ECONNRESET);
        assert_int_equal(h.results[1].calls, 1U);
        assert_int_equal(h.results[1].error, -ECONNRESET);
        harness_done(&h);
}

/* A callback run from inside the last unref sees a disconnected client it may still use: no new command, a
 * reference taken and dropped again, the pending count. */
typedef struct Reentry {
        unsigned calls;
        int error;
        int execute_result;
        QmpClientState state;
        unsigned pending;
} Reentry;

static void on_reenter(QmpClient *q, int error, json_object *result, const char *cls, const char *desc,
                       void *userdata) {
        Reentry *r = userdata;

        r->calls++;
        r->error = error;
        r->state = qmp_client_get_state(q);
        r->execute_result = qmp_client_execute(q, "query-status", NULL, 0, on_reenter, r);
        qmp_client_unref(qmp_client_ref(q));
        r->pending = qmp_client_pending(q);
}

static void test_unref_callback_reenters(void **state) {
        Reentry a = {}, b = {};
        Harness h;

        harness_init(&h);
        negotiate(&h);
        assert_int_equal(qmp_client_execute(h.q, "query-status", NULL, 0, on_reenter, &a), 0);
        assert_int_equal(qmp_client_execute(h.q, "query-name", NULL, 0, on_reenter, &b), 0);
        h.q = qmp_client_unref(h.q);
        assert_int_equal(a.calls, 1U);
        assert_int_equal(a.error, -ECONNRESET);
        assert_int_equal(a.state, QMP_CLIENT_DISCONNECTED);
        assert_int_equal(a.execute_result, -ENOTCONN);
        assert_int_equal(a.pending, 1U); /* b is still to be told */
        assert_int_equal(b.calls, 1U);
        assert_int_equal(b.error, -ECONNRESET);
        assert_int_equal(b.pending, 0U);
        harness_done(&h);
}

/* qmp_client_disconnect() fails every open command once; the final unref calls nobody again. */
static void test_disconnect_then_unref(void **state) {
        Harness h;

        harness_init(&h);
        negotiate(&h);
        assert_int_equal(qmp_client_execute(h.q, "query-status", NULL, 0, on_result, &h.results[0]), 0);
        assert_int_equal(qmp_client_execute(h.q, "query-name", NULL, 0, on_result, &h.results[1]), 0);
        qmp_client_disconnect(h.q, 0);
        assert_int_equal(h.last_state, QMP_CLIENT_DISCONNECTED);
        assert_int_equal(h.results[0].calls, 1U);
        assert_int_equal(h.results[0].error, -ECONNRESET);
        assert_int_equal(h.results[1].calls, 1U);
        assert_int_equal(h.results[1].error, -ECONNRESET);
        qmp_client_disconnect(h.q, 0);
        h.q = qmp_client_unref(h.q);
        assert_int_equal(h.results[0].calls, 1U);
        assert_int_equal(h.results[1].calls, 1U);
        harness_done(&h);
}

/* The owner drops its reference from a command callback while other commands are open (a guest freed on a
 * reply): the client ends after the dispatch, failing the rest with -ECONNRESET, and nothing touches it after. */
typedef struct Dropper {
        Harness *h;
        unsigned calls;
} Dropper;

static void on_drop_owner(QmpClient *q, int error, json_object *result, const char *cls, const char *desc,
                          void *userdata) {
        Dropper *d = userdata;

        d->calls++;
        assert_int_equal(error, 0);
        /* as an owner going away does: its observer first, then its reference */
        qmp_client_remove_event_observer(d->h->q, on_event, d->h);
        qmp_client_set_state_callback(d->h->q, NULL, NULL);
        d->h->q = qmp_client_unref(d->h->q);
}

static void test_callback_drops_last_reference(void **state) {
        Harness h;
        Dropper d;
        json_object *cmd;
        char reply[256];

        harness_init(&h);
        d = (Dropper) { .h = &h };
        negotiate(&h);
        assert_int_equal(qmp_client_execute(h.q, "query-status", NULL, 0, on_drop_owner, &d), 0);
        assert_int_equal(qmp_client_execute(h.q, "query-name", NULL, 0, on_result, &h.results[0]), 0);
        cmd = peer_read_message(&h);
        /* the reply and an event in one write: the event must not reach anybody once the client is gone */
        snprintf(reply, sizeof(reply),
                 "{\"return\": {}, \"id\": %" PRIi64 "}\r\n"
                 "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"STOP\"}\r\n",
                 json_get_int(cmd, "id", -1));
        json_object_put(cmd);
        peer_write(&h, reply, strlen(reply), CHUNK_WHOLE);
        for (int i = 0; i < 20 && d.calls == 0; i++)
                assert_true(sd_event_run(h.event, 10000) >= 0);
        assert_int_equal(d.calls, 1U);
        assert_null(h.q);
        assert_int_equal(h.results[0].calls, 1U);
        assert_int_equal(h.results[0].error, -ECONNRESET);
        assert_int_equal(h.n_events, 0U);
        spin(&h);
        harness_done(&h);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_transcripts_whole),
                cmocka_unit_test(test_transcripts_bytewise),
                cmocka_unit_test(test_transcripts_batched),
                cmocka_unit_test(test_vanish_mid_command),
                cmocka_unit_test(test_timeout_and_late_reply),
                cmocka_unit_test(test_garbage_disconnects),
                cmocka_unit_test(test_second_greeting_is_a_protocol_error),
                cmocka_unit_test(test_oversize_message_is_dropped),
                cmocka_unit_test(test_capabilities_refused),
                cmocka_unit_test(test_unref_fails_pending),
                cmocka_unit_test(test_unref_before_greeting),
                cmocka_unit_test(test_unref_callback_reenters),
                cmocka_unit_test(test_disconnect_then_unref),
                cmocka_unit_test(test_callback_drops_last_reference),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
