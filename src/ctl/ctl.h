/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* memvisorctl: shared helpers and the verb table type. Each ctl-*.c file contributes a table of verbs;
 * memvisorctl.c dispatches and generates --help from them. */

#include <getopt.h>
#include <json-c/json.h>

#include "varlink/client.h"
#include "basic/macro.h"

/* Exit codes (documented in memvisorctl(1)). */
enum {
        EXIT_OK = 0,
        EXIT_VARLINK_ERROR = 1, /* the method answered with a varlink error; its name is on stderr */
        EXIT_USAGE = 2,         /* invalid command line */
        EXIT_CONNECTION = 3,    /* could not connect, or the connection broke or carried garbage */
};

#define CTL_DEFAULT_ADDRESS "unix:/run/memvisor/io.memvisor.Manager"

/* Global options, valid before or after the verb. */
extern const char *arg_address;         /* -A: NULL unless given (ctl_address() adds the fallbacks) */
extern bool arg_json;                   /* --json, --json=short or --json=pretty */
extern bool arg_json_pretty;            /* --json=pretty: indented */
extern bool arg_legend;                 /* false with --no-legend: table verbs print their rows only */
extern const char *arg_host;            /* -H [USER@]HOST[:PORT]: through ssh and "memvisorctl bridge" there */
extern const char *arg_bridge_command;  /* --bridge-command=: the remote command (else $MEMVISOR_BRIDGE_COMMAND) */

typedef struct CtlVerb {
        const char *name;
        const char *args;               /* for --help: "NAME [SIZE]" */
        const char *help;               /* one line */
        unsigned min_args, max_args;    /* positional arguments after the verb */
        /* argv[0] is the verb, argv[1…argc-1] its positional arguments (options already parsed). */
        int (*run)(int argc, char **argv);
        /* Verb-specific long options ({} terminated) and their handler (returns 0 or EXIT_USAGE). Option
         * values for 'val' must be >= 0x100 to stay clear of the global short options, or a letter that is not
         * one of them: that letter is then also the option's short form (-o FILE). */
        const struct option *options;
        int (*option)(int c, const char *arg);
        const char *options_help;       /* for --help, may be NULL */
} CtlVerb;

extern const CtlVerb ctl_daemon_verbs[];        /* ctl-daemon.c */
extern const CtlVerb ctl_vm_verbs[];            /* ctl-vm.c */
extern const CtlVerb ctl_metrics_verbs[];       /* ctl-metrics.c: host, metrics, watch */
extern const CtlVerb ctl_balloon_verbs[];       /* ctl-balloon.c: balloon, balloon-steps */
extern const CtlVerb ctl_numa_verbs[];          /* ctl-numa.c: numa, pin, migrate, migrations */
extern const CtlVerb ctl_guest_verbs[];         /* ctl-guest.c: guest NAME info|counters|exec|copy */
extern const CtlVerb ctl_monitor_verbs[];         /* ctl-monitor.c: monitor */
int ctl_memory_layout(const char *name);          /* ctl-monitor.c: memory NAME layout */
extern const CtlVerb ctl_experiment_verbs[];    /* ctl-experiment.c: experiment run|list|show|export|cancel|delete */
extern const CtlVerb ctl_memory_verbs[];        /* ctl-memory.c: memory NAME layout|dirty-rate */
extern const CtlVerb ctl_console_verbs[];       /* ctl-console.c: console NAME */
extern const CtlVerb ctl_hotplug_verbs[];       /* ctl-hotplug.c: hotplug NAME SIZE */

const char *ctl_address(void);
/* Connects to the daemon (with -H: through ssh); on failure prints why and returns -EXIT_CONNECTION (or
 * -EXIT_USAGE for an invalid address or host). */
int ctl_connect(VarlinkClient **ret);
/* Reports that sending or receiving failed with r: "<message>: <reason>" on stderr, where the reason for
 * -ECONNRESET is "connection closed by the daemon". With -H, when ssh or the remote bridge failed (ssh exited
 * 255, the remote shell 127, the bridge 3, ...), says that instead. Returns EXIT_CONNECTION. */
int ctl_connection_failed(int r, const char *format, ...) _printf_(2, 3);

/* Starts ssh to arg_host running "memvisorctl bridge" there, and a client on its standard input and output. Waits
 * for a previous ssh child first. On failure prints why and returns -EXIT_USAGE or -EXIT_CONNECTION. */
int ctl_remote_connect(VarlinkClient **ret);
/* After a connection through ssh broke: waits for ssh and, if it or the remote side failed, prints which one and
 * why and returns true. False when ssh ended with status 0 (the daemon closed the connection) or none ran. */
bool ctl_remote_explain_failure(void);
/* Waits for the ssh child, if one is left (at the end of main()). */
void ctl_remote_finish(void);
/* Pretty JSON, or one line with --json. */
void ctl_print_json(json_object *o);
/* Prints a varlink error reply (name, then parameters) on stderr; returns EXIT_VARLINK_ERROR. */
int ctl_report_error(json_object *reply);
/* Calls method and waits for the reply; returns an exit code, *ret_reply set on EXIT_OK. */
int ctl_call(const char *method, json_object *params, json_object **ret_reply);
/* ctl_call() for commands that show the reply: with --json the reply's parameters are printed and
 * *ret_params is NULL (nothing left to do); otherwise *ret_params are the parameters to format. */
int ctl_call_show(const char *method, json_object *params, json_object **ret_reply, json_object **ret_params);
int ctl_call_with_name(const char *method, const char *name, json_object **ret_reply);
json_object *ctl_reply_parameters(json_object *reply);
/* A member of o, NULL when absent or null. */
json_object *ctl_obj_get(json_object *o, const char *key);
/* An array of a reply, tolerant of what the daemon sent: 0 elements and NULL for anything that is not an array
 * (json-c asserts on the type otherwise: an odd reply must not abort memvisorctl). */
size_t ctl_array_length(json_object *a);
json_object *ctl_array_get(json_object *a, size_t i);
const char *ctl_format_realtime(char *buf, size_t l, uint64_t usec);

/* SIZE and --timeout= of a command that sets a size and may --wait for it (balloon, hotplug): SIZE a size such as
 * 256M (at most INT64_MAX bytes), --timeout= only with --wait, a finite time span above 0 (*ret_timeout 0 when
 * not given). Prints what was wrong and returns EXIT_USAGE, or 0. */
int ctl_parse_size_and_timeout(const char *size, const char *timeout, bool wait, uint64_t *ret_size,
                               uint64_t *ret_timeout);
/* Calls method with "more" and hands every reply's parameters to f with whether more replies follow; returns
 * when the last one came (EXIT_OK), f returned non-zero (that), or on an error reply or a broken connection
 * (reported; f is called once with NULL parameters first, to tidy a progress line). */
typedef int (*CtlReplyFunc)(json_object *parameters, bool continues, void *userdata);
int ctl_call_more(const char *method, json_object *params, CtlReplyFunc f, void *userdata);

/* ctl-vm.c: the status of one guest (for "status NAME"). */
int ctl_vm_status(const char *name);
/* ctl-numa.c: vCPU threads, allowed and last CPUs, and memory per host node (for "status NAME"). */
int ctl_numa_print_placement(const char *name);
