/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl: the varlink command line client of memvisord. See memvisorctl(1). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "build-config.h"
#include "client.h"
#include "json-util.h"
#include "parse.h"

/* Exit codes (documented in memvisorctl(1)). */
enum {
        EXIT_OK = 0,
        EXIT_VARLINK_ERROR = 1, /* the method answered with a varlink error; its name is on stderr */
        EXIT_USAGE = 2,         /* invalid command line */
        EXIT_CONNECTION = 3,    /* could not connect, or the connection broke or carried garbage */
};

#define DEFAULT_ADDRESS "unix:/run/memvisor/io.memvisor.Manager"

static const char *arg_address = NULL;
static bool arg_json = false;
static bool arg_more = false;
static bool arg_oneway = false;

static void help(void) {
        printf("%s [OPTIONS...] COMMAND ...\n\n"
               "Query and control memvisord over varlink.\n\n"
               "Commands:\n"
               "  info                      Show vendor, product, version and interfaces\n"
               "  introspect [INTERFACE]    Show an interface's IDL (default io.memvisor.Manager)\n"
               "  call METHOD [JSON]        Call a method and print its reply\n"
               "  status                    Show the daemon's status\n"
               "  reload                    Make the daemon re-read its configuration\n"
               "  log-level LEVEL           Set the daemon's log level\n"
               "\nOptions:\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "  -A --address=ADDRESS      Daemon socket (default: $MEMVISOR_ADDRESS or\n"
               "                            " DEFAULT_ADDRESS ")\n"
               "  -j --json                 Machine-readable output (one JSON object per line)\n"
               "     --more                 With call: ask for and print every reply of a streaming method\n"
               "     --oneway               With call: ask for no reply\n"
               "\nExit status: 0 success, 1 varlink error reply, 2 usage error, 3 connection failure.\n"
               "See memvisorctl(1).\n",
               program_invocation_short_name);
}

static const char *address(void) {
        return arg_address ?: getenv("MEMVISOR_ADDRESS") ?: DEFAULT_ADDRESS;
}

static int connect_daemon(VarlinkClient **ret) {
        int r = varlink_client_connect(ret, address());
        if (r < 0) {
                fprintf(stderr, "Failed to connect to %s: %s\n", address(), strerror(-r));
                return -EXIT_CONNECTION;
        }
        return 0;
}

static void print_json(json_object *o) {
        int flags = arg_json ? JSON_C_TO_STRING_PLAIN : JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED;
        puts(json_object_to_json_string_ext(o, flags | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Reports a varlink error reply on stderr; returns the exit code for it. */
static int report_error(json_object *reply, const char *method) {
        json_object *params = NULL;
        const char *error = json_get_string(reply, "error");

        (void) json_object_object_get_ex(reply, "parameters", &params);
        fprintf(stderr, "%s\n", error);
        if (params && json_object_object_length(params) > 0)
                fprintf(stderr, "%s\n", json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN |
                                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
        return EXIT_VARLINK_ERROR;
}

/* Calls method; on success *ret_params is the reply's parameters. Returns an exit code. */
static int call_simple(const char *method, json_object *params, json_object **ret_reply) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_json_ json_object *reply = NULL;
        int r;

        r = connect_daemon(&c);
        if (r < 0)
                return -r;
        r = varlink_client_call(c, method, params, &reply);
        if (r < 0) {
                fprintf(stderr, "Failed to call %s: %s\n", method, strerror(-r));
                return EXIT_CONNECTION;
        }
        if (json_get_string(reply, "error"))
                return report_error(reply, method);

        *ret_reply = TAKE_PTR(reply);
        return EXIT_OK;
}

static json_object *reply_parameters(json_object *reply) {
        json_object *p = NULL;

        (void) json_object_object_get_ex(reply, "parameters", &p);
        return p;
}

static int verb_info(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *p, *ifaces = NULL;
        int r;

        r = call_simple("org.varlink.service.GetInfo", NULL, &reply);
        if (r != EXIT_OK)
                return r;
        p = reply_parameters(reply);
        if (arg_json) {
                print_json(p);
                return EXIT_OK;
        }

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
        r = call_simple("org.varlink.service.GetInterfaceDescription", params, &reply);
        if (r != EXIT_OK)
                return r;
        p = reply_parameters(reply);
        if (arg_json)
                print_json(p);
        else
                fputs(strempty(json_get_string(p, "description")), stdout);
        return EXIT_OK;
}

static int verb_call(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_json_ json_object *params = NULL;
        VarlinkCallFlags flags = 0;
        int r;

        if (argc < 2) {
                fprintf(stderr, "call: METHOD missing.\n");
                return EXIT_USAGE;
        }
        if (argc > 3) {
                fprintf(stderr, "call: too many arguments.\n");
                return EXIT_USAGE;
        }
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

        r = connect_daemon(&c);
        if (r < 0)
                return -r;
        r = varlink_client_send(c, argv[1], params, flags);
        if (r < 0) {
                fprintf(stderr, "Failed to call %s: %s\n", argv[1], strerror(-r));
                return EXIT_CONNECTION;
        }
        if (arg_oneway)
                return EXIT_OK;

        for (;;) {
                _cleanup_json_ json_object *reply = NULL;

                r = varlink_client_receive(c, &reply);
                if (r < 0) {
                        fprintf(stderr, "Failed to read reply to %s: %s\n", argv[1],
                                r == -ECONNRESET ? "connection closed by the daemon" : strerror(-r));
                        return EXIT_CONNECTION;
                }
                if (json_get_string(reply, "error"))
                        return report_error(reply, argv[1]);

                print_json(reply_parameters(reply) ?: reply);
                fflush(stdout);
                if (!json_get_bool(reply, "continues", false))
                        return EXIT_OK;
        }
}

static int verb_status(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;
        char ts[FORMAT_TIMESPAN_MAX], sz[FORMAT_SIZE_MAX];
        json_object *p, *limits = NULL, *counters = NULL;
        int r;

        r = call_simple("io.memvisor.Manager.GetDaemonStatus", NULL, &reply);
        if (r != EXIT_OK)
                return r;
        p = reply_parameters(reply);
        if (arg_json) {
                print_json(p);
                return EXIT_OK;
        }
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

        return call_simple("io.memvisor.Manager.Reload", NULL, &reply);
}

static int verb_log_level(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL, *params = json_object_new_object();

        if (argc != 2) {
                fprintf(stderr, "log-level: expected exactly one LEVEL.\n");
                return EXIT_USAGE;
        }
        if (!params || json_add_string(params, "level", argv[1]) < 0)
                return EXIT_CONNECTION;
        return call_simple("io.memvisor.Manager.SetLogLevel", params, &reply);
}

static const struct {
        const char *name;
        int min_args, max_args; /* counting the verb itself */
        int (*run)(int argc, char **argv);
} verbs[] = {
        { "info", 1, 1, verb_info },
        { "introspect", 1, 2, verb_introspect },
        { "call", 2, 3, verb_call },
        { "status", 1, 1, verb_status },
        { "reload", 1, 1, verb_reload },
        { "log-level", 2, 2, verb_log_level },
};

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_MORE, ARG_ONEWAY };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "address", required_argument, NULL, 'A' },
                { "json", no_argument, NULL, 'j' },
                { "more", no_argument, NULL, ARG_MORE },
                { "oneway", no_argument, NULL, ARG_ONEWAY },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "hA:j", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case ARG_VERSION:
                        printf("memvisorctl %s\n", PROJECT_VERSION);
                        return EXIT_OK;
                case 'A':
                        arg_address = optarg;
                        break;
                case 'j':
                        arg_json = true;
                        break;
                case ARG_MORE:
                        arg_more = true;
                        break;
                case ARG_ONEWAY:
                        arg_oneway = true;
                        break;
                case '?':
                        return EXIT_USAGE;
                default:
                        abort();
                }

        if (optind >= argc) {
                fprintf(stderr, "Command missing; see %s --help.\n", program_invocation_short_name);
                return EXIT_USAGE;
        }

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                int n = argc - optind;

                if (!streq(verbs[i].name, argv[optind]))
                        continue;
                if (n < verbs[i].min_args || n > verbs[i].max_args) {
                        fprintf(stderr, "%s: wrong number of arguments; see %s --help.\n", verbs[i].name,
                                program_invocation_short_name);
                        return EXIT_USAGE;
                }
                if ((arg_more || arg_oneway) && verbs[i].run != verb_call) {
                        fprintf(stderr, "--more and --oneway only apply to 'call'.\n");
                        return EXIT_USAGE;
                }
                return verbs[i].run(n, argv + optind);
        }

        fprintf(stderr, "Unknown command '%s'; see %s --help.\n", argv[optind], program_invocation_short_name);
        return EXIT_USAGE;
}
