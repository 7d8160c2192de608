/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/prctl.h>

#include "daemon/caps.h"
#include "basic/log.h"

const CapabilityNeed caps_needed[] = {
        { CAP_SYS_NICE, "set the CPU affinity of QEMU's vCPU threads and move another process's pages "
                        "between NUMA nodes with migrate_pages(2)" },
        { CAP_SYS_PTRACE, "read /proc/PID/numa_maps and per-thread stat of QEMU processes run under another uid" },
        { CAP_KILL, "stop or kill QEMU processes run under another uid" },
        { CAP_SYS_RESOURCE, "raise RLIMIT_MEMLOCK for guests with locked or preallocated memory" },
        { CAP_IPC_LOCK, "let QEMU lock guest memory and use hugetlbfs-backed memory" },
        { CAP_NET_ADMIN, "let QEMU attach tap devices (/dev/net/tun, vhost-net)" },
        { CAP_CHOWN, "give the varlink socket to AdminGroup=" },
        { CAP_PERFMON, "count kvm tracepoints (kvm:kvm_page_fault, kvm:kvm_exit) for a guest's vCPU threads" },
};
const size_t caps_needed_count = ELEMENTSOF(caps_needed);

static bool cap_needed(cap_value_t c) {
        for (size_t i = 0; i < caps_needed_count; i++)
                if (caps_needed[i].cap == c)
                        return true;
        return false;
}

DEFINE_TRIVIAL_CLEANUP_FUNC_VOID(cap_t, cap_free);

int caps_drop_unneeded(void) {
        _cleanup_(cap_freep) cap_t caps = NULL;
        cap_value_t last = (cap_value_t) cap_max_bits() - 1;
        cap_flag_value_t setpcap = CAP_CLEAR;
        unsigned dropped = 0;

        caps = cap_get_proc();
        if (!caps)
                return -errno;

        if (cap_get_flag(caps, CAP_SETPCAP, CAP_EFFECTIVE, &setpcap) < 0)
                return -errno;
        if (setpcap != CAP_SET) {
                log_debug("No CAP_SETPCAP (not running as root?), leaving capabilities alone.");
                return 0;
        }

        for (cap_value_t c = 0; c <= last; c++) {
                if (cap_needed(c))
                        continue;
                if (prctl(PR_CAPBSET_READ, (unsigned long) c) <= 0)
                        continue;
                if (cap_drop_bound(c) < 0)
                        return log_error_errno(errno, "Failed to drop capability %s from the bounding set: %m",
                                               cap_to_name(c));
                dropped++;
        }

        if (cap_clear(caps) < 0)
                return -errno;
        for (size_t i = 0; i < caps_needed_count; i++) {
                cap_value_t c = caps_needed[i].cap;
                if (c > last)
                        continue;
                if (cap_set_flag(caps, CAP_EFFECTIVE, 1, &c, CAP_SET) < 0 ||
                    cap_set_flag(caps, CAP_PERMITTED, 1, &c, CAP_SET) < 0)
                        return -errno;
        }
        /* Only what we had before can be kept; capabilities we lacked stay absent. */
        {
                _cleanup_(cap_freep) cap_t cur = cap_get_proc();
                if (!cur)
                        return -errno;
                for (size_t i = 0; i < caps_needed_count; i++) {
                        cap_value_t c = caps_needed[i].cap;
                        cap_flag_value_t v = CAP_CLEAR;
                        if (c > last || cap_get_flag(cur, c, CAP_PERMITTED, &v) < 0 || v == CAP_SET)
                                continue;
                        (void) cap_set_flag(caps, CAP_EFFECTIVE, 1, &c, CAP_CLEAR);
                        (void) cap_set_flag(caps, CAP_PERMITTED, 1, &c, CAP_CLEAR);
                }
        }
        if (cap_set_proc(caps) < 0)
                return log_error_errno(errno, "Failed to reduce capabilities: %m");

        log_debug("Dropped %u capabilities from the bounding set, kept %zu.", dropped, caps_needed_count);
        return 0;
}
