/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The host side of an experiment's provenance, collected once before its first iteration: which kernel, CPU,
 * KVM configuration, memory policy and NUMA layout the numbers were measured on. Every path is read below a
 * root directory ("/" on a host, a fixture tree in tests); the kernel's identity comes from
 * /proc/sys/kernel/{osrelease,version,hostname} (what uname(2) reports) so that it, too, follows the root.
 *
 * An item that cannot be read is recorded as unavailable with the reason ("/proc/cmdline: No such file or
 * directory", "kvm module not loaded"), never as an empty or zero value. Collecting reads a few dozen small
 * files of /proc and /sys, each with a size bound, and never runs a program; provenance_collect_qemu() is the
 * one blocking part (it runs QEMU) and belongs in a worker thread (basic/worker.h), never on the event loop.
 *
 * JSON shape (provenance_to_json(); keys in this order; an ITEM is its value when available and
 * {"unavailable": "reason"} otherwise):
 *   {
 *     "memvisorVersion": "0.1.0",
 *     "collectedRealtimeUSec": 1796000000000000,        CLOCK_REALTIME at collection
 *     "collectedAt": "2026-12-04T20:30:00.123456Z",      the same, UTC
 *     "kernel": {"release": ITEM string, "version": ITEM string, "hostname": ITEM string,
 *                "cmdline": ITEM string},
 *     "cpu": {"vendor": ITEM string, "modelName": ITEM string, "family": ITEM int, "model": ITEM int,
 *             "stepping": ITEM int, "microcode": ITEM string,    from the first processor of /proc/cpuinfo
 *             "processors": ITEM int,                            processor entries in /proc/cpuinfo
 *             "uniform": ITEM bool,                              every processor has the first one's vendor,
 *                                                                model name, family, model, stepping, microcode
 *             "online": ITEM string},                            /sys/devices/system/cpu/online, "0-3"
 *     "kvm": {"parameters": ITEM {"name": "value", …},          /sys/module/kvm/parameters, every file, by name
 *             "vendor": ITEM {"kvm_intel": {"name": "value", …}, …},   every loaded /sys/module/kvm_* module
 *             "device": {"usable": bool, "apiVersion": int} or {"usable": false, "reason": string}},
 *                                                                a parameter that cannot be read is ITEM too
 *     "memory": {"thpEnabled": ITEM string, "thpDefrag": ITEM string,   the [selected] value
 *                "thpKhugepagedDefrag": ITEM string, "numaBalancing": ITEM int,
 *                "overcommitMemory": ITEM int, "overcommitRatio": ITEM int},
 *     "numa": ITEM {"nodes": [{"node", "cpus", "memTotalBytes", "memFreeBytes", "distances"}], "onlineCPUs"},
 *     "perfEventParanoid": ITEM int,
 *     "qemu": {"binary": ITEM string, "version": ITEM string}      first line of `qemu-system-… --version`
 *   }
 * Module parameter values are the sysfs text without its trailing newline ("Y", "N", "200000", "auto").
 * Text that is not valid UTF-8 is recorded as unavailable, so the JSON is always valid UTF-8. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"
#include "numa/numa-topology.h"

/* Bounds on what one collection holds. */
#define PROVENANCE_PARAMETERS_MAX 512U      /* per module */
#define PROVENANCE_VENDOR_MODULES_MAX 8U
#define PROVENANCE_DIFF_DEPTH_MAX 32U

/* Each item: available (the value set, unavailable NULL) or not (unavailable says why). A zeroed item reads
 * as unavailable ("not collected"), never as an empty or zero value. */
typedef struct ProvenanceText {
        char *value;
        char *unavailable;
} ProvenanceText;

typedef struct ProvenanceInt {
        bool available;
        int64_t value;
        char *unavailable;
} ProvenanceInt;

typedef struct ProvenanceBool {
        bool available;
        bool value;
        char *unavailable;
} ProvenanceBool;

typedef struct ProvenanceParameter {
        char *name;
        ProvenanceText value;
} ProvenanceParameter;

typedef struct ProvenanceModule {
        char *name;                             /* "kvm", "kvm_intel", "kvm_amd", … */
        char *unavailable;                      /* "kvm module not loaded"; NULL when the parameters were listed */
        ProvenanceParameter *parameters;        /* sorted by name */
        size_t n_parameters;
} ProvenanceModule;

typedef struct Provenance {
        char *memvisor_version;
        uint64_t collected_usec;                /* CLOCK_REALTIME */

        ProvenanceText kernel_release, kernel_version, hostname, kernel_cmdline;

        ProvenanceText cpu_vendor, cpu_model_name, cpu_microcode;
        ProvenanceInt cpu_family, cpu_model, cpu_stepping, cpu_processors;
        ProvenanceBool cpu_uniform;
        ProvenanceText cpu_online;

        ProvenanceModule kvm;
        ProvenanceModule *kvm_vendor;           /* the loaded kvm_* modules, sorted by name */
        size_t n_kvm_vendor;
        char *kvm_vendor_unavailable;           /* set when no vendor module is loaded (or none could be listed) */
        bool kvm_device_usable;
        int kvm_api_version;                    /* KVM_GET_API_VERSION when usable */
        char *kvm_device_reason;                /* why /dev/kvm is not usable */

        ProvenanceText thp_enabled, thp_defrag, thp_khugepaged_defrag;
        ProvenanceInt numa_balancing, overcommit_memory, overcommit_ratio;

        NumaTopology *numa;                     /* NULL when numa_unavailable says why */
        char *numa_unavailable;

        ProvenanceInt perf_event_paranoid;

        ProvenanceText qemu_binary, qemu_version;       /* "not collected" until provenance_set_qemu…() */
} Provenance;

/* Reads everything below root (NULL → "/"). Fails only on -ENOMEM or a bad root (-EINVAL: not absolute);
 * everything the host does not provide becomes an unavailable item. */
int provenance_collect(const char *root, Provenance *ret);
void provenance_done(Provenance *p);

/* Records the QEMU binary and its version string (the first line of its --version output). */
int provenance_set_qemu_version(Provenance *p, const char *binary, const char *version);
/* Records the binary and why its version is unknown. */
int provenance_set_qemu_unavailable(Provenance *p, const char *binary, const char *reason);

/* BLOCKING (fork, exec and wait, up to timeout_usec): for a worker thread, never the event loop. Runs
 * `BINARY --version` with stdin on /dev/null and returns the first line of its standard output (at most 4 KiB
 * is read). -ENOENT/-EACCES: cannot be run; -ETIMEDOUT: no exit in time (the child is killed); -EBADMSG: it
 * exited non-zero, by a signal, or printed nothing. */
int provenance_read_qemu_version(const char *binary, uint64_t timeout_usec, char **ret_version);
/* provenance_read_qemu_version() and then provenance_set_qemu_version() or, with the reason,
 * provenance_set_qemu_unavailable(). BLOCKING, for a worker thread. Fails only on -ENOMEM. */
int provenance_collect_qemu(Provenance *p, const char *binary, uint64_t timeout_usec);

/* The JSON shape above. */
int provenance_to_json(const Provenance *p, json_object **ret);

/* Differences between two provenance JSON objects (as provenance_to_json() wrote them, possibly read back
 * from disk). Both are flattened to leaves named by their path: object members joined with '.', array
 * elements as [i] ("kernel.release", "kvm.vendor.kvm_intel.ept", "numa.nodes[1].cpus"); an
 * {"unavailable": …} object, an empty object and an empty array are leaves. A difference is a path whose
 * leaves are not equal, or that exists on one side only. Order: a's paths in document order, then the paths
 * only b has. */
typedef enum ProvenanceDiffFlags {
        /* Leave out what differs between any two collections: collectedRealtimeUSec, collectedAt and
         * numa.nodes[*].memFreeBytes. */
        PROVENANCE_DIFF_SKIP_VOLATILE = 1 << 0,
} ProvenanceDiffFlags;

typedef struct ProvenanceDifference {
        char *key;
        json_object *a;         /* a reference (json_object_get); NULL when the path is only in b */
        json_object *b;         /* NULL when the path is only in a */
} ProvenanceDifference;

typedef struct ProvenanceDiff {
        ProvenanceDifference *differences;
        size_t n_differences;
} ProvenanceDiff;

/* a and b must be objects (-EINVAL); nesting deeper than PROVENANCE_DIFF_DEPTH_MAX → -E2BIG. */
int provenance_diff(json_object *a, json_object *b, ProvenanceDiffFlags flags, ProvenanceDiff *ret);
void provenance_diff_done(ProvenanceDiff *d);
/* [{"key": "kernel.release", "a": "6.1.0", "b": "6.12.0"}, …]; "a" or "b" is absent where that side lacks
 * the path. */
int provenance_diff_to_json(const ProvenanceDiff *d, json_object **ret);
