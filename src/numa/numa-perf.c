/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <linux/perf_event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "numa/numa-perf.h"
#include "basic/parse.h"

struct NumaPerf {
        int *fds;               /* pairs: page fault, exit — per thread */
        size_t n_fds;
        char *reason;
};

int tracepoint_id(const char *root, const char *system, const char *name, uint64_t *ret) {
        static const char *const dirs[] = { "sys/kernel/tracing", "sys/kernel/debug/tracing" };
        int r = -ENOENT;

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *path = NULL, *text = NULL;

                if (asprintf(&path, "%s/%s/events/%s/%s/id", root, dirs[i], system, name) < 0)
                        return -ENOMEM;
                r = read_full_file(path, 64, &text, NULL);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                text[strcspn(text, "\n")] = 0;
                return parse_uint64(text, ret);
        }
        return r;
}

static int perf_open_tracepoint(uint64_t id, pid_t tid) {
        struct perf_event_attr attr = {
                .type = PERF_TYPE_TRACEPOINT,
                .size = sizeof(struct perf_event_attr),
                .config = id,
        };
        long fd;

        fd = syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
        return fd < 0 ? -errno : (int) fd;
}

static int perf_unavailable(NumaPerf *p, const char *fmt, ...) _printf_(2, 3);
static int perf_unavailable(NumaPerf *p, const char *fmt, ...) {
        va_list ap;
        int r;

        for (size_t i = 0; i < p->n_fds; i++)
                safe_close(p->fds[i]);
        p->n_fds = 0;
        va_start(ap, fmt);
        r = vasprintf(&p->reason, fmt, ap);
        va_end(ap);
        if (r < 0) {
                p->reason = NULL;
                return -ENOMEM;
        }
        return 0;
}

int numa_perf_open(const char *root, const pid_t *tids, size_t n_tids, NumaPerf **ret) {
        _cleanup_(numa_perf_freep) NumaPerf *p = NULL;
        uint64_t fault_id, exit_id;
        int r;

        p = calloc(1, sizeof(NumaPerf));
        if (!p)
                return -ENOMEM;

        if (n_tids == 0)
                r = perf_unavailable(p, "no vCPU threads known");
        else if ((r = tracepoint_id(root, "kvm", "kvm_page_fault", &fault_id)) < 0 ||
                 (r = tracepoint_id(root, "kvm", "kvm_exit", &exit_id)) < 0) {
                if (r == -ENOENT)
                        r = perf_unavailable(p, "tracefs with the kvm events is not mounted (neither "
                                             "/sys/kernel/tracing nor /sys/kernel/debug/tracing has "
                                             "events/kvm/kvm_page_fault and kvm_exit)");
                else
                        r = perf_unavailable(p, "cannot read the kvm tracepoint ids: %s", strerror(-r));
        } else {
                p->fds = calloc(n_tids * 2, sizeof(int));
                if (!p->fds)
                        return -ENOMEM;
                for (size_t i = 0; i < n_tids; i++) {
                        int fd;

                        fd = perf_open_tracepoint(fault_id, tids[i]);
                        if (fd < 0) {
                                r = perf_unavailable(p, "perf_event_open(kvm:kvm_page_fault) for thread %i: %s",
                                                     (int) tids[i], strerror(-fd));
                                break;
                        }
                        p->fds[p->n_fds++] = fd;
                        fd = perf_open_tracepoint(exit_id, tids[i]);
                        if (fd < 0) {
                                r = perf_unavailable(p, "perf_event_open(kvm:kvm_exit) for thread %i: %s",
                                                     (int) tids[i], strerror(-fd));
                                break;
                        }
                        p->fds[p->n_fds++] = fd;
                }
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

NumaPerf *numa_perf_free(NumaPerf *p) {
        if (!p)
                return NULL;
        for (size_t i = 0; i < p->n_fds; i++)
                safe_close(p->fds[i]);
        free(p->fds);
        free(p->reason);
        return mfree(p);
}

const char *numa_perf_unavailable_reason(const NumaPerf *p) {
        return p->reason;
}

int numa_perf_read(NumaPerf *p, uint64_t *ret_page_faults, uint64_t *ret_exits) {
        uint64_t sums[2] = {};

        if (p->reason)
                return -EOPNOTSUPP;
        for (size_t i = 0; i < p->n_fds; i++) {
                uint64_t v;
                ssize_t n = read(p->fds[i], &v, sizeof(v));
                if (n < 0)
                        return -errno;
                if (n != sizeof(v))
                        return -EIO;
                sums[i % 2] += v;
        }
        *ret_page_faults = sums[0];
        *ret_exits = sums[1];
        return 0;
}
