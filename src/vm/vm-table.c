/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/strv.h"
#include "vm/vm-table.h"

static const char *const vm_table_change_table[_VM_TABLE_CHANGE_MAX] = {
        [VM_TABLE_DEFINED] = "defined",
        [VM_TABLE_REDEFINED] = "redefined",
        [VM_TABLE_UNDEFINED] = "undefined",
};

DEFINE_STRING_TABLE(vm_table_change, VmTableChange, _VM_TABLE_CHANGE_MAX);

static const char *const vm_reload_action_table[_VM_RELOAD_ACTION_MAX] = {
        [VM_RELOAD_KEEP] = "keep",
        [VM_RELOAD_ORPHAN] = "orphan",
        [VM_RELOAD_FORGET] = "forget",
        [VM_RELOAD_ADD] = "add",
        [VM_RELOAD_CONFLICT] = "conflict",
        [VM_RELOAD_REDEFINE] = "redefine",
};

DEFINE_STRING_TABLE(vm_reload_action, VmReloadAction, _VM_RELOAD_ACTION_MAX);

void vm_table_init(VmTable *t, VmContext *ctx, VmTableWatch watch, void *userdata) {
        *t = (VmTable) { .ctx = ctx, .watch = watch, .watch_userdata = userdata };
}

void vm_table_done(VmTable *t) {
        for (size_t i = 0; i < t->n_vms; i++)
                vm_free(t->vms[i]);
        t->vms = mfree(t->vms);
        t->n_vms = 0;
}

static void notify(VmTable *t, Vm *vm, VmTableChange change) {
        if (t->watch)
                t->watch(vm, change, t->watch_userdata);
}

Vm *vm_table_find(const VmTable *t, const char *name) {
        size_t lo = 0, hi = t->n_vms;

        if (!name)
                return NULL;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int c = strcmp(t->vms[mid]->name, name);
                if (c == 0)
                        return t->vms[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

int vm_table_add(VmTable *t, Vm *vm) {
        size_t i = 0;
        Vm **a;

        if (t->n_vms >= VM_TABLE_MAX)
                return -E2BIG;
        a = realloc(t->vms, (t->n_vms + 1) * sizeof(Vm *));
        if (!a)
                return -ENOMEM;
        t->vms = a;
        while (i < t->n_vms && strcmp(t->vms[i]->name, vm->name) < 0)
                i++;
        memmove(t->vms + i + 1, t->vms + i, (t->n_vms - i) * sizeof(Vm *));
        t->vms[i] = vm;
        t->n_vms++;
        return 0;
}

void vm_table_remove(VmTable *t, Vm *vm) {
        for (size_t i = 0; i < t->n_vms; i++)
                if (t->vms[i] == vm) {
                        memmove(t->vms + i, t->vms + i + 1, (t->n_vms - i - 1) * sizeof(Vm *));
                        t->n_vms--;
                        break;
                }
        vm_free(vm);
}

int vm_table_add_loaded(VmTable *t, VmSpec *spec, const char *path, bool api, Vm **ret) {
        Vm *existing, *vm = NULL;
        int r;

        existing = vm_table_find(t, spec->name);
        if (existing) {
                log_error("Guest %s from %s is already defined by %s, ignoring.", spec->name, path,
                          existing->source ?: "DefineVM");
                return -EEXIST;
        }

        r = vm_new(t->ctx, spec, api ? NULL : path, &vm);
        if (r < 0)
                return log_error_errno(r, "Failed to set up guest %s: %m", spec->name);
        r = vm_table_add(t, vm);
        if (r < 0) {
                vm->spec = NULL; /* the caller frees spec */
                vm_free(vm);
                return log_error_errno(r, "Failed to add guest %s: %m", spec->name);
        }
        log_debug("Loaded guest %s from %s.", spec->name, path);
        if (ret)
                *ret = vm;
        return 0;
}

void vm_table_add_set(VmTable *t, VmStoreSet *set, bool api) {
        for (size_t i = 0; i < set->n_files; i++)
                if (set->files[i].spec && vm_table_add_loaded(t, set->files[i].spec, set->files[i].path, api, NULL) >= 0)
                        set->files[i].spec = NULL;
}

void vm_table_forget(VmTable *t, Vm *vm) {
        notify(t, vm, VM_TABLE_UNDEFINED);
        vm_cleanup_runtime(t->ctx, vm->name);
        vm_table_remove(t, vm);
}

void vm_table_gc(VmTable *t) {
        for (size_t i = 0; i < t->n_vms;) {
                Vm *vm = t->vms[i];

                if (vm->transient && !vm_is_active(vm) && vm->state != VM_STATE_RESTARTING) {
                        log_info("Forgetting guest %s: it ended and has no definition any more.", vm->name);
                        vm_table_forget(t, vm);
                        continue;
                }
                i++;
        }
}

void vm_table_autostart(VmTable *t) {
        for (size_t i = 0; i < t->n_vms; i++) {
                Vm *vm = t->vms[i];
                _cleanup_free_ char *error = NULL;

                if (vm->spec->autostart && !vm_is_active(vm) && vm->state != VM_STATE_RESTARTING) {
                        log_info("Starting guest %s (Autostart=yes).", vm->name);
                        (void) vm_start(vm, &error);
                }
        }
}

int vm_table_summary_json(const VmTable *t, json_object **ret) {
        _cleanup_json_ json_object *list = json_object_new_array();
        int r;

        if (!list)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_vms; i++) {
                json_object *s = NULL;

                r = vm_summary_json(t->vms[i], &s);
                if (r < 0)
                        return r;
                if (json_object_array_add(list, s) < 0) {
                        json_object_put(s);
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(list);
        return 0;
}

VmTableCounts vm_table_count(const VmTable *t) {
        VmTableCounts c = {};

        for (size_t i = 0; i < t->n_vms; i++) {
                const Vm *vm = t->vms[i];

                if (vm_is_active(vm) || vm->state == VM_STATE_RESTARTING)
                        c.active++;
                switch (vm->state) {
                case VM_STATE_RUNNING:
                        c.running++;
                        break;
                case VM_STATE_FAILED:
                        c.failed++;
                        break;
                case VM_STATE_STARTING:
                case VM_STATE_STOPPING:
                case VM_STATE_RESTARTING:
                        c.changing++;
                        break;
                case VM_STATE_DEFINED:
                case VM_STATE_STOPPED:
                case _VM_STATE_MAX:
                case _VM_STATE_INVALID:
                        break;
                }
        }
        return c;
}

/* ---- reload ----------------------------------------------------------------------------------- */

static int plan_add(VmReloadPlan *p, VmReloadAction action, Vm *vm, VmStoreFile *f) {
        VmReloadStep *s;
        char *path = NULL;

        if (f) {
                path = strdup(f->path);
                if (!path)
                        return -ENOMEM;
        }
        s = realloc(p->steps, (p->n_steps + 1) * sizeof(VmReloadStep));
        if (!s) {
                free(path);
                return -ENOMEM;
        }
        p->steps = s;
        p->steps[p->n_steps++] = (VmReloadStep) {
                .action = action,
                .vm = vm,
                .spec = f && (action == VM_RELOAD_ADD || action == VM_RELOAD_REDEFINE) ? TAKE_PTR(f->spec) : NULL,
                .path = path,
        };
        return 0;
}

static const VmStoreFile *set_find_name(const VmStoreSet *set, const char *name, size_t before) {
        for (size_t k = 0; k < before; k++)
                if (set->files[k].spec && streq(set->files[k].spec->name, name))
                        return &set->files[k];
        return NULL;
}

static const VmStoreFile *set_find_invalid(const VmStoreSet *set, const char *path) {
        for (size_t k = 0; k < set->n_files; k++)
                if (set->files[k].error < 0 && streq(set->files[k].path, path))
                        return &set->files[k];
        return NULL;
}

int vm_reload_plan(const VmTable *t, VmStoreSet *set, VmReloadPlan *ret) {
        _cleanup_(vm_reload_plan_done) VmReloadPlan p = {};
        int r;

        /* One name, one file (the file name gives it, so this is only a safeguard). */
        for (size_t k = 0; k < set->n_files; k++) {
                VmStoreFile *f = &set->files[k];
                const VmStoreFile *first = f->spec ? set_find_name(set, f->spec->name, k) : NULL;

                if (first) {
                        log_error("Guest %s from %s is already defined by %s, ignoring.", f->spec->name, f->path,
                                  first->path);
                        f->spec = vm_spec_free(f->spec);
                }
        }

        /* Definitions that went away. */
        for (size_t i = 0; i < t->n_vms; i++) {
                Vm *vm = t->vms[i];
                VmReloadAction a;

                const VmStoreFile *invalid;

                if (!vm->source || vm->transient || set_find_name(set, vm->name, set->n_files))
                        continue;
                invalid = set_find_invalid(set, vm->source);
                if (invalid) {
                        r = plan_add(&p, VM_RELOAD_KEEP, vm, NULL);
                        if (r < 0)
                                return r;
                        p.steps[p.n_steps - 1].message = strdup(invalid->message ?: strerror(-invalid->error));
                        if (!p.steps[p.n_steps - 1].message)
                                return -ENOMEM;
                        continue;
                }
                if (vm_is_active(vm) || vm->state == VM_STATE_RESTARTING)
                        a = VM_RELOAD_ORPHAN;
                else
                        a = VM_RELOAD_FORGET;
                r = plan_add(&p, a, vm, NULL);
                if (r < 0)
                        return r;
        }

        /* New and changed definitions. */
        for (size_t k = 0; k < set->n_files; k++) {
                VmStoreFile *f = &set->files[k];
                Vm *vm;

                if (!f->spec)
                        continue;
                vm = vm_table_find(t, f->spec->name);
                if (!vm)
                        r = plan_add(&p, VM_RELOAD_ADD, NULL, f);
                else if (!vm->source && !vm->transient)
                        r = plan_add(&p, VM_RELOAD_CONFLICT, vm, f);
                else if (vm_spec_equal(vm->spec, f->spec) && streq_ptr(vm->source, f->path) && !vm->transient)
                        /* The same definition; one that was refused meanwhile (and kept) is good again. */
                        r = vm->definition_problem ? plan_add(&p, VM_RELOAD_REDEFINE, vm, f) : 0;
                else
                        r = plan_add(&p, VM_RELOAD_REDEFINE, vm, f);
                if (r < 0)
                        return r;
        }

        *ret = p;
        p = (VmReloadPlan) {};
        return 0;
}

void vm_reload_plan_apply(VmTable *t, VmReloadPlan *plan) {
        for (size_t i = 0; i < plan->n_steps; i++) {
                VmReloadStep *s = &plan->steps[i];
                Vm *vm = s->vm;

                switch (s->action) {
                case VM_RELOAD_KEEP:
                        log_warning("Definition of guest %s in %s is now invalid; keeping the previous one: %s",
                                    vm->name, vm->source, s->message);
                        (void) free_and_strdup(&vm->definition_problem, s->message);
                        break;
                case VM_RELOAD_ORPHAN:
                        log_notice("Definition of guest %s is gone; supervising it until it ends.", vm->name);
                        vm->transient = true;
                        vm->definition_problem = mfree(vm->definition_problem);
                        break;
                case VM_RELOAD_FORGET:
                        log_info("Definition of guest %s is gone, forgetting it.", vm->name);
                        vm_table_forget(t, vm);
                        s->vm = NULL;
                        break;
                case VM_RELOAD_ADD:
                        if (vm_table_add_loaded(t, s->spec, s->path, false, &vm) >= 0) {
                                s->spec = NULL;
                                notify(t, vm, VM_TABLE_DEFINED);
                        }
                        break;
                case VM_RELOAD_CONFLICT:
                        log_error("Guest %s from %s conflicts with a guest defined over the API, ignoring the file.",
                                  vm->name, s->path);
                        break;
                case VM_RELOAD_REDEFINE:
                        log_info("Definition of guest %s changed%s.", vm->name,
                                 vm_is_active(vm) ? "; it applies from the next start" : "");
                        vm_set_spec(vm, TAKE_PTR(s->spec), s->path);
                        notify(t, vm, VM_TABLE_REDEFINED);
                        break;
                case _VM_RELOAD_ACTION_MAX:
                case _VM_RELOAD_ACTION_INVALID:
                        break;
                }
        }
}

void vm_reload_plan_done(VmReloadPlan *plan) {
        for (size_t i = 0; i < plan->n_steps; i++) {
                vm_spec_free(plan->steps[i].spec);
                free(plan->steps[i].path);
                free(plan->steps[i].message);
        }
        plan->steps = mfree(plan->steps);
        plan->n_steps = 0;
}
