/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "config.h"
#include "macro.h"
#include "varlink.h"

/* MESSAGE_IDs of notable journal entries (documented in memvisord(8)). */
#define MESSAGE_ID_DAEMON_STARTED "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a60"
#define MESSAGE_ID_DAEMON_STOPPED "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a61"
#define MESSAGE_ID_CONFIG_RELOADED "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a62"
#define MESSAGE_ID_CONFIG_INVALID "MESSAGE_ID=6f1d3c2a8e4b4f0e9a7c5d3b1e2f4a63"

typedef struct Manager {
        sd_event *event;

        char *config_path;
        ConfigOverrides overrides;
        DaemonConfig config;
        bool config_file_found;
        gid_t admin_gid;                /* (gid_t) -1: none */

        VarlinkServer *varlink;
        char *varlink_address;          /* the path we bound, or "socket-activated" */

        uint64_t start_usec;            /* CLOCK_MONOTONIC */
        char *status;
} Manager;

/* Takes ownership of config_path and overrides. */
int manager_new(Manager **ret, char *config_path, ConfigOverrides *overrides);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* Loads the configuration; fails (logged as file:line) when it is invalid. */
int manager_load_config(Manager *m);
/* Binds or adopts sockets, sets up signals and the watchdog. */
int manager_start(Manager *m);
int manager_run(Manager *m);

/* Re-reads the config; on error keeps the old one. *ret_error (optional) says what was wrong. */
int manager_reload(Manager *m, char **ret_error);

void manager_set_status(Manager *m, const char *format, ...) _printf_(2, 3);

/* manager-varlink.c */
int manager_varlink_register(Manager *m);
