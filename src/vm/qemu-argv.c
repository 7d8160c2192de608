/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "numa/numa-topology.h"
#include "vm/qemu-argv.h"

#define QEMU_DEFAULT_BINARY "qemu-system-x86_64"
/* The memory backends: m0 for the whole guest, or m0, m1, … one per GuestNode=. */
#define QEMU_MEMORY_BACKEND_PREFIX "m"
#define QEMU_VMEM_BACKEND_ID "vmem0"
/* The fd set that holds the console log's fd (-add-fd set=…, opened as /dev/fdset/…). */
#define QEMU_CONSOLE_FDSET 1

/* QEMU option values ("key=value,key=value") escape a ',' inside a value by doubling it. */
static char *qemu_opt_escape(const char *s) {
        size_t n = 0;
        char *r, *p;

        for (const char *c = s; *c; c++)
                n += *c == ',' ? 2 : 1;
        r = malloc(n + 1);
        if (!r)
                return NULL;
        p = r;
        for (const char *c = s; *c; c++) {
                *p++ = *c;
                if (*c == ',')
                        *p++ = ',';
        }
        *p = 0;
        return r;
}

static const char *qemu_memory_backend_type(VmMemoryBackend b) {
        switch (b) {
        case VM_MEMORY_BACKEND_RAM:
                return "memory-backend-ram";
        case VM_MEMORY_BACKEND_MEMFD:
                return "memory-backend-memfd";
        case VM_MEMORY_BACKEND_FILE:
                return "memory-backend-file";
        case _VM_MEMORY_BACKEND_MAX:
        case _VM_MEMORY_BACKEND_INVALID:
                break;
        }
        return NULL;
}

/* Appends ",KEY=A,KEY=B-C" for the node list "A,B-C": QEMU takes a list as the option repeated. */
static void qemu_put_node_list(FILE *f, const char *key, const char *nodes) {
        for (const char *p = nodes; p && *p;) {
                size_t n = strcspn(p, ",");

                fprintf(f, ",%s=%.*s", key, (int) n, p);
                p += n;
                if (*p == ',')
                        p++;
        }
}

/* Whether the backend with this policy and these host nodes gets a thread-context: it preallocates
 * (Prealloc=yes, not the virtio-mem backend), is bound to host nodes, and one of them has CPUs we may use
 * (memory-only nodes, CXL or HBM, or nodes outside our cpuset: QEMU could not place the threads there and would
 * not start; preallocation then runs where QEMU runs, as without thread-context). */
static bool qemu_backend_has_context(const VmSpec *s, const QemuArgvParams *p, VmMemoryPolicy policy,
                                     const char *host_nodes, bool prealloc) {
        uint64_t mask;

        if (!prealloc || !s->prealloc || policy == VM_MEMORY_POLICY_DEFAULT || isempty(host_nodes))
                return false;
        if (numa_node_list_parse(host_nodes, &mask) < 0)
                return true;    /* checked at definition: cannot happen */
        return (mask & ~p->nodes_without_cpus) != 0;
}

/* "-object thread-context,id=tcN,node-affinity=…" (QEMU 7.2, qapi/qom.json ThreadContextProperties): the
 * threads made in it (the backend's prealloc threads, prealloc-context=tcN) may run on the CPUs of those host
 * nodes only, so the memory is touched from the node that will own it. Before its backend: QEMU creates the
 * objects in the order given. */
static int qemu_argv_thread_context(char ***argv, size_t index, const char *host_nodes) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;
        int r;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "thread-context,id=%s%zu", QEMU_THREAD_CONTEXT_PREFIX, index);
        qemu_put_node_list(f, "node-affinity", host_nodes);
        if (fclose(f) != 0 || !buf)
                return -ENOMEM;
        r = strv_extend(argv, "-object");
        if (r < 0)
                return r;
        return strv_consume(argv, TAKE_PTR(buf));
}

/* "-object memory-backend-…,id=mN,size=…[,hugetlb=on[,hugetlbsize=…]][,share=on|off][,reserve=off][,merge=off]
 * [,dump=off][,mem-path=…][,policy=…,host-nodes=…][,prealloc=on[,prealloc-threads=N][,prealloc-context=tcN]]";
 * prealloc-context= names the thread-context tcN of context_index (>= 0: when qemu_backend_has_context()); options at their QEMU
 * default are left out. policy and host_nodes are the guest's (HostNodes=) or its guest node's.
 * QEMU takes a node list as repeated host-nodes= options, one per number or range: "0,2-3" becomes
 * "host-nodes=0,host-nodes=2-3" (checked against QEMU 7.2 with query-memdev).
 * The virtio-mem device's backend (id vmem0, HotplugSize=) has the same type and options but no prealloc=: that
 * would allocate all of it at start; the device preallocates the blocks it plugs instead (prealloc=on). */
static int qemu_memory_object(const VmSpec *s, const char *id, uint64_t size_bytes, VmMemoryPolicy policy,
                              const char *host_nodes, bool prealloc, ssize_t context_index, char **ret) {
        _cleanup_free_ char *buf = NULL, *path = NULL;
        const char *type;
        size_t size = 0;
        FILE *f;

        type = qemu_memory_backend_type(s->backend);
        if (!type)
                return -EINVAL;

        if (s->mem_path) {
                path = qemu_opt_escape(s->mem_path);
                if (!path)
                        return -ENOMEM;
        }

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        fprintf(f, "%s,id=%s,size=%" PRIu64, type, id, size_bytes);
        if (s->backend == VM_MEMORY_BACKEND_MEMFD && s->hugepages) {
                fputs(",hugetlb=on", f);
                if (s->hugepage_size != 0)
                        fprintf(f, ",hugetlbsize=%" PRIu64, s->hugepage_size);
        }
        if (s->share != VM_MEMORY_SHARE_DEFAULT)
                fprintf(f, ",share=%s", s->share == VM_MEMORY_SHARE_YES ? "on" : "off");
        if (!s->reserve)
                fputs(",reserve=off", f);
        if (!s->merge)
                fputs(",merge=off", f);
        if (!s->dump)
                fputs(",dump=off", f);
        if (s->backend == VM_MEMORY_BACKEND_FILE && path)
                fprintf(f, ",mem-path=%s", path);
        if (policy != VM_MEMORY_POLICY_DEFAULT) {
                fprintf(f, ",policy=%s", vm_memory_policy_to_string(policy));
                qemu_put_node_list(f, "host-nodes", host_nodes);
        }
        if (prealloc && s->prealloc)
                fputs(",prealloc=on", f);
        if (prealloc && s->prealloc_threads != 0)
                fprintf(f, ",prealloc-threads=%u", s->prealloc_threads);
        if (context_index >= 0)
                fprintf(f, ",prealloc-context=%s%zd", QEMU_THREAD_CONTEXT_PREFIX, context_index);

        if (fclose(f) != 0 || !buf)
                return -ENOMEM;

        *ret = TAKE_PTR(buf);
        return 0;
}

/* One backend and one "-numa node,nodeid=N[,cpus=A-B…],memdev=mN" per GuestNode=, then "-numa
 * dist,src=,dst=,val=" per GuestDistance=. A vCPU list "0-1,3" becomes repeated cpus= options, as QEMU takes
 * lists. */
static int qemu_argv_guest_nodes(const VmSpec *spec, const QemuArgvParams *params, char ***argv) {
        int r;

        for (size_t i = 0; i < spec->n_guest_nodes; i++) {
                _cleanup_(vm_guest_node_done) VmGuestNode n = {};
                _cleanup_free_ char *object = NULL, *buf = NULL;
                char id[32];
                size_t size = 0;
                FILE *f;

                r = vm_spec_guest_node(spec, i, &n);
                if (r < 0)
                        return r;
                snprintf(id, sizeof(id), "%s%zu", QEMU_MEMORY_BACKEND_PREFIX, i);
                bool context = qemu_backend_has_context(spec, params, n.policy, n.host_nodes, true);

                r = qemu_memory_object(spec, id, n.size_bytes, n.policy, n.host_nodes, true,
                                       context ? (ssize_t) i : -1, &object);
                if (r < 0)
                        return r;
                if (context) {
                        r = qemu_argv_thread_context(argv, i, n.host_nodes);
                        if (r < 0)
                                return r;
                }
                r = strv_extend(argv, "-object");
                if (r < 0)
                        return r;
                r = strv_consume(argv, TAKE_PTR(object));
                if (r < 0)
                        return r;

                f = open_memstream(&buf, &size);
                if (!f)
                        return -ENOMEM;
                fprintf(f, "node,nodeid=%zu", i);
                for (const char *p = n.cpus; p && *p;) {
                        size_t l = strcspn(p, ",");

                        fprintf(f, ",cpus=%.*s", (int) l, p);
                        p += l;
                        if (*p == ',')
                                p++;
                }
                fprintf(f, ",memdev=%s%zu", QEMU_MEMORY_BACKEND_PREFIX, i);
                if (fclose(f) != 0 || !buf)
                        return -ENOMEM;
                r = strv_extend(argv, "-numa");
                if (r < 0)
                        return r;
                r = strv_consume(argv, TAKE_PTR(buf));
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < spec->n_guest_distances; i++) {
                unsigned d[3];

                r = vm_guest_distance_parse(spec->guest_distances[i], d, NULL);
                if (r < 0)
                        return r;
                r = strv_extend(argv, "-numa");
                if (r < 0)
                        return r;
                r = strv_extendf(argv, "dist,src=%u,dst=%u,val=%u", d[0], d[1], d[2]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool path_is_qcow2(const char *path) {
        size_t n = strlen(path);

        return n >= 6 && strcasecmp(path + n - 6, ".qcow2") == 0;
}

bool qemu_argv_agent_port(const VmSpec *spec) {
        if (!spec->guest_agent)
                return false;
        /* A port of the user's own (ExtraArgs=, from before GuestAgent=) would clash with ours: theirs stays. */
        for (size_t i = 0; i < spec->n_extra_args; i++) {
                const char *a = spec->extra_args[i];
                size_t l = strlen(a), k = strlen("id=" QEMU_AGENT_CHARDEV);

                if (strstr(a, QEMU_AGENT_PORT_NAME) || strstr(a, "id=" QEMU_AGENT_CHARDEV ",") ||
                    (l >= k && streq(a + l - k, "id=" QEMU_AGENT_CHARDEV)) || strstr(a, "id=" QEMU_AGENT_PORT_ID) ||
                    strstr(a, "id=vser0"))
                        return false;
        }
        return true;
}

int qemu_build_argv(const VmSpec *spec, const QemuArgvParams *p, char ***ret) {
        _cleanup_(strv_freep) char **argv = NULL;
        _cleanup_free_ char *object = NULL, *vmem_object = NULL;
        const char *accel = NULL, *cpu = NULL;
        int r;

        if (!spec || !p || !ret)
                return -EINVAL;

        r = vm_spec_validate(spec, NULL);
        if (r < 0)
                return r;

        switch (p->accel) {
        case VM_ACCEL_KVM:
                accel = "kvm";
                cpu = "host";
                break;
        case VM_ACCEL_TCG:
                accel = "tcg";
                cpu = "max";
                break;
        case VM_ACCEL_AUTO:             /* the caller resolves this */
        case _VM_ACCEL_MAX:
        case _VM_ACCEL_INVALID:
                break;
        }
        if (!accel)
                return -EINVAL;

        if (p->qmp_fd < 0 && isempty(p->qmp_path))
                return -EINVAL;
        if (p->console_fd < 0 || p->console_fd == STDOUT_FILENO || p->console_fd == STDERR_FILENO ||
            (p->console_fd > STDERR_FILENO && p->console_fd == p->qmp_fd))
                return -EINVAL;
        if (p->qga_fd > STDERR_FILENO && (p->qga_fd == p->qmp_fd || p->qga_fd == p->console_fd))
                return -EINVAL;

        if (spec->n_guest_nodes == 0) {
                r = qemu_memory_object(spec, QEMU_MEMORY_BACKEND_PREFIX "0", spec->memory_bytes, spec->policy,
                                       spec->host_nodes, true,
                                       qemu_backend_has_context(spec, p, spec->policy, spec->host_nodes, true) ? 0 : -1,
                                       &object);
                if (r < 0)
                        return r;
        }
        if (spec->hotplug_bytes != 0) {
                /* The device's memory is in guest node HotplugNode=: bound as that node's backend is. */
                _cleanup_(vm_guest_node_done) VmGuestNode g = {};

                if (spec->n_guest_nodes > 0) {
                        r = vm_spec_guest_node(spec, spec->hotplug_node, &g);
                        if (r < 0)
                                return r;
                }
                r = qemu_memory_object(spec, QEMU_VMEM_BACKEND_ID, spec->hotplug_bytes,
                                       spec->n_guest_nodes > 0 ? g.policy : spec->policy,
                                       spec->n_guest_nodes > 0 ? g.host_nodes : spec->host_nodes, false, -1,
                                       &vmem_object);
                if (r < 0)
                        return r;
        }

#define ADD(s)                                          \
        do {                                            \
                r = strv_extend(&argv, (s));            \
                if (r < 0)                              \
                        return r;                       \
        } while (0)
#define ADDF(...)                                       \
        do {                                            \
                r = strv_extendf(&argv, __VA_ARGS__);   \
                if (r < 0)                              \
                        return r;                       \
        } while (0)

        ADD(spec->qemu_binary ?: QEMU_DEFAULT_BINARY);
        ADD("-name");
        ADDF("%s,debug-threads=on", spec->name);
        ADD("-machine");
        /* With guest nodes the backends are the nodes' memdev=; QEMU refuses -machine memory-backend= with
         * those ("'-machine memory-backend' and '-numa memdev' properties are mutually exclusive"). */
        if (spec->n_guest_nodes == 0)
                ADDF("%s,memory-backend=%s0", spec->machine, QEMU_MEMORY_BACKEND_PREFIX);
        else
                ADD(spec->machine);
        ADD("-accel");
        if (p->accel == VM_ACCEL_KVM && spec->dirty_ring > 0)
                ADDF("kvm,dirty-ring-size=%u", spec->dirty_ring);
        else
                ADD(accel);
        ADD("-cpu");
        ADD(spec->cpu_model ?: cpu);
        ADD("-m");
        if (spec->hotplug_bytes != 0)
                ADDF("%" PRIu64 "M,maxmem=%" PRIu64 "M,slots=1", spec->memory_bytes >> 20,
                     vm_spec_max_memory(spec) >> 20);
        else
                ADDF("%" PRIu64 "M", spec->memory_bytes >> 20);
        ADD("-smp");
        ADDF("%u", spec->vcpus);
        if (object) {
                if (qemu_backend_has_context(spec, p, spec->policy, spec->host_nodes, true)) {
                        r = qemu_argv_thread_context(&argv, 0, spec->host_nodes);
                        if (r < 0)
                                return r;
                }
                ADD("-object");
                ADD(object);
        }
        r = qemu_argv_guest_nodes(spec, p, &argv);
        if (r < 0)
                return r;

        if (p->qmp_fd >= 0) {
                ADD("-chardev");
                ADDF("socket,id=qmp,fd=%d,server=on,wait=off", p->qmp_fd);
                ADD("-mon");
                ADD("chardev=qmp,mode=control");
        } else {
                _cleanup_free_ char *e = qemu_opt_escape(p->qmp_path);

                if (!e)
                        return -ENOMEM;
                ADD("-qmp");
                ADDF("unix:%s,server=on,wait=off", e);
        }

        if (p->console_fd > STDERR_FILENO) {
                _cleanup_free_ char *e = qemu_opt_escape(p->console_path ?: "console");

                if (!e)
                        return -ENOMEM;
                ADD("-add-fd");
                ADDF("fd=%d,set=%d,opaque=%s", p->console_fd, QEMU_CONSOLE_FDSET, e);
                ADD("-chardev");
                ADDF("file,id=console,path=/dev/fdset/%d,append=on", QEMU_CONSOLE_FDSET);
                ADD("-serial");
                ADD("chardev:console");
        }

        ADD("-display");
        ADD("none");
        ADD("-nodefaults");
        ADD("-no-user-config");

        /* -kernel, -initrd and -append take their argument as it is: no option syntax, no escaping. */
        if (spec->kernel) {
                ADD("-kernel");
                ADD(spec->kernel);
        }
        if (spec->initrd) {
                ADD("-initrd");
                ADD(spec->initrd);
        }
        if (spec->append) {
                ADD("-append");
                ADD(spec->append);
        }

        for (size_t i = 0; i < spec->n_disks; i++) {
                _cleanup_free_ char *e = qemu_opt_escape(spec->disks[i]);

                if (!e)
                        return -ENOMEM;
                ADD("-drive");
                ADDF("file=%s,if=virtio,format=%s", e, path_is_qcow2(spec->disks[i]) ? "qcow2" : "raw");
        }

        if (spec->balloon) {
                ADD("-device");
                ADD("virtio-balloon-pci,id=balloon0");
        }

        if (spec->hotplug_bytes != 0) {
                ADD("-object");
                ADD(vmem_object);
                ADD("-device");
                ADDF("virtio-mem-pci,id=%s,memdev=%s,node=%u,requested-size=0%s", QEMU_VMEM_DEVICE_ID,
                     QEMU_VMEM_BACKEND_ID, spec->hotplug_node, spec->prealloc ? ",prealloc=on" : "");
        }

        if (qemu_argv_agent_port(spec) && p->qga_fd > STDERR_FILENO) {
                ADD("-chardev");
                ADDF("socket,id=%s,fd=%d,server=on,wait=off", QEMU_AGENT_CHARDEV, p->qga_fd);
                ADD("-device");
                ADD("virtio-serial-pci,id=vser0");
                ADD("-device");
                ADDF("virtserialport,bus=vser0.0,chardev=%s,id=%s,name=%s", QEMU_AGENT_CHARDEV, QEMU_AGENT_PORT_ID,
                     QEMU_AGENT_PORT_NAME);
        }

        if (p->paused)
                ADD("-S");

        for (size_t i = 0; i < spec->n_extra_args; i++)
                ADD(spec->extra_args[i]);

#undef ADD
#undef ADDF

        *ret = TAKE_PTR(argv);
        return 0;
}

char *qemu_argv_to_string(char *const *argv) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;

        for (char *const *a = argv; a && *a; a++) {
                _cleanup_free_ char *q = shell_quote(*a);

                if (!q) {
                        (void) fclose(f);
                        return mfree(buf);
                }
                if (a != argv)
                        fputc(' ', f);
                fputs(q, f);
        }

        if (fclose(f) != 0)
                return mfree(buf);
        if (!buf)
                return strdup("");
        return buf;
}
