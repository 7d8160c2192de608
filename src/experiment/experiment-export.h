/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Tidy CSV of an experiment's iteration records (memvisorctl experiment export --format=csv): one row per
 * iteration × counter, available or not. Columns (memvisorctl(1)):
 *
 *   experiment,guest,iteration,warm_up,started_realtime_usec,counter,value,unit,unavailable
 *
 * warm_up is true or false; value is the counter's delta as the record has it (empty when unavailable); unit
 * follows from the name (experiment_counter_unit()); unavailable is the reason a counter (or counter set) could
 * not be taken, empty otherwise. Fields with a comma, a quote or a line break are quoted as RFC 4180 says. */

#include <json-c/json.h>
#include <stdio.h>

/* Writes the header line. Returns 0 or -EIO. */
int experiment_export_csv_header(FILE *f);
/* Writes the rows of one iteration record (as GetExperimentResults gives it): its counters, then its
 * unavailable ones. guest may be NULL (an empty field). Returns 0, -EBADMSG for a record that is not one (no
 * iteration number, a counter that is not a number, a reason that is not a string), or -EIO. */
int experiment_export_csv_record(FILE *f, const char *experiment_id, const char *guest, json_object *record);
