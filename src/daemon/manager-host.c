/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GetHostInfo: what this host can run, for varlink here and D-Bus in manager-dbus.c (both through
 * ManagerCompletion): /dev/kvm, and per confidential guest kind ([VM] Confidential=, src/vm/vm-confidential.h)
 * whether the host supports it (sysfs, /dev), whether the QEMU binary has its launch object, and whether this
 * build starts such guests (it does not), each "no" with its reason. QEMU is asked with `qemu-system-x86_64
 * -object help` in a worker thread (it may take long or hang: never on the event loop), its output bounded and
 * given HOST_PROBE_TIMEOUT_USEC for everything (its output, its exit; then its process group is killed), ended at
 * once when the daemon stops; at most MANAGER_HOST_PROBES_MAX calls at a time. The answer is kept for the binary
 * (its device, inode, size and mtime): later calls cost a stat() until the binary changes, so nobody can make the
 * daemon run QEMU over and over. QEMU's output is untrusted: only compared line by line with the object names. */
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/worker.h"
#include "daemon/manager.h"
#include "vm/process.h"
#include "vm/vm-confidential.h"

#define HOST_PROBE_QEMU "qemu-system-x86_64"
#define HOST_PROBE_OUTPUT_MAX (64U * 1024)
#define HOST_PROBE_TIMEOUT_USEC (10 * USEC_PER_SEC)

#define HOST_PROBE_DRAIN_USEC (100 * USEC_PER_MSEC)

struct HostProbe {
        Manager *manager;
        Worker *worker;
        ManagerCompletion completion;
        char *binary;                   /* the QEMU found in PATH */
        struct stat st;                 /* its identity, for the cache */
        char *output;                   /* what `-object help` printed, at most HOST_PROBE_OUTPUT_MAX bytes */
        size_t size;
        int cancel_fd;                  /* an eventfd: written when the daemon stops, ends the probe at once */
};

/* The last answer of QEMU, for the binary it came from. */
static struct {
        char *binary;
        struct stat st;
        char *output;
        size_t size;
} cache;

static char *copy_bytes(const char *p, size_t n) {
        char *c = malloc(MAX(n, (size_t) 1));

        if (c && n > 0)
                memcpy(c, p, n);
        return c;
}

static bool same_file(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static HostProbe *probe_free(HostProbe *p) {
        if (!p)
                return NULL;
        if (p->cancel_fd >= 0)
                (void) eventfd_write(p->cancel_fd, 1);  /* a thread still running ends now */
        worker_free(p->worker);         /* waits for it */
        safe_close(p->cancel_fd);
        manager_completion_drop(&p->completion);
        free(p->binary);
        free(p->output);
        return mfree(p);
}

static uint64_t monotonic_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* In the worker thread: runs BINARY -object help, keeps the first HOST_PROBE_OUTPUT_MAX bytes. One deadline for
 * the output and the exit; when QEMU has exited, what is left in the pipe is read for HOST_PROBE_DRAIN_USEC at most
 * (a descendant may hold it open). -ETIMEDOUT or -ECANCELED (the daemon stops): QEMU's process group is killed.
 * -EBADMSG when QEMU failed. */
static int probe_run(Worker *w, void *arg) {
        HostProbe *p = arg;
        char *const argv[] = { p->binary, (char *) "-object", (char *) "help", NULL };
        _cleanup_close_ int rfd = -EBADF, wfd = -EBADF, pidfd = -EBADF;
        uint64_t deadline = monotonic_usec() + HOST_PROBE_TIMEOUT_USEC;
        bool eof = false, exited = false;
        int fds[2], status = 0, r = 0;
        pid_t pid;

        p->output = malloc(HOST_PROBE_OUTPUT_MAX);
        if (!p->output)
                return -ENOMEM;
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        rfd = fds[0];
        wfd = fds[1];
        r = process_spawn(p->binary, argv, wfd, NULL, 0, NULL, &pid, &pidfd);
        if (r < 0)
                return r;
        wfd = safe_close(wfd);

        while (!eof || !exited) {
                struct pollfd pfd[3] = {
                        { .fd = eof ? -1 : rfd, .events = POLLIN },
                        { .fd = exited ? -1 : pidfd, .events = POLLIN },
                        { .fd = p->cancel_fd, .events = POLLIN },
                };
                uint64_t now = monotonic_usec();

                if (now >= deadline) {
                        if (!exited)
                                r = -ETIMEDOUT;
                        break;  /* exited: only a descendant still holds the pipe, the output is complete */
                }
                if (poll(pfd, 3, (int) ((deadline - now + 999) / 1000)) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (pfd[2].revents) {
                        r = -ECANCELED;
                        break;
                }
                if (pfd[1].revents) {
                        exited = true;
                        deadline = MIN(deadline, monotonic_usec() + HOST_PROBE_DRAIN_USEC);
                }
                if (pfd[0].revents) {
                        char chunk[4096];
                        ssize_t l = read(rfd, chunk, sizeof(chunk));

                        if (l < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (l <= 0) {
                                eof = true;     /* end of output (or an error reading it: the exit status decides) */
                                continue;
                        }
                        if (p->size < HOST_PROBE_OUTPUT_MAX) {
                                size_t keep = MIN((size_t) l, HOST_PROBE_OUTPUT_MAX - p->size);

                                memcpy(p->output + p->size, chunk, keep);
                                p->size += keep;
                        }
                }
        }
        /* Whatever is left of it goes: QEMU (when it has not exited) and what it started (its own session) */
        (void) kill(-pid, SIGKILL);
        if (!exited)
                (void) pidfd_send_sig(pidfd, SIGKILL);
        while (waitpid(pid, &status, 0) < 0)    /* it has exited, or has just been killed */
                if (errno != EINTR)
                        return r < 0 ? r : -errno;
        if (r < 0)
                return r;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EBADMSG;
}

/* "no /dev/kvm" and the like: NULL when usable. */
static int kvm_reason(const char *root, char **ret) {
        _cleanup_free_ char *path = path_join(root, "dev/kvm");
        _cleanup_close_ int fd = -EBADF;

        *ret = NULL;
        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd >= 0)
                return 0;
        if (asprintf(ret, "cannot open /dev/kvm: %s", strerror(errno)) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* One kind: {"kind", "host", "hostReason", "qemuObject", "qemu", "qemuReason", "usable", "reason"}. qemu_error:
 * how asking QEMU failed (0: it answered, p->output). */
static int feature_json(const HostProbe *p, const char *root, VmConfidentialFeature f, const char *qemu_error,
                        json_object **ret) {
        _cleanup_json_ json_object *o = json_object_new_object();
        _cleanup_free_ char *host_why = NULL, *qemu_why = NULL;
        const char *object = vm_confidential_feature_qemu_object(f), *why;
        bool listed = false;
        int host, r;

        if (!o)
                return -ENOMEM;
        host = vm_confidential_host_supports(root, f, &host_why);
        if (host < 0)
                return host;
        if (!qemu_error) {
                listed = vm_confidential_qemu_lists(p->output, p->size, object);
                if (!listed && asprintf(&qemu_why, "%s -object help does not list %s", p->binary, object) < 0)
                        return -ENOMEM;
        }
        why = host == 0 ? host_why
              : qemu_error ? qemu_error
              : !listed ? qemu_why
                        : "this memvisor build does not pass QEMU the launch arguments of confidential guests "
                          "(they cannot be tested here)";
        if ((r = json_add_string(o, "kind", vm_confidential_feature_to_string(f))) < 0 ||
            (r = json_add_bool(o, "host", host > 0)) < 0 ||
            (host_why && (r = json_add_string(o, "hostReason", host_why)) < 0) ||
            (r = json_add_string(o, "qemuObject", object)) < 0 ||
            (!qemu_error && (r = json_add_bool(o, "qemu", listed)) < 0) ||
            ((qemu_error || qemu_why) && (r = json_add_string(o, "qemuReason", qemu_error ?: qemu_why)) < 0) ||
            (r = json_add_bool(o, "usable", false)) < 0 || (r = json_add_string(o, "reason", why)) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

/* The reply; result: how asking QEMU went (0: p->output is its answer). */
static int host_info_json(const HostProbe *p, const char *root, int result, json_object **ret) {
        _cleanup_json_ json_object *reply = json_object_new_object(), *list = json_object_new_array();
        _cleanup_free_ char *kvm_why = NULL, *qemu_error = NULL;
        int r;

        if (!reply || !list)
                return -ENOMEM;
        r = kvm_reason(root, &kvm_why);
        if (r < 0)
                return r;
        if (!p->binary)
                r = asprintf(&qemu_error, "%s is not in PATH", HOST_PROBE_QEMU);
        else if (result == -ETIMEDOUT)
                r = asprintf(&qemu_error, "%s -object help did not finish within %u s", p->binary,
                             (unsigned) (HOST_PROBE_TIMEOUT_USEC / USEC_PER_SEC));
        else if (result == -EBADMSG)
                r = asprintf(&qemu_error, "%s -object help failed", p->binary);
        else if (result < 0)
                r = asprintf(&qemu_error, "cannot run %s: %s", p->binary, strerror(-result));
        if (r < 0)
                return -ENOMEM;
        for (VmConfidentialFeature f = 0; f < _VM_CONFIDENTIAL_FEATURE_MAX; f++) {
                json_object *o = NULL;

                r = feature_json(p, root, f, qemu_error, &o);
                if (r < 0)
                        return r;
                r = json_object_array_add(list, o);
                if (r < 0) {
                        json_object_put(o);
                        return -ENOMEM;
                }
        }
        if ((r = json_add_bool(reply, "kvm", !kvm_why)) < 0 ||
            (kvm_why && (r = json_add_string(reply, "kvmReason", kvm_why)) < 0) ||
            (r = json_add_string(reply, "qemuBinary", p->binary ?: HOST_PROBE_QEMU)) < 0 ||
            (r = json_add(reply, "confidential", TAKE_PTR(list))) < 0)
                return r;
        *ret = TAKE_PTR(reply);
        return 0;
}

static void probe_answer(HostProbe *p, int result) {
        json_object *reply = NULL;
        int r;

        r = host_info_json(p, p->manager->vmctx.sysfs_root, result, &reply);
        if (r < 0) {
                log_error_errno(r, "GetHostInfo failed: %m");
                manager_completion_finish(&p->completion, VARLINK_ERROR(INTERNAL_ERROR), NULL);
                return;
        }
        manager_completion_finish(&p->completion, NULL, reply);
}

static void probe_done(Worker *w, int code, bool done, int result, void *userdata) {
        HostProbe *p = userdata;
        Manager *m = p->manager;

        if (!done)
                return;
        for (size_t i = 0; i < MANAGER_HOST_PROBES_MAX; i++)
                if (m->host_probes[i] == p)
                        m->host_probes[i] = NULL;
        if (result == 0) {
                char *b = strdup(p->binary), *o = copy_bytes(p->output, p->size);

                if (b && o) {
                        free(cache.binary);
                        free(cache.output);
                        cache.binary = b;
                        cache.output = o;
                        cache.size = p->size;
                        cache.st = p->st;
                } else {
                        free(b);
                        free(o);
                }
        }
        probe_answer(p, result);
        probe_free(p);
}

int manager_host_info(Manager *m, ManagerCompletion *completion, ManagerError *ret_error) {
        HostProbe *p = NULL;
        size_t slot = MANAGER_HOST_PROBES_MAX;
        int r;

        for (size_t i = 0; i < MANAGER_HOST_PROBES_MAX; i++)
                if (!m->host_probes[i]) {
                        slot = i;
                        break;
                }
        if (slot == MANAGER_HOST_PROBES_MAX) {
                json_object *e = json_object_new_object();

                manager_completion_drop(completion);
                if (!e || json_add_string(e, "operation", "GetHostInfo") < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
                return manager_error_set(ret_error, -EBUSY, VARLINK_ERROR(BUSY), e);
        }
        p = calloc(1, sizeof(*p));
        if (!p) {
                manager_completion_drop(completion);
                return -ENOMEM;
        }
        p->manager = m;
        p->completion = *completion;
        p->cancel_fd = -EBADF;
        *completion = (ManagerCompletion) {};

        r = find_executable(HOST_PROBE_QEMU, &p->binary);
        if (r == -ENOMEM) {
                probe_free(p);
                return r;
        }
        if (r < 0) {                    /* no QEMU to ask: the answer says so */
                p->binary = NULL;
                probe_answer(p, r);
                probe_free(p);
                return 0;
        }
        if (stat(p->binary, &p->st) >= 0 && cache.binary && streq(cache.binary, p->binary) &&
            same_file(&cache.st, &p->st)) {
                p->output = copy_bytes(cache.output, cache.size);
                if (!p->output) {
                        probe_free(p);
                        return -ENOMEM;
                }
                p->size = cache.size;
                probe_answer(p, 0);     /* the same binary answered before */
                probe_free(p);
                return 0;
        }
        p->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->cancel_fd < 0) {
                r = -errno;
                probe_free(p);
                return r;
        }
        r = worker_start(m->event, "qemu -object help", probe_run, p, probe_done, p, &p->worker);
        if (r < 0) {
                probe_free(p);
                return r;
        }
        m->host_probes[slot] = p;
        return 0;
}

void manager_host_done(Manager *m) {
        for (size_t i = 0; i < MANAGER_HOST_PROBES_MAX; i++)
                m->host_probes[i] = probe_free(m->host_probes[i]);      /* nobody is answered */
        cache.binary = mfree(cache.binary);
        cache.output = mfree(cache.output);
}

/* ---- varlink ---------------------------------------------------------------------------------- */

static int vl_get_host_info(VarlinkConnection *c, json_object *parameters, VarlinkCallFlags flags, void *userdata) {
        ManagerCompletion completion = manager_varlink_completion(c);
        ManagerError e = {};
        int r;

        r = manager_host_info(userdata, &completion, &e);
        return r < 0 ? manager_error_varlink_reply(c, &e, r) : 0;
}

static const VarlinkMethod host_methods[] = {
        { "GetHostInfo", vl_get_host_info, (const VarlinkField[]) { { NULL } }, 0 },
        { NULL },
};

const VarlinkMethod *manager_host_methods(void) {
        return host_methods;
}
