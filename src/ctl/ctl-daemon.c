/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl verbs about the daemon itself, raw varlink calls, and the bridge that -H runs on the other host. */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "basic/json-util.h"
#include "basic/parse.h"

static int verb_info(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *p, *ifaces = NULL;
        int r;

        r = ctl_call_show("org.varlink.service.GetInfo", NULL, &reply, &p);
        if (r != EXIT_OK || !p)
                return r;

        printf("    Vendor: %s\n", strna(json_get_string(p, "vendor")));
        printf("   Product: %s\n", strna(json_get_string(p, "product")));
        printf("   Version: %s\n", strna(json_get_string(p, "version")));
        printf("       URL: %s\n", strna(json_get_string(p, "url")));
        (void) json_object_object_get_ex(p, "interfaces", &ifaces);
        for (size_t i = 0; ifaces && i < json_object_array_length(ifaces); i++)
                printf("%s%s\n", i == 0 ? "Interfaces: " : "            ",
                       json_object_get_string(json_object_array_get_idx(ifaces, i)));
        return EXIT_OK;
}

static int verb_introspect(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL, *params = json_object_new_object();
        const char *iface = argc > 1 ? argv[1] : "io.memvisor.Manager";
        json_object *p;
        int r;

        if (!params || json_add_string(params, "interface", iface) < 0)
                return EXIT_CONNECTION;
        r = ctl_call("org.varlink.service.GetInterfaceDescription", params, &reply);
        if (r != EXIT_OK)
                return r;
        p = ctl_reply_parameters(reply);
        if (arg_json)
                ctl_print_json(p);
        else
                fputs(strempty(json_get_string(p, "description")), stdout);
        return EXIT_OK;
}

static bool arg_more = false;
static bool arg_oneway = false;

enum { ARG_MORE = 0x100, ARG_ONEWAY };

static const struct option call_options[] = {
        { "more", no_argument, NULL, ARG_MORE },
        { "oneway", no_argument, NULL, ARG_ONEWAY },
        {}
};

static int call_option(int c, const char *arg) {
        if (c == ARG_MORE)
                arg_more = true;
        else
                arg_oneway = true;
        return 0;
}

static int verb_call(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_json_ json_object *params = NULL;
        VarlinkCallFlags flags = 0;
        int r;

        if (arg_more && arg_oneway) {
                fprintf(stderr, "--more and --oneway cannot be combined.\n");
                return EXIT_USAGE;
        }
        if (argc == 3) {
                enum json_tokener_error e;

                params = json_tokener_parse_verbose(argv[2], &e);
                if (!params || !json_object_is_type(params, json_type_object)) {
                        fprintf(stderr, "call: parameters must be a JSON object: %s\n",
                                params ? "not an object" : json_tokener_error_desc(e));
                        return EXIT_USAGE;
                }
        }
        if (arg_more)
                flags |= VARLINK_CALL_MORE;
        if (arg_oneway)
                flags |= VARLINK_CALL_ONEWAY;

        r = ctl_connect(&c);
        if (r < 0)
                return -r;
        r = varlink_client_send(c, argv[1], params, flags);
        if (r < 0)
                return ctl_connection_failed(r, "Failed to call %s", argv[1]);
        if (arg_oneway)
                return EXIT_OK;

        for (;;) {
                _cleanup_json_ json_object *reply = NULL;

                r = varlink_client_receive(c, &reply);
                if (r < 0)
                        return ctl_connection_failed(r, "Failed to read reply to %s", argv[1]);
                if (json_get_string(reply, "error"))
                        return ctl_report_error(reply);

                ctl_print_json(ctl_reply_parameters(reply) ?: reply);
                fflush(stdout);
                if (!json_get_bool(reply, "continues", false))
                        return EXIT_OK;
        }
}

static int verb_daemon_status(void) {
        _cleanup_json_ json_object *reply = NULL;
        char ts[FORMAT_TIMESPAN_MAX], sz[FORMAT_SIZE_MAX];
        json_object *p, *limits = NULL, *counters = NULL;
        int r;

        r = ctl_call_show("io.memvisor.Manager.GetDaemonStatus", NULL, &reply, &p);
        if (r != EXIT_OK || !p)
                return r;
        (void) json_object_object_get_ex(p, "limits", &limits);
        (void) json_object_object_get_ex(p, "counters", &counters);

        printf("     Version: %s (pid %" PRIi64 ")\n", strna(json_get_string(p, "version")), json_get_int(p, "pid", 0));
        printf("      Status: %s\n", strna(json_get_string(p, "status")));
        printf("      Uptime: %s\n", format_timespan(ts, sizeof(ts), (uint64_t) json_get_int(p, "uptimeUSec", 0)));
        printf("      Config: %s%s\n", strna(json_get_string(p, "configPath")),
               json_get_bool(p, "configFileFound", false) ? "" : " (not found, built-in defaults)");
        printf("     Runtime: %s\n", strna(json_get_string(p, "runtimeDirectory")));
        printf("       State: %s\n", strna(json_get_string(p, "stateDirectory")));
        printf("     Varlink: %s\n", strna(json_get_string(p, "varlinkAddress")));
        printf("   Log level: %s\n", strna(json_get_string(p, "logLevel")));
        printf(" Admin group: %s\n", json_get_string(p, "adminGroup") ?: "(none: root only)");
        printf(" Connections: %" PRIi64 " now, %" PRIi64 " total, %" PRIi64 " refused, %" PRIi64 " protocol errors\n",
               json_get_int(counters, "connections", 0), json_get_int(counters, "connectionsTotal", 0),
               json_get_int(counters, "connectionsRejected", 0), json_get_int(counters, "protocolErrors", 0));
        printf("       Calls: %" PRIi64 "\n", json_get_int(counters, "callsTotal", 0));
        printf("      Limits: message %s", format_size(sz, sizeof(sz), (uint64_t) json_get_int(limits, "maxMessageBytes", 0)));
        printf(", output queue %s", format_size(sz, sizeof(sz), (uint64_t) json_get_int(limits, "maxOutputBytes", 0)));
        printf(", %" PRIi64 " connections (%" PRIi64 " per uid), JSON depth %" PRIi64 "\n",
               json_get_int(limits, "maxConnections", 0), json_get_int(limits, "maxConnectionsPerUid", 0),
               json_get_int(limits, "maxJsonDepth", 0));
        return EXIT_OK;
}

static int verb_reload(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;

        return ctl_call("io.memvisor.Manager.Reload", NULL, &reply);
}

static int verb_log_level(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL, *params = json_object_new_object();

        if (argc != 2) {
                fprintf(stderr, "log-level: expected exactly one LEVEL.\n");
                return EXIT_USAGE;
        }
        if (!params || json_add_string(params, "level", argv[1]) < 0)
                return EXIT_CONNECTION;
        return ctl_call("io.memvisor.Manager.SetLogLevel", params, &reply);
}

static int verb_status(int argc, char **argv) {
        if (argc == 2)
                return ctl_vm_status(argv[1]);
        return verb_daemon_status();
}

#define ERRNO_IS_AGAIN(e) ((e) == EAGAIN || (e) == EWOULDBLOCK)

/* ---- bridge: standard input and output <-> the daemon's socket (what -H runs through ssh) -------------- */

#define BRIDGE_BUFFER_SIZE (64U * 1024U)

typedef struct Pipe {
        char data[BRIDGE_BUFFER_SIZE];
        size_t start, end;
} Pipe;

/* Free space, counting what pipe_fill() gains by moving the data to the front. */
static size_t pipe_room(const Pipe *p) {
        return sizeof(p->data) - (p->end - p->start);
}

static bool pipe_empty(const Pipe *p) {
        return p->start == p->end;
}

/* Reads into p; 0 on EOF, > 0 bytes read or EAGAIN, < 0 -errno. */
static ssize_t pipe_fill(Pipe *p, int fd) {
        ssize_t n;

        if (p->start == p->end)
                p->start = p->end = 0;
        else if (p->end == sizeof(p->data)) {
                memmove(p->data, p->data + p->start, p->end - p->start);
                p->end -= p->start;
                p->start = 0;
        }
        n = read(fd, p->data + p->end, sizeof(p->data) - p->end);
        if (n < 0)
                return ERRNO_IS_AGAIN(errno) ? 1 : -errno;
        p->end += (size_t) n;
        return n;
}

static int pipe_drain(Pipe *p, int fd, bool socket) {
        ssize_t n = socket ? send(fd, p->data + p->start, p->end - p->start, MSG_NOSIGNAL)
                           : write(fd, p->data + p->start, p->end - p->start);

        if (n < 0)
                return ERRNO_IS_AGAIN(errno) ? 0 : -errno;
        p->start += (size_t) n;
        return 0;
}

static int set_nonblock(int fd, int *ret_old_flags) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        if (ret_old_flags)
                *ret_old_flags = flags;
        return 0;
}

static int bridge_loop(int sock) {
        static Pipe up, down;   /* up: stdin → daemon, down: daemon → stdout */
        bool in_eof = false, sock_eof = false, shut = false;
        ssize_t n;
        int r;

        for (;;) {
                struct pollfd p[3] = {
                        { .fd = !in_eof && pipe_room(&up) > 0 ? STDIN_FILENO : -1, .events = POLLIN },
                        { .fd = sock, .events = (!sock_eof && pipe_room(&down) > 0 ? POLLIN : 0) |
                                                (!pipe_empty(&up) ? POLLOUT : 0) },
                        { .fd = !pipe_empty(&down) ? STDOUT_FILENO : -1, .events = POLLOUT },
                };

                if (in_eof && pipe_empty(&up) && !shut) {
                        /* The client is done sending: let the daemon see EOF, keep forwarding its replies. */
                        (void) shutdown(sock, SHUT_WR);
                        shut = true;
                }
                if (sock_eof && pipe_empty(&down))
                        return EXIT_OK;
                if (p[1].events == 0)
                        p[1].fd = -1;

                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        fprintf(stderr, "bridge: poll() failed: %m\n");
                        return EXIT_CONNECTION;
                }
                if (p[0].revents & (POLLNVAL))
                        in_eof = true;
                else if (p[0].revents) {
                        n = pipe_fill(&up, STDIN_FILENO);
                        if (n < 0) {
                                fprintf(stderr, "bridge: failed to read standard input: %s\n", strerror((int) -n));
                                return EXIT_CONNECTION;
                        }
                        if (n == 0)
                                in_eof = true;
                }
                if (p[1].revents & POLLOUT || (p[1].revents & (POLLERR | POLLHUP) && !pipe_empty(&up))) {
                        r = pipe_drain(&up, sock, true);
                        if (r < 0) {
                                /* The daemon closed the connection; forward what it sent before. */
                                up.start = up.end = 0;
                                in_eof = shut = true;
                        }
                }
                if (p[1].revents & (POLLIN | POLLHUP | POLLERR) && !sock_eof && pipe_room(&down) > 0) {
                        n = pipe_fill(&down, sock);
                        if (n == 0 || n == -ECONNRESET)
                                sock_eof = true;
                        else if (n < 0) {
                                fprintf(stderr, "bridge: failed to read from the daemon: %s\n", strerror((int) -n));
                                return EXIT_CONNECTION;
                        }
                }
                if (p[2].revents) {
                        r = pipe_drain(&down, STDOUT_FILENO, false);
                        if (r < 0)
                                return EXIT_CONNECTION;  /* the client went away: nobody to tell */
                }
        }
}

static int verb_bridge(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        int in_flags = -1, out_flags = -1, r;

        if (arg_host) {
                fprintf(stderr, "bridge runs on the host of the daemon; it does not take -H.\n");
                return EXIT_USAGE;
        }
        r = ctl_connect(&c);
        if (r < 0)
                return -r;

        /* Every write is checked: a closed standard output is an error to return, not a signal to die of. */
        (void) signal(SIGPIPE, SIG_IGN);
        if (set_nonblock(varlink_client_fd(c), NULL) < 0 || set_nonblock(STDIN_FILENO, &in_flags) < 0 ||
            set_nonblock(STDOUT_FILENO, &out_flags) < 0) {
                fprintf(stderr, "bridge: failed to make the file descriptors non-blocking: %m\n");
                r = EXIT_CONNECTION;
        } else
                r = bridge_loop(varlink_client_fd(c));

        if (in_flags >= 0)
                (void) fcntl(STDIN_FILENO, F_SETFL, in_flags);
        if (out_flags >= 0)
                (void) fcntl(STDOUT_FILENO, F_SETFL, out_flags);
        return r;
}

const CtlVerb ctl_daemon_verbs[] = {
        { "info", "", "Show vendor, product, version and interfaces", 0, 0, verb_info },
        { "introspect", "[INTERFACE]", "Show an interface's IDL (default io.memvisor.Manager)", 0, 1, verb_introspect },
        { "call", "METHOD [JSON]", "Call a method and print its reply", 1, 2, verb_call, call_options, call_option,
          "--more: ask for and print every reply of a streaming method; --oneway: ask for no reply" },
        { "status", "[NAME]", "Show the daemon's status, or a guest's (definition, command line, QMP, vCPU "
          "threads, last exit)", 0, 1, verb_status },
        { "reload", "", "Make the daemon re-read its configuration and .vm files", 0, 0, verb_reload },
        { "log-level", "LEVEL", "Set the daemon's log level", 1, 1, verb_log_level },
        { "bridge", "", "Connect standard input and output to the daemon (what -H runs on the other host)", 0, 0,
          verb_bridge },
        {}
};
