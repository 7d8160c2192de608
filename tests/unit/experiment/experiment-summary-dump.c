/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The summary and the CSV of iteration records read from stdin, one JSON record a line, for the python checks
 * (test-experiment-summary-numpy.py, test-experiment-export-pandas.py):
 *
 *   experiment-summary-dump summary        records, each data set ended by a line "end": prints the summary of
 *                                           the set (experiment_summary_to_json()) as one line, or
 *                                           {"error": -errno} for the first record the summary refused
 *   experiment-summary-dump csv ID GUEST   prints the header, then the rows of every record
 *                                           (experiment_export_csv_record())
 *
 * A line that is not JSON, or a record the CSV export refuses, is a failure (exit status 1, a message). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/macro.h"
#include "experiment/experiment-export.h"
#include "experiment/experiment-summary.h"

DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(json_tokener *, json_tokener_free);

/* One line of strict JSON, or NULL. */
static json_object *parse_line(const char *line) {
        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new_ex(64);
        json_object *o;

        if (!tok)
                return NULL;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, line, (int) strlen(line));
        if (o && json_tokener_get_error(tok) != json_tokener_success) {
                json_object_put(o);
                return NULL;
        }
        return o;
}

static int summary_mode(void) {
        _cleanup_(experiment_summary_freep) ExperimentSummary *s = NULL;
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        int error = 0, r;

        r = experiment_summary_new(&s);
        if (r < 0)
                return r;
        while (getline(&line, &size, stdin) >= 0) {
                _cleanup_json_ json_object *record = NULL, *o = NULL;

                line[strcspn(line, "\n")] = 0;
                if (streq(line, "end")) {
                        if (error < 0)
                                printf("{\"error\": %d}\n", error);
                        else {
                                r = experiment_summary_to_json(s, &o);
                                if (r < 0)
                                        return r;
                                printf("%s\n", json_to_plain(o, NULL));
                        }
                        s = experiment_summary_free(s);
                        r = experiment_summary_new(&s);
                        if (r < 0)
                                return r;
                        error = 0;
                        continue;
                }
                record = parse_line(line);
                if (!record) {
                        fprintf(stderr, "experiment-summary-dump: not JSON: %s\n", line);
                        return -EINVAL;
                }
                r = experiment_summary_add(s, record);
                if (r < 0 && error == 0)
                        error = r;
        }
        return 0;
}

static int csv_mode(const char *id, const char *guest) {
        _cleanup_free_ char *line = NULL;
        size_t size = 0;
        int r;

        r = experiment_export_csv_header(stdout);
        if (r < 0)
                return r;
        while (getline(&line, &size, stdin) >= 0) {
                _cleanup_json_ json_object *record = NULL;

                line[strcspn(line, "\n")] = 0;
                record = parse_line(line);
                if (!record) {
                        fprintf(stderr, "experiment-summary-dump: not JSON: %s\n", line);
                        return -EINVAL;
                }
                r = experiment_export_csv_record(stdout, id, guest, record);
                if (r < 0) {
                        fprintf(stderr, "experiment-summary-dump: record refused (%s): %s\n", strerror(-r), line);
                        return r;
                }
        }
        return 0;
}

int main(int argc, char *argv[]) {
        int r;

        if (argc == 2 && streq(argv[1], "summary"))
                r = summary_mode();
        else if (argc == 4 && streq(argv[1], "csv"))
                r = csv_mode(argv[2], argv[3]);
        else {
                fprintf(stderr, "usage: experiment-summary-dump summary | csv ID GUEST\n");
                return EXIT_FAILURE;
        }
        if (r < 0) {
                fprintf(stderr, "experiment-summary-dump: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
