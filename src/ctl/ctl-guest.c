/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl guest NAME info|counters|exec|copy: readings and actions inside a guest through its QEMU guest agent
 * (the GuestInfo, GuestCounters, GuestExec and GuestCopy methods). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "basic/base64.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/parse.h"
#include "ctl/ctl.h"

#define GUEST_COPY_MAX (8U * 1024U * 1024U)
/* exec and counters --around exit with the program's status; their own failures are 255, as ssh's are. */
#define EXIT_GUEST_CTL_FAILED 255

static const char *arg_timeout = NULL;
static const char *arg_mode = NULL;
static bool arg_around = false;
static bool arg_all = false;
static char **arg_env = NULL;
static size_t arg_n_env = 0;

enum { ARG_TIMEOUT = 0x100, ARG_MODE, ARG_AROUND, ARG_ALL, ARG_ENV };

static const struct option guest_options[] = {
        { "timeout", required_argument, NULL, ARG_TIMEOUT },
        { "mode", required_argument, NULL, ARG_MODE },
        { "around", no_argument, NULL, ARG_AROUND },
        { "all", no_argument, NULL, ARG_ALL },
        { "env", required_argument, NULL, ARG_ENV },
        {}
};

static int guest_option(int c, const char *arg) {
        char **l;

        switch (c) {
        case ARG_TIMEOUT:
                arg_timeout = arg;
                break;
        case ARG_MODE:
                arg_mode = arg;
                break;
        case ARG_AROUND:
                arg_around = true;
                break;
        case ARG_ALL:
                arg_all = true;
                break;
        case ARG_ENV:
                if (!strchr(arg, '=') || arg[0] == '=') {
                        fprintf(stderr, "--env= takes NAME=VALUE, not '%s'.\n", arg);
                        return EXIT_USAGE;
                }
                l = reallocarray(arg_env, arg_n_env + 2, sizeof(char *));
                if (!l)
                        return EXIT_USAGE;
                arg_env = l;
                arg_env[arg_n_env++] = (char *) arg;
                arg_env[arg_n_env] = NULL;
                break;
        default:
                return EXIT_USAGE;
        }
        return 0;
}

/* One connection for the calls of a verb (--around makes three). Consumes params. */
static int call(VarlinkClient *c, const char *method, json_object *params_in, json_object **ret_reply) {
        _cleanup_json_ json_object *reply = NULL, *params = params_in;
        int r;

        if (!params)
                return log_oom(), EXIT_CONNECTION;
        r = varlink_client_call(c, method, params, &reply);
        if (r < 0)
                return ctl_connection_failed(r, "Failed to call %s", method);
        if (json_get_string(reply, "error"))
                return ctl_report_error(reply);
        *ret_reply = TAKE_PTR(reply);
        return EXIT_OK;
}

static json_object *name_params(const char *name) {
        json_object *p = json_object_new_object();

        if (p && json_add_string(p, "name", name) < 0) {
                json_object_put(p);
                return NULL;
        }
        return p;
}

/* ---- info ------------------------------------------------------------------------------------- */

static void print_unavailable(json_object *o) {
        json_object *u = ctl_obj_get(o, "unavailable");

        for (size_t i = 0; u && i < json_object_array_length(u); i++) {
                json_object *e = json_object_array_get_idx(u, i);

                printf("%-14s %s: %s\n", i == 0 ? "Unavailable:" : "", strna(json_get_string(e, "name")),
                       strna(json_get_string(e, "reason")));
        }
}

static int guest_info(VarlinkClient *c, const char *name) {
        _cleanup_json_ json_object *reply = NULL;
        char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX];
        json_object *info, *nodes;
        int r;

        r = call(c, "io.memvisor.Manager.GuestInfo", name_params(name), &reply);
        if (r != EXIT_OK)
                return r;
        info = ctl_obj_get(ctl_reply_parameters(reply), "info");
        if (arg_json) {
                ctl_print_json(info);
                return EXIT_OK;
        }
        printf("%-14s %s\n", "Agent:", strna(json_get_string(info, "agentVersion")));
        printf("%-14s %s\n", "OS:", json_get_string(info, "osPrettyName") ?: strna(json_get_string(info, "osName")));
        printf("%-14s %s %s\n", "Kernel:", strna(json_get_string(info, "kernelRelease")),
               strempty(json_get_string(info, "kernelVersion")));
        printf("%-14s %s\n", "Machine:", strna(json_get_string(info, "machine")));
        printf("%-14s %" PRIi64 " (%" PRIi64 " online)\n", "vCPUs:", json_get_int(info, "vcpus", 0),
               json_get_int(info, "vcpusOnline", 0));
        if (ctl_obj_get(info, "memoryBlockSizeBytes"))
                printf("%-14s %" PRIi64 " × %s (%" PRIi64 " online)\n", "Memory blocks:",
                       json_get_int(info, "memoryBlocks", 0),
                       format_size(a, sizeof(a), (uint64_t) json_get_int(info, "memoryBlockSizeBytes", 0)),
                       json_get_int(info, "memoryBlocksOnline", 0));
        nodes = ctl_obj_get(info, "nodes");
        for (size_t i = 0; nodes && i < json_object_array_length(nodes); i++) {
                json_object *n = json_object_array_get_idx(nodes, i);

                printf("%-14s node %" PRIi64 ": CPUs %s, %s (%s free)\n", i == 0 ? "Guest nodes:" : "",
                       json_get_int(n, "id", 0), strna(json_get_string(n, "cpus")),
                       format_size(a, sizeof(a), (uint64_t) json_get_int(n, "memTotalBytes", 0)),
                       format_size(b, sizeof(b), (uint64_t) json_get_int(n, "memFreeBytes", 0)));
        }
        print_unavailable(info);
        return EXIT_OK;
}

/* ---- counters --------------------------------------------------------------------------------- */

/* The vmstat keys shown without --all: faults, migration, NUMA balancing, THP, reclaim and TLB flushes. */
static bool key_is_interesting(const char *k) {
        static const char *const prefixes[] = {
                "pgfault", "pgmajfault", "pgmigrate_", "numa_", "thp_fault", "thp_migration", "nr_tlb_",
                "pgscan", "pgsteal", "balloon_", "compact_", "workingset_refault",
        };

        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strncmp(k, prefixes[i], strlen(prefixes[i])) == 0)
                        return true;
        return false;
}

static void print_irq_row(const char *label, json_object *row, json_object *base) {
        printf("%-28s", label);
        for (size_t i = 0; i < json_object_array_length(row); i++) {
                int64_t v = json_object_get_int64(json_object_array_get_idx(row, i));

                if (base && i < json_object_array_length(base))
                        v -= json_object_get_int64(json_object_array_get_idx(base, i));
                printf(" %12" PRIi64, v);
        }
        fputc('\n', stdout);
}

static void print_counters(json_object *counters) {
        json_object *vmstat = ctl_obj_get(counters, "vmstat"), *row;
        char t[64];

        printf("Guest time: %s\n", ctl_format_realtime(t, sizeof(t),
                                                       (uint64_t) json_get_int(counters, "guestRealtimeNSec", 0) / 1000));
        if ((row = ctl_obj_get(counters, "tlb")))
                print_irq_row("TLB shootdowns (per CPU)", row, NULL);
        if ((row = ctl_obj_get(counters, "cal")))
                print_irq_row("Function calls (per CPU)", row, NULL);
        if (arg_legend)
                printf("%-36s %20s\n", "VMSTAT", "VALUE");
        json_object_object_foreach(vmstat, k, v)
                if (arg_all || key_is_interesting(k))
                        printf("%-36s %20" PRIi64 "\n", k, json_object_get_int64(v));
        print_unavailable(counters);
}

static int guest_counters_once(VarlinkClient *c, const char *name) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *counters;
        int r;

        r = call(c, "io.memvisor.Manager.GuestCounters", name_params(name), &reply);
        if (r != EXIT_OK)
                return r;
        counters = ctl_obj_get(ctl_reply_parameters(reply), "counters");
        if (arg_json)
                ctl_print_json(counters);
        else
                print_counters(counters);
        return EXIT_OK;
}

/* ---- exec ------------------------------------------------------------------------------------- */

static int exec_params(const char *name, int argc, char **argv, json_object **ret) {
        _cleanup_json_ json_object *p = name_params(name), *a = json_object_new_array(), *env = NULL;
        uint64_t timeout;
        int r;

        if (!p || !a)
                return -ENOMEM;
        for (int i = 0; i < argc; i++)
                if (json_object_array_add(a, json_object_new_string(argv[i])) < 0)
                        return -ENOMEM;
        if ((r = json_add(p, "argv", TAKE_PTR(a))) < 0)
                return r;
        if (arg_env) {
                env = json_object_new_array();
                if (!env)
                        return -ENOMEM;
                for (size_t i = 0; i < arg_n_env; i++)
                        if (json_object_array_add(env, json_object_new_string(arg_env[i])) < 0)
                                return -ENOMEM;
                if ((r = json_add(p, "env", TAKE_PTR(env))) < 0)
                        return r;
        }
        if (arg_timeout) {
                if (parse_sec(arg_timeout, &timeout) < 0 || timeout == 0) {
                        fprintf(stderr, "Invalid --timeout=%s: expected a time span such as 30s or 5min.\n", arg_timeout);
                        return -EINVAL;
                }
                if ((r = json_add_uint(p, "timeoutUSec", timeout)) < 0)
                        return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

static void write_b64(FILE *f, json_object *result, const char *key) {
        const char *s = json_get_string(result, key);
        _cleanup_free_ char *data = NULL;
        size_t n = 0;

        if (!s)
                return;
        if (base64_decode(s, strlen(s), GUEST_COPY_MAX, &data, &n) < 0)
                fprintf(stderr, "memvisorctl: the %s of the program is not valid base64, not shown.\n", key);
        else if (n > 0)
                (void) fwrite(data, 1, n, f);
}

/* The program's exit status as ours, as ssh does: its exit code, 128+N for a signal, 124 for a timeout. */
static int exec_status(json_object *result) {
        int64_t sig = json_get_int(result, "signal", 0);

        if (json_get_bool(result, "timedOut", false))
                return 124;
        if (sig > 0)
                return (int) (128 + MIN(sig, (int64_t) 127));
        if (json_get_bool(result, "exited", false))
                return (int) (json_get_int(result, "exitCode", 0) & 0xff);
        return 1;
}

static void exec_report(json_object *result, const char *program) {
        char t[FORMAT_TIMESPAN_MAX];
        int64_t sig = json_get_int(result, "signal", 0);

        fflush(stdout);
        if (json_get_bool(result, "stdoutTruncated", false))
                fprintf(stderr, "memvisorctl: the output of %s was cut at %" PRIi64 " bytes.\n", program,
                        json_get_int(result, "stdoutBytes", 0));
        if (json_get_bool(result, "stderrTruncated", false))
                fprintf(stderr, "memvisorctl: the error output of %s was cut at %" PRIi64 " bytes.\n", program,
                        json_get_int(result, "stderrBytes", 0));
        if (json_get_bool(result, "timedOut", false))
                fprintf(stderr, "memvisorctl: %s timed out in the guest after %s; %s\n", program,
                        format_timespan(t, sizeof(t), (uint64_t) json_get_int(result, "durationUSec", 0)),
                        json_get_bool(result, "killed", false) ? "killed." : strna(json_get_string(result, "killError")));
        else if (sig > 0)
                fprintf(stderr, "memvisorctl: %s was killed by signal %" PRIi64 " in the guest.\n", program, sig);
}

static int run_exec(VarlinkClient *c, const char *name, int argc, char **argv, json_object **ret_result,
                    json_object **ret_reply) {
        _cleanup_json_ json_object *params = NULL;

        if (exec_params(name, argc, argv, &params) < 0)
                return EXIT_USAGE;
        return call(c, "io.memvisor.Manager.GuestExec", TAKE_PTR(params), ret_reply) ?:
               (*ret_result = ctl_obj_get(ctl_reply_parameters(*ret_reply), "result"), EXIT_OK);
}

static int guest_exec(VarlinkClient *c, const char *name, int argc, char **argv) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *result = NULL;
        int r;

        r = run_exec(c, name, argc, argv, &result, &reply);
        if (r != EXIT_OK)
                return r == EXIT_USAGE ? r : EXIT_GUEST_CTL_FAILED;
        if (arg_json) {
                ctl_print_json(result);
                return exec_status(result);
        }
        write_b64(stdout, result, "stdout");
        fflush(stdout);
        write_b64(stderr, result, "stderr");
        exec_report(result, argv[0]);
        return exec_status(result);
}

/* counters --around -- CMD: a snapshot, CMD in the guest, another snapshot; the differences. */
static int guest_around(VarlinkClient *c, const char *name, int argc, char **argv) {
        _cleanup_json_ json_object *before = NULL, *after = NULL, *exec = NULL, *out = NULL;
        json_object *a, *b, *result = NULL, *va, *vb, *row;
        char t[FORMAT_TIMESPAN_MAX];
        int r;

        r = call(c, "io.memvisor.Manager.GuestCounters", name_params(name), &before);
        if (r != EXIT_OK)
                return EXIT_GUEST_CTL_FAILED;
        r = run_exec(c, name, argc, argv, &result, &exec);
        if (r != EXIT_OK)
                return r == EXIT_USAGE ? r : EXIT_GUEST_CTL_FAILED;
        r = call(c, "io.memvisor.Manager.GuestCounters", name_params(name), &after);
        if (r != EXIT_OK)
                return EXIT_GUEST_CTL_FAILED;
        a = ctl_obj_get(ctl_reply_parameters(before), "counters");
        b = ctl_obj_get(ctl_reply_parameters(after), "counters");
        va = ctl_obj_get(a, "vmstat");
        vb = ctl_obj_get(b, "vmstat");

        if (arg_json) {
                out = json_object_new_object();
                if (!out || json_add(out, "before", json_object_get(a)) < 0 ||
                    json_add(out, "exec", json_object_get(result)) < 0 || json_add(out, "after", json_object_get(b)) < 0)
                        return log_oom(), EXIT_GUEST_CTL_FAILED;
                ctl_print_json(out);
                return exec_status(result);
        }

        write_b64(stdout, result, "stdout");
        fflush(stdout);
        write_b64(stderr, result, "stderr");
        exec_report(result, argv[0]);
        {
                char u[FORMAT_TIMESPAN_MAX];
                int64_t d = json_get_int(b, "guestRealtimeNSec", 0) - json_get_int(a, "guestRealtimeNSec", 0);

                printf("\n%s: %s after %s in the guest; %s of guest time between the snapshots\n", argv[0],
                       json_get_bool(result, "exited", false) ? "exited" : "ended",
                       format_timespan(t, sizeof(t), (uint64_t) json_get_int(result, "durationUSec", 0)),
                       format_timespan(u, sizeof(u), d > 0 ? (uint64_t) d / 1000 : 0));
        }
        if ((row = ctl_obj_get(b, "tlb")))
                print_irq_row("TLB shootdowns Δ (per CPU)", row, ctl_obj_get(a, "tlb"));
        if ((row = ctl_obj_get(b, "cal")))
                print_irq_row("Function calls Δ (per CPU)", row, ctl_obj_get(a, "cal"));
        if (arg_legend)
                printf("%-36s %20s\n", "VMSTAT", "DELTA");
        json_object_object_foreach(vb, k, v) {
                json_object *old = ctl_obj_get(va, k);
                int64_t d;

                if (!old) {
                        printf("%-36s %20s\n", k, "(new)");
                        continue;
                }
                /* Every counter that changed (with --all also those that did not). */
                d = json_object_get_int64(v) - json_object_get_int64(old);
                if (d != 0 || arg_all)
                        printf("%-36s %20" PRIi64 "\n", k, d);
        }
        print_unavailable(b);
        return exec_status(result);
}

/* ---- copy ------------------------------------------------------------------------------------- */

static int guest_copy(VarlinkClient *c, const char *name, const char *src, const char *dest) {
        _cleanup_json_ json_object *p = name_params(name), *reply = NULL;
        _cleanup_free_ char *data = NULL, *b64 = NULL;
        size_t size = 0;
        mode_t mode = 0;
        int r;

        if (arg_mode) {
                if (parse_mode(arg_mode, &mode) < 0) {
                        fprintf(stderr, "Invalid --mode=%s: expected an octal mode such as 0755.\n", arg_mode);
                        return EXIT_USAGE;
                }
        }
        if (dest[0] != '/') {
                fprintf(stderr, "The destination in the guest must be an absolute path, not '%s'.\n", dest);
                return EXIT_USAGE;
        }
        r = read_full_file(src, GUEST_COPY_MAX, &data, &size);
        if (r < 0) {
                fprintf(stderr, "Cannot read %s: %s\n", src,
                        r == -EFBIG || r == -E2BIG ? "larger than the 8 MiB a copy may be" : strerror(-r));
                return EXIT_USAGE;
        }
        if (!p || !(b64 = base64_encode(data, size)) || json_add_string(p, "path", dest) < 0 ||
            json_add_string(p, "data", b64) < 0 || (mode > 0 && json_add_uint(p, "mode", (uint64_t) mode) < 0))
                return log_oom(), EXIT_CONNECTION;
        r = call(c, "io.memvisor.Manager.GuestCopy", TAKE_PTR(p), &reply);
        if (r != EXIT_OK)
                return r;
        if (arg_json)
                ctl_print_json(ctl_reply_parameters(reply));
        else
                printf("Copied %" PRIi64 " bytes to %s in guest %s.\n",
                       json_get_int(ctl_reply_parameters(reply), "bytes", 0), dest, name);
        return EXIT_OK;
}

/* guest NAME info | counters [--all] [--around -- CMD…] | exec [--timeout=] [--env=] -- CMD… | copy SRC DEST */
static int verb_guest(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        const char *name = argv[1], *what = argv[2];
        int r;

        if (!streq(what, "info") && !streq(what, "counters") && !streq(what, "exec") && !streq(what, "copy")) {
                fprintf(stderr, "Unknown guest command '%s': expected info, counters, exec or copy.\n", what);
                return EXIT_USAGE;
        }
        if ((streq(what, "exec") || (streq(what, "counters") && arg_around)) && argc < 4) {
                fprintf(stderr, "guest NAME %s needs a command to run in the guest: … -- CMD [ARG…]\n", what);
                return EXIT_USAGE;
        }
        if (streq(what, "copy") && argc != 5) {
                fprintf(stderr, "guest NAME copy takes SRC (a file here) and DEST (a path in the guest).\n");
                return EXIT_USAGE;
        }
        if ((arg_mode && !streq(what, "copy")) || ((arg_timeout || arg_env) && !streq(what, "exec") &&
                                                    !(streq(what, "counters") && arg_around)) ||
            (arg_around && !streq(what, "counters")) || (arg_all && !streq(what, "counters"))) {
                fprintf(stderr, "An option given does not apply to guest NAME %s (see memvisorctl --help).\n", what);
                return EXIT_USAGE;
        }
        if ((streq(what, "info") || (streq(what, "counters") && !arg_around)) && argc > 3) {
                fprintf(stderr, "guest NAME %s takes no further arguments.\n", what);
                return EXIT_USAGE;
        }

        r = ctl_connect(&c);
        if (r < 0)
                return -r;
        if (streq(what, "info"))
                return guest_info(c, name);
        if (streq(what, "counters"))
                return arg_around ? guest_around(c, name, argc - 3, argv + 3) : guest_counters_once(c, name);
        if (streq(what, "exec"))
                return guest_exec(c, name, argc - 3, argv + 3);
        return guest_copy(c, name, argv[3], argv[4]);
}

const CtlVerb ctl_guest_verbs[] = {
        { "guest", "NAME info|counters|exec|copy …",
          "Inside a guest through its agent: identity, counters, run a program, copy a file", 2, 4096, verb_guest,
          guest_options, guest_option,
          "counters [--all] [--around -- CMD…] | exec [--timeout=T] [--env=N=V] -- CMD… | copy [--mode=0755] SRC DEST" },
        {}
};
