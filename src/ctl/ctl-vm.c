/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl verbs about guests: list, status NAME, start, stop, restart, kill, define, undefine, events. */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "ctl/ctl.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/parse.h"
#include "basic/utf8.h"

static void print_vm_line(json_object *vm, int name_width) {
        char up[FORMAT_TIMESPAN_MAX], mem[FORMAT_SIZE_MAX], pid[16];

        if (ctl_obj_get(vm, "pid"))
                snprintf(pid, sizeof(pid), "%" PRIi64, json_get_int(vm, "pid", 0));
        else
                snprintf(pid, sizeof(pid), "-");
        if (ctl_obj_get(vm, "uptimeUSec"))
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

        r = ctl_call("io.memvisor.Manager.ListVMs", NULL, &reply);
        if (r != EXIT_OK)
                return r;
        vms = ctl_obj_get(ctl_reply_parameters(reply), "vms");
        if (arg_json) {
                ctl_print_json(vms);
                return EXIT_OK;
        }
        for (size_t i = 0; vms && i < json_object_array_length(vms); i++)
                width = MAX(width, (int) strlen(strempty(json_get_string(json_object_array_get_idx(vms, i), "name"))));
        if (arg_legend)
                printf("%-*s %-10s %-8s %-12s %5s %7s %8s\n", width, "NAME", "STATE", "PID", "UPTIME", "VCPUS", "MEMORY",
                       "RESTARTS");
        for (size_t i = 0; vms && i < json_object_array_length(vms); i++)
                print_vm_line(json_object_array_get_idx(vms, i), width);
        if (arg_legend && (!vms || json_object_array_length(vms) == 0))
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
                        else if (json_object_is_type(value, json_type_int) && streq(key, "Memory") &&
                                 json_object_get_int64(value) % (1024 * 1024) == 0)
                                printf("%s=%" PRIi64 "M\n", key, json_object_get_int64(value) / (1024 * 1024));
                        else
                                printf("%s=%s\n", key, json_object_get_string(value));
                }
                printf("\n");
        }
}

int ctl_vm_status(const char *name) {
        _cleanup_json_ json_object *reply = NULL;
        char buf[128], ts[FORMAT_TIMESPAN_MAX], sz[FORMAT_SIZE_MAX];
        json_object *vm, *v, *e;
        int r;

        r = ctl_call_with_name("io.memvisor.Manager.DescribeVM", name, &reply);
        if (r != EXIT_OK)
                return r;
        vm = ctl_obj_get(ctl_reply_parameters(reply), "vm");
        if (arg_json) {
                ctl_print_json(vm);
                return EXIT_OK;
        }

        printf("%s - %s", json_get_string(vm, "name"), strna(json_get_string(vm, "state")));
        if (json_get_string(vm, "stateReason"))
                printf(" (%s)", json_get_string(vm, "stateReason"));
        printf("\n");
        printf("        Since: %s\n", ctl_format_realtime(buf, sizeof(buf), (uint64_t) json_get_int(vm, "stateSinceRealtimeUSec", 0)));
        printf("       Source: %s\n", json_get_string(vm, "source") ?: "defined over varlink");
        if (json_get_string(vm, "definitionProblem"))
                printf("      Warning: %s (the previous definition is in force)\n",
                       json_get_string(vm, "definitionProblem"));
        if (ctl_obj_get(vm, "pid")) {
                printf("          PID: %" PRIi64 "%s\n", json_get_int(vm, "pid", 0),
                       json_get_bool(vm, "adopted", false) ? " (re-adopted after a daemon restart)" : "");
                printf("      Started: %s, up %s\n",
                       ctl_format_realtime(buf, sizeof(buf), (uint64_t) json_get_int(vm, "startedRealtimeUSec", 0)),
                       format_timespan(ts, sizeof(ts), (uint64_t) json_get_int(vm, "uptimeUSec", 0)));
                printf("  Accelerator: %s", strna(json_get_string(vm, "accelerator")));
                if (json_get_string(vm, "kvmFallbackReason"))
                        printf(" (Accelerator=auto; QEMU %s under KVM)", json_get_string(vm, "kvmFallbackReason"));
                printf("\n");
                printf("          QMP: %s (%s); QEMU %s, status %s\n", strna(json_get_string(vm, "qmpState")),
                       strna(json_get_string(vm, "qmpSocket")), strna(json_get_string(vm, "qemuVersion")),
                       strna(json_get_string(vm, "qemuStatus")));
                if ((v = ctl_obj_get(vm, "commitCharge"))) {
                        int64_t diff = json_get_int(v, "differenceBytes", 0);
                        char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX], c[FORMAT_SIZE_MAX];

                        printf("Commit charge: %s%s at start (host Committed_AS %s before, %s once running)\n",
                               diff < 0 ? "-" : "+", format_size(c, sizeof(c), (uint64_t) (diff < 0 ? -diff : diff)),
                               format_size(a, sizeof(a), (uint64_t) json_get_int(v, "beforeBytes", 0)),
                               format_size(b, sizeof(b), (uint64_t) json_get_int(v, "afterBytes", 0)));
                }
                if ((v = ctl_obj_get(vm, "placement"))) {
                        if (json_get_string(v, "checkError"))
                                printf("    Placement: threads not checked at the greeting (%s)\n",
                                       json_get_string(v, "checkError"));
                        else if (json_get_bool(v, "allInside", false))
                                printf("    Placement: all %" PRIi64 " QEMU threads inside EmulatorAffinity=%s at the "
                                       "first greeting\n", json_get_int(v, "threadsAtGreeting", 0),
                                       strna(json_get_string(v, "emulatorAffinity")));
                        else
                                printf("    Placement: %" PRIi64 " of %" PRIi64 " QEMU threads outside "
                                       "EmulatorAffinity=%s at the first greeting (%s)\n",
                                       json_get_int(v, "threadsOutside", 0), json_get_int(v, "threadsAtGreeting", 0),
                                       strna(json_get_string(v, "emulatorAffinity")),
                                       strna(json_get_string(v, "firstOutside")));
                }
                if ((v = ctl_obj_get(vm, "agent"))) {
                        json_object *cmds = ctl_obj_get(v, "commands");
                        printf("        Agent: %s", strna(json_get_string(v, "state")));
                        if (json_get_string(v, "version"))
                                printf(", qemu-ga %s with %zu commands", json_get_string(v, "version"),
                                       cmds ? json_object_array_length(cmds) : (size_t) 0);
                        if (json_get_string(v, "reason"))
                                printf(" (%s)", json_get_string(v, "reason"));
                        printf("\n");
                }
        }
        printf("        vCPUs: %" PRIi64, json_get_int(vm, "vcpus", 0));
        v = ctl_obj_get(vm, "vcpuThreads");
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
        if (ctl_obj_get(vm, "pid"))
                (void) ctl_numa_print_placement(name);
        if (ctl_obj_get(vm, "restartInUSec"))
                printf(" Next restart: in %s\n",
                       format_timespan(ts, sizeof(ts), (uint64_t) json_get_int(vm, "restartInUSec", 0)));
        e = ctl_obj_get(vm, "lastExit");
        if (e)
                printf("    Last exit: %s%s%s%s at %s\n", strna(json_get_string(e, "description")),
                       json_get_string(e, "shutdownReason") ? " (QMP SHUTDOWN: " : "",
                       strempty(json_get_string(e, "shutdownReason")), json_get_string(e, "shutdownReason") ? ")" : "",
                       ctl_format_realtime(buf, sizeof(buf), (uint64_t) json_get_int(e, "realtimeUSec", 0)));
        if (e && ctl_obj_get(e, "consoleBoot")) {
                json_object *lines = ctl_obj_get(e, "panicLines");

                printf("               %s; its console: memvisorctl console %s --boot=%" PRIi64 "\n",
                       json_get_bool(e, "panicked", false) ? "the guest panicked" : "how it ended", name,
                       json_get_int(e, "consoleBoot", 0));
                /* Escaped by the daemon; escaped again here all the same (a no-op on escaped text). */
                for (size_t i = 0; i < ctl_array_length(lines); i++) {
                        const char *l = json_object_get_string(ctl_array_get(lines, i));
                        _cleanup_free_ char *safe = l ? utf8_escape_untrusted(l, strlen(l)) : NULL;

                        printf("        Panic: %s\n", strna(safe));
                }
        }
        printf("      Console: %s\n", strna(json_get_string(vm, "consoleLog")));
        if (json_get_string(vm, "qemuLog"))
                printf("     QEMU log: %s\n", json_get_string(vm, "qemuLog"));
        if (json_get_bool(vm, "definitionChangedSinceStart", false))
                printf("         Note: the definition changed since this QEMU started; it applies from the next start\n");
        if (json_get_string(vm, "commandLine"))
                printf(" Command line: %s\n", json_get_string(vm, "commandLine"));
        printf("\n");
        if (ctl_obj_get(vm, "definition"))
                print_definition_ini(ctl_obj_get(vm, "definition"));
        return EXIT_OK;
}

static int print_vm_reply(json_object *reply) {
        json_object *vm = ctl_obj_get(ctl_reply_parameters(reply), "vm");

        if (arg_json)
                ctl_print_json(vm);
        else
                printf("%s: %s\n", json_get_string(vm, "name"), strna(json_get_string(vm, "state")));
        return EXIT_OK;
}

static const char *arg_signal = NULL;
static bool arg_replace = false;
static const char *arg_name = NULL;

enum { ARG_SIGNAL = 0x100, ARG_REPLACE, ARG_NAME };

static const struct option kill_options[] = {
        { "signal", required_argument, NULL, ARG_SIGNAL },
        {}
};

static const struct option define_options[] = {
        { "replace", no_argument, NULL, ARG_REPLACE },
        { "name", required_argument, NULL, ARG_NAME },
        {}
};

static int vm_option(int c, const char *arg) {
        switch (c) {
        case ARG_SIGNAL:
                arg_signal = arg;
                break;
        case ARG_REPLACE:
                arg_replace = true;
                break;
        case ARG_NAME:
                arg_name = arg;
                break;
        default:
                return EXIT_USAGE;
        }
        return 0;
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
        r = ctl_call(method, params, &reply);
        if (r != EXIT_OK)
                return r;
        return print_vm_reply(reply);
}

static int verb_undefine(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;

        return ctl_call_with_name("io.memvisor.Manager.UndefineVM", argv[1], &reply);
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

        r = ctl_call("io.memvisor.Manager.DefineVM", params, &reply);
        if (r != EXIT_OK)
                return r;
        return print_vm_reply(reply);
}

static int verb_events(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        int r;

        r = ctl_connect(&c);
        if (r < 0)
                return -r;
        r = varlink_client_send(c, "io.memvisor.Manager.SubscribeEvents", NULL, VARLINK_CALL_MORE);
        if (r < 0)
                return ctl_connection_failed(r, "Failed to subscribe");

        for (;;) {
                _cleanup_json_ json_object *reply = NULL;
                json_object *p;
                char ts[64];
                const char *ev;

                r = varlink_client_receive(c, &reply);
                if (r < 0)
                        return ctl_connection_failed(r, "Event stream ended");
                if (json_get_string(reply, "error"))
                        return ctl_report_error(reply);
                p = ctl_reply_parameters(reply);
                if (arg_json) {
                        ctl_print_json(p);
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
                        json_object *vms = ctl_obj_get(p, "vms");
                        printf("%s subscribed; %zu guest%s\n", ts, vms ? json_object_array_length(vms) : 0,
                               vms && json_object_array_length(vms) == 1 ? "" : "s");
                        for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
                                json_object *vm = json_object_array_get_idx(vms, i);
                                printf("%s %s: %s\n", ts, json_get_string(vm, "name"), strna(json_get_string(vm, "state")));
                        }
                } else if (streq(ev, "state")) {
                        printf("%s %s: %s → %s", ts, strna(json_get_string(p, "vm")),
                               strna(json_get_string(p, "previousState")), strna(json_get_string(p, "state")));
                        if (ctl_obj_get(p, "pid"))
                                printf(" (pid %" PRIi64 ")", json_get_int(p, "pid", 0));
                        if (json_get_string(p, "reason"))
                                printf(": %s", json_get_string(p, "reason"));
                        printf("\n");
                } else
                        printf("%s %s: %s\n", ts, strna(json_get_string(p, "vm")), ev);
                fflush(stdout);
        }
}

const CtlVerb ctl_vm_verbs[] = {
        { "list", "", "List guests with state, pid, uptime, vCPUs, memory and restarts", 0, 0, verb_list },
        { "start", "NAME", "Start a guest", 1, 1, verb_lifecycle },
        { "stop", "NAME", "Stop a guest gracefully (ACPI power button, then SIGTERM, then SIGKILL)", 1, 1,
          verb_lifecycle },
        { "restart", "NAME", "Stop a guest if it runs, then start it", 1, 1, verb_lifecycle },
        { "kill", "NAME", "Send SIGKILL (or --signal=SIG) to the guest's QEMU", 1, 1, verb_lifecycle, kill_options,
          vm_option, "--signal=SIG: KILL, TERM, INT, ..." },
        { "define", "FILE|-", "Define a guest from a .vm file (or standard input)", 1, 1, verb_define,
          define_options, vm_option,
          "--name=NAME: the guest's name (default: Name= or the file name); --replace: replace a definition" },
        { "undefine", "NAME", "Forget a stopped guest defined with 'define'", 1, 1, verb_undefine },
        { "events", "", "Stream guest events until interrupted", 0, 0, verb_events },
        {}
};
