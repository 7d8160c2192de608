/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The exporter's HTTP/1.1 server on sd-event: GET and HEAD of /metrics (Prometheus text format 0.0.4) and of /
 * (a small page linking to it). Other paths → 404, other methods on these paths → 405, malformed requests →
 * the status http_request_parse() names, then the connection is closed. Keep-alive and pipelined requests are
 * served one at a time (the next request is read only once the previous response is written). Bounded: the
 * request head (http-request.h), the time a client may take to send a request head (header timeout, 408) or
 * to send the next one on a kept-alive connection or to read a response (timeout), the queued output, and the
 * number of connections, in all and per client address (per user for a unix socket).
 *
 * A new connection over a connection limit makes room rather than being refused: the server closes the
 * connection idle for longest among those in the way, else the one that has been sending its request head
 * for longest (answered 408) — after reading what it sent, so that a request that has arrived is served. Only
 * when every connection in the way is writing a response is the new one refused with 503. Connections the
 * server closes after an answer linger briefly: what the client still sends is read and dropped, so that it
 * reads the answer rather than a connection reset. */

#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "basic/buffer.h"
#include "basic/macro.h"

#define HTTP_DEFAULT_MAX_CONNECTIONS 64U
#define HTTP_DEFAULT_MAX_CONNECTIONS_PER_ADDRESS 16U
#define HTTP_DEFAULT_TIMEOUT_USEC (10U * USEC_PER_SEC)
#define HTTP_DEFAULT_HEADER_TIMEOUT_USEC (5U * USEC_PER_SEC)
#define HTTP_MAX_OUTPUT_SIZE (64U * 1024U * 1024U)

typedef struct HttpServer HttpServer;

typedef struct HttpServerLimits {
        unsigned max_connections;               /* at once, lingering ones aside */
        unsigned max_connections_per_address;   /* at once from one IP address (one user on a unix socket) */
        uint64_t timeout_usec;                  /* to send the next request when idle, to read a response */
        uint64_t header_timeout_usec;           /* to send a request head (at most timeout_usec) */
} HttpServerLimits;

/* Connections closed to make room for a new one, by what they were doing. */
typedef enum HttpEviction {
        HTTP_EVICTION_IDLE,                     /* kept alive between requests */
        HTTP_EVICTION_SLOW_REQUEST,             /* still sending a request head (answered 408) */
        _HTTP_EVICTION_MAX,
        _HTTP_EVICTION_INVALID = -EINVAL,
} HttpEviction;

DECLARE_STRING_TABLE(http_eviction, HttpEviction);

/* New connections refused (answered 503), by the limit in the way. */
typedef enum HttpRefusal {
        HTTP_REFUSAL_MAX_CONNECTIONS,
        HTTP_REFUSAL_MAX_CONNECTIONS_PER_ADDRESS,
        _HTTP_REFUSAL_MAX,
        _HTTP_REFUSAL_INVALID = -EINVAL,
} HttpRefusal;

DECLARE_STRING_TABLE(http_refusal, HttpRefusal);

/* Appends the /metrics body to out; called for every GET and HEAD of /metrics. */
typedef int (*HttpMetricsRender)(ByteBuffer *out, size_t max_size, void *userdata);

int http_server_new(HttpServer **ret, sd_event *event, HttpMetricsRender render, void *userdata);
HttpServer *http_server_free(HttpServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpServer *, http_server_free);

void http_server_set_limits(HttpServer *s, const HttpServerLimits *limits);

/* Serves on a listening TCP or unix stream socket (socket activation); takes ownership of fd. */
int http_server_listen_fd(HttpServer *s, int fd);
/* Binds and listens on "IPV4:PORT" or "[IPV6]:PORT". */
int http_server_listen_address(HttpServer *s, const char *address);
/* The bound address ("127.0.0.1:9098"), for logs and status. */
const char *http_server_address(HttpServer *s);

/* "127.0.0.1:9098", "[::1]:9098" → socket address; anything else → -EINVAL. */
int http_parse_address(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len);

/* Counters. Connections: open ones, without those lingering after their last answer. */
unsigned http_server_connections(HttpServer *s);
uint64_t http_server_scrapes(HttpServer *s);
uint64_t http_server_evictions(HttpServer *s, HttpEviction e);
uint64_t http_server_refusals(HttpServer *s, HttpRefusal r);
/* Responses by status code: fills codes/counts (up to n), returns how many codes were seen. */
size_t http_server_responses(HttpServer *s, int *codes, uint64_t *counts, size_t n);
