/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Experiment definitions: every key good and bad in the INI form and the JSON form (which must accept exactly
 * the same things and name the same field), the checks across keys, the size and text bounds, round trips
 * through experiment_spec_to_ini() and experiment_spec_to_json(), equality and copies. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/json-util.h"
#include "basic/strv.h"
#include "experiment/experiment-spec.h"

#define GUEST "[Experiment]\nGuest=web\n"

static char *strip_dup(const char *s, size_t n) {
        while (n > 0 && isspace((unsigned char) *s)) {
                s++;
                n--;
        }
        while (n > 0 && isspace((unsigned char) s[n - 1]))
                n--;
        return strndup(s, n);
}

/* Simple INI text (no continuation lines) as the JSON form: string values, a repeated key as an array,
 * an empty assignment as null. */
static json_object *ini_to_json(const char *text) {
        json_object *root = json_object_new_object(), *section = NULL;
        const char *p = text;

        assert_non_null(root);
        while (*p) {
                const char *e = strchrnul(p, '\n'), *eq;
                _cleanup_free_ char *line = strip_dup(p, (size_t) (e - p)), *key = NULL, *value = NULL;
                json_object *old;

                assert_non_null(line);
                p = *e ? e + 1 : e;
                if (line[0] == 0 || line[0] == '#')
                        continue;
                if (line[0] == '[') {
                        line[strlen(line) - 1] = 0;
                        if (!json_object_object_get_ex(root, line + 1, &section)) {
                                section = json_object_new_object();
                                json_object_object_add(root, line + 1, section);
                        }
                        continue;
                }
                eq = strchr(line, '=');
                assert_non_null(eq);
                assert_non_null(section);
                key = strip_dup(line, (size_t) (eq - line));
                value = strip_dup(eq + 1, strlen(eq + 1));
                if (json_object_object_get_ex(section, key, &old) && old) {
                        if (!json_object_is_type(old, json_type_array)) {
                                json_object *a = json_object_new_array();

                                json_object_array_add(a, json_object_get(old));
                                json_object_object_add(section, key, a);
                                old = a;
                        }
                        json_object_array_add(old, json_object_new_string(value));
                } else
                        json_object_object_add(section, key, value[0] ? json_object_new_string(value) : NULL);
        }
        return root;
}

static ExperimentSpec *parse_ok(const char *text) {
        ExperimentSpec *s = NULL, *j = NULL;
        ExperimentSpecError e = {};
        json_object *o;
        int r;

        r = experiment_spec_parse_ini("test.experiment", text, &s, &e);
        if (r < 0)
                fail_msg("INI refused (%d): %s\n%s", r, e.message, text);
        assert_null(e.message);

        o = ini_to_json(text);
        r = experiment_spec_parse_json(o, &j, &e);
        if (r < 0)
                fail_msg("JSON refused (%d): %s\n%s", r, e.message, json_object_to_json_string(o));
        assert_true(experiment_spec_equal(s, j));
        json_object_put(o);
        experiment_spec_free(j);
        return s;
}

/* Refused in both forms, naming field (NULL: none) and saying want in the message. */
static void parse_bad(const char *text, const char *field, const char *want) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = NULL;
        ExperimentSpecError e = {};
        json_object *o;
        int r;

        r = experiment_spec_parse_ini("test.experiment", text, &s, &e);
        if (r >= 0)
                fail_msg("INI accepted:\n%s", text);
        assert_null(s);
        assert_true(r == -EINVAL || r == -ERANGE || r == -E2BIG);
        assert_non_null(e.message);
        if (!strstr(e.message, want) || !startswith(e.message, "test.experiment:"))
                fail_msg("INI message '%s' does not say '%s'", e.message, want);
        if (!streq_ptr(e.field, field))
                fail_msg("INI field '%s', expected '%s' (%s)", strna(e.field), strna(field), e.message);
        experiment_spec_error_done(&e);

        o = ini_to_json(text);
        r = experiment_spec_parse_json(o, &s, &e);
        if (r >= 0)
                fail_msg("JSON accepted: %s", json_object_to_json_string(o));
        assert_non_null(e.message);
        if (!strstr(e.message, want))
                fail_msg("JSON message '%s' does not say '%s'", e.message, want);
        if (field && !streq_ptr(e.field, field))
                fail_msg("JSON field '%s', expected '%s' (%s)", strna(e.field), field, e.message);
        if (field && !startswith(e.message, field))
                fail_msg("JSON message '%s' does not start with the field", e.message);
        experiment_spec_error_done(&e);
        json_object_put(o);
}

static void test_defaults(void **state) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = parse_ok(GUEST);

        assert_string_equal(s->guest, "web");
        assert_null(s->name);
        assert_null(s->description);
        assert_int_equal(s->iterations, 10);
        assert_int_equal(s->warm_up, 0);
        assert_int_equal(s->settle_usec, USEC_PER_SEC);
        assert_int_equal(s->seed, 1);
        assert_int_equal(s->operation, EXPERIMENT_OPERATION_NONE);
        assert_int_equal(s->when, EXPERIMENT_WORKLOAD_DURING);
        assert_string_equal(s->program, "/usr/bin/memvisor-touch");
        assert_int_equal(s->n_arguments, 0);
        assert_int_equal(s->workload_timeout_usec, 300 * USEC_PER_SEC);
        assert_int_equal(s->counters, EXPERIMENT_COUNTERS_DEFAULT);
        assert_int_equal(s->required, 0);
        assert_int_equal(s->n_tracepoints, 0);
        assert_int_equal(s->moves, 2);
        assert_true(s->wait);
        assert_int_equal(s->timeout_usec, 60 * USEC_PER_SEC);

        /* A new spec has the same defaults, but no guest: it does not validate. */
        {
                _cleanup_(experiment_spec_freep) ExperimentSpec *n = experiment_spec_new();
                ExperimentSpecError e = {};

                assert_non_null(n);
                assert_int_equal(experiment_spec_validate(n, &e), -EINVAL);
                assert_string_equal(e.field, "Experiment.Guest");
                experiment_spec_error_done(&e);
                n->guest = strdup("web");
                assert_true(experiment_spec_equal(n, s));
                assert_int_equal(experiment_spec_validate(n, NULL), 0);
        }
}

static void test_migrate(void **state) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = parse_ok(
                "# comment\n"
                "[Experiment]\n"
                "Name=ping-1\n"
                "Description=first try: two nodes, 100 moves\n"
                "Guest=web.1\n"
                "Iterations=100\n"
                "WarmUp=5\n"
                "Settle=250ms\n"
                "Seed=18446744073709551615\n"
                "[Provoke]\n"
                "To=2-3\n"              /* before Operation=: the order does not matter */
                "Operation=migrate\n"
                "From=0,1\n"
                "[Workload]\n"
                "When=after\n"
                "Program=/opt/bench/run\n"
                "Arguments=--size 64M 'two words'\n"
                "Arguments=\"x y\" \\'q\n"
                "Timeout=90s\n"
                "[Measure]\n"
                "Counters=time host-tlb,host-migrate\n"
                "Counters=host-kvm-exits\n"
                "Tracepoints=kvm:kvm_mmu_page_fault sched:sched_switch\n"
                "Tracepoints=irq_vectors:call_function_entry\n"
                "Require=time host-tlb\n");

        assert_string_equal(s->name, "ping-1");
        assert_string_equal(s->description, "first try: two nodes, 100 moves");
        assert_string_equal(s->guest, "web.1");
        assert_int_equal(s->iterations, 100);
        assert_int_equal(s->warm_up, 5);
        assert_int_equal(s->settle_usec, 250 * USEC_PER_MSEC);
        assert_true(s->seed == UINT64_MAX);
        assert_int_equal(s->operation, EXPERIMENT_OPERATION_MIGRATE);
        assert_int_equal(s->from_nodes, 0x3);
        assert_int_equal(s->to_nodes, 0xc);
        assert_int_equal(s->when, EXPERIMENT_WORKLOAD_AFTER);
        assert_string_equal(s->program, "/opt/bench/run");
        assert_int_equal(s->n_arguments, 5);
        assert_string_equal(s->arguments[0], "--size");
        assert_string_equal(s->arguments[1], "64M");
        assert_string_equal(s->arguments[2], "two words");
        assert_string_equal(s->arguments[3], "x y");
        assert_string_equal(s->arguments[4], "'q");
        assert_null(s->arguments[5]);
        assert_int_equal(s->workload_timeout_usec, 90 * USEC_PER_SEC);
        assert_int_equal(s->counters, EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_TIME) |
                                      EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_HOST_TLB) |
                                      EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_HOST_MIGRATE) |
                                      EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_HOST_KVM_EXITS));
        assert_int_equal(s->required, EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_TIME) |
                                      EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_HOST_TLB));
        assert_int_equal(s->n_tracepoints, 3);
        assert_string_equal(s->tracepoints[2], "irq_vectors:call_function_entry");
}

static void test_pingpong_and_balloon(void **state) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *p = NULL, *b = NULL, *n = NULL;

        p = parse_ok(GUEST "[Provoke]\nOperation=migrate-pingpong\nBetween=1,0\nMoves=20\n");
        assert_int_equal(p->operation, EXPERIMENT_OPERATION_MIGRATE_PINGPONG);
        assert_int_equal(p->between_nodes, 0x3);
        assert_int_equal(p->moves, 20);

        b = parse_ok(GUEST "[Provoke]\nOperation=balloon\nTarget=1G\nReturn=2048M\nWait=no\nTimeout=2min\n"
                     "[Workload]\nWhen=none\n");
        assert_int_equal(b->operation, EXPERIMENT_OPERATION_BALLOON);
        assert_int_equal(b->target_bytes, UINT64_C(1) << 30);
        assert_int_equal(b->return_bytes, UINT64_C(2) << 30);
        assert_false(b->wait);
        assert_int_equal(b->timeout_usec, 120 * USEC_PER_SEC);
        assert_int_equal(b->when, EXPERIMENT_WORKLOAD_NONE);

        /* Empty assignments reset: the list, the counters, a value (INI only: the JSON form says it with arrays). */
        assert_int_equal(experiment_spec_parse_ini("t", GUEST "Iterations=5\nIterations=\n[Workload]\nArguments=a b\n"
                                                   "Arguments=\nArguments=c\n[Measure]\nCounters=time\nCounters=\n"
                                                   "Require=host-tlb\nRequire=\n", &n, NULL), 0);
        assert_int_equal(n->iterations, 10);
        assert_int_equal(n->n_arguments, 1);
        assert_string_equal(n->arguments[0], "c");
        assert_int_equal(n->counters, EXPERIMENT_COUNTERS_DEFAULT);
        assert_int_equal(n->required, 0);
}

typedef struct BadCase {
        const char *text;
        const char *field;
        const char *want;
} BadCase;

static void test_bad_values(void **state) {
        static const BadCase cases[] = {
                /* [Experiment] */
                { "[Experiment]\nIterations=3\n", "Experiment.Guest", "Guest= is not set" },
                { "[Experiment]\nGuest=-web\n", "Experiment.Guest", "expected a guest name" },
                { "[Experiment]\nGuest=a/b\n", "Experiment.Guest", "expected a guest name" },
                { GUEST "Name=.hidden\n", "Experiment.Name", "expected a name" },
                { GUEST "Iterations=0\n", "Experiment.Iterations", "expected a number from 1 to 10000" },
                { GUEST "Iterations=10001\n", "Experiment.Iterations", "from 1 to 10000" },
                { GUEST "Iterations=1000000000\n", "Experiment.Iterations", "from 1 to 10000" },
                { GUEST "Iterations=-1\n", "Experiment.Iterations", "from 1 to 10000" },
                { GUEST "Iterations=ten\n", "Experiment.Iterations", "from 1 to 10000" },
                { GUEST "Iterations=5\nWarmUp=5\n", "Experiment.WarmUp", "must be below Iterations=5" },
                { GUEST "WarmUp=10000\n", "Experiment.WarmUp", "from 0 to 9999" },
                { GUEST "Settle=2h\n", "Experiment.Settle", "from 0 to 1h" },
                { GUEST "Settle=infinity\n", "Experiment.Settle", "from 0 to 1h" },
                { GUEST "Settle=soon\n", "Experiment.Settle", "expected a time span" },
                { GUEST "Seed=-1\n", "Experiment.Seed", "expected a number from 0 to 18446744073709551615" },
                { GUEST "Seed=18446744073709551616\n", "Experiment.Seed", "expected a number" },
                /* [Provoke] */
                { GUEST "[Provoke]\nOperation=teleport\n", "Provoke.Operation",
                  "expected one of none, migrate, migrate-pingpong, balloon" },
                { GUEST "[Provoke]\nOperation=migrate\nTo=1\n", "Provoke.From", "needs From=" },
                { GUEST "[Provoke]\nOperation=migrate\nFrom=1\n", "Provoke.To", "needs To=" },
                { GUEST "[Provoke]\nOperation=migrate\nFrom=0-1\nTo=1,0\n", "Provoke.To", "the same as From=" },
                { GUEST "[Provoke]\nOperation=migrate\nFrom=64\nTo=1\n", "Provoke.From", "nodes below 64" },
                { GUEST "[Provoke]\nOperation=migrate\nFrom=zero\nTo=1\n", "Provoke.From", "NUMA node list" },
                { GUEST "[Provoke]\nOperation=migrate\nFrom=3-1\nTo=1\n", "Provoke.From", "NUMA node list" },
                { GUEST "[Provoke]\nFrom=0\n", "Provoke.From", "From= belongs to Operation=migrate, not to Operation=none" },
                { GUEST "[Provoke]\nOperation=balloon\nTarget=1G\nTo=1\n", "Provoke.To",
                  "To= belongs to Operation=migrate, not to Operation=balloon" },
                { GUEST "[Provoke]\nOperation=migrate\nFrom=0\nTo=1\nMoves=3\n", "Provoke.Moves",
                  "Moves= belongs to Operation=migrate-pingpong" },
                { GUEST "[Provoke]\nOperation=migrate-pingpong\nBetween=0,1\nWait=yes\n", "Provoke.Wait",
                  "Wait= belongs to Operation=balloon" },
                { GUEST "[Provoke]\nOperation=migrate-pingpong\n", "Provoke.Between", "needs Between=" },
                { GUEST "[Provoke]\nOperation=migrate-pingpong\nBetween=0\n", "Provoke.Between", "two different NUMA nodes" },
                { GUEST "[Provoke]\nOperation=migrate-pingpong\nBetween=0-2\n", "Provoke.Between", "two different" },
                { GUEST "[Provoke]\nOperation=migrate-pingpong\nBetween=0,1\nMoves=0\n", "Provoke.Moves",
                  "from 1 to 10000" },
                { GUEST "[Provoke]\nOperation=migrate-pingpong\nBetween=0,1\nMoves=10001\n", "Provoke.Moves",
                  "from 1 to 10000" },
                { GUEST "[Provoke]\nOperation=balloon\n", "Provoke.Target", "needs Target=" },
                { GUEST "[Provoke]\nOperation=balloon\nTarget=512K\n", "Provoke.Target", "from 1M to 16T" },
                { GUEST "[Provoke]\nOperation=balloon\nTarget=17T\n", "Provoke.Target", "from 1M to 16T" },
                { GUEST "[Provoke]\nOperation=balloon\nTarget=1536K\n", "Provoke.Target", "whole number of MiB" },
                { GUEST "[Provoke]\nOperation=balloon\nTarget=lots\n", "Provoke.Target", "expected a size" },
                { GUEST "[Provoke]\nOperation=balloon\nTarget=1G\nReturn=1024M\n", "Provoke.Return",
                  "the same as Target=" },
                { GUEST "[Provoke]\nOperation=balloon\nTarget=1G\nWait=maybe\n", "Provoke.Wait", "expected a boolean" },
                { GUEST "[Provoke]\nOperation=balloon\nTarget=1G\nTimeout=0\n", "Provoke.Timeout", "from 1us to 24h" },
                { GUEST "[Provoke]\nOperation=balloon\nTarget=1G\nTimeout=25h\n", "Provoke.Timeout", "to 24h" },
                /* [Workload] */
                { GUEST "[Workload]\nWhen=sometimes\n", "Workload.When", "expected one of during, after, none" },
                { GUEST "[Workload]\nWhen=none\nProgram=/bin/true\n", "Workload.Program",
                  "Program= is not used with When=none" },
                { GUEST "[Workload]\nArguments=x\nWhen=none\n", "Workload.Arguments", "not used with When=none" },
                { GUEST "[Workload]\nProgram=bin/true\n", "Workload.Program", "expected an absolute path" },
                { GUEST "[Workload]\nArguments='open\n", "Workload.Arguments", "balanced quotes" },
                { GUEST "[Workload]\nTimeout=0\n", "Workload.Timeout", "from 1us to 24h" },
                /* [Measure] */
                { GUEST "[Measure]\nCounters=time bogus\n", "Measure.Counters",
                  "unknown counter set 'bogus', expected some of host-kvm-exits, host-kvm-stats, host-tlb, "
                  "host-migrate, host-vmstat, guest-vmstat, guest-interrupts, workload, time" },
                { GUEST "[Measure]\nCounters=,\n", "Measure.Counters", "expected some of host-kvm-exits" },
                { GUEST "[Measure]\nRequire=nothing\n", "Measure.Require", "unknown counter set 'nothing'" },
                { GUEST "[Measure]\nCounters=time\nRequire=host-tlb\n", "Measure.Require",
                  "Require= names host-tlb, which Counters= does not take" },
                { GUEST "[Measure]\nTracepoints=kvm\n", "Measure.Tracepoints", "subsystem:event" },
                { GUEST "[Measure]\nTracepoints=kvm:kvm-exit\n", "Measure.Tracepoints", "subsystem:event" },
                { GUEST "[Measure]\nTracepoints=:kvm_exit\n", "Measure.Tracepoints", "subsystem:event" },
                { GUEST "[Measure]\nTracepoints=kvm:kvm_exit\nTracepoints=kvm:kvm_exit\n", "Measure.Tracepoints",
                  "kvm:kvm_exit is given twice" },
                /* Structure */
                { GUEST "[Results]\nFoo=1\n", "Results", "Unknown section" },
                { GUEST "Guests=web\n", "Experiment.Guests", "Unknown key" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                parse_bad(cases[i].text, cases[i].field, cases[i].want);
}

static void test_ini_errors(void **state) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = NULL;
        _cleanup_free_ char *big = NULL;
        ExperimentSpecError e = {};
        char path[] = "/var/tmp/test-experiment-XXXXXX";
        int fd;

        /* FILE:LINE of the value. */
        assert_int_equal(experiment_spec_parse_ini("ping.experiment", "[Experiment]\nGuest=web\n\nIterations=0\n", &s,
                                                   &e), -ERANGE);
        assert_true(startswith(e.message, "ping.experiment:4: Invalid value '0' for Iterations=: "));
        experiment_spec_error_done(&e);

        /* A check across keys names the file and the field. */
        assert_int_equal(experiment_spec_parse_ini("ping.experiment", GUEST "[Provoke]\nOperation=migrate\n", &s, &e),
                         -EINVAL);
        assert_true(startswith(e.message, "ping.experiment: Provoke.From: "));
        experiment_spec_error_done(&e);

        /* Syntax: no field. */
        assert_int_equal(experiment_spec_parse_ini(NULL, "Guest=web\n", &s, &e), -EINVAL);
        assert_null(e.field);
        assert_true(startswith(e.message, "<input>:1: "));
        experiment_spec_error_done(&e);
        assert_int_equal(experiment_spec_parse_ini("x", "[Experiment\n", &s, &e), -EINVAL);
        experiment_spec_error_done(&e);
        assert_int_equal(experiment_spec_parse_ini("x", GUEST "Name=\xff\xfe\n", &s, &e), -EINVAL);
        assert_non_null(strstr(e.message, "not valid UTF-8"));
        experiment_spec_error_done(&e);

        /* 64 KiB at most. */
        big = malloc(EXPERIMENT_FILE_MAX + 2);
        assert_non_null(big);
        memset(big, '#', EXPERIMENT_FILE_MAX + 1);
        memcpy(big, GUEST "#", strlen(GUEST "#"));
        big[EXPERIMENT_FILE_MAX + 1] = 0;
        assert_int_equal(experiment_spec_parse_ini("big", big, &s, &e), -EFBIG);
        assert_non_null(strstr(e.message, "over the limit of 65536 bytes"));
        experiment_spec_error_done(&e);
        big[EXPERIMENT_FILE_MAX] = 0;
        assert_int_equal(experiment_spec_parse_ini("big", big, &s, NULL), 0);
        s = experiment_spec_free(s);

        /* Files: missing, a NUL byte, too large, fine. */
        assert_int_equal(experiment_spec_parse_file("/nonexistent/x.experiment", &s, &e), -ENOENT);
        experiment_spec_error_done(&e);
        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, GUEST "\0x\n", strlen(GUEST) + 3), (ssize_t) strlen(GUEST) + 3);
        assert_int_equal(experiment_spec_parse_file(path, &s, &e), -EINVAL);
        assert_non_null(strstr(e.message, "NUL byte"));
        experiment_spec_error_done(&e);
        assert_int_equal(ftruncate(fd, 0), 0);
        assert_int_equal(pwrite(fd, big, EXPERIMENT_FILE_MAX + 1, 0), EXPERIMENT_FILE_MAX + 1);
        assert_int_equal(experiment_spec_parse_file(path, &s, &e), -EFBIG);
        assert_non_null(strstr(e.message, "at most 64 KiB"));
        experiment_spec_error_done(&e);
        assert_int_equal(ftruncate(fd, 0), 0);
        assert_int_equal(pwrite(fd, GUEST, strlen(GUEST), 0), (ssize_t) strlen(GUEST));
        assert_int_equal(experiment_spec_parse_file(path, &s, &e), 0);
        assert_string_equal(s->guest, "web");
        close(fd);
        unlink(path);
}

static void json_bad(const char *text, const char *field, const char *want) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = NULL;
        ExperimentSpecError e = {};
        json_object *o = json_tokener_parse(text);
        int r;

        assert_non_null(o);
        r = experiment_spec_parse_json(o, &s, &e);
        if (r >= 0)
                fail_msg("accepted: %s", text);
        assert_null(s);
        if (!e.message || !strstr(e.message, want))
                fail_msg("message '%s' does not say '%s'", strna(e.message), want);
        if (!streq_ptr(e.field, field))
                fail_msg("field '%s', expected '%s'", strna(e.field), strna(field));
        experiment_spec_error_done(&e);
        json_object_put(o);
}

static void test_json(void **state) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = NULL;
        ExperimentSpecError e = {};
        json_object *o;

        /* Typed values. */
        o = json_tokener_parse("{\"Experiment\": {\"Guest\": \"web\", \"Iterations\": 7, \"Seed\": 18446744073709551615,"
                               " \"Settle\": \"2s\"}, \"Provoke\": {\"Operation\": \"balloon\", \"Target\": 1073741824,"
                               " \"Wait\": false}, \"Workload\": null, \"Measure\": {\"Counters\": [\"time\", "
                               "\"guest-vmstat\"], \"Tracepoints\": [\"kvm:kvm_exit\"], \"Require\": \"time\"}}");
        assert_non_null(o);
        assert_int_equal(experiment_spec_parse_json(o, &s, &e), 0);
        json_object_put(o);
        assert_int_equal(s->iterations, 7);
        assert_true(s->seed == UINT64_MAX);
        assert_int_equal(s->settle_usec, 2 * USEC_PER_SEC);
        assert_int_equal(s->target_bytes, UINT64_C(1) << 30);
        assert_false(s->wait);
        assert_int_equal(s->counters, EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_TIME) |
                                      EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_GUEST_VMSTAT));

        json_bad("[1]", NULL, "must be a JSON object");
        json_bad("{\"Experiment\": 3}", "Experiment", "expected an object");
        json_bad("{\"Experiment\": {\"Guest\": \"web\"}, \"Other\": {}}", "Other", "Unknown section");
        json_bad("{\"Experiment\": {\"Guest\": \"web\", \"Nope\": 1}}", "Experiment.Nope", "Unknown key");
        json_bad("{\"Experiment\": {\"Guest\": [\"web\"]}}", "Experiment.Guest", "does not take a list");
        json_bad("{\"Experiment\": {\"Guest\": {\"a\": 1}}}", "Experiment.Guest", "expected a string");
        json_bad("{\"Experiment\": {\"Guest\": \"web\"}, \"Measure\": {\"Counters\": [[\"time\"]]}}", "Measure.Counters",
                 "expected an array of non-empty strings");
        json_bad("{\"Experiment\": {\"Guest\": \"web\"}, \"Measure\": {\"Counters\": [null]}}", "Measure.Counters",
                 "expected an array of non-empty strings");
        json_bad("{\"Experiment\": {\"Guest\": \"web\"}, \"Workload\": {\"Arguments\": [\"a\", \"\"]}}",
                 "Workload.Arguments", "non-empty");
        json_bad("{\"Experiment\": {\"Guest\": \"web\", \"Iterations\": 1.5}}", "Experiment.Iterations", "from 1 to 10000");
        json_bad("{\"Experiment\": {\"Guest\": \"web\", \"Iterations\": true}}", "Experiment.Iterations", "from 1 to 10000");
        json_bad("{\"Experiment\": {\"Guest\": \"web\", \"Description\": \"a\\u0001b\"}}", "Experiment.Description",
                 "without control characters");
        json_bad("{\"Experiment\": {\"Guest\": \"web\", \"Description\": \"a\\u0000b\"}}", "Experiment.Description",
                 "without NUL");

        /* null resets, a section may be null. */
        o = json_tokener_parse("{\"Experiment\": {\"Guest\": \"web\", \"Iterations\": null, \"Name\": null}, "
                               "\"Provoke\": null}");
        s = experiment_spec_free(s);
        assert_int_equal(experiment_spec_parse_json(o, &s, NULL), 0);
        assert_int_equal(s->iterations, 10);
        json_object_put(o);

        /* The values together are bounded like a file. */
        {
                _cleanup_free_ char *d = malloc(1001);
                json_object *a = json_object_new_array();

                assert_non_null(d);
                memset(d, 'a', 1000);
                d[1000] = 0;
                o = json_object_new_object();
                for (size_t i = 0; i < 70; i++)
                        json_object_array_add(a, json_object_new_string(d));
                assert_int_equal(json_add(o, "Workload", json_object_new_object()), 0);
                json_object_object_add(json_object_object_get(o, "Workload"), "Arguments", a);
                s = experiment_spec_free(s);
                assert_int_equal(experiment_spec_parse_json(o, &s, &e), -EFBIG);
                assert_string_equal(e.field, "Workload.Arguments");
                experiment_spec_error_done(&e);
                json_object_put(o);
        }
}

static void round_trip(const ExperimentSpec *s) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *a = NULL, *b = NULL, *c = NULL;
        _cleanup_free_ char *ini = NULL, *ini2 = NULL;
        ExperimentSpecError e = {};
        json_object *j = NULL;

        assert_int_equal(experiment_spec_validate(s, NULL), 0);
        assert_int_equal(experiment_spec_to_ini(s, &ini), 0);
        if (experiment_spec_parse_ini("rt.experiment", ini, &a, &e) < 0)
                fail_msg("%s\n%s", e.message, ini);
        assert_true(experiment_spec_equal(s, a));
        assert_int_equal(experiment_spec_to_ini(a, &ini2), 0);
        assert_string_equal(ini, ini2);

        assert_int_equal(experiment_spec_to_json(s, &j), 0);
        if (experiment_spec_parse_json(j, &b, &e) < 0)
                fail_msg("%s\n%s", e.message, json_object_to_json_string(j));
        assert_true(experiment_spec_equal(s, b));
        json_object_put(j);

        assert_int_equal(experiment_spec_copy(s, &c), 0);
        assert_true(experiment_spec_equal(s, c));
}

static void test_round_trips(void **state) {
        static const char *const texts[] = {
                GUEST,
                GUEST "Name=n\nDescription=a\tb # c; d\nIterations=10000\nWarmUp=9999\nSettle=1.5s\nSeed=0\n"
                "[Provoke]\nOperation=migrate\nFrom=0,2-5,63\nTo=1\n"
                "[Workload]\nWhen=during\nArguments='' 'a b' \"it's\" 'back\\slash' x\\\\y\nArguments=tab'\t'x\n"
                "Timeout=24h\n[Measure]\nCounters=workload\nTracepoints=a:b c_1:D_2\nRequire=workload\n",
                GUEST "Settle=0\n[Provoke]\nOperation=migrate-pingpong\nBetween=3,62\nMoves=10000\n",
                GUEST "Settle=1us\n[Provoke]\nOperation=balloon\nTarget=16T\nReturn=1M\nWait=no\nTimeout=1001ms\n"
                "[Workload]\nWhen=none\n",
                GUEST "[Provoke]\nOperation=balloon\nTarget=1536M\n[Workload]\nWhen=after\nProgram=/x\n",
                GUEST "[Provoke]\nOperation=hotplug\nTarget=256M\nReturn=128M\nWait=no\nTimeout=5s\n",
                GUEST "[Provoke]\nOperation=migrate\nFrom=0\nTo=1\nScope=guest-ram\n",
                GUEST "Settle=2s\n[Measure]\nCounters=dirty-rate time\nDirtyRateMode=dirty-ring\nRequire=dirty-rate\n",
        };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                _cleanup_(experiment_spec_freep) ExperimentSpec *s = parse_ok(texts[i]);

                round_trip(s);
        }

        /* The canonical text: only the keys of the chosen operation and workload. */
        {
                _cleanup_(experiment_spec_freep) ExperimentSpec *s = parse_ok(texts[2]);
                _cleanup_free_ char *ini = NULL;

                assert_int_equal(experiment_spec_to_ini(s, &ini), 0);
                assert_non_null(strstr(ini, "[Provoke]\nOperation=migrate-pingpong\nBetween=3,62\nMoves=10000\n"
                                            "Scope=process\n\n"));
                assert_null(strstr(ini, "From="));
                assert_null(strstr(ini, "Target="));
                assert_non_null(strstr(ini, "Counters=host-kvm-exits host-kvm-stats host-tlb host-migrate host-vmstat "
                                            "guest-vmstat guest-interrupts workload time\n"));
                assert_non_null(strstr(ini, "Seed=1\n"));
                assert_non_null(strstr(ini, "Program=/usr/bin/memvisor-touch\n"));
        }
        {
                _cleanup_(experiment_spec_freep) ExperimentSpec *s = parse_ok(texts[3]);
                _cleanup_free_ char *ini = NULL;

                assert_int_equal(experiment_spec_to_ini(s, &ini), 0);
                assert_non_null(strstr(ini, "[Workload]\nWhen=none\n\n[Measure]"));
                assert_non_null(strstr(ini, "Timeout=1.001s\n"));
        }
}

static void test_equal_copy_validate(void **state) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *a = parse_ok(GUEST), *b = NULL;
        ExperimentSpecError e = {};

        assert_true(experiment_spec_equal(a, a));
        assert_false(experiment_spec_equal(a, NULL));
        assert_int_equal(experiment_spec_copy(a, &b), 0);
        assert_true(experiment_spec_equal(a, b));

#define DIFFERS(stmt)                                                   \
        do {                                                            \
                ExperimentSpec *c_ = NULL;                              \
                assert_int_equal(experiment_spec_copy(a, &c_), 0);      \
                stmt;                                                   \
                assert_false(experiment_spec_equal(a, c_));             \
                experiment_spec_free(c_);                               \
        } while (0)
        DIFFERS(c_->seed = 2);
        DIFFERS(c_->warm_up = 1);
        DIFFERS(c_->wait = false);
        DIFFERS(c_->required = 1);
        DIFFERS(free(c_->guest); c_->guest = strdup("other"));
        DIFFERS(strv_extend(&c_->tracepoints, "a:b"); c_->n_tracepoints = 1);
        DIFFERS(c_->operation = EXPERIMENT_OPERATION_BALLOON);
#undef DIFFERS

        /* Hand-made specs: values off their table, foreign keys, counts. */
#define INVALID(stmt, f, want)                                                          \
        do {                                                                            \
                ExperimentSpec *c_ = NULL;                                              \
                assert_int_equal(experiment_spec_copy(a, &c_), 0);                      \
                stmt;                                                                   \
                assert_true(experiment_spec_validate(c_, &e) < 0);                      \
                assert_string_equal(e.field, f);                                        \
                if (!strstr(e.message, want))                                           \
                        fail_msg("'%s' does not say '%s'", e.message, want);            \
                experiment_spec_error_done(&e);                                         \
                experiment_spec_free(c_);                                               \
        } while (0)
        INVALID(c_->from_nodes = 1, "Provoke.From", "belongs to Operation=migrate");
        INVALID(c_->wait = false, "Provoke.Wait", "belongs to Operation=balloon");
        INVALID(c_->when = EXPERIMENT_WORKLOAD_NONE; c_->workload_timeout_usec = 1, "Workload.Timeout", "When=none");
        INVALID(c_->operation = 17, "Provoke.Operation", "unknown value 17");
        INVALID(c_->when = -1, "Workload.When", "unknown value");
        INVALID(c_->iterations = 0, "Experiment.Iterations", "from 1 to 10000");
        INVALID(c_->counters = 0, "Measure.Counters", "empty");
        INVALID(c_->counters |= UINT64_C(1) << 40, "Measure.Counters", "unknown counter set");
        INVALID(c_->n_arguments = 3, "Workload.Arguments", "count does not match");
        INVALID(free(c_->program); c_->program = strdup("/a\nb"), "Workload.Program", "absolute path");
        INVALID(c_->program = mfree(c_->program); c_->program = strdup(" /x"), "Workload.Program", "absolute path");
        INVALID(c_->guest = mfree(c_->guest), "Experiment.Guest", "not set");
        INVALID(c_->operation = EXPERIMENT_OPERATION_MIGRATE_PINGPONG; c_->between_nodes = 7, "Provoke.Between",
                "two different");
        INVALID(c_->operation = EXPERIMENT_OPERATION_BALLOON; c_->target_bytes = 3, "Provoke.Target", "from 1M");
        INVALID(strv_extend(&c_->tracepoints, "a:b"); strv_extend(&c_->tracepoints, "a:b"); c_->n_tracepoints = 2,
                "Measure.Tracepoints", "given twice");
        INVALID(c_->settle_usec = USEC_INFINITY, "Experiment.Settle", "to 1h");
#undef INVALID
}

static void test_memory_operations(void **state) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *h = NULL, *m = NULL, *p = NULL, *d = NULL, *x = NULL;

        /* Operation=hotplug: the balloon's keys, Return= defaults to 0 (every block unplugged). */
        h = parse_ok(GUEST "[Provoke]\nOperation=hotplug\nTarget=512M\n");
        assert_int_equal(h->operation, EXPERIMENT_OPERATION_HOTPLUG);
        assert_int_equal(h->target_bytes, UINT64_C(512) << 20);
        assert_int_equal(h->return_bytes, 0);
        assert_true(h->wait);
        assert_int_equal(h->timeout_usec, EXPERIMENT_BALLOON_TIMEOUT_DEFAULT);
        assert_int_equal(h->scope, MIGRATION_SCOPE_PROCESS);
        parse_bad(GUEST "[Provoke]\nOperation=hotplug\n", "Provoke.Target", "Operation=hotplug needs Target=");
        parse_bad(GUEST "[Provoke]\nOperation=hotplug\nTarget=1G\nReturn=1024M\n", "Provoke.Return",
                  "the device would not move back");
        parse_bad(GUEST "[Provoke]\nOperation=hotplug\nTarget=1G\nFrom=0\n", "Provoke.From",
                  "From= belongs to Operation=migrate, not to Operation=hotplug");
        parse_bad(GUEST "[Provoke]\nOperation=none\nTarget=1G\n", "Provoke.Target",
                  "Target= belongs to Operation=balloon or hotplug, not to Operation=none");
        parse_bad(GUEST "[Provoke]\nOperation=hotplug\nTarget=1536K\n", "Provoke.Target", "whole number of MiB");
        parse_bad(GUEST "[Provoke]\nOperation=hotplug\nTarget=1G\nTimeout=61min\n", "Provoke.Timeout", "at most 1h");

        /* Scope= of both migrations; not of the others. */
        m = parse_ok(GUEST "[Provoke]\nOperation=migrate\nFrom=0\nTo=1\nScope=guest-ram\n");
        assert_int_equal(m->scope, MIGRATION_SCOPE_GUEST_RAM);
        experiment_spec_free(m);
        m = parse_ok(GUEST "[Provoke]\nOperation=migrate\nFrom=0\nTo=0\nScope=guest-ram\n");  /* move_pages in place */
        assert_int_equal(m->from_nodes, m->to_nodes);
        parse_bad(GUEST "[Provoke]\nOperation=migrate\nFrom=0\nTo=0\nScope=process\n", "Provoke.To",
                  "To= is the same as From=");
        p = parse_ok(GUEST "[Provoke]\nOperation=migrate-pingpong\nBetween=0,1\nScope=process\n");
        assert_int_equal(p->scope, MIGRATION_SCOPE_PROCESS);
        parse_bad(GUEST "[Provoke]\nOperation=migrate\nFrom=0\nTo=1\nScope=heap\n", "Provoke.Scope", "expected one of process, guest-ram");
        parse_bad(GUEST "[Provoke]\nOperation=balloon\nTarget=1G\nScope=guest-ram\n", "Provoke.Scope",
                  "Scope= belongs to Operation=migrate or migrate-pingpong, not to Operation=balloon");

        /* The dirty-rate set: not by default, only when named, with Settle= of 1s at least. */
        d = parse_ok(GUEST "[Measure]\nCounters=dirty-rate,time\n");
        assert_int_equal(d->counters, EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_DIRTY_RATE) |
                                      EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_TIME));
        assert_int_equal(d->dirty_rate_mode, DIRTY_RATE_MODE_PAGE_SAMPLING);
        x = parse_ok(GUEST);
        assert_false(x->counters & EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_DIRTY_RATE));
        assert_int_equal(x->counters | EXPERIMENT_COUNTER_MASK(EXPERIMENT_COUNTER_DIRTY_RATE), EXPERIMENT_COUNTERS_ALL);
        parse_bad(GUEST "Settle=999ms\n[Measure]\nCounters=dirty-rate\n", "Experiment.Settle",
                  "must be at least 1s");
        parse_bad(GUEST "Settle=0\n[Measure]\nCounters=dirty-rate\n", "Experiment.Settle", "QEMU's shortest calc-time");
        parse_bad(GUEST "[Measure]\nDirtyRateMode=dirty-bitmap\n", "Measure.DirtyRateMode",
                  "only used when Counters= takes dirty-rate");
        parse_bad(GUEST "[Measure]\nCounters=dirty-rate\nDirtyRateMode=fast\n", "Measure.DirtyRateMode",
                  "expected one of page-sampling, dirty-bitmap, dirty-ring");
        parse_bad(GUEST "[Measure]\nCounters=time\nRequire=dirty-rate\n", "Measure.Require",
                  "Require= names dirty-rate");
        parse_bad(GUEST "[Measure]\nCounters=dirty_rate\n", "Measure.Counters", "dirty-rate");
}

static void test_tables(void **state) {
        const char *section, *key;
        bool multiple;
        size_t n = 0, lists = 0;

        for (; experiment_spec_key_get(n, &section, &key, &multiple); n++) {
                assert_non_null(section);
                assert_non_null(key);
                lists += multiple;
        }
        assert_int_equal(n, 28);       /* with Matrix.Order, Block, BootTimeout, Provoke.Scope, Measure.DirtyRateMode */
        assert_int_equal(lists, 4);    /* Arguments, Counters, Tracepoints, Require */

        for (int c = 0; c < _EXPERIMENT_COUNTER_MAX; c++) {
                assert_non_null(experiment_counter_to_string(c));
                assert_non_null(experiment_counter_description(c));
                assert_int_equal(experiment_counter_from_string(experiment_counter_to_string(c)), c);
                assert_non_null(strstr(experiment_counter_names(), experiment_counter_to_string(c)));
        }
        assert_null(experiment_counter_to_string(_EXPERIMENT_COUNTER_MAX));
        assert_int_equal(experiment_counter_from_string("nope"), -EINVAL);
        assert_int_equal(experiment_operation_from_string("migrate-pingpong"), EXPERIMENT_OPERATION_MIGRATE_PINGPONG);
        assert_string_equal(experiment_workload_when_to_string(EXPERIMENT_WORKLOAD_AFTER), "after");
}

static void test_matrix(void **state) {
        _cleanup_(experiment_spec_freep) ExperimentSpec *s = NULL, *j = NULL, *c = NULL;
        _cleanup_(experiment_spec_error_done) ExperimentSpecError e = {};
        _cleanup_json_ json_object *o = NULL;
        _cleanup_free_ char *ini = NULL, *ini2 = NULL;
        _cleanup_free_ size_t *order = NULL;
        const char *names[EXPERIMENT_MATRIX_KEYS_MAX], *values[EXPERIMENT_MATRIX_KEYS_MAX];
        size_t n = 0;

        (void) state;
        assert_int_equal(experiment_spec_parse_ini("m.experiment",
                                                   "[Experiment]\nGuest=web\nIterations=3\nWarmUp=1\n"
                                                   "[Matrix]\nAppend=\"console=ttyS0 a=1\" 'console=ttyS0 a=2'\n"
                                                   "Memory.Prealloc=no\nMemory.Prealloc=yes\nBlock=2\n"
                                                   "Order=random\nVM.Append=quiet\n",
                                                   &s, &e), 0);
        assert_int_equal(s->n_matrix, 2);
        assert_string_equal(s->matrix[0].name, "VM.Append");
        assert_int_equal(s->matrix[0].n_values, 3);
        assert_string_equal(s->matrix[0].values[1], "console=ttyS0 a=2");
        assert_string_equal(s->matrix[1].name, "Memory.Prealloc");
        assert_int_equal(experiment_spec_n_variants(s), 6);
        /* the last key varies fastest: A = (a=1, no), B = (a=1, yes), C = (a=2, no), … */
        assert_int_equal(experiment_spec_variant(s, 3, names, values), 0);
        assert_string_equal(values[0], "console=ttyS0 a=2");
        assert_string_equal(values[1], "yes");
        assert_int_equal(experiment_spec_variant(s, 6, names, values), -EINVAL);
        assert_string_equal(experiment_variant_label(1), "B");
        assert_int_equal(experiment_variant_from_label("P"), 15);
        assert_int_equal(experiment_variant_from_label("Q"), -EINVAL);
        /* 3 iterations in blocks of 2: 2 blocks per variant, each with 1 warm-up */
        assert_int_equal(experiment_spec_blocks(s), 2);
        assert_int_equal(experiment_spec_planned(s), 6 * (3 + 2));
        assert_int_equal(experiment_spec_schedule(s, &order, &n), 0);
        assert_int_equal(n, 12);
        for (size_t round = 0; round < 2; round++) {     /* every round has each variant once */
                unsigned seen = 0;

                for (size_t i = 0; i < 6; i++)
                        seen |= 1U << order[round * 6 + i];
                assert_int_equal(seen, 0x3f);
        }

        /* round trips: INI and JSON, equal and copy */
        assert_int_equal(experiment_spec_to_ini(s, &ini), 0);
        assert_non_null(strstr(ini, "[Matrix]\nOrder=random\nBlock=2\n"));
        assert_non_null(strstr(ini, "VM.Append='console=ttyS0 a=1' 'console=ttyS0 a=2' quiet\n"));
        assert_int_equal(experiment_spec_parse_ini(NULL, ini, &j, &e), 0);
        assert_true(experiment_spec_equal(s, j));
        j = experiment_spec_free(j);
        assert_int_equal(experiment_spec_to_json(s, &o), 0);
        assert_int_equal(experiment_spec_parse_json(o, &j, &e), 0);
        assert_true(experiment_spec_equal(s, j));
        assert_int_equal(experiment_spec_copy(s, &c), 0);
        assert_true(experiment_spec_equal(s, c));
        assert_int_equal(experiment_spec_to_ini(c, &ini2), 0);
        assert_string_equal(ini, ini2);
        c->matrix[1].values[1][0] = 'Y';
        assert_false(experiment_spec_equal(s, c));

        /* a plain experiment has no [Matrix] in either form, and its keys belong to matrix runs only */
        j = experiment_spec_free(j);
        assert_int_equal(experiment_spec_parse_ini(NULL, "[Experiment]\nGuest=web\n", &j, &e), 0);
        assert_int_equal(experiment_spec_n_variants(j), 0);
        json_object_put(o);
        assert_int_equal(experiment_spec_to_json(j, &o), 0);
        assert_false(json_object_object_get_ex(o, "Matrix", NULL));
        j = experiment_spec_free(j);
}

static void test_matrix_bad(void **state) {
        static const struct {
                const char *text, *field, *reason;
        } bad[] = {
                { "[Matrix]\nBlock=2\n", "Matrix.Block", "only used in a matrix run" },
                { "[Matrix]\nPolicy=bind\n", "Matrix.Policy", "several sections" },
                { "[Matrix]\nName=x y\n", "Matrix.Name", "identity" },
                { "[Matrix]\nDisk=/a /b\n", "Matrix.Disk", "takes a list" },
                { "[Matrix]\nVM.Nope=1\n", NULL, "Unknown key" },
                { "[Matrix]\nAppend=a a\n", "Matrix.Append", "given twice" },
                { "[Matrix]\nAppend='a\n", "Matrix.Append", "shell" },
                { "[Matrix]\nAppend=1 2 3 4 5\nVCPUs=1 2 3 4\n", "Matrix.VCPUs", "20 variants" },
                { "[Experiment]\nIterations=9000\n[Matrix]\nAppend=1 2\n", "Experiment.Iterations", "at most 10000" },
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(experiment_spec_freep) ExperimentSpec *s = NULL;
                _cleanup_(experiment_spec_error_done) ExperimentSpecError e = {};
                _cleanup_free_ char *text = NULL;

                assert_true(asprintf(&text, "[Experiment]\nGuest=web\n%s", bad[i].text) > 0);
                assert_true(experiment_spec_parse_ini("b.experiment", text, &s, &e) < 0);
                if (!strstr(e.message, bad[i].reason) || (bad[i].field && !streq_ptr(e.field, bad[i].field)))
                        fail_msg("case %zu: field %s, message %s", i, strna(e.field), e.message);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_matrix),
                cmocka_unit_test(test_matrix_bad),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_migrate),
                cmocka_unit_test(test_pingpong_and_balloon),
                cmocka_unit_test(test_bad_values),
                cmocka_unit_test(test_ini_errors),
                cmocka_unit_test(test_json),
                cmocka_unit_test(test_round_trips),
                cmocka_unit_test(test_equal_copy_validate),
                cmocka_unit_test(test_tables),
                cmocka_unit_test(test_memory_operations),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
