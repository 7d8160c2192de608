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
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "balloon/balloon-persist.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "daemon/manager-guest.h"
#include "basic/worker.h"
#include "daemon/manager-persist.h"

#define GUESTS_DIR "guests"
#define BALLOON_FILE "balloon.json"
#define MIGRATIONS_FILE "migrations.json"
/* A balloon record changes with every schedule step and policy round; nobody waits for those, so its
 * background save runs at most this often per guest (3.4 ms of JSON on the loop for a full record). */
#define PERSIST_INTERVAL_USEC (1U * USEC_PER_SEC)

typedef struct SaveJob SaveJob;

struct ManagerPersist {
        Manager *manager;
        int dir_fd;                     /* STATE_DIR/guests */
        sd_event_source *timer;         /* starts the next save */
        Worker *saver;                  /* the save in progress (one at a time) */
        SaveJob *job;                   /* … and what it writes */
        size_t next;                    /* where the search for a record to save goes on (round robin) */
};

/* ---- directories ------------------------------------------------------------------------------ */

/* STATE_DIR/guests/NAME, made when create; a directory of ours, never a symbolic link. */
static int guest_dir_open(Manager *m, const char *name, bool create) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        if (!m->persist || m->persist->dir_fd < 0)
                return -EBADF;
        if (create && mkdirat(m->persist->dir_fd, name, 0700) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(m->persist->dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* One file to write: the text is made on the event loop, the write (with its fsyncs) runs in a worker. */
struct SaveJob {
        char *name;                     /* the guest */
        const char *file;
        int dir_fd;
        char *text;
        size_t size;
        uint64_t usec;                  /* what the write took */
};

static SaveJob *save_job_free(SaveJob *j) {
        if (!j)
                return NULL;
        safe_close(j->dir_fd);
        free(j->text);
        free(j->name);
        return mfree(j);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(SaveJob *, save_job_free);

/* A job with the text of g's record of file; NULL with *ret_error when it cannot be made. */
static SaveJob *save_job_new(Manager *m, ManagerGuest *g, const char *file, int *ret_error) {
        _cleanup_(save_job_freep) SaveJob *j = calloc(1, sizeof(SaveJob));
        int r;

        if (!j || !(j->name = strdup(g->name))) {
                *ret_error = -ENOMEM;
                return NULL;
        }
        j->file = file;
        j->dir_fd = -EBADF;
        r = streq(file, BALLOON_FILE) ? balloon_record_save(g->balloon, &j->text, &j->size)
                                      : migration_history_save(g->migrations, &j->text, &j->size);
        if (r >= 0) {
                j->dir_fd = guest_dir_open(m, g->name, true);
                r = j->dir_fd < 0 ? j->dir_fd : 0;
        }
        if (r < 0) {
                *ret_error = r;
                return NULL;
        }
        return TAKE_PTR(j);
}

static int save_job_run(SaveJob *j) {
        uint64_t t0 = now_usec();
        int r;

        r = write_file_atomic_at(j->dir_fd, j->file, j->text, j->size, 0600);
        j->usec = now_usec() - t0;
        return r;
}

static void save_job_finish(Manager *m, SaveJob *j, int r) {
        ManagerGuest *g = manager_guest_find(m, j->name);

        if (r >= 0)
                log_debug("Guest %s: saved %s (%zu bytes) in %" PRIu64 " us.", j->name, j->file, j->size, j->usec);
        if (g)          /* else it was forgotten meanwhile */
                save_result(m, g, j->file, r);
}

/* Writes name's file now, on the event loop (the callers need it on disk before they answer). */
static int save_now(Manager *m, ManagerGuest *g, const char *file) {
        _cleanup_(save_job_freep) SaveJob *j = NULL;
        int r = 0;

        j = save_job_new(m, g, file, &r);
        if (j)
                r = save_job_run(j);
        if (j)
                save_job_finish(m, j, r);
        else
                save_result(m, g, file, r);
        return r;
}

/* Has the timer pick the next record to save now, unless a save is in progress (its end does). */
static void persist_kick(Manager *m) {
        ManagerPersist *p = m->persist;
        int enabled = SD_EVENT_OFF;
        uint64_t when = 0;

        if (!p || !p->timer || p->saver)
                return;
        (void) sd_event_source_get_enabled(p->timer, &enabled);
        (void) sd_event_source_get_time(p->timer, &when);
        if (enabled != SD_EVENT_OFF && when <= now_usec())
                return;
        (void) sd_event_source_set_time(p->timer, now_usec());
        (void) sd_event_source_set_enabled(p->timer, SD_EVENT_ONESHOT);
}

/* Waits for the save in progress (the write of one small file) to end. Its result goes with the worker: the
 * record is marked to be saved again, and the caller's save that follows covers it either way. */
static void saver_join(Manager *m) {
        ManagerPersist *p = m->persist;
        ManagerGuest *g;

        if (!p || !p->saver)
                return;
        p->saver = worker_free(p->saver);       /* joins the thread */
        g = manager_guest_find(m, p->job->name);
        if (g && streq(p->job->file, BALLOON_FILE))
                g->balloon_dirty = true;
        p->job = save_job_free(p->job);
        persist_kick(m);
}

static int saver_fn(Worker *w, void *arg) {
        return save_job_run(arg);
}

static void saver_on_done(Worker *w, int code, bool done, int result, void *userdata) {
        Manager *m = userdata;
        ManagerPersist *p = m->persist;

        if (!done)
                return;
        save_job_finish(m, p->job, result);
        p->job = save_job_free(p->job);
        p->saver = worker_free(p->saver);
        persist_kick(m);        /* the next record that changed meanwhile */
}

static int persist_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        ManagerPersist *p = m->persist;
        uint64_t now = now_usec(), next_due = UINT64_MAX;
        ManagerGuest *g = NULL;
        int r = 0;

        if (p->saver || m->n_records == 0)
                return 0;       /* its end starts the next */
        /* The next record that changed and was not saved within the last PERSIST_INTERVAL_USEC, round robin. */
        for (size_t k = 0; k < m->n_records && !g; k++) {
                ManagerGuest *c = m->records[(p->next + k) % m->n_records];
                uint64_t due = c->balloon_saved_usec + PERSIST_INTERVAL_USEC;

                if (!c->balloon_dirty)
                        continue;
                if (c->balloon_saved_usec > 0 && due > now) {
                        next_due = MIN(next_due, due);
                        continue;
                }
                g = c;
                p->next = (p->next + k + 1) % m->n_records;
        }
        if (!g) {
                if (next_due != UINT64_MAX) {
                        (void) sd_event_source_set_time(s, next_due);
                        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                }
                return 0;
        }
        g->balloon_dirty = false;
        g->balloon_saved_usec = now;
        if (!g->balloon) {
                persist_kick(m);
                return 0;
        }

        p->job = save_job_new(m, g, BALLOON_FILE, &r);
        if (!p->job) {
                save_result(m, g, BALLOON_FILE, r);
                persist_kick(m);
                return 0;
        }
        r = worker_start(m->event, "record-save", saver_fn, p->job, saver_on_done, m, &p->saver);
        if (r < 0) {
                /* no thread: write it here */
                r = save_job_run(p->job);
                save_job_finish(m, p->job, r);
                p->job = save_job_free(p->job);
                persist_kick(m);
        }
        return 0;
}

int manager_persist_save_balloon(Manager *m, ManagerGuest *g) {
        g->balloon_dirty = false;
        g->balloon_saved_usec = now_usec();
        if (!g->balloon)
                return 0;
        return save_now(m, g, BALLOON_FILE);
}

int manager_persist_save_migrations(Manager *m, const char *name) {
        ManagerGuest *g = manager_guest_find(m, name);

        if (!g || !g->migrations)
                return 0;
        return save_now(m, g, MIGRATIONS_FILE);
}

static void balloon_on_change(BalloonController *c, void *userdata) {
        Manager *m = userdata;
        ManagerGuest *g = manager_guest_find(m, balloon_controller_get_name(c));

        if (!g)
                return;
        g->balloon_dirty = true;
        persist_kick(m);
}

void manager_persist_flush(Manager *m, const char *name) {
        ManagerGuest *g = manager_guest_find(m, name);

        if (!g)
                return;
        if (m->persist && m->persist->saver && m->persist->job && streq(m->persist->job->name, name))
                saver_join(m);
        if (g->balloon_dirty)
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

/* Temporary files a daemon killed in the middle of a save left behind (".FILE.tmp.PID"). */
static void remove_temporary_files(Manager *m, const char *name, int dir_fd) {
        _cleanup_close_ int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        struct dirent *de;
        DIR *d;

        d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d)
                return;
        TAKE_FD(fd);
        while ((de = readdir(d)))
                if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp.") && unlinkat(dirfd(d), de->d_name, 0) >= 0)
                        log_debug("Removed %s/%s/%s/%s, left by an interrupted save.", m->config.state_dir,
                                  GUESTS_DIR, name, de->d_name);
        closedir(d);
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
        remove_temporary_files(m, name, fd);
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
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        struct dirent *de;

        /* a save in progress must not bring a file back */
        if (m->persist && m->persist->job && streq(m->persist->job->name, name))
                saver_join(m);
        fd = guest_dir_open(m, name, false);
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
        if (unlinkat(m->persist->dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Failed to remove %s/%s/%s, ignoring: %m", m->config.state_dir, GUESTS_DIR,
                                  name);
}

/* ---- start/done ------------------------------------------------------------------------------- */

int manager_persist_start(Manager *m) {
        _cleanup_free_ char *dir = path_join(m->config.state_dir, GUESTS_DIR);
        ManagerPersist *p;
        int r;

        if (!dir)
                return log_oom();
        p = calloc(1, sizeof(ManagerPersist));
        if (!p)
                return log_oom();
        p->manager = m;
        p->dir_fd = -EBADF;
        m->persist = p;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create %s: %m", dir);
        p->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (p->dir_fd < 0)
                return log_error_errno(errno, "Failed to open %s: %m", dir);

        r = sd_event_add_time(m->event, &p->timer, CLOCK_MONOTONIC, 0, 0, persist_on_timer, m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up saving the guests' records: %m");
        (void) sd_event_source_set_enabled(p->timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(p->timer, "guest-records");

        for (size_t i = 0; i < m->guests.n_vms; i++) {
                r = load_guest(m, m->guests.vms[i]->name);
                if (r < 0)
                        return log_error_errno(r, "Failed to load the records of guest %s: %m",
                                               m->guests.vms[i]->name);
        }
        return 0;
}

void manager_persist_done(Manager *m) {
        ManagerPersist *p = m->persist;

        if (!p)
                return;
        saver_join(m);
        for (size_t i = 0; p->dir_fd >= 0 && i < m->n_records; i++)
                if (m->records[i]->balloon_dirty)
                        (void) manager_persist_save_balloon(m, m->records[i]);
        p->timer = sd_event_source_disable_unref(p->timer);
        safe_close(p->dir_fd);
        m->persist = mfree(p);
}
