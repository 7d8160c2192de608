/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The experiment store of src/experiment: a round trip, atomic documents, a torn last line, running → interrupted
 * at load, damaged experiments kept, the retention order, no delete while running, a full file system (a small
 * tmpfs, as root) and kill -9 of a process appending iterations. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "experiment/experiment-store.h"

static char *make_temp_dir(void) {
        char *d = NULL;

        assert_true(asprintf(&d, "%s/test-experiment-store.XXXXXX", SCRATCH_DIR) >= 0);
        assert_non_null(mkdtemp(d));
        return d;
}

/* Runs a shell command made from format. */
_printf_(1, 2) static void sh(const char *format, ...) {
        _cleanup_free_ char *cmd = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&cmd, format, ap);
        va_end(ap);
        assert_true(r >= 0);
        assert_int_equal(system(cmd), 0);
}

static void remove_tree(const char *dir) {
        sh("rm -rf '%s'", dir);
}

static int open_dir(const char *dir) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        assert_true(fd >= 0);
        return fd;
}

static json_object *object_with(const char *key, int64_t value) {
        json_object *o = json_object_new_object();

        assert_non_null(o);
        assert_int_equal(json_add_int(o, key, value), 0);
        return o;
}

static char *path_in(const char *dir, const char *id, const char *file) {
        char *p = NULL;

        assert_true(asprintf(&p, "%s/%s%s%s", dir, id, file ? "/" : "", file ?: "") >= 0);
        return p;
}

static off_t file_size(const char *dir, const char *id, const char *file) {
        _cleanup_free_ char *p = path_in(dir, id, file);
        struct stat st;

        assert_int_equal(stat(p, &st), 0);
        return st.st_size;
}

/* Entries of a directory, "." and ".." left out. */
static size_t count_entries(const char *dir) {
        DIR *d = opendir(dir);
        size_t n = 0;

        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));)
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

/* Creates an experiment for guest with a definition {"n": planned} and a provenance {"host": 1}. */
static const char *create(ExperimentStore *s, const char *guest, uint64_t planned) {
        _cleanup_json_ json_object *def = object_with("n", (int64_t) planned), *prov = object_with("host", 1);
        const char *id = NULL;

        assert_int_equal(experiment_store_create(s, guest, planned, def, prov, &id), 0);
        assert_non_null(id);
        return id;
}

static void append_i(ExperimentStore *s, const char *id, int64_t i) {
        _cleanup_json_ json_object *rec = object_with("i", i);
        uint64_t index = UINT64_MAX;

        assert_int_equal(experiment_store_append(s, id, rec, &index), 0);
        assert_int_equal(index, (uint64_t) i);
}

typedef struct Collected {
        uint64_t n;
        int64_t values[64];
        int stop_after;         /* > 0: the handler returns 1 after that many */
} Collected;

static int collect(uint64_t index, json_object *record, void *userdata) {
        Collected *c = userdata;
        json_object *v;

        assert_int_equal(index, c->n);
        assert_true(json_object_object_get_ex(record, "i", &v));
        if (c->n < ELEMENTSOF(c->values))
                c->values[c->n] = json_object_get_int64(v);
        c->n++;
        return c->stop_after > 0 && c->n >= (uint64_t) c->stop_after ? 1 : 0;
}

static ExperimentStore *open_store(const char *dir, const ExperimentStoreLimits *limits) {
        _cleanup_close_ int fd = open_dir(dir);
        ExperimentStore *s = NULL;

        assert_int_equal(experiment_store_open(fd, limits, &s), 0);
        return s;
}

static void test_round_trip(void **state) {
        _cleanup_free_ char *dir = make_temp_dir(), *id = NULL, *d = NULL;
        _cleanup_(experiment_store_freep) ExperimentStore *s = open_store(dir, NULL);
        _cleanup_json_ json_object *summary = object_with("median", 42), *doc = NULL;
        const ExperimentInfo *info;
        Collected c = {};
        struct stat st;

        assert_int_equal(experiment_store_size(s), 0);
        id = strdup(create(s, "guest1", 5));
        assert_non_null(id);
        /* YYYYMMDD-HHMMSS-xxxxxx */
        assert_int_equal(strlen(id), 22);
        assert_true(id[8] == '-' && id[15] == '-');
        d = path_in(dir, id, NULL);
        assert_int_equal(stat(d, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700);

        for (int i = 0; i < 3; i++)
                append_i(s, id, i);
        info = experiment_store_find(s, id);
        assert_non_null(info);
        assert_int_equal(info->state, EXPERIMENT_RUNNING);
        assert_int_equal(info->iterations_done, 3);
        assert_int_equal(info->iterations_planned, 5);
        assert_string_equal(info->guest, "guest1");
        assert_null(info->error);
        assert_true(info->created_usec > 0);
        assert_int_equal(file_size(dir, id, "iterations.jsonl"), 3 * strlen("{\"i\":0}\n"));

        assert_int_equal(experiment_store_read_iterations(s, id, collect, &c), 0);
        assert_int_equal(c.n, 3);
        assert_int_equal(c.values[2], 2);

        assert_int_equal(experiment_store_finish(s, id, EXPERIMENT_COMPLETED, NULL, summary), 0);
        s = experiment_store_free(s);

        /* Everything back from disk. */
        s = open_store(dir, NULL);
        assert_int_equal(experiment_store_size(s), 1);
        info = experiment_store_get(s, 0);
        assert_string_equal(info->id, id);
        assert_int_equal(info->state, EXPERIMENT_COMPLETED);
        assert_null(info->reason);
        assert_true(info->ended_usec >= info->created_usec);
        assert_int_equal(info->iterations_done, 3);
        assert_int_equal(info->iterations_planned, 5);
        assert_string_equal(info->guest, "guest1");
        assert_true(info->bytes > 0);
        assert_int_equal(experiment_store_bytes(s), info->bytes);
        c = (Collected) {};
        assert_int_equal(experiment_store_read_iterations(s, id, collect, &c), 0);
        assert_int_equal(c.n, 3);
        assert_int_equal(c.values[0], 0);
        assert_int_equal(c.values[1], 1);

        /* A handler stops the reading early, or fails it. */
        c = (Collected) { .stop_after = 2 };
        assert_int_equal(experiment_store_read_iterations(s, id, collect, &c), 0);
        assert_int_equal(c.n, 2);

        assert_int_equal(experiment_store_read_document(s, id, EXPERIMENT_DOCUMENT_DEFINITION, &doc), 0);
        assert_int_equal(json_get_int(doc, "n", -1), 5);
        json_object_put(TAKE_PTR(doc));
        assert_int_equal(experiment_store_read_document(s, id, EXPERIMENT_DOCUMENT_PROVENANCE, &doc), 0);
        assert_int_equal(json_get_int(doc, "host", -1), 1);
        json_object_put(TAKE_PTR(doc));
        assert_int_equal(experiment_store_read_document(s, id, EXPERIMENT_DOCUMENT_SUMMARY, &doc), 0);
        assert_int_equal(json_get_int(doc, "median", -1), 42);

        /* The reserve is given back when the experiment ends. */
        _cleanup_free_ char *reserve = path_in(dir, id, ".reserve");
        assert_int_equal(access(reserve, F_OK), -1);

        /* Ended: no more records, no second end. */
        _cleanup_json_ json_object *rec = object_with("i", 3);
        assert_int_equal(experiment_store_append(s, id, rec, NULL), -EALREADY);
        assert_int_equal(experiment_store_finish(s, id, EXPERIMENT_FAILED, "again", NULL), -EALREADY);
        assert_int_equal(experiment_store_append(s, "20260101-000000-abcdef", rec, NULL), -ESRCH);
        assert_null(experiment_store_find(s, "20260101-000000-abcdef"));

        s = experiment_store_free(s);
        remove_tree(dir);
}

static int fail_handler(uint64_t index, json_object *record, void *userdata) {
        return -ENOTRECOVERABLE;
}

/* A reading resumed where a handler stopped it: every line once, in order, with its index. */
static int collect_from(uint64_t index, json_object *record, void *userdata) {
        Collected *c = userdata;
        json_object *v;

        assert_true(json_object_object_get_ex(record, "i", &v));
        assert_int_equal((uint64_t) json_object_get_int64(v), index);
        if (c->n < ELEMENTSOF(c->values))
                c->values[c->n] = json_object_get_int64(v);
        c->n++;
        return c->stop_after > 0 && c->n % (uint64_t) c->stop_after == 0 ? 1 : 0;
}

static void test_read_from(void **state) {
        _cleanup_free_ char *dir = make_temp_dir(), *id = NULL;
        _cleanup_(experiment_store_freep) ExperimentStore *s = open_store(dir, NULL);
        ExperimentReadPosition pos = {}, bad;
        Collected c = { .stop_after = 2 };
        unsigned calls = 0;

        (void) state;
        id = strdup(create(s, "guest1", 7));
        assert_non_null(id);
        for (int i = 0; i < 7; i++)
                append_i(s, id, i);
        do {
                uint64_t before = pos.index;

                assert_int_equal(experiment_store_read_iterations_from(s, id, &pos, collect_from, &c), 0);
                calls++;
                if (pos.index == before)
                        break;
        } while (pos.index < 7);
        assert_int_equal(c.n, 7);
        for (int i = 0; i < 7; i++)
                assert_int_equal(c.values[i], i);
        assert_int_equal(calls, 4);     /* 2 + 2 + 2 + 1 */
        assert_int_equal(pos.offset, file_size(dir, id, "iterations.jsonl"));
        /* At the end: nothing more, no error. */
        assert_int_equal(experiment_store_read_iterations_from(s, id, &pos, collect_from, &c), 0);
        assert_int_equal(c.n, 7);
        bad = (ExperimentReadPosition) { .offset = pos.offset + 1 };
        assert_int_equal(experiment_store_read_iterations_from(s, id, &bad, collect_from, &c), -EINVAL);
}

static void test_bad_input(void **state) {
        _cleanup_free_ char *dir = make_temp_dir(), *big = malloc(EXPERIMENT_RECORD_MAX);
        _cleanup_(experiment_store_freep) ExperimentStore *s = open_store(dir, NULL);
        _cleanup_json_ json_object *def = object_with("n", 1), *nan = json_object_new_object(), *huge = NULL;
        const char *id = NULL;
        off_t before;

        assert_int_equal(experiment_store_create(s, "", 1, def, def, &id), -EINVAL);
        assert_int_equal(experiment_store_create(s, "g", 0, def, def, &id), -EINVAL);
        assert_int_equal(experiment_store_create(s, "g\xc0\x80", 1, def, def, &id), -EINVAL);
        assert_int_equal(experiment_store_create(s, "g", 1, NULL, def, &id), -EINVAL);
        assert_int_equal(count_entries(dir), 0);

        id = create(s, "g", 1);
        append_i(s, id, 0);
        before = file_size(dir, id, "iterations.jsonl");

        /* Over the line bound, and a record that would not read back: refused, the file unchanged. */
        assert_non_null(big);
        memset(big, 'x', EXPERIMENT_RECORD_MAX - 1);
        big[EXPERIMENT_RECORD_MAX - 1] = 0;
        huge = json_object_new_object();
        assert_int_equal(json_add_string(huge, "pad", big), 0);
        assert_int_equal(experiment_store_append(s, id, huge, NULL), -EMSGSIZE);
        assert_int_equal(json_add_double(nan, "x", NAN), 0);
        assert_int_equal(experiment_store_append(s, id, nan, NULL), -EDOM);
        assert_int_equal(file_size(dir, id, "iterations.jsonl"), before);
        assert_int_equal(experiment_store_find(s, id)->iterations_done, 1);

        assert_int_equal(experiment_store_finish(s, id, EXPERIMENT_FAILED, NULL, NULL), -EINVAL);    /* no reason */
        assert_int_equal(experiment_store_finish(s, id, EXPERIMENT_RUNNING, NULL, NULL), -EINVAL);
        assert_int_equal(experiment_store_finish(s, id, EXPERIMENT_INTERRUPTED, "x", NULL), -EINVAL);
        assert_int_equal(experiment_store_read_iterations(s, id, fail_handler, NULL), -ENOTRECOVERABLE);
        assert_int_equal(experiment_store_finish(s, id, EXPERIMENT_FAILED, "the guest crashed", NULL), 0);
        assert_string_equal(experiment_store_find(s, id)->reason, "the guest crashed");

        json_object *doc = NULL;
        assert_int_equal(experiment_store_read_document(s, id, EXPERIMENT_DOCUMENT_SUMMARY, &doc), -ENOENT);

        s = experiment_store_free(s);
        remove_tree(dir);
}

/* Documents are replaced by rename (a new inode), nothing temporary stays, an unfinished creation (a hidden
 * ".new-ID" directory) is removed at load, and files are never opened through a symbolic link. */
static void test_atomic_writes(void **state) {
        _cleanup_free_ char *dir = make_temp_dir(), *id = NULL, *state_path = NULL, *leftover = NULL;
        _cleanup_(experiment_store_freep) ExperimentStore *s = open_store(dir, NULL);
        struct stat st1, st2;

        id = strdup(create(s, "g", 2));
        assert_non_null(id);
        /* The experiment's files: no temporary file. */
        _cleanup_free_ char *d = path_in(dir, id, NULL);
        assert_int_equal(count_entries(d), 5);  /* definition, provenance, iterations, state, .reserve */
        assert_int_equal(count_entries(dir), 1);
        state_path = path_in(dir, id, "state.json");
        assert_int_equal(stat(state_path, &st1), 0);
        assert_int_equal(st1.st_mode & 07777, 0600);
        assert_int_equal(experiment_store_finish(s, id, EXPERIMENT_CANCELLED, NULL, NULL), 0);
        assert_int_equal(stat(state_path, &st2), 0);
        assert_true(st1.st_ino != st2.st_ino);
        assert_int_equal(count_entries(d), 4);
        s = experiment_store_free(s);

        /* A creation that never finished: removed at load, said in the log. */
        leftover = path_in(dir, ".new-20260101-000000-abcdef", NULL);
        assert_int_equal(mkdir(leftover, 0700), 0);
        sh("echo '{}' > '%s/definition.json'", leftover);
        s = open_store(dir, NULL);
        assert_int_equal(access(leftover, F_OK), -1);
        assert_int_equal(experiment_store_size(s), 1);
        s = experiment_store_free(s);

        /* iterations.jsonl replaced by a symbolic link: not followed; the experiment is listed as damaged. */
        _cleanup_free_ char *iter = path_in(dir, id, "iterations.jsonl"), *target = path_in(dir, "target", NULL);
        assert_int_equal(unlink(iter), 0);
        assert_int_equal(symlink(target, iter), 0);
        s = open_store(dir, NULL);
        assert_non_null(experiment_store_find(s, id)->error);
        assert_int_equal(access(target, F_OK), -1);
        s = experiment_store_free(s);

        remove_tree(dir);
}

/* kill -9 during a write leaves a partial line: dropped at load (the file cut back), the rest intact. */
static void test_torn_line(void **state) {
        _cleanup_free_ char *dir = make_temp_dir(), *id = NULL, *iter = NULL;
        _cleanup_(experiment_store_freep) ExperimentStore *s = open_store(dir, NULL);
        const ExperimentInfo *info;
        Collected c = {};
        off_t good;
        FILE *f;

        id = strdup(create(s, "g", 10));
        for (int i = 0; i < 4; i++)
                append_i(s, id, i);
        s = experiment_store_free(s);   /* as if the daemon died: the experiment still reads "running" */

        good = file_size(dir, id, "iterations.jsonl");
        iter = path_in(dir, id, "iterations.jsonl");
        assert_non_null(f = fopen(iter, "ae"));
        assert_true(fputs("{\"i\":4,\"pad\":\"xx", f) >= 0);
        assert_int_equal(fclose(f), 0);

        s = open_store(dir, NULL);
        info = experiment_store_find(s, id);
        assert_non_null(info);
        assert_null(info->error);
        assert_int_equal(info->iterations_done, 4);
        assert_int_equal(info->state, EXPERIMENT_INTERRUPTED);
        assert_int_equal(file_size(dir, id, "iterations.jsonl"), good);
        assert_int_equal(experiment_store_read_iterations(s, id, collect, &c), 0);
        assert_int_equal(c.n, 4);
        assert_int_equal(c.values[3], 3);

        s = experiment_store_free(s);
        remove_tree(dir);
}

static void test_interrupted(void **state) {
        _cleanup_free_ char *dir = make_temp_dir(), *id = NULL, *state_path = NULL, *text = NULL;
        _cleanup_(experiment_store_freep) ExperimentStore *s = open_store(dir, NULL);
        const ExperimentInfo *info;
        uint64_t ended;
        Collected c = {};

        id = strdup(create(s, "g", 10));
        for (int i = 0; i < 3; i++)
                append_i(s, id, i);
        s = experiment_store_free(s);

        s = open_store(dir, NULL);
        info = experiment_store_find(s, id);
        assert_int_equal(info->state, EXPERIMENT_INTERRUPTED);
        assert_string_equal(info->reason, EXPERIMENT_REASON_INTERRUPTED);
        assert_true(info->ended_usec >= info->created_usec);
        assert_int_equal(info->iterations_done, 3);
        ended = info->ended_usec;
        assert_int_equal(experiment_store_read_iterations(s, id, collect, &c), 0);
        assert_int_equal(c.n, 3);
        /* Not running any more: deletable, no more appends. */
        _cleanup_json_ json_object *rec = object_with("i", 3);
        assert_int_equal(experiment_store_append(s, id, rec, NULL), -EALREADY);
        s = experiment_store_free(s);

        /* Written to disk, once: a second load changes nothing. */
        state_path = path_in(dir, id, "state.json");
        assert_int_equal(read_full_file(state_path, 65536, &text, NULL), 0);
        assert_non_null(strstr(text, "\"interrupted\""));
        assert_non_null(strstr(text, EXPERIMENT_REASON_INTERRUPTED));
        s = open_store(dir, NULL);
        info = experiment_store_find(s, id);
        assert_int_equal(info->state, EXPERIMENT_INTERRUPTED);
        assert_int_equal(info->ended_usec, ended);
        assert_int_equal(experiment_store_delete(s, id), 0);
        assert_int_equal(count_entries(dir), 0);
        s = experiment_store_free(s);
        remove_tree(dir);
}

/* Damaged files: the experiment is listed with the error and kept (retention passes it by); delete removes it. */
static void test_damaged(void **state) {
        ExperimentStoreLimits limits = { .max_experiments = 1 };
        _cleanup_free_ char *dir = make_temp_dir(), *a = NULL, *b = NULL, *p = NULL;
        _cleanup_(experiment_store_freep) ExperimentStore *s = open_store(dir, &limits);
        const ExperimentInfo *info;

        a = strdup(create(s, "g", 1));
        assert_int_equal(experiment_store_finish(s, a, EXPERIMENT_COMPLETED, NULL, NULL), 0);
        b = strdup(create(s, "g", 1));
        append_i(s, b, 0);
        assert_int_equal(experiment_store_finish(s, b, EXPERIMENT_COMPLETED, NULL, NULL), 0);
        /* The bound of 1 removed a. */
        assert_int_equal(experiment_store_size(s), 1);
        assert_null(experiment_store_find(s, a));
        s = experiment_store_free(s);

        p = path_in(dir, b, "state.json");
        sh("printf '{\"id\": tru' > '%s'", p);
        s = open_store(dir, &limits);
        info = experiment_store_find(s, b);
        assert_non_null(info);
        assert_non_null(info->error);
        assert_non_null(strstr(info->error, "state.json"));
        assert_int_equal(info->state, _EXPERIMENT_STATE_INVALID);
        assert_int_equal(info->iterations_done, 1);

        /* A new experiment ends: the damaged one is older but kept. */
        a = mfree(a);
        a = strdup(create(s, "g", 1));
        assert_int_equal(experiment_store_finish(s, a, EXPERIMENT_COMPLETED, NULL, NULL), 0);
        assert_int_equal(experiment_store_size(s), 2);
        assert_non_null(experiment_store_find(s, b));
        assert_int_equal(experiment_store_delete(s, b), 0);
        assert_null(experiment_store_find(s, b));
        assert_int_equal(count_entries(dir), 1);
        s = experiment_store_free(s);

        /* A NUL byte in a line: damaged, reading refuses. */
        p = mfree(p);
        p = path_in(dir, a, "iterations.jsonl");
        sh("printf '{\"i\":0}\\n{\"i\"\\000}\\n' > '%s'", p);
        s = open_store(dir, &limits);
        info = experiment_store_find(s, a);
        assert_non_null(info->error);
        assert_non_null(strstr(info->error, "NUL"));
        s = experiment_store_free(s);

        /* A line that is not JSON: found when reading it back. */
        sh("printf '{\"i\":0}\\n{\"i\":\\n' > '%s'", p);
        s = open_store(dir, &limits);
        Collected c = {};
        assert_int_equal(experiment_store_find(s, a)->iterations_done, 2);
        assert_int_equal(experiment_store_read_iterations(s, a, collect, &c), -EBADMSG);
        assert_int_equal(c.n, 1);
        s = experiment_store_free(s);
        remove_tree(dir);
}

static void test_retention(void **state) {
        ExperimentStoreLimits limits = { .max_experiments = 3 };
        _cleanup_free_ char *dir = make_temp_dir(), *old_running = NULL;
        _cleanup_(experiment_store_freep) ExperimentStore *s = open_store(dir, &limits);
        char *ids[6] = {};
        uint64_t bytes;

        old_running = strdup(create(s, "busy", 100));           /* the oldest, and running: never removed */
        for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
                ids[i] = strdup(create(s, "g", 1));
                append_i(s, ids[i], 0);
                assert_int_equal(experiment_store_finish(s, ids[i], EXPERIMENT_COMPLETED, NULL, NULL), 0);
                assert_true(experiment_store_size(s) <= 3);
        }
        /* The oldest ended ones went first: left are the running one and the two newest. */
        assert_int_equal(experiment_store_size(s), 3);
        assert_string_equal(experiment_store_get(s, 0)->id, old_running);
        assert_string_equal(experiment_store_get(s, 1)->id, ids[4]);
        assert_string_equal(experiment_store_get(s, 2)->id, ids[5]);
        assert_int_equal(count_entries(dir), 3);
        s = experiment_store_free(s);

        /* The same order after a load; then a byte bound that only the newest fits. */
        s = open_store(dir, &limits);
        assert_string_equal(experiment_store_get(s, 1)->id, ids[4]);
        bytes = experiment_store_find(s, ids[5])->bytes;
        s = experiment_store_free(s);
        limits.max_bytes = bytes + 1;
        s = open_store(dir, &limits);
        assert_int_equal(experiment_store_apply_retention(s, ids[5]), 2);  /* the interrupted one and ids[4] */
        assert_int_equal(experiment_store_size(s), 1);
        assert_string_equal(experiment_store_get(s, 0)->id, ids[5]);
        /* keep_id is kept even over the bound. */
        limits.max_bytes = 1;
        s = experiment_store_free(s);
        s = open_store(dir, &limits);
        assert_int_equal(experiment_store_apply_retention(s, ids[5]), 0);
        assert_int_equal(experiment_store_apply_retention(s, NULL), 1);
        assert_int_equal(experiment_store_size(s), 0);
        assert_int_equal(count_entries(dir), 0);

        for (size_t i = 0; i < ELEMENTSOF(ids); i++)
                free(ids[i]);
        s = experiment_store_free(s);
        remove_tree(dir);
}

static void test_delete_running(void **state) {
        _cleanup_free_ char *dir = make_temp_dir(), *id = NULL;
        _cleanup_(experiment_store_freep) ExperimentStore *s = open_store(dir, NULL);

        id = strdup(create(s, "g", 2));
        append_i(s, id, 0);
        assert_int_equal(experiment_store_delete(s, id), -EBUSY);
        assert_int_equal(count_entries(dir), 1);
        assert_int_equal(experiment_store_finish(s, id, EXPERIMENT_CANCELLED, "cancelled by the user", NULL), 0);
        assert_int_equal(experiment_store_delete(s, id), 0);
        assert_int_equal(experiment_store_delete(s, id), -ESRCH);
        assert_int_equal(experiment_store_size(s), 0);
        assert_int_equal(count_entries(dir), 0);
        s = experiment_store_free(s);
        remove_tree(dir);
}

/* ---- a full file system ------------------------------------------------------------------------------- */

/* As root: a private mount namespace (so the mount goes with the process), a 512 KiB tmpfs under the build
 * directory. Appends until it is full: the failing append returns -ENOSPC and leaves the file at its last complete
 * line; the experiment can still be recorded as failed (the reserve); a creation on the full disk leaves nothing. */
static void test_full_disk(void **state) {
        _cleanup_free_ char *dir = make_temp_dir(), *id = NULL, *pad = malloc(20000), *filler = NULL;
        _cleanup_(experiment_store_freep) ExperimentStore *s = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *id2 = NULL;
        const ExperimentInfo *info;
        uint64_t acked = 0, total = 0;
        Collected c = {};
        int r;

        assert_non_null(pad);
        if (geteuid() != 0) {
                fprintf(stderr, "Skipping the full file system test: mounting a tmpfs needs root.\n");
                remove_tree(dir);
                skip();
        }
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
                fprintf(stderr, "Skipping the full file system test: no mount namespace: %m\n");
                remove_tree(dir);
                skip();
        }
        if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=512k,mode=0700") < 0) {
                fprintf(stderr, "Skipping the full file system test: cannot mount a tmpfs: %m\n");
                remove_tree(dir);
                skip();
        }

        s = open_store(dir, NULL);
        id = strdup(create(s, "g", 1000));
        memset(pad, 'x', 19999);
        pad[19999] = 0;
        for (;;) {
                _cleanup_json_ json_object *rec = object_with("i", (int64_t) acked);
                size_t len;

                assert_int_equal(json_add_string(rec, "pad", pad), 0);
                (void) json_to_plain(rec, &len);
                r = experiment_store_append(s, id, rec, NULL);
                if (r < 0)
                        break;
                total += len + 1;
                acked++;
                assert_true(acked < 1000);
        }
        assert_int_equal(r, -ENOSPC);
        assert_true(acked > 5);
        /* Nothing of the failed record is left. */
        assert_int_equal(file_size(dir, id, "iterations.jsonl"), (off_t) total);
        info = experiment_store_find(s, id);
        assert_int_equal(info->iterations_done, acked);

        /* The caller fails the experiment: recorded on a disk full to the last byte (what the truncation gave
         * back taken by a filler), with the experiment's reserve. */
        filler = path_in(dir, "filler", NULL);
        fd = open(filler, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        while (write(fd, pad, 19999) > 0)
                ;
        while (write(fd, pad, 1) > 0)
                ;
        assert_int_equal(errno, ENOSPC);
        assert_int_equal(experiment_store_finish(s, id, EXPERIMENT_FAILED, "the state directory is full", NULL), 0);

        /* A new experiment on the full disk: refused, nothing of it left. */
        while (write(fd, pad, 1) > 0)
                ;
        fd = safe_close(fd);
        _cleanup_json_ json_object *def = object_with("n", 1);
        r = experiment_store_create(s, "g", 1, def, def, &id2);
        assert_true(r == -ENOSPC);
        assert_int_equal(count_entries(dir), 2);        /* the experiment and the filler */
        assert_int_equal(experiment_store_size(s), 1);
        assert_int_equal(unlink(filler), 0);
        s = experiment_store_free(s);

        /* Back from disk: failed, with its reason and every acknowledged iteration. */
        s = open_store(dir, NULL);
        info = experiment_store_find(s, id);
        assert_non_null(info);
        assert_null(info->error);
        assert_int_equal(info->state, EXPERIMENT_FAILED);
        assert_string_equal(info->reason, "the state directory is full");
        assert_int_equal(info->iterations_done, acked);
        assert_int_equal(experiment_store_read_iterations(s, id, collect, &c), 0);
        assert_int_equal(c.n, acked);
        s = experiment_store_free(s);

        assert_int_equal(umount2(dir, MNT_DETACH), 0);
        remove_tree(dir);
}

/* ---- kill -9 ------------------------------------------------------------------------------------------- */

/* A child appends iterations of varying sizes (up to 256 KiB, so a write may be cut) and reports each
 * acknowledged index through a pipe; it is killed with SIGKILL at a random moment. Every acknowledged iteration
 * must be there, at most the one in flight more, and every line must parse. */
static _noreturn_ void kill9_child(const char *dir, int out) {
        _cleanup_(experiment_store_freep) ExperimentStore *s = NULL;
        _cleanup_json_ json_object *def = NULL, *prov = NULL;
        _cleanup_free_ char *pad = malloc(256 * 1024);
        _cleanup_close_ int fd = -EBADF;
        const char *id = NULL;

        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        def = json_object_new_object();
        prov = json_object_new_object();
        if (fd < 0 || !pad || !def || !prov || experiment_store_open(fd, NULL, &s) < 0 ||
            experiment_store_create(s, "g", 1000000, def, prov, &id) < 0 || write(out, id, 22) != 22)
                _exit(2);
        memset(pad, 'y', 256 * 1024);
        for (uint64_t i = 0; i < 100000; i++) {
                _cleanup_json_ json_object *rec = json_object_new_object();
                size_t n = (size_t) ((i * 7919) % (256 * 1024 - 64));

                if (!rec || json_add_int(rec, "i", (int64_t) i) < 0 ||
                    json_add(rec, "pad", json_object_new_string_len(pad, (int) n)) < 0 ||
                    experiment_store_append(s, id, rec, NULL) < 0 || write(out, &i, sizeof(i)) != sizeof(i))
                        _exit(3);
        }
        _exit(4);
}

typedef struct Kill9Check {
        uint64_t n;
        bool in_order;
} Kill9Check;

static int kill9_check(uint64_t index, json_object *record, void *userdata) {
        Kill9Check *k = userdata;

        if (json_get_int(record, "i", -1) != (int64_t) index)
                k->in_order = false;
        k->n++;
        return 0;
}

static void test_kill9(void **state) {
        _cleanup_free_ char *dir = make_temp_dir();
        _cleanup_(experiment_store_freep) ExperimentStore *s = NULL;
        char id[23] = {};
        uint64_t acked = 0, last = 0, idx;
        const ExperimentInfo *info;
        Kill9Check k = { .in_order = true };
        int p[2], status;
        struct timespec ts;
        pid_t pid;

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(p[0]);
                kill9_child(dir, p[1]);
        }
        close(p[1]);
        assert_int_equal(read(p[0], id, 22), 22);

        /* Some acknowledged iterations, then SIGKILL at a moment that varies from run to run. */
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        srand((unsigned) ts.tv_nsec);
        while (acked < 30) {
                assert_int_equal(read(p[0], &idx, sizeof(idx)), sizeof(idx));
                assert_int_equal(idx, acked);
                last = idx;
                acked++;
        }
        (void) usleep((useconds_t) (rand() % 20000));
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* Whatever it acknowledged before it died. */
        for (ssize_t n; (n = read(p[0], &idx, sizeof(idx))) > 0;) {
                assert_int_equal(n, sizeof(idx));
                assert_int_equal(idx, acked);
                last = idx;
                acked++;
        }
        close(p[0]);

        s = open_store(dir, NULL);
        info = experiment_store_find(s, id);
        assert_non_null(info);
        assert_null(info->error);
        assert_int_equal(info->state, EXPERIMENT_INTERRUPTED);
        fprintf(stderr, "kill -9 after %" PRIu64 " acknowledged iterations: %" PRIu64 " on disk\n", acked,
                info->iterations_done);
        assert_true(info->iterations_done >= last + 1);
        assert_true(info->iterations_done <= last + 2);         /* at most the one in flight */
        assert_int_equal(experiment_store_read_iterations(s, id, kill9_check, &k), 0);
        assert_int_equal(k.n, info->iterations_done);
        assert_true(k.in_order);
        s = experiment_store_free(s);
        remove_tree(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_read_from),
                cmocka_unit_test(test_bad_input),
                cmocka_unit_test(test_atomic_writes),
                cmocka_unit_test(test_torn_line),
                cmocka_unit_test(test_interrupted),
                cmocka_unit_test(test_damaged),
                cmocka_unit_test(test_retention),
                cmocka_unit_test(test_delete_running),
                cmocka_unit_test(test_full_disk),
                cmocka_unit_test(test_kill9),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
