/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The key table of memvisor.vm(5) and the value parsers behind it (vm-spec-internal.h). */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "numa/cpu-set.h"
#include "numa/numa-topology.h"
#include "basic/parse.h"
#include "vm/restart.h"
#include "basic/strv.h"
#include "vm/vm-spec-internal.h"

static const char *const vm_accel_table[_VM_ACCEL_MAX] = {
        [VM_ACCEL_AUTO] = "auto",
        [VM_ACCEL_KVM] = "kvm",
        [VM_ACCEL_TCG] = "tcg",
};
DEFINE_STRING_TABLE(vm_accel, VmAccel, _VM_ACCEL_MAX);

static const char *const vm_memory_backend_table[_VM_MEMORY_BACKEND_MAX] = {
        [VM_MEMORY_BACKEND_RAM] = "ram",
        [VM_MEMORY_BACKEND_MEMFD] = "memfd",
        [VM_MEMORY_BACKEND_FILE] = "file",
};
DEFINE_STRING_TABLE(vm_memory_backend, VmMemoryBackend, _VM_MEMORY_BACKEND_MAX);

static const char *const vm_memory_policy_table[_VM_MEMORY_POLICY_MAX] = {
        [VM_MEMORY_POLICY_DEFAULT] = "default",
        [VM_MEMORY_POLICY_BIND] = "bind",
        [VM_MEMORY_POLICY_PREFERRED] = "preferred",
        [VM_MEMORY_POLICY_INTERLEAVE] = "interleave",
};
DEFINE_STRING_TABLE(vm_memory_policy, VmMemoryPolicy, _VM_MEMORY_POLICY_MAX);

static const char *const vm_restart_policy_table[_VM_RESTART_MAX] = {
        [VM_RESTART_NO] = "no",
        [VM_RESTART_ON_FAILURE] = "on-failure",
        [VM_RESTART_ALWAYS] = "always",
};
DEFINE_STRING_TABLE(vm_restart_policy, VmRestartPolicy, _VM_RESTART_MAX);

static const char *const vm_balloon_policy_table[_VM_BALLOON_POLICY_MAX] = {
        [VM_BALLOON_POLICY_INHERIT] = "inherit",
        [VM_BALLOON_POLICY_YES] = "yes",
        [VM_BALLOON_POLICY_NO] = "no",
};
DEFINE_STRING_TABLE(vm_balloon_policy, VmBalloonPolicy, _VM_BALLOON_POLICY_MAX);

static const char *const vm_memory_share_table[_VM_MEMORY_SHARE_MAX] = {
        [VM_MEMORY_SHARE_DEFAULT] = "default",
        [VM_MEMORY_SHARE_YES] = "yes",
        [VM_MEMORY_SHARE_NO] = "no",
};
DEFINE_STRING_TABLE(vm_memory_share, VmMemoryShare, _VM_MEMORY_SHARE_MAX);

static const char *const vm_confidential_table[_VM_CONFIDENTIAL_MAX] = {
        [VM_CONFIDENTIAL_NO] = "no",
        [VM_CONFIDENTIAL_SEV] = "sev",
        [VM_CONFIDENTIAL_SEV_SNP] = "sev-snp",
        [VM_CONFIDENTIAL_TDX] = "tdx",
};
DEFINE_STRING_TABLE(vm_confidential, VmConfidential, _VM_CONFIDENTIAL_MAX);

/* The enums as the table's ENUM columns see them: ints. */
#define DEFINE_ENUM_ACCESSORS(name, type)                                       \
        static int name##_from_int_string(const char *s) {                      \
                return (int) name##_from_string(s);                             \
        }                                                                       \
        static const char *name##_to_int_string(int i) {                        \
                return name##_to_string((type) i);                              \
        }

DEFINE_ENUM_ACCESSORS(vm_accel, VmAccel)
DEFINE_ENUM_ACCESSORS(vm_memory_backend, VmMemoryBackend)
DEFINE_ENUM_ACCESSORS(vm_memory_policy, VmMemoryPolicy)
DEFINE_ENUM_ACCESSORS(vm_restart_policy, VmRestartPolicy)
DEFINE_ENUM_ACCESSORS(vm_balloon_policy, VmBalloonPolicy)
DEFINE_ENUM_ACCESSORS(vm_memory_share, VmMemoryShare)
DEFINE_ENUM_ACCESSORS(vm_confidential, VmConfidential)
DEFINE_ENUM_ACCESSORS(balloon_schedule_mode, BalloonScheduleMode)

int vm_spec_reasonf(char **ret_reason, int error, const char *fmt, ...) {
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

#define reasonf vm_spec_reasonf

bool vm_name_is_valid(const char *name) {
        size_t n;

        if (isempty(name))
                return false;
        n = strlen(name);
        if (n > VM_NAME_MAX)
                return false;
        if (name[0] == '.' || name[0] == '-')
                return false;
        for (const char *p = name; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr("_.-", *p))
                        return false;
        return true;
}

bool vm_spec_machine_is_valid(const char *m) {
        if (isempty(m) || strlen(m) > VM_MACHINE_MAX)
                return false;
        for (const char *p = m; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr("_.-", *p))
                        return false;
        return true;
}

bool vm_spec_path_is_valid(const char *p) {
        return p && p[0] == '/' && strlen(p) < PATH_MAX;
}

/* Emulator=: an absolute path, or a command name looked up in $PATH. */
bool vm_spec_emulator_is_valid(const char *e) {
        if (isempty(e))
                return false;
        if (e[0] == '/')
                return true;
        return !strchr(e, '/');
}

/* Values must survive being written to a .vm file and read back: no control characters (a tab inside is
 * fine), no leading or trailing whitespace (the INI parser strips it) and no trailing backslash (which would
 * continue the line). */
bool vm_spec_value_is_storable(const char *v) {
        size_t n;

        if (!v)
                return true;
        for (const char *p = v; *p; p++)
                if ((iscntrl((unsigned char) *p) && *p != '\t'))
                        return false;
        n = strlen(v);
        if (n > 0 && (isspace((unsigned char) v[0]) || isspace((unsigned char) v[n - 1]) || v[n - 1] == '\\'))
                return false;
        return true;
}

/* Host node lists: "0", "0-1", "0,2-3". Parses into a bitmap of VM_HOST_NODES_MAX bits. */
int vm_spec_host_nodes_parse(const char *s, bool nodes[static VM_HOST_NODES_MAX]) {
        const char *p = s;

        memset(nodes, 0, sizeof(bool) * VM_HOST_NODES_MAX);
        if (isempty(s))
                return -EINVAL;

        for (;;) {
                unsigned long a, b;
                char *end;

                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                errno = 0;
                a = strtoul(p, &end, 10);
                if (errno != 0 || a >= VM_HOST_NODES_MAX)
                        return -ERANGE;
                p = end;
                b = a;
                if (*p == '-') {
                        p++;
                        if (!isdigit((unsigned char) *p))
                                return -EINVAL;
                        errno = 0;
                        b = strtoul(p, &end, 10);
                        if (errno != 0 || b >= VM_HOST_NODES_MAX)
                                return -ERANGE;
                        if (b < a)
                                return -EINVAL;
                        p = end;
                }
                for (unsigned long i = a; i <= b; i++)
                        nodes[i] = true;

                if (*p == 0)
                        return 0;
                if (*p != ',')
                        return -EINVAL;
                p++;
        }
}

/* Formats a node set as sorted, merged ranges: "0,2-3". */
char *vm_spec_host_nodes_format(const bool nodes[static VM_HOST_NODES_MAX]) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f;
        bool first = true;

        f = open_memstream(&buf, &size);
        if (!f)
                return NULL;

        for (unsigned i = 0; i < VM_HOST_NODES_MAX; i++) {
                unsigned j;

                if (!nodes[i])
                        continue;
                for (j = i; j + 1 < VM_HOST_NODES_MAX && nodes[j + 1]; j++)
                        ;
                fprintf(f, "%s%u", first ? "" : ",", i);
                if (j > i)
                        fprintf(f, "-%u", j);
                first = false;
                i = j;
        }

        if (fclose(f) != 0)
                return mfree(buf);
        return buf;
}

int vm_spec_host_nodes_unsupported(const bool nodes[static VM_HOST_NODES_MAX]) {
        for (unsigned n = NUMA_NODES_MAX; n < VM_HOST_NODES_MAX; n++)
                if (nodes[n])
                        return (int) n;
        return -1;
}

unsigned vm_spec_host_nodes_count(const bool nodes[static VM_HOST_NODES_MAX]) {
        unsigned n = 0;

        for (unsigned i = 0; i < VM_HOST_NODES_MAX; i++)
                n += nodes[i];
        return n;
}

/* Exact, parse_sec()-compatible text for a time span: "30s", "2min", "1.5s", "250ms", "infinity". */
void vm_spec_format_sec(char buf[static 64], uint64_t usec) {
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

/* Exact, parse_size()-compatible text for a size: "512M", "2G", or bytes. */
void vm_spec_format_size(char buf[static 32], uint64_t bytes) {
        if (bytes != 0 && bytes % SIZE_TB == 0)
                snprintf(buf, 32, "%" PRIu64 "T", bytes / SIZE_TB);
        else if (bytes != 0 && bytes % SIZE_GB == 0)
                snprintf(buf, 32, "%" PRIu64 "G", bytes / SIZE_GB);
        else if (bytes != 0 && bytes % SIZE_MB == 0)
                snprintf(buf, 32, "%" PRIu64 "M", bytes / SIZE_MB);
        else
                snprintf(buf, 32, "%" PRIu64, bytes);
}

bool vm_spec_cpu_model_is_valid(const char *m) {
        if (isempty(m) || strlen(m) > 256)
                return false;
        for (const char *c = m; *c; c++)
                if (!isalnum((unsigned char) *c) && !strchr("_.,=+-", *c))
                        return false;
        return isalnum((unsigned char) m[0]);
}

/* MigrateBetween=: exactly two different nodes below NUMA_NODES_MAX, in the node list syntax ("0,1", "1,0",
 * "2-3"); ret_nodes ascending. */
int vm_spec_migrate_between_parse(const char *s, unsigned ret_nodes[static 2]) {
        uint64_t mask;
        unsigned k = 0;

        if (numa_node_list_parse(s, &mask) < 0 || __builtin_popcountll(mask) != 2)
                return -EINVAL;
        for (unsigned n = 0; n < NUMA_NODES_MAX; n++)
                if (mask & (UINT64_C(1) << n))
                        ret_nodes[k++] = n;
        return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* The stock parsers, one per type; they see non-empty values only (vm_key_apply() resets on empty ones). */

static int parse_string(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        if (k->is_valid && !k->is_valid(v))
                return reasonf(ret_reason, -EINVAL, "%s", k->expected);
        return free_and_strdup(field, v);
}

static int parse_bool(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        int r;

        r = parse_boolean(v);
        if (r < 0)
                return reasonf(ret_reason, -EINVAL, "expected a boolean (yes or no)");
        *(bool *) field = r;
        return 0;
}

static int parse_unsigned_value(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        unsigned n;

        if (parse_unsigned(v, &n) < 0 || n < k->min || n > k->max)
                return reasonf(ret_reason, -EINVAL, k->expected, k->max);
        *(unsigned *) field = n;
        return 0;
}

static int parse_size_value(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        uint64_t b;
        int r;

        r = parse_size(v, &b);
        if (r < 0)
                return reasonf(ret_reason, r, "expected a size such as 256M or 1G");
        *(uint64_t *) field = b;
        return 0;
}

static int parse_sec_value(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        uint64_t t;
        int r;

        r = parse_sec(v, &t);
        if (r < 0 || (!k->infinity && t == USEC_INFINITY)) {
                r = r < 0 ? r : -EINVAL;
                if (k->infinity)
                        return reasonf(ret_reason, r, "expected a time span such as 30s, 500ms or 2min, or infinity");
                return reasonf(ret_reason, r, "expected a time span such as 1s, 500ms or 2min");
        }
        if (!k->zero && t == 0)
                return reasonf(ret_reason, -ERANGE, "expected a time span greater than 0");
        *(uint64_t *) field = t;
        return 0;
}

static int parse_enum(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        int i;

        i = k->from_string(v);
        if (i < 0)
                return reasonf(ret_reason, -EINVAL, "%s", k->expected);
        *(int *) field = i;
        return 0;
}

static const VmKeyParseFn stock_parsers[] = {
        [VM_KEY_STRING] = parse_string,
        [VM_KEY_STRV] = NULL,           /* every list has its own */
        [VM_KEY_BOOL] = parse_bool,
        [VM_KEY_UNSIGNED] = parse_unsigned_value,
        [VM_KEY_SIZE] = parse_size_value,
        [VM_KEY_SEC] = parse_sec_value,
        [VM_KEY_ENUM] = parse_enum,
};

/* ---------------------------------------------------------------------------------------------------- */
/* The keys that need more than a stock parser. */

static void replace_string(char **field, char *n) {
        free(*field);
        *field = n;
}

static int key_name(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        if (!vm_name_is_valid(v))
                return reasonf(ret_reason, -EINVAL,
                               "expected a name of 1 to %d characters from a-z, A-Z, 0-9, '_', '.', '-', not "
                               "starting with '.' or '-'", VM_NAME_MAX);
        if (p->expected_name && !streq(v, p->expected_name))
                return reasonf(ret_reason, -EINVAL, "expected '%s' (%s)", p->expected_name, p->expected_name_why);
        return free_and_strdup(field, v);
}

static int key_memory(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        uint64_t b;
        int r;

        r = parse_size(v, &b);
        if (r == -ERANGE)
                return reasonf(ret_reason, r, "expected a size between 16M and 16T");
        if (r < 0)
                return reasonf(ret_reason, r, "expected a size such as 512M or 2G");
        if (b < VM_MEMORY_MIN || b > VM_MEMORY_MAX)
                return reasonf(ret_reason, -ERANGE, "expected a size between 16M and 16T");
        if (b % SIZE_MB != 0)
                return reasonf(ret_reason, -EINVAL, "expected a whole number of MiB, such as 512M or 1536M");
        *(uint64_t *) field = b;
        return 0;
}

static int key_disk(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        VmSpec *s = p->spec;
        int r;

        if (!vm_spec_path_is_valid(v))
                return reasonf(ret_reason, -EINVAL, "expected an absolute path");
        if (s->n_disks >= VM_MAX_DISKS)
                return reasonf(ret_reason, -E2BIG, "too many disks, at most %d are supported", VM_MAX_DISKS);
        r = strv_extend(&s->disks, v);
        if (r < 0)
                return r;
        s->n_disks++;
        return 0;
}

static int key_extra_args(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        _cleanup_(strv_freep) char **words = NULL, **joined = NULL;
        VmSpec *s = p->spec;
        size_t n;
        int r;

        r = strv_split_quoted(v, &words);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reasonf(ret_reason, r, "expected arguments separated by spaces, with balanced quotes and no "
                               "trailing backslash");
        n = strv_length(words);
        if (s->n_extra_args + n > VM_MAX_EXTRA_ARGS)
                return reasonf(ret_reason, -E2BIG, "too many extra arguments, at most %d are supported",
                               VM_MAX_EXTRA_ARGS);

        /* Append all or nothing. */
        joined = strv_copy(s->extra_args);
        if (!joined)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = strv_extend(&joined, words[i]);
                if (r < 0)
                        return r;
        }
        strv_free(s->extra_args);
        s->extra_args = TAKE_PTR(joined);
        s->n_extra_args += n;
        return 0;
}

static int key_host_nodes(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        bool nodes[VM_HOST_NODES_MAX];
        char *n;

        if (vm_spec_host_nodes_parse(v, nodes) < 0)
                return reasonf(ret_reason, -EINVAL, "expected NUMA node numbers and ranges such as 0, 0-1 or 0,2-3, "
                               "with nodes below %u", NUMA_NODES_MAX);
        n = vm_spec_host_nodes_format(nodes);
        if (!n)
                return -ENOMEM;
        replace_string(field, n);
        return 0;
}

static int key_migrate_between(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        unsigned nodes[2];
        char *n;

        if (vm_spec_migrate_between_parse(v, nodes) < 0)
                return reasonf(ret_reason, -EINVAL, "expected two different NUMA nodes such as 0,1 (nodes below %u)",
                               NUMA_NODES_MAX);
        if (asprintf(&n, "%u,%u", nodes[0], nodes[1]) < 0)
                return -ENOMEM;
        replace_string(field, n);
        return 0;
}

static int key_vcpu_affinity(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        _cleanup_(vcpu_pin_map_done) VcpuPinMap map = {};
        _cleanup_free_ char *bad = NULL;
        char *n;
        int r;

        /* "node": each vCPU on the host CPUs of its guest node's host nodes (GuestNode=), resolved at start. */
        if (streq(v, VM_VCPU_AFFINITY_NODE))
                return free_and_strdup(field, v);

        r = vcpu_pin_map_parse(v, &map, &bad);
        if (r == -ENOMEM)
                return r;
        if (r == -EEXIST)
                return reasonf(ret_reason, -EINVAL, "vCPU of '%s' is given twice", strna(bad));
        if (r < 0 && bad)
                return reasonf(ret_reason, -EINVAL, "'%s' is not VCPU:CPULIST such as 0:2 or 1:3-4,6 (vCPUs below %u, "
                               "CPUs below %u)", bad, VCPU_PIN_MAX, CPU_SET_MAX);
        if (r < 0)
                return reasonf(ret_reason, -EINVAL, "expected VCPU:CPULIST entries separated by blanks, such as "
                               "\"0:2 1:3\", or node");
        r = vcpu_pin_map_format(&map, &n);
        if (r < 0)
                return r;
        replace_string(field, n);
        return 0;
}

static int key_emulator_affinity(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        CpuSet set;
        char *n;
        int r;

        if (cpu_list_parse(v, &set) < 0)
                return reasonf(ret_reason, -EINVAL, "expected a CPU list such as 0, 0-3 or 0,2-3 (CPUs below %u)",
                               CPU_SET_MAX);
        r = cpu_list_format(&set, &n);
        if (r < 0)
                return r;
        replace_string(field, n);
        return 0;
}

/* HugePageSize=: a power of two from 64K to 16G (2M and 1G on x86); "0" is the host's default size. Whether
 * the host offers it is checked when the guest is defined over the API and when it starts. */
static int key_hugepage_size(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        uint64_t b;

        if (parse_size(v, &b) < 0 || !vm_spec_hugepage_size_is_valid(b))
                return reasonf(ret_reason, -EINVAL, "expected a huge page size such as 2M or 1G (a power of two "
                               "from 64K to 16G)");
        *(uint64_t *) field = b;
        return 0;
}

bool vm_spec_hugepage_size_is_valid(uint64_t b) {
        return b == 0 || (b >= VM_HUGEPAGE_SIZE_MIN && b <= VM_HUGEPAGE_SIZE_MAX && (b & (b - 1)) == 0);
}

/* Share=: default, yes or no, and any other boolean spelling. */
static int key_memory_share(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        VmMemoryShare m;
        int r;

        m = vm_memory_share_from_string(v);
        if (m < 0) {
                r = parse_boolean(v);
                if (r < 0)
                        return reasonf(ret_reason, -EINVAL, "expected yes, no or default");
                m = r ? VM_MEMORY_SHARE_YES : VM_MEMORY_SHARE_NO;
        }
        *(VmMemoryShare *) field = m;
        return 0;
}

/* Policy=: inherit, yes or no, and any other boolean spelling. */
static int key_balloon_policy(VmSpecParser *p, const VmKey *k, const char *v, void *field, char **ret_reason) {
        VmBalloonPolicy b;
        int r;

        b = vm_balloon_policy_from_string(v);
        if (b < 0) {
                r = parse_boolean(v);
                if (r < 0)
                        return reasonf(ret_reason, -EINVAL, "expected inherit, yes or no");
                b = r ? VM_BALLOON_POLICY_YES : VM_BALLOON_POLICY_NO;
        }
        *(VmBalloonPolicy *) field = b;
        return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* The table: the order of memvisor.vm(5) and of the canonical INI and JSON output. */

#define AT(member) .offset = offsetof(VmSpec, member)
#define STRING(member, def_, valid, expect) \
        .type = VM_KEY_STRING, AT(member), .def.s = (def_), .is_valid = (valid), .expected = (expect)
#define PATH(member) STRING(member, NULL, vm_spec_path_is_valid, "expected an absolute path")
#define NORMALIZED(member, fn) .type = VM_KEY_STRING, AT(member), .parse = (fn)
#define STRV(member, n_member, fn, q) \
        .type = VM_KEY_STRV, AT(member), .n_offset = offsetof(VmSpec, n_member), .parse = (fn), .quote = (q)
#define BOOL(member, def_) .type = VM_KEY_BOOL, AT(member), .def.u = (def_)
#define UNSIGNED(member, def_, min_, max_, expect) \
        .type = VM_KEY_UNSIGNED, AT(member), .def.u = (def_), .min = (min_), .max = (max_), .expected = (expect)
#define SIZE(member) .type = VM_KEY_SIZE, AT(member)
#define SEC(member, def_, zero_, infinity_) \
        .type = VM_KEY_SEC, AT(member), .def.u = (def_), .zero = (zero_), .infinity = (infinity_)
#define ENUM(member, def_, name, expect)                                                         \
        .type = VM_KEY_ENUM, AT(member), .def.u = (def_), .from_string = name##_from_int_string, \
        .to_string = name##_to_int_string, .expected = (expect)

const VmKey vm_keys[] = {
        { "VM", "Name", NORMALIZED(name, key_name) },
        { "VM", "Memory", SIZE(memory_bytes), .def.u = VM_MEMORY_DEFAULT, .parse = key_memory },
        { "VM", "VCPUs", UNSIGNED(vcpus, 1, 1, VM_MAX_VCPUS, "expected a number of vCPUs between 1 and %u") },
        { "VM", "Machine", STRING(machine, VM_MACHINE_DEFAULT, vm_spec_machine_is_valid,
                                  "expected a QEMU machine type such as q35, pc or microvm") },
        { "VM", "Accelerator", ENUM(accel, VM_ACCEL_AUTO, vm_accel, "expected auto, kvm or tcg") },
        { "VM", "Confidential", ENUM(confidential, VM_CONFIDENTIAL_NO, vm_confidential,
                                     "expected no, sev, sev-snp or tdx") },
        { "VM", "Emulator", STRING(qemu_binary, NULL, vm_spec_emulator_is_valid,
                                   "expected an absolute path or a command name such as qemu-system-x86_64") },
        { "VM", "CPUModel", STRING(cpu_model, NULL, vm_spec_cpu_model_is_valid,
                                   "expected a QEMU CPU model with options, such as host, max or host,-arch-capabilities") },
        { "VM", "Kernel", PATH(kernel) },
        { "VM", "Initrd", PATH(initrd) },
        { "VM", "Append", STRING(append, NULL, NULL, NULL) },
        { "VM", "Disk", STRV(disks, n_disks, key_disk, false) },
        { "VM", "Balloon", BOOL(balloon, true) },
        { "VM", "GuestAgent", BOOL(guest_agent, true) },
        { "VM", "ExtraArgs", STRV(extra_args, n_extra_args, key_extra_args, true) },
        { "VM", "Autostart", BOOL(autostart, false) },
        { "VM", "StartTimeoutSec", SEC(start_timeout_usec, VM_TIMEOUT_DEFAULT, false, true) },
        { "VM", "StopTimeoutSec", SEC(stop_timeout_usec, VM_TIMEOUT_DEFAULT, false, true) },

        { "Memory", "Backend", ENUM(backend, VM_MEMORY_BACKEND_RAM, vm_memory_backend, "expected ram, memfd or file") },
        { "Memory", "HugePages", BOOL(hugepages, false) },
        { "Memory", "Path", PATH(mem_path) },
        { "Memory", "Policy", ENUM(policy, VM_MEMORY_POLICY_DEFAULT, vm_memory_policy,
                                   "expected default, bind, preferred or interleave") },
        { "Memory", "HostNodes", NORMALIZED(host_nodes, key_host_nodes) },
        { "Memory", "Prealloc", BOOL(prealloc, false) },
        { "Memory", "HugePageSize", SIZE(hugepage_size), .parse = key_hugepage_size },
        { "Memory", "Share", ENUM(share, VM_MEMORY_SHARE_DEFAULT, vm_memory_share, NULL), .parse = key_memory_share },
        { "Memory", "Reserve", BOOL(reserve, true) },
        { "Memory", "PreallocThreads", UNSIGNED(prealloc_threads, 0, 0, VM_PREALLOC_THREADS_MAX,
                                                "expected a number of threads up to %u") },
        { "Memory", "Merge", BOOL(merge, true) },
        { "Memory", "Dump", BOOL(dump, true) },
        { "Memory", "MigrateBetween", NORMALIZED(migrate_between, key_migrate_between) },
        { "Memory", "MigrateEverySec", SEC(migrate_every_usec, 0, true, false) },
        { "Memory", "MigrateCount", UNSIGNED(migrate_count, 0, 0, VM_MIGRATE_COUNT_MAX,
                                             "expected a number of moves up to %u") },
        { "Memory", "MigrateSettleSec", SEC(migrate_settle_usec, VM_MIGRATE_SETTLE_DEFAULT, true, false) },
        { "Memory", "DirtyRing", UNSIGNED(dirty_ring, 0, 0, VM_DIRTY_RING_MAX,
                                          "expected 0 or a power of two from 1024 to %u") },
        { "Memory", "MaxMemory", SIZE(max_memory_bytes) },
        { "Memory", "HotplugSize", SIZE(hotplug_bytes) },
        { "Memory", "HotplugNode", UNSIGNED(hotplug_node, 0, 0, VM_HOTPLUG_NODE_MAX,
                                                "expected a guest NUMA node number from 0 to %u") },
        { "Memory", "GuestNode", STRV(guest_nodes, n_guest_nodes, vm_spec_key_guest_node, false) },
        { "Memory", "GuestDistance", STRV(guest_distances, n_guest_distances, vm_spec_key_guest_distance, false) },

        { "CPU", "VCPUAffinity", NORMALIZED(vcpu_affinity, key_vcpu_affinity) },
        { "CPU", "EmulatorAffinity", NORMALIZED(emulator_affinity, key_emulator_affinity) },

        { "Restart", "Policy", ENUM(restart, VM_RESTART_NO, vm_restart_policy, "expected no, on-failure or always") },
        { "Restart", "RestartSec", SEC(restart_usec, VM_RESTART_DEFAULT, true, false) },
        { "Restart", "RestartMaxDelaySec", SEC(restart_max_usec, VM_RESTART_MAX_DEFAULT, true, false) },
        /* The restart tracker remembers RESTART_HISTORY_MAX starts: a larger burst could never be reached. */
        { "Restart", "StartLimitBurst", UNSIGNED(start_limit_burst, VM_START_LIMIT_BURST_DEFAULT, 1, RESTART_HISTORY_MAX,
                                                 "expected a number of starts from 1 to %u") },
        { "Restart", "StartLimitIntervalSec", SEC(start_limit_interval_usec, VM_START_LIMIT_INTERVAL_DEFAULT, false, true) },

        { "Balloon", "Floor", SIZE(balloon_floor) },
        { "Balloon", "Ceiling", SIZE(balloon_ceiling) },
        { "Balloon", "Policy", ENUM(balloon_policy, VM_BALLOON_POLICY_INHERIT, vm_balloon_policy, NULL),
          .parse = key_balloon_policy },
        { "Balloon", "StatsIntervalSec", SEC(balloon_stats_interval_usec, 0, true, false) },
        { "Balloon", "Schedule", ENUM(balloon_schedule.mode, BALLOON_SCHEDULE_NONE, balloon_schedule_mode,
                                      "expected none, oscillate or ramp") },
        { "Balloon", "From", SIZE(balloon_schedule.from_bytes) },
        { "Balloon", "To", SIZE(balloon_schedule.to_bytes) },
        { "Balloon", "EverySec", SEC(balloon_schedule.every_usec, 0, true, false) },
        { "Balloon", "Count", UNSIGNED(balloon_schedule.count, 0, 0, UINT_MAX, "expected a number of steps") },
};

const size_t vm_keys_n = ELEMENTSOF(vm_keys);

const char *const vm_sections[] = { "VM", "Memory", "CPU", "Restart", "Balloon" };
const size_t vm_sections_n = ELEMENTSOF(vm_sections);

const VmKey *vm_key_find(const char *section, const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(vm_keys); i++)
                if (streq(vm_keys[i].section, section) && streq(vm_keys[i].key, key))
                        return vm_keys + i;
        return NULL;
}

bool vm_section_known(const char *section) {
        for (size_t i = 0; i < ELEMENTSOF(vm_sections); i++)
                if (streq(vm_sections[i], section))
                        return true;
        return false;
}

bool vm_spec_key_get(size_t i, const char **ret_section, const char **ret_key, bool *ret_multiple) {
        if (i >= ELEMENTSOF(vm_keys))
                return false;
        if (ret_section)
                *ret_section = vm_keys[i].section;
        if (ret_key)
                *ret_key = vm_keys[i].key;
        if (ret_multiple)
                *ret_multiple = vm_keys[i].type == VM_KEY_STRV;
        return true;
}

int vm_key_reset(const VmKey *k, VmSpec *s) {
        void *field = vm_key_field(k, s);

        switch (k->type) {
        case VM_KEY_STRING:
                return free_and_strdup(field, k->def.s);
        case VM_KEY_STRV:
                *(char ***) field = strv_free(*(char ***) field);
                *(size_t *) ((uint8_t *) s + k->n_offset) = 0;
                return 0;
        case VM_KEY_BOOL:
                *(bool *) field = k->def.u;
                return 0;
        case VM_KEY_UNSIGNED:
                *(unsigned *) field = (unsigned) k->def.u;
                return 0;
        case VM_KEY_SIZE:
        case VM_KEY_SEC:
                *(uint64_t *) field = k->def.u;
                return 0;
        case VM_KEY_ENUM:
                *(int *) field = (int) k->def.u;
                return 0;
        }
        return -EINVAL;
}

int vm_key_apply(VmSpecParser *p, const VmKey *k, const char *value, char **ret_reason) {
        VmKeyParseFn parse = k->parse ?: stock_parsers[k->type];
        int r;

        if (!vm_spec_value_is_storable(value))
                r = reasonf(ret_reason, -EINVAL, "expected text without control characters, surrounding whitespace "
                            "or a trailing backslash");
        else if (isempty(value))
                r = vm_key_reset(k, p->spec);
        else
                r = parse(p, k, value, vm_key_field(k, p->spec), ret_reason);
        if (r < 0 && r != -ENOMEM)
                p->failed = k;
        return r;
}
