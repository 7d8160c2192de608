/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* CPU sets and lists ("0-3,8,10-11"), and vCPU pin maps ("0:2 1:3", or "0=2 1=3" as the CLI writes them;
 * each value is a CPU list). Pure functions, no system calls. */

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"

#define CPU_SET_MAX 1024U       /* CPUs 0 … 1023 */

typedef struct CpuSet {
        uint64_t bits[CPU_SET_MAX / 64];
} CpuSet;

static inline void cpu_set_add(CpuSet *s, unsigned cpu) {
        if (cpu < CPU_SET_MAX)
                s->bits[cpu / 64] |= UINT64_C(1) << (cpu % 64);
}

static inline bool cpu_set_contains(const CpuSet *s, unsigned cpu) {
        return cpu < CPU_SET_MAX && (s->bits[cpu / 64] & (UINT64_C(1) << (cpu % 64)));
}

unsigned cpu_set_count(const CpuSet *s);
bool cpu_set_is_empty(const CpuSet *s);
bool cpu_set_equal(const CpuSet *a, const CpuSet *b);
/* a ⊆ b */
bool cpu_set_is_subset(const CpuSet *a, const CpuSet *b);
/* Highest member, or -ENOENT when empty. */
int cpu_set_last(const CpuSet *s);

/* "0-3,8": decimal numbers and ascending ranges separated by commas (blanks around items are fine); an empty
 * list, a number ≥ CPU_SET_MAX (-ERANGE), a descending range or garbage → error. */
int cpu_list_parse(const char *s, CpuSet *ret);
/* Canonical form with ranges collapsed: "0-3,8". An empty set gives "". */
int cpu_list_format(const CpuSet *s, char **ret);

int cpu_set_to_sched(const CpuSet *s, cpu_set_t *ret);
int cpu_set_from_sched(const cpu_set_t *c, CpuSet *ret);

#define VCPU_PIN_MAX 512U

typedef struct VcpuPin {
        unsigned vcpu;
        CpuSet cpus;
} VcpuPin;

typedef struct VcpuPinMap {
        VcpuPin *pins;          /* sorted by vcpu, no duplicates */
        size_t n;
} VcpuPinMap;

void vcpu_pin_map_done(VcpuPinMap *m);

/* "0:2 1:3-4,6" or "0=2 1=3": entries separated by blanks, each VCPU[:=]CPULIST. An empty map, a vCPU
 * given twice (-EEXIST), a vCPU ≥ VCPU_PIN_MAX (-ERANGE) or a bad CPU list → error; ret_bad_entry (optional)
 * receives a copy of the entry at fault. */
int vcpu_pin_map_parse(const char *s, VcpuPinMap *ret, char **ret_bad_entry);
/* Canonical "0:2 1:3-4,6". */
int vcpu_pin_map_format(const VcpuPinMap *m, char **ret);
/* The pin of one vCPU, or NULL. */
const VcpuPin *vcpu_pin_map_find(const VcpuPinMap *m, unsigned vcpu);
