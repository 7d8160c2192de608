/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The varlink server: its interfaces (org.varlink.service built in), listening sockets and connection limits,
 * and the dispatch of each call to its method (authorization, parameter checks, the internal error of a
 * failing handler). One connection's I/O and framing is varlink-connection.c. */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "varlink/address.h"
#include "basic/buffer.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/utf8.h"
#include "varlink/varlink-idl.h"
#include "varlink/varlink-internal.h"

#define ACCEPT_BUDGET 64U

/* ---- org.varlink.service ---------------------------------------------------------------------- */

static int service_get_info(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        VarlinkServer *s = c->server;
        _cleanup_json_ json_object *reply = NULL, *ifaces = NULL;
        int r;

        ifaces = json_object_new_array();
        reply = json_object_new_object();
        if (!ifaces || !reply)
                return -ENOMEM;

        for (size_t i = 0; i < s->n_interfaces; i++)
                if (json_object_array_add(ifaces, json_object_new_string(s->interfaces[i]->name)) < 0)
                        return -ENOMEM;

        if ((r = json_add_string(reply, "vendor", s->vendor)) < 0 ||
            (r = json_add_string(reply, "product", s->product)) < 0 ||
            (r = json_add_string(reply, "version", s->version)) < 0 ||
            (r = json_add_string(reply, "url", s->url)) < 0 ||
            (r = json_add(reply, "interfaces", TAKE_PTR(ifaces))) < 0)
                return r;

        return varlink_reply(c, TAKE_PTR(reply));
}

static const VarlinkInterface *server_find_interface(VarlinkServer *s, const char *name, size_t len) {
        for (size_t i = 0; i < s->n_interfaces; i++)
                if (strlen(s->interfaces[i]->name) == len && strncmp(s->interfaces[i]->name, name, len) == 0)
                        return s->interfaces[i];
        return NULL;
}

static int service_get_interface_description(VarlinkConnection *c, json_object *parameters,
                                             VarlinkCallFlags flags, void *userdata) {
        const char *name = json_get_string(parameters, "interface");
        const VarlinkInterface *iface;
        _cleanup_json_ json_object *reply = NULL;
        int r;

        iface = server_find_interface(c->server, name, strlen(name));
        if (!iface) {
                reply = json_object_new_object();
                if (!reply || (r = json_add_string(reply, "interface", name)) < 0)
                        return -ENOMEM;
                return varlink_error(c, VARLINK_ERROR_INTERFACE_NOT_FOUND, TAKE_PTR(reply));
        }

        reply = json_object_new_object();
        if (!reply || (r = json_add_string(reply, "description", iface->description)) < 0)
                return -ENOMEM;
        return varlink_reply(c, TAKE_PTR(reply));
}

static const VarlinkInterface service_interface = {
        .name = "org.varlink.service",
        .description = varlink_idl_org_varlink_service,
        .methods = (const VarlinkMethod[]) {
                { "GetInfo", service_get_info, (const VarlinkField[]) { { NULL } }, 0 },
                { "GetInterfaceDescription", service_get_interface_description,
                  (const VarlinkField[]) { { "interface", VARLINK_STRING, 0 }, { NULL } }, 0 },
                { NULL },
        },
};

/* ---- output quotas ---------------------------------------------------------------------------- */

/* Reply bytes queued for every connection of uid. */
static size_t server_output_of_uid(VarlinkServer *s, uid_t uid) {
        size_t sum = 0;

        for (VarlinkConnection *c = s->connections; c; c = c->next)
                if (c->ucred.uid == uid)
                        sum += c->accounted;
        return sum;
}

/* Uids that have replies queued. */
static unsigned server_uids_with_output(VarlinkServer *s) {
        unsigned n = 0;

        for (VarlinkConnection *c = s->connections; c; c = c->next) {
                bool seen = false;

                if (c->accounted == 0)
                        continue;
                for (VarlinkConnection *d = s->connections; d != c; d = d->next)
                        if (d->accounted > 0 && d->ucred.uid == c->ucred.uid) {
                                seen = true;
                                break;
                        }
                n += !seen;
        }
        return n;
}

bool varlink_server_quota_allows(VarlinkServer *s, VarlinkConnection *c) {
        size_t mine;
        bool allowed;

        /* Fast path: nobody's share can be over the per-uid quota while all of them together are not. */
        if (s->output_total <= s->limits.max_output_per_uid)
                allowed = true;
        else {
                mine = server_output_of_uid(s, c->ucred.uid);
                allowed = mine <= s->limits.max_output_per_uid;
                /* Over the total, only uids holding less than an even share may go on: one uid's unread replies
                 * never hold off the others. */
                if (allowed && s->output_total > s->limits.max_output_total)
                        allowed = mine < s->limits.max_output_total / MAX(server_uids_with_output(s), 1U);
        }

        if (!allowed && !c->quota_blocked) {
                c->quota_blocked = true;
                s->n_quota_blocked++;
        }
        return allowed;
}

static int server_quota_release(sd_event_source *source, void *userdata) {
        VarlinkServer *s = userdata;
        VarlinkConnection *next;

        /* Let every waiting connection try again; those still over the quota mark themselves anew. One whose
         * peer has gone meanwhile (its hangup not seen yet: a waiting connection is not read) is closed
         * instead of running a call nobody will read the reply of. */
        for (VarlinkConnection *c = s->connections; c; c = next) {
                struct pollfd p = { .fd = c->fd, .events = POLLIN };

                next = c->next;
                if (!c->quota_blocked)
                        continue;
                c->quota_blocked = false;
                s->n_quota_blocked--;
                if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR))) {
                        log_debug("Varlink client pid %i uid %u went away while its call waited for the output "
                                  "quota.", (int) c->ucred.pid, (unsigned) c->ucred.uid);
                        varlink_connection_close(c);
                        continue;
                }
                (void) varlink_connection_schedule(c);
        }
        return 0;
}

void varlink_server_account_output(VarlinkServer *s, VarlinkConnection *c) {
        size_t now = c->closed ? 0 : byte_buffer_size(&c->output);

        if (now < c->accounted) {
                s->output_total -= c->accounted - now;
                if (s->n_quota_blocked > 0)
                        (void) sd_event_source_set_enabled(s->quota_source, SD_EVENT_ONESHOT);
        } else
                s->output_total += now - c->accounted;
        c->accounted = now;
        if (c->closed && c->quota_blocked) {
                c->quota_blocked = false;
                s->n_quota_blocked--;
        }
}

size_t varlink_server_output_queued(VarlinkServer *s) {
        return s->output_total;
}

/* ---- server ----------------------------------------------------------------------------------- */

int varlink_server_new(VarlinkServer **ret, sd_event *event, const char *vendor, const char *product,
                       const char *version, const char *url) {
        _cleanup_(varlink_server_freep) VarlinkServer *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;

        s->event = sd_event_ref(event);
        s->privileged_gid = (gid_t) -1;
        s->limits = VARLINK_SERVER_LIMITS_DEFAULT;
        s->vendor = strdup(vendor);
        s->product = strdup(product);
        s->version = strdup(version);
        s->url = strdup(url);
        if (!s->vendor || !s->product || !s->version || !s->url)
                return -ENOMEM;

        r = varlink_server_set_limits(s, &s->limits);
        if (r < 0)
                return r;

        /* Lets the calls waiting for the output quotas go on once replies were read (or the limits grew). */
        r = sd_event_add_defer(event, &s->quota_source, server_quota_release, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(s->quota_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(s->quota_source, "varlink-quota");

        r = varlink_server_add_interface(s, &service_interface);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

VarlinkServer *varlink_server_free(VarlinkServer *s) {
        if (!s)
                return NULL;

        varlink_server_shutdown(s);
        s->quota_source = sd_event_source_disable_unref(s->quota_source);
        if (s->tokener)
                json_tokener_free(s->tokener);
        free(s->vendor);
        free(s->product);
        free(s->version);
        free(s->url);
        free(s->internal_error);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

void varlink_server_set_userdata(VarlinkServer *s, void *userdata) {
        s->userdata = userdata;
}

int varlink_server_set_internal_error(VarlinkServer *s, const char *error) {
        _cleanup_free_ char *copy = NULL;

        if (error) {
                /* Sent as is (connection_send() checks the same): letters, digits, dots and '_'. */
                if (strlen(error) > 200 ||
                    strspn(error, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._") != strlen(error) ||
                    !strchr(error, '.'))
                        return -EINVAL;
                copy = strdup(error);
                if (!copy)
                        return -ENOMEM;
        }
        free(s->internal_error);
        s->internal_error = TAKE_PTR(copy);
        return 0;
}

int varlink_server_add_interface(VarlinkServer *s, const VarlinkInterface *iface) {
        if (s->n_interfaces >= MAX_INTERFACES)
                return -E2BIG;
        if (server_find_interface(s, iface->name, strlen(iface->name)))
                return -EEXIST;
        s->interfaces[s->n_interfaces++] = iface;
        return 0;
}

int varlink_server_set_limits(VarlinkServer *s, const VarlinkServerLimits *l) {
        VarlinkServerLimits copy = *l, *limits = &copy;
        json_tokener *t;

        if (limits->max_output_per_uid == 0)
                limits->max_output_per_uid = VARLINK_DEFAULT_MAX_OUTPUT_PER_UID;
        if (limits->max_output_total == 0)
                limits->max_output_total = MAX(limits->max_output_per_uid, (size_t) VARLINK_DEFAULT_MAX_OUTPUT_TOTAL);
        if (limits->max_message_size < 64 || limits->max_output_size < 64 || limits->max_output_per_uid < 64 ||
            limits->max_output_total < limits->max_output_per_uid || limits->max_connections < 1 ||
            limits->max_connections_per_uid < 1 || limits->max_json_depth < 2 || limits->max_json_depth > 10000)
                return -EINVAL;

        t = json_tokener_new_ex((int) limits->max_json_depth + 1);
        if (!t)
                return -ENOMEM;
        json_tokener_set_flags(t, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);

        if (s->tokener)
                json_tokener_free(s->tokener);
        s->tokener = t;
        memcpy(&s->limits, l, sizeof(s->limits));      /* as given, padding included (callers compare) */
        s->limits.max_output_per_uid = limits->max_output_per_uid;
        s->limits.max_output_total = limits->max_output_total;
        /* new quotas: whoever waits tries again */
        if (s->n_quota_blocked > 0 && s->quota_source)
                (void) sd_event_source_set_enabled(s->quota_source, SD_EVENT_ONESHOT);
        return 0;
}

const VarlinkServerLimits *varlink_server_get_limits(VarlinkServer *s) {
        return &s->limits;
}

void varlink_server_set_privileged_gid(VarlinkServer *s, gid_t gid) {
        s->privileged_gid = gid;
}

unsigned varlink_server_connection_count(VarlinkServer *s) {
        return s->n_connections;
}

uint64_t varlink_server_calls_total(VarlinkServer *s) {
        return s->calls_total;
}

uint64_t varlink_server_connections_total(VarlinkServer *s) {
        return s->connections_total;
}

uint64_t varlink_server_connections_rejected(VarlinkServer *s) {
        return s->connections_rejected;
}

uint64_t varlink_server_protocol_errors(VarlinkServer *s) {
        return s->protocol_errors;
}

static unsigned server_count_uid(VarlinkServer *s, uid_t uid) {
        unsigned n = 0;

        for (VarlinkConnection *c = s->connections; c; c = c->next)
                if (c->ucred.uid == uid)
                        n++;
        return n;
}

/* At most one "refusing" message per 10 s, so a flood of connections cannot flood the journal. */
static bool server_reject_log_ok(VarlinkServer *s) {
        uint64_t now = 0;

        (void) sd_event_now(s->event, CLOCK_MONOTONIC, &now);
        if (s->reject_log_usec != 0 && now < s->reject_log_usec + 10 * USEC_PER_SEC) {
                s->reject_log_suppressed++;
                return false;
        }
        s->reject_log_usec = now;
        return true;
}

static const char *server_reject_log_suffix(VarlinkServer *s) {
        static char buf[64];

        if (s->reject_log_suppressed == 0)
                return "";
        snprintf(buf, sizeof(buf), " (%u similar messages suppressed)", s->reject_log_suppressed);
        s->reject_log_suppressed = 0;
        return buf;
}

int varlink_server_add_connection(VarlinkServer *s, int fd) {
        _cleanup_close_ int cfd = fd;
        struct ucred ucred;
        socklen_t l = sizeof(ucred);
        int r, flags;

        flags = fcntl(cfd, F_GETFL);
        if (flags < 0 || fcntl(cfd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;

        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &ucred, &l) < 0)
                return log_debug_errno(errno, "Failed to get peer credentials, closing connection: %m");

        if (s->n_connections >= s->limits.max_connections) {
                s->connections_rejected++;
                if (server_reject_log_ok(s))
                        log_warning("Too many varlink connections (limit %u), refusing one from uid %u%s.",
                                    s->limits.max_connections, (unsigned) ucred.uid, server_reject_log_suffix(s));
                return -EUSERS;
        }
        if (server_count_uid(s, ucred.uid) >= s->limits.max_connections_per_uid) {
                s->connections_rejected++;
                if (server_reject_log_ok(s))
                        log_warning("Too many varlink connections from uid %u (limit %u), refusing one%s.",
                                    (unsigned) ucred.uid, s->limits.max_connections_per_uid,
                                    server_reject_log_suffix(s));
                return -EDQUOT;
        }

        r = varlink_connection_new(s, cfd, &ucred);
        if (r < 0)
                return r;
        TAKE_FD(cfd);
        return 0;
}

static int server_accept(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        VarlinkServer *s = userdata;

        for (unsigned i = 0; i < ACCEPT_BUDGET; i++) {
                _cleanup_close_ int cfd = -EBADF;
                int r;

                cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EAGAIN)
                                return 0;
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        /* EMFILE and friends: try again on the next wakeup. */
                        log_warning_errno(errno, "Failed to accept varlink connection, ignoring: %m");
                        return 0;
                }

                r = varlink_server_add_connection(s, TAKE_FD(cfd));
                if (r < 0 && r != -EDQUOT && r != -EUSERS)
                        log_warning_errno(r, "Failed to set up varlink connection, ignoring: %m");
        }
        return 0;
}

int varlink_server_listen_fd(VarlinkServer *s, int fd) {
        _cleanup_close_ int owned = fd;
        ListenSocket *l;
        int r, flags;

        if (s->n_listen >= MAX_LISTEN_FDS)
                return -E2BIG;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;

        l = &s->listen[s->n_listen];
        r = sd_event_add_io(s->event, &l->source, fd, EPOLLIN, server_accept, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(l->source, "varlink-listen");
        l->fd = TAKE_FD(owned);
        s->n_listen++;
        return 0;
}

/* A socket file with nobody listening behind it is stale; one that accepts connections is live. */
static int socket_path_is_live(const struct sockaddr_un *sa, socklen_t salen) {
        _cleanup_close_ int fd = -EBADF;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, salen) < 0) {
                if (errno == ECONNREFUSED || errno == ENOENT)
                        return 0;
                if (errno == EAGAIN)
                        return 1; /* backlog full: somebody is there */
                return -errno;
        }
        return 1;
}

int varlink_server_listen_address(VarlinkServer *s, const char *address, mode_t mode) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *tmp = NULL;
        VarlinkAddress a;
        const char *path;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t salen;
        struct stat st;
        int r;

        r = varlink_address_parse(address, &a, NULL);
        if (r < 0)
                return r;

        if (a.abstract) {
                /* No file: bind the name itself; the kernel refuses a name that is in use. */
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (fd < 0)
                        return -errno;
                if (bind(fd, (struct sockaddr *) &a.sa, a.salen) < 0 || listen(fd, SOMAXCONN) < 0)
                        return -errno;
                return varlink_server_listen_fd(s, TAKE_FD(fd));
        }

        path = a.sa.sun_path;
        if (strlen(path) + 16 >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;

        /* Refuse to replace anything but a stale socket. */
        if (lstat(path, &st) >= 0) {
                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                r = socket_path_is_live(&a.sa, a.salen);
                if (r < 0)
                        return r;
                if (r > 0)
                        return -EADDRINUSE;
                log_notice("Replacing stale socket %s.", path);
        } else if (errno != ENOENT)
                return -errno;

        /* Bind and listen under a temporary name, then rename into place: the path appears only once it
         * accepts connections, with its final mode. */
        if (asprintf(&tmp, "%s.%i.tmp", path, (int) getpid()) < 0)
                return -ENOMEM;
        strcpy(sa.sun_path, tmp);
        salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(tmp) + 1);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        (void) unlink(tmp);
        if (bind(fd, (struct sockaddr *) &sa, salen) < 0)
                return -errno;
        if (chmod(tmp, mode) < 0 || listen(fd, SOMAXCONN) < 0 || rename(tmp, path) < 0) {
                r = -errno;
                (void) unlink(tmp);
                return r;
        }

        r = varlink_server_listen_fd(s, TAKE_FD(fd));
        if (r < 0) {
                (void) unlink(path);
                return r;
        }

        free(s->bound_path);
        s->bound_path = strdup(path);
        return 0;
}

void varlink_server_shutdown(VarlinkServer *s) {
        for (size_t i = 0; i < s->n_listen; i++) {
                s->listen[i].source = sd_event_source_disable_unref(s->listen[i].source);
                s->listen[i].fd = safe_close(s->listen[i].fd);
        }
        s->n_listen = 0;

        if (s->bound_path) {
                (void) unlink(s->bound_path);
                s->bound_path = mfree(s->bound_path);
        }

        while (s->connections)
                varlink_connection_close(s->connections);
}

static bool type_matches(json_object *v, VarlinkType type) {
        switch (type) {
        case VARLINK_BOOL:
                return json_object_is_type(v, json_type_boolean);
        case VARLINK_INT:
                return json_object_is_type(v, json_type_int);
        case VARLINK_FLOAT:
                return json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int);
        case VARLINK_STRING:
                return json_object_is_type(v, json_type_string);
        case VARLINK_OBJECT:
                return json_object_is_type(v, json_type_object);
        case VARLINK_ARRAY:
                return json_object_is_type(v, json_type_array);
        case VARLINK_ANY:
                return true;
        }
        return false;
}

/* Every string in v (values and object keys, at any depth) is text: valid UTF-8 without NUL. json-c accepts
 * "\u0000" (a C string would end there: "nul4\u0000x" read as "nul4"), overlong forms and encoded
 * surrogates, so this is checked here for every call. The depth is bounded by the parser's limit. */
static bool json_strings_are_text(json_object *v) {
        switch (json_object_get_type(v)) {
        case json_type_string:
                return utf8_is_valid_text(json_object_get_string(v), (size_t) json_object_get_string_len(v));
        case json_type_object: {
                json_object_object_foreach(v, key, value)
                        if (!utf8_is_valid_text(key, strlen(key)) || !json_strings_are_text(value))
                                return false;
                return true;
        }
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(v); i++)
                        if (!json_strings_are_text(json_object_array_get_idx(v, i)))
                                return false;
                return true;
        case json_type_null:
        case json_type_boolean:
        case json_type_double:
        case json_type_int:
                return true;
        }
        return false;
}

const char *varlink_validate_parameters(json_object *parameters, const VarlinkField *fields) {
        /* Unknown parameters first, in the order the peer sent them. */
        json_object_object_foreach(parameters, key, value) {
                const VarlinkField *f = NULL;

                if (!utf8_is_valid_text(key, strlen(key)))
                        return "(a parameter name that is not valid UTF-8)";
                if (!json_strings_are_text(value))
                        return key;

                for (const VarlinkField *i = fields; i && i->name; i++)
                        if (streq(i->name, key)) {
                                f = i;
                                break;
                        }
                if (!f)
                        return key;
                if (json_object_is_type(value, json_type_null)) {
                        if (!(f->flags & VARLINK_NULLABLE))
                                return key;
                } else if (!type_matches(value, f->type))
                        return key;
        }

        for (const VarlinkField *i = fields; i && i->name; i++) {
                if (i->flags & VARLINK_NULLABLE)
                        continue;
                if (!json_object_object_get_ex(parameters, i->name, NULL))
                        return i->name;
        }

        return NULL;
}

static int error_with_string(VarlinkConnection *c, const char *error, const char *key, const char *value) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, key, value) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, error, p);
}

static bool connection_is_privileged(VarlinkConnection *c) {
        gid_t gid = c->server->privileged_gid;
        gid_t groups[256];
        socklen_t l = sizeof(groups);

        if (c->ucred.uid == 0)
                return true;
        if (gid == (gid_t) -1)
                return false;
        if (c->ucred.gid == gid)
                return true;

        /* Supplementary groups of the peer as of connect(). */
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &l) < 0)
                return false;
        for (size_t i = 0; i < l / sizeof(gid_t); i++)
                if (groups[i] == gid)
                        return true;
        return false;
}

/* Dispatches a parsed call object. Returns < 0 on a protocol violation (connection must close). */
int varlink_server_dispatch_call(VarlinkConnection *c, json_object *call) {
        VarlinkServer *s = c->server;
        const char *method = NULL, *dot;
        json_object *parameters = NULL;
        _cleanup_json_ json_object *empty = NULL;
        const VarlinkInterface *iface;
        const VarlinkMethod *m = NULL;
        VarlinkCallFlags flags = 0;
        bool upgrade = false;
        int r;

        if (!json_object_is_type(call, json_type_object))
                return -EBADMSG;

        json_object_object_foreach(call, key, value) {
                if (streq(key, "method")) {
                        if (!json_object_is_type(value, json_type_string))
                                return -EBADMSG;
                        method = json_object_get_string(value);
                } else if (streq(key, "parameters")) {
                        if (!json_object_is_type(value, json_type_object))
                                return -EBADMSG;
                        parameters = value;
                } else if (streq(key, "oneway") || streq(key, "more") || streq(key, "upgrade")) {
                        if (!json_object_is_type(value, json_type_boolean))
                                return -EBADMSG;
                        if (!json_object_get_boolean(value))
                                continue;
                        if (key[0] == 'o')
                                flags |= VARLINK_CALL_ONEWAY;
                        else if (key[0] == 'm')
                                flags |= VARLINK_CALL_MORE;
                        else
                                upgrade = true;
                } else
                        return -EBADMSG;
        }

        if (!method)
                return -EBADMSG;
        if ((flags & VARLINK_CALL_ONEWAY) && (flags & VARLINK_CALL_MORE))
                return -EBADMSG;
        dot = strrchr(method, '.');
        if (!dot || dot == method || dot[1] == 0)
                return -EBADMSG;

        if (!parameters) {
                empty = json_object_new_object();
                if (!empty)
                        return -ENOMEM;
                parameters = empty;
        }

        s->calls_total++;
        c->in_call = true;
        c->call_flags = flags;

        if (upgrade)
                return error_with_string(c, VARLINK_ERROR_METHOD_NOT_IMPLEMENTED, "method", method) == -ENOMEM
                               ? -ENOMEM : 0;

        iface = server_find_interface(s, method, (size_t) (dot - method));
        if (!iface) {
                _cleanup_free_ char *name = strndup(method, (size_t) (dot - method));
                if (!name)
                        return -ENOMEM;
                r = error_with_string(c, VARLINK_ERROR_INTERFACE_NOT_FOUND, "interface", name);
                return r == -ENOMEM ? r : 0;
        }

        for (const VarlinkMethod *i = iface->methods; i->name; i++)
                if (streq(i->name, dot + 1)) {
                        m = i;
                        break;
                }
        if (!m) {
                r = error_with_string(c, VARLINK_ERROR_METHOD_NOT_FOUND, "method", method);
                return r == -ENOMEM ? r : 0;
        }

        if ((m->flags & VARLINK_METHOD_PRIVILEGED) && !connection_is_privileged(c)) {
                log_debug("Denied %s to uid %u.", method, (unsigned) c->ucred.uid);
                (void) varlink_error(c, VARLINK_ERROR_PERMISSION_DENIED, NULL);
                return 0;
        }

        if ((m->flags & VARLINK_METHOD_REQUIRES_MORE) && !(flags & VARLINK_CALL_MORE)) {
                (void) varlink_error(c, VARLINK_ERROR_EXPECTED_MORE, NULL);
                return 0;
        }

        if (!(m->flags & VARLINK_METHOD_UNCHECKED)) {
                const char *bad = varlink_validate_parameters(parameters, m->parameters);
                if (bad) {
                        r = varlink_error_invalid_parameter(c, bad);
                        return r == -ENOMEM ? r : 0;
                }
        }

        r = m->callback(c, parameters, flags, s->userdata);
        if (r < 0 && c->in_call && !c->closed) {
                _cleanup_json_ json_object *p = json_object_new_object();

                log_debug_errno(r, "Method %s failed: %m", method);
                if (!p || json_add_int(p, "errno", -r) < 0 || json_add_string(p, "message", strerror(-r)) < 0)
                        return -ENOMEM;
                if (s->internal_error)
                        (void) varlink_error(c, s->internal_error, TAKE_PTR(p));
                else {
                        _cleanup_free_ char *name = NULL;

                        if (asprintf(&name, "%s.InternalError", iface->name) < 0)
                                return -ENOMEM;
                        (void) varlink_error(c, name, TAKE_PTR(p));
                }
        }
        return 0;
}
