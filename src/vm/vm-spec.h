/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A guest definition: parsed from a .vm file (systemd-style INI, memvisor.vm(5)) or from the JSON form that
 * DefineVM takes, which has the same sections and keys: {"VM": {"Memory": "512M", "VCPUs": 2}, "Restart":
 * {...}}. Values in JSON may be strings, numbers or booleans (converted to their text), or arrays of those for
 * keys that may repeat (Disk=). Both forms go through the same key table, so they accept exactly the same
 * things. Errors name the place: "FILE:LINE: reason" for files, "VM.Memory: reason" for JSON. */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "balloon/balloon-util.h"
#include "basic/macro.h"
#include "numa/numa-topology.h"

typedef enum VmAccel {
        VM_ACCEL_AUTO,          /* KVM when /dev/kvm is usable, else TCG */
        VM_ACCEL_KVM,
        VM_ACCEL_TCG,
        _VM_ACCEL_MAX,
        _VM_ACCEL_INVALID = -EINVAL,
} VmAccel;

typedef enum VmMemoryBackend {
        VM_MEMORY_BACKEND_RAM,
        VM_MEMORY_BACKEND_MEMFD,
        VM_MEMORY_BACKEND_FILE,
        _VM_MEMORY_BACKEND_MAX,
        _VM_MEMORY_BACKEND_INVALID = -EINVAL,
} VmMemoryBackend;

typedef enum VmMemoryPolicy {
        VM_MEMORY_POLICY_DEFAULT,
        VM_MEMORY_POLICY_BIND,
        VM_MEMORY_POLICY_PREFERRED,
        VM_MEMORY_POLICY_INTERLEAVE,
        _VM_MEMORY_POLICY_MAX,
        _VM_MEMORY_POLICY_INVALID = -EINVAL,
} VmMemoryPolicy;

typedef enum VmRestartPolicy {
        VM_RESTART_NO,
        VM_RESTART_ON_FAILURE,
        VM_RESTART_ALWAYS,
        _VM_RESTART_MAX,
        _VM_RESTART_INVALID = -EINVAL,
} VmRestartPolicy;

DECLARE_STRING_TABLE(vm_accel, VmAccel);
DECLARE_STRING_TABLE(vm_memory_backend, VmMemoryBackend);
DECLARE_STRING_TABLE(vm_memory_policy, VmMemoryPolicy);
DECLARE_STRING_TABLE(vm_restart_policy, VmRestartPolicy);

typedef enum VmBalloonPolicy {
        VM_BALLOON_POLICY_INHERIT,      /* memvisord.conf [Balloon] Policy= decides */
        VM_BALLOON_POLICY_YES,
        VM_BALLOON_POLICY_NO,
        _VM_BALLOON_POLICY_MAX,
        _VM_BALLOON_POLICY_INVALID = -EINVAL,
} VmBalloonPolicy;

DECLARE_STRING_TABLE(vm_balloon_policy, VmBalloonPolicy);

/* [Memory] Share=: QEMU's own default differs per backend (memfd shared, ram and file private). */
typedef enum VmMemoryShare {
        VM_MEMORY_SHARE_DEFAULT,        /* no share= option: the backend's default */
        VM_MEMORY_SHARE_YES,
        VM_MEMORY_SHARE_NO,
        _VM_MEMORY_SHARE_MAX,
        _VM_MEMORY_SHARE_INVALID = -EINVAL,
} VmMemoryShare;

DECLARE_STRING_TABLE(vm_memory_share, VmMemoryShare);

/* [VM] Confidential=: a guest whose memory is encrypted and private to it (AMD SEV, SEV-SNP, Intel TDX). */
typedef enum VmConfidential {
        VM_CONFIDENTIAL_NO,
        VM_CONFIDENTIAL_SEV,
        VM_CONFIDENTIAL_SEV_SNP,
        VM_CONFIDENTIAL_TDX,
        _VM_CONFIDENTIAL_MAX,
        _VM_CONFIDENTIAL_INVALID = -EINVAL,
} VmConfidential;

DECLARE_STRING_TABLE(vm_confidential, VmConfidential);

#define VM_NAME_MAX 64
#define VM_MAX_DISKS 16
#define VM_MAX_VCPUS 512
#define VM_MAX_EXTRA_ARGS 256
#define VM_MAX_GUEST_NODES 8
#define VM_VCPU_AFFINITY_NODE "node"
#define VM_MAX_GUEST_DISTANCES (VM_MAX_GUEST_NODES * (VM_MAX_GUEST_NODES - 1))
#define VM_ARG_MAX (128U * 1024U)
#define VM_DIRTY_RING_MIN 1024U        /* QEMU and KVM: a power of two; KVM reserves some entries, so fewer are */
#define VM_DIRTY_RING_MAX 65536U       /* useless; KVM_DIRTY_RING_MAX_ENTRIES */      /* MAX_ARG_STRLEN: execve(2) refuses a longer argument */

typedef struct VmSpec {
        /* [VM] */
        char *name;                     /* Name=; [a-zA-Z0-9_.-], 1..64 chars, not starting with '.' or '-' */
        uint64_t memory_bytes;          /* Memory=, default 512M; multiple of 1 MiB, 16M … 16T */
        unsigned vcpus;                 /* VCPUs=, default 1; 1 … 512 */
        char *machine;                  /* Machine=, default "q35" */
        VmAccel accel;                  /* Accelerator=, default auto */
        VmConfidential confidential;    /* Confidential=, default no (vm-confidential.c: host support, what
                                         * the daemon refuses for such a guest) */
        char *cpu_model;                /* CPUModel=, default NULL → "host" under KVM, "max" under TCG;
                                         * passed as -cpu VALUE ([A-Za-z0-9_.,=+-]) */
        char *qemu_binary;              /* Emulator=, default NULL → "qemu-system-x86_64" from PATH */
        char *kernel;                   /* Kernel=, absolute path */
        char *initrd;                   /* Initrd=, absolute path, needs Kernel= */
        char *append;                   /* Append=, needs Kernel= */
        char **disks;                   /* Disk=, repeatable, absolute paths; NULL-terminated */
        size_t n_disks;
        bool balloon;                   /* Balloon=, default yes: -device virtio-balloon-pci,id=balloon0 */
        bool guest_agent;               /* GuestAgent=, default yes: a virtio-serial port org.qemu.guest_agent.0
                                         * whose host side is RUNTIME_DIR/vms/NAME/qga.sock (src/qga) */
        char **extra_args;              /* ExtraArgs=, split like a shell (quotes, backslash), no expansion;
                                         * passed verbatim and unchecked; NULL-terminated */
        size_t n_extra_args;
        bool autostart;                 /* Autostart=, default no */
        uint64_t start_timeout_usec;    /* StartTimeoutSec=, default 30s: QMP must answer within */
        uint64_t stop_timeout_usec;     /* StopTimeoutSec=, default 30s: system_powerdown → SIGTERM after */

        /* [Memory] */
        VmMemoryBackend backend;        /* Backend=, default ram */
        bool hugepages;                 /* HugePages=, default no (memfd: hugetlb=on; file: needs Path= on hugetlbfs) */
        char *mem_path;                 /* Path=, file backend only (required there): mem-path= */
        VmMemoryPolicy policy;          /* Policy=, default "default" */
        char *host_nodes;               /* HostNodes=, a node list like "0", "0-1", "0,2-3"; required for
                                         * bind/preferred/interleave, forbidden with default; normalized */
        bool prealloc;                  /* Prealloc=, default no */
        uint64_t hugepage_size;         /* HugePageSize=, a power of two from 64K to 16G, needs HugePages=yes;
                                         * 0: the host's default huge page size */
        VmMemoryShare share;            /* Share=, default: the backend's own (share=on/off) */
        bool reserve;                   /* Reserve=, default yes (no: reserve=off, MAP_NORESERVE) */
        unsigned prealloc_threads;      /* PreallocThreads=, 0: QEMU's default (1); needs Prealloc=yes */
        bool merge;                     /* Merge=, default yes (no: merge=off, no KSM) */
        bool dump;                      /* Dump=, default yes (no: dump=off, left out of core dumps) */
        /* Ping-pong page migration, started by the NUMA module each time the guest reaches running (as
         * MigratePages with between/count/everyUSec/settleUSec); all of Between/Every/Count or none. */
        char *migrate_between;          /* MigrateBetween=, two different host nodes below 64, "A,B" ascending
                                         * (the first move goes A → B); NULL: no schedule */
        uint64_t migrate_every_usec;    /* MigrateEverySec=, > 0 and at most 24h; 0: unset */
        unsigned migrate_count;         /* MigrateCount=, moves in all, 1 … 10000; 0: unset */
        uint64_t migrate_settle_usec;   /* MigrateSettleSec=, default 1s, at most 10min */
        unsigned dirty_ring;            /* DirtyRing=, KVM's dirty ring entries per vCPU: 0 (default, none) or a
                                         * power of two 1024 … 65536, as -accel kvm,dirty-ring-size=N; refused with
                                         * Accelerator=tcg, left out (with a warning) when auto falls back to TCG */
        /* virtio-mem (memory added and removed in device blocks, the balloon's complement): a memory-backend
         * "vmem0" of HotplugSize= and a virtio-mem-pci "vmem0dev" on it, with -m …,maxmem=MaxMemory,slots=1. */
        uint64_t max_memory_bytes;      /* MaxMemory=, default 0: Memory= + HotplugSize=; at least that, at most
                                         * 16T, a whole number of MiB */
        uint64_t hotplug_bytes;         /* HotplugSize=, default 0 (no virtio-mem device); a multiple of the
                                         * device's block size (vm_spec_hotplug_block_size) */
        unsigned hotplug_node;          /* HotplugNode=, default 0: the guest NUMA node the device's memory is in */
        /* Guest NUMA nodes (memvisor.vm(5) GuestNode=): node N is the Nth GuestNode= line, each
         * "SIZE [cpus=LIST] [policy=P [hostnodes=LIST]]" in the canonical form (vm-spec-numa.c reads them);
         * with none the guest has one node and the backend of the keys above. */
        char **guest_nodes;             /* GuestNode=, repeatable, at most VM_MAX_GUEST_NODES */
        size_t n_guest_nodes;
        char **guest_distances;         /* GuestDistance=, repeatable "A B DISTANCE", canonical */
        size_t n_guest_distances;

        /* [CPU] (applied by the NUMA module before the vCPUs first run; see VmContext.prerun) */
        char *vcpu_affinity;            /* VCPUAffinity=, "0:2 1:3-4" (vCPU:CPU list), normalized, or "node"
                                         * (VM_VCPU_AFFINITY_NODE: each vCPU within the host CPUs of its guest
                                         * node's host nodes, vm_spec_vcpu_affinity_map()); NULL: none */
        char *emulator_affinity;        /* EmulatorAffinity=, CPU list for QEMU's other threads; NULL: none */

        /* [Restart] */
        VmRestartPolicy restart;        /* Policy=, default no */
        uint64_t restart_usec;          /* RestartSec=, default 1s */
        uint64_t restart_max_usec;      /* RestartMaxDelaySec=, default 1min; backoff doubles up to this */
        unsigned start_limit_burst;     /* StartLimitBurst=, default 5 */
        uint64_t start_limit_interval_usec; /* StartLimitIntervalSec=, default 60s */

        /* [Balloon] (manager-balloon.c; needs [VM] Balloon=yes) */
        uint64_t balloon_floor;         /* Floor=, default 0: balloon targets below are refused */
        uint64_t balloon_ceiling;       /* Ceiling=, default 0: Memory=; the policy gives no more */
        VmBalloonPolicy balloon_policy; /* Policy=, default inherit */
        uint64_t balloon_stats_interval_usec; /* StatsIntervalSec=, default 0: memvisord.conf; whole seconds */
        BalloonSchedule balloon_schedule; /* Schedule= (none), From=, To=, EverySec=, Count=: started at start */
} VmSpec;

/* A parse or validation problem: where (file:line or JSON field path) and why. */
typedef struct VmSpecError {
        char *field;                    /* "VM.Memory" (section.key), or NULL for a syntax error */
        char *message;                  /* full text: "web.vm:3: Invalid value '12Q' for Memory=: …" */
} VmSpecError;

void vm_spec_error_done(VmSpecError *e);

VmSpec *vm_spec_new(void);              /* with every default set */
VmSpec *vm_spec_free(VmSpec *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(VmSpec *, vm_spec_free);

bool vm_name_is_valid(const char *name);

/* Parses INI text. filename is used in messages and, when the text has no Name=, gives the name (basename
 * without ".vm"); name_hint (may be NULL) overrides that (e.g. the name given to DefineVM). A Name= that
 * disagrees with the file name is an error. Validates the result (vm_spec_validate). */
int vm_spec_parse_ini(const char *filename, const char *text, const char *name_hint, VmSpec **ret,
                      VmSpecError *ret_error);
int vm_spec_parse_file(const char *path, VmSpec **ret, VmSpecError *ret_error);
int vm_spec_parse_json(json_object *definition, const char *name_hint, VmSpec **ret, VmSpecError *ret_error);

/* Cross-field checks (Initrd without Kernel, neither kernel nor disk, Policy without HostNodes, file backend
 * without Path, HugePages with ram backend, RestartMaxDelaySec < RestartSec, …). */
int vm_spec_validate(const VmSpec *s, VmSpecError *ret_error);

/* virtio-mem: the device's block size (QEMU's default: 2 MiB, or the huge page size when larger) and the
 * maxmem= the guest gets (0: none, no HotplugSize=). */
uint64_t vm_spec_hotplug_block_size(const VmSpec *s);
uint64_t vm_spec_max_memory(const VmSpec *s);

/* Canonical INI text (every key, defaults included) — parsing it gives an equal spec. */
int vm_spec_to_ini(const VmSpec *s, char **ret);
/* JSON form with the same sections/keys, typed values (numbers for counts and bytes, booleans, strings). */
int vm_spec_to_json(const VmSpec *s, json_object **ret);
bool vm_spec_equal(const VmSpec *a, const VmSpec *b);
/* A deep copy, key by key. */
int vm_spec_copy(const VmSpec *s, VmSpec **ret);

/* Variants of a guest (the [Matrix] of an experiment, memvisor.experiment(5)): name is "Section.Key", or a Key
 * that only one section has ("Append"); the guest's Name= and the list keys (Disk=, ExtraArgs=) cannot vary.
 * Resolves the name to its key (the strings are static), or says why not in *ret_reason. */
int vm_spec_key_resolve(const char *name, const char **ret_section, const char **ret_key, char **ret_reason);
/* A copy of base with names[i]=values[i] applied, in order, as lines of a .vm file would be (an empty value
 * resets the key), then validated, and the files the copy names (Kernel=, Initrd=, Disk=) checked to be there
 * and readable. On bad input -EINVAL (or the errno of a file) with *ret_field ("VM.Kernel") and *ret_reason. */
int vm_spec_with_settings(const VmSpec *base, char *const *names, char *const *values, size_t n, VmSpec **ret,
                          char **ret_field, char **ret_reason);

/* The keys of the .vm format (memvisor.vm(5)) in the order of the canonical INI text, for i = 0, 1, … until it
 * returns false. multiple: the key may repeat (an array in JSON). */
bool vm_spec_key_get(size_t i, const char **ret_section, const char **ret_key, bool *ret_multiple);

/* A guest NUMA node (GuestNode=, vm-spec-numa.c). */
typedef struct VmGuestNode {
        uint64_t size_bytes;
        char *cpus;                     /* vCPU list "0-1,3", canonical; NULL: no vCPUs (a memory-only node) */
        VmMemoryPolicy policy;          /* its backend's policy= */
        char *host_nodes;               /* its backend's host-nodes, canonical; NULL with policy default */
} VmGuestNode;

void vm_guest_node_done(VmGuestNode *n);
/* One GuestNode= value as written; policy is _VM_MEMORY_POLICY_INVALID when the line has none. */
int vm_guest_node_parse(const char *text, VmGuestNode *ret, char **ret_reason);
int vm_guest_node_format(const VmGuestNode *n, char **ret);
/* Guest node i of a validated spec, with [Memory] Policy= and HostNodes= when its line has no policy=. */
int vm_spec_guest_node(const VmSpec *s, size_t i, VmGuestNode *ret);
/* One GuestDistance= value: ret = { from, to, distance }. */
int vm_guest_distance_parse(const char *text, unsigned ret[static 3], char **ret_reason);

/* VCPUAffinity=: the vCPU pin map to apply on this host ("0:2 1:3-4"), in *ret_map; NULL when there is none.
 * For "node" each vCPU gets the CPUs of its guest node's host nodes in t; a host node that is not in t, or has
 * no CPUs, is -ENOENT with *ret_reason. */
int vm_spec_vcpu_affinity_map(const VmSpec *s, const NumaTopology *t, char **ret_map, char **ret_reason);
