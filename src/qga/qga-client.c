/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "basic/buffer.h"
#include "basic/json-stream.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/strv.h"
#include "qga/qga-client-internal.h"
#include "qga/qga-command.h"

#define QGA_READ_CHUNK (64U * 1024U)
/* What the output may hold: one command, perhaps the unwritten rest of one that timed out, and a few syncs. */
#define QGA_MAX_OUTPUT (2U * QGA_MAX_COMMAND_SIZE + 64U * 1024U)
#define QGA_SENTINEL '\xff'

struct QgaClient {
        unsigned n_ref;
        bool dead;                      /* the last reference is gone: nothing more is done */
        sd_event *event;
        char *path;                     /* NULL: a socket given by qga_client_new_fd(), never reconnected */
        char *description;
        QgaState state;
        char *reason;

        int fd;
        unsigned epoch;                 /* bumped on every (dis)connect and sync: input read before is stale */
        sd_event_source *io_source;
        sd_event_source *timeout_source;        /* the sync or the open command */
        sd_event_source *retry_source;
        JsonStream *input;
        ByteBuffer output;

        bool discarding;                /* dropping input until a 0xFF */
        bool after_sentinel;            /* the next message follows a 0xFF: a sync reply */
        uint64_t sync_id;               /* the last sync sent and not answered, 0 if none */
        uint64_t sync_deadline;         /* USEC_INFINITY once timed out (a late answer is still taken) */
        bool synced;                    /* the last sync was answered on this connection */
        bool need_sync;                 /* sync before the next command (after a timeout, a bad reply) */
        bool info_known;                /* guest-info answered since the agent was last absent: a resync after a
                                         * timeout goes straight back to READY */
        bool port_closed;               /* known closed: no sends, no retries */
        uint64_t next_id;

        QgaCommand *current;            /* written, waiting for its reply */
        QgaCommand *queued;             /* in order */
        unsigned n_queued;

        uint64_t sync_timeout_usec, retry_usec, retry_max_usec, retry_next_usec;

        char *version;
        char **commands;

        QgaStateCallback state_cb;
        void *state_userdata;
};

static const char *const qga_state_table[_QGA_STATE_MAX] = {
        [QGA_STATE_ABSENT] = "absent",
        [QGA_STATE_CONNECTING] = "connecting",
        [QGA_STATE_READY] = "ready",
};

DEFINE_STRING_TABLE(qga_state, QgaState, _QGA_STATE_MAX);

static uint64_t now_monotonic(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static int qga_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);
static int qga_on_timeout(sd_event_source *s, uint64_t usec, void *userdata);
static int qga_on_retry(sd_event_source *s, uint64_t usec, void *userdata);
static void qga_process(QgaClient *c);

static uint64_t qga_new_id(QgaClient *c) {
        uint64_t id = c->next_id++ & INT64_MAX;

        if (id == 0)
                id = c->next_id++ & INT64_MAX;
        return id;
}

/* Logs state changes only, and a new reason while ABSENT (not every retry that fails the same way). */
static void qga_set_state(QgaClient *c, QgaState state, const char *reason) {
        if (reason && !streq_ptr(c->reason, reason)) {
                if (c->state == state && state == QGA_STATE_ABSENT)
                        log_debug("QGA %s: %s", strna(c->description), reason);
                (void) free_and_strdup(&c->reason, reason);
        }
        if (c->state == state)
                return;
        log_debug("QGA %s: %s → %s%s%s%s", strna(c->description), qga_state_to_string(c->state),
                  qga_state_to_string(state), reason ? " (" : "", strempty(reason), reason ? ")" : "");
        c->state = state;
        if (c->state_cb && !c->dead)
                c->state_cb(c, state, c->state_userdata);
}

static void qga_arm_timeout(QgaClient *c) {
        uint64_t t = USEC_INFINITY;

        if (!c->timeout_source)
                return;
        if (c->sync_id != 0)
                t = c->sync_deadline;
        if (c->current)
                t = MIN(t, c->current->deadline);
        if (t == USEC_INFINITY) {
                (void) sd_event_source_set_enabled(c->timeout_source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(c->timeout_source, t);
        (void) sd_event_source_set_enabled(c->timeout_source, SD_EVENT_ONESHOT);
}

/* The retry timer: after the current interval, which doubles each time up to the maximum. Only while the port is
 * not known to be closed, and only for a client that can reconnect or resync. */
static void qga_arm_retry(QgaClient *c) {
        if (!c->retry_source || c->dead || c->port_closed || (!c->path && c->fd < 0))
                return;
        (void) sd_event_source_set_time_relative(c->retry_source, c->retry_next_usec);
        (void) sd_event_source_set_enabled(c->retry_source, SD_EVENT_ONESHOT);
        c->retry_next_usec = MIN(c->retry_next_usec * 2, c->retry_max_usec);
}

static void qga_update_events(QgaClient *c) {
        if (!c->io_source)
                return;
        (void) sd_event_source_set_io_events(c->io_source,
                                             EPOLLIN | (byte_buffer_size(&c->output) > 0 ? EPOLLOUT : 0));
}

/* Takes the open command off the client (its reply is no longer expected). */
static QgaCommand *qga_take_current(QgaClient *c) {
        QgaCommand *cmd = TAKE_PTR(c->current);

        json_stream_set_max_message_size(c->input, QGA_MAX_MESSAGE_SIZE);
        qga_arm_timeout(c);
        return cmd;
}

/* Fails the open command with error_current and every queued one with error_queued. Callbacks may queue (they get
 * -ENOTCONN then: the caller has made the client ABSENT first) and drop references: the caller holds one. */
static void qga_fail_all(QgaClient *c, int error_current, int error_queued) {
        for (;;) {
                QgaCommand *cmd;
                int error;

                if (c->current) {
                        cmd = qga_take_current(c);
                        error = error_current;
                } else if (c->queued) {
                        cmd = c->queued;
                        c->queued = cmd->next;
                        c->n_queued -= cmd->internal ? 0 : 1;
                        error = error_queued;
                } else
                        break;
                qga_command_complete(c, cmd, error, NULL, NULL, NULL);
        }
}

/* Out of sync: no sync is expected any more, what the agent sends is dropped up to the 0xFF of the next one. */
static void qga_unsync(QgaClient *c) {
        if (c->input)
                json_stream_reset(c->input);
        c->discarding = true;
        c->after_sentinel = c->synced = c->need_sync = false;
        c->sync_id = 0;
        c->sync_deadline = USEC_INFINITY;
        c->epoch++;
        qga_arm_timeout(c);
}

static void qga_close(QgaClient *c) {
        c->io_source = sd_event_source_disable_unref(c->io_source);
        c->fd = safe_close(c->fd);
        byte_buffer_done(&c->output);
        if (c->input)
                json_stream_set_max_message_size(c->input, QGA_MAX_MESSAGE_SIZE);
        c->info_known = false;
        qga_unsync(c);
}

/* The connection is gone (EOF, an error, garbage, a message too large): ABSENT with the reason, the open command
 * fails with error_current, the others with -ECONNRESET, and the client reconnects after the retry interval. */
static void qga_disconnect(QgaClient *c, int error_current, const char *reason) {
        qga_client_ref(c);
        qga_close(c);
        qga_set_state(c, QGA_STATE_ABSENT, reason);
        qga_fail_all(c, error_current, -ECONNRESET);
        qga_arm_retry(c);
        qga_client_unref(c);
}

static void qga_disconnect_errno(QgaClient *c, int error, const char *what) {
        char reason[256];

        (void) snprintf(reason, sizeof(reason), "%s: %s", what, strerror(-error));
        qga_disconnect(c, -ECONNRESET, reason);
}

static int qga_append_output(QgaClient *c, const char *text, size_t size) {
        int r = byte_buffer_append(&c->output, text, size, QGA_MAX_OUTPUT);

        if (r >= 0)
                qga_update_events(c);
        return r;
}

/* Sends guest-sync-delimited with a new id, preceded by a 0xFF that resets the agent's parser (a command we wrote
 * in part, or another client's leftovers). From now on the input is dropped up to the agent's 0xFF. */
static int qga_send_sync(QgaClient *c) {
        char text[128];
        uint64_t id = qga_new_id(c);
        int n, r;

        n = snprintf(text, sizeof(text), "%c{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":%" PRIu64 "}}\n",
                     QGA_SENTINEL, id);
        r = qga_append_output(c, text, (size_t) n);
        if (r < 0)
                return r;
        c->sync_id = id;
        c->sync_deadline = now_monotonic() + c->sync_timeout_usec;
        c->synced = false;
        c->discarding = true;
        c->after_sentinel = false;
        c->need_sync = false;
        c->epoch++;
        json_stream_reset(c->input);
        qga_arm_timeout(c);
        return 0;
}

/* A new sync, unless one is unanswered and not timed out yet. Disconnects if even that cannot be written. */
static void qga_sync(QgaClient *c) {
        int r;

        if (c->fd < 0 || c->port_closed || c->dead)
                return;
        if (c->sync_id != 0 && c->sync_deadline != USEC_INFINITY)
                return;
        r = qga_send_sync(c);
        if (r < 0)
                qga_disconnect_errno(c, r, "cannot queue guest-sync-delimited");
}

static int qga_connect(QgaClient *c) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        char reason[PATH_MAX + 128];
        int r;

        assert(c->fd < 0);
        if (!c->path)
                return -ENOTCONN;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                r = -errno;
        else if (strlen(c->path) >= sizeof(sa.sun_path))
                r = -ENAMETOOLONG;
        else {
                strcpy(sa.sun_path, c->path);
                /* AF_UNIX connect() completes at once, or fails: ENOENT or ECONNREFUSED when QEMU is not there,
                 * EAGAIN when its backlog is full. */
                r = connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ? -errno : 0;
        }
        if (r >= 0)
                r = sd_event_add_io(c->event, &c->io_source, fd, EPOLLIN, qga_io, c);
        if (r < 0) {
                (void) snprintf(reason, sizeof(reason), "cannot connect to %s: %s", c->path, strerror(-r));
                qga_set_state(c, QGA_STATE_ABSENT, reason);
                return r;
        }
        (void) sd_event_source_set_description(c->io_source, "qga-client");
        c->fd = TAKE_FD(fd);
        return 0;
}

/* A new connection: what an earlier one learnt is forgotten, a sync goes out unless the port is closed. */
static void qga_connected(QgaClient *c) {
        c->epoch++;
        c->info_known = false;
        c->version = mfree(c->version);
        c->commands = strv_free(c->commands);
        if (c->port_closed)
                return;
        qga_set_state(c, QGA_STATE_CONNECTING, NULL);
        qga_sync(c);
}

static int qga_client_alloc(QgaClient **ret, sd_event *event) {
        _cleanup_(qga_client_unrefp) QgaClient *c = NULL;
        uint64_t seed;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->fd = -EBADF;
        c->event = sd_event_ref(event);
        c->state = QGA_STATE_ABSENT;
        c->sync_deadline = USEC_INFINITY;
        c->sync_timeout_usec = QGA_SYNC_TIMEOUT_USEC;
        c->retry_usec = c->retry_next_usec = QGA_RETRY_USEC;
        c->retry_max_usec = QGA_RETRY_MAX_USEC;

        /* Ids start at a random 63-bit number: a reply meant for another client (or an earlier us) does not match. */
        if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
                seed = now_monotonic() ^ ((uint64_t) getpid() << 32);
        c->next_id = (seed & INT64_MAX) | 1;

        r = json_stream_new(&c->input, QGA_MAX_DEPTH, QGA_MAX_MESSAGE_SIZE);
        if (r < 0)
                return r;
        json_stream_set_flags(c->input, JSON_TOKENER_VALIDATE_UTF8);

        r = sd_event_add_time(event, &c->timeout_source, CLOCK_MONOTONIC, USEC_INFINITY, 0, qga_on_timeout, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(c->timeout_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(c->timeout_source, "qga-client-timeout");

        r = sd_event_add_time(event, &c->retry_source, CLOCK_MONOTONIC, USEC_INFINITY, 0, qga_on_retry, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(c->retry_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(c->retry_source, "qga-client-retry");

        *ret = TAKE_PTR(c);
        return 0;
}

int qga_client_new(QgaClient **ret, sd_event *event, const char *path) {
        _cleanup_(qga_client_unrefp) QgaClient *c = NULL;
        int r;

        if (!path || isempty(path))
                return -EINVAL;
        r = qga_client_alloc(&c, event);
        if (r < 0)
                return r;
        c->path = strdup(path);
        if (!c->path)
                return -ENOMEM;

        if (qga_connect(c) >= 0)
                qga_connected(c);
        else
                qga_arm_retry(c);
        *ret = TAKE_PTR(c);
        return 0;
}

int qga_client_new_fd(QgaClient **ret, sd_event *event, int fd) {
        _cleanup_close_ int owned = fd;
        _cleanup_(qga_client_unrefp) QgaClient *c = NULL;
        int r, flags;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        r = qga_client_alloc(&c, event);
        if (r < 0)
                return r;
        r = sd_event_add_io(event, &c->io_source, fd, EPOLLIN, qga_io, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(c->io_source, "qga-client");
        c->fd = TAKE_FD(owned);
        qga_connected(c);
        *ret = TAKE_PTR(c);
        return 0;
}

void qga_client_set_timeouts(QgaClient *c, uint64_t sync_usec, uint64_t retry_usec, uint64_t retry_max_usec) {
        int enabled = SD_EVENT_OFF;

        if (sync_usec > 0) {
                if (c->sync_id != 0 && c->sync_deadline != USEC_INFINITY)
                        c->sync_deadline = c->sync_deadline - c->sync_timeout_usec + sync_usec;
                c->sync_timeout_usec = sync_usec;
                qga_arm_timeout(c);
        }
        if (retry_max_usec > 0)
                c->retry_max_usec = retry_max_usec;
        if (retry_usec > 0) {
                c->retry_usec = c->retry_next_usec = retry_usec;
                if (sd_event_source_get_enabled(c->retry_source, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                        qga_arm_retry(c);
        }
}

void qga_client_set_next_id(QgaClient *c, uint64_t id) {
        c->next_id = id;
}

QgaClient *qga_client_ref(QgaClient *c) {
        if (c)
                c->n_ref++;
        return c;
}

QgaClient *qga_client_unref(QgaClient *c) {
        if (!c)
                return NULL;
        if (c->n_ref > 1) {
                c->n_ref--;
                return NULL;
        }

        /* The last reference: the commands still open get -ECANCELED now, while the client is whole. It is dead
         * from here on (ABSENT, nothing is sent or retried, queuing fails with -ENOTCONN); a callback may look at
         * it or take a reference of its own, then it lives on, inert. The owner's state callback is not called. */
        if (!c->dead) {
                c->dead = true;
                c->state_cb = NULL;
                c->retry_source = sd_event_source_disable_unref(c->retry_source);
                c->timeout_source = sd_event_source_disable_unref(c->timeout_source);
                qga_close(c);
                c->state = QGA_STATE_ABSENT;
                qga_fail_all(c, -ECANCELED, -ECANCELED);
        }
        if (--c->n_ref > 0)
                return NULL;

        json_stream_free(c->input);
        sd_event_unref(c->event);
        free(c->path);
        free(c->description);
        free(c->reason);
        free(c->version);
        strv_free(c->commands);
        free(c);
        return NULL;
}

void qga_client_set_description(QgaClient *c, const char *description) {
        (void) free_and_strdup(&c->description, description);
}

void qga_client_set_state_callback(QgaClient *c, QgaStateCallback cb, void *userdata) {
        c->state_cb = cb;
        c->state_userdata = userdata;
}

QgaState qga_client_get_state(QgaClient *c) {
        return c->state;
}

sd_event *qga_client_get_event(QgaClient *c) {
        return c->event;
}

const char *qga_client_get_reason(QgaClient *c) {
        return c->reason;
}

const char *qga_client_get_version(QgaClient *c) {
        return c->version;
}

char *const *qga_client_get_commands(QgaClient *c) {
        return c->commands;
}

bool qga_client_supports(QgaClient *c, const char *command) {
        return strv_contains(c->commands, command);
}

unsigned qga_client_pending(QgaClient *c) {
        return c->n_queued + (c->current && !c->current->internal ? 1U : 0U);
}

/* The agent is not answering (a sync or guest-info timed out, or the port closed): ABSENT with the reason, the
 * queued commands fail with -ENOTCONN. */
static void qga_absent(QgaClient *c, const char *reason) {
        qga_client_ref(c);
        c->info_known = false;          /* when it answers again, it may be another agent */
        qga_set_state(c, QGA_STATE_ABSENT, reason);
        qga_fail_all(c, -ENOTCONN, -ENOTCONN);
        qga_arm_retry(c);
        qga_client_unref(c);
}

void qga_client_port_changed(QgaClient *c, bool open) {
        if (c->dead)
                return;
        qga_client_ref(c);
        if (!open) {
                if (!c->port_closed) {
                        c->port_closed = true;
                        (void) sd_event_source_set_enabled(c->retry_source, SD_EVENT_OFF);
                        /* Whatever the agent still says (it may answer what it read before) is stale. */
                        qga_unsync(c);
                        qga_absent(c, "the guest closed the agent port");
                }
        } else {
                bool was_closed = c->port_closed;

                c->port_closed = false;
                c->retry_next_usec = c->retry_usec;
                (void) sd_event_source_set_enabled(c->retry_source, SD_EVENT_OFF);
                if (c->fd < 0) {
                        if (qga_connect(c) >= 0)
                                qga_connected(c);
                        else
                                qga_arm_retry(c);
                } else if (was_closed || c->state == QGA_STATE_ABSENT) {
                        /* Sync now. One written before the port closed was dropped at the close; one that timed
                         * out may be answered still, but the new one is answered after it. */
                        qga_set_state(c, QGA_STATE_CONNECTING, NULL);
                        qga_sync(c);
                } else if (c->sync_id == 0) {
                        /* Opened while we thought it open: the agent may have restarted. Sync (and ask guest-info
                         * again) before the next command. A sync on its way already does. */
                        c->need_sync = true;
                        c->info_known = false;
                }
        }
        qga_process(c);
        qga_client_unref(c);
}

/* Writes the next queued command when the agent is ready and nothing is open; syncs first when due. Returns < 0
 * only when the command could not even be queued for output (the caller decides what fails). */
static int qga_send_next(QgaClient *c) {
        QgaCommand *cmd;
        int r;

        if (c->dead || c->fd < 0 || c->current || c->port_closed || !c->synced || c->sync_id != 0)
                return 0;
        if (c->need_sync) {
                qga_set_state(c, QGA_STATE_CONNECTING, NULL);
                return qga_send_sync(c);
        }
        if (c->state != QGA_STATE_READY && !(c->queued && c->queued->internal))
                return 0;
        if (!c->queued)
                return 0;

        cmd = c->queued;
        r = qga_append_output(c, cmd->text, cmd->size);
        if (r < 0)
                return r;
        c->queued = cmd->next;
        c->n_queued -= cmd->internal ? 0 : 1;
        cmd->next = NULL;
        cmd->text = mfree(cmd->text);
        cmd->deadline = now_monotonic() + cmd->timeout_usec;
        c->current = cmd;
        json_stream_set_max_message_size(c->input, cmd->max_reply_bytes);
        qga_arm_timeout(c);
        return 0;
}

static void qga_process(QgaClient *c) {
        int r = qga_send_next(c);

        if (r < 0)
                qga_disconnect_errno(c, r, "cannot queue a command for the agent");
}

int qga_client_execute(QgaClient *c, const char *command, json_object *arguments, uint64_t timeout_usec,
                       size_t max_reply_bytes, QgaCommandCallback cb, void *userdata) {
        _cleanup_json_ json_object *args = arguments;
        QgaCommand *cmd, **p;
        int r;

        if (!command || isempty(command))
                return -EINVAL;
        if (c->dead || c->state == QGA_STATE_ABSENT)
                return -ENOTCONN;
        if (c->n_queued >= QGA_MAX_QUEUED)
                return -EBUSY;

        r = qga_command_new(qga_new_id(c), command, TAKE_PTR(args), timeout_usec, max_reply_bytes, &cmd);
        if (r < 0)
                return r;
        cmd->callback = cb;
        cmd->userdata = userdata;

        for (p = &c->queued; *p; p = &(*p)->next)
                ;
        *p = cmd;
        c->n_queued++;

        /* Written right away when the agent is idle; the callback never runs inside this call. */
        r = qga_send_next(c);
        if (r < 0 && c->current != cmd) {
                for (p = &c->queued; *p != cmd; p = &(*p)->next)
                        ;
                *p = cmd->next;
                c->n_queued--;
                qga_command_free(cmd);
                return r;
        }
        return 0;
}

static void on_guest_info(QgaClient *c, int error, json_object *result, const char *cls, const char *desc) {
        char reason[256];

        switch (error) {
        case 0: {
                _cleanup_(strv_freep) char **commands = NULL;
                _cleanup_free_ char *version = NULL;
                int r = qga_parse_info(result, &version, &commands);

                if (r < 0) {
                        log_debug("QGA %s: guest-info reply not understood (%s), the agent's commands are unknown.",
                                  strna(c->description), strerror(-r));
                        qga_set_state(c, c->state, "guest-info reply not understood");
                } else {
                        free(c->version);
                        c->version = TAKE_PTR(version);
                        strv_free(c->commands);
                        c->commands = TAKE_PTR(commands);
                }
                c->info_known = true;
                break;
        }
        case -EIO:
        case -EPROTO:
                /* The agent answers but will not say what it can (guest-info blocked): ready, knowing nothing. */
                (void) snprintf(reason, sizeof(reason), "guest-info failed: %s",
                                error == -EIO ? strna(desc) : "reply neither return nor error");
                log_debug("QGA %s: %s", strna(c->description), reason);
                qga_set_state(c, c->state, reason);
                c->info_known = true;
                break;
        case -ETIMEDOUT:
                (void) snprintf(reason, sizeof(reason), "no reply to guest-info within %" PRIu64 " s",
                                QGA_DEFAULT_TIMEOUT_USEC / USEC_PER_SEC);
                c->synced = false;      /* its late reply is stale: the retry syncs */
                qga_absent(c, reason);
                return;
        default:
                return;                 /* the connection failed, the port closed, or the client is going away */
        }
        if (!c->commands)
                c->commands = calloc(1, sizeof(char *));
        c->retry_next_usec = c->retry_usec;
        qga_set_state(c, QGA_STATE_READY, NULL);
}

static int qga_queue_guest_info(QgaClient *c) {
        QgaCommand *cmd;
        int r;

        r = qga_command_new(qga_new_id(c), "guest-info", NULL, QGA_DEFAULT_TIMEOUT_USEC, 0, &cmd);
        if (r < 0)
                return r;
        cmd->internal = on_guest_info;
        /* First in line, ahead of what waits for READY. */
        cmd->next = c->queued;
        c->queued = cmd;
        return 0;
}

/* Synced and no sync outstanding: replies count. Otherwise everything up to our sync's reply is dropped. */
static bool qga_in_sync(QgaClient *c) {
        return c->synced && c->sync_id == 0;
}

/* A message after a 0xFF: the answer to a sync, ours only if it carries the id of the last one. */
static void qga_on_sync_reply(QgaClient *c, json_object *m) {
        json_object *v;
        int r;

        if (c->sync_id == 0 || !json_object_is_type(m, json_type_object) ||
            !json_object_object_get_ex(m, "return", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) != (int64_t) c->sync_id) {
                log_debug("QGA %s: stale or foreign sync reply, ignoring.", strna(c->description));
                if (!qga_in_sync(c))
                        c->discarding = true;   /* ours comes after another 0xFF */
                return;
        }

        c->sync_id = 0;
        c->sync_deadline = USEC_INFINITY;
        c->synced = true;
        qga_arm_timeout(c);
        (void) sd_event_source_set_enabled(c->retry_source, SD_EVENT_OFF);
        if (c->state == QGA_STATE_ABSENT)
                qga_set_state(c, QGA_STATE_CONNECTING, NULL);

        if (c->state == QGA_STATE_CONNECTING && c->info_known) {
                /* A resync on a connection that knows the agent already (after a timeout): ready again. */
                qga_set_state(c, QGA_STATE_READY, NULL);
                return;
        }
        r = qga_queue_guest_info(c);
        if (r < 0)
                qga_disconnect_errno(c, r, "cannot queue guest-info");
}

/* One complete message from the agent. Returns > 0 when the rest of the input just read is stale (a new sync, a
 * closed connection) or is to be dropped up to the next 0xFF. */
static int qga_on_message(json_object *m, void *userdata) {
        QgaClient *c = userdata;
        unsigned epoch = c->epoch;
        QgaCommand *cmd;
        json_object *v, *id, *err, *cls = NULL, *desc = NULL;

        if (c->after_sentinel) {
                c->after_sentinel = false;
                qga_on_sync_reply(c, m);
                if (c->epoch != epoch || c->fd < 0)
                        return 1;
                qga_process(c);
                return c->epoch != epoch || c->fd < 0 || c->discarding;
        }
        if (!qga_in_sync(c)) {
                c->discarding = true;   /* syncing: nothing but our sync reply counts */
                return 1;
        }

        cmd = c->current;
        if (!cmd) {
                log_debug("QGA %s: message while no command is open, ignoring.", strna(c->description));
                return 0;
        }
        if (json_object_is_type(m, json_type_object) && json_object_object_get_ex(m, "id", &id) &&
            (!json_object_is_type(id, json_type_int) || json_object_get_int64(id) != (int64_t) cmd->id)) {
                log_debug("QGA %s: reply with another id, ignoring.", strna(c->description));
                return 0;
        }

        cmd = qga_take_current(c);
        if (json_object_is_type(m, json_type_object) && json_object_object_get_ex(m, "return", &v))
                qga_command_complete(c, cmd, 0, v, NULL, NULL);
        else if (json_object_is_type(m, json_type_object) && json_object_object_get_ex(m, "error", &err)) {
                if (json_object_is_type(err, json_type_object)) {
                        (void) json_object_object_get_ex(err, "class", &cls);
                        (void) json_object_object_get_ex(err, "desc", &desc);
                }
                qga_command_complete(c, cmd, -EIO, NULL,
                                 json_object_is_type(cls, json_type_string) ? json_object_get_string(cls) : "GenericError",
                                 json_object_is_type(desc, json_type_string) ? json_object_get_string(desc) : "");
        } else {
                log_debug("QGA %s: reply to '%s' neither return nor error, resyncing.", strna(c->description),
                          cmd->name);
                c->need_sync = true;    /* before the callback, so that what it queues waits for the sync */
                qga_process(c);
                qga_command_complete(c, cmd, -EPROTO, NULL, NULL, NULL);
        }
        if (c->epoch != epoch || c->fd < 0)
                return 1;
        qga_process(c);
        return c->epoch != epoch || c->fd < 0 || c->discarding;
}

/* Splits the input at every 0xFF: before one, input is dropped while a sync is awaited, parsed otherwise; after
 * one, the parser starts afresh and the next message is a sync reply. */
static int qga_feed(QgaClient *c, const char *buf, size_t n) {
        unsigned epoch = c->epoch;
        int r;

        while (n > 0) {
                const char *ff = memchr(buf, QGA_SENTINEL, n);
                size_t k = ff ? (size_t) (ff - buf) : n;

                if (!c->discarding && k > 0) {
                        r = json_stream_feed(c->input, buf, k, qga_on_message, c);
                        if (c->epoch != epoch || c->fd < 0)
                                return 0;       /* the rest was read before a new sync or connection: stale */
                        if (r < 0) {
                                /* Out of step (a sync awaited): garbage is only dropped, up to the next 0xFF.
                                 * But a reply after the agent's 0xFF that is over the bound is no leftover:
                                 * an agent that answers a sync so is reset, and says why. */
                                if (qga_in_sync(c) || (r == -EMSGSIZE && c->after_sentinel))
                                        return r;
                                json_stream_reset(c->input);
                                c->discarding = true;
                        }
                }
                if (!ff)
                        break;
                json_stream_reset(c->input);
                c->discarding = false;
                c->after_sentinel = true;
                buf = ff + 1;
                n -= k + 1;
        }
        return 0;
}


static int qga_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        QgaClient *c = userdata;
        char reason[256];
        int r;

        qga_client_ref(c);

        if (revents & EPOLLOUT) {
                r = byte_buffer_send(&c->output, c->fd);
                if (r < 0) {
                        qga_disconnect_errno(c, r, "cannot write to the agent socket");
                        goto finish;
                }
        }

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                char buf[QGA_READ_CHUNK];
                ssize_t n = read(c->fd, buf, sizeof(buf));

                if (n < 0) {
                        if (errno != EAGAIN && errno != EINTR) {
                                qga_disconnect_errno(c, -errno, "cannot read from the agent socket");
                                goto finish;
                        }
                } else if (n == 0) {
                        qga_disconnect(c, -ECONNRESET, "the agent socket was closed (EOF)");
                        goto finish;
                } else {
                        r = qga_feed(c, buf, (size_t) n);
                        if (r == -EMSGSIZE) {
                                (void) snprintf(reason, sizeof(reason),
                                                "agent message larger than %zu bytes, connection reset",
                                                json_stream_get_max_message_size(c->input));
                                qga_disconnect(c, -EMSGSIZE, reason);
                                goto finish;
                        }
                        if (r < 0) {
                                qga_disconnect(c, -ECONNRESET, r == -EBADMSG ?
                                               "agent sent invalid JSON, connection reset" :
                                               "agent input not understood, connection reset");
                                goto finish;
                        }
                }
        }

        if (c->fd >= 0) {
                r = byte_buffer_send(&c->output, c->fd);
                if (r < 0)
                        qga_disconnect_errno(c, r, "cannot write to the agent socket");
                else
                        qga_update_events(c);
        }
finish:
        qga_client_unref(c);
        return 0;
}

static int qga_on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        QgaClient *c = userdata;
        uint64_t now = now_monotonic();
        char reason[128];

        qga_client_ref(c);
        if (c->sync_id != 0 && c->sync_deadline <= now) {
                /* Nothing answered. The sync stays expected (a late answer is taken), no new one goes out until
                 * the retry. */
                c->sync_deadline = USEC_INFINITY;
                qga_arm_timeout(c);
                (void) snprintf(reason, sizeof(reason), "no reply to guest-sync-delimited within %" PRIu64 " %s",
                                c->sync_timeout_usec % USEC_PER_SEC == 0 ? c->sync_timeout_usec / USEC_PER_SEC :
                                c->sync_timeout_usec / USEC_PER_MSEC,
                                c->sync_timeout_usec % USEC_PER_SEC == 0 ? "s" : "ms");
                qga_absent(c, reason);
        } else if (c->current && c->current->deadline <= now) {
                QgaCommand *cmd = qga_take_current(c);

                log_debug("QGA %s: command '%s' timed out, resyncing.", strna(c->description), cmd->name);
                if (cmd->internal)
                        qga_command_complete(c, cmd, -ETIMEDOUT, NULL, NULL, NULL);
                else {
                        /* Its reply may still come: a sync before anything else, then the callback. */
                        c->need_sync = true;
                        qga_process(c);
                        qga_command_complete(c, cmd, -ETIMEDOUT, NULL, NULL, NULL);
                }
        } else
                qga_arm_timeout(c);
        qga_client_unref(c);
        return 0;
}

static int qga_on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        QgaClient *c = userdata;

        qga_client_ref(c);
        if (c->port_closed || c->dead)
                ;
        else if (c->fd < 0) {
                if (qga_connect(c) >= 0)
                        qga_connected(c);
                else
                        qga_arm_retry(c);
        } else if (c->state == QGA_STATE_ABSENT) {
                /* Connected but unanswered: sync again, silently (ABSENT until an answer; its timeout arms the
                 * next retry), unless the last one has not even left our buffer. */
                if (byte_buffer_size(&c->output) == 0 && (c->sync_id == 0 || c->sync_deadline == USEC_INFINITY))
                        qga_sync(c);
                else
                        qga_arm_retry(c);
        }
        qga_client_unref(c);
        return 0;
}
