/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Iteration records, one JSON text a line, through the summary of an experiment (experiment_summary_add()) and
 * the CSV export (experiment_export_csv_record()). Besides the sanitizers, it checks the contract: a refused
 * record is -EBADMSG or -E2BIG and leaves the summary's JSON as it was; the export accepts exactly the records
 * experiment_record_validate() accepts and writes nothing for the others; the summary's JSON is always strict
 * JSON (no NaN, no infinity) that reads back, its statistics sorted by counter and each with n >= 1. */

#include "fuzz.h"
#include "basic/json-util.h"
#include "experiment/experiment-export.h"
#include "experiment/experiment-summary.h"

DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(json_tokener *, json_tokener_free);

static json_object *parse_strict(const char *text, size_t n) {
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new_ex(64);
        json_object *o;

        if (!tok)
                abort();
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, text, (int) n);
        if (o && (json_tokener_get_error(tok) != json_tokener_success || (size_t) json_tokener_get_parse_end(tok) != n)) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static char *summary_text(ExperimentSummary *s) {
        _cleanup_json_ json_object *o = NULL, *back = NULL;
        json_object *a;
        const char *t, *prev = NULL;
        size_t n;
        char *copy;

        if (experiment_summary_to_json(s, &o) < 0)
                abort();
        t = json_to_plain(o, &n);
        back = parse_strict(t, n);
        if (!back)
                abort();        /* not strict JSON */
        if (!json_object_object_get_ex(o, "statistics", &a))
                abort();
        for (size_t i = 0; i < json_object_array_length(a); i++) {
                json_object *st = json_object_array_get_idx(a, i);
                const char *name = json_get_string(st, "counter");

                if (!name || json_get_int(st, "n", 0) < 1 || (prev && strcmp(prev, name) >= 0))
                        abort();
                prev = name;
        }
        copy = strdup(t);
        if (!copy)
                abort();
        return copy;
}

static void record_case(ExperimentSummary *s, const char *line, size_t n) {
        _cleanup_json_ json_object *record = parse_strict(line, n);
        _cleanup_free_ char *before = NULL, *after = NULL, *csv = NULL;
        size_t csv_size = 0;
        FILE *f;
        int r, valid;

        if (!record)
                return;
        valid = experiment_record_validate(record);
        if (valid < 0 && valid != -EBADMSG)
                abort();

        f = open_memstream(&csv, &csv_size);
        if (!f)
                abort();
        r = experiment_export_csv_record(f, "id", "g", record);
        if (fclose(f) != 0)
                abort();
        if (r != valid || (r < 0 && csv_size != 0))
                abort();

        before = summary_text(s);
        r = experiment_summary_add(s, record);
        FUZZ_CHECK_ERROR(r, -EBADMSG, -E2BIG);
        if (r == -EBADMSG && valid == 0)
                abort();
        if (r < 0) {
                after = summary_text(s);
                if (!streq(before, after))
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        _cleanup_free_ char *text = NULL, *last = NULL;
        char *p;

        if (size > 256 * 1024)
                return 0;
        fuzz_setup_logging();
        text = fuzz_strndup(data, size);
        if (experiment_summary_new(&s) < 0)
                abort();
        p = text;
        while (*p) {
                size_t n = strcspn(p, "\n");

                record_case(s, p, n);
                p += n;
                if (*p)
                        p++;
        }
        last = summary_text(s);
        return 0;
}
