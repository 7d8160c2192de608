/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Placement from the first instruction: [CPU] EmulatorAffinity= as the CPU set QEMU is executed with (the
 * child of process_spawn() sets it before execv, so every thread QEMU makes inherits it), and the check at the
 * first QMP greeting, before the vCPUs are pinned and continued, that every thread of QEMU was inside it. */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "numa/numa-placement.h"
#include "vm/vm-internal.h"

/* Bounds of what a guest's QEMU (untrusted as to its thread count and names) makes the daemon read. */
#define VM_PLACEMENT_MAX_THREADS 4096U
#define VM_PLACEMENT_STATUS_MAX (64U * 1024U)

void vm_emulator_check_done(VmEmulatorCheck *c) {
        if (!c)
                return;
        free(c->affinity);
        free(c->first_outside);
        *c = (VmEmulatorCheck) {};
}

int vm_emulator_affinity(const VmSpec *spec, const char *sysfs_root, cpu_set_t *ret, char **ret_reason) {
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        CpuSet set, off = {};
        int r;

        *ret_reason = NULL;
        if (!spec->emulator_affinity)
                return 0;
        r = cpu_list_parse(spec->emulator_affinity, &set);
        if (r < 0)
                return asprintf(ret_reason, "EmulatorAffinity=%s is not a CPU list", spec->emulator_affinity) < 0
                               ? -ENOMEM : r;
        /* The child cannot say much when the kernel refuses it: offline CPUs are told here, with the figures. */
        if (numa_topology_read(sysfs_root, &t) >= 0) {
                for (unsigned cpu = 0; cpu < CPU_SET_MAX; cpu++)
                        if (cpu_set_contains(&set, cpu) && !cpu_set_contains(&t->online_cpus, cpu))
                                cpu_set_add(&off, cpu);
                if (!cpu_set_is_empty(&off)) {
                        _cleanup_free_ char *o = NULL, *online = NULL;

                        if (cpu_list_format(&off, &o) < 0 || cpu_list_format(&t->online_cpus, &online) < 0)
                                return -ENOMEM;
                        bool one = cpu_set_count(&off) == 1;

                        return asprintf(ret_reason, "EmulatorAffinity=%s: CPU%s %s %s not online (online: %s)",
                                        spec->emulator_affinity, one ? "" : "s", o, one ? "is" : "are", online) < 0
                                       ? -ENOMEM : -EINVAL;
                }
        }
        r = cpu_set_to_sched(&set, ret);
        if (r < 0)
                return asprintf(ret_reason, "EmulatorAffinity=%s cannot be set", spec->emulator_affinity) < 0
                               ? -ENOMEM : r;
        return 1;
}

uint64_t vm_nodes_without_cpus(const char *sysfs_root) {
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        cpu_set_t sched;
        CpuSet ours;
        uint64_t mask = 0;

        if (numa_topology_read(sysfs_root, &t) < 0 || sched_getaffinity(0, sizeof(sched), &sched) < 0 ||
            cpu_set_from_sched(&sched, &ours) < 0)
                return 0;       /* not known: QEMU says so itself if it cannot place them */
        for (size_t i = 0; i < t->n_nodes; i++) {
                bool any = false;

                for (unsigned cpu = 0; cpu < CPU_SET_MAX && !any; cpu++)
                        any = cpu_set_contains(&t->nodes[i].cpus, cpu) && cpu_set_contains(&ours, cpu);
                if (!any && t->nodes[i].id < 64)
                        mask |= UINT64_C(1) << t->nodes[i].id;
        }
        return mask;
}

/* "Cpus_allowed_list:\t0-3,8" of a /proc/PID/task/TID/status text. */
int vm_status_allowed_cpus(const char *text, CpuSet *ret) {
        const char *key = "Cpus_allowed_list:";
        _cleanup_free_ char *v = NULL;

        for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (startswith(p, key)) {
                        p += strlen(key);
                        v = strndup(p, strcspn(p, "\n"));
                        if (!v)
                                return -ENOMEM;
                        return cpu_list_parse(v, ret) < 0 ? -EINVAL : 0;
                }
        return -ENOENT;
}

bool vm_thread_is_prealloc_context(const char *comm) {
        /* QEMU names a thread-context's thread "TC ID" (-name debug-threads=on); ours are tcN (qemu-argv.c). */
        return comm && startswith(comm, "TC " QEMU_THREAD_CONTEXT_PREFIX);
}

int vm_emulator_check_read(const char *proc_root, pid_t pid, const char *affinity, VmEmulatorCheck *ret) {
        _cleanup_(vm_emulator_check_done) VmEmulatorCheck c = {};
        _cleanup_free_ pid_t *tids = NULL;
        CpuSet want;
        size_t n = 0;
        int r;

        if (!affinity || cpu_list_parse(affinity, &want) < 0)
                return -EINVAL;
        c.affinity = strdup(affinity);
        if (!c.affinity)
                return -ENOMEM;
        r = process_list_threads(proc_root, pid, &tids, &n);
        if (r < 0)
                return r;
        if (n > VM_PLACEMENT_MAX_THREADS)
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL, *text = NULL, *comm = NULL, *cpus = NULL;
                CpuSet allowed;

                if (asprintf(&path, "%s/%i/task/%i/status", proc_root, (int) pid, (int) tids[i]) < 0)
                        return -ENOMEM;
                r = read_full_file(path, VM_PLACEMENT_STATUS_MAX, &text, NULL);
                if (r == -ENOENT || r == -ESRCH)
                        continue;       /* a short-lived thread ended */
                if (r < 0)
                        return r;
                r = vm_status_allowed_cpus(text, &allowed);
                if (r < 0)
                        return r;
                free(path);
                if (asprintf(&path, "%s/%i/task/%i/comm", proc_root, (int) pid, (int) tids[i]) < 0)
                        return -ENOMEM;
                if (read_full_file(path, 64, &comm, NULL) >= 0)
                        comm[strcspn(comm, "\n")] = 0;
                if (vm_thread_is_prealloc_context(comm)) {
                        c.context_threads++;    /* on its backend's nodes by design (prealloc-context=) */
                        continue;
                }
                c.threads++;
                if (cpu_set_is_subset(&allowed, &want))
                        continue;
                if (c.outside++ > 0)
                        continue;
                if (cpu_list_format(&allowed, &cpus) < 0)
                        return -ENOMEM;
                /* comm is QEMU's (a thread name), shown escaped-free: only printable ASCII is kept. */
                for (char *x = comm; x && *x; x++)
                        if (*x < 0x20 || *x > 0x7e)
                                *x = '?';
                if (asprintf(&c.first_outside, "thread %i (%s) may run on CPUs %s", (int) tids[i], strna(comm),
                             cpus) < 0)
                        return -ENOMEM;
        }
        c.done = true;
        *ret = c;
        c = (VmEmulatorCheck) {};
        return 0;
}

void vm_emulator_check_at_greeting(Vm *vm) {
        const VmSpec *spec = vm->running_spec ?: vm->spec;
        int r;

        vm_emulator_check_done(&vm->emulator_check);
        if (!spec->emulator_affinity || vm->adopted)
                return;
        r = vm_emulator_check_read(vm->ctx->proc_root, vm->pid, spec->emulator_affinity, &vm->emulator_check);
        if (r < 0) {
                vm->emulator_check.error = r;
                log_vm(vm, LOG_WARNING, r, "Guest %s: cannot check its QEMU threads against EmulatorAffinity=%s: %m",
                       vm->name, spec->emulator_affinity);
                return;
        }
        if (vm->emulator_check.outside > 0)
                log_vm(vm, LOG_WARNING, 0, "Guest %s: at its first QMP greeting %u of %u QEMU threads were outside "
                       "EmulatorAffinity=%s (%s).", vm->name, vm->emulator_check.outside, vm->emulator_check.threads,
                       spec->emulator_affinity, vm->emulator_check.first_outside);
        else
                log_vm(vm, LOG_DEBUG, 0, "Guest %s: at its first QMP greeting all %u QEMU threads were inside "
                       "EmulatorAffinity=%s.", vm->name, vm->emulator_check.threads, spec->emulator_affinity);
}

int vm_emulator_check_json(const Vm *vm, json_object *o) {
        const VmEmulatorCheck *c = &vm->emulator_check;
        _cleanup_json_ json_object *p = NULL;

        if (!c->done && c->error == 0)
                return 0;
        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        if (c->done) {
                if (json_add_string(p, "emulatorAffinity", c->affinity) < 0 ||
                    json_add_uint(p, "threadsAtGreeting", c->threads) < 0 ||
                    json_add_uint(p, "threadsOutside", c->outside) < 0 ||
                    json_add_bool(p, "allInside", c->outside == 0) < 0 ||
                    json_add_uint(p, "preallocContextThreads", c->context_threads) < 0 ||
                    json_add_string(p, "firstOutside", c->first_outside) < 0)
                        return -ENOMEM;
        } else if (json_add_string(p, "checkError", strerror(-c->error)) < 0)
                return -ENOMEM;
        return json_add(o, "placement", TAKE_PTR(p));
}
