/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>

#include "varlink/address.h"
#include "config/config.h"
#include "basic/fileio.h"
#include "exporter/http-server.h"
#include "basic/ini.h"
#include "balloon/policy.h"

void config_init(DaemonConfig *c) {
        *c = (DaemonConfig) {
                .log_level = LOG_INFO,
                .log_target = LOG_TARGET_AUTO,
                .socket_mode = DEFAULT_SOCKET_MODE,
                .max_message_size = VARLINK_DEFAULT_MAX_MESSAGE_SIZE,
                .max_output_size = VARLINK_DEFAULT_MAX_OUTPUT_SIZE,
                .max_output_per_uid = VARLINK_DEFAULT_MAX_OUTPUT_PER_UID,
                .max_output_total = VARLINK_DEFAULT_MAX_OUTPUT_TOTAL,
                .max_connections = VARLINK_DEFAULT_MAX_CONNECTIONS,
                .max_connections_per_uid = VARLINK_DEFAULT_MAX_CONNECTIONS_PER_UID,
                .max_json_depth = VARLINK_DEFAULT_MAX_JSON_DEPTH,
                .balloon_stats_interval_usec = 10 * USEC_PER_SEC,
                .balloon_wait_timeout_usec = 30 * USEC_PER_SEC,
                .balloon_policy_interval_usec = 5 * USEC_PER_SEC,
                .balloon_available_low_percent = 10,
                .balloon_available_high_percent = 20,
                .balloon_commit_high_percent = 100,
                .balloon_commit_low_percent = 90,
                .balloon_guest_reserve = UINT64_C(64) << 20,
                .balloon_max_step = UINT64_C(64) << 20,
                .host_sample_interval_usec = USEC_PER_SEC,
                .guest_sample_interval_usec = 5 * USEC_PER_SEC,
                .numa_sample_interval_usec = 30 * USEC_PER_SEC,
                .host_history = 600,
                .experiments_max = 1000,        /* as EXPERIMENT_STORE_MAX_EXPERIMENTS_DEFAULT */
                .experiments_max_bytes = UINT64_C(1) << 30,
                .console_keep_boots = 10,                       /* CONSOLE_KEEP_BOOTS_DEFAULT */
                .console_max_boot_size = UINT64_C(4) << 20,     /* CONSOLE_BOOT_SIZE_DEFAULT */
                .exporter_enabled = true,
                .exporter_max_connections = 64,
                .exporter_max_connections_per_address = 16,
                .exporter_timeout_usec = 10 * USEC_PER_SEC,
                .exporter_header_timeout_usec = 5 * USEC_PER_SEC,
        };
}

void config_done(DaemonConfig *c) {
        free(c->runtime_dir);
        free(c->state_dir);
        free(c->admin_group);
        free(c->vm_dir);
        free(c->varlink_address);
        free(c->balloon_host_meminfo_path);
        free(c->proc_root);
        free(c->sys_root);
        free(c->exporter_address);
        free(c->dbus_address);
        *c = (DaemonConfig) {};
}

void config_overrides_done(ConfigOverrides *o) {
        free(o->runtime_dir);
        free(o->state_dir);
        free(o->vm_dir);
        free(o->varlink_address);
}

static int parse_log_target(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        LogTarget *t = data, v;

        v = log_target_from_string(value);
        if (v < 0) {
                *ret_reason = strdup("expected auto, journal or console");
                return -EINVAL;
        }
        *t = v;
        return 0;
}

static int parse_group_name(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        /* Group names as useradd accepts them; resolved when the daemon applies the config. */
        for (const char *p = value; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '_' || *p == '-' || *p == '.')) {
                        *ret_reason = strdup("not a valid group name");
                        return -EINVAL;
                }
        return ini_parse_string(key, value, data, aux, ret_reason);
}

/* [Varlink] Address=: a varlink address, "unix:/path" or "unix:@name" (or the bare forms). */
static int parse_varlink_address(const char *key, const char *value, void *data, const void *aux,
                                 char **ret_reason) {
        const char *reason = NULL;
        VarlinkAddress a;

        if (!isempty(value) && varlink_address_parse(value, &a, &reason) < 0) {
                *ret_reason = strdup(reason);
                return -EINVAL;
        }
        return ini_parse_string(key, value, data, aux, ret_reason);
}

/* [DBus] Address=: a D-Bus address ("unix:path=…"), "system" (the default) or "none". */
static int parse_dbus_address(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        DaemonConfig *c = (DaemonConfig *) ((char *) data - offsetof(DaemonConfig, dbus_address));

        c->dbus_disabled = streq(value, "none");
        if (c->dbus_disabled || streq(value, "system") || isempty(value)) {
                c->dbus_address = mfree(c->dbus_address);
                return 0;
        }
        if (!strchr(value, ':')) {
                *ret_reason = strdup("expected a D-Bus address such as unix:path=/run/dbus/system_bus_socket, "
                                     "\"system\" or \"none\"");
                return -EINVAL;
        }
        return ini_parse_string(key, value, data, aux, ret_reason);
}

static const IniRange range_message = { 4096, UINT64_C(1) << 30 };
static const IniRange range_output = { 4096, UINT64_C(1) << 30 };
static const IniRange range_connections = { 1, 65536 };
static const IniRange range_depth = { 2, 10000 };

static int parse_listen_address(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        struct sockaddr_storage sa;
        socklen_t l;

        if (http_parse_address(value, &sa, &l) < 0) {
                *ret_reason = strdup("expected IPV4:PORT or [IPV6]:PORT");
                return -EINVAL;
        }
        return ini_parse_string(key, value, data, aux, ret_reason);
}

static const IniRange range_host_interval = { 100 * USEC_PER_MSEC, 3600 * USEC_PER_SEC };
static const IniRange range_guest_interval = { 500 * USEC_PER_MSEC, 3600 * USEC_PER_SEC };
static const IniRange range_history = { 1, 86400 };
static const IniRange range_experiments = { 1, 100000 };
static const IniRange range_console_boots = { 1, 1000 };               /* CONSOLE_KEEP_BOOTS_MAX */
static const IniRange range_console_size = { 4096, UINT64_C(1) << 30 }; /* CONSOLE_BOOT_SIZE_MIN..MAX */
static const IniRange range_experiments_bytes = { UINT64_C(1) << 20, UINT64_C(1) << 40 };

/* 0 (off) or an interval of 1s to 1h. */
static int parse_interval_or_off(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        uint64_t *u = data, old = *u;
        int r;

        r = ini_parse_sec(key, value, data, NULL, ret_reason);
        if (r < 0)
                return r;
        if (*u != 0 && (*u < USEC_PER_SEC || *u > 3600 * USEC_PER_SEC)) {
                *u = old;
                *ret_reason = strdup("expected 0 (off) or a time span from 1s to 1h");
                return -ERANGE;
        }
        return 0;
}
static const IniRange range_http_connections = { 1, 4096 };
static const IniRange range_http_timeout = { 100 * USEC_PER_MSEC, 3600 * USEC_PER_SEC };

/* [Balloon] */
static const IniRange range_balloon_stats = { USEC_PER_SEC, 3600 * USEC_PER_SEC };
static const IniRange range_balloon_wait = { 100 * USEC_PER_MSEC, 24 * 3600 * USEC_PER_SEC };
static const IniRange range_balloon_policy = { 100 * USEC_PER_MSEC, 3600 * USEC_PER_SEC };
static const IniRange range_percent = { 0, 100 };
static const IniRange range_commit_percent = { 1, 1000 };
static const IniRange range_balloon_step = { UINT64_C(1) << 20, UINT64_C(1) << 50 };
static const IniRange range_balloon_reserve = { 0, UINT64_C(1) << 50 };

static int parse_whole_sec(const char *key, const char *value, void *data, const void *aux, char **ret_reason) {
        uint64_t t;
        int r;

        r = ini_parse_sec(key, value, &t, aux, ret_reason);
        if (r < 0)
                return r;
        if (t % USEC_PER_SEC != 0) {
                *ret_reason = strdup("expected whole seconds (QEMU polls guest statistics in seconds)");
                return -EINVAL;
        }
        *(uint64_t *) data = t;
        return 0;
}

static const IniItem config_items[] = {
        { "Daemon", "RuntimeDirectory", ini_parse_path, offsetof(DaemonConfig, runtime_dir), NULL },
        { "Daemon", "StateDirectory", ini_parse_path, offsetof(DaemonConfig, state_dir), NULL },
        { "Daemon", "LogLevel", ini_parse_log_level, offsetof(DaemonConfig, log_level), NULL },
        { "Daemon", "LogTarget", parse_log_target, offsetof(DaemonConfig, log_target), NULL },
        { "Daemon", "AdminGroup", parse_group_name, offsetof(DaemonConfig, admin_group), NULL },
        { "Daemon", "VMDirectory", ini_parse_path, offsetof(DaemonConfig, vm_dir), NULL },
        { "Daemon", "StopGuestsOnExit", ini_parse_bool, offsetof(DaemonConfig, stop_guests_on_exit), NULL },
        { "Varlink", "Address", parse_varlink_address, offsetof(DaemonConfig, varlink_address), NULL },
        { "Varlink", "SocketMode", ini_parse_mode, offsetof(DaemonConfig, socket_mode), NULL },
        { "Varlink", "MaxMessageSize", ini_parse_size, offsetof(DaemonConfig, max_message_size), &range_message },
        { "Varlink", "MaxOutputSize", ini_parse_size, offsetof(DaemonConfig, max_output_size), &range_output },
        { "Varlink", "MaxOutputPerUID", ini_parse_size, offsetof(DaemonConfig, max_output_per_uid), &range_output },
        { "Varlink", "MaxOutputTotal", ini_parse_size, offsetof(DaemonConfig, max_output_total), &range_output },
        { "Varlink", "MaxConnections", ini_parse_unsigned, offsetof(DaemonConfig, max_connections), &range_connections },
        { "Varlink", "MaxConnectionsPerUID", ini_parse_unsigned, offsetof(DaemonConfig, max_connections_per_uid),
          &range_connections },
        { "Varlink", "MaxJSONDepth", ini_parse_unsigned, offsetof(DaemonConfig, max_json_depth), &range_depth },
        { "Balloon", "StatsIntervalSec", parse_whole_sec, offsetof(DaemonConfig, balloon_stats_interval_usec),
          &range_balloon_stats },
        { "Balloon", "WaitTimeoutSec", ini_parse_sec, offsetof(DaemonConfig, balloon_wait_timeout_usec),
          &range_balloon_wait },
        { "Balloon", "Policy", ini_parse_bool, offsetof(DaemonConfig, balloon_policy), NULL },
        { "Balloon", "PolicyIntervalSec", ini_parse_sec, offsetof(DaemonConfig, balloon_policy_interval_usec),
          &range_balloon_policy },
        { "Balloon", "HostAvailableLowPercent", ini_parse_unsigned,
          offsetof(DaemonConfig, balloon_available_low_percent), &range_percent },
        { "Balloon", "HostAvailableHighPercent", ini_parse_unsigned,
          offsetof(DaemonConfig, balloon_available_high_percent), &range_percent },
        { "Balloon", "CommitHighPercent", ini_parse_unsigned, offsetof(DaemonConfig, balloon_commit_high_percent),
          &range_commit_percent },
        { "Balloon", "CommitLowPercent", ini_parse_unsigned, offsetof(DaemonConfig, balloon_commit_low_percent),
          &range_commit_percent },
        { "Balloon", "GuestReserve", ini_parse_size, offsetof(DaemonConfig, balloon_guest_reserve),
          &range_balloon_reserve },
        { "Balloon", "MaxStep", ini_parse_size, offsetof(DaemonConfig, balloon_max_step), &range_balloon_step },
        { "Balloon", "HostMeminfoPath", ini_parse_path, offsetof(DaemonConfig, balloon_host_meminfo_path), NULL },
        { "Metrics", "HostSampleIntervalSec", ini_parse_sec, offsetof(DaemonConfig, host_sample_interval_usec),
          &range_host_interval },
        { "Metrics", "GuestSampleIntervalSec", ini_parse_sec, offsetof(DaemonConfig, guest_sample_interval_usec),
          &range_guest_interval },
        { "Metrics", "NumaMapsIntervalSec", ini_parse_sec, offsetof(DaemonConfig, numa_sample_interval_usec),
          &range_guest_interval },
        { "Metrics", "GuestCountersIntervalSec", parse_interval_or_off,
          offsetof(DaemonConfig, guest_counters_interval_usec), NULL },
        { "Metrics", "HostHistory", ini_parse_unsigned, offsetof(DaemonConfig, host_history), &range_history },
        { "Metrics", "ProcRoot", ini_parse_path, offsetof(DaemonConfig, proc_root), NULL },
        { "Metrics", "SysRoot", ini_parse_path, offsetof(DaemonConfig, sys_root), NULL },
        { "Exporter", "Enabled", ini_parse_bool, offsetof(DaemonConfig, exporter_enabled), NULL },
        { "Exporter", "ListenAddress", parse_listen_address, offsetof(DaemonConfig, exporter_address), NULL },
        { "Exporter", "MaxConnections", ini_parse_unsigned, offsetof(DaemonConfig, exporter_max_connections),
          &range_http_connections },
        { "Exporter", "MaxConnectionsPerAddress", ini_parse_unsigned,
          offsetof(DaemonConfig, exporter_max_connections_per_address), &range_http_connections },
        { "Exporter", "TimeoutSec", ini_parse_sec, offsetof(DaemonConfig, exporter_timeout_usec),
          &range_http_timeout },
        { "Exporter", "HeaderTimeoutSec", ini_parse_sec, offsetof(DaemonConfig, exporter_header_timeout_usec),
          &range_http_timeout },
        { "Experiments", "MaxExperiments", ini_parse_unsigned, offsetof(DaemonConfig, experiments_max),
          &range_experiments },
        { "Experiments", "MaxBytes", ini_parse_size, offsetof(DaemonConfig, experiments_max_bytes),
          &range_experiments_bytes },
        { "Console", "KeepBoots", ini_parse_unsigned, offsetof(DaemonConfig, console_keep_boots), &range_console_boots },
        { "Console", "MaxBootSize", ini_parse_size, offsetof(DaemonConfig, console_max_boot_size), &range_console_size },
        { "DBus", "Address", parse_dbus_address, offsetof(DaemonConfig, dbus_address), NULL },
        { NULL },
};

static int apply_overrides(DaemonConfig *c, const ConfigOverrides *o) {
        int r;

        if (!o)
                return 0;
        if (o->runtime_dir && (r = free_and_strdup(&c->runtime_dir, o->runtime_dir)) < 0)
                return r;
        if (o->state_dir && (r = free_and_strdup(&c->state_dir, o->state_dir)) < 0)
                return r;
        if (o->vm_dir && (r = free_and_strdup(&c->vm_dir, o->vm_dir)) < 0)
                return r;
        if (o->varlink_address && (r = free_and_strdup(&c->varlink_address, o->varlink_address)) < 0)
                return r;
        if (o->log_level >= 0)
                c->log_level = o->log_level;
        if (o->log_target >= 0)
                c->log_target = o->log_target;
        return 0;
}

/* Cross-key checks of [Balloon]: the thresholds must leave a band for the hysteresis. */
static int config_check_balloon(const char *path, const DaemonConfig *c, char **ret_error) {
        BalloonPolicyParams p = {
                .available_low_percent = c->balloon_available_low_percent,
                .available_high_percent = c->balloon_available_high_percent,
                .commit_high_percent = c->balloon_commit_high_percent,
                .commit_low_percent = c->balloon_commit_low_percent,
                .guest_reserve_bytes = c->balloon_guest_reserve,
                .max_step_bytes = c->balloon_max_step,
        };
        static const char *const keys[] = { "HostAvailableLowPercent", "HostAvailableHighPercent",
                                            "CommitLowPercent", "CommitHighPercent", "MaxStep", "GuestReserve" };
        const char *field = NULL;
        unsigned line;

        if (balloon_policy_params_validate(&p, &field) >= 0)
                return 0;
        /* Defaults are consistent: a key of the file made it so; name the line of the field, or of its partner. */
        line = field ? ini_file_key_line(path, "Balloon", field) : 0;
        for (size_t i = 0; line == 0 && i < ELEMENTSOF(keys); i++)
                line = ini_file_key_line(path, "Balloon", keys[i]);
        if (ret_error && asprintf(ret_error, "%s:%u: [Balloon] %s= is out of range: HostAvailableHighPercent= must be "
                                  "greater than HostAvailableLowPercent=, CommitLowPercent= less than "
                                  "CommitHighPercent=, MaxStep= at least 1M", path, line, strna(field)) < 0)
                return -ENOMEM;
        return -EINVAL;
}

int config_load(const char *path, const ConfigOverrides *o, DaemonConfig *ret, bool *ret_found, char **ret_error) {
        DaemonConfig c;
        bool found = true;
        int r;

        config_init(&c);

        r = ini_parse_file(path, config_items, &c, ret_error);
        if (r == -ENOENT)
                found = false;
        else if (r < 0) {
                config_done(&c);
                return r;
        }

        r = config_check_balloon(path, &c, ret_error);
        /* the total's default grows with a larger per-uid quota; one set lower is an error */
        if (r >= 0 && c.max_output_total < c.max_output_per_uid && c.max_output_total == VARLINK_DEFAULT_MAX_OUTPUT_TOTAL)
                c.max_output_total = c.max_output_per_uid;
        if (r >= 0 && c.max_output_total < c.max_output_per_uid) {
                r = -EINVAL;
                /* Only a MaxOutputTotal= of the file can be below (its default follows MaxOutputPerUID=). */
                if (ret_error && asprintf(ret_error, "%s:%u: [Varlink] MaxOutputTotal= (%" PRIu64 ") must be at "
                                          "least MaxOutputPerUID= (%" PRIu64 ")", path,
                                          ini_file_key_line(path, "Varlink", "MaxOutputTotal"),
                                          (uint64_t) c.max_output_total, (uint64_t) c.max_output_per_uid) < 0)
                        r = -ENOMEM;
        }
        if (r < 0) {
                config_done(&c);
                return r;
        }

        r = apply_overrides(&c, o);
        if (r >= 0 && !c.runtime_dir)
                r = free_and_strdup(&c.runtime_dir, DEFAULT_RUNTIME_DIR);
        if (r >= 0 && !c.state_dir)
                r = free_and_strdup(&c.state_dir, DEFAULT_STATE_DIR);
        if (r >= 0 && !c.vm_dir)
                r = free_and_strdup(&c.vm_dir, DEFAULT_VM_DIR);
        if (r >= 0 && !c.proc_root)
                r = free_and_strdup(&c.proc_root, "/proc");
        if (r >= 0 && !c.sys_root)
                r = free_and_strdup(&c.sys_root, "/sys");
        if (r >= 0 && !c.exporter_address)
                r = free_and_strdup(&c.exporter_address, DEFAULT_EXPORTER_ADDRESS);
        if (r < 0) {
                config_done(&c);
                return r;
        }

        *ret = c;
        if (ret_found)
                *ret_found = found;
        return 0;
}

const char *config_varlink_address(const DaemonConfig *c, char **buf) {
        if (c->varlink_address)
                return c->varlink_address;
        *buf = path_join(c->runtime_dir, VARLINK_SOCKET_NAME);
        return *buf;
}

VarlinkServerLimits config_varlink_limits(const DaemonConfig *c) {
        return (VarlinkServerLimits) {
                .max_message_size = (size_t) c->max_message_size,
                .max_output_size = (size_t) c->max_output_size,
                .max_output_per_uid = (size_t) c->max_output_per_uid,
                .max_output_total = (size_t) c->max_output_total,
                .max_connections = c->max_connections,
                .max_connections_per_uid = c->max_connections_per_uid,
                .max_json_depth = c->max_json_depth,
        };
}
