/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host side of a guest's [Memory]: whether the huge pages it needs are there (at definition and before
 * each start), and the commit charge its start added (Committed_AS before the spawn and once running). */
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <sys/vfs.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/parse.h"
#include "metrics/meminfo.h"
#include "numa/numa-hugepages.h"
#include "numa/numa-topology.h"
#include "vm/vm-internal.h"

/* The host's online NUMA nodes (sysfs "online"; a kernel without NUMA has node 0 only). */
static int host_nodes_online(const char *sysfs_root, uint64_t *ret) {
        _cleanup_free_ char *path = path_join(sysfs_root, "sys/devices/system/node/online"), *text = NULL;
        size_t n;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_full_file(path, 4096, &text, &n);
        if (r == -ENOENT) {
                *ret = 1;
                return 0;
        }
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = 0;
        return numa_node_list_parse(text, ret);
}

/* GuestNode= hostnodes= (or the HostNodes= a node takes over): every node must be online on this host. */
static int check_guest_host_nodes(const VmSpec *spec, const char *sysfs_root, char **ret_reason) {
        uint64_t online = 0;
        int r;

        if (spec->n_guest_nodes == 0)
                return 0;
        r = host_nodes_online(sysfs_root, &online);
        if (r < 0)
                return asprintf(ret_reason, "GuestNode=: cannot read the host's NUMA nodes: %s", strerror(-r)) < 0
                               ? -ENOMEM : r;
        for (size_t i = 0; i < spec->n_guest_nodes; i++) {
                _cleanup_(vm_guest_node_done) VmGuestNode n = {};
                _cleanup_free_ char *have = NULL;
                uint64_t mask = 0;

                r = vm_spec_guest_node(spec, i, &n);
                if (r < 0)
                        return r;
                if (!n.host_nodes)
                        continue;
                r = numa_node_list_parse(n.host_nodes, &mask);
                if (r >= 0 && (mask & ~online) == 0)
                        continue;
                {
                        CpuSet set = {};

                        for (unsigned k = 0; k < NUMA_NODES_MAX; k++)
                                if (online & (UINT64_C(1) << k))
                                        cpu_set_add(&set, k);
                        r = cpu_list_format(&set, &have);
                        if (r < 0)
                                return r;
                }
                return asprintf(ret_reason, "GuestNode=%s: guest node %zu is bound to host node%s %s, but the host "
                                "has node%s %s only", spec->guest_nodes[i], i, strchr(n.host_nodes, ',') ||
                                strchr(n.host_nodes, '-') ? "s" : "", n.host_nodes,
                                __builtin_popcountll(online) == 1 ? "" : "s", have) < 0 ? -ENOMEM : -EOPNOTSUPP;
        }
        return 0;
}

int vm_memory_check_definition(const VmSpec *spec, const char *sysfs_root, const char **ret_field,
                               char **ret_reason) {
        _cleanup_free_ char *sizes = NULL;
        char s[FORMAT_SIZE_MAX];
        uint64_t d;
        int r;

        *ret_field = NULL;
        *ret_reason = NULL;
        r = check_guest_host_nodes(spec, sysfs_root, ret_reason);
        if (r < 0) {
                if (*ret_reason)
                        *ret_field = "Memory.GuestNode";
                return r;
        }
        if (!spec->hugepages || spec->backend != VM_MEMORY_BACKEND_MEMFD)
                return 0;       /* Backend=file: the page size is the mount's, checked at start */
        if (spec->hugepage_size == 0) {
                if (hugepages_default_size(sysfs_root, &d) >= 0)
                        return 0;
                *ret_field = "Memory.HugePages";
                return asprintf(ret_reason, "HugePages=yes: the host has no huge pages (no Hugepagesize in "
                                "/proc/meminfo)") < 0 ? -ENOMEM : -EOPNOTSUPP;
        }
        r = hugepages_size_offered(sysfs_root, spec->hugepage_size);
        if (r != 0)
                return r < 0 ? r : 0;
        r = hugepages_sizes_text(sysfs_root, &sizes);
        if (r < 0)
                return r;
        format_size(s, sizeof(s), spec->hugepage_size);
        *ret_field = "Memory.HugePageSize";
        return asprintf(ret_reason, "HugePageSize=%s: the host offers no huge pages of %s (it offers: %s)", s, s,
                        sizes) < 0 ? -ENOMEM : -EOPNOTSUPP;
}

/* Backend=file: the huge page size of the hugetlbfs mount that holds Path= (or its directory, when QEMU is
 * to create the file); 0 when it is not on hugetlbfs. */
static int mem_path_hugepage_size(const char *path, uint64_t *ret) {
        _cleanup_free_ char *dir = NULL;
        struct statfs sf;

        if (statfs(path, &sf) < 0) {
                char *slash;

                if (errno != ENOENT)
                        return -errno;
                dir = strdup(path);
                if (!dir)
                        return -ENOMEM;
                slash = strrchr(dir, '/');
                if (slash == dir)
                        slash[1] = 0;
                else if (slash)
                        *slash = 0;
                if (statfs(dir, &sf) < 0)
                        return -errno;
        }
        *ret = (uint64_t) sf.f_type == HUGETLBFS_MAGIC ? (uint64_t) sf.f_bsize : 0;
        return 0;
}

/* What the backends map in huge pages: Memory= and the virtio-mem backend's HotplugSize= (same type and page
 * size, reserved with it unless Reserve=no, and needed once plugged either way). */
static uint64_t memory_with_hotplug(const VmSpec *spec) {
        return spec->memory_bytes + spec->hotplug_bytes;
}

static const char *hotplug_note(const VmSpec *spec) {
        return spec->hotplug_bytes != 0 ? " (counting HotplugSize=, the virtio-mem backend, with Memory=)" : "";
}

static HugepagesSpread policy_spread(VmMemoryPolicy p) {
        return p == VM_MEMORY_POLICY_BIND ? HUGEPAGES_ANY_OF : p == VM_MEMORY_POLICY_INTERLEAVE ? HUGEPAGES_EACH
                                                                                             : HUGEPAGES_ANYWHERE;
}

/* With GuestNode=: the whole host's free pages for Memory=, then each guest node's size on its own host nodes.
 * Two guest nodes bound to the same host node are each checked against that node's free pages, not against
 * their sum. */
static int check_guest_nodes_hugepages(const VmSpec *spec, const char *sysfs_root, uint64_t size, const char *key,
                                       char **ret_reason) {
        _cleanup_free_ char *why = NULL;
        char s[FORMAT_SIZE_MAX];
        int r;

        format_size(s, sizeof(s), size);
        r = hugepages_check(sysfs_root, size, memory_with_hotplug(spec), 0, HUGEPAGES_ANYWHERE, &why);
        if (r < 0 && why)
                return asprintf(ret_reason, "%s%s: %s%s", key, streq(key, "HugePageSize=") ? s : "", why,
                                hotplug_note(spec)) < 0
                               ? -ENOMEM : r;
        if (r < 0)
                return r;
        for (size_t i = 0; i < spec->n_guest_nodes; i++) {
                _cleanup_(vm_guest_node_done) VmGuestNode n = {};
                uint64_t mask = 0;

                r = vm_spec_guest_node(spec, i, &n);
                if (r < 0)
                        return r;
                if (!n.host_nodes || n.policy == VM_MEMORY_POLICY_DEFAULT)
                        continue;
                r = numa_node_list_parse(n.host_nodes, &mask);
                if (r < 0)
                        return asprintf(ret_reason, "GuestNode=%s: huge pages are counted for nodes below %u only",
                                        spec->guest_nodes[i], NUMA_NODES_MAX) < 0 ? -ENOMEM : r;
                /* The virtio-mem backend is bound as its guest node's (HotplugNode=) and needs its pages too. */
                r = hugepages_check(sysfs_root, size,
                                    n.size_bytes + (i == spec->hotplug_node ? spec->hotplug_bytes : 0), mask,
                                    policy_spread(n.policy), &why);
                if (r < 0 && why)
                        return asprintf(ret_reason, "GuestNode=%s (guest node %zu): %s%s", spec->guest_nodes[i], i,
                                        why, i == spec->hotplug_node ? hotplug_note(spec) : "") < 0 ? -ENOMEM : r;
                if (r < 0)
                        return r;
        }
        return 0;
}

int vm_memory_check_start(const VmSpec *spec, const char *sysfs_root, char **ret_reason) {
        _cleanup_free_ char *why = NULL;
        HugepagesSpread spread = HUGEPAGES_ANYWHERE;
        uint64_t size = spec->hugepage_size, mask = 0;
        const char *key = "HugePageSize=";
        char s[FORMAT_SIZE_MAX];
        int r;

        *ret_reason = NULL;
        r = check_guest_host_nodes(spec, sysfs_root, ret_reason);
        if (r < 0)
                return r;
        if (spec->backend == VM_MEMORY_BACKEND_FILE) {
                uint64_t mount = 0;

                r = mem_path_hugepage_size(spec->mem_path, &mount);
                if (r < 0)
                        return asprintf(ret_reason, "Path=%s: cannot tell its file system: %s", spec->mem_path,
                                        strerror(-r)) < 0 ? -ENOMEM : r;
                if (spec->hugepages && mount == 0)
                        return asprintf(ret_reason, "HugePages=yes: Path=%s is not on a hugetlbfs mount",
                                        spec->mem_path) < 0 ? -ENOMEM : -EINVAL;
                if (size != 0 && mount != size) {
                        char m[FORMAT_SIZE_MAX];

                        format_size(s, sizeof(s), size);
                        format_size(m, sizeof(m), mount);
                        return asprintf(ret_reason, "HugePageSize=%s: Path=%s is on a hugetlbfs mount of %s pages "
                                        "(mount one with -o pagesize=%s)", s, spec->mem_path, m, s) < 0
                                       ? -ENOMEM : -EINVAL;
                }
                if (mount == 0)
                        return 0;
                size = mount;
                key = "Path=";
        } else if (!spec->hugepages)
                return 0;
        else if (size == 0) {
                r = hugepages_default_size(sysfs_root, &size);
                if (r < 0)
                        return asprintf(ret_reason, "HugePages=yes: the host has no huge pages (no Hugepagesize "
                                        "in /proc/meminfo)") < 0 ? -ENOMEM : -EOPNOTSUPP;
                key = "HugePages=yes";
        }

        if (spec->n_guest_nodes > 0)
                return check_guest_nodes_hugepages(spec, sysfs_root, size, key, ret_reason);
        if (spec->host_nodes && spec->policy != VM_MEMORY_POLICY_DEFAULT) {
                r = numa_node_list_parse(spec->host_nodes, &mask);
                if (r < 0)
                        return asprintf(ret_reason, "HostNodes=%s: huge pages are counted for nodes below %u only",
                                        spec->host_nodes, NUMA_NODES_MAX) < 0 ? -ENOMEM : r;
                spread = spec->policy == VM_MEMORY_POLICY_BIND         ? HUGEPAGES_ANY_OF
                         : spec->policy == VM_MEMORY_POLICY_INTERLEAVE ? HUGEPAGES_EACH
                                                                       : HUGEPAGES_ANYWHERE;
        }
        r = hugepages_check(sysfs_root, size, memory_with_hotplug(spec), mask, spread, &why);
        if (r < 0 && why) {
                format_size(s, sizeof(s), size);
                return asprintf(ret_reason, "%s%s%s: %s%s", key, streq(key, "HugePageSize=") ? s : "",
                                streq(key, "Path=") ? spec->mem_path : "", why, hotplug_note(spec)) < 0 ? -ENOMEM : r;
        }
        return r;
}

/* ---- commit charge ---------------------------------------------------------------------------- */

static int read_committed_as(const char *proc_root, uint64_t *ret) {
        _cleanup_free_ Meminfo *mi = malloc(sizeof(Meminfo));
        _cleanup_free_ char *path = path_join(proc_root, "meminfo");
        int r;

        if (!mi || !path)
                return -ENOMEM;
        r = meminfo_read(path, mi);
        if (r < 0)
                return r;
        return meminfo_get(mi, "Committed_AS", ret);
}

void vm_commit_charge_before(Vm *vm) {
        vm->commit = (VmCommitCharge) {};
        if (read_committed_as(vm->ctx->proc_root, &vm->commit.before_bytes) >= 0)
                vm->commit.have_before = true;
}

void vm_commit_charge_after(Vm *vm) {
        int r;

        if (!vm->commit.have_before || vm->commit.have_after)
                return;
        r = read_committed_as(vm->ctx->proc_root, &vm->commit.after_bytes);
        if (r < 0) {
                log_vm(vm, LOG_DEBUG, r, "Cannot read Committed_AS after starting guest %s: %m", vm->name);
                return;
        }
        vm->commit.have_after = true;
        log_vm(vm, LOG_DEBUG, 0, "Guest %s: Committed_AS %" PRIu64 " bytes before the start, %" PRIu64 " once "
               "running (%+" PRIi64 ").", vm->name, vm->commit.before_bytes, vm->commit.after_bytes,
               vm_commit_charge_bytes(vm));
}

int64_t vm_commit_charge_bytes(const Vm *vm) {
        return (int64_t) vm->commit.after_bytes - (int64_t) vm->commit.before_bytes;
}

int vm_commit_charge_json(const Vm *vm, json_object *o) {
        _cleanup_json_ json_object *c = NULL;

        if (!vm->commit.have_after)
                return 0;
        c = json_object_new_object();
        if (!c || json_add_uint(c, "beforeBytes", vm->commit.before_bytes) < 0 ||
            json_add_uint(c, "afterBytes", vm->commit.after_bytes) < 0 ||
            json_add_int(c, "differenceBytes", vm_commit_charge_bytes(vm)) < 0)
                return -ENOMEM;
        return json_add(o, "commitCharge", TAKE_PTR(c));
}
