/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "basic/buffer.h"
#include "basic/json-stream.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "qmp/qmp-client.h"

#define QMP_READ_CHUNK (64U * 1024U)
#define QMP_MAX_DEPTH 128
#define QMP_MAX_OUTPUT (4U * 1024U * 1024U)
#define QMP_MAX_OBSERVERS 16U

typedef struct QmpCommand {
        struct QmpCommand *next;
        uint64_t id;
        char *name;
        json_object *message;           /* until sent */
        uint64_t deadline;              /* CLOCK_MONOTONIC usec, or USEC_INFINITY */
        QmpCommandCallback callback;
        void *userdata;
} QmpCommand;

typedef struct QmpObserver {
        QmpEventCallback callback;
        void *userdata;
} QmpObserver;

struct QmpClient {
        unsigned n_ref;
        sd_event *event;
        char *description;
        int fd;
        sd_event_source *io_source;
        sd_event_source *timer_source;
        QmpClientState state;

        JsonStream *input;
        bool skipping;                  /* dropping a message over QMP_MAX_MESSAGE_SIZE up to its end */
        ByteBuffer output;

        json_object *greeting;
        uint64_t next_id;
        QmpCommand *queued;             /* not yet sent (before RUNNING) — in order */
        QmpCommand *pending;            /* sent, waiting for the reply — in order */

        QmpObserver observers[QMP_MAX_OBSERVERS];
        size_t n_observers;

        QmpStateCallback state_cb;
        void *state_userdata;
};

static const char *const qmp_client_state_table[_QMP_CLIENT_STATE_MAX] = {
        [QMP_CLIENT_CONNECTING] = "connecting",
        [QMP_CLIENT_NEGOTIATING] = "negotiating",
        [QMP_CLIENT_RUNNING] = "running",
        [QMP_CLIENT_DISCONNECTED] = "disconnected",
};

DEFINE_STRING_TABLE(qmp_client_state, QmpClientState, _QMP_CLIENT_STATE_MAX);

static uint64_t now_monotonic(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static QmpCommand *command_free(QmpCommand *c) {
        if (!c)
                return NULL;
        free(c->name);
        json_object_put(c->message);
        free(c);
        return NULL;
}

static void command_list_free(QmpCommand **list) {
        while (*list) {
                QmpCommand *c = *list;
                *list = c->next;
                command_free(c);
        }
}

static void command_append(QmpCommand **list, QmpCommand *c) {
        while (*list)
                list = &(*list)->next;
        c->next = NULL;
        *list = c;
}

static int qmp_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int qmp_timer(sd_event_source *s, uint64_t usec, void *userdata);
static void qmp_update_events(QmpClient *q);

int qmp_client_new(QmpClient **ret, sd_event *event, int fd) {
        _cleanup_close_ int owned = fd;
        QmpClient *q;
        int r, flags;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->n_ref = 1;
        q->fd = -EBADF;
        q->event = sd_event_ref(event);
        q->state = QMP_CLIENT_CONNECTING;
        q->next_id = 1;

        r = json_stream_new(&q->input, QMP_MAX_DEPTH, QMP_MAX_MESSAGE_SIZE);
        if (r < 0) {
                qmp_client_unref(q);
                return r;
        }

        r = sd_event_add_io(event, &q->io_source, fd, EPOLLIN, qmp_io, q);
        if (r < 0) {
                qmp_client_unref(q);
                return r;
        }
        (void) sd_event_source_set_description(q->io_source, "qmp-client");
        r = sd_event_source_set_priority(q->io_source, QMP_CLIENT_EVENT_PRIORITY);
        if (r < 0) {
                qmp_client_unref(q);
                return r;
        }

        r = sd_event_add_time(event, &q->timer_source, CLOCK_MONOTONIC, USEC_INFINITY, 0, qmp_timer, q);
        if (r < 0) {
                qmp_client_unref(q);
                return r;
        }
        (void) sd_event_source_set_enabled(q->timer_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(q->timer_source, "qmp-client-timeout");
        r = sd_event_source_set_priority(q->timer_source, QMP_CLIENT_EVENT_PRIORITY);
        if (r < 0) {
                qmp_client_unref(q);
                return r;
        }

        q->fd = TAKE_FD(owned);
        *ret = q;
        return 0;
}

int qmp_client_connect(QmpClient **ret, sd_event *event, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* AF_UNIX connect() completes at once (or fails: ECONNREFUSED, ENOENT, EAGAIN when the backlog is full). */
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;

        return qmp_client_new(ret, event, TAKE_FD(fd));
}

void qmp_client_set_description(QmpClient *q, const char *description) {
        (void) free_and_strdup(&q->description, description);
}

static void qmp_close(QmpClient *q) {
        q->io_source = sd_event_source_disable_unref(q->io_source);
        q->timer_source = sd_event_source_disable_unref(q->timer_source);
        q->fd = safe_close(q->fd);
        byte_buffer_done(&q->output);
}

QmpClient *qmp_client_ref(QmpClient *q) {
        if (q)
                q->n_ref++;
        return q;
}

static void qmp_fail_all(QmpClient *q, int error);

QmpClient *qmp_client_unref(QmpClient *q) {
        if (!q)
                return NULL;
        if (q->n_ref > 1) {
                q->n_ref--;
                return NULL;
        }

        /* The last reference: every command still open gets its callback now, with -ECONNRESET, while the
         * client is still whole. During those callbacks the client keeps this one reference and is
         * DISCONNECTED: a callback may look at it or take a reference of its own (then it lives on), and
         * cannot queue anything (-ENOTCONN). The state callback belongs to the owner that is letting go: it
         * is not called. */
        if (q->state != QMP_CLIENT_DISCONNECTED || q->queued || q->pending) {
                q->state_cb = NULL;
                q->state_userdata = NULL;
                qmp_close(q);
                q->state = QMP_CLIENT_DISCONNECTED;
                qmp_fail_all(q, -ECONNRESET);
        }
        if (--q->n_ref > 0)
                return NULL;

        qmp_close(q);
        command_list_free(&q->queued);
        command_list_free(&q->pending);
        json_stream_free(q->input);
        json_object_put(q->greeting);
        sd_event_unref(q->event);
        free(q->description);
        free(q);
        return NULL;
}

void qmp_client_set_state_callback(QmpClient *q, QmpStateCallback cb, void *userdata) {
        q->state_cb = cb;
        q->state_userdata = userdata;
}

int qmp_client_add_event_observer(QmpClient *q, QmpEventCallback cb, void *userdata) {
        if (q->n_observers >= QMP_MAX_OBSERVERS)
                return -E2BIG;
        q->observers[q->n_observers++] = (QmpObserver) { cb, userdata };
        return 0;
}

void qmp_client_remove_event_observer(QmpClient *q, QmpEventCallback cb, void *userdata) {
        for (size_t i = 0; i < q->n_observers; i++)
                if (q->observers[i].callback == cb && q->observers[i].userdata == userdata) {
                        memmove(q->observers + i, q->observers + i + 1, (q->n_observers - i - 1) * sizeof(QmpObserver));
                        q->n_observers--;
                        return;
                }
}

QmpClientState qmp_client_get_state(QmpClient *q) {
        return q->state;
}

json_object *qmp_client_get_greeting(QmpClient *q) {
        return q->greeting;
}

unsigned qmp_client_pending(QmpClient *q) {
        unsigned n = 0;

        for (QmpCommand *c = q->queued; c; c = c->next)
                n++;
        for (QmpCommand *c = q->pending; c; c = c->next)
                n++;
        return n;
}

static void qmp_set_state(QmpClient *q, QmpClientState state, int error) {
        if (q->state == state)
                return;
        log_debug("QMP %s: %s → %s", strna(q->description), qmp_client_state_to_string(q->state),
                  qmp_client_state_to_string(state));
        q->state = state;
        if (q->state_cb)
                q->state_cb(q, state, error, q->state_userdata);
}

static void qmp_arm_timer(QmpClient *q) {
        uint64_t earliest = USEC_INFINITY;

        if (!q->timer_source)
                return;
        for (QmpCommand *c = q->queued; c; c = c->next)
                earliest = MIN(earliest, c->deadline);
        for (QmpCommand *c = q->pending; c; c = c->next)
                earliest = MIN(earliest, c->deadline);

        if (earliest == USEC_INFINITY) {
                (void) sd_event_source_set_enabled(q->timer_source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(q->timer_source, earliest);
        (void) sd_event_source_set_enabled(q->timer_source, SD_EVENT_ONESHOT);
}

static void command_complete(QmpClient *q, QmpCommand *c, int error, json_object *result, const char *cls,
                             const char *desc) {
        if (c->callback)
                c->callback(q, error, result, cls, desc, c->userdata);
        command_free(c);
}

/* Fails every command; callbacks may drop references, so the caller holds one. */
static void qmp_fail_all(QmpClient *q, int error) {
        while (q->pending || q->queued) {
                QmpCommand **list = q->pending ? &q->pending : &q->queued, *c = *list;
                *list = c->next;
                command_complete(q, c, error, NULL, NULL, NULL);
        }
}

void qmp_client_disconnect(QmpClient *q, int error) {
        if (q->state == QMP_CLIENT_DISCONNECTED)
                return;

        qmp_client_ref(q);
        qmp_close(q);
        qmp_set_state(q, QMP_CLIENT_DISCONNECTED, error);
        qmp_fail_all(q, -ECONNRESET);
        qmp_client_unref(q);
}

static int qmp_enqueue_output(QmpClient *q, json_object *message) {
        const char *text;
        size_t len;
        int r;

        text = json_to_plain(message, &len);
        if (!text)
                return -ENOMEM;
        r = byte_buffer_append(&q->output, text, len, QMP_MAX_OUTPUT);
        if (r < 0)
                return r;
        return byte_buffer_append(&q->output, "\r\n", 2, QMP_MAX_OUTPUT);
}

/* Moves queued commands to pending once RUNNING. */
static int qmp_flush_queue(QmpClient *q) {
        int r;

        if (q->state != QMP_CLIENT_RUNNING)
                return 0;

        while (q->queued) {
                QmpCommand *c = q->queued;

                r = qmp_enqueue_output(q, c->message);
                if (r < 0)
                        return r;
                json_object_put(c->message);
                c->message = NULL;
                q->queued = c->next;
                command_append(&q->pending, c);
        }
        qmp_update_events(q);
        return 0;
}

static int qmp_execute_internal(QmpClient *q, const char *command, json_object *arguments, uint64_t timeout_usec,
                                QmpCommandCallback cb, void *userdata, bool first) {
        _cleanup_json_ json_object *args = arguments, *m = NULL;
        QmpCommand *c;
        int r;

        if (q->state == QMP_CLIENT_DISCONNECTED)
                return -ENOTCONN;

        m = json_object_new_object();
        if (!m)
                return -ENOMEM;
        if ((r = json_add_string(m, "execute", command)) < 0)
                return r;
        if (args && (r = json_add(m, "arguments", TAKE_PTR(args))) < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->id = q->next_id++;
        c->name = strdup(command);
        if (!c->name || json_add_uint(m, "id", c->id) < 0) {
                command_free(c);
                return -ENOMEM;
        }
        c->message = TAKE_PTR(m);
        c->callback = cb;
        c->userdata = userdata;
        if (timeout_usec == 0)
                timeout_usec = QMP_DEFAULT_TIMEOUT_USEC;
        c->deadline = timeout_usec == USEC_INFINITY ? USEC_INFINITY : now_monotonic() + timeout_usec;

        if (first) {
                /* qmp_capabilities goes out before anything queued. */
                r = qmp_enqueue_output(q, c->message);
                if (r < 0) {
                        command_free(c);
                        return r;
                }
                json_object_put(c->message);
                c->message = NULL;
                command_append(&q->pending, c);
                qmp_update_events(q);
        } else {
                command_append(&q->queued, c);
                r = qmp_flush_queue(q);
                if (r < 0) {
                        /* Not sent (the output bound): the command goes, so that the caller's "an error means
                         * no callback" holds; those queued before it stay for a later flush. */
                        for (QmpCommand **p = &q->queued; *p; p = &(*p)->next)
                                if (*p == c) {
                                        *p = c->next;
                                        command_free(c);
                                        break;
                                }
                        return r;
                }
        }

        qmp_arm_timer(q);
        return 0;
}

int qmp_client_execute(QmpClient *q, const char *command, json_object *arguments, uint64_t timeout_usec,
                       QmpCommandCallback cb, void *userdata) {
        return qmp_execute_internal(q, command, arguments, timeout_usec, cb, userdata, false);
}

static void on_capabilities(QmpClient *q, int error, json_object *result, const char *cls, const char *desc,
                            void *userdata) {
        if (error < 0) {
                log_debug("QMP %s: qmp_capabilities failed: %s", strna(q->description),
                          error == -EIO ? strna(desc) : strerror(-error));
                if (q->state != QMP_CLIENT_DISCONNECTED)
                        qmp_client_disconnect(q, error == -EIO ? -EPROTO : error);
                return;
        }
        qmp_set_state(q, QMP_CLIENT_RUNNING, 0);
        if (q->state == QMP_CLIENT_RUNNING && qmp_flush_queue(q) < 0)
                qmp_client_disconnect(q, -ENOMEM);
}

static int qmp_dispatch_message(QmpClient *q, json_object *m) {
        json_object *v, *id;

        if (!json_object_is_type(m, json_type_object))
                return -EPROTO;

        if (json_object_object_get_ex(m, "QMP", &v)) {
                if (q->state != QMP_CLIENT_CONNECTING)
                        return -EPROTO;
                q->greeting = json_object_get(v);
                qmp_set_state(q, QMP_CLIENT_NEGOTIATING, 0);
                return qmp_execute_internal(q, "qmp_capabilities", NULL, 0, on_capabilities, NULL, true);
        }

        if (json_object_object_get_ex(m, "event", &v)) {
                QmpEvent event;

                /* Parsed once for every observer; an event without a string name ({"event": null}) is dropped. */
                if (qmp_event_parse(m, &event) < 0) {
                        log_debug("QMP %s: event without a name, ignoring.", strna(q->description));
                        return 0;
                }

                /* Observers may unregister themselves while we iterate: walk a copy. */
                QmpObserver copy[QMP_MAX_OBSERVERS];
                size_t n = q->n_observers;
                memcpy(copy, q->observers, n * sizeof(QmpObserver));
                for (size_t i = 0; i < n && q->state != QMP_CLIENT_DISCONNECTED; i++) {
                        bool still = false;
                        for (size_t k = 0; k < q->n_observers; k++)
                                if (q->observers[k].callback == copy[i].callback &&
                                    q->observers[k].userdata == copy[i].userdata)
                                        still = true;
                        if (still)
                                copy[i].callback(q, &event, copy[i].userdata);
                }
                return 0;
        }

        if (!json_object_object_get_ex(m, "id", &id) || !json_object_is_type(id, json_type_int)) {
                log_debug("QMP %s: reply without id, ignoring.", strna(q->description));
                return 0;
        }

        for (QmpCommand **p = &q->pending; *p; p = &(*p)->next) {
                QmpCommand *c = *p;
                json_object *err, *cls = NULL, *desc = NULL;

                if ((int64_t) c->id != json_object_get_int64(id))
                        continue;
                *p = c->next;

                if (json_object_object_get_ex(m, "return", &v))
                        command_complete(q, c, 0, v, NULL, NULL);
                else if (json_object_object_get_ex(m, "error", &err)) {
                        (void) json_object_object_get_ex(err, "class", &cls);
                        (void) json_object_object_get_ex(err, "desc", &desc);
                        command_complete(q, c, -EIO, NULL, cls ? json_object_get_string(cls) : "GenericError",
                                         desc ? json_object_get_string(desc) : "");
                } else
                        command_complete(q, c, -EPROTO, NULL, NULL, NULL);
                qmp_arm_timer(q);
                return 0;
        }

        /* A reply to a command that already timed out. */
        log_debug("QMP %s: reply to unknown or timed out command id %" PRIi64 ", ignoring.", strna(q->description),
                  json_object_get_int64(id));
        return 0;
}

/* Dispatches one complete message; stops the feeding once the client is disconnected. */
static int qmp_on_message(json_object *m, void *userdata) {
        QmpClient *q = userdata;
        int r;

        r = qmp_dispatch_message(q, m);
        if (r < 0)
                return r;
        return q->state == QMP_CLIENT_DISCONNECTED;
}

/* Feeds bytes into the streaming JSON framing and dispatches every complete message. QEMU ends every message
 * with a newline (and JSON holds none raw inside a string), so the input goes in line by line: a message over
 * QMP_MAX_MESSAGE_SIZE (a huge reply, such as HMP xp of a large range) is dropped up to its end and fails the
 * oldest command sent, whose reply it is, with -E2BIG, rather than the whole connection. */
static int qmp_feed(QmpClient *q, const char *buf, size_t n) {
        while (n > 0 && q->state != QMP_CLIENT_DISCONNECTED) {
                const char *nl = memchr(buf, '\n', n);
                size_t seg = nl ? (size_t) (nl - buf) + 1 : n;
                int r;

                if (q->skipping) {
                        if (nl) {
                                q->skipping = false;
                                json_stream_reset(q->input);
                        }
                } else {
                        r = json_stream_feed(q->input, buf, seg, qmp_on_message, q);
                        if (r == -EMSGSIZE && q->state == QMP_CLIENT_RUNNING) {
                                QmpCommand *c = q->pending;

                                log_debug("QMP %s: dropping a message over %u bytes.", strna(q->description),
                                          (unsigned) QMP_MAX_MESSAGE_SIZE);
                                json_stream_reset(q->input);
                                q->skipping = !nl;
                                if (c) {
                                        q->pending = c->next;
                                        command_complete(q, c, -E2BIG, NULL, NULL, NULL);
                                        qmp_arm_timer(q);
                                }
                        } else if (r < 0)
                                return r;
                }
                buf += seg;
                n -= seg;
        }
        return 0;
}

static void qmp_update_events(QmpClient *q) {
        uint32_t events = EPOLLIN;

        if (!q->io_source)
                return;
        if (byte_buffer_size(&q->output) > 0)
                events |= EPOLLOUT;
        (void) sd_event_source_set_io_events(q->io_source, events);
}


static int qmp_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        QmpClient *q = userdata;
        int r = 0;

        qmp_client_ref(q);

        if (revents & EPOLLOUT) {
                r = byte_buffer_send(&q->output, q->fd);
                if (r < 0)
                        goto disconnect;
        }

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                char buf[QMP_READ_CHUNK];
                ssize_t n = read(q->fd, buf, sizeof(buf));

                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR) {
                                r = -errno;
                                goto disconnect;
                        }
                } else if (n == 0) {
                        r = 0;
                        goto disconnect;
                } else {
                        r = qmp_feed(q, buf, (size_t) n);
                        if (r < 0)
                                goto disconnect;
                }
        }

        if (q->state != QMP_CLIENT_DISCONNECTED) {
                r = byte_buffer_send(&q->output, q->fd);
                if (r < 0)
                        goto disconnect;
                qmp_update_events(q);
        }
        qmp_client_unref(q);
        return 0;

disconnect:
        if (r < 0 && r != -ECONNRESET)
                log_debug_errno(r, "QMP %s: connection failed: %m", strna(q->description));
        qmp_client_disconnect(q, r);
        qmp_client_unref(q);
        return 0;
}

static int qmp_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        QmpClient *q = userdata;
        uint64_t now = now_monotonic();

        qmp_client_ref(q);
        for (;;) {
                QmpCommand **p, *expired = NULL;

                for (p = &q->pending; *p; p = &(*p)->next)
                        if ((*p)->deadline <= now) {
                                expired = *p;
                                *p = expired->next;
                                break;
                        }
                if (!expired)
                        for (p = &q->queued; *p; p = &(*p)->next)
                                if ((*p)->deadline <= now) {
                                        expired = *p;
                                        *p = expired->next;
                                        break;
                                }
                if (!expired)
                        break;

                log_debug("QMP %s: command '%s' (id %" PRIu64 ") timed out.", strna(q->description), expired->name,
                          expired->id);
                command_complete(q, expired, -ETIMEDOUT, NULL, NULL, NULL);
        }
        qmp_arm_timer(q);
        qmp_client_unref(q);
        return 0;
}
