/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <time.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "qmp/qmp-stats.h"
#include "basic/strv.h"

#define KVM_STATS_MAX 512U /* names per target; QEMU 7.2 reports ~40 vm and ~50 vcpu stats */

static void stat_set_done(KvmStatSet *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->stats[i].name);
        free(s->stats);
        *s = (KvmStatSet) {};
}

KvmStats *kvm_stats_free(KvmStats *s) {
        if (!s)
                return NULL;
        stat_set_done(&s->vm);
        for (size_t i = 0; i < s->n_vcpus; i++)
                stat_set_done(&s->vcpus[i]);
        free(s->vcpus);
        strv_free(s->vcpu_paths);
        free(s);
        return NULL;
}

/* The "type" of a stat from query-stats-schemas: cumulative or instant/peak/… */
static bool schema_cumulative(json_object *schemas, const char *name) {
        for (size_t p = 0; schemas && p < json_object_array_length(schemas); p++) {
                json_object *provider = json_object_array_get_idx(schemas, p), *stats = NULL;

                /* From QEMU: "stats" need not be an array (json-c asserts on a non-array). */
                if (!json_object_object_get_ex(provider, "stats", &stats) ||
                    !json_object_is_type(stats, json_type_array))
                        continue;
                for (size_t i = 0; i < json_object_array_length(stats); i++) {
                        json_object *st = json_object_array_get_idx(stats, i);
                        if (streq_ptr(json_get_string(st, "name"), name))
                                return streq_ptr(json_get_string(st, "type"), "cumulative");
                }
        }
        /* Without a schema: QEMU's kvm stats are counters unless they say otherwise. */
        return !schemas;
}

static uint64_t value_of(json_object *v) {
        uint64_t sum = 0;

        if (json_object_is_type(v, json_type_boolean))
                return json_object_get_boolean(v) ? 1 : 0;
        if (json_object_is_type(v, json_type_int)) {
                int64_t i = json_object_get_int64(v);
                return i < 0 ? 0 : (uint64_t) i;
        }
        if (json_object_is_type(v, json_type_array)) /* histograms: the total count */
                for (size_t i = 0; i < json_object_array_length(v); i++)
                        sum += value_of(json_object_array_get_idx(v, i));
        return sum;
}

/* Adds the "stats" of one provider entry (only provider kvm) to set. */
static int stat_set_add(KvmStatSet *set, json_object *entry, json_object *schemas) {
        json_object *stats = NULL;

        if (!streq_ptr(json_get_string(entry, "provider"), "kvm") ||
            !json_object_object_get_ex(entry, "stats", &stats) || !json_object_is_type(stats, json_type_array))
                return 0;

        for (size_t i = 0; i < json_object_array_length(stats); i++) {
                json_object *st = json_object_array_get_idx(stats, i), *v = NULL;
                const char *name = json_get_string(st, "name");
                KvmStat *t;

                if (!name || !json_object_object_get_ex(st, "value", &v))
                        continue;
                if (set->n >= KVM_STATS_MAX)
                        return -E2BIG;
                t = realloc(set->stats, (set->n + 1) * sizeof(KvmStat));
                if (!t)
                        return -ENOMEM;
                set->stats = t;
                set->stats[set->n] = (KvmStat) {
                        .name = strdup(name),
                        .value = value_of(v),
                        .cumulative = schema_cumulative(schemas, name),
                };
                if (!set->stats[set->n].name)
                        return -ENOMEM;
                set->n++;
        }
        return 0;
}

int kvm_stats_from_json(json_object *vm_reply, json_object *vcpu_reply, json_object *schemas, KvmStats **ret) {
        _cleanup_(kvm_stats_freep) KvmStats *s = calloc(1, sizeof(KvmStats));
        struct timespec ts;
        int r;

        if (!s)
                return -ENOMEM;

        for (size_t i = 0; vm_reply && i < json_object_array_length(vm_reply); i++) {
                r = stat_set_add(&s->vm, json_object_array_get_idx(vm_reply, i), schemas);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; vcpu_reply && i < json_object_array_length(vcpu_reply); i++) {
                json_object *entry = json_object_array_get_idx(vcpu_reply, i);
                KvmStatSet *t;

                if (!streq_ptr(json_get_string(entry, "provider"), "kvm"))
                        continue;
                if (s->n_vcpus >= 4096)
                        return -E2BIG;
                t = realloc(s->vcpus, (s->n_vcpus + 1) * sizeof(KvmStatSet));
                if (!t)
                        return -ENOMEM;
                s->vcpus = t;
                s->vcpus[s->n_vcpus] = (KvmStatSet) {};
                r = strv_extend(&s->vcpu_paths, json_get_string(entry, "qom-path") ?: "");
                if (r < 0)
                        return r;
                s->n_vcpus++;
                r = stat_set_add(&s->vcpus[s->n_vcpus - 1], entry, schemas);
                if (r < 0)
                        return r;
        }

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        s->monotonic_usec = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
        *ret = TAKE_PTR(s);
        return 0;
}

bool kvm_stats_available(const KvmStats *s) {
        return s && (s->vm.n > 0 || s->n_vcpus > 0);
}

static const KvmStat *set_find(const KvmStatSet *set, const char *name) {
        for (size_t i = 0; i < set->n; i++)
                if (streq(set->stats[i].name, name))
                        return &set->stats[i];
        return NULL;
}

int kvm_stats_get(const KvmStats *s, const char *name, uint64_t *ret) {
        const KvmStat *st;
        uint64_t sum = 0;
        bool found = false;

        st = set_find(&s->vm, name);
        if (st) {
                *ret = st->value;
                return 0;
        }
        for (size_t i = 0; i < s->n_vcpus; i++) {
                st = set_find(&s->vcpus[i], name);
                if (st) {
                        sum += st->value;
                        found = true;
                }
        }
        if (!found)
                return -ENOENT;
        *ret = sum;
        return 0;
}

/* ---- query ------------------------------------------------------------------------------------ */

typedef struct StatsQuery {
        QmpClient *qmp;
        KvmStatsCallback cb;
        void *userdata;
        json_object *vm, *vcpu, *schemas;
        unsigned pending;
        int error;
} StatsQuery;

static void query_finish(StatsQuery *q) {
        KvmStats *s = NULL;
        int r = q->error;

        if (r >= 0)
                r = kvm_stats_from_json(q->vm, q->vcpu, q->schemas, &s);
        q->cb(r < 0 ? NULL : s, r < 0 ? r : 0, q->userdata);
        json_object_put(q->vm);
        json_object_put(q->vcpu);
        json_object_put(q->schemas);
        qmp_client_unref(q->qmp);
        free(q);
}

static void on_part(StatsQuery *q, json_object **slot, int error, json_object *result, const char *desc) {
        if (error < 0 && q->error == 0) {
                q->error = error;
                log_debug("query-stats failed: %s", error == -EIO ? strna(desc) : strerror(-error));
        }
        if (error == 0 && json_object_is_type(result, json_type_array))
                *slot = json_object_get(result);
        if (--q->pending == 0)
                query_finish(q);
}

static void on_vm(QmpClient *c, int error, json_object *result, const char *cls, const char *desc, void *userdata) {
        StatsQuery *q = userdata;
        on_part(q, &q->vm, error, result, desc);
}

static void on_vcpu(QmpClient *c, int error, json_object *result, const char *cls, const char *desc, void *userdata) {
        StatsQuery *q = userdata;
        on_part(q, &q->vcpu, error, result, desc);
}

static void on_schemas(QmpClient *c, int error, json_object *result, const char *cls, const char *desc,
                       void *userdata) {
        StatsQuery *q = userdata;
        on_part(q, &q->schemas, error, result, desc);
}

static json_object *target_args(const char *target) {
        json_object *a = json_object_new_object();

        if (!a || json_add_string(a, "target", target) < 0) {
                json_object_put(a);
                return NULL;
        }
        return a;
}

int kvm_stats_query(QmpClient *qmp, uint64_t timeout_usec, KvmStatsCallback cb, void *userdata) {
        StatsQuery *q;
        json_object *vm_args, *vcpu_args, *schema_args;
        int r;

        if (qmp_client_get_state(qmp) == QMP_CLIENT_DISCONNECTED)
                return -ENOTCONN;

        vm_args = target_args("vm");
        vcpu_args = target_args("vcpu");
        schema_args = json_object_new_object();
        if (!vm_args || !vcpu_args || !schema_args || json_add_string(schema_args, "provider", "kvm") < 0) {
                json_object_put(vm_args);
                json_object_put(vcpu_args);
                json_object_put(schema_args);
                return -ENOMEM;
        }

        q = calloc(1, sizeof(*q));
        if (!q) {
                json_object_put(vm_args);
                json_object_put(vcpu_args);
                json_object_put(schema_args);
                return -ENOMEM;
        }
        q->qmp = qmp_client_ref(qmp);
        q->cb = cb;
        q->userdata = userdata;
        q->pending = 3;

        /* The three commands go out back to back; each callback counts down, the last one finishes. Once
         * queued, every callback is guaranteed to run (reply, error, timeout or disconnect). */
        r = qmp_client_execute(qmp, "query-stats", vm_args, timeout_usec, on_vm, q);
        if (r < 0) {
                json_object_put(vcpu_args);
                json_object_put(schema_args);
                qmp_client_unref(q->qmp);
                free(q);
                return r;
        }
        r = qmp_client_execute(qmp, "query-stats", vcpu_args, timeout_usec, on_vcpu, q);
        if (r < 0) {
                q->error = r;
                q->pending--;
                json_object_put(schema_args);
                schema_args = NULL;
        }
        if (schema_args) {
                r = qmp_client_execute(qmp, "query-stats-schemas", schema_args, timeout_usec, on_schemas, q);
                if (r < 0) {
                        q->error = r;
                        q->pending--;
                }
        } else
                q->pending--;
        return 0;
}

/* ---- deltas ----------------------------------------------------------------------------------- */

/* after - before as a signed number, saturated: the values come from QEMU and may be anything up to
 * UINT64_MAX (histogram sums), so the difference need not fit. */
static int64_t counter_delta(uint64_t before, uint64_t after) {
        if (after >= before)
                return after - before > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) (after - before);
        return before - after > (uint64_t) INT64_MAX ? INT64_MIN : -(int64_t) (before - after);
}

static int add_entry(json_object *o, const char *name, bool cumulative, bool have_before, uint64_t before,
                     bool have_after, uint64_t after) {
        _cleanup_json_ json_object *e = json_object_new_object();
        int r;

        if (!e)
                return -ENOMEM;
        if (have_before && (r = json_add_uint(e, "before", before)) < 0)
                return r;
        if (have_after && (r = json_add_uint(e, "after", after)) < 0)
                return r;
        if (cumulative && have_before && have_after &&
            (r = json_add_int(e, "delta", counter_delta(before, after))) < 0)
                return r;
        if ((r = json_add_bool(e, "cumulative", cumulative)) < 0)
                return r;
        return json_add(o, name, TAKE_PTR(e));
}

static int delta_set(const KvmStats *before, const KvmStats *after, bool vcpu, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        const KvmStats *both[2] = { before, after };
        int r;

        if (!o)
                return -ENOMEM;

        /* Every name seen in either snapshot; vcpu values are summed over vCPUs. */
        for (size_t k = 0; k < 2; k++) {
                const KvmStats *s = both[k];
                size_t nsets = vcpu ? s->n_vcpus : 1;

                for (size_t set = 0; set < nsets; set++) {
                        const KvmStatSet *ss = vcpu ? &s->vcpus[set] : &s->vm;

                        for (size_t i = 0; i < ss->n; i++) {
                                const char *name = ss->stats[i].name;
                                uint64_t b = 0, a = 0;
                                bool hb, ha;

                                if (json_object_object_get_ex(o, name, NULL))
                                        continue;
                                if (vcpu) {
                                        hb = kvm_stats_get(before, name, &b) >= 0 && !set_find(&before->vm, name);
                                        ha = kvm_stats_get(after, name, &a) >= 0 && !set_find(&after->vm, name);
                                } else {
                                        const KvmStat *x = set_find(&before->vm, name), *y = set_find(&after->vm, name);
                                        hb = x;
                                        ha = y;
                                        b = x ? x->value : 0;
                                        a = y ? y->value : 0;
                                }
                                r = add_entry(o, name, ss->stats[i].cumulative, hb, b, ha, a);
                                if (r < 0)
                                        return r;
                        }
                }
        }
        *ret = TAKE_PTR(o);
        return 0;
}

int kvm_stats_delta_json(const KvmStats *before, const KvmStats *after, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object(), *vm = NULL, *vcpus = NULL;
        bool available = kvm_stats_available(before) && kvm_stats_available(after);
        int r;

        if (!o)
                return -ENOMEM;
        r = json_add_bool(o, "available", available);
        if (r < 0)
                return r;
        if (!available) {
                r = json_add_string(o, "reason", before && after ? "QEMU reports no KVM statistics (not running under "
                                                                   "KVM, or a QEMU without query-stats)"
                                                                 : "statistics could not be read");
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(o);
                return 0;
        }

        r = json_add_uint(o, "intervalUSec", after->monotonic_usec - before->monotonic_usec);
        if (r < 0)
                return r;
        r = delta_set(before, after, false, &vm);
        if (r < 0)
                return r;
        r = delta_set(before, after, true, &vcpus);
        if (r < 0)
                return r;
        if ((r = json_add(o, "vm", TAKE_PTR(vm))) < 0 || (r = json_add(o, "vcpus", TAKE_PTR(vcpus))) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}
