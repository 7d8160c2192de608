/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "fileio.h"
#include "ini.h"
#include "json-util.h"
#include "parse.h"
#include "cpu-set.h"
#include "numa-topology.h"
#include "strv.h"
#include "restart.h"
#include "utf8.h"
#include "vm-spec.h"

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

#define _fallthrough_ __attribute__((__fallthrough__))

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

/* Sets *ret_reason (if non-NULL) to the formatted explanation; returns error. */
static int reasonf(char **ret_reason, int error, const char *fmt, ...) _printf_(3, 4);
static int reasonf(char **ret_reason, int error, const char *fmt, ...) {
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

/* Fills *e (which may be NULL) with field and the formatted message; returns error. */
static int spec_error(VmSpecError *e, int error, const char *field, const char *fmt, ...) _printf_(4, 5);
static int spec_error(VmSpecError *e, int error, const char *field, const char *fmt, ...) {
        va_list ap;

        if (!e)
                return error;

        *e = (VmSpecError) {};
        if (field)
                e->field = strdup(field);
        va_start(ap, fmt);
        if (vasprintf(&e->message, fmt, ap) < 0)
                e->message = NULL;
        va_end(ap);
        return error;
}

void vm_spec_error_done(VmSpecError *e) {
        if (!e)
                return;
        e->field = mfree(e->field);
        e->message = mfree(e->message);
}

VmSpec *vm_spec_new(void) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;

        s = calloc(1, sizeof(VmSpec));
        if (!s)
                return NULL;

        *s = (VmSpec) {
                .memory_bytes = VM_MEMORY_DEFAULT,
                .vcpus = 1,
                .accel = VM_ACCEL_AUTO,
                .balloon = true,
                .start_timeout_usec = VM_TIMEOUT_DEFAULT,
                .stop_timeout_usec = VM_TIMEOUT_DEFAULT,
                .backend = VM_MEMORY_BACKEND_RAM,
                .policy = VM_MEMORY_POLICY_DEFAULT,
                .restart = VM_RESTART_NO,
                .restart_usec = VM_RESTART_DEFAULT,
                .restart_max_usec = VM_RESTART_MAX_DEFAULT,
                .start_limit_burst = VM_START_LIMIT_BURST_DEFAULT,
                .start_limit_interval_usec = VM_START_LIMIT_INTERVAL_DEFAULT,
                .migrate_settle_usec = VM_MIGRATE_SETTLE_DEFAULT,
        };

        s->machine = strdup(VM_MACHINE_DEFAULT);
        if (!s->machine)
                return NULL;

        return TAKE_PTR(s);
}

VmSpec *vm_spec_free(VmSpec *s) {
        if (!s)
                return NULL;

        free(s->name);
        free(s->machine);
        free(s->qemu_binary);
        free(s->cpu_model);
        free(s->kernel);
        free(s->initrd);
        free(s->append);
        strv_free(s->disks);
        strv_free(s->extra_args);
        free(s->mem_path);
        free(s->host_nodes);
        free(s->migrate_between);
        free(s->vcpu_affinity);
        free(s->emulator_affinity);
        return mfree(s);
}

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

static bool machine_is_valid(const char *m) {
        if (isempty(m) || strlen(m) > VM_MACHINE_MAX)
                return false;
        for (const char *p = m; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr("_.-", *p))
                        return false;
        return true;
}

static bool path_is_valid(const char *p) {
        return p && p[0] == '/' && strlen(p) < PATH_MAX;
}

/* Emulator=: an absolute path, or a command name looked up in $PATH. */
static bool emulator_is_valid(const char *e) {
        if (isempty(e))
                return false;
        if (e[0] == '/')
                return true;
        return !strchr(e, '/');
}

/* Values must survive being written to a .vm file and read back: no control characters (a tab inside is
 * fine), no leading or trailing whitespace (the INI parser strips it) and no trailing backslash (which would
 * continue the line). */
static bool value_is_storable(const char *v) {
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
static int host_nodes_parse(const char *s, bool nodes[static VM_HOST_NODES_MAX]) {
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
static char *host_nodes_format(const bool nodes[static VM_HOST_NODES_MAX]) {
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

static unsigned host_nodes_count(const bool nodes[static VM_HOST_NODES_MAX]) {
        unsigned n = 0;

        for (unsigned i = 0; i < VM_HOST_NODES_MAX; i++)
                n += nodes[i];
        return n;
}

/* Exact, parse_sec()-compatible text for a time span: "30s", "2min", "1.5s", "250ms", "infinity". */
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

/* Exact, parse_size()-compatible text for a size: "512M", "2G", or bytes. */
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
/* The key table. Both the INI and the JSON form dispatch through it. An empty value resets a key to its
 * default (lists: to empty). Each parser leaves the spec untouched on failure and explains what it expects. */

typedef struct VmSpecParser {
        VmSpec *spec;
        const char *expected_name;      /* from name_hint or the file name; NULL if neither */
        const char *expected_name_why;  /* "the file name" / "the name the VM is defined under" */
        const struct VmKey *failed;     /* the key whose value was rejected */
} VmSpecParser;

typedef int (*VmKeyParseFn)(VmSpecParser *p, const char *value, char **ret_reason);

typedef struct VmKey {
        const char *section;
        const char *key;
        VmKeyParseFn parse;
        bool multiple;                  /* may repeat (INI) / may be an array (JSON) */
} VmKey;

static int parse_bool_value(bool *b, bool def, const char *v, char **ret_reason) {
        int r;

        if (isempty(v)) {
                *b = def;
                return 0;
        }
        r = parse_boolean(v);
        if (r < 0)
                return reasonf(ret_reason, -EINVAL, "expected a boolean (yes or no)");
        *b = r;
        return 0;
}

static int parse_path_value(char **p, const char *v, char **ret_reason) {
        if (isempty(v))
                return free_and_strdup(p, NULL);
        if (!path_is_valid(v))
                return reasonf(ret_reason, -EINVAL, "expected an absolute path");
        return free_and_strdup(p, v);
}

static int parse_sec_value(uint64_t *u, uint64_t def, bool allow_zero, bool allow_infinity, const char *v,
                           char **ret_reason) {
        uint64_t t;
        int r;

        if (isempty(v)) {
                *u = def;
                return 0;
        }
        r = parse_sec(v, &t);
        if (r < 0 || (!allow_infinity && t == USEC_INFINITY)) {
                r = r < 0 ? r : -EINVAL;
                if (allow_infinity)
                        return reasonf(ret_reason, r, "expected a time span such as 30s, 500ms or 2min, or infinity");
                return reasonf(ret_reason, r, "expected a time span such as 1s, 500ms or 2min");
        }
        if (!allow_zero && t == 0)
                return reasonf(ret_reason, -ERANGE, "expected a time span greater than 0");
        *u = t;
        return 0;
}

static int key_name(VmSpecParser *p, const char *v, char **ret_reason) {
        if (isempty(v))
                return free_and_strdup(&p->spec->name, NULL);
        if (!vm_name_is_valid(v))
                return reasonf(ret_reason, -EINVAL,
                               "expected a name of 1 to %d characters from a-z, A-Z, 0-9, '_', '.', '-', not "
                               "starting with '.' or '-'", VM_NAME_MAX);
        if (p->expected_name && !streq(v, p->expected_name))
                return reasonf(ret_reason, -EINVAL, "expected '%s' (%s)", p->expected_name, p->expected_name_why);
        return free_and_strdup(&p->spec->name, v);
}

static int key_memory(VmSpecParser *p, const char *v, char **ret_reason) {
        uint64_t b;
        int r;

        if (isempty(v)) {
                p->spec->memory_bytes = VM_MEMORY_DEFAULT;
                return 0;
        }
        r = parse_size(v, &b);
        if (r == -ERANGE)
                return reasonf(ret_reason, r, "expected a size between 16M and 16T");
        if (r < 0)
                return reasonf(ret_reason, r, "expected a size such as 512M or 2G");
        if (b < VM_MEMORY_MIN || b > VM_MEMORY_MAX)
                return reasonf(ret_reason, -ERANGE, "expected a size between 16M and 16T");
        if (b % SIZE_MB != 0)
                return reasonf(ret_reason, -EINVAL, "expected a whole number of MiB, such as 512M or 1536M");
        p->spec->memory_bytes = b;
        return 0;
}

static int key_vcpus(VmSpecParser *p, const char *v, char **ret_reason) {
        unsigned n;

        if (isempty(v)) {
                p->spec->vcpus = 1;
                return 0;
        }
        if (parse_unsigned(v, &n) < 0 || n < 1 || n > VM_MAX_VCPUS)
                return reasonf(ret_reason, -EINVAL, "expected a number of vCPUs between 1 and %d", VM_MAX_VCPUS);
        p->spec->vcpus = n;
        return 0;
}

static int key_machine(VmSpecParser *p, const char *v, char **ret_reason) {
        if (isempty(v))
                return free_and_strdup(&p->spec->machine, VM_MACHINE_DEFAULT);
        if (!machine_is_valid(v))
                return reasonf(ret_reason, -EINVAL, "expected a QEMU machine type such as q35, pc or microvm");
        return free_and_strdup(&p->spec->machine, v);
}

static int key_accelerator(VmSpecParser *p, const char *v, char **ret_reason) {
        VmAccel a;

        if (isempty(v)) {
                p->spec->accel = VM_ACCEL_AUTO;
                return 0;
        }
        a = vm_accel_from_string(v);
        if (a < 0)
                return reasonf(ret_reason, -EINVAL, "expected auto, kvm or tcg");
        p->spec->accel = a;
        return 0;
}

static int key_emulator(VmSpecParser *p, const char *v, char **ret_reason) {
        if (isempty(v))
                return free_and_strdup(&p->spec->qemu_binary, NULL);
        if (!emulator_is_valid(v))
                return reasonf(ret_reason, -EINVAL,
                               "expected an absolute path or a command name such as qemu-system-x86_64");
        return free_and_strdup(&p->spec->qemu_binary, v);
}

static bool cpu_model_is_valid(const char *m) {
        if (isempty(m) || strlen(m) > 256)
                return false;
        for (const char *c = m; *c; c++)
                if (!isalnum((unsigned char) *c) && !strchr("_.,=+-", *c))
                        return false;
        return isalnum((unsigned char) m[0]);
}

static int key_cpu_model(VmSpecParser *p, const char *v, char **ret_reason) {
        if (isempty(v))
                return free_and_strdup(&p->spec->cpu_model, NULL);
        if (!cpu_model_is_valid(v))
                return reasonf(ret_reason, -EINVAL,
                               "expected a QEMU CPU model with options, such as host, max or host,-arch-capabilities");
        return free_and_strdup(&p->spec->cpu_model, v);
}

static int key_kernel(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_path_value(&p->spec->kernel, v, ret_reason);
}

static int key_initrd(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_path_value(&p->spec->initrd, v, ret_reason);
}

static int key_append(VmSpecParser *p, const char *v, char **ret_reason) {
        return free_and_strdup(&p->spec->append, isempty(v) ? NULL : v);
}

static int key_disk(VmSpecParser *p, const char *v, char **ret_reason) {
        VmSpec *s = p->spec;
        int r;

        if (isempty(v)) {
                s->disks = strv_free(s->disks);
                s->n_disks = 0;
                return 0;
        }
        if (!path_is_valid(v))
                return reasonf(ret_reason, -EINVAL, "expected an absolute path");
        if (s->n_disks >= VM_MAX_DISKS)
                return reasonf(ret_reason, -E2BIG, "too many disks, at most %d are supported", VM_MAX_DISKS);
        r = strv_extend(&s->disks, v);
        if (r < 0)
                return r;
        s->n_disks++;
        return 0;
}

static int key_balloon(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_bool_value(&p->spec->balloon, true, v, ret_reason);
}

static int key_extra_args(VmSpecParser *p, const char *v, char **ret_reason) {
        _cleanup_(strv_freep) char **words = NULL;
        VmSpec *s = p->spec;
        size_t n;
        int r;

        if (isempty(v)) {
                s->extra_args = strv_free(s->extra_args);
                s->n_extra_args = 0;
                return 0;
        }
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
        {
                _cleanup_(strv_freep) char **joined = strv_copy(s->extra_args);

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
        }
        return 0;
}

static int key_autostart(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_bool_value(&p->spec->autostart, false, v, ret_reason);
}

static int key_start_timeout(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_sec_value(&p->spec->start_timeout_usec, VM_TIMEOUT_DEFAULT, false, true, v, ret_reason);
}

static int key_stop_timeout(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_sec_value(&p->spec->stop_timeout_usec, VM_TIMEOUT_DEFAULT, false, true, v, ret_reason);
}

static int key_backend(VmSpecParser *p, const char *v, char **ret_reason) {
        VmMemoryBackend b;

        if (isempty(v)) {
                p->spec->backend = VM_MEMORY_BACKEND_RAM;
                return 0;
        }
        b = vm_memory_backend_from_string(v);
        if (b < 0)
                return reasonf(ret_reason, -EINVAL, "expected ram, memfd or file");
        p->spec->backend = b;
        return 0;
}

static int key_hugepages(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_bool_value(&p->spec->hugepages, false, v, ret_reason);
}

static int key_mem_path(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_path_value(&p->spec->mem_path, v, ret_reason);
}

static int key_policy(VmSpecParser *p, const char *v, char **ret_reason) {
        VmMemoryPolicy m;

        if (isempty(v)) {
                p->spec->policy = VM_MEMORY_POLICY_DEFAULT;
                return 0;
        }
        m = vm_memory_policy_from_string(v);
        if (m < 0)
                return reasonf(ret_reason, -EINVAL, "expected default, bind, preferred or interleave");
        p->spec->policy = m;
        return 0;
}

static int key_host_nodes(VmSpecParser *p, const char *v, char **ret_reason) {
        bool nodes[VM_HOST_NODES_MAX];
        char *n;

        if (isempty(v))
                return free_and_strdup(&p->spec->host_nodes, NULL);
        if (host_nodes_parse(v, nodes) < 0)
                return reasonf(ret_reason, -EINVAL, "expected NUMA node numbers and ranges such as 0, 0-1 or 0,2-3, "
                               "with nodes below %d", VM_HOST_NODES_MAX);
        n = host_nodes_format(nodes);
        if (!n)
                return -ENOMEM;
        free(p->spec->host_nodes);
        p->spec->host_nodes = n;
        return 0;
}

static int key_prealloc(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_bool_value(&p->spec->prealloc, false, v, ret_reason);
}

/* MigrateBetween=: exactly two different nodes below NUMA_NODES_MAX, in the node list syntax ("0,1", "1,0",
 * "2-3"); ret_nodes ascending. */
static int migrate_between_parse(const char *s, unsigned ret_nodes[static 2]) {
        uint64_t mask;
        unsigned k = 0;

        if (numa_node_list_parse(s, &mask) < 0 || __builtin_popcountll(mask) != 2)
                return -EINVAL;
        for (unsigned n = 0; n < NUMA_NODES_MAX; n++)
                if (mask & (UINT64_C(1) << n))
                        ret_nodes[k++] = n;
        return 0;
}

static int key_migrate_between(VmSpecParser *p, const char *v, char **ret_reason) {
        unsigned nodes[2];
        char *n;

        if (isempty(v))
                return free_and_strdup(&p->spec->migrate_between, NULL);
        if (migrate_between_parse(v, nodes) < 0)
                return reasonf(ret_reason, -EINVAL, "expected two different NUMA nodes such as 0,1 (nodes below %u)",
                               NUMA_NODES_MAX);
        if (asprintf(&n, "%u,%u", nodes[0], nodes[1]) < 0)
                return -ENOMEM;
        free(p->spec->migrate_between);
        p->spec->migrate_between = n;
        return 0;
}

static int key_migrate_every(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_sec_value(&p->spec->migrate_every_usec, 0, true, false, v, ret_reason);
}

static int key_migrate_count(VmSpecParser *p, const char *v, char **ret_reason) {
        unsigned n;

        if (isempty(v)) {
                p->spec->migrate_count = 0;
                return 0;
        }
        if (parse_unsigned(v, &n) < 0 || n > VM_MIGRATE_COUNT_MAX)
                return reasonf(ret_reason, -EINVAL, "expected a number of moves up to %u", VM_MIGRATE_COUNT_MAX);
        p->spec->migrate_count = n;
        return 0;
}

static int key_migrate_settle(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_sec_value(&p->spec->migrate_settle_usec, VM_MIGRATE_SETTLE_DEFAULT, true, false, v, ret_reason);
}

static int key_vcpu_affinity(VmSpecParser *p, const char *v, char **ret_reason) {
        _cleanup_(vcpu_pin_map_done) VcpuPinMap map = {};
        _cleanup_free_ char *bad = NULL;
        char *n;
        int r;

        if (isempty(v))
                return free_and_strdup(&p->spec->vcpu_affinity, NULL);
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
                               "\"0:2 1:3\"");
        r = vcpu_pin_map_format(&map, &n);
        if (r < 0)
                return r;
        free(p->spec->vcpu_affinity);
        p->spec->vcpu_affinity = n;
        return 0;
}

static int key_emulator_affinity(VmSpecParser *p, const char *v, char **ret_reason) {
        CpuSet set;
        char *n;
        int r;

        if (isempty(v))
                return free_and_strdup(&p->spec->emulator_affinity, NULL);
        if (cpu_list_parse(v, &set) < 0)
                return reasonf(ret_reason, -EINVAL, "expected a CPU list such as 0, 0-3 or 0,2-3 (CPUs below %u)",
                               CPU_SET_MAX);
        r = cpu_list_format(&set, &n);
        if (r < 0)
                return r;
        free(p->spec->emulator_affinity);
        p->spec->emulator_affinity = n;
        return 0;
}

static int key_restart_policy(VmSpecParser *p, const char *v, char **ret_reason) {
        VmRestartPolicy r;

        if (isempty(v)) {
                p->spec->restart = VM_RESTART_NO;
                return 0;
        }
        r = vm_restart_policy_from_string(v);
        if (r < 0)
                return reasonf(ret_reason, -EINVAL, "expected no, on-failure or always");
        p->spec->restart = r;
        return 0;
}

static int key_restart_sec(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_sec_value(&p->spec->restart_usec, VM_RESTART_DEFAULT, true, false, v, ret_reason);
}

static int key_restart_max_delay(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_sec_value(&p->spec->restart_max_usec, VM_RESTART_MAX_DEFAULT, true, false, v, ret_reason);
}

static int key_start_limit_burst(VmSpecParser *p, const char *v, char **ret_reason) {
        unsigned n;

        if (isempty(v)) {
                p->spec->start_limit_burst = VM_START_LIMIT_BURST_DEFAULT;
                return 0;
        }
        /* The restart tracker remembers RESTART_HISTORY_MAX starts: a larger burst could never be reached. */
        if (parse_unsigned(v, &n) < 0 || n < 1 || n > RESTART_HISTORY_MAX)
                return reasonf(ret_reason, -EINVAL, "expected a number of starts from 1 to %u", RESTART_HISTORY_MAX);
        p->spec->start_limit_burst = n;
        return 0;
}

static int key_start_limit_interval(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_sec_value(&p->spec->start_limit_interval_usec, VM_START_LIMIT_INTERVAL_DEFAULT, false, true,
                               v, ret_reason);
}

static const char *const vm_balloon_policy_table[_VM_BALLOON_POLICY_MAX] = {
        [VM_BALLOON_POLICY_INHERIT] = "inherit",
        [VM_BALLOON_POLICY_YES] = "yes",
        [VM_BALLOON_POLICY_NO] = "no",
};
DEFINE_STRING_TABLE(vm_balloon_policy, VmBalloonPolicy, _VM_BALLOON_POLICY_MAX);

static int parse_size_value(uint64_t *u, const char *v, char **ret_reason) {
        uint64_t b;
        int r;

        if (isempty(v)) {
                *u = 0;
                return 0;
        }
        r = parse_size(v, &b);
        if (r < 0)
                return reasonf(ret_reason, r, "expected a size such as 256M or 1G");
        *u = b;
        return 0;
}

static int key_balloon_floor(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_size_value(&p->spec->balloon_floor, v, ret_reason);
}

static int key_balloon_ceiling(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_size_value(&p->spec->balloon_ceiling, v, ret_reason);
}

static int key_balloon_policy(VmSpecParser *p, const char *v, char **ret_reason) {
        VmBalloonPolicy b;
        int r;

        if (isempty(v)) {
                p->spec->balloon_policy = VM_BALLOON_POLICY_INHERIT;
                return 0;
        }
        b = vm_balloon_policy_from_string(v);
        if (b < 0) {
                r = parse_boolean(v);
                if (r < 0)
                        return reasonf(ret_reason, -EINVAL, "expected inherit, yes or no");
                b = r ? VM_BALLOON_POLICY_YES : VM_BALLOON_POLICY_NO;
        }
        p->spec->balloon_policy = b;
        return 0;
}

static int key_balloon_stats_interval(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_sec_value(&p->spec->balloon_stats_interval_usec, 0, true, false, v, ret_reason);
}

static int key_balloon_schedule(VmSpecParser *p, const char *v, char **ret_reason) {
        BalloonScheduleMode m;

        if (isempty(v)) {
                p->spec->balloon_schedule.mode = BALLOON_SCHEDULE_NONE;
                return 0;
        }
        m = balloon_schedule_mode_from_string(v);
        if (m < 0)
                return reasonf(ret_reason, -EINVAL, "expected none, oscillate or ramp");
        p->spec->balloon_schedule.mode = m;
        return 0;
}

static int key_balloon_from(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_size_value(&p->spec->balloon_schedule.from_bytes, v, ret_reason);
}

static int key_balloon_to(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_size_value(&p->spec->balloon_schedule.to_bytes, v, ret_reason);
}

static int key_balloon_every(VmSpecParser *p, const char *v, char **ret_reason) {
        return parse_sec_value(&p->spec->balloon_schedule.every_usec, 0, true, false, v, ret_reason);
}

static int key_balloon_count(VmSpecParser *p, const char *v, char **ret_reason) {
        unsigned n;

        if (isempty(v)) {
                p->spec->balloon_schedule.count = 0;
                return 0;
        }
        if (parse_unsigned(v, &n) < 0)
                return reasonf(ret_reason, -EINVAL, "expected a number of steps");
        p->spec->balloon_schedule.count = n;
        return 0;
}

static const VmKey vm_keys[] = {
        { "VM",      "Name",                  key_name,                  false },
        { "VM",      "Memory",                key_memory,                false },
        { "VM",      "VCPUs",                 key_vcpus,                 false },
        { "VM",      "Machine",               key_machine,               false },
        { "VM",      "Accelerator",           key_accelerator,           false },
        { "VM",      "Emulator",              key_emulator,              false },
        { "VM",      "CPUModel",              key_cpu_model,             false },
        { "VM",      "Kernel",                key_kernel,                false },
        { "VM",      "Initrd",                key_initrd,                false },
        { "VM",      "Append",                key_append,                false },
        { "VM",      "Disk",                  key_disk,                  true  },
        { "VM",      "Balloon",               key_balloon,               false },
        { "VM",      "ExtraArgs",             key_extra_args,            true  },
        { "VM",      "Autostart",             key_autostart,             false },
        { "VM",      "StartTimeoutSec",       key_start_timeout,         false },
        { "VM",      "StopTimeoutSec",        key_stop_timeout,          false },
        { "Memory",  "Backend",               key_backend,               false },
        { "Memory",  "HugePages",             key_hugepages,             false },
        { "Memory",  "Path",                  key_mem_path,              false },
        { "Memory",  "Policy",                key_policy,                false },
        { "Memory",  "HostNodes",             key_host_nodes,            false },
        { "Memory",  "Prealloc",              key_prealloc,              false },
        { "Memory",  "MigrateBetween",        key_migrate_between,       false },
        { "Memory",  "MigrateEverySec",       key_migrate_every,         false },
        { "Memory",  "MigrateCount",          key_migrate_count,         false },
        { "Memory",  "MigrateSettleSec",      key_migrate_settle,        false },
        { "CPU",     "VCPUAffinity",          key_vcpu_affinity,         false },
        { "CPU",     "EmulatorAffinity",      key_emulator_affinity,     false },
        { "Restart", "Policy",                key_restart_policy,        false },
        { "Restart", "RestartSec",            key_restart_sec,           false },
        { "Restart", "RestartMaxDelaySec",    key_restart_max_delay,     false },
        { "Restart", "StartLimitBurst",       key_start_limit_burst,     false },
        { "Restart", "StartLimitIntervalSec", key_start_limit_interval,  false },
        { "Balloon", "Floor",                 key_balloon_floor,         false },
        { "Balloon", "Ceiling",               key_balloon_ceiling,       false },
        { "Balloon", "Policy",                key_balloon_policy,        false },
        { "Balloon", "StatsIntervalSec",      key_balloon_stats_interval, false },
        { "Balloon", "Schedule",              key_balloon_schedule,      false },
        { "Balloon", "From",                  key_balloon_from,          false },
        { "Balloon", "To",                    key_balloon_to,            false },
        { "Balloon", "EverySec",              key_balloon_every,         false },
        { "Balloon", "Count",                 key_balloon_count,         false },
};

static const char *const vm_sections[] = { "VM", "Memory", "CPU", "Restart", "Balloon" };

static const VmKey *vm_key_find(const char *section, const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(vm_keys); i++)
                if (streq(vm_keys[i].section, section) && streq(vm_keys[i].key, key))
                        return vm_keys + i;
        return NULL;
}

static bool vm_section_known(const char *section) {
        for (size_t i = 0; i < ELEMENTSOF(vm_sections); i++)
                if (streq(vm_sections[i], section))
                        return true;
        return false;
}

static int vm_key_apply(VmSpecParser *p, const VmKey *k, const char *value, char **ret_reason) {
        int r;

        if (!value_is_storable(value))
                r = reasonf(ret_reason, -EINVAL, "expected text without control characters, surrounding whitespace "
                            "or a trailing backslash");
        else
                r = k->parse(p, value, ret_reason);
        if (r < 0 && r != -ENOMEM)
                p->failed = k;
        return r;
}

/* The IniItem callback: data is the VmSpecParser (offset 0), aux the VmKey. */
static int vm_key_dispatch_ini(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        return vm_key_apply(data, aux, value, ret_reason);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Validation */

/* Fills field ("VM.Memory") and reason; returns -EINVAL on the first problem, 0 if the spec is fine. */
static int validate_internal(const VmSpec *s, const char **ret_field, char **ret_reason) {
        bool nodes[VM_HOST_NODES_MAX] = {};
        _cleanup_free_ char *text = NULL;
        int r;

#define FAIL(field, ...)                                                \
        do {                                                            \
                *ret_field = (field);                                   \
                return reasonf(ret_reason, -EINVAL, __VA_ARGS__);       \
        } while (0)

        /* [VM] */
        if (!s->name)
                FAIL("VM.Name", "Name= is not set");
        if (!vm_name_is_valid(s->name))
                FAIL("VM.Name", "Invalid name '%s': expected 1 to %d characters from a-z, A-Z, 0-9, '_', '.', "
                     "'-', not starting with '.' or '-'", s->name, VM_NAME_MAX);
        if (s->memory_bytes < VM_MEMORY_MIN || s->memory_bytes > VM_MEMORY_MAX)
                FAIL("VM.Memory", "Memory= must be between 16M and 16T");
        if (s->memory_bytes % SIZE_MB != 0)
                FAIL("VM.Memory", "Memory= must be a whole number of MiB");
        if (s->vcpus < 1 || s->vcpus > VM_MAX_VCPUS)
                FAIL("VM.VCPUs", "VCPUs= must be between 1 and %d", VM_MAX_VCPUS);
        if (!machine_is_valid(s->machine))
                FAIL("VM.Machine", "Machine= must be a QEMU machine type such as q35, pc or microvm");
        if (!vm_accel_to_string(s->accel))
                FAIL("VM.Accelerator", "Accelerator= must be auto, kvm or tcg");
        if (s->cpu_model && !cpu_model_is_valid(s->cpu_model))
                FAIL("VM.CPUModel", "CPUModel= must be a QEMU CPU model such as host or max");
        if (s->qemu_binary && (!emulator_is_valid(s->qemu_binary) || !value_is_storable(s->qemu_binary)))
                FAIL("VM.Emulator", "Emulator= must be an absolute path or a command name");
        if (s->kernel && (!path_is_valid(s->kernel) || !value_is_storable(s->kernel)))
                FAIL("VM.Kernel", "Kernel= must be an absolute path");
        if (s->initrd && (!path_is_valid(s->initrd) || !value_is_storable(s->initrd)))
                FAIL("VM.Initrd", "Initrd= must be an absolute path");
        if (s->append && !value_is_storable(s->append))
                FAIL("VM.Append", "Append= must not contain control characters, surrounding whitespace or a "
                     "trailing backslash");
        /* QEMU gets it as one argument: execve(2) refuses an argument of MAX_ARG_STRLEN (128 KiB) or more. */
        if (s->append && strlen(s->append) >= VM_ARG_MAX)
                FAIL("VM.Append", "Append= is %zu bytes; QEMU's command line takes at most %u bytes per argument",
                     strlen(s->append), VM_ARG_MAX - 1);
        if (s->n_disks != strv_length(s->disks))
                FAIL("VM.Disk", "the disk count does not match the disk list");
        if (s->n_disks > VM_MAX_DISKS)
                FAIL("VM.Disk", "too many disks, at most %d are supported", VM_MAX_DISKS);
        for (size_t i = 0; i < s->n_disks; i++)
                if (!path_is_valid(s->disks[i]) || !value_is_storable(s->disks[i]))
                        FAIL("VM.Disk", "Disk=%s is not an absolute path", s->disks[i]);
        if (!s->kernel && s->n_disks == 0)
                FAIL("VM.Kernel", "Neither Kernel= nor Disk= is set: the guest has nothing to boot");
        if (s->initrd && !s->kernel)
                FAIL("VM.Initrd", "Initrd= needs Kernel=");
        if (s->append && !s->kernel)
                FAIL("VM.Append", "Append= needs Kernel=");
        if (s->n_extra_args != strv_length(s->extra_args))
                FAIL("VM.ExtraArgs", "the argument count does not match the argument list");
        if (s->n_extra_args > VM_MAX_EXTRA_ARGS)
                FAIL("VM.ExtraArgs", "too many extra arguments, at most %d are supported", VM_MAX_EXTRA_ARGS);
        for (size_t i = 0; i < s->n_extra_args; i++) {
                for (const char *c = s->extra_args[i]; *c; c++)
                        if (iscntrl((unsigned char) *c) && *c != '\t')
                                FAIL("VM.ExtraArgs", "ExtraArgs= must not contain control characters");
                if (strlen(s->extra_args[i]) >= VM_ARG_MAX)
                        FAIL("VM.ExtraArgs", "an ExtraArgs= argument is %zu bytes; QEMU's command line takes at "
                             "most %u bytes per argument", strlen(s->extra_args[i]), VM_ARG_MAX - 1);
        }
        if (s->start_timeout_usec == 0)
                FAIL("VM.StartTimeoutSec", "StartTimeoutSec= must be greater than 0");
        if (s->stop_timeout_usec == 0)
                FAIL("VM.StopTimeoutSec", "StopTimeoutSec= must be greater than 0");

        /* [Memory] */
        if (!vm_memory_backend_to_string(s->backend))
                FAIL("Memory.Backend", "Backend= must be ram, memfd or file");
        if (!vm_memory_policy_to_string(s->policy))
                FAIL("Memory.Policy", "Policy= must be default, bind, preferred or interleave");
        if (s->mem_path && (!path_is_valid(s->mem_path) || !value_is_storable(s->mem_path)))
                FAIL("Memory.Path", "Path= must be an absolute path");

        switch (s->backend) {
        case VM_MEMORY_BACKEND_RAM:
                if (s->hugepages)
                        FAIL("Memory.HugePages", "HugePages=yes does not work with Backend=ram: use Backend=memfd, "
                             "or Backend=file with Path= on a hugetlbfs mount");
                _fallthrough_;
        case VM_MEMORY_BACKEND_MEMFD:
                if (s->mem_path)
                        FAIL("Memory.Path", "Path= is only used with Backend=file");
                break;
        case VM_MEMORY_BACKEND_FILE:
                if (!s->mem_path)
                        FAIL("Memory.Path", "Backend=file needs Path=");
                break;
        case _VM_MEMORY_BACKEND_MAX:
        case _VM_MEMORY_BACKEND_INVALID:
                break; /* rejected above */
        }

        if (s->host_nodes) {
                _cleanup_free_ char *normalized = NULL;

                if (host_nodes_parse(s->host_nodes, nodes) < 0)
                        FAIL("Memory.HostNodes", "HostNodes=%s is not a list of NUMA nodes and ranges below %d "
                             "such as 0, 0-1 or 0,2-3", s->host_nodes, VM_HOST_NODES_MAX);
                normalized = host_nodes_format(nodes);
                if (!normalized)
                        return -ENOMEM;
                if (!streq(normalized, s->host_nodes))
                        FAIL("Memory.HostNodes", "HostNodes=%s is not normalized, expected %s", s->host_nodes,
                             normalized);
        }

        switch (s->policy) {
        case VM_MEMORY_POLICY_DEFAULT:
                if (s->host_nodes)
                        FAIL("Memory.HostNodes", "HostNodes= does not work with Policy=default: set Policy=bind, "
                             "preferred or interleave");
                break;
        case VM_MEMORY_POLICY_PREFERRED:
                if (s->host_nodes && host_nodes_count(nodes) != 1)
                        FAIL("Memory.HostNodes", "Policy=preferred takes a single node in HostNodes=, not %s",
                             s->host_nodes);
                _fallthrough_;
        case VM_MEMORY_POLICY_BIND:
        case VM_MEMORY_POLICY_INTERLEAVE:
                if (!s->host_nodes)
                        FAIL("Memory.HostNodes", "Policy=%s needs HostNodes=", vm_memory_policy_to_string(s->policy));
                break;
        case _VM_MEMORY_POLICY_MAX:
        case _VM_MEMORY_POLICY_INVALID:
                break; /* rejected above */
        }

        if (s->migrate_between) {
                char normalized[32];
                unsigned between[2];

                if (migrate_between_parse(s->migrate_between, between) < 0)
                        FAIL("Memory.MigrateBetween", "MigrateBetween=%s is not two different NUMA nodes below %u "
                             "such as 0,1", s->migrate_between, NUMA_NODES_MAX);
                snprintf(normalized, sizeof(normalized), "%u,%u", between[0], between[1]);
                if (!streq(normalized, s->migrate_between))
                        FAIL("Memory.MigrateBetween", "MigrateBetween=%s is not normalized, expected %s",
                             s->migrate_between, normalized);
                if (s->migrate_every_usec == 0)
                        FAIL("Memory.MigrateEverySec", "MigrateBetween= needs MigrateEverySec= greater than 0");
                if (s->migrate_every_usec > VM_MIGRATE_EVERY_MAX)
                        FAIL("Memory.MigrateEverySec", "MigrateEverySec= must be at most 24h");
                if (s->migrate_count == 0)
                        FAIL("Memory.MigrateCount", "MigrateBetween= needs MigrateCount= of 1 or more");
                if (s->migrate_count > VM_MIGRATE_COUNT_MAX)
                        FAIL("Memory.MigrateCount", "MigrateCount= must be from 1 to %u", VM_MIGRATE_COUNT_MAX);
                if (s->migrate_settle_usec > VM_MIGRATE_SETTLE_MAX)
                        FAIL("Memory.MigrateSettleSec", "MigrateSettleSec= must be at most 10min");
        } else if (s->migrate_every_usec != 0)
                FAIL("Memory.MigrateEverySec", "MigrateEverySec= needs MigrateBetween=");
        else if (s->migrate_count != 0)
                FAIL("Memory.MigrateCount", "MigrateCount= needs MigrateBetween=");
        else if (s->migrate_settle_usec != VM_MIGRATE_SETTLE_DEFAULT)
                FAIL("Memory.MigrateSettleSec", "MigrateSettleSec= needs MigrateBetween=");

        /* [CPU] */
        if (s->vcpu_affinity) {
                _cleanup_(vcpu_pin_map_done) VcpuPinMap map = {};
                _cleanup_free_ char *normalized = NULL;

                if (vcpu_pin_map_parse(s->vcpu_affinity, &map, NULL) < 0)
                        FAIL("CPU.VCPUAffinity", "VCPUAffinity=%s is not a list of VCPU:CPULIST entries such as "
                             "\"0:2 1:3\"", s->vcpu_affinity);
                if (vcpu_pin_map_format(&map, &normalized) < 0)
                        return -ENOMEM;
                if (!streq(normalized, s->vcpu_affinity))
                        FAIL("CPU.VCPUAffinity", "VCPUAffinity=%s is not normalized, expected %s", s->vcpu_affinity,
                             normalized);
                for (size_t i = 0; i < map.n; i++)
                        if (map.pins[i].vcpu >= s->vcpus)
                                FAIL("CPU.VCPUAffinity", "VCPUAffinity= names vCPU %u, but the guest has %u vCPU%s "
                                     "(0-%u)", map.pins[i].vcpu, s->vcpus, s->vcpus == 1 ? "" : "s", s->vcpus - 1);
        }
        if (s->emulator_affinity) {
                _cleanup_free_ char *normalized = NULL;
                CpuSet set;

                if (cpu_list_parse(s->emulator_affinity, &set) < 0)
                        FAIL("CPU.EmulatorAffinity", "EmulatorAffinity=%s is not a CPU list such as 0-3",
                             s->emulator_affinity);
                if (cpu_list_format(&set, &normalized) < 0)
                        return -ENOMEM;
                if (!streq(normalized, s->emulator_affinity))
                        FAIL("CPU.EmulatorAffinity", "EmulatorAffinity=%s is not normalized, expected %s",
                             s->emulator_affinity, normalized);
        }

        /* [Restart] */
        if (!vm_restart_policy_to_string(s->restart))
                FAIL("Restart.Policy", "Policy= must be no, on-failure or always");
        if (s->restart_usec == USEC_INFINITY)
                FAIL("Restart.RestartSec", "RestartSec= must be finite");
        if (s->restart_max_usec == USEC_INFINITY)
                FAIL("Restart.RestartMaxDelaySec", "RestartMaxDelaySec= must be finite");
        if (s->restart_max_usec < s->restart_usec)
                FAIL("Restart.RestartMaxDelaySec", "RestartMaxDelaySec= must not be shorter than RestartSec=");
        if (s->start_limit_burst < 1 || s->start_limit_burst > RESTART_HISTORY_MAX)
                FAIL("Restart.StartLimitBurst", "StartLimitBurst= must be from 1 to %u", RESTART_HISTORY_MAX);
        if (s->start_limit_interval_usec == 0)
                FAIL("Restart.StartLimitIntervalSec", "StartLimitIntervalSec= must be greater than 0");

        /* [Balloon] */
        if (s->balloon_floor > s->memory_bytes)
                FAIL("Balloon.Floor", "Floor= must not exceed Memory=");
        if (s->balloon_ceiling > s->memory_bytes)
                FAIL("Balloon.Ceiling", "Ceiling= must not exceed Memory=");
        if (s->balloon_ceiling != 0 && s->balloon_ceiling < s->balloon_floor)
                FAIL("Balloon.Ceiling", "Ceiling= must not be below Floor=");
        if (!vm_balloon_policy_to_string(s->balloon_policy))
                FAIL("Balloon.Policy", "Policy= must be inherit, yes or no");
        if (s->balloon_stats_interval_usec % USEC_PER_SEC != 0 || s->balloon_stats_interval_usec > 3600 * USEC_PER_SEC)
                FAIL("Balloon.StatsIntervalSec", "StatsIntervalSec= must be whole seconds, at most 1h (0: the daemon's "
                     "default)");
        if (!s->balloon && s->balloon_policy == VM_BALLOON_POLICY_YES)
                FAIL("Balloon.Policy", "Policy=yes needs a balloon device ([VM] Balloon=yes)");
        if (s->balloon_schedule.mode != BALLOON_SCHEDULE_NONE) {
                const char *sf = NULL, *sr = NULL;
                static const char *const fields[][2] = {
                        { "mode", "Balloon.Schedule" }, { "from", "Balloon.From" }, { "to", "Balloon.To" },
                        { "every", "Balloon.EverySec" }, { "count", "Balloon.Count" },
                };

                if (!balloon_schedule_mode_to_string(s->balloon_schedule.mode))
                        FAIL("Balloon.Schedule", "Schedule= must be none, oscillate or ramp");
                if (!s->balloon)
                        FAIL("Balloon.Schedule", "Schedule= needs a balloon device ([VM] Balloon=yes)");
                if (balloon_schedule_validate(&s->balloon_schedule, &sf, &sr) < 0) {
                        const char *f = "Balloon.Schedule";

                        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                                if (streq(fields[i][0], sf))
                                        f = fields[i][1];
                        FAIL(f, "%s= %s", strchr(f, '.') + 1, sr);
                }
                if (s->balloon_schedule.from_bytes > s->memory_bytes ||
                    s->balloon_schedule.from_bytes < s->balloon_floor)
                        FAIL("Balloon.From", "From= must be between Floor= and Memory=");
                if (s->balloon_schedule.to_bytes > s->memory_bytes || s->balloon_schedule.to_bytes < s->balloon_floor)
                        FAIL("Balloon.To", "To= must be between Floor= and Memory=");
        }

        /* One limit for every way in (DefineVM fields or ini text, .vm files): whatever is accepted must load
         * again from the .vm file it is saved as. */
        r = vm_spec_to_ini(s, &text);
        if (r < 0)
                return r;
        if (strlen(text) > INI_FILE_MAX)
                FAIL("definition", "the definition takes %zu bytes as a .vm file, over the limit of %u bytes",
                     strlen(text), INI_FILE_MAX);

#undef FAIL
        return 0;
}

int vm_spec_validate(const VmSpec *s, VmSpecError *ret_error) {
        _cleanup_free_ char *reason = NULL;
        const char *field = NULL;
        int r;

        r = validate_internal(s, &field, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, r, field, "%s: %s", field, strna(reason));
        return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* INI */

/* The name a file gives: its basename without ".vm", or NULL if it does not end in ".vm". */
static int name_from_filename(const char *filename, char **ret) {
        const char *base;
        size_t n;

        *ret = NULL;
        if (!filename)
                return 0;
        base = strrchr(filename, '/');
        base = base ? base + 1 : filename;
        n = strlen(base);
        if (n <= 3 || !streq(base + n - 3, ".vm"))
                return 0;
        *ret = strndup(base, n - 3);
        return *ret ? 0 : -ENOMEM;
}

/* ini_parse_buffer() reports unknown sections and keys only in its message; recover the field from it. */
static char *field_from_ini_error(const char *message) {
        const char *p, *e;

        p = strstr(message, ": Unknown key '");
        if (p) {
                _cleanup_free_ char *key = NULL;
                const char *section;

                p += strlen(": Unknown key '");
                e = strchr(p, '\'');
                if (!e)
                        return NULL;
                key = strndup(p, (size_t) (e - p));
                section = strstr(e, " in section [");
                if (!key || !section)
                        return NULL;
                section += strlen(" in section [");
                e = strchr(section, ']');
                if (!e)
                        return NULL;
                {
                        char *f = NULL;

                        if (asprintf(&f, "%.*s.%s", (int) (e - section), section, key) < 0)
                                return NULL;
                        return f;
                }
        }

        p = strstr(message, ": Unknown section [");
        if (p) {
                p += strlen(": Unknown section [");
                e = strchr(p, ']');
                return e ? strndup(p, (size_t) (e - p)) : NULL;
        }
        return NULL;
}

int vm_spec_parse_ini(const char *filename, const char *text, const char *name_hint, VmSpec **ret,
                      VmSpecError *ret_error) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;
        _cleanup_free_ char *file_name = NULL, *error = NULL, *reason = NULL;
        IniItem items[ELEMENTSOF(vm_keys) + 1];
        VmSpecParser p;
        const char *field = NULL;
        int r;

        if (!filename)
                filename = "<input>";
        if (!text || !ret)
                return -EINVAL;
        if (strlen(text) > INI_FILE_MAX)
                return spec_error(ret_error, -EFBIG, NULL, "%s: the text is %zu bytes, over the limit of %u bytes "
                                  "for a .vm file", filename, strlen(text), INI_FILE_MAX);

        s = vm_spec_new();
        if (!s)
                return -ENOMEM;

        r = name_from_filename(filename, &file_name);
        if (r < 0)
                return r;

        p = (VmSpecParser) { .spec = s };
        if (name_hint) {
                p.expected_name = name_hint;
                p.expected_name_why = "the name the VM is defined under";
        } else if (file_name) {
                p.expected_name = file_name;
                p.expected_name_why = "the file name";
        }

        for (size_t i = 0; i < ELEMENTSOF(vm_keys); i++)
                items[i] = (IniItem) {
                        .section = vm_keys[i].section,
                        .key = vm_keys[i].key,
                        .parse = vm_key_dispatch_ini,
                        .offset = 0,
                        .aux = vm_keys + i,
                };
        items[ELEMENTSOF(vm_keys)] = (IniItem) {};

        r = ini_parse_buffer(filename, text, items, &p, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                _cleanup_free_ char *f = NULL;

                if (p.failed) {
                        if (asprintf(&f, "%s.%s", p.failed->section, p.failed->key) < 0)
                                return -ENOMEM;
                } else if (error)
                        f = field_from_ini_error(error);
                return spec_error(ret_error, r, f, "%s", error ?: "Failed to parse");
        }

        if (!s->name && p.expected_name) {
                s->name = strdup(p.expected_name);
                if (!s->name)
                        return -ENOMEM;
        }

        r = validate_internal(s, &field, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, r, field, "%s: %s", filename, strna(reason));

        *ret = TAKE_PTR(s);
        return 0;
}

int vm_spec_parse_file(const char *path, VmSpec **ret, VmSpecError *ret_error) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r;

        if (!path || !ret)
                return -EINVAL;

        r = read_full_file(path, INI_FILE_MAX, &buf, &size);
        if (r < 0)
                return spec_error(ret_error, r, NULL, "%s: Failed to read file: %s", path, strerror(-r));
        if (strlen(buf) != size)
                return spec_error(ret_error, -EINVAL, NULL, "%s: File contains a NUL byte", path);

        return vm_spec_parse_ini(path, buf, NULL, ret, ret_error);
}

/* ---------------------------------------------------------------------------------------------------- */
/* JSON */

static char *strip_dup(const char *s) {
        const char *e;

        while (isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                e--;
        return strndup(s, (size_t) (e - s));
}

/* A JSON scalar as the text an INI assignment would carry. null → "" (reset). -EMEDIUMTYPE for objects and
 * arrays. */
static int json_scalar_to_text(json_object *v, char **ret) {
        char *t = NULL;

        switch (json_object_get_type(v)) {
        case json_type_null:
                t = strdup("");
                break;
        case json_type_boolean:
                t = strdup(json_object_get_boolean(v) ? "yes" : "no");
                break;
        case json_type_int: {
                int64_t i = json_object_get_int64(v);

                if (i >= 0) {
                        if (asprintf(&t, "%" PRIu64, json_object_get_uint64(v)) < 0)
                                t = NULL;
                } else if (asprintf(&t, "%" PRIi64, i) < 0)
                        t = NULL;
                break;
        }
        case json_type_double:
                t = strdup(json_object_get_string(v));
                break;
        case json_type_string:
                t = strip_dup(json_object_get_string(v));
                break;
        case json_type_object:
        case json_type_array:
                return -EMEDIUMTYPE;
        }

        if (!t)
                return -ENOMEM;
        *ret = t;
        return 0;
}

static int json_apply(VmSpecParser *p, const VmKey *k, json_object *v, VmSpecError *ret_error) {
        _cleanup_free_ char *text = NULL, *reason = NULL;
        int r;

        r = json_scalar_to_text(v, &text);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, -EINVAL, NULL, "%s.%s: expected a string, number, boolean or null%s",
                                  k->section, k->key, k->multiple ? ", or an array of those" : "");
        /* Text as a .vm line must be (ini.c): valid UTF-8 without NUL — json-c checks neither. */
        if (json_object_is_type(v, json_type_string) &&
            !utf8_is_valid_text(json_object_get_string(v), (size_t) json_object_get_string_len(v)))
                return spec_error(ret_error, -EINVAL, NULL, "%s.%s: Invalid value: not valid UTF-8 text without NUL",
                                  k->section, k->key);

        r = vm_key_apply(p, k, text, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, r, NULL, "%s.%s: Invalid value '%s': %s", k->section, k->key, text,
                                  reason ?: strerror(-r));
        return 0;
}

static int json_apply_key(VmSpecParser *p, const VmKey *k, json_object *v, VmSpecError *ret_error) {
        size_t n;
        int r;

        if (!json_object_is_type(v, json_type_array))
                return json_apply(p, k, v, ret_error);

        if (!k->multiple)
                return spec_error(ret_error, -EINVAL, NULL, "%s.%s: expected a string, number, boolean or null, "
                                  "not an array (%s= does not take a list)", k->section, k->key, k->key);

        /* An array is the whole list: reset, then one assignment per element. */
        r = k->parse(p, "", NULL);
        if (r < 0)
                return r;

        n = json_object_array_length(v);
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(v, i);

                if (!e || json_object_is_type(e, json_type_null) || json_object_is_type(e, json_type_array) ||
                    json_object_is_type(e, json_type_object))
                        return spec_error(ret_error, -EINVAL, NULL, "%s.%s: expected an array of strings, numbers "
                                          "or booleans", k->section, k->key);
                r = json_apply(p, k, e, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

int vm_spec_parse_json(json_object *definition, const char *name_hint, VmSpec **ret, VmSpecError *ret_error) {
        _cleanup_(vm_spec_freep) VmSpec *s = NULL;
        _cleanup_free_ char *reason = NULL;
        VmSpecParser p;
        const char *field = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        if (!definition || !json_object_is_type(definition, json_type_object))
                return spec_error(ret_error, -EINVAL, NULL,
                                  "The VM definition must be a JSON object with the sections VM, Memory, CPU, Restart and Balloon");

        s = vm_spec_new();
        if (!s)
                return -ENOMEM;

        p = (VmSpecParser) {
                .spec = s,
                .expected_name = name_hint,
                .expected_name_why = "the name the VM is defined under",
        };

        json_object_object_foreach(definition, section, keys) {
                if (!vm_section_known(section))
                        return spec_error(ret_error, -EINVAL, section,
                                          "%s: Unknown section, expected VM, Memory, CPU, Restart or Balloon", section);
                if (!keys)
                        continue;       /* "Memory": null is the same as leaving the section out */
                if (!json_object_is_type(keys, json_type_object))
                        return spec_error(ret_error, -EINVAL, section,
                                          "%s: expected an object with the keys of section [%s]", section, section);

                json_object_object_foreach(keys, key, value) {
                        const VmKey *k = vm_key_find(section, key);
                        _cleanup_free_ char *f = NULL;

                        if (asprintf(&f, "%s.%s", section, key) < 0)
                                return -ENOMEM;
                        if (!k)
                                return spec_error(ret_error, -EINVAL, f, "%s: Unknown key in section [%s]", f,
                                                  section);

                        r = json_apply_key(&p, k, value, ret_error);
                        if (r == -ENOMEM)
                                return r;
                        if (r < 0) {
                                if (ret_error) {
                                        free(ret_error->field);
                                        ret_error->field = TAKE_PTR(f);
                                }
                                return r;
                        }
                }
        }

        if (!s->name && name_hint) {
                s->name = strdup(name_hint);
                if (!s->name)
                        return -ENOMEM;
        }

        r = validate_internal(s, &field, &reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return spec_error(ret_error, r, field, "%s: %s", field, strna(reason));

        *ret = TAKE_PTR(s);
        return 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Output */

static void fput_key(FILE *f, const char *key, const char *value) {
        fprintf(f, "%s=%s\n", key, strempty(value));
}

static void fput_bool(FILE *f, const char *key, bool b) {
        fput_key(f, key, b ? "yes" : "no");
}

static void fput_sec(FILE *f, const char *key, uint64_t usec) {
        char buf[64];

        format_sec_exact(buf, usec);
        fput_key(f, key, buf);
}

/* One word per ExtraArgs= line, quoted so that splitting gives it back. */
static int fput_extra_args(FILE *f, char *const *args) {
        for (char *const *a = args; a && *a; a++) {
                _cleanup_free_ char *q = shell_quote(*a);

                if (!q)
                        return -ENOMEM;
                fput_key(f, "ExtraArgs", q);
        }
        return 0;
}

int vm_spec_to_ini(const VmSpec *s, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        char sz[32];
        FILE *f;
        int r;

        if (!s || !ret)
                return -EINVAL;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;

        format_size_exact(sz, s->memory_bytes);

        fputs("[VM]\n", f);
        fput_key(f, "Name", s->name);
        fput_key(f, "Memory", sz);
        fprintf(f, "VCPUs=%u\n", s->vcpus);
        fput_key(f, "Machine", s->machine);
        fput_key(f, "Accelerator", vm_accel_to_string(s->accel));
        fput_key(f, "Emulator", s->qemu_binary);
        fput_key(f, "CPUModel", s->cpu_model);
        fput_key(f, "Kernel", s->kernel);
        fput_key(f, "Initrd", s->initrd);
        fput_key(f, "Append", s->append);
        if (s->n_disks == 0)
                fput_key(f, "Disk", NULL);
        for (size_t i = 0; i < s->n_disks; i++)
                fput_key(f, "Disk", s->disks[i]);
        fput_bool(f, "Balloon", s->balloon);
        if (s->n_extra_args == 0)
                fput_key(f, "ExtraArgs", NULL);
        r = fput_extra_args(f, s->extra_args);
        fput_bool(f, "Autostart", s->autostart);
        fput_sec(f, "StartTimeoutSec", s->start_timeout_usec);
        fput_sec(f, "StopTimeoutSec", s->stop_timeout_usec);

        fputs("\n[Memory]\n", f);
        fput_key(f, "Backend", vm_memory_backend_to_string(s->backend));
        fput_bool(f, "HugePages", s->hugepages);
        fput_key(f, "Path", s->mem_path);
        fput_key(f, "Policy", vm_memory_policy_to_string(s->policy));
        fput_key(f, "HostNodes", s->host_nodes);
        fput_bool(f, "Prealloc", s->prealloc);
        fput_key(f, "MigrateBetween", s->migrate_between);
        fput_sec(f, "MigrateEverySec", s->migrate_every_usec);
        fprintf(f, "MigrateCount=%u\n", s->migrate_count);
        fput_sec(f, "MigrateSettleSec", s->migrate_settle_usec);

        fputs("\n[CPU]\n", f);
        fput_key(f, "VCPUAffinity", s->vcpu_affinity);
        fput_key(f, "EmulatorAffinity", s->emulator_affinity);

        fputs("\n[Restart]\n", f);
        fput_key(f, "Policy", vm_restart_policy_to_string(s->restart));
        fput_sec(f, "RestartSec", s->restart_usec);
        fput_sec(f, "RestartMaxDelaySec", s->restart_max_usec);
        fprintf(f, "StartLimitBurst=%u\n", s->start_limit_burst);
        fput_sec(f, "StartLimitIntervalSec", s->start_limit_interval_usec);

        fputs("\n[Balloon]\n", f);
        format_size_exact(sz, s->balloon_floor);
        fput_key(f, "Floor", sz);
        format_size_exact(sz, s->balloon_ceiling);
        fput_key(f, "Ceiling", sz);
        fput_key(f, "Policy", vm_balloon_policy_to_string(s->balloon_policy));
        fput_sec(f, "StatsIntervalSec", s->balloon_stats_interval_usec);
        fput_key(f, "Schedule", balloon_schedule_mode_to_string(s->balloon_schedule.mode));
        format_size_exact(sz, s->balloon_schedule.from_bytes);
        fput_key(f, "From", sz);
        format_size_exact(sz, s->balloon_schedule.to_bytes);
        fput_key(f, "To", sz);
        fput_sec(f, "EverySec", s->balloon_schedule.every_usec);
        fprintf(f, "Count=%u\n", s->balloon_schedule.count);

        if (fclose(f) != 0 || !buf)
                return -ENOMEM;
        if (r < 0)
                return r;

        *ret = TAKE_PTR(buf);
        return 0;
}

static int json_add_sec(json_object *o, const char *key, uint64_t usec) {
        char buf[64];

        format_sec_exact(buf, usec);
        return json_add_string(o, key, buf);
}

/* NULL strings become JSON null, which parses back as "reset to the default". */
static int json_add_string_or_null(json_object *o, const char *key, const char *value) {
        if (!value)
                return json_object_object_add(o, key, NULL) < 0 ? -ENOMEM : 0;
        return json_add_string(o, key, value);
}

static int json_add_strv(json_object *o, const char *key, char *const *l, bool quote) {
        _cleanup_json_ json_object *a = json_object_new_array();
        int r;

        if (!a)
                return -ENOMEM;
        for (char *const *i = l; i && *i; i++) {
                _cleanup_free_ char *q = quote ? shell_quote(*i) : strdup(*i);
                json_object *e;

                if (!q)
                        return -ENOMEM;
                e = json_object_new_string(q);
                if (!e)
                        return -ENOMEM;
                r = json_object_array_add(a, e);
                if (r < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
        }
        return json_add(o, key, TAKE_PTR(a));
}

int vm_spec_to_json(const VmSpec *s, json_object **ret) {
        _cleanup_json_ json_object *root = NULL, *vm = NULL, *mem = NULL, *cpu = NULL, *restart = NULL,
                *balloon = NULL;
        int r;

        if (!s || !ret)
                return -EINVAL;

        root = json_object_new_object();
        vm = json_object_new_object();
        mem = json_object_new_object();
        cpu = json_object_new_object();
        restart = json_object_new_object();
        balloon = json_object_new_object();
        if (!root || !vm || !mem || !cpu || !restart || !balloon)
                return -ENOMEM;

        if ((r = json_add_string_or_null(vm, "Name", s->name)) < 0 ||
            (r = json_add_uint(vm, "Memory", s->memory_bytes)) < 0 ||
            (r = json_add_uint(vm, "VCPUs", s->vcpus)) < 0 ||
            (r = json_add_string_or_null(vm, "Machine", s->machine)) < 0 ||
            (r = json_add_string(vm, "Accelerator", vm_accel_to_string(s->accel))) < 0 ||
            (r = json_add_string_or_null(vm, "Emulator", s->qemu_binary)) < 0 ||
            (r = json_add_string_or_null(vm, "CPUModel", s->cpu_model)) < 0 ||
            (r = json_add_string_or_null(vm, "Kernel", s->kernel)) < 0 ||
            (r = json_add_string_or_null(vm, "Initrd", s->initrd)) < 0 ||
            (r = json_add_string_or_null(vm, "Append", s->append)) < 0 ||
            (r = json_add_strv(vm, "Disk", s->disks, false)) < 0 ||
            (r = json_add_bool(vm, "Balloon", s->balloon)) < 0 ||
            (r = json_add_strv(vm, "ExtraArgs", s->extra_args, true)) < 0 ||
            (r = json_add_bool(vm, "Autostart", s->autostart)) < 0 ||
            (r = json_add_sec(vm, "StartTimeoutSec", s->start_timeout_usec)) < 0 ||
            (r = json_add_sec(vm, "StopTimeoutSec", s->stop_timeout_usec)) < 0)
                return r;

        if ((r = json_add_string(mem, "Backend", vm_memory_backend_to_string(s->backend))) < 0 ||
            (r = json_add_bool(mem, "HugePages", s->hugepages)) < 0 ||
            (r = json_add_string_or_null(mem, "Path", s->mem_path)) < 0 ||
            (r = json_add_string(mem, "Policy", vm_memory_policy_to_string(s->policy))) < 0 ||
            (r = json_add_string_or_null(mem, "HostNodes", s->host_nodes)) < 0 ||
            (r = json_add_bool(mem, "Prealloc", s->prealloc)) < 0 ||
            (r = json_add_string_or_null(mem, "MigrateBetween", s->migrate_between)) < 0 ||
            (r = json_add_sec(mem, "MigrateEverySec", s->migrate_every_usec)) < 0 ||
            (r = json_add_uint(mem, "MigrateCount", s->migrate_count)) < 0 ||
            (r = json_add_sec(mem, "MigrateSettleSec", s->migrate_settle_usec)) < 0)
                return r;

        if ((r = json_add_string_or_null(cpu, "VCPUAffinity", s->vcpu_affinity)) < 0 ||
            (r = json_add_string_or_null(cpu, "EmulatorAffinity", s->emulator_affinity)) < 0)
                return r;

        if ((r = json_add_string(restart, "Policy", vm_restart_policy_to_string(s->restart))) < 0 ||
            (r = json_add_sec(restart, "RestartSec", s->restart_usec)) < 0 ||
            (r = json_add_sec(restart, "RestartMaxDelaySec", s->restart_max_usec)) < 0 ||
            (r = json_add_uint(restart, "StartLimitBurst", s->start_limit_burst)) < 0 ||
            (r = json_add_sec(restart, "StartLimitIntervalSec", s->start_limit_interval_usec)) < 0)
                return r;

        if ((r = json_add_uint(balloon, "Floor", s->balloon_floor)) < 0 ||
            (r = json_add_uint(balloon, "Ceiling", s->balloon_ceiling)) < 0 ||
            (r = json_add_string(balloon, "Policy", vm_balloon_policy_to_string(s->balloon_policy))) < 0 ||
            (r = json_add_sec(balloon, "StatsIntervalSec", s->balloon_stats_interval_usec)) < 0 ||
            (r = json_add_string(balloon, "Schedule", balloon_schedule_mode_to_string(s->balloon_schedule.mode))) < 0 ||
            (r = json_add_uint(balloon, "From", s->balloon_schedule.from_bytes)) < 0 ||
            (r = json_add_uint(balloon, "To", s->balloon_schedule.to_bytes)) < 0 ||
            (r = json_add_sec(balloon, "EverySec", s->balloon_schedule.every_usec)) < 0 ||
            (r = json_add_uint(balloon, "Count", s->balloon_schedule.count)) < 0)
                return r;

        if ((r = json_add(root, "VM", TAKE_PTR(vm))) < 0 ||
            (r = json_add(root, "Memory", TAKE_PTR(mem))) < 0 ||
            (r = json_add(root, "CPU", TAKE_PTR(cpu))) < 0 ||
            (r = json_add(root, "Restart", TAKE_PTR(restart))) < 0 ||
            (r = json_add(root, "Balloon", TAKE_PTR(balloon))) < 0)
                return r;

        *ret = TAKE_PTR(root);
        return 0;
}

bool vm_spec_equal(const VmSpec *a, const VmSpec *b) {
        if (a == b)
                return true;
        if (!a || !b)
                return false;

        return streq_ptr(a->name, b->name) &&
                a->memory_bytes == b->memory_bytes &&
                a->vcpus == b->vcpus &&
                streq_ptr(a->machine, b->machine) &&
                a->accel == b->accel &&
                streq_ptr(a->qemu_binary, b->qemu_binary) &&
                streq_ptr(a->cpu_model, b->cpu_model) &&
                streq_ptr(a->kernel, b->kernel) &&
                streq_ptr(a->initrd, b->initrd) &&
                streq_ptr(a->append, b->append) &&
                a->n_disks == b->n_disks &&
                strv_equal(a->disks, b->disks) &&
                a->balloon == b->balloon &&
                a->n_extra_args == b->n_extra_args &&
                strv_equal(a->extra_args, b->extra_args) &&
                a->autostart == b->autostart &&
                a->start_timeout_usec == b->start_timeout_usec &&
                a->stop_timeout_usec == b->stop_timeout_usec &&
                a->backend == b->backend &&
                a->hugepages == b->hugepages &&
                streq_ptr(a->mem_path, b->mem_path) &&
                a->policy == b->policy &&
                streq_ptr(a->host_nodes, b->host_nodes) &&
                a->prealloc == b->prealloc &&
                streq_ptr(a->migrate_between, b->migrate_between) &&
                a->migrate_every_usec == b->migrate_every_usec &&
                a->migrate_count == b->migrate_count &&
                a->migrate_settle_usec == b->migrate_settle_usec &&
                streq_ptr(a->vcpu_affinity, b->vcpu_affinity) &&
                streq_ptr(a->emulator_affinity, b->emulator_affinity) &&
                a->restart == b->restart &&
                a->restart_usec == b->restart_usec &&
                a->restart_max_usec == b->restart_max_usec &&
                a->start_limit_burst == b->start_limit_burst &&
                a->start_limit_interval_usec == b->start_limit_interval_usec &&
                a->balloon_floor == b->balloon_floor &&
                a->balloon_ceiling == b->balloon_ceiling &&
                a->balloon_policy == b->balloon_policy &&
                a->balloon_stats_interval_usec == b->balloon_stats_interval_usec &&
                a->balloon_schedule.mode == b->balloon_schedule.mode &&
                a->balloon_schedule.from_bytes == b->balloon_schedule.from_bytes &&
                a->balloon_schedule.to_bytes == b->balloon_schedule.to_bytes &&
                a->balloon_schedule.every_usec == b->balloon_schedule.every_usec &&
                a->balloon_schedule.count == b->balloon_schedule.count;
}

int vm_spec_copy(const VmSpec *s, VmSpec **ret) {
        _cleanup_free_ char *ini = NULL;
        VmSpecError e = {};
        int r;

        r = vm_spec_to_ini(s, &ini);
        if (r < 0)
                return r;
        r = vm_spec_parse_ini(s->name, ini, s->name, ret, &e);
        vm_spec_error_done(&e);
        return r;
}
