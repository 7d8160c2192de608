/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A guest's runtime directory RUNTIME_DIR/vms/NAME and its files (state, qmp.sock, console.log, qemu.log): opened
 * and removed relative to the directory, never through a symbolic link. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "vm/vm-internal.h"

/* ---- runtime directory ------------------------------------------------------------------------ */

/* Opens RUNTIME_DIR/vms/NAME (made first, mode 0700, if create and missing), never through a symbolic link: it
 * must be a real directory owned by our uid, which then gets mode 0700. Returns the fd; otherwise the error, and
 * in *ret_why (optional; free it) a sentence naming the directory and what is wrong with it: -ELOOP a symbolic
 * link, -ENOTDIR something else than a directory, -EPERM owned by another uid. */
int vm_run_dir_open(VmContext *ctx, const char *name, bool create, char **ret_why) {
        _cleanup_free_ char *path = path_join(ctx->vms_dir, name);
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        if (!path)
                return -ENOMEM;

        if (create && mkdirat(ctx->vms_fd, name, 0700) < 0 && errno != EEXIST) {
                r = -errno;
                if (ret_why && asprintf(ret_why, "cannot create %s: %s", path, strerror(-r)) < 0)
                        *ret_why = NULL;
                return r;
        }

        fd = openat(ctx->vms_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                /* Say why, from what is there (the link itself): a link, not a directory, someone else's
                 * (EACCES: without CAP_DAC_OVERRIDE we cannot even open another uid's 0700 directory). */
                if (fstatat(ctx->vms_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (ret_why && asprintf(ret_why, "cannot open %s: %s", path, strerror(-r)) < 0)
                                *ret_why = NULL;
                        return r;
                }
        } else if (fstat(fd, &st) < 0) {
                r = -errno;
                if (ret_why && asprintf(ret_why, "cannot stat %s: %s", path, strerror(-r)) < 0)
                        *ret_why = NULL;
                return r;
        }

        if (S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
                bool link = S_ISLNK(st.st_mode);

                if (ret_why && asprintf(ret_why, "%s %s", path,
                                        link ? "is a symbolic link; not following it" : "is not a directory") < 0)
                        *ret_why = NULL;
                return link ? -ELOOP : -ENOTDIR;
        }
        if (st.st_uid != geteuid()) {
                if (ret_why && asprintf(ret_why, "%s is owned by uid %u, not by memvisord (uid %u); not using it",
                                        path, (unsigned) st.st_uid, (unsigned) geteuid()) < 0)
                        *ret_why = NULL;
                return -EPERM;
        }
        if (fd < 0) {
                if (ret_why && asprintf(ret_why, "cannot open %s: %s", path, strerror(-r)) < 0)
                        *ret_why = NULL;
                return r;
        }
        if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0) {
                r = -errno;
                if (ret_why && asprintf(ret_why, "cannot make %s mode 0700: %s", path, strerror(-r)) < 0)
                        *ret_why = NULL;
                return r;
        }
        return TAKE_FD(fd);
}

/* Opens FILE in a guest's runtime directory for writing (O_APPEND), created with mode 0600 if missing, never
 * through a symbolic link, and only if it is a regular file of ours with no other name (a hard link would let
 * writes land elsewhere as a symbolic link would; a FIFO would block, a device would be written to). On
 * failure *ret_why (optional) says what is wrong with the file, or is NULL for a plain error. */
int vm_run_file_open(int dir_fd, const char *file, int *ret_fd, const char **ret_why) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int flags;

        if (ret_why)
                *ret_why = NULL;
        /* O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of blocking; cleared below. */
        fd = openat(dir_fd, file, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                    0600);
        if (fd < 0) {
                int r = -errno;

                if (ret_why && r == -ELOOP)
                        *ret_why = "it is a symbolic link; not following it";
                else if (ret_why && (r == -EISDIR || r == -ENXIO || r == -ENODEV))
                        *ret_why = "it is not a regular file";
                return r;
        }
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode)) {
                if (ret_why)
                        *ret_why = "it is not a regular file";
                return -EBADFD;
        }
        if (st.st_uid != geteuid()) {
                if (ret_why)
                        *ret_why = "it is owned by another user";
                return -EPERM;
        }
        if (st.st_nlink > 1) {
                if (ret_why)
                        *ret_why = "it has other hard links; not writing through them";
                return -EMLINK;
        }
        if ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600) < 0)
                return -errno;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int vm_remove_runtime_dir(VmContext *ctx, const char *name) {
        static const char *const files[] = { "state", "qmp.sock", "qga.sock", "console.log", "qemu.log" };
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        int r;

        fd = openat(ctx->vms_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                if (r == -ENOENT)
                        return 0;
                if (fstatat(ctx->vms_fd, name, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISLNK(st.st_mode)) {
                        /* unlinkat() without AT_REMOVEDIR removes the link itself, whatever it points to. */
                        if (unlinkat(ctx->vms_fd, name, 0) < 0 && errno != ENOENT)
                                return -errno;
                        return 1;
                }
                return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                if (unlinkat(fd, files[i], 0) < 0 && errno != ENOENT)
                        log_debug_errno(errno, "Failed to remove %s/%s/%s, ignoring: %m", ctx->vms_dir, name,
                                        files[i]);
        /* AT_REMOVEDIR fails on a symbolic link put in the directory's place meanwhile (ENOTDIR). */
        if (unlinkat(ctx->vms_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

/* ---- runtime state (for re-adoption) ---------------------------------------------------------- */

/* Replaces DIR/state atomically: a new file (O_EXCL, never through a link) renamed over the old name, which
 * replaces whatever has that name, a link included, without following it. */
static int vm_write_state_at(int dir_fd, const char *text, size_t len) {
        char tmp[64];
        int fd, r = 0;

        (void) snprintf(tmp, sizeof(tmp), ".state.%i.tmp", (int) getpid());
        (void) unlinkat(dir_fd, tmp, 0);        /* a leftover of ours (a crash between write and rename) */
        fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        for (size_t done = 0; done < len;) {
                ssize_t n = write(fd, text + done, len - done);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                done += (size_t) n;
        }
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && renameat(dir_fd, tmp, dir_fd, "state") < 0)
                r = -errno;
        if (r < 0)
                (void) unlinkat(dir_fd, tmp, 0);
        return r;
}

int vm_write_state_file(Vm *vm) {
        _cleanup_json_ json_object *o = json_object_new_object(), *argv = json_object_new_array(), *def = NULL;
        _cleanup_close_ int dir_fd = -EBADF;
        const char *text;
        size_t len;
        int r;

        if (!o || !argv)
                return -ENOMEM;
        for (char **a = vm->argv; a && *a; a++)
                if (json_object_array_add(argv, json_object_new_string(*a)) < 0)
                        return -ENOMEM;
        r = vm_spec_to_json(vm->running_spec, &def);
        if (r < 0)
                return r;

        if ((r = json_add_string(o, "name", vm->name)) < 0 || (r = json_add_int(o, "pid", vm->pid)) < 0 ||
            (r = json_add_uint(o, "starttime", vm->starttime)) < 0 ||
            (r = json_add_uint(o, "startedRealtime", vm->started_realtime)) < 0 ||
            (r = json_add_uint(o, "startedMonotonic", vm->started_monotonic)) < 0 ||
            (r = json_add_uint(o, "restarts", vm->restarts)) < 0 ||
            (r = json_add_string(o, "accelerator", vm_accel_to_string(vm->accel))) < 0 ||
            (r = json_add_string(o, "source", vm->source)) < 0 ||
            (vm->console_pipe_ino > 0 && ((r = json_add_int(o, "consoleFd", VM_CONSOLE_QEMU_READ_FD)) < 0 ||
                                          (r = json_add_uint(o, "consoleInode", vm->console_pipe_ino)) < 0)) ||
            (r = json_add(o, "argv", TAKE_PTR(argv))) < 0 || (r = json_add(o, "definition", TAKE_PTR(def))) < 0)
                return r;

        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        len = strlen(text);

        dir_fd = vm_run_dir_open(vm->ctx, vm->name, /* create= */ false, NULL);
        if (dir_fd < 0)
                return dir_fd;
        return vm_write_state_at(dir_fd, text, len);
}

void vm_cleanup_runtime(VmContext *ctx, const char *name) {
        _cleanup_close_ int fd = -EBADF;

        /* Only in a real directory: a symbolic link in its place is not followed, its target not touched. */
        fd = openat(ctx->vms_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return;
        (void) unlinkat(fd, "state", 0);
        (void) unlinkat(fd, "qmp.sock", 0);
        (void) unlinkat(fd, "qga.sock", 0);
}

int vm_state_file_read(const char *path, json_object **ret) {
        _cleanup_free_ char *buf = NULL;
        json_object *o;
        int r;

        r = read_full_file(path, 1024 * 1024, &buf, NULL);
        if (r < 0)
                return r;
        o = json_tokener_parse(buf);
        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}
