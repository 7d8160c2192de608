/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <stdbool.h>

#include "basic/rlimit-util.h"

static struct rlimit original;
static bool raised;

long rlimit_nofile_bump(rlim_t want) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        if (!raised)
                original = rl;
        if (want > rl.rlim_max)
                want = rl.rlim_max;
        if (want <= rl.rlim_cur)
                return (long) rl.rlim_cur;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        raised = true;
        return (long) rl.rlim_cur;
}

void rlimit_nofile_restore(void) {
        if (raised)
                (void) setrlimit(RLIMIT_NOFILE, &original);
}
