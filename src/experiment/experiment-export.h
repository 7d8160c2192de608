/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The tidy CSV of an experiment's iterations (memvisorctl experiment export ID --format=csv; the columns are
 * documented in memvisor.experiment(5), "RESULTS"): one row per iteration × counter, RFC 4180 (CRLF-free: rows
 * end in "\n"; a field with a comma, a double quote, a CR or a LF is quoted, its double quotes doubled).
 *
 *   experiment,guest,variant,iteration,warm_up,started_realtime_usec,counter,value,unit,unavailable
 *
 * Numbers are printed exactly: integers as the record holds them, doubles with "%.17g" (which reads back to the
 * same double). warm_up is true or false. An unavailable counter has an empty value and the reason in the last
 * column, which is empty for every other row. variant is the record's "variant" in a matrix run ("A", "B", …),
 * empty in a plain experiment. */

#include <json-c/json.h>
#include <stdio.h>

/* Writes the header line. 0, or -EIO when writing fails. */
int experiment_export_csv_header(FILE *f);

/* Writes the rows of one iteration record (experiment_record_validate()): one per counter, sorted by name, then one
 * per unavailable entry, sorted by name (value empty, unit that of the name, unavailable the reason). Nothing is
 * written for a record that is not as documented (-EBADMSG); -EINVAL for a NULL id or guest; -ENOMEM; -EIO when
 * writing fails. */
int experiment_export_csv_record(FILE *f, const char *experiment_id, const char *guest, json_object *record);
