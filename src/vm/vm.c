/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "vm/process-find.h"
#include "vm/process.h"
#include "vm/qemu-argv.h"
#include "vm/vm-confidential.h"
#include "basic/strv.h"
#include "vm/vm-internal.h"

#define KILL_TIMEOUT_USEC (10 * USEC_PER_SEC)

static const char *const vm_state_table[_VM_STATE_MAX] = {
        [VM_STATE_DEFINED] = "defined",
        [VM_STATE_STARTING] = "starting",
        [VM_STATE_RUNNING] = "running",
        [VM_STATE_STOPPING] = "stopping",
        [VM_STATE_STOPPED] = "stopped",
        [VM_STATE_FAILED] = "failed",
        [VM_STATE_RESTARTING] = "restarting",
};

DEFINE_STRING_TABLE(vm_state, VmState, _VM_STATE_MAX);

/* ---- context ---------------------------------------------------------------------------------- */

int vm_context_init(VmContext *ctx, sd_event *event, const char *runtime_dir, bool log_to_journal) {
        int r;

        *ctx = (VmContext) {
                .event = sd_event_ref(event),
                .vms_fd = -EBADF,
                .log_to_journal = log_to_journal,
                .proc_root = "/proc",
                .sysfs_root = "/",
                .console_fd = -EBADF,   /* none until vm_context_set_console() */
                .console_keep_boots = CONSOLE_KEEP_BOOTS_DEFAULT,
                .console_max_boot_size = CONSOLE_BOOT_SIZE_DEFAULT,
        };
        ctx->vms_dir = path_join(runtime_dir, "vms");
        if (!ctx->vms_dir)
                return -ENOMEM;
        r = mkdir_p(ctx->vms_dir, 0700);
        if (r < 0)
                return r;
        /* RUNTIME_DIR itself is the administrator's to place (it may well be a link); vms/ in it is ours. */
        ctx->vms_fd = open(ctx->vms_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (ctx->vms_fd < 0)
                return -errno;
        return 0;
}

void vm_context_done(VmContext *ctx) {
        safe_close(ctx->vms_fd);
        free(ctx->vms_dir);
        safe_close(ctx->console_fd);
        free(ctx->console_dir);
        sd_event_unref(ctx->event);
        *ctx = (VmContext) {};
}

int vm_context_add_state_watch(VmContext *ctx, VmStateWatch cb, void *userdata) {
        if (ctx->n_state_watches >= VM_CONTEXT_MAX_WATCHES)
                return -E2BIG;
        ctx->state_watches[ctx->n_state_watches].cb = cb;
        ctx->state_watches[ctx->n_state_watches++].userdata = userdata;
        return 0;
}

int vm_context_add_event_watch(VmContext *ctx, VmEventWatch cb, void *userdata) {
        if (ctx->n_event_watches >= VM_CONTEXT_MAX_WATCHES)
                return -E2BIG;
        ctx->event_watches[ctx->n_event_watches].cb = cb;
        ctx->event_watches[ctx->n_event_watches++].userdata = userdata;
        return 0;
}

int vm_context_add_agent_watch(VmContext *ctx, VmAgentWatch cb, void *userdata) {
        if (ctx->n_agent_watches >= VM_CONTEXT_MAX_WATCHES)
                return -E2BIG;
        ctx->agent_watches[ctx->n_agent_watches].cb = cb;
        ctx->agent_watches[ctx->n_agent_watches++].userdata = userdata;
        return 0;
}

/* ---- object ----------------------------------------------------------------------------------- */

static void vm_exit_done(VmExit *e) {
        free(e->shutdown_reason);
        free(e->description);
        strv_free(e->panic_lines);
        *e = (VmExit) {};
}

int vm_new(VmContext *ctx, VmSpec *spec, const char *source, Vm **ret) {
        _cleanup_(vm_freep) Vm *vm = NULL;

        vm = calloc(1, sizeof(*vm));
        if (!vm)
                return -ENOMEM;
        vm->ctx = ctx;
        vm->pidfd = -EBADF;
        vm->console_pipe = -EBADF;
        vm->console = (ConsoleWriter) CONSOLE_WRITER_INIT;
        vm->state = VM_STATE_DEFINED;
        vm->state_since_realtime = now_usec(CLOCK_REALTIME);
        vm->name = strdup(spec->name);
        if (!vm->name || asprintf(&vm->log_field, "VM=%s", spec->name) < 0)
                return -ENOMEM;
        if (source && !(vm->source = strdup(source)))
                return -ENOMEM;

        vm->run_dir = path_join(ctx->vms_dir, vm->name);
        if (!vm->run_dir)
                return -ENOMEM;
        vm->qmp_path = path_join(vm->run_dir, "qmp.sock");
        vm->qga_path = path_join(vm->run_dir, "qga.sock");
        vm->log_path = path_join(vm->run_dir, "qemu.log");
        vm->state_path = path_join(vm->run_dir, "state");
        if (!vm->qmp_path || !vm->qga_path || !vm->log_path || !vm->state_path)
                return -ENOMEM;

        vm->spec = spec; /* only now: on failure above the caller still owns spec */
        *ret = TAKE_PTR(vm);
        return 0;
}

static void vm_release_process(Vm *vm) {
        vm->process_source = sd_event_source_disable_unref(vm->process_source);
        vm->pidfd = safe_close(vm->pidfd);
        vm->pid = 0;
        vm->starttime = 0;
        vm->adopted = false;
}

Vm *vm_free(Vm *vm) {
        if (!vm)
                return NULL;

        vm->timer = sd_event_source_disable_unref(vm->timer);
        vm_release_agent(vm);
        vm_release_qmp(vm);
        vm_release_process(vm);
        vm_console_free(vm);
        vm_spec_free(vm->spec);
        vm_spec_free(vm->running_spec);
        vm_spec_free(vm->variant);
        free(vm->variant_label);
        free(vm->running_variant);
        vm_emulator_check_done(&vm->emulator_check);
        vm_exit_done(&vm->last_exit);
        strv_free(vm->argv);
        free(vm->vcpus);
        free(vm->name);
        free(vm->log_field);
        free(vm->source);
        free(vm->definition_problem);
        free(vm->reason);
        free(vm->run_dir);
        free(vm->qmp_path);
        free(vm->qga_path);
        free(vm->console_path);
        free(vm->log_path);
        free(vm->state_path);
        free(vm->qemu_status);
        free(vm->qemu_version);
        free(vm->shutdown_reason);
        free(vm->kvm_failure);
        free(vm);
        return NULL;
}

void vm_set_spec(Vm *vm, VmSpec *spec, const char *source) {
        vm_spec_free(vm->spec);
        vm->spec = spec;
        vm->kvm_failure = mfree(vm->kvm_failure); /* a new definition gets KVM another try */
        (void) free_and_strdup(&vm->source, source);
        vm->transient = false;
        vm->definition_problem = mfree(vm->definition_problem);
}

void vm_set_variant(Vm *vm, VmSpec *variant, const char *label) {
        vm_spec_free(vm->variant);
        vm->variant = variant;
        vm->variant_label = mfree(vm->variant_label);
        if (variant && label)
                vm->variant_label = strdup(label);      /* only for display: NULL on ENOMEM is fine */
}

bool vm_is_active(const Vm *vm) {
        return vm->pidfd >= 0;
}

void vm_set_state(Vm *vm, VmState state, const char *reason) {
        VmState old = vm->state;

        (void) free_and_strdup(&vm->reason, reason);
        if (old == state && !reason)
                return;
        vm->state = state;
        vm->state_since_realtime = now_usec(CLOCK_REALTIME);

        log_vm(vm, LOG_DEBUG, 0, "Guest %s: %s → %s%s%s", vm->name, vm_state_to_string(old),
               vm_state_to_string(state), reason ? ": " : "", strempty(reason));

        for (size_t i = 0; i < vm->ctx->n_state_watches; i++)
                vm->ctx->state_watches[i].cb(vm, old, vm->ctx->state_watches[i].userdata);
}

/* ---- timers ----------------------------------------------------------------------------------- */

static int vm_on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static int vm_arm_timer(Vm *vm, VmTimer kind, uint64_t delay_usec) {
        int r;

        if (delay_usec == USEC_INFINITY) {
                /* "infinity": wait for ever, i.e. no timer at all. */
                if (vm->timer)
                        (void) sd_event_source_set_enabled(vm->timer, SD_EVENT_OFF);
                vm->timer_kind = VM_TIMER_NONE;
                return 0;
        }

        if (!vm->timer) {
                r = sd_event_add_time_relative(vm->ctx->event, &vm->timer, CLOCK_MONOTONIC, delay_usec, 0,
                                               vm_on_timer, vm);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(vm->timer, "vm-timer");
        } else {
                r = sd_event_source_set_time_relative(vm->timer, delay_usec);
                if (r < 0)
                        return r;
                r = sd_event_source_set_enabled(vm->timer, SD_EVENT_ONESHOT);
                if (r < 0)
                        return r;
        }
        vm->timer_kind = kind;
        return 0;
}

void vm_disarm_timer(Vm *vm) {
        if (vm->timer)
                (void) sd_event_source_set_enabled(vm->timer, SD_EVENT_OFF);
        vm->timer_kind = VM_TIMER_NONE;
}

void vm_signal(Vm *vm, int sig) {
        int r;

        if (vm->pidfd < 0)
                return;
        r = pidfd_send_sig(vm->pidfd, sig);
        if (r < 0 && r != -ESRCH)
                log_vm(vm, LOG_WARNING, r, "Failed to send %s to QEMU of guest %s: %m", sigabbrev_np(sig), vm->name);
}

/* ---- exit handling ---------------------------------------------------------------------------- */

/* Whether QEMU has exited (its pidfd is readable), though the exit may not have been handled yet. */
bool vm_process_exited(Vm *vm) {
        struct pollfd p = { .fd = vm->pidfd, .events = POLLIN };

        return vm->pidfd >= 0 && poll(&p, 1, 0) == 1;
}

static int vm_start_internal(Vm *vm, bool by_policy, char **ret_error);

static void vm_handle_exit(Vm *vm, bool status_known, int code, int sig) {
        uint64_t now = now_usec(CLOCK_MONOTONIC), uptime = now - vm->started_monotonic, delay = 0;
        _cleanup_free_ char *desc = NULL, *reason = NULL;
        bool clean;
        RestartDecision d;
        VmSpec *spec;

        vm_release_agent(vm);
        vm_release_qmp(vm); /* first: its callbacks run now, and must not find the exit half handled */
        vm_disarm_timer(vm);
        vm_release_process(vm);
        vm_cleanup_runtime(vm->ctx, vm->name);

        if (!status_known)
                desc = strdup(vm->shutdown_reason ? "exited (adopted guest, exit status unknown)"
                                                  : "vanished (adopted guest, exit status unknown)");
        else if (sig > 0)
                (void) asprintf(&desc, "killed by signal %s", sigabbrev_np(sig) ?: "?");
        else if (code == PROCESS_SPAWN_EXIT_AFFINITY && vm->state == VM_STATE_STARTING &&
                 vm->running_spec && vm->running_spec->emulator_affinity)
                (void) asprintf(&desc, "exited with status %i before executing QEMU: EmulatorAffinity=%s could "
                                "not be set (the kernel refused it; see %s)", code, vm->running_spec->emulator_affinity,
                                vm->log_path ?: "QEMU's log");
        else
                (void) asprintf(&desc, "exited with status %i", code);
        if (!desc)
                desc = strdup("ended");

        vm_exit_done(&vm->last_exit);
        vm->last_exit = (VmExit) {
                .valid = true,
                .status_known = status_known,
                .code = status_known && sig == 0 ? code : -1,
                .signal = sig,
                .shutdown_reason = vm->shutdown_reason ? strdup(vm->shutdown_reason) : NULL,
                .description = desc ? strdup(desc) : NULL,
                .realtime_usec = now_usec(CLOCK_REALTIME),
        };
        if (streq_ptr(vm->shutdown_reason, "guest-panic"))
                vm_console_on_guest_panicked(vm);
        vm_console_end(vm);

        spec = vm->running_spec ?: vm->spec;

        /* Accelerator=auto means KVM when it works: a QEMU that dies while starting under KVM is tried once
         * more under TCG (some nested KVM hosts cannot run every CPU model), and TCG is used from then on. */
        if (!vm->stop_requested && !vm->start_timed_out && vm->state == VM_STATE_STARTING &&
            spec->accel == VM_ACCEL_AUTO && vm->accel == VM_ACCEL_KVM && !vm->kvm_failure &&
            !(status_known && sig == 0 && code == PROCESS_SPAWN_EXIT_AFFINITY && spec->emulator_affinity)) {
                _cleanup_free_ char *error = NULL;

                vm->kvm_failure = strdup(desc);
                log_vm(vm, LOG_WARNING, 0, "QEMU of guest %s %s while starting under KVM; falling back to TCG "
                       "(Accelerator=auto). See %s.", vm->name, desc,
                       vm->ctx->log_to_journal ? "the journal" : vm->log_path);
                if (vm_start_internal(vm, false, &error) < 0)
                        log_vm(vm, LOG_ERR, 0, "Failed to start guest %s under TCG: %s", vm->name, strna(error));
                return;
        }

        if (vm->stop_requested) {
                bool again = vm->restart_requested;

                vm->stop_requested = vm->restart_requested = false;
                log_vm_id(vm, LOG_INFO, 0, MESSAGE_ID_VM_STOPPED, "Guest %s stopped (%s).", vm->name, desc);
                vm_set_state(vm, VM_STATE_STOPPED, desc);
                if (again) {
                        _cleanup_free_ char *error = NULL;
                        if (vm_start_internal(vm, false, &error) < 0)
                                log_vm(vm, LOG_ERR, 0, "Failed to start guest %s again: %s", vm->name, strna(error));
                }
                return;
        }

        if (vm->start_timed_out) {
                clean = false;
                free(desc);
                if (asprintf(&desc, "start timeout: QMP did not become ready within %.1fs",
                             (double) spec->start_timeout_usec / USEC_PER_SEC) < 0)
                        desc = NULL;
        } else if (status_known)
                clean = sig == 0 && code == 0;
        else
                clean = vm->shutdown_reason && (streq(vm->shutdown_reason, "guest-shutdown") ||
                                                 streq(vm->shutdown_reason, "host-signal") ||
                                                 streq(vm->shutdown_reason, "host-qmp-quit"));

        if (clean && vm->shutdown_reason)
                (void) asprintf(&reason, "%s (%s)", desc, vm->shutdown_reason);
        else
                reason = strdup(strempty(desc));

        /* A transient guest (its definition is gone) is supervised until it ends, not restarted. */
        d = vm->transient ? RESTART_DECISION_NONE : restart_decide(&vm->tracker, spec, clean, uptime, now, &delay);
        switch (d) {
        case RESTART_DECISION_NONE:
                if (clean) {
                        log_vm_id(vm, LOG_INFO, 0, MESSAGE_ID_VM_STOPPED, "Guest %s ended: %s.", vm->name, reason);
                        vm_set_state(vm, VM_STATE_STOPPED, reason);
                } else {
                        log_vm_id(vm, LOG_WARNING, 0, MESSAGE_ID_VM_FAILED, "Guest %s failed: %s.", vm->name, reason);
                        vm_set_state(vm, VM_STATE_FAILED, reason);
                }
                return;

        case RESTART_DECISION_RESTART: {
                char ts[64];
                int r;

                snprintf(ts, sizeof(ts), "%.3gs", (double) delay / USEC_PER_SEC);
                log_vm_id(vm, clean ? LOG_INFO : LOG_WARNING, 0, MESSAGE_ID_VM_RESTART_SCHEDULED,
                          "Guest %s %s: %s; restarting in %s (policy %s).", vm->name, clean ? "ended" : "failed",
                          reason, ts, vm_restart_policy_to_string(spec->restart));
                r = vm_arm_timer(vm, VM_TIMER_RESTART, delay);
                if (r < 0) {
                        log_vm(vm, LOG_ERR, r, "Failed to schedule restart of guest %s: %m", vm->name);
                        vm_set_state(vm, VM_STATE_FAILED, reason);
                        return;
                }
                vm_set_state(vm, VM_STATE_RESTARTING, reason);
                return;
        }

        case RESTART_DECISION_LIMIT_HIT: {
                _cleanup_free_ char *why = NULL;

                if (asprintf(&why, "start limit hit (%u starts within %.0fs): %s", spec->start_limit_burst,
                             (double) spec->start_limit_interval_usec / USEC_PER_SEC, reason) < 0)
                        why = NULL;
                log_vm_id(vm, LOG_ERR, 0, MESSAGE_ID_VM_START_LIMIT_HIT,
                          "Guest %s failed and hit its start limit, not restarting: %s.", vm->name, strna(why));
                vm_set_state(vm, VM_STATE_FAILED, why ?: reason);
                return;
        }

        case _RESTART_DECISION_MAX:
        case _RESTART_DECISION_INVALID:
                break;
        }
        vm_set_state(vm, VM_STATE_FAILED, reason);
}

/* Our own child: sd-event reaps it and tells us how it ended. */
static int vm_on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Vm *vm = userdata;

        if (si->si_code == CLD_EXITED)
                vm_handle_exit(vm, true, si->si_status, 0);
        else
                vm_handle_exit(vm, true, -1, si->si_status);
        return 0;
}

/* An adopted guest: the pidfd becomes readable when it exits; we cannot wait for it. */
static int vm_on_pidfd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        vm_handle_exit(userdata, false, -1, 0);
        return 0;
}

/* ---- start ------------------------------------------------------------------------------------ */

static bool kvm_usable(void) {
        _cleanup_close_ int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

        return fd >= 0 && ioctl(fd, KVM_GET_API_VERSION, 0) == KVM_API_VERSION;
}

/* Creates a listening socket that QEMU inherits (QMP's, the agent port's); we connect to it by path. dir_fd is the
 * guest's runtime directory, checked by vm_run_dir_open(): the old socket goes by name relative to it. bind() takes
 * the path (the one a restarted memvisord reconnects to, and finds in /proc/net/unix), which leads to that same
 * directory: only our own uid can change RUNTIME_DIR/vms. */
static int vm_make_listen_socket(int dir_fd, const char *file, const char *path, int *ret_listen_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (unlinkat(dir_fd, file, 0) < 0 && errno != ENOENT)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        /* fchmodat() follows links: make sure it is the socket just bound. */
        if (fstatat(dir_fd, file, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (!S_ISSOCK(st.st_mode))
                return -ELOOP;
        if (fchmodat(dir_fd, file, 0600, 0) < 0 || listen(fd, 8) < 0)
                return -errno;
        *ret_listen_fd = TAKE_FD(fd);
        return 0;
}

static int vm_open_output(Vm *vm, int dir_fd, int *ret_fd, const char **ret_why) {
        int fd;

        *ret_why = NULL;

        if (vm->ctx->log_to_journal) {
                _cleanup_free_ char *ident = NULL;

                if (asprintf(&ident, "qemu-%s", vm->name) < 0)
                        return -ENOMEM;
                fd = sd_journal_stream_fd(ident, LOG_INFO, false);
                if (fd >= 0) {
                        *ret_fd = fd;
                        return 0;
                }
                log_vm(vm, LOG_WARNING, fd, "Failed to connect QEMU output to the journal, using %s: %m", vm->log_path);
        }

        return vm_run_file_open(dir_fd, "qemu.log", ret_fd, ret_why);
}

static int fail_start(Vm *vm, int error, char **ret_error, const char *fmt, ...) _printf_(4, 5);
static int fail_start(Vm *vm, int error, char **ret_error, const char *fmt, ...) {
        _cleanup_free_ char *msg = NULL;
        va_list ap;

        errno = abs(error);
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        va_end(ap);

        vm_console_free(vm);    /* a console pipe made for this start */
        log_vm_id(vm, LOG_ERR, error, MESSAGE_ID_VM_FAILED, "Failed to start guest %s: %s", vm->name, strna(msg));
        vm_set_state(vm, VM_STATE_FAILED, msg);
        if (ret_error)
                *ret_error = TAKE_PTR(msg);
        return error < 0 ? error : -EINVAL;
}

static int vm_start_internal(Vm *vm, bool by_policy, char **ret_error) {
        _cleanup_close_ int listen_fd = -EBADF, out_fd = -EBADF, qmp_fd = -EBADF, dir_fd = -EBADF,
                console_fd = -EBADF, console_read_fd = -EBADF, qga_listen_fd = -EBADF;
        _cleanup_(strv_freep) char **argv = NULL;
        _cleanup_free_ char *emulator = NULL, *why = NULL, *mem_why = NULL, *conf_why = NULL, *console_dir = NULL,
                *cpu_why = NULL;
        _cleanup_(vm_spec_freep) VmSpec *spec = NULL;
        cpu_set_t emulator_cpus;
        bool have_emulator_cpus;
        const char *file_why;
        QemuArgvParams p;
        pid_t pid, other;
        int pidfd, r;

        if (vm_is_active(vm))
                return 0;

        vm_disarm_timer(vm);
        vm->stop_requested = vm->restart_requested = false;
        vm->start_timed_out = false;
        vm->start_done = false;
        vm->shutdown_reason = mfree(vm->shutdown_reason);
        vm->qemu_status = mfree(vm->qemu_status);
        vm->vcpus = mfree(vm->vcpus);
        vm->n_vcpus = 0;

        /* Snapshot the definition: a redefinition while running applies at the next start. An experiment's
         * variant, while it is set, is started instead. */
        r = vm_spec_copy(vm->variant ?: vm->spec, &spec);
        if (r < 0)
                return fail_start(vm, r, ret_error, "cannot copy the definition: %s", strerror(-r));

        r = find_executable(spec->qemu_binary ?: "qemu-system-x86_64", &emulator);
        if (r < 0)
                return fail_start(vm, r, ret_error, "emulator %s %s", spec->qemu_binary ?: "qemu-system-x86_64",
                                  r == -ENOENT ? "not found" : r == -EACCES ? "is not executable" : strerror(-r));

        switch (spec->accel) {
        case VM_ACCEL_AUTO:
                vm->accel = kvm_usable() && !vm->kvm_failure ? VM_ACCEL_KVM : VM_ACCEL_TCG;
                break;
        case VM_ACCEL_KVM:
                if (!kvm_usable())
                        return fail_start(vm, -ENODEV, ret_error,
                                          "Accelerator=kvm but /dev/kvm is missing or not usable");
                vm->accel = VM_ACCEL_KVM;
                break;
        case VM_ACCEL_TCG:
                vm->accel = VM_ACCEL_TCG;
                break;
        case _VM_ACCEL_MAX:
        case _VM_ACCEL_INVALID:
                return fail_start(vm, -EINVAL, ret_error, "invalid accelerator");
        }

        /* Huge pages that are not there would make QEMU fail, or (Reserve=no) the guest die of SIGBUS later. */
        r = vm_memory_check_start(spec, vm->ctx->sysfs_root, &mem_why);
        if (r < 0)
                return fail_start(vm, r, ret_error, "%s", mem_why ?: strerror(-r));
        /* A confidential guest: refused with the reason (the host's, or this build's), nothing spawned. */
        r = vm_confidential_check(spec, vm->ctx->sysfs_root, &conf_why);
        if (r < 0)
                return fail_start(vm, r, ret_error, "%s", conf_why ?: strerror(-r));

        /* EmulatorAffinity=: set in the child before QEMU is executed (process_spawn), so no thread of QEMU,
         * preallocation and vCPUs included, runs elsewhere first. */
        r = vm_emulator_affinity(spec, vm->ctx->sysfs_root, &emulator_cpus, &cpu_why);
        if (r < 0)
                return fail_start(vm, r, ret_error, "%s", cpu_why ?: strerror(-r));
        have_emulator_cpus = r > 0;

        /* Everything of the guest goes in this directory, reached by this fd: never through a link. */
        dir_fd = vm_run_dir_open(vm->ctx, vm->name, /* create= */ true, &why);
        if (dir_fd < 0)
                return fail_start(vm, dir_fd, ret_error, "%s", why ?: strerror(-dir_fd));

        /* A QEMU we lost track of (state file gone, a second daemon) may still hold this guest's QMP socket,
         * and its disks: never start a second one. */
        if (process_find_socket_holder(vm->ctx->proc_root, vm->qmp_path, getpid(), &other) >= 0)
                return fail_start(vm, -EBUSY, ret_error, "process %i still holds this guest's QMP socket %s: a "
                                  "QEMU of this guest runs unsupervised; stop it (or restart memvisord to "
                                  "re-adopt it) before starting another", (int) other, vm->qmp_path);

        r = vm_make_listen_socket(dir_fd, "qmp.sock", vm->qmp_path, &listen_fd);
        if (r < 0)
                return fail_start(vm, r, ret_error, "cannot create QMP socket %s: %s", vm->qmp_path, strerror(-r));

        if (spec->guest_agent && !qemu_argv_agent_port(spec))
                log_vm(vm, LOG_NOTICE, 0, "Guest %s: ExtraArgs= sets up a guest agent port of its own, so memvisor "
                       "adds none (GuestAgent=yes has no channel).", vm->name);
        if (qemu_argv_agent_port(spec)) {
                r = vm_make_listen_socket(dir_fd, "qga.sock", vm->qga_path, &qga_listen_fd);
                if (r < 0)
                        return fail_start(vm, r, ret_error, "cannot create the guest agent socket %s: %s",
                                          vm->qga_path, strerror(-r));
        } else
                (void) unlinkat(dir_fd, "qga.sock", 0);

        r = vm_open_output(vm, dir_fd, &out_fd, &file_why);
        if (r < 0)
                return fail_start(vm, r, ret_error, "cannot open QEMU log %s: %s", vm->log_path,
                                  file_why ?: strerror(-r));

        /* QEMU writes its console into a pipe, the daemon into the boot's file (vm-console.c). */
        r = vm_console_prepare(vm, &console_fd, &console_read_fd);
        if (r < 0)
                return fail_start(vm, r, ret_error, "cannot make the console pipe: %s", strerror(-r));

        console_dir = path_join(vm->ctx->console_dir ?: "console", vm->name);
        if (!console_dir)
                return fail_start(vm, -ENOMEM, ret_error, "out of memory");

        /* vCPU pinning must be in place before the vCPUs first run (VmContext.prerun). */
        vm->start_paused = spec->vcpu_affinity || spec->emulator_affinity;
        p = (QemuArgvParams) {
                .qmp_path = vm->qmp_path,
                .qmp_fd = 3,            /* listen_fd */
                .console_fd = 4,        /* console_fd; console_read_fd is VM_CONSOLE_QEMU_READ_FD */
                .qga_fd = qga_listen_fd >= 0 ? 6 : 0,
                .console_path = console_dir,    /* where the console goes: ps and query-fdsets show it */
                .accel = vm->accel,
                .paused = vm->start_paused,
                .nodes_without_cpus = vm_nodes_without_cpus(vm->ctx->sysfs_root),
        };
        if (spec->dirty_ring > 0 && vm->accel == VM_ACCEL_TCG)
                log_vm(vm, LOG_WARNING, 0, "Guest %s: starting under TCG (Accelerator=auto fell back), where there is "
                       "no KVM dirty ring: DirtyRing=%u is ignored.", vm->name, spec->dirty_ring);
        r = qemu_build_argv(spec, &p, &argv);
        if (r < 0)
                return fail_start(vm, r, ret_error, "cannot build the QEMU command line: %s", strerror(-r));
        free(argv[0]);
        argv[0] = strdup(emulator);
        if (!argv[0])
                return fail_start(vm, -ENOMEM, ret_error, "out of memory");

        {
                /* Connect before QEMU runs: the backlog holds us until QEMU accepts and greets. */
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                strcpy(sa.sun_path, vm->qmp_path);
                qmp_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (qmp_fd < 0 || connect(qmp_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                        return fail_start(vm, -errno, ret_error, "cannot connect to QMP socket: %m");
        }

        vm_commit_charge_before(vm);
        vm_emulator_check_done(&vm->emulator_check);
        r = process_spawn(emulator, argv, out_fd,
                          (const int[]) { listen_fd, console_fd, console_read_fd, qga_listen_fd },
                          qga_listen_fd >= 0 ? 4 : 3, have_emulator_cpus ? &emulator_cpus : NULL, &pid, &pidfd);
        if (r < 0)
                return fail_start(vm, r, ret_error, "cannot spawn %s: %s", emulator, strerror(-r));

        vm->pid = pid;
        vm->pidfd = pidfd;
        vm->adopted = false;
        (void) process_get_starttime(vm->ctx->proc_root, pid, &vm->starttime);
        vm->started_monotonic = now_usec(CLOCK_MONOTONIC);
        vm->started_realtime = now_usec(CLOCK_REALTIME);
        strv_free(vm->argv);
        vm->argv = TAKE_PTR(argv);
        vm_spec_free(vm->running_spec);
        vm->running_spec = TAKE_PTR(spec);
        free(vm->running_variant);
        vm->running_variant = vm->variant_label ? strdup(vm->variant_label) : NULL;     /* display only */
        if (by_policy)
                vm->restarts++;
        else
                restart_tracker_reset(&vm->tracker);
        restart_tracker_record_start(&vm->tracker, vm->running_spec, vm->started_monotonic);

        r = vm_console_begin(vm);
        if (r < 0)
                log_vm(vm, LOG_WARNING, r, "Failed to begin the console history of guest %s in %s, its console is "
                       "not kept: %m", vm->name, vm->ctx->console_dir);

        r = sd_event_add_child_pidfd(vm->ctx->event, &vm->process_source, pidfd, WEXITED, vm_on_child, vm);
        if (r < 0) {
                vm_signal(vm, SIGKILL);
                return fail_start(vm, r, ret_error, "cannot watch the QEMU process: %s", strerror(-r));
        }
        (void) sd_event_source_set_description(vm->process_source, "vm-process");
        r = sd_event_source_set_priority(vm->process_source, VM_PROCESS_EVENT_PRIORITY);
        if (r < 0) {
                vm_signal(vm, SIGKILL);
                return fail_start(vm, r, ret_error, "cannot watch the QEMU process: %s", strerror(-r));
        }

        r = vm_connect_qmp(vm, TAKE_FD(qmp_fd));
        if (r < 0)
                log_vm(vm, LOG_ERR, r, "Failed to set up QMP for guest %s: %m", vm->name);
        r = vm_connect_agent(vm);
        if (r < 0)
                log_vm(vm, LOG_WARNING, r, "Failed to set up the guest agent client of %s: %m", vm->name);

        r = vm_write_state_file(vm);
        if (r < 0)
                log_vm(vm, LOG_WARNING, r, "Failed to write %s, the guest cannot be re-adopted: %m", vm->state_path);

        r = vm_arm_timer(vm, VM_TIMER_START, vm->running_spec->start_timeout_usec);
        if (r < 0)
                log_vm(vm, LOG_WARNING, r, "Failed to arm the start timeout of guest %s: %m", vm->name);

        log_vm(vm, LOG_DEBUG, 0, "Spawned QEMU for guest %s as pid %i.", vm->name, (int) pid);
        vm_set_state(vm, VM_STATE_STARTING, NULL);
        return 0;
}

int vm_start(Vm *vm, char **ret_error) {
        if (vm->state == VM_STATE_STOPPING) {
                /* Start again once it is down, as a restart would. */
                vm->restart_requested = true;
                return 0;
        }
        return vm_start_internal(vm, false, ret_error);
}

/* ---- stop ------------------------------------------------------------------------------------- */

static void on_powerdown(QmpClient *q, int error, json_object *result, const char *cls, const char *desc,
                         void *userdata) {
        Vm *vm = userdata;

        /* -ECONNRESET: QMP went away (QEMU exiting, or the Vm letting go): the stop timer escalates if needed. */
        if (error < 0 && error != -ECONNRESET && vm->state == VM_STATE_STOPPING &&
            vm->timer_kind == VM_TIMER_STOP_TERM) {
                log_vm(vm, LOG_NOTICE, error, "system_powerdown failed for guest %s (%s), sending SIGTERM.", vm->name,
                       error == -EIO ? desc : strerror(-error));
                vm_signal(vm, SIGTERM);
                (void) vm_arm_timer(vm, VM_TIMER_STOP_KILL, KILL_TIMEOUT_USEC);
        }
}

int vm_stop(Vm *vm) {
        int r;

        if (vm->state == VM_STATE_RESTARTING) {
                vm_disarm_timer(vm);
                vm_set_state(vm, VM_STATE_STOPPED, "restart cancelled by stop request");
                return 0;
        }
        if (!vm_is_active(vm))
                return 0;
        if (vm->stop_requested) {
                vm->restart_requested = false;
                return 0;
        }

        vm->stop_requested = true;
        vm->restart_requested = false;

        if (vm->qmp && qmp_client_get_state(vm->qmp) == QMP_CLIENT_RUNNING && vm->state == VM_STATE_RUNNING) {
                r = qmp_client_execute(vm->qmp, "system_powerdown", NULL, QMP_COMMAND_TIMEOUT_USEC, on_powerdown, vm);
                if (r >= 0) {
                        r = vm_arm_timer(vm, VM_TIMER_STOP_TERM, (vm->running_spec ?: vm->spec)->stop_timeout_usec);
                        if (r >= 0) {
                                log_vm(vm, LOG_INFO, 0, "Stopping guest %s: system_powerdown sent.", vm->name);
                                vm_set_state(vm, VM_STATE_STOPPING, NULL);
                                return 0;
                        }
                }
        }

        log_vm(vm, LOG_INFO, 0, "Stopping guest %s: SIGTERM sent.", vm->name);
        vm_signal(vm, SIGTERM);
        (void) vm_arm_timer(vm, VM_TIMER_STOP_KILL, KILL_TIMEOUT_USEC);
        vm_set_state(vm, VM_STATE_STOPPING, NULL);
        return 0;
}

int vm_kill(Vm *vm, int sig) {
        if (!vm_is_active(vm))
                return -ESRCH;

        vm->stop_requested = true;
        vm->restart_requested = false;
        log_vm(vm, LOG_INFO, 0, "Sending %s to guest %s.", sigabbrev_np(sig) ?: "signal", vm->name);
        vm_signal(vm, sig);
        if (vm->timer_kind != VM_TIMER_STOP_KILL)
                (void) vm_arm_timer(vm, VM_TIMER_STOP_KILL, KILL_TIMEOUT_USEC);
        vm_set_state(vm, VM_STATE_STOPPING, NULL);
        return 0;
}

int vm_restart(Vm *vm, char **ret_error) {
        int r;

        if (!vm_is_active(vm)) {
                vm_disarm_timer(vm);
                return vm_start_internal(vm, false, ret_error);
        }
        r = vm_stop(vm);
        if (r < 0)
                return r;
        vm->restart_requested = true;
        return 0;
}

static int vm_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Vm *vm = userdata;
        VmTimer kind = vm->timer_kind;

        vm->timer_kind = VM_TIMER_NONE;

        switch (kind) {
        case VM_TIMER_START:
                log_vm(vm, LOG_ERR, 0, "Guest %s did not finish starting within its start timeout, killing it.",
                       vm->name);
                vm->start_timed_out = true;
                vm_signal(vm, SIGKILL);
                break;
        case VM_TIMER_STOP_TERM:
                log_vm(vm, LOG_NOTICE, 0, "Guest %s did not power down within its stop timeout, sending SIGTERM.",
                       vm->name);
                vm_signal(vm, SIGTERM);
                (void) vm_arm_timer(vm, VM_TIMER_STOP_KILL, KILL_TIMEOUT_USEC);
                break;
        case VM_TIMER_STOP_KILL:
                log_vm(vm, LOG_WARNING, 0, "Guest %s did not exit after SIGTERM, sending SIGKILL.", vm->name);
                vm_signal(vm, SIGKILL);
                break;
        case VM_TIMER_RESTART: {
                _cleanup_free_ char *error = NULL;
                if (vm->state == VM_STATE_RESTARTING && vm_start_internal(vm, true, &error) < 0)
                        log_vm(vm, LOG_ERR, 0, "Restart of guest %s failed: %s", vm->name, strna(error));
                break;
        }
        case VM_TIMER_NONE:
                break;
        }
        return 0;
}

/* ---- adoption --------------------------------------------------------------------------------- */

int vm_adopt(Vm *vm, json_object *state) {
        _cleanup_close_ int pidfd = -EBADF;
        _cleanup_(vm_spec_freep) VmSpec *spec = NULL;
        json_object *argv = NULL, *def = NULL;
        int64_t pid = json_get_int(state, "pid", 0);
        uint64_t starttime = (uint64_t) json_get_int(state, "starttime", -1);
        int r;

        if (pid <= 1 || pid > INT32_MAX)
                return -EBADMSG;

        r = process_adopt((pid_t) pid, starttime, &pidfd);
        if (r < 0)
                return r;

        if (json_object_object_get_ex(state, "definition", &def)) {
                VmSpecError e = {};
                r = vm_spec_parse_json(def, vm->name, &spec, &e);
                if (r < 0)
                        log_vm(vm, LOG_WARNING, r, "Stored definition of running guest %s is unreadable (%s), using "
                               "the current one.", vm->name, strna(e.message));
                vm_spec_error_done(&e);
        }
        if (!spec) {
                r = vm_spec_copy(vm->spec, &spec);
                if (r < 0)
                        return r;
        }

        vm_disarm_timer(vm);
        vm->pid = (pid_t) pid;
        vm->starttime = starttime;
        vm->adopted = true;
        vm->started_realtime = (uint64_t) json_get_int(state, "startedRealtime", 0);
        vm->started_monotonic = (uint64_t) json_get_int(state, "startedMonotonic", (int64_t) now_usec(CLOCK_MONOTONIC));
        vm->restarts = (unsigned) json_get_int(state, "restarts", 0);
        vm->accel = vm_accel_from_string(json_get_string(state, "accelerator"));
        if ((int) vm->accel < 0)
                vm->accel = VM_ACCEL_TCG;
        strv_free(vm->argv);
        vm->argv = NULL;
        if (json_object_object_get_ex(state, "argv", &argv) && json_object_is_type(argv, json_type_array))
                for (size_t i = 0; i < json_object_array_length(argv); i++)
                        (void) strv_extend(&vm->argv, json_object_get_string(json_object_array_get_idx(argv, i)));
        vm_spec_free(vm->running_spec);
        vm->running_spec = TAKE_PTR(spec);
        restart_tracker_reset(&vm->tracker);
        vm->stop_requested = vm->restart_requested = false;
        vm->start_done = true;

        r = sd_event_add_io(vm->ctx->event, &vm->process_source, pidfd, EPOLLIN, vm_on_pidfd, vm);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(vm->process_source, "vm-adopted-process");
        r = sd_event_source_set_priority(vm->process_source, VM_PROCESS_EVENT_PRIORITY);
        if (r < 0) {
                vm->process_source = sd_event_source_disable_unref(vm->process_source);
                return r;
        }
        vm->pidfd = TAKE_FD(pidfd);

        r = vm_connect_qmp(vm, -EBADF);
        if (r < 0)
                log_vm(vm, LOG_WARNING, r, "Failed to reconnect to QMP of adopted guest %s: %m", vm->name);
        r = vm_console_resume(vm, state);
        if (r < 0)
                log_vm(vm, LOG_NOTICE, r, "The console of adopted guest %s cannot be reopened (%m); it is not kept "
                       "until its next boot.", vm->name);
        r = vm_connect_agent(vm);
        if (r < 0)
                log_vm(vm, LOG_WARNING, r, "Failed to set up the guest agent client of %s: %m", vm->name);
        /* Write it again: the state may have come from /proc because the file was damaged or missing. */
        r = vm_write_state_file(vm);
        if (r < 0)
                log_vm(vm, LOG_WARNING, r, "Failed to write the state file of guest %s: %m", vm->name);

        log_vm_id(vm, LOG_INFO, 0, MESSAGE_ID_VM_ADOPTED, "Re-adopted running guest %s (pid %i).", vm->name,
                  (int) vm->pid);
        vm_set_state(vm, VM_STATE_RUNNING, "re-adopted after daemon restart");
        return 0;
}
