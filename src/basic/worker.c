/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "basic/worker.h"

typedef struct WorkerMessage {
        int code;
        int done;
        int result;
} WorkerMessage;

struct Worker {
        pthread_t thread;
        bool thread_running;            /* created and not joined */
        bool finished;                  /* the end message was handled */
        int pipe[2];
        sd_event_source *source;
        WorkerFn fn;
        void *arg;
        WorkerNotify notify;
        void *userdata;
};

static void worker_write(Worker *w, const WorkerMessage *m) {
        /* Smaller than PIPE_BUF: atomic. The read end is drained by the loop; a full pipe only delays us. */
        while (write(w->pipe[1], m, sizeof(*m)) < 0 && errno == EINTR)
                ;
}

void worker_post(Worker *w, int code) {
        worker_write(w, &(WorkerMessage) { .code = code });
}

static void *worker_thread(void *p) {
        Worker *w = p;
        int r;

        r = w->fn(w, w->arg);
        worker_write(w, &(WorkerMessage) { .done = 1, .result = r });
        return NULL;
}

static int worker_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;

        for (;;) {
                WorkerMessage m;
                ssize_t n = read(fd, &m, sizeof(m));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n != (ssize_t) sizeof(m)) {
                        /* The write end closes only in worker_free(): cannot happen while we watch. */
                        m = (WorkerMessage) { .done = 1, .result = n < 0 ? -errno : -EIO };
                }
                if (m.done) {
                        (void) sd_event_source_set_enabled(w->source, SD_EVENT_OFF);
                        if (w->thread_running) {
                                (void) pthread_join(w->thread, NULL);
                                w->thread_running = false;
                        }
                        w->finished = true;
                        w->notify(w, 0, true, m.result, w->userdata);
                        return 0; /* w may be gone */
                }
                w->notify(w, m.code, false, 0, w->userdata);
        }
}

int worker_start(sd_event *event, const char *description, WorkerFn fn, void *arg, WorkerNotify notify,
                      void *userdata, Worker **ret) {
        _cleanup_(worker_freep) Worker *w = NULL;
        int r;

        w = calloc(1, sizeof(Worker));
        if (!w)
                return -ENOMEM;
        w->pipe[0] = w->pipe[1] = -EBADF;
        w->fn = fn;
        w->arg = arg;
        w->notify = notify;
        w->userdata = userdata;

        if (pipe2(w->pipe, O_CLOEXEC) < 0)
                return -errno;
        if (fcntl(w->pipe[0], F_SETFL, O_NONBLOCK) < 0)
                return -errno;
        r = sd_event_add_io(event, &w->source, w->pipe[0], EPOLLIN, worker_on_io, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(w->source, description);

        r = pthread_create(&w->thread, NULL, worker_thread, w);
        if (r != 0)
                return -r;
        w->thread_running = true;

        *ret = TAKE_PTR(w);
        return 0;
}

Worker *worker_free(Worker *w) {
        if (!w)
                return NULL;
        if (w->thread_running)
                (void) pthread_join(w->thread, NULL);
        sd_event_source_disable_unref(w->source);
        safe_close(w->pipe[0]);
        safe_close(w->pipe[1]);
        return mfree(w);
}

bool worker_running(const Worker *w) {
        return w && !w->finished;
}
