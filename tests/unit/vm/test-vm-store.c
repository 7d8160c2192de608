/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest-definition store and the guest table of src/vm: loading a directory of .vm files (good, bad and
 * untrusted ones: StrictModes), saving and removing a definition atomically, and the plan of a reload with
 * its application. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/strv.h"
#include "vm/vm-store.h"
#include "vm/vm-table.h"

#define GOOD "[VM]\nKernel=/boot/vmlinuz\n"

static bool endswith(const char *s, const char *suffix) {
        size_t l = strlen(s), k = strlen(suffix);

        return l >= k && streq(s + l - k, suffix);
}

static char *make_temp_dir(void) {
        char *d = NULL;

        assert_true(asprintf(&d, "%s/test-vm-store.XXXXXX", getenv("TMPDIR") ?: "/tmp") >= 0);
        assert_non_null(mkdtemp(d));
        return d;
}

static void remove_tree(const char *dir) {
        _cleanup_free_ char *cmd = NULL;

        assert_true(asprintf(&cmd, "chmod -R u+rwx '%s' && rm -rf '%s'", dir, dir) >= 0);
        assert_int_equal(system(cmd), 0);
}

static char *write_in(const char *dir, const char *name, const char *text, mode_t mode) {
        char *path = path_join(dir, name);

        assert_non_null(path);
        assert_int_equal(write_file_atomic(path, text, strlen(text), mode), 0);
        assert_int_equal(chmod(path, mode), 0); /* not narrowed by the umask */
        return path;
}

static const VmStoreFile *find_file(const VmStoreSet *set, const char *dir, const char *name) {
        _cleanup_free_ char *path = path_join(dir, name);

        for (size_t i = 0; i < set->n_files; i++)
                if (streq(set->files[i].path, path))
                        return &set->files[i];
        return NULL;
}

static VmSpec *parse(const char *name, const char *text) {
        VmSpecError e = {};
        VmSpec *spec = NULL;

        assert_int_equal(vm_spec_parse_ini(name, text, NULL, &spec, &e), 0);
        return spec;
}

/* ---------------------------------------------------------------------------------------------------- */

static void test_load_missing_dir(void **state) {
        VmStoreSet set = { .n_files = 99 };

        assert_int_equal(vm_store_load("/nonexistent/memvisor-test", (gid_t) -1, &set), 0);
        assert_int_equal(set.n_files, 0);
        assert_null(set.files);
}

static void test_load_good_and_bad(void **state) {
        _cleanup_free_ char *dir = make_temp_dir();
        _cleanup_(vm_store_set_done) VmStoreSet set = {};
        const VmStoreFile *f;

        free(write_in(dir, "web.vm", GOOD "Memory=1G\n", 0644));
        free(write_in(dir, "bad.vm", GOOD "\nMemory=12Q\n", 0644));
        free(write_in(dir, "other.vm", "[VM]\nName=web\nKernel=/boot/vmlinuz\n", 0644));
        free(write_in(dir, ".hidden.vm", GOOD, 0644));
        free(write_in(dir, "notes.txt", "not a definition", 0644));

        assert_int_equal(vm_store_load(dir, (gid_t) -1, &set), 0);
        assert_int_equal(set.n_files, 3); /* sorted, no hidden files, only *.vm */
        assert_true(endswith(set.files[0].path, "/bad.vm"));
        assert_true(endswith(set.files[1].path, "/other.vm"));
        assert_true(endswith(set.files[2].path, "/web.vm"));

        f = find_file(&set, dir, "web.vm");
        assert_non_null(f->spec);
        assert_string_equal(f->spec->name, "web");
        assert_int_equal(f->spec->memory_bytes, 1024ULL * 1024 * 1024);
        assert_int_equal(f->error, 0);
        assert_null(f->message);

        /* The place of the problem: FILE:LINE. */
        f = find_file(&set, dir, "bad.vm");
        assert_null(f->spec);
        assert_true(f->error < 0);
        assert_non_null(f->message);
        assert_non_null(strstr(f->message, "bad.vm:4:"));
        assert_non_null(strstr(f->message, "12Q"));

        /* A Name= that disagrees with the file name. */
        f = find_file(&set, dir, "other.vm");
        assert_null(f->spec);
        assert_true(f->error < 0);
        assert_non_null(strstr(f->message, "other.vm"));

        remove_tree(dir);
}

static void test_load_untrusted(void **state) {
        _cleanup_free_ char *dir = make_temp_dir(), *link = NULL, *grp = NULL, *owned = NULL;
        _cleanup_(vm_store_set_done) VmStoreSet set = {}, again = {};
        const VmStoreFile *f;

        free(write_in(dir, "good.vm", GOOD, 0600));
        free(write_in(dir, "open.vm", GOOD, 0666));
        link = path_join(dir, "link.vm");
        assert_int_equal(symlink("good.vm", link), 0);
        if (geteuid() == 0) {
                grp = write_in(dir, "grp.vm", GOOD, 0664);
                assert_int_equal(chown(grp, (uid_t) -1, 12345), 0);
                owned = write_in(dir, "owned.vm", GOOD, 0644);
                assert_int_equal(chown(owned, 4242, (gid_t) -1), 0);
        }

        assert_int_equal(vm_store_load(dir, (gid_t) -1, &set), 0);
        assert_non_null(find_file(&set, dir, "good.vm")->spec);

        f = find_file(&set, dir, "open.vm");
        assert_null(f->spec);
        assert_int_equal(f->error, -EPERM);
        assert_non_null(strstr(f->message, "is writable by everyone (mode 0666): it could change what runs as root"));

        f = find_file(&set, dir, "link.vm");
        assert_null(f->spec);
        assert_int_equal(f->error, -EPERM);
        assert_non_null(strstr(f->message, "is not a regular file (symbolic links are not followed)"));

        if (geteuid() == 0) {
                f = find_file(&set, dir, "grp.vm");
                assert_null(f->spec);
                assert_int_equal(f->error, -EPERM);
                assert_non_null(strstr(f->message, "is writable by group 12345, which is neither root's nor AdminGroup="));

                f = find_file(&set, dir, "owned.vm");
                assert_null(f->spec);
                assert_int_equal(f->error, -EPERM);
                assert_non_null(strstr(f->message, "is owned by uid 4242, not by root"));

                /* AdminGroup= may write. */
                assert_int_equal(vm_store_load(dir, 12345, &again), 0);
                assert_non_null(find_file(&again, dir, "grp.vm")->spec);
                assert_null(find_file(&again, dir, "owned.vm")->spec);
                vm_store_set_done(&again);
        } else
                print_message("not root: the owner and group checks are not tried\n");

        /* A directory writable by everyone: nothing in it loads, and every file says why. */
        assert_int_equal(chmod(dir, 0777), 0);
        assert_int_equal(vm_store_load(dir, (gid_t) -1, &again), 0);
        assert_true(again.n_files >= 3);
        for (size_t i = 0; i < again.n_files; i++) {
                assert_null(again.files[i].spec);
                assert_int_equal(again.files[i].error, -EPERM);
                assert_non_null(strstr(again.files[i].message, "is writable by everyone (mode 0777)"));
                assert_non_null(strstr(again.files[i].message, "not loading the guest definitions in it"));
        }

        remove_tree(dir);
}

static size_t count_entries(const char *dir) {
        struct dirent **list = NULL;
        int n = scandir(dir, &list, NULL, NULL);

        assert_true(n >= 2);
        for (int i = 0; i < n; i++)
                free(list[i]);
        free(list);
        return (size_t) n - 2; /* . and .. */
}

static void test_save_and_remove(void **state) {
        _cleanup_free_ char *dir = make_temp_dir(), *path = NULL;
        _cleanup_(vm_spec_freep) VmSpec *spec = parse("web.vm", GOOD "Memory=2G\n");
        _cleanup_(vm_store_set_done) VmStoreSet set = {};
        struct stat st;

        assert_int_equal(vm_store_save(dir, spec), 0);
        path = path_join(dir, "web.vm");
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(count_entries(dir), 1); /* no temporary file left */

        /* What was saved loads again, trusted and equal. */
        assert_int_equal(vm_store_load(dir, (gid_t) -1, &set), 0);
        assert_int_equal(set.n_files, 1);
        assert_non_null(set.files[0].spec);
        assert_true(vm_spec_equal(set.files[0].spec, spec));

        assert_int_equal(vm_store_remove(dir, "web"), 0);
        assert_int_equal(count_entries(dir), 0);
        assert_int_equal(vm_store_remove(dir, "web"), 0); /* already gone: no error */

        remove_tree(dir);
}

static void test_save_atomic_failure(void **state) {
        _cleanup_free_ char *dir = make_temp_dir(), *path = NULL, *old = NULL;
        _cleanup_(vm_spec_freep) VmSpec *spec = parse("web.vm", GOOD "Memory=2G\n");
        struct stat st;

        /* The rename cannot replace a directory: the save fails and leaves nothing half-written behind. */
        path = path_join(dir, "web.vm");
        assert_int_equal(mkdir(path, 0700), 0);
        assert_true(vm_store_save(dir, spec) < 0);
        assert_int_equal(lstat(path, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(count_entries(dir), 1);
        assert_int_equal(rmdir(path), 0);

        /* A directory that cannot be written (root writes anyway): no file at all, the old one unchanged. */
        old = write_in(dir, "web.vm", GOOD "Memory=1G\n", 0600);
        assert_int_equal(chmod(dir, 0500), 0);
        if (geteuid() != 0) {
                _cleanup_free_ char *text = NULL;

                assert_int_equal(vm_store_save(dir, spec), -EACCES);
                assert_int_equal(count_entries(dir), 1);
                assert_int_equal(read_full_file(old, 4096, &text, NULL), 0);
                assert_string_equal(text, GOOD "Memory=1G\n");
                assert_int_equal(vm_store_remove(dir, "web"), -EACCES);
                assert_int_equal(lstat(old, &st), 0);
        } else
                print_message("root: the read-only directory is not tried\n");

        remove_tree(dir);
}

/* ---------------------------------------------------------------------------------------------------- */
/* The reload plan */

typedef struct Seen {
        char log[512];
} Seen;

static void record_change(Vm *vm, VmTableChange change, void *userdata) {
        Seen *s = userdata;
        size_t l = strlen(s->log);

        snprintf(s->log + l, sizeof(s->log) - l, "%s %s;", vm_table_change_to_string(change), vm->name);
}

static Vm *add_guest(VmTable *t, const char *dir, const char *name, const char *text, bool from_file) {
        _cleanup_free_ char *file = NULL, *path = NULL;
        VmSpec *spec;
        Vm *vm = NULL;

        assert_true(asprintf(&file, "%s.vm", name) >= 0);
        spec = parse(file, text);
        path = path_join(dir, file);
        assert_int_equal(vm_table_add_loaded(t, spec, path, !from_file, &vm), 0);
        assert_ptr_equal(vm_table_find(t, name), vm);
        return vm;
}

static void test_reload_plan(void **state) {
        _cleanup_free_ char *run = make_temp_dir(), *dir = make_temp_dir();
        _cleanup_(vm_store_set_done) VmStoreSet set = {};
        _cleanup_(vm_reload_plan_done) VmReloadPlan plan = {};
        VmContext ctx = {};
        sd_event *event = NULL;
        Seen seen = {};
        VmSpec *spec;
        VmTable t;
        Vm *vm;

        assert_true(sd_event_default(&event) >= 0);
        assert_int_equal(vm_context_init(&ctx, event, run, false), 0);
        vm_table_init(&t, &ctx, record_change, &seen);

        /* The table before: guests of VMDirectory= and one of the API. */
        add_guest(&t, dir, "same", GOOD, true);
        add_guest(&t, dir, "changed", GOOD "Memory=1G\n", true);
        add_guest(&t, dir, "gone", GOOD, true);
        vm = add_guest(&t, dir, "running-gone", GOOD, true);
        vm->state = VM_STATE_RESTARTING; /* active: a restart waits */
        add_guest(&t, dir, "keep", GOOD, true);
        add_guest(&t, dir, "api", GOOD, false);
        assert_int_equal(t.n_vms, 6);
        for (size_t i = 1; i < t.n_vms; i++) /* sorted */
                assert_true(strcmp(t.vms[i - 1]->name, t.vms[i]->name) < 0);
        spec = parse("same.vm", GOOD); /* a second definition of a name: refused, the caller keeps the spec */
        assert_int_equal(vm_table_add_loaded(&t, spec, "elsewhere/same.vm", false, NULL), -EEXIST);
        spec = vm_spec_free(spec);

        /* VMDirectory= now. */
        free(write_in(dir, "same.vm", GOOD, 0644));
        free(write_in(dir, "changed.vm", GOOD "Memory=2G\n", 0644));
        free(write_in(dir, "keep.vm", GOOD "Memory=nonsense\n", 0644));
        free(write_in(dir, "new.vm", GOOD, 0644));
        free(write_in(dir, "api.vm", GOOD, 0644));
        assert_int_equal(vm_store_load(dir, (gid_t) -1, &set), 0);

        assert_int_equal(vm_reload_plan(&t, &set, &plan), 0);
        assert_int_equal(t.n_vms, 6); /* planning changes nothing */
        assert_int_equal(plan.n_steps, 6);
        /* Guests that went, in table order … */
        assert_int_equal(plan.steps[0].action, VM_RELOAD_FORGET);
        assert_string_equal(plan.steps[0].vm->name, "gone");
        assert_int_equal(plan.steps[1].action, VM_RELOAD_KEEP);
        assert_string_equal(plan.steps[1].vm->name, "keep");
        assert_int_equal(plan.steps[2].action, VM_RELOAD_ORPHAN);
        assert_string_equal(plan.steps[2].vm->name, "running-gone");
        /* … then the files, in file order; same.vm is unchanged and has no step. */
        assert_int_equal(plan.steps[3].action, VM_RELOAD_CONFLICT);
        assert_string_equal(plan.steps[3].vm->name, "api");
        assert_null(plan.steps[3].spec);
        assert_int_equal(plan.steps[4].action, VM_RELOAD_REDEFINE);
        assert_string_equal(plan.steps[4].vm->name, "changed");
        assert_int_equal(plan.steps[4].spec->memory_bytes, 2048ULL * 1024 * 1024);
        assert_int_equal(plan.steps[5].action, VM_RELOAD_ADD);
        assert_null(plan.steps[5].vm);
        assert_string_equal(plan.steps[5].spec->name, "new");
        assert_true(endswith(plan.steps[5].path, "/new.vm"));
        assert_string_equal(vm_reload_action_to_string(plan.steps[5].action), "add");

        vm_reload_plan_apply(&t, &plan);
        assert_string_equal(seen.log, "undefined gone;redefined changed;defined new;");
        assert_null(vm_table_find(&t, "gone"));
        assert_true(vm_table_find(&t, "running-gone")->transient);
        assert_false(vm_table_find(&t, "keep")->transient);
        assert_int_equal(vm_table_find(&t, "changed")->spec->memory_bytes, 2048ULL * 1024 * 1024);
        assert_null(vm_table_find(&t, "api")->source);
        assert_non_null(vm_table_find(&t, "new")->source);
        assert_int_equal(t.n_vms, 6);
        assert_int_equal(vm_table_count(&t).active, 1);

        /* The transient guest goes once it ended. */
        vm_table_find(&t, "running-gone")->state = VM_STATE_STOPPED;
        vm_table_gc(&t);
        assert_null(vm_table_find(&t, "running-gone"));
        assert_string_equal(seen.log, "undefined gone;redefined changed;defined new;undefined running-gone;");

        vm_table_done(&t);
        vm_context_done(&ctx);
        sd_event_unref(event);
        remove_tree(run);
        remove_tree(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_load_missing_dir),
                cmocka_unit_test(test_load_good_and_bad),
                cmocka_unit_test(test_load_untrusted),
                cmocka_unit_test(test_save_and_remove),
                cmocka_unit_test(test_save_atomic_failure),
                cmocka_unit_test(test_reload_plan),
        };

        umask(022);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
