/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Confidential guests: host support from sysfs and /dev, the QEMU object list, and the refusals (see
 * vm-confidential.h). */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "vm/vm-confidential.h"

static const char *const vm_confidential_feature_table[_VM_CONFIDENTIAL_FEATURE_MAX] = {
        [VM_CONFIDENTIAL_FEATURE_SEV] = "sev",
        [VM_CONFIDENTIAL_FEATURE_SEV_ES] = "sev-es",
        [VM_CONFIDENTIAL_FEATURE_SEV_SNP] = "sev-snp",
        [VM_CONFIDENTIAL_FEATURE_TDX] = "tdx",
};
DEFINE_STRING_TABLE(vm_confidential_feature, VmConfidentialFeature, _VM_CONFIDENTIAL_FEATURE_MAX);

static const char *const vm_confidential_operation_table[_VM_CONFIDENTIAL_OP_MAX] = {
        [VM_CONFIDENTIAL_OP_BALLOON] = "balloon",
        [VM_CONFIDENTIAL_OP_MIGRATE] = "page-migration",
        [VM_CONFIDENTIAL_OP_HOTPLUG] = "virtio-mem",
};
DEFINE_STRING_TABLE(vm_confidential_operation, VmConfidentialOperation, _VM_CONFIDENTIAL_OP_MAX);

/* Where the kernel says it supports a feature: a parameter of the KVM vendor module. */
static const struct {
        const char *module, *parameter, *object, *name;
        bool psp;       /* needs /dev/sev */
} features[_VM_CONFIDENTIAL_FEATURE_MAX] = {
        [VM_CONFIDENTIAL_FEATURE_SEV] = { "kvm_amd", "sev", "sev-guest", "SEV", true },
        [VM_CONFIDENTIAL_FEATURE_SEV_ES] = { "kvm_amd", "sev_es", "sev-guest", "SEV-ES", true },
        [VM_CONFIDENTIAL_FEATURE_SEV_SNP] = { "kvm_amd", "sev_snp", "sev-snp-guest", "SEV-SNP", true },
        [VM_CONFIDENTIAL_FEATURE_TDX] = { "kvm_intel", "tdx", "tdx-guest", "TDX", false },
};

const char *vm_confidential_feature_qemu_object(VmConfidentialFeature f) {
        return (int) f >= 0 && f < _VM_CONFIDENTIAL_FEATURE_MAX ? features[f].object : NULL;
}

VmConfidentialFeature vm_confidential_feature_of(VmConfidential kind) {
        switch (kind) {
        case VM_CONFIDENTIAL_SEV:
                return VM_CONFIDENTIAL_FEATURE_SEV;
        case VM_CONFIDENTIAL_SEV_SNP:
                return VM_CONFIDENTIAL_FEATURE_SEV_SNP;
        case VM_CONFIDENTIAL_TDX:
                return VM_CONFIDENTIAL_FEATURE_TDX;
        case VM_CONFIDENTIAL_NO:
        case _VM_CONFIDENTIAL_MAX:
        case _VM_CONFIDENTIAL_INVALID:
                break;
        }
        return _VM_CONFIDENTIAL_FEATURE_INVALID;
}

static bool exists_below(const char *root, const char *path) {
        _cleanup_free_ char *p = path_join(root, path);

        return p && access(p, F_OK) >= 0;
}

static int reason(char **ret_reason, const char *fmt, const char *a, const char *b) {
        if (asprintf(ret_reason, fmt, a, b) < 0) {
                *ret_reason = NULL;
                return -ENOMEM;
        }
        return 0;
}

int vm_confidential_host_supports(const char *root, VmConfidentialFeature f, char **ret_reason) {
        _cleanup_free_ char *module_dir = NULL, *param = NULL, *value = NULL;
        size_t n;
        int r;

        *ret_reason = NULL;
        if ((int) f < 0 || f >= _VM_CONFIDENTIAL_FEATURE_MAX)
                return -EINVAL;
        {
                /* as GetHostInfo's "kvm" and QEMU test it: opened for reading and writing */
                _cleanup_free_ char *kvm = path_join(root, "dev/kvm");
                _cleanup_close_ int fd = -EBADF;

                if (!kvm)
                        return -ENOMEM;
                fd = open(kvm, O_RDWR | O_CLOEXEC | O_NOCTTY);
                if (fd < 0 && errno == ENOENT)
                        return reason(ret_reason, "no /dev/kvm: %s guests need KVM%s", features[f].name, "");
                if (fd < 0)
                        return reason(ret_reason, "cannot open /dev/kvm (%s): %s guests need KVM", strerror(errno),
                                      features[f].name);
        }
        if (asprintf(&module_dir, "sys/module/%s", features[f].module) < 0 ||
            asprintf(&param, "sys/module/%s/parameters/%s", features[f].module, features[f].parameter) < 0)
                return -ENOMEM;
        if (!exists_below(root, module_dir))
                return reason(ret_reason, "the %s module is not loaded (no /sys/module/%s)", features[f].module,
                              features[f].module);
        {
                _cleanup_free_ char *path = path_join(root, param);

                if (!path)
                        return -ENOMEM;
                r = read_full_file(path, 64, &value, &n);
        }
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reason(ret_reason, "%s has no parameter %s (a kernel without that support)",
                              features[f].module, features[f].parameter);
        value[strcspn(value, "\n")] = 0;
        if (!streq(value, "Y") && !streq(value, "1")) {
                _cleanup_free_ char *what = NULL;

                if (asprintf(&what, "%s %s=%s", features[f].module, features[f].parameter, value) < 0)
                        return -ENOMEM;
                return reason(ret_reason, "%s: %s is off (not enabled in the firmware, or not by the kernel)",
                              what, features[f].name);
        }
        if (features[f].psp && !exists_below(root, "dev/sev"))
                return reason(ret_reason, "no /dev/sev: the AMD Secure Processor driver (ccp) is not there for "
                              "%s%s", features[f].name, "");
        return 1;
}

bool vm_confidential_qemu_lists(const char *help, size_t size, const char *object) {
        size_t len = strlen(object);

        for (size_t i = 0; i < size;) {
                const char *line = help + i, *nl = memchr(line, '\n', size - i);
                size_t n = nl ? (size_t) (nl - line) : size - i;

                i += n + 1;
                while (n > 0 && (*line == ' ' || *line == '\t')) {
                        line++;
                        n--;
                }
                while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
                        n--;
                if (n == len && memcmp(line, object, len) == 0)
                        return true;
        }
        return false;
}

int vm_confidential_refusal(const VmSpec *spec, VmConfidentialOperation op, char **ret_reason) {
        const char *kind = vm_confidential_to_string(spec->confidential), *why;

        *ret_reason = NULL;
        if (spec->confidential == VM_CONFIDENTIAL_NO)
                return 0;
        switch (op) {
        case VM_CONFIDENTIAL_OP_BALLOON:
                why = "the host cannot reclaim a confidential guest's private memory through the balloon (it is "
                      "encrypted for the guest alone, and the pages the guest gives up are not the host's to reuse "
                      "without the guest converting them to shared first)";
                break;
        case VM_CONFIDENTIAL_OP_MIGRATE:
                why = "a confidential guest's private memory cannot be moved between host nodes with "
                      "migrate_pages or move_pages (it is encrypted for the guest and pinned or held by the "
                      "kernel's guest memory, not movable process memory)";
                break;
        case VM_CONFIDENTIAL_OP_HOTPLUG:
                why = "virtio-mem cannot plug or unplug a confidential guest's private memory";
                break;
        case _VM_CONFIDENTIAL_OP_MAX:
        case _VM_CONFIDENTIAL_OP_INVALID:
        default:
                return -EINVAL;
        }
        if (asprintf(ret_reason, "Confidential=%s: %s", strna(kind), why) < 0) {
                *ret_reason = NULL;
                return -ENOMEM;
        }
        return -EOPNOTSUPP;
}

int vm_confidential_check(const VmSpec *spec, const char *root, char **ret_reason) {
        _cleanup_free_ char *why = NULL;
        const char *kind = vm_confidential_to_string(spec->confidential);
        VmConfidentialFeature f;
        int r;

        *ret_reason = NULL;
        if (spec->confidential == VM_CONFIDENTIAL_NO)
                return 0;
        f = vm_confidential_feature_of(spec->confidential);
        if ((int) f < 0)
                return -EINVAL;
        r = vm_confidential_host_supports(root, f, &why);
        if (r < 0)
                return r;
        if (r == 0)
                r = asprintf(ret_reason, "Confidential=%s: this host cannot run %s guests: %s", strna(kind),
                             features[f].name, why);
        else
                r = asprintf(ret_reason, "Confidential=%s: not supported by this memvisor build on this host: it does "
                             "not pass QEMU the %s launch arguments (a %s object, with cbitpos and "
                             "reduced-phys-bits for SEV, and -machine confidential-guest-support=), which cannot be "
                             "tested here", strna(kind), features[f].name, features[f].object);
        if (r < 0) {
                *ret_reason = NULL;
                return -ENOMEM;
        }
        return -EOPNOTSUPP;
}
