/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Confidential guests (vm-confidential.h): host support read from a fixture root, the QEMU object list, the
 * definition rules, the refusals of balloon, page migration and virtio-mem for a spec with Confidential= set,
 * and the start check (the host's reason, or this build's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "vm/vm-confidential.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static char *fixture_new(void) {
        char *dir = strdup("/tmp/test-vm-confidential-XXXXXX");

        assert_non_null(dir);
        assert_non_null(mkdtemp(dir));
        return dir;
}

static void fixture_free(char *dir) {
        (void) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
}

static void put(const char *root, const char *path, const char *text) {
        _cleanup_free_ char *p = path_join(root, path);
        char *slash;

        assert_non_null(p);
        for (slash = strchr(p + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
                *slash = 0;
                (void) mkdir(p, 0755);
                *slash = '/';
        }
        assert_int_equal(write_file_atomic(p, text, strlen(text), 0644), 0);
}

static void assert_contains(const char *s, const char *part) {
        if (!s || !strstr(s, part))
                fail_msg("'%s' does not contain '%s'", strna(s), part);
}

static void test_host_support(void **state) {
        char *root = fixture_new();
        char *why = NULL;

        /* nothing: no KVM at all */
        assert_int_equal(vm_confidential_host_supports(root, VM_CONFIDENTIAL_FEATURE_SEV, &why), 0);
        assert_contains(why, "no /dev/kvm");
        free(why);

        put(root, "dev/kvm", "");
        assert_int_equal(vm_confidential_host_supports(root, VM_CONFIDENTIAL_FEATURE_TDX, &why), 0);
        assert_contains(why, "the kvm_intel module is not loaded");
        free(why);
        put(root, "sys/module/kvm_intel/parameters/nested", "Y\n");
        assert_int_equal(vm_confidential_host_supports(root, VM_CONFIDENTIAL_FEATURE_TDX, &why), 0);
        assert_contains(why, "kvm_intel has no parameter tdx");
        free(why);
        put(root, "sys/module/kvm_intel/parameters/tdx", "N\n");
        assert_int_equal(vm_confidential_host_supports(root, VM_CONFIDENTIAL_FEATURE_TDX, &why), 0);
        assert_contains(why, "kvm_intel tdx=N: TDX is off");
        free(why);
        put(root, "sys/module/kvm_intel/parameters/tdx", "Y\n");
        assert_int_equal(vm_confidential_host_supports(root, VM_CONFIDENTIAL_FEATURE_TDX, &why), 1);
        assert_null(why);

        /* SEV: the parameter (Y or 1) and the PSP */
        put(root, "sys/module/kvm_amd/parameters/sev", "1\n");
        put(root, "sys/module/kvm_amd/parameters/sev_es", "N\n");
        assert_int_equal(vm_confidential_host_supports(root, VM_CONFIDENTIAL_FEATURE_SEV, &why), 0);
        assert_contains(why, "no /dev/sev");
        free(why);
        put(root, "dev/sev", "");
        assert_int_equal(vm_confidential_host_supports(root, VM_CONFIDENTIAL_FEATURE_SEV, &why), 1);
        assert_int_equal(vm_confidential_host_supports(root, VM_CONFIDENTIAL_FEATURE_SEV_ES, &why), 0);
        assert_contains(why, "kvm_amd sev_es=N: SEV-ES is off");
        free(why);
        assert_int_equal(vm_confidential_host_supports(root, VM_CONFIDENTIAL_FEATURE_SEV_SNP, &why), 0);
        assert_contains(why, "kvm_amd has no parameter sev_snp");
        free(why);
        assert_int_equal(vm_confidential_host_supports(root, _VM_CONFIDENTIAL_FEATURE_MAX, &why), -EINVAL);
        fixture_free(root);
}

static void test_qemu_lists(void **state) {
        /* QEMU 7.2's `-object help`, shortened */
        const char *help = "List of user creatable objects:\n  authz-list\n  memory-backend-memfd\n  sev-guest\n"
                           "  thread-context\n";

        assert_true(vm_confidential_qemu_lists(help, strlen(help), "sev-guest"));
        assert_true(vm_confidential_qemu_lists(help, strlen(help), "thread-context"));
        assert_false(vm_confidential_qemu_lists(help, strlen(help), "tdx-guest"));
        assert_false(vm_confidential_qemu_lists(help, strlen(help), "sev"));
        assert_false(vm_confidential_qemu_lists(help, strlen(help), "sev-snp-guest"));
        /* the last line without its newline, cut short: no partial match */
        assert_true(vm_confidential_qemu_lists("  tdx-guest", 11, "tdx-guest"));
        assert_false(vm_confidential_qemu_lists("  tdx-gue", 9, "tdx-guest"));
        assert_string_equal(vm_confidential_feature_qemu_object(vm_confidential_feature_of(VM_CONFIDENTIAL_TDX)),
                            "tdx-guest");
        assert_string_equal(vm_confidential_feature_qemu_object(VM_CONFIDENTIAL_FEATURE_SEV_SNP), "sev-snp-guest");
        assert_int_equal(vm_confidential_feature_of(VM_CONFIDENTIAL_NO), _VM_CONFIDENTIAL_FEATURE_INVALID);
}

static VmSpec *parse(const char *text, VmSpecError *e) {
        VmSpec *s = NULL;

        *e = (VmSpecError) {};
        (void) vm_spec_parse_ini("c.vm", text, NULL, &s, e);
        return s;
}

static void test_definition(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;
        VmSpecError e;

        s = parse("[VM]\nDisk=/d.img\nConfidential=sev-snp\n", &e);
        assert_non_null(s);
        assert_int_equal(s->confidential, VM_CONFIDENTIAL_SEV_SNP);
        s = vm_spec_free(s);
        s = parse("[VM]\nDisk=/d.img\n", &e);
        assert_int_equal(s->confidential, VM_CONFIDENTIAL_NO);
        s = vm_spec_free(s);

        static const struct {
                const char *text, *field, *words;
        } bad[] = {
                { "[VM]\nDisk=/d.img\nConfidential=sme\n", "VM.Confidential", "expected no, sev, sev-snp or tdx" },
                { "[VM]\nDisk=/d.img\nConfidential=tdx\nAccelerator=tcg\n", "VM.Confidential", "needs KVM" },
                { "[VM]\nDisk=/d.img\nConfidential=sev\n[Memory]\nHotplugSize=128M\n", "Memory.HotplugSize",
                  "virtio-mem cannot plug or unplug" },
                { "[VM]\nDisk=/d.img\nConfidential=sev\n[Memory]\nMigrateBetween=0,1\nMigrateEverySec=1\n"
                  "MigrateCount=2\n", "Memory.MigrateBetween", "cannot be moved between host nodes" },
                { "[VM]\nDisk=/d.img\nConfidential=tdx\n[Balloon]\nSchedule=oscillate\nFrom=128M\nTo=256M\n"
                  "EverySec=1\n", "Balloon.Schedule", "through the balloon" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                s = parse(bad[i].text, &e);
                assert_null(s);
                assert_string_equal(e.field, bad[i].field);
                assert_contains(e.message, bad[i].words);
                vm_spec_error_done(&e);
        }
}

/* The core check that SetBalloon (and schedules, the policy), MigratePages and SetHotplugMemory make. */
static void test_refusal(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *s = vm_spec_new();
        char *why = (char *) "untouched";

        assert_non_null(s);
        for (VmConfidentialOperation op = 0; op < _VM_CONFIDENTIAL_OP_MAX; op++) {
                assert_int_equal(vm_confidential_refusal(s, op, &why), 0);
                assert_null(why);
        }
        s->confidential = VM_CONFIDENTIAL_SEV;
        assert_int_equal(vm_confidential_refusal(s, VM_CONFIDENTIAL_OP_BALLOON, &why), -EOPNOTSUPP);
        assert_contains(why, "Confidential=sev: the host cannot reclaim a confidential guest's private memory");
        free(why);
        s->confidential = VM_CONFIDENTIAL_TDX;
        assert_int_equal(vm_confidential_refusal(s, VM_CONFIDENTIAL_OP_MIGRATE, &why), -EOPNOTSUPP);
        assert_contains(why, "Confidential=tdx: a confidential guest's private memory cannot be moved");
        free(why);
        s->confidential = VM_CONFIDENTIAL_SEV_SNP;
        assert_int_equal(vm_confidential_refusal(s, VM_CONFIDENTIAL_OP_HOTPLUG, &why), -EOPNOTSUPP);
        assert_contains(why, "Confidential=sev-snp: virtio-mem cannot plug or unplug");
        free(why);
        assert_int_equal(vm_confidential_refusal(s, _VM_CONFIDENTIAL_OP_MAX, &why), -EINVAL);
        assert_string_equal(vm_confidential_operation_to_string(VM_CONFIDENTIAL_OP_MIGRATE), "page-migration");
}

static void test_check_start(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *s = vm_spec_new();
        char *root = fixture_new();
        char *why = NULL;

        assert_non_null(s);
        assert_int_equal(vm_confidential_check(s, root, &why), 0);
        assert_null(why);

        /* the host lacks it: its reason */
        s->confidential = VM_CONFIDENTIAL_SEV;
        assert_int_equal(vm_confidential_check(s, root, &why), -EOPNOTSUPP);
        assert_contains(why, "Confidential=sev: this host cannot run SEV guests: no /dev/kvm");
        free(why);

        /* the host has it: this build does not launch it */
        put(root, "dev/kvm", "");
        put(root, "dev/sev", "");
        put(root, "sys/module/kvm_amd/parameters/sev", "Y\n");
        assert_int_equal(vm_confidential_check(s, root, &why), -EOPNOTSUPP);
        assert_contains(why, "Confidential=sev: not supported by this memvisor build on this host");
        assert_contains(why, "sev-guest");
        free(why);
        fixture_free(root);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_host_support),
                cmocka_unit_test(test_qemu_lists),
                cmocka_unit_test(test_definition),
                cmocka_unit_test(test_refusal),
                cmocka_unit_test(test_check_start),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
