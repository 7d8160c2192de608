/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QEMU command line builder: each case's argv is compared with golden/<case>.args (one argument per
 * line). check-qemu-accepts.sh starts the real QEMU with every golden file. Run with
 * MEMVISOR_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, and review the diff. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>

#include "basic/fileio.h"
#include "vm/qemu-argv.h"
#include "basic/strv.h"
#include "vm/vm-spec.h"

#define T "/var/lib/memvisor-test"

static const char *golden_dir;

typedef struct GoldenCase {
        const char *name;               /* golden/<name>.args; also the VM name */
        const char *ini;                /* [VM] body after Name= */
        QemuArgvParams params;
} GoldenCase;

/* As memvisord starts QEMU: the QMP listening socket as fd 3, the console log as fd 4. */
#define KVM_FD3 { .qmp_path = T "/qmp.sock", .qmp_fd = 3, .console_fd = 4, .console_path = T "/console.log", \
                  .accel = VM_ACCEL_KVM }
#define TCG_FD3 { .qmp_path = T "/qmp.sock", .qmp_fd = 3, .console_fd = 4, .console_path = T "/console.log", \
                  .accel = VM_ACCEL_TCG }
#define KERNEL "Memory=256M\nVCPUs=2\nKernel=" T "/vmlinuz\n"

static const GoldenCase golden_cases[] = {
        /* memory backend × policy */
        { "ram", KERNEL, KVM_FD3 },
        { "ram-bind", KERNEL "[Memory]\nPolicy=bind\nHostNodes=0\n", TCG_FD3 },
        { "ram-preferred", KERNEL "[Memory]\nPolicy=preferred\nHostNodes=0\n", KVM_FD3 },
        { "ram-interleave", KERNEL "[Memory]\nPolicy=interleave\nHostNodes=0,2-3\n", TCG_FD3 },
        { "ram-prealloc", KERNEL "[Memory]\nPrealloc=yes\n", TCG_FD3 },
        { "memfd", KERNEL "[Memory]\nBackend=memfd\n", KVM_FD3 },
        { "memfd-bind-prealloc", KERNEL "[Memory]\nBackend=memfd\nPolicy=bind\nHostNodes=0\nPrealloc=yes\n", TCG_FD3 },
        { "memfd-interleave", KERNEL "[Memory]\nBackend=memfd\nPolicy=interleave\nHostNodes=0-1\n", KVM_FD3 },
        { "memfd-hugepages", KERNEL "[Memory]\nBackend=memfd\nHugePages=yes\n", KVM_FD3 },
        { "memfd-hugepages-bind-prealloc",
          KERNEL "[Memory]\nBackend=memfd\nHugePages=yes\nPolicy=bind\nHostNodes=0\nPrealloc=yes\n", TCG_FD3 },
        { "memfd-hugepagesize", KERNEL "[Memory]\nBackend=memfd\nHugePages=yes\nHugePageSize=2M\n", TCG_FD3 },
        { "memfd-private-noreserve", KERNEL "[Memory]\nBackend=memfd\nShare=no\nReserve=no\nMerge=no\nDump=no\n",
          TCG_FD3 },
        { "ram-shared-prealloc-threads", KERNEL "[Memory]\nShare=yes\nPrealloc=yes\nPreallocThreads=2\n", TCG_FD3 },
        { "file", KERNEL "[Memory]\nBackend=file\nPath=" T "/guest.ram\n", KVM_FD3 },
        { "file-bind", KERNEL "[Memory]\nBackend=file\nPath=" T "/guest.ram\nPolicy=bind\nHostNodes=0\n", TCG_FD3 },
        { "file-preferred-prealloc",
          KERNEL "[Memory]\nBackend=file\nPath=" T "/mem,dir/guest.ram\nPolicy=preferred\nHostNodes=0\nPrealloc=yes\n",
          TCG_FD3 },
        /* guest NUMA nodes: one backend and -numa node per GuestNode=, no -machine memory-backend= */
        { "guest-nodes", "Memory=256M\nVCPUs=3\nKernel=" T "/vmlinuz\n[Memory]\nBackend=memfd\n"
          "GuestNode=128M cpus=0-1 hostnodes=0 policy=bind\nGuestNode=128M cpus=2 policy=preferred hostnodes=0\n",
          TCG_FD3 },
        { "guest-nodes-inherit-distance",
          "Memory=384M\nVCPUs=4\nKernel=" T "/vmlinuz\n[Memory]\nPolicy=bind\nHostNodes=0\nPrealloc=yes\n"
          "GuestNode=256M cpus=0,2\nGuestNode=64M cpus=1,3\nGuestNode=64M policy=default\n"
          "GuestDistance=0 1 20\nGuestDistance=0 2 30\nGuestDistance=1 2 25\n", TCG_FD3 },
        /* KVM's dirty ring; left out when Accelerator=auto fell back to TCG */
        { "dirty-ring", KERNEL "[Memory]\nDirtyRing=4096\n", KVM_FD3 },
        { "dirty-ring-tcg-fallback", KERNEL "[Memory]\nDirtyRing=4096\n", TCG_FD3 },
        /* virtio-mem: its backend like the main one, without prealloc= (the device preallocates what it plugs) */
        { "virtio-mem", KERNEL "[Memory]\nHotplugSize=256M\nMaxMemory=1G\n", TCG_FD3 },
        { "virtio-mem-memfd-bind-prealloc",
          KERNEL "[Memory]\nBackend=memfd\nPolicy=bind\nHostNodes=0\nPrealloc=yes\nHotplugSize=128M\n", TCG_FD3 },

        /* boot sources, devices, start mode, extra arguments, QMP and console variants */
        { "disks",
          "Memory=128M\nDisk=" T "/root.qcow2\nDisk=" T "/data,1.img\nDisk=" T "/SCRATCH.QCOW2\nBalloon=no\n",
          TCG_FD3 },
        { "kernel-initrd-append",
          KERNEL "Initrd=" T "/initrd.img\nAppend=console=ttyS0 root=/dev/vda rw \"quiet\"\nDisk=" T "/root.img\n",
          TCG_FD3 },
        { "paused", KERNEL, { .qmp_fd = 3, .console_fd = 4, .accel = VM_ACCEL_KVM, .paused = true } },
        { "extra-args",
          KERNEL "ExtraArgs=-device virtio-rng-pci,id=rng0\nExtraArgs=-rtc \"base=utc,clock=vm\" -boot strict=on\n",
          TCG_FD3 },
        { "qmp-path", KERNEL,
          { .qmp_path = T "/run/qmp,1.sock", .qmp_fd = -1, .console_fd = 5, .console_path = T "/run/console,1.log",
            .accel = VM_ACCEL_TCG } },
        { "agent", KERNEL,
          { .qmp_path = T "/qmp.sock", .qmp_fd = 3, .console_fd = 4, .console_path = T "/console.log", .qga_fd = 5,
            .accel = VM_ACCEL_TCG } },
        { "agent-own-port",
          KERNEL "ExtraArgs=-device virtio-serial-pci -device virtserialport,name=org.qemu.guest_agent.0,chardev=c\n"
          "ExtraArgs=-chardev socket,id=c,path=" T "/own.sock,server=on,wait=off\n",
          { .qmp_path = T "/qmp.sock", .qmp_fd = 3, .console_fd = 4, .console_path = T "/console.log", .qga_fd = 5,
            .accel = VM_ACCEL_TCG } },
        { "agent-off", KERNEL "GuestAgent=no\n",
          { .qmp_path = T "/qmp.sock", .qmp_fd = 3, .console_fd = 4, .console_path = T "/console.log", .qga_fd = 5,
            .accel = VM_ACCEL_TCG } },
        { "pc-no-console",
          "Emulator=/usr/bin/qemu-system-x86_64\nMachine=pc\nMemory=4G\nVCPUs=4\nKernel=" T "/vmlinuz\n",
          { .qmp_fd = 3, .accel = VM_ACCEL_KVM } },
};

static VmSpec *spec_for(const GoldenCase *c) {
        _cleanup_free_ char *text = NULL;
        VmSpecError e = {};
        VmSpec *s = NULL;

        assert_true(asprintf(&text, "[VM]\nName=%s\n%s", c->name, c->ini) > 0);
        if (vm_spec_parse_ini(NULL, text, NULL, &s, &e) < 0)
                fail_msg("case %s: %s", c->name, strna(e.message));
        return s;
}

static char **read_golden(const char *path) {
        _cleanup_free_ char *buf = NULL;
        char **l = NULL;
        size_t size;
        int r;

        r = read_full_file(path, 1024 * 1024, &buf, &size);
        if (r < 0)
                fail_msg("cannot read %s: %s (run with MEMVISOR_UPDATE_GOLDEN=1 to create it)", path, strerror(-r));
        for (char *p = buf, *e; *p; p = e + 1) {
                e = strchr(p, '\n');
                if (!e)
                        fail_msg("%s: last line lacks a newline", path);
                *e = 0;
                assert_int_equal(strv_extend(&l, p), 0);
        }
        return l;
}

static void write_golden(const char *path, char *const *argv) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        assert_non_null(f);
        for (char *const *a = argv; *a; a++)
                fprintf(f, "%s\n", *a);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(write_file_atomic(path, buf, size, 0644), 0);
}

static void test_golden(void **state) {
        bool update = getenv("MEMVISOR_UPDATE_GOLDEN");

        for (size_t i = 0; i < ELEMENTSOF(golden_cases); i++) {
                const GoldenCase *c = golden_cases + i;
                _cleanup_(vm_spec_freep) VmSpec *s = spec_for(c);
                _cleanup_(strv_freep) char **argv = NULL, **golden = NULL;
                _cleanup_free_ char *path = NULL, *name = NULL;

                assert_int_equal(qemu_build_argv(s, &c->params, &argv), 0);
                assert_true(asprintf(&name, "%s.args", c->name) > 0);
                path = path_join(golden_dir, name);

                if (update) {
                        write_golden(path, argv);
                        continue;
                }

                golden = read_golden(path);
                for (size_t k = 0; argv[k] || golden[k]; k++)
                        if (!streq_ptr(argv[k], golden[k]))
                                fail_msg("%s: argument %zu differs:\n  golden: %s\n   built: %s", path, k,
                                         strna(golden[k]), strna(argv[k]));
        }
}

/* The shape of the command line, independent of the golden files. */
static void test_structure(void **state) {
        const GoldenCase *c = golden_cases;     /* "ram" */
        _cleanup_(vm_spec_freep) VmSpec *s = spec_for(c);
        _cleanup_(strv_freep) char **argv = NULL;
        char *expected[] = {
                "qemu-system-x86_64",
                "-name", "ram,debug-threads=on",
                "-machine", "q35,memory-backend=m0",
                "-accel", "kvm",
                "-cpu", "host",
                "-m", "256M",
                "-smp", "2",
                "-object", "memory-backend-ram,id=m0,size=268435456",
                "-chardev", "socket,id=qmp,fd=3,server=on,wait=off",
                "-mon", "chardev=qmp,mode=control",
                "-add-fd", "fd=4,set=1,opaque=" T "/console.log",
                "-chardev", "file,id=console,path=/dev/fdset/1,append=on",
                "-serial", "chardev:console",
                "-display", "none",
                "-nodefaults",
                "-no-user-config",
                "-kernel", T "/vmlinuz",
                "-device", "virtio-balloon-pci,id=balloon0",
                NULL,
        };

        assert_int_equal(qemu_build_argv(s, &c->params, &argv), 0);
        if (!strv_equal(argv, expected)) {
                _cleanup_free_ char *got = qemu_argv_to_string(argv);
                fail_msg("unexpected argv: %s", got);
        }
}

static void test_escaping(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;
        _cleanup_(strv_freep) char **argv = NULL;
        VmSpecError e = {};
        QemuArgvParams p = {
                .qmp_path = "/run/a,b/qmp.sock",
                .qmp_fd = -1,
                .console_fd = 3,
                .console_path = "/run/a,b/console,,log",
                .accel = VM_ACCEL_TCG,
        };

        assert_int_equal(vm_spec_parse_ini(NULL,
                "[VM]\nName=esc\nKernel=/boot/a,b\nInitrd=/boot/i,1\nAppend=x=1,2\n"
                "Disk=/d,1,,2.img\nDisk=/e.qcow2\n"
                "[Memory]\nBackend=file\nPath=/m,em\n", NULL, &s, &e), 0);
        assert_int_equal(qemu_build_argv(s, &p, &argv), 0);

        /* Option syntax doubles commas; -kernel, -initrd and -append take their argument as it is. */
        assert_true(strv_contains(argv, "memory-backend-file,id=m0,size=536870912,mem-path=/m,,em"));
        assert_true(strv_contains(argv, "unix:/run/a,,b/qmp.sock,server=on,wait=off"));
        assert_true(strv_contains(argv, "fd=3,set=1,opaque=/run/a,,b/console,,,,log"));
        assert_true(strv_contains(argv, "file,id=console,path=/dev/fdset/1,append=on"));
        assert_true(strv_contains(argv, "file=/d,,1,,,,2.img,if=virtio,format=raw"));
        assert_true(strv_contains(argv, "file=/e.qcow2,if=virtio,format=qcow2"));
        assert_true(strv_contains(argv, "/boot/a,b"));
        assert_true(strv_contains(argv, "/boot/i,1"));
        assert_true(strv_contains(argv, "x=1,2"));
        assert_true(strv_contains(argv, "-cpu"));
        assert_true(strv_contains(argv, "max"));
        assert_false(strv_contains(argv, "-S"));
}

static char **argv_of_nodes(const char *ini, uint64_t nodes_without_cpus) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;
        QemuArgvParams p = TCG_FD3;
        VmSpecError e = {};
        char **argv = NULL;

        if (vm_spec_parse_ini(NULL, ini, NULL, &s, &e) < 0)
                fail_msg("%s", strna(e.message));
        p.nodes_without_cpus = nodes_without_cpus;
        assert_int_equal(qemu_build_argv(s, &p, &argv), 0);
        return argv;
}

static char **argv_of(const char *ini) {
        return argv_of_nodes(ini, 0);
}

/* The index of the argument equal to a, or -1. */
static ssize_t argv_find(char **argv, const char *a) {
        for (size_t i = 0; argv[i]; i++)
                if (streq(argv[i], a))
                        return (ssize_t) i;
        return -1;
}

/* Prealloc=yes on a backend bound to host nodes: a thread-context on those nodes before it, named by its
 * prealloc-context=; none without Prealloc=, without host nodes, or for the virtio-mem backend. */
static void test_thread_context(void **state) {
        _cleanup_(strv_freep) char **a = NULL, **b = NULL, **c = NULL, **d = NULL;
        ssize_t tc0, tc1, m0, m1;

        a = argv_of("[VM]\nName=tc\nMemory=384M\nVCPUs=2\nKernel=" T "/vmlinuz\n[Memory]\nBackend=memfd\n"
                    "Prealloc=yes\nPreallocThreads=2\nGuestNode=128M cpus=0 hostnodes=0,2-3 policy=interleave\n"
                    "GuestNode=128M cpus=1 hostnodes=1 policy=bind\nGuestNode=128M\n");
        tc0 = argv_find(a, "thread-context,id=tc0,node-affinity=0,node-affinity=2-3");
        tc1 = argv_find(a, "thread-context,id=tc1,node-affinity=1");
        m0 = argv_find(a, "memory-backend-memfd,id=m0,size=134217728,policy=interleave,host-nodes=0,host-nodes=2-3,"
                          "prealloc=on,prealloc-threads=2,prealloc-context=tc0");
        m1 = argv_find(a, "memory-backend-memfd,id=m1,size=134217728,policy=bind,host-nodes=1,prealloc=on,"
                          "prealloc-threads=2,prealloc-context=tc1");
        assert_true(tc0 > 0 && tc1 > 0 && m0 > 0 && m1 > 0);
        assert_string_equal(a[tc0 - 1], "-object");
        assert_true(tc0 < m0 && m0 < tc1 && tc1 < m1);     /* each context before its backend */
        /* guest node 2 has no host nodes: no context */
        assert_true(argv_find(a, "memory-backend-memfd,id=m2,size=134217728,prealloc=on,prealloc-threads=2") > 0);
        assert_int_equal(argv_find(a, "thread-context,id=tc2"), -1);

        /* bound, without Prealloc=: nothing */
        b = argv_of("[VM]\nName=tc\nMemory=256M\nKernel=" T "/vmlinuz\n[Memory]\nPolicy=bind\nHostNodes=1\n");
        for (char **x = b; *x; x++)
                assert_null(strstr(*x, "thread-context"));
        assert_true(argv_find(b, "memory-backend-ram,id=m0,size=268435456,policy=bind,host-nodes=1") > 0);

        /* Prealloc=yes, not bound: nothing */
        c = argv_of("[VM]\nName=tc\nMemory=256M\nKernel=" T "/vmlinuz\n[Memory]\nPrealloc=yes\n");
        for (char **x = c; *x; x++)
                assert_null(strstr(*x, "context"));

        /* virtio-mem: the main backend gets tc0, vmem0 (no prealloc=) none */
        d = argv_of("[VM]\nName=tc\nMemory=256M\nKernel=" T "/vmlinuz\n[Memory]\nBackend=memfd\nPolicy=bind\n"
                    "HostNodes=1\nPrealloc=yes\nHotplugSize=128M\n");
        assert_true(argv_find(d, "thread-context,id=tc0,node-affinity=1") > 0);
        assert_true(argv_find(d, "memory-backend-memfd,id=vmem0,size=134217728,policy=bind,host-nodes=1") > 0);
        assert_int_equal(argv_find(d, "thread-context,id=tc1,node-affinity=1"), -1);
}

/* A backend bound only to nodes without a CPU of ours (memory-only, or outside our cpuset) gets no thread-context:
 * QEMU would fail ("The nodes select no CPUs"); one with at least one such node still does. */
static void test_thread_context_cpuless(void **state) {
        _cleanup_(strv_freep) char **a = NULL, **b = NULL;

        a = argv_of_nodes("[VM]\nName=tc\nMemory=256M\nKernel=" T "/vmlinuz\n[Memory]\nPolicy=bind\nHostNodes=1\n"
                          "Prealloc=yes\n", UINT64_C(1) << 1);
        for (char **x = a; *x; x++)
                assert_null(strstr(*x, "context"));
        assert_true(argv_find(a, "memory-backend-ram,id=m0,size=268435456,policy=bind,host-nodes=1,prealloc=on") > 0);

        b = argv_of_nodes("[VM]\nName=tc\nMemory=256M\nKernel=" T "/vmlinuz\n[Memory]\nBackend=memfd\n"
                          "Prealloc=yes\nGuestNode=128M cpus=0 hostnodes=0 policy=bind\n"
                          "GuestNode=128M hostnodes=1-2 policy=bind\n", UINT64_C(1) << 1);
        assert_true(argv_find(b, "thread-context,id=tc0,node-affinity=0") > 0);
        assert_true(argv_find(b, "thread-context,id=tc1,node-affinity=1-2") > 0);      /* node 2 has CPUs */
        for (char **x = b; *x; x++)
                assert_null(strstr(*x, "tc2"));
}

static void test_errors(void **state) {
        _cleanup_(vm_spec_freep) VmSpec *s = spec_for(golden_cases);
        QemuArgvParams p = KVM_FD3;
        char **argv = NULL;

        /* AUTO must be resolved by the caller; garbage is refused. */
        p.accel = VM_ACCEL_AUTO;
        assert_int_equal(qemu_build_argv(s, &p, &argv), -EINVAL);
        p.accel = (VmAccel) 42;
        assert_int_equal(qemu_build_argv(s, &p, &argv), -EINVAL);
        p.accel = VM_ACCEL_KVM;

        /* Somewhere for QMP is required. */
        p.qmp_fd = -1;
        p.qmp_path = NULL;
        assert_int_equal(qemu_build_argv(s, &p, &argv), -EINVAL);
        p = (QemuArgvParams) KVM_FD3;

        /* The console is an fd QEMU may take (-add-fd refuses 0-2), not the QMP socket's; 0 means none. */
        p.console_fd = -1;
        assert_int_equal(qemu_build_argv(s, &p, &argv), -EINVAL);
        p.console_fd = 2;
        assert_int_equal(qemu_build_argv(s, &p, &argv), -EINVAL);
        p.console_fd = 3;
        assert_int_equal(qemu_build_argv(s, &p, &argv), -EINVAL);
        p.console_fd = 0;
        assert_int_equal(qemu_build_argv(s, &p, &argv), 0);
        assert_false(strv_contains(argv, "-add-fd") || strv_contains(argv, "-serial"));
        argv = strv_free(argv);
        p = (QemuArgvParams) KVM_FD3;

        /* An invalid spec is refused. */
        s->vcpus = 0;
        assert_int_equal(qemu_build_argv(s, &p, &argv), -EINVAL);
        s->vcpus = 1;
        s->policy = VM_MEMORY_POLICY_BIND;
        assert_int_equal(qemu_build_argv(s, &p, &argv), -EINVAL);
        s->policy = VM_MEMORY_POLICY_DEFAULT;

        assert_int_equal(qemu_build_argv(NULL, &p, &argv), -EINVAL);
        assert_int_equal(qemu_build_argv(s, NULL, &argv), -EINVAL);
        assert_null(argv);

        assert_int_equal(qemu_build_argv(s, &p, &argv), 0);
        assert_non_null(argv);
        strv_free(argv);
}

static void test_to_string(void **state) {
        char *argv[] = { "qemu-system-x86_64", "-name", "web,debug-threads=on", "-append", "console=ttyS0 quiet",
                         "-drive", "file=/it's.img", "", NULL };
        char *none[] = { NULL };
        _cleanup_free_ char *s = qemu_argv_to_string(argv), *e = qemu_argv_to_string(none);
        _cleanup_(strv_freep) char **back = NULL;

        assert_string_equal(s, "qemu-system-x86_64 -name web,debug-threads=on -append 'console=ttyS0 quiet' "
                               "-drive 'file=/it'\\''s.img' ''");
        assert_string_equal(e, "");

        /* The display form splits back into the same words. */
        assert_int_equal(strv_split_quoted(s, &back), 0);
        assert_true(strv_equal(back, argv));
}

int main(int argc, char *argv[]) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_golden),
                cmocka_unit_test(test_structure),
                cmocka_unit_test(test_escaping),
                cmocka_unit_test(test_thread_context),
                cmocka_unit_test(test_thread_context_cpuless),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_to_string),
        };

        golden_dir = argc > 1 ? argv[1] : getenv("MEMVISOR_GOLDEN_DIR");
        if (!golden_dir) {
                fprintf(stderr, "usage: %s GOLDEN-DIR\n", argv[0]);
                return 2;
        }

        return cmocka_run_group_tests(tests, NULL, NULL);
}
