/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM specs: every key good and bad in the .vm form and the JSON form (which must accept exactly the same
 * things and say the same), cross-field validation, name handling, round trips through vm_spec_to_ini() and
 * vm_spec_to_json(), and vm_spec_equal(). */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/strv.h"
#include "vm/vm-spec.h"

#define BASE "[VM]\nKernel=/boot/vmlinuz\n"

/* What a rejected value returns: -EINVAL, or -ERANGE/-E2BIG for values out of bounds. */
#define IN_SET_ERRNO(r) ((r) == -EINVAL || (r) == -ERANGE || (r) == -E2BIG)

/* ---------------------------------------------------------------------------------------------------- */
/* Helpers */

static char *strstrip_dup(const char *s, size_t n) {
        while (n > 0 && isspace((unsigned char) *s)) {
                s++;
                n--;
        }
        while (n > 0 && isspace((unsigned char) s[n - 1]))
                n--;
        return strndup(s, n);
}

/* Turns simple INI text (no continuation lines, no resets in the middle of a list) into the JSON form with
 * string values, arrays for Disk= and ExtraArgs=, and null for empty assignments. */
static json_object *ini_to_json(const char *text) {
        json_object *root = json_object_new_object(), *section = NULL;
        const char *p = text;

        assert_non_null(root);
        while (*p) {
                const char *e = strchrnul(p, '\n'), *eq;
                _cleanup_free_ char *line = strstrip_dup(p, (size_t) (e - p));

                assert_non_null(line);
                p = *e ? e + 1 : e;
                if (line[0] == 0 || line[0] == '#')
                        continue;
                if (line[0] == '[') {
                        line[strlen(line) - 1] = 0;
                        if (!json_object_object_get_ex(root, line + 1, &section)) {
                                section = json_object_new_object();
                                json_object_object_add(root, line + 1, section);
                        }
                        continue;
                }
                eq = strchr(line, '=');
                assert_non_null(eq);
                assert_non_null(section);
                {
                        _cleanup_free_ char *key = strstrip_dup(line, (size_t) (eq - line));
                        _cleanup_free_ char *value = strstrip_dup(eq + 1, strlen(eq + 1));

                        if (streq(key, "Disk") || streq(key, "ExtraArgs")) {
                                json_object *a;

                                if (!json_object_object_get_ex(section, key, &a)) {
                                        a = json_object_new_array();
                                        json_object_object_add(section, key, a);
                                }
                                if (!isempty(value))
                                        json_object_array_add(a, json_object_new_string(value));
                        } else
                                json_object_object_add(section, key,
                                                       isempty(value) ? NULL : json_object_new_string(value));
                }
        }
        return root;
}

static VmSpec *parse_ini_ok(const char *filename, const char *text, const char *hint) {
        VmSpecError e = {};
        VmSpec *s = NULL;
        int r;

        r = vm_spec_parse_ini(filename, text, hint, &s, &e);
        if (r < 0)
                fail_msg("parse failed with %d (field %s: %s) for:\n%s", r, strna(e.field), strna(e.message), text);
        assert_non_null(s);
        assert_null(e.message);
        return s;
}

static VmSpec *parse_json_ok(json_object *j, const char *hint) {
        VmSpecError e = {};
        VmSpec *s = NULL;
        int r;

        r = vm_spec_parse_json(j, hint, &s, &e);
        if (r < 0)
                fail_msg("JSON parse failed with %d (field %s: %s) for: %s", r, strna(e.field), strna(e.message),
                         json_object_to_json_string(j));
        assert_non_null(s);
        return s;
}

static VmSpec *parse_json_text_ok(const char *json, const char *hint) {
        _cleanup_json_ json_object *j = json_tokener_parse(json);

        assert_non_null(j);
        return parse_json_ok(j, hint);
}

static void check_error(int r, const VmSpecError *e, const char *field, const char *message, const char *input) {
        if (r >= 0)
                fail_msg("parse unexpectedly succeeded for:\n%s", input);
        if (!streq_ptr(e->message, message))
                fail_msg("message mismatch for:\n%s\nexpected: %s\n     got: %s", input, message,
                         strna(e->message));
        if (!streq_ptr(e->field, field))
                fail_msg("field mismatch for:\n%s\nexpected: %s\n     got: %s", input, strna(field),
                         strna(e->field));
}

static void ini_fails(const char *filename, const char *text, const char *hint, const char *field,
                      const char *message) {
        VmSpecError e = {};
        VmSpec *s = NULL;
        int r;

        r = vm_spec_parse_ini(filename, text, hint, &s, &e);
        check_error(r, &e, field, message, text);
        assert_true(IN_SET_ERRNO(r));
        assert_null(s);
        vm_spec_error_done(&e);
}

static void json_fails(const char *json, const char *hint, const char *field, const char *message) {
        _cleanup_json_ json_object *j = json_tokener_parse(json);
        VmSpecError e = {};
        VmSpec *s = NULL;
        int r;

        assert_non_null(j);
        r = vm_spec_parse_json(j, hint, &s, &e);
        check_error(r, &e, field, message, json);
        assert_true(IN_SET_ERRNO(r));
        assert_null(s);
        vm_spec_error_done(&e);
}

/* Parses text as INI and, converted, as JSON: both must give equal specs. Returns the INI one. */
static VmSpec *parse_both_ok(const char *text) {
        _cleanup_json_ json_object *j = ini_to_json(text);
        _cleanup_(vm_spec_freep) VmSpec *from_json = NULL;
        VmSpec *from_ini;

        from_ini = parse_ini_ok("web.vm", text, NULL);
        from_json = parse_json_ok(j, "web");
        if (!vm_spec_equal(from_ini, from_json))
                fail_msg("INI and JSON forms differ for:\n%s\nJSON: %s", text, json_object_to_json_string(j));
        return from_ini;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Defaults and the name */

static void test_defaults(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *n = vm_spec_new(), *s = NULL;

        assert_non_null(n);
        assert_null(n->name);
        assert_int_equal(n->memory_bytes, 512 << 20);
        assert_int_equal(n->vcpus, 1);
        assert_string_equal(n->machine, "q35");
        assert_int_equal(n->accel, VM_ACCEL_AUTO);
        assert_null(n->qemu_binary);
        assert_null(n->kernel);
        assert_null(n->initrd);
        assert_null(n->append);
        assert_null(n->disks);
        assert_int_equal(n->n_disks, 0);
        assert_true(n->balloon);
        assert_null(n->extra_args);
        assert_int_equal(n->n_extra_args, 0);
        assert_false(n->autostart);
        assert_int_equal(n->start_timeout_usec, 30 * USEC_PER_SEC);
        assert_int_equal(n->stop_timeout_usec, 30 * USEC_PER_SEC);
        assert_int_equal(n->backend, VM_MEMORY_BACKEND_RAM);
        assert_false(n->hugepages);
        assert_null(n->mem_path);
        assert_int_equal(n->policy, VM_MEMORY_POLICY_DEFAULT);
        assert_null(n->host_nodes);
        assert_false(n->prealloc);
        assert_int_equal(n->hugepage_size, 0);
        assert_int_equal(n->share, VM_MEMORY_SHARE_DEFAULT);
        assert_true(n->reserve);
        assert_int_equal(n->prealloc_threads, 0);
        assert_true(n->merge);
        assert_true(n->dump);
        assert_int_equal(n->restart, VM_RESTART_NO);
        assert_int_equal(n->restart_usec, USEC_PER_SEC);
        assert_int_equal(n->restart_max_usec, 60 * USEC_PER_SEC);
        assert_int_equal(n->start_limit_burst, 5);
        assert_int_equal(n->start_limit_interval_usec, 60 * USEC_PER_SEC);

        /* A minimal file gives the defaults plus what it sets; the name comes from the file name. */
        s = parse_ini_ok("/etc/memvisor/vms/web.vm", BASE, NULL);
        assert_string_equal(s->name, "web");
        assert_string_equal(s->kernel, "/boot/vmlinuz");
        free(n->name);
        n->name = strdup("web");
        n->kernel = strdup("/boot/vmlinuz");
        assert_true(vm_spec_equal(n, s));
}

static void test_string_tables(void **state) {
        assert_string_equal(vm_accel_to_string(VM_ACCEL_AUTO), "auto");
        assert_string_equal(vm_accel_to_string(VM_ACCEL_KVM), "kvm");
        assert_string_equal(vm_accel_to_string(VM_ACCEL_TCG), "tcg");
        assert_null(vm_accel_to_string(_VM_ACCEL_MAX));
        assert_int_equal(vm_accel_from_string("tcg"), VM_ACCEL_TCG);
        assert_int_equal(vm_accel_from_string("KVM"), -EINVAL);

        assert_string_equal(vm_memory_backend_to_string(VM_MEMORY_BACKEND_MEMFD), "memfd");
        assert_int_equal(vm_memory_backend_from_string("file"), VM_MEMORY_BACKEND_FILE);
        assert_int_equal(vm_memory_backend_from_string(NULL), -EINVAL);

        assert_string_equal(vm_memory_policy_to_string(VM_MEMORY_POLICY_INTERLEAVE), "interleave");
        assert_int_equal(vm_memory_policy_from_string("preferred"), VM_MEMORY_POLICY_PREFERRED);

        assert_string_equal(vm_restart_policy_to_string(VM_RESTART_ON_FAILURE), "on-failure");
        assert_int_equal(vm_restart_policy_from_string("always"), VM_RESTART_ALWAYS);
        assert_int_equal(vm_restart_policy_from_string("on_failure"), -EINVAL);
}

static void test_name(void **state) {
        char name64[65], name65[66];

        assert_true(vm_name_is_valid("web"));
        assert_true(vm_name_is_valid("web-1.test_a"));
        assert_true(vm_name_is_valid("0"));
        assert_false(vm_name_is_valid(NULL));
        assert_false(vm_name_is_valid(""));
        assert_false(vm_name_is_valid(".web"));
        assert_false(vm_name_is_valid("-web"));
        assert_false(vm_name_is_valid("a b"));
        assert_false(vm_name_is_valid("a,b"));
        assert_false(vm_name_is_valid("a/b"));
        assert_false(vm_name_is_valid("wéb"));
        memset(name64, 'a', 64);
        name64[64] = 0;
        memset(name65, 'a', 65);
        name65[65] = 0;
        assert_true(vm_name_is_valid(name64));
        assert_false(vm_name_is_valid(name65));

        /* Name= agreeing with the file name, a hint overriding the file name, a file name without ".vm". */
        {
                _cleanup_(vm_spec_freep) VmSpec *a = parse_ini_ok("web.vm", "[VM]\nName=web\nKernel=/k\n", NULL);
                _cleanup_(vm_spec_freep) VmSpec *b = parse_ini_ok("web.vm", BASE, "db");
                _cleanup_(vm_spec_freep) VmSpec *c = parse_ini_ok("defs.conf", "[VM]\nName=db\nKernel=/k\n", NULL);
                _cleanup_(vm_spec_freep) VmSpec *d = parse_ini_ok(NULL, BASE, "x");

                assert_string_equal(a->name, "web");
                assert_string_equal(b->name, "db");
                assert_string_equal(c->name, "db");
                assert_string_equal(d->name, "x");
        }

        ini_fails("web.vm", "[VM]\nKernel=/k\nName=db\n", NULL, "VM.Name",
                  "web.vm:3: Invalid value 'db' for Name=: expected 'web' (the file name)");
        ini_fails("web.vm", "[VM]\nKernel=/k\nName=web\n", "db", "VM.Name",
                  "web.vm:3: Invalid value 'web' for Name=: expected 'db' (the name the VM is defined under)");
        ini_fails("defs.conf", BASE, NULL, "VM.Name", "defs.conf: Name= is not set");
        ini_fails("web.vm", "[VM]\nName=.web\n", NULL, "VM.Name",
                  "web.vm:2: Invalid value '.web' for Name=: expected a name of 1 to 64 characters from a-z, A-Z, "
                  "0-9, '_', '.', '-', not starting with '.' or '-'");
        /* A file name that is no valid VM name. */
        ini_fails("bad name.vm", BASE, NULL, "VM.Name",
                  "bad name.vm: Invalid name 'bad name': expected 1 to 64 characters from a-z, A-Z, 0-9, '_', '.', "
                  "'-', not starting with '.' or '-'");

        json_fails("{\"VM\": {\"Kernel\": \"/k\"}}", NULL, "VM.Name", "VM.Name: Name= is not set");
        json_fails("{\"VM\": {\"Name\": \"web\", \"Kernel\": \"/k\"}}", "db", "VM.Name",
                   "VM.Name: Invalid value 'web': expected 'db' (the name the VM is defined under)");
        {
                _cleanup_(vm_spec_freep) VmSpec *a = parse_json_text_ok("{\"VM\": {\"Name\": \"web\", \"Kernel\": \"/k\"}}", NULL);
                _cleanup_(vm_spec_freep) VmSpec *b = parse_json_text_ok("{\"VM\": {\"Kernel\": \"/k\"}}", "web");
                _cleanup_(vm_spec_freep) VmSpec *c = parse_json_text_ok("{\"VM\": {\"Name\": \"web\", \"Kernel\": \"/k\"}}", "web");

                assert_true(vm_spec_equal(a, b));
                assert_true(vm_spec_equal(a, c));
        }
}

/* ---------------------------------------------------------------------------------------------------- */
/* Every key: good values */

typedef struct GoodCase {
        const char *context;            /* extra INI text before the assignment (may be "") */
        const char *section;
        const char *key;
        const char *value;
        const char *canonical;          /* a line vm_spec_to_ini() must print */
} GoodCase;

static const GoodCase good_cases[] = {
        { "", "VM", "Name", "web", "Name=web\n" },
        { "", "VM", "Memory", "512M", "Memory=512M\n" },
        { "", "VM", "Memory", "1.5G", "Memory=1536M\n" },
        { "", "VM", "Memory", "1GiB", "Memory=1G\n" },
        { "", "VM", "Memory", "2048M", "Memory=2G\n" },
        { "", "VM", "Memory", "536870912", "Memory=512M\n" },
        { "", "VM", "Memory", "16M", "Memory=16M\n" },
        { "", "VM", "Memory", "16T", "Memory=16T\n" },
        { "", "VM", "Memory", "16384K", "Memory=16M\n" },
        { "[VM]\nMemory=2G\n", "VM", "Memory", "", "Memory=512M\n" },
        { "", "VM", "VCPUs", "1", "VCPUs=1\n" },
        { "", "VM", "VCPUs", "512", "VCPUs=512\n" },
        { "[VM]\nVCPUs=4\n", "VM", "VCPUs", "", "VCPUs=1\n" },
        { "", "VM", "Machine", "pc-q35-7.2", "Machine=pc-q35-7.2\n" },
        { "", "VM", "Machine", "microvm", "Machine=microvm\n" },
        { "[VM]\nMachine=pc\n", "VM", "Machine", "", "Machine=q35\n" },
        { "", "VM", "Accelerator", "kvm", "Accelerator=kvm\n" },
        { "", "VM", "Accelerator", "tcg", "Accelerator=tcg\n" },
        { "[VM]\nAccelerator=kvm\n", "VM", "Accelerator", "", "Accelerator=auto\n" },
        { "", "VM", "Emulator", "qemu-system-x86_64", "Emulator=qemu-system-x86_64\n" },
        { "", "VM", "Emulator", "/usr/local/bin/qemu", "Emulator=/usr/local/bin/qemu\n" },
        { "[VM]\nEmulator=/q\n", "VM", "Emulator", "", "Emulator=\n" },
        { "", "VM", "Kernel", "/srv/vmlinuz-6.1", "Kernel=/srv/vmlinuz-6.1\n" },
        { "", "VM", "Initrd", "/srv/initrd.img", "Initrd=/srv/initrd.img\n" },
        { "[VM]\nInitrd=/i\n", "VM", "Initrd", "", "Initrd=\n" },
        { "", "VM", "Append", "console=ttyS0 root=/dev/vda  quiet \"x y\"", "Append=console=ttyS0 root=/dev/vda  quiet \"x y\"\n" },
        { "", "VM", "Disk", "/var/lib/vm/root.qcow2", "Disk=/var/lib/vm/root.qcow2\n" },
        { "", "VM", "Disk", "/var/lib/vm/a,b.img", "Disk=/var/lib/vm/a,b.img\n" },
        { "", "VM", "Balloon", "no", "Balloon=no\n" },
        { "", "VM", "Balloon", "off", "Balloon=no\n" },
        { "", "VM", "Balloon", "0", "Balloon=no\n" },
        { "", "VM", "Balloon", "True", "Balloon=yes\n" },
        { "[VM]\nBalloon=no\n", "VM", "Balloon", "", "Balloon=yes\n" },
        { "", "VM", "ExtraArgs", "-device \"virtio-rng-pci,id=rng 0\"", "ExtraArgs=-device\nExtraArgs='virtio-rng-pci,id=rng 0'\n" },
        { "", "VM", "ExtraArgs", "-d guest_errors", "ExtraArgs=-d\nExtraArgs=guest_errors\n" },
        { "", "VM", "ExtraArgs", "a\\ b 'c\"d' \"\"", "ExtraArgs='a b'\nExtraArgs='c\"d'\nExtraArgs=''\n" },
        { "", "VM", "Autostart", "yes", "Autostart=yes\n" },
        { "", "VM", "StartTimeoutSec", "90", "StartTimeoutSec=90s\n" },
        { "", "VM", "StartTimeoutSec", "1min 30s", "StartTimeoutSec=90s\n" },
        { "", "VM", "StartTimeoutSec", "2min", "StartTimeoutSec=2min\n" },
        { "", "VM", "StartTimeoutSec", "3600s", "StartTimeoutSec=1h\n" },
        { "", "VM", "StartTimeoutSec", "1.5s", "StartTimeoutSec=1.5s\n" },
        { "", "VM", "StartTimeoutSec", "1s 500us", "StartTimeoutSec=1.0005s\n" },
        { "", "VM", "StartTimeoutSec", "250ms", "StartTimeoutSec=250ms\n" },
        { "", "VM", "StartTimeoutSec", "7us", "StartTimeoutSec=7us\n" },
        { "", "VM", "StartTimeoutSec", "infinity", "StartTimeoutSec=infinity\n" },
        { "[VM]\nStartTimeoutSec=5s\n", "VM", "StartTimeoutSec", "", "StartTimeoutSec=30s\n" },
        { "", "VM", "StopTimeoutSec", "10s", "StopTimeoutSec=10s\n" },
        { "", "VM", "StopTimeoutSec", "infinity", "StopTimeoutSec=infinity\n" },
        { "", "Memory", "Backend", "ram", "Backend=ram\n" },
        { "", "Memory", "Backend", "memfd", "Backend=memfd\n" },
        { "[Memory]\nPath=/dev/shm/web\n", "Memory", "Backend", "file", "Backend=file\n" },
        { "[Memory]\nBackend=memfd\n", "Memory", "HugePages", "yes", "HugePages=yes\n" },
        { "[Memory]\nBackend=file\nPath=/dev/hugepages/web\n", "Memory", "HugePages", "yes", "HugePages=yes\n" },
        { "[Memory]\nBackend=file\n", "Memory", "Path", "/dev/hugepages/web", "Path=/dev/hugepages/web\n" },
        { "", "Memory", "Policy", "default", "Policy=default\n" },
        { "[Memory]\nHostNodes=0-1\n", "Memory", "Policy", "bind", "Policy=bind\n" },
        { "[Memory]\nHostNodes=1\n", "Memory", "Policy", "preferred", "Policy=preferred\n" },
        { "[Memory]\nHostNodes=0-1\n", "Memory", "Policy", "interleave", "Policy=interleave\n" },
        { "[Memory]\nPolicy=bind\n", "Memory", "HostNodes", "0", "HostNodes=0\n" },
        { "[Memory]\nPolicy=bind\n", "Memory", "HostNodes", "00", "HostNodes=0\n" },
        { "[Memory]\nPolicy=bind\n", "Memory", "HostNodes", "0,2-3", "HostNodes=0,2-3\n" },
        { "[Memory]\nPolicy=bind\n", "Memory", "HostNodes", "3,1,2", "HostNodes=1-3\n" },
        { "[Memory]\nPolicy=bind\n", "Memory", "HostNodes", "0-1,1-2,7", "HostNodes=0-2,7\n" },
        { "[Memory]\nPolicy=bind\n", "Memory", "HostNodes", "5-5", "HostNodes=5\n" },
        { "[Memory]\nPolicy=interleave\n", "Memory", "HostNodes", "0-63", "HostNodes=0-63\n" },
        { "[Memory]\nPolicy=bind\n", "Memory", "Policy", "", "Policy=default\n" },
        { "", "Memory", "Prealloc", "yes", "Prealloc=yes\n" },
        { "[Memory]\nBackend=memfd\nHugePages=yes\n", "Memory", "HugePageSize", "2M", "HugePageSize=2M\n" },
        { "[Memory]\nBackend=memfd\nHugePages=yes\n", "Memory", "HugePageSize", "2048K", "HugePageSize=2M\n" },
        { "[VM]\nMemory=2G\n[Memory]\nBackend=memfd\nHugePages=yes\n", "Memory", "HugePageSize", "1G",
          "HugePageSize=1G\n" },
        { "[Memory]\nBackend=memfd\nHugePages=yes\n", "Memory", "HugePageSize", "64K", "HugePageSize=65536\n" },
        { "", "Memory", "HugePageSize", "0", "HugePageSize=0\n" },
        { "[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=2M\n", "Memory", "HugePageSize", "",
          "HugePageSize=0\n" },
        { "", "Memory", "Share", "yes", "Share=yes\n" },
        { "", "Memory", "Share", "off", "Share=no\n" },
        { "", "Memory", "Share", "default", "Share=default\n" },
        { "[Memory]\nShare=yes\n", "Memory", "Share", "", "Share=default\n" },
        { "", "Memory", "Reserve", "no", "Reserve=no\n" },
        { "", "Memory", "Reserve", "yes", "Reserve=yes\n" },
        { "[Memory]\nPrealloc=yes\n", "Memory", "PreallocThreads", "4", "PreallocThreads=4\n" },
        { "", "Memory", "PreallocThreads", "0", "PreallocThreads=0\n" },
        { "", "Memory", "Merge", "no", "Merge=no\n" },
        { "", "Memory", "Dump", "false", "Dump=no\n" },
        { "[Memory]\nMigrateEverySec=5s\nMigrateCount=20\n", "Memory", "MigrateBetween", "0,1", "MigrateBetween=0,1\n" },
        { "[Memory]\nMigrateEverySec=5s\nMigrateCount=20\n", "Memory", "MigrateBetween", "1,0", "MigrateBetween=0,1\n" },
        { "[Memory]\nMigrateEverySec=5s\nMigrateCount=20\n", "Memory", "MigrateBetween", "2-3", "MigrateBetween=2,3\n" },
        { "[Memory]\nMigrateEverySec=5s\nMigrateCount=20\n", "Memory", "MigrateBetween", "63,0", "MigrateBetween=0,63\n" },
        { "[Memory]\nMigrateBetween=0,1\nMigrateCount=2\n", "Memory", "MigrateEverySec", "2", "MigrateEverySec=2s\n" },
        { "[Memory]\nMigrateBetween=0,1\nMigrateCount=2\n", "Memory", "MigrateEverySec", "1.5s", "MigrateEverySec=1.5s\n" },
        { "[Memory]\nMigrateBetween=0,1\nMigrateCount=2\n", "Memory", "MigrateEverySec", "1440min", "MigrateEverySec=24h\n" },
        { "[Memory]\nMigrateBetween=0,1\nMigrateEverySec=5s\n", "Memory", "MigrateCount", "1", "MigrateCount=1\n" },
        { "[Memory]\nMigrateBetween=0,1\nMigrateEverySec=5s\n", "Memory", "MigrateCount", "10000", "MigrateCount=10000\n" },
        { "[Memory]\nMigrateBetween=0,1\nMigrateEverySec=5s\nMigrateCount=3\n", "Memory", "MigrateSettleSec", "0",
          "MigrateSettleSec=0\n" },
        { "[Memory]\nMigrateBetween=0,1\nMigrateEverySec=5s\nMigrateCount=3\n", "Memory", "MigrateSettleSec", "10min",
          "MigrateSettleSec=10min\n" },
        { "[Memory]\nMigrateBetween=0,1\nMigrateEverySec=5s\nMigrateCount=3\nMigrateSettleSec=5s\n", "Memory",
          "MigrateSettleSec", "", "MigrateSettleSec=1s\n" },
        { "", "Memory", "MigrateBetween", "", "MigrateBetween=\n" },
        { "", "Memory", "MigrateCount", "0", "MigrateCount=0\n" },
        { "", "Memory", "DirtyRing", "1024", "DirtyRing=1024\n" },
        { "", "Memory", "DirtyRing", "65536", "DirtyRing=65536\n" },
        { "[Memory]\nDirtyRing=4096\n", "Memory", "DirtyRing", "", "DirtyRing=0\n" },
        { "[Memory]\nHotplugSize=128M\n", "Memory", "MaxMemory", "1G", "MaxMemory=1G\n" },
        { "", "Memory", "HotplugSize", "256M", "HotplugSize=256M\n" },
        { "[Memory]\nHotplugSize=128M\n", "Memory", "HotplugNode", "0", "HotplugNode=0\n" },
        { "", "Restart", "Policy", "on-failure", "Policy=on-failure\n" },
        { "", "Restart", "Policy", "always", "Policy=always\n" },
        { "", "Restart", "Policy", "no", "Policy=no\n" },
        { "", "Restart", "RestartSec", "0", "RestartSec=0\n" },
        { "", "Restart", "RestartSec", "500ms", "RestartSec=500ms\n" },
        { "[Restart]\nRestartSec=5s\n", "Restart", "RestartSec", "", "RestartSec=1s\n" },
        { "", "Restart", "RestartMaxDelaySec", "5min", "RestartMaxDelaySec=5min\n" },
        { "", "Restart", "RestartMaxDelaySec", "1s", "RestartMaxDelaySec=1s\n" },
        { "", "Restart", "StartLimitBurst", "10", "StartLimitBurst=10\n" },
        { "", "Restart", "StartLimitBurst", "1", "StartLimitBurst=1\n" },
        { "", "Restart", "StartLimitIntervalSec", "10min", "StartLimitIntervalSec=10min\n" },
        { "", "Restart", "StartLimitIntervalSec", "infinity", "StartLimitIntervalSec=infinity\n" },
        { "", "Balloon", "Floor", "256M", "Floor=256M\n" },
        { "", "Balloon", "Floor", "268435456", "Floor=256M\n" },
        { "", "Balloon", "Ceiling", "384MiB", "Ceiling=384M\n" },
        { "", "Balloon", "Policy", "yes", "Policy=yes\n" },
        { "", "Balloon", "Policy", "off", "Policy=no\n" },
        { "", "Balloon", "Policy", "inherit", "Policy=inherit\n" },
        { "", "Balloon", "StatsIntervalSec", "2", "StatsIntervalSec=2s\n" },
        { "[Balloon]\nFrom=256M\nTo=384M\nEverySec=10s\nCount=3\n", "Balloon", "Schedule", "oscillate",
          "Schedule=oscillate\n" },
        { "[Balloon]\nFrom=448M\nTo=256M\nEverySec=500ms\nCount=4\n", "Balloon", "Schedule", "ramp",
          "Schedule=ramp\n" },
        { "", "Balloon", "EverySec", "1min", "EverySec=1min\n" },
        { "", "Balloon", "Count", "7", "Count=7\n" },
        { "[VM]\nVCPUs=4\n", "CPU", "VCPUAffinity", "1=3 0:2-3,1", "VCPUAffinity=0:1-3 1:3\n" },
        { "[VM]\nVCPUs=2\n", "CPU", "VCPUAffinity", "0:0 1:1", "VCPUAffinity=0:0 1:1\n" },
        { "[CPU]\nVCPUAffinity=0:1\n", "CPU", "VCPUAffinity", "", "VCPUAffinity=\n" },
        { "", "CPU", "EmulatorAffinity", "3,0-1", "EmulatorAffinity=0-1,3\n" },
        { "", "CPU", "EmulatorAffinity", "1023", "EmulatorAffinity=1023\n" },
};

static void test_good_values(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(good_cases); i++) {
                const GoodCase *c = good_cases + i;
                _cleanup_free_ char *text = NULL, *ini = NULL;
                _cleanup_(vm_spec_freep) VmSpec *s = NULL, *back = NULL;

                assert_true(asprintf(&text, BASE "%s[%s]\n%s=%s\n", c->context, c->section, c->key, c->value) > 0);
                s = parse_both_ok(text);

                assert_int_equal(vm_spec_to_ini(s, &ini), 0);
                if (!strstr(ini, c->canonical))
                        fail_msg("case %zu: '%s' not found in:\n%s", i, c->canonical, ini);

                back = parse_ini_ok("web.vm", ini, NULL);
                assert_true(vm_spec_equal(s, back));
        }
}

/* ---------------------------------------------------------------------------------------------------- */
/* Every key: bad values, with the exact reason, in both forms */

typedef struct BadCase {
        const char *section;
        const char *key;
        const char *value;
        const char *reason;
} BadCase;

#define R_SIZE "expected a size such as 512M or 2G"
#define R_SIZE_RANGE "expected a size between 16M and 16T"
#define R_VCPUS "expected a number of vCPUs between 1 and 512"
#define R_PATH "expected an absolute path"
#define R_BOOL "expected a boolean (yes or no)"
#define R_TIMEOUT "expected a time span such as 30s, 500ms or 2min, or infinity"
#define R_DELAY "expected a time span such as 1s, 500ms or 2min"
#define R_POSITIVE "expected a time span greater than 0"
#define R_NODES "expected NUMA node numbers and ranges such as 0, 0-1 or 0,2-3, with nodes below 64"
#define R_HUGEPAGE_SIZE "expected a huge page size such as 2M or 1G (a power of two from 64K to 16G)"
#define R_MIGRATE_NODES "expected two different NUMA nodes such as 0,1 (nodes below 64)"

static const BadCase bad_cases[] = {
        { "VM", "Name", "-web", "expected a name of 1 to 64 characters from a-z, A-Z, 0-9, '_', '.', '-', not starting with '.' or '-'" },
        { "VM", "Name", "a b", "expected a name of 1 to 64 characters from a-z, A-Z, 0-9, '_', '.', '-', not starting with '.' or '-'" },
        { "VM", "Memory", "12Q", R_SIZE },
        { "VM", "Memory", "-1", R_SIZE },
        { "VM", "Memory", "1.5", R_SIZE },
        { "VM", "Memory", "G", R_SIZE },
        { "VM", "Memory", "8M", R_SIZE_RANGE },
        { "VM", "Memory", "17T", R_SIZE_RANGE },
        { "VM", "Memory", "100000E", R_SIZE_RANGE },
        { "VM", "Memory", "16385K", "expected a whole number of MiB, such as 512M or 1536M" },
        { "VM", "VCPUs", "0", R_VCPUS },
        { "VM", "VCPUs", "513", R_VCPUS },
        { "VM", "VCPUs", "two", R_VCPUS },
        { "VM", "VCPUs", "-1", R_VCPUS },
        { "VM", "VCPUs", "99999999999", R_VCPUS },
        { "VM", "Machine", "q35,accel=tcg", "expected a QEMU machine type such as q35, pc or microvm" },
        { "VM", "Machine", "q 35", "expected a QEMU machine type such as q35, pc or microvm" },
        { "VM", "Accelerator", "xen", "expected auto, kvm or tcg" },
        { "VM", "Accelerator", "KVM", "expected auto, kvm or tcg" },
        { "VM", "Emulator", "bin/qemu", "expected an absolute path or a command name such as qemu-system-x86_64" },
        { "VM", "CPUModel", "host -pdpe1gb", "expected a QEMU CPU model with options, such as host, max or host,-arch-capabilities" },
        { "VM", "Kernel", "vmlinuz", R_PATH },
        { "VM", "Initrd", "./initrd.img", R_PATH },
        { "VM", "Disk", "disk.img", R_PATH },
        { "VM", "Balloon", "maybe", R_BOOL },
        { "VM", "ExtraArgs", "-append 'unbalanced", "expected arguments separated by spaces, with balanced quotes and no trailing backslash" },
        { "VM", "Autostart", "2", R_BOOL },
        { "VM", "StartTimeoutSec", "0", R_POSITIVE },
        { "VM", "StartTimeoutSec", "5x", R_TIMEOUT },
        { "VM", "StartTimeoutSec", "-5s", R_TIMEOUT },
        { "VM", "StopTimeoutSec", "0s", R_POSITIVE },
        { "VM", "StopTimeoutSec", "soon", R_TIMEOUT },
        { "Memory", "Backend", "shm", "expected ram, memfd or file" },
        { "Memory", "HugePages", "1G", R_BOOL },
        { "Memory", "Path", "guest.ram", R_PATH },
        { "Memory", "Policy", "local", "expected default, bind, preferred or interleave" },
        { "Memory", "HostNodes", "2-1", R_NODES },
        { "Memory", "HostNodes", "128", R_NODES },
        { "Memory", "HostNodes", "0-1024", R_NODES },
        { "Memory", "HostNodes", "0,", R_NODES },
        { "Memory", "HostNodes", ",0", R_NODES },
        { "Memory", "HostNodes", "0;1", R_NODES },
        { "Memory", "HostNodes", "0, 1", R_NODES },
        { "Memory", "HostNodes", "a", R_NODES },
        { "Memory", "HostNodes", "-1", R_NODES },
        { "Memory", "HostNodes", "1-", R_NODES },
        { "Memory", "Prealloc", "always", R_BOOL },
        { "Memory", "HugePageSize", "3M", R_HUGEPAGE_SIZE },
        { "Memory", "HugePageSize", "4K", R_HUGEPAGE_SIZE },
        { "Memory", "HugePageSize", "32G", R_HUGEPAGE_SIZE },
        { "Memory", "HugePageSize", "huge", R_HUGEPAGE_SIZE },
        { "Memory", "HugePageSize", "-2M", R_HUGEPAGE_SIZE },
        { "Memory", "Share", "private", "expected yes, no or default" },
        { "Memory", "Share", "2", "expected yes, no or default" },
        { "Memory", "Reserve", "swap", R_BOOL },
        { "Memory", "Reserve", "default", R_BOOL },
        { "Memory", "PreallocThreads", "257", "expected a number of threads up to 256" },
        { "Memory", "PreallocThreads", "-1", "expected a number of threads up to 256" },
        { "Memory", "Merge", "ksm", R_BOOL },
        { "Memory", "Dump", "core", R_BOOL },
        { "Memory", "MigrateBetween", "0", R_MIGRATE_NODES },
        { "Memory", "MigrateBetween", "0,0", R_MIGRATE_NODES },
        { "Memory", "MigrateBetween", "0-2", R_MIGRATE_NODES },
        { "Memory", "MigrateBetween", "0,64", R_MIGRATE_NODES },
        { "Memory", "MigrateBetween", "0;1", R_MIGRATE_NODES },
        { "Memory", "MigrateBetween", "a,b", R_MIGRATE_NODES },
        { "Memory", "MigrateEverySec", "soon", R_DELAY },
        { "Memory", "MigrateEverySec", "infinity", R_DELAY },
        { "Memory", "MigrateCount", "10001", "expected a number of moves up to 10000" },
        { "Memory", "MigrateCount", "-1", "expected a number of moves up to 10000" },
        { "Memory", "MigrateCount", "many", "expected a number of moves up to 10000" },
        { "Memory", "MigrateSettleSec", "infinity", R_DELAY },
        { "Memory", "DirtyRing", "65537", "expected 0 or a power of two from 1024 to 65536" },
        { "Memory", "DirtyRing", "-1", "expected 0 or a power of two from 1024 to 65536" },
        { "Memory", "DirtyRing", "4k", "expected 0 or a power of two from 1024 to 65536" },
        { "Memory", "HotplugNode", "128", "expected a guest NUMA node number from 0 to 127" },
        { "Memory", "HotplugSize", "lots", "expected a size such as 256M or 1G" },
        { "Memory", "MigrateSettleSec", "-1s", R_DELAY },
        { "Restart", "Policy", "sometimes", "expected no, on-failure or always" },
        { "Restart", "Policy", "on_failure", "expected no, on-failure or always" },
        { "Restart", "RestartSec", "infinity", R_DELAY },
        { "Restart", "RestartSec", "soon", R_DELAY },
        { "Restart", "RestartMaxDelaySec", "infinity", R_DELAY },
        { "Restart", "StartLimitBurst", "0", "expected a number of starts from 1 to 64" },
        { "Restart", "StartLimitBurst", "x", "expected a number of starts from 1 to 64" },
        { "Restart", "StartLimitBurst", "65", "expected a number of starts from 1 to 64" },
        { "Restart", "StartLimitIntervalSec", "0", R_POSITIVE },
        { "Balloon", "Floor", "12Q", "expected a size such as 256M or 1G" },
        { "Balloon", "Floor", "-256M", "expected a size such as 256M or 1G" },
        { "Balloon", "Ceiling", "99999999999999999999", "expected a size such as 256M or 1G" },
        { "Balloon", "Policy", "maybe", "expected inherit, yes or no" },
        { "Balloon", "Schedule", "sine", "expected none, oscillate or ramp" },
        { "Balloon", "Count", "-1", "expected a number of steps" },
        { "Balloon", "EverySec", "soon", "expected a time span such as 1s, 500ms or 2min" },
        { "CPU", "VCPUAffinity", "0", "'0' is not VCPU:CPULIST such as 0:2 or 1:3-4,6 (vCPUs below 512, CPUs below 1024)" },
        { "CPU", "VCPUAffinity", "0:2 x:1", "'x:1' is not VCPU:CPULIST such as 0:2 or 1:3-4,6 (vCPUs below 512, CPUs below 1024)" },
        { "CPU", "VCPUAffinity", "0:1024", "'0:1024' is not VCPU:CPULIST such as 0:2 or 1:3-4,6 (vCPUs below 512, CPUs below 1024)" },
        { "CPU", "VCPUAffinity", "0:1 0:2", "vCPU of '0:2' is given twice" },
        { "CPU", "EmulatorAffinity", "1-0", "expected a CPU list such as 0, 0-3 or 0,2-3 (CPUs below 1024)" },
        { "CPU", "EmulatorAffinity", "0,", "expected a CPU list such as 0, 0-3 or 0,2-3 (CPUs below 1024)" },
};

static void test_bad_values(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
                const BadCase *c = bad_cases + i;
                _cleanup_free_ char *text = NULL, *field = NULL, *ini_msg = NULL, *json_msg = NULL;
                _cleanup_free_ char *json = NULL;

                assert_true(asprintf(&text, BASE "[%s]\n%s=%s\n", c->section, c->key, c->value) > 0);
                assert_true(asprintf(&field, "%s.%s", c->section, c->key) > 0);
                assert_true(asprintf(&ini_msg, "web.vm:4: Invalid value '%s' for %s=: %s", c->value, c->key,
                                     c->reason) > 0);
                assert_true(asprintf(&json_msg, "%s.%s: Invalid value '%s': %s", c->section, c->key, c->value,
                                     c->reason) > 0);
                ini_fails("web.vm", text, NULL, field, ini_msg);

                {
                        _cleanup_json_ json_object *j = ini_to_json(text);

                        json = strdup(json_object_to_json_string(j));
                }
                json_fails(json, "web", field, json_msg);
        }
}

/* The same definition as a .vm file and as JSON with typed values. */
static void test_json_equivalence(void **state) {
        static const char ini[] =
                "# a comment\n"
                "[VM]\n"
                "Name=web\n"
                "Memory=512M\n"
                "VCPUs=2\n"
                "Accelerator=tcg\n"
                "Kernel=/boot/vmlinuz\n"
                "Initrd=/boot/initrd.img\n"
                "Append=console=ttyS0 quiet\n"
                "Disk=/a.img\n"
                "Disk=/b.qcow2\n"
                "Balloon=no\n"
                "ExtraArgs=-device virtio-rng-pci\n"
                "ExtraArgs=-rtc 'base=utc'\n"
                "Autostart=yes\n"
                "StartTimeoutSec=45\n"
                "StopTimeoutSec=1.5s\n"
                "\n"
                "[Memory]\n"
                "Backend=memfd\n"
                "HugePages=yes\n"
                "Policy=interleave\n"
                "HostNodes=1,0\n"
                "Prealloc=on\n"
                "MigrateBetween=1,0\n"
                "MigrateEverySec=5\n"
                "MigrateCount=20\n"
                "\n"
                "[Restart]\n"
                "Policy=on-failure\n"
                "RestartSec=2\n"
                "RestartMaxDelaySec=2min\n"
                "StartLimitBurst=3\n"
                "StartLimitIntervalSec=10min\n";
        static const char json[] =
                "{\"VM\": {\"Name\": \"web\", \"Memory\": 536870912, \"VCPUs\": 2, \"Accelerator\": \"tcg\","
                " \"Kernel\": \"/boot/vmlinuz\", \"Initrd\": \"/boot/initrd.img\", \"Append\": \"console=ttyS0 quiet\","
                " \"Disk\": [\"/a.img\", \"/b.qcow2\"], \"Balloon\": false,"
                " \"ExtraArgs\": [\"-device virtio-rng-pci\", \"-rtc\", \"base=utc\"], \"Autostart\": true,"
                " \"StartTimeoutSec\": 45, \"StopTimeoutSec\": 1.5},"
                " \"Memory\": {\"Backend\": \"memfd\", \"HugePages\": true, \"Policy\": \"interleave\","
                " \"HostNodes\": \"0-1\", \"Prealloc\": true, \"MigrateBetween\": \"0,1\", \"MigrateEverySec\": 5,"
                " \"MigrateCount\": 20},"
                " \"Restart\": {\"Policy\": \"on-failure\", \"RestartSec\": 2, \"RestartMaxDelaySec\": \"2min\","
                " \"StartLimitBurst\": 3, \"StartLimitIntervalSec\": \"10min\"}}";
        _cleanup_(vm_spec_freep) VmSpec *a = parse_ini_ok("web.vm", ini, NULL);
        _cleanup_(vm_spec_freep) VmSpec *b = parse_json_text_ok(json, NULL);
        _cleanup_(vm_spec_freep) VmSpec *c = parse_json_text_ok(json, "web");

        assert_true(vm_spec_equal(a, b));
        assert_true(vm_spec_equal(a, c));
        assert_int_equal(a->n_disks, 2);
        assert_string_equal(a->disks[1], "/b.qcow2");
        assert_int_equal(a->n_extra_args, 4);
        assert_string_equal(a->extra_args[3], "base=utc");
        assert_int_equal(a->stop_timeout_usec, 1500 * USEC_PER_MSEC);
        assert_string_equal(a->host_nodes, "0-1");
        assert_true(a->hugepages);
        assert_int_equal(a->restart, VM_RESTART_ON_FAILURE);
        assert_string_equal(a->migrate_between, "0,1");
        assert_int_equal(a->migrate_every_usec, 5 * USEC_PER_SEC);
        assert_int_equal(a->migrate_count, 20);
        assert_int_equal(a->migrate_settle_usec, USEC_PER_SEC);
}

static void test_json_specifics(void **state) {
        /* null resets to the default; a single string for a list key is one assignment. */
        {
                _cleanup_(vm_spec_freep) VmSpec *s = parse_json_text_ok(
                        "{\"VM\": {\"Disk\": \"/a.img\", \"Memory\": null, \"Machine\": null, \"Balloon\": null,"
                        " \"ExtraArgs\": \"-S -d 'x y'\"}}", "web");

                assert_int_equal(s->n_disks, 1);
                assert_string_equal(s->disks[0], "/a.img");
                assert_int_equal(s->memory_bytes, 512 << 20);
                assert_string_equal(s->machine, "q35");
                assert_true(s->balloon);
                assert_int_equal(s->n_extra_args, 3);
                assert_string_equal(s->extra_args[2], "x y");
        }
        /* Strings are stripped like INI values; an empty array is an empty list; an empty or null section is
         * fine. */
        {
                _cleanup_(vm_spec_freep) VmSpec *s = parse_json_text_ok(
                        "{\"VM\": {\"Kernel\": \"  /k \", \"Disk\": [], \"ExtraArgs\": []}, \"Memory\": {},"
                        " \"Restart\": null}", "web");

                assert_string_equal(s->kernel, "/k");
                assert_int_equal(s->n_disks, 0);
                assert_null(s->disks);
        }
        /* Numbers as text: a double keeps its spelling. */
        {
                _cleanup_(vm_spec_freep) VmSpec *s = parse_json_text_ok(
                        "{\"VM\": {\"Kernel\": \"/k\", \"StartTimeoutSec\": 0.25, \"Memory\": 17179869184}}", "web");

                assert_int_equal(s->start_timeout_usec, 250 * USEC_PER_MSEC);
                assert_int_equal(s->memory_bytes, UINT64_C(16) << 30);
        }

        json_fails("[]", "web", NULL,
                   "The VM definition must be a JSON object with the sections VM, Memory, CPU, Restart and Balloon");
        json_fails("{\"Network\": {}}", "web", "Network", "Network: Unknown section, expected VM, Memory, CPU, Restart or Balloon");
        json_fails("{\"VM\": [\"Kernel=/k\"]}", "web", "VM", "VM: expected an object with the keys of section [VM]");
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"Memroy\": \"1G\"}}", "web", "VM.Memroy",
                   "VM.Memroy: Unknown key in section [VM]");
        json_fails("{\"Memory\": {\"Name\": \"x\"}}", "web", "Memory.Name", "Memory.Name: Unknown key in section [Memory]");
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"Memory\": {\"size\": 1}}}", "web", "VM.Memory",
                   "VM.Memory: expected a string, number, boolean or null");
        json_fails("{\"VM\": {\"Kernel\": [\"/k\"]}}", "web", "VM.Kernel",
                   "VM.Kernel: expected a string, number, boolean or null, not an array (Kernel= does not take a list)");
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"Disk\": {\"a\": 1}}}", "web", "VM.Disk",
                   "VM.Disk: expected a string, number, boolean or null, or an array of those");
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"Disk\": [[\"/a\"]]}}", "web", "VM.Disk",
                   "VM.Disk: expected an array of strings, numbers or booleans");
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"Disk\": [null]}}", "web", "VM.Disk",
                   "VM.Disk: expected an array of strings, numbers or booleans");
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"Disk\": [\"/a\", 7]}}", "web", "VM.Disk",
                   "VM.Disk: Invalid value '7': expected an absolute path");
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"VCPUs\": -2}}", "web", "VM.VCPUs",
                   "VM.VCPUs: Invalid value '-2': expected a number of vCPUs between 1 and 512");
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"VCPUs\": 1.5}}", "web", "VM.VCPUs",
                   "VM.VCPUs: Invalid value '1.5': expected a number of vCPUs between 1 and 512");
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"Balloon\": \"sure\"}}", "web", "VM.Balloon",
                   "VM.Balloon: Invalid value 'sure': expected a boolean (yes or no)");
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"Memory\": true}}", "web", "VM.Memory",
                   "VM.Memory: Invalid value 'yes': expected a size such as 512M or 2G");
        /* Things a .vm file cannot carry are refused, so that every spec can be written out. */
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"Append\": \"a\\nb\"}}", "web", "VM.Append",
                   "VM.Append: Invalid value 'a\nb': expected text without control characters, surrounding "
                   "whitespace or a trailing backslash");
        json_fails("{\"VM\": {\"Kernel\": \"/k\", \"Append\": \"a\\\\\"}}", "web", "VM.Append",
                   "VM.Append: Invalid value 'a\\': expected text without control characters, surrounding "
                   "whitespace or a trailing backslash");
        /* Cross-field problems name the field. */
        json_fails("{\"VM\": {\"Disk\": \"/a\", \"Initrd\": \"/i\"}}", "web", "VM.Initrd", "VM.Initrd: Initrd= needs Kernel=");
}

/* ---------------------------------------------------------------------------------------------------- */
/* Syntax, lists, files */

static void test_ini_syntax(void **state) {
        ini_fails("web.vm", BASE "Memroy=1G\n", NULL, "VM.Memroy", "web.vm:3: Unknown key 'Memroy' in section [VM]");
        ini_fails("web.vm", BASE "[Network]\nBridge=br0\n", NULL, "Network", "web.vm:3: Unknown section [Network]");
        ini_fails("web.vm", "Kernel=/k\n", NULL, NULL, "web.vm:1: Assignment 'Kernel=' outside of any section");
        ini_fails("web.vm", BASE "Memory\n", NULL, NULL, "web.vm:3: Expected 'Key=Value', got 'Memory'");
        ini_fails("web.vm", "[VM\n", NULL, NULL, "web.vm:1: Invalid section header '[VM'");
        /* Policy= exists in two sections: the field says which one. */
        ini_fails("web.vm", BASE "[Restart]\nPolicy=bind\n", NULL, "Restart.Policy",
                  "web.vm:4: Invalid value 'bind' for Policy=: expected no, on-failure or always");
        ini_fails("web.vm", BASE "[Memory]\nPolicy=always\n", NULL, "Memory.Policy",
                  "web.vm:4: Invalid value 'always' for Policy=: expected default, bind, preferred or interleave");

        /* Comments, blank lines, whitespace, continuation lines, sections in any order and repeated. */
        {
                _cleanup_(vm_spec_freep) VmSpec *s = parse_ini_ok("web.vm",
                        "; comment\n"
                        "[Restart]\n"
                        "Policy = always\n"
                        "[VM]\n"
                        "  Kernel = /boot/vmlinuz  \n"
                        "Append=console=ttyS0\\\n"
                        "  quiet\n"
                        "[Memory]\n"
                        "Backend=memfd\n"
                        "[VM]\n"
                        "VCPUs=3\n", NULL);

                assert_int_equal(s->restart, VM_RESTART_ALWAYS);
                assert_string_equal(s->kernel, "/boot/vmlinuz");
                assert_string_equal(s->append, "console=ttyS0 quiet");
                assert_int_equal(s->backend, VM_MEMORY_BACKEND_MEMFD);
                assert_int_equal(s->vcpus, 3);
        }
}

static void test_lists(void **state) {
        /* Disk= appends; an empty Disk= resets. */
        {
                _cleanup_(vm_spec_freep) VmSpec *s = parse_ini_ok("web.vm",
                        "[VM]\nDisk=/a.img\nDisk=/b.img\nDisk=\nDisk=/c.img\nDisk=/d.img\n", NULL);

                assert_int_equal(s->n_disks, 2);
                assert_string_equal(s->disks[0], "/c.img");
                assert_string_equal(s->disks[1], "/d.img");
                assert_null(s->disks[2]);
        }
        {
                _cleanup_free_ char *text = strdup("[VM]\n");
                _cleanup_(vm_spec_freep) VmSpec *s = NULL;

                for (int i = 0; i < 16; i++) {
                        char *t = NULL;

                        assert_true(asprintf(&t, "%sDisk=/d%d.img\n", text, i) > 0);
                        free(text);
                        text = t;
                }
                s = parse_ini_ok("web.vm", text, NULL);
                assert_int_equal(s->n_disks, 16);
                assert_int_equal(strv_length(s->disks), 16);

                {
                        _cleanup_free_ char *more = NULL;

                        assert_true(asprintf(&more, "%sDisk=/d16.img\n", text) > 0);
                        ini_fails("web.vm", more, NULL, "VM.Disk",
                                  "web.vm:18: Invalid value '/d16.img' for Disk=: too many disks, at most 16 are "
                                  "supported");
                }
        }

        /* ExtraArgs= splits each value and appends; an empty one resets. */
        {
                _cleanup_(vm_spec_freep) VmSpec *s = parse_ini_ok("web.vm", BASE
                        "ExtraArgs=-x\n"
                        "ExtraArgs=\n"
                        "ExtraArgs=-device \"virtio-rng-pci,id=rng0\" -d\n"
                        "ExtraArgs=guest_errors 'it'\\''s' a\\\"b\n", NULL);
                char *expected[] = { "-device", "virtio-rng-pci,id=rng0", "-d", "guest_errors", "it's", "a\"b", NULL };

                assert_int_equal(s->n_extra_args, 6);
                assert_true(strv_equal(s->extra_args, expected));
        }
        {
                _cleanup_free_ char *line = NULL, *text = NULL, *more = NULL;
                _cleanup_(vm_spec_freep) VmSpec *s = NULL;
                char buf[8];

                line = strdup("ExtraArgs=");
                for (int i = 0; i < 256; i++) {
                        char *t = NULL;

                        snprintf(buf, sizeof buf, " a%d", i);
                        assert_true(asprintf(&t, "%s%s", line, buf) > 0);
                        free(line);
                        line = t;
                }
                assert_true(asprintf(&text, BASE "%s\n", line) > 0);
                s = parse_ini_ok("web.vm", text, NULL);
                assert_int_equal(s->n_extra_args, 256);

                assert_true(asprintf(&more, "%sExtraArgs=x\n", text) > 0);
                ini_fails("web.vm", more, NULL, "VM.ExtraArgs",
                          "web.vm:4: Invalid value 'x' for ExtraArgs=: too many extra arguments, at most 256 are "
                          "supported");
        }
}

static void test_parse_file(void **state) {
        char dir[] = "/tmp/test-vm-spec-XXXXXX";
        _cleanup_free_ char *path = NULL, *missing = NULL, *nul = NULL;
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;
        VmSpecError e = {};
        int r;

        assert_non_null(mkdtemp(dir));
        path = path_join(dir, "db.vm");
        missing = path_join(dir, "missing.vm");
        nul = path_join(dir, "nul.vm");
        assert_int_equal(write_file_atomic(path, BASE "Memory=1G\n", strlen(BASE "Memory=1G\n"), 0644), 0);
        assert_int_equal(write_file_atomic(nul, "[VM]\0x", 6, 0644), 0);

        assert_int_equal(vm_spec_parse_file(path, &s, &e), 0);
        assert_string_equal(s->name, "db");
        assert_int_equal(s->memory_bytes, UINT64_C(1) << 30);

        r = vm_spec_parse_file(missing, &s, &e);
        assert_int_equal(r, -ENOENT);
        {
                _cleanup_free_ char *m = NULL;

                assert_true(asprintf(&m, "%s: Failed to read file: No such file or directory", missing) > 0);
                assert_string_equal(e.message, m);
                assert_null(e.field);
        }
        vm_spec_error_done(&e);

        r = vm_spec_parse_file(nul, &s, &e);
        assert_int_equal(r, -EINVAL);
        {
                _cleanup_free_ char *m = NULL;

                assert_true(asprintf(&m, "%s: File contains a NUL byte", nul) > 0);
                assert_string_equal(e.message, m);
        }
        vm_spec_error_done(&e);
        vm_spec_error_done(&e); /* twice is fine */
        vm_spec_error_done(NULL);

        /* The error is optional. */
        assert_int_equal(vm_spec_parse_ini("web.vm", "[VM]\nMemory=1\n", NULL, &s, NULL), -ERANGE);

        (void) unlink(path);
        (void) unlink(nul);
        (void) rmdir(dir);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Cross-field validation */

typedef struct CrossCase {
        const char *text;
        const char *field;
        const char *reason;
} CrossCase;

static const CrossCase cross_cases[] = {
        { "[VM]\nMemory=1G\n", "VM.Kernel", "Neither Kernel= nor Disk= is set: the guest has nothing to boot" },
        { "[VM]\nDisk=/a.img\nInitrd=/i\n", "VM.Initrd", "Initrd= needs Kernel=" },
        { "[VM]\nDisk=/a.img\nAppend=quiet\n", "VM.Append", "Append= needs Kernel=" },
        { BASE "[Memory]\nHugePages=yes\n", "Memory.HugePages",
          "HugePages=yes does not work with Backend=ram: use Backend=memfd, or Backend=file with Path= on a "
          "hugetlbfs mount" },
        { BASE "[Memory]\nBackend=file\n", "Memory.Path", "Backend=file needs Path=" },
        { BASE "[Memory]\nBackend=memfd\nPath=/dev/shm/x\n", "Memory.Path", "Path= is only used with Backend=file" },
        { BASE "[Memory]\nPath=/dev/shm/x\n", "Memory.Path", "Path= is only used with Backend=file" },
        { BASE "[Memory]\nPolicy=bind\n", "Memory.HostNodes", "Policy=bind needs HostNodes=" },
        { BASE "[CPU]\nVCPUAffinity=0:0 2:1\n", "CPU.VCPUAffinity",
          "VCPUAffinity= names vCPU 2, but the guest has 1 vCPU (0-0)" },
        { BASE "[Memory]\nPolicy=interleave\n", "Memory.HostNodes", "Policy=interleave needs HostNodes=" },
        { BASE "[Memory]\nPolicy=preferred\n", "Memory.HostNodes", "Policy=preferred needs HostNodes=" },
        { BASE "[Memory]\nHostNodes=0\n", "Memory.HostNodes",
          "HostNodes= does not work with Policy=default: set Policy=bind, preferred or interleave" },
        { BASE "[Memory]\nPolicy=preferred\nHostNodes=0-1\n", "Memory.HostNodes",
          "Policy=preferred takes a single node in HostNodes=, not 0-1" },
        { BASE "[Memory]\nMigrateBetween=0,1\nMigrateCount=2\n", "Memory.MigrateEverySec",
          "MigrateBetween= needs MigrateEverySec= greater than 0" },
        { BASE "[Memory]\nMigrateBetween=0,1\nMigrateEverySec=0\nMigrateCount=2\n", "Memory.MigrateEverySec",
          "MigrateBetween= needs MigrateEverySec= greater than 0" },
        { BASE "[Memory]\nMigrateBetween=0,1\nMigrateEverySec=24h 1s\nMigrateCount=2\n", "Memory.MigrateEverySec",
          "MigrateEverySec= must be at most 24h" },
        { BASE "[Memory]\nMigrateBetween=0,1\nMigrateEverySec=2s\n", "Memory.MigrateCount",
          "MigrateBetween= needs MigrateCount= of 1 or more" },
        { BASE "[Memory]\nMigrateBetween=0,1\nMigrateEverySec=2s\nMigrateCount=0\n", "Memory.MigrateCount",
          "MigrateBetween= needs MigrateCount= of 1 or more" },
        { BASE "[Memory]\nMigrateBetween=0,1\nMigrateEverySec=2s\nMigrateCount=2\nMigrateSettleSec=11min\n",
          "Memory.MigrateSettleSec", "MigrateSettleSec= must be at most 10min" },
        { BASE "[Memory]\nBackend=memfd\nHugePageSize=2M\n", "Memory.HugePageSize",
          "HugePageSize= needs HugePages=yes" },
        { BASE "[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=1G\n", "Memory.HugePageSize",
          "Memory= must be a whole number of huge pages of HugePageSize=" },
        { BASE "[Memory]\nPreallocThreads=2\n", "Memory.PreallocThreads", "PreallocThreads= needs Prealloc=yes" },
        { BASE "[Memory]\nPrealloc=yes\nReserve=no\n", "Memory.Reserve",
          "Reserve=no does not work with Prealloc=yes: preallocated memory is reserved" },
        { BASE "[Memory]\nMigrateEverySec=2s\n", "Memory.MigrateEverySec", "MigrateEverySec= needs MigrateBetween=" },
        { BASE "[Memory]\nMigrateCount=2\n", "Memory.MigrateCount", "MigrateCount= needs MigrateBetween=" },
        { BASE "[Memory]\nMigrateSettleSec=0\n", "Memory.MigrateSettleSec", "MigrateSettleSec= needs MigrateBetween=" },
        { BASE "[Memory]\nDirtyRing=512\n", "Memory.DirtyRing", "DirtyRing=512 is not 0 or a power of two from 1024 to 65536" },
        { BASE "[Memory]\nDirtyRing=3000\n", "Memory.DirtyRing",
          "DirtyRing=3000 is not 0 or a power of two from 1024 to 65536" },
        { BASE "Accelerator=tcg\n[Memory]\nDirtyRing=4096\n", "Memory.DirtyRing",
          "DirtyRing= needs KVM: it is the size of KVM's dirty ring, and Accelerator=tcg has none" },
        { BASE "[Memory]\nHotplugSize=256M\nMaxMemory=256M\n", "Memory.MaxMemory", "MaxMemory=256M is below Memory=512M" },
        { BASE "[Memory]\nHotplugSize=256M\nMaxMemory=640M\n", "Memory.MaxMemory",
          "MaxMemory=640M is below Memory=512M + HotplugSize=256M" },
        { BASE "[Memory]\nHotplugSize=3M\n", "Memory.HotplugSize",
          "HotplugSize=3M must be a multiple of the virtio-mem block size 2M, at most 16T" },
        { BASE "Memory=2G\n[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=1G\nHotplugSize=2M\n", "Memory.HotplugSize",
          "HotplugSize=2M must be a multiple of the virtio-mem block size 1G, at most 16T" },
        { BASE "[Memory]\nMaxMemory=1G\n", "Memory.MaxMemory",
          "MaxMemory= needs HotplugSize=: only a virtio-mem device uses the room above Memory=" },
        { BASE "[Memory]\nHotplugSize=128M\nMaxMemory=1000K\n", "Memory.MaxMemory",
          "MaxMemory=1024000 must be a whole number of MiB, at most 16T" },
        { BASE "[Memory]\nBackend=file\nPath=/dev/hugepages/g\nHotplugSize=128M\n", "Memory.HotplugSize",
          "HotplugSize= does not work with Backend=file: the device's memory would need a second file; use "
          "Backend=memfd or ram" },
        { BASE "[Memory]\nHotplugSize=128M\nHotplugNode=1\n", "Memory.HotplugNode",
          "HotplugNode=1 is not a guest NUMA node: the guest has 1 (0 to 0)" },
        { BASE "[Memory]\nHotplugNode=1\n", "Memory.HotplugNode", "HotplugNode= needs HotplugSize=" },
        { BASE "[Restart]\nRestartSec=10s\nRestartMaxDelaySec=5s\n", "Restart.RestartMaxDelaySec",
          "RestartMaxDelaySec= must not be shorter than RestartSec=" },
        { BASE "[Restart]\nRestartSec=2min\n", "Restart.RestartMaxDelaySec",
          "RestartMaxDelaySec= must not be shorter than RestartSec=" },
        { BASE "[Balloon]\nFloor=1G\n", "Balloon.Floor", "Floor= must not exceed Memory=" },
        { BASE "[Balloon]\nCeiling=1G\n", "Balloon.Ceiling", "Ceiling= must not exceed Memory=" },
        { BASE "[Balloon]\nFloor=256M\nCeiling=128M\n", "Balloon.Ceiling", "Ceiling= must not be below Floor=" },
        { BASE "[Balloon]\nStatsIntervalSec=1.5s\n", "Balloon.StatsIntervalSec",
          "StatsIntervalSec= must be whole seconds, at most 1h (0: the daemon's default)" },
        { BASE "[VM]\nBalloon=no\n[Balloon]\nPolicy=yes\n", "Balloon.Policy",
          "Policy=yes needs a balloon device ([VM] Balloon=yes)" },
        { BASE "[VM]\nBalloon=no\n[Balloon]\nSchedule=oscillate\nFrom=128M\nTo=256M\nEverySec=1s\nCount=2\n",
          "Balloon.Schedule", "Schedule= needs a balloon device ([VM] Balloon=yes)" },
        { BASE "[Balloon]\nSchedule=oscillate\nFrom=128M\nTo=128M\nEverySec=1s\nCount=2\n", "Balloon.To",
          "To= must differ from the first size" },
        { BASE "[Balloon]\nSchedule=oscillate\nFrom=128M\nTo=256M\nEverySec=10ms\nCount=2\n", "Balloon.EverySec",
          "EverySec= must be at least 100ms and finite" },
        { BASE "[Balloon]\nSchedule=oscillate\nFrom=128M\nTo=256M\nEverySec=1s\n", "Balloon.Count",
          "Count= must be between 1 and 100000" },
        { BASE "[Balloon]\nSchedule=ramp\nFrom=128M\nTo=256M\nEverySec=1s\nCount=1\n", "Balloon.Count",
          "Count= a ramp needs at least 2 steps" },
        { BASE "[Balloon]\nSchedule=oscillate\nFrom=128M\nTo=1G\nEverySec=1s\nCount=2\n", "Balloon.To",
          "To= must be between Floor= and Memory=" },
        { BASE "[Balloon]\nFloor=200M\nSchedule=oscillate\nFrom=128M\nTo=256M\nEverySec=1s\nCount=2\n",
          "Balloon.From", "From= must be between Floor= and Memory=" },
};

static void test_cross_field(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(cross_cases); i++) {
                const CrossCase *c = cross_cases + i;
                _cleanup_free_ char *ini_msg = NULL, *json_msg = NULL, *json = NULL;

                assert_true(asprintf(&ini_msg, "web.vm: %s", c->reason) > 0);
                assert_true(asprintf(&json_msg, "%s: %s", c->field, c->reason) > 0);
                ini_fails("web.vm", c->text, NULL, c->field, ini_msg);
                {
                        _cleanup_json_ json_object *j = ini_to_json(c->text);

                        json = strdup(json_object_to_json_string(j));
                }
                json_fails(json, "web", c->field, json_msg);
        }
}

/* vm_spec_validate() on specs built in code, which can hold what no parser lets through. */
static void validate_fails(VmSpec *s, const char *field, const char *message) {
        VmSpecError e = {};

        assert_int_equal(vm_spec_validate(s, &e), -EINVAL);
        assert_string_equal(e.field, field);
        assert_string_equal(e.message, message);
        vm_spec_error_done(&e);
}

static VmSpec *valid_spec(void) {
        VmSpec *s = vm_spec_new();

        assert_non_null(s);
        s->name = strdup("web");
        s->kernel = strdup("/boot/vmlinuz");
        assert_int_equal(vm_spec_validate(s, NULL), 0);
        return s;
}

static void test_validate(void **state) {
        VmSpec *s;

#define CASE(stmt, field, message)                      \
        do {                                            \
                s = valid_spec();                       \
                stmt;                                   \
                validate_fails(s, field, message);      \
                vm_spec_free(s);                        \
        } while (0)

        CASE(s->name = mfree(s->name), "VM.Name", "VM.Name: Name= is not set");
        CASE((void) free_and_strdup(&s->name, "a b"), "VM.Name",
             "VM.Name: Invalid name 'a b': expected 1 to 64 characters from a-z, A-Z, 0-9, '_', '.', '-', not "
             "starting with '.' or '-'");
        CASE(s->memory_bytes = (UINT64_C(100) << 20) + 4096, "VM.Memory", "VM.Memory: Memory= must be a whole number of MiB");
        CASE(s->memory_bytes = UINT64_C(8) << 20, "VM.Memory", "VM.Memory: Memory= must be between 16M and 16T");
        CASE(s->memory_bytes = UINT64_C(17) << 40, "VM.Memory", "VM.Memory: Memory= must be between 16M and 16T");
        CASE(s->vcpus = 0, "VM.VCPUs", "VM.VCPUs: VCPUs= must be between 1 and 512");
        CASE(s->vcpus = 513, "VM.VCPUs", "VM.VCPUs: VCPUs= must be between 1 and 512");
        CASE(s->machine = mfree(s->machine), "VM.Machine",
             "VM.Machine: Machine= must be a QEMU machine type such as q35, pc or microvm");
        CASE((void) free_and_strdup(&s->machine, "q35,x=y"), "VM.Machine",
             "VM.Machine: Machine= must be a QEMU machine type such as q35, pc or microvm");
        CASE(s->accel = (VmAccel) 7, "VM.Accelerator", "VM.Accelerator: Accelerator= must be auto, kvm or tcg");
        CASE((void) free_and_strdup(&s->qemu_binary, "./qemu"), "VM.Emulator",
             "VM.Emulator: Emulator= must be an absolute path or a command name");
        CASE((void) free_and_strdup(&s->kernel, "vmlinuz"), "VM.Kernel", "VM.Kernel: Kernel= must be an absolute path");
        CASE((void) free_and_strdup(&s->initrd, "initrd"), "VM.Initrd", "VM.Initrd: Initrd= must be an absolute path");
        CASE((void) free_and_strdup(&s->append, "a\nb"), "VM.Append",
             "VM.Append: Append= must not contain control characters, surrounding whitespace or a trailing backslash");
        CASE((void) free_and_strdup(&s->append, " quiet"), "VM.Append",
             "VM.Append: Append= must not contain control characters, surrounding whitespace or a trailing backslash");
        CASE((void) strv_extend(&s->disks, "/a.img"), "VM.Disk", "VM.Disk: the disk count does not match the disk list");
        CASE(((void) strv_extend(&s->disks, "a.img"), s->n_disks = 1), "VM.Disk",
             "VM.Disk: Disk=a.img is not an absolute path");
        CASE(((void) strv_extend(&s->extra_args, "a\nb"), s->n_extra_args = 1), "VM.ExtraArgs",
             "VM.ExtraArgs: ExtraArgs= must not contain control characters");
        CASE(s->n_extra_args = 1, "VM.ExtraArgs", "VM.ExtraArgs: the argument count does not match the argument list");
        CASE(s->start_timeout_usec = 0, "VM.StartTimeoutSec", "VM.StartTimeoutSec: StartTimeoutSec= must be greater than 0");
        CASE(s->stop_timeout_usec = 0, "VM.StopTimeoutSec", "VM.StopTimeoutSec: StopTimeoutSec= must be greater than 0");
        CASE(s->backend = _VM_MEMORY_BACKEND_MAX, "Memory.Backend", "Memory.Backend: Backend= must be ram, memfd or file");
        CASE(s->share = _VM_MEMORY_SHARE_MAX, "Memory.Share", "Memory.Share: Share= must be yes, no or default");
        CASE((s->backend = VM_MEMORY_BACKEND_MEMFD, s->hugepages = true, s->hugepage_size = UINT64_C(3) << 20),
             "Memory.HugePageSize",
             "Memory.HugePageSize: HugePageSize= must be a power of two from 64K to 16G, such as 2M or 1G");
        CASE((s->prealloc = true, s->prealloc_threads = 257), "Memory.PreallocThreads",
             "Memory.PreallocThreads: PreallocThreads= must be at most 256");
        CASE(s->policy = (VmMemoryPolicy) -1, "Memory.Policy",
             "Memory.Policy: Policy= must be default, bind, preferred or interleave");
        CASE((s->backend = VM_MEMORY_BACKEND_FILE, (void) free_and_strdup(&s->mem_path, "x")), "Memory.Path",
             "Memory.Path: Path= must be an absolute path");
        CASE((s->policy = VM_MEMORY_POLICY_BIND, (void) free_and_strdup(&s->host_nodes, "1,0")), "Memory.HostNodes",
             "Memory.HostNodes: HostNodes=1,0 is not normalized, expected 0-1");
        CASE((s->policy = VM_MEMORY_POLICY_BIND, (void) free_and_strdup(&s->host_nodes, "0-200")), "Memory.HostNodes",
             "Memory.HostNodes: HostNodes=0-200 is not a list of NUMA nodes and ranges below 64 such as 0, 0-1 or 0,2-3");
        CASE(((void) free_and_strdup(&s->migrate_between, "1,0"), s->migrate_every_usec = 1, s->migrate_count = 1),
             "Memory.MigrateBetween", "Memory.MigrateBetween: MigrateBetween=1,0 is not normalized, expected 0,1");
        CASE(((void) free_and_strdup(&s->migrate_between, "0,0"), s->migrate_every_usec = 1, s->migrate_count = 1),
             "Memory.MigrateBetween",
             "Memory.MigrateBetween: MigrateBetween=0,0 is not two different NUMA nodes below 64 such as 0,1");
        CASE(((void) free_and_strdup(&s->migrate_between, "0,1"), s->migrate_every_usec = 1, s->migrate_count = 10001),
             "Memory.MigrateCount", "Memory.MigrateCount: MigrateCount= must be from 1 to 10000");
        CASE(s->restart = _VM_RESTART_MAX, "Restart.Policy", "Restart.Policy: Policy= must be no, on-failure or always");
        CASE(s->restart_usec = USEC_INFINITY, "Restart.RestartSec", "Restart.RestartSec: RestartSec= must be finite");
        CASE(s->restart_max_usec = USEC_INFINITY, "Restart.RestartMaxDelaySec",
             "Restart.RestartMaxDelaySec: RestartMaxDelaySec= must be finite");
        CASE(s->start_limit_burst = 0, "Restart.StartLimitBurst", "Restart.StartLimitBurst: StartLimitBurst= must be from 1 to 64");
        CASE(s->start_limit_interval_usec = 0, "Restart.StartLimitIntervalSec",
             "Restart.StartLimitIntervalSec: StartLimitIntervalSec= must be greater than 0");
#undef CASE

        /* The error is optional. */
        s = valid_spec();
        s->vcpus = 0;
        assert_int_equal(vm_spec_validate(s, NULL), -EINVAL);
        vm_spec_free(s);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Output and round trips */

static const char full_ini[] =
        "[VM]\n"
        "Name=web-1\n"
        "Memory=1536M\n"
        "VCPUs=4\n"
        "Machine=pc-q35-7.2\n"
        "Accelerator=kvm\n"
        "Confidential=no\n"
        "Emulator=/usr/bin/qemu-system-x86_64\n"
        "CPUModel=host,-arch-capabilities\n"
        "Kernel=/srv/vm/vmlinuz\n"
        "Initrd=/srv/vm/initrd.img\n"
        "Append=console=ttyS0 root=/dev/vda \"quoted arg\" x='y'\n"
        "Disk=/srv/vm/root.qcow2\n"
        "Disk=/srv/vm/data,1.img\n"
        "Balloon=no\n"
        "GuestAgent=no\n"
        "ExtraArgs=-device\n"
        "ExtraArgs='virtio-rng-pci,id=rng 0'\n"
        "ExtraArgs=''\n"
        "ExtraArgs='it'\\''s'\n"
        "ExtraArgs='back\\slash'\n"
        "ExtraArgs='#hash'\n"
        "Autostart=yes\n"
        "StartTimeoutSec=1.5s\n"
        "StopTimeoutSec=infinity\n"
        "\n"
        "[Memory]\n"
        "Backend=file\n"
        "HugePages=yes\n"
        "Path=/dev/hugepages/web-1\n"
        "Policy=interleave\n"
        "HostNodes=0,2-3\n"
        "Prealloc=yes\n"
        "HugePageSize=2M\n"
        "Share=yes\n"
        "Reserve=yes\n"
        "PreallocThreads=2\n"
        "Merge=no\n"
        "Dump=no\n"
        "MigrateBetween=0,2\n"
        "MigrateEverySec=2.5s\n"
        "MigrateCount=20\n"
        "MigrateSettleSec=250ms\n"
        "DirtyRing=4096\n"
        "MaxMemory=0\n"
        "HotplugSize=0\n"
        "HotplugNode=0\n"
        "GuestNode=\n"
        "GuestDistance=\n"
        "\n"
        "[CPU]\n"
        "VCPUAffinity=0:2 1:3-4,6\n"
        "EmulatorAffinity=0-1,7\n"
        "\n"
        "[Restart]\n"
        "Policy=on-failure\n"
        "RestartSec=250ms\n"
        "RestartMaxDelaySec=5min\n"
        "StartLimitBurst=10\n"
        "StartLimitIntervalSec=1h\n"
        "\n"
        "[Balloon]\n"
        "Floor=128M\n"
        "Ceiling=1G\n"
        "Policy=no\n"
        "StatsIntervalSec=5s\n"
        "Schedule=none\n"
        "From=0\n"
        "To=0\n"
        "EverySec=0\n"
        "Count=0\n";

static const char minimal_ini[] =
        "[VM]\n"
        "Name=web\n"
        "Memory=512M\n"
        "VCPUs=1\n"
        "Machine=q35\n"
        "Accelerator=auto\n"
        "Confidential=no\n"
        "Emulator=\n"
        "CPUModel=\n"
        "Kernel=/boot/vmlinuz\n"
        "Initrd=\n"
        "Append=\n"
        "Disk=\n"
        "Balloon=yes\n"
        "GuestAgent=yes\n"
        "ExtraArgs=\n"
        "Autostart=no\n"
        "StartTimeoutSec=30s\n"
        "StopTimeoutSec=30s\n"
        "\n"
        "[Memory]\n"
        "Backend=ram\n"
        "HugePages=no\n"
        "Path=\n"
        "Policy=default\n"
        "HostNodes=\n"
        "Prealloc=no\n"
        "HugePageSize=0\n"
        "Share=default\n"
        "Reserve=yes\n"
        "PreallocThreads=0\n"
        "Merge=yes\n"
        "Dump=yes\n"
        "MigrateBetween=\n"
        "MigrateEverySec=0\n"
        "MigrateCount=0\n"
        "MigrateSettleSec=1s\n"
        "DirtyRing=0\n"
        "MaxMemory=0\n"
        "HotplugSize=0\n"
        "HotplugNode=0\n"
        "GuestNode=\n"
        "GuestDistance=\n"
        "\n"
        "[CPU]\n"
        "VCPUAffinity=\n"
        "EmulatorAffinity=\n"
        "\n"
        "[Restart]\n"
        "Policy=no\n"
        "RestartSec=1s\n"
        "RestartMaxDelaySec=1min\n"
        "StartLimitBurst=5\n"
        "StartLimitIntervalSec=1min\n"
        "\n"
        "[Balloon]\n"
        "Floor=0\n"
        "Ceiling=0\n"
        "Policy=inherit\n"
        "StatsIntervalSec=0\n"
        "Schedule=none\n"
        "From=0\n"
        "To=0\n"
        "EverySec=0\n"
        "Count=0\n";

static void test_to_ini(void **state) {
        /* Canonical text is stable: parsing it and printing again gives the same bytes. */
        const char *inputs[] = { full_ini, minimal_ini };

        for (size_t i = 0; i < ELEMENTSOF(inputs); i++) {
                _cleanup_(vm_spec_freep) VmSpec *s = NULL, *back = NULL;
                _cleanup_free_ char *ini = NULL;

                s = parse_ini_ok(i == 0 ? "web-1.vm" : "web.vm", inputs[i], NULL);
                assert_int_equal(vm_spec_to_ini(s, &ini), 0);
                assert_string_equal(ini, inputs[i]);
                back = parse_ini_ok(NULL, ini, NULL);
                assert_true(vm_spec_equal(s, back));
        }

        /* The minimal definition prints as every key with its default. */
        {
                _cleanup_(vm_spec_freep) VmSpec *s = parse_ini_ok("web.vm", BASE, NULL);
                _cleanup_free_ char *ini = NULL;

                assert_int_equal(vm_spec_to_ini(s, &ini), 0);
                assert_string_equal(ini, minimal_ini);
        }

        {
                _cleanup_(vm_spec_freep) VmSpec *s = parse_ini_ok("web-1.vm", full_ini, NULL);
                char *expected[] = { "-device", "virtio-rng-pci,id=rng 0", "", "it's", "back\\slash", "#hash", NULL };

                assert_true(strv_equal(s->extra_args, expected));
                assert_string_equal(s->disks[1], "/srv/vm/data,1.img");
        }
}

static void test_to_json(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *s = parse_ini_ok("web-1.vm", full_ini, NULL), *back = NULL, *again = NULL;
        _cleanup_(vm_spec_freep) VmSpec *m = parse_ini_ok("web.vm", minimal_ini, NULL), *mback = NULL;
        _cleanup_json_ json_object *j = NULL, *reparsed = NULL, *mj = NULL;
        json_object *vm, *v;

        assert_int_equal(vm_spec_to_json(s, &j), 0);

        /* Typed values: numbers for bytes and counts, booleans, time spans as parse_sec() text. */
        assert_true(json_object_object_get_ex(j, "VM", &vm));
        assert_true(json_object_object_get_ex(vm, "Memory", &v));
        assert_true(json_object_is_type(v, json_type_int));
        assert_int_equal(json_object_get_int64(v), INT64_C(1536) << 20);
        assert_true(json_object_object_get_ex(vm, "VCPUs", &v));
        assert_int_equal(json_object_get_int64(v), 4);
        assert_true(json_object_object_get_ex(vm, "Balloon", &v));
        assert_true(json_object_is_type(v, json_type_boolean));
        assert_false(json_object_get_boolean(v));
        assert_true(json_object_object_get_ex(vm, "StartTimeoutSec", &v));
        assert_string_equal(json_object_get_string(v), "1.5s");
        assert_true(json_object_object_get_ex(vm, "Disk", &v));
        assert_int_equal(json_object_array_length(v), 2);
        assert_true(json_object_object_get_ex(vm, "ExtraArgs", &v));
        assert_int_equal(json_object_array_length(v), 6);
        assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 1)), "'virtio-rng-pci,id=rng 0'");
        assert_string_equal(json_object_get_string(json_object_array_get_idx(v, 2)), "''");

        /* Round trip, also through the serialized text. */
        back = parse_json_ok(j, NULL);
        assert_true(vm_spec_equal(s, back));
        reparsed = json_tokener_parse(json_object_to_json_string(j));
        assert_non_null(reparsed);
        again = parse_json_ok(reparsed, "web-1");
        assert_true(vm_spec_equal(s, again));

        /* Unset strings are null. */
        assert_int_equal(vm_spec_to_json(m, &mj), 0);
        assert_true(json_object_object_get_ex(mj, "VM", &vm));
        assert_true(json_object_object_get_ex(vm, "Initrd", &v));
        assert_null(v);
        assert_string_equal(json_to_plain(mj, NULL),
                "{\"VM\":{\"Name\":\"web\",\"Memory\":536870912,\"VCPUs\":1,\"Machine\":\"q35\",\"Accelerator\":\"auto\","
                "\"Confidential\":\"no\",\"Emulator\":null,\"CPUModel\":null,\"Kernel\":\"/boot/vmlinuz\",\"Initrd\":null,\"Append\":null,\"Disk\":[],"
                "\"Balloon\":true,\"GuestAgent\":true,\"ExtraArgs\":[],\"Autostart\":false,\"StartTimeoutSec\":\"30s\","
                "\"StopTimeoutSec\":\"30s\"},"
                "\"Memory\":{\"Backend\":\"ram\",\"HugePages\":false,\"Path\":null,\"Policy\":\"default\","
                "\"HostNodes\":null,\"Prealloc\":false,\"HugePageSize\":0,\"Share\":\"default\",\"Reserve\":true,"
                "\"PreallocThreads\":0,\"Merge\":true,\"Dump\":true,\"MigrateBetween\":null,\"MigrateEverySec\":\"0\","
                "\"MigrateCount\":0,\"MigrateSettleSec\":\"1s\",\"DirtyRing\":0,"
                "\"MaxMemory\":0,\"HotplugSize\":0,\"HotplugNode\":0,\"GuestNode\":[],\"GuestDistance\":[]},"
                "\"CPU\":{\"VCPUAffinity\":null,\"EmulatorAffinity\":null},"
                "\"Restart\":{\"Policy\":\"no\",\"RestartSec\":\"1s\",\"RestartMaxDelaySec\":\"1min\","
                "\"StartLimitBurst\":5,\"StartLimitIntervalSec\":\"1min\"},"
                "\"Balloon\":{\"Floor\":0,\"Ceiling\":0,\"Policy\":\"inherit\",\"StatsIntervalSec\":\"0\","
                "\"Schedule\":\"none\",\"From\":0,\"To\":0,\"EverySec\":\"0\",\"Count\":0}}");
        mback = parse_json_ok(mj, NULL);
        assert_true(vm_spec_equal(m, mback));
}

/* Time spans and sizes of every shape survive both round trips exactly. */
static void test_round_trip_values(void **state) {
        static const uint64_t spans[] = {
                1, 7, 999, 1000, 250000, 999999, 1000000, 1000001, 1500000, 59999999, 60000000, 61000000,
                90000000, 3599000000, 3600000000, 3600000001, 86400000000, USEC_INFINITY,
        };
        static const uint64_t sizes[] = {
                UINT64_C(16) << 20, UINT64_C(1023) << 20, UINT64_C(1) << 30, UINT64_C(1025) << 20,
                UINT64_C(3) << 40, UINT64_C(16) << 40, (UINT64_C(16) << 40) - (UINT64_C(1) << 20),
        };

        for (size_t i = 0; i < ELEMENTSOF(spans); i++)
                for (size_t k = 0; k < ELEMENTSOF(sizes); k++) {
                        _cleanup_(vm_spec_freep) VmSpec *s = valid_spec(), *a = NULL, *b = NULL;
                        _cleanup_json_ json_object *j = NULL;
                        _cleanup_free_ char *ini = NULL;

                        s->start_timeout_usec = spans[i];
                        s->stop_timeout_usec = spans[i];
                        s->start_limit_interval_usec = spans[i];
                        s->restart_max_usec = spans[i] == USEC_INFINITY ? 1 : spans[i];
                        s->restart_usec = s->restart_max_usec;
                        s->memory_bytes = sizes[k];
                        assert_int_equal(vm_spec_validate(s, NULL), 0);

                        assert_int_equal(vm_spec_to_ini(s, &ini), 0);
                        a = parse_ini_ok("web.vm", ini, NULL);
                        if (!vm_spec_equal(s, a))
                                fail_msg("INI round trip changed %" PRIu64 "us / %" PRIu64 "B:\n%s", spans[i],
                                         sizes[k], ini);
                        assert_int_equal(vm_spec_to_json(s, &j), 0);
                        b = parse_json_ok(j, NULL);
                        assert_true(vm_spec_equal(s, b));
                }
}

/* vm_spec_equal() looks at every field: changing any one key makes specs differ. */
static void test_equal(void **state) {
        static const char *const changes[][2] = {
                { "Name=web-1\n", "Name=web-2\n" },
                { "Memory=1536M\n", "Memory=1G\n" },
                { "VCPUs=4\n", "VCPUs=3\n" },
                { "Machine=pc-q35-7.2\n", "Machine=q35\n" },
                { "Accelerator=kvm\n", "Accelerator=auto\n" },     /* tcg: refused with DirtyRing= */
                { "Emulator=/usr/bin/qemu-system-x86_64\n", "Emulator=qemu-system-x86_64\n" },
                { "Kernel=/srv/vm/vmlinuz\n", "Kernel=/srv/vm/vmlinuz2\n" },
                { "Initrd=/srv/vm/initrd.img\n", "Initrd=\n" },
                { "Append=console=ttyS0 root=/dev/vda \"quoted arg\" x='y'\n", "Append=quiet\n" },
                { "Disk=/srv/vm/data,1.img\n", "Disk=/srv/vm/data,2.img\n" },
                { "Disk=/srv/vm/data,1.img\n", "" },
                { "Balloon=no\n", "Balloon=yes\n" },
                { "GuestAgent=no\n", "GuestAgent=yes\n" },
                { "ExtraArgs=''\n", "ExtraArgs=x\n" },
                { "ExtraArgs=''\n", "" },
                { "Autostart=yes\n", "Autostart=no\n" },
                { "StartTimeoutSec=1.5s\n", "StartTimeoutSec=1.6s\n" },
                { "StopTimeoutSec=infinity\n", "StopTimeoutSec=1h\n" },
                { "Backend=file\nHugePages=yes\nPath=/dev/hugepages/web-1\n", "Backend=memfd\nHugePages=yes\n" },
                { "HugePages=yes\nPath=/dev/hugepages/web-1\nPolicy=interleave\nHostNodes=0,2-3\nPrealloc=yes\n"
                  "HugePageSize=2M\n",
                  "HugePages=no\nPath=/dev/hugepages/web-1\nPolicy=interleave\nHostNodes=0,2-3\nPrealloc=yes\n"
                  "HugePageSize=0\n" },
                { "Path=/dev/hugepages/web-1\n", "Path=/dev/hugepages/web-2\n" },
                { "Policy=interleave\n", "Policy=bind\n" },
                { "HostNodes=0,2-3\n", "HostNodes=0,2\n" },
                { "Prealloc=yes\nHugePageSize=2M\nShare=yes\nReserve=yes\nPreallocThreads=2\n",
                  "Prealloc=no\nHugePageSize=2M\nShare=yes\nReserve=yes\nPreallocThreads=0\n" },
                { "HugePageSize=2M\n", "HugePageSize=0\n" },
                { "Share=yes\n", "Share=no\n" },
                { "Share=yes\n", "Share=default\n" },
                { "PreallocThreads=2\n", "PreallocThreads=3\n" },
                { "Merge=no\n", "Merge=yes\n" },
                { "Dump=no\n", "Dump=yes\n" },
                { "MigrateBetween=0,2\n", "MigrateBetween=0,3\n" },
                { "MigrateEverySec=2.5s\n", "MigrateEverySec=2s\n" },
                { "MigrateCount=20\n", "MigrateCount=21\n" },
                { "MigrateSettleSec=250ms\n", "MigrateSettleSec=0\n" },
                { "DirtyRing=4096\n", "DirtyRing=8192\n" },
                { "VCPUAffinity=0:2 1:3-4,6\n", "VCPUAffinity=0:2 1:3-4\n" },
                { "VCPUAffinity=0:2 1:3-4,6\n", "" },
                { "EmulatorAffinity=0-1,7\n", "EmulatorAffinity=0-1\n" },
                { "Policy=on-failure\n", "Policy=always\n" },
                { "RestartSec=250ms\n", "RestartSec=251ms\n" },
                { "RestartMaxDelaySec=5min\n", "RestartMaxDelaySec=6min\n" },
                { "StartLimitBurst=10\n", "StartLimitBurst=11\n" },
                { "StartLimitIntervalSec=1h\n", "StartLimitIntervalSec=2h\n" },
        };
        _cleanup_(vm_spec_freep) VmSpec *base = parse_ini_ok(NULL, full_ini, NULL);
        _cleanup_(vm_spec_freep) VmSpec *same = parse_ini_ok(NULL, full_ini, NULL);

        assert_true(vm_spec_equal(base, same));
        assert_true(vm_spec_equal(base, base));
        assert_true(vm_spec_equal(NULL, NULL));
        assert_false(vm_spec_equal(base, NULL));
        assert_false(vm_spec_equal(NULL, base));

        for (size_t i = 0; i < ELEMENTSOF(changes); i++) {
                _cleanup_(vm_spec_freep) VmSpec *other = NULL;
                _cleanup_free_ char *text = NULL;
                const char *at = strstr(full_ini, changes[i][0]);

                assert_non_null(at);
                assert_true(asprintf(&text, "%.*s%s%s", (int) (at - full_ini), full_ini, changes[i][1],
                                     at + strlen(changes[i][0])) > 0);
                other = parse_ini_ok(NULL, text, NULL);
                if (vm_spec_equal(base, other))
                        fail_msg("change %zu (%s→%s) not noticed", i, changes[i][0], changes[i][1]);
        }
}

/* The key table: every section's keys together and in the order of the canonical INI text, no key twice, only
 * the lists may repeat. */
static void test_key_table(void **state) {
        static const char *const sections[] = { "VM", "Memory", "CPU", "Restart", "Balloon" };
        const char *section, *key, *prev_section = NULL;
        size_t n = 0, si = 0;
        bool multiple;

        for (size_t i = 0; vm_spec_key_get(i, &section, &key, &multiple); i++, n++) {
                if (!prev_section || !streq(prev_section, section)) {
                        while (si < ELEMENTSOF(sections) && !streq(sections[si], section))
                                si++;
                        assert_true(si < ELEMENTSOF(sections)); /* a known section, not seen before */
                        si++;
                        prev_section = section;
                }
                assert_int_equal(multiple, streq(key, "Disk") || streq(key, "ExtraArgs") || streq(key, "GuestNode") ||
                                           streq(key, "GuestDistance"));
                for (size_t k = 0; k < i; k++) {
                        const char *s2, *k2;

                        assert_true(vm_spec_key_get(k, &s2, &k2, NULL));
                        assert_false(streq(s2, section) && streq(k2, key));
                }
        }
        assert_int_equal(n, 56U);
        assert_false(vm_spec_key_get(n, &section, &key, &multiple));
}

/* vm_spec_copy() copies key by key: every key set away from its default comes over, and the copy owns its
 * strings; a spec without a name (which the INI round trip it once went through refused) copies too. */
static void test_copy(void **state) {
        static const char text[] =
                "[VM]\nName=web\nMemory=1G\nVCPUs=4\nMachine=pc\nAccelerator=tcg\nEmulator=/usr/bin/qemu\n"
                "CPUModel=max\nKernel=/k\nInitrd=/i\nAppend=console=ttyS0\nDisk=/a\nDisk=/b\nBalloon=yes\nGuestAgent=no\n"
                "ExtraArgs=-a \"b c\"\nAutostart=yes\nStartTimeoutSec=5s\nStopTimeoutSec=infinity\n"
                "[Memory]\nBackend=file\nHugePages=yes\nPath=/dev/hugepages/x\nPolicy=bind\nHostNodes=1,0\n"
                "Prealloc=yes\nMigrateBetween=1,0\nMigrateEverySec=2s\nMigrateCount=3\nMigrateSettleSec=0\n"
                "[CPU]\nVCPUAffinity=3:1 0:0-2\nEmulatorAffinity=3\n"
                "[Restart]\nPolicy=always\nRestartSec=2s\nRestartMaxDelaySec=1h\nStartLimitBurst=3\n"
                "StartLimitIntervalSec=10min\n"
                "[Balloon]\nFloor=256M\nCeiling=768M\nPolicy=yes\nStatsIntervalSec=2s\nSchedule=oscillate\n"
                "From=512M\nTo=768M\nEverySec=1s\nCount=4\n";
        _cleanup_(vm_spec_freep) VmSpec *s = NULL, *c = NULL, *d = NULL, *nameless = NULL, *nc = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL;
        VmSpecError e = {};

        assert_int_equal(vm_spec_parse_ini("web.vm", text, NULL, &s, &e), 0);
        assert_int_equal(vm_spec_copy(s, &c), 0);
        assert_true(vm_spec_equal(s, c));
        assert_ptr_not_equal(s->name, c->name);
        assert_ptr_not_equal(s->disks, c->disks);
        assert_ptr_not_equal(s->disks[0], c->disks[0]);
        assert_int_equal(vm_spec_to_ini(s, &a), 0);
        assert_int_equal(vm_spec_to_ini(c, &b), 0);
        assert_string_equal(a, b);
        /* the copy is no spec with defaults: the text sets all but Balloon= away from their default */
        d = vm_spec_new();
        assert_non_null(d);
        assert_false(vm_spec_equal(c, d));
        free(c->extra_args[0]);
        c->extra_args[0] = strdup("-z");
        assert_false(vm_spec_equal(s, c));

        nameless = vm_spec_new();
        assert_non_null(nameless);
        assert_int_equal(vm_spec_copy(nameless, &nc), 0);
        assert_true(vm_spec_equal(nameless, nc));
        assert_null(nc->name);
        assert_string_equal(nc->machine, "q35");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_string_tables),
                cmocka_unit_test(test_name),
                cmocka_unit_test(test_good_values),
                cmocka_unit_test(test_bad_values),
                cmocka_unit_test(test_json_equivalence),
                cmocka_unit_test(test_json_specifics),
                cmocka_unit_test(test_ini_syntax),
                cmocka_unit_test(test_lists),
                cmocka_unit_test(test_parse_file),
                cmocka_unit_test(test_cross_field),
                cmocka_unit_test(test_validate),
                cmocka_unit_test(test_to_ini),
                cmocka_unit_test(test_to_json),
                cmocka_unit_test(test_round_trip_values),
                cmocka_unit_test(test_equal),
                cmocka_unit_test(test_key_table),
                cmocka_unit_test(test_copy),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
