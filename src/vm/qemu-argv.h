/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Builds the QEMU command line for a guest. Never goes through a shell: the result is an argv array. */

#include "basic/macro.h"
#include "basic/strv.h"
#include "vm/vm-spec.h"

/* The guest agent's chardev, the id of its virtserialport (VSERPORT_CHANGE's "id") and the port's name. */
#define QEMU_AGENT_CHARDEV "qga"
#define QEMU_AGENT_PORT_ID "qga0"
#define QEMU_AGENT_PORT_NAME "org.qemu.guest_agent.0"
/* The thread-context objects of backends that preallocate on bound host nodes: tc0, tc1, … (QEMU names each
 * one's thread "TC tcN" with -name debug-threads=on). */
#define QEMU_THREAD_CONTEXT_PREFIX "tc"
/* The virtio-mem device (HotplugSize=): its QOM path is /machine/peripheral/vmem0dev. */
#define QEMU_VMEM_DEVICE_ID "vmem0dev"

typedef struct QemuArgvParams {
        const char *qmp_path;           /* the QMP socket path, for documentation in status output only */
        int qmp_fd;                     /* >= 0: a listening socket passed to QEMU as this fd number:
                                         * -chardev socket,id=qmp,fd=N,server=on,wait=off -mon chardev=qmp,mode=control;
                                         * < 0: -qmp unix:QMP_PATH,server=on,wait=off */
        int console_fd;                 /* > 2: the serial console, the write end of a pipe the caller reads (or a
                                         * file open for appending), passed to QEMU as this fd number, never a
                                         * path QEMU would open itself:
                                         * -add-fd fd=N,set=1,opaque=CONSOLE_PATH
                                         * -chardev file,id=console,path=/dev/fdset/1,append=on -serial chardev:console
                                         * (QEMU dups the fd from the set; append=on: no O_TRUNC, which a pipe
                                         * refuses). 0 (as in a zeroed struct): no console; QEMU refuses 1 and 2. */
        int qga_fd;                     /* > 2, with GuestAgent=yes: the listening socket of the guest agent's
                                         * port, passed as this fd number:
                                         * -chardev socket,id=qga,fd=N,server=on,wait=off
                                         * -device virtio-serial-pci,id=vser0
                                         * -device virtserialport,bus=vser0.0,chardev=qga,id=qga0,
                                         *         name=org.qemu.guest_agent.0
                                         * 0: no agent port even with GuestAgent=yes */
        const char *console_path;       /* where console_fd leads: only its description (opaque=, shown by
                                         * query-fdsets and ps); NULL: "console" */
        VmAccel accel;                  /* resolved: KVM or TCG, never AUTO */
        bool paused;                    /* -S: start with vCPUs stopped (something must happen before `cont`) */
        uint64_t nodes_without_cpus;    /* host nodes (bit N: node N) with no CPU this daemon may use: a backend
                                         * bound to such nodes only gets no thread-context (QEMU fails with "The
                                         * nodes select no CPUs"); 0 (a zeroed struct): every node has CPUs */
} QemuArgvParams;

/* Whether the command line gets the agent port: GuestAgent=yes, unless ExtraArgs= already has a port named
 * org.qemu.guest_agent.0 or uses one of the ids qga, qga0, vser0 (a guest set up before GuestAgent= existed). */
bool qemu_argv_agent_port(const VmSpec *spec);

/* Returns a NULL-terminated, malloc'ed argv (free with strv_free). argv[0] is the emulator. */
int qemu_build_argv(const VmSpec *spec, const QemuArgvParams *p, char ***ret);

/* Joins argv into one line, quoting arguments that need it (for display; never executed). */
char *qemu_argv_to_string(char *const *argv);
