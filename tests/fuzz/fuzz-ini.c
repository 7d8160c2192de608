/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parses the input as an INI file, twice: with a table using every stock value parser, and as
 * memvisord.conf through config_load() (via a memfd). Checks the parser's contract besides the
 * sanitizers: success leaves no message and only values within their ranges; failure gives a
 * "FILE:LINE: reason" message. */

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "config/config.h"
#include "fuzz.h"
#include "basic/ini.h"
#include "basic/log.h"

typedef struct Settings {
        char *string;
        char *path;
        bool flag;
        unsigned number;
        uint64_t size;
        uint64_t timeout;
        mode_t mode;
        int level;
} Settings;

static const IniRange number_range = { 1, 100 };
static const IniRange size_range = { 4096, UINT64_C(1) << 40 };
static const IniRange timeout_range = { 0, 3600 * USEC_PER_SEC };

static const IniItem items[] = {
        { "Main", "String", ini_parse_string, offsetof(Settings, string), NULL },
        { "Main", "Path", ini_parse_path, offsetof(Settings, path), NULL },
        { "Main", "Flag", ini_parse_bool, offsetof(Settings, flag), NULL },
        { "Main", "Number", ini_parse_unsigned, offsetof(Settings, number), &number_range },
        { "Limits", "Size", ini_parse_size, offsetof(Settings, size), &size_range },
        { "Limits", "Timeout", ini_parse_sec, offsetof(Settings, timeout), &timeout_range },
        { "Limits", "Mode", ini_parse_mode, offsetof(Settings, mode), NULL },
        { "Limits", "LogLevel", ini_parse_log_level, offsetof(Settings, level), NULL },
        { "Limits", "String", ini_parse_string, offsetof(Settings, string), NULL },
        { NULL },
};

/* "NAME:" followed by a line number and ": " */
static bool has_location(const char *error, const char *name) {
        const char *p = startswith(error, name);

        if (!p || *p != ':')
                return false;
        p++;
        if (*p < '0' || *p > '9')
                return false;
        while (*p >= '0' && *p <= '9')
                p++;
        return startswith(p, ": ") != NULL;
}

static void fuzz_table(const char *text) {
        Settings s = {
                .number = 1,
                .size = 4096,
        };
        char *error = NULL;
        int r;

        r = ini_parse_buffer("fuzz.conf", text, items, &s, &error);
        if (r >= 0) {
                if (r != 0 || error)
                        abort();
                if (s.number < number_range.min || s.number > number_range.max ||
                    s.size < size_range.min || s.size > size_range.max ||
                    s.timeout > timeout_range.max || s.mode > 07777 || s.level < 0 || s.level > 7)
                        abort();
                if (s.path && s.path[0] != '/')
                        abort();
                if (s.string && s.string[0] == 0)
                        abort(); /* empty values reset to NULL */
        } else if (r != -ENOMEM && (!error || !has_location(error, "fuzz.conf"))) {
                fprintf(stderr, "Bad error message for %d: %s\n", r, strna(error));
                abort();
        }

        free(error);
        free(s.string);
        free(s.path);
}

static void fuzz_config(const uint8_t *data, size_t size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *error = NULL;
        char path[64];
        DaemonConfig c;
        bool found = false;
        int r;

        fd = memfd_create("fuzz-config", MFD_CLOEXEC);
        if (fd < 0)
                abort();
        if (size > 0 && write(fd, data, size) != (ssize_t) size)
                abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%i", fd);

        r = config_load(path, NULL, &c, &found, &error);
        if (r >= 0) {
                VarlinkServerLimits l;

                if (!found || error || !c.runtime_dir || !c.state_dir)
                        abort();
                /* Whatever the file says, the limits must be acceptable to the varlink server. */
                l = config_varlink_limits(&c);
                if (l.max_message_size < 64 || l.max_output_size < 64 || l.max_connections < 1 ||
                    l.max_connections_per_uid < 1 || l.max_json_depth < 2 || l.max_json_depth > 10000)
                        abort();
                config_done(&c);
        } else if (r != -ENOMEM && (!error || !has_location(error, path))) {
                fprintf(stderr, "Bad config error message for %d: %s\n", r, strna(error));
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL;

        if (size > INI_FILE_MAX)
                return 0;
        fuzz_setup_logging();

        /* The buffer parser sees the text up to the first NUL, as it would from a C string. */
        text = fuzz_strndup(data, size);
        fuzz_table(text);

        fuzz_config(data, size);
        return 0;
}
