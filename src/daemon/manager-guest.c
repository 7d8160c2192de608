/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The per-guest records (manager-guest.h), kept in Manager.records, sorted by name. */
#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-guest.h"

static ManagerGuest *guest_free(ManagerGuest *g) {
        if (!g)
                return NULL;
        migration_history_free(g->migrations);  /* joins a running migrate_pages */
        balloon_controller_free(g->balloon);
        metrics_guest_counters_done(&g->agent_counters);
        free(g->record_error);
        free(g->name);
        return mfree(g);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(ManagerGuest *, guest_free);

/* The index of name's record, or where it would go. */
static size_t record_index(Manager *m, const char *name, bool *ret_found) {
        size_t lo = 0, hi = m->n_records;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(m->records[mid]->name, name);

                if (c == 0) {
                        *ret_found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_found = false;
        return lo;
}

ManagerGuest *manager_guest_find(Manager *m, const char *name) {
        bool found;
        size_t i;

        if (!name)
                return NULL;
        i = record_index(m, name, &found);
        return found ? m->records[i] : NULL;
}

BalloonController *manager_balloon_controller(Manager *m, const char *name) {
        ManagerGuest *g = manager_guest_find(m, name);
        return g ? g->balloon : NULL;
}

void manager_guests_prune(Manager *m) {
        for (size_t i = 0; i < m->n_records;) {
                ManagerGuest *g = m->records[i];

                if (manager_find_vm(m, g->name) || balloon_controller_is_tracking(g->balloon) ||
                    migration_history_busy(g->migrations, NULL)) {
                        i++;
                        continue;
                }
                guest_free(g);
                memmove(m->records + i, m->records + i + 1, (m->n_records - i - 1) * sizeof(ManagerGuest *));
                m->n_records--;
        }
}

int manager_guest_get(Manager *m, const char *name, ManagerGuest **ret) {
        _cleanup_(guest_freep) ManagerGuest *g = NULL;
        ManagerGuest **t;
        bool found;
        size_t i;

        *ret = manager_guest_find(m, name);
        if (*ret)
                return 0;
        manager_guests_prune(m);
        g = calloc(1, sizeof(ManagerGuest));
        if (!g)
                return -ENOMEM;
        g->name = strdup(name);
        if (!g->name)
                return -ENOMEM;
        t = reallocarray(m->records, m->n_records + 1, sizeof(ManagerGuest *));
        if (!t)
                return -ENOMEM;
        m->records = t;
        i = record_index(m, name, &found);
        memmove(m->records + i + 1, m->records + i, (m->n_records - i) * sizeof(ManagerGuest *));
        m->records[i] = g;
        m->n_records++;
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
        for (size_t i = 0; i < m->n_records; i++)
                guest_free(m->records[i]);
        m->records = mfree(m->records);
        m->n_records = 0;
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

int manager_guest_check_confidential(const Vm *vm, VmConfidentialOperation op, ManagerError *e) {
        const VmSpec *spec = vm->running_spec ?: vm->spec;
        _cleanup_free_ char *reason = NULL;
        json_object *p;
        int r;

        r = vm_confidential_refusal(spec, op, &reason);
        if (r != -EOPNOTSUPP)
                return r;
        p = json_object_new_object();
        if (!p || json_add_string(p, "name", vm->name) < 0 ||
            json_add_string(p, "confidential", vm_confidential_to_string(spec->confidential)) < 0 ||
            json_add_string(p, "operation", vm_confidential_operation_to_string(op)) < 0 ||
            json_add_string(p, "reason", reason) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        log_info("Guest %s: %s refused: %s", vm->name, vm_confidential_operation_to_string(op), reason);
        return manager_error_set(e, r, VARLINK_ERROR(CONFIDENTIAL_GUEST), p);
}

int manager_guest_reply_no_such_vm(VarlinkConnection *c, const char *guest) {
        ManagerError e = {};

        return manager_error_varlink_reply(c, &e, manager_guest_fail(&e, -ENOENT, VARLINK_ERROR(NO_SUCH_VM), guest,
                                                                     NULL));
}
