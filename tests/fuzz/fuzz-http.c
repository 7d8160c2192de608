/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The exporter's HTTP side, twice:
 *
 *  1. http_request_parse() on the input and on prefixes of it. Besides the sanitizers it checks the parser's
 *     contract: a result is 0 (more bytes needed, only while the head can still fit the limits), the length of
 *     a head ending in an empty line, or one of the documented status codes; a parsed head has a known method,
 *     an origin-form path, HTTP/1.0 or 1.1, at most HTTP_MAX_HEADERS fields; and every prefix of a head that
 *     parses asks for more bytes instead of refusing it — the server parses whatever has arrived so far.
 *
 *  2. The input as a client byte stream into an HttpServer connection (over an abstract AF_UNIX listening
 *     socket, so the accept path runs too), in chunks of varying size with the event loop run in between, so
 *     partial reads and pipelining are exercised. What a client would see is checked: a sequence of
 *     well-formed HTTP/1.1 responses with a known status and a Content-Length that matches the body, and the
 *     server closes the connection only after a response saying "Connection: close", or after the client's
 *     end of input. */

#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "basic/buffer.h"
#include "fuzz.h"
#include "exporter/http-request.h"
#include "exporter/http-server.h"
#include "basic/log.h"

#define INPUT_MAX (64U * 1024U)

static const char metrics_body[] = "# HELP fuzz_metric A metric.\n# TYPE fuzz_metric gauge\nfuzz_metric 1\n";

static bool is_status(int code) {
        static const int known[] = { 400, 414, 431, 501, 505 };

        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                if (code == known[i])
                        return true;
        return false;
}

/* ---- the parser on its own ----------------------------------------------------------------------- */

static int parse_checked(const uint8_t *data, size_t size) {
        HttpRequest req;
        int r;

        r = http_request_parse((const char *) data, size, &req);
        if (r < 0) {
                if (!is_status(-r)) {
                        fprintf(stderr, "Unexpected result %d\n", r);
                        abort();
                }
                return r;
        }
        if (r == 0) {
                /* Waiting for more is only fine while a head within the limits can still come. */
                if (size > HTTP_MAX_REQUEST_LINE + 2 + HTTP_MAX_HEADER_SIZE) {
                        fprintf(stderr, "Still waiting after %zu bytes\n", size);
                        abort();
                }
                return 0;
        }

        if ((size_t) r > size || r < 4 || memcmp(data + r - 4, "\r\n\r\n", 4) != 0)
                abort();
        if (req.method < 0 || req.method >= _HTTP_METHOD_MAX || !http_method_to_string(req.method))
                abort();
        if (req.path[0] != '/' || strnlen(req.path, sizeof(req.path)) >= sizeof(req.path) ||
            strchr(req.path, '?') || strchr(req.path, ' '))
                abort();
        if (req.version_minor > 1 || req.n_headers > HTTP_MAX_HEADERS)
                abort();
        return r;
}

static void fuzz_parser(const uint8_t *data, size_t size) {
        static const size_t steps[] = { 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377 };
        int full;

        full = parse_checked(data, size);
        if (full <= 0)
                return;

        /* The prefixes a server may see on the way: none may be refused, none may look complete. */
        for (size_t n = 0, i = 0; n < (size_t) full; n += steps[i++ % ELEMENTSOF(steps)]) {
                int r = parse_checked(data, n);
                if (r != 0) {
                        fprintf(stderr, "Prefix of %zu bytes of a %d-byte head gave %d\n", n, full, r);
                        abort();
                }
        }
        if (parse_checked(data, (size_t) full - 1) != 0)
                abort();
        /* What follows the head does not change it. */
        if (parse_checked(data, (size_t) full) != full)
                abort();
}

/* ---- the server ---------------------------------------------------------------------------------- */

static int render(ByteBuffer *out, size_t max_size, void *userdata) {
        return byte_buffer_append(out, metrics_body, sizeof(metrics_body) - 1, max_size);
}

/* Reads what the server sent; returns false on EOF. */
static bool drain(int fd, ByteBuffer *in) {
        for (;;) {
                int r = fuzz_recv(fd, in);

                if (r <= 0)
                        return r == 0;
        }
}

static const char *find_crlf2(const char *p, const char *end) {
        for (; p + 4 <= end; p++)
                if (memcmp(p, "\r\n\r\n", 4) == 0)
                        return p;
        return NULL;
}

/* Checks the whole response stream. Responses to HEAD carry no body: the next response (or the end)
 * follows the head directly, and no body the server sends starts with "HTTP/". Returns whether the last
 * response said "Connection: close". */
static bool check_responses(const char *p, size_t size, unsigned *ret_n) {
        const char *end = p + size;
        bool close = false;
        unsigned n = 0;

        while (p < end) {
                const char *head_end = find_crlf2(p, end), *body;
                size_t content_length = SIZE_MAX;
                unsigned code = 0;
                char line[128] = {}, reason[64];

                if (head_end)   /* the status line, NUL-terminated for sscanf() */
                        memcpy(line, p, MIN((size_t) (head_end - p), sizeof(line) - 1));
                if (!head_end || sscanf(line, "HTTP/1.1 %3u %63[^\r]", &code, reason) != 2 ||
                    !streq(reason, http_status_reason((int) code)) || (code != 200 && code != 404 && code != 405 &&
                    code != 408 && code != 503 && !is_status((int) code))) {
                        fprintf(stderr, "Malformed response: %.*s\n", (int) MIN((size_t) (end - p), 200U), p);
                        abort();
                }
                close = false;
                for (const char *l = (const char *) memchr(p, '\n', (size_t) (head_end - p)) + 1; l < head_end + 2;) {
                        const char *le = memchr(l, '\r', (size_t) (head_end + 2 - l));
                        size_t ll = (size_t) (le - l);

                        if (ll > 16 && strncasecmp(l, "Content-Length: ", 16) == 0)
                                content_length = strtoul(l + 16, NULL, 10);
                        else if (ll == 17 && strncasecmp(l, "Connection: close", 17) == 0)
                                close = true;
                        l = le + 2;
                }
                if (content_length == SIZE_MAX)
                        abort();
                body = head_end + 4;
                if (body == end || ((size_t) (end - body) >= 5 && memcmp(body, "HTTP/", 5) == 0))
                        p = body;       /* HEAD */
                else {
                        if ((size_t) (end - body) < content_length) {
                                fprintf(stderr, "Truncated body: %zu of %zu bytes\n", (size_t) (end - body),
                                        content_length);
                                abort();
                        }
                        if (code == 200 && body[0] == '#' &&
                            (content_length != sizeof(metrics_body) - 1 || memcmp(body, metrics_body, content_length) != 0))
                                abort();
                        p = body + content_length;
                }
                n++;
        }
        *ret_n = n;
        return close;
}

static int listen_abstract(struct sockaddr_un *ret_sa, socklen_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        sa_family_t family = AF_UNIX;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* Binding just the family autobinds a unique abstract address. */
        if (bind(fd, (const struct sockaddr *) &family, sizeof(family)) < 0 || listen(fd, 4) < 0)
                return -errno;
        *ret_len = sizeof(*ret_sa);
        if (getsockname(fd, (struct sockaddr *) ret_sa, ret_len) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static void fuzz_server(const uint8_t *data, size_t size) {
        _cleanup_(http_server_freep) HttpServer *s = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa;
        socklen_t sl;
        sd_event *e = NULL;
        ByteBuffer in = {};
        bool open = true, eof_before_end = false;
        unsigned n_responses;
        size_t off = 0;
        int lfd;

        if (sd_event_new(&e) < 0 || http_server_new(&s, e, render, NULL) < 0)
                abort();
        http_server_set_limits(s, &(HttpServerLimits) {
                .max_connections = 4,
                .max_connections_per_address = 2,
                .timeout_usec = HTTP_DEFAULT_TIMEOUT_USEC,
                .header_timeout_usec = HTTP_DEFAULT_HEADER_TIMEOUT_USEC,
        });
        lfd = listen_abstract(&sa, &sl);
        if (lfd < 0 || http_server_listen_fd(s, lfd) < 0)
                abort();

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sl) < 0)
                abort();
        fuzz_run_until_idle(e);
        if (http_server_connections(s) != 1)
                abort();

        for (size_t i = 0; open && off < size; i++) {
                if (!fuzz_send_chunk(fd, data, size, &off, i))
                        break; /* the server hung up on us */

                fuzz_run_until_idle(e);
                open = drain(fd, &in);
        }
        eof_before_end = !open;

        /* End of input: half-close, let the server finish, collect the rest. */
        (void) shutdown(fd, SHUT_WR);
        for (unsigned i = 0; open && i < 64; i++) {
                fuzz_run_until_idle(e);
                open = drain(fd, &in);
        }
        if (open) {
                fprintf(stderr, "Connection still open after the client's EOF.\n");
                abort();
        }
        if (http_server_connections(s) != 0)
                abort();

        if (!check_responses(byte_buffer_head(&in) ?: "", byte_buffer_size(&in), &n_responses) &&
            eof_before_end) {
                fprintf(stderr, "The server closed the connection after %u responses, %zu of %zu bytes sent, "
                        "without saying \"Connection: close\".\n", n_responses, off, size);
                abort();
        }

        s = http_server_free(s);
        sd_event_unref(e);
        byte_buffer_done(&in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > INPUT_MAX)
                return 0;
        fuzz_setup_logging();

        fuzz_parser(data, size);
        fuzz_server(data, size);
        return 0;
}
