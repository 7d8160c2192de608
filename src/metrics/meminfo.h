/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* /proc/meminfo and /sys/devices/system/node/nodeN/meminfo parsers. They take a path (tests feed fixtures);
 * values are converted from the files' kB to bytes. */

#include "basic/macro.h"

#define MEMINFO_MAX_FIELDS 128

typedef struct MeminfoField {
        char name[40];          /* "Committed_AS", "HugePages_Total", … */
        uint64_t value;         /* bytes for kB fields, a plain count for the others (HugePages_*) */
        bool bytes;             /* the file gave a kB unit */
} MeminfoField;

typedef struct Meminfo {
        MeminfoField fields[MEMINFO_MAX_FIELDS];
        size_t n_fields;
} Meminfo;

/* Parses /proc/meminfo-style text ("Name:   123 kB"). Node files ("Node 0 MemTotal: …") are accepted too:
 * the "Node N " prefix is dropped. Unknown fields are kept; more than MEMINFO_MAX_FIELDS → -E2BIG; a
 * malformed line → -EINVAL; no field at all → -ENODATA. */
int meminfo_parse(const char *text, Meminfo *ret);
/* Reads and parses a file; a missing file → -ENOENT. */
int meminfo_read(const char *path, Meminfo *ret);
/* A field's value; -ENOENT when absent. */
int meminfo_get(const Meminfo *m, const char *name, uint64_t *ret);

/* The fields memvisor's decisions use; -ENODATA when one of MemTotal, MemAvailable, Committed_AS,
 * CommitLimit is missing. */
typedef struct HostMemory {
        uint64_t mem_total;
        uint64_t mem_free;
        uint64_t mem_available;
        uint64_t committed_as;
        uint64_t commit_limit;
        uint64_t swap_total;
        uint64_t swap_free;
} HostMemory;

int host_memory_from_meminfo(const Meminfo *m, HostMemory *ret);
/* Committed_AS / CommitLimit (0 when CommitLimit is 0). */
double host_memory_overcommit_ratio(const HostMemory *h);
