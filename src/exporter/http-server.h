/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The exporter's HTTP/1.1 server on sd-event: GET and HEAD of /metrics (Prometheus text format 0.0.4) and of /
 * (a small page linking to it). Other paths → 404, other methods on these paths → 405, malformed requests →
 * the status http_request_parse() names, then the connection is closed. Keep-alive and pipelined requests are
 * served one at a time (the next request is read only once the previous response is written). Bounded: the
 * request head (http-request.h), the number of connections (more are answered 503 and closed), the time a
 * client may take to send a request (408 then close) or to read a response, the queued output. */

#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "buffer.h"
#include "macro.h"

#define HTTP_DEFAULT_MAX_CONNECTIONS 64U
#define HTTP_DEFAULT_TIMEOUT_USEC (10U * USEC_PER_SEC)
#define HTTP_MAX_OUTPUT_SIZE (64U * 1024U * 1024U)

typedef struct HttpServer HttpServer;

/* Appends the /metrics body to out; called for every GET and HEAD of /metrics. */
typedef int (*HttpMetricsRender)(ByteBuffer *out, size_t max_size, void *userdata);

int http_server_new(HttpServer **ret, sd_event *event, HttpMetricsRender render, void *userdata);
HttpServer *http_server_free(HttpServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpServer *, http_server_free);

void http_server_set_limits(HttpServer *s, unsigned max_connections, uint64_t timeout_usec);

/* Serves on a listening TCP or unix stream socket (socket activation); takes ownership of fd. */
int http_server_listen_fd(HttpServer *s, int fd);
/* Binds and listens on "IPV4:PORT" or "[IPV6]:PORT". */
int http_server_listen_address(HttpServer *s, const char *address);
/* The bound address ("127.0.0.1:9098"), for logs and status. */
const char *http_server_address(HttpServer *s);

/* "127.0.0.1:9098", "[::1]:9098" → socket address; anything else → -EINVAL. */
int http_parse_address(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len);

/* Counters. */
unsigned http_server_connections(HttpServer *s);
uint64_t http_server_scrapes(HttpServer *s);
/* Responses by status code: fills codes/counts (up to n), returns how many codes were seen. */
size_t http_server_responses(HttpServer *s, int *codes, uint64_t *counts, size_t n);
