/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A guest's serial console, kept per boot (console-history.h). QEMU writes into a pipe the daemon made, never
 * into a file: the daemon reads it on the loop and appends to CONSOLE_DIR/NAME/boot-N.log, bounded, so nothing
 * QEMU opens can truncate an earlier boot, and a guest cannot write without limit. QEMU also inherits the pipe's
 * read end (which it never reads) so that the pipe outlives a daemon restart: a re-adopted guest's console is
 * reopened through /proc/PID/fd/N (the pipe's inode is in the state file) and appended to the same boot.
 *
 * A panic (QMP GUEST_PANICKED from pvpanic, or the kernel's "Kernel panic - not syncing" line) logs the last
 * lines of the boot to the journal with VM=NAME, once per boot, a second after it is seen (the panic message
 * comes with a backtrace) or when QEMU ends, whichever is first. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/strv.h"
#include "vm/vm-internal.h"

#define CONSOLE_READ_CHUNK (64U * 1024)
/* Bounds of the work per wakeup and of the drain when QEMU ended (the pipe holds at most its capacity). */
#define CONSOLE_READS_PER_WAKEUP 8U
#define CONSOLE_DRAIN_MAX (4U * 1024 * 1024)
#define CONSOLE_PIPE_SIZE (256 * 1024)
#define CONSOLE_PANIC_DELAY_USEC (1 * USEC_PER_SEC)
#define CONSOLE_PANIC_LINES 20U
#define CONSOLE_PANIC_TAIL_BYTES (64U * 1024)

int vm_context_set_console(VmContext *ctx, const char *dir, unsigned keep_boots, uint64_t max_boot_size) {
        _cleanup_free_ char *d = NULL;
        int fd, r;

        ctx->console_keep_boots = MIN(MAX(keep_boots, 1U), CONSOLE_KEEP_BOOTS_MAX);
        ctx->console_max_boot_size = MIN(MAX(max_boot_size, CONSOLE_BOOT_SIZE_MIN), CONSOLE_BOOT_SIZE_MAX);
        if (!dir || streq_ptr(dir, ctx->console_dir))
                return 0;

        d = strdup(dir);
        if (!d)
                return -ENOMEM;
        r = mkdir_p(d, 0700);
        if (r < 0)
                return r;
        fd = open(d, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        safe_close(ctx->console_fd);
        ctx->console_fd = fd;
        free(ctx->console_dir);
        ctx->console_dir = TAKE_PTR(d);
        return 0;
}

int vm_console_dir_open(VmContext *ctx, const char *name, bool create) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (ctx->console_fd < 0)
                return -ENOTCONN;       /* no directory named for console histories */
        if (create && mkdirat(ctx->console_fd, name, 0700) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(ctx->console_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_uid != geteuid())
                return -EPERM;
        return TAKE_FD(fd);
}

int vm_console_remove(VmContext *ctx, const char *name) {
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = vm_console_dir_open(ctx, name, false);
        if (fd == -ENOENT)
                return 0;
        if (fd < 0)
                return fd;
        r = console_history_clear(fd);
        if (r < 0)
                return r;
        if (unlinkat(ctx->console_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

/* vm->console_path: the current boot's file. */
static int vm_console_set_path(Vm *vm) {
        free(vm->console_path);
        if (asprintf(&vm->console_path, "%s/%s/boot-%" PRIu64 ".log", vm->ctx->console_dir, vm->name,
                     vm->console_boot) < 0) {
                vm->console_path = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* ---- reading the pipe ------------------------------------------------------------------------- */

static void vm_console_note_panic(Vm *vm, const char *how);

/* Reads what is in the pipe, at most max_reads chunks; 1 at EOF (QEMU and its copies of the pipe are gone). */
static int vm_console_pump(Vm *vm, unsigned max_reads) {
        char buf[CONSOLE_READ_CHUNK];

        for (unsigned i = 0; i < max_reads; i++) {
                ssize_t n = read(vm->console_pipe, buf, sizeof(buf));
                ssize_t k;

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return errno == EAGAIN ? 0 : -errno;
                }
                if (n == 0)
                        return 1;
                k = console_writer_write(&vm->console, buf, (size_t) n);
                if (k < 0 && !vm->console_write_failed) {
                        vm->console_write_failed = true;
                        log_vm(vm, LOG_WARNING, (int) k, "Failed to write the console of guest %s (boot %" PRIu64
                               "), dropping its output: %m", vm->name, vm->console.boot);
                }
                if (vm->console.panic_seen)
                        vm_console_note_panic(vm, "its console shows a kernel panic");
        }
        return 0;
}

static int vm_console_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Vm *vm = userdata;
        int r;

        r = vm_console_pump(vm, CONSOLE_READS_PER_WAKEUP);
        if (r != 0) {
                /* EOF or an error: nothing more will come this way. */
                if (r < 0)
                        log_vm(vm, LOG_WARNING, r, "Failed to read the console of guest %s: %m", vm->name);
                vm->console_source = sd_event_source_disable_unref(vm->console_source);
        }
        return 0;
}

static int vm_console_watch(Vm *vm) {
        int r;

        r = sd_event_add_io(vm->ctx->event, &vm->console_source, vm->console_pipe, EPOLLIN, vm_console_on_io, vm);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(vm->console_source, "vm-console");
        return 0;
}

/* ---- panics ----------------------------------------------------------------------------------- */

static char *lines_join(char *const *lines) {
        size_t len = 1;
        char *s, *p;

        for (char *const *l = lines; l && *l; l++)
                len += strlen(*l) + 1;
        s = p = malloc(len);
        if (!s)
                return NULL;
        for (char *const *l = lines; l && *l; l++)
                p += sprintf(p, "%s%s", l == lines ? "" : "\n", *l);
        *p = 0;
        return s;
}

static void vm_console_log_panic(Vm *vm) {
        _cleanup_(console_chunk_done) ConsoleChunk c = {};
        _cleanup_(strv_freep) char **lines = NULL;
        _cleanup_free_ char *text = NULL, *field = NULL;
        _cleanup_close_ int dir_fd = -EBADF;
        int r;

        vm->console_panic_timer = sd_event_source_disable_unref(vm->console_panic_timer);
        if (vm->console_panic_logged || vm->console_boot == 0)
                return;
        vm->console_panic_logged = true;

        dir_fd = vm_console_dir_open(vm->ctx, vm->name, false);
        r = dir_fd < 0 ? dir_fd
                       : console_boot_read(dir_fd, vm->console_boot, UINT64_MAX, 0, CONSOLE_PANIC_TAIL_BYTES, &c);
        if (r >= 0)
                r = console_panic_lines(c.data, c.size, CONSOLE_PANIC_LINES, &lines);
        if (r < 0) {
                log_vm_id(vm, LOG_ERR, r, MESSAGE_ID_VM_PANICKED, "Guest %s panicked (%s); its console (boot %" PRIu64
                          ") cannot be read: %m", vm->name, strna(vm->console_panic_how), vm->console_boot);
                return;
        }
        strv_free(vm->console_panic_lines);
        vm->console_panic_lines = strv_copy(lines);
        text = lines_join(lines);
        if (asprintf(&field, "CONSOLE_BOOT=%" PRIu64, vm->console_boot) < 0 || !text) {
                (void) log_oom();
                return;
        }
        log_struct(LOG_ERR, 0, STRV(vm->log_field, MESSAGE_ID_VM_PANICKED, field),
                   "Guest %s panicked (%s); the last lines of its console (boot %" PRIu64 "):\n%s", vm->name,
                   strna(vm->console_panic_how), vm->console_boot, text);
}

static int vm_console_on_panic_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        vm_console_log_panic(userdata);
        return 0;
}

static void vm_console_note_panic(Vm *vm, const char *how) {
        if (vm->console_panic_how || vm->console_boot == 0)
                return;
        vm->console_panic_how = how; /* a static string: nothing to allocate, so the panic is noted exactly once */
        if (sd_event_add_time_relative(vm->ctx->event, &vm->console_panic_timer, CLOCK_MONOTONIC,
                                       CONSOLE_PANIC_DELAY_USEC, 0, vm_console_on_panic_timer, vm) < 0) {
                vm_console_log_panic(vm);
                return;
        }
        (void) sd_event_source_set_description(vm->console_panic_timer, "vm-console-panic");
}

void vm_console_on_guest_panicked(Vm *vm) {
        vm_console_note_panic(vm, "QMP GUEST_PANICKED");
}

/* ---- the lifecycle ---------------------------------------------------------------------------- */

static void vm_console_reset(Vm *vm) {
        vm->console_source = sd_event_source_disable_unref(vm->console_source);
        vm->console_panic_timer = sd_event_source_disable_unref(vm->console_panic_timer);
        vm->console_pipe = safe_close(vm->console_pipe);
        console_writer_close(&vm->console);
        vm->console_pipe_ino = 0;
        vm->console_write_failed = false;
        vm->console_panic_logged = false;
        vm->console_panic_how = NULL;
        vm->console_panic_lines = strv_free(vm->console_panic_lines);
}

int vm_console_prepare(Vm *vm, int *ret_write_fd, int *ret_read_fd) {
        int fds[2];
        struct stat st;

        vm_console_reset(vm);
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        (void) fcntl(fds[0], F_SETPIPE_SZ, CONSOLE_PIPE_SIZE);
        if (fstat(fds[0], &st) < 0) {
                int r = -errno;
                safe_close(fds[0]);
                safe_close(fds[1]);
                return r;
        }
        vm->console_pipe_ino = (uint64_t) st.st_ino;
        /* QEMU's copy of the read end, so that the pipe outlives us: a dup, our own stays ours. */
        *ret_read_fd = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
        if (*ret_read_fd < 0) {
                int r = -errno;
                safe_close(fds[0]);
                safe_close(fds[1]);
                return r;
        }
        vm->console_pipe = fds[0];
        *ret_write_fd = fds[1];
        return 0;
}

int vm_console_begin(Vm *vm) {
        _cleanup_free_ char *previous = NULL;
        _cleanup_close_ int dir_fd = -EBADF;
        ConsoleBootHeader h = {
                .guest = vm->name,
                .realtime_usec = vm->started_realtime,
                .pid = vm->pid,
        };
        int r, k;

        if (vm->last_exit.valid) {
                if (vm->last_exit.shutdown_reason &&
                    asprintf(&previous, "%s (%s)", strna(vm->last_exit.description), vm->last_exit.shutdown_reason) < 0)
                        return -ENOMEM;
                h.previous_end = previous ?: vm->last_exit.description;
        }
        dir_fd = vm_console_dir_open(vm->ctx, vm->name, true);
        r = dir_fd < 0 ? dir_fd :
                console_writer_begin(&vm->console, dir_fd, vm->ctx->console_keep_boots,
                                     vm->ctx->console_max_boot_size, &h);
        if (r >= 0) {
                vm->console_boot = h.boot;
                r = vm_console_set_path(vm);
        }
        /* The pipe is read whatever happened to the file: QEMU holds its read end too and never sees EPIPE, so
         * a pipe nobody reads would stall the guest's serial port once full. Unkept, what comes is dropped. */
        k = vm_console_watch(vm);
        return r < 0 ? r : k;
}

int vm_console_resume(Vm *vm, json_object *state) {
        _cleanup_close_ int dir_fd = -EBADF, fd = -EBADF;
        int64_t qemu_fd = json_get_int(state, "consoleFd", -1);
        uint64_t ino = (uint64_t) json_get_int(state, "consoleInode", 0);
        char path[64];
        struct stat st;
        int r, k;

        vm_console_reset(vm);
        if (qemu_fd < 3 || qemu_fd > INT32_MAX || ino == 0)
                return -ENOENT;
        (void) snprintf(path, sizeof(path), "%s/%i/fd/%i", vm->ctx->proc_root, (int) vm->pid, (int) qemu_fd);
        fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        /* The very pipe it was given, not whatever has that number now. */
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISFIFO(st.st_mode) || (uint64_t) st.st_ino != ino)
                return -ESTALE;

        /* The pipe is ours again whatever happens to the file (see vm_console_begin()). */
        vm->console_pipe = TAKE_FD(fd);
        vm->console_pipe_ino = ino;
        dir_fd = vm_console_dir_open(vm->ctx, vm->name, false);
        r = dir_fd < 0 ? dir_fd : console_writer_resume(&vm->console, dir_fd, vm->ctx->console_max_boot_size);
        if (r >= 0) {
                vm->console_boot = vm->console.boot;
                r = vm_console_set_path(vm);
        }
        k = vm_console_watch(vm);
        return r < 0 ? r : k;
}

void vm_console_end(Vm *vm) {
        if (vm->console_pipe >= 0 && vm->console.fd >= 0)
                (void) vm_console_pump(vm, CONSOLE_DRAIN_MAX / CONSOLE_READ_CHUNK);
        if (vm->console_panic_how)
                vm_console_log_panic(vm);

        vm->last_exit.console_boot = vm->console_boot;
        vm->last_exit.panicked = !!vm->console_panic_how;
        vm->last_exit.panic_lines = TAKE_PTR(vm->console_panic_lines);
        vm_console_reset(vm);
}

void vm_console_free(Vm *vm) {
        vm_console_reset(vm);
}
