/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl verbs about ballooning: balloon NAME [SIZE] (show, set, --wait, schedules), balloon-steps NAME,
 * balloon-decisions NAME. */
#include <inttypes.h>
#include <stdio.h>

#include "balloon/balloon-util.h"
#include "ctl/ctl.h"
#include "basic/json-util.h"
#include "basic/parse.h"

static bool arg_wait = false;
static const char *arg_timeout = NULL;
static const char *arg_between = NULL;
static const char *arg_ramp = NULL;
static const char *arg_every = NULL;
static const char *arg_count = NULL;
static bool arg_cancel = false;

enum { ARG_WAIT = 0x100, ARG_TIMEOUT, ARG_BETWEEN, ARG_RAMP, ARG_EVERY, ARG_COUNT, ARG_CANCEL };

static const struct option balloon_options[] = {
        { "wait", no_argument, NULL, ARG_WAIT },
        { "timeout", required_argument, NULL, ARG_TIMEOUT },
        { "between", required_argument, NULL, ARG_BETWEEN },
        { "ramp", required_argument, NULL, ARG_RAMP },
        { "every", required_argument, NULL, ARG_EVERY },
        { "count", required_argument, NULL, ARG_COUNT },
        { "cancel", no_argument, NULL, ARG_CANCEL },
        {}
};

static int balloon_option(int c, const char *arg) {
        switch (c) {
        case ARG_WAIT:
                arg_wait = true;
                break;
        case ARG_TIMEOUT:
                arg_timeout = arg;
                break;
        case ARG_BETWEEN:
                arg_between = arg;
                break;
        case ARG_RAMP:
                arg_ramp = arg;
                break;
        case ARG_EVERY:
                arg_every = arg;
                break;
        case ARG_COUNT:
                arg_count = arg;
                break;
        case ARG_CANCEL:
                arg_cancel = true;
                break;
        default:
                return EXIT_USAGE;
        }
        return 0;
}

static const char *size_or_dash(char *buf, size_t l, json_object *o, const char *key) {
        if (!ctl_obj_get(o, key))
                return "-";
        return format_size(buf, l, (uint64_t) json_get_int(o, key, 0));
}

static int show_balloon(const char *name) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *b, *st, *sch, *d;
        char a[FORMAT_SIZE_MAX], t[FORMAT_TIMESPAN_MAX];
        int r;

        r = ctl_call_with_name("io.memvisor.Manager.GetBalloon", name, &reply);
        if (r != EXIT_OK)
                return r;
        b = ctl_obj_get(ctl_reply_parameters(reply), "balloon");
        if (arg_json) {
                ctl_print_json(b);
                return EXIT_OK;
        }
        printf("%s - %s%s\n", json_get_string(b, "name"), strna(json_get_string(b, "state")),
               json_get_bool(b, "tracking", false) ? "" : " (balloon not tracked: the guest is not running)");
        printf("       Target: %s\n", size_or_dash(a, sizeof(a), b, "targetBytes"));
        printf("       Actual: %s\n", size_or_dash(a, sizeof(a), b, "actualBytes"));
        printf("  Boot memory: %s\n", size_or_dash(a, sizeof(a), b, "memoryBytes"));
        printf("        Floor: %s\n", size_or_dash(a, sizeof(a), b, "floorBytes"));
        printf("      Ceiling: %s\n", size_or_dash(a, sizeof(a), b, "ceilingBytes"));
        printf("       Policy: %s\n", json_get_bool(b, "policy", false) ? "on" : "off");
        printf("Stats polling: every %s\n",
               format_timespan(t, sizeof(t), (uint64_t) json_get_int(b, "statsIntervalUSec", 0)));

        st = ctl_obj_get(b, "guestStats");
        if (st) {
                char ts[64];

                printf("  Guest stats:\n");
                printf("         free: %s\n", size_or_dash(a, sizeof(a), st, "freeBytes"));
                printf("    available: %s\n", size_or_dash(a, sizeof(a), st, "availableBytes"));
                printf("        total: %s\n", size_or_dash(a, sizeof(a), st, "totalBytes"));
                printf("  disk caches: %s\n", size_or_dash(a, sizeof(a), st, "diskCachesBytes"));
                printf("      swap in: %s\n", size_or_dash(a, sizeof(a), st, "swapInBytes"));
                printf("     swap out: %s\n", size_or_dash(a, sizeof(a), st, "swapOutBytes"));
                printf(" major faults: %" PRIi64 "\n", json_get_int(st, "majorFaults", -1));
                printf(" minor faults: %" PRIi64 "\n", json_get_int(st, "minorFaults", -1));
                printf("  last update: %s\n",
                       ctl_format_realtime(ts, sizeof(ts), (uint64_t) json_get_int(st, "lastUpdateRealtimeUSec", 0)));
        } else
                printf("  Guest stats: none yet (the guest's virtio_balloon driver has not reported)\n");

        sch = ctl_obj_get(b, "schedule");
        if (sch) {
                char f[FORMAT_SIZE_MAX], to[FORMAT_SIZE_MAX];
                printf("     Schedule: %s %s → %s every %s, step %" PRIi64 " of %" PRIi64 " next (%s)\n",
                       strna(json_get_string(sch, "mode")), size_or_dash(f, sizeof(f), sch, "fromBytes"),
                       size_or_dash(to, sizeof(to), sch, "toBytes"),
                       format_timespan(t, sizeof(t), (uint64_t) json_get_int(sch, "everyUSec", 0)),
                       json_get_int(sch, "nextStep", 0), json_get_int(sch, "count", 0),
                       strna(json_get_string(sch, "origin")));
        }
        sch = ctl_obj_get(b, "scheduleInterrupted");
        if (sch) {
                char f[FORMAT_SIZE_MAX], to[FORMAT_SIZE_MAX], ts[64];
                printf("  Interrupted: %s %s → %s every %s, before step %" PRIi64 " of %" PRIi64 " (%s), at %s: %s\n",
                       strna(json_get_string(sch, "mode")), size_or_dash(f, sizeof(f), sch, "fromBytes"),
                       size_or_dash(to, sizeof(to), sch, "toBytes"),
                       format_timespan(t, sizeof(t), (uint64_t) json_get_int(sch, "everyUSec", 0)),
                       json_get_int(sch, "nextStep", 0), json_get_int(sch, "count", 0),
                       strna(json_get_string(sch, "origin")),
                       ctl_format_realtime(ts, sizeof(ts), (uint64_t) json_get_int(sch, "interruptedRealtimeUSec", 0)),
                       strna(json_get_string(sch, "interruptedReason")));
        }
        d = ctl_obj_get(b, "lastDecision");
        if (d)
                printf("Last decision: %s to %s (%s)\n", strna(json_get_string(d, "action")),
                       size_or_dash(a, sizeof(a), d, "targetBytes"), strna(json_get_string(d, "reason")));
        if (json_get_string(b, "recordError"))
                printf("       Record: %s\n", json_get_string(b, "recordError"));
        return EXIT_OK;
}

static int balloon_wait_reply(json_object *p, bool more, void *userdata) {
        char b[FORMAT_SIZE_MAX], t[FORMAT_TIMESPAN_MAX];

        if (!p)
                return 0;
        if (arg_json)
                ctl_print_json(p);
        else
                printf("%s: actual %s after %s%s\n", (const char *) userdata,
                       size_or_dash(b, sizeof(b), p, "actualBytes"),
                       format_timespan(t, sizeof(t), (uint64_t) json_get_int(p, "elapsedUSec", 0)),
                       json_get_bool(p, "reached", false) ? " (target reached)" : "");
        return 0;
}

static int set_balloon(const char *name, const char *size) {
        _cleanup_json_ json_object *params = json_object_new_object();
        uint64_t target, timeout;
        char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX];
        int r;

        r = ctl_parse_size_and_timeout(size, arg_timeout, arg_wait, &target, &timeout);
        if (r != 0)
                return r;
        if (!params || json_add_string(params, "name", name) < 0 || json_add_uint(params, "targetBytes", target) < 0 ||
            (timeout > 0 && json_add_uint(params, "timeoutUSec", timeout) < 0))
                return EXIT_CONNECTION;

        if (!arg_wait) {
                _cleanup_json_ json_object *reply = NULL;

                r = ctl_call("io.memvisor.Manager.SetBalloon", params, &reply);
                if (r != EXIT_OK)
                        return r;
                if (arg_json)
                        ctl_print_json(ctl_reply_parameters(reply));
                else
                        printf("%s: balloon target %s (actual %s)\n", name,
                               format_size(a, sizeof(a), target),
                               size_or_dash(b, sizeof(b), ctl_reply_parameters(reply), "actualBytes"));
                return EXIT_OK;
        }
        if (!arg_json)
                printf("%s: balloon target %s, waiting…\n", name, format_size(a, sizeof(a), target));
        return ctl_call_more("io.memvisor.Manager.SetBalloon", params, balloon_wait_reply, (void *) name);
}

static int set_schedule(const char *name) {
        _cleanup_json_ json_object *params = json_object_new_object(), *reply = NULL;
        const char *pair = arg_between ?: arg_ramp, *opt = arg_between ? "--between=" : "--ramp=";
        uint64_t from, to, every;
        unsigned count, which = 0;
        int r;

        if (arg_between && arg_ramp) {
                fprintf(stderr, "--between= and --ramp= exclude each other\n");
                return EXIT_USAGE;
        }
        if (!arg_every || !arg_count) {
                fprintf(stderr, "%s needs --every= and --count=\n", opt);
                return EXIT_USAGE;
        }
        r = balloon_parse_size_pair(pair, &from, &to, &which);
        if (r == -ENOMEM)
                return EXIT_CONNECTION;
        if (r < 0) {
                fprintf(stderr, "Invalid value '%s' for %s: %s size %s; expected two sizes such as 256M,512M\n", pair,
                        opt, which == 0 ? "first" : "second", r == -ERANGE ? "too large" : "malformed or missing");
                return EXIT_USAGE;
        }
        if (parse_sec(arg_every, &every) < 0 || every == USEC_INFINITY) {
                fprintf(stderr, "Invalid value '%s' for --every=: expected a time span such as 10s\n", arg_every);
                return EXIT_USAGE;
        }
        if (parse_unsigned(arg_count, &count) < 0) {
                fprintf(stderr, "Invalid value '%s' for --count=: expected a number of steps\n", arg_count);
                return EXIT_USAGE;
        }
        if (!params || json_add_string(params, "name", name) < 0 ||
            json_add_string(params, "mode", arg_between ? "oscillate" : "ramp") < 0 ||
            json_add_uint(params, "fromBytes", from) < 0 || json_add_uint(params, "toBytes", to) < 0 ||
            json_add_uint(params, "everyUSec", every) < 0 || json_add_uint(params, "count", count) < 0)
                return EXIT_CONNECTION;
        r = ctl_call("io.memvisor.Manager.SetBalloonSchedule", params, &reply);
        if (r != EXIT_OK)
                return r;
        if (arg_json)
                ctl_print_json(ctl_reply_parameters(reply));
        else {
                char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX], t[FORMAT_TIMESPAN_MAX];
                printf("%s: balloon schedule started: %s %s → %s, %u steps every %s\n", name,
                       arg_between ? "oscillate" : "ramp", format_size(a, sizeof(a), from), format_size(b, sizeof(b), to),
                       count, format_timespan(t, sizeof(t), every));
        }
        return EXIT_OK;
}

static int verb_balloon(int argc, char **argv) {
        bool schedule = arg_between || arg_ramp;

        if (arg_cancel) {
                _cleanup_json_ json_object *reply = NULL;
                int r;

                if (argc > 2 || schedule || arg_wait) {
                        fprintf(stderr, "--cancel takes no SIZE and no other option\n");
                        return EXIT_USAGE;
                }
                r = ctl_call_with_name("io.memvisor.Manager.CancelBalloonSchedule", argv[1], &reply);
                if (r == EXIT_OK && !arg_json)
                        printf("%s: balloon schedule cancelled\n", argv[1]);
                return r;
        }
        if (schedule) {
                if (argc > 2 || arg_wait) {
                        fprintf(stderr, "A schedule (--between=/--ramp=) takes no SIZE and no --wait\n");
                        return EXIT_USAGE;
                }
                return set_schedule(argv[1]);
        }
        if ((arg_every || arg_count) && !schedule) {
                fprintf(stderr, "--every= and --count= need --between= or --ramp=\n");
                return EXIT_USAGE;
        }
        if (argc == 2) {
                if (arg_wait || arg_timeout) {
                        fprintf(stderr, "--wait needs a SIZE\n");
                        return EXIT_USAGE;
                }
                return show_balloon(argv[1]);
        }
        return set_balloon(argv[1], argv[2]);
}

static int verb_balloon_steps(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *steps;
        int r;

        r = ctl_call_with_name("io.memvisor.Manager.GetBalloonSteps", argv[1], &reply);
        if (r != EXIT_OK)
                return r;
        steps = ctl_obj_get(ctl_reply_parameters(reply), "steps");
        if (arg_json) {
                ctl_print_json(steps);
                return EXIT_OK;
        }
        if (arg_legend)
                printf("%-5s %-23s %9s %9s %9s %10s %s\n", "STEP", "TIME", "TARGET", "START", "ACTUAL", "REACHED IN",
                       "KVM");
        for (size_t i = 0; steps && i < json_object_array_length(steps); i++) {
                json_object *s = json_object_array_get_idx(steps, i), *kvm = ctl_obj_get(s, "kvm");
                char ts[64], tg[FORMAT_SIZE_MAX], st[FORMAT_SIZE_MAX], ac[FORMAT_SIZE_MAX], d[FORMAT_TIMESPAN_MAX];
                _cleanup_free_ char *kvmtext = NULL;

                if (kvm && !json_get_bool(kvm, "available", true))
                        kvmtext = strdup(strna(json_get_string(kvm, "reason")));
                else if (kvm)
                        kvmtext = strdup(json_object_to_json_string_ext(kvm, JSON_C_TO_STRING_PLAIN));
                printf("%-5" PRIi64 " %-23s %9s %9s %9s %10s %s%s%s\n", json_get_int(s, "index", 0),
                       ctl_format_realtime(ts, sizeof(ts), (uint64_t) json_get_int(s, "realtimeUSec", 0)),
                       size_or_dash(tg, sizeof(tg), s, "targetBytes"), size_or_dash(st, sizeof(st), s, "actualStartBytes"),
                       size_or_dash(ac, sizeof(ac), s, "actualBytes"),
                       json_get_bool(s, "reached", false)
                               ? format_timespan(d, sizeof(d), (uint64_t) json_get_int(s, "timeToReachUSec", 0))
                               : (json_get_bool(s, "finished", false) ? "not" : "running"),
                       strna(kvmtext), json_get_string(s, "error") ? "; " : "", strempty(json_get_string(s, "error")));
        }
        if (arg_legend && (!steps || json_object_array_length(steps) == 0))
                printf("(no steps recorded)\n");
        return EXIT_OK;
}

static int verb_balloon_decisions(int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *p, *list;
        int r;

        r = ctl_call_with_name("io.memvisor.Manager.GetBalloonDecisions", argv[1], &reply);
        if (r != EXIT_OK)
                return r;
        p = ctl_reply_parameters(reply);
        if (arg_json) {
                ctl_print_json(p);
                return EXIT_OK;
        }
        list = ctl_obj_get(p, "decisions");
        if (arg_legend) {
                printf("Host: %s\n", strna(json_get_string(p, "hostState")));
                printf("%-23s %-8s %-14s %9s %9s %10s %10s %10s\n", "TIME", "ACTION", "REASON", "ACTUAL", "TARGET",
                       "GUEST AVL", "HOST AVL", "COMMITTED");
        }
        for (size_t i = 0; list && i < json_object_array_length(list); i++) {
                json_object *d = json_object_array_get_idx(list, i), *h = ctl_obj_get(d, "host");
                char ts[64], a[FORMAT_SIZE_MAX], t[FORMAT_SIZE_MAX], g[FORMAT_SIZE_MAX], ha[FORMAT_SIZE_MAX],
                        ca[FORMAT_SIZE_MAX];

                printf("%-23s %-8s %-14s %9s %9s %10s %10s %10s\n",
                       ctl_format_realtime(ts, sizeof(ts), (uint64_t) json_get_int(d, "realtimeUSec", 0)),
                       strna(json_get_string(d, "action")), strna(json_get_string(d, "reason")),
                       size_or_dash(a, sizeof(a), d, "actualBytes"), size_or_dash(t, sizeof(t), d, "targetBytes"),
                       size_or_dash(g, sizeof(g), d, "guestAvailableBytes"),
                       size_or_dash(ha, sizeof(ha), h, "memAvailableBytes"),
                       size_or_dash(ca, sizeof(ca), h, "committedASBytes"));
        }
        if (arg_legend && (!list || json_object_array_length(list) == 0))
                printf("(no policy decisions: the policy is off for this guest, or has not run yet)\n");
        return EXIT_OK;
}

const CtlVerb ctl_balloon_verbs[] = {
        { "balloon", "NAME [SIZE]",
          "Show the balloon and guest statistics, set a target (SIZE such as 256M), or run a schedule", 1, 2,
          verb_balloon, balloon_options, balloon_option,
          "  --wait             follow the balloon until it reaches SIZE (prints the actual size as it moves)\n"
          "  --timeout=SPAN     give up waiting after SPAN (default: the daemon's WaitTimeoutSec=, 30s)\n"
          "  --between=A,B      oscillate between sizes A and B (with --every= and --count=)\n"
          "  --ramp=A,B         move from A to B in --count= even steps (with --every=)\n"
          "  --every=SPAN       time between schedule steps\n"
          "  --count=N          number of schedule steps\n"
          "  --cancel           stop the running schedule\n" },
        { "balloon-steps", "NAME", "List the recorded balloon schedule steps with their KVM counter deltas", 1, 1,
          verb_balloon_steps },
        { "balloon-decisions", "NAME", "List the host-pressure policy's decisions for a guest and their inputs", 1, 1,
          verb_balloon_decisions },
        {}
};
