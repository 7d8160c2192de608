/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Pinning a guest's threads: each vCPU thread to the CPUs of a pin map ("0:0-1 1:2", as VCPUAffinity= and
 * PinVCPUs write it) and QEMU's other threads to a CPU list, each affinity read back and verified. One path
 * for the start of a guest (paused, before it runs) and for PinVCPUs at runtime. And where a guest's vCPUs
 * run: their affinity and the CPU and node they last ran on. */

#include <json-c/json.h>
#include <sys/types.h>

#include "numa/cpu-set.h"
#include "basic/macro.h"
#include "metrics/metrics-render.h"
#include "numa/numa-error.h"
#include "numa/numa-topology.h"

typedef struct NumaVcpuThread {
        unsigned index;
        pid_t thread_id;                /* ≤ 0: QEMU did not report it */
} NumaVcpuThread;

typedef struct NumaPinRequest {
        const char *proc_root;          /* "/proc": the threads of pid */
        pid_t pid;                      /* QEMU */
        const NumaVcpuThread *vcpus;    /* as QEMU reported them */
        size_t n_vcpus;
        const char *map;                /* vCPU pin map; NULL: the vCPU threads stay as they are */
        const char *emulator;           /* CPU list for QEMU's other threads; NULL: they stay as they are */
} NumaPinRequest;

typedef struct NumaVcpuPin {
        unsigned vcpu;
        pid_t thread_id;
        CpuSet requested;
        CpuSet effective;               /* read back: equal to requested */
} NumaVcpuPin;

typedef struct NumaPinResult {
        NumaVcpuPin *vcpus;             /* the pinned vCPUs, in vCPU order */
        size_t n_vcpus;
        int n_emulator_threads;         /* QEMU threads besides the vCPUs pinned; -1: emulator was NULL */
} NumaPinResult;

void numa_pin_result_done(NumaPinResult *r);

/* The parameters alone: NUMA_ERROR_INVALID_PARAMETER naming "map" or "emulator" (cause: the parser's errno). */
int numa_pin_request_validate(const NumaPinRequest *req, NumaError *ret_error);

/* Checks every vCPU and CPU against the request's threads and the topology's online CPUs before changing
 * anything (NUMA_ERROR_INVALID_PARAMETER, NUMA_ERROR_NO_SUCH_VCPU, NUMA_ERROR_NO_SUCH_CPU), then pins the
 * vCPUs in order and the other threads (NUMA_ERROR_PINNING_FAILED, cause: -EXDEV when the kernel gave another
 * mask, else sched_setaffinity's error). Pins made before a failure stay. */
int numa_pin(const NumaPinRequest *req, const NumaTopology *topology, NumaPinResult *ret, NumaError *ret_error);

typedef struct NumaVcpuPlacement {
        unsigned index;
        pid_t thread_id;
        bool have_allowed;
        CpuSet allowed;                 /* the thread's affinity */
        bool have_last_cpu;
        unsigned last_cpu;              /* where it last ran */
        int last_node;                  /* … on that node; < 0: not known */
} NumaVcpuPlacement;

/* Reads what can be read (a thread that ended gives a placement with nothing known). */
int numa_vcpu_placement_read(const char *proc_root, pid_t pid, const NumaTopology *t, const NumaVcpuThread *v,
                             NumaVcpuPlacement *ret);
/* {"index", "threadId", "allowedCPUs"?, "lastCPU"?, "lastNode"?} */
int numa_vcpu_placement_to_json(const NumaVcpuPlacement *p, json_object **ret);
/* The placement of every vCPU as an array. */
int numa_vcpu_placements_json(const char *proc_root, pid_t pid, const NumaTopology *t, const NumaVcpuThread *vcpus,
                              size_t n_vcpus, json_object **ret);

/* The metrics' view of a guest's vCPUs (MetricsVcpu, metrics-render.h): each thread's affinity and last CPU,
 * and whether it is pinned (named by map, a pin map as VCPUAffinity= writes it, or an affinity other than own,
 * the daemon's; own NULL: unknown). A thread that ended reads as nothing known. Returns the number of reads
 * that failed otherwise. */
unsigned numa_vcpus_metrics(const char *proc_root, pid_t pid, const NumaVcpuThread *vcpus, size_t n_vcpus,
                            const char *map, const CpuSet *own, MetricsVcpu *ret);

/* Logs each pinned vCPU (and QEMU's other threads pinned to emulator, when res has them) of the guest name. */
void numa_pin_log(const char *name, const NumaPinResult *res, const char *emulator);
/* Logs why the guest name's [CPU] VCPUAffinity=map / EmulatorAffinity=emulator could not be applied at its
 * start (e from numa_pin()); returns the error. */
int numa_pin_log_error(const char *name, const char *map, const char *emulator, const NumaError *e);
