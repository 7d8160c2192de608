/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl verbs about NUMA: numa (host topology), pin, migrate, migrations; and the placement part of
 * "status NAME" (ctl_numa_print_placement). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "numa/cpu-set.h"
#include "ctl/ctl.h"
#include "basic/json-util.h"
#include "basic/parse.h"

static const char *arg_from, *arg_to, *arg_between, *arg_emulator, *arg_scope;
static uint64_t arg_every_usec, arg_settle_usec = UINT64_MAX;
static unsigned arg_count;

enum {
        OPT_FROM = 0x100,
        OPT_TO,
        OPT_BETWEEN,
        OPT_EVERY,
        OPT_COUNT,
        OPT_SETTLE,
        OPT_EMULATOR,
        OPT_SCOPE,
};

static int numa_option(int c, const char *arg) {
        switch (c) {
        case OPT_FROM:
                arg_from = arg;
                return 0;
        case OPT_TO:
                arg_to = arg;
                return 0;
        case OPT_BETWEEN:
                arg_between = arg;
                return 0;
        case OPT_EMULATOR:
                arg_emulator = arg;
                return 0;
        case OPT_SCOPE:
                arg_scope = arg;        /* checked by the daemon (InvalidParameter scope) */
                return 0;
        case OPT_EVERY:
                if (parse_sec(arg, &arg_every_usec) < 0 || arg_every_usec == USEC_INFINITY) {
                        fprintf(stderr, "Invalid --every=%s: expected a time span such as 5s or 500ms.\n", arg);
                        return EXIT_USAGE;
                }
                return 0;
        case OPT_SETTLE:
                if (parse_sec(arg, &arg_settle_usec) < 0 || arg_settle_usec == USEC_INFINITY) {
                        fprintf(stderr, "Invalid --settle=%s: expected a time span such as 1s or 0.\n", arg);
                        return EXIT_USAGE;
                }
                return 0;
        case OPT_COUNT:
                if (parse_unsigned(arg, &arg_count) < 0 || arg_count < 1) {
                        fprintf(stderr, "Invalid --count=%s: expected a number of moves, at least 1.\n", arg);
                        return EXIT_USAGE;
                }
                return 0;
        default:
                return EXIT_USAGE;
        }
}

static const char *sz(char *buf, size_t l, json_object *o, const char *key) {
        return format_size(buf, l, (uint64_t) json_get_int(o, key, 0));
}

/* ---- numa ------------------------------------------------------------------------------------- */

static int verb_numa(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *p, *nodes;
        int r;

        r = ctl_call_show("io.memvisor.Manager.GetTopology", NULL, &reply, &p);
        if (r != EXIT_OK || !p)
                return r;
        nodes = ctl_obj_get(p, "nodes");
        if (arg_legend) {
                printf("%zu node%s, online CPUs %s\n", nodes ? json_object_array_length(nodes) : 0,
                       nodes && json_object_array_length(nodes) == 1 ? "" : "s", strna(json_get_string(p, "onlineCPUs")));
                printf("%-5s %-16s %10s %10s  %s\n", "NODE", "CPUS", "TOTAL", "FREE", "DISTANCES");
        }
        for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
                json_object *n = json_object_array_get_idx(nodes, i), *d = ctl_obj_get(n, "distances");
                char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX];

                printf("%-5" PRIi64 " %-16s %10s %10s ", json_get_int(n, "node", 0),
                       isempty(json_get_string(n, "cpus")) ? "-" : json_get_string(n, "cpus"),
                       sz(a, sizeof(a), n, "memTotalBytes"), sz(b, sizeof(b), n, "memFreeBytes"));
                for (size_t k = 0; d && k < json_object_array_length(d); k++)
                        printf(" %" PRIi64, (int64_t) json_object_get_int64(json_object_array_get_idx(d, k)));
                printf("\n");
        }
        return EXIT_OK;
}

/* ---- status NAME: placement --------------------------------------------------------------------- */

int ctl_numa_print_placement(const char *name) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *pl, *v, *res;
        char b[FORMAT_SIZE_MAX];
        int r;

        r = ctl_call_with_name("io.memvisor.Manager.GetPlacement", name, &reply);
        if (r != EXIT_OK)
                return r;
        pl = ctl_obj_get(ctl_reply_parameters(reply), "placement");
        v = ctl_obj_get(pl, "vcpus");
        printf("    Placement: memory policy %s%s%s", strna(json_get_string(pl, "memoryPolicy")),
               json_get_string(pl, "hostNodes") ? " on nodes " : "", strempty(json_get_string(pl, "hostNodes")));
        if (json_get_string(pl, "vcpuAffinity"))
                printf(", VCPUAffinity=%s", json_get_string(pl, "vcpuAffinity"));
        if (json_get_string(pl, "emulatorAffinity"))
                printf(", EmulatorAffinity=%s", json_get_string(pl, "emulatorAffinity"));
        if (json_get_bool(pl, "migrating", false))
                printf(" (migrating)");
        printf("\n");
        for (size_t i = 0; v && i < json_object_array_length(v); i++) {
                json_object *t = json_object_array_get_idx(v, i);
                char last[32] = "-", node[32] = "";

                if (ctl_obj_get(t, "lastCPU"))
                        snprintf(last, sizeof(last), "%" PRIi64, json_get_int(t, "lastCPU", 0));
                if (ctl_obj_get(t, "lastNode"))
                        snprintf(node, sizeof(node), " (node %" PRIi64 ")", json_get_int(t, "lastNode", 0));
                printf("       vCPU %" PRIi64 ": thread %" PRIi64 ", allowed CPUs %s, last ran on CPU %s%s\n",
                       json_get_int(t, "index", 0), json_get_int(t, "threadId", 0),
                       strna(json_get_string(t, "allowedCPUs")), last, node);
        }
        res = ctl_obj_get(pl, "residency");
        if (res) {
                printf("     Resident: %s", sz(b, sizeof(b), pl, "residentBytes"));
                for (size_t i = 0; i < json_object_array_length(res); i++) {
                        json_object *n = json_object_array_get_idx(res, i);
                        printf("%s node %" PRIi64 ": %s", i == 0 ? " —" : ",", json_get_int(n, "node", 0),
                               sz(b, sizeof(b), n, "bytes"));
                }
                printf("\n");
        } else if (json_get_string(pl, "residencyUnavailable"))
                printf("     Resident: unavailable (%s)\n", json_get_string(pl, "residencyUnavailable"));
        return EXIT_OK;
}

/* ---- pin -------------------------------------------------------------------------------------- */

static int verb_pin(int argc, char **argv) {
        _cleanup_(vcpu_pin_map_done) VcpuPinMap map = {};
        _cleanup_json_ json_object *params = NULL, *reply = NULL;
        _cleanup_free_ char *joined = NULL, *canonical = NULL, *bad = NULL;
        size_t len = 0;
        json_object *v;
        int r;

        for (int i = 2; i < argc; i++)
                len += strlen(argv[i]) + 1;
        joined = calloc(1, len + 1);
        if (!joined)
                return EXIT_CONNECTION;
        for (int i = 2; i < argc; i++) {
                strcat(joined, argv[i]);
                strcat(joined, " ");
        }
        r = vcpu_pin_map_parse(joined, &map, &bad);
        if (r < 0) {
                fprintf(stderr, "Invalid pin map%s%s: expected VCPU=CPULIST arguments such as 0=2 1=3-4 (%s).\n",
                        bad ? " entry " : "", strempty(bad),
                        r == -EEXIST ? "a vCPU is given twice" : r == -ERANGE ? "number out of range" : "syntax");
                return EXIT_USAGE;
        }
        r = vcpu_pin_map_format(&map, &canonical);
        if (r < 0)
                return EXIT_CONNECTION;
        params = json_object_new_object();
        if (!params || json_add_string(params, "name", argv[1]) < 0 || json_add_string(params, "map", canonical) < 0 ||
            json_add_string(params, "emulator", arg_emulator) < 0)
                return EXIT_CONNECTION;
        r = ctl_call("io.memvisor.Manager.PinVCPUs", params, &reply);  /* borrows params */
        if (r != EXIT_OK)
                return r;
        v = ctl_obj_get(ctl_reply_parameters(reply), "vcpus");
        if (arg_json) {
                ctl_print_json(v);
                return EXIT_OK;
        }
        for (size_t i = 0; v && i < json_object_array_length(v); i++) {
                json_object *t = json_object_array_get_idx(v, i);
                printf("vCPU %" PRIi64 ": thread %" PRIi64 ", allowed CPUs %s\n", json_get_int(t, "index", 0),
                       json_get_int(t, "threadId", 0), strna(json_get_string(t, "allowedCPUs")));
        }
        return EXIT_OK;
}

/* ---- migrate ---------------------------------------------------------------------------------- */

static void print_residency(const char *label, json_object *a) {
        char b[FORMAT_SIZE_MAX];

        printf("  %s:", label);
        if (!a || json_object_array_length(a) == 0)
                printf(" nothing resident");
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
                json_object *n = json_object_array_get_idx(a, i);
                printf("%s node %" PRIi64 " %s", i == 0 ? "" : ",", json_get_int(n, "node", 0),
                       sz(b, sizeof(b), n, "bytes"));
        }
        printf("\n");
}

static void print_stats_block(const char *label, json_object *o) {
        if (!o)
                return;
        json_object_object_foreach(o, k, v) {
                if (!ctl_obj_get(v, "delta"))
                        continue;
                printf("    %s %-28s %+" PRIi64 "\n", label, k, json_get_int(v, "delta", 0));
        }
}

/* A guest-ram report's part: what move_pages(2) was asked and did, and the guest RAM's pages per node. */
static void print_guest_ram(json_object *g) {
        char a[FORMAT_SIZE_MAX], ts[FORMAT_TIMESPAN_MAX];
        json_object *ranges = ctl_obj_get(g, "ranges"), *failed = ctl_obj_get(g, "failed");

        if (!g)
                return;
        for (size_t i = 0; ranges && i < json_object_array_length(ranges); i++) {
                json_object *x = json_object_array_get_idx(ranges, i);
                printf("  guest RAM: 0x%" PRIx64 " %s %s\n", (uint64_t) json_get_int(x, "start", 0),
                       sz(a, sizeof(a), x, "size"), json_get_string(x, "path") ?: "(anonymous)");
        }
        printf("  move_pages: %" PRIi64 " pages asked, %" PRIi64 " moved, %" PRIi64 " failed in %" PRIi64
               " call(s), %s, %s/s\n", json_get_int(g, "pagesAsked", 0), json_get_int(g, "pagesMoved", 0),
               json_get_int(g, "pagesFailed", 0), json_get_int(g, "calls", 0),
               format_timespan(ts, sizeof(ts), (uint64_t) json_get_int(g, "moveUSec", 0)),
               format_size(a, sizeof(a), (uint64_t) json_object_get_double(ctl_obj_get(g, "bytesPerSecond"))));
        for (size_t i = 0; failed && i < json_object_array_length(failed); i++) {
                json_object *x = json_object_array_get_idx(failed, i);
                printf("    failed %s: %" PRIi64 " pages\n", strna(json_get_string(x, "errno")), json_get_int(x, "pages", 0));
        }
        print_residency("guest RAM before", ctl_obj_get(g, "residencyBefore"));
        print_residency("guest RAM after", ctl_obj_get(g, "residencyAfter"));
}

static void print_report(json_object *rep) {
        char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX], ts[FORMAT_TIMESPAN_MAX], t[64];
        json_object *kvm = ctl_obj_get(rep, "kvmStats"), *tp = ctl_obj_get(rep, "tracepoints");

        printf("Migration %" PRIi64 " of %s: node(s) %s → %s, %s", json_get_int(rep, "id", 0),
               strna(json_get_string(rep, "name")), strna(json_get_string(rep, "from")),
               strna(json_get_string(rep, "to")), strna(json_get_string(rep, "result")));
        if (json_get_string(rep, "error"))
                printf(" (%s)", json_get_string(rep, "error"));
        printf("\n  started %s\n", ctl_format_realtime(t, sizeof(t), (uint64_t) json_get_int(rep, "startedRealtimeUSec", 0)));
        if (ctl_obj_get(rep, "bytesMoved")) {
                printf("  moved: %" PRIi64 " pages, %s; not moved: %" PRIi64 " pages, %s (migrate_pages: %" PRIi64 ")\n",
                       json_get_int(rep, "pagesMoved", 0), sz(a, sizeof(a), rep, "bytesMoved"),
                       json_get_int(rep, "pagesNotMoved", 0), sz(b, sizeof(b), rep, "bytesNotMoved"),
                       json_get_int(rep, "syscallPagesNotMoved", 0));
                printf("  duration: %s, throughput %s/s, on target afterwards: %.1f%%\n",
                       format_timespan(ts, sizeof(ts), (uint64_t) json_get_int(rep, "durationUSec", 0)),
                       format_size(a, sizeof(a), (uint64_t) json_object_get_double(ctl_obj_get(rep, "bytesPerSecond"))),
                       100.0 * json_object_get_double(ctl_obj_get(rep, "fractionOnTarget")));
        }
        print_residency("before", ctl_obj_get(rep, "residencyBefore"));
        print_residency("after", ctl_obj_get(rep, "residencyAfter"));
        print_guest_ram(ctl_obj_get(rep, "guestRam"));
        printf("  KVM counters (settle %s): ",
               format_timespan(ts, sizeof(ts), (uint64_t) json_get_int(rep, "settleUSec", 0)));
        if (json_get_bool(kvm, "available", false)) {
                printf("\n");
                print_stats_block("vm  ", ctl_obj_get(kvm, "vm"));
                print_stats_block("vcpu", ctl_obj_get(kvm, "vcpus"));
        } else
                printf("unavailable: %s\n", strna(json_get_string(kvm, "reason")));
        if (json_get_bool(tp, "available", false))
                printf("  tracepoints: kvm:kvm_page_fault %" PRIi64 ", kvm:kvm_exit %" PRIi64 "\n",
                       json_get_int(tp, "kvmPageFault", 0), json_get_int(tp, "kvmExit", 0));
        else
                printf("  tracepoints: unavailable: %s\n", strna(json_get_string(tp, "reason")));
}

/* The final reply of a ping-pong: the summary of its moves (each report was printed as it streamed). */
static void print_summary(const char *name, json_object *p) {
        char a[FORMAT_SIZE_MAX], d[FORMAT_TIMESPAN_MAX], e[FORMAT_TIMESPAN_MAX];

        printf("Ping-pong of %s: %" PRIi64 " move(s), %" PRIi64 " failed; moved %s (%" PRIi64 " pages) in %s of "
               "migrate_pages, %s in all",
               name, json_get_int(p, "moves", 0), json_get_int(p, "movesFailed", 0), sz(a, sizeof(a), p, "bytesMoved"),
               json_get_int(p, "pagesMoved", 0),
               format_timespan(d, sizeof(d), (uint64_t) json_get_int(p, "durationUSec", 0)),
               format_timespan(e, sizeof(e), (uint64_t) json_get_int(p, "elapsedUSec", 0)));
        if (ctl_obj_get(p, "firstReportId"))
                printf("; reports %" PRIi64 "-%" PRIi64 " (memvisorctl migrations %s)", json_get_int(p, "firstReportId", 0),
                       json_get_int(p, "lastReportId", 0), name);
        printf("\n");
}

static int migrate_reply(json_object *p, bool more, void *userdata) {
        const char *phase;

        if (!p)
                return 0;
        phase = strna(json_get_string(p, "phase"));
        if (arg_json) {
                if (streq(phase, "moved") || streq(phase, "done"))
                        ctl_print_json(p);
        } else if (streq(phase, "moved"))
                print_report(ctl_obj_get(p, "report"));
        else if (streq(phase, "done")) {
                if (arg_between)
                        print_summary(userdata, p);
        } else
                fprintf(stderr, "[move %" PRIi64 "/%" PRIi64 "] %s\n", json_get_int(p, "move", 0),
                        json_get_int(p, "moves", 0), phase);
        return 0;
}

static int verb_migrate(int argc, char **argv) {
        _cleanup_json_ json_object *params = NULL;

        if (!arg_between && (!arg_from || !arg_to)) {
                fprintf(stderr, "migrate needs --from=NODES and --to=NODES, or --between=A,B.\n");
                return EXIT_USAGE;
        }
        if (arg_between && (arg_from || arg_to)) {
                fprintf(stderr, "--between excludes --from and --to.\n");
                return EXIT_USAGE;
        }
        if (!arg_between && (arg_count > 1 || arg_every_usec > 0)) {
                fprintf(stderr, "--count and --every need --between.\n");
                return EXIT_USAGE;
        }
        params = json_object_new_object();
        if (!params || json_add_string(params, "name", argv[1]) < 0 ||
            json_add_string(params, "from", arg_from) < 0 || json_add_string(params, "to", arg_to) < 0 ||
            json_add_string(params, "between", arg_between) < 0 ||
            json_add_string(params, "scope", arg_scope) < 0 ||
            (arg_between && arg_count > 0 && json_add_int(params, "count", arg_count) < 0) ||
            (arg_between && arg_every_usec > 0 && json_add_uint(params, "everyUSec", arg_every_usec) < 0) ||
            (arg_settle_usec != UINT64_MAX && json_add_uint(params, "settleUSec", arg_settle_usec) < 0))
                return EXIT_CONNECTION;

        return ctl_call_more("io.memvisor.Manager.MigratePages", params, migrate_reply, argv[1]);
}

static int verb_migrations(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *p, *a;
        int r;

        r = ctl_call_with_name("io.memvisor.Manager.ListMigrations", argv[1], &reply);
        if (r != EXIT_OK)
                return r;
        p = ctl_reply_parameters(reply);
        a = ctl_obj_get(p, "migrations");
        if (arg_json) {
                ctl_print_json(p);
                return EXIT_OK;
        }
        if (arg_legend)
                printf("%-4s %-20s %-6s %-6s %-7s %12s %12s %10s %8s\n", "ID", "STARTED", "FROM", "TO", "RESULT",
                       "MOVED", "NOT MOVED", "DURATION", "TARGET%");
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
                json_object *rep = json_object_array_get_idx(a, i);
                char t[64], x[FORMAT_SIZE_MAX], y[FORMAT_SIZE_MAX], d[FORMAT_TIMESPAN_MAX];

                printf("%-4" PRIi64 " %-20.20s %-6s %-6s %-7s %12s %12s %10s %7.1f%%\n", json_get_int(rep, "id", 0),
                       ctl_format_realtime(t, sizeof(t), (uint64_t) json_get_int(rep, "startedRealtimeUSec", 0)),
                       strna(json_get_string(rep, "from")), strna(json_get_string(rep, "to")),
                       strna(json_get_string(rep, "result")), sz(x, sizeof(x), rep, "bytesMoved"),
                       sz(y, sizeof(y), rep, "bytesNotMoved"),
                       format_timespan(d, sizeof(d), (uint64_t) json_get_int(rep, "durationUSec", 0)),
                       100.0 * json_object_get_double(ctl_obj_get(rep, "fractionOnTarget")));
        }
        if (arg_legend && (!a || json_object_array_length(a) == 0))
                printf("(no migrations recorded)\n");
        if (arg_legend && json_get_bool(p, "inProgress", false))
                printf("A migration is in progress.\n");
        return EXIT_OK;
}

static const struct option migrate_options[] = {
        { "from", required_argument, NULL, OPT_FROM },
        { "to", required_argument, NULL, OPT_TO },
        { "between", required_argument, NULL, OPT_BETWEEN },
        { "every", required_argument, NULL, OPT_EVERY },
        { "count", required_argument, NULL, OPT_COUNT },
        { "settle", required_argument, NULL, OPT_SETTLE },
        { "scope", required_argument, NULL, OPT_SCOPE },
        {}
};

static const struct option pin_options[] = {
        { "emulator", required_argument, NULL, OPT_EMULATOR },
        {}
};

const CtlVerb ctl_numa_verbs[] = {
        { "numa", "", "Show the host's NUMA nodes: CPUs, total and free memory, distances", 0, 0, verb_numa },
        { "pin", "NAME VCPU=CPUS...", "Pin vCPU threads of a running guest (e.g. pin web 0=2 1=3)", 2, VCPU_PIN_MAX + 1,
          verb_pin, pin_options, numa_option, "--emulator=CPUS: also pin QEMU's other threads" },
        { "migrate", "NAME", "Move a guest's memory between host nodes and report what it cost", 1, 1, verb_migrate,
          migrate_options, numa_option,
          "--from=NODES --to=NODES: one move; --between=A,B --every=SPAN --count=N: ping-pong; "
          "--settle=SPAN: wait before reading the KVM counters again (default 1s); "
          "--scope=process|guest-ram: the whole QEMU process (default) or the guest RAM alone (move_pages)" },
        { "migrations", "NAME", "List the recorded page migrations of a guest", 1, 1, verb_migrations },
        {}
};
