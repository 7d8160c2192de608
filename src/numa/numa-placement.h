/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where a process runs and where its memory lives: the CPU a thread last ran on (task stat), thread
 * affinity (set and verified), the threads of a process, and memory resident per node (numa_maps). The
 * parsers take a path so tests feed fixtures. */

#include <sys/types.h>

#include "numa/cpu-set.h"
#include "basic/macro.h"
#include "numa/numa-topology.h"

/* Field 39 ("processor") of a /proc/PID/task/TID/stat file. A missing file → -ENOENT (thread gone);
 * malformed → -EINVAL. */
int task_stat_parse_last_cpu(const char *text, unsigned *ret);
int task_stat_read_last_cpu(const char *path, unsigned *ret);

/* Sets the affinity of a thread and reads it back; when the kernel gives a different mask (cpuset
 * restrictions, offline CPUs) → -EXDEV with the effective mask in *ret_effective (optional) either way. */
int thread_pin(pid_t tid, const CpuSet *cpus, CpuSet *ret_effective);
int thread_get_affinity(pid_t tid, CpuSet *ret);

/* The thread ids of a process from PROC_ROOT/PID/task (sorted); -E2BIG over PROCESS_THREADS_MAX (read no
 * further). */
#define PROCESS_THREADS_MAX 16384U
int process_list_threads(const char *proc_root, pid_t pid, pid_t **ret, size_t *ret_n);

typedef struct NumaResidency {
        uint64_t pages[NUMA_NODES_MAX]; /* as numa_maps counts them: pages of each mapping's page size */
        uint64_t bytes[NUMA_NODES_MAX];
        uint64_t total_bytes;
        uint64_t huge_bytes;            /* part of total_bytes in mappings with pages > 4 KiB */
        unsigned max_node;              /* highest node seen + 1 */
} NumaResidency;

/* Parses /proc/PID/numa_maps text: sums "N<node>=<pages>" times "kernelpagesize_kB=" over all mappings. A
 * node ≥ NUMA_NODES_MAX → -ERANGE; malformed → -EINVAL. Empty text is valid (no memory). */
int numa_residency_parse(const char *text, NumaResidency *ret);
int numa_residency_read(const char *path, NumaResidency *ret);
uint64_t numa_residency_bytes_on(const NumaResidency *r, uint64_t node_mask);
/* [{"node": n, "bytes": b, "pages": p}, …] for nodes with memory. */
int numa_residency_to_json(const NumaResidency *r, json_object **ret);
