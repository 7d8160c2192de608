/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "numa/numa-pin.h"
#include "numa/numa-placement.h"

void numa_pin_result_done(NumaPinResult *r) {
        if (!r)
                return;
        free(r->vcpus);
        *r = (NumaPinResult) { .n_emulator_threads = -1 };
}

static int parse_request(const NumaPinRequest *req, VcpuPinMap *map, CpuSet *emulator, NumaError *e) {
        int r;

        if (req->map) {
                r = vcpu_pin_map_parse(req->map, map, NULL);
                if (r < 0) {
                        numa_error_invalid_parameter(e, "map");
                        if (e)
                                e->cause = r;
                        return NUMA_ERROR_INVALID_PARAMETER;
                }
        }
        if (req->emulator) {
                r = cpu_list_parse(req->emulator, emulator);
                if (r < 0) {
                        numa_error_invalid_parameter(e, "emulator");
                        if (e)
                                e->cause = r;
                        return NUMA_ERROR_INVALID_PARAMETER;
                }
        }
        return 0;
}

int numa_pin_request_validate(const NumaPinRequest *req, NumaError *ret_error) {
        _cleanup_(vcpu_pin_map_done) VcpuPinMap map = {};
        CpuSet emulator;

        return parse_request(req, &map, &emulator, ret_error);
}

static const NumaVcpuThread *find_vcpu(const NumaPinRequest *req, unsigned index) {
        for (size_t i = 0; i < req->n_vcpus; i++)
                if (req->vcpus[i].index == index)
                        return &req->vcpus[i];
        return NULL;
}

static bool is_vcpu_thread(const NumaPinRequest *req, pid_t tid) {
        for (size_t i = 0; i < req->n_vcpus; i++)
                if (req->vcpus[i].thread_id == tid)
                        return true;
        return false;
}

/* Pins QEMU's threads other than the vCPUs; returns how many. */
static int pin_emulator_threads(const NumaPinRequest *req, const CpuSet *cpus) {
        _cleanup_free_ pid_t *tids = NULL;
        size_t n = 0;
        int r, k = 0;

        r = process_list_threads(req->proc_root, req->pid, &tids, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (is_vcpu_thread(req, tids[i]))
                        continue;
                r = thread_pin(tids[i], cpus, NULL);
                if (r == -ESRCH)
                        continue;       /* a short-lived worker thread ended */
                if (r < 0)
                        return r;
                k++;
        }
        return k;
}

static int fail_no_such_cpu(NumaError *e, const char *parameter, int64_t cpu, const NumaTopology *t) {
        numa_error_set(e, NUMA_ERROR_NO_SUCH_CPU);
        if (e) {
                _cleanup_free_ char *online = NULL;

                (void) cpu_list_format(&t->online_cpus, &online);
                e->parameter = parameter;
                e->number = cpu;
                e->list = strdup(strna(online));
                if (!e->list)
                        return -ENOMEM;
        }
        return NUMA_ERROR_NO_SUCH_CPU;
}

static int check_request(const NumaPinRequest *req, const NumaTopology *t, const VcpuPinMap *map,
                         const CpuSet *emulator, NumaError *e) {
        int r;

        for (size_t i = 0; i < map->n; i++) {
                const NumaVcpuThread *v = find_vcpu(req, map->pins[i].vcpu);

                if (!v || v->thread_id <= 0) {
                        numa_error_set(e, NUMA_ERROR_NO_SUCH_VCPU);
                        if (e) {
                                e->vcpu = map->pins[i].vcpu;
                                e->has_vcpu = true;
                                e->n = req->n_vcpus;
                        }
                        return NUMA_ERROR_NO_SUCH_VCPU;
                }
                for (unsigned cpu = 0; cpu < CPU_SET_MAX; cpu++)
                        if (cpu_set_contains(&map->pins[i].cpus, cpu) && !cpu_set_contains(&t->online_cpus, cpu)) {
                                r = fail_no_such_cpu(e, "map", cpu, t);
                                if (r > 0 && e) {
                                        e->has_vcpu = true;
                                        e->vcpu = v->index;
                                        if (cpu_list_format(&map->pins[i].cpus, &e->requested) < 0)
                                                return -ENOMEM;
                                }
                                return r;
                        }
        }
        if (req->emulator && !cpu_set_is_subset(emulator, &t->online_cpus))
                return fail_no_such_cpu(e, "emulator", cpu_set_last(emulator), t);
        return 0;
}

int numa_pin(const NumaPinRequest *req, const NumaTopology *topology, NumaPinResult *ret, NumaError *ret_error) {
        _cleanup_(vcpu_pin_map_done) VcpuPinMap map = {};
        _cleanup_free_ NumaVcpuPin *pins = NULL;
        CpuSet emulator = {};
        int r;

        r = parse_request(req, &map, &emulator, ret_error);
        if (r != 0)
                return r;
        r = check_request(req, topology, &map, &emulator, ret_error);
        if (r != 0)
                return r;

        pins = calloc(MAX(map.n, (size_t) 1), sizeof(NumaVcpuPin));
        if (!pins)
                return -ENOMEM;
        for (size_t i = 0; i < map.n; i++) {
                const NumaVcpuThread *v = find_vcpu(req, map.pins[i].vcpu);
                NumaVcpuPin *p = &pins[i];

                *p = (NumaVcpuPin) { .vcpu = v->index, .thread_id = v->thread_id, .requested = map.pins[i].cpus };
                r = thread_pin(v->thread_id, &p->requested, &p->effective);
                if (r < 0) {
                        NumaError *e = ret_error;

                        numa_error_set(e, NUMA_ERROR_PINNING_FAILED);
                        if (!e)
                                return NUMA_ERROR_PINNING_FAILED;
                        e->cause = r;
                        e->has_vcpu = true;
                        e->vcpu = v->index;
                        e->thread_id = v->thread_id;
                        if (cpu_list_format(&p->requested, &e->requested) < 0 ||
                            (r == -EXDEV && cpu_list_format(&p->effective, &e->effective) < 0))
                                return -ENOMEM;
                        if (asprintf(&e->reason, r == -EXDEV ? "the kernel allows other CPUs than requested%s"
                                                             : "sched_setaffinity failed: %s",
                                     r == -EXDEV ? "" : strerror(-r)) < 0) {
                                e->reason = NULL;
                                return -ENOMEM;
                        }
                        return NUMA_ERROR_PINNING_FAILED;
                }
        }

        r = -1;
        if (req->emulator) {
                r = pin_emulator_threads(req, &emulator);
                if (r < 0) {
                        int k = numa_error_set_reason(ret_error, NUMA_ERROR_PINNING_FAILED, strerror(-r));
                        if (ret_error) {
                                ret_error->cause = r;
                                ret_error->thread_id = req->pid;
                                ret_error->requested = strdup(req->emulator);
                                if (!ret_error->requested)
                                        return -ENOMEM;
                        }
                        return k;
                }
        }

        *ret = (NumaPinResult) { .vcpus = TAKE_PTR(pins), .n_vcpus = map.n, .n_emulator_threads = r };
        return 0;
}

/* ---- placement -------------------------------------------------------------------------------- */

int numa_vcpu_placement_read(const char *proc_root, pid_t pid, const NumaTopology *t, const NumaVcpuThread *v,
                             NumaVcpuPlacement *ret) {
        _cleanup_free_ char *stat = NULL;
        NumaVcpuPlacement p = { .index = v->index, .thread_id = v->thread_id, .last_node = -1 };

        p.have_allowed = thread_get_affinity(v->thread_id, &p.allowed) >= 0;
        if (asprintf(&stat, "%s/%i/task/%i/stat", proc_root, (int) pid, (int) v->thread_id) < 0) {
                stat = NULL;
                return -ENOMEM;
        }
        if (task_stat_read_last_cpu(stat, &p.last_cpu) >= 0) {
                p.have_last_cpu = true;
                p.last_node = numa_topology_node_of_cpu(t, p.last_cpu);
        }
        *ret = p;
        return 0;
}

int numa_vcpu_placement_to_json(const NumaVcpuPlacement *p, json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        _cleanup_free_ char *allowed = NULL;
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_int(o, "index", p->index)) < 0 || (r = json_add_int(o, "threadId", p->thread_id)) < 0)
                return r;
        if (p->have_allowed) {
                r = cpu_list_format(&p->allowed, &allowed);
                if (r < 0)
                        return r;
                r = json_add_string(o, "allowedCPUs", allowed);
                if (r < 0)
                        return r;
        }
        if (p->have_last_cpu) {
                if ((r = json_add_int(o, "lastCPU", p->last_cpu)) < 0)
                        return r;
                if (p->last_node >= 0 && (r = json_add_int(o, "lastNode", p->last_node)) < 0)
                        return r;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

int numa_vcpu_placements_json(const char *proc_root, pid_t pid, const NumaTopology *t, const NumaVcpuThread *vcpus,
                              size_t n_vcpus, json_object **ret) {
        _cleanup_json_ json_object *a = json_object_new_array();
        int r;

        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < n_vcpus; i++) {
                _cleanup_json_ json_object *o = NULL;
                NumaVcpuPlacement p;

                r = numa_vcpu_placement_read(proc_root, pid, t, &vcpus[i], &p);
                if (r < 0)
                        return r;
                r = numa_vcpu_placement_to_json(&p, &o);
                if (r < 0)
                        return r;
                if (json_object_array_add(a, TAKE_PTR(o)) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(a);
        return 0;
}

unsigned numa_vcpus_metrics(const char *proc_root, pid_t pid, const NumaVcpuThread *vcpus, size_t n_vcpus,
                            const char *map, const CpuSet *own, MetricsVcpu *ret) {
        _cleanup_(vcpu_pin_map_done) VcpuPinMap pins = {};
        char path[PATH_MAX];
        unsigned errors = 0;
        int r;

        if (map)
                (void) vcpu_pin_map_parse(map, &pins, NULL);

        for (size_t i = 0; i < n_vcpus; i++) {
                MetricsVcpu *d = &ret[i];
                CpuSet allowed;

                d->index = vcpus[i].index;
                if (vcpus[i].thread_id <= 0)
                        continue;

                r = thread_get_affinity(vcpus[i].thread_id, &allowed);
                d->have_affinity = r >= 0;
                if (r >= 0) {
                        d->pinned = vcpu_pin_map_find(&pins, d->index) || (own && !cpu_set_equal(&allowed, own));
                        (void) cpu_set_to_sched(&allowed, &d->allowed);
                } else if (r != -ESRCH) {
                        errors++;
                        log_debug_errno(r, "Failed to read the affinity of thread %i, ignoring: %m",
                                        (int) vcpus[i].thread_id);
                }

                (void) snprintf(path, sizeof(path), "%s/%i/task/%i/stat", proc_root, (int) pid,
                                (int) vcpus[i].thread_id);
                r = task_stat_read_last_cpu(path, &d->last_cpu);
                d->have_last_cpu = r >= 0;
                if (r < 0 && r != -ENOENT) {
                        errors++;
                        log_debug_errno(r, "Failed to read %s, ignoring: %m", path);
                }
        }
        return errors;
}

void numa_pin_log(const char *name, const NumaPinResult *res, const char *emulator) {
        for (size_t i = 0; i < res->n_vcpus; i++) {
                _cleanup_free_ char *got = NULL;

                (void) cpu_list_format(&res->vcpus[i].effective, &got);
                log_info("Guest %s: vCPU %u (thread %i) pinned to CPUs %s (verified).", name, res->vcpus[i].vcpu,
                         (int) res->vcpus[i].thread_id, strna(got));
        }
        if (res->n_emulator_threads >= 0)
                log_info("Guest %s: %i QEMU threads besides the vCPUs pinned to CPUs %s.", name,
                         res->n_emulator_threads, emulator);
}

int numa_pin_log_error(const char *name, const char *map, const char *emulator, const NumaError *e) {
        bool vcpu = e->has_vcpu || streq_ptr(e->parameter, "map");

        if (e->code == NUMA_ERROR_INVALID_PARAMETER)
                return log_error_errno(e->cause, "Guest %s: invalid %s=%s: %m", name,
                                       vcpu ? "VCPUAffinity" : "EmulatorAffinity", vcpu ? map : emulator);
        if (e->code == NUMA_ERROR_NO_SUCH_VCPU)
                return log_error_errno(-ENOENT, "Guest %s: VCPUAffinity= names vCPU %u, whose thread QEMU did not "
                                       "report.", name, e->vcpu);
        if (e->code == NUMA_ERROR_NO_SUCH_CPU && vcpu)
                return log_error_errno(-EINVAL, "Guest %s: VCPUAffinity= pins vCPU %u to CPUs %s, which are not all "
                                       "online.", name, e->vcpu, strna(e->requested));
        if (e->code == NUMA_ERROR_NO_SUCH_CPU)
                return log_error_errno(-EINVAL, "Guest %s: EmulatorAffinity=%s names CPUs that are not online.",
                                       name, emulator);
        if (e->code == NUMA_ERROR_PINNING_FAILED && !e->has_vcpu)
                return log_error_errno(e->cause, "Guest %s: failed to pin QEMU's other threads to %s: %m", name,
                                       emulator);
        if (e->code == NUMA_ERROR_PINNING_FAILED && e->cause == -EXDEV)
                return log_error_errno(e->cause, "Guest %s: vCPU %u (thread %i) pinned to %s, but the kernel allows "
                                       "%s.", name, e->vcpu, (int) e->thread_id, strna(e->requested),
                                       strna(e->effective));
        return log_error_errno(e->cause < 0 ? e->cause : -EINVAL,
                               "Guest %s: failed to pin vCPU %u (thread %i) to %s: %m", name, e->vcpu,
                               (int) e->thread_id, strna(e->requested));
}
