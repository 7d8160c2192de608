/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "http-request.h"
#include "http-server.h"
#include "log.h"
#include "parse.h"

#define HTTP_MAX_INPUT_SIZE (HTTP_MAX_REQUEST_LINE + HTTP_MAX_HEADER_SIZE + 16U)
#define HTTP_ACCEPT_BATCH 64
#define N_STATUS 12

static const int status_codes[N_STATUS] = { 200, 400, 404, 405, 408, 414, 431, 500, 501, 503, 505, 0 };

typedef struct HttpConnection HttpConnection;

struct HttpServer {
        sd_event *event;
        int listen_fd;
        sd_event_source *listen_source;
        char *address;
        HttpMetricsRender render;
        void *userdata;
        unsigned max_connections;
        uint64_t timeout_usec;
        HttpConnection *connections;    /* doubly linked */
        unsigned n_connections;
        uint64_t scrapes;
        uint64_t responses[N_STATUS];
        ByteBuffer scratch;
};

struct HttpConnection {
        HttpServer *server;
        HttpConnection *prev, *next;
        int fd;
        sd_event_source *io, *timer;
        ByteBuffer in, out;
        bool close_after_write;
        bool read_eof;
};

static uint64_t now_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static void connection_free(HttpConnection *c) {
        HttpServer *s;

        if (!c)
                return;
        s = c->server;
        if (c->prev)
                c->prev->next = c->next;
        else
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        s->n_connections--;
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        byte_buffer_done(&c->in);
        byte_buffer_done(&c->out);
        free(c);
}

static void count_response(HttpServer *s, int code) {
        for (size_t i = 0; i < N_STATUS; i++)
                if (status_codes[i] == code || status_codes[i] == 0) {
                        s->responses[i]++;
                        return;
                }
}

static int queue_response(HttpConnection *c, int code, const char *content_type, const char *extra_headers,
                          const char *body, size_t body_len, bool head_only) {
        char hdr[512];
        int n, r;

        n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "%s%s"
                     "\r\n",
                     code, http_status_reason(code), content_type, body_len, strempty(extra_headers),
                     c->close_after_write ? "Connection: close\r\n" : "");
        if (n < 0 || (size_t) n >= sizeof(hdr))
                return -EINVAL;
        r = byte_buffer_append(&c->out, hdr, (size_t) n, HTTP_MAX_OUTPUT_SIZE);
        if (r >= 0 && !head_only && body_len > 0)
                r = byte_buffer_append(&c->out, body, body_len, HTTP_MAX_OUTPUT_SIZE);
        if (r < 0)
                return r;
        count_response(c->server, code);
        return 0;
}

static int queue_error(HttpConnection *c, int code, const char *extra_headers, bool head_only) {
        char body[128];
        int n = snprintf(body, sizeof(body), "%d %s\n", code, http_status_reason(code));

        return queue_response(c, code, "text/plain; charset=utf-8", extra_headers, body, (size_t) n, head_only);
}

static const char index_page[] =
        "<!DOCTYPE html>\n"
        "<html><head><title>memvisord exporter</title></head>\n"
        "<body><h1>memvisord exporter</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n";

static int handle_request(HttpConnection *c, const HttpRequest *req) {
        HttpServer *s = c->server;
        bool head = req->method == HTTP_HEAD;
        int r;

        if (!req->keep_alive)
                c->close_after_write = true;

        if (streq(req->path, "/metrics")) {
                if (req->method != HTTP_GET && req->method != HTTP_HEAD)
                        return queue_error(c, 405, "Allow: GET, HEAD\r\n", false);
                s->scrapes++;
                byte_buffer_consume(&s->scratch, byte_buffer_size(&s->scratch));
                r = s->render(&s->scratch, HTTP_MAX_OUTPUT_SIZE / 2, s->userdata);
                if (r < 0) {
                        log_warning_errno(r, "Failed to render metrics: %m");
                        c->close_after_write = true;
                        return queue_error(c, 500, NULL, head);
                }
                return queue_response(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
                                      byte_buffer_head(&s->scratch), byte_buffer_size(&s->scratch), head);
        }
        if (streq(req->path, "/")) {
                if (req->method != HTTP_GET && req->method != HTTP_HEAD)
                        return queue_error(c, 405, "Allow: GET, HEAD\r\n", false);
                return queue_response(c, 200, "text/html; charset=utf-8", NULL, index_page, strlen(index_page),
                                      head);
        }
        return queue_error(c, 404, NULL, head);
}

static int connection_arm(HttpConnection *c);

static int connection_process(HttpConnection *c) {
        int r;

        /* Write what is queued. */
        while (byte_buffer_size(&c->out) > 0) {
                ssize_t k = send(c->fd, byte_buffer_head(&c->out), byte_buffer_size(&c->out),
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return connection_arm(c);
                        return -errno;
                }
                byte_buffer_consume(&c->out, (size_t) k);
                if (byte_buffer_size(&c->out) == 0) {
                        if (c->close_after_write) {
                                (void) shutdown(c->fd, SHUT_WR);
                                return -ECONNRESET;
                        }
                        /* A response went out: the client gets a fresh timeout for the next request. */
                        (void) sd_event_source_set_time(c->timer, now_usec() + c->server->timeout_usec);
                }
        }

        /* Parse a complete request if there is one. */
        if (byte_buffer_size(&c->in) > 0) {
                HttpRequest req;

                r = http_request_parse(byte_buffer_head(&c->in), byte_buffer_size(&c->in), &req);
                if (r < 0) {
                        c->close_after_write = true;
                        r = queue_error(c, -r, NULL, false);
                        if (r < 0)
                                return r;
                        byte_buffer_consume(&c->in, byte_buffer_size(&c->in));
                        return connection_process(c);
                }
                if (r > 0) {
                        byte_buffer_consume(&c->in, (size_t) r);
                        r = handle_request(c, &req);
                        if (r < 0)
                                return r;
                        return connection_process(c);
                }
        }

        if (c->read_eof)
                return -ECONNRESET;

        /* Read more. */
        for (;;) {
                /* Read at most up to the input cap: an incomplete head the parser still waits for is shorter
                 * than HTTP_MAX_INPUT_SIZE, so there is always room for a few bytes, and a head at the
                 * limits is answered 414/431 (or served) rather than dropped. */
                size_t room = HTTP_MAX_INPUT_SIZE - byte_buffer_size(&c->in);
                size_t want = MIN((size_t) 4096, room);
                char *p = want > 0 ? byte_buffer_reserve(&c->in, want, HTTP_MAX_INPUT_SIZE) : NULL;
                ssize_t k;

                if (!p)
                        return -ENOBUFS; /* cannot happen: the parser refuses before */
                k = recv(c->fd, p, want, MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return -errno;
                }
                if (k == 0) {
                        c->read_eof = true;
                        /* A half-sent request cannot complete now. */
                        return byte_buffer_size(&c->in) > 0 ? connection_process(c) : -ECONNRESET;
                }
                byte_buffer_commit(&c->in, (size_t) k);
                return connection_process(c);
        }
        return connection_arm(c);
}

static int connection_arm(HttpConnection *c) {
        return sd_event_source_set_io_events(c->io, byte_buffer_size(&c->out) > 0 ? EPOLLOUT : EPOLLIN);
}

static int on_connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        HttpConnection *c = userdata;
        int r;

        if ((revents & (EPOLLERR | EPOLLHUP)) && byte_buffer_size(&c->out) == 0 && !(revents & EPOLLIN)) {
                connection_free(c);
                return 0;
        }
        r = connection_process(c);
        if (r < 0) {
                if (r != -ECONNRESET && r != -EPIPE)
                        log_debug_errno(r, "Exporter connection failed: %m");
                connection_free(c);
        }
        return 0;
}

static int on_connection_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        HttpConnection *c = userdata;

        /* A request that started but did not finish gets a 408; an idle keep-alive connection just closes. A
         * client that does not read its response is dropped. */
        if (byte_buffer_size(&c->in) > 0 && byte_buffer_size(&c->out) == 0) {
                c->close_after_write = true;
                byte_buffer_consume(&c->in, byte_buffer_size(&c->in));
                if (queue_error(c, 408, NULL, false) >= 0 && connection_process(c) >= 0) {
                        /* Give it one more timeout to take the 408. */
                        (void) sd_event_source_set_time(c->timer, now_usec() + c->server->timeout_usec);
                        c->read_eof = true;
                        return 0;
                }
        }
        connection_free(c);
        return 0;
}

static void refuse_connection(HttpServer *s, int fd) {
        static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 24\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
                                   "503 Service Unavailable\n";
        (void) send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        count_response(s, 503);
        safe_close(fd);
}

static int add_connection(HttpServer *s, int fd) {
        HttpConnection *c;
        int r;

        c = calloc(1, sizeof(HttpConnection));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        *c = (HttpConnection) { .server = s, .fd = fd, .next = s->connections };
        if (s->connections)
                s->connections->prev = c;
        s->connections = c;
        s->n_connections++;

        r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, on_connection_io, c);
        if (r >= 0)
                r = sd_event_add_time(s->event, &c->timer, CLOCK_MONOTONIC, now_usec() + s->timeout_usec, 0,
                                      on_connection_timeout, c);
        if (r < 0) {
                connection_free(c);
                return r;
        }
        (void) sd_event_source_set_description(c->io, "exporter-connection");
        (void) sd_event_source_set_description(c->timer, "exporter-timeout");
        return 0;
}

static int on_listen_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        HttpServer *s = userdata;

        for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                int r;

                if (cfd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(errno, "Failed to accept exporter connection, ignoring: %m");
                        break;
                }
                if (s->n_connections >= s->max_connections) {
                        refuse_connection(s, cfd);
                        continue;
                }
                r = add_connection(s, cfd);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up exporter connection, ignoring: %m");
        }
        return 0;
}

int http_server_new(HttpServer **ret, sd_event *event, HttpMetricsRender render, void *userdata) {
        HttpServer *s;

        s = calloc(1, sizeof(HttpServer));
        if (!s)
                return -ENOMEM;
        *s = (HttpServer) {
                .event = sd_event_ref(event),
                .listen_fd = -EBADF,
                .render = render,
                .userdata = userdata,
                .max_connections = HTTP_DEFAULT_MAX_CONNECTIONS,
                .timeout_usec = HTTP_DEFAULT_TIMEOUT_USEC,
        };
        *ret = s;
        return 0;
}

HttpServer *http_server_free(HttpServer *s) {
        if (!s)
                return NULL;
        while (s->connections)
                connection_free(s->connections);
        sd_event_source_disable_unref(s->listen_source);
        safe_close(s->listen_fd);
        sd_event_unref(s->event);
        byte_buffer_done(&s->scratch);
        free(s->address);
        return mfree(s);
}

void http_server_set_limits(HttpServer *s, unsigned max_connections, uint64_t timeout_usec) {
        s->max_connections = max_connections;
        s->timeout_usec = timeout_usec;
}

static int format_address(const struct sockaddr_storage *sa, char **ret) {
        char host[INET6_ADDRSTRLEN];

        if (sa->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
                (void) inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
                return asprintf(ret, "%s:%u", host, ntohs(in->sin_port)) < 0 ? -ENOMEM : 0;
        }
        if (sa->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
                (void) inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
                return asprintf(ret, "[%s]:%u", host, ntohs(in6->sin6_port)) < 0 ? -ENOMEM : 0;
        }
        *ret = strdup("unix");
        return *ret ? 0 : -ENOMEM;
}

int http_server_listen_fd(HttpServer *s, int fd) {
        struct sockaddr_storage sa = {};
        socklen_t l = sizeof(sa);
        int r;

        if (s->listen_source) {
                safe_close(fd);
                return -EBUSY;
        }
        /* Sockets passed in by systemd are blocking: the accept loop needs EAGAIN, not a wait. */
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ||
            getsockname(fd, (struct sockaddr *) &sa, &l) < 0) {
                r = -errno;
                safe_close(fd);
                return r;
        }
        r = sd_event_add_io(s->event, &s->listen_source, fd, EPOLLIN, on_listen_io, s);
        if (r < 0) {
                safe_close(fd);
                return r;
        }
        (void) sd_event_source_set_description(s->listen_source, "exporter-listen");
        s->listen_fd = fd;
        free(s->address);
        s->address = NULL;
        return format_address(&sa, &s->address);
}

int http_parse_address(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len) {
        _cleanup_free_ char *host = NULL;
        const char *colon, *port_s;
        struct sockaddr_storage sa = {};
        unsigned port;

        if (!s)
                return -EINVAL;
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                host = strndup(s + 1, (size_t) (close - s - 1));
                port_s = close + 2;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                host = strndup(s, (size_t) (colon - s));
                port_s = colon + 1;
        }
        if (!host)
                return -ENOMEM;
        if (parse_unsigned(port_s, &port) < 0 || port == 0 || port > 65535)
                return -EINVAL;

        if (s[0] == '[') {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) port);
                if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof(struct sockaddr_in6);
        } else {
                struct sockaddr_in *in = (struct sockaddr_in *) &sa;
                in->sin_family = AF_INET;
                in->sin_port = htons((uint16_t) port);
                if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
                        return -EINVAL;
                *ret_len = sizeof(struct sockaddr_in);
        }
        *ret = sa;
        return 0;
}

int http_server_listen_address(HttpServer *s, const char *address) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_storage sa;
        socklen_t l;
        int r;

        r = http_parse_address(address, &sa, &l);
        if (r < 0)
                return r;
        fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int) { 1 }, sizeof(int));
        if (bind(fd, (struct sockaddr *) &sa, l) < 0)
                return -errno;
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;
        return http_server_listen_fd(s, TAKE_FD(fd));
}

const char *http_server_address(HttpServer *s) {
        return s->address;
}

unsigned http_server_connections(HttpServer *s) {
        return s->n_connections;
}

uint64_t http_server_scrapes(HttpServer *s) {
        return s->scrapes;
}

size_t http_server_responses(HttpServer *s, int *codes, uint64_t *counts, size_t n) {
        size_t k = 0;

        for (size_t i = 0; i < N_STATUS && k < n; i++)
                if (s->responses[i] > 0) {
                        codes[k] = status_codes[i] ?: 599;
                        counts[k] = s->responses[i];
                        k++;
                }
        return k;
}
