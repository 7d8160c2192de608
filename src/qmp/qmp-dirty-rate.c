/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* calc-dirty-rate / query-dirty-rate: parameter limits, the reply parser and the polled measurement
 * (qmp-dirty-rate.h). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "qmp/qmp-dirty-rate.h"

static const char *const dirty_rate_mode_table[_DIRTY_RATE_MODE_MAX] = {
        [DIRTY_RATE_MODE_PAGE_SAMPLING] = "page-sampling",
        [DIRTY_RATE_MODE_DIRTY_BITMAP] = "dirty-bitmap",
        [DIRTY_RATE_MODE_DIRTY_RING] = "dirty-ring",
};
DEFINE_STRING_TABLE(dirty_rate_mode, DirtyRateMode, _DIRTY_RATE_MODE_MAX);

static const char *const dirty_rate_status_table[_DIRTY_RATE_STATUS_MAX] = {
        [DIRTY_RATE_STATUS_UNSTARTED] = "unstarted",
        [DIRTY_RATE_STATUS_MEASURING] = "measuring",
        [DIRTY_RATE_STATUS_MEASURED] = "measured",
};
DEFINE_STRING_TABLE(dirty_rate_status, DirtyRateStatus, _DIRTY_RATE_STATUS_MAX);

int dirty_rate_params_check(const DirtyRateParams *p, const char **ret_field) {
        const char *field = NULL;
        int r = 0;

        if ((int) p->mode < 0 || p->mode >= _DIRTY_RATE_MODE_MAX) {
                field = "mode";
                r = -EINVAL;
        } else if (p->calc_time_sec < DIRTY_RATE_CALC_TIME_MIN || p->calc_time_sec > DIRTY_RATE_CALC_TIME_MAX) {
                field = "calc-time";
                r = -ERANGE;
        } else if (p->sample_pages != 0 && p->mode != DIRTY_RATE_MODE_PAGE_SAMPLING) {
                field = "sample-pages";
                r = -EINVAL;
        } else if (p->sample_pages != 0 &&
                   (p->sample_pages < DIRTY_RATE_SAMPLE_PAGES_MIN || p->sample_pages > DIRTY_RATE_SAMPLE_PAGES_MAX)) {
                field = "sample-pages";
                r = -ERANGE;
        }
        if (ret_field)
                *ret_field = field;
        return r;
}

DirtyRateInfo *dirty_rate_info_free(DirtyRateInfo *i) {
        if (!i)
                return NULL;
        free(i->vcpus);
        return mfree(i);
}

/* An integer member within [min, max]; -EBADMSG when missing (and required), mistyped or out of range. */
static int get_int(json_object *o, const char *key, bool required, int64_t min, int64_t max, bool *ret_has,
                   int64_t *ret) {
        json_object *v;
        int64_t x;

        if (!json_object_object_get_ex(o, key, &v) || !v) {
                if (required)
                        return -EBADMSG;
                if (ret_has)
                        *ret_has = false;
                *ret = 0;
                return 0;
        }
        if (!json_object_is_type(v, json_type_int))
                return -EBADMSG;
        errno = 0;
        x = json_object_get_int64(v);
        /* json-c clamps what does not fit an int64 and sets errno; a uint64 beyond INT64_MAX is out of range too. */
        if (errno != 0 || x < min || x > max || (x == INT64_MAX && json_object_get_uint64(v) > (uint64_t) INT64_MAX))
                return -EBADMSG;
        if (ret_has)
                *ret_has = true;
        *ret = x;
        return 0;
}

static int get_enum(json_object *o, const char *key, int (*from_string)(const char *s), int *ret) {
        json_object *v;
        int x;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string) ||
            strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v))
                return -EBADMSG;
        x = from_string(json_object_get_string(v));
        if (x < 0)
                return -EBADMSG;
        *ret = x;
        return 0;
}

static int mode_from_string(const char *s) {
        return dirty_rate_mode_from_string(s);
}

static int status_from_string(const char *s) {
        return dirty_rate_status_from_string(s);
}

/* Rates are MB/s of a guest: far below this, and a sum over vCPUs must not overflow. */
#define RATE_MAX (INT64_C(1) << 40)

int dirty_rate_info_from_json(json_object *reply, DirtyRateInfo **ret) {
        _cleanup_(dirty_rate_info_freep) DirtyRateInfo *i = NULL;
        int64_t sample_pages = 0;
        json_object *a;
        int x, r;

        if (!json_object_is_type(reply, json_type_object))
                return -EBADMSG;
        i = calloc(1, sizeof(*i));
        if (!i)
                return -ENOMEM;

        if ((r = get_enum(reply, "status", status_from_string, &x)) < 0)
                return r;
        i->status = x;
        if ((r = get_enum(reply, "mode", mode_from_string, &x)) < 0)
                return r;
        i->mode = x;
        if ((r = get_int(reply, "dirty-rate", false, 0, RATE_MAX, &i->has_rate, &i->rate)) < 0)
                return r;
        if (i->status == DIRTY_RATE_STATUS_MEASURED && !i->has_rate)
                return -EBADMSG;
        if ((r = get_int(reply, "start-time", true, 0, INT64_MAX, NULL, &i->start_time)) < 0 ||
            (r = get_int(reply, "calc-time", true, 0, INT64_MAX, NULL, &i->calc_time)) < 0 ||
            (r = get_int(reply, "sample-pages", true, 0, INT64_MAX, NULL, &sample_pages)) < 0)
                return r;
        i->sample_pages = (uint64_t) sample_pages;

        if (json_object_object_get_ex(reply, "vcpu-dirty-rate", &a) && a) {
                size_t n;

                if (!json_object_is_type(a, json_type_array))
                        return -EBADMSG;
                n = json_object_array_length(a);
                if (n > DIRTY_RATE_MAX_VCPUS)
                        return -E2BIG;
                if (n > 0) {
                        i->vcpus = calloc(n, sizeof(DirtyRateVcpu));
                        if (!i->vcpus)
                                return -ENOMEM;
                }
                for (size_t k = 0; k < n; k++) {
                        json_object *e = json_object_array_get_idx(a, k);

                        if (!json_object_is_type(e, json_type_object))
                                return -EBADMSG;
                        if ((r = get_int(e, "id", true, 0, INT32_MAX, NULL, &i->vcpus[k].id)) < 0 ||
                            (r = get_int(e, "dirty-rate", true, 0, RATE_MAX, NULL, &i->vcpus[k].rate)) < 0)
                                return r;
                        i->n_vcpus++;
                }
        }
        *ret = TAKE_PTR(i);
        return 0;
}

int dirty_rate_info_to_json(const DirtyRateInfo *i, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "mode", dirty_rate_mode_to_string(i->mode))) < 0 ||
            (r = json_add_int(o, "rateMBPerSec", i->rate)) < 0 ||
            (r = json_add_int(o, "periodSec", i->calc_time)) < 0 ||
            (r = json_add_int(o, "startTime", i->start_time)) < 0)
                return r;
        if (i->mode == DIRTY_RATE_MODE_PAGE_SAMPLING && (r = json_add_uint(o, "samplePages", i->sample_pages)) < 0)
                return r;
        if (i->vcpus || i->mode == DIRTY_RATE_MODE_DIRTY_RING) {
                _cleanup_json_ json_object *a = json_object_new_array();

                if (!a)
                        return -ENOMEM;
                for (size_t k = 0; k < i->n_vcpus; k++) {
                        _cleanup_json_ json_object *e = json_object_new_object();

                        if (!e || json_add_int(e, "id", i->vcpus[k].id) < 0 ||
                            json_add_int(e, "rateMBPerSec", i->vcpus[k].rate) < 0 ||
                            json_object_array_add(a, e) < 0)
                                return -ENOMEM;
                        TAKE_PTR(e);
                }
                if ((r = json_add(o, "vcpus", TAKE_PTR(a))) < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

/* ---- the measurement ---------------------------------------------------------------------------------------- */

struct DirtyRateMeasurement {
        unsigned n_ref;                 /* the owner's (until cb ran), plus one per QMP command in flight */
        bool done;                      /* cb was called */
        bool released;                  /* … and the owner's reference dropped */
        QmpClient *qmp;
        sd_event *event;
        sd_event_source *timer;
        DirtyRateParams params;
        uint64_t started_usec;          /* CLOCK_MONOTONIC, when calc-dirty-rate was answered */
        uint64_t deadline_usec;
        DirtyRateProgressCallback progress;
        DirtyRateCallback cb;
        void *userdata;
};

/* The one place references go: at the end of every entry (a command's callback drops its own, command true),
 * together with the owner's once cb ran. */
static void measurement_release(DirtyRateMeasurement *m, bool command) {
        unsigned drop = command ? 1 : 0;

        if (m->done && !m->released) {
                m->released = true;
                drop++;
        }
        assert(m->n_ref >= drop);
        m->n_ref -= drop;
        if (m->n_ref > 0)
                return;
        sd_event_source_disable_unref(m->timer);
        qmp_client_unref(m->qmp);
        sd_event_unref(m->event);
        free(m);
}

static void measurement_finish(DirtyRateMeasurement *m, const DirtyRateInfo *info, const DirtyRateError *error) {
        DirtyRateCallback cb = m->cb;

        if (m->done)
                return;
        m->done = true;
        m->timer = sd_event_source_disable_unref(m->timer);
        m->cb = NULL;
        cb(info, error, m->userdata);
}

static void measurement_fail(DirtyRateMeasurement *m, int error, const char *command, const char *error_class,
                             const char *description) {
        log_debug("Dirty rate measurement failed in %s: %s", command, description ?: strerror(-error));
        measurement_finish(m, NULL, &(DirtyRateError) {
                .error = error,
                .command = command,
                .error_class = error_class,
                .description = description ?: strerror(-error),
        });
}

static int measurement_execute(DirtyRateMeasurement *m, const char *command, json_object *args, QmpCommandCallback cb) {
        int r;

        r = qmp_client_execute(m->qmp, command, args, 0, cb, m);
        if (r < 0)
                return r;
        m->n_ref++;
        return 0;
}

static void on_query(QmpClient *q, int error, json_object *result, const char *cls, const char *desc, void *userdata);

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        DirtyRateMeasurement *m = userdata;
        int r;

        m->timer = sd_event_source_disable_unref(m->timer);
        r = measurement_execute(m, "query-dirty-rate", NULL, on_query);
        if (r < 0)
                measurement_fail(m, r, "query-dirty-rate", NULL, NULL);
        measurement_release(m, false);
        return 0;
}

static int measurement_arm(DirtyRateMeasurement *m, uint64_t delay_usec) {
        uint64_t now;
        int r;

        r = sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        r = sd_event_add_time(m->event, &m->timer, CLOCK_MONOTONIC, now + delay_usec, 10 * USEC_PER_MSEC, on_timer,
                              m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(m->timer, "qmp-dirty-rate");
        return 0;
}

static void on_query(QmpClient *q, int error, json_object *result, const char *cls, const char *desc,
                     void *userdata) {
        _cleanup_(dirty_rate_info_freep) DirtyRateInfo *info = NULL;
        DirtyRateMeasurement *m = userdata;
        uint64_t now = 0;
        int r;

        if (m->done)
                goto out;
        if (error < 0) {
                measurement_fail(m, error, "query-dirty-rate", error == -EIO ? cls : NULL, error == -EIO ? desc : NULL);
                goto out;
        }
        r = dirty_rate_info_from_json(result, &info);
        if (r < 0) {
                measurement_fail(m, r, "query-dirty-rate", NULL, "QEMU's query-dirty-rate reply could not be used");
                goto out;
        }
        if (info->mode != m->params.mode || info->calc_time != (int64_t) m->params.calc_time_sec) {
                measurement_fail(m, -EBUSY, "query-dirty-rate", NULL,
                                 "QEMU reports a dirty rate measurement other than the one started (another client "
                                 "started one)");
                goto out;
        }
        if (info->status == DIRTY_RATE_STATUS_MEASURED) {
                measurement_finish(m, info, NULL);
                goto out;
        }
        (void) sd_event_now(m->event, CLOCK_MONOTONIC, &now);
        if (now >= m->deadline_usec) {
                measurement_fail(m, -ETIMEDOUT, "query-dirty-rate", NULL,
                                 "QEMU did not report the dirty rate measured within the period and 30 s");
                goto out;
        }
        if (m->progress)
                m->progress(now - m->started_usec, m->userdata);
        if (m->done)
                goto out;
        r = measurement_arm(m, DIRTY_RATE_POLL_USEC);
        if (r < 0)
                measurement_fail(m, r, "query-dirty-rate", NULL, NULL);
out:
        measurement_release(m, true);
}

static void on_calc(QmpClient *q, int error, json_object *result, const char *cls, const char *desc, void *userdata) {
        DirtyRateMeasurement *m = userdata;
        int r;

        if (m->done)
                goto out;
        if (error < 0) {
                measurement_fail(m, error, "calc-dirty-rate", error == -EIO ? cls : NULL, error == -EIO ? desc : NULL);
                goto out;
        }
        r = sd_event_now(m->event, CLOCK_MONOTONIC, &m->started_usec);
        if (r >= 0) {
                m->deadline_usec = m->started_usec + m->params.calc_time_sec * USEC_PER_SEC + DIRTY_RATE_GRACE_USEC;
                /* The first look when the period is over; QEMU's thread needs a moment more. */
                r = measurement_arm(m, MIN(DIRTY_RATE_POLL_USEC, m->params.calc_time_sec * USEC_PER_SEC));
        }
        if (r < 0)
                measurement_fail(m, r, "calc-dirty-rate", NULL, NULL);
out:
        measurement_release(m, true);
}

static int measurement_calc(DirtyRateMeasurement *m) {
        _cleanup_json_ json_object *args = json_object_new_object();

        if (!args || json_add_int(args, "calc-time", m->params.calc_time_sec) < 0 ||
            json_add_string(args, "mode", dirty_rate_mode_to_string(m->params.mode)) < 0 ||
            (m->params.sample_pages > 0 && json_add_uint(args, "sample-pages", m->params.sample_pages) < 0))
                return -ENOMEM;
        return measurement_execute(m, "calc-dirty-rate", TAKE_PTR(args), on_calc);
}

static void on_query_kvm(QmpClient *q, int error, json_object *result, const char *cls, const char *desc,
                         void *userdata) {
        DirtyRateMeasurement *m = userdata;
        json_object *v;
        int r;

        if (m->done)
                goto out;
        if (error < 0) {
                measurement_fail(m, error, "query-kvm", error == -EIO ? cls : NULL, error == -EIO ? desc : NULL);
                goto out;
        }
        if (!json_object_is_type(result, json_type_object) || !json_object_object_get_ex(result, "enabled", &v) ||
            !json_object_is_type(v, json_type_boolean)) {
                measurement_fail(m, -EBADMSG, "query-kvm", NULL, "QEMU's query-kvm reply could not be used");
                goto out;
        }
        if (!json_object_get_boolean(v)) {
                measurement_fail(m, -EOPNOTSUPP, "calc-dirty-rate", NULL,
                                 m->params.mode == DIRTY_RATE_MODE_DIRTY_RING ?
                                 "the dirty-ring mode needs KVM with a dirty ring ([Memory] DirtyRing=); the guest "
                                 "runs without KVM (TCG)" :
                                 "the dirty-bitmap mode needs KVM; the guest runs without KVM (TCG), where QEMU 7.2 "
                                 "would crash on it; use page-sampling");
                goto out;
        }
        r = measurement_calc(m);
        if (r < 0)
                measurement_fail(m, r, "calc-dirty-rate", NULL, NULL);
out:
        measurement_release(m, true);
}

int dirty_rate_measure(QmpClient *q, sd_event *event, const DirtyRateParams *p, DirtyRateProgressCallback progress,
                       DirtyRateCallback cb, void *userdata, DirtyRateMeasurement **ret) {
        DirtyRateMeasurement *m;
        int r;

        if (!q || !event || !p || !cb || dirty_rate_params_check(p, NULL) < 0)
                return -EINVAL;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        *m = (DirtyRateMeasurement) {
                .n_ref = 1,
                .qmp = qmp_client_ref(q),
                .event = sd_event_ref(event),
                .params = *p,
                .progress = progress,
                .cb = cb,
                .userdata = userdata,
        };
        if (p->mode == DIRTY_RATE_MODE_PAGE_SAMPLING)
                r = measurement_calc(m);
        else
                r = measurement_execute(m, "query-kvm", NULL, on_query_kvm);
        if (r < 0) {
                m->done = true; /* no callback comes: the owner's reference goes now */
                measurement_release(m, false);
                return r;
        }
        if (ret)
                *ret = m;
        return 0;
}

void dirty_rate_measurement_abort(DirtyRateMeasurement *m, int error, const char *description) {
        if (!m || m->done)
                return;
        measurement_fail(m, error, "query-dirty-rate", NULL, description);
        measurement_release(m, false);
}
