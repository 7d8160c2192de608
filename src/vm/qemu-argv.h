/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Builds the QEMU command line for a guest. Never goes through a shell: the result is an argv array. */

#include "macro.h"
#include "strv.h"
#include "vm-spec.h"

typedef struct QemuArgvParams {
        const char *qmp_path;           /* the QMP socket path, for documentation in status output only */
        int qmp_fd;                     /* >= 0: a listening socket passed to QEMU as this fd number:
                                         * -chardev socket,id=qmp,fd=N,server=on,wait=off -mon chardev=qmp,mode=control;
                                         * < 0: -qmp unix:QMP_PATH,server=on,wait=off */
        const char *console_path;       /* serial console log: -chardev file,id=console,path=P -serial chardev:console */
        VmAccel accel;                  /* resolved: KVM or TCG, never AUTO */
        bool paused;                    /* -S: start with vCPUs stopped (something must happen before `cont`) */
} QemuArgvParams;

/* Returns a NULL-terminated, malloc'ed argv (free with strv_free). argv[0] is the emulator. */
int qemu_build_argv(const VmSpec *spec, const QemuArgvParams *p, char ***ret);

/* Joins argv into one line, quoting arguments that need it (for display; never executed). */
char *qemu_argv_to_string(char *const *argv);
