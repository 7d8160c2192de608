/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>

#include "basic/json-util.h"
#include "metrics/metric-registry.h"

static const char *const metric_type_table[_METRIC_TYPE_MAX] = {
        [METRIC_GAUGE] = "gauge",
        [METRIC_COUNTER] = "counter",
};

DEFINE_STRING_TABLE(metric_type, MetricType, _METRIC_TYPE_MAX);

typedef struct MetricSample {
        char *values[METRIC_MAX_LABELS];
        double value;
} MetricSample;

typedef struct SetFamily {
        char *name, *help, *unit;
        MetricType type;
        char *labels[METRIC_MAX_LABELS];
        size_t n_labels;
        const MetricFamily *origin;     /* fast path: the descriptor it was added with */
        MetricSample *samples;
        size_t n_samples, allocated;
} SetFamily;

struct MetricSet {
        SetFamily *families;
        size_t n_families, allocated;
        size_t n_samples;
        bool sealed;
};

MetricSet *metric_set_new(void) {
        return calloc(1, sizeof(MetricSet));
}

static void set_family_done(SetFamily *f) {
        free(f->name);
        free(f->help);
        free(f->unit);
        for (size_t i = 0; i < f->n_labels; i++)
                free(f->labels[i]);
        for (size_t i = 0; i < f->n_samples; i++)
                for (size_t j = 0; j < f->n_labels; j++)
                        free(f->samples[i].values[j]);
        free(f->samples);
}

MetricSet *metric_set_free(MetricSet *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_families; i++)
                set_family_done(&s->families[i]);
        free(s->families);
        return mfree(s);
}

bool metric_name_is_valid(const char *name) {
        if (!name || !(isalpha((unsigned char) name[0]) || name[0] == '_'))
                return false;
        for (const char *p = name; *p; p++)
                if (!isalnum((unsigned char) *p) && *p != '_')
                        return false;
        return strlen(name) <= METRIC_NAME_MAX;
}

char *metric_name_sanitize(const char *s) {
        char *r = strdup(s);

        if (!r)
                return NULL;
        for (char *p = r; *p; p++)
                *p = isalnum((unsigned char) *p) ? (char) tolower((unsigned char) *p) : '_';
        return r;
}

static SetFamily *find_family(MetricSet *s, const MetricFamily *f) {
        /* Families are usually added in runs: look at the last one first. */
        for (size_t i = s->n_families; i > 0; i--)
                /* The same descriptor may be reused (filled anew on the stack) for several families: the
                 * pointer alone proves nothing, the name decides. */
                if (s->families[i - 1].origin == f && streq(s->families[i - 1].name, f->name))
                        return &s->families[i - 1];
        for (size_t i = 0; i < s->n_families; i++)
                if (streq(s->families[i].name, f->name))
                        return &s->families[i];
        return NULL;
}

static size_t family_n_labels(const MetricFamily *f) {
        size_t n = 0;
        while (n < METRIC_MAX_LABELS && f->labels[n])
                n++;
        return n;
}

static int add_family(MetricSet *s, const MetricFamily *f, SetFamily **ret) {
        SetFamily *sf;
        size_t nl = family_n_labels(f);

        if (!metric_name_is_valid(f->name) || f->type < 0 || f->type >= _METRIC_TYPE_MAX || !f->help)
                return -EINVAL;
        for (size_t i = 0; i < nl; i++)
                if (!metric_name_is_valid(f->labels[i]) || startswith(f->labels[i], "__"))
                        return -EINVAL;

        if (s->n_families >= s->allocated) {
                size_t na = MAX(s->allocated * 2, (size_t) 32);
                SetFamily *t = reallocarray(s->families, na, sizeof(SetFamily));
                if (!t)
                        return -ENOMEM;
                s->families = t;
                s->allocated = na;
        }
        sf = &s->families[s->n_families];
        *sf = (SetFamily) {
                .name = strdup(f->name),
                .help = strdup(f->help),
                .unit = strdup(strempty(f->unit)),
                .type = f->type,
                .origin = f,
        };
        for (size_t i = 0; i < nl; i++) {
                sf->labels[i] = strdup(f->labels[i]);
                sf->n_labels++;
                if (!sf->labels[i])
                        break;
        }
        if (!sf->name || !sf->help || !sf->unit || sf->n_labels != nl || (nl > 0 && !sf->labels[nl - 1])) {
                set_family_done(sf);
                return -ENOMEM;
        }
        s->n_families++;
        *ret = sf;
        return 0;
}

int metric_set_add(MetricSet *s, const MetricFamily *f, const char *const *values, double value) {
        SetFamily *sf;
        MetricSample *m;
        int r;

        if (s->sealed)
                return -EROFS;

        sf = find_family(s, f);
        if (!sf) {
                r = add_family(s, f, &sf);
                if (r < 0)
                        return r;
        } else if (sf->origin != f) {
                /* Same name from another descriptor (dynamic families): must agree. */
                if (sf->type != f->type || sf->n_labels != family_n_labels(f))
                        return -EEXIST;
                for (size_t i = 0; i < sf->n_labels; i++)
                        if (!streq(sf->labels[i], f->labels[i]))
                                return -EEXIST;
        }

        for (size_t i = 0; i < sf->n_labels; i++)
                if (!values || !values[i])
                        return -EINVAL;

        if (sf->n_samples >= sf->allocated) {
                size_t na = MAX(sf->allocated * 2, (size_t) 4);
                MetricSample *t = reallocarray(sf->samples, na, sizeof(MetricSample));
                if (!t)
                        return -ENOMEM;
                sf->samples = t;
                sf->allocated = na;
        }
        m = &sf->samples[sf->n_samples];
        *m = (MetricSample) { .value = value };
        for (size_t i = 0; i < sf->n_labels; i++) {
                m->values[i] = strdup(values[i]);
                if (!m->values[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(m->values[j]);
                        return -ENOMEM;
                }
        }
        sf->n_samples++;
        s->n_samples++;
        return 0;
}

static bool all_digits(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!isdigit((unsigned char) *s))
                        return false;
        return true;
}

static int cmp_label_value(const char *a, const char *b) {
        if (all_digits(a) && all_digits(b)) {
                size_t la = strlen(a), lb = strlen(b);
                /* No leading-zero trickery in our labels; compare by length, then text. */
                if (la != lb)
                        return la < lb ? -1 : 1;
        }
        return strcmp(a, b);
}

static size_t sort_n_labels;

static int cmp_sample(const void *x, const void *y) {
        const MetricSample *a = x, *b = y;

        for (size_t i = 0; i < sort_n_labels; i++) {
                int c = cmp_label_value(a->values[i], b->values[i]);
                if (c != 0)
                        return c;
        }
        return 0;
}

static int cmp_family(const void *x, const void *y) {
        const SetFamily *a = x, *b = y;
        return strcmp(a->name, b->name);
}

void metric_set_seal(MetricSet *s) {
        if (s->sealed)
                return;
        if (s->n_families > 0)
                qsort(s->families, s->n_families, sizeof(SetFamily), cmp_family);
        for (size_t i = 0; i < s->n_families; i++) {
                SetFamily *f = &s->families[i];
                sort_n_labels = f->n_labels;
                if (f->n_samples > 1 && f->n_labels > 0)
                        qsort(f->samples, f->n_samples, sizeof(MetricSample), cmp_sample);
                f->origin = NULL;
        }
        s->sealed = true;
}

size_t metric_set_n_families(const MetricSet *s) {
        return s->n_families;
}

size_t metric_set_n_samples(const MetricSet *s) {
        return s->n_samples;
}

int metric_set_get(const MetricSet *s, const char *name, const char *const *values, double *ret) {
        for (size_t i = 0; i < s->n_families; i++) {
                const SetFamily *f = &s->families[i];

                if (!streq(f->name, name))
                        continue;
                for (size_t j = 0; j < f->n_samples; j++) {
                        bool match = true;
                        for (size_t k = 0; k < f->n_labels && match; k++)
                                match = values && values[k] && streq(values[k], f->samples[j].values[k]);
                        if (match) {
                                *ret = f->samples[j].value;
                                return 0;
                        }
                }
        }
        return -ENOENT;
}

const char *metric_format_value(char buf[static 32], double v) {
        if (isnan(v))
                return strcpy(buf, "NaN");
        if (isinf(v))
                return strcpy(buf, v > 0 ? "+Inf" : "-Inf");
        if (v == floor(v) && fabs(v) < 9007199254740992.0) {
                (void) snprintf(buf, 32, "%" PRId64, (int64_t) v);
                return buf;
        }
        for (int prec = 15; prec <= 17; prec++) {
                (void) snprintf(buf, 32, "%.*g", prec, v);
                if (strtod(buf, NULL) == v)
                        break;
        }
        return buf;
}

static int append(ByteBuffer *out, const char *s, size_t n, size_t max_size) {
        return byte_buffer_append(out, s, n, max_size);
}

static int append_str(ByteBuffer *out, const char *s, size_t max_size) {
        return append(out, s, strlen(s), max_size);
}

static int escape(ByteBuffer *out, const char *s, bool quote, size_t max_size) {
        const char *run = s;
        int r;

        for (const char *p = s;; p++) {
                const char *rep = NULL;

                if (*p == '\\')
                        rep = "\\\\";
                else if (*p == '\n')
                        rep = "\\n";
                else if (quote && *p == '"')
                        rep = "\\\"";
                else if (*p)
                        continue;

                r = append(out, run, (size_t) (p - run), max_size);
                if (r < 0)
                        return r;
                if (!rep)
                        return 0;
                r = append_str(out, rep, max_size);
                if (r < 0)
                        return r;
                run = p + 1;
        }
}

int metric_escape_help(ByteBuffer *out, const char *s, size_t max_size) {
        return escape(out, s, false, max_size);
}

int metric_escape_label_value(ByteBuffer *out, const char *s, size_t max_size) {
        return escape(out, s, true, max_size);
}

int metric_set_render_text(const MetricSet *s, ByteBuffer *out, size_t max_size) {
        int r;

        for (size_t i = 0; i < s->n_families; i++) {
                const SetFamily *f = &s->families[i];

                if (f->n_samples == 0)
                        continue;
                if ((r = append_str(out, "# HELP ", max_size)) < 0 ||
                    (r = append_str(out, f->name, max_size)) < 0 ||
                    (r = append_str(out, " ", max_size)) < 0 ||
                    (r = metric_escape_help(out, f->help, max_size)) < 0 ||
                    (r = append_str(out, "\n# TYPE ", max_size)) < 0 ||
                    (r = append_str(out, f->name, max_size)) < 0 ||
                    (r = append_str(out, " ", max_size)) < 0 ||
                    (r = append_str(out, metric_type_to_string(f->type), max_size)) < 0 ||
                    (r = append_str(out, "\n", max_size)) < 0)
                        return r;

                for (size_t j = 0; j < f->n_samples; j++) {
                        const MetricSample *m = &f->samples[j];
                        char buf[32];

                        r = append_str(out, f->name, max_size);
                        if (r < 0)
                                return r;
                        for (size_t k = 0; k < f->n_labels; k++) {
                                if ((r = append_str(out, k == 0 ? "{" : ",", max_size)) < 0 ||
                                    (r = append_str(out, f->labels[k], max_size)) < 0 ||
                                    (r = append_str(out, "=\"", max_size)) < 0 ||
                                    (r = metric_escape_label_value(out, m->values[k], max_size)) < 0 ||
                                    (r = append_str(out, "\"", max_size)) < 0)
                                        return r;
                        }
                        if ((f->n_labels > 0 && (r = append_str(out, "}", max_size)) < 0) ||
                            (r = append_str(out, " ", max_size)) < 0 ||
                            (r = append_str(out, metric_format_value(buf, m->value), max_size)) < 0 ||
                            (r = append_str(out, "\n", max_size)) < 0)
                                return r;
                }
        }
        return 0;
}

static int add_json_value(json_object *o, double v) {
        /* JSON has no NaN/Inf: null then. Integral values as integers. */
        if (!isfinite(v))
                return json_object_object_add(o, "value", NULL) < 0 ? -ENOMEM : 0;
        if (v == floor(v) && fabs(v) < 9007199254740992.0)
                return json_add_int(o, "value", (int64_t) v);
        return json_add_double(o, "value", v);
}

int metric_set_to_json(const MetricSet *s, json_object *array) {
        for (size_t i = 0; i < s->n_families; i++) {
                const SetFamily *f = &s->families[i];
                _cleanup_json_ json_object *o = json_object_new_object(), *labels = json_object_new_array(),
                                           *samples = json_object_new_array();

                if (!o || !labels || !samples)
                        return -ENOMEM;
                for (size_t k = 0; k < f->n_labels; k++)
                        if (json_object_array_add(labels, json_object_new_string(f->labels[k])) < 0)
                                return -ENOMEM;
                for (size_t j = 0; j < f->n_samples; j++) {
                        _cleanup_json_ json_object *sample = json_object_new_object(), *lv = json_object_new_object();
                        const MetricSample *m = &f->samples[j];

                        if (!sample || !lv)
                                return -ENOMEM;
                        for (size_t k = 0; k < f->n_labels; k++)
                                if (json_add_string(lv, f->labels[k], m->values[k]) < 0)
                                        return -ENOMEM;
                        if (json_add(sample, "labels", TAKE_PTR(lv)) < 0 ||
                            add_json_value(sample, m->value) < 0 ||
                            json_object_array_add(samples, TAKE_PTR(sample)) < 0)
                                return -ENOMEM;
                }
                if (json_add_string(o, "name", f->name) < 0 ||
                    json_add_string(o, "type", metric_type_to_string(f->type)) < 0 ||
                    json_add_string(o, "unit", f->unit) < 0 ||
                    json_add_string(o, "help", f->help) < 0 ||
                    json_add(o, "labels", TAKE_PTR(labels)) < 0 ||
                    json_add(o, "samples", TAKE_PTR(samples)) < 0 ||
                    json_object_array_add(array, TAKE_PTR(o)) < 0)
                        return -ENOMEM;
        }
        return 0;
}
