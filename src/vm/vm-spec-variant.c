/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/strv.h"
#include "vm/vm-spec-internal.h"
#include "vm/vm-spec.h"

/* Keys a variant may not change: the guest's identity. */
static bool key_is_fixed(const VmKey *k) {
        return streq(k->section, "VM") && streq(k->key, "Name");
}

int vm_spec_key_resolve(const char *name, const char **ret_section, const char **ret_key, char **ret_reason) {
        const VmKey *found = NULL;
        const char *dot;

        if (!name || !*name)
                return vm_spec_reasonf(ret_reason, -EINVAL, "expected a key of the guest's .vm such as Append or "
                                       "Memory.Policy");
        dot = strchr(name, '.');
        if (dot) {
                _cleanup_free_ char *section = strndup(name, (size_t) (dot - name));

                if (!section)
                        return -ENOMEM;
                found = vm_key_find(section, dot + 1);
                if (!found)
                        return vm_spec_reasonf(ret_reason, -EINVAL, "%s is not a key of memvisor.vm(5)", name);
        } else {
                char sections[256] = "";
                unsigned n = 0;

                for (size_t i = 0; i < vm_keys_n; i++) {
                        size_t l = strlen(sections);

                        if (!streq(vm_keys[i].key, name))
                                continue;
                        n++;
                        found = vm_keys + i;
                        (void) snprintf(sections + l, sizeof(sections) - l, "%s%s.%s", l > 0 ? ", " : "",
                                        vm_keys[i].section, name);
                }
                if (n == 0)
                        return vm_spec_reasonf(ret_reason, -EINVAL, "%s is not a key of memvisor.vm(5)", name);
                if (n > 1)
                        return vm_spec_reasonf(ret_reason, -EINVAL, "%s is a key of several sections: say which "
                                               "(%s)", name, sections);
        }
        if (key_is_fixed(found))
                return vm_spec_reasonf(ret_reason, -EINVAL, "%s.%s cannot vary: it is the guest's identity",
                                       found->section, found->key);
        if (found->type == VM_KEY_STRV)
                return vm_spec_reasonf(ret_reason, -EINVAL, "%s.%s takes a list; only keys with one value can "
                                       "vary", found->section, found->key);
        if (ret_section)
                *ret_section = found->section;
        if (ret_key)
                *ret_key = found->key;
        return 0;
}

/* A file a variant names must be there when the run starts, not only when its block boots. */
static int check_file(const char *key, const char *path, char **ret_reason) {
        struct stat st;

        if (!path)
                return 0;
        if (stat(path, &st) < 0)
                return vm_spec_reasonf(ret_reason, -errno, "%s=%s: %s", key, path, strerror(errno));
        if (S_ISDIR(st.st_mode))
                return vm_spec_reasonf(ret_reason, -EISDIR, "%s=%s: is a directory", key, path);
        if (access(path, R_OK) < 0)
                return vm_spec_reasonf(ret_reason, -errno, "%s=%s: %s", key, path, strerror(errno));
        return 0;
}

int vm_spec_with_settings(const VmSpec *base, char *const *names, char *const *values, size_t n, VmSpec **ret,
                          char **ret_field, char **ret_reason) {
        _cleanup_(vm_spec_freep) VmSpec *c = NULL;
        const char *field = NULL;
        int r;

        if (!base || !ret || (n > 0 && (!names || !values)))
                return -EINVAL;
        r = vm_spec_copy(base, &c);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                const char *section, *key;
                VmSpecParser p = { .spec = c };

                r = vm_spec_key_resolve(names[i], &section, &key, ret_reason);
                if (r >= 0) {
                        const VmKey *k = vm_key_find(section, key);

                        r = vm_key_apply(&p, k, values[i], ret_reason);
                }
                if (r < 0) {
                        if (ret_field)
                                *ret_field = strdup(names[i]);
                        return r;
                }
        }
        r = vm_spec_validate_internal(c, &field, ret_reason);
        if (r >= 0)
                r = check_file("Kernel", c->kernel, ret_reason);
        if (r >= 0)
                r = check_file("Initrd", c->initrd, ret_reason);
        for (size_t i = 0; r >= 0 && i < c->n_disks; i++)
                r = check_file("Disk", c->disks[i], ret_reason);
        if (r < 0) {
                if (ret_field && field)
                        *ret_field = strdup(field);
                return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}
