/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Runs one function in a thread off the event loop (migrate_pages of GiBs, numa_maps of a large guest) and
 * reports back through a pipe watched by sd-event: progress codes posted by the function, then its result.
 * The function must only touch memory the worker's owner keeps alive until the done callback; freeing a
 * worker whose thread still runs waits for it. */

#include <systemd/sd-event.h>

#include "basic/macro.h"

typedef struct Worker Worker;

/* Runs in the thread; returns 0 or a negative errno. */
typedef int (*WorkerFn)(Worker *w, void *arg);
/* On the event loop: a progress code (done=false) or the end (done=true, result = the function's return).
 * After the end the thread has been joined; the callback may free the worker. */
typedef void (*WorkerNotify)(Worker *w, int code, bool done, int result, void *userdata);

int worker_start(sd_event *event, const char *description, WorkerFn fn, void *arg, WorkerNotify notify,
                      void *userdata, Worker **ret);
Worker *worker_free(Worker *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Worker *, worker_free);
bool worker_running(const Worker *w);

/* From the thread: posts a progress code (≥ 0). */
void worker_post(Worker *w, int code);
