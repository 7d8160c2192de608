/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Without arguments: prints the key table of memvisor.experiment(5) as the code has it
 * (experiment_spec_key_get()), one "key SECTION KEY" line per key ("multiple" appended for list keys), then
 * one "counter NAME" line per counter set. With arguments: parses each file as a definition and prints
 * "FILE: ok" or the error; exit status 1 if any was refused. check-experiment-docs.py compares both with the
 * man page. Not installed. */
#include <stdio.h>

#include "experiment/experiment-spec.h"

int main(int argc, char *argv[]) {
        const char *section, *key;
        bool multiple;
        int ret = 0;

        if (argc > 1) {
                for (int i = 1; i < argc; i++) {
                        ExperimentSpec *s = NULL;
                        ExperimentSpecError e = {};
                        int r;

                        r = experiment_spec_parse_file(argv[i], &s, &e);
                        if (r < 0) {
                                printf("%s: %s\n", argv[i], e.message ?: strerror(-r));
                                ret = 1;
                        } else
                                printf("%s: ok\n", argv[i]);
                        experiment_spec_error_done(&e);
                        experiment_spec_free(s);
                }
                return fflush(stdout) == 0 ? ret : 1;
        }

        for (size_t i = 0; experiment_spec_key_get(i, &section, &key, &multiple); i++)
                printf("key %s %s%s\n", section, key, multiple ? " multiple" : "");
        for (int c = 0; c < _EXPERIMENT_COUNTER_MAX; c++)
                printf("counter %s\n", experiment_counter_to_string(c));
        return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}
