/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* fake-qemu: a stand-in for qemu-system-x86_64 in the scale benchmark (bench/scale.py), small enough that a
 * thousand of them fit on a test machine (about 1 MiB of RSS each, no vCPU threads). It speaks QMP on the
 * listening socket memvisord passes on its command line (-chardev socket,id=qmp,fd=N,server=on) and answers
 * what memvisord asks of a guest it supervises:
 *
 *   qmp_capabilities, cont, stop, query-status (prelaunch with -S until cont), query-cpus-fast (one vCPU per
 *   -smp, all this process's thread), query-balloon / balloon (the -m size; a new target is reached at once,
 *   with BALLOON_CHANGE), qom-set/qom-get (balloon statistics: none yet), system_powerdown (POWERDOWN and
 *   SHUTDOWN events, then exit 0), quit (exit 0); anything else: a CommandNotFound error, as QEMU answers an unknown command.
 *
 * One monitor client at a time, as QEMU's chardev: a second connection is accepted once the first is gone
 * (memvisord re-adopting the guest after its own restart). Exits 0 on SIGTERM/SIGINT. */

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <json-c/json.h>

#define MAX_INPUT (1U << 20)

static int listen_fd = -1, conn_fd = -1;
static bool running = true;
static unsigned vcpus = 1;
static uint64_t memory_bytes = 128ULL << 20, balloon_bytes;
static char inbuf[MAX_INPUT];
static size_t inlen;

static void on_term(int sig) {
        _exit(0);
}

static void send_text(const char *s) {
        size_t n = strlen(s), off = 0;

        while (off < n) {
                ssize_t k = write(conn_fd, s + off, n - off);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return; /* the client went away: the read side notices */
                off += (size_t) k;
        }
        (void) !write(conn_fd, "\r\n", 2);
}

static void send_obj(json_object *o) {
        send_text(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        json_object_put(o);
}

static void send_event(const char *name, json_object *data) {
        struct timeval tv;
        json_object *o = json_object_new_object(), *ts = json_object_new_object();

        gettimeofday(&tv, NULL);
        json_object_object_add(ts, "seconds", json_object_new_int64(tv.tv_sec));
        json_object_object_add(ts, "microseconds", json_object_new_int64(tv.tv_usec));
        json_object_object_add(o, "timestamp", ts);
        json_object_object_add(o, "event", json_object_new_string(name));
        if (data)
                json_object_object_add(o, "data", data);
        send_obj(o);
}

static void reply(json_object *id, json_object *ret) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "return", ret ?: json_object_new_object());
        if (id)
                json_object_object_add(o, "id", json_object_get(id));
        send_obj(o);
}

static void reply_error(json_object *id, const char *class, const char *desc) {
        json_object *o = json_object_new_object(), *e = json_object_new_object();

        json_object_object_add(e, "class", json_object_new_string(class));
        json_object_object_add(e, "desc", json_object_new_string(desc));
        json_object_object_add(o, "error", e);
        if (id)
                json_object_object_add(o, "id", json_object_get(id));
        send_obj(o);
}

static void execute(json_object *cmd) {
        json_object *id = NULL, *exe = NULL, *args = NULL;
        const char *name;

        (void) json_object_object_get_ex(cmd, "id", &id);
        (void) json_object_object_get_ex(cmd, "arguments", &args);
        if (!json_object_object_get_ex(cmd, "execute", &exe) || !json_object_is_type(exe, json_type_string))
                return reply_error(id, "GenericError", "Expected 'execute'");
        name = json_object_get_string(exe);

        if (!strcmp(name, "qmp_capabilities"))
                reply(id, NULL);
        else if (!strcmp(name, "cont")) {
                running = true;
                reply(id, NULL);
                send_event("RESUME", NULL);
        } else if (!strcmp(name, "stop")) {
                running = false;
                reply(id, NULL);
                send_event("STOP", NULL);
        } else if (!strcmp(name, "query-status")) {
                json_object *r = json_object_new_object();
                json_object_object_add(r, "status", json_object_new_string(running ? "running" : "prelaunch"));
                json_object_object_add(r, "singlestep", json_object_new_boolean(false));
                json_object_object_add(r, "running", json_object_new_boolean(running));
                reply(id, r);
        } else if (!strcmp(name, "query-cpus-fast")) {
                json_object *a = json_object_new_array();
                for (unsigned i = 0; i < vcpus; i++) {
                        json_object *c = json_object_new_object();
                        char path[64];
                        snprintf(path, sizeof path, "/machine/unattached/device[%u]", i);
                        json_object_object_add(c, "cpu-index", json_object_new_int(i));
                        json_object_object_add(c, "thread-id", json_object_new_int(getpid()));
                        json_object_object_add(c, "qom-path", json_object_new_string(path));
                        json_object_object_add(c, "target", json_object_new_string("x86_64"));
                        json_object_array_add(a, c);
                }
                reply(id, a);
        } else if (!strcmp(name, "query-balloon")) {
                json_object *r = json_object_new_object();
                json_object_object_add(r, "actual", json_object_new_int64((int64_t) balloon_bytes));
                reply(id, r);
        } else if (!strcmp(name, "balloon")) {
                json_object *v = NULL;
                if (!args || !json_object_object_get_ex(args, "value", &v) || json_object_get_int64(v) <= 0)
                        return reply_error(id, "GenericError", "Parameter 'value' expects a positive size");
                balloon_bytes = (uint64_t) json_object_get_int64(v);
                if (balloon_bytes > memory_bytes)
                        balloon_bytes = memory_bytes;
                reply(id, NULL);
                json_object *d = json_object_new_object();
                json_object_object_add(d, "actual", json_object_new_int64((int64_t) balloon_bytes));
                send_event("BALLOON_CHANGE", d);
        } else if (!strcmp(name, "qom-set"))
                reply(id, NULL);        /* the balloon statistics polling interval */
        else if (!strcmp(name, "qom-get")) {
                json_object *r = json_object_new_object();
                json_object_object_add(r, "stats", json_object_new_object());
                json_object_object_add(r, "last-update", json_object_new_int(0));
                reply(id, r);
        } else if (!strcmp(name, "system_powerdown")) {
                reply(id, NULL);
                send_event("POWERDOWN", NULL);
                json_object *d = json_object_new_object();
                json_object_object_add(d, "guest", json_object_new_boolean(true));
                json_object_object_add(d, "reason", json_object_new_string("guest-shutdown"));
                send_event("SHUTDOWN", d);
                exit(0);
        } else if (!strcmp(name, "quit")) {
                reply(id, NULL);
                exit(0);
        } else {
                char desc[256];
                snprintf(desc, sizeof desc, "The command %.200s has not been found", name);
                reply_error(id, "CommandNotFound", desc);
        }
}

static void greet(void) {
        send_text("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "
                  "\"package\": \"fake-qemu\"}, \"capabilities\": [\"oob\"]}}");
}

/* Feeds the bytes read so far to a tokener, one top-level object at a time. */
static bool consume(void) {
        json_tokener *tok = json_tokener_new();
        size_t off = 0;

        while (off < inlen) {
                while (off < inlen && (inbuf[off] == ' ' || inbuf[off] == '\r' || inbuf[off] == '\n' ||
                                       inbuf[off] == '\t'))
                        off++;
                if (off == inlen)
                        break;
                json_tokener_reset(tok);
                json_object *o = json_tokener_parse_ex(tok, inbuf + off, (int) (inlen - off));
                enum json_tokener_error e = json_tokener_get_error(tok);
                if (e == json_tokener_continue)
                        break;
                if (e != json_tokener_success) {
                        json_tokener_free(tok);
                        return false;
                }
                off += (size_t) json_tokener_get_parse_end(tok);
                execute(o);
                json_object_put(o);
        }
        memmove(inbuf, inbuf + off, inlen - off);
        inlen -= off;
        json_tokener_free(tok);
        return true;
}

static uint64_t parse_size(const char *s) {
        char *end;
        uint64_t v;

        if (!strncmp(s, "size=", 5))
                s += 5;
        v = strtoull(s, &end, 10);
        switch (*end) {
        case 'G': case 'g': return v << 30;
        case 'M': case 'm': case '\0': return v << 20;
        case 'K': case 'k': return v << 10;
        default: return v << 20;
        }
}

int main(int argc, char *argv[]) {
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "-S"))
                        running = false;
                else if (!strcmp(argv[i], "-smp") && i + 1 < argc)
                        vcpus = (unsigned) strtoul(argv[i + 1], NULL, 10) ?: 1;
                else if (!strcmp(argv[i], "-m") && i + 1 < argc)
                        memory_bytes = parse_size(argv[i + 1]);
                else if (!strcmp(argv[i], "-chardev") && i + 1 < argc && strstr(argv[i + 1], "id=qmp")) {
                        const char *f = strstr(argv[i + 1], "fd=");
                        if (f)
                                listen_fd = atoi(f + 3);
                }
        }
        if (listen_fd < 0) {
                fprintf(stderr, "fake-qemu: no -chardev socket,id=qmp,fd=N on the command line\n");
                return 1;
        }
        balloon_bytes = memory_bytes;
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        signal(SIGPIPE, SIG_IGN);

        for (;;) {
                conn_fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (conn_fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        perror("fake-qemu: accept");
                        return 1;
                }
                inlen = 0;
                greet();
                for (;;) {
                        ssize_t n = read(conn_fd, inbuf + inlen, sizeof inbuf - inlen);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n <= 0)
                                break;
                        inlen += (size_t) n;
                        if (!consume() || inlen == sizeof inbuf)
                                break;
                }
                close(conn_fd);
                conn_fd = -1;
        }
}
