/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The INI parser: syntax, dispatch through IniItem tables, stock value parsers and error messages. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <syslog.h>

#include "basic/ini.h"

typedef struct Settings {
        char *name;
        char *path;
        bool enabled;
        unsigned count;
        uint64_t size;
        uint64_t timeout;
        mode_t mode;
        int level;
        char *other;
} Settings;

static const IniRange count_range = { 1, 10 };
static const IniRange size_range = { 4096, UINT64_C(1) << 30 };
static const IniRange timeout_range = { USEC_PER_MSEC, 60 * USEC_PER_SEC };

static const IniItem items[] = {
        { "Main", "Name", ini_parse_string, offsetof(Settings, name), NULL },
        { "Main", "Path", ini_parse_path, offsetof(Settings, path), NULL },
        { "Main", "Enabled", ini_parse_bool, offsetof(Settings, enabled), NULL },
        { "Main", "Count", ini_parse_unsigned, offsetof(Settings, count), &count_range },
        { "Limits", "Size", ini_parse_size, offsetof(Settings, size), &size_range },
        { "Limits", "Timeout", ini_parse_sec, offsetof(Settings, timeout), &timeout_range },
        { "Limits", "Mode", ini_parse_mode, offsetof(Settings, mode), NULL },
        { "Limits", "LogLevel", ini_parse_log_level, offsetof(Settings, level), NULL },
        { "Other", "Name", ini_parse_string, offsetof(Settings, other), NULL },
        { NULL },
};

static void settings_done(Settings *s) {
        free(s->name);
        free(s->path);
        free(s->other);
        *s = (Settings) {};
}

static Settings settings_default(void) {
        return (Settings) {
                .count = 3,
                .size = 8192,
                .timeout = USEC_PER_SEC,
                .mode = 0600,
                .level = LOG_INFO,
        };
}

/* Parses text, which must succeed. */
static Settings parse_ok(const char *text) {
        Settings s = settings_default();
        _cleanup_free_ char *error = NULL;
        int r;

        r = ini_parse_buffer("test.conf", text, items, &s, &error);
        if (r != 0)
                fail_msg("parse failed with %d (%s) for:\n%s", r, strna(error), text);
        assert_null(error);
        return s;
}

/* Parses text, which must fail with r and exactly the error message. */
static void parse_fails(const char *text, int r, const char *message) {
        Settings s = settings_default();
        _cleanup_free_ char *error = NULL;
        int k;

        k = ini_parse_buffer("test.conf", text, items, &s, &error);
        if (k != r)
                fail_msg("expected %d, got %d (%s) for:\n%s", r, k, strna(error), text);
        assert_non_null(error);
        assert_string_equal(error, message);
        settings_done(&s);
}

static void test_empty(void **state) {
        static const char *const texts[] = { "", "\n", "\n\n\n", "   \n\t\n", "# only a comment", "; semicolon\n#x\n" };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                Settings s = parse_ok(texts[i]);

                /* nothing touched */
                assert_null(s.name);
                assert_int_equal(s.count, 3);
                assert_int_equal(s.size, 8192);
                settings_done(&s);
        }
}

static void test_all_types(void **state) {
        Settings s = parse_ok(
                "[Main]\n"
                "Name=hello world\n"
                "Path=/var/lib/x\n"
                "Enabled=yes\n"
                "Count=7\n"
                "[Limits]\n"
                "Size=16M\n"
                "Timeout=1.5s\n"
                "Mode=0640\n"
                "LogLevel=debug\n"
                "[Other]\n"
                "Name=other\n");

        assert_string_equal(s.name, "hello world");
        assert_string_equal(s.path, "/var/lib/x");
        assert_true(s.enabled);
        assert_int_equal(s.count, 7);
        assert_int_equal(s.size, 16 * 1024 * 1024);
        assert_int_equal(s.timeout, 1500 * USEC_PER_MSEC);
        assert_int_equal(s.mode, 0640);
        assert_int_equal(s.level, LOG_DEBUG);
        /* The same key in another section goes to its own field. */
        assert_string_equal(s.other, "other");
        settings_done(&s);
}

static void test_sections(void **state) {
        Settings s;

        /* Sections may repeat and come in any order; the last assignment wins. */
        s = parse_ok("[Limits]\nSize=8K\n[Main]\nName=a\n[Limits]\nSize=12K\n[Main]\nName=b\nName=c\n");
        assert_int_equal(s.size, 12 * 1024);
        assert_string_equal(s.name, "c");
        settings_done(&s);

        /* An empty section is fine. */
        s = parse_ok("[Main]\n[Limits]\n");
        assert_null(s.name);
        settings_done(&s);

        /* Whitespace around the header. */
        s = parse_ok("  [Main]  \nName=x\n");
        assert_string_equal(s.name, "x");
        settings_done(&s);
}

static void test_comments_whitespace(void **state) {
        Settings s = parse_ok(
                "# leading comment\n"
                "; another\n"
                "\n"
                "[Main]\n"
                "   # indented comment\n"
                "  Name   =   spaced value   \n"
                "\tCount\t=\t4\t\n"
                "Path=/a=b/c\n"
                "Enabled = on\r\n"
                "[Other]\n"
                "Name=x # not a comment\n");

        assert_string_equal(s.name, "spaced value");
        assert_int_equal(s.count, 4);
        assert_string_equal(s.path, "/a=b/c");   /* only the first '=' separates */
        assert_true(s.enabled);                  /* CRLF line ending */
        assert_string_equal(s.other, "x # not a comment");
        settings_done(&s);

        /* An empty value resets a string. */
        s = parse_ok("[Main]\nName=x\nPath=/x\nName=\nPath=  \n");
        assert_null(s.name);
        assert_null(s.path);
        settings_done(&s);

        /* No newline at the end of the last line. */
        s = parse_ok("[Main]\nCount=9");
        assert_int_equal(s.count, 9);
        settings_done(&s);
}

static void test_continuation(void **state) {
        Settings s;

        s = parse_ok("[Main]\nName=one\\\n  two\\\n  three\nCount=5\n");
        assert_string_equal(s.name, "one two three");
        assert_int_equal(s.count, 5);
        settings_done(&s);

        /* A continued line ending the file: the trailing empty line ends it. */
        s = parse_ok("[Main]\nName=a\\\n");
        assert_string_equal(s.name, "a");
        settings_done(&s);

        /* An error in a continued assignment names the line where it starts. */
        parse_fails("[Main]\n\nCount=1\\\n2\nName=x\n", -EINVAL,
                    "test.conf:3: Invalid value '1 2' for Count=: expected an unsigned integer");
        /* ... and line numbers after a continuation stay right. */
        parse_fails("[Main]\nName=a\\\nb\\\nc\nBogus=1\n", -EINVAL,
                    "test.conf:5: Unknown key 'Bogus' in section [Main]");
}

static void test_continuation_at_eof(void **state) {
        /* A backslash on the very last line, without a newline: the assignment must not vanish. */
        Settings s = parse_ok("[Main]\nCount=4\nName=last\\");

        assert_int_equal(s.count, 4);
        assert_string_equal(strna(s.name), "last");
        settings_done(&s);
}

static void test_comment_ending_in_backslash(void **state) {
        /* As in systemd, comment lines are not continued: the next line is an assignment of its own. */
        Settings s = parse_ok("[Main]\n# Windows path: C:\\\nName=x\n; also\\\nCount=2\n");

        assert_string_equal(strna(s.name), "x");
        assert_int_equal(s.count, 2);
        settings_done(&s);
}

static void test_errors(void **state) {
        /* syntax */
        parse_fails("[Main]\nName=x\nBogus=1\n", -EINVAL, "test.conf:3: Unknown key 'Bogus' in section [Main]");
        parse_fails("[Limits]\nName=x\n", -EINVAL, "test.conf:2: Unknown key 'Name' in section [Limits]");
        parse_fails("[Main]\nname=x\n", -EINVAL, "test.conf:2: Unknown key 'name' in section [Main]");
        parse_fails("[Nope]\nName=x\n", -EINVAL, "test.conf:1: Unknown section [Nope]");
        parse_fails("[Main]\n\n# c\n[main]\n", -EINVAL, "test.conf:4: Unknown section [main]");
        parse_fails("Name=x\n[Main]\n", -EINVAL, "test.conf:1: Assignment 'Name=' outside of any section");
        parse_fails("# c\n\n  Count = 3\n", -EINVAL, "test.conf:3: Assignment 'Count=' outside of any section");
        parse_fails("[Main]\nJustAWord\n", -EINVAL, "test.conf:2: Expected 'Key=Value', got 'JustAWord'");
        parse_fails("[Main]\n=value\n", -EINVAL, "test.conf:2: Missing key before '='");
        parse_fails("[Main]\n  = value\n", -EINVAL, "test.conf:2: Missing key before '='");
        parse_fails("[Main\nName=x\n", -EINVAL, "test.conf:1: Invalid section header '[Main'");
        parse_fails("[]\n", -EINVAL, "test.conf:1: Invalid section header '[]'");
        parse_fails("[Main]x\n", -EINVAL, "test.conf:1: Invalid section header '[Main]x'");

        /* values, with the reason from the value parser */
        parse_fails("[Main]\nCount=11\n", -ERANGE, "test.conf:2: Invalid value '11' for Count=: out of range 1…10");
        parse_fails("[Main]\nCount=0\n", -ERANGE, "test.conf:2: Invalid value '0' for Count=: out of range 1…10");
        parse_fails("[Main]\nCount=abc\n", -EINVAL,
                    "test.conf:2: Invalid value 'abc' for Count=: expected an unsigned integer");
        parse_fails("[Main]\nCount=-1\n", -EINVAL,
                    "test.conf:2: Invalid value '-1' for Count=: expected an unsigned integer");
        parse_fails("[Main]\nCount=99999999999\n", -ERANGE,
                    "test.conf:2: Invalid value '99999999999' for Count=: number too large");
        parse_fails("[Main]\nEnabled=maybe\n", -EINVAL,
                    "test.conf:2: Invalid value 'maybe' for Enabled=: "
                    "expected a boolean (yes/no, true/false, on/off, 1/0)");
        parse_fails("[Main]\nPath=relative/path\n", -EINVAL,
                    "test.conf:2: Invalid value 'relative/path' for Path=: not an absolute path");
        parse_fails("[Limits]\nSize=1K\n", -ERANGE,
                    "test.conf:2: Invalid value '1K' for Size=: out of range 4096…1073741824");
        parse_fails("[Limits]\nSize=2G\n", -ERANGE,
                    "test.conf:2: Invalid value '2G' for Size=: out of range 4096…1073741824");
        parse_fails("[Limits]\nSize=lots\n", -EINVAL,
                    "test.conf:2: Invalid value 'lots' for Size=: expected a size such as 4096, 64K, 16M");
        parse_fails("[Limits]\nSize=99999E\n", -ERANGE,
                    "test.conf:2: Invalid value '99999E' for Size=: size too large");
        parse_fails("[Limits]\nTimeout=soon\n", -EINVAL,
                    "test.conf:2: Invalid value 'soon' for Timeout=: expected a time span such as 5s, 100ms, 2min");
        parse_fails("[Limits]\nMode=0999\n", -EINVAL,
                    "test.conf:2: Invalid value '0999' for Mode=: expected an octal file mode such as 0660");
        parse_fails("[Limits]\nLogLevel=loud\n", -EINVAL,
                    "test.conf:2: Invalid value 'loud' for LogLevel=: expected one of emerg, alert, crit, err, "
                    "warning, notice, info, debug");

        /* The first problem stops parsing. */
        parse_fails("[Main]\nCount=50\nBogus=1\n[Nope]\n", -ERANGE,
                    "test.conf:2: Invalid value '50' for Count=: out of range 1…10");
}

static void test_error_details(void **state) {
        Settings s = settings_default();
        _cleanup_free_ char *error = NULL;

        /* Out-of-range time spans are refused too (the reason's wording is not fixed here). */
        assert_int_equal(ini_parse_buffer("t.conf", "[Limits]\nTimeout=2min\n", items, &s, &error), -ERANGE);
        assert_non_null(error);
        assert_non_null(startswith(error, "t.conf:2: Invalid value '2min' for Timeout=: "));
        assert_int_equal(s.timeout, USEC_PER_SEC);
        error = mfree(error);

        /* The file name is used verbatim. */
        assert_int_equal(ini_parse_buffer("/etc/memvisor/x.conf", "[Bad", items, &s, &error), -EINVAL);
        assert_string_equal(error, "/etc/memvisor/x.conf:1: Invalid section header '[Bad'");
        error = mfree(error);

        /* Callers may not want the message. */
        assert_int_equal(ini_parse_buffer("t.conf", "[Main]\nBogus=1\n", items, &s, NULL), -EINVAL);
        assert_int_equal(ini_parse_buffer("t.conf", "[Main]\nCount=2\n", items, &s, NULL), 0);
        assert_int_equal(s.count, 2);

        /* A failing value leaves the field alone. */
        assert_int_equal(ini_parse_buffer("t.conf", "[Main]\nCount=20\n", items, &s, &error), -ERANGE);
        assert_int_equal(s.count, 2);
        settings_done(&s);
}

static void test_stock_parsers(void **state) {
        Settings s;

        s = parse_ok("[Limits]\nLogLevel=7\n");
        assert_int_equal(s.level, LOG_DEBUG);
        settings_done(&s);
        s = parse_ok("[Limits]\nLogLevel=err\n");
        assert_int_equal(s.level, LOG_ERR);
        settings_done(&s);
        s = parse_ok("[Limits]\nTimeout=1ms\nSize=1G\nMode=0\n[Main]\nEnabled=false\nCount=10\n");
        assert_int_equal(s.timeout, USEC_PER_MSEC);
        assert_int_equal(s.size, UINT64_C(1) << 30);
        assert_int_equal(s.mode, 0);
        assert_false(s.enabled);
        assert_int_equal(s.count, 10);
        settings_done(&s);
        s = parse_ok("[Main]\nCount=1\n");
        assert_int_equal(s.count, 1);
        settings_done(&s);
}

/* ---- files ------------------------------------------------------------------------------------ */

typedef struct TempDir {
        char path[64];
} TempDir;

static int tempdir_setup(void **state) {
        TempDir *d = calloc(1, sizeof(TempDir));

        assert_non_null(d);
        strcpy(d->path, "/tmp/test-ini-XXXXXX");
        assert_non_null(mkdtemp(d->path));
        *state = d;
        return 0;
}

static int tempdir_teardown(void **state) {
        TempDir *d = *state;
        _cleanup_free_ char *cmd = NULL;

        assert_true(asprintf(&cmd, "rm -rf '%s'", d->path) > 0);
        assert_int_equal(system(cmd), 0);
        free(d);
        return 0;
}

static char *write_file(TempDir *d, const char *name, const void *data, size_t size) {
        char *path = NULL;
        FILE *f;

        assert_true(asprintf(&path, "%s/%s", d->path, name) > 0);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, size, f), size);
        assert_int_equal(fclose(f), 0);
        return path;
}

static void test_parse_file(void **state) {
        TempDir *d = *state;
        Settings s = settings_default();
        _cleanup_free_ char *error = NULL, *missing = NULL, *good = NULL, *bad = NULL, *expected = NULL;
        static const char text[] = "[Main]\nName=from file\n[Limits]\nSize=64K\n";
        static const char broken[] = "[Main]\n\nCount=100\n";

        /* Missing: -ENOENT without a message, nothing touched. */
        assert_true(asprintf(&missing, "%s/nope.conf", d->path) > 0);
        assert_int_equal(ini_parse_file(missing, items, &s, &error), -ENOENT);
        assert_null(error);
        assert_null(s.name);

        good = write_file(d, "good.conf", text, strlen(text));
        assert_int_equal(ini_parse_file(good, items, &s, &error), 0);
        assert_null(error);
        assert_string_equal(s.name, "from file");
        assert_int_equal(s.size, 64 * 1024);

        /* Errors name the path and line. */
        bad = write_file(d, "bad.conf", broken, strlen(broken));
        assert_int_equal(ini_parse_file(bad, items, &s, &error), -ERANGE);
        assert_true(asprintf(&expected, "%s:3: Invalid value '100' for Count=: out of range 1…10", bad) > 0);
        assert_string_equal(error, expected);
        settings_done(&s);
}

static void test_parse_file_odd(void **state) {
        TempDir *d = *state;
        Settings s = settings_default();
        _cleanup_free_ char *error = NULL, *nul = NULL, *big = NULL, *huge = NULL;
        static const char with_nul[] = "[Main]\nName=a\0b\n";

        /* An embedded NUL would silently cut the file short: refused. */
        nul = write_file(d, "nul.conf", with_nul, sizeof(with_nul) - 1);
        assert_int_equal(ini_parse_file(nul, items, &s, &error), -EINVAL);
        assert_non_null(error);
        assert_non_null(startswith(error, nul));
        assert_non_null(strstr(error, "NUL"));
        assert_null(s.name);
        error = mfree(error);

        /* Larger than INI_FILE_MAX: refused. */
        huge = calloc(1, INI_FILE_MAX + 2);
        assert_non_null(huge);
        memset(huge, '#', INI_FILE_MAX + 1);
        big = write_file(d, "big.conf", huge, INI_FILE_MAX + 1);
        assert_int_equal(ini_parse_file(big, items, &s, &error), -EFBIG);
        assert_non_null(error);
        assert_non_null(startswith(error, big));
        error = mfree(error);

        /* Exactly INI_FILE_MAX is fine. */
        huge[INI_FILE_MAX - 1] = '\n';
        big = mfree(big);
        big = write_file(d, "max.conf", huge, INI_FILE_MAX);
        assert_int_equal(ini_parse_file(big, items, &s, &error), 0);
        assert_null(error);

        /* A directory is not a config file. */
        assert_true(ini_parse_file(d->path, items, &s, &error) < 0);
        assert_non_null(error);
        assert_non_null(startswith(error, d->path));
        settings_done(&s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_all_types),
                cmocka_unit_test(test_sections),
                cmocka_unit_test(test_comments_whitespace),
                cmocka_unit_test(test_continuation),
                cmocka_unit_test(test_continuation_at_eof),
                cmocka_unit_test(test_comment_ending_in_backslash),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_error_details),
                cmocka_unit_test(test_stock_parsers),
                cmocka_unit_test_setup_teardown(test_parse_file, tempdir_setup, tempdir_teardown),
                cmocka_unit_test_setup_teardown(test_parse_file_odd, tempdir_setup, tempdir_teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
