/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/resource.h>

/* Raises the soft RLIMIT_NOFILE to want (capped at the hard limit; never lowers it) and remembers the
 * original soft limit for rlimit_nofile_restore(). Returns the soft limit now in force, or a negative errno. */
long rlimit_nofile_bump(rlim_t want);
/* In a child between fork and exec (async-signal-safe): puts back the soft limit rlimit_nofile_bump() found,
 * so that programs the daemon starts get what the service manager gave, not the daemon's raised limit.
 * Nothing happens when it was never raised. */
void rlimit_nofile_restore(void);
