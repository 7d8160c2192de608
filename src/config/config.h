/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

#include "basic/log.h"
#include "basic/macro.h"
#include "varlink/varlink.h"

#define DEFAULT_CONFIG_PATH "/etc/memvisor/memvisord.conf"
#define DEFAULT_RUNTIME_DIR "/run/memvisor"
#define DEFAULT_STATE_DIR "/var/lib/memvisor"
#define DEFAULT_VM_DIR "/etc/memvisor/vms"
#define VARLINK_SOCKET_NAME "io.memvisor.Manager"
#define DEFAULT_SOCKET_MODE 0666
/* Not in the Prometheus default port allocations list (exporters 9100-9999, all taken; see memvisord.conf(5)). */
#define DEFAULT_EXPORTER_ADDRESS "127.0.0.1:9098"

/* memvisord.conf; every field has a built-in default (config_init). See memvisord.conf(5). */
typedef struct DaemonConfig {
        /* [Daemon] */
        char *runtime_dir;
        char *state_dir;
        int log_level;
        LogTarget log_target;
        char *admin_group;              /* NULL: only uid 0 may change state */
        char *vm_dir;                   /* .vm files: default /etc/memvisor/vms */
        bool stop_guests_on_exit;       /* StopGuestsOnExit=: SIGTERM stops guests gracefully first */

        /* [Varlink] */
        char *varlink_address;          /* NULL: <runtime_dir>/io.memvisor.Manager */
        mode_t socket_mode;
        uint64_t max_message_size;
        uint64_t max_output_size;
        uint64_t max_output_per_uid;
        uint64_t max_output_total;
        unsigned max_connections;
        unsigned max_connections_per_uid;
        unsigned max_json_depth;

        /* [Balloon] (manager-balloon.c) */
        uint64_t balloon_stats_interval_usec;   /* StatsIntervalSec=, default 2s, whole seconds */
        uint64_t balloon_wait_timeout_usec;     /* WaitTimeoutSec=, default 30s */
        bool balloon_policy;                    /* Policy=, default no */
        uint64_t balloon_policy_interval_usec;  /* PolicyIntervalSec=, default 5s */
        unsigned balloon_available_low_percent; /* HostAvailableLowPercent=, default 10 */
        unsigned balloon_available_high_percent;/* HostAvailableHighPercent=, default 20 */
        unsigned balloon_commit_high_percent;   /* CommitHighPercent=, default 100 */
        unsigned balloon_commit_low_percent;    /* CommitLowPercent=, default 90 */
        uint64_t balloon_guest_reserve;         /* GuestReserve=, default 64M */
        uint64_t balloon_max_step;              /* MaxStep=, default 64M */
        char *balloon_host_meminfo_path;        /* HostMeminfoPath=, default NULL: /proc/meminfo (for tests) */

        /* [Metrics] (manager-metrics.c) */
        uint64_t host_sample_interval_usec;     /* HostSampleIntervalSec=, default 1s */
        uint64_t guest_sample_interval_usec;    /* GuestSampleIntervalSec=, default 5s */
        uint64_t numa_sample_interval_usec;     /* NumaMapsIntervalSec=, default 30s */
        uint64_t guest_counters_interval_usec;  /* GuestCountersIntervalSec=, default 0: off */
        unsigned host_history;                  /* HostHistory=, ring length, default 600 */
        char *proc_root;                        /* ProcRoot=, default /proc (for tests) */
        char *sys_root;                         /* SysRoot=, default /sys (for tests) */

        /* [Exporter] (src/exporter) */
        bool exporter_enabled;                  /* Enabled=, default yes */
        char *exporter_address;                 /* ListenAddress=, default DEFAULT_EXPORTER_ADDRESS */
        unsigned exporter_max_connections;      /* MaxConnections=, default 64 */
        unsigned exporter_max_connections_per_address; /* MaxConnectionsPerAddress=, default 16 */
        uint64_t exporter_timeout_usec;         /* TimeoutSec=, default 10s */
        uint64_t exporter_header_timeout_usec;  /* HeaderTimeoutSec=, default 5s */

        /* [Experiments] (manager-experiment.c) */
        unsigned experiments_max;               /* MaxExperiments=, default 1000 */
        uint64_t experiments_max_bytes;         /* MaxBytes=, default 1G */

        /* [Console] (src/vm/vm-console.c) */
        unsigned console_keep_boots;            /* KeepBoots=, default 10 */
        uint64_t console_max_boot_size;         /* MaxBootSize=, default 4M */

        /* [DBus] */
        char *dbus_address;             /* NULL: the system bus ($DBUS_SYSTEM_BUS_ADDRESS or the default) */
        bool dbus_disabled;             /* Address=none */
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
