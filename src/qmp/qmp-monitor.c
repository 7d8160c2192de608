/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "qmp/qmp-monitor.h"

typedef struct Rule {
        const char *name;               /* a name, or a prefix when it ends with '*' */
        const char *reason;
} Rule;

#define R_QUIT "ends QEMU behind the daemon's back (use memvisorctl stop or kill)"
#define R_RESET "resets or powers off the guest behind the daemon's back (use memvisorctl restart or stop)"
#define R_RUNSTATE "changes the guest's run state, which the daemon tracks"
#define R_DEVICE "removes a device the daemon may rely on (the balloon, the agent's channel)"
#define R_MIGRATE "starts or steers a migration, which is the daemon's business (an outgoing one ends the guest it supervises)"
#define R_BALLOON "moves the balloon behind the daemon's balloon policy (use memvisorctl balloon)"
#define R_OBJECT "removes an object the guest was started with (its memory backend, …)"
#define R_BACKEND "removes or replaces a back end the daemon uses (the monitor, the agent, the console)"
#define R_SNAPSHOT "replaces the guest's whole state"
#define R_ACTION "changes what QEMU does on a shutdown, reboot, panic or watchdog expiry, which the daemon relies on"
#define R_DIRTY "starts a dirty-page measurement or limit behind the daemon's (use memvisorctl memory NAME dirty-rate); " \
        "QEMU 7.2 crashes on the bitmap and ring modes under TCG"
#define R_QOM "sets device properties the daemon drives (the balloon's statistics, virtio-mem's requested-size)"
#define R_IO "writes to the guest's I/O ports, which can power off or reset it"
#define R_DEBUG "opens an unauthenticated debugger port that can stop and change the guest"
#define R_PAUSE "pauses the guest while it runs (a memory dump or a snapshot)"
#define R_DISK "removes a disk the guest was started with"
#define R_NMI "injects an NMI, which can panic or reset the guest"

static const Rule qmp_rules[] = {
        { "quit", R_QUIT },
        { "system_reset", R_RESET },
        { "system_powerdown", R_RESET },
        { "stop", R_RUNSTATE },
        { "cont", R_RUNSTATE },
        { "x-exit-preconfig", R_RUNSTATE },
        { "device_del", R_DEVICE },
        { "migrate*", R_MIGRATE },
        { "balloon", R_BALLOON },
        { "object-del", R_OBJECT },
        { "netdev_del", R_BACKEND },
        { "chardev-remove", R_BACKEND },
        { "chardev-change", R_BACKEND },
        { "snapshot-load", R_SNAPSHOT },
        { "set-action", R_ACTION },
        { "watchdog-set-action", R_ACTION },
        { "calc-dirty-rate", R_DIRTY },
        { "set-vcpu-dirty-limit", R_DIRTY },
        { "cancel-vcpu-dirty-limit", R_DIRTY },
        { "qom-set", R_QOM },
        { "system_wakeup", R_RUNSTATE },
        { "dump-guest-memory", R_PAUSE },
        { "snapshot-save", R_PAUSE },
        { "snapshot-delete", R_SNAPSHOT },
        { "blockdev-del", R_DISK },
        { "inject-nmi", R_NMI },
        {},
};

/* HMP's names (hmp-commands.hx), with their short forms. */
static const Rule hmp_rules[] = {
        { "quit", R_QUIT },
        { "q", R_QUIT },
        { "system_reset", R_RESET },
        { "system_powerdown", R_RESET },
        { "stop", R_RUNSTATE },
        { "s", R_RUNSTATE },
        { "cont", R_RUNSTATE },
        { "c", R_RUNSTATE },
        { "exit_preconfig", R_RUNSTATE },
        { "device_del", R_DEVICE },
        { "migrate*", R_MIGRATE },
        { "balloon", R_BALLOON },
        { "object_del", R_OBJECT },
        { "netdev_del", R_BACKEND },
        { "chardev-remove", R_BACKEND },
        { "chardev-change", R_BACKEND },
        { "loadvm", R_SNAPSHOT },
        { "watchdog_action", R_ACTION },
        { "calc_dirty_rate", R_DIRTY },
        { "set_vcpu_dirty_limit", R_DIRTY },
        { "cancel_vcpu_dirty_limit", R_DIRTY },
        { "qom-set", R_QOM },
        { "o", R_IO },
        { "gdbserver", R_DEBUG },
        { "system_wakeup", R_RUNSTATE },
        { "dump-guest-memory", R_PAUSE },
        { "savevm", R_PAUSE },
        { "delvm", R_SNAPSHOT },
        { "drive_del", R_DISK },
        { "nmi", R_NMI },
        {},
};

static const char *match(const Rule *rules, const char *name) {
        for (const Rule *r = rules; r->name; r++) {
                size_t n = strlen(r->name);

                if (r->name[n - 1] == '*' ? strncmp(name, r->name, n - 1) == 0 : streq(name, r->name))
                        return r->reason;
        }
        return NULL;
}

int qmp_monitor_hmp_verb(const char *line, char **ret) {
        size_t a, n;

        /* QEMU's monitor skips blanks, then takes the command name up to the next blank or '/' (where a
         * "/fmt" suffix starts: "device_del/machine/…" is device_del). */
        a = strspn(line, " \t\r\n\v\f");
        n = strcspn(line + a, " \t\r\n\v\f/");
        if (n == 0)
                return -EINVAL;
        *ret = strndup(line + a, n);
        return *ret ? 0 : -ENOMEM;
}

const char *qmp_monitor_hmp_refusal(const char *line) {
        size_t a = strspn(line, " \t\r\n\v\f"), n = strcspn(line + a, " \t\r\n\v\f/");
        char verb[64];

        if (n == 0 || n >= sizeof(verb))
                return NULL;    /* no command, or a name longer than any QEMU knows: QEMU refuses it */
        memcpy(verb, line + a, n);
        verb[n] = 0;
        return match(hmp_rules, verb);
}

const char *qmp_monitor_qmp_refusal(const char *command, json_object *arguments) {
        json_object *line;

        if (streq(command, "human-monitor-command")) {
                if (!json_object_is_type(arguments, json_type_object) ||
                    !json_object_object_get_ex(arguments, "command-line", &line) ||
                    !json_object_is_type(line, json_type_string))
                        return NULL;    /* QEMU refuses it: no line runs */
                return qmp_monitor_hmp_refusal(json_object_get_string(line));
        }
        return match(qmp_rules, command);
}
