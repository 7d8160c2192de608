/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "experiment/experiment-counter.h"

bool experiment_counter_name_is_valid(const char *name) {
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n == 0 || n > EXPERIMENT_COUNTER_NAME_MAX || name[0] == '.' || name[n - 1] == '.' ||
            strstr(name, ".."))
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      strchr("_.:-", *p)))
                        return false;
        return true;
}

static bool ends_with(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);
        return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

const char *experiment_counter_unit(const char *name) {
        const char *last;

        if (!name)
                return "count";
        last = strrchr(name, '.');
        last = last ? last + 1 : name;
        if (ends_with(name, "_usec"))
                return "us";
        if (ends_with(name, "_ns"))
                return "ns";
        if (ends_with(name, "_mb_per_sec"))
                return "MB/s";
        if (ends_with(name, "bytes_per_sec"))
                return "bytes/s";
        if (ends_with(name, "_bytes") || ends_with(name, ".bytes") || strcmp(name, "bytes") == 0)
                return "bytes";
        if (ends_with(name, "_pages") || ends_with(name, ".pages") || strcmp(name, "pages") == 0)
                return "pages";
        if (strncmp(last, "bytes_", 6) == 0)    /* "bytes_touched" */
                return "bytes";
        if (strncmp(last, "pages_", 6) == 0)    /* "pages_touched" */
                return "pages";
        return "count";
}
