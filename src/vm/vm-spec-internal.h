/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The key table behind vm-spec.h: one VmKey per [Section] Key= of memvisor.vm(5) says where its value lives in
 * VmSpec, its type, its default and how a non-empty value is checked. Parsing (INI and JSON), vm_spec_new()'s
 * defaults, the canonical INI and JSON output, vm_spec_equal(), vm_spec_copy() and the documentation check
 * (man/vm-spec-keys.c) all walk it; only the checks across keys (vm-spec-validate.c) are written out. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm/vm-spec.h"

#define SIZE_MB (UINT64_C(1) << 20)
#define SIZE_GB (UINT64_C(1) << 30)
#define SIZE_TB (UINT64_C(1) << 40)

#define VM_MEMORY_MIN (16 * SIZE_MB)
#define VM_MEMORY_MAX (16 * SIZE_TB)
#define VM_MEMORY_DEFAULT (512 * SIZE_MB)
#define VM_MACHINE_DEFAULT "q35"
#define VM_MACHINE_MAX 64

/* QEMU's memory backends refuse host-nodes values >= 128 ("Invalid host-nodes value"), so a node list that
 * names a higher node could never start. */
#define VM_HOST_NODES_MAX 128

/* [Memory] HugePageSize= and PreallocThreads=. */
#define VM_HUGEPAGE_SIZE_MIN (UINT64_C(64) << 10)
#define VM_HUGEPAGE_SIZE_MAX (16 * SIZE_GB)
#define VM_PREALLOC_THREADS_MAX 256U

/* [Memory] HotplugSize=: QEMU's virtio-mem default block size; HotplugNode=: QEMU's MAX_NODES - 1. */
#define VM_HOTPLUG_BLOCK_SIZE (2 * SIZE_MB)
#define VM_HOTPLUG_NODE_MAX 127U

#define VM_TIMEOUT_DEFAULT (30 * USEC_PER_SEC)
#define VM_RESTART_DEFAULT (1 * USEC_PER_SEC)
#define VM_RESTART_MAX_DEFAULT (60 * USEC_PER_SEC)
#define VM_START_LIMIT_BURST_DEFAULT 5U
#define VM_START_LIMIT_INTERVAL_DEFAULT (60 * USEC_PER_SEC)

/* [Memory] Migrate*=: the limits of the MigratePages method (manager-numa.c), which runs the schedule. */
#define VM_MIGRATE_COUNT_MAX 10000U
#define VM_MIGRATE_EVERY_MAX (86400 * USEC_PER_SEC)
#define VM_MIGRATE_SETTLE_DEFAULT (1 * USEC_PER_SEC)
#define VM_MIGRATE_SETTLE_MAX (600 * USEC_PER_SEC)

typedef enum VmKeyType {
        VM_KEY_STRING,          /* char *, NULL when unset; INI "Key=", JSON null */
        VM_KEY_STRV,            /* char ** with a size_t count (n_offset); may repeat / be an array */
        VM_KEY_BOOL,            /* bool; yes/no, JSON boolean */
        VM_KEY_UNSIGNED,        /* unsigned; JSON number */
        VM_KEY_SIZE,            /* uint64_t bytes; INI "512M", JSON number */
        VM_KEY_SEC,             /* uint64_t usec; "30s", "infinity" in both forms */
        VM_KEY_ENUM,            /* an enum with a string table (to_string/from_string); JSON string */
} VmKeyType;

typedef struct VmKey VmKey;

typedef struct VmSpecParser {
        VmSpec *spec;
        const char *expected_name;      /* from name_hint or the file name; NULL if neither */
        const char *expected_name_why;  /* "the file name" / "the name the VM is defined under" */
        const VmKey *failed;            /* the key whose value was rejected */
} VmSpecParser;

/* Parses a non-empty value into field (the key's member of p->spec); leaves it untouched on failure and says what
 * it expects in *ret_reason. */
typedef int (*VmKeyParseFn)(VmSpecParser *p, const VmKey *k, const char *value, void *field, char **ret_reason);

struct VmKey {
        const char *section;
        const char *key;
        VmKeyType type;
        size_t offset;                  /* of the member in VmSpec */
        size_t n_offset;                /* VM_KEY_STRV: of its count */
        union {                         /* what an empty value (or vm_spec_new()) sets */
                uint64_t u;             /* UNSIGNED, SIZE, SEC, ENUM, BOOL */
                const char *s;          /* STRING */
        } def;
        VmKeyParseFn parse;             /* NULL: the type's own parser with the limits below */
        /* Limits and words of the stock parsers. */
        bool (*is_valid)(const char *s);        /* STRING */
        unsigned min, max;                      /* UNSIGNED */
        bool zero, infinity;                    /* SEC: 0 / infinity allowed */
        int (*from_string)(const char *s);      /* ENUM */
        const char *(*to_string)(int i);        /* ENUM */
        const char *expected;                   /* STRING, UNSIGNED (a format with max), ENUM: the reason */
        bool quote;                             /* STRV: shell-quoted in the output (ExtraArgs=) */
};

extern const VmKey vm_keys[];
extern const size_t vm_keys_n;
extern const char *const vm_sections[];
extern const size_t vm_sections_n;

const VmKey *vm_key_find(const char *section, const char *key);
bool vm_section_known(const char *section);
/* Checks that the value can be stored, resets to the default when it is empty, parses it otherwise; records
 * the key in p->failed when it refuses the value. */
int vm_key_apply(VmSpecParser *p, const VmKey *k, const char *value, char **ret_reason);
/* Sets the key to its default (a list: empty). */
int vm_key_reset(const VmKey *k, VmSpec *s);

static inline void *vm_key_field(const VmKey *k, VmSpec *s) {
        return (uint8_t *) s + k->offset;
}
static inline const void *vm_key_field_const(const VmKey *k, const VmSpec *s) {
        return (const uint8_t *) s + k->offset;
}

/* Sets *ret_reason (if non-NULL) to the formatted explanation; returns error. */
int vm_spec_reasonf(char **ret_reason, int error, const char *fmt, ...) _printf_(3, 4);

/* Value checks shared by the key parsers and vm_spec_validate(). */
bool vm_spec_machine_is_valid(const char *m);
bool vm_spec_path_is_valid(const char *p);
bool vm_spec_emulator_is_valid(const char *e);
bool vm_spec_cpu_model_is_valid(const char *m);
bool vm_spec_value_is_storable(const char *v);
bool vm_spec_hugepage_size_is_valid(uint64_t bytes);
int vm_spec_host_nodes_parse(const char *s, bool nodes[static VM_HOST_NODES_MAX]);
char *vm_spec_host_nodes_format(const bool nodes[static VM_HOST_NODES_MAX]);
unsigned vm_spec_host_nodes_count(const bool nodes[static VM_HOST_NODES_MAX]);
/* The first node the NUMA code cannot handle (≥ NUMA_NODES_MAX: its node masks have 64 bits), or -1: refused
 * at definition with that reason rather than at start. */
int vm_spec_host_nodes_unsupported(const bool nodes[static VM_HOST_NODES_MAX]);
int vm_spec_migrate_between_parse(const char *s, unsigned ret_nodes[static 2]);

/* Exact, parse_sec()-compatible text for a time span: "30s", "2min", "1.5s", "250ms", "infinity". */
void vm_spec_format_sec(char buf[static 64], uint64_t usec);
/* Exact, parse_size()-compatible text for a size: "512M", "2G", or bytes. */
void vm_spec_format_size(char buf[static 32], uint64_t bytes);

/* GuestNode= and GuestDistance= (vm-spec-numa.c): the key parsers and the checks across keys. */
int vm_spec_key_guest_node(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason);
int vm_spec_key_guest_distance(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason);
int vm_spec_validate_numa(const VmSpec *s, const char **ret_field, char **ret_reason);

/* Fills field ("VM.Memory") and reason; returns -EINVAL on the first problem, 0 if the spec is fine. */
int vm_spec_validate_internal(const VmSpec *s, const char **ret_field, char **ret_reason);
