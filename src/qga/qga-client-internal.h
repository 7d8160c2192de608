/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* For the unit tests and the fuzz target only: not part of the API the daemon uses. */

#include "qga/qga-client.h"

/* Like qga_client_new(), on a socket that is already connected (a socketpair), which it takes over. Such a client
 * has no path: after a disconnect it stays ABSENT for good. */
int qga_client_new_fd(QgaClient **ret, sd_event *event, int fd);

/* Shorter sync timeout and retry interval (0 keeps the default), so tests need not wait seconds. */
void qga_client_set_timeouts(QgaClient *c, uint64_t sync_usec, uint64_t retry_usec, uint64_t retry_max_usec);

/* Makes the ids deterministic: the next sync or command gets id, the one after id + 1, and so on (instead of
 * counting on from a random start), so a fuzz input can answer the sync. id must be > 0. */
void qga_client_set_next_id(QgaClient *c, uint64_t id);

/* guest-info's "return" (untrusted) → the version (NULL when missing or not printable, at most 128 bytes) and the
 * enabled commands: sorted, without duplicates, names of [A-Za-z0-9._-] only (others are skipped), at most 1024;
 * never NULL. -EBADMSG when it is not an object with a supported_commands array. */
int qga_parse_info(json_object *result, char **ret_version, char ***ret_commands);
