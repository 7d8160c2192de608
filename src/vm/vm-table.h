/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The guests the daemon supervises, sorted by name: those of VMDirectory= (their source is the file), those
 * defined over the API (saved in STATE_DIR/vms, no source) and transient ones (running, but their definition
 * is gone: forgotten once they end). Also what happens to the table as a whole: loading it, re-adopting the
 * guests that still run (vm-adopt.c), autostart, a reload of VMDirectory= as a plan of typed steps, and
 * forgetting transient guests that ended.
 *
 * Whoever shows the table (the daemon's event stream) learns of guests that the table itself defines,
 * redefines or forgets through the change watch; the API's own DefineVM and UndefineVM say so themselves. */

#include "vm/vm-store.h"
#include "vm/vm.h"

#define VM_TABLE_MAX 1024U

typedef enum VmTableChange {
        VM_TABLE_DEFINED,
        VM_TABLE_REDEFINED,
        VM_TABLE_UNDEFINED,
        _VM_TABLE_CHANGE_MAX,
        _VM_TABLE_CHANGE_INVALID = -EINVAL,
} VmTableChange;

DECLARE_STRING_TABLE(vm_table_change, VmTableChange); /* "defined", "redefined", "undefined" */

typedef void (*VmTableWatch)(Vm *vm, VmTableChange change, void *userdata);

typedef struct VmTable {
        Vm **vms;                       /* sorted by name */
        size_t n_vms;
        VmContext *ctx;
        VmTableWatch watch;             /* may be NULL */
        void *watch_userdata;
} VmTable;

void vm_table_init(VmTable *t, VmContext *ctx, VmTableWatch watch, void *userdata);
/* Frees the handles; the guests keep running. */
void vm_table_done(VmTable *t);

Vm *vm_table_find(const VmTable *t, const char *name);
/* Inserts vm (the table owns it then); -E2BIG beyond VM_TABLE_MAX. */
int vm_table_add(VmTable *t, Vm *vm);
/* Takes vm out of the table and frees it. */
void vm_table_remove(VmTable *t, Vm *vm);

/* A guest for a loaded definition, from path (a file of VMDirectory=; api: of STATE_DIR/vms or a state file,
 * the guest then has no source). Takes spec on success; a name already taken is logged and -EEXIST. */
int vm_table_add_loaded(VmTable *t, VmSpec *spec, const char *path, bool api, Vm **ret);
/* Every loaded definition of set (taking their specs). */
void vm_table_add_set(VmTable *t, VmStoreSet *set, bool api);
/* Tells the watch, removes the runtime files and the guest (which must not be running). */
void vm_table_forget(VmTable *t, Vm *vm);
/* Forgets the transient guests that ended. */
void vm_table_gc(VmTable *t);
/* Starts the guests with Autostart=yes that are not running. */
void vm_table_autostart(VmTable *t);
/* Re-adopts the guests still running from RUNTIME_DIR/vms (vm-adopt.c). */
void vm_table_adopt_running(VmTable *t);

/* The API's list of guests: an array of vm_summary_json(), in name order. */
int vm_table_summary_json(const VmTable *t, json_object **ret);

typedef struct VmTableCounts {
        unsigned running, failed;
        unsigned changing;              /* starting, stopping, restarting */
        unsigned active;                /* a QEMU runs, or a restart waits */
} VmTableCounts;

VmTableCounts vm_table_count(const VmTable *t);

/* A reload of VMDirectory=: what happens to each guest. Steps for guests that went are first (in table
 * order), then those of the directory's files (in file order); unchanged guests have none. */
typedef enum VmReloadAction {
        VM_RELOAD_KEEP,                 /* its file no longer loads: it keeps its definition */
        VM_RELOAD_ORPHAN,               /* its file is gone but it runs: transient until it ends */
        VM_RELOAD_FORGET,               /* its file is gone: forgotten */
        VM_RELOAD_ADD,                  /* a new file: a new guest */
        VM_RELOAD_CONFLICT,             /* a file for a guest defined over the API: ignored */
        VM_RELOAD_REDEFINE,             /* its file changed (or a transient guest has a file again) */
        _VM_RELOAD_ACTION_MAX,
        _VM_RELOAD_ACTION_INVALID = -EINVAL,
} VmReloadAction;

typedef struct VmReloadStep {
        VmReloadAction action;
        Vm *vm;                         /* the guest in the table; NULL for ADD */
        VmSpec *spec;                   /* ADD, REDEFINE: the new definition (owned) */
        char *path;                     /* the file, for ADD, CONFLICT and REDEFINE */
        char *message;                  /* KEEP: why the file was not loaded (StrictModes, a parse error) */
} VmReloadStep;

typedef struct VmReloadPlan {
        VmReloadStep *steps;
        size_t n_steps;
} VmReloadPlan;

DECLARE_STRING_TABLE(vm_reload_action, VmReloadAction);

/* The plan for the files of set (VMDirectory= now), taking the specs of set it needs. Changes nothing. */
int vm_reload_plan(const VmTable *t, VmStoreSet *set, VmReloadPlan *ret);
/* Carries the plan out (logged, and the watch told); consumes its specs. */
void vm_reload_plan_apply(VmTable *t, VmReloadPlan *plan);
void vm_reload_plan_done(VmReloadPlan *plan);
