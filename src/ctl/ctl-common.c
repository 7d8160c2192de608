/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "varlink/address.h"
#include "ctl/ctl.h"
#include "basic/json-util.h"
#include "basic/parse.h"

extern char **environ;

const char *arg_address = NULL;
bool arg_json = false;
bool arg_json_pretty = false;
bool arg_legend = true;
const char *arg_host = NULL;
const char *arg_bridge_command = NULL;

const char *ctl_address(void) {
        return arg_address ?: getenv("MEMVISOR_ADDRESS") ?: CTL_DEFAULT_ADDRESS;
}

int ctl_connect(VarlinkClient **ret) {
        const char *reason = NULL;
        VarlinkAddress a;
        int r;

        if (arg_host)
                return ctl_remote_connect(ret);
        if (varlink_address_parse(ctl_address(), &a, &reason) < 0) {
                fprintf(stderr, "Invalid address '%s': %s.\n", ctl_address(), reason);
                return -EXIT_USAGE;
        }
        r = varlink_client_connect(ret, ctl_address());
        if (r < 0) {
                fprintf(stderr, "Failed to connect to %s: %s\n", ctl_address(), strerror(-r));
                return -EXIT_CONNECTION;
        }
        return 0;
}

int ctl_connection_failed(int r, const char *format, ...) {
        va_list ap;

        if (arg_host && (r == -ECONNRESET || r == -EPIPE) && ctl_remote_explain_failure())
                return EXIT_CONNECTION;
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fprintf(stderr, ": %s\n", r == -ECONNRESET ? "connection closed by the daemon" : strerror(-r));
        return EXIT_CONNECTION;
}

void ctl_print_json(json_object *o) {
        int flags = arg_json && !arg_json_pretty ? JSON_C_TO_STRING_PLAIN
                                                 : JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED;
        puts(json_object_to_json_string_ext(o, flags | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Reports a varlink error reply on stderr; returns the exit code for it. */
int ctl_report_error(json_object *reply) {
        json_object *params = NULL;
        const char *error = json_get_string(reply, "error");

        (void) json_object_object_get_ex(reply, "parameters", &params);
        fprintf(stderr, "%s\n", error);
        if (params && json_object_object_length(params) > 0)
                fprintf(stderr, "%s\n", json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN |
                                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
        return EXIT_VARLINK_ERROR;
}

/* Calls method; on success *ret_params is the reply's parameters. Returns an exit code. */
int ctl_call(const char *method, json_object *params, json_object **ret_reply) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        _cleanup_json_ json_object *reply = NULL;
        int r;

        r = ctl_connect(&c);
        if (r < 0)
                return -r;
        r = varlink_client_call(c, method, params, &reply);
        if (r < 0)
                return ctl_connection_failed(r, "Failed to call %s", method);
        if (json_get_string(reply, "error"))
                return ctl_report_error(reply);

        *ret_reply = TAKE_PTR(reply);
        return EXIT_OK;
}

int ctl_call_more(const char *method, json_object *params, CtlReplyFunc f, void *userdata) {
        _cleanup_(varlink_client_freep) VarlinkClient *c = NULL;
        const char *short_name = strrchr(method, '.') ? strrchr(method, '.') + 1 : method;
        int r;

        r = ctl_connect(&c);
        if (r < 0)
                return -r;
        r = varlink_client_send(c, method, params, VARLINK_CALL_MORE);
        if (r < 0)
                return ctl_connection_failed(r, "Failed to call %s", short_name);
        for (;;) {
                _cleanup_json_ json_object *reply = NULL;
                bool more;

                r = varlink_client_receive(c, &reply);
                if (r < 0 || json_get_string(reply, "error")) {
                        (void) f(NULL, false, userdata);
                        return r < 0 ? ctl_connection_failed(r, "%s", short_name) : ctl_report_error(reply);
                }
                more = json_get_bool(reply, "continues", false);
                r = f(ctl_reply_parameters(reply), more, userdata);
                fflush(stdout);
                if (r != 0)
                        return r;
                if (!more)
                        return EXIT_OK;
        }
}

int ctl_parse_size_and_timeout(const char *size, const char *timeout, bool wait, uint64_t *ret_size,
                               uint64_t *ret_timeout) {
        int r;

        r = parse_size(size, ret_size);
        if (r < 0 || *ret_size > INT64_MAX) {
                fprintf(stderr, "Invalid size '%s' for SIZE: %s\n", size,
                        r == -ERANGE || r >= 0 ? "too large" : "expected a size such as 256M or 1G (no sign)");
                return EXIT_USAGE;
        }
        *ret_timeout = 0;
        if (!timeout)
                return 0;
        if (!wait) {
                fprintf(stderr, "--timeout= needs --wait\n");
                return EXIT_USAGE;
        }
        if (parse_sec(timeout, ret_timeout) < 0 || *ret_timeout == 0 || *ret_timeout == USEC_INFINITY) {
                fprintf(stderr, "Invalid value '%s' for --timeout=: expected a time span such as 30s\n", timeout);
                return EXIT_USAGE;
        }
        return 0;
}

json_object *ctl_reply_parameters(json_object *reply) {
        json_object *p = NULL;

        (void) json_object_object_get_ex(reply, "parameters", &p);
        return p;
}

size_t ctl_array_length(json_object *a) {
        return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

json_object *ctl_array_get(json_object *a, size_t i) {
        return i < ctl_array_length(a) ? json_object_array_get_idx(a, i) : NULL;
}

json_object *ctl_obj_get(json_object *o, const char *key) {
        json_object *v = NULL;

        if (!o || !json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                return NULL;
        return v;
}

int ctl_call_show(const char *method, json_object *params, json_object **ret_reply, json_object **ret_params) {
        int r;

        r = ctl_call(method, params, ret_reply);
        if (r != EXIT_OK)
                return r;
        if (arg_json) {
                ctl_print_json(ctl_reply_parameters(*ret_reply));
                *ret_params = NULL;
        } else
                *ret_params = ctl_reply_parameters(*ret_reply);
        return EXIT_OK;
}

int ctl_call_with_name(const char *method, const char *name, json_object **ret_reply) {
        _cleanup_json_ json_object *params = json_object_new_object();

        if (!params || json_add_string(params, "name", name) < 0)
                return EXIT_CONNECTION;
        return ctl_call(method, params, ret_reply);
}

const char *ctl_format_realtime(char *buf, size_t l, uint64_t usec) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (usec == 0 || !localtime_r(&t, &tm) || strftime(buf, l, "%a %Y-%m-%d %H:%M:%S %Z", &tm) == 0)
                snprintf(buf, l, "n/a");
        return buf;
}

/* ---- -H: memvisorctl bridge on another host, through ssh -------------------------------------------
 *
 *     ssh -xT [-p PORT] [-l USER] -- HOST memvisorctl bridge [-A ADDRESS]
 *
 * (ssh and its options from $MEMVISOR_SSH, the remote command from --bridge-command= or $MEMVISOR_BRIDGE_COMMAND);
 * varlink goes over the child's standard input and output. Authentication is ssh's; authorization the remote
 * daemon's (the bridge connects as the remote user). The bridge verb is in ctl-daemon.c. */

static pid_t ssh_pid = 0;

/* [USER@]HOST[:PORT]; HOST may be an IPv6 address in brackets ([::1]:2222), or bare when there is no port. */
static int parse_host(const char *spec, char **ret_user, char **ret_host, char **ret_port) {
        _cleanup_free_ char *user = NULL, *host = NULL, *port = NULL;
        const char *at = strrchr(spec, '@'), *h = at ? at + 1 : spec, *colon = NULL, *end;
        unsigned p;

        if (at) {
                user = strndup(spec, (size_t) (at - spec));
                if (!user)
                        return -ENOMEM;
                if (isempty(user))
                        return -EINVAL;
        }
        if (h[0] == '[') {
                end = strchr(h, ']');
                if (!end || (end[1] != '\0' && end[1] != ':'))
                        return -EINVAL;
                host = strndup(h + 1, (size_t) (end - h - 1));
                if (end[1] == ':')
                        colon = end + 1;
        } else {
                colon = strchr(h, ':');
                if (colon && strchr(colon + 1, ':'))
                        colon = NULL;   /* a bare IPv6 address */
                host = colon ? strndup(h, (size_t) (colon - h)) : strdup(h);
        }
        if (!host)
                return -ENOMEM;
        if (isempty(host) || host[0] == '-')
                return -EINVAL;
        if (colon) {
                if (parse_unsigned(colon + 1, &p) < 0 || p == 0 || p > 65535)
                        return -EINVAL;
                port = strdup(colon + 1);
                if (!port)
                        return -ENOMEM;
        }
        *ret_user = TAKE_PTR(user);
        *ret_host = TAKE_PTR(host);
        *ret_port = TAKE_PTR(port);
        return 0;
}

/* 'text' for the remote shell. */
static int shell_quote(FILE *f, const char *s) {
        fputc('\'', f);
        for (; *s; s++)
                if (*s == '\'')
                        fputs("'\\''", f);
                else
                        fputc(*s, f);
        fputc('\'', f);
        return ferror(f) ? -ENOMEM : 0;
}

static const char *bridge_command(void) {
        return arg_bridge_command ?: getenv("MEMVISOR_BRIDGE_COMMAND") ?: "memvisorctl";
}

static void free_strv(char **v) {
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

static void free_strvp(char ***v) {
        free_strv(*v);
}

/* The ssh command line: $MEMVISOR_SSH split at white space (no quoting), or "ssh"; then our options, HOST and the
 * remote command as one word (ssh hands it to the remote user's shell). */
static int build_ssh_argv(const char *user, const char *host, const char *port, char ***ret) {
        _cleanup_(free_strvp) char **argv = NULL;
        _cleanup_free_ char *words = strdup(getenv("MEMVISOR_SSH") ?: "ssh"), *remote = NULL;
        size_t n = 0, remote_size = 0;
        char *w, *save = NULL;
        FILE *f;

        if (!words)
                return -ENOMEM;
        argv = calloc(strlen(words) / 2 + 12, sizeof(char *));
        if (!argv)
                return -ENOMEM;
        for (w = strtok_r(words, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save))
                if (!(argv[n++] = strdup(w)))
                        return -ENOMEM;
        if (n == 0)
                return -EINVAL;

        f = open_memstream(&remote, &remote_size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "%s bridge", bridge_command());
        if (arg_address) {
                fputs(" -A ", f);
                (void) shell_quote(f, arg_address);
        }
        if (ferror(f) | (fclose(f) != 0))
                return -ENOMEM;

        const char *rest[] = { "-xT", port ? "-p" : NULL, port, user ? "-l" : NULL, user, "--", host, remote };
        for (size_t i = 0; i < ELEMENTSOF(rest); i++)
                if (rest[i] && !(argv[n++] = strdup(rest[i])))
                        return -ENOMEM;
        argv[n] = NULL;
        *ret = TAKE_PTR(argv);
        return 0;
}

static int wait_ssh(int *ret_status) {
        int status;

        if (ssh_pid <= 0)
                return -ECHILD;
        while (waitpid(ssh_pid, &status, 0) < 0)
                if (errno != EINTR) {
                        ssh_pid = 0;
                        return -errno;
                }
        ssh_pid = 0;
        *ret_status = status;
        return 0;
}

void ctl_remote_finish(void) {
        int status;

        (void) wait_ssh(&status);
}

int ctl_remote_connect(VarlinkClient **ret) {
        _cleanup_free_ char *user = NULL, *host = NULL, *port = NULL;
        _cleanup_(free_strvp) char **argv = NULL;
        _cleanup_close_ int ours = -EBADF, theirs = -EBADF;
        posix_spawn_file_actions_t actions;
        int sv[2], r;

        r = parse_host(arg_host, &user, &host, &port);
        if (r == -ENOMEM)
                return -EXIT_CONNECTION;
        if (r < 0) {
                fprintf(stderr, "Invalid host '%s': expected [USER@]HOST[:PORT].\n", arg_host);
                return -EXIT_USAGE;
        }
        r = build_ssh_argv(user, host, port, &argv);
        if (r < 0) {
                fprintf(stderr, "Failed to build the ssh command line%s: %s\n",
                        r == -EINVAL ? " ($MEMVISOR_SSH is empty)" : "", strerror(-r));
                return r == -EINVAL ? -EXIT_USAGE : -EXIT_CONNECTION;
        }

        /* The previous call's ssh (status NAME makes two calls) ends once its client is closed. */
        ctl_remote_finish();

        /* One socketpair end as ssh's standard input and output: writes to it use MSG_NOSIGNAL, so an ssh that
         * went away is an EPIPE here, not a SIGPIPE that would kill memvisorctl before it says why. */
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                fprintf(stderr, "Failed to create a socket pair for ssh: %m\n");
                return -EXIT_CONNECTION;
        }
        ours = sv[0];
        theirs = sv[1];

        r = posix_spawn_file_actions_init(&actions);
        if (r != 0) {
                fprintf(stderr, "Failed to start ssh: %s\n", strerror(r));
                return -EXIT_CONNECTION;
        }
        r = posix_spawn_file_actions_adddup2(&actions, theirs, STDIN_FILENO);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&actions, theirs, STDOUT_FILENO);
        if (r == 0)
                r = posix_spawnp(&ssh_pid, argv[0], &actions, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        if (r != 0) {
                ssh_pid = 0;
                fprintf(stderr, "Failed to run %s%s: %s\n", argv[0],
                        getenv("MEMVISOR_SSH") ? " (from $MEMVISOR_SSH)" : "", strerror(r));
                return -EXIT_CONNECTION;
        }
        theirs = safe_close(theirs);

        r = varlink_client_new_from_fds(ret, ours, ours);
        if (r < 0) {
                fprintf(stderr, "Failed to set up the connection through ssh: %s\n", strerror(-r));
                return -EXIT_CONNECTION;
        }
        TAKE_FD(ours);
        return 0;
}

bool ctl_remote_explain_failure(void) {
        _cleanup_free_ char *user = NULL, *host = NULL, *port = NULL;
        const char *h;
        int status;

        if (wait_ssh(&status) < 0)
                return false;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return false;
        h = parse_host(arg_host, &user, &host, &port) >= 0 ? host : arg_host;

        if (WIFSIGNALED(status)) {
                fprintf(stderr, "ssh to %s was killed by signal %s.\n", h, strsignal(WTERMSIG(status)));
                return true;
        }
        switch (WEXITSTATUS(status)) {
        case 255:
                fprintf(stderr, "Failed to reach %s with ssh: it could not connect or authenticate "
                        "(ssh exited with status 255; its message, if any, is above).\n", h);
                break;
        case 127:
                fprintf(stderr, "memvisorctl not found on %s: the remote shell could not run '%s' (exit status 127). "
                        "Install memvisor there, or name the command with --bridge-command=.\n", h, bridge_command());
                break;
        case 126:
                fprintf(stderr, "memvisorctl on %s cannot be executed: '%s' (exit status 126).\n", h, bridge_command());
                break;
        case EXIT_CONNECTION:
                fprintf(stderr, "Failed to connect to memvisord on %s: the bridge there could not reach the daemon's "
                        "socket (is memvisord running? its message is above).\n", h);
                break;
        case EXIT_USAGE:
                fprintf(stderr, "memvisorctl bridge on %s refused its command line (exit status 2; its message is "
                        "above).\n", h);
                break;
        default:
                fprintf(stderr, "The connection to %s through ssh ended with status %d.\n", h, WEXITSTATUS(status));
        }
        return true;
}
