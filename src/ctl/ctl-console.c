/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisorctl console NAME [--boot=N] [--lines=N] [--follow] [--raw]: a guest's console history over GetConsole,
 * as journalctl -b reads the journal. What the guest wrote is escaped (utf8_escape_untrusted) before it reaches
 * the terminal unless --raw: no escape sequence of a guest's makes it to the user's terminal. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "basic/base64.h"
#include "basic/json-util.h"
#include "basic/parse.h"
#include "basic/utf8.h"
#include "ctl/ctl.h"

#define ARG_BOOT 0x300
#define ARG_LINES 0x301
#define ARG_FOLLOW 0x302
#define ARG_RAW 0x303

#define FOLLOW_INTERVAL_NSEC (500 * 1000 * 1000L)
/* GetConsole sends at most 256 KiB: its base64 is at most this. */
#define CONSOLE_DATA_MAX (512U * 1024)

static int64_t arg_boot = 0;
static int64_t arg_lines = 0;
static bool arg_follow = false;
static bool arg_raw = false;

static int console_option(int c, const char *arg) {
        int v;

        switch (c) {
        case ARG_BOOT:
                if (parse_int(arg, &v) < 0) {
                        fprintf(stderr, "Invalid --boot=%s: expected 0 (the newest), -1, -2, … or a boot number.\n", arg);
                        return EXIT_USAGE;
                }
                arg_boot = v;
                break;
        case ARG_LINES:
                if (parse_int(arg, &v) < 0 || v < 0 || v > 100000) {
                        fprintf(stderr, "Invalid --lines=%s: expected 0 (all) to 100000.\n", arg);
                        return EXIT_USAGE;
                }
                arg_lines = v;
                break;
        case ARG_FOLLOW:
                arg_follow = true;
                break;
        case ARG_RAW:
                arg_raw = true;
                break;
        default:
                return EXIT_USAGE;
        }
        return 0;
}

static int report_no_such_boot(json_object *reply) {
        json_object *p = ctl_reply_parameters(reply);
        const char *name = json_get_string(p, "name");
        int64_t boot = json_get_int(p, "boot", 0), kept = json_get_int(p, "kept", 0);

        if (kept <= 0)
                fprintf(stderr, "Boot %" PRIi64 " of guest %s is not kept: no console history is kept for it (it has "
                        "not booted since it was defined).\n", boot, strna(name));
        else
                fprintf(stderr, "Boot %" PRIi64 " of guest %s is not kept: kept are boots %" PRIi64 " to %" PRIi64
                        " (%" PRIi64 " boot%s: --boot=%" PRIi64 " to 0, or the boot number).\n", boot, strna(name),
                        json_get_int(p, "first", 0), json_get_int(p, "last", 0), kept, kept == 1 ? "" : "s",
                        1 - kept);
        return ctl_report_error(reply);
}

/* Prints the data of a GetConsole reply; *ret_end is where it ended. */
static int print_chunk(json_object *p) {
        const char *data = json_get_string(p, "data");
        _cleanup_free_ char *bytes = NULL, *text = NULL;
        size_t n = 0;

        if (!data || base64_decode(data, strlen(data), CONSOLE_DATA_MAX, &bytes, &n) < 0) {
                fprintf(stderr, "The daemon sent a GetConsole reply without valid data.\n");
                return EXIT_CONNECTION;
        }
        if (arg_raw) {
                (void) fwrite(bytes, 1, n, stdout);
        } else {
                text = utf8_escape_untrusted(bytes, n);
                if (!text) {
                        fprintf(stderr, "Out of memory.\n");
                        return EXIT_CONNECTION;
                }
                (void) fputs(text, stdout);
        }
        (void) fflush(stdout);
        return EXIT_OK;
}

/* Calls GetConsole. With ret_gone (following), a boot rotated away is no error: *ret_gone is the oldest kept. */
static int get_console(VarlinkClient *c, const char *name, int64_t boot, int64_t lines, int64_t offset,
                       json_object **ret_reply, int64_t *ret_gone) {
        _cleanup_json_ json_object *params = json_object_new_object(), *reply = NULL;
        int r;

        if (!params || json_add_string(params, "name", name) < 0 || json_add_int(params, "boot", boot) < 0 ||
            (lines > 0 && json_add_int(params, "lines", lines) < 0) ||
            (offset >= 0 && json_add_int(params, "offset", offset) < 0)) {
                fprintf(stderr, "Out of memory.\n");
                return EXIT_CONNECTION;
        }
        r = varlink_client_call(c, "io.memvisor.Manager.GetConsole", params, &reply);
        if (r < 0)
                return ctl_connection_failed(r, "Failed to call io.memvisor.Manager.GetConsole");
        if (streq_ptr(json_get_string(reply, "error"), "io.memvisor.Manager.NoSuchBoot")) {
                int64_t first = json_get_int(ctl_reply_parameters(reply), "first", 0);

                if (!ret_gone || first <= boot)
                        return report_no_such_boot(reply);
                *ret_gone = first;
                return EXIT_OK;
        }
        if (json_get_string(reply, "error"))
                return ctl_report_error(reply);
        *ret_reply = TAKE_PTR(reply);
        return EXIT_OK;
}

static int verb_console(int argc, char **argv) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_json_ json_object *reply = NULL;
        const char *name = argv[1];
        int64_t boot, offset;
        json_object *p;
        int r;

        r = ctl_connect(&c);
        if (r < 0)
                return -r;
        r = get_console(c, name, arg_boot, arg_lines, -1, &reply, NULL);
        if (r != EXIT_OK)
                return r;
        p = ctl_reply_parameters(reply);
        if (arg_json && !arg_follow) {
                ctl_print_json(p);
                return EXIT_OK;
        }
        r = print_chunk(p);
        if (r != EXIT_OK || !arg_follow)
                return r;

        /* --follow: poll for more from where the last reply ended; on to the next boot when one begins. */
        boot = json_get_int(p, "boot", 0);
        offset = json_get_int(p, "end", 0);
        for (;;) {
                const struct timespec ts = { .tv_nsec = FOLLOW_INTERVAL_NSEC };
                int64_t last, gone = -1;

                json_object_put(TAKE_PTR(reply));
                r = get_console(c, name, boot, 0, offset, &reply, &gone);
                if (r != EXIT_OK)
                        return r;
                if (gone >= 0) {
                        fprintf(stderr, "Boots %" PRIi64 " to %" PRIi64 " of guest %s were removed ([Console] "
                                "KeepBoots=) before they were read; going on with boot %" PRIi64 ".\n", boot,
                                gone - 1, name, gone);
                        boot = gone;
                        offset = 0;
                        continue;
                }
                p = ctl_reply_parameters(reply);
                r = print_chunk(p);
                if (r != EXIT_OK)
                        return r;
                offset = json_get_int(p, "end", offset);
                last = json_get_int(p, "last", boot);
                if (offset >= json_get_int(p, "size", 0) && last > boot) {
                        boot = MAX(boot + 1, json_get_int(p, "first", boot + 1));
                        offset = 0;
                        continue;
                }
                if (offset < json_get_int(p, "size", 0))
                        continue;       /* more is there already */
                (void) nanosleep(&ts, NULL);
        }
}

static const struct option console_options[] = {
        { "boot", required_argument, NULL, ARG_BOOT },
        { "lines", required_argument, NULL, ARG_LINES },
        { "follow", no_argument, NULL, ARG_FOLLOW },
        { "raw", no_argument, NULL, ARG_RAW },
        {}
};

const CtlVerb ctl_console_verbs[] = {
        { "console", "NAME", "Show a guest's console output, of the current boot or an earlier one", 1, 1,
          verb_console, console_options, console_option,
          "--boot=N: 0 the current boot, -1 the one before, …, or a boot number; --lines=N: the last N lines; "
          "--follow: print what comes until interrupted, on into the next boots; --raw: the guest's bytes as they "
          "are (control characters are escaped otherwise)" },
        {}
};
