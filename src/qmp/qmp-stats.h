/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* KVM statistics of a guest through QMP query-stats (QEMU ≥ 7.1): the vm target and every vCPU, with the
 * types from query-stats-schemas (cumulative counters vs instant values). Under TCG the lists are empty:
 * kvm_stats_available() says so. Used by the NUMA migration reports, the balloon step records and the
 * metrics sampler. */

#include <json-c/json.h>

#include "basic/macro.h"
#include "qmp/qmp-client.h"

typedef struct KvmStat {
        char *name;
        uint64_t value;         /* booleans as 0/1; histograms (arrays) are summed */
        bool cumulative;        /* from the schema: cumulative counters only grow */
} KvmStat;

typedef struct KvmStatSet {
        KvmStat *stats;
        size_t n;
} KvmStatSet;

typedef struct KvmStats {
        KvmStatSet vm;
        KvmStatSet *vcpus;      /* one per vCPU, in QEMU's order */
        char **vcpu_paths;      /* qom-path of each */
        size_t n_vcpus;
        uint64_t monotonic_usec;/* when the reply arrived */
} KvmStats;

KvmStats *kvm_stats_free(KvmStats *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(KvmStats *, kvm_stats_free);

/* Builds stats from query-stats replies (either may be NULL) and an optional query-stats-schemas reply. */
int kvm_stats_from_json(json_object *vm_reply, json_object *vcpu_reply, json_object *schemas, KvmStats **ret);

bool kvm_stats_available(const KvmStats *s);
/* Value of a vm-target stat, or the sum over vCPUs for a vcpu-target stat; -ENOENT when absent. */
int kvm_stats_get(const KvmStats *s, const char *name, uint64_t *ret);

/* Asks QEMU for vm and vcpu stats (and, the first time, the schemas, cached in the client's userdata-free
 * form inside the request). Calls cb exactly once with stats (owned by the callee: take or free it) or an
 * error (negative errno; -EIO for a QMP error, e.g. QEMU without query-stats). */
typedef void (*KvmStatsCallback)(KvmStats *stats, int error, void *userdata);
int kvm_stats_query(QmpClient *q, uint64_t timeout_usec, KvmStatsCallback cb, void *userdata);

/* {"available": bool, "vm": {name: {"before": n, "after": n, "delta": n}}, "vcpus": {name: {... summed}}}
 * where delta is after - before for cumulative stats and omitted for instant ones. */
int kvm_stats_delta_json(const KvmStats *before, const KvmStats *after, json_object **ret);
