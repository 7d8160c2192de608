/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* For test-qga-ops.c and test-qga-exec.c: the typed guest operations (qga-ops.h) against a fake agent on the other end of a socketpair, in the same loop:
 * it answers guest-sync-delimited (0xFF + reply) and guest-info like qemu-ga, serves files from a table
 * (guest-file-open/read/write/close with handles), the information commands, guest-get-time, and runs scripted
 * "programs" for guest-exec/guest-exec-status. Faults are injected per command: an agent error on the Nth call,
 * silence (a client timeout), a malformed reply, a closed connection. Every test checks that the callback ran
 * exactly once and that every handle opened was closed. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/socket.h>

#include "basic/base64.h"
#include "basic/buffer.h"
#include "basic/fileio.h"
#include "basic/json-util.h"
#include "basic/strv.h"
#include "qga/qga-client-internal.h"
#include "qga/qga-ops.h"

#define MAX_FILES 16
#define MAX_HANDLES 8
#define MAX_PROCS 8

typedef struct FakeFile {
        char *path;
        char *content;
        size_t size;
} FakeFile;

typedef struct FakeHandle {
        int64_t id;
        FakeFile *file;
        size_t offset;
        bool write;
} FakeHandle;

typedef struct FakeProc {
        int64_t pid;
        char *path;
        char **args;
        int polls_left;                 /* guest-exec-status answers "exited": false this many times; <0: forever */
        int exit_code, signal;          /* signal != 0: killed by it */
        char *out, *err;
        size_t out_size, err_size;
        bool out_truncated;
        bool reaped;
} FakeProc;

typedef struct Fake {
        sd_event *event;
        int fd;
        sd_event_source *io;
        ByteBuffer in, out;
        bool closed;

        FakeFile files[MAX_FILES];
        size_t n_files;
        FakeHandle handles[MAX_HANDLES];
        int64_t next_handle;
        unsigned opens, closes, writes;
        size_t max_write_chunk;

        FakeProc procs[MAX_PROCS];
        size_t n_procs;
        int64_t next_pid;
        bool no_kill;                   /* the guest has no kill program */

        /* Faults: the command named fail_command fails (agent error) on its fail_nth call (1-based); silent_command
         * is never answered; garbage_command is answered with a malformed "return"; hangup_command closes the
         * connection instead of answering. */
        const char *fail_command;
        unsigned fail_nth, fail_seen;
        const char *fail_class;
        const char *silent_command;
        const char *garbage_command;
        const char *hangup_command;
        char **unsupported;             /* not in guest-info's list, answered with CommandNotFound */
        bool short_write;

        char **log;                     /* every command, in order */
} Fake;

typedef struct Result {
        unsigned calls;
        int error;
        char *command, *error_class, *description;
        char *data;
        size_t size;
        bool truncated;
        QgaGuestCounters counters;      /* a copy of what is checked */
        size_t n_vmstat, n_meminfo, n_unavailable;
        char **unavailable;             /* "name: reason" */
        QgaGuestInfo info;
        QgaExecResult exec;
        uint64_t bytes_written;
} Result;

static Fake fake _unused_;
static QgaClient *client _unused_;
static sd_event *event _unused_;

/* ---- the fake agent ---- */

static inline void fake_send(const char *text, size_t n) {
        assert_int_equal(byte_buffer_append(&fake.out, text, n, SIZE_MAX), 0);
        (void) sd_event_source_set_io_events(fake.io, EPOLLIN | EPOLLOUT);
}

static inline void fake_reply(json_object *id, json_object *ret) {
        _cleanup_json_ json_object *m = json_object_new_object();
        const char *text;
        size_t n;

        assert_non_null(m);
        assert_int_equal(json_add(m, "return", ret), 0);
        if (id)
                assert_int_equal(json_add(m, "id", json_object_get(id)), 0);
        text = json_to_plain(m, &n);
        fake_send(text, n);
        fake_send("\n", 1);
}

static inline void fake_error(json_object *id, const char *cls, const char *desc) {
        _cleanup_json_ json_object *m = json_object_new_object(), *e = json_object_new_object();
        const char *text;
        size_t n;

        assert_int_equal(json_add_string(e, "class", cls), 0);
        assert_int_equal(json_add_string(e, "desc", desc), 0);
        assert_int_equal(json_add(m, "error", TAKE_PTR(e)), 0);
        if (id)
                assert_int_equal(json_add(m, "id", json_object_get(id)), 0);
        text = json_to_plain(m, &n);
        fake_send(text, n);
        fake_send("\n", 1);
}

static inline FakeFile *fake_file(const char *path) {
        for (size_t i = 0; i < fake.n_files; i++)
                if (streq(fake.files[i].path, path))
                        return &fake.files[i];
        return NULL;
}

static inline void fake_add_file(const char *path, const char *content, size_t size) {
        FakeFile *f = fake_file(path);

        if (!f) {
                assert_true(fake.n_files < MAX_FILES);
                f = &fake.files[fake.n_files++];
                f->path = strdup(path);
        }
        free(f->content);
        f->content = malloc(size + 1);
        memcpy(f->content, content, size);
        f->content[size] = 0;
        f->size = size;
}

static inline void fake_add_sample(const char *path, const char *sample) {
        _cleanup_free_ char *p = NULL, *text = NULL;
        size_t size;

        assert_true(asprintf(&p, "%s/%s", QGA_PARSE_CORPUS, sample) > 0);
        assert_int_equal(read_full_file(p, 1024 * 1024, &text, &size), 0);
        fake_add_file(path, text, size);
}

static inline FakeHandle *fake_handle(json_object *args) {
        json_object *h;

        if (!json_object_object_get_ex(args, "handle", &h))
                return NULL;
        for (size_t i = 0; i < MAX_HANDLES; i++)
                if (fake.handles[i].file && fake.handles[i].id == json_object_get_int64(h))
                        return &fake.handles[i];
        return NULL;
}

static inline FakeProc *fake_proc(int64_t pid) {
        for (size_t i = 0; i < fake.n_procs; i++)
                if (fake.procs[i].pid == pid)
                        return &fake.procs[i];
        return NULL;
}

static inline json_object *b64_string(const char *p, size_t n) {
        _cleanup_free_ char *e = base64_encode(p, n);

        return json_object_new_string(e);
}

/* A "program": what it does depends on its name. */
static inline void fake_spawn(FakeProc *p, json_object *args) {
        json_object *arg, *input;
        char **a = p->args;

        p->exit_code = 0;
        if (streq(p->path, "echo")) {
                _cleanup_free_ char *line = NULL;

                assert_true(asprintf(&line, "%s\n", a && a[0] ? a[0] : "") > 0);
                p->out = strdup(line);
                p->out_size = strlen(line);
                p->polls_left = 2;
        } else if (streq(p->path, "cat")) {
                _cleanup_free_ char *d = NULL;
                size_t n = 0;

                if (json_object_object_get_ex(args, "input-data", &input))
                        assert_int_equal(base64_decode(json_object_get_string(input),
                                                       (size_t) json_object_get_string_len(input), SIZE_MAX, &d, &n), 0);
                p->out = d ? TAKE_PTR(d) : strdup("");
                p->out_size = n;
                p->polls_left = 0;
        } else if (streq(p->path, "false")) {
                p->exit_code = 3;
                p->err = strdup("it failed\n");
                p->err_size = strlen(p->err);
        } else if (streq(p->path, "segv")) {
                p->signal = 11;
        } else if (streq(p->path, "sleep")) {
                p->polls_left = -1;
                p->out = strdup("partial");
                p->out_size = 7;
        } else if (streq(p->path, "yes")) {
                /* 100 000 bytes of output, the agent's own truncation flag set. */
                p->out_size = 100000;
                p->out = malloc(p->out_size);
                memset(p->out, 'y', p->out_size);
                p->out_truncated = true;
        } else if (streq(p->path, "env")) {
                _cleanup_free_ char *s = NULL;
                json_object *env;

                assert_true(json_object_object_get_ex(args, "env", &env));
                s = strdup(json_object_get_string(json_object_array_get_idx(env, 0)));
                p->out_size = strlen(s);
                p->out = TAKE_PTR(s);
        } else if (streq(p->path, "kill")) {
                FakeProc *t;

                assert_non_null(a);
                assert_string_equal(a[0], "-KILL");
                t = fake_proc(strtoll(a[1], NULL, 10));
                if (t && t->polls_left != 0 && t->signal == 0) {
                        t->polls_left = 0;
                        t->signal = 9;
                } else {
                        p->exit_code = 1;
                        p->err = strdup("kill: no such process\n");
                        p->err_size = strlen(p->err);
                }
                p->polls_left = 1;
        } else if (streq(p->path, "chmod")) {
                FakeFile *f;

                assert_non_null(a);
                f = a[1] ? fake_file(a[1]) : NULL;
                if (!f) {
                        p->exit_code = 1;
                        p->err = strdup("chmod: no such file\n");
                        p->err_size = strlen(p->err);
                }
        }
        (void) arg;
}

static inline void fake_command(json_object *m) {
        json_object *id = NULL, *args = NULL, *v;
        const char *name;

        assert_true(json_object_object_get_ex(m, "execute", &v));
        name = json_object_get_string(v);
        (void) json_object_object_get_ex(m, "id", &id);
        (void) json_object_object_get_ex(m, "arguments", &args);

        if (streq(name, "guest-sync-delimited")) {
                _cleanup_json_ json_object *r = NULL;
                const char *text;
                size_t n;

                assert_true(json_object_object_get_ex(args, "id", &v));
                r = json_object_new_object();
                assert_int_equal(json_add(r, "return", json_object_get(v)), 0);
                text = json_to_plain(r, &n);
                fake_send("\xff", 1);
                fake_send(text, n);
                fake_send("\n", 1);
                return;
        }
        if (streq(name, "guest-info")) {
                static const char *const all[] = { "guest-sync-delimited", "guest-info", "guest-file-open",
                                                   "guest-file-read", "guest-file-write", "guest-file-close",
                                                   "guest-get-osinfo", "guest-get-vcpus", "guest-get-memory-blocks",
                                                   "guest-get-memory-block-info", "guest-get-time", "guest-exec",
                                                   "guest-exec-status" };
                json_object *r = json_object_new_object(), *l = json_object_new_array();

                for (size_t i = 0; i < ELEMENTSOF(all); i++) {
                        json_object *e;

                        if (strv_contains(fake.unsupported, all[i]))
                                continue;
                        e = json_object_new_object();
                        json_add_string(e, "name", all[i]);
                        json_add_bool(e, "enabled", true);
                        json_add_bool(e, "success-response", true);
                        json_object_array_add(l, e);
                }
                json_add_string(r, "version", "7.2.0");
                json_add(r, "supported_commands", l);
                return fake_reply(id, r);
        }

        assert_int_equal(strv_extend(&fake.log, name), 0);

        if (fake.hangup_command && streq(name, fake.hangup_command)) {
                fake.closed = true;
                fake.io = sd_event_source_disable_unref(fake.io);
                fake.fd = safe_close(fake.fd);
                return;
        }
        if (fake.silent_command && streq(name, fake.silent_command))
                return;
        if (fake.fail_command && streq(name, fake.fail_command) && ++fake.fail_seen == fake.fail_nth)
                return fake_error(id, fake.fail_class ?: "GenericError", "injected failure");
        if (strv_contains(fake.unsupported, name))
                return fake_error(id, "CommandNotFound", "The command has not been found");
        if (fake.garbage_command && streq(name, fake.garbage_command)) {
                json_object *r = json_object_new_object();

                json_add_string(r, "buf-b64", "!!not base64!!");
                json_add_int(r, "count", 3);
                json_add_bool(r, "eof", true);
                json_add_string(r, "pid", "twelve");
                json_add_string(r, "exited", "maybe");
                return fake_reply(id, r);
        }

        if (streq(name, "guest-file-open")) {
                const char *path = json_object_get_string(json_object_object_get(args, "path"));
                const char *mode = json_object_get_string(json_object_object_get(args, "mode"));
                FakeFile *f = fake_file(path);

                if (mode && streq(mode, "w")) {
                        fake_add_file(path, "", 0);
                        f = fake_file(path);
                }
                if (!f)
                        return fake_error(id, "GenericError", "failed to open file: No such file or directory");
                for (size_t i = 0; i < MAX_HANDLES; i++)
                        if (!fake.handles[i].file) {
                                fake.handles[i] = (FakeHandle) { .id = ++fake.next_handle + 1000, .file = f,
                                                                 .write = mode && streq(mode, "w") };
                                fake.opens++;
                                return fake_reply(id, json_object_new_int64(fake.handles[i].id));
                        }
                fail();
        }
        if (streq(name, "guest-file-read")) {
                FakeHandle *h = fake_handle(args);
                json_object *r = json_object_new_object();
                size_t count = (size_t) json_object_get_int64(json_object_object_get(args, "count")), n;

                assert_non_null(h);
                assert_true(count <= 48 * 1024 + 1);
                n = MIN(count, h->file->size - h->offset);
                json_add_int(r, "count", (int64_t) n);
                json_add(r, "buf-b64", b64_string(h->file->content + h->offset, n));
                h->offset += n;
                json_add_bool(r, "eof", h->offset >= h->file->size && n < count);
                return fake_reply(id, r);
        }
        if (streq(name, "guest-file-write")) {
                FakeHandle *h = fake_handle(args);
                json_object *r = json_object_new_object();
                _cleanup_free_ char *d = NULL;
                json_object *b = json_object_object_get(args, "buf-b64");
                size_t n;

                assert_non_null(h);
                assert_true(h->write);
                assert_int_equal(base64_decode(json_object_get_string(b), (size_t) json_object_get_string_len(b),
                                               SIZE_MAX, &d, &n), 0);
                assert_int_equal(json_object_get_int64(json_object_object_get(args, "count")), (int64_t) n);
                fake.max_write_chunk = MAX(fake.max_write_chunk, n);
                fake.writes++;
                if (fake.short_write && n > 10)
                        n = 10;
                h->file->content = realloc(h->file->content, h->file->size + n + 1);
                memcpy(h->file->content + h->file->size, d, n);
                h->file->size += n;
                json_add_int(r, "count", (int64_t) n);
                json_add_bool(r, "eof", false);
                return fake_reply(id, r);
        }
        if (streq(name, "guest-file-close")) {
                FakeHandle *h = fake_handle(args);

                if (!h)
                        return fake_error(id, "GenericError", "handle not found");
                *h = (FakeHandle) {};
                fake.closes++;
                return fake_reply(id, json_object_new_object());
        }
        if (streq(name, "guest-get-time"))
                return fake_reply(id, json_object_new_int64(INT64_C(1733338000123456789)));
        if (streq(name, "guest-get-osinfo")) {
                json_object *r = json_object_new_object();

                json_add_string(r, "id", "debian");
                json_add_string(r, "name", "Debian GNU/Linux");
                json_add_string(r, "pretty-name", "Debian GNU/Linux 12 (bookworm)");
                json_add_string(r, "version", "12 (bookworm)");
                json_add_string(r, "version-id", "12");
                json_add_string(r, "kernel-release", "6.1.0-57-amd64");
                json_add_string(r, "kernel-version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3");
                json_add_string(r, "machine", "x86_64");
                return fake_reply(id, r);
        }
        if (streq(name, "guest-get-vcpus")) {
                json_object *r = json_object_new_array();

                for (int i = 0; i < 3; i++) {
                        json_object *e = json_object_new_object();

                        json_add_int(e, "logical-id", i);
                        json_add_bool(e, "online", i != 2);
                        json_add_bool(e, "can-offline", i != 0);
                        json_object_array_add(r, e);
                }
                return fake_reply(id, r);
        }
        if (streq(name, "guest-get-memory-block-info")) {
                json_object *r = json_object_new_object();

                json_add_int(r, "size", 128 * 1024 * 1024);
                return fake_reply(id, r);
        }
        if (streq(name, "guest-get-memory-blocks")) {
                json_object *r = json_object_new_array();

                for (int i = 0; i < 16; i++) {
                        json_object *e = json_object_new_object();

                        json_add_int(e, "phys-index", i);
                        json_add_bool(e, "online", i < 15);
                        json_object_array_add(r, e);
                }
                return fake_reply(id, r);
        }
        if (streq(name, "guest-exec")) {
                const char *path = json_object_get_string(json_object_object_get(args, "path"));
                json_object *a, *r;
                FakeProc *p;

                assert_true(json_object_get_boolean(json_object_object_get(args, "capture-output")));
                if (streq(path, "missing") || (fake.no_kill && streq(path, "kill")))
                        return fake_error(id, "GenericError",
                                          "Guest agent command failed, error was 'Failed to execute child process "
                                          "“missing” (No such file or directory)'");
                assert_true(fake.n_procs < MAX_PROCS);
                p = &fake.procs[fake.n_procs++];
                *p = (FakeProc) { .pid = ++fake.next_pid + 400, .path = strdup(path) };
                if (json_object_object_get_ex(args, "arg", &a))
                        for (size_t i = 0; i < json_object_array_length(a); i++)
                                strv_extend(&p->args, json_object_get_string(json_object_array_get_idx(a, i)));
                fake_spawn(p, args);
                r = json_object_new_object();
                json_add_int(r, "pid", p->pid);
                return fake_reply(id, r);
        }
        if (streq(name, "guest-exec-status")) {
                FakeProc *p = fake_proc(json_object_get_int64(json_object_object_get(args, "pid")));
                json_object *r;

                if (!p || p->reaped)
                        return fake_error(id, "GenericError", "Invalid parameter 'pid'");
                r = json_object_new_object();
                if (p->polls_left != 0) {
                        if (p->polls_left > 0)
                                p->polls_left--;
                        json_add_bool(r, "exited", false);
                        return fake_reply(id, r);
                }
                p->reaped = true;
                json_add_bool(r, "exited", true);
                if (p->signal)
                        json_add_int(r, "signal", p->signal);
                else
                        json_add_int(r, "exitcode", p->exit_code);
                if (p->out_size > 0)
                        json_add(r, "out-data", b64_string(p->out, p->out_size));
                if (p->err_size > 0)
                        json_add(r, "err-data", b64_string(p->err, p->err_size));
                if (p->out_truncated)
                        json_add_bool(r, "out-truncated", true);
                return fake_reply(id, r);
        }
        fail_msg("unexpected command %s", name);
}

static inline void tokener_freep(json_tokener **t) {
        if (*t)
                json_tokener_free(*t);
}

static inline void fake_process_input(void) {
        for (;;) {
                _cleanup_(tokener_freep) json_tokener *tok = NULL;
                _cleanup_json_ json_object *m = NULL;
                const char *p = byte_buffer_head(&fake.in);
                size_t n = byte_buffer_size(&fake.in), skip = 0;

                while (skip < n && (p[skip] == '\xff' || p[skip] == '\n' || p[skip] == ' '))
                        skip++;
                byte_buffer_consume(&fake.in, skip);
                p = byte_buffer_head(&fake.in);
                n = byte_buffer_size(&fake.in);
                if (n == 0)
                        return;

                tok = json_tokener_new();
                m = json_tokener_parse_ex(tok, p, (int) n);
                if (!m) {
                        assert_int_equal(json_tokener_get_error(tok), json_tokener_continue);
                        return;
                }
                byte_buffer_consume(&fake.in, json_tokener_get_parse_end(tok));
                fake_command(m);
                if (fake.closed)
                        return;
        }
}

static inline int fake_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        if (revents & EPOLLIN) {
                char *p = byte_buffer_reserve(&fake.in, 65536, SIZE_MAX);
                ssize_t n = recv(fd, p, 65536, MSG_DONTWAIT);

                if (n > 0) {
                        byte_buffer_commit(&fake.in, (size_t) n);
                        fake_process_input();
                        if (fake.closed)
                                return 0;
                }
        }
        if (byte_buffer_size(&fake.out) > 0) {
                ssize_t n = send(fd, byte_buffer_head(&fake.out), byte_buffer_size(&fake.out),
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n > 0)
                        byte_buffer_consume(&fake.out, (size_t) n);
        }
        if (byte_buffer_size(&fake.out) == 0)
                (void) sd_event_source_set_io_events(fake.io, EPOLLIN);
        return 0;
}

/* ---- the harness ---- */

static inline int setup(void **state) {
        int pair[2];

        fake = (Fake) {};
        if (*state)
                assert_int_equal(strv_extend(&fake.unsupported, *state), 0);
        assert_int_equal(sd_event_new(&event), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
        fake.fd = pair[1];
        assert_int_equal(sd_event_add_io(event, &fake.io, fake.fd, EPOLLIN, fake_on_io, NULL), 0);
        assert_int_equal(qga_client_new_fd(&client, event, pair[0]), 0);
        qga_client_set_timeouts(client, 500 * USEC_PER_MSEC, 0, 0);

        /* Ready: synced, guest-info answered. */
        for (unsigned i = 0; i < 1000 && qga_client_get_state(client) != QGA_STATE_READY; i++)
                assert_true(sd_event_run(event, 100 * USEC_PER_MSEC) >= 0);
        assert_int_equal(qga_client_get_state(client), QGA_STATE_READY);
        return 0;
}

static inline int teardown(void **state) {
        client = qga_client_unref(client);
        fake.io = sd_event_source_disable_unref(fake.io);
        fake.fd = safe_close(fake.fd);
        byte_buffer_done(&fake.in);
        byte_buffer_done(&fake.out);
        for (size_t i = 0; i < fake.n_files; i++) {
                free(fake.files[i].path);
                free(fake.files[i].content);
        }
        for (size_t i = 0; i < fake.n_procs; i++) {
                free(fake.procs[i].path);
                strv_free(fake.procs[i].args);
                free(fake.procs[i].out);
                free(fake.procs[i].err);
        }
        strv_free(fake.log);
        strv_free(fake.unsupported);
        event = sd_event_unref(event);
        return 0;
}

/* Runs the loop until the result has its callback (at most timeout), then a little more so a second callback
 * would be seen. */
static inline void wait_for(Result *r, uint64_t timeout_usec) {
        for (uint64_t waited = 0; r->calls == 0 && waited < timeout_usec; waited += 10 * USEC_PER_MSEC)
                assert_true(sd_event_run(event, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(r->calls, 1);
        for (unsigned i = 0; i < 20; i++)
                assert_true(sd_event_run(event, 5 * USEC_PER_MSEC) >= 0);
        assert_int_equal(r->calls, 1);
}

static inline void result_error(Result *r, const QgaError *e) {
        r->calls++;
        if (!e)
                return;
        assert_true(e->error < 0);
        assert_non_null(e->description);
        r->error = e->error;
        r->command = e->command ? strdup(e->command) : NULL;
        r->error_class = e->error_class ? strdup(e->error_class) : NULL;
        r->description = strdup(e->description);
}

static inline void result_done(Result *r) {
        free(r->command);
        free(r->error_class);
        free(r->description);
        free(r->data);
        strv_free(r->unavailable);
        free(r->exec.out);
        free(r->exec.err);
        free(r->exec.kill_error);
        qga_guest_info_done(&r->info);
        *r = (Result) {};
}

static inline bool log_contains(const char *command) {
        return strv_contains(fake.log, command);
}

static inline unsigned log_count(const char *command) {
        unsigned n = 0;

        for (char **s = fake.log; s && *s; s++)
                n += streq(*s, command);
        return n;
}

