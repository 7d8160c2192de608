/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl monitor NAME [--hmp] [--force] COMMAND [JSON-ARGS]: a command to the guest's QEMU monitor, as virsh
 * qemu-monitor-command; memvisorctl memory NAME layout: the guest's memory layout (DescribeMemoryLayout). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/parse.h"
#include "basic/utf8.h"
#include "ctl/ctl.h"

static bool arg_hmp, arg_force;

enum {
        OPT_HMP = 0x100,
        OPT_FORCE,
};

static int monitor_option(int c, const char *arg) {
        switch (c) {
        case OPT_HMP:
                arg_hmp = true;
                return 0;
        case OPT_FORCE:
                arg_force = true;
                return 0;
        default:
                return EXIT_USAGE;
        }
}

static const struct option monitor_options[] = {
        { "hmp", no_argument, NULL, OPT_HMP },
        { "force", no_argument, NULL, OPT_FORCE },
        {}
};

/* monitor NAME COMMAND [JSON-ARGS] | monitor NAME --hmp WORD… */
static int verb_monitor(int argc, char **argv) {
        _cleanup_json_ json_object *params = json_object_new_object(), *reply = NULL, *args = NULL;
        _cleanup_free_ char *line = NULL;
        json_object *p, *v;
        int r;

        if (!params)
                return EXIT_CONNECTION;
        if (arg_hmp) {
                size_t len = 0;
                FILE *f = open_memstream(&line, &len);

                if (!f)
                        return EXIT_CONNECTION;
                for (int i = 2; i < argc; i++)
                        fprintf(f, "%s%s", i > 2 ? " " : "", argv[i]);
                if (fclose(f) != 0)
                        return EXIT_CONNECTION;
        } else {
                if (argc > 4) {
                        fprintf(stderr, "Too many arguments: a QMP command takes its arguments as one JSON object "
                                        "(quote it), e.g. monitor NAME query-memdev '{}'.\n");
                        return EXIT_USAGE;
                }
                if (argc == 4) {
                        args = json_tokener_parse(argv[3]);
                        if (!json_object_is_type(args, json_type_object)) {
                                fprintf(stderr, "Invalid arguments '%s': expected a JSON object.\n", argv[3]);
                                return EXIT_USAGE;
                        }
                }
        }
        if (json_add_string(params, "name", argv[1]) < 0 ||
            json_add_string(params, "command", arg_hmp ? line : argv[2]) < 0 ||
            (args && json_add(params, "arguments", TAKE_PTR(args)) < 0) ||
            (arg_hmp && json_add_bool(params, "hmp", true) < 0) ||
            (arg_force && json_add_bool(params, "force", true) < 0))
                return EXIT_CONNECTION;
        r = ctl_call("io.memvisor.Manager.ExecuteMonitorCommand", params, &reply);
        if (r != EXIT_OK)
                return r;
        p = ctl_reply_parameters(reply);
        if (arg_json) {
                ctl_print_json(p);
                return EXIT_OK;
        }
        /* QEMU's answer as it came: HMP text as is (on a terminal with control characters escaped: QEMU may echo
         * what the guest wrote), the QMP return value as JSON. */
        v = ctl_obj_get(p, "output");
        if (json_object_is_type(v, json_type_string)) {
                _cleanup_free_ char *safe = NULL;

                if (isatty(STDOUT_FILENO)) {
                        safe = utf8_escape_untrusted(json_object_get_string(v),
                                                     (size_t) json_object_get_string_len(v));
                        if (!safe)
                                return log_oom(), EXIT_CONNECTION;
                        fputs(safe, stdout);
                } else
                        fwrite(json_object_get_string(v), 1, json_object_get_string_len(v), stdout);
                return EXIT_OK;
        }
        v = ctl_obj_get(p, "reply");
        if (v)
                ctl_print_json(v);
        else
                printf("{}\n");
        return EXIT_OK;
}

/* ---- memory NAME layout ----------------------------------------------------------------------- */

static const char *sz(char *buf, size_t l, json_object *o, const char *key) {
        return format_size(buf, l, (uint64_t) json_get_int(o, key, 0));
}

static void print_region(json_object *r) {
        char s[FORMAT_SIZE_MAX], res[256] = "";
        json_object *a = ctl_obj_get(r, "residency"), *m = ctl_obj_get(r, "mappings");
        size_t off = 0;

        for (size_t i = 0; i < ctl_array_length(a) && off < sizeof(res); i++) {
                json_object *e = ctl_array_get(a, i);
                char b[FORMAT_SIZE_MAX];
                int n = snprintf(res + off, sizeof(res) - off, "%snode %" PRIi64 ": %s", i > 0 ? ", " : "",
                                 json_get_int(e, "node", 0), sz(b, sizeof(b), e, "bytes"));

                if (n < 0)
                        break;
                off += (size_t) n;
        }
        printf("%016" PRIx64 "-%016" PRIx64 " %10s %-4s %-12s %-12s ", (uint64_t) json_get_int(r, "gpaStart", 0),
               (uint64_t) json_get_int(r, "gpaEnd", 0), sz(s, sizeof(s), r, "sizeBytes"),
               strna(json_get_string(r, "kind")),
               strna(json_get_string(r, "memoryRegion")), json_get_string(r, "backend") ?: "-");
        if (ctl_obj_get(r, "hostStart"))
                printf("%012" PRIx64 "-%012" PRIx64, (uint64_t) json_get_int(r, "hostStart", 0),
                       (uint64_t) json_get_int(r, "hostEnd", 0));
        else
                printf("%-25s", "(no host memory)");
        printf(" %s%s%s\n", res[0] ? res : "-",
               streq_ptr(json_get_string(r, "residencyOf"), "mappings") ? " (of its whole mapping)" : "",
               m && !json_get_bool(m, "complete", true) ? " (not all mapped)" : "");
}

/* memory NAME layout (a sub-verb of ctl-memory.c's memory). */
int ctl_memory_layout(const char *name) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *p, *l, *regions, *backends;
        char s[FORMAT_SIZE_MAX];
        int r;

        r = ctl_call_with_name("io.memvisor.Manager.DescribeMemoryLayout", name, &reply);
        if (r != EXIT_OK)
                return r;
        p = ctl_reply_parameters(reply);
        if (arg_json) {
                ctl_print_json(p);
                return EXIT_OK;
        }
        l = ctl_obj_get(p, "layout");
        regions = ctl_obj_get(l, "regions");
        backends = ctl_obj_get(l, "backends");
        printf("Guest %s (QEMU pid %" PRIi64 "): %s of RAM in address space %s\n", strna(json_get_string(l, "name")),
               json_get_int(l, "pid", 0), sz(s, sizeof(s), l, "ramBytes"), strna(json_get_string(l, "addressSpace")));
        if (arg_legend)
                printf("%-33s %10s %-4s %-12s %-12s %-25s %s\n", "GPA", "SIZE", "KIND", "REGION", "BACKEND", "HOST VIRTUAL",
                       "RESIDENT");
        for (size_t i = 0; i < ctl_array_length(regions); i++)
                print_region(ctl_array_get(regions, i));
        if (json_get_string(l, "residencyUnavailable"))
                printf("Residency unavailable: %s\n", json_get_string(l, "residencyUnavailable"));
        for (size_t i = 0; i < ctl_array_length(backends); i++) {
                json_object *b = ctl_array_get(backends, i), *n = ctl_obj_get(b, "hostNodes");

                printf("Backend %s: %s, policy %s, host nodes ", strna(json_get_string(b, "id")),
                       sz(s, sizeof(s), b, "sizeBytes"), strna(json_get_string(b, "policy")));
                for (size_t k = 0; k < ctl_array_length(n); k++)
                        printf("%s%" PRIi64, k > 0 ? "," : "", json_object_get_int64(ctl_array_get(n, k)));
                printf("%s%s\n", ctl_array_length(n) == 0 ? "any" : "",
                       json_get_bool(b, "share", false) ? ", shared" : "");
        }
        return EXIT_OK;
}

const CtlVerb ctl_monitor_verbs[] = {
        { "monitor", "NAME COMMAND [JSON-ARGS]",
          "Send a QMP command (or with --hmp an HMP line) to a guest's QEMU and print its answer", 2, 64,
          verb_monitor, monitor_options, monitor_option,
          "--hmp: COMMAND… is an HMP line (put -- before it when it has options); "
          "--force: also commands that change what memvisord supervises (quit, stop, device_del, …)" },
        {}
};
