/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sched.h>
#include <sys/types.h>

#include "basic/macro.h"

/* Finds an executable: a path containing '/' is checked as is, a bare name is searched in $PATH.
 * -ENOENT when not found, -EACCES when found but not executable. */
int find_executable(const char *name, char **ret_path);

#define PROCESS_SPAWN_MAX_FDS 8

/* Forks and executes path with argv in a new session (its own process group), stdin on /dev/null,
 * stdout and stderr on out_fd, the signal mask and dispositions reset, every fd closed except the n_pass_fds
 * (at most PROCESS_SPAWN_MAX_FDS) in pass_fds, which the child gets as fds 3, 4, … in that order, without
 * FD_CLOEXEC. With affinity (not NULL) the child sets its CPU affinity to it before execv, so that no thread of
 * the program ever runs elsewhere; when the kernel refuses it, the child writes PROCESS_SPAWN_AFFINITY_FAILED and
 * the errno to out_fd and exits with PROCESS_SPAWN_EXIT_AFFINITY, without executing path.
 * Returns the pid and a pidfd for it. */
#define PROCESS_SPAWN_EXIT_AFFINITY 125
#define PROCESS_SPAWN_AFFINITY_FAILED "memvisord: cannot set the CPU affinity before executing QEMU"
int process_spawn(const char *path, char *const *argv, int out_fd, const int *pass_fds, size_t n_pass_fds,
                  const cpu_set_t *affinity, pid_t *ret_pid, int *ret_pidfd);

/* Reads field 22 (starttime, in clock ticks since boot) of /proc/PID/stat under proc_root ("/proc" normally).
 * Together with the pid it names one process for its whole life, so a reused pid is told apart. */
int process_get_starttime(const char *proc_root, pid_t pid, uint64_t *ret);
/* Field 3 (state: R, S, D, Z, …) and field 22 (starttime) of /proc/PID/stat; either output may be NULL. */
int process_get_stat(const char *proc_root, pid_t pid, char *ret_state, uint64_t *ret_starttime);

/* Opens a pidfd for pid and checks that the process still has the given start time (the pidfd then pins
 * that very process). -ESRCH when it is gone, a zombie, or the pid was reused. */
int process_adopt(pid_t pid, uint64_t starttime, int *ret_pidfd);

int pidfd_send_sig(int pidfd, int sig);
