/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "basic/json-util.h"
#include "experiment/experiment-counter.h"
#include "experiment/experiment-export.h"

static void put_field(FILE *f, const char *s) {
        if (!s)
                return;
        if (!strpbrk(s, ",\"\r\n")) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"')
                        fputc('"', f);
                fputc(*s, f);
        }
        fputc('"', f);
}

int experiment_export_csv_header(FILE *f) {
        fputs("experiment,guest,iteration,warm_up,started_realtime_usec,counter,value,unit,unavailable\n", f);
        return ferror(f) ? -EIO : 0;
}

/* The columns before the counter's: experiment,guest,iteration,warm_up,started_realtime_usec, */
static void put_prefix(FILE *f, const char *experiment_id, const char *guest, int64_t iteration, bool warm_up,
                       json_object *started) {
        put_field(f, experiment_id);
        fputc(',', f);
        put_field(f, guest);
        fprintf(f, ",%" PRIi64 ",%s,", iteration, warm_up ? "true" : "false");
        if (started && json_object_is_type(started, json_type_int))
                fprintf(f, "%" PRIi64, json_object_get_int64(started));
        fputc(',', f);
}

int experiment_export_csv_record(FILE *f, const char *experiment_id, const char *guest, json_object *record) {
        json_object *it = NULL, *started = NULL, *counters = NULL, *unavailable = NULL;
        bool warm_up;
        int64_t iteration;

        if (!record || !json_object_is_type(record, json_type_object) ||
            !json_object_object_get_ex(record, "iteration", &it) || !json_object_is_type(it, json_type_int))
                return -EBADMSG;
        iteration = json_object_get_int64(it);
        warm_up = json_get_bool(record, "warmUp", false);
        (void) json_object_object_get_ex(record, "startedRealtimeUSec", &started);
        (void) json_object_object_get_ex(record, "counters", &counters);
        (void) json_object_object_get_ex(record, "unavailable", &unavailable);
        if ((counters && !json_object_is_type(counters, json_type_object) &&
             !json_object_is_type(counters, json_type_null)) ||
            (unavailable && !json_object_is_type(unavailable, json_type_object) &&
             !json_object_is_type(unavailable, json_type_null)))
                return -EBADMSG;

        /* Check first, so that a bad record writes no half row. */
        if (json_object_is_type(counters, json_type_object)) {
                json_object_object_foreach(counters, cname, v)
                        if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
                                return -EBADMSG;
                        else
                                (void) cname;
        }
        if (json_object_is_type(unavailable, json_type_object)) {
                json_object_object_foreach(unavailable, uname, v)
                        if (!json_object_is_type(v, json_type_string))
                                return -EBADMSG;
                        else
                                (void) uname;
        }

        if (json_object_is_type(counters, json_type_object)) {
                json_object_object_foreach(counters, name, v) {
                        put_prefix(f, experiment_id, guest, iteration, warm_up, started);
                        put_field(f, name);
                        fputc(',', f);
                        if (json_object_is_type(v, json_type_int))
                                fprintf(f, "%" PRIi64, json_object_get_int64(v));
                        else
                                fprintf(f, "%.17g", json_object_get_double(v));
                        fprintf(f, ",%s,\n", experiment_counter_unit(name));
                }
        }
        if (json_object_is_type(unavailable, json_type_object)) {
                json_object_object_foreach(unavailable, name, v) {
                        put_prefix(f, experiment_id, guest, iteration, warm_up, started);
                        put_field(f, name);
                        fprintf(f, ",,%s,", experiment_counter_unit(name));
                        put_field(f, json_object_get_string(v));
                        fputc('\n', f);
                }
        }
        return ferror(f) ? -EIO : 0;
}
