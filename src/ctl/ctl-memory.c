/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl memory NAME SUB-VERB: a guest's memory as QEMU sees it. The sub-verbs are a table (memory_subverbs[]):
 * one line and a function per sub-verb; their options are the memory verb's, each checked by the sub-verb that
 * takes it.
 *   dirty-rate [--period=S] [--mode=M] [--sample-pages=N]   MeasureDirtyRate, with a progress line on a terminal */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "basic/json-util.h"
#include "basic/parse.h"
#include "ctl/ctl.h"

static const char *arg_period = NULL;
static const char *arg_mode = NULL;
static const char *arg_sample_pages = NULL;

enum {
        ARG_PERIOD = 0x100,
        ARG_MODE,
        ARG_SAMPLE_PAGES,
};

static const struct option memory_options[] = {
        { "period", required_argument, NULL, ARG_PERIOD },
        { "mode", required_argument, NULL, ARG_MODE },
        { "sample-pages", required_argument, NULL, ARG_SAMPLE_PAGES },
        {}
};

static int memory_option(int c, const char *arg) {
        switch (c) {
        case ARG_PERIOD:
                arg_period = arg;
                return 0;
        case ARG_MODE:
                arg_mode = arg;
                return 0;
        case ARG_SAMPLE_PAGES:
                arg_sample_pages = arg;
                return 0;
        }
        return EXIT_USAGE;
}

static void print_dirty_rate(const char *name, json_object *d) {
        json_object *vcpus = ctl_obj_get(d, "vcpus");
        const char *mode = json_get_string(d, "mode");

        printf("%s: dirty rate %" PRIi64 " MB/s (%s, %" PRIi64 " s", name, json_get_int(d, "rateMBPerSec", 0),
               mode ?: "-", json_get_int(d, "periodSec", 0));
        if (ctl_obj_get(d, "samplePages"))
                printf(", %" PRIi64 " pages sampled per GiB", json_get_int(d, "samplePages", 0));
        printf(")\n");
        for (size_t i = 0; i < ctl_array_length(vcpus); i++) {
                json_object *v = ctl_array_get(vcpus, i);

                printf("  vCPU %" PRIi64 ": %" PRIi64 " MB/s\n", json_get_int(v, "id", -1),
                       json_get_int(v, "rateMBPerSec", 0));
        }
}

typedef struct DirtyRateShow {
        const char *name;
        bool progress;  /* a progress line on a terminal */
        bool shown;     /* one is on the screen */
} DirtyRateShow;

static int dirty_rate_reply(json_object *p, bool more, void *userdata) {
        DirtyRateShow *d = userdata;

        if (d->shown && (!p || !more)) {
                printf("\r\033[K");     /* the progress line goes before the result */
                d->shown = false;
        }
        if (!p)
                return 0;
        if (!more) {
                if (arg_json)
                        ctl_print_json(p);
                else
                        print_dirty_rate(d->name, ctl_obj_get(p, "dirtyRate"));
        } else if (d->progress) {
                int64_t e = json_get_int(p, "elapsedUSec", 0), t = json_get_int(p, "periodUSec", 0);

                printf("\r\033[K%s: measuring the dirty rate… %.1f of %.0f s", d->name, (double) e / 1e6,
                       (double) t / 1e6);
                d->shown = true;
        }
        return 0;
}

static int memory_dirty_rate(const char *name) {
        _cleanup_json_ json_object *params = json_object_new_object();
        uint64_t period = 0;
        int64_t pages = 0;

        if (arg_period) {
                /* Whole seconds ("10" or "10s"); the daemon checks QEMU's limits. */
                if (parse_sec(arg_period, &period) < 0 || period == USEC_INFINITY || period % USEC_PER_SEC != 0 ||
                    period / USEC_PER_SEC > INT32_MAX) {
                        fprintf(stderr, "Invalid value '%s' for --period=: expected whole seconds such as 10\n",
                                arg_period);
                        return EXIT_USAGE;
                }
        }
        if (arg_sample_pages) {
                int v;

                if (parse_int(arg_sample_pages, &v) < 0) {
                        fprintf(stderr, "Invalid value '%s' for --sample-pages=: expected a number of pages per GiB\n",
                                arg_sample_pages);
                        return EXIT_USAGE;
                }
                pages = v;
        }
        if (!params || json_add_string(params, "name", name) < 0 ||
            (arg_period && json_add_int(params, "periodSec", (int64_t) (period / USEC_PER_SEC)) < 0) ||
            (arg_mode && json_add_string(params, "mode", arg_mode) < 0) ||
            (arg_sample_pages && json_add_int(params, "samplePages", pages) < 0))
                return EXIT_CONNECTION;

        return ctl_call_more("io.memvisor.Manager.MeasureDirtyRate", params, dirty_rate_reply,
                             &(DirtyRateShow) { .name = name, .progress = !arg_json && isatty(STDOUT_FILENO) });
}

typedef struct MemorySubverb {
        const char *name;
        int (*run)(const char *name);
        const struct option *options;   /* the memory options it takes (the others are refused) */
} MemorySubverb;

static const MemorySubverb memory_subverbs[] = {
        { "layout", ctl_memory_layout, NULL },
        { "dirty-rate", memory_dirty_rate, memory_options },
        {}
};

static int verb_memory(int argc, char **argv) {
        const char *name = argv[1], *what = argv[2];

        for (const MemorySubverb *s = memory_subverbs; s->name; s++) {
                if (!streq(s->name, what))
                        continue;
                if ((arg_period || arg_mode || arg_sample_pages) && !s->options) {
                        fprintf(stderr, "An option given does not apply to memory NAME %s.\n", what);
                        return EXIT_USAGE;
                }
                return s->run(name);
        }
        fprintf(stderr, "Unknown memory command '%s': expected", what);
        for (const MemorySubverb *s = memory_subverbs; s->name; s++)
                fprintf(stderr, "%s %s", s == memory_subverbs ? "" : ",", s->name);
        fprintf(stderr, ".\n");
        return EXIT_USAGE;
}

const CtlVerb ctl_memory_verbs[] = {
        { "memory", "NAME layout|dirty-rate",
          "A guest's memory as QEMU sees it: its layout (GPA ranges, backends, host addresses and nodes), how fast "
          "the guest dirties it", 2, 2, verb_memory, memory_options, memory_option,
          "dirty-rate [--period=S] [--mode=page-sampling|dirty-bitmap|dirty-ring] [--sample-pages=N]" },
        {}
};
