/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/strv.h"
#include "vm/vm-store.h"

void vm_store_set_done(VmStoreSet *set) {
        for (size_t i = 0; i < set->n_files; i++) {
                free(set->files[i].path);
                vm_spec_free(set->files[i].spec);
                free(set->files[i].message);
        }
        set->files = mfree(set->files);
        set->n_files = 0;
}

static int vm_file_filter(const struct dirent *de) {
        size_t l = strlen(de->d_name);

        return de->d_name[0] != '.' && l > 3 && streq(de->d_name + l - 3, ".vm");
}

const char *vm_store_untrusted_reason(const struct stat *st, gid_t admin_gid, long *ret_id) {
        if (st->st_uid != 0 && st->st_uid != geteuid()) {
                *ret_id = (long) st->st_uid;
                return "is owned by uid %ld, not by root";
        }
        if (st->st_mode & S_IWOTH) {
                *ret_id = (long) (st->st_mode & 07777);
                return "is writable by everyone (mode %04lo)";
        }
        if ((st->st_mode & S_IWGRP) && st->st_gid != 0 && st->st_gid != admin_gid) {
                *ret_id = (long) st->st_gid;
                return "is writable by group %ld, which is neither root's nor AdminGroup=";
        }
        return NULL;
}

/* 0 when path is trusted; else logs why not and returns -EPERM (or the lstat error), with *ret_message. */
static int check_trusted(const char *path, bool directory, gid_t admin_gid, char **ret_message) {
        const char *why;
        struct stat st;
        long id = 0;
        int r;

        if (lstat(path, &st) < 0) {
                r = -errno;
                if (asprintf(ret_message, "Failed to check %s, not loading it: %s", path, strerror(-r)) < 0)
                        return log_oom();
                return log_warning_errno(r, "Failed to check %s, not loading it: %m", path);
        }
        if (directory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
                if (asprintf(ret_message, "%s is not a regular %s (symbolic links are not followed), not loading %s.",
                             path, directory ? "directory" : "file",
                             directory ? "the guest definitions in it" : "it") < 0)
                        return log_oom();
                return log_struct(LOG_ERR, -EPERM, STRV(MESSAGE_ID_VM_DEFINITION_INVALID), "%s", *ret_message);
        }
        why = vm_store_untrusted_reason(&st, admin_gid, &id);
        if (why) {
                _cleanup_free_ char *reason = NULL;

                if (asprintf(&reason, why, id) < 0 ||
                    asprintf(ret_message, "%s %s: it could change what runs as root; not loading %s.", path, reason,
                             directory ? "the guest definitions in it" : "it") < 0)
                        return log_oom();
                return log_struct(LOG_ERR, -EPERM, STRV(MESSAGE_ID_VM_DEFINITION_INVALID), "%s", *ret_message);
        }
        return 0;
}

static int load_file(VmStoreFile *f, int dir_error, const char *dir_message, gid_t admin_gid) {
        VmSpecError e = {};
        int r;

        if (dir_error < 0) {
                f->error = dir_error;
                return free_and_strdup(&f->message, dir_message);
        }
        r = check_trusted(f->path, false, admin_gid, &f->message);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                f->error = r;
                return 0;
        }
        r = vm_spec_parse_file(f->path, &f->spec, &e);
        if (r == -ENOMEM) {
                vm_spec_error_done(&e);
                return r;
        }
        if (r < 0) {
                log_struct(LOG_ERR, r, STRV(MESSAGE_ID_VM_DEFINITION_INVALID),
                           "Invalid guest definition, not loaded: %s", e.message ?: strerror(-r));
                f->error = r;
                f->message = e.message ? TAKE_PTR(e.message) : strdup(strerror(-r));
                vm_spec_error_done(&e);
                return f->message ? 0 : -ENOMEM;
        }
        return 0;
}

int vm_store_load(const char *dir, gid_t admin_gid, VmStoreSet *ret) {
        _cleanup_(vm_store_set_done) VmStoreSet set = {};
        _cleanup_free_ char *dir_message = NULL;
        struct dirent **list = NULL;
        int n, r = 0, dir_error;

        n = scandir(dir, &list, vm_file_filter, alphasort);
        if (n < 0) {
                if (errno == ENOENT) {
                        *ret = (VmStoreSet) {};
                        return 0;
                }
                return log_warning_errno(errno, "Failed to read %s, ignoring: %m", dir);
        }
        dir_error = check_trusted(dir, true, admin_gid, &dir_message);
        if (dir_error == -ENOMEM)
                r = dir_error;

        set.files = n > 0 ? calloc(n, sizeof(VmStoreFile)) : NULL;
        if (n > 0 && !set.files)
                r = -ENOMEM;
        for (int i = 0; i < n; i++) {
                if (r >= 0) {
                        VmStoreFile *f = &set.files[set.n_files++];

                        f->path = path_join(dir, list[i]->d_name);
                        r = f->path ? load_file(f, dir_error, dir_message, admin_gid) : -ENOMEM;
                }
                free(list[i]);
        }
        free(list);
        if (r < 0)
                return log_oom();

        *ret = set;
        set = (VmStoreSet) {};
        return 0;
}

int vm_store_save(const char *dir, const VmSpec *spec) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        if (asprintf(&path, "%s/%s.vm", dir, spec->name) < 0)
                return -ENOMEM;
        r = vm_spec_to_ini(spec, &text);
        if (r < 0)
                return r;
        r = write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0)
                return log_error_errno(r, "Failed to save definition of guest %s to %s: %m", spec->name, path);
        return 0;
}

static int vm_tmp_filter(const struct dirent *de) {
        const char *t = strstr(de->d_name, ".vm.tmp.");

        /* NAME.vm.tmp.PID, as write_file_atomic() names its temporary file. */
        return de->d_name[0] != '.' && t && t[8] && strspn(t + 8, "0123456789") == strlen(t + 8);
}

int vm_store_remove_leftovers(const char *dir) {
        struct dirent **list = NULL;
        int n, removed = 0;

        n = scandir(dir, &list, vm_tmp_filter, alphasort);
        if (n < 0)
                return errno == ENOENT ? 0 : -errno;
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *path = path_join(dir, list[i]->d_name);

                if (path && unlink(path) >= 0) {
                        log_notice("Removed %s, left over from a save that was interrupted.", path);
                        removed++;
                }
                free(list[i]);
        }
        free(list);
        return removed;
}

int vm_store_remove(const char *dir, const char *name) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/%s.vm", dir, name) < 0)
                return -ENOMEM;
        if (unlink(path) < 0 && errno != ENOENT)
                return log_error_errno(errno, "Failed to remove %s: %m", path);
        return 0;
}
