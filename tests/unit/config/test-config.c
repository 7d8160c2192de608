/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* memvisord.conf loading: defaults, every key, command line overrides, errors naming FILE:LINE. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <sys/stat.h>

#include "config/config.h"

typedef struct Fixture {
        char dir[64];
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(Fixture));

        assert_non_null(f);
        strcpy(f->dir, "/tmp/test-config-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *cmd = NULL;

        assert_true(asprintf(&cmd, "rm -rf '%s'", f->dir) > 0);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

/* Writes a fixture file into the test directory; returns its path. */
static char *fixture(Fixture *f, const char *name, const char *text) {
        char *path = NULL;
        FILE *file;

        assert_true(asprintf(&path, "%s/%s", f->dir, name) > 0);
        file = fopen(path, "we");
        assert_non_null(file);
        assert_int_equal(fputs(text, file) >= 0, true);
        assert_int_equal(fclose(file), 0);
        return path;
}

static ConfigOverrides no_overrides(void) {
        return (ConfigOverrides) {
                .log_level = -1,
                .log_target = _LOG_TARGET_INVALID,
        };
}

static void assert_defaults(const DaemonConfig *c) {
        _cleanup_free_ char *buf = NULL;
        VarlinkServerLimits l = config_varlink_limits(c);

        assert_string_equal(c->runtime_dir, DEFAULT_RUNTIME_DIR);
        assert_string_equal(c->state_dir, DEFAULT_STATE_DIR);
        assert_int_equal(c->log_level, LOG_INFO);
        assert_int_equal(c->log_target, LOG_TARGET_AUTO);
        assert_null(c->admin_group);
        assert_null(c->varlink_address);
        assert_int_equal(c->socket_mode, DEFAULT_SOCKET_MODE);
        assert_string_equal(config_varlink_address(c, &buf), "/run/memvisor/io.memvisor.Manager");

        assert_int_equal(l.max_message_size, VARLINK_DEFAULT_MAX_MESSAGE_SIZE);
        assert_int_equal(l.max_output_size, VARLINK_DEFAULT_MAX_OUTPUT_SIZE);
        assert_int_equal(l.max_connections, VARLINK_DEFAULT_MAX_CONNECTIONS);
        assert_int_equal(l.max_connections_per_uid, VARLINK_DEFAULT_MAX_CONNECTIONS_PER_UID);
        assert_int_equal(l.max_json_depth, VARLINK_DEFAULT_MAX_JSON_DEPTH);
}

static void test_missing_file(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *path = NULL, *error = NULL;
        ConfigOverrides o = no_overrides();
        DaemonConfig c;
        bool found = true;

        assert_true(asprintf(&path, "%s/memvisord.conf", f->dir) > 0);
        assert_int_equal(config_load(path, &o, &c, &found, &error), 0);
        assert_false(found);
        assert_null(error);
        assert_defaults(&c);
        config_done(&c);

        /* No overrides at all, and no interest in "found". */
        assert_int_equal(config_load(path, NULL, &c, NULL, &error), 0);
        assert_defaults(&c);
        config_done(&c);
}

static void test_empty_and_comments(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *path = NULL, *error = NULL;
        ConfigOverrides o = no_overrides();
        DaemonConfig c;
        bool found = false;

        /* Like the shipped file: every default, commented out. */
        path = fixture(f, "memvisord.conf",
                       "# memvisord.conf\n"
                       "[Daemon]\n"
                       "#RuntimeDirectory=/run/memvisor\n"
                       "#LogLevel=info\n"
                       "\n"
                       "[Varlink]\n"
                       ";MaxConnections=256\n");
        assert_int_equal(config_load(path, &o, &c, &found, &error), 0);
        assert_true(found);
        assert_null(error);
        assert_defaults(&c);
        config_done(&c);
}

static void test_every_key(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *path = NULL, *error = NULL, *buf = NULL;
        ConfigOverrides o = no_overrides();
        DaemonConfig c;
        VarlinkServerLimits l;
        bool found = false;

        path = fixture(f, "memvisord.conf",
                       "[Daemon]\n"
                       "RuntimeDirectory=/run/mv-test\n"
                       "StateDirectory=/var/lib/mv-test\n"
                       "LogLevel=debug\n"
                       "LogTarget=console\n"
                       "AdminGroup=memvisor-admin\n"
                       "\n"
                       "[Varlink]\n"
                       "Address=/run/mv-test/socket\n"
                       "SocketMode=0660\n"
                       "MaxMessageSize=1M\n"
                       "MaxOutputSize=2.5M\n"
                       "MaxConnections=10\n"
                       "MaxConnectionsPerUID=3\n"
                       "MaxJSONDepth=20\n");
        assert_int_equal(config_load(path, &o, &c, &found, &error), 0);
        assert_true(found);
        assert_null(error);

        assert_string_equal(c.runtime_dir, "/run/mv-test");
        assert_string_equal(c.state_dir, "/var/lib/mv-test");
        assert_int_equal(c.log_level, LOG_DEBUG);
        assert_int_equal(c.log_target, LOG_TARGET_CONSOLE);
        assert_string_equal(c.admin_group, "memvisor-admin");
        assert_string_equal(c.varlink_address, "/run/mv-test/socket");
        assert_string_equal(config_varlink_address(&c, &buf), "/run/mv-test/socket");
        assert_int_equal(c.socket_mode, 0660);
        assert_int_equal(c.max_message_size, 1024 * 1024);
        assert_int_equal(c.max_output_size, 2560 * 1024);
        assert_int_equal(c.max_connections, 10);
        assert_int_equal(c.max_connections_per_uid, 3);
        assert_int_equal(c.max_json_depth, 20);

        l = config_varlink_limits(&c);
        assert_int_equal(l.max_message_size, 1024 * 1024);
        assert_int_equal(l.max_output_size, 2560 * 1024);
        assert_int_equal(l.max_connections, 10);
        assert_int_equal(l.max_connections_per_uid, 3);
        assert_int_equal(l.max_json_depth, 20);
        config_done(&c);
}

static void test_other_spellings(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *path = NULL, *error = NULL, *buf = NULL;
        DaemonConfig c;

        path = fixture(f, "a.conf",
                       "[Daemon]\n"
                       "RuntimeDirectory=/run/x/\n"
                       "LogLevel=4\n"
                       "LogTarget=journal\n"
                       "AdminGroup=wheel\n"
                       "AdminGroup=\n"
                       "[Varlink]\n"
                       "Address=/tmp/a\n"
                       "Address=\n"
                       "MaxMessageSize=4096\n"
                       "MaxOutputSize=1G\n"
                       "MaxConnections=65536\n"
                       "MaxJSONDepth=2\n");
        assert_int_equal(config_load(path, NULL, &c, NULL, &error), 0);
        assert_int_equal(c.log_level, LOG_WARNING);
        assert_int_equal(c.log_target, LOG_TARGET_JOURNAL);
        /* An empty value resets to the default. */
        assert_null(c.admin_group);
        assert_null(c.varlink_address);
        assert_string_equal(config_varlink_address(&c, &buf), "/run/x/io.memvisor.Manager");
        assert_int_equal(c.max_message_size, 4096);
        assert_int_equal(c.max_output_size, UINT64_C(1) << 30);
        assert_int_equal(c.max_connections, 65536);
        assert_int_equal(c.max_json_depth, 2);
        /* The state directory was not set: default. */
        assert_string_equal(c.state_dir, DEFAULT_STATE_DIR);
        config_done(&c);
}

static void test_overrides(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *path = NULL, *missing = NULL, *error = NULL, *buf = NULL;
        ConfigOverrides o = no_overrides();
        DaemonConfig c;

        path = fixture(f, "memvisord.conf",
                       "[Daemon]\n"
                       "RuntimeDirectory=/run/file\n"
                       "StateDirectory=/var/lib/file\n"
                       "LogLevel=debug\n"
                       "LogTarget=journal\n"
                       "[Varlink]\n"
                       "Address=/run/file/socket\n");

        /* Nothing overridden: the file's values. */
        assert_int_equal(config_load(path, &o, &c, NULL, &error), 0);
        assert_string_equal(c.runtime_dir, "/run/file");
        assert_string_equal(c.state_dir, "/var/lib/file");
        assert_int_equal(c.log_level, LOG_DEBUG);
        assert_int_equal(c.log_target, LOG_TARGET_JOURNAL);
        assert_string_equal(c.varlink_address, "/run/file/socket");
        config_done(&c);

        /* Everything overridden: the command line wins. */
        o.runtime_dir = strdup("/run/cmdline");
        o.state_dir = strdup("/var/lib/cmdline");
        o.varlink_address = strdup("/run/cmdline/socket");
        o.log_level = LOG_ERR;
        o.log_target = LOG_TARGET_CONSOLE;
        assert_non_null(o.runtime_dir);
        assert_non_null(o.state_dir);
        assert_non_null(o.varlink_address);
        assert_int_equal(config_load(path, &o, &c, NULL, &error), 0);
        assert_string_equal(c.runtime_dir, "/run/cmdline");
        assert_string_equal(c.state_dir, "/var/lib/cmdline");
        assert_string_equal(c.varlink_address, "/run/cmdline/socket");
        assert_int_equal(c.log_level, LOG_ERR);
        assert_int_equal(c.log_target, LOG_TARGET_CONSOLE);
        config_done(&c);

        /* LOG_EMERG (0) is a real override, not "unset". */
        o.log_level = LOG_EMERG;
        o.log_target = LOG_TARGET_AUTO;
        assert_int_equal(config_load(path, &o, &c, NULL, &error), 0);
        assert_int_equal(c.log_level, LOG_EMERG);
        assert_int_equal(c.log_target, LOG_TARGET_AUTO);
        config_done(&c);

        /* Overrides apply without a file as well; the socket follows the runtime directory. */
        config_overrides_done(&o);
        o = no_overrides();
        o.runtime_dir = strdup("/run/only-cmdline");
        assert_non_null(o.runtime_dir);
        assert_true(asprintf(&missing, "%s/missing.conf", f->dir) > 0);
        assert_int_equal(config_load(missing, &o, &c, NULL, &error), 0);
        assert_string_equal(c.runtime_dir, "/run/only-cmdline");
        assert_string_equal(config_varlink_address(&c, &buf), "/run/only-cmdline/io.memvisor.Manager");
        assert_string_equal(c.state_dir, DEFAULT_STATE_DIR);
        config_done(&c);
        config_overrides_done(&o);
}

static void test_errors(void **state) {
        Fixture *f = *state;
        static const struct {
                const char *text;
                int r;
                const char *message;    /* after "PATH:" */
        } cases[] = {
                { "[Varlink]\nMaxMessageSize=1K\n", -ERANGE,
                  "2: Invalid value '1K' for MaxMessageSize=: out of range 4096…1073741824" },
                { "[Varlink]\n\nMaxOutputSize=2G\n", -ERANGE,
                  "3: Invalid value '2G' for MaxOutputSize=: out of range 4096…1073741824" },
                { "[Varlink]\nMaxConnections=0\n", -ERANGE,
                  "2: Invalid value '0' for MaxConnections=: out of range 1…65536" },
                { "[Varlink]\nMaxConnectionsPerUID=65537\n", -ERANGE,
                  "2: Invalid value '65537' for MaxConnectionsPerUID=: out of range 1…65536" },
                { "[Varlink]\nMaxJSONDepth=1\n", -ERANGE,
                  "2: Invalid value '1' for MaxJSONDepth=: out of range 2…10000" },
                { "[Varlink]\nSocketMode=rw-rw----\n", -EINVAL,
                  "2: Invalid value 'rw-rw----' for SocketMode=: expected an octal file mode such as 0660" },
                { "[Varlink]\nAddress=run/socket\n", -EINVAL,
                  "2: Invalid value 'run/socket' for Address=: expected an absolute path (unix:/path) or an abstract name (unix:@name)" },
                { "[Daemon]\nLogTarget=syslog\n", -EINVAL,
                  "2: Invalid value 'syslog' for LogTarget=: expected auto, journal or console" },
                { "[Daemon]\nLogLevel=verbose\n", -EINVAL,
                  "2: Invalid value 'verbose' for LogLevel=: expected one of emerg, alert, crit, err, warning, "
                  "notice, info, debug" },
                { "[Daemon]\nAdminGroup=bad group\n", -EINVAL,
                  "2: Invalid value 'bad group' for AdminGroup=: not a valid group name" },
                { "[Daemon]\nAdminGroup=a/b\n", -EINVAL,
                  "2: Invalid value 'a/b' for AdminGroup=: not a valid group name" },
                { "[Daemon]\nStateDirectory=var/lib\n", -EINVAL,
                  "2: Invalid value 'var/lib' for StateDirectory=: not an absolute path" },
                { "[Daemon]\nRuntimeDir=/run/x\n", -EINVAL, "2: Unknown key 'RuntimeDir' in section [Daemon]" },
                { "[Daemon]\nAddress=/run/x\n", -EINVAL, "2: Unknown key 'Address' in section [Daemon]" },
                { "# c\n[Exporters]\nListen=127.0.0.1:9000\n", -EINVAL, "2: Unknown section [Exporters]" },
                { "[Exporter]\nListenAddress=localhost:9000\n", -EINVAL,
                  "2: Invalid value 'localhost:9000' for ListenAddress=: expected IPV4:PORT or [IPV6]:PORT" },
                { "LogLevel=debug\n", -EINVAL, "1: Assignment 'LogLevel=' outside of any section" },
                { "[Daemon]\nLogLevel debug\n", -EINVAL, "2: Expected 'Key=Value', got 'LogLevel debug'" },
                /* Checks across keys name the line of the key that made the file inconsistent. */
                { "[Varlink]\nMaxOutputPerUID=8M\n\n[Daemon]\nLogLevel=info\n[Varlink]\n  MaxOutputTotal = 5945\n", -EINVAL,
                  "7: [Varlink] MaxOutputTotal= (5945) must be at least MaxOutputPerUID= (8388608)" },
                { "[Balloon]\nCommitHighPercent=90\n# the pair\nCommitLowPercent=95\n", -EINVAL,
                  "4: [Balloon] CommitLowPercent= is out of range: HostAvailableHighPercent= must be greater than "
                  "HostAvailableLowPercent=, CommitLowPercent= less than CommitHighPercent=, MaxStep= at least 1M" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *path = NULL, *error = NULL, *expected = NULL;
                ConfigOverrides o = no_overrides();
                DaemonConfig c, before;
                bool found = false;
                int r;

                memset(&c, 0x5a, sizeof(c));
                memcpy(&before, &c, sizeof(c));
                path = fixture(f, "memvisord.conf", cases[i].text);
                r = config_load(path, &o, &c, &found, &error);
                if (r != cases[i].r)
                        fail_msg("case %zu: expected %d, got %d (%s)", i, cases[i].r, r, strna(error));
                assert_true(asprintf(&expected, "%s:%s", path, cases[i].message) > 0);
                assert_non_null(error);
                assert_string_equal(error, expected);
                /* ret is untouched on failure */
                assert_memory_equal(&c, &before, sizeof(c));
        }
}

static void test_unreadable(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *error = NULL;
        DaemonConfig c;

        /* A directory where the file should be: an error that names it, not "missing". */
        assert_true(config_load(f->dir, NULL, &c, NULL, &error) < 0);
        assert_non_null(error);
        assert_non_null(startswith(error, f->dir));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_empty_and_comments, setup, teardown),
                cmocka_unit_test_setup_teardown(test_every_key, setup, teardown),
                cmocka_unit_test_setup_teardown(test_other_spellings, setup, teardown),
                cmocka_unit_test_setup_teardown(test_overrides, setup, teardown),
                cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
