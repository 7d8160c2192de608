/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "varlink/address.h"
#include "build-config.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "daemon/manager-experiment.h"
#include "daemon/manager-persist.h"
#include "daemon/manager.h"

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

int manager_new(Manager **ret, char *config_path, ConfigOverrides *overrides) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;

        m->config_path = config_path;
        m->overrides = *overrides;
        *overrides = (ConfigOverrides) { .log_level = -1, .log_target = _LOG_TARGET_INVALID };
        m->admin_gid = (gid_t) -1;
        m->lock_fds[0] = m->lock_fds[1] = -EBADF;
        m->start_usec = now_usec(CLOCK_MONOTONIC);
        config_init(&m->config);

        r = sd_event_new(&m->event);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;

        manager_experiment_done(m);
        manager_agent_done(m);
        manager_layout_done(m);
        manager_dirty_rate_done(m);
        manager_hotplug_done(m);
        manager_host_done(m);
        m->varlink = varlink_server_free(m->varlink);
        manager_dbus_done(m);
        manager_persist_done(m);
        manager_guests_done(m);
        manager_numa_done(m);
        manager_balloon_done(m);
        manager_metrics_done(m);
        manager_vms_done(m);
        free(m->methods);
        m->event = sd_event_unref(m->event);
        config_done(&m->config);
        config_overrides_done(&m->overrides);
        free(m->config_path);
        free(m->varlink_address);
        free(m->status);
        for (size_t i = 0; i < ELEMENTSOF(m->lock_fds); i++)
                safe_close(m->lock_fds[i]);
        free(m);
        return NULL;
}

void manager_set_status(Manager *m, const char *format, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&s, format, ap) < 0)
                s = NULL;
        va_end(ap);
        if (!s)
                return;

        (void) sd_notifyf(false, "STATUS=%s", s);
        free(m->status);
        m->status = TAKE_PTR(s);
}

/* Resolves AdminGroup= (an NSS lookup, so only at load time, never in a request path). */
static int resolve_admin_group(const DaemonConfig *c, gid_t *ret_gid, char **ret_error) {
        struct group *g;

        if (!c->admin_group) {
                *ret_gid = (gid_t) -1;
                return 0;
        }
        errno = 0;
        g = getgrnam(c->admin_group);
        if (!g) {
                if (asprintf(ret_error, "AdminGroup=%s: no such group", c->admin_group) < 0)
                        *ret_error = NULL;
                return errno > 0 ? -errno : -ESRCH;
        }
        *ret_gid = g->gr_gid;
        return 0;
}

/* Applies settings that can change while running. */
static void manager_apply_config(Manager *m) {
        VarlinkServerLimits limits = config_varlink_limits(&m->config);

        log_set_max_level(m->config.log_level);
        log_set_target(m->config.log_target);

        if (m->varlink) {
                int r = varlink_server_set_limits(m->varlink, &limits);
                if (r < 0)
                        log_warning_errno(r, "Failed to apply varlink limits, ignoring: %m");
                varlink_server_set_privileged_gid(m->varlink, m->admin_gid);
        }
}

int manager_load_config(Manager *m) {
        _cleanup_free_ char *error = NULL;
        DaemonConfig c;
        gid_t gid;
        bool found;
        int r;

        r = config_load(m->config_path, &m->overrides, &c, &found, &error);
        if (r < 0)
                return log_struct(LOG_ERR, r, STRV(MESSAGE_ID_CONFIG_INVALID),
                                  "Invalid configuration: %s", error ?: strerror(-r));

        r = resolve_admin_group(&c, &gid, &error);
        if (r < 0) {
                config_done(&c);
                return log_struct(LOG_ERR, r, STRV(MESSAGE_ID_CONFIG_INVALID), "Invalid configuration: %s: %s",
                                  m->config_path, error ?: strerror(-r));
        }

        config_done(&m->config);
        m->config = c;
        m->config_file_found = found;
        m->admin_gid = gid;
        manager_apply_config(m);
        manager_agent_apply_config(m);

        if (!found)
                log_debug("No %s, using built-in defaults.", m->config_path);
        return 0;
}

int manager_reload(Manager *m, char **ret_error) {
        _cleanup_free_ char *error = NULL, *old_addr_buf = NULL, *new_addr_buf = NULL;
        DaemonConfig c;
        gid_t gid;
        bool found;
        int r;

        (void) sd_notifyf(false, "RELOADING=1\nSTATUS=Reloading configuration…\nMONOTONIC_USEC=%" PRIu64,
                          now_usec(CLOCK_MONOTONIC));

        r = config_load(m->config_path, &m->overrides, &c, &found, &error);
        if (r >= 0) {
                r = resolve_admin_group(&c, &gid, &error);
                if (r < 0)
                        config_done(&c);
        }
        if (r < 0) {
                log_struct(LOG_ERR, r, STRV(MESSAGE_ID_CONFIG_INVALID),
                           "Failed to reload configuration, keeping the old one: %s",
                           error ?: strerror(-r));
                if (ret_error)
                        *ret_error = TAKE_PTR(error);
                (void) sd_notify(false, "READY=1");
                manager_set_status(m, "%s", "Configuration reload failed, running with the previous one");
                return r;
        }

        if (!streq_ptr(config_varlink_address(&m->config, &old_addr_buf), config_varlink_address(&c, &new_addr_buf)) ||
            !streq_ptr(m->config.runtime_dir, c.runtime_dir) || !streq_ptr(m->config.state_dir, c.state_dir) ||
            m->config.socket_mode != c.socket_mode)
                log_notice("Socket address, mode, RuntimeDirectory= and StateDirectory= changes take effect "
                           "after a restart.");

        /* Keep what only a restart can change. */
        free(c.runtime_dir);
        free(c.state_dir);
        free(c.varlink_address);
        c.runtime_dir = TAKE_PTR(m->config.runtime_dir);
        c.state_dir = TAKE_PTR(m->config.state_dir);
        c.varlink_address = TAKE_PTR(m->config.varlink_address);
        c.socket_mode = m->config.socket_mode;

        config_done(&m->config);
        m->config = c;
        m->config_file_found = found;
        m->admin_gid = gid;
        manager_apply_config(m);
        manager_agent_apply_config(m);

        log_struct(LOG_INFO, 0, STRV(MESSAGE_ID_CONFIG_RELOADED), "Reloaded configuration from %s%s.",
                   m->config_path, found ? "" : " (not found, built-in defaults)");
        m->reloading = true; /* STATUS= goes out after READY=1 */
        (void) manager_vms_reload(m);
        m->reloading = false;
        (void) sd_notify(false, "READY=1");
        manager_update_status(m);
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) manager_reload(userdata, NULL);
        return 0;
}

/* StopGuestsOnExit=yes: the exit waits until the last guest has stopped (vm_stop escalates to SIGKILL). */
static void manager_on_vm_state_exit(Vm *vm, VmState old_state, void *userdata) {
        Manager *m = userdata;
        unsigned n;

        if (!m->stopping_guests)
                return;
        if (vm->state == VM_STATE_RESTARTING)
                (void) vm_stop(vm); /* the restart policy must not bring it back while we stop */
        n = vm_table_count(&m->guests).active;
        if (n > 0) {
                manager_set_status(m, "Stopping guests before exit: %u left…", n);
                return;
        }
        log_info("All guests stopped, exiting.");
        (void) sd_event_exit(m->event, 0);
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;
        unsigned n;

        if (m->stopping_guests) {
                log_info("Received %s while stopping guests, still waiting for them.", strsignal((int) si->ssi_signo));
                return 0;
        }
        n = m->config.stop_guests_on_exit ? vm_table_count(&m->guests).active : 0;
        if (n > 0) {
                log_info("Received %s, stopping %u guest%s before shutting down (StopGuestsOnExit=yes).",
                         strsignal((int) si->ssi_signo), n, n == 1 ? "" : "s");
                (void) sd_notifyf(false, "STOPPING=1\nSTATUS=Stopping %u guest%s before exit…", n, n == 1 ? "" : "s");
                m->stopping_guests = true;
                manager_experiment_interrupt_all(m);
                for (size_t i = 0; i < m->guests.n_vms; i++)
                        if (vm_is_active(m->guests.vms[i]) || m->guests.vms[i]->state == VM_STATE_RESTARTING)
                                (void) vm_stop(m->guests.vms[i]);
                return 0;
        }

        log_info("Received %s, shutting down.", strsignal((int) si->ssi_signo));
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Shutting down…");
        return sd_event_exit(m->event, 0);
}

/* Sockets handed over by systemd: "varlink" (and later "exporter"). */
static int manager_adopt_sockets(Manager *m, bool *ret_have_varlink) {
        char **names = NULL;
        bool have = false;
        int n, r = 0;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return log_error_errno(n, "Failed to get sockets from the service manager: %m");

        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names ? names[i] : "unknown";

                /* A single unnamed socket (e.g. systemd-socket-activate without --fdname) is the varlink one. */
                if (streq(name, "varlink") || (n == 1 && streq(name, "unknown"))) {
                        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
                                log_error("Socket '%s' passed in is not a listening AF_UNIX stream socket.", name);
                                (void) close(fd);
                                r = -ENOTSOCK;
                                continue;
                        }
                        r = varlink_server_listen_fd(m->varlink, fd);
                        if (r < 0) {
                                log_error_errno(r, "Failed to serve on passed varlink socket: %m");
                                (void) close(fd);
                                continue;
                        }
                        have = true;
                } else if (streq(name, "exporter")) {
                        /* memvisord-exporter.socket: the Prometheus exporter serves on it (manager-metrics.c). */
                        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
                                log_error("Socket '%s' passed in is not a listening stream socket.", name);
                                (void) close(fd);
                                r = -ENOTSOCK;
                                continue;
                        }
                        r = manager_metrics_adopt_exporter_fd(m, fd);
                        if (r < 0)
                                log_error_errno(r, "Failed to keep the passed exporter socket: %m");
                } else {
                        log_warning("Ignoring socket '%s' passed in by the service manager.", name);
                        (void) close(fd);
                }
        }

        for (int i = 0; names && i < n; i++)
                free(names[i]);
        free(names);

        *ret_have_varlink = have;
        return r < 0 ? r : 0;
}

int manager_start(Manager *m) {
        _cleanup_free_ char *addr_buf = NULL;
        VarlinkServerLimits limits = config_varlink_limits(&m->config);
        const char *address;
        VarlinkAddress a;
        bool activated = false;
        sigset_t ss;
        int r;

        manager_set_status(m, "%s", "Starting…");

        r = mkdir_p(m->config.runtime_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create runtime directory %s: %m", m->config.runtime_dir);
        r = mkdir_p(m->config.state_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Failed to create state directory %s: %m", m->config.state_dir);

        /* One daemon per runtime and state directory: a second one would re-adopt the first one's guests. */
        for (size_t i = 0; i < ELEMENTSOF(m->lock_fds); i++) {
                const char *dir = i == 0 ? m->config.runtime_dir : m->config.state_dir;
                pid_t holder = 0;

                r = lock_directory(dir, "memvisord.lock", &m->lock_fds[i], &holder);
                if (r == -EBUSY)
                        return log_error_errno(r, "%s is in use by another memvisord (pid %i), refusing to start.",
                                               dir, (int) holder);
                if (r < 0)
                        return log_error_errno(r, "Failed to lock %s/memvisord.lock: %m", dir);
        }

        r = varlink_server_new(&m->varlink, m->event, PROJECT_VENDOR, "memvisord", PROJECT_VERSION, PROJECT_URL);
        if (r < 0)
                return log_error_errno(r, "Failed to create varlink server: %m");
        varlink_server_set_userdata(m->varlink, m);
        r = varlink_server_set_limits(m->varlink, &limits);
        if (r < 0)
                return log_error_errno(r, "Invalid varlink limits: %m");
        varlink_server_set_privileged_gid(m->varlink, m->admin_gid);

        r = manager_varlink_register(m);
        if (r < 0)
                return log_error_errno(r, "Failed to register varlink interfaces: %m");

        r = manager_adopt_sockets(m, &activated);
        if (r < 0)
                return r;

        if (activated) {
                m->varlink_address = strdup("socket-activated");
                if (!m->varlink_address)
                        return log_oom();
        } else {
                address = config_varlink_address(&m->config, &addr_buf);
                if (!address)
                        return log_oom();
                r = varlink_server_listen_address(m->varlink, address, m->config.socket_mode);
                if (r == -EADDRINUSE)
                        return log_error_errno(r, "Another memvisord is already listening on %s, refusing to start.",
                                               address);
                if (r == -EEXIST)
                        return log_error_errno(r, "%s exists and is not a socket, refusing to replace it.", address);
                if (r < 0)
                        return log_error_errno(r, "Failed to listen on %s: %m", address);
                m->varlink_address = strdup(address);
                if (!m->varlink_address)
                        return log_oom();

                if (m->admin_gid != (gid_t) -1 && varlink_address_parse(address, &a, NULL) >= 0 && !a.abstract &&
                    chown(a.sa.sun_path, (uid_t) -1, m->admin_gid) < 0)
                        log_warning_errno(errno, "Failed to give %s to group %s, ignoring: %m", address,
                                          m->config.admin_group);
        }

        sigemptyset(&ss);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        sigaddset(&ss, SIGCHLD); /* QEMU children are reaped through pidfd child sources */
        if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");

        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_exit_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGINT, on_exit_signal, m);
        if (r >= 0)
                r = sd_event_add_signal(m->event, NULL, SIGHUP, on_sighup, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up signal handlers: %m");

        /* Sends WATCHDOG=1 at half of WATCHDOG_USEC when the service manager asks for it. */
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                log_warning_errno(r, "Failed to enable the watchdog, ignoring: %m");

        r = manager_vms_start(m);
        if (r < 0)
                return r;
        r = manager_persist_start(m);
        if (r < 0)
                return r;
        r = manager_metrics_start(m);
        if (r < 0)
                return r;
        r = manager_balloon_start(m);
        if (r < 0)
                return r;
        r = manager_numa_start(m);
        if (r < 0)
                return r;
        r = manager_agent_start(m);
        if (r < 0)
                return r;
        r = manager_experiment_start(m);
        if (r < 0)
                return r;
        r = manager_dirty_rate_start(m);
        if (r < 0)
                return r;
        r = manager_hotplug_start(m);
        if (r < 0)
                return r;
        r = vm_context_add_state_watch(&m->vmctx, manager_on_vm_state_exit, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch guest states: %m");
        r = manager_dbus_start(m);
        if (r < 0)
                return r;

        return 0;
}

int manager_run(Manager *m) {
        int r;

        log_struct(LOG_INFO, 0, STRV(MESSAGE_ID_DAEMON_STARTED), "memvisord %s started, listening on %s.",
                   PROJECT_VERSION, m->varlink_address);
        (void) sd_notify(false, "READY=1");
        manager_update_status(m);

        r = sd_event_loop(m->event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");

        varlink_server_shutdown(m->varlink);
        log_struct(LOG_INFO, 0, STRV(MESSAGE_ID_DAEMON_STOPPED), "memvisord stopped.");
        return r;
}
