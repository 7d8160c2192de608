/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

#include "log.h"
#include "macro.h"
#include "varlink.h"

#define DEFAULT_CONFIG_PATH "/etc/memvisor/memvisord.conf"
#define DEFAULT_RUNTIME_DIR "/run/memvisor"
#define DEFAULT_STATE_DIR "/var/lib/memvisor"
#define DEFAULT_VM_DIR "/etc/memvisor/vms"
#define VARLINK_SOCKET_NAME "io.memvisor.Manager"
#define DEFAULT_SOCKET_MODE 0666

/* memvisord.conf; every field has a built-in default (config_init). See memvisord.conf(5). */
typedef struct DaemonConfig {
        /* [Daemon] */
        char *runtime_dir;
        char *state_dir;
        int log_level;
        LogTarget log_target;
        char *admin_group;              /* NULL: only uid 0 may change state */
        char *vm_dir;                   /* .vm files: default /etc/memvisor/vms */

        /* [Varlink] */
        char *varlink_address;          /* NULL: <runtime_dir>/io.memvisor.Manager */
        mode_t socket_mode;
        uint64_t max_message_size;
        uint64_t max_output_size;
        unsigned max_connections;
        unsigned max_connections_per_uid;
        unsigned max_json_depth;
} DaemonConfig;

/* Settings given on the command line; they win over the file, also after a reload. */
typedef struct ConfigOverrides {
        char *runtime_dir;
        char *state_dir;
        char *vm_dir;
        char *varlink_address;
        int log_level;                  /* -1: not given */
        LogTarget log_target;           /* _LOG_TARGET_INVALID: not given */
} ConfigOverrides;

void config_init(DaemonConfig *c);
void config_done(DaemonConfig *c);

/* Loads path over the defaults, then applies overrides. A missing file is fine (*ret_found = false).
 * On error returns < 0 with *ret_error = "FILE:LINE: reason" and leaves ret untouched. */
int config_load(const char *path, const ConfigOverrides *o, DaemonConfig *ret, bool *ret_found, char **ret_error);

/* The effective socket path. */
const char *config_varlink_address(const DaemonConfig *c, char **buf);

VarlinkServerLimits config_varlink_limits(const DaemonConfig *c);

void config_overrides_done(ConfigOverrides *o);
