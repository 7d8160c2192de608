/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vm_spec_validate(): each value on its own (for specs not built by the parser) and the checks across keys, in
 * the order whose first failure is reported. */
#include <ctype.h>
#include <stdio.h>

#include "numa/cpu-set.h"
#include "basic/ini.h"
#include "numa/numa-topology.h"
#include "vm/restart.h"
#include "basic/strv.h"
#include "vm/vm-spec-internal.h"

#define _fallthrough_ __attribute__((__fallthrough__))
#define reasonf vm_spec_reasonf

int vm_spec_validate_internal(const VmSpec *s, const char **ret_field, char **ret_reason) {
        bool nodes[VM_HOST_NODES_MAX] = {};
        _cleanup_free_ char *text = NULL;
        int r;

#define FAIL(field, ...)                                                \
        do {                                                            \
                *ret_field = (field);                                   \
                return reasonf(ret_reason, -EINVAL, __VA_ARGS__);       \
        } while (0)

        /* [VM] */
        if (!s->name)
                FAIL("VM.Name", "Name= is not set");
        if (!vm_name_is_valid(s->name))
                FAIL("VM.Name", "Invalid name '%s': expected 1 to %d characters from a-z, A-Z, 0-9, '_', '.', "
                     "'-', not starting with '.' or '-'", s->name, VM_NAME_MAX);
        if (s->memory_bytes < VM_MEMORY_MIN || s->memory_bytes > VM_MEMORY_MAX)
                FAIL("VM.Memory", "Memory= must be between 16M and 16T");
        if (s->memory_bytes % SIZE_MB != 0)
                FAIL("VM.Memory", "Memory= must be a whole number of MiB");
        if (s->vcpus < 1 || s->vcpus > VM_MAX_VCPUS)
                FAIL("VM.VCPUs", "VCPUs= must be between 1 and %d", VM_MAX_VCPUS);
        if (!vm_spec_machine_is_valid(s->machine))
                FAIL("VM.Machine", "Machine= must be a QEMU machine type such as q35, pc or microvm");
        if (!vm_accel_to_string(s->accel))
                FAIL("VM.Accelerator", "Accelerator= must be auto, kvm or tcg");
        if (!vm_confidential_to_string(s->confidential))
                FAIL("VM.Confidential", "Confidential= must be no, sev, sev-snp or tdx");
        if (s->confidential != VM_CONFIDENTIAL_NO) {
                const char *kind = vm_confidential_to_string(s->confidential);

                /* What would only fail later, inside QEMU or on the guest's private memory. */
                if (s->accel == VM_ACCEL_TCG)
                        FAIL("VM.Confidential", "Confidential=%s needs KVM: it does not work with Accelerator=tcg",
                             kind);
                if (s->hotplug_bytes > 0)
                        FAIL("Memory.HotplugSize", "HotplugSize= does not work with Confidential=%s: virtio-mem "
                             "cannot plug or unplug a confidential guest's private memory", kind);
                if (s->migrate_between)
                        FAIL("Memory.MigrateBetween", "MigrateBetween= does not work with Confidential=%s: a "
                             "confidential guest's private memory cannot be moved between host nodes", kind);
                if (s->balloon_schedule.mode != BALLOON_SCHEDULE_NONE)
                        FAIL("Balloon.Schedule", "Schedule= does not work with Confidential=%s: the host cannot "
                             "reclaim a confidential guest's private memory through the balloon", kind);
        }
        if (s->cpu_model && !vm_spec_cpu_model_is_valid(s->cpu_model))
                FAIL("VM.CPUModel", "CPUModel= must be a QEMU CPU model such as host or max");
        if (s->qemu_binary && (!vm_spec_emulator_is_valid(s->qemu_binary) || !vm_spec_value_is_storable(s->qemu_binary)))
                FAIL("VM.Emulator", "Emulator= must be an absolute path or a command name");
        if (s->kernel && (!vm_spec_path_is_valid(s->kernel) || !vm_spec_value_is_storable(s->kernel)))
                FAIL("VM.Kernel", "Kernel= must be an absolute path");
        if (s->initrd && (!vm_spec_path_is_valid(s->initrd) || !vm_spec_value_is_storable(s->initrd)))
                FAIL("VM.Initrd", "Initrd= must be an absolute path");
        if (s->append && !vm_spec_value_is_storable(s->append))
                FAIL("VM.Append", "Append= must not contain control characters, surrounding whitespace or a "
                     "trailing backslash");
        /* QEMU gets it as one argument: execve(2) refuses an argument of MAX_ARG_STRLEN (128 KiB) or more. */
        if (s->append && strlen(s->append) >= VM_ARG_MAX)
                FAIL("VM.Append", "Append= is %zu bytes; QEMU's command line takes at most %u bytes per argument",
                     strlen(s->append), VM_ARG_MAX - 1);
        if (s->n_disks != strv_length(s->disks))
                FAIL("VM.Disk", "the disk count does not match the disk list");
        if (s->n_disks > VM_MAX_DISKS)
                FAIL("VM.Disk", "too many disks, at most %d are supported", VM_MAX_DISKS);
        for (size_t i = 0; i < s->n_disks; i++)
                if (!vm_spec_path_is_valid(s->disks[i]) || !vm_spec_value_is_storable(s->disks[i]))
                        FAIL("VM.Disk", "Disk=%s is not an absolute path", s->disks[i]);
        if (!s->kernel && s->n_disks == 0)
                FAIL("VM.Kernel", "Neither Kernel= nor Disk= is set: the guest has nothing to boot");
        if (s->initrd && !s->kernel)
                FAIL("VM.Initrd", "Initrd= needs Kernel=");
        if (s->append && !s->kernel)
                FAIL("VM.Append", "Append= needs Kernel=");
        if (s->n_extra_args != strv_length(s->extra_args))
                FAIL("VM.ExtraArgs", "the argument count does not match the argument list");
        if (s->n_extra_args > VM_MAX_EXTRA_ARGS)
                FAIL("VM.ExtraArgs", "too many extra arguments, at most %d are supported", VM_MAX_EXTRA_ARGS);
        for (size_t i = 0; i < s->n_extra_args; i++) {
                for (const char *c = s->extra_args[i]; *c; c++)
                        if (iscntrl((unsigned char) *c) && *c != '\t')
                                FAIL("VM.ExtraArgs", "ExtraArgs= must not contain control characters");
                if (strlen(s->extra_args[i]) >= VM_ARG_MAX)
                        FAIL("VM.ExtraArgs", "an ExtraArgs= argument is %zu bytes; QEMU's command line takes at "
                             "most %u bytes per argument", strlen(s->extra_args[i]), VM_ARG_MAX - 1);
        }
        if (s->start_timeout_usec == 0)
                FAIL("VM.StartTimeoutSec", "StartTimeoutSec= must be greater than 0");
        if (s->stop_timeout_usec == 0)
                FAIL("VM.StopTimeoutSec", "StopTimeoutSec= must be greater than 0");

        /* [Memory] */
        if (!vm_memory_backend_to_string(s->backend))
                FAIL("Memory.Backend", "Backend= must be ram, memfd or file");
        if (!vm_memory_policy_to_string(s->policy))
                FAIL("Memory.Policy", "Policy= must be default, bind, preferred or interleave");
        if (s->mem_path && (!vm_spec_path_is_valid(s->mem_path) || !vm_spec_value_is_storable(s->mem_path)))
                FAIL("Memory.Path", "Path= must be an absolute path");

        switch (s->backend) {
        case VM_MEMORY_BACKEND_RAM:
                if (s->hugepages)
                        FAIL("Memory.HugePages", "HugePages=yes does not work with Backend=ram: use Backend=memfd, "
                             "or Backend=file with Path= on a hugetlbfs mount");
                _fallthrough_;
        case VM_MEMORY_BACKEND_MEMFD:
                if (s->mem_path)
                        FAIL("Memory.Path", "Path= is only used with Backend=file");
                break;
        case VM_MEMORY_BACKEND_FILE:
                if (!s->mem_path)
                        FAIL("Memory.Path", "Backend=file needs Path=");
                break;
        case _VM_MEMORY_BACKEND_MAX:
        case _VM_MEMORY_BACKEND_INVALID:
                break; /* rejected above */
        }

        if (!vm_memory_share_to_string(s->share))
                FAIL("Memory.Share", "Share= must be yes, no or default");
        if (!vm_spec_hugepage_size_is_valid(s->hugepage_size))
                FAIL("Memory.HugePageSize", "HugePageSize= must be a power of two from 64K to 16G, such as 2M or 1G");
        if (s->hugepage_size != 0 && !s->hugepages)
                FAIL("Memory.HugePageSize", "HugePageSize= needs HugePages=yes");
        if (s->hugepage_size != 0 && s->memory_bytes % s->hugepage_size != 0)
                FAIL("Memory.HugePageSize", "Memory= must be a whole number of huge pages of HugePageSize=");
        if (s->prealloc_threads > VM_PREALLOC_THREADS_MAX)
                FAIL("Memory.PreallocThreads", "PreallocThreads= must be at most %u", VM_PREALLOC_THREADS_MAX);
        if (s->prealloc_threads != 0 && !s->prealloc)
                FAIL("Memory.PreallocThreads", "PreallocThreads= needs Prealloc=yes");
        /* QEMU 7.2: "'prealloc=on' and 'reserve=off' are incompatible". */
        if (!s->reserve && s->prealloc)
                FAIL("Memory.Reserve", "Reserve=no does not work with Prealloc=yes: preallocated memory is reserved");

        if (s->host_nodes) {
                _cleanup_free_ char *normalized = NULL;

                if (vm_spec_host_nodes_parse(s->host_nodes, nodes) < 0)
                        FAIL("Memory.HostNodes", "HostNodes=%s is not a list of NUMA nodes and ranges below %u "
                             "such as 0, 0-1 or 0,2-3", s->host_nodes, NUMA_NODES_MAX);
                normalized = vm_spec_host_nodes_format(nodes);
                if (!normalized)
                        return -ENOMEM;
                if (!streq(normalized, s->host_nodes))
                        FAIL("Memory.HostNodes", "HostNodes=%s is not normalized, expected %s", s->host_nodes,
                             normalized);
                if (vm_spec_host_nodes_unsupported(nodes) >= 0)
                        FAIL("Memory.HostNodes", "HostNodes=%s: host node %d is not supported: memvisor handles host "
                             "nodes 0-%u only", s->host_nodes, vm_spec_host_nodes_unsupported(nodes),
                             NUMA_NODES_MAX - 1);
        }

        switch (s->policy) {
        case VM_MEMORY_POLICY_DEFAULT:
                if (s->host_nodes)
                        FAIL("Memory.HostNodes", "HostNodes= does not work with Policy=default: set Policy=bind, "
                             "preferred or interleave");
                break;
        case VM_MEMORY_POLICY_PREFERRED:
                if (s->host_nodes && vm_spec_host_nodes_count(nodes) != 1)
                        FAIL("Memory.HostNodes", "Policy=preferred takes a single node in HostNodes=, not %s",
                             s->host_nodes);
                _fallthrough_;
        case VM_MEMORY_POLICY_BIND:
        case VM_MEMORY_POLICY_INTERLEAVE:
                if (!s->host_nodes)
                        FAIL("Memory.HostNodes", "Policy=%s needs HostNodes=", vm_memory_policy_to_string(s->policy));
                break;
        case _VM_MEMORY_POLICY_MAX:
        case _VM_MEMORY_POLICY_INVALID:
                break; /* rejected above */
        }

        if (s->migrate_between) {
                char normalized[32];
                unsigned between[2];

                if (vm_spec_migrate_between_parse(s->migrate_between, between) < 0)
                        FAIL("Memory.MigrateBetween", "MigrateBetween=%s is not two different NUMA nodes below %u "
                             "such as 0,1", s->migrate_between, NUMA_NODES_MAX);
                snprintf(normalized, sizeof(normalized), "%u,%u", between[0], between[1]);
                if (!streq(normalized, s->migrate_between))
                        FAIL("Memory.MigrateBetween", "MigrateBetween=%s is not normalized, expected %s",
                             s->migrate_between, normalized);
                if (s->migrate_every_usec == 0)
                        FAIL("Memory.MigrateEverySec", "MigrateBetween= needs MigrateEverySec= greater than 0");
                if (s->migrate_every_usec > VM_MIGRATE_EVERY_MAX)
                        FAIL("Memory.MigrateEverySec", "MigrateEverySec= must be at most 24h");
                if (s->migrate_count == 0)
                        FAIL("Memory.MigrateCount", "MigrateBetween= needs MigrateCount= of 1 or more");
                if (s->migrate_count > VM_MIGRATE_COUNT_MAX)
                        FAIL("Memory.MigrateCount", "MigrateCount= must be from 1 to %u", VM_MIGRATE_COUNT_MAX);
                if (s->migrate_settle_usec > VM_MIGRATE_SETTLE_MAX)
                        FAIL("Memory.MigrateSettleSec", "MigrateSettleSec= must be at most 10min");
        } else if (s->migrate_every_usec != 0)
                FAIL("Memory.MigrateEverySec", "MigrateEverySec= needs MigrateBetween=");
        else if (s->migrate_count != 0)
                FAIL("Memory.MigrateCount", "MigrateCount= needs MigrateBetween=");
        else if (s->migrate_settle_usec != VM_MIGRATE_SETTLE_DEFAULT)
                FAIL("Memory.MigrateSettleSec", "MigrateSettleSec= needs MigrateBetween=");

        if (s->dirty_ring != 0) {
                if (s->dirty_ring < VM_DIRTY_RING_MIN || s->dirty_ring > VM_DIRTY_RING_MAX ||
                    (s->dirty_ring & (s->dirty_ring - 1)) != 0)
                        FAIL("Memory.DirtyRing", "DirtyRing=%u is not 0 or a power of two from %u to %u", s->dirty_ring,
                             VM_DIRTY_RING_MIN, VM_DIRTY_RING_MAX);
                if (s->accel == VM_ACCEL_TCG)
                        FAIL("Memory.DirtyRing", "DirtyRing= needs KVM: it is the size of KVM's dirty ring, and "
                             "Accelerator=tcg has none");
        }

        if (s->max_memory_bytes != 0) {
                char mem[32], max[32];

                vm_spec_format_size(mem, s->memory_bytes);
                vm_spec_format_size(max, s->max_memory_bytes);
                if (s->max_memory_bytes > VM_MEMORY_MAX || s->max_memory_bytes % SIZE_MB != 0)
                        FAIL("Memory.MaxMemory", "MaxMemory=%s must be a whole number of MiB, at most 16T", max);
                if (s->max_memory_bytes < s->memory_bytes)
                        FAIL("Memory.MaxMemory", "MaxMemory=%s is below Memory=%s", max, mem);
                if (s->hotplug_bytes == 0)
                        FAIL("Memory.MaxMemory", "MaxMemory= needs HotplugSize=: only a virtio-mem device uses the "
                             "room above Memory=");
        }
        if (s->hotplug_bytes != 0) {
                uint64_t block = vm_spec_hotplug_block_size(s);
                char hs[32], bs[32], mem[32], max[32];

                vm_spec_format_size(hs, s->hotplug_bytes);
                vm_spec_format_size(bs, block);
                vm_spec_format_size(mem, s->memory_bytes);
                vm_spec_format_size(max, s->max_memory_bytes);
                if (s->hotplug_bytes > VM_MEMORY_MAX || s->hotplug_bytes % block != 0)
                        FAIL("Memory.HotplugSize", "HotplugSize=%s must be a multiple of the virtio-mem block size %s, "
                             "at most 16T", hs, bs);
                if (s->max_memory_bytes != 0 && s->max_memory_bytes - s->memory_bytes < s->hotplug_bytes)
                        FAIL("Memory.MaxMemory", "MaxMemory=%s is below Memory=%s + HotplugSize=%s", max, mem, hs);
                if (s->backend == VM_MEMORY_BACKEND_FILE)
                        FAIL("Memory.HotplugSize", "HotplugSize= does not work with Backend=file: the device's memory "
                             "would need a second file; use Backend=memfd or ram");
                /* Without GuestNode= the guest has one node, 0. */
                if (s->hotplug_node >= MAX(s->n_guest_nodes, (size_t) 1))
                        FAIL("Memory.HotplugNode", "HotplugNode=%u is not a guest NUMA node: the guest has %zu (0 to "
                             "%zu)", s->hotplug_node, MAX(s->n_guest_nodes, (size_t) 1),
                             MAX(s->n_guest_nodes, (size_t) 1) - 1);
        } else if (s->hotplug_node != 0)
                FAIL("Memory.HotplugNode", "HotplugNode= needs HotplugSize=");

        /* [CPU] */
        if (s->vcpu_affinity && !streq(s->vcpu_affinity, VM_VCPU_AFFINITY_NODE)) {
                _cleanup_(vcpu_pin_map_done) VcpuPinMap map = {};
                _cleanup_free_ char *normalized = NULL;

                if (vcpu_pin_map_parse(s->vcpu_affinity, &map, NULL) < 0)
                        FAIL("CPU.VCPUAffinity", "VCPUAffinity=%s is not a list of VCPU:CPULIST entries such as "
                             "\"0:2 1:3\"", s->vcpu_affinity);
                if (vcpu_pin_map_format(&map, &normalized) < 0)
                        return -ENOMEM;
                if (!streq(normalized, s->vcpu_affinity))
                        FAIL("CPU.VCPUAffinity", "VCPUAffinity=%s is not normalized, expected %s", s->vcpu_affinity,
                             normalized);
                for (size_t i = 0; i < map.n; i++)
                        if (map.pins[i].vcpu >= s->vcpus)
                                FAIL("CPU.VCPUAffinity", "VCPUAffinity= names vCPU %u, but the guest has %u vCPU%s "
                                     "(0-%u)", map.pins[i].vcpu, s->vcpus, s->vcpus == 1 ? "" : "s", s->vcpus - 1);
        }
        if (s->emulator_affinity) {
                _cleanup_free_ char *normalized = NULL;
                CpuSet set;

                if (cpu_list_parse(s->emulator_affinity, &set) < 0)
                        FAIL("CPU.EmulatorAffinity", "EmulatorAffinity=%s is not a CPU list such as 0-3",
                             s->emulator_affinity);
                if (cpu_list_format(&set, &normalized) < 0)
                        return -ENOMEM;
                if (!streq(normalized, s->emulator_affinity))
                        FAIL("CPU.EmulatorAffinity", "EmulatorAffinity=%s is not normalized, expected %s",
                             s->emulator_affinity, normalized);
        }

        /* GuestNode= and GuestDistance= against Memory=, VCPUs= and the [Memory] backend keys. */
        r = vm_spec_validate_numa(s, ret_field, ret_reason);
        if (r < 0)
                return r;

        /* [Restart] */
        if (!vm_restart_policy_to_string(s->restart))
                FAIL("Restart.Policy", "Policy= must be no, on-failure or always");
        if (s->restart_usec == USEC_INFINITY)
                FAIL("Restart.RestartSec", "RestartSec= must be finite");
        if (s->restart_max_usec == USEC_INFINITY)
                FAIL("Restart.RestartMaxDelaySec", "RestartMaxDelaySec= must be finite");
        if (s->restart_max_usec < s->restart_usec)
                FAIL("Restart.RestartMaxDelaySec", "RestartMaxDelaySec= must not be shorter than RestartSec=");
        if (s->start_limit_burst < 1 || s->start_limit_burst > RESTART_HISTORY_MAX)
                FAIL("Restart.StartLimitBurst", "StartLimitBurst= must be from 1 to %u", RESTART_HISTORY_MAX);
        if (s->start_limit_interval_usec == 0)
                FAIL("Restart.StartLimitIntervalSec", "StartLimitIntervalSec= must be greater than 0");

        /* [Balloon] */
        if (s->balloon_floor > s->memory_bytes)
                FAIL("Balloon.Floor", "Floor= must not exceed Memory=");
        if (s->balloon_ceiling > s->memory_bytes)
                FAIL("Balloon.Ceiling", "Ceiling= must not exceed Memory=");
        if (s->balloon_ceiling != 0 && s->balloon_ceiling < s->balloon_floor)
                FAIL("Balloon.Ceiling", "Ceiling= must not be below Floor=");
        if (!vm_balloon_policy_to_string(s->balloon_policy))
                FAIL("Balloon.Policy", "Policy= must be inherit, yes or no");
        if (s->balloon_stats_interval_usec % USEC_PER_SEC != 0 || s->balloon_stats_interval_usec > 3600 * USEC_PER_SEC)
                FAIL("Balloon.StatsIntervalSec", "StatsIntervalSec= must be whole seconds, at most 1h (0: the daemon's "
                     "default)");
        if (!s->balloon && s->balloon_policy == VM_BALLOON_POLICY_YES)
                FAIL("Balloon.Policy", "Policy=yes needs a balloon device ([VM] Balloon=yes)");
        if (s->balloon_schedule.mode != BALLOON_SCHEDULE_NONE) {
                const char *sf = NULL, *sr = NULL;
                static const char *const fields[][2] = {
                        { "mode", "Balloon.Schedule" }, { "from", "Balloon.From" }, { "to", "Balloon.To" },
                        { "every", "Balloon.EverySec" }, { "count", "Balloon.Count" },
                };

                if (!balloon_schedule_mode_to_string(s->balloon_schedule.mode))
                        FAIL("Balloon.Schedule", "Schedule= must be none, oscillate or ramp");
                if (!s->balloon)
                        FAIL("Balloon.Schedule", "Schedule= needs a balloon device ([VM] Balloon=yes)");
                if (balloon_schedule_validate(&s->balloon_schedule, &sf, &sr) < 0) {
                        const char *f = "Balloon.Schedule";

                        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                                if (streq(fields[i][0], sf))
                                        f = fields[i][1];
                        FAIL(f, "%s= %s", strchr(f, '.') + 1, sr);
                }
                if (s->balloon_schedule.from_bytes > s->memory_bytes ||
                    s->balloon_schedule.from_bytes < s->balloon_floor)
                        FAIL("Balloon.From", "From= must be between Floor= and Memory=");
                if (s->balloon_schedule.to_bytes > s->memory_bytes || s->balloon_schedule.to_bytes < s->balloon_floor)
                        FAIL("Balloon.To", "To= must be between Floor= and Memory=");
        }

        /* One limit for every way in (DefineVM fields or ini text, .vm files): whatever is accepted must load
         * again from the .vm file it is saved as. */
        r = vm_spec_to_ini(s, &text);
        if (r < 0)
                return r;
        if (strlen(text) > INI_FILE_MAX)
                FAIL("definition", "the definition takes %zu bytes as a .vm file, over the limit of %u bytes",
                     strlen(text), INI_FILE_MAX);

#undef FAIL
        return 0;
}

uint64_t vm_spec_hotplug_block_size(const VmSpec *s) {
        /* QEMU 7.2 virtio-mem: the larger of 2 MiB (its default on x86-64) and the backend's page size. */
        if (s->hugepages && s->hugepage_size > VM_HOTPLUG_BLOCK_SIZE)
                return s->hugepage_size;
        return VM_HOTPLUG_BLOCK_SIZE;
}

uint64_t vm_spec_max_memory(const VmSpec *s) {
        if (s->hotplug_bytes == 0)
                return 0;
        return s->max_memory_bytes != 0 ? s->max_memory_bytes : s->memory_bytes + s->hotplug_bytes;
}
