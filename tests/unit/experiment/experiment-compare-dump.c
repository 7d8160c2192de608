/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The comparison of two sets of iteration records read from stdin, for test-experiment-compare-scipy.py. One
 * request a line, a JSON object:
 *   {"a": [RECORD…], "b": [RECORD…], "definitionA": {…}, "definitionB": {…}, "provenanceA": {…},
 *    "provenanceB": {…}, "counters": [GLOB…], "seed": N, "resamples": N}
 * (everything but "a" and "b" optional: the defaults of experiment-compare.h). Prints one line per request: the
 * comparison (experiment_compare_run()), or {"error": -errno, "field": …, "reason": …} when the records or the
 * options are refused. A line that is not JSON is a failure (exit status 1). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/macro.h"
#include "experiment/experiment-compare.h"

static int refused(int error, const char *field, const char *reason) {
        _cleanup_json_ json_object *o = json_object_new_object();

        if (!o || json_add_int(o, "error", error) < 0 || json_add_string(o, "field", field) < 0 ||
            json_add_string(o, "reason", reason) < 0)
                return -ENOMEM;
        printf("%s\n", json_to_plain(o, NULL));
        return 0;
}

static int handle(json_object *req) {
        _cleanup_(experiment_compare_freep) ExperimentCompare *c = NULL;
        _cleanup_json_ json_object *out = NULL;
        _cleanup_free_ char *reason = NULL;
        _cleanup_free_ char **globs = NULL;
        ExperimentCompareOptions o = EXPERIMENT_COMPARE_OPTIONS_DEFAULT;
        static const char *const keys[][3] = { { "a", "definitionA", "provenanceA" },
                                               { "b", "definitionB", "provenanceB" } };
        const char *field = NULL;
        json_object *v;
        int r;

        r = experiment_compare_new(&c);
        if (r < 0)
                return r;
        for (size_t side = 0; side < 2; side++) {
                json_object *records = NULL, *def = NULL, *prov = NULL;

                (void) json_object_object_get_ex(req, keys[side][0], &records);
                (void) json_object_object_get_ex(req, keys[side][1], &def);
                (void) json_object_object_get_ex(req, keys[side][2], &prov);
                r = experiment_compare_set(c, side, side == 0 ? "A" : "B", def, prov);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < json_object_array_length(records); i++) {
                        r = experiment_compare_add(c, side, json_object_array_get_idx(records, i));
                        if (r < 0)
                                return refused(r, NULL, "record refused");
                }
        }
        if (json_object_object_get_ex(req, "counters", &v)) {
                o.n_counters = json_object_array_length(v);
                globs = calloc(o.n_counters + 1, sizeof(char *));
                if (!globs)
                        return -ENOMEM;
                for (size_t i = 0; i < o.n_counters; i++)
                        globs[i] = (char *) json_object_get_string(json_object_array_get_idx(v, i));
                o.counters = globs;
        }
        if (json_object_object_get_ex(req, "seed", &v))
                o.seed = (uint64_t) json_object_get_int64(v);
        if (json_object_object_get_ex(req, "resamples", &v))
                o.resamples = (size_t) json_object_get_int64(v);

        r = experiment_compare_prepare(c, &o, &field, &reason);
        if (r == -EINVAL || r == -E2BIG)
                return refused(r, field, reason);
        if (r < 0)
                return r;
        r = experiment_compare_run(c, &out);
        if (r < 0)
                return r;
        printf("%s\n", json_to_plain(out, NULL));
        return 0;
}

int main(void) {
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        int r;

        while (getline(&line, &size, stdin) >= 0) {
                _cleanup_json_ json_object *req = NULL;

                if (line[strspn(line, " \t\n")] == 0)
                        continue;
                req = json_tokener_parse(line);
                if (!json_object_is_type(req, json_type_object)) {
                        fprintf(stderr, "experiment-compare-dump: not a JSON object: %s", line);
                        return EXIT_FAILURE;
                }
                r = handle(req);
                if (r < 0) {
                        fprintf(stderr, "experiment-compare-dump: %s\n", strerror(-r));
                        return EXIT_FAILURE;
                }
        }
        return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
