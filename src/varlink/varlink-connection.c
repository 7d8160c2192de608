/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One varlink connection: reading and framing NUL-terminated messages, handing each call to the server's
 * dispatcher one at a time, queueing replies and writing them, and closing on a protocol violation. */
#include <ctype.h>
#include <malloc.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "varlink/varlink-internal.h"

/* While more than this many reply bytes wait to be written, no further call is dispatched on that
 * connection, so a peer that pipelines calls without reading replies stalls instead of growing. */
#define OUTPUT_HIGH_WATER (256U * 1024U)
/* Calls dispatched per connection per event loop iteration, for fairness between clients. */
#define DISPATCH_BUDGET 64U
#define READ_CHUNK (64U * 1024U)
#define TRIM_THRESHOLD (256U * 1024U)    /* buffers a closed connection held: malloc_trim() from here */


static int connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata);
static int connection_defer(sd_event_source *source, void *userdata);

int varlink_connection_new(VarlinkServer *s, int fd, const struct ucred *ucred) {
        VarlinkConnection *c;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;

        c->n_ref = 1; /* owned by the server's list until closed */
        c->server = s;
        c->fd = fd;
        c->ucred = *ucred;

        r = sd_event_add_io(s->event, &c->io_source, fd, EPOLLIN, connection_io, c);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(c->io_source, "varlink-connection");

        r = sd_event_add_defer(s->event, &c->defer_source, connection_defer, c);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_enabled(c->defer_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(c->defer_source, "varlink-connection-defer");

        c->next = s->connections;
        if (s->connections)
                s->connections->prev = c;
        s->connections = c;
        s->n_connections++;
        s->connections_total++;
        return 0;

fail:
        c->io_source = sd_event_source_disable_unref(c->io_source);
        c->defer_source = sd_event_source_disable_unref(c->defer_source);
        free(c);
        return r;
}

/* ---- connections ------------------------------------------------------------------------------ */

VarlinkConnection *varlink_connection_ref(VarlinkConnection *c) {
        if (c)
                c->n_ref++;
        return c;
}

VarlinkConnection *varlink_connection_unref(VarlinkConnection *c) {
        if (!c)
                return NULL;
        if (--c->n_ref > 0)
                return NULL;

        byte_buffer_done(&c->input);
        byte_buffer_done(&c->output);
        free(c);
        return NULL;
}

size_t varlink_connection_output_queued(VarlinkConnection *c) {
        return c ? byte_buffer_size(&c->output) : 0;
}

bool varlink_connection_is_closed(VarlinkConnection *c) {
        return c->closed;
}

uid_t varlink_connection_get_peer_uid(VarlinkConnection *c) {
        return c->ucred.uid;
}

pid_t varlink_connection_get_peer_pid(VarlinkConnection *c) {
        return c->ucred.pid;
}

VarlinkServer *varlink_connection_get_server(VarlinkConnection *c) {
        return c->server;
}

void varlink_connection_set_close_callback(VarlinkConnection *c, void (*cb)(VarlinkConnection *c, void *userdata),
                                           void *userdata) {
        c->close_cb = cb;
        c->close_userdata = userdata;
}

void varlink_connection_clear_close_callback(VarlinkConnection *c, void (*cb)(VarlinkConnection *c, void *userdata),
                                             void *userdata) {
        if (!c || c->close_cb != cb || c->close_userdata != userdata)
                return;
        c->close_cb = NULL;
        c->close_userdata = NULL;
}

void varlink_connection_close(VarlinkConnection *c) {
        VarlinkServer *s = c->server;
        bool big;

        if (c->closed)
                return;
        c->closed = true;
        varlink_server_account_output(s, c);

        c->io_source = sd_event_source_disable_unref(c->io_source);
        c->defer_source = sd_event_source_disable_unref(c->defer_source);
        c->fd = safe_close(c->fd);
        big = c->input.allocated + c->output.allocated >= TRIM_THRESHOLD;
        byte_buffer_done(&c->input);
        byte_buffer_done(&c->output);
        /* Give large buffers back to the system: after a burst the heap would otherwise keep them. */
        if (big)
                (void) malloc_trim(0);

        if (c->prev)
                c->prev->next = c->next;
        else
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        s->n_connections--;

        if (c->close_cb) {
                void (*cb)(VarlinkConnection *, void *) = c->close_cb;
                c->close_cb = NULL;
                cb(c, c->close_userdata);
        }

        c->server = NULL;
        varlink_connection_unref(c); /* the server's reference */
}

static int connection_write(VarlinkConnection *c);

static void connection_protocol_error(VarlinkConnection *c, const char *what) {
        c->server->protocol_errors++;
        /* Replies to the calls before the violation are owed: hand over what the socket takes now. */
        (void) connection_write(c);
        log_debug("Varlink protocol error from pid %i uid %u: %s; closing connection.",
                  (int) c->ucred.pid, (unsigned) c->ucred.uid, what);
        varlink_connection_close(c);
}

/* Writes one reply into the output queue: the envelope is written around the serialized parameters
 * directly, without building an outer JSON object per reply. */
static int connection_send(VarlinkConnection *c, const char *error, json_object *parameters, bool continues) {
        _cleanup_json_ json_object *params = parameters;
        const char *text = "{}", *suffix = continues ? ",\"continues\":true}" : "}";
        size_t len = 2, prefix_len, suffix_len = strlen(suffix), total;
        char prefix[256];
        char *p;

        if (params) {
                text = json_to_plain(params, &len);
                if (!text)
                        return -ENOMEM;
        }

        if (error) {
                /* Error names are the server's own constants; make sure they need no escaping. */
                if (strlen(error) > 200 || strspn(error, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._") !=
                                                   strlen(error))
                        return -EINVAL;
                prefix_len = (size_t) snprintf(prefix, sizeof(prefix), "{\"error\":\"%s\",\"parameters\":", error);
        } else
                prefix_len = (size_t) snprintf(prefix, sizeof(prefix), "{\"parameters\":");

        total = prefix_len + len + suffix_len + 1;
        p = byte_buffer_reserve(&c->output, total, c->server->limits.max_output_size);
        if (!p) {
                if (errno == ENOBUFS) {
                        log_warning("Varlink client pid %i uid %u does not read its replies (over %zu bytes "
                                    "queued), disconnecting.",
                                    (int) c->ucred.pid, (unsigned) c->ucred.uid, c->server->limits.max_output_size);
                        varlink_connection_close(c);
                        return -ENOBUFS;
                }
                return -ENOMEM;
        }
        memcpy(p, prefix, prefix_len);
        memcpy(p + prefix_len, text, len);
        memcpy(p + prefix_len + len, suffix, suffix_len + 1); /* includes the terminating NUL */
        byte_buffer_commit(&c->output, total);
        varlink_server_account_output(c->server, c);
        return 0;
}

static int connection_end_call(VarlinkConnection *c, const char *error, json_object *parameters) {
        int r = 0;

        if (c->closed) {
                json_object_put(parameters);
                return -ENOTCONN;
        }
        if (!c->in_call) {
                json_object_put(parameters);
                return -EBADMSG;
        }

        /* connection_send() closes a connection whose queue would overflow; the close callback may drop the
         * caller's last reference: hold one of our own until we are done with c. */
        varlink_connection_ref(c);
        c->in_call = false;
        if (c->call_flags & VARLINK_CALL_ONEWAY)
                json_object_put(parameters);
        else
                r = connection_send(c, error, parameters, false);

        if (!c->closed)
                (void) varlink_connection_schedule(c);
        varlink_connection_unref(c);
        return r;
}

int varlink_reply(VarlinkConnection *c, json_object *parameters) {
        return connection_end_call(c, NULL, parameters);
}

int varlink_error(VarlinkConnection *c, const char *error, json_object *parameters) {
        return connection_end_call(c, error, parameters);
}

int varlink_notify(VarlinkConnection *c, json_object *parameters) {
        int r;

        if (c->closed || !c->in_call || !(c->call_flags & VARLINK_CALL_MORE)) {
                json_object_put(parameters);
                return c->closed ? -ENOTCONN : -EBADMSG;
        }

        varlink_connection_ref(c);      /* as in connection_end_call() */
        r = connection_send(c, NULL, parameters, true);
        if (r >= 0)
                r = varlink_connection_schedule(c);
        varlink_connection_unref(c);
        return r;
}

int varlink_error_invalid_parameter(VarlinkConnection *c, const char *parameter) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "parameter", parameter) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, VARLINK_ERROR_INVALID_PARAMETER, p);
}

/* Whether containers (objects, arrays) nest deeper than max, counting the outermost as 1. json-c's own
 * limit (set to max + 1) also counts a scalar leaf as a level, so an exact check needs this walk; it stops
 * at max + 1 levels and so never recurses deeper than the tokenizer allowed. */
static bool json_nesting_exceeds(json_object *o, unsigned max) {
        if (!json_object_is_type(o, json_type_object) && !json_object_is_type(o, json_type_array))
                return false;
        if (max == 0)
                return true;
        if (json_object_is_type(o, json_type_array)) {
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        if (json_nesting_exceeds(json_object_array_get_idx(o, i), max - 1))
                                return true;
                return false;
        }
        json_object_object_foreach(o, key, value) {
                (void) key;
                if (json_nesting_exceeds(value, max - 1))
                        return true;
        }
        return false;
}

/* Finds the end of the first complete message; returns its length or -1. */
static ssize_t connection_find_message(VarlinkConnection *c) {
        size_t size = byte_buffer_size(&c->input);
        const char *head = byte_buffer_head(&c->input), *nul;

        if (c->scan_offset >= size)
                return -1;
        nul = memchr(head + c->scan_offset, 0, size - c->scan_offset);
        if (!nul) {
                c->scan_offset = size;
                return -1;
        }
        return nul - head;
}

static bool connection_can_dispatch(VarlinkConnection *c) {
        size_t high_water = MIN((size_t) OUTPUT_HIGH_WATER, c->server->limits.max_output_size / 2);

        return !c->closed && !c->in_call && byte_buffer_size(&c->output) <= high_water;
}

/* Returns 1 when a message was handled, 0 when nothing can be done now, < 0 to close the connection. */
static int connection_dispatch_one(VarlinkConnection *c) {
        VarlinkServer *s = c->server;
        _cleanup_json_ json_object *call = NULL;
        const char *head;
        ssize_t len;
        size_t end;
        int r;

        if (!connection_can_dispatch(c))
                return 0;

        len = connection_find_message(c);
        if (len < 0)
                return 0;
        /* The uid's (or all clients') replies not read yet: the call waits, and with it the reading. */
        if (!varlink_server_quota_allows(s, c))
                return 0;

        head = byte_buffer_head(&c->input);
        json_tokener_reset(s->tokener);
        call = json_tokener_parse_ex(s->tokener, head, (int) len);
        if (!call || json_tokener_get_error(s->tokener) != json_tokener_success) {
                connection_protocol_error(c, call || len == 0 ? "incomplete message"
                                                             : json_tokener_error_desc(json_tokener_get_error(s->tokener)));
                return -EBADMSG;
        }
        if (json_nesting_exceeds(call, s->limits.max_json_depth)) {
                connection_protocol_error(c, "JSON nested deeper than the limit");
                return -EBADMSG;
        }
        for (end = json_tokener_get_parse_end(s->tokener); end < (size_t) len; end++)
                if (!isspace((unsigned char) head[end])) {
                        connection_protocol_error(c, "trailing data after JSON object");
                        return -EBADMSG;
                }

        byte_buffer_consume(&c->input, (size_t) len + 1);
        c->scan_offset = 0;

        r = varlink_server_dispatch_call(c, call);
        if (r < 0) {
                connection_protocol_error(c, r == -ENOMEM ? "out of memory" : "invalid call object");
                return r;
        }
        return 1;
}

static int connection_write(VarlinkConnection *c) {
        while (byte_buffer_size(&c->output) > 0) {
                ssize_t n = send(c->fd, byte_buffer_head(&c->output), byte_buffer_size(&c->output),
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                byte_buffer_consume(&c->output, (size_t) n);
                varlink_server_account_output(c->server, c);
        }
        return 0;
}

static size_t connection_input_max(VarlinkConnection *c) {
        return c->server->limits.max_message_size + 1; /* the message and its NUL */
}

static int connection_read(VarlinkConnection *c) {
        size_t max = connection_input_max(c), size = byte_buffer_size(&c->input);
        /* The limit may have been lowered by a reload while more than that is buffered. */
        size_t room = max > size ? max - size : 0, chunk = MIN(room, (size_t) READ_CHUNK);
        char *p;
        ssize_t n;

        if (chunk == 0 || c->read_eof)
                return 0;

        p = byte_buffer_reserve(&c->input, chunk, connection_input_max(c));
        if (!p)
                return -errno;

        n = read(c->fd, p, chunk);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                return -errno;
        }
        if (n == 0) {
                c->read_eof = true;
                return 0;
        }
        byte_buffer_commit(&c->input, (size_t) n);

        /* A full buffer without a NUL can never become a message within the limit. */
        if (byte_buffer_size(&c->input) >= connection_input_max(c) && connection_find_message(c) < 0) {
                log_warning("Varlink client pid %i uid %u sent a message over the %zu byte limit, disconnecting.",
                            (int) c->ucred.pid, (unsigned) c->ucred.uid, c->server->limits.max_message_size);
                c->server->protocol_errors++;
                return -EMSGSIZE;
        }
        return 1;
}

static void connection_rearm(VarlinkConnection *c) {
        uint32_t events = 0;
        bool has_message, waiting;

        if (c->closed)
                return;

        has_message = connection_find_message(c) >= 0;
        /* A complete call that waits for its uid's (or all clients') replies to be read. */
        waiting = has_message && connection_can_dispatch(c) && !varlink_server_quota_allows(c->server, c);
        /* … while the peer has gone away both ways: nobody could read its reply. */
        if (waiting && c->hup) {
                log_debug("Varlink client pid %i uid %u hung up while its call waited for the output quota.",
                          (int) c->ucred.pid, (unsigned) c->ucred.uid);
                varlink_connection_close(c);
                return;
        }

        /* The peer closed both directions: nobody can receive the pending call's reply. */
        if (c->read_eof && c->hup && c->in_call) {
                varlink_connection_close(c);
                return;
        }

        if (c->read_eof && !c->in_call && !has_message) {
                if (byte_buffer_size(&c->input) > 0) {
                        connection_protocol_error(c, "connection closed in the middle of a message (missing NUL)");
                        return;
                }
                if (byte_buffer_size(&c->output) == 0) {
                        varlink_connection_close(c);
                        return;
                }
        }

        /* Read only when the next call could be dispatched: while a call is in progress or a complete message
         * waits (replies not read, a method answering later), the rest stays in the kernel's socket buffer
         * and the peer blocks. Otherwise a client pipelining calls without reading the replies would make
         * us buffer up to MaxMessageSize= per connection. A peer that goes away is still seen: epoll reports
         * EPOLLHUP whatever the event mask. */
        if (!c->read_eof && !c->in_call && !has_message && byte_buffer_size(&c->input) < connection_input_max(c))
                events |= EPOLLIN;
        if (byte_buffer_size(&c->output) > 0)
                events |= EPOLLOUT;

        /* With a call waiting for the quota the source stays on with no events: epoll still reports a hangup. */
        if (events == 0 && !c->in_call && !(waiting && !c->hup))
                (void) sd_event_source_set_enabled(c->io_source, SD_EVENT_OFF);
        else {
                (void) sd_event_source_set_io_events(c->io_source, events);
                (void) sd_event_source_set_enabled(c->io_source, SD_EVENT_ON);
        }

        (void) sd_event_source_set_enabled(c->defer_source,
                                           has_message && connection_can_dispatch(c) && !waiting ?
                                           SD_EVENT_ONESHOT : SD_EVENT_OFF);
}

static void connection_run(VarlinkConnection *c) {
        int r;

        varlink_connection_ref(c);

        for (unsigned i = 0; i < DISPATCH_BUDGET && !c->closed; i++) {
                r = connection_dispatch_one(c);
                if (r <= 0)
                        break;
        }

        if (!c->closed) {
                r = connection_write(c);
                if (r < 0) {
                        log_debug_errno(r, "Failed to write to varlink client, closing connection: %m");
                        varlink_connection_close(c);
                }
        }

        connection_rearm(c);
        varlink_connection_unref(c);
}

int varlink_connection_schedule(VarlinkConnection *c) {
        if (c->closed)
                return -ENOTCONN;
        return sd_event_source_set_enabled(c->defer_source, SD_EVENT_ONESHOT);
}

static int connection_defer(sd_event_source *source, void *userdata) {
        connection_run(userdata);
        return 0;
}

static int connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        VarlinkConnection *c = userdata;
        int r;

        if (revents & EPOLLHUP)
                c->hup = true;
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                r = connection_read(c);
                if (r < 0) {
                        if (r != -EMSGSIZE)
                                log_debug_errno(r, "Failed to read from varlink client, closing connection: %m");
                        varlink_connection_close(c);
                        return 0;
                }
                /* Hung up while we cannot read (buffer full): treat as EOF, else we would spin. */
                if (r == 0 && (revents & EPOLLHUP) && !(revents & EPOLLIN))
                        c->read_eof = true;
        }

        connection_run(c);
        return 0;
}
