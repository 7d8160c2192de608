/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl verbs about the daemon itself and raw varlink calls. */
#include <inttypes.h>
#include <stdio.h>

#include "ctl.h"
#include "json-util.h"
#include "parse.h"

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

const CtlVerb ctl_daemon_verbs[] = {
        { "info", "", "Show vendor, product, version and interfaces", 0, 0, verb_info },
        { "introspect", "[INTERFACE]", "Show an interface's IDL (default io.memvisor.Manager)", 0, 1, verb_introspect },
        { "call", "METHOD [JSON]", "Call a method and print its reply", 1, 2, verb_call, call_options, call_option,
          "--more: ask for and print every reply of a streaming method; --oneway: ask for no reply" },
        { "status", "[NAME]", "Show the daemon's status, or a guest's (definition, command line, QMP, vCPU "
          "threads, last exit)", 0, 1, verb_status },
        { "reload", "", "Make the daemon re-read its configuration and .vm files", 0, 0, verb_reload },
        { "log-level", "LEVEL", "Set the daemon's log level", 1, 1, verb_log_level },
        {}
};
