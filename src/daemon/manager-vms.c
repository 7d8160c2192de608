/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest table: definitions from VMDirectory (read-only files) and from DefineVM (saved under
 * STATE_DIR/vms), re-adoption of running guests at start and the varlink methods for guests; the event
 * stream is manager-events.c. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-events.h"
#include "daemon/manager.h"
#include "vm/process-find.h"
#include "vm/process.h"
#include "basic/strv.h"
#include "varlink/varlink-idl.h"


/* ---- table ------------------------------------------------------------------------------------ */

Vm *manager_find_vm(Manager *m, const char *name) {
        size_t lo = 0, hi = m->n_vms;

        if (!name)
                return NULL;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int c = strcmp(m->vms[mid]->name, name);
                if (c == 0)
                        return m->vms[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static int manager_add_vm(Manager *m, Vm *vm) {
        size_t i = 0;
        Vm **t;

        if (m->n_vms >= MANAGER_MAX_VMS)
                return -E2BIG;
        t = realloc(m->vms, (m->n_vms + 1) * sizeof(Vm *));
        if (!t)
                return -ENOMEM;
        m->vms = t;
        while (i < m->n_vms && strcmp(m->vms[i]->name, vm->name) < 0)
                i++;
        memmove(m->vms + i + 1, m->vms + i, (m->n_vms - i) * sizeof(Vm *));
        m->vms[i] = vm;
        m->n_vms++;
        return 0;
}

static void manager_remove_vm(Manager *m, Vm *vm) {
        for (size_t i = 0; i < m->n_vms; i++)
                if (m->vms[i] == vm) {
                        memmove(m->vms + i, m->vms + i + 1, (m->n_vms - i - 1) * sizeof(Vm *));
                        m->n_vms--;
                        break;
                }
        vm_free(vm);
        manager_guests_prune(m);
}

void manager_update_status(Manager *m) {
        unsigned running = 0, failed = 0, other = 0;

        if (m->reloading)
                return;
        for (size_t i = 0; i < m->n_vms; i++)
                switch (m->vms[i]->state) {
                case VM_STATE_RUNNING:
                        running++;
                        break;
                case VM_STATE_FAILED:
                        failed++;
                        break;
                case VM_STATE_STARTING:
                case VM_STATE_STOPPING:
                case VM_STATE_RESTARTING:
                        other++;
                        break;
                case VM_STATE_DEFINED:
                case VM_STATE_STOPPED:
                case _VM_STATE_MAX:
                case _VM_STATE_INVALID:
                        break;
                }

        manager_set_status(m, "%u guest%s running, %u failed%s%.0u%s, %zu defined; listening on %s", running,
                           running == 1 ? "" : "s", failed, other ? ", " : "", other, other ? " changing state" : "",
                           m->n_vms, strna(m->varlink_address));
}

/* ---- state changes, forgetting ended transient guests ----------------------------------------- */

static int manager_gc(sd_event_source *s, void *userdata) {
        Manager *m = userdata;

        for (size_t i = 0; i < m->n_vms;) {
                Vm *vm = m->vms[i];

                if (vm->transient && !vm_is_active(vm) && vm->state != VM_STATE_RESTARTING) {
                        log_info("Forgetting guest %s: it ended and has no definition any more.", vm->name);
                        manager_events_emit(m, "undefined", vm);
                        vm_cleanup_runtime(&m->vmctx, vm->name);
                        manager_remove_vm(m, vm);
                        continue;
                }
                i++;
        }
        manager_update_status(m);
        return 0;
}

static void manager_on_vm_state(Vm *vm, VmState old_state, void *userdata) {
        Manager *m = userdata;

        manager_events_vm_state(m, vm, old_state);
        if (vm->transient && !vm_is_active(vm) && m->gc_source)
                (void) sd_event_source_set_enabled(m->gc_source, SD_EVENT_ONESHOT);
        manager_update_status(m);
}

/* ---- loading ---------------------------------------------------------------------------------- */

static int vm_file_filter(const struct dirent *de) {
        size_t l = strlen(de->d_name);

        return de->d_name[0] != '.' && l > 3 && streq(de->d_name + l - 3, ".vm");
}

/* Parses every *.vm in dir; calls cb for each good one. Bad ones are logged and skipped. */
typedef int (*LoadCallback)(Manager *m, VmSpec *spec, const char *path, bool api, void *userdata);

/* StrictModes, as sshd has them: a definition runs its Emulator= as root, so its file and directory must be
 * owned by root (or the daemon's user) and writable by nobody else but the group of root or AdminGroup=.
 * NULL when trusted, else why not (static text, with *ret_id the uid or gid it names). */
static const char *untrusted_reason(Manager *m, const struct stat *st, long *ret_id) {
        if (st->st_uid != 0 && st->st_uid != geteuid()) {
                *ret_id = (long) st->st_uid;
                return "is owned by uid %ld, not by root";
        }
        if (st->st_mode & S_IWOTH) {
                *ret_id = (long) (st->st_mode & 07777);
                return "is writable by everyone (mode %04lo)";
        }
        if ((st->st_mode & S_IWGRP) && st->st_gid != 0 && st->st_gid != m->admin_gid) {
                *ret_id = (long) st->st_gid;
                return "is writable by group %ld, which is neither root's nor AdminGroup=";
        }
        return NULL;
}

static bool path_is_trusted(Manager *m, const char *path, bool directory) {
        const char *why;
        struct stat st;
        long id = 0;

        if (lstat(path, &st) < 0) {
                log_warning_errno(errno, "Failed to check %s, not loading it: %m", path);
                return false;
        }
        if (directory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
                log_struct(LOG_ERR, -EPERM, STRV(MESSAGE_ID_VM_DEFINITION_INVALID),
                           "%s is not a regular %s (symbolic links are not followed), not loading %s.", path,
                           directory ? "directory" : "file", directory ? "the guest definitions in it" : "it");
                return false;
        }
        why = untrusted_reason(m, &st, &id);
        if (why) {
                _cleanup_free_ char *reason = NULL;

                if (asprintf(&reason, why, id) < 0)
                        return log_oom(), false;
                log_struct(LOG_ERR, -EPERM, STRV(MESSAGE_ID_VM_DEFINITION_INVALID),
                           "%s %s: it could change what runs as root; not loading %s.", path, reason,
                           directory ? "the guest definitions in it" : "it");
                return false;
        }
        return true;
}

static int load_vm_dir(Manager *m, const char *dir, bool api, LoadCallback cb, void *userdata) {
        struct dirent **list = NULL;
        bool trusted;
        int n;

        n = scandir(dir, &list, vm_file_filter, alphasort);
        if (n < 0) {
                if (errno == ENOENT)
                        return 0;
                return log_warning_errno(errno, "Failed to read %s, ignoring: %m", dir);
        }
        trusted = path_is_trusted(m, dir, true);

        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *path = path_join(dir, list[i]->d_name);
                VmSpec *spec = NULL;
                VmSpecError e = {};
                int r;

                free(list[i]);
                if (!path) {
                        log_oom();
                        continue;
                }
                if (!trusted || !path_is_trusted(m, path, false)) {
                        (void) cb(m, NULL, path, api, userdata); /* tell the caller the file is there */
                        continue;
                }
                r = vm_spec_parse_file(path, &spec, &e);
                if (r < 0) {
                        log_struct(LOG_ERR, r, STRV(MESSAGE_ID_VM_DEFINITION_INVALID),
                                   "Invalid guest definition, not loaded: %s", e.message ?: strerror(-r));
                        vm_spec_error_done(&e);
                        (void) cb(m, NULL, path, api, userdata); /* tell the caller the file is there */
                        continue;
                }
                r = cb(m, spec, path, api, userdata);
                if (r < 0)
                        vm_spec_free(spec);
        }
        free(list);
        return 0;
}

static int add_loaded_vm(Manager *m, VmSpec *spec, const char *path, bool api, void *userdata) {
        Vm *existing, *vm = NULL;
        int r;

        if (!spec) /* a file that did not parse */
                return 0;
        existing = manager_find_vm(m, spec->name);

        if (existing) {
                log_error("Guest %s from %s is already defined by %s, ignoring.", spec->name, path,
                          existing->source ?: "DefineVM");
                return -EEXIST;
        }

        r = vm_new(&m->vmctx, spec, api ? NULL : path, &vm);
        if (r < 0)
                return log_error_errno(r, "Failed to set up guest %s: %m", spec->name);
        r = manager_add_vm(m, vm);
        if (r < 0) {
                vm->spec = NULL; /* the caller frees spec */
                vm_free(vm);
                return log_error_errno(r, "Failed to add guest %s: %m", spec->name);
        }
        log_debug("Loaded guest %s from %s.", spec->name, path);
        return 0;
}

static char *api_vm_dir(Manager *m) {
        return path_join(m->config.state_dir, "vms");
}

/* The state file of run/vms/NAME is missing or unreadable (error): if a process still holds the guest's QMP
 * listening socket, build the state to adopt it from /proc (pid, start time, command line). 1 with *ret_state,
 * 0 when nothing runs there (logged if the state file was damaged). */
static int find_running_without_state(Manager *m, const char *name, const char *dir, int error,
                                      json_object **ret_state) {
        _cleanup_free_ char *qmp = path_join(dir, "qmp.sock"), *cmdline_path = NULL, *cmdline = NULL;
        _cleanup_json_ json_object *state = NULL, *argv = NULL;
        const char *accel = NULL;
        uint64_t starttime;
        size_t size = 0;
        pid_t pid;
        int r;

        if (!qmp)
                return log_oom();
        r = process_find_socket_holder(m->vmctx.proc_root, qmp, getpid(), &pid);
        if (r < 0) {
                if (error != -ENOENT)
                        log_warning_errno(error, "Failed to read %s/state (%m) and no process holds %s: guest %s "
                                          "is not running, ignoring the state file.", dir, qmp, name);
                return 0;
        }
        r = process_get_starttime(m->vmctx.proc_root, pid, &starttime);
        if (r < 0)
                return log_warning_errno(r, "Process %i holds %s but its start time cannot be read: %m", (int) pid,
                                         qmp), 0;
        if (asprintf(&cmdline_path, "%s/%i/cmdline", m->vmctx.proc_root, (int) pid) < 0)
                return log_oom();
        argv = json_object_new_array();
        if (!argv)
                return log_oom();
        if (read_full_file(cmdline_path, 1024 * 1024, &cmdline, &size) >= 0) {
                const char *prev = NULL;

                for (size_t o = 0; o < size; o += strlen(cmdline + o) + 1) {
                        const char *a = cmdline + o;

                        if (prev && streq(prev, "-accel"))
                                accel = a;
                        (void) json_object_array_add(argv, json_object_new_string(a));
                        prev = a;
                }
        }
        state = json_object_new_object();
        if (!state || json_add_int(state, "pid", pid) < 0 || json_add_uint(state, "starttime", starttime) < 0 ||
            json_add(state, "argv", TAKE_PTR(argv)) < 0 ||
            (accel && json_add_string(state, "accelerator", startswith(accel, "kvm") ? "kvm" : "tcg") < 0))
                return log_oom();

        log_struct(LOG_WARNING, 0, STRV(MESSAGE_ID_VM_ADOPTED),
                   "The state file of guest %s is %s, but QEMU pid %i still holds its QMP socket %s: re-adopting "
                   "it from what /proc says, rather than letting a second QEMU start.", name,
                   error == -ENOENT ? "missing" : "damaged", (int) pid, qmp);
        *ret_state = TAKE_PTR(state);
        return 1;
}

static void manager_adopt_running(Manager *m) {
        struct dirent **list = NULL;
        int n;

        n = scandir(m->vmctx.vms_dir, &list, NULL, alphasort);
        if (n < 0)
                return;

        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *dir = NULL, *state_path = NULL;
                _cleanup_json_ json_object *state = NULL;
                struct stat st;
                const char *name = list[i]->d_name;
                Vm *vm;
                int r;

                if (name[0] == '.' || !vm_name_is_valid(name))
                        goto next;
                dir = path_join(m->vmctx.vms_dir, name);
                state_path = dir ? path_join(dir, "state") : NULL;
                if (!state_path)
                        goto next;
                /* Only what the daemon made: a real directory of its own uid and a regular state file in it. A
                 * planted link with a crafted state file must not get an unrelated process adopted (and later
                 * signalled by StopVM). */
                if (fstatat(m->vmctx.vms_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
                    st.st_uid != geteuid()) {
                        log_warning("%s is not a directory of memvisord's own (a symbolic link, or another owner); "
                                    "not re-adopting anything from it.", dir);
                        goto next;
                }
                if (fstatat(m->vmctx.vms_fd, state_path + strlen(m->vmctx.vms_dir) + 1, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
                    !S_ISREG(st.st_mode)) {
                        log_warning("%s is not a regular file; not re-adopting anything from it.", state_path);
                        goto next;
                }
                r = vm_state_file_read(state_path, &state);
                if (r < 0) {
                        /* No usable state: a QEMU may still run for this guest. Never lose track of it (a
                         * start would launch a second QEMU on the same disks): find it by its QMP socket. */
                        r = find_running_without_state(m, name, dir, r, &state);
                        if (r <= 0)
                                goto next;
                }

                vm = manager_find_vm(m, name);
                if (!vm) {
                        json_object *def = NULL;
                        VmSpec *spec = NULL;
                        VmSpecError e = {};

                        if (!json_object_object_get_ex(state, "definition", &def) ||
                            vm_spec_parse_json(def, name, &spec, &e) < 0) {
                                log_error("Guest %s runs (pid %lld) but neither its definition nor its saved one "
                                          "can be read (%s); leaving it alone.",
                                          name, (long long) json_get_int(state, "pid", 0), strna(e.message));
                                vm_spec_error_done(&e);
                                goto next;
                        }
                        if (add_loaded_vm(m, spec, state_path, true, NULL) < 0) {
                                vm_spec_free(spec);
                                goto next;
                        }
                        vm = manager_find_vm(m, name);
                        vm->transient = true;
                        log_notice("Guest %s runs but is no longer defined; supervising it until it ends.", name);
                }

                r = vm_adopt(vm, state);
                if (r == -ESRCH) {
                        log_struct(LOG_WARNING, 0, STRV(vm->log_field, MESSAGE_ID_VM_VANISHED),
                                   "Guest %s (pid %lld) ended while memvisord was not running.", name,
                                   (long long) json_get_int(state, "pid", 0));
                        vm_cleanup_runtime(&m->vmctx, name);
                        if (vm->transient) {
                                manager_remove_vm(m, vm);
                                goto next;
                        }
                        free(vm->reason);
                        vm->reason = strdup("ended while memvisord was not running (exit status unknown)");
                        vm->state = VM_STATE_FAILED;
                        if (vm->spec->restart != VM_RESTART_NO && !vm->spec->autostart) {
                                _cleanup_free_ char *error = NULL;
                                log_info("Starting guest %s again ([Restart] Policy=%s).", name,
                                         vm_restart_policy_to_string(vm->spec->restart));
                                (void) vm_start(vm, &error);
                        }
                } else if (r < 0)
                        log_error_errno(r, "Failed to re-adopt guest %s: %m", name);
        next:
                free(list[i]);
        }
        free(list);
}

int manager_vms_start(Manager *m) {
        _cleanup_free_ char *api_dir = NULL;
        int r;

        r = vm_context_init(&m->vmctx, m->event, m->config.runtime_dir,
                            log_get_effective_target() == LOG_TARGET_JOURNAL);
        if (r < 0)
                return log_error_errno(r, "Failed to set up %s/vms: %m", m->config.runtime_dir);
        m->vmctx_ready = true;

        r = vm_context_add_state_watch(&m->vmctx, manager_on_vm_state, m);
        if (r < 0)
                return r;

        r = sd_event_add_defer(m->event, &m->gc_source, manager_gc, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->gc_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->gc_source, "vm-gc");

        api_dir = api_vm_dir(m);
        if (!api_dir)
                return log_oom();
        r = mkdir_p(api_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", api_dir);

        (void) load_vm_dir(m, m->config.vm_dir, false, add_loaded_vm, NULL);
        (void) load_vm_dir(m, api_dir, true, add_loaded_vm, NULL);

        manager_adopt_running(m);

        for (size_t i = 0; i < m->n_vms; i++) {
                Vm *vm = m->vms[i];
                _cleanup_free_ char *error = NULL;

                if (vm->spec->autostart && !vm_is_active(vm) && vm->state != VM_STATE_RESTARTING) {
                        log_info("Starting guest %s (Autostart=yes).", vm->name);
                        (void) vm_start(vm, &error);
                }
        }

        log_info("%zu guest%s defined.", m->n_vms, m->n_vms == 1 ? "" : "s");
        return 0;
}

void manager_vms_done(Manager *m) {
        /* Guests keep running: only our handles on them go. */
        for (size_t i = 0; i < m->n_vms; i++)
                vm_free(m->vms[i]);
        m->vms = mfree(m->vms);
        m->n_vms = 0;
        manager_events_done(m);
        m->gc_source = sd_event_source_disable_unref(m->gc_source);
        if (m->vmctx_ready)
                vm_context_done(&m->vmctx);
        m->vmctx_ready = false;
}

/* Re-reads VMDirectory: new files add guests, changed ones replace definitions (from the next start for a
 * running guest), removed ones forget stopped guests and make running ones transient. */
typedef struct ReloadSet {
        VmSpec **specs;
        char **paths;
        size_t n;
        char **invalid;         /* files there that did not parse: their guests keep the old definition */
} ReloadSet;

static int collect_spec(Manager *m, VmSpec *spec, const char *path, bool api, void *userdata) {
        ReloadSet *set = userdata;
        VmSpec **s;
        int r;

        if (!spec)
                return strv_extend(&set->invalid, path);

        for (size_t i = 0; i < set->n; i++)
                if (streq(set->specs[i]->name, spec->name)) {
                        log_error("Guest %s from %s is already defined by %s, ignoring.", spec->name, path,
                                  set->paths[i]);
                        return -EEXIST;
                }
        s = realloc(set->specs, (set->n + 1) * sizeof(VmSpec *));
        if (!s)
                return -ENOMEM;
        set->specs = s;
        r = strv_extend(&set->paths, path);
        if (r < 0)
                return r;
        set->specs[set->n++] = spec;
        return 0;
}

int manager_vms_reload(Manager *m) {
        ReloadSet set = {};

        if (!m->vmctx_ready)
                return 0;

        (void) load_vm_dir(m, m->config.vm_dir, false, collect_spec, &set);

        /* Definitions that went away. */
        for (size_t i = 0; i < m->n_vms;) {
                Vm *vm = m->vms[i];
                bool found = false;

                if (!vm->source || vm->transient) {
                        i++;
                        continue;
                }
                for (size_t k = 0; k < set.n; k++)
                        if (streq(set.specs[k]->name, vm->name))
                                found = true;
                if (found) {
                        i++;
                        continue;
                }
                if (strv_contains(set.invalid, vm->source)) {
                        log_warning("Definition of guest %s in %s is now invalid; keeping the previous one.", vm->name,
                                    vm->source);
                        i++;
                        continue;
                }
                if (vm_is_active(vm) || vm->state == VM_STATE_RESTARTING) {
                        log_notice("Definition of guest %s is gone; supervising it until it ends.", vm->name);
                        vm->transient = true;
                        i++;
                        continue;
                }
                log_info("Definition of guest %s is gone, forgetting it.", vm->name);
                manager_events_emit(m, "undefined", vm);
                vm_cleanup_runtime(&m->vmctx, vm->name);
                manager_remove_vm(m, vm);
        }

        /* New and changed definitions. */
        for (size_t k = 0; k < set.n; k++) {
                VmSpec *spec = set.specs[k];
                Vm *vm = manager_find_vm(m, spec->name);

                set.specs[k] = NULL;
                if (!vm) {
                        if (add_loaded_vm(m, spec, set.paths[k], false, NULL) < 0)
                                vm_spec_free(spec);
                        else
                                manager_events_emit(m, "defined", manager_find_vm(m, spec->name));
                        continue;
                }
                if (!vm->source && !vm->transient) {
                        log_error("Guest %s from %s conflicts with a guest defined over the API, ignoring the file.",
                                  spec->name, set.paths[k]);
                        vm_spec_free(spec);
                        continue;
                }
                if (vm_spec_equal(vm->spec, spec) && streq_ptr(vm->source, set.paths[k]) && !vm->transient) {
                        vm_spec_free(spec);
                        continue;
                }
                log_info("Definition of guest %s changed%s.", vm->name,
                         vm_is_active(vm) ? "; it applies from the next start" : "");
                vm_set_spec(vm, spec, set.paths[k]);
                manager_events_emit(m, "redefined", vm);
        }

        free(set.specs);
        strv_free(set.paths);
        strv_free(set.invalid);
        manager_update_status(m);
        return 0;
}

/* ---- varlink ---------------------------------------------------------------------------------- */

static int error_name_param(VarlinkConnection *c, const char *error, const char *key, const char *value) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, key, value) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, error, p);
}

static int error_two_strings(VarlinkConnection *c, const char *error, const char *k1, const char *v1, const char *k2,
                             const char *v2) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, k1, v1) < 0 || json_add_string(p, k2, v2) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, error, p);
}

static int error_read_only(VarlinkConnection *c, Vm *vm) {
        return error_two_strings(c, VARLINK_ERROR(DEFINITION_READ_ONLY), "name", vm->name, "source", vm->source);
}

static int error_invalid_state(VarlinkConnection *c, Vm *vm) {
        return error_two_strings(c, VARLINK_ERROR(INVALID_STATE), "name", vm->name, "state", vm_state_to_string(vm->state));
}

static int error_start_failed(VarlinkConnection *c, Vm *vm, const char *reason) {
        return error_two_strings(c, VARLINK_ERROR(START_FAILED), "name", vm->name, "reason", reason);
}

static Vm *lookup_or_reply(Manager *m, VarlinkConnection *c, json_object *parameters, int *ret) {
        const char *name = json_get_string(parameters, "name");
        Vm *vm = manager_find_vm(m, name);

        if (!vm)
                *ret = error_name_param(c, VARLINK_ERROR(NO_SUCH_VM), "name", name);
        return vm;
}

static int reply_summary(VarlinkConnection *c, Vm *vm) {
        _cleanup_json_ json_object *s = NULL, *p = json_object_new_object();
        int r;

        if (!p)
                return -ENOMEM;
        r = vm_summary_json(vm, &s);
        if (r < 0)
                return r;
        r = json_add(p, "vm", TAKE_PTR(s));
        if (r < 0)
                return r;
        return varlink_reply(c, TAKE_PTR(p));
}

static int vl_list_vms(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        _cleanup_json_ json_object *list = json_object_new_array(), *p = json_object_new_object();
        int r;

        if (!list || !p)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_vms; i++) {
                json_object *s = NULL;
                r = vm_summary_json(m->vms[i], &s);
                if (r < 0)
                        return r;
                if (json_object_array_add(list, s) < 0) {
                        json_object_put(s);
                        return -ENOMEM;
                }
        }
        r = json_add(p, "vms", TAKE_PTR(list));
        if (r < 0)
                return r;
        return varlink_reply(c, TAKE_PTR(p));
}

static int vl_describe_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        _cleanup_json_ json_object *d = NULL, *p = json_object_new_object();
        Vm *vm;
        int r = 0;

        vm = lookup_or_reply(userdata, c, parameters, &r);
        if (!vm)
                return r;
        if (!p)
                return -ENOMEM;
        r = vm_describe_json(vm, &d);
        if (r < 0)
                return r;
        r = json_add(p, "vm", TAKE_PTR(d));
        if (r < 0)
                return r;
        return varlink_reply(c, TAKE_PTR(p));
}

static int reply_invalid_definition(VarlinkConnection *c, const VmSpecError *e, int error) {
        json_object *p = json_object_new_object();

        if (!p || json_add_string(p, "field", e->field) < 0 ||
            json_add_string(p, "reason", e->message ?: strerror(-error)) < 0) {
                json_object_put(p);
                return -ENOMEM;
        }
        return varlink_error(c, VARLINK_ERROR(INVALID_DEFINITION), p);
}

static int vl_define_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        const char *name = json_get_string(parameters, "name"), *ini = json_get_string(parameters, "ini");
        const char *filename = json_get_string(parameters, "filename");
        bool replace = json_get_bool(parameters, "replace", false);
        _cleanup_(vm_spec_freep) VmSpec *spec = NULL;
        _cleanup_free_ char *text = NULL, *dir = NULL, *path = NULL;
        json_object *definition = NULL;
        VmSpecError e = {};
        Vm *vm;
        int r;

        if (json_object_object_get_ex(parameters, "definition", &definition) &&
            json_object_is_type(definition, json_type_null))
                definition = NULL;
        if (!!definition == !!ini)
                return varlink_error_invalid_parameter(c, definition ? "ini" : "definition");
        if (name && !vm_name_is_valid(name)) {
                VmSpecError ne = { .field = (char *) "VM.Name",
                                   .message = (char *) "invalid name: use 1-64 characters from a-z A-Z 0-9 _ . - "
                                                       "not starting with . or -" };
                return reply_invalid_definition(c, &ne, -EINVAL);
        }

        if (ini)
                r = vm_spec_parse_ini(filename ?: "DefineVM", ini, name, &spec, &e);
        else
                r = vm_spec_parse_json(definition, name, &spec, &e);
        if (r == -ENOMEM) {
                vm_spec_error_done(&e);
                return r;
        }
        if (r < 0) {
                r = reply_invalid_definition(c, &e, r);
                vm_spec_error_done(&e);
                return r;
        }

        vm = manager_find_vm(m, spec->name);
        if (vm && vm->source && !vm->transient)
                return error_read_only(c, vm);
        if (vm && !replace && !vm->transient)
                return error_name_param(c, VARLINK_ERROR(VM_EXISTS), "name", spec->name);
        if (!vm && m->n_vms >= MANAGER_MAX_VMS)
                return -E2BIG;

        /* Save first: nothing changes unless the definition is on disk. */
        dir = api_vm_dir(m);
        if (!dir || asprintf(&path, "%s/%s.vm", dir, spec->name) < 0)
                return -ENOMEM;
        r = vm_spec_to_ini(spec, &text);
        if (r < 0)
                return r;
        r = write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0)
                return log_error_errno(r, "Failed to save definition of guest %s to %s: %m", spec->name, path);

        if (vm) {
                log_info("Guest %s redefined over varlink by uid %u%s.", vm->name,
                         (unsigned) varlink_connection_get_peer_uid(c),
                         vm_is_active(vm) ? "; it applies from the next start" : "");
                vm_set_spec(vm, TAKE_PTR(spec), NULL);
                manager_events_emit(m, "redefined", vm);
        } else {
                r = vm_new(&m->vmctx, spec, NULL, &vm);
                if (r < 0) {
                        (void) unlink(path);
                        return r;
                }
                TAKE_PTR(spec);
                r = manager_add_vm(m, vm);
                if (r < 0) {
                        (void) unlink(path);
                        vm_free(vm);
                        return r;
                }
                log_info("Guest %s defined over varlink by uid %u.", vm->name, (unsigned) varlink_connection_get_peer_uid(c));
                manager_events_emit(m, "defined", vm);
        }
        manager_update_status(m);
        return reply_summary(c, vm);
}

static void remove_run_dir(Manager *m, const char *name) {
        int r;

        /* Relative to RUNTIME_DIR/vms, never through a link: a symbolic link in place of the directory goes
         * itself, and whatever it points to stays as it is. */
        r = vm_remove_runtime_dir(&m->vmctx, name);
        if (r > 0)
                log_notice("%s/%s was a symbolic link, not a directory of memvisord's: removed the link, left its "
                           "target alone.", m->vmctx.vms_dir, name);
        else if (r < 0)
                log_warning_errno(r, "Failed to remove %s/%s, ignoring: %m", m->vmctx.vms_dir, name);
}

static int vl_undefine_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ char *dir = NULL, *path = NULL;
        Vm *vm;
        int r = 0;

        vm = lookup_or_reply(m, c, parameters, &r);
        if (!vm)
                return r;
        if (vm_is_active(vm) || vm->state == VM_STATE_RESTARTING || vm->state == VM_STATE_STARTING ||
            vm->state == VM_STATE_STOPPING)
                return error_invalid_state(c, vm);
        if (vm->source && !vm->transient)
                return error_read_only(c, vm);

        dir = api_vm_dir(m);
        if (!dir || asprintf(&path, "%s/%s.vm", dir, vm->name) < 0)
                return -ENOMEM;
        if (unlink(path) < 0 && errno != ENOENT)
                return log_error_errno(errno, "Failed to remove %s: %m", path);

        log_info("Guest %s undefined over varlink by uid %u.", vm->name, (unsigned) varlink_connection_get_peer_uid(c));
        manager_events_emit(m, "undefined", vm);
        remove_run_dir(m, vm->name);
        manager_remove_vm(m, vm);
        manager_update_status(m);
        return varlink_reply(c, NULL);
}

/* StartVM and RestartVM: both may fail to start QEMU, which StartFailed reports. */
static int start_like(VarlinkConnection *c, json_object *parameters, void *userdata, int (*op)(Vm *vm, char **ret_error)) {
        _cleanup_free_ char *error = NULL;
        Vm *vm;
        int r = 0;

        vm = lookup_or_reply(userdata, c, parameters, &r);
        if (!vm)
                return r;
        r = op(vm, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return error_start_failed(c, vm, error ?: strerror(-r));
        return reply_summary(c, vm);
}

static int vl_start_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        return start_like(c, parameters, userdata, vm_start);
}

static int vl_stop_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Vm *vm;
        int r = 0;

        vm = lookup_or_reply(userdata, c, parameters, &r);
        if (!vm)
                return r;
        r = vm_stop(vm);
        if (r < 0)
                return r;
        return reply_summary(c, vm);
}

static int vl_restart_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        return start_like(c, parameters, userdata, vm_restart);
}

static int parse_signal(const char *s) {
        if (!s)
                return SIGKILL;
        if (startswith(s, "SIG"))
                s += 3;
        for (int sig = 1; sig < SIGRTMIN; sig++) {
                const char *n = sigabbrev_np(sig);
                if (n && streq(n, s))
                        return sig;
        }
        return -EINVAL;
}

static int vl_kill_vm(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Vm *vm;
        int r = 0, sig;

        vm = lookup_or_reply(userdata, c, parameters, &r);
        if (!vm)
                return r;
        sig = parse_signal(json_get_string(parameters, "signal"));
        if (sig < 0)
                return varlink_error_invalid_parameter(c, "signal");
        r = vm_kill(vm, sig);
        if (r == -ESRCH)
                return error_invalid_state(c, vm);
        if (r < 0)
                return r;
        return reply_summary(c, vm);
}

static const VarlinkField name_only[] = { { "name", VARLINK_STRING, 0 }, { NULL } };

static const VarlinkMethod vm_methods[] = {
        { "ListVMs", vl_list_vms, (const VarlinkField[]) { { NULL } }, 0 },
        { "DescribeVM", vl_describe_vm, name_only, 0 },
        { "DefineVM", vl_define_vm,
          (const VarlinkField[]) {
                  { "name", VARLINK_STRING, VARLINK_NULLABLE },
                  { "definition", VARLINK_OBJECT, VARLINK_NULLABLE },
                  { "ini", VARLINK_STRING, VARLINK_NULLABLE },
                  { "filename", VARLINK_STRING, VARLINK_NULLABLE },
                  { "replace", VARLINK_BOOL, VARLINK_NULLABLE },
                  { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "UndefineVM", vl_undefine_vm, name_only, VARLINK_METHOD_PRIVILEGED },
        { "StartVM", vl_start_vm, name_only, VARLINK_METHOD_PRIVILEGED },
        { "StopVM", vl_stop_vm, name_only, VARLINK_METHOD_PRIVILEGED },
        { "RestartVM", vl_restart_vm, name_only, VARLINK_METHOD_PRIVILEGED },
        { "KillVM", vl_kill_vm,
          (const VarlinkField[]) { { "name", VARLINK_STRING, 0 }, { "signal", VARLINK_STRING, VARLINK_NULLABLE }, { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { "SubscribeEvents", manager_events_subscribe, (const VarlinkField[]) { { NULL } }, VARLINK_METHOD_REQUIRES_MORE },
        { NULL },
};

const VarlinkMethod *manager_vm_methods(void) {
        return vm_methods;
}
