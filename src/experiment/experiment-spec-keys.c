/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The key table of memvisor.experiment(5), the counter set table, and the per-key operations on them
 * (experiment-spec-internal.h). */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "basic/parse.h"
#include "basic/strv.h"
#include "experiment/experiment-spec-internal.h"
#include "numa/cpu-set.h"
#include "numa/numa-topology.h"
#include "vm/vm-spec.h"

#define SIZE_MB (UINT64_C(1) << 20)
#define SIZE_GB (UINT64_C(1) << 30)
#define SIZE_TB (UINT64_C(1) << 40)

static const char *const experiment_operation_table[_EXPERIMENT_OPERATION_MAX] = {
        [EXPERIMENT_OPERATION_NONE] = "none",
        [EXPERIMENT_OPERATION_MIGRATE] = "migrate",
        [EXPERIMENT_OPERATION_MIGRATE_PINGPONG] = "migrate-pingpong",
        [EXPERIMENT_OPERATION_BALLOON] = "balloon",
        [EXPERIMENT_OPERATION_HOTPLUG] = "hotplug",
};
DEFINE_STRING_TABLE(experiment_operation, ExperimentOperation, _EXPERIMENT_OPERATION_MAX);

static const char *const experiment_matrix_order_table[_EXPERIMENT_MATRIX_ORDER_MAX] = {
        [EXPERIMENT_MATRIX_INTERLEAVED] = "interleaved",
        [EXPERIMENT_MATRIX_RANDOM] = "random",
};
DEFINE_STRING_TABLE(experiment_matrix_order, ExperimentMatrixOrder, _EXPERIMENT_MATRIX_ORDER_MAX);

static const char *const experiment_workload_when_table[_EXPERIMENT_WORKLOAD_MAX] = {
        [EXPERIMENT_WORKLOAD_DURING] = "during",
        [EXPERIMENT_WORKLOAD_AFTER] = "after",
        [EXPERIMENT_WORKLOAD_NONE] = "none",
};
DEFINE_STRING_TABLE(experiment_workload_when, ExperimentWorkloadWhen, _EXPERIMENT_WORKLOAD_MAX);

/* The counter sets: name and what it holds. memvisor.experiment(5) lists the same (man/check-experiment-docs.py). */
static const struct {
        const char *name;
        const char *description;
} experiment_counters[_EXPERIMENT_COUNTER_MAX] = {
        [EXPERIMENT_COUNTER_HOST_KVM_EXITS] = { "host-kvm-exits",
                "kvm:kvm_exit per vCPU thread and exit reason, kvm:kvm_page_fault, kvm:kvm_pv_tlb_flush and the "
                "Tracepoints= (perf tracepoint counters)" },
        [EXPERIMENT_COUNTER_HOST_KVM_STATS] = { "host-kvm-stats",
                "every KVM statistic of QMP query-stats, for the VM and per vCPU" },
        [EXPERIMENT_COUNTER_HOST_TLB] = { "host-tlb", "tlb:tlb_flush on the QEMU threads" },
        [EXPERIMENT_COUNTER_HOST_MIGRATE] = { "host-migrate",
                "migrate:mm_migrate_pages on the QEMU threads and the QEMU process's memory per node" },
        [EXPERIMENT_COUNTER_HOST_VMSTAT] = { "host-vmstat", "the host's /proc/vmstat pgmigrate_* and numa_* counters" },
        [EXPERIMENT_COUNTER_GUEST_VMSTAT] = { "guest-vmstat", "the guest's /proc/vmstat, read by the guest agent" },
        [EXPERIMENT_COUNTER_GUEST_INTERRUPTS] = { "guest-interrupts",
                "the guest's /proc/interrupts, read by the guest agent" },
        [EXPERIMENT_COUNTER_WORKLOAD] = { "workload", "the figures the workload prints as JSON" },
        [EXPERIMENT_COUNTER_TIME] = { "time", "provocation and workload wall time, throughput per thread" },
        [EXPERIMENT_COUNTER_DIRTY_RATE] = { "dirty-rate",
                "the guest's dirty-page rate (QMP calc-dirty-rate) in the settle phase, whole guest and per vCPU "
                "where the mode gives it" },
};

const char *experiment_counter_to_string(ExperimentCounter c) {
        if ((int) c < 0 || c >= _EXPERIMENT_COUNTER_MAX)
                return NULL;
        return experiment_counters[c].name;
}

ExperimentCounter experiment_counter_from_string(const char *s) {
        if (!s)
                return _EXPERIMENT_COUNTER_INVALID;
        for (size_t i = 0; i < _EXPERIMENT_COUNTER_MAX; i++)
                if (streq(experiment_counters[i].name, s))
                        return (ExperimentCounter) i;
        return _EXPERIMENT_COUNTER_INVALID;
}

const char *experiment_counter_description(ExperimentCounter c) {
        if ((int) c < 0 || c >= _EXPERIMENT_COUNTER_MAX)
                return NULL;
        return experiment_counters[c].description;
}

const char *experiment_counter_names(void) {
        return "host-kvm-exits, host-kvm-stats, host-tlb, host-migrate, host-vmstat, guest-vmstat, "
               "guest-interrupts, workload, time, dirty-rate";
}

#define DEFINE_ENUM_ACCESSORS(name, type)                                       \
        static int name##_from_int_string(const char *s) {                      \
                return (int) name##_from_string(s);                             \
        }                                                                       \
        static const char *name##_to_int_string(int i) {                        \
                return name##_to_string((type) i);                              \
        }

DEFINE_ENUM_ACCESSORS(experiment_operation, ExperimentOperation)
DEFINE_ENUM_ACCESSORS(experiment_workload_when, ExperimentWorkloadWhen)
DEFINE_ENUM_ACCESSORS(experiment_matrix_order, ExperimentMatrixOrder)
DEFINE_ENUM_ACCESSORS(migration_scope, MigrationScope)
DEFINE_ENUM_ACCESSORS(dirty_rate_mode, DirtyRateMode)

int experiment_spec_reasonf(char **ret_reason, int error, const char *fmt, ...) {
        va_list ap;

        if (!ret_reason)
                return error;
        free(*ret_reason);
        va_start(ap, fmt);
        if (vasprintf(ret_reason, fmt, ap) < 0)
                *ret_reason = NULL;
        va_end(ap);
        return error;
}

#define reasonf experiment_spec_reasonf

/* ---------------------------------------------------------------------------------------------------- */
/* Value checks */

bool experiment_name_is_valid(const char *name) {
        /* The same rules as guest names: usable as a file name and in a metric label. */
        return vm_name_is_valid(name);
}

/* Text that survives being written as a value and read back: no control characters but tab, no surrounding
 * whitespace (the INI parser strips it), no trailing backslash (it would continue the line). */
bool experiment_text_is_storable(const char *v) {
        size_t n;

        if (!v)
                return true;
        for (const char *p = v; *p; p++)
                if (iscntrl((unsigned char) *p) && *p != '\t')
                        return false;
        n = strlen(v);
        return n == 0 || !(isspace((unsigned char) v[0]) || isspace((unsigned char) v[n - 1]) || v[n - 1] == '\\');
}

static bool description_is_valid(const char *d) {
        return strlen(d) <= EXPERIMENT_DESCRIPTION_MAX && experiment_text_is_storable(d);
}

static bool program_is_valid(const char *p) {
        return p[0] == '/' && strlen(p) <= EXPERIMENT_PROGRAM_MAX && experiment_text_is_storable(p);
}

static bool argument_is_valid(const char *a) {
        for (const char *p = a; *p; p++)
                if (iscntrl((unsigned char) *p) && *p != '\t')
                        return false;
        return strlen(a) < EXPERIMENT_FILE_MAX;
}

static bool tracepoint_word_is_valid(const char *s, size_t n) {
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '_')
                        return false;
        return true;
}

/* "subsystem:event", each of [A-Za-z0-9_], as tracefs names them (events/SUBSYSTEM/EVENT). */
bool experiment_tracepoint_is_valid(const char *t) {
        const char *colon;

        if (isempty(t) || strlen(t) > EXPERIMENT_TRACEPOINT_NAME_MAX)
                return false;
        colon = strchr(t, ':');
        if (!colon)
                return false;
        return tracepoint_word_is_valid(t, (size_t) (colon - t)) && tracepoint_word_is_valid(colon + 1, strlen(colon + 1));
}

char *experiment_nodes_format(uint64_t mask) {
        CpuSet set = {};
        char *s = NULL;

        set.bits[0] = mask;
        if (cpu_list_format(&set, &s) < 0)
                return NULL;
        return s;
}

/* Exact, parse_sec()-compatible text for a time span: "30s", "2min", "1.5s", "250ms", "0". */
static void format_sec_exact(char buf[static 64], uint64_t usec) {
        if (usec == USEC_INFINITY)
                snprintf(buf, 64, "infinity");
        else if (usec == 0)
                snprintf(buf, 64, "0");
        else if (usec % (3600 * USEC_PER_SEC) == 0)
                snprintf(buf, 64, "%" PRIu64 "h", usec / (3600 * USEC_PER_SEC));
        else if (usec % (60 * USEC_PER_SEC) == 0)
                snprintf(buf, 64, "%" PRIu64 "min", usec / (60 * USEC_PER_SEC));
        else if (usec % USEC_PER_SEC == 0)
                snprintf(buf, 64, "%" PRIu64 "s", usec / USEC_PER_SEC);
        else if (usec < USEC_PER_SEC && usec % USEC_PER_MSEC == 0)
                snprintf(buf, 64, "%" PRIu64 "ms", usec / USEC_PER_MSEC);
        else if (usec < USEC_PER_SEC)
                snprintf(buf, 64, "%" PRIu64 "us", usec);
        else {
                int n = snprintf(buf, 64, "%" PRIu64 ".%06" PRIu64, usec / USEC_PER_SEC, usec % USEC_PER_SEC);

                while (n > 0 && buf[n - 1] == '0')
                        buf[--n] = 0;
                snprintf(buf + n, 64 - (size_t) n, "s");
        }
}

/* Exact text for a whole number of MiB: "512M", "2G", "1T"; "0". */
static void format_size_exact(char buf[static 32], uint64_t bytes) {
        if (bytes != 0 && bytes % SIZE_TB == 0)
                snprintf(buf, 32, "%" PRIu64 "T", bytes / SIZE_TB);
        else if (bytes != 0 && bytes % SIZE_GB == 0)
                snprintf(buf, 32, "%" PRIu64 "G", bytes / SIZE_GB);
        else if (bytes != 0 && bytes % SIZE_MB == 0)
                snprintf(buf, 32, "%" PRIu64 "M", bytes / SIZE_MB);
        else
                snprintf(buf, 32, "%" PRIu64, bytes);
}

/* ---------------------------------------------------------------------------------------------------- */
/* The table: the order of memvisor.experiment(5) and of the canonical output. */

#define AT(member) .offset = offsetof(ExperimentSpec, member)
#define OP(op) (1U << EXPERIMENT_OPERATION_##op)
#define STRING(member, def_, valid, expect) \
        .type = EXPERIMENT_KEY_STRING, AT(member), .def_s = (def_), .is_valid = (valid), .expected = (expect)
#define STRV(member, n_member, max_, valid, expect, quote_)                                                     \
        .type = EXPERIMENT_KEY_STRV, AT(member), .n_offset = offsetof(ExperimentSpec, n_member), .max = (max_), \
        .is_valid = (valid), .expected = (expect), .quote = (quote_)
#define UNSIGNED(member, def_, min_, max_) \
        .type = EXPERIMENT_KEY_UNSIGNED, AT(member), .def = (def_), .min = (min_), .max = (max_)
#define SIZE(member, min_) .type = EXPERIMENT_KEY_SIZE, AT(member), .min = (min_), .max = EXPERIMENT_BALLOON_MAX
#define SEC(member, def_, min_, max_) .type = EXPERIMENT_KEY_SEC, AT(member), .def = (def_), .min = (min_), .max = (max_)
#define ENUM(member, def_, name)                                                                          \
        .type = EXPERIMENT_KEY_ENUM, AT(member), .def = (def_), .from_string = name##_from_int_string, \
        .to_string = name##_to_int_string
#define NODES(member, max_) .type = EXPERIMENT_KEY_NODES, AT(member), .max = (max_)
#define COUNTERS(member, def_) .type = EXPERIMENT_KEY_COUNTERS, AT(member), .def = (def_)

const ExperimentKey experiment_keys[] = {
        { "Experiment", "Name", STRING(name, NULL, experiment_name_is_valid,
                "expected a name of 1 to 64 characters from a-z, A-Z, 0-9, '_', '.', '-', not starting with '.' or '-'") },
        { "Experiment", "Description", STRING(description, NULL, description_is_valid,
                "expected text of at most 1024 bytes") },
        { "Experiment", "Guest", STRING(guest, NULL, vm_name_is_valid,
                "expected a guest name of 1 to 64 characters from a-z, A-Z, 0-9, '_', '.', '-', not starting with "
                "'.' or '-'") },
        { "Experiment", "Iterations", UNSIGNED(iterations, EXPERIMENT_ITERATIONS_DEFAULT, 1, EXPERIMENT_ITERATIONS_MAX) },
        { "Experiment", "WarmUp", UNSIGNED(warm_up, 0, 0, EXPERIMENT_ITERATIONS_MAX - 1) },
        { "Experiment", "Settle", SEC(settle_usec, EXPERIMENT_SETTLE_DEFAULT, 0, EXPERIMENT_SETTLE_MAX) },
        { "Experiment", "Seed", .type = EXPERIMENT_KEY_UINT64, AT(seed), .def = EXPERIMENT_SEED_DEFAULT },

        { "Provoke", "Operation", ENUM(operation, EXPERIMENT_OPERATION_NONE, experiment_operation) },
        { "Provoke", "From", NODES(from_nodes, 0), .operations = OP(MIGRATE) },
        { "Provoke", "To", NODES(to_nodes, 0), .operations = OP(MIGRATE) },
        { "Provoke", "Between", NODES(between_nodes, 2), .operations = OP(MIGRATE_PINGPONG) },
        { "Provoke", "Moves", UNSIGNED(moves, EXPERIMENT_MOVES_DEFAULT, 1, EXPERIMENT_MOVES_MAX),
          .operations = OP(MIGRATE_PINGPONG) },
        { "Provoke", "Scope", ENUM(scope, MIGRATION_SCOPE_PROCESS, migration_scope),
          .operations = OP(MIGRATE) | OP(MIGRATE_PINGPONG) },
        { "Provoke", "Target", SIZE(target_bytes, SIZE_MB), .operations = OP(BALLOON) | OP(HOTPLUG) },
        { "Provoke", "Return", SIZE(return_bytes, 0), .operations = OP(BALLOON) | OP(HOTPLUG) },
        { "Provoke", "Wait", .type = EXPERIMENT_KEY_BOOL, AT(wait), .def = true,
          .operations = OP(BALLOON) | OP(HOTPLUG) },
        { "Provoke", "Timeout", SEC(timeout_usec, EXPERIMENT_BALLOON_TIMEOUT_DEFAULT, 1, EXPERIMENT_TIMEOUT_MAX),
          .operations = OP(BALLOON) | OP(HOTPLUG) },

        { "Workload", "When", ENUM(when, EXPERIMENT_WORKLOAD_DURING, experiment_workload_when) },
        { "Workload", "Program", STRING(program, EXPERIMENT_PROGRAM_DEFAULT, program_is_valid,
                "expected an absolute path in the guest, such as /usr/bin/memvisor-touch"), .workload = true },
        { "Workload", "Arguments", STRV(arguments, n_arguments, EXPERIMENT_ARGUMENTS_MAX, argument_is_valid,
                "expected arguments separated by blanks, with balanced quotes and no trailing backslash", true),
          .workload = true },
        { "Workload", "Timeout", SEC(workload_timeout_usec, EXPERIMENT_WORKLOAD_TIMEOUT_DEFAULT, 1, EXPERIMENT_TIMEOUT_MAX),
          .workload = true },

        { "Measure", "Counters", COUNTERS(counters, EXPERIMENT_COUNTERS_DEFAULT) },
        { "Measure", "Tracepoints", STRV(tracepoints, n_tracepoints, EXPERIMENT_TRACEPOINTS_MAX,
                experiment_tracepoint_is_valid, "expected tracepoint names such as kvm:kvm_exit (subsystem:event, "
                "each of A-Z, a-z, 0-9 and '_')", false) },
        { "Measure", "Require", COUNTERS(required, 0) },
        { "Measure", "DirtyRateMode", ENUM(dirty_rate_mode, DIRTY_RATE_MODE_PAGE_SAMPLING, dirty_rate_mode) },

        { "Matrix", "Order", ENUM(order, EXPERIMENT_MATRIX_INTERLEAVED, experiment_matrix_order), .matrix = true },
        { "Matrix", "Block", UNSIGNED(block, 1, 1, EXPERIMENT_BLOCK_MAX), .matrix = true },
        { "Matrix", "BootTimeout", SEC(boot_timeout_usec, EXPERIMENT_BOOT_TIMEOUT_DEFAULT, USEC_PER_SEC,
                                       EXPERIMENT_TIMEOUT_MAX), .matrix = true },
};

const size_t experiment_keys_n = ELEMENTSOF(experiment_keys);

/* ExperimentSpecParser.assigned has a bit per key. */
_Static_assert(ELEMENTSOF(experiment_keys) <= 64, "too many keys for the assigned mask");

const char *const experiment_sections[] = { "Experiment", "Provoke", "Workload", "Measure", "Matrix" };
const size_t experiment_sections_n = ELEMENTSOF(experiment_sections);

const ExperimentKey *experiment_key_find(const char *section, const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(experiment_keys); i++)
                if (streq(experiment_keys[i].section, section) && streq(experiment_keys[i].key, key))
                        return experiment_keys + i;
        return NULL;
}

bool experiment_section_known(const char *section) {
        for (size_t i = 0; i < ELEMENTSOF(experiment_sections); i++)
                if (streq(experiment_sections[i], section))
                        return true;
        return false;
}

bool experiment_spec_key_get(size_t i, const char **ret_section, const char **ret_key, bool *ret_multiple) {
        if (i >= ELEMENTSOF(experiment_keys))
                return false;
        if (ret_section)
                *ret_section = experiment_keys[i].section;
        if (ret_key)
                *ret_key = experiment_keys[i].key;
        if (ret_multiple)
                *ret_multiple = experiment_keys[i].type == EXPERIMENT_KEY_STRV ||
                                experiment_keys[i].type == EXPERIMENT_KEY_COUNTERS;
        return true;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Belonging */

bool experiment_key_belongs(const ExperimentKey *k, const ExperimentSpec *s) {
        if (k->operations != 0 &&
            ((int) s->operation < 0 || s->operation >= _EXPERIMENT_OPERATION_MAX || !(k->operations & (1U << s->operation))))
                return false;
        if (k->workload && s->when == EXPERIMENT_WORKLOAD_NONE)
                return false;
        if (k->matrix && s->n_matrix == 0)
                return false;
        return true;
}

int experiment_key_foreign_reason(const ExperimentKey *k, const ExperimentSpec *s, char **ret_reason) {
        if (k->workload && s->when == EXPERIMENT_WORKLOAD_NONE)
                return reasonf(ret_reason, -EINVAL, "%s= is not used with When=none (no workload runs)", k->key);
        if (k->matrix && s->n_matrix == 0)
                return reasonf(ret_reason, -EINVAL, "%s= is only used in a matrix run (no key of the guest's .vm "
                               "varies in [Matrix])", k->key);

        if (k->operations != 0) {
                char ops[128] = "";
                size_t len = 0;

                /* "balloon or hotplug" */
                for (int op = 0; op < _EXPERIMENT_OPERATION_MAX; op++)
                        if (k->operations & (1U << op)) {
                                int w = snprintf(ops + len, sizeof ops - len, "%s%s", len ? " or " : "",
                                                 experiment_operation_to_string(op));

                                if (w < 0 || (size_t) w >= sizeof ops - len)
                                        break;
                                len += w;
                        }
                return reasonf(ret_reason, -EINVAL, "%s= belongs to Operation=%s, not to Operation=%s", k->key, ops,
                               strna(experiment_operation_to_string(s->operation)));
        }
        return reasonf(ret_reason, -EINVAL, "%s= is not used here", k->key);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Defaults, equality, checks */

static size_t *strv_count(const ExperimentKey *k, ExperimentSpec *s) {
        return (size_t *) ((uint8_t *) s + k->n_offset);
}

static size_t strv_count_const(const ExperimentKey *k, const ExperimentSpec *s) {
        return *(const size_t *) ((const uint8_t *) s + k->n_offset);
}

int experiment_key_reset(const ExperimentKey *k, ExperimentSpec *s) {
        void *field = experiment_key_field(k, s);

        switch (k->type) {
        case EXPERIMENT_KEY_STRING:
                return free_and_strdup(field, k->def_s);
        case EXPERIMENT_KEY_STRV:
                *(char ***) field = strv_free(*(char ***) field);
                *strv_count(k, s) = 0;
                return 0;
        case EXPERIMENT_KEY_BOOL:
                *(bool *) field = k->def;
                return 0;
        case EXPERIMENT_KEY_UNSIGNED:
                *(unsigned *) field = (unsigned) k->def;
                return 0;
        case EXPERIMENT_KEY_ENUM:
                *(int *) field = (int) k->def;
                return 0;
        case EXPERIMENT_KEY_UINT64:
        case EXPERIMENT_KEY_SIZE:
        case EXPERIMENT_KEY_SEC:
        case EXPERIMENT_KEY_NODES:
        case EXPERIMENT_KEY_COUNTERS:
                *(uint64_t *) field = k->def;
                return 0;
        case _EXPERIMENT_KEY_TYPE_MAX:
                break;
        }
        return -EINVAL;
}

bool experiment_key_equal(const ExperimentKey *k, const ExperimentSpec *a, const ExperimentSpec *b) {
        const void *x = experiment_key_field_const(k, a), *y = experiment_key_field_const(k, b);

        switch (k->type) {
        case EXPERIMENT_KEY_STRING:
                return streq_ptr(*(char *const *) x, *(char *const *) y);
        case EXPERIMENT_KEY_STRV:
                return strv_count_const(k, a) == strv_count_const(k, b) &&
                       strv_equal(*(char **const *) x, *(char **const *) y);
        case EXPERIMENT_KEY_BOOL:
                return *(const bool *) x == *(const bool *) y;
        case EXPERIMENT_KEY_UNSIGNED:
                return *(const unsigned *) x == *(const unsigned *) y;
        case EXPERIMENT_KEY_ENUM:
                return *(const int *) x == *(const int *) y;
        case EXPERIMENT_KEY_UINT64:
        case EXPERIMENT_KEY_SIZE:
        case EXPERIMENT_KEY_SEC:
        case EXPERIMENT_KEY_NODES:
        case EXPERIMENT_KEY_COUNTERS:
                return *(const uint64_t *) x == *(const uint64_t *) y;
        case _EXPERIMENT_KEY_TYPE_MAX:
                break;
        }
        return false;
}

bool experiment_key_is_default(const ExperimentKey *k, const ExperimentSpec *s) {
        const void *x = experiment_key_field_const(k, s);

        switch (k->type) {
        case EXPERIMENT_KEY_STRING:
                return streq_ptr(*(char *const *) x, k->def_s);
        case EXPERIMENT_KEY_STRV:
                return strv_count_const(k, s) == 0;
        case EXPERIMENT_KEY_BOOL:
                return *(const bool *) x == (bool) k->def;
        case EXPERIMENT_KEY_UNSIGNED:
                return *(const unsigned *) x == (unsigned) k->def;
        case EXPERIMENT_KEY_ENUM:
                return *(const int *) x == (int) k->def;
        case EXPERIMENT_KEY_UINT64:
        case EXPERIMENT_KEY_SIZE:
        case EXPERIMENT_KEY_SEC:
        case EXPERIMENT_KEY_NODES:
        case EXPERIMENT_KEY_COUNTERS:
                return *(const uint64_t *) x == k->def;
        case _EXPERIMENT_KEY_TYPE_MAX:
                break;
        }
        return false;
}

static int check_unsigned(const ExperimentKey *k, uint64_t v, char **ret_reason) {
        if (v < k->min || v > k->max)
                return reasonf(ret_reason, -ERANGE, "expected a number from %" PRIu64 " to %" PRIu64, k->min, k->max);
        return 0;
}

static int check_size(const ExperimentKey *k, uint64_t v, char **ret_reason) {
        if (v == 0)
                return 0;       /* unset: Target= is required by validation, Return= means "as before" */
        if (v < MAX(k->min, SIZE_MB) || v > k->max)
                return reasonf(ret_reason, -ERANGE, "expected a size from 1M to 16T%s", k->min == 0 ? ", or 0" : "");
        if (v % SIZE_MB != 0)
                return reasonf(ret_reason, -EINVAL, "expected a whole number of MiB, such as 512M or 1536M");
        return 0;
}

static int check_sec(const ExperimentKey *k, uint64_t v, char **ret_reason) {
        char lo[64], hi[64];

        if (v < k->min || v > k->max) {
                format_sec_exact(lo, k->min);
                format_sec_exact(hi, k->max);
                return reasonf(ret_reason, -ERANGE, "expected a time span from %s to %s", lo, hi);
        }
        return 0;
}

static int check_nodes(const ExperimentKey *k, uint64_t v, char **ret_reason) {
        if (v == 0)
                return 0;       /* unset */
        if (k->max == 2 && __builtin_popcountll(v) != 2)
                return reasonf(ret_reason, -EINVAL, "expected two different NUMA nodes such as 0,1 (nodes below %u)",
                               EXPERIMENT_NODES_MAX);
        return 0;
}

static int check_counters(uint64_t v, char **ret_reason) {
        if (v & ~EXPERIMENT_COUNTERS_ALL)
                return reasonf(ret_reason, -EINVAL, "unknown counter set, expected some of %s",
                               experiment_counter_names());
        return 0;
}

int experiment_key_check(const ExperimentKey *k, const ExperimentSpec *s, char **ret_reason) {
        const void *x = experiment_key_field_const(k, s);

        switch (k->type) {
        case EXPERIMENT_KEY_STRING: {
                const char *v = *(char *const *) x;

                if (v && (!experiment_text_is_storable(v) || !k->is_valid(v)))
                        return reasonf(ret_reason, -EINVAL, "%s", k->expected);
                return 0;
        }
        case EXPERIMENT_KEY_STRV: {
                char *const *l = *(char **const *) x;
                size_t n = strv_count_const(k, s);

                if (n != strv_length(l))
                        return reasonf(ret_reason, -EINVAL, "the count does not match the list");
                if (n > k->max)
                        return reasonf(ret_reason, -E2BIG, "too many, at most %" PRIu64, k->max);
                for (size_t i = 0; i < n; i++) {
                        if (!k->is_valid(l[i]))
                                return reasonf(ret_reason, -EINVAL, "%s", k->expected);
                        if (!k->quote)
                                for (size_t j = 0; j < i; j++)
                                        if (streq(l[i], l[j]))
                                                return reasonf(ret_reason, -EINVAL, "%s is given twice", l[i]);
                }
                return 0;
        }
        case EXPERIMENT_KEY_BOOL:
        case EXPERIMENT_KEY_UINT64:
                return 0;
        case EXPERIMENT_KEY_UNSIGNED:
                return check_unsigned(k, *(const unsigned *) x, ret_reason);
        case EXPERIMENT_KEY_ENUM:
                if (!k->to_string(*(const int *) x))
                        return reasonf(ret_reason, -EINVAL, "unknown value %d", *(const int *) x);
                return 0;
        case EXPERIMENT_KEY_SIZE:
                return check_size(k, *(const uint64_t *) x, ret_reason);
        case EXPERIMENT_KEY_SEC:
                return check_sec(k, *(const uint64_t *) x, ret_reason);
        case EXPERIMENT_KEY_NODES:
                return check_nodes(k, *(const uint64_t *) x, ret_reason);
        case EXPERIMENT_KEY_COUNTERS:
                return check_counters(*(const uint64_t *) x, ret_reason);
        case _EXPERIMENT_KEY_TYPE_MAX:
                break;
        }
        return -EINVAL;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Parsing one non-empty value */

/* Tracepoints= and Counters=: words separated by blanks or commas. */
static int split_words(const char *v, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        const char *p = v;
        int r;

        for (;;) {
                size_t n;

                p += strspn(p, " \t,");
                if (!*p)
                        break;
                n = strcspn(p, " \t,");
                r = strv_consume(&l, strndup(p, n));
                if (r < 0)
                        return r;
                p += n;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int parse_strv(ExperimentSpecParser *p, const ExperimentKey *k, const char *v, char **ret_reason) {
        _cleanup_(strv_freep) char **words = NULL, **joined = NULL;
        size_t *count = strv_count(k, p->spec), n;
        char ***field = experiment_key_field(k, p->spec);
        int r;

        r = k->quote ? strv_split_quoted(v, &words) : split_words(v, &words);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reasonf(ret_reason, r, "%s", k->expected);
        n = strv_length(words);
        if (n == 0)
                return reasonf(ret_reason, -EINVAL, "%s", k->expected);
        if (*count + n > k->max)
                return reasonf(ret_reason, -E2BIG, "too many values, at most %" PRIu64 " are supported", k->max);

        /* Append all or nothing. */
        joined = *field ? strv_copy(*field) : calloc(1, sizeof(char *));
        if (!joined)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (!k->is_valid(words[i]))
                        return reasonf(ret_reason, -EINVAL, "'%s': %s", words[i], k->expected);
                if (!k->quote && strv_contains(joined, words[i]))
                        return reasonf(ret_reason, -EINVAL, "%s is given twice", words[i]);
                r = strv_extend(&joined, words[i]);
                if (r < 0)
                        return r;
        }
        strv_free(*field);
        *field = TAKE_PTR(joined);
        *count += n;
        return 0;
}

static int parse_counters(ExperimentSpecParser *p, const ExperimentKey *k, const char *v, char **ret_reason) {
        _cleanup_(strv_freep) char **words = NULL;
        uint64_t *field = experiment_key_field(k, p->spec), mask;
        int r;

        r = split_words(v, &words);
        if (r < 0)
                return r;
        /* The first assignment replaces the default, later ones add to it. */
        mask = p->assigned & (UINT64_C(1) << (k - experiment_keys)) ? *field : 0;
        for (char **w = words; w && *w; w++) {
                ExperimentCounter c = experiment_counter_from_string(*w);

                if (c < 0)
                        return reasonf(ret_reason, -EINVAL, "unknown counter set '%s', expected some of %s", *w,
                                       experiment_counter_names());
                mask |= EXPERIMENT_COUNTER_MASK(c);
        }
        if (mask == 0)
                return reasonf(ret_reason, -EINVAL, "expected some of %s", experiment_counter_names());
        *field = mask;
        return 0;
}

static int parse_value(ExperimentSpecParser *p, const ExperimentKey *k, const char *v, char **ret_reason) {
        void *field = experiment_key_field(k, p->spec);
        uint64_t u;
        unsigned n;
        int r;

        switch (k->type) {
        case EXPERIMENT_KEY_STRING:
                if (!k->is_valid(v))
                        return reasonf(ret_reason, -EINVAL, "%s", k->expected);
                return free_and_strdup(field, v);
        case EXPERIMENT_KEY_STRV:
                return parse_strv(p, k, v, ret_reason);
        case EXPERIMENT_KEY_BOOL:
                r = parse_boolean(v);
                if (r < 0)
                        return reasonf(ret_reason, -EINVAL, "expected a boolean (yes or no)");
                *(bool *) field = r;
                return 0;
        case EXPERIMENT_KEY_UNSIGNED:
                if (parse_unsigned(v, &n) < 0)
                        return reasonf(ret_reason, -EINVAL, "expected a number from %" PRIu64 " to %" PRIu64,
                                       k->min, k->max);
                r = check_unsigned(k, n, ret_reason);
                if (r < 0)
                        return r;
                *(unsigned *) field = n;
                return 0;
        case EXPERIMENT_KEY_UINT64:
                if (parse_uint64(v, &u) < 0)
                        return reasonf(ret_reason, -EINVAL, "expected a number from 0 to %" PRIu64, UINT64_MAX);
                *(uint64_t *) field = u;
                return 0;
        case EXPERIMENT_KEY_SIZE:
                r = parse_size(v, &u);
                if (r < 0)
                        return reasonf(ret_reason, r, "expected a size such as 256M or 1G");
                r = check_size(k, u, ret_reason);
                if (r < 0)
                        return r;
                *(uint64_t *) field = u;
                return 0;
        case EXPERIMENT_KEY_SEC:
                r = parse_sec(v, &u);
                if (r < 0)
                        return reasonf(ret_reason, r, "expected a time span such as 1s, 500ms or 2min");
                r = check_sec(k, u, ret_reason);
                if (r < 0)
                        return r;
                *(uint64_t *) field = u;
                return 0;
        case EXPERIMENT_KEY_ENUM:
                r = k->from_string(v);
                if (r < 0) {
                        _cleanup_free_ char *words = NULL;
                        size_t size = 0;
                        FILE *f = open_memstream(&words, &size);

                        if (!f)
                                return -ENOMEM;
                        for (int i = 0; k->to_string(i); i++)
                                fprintf(f, "%s%s", i > 0 ? ", " : "", k->to_string(i));
                        if (fclose(f) != 0 || !words)
                                return -ENOMEM;
                        return reasonf(ret_reason, -EINVAL, "expected one of %s", words);
                }
                *(int *) field = r;
                return 0;
        case EXPERIMENT_KEY_NODES:
                r = numa_node_list_parse(v, &u);
                if (r < 0 || u == 0)
                        return reasonf(ret_reason, -EINVAL, "expected a NUMA node list such as 0, 1,2 or 0-3 (nodes "
                                       "below %u)", EXPERIMENT_NODES_MAX);
                r = check_nodes(k, u, ret_reason);
                if (r < 0)
                        return r;
                *(uint64_t *) field = u;
                return 0;
        case EXPERIMENT_KEY_COUNTERS:
                return parse_counters(p, k, v, ret_reason);
        case _EXPERIMENT_KEY_TYPE_MAX:
                break;
        }
        return -EINVAL;
}

int experiment_key_apply(ExperimentSpecParser *p, const ExperimentKey *k, const char *value, char **ret_reason) {
        uint64_t bit = UINT64_C(1) << (k - experiment_keys);
        int r;

        if (!experiment_text_is_storable(value))
                return reasonf(ret_reason, -EINVAL, "expected text without control characters, surrounding "
                               "whitespace or a trailing backslash");
        if (isempty(value)) {
                p->assigned &= ~bit;
                return experiment_key_reset(k, p->spec);
        }
        r = parse_value(p, k, value, ret_reason);
        if (r < 0)
                return r;
        p->assigned |= bit;
        return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Output */

int experiment_key_format(const ExperimentKey *k, const ExperimentSpec *s, char ***ret_values) {
        _cleanup_(strv_freep) char **l = NULL;
        const void *x = experiment_key_field_const(k, s);
        char buf[64];
        int r = -EINVAL;

        switch (k->type) {
        case EXPERIMENT_KEY_STRING:
                r = strv_extend(&l, strempty(*(char *const *) x));
                break;
        case EXPERIMENT_KEY_STRV:
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
                r = 0;
                for (char *const *i = *(char **const *) x; r >= 0 && i && *i; i++)
                        r = strv_consume(&l, k->quote ? shell_quote(*i) : strdup(*i));
                break;
        case EXPERIMENT_KEY_BOOL:
                r = strv_extend(&l, *(const bool *) x ? "yes" : "no");
                break;
        case EXPERIMENT_KEY_UNSIGNED:
                r = strv_extendf(&l, "%u", *(const unsigned *) x);
                break;
        case EXPERIMENT_KEY_UINT64:
                r = strv_extendf(&l, "%" PRIu64, *(const uint64_t *) x);
                break;
        case EXPERIMENT_KEY_SIZE:
                format_size_exact(buf, *(const uint64_t *) x);
                r = strv_extend(&l, buf);
                break;
        case EXPERIMENT_KEY_SEC:
                format_sec_exact(buf, *(const uint64_t *) x);
                r = strv_extend(&l, buf);
                break;
        case EXPERIMENT_KEY_ENUM:
                r = strv_extend(&l, strempty(k->to_string(*(const int *) x)));
                break;
        case EXPERIMENT_KEY_NODES:
                r = strv_consume(&l, experiment_nodes_format(*(const uint64_t *) x));
                break;
        case EXPERIMENT_KEY_COUNTERS:
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
                r = 0;
                for (int c = 0; r >= 0 && c < _EXPERIMENT_COUNTER_MAX; c++)
                        if (*(const uint64_t *) x & EXPERIMENT_COUNTER_MASK(c))
                                r = strv_extend(&l, experiment_counter_to_string(c));
                break;
        case _EXPERIMENT_KEY_TYPE_MAX:
                break;
        }
        if (r < 0)
                return r;

        *ret_values = TAKE_PTR(l);
        return 0;
}
