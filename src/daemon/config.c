/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "config.h"
#include "fileio.h"
#include "ini.h"

void config_init(DaemonConfig *c) {
        *c = (DaemonConfig) {
                .log_level = LOG_INFO,
                .log_target = LOG_TARGET_AUTO,
                .socket_mode = DEFAULT_SOCKET_MODE,
                .max_message_size = VARLINK_DEFAULT_MAX_MESSAGE_SIZE,
                .max_output_size = VARLINK_DEFAULT_MAX_OUTPUT_SIZE,
                .max_connections = VARLINK_DEFAULT_MAX_CONNECTIONS,
                .max_connections_per_uid = VARLINK_DEFAULT_MAX_CONNECTIONS_PER_UID,
                .max_json_depth = VARLINK_DEFAULT_MAX_JSON_DEPTH,
        };
}

void config_done(DaemonConfig *c) {
        free(c->runtime_dir);
        free(c->state_dir);
        free(c->admin_group);
        free(c->vm_dir);
        free(c->varlink_address);
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

static const IniRange range_message = { 4096, UINT64_C(1) << 30 };
static const IniRange range_output = { 4096, UINT64_C(1) << 30 };
static const IniRange range_connections = { 1, 65536 };
static const IniRange range_depth = { 2, 10000 };

static const IniItem config_items[] = {
        { "Daemon", "RuntimeDirectory", ini_parse_path, offsetof(DaemonConfig, runtime_dir), NULL },
        { "Daemon", "StateDirectory", ini_parse_path, offsetof(DaemonConfig, state_dir), NULL },
        { "Daemon", "LogLevel", ini_parse_log_level, offsetof(DaemonConfig, log_level), NULL },
        { "Daemon", "LogTarget", parse_log_target, offsetof(DaemonConfig, log_target), NULL },
        { "Daemon", "AdminGroup", parse_group_name, offsetof(DaemonConfig, admin_group), NULL },
        { "Daemon", "VMDirectory", ini_parse_path, offsetof(DaemonConfig, vm_dir), NULL },
        { "Varlink", "Address", ini_parse_path, offsetof(DaemonConfig, varlink_address), NULL },
        { "Varlink", "SocketMode", ini_parse_mode, offsetof(DaemonConfig, socket_mode), NULL },
        { "Varlink", "MaxMessageSize", ini_parse_size, offsetof(DaemonConfig, max_message_size), &range_message },
        { "Varlink", "MaxOutputSize", ini_parse_size, offsetof(DaemonConfig, max_output_size), &range_output },
        { "Varlink", "MaxConnections", ini_parse_unsigned, offsetof(DaemonConfig, max_connections), &range_connections },
        { "Varlink", "MaxConnectionsPerUID", ini_parse_unsigned, offsetof(DaemonConfig, max_connections_per_uid),
          &range_connections },
        { "Varlink", "MaxJSONDepth", ini_parse_unsigned, offsetof(DaemonConfig, max_json_depth), &range_depth },
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

        r = apply_overrides(&c, o);
        if (r >= 0 && !c.runtime_dir)
                r = free_and_strdup(&c.runtime_dir, DEFAULT_RUNTIME_DIR);
        if (r >= 0 && !c.state_dir)
                r = free_and_strdup(&c.state_dir, DEFAULT_STATE_DIR);
        if (r >= 0 && !c.vm_dir)
                r = free_and_strdup(&c.vm_dir, DEFAULT_VM_DIR);
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
                .max_connections = c->max_connections,
                .max_connections_per_uid = c->max_connections_per_uid,
                .max_json_depth = c->max_json_depth,
        };
}
