/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The durable store of experiments, under a directory fd (STATE_DIR/experiments/, made by the caller):
 *
 *   ID/                    one directory per experiment, mode 0700; ID is "YYYYMMDD-HHMMSS-xxxxxx" (UTC, then 6 random
 *                          hex digits): time-ordered, unique
 *     definition.json      the definition, as the caller hands it over (written before the first iteration)
 *     provenance.json      the host, QEMU and guest description (written before the first iteration)
 *     iterations.jsonl     one JSON object per line, one line per iteration, appended with one write() and
 *                          fsync()ed before experiment_store_append() returns: an acknowledged iteration survives
 *                          kill -9 (and a crash of the machine); at most the iteration in flight is lost
 *     state.json           {"id","guest","created","iterationsPlanned","state","reason","ended"}
 *     summary.json         optional, written when the experiment ends
 *     .reserve             64 KiB set aside while the experiment runs, given back to record its end on a full disk
 *
 * Every file is opened relative to its directory's fd and never through a symbolic link (O_NOFOLLOW). The JSON
 * documents are replaced atomically: a temporary file, fsync(), rename(), fsync() of the directory. A new experiment
 * is made under a hidden name (".new-ID") and renamed into place once complete, so an experiment is either
 * entirely there or not at all; a hidden leftover of a crash is removed at the next load (with a log line).
 *
 * Loading (experiment_store_open()) reads every experiment directory (at most limits->max_scan): its state and
 * how many iterations it holds. One that was "running" belongs to a daemon that stopped: it becomes "interrupted"
 * (state.json rewritten, reason EXPERIMENT_REASON_INTERRUPTED, "ended" the time of the load), its completed
 * iterations intact. A torn last line of iterations.jsonl (kill -9 during the write) is cut off, with a log line.
 * An experiment whose files are damaged is listed with ExperimentInfo.error set and its directory kept: only
 * experiment_store_delete() removes it, never the load or the retention.
 *
 * Retention: after an experiment ends (experiment_store_finish()), the oldest ended experiments are removed, one
 * log line each, while the store holds more than limits->max_experiments experiments or more than
 * limits->max_bytes bytes. Running and damaged experiments and the one that just ended are never removed.
 *
 * The store is not thread-safe, and one process at a time owns the directory (memvisord locks its state
 * directory). Loading does not apply the retention bound: the caller may call experiment_store_apply_retention().
 *
 * Nothing here blocks on anything but the local file system (fsync() included): the caller decides whether that
 * may happen on its event loop. Errors are negative errno values:
 *   -ESRCH     no experiment with this ID
 *   -EALREADY  the experiment is not running (append, finish)
 *   -EBUSY     the experiment is running (delete)
 *   -EMSGSIZE  an iteration record over EXPERIMENT_RECORD_MAX, or a document over EXPERIMENT_DOCUMENT_MAX
 *   -EBADMSG   a file that does not hold what it should (reading back a damaged experiment), or a record that
 *              would not read back (nested deeper than EXPERIMENT_JSON_DEPTH, invalid UTF-8)
 *   -EDOM      a record with a number that JSON cannot hold (NaN, infinity)
 *   -ENOSPC, -EDQUOT, -EIO, …  from the file system: nothing half-written stays (see experiment_store_append()) */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"

#define EXPERIMENT_STORE_MAX_EXPERIMENTS_DEFAULT 1000U
#define EXPERIMENT_STORE_MAX_BYTES_DEFAULT (UINT64_C(1) << 30)
#define EXPERIMENT_STORE_MAX_SCAN_DEFAULT 10000U
/* One iteration record, its newline included. */
#define EXPERIMENT_RECORD_MAX (1024U * 1024U)
/* definition.json, provenance.json, summary.json. */
#define EXPERIMENT_DOCUMENT_MAX (16U * 1024U * 1024U)
/* state.json. */
#define EXPERIMENT_STATE_FILE_MAX (64U * 1024U)
/* JSON nesting accepted when reading any of the files back. */
#define EXPERIMENT_JSON_DEPTH 64
#define EXPERIMENT_REASON_INTERRUPTED "the daemon stopped while it ran"

typedef enum ExperimentState {
        EXPERIMENT_RUNNING,
        EXPERIMENT_COMPLETED,
        EXPERIMENT_FAILED,
        EXPERIMENT_CANCELLED,
        EXPERIMENT_INTERRUPTED,
        _EXPERIMENT_STATE_MAX,
        _EXPERIMENT_STATE_INVALID = -EINVAL,
} ExperimentState;

DECLARE_STRING_TABLE(experiment_state, ExperimentState);

typedef enum ExperimentDocument {
        EXPERIMENT_DOCUMENT_DEFINITION,
        EXPERIMENT_DOCUMENT_PROVENANCE,
        EXPERIMENT_DOCUMENT_SUMMARY,
        _EXPERIMENT_DOCUMENT_MAX,
        _EXPERIMENT_DOCUMENT_INVALID = -EINVAL,
} ExperimentDocument;

/* The file name of a document ("definition.json", …). */
DECLARE_STRING_TABLE(experiment_document, ExperimentDocument);

typedef struct ExperimentStoreLimits {
        size_t max_experiments;         /* 0: EXPERIMENT_STORE_MAX_EXPERIMENTS_DEFAULT */
        uint64_t max_bytes;             /* 0: EXPERIMENT_STORE_MAX_BYTES_DEFAULT */
        size_t max_scan;                /* directory entries read at load; 0: EXPERIMENT_STORE_MAX_SCAN_DEFAULT */
} ExperimentStoreLimits;

/* One experiment as listed; owned by the store, valid until the experiment is deleted or the store freed. */
typedef struct ExperimentInfo {
        char *id;
        char *guest;                    /* NULL when state.json could not be read (error is set) */
        ExperimentState state;          /* _EXPERIMENT_STATE_INVALID when state.json could not be read */
        char *reason;                   /* failed, interrupted (and cancelled when given): why; otherwise NULL */
        uint64_t created_usec;          /* CLOCK_REALTIME */
        uint64_t ended_usec;            /* CLOCK_REALTIME; 0 while running (interrupted: when that was noticed) */
        uint64_t iterations_done;       /* complete lines of iterations.jsonl */
        uint64_t iterations_planned;
        uint64_t bytes;                 /* the sizes of its files */
        char *error;                    /* non-NULL: what is damaged; the directory is kept as it is */
} ExperimentInfo;

typedef struct ExperimentStore ExperimentStore;

/* Loads the store from dir_fd (borrowed; the store keeps a duplicate), as described above. limits may be NULL
 * (the defaults). Fails only when the directory cannot be read at all; damaged experiments are listed. */
int experiment_store_open(int dir_fd, const ExperimentStoreLimits *limits, ExperimentStore **ret);
ExperimentStore *experiment_store_free(ExperimentStore *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(ExperimentStore *, experiment_store_free);

/* The experiments, oldest first (by creation time, then ID). */
size_t experiment_store_size(const ExperimentStore *s);
const ExperimentInfo *experiment_store_get(const ExperimentStore *s, size_t i);
const ExperimentInfo *experiment_store_find(const ExperimentStore *s, const char *id);
/* The bytes of all experiments' files. */
uint64_t experiment_store_bytes(const ExperimentStore *s);

/* Makes a new running experiment for guest (non-empty UTF-8) with iterations_planned > 0, its definition and
 * provenance (JSON objects, serialized as they are) written and synced before it returns. *ret_id (optional)
 * points at the new ID, owned by the store. On failure nothing of it remains on disk. */
int experiment_store_create(ExperimentStore *s, const char *guest, uint64_t iterations_planned,
                            json_object *definition, json_object *provenance, const char **ret_id);

/* Appends one iteration record (a JSON object) as one line, with a single write() followed by fsync(); when it
 * returns 0 the record is on disk and *ret_index (optional) is its 0-based index. When the write or the fsync()
 * fails (-ENOSPC, -EDQUOT, -EIO, …) the file is truncated back to its last complete line and the error returned;
 * the caller then ends the experiment (experiment_store_finish() with EXPERIMENT_FAILED). If even the truncation
 * fails, every later append fails with -EIO, and the next load drops the partial line. */
int experiment_store_append(ExperimentStore *s, const char *id, json_object *record, uint64_t *ret_index);

/* Ends a running experiment: state (completed, failed, cancelled) and reason (required for failed) into state.json,
 * summary (optional, a JSON object) into summary.json first, then the retention bound is applied. On a full disk
 * the experiment's reserve is given back first so that its end can still be recorded. */
int experiment_store_finish(ExperimentStore *s, const char *id, ExperimentState state, const char *reason,
                            json_object *summary);

/* Replaces the provenance of a running experiment, atomically (a matrix run adds each variant's guest as it
 * first boots). -EALREADY when it is not running. */
int experiment_store_update_provenance(ExperimentStore *s, const char *id, json_object *provenance);

/* Called once per iteration, in order; record is borrowed for the call. Return 0 to go on, > 0 to stop (the reader
 * then returns 0), < 0 to stop with that error. */
typedef int (*ExperimentIterationHandler)(uint64_t index, json_object *record, void *userdata);

/* Reads the iterations back one line at a time (never the whole file at once; a line is at most
 * EXPERIMENT_RECORD_MAX), up to the last complete line known to the store. -EBADMSG on a line that is not a
 * JSON object (the line number is logged at debug level). */
int experiment_store_read_iterations(ExperimentStore *s, const char *id, ExperimentIterationHandler handler,
                                     void *userdata);

/* Where a reading of the iterations stopped: the byte offset of the next line and its index. */
typedef struct ExperimentReadPosition {
        uint64_t offset;
        uint64_t index;
} ExperimentReadPosition;

/* The same from *pos (zeroed: the first line) on, which is advanced past each line the handler took (its
 * return ≥ 0), so that a later call goes on where a handler returning > 0 stopped. */
int experiment_store_read_iterations_from(ExperimentStore *s, const char *id, ExperimentReadPosition *pos,
                                          ExperimentIterationHandler handler, void *userdata);

/* Reads definition.json, provenance.json or summary.json (-ENOENT when the experiment has no summary). */
int experiment_store_read_document(ExperimentStore *s, const char *id, ExperimentDocument which, json_object **ret);

/* Removes an experiment's directory and everything in it (-EBUSY while it runs), damaged ones included. */
int experiment_store_delete(ExperimentStore *s, const char *id);

/* Applies the retention bound now (experiment_store_finish() does it by itself); keep_id (optional) is never
 * removed. Returns how many experiments were removed. */
int experiment_store_apply_retention(ExperimentStore *s, const char *keep_id);
