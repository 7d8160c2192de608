/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An asynchronous client of the QEMU guest agent (qemu-ga, protocol: QEMU's qga schema) on sd-event, over the host
 * side of the virtio-serial port "org.qemu.guest_agent.0": a unix socket that QEMU listens on (the daemon creates
 * it and hands it to QEMU as an fd, like the QMP socket) and that this client connects to by path.
 *
 * Unlike QMP the agent sends no greeting and may be absent (no agent in the guest, the guest still booting),
 * restarted, or stale (the reply to a command that already timed out still in the pipe). So the client
 * resynchronises with guest-sync-delimited {"id": RANDOM} on connect, when the guest opens the port, and after
 * every timeout: the agent answers with a 0xFF byte and then the reply; everything before the 0xFF is dropped and
 * so is every reply until the one carrying our id. Then guest-info gives the agent's version and its enabled
 * commands, and the client is ready.
 *
 * States:
 *   ABSENT      no connection, or nothing answered the last sync (reason says which). Commands fail at once with
 *               -ENOTCONN. The client tries again: on qga_client_port_changed(open=true), and every retry
 *               interval (starting at QGA_RETRY_USEC, doubling up to QGA_RETRY_MAX_USEC) while the port is not
 *               known to be closed. A sync is never sent while the previous one is unanswered and not timed out.
 *   CONNECTING  connected and syncing (or asking guest-info). Commands queue, and fail with -ENOTCONN if the sync
 *               fails.
 *   READY       commands are sent one at a time, in order (the agent serialises them anyway).
 * After a command times out, the client goes back to CONNECTING (a new sync) before the next one is sent.
 *
 * Every byte from the agent is untrusted: a message larger than its bound (QGA_MAX_MESSAGE_SIZE, or the command's
 * own max_reply_bytes), JSON deeper than QGA_MAX_DEPTH, or not JSON at all closes the connection: the open command
 * and the queued ones fail with -ECONNRESET (-EMSGSIZE for the command whose reply was too large), the state
 * becomes ABSENT with the reason, and the client reconnects after the retry interval. Output is bounded too (at
 * most QGA_MAX_QUEUED commands queued; more fail with -EBUSY).
 *
 * Every callback of a queued command is called exactly once, never from inside qga_client_execute(): with the
 * "return" value, with the agent's error (-EIO plus class and description), -ETIMEDOUT, -ENOTCONN, -ECONNRESET,
 * -EMSGSIZE, -EPROTO (a reply that is neither return nor error; the client resyncs), or -ECANCELED when the last
 * reference is dropped (inside qga_client_unref(), before anything is freed). A command that cannot be queued
 * (ABSENT: -ENOTCONN, queue full: -EBUSY) fails at once: qga_client_execute() returns the error and the callback
 * is never called. The agent going away never affects anything but this client. Nothing ever blocks.
 *
 * Commands the agent does not answer when they succeed (guest-shutdown, guest-suspend-*: "success-response":
 * false in guest-info) end with -ETIMEDOUT and a resync. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "basic/macro.h"

typedef struct QgaClient QgaClient;

typedef enum QgaState {
        QGA_STATE_ABSENT,
        QGA_STATE_CONNECTING,
        QGA_STATE_READY,
        _QGA_STATE_MAX,
        _QGA_STATE_INVALID = -EINVAL,
} QgaState;

DECLARE_STRING_TABLE(qga_state, QgaState);     /* "absent", "connecting", "ready" */

#define QGA_MAX_MESSAGE_SIZE (1U * 1024U * 1024U)
#define QGA_MAX_DEPTH 64
#define QGA_MAX_QUEUED 64U
#define QGA_DEFAULT_TIMEOUT_USEC (10U * USEC_PER_SEC)
#define QGA_SYNC_TIMEOUT_USEC (3U * USEC_PER_SEC)
#define QGA_RETRY_USEC (2U * USEC_PER_SEC)
#define QGA_RETRY_MAX_USEC (60U * USEC_PER_SEC)

/* error == 0: result is the "return" value (borrowed for the call). error == -EIO: the agent's error reply,
 * error_class and error_desc set. Otherwise one of the errors above, error_class and error_desc NULL. */
typedef void (*QgaCommandCallback)(QgaClient *c, int error, json_object *result, const char *error_class,
                                   const char *error_desc, void *userdata);
typedef void (*QgaStateCallback)(QgaClient *c, QgaState state, void *userdata);

/* Connects (non-blocking) to the agent socket at path right away, and again after every disconnect. */
int qga_client_new(QgaClient **ret, sd_event *event, const char *path);
QgaClient *qga_client_ref(QgaClient *c);
QgaClient *qga_client_unref(QgaClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(QgaClient *, qga_client_unref);

/* "VM=name": added to every log line about this client. */
void qga_client_set_description(QgaClient *c, const char *description);
void qga_client_set_state_callback(QgaClient *c, QgaStateCallback cb, void *userdata);

/* The guest opened (open=true) or closed the port: QMP's VSERPORT_CHANGE event, or query-chardev's frontend-open
 * for the agent's chardev. open=true syncs at once; open=false makes the client ABSENT ("the guest closed the
 * agent port") and fails what is open with -ENOTCONN; it sends nothing until the port opens again. */
void qga_client_port_changed(QgaClient *c, bool open);

/* Queues a command. arguments is consumed (NULL → none). timeout_usec 0 → QGA_DEFAULT_TIMEOUT_USEC; it counts from
 * when the command is written. max_reply_bytes 0 → QGA_MAX_MESSAGE_SIZE (a larger bound for the few commands whose
 * replies are large, such as guest-exec-status with captured output). cb may be NULL. Returns 0 when queued (cb
 * runs later, once); or, without queuing and without calling cb: -ENOTCONN (ABSENT), -EBUSY (QGA_MAX_QUEUED
 * commands wait already), -EMSGSIZE (the request is over 4 MiB), -EINVAL, -ENOMEM. */
int qga_client_execute(QgaClient *c, const char *command, json_object *arguments, uint64_t timeout_usec,
                       size_t max_reply_bytes, QgaCommandCallback cb, void *userdata);

QgaState qga_client_get_state(QgaClient *c);
/* The loop the client runs on (for the timers of the operations built on it, qga-ops.h). */
sd_event *qga_client_get_event(QgaClient *c);
/* Why the client is ABSENT (or the last thing that went wrong), in words; NULL if nothing did. */
const char *qga_client_get_reason(QgaClient *c);
/* From guest-info, once READY (kept while not ready, cleared on a new connection): NULL / empty before. */
const char *qga_client_get_version(QgaClient *c);
char *const *qga_client_get_commands(QgaClient *c);        /* the enabled commands, NULL-terminated, sorted */
bool qga_client_supports(QgaClient *c, const char *command);
unsigned qga_client_pending(QgaClient *c);                 /* commands open or queued (not the client's own) */
