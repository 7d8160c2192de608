/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

/* Finds the process that holds the listening unix socket bound at socket_path (looked up in
 * PROC_ROOT/net/unix, then among the PROC_ROOT/PID/fd links): how a QEMU is found again when its runtime state
 * file is lost or damaged, since memvisord hands each QEMU the QMP socket it bound under the guest's runtime
 * directory. Processes in except (the caller itself) are skipped. 0 with *ret_pid, -ESRCH when no process
 * holds it (or nothing listens there), or another negative errno. */
int process_find_socket_holder(const char *proc_root, const char *socket_path, pid_t except, pid_t *ret_pid);
