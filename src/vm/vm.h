/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One supervised guest: its definition, its QEMU process (watched through a pidfd), its QMP connection, and
 * the state machine
 *
 *      defined → starting → running → stopping → stopped
 *                    │          │                    ↑
 *                    └──────────┴──→ failed ─(policy)┴→ restarting → starting …
 *
 * Runtime state lives in RUNTIME_DIR/vms/NAME/ (qmp.sock, qga.sock, state, console.log, qemu.log) so that a restarted
 * memvisord can re-adopt running guests (vm_adopt). That directory must be a real directory owned by the daemon's
 * uid; its files are opened and removed relative to it with O_NOFOLLOW, and QEMU gets the console log as an open
 * fd, so that no symbolic link planted there is ever followed. */

#include <json-c/json.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "basic/macro.h"
#include "qga/qga-client.h"
#include "qmp/qmp-client.h"
#include "vm/console-history.h"
#include "vm/restart.h"
#include "vm/vm-spec.h"

#define MESSAGE_ID_VM_STARTED "MESSAGE_ID=3a6e2f1b9c0d4e8f8b7a6c5d4e3f2a10"
#define MESSAGE_ID_VM_STOPPED "MESSAGE_ID=3a6e2f1b9c0d4e8f8b7a6c5d4e3f2a11"
#define MESSAGE_ID_VM_FAILED "MESSAGE_ID=3a6e2f1b9c0d4e8f8b7a6c5d4e3f2a12"
#define MESSAGE_ID_VM_START_LIMIT_HIT "MESSAGE_ID=3a6e2f1b9c0d4e8f8b7a6c5d4e3f2a13"
#define MESSAGE_ID_VM_ADOPTED "MESSAGE_ID=3a6e2f1b9c0d4e8f8b7a6c5d4e3f2a14"
#define MESSAGE_ID_VM_VANISHED "MESSAGE_ID=3a6e2f1b9c0d4e8f8b7a6c5d4e3f2a15"
#define MESSAGE_ID_VM_RESTART_SCHEDULED "MESSAGE_ID=3a6e2f1b9c0d4e8f8b7a6c5d4e3f2a16"
#define MESSAGE_ID_VM_PANICKED "MESSAGE_ID=3a6e2f1b9c0d4e8f8b7a6c5d4e3f2a20"

typedef enum VmState {
        VM_STATE_DEFINED,       /* never started since it was defined (or since the daemon started) */
        VM_STATE_STARTING,      /* QEMU spawned; waiting for QMP and the start-up steps */
        VM_STATE_RUNNING,
        VM_STATE_STOPPING,      /* stop or kill requested; waiting for QEMU to exit */
        VM_STATE_STOPPED,       /* ended on request or by a clean guest shutdown */
        VM_STATE_FAILED,        /* ended otherwise; reason says how */
        VM_STATE_RESTARTING,    /* waiting RestartSec (with backoff) before starting again */
        _VM_STATE_MAX,
        _VM_STATE_INVALID = -EINVAL,
} VmState;

DECLARE_STRING_TABLE(vm_state, VmState);

/* The pidfd or child source that reports QEMU's exit runs after the QMP client's sources: what QEMU wrote
 * before it exited (a SHUTDOWN event, replies) and its EOF are processed first, so the commands still open fail
 * with -ECONNRESET before the exit is handled, always in that order. */
#define VM_PROCESS_EVENT_PRIORITY SD_EVENT_PRIORITY_NORMAL
_Static_assert(QMP_CLIENT_EVENT_PRIORITY < VM_PROCESS_EVENT_PRIORITY, "QMP must run before the process exit");

typedef struct Vm Vm;
typedef struct VmContext VmContext;

/* Observers: called after every state change, and for every QMP event of a guest. */
typedef void (*VmStateWatch)(Vm *vm, VmState old_state, void *userdata);
typedef void (*VmEventWatch)(Vm *vm, const QmpEvent *event, void *userdata);
/* Called when the guest agent's state changes (absent, connecting, ready). */
typedef void (*VmAgentWatch)(Vm *vm, QgaState state, void *userdata);

#define VM_CONTEXT_MAX_WATCHES 16

struct VmContext {
        sd_event *event;
        char *vms_dir;                  /* RUNTIME_DIR/vms */
        int vms_fd;                     /* RUNTIME_DIR/vms, opened without following a symbolic link: every guest's
                                         * directory and file is reached from it, never by a path */
        bool log_to_journal;            /* QEMU output to the journal instead of per-guest qemu.log */
        const char *proc_root;          /* "/proc" */
        const char *sysfs_root;         /* "/": huge pages ([Memory] HugePages=) are read under it */
        /* The guests' console histories: DIR/NAME/boot-N.log (vm-console.c), once vm_context_set_console()
         * named DIR (memvisord: STATE_DIR/consoles); until then no console is kept. */
        char *console_dir;
        int console_fd;
        unsigned console_keep_boots;
        uint64_t console_max_boot_size;
        struct {
                VmStateWatch cb;
                void *userdata;
        } state_watches[VM_CONTEXT_MAX_WATCHES];
        size_t n_state_watches;
        struct {
                VmEventWatch cb;
                void *userdata;
        } event_watches[VM_CONTEXT_MAX_WATCHES];
        size_t n_event_watches;
        struct {
                VmAgentWatch cb;
                void *userdata;
        } agent_watches[VM_CONTEXT_MAX_WATCHES];
        size_t n_agent_watches;
        /* Called while a guest starts paused (its definition has [CPU] affinities), once the vCPU thread ids are
         * known and before "cont"; a negative return kills the guest. Set by the NUMA module (pinning). */
        int (*prerun)(Vm *vm, void *userdata);
        void *prerun_userdata;
};

int vm_context_init(VmContext *ctx, sd_event *event, const char *runtime_dir, bool log_to_journal);
void vm_context_done(VmContext *ctx);
/* Where the console histories go (NULL: no change), how many boots each keeps and each boot's size bound
 * (clamped to CONSOLE_KEEP_BOOTS_MAX and CONSOLE_BOOT_SIZE_MIN..MAX); applies from the next boot. */
int vm_context_set_console(VmContext *ctx, const char *dir, unsigned keep_boots, uint64_t max_boot_size);
/* Opens CONSOLE_DIR/NAME (made first if create), never through a link, only if it is ours. */
int vm_console_dir_open(VmContext *ctx, const char *name, bool create);
/* Removes CONSOLE_DIR/NAME and its boot files (an undefined guest). */
int vm_console_remove(VmContext *ctx, const char *name);
int vm_context_add_state_watch(VmContext *ctx, VmStateWatch cb, void *userdata);
int vm_context_add_event_watch(VmContext *ctx, VmEventWatch cb, void *userdata);
int vm_context_add_agent_watch(VmContext *ctx, VmAgentWatch cb, void *userdata);

typedef struct VmVcpu {
        unsigned index;
        pid_t thread_id;
} VmVcpu;

typedef struct VmExit {
        bool valid;
        bool status_known;      /* false for adopted guests: not our child, no wait status */
        int code;               /* exit code, or -1 */
        int signal;             /* terminating signal, or 0 */
        char *shutdown_reason;  /* QMP SHUTDOWN reason seen before the exit, if any */
        char *description;      /* human-readable: "killed by signal KILL", "exited with status 1", … */
        uint64_t realtime_usec;
        uint64_t console_boot;  /* the boot of the console history that ended so (0: none kept) */
        bool panicked;          /* GUEST_PANICKED, a SHUTDOWN for guest-panic or a kernel panic line */
        char **panic_lines;     /* that boot's panic lines (escaped), when it panicked */
} VmExit;

/* The host's Committed_AS (/proc/meminfo) read just before QEMU is spawned and once the guest runs (QMP up,
 * so any Prealloc= is over): the difference is what the start added to the host-wide commit charge, with
 * whatever else the host did meanwhile. */
typedef struct VmCommitCharge {
        bool have_before, have_after;
        uint64_t before_bytes, after_bytes;
} VmCommitCharge;

/* [CPU] EmulatorAffinity= checked at the first QMP greeting (vm-placement.c): every QEMU thread's allowed CPUs
 * (/proc/PID/task/TID/status Cpus_allowed_list) against it, before the vCPUs are pinned and continued. The
 * threads of QEMU's thread-context objects (prealloc-context=, bound to their backend's host nodes by design)
 * are counted apart. */
typedef struct VmEmulatorCheck {
        bool done;
        int error;                      /* < 0: the threads could not be read */
        char *affinity;                 /* the EmulatorAffinity= checked against */
        unsigned threads;               /* QEMU's threads read, the thread-context ones excepted */
        unsigned outside;               /* of them, allowed on a CPU outside affinity */
        unsigned context_threads;
        char *first_outside;            /* "thread TID (NAME) may run on CPUs LIST" of the first outside */
} VmEmulatorCheck;

typedef enum VmTimer {
        VM_TIMER_NONE,
        VM_TIMER_START,         /* start timeout */
        VM_TIMER_STOP_TERM,     /* powerdown grace over → SIGTERM */
        VM_TIMER_STOP_KILL,     /* SIGTERM grace over → SIGKILL */
        VM_TIMER_RESTART,       /* restart delay over → start */
} VmTimer;

struct Vm {
        VmContext *ctx;
        char *name;
        char *log_field;                /* "VM=name" for journal entries */
        VmSpec *spec;                   /* the definition; applies from the next start */
        VmSpec *running_spec;           /* what the current QEMU was started with */
        VmSpec *variant;                /* an experiment's variant (issue 16): started instead of spec while set */
        char *variant_label;            /* its description ("experiment ID variant B"), for DescribeVM */
        char *running_variant;          /* variant_label when the current QEMU was started; NULL: spec */
        char *source;                   /* .vm file it came from; NULL when defined over the API */
        bool transient;                 /* adopted without a definition: forgotten once it ends */
        char *definition_problem;       /* its .vm file was refused at the last reload (StrictModes, a parse
                                         * error) and the previous definition is kept: why, in words */

        VmState state;
        char *reason;
        uint64_t state_since_realtime;

        pid_t pid;
        int pidfd;
        uint64_t starttime;             /* /proc/PID/stat field 22 */
        bool adopted;
        sd_event_source *process_source;
        uint64_t started_monotonic;
        uint64_t started_realtime;

        char *run_dir, *qmp_path, *qga_path, *console_path, *log_path, *state_path;
        QmpClient *qmp;
        QgaClient *qga;                 /* the guest agent, while a QEMU with the agent port runs; NULL otherwise */
        char **argv;
        VmAccel accel;
        bool start_paused;
        bool start_done;                /* start-up steps over (QMP up, vCPUs known, cont sent) */
        char *qemu_status;              /* query-status / STOP / RESUME: running, paused, … */
        char *qemu_version;
        VmVcpu *vcpus;
        size_t n_vcpus;
        char *shutdown_reason;
        bool start_timed_out;
        char *kvm_failure;              /* Accelerator=auto fell back to TCG: how QEMU failed under KVM */

        sd_event_source *timer;
        VmTimer timer_kind;

        bool stop_requested;
        bool restart_requested;
        unsigned restarts;
        RestartTracker tracker;
        VmExit last_exit;
        VmCommitCharge commit;          /* of the current or last start */
        VmEmulatorCheck emulator_check; /* of the current or last start */

        /* The console (vm-console.c): the pipe QEMU writes into and the current boot's file. */
        int console_pipe;
        uint64_t console_pipe_ino;
        sd_event_source *console_source;
        ConsoleWriter console;
        uint64_t console_boot;          /* the current or last boot's number; 0: none */
        bool console_write_failed;
        const char *console_panic_how;  /* a panic was seen in this boot: how (a static string) */
        bool console_panic_logged;
        char **console_panic_lines;
        sd_event_source *console_panic_timer;
};

int vm_new(VmContext *ctx, VmSpec *spec, const char *source, Vm **ret);
Vm *vm_free(Vm *vm);
DEFINE_TRIVIAL_CLEANUP_FUNC(Vm *, vm_free);

/* Replaces the definition (takes ownership); a running guest keeps its old one until it restarts. */
void vm_set_spec(Vm *vm, VmSpec *spec, const char *source);

/* Sets (takes ownership) or clears (NULL) the variant the next starts use instead of the definition; label says
 * whose it is. The definition itself is untouched: clearing the variant and restarting gives the guest back. */
void vm_set_variant(Vm *vm, VmSpec *variant, const char *label);

/* Starts the guest; on failure *ret_error (optional) says why in words, and the guest is failed. Starting a
 * guest that is starting or running is a no-op. A start requested by the user resets the start limit. */
int vm_start(Vm *vm, char **ret_error);
/* Graceful stop: system_powerdown, SIGTERM after StopTimeoutSec, SIGKILL 10 s later. No-op when not running. */
int vm_stop(Vm *vm);
/* Sends a signal (SIGKILL by default) now; the guest is not restarted by policy. -ESRCH when not running. */
int vm_kill(Vm *vm, int sig);
/* Stop (if running), then start. */
int vm_restart(Vm *vm, char **ret_error);

bool vm_is_active(const Vm *vm);       /* a QEMU process exists */

/* Re-adopts a guest from RUNTIME_DIR/vms/NAME/state. -ESRCH when the process is gone (the state is then
 * cleaned up); the caller reports it. state is the parsed state file. */
int vm_adopt(Vm *vm, json_object *state);
/* Reads and parses a state file. */
int vm_state_file_read(const char *path, json_object **ret);
/* Removes the runtime files of a guest that is not running (state and QMP socket; logs are kept). Only in a real
 * directory RUNTIME_DIR/vms/NAME: a symbolic link there is left alone, and so is its target. */
void vm_cleanup_runtime(VmContext *ctx, const char *name);
/* Removes RUNTIME_DIR/vms/NAME of a guest that is not running, with its files (state, qmp.sock, console.log,
 * qemu.log), each by name relative to the directory, never through a link. When NAME is a symbolic link only
 * the link goes, and 1 is returned; 0 when the directory went (or was not there); -ENOTEMPTY when other files
 * keep it. */
int vm_remove_runtime_dir(VmContext *ctx, const char *name);

/* [Memory] on this host (vm-memory.c). At definition: huge pages of HugePageSize= must be a size the host offers
 * (else *ret_field and *ret_reason, -EOPNOTSUPP). Before a start: enough free huge pages (Memory= and HotplugSize=,
 * whose virtio-mem backend has the same page size) on the host and on the
 * bound nodes, a hugetlbfs Path= of the right size (else *ret_reason with the figures). Both: every host node a
 * GuestNode= is bound to is online (sysfs_root/sys/devices/system/node/online). sysfs_root: "/". */
int vm_memory_check_definition(const VmSpec *spec, const char *sysfs_root, const char **ret_field,
                               char **ret_reason);
int vm_memory_check_start(const VmSpec *spec, const char *sysfs_root, char **ret_reason);
/* after − before of the last start (valid when vm->commit.have_after). */
int64_t vm_commit_charge_bytes(const Vm *vm);

/* JSON views for the API. */
int vm_summary_json(Vm *vm, json_object **ret);
int vm_describe_json(Vm *vm, json_object **ret);
