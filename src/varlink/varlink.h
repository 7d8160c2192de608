/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A varlink server (https://varlink.org) on sd-event and json-c.
 *
 * Protocol: each message is a JSON object terminated by a NUL byte. A call is
 * {"method": "iface.Method", "parameters": {…}, "oneway": bool, "more": bool}. Calls on one connection
 * are answered in order: the next call is dispatched only once the current one has its final reply.
 * A protocol violation (invalid JSON, nesting deeper than the limit, a message over the size limit,
 * unknown top-level keys, non-object parameters, oneway together with more) closes the connection.
 *
 * Memory a peer can make the server hold is bounded by VarlinkServerLimits. */

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "basic/macro.h"

typedef struct VarlinkServer VarlinkServer;
typedef struct VarlinkConnection VarlinkConnection;

#define VARLINK_ERROR_INTERFACE_NOT_FOUND "org.varlink.service.InterfaceNotFound"
#define VARLINK_ERROR_METHOD_NOT_FOUND "org.varlink.service.MethodNotFound"
#define VARLINK_ERROR_METHOD_NOT_IMPLEMENTED "org.varlink.service.MethodNotImplemented"
#define VARLINK_ERROR_INVALID_PARAMETER "org.varlink.service.InvalidParameter"
#define VARLINK_ERROR_PERMISSION_DENIED "org.varlink.service.PermissionDenied"
#define VARLINK_ERROR_EXPECTED_MORE "org.varlink.service.ExpectedMore"

typedef enum VarlinkType {
        VARLINK_BOOL,
        VARLINK_INT,
        VARLINK_FLOAT,          /* accepts integers too */
        VARLINK_STRING,
        VARLINK_OBJECT,
        VARLINK_ARRAY,
        VARLINK_ANY,            /* checked by the handler */
} VarlinkType;

typedef enum VarlinkFieldFlags {
        VARLINK_NULLABLE = 1 << 0, /* "?type" in the IDL: may be absent or null */
} VarlinkFieldFlags;

typedef struct VarlinkField {
        const char *name;
        VarlinkType type;
        VarlinkFieldFlags flags;
} VarlinkField;

typedef enum VarlinkCallFlags {
        VARLINK_CALL_MORE = 1 << 0,
        VARLINK_CALL_ONEWAY = 1 << 1,
} VarlinkCallFlags;

/* Handlers reply with varlink_reply()/varlink_notify()/varlink_error(), now or later (keep a reference
 * with varlink_connection_ref() to reply later). Returning a negative errno without having replied sends the
 * server's internal error (varlink_server_set_internal_error()) with {"errno": n, "message": "…"}. */
typedef int (*VarlinkMethodFn)(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags,
                               void *userdata);

typedef enum VarlinkMethodFlags {
        VARLINK_METHOD_PRIVILEGED = 1 << 0,     /* changes state: uid 0 or the privileged group only */
        VARLINK_METHOD_REQUIRES_MORE = 1 << 1,  /* without "more" → ExpectedMore */
        VARLINK_METHOD_UNCHECKED = 1 << 2,      /* parameters are validated by the handler */
} VarlinkMethodFlags;

typedef struct VarlinkMethod {
        const char *name;                       /* without the interface, e.g. "GetDaemonStatus" */
        VarlinkMethodFn callback;
        const VarlinkField *parameters;         /* terminated by { NULL }; NULL = takes none */
        VarlinkMethodFlags flags;
} VarlinkMethod;

typedef struct VarlinkInterface {
        const char *name;
        const char *description;                /* the IDL text, served verbatim */
        const VarlinkMethod *methods;           /* terminated by { NULL } */
} VarlinkInterface;

typedef struct VarlinkServerLimits {
        size_t max_message_size;                /* one message; larger → disconnect */
        size_t max_output_size;                 /* queued replies per connection; more → disconnect */
        unsigned max_connections;
        unsigned max_connections_per_uid;
        unsigned max_json_depth;
        size_t max_output_per_uid;              /* queued replies of all connections of one uid; more →
                                                 * that uid's calls wait (not read) until its peers read;
                                                 * 0: the default */
        size_t max_output_total;                /* queued replies of all connections; more → calls wait for
                                                 * uids holding more than an even share of it; 0: the
                                                 * default (at least max_output_per_uid) */
} VarlinkServerLimits;

#define VARLINK_DEFAULT_MAX_MESSAGE_SIZE (16U * 1024U * 1024U)
#define VARLINK_DEFAULT_MAX_OUTPUT_SIZE (16U * 1024U * 1024U)
#define VARLINK_DEFAULT_MAX_OUTPUT_PER_UID (4U * 1024U * 1024U)
#define VARLINK_DEFAULT_MAX_OUTPUT_TOTAL (64U * 1024U * 1024U)
#define VARLINK_DEFAULT_MAX_CONNECTIONS 256U
#define VARLINK_DEFAULT_MAX_CONNECTIONS_PER_UID 32U
#define VARLINK_DEFAULT_MAX_JSON_DEPTH 64U

#define VARLINK_SERVER_LIMITS_DEFAULT                                   \
        ((VarlinkServerLimits) {                                        \
                .max_message_size = VARLINK_DEFAULT_MAX_MESSAGE_SIZE,   \
                .max_output_size = VARLINK_DEFAULT_MAX_OUTPUT_SIZE,     \
                .max_output_per_uid = VARLINK_DEFAULT_MAX_OUTPUT_PER_UID, \
                .max_output_total = VARLINK_DEFAULT_MAX_OUTPUT_TOTAL,   \
                .max_connections = VARLINK_DEFAULT_MAX_CONNECTIONS,     \
                .max_connections_per_uid = VARLINK_DEFAULT_MAX_CONNECTIONS_PER_UID, \
                .max_json_depth = VARLINK_DEFAULT_MAX_JSON_DEPTH,       \
        })

int varlink_server_new(VarlinkServer **ret, sd_event *event, const char *vendor, const char *product,
                       const char *version, const char *url);
VarlinkServer *varlink_server_free(VarlinkServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkServer *, varlink_server_free);

void varlink_server_set_userdata(VarlinkServer *s, void *userdata);
int varlink_server_add_interface(VarlinkServer *s, const VarlinkInterface *iface);
/* Name of the error sent when a method fails without replying (its handler returned a negative errno), e.g.
 * "com.example.Service.InternalError"; NULL (the default): the called interface's name + ".InternalError".
 * A name that is not a dotted varlink error name → -EINVAL. */
int varlink_server_set_internal_error(VarlinkServer *s, const char *error);
int varlink_server_set_limits(VarlinkServer *s, const VarlinkServerLimits *limits);
const VarlinkServerLimits *varlink_server_get_limits(VarlinkServer *s);
/* Members of this group (besides uid 0) may call privileged methods; (gid_t) -1 → none. */
void varlink_server_set_privileged_gid(VarlinkServer *s, gid_t gid);

/* Serves on an already listening socket (socket activation); takes ownership of fd. */
int varlink_server_listen_fd(VarlinkServer *s, int fd);
/* Binds and listens on a varlink address (address.h: "unix:/path", "unix:@name", or the bare forms). A
 * socket file gets the given mode; a stale one (nobody listening) is replaced, a live one → -EADDRINUSE,
 * a non-socket file → -EEXIST. An abstract name in use → -EADDRINUSE. */
int varlink_server_listen_address(VarlinkServer *s, const char *address, mode_t mode);
/* Serves one already connected socket (tests, fuzzers); takes ownership of fd. Connection limits apply:
 * -EUSERS over the total, -EDQUOT over the per-uid limit. */
int varlink_server_add_connection(VarlinkServer *s, int fd);
/* Stops listening and disconnects every client. */
void varlink_server_shutdown(VarlinkServer *s);

unsigned varlink_server_connection_count(VarlinkServer *s);
uint64_t varlink_server_calls_total(VarlinkServer *s);
uint64_t varlink_server_connections_total(VarlinkServer *s);
uint64_t varlink_server_connections_rejected(VarlinkServer *s);
uint64_t varlink_server_protocol_errors(VarlinkServer *s);
/* Reply bytes queued for all clients now. */
size_t varlink_server_output_queued(VarlinkServer *s);

VarlinkConnection *varlink_connection_ref(VarlinkConnection *c);
VarlinkConnection *varlink_connection_unref(VarlinkConnection *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkConnection *, varlink_connection_unref);

/* Final reply to the current call; parameters are consumed (NULL → {}). */
int varlink_reply(VarlinkConnection *c, json_object *parameters);
/* Intermediate reply ("continues": true); only for calls made with "more". */
int varlink_notify(VarlinkConnection *c, json_object *parameters);
/* Error reply; parameters consumed (NULL → {}). Ends the call. */
int varlink_error(VarlinkConnection *c, const char *error, json_object *parameters);
int varlink_error_invalid_parameter(VarlinkConnection *c, const char *parameter);

bool varlink_connection_is_closed(VarlinkConnection *c);
/* Reply bytes queued for this client, not yet sent (it reads them slower than they come). */
size_t varlink_connection_output_queued(VarlinkConnection *c);
uid_t varlink_connection_get_peer_uid(VarlinkConnection *c);
pid_t varlink_connection_get_peer_pid(VarlinkConnection *c);
VarlinkServer *varlink_connection_get_server(VarlinkConnection *c);
/* Called once when the connection goes away (peer hung up, protocol error, server shutdown). A connection has
 * one such slot: whoever sets it must clear it (below) before userdata is freed, or the hang-up runs cb on
 * freed memory. */
void varlink_connection_set_close_callback(VarlinkConnection *c, void (*cb)(VarlinkConnection *c, void *userdata),
                                           void *userdata);
/* Clears the close callback only if it is still cb with userdata (a later call on the connection may have set
 * its own); c may be NULL. */
void varlink_connection_clear_close_callback(VarlinkConnection *c, void (*cb)(VarlinkConnection *c, void *userdata),
                                             void *userdata);

/* Checks parameters against a field table: missing non-nullable, wrong type, unknown, or holding a string
 * that is not text (NUL, invalid or overlong UTF-8, encoded surrogates; at any depth) → returns the
 * offending parameter's name, NULL when valid. Exposed for tests and unchecked handlers. */
const char *varlink_validate_parameters(json_object *parameters, const VarlinkField *fields);
