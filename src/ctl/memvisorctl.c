/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl: the varlink command line client of memvisord. See memvisorctl(1).
 *
 * Global options (-A/--address, -H/--host, -j/--json, ...) may stand before or after the verb; each verb has its
 * own options on top (see CtlVerb in ctl.h). */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"
#include "ctl/ctl.h"

static const CtlVerb *const verb_tables[] = {
        ctl_daemon_verbs,
        ctl_vm_verbs,
        ctl_metrics_verbs,
        ctl_balloon_verbs,
        ctl_numa_verbs,
        ctl_guest_verbs,
        ctl_experiment_verbs,
        ctl_monitor_verbs,
        ctl_memory_verbs,
        ctl_console_verbs,
        ctl_hotplug_verbs,
};

#define ARG_VERSION 0x80
#define ARG_LIST_VERBS 0x81
#define ARG_NO_LEGEND 0x82
#define ARG_NO_PAGER 0x83
#define ARG_BRIDGE_COMMAND 0x84

static const struct option global_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, ARG_VERSION },
        { "address", required_argument, NULL, 'A' },
        { "host", required_argument, NULL, 'H' },
        { "json", optional_argument, NULL, 'j' },       /* -j: no argument (not in the short option string) */
        { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
        { "no-pager", no_argument, NULL, ARG_NO_PAGER },
        { "bridge-command", required_argument, NULL, ARG_BRIDGE_COMMAND },
        { "list-verbs", no_argument, NULL, ARG_LIST_VERBS }, /* hidden: for shell-completion/generate.py */
};

static void help(void) {
        printf("%s [OPTIONS...] COMMAND [ARGS...]\n\n"
               "Query and control memvisord over varlink.\n\nCommands:\n",
               program_invocation_short_name);
        for (size_t t = 0; t < ELEMENTSOF(verb_tables); t++)
                for (const CtlVerb *v = verb_tables[t]; v->name; v++) {
                        char left[64];

                        snprintf(left, sizeof(left), "%s %s", v->name, v->args);
                        printf("  %-28s %s\n", left, v->help);
                        if (v->options_help)
                                printf("  %-28s   %s\n", "", v->options_help);
                }
        printf("\nOptions:\n"
               "  -h --help                    Show this help\n"
               "     --version                 Show the version\n"
               "  -A --address=ADDRESS         Daemon socket (default: $MEMVISOR_ADDRESS or\n"
               "                               " CTL_DEFAULT_ADDRESS ")\n"
               "  -H --host=[USER@]HOST[:PORT] Operate on a remote host, through ssh ($MEMVISOR_SSH)\n"
               "     --bridge-command=COMMAND  The memvisorctl to run there (default: memvisorctl)\n"
               "  -j --json[=short|pretty|off] Machine-readable output (short: one JSON value per line,\n"
               "                               the default; pretty: indented)\n"
               "     --no-legend               Table commands print their rows only\n"
               "     --no-pager                Accepted; memvisorctl never pages\n"
               "\nExit status: 0 success, 1 varlink error reply, 2 usage error, 3 connection failure.\n"
               "See memvisorctl(1).\n");
}

static void print_options(const struct option *o, size_t n) {
        for (size_t i = 0; o && i < n && o[i].name; i++) {
                if (o[i].val == ARG_LIST_VERBS)
                        continue;
                if (o[i].val > ' ' && o[i].val < 0x7f)
                        printf(" -%c", o[i].val);
                if (o[i].has_arg != required_argument)
                        printf(" --%s", o[i].name);
                if (o[i].has_arg != no_argument)
                        printf(" --%s=", o[i].name);
        }
}

/* --list-verbs (hidden): the verb table for the shell completion generator. One line of global options
 * ("-" TAB TAB options), then a line per verb: name TAB arguments as in --help TAB its options. An option
 * that takes a value ends in '='. */
static void list_verbs(void) {
        printf("-\t\t");
        print_options(global_options, ELEMENTSOF(global_options));
        printf("\n");
        for (size_t t = 0; t < ELEMENTSOF(verb_tables); t++)
                for (const CtlVerb *v = verb_tables[t]; v->name; v++) {
                        printf("%s\t%s\t", v->name, v->args);
                        print_options(v->options, SIZE_MAX);
                        printf("\n");
                }
}

static const CtlVerb *find_verb(const char *name) {
        for (size_t t = 0; t < ELEMENTSOF(verb_tables); t++)
                for (const CtlVerb *v = verb_tables[t]; v->name; v++)
                        if (streq(v->name, name))
                                return v;
        return NULL;
}

/* Parses global and verb options anywhere on the line; returns an exit code to stop with, or -1 to go on.
 * Positional arguments are left in argv[optind…]. */
static int parse_options(int argc, char **argv, const CtlVerb *verb) {
        struct option options[64];
        size_t n = 0;
        int c;

        for (size_t i = 0; i < ELEMENTSOF(global_options); i++)
                options[n++] = global_options[i];
        for (const struct option *o = verb ? verb->options : NULL; o && o->name && n < ELEMENTSOF(options) - 1; o++)
                options[n++] = *o;
        options[n] = (struct option) {};

        /* The verb's options whose value is a letter have that short form too. */
        char shortopts[64] = "hA:H:j";
        size_t k = strlen(shortopts);
        for (const struct option *o = verb ? verb->options : NULL; o && o->name && k + 3 < sizeof(shortopts); o++)
                if (o->val < 0x80 && isalpha(o->val) && !strchr("hAHj", o->val)) {
                        shortopts[k++] = (char) o->val;
                        if (o->has_arg == required_argument)
                                shortopts[k++] = ':';
                        shortopts[k] = 0;
                }

        while ((c = getopt_long(argc, argv, verb ? shortopts : "+hA:H:j", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case ARG_VERSION:
                        printf("memvisorctl %s\n", PROJECT_VERSION);
                        return EXIT_OK;
                case ARG_LIST_VERBS:
                        list_verbs();
                        return EXIT_OK;
                case 'A':
                        arg_address = optarg;
                        break;
                case 'H':
                        arg_host = optarg;
                        break;
                case 'j':
                        if (!optarg || streq(optarg, "short"))
                                arg_json = true, arg_json_pretty = false;
                        else if (streq(optarg, "pretty"))
                                arg_json = arg_json_pretty = true;
                        else if (streq(optarg, "off"))
                                arg_json = arg_json_pretty = false;
                        else {
                                fprintf(stderr, "Invalid --json=%s: expected short, pretty or off.\n", optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case ARG_NO_LEGEND:
                        arg_legend = false;
                        break;
                case ARG_NO_PAGER:
                        break;  /* memvisorctl never starts a pager */
                case ARG_BRIDGE_COMMAND:
                        arg_bridge_command = optarg;
                        break;
                case '?':
                        return EXIT_USAGE;
                default:
                        if (!verb || !verb->option || verb->option(c, optarg) != 0)
                                return EXIT_USAGE;
                }
        return -1;
}

int main(int argc, char *argv[]) {
        const CtlVerb *verb;
        unsigned n;
        int r;

        /* Global options before the verb. */
        r = parse_options(argc, argv, NULL);
        if (r >= 0)
                return r;
        if (optind >= argc) {
                fprintf(stderr, "Command missing; see %s --help.\n", program_invocation_short_name);
                return EXIT_USAGE;
        }

        verb = find_verb(argv[optind]);
        if (!verb) {
                fprintf(stderr, "Unknown command '%s'; see %s --help.\n", argv[optind], program_invocation_short_name);
                return EXIT_USAGE;
        }

        /* The verb's own options (and global ones) anywhere after it; getopt moves positional arguments to
         * the end. */
        argc -= optind;
        argv += optind;
        optind = 0;
        r = parse_options(argc, argv, verb);
        if (r >= 0)
                return r;

        n = (unsigned) (argc - optind);
        if (n < verb->min_args || n > verb->max_args) {
                fprintf(stderr, "%s: expected %s%s; see %s --help.\n", verb->name,
                        verb->max_args == 0 ? "no arguments" : verb->args,
                        verb->max_args == 0 ? "" : " as arguments", program_invocation_short_name);
                return EXIT_USAGE;
        }

        /* argv for the verb: its name, then the positional arguments. */
        argv[optind - 1] = argv[0];
        r = verb->run((int) n + 1, argv + optind - 1);
        ctl_remote_finish();    /* with -H: reap ssh */
        return r;
}
