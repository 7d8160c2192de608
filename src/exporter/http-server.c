/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "exporter/http-request.h"
#include "exporter/http-server.h"
#include "basic/log.h"
#include "basic/parse.h"

#define HTTP_MAX_INPUT_SIZE (HTTP_MAX_REQUEST_LINE + HTTP_MAX_HEADER_SIZE + 16U)
#define HTTP_ACCEPT_BATCH 64
#define N_STATUS 12

/* Lingering close: after its last response (or a refusal) a connection is half-closed and what the client
 * still sends is read and dropped, so that the kernel does not answer it with a reset that can destroy the
 * response before the client has read it. Bounded in connections, time and bytes. */
#define HTTP_MAX_LINGERING 64U
#define HTTP_LINGER_USEC (2U * USEC_PER_SEC)
#define HTTP_LINGER_MAX_BYTES (64U * 1024U)

static const int status_codes[N_STATUS] = { 200, 400, 404, 405, 408, 414, 431, 500, 501, 503, 505, 0 };

static const char *const http_eviction_table[_HTTP_EVICTION_MAX] = {
        [HTTP_EVICTION_IDLE] = "idle",
        [HTTP_EVICTION_SLOW_REQUEST] = "slow_request",
};

DEFINE_STRING_TABLE(http_eviction, HttpEviction, _HTTP_EVICTION_MAX);

static const char *const http_refusal_table[_HTTP_REFUSAL_MAX] = {
        [HTTP_REFUSAL_MAX_CONNECTIONS] = "max_connections",
        [HTTP_REFUSAL_MAX_CONNECTIONS_PER_ADDRESS] = "max_connections_per_address",
};

DEFINE_STRING_TABLE(http_refusal, HttpRefusal, _HTTP_REFUSAL_MAX);

typedef enum HttpConnectionState {
        HTTP_CONNECTION_REQUEST,        /* waiting for a request head or reading one */
        HTTP_CONNECTION_RESPONSE,       /* writing a response */
        HTTP_CONNECTION_IDLE,           /* kept alive between requests */
        HTTP_CONNECTION_LINGER,         /* answered and half-closed, dropping what the client still sends */
} HttpConnectionState;

/* Who a connection comes from, for MaxConnectionsPerAddress=: the IP address (IPv4-mapped IPv6 addresses as
 * IPv4), or the user ID for a unix socket. Zeroed before being filled in, so that memcmp() compares. */
typedef struct HttpPeer {
        int family;                     /* AF_INET, AF_INET6, AF_UNIX; AF_UNSPEC: unknown, not limited */
        union {
                struct in_addr in;
                struct in6_addr in6;
                uid_t uid;
        };
} HttpPeer;

typedef struct HttpConnection HttpConnection;

struct HttpServer {
        sd_event *event;
        int listen_fd;
        sd_event_source *listen_source;
        char *address;
        HttpMetricsRender render;
        void *userdata;
        unsigned max_connections;
        unsigned max_connections_per_address;
        uint64_t timeout_usec;
        uint64_t header_timeout_usec;
        HttpConnection *connections;    /* doubly linked, newest first; not the lingering ones */
        unsigned n_connections;
        HttpConnection *lingering;      /* doubly linked, newest first */
        unsigned n_lingering;
        uint64_t scrapes;
        uint64_t responses[N_STATUS];
        uint64_t evictions[_HTTP_EVICTION_MAX];
        uint64_t refusals[_HTTP_REFUSAL_MAX];
        ByteBuffer scratch;
};

struct HttpConnection {
        HttpServer *server;
        HttpConnection *prev, *next;
        int fd;
        HttpPeer peer;
        HttpConnectionState state;
        uint64_t since;                 /* CLOCK_MONOTONIC µs: when the state began (a request: its first byte) */
        sd_event_source *io, *timer;
        ByteBuffer in, out;
        size_t lingered;                /* bytes dropped while lingering */
        bool close_after_write;
        bool read_eof;
};

static uint64_t now_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static void connection_unlink(HttpConnection *c) {
        HttpServer *s = c->server;
        bool lingering = c->state == HTTP_CONNECTION_LINGER;

        if (c->prev)
                c->prev->next = c->next;
        else if (lingering)
                s->lingering = c->next;
        else
                s->connections = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        if (lingering)
                s->n_lingering--;
        else
                s->n_connections--;
}

static void connection_link(HttpConnection *c) {
        HttpServer *s = c->server;
        HttpConnection **head = c->state == HTTP_CONNECTION_LINGER ? &s->lingering : &s->connections;

        c->prev = NULL;
        c->next = *head;
        if (*head)
                (*head)->prev = c;
        *head = c;
        if (c->state == HTTP_CONNECTION_LINGER)
                s->n_lingering++;
        else
                s->n_connections++;
}

static void connection_free(HttpConnection *c) {
        if (!c)
                return;
        connection_unlink(c);
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        byte_buffer_done(&c->in);
        byte_buffer_done(&c->out);
        free(c);
}

/* The timer is a one-shot: it is off once it has fired, also when its callback moves the deadline. */
static void connection_set_deadline(HttpConnection *c, uint64_t usec) {
        (void) sd_event_source_set_time(c->timer, usec);
        (void) sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
}

/* Enters a state that is not LINGER (see connection_linger()) and sets its deadline. */
static void connection_set_state(HttpConnection *c, HttpConnectionState state) {
        HttpServer *s = c->server;
        uint64_t now = now_usec(), timeout;

        c->state = state;
        c->since = now;
        /* The request head has its own, shorter deadline; within TimeoutSec= in any case. */
        timeout = state == HTTP_CONNECTION_REQUEST ? MIN(s->header_timeout_usec, s->timeout_usec) : s->timeout_usec;
        connection_set_deadline(c, now + timeout);
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
static void connection_linger(HttpConnection *c);

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
                                if (c->read_eof)        /* nothing more can come: just close */
                                        return -ECONNRESET;
                                connection_linger(c);
                                return 0;
                        }
                        /* A response went out: the next request (perhaps already here, pipelined) gets the
                         * header deadline from now on, an idle connection TimeoutSec=. */
                        connection_set_state(c, byte_buffer_size(&c->in) > 0 ? HTTP_CONNECTION_REQUEST :
                                                                                HTTP_CONNECTION_IDLE);
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
                        connection_set_state(c, HTTP_CONNECTION_RESPONSE);
                        return connection_process(c);
                }
                if (r > 0) {
                        byte_buffer_consume(&c->in, (size_t) r);
                        r = handle_request(c, &req);
                        if (r < 0)
                                return r;
                        connection_set_state(c, HTTP_CONNECTION_RESPONSE);
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
                if (c->state == HTTP_CONNECTION_IDLE)   /* the first byte of the next request */
                        connection_set_state(c, HTTP_CONNECTION_REQUEST);
                return connection_process(c);
        }
        return connection_arm(c);
}

static int connection_arm(HttpConnection *c) {
        return sd_event_source_set_io_events(c->io, byte_buffer_size(&c->out) > 0 ? EPOLLOUT : EPOLLIN);
}

/* Reads and drops what a lingering client sends; returns < 0 when the connection is to be closed now. */
static int connection_drain(HttpConnection *c) {
        char buf[4096];

        for (;;) {
                ssize_t k = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

                if (k < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
                if (k == 0)
                        return -ECONNRESET;     /* the client closed its side: done */
                c->lingered += (size_t) k;
                if (c->lingered > HTTP_LINGER_MAX_BYTES)
                        return -ENOBUFS;
        }
}

static int on_connection_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        HttpConnection *c = userdata;
        int r;

        if (c->state == HTTP_CONNECTION_LINGER) {
                if (connection_drain(c) < 0 || (revents & (EPOLLERR | EPOLLHUP)))
                        connection_free(c);
                return 0;
        }
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

/* Half-closes the connection and moves it to the lingering ones: what the client still sends (the rest of a
 * request it was sending when it was answered, a pipelined one) is read and dropped until it closes its
 * side, for at most HTTP_LINGER_USEC and HTTP_LINGER_MAX_BYTES. The oldest lingering connection is closed
 * outright when there are too many. The connection no longer counts against MaxConnections=. */
static void connection_linger(HttpConnection *c) {
        HttpServer *s = c->server;
        uint64_t now = now_usec();

        (void) shutdown(c->fd, SHUT_WR);
        connection_unlink(c);
        c->state = HTTP_CONNECTION_LINGER;
        c->since = now;
        connection_link(c);
        byte_buffer_done(&c->in);
        byte_buffer_done(&c->out);
        (void) sd_event_source_set_io_events(c->io, EPOLLIN);
        connection_set_deadline(c, now + MIN((uint64_t) HTTP_LINGER_USEC, s->timeout_usec));

        if (s->n_lingering > HTTP_MAX_LINGERING) {
                HttpConnection *oldest = s->lingering;

                while (oldest->next)
                        oldest = oldest->next;
                connection_free(oldest);
        }
}

static int on_connection_timeout(sd_event_source *source, uint64_t usec, void *userdata) {
        HttpConnection *c = userdata;

        /* A request that started but did not finish gets a 408, given one more TimeoutSec= to be read; an
         * idle keep-alive connection, or one that never sent anything, just closes. So does a client that
         * does not read its response, and a lingering one. */
        if (c->state == HTTP_CONNECTION_REQUEST && byte_buffer_size(&c->in) > 0 &&
            byte_buffer_size(&c->out) == 0) {
                c->close_after_write = true;
                byte_buffer_consume(&c->in, byte_buffer_size(&c->in));
                if (queue_error(c, 408, NULL, false) >= 0) {
                        connection_set_state(c, HTTP_CONNECTION_RESPONSE);
                        if (connection_process(c) >= 0)
                                return 0;
                }
        }
        connection_free(c);
        return 0;
}

/* Sends a short answer on a connection that is being closed, without queueing: the socket's buffer has room
 * for it unless the client stopped reading, and then it does not matter. */
static void send_final(HttpServer *s, int fd, int code) {
        char buf[256];
        int n;

        n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n%s\r\n%d %s\n",
                     code, http_status_reason(code), strlen(http_status_reason(code)) + 5,
                     code == 503 ? "Retry-After: 1\r\n" : "", code, http_status_reason(code));
        if (n > 0 && (size_t) n < sizeof(buf))
                (void) send(fd, buf, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL);
        count_response(s, code);
}

/* Closes an idle connection, or one still sending its request head, to make room for a new one. */
static void connection_evict(HttpConnection *c) {
        HttpServer *s = c->server;

        if (c->state == HTTP_CONNECTION_REQUEST) {
                s->evictions[HTTP_EVICTION_SLOW_REQUEST]++;
                send_final(s, c->fd, 408);
        } else
                s->evictions[HTTP_EVICTION_IDLE]++;
        connection_linger(c);
}

static bool peer_limited(const HttpPeer *p) {
        return p->family != AF_UNSPEC;
}

static bool peer_equal(const HttpPeer *a, const HttpPeer *b) {
        return memcmp(a, b, sizeof(HttpPeer)) == 0;
}

static void peer_from_socket(int fd, const struct sockaddr_storage *sa, socklen_t l, HttpPeer *ret) {
        HttpPeer p;

        memset(&p, 0, sizeof(p));
        p.family = AF_UNSPEC;
        if (sa->ss_family == AF_INET && l >= sizeof(struct sockaddr_in)) {
                p.family = AF_INET;
                p.in = ((const struct sockaddr_in *) sa)->sin_addr;
        } else if (sa->ss_family == AF_INET6 && l >= sizeof(struct sockaddr_in6)) {
                const struct in6_addr *a = &((const struct sockaddr_in6 *) sa)->sin6_addr;

                if (IN6_IS_ADDR_V4MAPPED(a)) {
                        p.family = AF_INET;
                        memcpy(&p.in, a->s6_addr + 12, sizeof(p.in));
                } else {
                        p.family = AF_INET6;
                        p.in6 = *a;
                }
        } else if (sa->ss_family == AF_UNIX) {
                struct ucred cred;
                socklen_t cl = sizeof(cred);

                if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) >= 0) {
                        p.family = AF_UNIX;
                        p.uid = cred.uid;
                }
        }
        *ret = p;
}

/* The connection to close to make room, among those of peer (all if NULL): the idle keep-alive connection
 * idle for longest, else the one that has been sending its request head for longest. Connections writing
 * a response are doing what they are there for and are not taken. */
static HttpConnection *pick_victim(HttpServer *s, const HttpPeer *peer) {
        HttpConnection *best = NULL;

        for (HttpConnection *c = s->connections; c; c = c->next) {
                if (c->state != HTTP_CONNECTION_IDLE && c->state != HTTP_CONNECTION_REQUEST)
                        continue;
                if (peer && !peer_equal(&c->peer, peer))
                        continue;
                if (!best || (c->state == HTTP_CONNECTION_IDLE && best->state != HTTP_CONNECTION_IDLE) ||
                    (c->state == best->state && c->since <= best->since))
                        best = c;
        }
        return best;
}

/* Makes room for a new connection from peer. Returns 0 if there was room, 1 if connections were closed to
 * make it, or -EBUSY with the limit in *ret_refusal if every connection in the way is writing a response. */
static int make_room(HttpServer *s, const HttpPeer *peer, HttpRefusal *ret_refusal) {
        int evicted = 0;

        for (;;) {
                const HttpPeer *scope = NULL;
                HttpRefusal limit = HTTP_REFUSAL_MAX_CONNECTIONS;
                HttpConnectionState state;
                HttpConnection *v;
                unsigned same = 0;
                uint64_t since;
                int r;

                if (peer_limited(peer))
                        for (HttpConnection *c = s->connections; c; c = c->next)
                                same += peer_equal(&c->peer, peer);
                if (same >= s->max_connections_per_address) {
                        scope = peer;
                        limit = HTTP_REFUSAL_MAX_CONNECTIONS_PER_ADDRESS;
                } else if (s->n_connections < s->max_connections)
                        return evicted;

                v = pick_victim(s, scope);
                if (!v) {
                        *ret_refusal = limit;
                        return -EBUSY;
                }
                /* Read what the victim sent first: a request that is already here is served, not cut off
                 * (a client whose request was still in flight when it was accepted, or a keep-alive client
                 * that just sent its next one). Every round serves a request or closes a connection. */
                state = v->state;
                since = v->since;
                r = connection_process(v);
                if (r < 0) {
                        connection_free(v);
                        continue;
                }
                if (v->state != state || v->since != since)
                        continue;
                connection_evict(v);
                evicted = 1;
        }
}

/* A new connection there is no room for: answered 503 at once, then it lingers (connection_linger()), so that
 * the client reads the 503 rather than a reset when its request arrives after the answer. */
static void refuse_connection(HttpServer *s, int fd, HttpRefusal limit) {
        HttpConnection *c;
        int r;

        s->refusals[limit]++;
        send_final(s, fd, 503);

        c = calloc(1, sizeof(HttpConnection));
        if (!c) {
                safe_close(fd);
                return;
        }
        *c = (HttpConnection) { .server = s, .fd = fd, .state = HTTP_CONNECTION_REQUEST };
        connection_link(c);
        r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, on_connection_io, c);
        if (r >= 0)
                r = sd_event_add_time(s->event, &c->timer, CLOCK_MONOTONIC, now_usec() + s->timeout_usec, 0,
                                      on_connection_timeout, c);
        if (r < 0) {
                connection_free(c);
                return;
        }
        (void) sd_event_source_set_description(c->io, "exporter-refused");
        (void) sd_event_source_set_description(c->timer, "exporter-linger");
        connection_linger(c);
}

static int add_connection(HttpServer *s, int fd, const HttpPeer *peer) {
        HttpConnection *c;
        int r;

        c = calloc(1, sizeof(HttpConnection));
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        *c = (HttpConnection) { .server = s, .fd = fd, .peer = *peer, .state = HTTP_CONNECTION_REQUEST };
        connection_link(c);

        r = sd_event_add_io(s->event, &c->io, fd, EPOLLIN, on_connection_io, c);
        if (r >= 0)
                r = sd_event_add_time(s->event, &c->timer, CLOCK_MONOTONIC, 0, 0, on_connection_timeout, c);
        if (r < 0) {
                connection_free(c);
                return r;
        }
        (void) sd_event_source_set_description(c->io, "exporter-connection");
        (void) sd_event_source_set_description(c->timer, "exporter-timeout");
        connection_set_state(c, HTTP_CONNECTION_REQUEST);
        return 0;
}

static int on_listen_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        HttpServer *s = userdata;

        for (int i = 0; i < HTTP_ACCEPT_BATCH; i++) {
                struct sockaddr_storage sa;
                socklen_t l = sizeof(sa);
                HttpRefusal limit;
                HttpPeer peer;
                int cfd, evicted, r;

                cfd = accept4(fd, (struct sockaddr *) &sa, &l, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                                log_warning_errno(errno, "Failed to accept exporter connection, ignoring: %m");
                        break;
                }
                peer_from_socket(cfd, &sa, l, &peer);
                evicted = make_room(s, &peer, &limit);
                if (evicted < 0) {
                        refuse_connection(s, cfd, limit);
                        continue;
                }
                r = add_connection(s, cfd, &peer);
                if (r < 0)
                        log_warning_errno(r, "Failed to set up exporter connection, ignoring: %m");
                /* Closing connections to make room is the last resort: once per event loop iteration, so that
                 * the requests of the connections just accepted are read before more come in (the listening
                 * socket has a lower priority than the connections). */
                if (evicted > 0)
                        break;
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
                .max_connections_per_address = HTTP_DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
                .timeout_usec = HTTP_DEFAULT_TIMEOUT_USEC,
                .header_timeout_usec = HTTP_DEFAULT_HEADER_TIMEOUT_USEC,
        };
        *ret = s;
        return 0;
}

HttpServer *http_server_free(HttpServer *s) {
        if (!s)
                return NULL;
        while (s->connections)
                connection_free(s->connections);
        while (s->lingering)
                connection_free(s->lingering);
        sd_event_source_disable_unref(s->listen_source);
        safe_close(s->listen_fd);
        sd_event_unref(s->event);
        byte_buffer_done(&s->scratch);
        free(s->address);
        return mfree(s);
}

void http_server_set_limits(HttpServer *s, const HttpServerLimits *limits) {
        s->max_connections = MAX(limits->max_connections, 1U);
        s->max_connections_per_address = MAX(limits->max_connections_per_address, 1U);
        s->timeout_usec = limits->timeout_usec;
        s->header_timeout_usec = limits->header_timeout_usec;
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
        /* After the connections: their requests are read before more connections are taken (make_room()). */
        r = sd_event_source_set_priority(s->listen_source, SD_EVENT_PRIORITY_NORMAL + 1);
        if (r < 0) {
                s->listen_source = sd_event_source_disable_unref(s->listen_source);
                safe_close(fd);
                return r;
        }
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

uint64_t http_server_evictions(HttpServer *s, HttpEviction e) {
        return e >= 0 && e < _HTTP_EVICTION_MAX ? s->evictions[e] : 0;
}

uint64_t http_server_refusals(HttpServer *s, HttpRefusal r) {
        return r >= 0 && r < _HTTP_REFUSAL_MAX ? s->refusals[r] : 0;
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
