/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest agent client against a fake agent on the other end of a socketpair (or a listening socket), driven
 * from the test's own sd_event loop: the sync with stale data before the 0xFF, foreign ids, guest-info, commands
 * that succeed, fail, time out, get no agent at all, a port that closes and opens, a reply over the size bound and
 * one under a raised bound, a full queue, EOF in the middle of a reply, a callback that drops the client or queues
 * more, reconnecting by path. Last, when qemu-ga is installed, the real agent in unix-listen mode. Timeouts are
 * shortened (qga-client-internal.h) so the test takes seconds, not minutes. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "basic/json-util.h"
#include "basic/strv.h"
#include "qga/qga-client-internal.h"

#define SYNC_USEC (200U * USEC_PER_MSEC)
#define RETRY_USEC (100U * USEC_PER_MSEC)

typedef struct Result {
        unsigned calls;
        int error;
        char *result;
        char *cls, *desc;
} Result;

typedef struct Harness {
        sd_event *event;
        QgaClient *c;
        int peer;                       /* the fake agent's end */
        char in[1 << 16];
        size_t inlen;
        bool last_had_sentinel;
        QgaState states[64];
        unsigned n_states;
} Harness;

static void result_done(Result *r) {
        free(r->result);
        free(r->cls);
        free(r->desc);
        *r = (Result) {};
}

static void on_result(QgaClient *c, int error, json_object *result, const char *cls, const char *desc,
                      void *userdata) {
        Result *r = userdata;

        assert_int_equal(++r->calls, 1);        /* exactly once */
        r->error = error;
        if (error == 0)
                r->result = strdup(json_to_plain(result, NULL));
        else
                assert_null(result);
        if (error == -EIO) {
                assert_non_null(cls);
                assert_non_null(desc);
                r->cls = strdup(cls);
                r->desc = strdup(desc);
        } else {
                assert_null(cls);
                assert_null(desc);
        }
}

static void on_state(QgaClient *c, QgaState state, void *userdata) {
        Harness *h = userdata;

        assert_true(h->n_states < ELEMENTSOF(h->states));
        h->states[h->n_states++] = state;
}

static void harness_attach(Harness *h, QgaClient *c) {
        h->c = c;
        qga_client_set_description(c, "VM=test");
        qga_client_set_state_callback(c, on_state, h);
        qga_client_set_timeouts(c, SYNC_USEC, RETRY_USEC, 4 * RETRY_USEC);
}

static void harness_init(Harness *h) {
        QgaClient *c;
        int sv[2];

        memset(h, 0, sizeof(*h));
        assert_int_equal(sd_event_new(&h->event), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        h->peer = sv[1];
        assert_int_equal(qga_client_new_fd(&c, h->event, sv[0]), 0);
        harness_attach(h, c);
}

static void harness_done(Harness *h) {
        qga_client_unref(h->c);
        if (h->peer >= 0)
                close(h->peer);
        sd_event_unref(h->event);
}

/* Moves what the client wrote into h->in. */
static void pump(Harness *h) {
        struct pollfd p = { .fd = h->peer, .events = POLLIN };

        if (h->peer < 0 || poll(&p, 1, 0) != 1 || !(p.revents & POLLIN))
                return;
        ssize_t k = recv(h->peer, h->in + h->inlen, sizeof(h->in) - h->inlen, MSG_DONTWAIT);
        if (k > 0)
                h->inlen += (size_t) k;
}

static void run_once(Harness *h, uint64_t usec) {
        assert_true(sd_event_run(h->event, usec) >= 0);
        pump(h);
}

#define RUN_UNTIL(h, cond)                                                      \
        do {                                                                    \
                for (unsigned _i = 0; !(cond); _i++) {                          \
                        assert_true(_i < 20000);                                \
                        run_once((h), 1000);                                    \
                }                                                               \
        } while (0)

/* Runs the loop for usec (timers fire, nothing else happens). */
static void run_for(Harness *h, uint64_t usec) {
        uint64_t end, now;

        assert_int_equal(sd_event_now(h->event, CLOCK_MONOTONIC, &now), 0);
        for (end = now + usec; now < end;) {
                run_once(h, 1000);
                assert_true(sd_event_now(h->event, CLOCK_MONOTONIC, &now) >= 0);
        }
}

/* The next request the client wrote (a leading 0xFF is noted and dropped). */
static json_object *agent_read(Harness *h) {
        char *nl;
        json_object *o;

        RUN_UNTIL(h, (nl = memchr(h->in, '\n', h->inlen)));
        size_t l = (size_t) (nl - h->in);
        char *text = strndup(h->in, l);
        h->last_had_sentinel = text[0] == '\xff';
        o = json_tokener_parse(text + h->last_had_sentinel);
        free(text);
        memmove(h->in, nl + 1, h->inlen - l - 1);
        h->inlen -= l + 1;
        assert_non_null(o);
        return o;
}

static bool agent_nothing_sent(Harness *h) {
        pump(h);
        return h->inlen == 0;
}

/* Writes everything, running the client's loop while the socket is full; false when the client hung up. */
static bool agent_write(Harness *h, const char *data, size_t n) {
        while (n > 0) {
                ssize_t k = send(h->peer, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EPIPE || errno == ECONNRESET)
                                return false;
                        assert_int_equal(errno, EAGAIN);
                        run_once(h, 1000);
                        continue;
                }
                data += k;
                n -= (size_t) k;
        }
        return true;
}

static void agent_send(Harness *h, const char *text) {
        assert_true(agent_write(h, text, strlen(text)));
}

static void agent_sendf(Harness *h, const char *format, ...) _printf_(2, 3);
static void agent_sendf(Harness *h, const char *format, ...) {
        char *text;
        va_list ap;

        va_start(ap, format);
        assert_true(vasprintf(&text, format, ap) >= 0);
        va_end(ap);
        agent_send(h, text);
        free(text);
}

static const char *request_name(json_object *req) {
        return json_get_string(req, "execute");
}

static int64_t request_id(json_object *req) {
        json_object *id;

        assert_true(json_object_object_get_ex(req, "id", &id));
        return json_object_get_int64(id);
}

/* Reads the sync request and returns its id. */
static int64_t agent_expect_sync(Harness *h) {
        _cleanup_json_ json_object *req = agent_read(h);
        json_object *args;

        assert_string_equal(request_name(req), "guest-sync-delimited");
        assert_true(h->last_had_sentinel);     /* the agent's parser is reset first */
        assert_true(json_object_object_get_ex(req, "arguments", &args));
        int64_t id = json_get_int(args, "id", -1);
        assert_true(id > 0);
        return id;
}

static const char info_reply[] =
        "{\"return\": {\"version\": \"7.2.22\", \"supported_commands\": ["
        "{\"enabled\": true, \"name\": \"guest-ping\", \"success-response\": true},"
        "{\"enabled\": false, \"name\": \"guest-exec\", \"success-response\": true},"
        "{\"enabled\": true, \"name\": \"guest-info\", \"success-response\": true},"
        "{\"enabled\": true, \"name\": \"guest-file-open\", \"success-response\": true},"
        "{\"enabled\": true, \"name\": \"guest-ping\"},"
        "{\"enabled\": true, \"name\": \"bad name\\n\"},"
        "{\"enabled\": \"yes\", \"name\": \"guest-odd\"},"
        "{\"name\": \"guest-sync-delimited\", \"enabled\": true}]}, \"id\": %" PRIi64 "}\n";

static void agent_answer_info(Harness *h) {
        _cleanup_json_ json_object *req = agent_read(h);

        assert_string_equal(request_name(req), "guest-info");
        agent_sendf(h, info_reply, request_id(req));
}

static void make_ready(Harness *h) {
        agent_sendf(h, "\xff{\"return\": %" PRIi64 "}\n", agent_expect_sync(h));
        agent_answer_info(h);
        RUN_UNTIL(h, qga_client_get_state(h->c) == QGA_STATE_READY);
}

/* ---- tests ---- */

static void test_sync_and_ready(void **state) {
        Harness h;
        int64_t id;

        harness_init(&h);
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_CONNECTING);
        assert_null(qga_client_get_version(h.c));
        assert_null(qga_client_get_commands(h.c));
        id = agent_expect_sync(&h);

        /* Leftovers of an earlier client, garbage, a stale sync reply and a stale command reply: all dropped. */
        agent_send(&h, "{\"return\": {\"old\": 1}}\n}}garbage\x01{");
        run_for(&h, 20 * USEC_PER_MSEC);
        agent_sendf(&h, "\xff{\"return\": %" PRIi64 "}\n{\"return\": 5, \"id\": 1}\n", id + 1);
        run_for(&h, 20 * USEC_PER_MSEC);
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_CONNECTING);
        assert_true(agent_nothing_sent(&h));   /* no guest-info before our sync is answered */

        /* Ours, split in the middle, after more garbage. */
        agent_sendf(&h, "xx\xff{\"retu");
        run_for(&h, 10 * USEC_PER_MSEC);
        agent_sendf(&h, "rn\": %" PRIi64 "}\n", id);
        agent_answer_info(&h);
        RUN_UNTIL(&h, qga_client_get_state(h.c) == QGA_STATE_READY);

        assert_string_equal(qga_client_get_version(h.c), "7.2.22");
        char *const *cmds = qga_client_get_commands(h.c);
        assert_int_equal(strv_length(cmds), 4);
        assert_string_equal(cmds[0], "guest-file-open");
        assert_string_equal(cmds[1], "guest-info");
        assert_string_equal(cmds[2], "guest-ping");
        assert_string_equal(cmds[3], "guest-sync-delimited");
        assert_true(qga_client_supports(h.c, "guest-ping"));
        assert_false(qga_client_supports(h.c, "guest-exec"));
        assert_int_equal(h.n_states, 1);
        assert_int_equal(h.states[0], QGA_STATE_READY);
        assert_null(qga_client_get_reason(h.c));
        assert_int_equal(qga_client_pending(h.c), 0);
        harness_done(&h);
}

static void test_commands(void **state) {
        _cleanup_json_ json_object *req = NULL, *req2 = NULL, *req3 = NULL, *req4 = NULL;
        Result r1 = {}, r2 = {}, r3 = {}, r4 = {};
        Harness h;

        harness_init(&h);
        make_ready(&h);

        /* Ok, after a reply carrying another id (dropped). Two queued: one in flight at a time. */
        assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r1), 0);
        assert_int_equal(qga_client_execute(h.c, "guest-exec", json_object_new_object(), 0, 0, on_result, &r2), 0);
        assert_int_equal(qga_client_pending(h.c), 2);
        req = agent_read(&h);
        assert_string_equal(request_name(req), "guest-ping");
        assert_true(agent_nothing_sent(&h));
        agent_sendf(&h, "{\"return\": {\"x\": 1}, \"id\": %" PRIi64 "}\n", request_id(req) + 7);
        run_for(&h, 10 * USEC_PER_MSEC);
        assert_int_equal(r1.calls, 0);
        agent_sendf(&h, "{\"return\": {}, \"id\": %" PRIi64 "}\n", request_id(req));

        /* An error reply: -EIO with class and description. */
        req2 = agent_read(&h);
        assert_string_equal(request_name(req2), "guest-exec");
        assert_int_equal(r1.calls, 1);
        assert_int_equal(r1.error, 0);
        assert_string_equal(r1.result, "{}");
        agent_sendf(&h, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Command guest-exec has been disabled\"},"
                    " \"id\": %" PRIi64 "}\n", request_id(req2));
        RUN_UNTIL(&h, r2.calls == 1);
        assert_int_equal(r2.error, -EIO);
        assert_string_equal(r2.cls, "CommandNotFound");
        assert_string_equal(r2.desc, "Command guest-exec has been disabled");

        /* An error without id (the agent could not parse what it got) belongs to the open command. */
        assert_int_equal(qga_client_execute(h.c, "guest-x", NULL, 0, 0, on_result, &r3), 0);
        req3 = agent_read(&h);
        agent_send(&h, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error\"}}\n");
        RUN_UNTIL(&h, r3.calls == 1);
        assert_int_equal(r3.error, -EIO);
        assert_string_equal(r3.cls, "GenericError");

        /* Neither return nor error: -EPROTO, and a resync before anything else. */
        assert_int_equal(qga_client_execute(h.c, "guest-y", NULL, 0, 0, on_result, &r4), 0);
        req4 = agent_read(&h);
        agent_sendf(&h, "{\"what\": 1, \"id\": %" PRIi64 "}\n", request_id(req4));
        RUN_UNTIL(&h, r4.calls == 1);
        assert_int_equal(r4.error, -EPROTO);
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_CONNECTING);
        agent_sendf(&h, "\xff{\"return\": %" PRIi64 "}\n", agent_expect_sync(&h));
        RUN_UNTIL(&h, qga_client_get_state(h.c) == QGA_STATE_READY);       /* no second guest-info */
        assert_true(agent_nothing_sent(&h));

        /* A request of 4 MiB or more is refused at once, the callback never runs. */
        _cleanup_free_ char *big = malloc(4 * 1024 * 1024 + 1);
        assert_non_null(big);
        memset(big, 'a', 4 * 1024 * 1024);
        big[4 * 1024 * 1024] = 0;
        json_object *args = json_object_new_object();
        assert_int_equal(json_add_string(args, "buf-b64", big), 0);
        Result r5 = {};
        assert_int_equal(qga_client_execute(h.c, "guest-file-write", args, 0, 0, on_result, &r5), -EMSGSIZE);
        assert_int_equal(qga_client_execute(h.c, "", NULL, 0, 0, on_result, &r5), -EINVAL);
        run_for(&h, 10 * USEC_PER_MSEC);
        assert_int_equal(r5.calls, 0);
        assert_true(agent_nothing_sent(&h));
        assert_int_equal(qga_client_pending(h.c), 0);

        result_done(&r1);
        result_done(&r2);
        result_done(&r3);
        result_done(&r4);
        harness_done(&h);
}

static void test_timeout_then_resync(void **state) {
        _cleanup_json_ json_object *req = NULL, *req2 = NULL;
        Result r1 = {}, r2 = {};
        Harness h;
        int64_t id;

        harness_init(&h);
        make_ready(&h);
        assert_int_equal(qga_client_execute(h.c, "guest-slow", NULL, 50 * USEC_PER_MSEC, 0, on_result, &r1), 0);
        req = agent_read(&h);
        RUN_UNTIL(&h, r1.calls == 1);
        assert_int_equal(r1.error, -ETIMEDOUT);
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_CONNECTING);

        /* Queued while resyncing; sent only after the sync, whose answer follows the late reply. */
        assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r2), 0);
        id = agent_expect_sync(&h);
        assert_true(agent_nothing_sent(&h));
        agent_sendf(&h, "{\"return\": {\"late\": true}, \"id\": %" PRIi64 "}\n\xff{\"return\": %" PRIi64 "}\n",
                    request_id(req), id);
        req2 = agent_read(&h);
        assert_string_equal(request_name(req2), "guest-ping");
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_READY);
        agent_sendf(&h, "{\"return\": {}, \"id\": %" PRIi64 "}\n", request_id(req2));
        RUN_UNTIL(&h, r2.calls == 1);
        assert_int_equal(r2.error, 0);
        assert_int_equal(r1.calls, 1);
        result_done(&r1);
        result_done(&r2);
        harness_done(&h);
}

static void test_no_agent(void **state) {
        Result r1 = {}, r2 = {};
        Harness h;
        int64_t id1, id2;

        harness_init(&h);
        /* Queued while connecting, failed when the sync goes unanswered. */
        assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r1), 0);
        id1 = agent_expect_sync(&h);
        RUN_UNTIL(&h, qga_client_get_state(h.c) == QGA_STATE_ABSENT);
        assert_string_equal(qga_client_get_reason(h.c), "no reply to guest-sync-delimited within 200 ms");
        assert_int_equal(r1.calls, 1);
        assert_int_equal(r1.error, -ENOTCONN);
        /* New commands fail at once. */
        assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r2), -ENOTCONN);
        assert_int_equal(r2.calls, 0);

        /* The retry syncs again with a new id, quietly (still ABSENT, no state change). */
        id2 = agent_expect_sync(&h);
        assert_true(id2 != id1);
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_ABSENT);
        unsigned n = h.n_states;

        /* The agent comes up and answers both: the first answer is stale, the second counts. */
        agent_sendf(&h, "\xff{\"return\": %" PRIi64 "}\n\xff{\"return\": %" PRIi64 "}\n", id1, id2);
        agent_answer_info(&h);
        RUN_UNTIL(&h, qga_client_get_state(h.c) == QGA_STATE_READY);
        assert_int_equal(h.n_states, n + 2);
        assert_int_equal(h.states[n], QGA_STATE_CONNECTING);
        assert_int_equal(h.states[n + 1], QGA_STATE_READY);
        assert_string_equal(qga_client_get_version(h.c), "7.2.22");
        result_done(&r1);
        harness_done(&h);
}

/* Unanswered syncs are repeated after a retry interval that doubles up to its maximum (4 × 100 ms here): the gaps
 * between syncs are sync timeout + 100, + 200, + 400, + 400 ms. */
static void test_retry_backoff(void **state) {
        uint64_t t[5];
        int64_t ids[5];
        Harness h;

        harness_init(&h);
        for (unsigned i = 0; i < ELEMENTSOF(t); i++) {
                ids[i] = agent_expect_sync(&h);
                assert_int_equal(sd_event_now(h.event, CLOCK_MONOTONIC, &t[i]), 0);
                assert_true(i == 0 || ids[i] != ids[i - 1]);
        }
        uint64_t g1 = t[1] - t[0], g2 = t[2] - t[1], g3 = t[3] - t[2], g4 = t[4] - t[3];
        print_message("gaps between syncs: %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " ms\n", g1 / 1000,
                      g2 / 1000, g3 / 1000, g4 / 1000);
        assert_true(g1 >= SYNC_USEC + RETRY_USEC);
        assert_true(g2 >= g1 + RETRY_USEC / 2);
        assert_true(g3 >= g2 + RETRY_USEC);
        assert_true(g4 + RETRY_USEC >= g3 && g4 <= g3 + RETRY_USEC);      /* capped */
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_ABSENT);
        assert_int_equal(h.n_states, 1);        /* CONNECTING → ABSENT once, then quiet */
        harness_done(&h);
}

static void test_port_changed(void **state) {
        _cleanup_json_ json_object *req = NULL;
        Result r1 = {}, r2 = {};
        Harness h;

        harness_init(&h);
        make_ready(&h);
        assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r1), 0);
        req = agent_read(&h);

        qga_client_port_changed(h.c, false);
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_ABSENT);
        assert_string_equal(qga_client_get_reason(h.c), "the guest closed the agent port");
        assert_int_equal(r1.calls, 1);
        assert_int_equal(r1.error, -ENOTCONN);
        assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r2), -ENOTCONN);
        /* Version kept while not ready. */
        assert_string_equal(qga_client_get_version(h.c), "7.2.22");

        /* Nothing is sent while the port is closed, however long (the retry interval is 100 ms). A late reply
         * is dropped. */
        agent_sendf(&h, "{\"return\": {}, \"id\": %" PRIi64 "}\n", request_id(req));
        run_for(&h, 5 * RETRY_USEC);
        assert_true(agent_nothing_sent(&h));
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_ABSENT);

        /* Open: sync at once, guest-info again (the agent may be another one). */
        qga_client_port_changed(h.c, true);
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_CONNECTING);
        make_ready(&h);

        /* Open again without a close: a resync before the next command. */
        qga_client_port_changed(h.c, true);
        agent_sendf(&h, "\xff{\"return\": %" PRIi64 "}\n", agent_expect_sync(&h));
        agent_answer_info(&h);
        RUN_UNTIL(&h, qga_client_get_state(h.c) == QGA_STATE_READY);
        result_done(&r1);
        harness_done(&h);
}

/* Sends {"return": "xxx…"} with a string of size bytes; false if the client hung up meanwhile. */
static bool agent_send_big(Harness *h, int64_t id, size_t size) {
        _cleanup_free_ char *big = malloc(size + 64);
        int n;

        assert_non_null(big);
        n = sprintf(big, "{\"id\": %" PRIi64 ", \"return\": \"", id);
        memset(big + n, 'x', size);
        strcpy(big + n + size, "\"}\n");
        return agent_write(h, big, n + size + 3);
}

static void test_oversize(void **state) {
        _cleanup_json_ json_object *req = NULL, *req2 = NULL;
        Result r1 = {}, r2 = {}, r3 = {};
        Harness h;

        harness_init(&h);
        make_ready(&h);

        /* Raised for one command: a 2 MiB reply is fine. */
        assert_int_equal(qga_client_execute(h.c, "guest-exec-status", NULL, 0, 3 * 1024 * 1024, on_result, &r1), 0);
        req = agent_read(&h);
        assert_true(agent_send_big(&h, request_id(req), 2 * 1024 * 1024));
        RUN_UNTIL(&h, r1.calls == 1);
        assert_int_equal(r1.error, 0);
        assert_int_equal(strlen(r1.result), 2 * 1024 * 1024 + 2);

        /* The same with the default bound: -EMSGSIZE, the connection reset after about 1 MiB (the rest is never
         * read: the agent's writes fail), the queued command -ECONNRESET, ABSENT. */
        assert_int_equal(qga_client_execute(h.c, "guest-exec-status", NULL, 0, 0, on_result, &r2), 0);
        assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r3), 0);
        req2 = agent_read(&h);
        assert_false(agent_send_big(&h, request_id(req2), 64 * 1024 * 1024));
        RUN_UNTIL(&h, r2.calls == 1);
        assert_int_equal(r2.error, -EMSGSIZE);
        assert_int_equal(r3.calls, 1);
        assert_int_equal(r3.error, -ECONNRESET);
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_ABSENT);
        assert_string_equal(qga_client_get_reason(h.c), "agent message larger than 1048576 bytes, connection reset");
        result_done(&r1);
        result_done(&r2);
        result_done(&r3);
        harness_done(&h);
}

static void test_garbage_and_eof(void **state) {
        _cleanup_json_ json_object *req = NULL, *req2 = NULL;
        Result r1 = {}, r2 = {}, r3 = {};
        Harness h;

        /* Garbage once in sync: the connection is reset. */
        harness_init(&h);
        make_ready(&h);
        assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r1), 0);
        req = agent_read(&h);
        agent_send(&h, "{\"return\": nope}\n");
        RUN_UNTIL(&h, r1.calls == 1);
        assert_int_equal(r1.error, -ECONNRESET);
        assert_string_equal(qga_client_get_reason(h.c), "agent sent invalid JSON, connection reset");
        harness_done(&h);

        /* EOF in the middle of a reply. */
        harness_init(&h);
        make_ready(&h);
        assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r2), 0);
        assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r3), 0);
        req2 = agent_read(&h);
        agent_send(&h, "{\"return\": {\"half\": ");
        run_for(&h, 10 * USEC_PER_MSEC);
        h.peer = safe_close(h.peer);
        RUN_UNTIL(&h, r2.calls == 1);
        assert_int_equal(r2.error, -ECONNRESET);
        assert_int_equal(r3.error, -ECONNRESET);
        assert_int_equal(qga_client_get_state(h.c), QGA_STATE_ABSENT);
        assert_string_equal(qga_client_get_reason(h.c), "the agent socket was closed (EOF)");
        assert_int_equal(qga_client_pending(h.c), 0);
        result_done(&r1);
        result_done(&r2);
        result_done(&r3);
        harness_done(&h);
}

static void test_queue_full(void **state) {
        Result r[QGA_MAX_QUEUED + 1] = {};
        Harness h;

        harness_init(&h);
        for (unsigned i = 0; i < QGA_MAX_QUEUED; i++)
                assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r[i]), 0);
        assert_int_equal(qga_client_execute(h.c, "guest-ping", NULL, 0, 0, on_result, &r[QGA_MAX_QUEUED]), -EBUSY);
        assert_int_equal(qga_client_pending(h.c), QGA_MAX_QUEUED);
        make_ready(&h);

        /* The first is answered; dropping the client cancels the rest, each callback once. */
        _cleanup_json_ json_object *req = agent_read(&h);
        agent_sendf(&h, "{\"return\": {}, \"id\": %" PRIi64 "}\n", request_id(req));
        RUN_UNTIL(&h, r[0].calls == 1);
        h.c = qga_client_unref(h.c);
        assert_int_equal(r[0].error, 0);
        for (unsigned i = 1; i < QGA_MAX_QUEUED; i++) {
                assert_int_equal(r[i].calls, 1);
                assert_int_equal(r[i].error, -ECANCELED);
        }
        assert_int_equal(r[QGA_MAX_QUEUED].calls, 0);
        for (unsigned i = 0; i < ELEMENTSOF(r); i++)
                result_done(&r[i]);
        harness_done(&h);
}

typedef struct Reenter {
        Harness *h;
        Result *next;                   /* queued from the callback */
        bool drop;                      /* drops the owner's reference */
        unsigned calls;
        int error;
} Reenter;

static void on_reenter(QgaClient *c, int error, json_object *result, const char *cls, const char *desc,
                       void *userdata) {
        Reenter *re = userdata;

        assert_int_equal(++re->calls, 1);
        re->error = error;
        if (re->next)
                assert_int_equal(qga_client_execute(c, "guest-next", NULL, 0, 0, on_result, re->next),
                                 error == -ECANCELED ? -ENOTCONN : 0);
        if (re->drop)
                re->h->c = qga_client_unref(re->h->c);
}

static void test_reentrancy(void **state) {
        _cleanup_json_ json_object *req = NULL, *req2 = NULL, *req3 = NULL;
        Result r2 = {}, r3 = {}, r4 = {};
        Harness h;

        harness_init(&h);
        make_ready(&h);

        /* A callback queues the next command: it goes out after this reply, ahead of nothing else. */
        Reenter re1 = { .h = &h, .next = &r2 };
        assert_int_equal(qga_client_execute(h.c, "guest-first", NULL, 0, 0, on_reenter, &re1), 0);
        req = agent_read(&h);
        agent_sendf(&h, "{\"return\": 1, \"id\": %" PRIi64 "}\n", request_id(req));
        req2 = agent_read(&h);
        assert_string_equal(request_name(req2), "guest-next");
        agent_sendf(&h, "{\"return\": 2, \"id\": %" PRIi64 "}\n", request_id(req2));
        RUN_UNTIL(&h, r2.calls == 1);

        /* A callback drops the last reference: the queued command is cancelled once, nothing runs after. */
        Reenter re2 = { .h = &h, .drop = true };
        assert_int_equal(qga_client_execute(h.c, "guest-drop", NULL, 0, 0, on_reenter, &re2), 0);
        assert_int_equal(qga_client_execute(h.c, "guest-after", NULL, 0, 0, on_result, &r3), 0);
        req3 = agent_read(&h);
        agent_sendf(&h, "{\"return\": 3, \"id\": %" PRIi64 "}\n", request_id(req3));
        RUN_UNTIL(&h, re2.calls == 1);
        assert_null(h.c);
        assert_int_equal(re2.error, 0);
        assert_int_equal(r3.calls, 1);
        assert_int_equal(r3.error, -ECANCELED);
        run_for(&h, 3 * RETRY_USEC);

        /* Cancelled callbacks that try to queue more get -ENOTCONN; each once. */
        QgaClient *c;
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(qga_client_new_fd(&c, h.event, sv[0]), 0);
        Reenter re3 = { .h = &h, .next = &r4 };
        assert_int_equal(qga_client_execute(c, "guest-ping", NULL, 0, 0, on_reenter, &re3), 0);
        qga_client_unref(c);
        assert_int_equal(re3.calls, 1);
        assert_int_equal(re3.error, -ECANCELED);
        assert_int_equal(r4.calls, 0);
        close(sv[1]);

        result_done(&r2);
        result_done(&r3);
        harness_done(&h);
}

/* ---- by path: no QEMU yet, then a listener, then it goes away and comes back ---- */

static int listen_at(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        strcpy(sa.sun_path, path);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 4), 0);
        return fd;
}

static int accept_now(Harness *h, int lfd) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };

        RUN_UNTIL(h, poll(&p, 1, 0) == 1);
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        assert_true(fd >= 0);
        return fd;
}

static void test_connect_by_path(void **state) {
        char dir[] = "/tmp/test-qga-client-XXXXXX", path[128];
        QgaClient *c;
        Harness h = {};
        int lfd;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/agent.sock", dir);
        assert_int_equal(sd_event_new(&h.event), 0);
        h.peer = -EBADF;
        assert_int_equal(qga_client_new(&c, h.event, path), 0);
        harness_attach(&h, c);
        assert_int_equal(qga_client_get_state(c), QGA_STATE_ABSENT);
        assert_non_null(strstr(qga_client_get_reason(c), "No such file or directory"));
        assert_int_equal(qga_client_execute(c, "guest-ping", NULL, 0, 0, on_result, &(Result) {}), -ENOTCONN);

        /* QEMU appears: the retry connects and syncs. */
        lfd = listen_at(path);
        h.peer = accept_now(&h, lfd);
        make_ready(&h);

        /* It goes away (EOF): ABSENT, then it comes back and the client reconnects by itself. */
        h.peer = safe_close(h.peer);
        RUN_UNTIL(&h, qga_client_get_state(c) == QGA_STATE_ABSENT);
        assert_string_equal(qga_client_get_version(c), "7.2.22");      /* kept until a new connection */
        h.peer = accept_now(&h, lfd);
        h.inlen = 0;
        make_ready(&h);
        assert_string_equal(qga_client_get_version(c), "7.2.22");

        close(lfd);
        harness_done(&h);
        unlink(path);
        rmdir(dir);
}

/* ---- the real qemu-ga, on the host in unix-listen mode, with every command blocked but three ---- */

static char *find_qemu_ga(void) {
        static const char *const dirs[] = { "/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin" };
        char *p;

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                assert_true(asprintf(&p, "%s/qemu-ga", dirs[i]) >= 0);
                if (access(p, X_OK) == 0)
                        return p;
                free(p);
        }
        return NULL;
}

/* Every RPC the agent knows except guest-sync-delimited, guest-info and guest-ping: it runs as us, on the host. */
static char *blocklist(const char *qemu_ga) {
        char *cmd, line[256], *list = NULL;
        size_t n = 0;
        FILE *f;

        assert_true(asprintf(&cmd, "%s -b help 2>&1", qemu_ga) >= 0);
        f = popen(cmd, "r");
        free(cmd);
        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = 0;
                if (!startswith(line, "guest-") || streq(line, "guest-sync-delimited") || streq(line, "guest-info") ||
                    streq(line, "guest-ping"))
                        continue;
                list = realloc(list, n + strlen(line) + 2);
                assert_non_null(list);
                n += sprintf(list + n, "%s%s", n > 0 ? "," : "", line);
        }
        pclose(f);
        return list;
}

static pid_t agent_pid = 0;

/* Runs also when an assertion ended the test early: no agent is left behind. */
static int stop_real_agent(void **state) {
        if (agent_pid > 0) {
                (void) kill(agent_pid, SIGTERM);
                (void) waitpid(agent_pid, NULL, 0);
                agent_pid = 0;
        }
        return 0;
}

static void test_real_qemu_ga(void **state) {
        _cleanup_free_ char *qemu_ga = find_qemu_ga(), *blocked = NULL;
        char dir[] = "/tmp/test-qga-real-XXXXXX", sock[128], pidfile[128];
        Result r1 = {}, r2 = {};
        Harness h = {};
        QgaClient *c;
        pid_t pid;

        if (!qemu_ga) {
                print_message("qemu-ga is not installed (Debian: qemu-guest-agent): skipping the real-agent test.\n");
                skip();
        }
        blocked = blocklist(qemu_ga);
        assert_non_null(blocked);
        assert_non_null(mkdtemp(dir));
        snprintf(sock, sizeof(sock), "%s/qga.sock", dir);
        snprintf(pidfile, sizeof(pidfile), "%s/qga.pid", dir);

        agent_pid = pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null >= 0) {
                        (void) dup2(null, STDOUT_FILENO);
                        (void) dup2(null, STDERR_FILENO);
                }
                execl(qemu_ga, qemu_ga, "-m", "unix-listen", "-p", sock, "-t", dir, "-f", pidfile, "-b", blocked,
                      (char *) NULL);
                _exit(127);
        }

        assert_int_equal(sd_event_new(&h.event), 0);
        h.peer = -EBADF;
        /* The socket appears once the agent is up; until then the client retries. */
        assert_int_equal(qga_client_new(&c, h.event, sock), 0);
        harness_attach(&h, c);
        qga_client_set_timeouts(c, 3 * USEC_PER_SEC, RETRY_USEC, RETRY_USEC);
        RUN_UNTIL(&h, qga_client_get_state(c) == QGA_STATE_READY || waitpid(pid, NULL, WNOHANG) == pid);
        assert_int_equal(qga_client_get_state(c), QGA_STATE_READY);
        print_message("qemu-ga %s, %zu commands enabled\n", qga_client_get_version(c),
                      strv_length(qga_client_get_commands(c)));
        assert_non_null(qga_client_get_version(c));
        assert_true(qga_client_supports(c, "guest-ping"));
        assert_true(qga_client_supports(c, "guest-info"));
        assert_false(qga_client_supports(c, "guest-exec"));

        assert_int_equal(qga_client_execute(c, "guest-ping", NULL, 0, 0, on_result, &r1), 0);
        assert_int_equal(qga_client_execute(c, "guest-exec", NULL, 0, 0, on_result, &r2), 0);
        RUN_UNTIL(&h, r2.calls == 1);
        assert_int_equal(r1.error, 0);
        assert_string_equal(r1.result, "{}");
        assert_int_equal(r2.error, -EIO);
        assert_string_equal(r2.cls, "CommandNotFound");

        /* A timeout (1 µs: over before the agent can answer): the client resyncs, the agent's late answer comes
         * before its 0xFF and is dropped, and the next command gets its own reply. */
        Result r3 = {}, r4 = {};
        unsigned n = h.n_states;
        assert_int_equal(qga_client_execute(c, "guest-ping", NULL, 1, 0, on_result, &r3), 0);
        RUN_UNTIL(&h, r3.calls == 1);
        assert_int_equal(r3.error, -ETIMEDOUT);
        RUN_UNTIL(&h, qga_client_get_state(c) == QGA_STATE_READY);
        assert_int_equal(h.n_states, n + 2);
        assert_int_equal(h.states[n], QGA_STATE_CONNECTING);
        assert_int_equal(h.states[n + 1], QGA_STATE_READY);
        assert_int_equal(qga_client_execute(c, "guest-info", NULL, 0, 0, on_result, &r4), 0);
        RUN_UNTIL(&h, r4.calls == 1);
        assert_int_equal(r4.error, 0);
        assert_non_null(strstr(r4.result, "\"supported_commands\""));
        result_done(&r3);
        result_done(&r4);

        stop_real_agent(NULL);
        RUN_UNTIL(&h, qga_client_get_state(c) == QGA_STATE_ABSENT);
        result_done(&r1);
        result_done(&r2);
        harness_done(&h);
        unlink(sock);
        unlink(pidfile);
        char *rm;
        assert_true(asprintf(&rm, "rm -rf '%s'", dir) >= 0);
        (void) !system(rm);
        free(rm);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sync_and_ready),
                cmocka_unit_test(test_commands),
                cmocka_unit_test(test_timeout_then_resync),
                cmocka_unit_test(test_no_agent),
                cmocka_unit_test(test_retry_backoff),
                cmocka_unit_test(test_port_changed),
                cmocka_unit_test(test_oversize),
                cmocka_unit_test(test_garbage_and_eof),
                cmocka_unit_test(test_queue_full),
                cmocka_unit_test(test_reentrancy),
                cmocka_unit_test(test_connect_by_path),
                cmocka_unit_test_teardown(test_real_qemu_ga, stop_real_agent),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
