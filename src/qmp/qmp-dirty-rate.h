/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A guest's dirty-page rate through QMP calc-dirty-rate / query-dirty-rate (QEMU ≥ 7.1 for the modes).
 *
 * calc-dirty-rate only starts a measurement in a QEMU thread; dirty_rate_measure() then polls query-dirty-rate on
 * an sd-event timer until QEMU reports it measured, bounded by the period plus DIRTY_RATE_GRACE_USEC. The
 * limits are QEMU 7.2's (migration/dirtyrate.c): calc-time 1…60 s, sample-pages 128…16384 per GiB, the latter
 * only in page-sampling mode. QEMU 7.2 dereferences the KVM state for the dirty-bitmap and dirty-ring modes
 * without checking that KVM is in use and crashes under TCG, so for those modes query-kvm is asked first and a
 * guest without KVM is refused here (-EOPNOTSUPP) before QEMU sees the command.
 *
 * query-dirty-rate's reply is QEMU output: untrusted, parsed field by field, bounded (DIRTY_RATE_MAX_VCPUS). */

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "basic/macro.h"
#include "qmp/qmp-client.h"

typedef enum DirtyRateMode {
        DIRTY_RATE_MODE_PAGE_SAMPLING,
        DIRTY_RATE_MODE_DIRTY_BITMAP,
        DIRTY_RATE_MODE_DIRTY_RING,
        _DIRTY_RATE_MODE_MAX,
        _DIRTY_RATE_MODE_INVALID = -EINVAL,
} DirtyRateMode;

typedef enum DirtyRateStatus {
        DIRTY_RATE_STATUS_UNSTARTED,
        DIRTY_RATE_STATUS_MEASURING,
        DIRTY_RATE_STATUS_MEASURED,
        _DIRTY_RATE_STATUS_MAX,
        _DIRTY_RATE_STATUS_INVALID = -EINVAL,
} DirtyRateStatus;

DECLARE_STRING_TABLE(dirty_rate_mode, DirtyRateMode);
DECLARE_STRING_TABLE(dirty_rate_status, DirtyRateStatus);

#define DIRTY_RATE_CALC_TIME_MIN 1U
#define DIRTY_RATE_CALC_TIME_MAX 60U
#define DIRTY_RATE_CALC_TIME_DEFAULT 1U
#define DIRTY_RATE_SAMPLE_PAGES_MIN 128U
#define DIRTY_RATE_SAMPLE_PAGES_MAX 16384U
#define DIRTY_RATE_SAMPLE_PAGES_DEFAULT 512U
#define DIRTY_RATE_MAX_VCPUS 4096U
/* How long after the period QEMU may take to report the result (dirty-bitmap syncs every RAM block). */
#define DIRTY_RATE_GRACE_USEC (30U * USEC_PER_SEC)
#define DIRTY_RATE_POLL_USEC (500U * USEC_PER_MSEC)

typedef struct DirtyRateParams {
        DirtyRateMode mode;
        unsigned calc_time_sec;         /* 1…60 */
        unsigned sample_pages;          /* 0: QEMU's default (page-sampling), else 128…16384, page-sampling only */
} DirtyRateParams;

/* 0 when QEMU 7.2 accepts p; -ERANGE (value outside QEMU's limits) or -EINVAL (not allowed with the mode) with
 * *ret_field set to the QMP argument ("calc-time", "sample-pages", "mode"). */
int dirty_rate_params_check(const DirtyRateParams *p, const char **ret_field);

typedef struct DirtyRateVcpu {
        int64_t id;
        int64_t rate;                   /* MB/s as QEMU reports it */
} DirtyRateVcpu;

typedef struct DirtyRateInfo {
        DirtyRateStatus status;
        DirtyRateMode mode;
        bool has_rate;                  /* "dirty-rate" is present (status measured) */
        int64_t rate;                   /* MB/s (QEMU's unit: 2^20 bytes per second), ≥ 0 */
        int64_t start_time;             /* QEMU's realtime clock, seconds */
        int64_t calc_time;              /* seconds */
        uint64_t sample_pages;          /* per GiB; 0 outside page-sampling */
        DirtyRateVcpu *vcpus;           /* "vcpu-dirty-rate" (dirty-ring mode), NULL otherwise */
        size_t n_vcpus;
} DirtyRateInfo;

DirtyRateInfo *dirty_rate_info_free(DirtyRateInfo *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(DirtyRateInfo *, dirty_rate_info_free);

/* Parses query-dirty-rate's "return" value. -EBADMSG for a missing, mistyped or out-of-range field, an unknown
 * status or mode, a measured status without dirty-rate or a negative rate; -E2BIG for more than
 * DIRTY_RATE_MAX_VCPUS vCPUs; -ENOMEM. */
int dirty_rate_info_from_json(json_object *reply, DirtyRateInfo **ret);

/* {"mode", "rateMBPerSec", "periodSec", "samplePages" (page-sampling only), "startTime", "vcpus": [{"id",
 * "rateMBPerSec"}] (dirty-ring only)} of a measured info. */
int dirty_rate_info_to_json(const DirtyRateInfo *i, json_object **ret);

/* Why a measurement failed: error is a negative errno (-EIO: QEMU refused a command, error_class and
 * description are QEMU's; -EOPNOTSUPP: the mode needs KVM; -ETIMEDOUT: no result within the bound;
 * -ECONNRESET/-ENOTCONN: QEMU went away; -EBADMSG: an unusable reply; -EBUSY: QEMU reports another
 * measurement than ours; or what dirty_rate_measurement_abort() was given). command is the QMP command. */
typedef struct DirtyRateError {
        int error;
        const char *command;
        const char *error_class;
        const char *description;
} DirtyRateError;

typedef struct DirtyRateMeasurement DirtyRateMeasurement;

/* Called exactly once: with the measured info (borrowed) and error NULL, or with error. The measurement is
 * freed right after it returns. */
typedef void (*DirtyRateCallback)(const DirtyRateInfo *info, const DirtyRateError *error, void *userdata);
/* Called on every poll while QEMU measures (optional): elapsed time since calc-dirty-rate was answered. */
typedef void (*DirtyRateProgressCallback)(uint64_t elapsed_usec, void *userdata);

/* Starts a measurement (p must pass dirty_rate_params_check(): -EINVAL otherwise). On success *ret (optional)
 * is a handle valid until cb ran; on failure nothing was sent and no callback comes. */
int dirty_rate_measure(QmpClient *q, sd_event *event, const DirtyRateParams *p, DirtyRateProgressCallback progress,
                       DirtyRateCallback cb, void *userdata, DirtyRateMeasurement **ret);

/* Ends a measurement early: cb is called (now, inside this call) with error and description. QEMU's own thread
 * finishes on its own; its result is not read. */
void dirty_rate_measurement_abort(DirtyRateMeasurement *m, int error, const char *description);
