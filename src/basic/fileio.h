/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

#include "basic/macro.h"

/* Reads a whole file (at most max_size bytes; larger → -EFBIG) into a NUL-terminated buffer. */
int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size);

/* The same relative to dir_fd, never through a symbolic link (O_NOFOLLOW; not a regular file → -EBADFD). */
int read_full_file_at(int dir_fd, const char *name, size_t max_size, char **ret, size_t *ret_size);

/* Writes data to dir_fd/name atomically: a temporary file ".NAME.tmp.PID" in the same directory, fsync()ed,
 * renamed over name, then the directory fsync()ed. On failure (a full disk: -ENOSPC) the temporary file is
 * removed and name keeps its old content. */
int write_file_atomic_at(int dir_fd, const char *name, const char *data, size_t size, mode_t mode);

/* Writes data to path atomically (temporary file in the same directory + rename), with mode, and fsync()s it
 * before the rename so the new content survives a crash of the machine. */
int write_file_atomic(const char *path, const char *data, size_t size, mode_t mode);
/* The same without fsync(): for runtime state on tmpfs that a reboot discards anyway, where the rename
 * alone makes it crash-safe for the daemon. */
int write_file_atomic_nosync(const char *path, const char *data, size_t size, mode_t mode);

/* mkdir -p with mode for the directories it creates. */
int mkdir_p(const char *path, mode_t mode);

/* Takes an exclusive flock(2) on DIR/NAME (created with mode 0644, never through a symlink) and writes our
 * pid into it; the lock lasts as long as the returned fd (the kernel drops it when the process dies, even by
 * SIGKILL). -EBUSY when another process holds it: *ret_holder (if not NULL) is then the pid it wrote, or 0. */
int lock_directory(const char *dir, const char *name, int *ret_fd, pid_t *ret_holder);

/* Joins a and b with a single '/'. */
char *path_join(const char *a, const char *b);
