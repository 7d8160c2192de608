/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The tidy CSV of an experiment's iterations (see experiment-export.h). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/macro.h"
#include "experiment/experiment-counter.h"
#include "experiment/experiment-export.h"
#include "experiment/experiment-summary.h"

#define CSV_HEADER "experiment,guest,variant,iteration,warm_up,started_realtime_usec,counter,value,unit,unavailable\n"

int experiment_export_csv_header(FILE *f) {
        if (!f)
                return -EINVAL;
        return fputs(CSV_HEADER, f) == EOF ? -EIO : 0;
}

/* A field, quoted when it holds a comma, a double quote, a CR or a LF (RFC 4180, section 2). */
static void csv_field(FILE *f, const char *s) {
        if (!strpbrk(s, ",\"\r\n")) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (const char *p = s; *p; p++) {
                if (*p == '"')
                        fputc('"', f);
                fputc(*p, f);
        }
        fputc('"', f);
}

/* An integer exactly as the record holds it (json-c keeps int64 and uint64 apart), a double with %.17g. */
static void csv_number(FILE *f, json_object *v) {
        if (json_object_is_type(v, json_type_int))
                fputs(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), f);
        else
                fprintf(f, "%.17g", json_object_get_double(v));
}

static int compare_strings(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* The member names of o, sorted (borrowed from o). */
static int sorted_keys(json_object *o, const char ***ret, size_t *ret_n) {
        _cleanup_free_ const char **keys = NULL;
        size_t n = 0;

        if (!o) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        keys = calloc(MAX(json_object_object_length(o), 1), sizeof(char *));
        if (!keys)
                return -ENOMEM;
        json_object_object_foreach(o, key, value)
                keys[n++] = key;
        qsort(keys, n, sizeof(char *), compare_strings);
        *ret = TAKE_PTR(keys);
        *ret_n = n;
        return 0;
}

/* The first six columns of every row of the record. */
static void csv_row_start(FILE *f, const char *experiment_id, const char *guest, const char *variant,
                          json_object *iteration, bool warm_up, json_object *started) {
        csv_field(f, experiment_id);
        fputc(',', f);
        csv_field(f, guest);
        fputc(',', f);
        csv_field(f, strempty(variant));
        fputc(',', f);
        csv_number(f, iteration);
        fputs(warm_up ? ",true," : ",false,", f);
        csv_number(f, started);
        fputc(',', f);
}

int experiment_export_csv_record(FILE *f, const char *experiment_id, const char *guest, json_object *record) {
        _cleanup_free_ const char **counter_names = NULL, **unavailable_names = NULL;
        json_object *iteration, *started, *counters, *unavailable = NULL;
        size_t n_counters, n_unavailable;
        const char *variant;
        bool warm_up;
        int r;

        if (!f || !experiment_id || !guest)
                return -EINVAL;
        r = experiment_record_validate(record);
        if (r < 0)
                return r;

        (void) json_object_object_get_ex(record, "iteration", &iteration);
        (void) json_object_object_get_ex(record, "startedRealtimeUSec", &started);
        (void) json_object_object_get_ex(record, "counters", &counters);
        (void) json_object_object_get_ex(record, "unavailable", &unavailable);
        warm_up = json_get_bool(record, "warmUp", false);
        variant = json_get_string(record, "variant");
        if (variant && (!experiment_counter_name_is_valid(variant) || strlen(variant) > 64))
                return -EBADMSG;        /* the store's own labels are "A" … "P": anything else is not ours */

        r = sorted_keys(counters, &counter_names, &n_counters);
        if (r < 0)
                return r;
        r = sorted_keys(unavailable, &unavailable_names, &n_unavailable);
        if (r < 0)
                return r;

        for (size_t i = 0; i < n_counters; i++) {
                json_object *v = json_object_object_get(counters, counter_names[i]);

                csv_row_start(f, experiment_id, guest, variant, iteration, warm_up, started);
                csv_field(f, counter_names[i]);
                fputc(',', f);
                csv_number(f, v);
                fprintf(f, ",%s,\n", experiment_counter_unit(counter_names[i]));
        }
        for (size_t i = 0; i < n_unavailable; i++) {
                json_object *v = json_object_object_get(unavailable, unavailable_names[i]);

                csv_row_start(f, experiment_id, guest, variant, iteration, warm_up, started);
                csv_field(f, unavailable_names[i]);
                fprintf(f, ",,%s,", experiment_counter_unit(unavailable_names[i]));
                csv_field(f, json_object_get_string(v));
                fputc('\n', f);
        }
        return ferror(f) ? -EIO : 0;
}
