/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the parts of a Vm share: vm.c (state machine, process lifecycle, start, stop, adoption), vm-qmp.c (the
 * QMP connection: handshake, start-up queries, events), vm-runtime.c (RUNTIME_DIR/vms/NAME and its files) and
 * vm-json.c (the API's JSON views). */

#include <time.h>

#include "basic/log.h"
#include "basic/strv.h"
#include "numa/cpu-set.h"
#include "vm/qemu-argv.h"
#include "vm/vm.h"

#define QMP_COMMAND_TIMEOUT_USEC (10 * USEC_PER_SEC)

#define log_vm(vm, level, error, ...) log_struct(level, error, STRV((vm)->log_field), __VA_ARGS__)
#define log_vm_id(vm, level, error, id, ...) log_struct(level, error, STRV((vm)->log_field, id), __VA_ARGS__)

static inline uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* vm.c */
void vm_set_state(Vm *vm, VmState state, const char *reason);
void vm_disarm_timer(Vm *vm);
void vm_signal(Vm *vm, int sig);
/* Whether QEMU has exited (its pidfd is readable), though the exit may not have been handled yet. */
bool vm_process_exited(Vm *vm);

/* vm-qmp.c */
/* Takes fd (a connected QMP socket), or connects to vm->qmp_path when fd < 0; replaces vm->qmp. */
int vm_connect_qmp(Vm *vm, int fd);
void vm_release_qmp(Vm *vm);

/* vm-agent.c */
/* Creates the agent client when the running QEMU has the agent port (replacing any), else leaves vm->qga NULL. */
int vm_connect_agent(Vm *vm);
void vm_release_agent(Vm *vm);
void vm_agent_on_qmp_running(Vm *vm);
void vm_agent_on_port_change(Vm *vm, const char *id, bool open);

/* vm-memory.c */
void vm_commit_charge_before(Vm *vm);
void vm_commit_charge_after(Vm *vm);
int vm_commit_charge_json(const Vm *vm, json_object *o);
/* vm-placement.c */
/* The CPU set QEMU is executed with: 0 without EmulatorAffinity= (*ret untouched), 1 with it in *ret; an
 * offline CPU → -EINVAL and *ret_reason naming the key, the CPUs and the online ones. */
int vm_emulator_affinity(const VmSpec *spec, const char *sysfs_root, cpu_set_t *ret, char **ret_reason);
/* The host nodes (bit N: node N) none of whose CPUs this process may run on (memory-only nodes, or outside our
 * cpuset): QEMU cannot put a backend's preallocation threads there (QemuArgvParams.nodes_without_cpus). */
uint64_t vm_nodes_without_cpus(const char *sysfs_root);
/* The Cpus_allowed_list of a /proc/PID/task/TID/status text; -ENOENT without one, -EINVAL when malformed. */
int vm_status_allowed_cpus(const char *text, CpuSet *ret);
/* Whether a thread named comm is one of our thread-context objects' ("TC tcN"). */
bool vm_thread_is_prealloc_context(const char *comm);
/* Reads every thread of pid under proc_root against affinity (a CPU list); threads bounded. */
int vm_emulator_check_read(const char *proc_root, pid_t pid, const char *affinity, VmEmulatorCheck *ret);
void vm_emulator_check_done(VmEmulatorCheck *c);
/* At the first QMP greeting of a guest started with EmulatorAffinity=: the check, a warning when not inside. */
void vm_emulator_check_at_greeting(Vm *vm);
/* DescribeVM's "placement" (nothing without a check). */
int vm_emulator_check_json(const Vm *vm, json_object *o);

/* vm-console.c */
/* The fd number at which QEMU keeps (and never reads) its copy of the console pipe's read end. */
#define VM_CONSOLE_QEMU_READ_FD 5
/* A pipe for the console: *ret_write_fd and *ret_read_fd (a copy of the read end) for QEMU, closed by the caller
 * once QEMU has them. */
int vm_console_prepare(Vm *vm, int *ret_write_fd, int *ret_read_fd);
/* QEMU runs (vm->pid, vm->started_realtime set): the new boot's file, with its header, and the pipe's watch. */
int vm_console_begin(Vm *vm);
/* A re-adopted QEMU: its pipe again (consoleFd and consoleInode of the state file), appending to the newest boot. */
int vm_console_resume(Vm *vm, json_object *state);
void vm_console_on_guest_panicked(Vm *vm);
/* QEMU ended: what is left in the pipe, a pending panic report; the boot and its panic lines into last_exit. */
void vm_console_end(Vm *vm);
void vm_console_free(Vm *vm);

/* vm-runtime.c */
int vm_run_dir_open(VmContext *ctx, const char *name, bool create, char **ret_why);
int vm_run_file_open(int dir_fd, const char *file, int *ret_fd, const char **ret_why);
int vm_write_state_file(Vm *vm);
