/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An asynchronous QMP client on sd-event.
 *
 * States: CONNECTING (waiting for the greeting) → NEGOTIATING (qmp_capabilities sent) → RUNNING →
 * DISCONNECTED. Commands may be queued from the start; they are sent once the capabilities are negotiated.
 * Every command has an id, an optional timeout and a callback that is called exactly once, never zero times and
 * never twice: with the "return" value, with a QMP error (-EIO plus class and description), with -ETIMEDOUT, or
 * with -ECONNRESET when the connection ends — QEMU closed it (EOF, HUP, a read error), the client gave up on the
 * peer (garbage, oversize), qmp_client_disconnect(), or the last qmp_client_unref(). Events go to every
 * observer; whoever adds an observer removes it before its userdata goes away (another holder of a reference
 * may keep the client alive). Nothing ever blocks: reads and writes happen when the socket is ready.
 *
 * The client's event sources run at QMP_CLIENT_EVENT_PRIORITY, ahead of the default priority: whatever QEMU
 * wrote before it exited (replies, a SHUTDOWN event, then EOF) is processed before a child or pidfd source of
 * normal priority reports the exit, so pending commands fail with -ECONNRESET first. */

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "basic/macro.h"
#include "qmp/qmp-event.h"

typedef struct QmpClient QmpClient;

typedef enum QmpClientState {
        QMP_CLIENT_CONNECTING,
        QMP_CLIENT_NEGOTIATING,
        QMP_CLIENT_RUNNING,
        QMP_CLIENT_DISCONNECTED,
        _QMP_CLIENT_STATE_MAX,
        _QMP_CLIENT_STATE_INVALID = -EINVAL,
} QmpClientState;

DECLARE_STRING_TABLE(qmp_client_state, QmpClientState);

/* error == 0: result is the "return" value (borrowed). error == -EIO: QMP error reply, error_class and
 * error_desc set. Otherwise -ETIMEDOUT, -ECONNRESET (QEMU went away) or -EPROTO. */
typedef void (*QmpCommandCallback)(QmpClient *q, int error, json_object *result, const char *error_class,
                                   const char *error_desc, void *userdata);
/* Every event QEMU sends, parsed once (qmp-event.h); borrowed for the duration of the call. */
typedef void (*QmpEventCallback)(QmpClient *q, const QmpEvent *event, void *userdata);
/* Called on every state change; error says why the client disconnected (0 on an orderly EOF). */
typedef void (*QmpStateCallback)(QmpClient *q, QmpClientState state, int error, void *userdata);

#define QMP_MAX_MESSAGE_SIZE (16U * 1024U * 1024U)
#define QMP_CLIENT_EVENT_PRIORITY (SD_EVENT_PRIORITY_NORMAL - 10)
#define QMP_DEFAULT_TIMEOUT_USEC (10U * USEC_PER_SEC)

/* Takes ownership of fd, a connected stream socket. */
int qmp_client_new(QmpClient **ret, sd_event *event, int fd);
/* Connects to a unix socket path, then as qmp_client_new(). */
int qmp_client_connect(QmpClient **ret, sd_event *event, const char *path);

QmpClient *qmp_client_ref(QmpClient *q);
/* Dropping the last reference closes the connection and fails the commands still open with -ECONNRESET (their
 * callbacks run inside this call, before anything is freed); the state callback is not called. */
QmpClient *qmp_client_unref(QmpClient *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(QmpClient *, qmp_client_unref);

void qmp_client_set_state_callback(QmpClient *q, QmpStateCallback cb, void *userdata);
int qmp_client_add_event_observer(QmpClient *q, QmpEventCallback cb, void *userdata);
void qmp_client_remove_event_observer(QmpClient *q, QmpEventCallback cb, void *userdata);
void qmp_client_set_description(QmpClient *q, const char *description);

/* Queues a command. arguments is consumed (NULL → none). timeout_usec 0 → QMP_DEFAULT_TIMEOUT_USEC,
 * USEC_INFINITY → none. cb may be NULL (reply ignored). */
int qmp_client_execute(QmpClient *q, const char *command, json_object *arguments, uint64_t timeout_usec,
                       QmpCommandCallback cb, void *userdata);

/* Closes the connection: the state callback sees DISCONNECTED, then the commands still open fail with
 * -ECONNRESET. Nothing happens on a client that is already disconnected. */
void qmp_client_disconnect(QmpClient *q, int error);

QmpClientState qmp_client_get_state(QmpClient *q);
/* The greeting's "QMP" object (version, capabilities), NULL before it arrived. */
json_object *qmp_client_get_greeting(QmpClient *q);
unsigned qmp_client_pending(QmpClient *q);
