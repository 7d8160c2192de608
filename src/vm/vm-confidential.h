/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Confidential guests ([VM] Confidential=, memvisor.vm(5)): whether this host can run them, and what memvisor
 * refuses to do to one. A confidential guest's memory is encrypted with a key only the CPU holds and private to
 * the guest: the host can neither read it, nor reclaim it through the balloon, nor move it between host nodes
 * (migrate_pages, move_pages), nor plug and unplug it with virtio-mem. So those operations are refused up front
 * with the reason rather than left to fail inside QEMU or the kernel.
 *
 * Host support is read from sysfs and /dev below root ("/" on a host, a fixture tree in tests): the kvm_amd
 * parameters sev, sev_es and sev_snp with /dev/sev (the PSP), the kvm_intel parameter tdx, and /dev/kvm. Reading
 * a few small files; never runs a program. Whether a QEMU binary has the launch object (`qemu -object help`) is
 * vm_confidential_qemu_lists(), on text the caller got by running QEMU off the event loop.
 *
 * This build never passes QEMU the launch arguments (the sev-guest/tdx-guest object, cbitpos and
 * reduced-phys-bits from CPUID, -machine memory-encryption=): they cannot be tested on the hosts memvisor is
 * tested on, so a confidential guest is refused at definition and start, with the host's reason when the host
 * lacks support and "not supported by this memvisor build on this host" when it has it. */

#include "basic/macro.h"
#include "vm/vm-spec.h"

/* The host features GetHostInfo reports, in this order: each Confidential= kind, and SEV-ES (which QEMU runs as
 * sev-guest with the ES policy bit; no Confidential= value of its own). */
typedef enum VmConfidentialFeature {
        VM_CONFIDENTIAL_FEATURE_SEV,
        VM_CONFIDENTIAL_FEATURE_SEV_ES,
        VM_CONFIDENTIAL_FEATURE_SEV_SNP,
        VM_CONFIDENTIAL_FEATURE_TDX,
        _VM_CONFIDENTIAL_FEATURE_MAX,
        _VM_CONFIDENTIAL_FEATURE_INVALID = -EINVAL,
} VmConfidentialFeature;

DECLARE_STRING_TABLE(vm_confidential_feature, VmConfidentialFeature);

/* The QEMU object that launches a guest of that feature: "sev-guest", "sev-snp-guest", "tdx-guest". */
const char *vm_confidential_feature_qemu_object(VmConfidentialFeature f);
/* The feature of a Confidential= kind; _VM_CONFIDENTIAL_FEATURE_INVALID for VM_CONFIDENTIAL_NO. */
VmConfidentialFeature vm_confidential_feature_of(VmConfidential kind);

/* 1 when the host (kernel, firmware, devices) supports f, 0 when not, with *ret_reason saying why; < 0 on
 * -ENOMEM. */
int vm_confidential_host_supports(const char *root, VmConfidentialFeature f, char **ret_reason);

/* Whether the output of `qemu-system-… -object help` lists object (a line holding just its name). */
bool vm_confidential_qemu_lists(const char *help, size_t size, const char *object);

/* What memvisor refuses to do to a confidential guest. */
typedef enum VmConfidentialOperation {
        VM_CONFIDENTIAL_OP_BALLOON,     /* balloon targets, schedules, the host-pressure policy */
        VM_CONFIDENTIAL_OP_MIGRATE,     /* MigratePages, every scope */
        VM_CONFIDENTIAL_OP_HOTPLUG,     /* virtio-mem, SetHotplugMemory */
        _VM_CONFIDENTIAL_OP_MAX,
        _VM_CONFIDENTIAL_OP_INVALID = -EINVAL,
} VmConfidentialOperation;

DECLARE_STRING_TABLE(vm_confidential_operation, VmConfidentialOperation);

/* 0 when op may act on the guest of spec; -EOPNOTSUPP for a confidential guest, with *ret_reason (for people:
 * why private memory cannot be reclaimed or moved that way); -ENOMEM. */
int vm_confidential_refusal(const VmSpec *spec, VmConfidentialOperation op, char **ret_reason);

/* At definition and before each start: 0 for a guest that is not confidential; otherwise -EOPNOTSUPP with
 * *ret_reason: the host's reason when it lacks support, else that this build does not launch such guests. */
int vm_confidential_check(const VmSpec *spec, const char *root, char **ret_reason);
