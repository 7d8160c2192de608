/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl: the varlink command line client of memvisord. See memvisorctl(1). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "fileio.h"

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
static bool arg_replace = false;
static const char *arg_name = NULL;
static const char *arg_signal = NULL;

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
               "\nGuests:\n"
               "  list                      List guests with state, pid, uptime, vCPUs, memory, restarts\n"
               "  status NAME               Show a guest: definition, command line, QMP, vCPU threads,\n"
               "                            last exit\n"
               "  start|stop|restart NAME   Start, gracefully stop, or restart a guest\n"
               "  kill NAME                 Send SIGKILL (or --signal=SIG) to the guest's QEMU\n"
               "  define FILE|-             Define a guest from a .vm file (or standard input)\n"
               "  undefine NAME             Forget a stopped guest defined with 'define'\n"
               "  events                    Stream guest events until interrupted\n"
               "\nOptions:\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "  -A --address=ADDRESS      Daemon socket (default: $MEMVISOR_ADDRESS or\n"
               "                            " DEFAULT_ADDRESS ")\n"
               "  -j --json                 Machine-readable output (one JSON object per line)\n"
               "     --more                 With call: ask for and print every reply of a streaming method\n"
               "     --oneway               With call: ask for no reply\n"
               "     --replace              With define: replace an existing definition\n"
               "     --name=NAME            With define: the guest's name (default: Name= or the file name)\n"
               "     --signal=SIG           With kill: the signal (KILL, TERM, INT, ...)\n"
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


/* ---- guests ----------------------------------------------------------------------------------- */

static json_object *obj_get(json_object *o, const char *key) {
        json_object *v = NULL;

        if (!o || !json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return NULL;
        return v;
}

static int call_with_name(const char *method, const char *name, json_object **ret_reply) {
        _cleanup_json_ json_object *params = json_object_new_object();

        if (!params || json_add_string(params, "name", name) < 0)
                return EXIT_CONNECTION;
        return call_simple(method, params, ret_reply);
}

static const char *format_realtime(char *buf, size_t l, uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, l, "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, l, "n/a");
        return buf;
}

static void print_vm_line(json_object *vm, int name_width) {
        char up[FORMAT_TIMESPAN_MAX], mem[FORMAT_SIZE_MAX], pid[16];

        if (obj_get(vm, "pid"))
                snprintf(pid, sizeof(pid), "%" PRIi64, json_get_int(vm, "pid", 0));
        else
                snprintf(pid, sizeof(pid), "-");
        if (obj_get(vm, "uptimeUSec"))
                format_timespan(up, sizeof(up), (uint64_t) json_get_int(vm, "uptimeUSec", 0));
        else
                snprintf(up, sizeof(up), "-");
        printf("%-*s %-10s %-8s %-12s %5" PRIi64 " %7s %8" PRIi64 "\n", name_width, json_get_string(vm, "name"),
               strna(json_get_string(vm, "state")), pid, up, json_get_int(vm, "vcpus", 0),
               format_size(mem, sizeof(mem), (uint64_t) json_get_int(vm, "memoryBytes", 0)),
               json_get_int(vm, "restarts", 0));
}

static int verb_list(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *vms;
        int r, width = 4;

        r = call_simple("io.memvisor.Manager.ListVMs", NULL, &reply);
        if (r != EXIT_OK)
                return r;
        vms = obj_get(reply_parameters(reply), "vms");
        if (arg_json) {
                print_json(vms);
                return EXIT_OK;
        }
        for (size_t i = 0; vms && i < json_object_array_length(vms); i++)
                width = MAX(width, (int) strlen(strempty(json_get_string(json_object_array_get_idx(vms, i), "name"))));
        printf("%-*s %-10s %-8s %-12s %5s %7s %8s\n", width, "NAME", "STATE", "PID", "UPTIME", "VCPUS", "MEMORY",
               "RESTARTS");
        for (size_t i = 0; vms && i < json_object_array_length(vms); i++)
                print_vm_line(json_object_array_get_idx(vms, i), width);
        if (!vms || json_object_array_length(vms) == 0)
                printf("(no guests defined)\n");
        return EXIT_OK;
}

/* Prints the JSON definition back as .vm text. */
static void print_definition_ini(json_object *def) {
        json_object_object_foreach(def, section, keys) {
                printf("[%s]\n", section);
                json_object_object_foreach(keys, key, value) {
                        if (json_object_is_type(value, json_type_null))
                                continue;
                        if (json_object_is_type(value, json_type_array)) {
                                for (size_t i = 0; i < json_object_array_length(value); i++)
                                        printf("%s=%s\n", key, json_object_get_string(json_object_array_get_idx(value, i)));
                                continue;
                        }
                        if (json_object_is_type(value, json_type_boolean))
                                printf("%s=%s\n", key, json_object_get_boolean(value) ? "yes" : "no");
                        else
                                printf("%s=%s\n", key, json_object_get_string(value));
                }
                printf("\n");
        }
}

static int verb_vm_status(const char *name) {
        _cleanup_json_ json_object *reply = NULL;
        char buf[128], ts[FORMAT_TIMESPAN_MAX], sz[FORMAT_SIZE_MAX];
        json_object *vm, *v, *e;
        int r;

        r = call_with_name("io.memvisor.Manager.DescribeVM", name, &reply);
        if (r != EXIT_OK)
                return r;
        vm = obj_get(reply_parameters(reply), "vm");
        if (arg_json) {
                print_json(vm);
                return EXIT_OK;
        }

        printf("%s - %s", json_get_string(vm, "name"), strna(json_get_string(vm, "state")));
        if (json_get_string(vm, "stateReason"))
                printf(" (%s)", json_get_string(vm, "stateReason"));
        printf("\n");
        printf("        Since: %s\n", format_realtime(buf, sizeof(buf), (uint64_t) json_get_int(vm, "stateSinceRealtimeUSec", 0)));
        printf("       Source: %s\n", json_get_string(vm, "source") ?: "defined over varlink");
        if (obj_get(vm, "pid")) {
                printf("          PID: %" PRIi64 "%s\n", json_get_int(vm, "pid", 0),
                       json_get_bool(vm, "adopted", false) ? " (re-adopted after a daemon restart)" : "");
                printf("      Started: %s, up %s\n",
                       format_realtime(buf, sizeof(buf), (uint64_t) json_get_int(vm, "startedRealtimeUSec", 0)),
                       format_timespan(ts, sizeof(ts), (uint64_t) json_get_int(vm, "uptimeUSec", 0)));
                printf("  Accelerator: %s", strna(json_get_string(vm, "accelerator")));
                if (json_get_string(vm, "kvmFallbackReason"))
                        printf(" (Accelerator=auto; QEMU %s under KVM)", json_get_string(vm, "kvmFallbackReason"));
                printf("\n");
                printf("          QMP: %s (%s); QEMU %s, status %s\n", strna(json_get_string(vm, "qmpState")),
                       strna(json_get_string(vm, "qmpSocket")), strna(json_get_string(vm, "qemuVersion")),
                       strna(json_get_string(vm, "qemuStatus")));
        }
        printf("        vCPUs: %" PRIi64, json_get_int(vm, "vcpus", 0));
        v = obj_get(vm, "vcpuThreads");
        for (size_t i = 0; v && i < json_object_array_length(v); i++) {
                json_object *t = json_object_array_get_idx(v, i);
                printf("%s%" PRIi64 "=tid %" PRIi64, i == 0 ? " (" : ", ", json_get_int(t, "index", 0),
                       json_get_int(t, "threadId", 0));
                if (i + 1 == json_object_array_length(v))
                        printf(")");
        }
        printf("\n");
        printf("       Memory: %s\n", format_size(sz, sizeof(sz), (uint64_t) json_get_int(vm, "memoryBytes", 0)));
        printf("     Restarts: %" PRIi64 "\n", json_get_int(vm, "restarts", 0));
        if (obj_get(vm, "restartInUSec"))
                printf(" Next restart: in %s\n",
                       format_timespan(ts, sizeof(ts), (uint64_t) json_get_int(vm, "restartInUSec", 0)));
        e = obj_get(vm, "lastExit");
        if (e)
                printf("    Last exit: %s%s%s%s at %s\n", strna(json_get_string(e, "description")),
                       json_get_string(e, "shutdownReason") ? " (QMP SHUTDOWN: " : "",
                       strempty(json_get_string(e, "shutdownReason")), json_get_string(e, "shutdownReason") ? ")" : "",
                       format_realtime(buf, sizeof(buf), (uint64_t) json_get_int(e, "realtimeUSec", 0)));
        printf("      Console: %s\n", strna(json_get_string(vm, "consoleLog")));
        if (json_get_string(vm, "qemuLog"))
                printf("     QEMU log: %s\n", json_get_string(vm, "qemuLog"));
        if (json_get_bool(vm, "definitionChangedSinceStart", false))
                printf("         Note: the definition changed since this QEMU started; it applies from the next start\n");
        if (json_get_string(vm, "commandLine"))
                printf(" Command line: %s\n", json_get_string(vm, "commandLine"));
        printf("\n");
        if (obj_get(vm, "definition"))
                print_definition_ini(obj_get(vm, "definition"));
        return EXIT_OK;
}

static int verb_status_any(int argc, char **argv) {
        if (argc == 2)
                return verb_vm_status(argv[1]);
        return verb_status(argc, argv);
}

static int print_vm_reply(json_object *reply) {
        json_object *vm = obj_get(reply_parameters(reply), "vm");

        if (arg_json)
                print_json(vm);
        else
                printf("%s: %s\n", json_get_string(vm, "name"), strna(json_get_string(vm, "state")));
        return EXIT_OK;
}

static int verb_lifecycle(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL, *params = json_object_new_object();
        const char *method;
        int r;

        if (streq(argv[0], "start"))
                method = "io.memvisor.Manager.StartVM";
        else if (streq(argv[0], "stop"))
                method = "io.memvisor.Manager.StopVM";
        else if (streq(argv[0], "restart"))
                method = "io.memvisor.Manager.RestartVM";
        else
                method = "io.memvisor.Manager.KillVM";

        if (!params || json_add_string(params, "name", argv[1]) < 0 ||
            (arg_signal && json_add_string(params, "signal", arg_signal) < 0))
                return EXIT_CONNECTION;
        r = call_simple(method, params, &reply);
        if (r != EXIT_OK)
                return r;
        return print_vm_reply(reply);
}

static int verb_undefine(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;

        return call_with_name("io.memvisor.Manager.UndefineVM", argv[1], &reply);
}

static int verb_define(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL, *params = json_object_new_object();
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        if (streq(argv[1], "-")) {
                FILE *f = open_memstream(&text, &size);
                char buf[4096];
                size_t n;

                if (!f)
                        return EXIT_CONNECTION;
                while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
                        fwrite(buf, 1, n, f);
                fclose(f);
        } else {
                r = read_full_file(argv[1], 1024 * 1024, &text, &size);
                if (r < 0) {
                        fprintf(stderr, "Failed to read %s: %s\n", argv[1], strerror(-r));
                        return EXIT_USAGE;
                }
        }

        if (!params || json_add_string(params, "ini", text) < 0 ||
            json_add_string(params, "filename", streq(argv[1], "-") ? "<stdin>" : argv[1]) < 0 ||
            (arg_name && json_add_string(params, "name", arg_name) < 0) ||
            (arg_replace && json_add_bool(params, "replace", true) < 0))
                return EXIT_CONNECTION;

        r = call_simple("io.memvisor.Manager.DefineVM", params, &reply);
        if (r != EXIT_OK)
                return r;
        return print_vm_reply(reply);
}

static int verb_events(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        int r;

        r = connect_daemon(&c);
        if (r < 0)
                return -r;
        r = varlink_client_send(c, "io.memvisor.Manager.SubscribeEvents", NULL, VARLINK_CALL_MORE);
        if (r < 0) {
                fprintf(stderr, "Failed to subscribe: %s\n", strerror(-r));
                return EXIT_CONNECTION;
        }

        for (;;) {
                _cleanup_json_ json_object *reply = NULL;
                json_object *p;
                char ts[64];
                const char *ev;

                r = varlink_client_receive(c, &reply);
                if (r < 0) {
                        fprintf(stderr, "Event stream ended: %s\n",
                                r == -ECONNRESET ? "connection closed by the daemon" : strerror(-r));
                        return EXIT_CONNECTION;
                }
                if (json_get_string(reply, "error"))
                        return report_error(reply, "io.memvisor.Manager.SubscribeEvents");
                p = reply_parameters(reply);
                if (arg_json) {
                        print_json(p);
                        fflush(stdout);
                        continue;
                }

                ev = strna(json_get_string(p, "event"));
                {
                        uint64_t usec = (uint64_t) json_get_int(p, "realtimeUSec", 0);
                        time_t t = (time_t) (usec / USEC_PER_SEC);
                        struct tm tm;
                        if (localtime_r(&t, &tm))
                                snprintf(ts + strftime(ts, sizeof(ts), "%H:%M:%S", &tm), 8, ".%03u",
                                         (unsigned) (usec % USEC_PER_SEC / 1000));
                        else
                                snprintf(ts, sizeof(ts), "?");
                }

                if (streq(ev, "subscribed")) {
                        json_object *vms = obj_get(p, "vms");
                        printf("%s subscribed; %zu guest%s\n", ts, vms ? json_object_array_length(vms) : 0,
                               vms && json_object_array_length(vms) == 1 ? "" : "s");
                        for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
                                json_object *vm = json_object_array_get_idx(vms, i);
                                printf("%s %s: %s\n", ts, json_get_string(vm, "name"), strna(json_get_string(vm, "state")));
                        }
                } else if (streq(ev, "state")) {
                        printf("%s %s: %s → %s", ts, strna(json_get_string(p, "vm")),
                               strna(json_get_string(p, "previousState")), strna(json_get_string(p, "state")));
                        if (obj_get(p, "pid"))
                                printf(" (pid %" PRIi64 ")", json_get_int(p, "pid", 0));
                        if (json_get_string(p, "reason"))
                                printf(": %s", json_get_string(p, "reason"));
                        printf("\n");
                } else
                        printf("%s %s: %s\n", ts, strna(json_get_string(p, "vm")), ev);
                fflush(stdout);
        }
}

static const struct {
        const char *name;
        int min_args, max_args; /* counting the verb itself */
        int (*run)(int argc, char **argv);
} verbs[] = {
        { "info", 1, 1, verb_info },
        { "introspect", 1, 2, verb_introspect },
        { "call", 2, 3, verb_call },
        { "status", 1, 2, verb_status_any },
        { "reload", 1, 1, verb_reload },
        { "log-level", 2, 2, verb_log_level },
        { "list", 1, 1, verb_list },
        { "start", 2, 2, verb_lifecycle },
        { "stop", 2, 2, verb_lifecycle },
        { "restart", 2, 2, verb_lifecycle },
        { "kill", 2, 2, verb_lifecycle },
        { "define", 2, 2, verb_define },
        { "undefine", 2, 2, verb_undefine },
        { "events", 1, 1, verb_events },
};

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_MORE, ARG_ONEWAY, ARG_REPLACE, ARG_NAME, ARG_SIGNAL };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "address", required_argument, NULL, 'A' },
                { "json", no_argument, NULL, 'j' },
                { "more", no_argument, NULL, ARG_MORE },
                { "oneway", no_argument, NULL, ARG_ONEWAY },
                { "replace", no_argument, NULL, ARG_REPLACE },
                { "name", required_argument, NULL, ARG_NAME },
                { "signal", required_argument, NULL, ARG_SIGNAL },
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
                case ARG_REPLACE:
                        arg_replace = true;
                        break;
                case ARG_NAME:
                        arg_name = optarg;
                        break;
                case ARG_SIGNAL:
                        arg_signal = optarg;
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
                if ((arg_replace || arg_name) && verbs[i].run != verb_define) {
                        fprintf(stderr, "--replace and --name only apply to 'define'.\n");
                        return EXIT_USAGE;
                }
                if (arg_signal && !streq(verbs[i].name, "kill")) {
                        fprintf(stderr, "--signal only applies to 'kill'.\n");
                        return EXIT_USAGE;
                }
                return verbs[i].run(n, argv + optind);
        }

        fprintf(stderr, "Unknown command '%s'; see %s --help.\n", argv[optind], program_invocation_short_name);
        return EXIT_USAGE;
}
