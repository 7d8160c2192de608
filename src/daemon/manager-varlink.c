/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <time.h>
#include <unistd.h>

#include "build-config.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager.h"
#include "varlink/varlink-idl.h"
#if ENABLE_CERTIFICATION
#include "varlink/certification.h"
#endif

static void completion_done(const char *error, json_object *parameters, void *userdata) {
        _cleanup_(varlink_connection_unrefp) VarlinkConnection *c = userdata;

        if (error)
                (void) varlink_error(c, error, parameters);
        else
                (void) varlink_reply(c, parameters);
}

static void completion_free(void *userdata) {
        varlink_connection_unref(userdata);
}

ManagerCompletion manager_varlink_completion(VarlinkConnection *c) {
        return (ManagerCompletion) {
                .done = completion_done,
                .free = completion_free,
                .userdata = varlink_connection_ref(c),
        };
}

static int vl_get_daemon_status(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        const VarlinkServerLimits *l = varlink_server_get_limits(m->varlink);
        _cleanup_json_ json_object *reply = NULL, *limits = NULL, *counters = NULL;
        struct timespec ts;
        uint64_t now;
        int r;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;

        reply = json_object_new_object();
        limits = json_object_new_object();
        counters = json_object_new_object();
        if (!reply || !limits || !counters)
                return -ENOMEM;

        if ((r = json_add_uint(limits, "maxMessageBytes", l->max_message_size)) < 0 ||
            (r = json_add_uint(limits, "maxOutputBytes", l->max_output_size)) < 0 ||
            (r = json_add_uint(limits, "maxConnections", l->max_connections)) < 0 ||
            (r = json_add_uint(limits, "maxConnectionsPerUid", l->max_connections_per_uid)) < 0 ||
            (r = json_add_uint(limits, "maxJsonDepth", l->max_json_depth)) < 0)
                return r;

        if ((r = json_add_uint(counters, "connections", varlink_server_connection_count(m->varlink))) < 0 ||
            (r = json_add_uint(counters, "connectionsTotal", varlink_server_connections_total(m->varlink))) < 0 ||
            (r = json_add_uint(counters, "connectionsRejected", varlink_server_connections_rejected(m->varlink))) < 0 ||
            (r = json_add_uint(counters, "protocolErrors", varlink_server_protocol_errors(m->varlink))) < 0 ||
            (r = json_add_uint(counters, "callsTotal", varlink_server_calls_total(m->varlink))) < 0)
                return r;

        if ((r = json_add_string(reply, "version", PROJECT_VERSION)) < 0 ||
            (r = json_add_int(reply, "pid", getpid())) < 0 ||
            (r = json_add_uint(reply, "uptimeUSec", now - m->start_usec)) < 0 ||
            (r = json_add_string(reply, "configPath", m->config_path)) < 0 ||
            (r = json_add_bool(reply, "configFileFound", m->config_file_found)) < 0 ||
            (r = json_add_string(reply, "runtimeDirectory", m->config.runtime_dir)) < 0 ||
            (r = json_add_string(reply, "stateDirectory", m->config.state_dir)) < 0 ||
            (r = json_add_string(reply, "varlinkAddress", m->varlink_address)) < 0 ||
            (r = json_add_string(reply, "logLevel", log_level_to_string(log_get_max_level()))) < 0 ||
            (r = json_add_string(reply, "adminGroup", m->config.admin_group)) < 0 ||
            (r = json_add_string(reply, "status", strempty(m->status))) < 0 ||
            (r = json_add(reply, "limits", TAKE_PTR(limits))) < 0 ||
            (r = json_add(reply, "counters", TAKE_PTR(counters))) < 0)
                return r;

        return varlink_reply(c, TAKE_PTR(reply));
}

static int vl_reload(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ char *error = NULL;
        _cleanup_json_ json_object *p = NULL;
        int r;

        log_info("Reload requested over varlink by uid %u.", (unsigned) varlink_connection_get_peer_uid(c));
        r = manager_reload(m, &error);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                p = json_object_new_object();
                if (!p || json_add_string(p, "message", error ?: strerror(-r)) < 0)
                        return -ENOMEM;
                return varlink_error(c, VARLINK_ERROR(CONFIG_INVALID), TAKE_PTR(p));
        }
        return varlink_reply(c, NULL);
}

static int vl_set_log_level(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        int level = log_level_from_string(json_get_string(parameters, "level"));

        if (level < 0)
                return varlink_error_invalid_parameter(c, "level");

        log_set_max_level(level);
        log_info("Log level set to %s by uid %u.", log_level_to_string(level),
                 (unsigned) varlink_connection_get_peer_uid(c));
        return varlink_reply(c, NULL);
}

static const VarlinkMethod daemon_methods[] = {
        { "GetDaemonStatus", vl_get_daemon_status, (const VarlinkField[]) { { NULL } }, 0 },
        { "Reload", vl_reload, (const VarlinkField[]) { { NULL } }, VARLINK_METHOD_PRIVILEGED },
        { "SetLogLevel", vl_set_log_level, (const VarlinkField[]) { { "level", VARLINK_STRING, 0 }, { NULL } },
          VARLINK_METHOD_PRIVILEGED },
        { NULL },
};

/* io.memvisor.Manager is served from the tables of several files: the daemon's own methods here, the
 * guests' in manager-vms.c. */
static int manager_build_interface(Manager *m) {
        const VarlinkMethod *const tables[] = {
                daemon_methods,
                manager_vm_methods(),
                manager_metrics_methods(),
                manager_balloon_methods(),
                manager_numa_methods(),
                manager_agent_methods(),
                manager_experiment_methods(),
                manager_experiment_compare_methods(),
                manager_monitor_methods(),
                manager_dirty_rate_methods(),
                manager_console_methods(),
                manager_host_methods(),
                manager_hotplug_methods(),
        };
        size_t n = 0, k = 0;

        for (size_t t = 0; t < ELEMENTSOF(tables); t++)
                for (const VarlinkMethod *i = tables[t]; i->name; i++)
                        n++;

        m->methods = calloc(n + 1, sizeof(VarlinkMethod));
        if (!m->methods)
                return -ENOMEM;
        for (size_t t = 0; t < ELEMENTSOF(tables); t++)
                for (const VarlinkMethod *i = tables[t]; i->name; i++)
                        m->methods[k++] = *i;

        m->interface = (VarlinkInterface) {
                .name = "io.memvisor.Manager",
                .description = varlink_idl_io_memvisor_Manager,
                .methods = m->methods,
        };
        return 0;
}

int manager_varlink_register(Manager *m) {
        int r;

        r = manager_build_interface(m);
        if (r < 0)
                return r;
        r = varlink_server_add_interface(m->varlink, &m->interface);
        if (r < 0)
                return r;
        r = varlink_server_set_internal_error(m->varlink, VARLINK_ERROR(INTERNAL_ERROR));
        if (r < 0)
                return r;

#if ENABLE_CERTIFICATION
        r = certification_register(m->varlink);
        if (r < 0)
                return r;
#endif
        return 0;
}
