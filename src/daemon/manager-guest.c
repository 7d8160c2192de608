/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The per-guest records (manager-guest.h), kept in Manager.guests by name. */
#include "basic/json-util.h"
#include "daemon/manager-guest.h"

static ManagerGuest *guest_free(ManagerGuest *g) {
        if (!g)
                return NULL;
        migration_history_free(g->migrations);  /* joins a running migrate_pages */
        balloon_controller_free(g->balloon);
        free(g->name);
        return mfree(g);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(ManagerGuest *, guest_free);

ManagerGuest *manager_guest_find(Manager *m, const char *name) {
        for (size_t i = 0; name && i < m->n_guests; i++)
                if (streq(m->guests[i]->name, name))
                        return m->guests[i];
        return NULL;
}

BalloonController *manager_balloon_controller(Manager *m, const char *name) {
        ManagerGuest *g = manager_guest_find(m, name);
        return g ? g->balloon : NULL;
}

/* Drops the records of guests the daemon no longer knows by name that have nothing running. */
static void guests_prune(Manager *m) {
        for (size_t i = 0; i < m->n_guests;) {
                ManagerGuest *g = m->guests[i];

                if (manager_find_vm(m, g->name) || balloon_controller_is_tracking(g->balloon) ||
                    migration_history_busy(g->migrations, NULL)) {
                        i++;
                        continue;
                }
                guest_free(g);
                memmove(m->guests + i, m->guests + i + 1, (m->n_guests - i - 1) * sizeof(ManagerGuest *));
                m->n_guests--;
        }
}

int manager_guest_get(Manager *m, const char *name, ManagerGuest **ret) {
        _cleanup_(guest_freep) ManagerGuest *g = NULL;
        ManagerGuest **t;

        *ret = manager_guest_find(m, name);
        if (*ret)
                return 0;
        guests_prune(m);
        g = calloc(1, sizeof(ManagerGuest));
        if (!g)
                return -ENOMEM;
        g->name = strdup(name);
        if (!g->name)
                return -ENOMEM;
        t = reallocarray(m->guests, m->n_guests + 1, sizeof(ManagerGuest *));
        if (!t)
                return -ENOMEM;
        m->guests = t;
        m->guests[m->n_guests++] = g;
        *ret = TAKE_PTR(g);
        return 0;
}

MigrationHistory *manager_guest_migrations(Manager *m, const char *name) {
        ManagerGuest *g = manager_guest_find(m, name);
        return g ? g->migrations : NULL;
}

MigrationHistory *manager_guest_get_migrations(Manager *m, const char *name) {
        ManagerGuest *g;

        if (manager_guest_get(m, name, &g) < 0)
                return NULL;
        if (!g->migrations && migration_history_new(name, &g->migrations) < 0)
                return NULL;
        return g->migrations;
}

void manager_guests_done(Manager *m) {
        for (size_t i = 0; i < m->n_guests; i++)
                guest_free(m->guests[i]);
        m->guests = mfree(m->guests);
        m->n_guests = 0;
}

void manager_guest_readings(Manager *m, const char *name, MetricsBalloon *ret_balloon, MetricsNuma *ret_numa) {
        ManagerGuest *g = manager_guest_find(m, name);
        const BalloonController *bc = g ? g->balloon : NULL;
        const MigrationTotals *t = g && g->migrations ? migration_history_totals(g->migrations) : NULL;
        BalloonControllerInfo b = {};
        uint64_t target, actual;

        *ret_numa = t ? (MetricsNuma) {
                .migrations_total = t->migrations_total,
                .migration_failures = t->migration_failures,
                .pages_moved = t->pages_moved,
                .bytes_moved = t->bytes_moved,
                .migrate_usec = t->migrate_usec,
        } : (MetricsNuma) {};

        balloon_controller_get_info(bc, &b);     /* a NULL controller reads as a guest that never ran */
        *ret_balloon = (MetricsBalloon) {
                .tracking = b.tracking,
                .target_bytes = b.target_bytes,
                .actual_bytes = METRICS_UNSET,
                .stats_valid = balloon_guest_stats_valid(&b.stats),
                .free_bytes = b.stats.free_bytes,
                .available_bytes = b.stats.available_bytes,
                .total_bytes = b.stats.total_bytes,
                .disk_caches_bytes = b.stats.disk_caches_bytes,
                .swap_in_bytes = b.stats.swap_in_bytes,
                .swap_out_bytes = b.stats.swap_out_bytes,
                .major_faults = b.stats.major_faults,
                .minor_faults = b.stats.minor_faults,
                .stats_last_update_sec = b.stats.last_update_sec,
                .steps_total = b.steps_total,
                .steps_reached_total = b.steps_reached_total,
                .steps_reached_usec = b.steps_reached_usec,
        };
        /* UINT64_MAX (METRICS_UNSET) while the balloon module has not heard the size yet. */
        if (b.tracking && balloon_controller_get_sizes(bc, &target, &actual))
                ret_balloon->actual_bytes = actual;
}

NumaVcpuThread *manager_guest_vcpu_threads(const Vm *vm) {
        NumaVcpuThread *v = calloc(MAX(vm->n_vcpus, (size_t) 1), sizeof(NumaVcpuThread));

        for (size_t i = 0; v && i < vm->n_vcpus; i++)
                v[i] = (NumaVcpuThread) { .index = vm->vcpus[i].index, .thread_id = vm->vcpus[i].thread_id };
        return v;
}

int manager_guest_fail(ManagerError *e, int error, const char *name, const char *guest, const char *state) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "name", guest) < 0 || json_add_string(p, "state", state) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return manager_error_set(e, error, name, p);
}

int manager_guest_reply_no_such_vm(VarlinkConnection *c, const char *guest) {
        ManagerError e = {};

        return manager_error_varlink_reply(c, &e, manager_guest_fail(&e, -ENOENT, VARLINK_ERROR(NO_SUCH_VM), guest,
                                                                     NULL));
}
