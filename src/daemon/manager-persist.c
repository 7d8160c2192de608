/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guests' records in the state directory, so that they survive a restart of memvisord (even kill -9):
 * STATE_DIR/guests/NAME/balloon.json (balloon-persist.h: target, schedule and its position, steps, decisions)
 * and STATE_DIR/guests/NAME/migrations.json (numa-migration.h: the kept migration reports and the totals).
 *
 * What goes into the files is the feature modules'; this decides where and when. A balloon record is saved
 * whenever its controller says it changed, coalesced to once per event loop iteration (a defer source), and
 * right away before a call that changed it is answered (SetBalloonSchedule, CancelBalloonSchedule; SetBalloon
 * answers only once QEMU did, after the deferred save). A migration history is saved when a move's report is
 * recorded, before the progress notification that carries it goes out. Each write is atomic
 * (write_file_atomic_at(): temporary file, fsync, rename, fsync of the directory), relative to the guest's
 * directory fd, never through a symbolic link.
 *
 * A save that fails (a full disk) leaves the previous file as it was and the record in memory: the failure is
 * logged when it starts and when it ends, and GetBalloon shows it as recordError meanwhile; the operation that
 * changed the record is not undone (the balloon already moved). A file that cannot be read back is logged
 * with its path and the reason and moved aside to NAME.corrupt; the guest loads without that record. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "balloon/balloon-persist.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "daemon/manager-guest.h"
#include "daemon/manager-persist.h"

#define GUESTS_DIR "guests"
#define BALLOON_FILE "balloon.json"
#define MIGRATIONS_FILE "migrations.json"

/* ---- directories ------------------------------------------------------------------------------ */

/* STATE_DIR/guests/NAME, made when create; a directory of ours, never a symbolic link. */
static int guest_dir_open(Manager *m, const char *name, bool create) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (m->guests_dir_fd < 0)
                return -EBADF;
        if (create && mkdirat(m->guests_dir_fd, name, 0700) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(m->guests_dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_uid != geteuid())
                return -EPERM;
        return TAKE_FD(fd);
}

/* ---- saving ----------------------------------------------------------------------------------- */

static void save_result(Manager *m, ManagerGuest *g, const char *file, int r) {
        _cleanup_free_ char *msg = NULL;

        if (r >= 0) {
                if (g->record_error && strstr(g->record_error, file)) {
                        log_info("Guest %s: its record %s/%s/%s/%s is saved again.", g->name, m->config.state_dir,
                                 GUESTS_DIR, g->name, file);
                        g->record_error = mfree(g->record_error);
                }
                return;
        }
        if (asprintf(&msg, "failed to save %s/%s/%s/%s, keeping it in memory only: %s", m->config.state_dir,
                     GUESTS_DIR, g->name, file, strerror(-r)) < 0) {
                (void) log_oom();
                return;
        }
        if (!streq_ptr(g->record_error, msg))
                log_error("Guest %s: %s", g->name, msg);
        free(g->record_error);
        g->record_error = TAKE_PTR(msg);
}

static int save_text(Manager *m, ManagerGuest *g, const char *file, const char *text, size_t size) {
        _cleanup_close_ int fd = guest_dir_open(m, g->name, true);
        int r;

        r = fd < 0 ? fd : write_file_atomic_at(fd, file, text, size, 0600);
        save_result(m, g, file, r);
        return r;
}

int manager_persist_save_balloon(Manager *m, ManagerGuest *g) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        g->balloon_dirty = false;
        if (!g->balloon)
                return 0;
        r = balloon_record_save(g->balloon, &text, &size);
        if (r < 0) {
                save_result(m, g, BALLOON_FILE, r);
                return r;
        }
        return save_text(m, g, BALLOON_FILE, text, size);
}

int manager_persist_save_migrations(Manager *m, const char *name) {
        ManagerGuest *g = manager_guest_find(m, name);
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        if (!g || !g->migrations)
                return 0;
        r = migration_history_save(g->migrations, &text, &size);
        if (r < 0) {
                save_result(m, g, MIGRATIONS_FILE, r);
                return r;
        }
        return save_text(m, g, MIGRATIONS_FILE, text, size);
}

static int persist_on_defer(sd_event_source *s, void *userdata) {
        Manager *m = userdata;

        for (size_t i = 0; i < m->n_records; i++)
                if (m->records[i]->balloon_dirty)
                        (void) manager_persist_save_balloon(m, m->records[i]);
        return 0;
}

static void balloon_on_change(BalloonController *c, void *userdata) {
        Manager *m = userdata;
        ManagerGuest *g = manager_guest_find(m, balloon_controller_get_name(c));

        if (!g)
                return;
        g->balloon_dirty = true;
        if (m->persist_source)
                (void) sd_event_source_set_enabled(m->persist_source, SD_EVENT_ONESHOT);
}

void manager_persist_flush(Manager *m, const char *name) {
        ManagerGuest *g = manager_guest_find(m, name);

        if (g && g->balloon_dirty)
                (void) manager_persist_save_balloon(m, g);
}

int manager_guest_balloon_new(Manager *m, ManagerGuest *g) {
        int r;

        if (g->balloon)
                return 0;
        r = balloon_controller_new(&g->balloon, m->event, g->name);
        if (r < 0)
                return r;
        balloon_controller_set_change_callback(g->balloon, balloon_on_change, m);
        return 0;
}

/* ---- loading ---------------------------------------------------------------------------------- */

/* Moves dir/file aside to file.corrupt (replacing an older one), so that nothing is lost and the next save
 * starts afresh. */
static void set_aside(Manager *m, const char *name, int dir_fd, const char *file) {
        _cleanup_free_ char *aside = NULL;

        if (asprintf(&aside, "%s.corrupt", file) < 0) {
                (void) log_oom();
                return;
        }
        if (renameat(dir_fd, file, dir_fd, aside) < 0)
                log_warning_errno(errno, "Failed to move %s/%s/%s/%s aside, ignoring: %m", m->config.state_dir,
                                  GUESTS_DIR, name, file);
        else
                log_notice("Moved %s/%s/%s/%s aside to %s.", m->config.state_dir, GUESTS_DIR, name, file, aside);
}

typedef int (*LoadFn)(void *object, const char *text, size_t size, const char **ret_reason);

static int load_balloon(void *object, const char *text, size_t size, const char **ret_reason) {
        return balloon_record_load(object, text, size, ret_reason);
}

static int load_migrations(void *object, const char *text, size_t size, const char **ret_reason) {
        return migration_history_load(object, text, size, ret_reason);
}

/* 1 when loaded, 0 when there is none or it was bad (logged, set aside), -ENOMEM. */
static int load_file(Manager *m, const char *name, int dir_fd, const char *file, size_t max_size, LoadFn load,
                     void *object) {
        _cleanup_free_ char *text = NULL;
        const char *reason = NULL;
        size_t size = 0;
        int r;

        r = read_full_file_at(dir_fd, file, max_size, &text, &size);
        if (r == -ENOENT)
                return 0;
        if (r == -ENOMEM)
                return r;
        if (r >= 0) {
                r = load(object, text, size, &reason);
                if (r == -ENOMEM)
                        return r;
        }
        if (r >= 0)
                return 1;
        log_error("Guest %s: cannot use %s/%s/%s/%s, loading the guest without it: %s.", name, m->config.state_dir,
                  GUESTS_DIR, name, file, reason ?: strerror(-r));
        set_aside(m, name, dir_fd, file);
        return 0;
}

static int load_guest(Manager *m, const char *name) {
        _cleanup_(migration_history_freep) MigrationHistory *h = NULL;
        _cleanup_close_ int fd = guest_dir_open(m, name, false);
        ManagerGuest *g;
        int r;

        if (fd == -ENOENT)
                return 0;
        if (fd < 0) {
                log_warning_errno(fd, "Failed to open %s/%s/%s, loading guest %s without its records: %m",
                                  m->config.state_dir, GUESTS_DIR, name, name);
                return 0;
        }
        r = manager_guest_get(m, name, &g);
        if (r < 0)
                return r;
        if (!g->balloon) {
                r = manager_guest_balloon_new(m, g);
                if (r < 0)
                        return r;
                r = load_file(m, name, fd, BALLOON_FILE, BALLOON_RECORD_SIZE_MAX, load_balloon, g->balloon);
                if (r < 0)
                        return r;
        }
        if (!g->migrations) {
                r = migration_history_new(name, &h);
                if (r < 0)
                        return r;
                r = load_file(m, name, fd, MIGRATIONS_FILE, MIGRATION_HISTORY_SIZE_MAX, load_migrations, h);
                if (r < 0)
                        return r;
                if (r > 0)
                        g->migrations = TAKE_PTR(h);
        }
        return 0;
}

/* ---- removing --------------------------------------------------------------------------------- */

void manager_persist_remove(Manager *m, const char *name) {
        _cleanup_close_ int fd = guest_dir_open(m, name, false);
        DIR *d;
        struct dirent *de;

        if (fd == -ENOENT)
                return;
        if (fd < 0) {
                log_warning_errno(fd, "Failed to open %s/%s/%s to remove it, ignoring: %m", m->config.state_dir,
                                  GUESTS_DIR, name);
                return;
        }
        d = fdopendir(fd);
        if (!d) {
                log_warning_errno(errno, "Failed to read %s/%s/%s, ignoring: %m", m->config.state_dir, GUESTS_DIR, name);
                return;
        }
        TAKE_FD(fd);
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..") &&
                    unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "Failed to remove %s/%s/%s/%s, ignoring: %m", m->config.state_dir,
                                          GUESTS_DIR, name, de->d_name);
        closedir(d);
        if (unlinkat(m->guests_dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Failed to remove %s/%s/%s, ignoring: %m", m->config.state_dir, GUESTS_DIR,
                                  name);
}

/* ---- start/done ------------------------------------------------------------------------------- */

int manager_persist_start(Manager *m) {
        _cleanup_free_ char *dir = path_join(m->config.state_dir, GUESTS_DIR);
        int r;

        if (!dir)
                return log_oom();
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create %s: %m", dir);
        m->guests_dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (m->guests_dir_fd < 0)
                return log_error_errno(errno, "Failed to open %s: %m", dir);

        r = sd_event_add_defer(m->event, &m->persist_source, persist_on_defer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up saving the guests' records: %m");
        (void) sd_event_source_set_enabled(m->persist_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->persist_source, "guest-records");

        for (size_t i = 0; i < m->guests.n_vms; i++) {
                r = load_guest(m, m->guests.vms[i]->name);
                if (r < 0)
                        return log_error_errno(r, "Failed to load the records of guest %s: %m",
                                               m->guests.vms[i]->name);
        }
        return 0;
}

void manager_persist_done(Manager *m) {
        if (m->persist_source) {
                (void) persist_on_defer(m->persist_source, m);
                m->persist_source = sd_event_source_disable_unref(m->persist_source);
        }
        m->guests_dir_fd = safe_close(m->guests_dir_fd);
}
