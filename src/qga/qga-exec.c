/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Running a program in the guest: guest-exec with captured output, then guest-exec-status polled (every 50 ms at
 * first, doubling up to 500 ms) until the program exited or the timeout passed. On a timeout the program is killed
 * with another guest-exec, of "kill -KILL PID" (qemu-ga spawns with G_SPAWN_SEARCH_PATH, so the bare name is
 * looked up in the agent's PATH; coreutils and busybox both provide it), that kill is waited for (at most
 * KILL_WAIT_USEC), and then the program's own status is polled a little longer (REAP_WAIT_USEC) so that its
 * output and its death by SIGKILL are reported and the agent forgets it.
 *
 * While the program runs, each of these commands may take as long as the program has left, at least the client's
 * default and at most EXEC_COMMAND_TIMEOUT_MAX_USEC: an agent in a busy guest (under memory pressure, its pages
 * being migrated under nested TCG) was seen to take more than QGA_DEFAULT_TIMEOUT_USEC to answer; the upper bound
 * keeps a hung agent from holding the channel (commands go one at a time) much longer than before.
 *
 * The agent holds up to 16 MiB per stream (GUEST_EXEC_MAX_OUTPUT in qemu's qga/commands.c) and returns it, base64,
 * in one guest-exec-status reply: that command gets a reply bound of its own. Only max_output bytes of each
 * stream are decoded and kept. */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "basic/base64.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "qga/qga-op.h"

#define EXEC_TIMEOUT_DEFAULT_USEC (60U * USEC_PER_SEC)
#define EXEC_OUTPUT_DEFAULT (1U * 1024U * 1024U)
#define EXEC_OUTPUT_MAX (16U * 1024U * 1024U)
#define EXEC_INPUT_MAX (2U * 1024U * 1024U)       /* base64 in one command: the client sends at most 4 MiB */
#define EXEC_ARGS_MAX 4096U
#define POLL_FIRST_USEC (50U * USEC_PER_MSEC)
#define POLL_MAX_USEC (500U * USEC_PER_MSEC)
#define KILL_WAIT_USEC (5U * USEC_PER_SEC)
#define REAP_WAIT_USEC (2U * USEC_PER_SEC)
#define REAP_POLL_USEC (100U * USEC_PER_MSEC)
/* Both streams at qemu-ga's bound, base64, and the rest of the reply. */
#define EXEC_COMMAND_TIMEOUT_MAX_USEC (30U * USEC_PER_SEC)
#define STATUS_REPLY_MAX (2U * 22369624U + 64U * 1024U)

typedef enum ExecPhase {
        PHASE_RUN,                      /* polling the program */
        PHASE_KILL,                     /* polling "kill -KILL PID" */
        PHASE_REAP,                     /* polling the killed program once more */
} ExecPhase;

typedef struct Exec {
        QgaClient *client;
        QgaExecCallback callback;
        void *userdata;
        uint64_t timeout_usec;
        size_t max_output;

        ExecPhase phase;
        uint64_t start, deadline, phase_deadline;
        uint64_t interval;
        int64_t kill_pid;
        sd_event_source *timer;

        QgaExecResult result;
        QgaOpError error;
} Exec;

static void exec_finish(Exec *s) {
        QgaError view = qga_op_error_view(&s->error);

        s->timer = sd_event_source_disable_unref(s->timer);
        if (s->result.duration_usec == 0)
                s->result.duration_usec = qga_now(CLOCK_MONOTONIC) - s->start;
        if (!s->result.out)
                s->result.out = strdup("");
        if (!s->result.err)
                s->result.err = strdup("");
        if (s->error.error == 0 && (!s->result.out || !s->result.err))
                (void) qga_op_error_set(&s->error, s->client, -ENOMEM, NULL, NULL, NULL);

        view = qga_op_error_view(&s->error);
        s->callback(s->client, s->error.error != 0 ? &view : NULL, s->error.error != 0 ? NULL : &s->result,
                    s->userdata);

        free(s->result.out);
        free(s->result.err);
        free(s->result.kill_error);
        qga_op_error_done(&s->error);
        qga_client_unref(s->client);
        free(s);
}

/* Decodes at most max bytes of a base64 stream; *truncated when there was more. The part beyond what is kept is
 * not decoded (and so not checked). */
static int decode_output(json_object *status, const char *key, size_t max, char **ret, size_t *ret_size,
                         bool *truncated) {
        _cleanup_free_ char *out = NULL;
        const char *b64;
        size_t l, keep, n;
        json_object *v;
        int k;

        if (!json_object_object_get_ex(status, key, &v)) {
                *ret = NULL;
                *ret_size = 0;
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        b64 = json_object_get_string(v);
        l = (size_t) json_object_get_string_len(v);

        keep = base64_encoded_size(max);                /* a multiple of 4 */
        if (l > keep) {
                l = keep;
                *truncated = true;
        }
        k = base64_decode(b64, l, keep / 4 * 3, &out, &n);
        if (k == -EINVAL)
                return -EBADMSG;
        if (k < 0)
                return k;
        if (n > max) {
                n = max;
                out[n] = 0;
                *truncated = true;
        }
        *ret = TAKE_PTR(out);
        *ret_size = n;
        return 0;
}

/* guest-exec-status: {"exited", "exitcode", "signal", "out-data", "err-data", "out-truncated", "err-truncated"}.
 * Fills r when exited. Returns 1 exited, 0 still running, -EBADMSG. */
static int parse_status(json_object *status, size_t max_output, QgaExecResult *r) {
        json_object *v;
        int64_t code = 0, sig = 0;
        bool exited, have_code, have_signal, t;
        int k;

        if (qga_json_bool(status, "exited", &exited) < 0)
                return -EBADMSG;
        if (!exited)
                return 0;

        have_code = json_object_object_get_ex(status, "exitcode", &v);
        if (have_code && qga_json_int(status, "exitcode", INT32_MIN, INT32_MAX, &code) < 0)
                return -EBADMSG;
        have_signal = json_object_object_get_ex(status, "signal", &v);
        if (have_signal && qga_json_int(status, "signal", 1, 255, &sig) < 0)
                return -EBADMSG;
        if (have_code == have_signal)
                return -EBADMSG;        /* exactly one of them */

        free(r->out);
        free(r->err);
        r->out = r->err = NULL;
        r->out_truncated = r->err_truncated = false;
        k = decode_output(status, "out-data", max_output, &r->out, &r->out_size, &r->out_truncated);
        if (k >= 0)
                k = decode_output(status, "err-data", max_output, &r->err, &r->err_size, &r->err_truncated);
        if (k < 0)
                return k;
        if (json_object_object_get_ex(status, "out-truncated", &v)) {
                if (qga_json_bool(status, "out-truncated", &t) < 0)
                        return -EBADMSG;
                r->out_truncated = r->out_truncated || t;
        }
        if (json_object_object_get_ex(status, "err-truncated", &v)) {
                if (qga_json_bool(status, "err-truncated", &t) < 0)
                        return -EBADMSG;
                r->err_truncated = r->err_truncated || t;
        }

        r->exited = have_code;
        r->exit_code = (int) code;
        r->signal = (int) sig;
        return 1;
}

static int exec_status_send(Exec *s);
static void exec_reap(Exec *s);

static int exec_arm(Exec *s, uint64_t delay);

static void exec_kill_done(Exec *s, const char *error, ...) _printf_(2, 3);
static void exec_kill_done(Exec *s, const char *error, ...) {
        if (error) {
                va_list ap;

                va_start(ap, error);
                if (vasprintf(&s->result.kill_error, error, ap) < 0)
                        s->result.kill_error = NULL;
                va_end(ap);
                if (!s->result.kill_error) {
                        (void) qga_op_error_set(&s->error, s->client, -ENOMEM, NULL, NULL, NULL);
                        return exec_finish(s);
                }
        } else
                s->result.killed = true;
        exec_reap(s);
}

static void exec_on_status(QgaClient *c, int error, json_object *result, const char *error_class,
                           const char *error_desc, void *userdata) {
        Exec *s = userdata;
        QgaExecResult kill_result = {};
        uint64_t now = qga_now(CLOCK_MONOTONIC);
        int k;

        if (error < 0) {
                if (s->phase == PHASE_KILL && error == -EIO)
                        return exec_kill_done(s, "%s of kill failed: %s: %s",
                                              s->kill_pid == 0 ? "guest-exec" : "guest-exec-status",
                                              strna(error_class), strna(error_desc));
                (void) qga_op_error_set(&s->error, c, error, "guest-exec-status", error_class, error_desc);
                return exec_finish(s);
        }

        switch (s->phase) {
        case PHASE_RUN:
        case PHASE_REAP:
                k = parse_status(result, s->max_output, &s->result);
                if (k < 0) {
                        (void) qga_op_error_setf(&s->error, k, "guest-exec-status",
                                                 "the agent's reply to guest-exec-status is malformed");
                        return exec_finish(s);
                }
                if (k > 0) {
                        s->result.duration_usec = now - s->start;
                        return exec_finish(s);
                }
                if (s->phase == PHASE_REAP) {
                        if (now >= s->phase_deadline)
                                return exec_finish(s);  /* killed (or not), but not reported gone: say so */
                        break;
                }
                if (now >= s->deadline) {
                        _cleanup_json_ json_object *args = NULL, *arg = NULL;
                        char pid[32];

                        /* Timed out: kill it. */
                        s->result.timed_out = true;
                        s->phase = PHASE_KILL;
                        (void) snprintf(pid, sizeof(pid), "%" PRIi64, s->result.pid);
                        args = json_object_new_object();
                        arg = json_object_new_array();
                        if (!args || !arg || json_object_array_add(arg, json_object_new_string("-KILL")) < 0 ||
                            json_object_array_add(arg, json_object_new_string(pid)) < 0 ||
                            json_add_string(args, "path", "kill") < 0 || json_add(args, "arg", TAKE_PTR(arg)) < 0 ||
                            json_add_bool(args, "capture-output", true) < 0) {
                                (void) qga_op_error_set(&s->error, c, -ENOMEM, "guest-exec", NULL, NULL);
                                return exec_finish(s);
                        }
                        k = qga_client_execute(c, "guest-exec", TAKE_PTR(args), 0, 0, exec_on_status, s);
                        if (k < 0) {
                                (void) qga_op_error_set(&s->error, c, k, "guest-exec", NULL, NULL);
                                return exec_finish(s);
                        }
                        s->kill_pid = 0;
                        return;
                }
                s->interval = MIN(s->interval * 2, (uint64_t) POLL_MAX_USEC);
                break;

        case PHASE_KILL:
                if (s->kill_pid == 0) {         /* the reply to guest-exec of kill */
                        int64_t pid;

                        if (qga_json_int(result, "pid", 1, INT64_MAX, &pid) < 0)
                                return exec_kill_done(s, "the agent's reply to guest-exec of kill is malformed");
                        s->kill_pid = pid;
                        s->phase_deadline = now + KILL_WAIT_USEC;
                        break;
                }
                k = parse_status(result, 4096, &kill_result);
                if (k < 0) {
                        free(kill_result.out);
                        free(kill_result.err);
                        return exec_kill_done(s, "the agent's reply to guest-exec-status of kill is malformed");
                }
                if (k > 0) {
                        _cleanup_free_ char *err = kill_result.err;

                        free(kill_result.out);

                        if (kill_result.exited && kill_result.exit_code == 0)
                                return exec_kill_done(s, NULL);
                        return exec_kill_done(s, "kill -KILL %" PRIi64 " in the guest failed (%s %d): %s",
                                              s->result.pid, kill_result.exited ? "exit status" : "signal",
                                              kill_result.exited ? kill_result.exit_code : kill_result.signal,
                                              err && *err ? err : "no output");
                }
                if (now >= s->phase_deadline)
                        return exec_kill_done(s, "kill -KILL %" PRIi64 " in the guest did not finish within %u s",
                                              s->result.pid, (unsigned) (KILL_WAIT_USEC / USEC_PER_SEC));
                break;
        }

        k = exec_arm(s, s->phase == PHASE_RUN ? s->interval : s->phase == PHASE_KILL ? POLL_FIRST_USEC : REAP_POLL_USEC);
        if (k < 0) {
                (void) qga_op_error_set(&s->error, c, k, NULL, NULL, NULL);
                exec_finish(s);
        }
}

static int exec_on_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        Exec *s = userdata;
        int k;

        s->timer = sd_event_source_disable_unref(s->timer);
        k = exec_status_send(s);
        if (k < 0) {
                (void) qga_op_error_set(&s->error, s->client, k, "guest-exec-status", NULL, NULL);
                exec_finish(s);
        }
        return 0;
}

static int exec_arm(Exec *s, uint64_t delay) {
        sd_event *e = qga_client_get_event(s->client);

        if (s->phase == PHASE_RUN && s->deadline > qga_now(CLOCK_MONOTONIC))
                delay = MIN(delay, s->deadline - qga_now(CLOCK_MONOTONIC));
        return sd_event_add_time_relative(e, &s->timer, CLOCK_MONOTONIC, delay, 0, exec_on_timer, s);
}

/* The timeout of a guest-exec or guest-exec-status of the program: what it has left, within the bounds above. */
static uint64_t exec_command_timeout(const Exec *s) {
        uint64_t now = qga_now(CLOCK_MONOTONIC);

        if (s->phase != PHASE_RUN || s->deadline <= now)
                return 0;
        return MIN(MAX(s->deadline - now, (uint64_t) QGA_DEFAULT_TIMEOUT_USEC), (uint64_t) EXEC_COMMAND_TIMEOUT_MAX_USEC);
}

static int exec_status_send(Exec *s) {
        _cleanup_json_ json_object *args = json_object_new_object();
        int64_t pid = s->phase == PHASE_KILL ? s->kill_pid : s->result.pid;

        if (!args || json_add_int(args, "pid", pid) < 0)
                return -ENOMEM;
        return qga_client_execute(s->client, "guest-exec-status", TAKE_PTR(args), exec_command_timeout(s),
                                  s->phase == PHASE_KILL ? 0 : STATUS_REPLY_MAX, exec_on_status, s);
}

static void exec_reap(Exec *s) {
        int k;

        s->phase = PHASE_REAP;
        s->phase_deadline = qga_now(CLOCK_MONOTONIC) + REAP_WAIT_USEC;
        k = exec_status_send(s);
        if (k < 0) {
                (void) qga_op_error_set(&s->error, s->client, k, "guest-exec-status", NULL, NULL);
                exec_finish(s);
        }
}

static void exec_on_started(QgaClient *c, int error, json_object *result, const char *error_class,
                            const char *error_desc, void *userdata) {
        Exec *s = userdata;
        int64_t pid;
        int k;

        if (error < 0) {
                (void) qga_op_error_set(&s->error, c, error, "guest-exec", error_class, error_desc);
                return exec_finish(s);
        }
        if (qga_json_int(result, "pid", 1, INT64_MAX, &pid) < 0) {
                (void) qga_op_error_setf(&s->error, -EBADMSG, "guest-exec",
                                         "the agent's reply to guest-exec is malformed");
                return exec_finish(s);
        }
        s->result.pid = pid;
        k = exec_arm(s, s->interval);
        if (k < 0) {
                (void) qga_op_error_set(&s->error, c, k, NULL, NULL, NULL);
                exec_finish(s);
        }
}

static json_object *strv_to_json(char *const *l, size_t skip) {
        _cleanup_json_ json_object *a = json_object_new_array();
        size_t n = 0;

        if (!a)
                return NULL;
        for (char *const *p = l; p && *p; p++, n++) {
                json_object *v;

                if (n < skip)
                        continue;
                if (n >= EXEC_ARGS_MAX) {
                        errno = E2BIG;
                        return NULL;
                }
                v = json_object_new_string(*p);
                if (!v || json_object_array_add(a, v) < 0) {
                        json_object_put(v);
                        errno = ENOMEM;
                        return NULL;
                }
        }
        return TAKE_PTR(a);
}

int qga_exec(QgaClient *c, const QgaExecRequest *req, QgaExecCallback cb, void *userdata) {
        _cleanup_json_ json_object *args = NULL, *arg = NULL, *env = NULL;
        _cleanup_free_ char *input = NULL;
        Exec *s;
        int k;

        if (!c || !req || !cb || !req->argv || isempty(req->argv[0]) || req->max_output > EXEC_OUTPUT_MAX ||
            (req->input_size > 0 && !req->input))
                return -EINVAL;
        if (req->input_size > EXEC_INPUT_MAX)
                return -E2BIG;
        k = qga_op_require(c, STRV("guest-exec", "guest-exec-status"));
        if (k < 0)
                return k;

        args = json_object_new_object();
        arg = strv_to_json(req->argv, 1);
        if (!arg)
                return errno == E2BIG ? -E2BIG : -ENOMEM;
        if (req->env) {
                env = strv_to_json(req->env, 0);
                if (!env)
                        return errno == E2BIG ? -E2BIG : -ENOMEM;
        }
        if (req->input) {
                input = base64_encode(req->input, req->input_size);
                if (!input)
                        return -ENOMEM;
        }
        if (!args || json_add_string(args, "path", req->argv[0]) < 0 || json_add(args, "arg", TAKE_PTR(arg)) < 0 ||
            (env && json_add(args, "env", TAKE_PTR(env)) < 0) ||
            (input && json_add_string(args, "input-data", input) < 0) ||
            json_add_bool(args, "capture-output", true) < 0)
                return -ENOMEM;

        s = calloc(1, sizeof(Exec));
        if (!s)
                return -ENOMEM;
        s->client = qga_client_ref(c);
        s->callback = cb;
        s->userdata = userdata;
        s->timeout_usec = req->timeout_usec ?: EXEC_TIMEOUT_DEFAULT_USEC;
        s->max_output = req->max_output ?: EXEC_OUTPUT_DEFAULT;
        s->interval = POLL_FIRST_USEC;
        s->phase = PHASE_RUN;
        s->start = qga_now(CLOCK_MONOTONIC);
        s->deadline = s->start + s->timeout_usec;

        k = qga_client_execute(c, "guest-exec", TAKE_PTR(args), exec_command_timeout(s), 0, exec_on_started, s);
        if (k < 0) {
                qga_client_unref(s->client);
                free(s);
                return k;
        }
        return 0;
}
