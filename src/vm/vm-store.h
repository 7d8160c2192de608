/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Guest definitions on disk: the .vm files of a directory (VMDirectory=, read-only for the daemon, or
 * STATE_DIR/vms where DefineVM saves them), loaded under the StrictModes rules, and DefineVM's files saved and
 * removed atomically.
 *
 * StrictModes, as sshd has them: a definition runs its Emulator= as root, so its file and directory must be
 * owned by root (or the daemon's user) and writable by nobody else but the group of root or AdminGroup=; a
 * symbolic link is not followed. An untrusted file is not loaded, and neither is any file of an untrusted
 * directory. Every file that is not loaded is logged (MESSAGE_ID_VM_DEFINITION_INVALID), with the place
 * ("FILE:LINE: reason") when it did not parse. */

#include <sys/stat.h>
#include <sys/types.h>

#include "vm/vm-spec.h"

#define MESSAGE_ID_VM_DEFINITION_INVALID "MESSAGE_ID=3a6e2f1b9c0d4e8f8b7a6c5d4e3f2a17"

typedef struct VmStoreFile {
        char *path;                     /* DIR/NAME.vm */
        VmSpec *spec;                   /* NULL: the file is there but was not loaded */
        int error;                      /* why not (negative errno; -EPERM: not trusted), else 0 */
        char *message;                  /* why not, in words ("web.vm:3: Invalid value …"), else NULL */
} VmStoreFile;

/* The *.vm files of a directory (no hidden ones), sorted by file name. */
typedef struct VmStoreSet {
        VmStoreFile *files;
        size_t n_files;
} VmStoreSet;

void vm_store_set_done(VmStoreSet *set);

/* Loads every DIR/ *.vm into *ret (empty when DIR does not exist); files that do not parse or are not trusted
 * are in it without a spec. admin_gid: AdminGroup=, (gid_t) -1 for none. Fails only when DIR cannot be read
 * (logged) or memory runs out. */
int vm_store_load(const char *dir, gid_t admin_gid, VmStoreSet *ret);

/* The StrictModes verdict on a file or directory already stat()ed: NULL when trusted, else why not, a format
 * with one %ld (*ret_id: the uid, gid or mode it names). */
const char *vm_store_untrusted_reason(const struct stat *st, gid_t admin_gid, long *ret_id);

/* Writes spec as DIR/NAME.vm (canonical INI, mode 0600, so that the loader trusts it) through a temporary file
 * and a rename: the old definition or the new one is there, never a partial one. Logs a failure. */
int vm_store_save(const char *dir, const VmSpec *spec);
/* Removes the temporary files (NAME.vm.tmp.PID) that a save interrupted by a crash left in DIR (DefineVM's
 * directory, never VMDirectory=); logs each. Returns how many went, or -errno when DIR cannot be read. */
int vm_store_remove_leftovers(const char *dir);
/* Removes DIR/NAME.vm; one that is not there is no error. Logs a failure. */
int vm_store_remove(const char *dir, const char *name);
