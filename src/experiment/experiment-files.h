/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* File helpers of the experiment store (internal to src/experiment): every file is named relative to a directory
 * fd and opened with O_NOFOLLOW. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"

/* write() until done (EINTR retried); a short write is followed by another, which then says why (-ENOSPC, …). */
int experiment_write_all(int fd, const char *data, size_t size);
/* Replaces dir/name with data: temporary file (O_EXCL), fsync(), rename(), fsync() of the directory. */
int experiment_write_atomic_at(int dir_fd, const char *name, const char *data, size_t size);
/* The same with o serialized (pretty); -EMSGSIZE over EXPERIMENT_DOCUMENT_MAX. */
int experiment_write_json_at(int dir_fd, const char *name, json_object *o);
/* Parses exactly buf[0..len) as one JSON object: strict, UTF-8 checked, no NUL, depth EXPERIMENT_JSON_DEPTH;
 * -EBADMSG otherwise. */
int experiment_parse_object(const char *buf, size_t len, json_object **ret);
/* Reads dir/name (a regular file of at most max bytes: -EFBIG otherwise) and parses it with experiment_parse_object(). */
int experiment_read_json_at(int dir_fd, const char *name, size_t max, json_object **ret);
/* The sizes of the regular files in a directory, hidden ones included. */
uint64_t experiment_dir_bytes(int dir_fd);
/* Removes parent/name: the names in it (links themselves, never their targets), the directory, then fsync()s
 * parent. A name that is not a directory (a symbolic link) is removed itself. 0 when it is not there. */
int experiment_remove_dir(int parent_fd, const char *name);
/* False when a number in o (at any depth; o as parsed by experiment_parse_object(), so the depth is bounded) is
 * NaN or infinite: json-c writes those as bare words that are not JSON. */
bool experiment_json_is_finite(json_object *o);
