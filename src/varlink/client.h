/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A small blocking varlink client for memvisorctl, tests and benchmarks (never used in the daemon). */

#include <json-c/json.h>

#include "basic/macro.h"
#include "varlink/varlink.h"

typedef struct VarlinkClient VarlinkClient;

/* address: "unix:/path", "unix:@abstract" or a plain path. */
int varlink_client_connect(VarlinkClient **ret, const char *address);
/* A client on an already connected pair of file descriptors, such as the standard output and input of a child
 * process (a pipe each, or one socketpair end passed as both): replies are read from input_fd, calls written to
 * output_fd. Takes both (the same fd may be passed twice) on success. A socket is written with MSG_NOSIGNAL; with
 * a pipe the caller decides what SIGPIPE does. */
int varlink_client_new_from_fds(VarlinkClient **ret, int input_fd, int output_fd);
VarlinkClient *varlink_client_free(VarlinkClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(VarlinkClient *, varlink_client_free);

/* Sends a call (parameters not consumed; NULL → none). */
int varlink_client_send(VarlinkClient *c, const char *method, json_object *parameters, VarlinkCallFlags flags);

/* Reads the next reply. *ret_reply is the whole reply object (caller puts it); ret_error (may be NULL)
 * points into it. Returns -ECONNRESET on EOF, -EBADMSG on a malformed reply. */
int varlink_client_receive(VarlinkClient *c, json_object **ret_reply);

/* Send + receive one reply. */
int varlink_client_call(VarlinkClient *c, const char *method, json_object *parameters, json_object **ret_reply);

/* The file descriptor replies are read from. */
int varlink_client_fd(VarlinkClient *c);
