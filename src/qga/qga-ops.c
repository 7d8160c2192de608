/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The typed operations made of guest-file-* and information commands: reading a guest file, the counters
 * snapshot, the guest's identity and topology (copying into the guest: qga-copy.c, running a program: qga-exec.c). Each is a small chain of agent
 * commands: a struct holding a reference on the client, advanced by the command callbacks, finished once.
 *
 * A command's callback may run before qga_client_execute() returns (when the client fails it at once), so after
 * starting the next step a function never touches its operation again. */

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "basic/base64.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "qga/qga-op.h"

#define READ_MAX_DEFAULT (1U * 1024U * 1024U)
#define READ_MAX (16U * 1024U * 1024U)
#define INFO_STRING_MAX 4096U
#define INFO_VCPUS_MAX 65536U
#define INFO_MEMORY_BLOCKS_MAX (1U << 20)
#define INFO_NODES_MAX_ID 1023U
#define INFO_MEMORY_BLOCKS_REPLY_MAX (64U * 1024U * 1024U)

/* ---- shared helpers ---- */

int qga_op_require(QgaClient *c, const char *const *commands) {
        if (!qga_client_get_commands(c))
                return 0;       /* not known (yet): the agent will say */
        for (const char *const *p = commands; *p; p++)
                if (!qga_client_supports(c, *p))
                        return -ENOTSUP;
        return 0;
}

uint64_t qga_now(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

void qga_op_error_done(QgaOpError *e) {
        free(e->command);
        free(e->error_class);
        free(e->description);
        *e = (QgaOpError) {};
}

int qga_op_error_set(QgaOpError *e, QgaClient *c, int error, const char *command, const char *error_class,
                     const char *description) {
        _cleanup_free_ char *d = NULL;

        assert(error < 0);
        if (e->error != 0)
                return 0;
        if (error == -EIO && streq_ptr(error_class, "CommandNotFound")) {
                error = -ENOTSUP;
                error_class = NULL;
        }

        if (description)
                d = strdup(description);
        else if (qga_error_connection_gone(error) && c && qga_client_get_reason(c))
        {
                if (asprintf(&d, "%s (%s)", strerror(-error), qga_client_get_reason(c)) < 0)
                        d = NULL;
        }
        else
                d = strdup(strerror(-error));

        e->error = error;
        e->command = command ? strdup(command) : NULL;
        e->error_class = error_class ? strdup(error_class) : NULL;
        e->description = TAKE_PTR(d);
        if ((command && !e->command) || (error_class && !e->error_class) || !e->description)
                return -ENOMEM;
        return 0;
}

int qga_op_error_setf(QgaOpError *e, int error, const char *command, const char *format, ...) {
        _cleanup_free_ char *d = NULL;
        va_list ap;
        int k;

        if (e->error != 0)
                return 0;
        va_start(ap, format);
        k = vasprintf(&d, format, ap);
        va_end(ap);
        if (k < 0)
                d = NULL;
        return qga_op_error_set(e, NULL, error, command, NULL, d ?: "out of memory");
}

QgaError qga_op_error_view(const QgaOpError *e) {
        return (QgaError) {
                .error = e->error,
                .command = e->command,
                .error_class = e->error_class,
                .description = e->description ?: "out of memory",
        };
}

int qga_json_int(json_object *o, const char *key, int64_t min, int64_t max, int64_t *ret) {
        json_object *v;
        int64_t i;

        if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
            !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        errno = 0;
        i = json_object_get_int64(v);
        if (errno != 0 || i < min || i > max)
                return -EBADMSG;
        *ret = i;
        return 0;
}

int qga_json_bool(json_object *o, const char *key, bool *ret) {
        json_object *v;

        if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
            !json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        *ret = json_object_get_boolean(v);
        return 0;
}

int qga_json_string(json_object *o, const char *key, size_t max, bool optional, const char **ret) {
        json_object *v;
        const char *s;
        size_t l;

        if (!o || !json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                if (!optional)
                        return -EBADMSG;
                *ret = NULL;
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        s = json_object_get_string(v);
        l = (size_t) json_object_get_string_len(v);
        if (l > max || strlen(s) != l)
                return -EBADMSG;
        for (size_t i = 0; i < l; i++)
                if ((unsigned char) s[i] < 0x20)
                        return -EBADMSG;
        *ret = s;
        return 0;
}

json_object *qga_args_handle(int64_t handle) {
        _cleanup_json_ json_object *a = json_object_new_object();

        if (!a || json_add_int(a, "handle", handle) < 0)
                return NULL;
        return TAKE_PTR(a);
}

/* ---- reading a file ---- */

typedef struct ReadFile {
        QgaClient *client;
        char *path;
        size_t max_bytes;
        QgaReadFileCallback callback;
        void *userdata;

        int64_t handle;
        bool open;
        size_t requested;
        char *data;
        size_t size;
        bool truncated;
        QgaOpError error;
} ReadFile;

static void read_file_free(ReadFile *r) {
        qga_op_error_done(&r->error);
        free(r->path);
        free(r->data);
        qga_client_unref(r->client);
        free(r);
}

static void read_file_finish(ReadFile *r) {
        QgaError view = qga_op_error_view(&r->error);

        if (r->error.error != 0)
                r->callback(r->client, &view, NULL, 0, false, r->userdata);
        else
                r->callback(r->client, NULL, r->data ?: "", r->size, r->truncated, r->userdata);
        read_file_free(r);
}

static void read_file_on_close(QgaClient *c, int error, json_object *result, const char *error_class,
                               const char *error_desc, void *userdata) {
        ReadFile *r = userdata;

        /* The content is complete; a handle the agent failed to close is its loss, not the reader's. */
        if (error < 0)
                log_debug_errno(error, "guest-file-close of %s failed, ignoring: %s", r->path, strna(error_desc));
        read_file_finish(r);
}

static void read_file_close(ReadFile *r) {
        json_object *args;
        int k;

        if (!r->open || qga_error_connection_gone(r->error.error))
                return read_file_finish(r);
        r->open = false;
        args = qga_args_handle(r->handle);
        if (!args) {
                (void) qga_op_error_set(&r->error, r->client, -ENOMEM, "guest-file-close", NULL, NULL);
                return read_file_finish(r);
        }
        k = qga_client_execute(r->client, "guest-file-close", args, 0, 0, read_file_on_close, r);
        if (k < 0)
                read_file_finish(r);
}

static void read_file_next(ReadFile *r);

static void read_file_on_read(QgaClient *c, int error, json_object *result, const char *error_class,
                              const char *error_desc, void *userdata) {
        ReadFile *r = userdata;
        _cleanup_free_ char *buf = NULL;
        const char *b64;
        int64_t count;
        size_t n;
        bool eof;
        char *p;

        if (error < 0) {
                (void) qga_op_error_set(&r->error, c, error, "guest-file-read", error_class, error_desc);
                return read_file_close(r);
        }
        if (qga_json_int(result, "count", 0, (int64_t) r->requested, &count) < 0 ||
            qga_json_bool(result, "eof", &eof) < 0 ||
            qga_json_string(result, "buf-b64", base64_encoded_size(r->requested), false, &b64) < 0 ||
            base64_decode(b64, strlen(b64), r->requested, &buf, &n) < 0 || n != (size_t) count) {
                (void) qga_op_error_setf(&r->error, -EBADMSG, "guest-file-read",
                                         "the agent's reply to guest-file-read of %s is malformed", r->path);
                return read_file_close(r);
        }
        if (n == 0 && !eof) {
                (void) qga_op_error_setf(&r->error, -EBADMSG, "guest-file-read",
                                         "guest-file-read of %s returned nothing before the end", r->path);
                return read_file_close(r);
        }

        /* requested ≤ max_bytes - size + 1, so this stays within max_bytes + 1. */
        p = realloc(r->data, r->size + n + 1);
        if (!p) {
                (void) qga_op_error_set(&r->error, c, -ENOMEM, "guest-file-read", NULL, NULL);
                return read_file_close(r);
        }
        r->data = p;
        memcpy(r->data + r->size, buf, n);
        r->size += n;
        r->data[r->size] = 0;

        if (r->size > r->max_bytes) {
                r->size = r->max_bytes;
                r->data[r->size] = 0;
                r->truncated = true;
                return read_file_close(r);
        }
        if (eof)
                return read_file_close(r);
        read_file_next(r);
}

static void read_file_next(ReadFile *r) {
        _cleanup_json_ json_object *args = NULL;
        int k;

        /* One byte more than what is left tells a file of exactly max_bytes from a longer one. */
        r->requested = MIN((size_t) QGA_FILE_CHUNK, r->max_bytes - r->size + 1);
        args = qga_args_handle(r->handle);
        if (!args || json_add_int(args, "count", (int64_t) r->requested) < 0) {
                (void) qga_op_error_set(&r->error, r->client, -ENOMEM, "guest-file-read", NULL, NULL);
                return read_file_close(r);
        }
        k = qga_client_execute(r->client, "guest-file-read", TAKE_PTR(args), 0, 0, read_file_on_read, r);
        if (k < 0) {
                (void) qga_op_error_set(&r->error, r->client, k, "guest-file-read", NULL, NULL);
                read_file_close(r);
        }
}

static void read_file_on_open(QgaClient *c, int error, json_object *result, const char *error_class,
                              const char *error_desc, void *userdata) {
        ReadFile *r = userdata;

        if (error < 0) {
                (void) qga_op_error_set(&r->error, c, error, "guest-file-open", error_class, error_desc);
                return read_file_finish(r);
        }
        if (!json_object_is_type(result, json_type_int) || json_object_get_int64(result) < 0) {
                (void) qga_op_error_setf(&r->error, -EBADMSG, "guest-file-open",
                                         "the agent's reply to guest-file-open of %s is not a handle", r->path);
                return read_file_finish(r);
        }
        r->handle = json_object_get_int64(result);
        r->open = true;
        read_file_next(r);
}

int qga_read_file(QgaClient *c, const char *path, size_t max_bytes, QgaReadFileCallback cb, void *userdata) {
        _cleanup_json_ json_object *args = NULL;
        ReadFile *r;
        int k;

        if (!c || isempty(path) || !cb || max_bytes > READ_MAX)
                return -EINVAL;
        k = qga_op_require(c, STRV("guest-file-open", "guest-file-read", "guest-file-close"));
        if (k < 0)
                return k;

        args = json_object_new_object();
        if (!args || json_add_string(args, "path", path) < 0 || json_add_string(args, "mode", "r") < 0)
                return -ENOMEM;
        r = calloc(1, sizeof(ReadFile));
        if (!r)
                return -ENOMEM;
        *r = (ReadFile) {
                .client = qga_client_ref(c),
                .path = strdup(path),
                .max_bytes = max_bytes ?: READ_MAX_DEFAULT,
                .callback = cb,
                .userdata = userdata,
        };
        if (!r->path) {
                read_file_free(r);
                return -ENOMEM;
        }

        k = qga_client_execute(c, "guest-file-open", TAKE_PTR(args), 0, 0, read_file_on_open, r);
        if (k < 0) {
                read_file_free(r);
                return k;
        }
        return 0;
}

/* An error of a part (a file, a command) that makes the part unavailable rather than the whole operation fail:
 * the agent's error or a malformed answer. A lost connection, a timeout, no memory fail the operation. */
static bool error_is_partial(int error) {
        return error == -EIO || error == -EBADMSG;
}

static const char *error_words(const QgaError *e, char *buf, size_t l) {
        if (e->error_class)
                (void) snprintf(buf, l, "%s: %s: %s", strna(e->command), e->error_class, strna(e->description));
        else
                (void) snprintf(buf, l, "%s: %s", strna(e->command), strna(e->description));
        return buf;
}

/* ---- counters ---- */

typedef struct Counters {
        QgaClient *client;
        QgaCountersCallback callback;
        void *userdata;
        unsigned step;                  /* the file being read: 0 vmstat, 1 interrupts, 2 meminfo */
        char *text[3];
        size_t size[3];
        QgaGuestCounters counters;
        QgaOpError error;
} Counters;

static const struct {
        const char *path, *name;
        size_t max;
} counter_files[3] = {
        { "/proc/vmstat", "vmstat", 1U * 1024U * 1024U },
        { "/proc/interrupts", "interrupts", 4U * 1024U * 1024U },
        { "/proc/meminfo", "meminfo", 1U * 1024U * 1024U },
};

static void counters_finish(Counters *s) {
        QgaError view;

        if (s->error.error == 0) {
                int k = qga_guest_counters_parse(&s->counters, s->text[0], s->size[0], s->text[1], s->size[1],
                                                 s->text[2], s->size[2]);
                if (k < 0)
                        (void) qga_op_error_set(&s->error, s->client, k, NULL, NULL, NULL);
        }
        s->counters.host_realtime_usec = qga_now(CLOCK_REALTIME);

        view = qga_op_error_view(&s->error);
        s->callback(s->client, s->error.error != 0 ? &view : NULL, s->error.error != 0 ? NULL : &s->counters,
                    s->userdata);

        qga_guest_counters_done(&s->counters);
        for (size_t i = 0; i < 3; i++)
                free(s->text[i]);
        qga_op_error_done(&s->error);
        qga_client_unref(s->client);
        free(s);
}

static void counters_read_next(Counters *s);

static void counters_on_file(QgaClient *c, const QgaError *error, const char *data, size_t size, bool truncated,
                             void *userdata) {
        Counters *s = userdata;
        const char *name = counter_files[s->step].name, *path = counter_files[s->step].path;
        char words[512];
        int k = 0;

        if (error && !error_is_partial(error->error)) {
                (void) qga_op_error_set(&s->error, c, error->error, error->command, error->error_class,
                                        error->description);
                return counters_finish(s);
        }
        if (error)
                k = qga_unavailable_add(&s->counters.unavailable, &s->counters.n_unavailable, name,
                                        "unavailable: could not read the guest's %s (%s)", path,
                                        error_words(error, words, sizeof(words)));
        else if (truncated)
                k = qga_unavailable_add(&s->counters.unavailable, &s->counters.n_unavailable, name,
                                        "unavailable: the guest's %s is larger than %zu bytes", path,
                                        counter_files[s->step].max);
        else {
                s->text[s->step] = malloc(size + 1);
                if (!s->text[s->step])
                        k = -ENOMEM;
                else {
                        memcpy(s->text[s->step], data, size + 1);
                        s->size[s->step] = size;
                }
        }
        if (k < 0) {
                (void) qga_op_error_set(&s->error, c, k, NULL, NULL, NULL);
                return counters_finish(s);
        }

        s->step++;
        if (s->step >= ELEMENTSOF(counter_files))
                return counters_finish(s);
        counters_read_next(s);
}

static void counters_read_next(Counters *s) {
        int k;

        k = qga_read_file(s->client, counter_files[s->step].path, counter_files[s->step].max, counters_on_file, s);
        if (k < 0) {
                (void) qga_op_error_set(&s->error, s->client, k, "guest-file-open", NULL, NULL);
                counters_finish(s);
        }
}

static void counters_on_time(QgaClient *c, int error, json_object *result, const char *error_class,
                             const char *error_desc, void *userdata) {
        Counters *s = userdata;

        if (error < 0) {
                (void) qga_op_error_set(&s->error, c, error, "guest-get-time", error_class, error_desc);
                return counters_finish(s);
        }
        if (!json_object_is_type(result, json_type_int) || json_object_get_int64(result) < 0) {
                (void) qga_op_error_setf(&s->error, -EBADMSG, "guest-get-time",
                                         "the agent's reply to guest-get-time is not a time");
                return counters_finish(s);
        }
        s->counters.guest_realtime_nsec = (uint64_t) json_object_get_int64(result);
        counters_read_next(s);
}

int qga_get_counters(QgaClient *c, QgaCountersCallback cb, void *userdata) {
        Counters *s;
        int k;

        if (!c || !cb)
                return -EINVAL;
        k = qga_op_require(c, STRV("guest-get-time", "guest-file-open", "guest-file-read", "guest-file-close"));
        if (k < 0)
                return k;
        s = calloc(1, sizeof(Counters));
        if (!s)
                return -ENOMEM;
        s->client = qga_client_ref(c);
        s->callback = cb;
        s->userdata = userdata;

        /* The guest's clock first: the snapshot's timestamp is taken before the files are read. */
        k = qga_client_execute(c, "guest-get-time", NULL, 0, 0, counters_on_time, s);
        if (k < 0) {
                qga_client_unref(s->client);
                free(s);
                return k;
        }
        return 0;
}

/* ---- identity and topology ---- */

typedef enum InfoStep {
        INFO_OSINFO,
        INFO_VCPUS,
        INFO_MEMORY_BLOCK_INFO,
        INFO_MEMORY_BLOCKS,
        INFO_NODES_ONLINE,
        INFO_NODE_CPULIST,
        INFO_NODE_MEMINFO,
        INFO_DONE,
} InfoStep;

typedef struct Info {
        QgaClient *client;
        QgaGuestInfoCallback callback;
        void *userdata;
        InfoStep step;
        unsigned *node_ids;
        size_t n_node_ids, node;        /* node: index into node_ids being read */
        char *cpulist;                  /* of the node being read */
        QgaGuestInfo info;
        QgaOpError error;
        bool starting;                  /* inside qga_get_guest_info(): a failure is returned, not called back */
        int start_error;
} Info;

static const char *const info_commands[] = {
        [INFO_OSINFO] = "guest-get-osinfo",
        [INFO_VCPUS] = "guest-get-vcpus",
        [INFO_MEMORY_BLOCK_INFO] = "guest-get-memory-block-info",
        [INFO_MEMORY_BLOCKS] = "guest-get-memory-blocks",
};

static void info_free(Info *s) {
        qga_guest_info_done(&s->info);
        free(s->node_ids);
        free(s->cpulist);
        qga_op_error_done(&s->error);
        qga_client_unref(s->client);
        free(s);
}

static void info_finish(Info *s) {
        QgaError view = qga_op_error_view(&s->error);

        if (s->starting) {
                s->start_error = s->error.error < 0 ? s->error.error : -EPROTO;
                return;
        }
        s->callback(s->client, s->error.error != 0 ? &view : NULL, s->error.error != 0 ? NULL : &s->info,
                    s->userdata);
        info_free(s);
}

static int info_unavailable(Info *s, const char *name, const char *format, ...) _printf_(3, 4);
static int info_unavailable(Info *s, const char *name, const char *format, ...) {
        _cleanup_free_ char *reason = NULL;
        va_list ap;
        int k;

        va_start(ap, format);
        k = vasprintf(&reason, format, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        return qga_unavailable_add(&s->info.unavailable, &s->info.n_unavailable, name, "%s", reason);
}

static int info_take_osinfo(Info *s, json_object *o) {
        static const struct {
                const char *key;
                size_t offset;
        } keys[] = {
                { "id", offsetof(QgaGuestInfo, os_id) },
                { "name", offsetof(QgaGuestInfo, os_name) },
                { "pretty-name", offsetof(QgaGuestInfo, os_pretty_name) },
                { "version", offsetof(QgaGuestInfo, os_version) },
                { "kernel-release", offsetof(QgaGuestInfo, kernel_release) },
                { "kernel-version", offsetof(QgaGuestInfo, kernel_version) },
                { "machine", offsetof(QgaGuestInfo, machine) },
        };
        const char *v[ELEMENTSOF(keys)];

        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (qga_json_string(o, keys[i].key, INFO_STRING_MAX, true, &v[i]) < 0)
                        return -EBADMSG;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (v[i] && free_and_strdup((char **) ((uint8_t *) &s->info + keys[i].offset), v[i]) < 0)
                        return -ENOMEM;
        return 0;
}

/* guest-get-vcpus: [{"logical-id", "online", "can-offline"}…]; guest-get-memory-blocks: [{"phys-index",
 * "online", "can-offline"}…]. */
static int info_count_online(json_object *a, const char *id_key, size_t max, unsigned *ret_n, unsigned *ret_online) {
        size_t n;
        unsigned online = 0;

        if (!json_object_is_type(a, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(a);
        if (n > max)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(a, i);
                int64_t id;
                bool on;

                if (qga_json_int(e, id_key, 0, INT64_MAX, &id) < 0 || qga_json_bool(e, "online", &on) < 0)
                        return -EBADMSG;
                online += on;
        }
        *ret_n = (unsigned) n;
        *ret_online = online;
        return 0;
}

static int info_take(Info *s, json_object *result) {
        int64_t size;

        switch (s->step) {
        case INFO_OSINFO:
                return info_take_osinfo(s, result);
        case INFO_VCPUS:
                return info_count_online(result, "logical-id", INFO_VCPUS_MAX, &s->info.vcpus,
                                         &s->info.vcpus_online);
        case INFO_MEMORY_BLOCK_INFO:
                if (qga_json_int(result, "size", 1, INT64_MAX, &size) < 0)
                        return -EBADMSG;
                s->info.memory_block_size = (uint64_t) size;
                return 0;
        case INFO_MEMORY_BLOCKS:
                return info_count_online(result, "phys-index", INFO_MEMORY_BLOCKS_MAX, &s->info.memory_blocks,
                                         &s->info.memory_blocks_online);
        case INFO_NODES_ONLINE:
        case INFO_NODE_CPULIST:
        case INFO_NODE_MEMINFO:
        case INFO_DONE:
                break;
        }
        return -EINVAL;
}

static void info_next(Info *s);

static void info_on_command(QgaClient *c, int error, json_object *result, const char *error_class,
                            const char *error_desc, void *userdata) {
        Info *s = userdata;
        const char *command = info_commands[s->step];
        int k;

        if (error < 0 && !error_is_partial(error)) {
                (void) qga_op_error_set(&s->error, c, error, command, error_class, error_desc);
                return info_finish(s);
        }
        if (error < 0)
                k = info_unavailable(s, command, "unavailable: %s: %s: %s", command, strna(error_class),
                                     strna(error_desc));
        else {
                k = info_take(s, result);
                if (k == -EBADMSG)
                        k = info_unavailable(s, command, "unavailable: the agent's reply to %s is malformed",
                                             command);
        }
        if (k < 0) {
                (void) qga_op_error_set(&s->error, c, k, command, NULL, NULL);
                return info_finish(s);
        }
        s->step++;
        info_next(s);
}

static void info_on_file(QgaClient *c, const QgaError *error, const char *data, size_t size, bool truncated,
                         void *userdata);

static void info_read(Info *s, const char *path, size_t max) {
        int k;

        k = qga_read_file(s->client, path, max, info_on_file, s);
        if (k < 0) {
                (void) qga_op_error_set(&s->error, s->client, k, "guest-file-open", NULL, NULL);
                info_finish(s);
        }
}

static int info_add_node(Info *s, const char *meminfo, size_t size) {
        QgaCounter *m = NULL;
        size_t n = 0;
        uint64_t total = 0, free_bytes = 0;
        bool have_total = false, have_free = false;
        QgaGuestNode *nodes;
        int k;

        k = qga_parse_meminfo(meminfo, size, &m, &n);
        if (k < 0)
                return k;
        for (size_t i = 0; i < n; i++) {
                if (streq(m[i].name, "MemTotal")) {
                        total = m[i].value;
                        have_total = true;
                } else if (streq(m[i].name, "MemFree")) {
                        free_bytes = m[i].value;
                        have_free = true;
                }
        }
        qga_counters_free_array(m, n);
        if (!have_total || !have_free)
                return -EBADMSG;

        nodes = reallocarray(s->info.nodes, s->info.n_nodes + 1, sizeof(QgaGuestNode));
        if (!nodes)
                return -ENOMEM;
        s->info.nodes = nodes;
        nodes[s->info.n_nodes++] = (QgaGuestNode) {
                .id = s->node_ids[s->node],
                .cpulist = TAKE_PTR(s->cpulist),
                .mem_total_bytes = total,
                .mem_free_bytes = free_bytes,
        };
        return 0;
}

static void info_on_file(QgaClient *c, const QgaError *error, const char *data, size_t size, bool truncated,
                         void *userdata) {
        Info *s = userdata;
        char name[64], words[512];
        unsigned *ids = NULL;
        size_t n = 0;
        int k = 0;

        if (error && !error_is_partial(error->error)) {
                (void) qga_op_error_set(&s->error, c, error->error, error->command, error->error_class,
                                        error->description);
                return info_finish(s);
        }

        switch (s->step) {
        case INFO_NODES_ONLINE:
                if (error)
                        k = info_unavailable(s, "nodes",
                                             "unavailable: the guest has no readable /sys/devices/system/node/online "
                                             "(a kernel without NUMA?) (%s)", error_words(error, words, sizeof(words)));
                else if (truncated || (k = qga_parse_id_list(data, size, INFO_NODES_MAX_ID, &ids, &n)) < 0 || n == 0) {
                        if (k == -ENOMEM)
                                break;
                        k = info_unavailable(s, "nodes",
                                             "unavailable: the guest's /sys/devices/system/node/online is malformed");
                } else {
                        s->node_ids = ids;
                        s->n_node_ids = n;
                        s->node = 0;
                        s->step = INFO_NODE_CPULIST;
                }
                break;

        case INFO_NODE_CPULIST:
                (void) snprintf(name, sizeof(name), "node%u", s->node_ids[s->node]);
                if (error)
                        k = info_unavailable(s, name, "unavailable: could not read its cpulist (%s)",
                                             error_words(error, words, sizeof(words)));
                else if (truncated || (k = qga_parse_id_list(data, size, 65535, &ids, &n)) < 0) {
                        if (k == -ENOMEM)
                                break;
                        k = info_unavailable(s, name, "unavailable: its cpulist is malformed");
                } else {
                        free(ids);
                        s->cpulist = strndup(data, size > 0 && data[size - 1] == '\n' ? size - 1 : size);
                        if (!s->cpulist)
                                k = -ENOMEM;
                        else
                                s->step = INFO_NODE_MEMINFO;
                        break;
                }
                s->node++;      /* this node is unavailable: on to the next */
                break;

        case INFO_NODE_MEMINFO:
                (void) snprintf(name, sizeof(name), "node%u", s->node_ids[s->node]);
                if (error)
                        k = info_unavailable(s, name, "unavailable: could not read its meminfo (%s)",
                                             error_words(error, words, sizeof(words)));
                else if (truncated || (k = info_add_node(s, data, size)) < 0) {
                        if (k == -ENOMEM)
                                break;
                        k = info_unavailable(s, name,
                                             "unavailable: its meminfo is malformed or lacks MemTotal/MemFree");
                }
                s->cpulist = mfree(s->cpulist);
                s->node++;
                s->step = INFO_NODE_CPULIST;
                break;

        case INFO_OSINFO:
        case INFO_VCPUS:
        case INFO_MEMORY_BLOCK_INFO:
        case INFO_MEMORY_BLOCKS:
        case INFO_DONE:
                assert(false);
                break;
        }
        if (k < 0) {
                (void) qga_op_error_set(&s->error, c, k, "guest-file-read", NULL, NULL);
                return info_finish(s);
        }
        if (s->step == INFO_NODES_ONLINE || (s->step == INFO_NODE_CPULIST && s->node >= s->n_node_ids))
                s->step = INFO_DONE;
        info_next(s);
}

static void info_next(Info *s) {
        char path[96];
        int k;

        switch (s->step) {
        case INFO_OSINFO:
        case INFO_VCPUS:
        case INFO_MEMORY_BLOCK_INFO:
        case INFO_MEMORY_BLOCKS: {
                const char *command = info_commands[s->step];

                /* A command the agent says it lacks (or has disabled) is not sent. */
                if (qga_client_get_commands(s->client) && !qga_client_supports(s->client, command)) {
                        k = info_unavailable(s, command, "unavailable: the guest agent does not offer %s", command);
                        if (k < 0) {
                                (void) qga_op_error_set(&s->error, s->client, k, command, NULL, NULL);
                                return info_finish(s);
                        }
                        s->step++;
                        return info_next(s);
                }
                k = qga_client_execute(s->client, command, NULL, 0,
                                       s->step == INFO_MEMORY_BLOCKS ? INFO_MEMORY_BLOCKS_REPLY_MAX : 0,
                                       info_on_command, s);
                if (k < 0) {
                        (void) qga_op_error_set(&s->error, s->client, k, command, NULL, NULL);
                        info_finish(s);
                }
                return;
        }
        case INFO_NODES_ONLINE:
                return info_read(s, "/sys/devices/system/node/online", 4096);
        case INFO_NODE_CPULIST:
                (void) snprintf(path, sizeof(path), "/sys/devices/system/node/node%u/cpulist", s->node_ids[s->node]);
                return info_read(s, path, 64 * 1024);
        case INFO_NODE_MEMINFO:
                (void) snprintf(path, sizeof(path), "/sys/devices/system/node/node%u/meminfo", s->node_ids[s->node]);
                return info_read(s, path, 64 * 1024);
        case INFO_DONE:
                return info_finish(s);
        }
}

int qga_get_guest_info(QgaClient *c, QgaGuestInfoCallback cb, void *userdata) {
        Info *s;

        if (!c || !cb)
                return -EINVAL;

        s = calloc(1, sizeof(Info));
        if (!s)
                return -ENOMEM;
        s->client = qga_client_ref(c);
        s->callback = cb;
        s->userdata = userdata;
        if (!isempty(qga_client_get_version(c))) {
                s->info.agent_version = strdup(qga_client_get_version(c));
                if (!s->info.agent_version) {
                        qga_client_unref(s->client);
                        free(s);
                        return -ENOMEM;
                }
        }
        s->step = INFO_OSINFO;
        s->starting = true;
        info_next(s);
        if (s->start_error < 0) {
                int k = s->start_error;

                info_free(s);
                return k;
        }
        s->starting = false;
        return 0;
}
