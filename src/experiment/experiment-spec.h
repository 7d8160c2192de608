/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An experiment definition (issue 15): which guest, how often, what provokes (a page migration, a ping-pong of
 * migrations, a balloon inflation, or nothing for the baseline), which guest program runs around it and which
 * counter sets are taken. Parsed from a *.experiment file (systemd-style INI, memvisor.experiment(5)) or from
 * the JSON form the varlink interface takes, with the same sections and keys: {"Experiment": {"Guest": "web",
 * "Iterations": 100}, "Provoke": {"Operation": "migrate", "From": "0", "To": "1"}, …}. JSON values may be
 * strings, numbers or booleans (taken as their text), or arrays of those for the list keys. Both forms go
 * through one key table (experiment-spec-keys.c), so they accept exactly the same things. Errors name the
 * place: "FILE:LINE: reason" for a value in a file, "FILE: Section.Key: reason" for a check across keys, and
 * "Section.Key: reason" for JSON; the field ("Provoke.To") is given apart as well. Pure: no system calls but
 * reading the file in experiment_spec_parse_file(). */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"
#include "numa/numa-guest-ram.h"
#include "qmp/qmp-dirty-rate.h"

typedef enum ExperimentOperation {
        EXPERIMENT_OPERATION_NONE,              /* the baseline: nothing is provoked */
        EXPERIMENT_OPERATION_MIGRATE,           /* one move of the guest's memory From= → To= */
        EXPERIMENT_OPERATION_MIGRATE_PINGPONG,  /* Moves= moves back and forth Between= two nodes */
        EXPERIMENT_OPERATION_BALLOON,           /* balloon to Target=, then back to Return= */
        EXPERIMENT_OPERATION_HOTPLUG,           /* virtio-mem to Target=, then back to Return= */
        _EXPERIMENT_OPERATION_MAX,
        _EXPERIMENT_OPERATION_INVALID = -EINVAL,
} ExperimentOperation;

typedef enum ExperimentWorkloadWhen {
        EXPERIMENT_WORKLOAD_DURING,     /* started before the provocation, waited for after it */
        EXPERIMENT_WORKLOAD_AFTER,      /* run after the provocation */
        EXPERIMENT_WORKLOAD_NONE,       /* no guest program */
        _EXPERIMENT_WORKLOAD_MAX,
        _EXPERIMENT_WORKLOAD_INVALID = -EINVAL,
} ExperimentWorkloadWhen;

/* The counter sets of [Measure] Counters= (memvisor.experiment(5), "COUNTER SETS"). */
typedef enum ExperimentCounter {
        EXPERIMENT_COUNTER_HOST_KVM_EXITS,      /* kvm:kvm_exit per vCPU thread and exit reason, page faults */
        EXPERIMENT_COUNTER_HOST_KVM_STATS,      /* QMP query-stats, VM and per vCPU */
        EXPERIMENT_COUNTER_HOST_TLB,            /* tlb:tlb_flush on the QEMU threads */
        EXPERIMENT_COUNTER_HOST_MIGRATE,        /* migrate:mm_migrate_pages, per-node residency of QEMU */
        EXPERIMENT_COUNTER_HOST_VMSTAT,         /* /proc/vmstat pgmigrate_* and numa_* */
        EXPERIMENT_COUNTER_GUEST_VMSTAT,        /* the guest's /proc/vmstat (agent) */
        EXPERIMENT_COUNTER_GUEST_INTERRUPTS,    /* the guest's /proc/interrupts (agent) */
        EXPERIMENT_COUNTER_WORKLOAD,            /* the workload's own JSON */
        EXPERIMENT_COUNTER_TIME,                /* wall times and throughput */
        EXPERIMENT_COUNTER_DIRTY_RATE,          /* QMP calc-dirty-rate in the settle phase (not by default) */
        _EXPERIMENT_COUNTER_MAX,
        _EXPERIMENT_COUNTER_INVALID = -EINVAL,
} ExperimentCounter;

/* [Matrix] Order=: how the variants' blocks follow each other. */
typedef enum ExperimentMatrixOrder {
        EXPERIMENT_MATRIX_INTERLEAVED,  /* every round runs one block of each variant, A B C A B C … */
        EXPERIMENT_MATRIX_RANDOM,       /* every round in its own order, shuffled from Seed= */
        _EXPERIMENT_MATRIX_ORDER_MAX,
        _EXPERIMENT_MATRIX_ORDER_INVALID = -EINVAL,
} ExperimentMatrixOrder;

DECLARE_STRING_TABLE(experiment_operation, ExperimentOperation);
DECLARE_STRING_TABLE(experiment_matrix_order, ExperimentMatrixOrder);
DECLARE_STRING_TABLE(experiment_workload_when, ExperimentWorkloadWhen);
DECLARE_STRING_TABLE(experiment_counter, ExperimentCounter);
/* One line on what the set holds, as memvisor.experiment(5) says it; NULL for an invalid counter. */
const char *experiment_counter_description(ExperimentCounter c) _pure_;
/* "host-kvm-exits, host-kvm-stats, …, time": the names, for error messages. */
const char *experiment_counter_names(void) _pure_;

#define EXPERIMENT_COUNTER_MASK(c) (UINT64_C(1) << (c))
#define EXPERIMENT_COUNTERS_ALL ((UINT64_C(1) << _EXPERIMENT_COUNTER_MAX) - 1)
/* Counters= when not given: every set but dirty-rate, which runs a measurement in QEMU for a second or more after
 * each iteration and so is taken only when asked for. */
#define EXPERIMENT_COUNTERS_DEFAULT (EXPERIMENT_COUNTERS_ALL & ~EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_DIRTY_RATE))

#define EXPERIMENT_FILE_MAX (64U * 1024U)       /* a *.experiment file, and the text of the JSON form */
#define EXPERIMENT_NAME_MAX 64                  /* Name=, as guest names */
#define EXPERIMENT_DESCRIPTION_MAX 1024U
#define EXPERIMENT_ITERATIONS_MAX 10000U
#define EXPERIMENT_ITERATIONS_DEFAULT 10U
#define EXPERIMENT_SETTLE_DEFAULT (1 * USEC_PER_SEC)
#define EXPERIMENT_SETTLE_MAX (3600 * USEC_PER_SEC)
#define EXPERIMENT_SEED_DEFAULT UINT64_C(1)
#define EXPERIMENT_NODES_MAX 64U                /* node lists: nodes 0 … 63, as the NUMA module */
#define EXPERIMENT_MOVES_MAX 10000U
#define EXPERIMENT_MOVES_DEFAULT 2U
#define EXPERIMENT_BALLOON_MAX (UINT64_C(16) << 40)     /* 16T, the largest guest */
#define EXPERIMENT_BALLOON_TIMEOUT_DEFAULT (60 * USEC_PER_SEC)
#define EXPERIMENT_HOTPLUG_TIMEOUT_MAX (3600 * USEC_PER_SEC)    /* SetHotplugMemory's longest wait */
#define EXPERIMENT_PROGRAM_DEFAULT "/usr/bin/memvisor-touch"
#define EXPERIMENT_PROGRAM_MAX 4095U
#define EXPERIMENT_ARGUMENTS_MAX 256U
#define EXPERIMENT_WORKLOAD_TIMEOUT_DEFAULT (300 * USEC_PER_SEC)
#define EXPERIMENT_TIMEOUT_MAX (86400 * USEC_PER_SEC)   /* Timeout= of [Provoke] and [Workload]: 24h */
#define EXPERIMENT_TRACEPOINTS_MAX 64U
#define EXPERIMENT_TRACEPOINT_NAME_MAX 128U

#define EXPERIMENT_MATRIX_KEYS_MAX 8U            /* keys that vary */
#define EXPERIMENT_MATRIX_VALUES_MAX 16U         /* values of one key */
#define EXPERIMENT_VARIANTS_MAX 16U              /* combinations: variants A … P */
#define EXPERIMENT_BLOCK_MAX 10000U
#define EXPERIMENT_BOOT_TIMEOUT_DEFAULT (300 * USEC_PER_SEC)

/* One key of the guest's .vm that varies in a matrix run, with its values in the order given. */
typedef struct ExperimentMatrixKey {
        char *name;                     /* "VM.Append": the canonical Section.Key (vm_spec_key_resolve) */
        char **values;                  /* NULL-terminated, at least one, distinct */
        size_t n_values;
} ExperimentMatrixKey;

typedef struct ExperimentSpec {
        /* [Experiment] */
        char *name;                     /* Name=, optional: 1..64 of [a-zA-Z0-9_.-], not starting with '.' or '-' */
        char *description;              /* Description=, optional free text, at most 1024 bytes */
        char *guest;                    /* Guest=, required: a guest name (vm_name_is_valid) */
        unsigned iterations;            /* Iterations=, default 10; 1 … 10000 */
        unsigned warm_up;               /* WarmUp=, default 0; 0 … Iterations-1: run, kept, not in statistics */
        uint64_t settle_usec;           /* Settle=, default 1s; 0 … 1h between iterations */
        uint64_t seed;                  /* Seed=, default 1: the seed of everything random (workload order) */

        /* [Provoke] Only the keys of the chosen operation may be set; the others stay at their defaults. */
        ExperimentOperation operation;  /* Operation=, default none */
        MigrationScope scope;           /* migrate, migrate-pingpong: Scope=, default process; guest-ram moves the
                                         * guest RAM mappings alone (move_pages(2)), as MigratePages' scope */
        uint64_t from_nodes;            /* migrate: From=, node mask (bit n: node n), required */
        uint64_t to_nodes;              /* migrate: To=, node mask, required, not equal to From= */
        uint64_t between_nodes;         /* migrate-pingpong: Between=, exactly two nodes; the first move goes from
                                         * the lower to the higher */
        unsigned moves;                 /* migrate-pingpong: Moves=, per iteration, default 2; 1 … 10000 */
        uint64_t target_bytes;          /* balloon, hotplug: Target=, required; a whole number of MiB up to 16T.
                                         * hotplug: the virtio-mem device's requested size (memory beyond
                                         * Memory=), a multiple of its block size, at most HotplugSize= */
        uint64_t return_bytes;          /* balloon: Return=, default 0: back to the size read before the
                                         * provocation; else a whole number of MiB, not Target=.
                                         * hotplug: the requested size to go back to, default 0 (unplugged) */
        bool wait;                      /* balloon, hotplug: Wait=, default yes: each step ends when the size has
                                         * followed (or Timeout= passes: the iteration fails) */
        uint64_t timeout_usec;          /* balloon, hotplug: Timeout=, default 1min; > 0, at most 24h */

        /* [Workload] With When=none only When= may be set. */
        ExperimentWorkloadWhen when;    /* When=, default during */
        char *program;                  /* Program=, absolute guest path, default /usr/bin/memvisor-touch */
        char **arguments;               /* Arguments=, split like a shell (quotes, backslash), no expansion;
                                         * NULL-terminated, may be NULL */
        size_t n_arguments;             /* at most 256 */
        uint64_t workload_timeout_usec; /* Timeout=, default 5min; > 0, at most 24h */

        /* [Measure] */
        uint64_t counters;              /* Counters=, EXPERIMENT_COUNTER_MASK() bits, default all but dirty-rate;
                                         * not empty */
        DirtyRateMode dirty_rate_mode;  /* DirtyRateMode=, default page-sampling; only with dirty-rate */
        uint64_t required;              /* Require=, a subset of counters, default none */
        char **tracepoints;             /* Tracepoints=, "subsystem:event" ([A-Za-z0-9_]), distinct, at most 64;
                                         * NULL-terminated, may be NULL */
        size_t n_tracepoints;

        /* [Matrix] (issue 16). Any other key of the section is a key of the guest's .vm (memvisor.vm(5)) with the
         * values it takes, one variant per combination. No such key: a plain experiment, and the three below
         * may not be set. */
        ExperimentMatrixKey *matrix;    /* in the order of their first assignment */
        size_t n_matrix;
        ExperimentMatrixOrder order;    /* Order=, default interleaved */
        unsigned block;                 /* Block=, measured iterations of a variant per block, default 1 */
        uint64_t boot_timeout_usec;     /* BootTimeout=, default 5min: the guest running (and its agent ready) */
} ExperimentSpec;

/* A parse or validation problem: where and why. */
typedef struct ExperimentSpecError {
        char *field;                    /* "Provoke.To" (section.key), or NULL (a syntax error, a file problem) */
        char *message;                  /* the full text: "ping.experiment:7: Invalid value '9x' for To=: …" */
} ExperimentSpecError;

void experiment_spec_error_done(ExperimentSpecError *e);

ExperimentSpec *experiment_spec_new(void);      /* every default set; guest NULL (so it does not validate) */
ExperimentSpec *experiment_spec_free(ExperimentSpec *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(ExperimentSpec *, experiment_spec_free);

/* Parses INI text (at most EXPERIMENT_FILE_MAX bytes); filename (may be NULL) is used in messages only.
 * Validates the result. -EINVAL (or -ERANGE, -E2BIG, -EFBIG) with *ret_error filled on bad input, -ENOMEM. */
int experiment_spec_parse_ini(const char *filename, const char *text, ExperimentSpec **ret,
                              ExperimentSpecError *ret_error);
/* Reads and parses a file: larger than EXPERIMENT_FILE_MAX → -EFBIG, a NUL byte → -EINVAL. */
int experiment_spec_parse_file(const char *path, ExperimentSpec **ret, ExperimentSpecError *ret_error);
/* The JSON form: an object of sections, each an object of keys; "Section": null is an empty section. The text
 * of all values together is bounded by EXPERIMENT_FILE_MAX; strings with NUL or invalid UTF-8 are refused. */
int experiment_spec_parse_json(json_object *definition, ExperimentSpec **ret, ExperimentSpecError *ret_error);

/* Every value on its own and the checks across keys (WarmUp= < Iterations=, the keys of the chosen operation
 * and only those, From= ≠ To=, Require= ⊆ Counters=, …). */
int experiment_spec_validate(const ExperimentSpec *s, ExperimentSpecError *ret_error);

/* Canonical INI text: every key that belongs to the chosen operation and workload, defaults included, in the
 * order of the key table. Parsing it gives an equal spec. */
int experiment_spec_to_ini(const ExperimentSpec *s, char **ret);
/* The JSON form of the same keys: numbers for counts, sizes and the seed, booleans, strings for time spans
 * and node lists, arrays for the lists. */
int experiment_spec_to_json(const ExperimentSpec *s, json_object **ret);
bool experiment_spec_equal(const ExperimentSpec *a, const ExperimentSpec *b);
int experiment_spec_copy(const ExperimentSpec *s, ExperimentSpec **ret);

/* Matrix runs. The variants are the combinations of the [Matrix] keys' values, the last key varying fastest,
 * labelled A, B, … in that order; 0 when the spec has no matrix. */
size_t experiment_spec_n_variants(const ExperimentSpec *s) _pure_;
/* The settings of variant v: names ("VM.Append") and values, both borrowed from s, n_matrix of each. */
int experiment_spec_variant(const ExperimentSpec *s, size_t v, const char **names, const char **values);
/* "A" … "P". */
const char *experiment_variant_label(size_t v) _pure_;
/* The index of a label, or -EINVAL. */
int experiment_variant_from_label(const char *label);
/* Blocks per variant (Iterations= over Block=, rounded up) and the iterations the run records in all: each
 * block is WarmUp= warm-up iterations after the guest's boot, then up to Block= measured ones. A plain
 * experiment: 1 and Iterations=. */
unsigned experiment_spec_blocks(const ExperimentSpec *s) _pure_;
uint64_t experiment_spec_planned(const ExperimentSpec *s) _pure_;
/* The order of the blocks: n_variants × blocks variant indexes, round by round (Order=, Seed=). */
int experiment_spec_schedule(const ExperimentSpec *s, size_t **ret, size_t *ret_n);

/* The keys of the format (memvisor.experiment(5)) in table order, for i = 0, 1, … until it returns false.
 * multiple: the key takes a list (repeatable, an array in JSON). */
bool experiment_spec_key_get(size_t i, const char **ret_section, const char **ret_key, bool *ret_multiple);
