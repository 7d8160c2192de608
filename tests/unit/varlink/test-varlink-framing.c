/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The varlink server's wire behaviour: NUL framing, partial reads, ordering, "more"/"oneway", protocol
 * violations, error replies and the limits, driven through one end of a socketpair while the test runs
 * the server's sd_event loop itself. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "basic/buffer.h"
#include "basic/json-util.h"
#include "varlink/varlink.h"

#define TEST_INTERFACE "org.example.test"
#define M(name) TEST_INTERFACE "." name

/* How long a test waits for something that must happen; nothing here takes more than milliseconds. */
#define WAIT_USEC (10U * USEC_PER_SEC)
/* Upper bound on event loop iterations while draining, so a spinning server fails the test. */
#define DRAIN_MAX 200000U

#define FLOOD_CHUNK 8192U
#define FLOOD_MAX 20000U

static const char test_description[] =
        "interface org.example.test\n"
        "\n"
        "method Echo(text: ?string, value: ?object) -> (text: ?string, value: ?object)\n"
        "method Typed(name: string, count: int, ratio: ?float, enabled: ?bool, tags: ?[]string, extra: ?object)"
        " -> ()\n"
        "method Stream(count: ?int) -> (index: int)\n"
        "method Later() -> (later: bool)\n"
        "method Flood() -> (data: string)\n"
        "method Privileged() -> (uid: int)\n"
        "method Fail() -> ()\n"
        "method Probe() -> ()\n"
        "method Unchecked(x: int) -> (x: int)\n";

typedef struct Test {
        sd_event *event;
        VarlinkServer *server;
        int fd;                         /* the client's end of the socketpair */
        ByteBuffer input;               /* bytes received from the server, not yet parsed */
        bool eof;                       /* the server closed the connection */

        unsigned echo_calls;

        /* Later: replies from a timer */
        VarlinkConnection *later;
        sd_event_source *later_source;
        int later_result;
        unsigned close_calls;

        /* Flood: notifies from a defer source until the server gives up */
        VarlinkConnection *flood;
        sd_event_source *flood_source;
        unsigned flood_notifies;
        int flood_result;

        /* Probe: misuses the reply API */
        int probe_notify_result;
        int probe_second_reply_result;
} Test;

/* ---- the test interface ----------------------------------------------------------------------- */

static int method_echo(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Test *t = userdata;

        t->echo_calls++;
        return varlink_reply(c, json_object_get(parameters));
}

static int method_typed(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        _cleanup_json_ json_object *reply = json_object_new_object();

        if (!reply || json_add_bool(reply, "ok", true) < 0)
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(reply));
}

static json_object *make_index(int64_t i, bool done) {
        json_object *o = json_object_new_object();

        assert_non_null(o);
        assert_int_equal(json_add_int(o, "index", i), 0);
        if (done)
                assert_int_equal(json_add_bool(o, "done", true), 0);
        return o;
}

static int method_stream(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        int64_t n = json_get_int(parameters, "count", 2);
        int r;

        for (int64_t i = 0; i < n; i++) {
                r = varlink_notify(c, make_index(i, false));
                if (r < 0)
                        return r;
        }
        return varlink_reply(c, make_index(n, true));
}

static int later_fire(sd_event_source *s, uint64_t usec, void *userdata) {
        Test *t = userdata;
        _cleanup_json_ json_object *reply = json_object_new_object();

        assert_non_null(reply);
        assert_int_equal(json_add_bool(reply, "later", true), 0);
        t->later_result = varlink_reply(t->later, TAKE_PTR(reply));
        t->later = varlink_connection_unref(t->later);
        return 0;
}

/* The pending Later call replies at the next event loop iteration. */
static void later_release(Test *t) {
        assert_non_null(t->later_source);
        assert_int_equal(sd_event_source_set_time_relative(t->later_source, 0), 0);
}

static void later_closed(VarlinkConnection *c, void *userdata) {
        Test *t = userdata;

        t->close_calls++;
}

static int method_later(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Test *t = userdata;
        int r;

        assert_null(t->later);
        /* Pending until the test lets it go (later_release()): a timer of a few milliseconds could fire while
         * a loaded machine runs the test's own event loop iterations, before the test looked. */
        r = sd_event_add_time_relative(t->event, &t->later_source, CLOCK_MONOTONIC, 3600U * USEC_PER_SEC, 0,
                                       later_fire, t);
        if (r < 0)
                return r;
        t->later = varlink_connection_ref(c);
        varlink_connection_set_close_callback(c, later_closed, t);
        return 0;
}

static int flood_step(sd_event_source *s, void *userdata) {
        Test *t = userdata;
        _cleanup_json_ json_object *p = json_object_new_object();
        char data[FLOOD_CHUNK];
        int r;

        memset(data, 'x', sizeof(data) - 1);
        data[sizeof(data) - 1] = 0;
        assert_non_null(p);
        assert_int_equal(json_add_string(p, "data", data), 0);

        r = varlink_notify(t->flood, TAKE_PTR(p));
        t->flood_notifies++;
        if (r < 0 || t->flood_notifies >= FLOOD_MAX) {
                t->flood_result = r;
                t->flood = varlink_connection_unref(t->flood);
                assert_return_code(sd_event_source_set_enabled(s, SD_EVENT_OFF), 0);
        }
        return 0;
}

static int method_flood(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Test *t = userdata;
        int r;

        r = sd_event_add_defer(t->event, &t->flood_source, flood_step, t);
        if (r < 0)
                return r;
        /* Defer sources start out as oneshot: fire on every iteration instead. */
        r = sd_event_source_set_enabled(t->flood_source, SD_EVENT_ON);
        if (r < 0)
                return r;
        t->flood = varlink_connection_ref(c);
        return 0;
}

static int method_privileged(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        _cleanup_json_ json_object *reply = json_object_new_object();

        if (!reply || json_add_int(reply, "uid", varlink_connection_get_peer_uid(c)) < 0)
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(reply));
}

static int method_fail(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        return -EIO;
}

static int method_probe(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Test *t = userdata;
        int r;

        /* Not a "more" call: notifying must be refused. */
        t->probe_notify_result = varlink_notify(c, json_object_new_object());
        r = varlink_reply(c, NULL);
        if (r < 0)
                return r;
        /* The call is over: a second reply must be refused. */
        t->probe_second_reply_result = varlink_reply(c, NULL);
        return 0;
}

static const VarlinkInterface test_interface = {
        .name = TEST_INTERFACE,
        .description = test_description,
        .methods = (const VarlinkMethod[]) {
                { "Echo", method_echo,
                  (const VarlinkField[]) {
                          { "text", VARLINK_STRING, VARLINK_NULLABLE },
                          { "value", VARLINK_ANY, VARLINK_NULLABLE },
                          { NULL },
                  }, 0 },
                { "Typed", method_typed,
                  (const VarlinkField[]) {
                          { "name", VARLINK_STRING, 0 },
                          { "count", VARLINK_INT, 0 },
                          { "ratio", VARLINK_FLOAT, VARLINK_NULLABLE },
                          { "enabled", VARLINK_BOOL, VARLINK_NULLABLE },
                          { "tags", VARLINK_ARRAY, VARLINK_NULLABLE },
                          { "extra", VARLINK_OBJECT, VARLINK_NULLABLE },
                          { NULL },
                  }, 0 },
                { "Stream", method_stream,
                  (const VarlinkField[]) { { "count", VARLINK_INT, VARLINK_NULLABLE }, { NULL } },
                  VARLINK_METHOD_REQUIRES_MORE },
                { "Later", method_later, NULL, 0 },
                { "Flood", method_flood, NULL, VARLINK_METHOD_REQUIRES_MORE },
                { "Privileged", method_privileged, NULL, VARLINK_METHOD_PRIVILEGED },
                { "Fail", method_fail, NULL, 0 },
                { "Probe", method_probe, NULL, 0 },
                { "Unchecked", method_echo, (const VarlinkField[]) { { "x", VARLINK_INT, 0 }, { NULL } },
                  VARLINK_METHOD_UNCHECKED },
                { NULL },
        },
};

/* ---- plumbing --------------------------------------------------------------------------------- */

static uint64_t now_usec(void) {
        struct timespec ts;

        assert_return_code(clock_gettime(CLOCK_MONOTONIC, &ts), errno);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* A new connection to the server; the previous client end, if any, is closed. */
static void reconnect(Test *t) {
        int pair[2];

        assert_return_code(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), errno);
        assert_int_equal(varlink_server_add_connection(t->server, pair[0]), 0);
        t->fd = safe_close(t->fd);
        t->fd = pair[1];
        byte_buffer_done(&t->input);
        t->eof = false;
}

static int setup(void **state) {
        Test *t = calloc(1, sizeof(Test));

        assert_non_null(t);
        t->fd = -EBADF;
        assert_int_equal(sd_event_new(&t->event), 0);
        assert_int_equal(varlink_server_new(&t->server, t->event, "Example", "test-varlink-framing", "1.0",
                                            "https://example.org"), 0);
        assert_int_equal(varlink_server_add_interface(t->server, &test_interface), 0);
        varlink_server_set_userdata(t->server, t);
        reconnect(t);
        assert_int_equal(varlink_server_connection_count(t->server), 1);

        *state = t;
        return 0;
}

static int teardown(void **state) {
        Test *t = *state;

        t->later_source = sd_event_source_disable_unref(t->later_source);
        t->flood_source = sd_event_source_disable_unref(t->flood_source);
        t->server = varlink_server_free(t->server);
        /* Held references outlive the server; they must still be safe to drop. */
        t->later = varlink_connection_unref(t->later);
        t->flood = varlink_connection_unref(t->flood);
        t->event = sd_event_unref(t->event);
        t->fd = safe_close(t->fd);
        byte_buffer_done(&t->input);
        free(t);
        return 0;
}

/* Runs the loop until nothing is ready any more, without waiting. */
static void drain(Test *t) {
        for (unsigned i = 0; i < DRAIN_MAX; i++) {
                int r = sd_event_run(t->event, 0);

                assert_return_code(r, -r);
                if (r == 0)
                        return;
        }
        fail_msg("event loop did not become idle after %u iterations", DRAIN_MAX);
}

/* Collects whatever the server has sent, without blocking. */
static void receive(Test *t) {
        while (!t->eof) {
                char *p = byte_buffer_reserve(&t->input, 64 * 1024, SIZE_MAX);
                ssize_t n;

                assert_non_null(p);
                n = recv(t->fd, p, 64 * 1024, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN)
                                return;
                        /* The server closed while our data was unread: same as EOF, after the data. */
                        if (errno == ECONNRESET) {
                                t->eof = true;
                                return;
                        }
                        fail_msg("recv() failed: %s", strerror(errno));
                }
                if (n == 0) {
                        t->eof = true;
                        return;
                }
                byte_buffer_commit(&t->input, (size_t) n);
        }
}

static void pump(Test *t, uint64_t timeout) {
        int r = sd_event_run(t->event, timeout);

        assert_return_code(r, -r);
        drain(t);
        receive(t);
}

/* Checks the shape of a reply: an object with "parameters" (an object), optionally "error" (a string)
 * and "continues" (true), nothing else. */
static void assert_reply_shape(json_object *m) {
        json_object *v;

        assert_true(json_object_is_type(m, json_type_object));
        assert_true(json_object_object_get_ex(m, "parameters", &v));
        assert_true(json_object_is_type(v, json_type_object));
        json_object_object_foreach(m, key, value) {
                if (streq(key, "error"))
                        assert_true(json_object_is_type(value, json_type_string));
                else if (streq(key, "continues"))
                        assert_true(json_object_is_type(value, json_type_boolean) && json_object_get_boolean(value));
                else if (!streq(key, "parameters"))
                        fail_msg("unexpected key '%s' in reply", key);
        }
}

/* Takes one complete message off the input; NULL when there is none. */
static json_object *pop_message(Test *t) {
        size_t size = byte_buffer_size(&t->input);
        const char *head, *nul;
        json_object *m;

        if (size == 0)
                return NULL;
        head = byte_buffer_head(&t->input);
        nul = memchr(head, 0, size);
        if (!nul)
                return NULL;

        m = json_tokener_parse(head);
        if (!m)
                fail_msg("server sent invalid JSON: %s", head);
        assert_reply_shape(m);
        byte_buffer_consume(&t->input, (size_t) (nul - head) + 1);
        return m;
}

static json_object *next_message(Test *t) {
        uint64_t deadline = now_usec() + WAIT_USEC;

        for (;;) {
                json_object *m = pop_message(t);

                if (m)
                        return m;
                if (t->eof)
                        fail_msg("connection closed while waiting for a reply");
                if (now_usec() > deadline)
                        fail_msg("no reply within %u s", (unsigned) (WAIT_USEC / USEC_PER_SEC));
                pump(t, 10 * USEC_PER_MSEC);
        }
}

/* Nothing arrives and the connection stays open. */
static void assert_no_message(Test *t) {
        drain(t);
        receive(t);
        assert_int_equal(byte_buffer_size(&t->input), 0);
        assert_false(t->eof);
}

/* The server closes the connection without sending anything (more). */
static void assert_closed_without_reply(Test *t) {
        uint64_t deadline = now_usec() + WAIT_USEC;

        while (!t->eof) {
                if (now_usec() > deadline)
                        fail_msg("connection not closed within %u s", (unsigned) (WAIT_USEC / USEC_PER_SEC));
                pump(t, 10 * USEC_PER_MSEC);
        }
        if (byte_buffer_size(&t->input) > 0)
                fail_msg("unexpected reply before close: %.*s", (int) byte_buffer_size(&t->input),
                         byte_buffer_head(&t->input));
        assert_int_equal(varlink_server_connection_count(t->server), 0);
}

static void send_raw(Test *t, const void *data, size_t size) {
        ssize_t n = send(t->fd, data, size, MSG_NOSIGNAL);

        assert_return_code(n, errno);
        assert_int_equal((size_t) n, size);
}

/* Sends s including its terminating NUL. */
static void send_message(Test *t, const char *s) {
        send_raw(t, s, strlen(s) + 1);
}

static json_object *call(Test *t, const char *s) {
        send_message(t, s);
        return next_message(t);
}

static json_object *params_of(json_object *m) {
        json_object *p = NULL;

        assert_true(json_object_object_get_ex(m, "parameters", &p));
        return p;
}

static void assert_final(json_object *m) {
        assert_false(json_object_object_get_ex(m, "error", NULL));
        assert_false(json_object_object_get_ex(m, "continues", NULL));
}

static void assert_continues(json_object *m) {
        assert_false(json_object_object_get_ex(m, "error", NULL));
        assert_true(json_object_object_get_ex(m, "continues", NULL));
}

static void assert_echo_text(json_object *m, const char *text) {
        assert_final(m);
        assert_string_equal(strempty(json_get_string(params_of(m), "text")), text);
}

/* An error reply with the given name; when key is set, its parameters hold exactly key=value. */
static void assert_error(json_object *m, const char *error, const char *key, const char *value) {
        json_object *p = params_of(m);

        assert_false(json_object_object_get_ex(m, "continues", NULL));
        assert_string_equal(strempty(json_get_string(m, "error")), error);
        if (key) {
                assert_int_equal(json_object_object_length(p), 1);
                assert_string_equal(strempty(json_get_string(p, key)), value);
        }
}

static void set_limits(Test *t, size_t max_message, size_t max_output, unsigned max_conn, unsigned max_conn_uid,
                       unsigned depth) {
        VarlinkServerLimits l = {
                .max_message_size = max_message,
                .max_output_size = max_output,
                .max_connections = max_conn,
                .max_connections_per_uid = max_conn_uid,
                .max_json_depth = depth,
        };

        assert_int_equal(varlink_server_set_limits(t->server, &l), 0);
}

/* ---- framing ---------------------------------------------------------------------------------- */

static void test_several_in_one_write(void **state) {
        Test *t = *state;
        static const char three[] =
                "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"a\"}}\0"
                "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"b\"}}\0"
                "  {\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"c\"}}\n\0";
        _cleanup_json_ json_object *a = NULL, *b = NULL, *c = NULL;

        send_raw(t, three, sizeof(three) - 1); /* the literal's own NUL is not part of the stream */
        a = next_message(t);
        b = next_message(t);
        c = next_message(t);
        assert_echo_text(a, "a");
        assert_echo_text(b, "b");
        assert_echo_text(c, "c");
        assert_no_message(t);
        assert_int_equal(t->echo_calls, 3);
        assert_int_equal(varlink_server_calls_total(t->server), 3);
}

static void test_split_at_every_byte(void **state) {
        Test *t = *state;
        static const char msg[] = "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"split\"}}";
        const size_t size = sizeof(msg); /* with the NUL */
        unsigned expected_calls = 0;

        /* Two writes, split after every possible byte. */
        for (size_t k = 1; k < size; k++) {
                _cleanup_json_ json_object *m = NULL;

                send_raw(t, msg, k);
                assert_no_message(t);
                assert_int_equal(t->echo_calls, expected_calls);

                send_raw(t, msg + k, size - k);
                m = next_message(t);
                assert_echo_text(m, "split");
                assert_no_message(t);
                assert_int_equal(t->echo_calls, ++expected_calls);
        }

        /* One byte per write, running the loop in between. */
        for (size_t i = 0; i < size; i++) {
                send_raw(t, msg + i, 1);
                drain(t);
                receive(t);
                if (i + 1 < size) {
                        assert_int_equal(byte_buffer_size(&t->input), 0);
                        assert_int_equal(t->echo_calls, expected_calls);
                }
        }
        {
                _cleanup_json_ json_object *m = next_message(t);
                assert_echo_text(m, "split");
        }
        assert_no_message(t);
        assert_int_equal(t->echo_calls, expected_calls + 1);
        assert_int_equal(varlink_server_protocol_errors(t->server), 0);
}

static void test_missing_nul_at_eof(void **state) {
        Test *t = *state;
        static const char complete_json[] = "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"x\"}}";

        /* A complete JSON object, but never terminated. */
        send_raw(t, complete_json, strlen(complete_json));
        assert_no_message(t);
        assert_return_code(shutdown(t->fd, SHUT_WR), errno);
        assert_closed_without_reply(t);
        assert_int_equal(t->echo_calls, 0);
        assert_int_equal(varlink_server_protocol_errors(t->server), 1);

        /* A terminated call followed by half a message: the call is answered, then the connection closes. */
        reconnect(t);
        send_message(t, complete_json);
        send_raw(t, complete_json, 10);
        assert_return_code(shutdown(t->fd, SHUT_WR), errno);
        {
                _cleanup_json_ json_object *m = next_message(t);
                assert_echo_text(m, "x");
        }
        assert_closed_without_reply(t);
        assert_int_equal(t->echo_calls, 1);
        assert_int_equal(varlink_server_protocol_errors(t->server), 2);
}

static void test_clean_eof_after_call(void **state) {
        Test *t = *state;
        _cleanup_json_ json_object *m = NULL;

        /* Half-closing right after a call is fine: the reply still comes, then EOF. */
        send_message(t, "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"bye\"}}");
        assert_return_code(shutdown(t->fd, SHUT_WR), errno);
        m = next_message(t);
        assert_echo_text(m, "bye");
        assert_closed_without_reply(t);
        assert_int_equal(varlink_server_protocol_errors(t->server), 0);

        /* Same for a call answered later. */
        reconnect(t);
        send_message(t, "{\"method\":\"" M("Later") "\"}");
        assert_return_code(shutdown(t->fd, SHUT_WR), errno);
        drain(t);
        later_release(t);
        json_object_put(TAKE_PTR(m));
        m = next_message(t);
        assert_final(m);
        assert_true(json_get_bool(params_of(m), "later", false));
        assert_int_equal(t->later_result, 0);
        assert_closed_without_reply(t);
        assert_int_equal(varlink_server_protocol_errors(t->server), 0);
}

static void test_pipelined_in_order(void **state) {
        Test *t = *state;
        static const char calls[] =
                "{\"method\":\"" M("Later") "\"}\0"
                "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"second\"}}\0"
                "{\"method\":\"" M("Stream") "\",\"more\":true,\"parameters\":{\"count\":1}}\0"
                "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"fourth\"}}\0";
        _cleanup_json_ json_object *m1 = NULL, *m2 = NULL, *m3 = NULL, *m4 = NULL, *m5 = NULL;

        send_raw(t, calls, sizeof(calls) - 1);

        /* While the first call is pending, nothing behind it is dispatched. */
        assert_no_message(t);
        assert_int_equal(t->echo_calls, 0);
        assert_non_null(t->later);
        later_release(t);

        m1 = next_message(t);
        assert_final(m1);
        assert_true(json_get_bool(params_of(m1), "later", false));
        m2 = next_message(t);
        assert_echo_text(m2, "second");
        m3 = next_message(t);
        assert_continues(m3);
        assert_int_equal(json_get_int(params_of(m3), "index", -1), 0);
        m4 = next_message(t);
        assert_final(m4);
        assert_int_equal(json_get_int(params_of(m4), "index", -1), 1);
        m5 = next_message(t);
        assert_echo_text(m5, "fourth");
        assert_no_message(t);
}

/* Many calls with large replies, written in one go by a client that reads replies only when its writes
 * would block (the server stops reading a client whose replies wait): the server must neither drop nor
 * reorder anything, nor give up on the client. */
static void test_pipelined_bulk(void **state) {
        Test *t = *state;
        const unsigned n = 1000;
        char pad[1024];
        ByteBuffer out = {};
        size_t sent = 0;
        uint64_t deadline;
        int flags;

        memset(pad, 'p', sizeof(pad) - 1);
        pad[sizeof(pad) - 1] = 0;
        for (unsigned i = 0; i < n; i++) {
                _cleanup_free_ char *s = NULL;
                int l = asprintf(&s,
                                 "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"%s\",\"value\":{\"i\":%u}}}",
                                 pad, i);

                assert_true(l > 0);
                assert_int_equal(byte_buffer_append(&out, s, (size_t) l + 1, SIZE_MAX), 0);
        }

        flags = fcntl(t->fd, F_GETFL);
        assert_return_code(fcntl(t->fd, F_SETFL, flags | O_NONBLOCK), errno);

        /* Write everything, collecting replies (without parsing them) only when a write would block. */
        deadline = now_usec() + WAIT_USEC;
        while (sent < byte_buffer_size(&out)) {
                ssize_t k = send(t->fd, byte_buffer_head(&out) + sent, byte_buffer_size(&out) - sent,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);

                if (k < 0) {
                        assert_int_equal(errno, EAGAIN);
                        assert_true(now_usec() < deadline);
                        (void) sd_event_run(t->event, 1 * USEC_PER_MSEC);
                        receive(t);
                        continue;
                }
                sent += (size_t) k;
                drain(t);
        }
        drain(t);
        assert_int_equal(varlink_server_connection_count(t->server), 1);

        for (unsigned i = 0; i < n; i++) {
                _cleanup_json_ json_object *m = next_message(t);
                json_object *v = NULL;

                assert_final(m);
                assert_true(json_object_object_get_ex(params_of(m), "value", &v));
                assert_int_equal(json_get_int(v, "i", -1), i);
        }
        assert_no_message(t);
        assert_int_equal(t->echo_calls, n);
        byte_buffer_done(&out);
}

/* ---- more / oneway ---------------------------------------------------------------------------- */

static void test_more_streaming(void **state) {
        Test *t = *state;
        _cleanup_json_ json_object *m = NULL;

        send_message(t, "{\"method\":\"" M("Stream") "\",\"more\":true}");
        for (int i = 0; i < 2; i++) {
                json_object_put(TAKE_PTR(m));
                m = next_message(t);
                assert_continues(m);
                assert_int_equal(json_get_int(params_of(m), "index", -1), i);
        }
        json_object_put(TAKE_PTR(m));
        m = next_message(t);
        assert_final(m);
        assert_int_equal(json_get_int(params_of(m), "index", -1), 2);
        assert_true(json_get_bool(params_of(m), "done", false));
        assert_no_message(t);

        /* A stream without intermediate replies. */
        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"" M("Stream") "\",\"more\":true,\"parameters\":{\"count\":0}}");
        assert_final(m);
        assert_int_equal(json_get_int(params_of(m), "index", -1), 0);

        /* "more" on a method that replies once: one final reply. */
        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"" M("Echo") "\",\"more\":true,\"parameters\":{\"text\":\"once\"}}");
        assert_echo_text(m, "once");
        assert_no_message(t);

        /* "more": false is the same as no "more". */
        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"" M("Stream") "\",\"more\":false}");
        assert_error(m, VARLINK_ERROR_EXPECTED_MORE, NULL, NULL);
}

static void test_oneway(void **state) {
        Test *t = *state;
        _cleanup_json_ json_object *m = NULL;

        send_message(t, "{\"method\":\"" M("Echo") "\",\"oneway\":true,\"parameters\":{\"text\":\"silent\"}}");
        assert_no_message(t);
        assert_int_equal(t->echo_calls, 1);

        /* Errors of oneway calls are not sent either. */
        send_message(t, "{\"method\":\"" M("Fail") "\",\"oneway\":true}");
        send_message(t, "{\"method\":\"" M("Nope") "\",\"oneway\":true}");
        send_message(t, "{\"method\":\"" M("Typed") "\",\"oneway\":true,\"parameters\":{\"bogus\":1}}");
        assert_no_message(t);

        m = call(t, "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"loud\"},\"oneway\":false}");
        assert_echo_text(m, "loud");
        assert_no_message(t);
        assert_int_equal(t->echo_calls, 2);
        assert_int_equal(varlink_server_calls_total(t->server), 5);
        assert_int_equal(varlink_server_connection_count(t->server), 1);
}

/* ---- protocol violations ---------------------------------------------------------------------- */

static void test_protocol_violations(void **state) {
        Test *t = *state;
        static const char *const bad[] = {
                /* unknown top-level keys */
                "{\"method\":\"" M("Echo") "\",\"bogus\":1}",
                "{\"method\":\"" M("Echo") "\",\"Parameters\":{}}",
                /* oneway together with more */
                "{\"method\":\"" M("Echo") "\",\"oneway\":true,\"more\":true}",
                /* parameters that are not an object */
                "{\"method\":\"" M("Echo") "\",\"parameters\":[1]}",
                "{\"method\":\"" M("Echo") "\",\"parameters\":\"text\"}",
                "{\"method\":\"" M("Echo") "\",\"parameters\":7}",
                /* bad method names and flags */
                "{\"parameters\":{}}",
                "{\"method\":42}",
                "{\"method\":\"NoInterface\"}",
                "{\"method\":\".Echo\"}",
                "{\"method\":\"" TEST_INTERFACE ".\"}",
                "{\"method\":\"" M("Echo") "\",\"more\":\"yes\"}",
                "{\"method\":\"" M("Echo") "\",\"oneway\":1}",
                /* not a call object */
                "[1,2]",
                "\"" M("Echo") "\"",
                "42",
                "null",
                "",
                "   ",
                /* invalid JSON */
                "{\"method\":\"" M("Echo") "\"",
                "{method:\"" M("Echo") "\"}",
                "{\"method\":\"" M("Echo") "\",}",
                "{'method':'" M("Echo") "'}",
                "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"\xff\xfe\"}}",
                "{\"method\":\"" M("Echo") "\"} x",
                "{\"method\":\"" M("Echo") "\"}{}",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                if (i > 0)
                        reconnect(t);
                send_message(t, bad[i]);
                /* Pipelined behind the violation: must never be answered. */
                send_message(t, "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"after\"}}");
                assert_closed_without_reply(t);
                assert_int_equal(varlink_server_protocol_errors(t->server), i + 1);
        }
        assert_int_equal(t->echo_calls, 0);
}

static char *nested_call(unsigned levels) {
        ByteBuffer b = {};
        const char *prefix = "{\"method\":\"" M("Echo") "\",\"parameters\":{\"value\":";

        assert_int_equal(byte_buffer_append(&b, prefix, strlen(prefix), SIZE_MAX), 0);
        for (unsigned i = 0; i < levels; i++)
                assert_int_equal(byte_buffer_append(&b, i == 0 ? "{\"a\":" : "[", i == 0 ? 5 : 1, SIZE_MAX), 0);
        assert_int_equal(byte_buffer_append(&b, "1", 1, SIZE_MAX), 0);
        for (unsigned i = levels; i > 0; i--)
                assert_int_equal(byte_buffer_append(&b, i == 1 ? "}" : "]", 1, SIZE_MAX), 0);
        assert_int_equal(byte_buffer_append(&b, "}}", 3, SIZE_MAX), 0); /* with the NUL */
        return b.data; /* b.start is 0: nothing was consumed */
}

/* Nesting counts containers: the call object is level 1, "parameters" level 2. (json-c's own depth also
 * counts a scalar leaf as a level, so the server has to allow for that.) */
static void test_json_depth(void **state) {
        Test *t = *state;
        const unsigned depth = 8;

        /* The smallest allowed limit still admits an ordinary call with parameters. */
        set_limits(t, VARLINK_DEFAULT_MAX_MESSAGE_SIZE, VARLINK_DEFAULT_MAX_OUTPUT_SIZE, 16, 16, 2);
        {
                _cleanup_json_ json_object *m =
                        call(t, "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"flat\"}}");
                assert_echo_text(m, "flat");
        }

        set_limits(t, VARLINK_DEFAULT_MAX_MESSAGE_SIZE, VARLINK_DEFAULT_MAX_OUTPUT_SIZE, 16, 16, depth);

        /* Call object (1) + parameters (2) + value nested 6 deep = exactly the limit: accepted. */
        {
                _cleanup_free_ char *s = nested_call(depth - 2);
                _cleanup_json_ json_object *m = call(t, s);
                json_object *v = NULL;

                assert_final(m);
                assert_true(json_object_object_get_ex(params_of(m), "value", &v));
                assert_true(json_object_is_type(v, json_type_object));
        }

        /* One level more: the connection is closed without a reply. */
        {
                _cleanup_free_ char *s = nested_call(depth - 1);

                send_message(t, s);
                assert_closed_without_reply(t);
                assert_int_equal(varlink_server_protocol_errors(t->server), 1);
        }

        /* Much deeper than the limit. */
        {
                _cleanup_free_ char *s = nested_call(5000);

                reconnect(t);
                send_message(t, s);
                assert_closed_without_reply(t);
                assert_int_equal(varlink_server_protocol_errors(t->server), 2);
        }
        assert_int_equal(t->echo_calls, 2);
}

/* ---- error replies ---------------------------------------------------------------------------- */

static void test_unknown_interface_and_method(void **state) {
        Test *t = *state;
        _cleanup_json_ json_object *m = NULL;

        m = call(t, "{\"method\":\"org.example.nope.Echo\"}");
        assert_error(m, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", "org.example.nope");

        /* A prefix of a registered interface is not that interface. */
        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"org.example.Echo\"}");
        assert_error(m, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", "org.example");

        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"" M("Nope") "\",\"parameters\":{\"x\":1}}");
        assert_error(m, VARLINK_ERROR_METHOD_NOT_FOUND, "method", M("Nope"));

        /* Method names are case sensitive. */
        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"" M("echo") "\"}");
        assert_error(m, VARLINK_ERROR_METHOD_NOT_FOUND, "method", M("echo"));

        /* The connection stays usable after error replies. */
        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"still here\"}}");
        assert_echo_text(m, "still here");
        assert_int_equal(varlink_server_protocol_errors(t->server), 0);
}

static void test_invalid_parameter(void **state) {
        Test *t = *state;
        static const struct {
                const char *parameters;
                const char *bad;        /* NULL: valid */
        } cases[] = {
                { "{\"name\":\"a\",\"count\":1}", NULL },
                { "{\"name\":\"a\",\"count\":-5,\"ratio\":0.5,\"enabled\":true,\"tags\":[\"x\"],\"extra\":{}}", NULL },
                { "{\"name\":\"a\",\"count\":1,\"ratio\":3}", NULL },          /* float accepts int */
                { "{\"name\":\"a\",\"count\":1,\"ratio\":null,\"tags\":null}", NULL },
                { "{\"name\":\"a\",\"count\":\"1\"}", "count" },               /* wrong type */
                { "{\"name\":\"a\",\"count\":1.5}", "count" },
                { "{\"name\":1,\"count\":1}", "name" },
                { "{\"name\":\"a\",\"count\":1,\"enabled\":\"yes\"}", "enabled" },
                { "{\"name\":\"a\",\"count\":1,\"tags\":{}}", "tags" },
                { "{\"name\":\"a\",\"count\":1,\"extra\":[]}", "extra" },
                { "{\"name\":\"a\",\"count\":1,\"ratio\":\"0.5\"}", "ratio" },
                { "{\"count\":1}", "name" },                                  /* missing */
                { "{\"name\":\"a\"}", "count" },
                { "{}", "name" },
                { "{\"name\":null,\"count\":1}", "name" },                     /* null for a non-nullable */
                { "{\"name\":\"a\",\"count\":1,\"bogus\":true}", "bogus" },     /* unknown */
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *s = NULL;
                _cleanup_json_ json_object *m = NULL;

                assert_true(asprintf(&s, "{\"method\":\"" M("Typed") "\",\"parameters\":%s}", cases[i].parameters) > 0);
                m = call(t, s);
                if (cases[i].bad)
                        assert_error(m, VARLINK_ERROR_INVALID_PARAMETER, "parameter", cases[i].bad);
                else {
                        assert_final(m);
                        assert_true(json_get_bool(params_of(m), "ok", false));
                }
        }

        /* A method without a parameter table takes no parameters; an absent "parameters" is {}. */
        {
                _cleanup_json_ json_object *m =
                        call(t, "{\"method\":\"" M("Privileged") "\",\"parameters\":{\"x\":1}}");
                assert_error(m, VARLINK_ERROR_INVALID_PARAMETER, "parameter", "x");
        }
        {
                _cleanup_json_ json_object *m = call(t, "{\"method\":\"" M("Typed") "\"}");
                assert_error(m, VARLINK_ERROR_INVALID_PARAMETER, "parameter", "name");
        }
        /* Unchecked methods get whatever was sent. */
        {
                _cleanup_json_ json_object *m =
                        call(t, "{\"method\":\"" M("Unchecked") "\",\"parameters\":{\"x\":\"s\",\"y\":[]}}");
                assert_final(m);
                assert_string_equal(strempty(json_get_string(params_of(m), "x")), "s");
        }
        assert_int_equal(varlink_server_connection_count(t->server), 1);
}

static void test_expected_more(void **state) {
        Test *t = *state;
        _cleanup_json_ json_object *m = NULL;

        m = call(t, "{\"method\":\"" M("Stream") "\"}");
        assert_error(m, VARLINK_ERROR_EXPECTED_MORE, NULL, NULL);
        assert_int_equal(json_object_object_length(params_of(m)), 0);

        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"" M("Flood") "\",\"parameters\":{}}");
        assert_error(m, VARLINK_ERROR_EXPECTED_MORE, NULL, NULL);
        assert_null(t->flood);
}

static void test_internal_error(void **state) {
        Test *t = *state;
        _cleanup_json_ json_object *m = NULL;

        /* By default the called interface's own InternalError. */
        m = call(t, "{\"method\":\"" M("Fail") "\"}");
        assert_error(m, M("InternalError"), NULL, NULL);
        assert_int_equal(json_get_int(params_of(m), "errno", -1), EIO);
        assert_non_null(json_get_string(params_of(m), "message"));

        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"ok\"}}");
        assert_echo_text(m, "ok");

        /* The name the user of the library set. */
        assert_int_equal(varlink_server_set_internal_error(t->server, "com.example.Other.InternalError"), 0);
        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"" M("Fail") "\"}");
        assert_error(m, "com.example.Other.InternalError", NULL, NULL);
        assert_int_equal(json_get_int(params_of(m), "errno", -1), EIO);
        assert_non_null(json_get_string(params_of(m), "message"));

        /* Names that could not be sent as they are. */
        assert_int_equal(varlink_server_set_internal_error(t->server, "no-dots"), -EINVAL);
        assert_int_equal(varlink_server_set_internal_error(t->server, "com.example.\"Quote"), -EINVAL);
        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"" M("Fail") "\"}");
        assert_error(m, "com.example.Other.InternalError", NULL, NULL);

        /* NULL: back to the default. */
        assert_int_equal(varlink_server_set_internal_error(t->server, NULL), 0);
        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"" M("Fail") "\"}");
        assert_error(m, M("InternalError"), NULL, NULL);
}

static void test_reply_api_misuse(void **state) {
        Test *t = *state;
        _cleanup_json_ json_object *m = NULL;

        m = call(t, "{\"method\":\"" M("Probe") "\"}");
        assert_final(m);
        assert_int_equal(t->probe_notify_result, -EBADMSG);
        assert_int_equal(t->probe_second_reply_result, -EBADMSG);
        /* Exactly one reply went out. */
        assert_no_message(t);
}

static void test_upgrade_not_implemented(void **state) {
        Test *t = *state;
        _cleanup_json_ json_object *m = NULL;

        m = call(t, "{\"method\":\"" M("Echo") "\",\"upgrade\":true}");
        assert_error(m, VARLINK_ERROR_METHOD_NOT_IMPLEMENTED, "method", M("Echo"));
        assert_int_equal(t->echo_calls, 0);
}

static void test_service_interface(void **state) {
        Test *t = *state;
        _cleanup_json_ json_object *m = NULL;
        json_object *ifaces = NULL;
        bool found_service = false, found_test = false;

        m = call(t, "{\"method\":\"org.varlink.service.GetInfo\"}");
        assert_final(m);
        assert_string_equal(strempty(json_get_string(params_of(m), "vendor")), "Example");
        assert_string_equal(strempty(json_get_string(params_of(m), "product")), "test-varlink-framing");
        assert_string_equal(strempty(json_get_string(params_of(m), "version")), "1.0");
        assert_string_equal(strempty(json_get_string(params_of(m), "url")), "https://example.org");
        assert_true(json_object_object_get_ex(params_of(m), "interfaces", &ifaces));
        assert_true(json_object_is_type(ifaces, json_type_array));
        for (size_t i = 0; i < json_object_array_length(ifaces); i++) {
                const char *n = json_object_get_string(json_object_array_get_idx(ifaces, i));
                found_service = found_service || streq(n, "org.varlink.service");
                found_test = found_test || streq(n, TEST_INTERFACE);
        }
        assert_true(found_service);
        assert_true(found_test);

        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                    "\"parameters\":{\"interface\":\"" TEST_INTERFACE "\"}}");
        assert_final(m);
        assert_string_equal(strempty(json_get_string(params_of(m), "description")), test_description);

        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"org.varlink.service.GetInterfaceDescription\","
                    "\"parameters\":{\"interface\":\"org.example.nope\"}}");
        assert_error(m, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", "org.example.nope");

        json_object_put(TAKE_PTR(m));
        m = call(t, "{\"method\":\"org.varlink.service.GetInterfaceDescription\"}");
        assert_error(m, VARLINK_ERROR_INVALID_PARAMETER, "parameter", "interface");

        /* Registering an interface twice is refused. */
        assert_int_equal(varlink_server_add_interface(t->server, &test_interface), -EEXIST);
}

/* ---- privileges ------------------------------------------------------------------------------- */


/* A socketpair whose SO_PEERCRED/SO_PEERGROUPS say uid/gid/groups: a child running with those ids creates
 * it and passes both ends back over SCM_RIGHTS. Needs root. */
static void socketpair_as(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, int ret[2]) {
        union {
                struct cmsghdr header;
                char buf[CMSG_SPACE(sizeof(int) * 2)];
        } control = {};
        char byte = 'x';
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        struct cmsghdr *cm;
        int chan[2], status;
        ssize_t n;
        pid_t pid;

        assert_return_code(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan), errno);
        pid = fork();
        assert_return_code(pid, errno);
        if (pid == 0) {
                int pair[2];

                (void) close(chan[0]);
                if (setgroups(n_groups, groups) < 0 || setresgid(gid, gid, gid) < 0 ||
                    setresuid(uid, uid, uid) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                        _exit(EXIT_FAILURE);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(pair));
                memcpy(CMSG_DATA(cm), pair, sizeof(pair));
                _exit(sendmsg(chan[1], &mh, MSG_NOSIGNAL) == 1 ? EXIT_SUCCESS : EXIT_FAILURE);
        }

        (void) close(chan[1]);
        n = recvmsg(chan[0], &mh, MSG_CMSG_CLOEXEC);
        assert_return_code(waitpid(pid, &status, 0), errno);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SUCCESS);
        assert_int_equal(n, 1);
        cm = CMSG_FIRSTHDR(&mh);
        assert_non_null(cm);
        assert_int_equal(cm->cmsg_type, SCM_RIGHTS);
        assert_int_equal(cm->cmsg_len, CMSG_LEN(sizeof(int) * 2));
        memcpy(ret, CMSG_DATA(cm), sizeof(int) * 2);
        (void) close(chan[0]);
}

static void connect_as(Test *t, uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups) {
        int pair[2];

        socketpair_as(uid, gid, groups, n_groups, pair);
        assert_int_equal(varlink_server_add_connection(t->server, pair[0]), 0);
        t->fd = safe_close(t->fd);
        t->fd = pair[1];
        byte_buffer_done(&t->input);
        t->eof = false;
}

static void test_privileged_own_credentials(void **state) {
        Test *t = *state;
        _cleanup_json_ json_object *m = NULL;

        /* The socketpair carries this process's credentials. Root may always call privileged methods,
         * anybody else as a member of the privileged group. */
        if (getuid() != 0) {
                m = call(t, "{\"method\":\"" M("Privileged") "\"}");
                assert_error(m, VARLINK_ERROR_PERMISSION_DENIED, NULL, NULL);
                json_object_put(TAKE_PTR(m));
                varlink_server_set_privileged_gid(t->server, getgid());
        }

        m = call(t, "{\"method\":\"" M("Privileged") "\"}");
        assert_final(m);
        assert_int_equal(json_get_int(params_of(m), "uid", -1), getuid());
}

static void test_privileged_other_users(void **state) {
        Test *t = *state;
        const uid_t nobody = 65534;
        const gid_t nogroup = 65534, other = 65533, admin = 4242;
        static const char privileged[] = "{\"method\":\"" M("Privileged") "\"}";

        if (getuid() != 0)
                skip(); /* creating sockets with other credentials needs root */

        connect_as(t, nobody, nogroup, NULL, 0);
        {
                _cleanup_json_ json_object *m = call(t, privileged);
                assert_error(m, VARLINK_ERROR_PERMISSION_DENIED, NULL, NULL);
                assert_int_equal(json_object_object_length(params_of(m)), 0);
        }
        /* Unprivileged methods keep working for this peer. */
        {
                _cleanup_json_ json_object *m =
                        call(t, "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"hi\"}}");
                assert_echo_text(m, "hi");
        }
        /* Primary group is the privileged group. */
        varlink_server_set_privileged_gid(t->server, nogroup);
        {
                _cleanup_json_ json_object *m = call(t, privileged);
                assert_final(m);
                assert_int_equal(json_get_int(params_of(m), "uid", -1), nobody);
        }
        varlink_server_set_privileged_gid(t->server, admin);
        {
                _cleanup_json_ json_object *m = call(t, privileged);
                assert_error(m, VARLINK_ERROR_PERMISSION_DENIED, NULL, NULL);
        }

        /* Supplementary group membership (SO_PEERGROUPS) counts too. */
        connect_as(t, nobody, other, (const gid_t[]) { 100, admin }, 2);
        {
                _cleanup_json_ json_object *m = call(t, privileged);
                assert_final(m);
                assert_int_equal(json_get_int(params_of(m), "uid", -1), nobody);
        }
        varlink_server_set_privileged_gid(t->server, admin + 1);
        {
                _cleanup_json_ json_object *m = call(t, privileged);
                assert_error(m, VARLINK_ERROR_PERMISSION_DENIED, NULL, NULL);
        }
        varlink_server_set_privileged_gid(t->server, (gid_t) -1);
        {
                _cleanup_json_ json_object *m = call(t, privileged);
                assert_error(m, VARLINK_ERROR_PERMISSION_DENIED, NULL, NULL);
        }
        assert_int_equal(varlink_server_protocol_errors(t->server), 0);
}

/* ---- limits ----------------------------------------------------------------------------------- */

static const char sized_prefix[] = "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"";
static const char sized_suffix[] = "\"}}";
#define SIZED_OVERHEAD (sizeof(sized_prefix) - 1 + sizeof(sized_suffix) - 1)

/* An Echo call of exactly size bytes (without the NUL). */
static char *call_of_size(size_t size) {
        const char *prefix = sized_prefix, *suffix = sized_suffix;
        char *s;

        assert_true(size >= strlen(prefix) + strlen(suffix));
        s = malloc(size + 1);
        assert_non_null(s);
        memset(s, 'p', size);
        memcpy(s, prefix, strlen(prefix));
        memcpy(s + size - strlen(suffix), suffix, strlen(suffix));
        s[size] = 0;
        return s;
}

static void test_message_size_limit(void **state) {
        Test *t = *state;
        const size_t max = 256;

        set_limits(t, max, VARLINK_DEFAULT_MAX_OUTPUT_SIZE, 16, 16, VARLINK_DEFAULT_MAX_JSON_DEPTH);

        /* Exactly at the limit: fine. */
        {
                _cleanup_free_ char *s = call_of_size(max);
                _cleanup_json_ json_object *m = call(t, s);

                assert_final(m);
                assert_int_equal(strlen(strempty(json_get_string(params_of(m), "text"))), max - SIZED_OVERHEAD);
        }

        /* The limit is per message: many messages in one write, together far over the limit. */
        {
                ByteBuffer b = {};

                for (unsigned i = 0; i < 20; i++) {
                        _cleanup_free_ char *s = call_of_size(max - i);
                        assert_int_equal(byte_buffer_append(&b, s, strlen(s) + 1, SIZE_MAX), 0);
                }
                send_raw(t, byte_buffer_head(&b), byte_buffer_size(&b));
                for (unsigned i = 0; i < 20; i++) {
                        _cleanup_json_ json_object *m = next_message(t);

                        assert_final(m);
                        assert_int_equal(strlen(strempty(json_get_string(params_of(m), "text"))),
                                         max - i - SIZED_OVERHEAD);
                }
                byte_buffer_done(&b);
        }

        /* One byte over: closed without a reply. */
        {
                _cleanup_free_ char *s = call_of_size(max + 1);

                send_message(t, s);
                assert_closed_without_reply(t);
                assert_int_equal(varlink_server_protocol_errors(t->server), 1);
        }

        /* A stream that never contains a NUL does not make the server buffer it all. */
        {
                char junk[4096];

                reconnect(t);
                memset(junk, ' ', sizeof(junk));
                send_raw(t, junk, sizeof(junk));
                assert_closed_without_reply(t);
                assert_int_equal(varlink_server_protocol_errors(t->server), 2);
        }
        assert_int_equal(t->echo_calls, 21);
}

static void test_output_limit(void **state) {
        Test *t = *state;
        const size_t max_output = 64 * 1024;
        unsigned received = 0;
        uint64_t deadline;

        set_limits(t, VARLINK_DEFAULT_MAX_MESSAGE_SIZE, max_output, 16, 16, VARLINK_DEFAULT_MAX_JSON_DEPTH);

        send_message(t, "{\"method\":\"" M("Flood") "\",\"more\":true}");
        /* Run the server while not reading: it must give up on this client. */
        drain(t);
        assert_null(t->flood);
        assert_int_equal(t->flood_result, -ENOBUFS);
        assert_true(t->flood_notifies < FLOOD_MAX);
        assert_int_equal(varlink_server_connection_count(t->server), 0);

        /* What the socket took before is intact; then EOF and no final reply. */
        deadline = now_usec() + WAIT_USEC;
        while (!t->eof) {
                assert_true(now_usec() < deadline);
                receive(t);
        }
        for (;;) {
                _cleanup_json_ json_object *m = pop_message(t);
                if (!m)
                        break;
                assert_continues(m);
                assert_int_equal(strlen(strempty(json_get_string(params_of(m), "data"))), FLOOD_CHUNK - 1);
                received++;
        }
        assert_true(received > 0);
        /* Every notify that was accepted was either delivered or among the at most max_output bytes
         * dropped at the disconnect. */
        assert_true(received < t->flood_notifies);
        assert_true(received + max_output / FLOOD_CHUNK + 2 >= t->flood_notifies - 1);
}

/* Replies a uid does not read are bounded across its connections (MaxOutputPerUID=), not only per connection:
 * once its queued replies pass the quota, none of its connections starts a new call (nor is read further), and
 * they go on as soon as it reads. */
static unsigned count_nuls_nonblocking(int fd, size_t *ret_bytes) {
        char buf[64 * 1024];
        unsigned n = 0;

        for (;;) {
                ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (k <= 0)
                        return n;
                *ret_bytes += (size_t) k;
                for (ssize_t i = 0; i < k; i++)
                        n += buf[i] == 0;
        }
}

/* A connection whose server end has a small send buffer, so that replies queue in the server rather than in
 * the kernel; returns the client end. */
static int connect_small_buffers(Test *t) {
        int pair[2], small = 4096;

        assert_return_code(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), errno);
        assert_return_code(setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), errno);
        assert_return_code(setsockopt(pair[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), errno);
        assert_int_equal(varlink_server_add_connection(t->server, pair[0]), 0);
        return pair[1];
}

static void test_output_quota_per_uid(void **state) {
        Test *t = *state;
        const size_t quota = 16 * 1024, text_len = 6000, bound = quota + text_len + 256;
        const unsigned calls = 10;
        VarlinkServerLimits l = *varlink_server_get_limits(t->server);
        _cleanup_free_ char *msg = NULL, *text = NULL;
        unsigned got_a = 0, got_b = 0;
        size_t bytes_a = 0, bytes_b = 0, len;
        uint64_t deadline;
        int a, b, c3;

        l.max_output_per_uid = quota;
        l.max_output_total = 4 * quota;
        assert_int_equal(varlink_server_set_limits(t->server, &l), 0);

        /* Two connections of the same uid (ours). */
        a = connect_small_buffers(t);
        b = connect_small_buffers(t);

        text = malloc(text_len + 1);
        assert_non_null(text);
        memset(text, 'q', text_len);
        text[text_len] = 0;
        assert_return_code(asprintf(&msg, "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"%s\"}}", text),
                           errno);
        len = strlen(msg) + 1;

        for (unsigned i = 0; i < calls; i++)
                assert_int_equal(send(a, msg, len, MSG_NOSIGNAL), (ssize_t) len);
        drain(t);
        /* A's replies stopped at the quota (plus the reply that crossed it), the rest of its calls wait. */
        assert_true(varlink_server_output_queued(t->server) > quota);
        assert_true(varlink_server_output_queued(t->server) <= bound);
        assert_true(t->echo_calls < calls);

        /* B, same uid: its calls wait too while A's replies are unread. */
        for (unsigned i = 0; i < calls; i++)
                assert_int_equal(send(b, msg, len, MSG_NOSIGNAL), (ssize_t) len);
        drain(t);
        assert_int_equal(count_nuls_nonblocking(b, &bytes_b), 0);
        assert_true(varlink_server_output_queued(t->server) <= bound);

        /* A third whose call waits and which then hangs up is closed at once, not kept until the quota frees. */
        c3 = connect_small_buffers(t);
        assert_int_equal(send(c3, msg, len, MSG_NOSIGNAL), (ssize_t) len);
        drain(t);
        assert_int_equal(varlink_server_connection_count(t->server), 4);  /* the fixture's, a, b, c3 */
        safe_close(c3);
        drain(t);
        assert_int_equal(varlink_server_connection_count(t->server), 3);

        /* Reading lets both go on, to the last reply. */
        deadline = now_usec() + WAIT_USEC;
        while (got_a < calls || got_b < calls) {
                assert_true(now_usec() < deadline);
                got_a += count_nuls_nonblocking(a, &bytes_a);
                got_b += count_nuls_nonblocking(b, &bytes_b);
                assert_return_code(sd_event_run(t->event, 10 * USEC_PER_MSEC), 0);
                assert_true(varlink_server_output_queued(t->server) <= bound);
        }
        assert_int_equal(got_a, calls);
        assert_int_equal(got_b, calls);
        assert_int_equal(t->echo_calls, 2 * calls);
        assert_true(bytes_a > calls * text_len && bytes_b > calls * text_len);
        safe_close(a);
        safe_close(b);
        drain(t);
        assert_int_equal(varlink_server_output_queued(t->server), 0);
}

static void test_connection_limits(void **state) {
        Test *t = *state;
        int a[2], b[2], c[2];
        char byte;

        set_limits(t, VARLINK_DEFAULT_MAX_MESSAGE_SIZE, VARLINK_DEFAULT_MAX_OUTPUT_SIZE, 16, 2,
                   VARLINK_DEFAULT_MAX_JSON_DEPTH);

        assert_return_code(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), errno);
        assert_return_code(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), errno);
        assert_return_code(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c), errno);

        assert_int_equal(varlink_server_add_connection(t->server, a[0]), 0);
        assert_int_equal(varlink_server_connection_count(t->server), 2);

        /* Third connection from the same uid. */
        assert_int_equal(varlink_server_add_connection(t->server, b[0]), -EDQUOT);
        assert_int_equal(varlink_server_connections_rejected(t->server), 1);
        assert_int_equal(varlink_server_connection_count(t->server), 2);
        /* The refused fd was closed (not leaked): the peer sees EOF. */
        assert_int_equal(recv(b[1], &byte, 1, MSG_DONTWAIT), 0);

        /* Once one goes away, there is room again. */
        a[1] = safe_close(a[1]);
        drain(t);
        assert_int_equal(varlink_server_connection_count(t->server), 1);
        assert_int_equal(varlink_server_add_connection(t->server, c[0]), 0);
        assert_int_equal(varlink_server_connection_count(t->server), 2);

        /* The original connection still works. */
        {
                _cleanup_json_ json_object *m =
                        call(t, "{\"method\":\"" M("Echo") "\",\"parameters\":{\"text\":\"x\"}}");
                assert_echo_text(m, "x");
        }

        /* Other users have their own quota. */
        if (getuid() == 0) {
                int d[2];

                socketpair_as(65534, 65534, NULL, 0, d);
                assert_int_equal(varlink_server_add_connection(t->server, d[0]), 0);
                assert_int_equal(varlink_server_connection_count(t->server), 3);
                d[1] = safe_close(d[1]);
                drain(t);
                assert_int_equal(varlink_server_connection_count(t->server), 2);
        }

        /* The total limit. */
        {
                int e[2];

                set_limits(t, VARLINK_DEFAULT_MAX_MESSAGE_SIZE, VARLINK_DEFAULT_MAX_OUTPUT_SIZE, 2, 16,
                           VARLINK_DEFAULT_MAX_JSON_DEPTH);
                assert_return_code(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, e), errno);
                assert_int_equal(varlink_server_add_connection(t->server, e[0]), -EUSERS);
                assert_int_equal(varlink_server_connections_rejected(t->server), 2);
                assert_int_equal(recv(e[1], &byte, 1, MSG_DONTWAIT), 0);
                (void) close(e[1]);
        }

        (void) close(b[1]);
        (void) close(c[1]);
}

static void test_limits_api(void **state) {
        Test *t = *state;
        const VarlinkServerLimits good = {
                .max_message_size = 4096,
                .max_output_size = 8192,
                .max_connections = 3,
                .max_connections_per_uid = 2,
                .max_json_depth = 5,
                .max_output_per_uid = 16384,
                .max_output_total = 32768,
        };
        const VarlinkServerLimits bad[] = {
                { 63, 8192, 3, 2, 5 },
                { 4096, 63, 3, 2, 5 },
                { 4096, 8192, 0, 2, 5 },
                { 4096, 8192, 3, 0, 5 },
                { 4096, 8192, 3, 2, 1 },
                { 4096, 8192, 3, 2, 10001 },
                { 4096, 8192, 3, 2, 5, 63, 32768 },           /* per-uid quota under 64 bytes */
                { 4096, 8192, 3, 2, 5, 16384, 8192 },         /* total quota below the per-uid one */
        };
        const VarlinkServerLimits *l;

        l = varlink_server_get_limits(t->server);
        assert_int_equal(l->max_message_size, VARLINK_DEFAULT_MAX_MESSAGE_SIZE);
        assert_int_equal(l->max_output_size, VARLINK_DEFAULT_MAX_OUTPUT_SIZE);
        assert_int_equal(l->max_connections, VARLINK_DEFAULT_MAX_CONNECTIONS);
        assert_int_equal(l->max_connections_per_uid, VARLINK_DEFAULT_MAX_CONNECTIONS_PER_UID);
        assert_int_equal(l->max_json_depth, VARLINK_DEFAULT_MAX_JSON_DEPTH);
        assert_int_equal(l->max_output_per_uid, VARLINK_DEFAULT_MAX_OUTPUT_PER_UID);
        assert_int_equal(l->max_output_total, VARLINK_DEFAULT_MAX_OUTPUT_TOTAL);

        assert_int_equal(varlink_server_set_limits(t->server, &good), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(varlink_server_set_limits(t->server, &bad[i]), -EINVAL);
                l = varlink_server_get_limits(t->server);
                assert_memory_equal(l, &good, sizeof(good));
        }
}

/* ---- lifetime --------------------------------------------------------------------------------- */

static void run_until_later_fired(Test *t) {
        uint64_t deadline = now_usec() + WAIT_USEC;

        later_release(t);
        while (t->later) {
                assert_true(now_usec() < deadline);
                assert_return_code(sd_event_run(t->event, 10 * USEC_PER_MSEC), 0);
        }
}

static void test_peer_gone_during_call(void **state) {
        Test *t = *state;

        send_message(t, "{\"method\":\"" M("Later") "\"}");
        drain(t);
        assert_non_null(t->later);
        assert_false(varlink_connection_is_closed(t->later));
        assert_int_equal(varlink_connection_get_peer_pid(t->later), getpid());
        assert_ptr_equal(varlink_connection_get_server(t->later), t->server);

        t->fd = safe_close(t->fd);
        drain(t);
        assert_int_equal(t->close_calls, 1);
        assert_int_equal(varlink_server_connection_count(t->server), 0);
        assert_true(varlink_connection_is_closed(t->later));

        /* Replying later to a vanished peer fails cleanly. */
        run_until_later_fired(t);
        assert_int_equal(t->later_result, -ENOTCONN);
        assert_int_equal(t->close_calls, 1);
}

static void test_server_shutdown(void **state) {
        Test *t = *state;

        send_message(t, "{\"method\":\"" M("Later") "\"}");
        drain(t);
        assert_non_null(t->later);

        varlink_server_shutdown(t->server);
        assert_int_equal(varlink_server_connection_count(t->server), 0);
        assert_int_equal(t->close_calls, 1);
        receive(t);
        assert_true(t->eof);
        assert_int_equal(byte_buffer_size(&t->input), 0);

        run_until_later_fired(t);
        assert_int_equal(t->later_result, -ENOTCONN);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_several_in_one_write, setup, teardown),
                cmocka_unit_test_setup_teardown(test_split_at_every_byte, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_nul_at_eof, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clean_eof_after_call, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pipelined_bulk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_more_streaming, setup, teardown),
                cmocka_unit_test_setup_teardown(test_oneway, setup, teardown),
                cmocka_unit_test_setup_teardown(test_protocol_violations, setup, teardown),
                cmocka_unit_test_setup_teardown(test_json_depth, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_interface_and_method, setup, teardown),
                cmocka_unit_test_setup_teardown(test_invalid_parameter, setup, teardown),
                cmocka_unit_test_setup_teardown(test_expected_more, setup, teardown),
                cmocka_unit_test_setup_teardown(test_internal_error, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reply_api_misuse, setup, teardown),
                cmocka_unit_test_setup_teardown(test_upgrade_not_implemented, setup, teardown),
                cmocka_unit_test_setup_teardown(test_service_interface, setup, teardown),
                cmocka_unit_test_setup_teardown(test_privileged_own_credentials, setup, teardown),
                cmocka_unit_test_setup_teardown(test_privileged_other_users, setup, teardown),
                cmocka_unit_test_setup_teardown(test_message_size_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_output_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_output_quota_per_uid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_connection_limits, setup, teardown),
                cmocka_unit_test_setup_teardown(test_limits_api, setup, teardown),
                cmocka_unit_test_setup_teardown(test_peer_gone_during_call, setup, teardown),
                cmocka_unit_test_setup_teardown(test_server_shutdown, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
