/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What varlink.c (the server: interfaces, sockets, dispatch of calls to methods) and varlink-connection.c
 * (one connection: reading, framing, replies, writing) share. Not for users of the library. */

#include <sys/socket.h>

#include "basic/buffer.h"
#include "varlink/varlink.h"

#define MAX_LISTEN_FDS 8U
#define MAX_INTERFACES 16U

struct VarlinkConnection {
        unsigned n_ref;
        VarlinkServer *server;
        VarlinkConnection *prev, *next;

        int fd;
        sd_event_source *io_source;
        sd_event_source *defer_source;

        ByteBuffer input;
        ByteBuffer output;
        size_t scan_offset;     /* bytes of input already searched for a NUL */

        bool read_eof;
        bool hup;
        bool closed;
        bool in_call;
        VarlinkCallFlags call_flags;
        size_t accounted;       /* output bytes counted in the server's totals */
        bool quota_blocked;     /* a call waits because of its uid's or the server's output quota */

        struct ucred ucred;

        void (*close_cb)(VarlinkConnection *c, void *userdata);
        void *close_userdata;
};

typedef struct ListenSocket {
        int fd;
        sd_event_source *source;
} ListenSocket;

struct VarlinkServer {
        sd_event *event;
        char *vendor, *product, *version, *url;
        const VarlinkInterface *interfaces[MAX_INTERFACES];
        size_t n_interfaces;
        VarlinkServerLimits limits;
        gid_t privileged_gid;
        char *internal_error;           /* NULL: "<interface>.InternalError" */
        void *userdata;

        json_tokener *tokener;

        ListenSocket listen[MAX_LISTEN_FDS];
        size_t n_listen;
        char *bound_path;

        VarlinkConnection *connections;
        unsigned n_connections;

        /* Output quotas across connections: reply bytes queued in all connections, the connections whose next
         * call waits for them, and the defer source that lets those go once replies were read. */
        size_t output_total;
        unsigned n_quota_blocked;
        sd_event_source *quota_source;

        uint64_t reject_log_usec;       /* rate limit for "refusing connection" messages */
        unsigned reject_log_suppressed;

        uint64_t calls_total;
        uint64_t connections_total;
        uint64_t connections_rejected;
        uint64_t protocol_errors;
};

/* varlink-connection.c */
/* Sets up a connection on a connected socket (fd is taken only on success) and adds it to the server. */
int varlink_connection_new(VarlinkServer *s, int fd, const struct ucred *ucred);
/* Closes the socket, runs the close callback and drops the server's reference. */
void varlink_connection_close(VarlinkConnection *c);
/* Runs the connection (dispatch, write, re-arm) at the next event loop iteration. */
int varlink_connection_schedule(VarlinkConnection *c);

/* varlink.c: whether c may start its next call under the output quotas (limits.max_output_per_uid and
 * max_output_total); when not, c is marked and run again once replies were read. */
bool varlink_server_quota_allows(VarlinkServer *s, VarlinkConnection *c);
/* varlink.c: c's queued output changed (new bytes, bytes written, closed): updates the totals. */
void varlink_server_account_output(VarlinkServer *s, VarlinkConnection *c);

/* varlink.c: dispatches a parsed call object. Returns < 0 on a protocol violation (connection must close). */
int varlink_server_dispatch_call(VarlinkConnection *c, json_object *call);
