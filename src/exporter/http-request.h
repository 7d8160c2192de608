/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A strict, bounded HTTP/1.x request-head parser (RFC 9112), enough for a metrics endpoint. It takes a buffer
 * (what was read so far) and either asks for more, or returns a parsed head with the number of bytes it used,
 * or fails with the HTTP status code to answer:
 *
 *   400  malformed request line or header, a target other than origin-form ("/path?query") or absolute-form
 *        ("http://host:port/path?query", RFC 9112 3.2.2: scheme http, any host, no userinfo), bare LF or CR,
 *        control characters, missing or repeated Host in HTTP/1.1 (also with absolute-form, whose Host
 *        value is ignored), obsolete line folding, a request body (Content-Length > 0 or Transfer-Encoding)
 *   414  request line longer than HTTP_MAX_REQUEST_LINE
 *   431  header section longer than HTTP_MAX_HEADER_SIZE or more than HTTP_MAX_HEADERS fields
 *   501  a method that is a valid token but not one HTTP defines
 *   505  a version other than HTTP/1.0 and HTTP/1.1
 *
 * Methods HTTP defines but the exporter does not serve (POST, PUT, …) parse fine: the server answers 405. */

#include "basic/macro.h"

#define HTTP_MAX_REQUEST_LINE 4096U
#define HTTP_MAX_HEADER_SIZE 8192U      /* all header lines together, without the request line */
#define HTTP_MAX_HEADERS 64U

typedef enum HttpMethod {
        HTTP_GET,
        HTTP_HEAD,
        HTTP_POST,
        HTTP_PUT,
        HTTP_DELETE,
        HTTP_CONNECT,
        HTTP_OPTIONS,
        HTTP_TRACE,
        HTTP_PATCH,
        _HTTP_METHOD_MAX,
        _HTTP_METHOD_INVALID = -EINVAL,
} HttpMethod;

DECLARE_STRING_TABLE(http_method, HttpMethod);

typedef struct HttpRequest {
        HttpMethod method;
        char path[HTTP_MAX_REQUEST_LINE];       /* the target's path, e.g. "/metrics": no scheme, host, query */
        unsigned version_minor;                 /* HTTP/1.<minor> */
        bool keep_alive;                        /* from the version and the Connection header */
        size_t n_headers;
} HttpRequest;

/* Parses the request head at the start of buf (size bytes). Returns 0 when more bytes are needed, > 0 (the
 * length of the head including the empty line) when complete, or a negative HTTP status code (-400, -414,
 * -431, -501, -505) when the request is to be refused. */
int http_request_parse(const char *buf, size_t size, HttpRequest *ret);

const char *http_status_reason(int code);
