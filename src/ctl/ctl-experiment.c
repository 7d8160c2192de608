/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl experiment run|list|show|export|compare|plot|cancel|delete: experiments (issue 15) through the
 * StartExperiment, ListExperiments, DescribeExperiment, GetExperimentResults, CancelExperiment and DeleteExperiment
 * methods (compare: ctl-experiment-compare.c, CompareExperiments; plot: ctl-experiment-plot.c). */
#include <fnmatch.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/parse.h"
#include "ctl/ctl-experiment.h"
#include "ctl/ctl-plot.h"
#include "ctl/ctl.h"
#include "experiment/experiment-export.h"
#include "experiment/experiment-spec.h"

#define M "io.memvisor.Manager."
#define EXPERIMENT_FILE_MAX (64U * 1024U)     /* as the daemon bounds a definition's text */

static unsigned arg_iterations = 0;           /* 0: the definition's Iterations= */
static const char *arg_guest = NULL;
static const char *arg_operation = NULL;
static char **arg_sets = NULL;
static size_t arg_n_sets = 0;
static bool arg_no_wait = false;
static const char *arg_counter = NULL;
static const char *arg_format = NULL;
static const char *arg_output = NULL;
static char **arg_counters = NULL;             /* compare: every --counter= */
static size_t arg_n_counters = 0;
static uint64_t arg_seed = UINT64_MAX;          /* compare: UINT64_MAX, the daemon's default */
static unsigned arg_resamples = 0;              /* compare: 0, the daemon's default */

static bool in_set(const char *s, const char *const list[]) {
        for (size_t i = 0; s && list[i]; i++)
                if (streq(s, list[i]))
                        return true;
        return false;
}
#define IN_SET_STR(s, ...) in_set(s, (const char *const[]) { __VA_ARGS__, NULL })

static bool endswith(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);

        return a >= b && streq(s + a - b, suffix);
}

static uint64_t now_monotonic_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

enum { ARG_ITERATIONS = 0x100, ARG_GUEST, ARG_OPERATION, ARG_SET, ARG_NO_WAIT, ARG_COUNTER, ARG_FORMAT, ARG_SEED,
       ARG_RESAMPLES };

static const struct option experiment_options[] = {
        { "iterations", required_argument, NULL, ARG_ITERATIONS },
        { "guest", required_argument, NULL, ARG_GUEST },
        { "operation", required_argument, NULL, ARG_OPERATION },
        { "set", required_argument, NULL, ARG_SET },
        { "no-wait", no_argument, NULL, ARG_NO_WAIT },
        { "counter", required_argument, NULL, ARG_COUNTER },
        { "format", required_argument, NULL, ARG_FORMAT },
        { "output", required_argument, NULL, 'o' },
        { "seed", required_argument, NULL, ARG_SEED },
        { "resamples", required_argument, NULL, ARG_RESAMPLES },
        PLOT_OPTIONS,
        {}
};

static int experiment_option(int c, const char *arg) {
        char **l;

        switch (c) {
        case ARG_ITERATIONS:
                if (parse_unsigned(arg, &arg_iterations) < 0 || arg_iterations == 0) {
                        fprintf(stderr, "Invalid --iterations=%s: expected a positive number.\n", arg);
                        return EXIT_USAGE;
                }
                break;
        case ARG_GUEST:
                arg_guest = arg;
                break;
        case ARG_OPERATION:
                if (experiment_operation_from_string(arg) < 0) {
                        fprintf(stderr, "Invalid --operation=%s: expected none, migrate, migrate-pingpong, balloon "
                                "or hotplug.\n", arg);
                        return EXIT_USAGE;
                }
                arg_operation = arg;
                break;
        case ARG_SET:
                l = reallocarray(arg_sets, arg_n_sets + 1, sizeof(char *));
                if (!l)
                        return EXIT_USAGE;
                arg_sets = l;
                arg_sets[arg_n_sets++] = (char *) arg;
                break;
        case ARG_NO_WAIT:
                arg_no_wait = true;
                break;
        case ARG_COUNTER:
                arg_counter = arg;
                l = reallocarray(arg_counters, arg_n_counters + 1, sizeof(char *));
                if (!l)
                        return EXIT_USAGE;
                arg_counters = l;
                arg_counters[arg_n_counters++] = (char *) arg;
                return experiment_plot_option(ARG_PLOT_COUNTER, arg);  /* plot takes several too */
        case ARG_SEED:
                if (parse_uint64(arg, &arg_seed) < 0 || arg_seed > INT64_MAX) {
                        fprintf(stderr, "Invalid --seed=%s: expected a number 0 … 2^63-1.\n", arg);
                        return EXIT_USAGE;
                }
                break;
        case ARG_RESAMPLES:
                if (parse_unsigned(arg, &arg_resamples) < 0 || arg_resamples == 0 || arg_resamples > 100000) {
                        fprintf(stderr, "Invalid --resamples=%s: expected 1 … 100000.\n", arg);
                        return EXIT_USAGE;
                }
                break;
        case ARG_FORMAT:
                if (!IN_SET_STR(arg, "csv", "json")) {
                        fprintf(stderr, "Invalid --format=%s: expected csv or json.\n", arg);
                        return EXIT_USAGE;
                }
                arg_format = arg;
                break;
        case 'o':
                arg_output = arg;
                break;
        default:
                return experiment_plot_option(c, arg);
        }
        return 0;
}

/* ---- errors ----------------------------------------------------------------------------------- */

/* The experiment errors in a sentence (after the error's name, as every verb prints it); the others as
 * ctl_report_error() prints them. Returns EXIT_VARLINK_ERROR. */
static int report_error(json_object *reply) {
        const char *error = json_get_string(reply, "error");
        json_object *p = ctl_reply_parameters(reply);
        const char *name = error && startswith(error, M) ? error + strlen(M) : NULL;

        if (!name || !IN_SET_STR(name, "InvalidExperiment", "CounterUnavailable", "GuestBusy", "NoSuchExperiment",
                                 "ExperimentRunning", "ExperimentNotRunning", "ExperimentStoreFailed"))
                return ctl_report_error(reply);

        fprintf(stderr, "%s\n", error);
        if (streq(name, "InvalidExperiment")) {
                if (json_get_string(p, "field"))
                        fprintf(stderr, "Invalid experiment definition: %s=: %s\n", json_get_string(p, "field"),
                                strna(json_get_string(p, "reason")));
                else
                        fprintf(stderr, "Invalid experiment definition: %s\n", strna(json_get_string(p, "reason")));
        } else if (streq(name, "CounterUnavailable"))
                fprintf(stderr, "Counter %s is required (Require=) but cannot be taken: %s\n",
                        strna(json_get_string(p, "counter")), strna(json_get_string(p, "reason")));
        else if (streq(name, "GuestBusy"))
                fprintf(stderr, "Guest %s is busy: experiment %s runs on it.\n", strna(json_get_string(p, "name")),
                        strna(json_get_string(p, "experiment")));
        else if (streq(name, "NoSuchExperiment"))
                fprintf(stderr, "No experiment %s.\n", strna(json_get_string(p, "id")));
        else if (streq(name, "ExperimentRunning"))
                fprintf(stderr, "Experiment %s is running: cancel it first (memvisorctl experiment cancel %s).\n",
                        strna(json_get_string(p, "id")), strna(json_get_string(p, "id")));
        else if (streq(name, "ExperimentNotRunning"))
                fprintf(stderr, "Experiment %s is not running (it is %s).\n", strna(json_get_string(p, "id")),
                        strna(json_get_string(p, "state")));
        else
                fprintf(stderr, "The experiment's files could not be written: %s\n",
                        strna(json_get_string(p, "reason")));
        return EXIT_VARLINK_ERROR;
}

/* One call and its reply on c; consumes params (NULL: none). */
static int call(VarlinkClient *c, const char *method, json_object *params_in, json_object **ret_reply) {
        _cleanup_json_ json_object *reply = NULL, *params = params_in;
        int r;

        r = varlink_client_call(c, method, params, &reply);
        if (r < 0)
                return ctl_connection_failed(r, "Failed to call %s", method);
        if (json_get_string(reply, "error"))
                return report_error(reply);
        *ret_reply = TAKE_PTR(reply);
        return EXIT_OK;
}

static int call_id(const char *method, const char *id, json_object **ret_reply) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        json_object *p = json_object_new_object();
        int r;

        if (!p || json_add_string(p, "id", id) < 0) {
                json_object_put(p);
                return log_oom(), EXIT_CONNECTION;
        }
        r = ctl_connect(&c);
        if (r < 0) {
                json_object_put(p);
                return -r;
        }
        return call(c, method, p, ret_reply);
}

static double json_number(json_object *o, const char *key, bool *ok) {
        json_object *v = ctl_obj_get(o, key);

        *ok = v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double));
        return *ok ? json_object_get_double(v) : NAN;
}

/* ---- run -------------------------------------------------------------------------------------- */

/* Ctrl-C while run waits: a thread takes SIGINT (blocked everywhere else), and once the experiment's id is
 * known sends CancelExperiment on a connection of its own; the run keeps waiting for the final reply. A second
 * Ctrl-C stops waiting at once. */
static pthread_mutex_t cancel_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cancel_cond = PTHREAD_COND_INITIALIZER;
static char *cancel_id = NULL;          /* the running experiment, once a reply named it */
static bool cancel_requested = false;
static bool cancel_over = false;        /* the run ended: the thread returns (woken by SIGUSR1) */
static sigset_t cancel_signals;

static void *cancel_thread(void *userdata) {
        _cleanup_json_ json_object *reply = NULL;
        _cleanup_free_ char *id = NULL;
        int sig, r;

        if (sigwait(&cancel_signals, &sig) != 0 || sig != SIGINT)
                return NULL;
        pthread_mutex_lock(&cancel_lock);
        cancel_requested = true;
        if (!cancel_id && !cancel_over)
                fprintf(stderr, "\nCancel requested: waiting for the experiment's id (its first iteration to "
                        "end)…\n");
        while (!cancel_id && !cancel_over)
                pthread_cond_wait(&cancel_cond, &cancel_lock);
        id = cancel_id ? strdup(cancel_id) : NULL;
        pthread_mutex_unlock(&cancel_lock);
        if (!id)
                return NULL;

        fprintf(stderr, "\nCancelling experiment %s after the current iteration; waiting for it to end "
                "(Ctrl-C again to stop waiting)…\n", id);
        r = call_id(M "CancelExperiment", id, &reply);
        if (r != EXIT_OK)
                fprintf(stderr, "Cancelling experiment %s failed; still waiting for it to end.\n", id);
        if (sigwait(&cancel_signals, &sig) == 0 && sig == SIGINT) {
                fprintf(stderr, "\nStopped waiting; experiment %s goes on to its end as the daemon has it.\n", id);
                _exit(128 + SIGINT);
        }
        return NULL;
}

static void cancel_set_id(const char *id) {
        pthread_mutex_lock(&cancel_lock);
        if (!cancel_id && id) {
                cancel_id = strdup(id);
                pthread_cond_broadcast(&cancel_cond);
        }
        pthread_mutex_unlock(&cancel_lock);
}

/* --set=Section.Key=VALUE into definition: a key given twice becomes a list. */
static int definition_set(json_object *def, const char *assignment) {
        const char *dot = strchr(assignment, '.'), *eq = dot ? strchr(dot + 1, '=') : NULL;
        _cleanup_free_ char *section = NULL, *key = NULL;
        json_object *sec, *old, *list;

        if (!dot || dot == assignment || !eq || eq == dot + 1) {
                fprintf(stderr, "Invalid --set=%s: expected Section.Key=VALUE, such as Provoke.To=1.\n", assignment);
                return -EINVAL;
        }
        section = strndup(assignment, (size_t) (dot - assignment));
        key = strndup(dot + 1, (size_t) (eq - dot - 1));
        if (!section || !key)
                return -ENOMEM;
        sec = ctl_obj_get(def, section);
        if (!sec) {
                sec = json_object_new_object();
                if (!sec || json_add(def, section, sec) < 0)
                        return -ENOMEM;
        }
        old = ctl_obj_get(sec, key);
        if (!old)
                return json_add_string(sec, key, eq + 1);
        if (!json_object_is_type(old, json_type_array)) {
                list = json_object_new_array();
                if (!list || json_object_array_add(list, json_object_get(old)) < 0 || json_add(sec, key, list) < 0)
                        return -ENOMEM;
                old = list;
        }
        return json_object_array_add(old, json_object_new_string(eq + 1));
}

static int run_params(int argc, char **argv, json_object **ret) {
        _cleanup_json_ json_object *p = json_object_new_object(), *def = NULL;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        int r;

        if (!p)
                return -ENOMEM;
        if ((argc == 3) == !!arg_guest) {
                fprintf(stderr, "experiment run takes a FILE or --guest=NAME (one of the two).\n");
                return -EINVAL;
        }
        if (argc == 3) {
                if (arg_operation || arg_n_sets > 0) {
                        fprintf(stderr, "--operation= and --set= go with --guest=, not with a FILE.\n");
                        return -EINVAL;
                }
                r = read_full_file(argv[2], EXPERIMENT_FILE_MAX, &text, &size);
                if (r < 0) {
                        fprintf(stderr, "Cannot read %s: %s\n", argv[2],
                                r == -EFBIG || r == -E2BIG ? "larger than the 64 KiB a definition may be"
                                                           : strerror(-r));
                        return -EINVAL;
                }
                if (strlen(text) != size) {
                        fprintf(stderr, "Cannot use %s: it contains a NUL byte.\n", argv[2]);
                        return -EINVAL;
                }
                if ((r = json_add_string(p, "text", text)) < 0)
                        return r;
        } else {
                _cleanup_json_ json_object *experiment = json_object_new_object(), *provoke = NULL;

                def = json_object_new_object();
                if (!def || !experiment || (r = json_add_string(experiment, "Guest", arg_guest)) < 0 ||
                    (r = json_add(def, "Experiment", TAKE_PTR(experiment))) < 0)
                        return -ENOMEM;
                if (arg_operation) {
                        provoke = json_object_new_object();
                        if (!provoke || json_add_string(provoke, "Operation", arg_operation) < 0 ||
                            json_add(def, "Provoke", TAKE_PTR(provoke)) < 0)
                                return -ENOMEM;
                }
                for (size_t i = 0; i < arg_n_sets; i++)
                        if ((r = definition_set(def, arg_sets[i])) < 0)
                                return r;
                if ((r = json_add(p, "definition", TAKE_PTR(def))) < 0)
                        return r;
        }
        if (arg_iterations > 0 && (r = json_add_uint(p, "iterations", arg_iterations)) < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

/* The last iteration's headline numbers: provocation time, bytes moved (migration or balloon), guest TLB
 * shootdowns. */
static void format_headline(char *buf, size_t l, json_object *record) {
        json_object *counters = ctl_obj_get(record, "counters");
        char v[64];
        size_t n = 0;
        bool ok;
        double x;

        buf[0] = 0;
        x = json_number(counters, "time.provoke_usec", &ok);
        if (ok)
                n += (size_t) snprintf(buf + n, l - n, ", provoke %s", format_value(v, sizeof(v), "us", x));
        x = json_number(counters, "host.migrate.moved_bytes", &ok);
        if (!ok && counters) {
                json_object_object_foreach(counters, k, val) {
                        if (startswith(k, "host.balloon.") && endswith(k, "_bytes") &&
                            (json_object_is_type(val, json_type_int) || json_object_is_type(val, json_type_double))) {
                                x = json_object_get_double(val), ok = true;
                                break;
                        }
                }
        }
        if (ok && n < l)
                n += (size_t) snprintf(buf + n, l - n, ", moved %s", format_value(v, sizeof(v), "bytes", x));
        x = json_number(counters, "guest.tlb_shootdowns", &ok);
        if (ok && n < l)
                (void) snprintf(buf + n, l - n, ", TLB shootdowns %s", format_value(v, sizeof(v), "count", x));
}

static void print_progress(bool tty, json_object *p, uint64_t started_usec) {
        json_object *record = ctl_obj_get(p, "iteration");
        int64_t done = json_get_int(p, "iterationsDone", 0), planned = json_get_int(p, "iterationsPlanned", 0);
        char head[256], eta[FORMAT_TIMESPAN_MAX] = "", dur[FORMAT_TIMESPAN_MAX], line[512];
        uint64_t now = now_monotonic_usec(), elapsed = now - started_usec;

        format_headline(head, sizeof(head), record);
        if (done > 0 && planned > done)
                format_timespan(eta, sizeof(eta), elapsed / (uint64_t) done * (uint64_t) (planned - done));
        format_timespan(dur, sizeof(dur), (uint64_t) MAX(json_get_int(record, "durationUSec", 0), (int64_t) 0));
        snprintf(line, sizeof(line), "iteration %" PRIi64 "/%" PRIi64 "%s: %s%s%s%s",
                 json_get_int(record, "iteration", done), planned,
                 json_get_bool(record, "warmUp", false) ? " (warm-up)" : "", dur, head, *eta ? ", ETA " : "", eta);
        if (tty) {
                /* Redrawn in place: cut to the terminal's width, so that it never wraps. */
                struct winsize ws = {};
                int width = ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 ? ws.ws_col - 1 : INT_MAX;

                printf("\r\033[K%.*s", width, line);
        } else
                printf("%s\n", line);
        fflush(stdout);
}

static int run_wait(VarlinkClient *c) {
        bool tty = isatty(STDOUT_FILENO) && !arg_json, progress_shown = false;
        uint64_t started = now_monotonic_usec();
        int r;

        for (;;) {
                _cleanup_json_ json_object *reply = NULL;
                json_object *p;
                const char *state;

                r = varlink_client_receive(c, &reply);
                if (r < 0) {
                        if (progress_shown)
                                printf("\n");
                        return ctl_connection_failed(r, "StartExperiment");
                }
                if (json_get_string(reply, "error")) {
                        if (progress_shown)
                                printf("\n");
                        return report_error(reply);
                }
                p = ctl_reply_parameters(reply);
                cancel_set_id(json_get_string(p, "id"));
                if (arg_json)
                        ctl_print_json(p);
                else if (ctl_obj_get(p, "iteration")) {
                        print_progress(tty, p, started);
                        progress_shown = tty;
                }
                if (json_get_bool(reply, "continues", false))
                        continue;

                state = strna(json_get_string(p, "state"));
                if (!arg_json) {
                        if (progress_shown)
                                printf("\n");
                        printf("Experiment %s %s after %" PRIi64 "/%" PRIi64 " iterations%s%s.\n",
                               strna(json_get_string(p, "id")), state, json_get_int(p, "iterationsDone", 0),
                               json_get_int(p, "iterationsPlanned", 0), json_get_string(p, "reason") ? ": " : "",
                               strempty(json_get_string(p, "reason")));
                        fflush(stdout);
                }
                /* completed, or cancelled by us: success; failed (or cancelled by someone else): 1. */
                pthread_mutex_lock(&cancel_lock);
                r = streq(state, "completed") || (streq(state, "cancelled") && cancel_requested) ? EXIT_OK
                                                                                                  : EXIT_VARLINK_ERROR;
                pthread_mutex_unlock(&cancel_lock);
                return r;
        }
}

static int experiment_run(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_json_ json_object *params = NULL, *reply = NULL;
        pthread_t thread;
        int r;

        if (argc > 3) {
                fprintf(stderr, "experiment run takes at most one FILE.\n");
                return EXIT_USAGE;
        }
        r = run_params(argc, argv, &params);
        if (r == -ENOMEM)
                return log_oom(), EXIT_CONNECTION;
        if (r < 0)
                return EXIT_USAGE;
        r = ctl_connect(&c);
        if (r < 0)
                return -r;

        if (arg_no_wait) {
                r = call(c, M "StartExperiment", TAKE_PTR(params), &reply);
                if (r != EXIT_OK)
                        return r;
                if (arg_json)
                        ctl_print_json(ctl_reply_parameters(reply));
                else
                        printf("%s\n", strna(json_get_string(ctl_reply_parameters(reply), "id")));
                return EXIT_OK;
        }

        /* With -H, Ctrl-C reaches ssh too (one process group) and a second connection would wait for the first
         * one's ssh: there it only stops waiting, as by default. */
        if (!arg_host) {
                sigemptyset(&cancel_signals);
                sigaddset(&cancel_signals, SIGINT);
                sigaddset(&cancel_signals, SIGUSR1);    /* the end of the run, for the thread */
                r = pthread_sigmask(SIG_BLOCK, &cancel_signals, NULL);
                if (r == 0)
                        r = pthread_create(&thread, NULL, cancel_thread, NULL);
                if (r != 0) {
                        fprintf(stderr, "Failed to set up Ctrl-C handling: %s\n", strerror(r));
                        return EXIT_CONNECTION;
                }
        }

        r = varlink_client_send(c, M "StartExperiment", params, VARLINK_CALL_MORE);
        if (r < 0)
                r = ctl_connection_failed(r, "Failed to call StartExperiment");
        else
                r = run_wait(c);
        if (!arg_host) {
                /* The Ctrl-C thread ends on its own (its cleanups run) and is joined, not left running at exit:
                 * told by cancel_over when it waits for the id, by SIGUSR1 when it waits in sigwait() (pending
                 * until then if it is in its CancelExperiment call). */
                pthread_mutex_lock(&cancel_lock);
                cancel_over = true;
                pthread_cond_broadcast(&cancel_cond);
                pthread_mutex_unlock(&cancel_lock);
                (void) pthread_kill(thread, SIGUSR1);
                (void) pthread_join(thread, NULL);
        }
        return r;
}

/* ---- list ------------------------------------------------------------------------------------- */

static int experiment_list(void) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_json_ json_object *reply = NULL;
        json_object *p = json_object_new_object(), *list;
        int r, w_id = 2, w_guest = 5, w_name = 4, w_op = 9;

        if (!p || json_add_string(p, "guest", arg_guest) < 0) {
                json_object_put(p);
                return log_oom(), EXIT_CONNECTION;
        }
        r = ctl_connect(&c);
        if (r < 0) {
                json_object_put(p);
                return -r;
        }
        r = call(c, M "ListExperiments", p, &reply);
        if (r != EXIT_OK)
                return r;
        list = ctl_obj_get(ctl_reply_parameters(reply), "experiments");
        if (arg_json) {
                ctl_print_json(list);
                return EXIT_OK;
        }
        for (size_t i = 0; list && i < ctl_array_length(list); i++) {
                json_object *e = ctl_array_get(list, i);

                w_id = MAX(w_id, (int) strlen(strempty(json_get_string(e, "id"))));
                w_guest = MAX(w_guest, (int) strlen(strempty(json_get_string(e, "guest"))));
                w_name = MAX(w_name, (int) strlen(strempty(json_get_string(e, "name"))));
                w_op = MAX(w_op, (int) strlen(strempty(json_get_string(e, "operation"))));
        }
        if (arg_legend)
                printf("%-*s %-*s %-*s %-*s %-11s %9s %s\n", w_id, "ID", w_guest, "GUEST", w_name, "NAME", w_op,
                       "OPERATION", "STATE", "ITER", "CREATED");
        for (size_t i = 0; list && i < ctl_array_length(list); i++) {
                json_object *e = ctl_array_get(list, i);
                char iter[48], t[64];

                snprintf(iter, sizeof(iter), "%" PRIi64 "/%" PRIi64, json_get_int(e, "iterationsDone", 0),
                         json_get_int(e, "iterationsPlanned", 0));
                printf("%-*s %-*s %-*s %-*s %-11s %9s %s\n", w_id, strna(json_get_string(e, "id")), w_guest,
                       json_get_string(e, "guest") ?: "-", w_name, json_get_string(e, "name") ?: "-", w_op,
                       json_get_string(e, "operation") ?: "-",
                       json_get_string(e, "error") ? "damaged" : strna(json_get_string(e, "state")), iter,
                       ctl_format_realtime(t, sizeof(t), (uint64_t) json_get_int(e, "createdRealtimeUSec", 0)));
        }
        if (arg_legend && (!list || ctl_array_length(list) == 0))
                printf("(no experiments%s%s)\n", arg_guest ? " of guest " : "", strempty(arg_guest));
        return EXIT_OK;
}

/* ---- show ------------------------------------------------------------------------------------- */

/* A provenance value that is text (an unavailable one is an object with a reason: NULL). */
static const char *prov_text(json_object *o, const char *a, const char *b) {
        json_object *v = ctl_obj_get(ctl_obj_get(o, a), b);

        return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static void print_provenance(json_object *prov) {
        json_object *kvm = ctl_obj_get(prov, "kvm"), *vendor = ctl_obj_get(kvm, "vendor");
        const char *s;

        if ((s = prov_text(prov, "kernel", "release")))
                printf("%12s %s\n", "Host kernel:", s);
        if ((s = prov_text(prov, "cpu", "modelName")))
                printf("%12s %s%s%s\n", "CPU:", s, prov_text(prov, "cpu", "microcode") ? ", microcode " : "",
                       strempty(prov_text(prov, "cpu", "microcode")));
        if ((s = prov_text(prov, "qemu", "version")))
                printf("%12s %s\n", "QEMU:", s);
        {
                const char *ept = prov_text(vendor, "kvm_intel", "ept"), *npt = prov_text(vendor, "kvm_amd", "npt"),
                           *tdp = prov_text(kvm, "parameters", "tdp_mmu");

                if (ept || npt || tdp)
                        printf("%12s %s%s%s%s%s%s\n", "KVM:", ept ? "ept=" : "", strempty(ept),
                               npt ? (ept ? " npt=" : "npt=") : "", strempty(npt),
                               tdp ? (ept || npt ? " tdp_mmu=" : "tdp_mmu=") : "", strempty(tdp));
                else if (json_get_string(ctl_obj_get(kvm, "device"), "reason"))
                        printf("%12s %s\n", "KVM:", json_get_string(ctl_obj_get(kvm, "device"), "reason"));
        }
}

static void print_statistics(json_object *stats) {
        int w = 7;

        for (size_t i = 0; stats && i < ctl_array_length(stats); i++) {
                const char *n = strempty(json_get_string(ctl_array_get(stats, i), "counter"));

                if (!arg_counter || fnmatch(arg_counter, n, 0) == 0)
                        w = MAX(w, (int) strlen(n));
        }
        if (arg_legend)
                printf("%-*s %5s %10s %21s %21s %s\n", w, "COUNTER", "N", "MEDIAN", "P5–P95", "95% CI", "UNIT");
        for (size_t i = 0; stats && i < ctl_array_length(stats); i++) {
                json_object *s = ctl_array_get(stats, i);
                const char *name = strempty(json_get_string(s, "counter"));
                char med[32], p5[32], p95[32], lo[32], hi[32], range[72], ci[72];
                bool ok, ok_lo, ok_hi;
                double median = json_number(s, "median", &ok);
                double cl = json_number(s, "medianCILow", &ok_lo), ch = json_number(s, "medianCIHigh", &ok_hi);
                Scale sc = pick_scale(json_get_string(s, "unit"), ok ? median : 0);

                if (arg_counter && fnmatch(arg_counter, name, 0) != 0)
                        continue;
                snprintf(range, sizeof(range), "%s–%s", format_scaled(p5, sizeof(p5), json_number(s, "p5", &ok), &sc),
                         format_scaled(p95, sizeof(p95), json_number(s, "p95", &ok), &sc));
                if (ok_lo && ok_hi)
                        snprintf(ci, sizeof(ci), "%s–%s", format_scaled(lo, sizeof(lo), cl, &sc),
                                 format_scaled(hi, sizeof(hi), ch, &sc));
                else
                        snprintf(ci, sizeof(ci), "-");
                /* "–" is three bytes for one column: widen the field by two. */
                printf("%-*s %5" PRIi64 " %10s %23s %*s %s\n", w, name, json_get_int(s, "n", 0),
                       format_scaled(med, sizeof(med), median, &sc), range, ok_lo && ok_hi ? 23 : 21, ci, sc.unit);
        }
}

static void print_unavailable(json_object *unavail) {
        for (size_t i = 0, shown = 0; unavail && i < ctl_array_length(unavail); i++) {
                json_object *u = ctl_array_get(unavail, i);
                const char *name = strempty(json_get_string(u, "counter"));

                if (arg_counter && fnmatch(arg_counter, name, 0) != 0)
                        continue;
                if (shown++ == 0)
                        printf("\nUnavailable:\n");
                printf("  %s: %s (%" PRIi64 " iterations)\n", name, strna(json_get_string(u, "reason")),
                       json_get_int(u, "iterations", 0));
        }
}

static int experiment_show(const char *id) {
        _cleanup_json_ json_object *reply = NULL;
        json_object *p, *e, *variants;
        char t[64];
        int r;

        r = call_id(M "DescribeExperiment", id, &reply);
        if (r != EXIT_OK)
                return r;
        p = ctl_reply_parameters(reply);
        if (arg_json) {
                ctl_print_json(p);
                return EXIT_OK;
        }
        e = ctl_obj_get(p, "experiment");
        printf("%12s %s%s%s%s\n", "Experiment:", strna(json_get_string(e, "id")), json_get_string(e, "name") ? " (" : "",
               strempty(json_get_string(e, "name")), json_get_string(e, "name") ? ")" : "");
        printf("%12s %s\n", "Guest:", json_get_string(e, "guest") ?: "-");
        printf("%12s %s\n", "Operation:", json_get_string(e, "operation") ?: "-");
        printf("%12s %s%s%s\n", "State:", strna(json_get_string(e, "state")), json_get_string(e, "reason") ? ": " : "",
               strempty(json_get_string(e, "reason")));
        if (json_get_string(e, "error"))
                printf("%12s %s\n", "Damaged:", json_get_string(e, "error"));
        printf("%12s %" PRIi64 "/%" PRIi64 " (%" PRIi64 " warm-up)\n", "Iterations:", json_get_int(e, "iterationsDone", 0),
               json_get_int(e, "iterationsPlanned", 0), json_get_int(e, "warmUp", 0));
        printf("%12s %s\n", "Created:", ctl_format_realtime(t, sizeof(t), (uint64_t) json_get_int(e, "createdRealtimeUSec", 0)));
        if (ctl_obj_get(e, "endedRealtimeUSec"))
                printf("%12s %s\n", "Ended:", ctl_format_realtime(t, sizeof(t), (uint64_t) json_get_int(e, "endedRealtimeUSec", 0)));
        print_provenance(ctl_obj_get(p, "provenance"));
        printf("\n");
        variants = ctl_obj_get(p, "variants");
        if (!variants) {
                print_statistics(ctl_obj_get(p, "statistics"));
                print_unavailable(ctl_obj_get(p, "unavailable"));
                return EXIT_OK;
        }
        /* A matrix run: each variant with its settings and its own statistics; never pooled. */
        for (size_t v = 0; v < ctl_array_length(variants); v++) {
                json_object *vo = ctl_array_get(variants, v), *settings = ctl_obj_get(vo, "settings");

                printf("%sVariant %s:", v > 0 ? "\n" : "", strna(json_get_string(vo, "variant")));
                if (settings && json_object_is_type(settings, json_type_object)) {
                        json_object_object_foreach(settings, key, value)
                                printf(" %s=%s", key, json_object_is_type(value, json_type_string)
                                                              ? json_object_get_string(value) : "?");
                }
                printf(" (%" PRIi64 " iterations, %" PRIi64 " warm-up)\n", json_get_int(vo, "iterations", 0),
                       json_get_int(vo, "warmUp", 0));
                print_statistics(ctl_obj_get(vo, "statistics"));
                print_unavailable(ctl_obj_get(vo, "unavailable"));
        }
        return EXIT_OK;
}

/* ---- export ----------------------------------------------------------------------------------- */

/* GetExperimentResults with more: each batch's records to out as CSV rows or JSON lines. Returns an exit code,
 * or -errno when writing failed. */
static int export_records(VarlinkClient *c, json_object *params, FILE *out, const char *id, const char *guest,
                          bool csv) {
        int r;

        if (csv && experiment_export_csv_header(out) < 0)
                return -EIO;
        r = varlink_client_send(c, M "GetExperimentResults", params, VARLINK_CALL_MORE);
        if (r < 0)
                return ctl_connection_failed(r, "Failed to call GetExperimentResults");
        for (;;) {
                _cleanup_json_ json_object *reply = NULL;
                json_object *its;

                r = varlink_client_receive(c, &reply);
                if (r < 0)
                        return ctl_connection_failed(r, "GetExperimentResults");
                if (json_get_string(reply, "error"))
                        return report_error(reply);
                its = ctl_obj_get(ctl_reply_parameters(reply), "iterations");
                for (size_t i = 0; its && i < ctl_array_length(its); i++) {
                        json_object *rec = ctl_array_get(its, i);

                        if (!csv) {
                                fprintf(out, "%s\n", json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN |
                                                                                    JSON_C_TO_STRING_NOSLASHESCAPE));
                                continue;
                        }
                        r = experiment_export_csv_record(out, id, guest, rec);
                        if (r == -EBADMSG) {
                                fprintf(stderr, "The daemon sent an iteration record that is not one: %s\n",
                                        json_object_to_json_string_ext(rec, JSON_C_TO_STRING_PLAIN));
                                return EXIT_CONNECTION;
                        }
                        if (r < 0)
                                return r;
                }
                if (ferror(out))
                        return -EIO;
                if (!json_get_bool(reply, "continues", false))
                        return EXIT_OK;
        }
}

static int experiment_export(const char *id) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_json_ json_object *describe = NULL, *params = json_object_new_object();
        const char *guest = NULL;
        FILE *out = stdout;
        bool csv;
        int r;

        if (!arg_format) {
                fprintf(stderr, "experiment export needs --format=csv or --format=json.\n");
                return EXIT_USAGE;
        }
        csv = streq(arg_format, "csv");
        if (!params || json_add_string(params, "id", id) < 0)
                return log_oom(), EXIT_CONNECTION;
        r = ctl_connect(&c);
        if (r < 0)
                return -r;
        if (csv) {
                /* The guest's name for its column. */
                r = call(c, M "DescribeExperiment", json_object_get(params), &describe);
                if (r != EXIT_OK)
                        return r;
                guest = json_get_string(ctl_obj_get(ctl_reply_parameters(describe), "experiment"), "guest");
        }
        if (arg_output && !streq(arg_output, "-")) {
                out = fopen(arg_output, "we");
                if (!out) {
                        fprintf(stderr, "Cannot write %s: %m\n", arg_output);
                        return EXIT_USAGE;
                }
        }
        r = export_records(c, params, out, id, guest, csv);
        if (out != stdout) {
                if (fclose(out) != 0 && r == EXIT_OK)
                        r = -errno;
        } else if (fflush(out) != 0 && r == EXIT_OK)
                r = -errno;
        if (r < 0) {
                fprintf(stderr, "Failed to write %s: %s\n", out != stdout ? arg_output : "the output", strerror(-r));
                return EXIT_CONNECTION;
        }
        return r;
}

/* ---- cancel, delete, dispatch ------------------------------------------------------------------- */

static int experiment_simple(const char *method, const char *id, const char *done) {
        _cleanup_json_ json_object *reply = NULL;
        int r;

        r = call_id(method, id, &reply);
        if (r != EXIT_OK)
                return r;
        if (arg_json)
                ctl_print_json(ctl_reply_parameters(reply));
        else
                printf("Experiment %s %s.\n", id, done);
        return EXIT_OK;
}

static int verb_experiment(int argc, char **argv) {
        const char *what = argv[1];
        bool run = streq(what, "run"), list = streq(what, "list"), show = streq(what, "show"),
             export = streq(what, "export"), plot = streq(what, "plot"),
             with_id = show || export || IN_SET_STR(what, "cancel", "delete"), compare = streq(what, "compare");

        if (!run && !list && !with_id && !compare && !plot) {
                fprintf(stderr, "Unknown experiment command '%s': expected run, list, show, export, compare, plot, "
                        "cancel "
                        "or delete.\n", what);
                return EXIT_USAGE;
        }
        if ((arg_iterations > 0 || arg_operation || arg_n_sets > 0 || arg_no_wait) && !run) {
                fprintf(stderr, "--iterations=, --operation=, --set= and --no-wait go with experiment run.\n");
                return EXIT_USAGE;
        }
        if (arg_guest && !run && !list) {
                fprintf(stderr, "--guest= goes with experiment run and list.\n");
                return EXIT_USAGE;
        }
        if (arg_counter && !show && !compare && !plot) {
                fprintf(stderr, "--counter= goes with experiment show, compare and plot.\n");
                return EXIT_USAGE;
        }
        if ((arg_seed != UINT64_MAX || arg_resamples > 0) && !compare) {
                fprintf(stderr, "--seed= and --resamples= go with experiment compare.\n");
                return EXIT_USAGE;
        }
        if ((arg_format && !export) || (arg_output && !export && !plot)) {
                fprintf(stderr, "--format= and --output= go with experiment export (--output= with plot too).\n");
                return EXIT_USAGE;
        }
        if (experiment_plot_options_given() && !plot) {
                fprintf(stderr, "--over-time, --width= and --height= go with experiment plot.\n");
                return EXIT_USAGE;
        }
        if (plot)
                return experiment_plot(argc - 2, argv + 2, arg_output);
        if ((list && argc != 2) || (with_id && argc != 3)) {
                fprintf(stderr, "experiment %s takes %s.\n", what, list ? "no further arguments" : "one ID");
                return EXIT_USAGE;
        }
        if (compare && argc != 4) {
                fprintf(stderr, "experiment compare takes two IDs: A (the reference) and B.\n");
                return EXIT_USAGE;
        }
        if (compare)
                return ctl_experiment_compare(argv[2], argv[3], arg_counters, arg_n_counters, arg_seed, arg_resamples);

        if (run)
                return experiment_run(argc, argv);
        if (list)
                return experiment_list();
        if (show)
                return experiment_show(argv[2]);
        if (export)
                return experiment_export(argv[2]);
        if (streq(what, "cancel"))
                return experiment_simple(M "CancelExperiment", argv[2],
                                         "will stop after the current iteration");
        return experiment_simple(M "DeleteExperiment", argv[2], "deleted");
}

const CtlVerb ctl_experiment_verbs[] = {
        { "experiment", "run|list|show|export|compare|plot|cancel|delete [ARG...]",
          "Run experiments on a guest (provoke, measure, repeat) and read their results", 1,
          1 + PLOT_EXPERIMENTS_MAX, verb_experiment,
          experiment_options, experiment_option,
          "run FILE | run --guest=NAME [--operation=OP] [--set=Section.Key=V] [--iterations=N] [--no-wait]; "
          "list [--guest=NAME]; show ID [--counter=GLOB]; export ID --format=csv|json [-o FILE]; "
          "compare A B [--counter=GLOB...] [--seed=N] [--resamples=N]; "
          "plot ID... [--counter=GLOB...] [--over-time] -o FILE.svg|.png [--width=PX --height=PX]; cancel ID; delete ID" },
        {}
};
