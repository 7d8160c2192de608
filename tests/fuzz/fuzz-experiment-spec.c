/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parses the input twice: as the text of a *.experiment file with experiment_spec_parse_ini(), and as the JSON
 * form with experiment_spec_parse_json() (json-c, depth bounded as the varlink server bounds it). Besides the
 * sanitizers, it checks the contract: a refusal carries a message; every accepted spec passes
 * experiment_spec_validate() and survives experiment_spec_to_ini() → parse, experiment_spec_to_json() → parse
 * and experiment_spec_copy() as an equal spec, and its canonical text is a fixed point. */

#include <stdio.h>

#include "fuzz.h"
#include "experiment/experiment-spec.h"

#define JSON_DEPTH 64

static void check_error(int r, ExperimentSpecError *e, const char *what) {
        if (r != -ENOMEM && (!e->message || !e->message[0])) {
                fprintf(stderr, "%s: error %d without a message\n", what, r);
                abort();
        }
        experiment_spec_error_done(e);
}

static void check_round_trips(const ExperimentSpec *s) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *a = NULL, *b = NULL, *c = NULL;
        _cleanup_free_ char *ini = NULL, *ini2 = NULL;
        ExperimentSpecError e = {};
        json_object *j = NULL;
        int r;

        if (experiment_spec_validate(s, &e) < 0) {
                fprintf(stderr, "Accepted spec fails validation: %s\n", strna(e.message));
                abort();
        }

        if (experiment_spec_to_ini(s, &ini) < 0)
                abort();
        r = experiment_spec_parse_ini("fuzz.experiment", ini, &a, &e);
        if (r < 0 || !experiment_spec_equal(s, a)) {
                fprintf(stderr, "experiment_spec_to_ini() does not parse back to an equal spec (%d: %s):\n%s\n", r,
                        strna(e.message), ini);
                abort();
        }
        if (experiment_spec_to_ini(a, &ini2) < 0 || !streq(ini, ini2)) {
                fprintf(stderr, "The canonical text is not a fixed point:\n%s\n---\n%s\n", ini, strna(ini2));
                abort();
        }

        if (experiment_spec_to_json(s, &j) < 0)
                abort();
        r = experiment_spec_parse_json(j, &b, &e);
        if (r < 0 || !experiment_spec_equal(s, b)) {
                fprintf(stderr, "experiment_spec_to_json() does not parse back to an equal spec (%d: %s):\n%s\n", r,
                        strna(e.message), json_object_to_json_string(j));
                abort();
        }
        json_object_put(j);

        if (experiment_spec_copy(s, &c) < 0 || !experiment_spec_equal(s, c))
                abort();
}

static void fuzz_ini(const char *text) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = NULL;
        ExperimentSpecError e = {};
        int r;

        r = experiment_spec_parse_ini("fuzz.experiment", text, &s, &e);
        if (r < 0) {
                check_error(r, &e, "INI");
                return;
        }
        if (e.message || !s || !s->guest)
                abort();
        check_round_trips(s);
}

static void fuzz_json(const char *text, size_t size) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = NULL;
        ExperimentSpecError e = {};
        json_tokener *tok;
        json_object *o;
        int r;

        tok = json_tokener_new_ex(JSON_DEPTH);
        if (!tok)
                abort();
        o = json_tokener_parse_ex(tok, text, (int) size);
        json_tokener_free(tok);
        if (!o)
                return;

        r = experiment_spec_parse_json(o, &s, &e);
        if (r < 0)
                check_error(r, &e, "JSON");
        else {
                if (e.message || !s || !s->guest)
                        abort();
                check_round_trips(s);
        }
        json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL;

        if (size > 2 * EXPERIMENT_FILE_MAX)
                return 0;
        fuzz_setup_logging();

        text = fuzz_strndup(data, size);
        fuzz_ini(text);
        fuzz_json(text, size);
        return 0;
}
