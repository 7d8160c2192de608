/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <stdio.h>

#include "varlink/address.h"
#include "build-config.h"
#include "daemon/caps.h"
#include "config/config.h"
#include "basic/log.h"
#include "daemon/manager.h"
#include "basic/rlimit-util.h"

static void help(void) {
        printf("%s [OPTIONS...]\n\n"
               "Supervise QEMU/KVM guests and study and steer their memory.\n\n"
               "  -h --help                 Show this help\n"
               "     --version              Show the version\n"
               "     --config=PATH          Configuration file (default: " DEFAULT_CONFIG_PATH ")\n"
               "     --varlink-address=PATH Varlink socket (default: RUNTIME_DIR/" VARLINK_SOCKET_NAME ")\n"
               "     --runtime-dir=PATH     Runtime directory (default: " DEFAULT_RUNTIME_DIR ")\n"
               "     --state-dir=PATH       State directory (default: " DEFAULT_STATE_DIR ")\n"
               "     --vm-dir=PATH          Directory of .vm definitions (default: " DEFAULT_VM_DIR ")\n"
               "     --log-target=TARGET    auto, journal or console\n"
               "     --log-level=LEVEL      emerg, alert, crit, err, warning, notice, info, debug\n"
               "     --check-config         Parse the configuration, report problems and exit\n"
               "     --list-metrics         Print the exported metric families (markdown) and exit\n"
               "\nSee memvisord(8) and memvisord.conf(5).\n",
               program_invocation_short_name);
}

int main(int argc, char *argv[]) {
        enum {
                ARG_VERSION = 0x100,
                ARG_CONFIG,
                ARG_VARLINK_ADDRESS,
                ARG_RUNTIME_DIR,
                ARG_STATE_DIR,
                ARG_VM_DIR,
                ARG_LOG_TARGET,
                ARG_LOG_LEVEL,
                ARG_CHECK_CONFIG,
                ARG_LIST_METRICS,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "varlink-address", required_argument, NULL, ARG_VARLINK_ADDRESS },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME_DIR },
                { "state-dir", required_argument, NULL, ARG_STATE_DIR },
                { "vm-dir", required_argument, NULL, ARG_VM_DIR },
                { "log-target", required_argument, NULL, ARG_LOG_TARGET },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "check-config", no_argument, NULL, ARG_CHECK_CONFIG },
                { "list-metrics", no_argument, NULL, ARG_LIST_METRICS },
                {}
        };
        _cleanup_(config_overrides_done) ConfigOverrides o = { .log_level = -1, .log_target = _LOG_TARGET_INVALID };
        _cleanup_(manager_freep) Manager *m = NULL;
        _cleanup_free_ char *config_path = NULL;
        bool check_config = false;
        int c, idx, r;

        log_set_identifier("memvisord");

        while ((c = getopt_long(argc, argv, "h", options, &idx)) >= 0) {
                char **target = NULL;

                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("memvisord %s\n", PROJECT_VERSION);
                        return EXIT_SUCCESS;
                case ARG_CONFIG:
                        target = &config_path;
                        break;
                case ARG_VARLINK_ADDRESS:
                        target = &o.varlink_address;
                        break;
                case ARG_RUNTIME_DIR:
                        target = &o.runtime_dir;
                        break;
                case ARG_STATE_DIR:
                        target = &o.state_dir;
                        break;
                case ARG_VM_DIR:
                        target = &o.vm_dir;
                        break;
                case ARG_LOG_TARGET:
                        o.log_target = log_target_from_string(optarg);
                        if (o.log_target < 0) {
                                log_error("Invalid --log-target=%s: expected auto, journal or console.", optarg);
                                return EXIT_FAILURE;
                        }
                        break;
                case ARG_LOG_LEVEL:
                        o.log_level = log_level_from_string(optarg);
                        if (o.log_level < 0) {
                                log_error("Invalid --log-level=%s.", optarg);
                                return EXIT_FAILURE;
                        }
                        break;
                case ARG_LIST_METRICS:
                        return manager_metrics_list() < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
                case ARG_CHECK_CONFIG:
                        check_config = true;
                        break;
                case '?':
                        return EXIT_FAILURE;
                default:
                        abort();
                }

                if (target) {
                        const char *reason = NULL;
                        VarlinkAddress a;

                        if (target == &o.varlink_address) {
                                if (varlink_address_parse(optarg, &a, &reason) < 0) {
                                        log_error("Invalid --varlink-address=%s: %s.", optarg, reason);
                                        return EXIT_FAILURE;
                                }
                        } else if (c != ARG_CONFIG && optarg[0] != '/') {
                                log_error("%s needs an absolute path, got '%s'.", options[idx].name,
                                          optarg);
                                return EXIT_FAILURE;
                        }
                        if (free_and_strdup(target, optarg) < 0)
                                return log_oom(), EXIT_FAILURE;
                }
        }
        if (optind < argc) {
                log_error("Unexpected argument '%s'.", argv[optind]);
                return EXIT_FAILURE;
        }

        if (o.log_target >= 0)
                log_set_target(o.log_target);
        if (o.log_level >= 0)
                log_set_max_level(o.log_level);

        if (!config_path && !(config_path = strdup(DEFAULT_CONFIG_PATH)))
                return log_oom(), EXIT_FAILURE;

        r = manager_new(&m, TAKE_PTR(config_path), &o);
        if (r < 0) {
                log_error_errno(r, "Failed to set up: %m");
                return EXIT_FAILURE;
        }

        r = manager_load_config(m);
        if (r < 0)
                return EXIT_FAILURE;
        if (check_config) {
                printf("%s: %s\n", m->config_path, m->config_file_found ? "OK" : "not found, built-in defaults apply");
                return EXIT_SUCCESS;
        }

        r = caps_drop_unneeded();
        if (r < 0)
                return EXIT_FAILURE;

        /* Every guest holds a QMP socket and a pidfd: up to MANAGER_MAX_VMS guests need more fds than the soft
         * limit of 1024 that services get by default. Raise it to the hard limit (as systemd does for itself);
         * guests are started with the original soft limit again. */
        long nofile = rlimit_nofile_bump(MANAGER_RLIMIT_NOFILE);
        if (nofile < 0)
                log_warning_errno((int) nofile, "Failed to raise the limit of open files, ignoring: %m");
        else if ((unsigned long) nofile < MANAGER_RLIMIT_NOFILE)
                log_notice("The limit of open files is %ld (hard limit): fewer guests than %u may fit.", nofile,
                           MANAGER_MAX_VMS);

        r = manager_start(m);
        if (r < 0)
                return EXIT_FAILURE;

        r = manager_run(m);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
