/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* /proc/PID/status: the memory lines of a process. Takes a path or a buffer. */

#include "basic/macro.h"

typedef struct ProcStatus {
        uint64_t vm_rss;        /* VmRSS, bytes */
        uint64_t vm_hwm;        /* VmHWM, bytes */
        uint64_t rss_anon;      /* RssAnon, bytes */
        uint64_t rss_file;      /* RssFile, bytes */
        uint64_t rss_shmem;     /* RssShmem, bytes */
        uint64_t vm_swap;       /* VmSwap, bytes */
        unsigned threads;       /* Threads */
} ProcStatus;

/* VmRSS is required (a kernel thread or a zombie has none → -ENODATA); a malformed memory line → -EINVAL. */
int proc_status_parse(const char *text, ProcStatus *ret);
/* A missing file (or a vanished process) → -ENOENT. */
int proc_status_read(const char *path, ProcStatus *ret);
