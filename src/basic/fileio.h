/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

#include "macro.h"

/* Reads a whole file (at most max_size bytes; larger → -EFBIG) into a NUL-terminated buffer. */
int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size);

/* Writes data to path atomically (temporary file in the same directory + rename), with mode, and fsync()s it
 * before the rename so the new content survives a crash of the machine. */
int write_file_atomic(const char *path, const char *data, size_t size, mode_t mode);
/* The same without fsync(): for runtime state on tmpfs that a reboot discards anyway, where the rename
 * alone makes it crash-safe for the daemon. */
int write_file_atomic_nosync(const char *path, const char *data, size_t size, mode_t mode);

/* mkdir -p with mode for the directories it creates. */
int mkdir_p(const char *path, mode_t mode);

/* Joins a and b with a single '/'. */
char *path_join(const char *a, const char *b);
