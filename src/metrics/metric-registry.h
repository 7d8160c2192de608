/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Metric families and immutable sets of samples, rendered in the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/) and as JSON for varlink.
 *
 * A family is a name (memvisor_ prefix, base units as suffix: _bytes, _seconds, _total for counters), a type,
 * a unit, a HELP text and the names of its labels. A MetricSet is built once (metric_set_add…), sealed
 * (metric_set_seal: families sorted by name, samples by label values, numbers compared as numbers) and from
 * then on only read: renderers take a const set. */

#include <json-c/json.h>
#include <stdio.h>

#include "basic/buffer.h"
#include "basic/macro.h"

#define METRIC_MAX_LABELS 4U
#define METRIC_NAME_MAX 200U

typedef enum MetricType {
        METRIC_GAUGE,
        METRIC_COUNTER,
        _METRIC_TYPE_MAX,
        _METRIC_TYPE_INVALID = -EINVAL,
} MetricType;

DECLARE_STRING_TABLE(metric_type, MetricType);

typedef struct MetricFamily {
        const char *name;
        MetricType type;
        const char *unit;                               /* "bytes", "seconds", "ratio" or "" */
        const char *help;
        const char *labels[METRIC_MAX_LABELS + 1];      /* NULL-terminated */
} MetricFamily;

typedef struct MetricSet MetricSet;

MetricSet *metric_set_new(void);
MetricSet *metric_set_free(MetricSet *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(MetricSet *, metric_set_free);

/* Adds a sample to a family (the family is copied into the set the first time it is seen; a family with the
 * same name but another type or other labels → -EEXIST). values holds one string per label of the family. */
int metric_set_add(MetricSet *s, const MetricFamily *f, const char *const *values, double value);
/* Sorts; the set must not change afterwards (-EROFS). */
void metric_set_seal(MetricSet *s);
size_t metric_set_n_families(const MetricSet *s);
size_t metric_set_n_samples(const MetricSet *s);
/* Value of one sample (labels as given to add); -ENOENT when absent. */
int metric_set_get(const MetricSet *s, const char *name, const char *const *values, double *ret);

/* Appends the text format to out (at most max_size bytes in total: -ENOBUFS beyond). */
int metric_set_render_text(const MetricSet *s, ByteBuffer *out, size_t max_size);
/* [{"name", "type", "unit", "help", "labels": [names], "samples": [{"labels": {k: v}, "value": n}]}],
 * appended to the array ret. */
int metric_set_to_json(const MetricSet *s, json_object *array);

/* Escaping for the text format: HELP escapes \ and newline; label values also ". */
int metric_escape_help(ByteBuffer *out, const char *s, size_t max_size);
int metric_escape_label_value(ByteBuffer *out, const char *s, size_t max_size);
/* Shortest text that reads back as the same double ("NaN", "+Inf", "-Inf" for those). */
const char *metric_format_value(char buf[static 32], double v);
/* Valid metric/label name: [a-zA-Z_][a-zA-Z0-9_]* (no colons: those are for recording rules). */
bool metric_name_is_valid(const char *name);
/* Turns arbitrary text into a valid name part: invalid characters become '_', lower case. */
char *metric_name_sanitize(const char *s);
