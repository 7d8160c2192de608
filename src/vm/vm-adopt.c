/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Re-adoption at start: the guests whose QEMU still runs from RUNTIME_DIR/vms/NAME (its state file, or when
 * that is missing or damaged, the process that holds the guest's QMP socket). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/strv.h"
#include "vm/process-find.h"
#include "vm/process.h"
#include "vm/vm-table.h"

/* The state file of run/vms/NAME is missing or unreadable (error): if a process still holds the guest's QMP
 * listening socket, build the state to adopt it from /proc (pid, start time, command line). 1 with *ret_state,
 * 0 when nothing runs there (logged if the state file was damaged). */
static int find_running_without_state(VmContext *ctx, const char *name, const char *dir, int error,
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
        r = process_find_socket_holder(ctx->proc_root, qmp, getpid(), &pid);
        if (r < 0) {
                if (error != -ENOENT)
                        log_warning_errno(error, "Failed to read %s/state (%m) and no process holds %s: guest %s "
                                          "is not running, ignoring the state file.", dir, qmp, name);
                return 0;
        }
        r = process_get_starttime(ctx->proc_root, pid, &starttime);
        if (r < 0)
                return log_warning_errno(r, "Process %i holds %s but its start time cannot be read: %m", (int) pid,
                                         qmp), 0;
        if (asprintf(&cmdline_path, "%s/%i/cmdline", ctx->proc_root, (int) pid) < 0)
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

void vm_table_adopt_running(VmTable *t) {
        VmContext *ctx = t->ctx;
        struct dirent **list = NULL;
        int n;

        n = scandir(ctx->vms_dir, &list, NULL, alphasort);
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
                dir = path_join(ctx->vms_dir, name);
                state_path = dir ? path_join(dir, "state") : NULL;
                if (!state_path)
                        goto next;
                /* Only what the daemon made: a real directory of its own uid and a regular state file in it. A
                 * planted link with a crafted state file must not get an unrelated process adopted (and later
                 * signalled by StopVM). */
                if (fstatat(ctx->vms_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
                    st.st_uid != geteuid()) {
                        log_warning("%s is not a directory of memvisord's own (a symbolic link, or another owner); "
                                    "not re-adopting anything from it.", dir);
                        goto next;
                }
                if (fstatat(ctx->vms_fd, state_path + strlen(ctx->vms_dir) + 1, &st, AT_SYMLINK_NOFOLLOW) >= 0 &&
                    !S_ISREG(st.st_mode)) {
                        log_warning("%s is not a regular file; not re-adopting anything from it.", state_path);
                        goto next;
                }
                r = vm_state_file_read(state_path, &state);
                if (r < 0) {
                        /* No usable state: a QEMU may still run for this guest. Never lose track of it (a
                         * start would launch a second QEMU on the same disks): find it by its QMP socket. */
                        r = find_running_without_state(ctx, name, dir, r, &state);
                        if (r <= 0)
                                goto next;
                }

                vm = vm_table_find(t, name);
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
                        if (vm_table_add_loaded(t, spec, state_path, true, &vm) < 0) {
                                vm_spec_free(spec);
                                goto next;
                        }
                        vm->transient = true;
                        log_notice("Guest %s runs but is no longer defined; supervising it until it ends.", name);
                }

                r = vm_adopt(vm, state);
                if (r == -ESRCH) {
                        log_struct(LOG_WARNING, 0, STRV(vm->log_field, MESSAGE_ID_VM_VANISHED),
                                   "Guest %s (pid %lld) ended while memvisord was not running.", name,
                                   (long long) json_get_int(state, "pid", 0));
                        vm_cleanup_runtime(ctx, name);
                        if (vm->transient) {
                                vm_table_remove(t, vm);
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

