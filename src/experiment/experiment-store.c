/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The durable store of experiments (see experiment-store.h for the layout on disk and the guarantees). */
#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/utf8.h"
#include "experiment/experiment-files.h"
#include "experiment/experiment-store.h"

#define STATE_FILE "state.json"
#define ITERATIONS_FILE "iterations.jsonl"
#define RESERVE_FILE ".reserve"
#define RESERVE_SIZE (64 * 1024)
#define NEW_PREFIX ".new-"
#define ID_LEN 22       /* YYYYMMDD-HHMMSS-xxxxxx */
#define READ_CHUNK (64 * 1024)

static const char *const experiment_state_table[_EXPERIMENT_STATE_MAX] = {
        [EXPERIMENT_RUNNING] = "running",
        [EXPERIMENT_COMPLETED] = "completed",
        [EXPERIMENT_FAILED] = "failed",
        [EXPERIMENT_CANCELLED] = "cancelled",
        [EXPERIMENT_INTERRUPTED] = "interrupted",
};

DEFINE_STRING_TABLE(experiment_state, ExperimentState, _EXPERIMENT_STATE_MAX);

static const char *const experiment_document_table[_EXPERIMENT_DOCUMENT_MAX] = {
        [EXPERIMENT_DOCUMENT_DEFINITION] = "definition.json",
        [EXPERIMENT_DOCUMENT_PROVENANCE] = "provenance.json",
        [EXPERIMENT_DOCUMENT_SUMMARY] = "summary.json",
};

DEFINE_STRING_TABLE(experiment_document, ExperimentDocument, _EXPERIMENT_DOCUMENT_MAX);

/* The errors of a file system without room (for a retry after the reserve is given back). */
static bool error_is_no_space(int r) {
        return r == -ENOSPC || r == -EDQUOT;
}

/* The states an experiment can end in through experiment_store_finish(). */
static bool state_is_final(ExperimentState state) {
        return state == EXPERIMENT_COMPLETED || state == EXPERIMENT_FAILED || state == EXPERIMENT_CANCELLED;
}

typedef struct Entry {
        ExperimentInfo info;            /* first: experiment_store_get() hands out &entry->info */
        uint64_t good_size;             /* bytes of iterations.jsonl up to its last complete line */
        uint64_t seq;                   /* creation order within this store, to break ties of created_usec */
        int dir_fd;                     /* while running */
        int iter_fd;                    /* while running: iterations.jsonl, O_WRONLY|O_APPEND */
        bool broken;                    /* a failed append could not be truncated back: no more appends */
} Entry;

struct ExperimentStore {
        int dir_fd;
        ExperimentStoreLimits limits;
        Entry **entries;                /* sorted oldest first */
        size_t n_entries;
        uint64_t next_seq;
        uint64_t last_created_usec;
};

static Entry *entry_free(Entry *e) {
        if (!e)
                return NULL;
        free(e->info.id);
        free(e->info.guest);
        free(e->info.reason);
        free(e->info.error);
        safe_close(e->dir_fd);
        safe_close(e->iter_fd);
        return mfree(e);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Entry *, entry_free);

static Entry *entry_new(const char *id) {
        Entry *e = calloc(1, sizeof(Entry));

        if (!e)
                return NULL;
        e->dir_fd = e->iter_fd = -EBADF;
        e->info.state = _EXPERIMENT_STATE_INVALID;
        e->info.id = strdup(id);
        if (!e->info.id)
                return entry_free(e);
        return e;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static bool id_is_valid(const char *id) {
        if (strlen(id) != ID_LEN)
                return false;
        for (size_t i = 0; i < ID_LEN; i++) {
                char c = id[i];

                if (i == 8 || i == 15) {
                        if (c != '-')
                                return false;
                } else if (i < 15 ? !(c >= '0' && c <= '9') : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                        return false;
        }
        return true;
}

/* Formats *ret (NULL when out of memory, never undefined as asprintf() leaves it); returns 0 or -ENOMEM. */
_printf_(2, 3) static int set_error(char **ret, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(ret, format, ap);
        va_end(ap);
        if (r < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* ---- state.json ------------------------------------------------------------------------------------------ */

static int write_state(Entry *e, int dir_fd) {
        _cleanup_json_ json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "id", e->info.id)) < 0 || (r = json_add_string(o, "guest", e->info.guest)) < 0 ||
            (r = json_add_uint(o, "created", e->info.created_usec)) < 0 ||
            (r = json_add_uint(o, "iterationsPlanned", e->info.iterations_planned)) < 0 ||
            (r = json_add_string(o, "state", experiment_state_to_string(e->info.state))) < 0 ||
            (r = json_add_string(o, "reason", e->info.reason)) < 0)
                return r;
        if (e->info.ended_usec > 0 && (r = json_add_uint(o, "ended", e->info.ended_usec)) < 0)
                return r;
        return experiment_write_json_at(dir_fd, STATE_FILE, o);
}

/* Writes the final state.json; on a full disk gives the reserve back and tries once more. Once the state is
 * written the reserve has served. */
static int write_final_state(Entry *e, int dir_fd) {
        int r;

        r = write_state(e, dir_fd);
        if (error_is_no_space(r) && unlinkat(dir_fd, RESERVE_FILE, 0) >= 0)
                r = write_state(e, dir_fd);
        if (r >= 0)
                (void) unlinkat(dir_fd, RESERVE_FILE, 0);
        return r;
}

static int get_uint_field(json_object *o, const char *key, bool required, uint64_t *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v)) {
                if (required)
                        return -EBADMSG;
                *ret = 0;
                return 0;
        }
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
                return -EBADMSG;
        *ret = (uint64_t) json_object_get_int64(v);
        return 0;
}

static const char *get_string_field(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static int parse_state(Entry *e, json_object *o) {
        const char *id = get_string_field(o, "id"), *guest = get_string_field(o, "guest"),
                   *state = get_string_field(o, "state"), *reason = get_string_field(o, "reason");
        ExperimentState st;
        int r;

        if (!id || !streq(id, e->info.id) || isempty(guest) || !state)
                return -EBADMSG;
        st = experiment_state_from_string(state);
        if (st < 0)
                return -EBADMSG;
        if ((r = get_uint_field(o, "created", true, &e->info.created_usec)) < 0 ||
            (r = get_uint_field(o, "iterationsPlanned", true, &e->info.iterations_planned)) < 0 ||
            (r = get_uint_field(o, "ended", false, &e->info.ended_usec)) < 0)
                return r;
        if ((r = free_and_strdup(&e->info.guest, guest)) < 0 || (r = free_and_strdup(&e->info.reason, reason)) < 0)
                return r;
        e->info.state = st;
        return 0;
}

/* ---- iterations.jsonl at load ---------------------------------------------------------------------------- */

/* Counts the complete lines of iterations.jsonl and cuts off a torn last line. A line that is empty, too long or
 * holds a NUL byte makes the experiment damaged (*ret_error); the file is then left as it is. */
static int scan_iterations(Entry *e, int dir_fd, char **ret_error) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = malloc(READ_CHUNK);
        uint64_t pos = 0, line_start = 0, lines = 0;
        struct stat st;

        if (!buf)
                return -ENOMEM;
        fd = openat(dir_fd, ITERATIONS_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return set_error(ret_error, "cannot open %s: %s", ITERATIONS_FILE, strerror(errno));
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return set_error(ret_error, "%s is not a regular file", ITERATIONS_FILE);

        for (;;) {
                ssize_t n = read(fd, buf, READ_CHUNK);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return set_error(ret_error, "cannot read %s: %s", ITERATIONS_FILE, strerror(errno));
                }
                if (n == 0)
                        break;
                if (memchr(buf, 0, (size_t) n))
                        return set_error(ret_error, "%s: a NUL byte in line %" PRIu64, ITERATIONS_FILE, lines + 1);
                for (const char *p = buf, *end = buf + n; p < end;) {
                        const char *nl = memchr(p, '\n', (size_t) (end - p));
                        uint64_t at = pos + (uint64_t) ((nl ?: end) - buf);

                        if (nl && at == line_start)
                                return set_error(ret_error, "%s: line %" PRIu64 " is empty", ITERATIONS_FILE,
                                                lines + 1);
                        if (at + (nl ? 1 : 0) - line_start > EXPERIMENT_RECORD_MAX)
                                return set_error(ret_error, "%s: line %" PRIu64 " is longer than %u bytes",
                                                ITERATIONS_FILE, lines + 1, EXPERIMENT_RECORD_MAX);
                        if (!nl)
                                break;
                        lines++;
                        line_start = at + 1;
                        p = nl + 1;
                }
                pos += (uint64_t) n;
        }

        if (pos > line_start) {
                _cleanup_close_ int wfd = -EBADF;

                log_warning("Experiment %s: dropping the torn last line of %s (%" PRIu64 " bytes after line %" PRIu64
                            "; the daemon was killed while writing it).", e->info.id, ITERATIONS_FILE,
                            pos - line_start, lines);
                wfd = openat(dir_fd, ITERATIONS_FILE, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
                if (wfd < 0 || ftruncate(wfd, (off_t) line_start) < 0 || fsync(wfd) < 0)
                        log_warning_errno(errno, "Experiment %s: failed to truncate %s, ignoring: %m", e->info.id,
                                          ITERATIONS_FILE);
        }
        e->info.iterations_done = lines;
        e->good_size = line_start;
        return 0;
}

/* ---- the list -------------------------------------------------------------------------------------------- */

static int entry_compare(const void *a, const void *b) {
        const Entry *x = *(Entry *const *) a, *y = *(Entry *const *) b;

        if (x->info.created_usec != y->info.created_usec)
                return x->info.created_usec < y->info.created_usec ? -1 : 1;
        if (x->seq != y->seq)
                return x->seq < y->seq ? -1 : 1;
        return strcmp(x->info.id, y->info.id);
}

static int store_add(ExperimentStore *s, Entry *e) {
        Entry **t = reallocarray(s->entries, s->n_entries + 1, sizeof(Entry *));

        if (!t)
                return -ENOMEM;
        s->entries = t;
        e->seq = s->next_seq++;
        s->entries[s->n_entries++] = e;
        if (e->info.created_usec > s->last_created_usec)
                s->last_created_usec = e->info.created_usec;
        return 0;
}

static Entry *store_find(const ExperimentStore *s, const char *id, size_t *ret_index) {
        if (!id)
                return NULL;
        for (size_t i = 0; i < s->n_entries; i++)
                if (streq(s->entries[i]->info.id, id)) {
                        if (ret_index)
                                *ret_index = i;
                        return s->entries[i];
                }
        return NULL;
}

static void store_remove_at(ExperimentStore *s, size_t i) {
        entry_free(s->entries[i]);
        memmove(s->entries + i, s->entries + i + 1, (s->n_entries - i - 1) * sizeof(Entry *));
        s->n_entries--;
}

/* ---- load ------------------------------------------------------------------------------------------------ */

static int load_one(ExperimentStore *s, const char *id) {
        _cleanup_(entry_freep) Entry *e = entry_new(id);
        _cleanup_json_ json_object *state = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *error = NULL;
        int r;

        if (!e)
                return -ENOMEM;
        fd = openat(s->dir_fd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (set_error(&e->info.error, "cannot open the directory: %s",
                              errno == ELOOP ? "it is a symbolic link" : strerror(errno)) < 0)
                        return -ENOMEM;
                log_warning("Experiment %s: %s; keeping it as it is.", id, e->info.error);
                return store_add(s, TAKE_PTR(e));
        }

        r = experiment_read_json_at(fd, STATE_FILE, EXPERIMENT_STATE_FILE_MAX, &state);
        if (r >= 0)
                r = parse_state(e, state);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                struct stat st;

                e->info.state = _EXPERIMENT_STATE_INVALID;
                if (set_error(&e->info.error, "cannot read %s: %s", STATE_FILE, strerror(-r)) < 0)
                        return -ENOMEM;
                /* Still ordered by age: the directory's own time stands in for the creation time. */
                if (fstat(fd, &st) >= 0)
                        e->info.created_usec = (uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC +
                                               (uint64_t) st.st_mtim.tv_nsec / NSEC_PER_USEC;
        }

        r = scan_iterations(e, fd, &error);
        if (r < 0)
                return r;
        if (error && !e->info.error)
                e->info.error = TAKE_PTR(error);

        if (e->info.state == EXPERIMENT_RUNNING) {
                e->info.state = EXPERIMENT_INTERRUPTED;
                e->info.ended_usec = now_usec();
                r = free_and_strdup(&e->info.reason, EXPERIMENT_REASON_INTERRUPTED);
                if (r < 0)
                        return r;
                r = write_final_state(e, fd);
                if (r < 0)
                        log_warning_errno(r, "Experiment %s was running when the daemon stopped; failed to record it "
                                          "as interrupted, ignoring: %m", id);
                else
                        log_notice("Experiment %s was running when the daemon stopped: now interrupted, with %" PRIu64
                                   " of %" PRIu64 " iterations.", id, e->info.iterations_done,
                                   e->info.iterations_planned);
        } else if (e->info.state >= 0)
                (void) unlinkat(fd, RESERVE_FILE, 0);   /* left by a crash between the end and its removal */

        if (e->info.error)
                log_warning("Experiment %s is damaged (%s); keeping its directory as it is.", id, e->info.error);
        e->info.bytes = experiment_dir_bytes(fd);
        return store_add(s, TAKE_PTR(e));
}

static int store_load(ExperimentStore *s) {
        _cleanup_close_ int fd = -EBADF;
        size_t scanned = 0;
        DIR *d;
        int r = 0;

        fd = openat(s->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(TAKE_FD(fd));
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                const char *name = de->d_name;

                if (streq(name, ".") || streq(name, ".."))
                        continue;
                if (++scanned > s->limits.max_scan) {
                        log_warning("More than %zu entries in the experiment directory: not listing the rest.",
                                    s->limits.max_scan);
                        break;
                }
                if (startswith(name, NEW_PREFIX) && id_is_valid(name + strlen(NEW_PREFIX))) {
                        /* Made by a create that never returned: nothing of it was acknowledged. */
                        log_notice("Removing %s, an experiment whose creation did not finish.", name);
                        r = experiment_remove_dir(s->dir_fd, name);
                        if (r < 0)
                                log_warning_errno(r, "Failed to remove %s, ignoring: %m", name);
                        continue;
                }
                if (!id_is_valid(name)) {
                        log_debug("Ignoring %s in the experiment directory: not an experiment ID.", name);
                        continue;
                }
                r = load_one(s, name);
                if (r < 0)
                        break;
        }
        (void) closedir(d);
        if (r < 0)
                return r;
        if (s->n_entries > 1)
                qsort(s->entries, s->n_entries, sizeof(Entry *), entry_compare);
        return 0;
}

int experiment_store_open(int dir_fd, const ExperimentStoreLimits *limits, ExperimentStore **ret) {
        _cleanup_(experiment_store_freep) ExperimentStore *s = NULL;
        int r;

        if (dir_fd < 0 || !ret)
                return -EINVAL;
        s = calloc(1, sizeof(ExperimentStore));
        if (!s)
                return -ENOMEM;
        s->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        if (s->dir_fd < 0)
                return -errno;
        if (limits)
                s->limits = *limits;
        if (s->limits.max_experiments == 0)
                s->limits.max_experiments = EXPERIMENT_STORE_MAX_EXPERIMENTS_DEFAULT;
        if (s->limits.max_bytes == 0)
                s->limits.max_bytes = EXPERIMENT_STORE_MAX_BYTES_DEFAULT;
        if (s->limits.max_scan == 0)
                s->limits.max_scan = EXPERIMENT_STORE_MAX_SCAN_DEFAULT;

        r = store_load(s);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

ExperimentStore *experiment_store_free(ExperimentStore *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_entries; i++)
                entry_free(s->entries[i]);
        free(s->entries);
        safe_close(s->dir_fd);
        return mfree(s);
}

size_t experiment_store_size(const ExperimentStore *s) {
        return s ? s->n_entries : 0;
}

const ExperimentInfo *experiment_store_get(const ExperimentStore *s, size_t i) {
        return s && i < s->n_entries ? &s->entries[i]->info : NULL;
}

const ExperimentInfo *experiment_store_find(const ExperimentStore *s, const char *id) {
        Entry *e = s ? store_find(s, id, NULL) : NULL;

        return e ? &e->info : NULL;
}

uint64_t experiment_store_bytes(const ExperimentStore *s) {
        uint64_t sum = 0;

        for (size_t i = 0; s && i < s->n_entries; i++)
                sum += s->entries[i]->info.bytes;
        return sum;
}

/* ---- create, append, finish ------------------------------------------------------------------------------ */

static int make_id(uint64_t usec, char ret[static ID_LEN + 1]) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        uint8_t rnd[3];
        struct tm tm;

        if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
                return -errno ?: -EIO;
        if (!gmtime_r(&t, &tm))
                return -EINVAL;
        /* A year of four digits, or no ID: the name must keep its length to sort by time. */
        if (strftime(ret, ID_LEN + 1, "%Y%m%d-%H%M%S-", &tm) != 16)
                return -ERANGE;
        for (size_t i = 0; i < sizeof(rnd); i++) {
                ret[16 + 2 * i] = "0123456789abcdef"[rnd[i] >> 4];
                ret[17 + 2 * i] = "0123456789abcdef"[rnd[i] & 15];
        }
        ret[ID_LEN] = 0;
        return 0;
}

static int reserve_space(int dir_fd) {
        _cleanup_close_ int fd = -EBADF;

        fd = openat(dir_fd, RESERVE_FILE, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        if (fallocate(fd, 0, 0, RESERVE_SIZE) < 0) {
                int r = -errno;

                /* A file system without fallocate() gets no reserve; a full one refuses the experiment. */
                (void) unlinkat(dir_fd, RESERVE_FILE, 0);
                return r == -EOPNOTSUPP ? 0 : r;
        }
        return 0;
}

/* Fills the hidden directory of a new experiment. */
static int create_files(Entry *e, int fd, json_object *definition, json_object *provenance) {
        int r;

        r = reserve_space(fd);
        if (r < 0)
                return r;
        r = experiment_write_json_at(fd, experiment_document_to_string(EXPERIMENT_DOCUMENT_DEFINITION), definition);
        if (r < 0)
                return r;
        r = experiment_write_json_at(fd, experiment_document_to_string(EXPERIMENT_DOCUMENT_PROVENANCE), provenance);
        if (r < 0)
                return r;
        e->iter_fd = openat(fd, ITERATIONS_FILE,
                            O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (e->iter_fd < 0)
                return -errno;
        return write_state(e, fd);      /* fsyncs the directory, the new iterations file's entry with it */
}

int experiment_store_create(ExperimentStore *s, const char *guest, uint64_t iterations_planned,
                            json_object *definition, json_object *provenance, const char **ret_id) {
        _cleanup_(entry_freep) Entry *e = NULL;
        _cleanup_close_ int fd = -EBADF;
        char id[ID_LEN + 1], tmp[sizeof(NEW_PREFIX) + ID_LEN];
        uint64_t created;
        int r;

        if (!s || isempty(guest) || !utf8_is_valid_text(guest, strlen(guest)) || iterations_planned == 0 ||
            !json_object_is_type(definition, json_type_object) || !json_object_is_type(provenance, json_type_object))
                return -EINVAL;

        /* Time-ordered even if the clock steps back, and unique (a new random part when the name is taken). */
        created = MAX(now_usec(), s->last_created_usec + 1);
        for (unsigned attempt = 0;; attempt++) {
                r = make_id(created, id);
                if (r < 0)
                        return r;
                (void) snprintf(tmp, sizeof(tmp), NEW_PREFIX "%s", id);
                if (store_find(s, id, NULL) || faccessat(s->dir_fd, id, F_OK, AT_SYMLINK_NOFOLLOW) >= 0)
                        r = -EEXIST;
                else if (mkdirat(s->dir_fd, tmp, 0700) < 0)
                        r = -errno;
                if (r != -EEXIST)
                        break;
                if (attempt >= 16)
                        return r;
        }
        if (r < 0)
                return r;

        e = entry_new(id);
        if (!e) {
                (void) unlinkat(s->dir_fd, tmp, AT_REMOVEDIR);
                return -ENOMEM;
        }
        e->info.state = EXPERIMENT_RUNNING;
        e->info.created_usec = created;
        e->info.iterations_planned = iterations_planned;
        e->info.guest = strdup(guest);
        if (!e->info.guest)
                r = -ENOMEM;

        fd = openat(s->dir_fd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (r >= 0 && fd < 0)
                r = -errno;
        if (r >= 0)
                r = create_files(e, fd, definition, provenance);
        if (r >= 0 && renameat(s->dir_fd, tmp, s->dir_fd, id) < 0)
                r = -errno;
        if (r >= 0 && fsync(s->dir_fd) < 0)
                r = -errno;
        if (r < 0) {
                int k;

                /* After a failed fsync the rename may or may not have reached the disk: remove either name. */
                e->iter_fd = safe_close(e->iter_fd);
                k = experiment_remove_dir(s->dir_fd, tmp);
                if (k >= 0)
                        k = experiment_remove_dir(s->dir_fd, id);
                if (k < 0)
                        log_warning_errno(k, "Failed to remove the unfinished experiment %s, ignoring: %m", id);
                return r;
        }

        e->info.bytes = experiment_dir_bytes(fd);
        e->dir_fd = TAKE_FD(fd);
        r = store_add(s, e);
        if (r < 0)
                return r;       /* the directory stays, running: the next load marks it interrupted */
        if (ret_id)
                *ret_id = e->info.id;
        TAKE_PTR(e);
        return 0;
}

int experiment_store_append(ExperimentStore *s, const char *id, json_object *record, uint64_t *ret_index) {
        _cleanup_json_ json_object *check = NULL;
        _cleanup_free_ char *line = NULL;
        const char *text;
        size_t len;
        Entry *e;
        int r;

        if (!s || !json_object_is_type(record, json_type_object))
                return -EINVAL;
        e = store_find(s, id, NULL);
        if (!e)
                return -ESRCH;
        if (e->info.state != EXPERIMENT_RUNNING)
                return -EALREADY;
        if (e->broken)
                return -EIO;

        text = json_to_plain(record, &len);
        if (!text)
                return -ENOMEM;
        if (len + 1 > EXPERIMENT_RECORD_MAX)
                return -EMSGSIZE;
        /* Nothing is acknowledged that would not read back as JSON: parsed again (depth, UTF-8), and no NaN or
         * infinity, which json-c writes as bare words. (Plain output never holds a newline: strings have it
         * escaped.) */
        r = experiment_parse_object(text, len, &check);
        if (r < 0)
                return r;
        if (!experiment_json_is_finite(check))
                return -EDOM;
        line = malloc(len + 1);
        if (!line)
                return -ENOMEM;
        memcpy(line, text, len);
        line[len] = '\n';

        r = experiment_write_all(e->iter_fd, line, len + 1);
        if (r == 0 && fsync(e->iter_fd) < 0)
                r = -errno;
        if (r < 0) {
                /* Back to the last complete line, so that no part of this record stays visible. */
                if (ftruncate(e->iter_fd, (off_t) e->good_size) < 0 || fsync(e->iter_fd) < 0) {
                        e->broken = true;
                        log_warning_errno(errno, "Experiment %s: failed to cut a partial record off %s: %m",
                                          e->info.id, ITERATIONS_FILE);
                }
                return r;
        }
        e->good_size += len + 1;
        e->info.bytes += len + 1;
        if (ret_index)
                *ret_index = e->info.iterations_done;
        e->info.iterations_done++;
        return 0;
}

int experiment_store_finish(ExperimentStore *s, const char *id, ExperimentState state, const char *reason,
                            json_object *summary) {
        _cleanup_free_ char *old_reason = NULL;
        Entry *e;
        int r;

        if (!s || !state_is_final(state) || (state == EXPERIMENT_FAILED && isempty(reason)) ||
            (reason && !utf8_is_valid_text(reason, strlen(reason))) ||
            (summary && !json_object_is_type(summary, json_type_object)))
                return -EINVAL;
        e = store_find(s, id, NULL);
        if (!e)
                return -ESRCH;
        if (e->info.state != EXPERIMENT_RUNNING)
                return -EALREADY;

        if (summary) {
                r = experiment_write_json_at(e->dir_fd, experiment_document_to_string(EXPERIMENT_DOCUMENT_SUMMARY), summary);
                if (error_is_no_space(r) && unlinkat(e->dir_fd, RESERVE_FILE, 0) >= 0)
                        r = experiment_write_json_at(e->dir_fd, experiment_document_to_string(EXPERIMENT_DOCUMENT_SUMMARY),
                                          summary);
                if (r < 0)
                        return r;
        }

        old_reason = TAKE_PTR(e->info.reason);
        r = free_and_strdup(&e->info.reason, reason);
        if (r < 0)
                return r;
        e->info.state = state;
        e->info.ended_usec = now_usec();
        r = write_final_state(e, e->dir_fd);
        if (r < 0) {
                /* Still running on disk: so it stays here too, and the caller may try again. */
                e->info.state = EXPERIMENT_RUNNING;
                e->info.ended_usec = 0;
                free(e->info.reason);
                e->info.reason = TAKE_PTR(old_reason);
                return r;
        }
        e->iter_fd = safe_close(e->iter_fd);
        e->info.bytes = experiment_dir_bytes(e->dir_fd);
        e->dir_fd = safe_close(e->dir_fd);

        r = experiment_store_apply_retention(s, id);
        if (r < 0)
                log_warning_errno(r, "Failed to apply the retention bound of the experiments, ignoring: %m");
        return 0;
}

int experiment_store_update_provenance(ExperimentStore *s, const char *id, json_object *provenance) {
        Entry *e;

        if (!s || !provenance || !json_object_is_type(provenance, json_type_object))
                return -EINVAL;
        e = store_find(s, id, NULL);
        if (!e)
                return -ESRCH;
        if (e->info.state != EXPERIMENT_RUNNING)
                return -EALREADY;
        return experiment_write_json_at(e->dir_fd, experiment_document_to_string(EXPERIMENT_DOCUMENT_PROVENANCE),
                                        provenance);
}

/* ---- readers --------------------------------------------------------------------------------------------- */

static int open_experiment_dir(ExperimentStore *s, Entry *e) {
        int fd = openat(s->dir_fd, e->info.id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        return fd < 0 ? -errno : fd;
}

int experiment_store_read_iterations(ExperimentStore *s, const char *id, ExperimentIterationHandler handler,
                                     void *userdata) {
        ExperimentReadPosition p = {};

        return experiment_store_read_iterations_from(s, id, &p, handler, userdata);
}

int experiment_store_read_iterations_from(ExperimentStore *s, const char *id, ExperimentReadPosition *pos,
                                          ExperimentIterationHandler handler, void *userdata) {
        _cleanup_close_ int dfd = -EBADF, fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t used = 0;
        uint64_t left, index;
        Entry *e;

        if (!s || !handler || !pos)
                return -EINVAL;
        index = pos->index;
        e = store_find(s, id, NULL);
        if (!e)
                return -ESRCH;
        dfd = open_experiment_dir(s, e);
        if (dfd < 0)
                return dfd;
        fd = openat(dfd, ITERATIONS_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        buf = malloc(EXPERIMENT_RECORD_MAX + READ_CHUNK);
        if (!buf)
                return -ENOMEM;

        /* Only up to the last complete line the store knows of: never a line being written. */
        if (pos->offset > e->good_size)
                return -EINVAL;
        if (pos->offset > 0 && lseek(fd, (off_t) pos->offset, SEEK_SET) < 0)
                return -errno;
        left = e->good_size - pos->offset;
        while (left > 0 || used > 0) {
                char *nl;

                if (!(nl = memchr(buf, '\n', used))) {
                        ssize_t n;

                        if (left == 0 || used >= EXPERIMENT_RECORD_MAX)
                                return log_debug_errno(EBADMSG, "Experiment %s: line %" PRIu64 " of %s is torn or "
                                                       "too long.", id, index + 1, ITERATIONS_FILE);
                        n = read(fd, buf + used, (size_t) MIN((uint64_t) READ_CHUNK, left));
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                return -errno;
                        }
                        if (n == 0)
                                return log_debug_errno(EBADMSG, "Experiment %s: %s is shorter than expected.", id,
                                                       ITERATIONS_FILE);
                        used += (size_t) n;
                        left -= (uint64_t) n;
                        continue;
                }

                _cleanup_json_ json_object *o = NULL;
                size_t len = (size_t) (nl - buf);
                int r;

                r = experiment_parse_object(buf, len, &o);
                if (r < 0)
                        return log_debug_errno(r, "Experiment %s: line %" PRIu64 " of %s is not a JSON object.", id,
                                               index + 1, ITERATIONS_FILE);
                r = handler(index++, o, userdata);
                if (r < 0)
                        return r;
                pos->offset += len + 1;         /* this line is consumed */
                pos->index = index;
                if (r > 0)
                        return 0;
                used -= len + 1;
                memmove(buf, nl + 1, used);
        }
        return 0;
}

int experiment_store_read_document(ExperimentStore *s, const char *id, ExperimentDocument which, json_object **ret) {
        _cleanup_close_ int dfd = -EBADF;
        const char *name = experiment_document_to_string(which);
        Entry *e;

        if (!s || !name || !ret)
                return -EINVAL;
        e = store_find(s, id, NULL);
        if (!e)
                return -ESRCH;
        dfd = open_experiment_dir(s, e);
        if (dfd < 0)
                return dfd;
        return experiment_read_json_at(dfd, name, EXPERIMENT_DOCUMENT_MAX, ret);
}

/* ---- delete and retention -------------------------------------------------------------------------------- */

int experiment_store_delete(ExperimentStore *s, const char *id) {
        size_t i;
        Entry *e;
        int r;

        if (!s)
                return -EINVAL;
        e = store_find(s, id, &i);
        if (!e)
                return -ESRCH;
        if (e->info.state == EXPERIMENT_RUNNING)
                return -EBUSY;
        r = experiment_remove_dir(s->dir_fd, e->info.id);
        if (r < 0)
                return r;
        store_remove_at(s, i);
        return 0;
}

int experiment_store_apply_retention(ExperimentStore *s, const char *keep_id) {
        uint64_t bytes;
        int removed = 0;

        if (!s)
                return -EINVAL;
        bytes = experiment_store_bytes(s);
        /* Oldest first: the list is sorted by age. */
        for (size_t i = 0; i < s->n_entries && (s->n_entries > s->limits.max_experiments ||
                                                bytes > s->limits.max_bytes);) {
                Entry *e = s->entries[i];
                uint64_t b = e->info.bytes;
                int r;

                if (e->info.state == EXPERIMENT_RUNNING || e->info.state < 0 || e->info.error ||
                    streq_ptr(e->info.id, keep_id)) {
                        i++;
                        continue;
                }
                log_info("Removing experiment %s (guest %s, %s, %" PRIu64 " bytes): the store holds %zu experiments "
                         "and %" PRIu64 " bytes, over its bound of %zu and %" PRIu64 ".", e->info.id, e->info.guest,
                         experiment_state_to_string(e->info.state), b, s->n_entries, bytes,
                         s->limits.max_experiments, s->limits.max_bytes);
                r = experiment_remove_dir(s->dir_fd, e->info.id);
                if (r < 0) {
                        log_warning_errno(r, "Failed to remove experiment %s, ignoring: %m", e->info.id);
                        i++;
                        continue;
                }
                store_remove_at(s, i);
                bytes -= b;
                removed++;
        }
        return removed;
}
