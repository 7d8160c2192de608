/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A small blocking varlink client for memvisorctl, tests and benchmarks (never used in the daemon). */

#include <json-c/json.h>

#include "macro.h"
#include "varlink.h"

typedef struct VarlinkClient VarlinkClient;

/* address: "unix:/path", "unix:@abstract" or a plain path. */
int varlink_client_connect(VarlinkClient **ret, const char *address);
VarlinkClient *varlink_client_free(VarlinkClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkClient *, varlink_client_free);

/* Sends a call (parameters not consumed; NULL → none). */
int varlink_client_send(VarlinkClient *c, const char *method, json_object *parameters, VarlinkCallFlags flags);

/* Reads the next reply. *ret_reply is the whole reply object (caller puts it); ret_error (may be NULL)
 * points into it. Returns -ECONNRESET on EOF, -EBADMSG on a malformed reply. */
int varlink_client_receive(VarlinkClient *c, json_object **ret_reply);

/* Send + receive one reply. */
int varlink_client_call(VarlinkClient *c, const char *method, json_object *parameters, json_object **ret_reply);

int varlink_client_fd(VarlinkClient *c);
