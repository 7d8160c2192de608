/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* varlink-calls: org.varlink.service.GetInfo throughput and idle memory of memvisord, measured against the
 * Go reference implementation (varlink-go-certification) in the same run.
 *
 * Both servers run side by side in a temporary directory. Measurements are interleaved (round by round,
 * server by server, with the server order flipped every round) so that background noise on the machine
 * hits both alike; the median over the rounds is reported. Nothing here asserts: targets are printed as
 * information. See bench/README.md. */

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "varlink/client.h"
#include "basic/json-util.h"
#include "basic/log.h"
#include "basic/parse.h"

#define GETINFO_METHOD "org.varlink.service.GetInfo"
#define GETINFO_CALL "{\"method\":\"" GETINFO_METHOD "\"}"
#define GETINFO_CALL_SIZE sizeof(GETINFO_CALL) /* the message and its NUL */

#define MAX_ROUNDS 100U
#define MAX_WINDOW 4096U
#define MAX_REPLY (64U * 1024U)
#define IO_TIMEOUT_MSEC 5000
#define STARTUP_TIMEOUT_USEC (10U * USEC_PER_SEC)
#define STOP_TIMEOUT_USEC (5U * USEC_PER_SEC)
#define WARMUP_USEC (200U * USEC_PER_MSEC)

#define TARGET_SPEEDUP 2.0
#define TARGET_IDLE_RSS_KIB 4096U

typedef enum Mode {
        MODE_SEQUENTIAL,
        MODE_PIPELINED,
        _MODE_MAX,
} Mode;

static const char *const mode_table[_MODE_MAX] = {
        [MODE_SEQUENTIAL] = "sequential",
        [MODE_PIPELINED] = "pipelined",
};

typedef enum ServerKind {
        SERVER_MEMVISORD,
        SERVER_GO,
        _SERVER_MAX,
} ServerKind;

typedef struct MemoryStats {
        uint64_t rss_kib;       /* VmRSS */
        uint64_t hwm_kib;       /* VmHWM: peak RSS */
        uint64_t anon_kib;      /* RssAnon */
        uint64_t file_kib;      /* RssFile */
        bool valid;
} MemoryStats;

typedef struct Server {
        ServerKind kind;
        const char *name;
        char *binary;
        char *socket_path;
        char *log_path;
        pid_t pid;
        bool enabled;

        char *product;                  /* from the library client's GetInfo reply */
        char *reference;                /* the raw GetInfo reply, NUL included; every reply must match it */
        size_t reference_size;

        double rate[_MODE_MAX][MAX_ROUNDS];
        double cpu_per_call[_MODE_MAX][MAX_ROUNDS];   /* server CPU time (all threads) per call, µs */
        unsigned n_rate[_MODE_MAX];

        MemoryStats mem_startup, mem_load;
} Server;

typedef enum ClientKind {
        CLIENT_RAW,
        CLIENT_LIBRARY,
} ClientKind;

static unsigned arg_rounds = 5;
static uint64_t arg_duration_usec = 2 * USEC_PER_SEC;
static unsigned arg_window = 64;
static uint64_t arg_idle_usec = 1 * USEC_PER_SEC;
static ClientKind arg_client = CLIENT_RAW;
static char *arg_memvisord = NULL;
static char *arg_go = NULL;
static bool arg_only[_SERVER_MAX] = {};
static bool arg_mode[_MODE_MAX] = {};
static bool arg_keep = false;

static volatile sig_atomic_t interrupted = 0;

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* Sleeps, returning -EINTR early when a termination signal arrived. */
static int sleep_usec(uint64_t usec) {
        struct timespec ts = {
                .tv_sec = (time_t) (usec / USEC_PER_SEC),
                .tv_nsec = (long) (usec % USEC_PER_SEC * NSEC_PER_USEC),
        };

        if (interrupted)
                return -EINTR;
        (void) nanosleep(&ts, NULL);
        return interrupted ? -EINTR : 0;
}

static void on_signal(int sig) {
        interrupted = sig;
}

static int install_signal_handlers(void) {
        /* No SA_RESTART: blocking calls return EINTR, so every loop notices and unwinds through cleanup. */
        struct sigaction sa = { .sa_handler = on_signal };
        struct sigaction ign = { .sa_handler = SIG_IGN };

        if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0 ||
            sigaction(SIGHUP, &sa, NULL) < 0 || sigaction(SIGPIPE, &ign, NULL) < 0)
                return -errno;
        return 0;
}

/* ---- paths and processes ---------------------------------------------------------------------- */

static int find_in_path(const char *name, char **ret) {
        const char *path = getenv("PATH") ?: "/usr/local/bin:/usr/bin:/bin";

        if (strchr(name, '/')) {
                char *p = strdup(name);
                if (!p)
                        return -ENOMEM;
                if (access(p, X_OK) < 0) {
                        free(p);
                        return -errno;
                }
                *ret = p;
                return 0;
        }

        for (const char *p = path; *p;) {
                size_t l = strcspn(p, ":");
                _cleanup_free_ char *candidate = NULL;

                if (l > 0 && asprintf(&candidate, "%.*s/%s", (int) l, p, name) < 0)
                        return -ENOMEM;
                if (candidate && access(candidate, X_OK) == 0) {
                        *ret = TAKE_PTR(candidate);
                        return 0;
                }
                p += l;
                if (*p == ':')
                        p++;
        }
        return -ENOENT;
}

/* The benchmark lives in BUILDDIR/bench/, the daemon in BUILDDIR/ (also tried: next to the benchmark). */
static int find_memvisord(char **ret) {
        char dir[4096];
        ssize_t n;

        n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
        if (n < 0)
                return -errno;
        dir[n] = 0;

        for (unsigned up = 0; up < 2; up++) {
                _cleanup_free_ char *candidate = NULL;
                char *slash = strrchr(dir, '/');

                if (!slash)
                        break;
                *slash = 0; /* first the benchmark's own directory, then its parent */
                if (asprintf(&candidate, "%s/memvisord", dir) < 0)
                        return -ENOMEM;
                if (access(candidate, X_OK) == 0) {
                        *ret = TAKE_PTR(candidate);
                        return 0;
                }
        }
        return -ENOENT;
}

static int spawn(char *const argv[], const char *log_path, pid_t *ret_pid) {
        pid_t parent = getpid(), pid;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int fd;

                /* Die with the benchmark, whatever way it goes. */
                if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                        _exit(EXIT_FAILURE);
                signal(SIGPIPE, SIG_DFL);

                fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
                        _exit(EXIT_FAILURE);
                fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
                        _exit(EXIT_FAILURE);

                execv(argv[0], argv);
                fprintf(stderr, "Failed to execute %s: %m\n", argv[0]);
                _exit(EXIT_FAILURE);
        }

        *ret_pid = pid;
        return 0;
}

static void print_log_tail(const Server *s) {
        _cleanup_free_ char *buf = NULL;
        FILE *f;
        size_t n;

        f = fopen(s->log_path, "re");
        if (!f)
                return;
        buf = malloc(4097);
        if (buf) {
                if (fseek(f, -4096, SEEK_END) < 0)
                        rewind(f);
                n = fread(buf, 1, 4096, f);
                buf[n] = 0;
                if (n > 0)
                        fprintf(stderr, "---- %s output (%s) ----\n%s%s---- end ----\n", s->name, s->log_path, buf,
                                buf[n - 1] == '\n' ? "" : "\n");
        }
        fclose(f);
}

/* SIGTERM, a grace period, then SIGKILL. Reports an unclean exit: a daemon must stop cleanly on SIGTERM. */
static void server_stop(Server *s) {
        uint64_t deadline;
        int status;
        pid_t p;

        if (s->pid <= 0)
                return;

        (void) kill(s->pid, SIGTERM);
        deadline = now_usec() + STOP_TIMEOUT_USEC;
        for (;;) {
                p = waitpid(s->pid, &status, WNOHANG);
                if (p != 0 || now_usec() >= deadline)
                        break;
                struct timespec ts = { .tv_nsec = 10 * 1000 * 1000 };
                (void) nanosleep(&ts, NULL);
        }
        if (p == 0) {
                log_warning("%s (pid %i) did not stop within 5s of SIGTERM, killing it.", s->name, (int) s->pid);
                (void) kill(s->pid, SIGKILL);
                (void) waitpid(s->pid, &status, 0);
        } else if (p > 0 && s->kind == SERVER_MEMVISORD &&
                   !(WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SUCCESS)) {
                log_warning("memvisord (pid %i) did not exit cleanly on SIGTERM (%s %i).", (int) s->pid,
                            WIFEXITED(status) ? "status" : "signal",
                            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                print_log_tail(s);
        }
        s->pid = 0;
}

static int connect_unix(const char *path, int flags) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = IO_TIMEOUT_MSEC / 1000 };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, path);

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
        if (fd < 0)
                return -errno;
        /* A server that stops answering must not hang the benchmark. */
        if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static int send_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR && !interrupted)
                                continue;
                        return errno == EAGAIN ? -ETIMEDOUT : -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Reads one NUL-terminated message into buf (blocking fd); returns its size including the NUL. */
static ssize_t receive_one(int fd, char *buf, size_t size) {
        size_t have = 0;

        for (;;) {
                ssize_t n = read(fd, buf + have, size - have);
                if (n < 0) {
                        if (errno == EINTR && !interrupted)
                                continue;
                        return errno == EAGAIN ? -ETIMEDOUT : -errno;
                }
                if (n == 0)
                        return -ECONNRESET;
                have += (size_t) n;
                if (buf[have - 1] == 0)
                        return (ssize_t) have; /* one call in flight, so one reply at most */
                if (have == size)
                        return -EMSGSIZE;
        }
}

/* A GetInfo reply: {"parameters": {"vendor": …, "product": …, "interfaces": [… "org.varlink.service" …]}}. */
static int check_getinfo_reply(json_object *reply, char **ret_product) {
        json_object *params, *ifaces, *product;
        bool found = false;

        if (json_object_object_get_ex(reply, "error", NULL))
                return -EREMOTEIO;
        if (!json_object_object_get_ex(reply, "parameters", &params) ||
            !json_object_object_get_ex(params, "interfaces", &ifaces) ||
            !json_object_is_type(ifaces, json_type_array) ||
            !json_object_object_get_ex(params, "product", &product) ||
            !json_object_is_type(product, json_type_string))
                return -EBADMSG;
        for (size_t i = 0; i < json_object_array_length(ifaces); i++)
                if (streq_ptr(json_object_get_string(json_object_array_get_idx(ifaces, i)), "org.varlink.service"))
                        found = true;
        if (!found)
                return -EBADMSG;

        if (ret_product) {
                char *p = strdup(json_object_get_string(product));
                if (!p)
                        return -ENOMEM;
                *ret_product = p;
        }
        return 0;
}

/* Waits for the socket to accept connections, then records the reference reply: once through the project's
 * client library (which parses and checks it), once raw (the bytes every later reply must equal). */
static int server_wait_ready(Server *s) {
        _cleanup_(varlink_client_freep) VarlinkClient *client = NULL;
        _cleanup_json_ json_object *reply = NULL, *raw_parsed = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        uint64_t deadline = now_usec() + STARTUP_TIMEOUT_USEC;
        ssize_t n;
        int r, status;

        for (;;) {
                r = varlink_client_connect(&client, s->socket_path);
                if (r >= 0)
                        break;
                if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
                        s->pid = 0;
                        print_log_tail(s);
                        return log_error_errno(ECHILD, "%s exited during startup.", s->name);
                }
                if (now_usec() >= deadline) {
                        print_log_tail(s);
                        return log_error_errno(r, "%s did not listen on %s within 10s: %m", s->name,
                                               s->socket_path);
                }
                r = sleep_usec(10 * USEC_PER_MSEC);
                if (r < 0)
                        return r;
        }

        r = varlink_client_call(client, GETINFO_METHOD, NULL, &reply);
        if (r < 0)
                return log_error_errno(r, "%s: GetInfo through the client library failed: %m", s->name);
        r = check_getinfo_reply(reply, &s->product);
        if (r < 0)
                return log_error_errno(r, "%s: unexpected GetInfo reply %s: %m", s->name,
                                       json_object_to_json_string(reply));

        fd = connect_unix(s->socket_path, 0);
        if (fd < 0)
                return log_error_errno(fd, "%s: failed to connect to %s: %m", s->name, s->socket_path);
        buf = malloc(MAX_REPLY);
        if (!buf)
                return log_oom();
        r = send_all(fd, GETINFO_CALL, GETINFO_CALL_SIZE);
        if (r < 0)
                return log_error_errno(r, "%s: failed to send GetInfo: %m", s->name);
        n = receive_one(fd, buf, MAX_REPLY);
        if (n < 0)
                return log_error_errno((int) n, "%s: failed to receive the GetInfo reply: %m", s->name);
        raw_parsed = json_tokener_parse(buf);
        if (!raw_parsed || check_getinfo_reply(raw_parsed, NULL) < 0)
                return log_error_errno(EBADMSG, "%s: unexpected raw GetInfo reply '%s'.", s->name, buf);

        s->reference = TAKE_PTR(buf);
        s->reference_size = (size_t) n;
        return 0;
}

static int server_start(Server *s, const char *tmpdir) {
        _cleanup_free_ char *config = NULL, *runtime = NULL, *state = NULL, *address = NULL;
        int r;

        if (asprintf(&s->log_path, "%s/%s.log", tmpdir, s->name) < 0)
                return log_oom();

        if (s->kind == SERVER_MEMVISORD) {
                _cleanup_close_ int fd = -EBADF;

                if (asprintf(&config, "--config=%s/memvisord.conf", tmpdir) < 0 ||
                    asprintf(&runtime, "--runtime-dir=%s/run", tmpdir) < 0 ||
                    asprintf(&state, "--state-dir=%s/state", tmpdir) < 0 ||
                    asprintf(&s->socket_path, "%s/run/io.memvisor.Manager", tmpdir) < 0)
                        return log_oom();
                /* An empty configuration file: built-in defaults. */
                fd = open(config + strlen("--config="), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0)
                        return log_error_errno(errno, "Failed to create %s: %m", config + strlen("--config="));

                char *argv[] = { s->binary, config, runtime, state, (char *) "--log-target=console", NULL };
                r = spawn(argv, s->log_path, &s->pid);
        } else {
                if (asprintf(&s->socket_path, "%s/go.sock", tmpdir) < 0 ||
                    asprintf(&address, "unix:%s", s->socket_path) < 0)
                        return log_oom();

                char *argv[] = { s->binary, (char *) "-varlink", address, NULL };
                r = spawn(argv, s->log_path, &s->pid);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to start %s: %m", s->binary);

        struct sockaddr_un sa;
        if (strlen(s->socket_path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Socket path %s is too long; set TMPDIR to a shorter path.",
                                       s->socket_path);

        return server_wait_ready(s);
}

static int read_memory_stats(pid_t pid, MemoryStats *ret) {
        _cleanup_free_ char *path = NULL, *line = NULL;
        MemoryStats m = { .valid = true };
        const struct {
                const char *key;
                uint64_t *value;
        } fields[] = {
                { "VmRSS:", &m.rss_kib },
                { "VmHWM:", &m.hwm_kib },
                { "RssAnon:", &m.anon_kib },
                { "RssFile:", &m.file_kib },
        };
        size_t size = 0;
        FILE *f;

        if (asprintf(&path, "/proc/%i/status", (int) pid) < 0)
                return -ENOMEM;
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (getline(&line, &size, f) > 0)
                for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                        const char *v = startswith(line, fields[i].key);
                        if (v)
                                *fields[i].value = strtoull(v, NULL, 10);
                }
        fclose(f);

        *ret = m;
        return 0;
}

/* CPU time the process has used so far, all threads, in ns (first field of /proc/PID/task/TID/schedstat:
 * sum_exec_runtime, exact rather than in clock ticks). Threads that exited in between are not counted. */
static int read_cpu_ns(pid_t pid, uint64_t *ret) {
        _cleanup_free_ char *path = NULL;
        struct dirent *de;
        uint64_t total = 0;
        DIR *d;

        if (asprintf(&path, "/proc/%i/task", (int) pid) < 0)
                return -ENOMEM;
        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL;
                unsigned long long ns;
                FILE *f;

                if (de->d_name[0] == '.')
                        continue;
                if (asprintf(&p, "%s/%s/schedstat", path, de->d_name) < 0) {
                        closedir(d);
                        return -ENOMEM;
                }
                f = fopen(p, "re");
                if (!f)
                        continue; /* the thread just exited */
                if (fscanf(f, "%llu", &ns) == 1)
                        total += ns;
                fclose(f);
        }
        closedir(d);

        *ret = total;
        return 0;
}

static int remove_entry(const char *path, _unused_ const struct stat *st, _unused_ int type, _unused_ struct FTW *ftw) {
        if (remove(path) < 0)
                log_warning_errno(errno, "Failed to remove %s, ignoring: %m", path);
        return 0;
}

/* ---- measurement loops ------------------------------------------------------------------------ */

static int check_reply(const Server *s, const char *buf, size_t n) {
        if (n != s->reference_size || memcmp(buf, s->reference, n) != 0)
                return log_error_errno(EBADMSG, "%s: reply differs from the first GetInfo reply: '%.*s'", s->name,
                                       (int) MIN(n, (size_t) 512), buf);
        return 0;
}

/* One call at a time on one connection: send, wait for the reply, repeat. */
static int run_sequential_raw(const Server *s, uint64_t duration, uint64_t *ret_calls, uint64_t *ret_elapsed) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        uint64_t start, now, calls = 0;
        ssize_t n;
        int r;

        buf = malloc(MAX_REPLY);
        if (!buf)
                return -ENOMEM;
        fd = connect_unix(s->socket_path, 0);
        if (fd < 0)
                return fd;

        start = now_usec();
        do {
                r = send_all(fd, GETINFO_CALL, GETINFO_CALL_SIZE);
                if (r < 0)
                        return r;
                n = receive_one(fd, buf, MAX_REPLY);
                if (n < 0)
                        return (int) n;
                r = check_reply(s, buf, (size_t) n);
                if (r < 0)
                        return r;
                calls++;
                now = now_usec();
        } while (now - start < duration && !interrupted);

        if (interrupted)
                return -EINTR;
        *ret_calls = calls;
        *ret_elapsed = now - start;
        return 0;
}

/* The same through varlink_client_call(): includes the library's JSON building and parsing per call. */
static int run_sequential_library(const Server *s, uint64_t duration, uint64_t *ret_calls, uint64_t *ret_elapsed) {
        _cleanup_(varlink_client_freep) VarlinkClient *client = NULL;
        uint64_t start, now, calls = 0;
        int r;

        r = varlink_client_connect(&client, s->socket_path);
        if (r < 0)
                return r;

        start = now_usec();
        do {
                _cleanup_json_ json_object *reply = NULL;

                r = varlink_client_call(client, GETINFO_METHOD, NULL, &reply);
                if (r < 0)
                        return r;
                if (json_object_object_get_ex(reply, "error", NULL))
                        return log_error_errno(EREMOTEIO, "%s: GetInfo failed: %s", s->name,
                                               json_object_to_json_string(reply));
                calls++;
                now = now_usec();
        } while (now - start < duration && !interrupted);

        if (interrupted)
                return -EINTR;
        *ret_calls = calls;
        *ret_elapsed = now - start;
        return 0;
}

/* A sliding window of calls in flight on one connection: whenever replies come back, as many new calls are
 * written, so the server always has up to `window` calls queued. All calls are the same bytes, so the output
 * queue is a position in an endless stream of GETINFO_CALL messages, served from (window + 1) copies. */
static int run_pipelined(const Server *s, uint64_t duration, uint64_t *ret_calls, uint64_t *ret_elapsed) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *calls_buf = NULL, *in = NULL;
        size_t out_pending = 0, out_phase = 0, matched = 0;
        unsigned in_flight = 0;
        uint64_t start, now, replies = 0;

        calls_buf = malloc((size_t) (arg_window + 1) * GETINFO_CALL_SIZE);
        in = malloc(MAX_REPLY);
        if (!calls_buf || !in)
                return -ENOMEM;
        for (unsigned i = 0; i <= arg_window; i++)
                memcpy(calls_buf + (size_t) i * GETINFO_CALL_SIZE, GETINFO_CALL, GETINFO_CALL_SIZE);

        fd = connect_unix(s->socket_path, SOCK_NONBLOCK);
        if (fd < 0)
                return fd;

        start = now = now_usec();
        while (now - start < duration) {
                ssize_t n;

                if (interrupted)
                        return -EINTR;

                /* Top the window up. */
                out_pending += (size_t) (arg_window - in_flight) * GETINFO_CALL_SIZE;
                in_flight = arg_window;

                if (out_pending > 0) {
                        n = send(fd, calls_buf + out_phase, out_pending, MSG_NOSIGNAL | MSG_DONTWAIT);
                        if (n < 0 && errno != EAGAIN && errno != EINTR)
                                return -errno;
                        if (n > 0) {
                                out_pending -= (size_t) n;
                                out_phase = (out_phase + (size_t) n) % GETINFO_CALL_SIZE;
                        }
                }

                n = read(fd, in, MAX_REPLY);
                if (n < 0) {
                        struct pollfd p = { .fd = fd, .events = POLLIN | (out_pending > 0 ? POLLOUT : 0) };
                        int k;

                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                return -errno;
                        k = poll(&p, 1, IO_TIMEOUT_MSEC);
                        if (k < 0 && errno != EINTR)
                                return -errno;
                        if (k == 0)
                                return log_error_errno(ETIMEDOUT, "%s: no reply within %ims with %u calls in flight.",
                                                       s->name, IO_TIMEOUT_MSEC, in_flight);
                        continue;
                }
                if (n == 0)
                        return -ECONNRESET;

                /* Every reply must equal the reference reply, byte for byte. */
                for (const char *p = in, *e = in + n; p < e;) {
                        size_t k = MIN((size_t) (e - p), s->reference_size - matched);

                        if (memcmp(p, s->reference + matched, k) != 0)
                                return log_error_errno(EBADMSG, "%s: pipelined reply differs from the first GetInfo "
                                                       "reply at byte %zu.", s->name, matched);
                        p += k;
                        matched += k;
                        if (matched == s->reference_size) {
                                matched = 0;
                                replies++;
                                if (in_flight == 0)
                                        return log_error_errno(EBADMSG, "%s: more replies than calls.", s->name);
                                in_flight--;
                        }
                }
                now = now_usec();
        }

        /* Calls still in flight are abandoned with the connection. */
        *ret_calls = replies;
        *ret_elapsed = now - start;
        return 0;
}

static int measure(Server *s, Mode mode, uint64_t duration, double *ret_rate, double *ret_cpu_per_call) {
        uint64_t calls = 0, elapsed = 0, cpu_before = 0, cpu_after = 0;
        bool cpu_valid;
        int r = -EINVAL;

        cpu_valid = read_cpu_ns(s->pid, &cpu_before) >= 0;

        switch (mode) {
        case MODE_SEQUENTIAL:
                r = arg_client == CLIENT_LIBRARY ? run_sequential_library(s, duration, &calls, &elapsed)
                                                 : run_sequential_raw(s, duration, &calls, &elapsed);
                break;
        case MODE_PIPELINED:
                r = run_pipelined(s, duration, &calls, &elapsed);
                break;
        case _MODE_MAX:
                return -EINVAL;
        }
        if (r == -EINTR || interrupted)
                return -EINTR;
        if (r < 0)
                return log_error_errno(r, "%s: %s GetInfo calls failed: %m", s->name, mode_table[mode]);
        if (elapsed == 0 || calls == 0)
                return log_error_errno(EIO, "%s: no %s call completed.", s->name, mode_table[mode]);

        cpu_valid = cpu_valid && read_cpu_ns(s->pid, &cpu_after) >= 0 && cpu_after >= cpu_before;

        *ret_rate = (double) calls * (double) USEC_PER_SEC / (double) elapsed;
        /* Calls abandoned in flight at the end of a pipelined run were partly served: at most `window` calls,
         * noise against the hundreds of thousands counted. */
        *ret_cpu_per_call = cpu_valid ? (double) (cpu_after - cpu_before) / (double) NSEC_PER_USEC / (double) calls
                                      : -1;
        return 0;
}

/* ---- report ----------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

static double median(const double *v, unsigned n, double *ret_min, double *ret_max) {
        double sorted[MAX_ROUNDS];

        memcpy(sorted, v, n * sizeof(double));
        qsort(sorted, n, sizeof(double), cmp_double);
        *ret_min = sorted[0];
        *ret_max = sorted[n - 1];
        return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

static void print_memory_row(const char *name, const char *when, const MemoryStats *m) {
        if (!m->valid) {
                printf("  %-10s %-14s n/a\n", name, when);
                return;
        }
        printf("  %-10s %-14s %7.2f MiB  (anon %6" PRIu64 " KiB, file %6" PRIu64 " KiB, peak %7.2f MiB)\n", name,
               when, (double) m->rss_kib / 1024.0, m->anon_kib, m->file_kib, (double) m->hwm_kib / 1024.0);
}

static void print_report(Server servers[_SERVER_MAX]) {
        Server *mv = &servers[SERVER_MEMVISORD], *go = &servers[SERVER_GO];
        double med[_SERVER_MAX][_MODE_MAX] = {}, cpu[_SERVER_MAX][_MODE_MAX] = {};

        printf("\n%-10s %-11s %14s %10s %10s %7s %17s\n", "server", "mode", "calls/s (med)", "min", "max", "rounds",
               "server CPU us/call");
        for (Mode mode = 0; mode < _MODE_MAX; mode++)
                for (ServerKind k = 0; k < _SERVER_MAX; k++) {
                        Server *s = &servers[k];
                        unsigned n = s->n_rate[mode];
                        double lo, hi, ignored;
                        bool cpu_valid = true;

                        if (!s->enabled || n == 0)
                                continue;
                        med[k][mode] = median(s->rate[mode], n, &lo, &hi);
                        for (unsigned i = 0; i < n; i++)
                                cpu_valid = cpu_valid && s->cpu_per_call[mode][i] >= 0;
                        cpu[k][mode] = cpu_valid ? median(s->cpu_per_call[mode], n, &ignored, &ignored) : -1;

                        printf("%-10s %-11s %14.0f %10.0f %10.0f %7u ", s->name, mode_table[mode], med[k][mode], lo, hi,
                               n);
                        if (cpu_valid)
                                printf("%17.2f\n", cpu[k][mode]);
                        else
                                printf("%17s\n", "n/a");
                }

        printf("\n");
        for (Mode mode = 0; mode < _MODE_MAX; mode++) {
                double ratio;

                if (!arg_mode[mode])
                        continue;
                if (med[SERVER_MEMVISORD][mode] <= 0 || med[SERVER_GO][mode] <= 0) {
                        printf("target: memvisord >= %.0fx go (%s): n/a (needs both servers)\n", TARGET_SPEEDUP,
                               mode_table[mode]);
                        continue;
                }
                ratio = med[SERVER_MEMVISORD][mode] / med[SERVER_GO][mode];
                printf("ratio memvisord/go calls/s (%s): %.2fx", mode_table[mode], ratio);
                if (cpu[SERVER_MEMVISORD][mode] > 0 && cpu[SERVER_GO][mode] > 0)
                        printf("; go/memvisord server CPU per call: %.2fx",
                               cpu[SERVER_GO][mode] / cpu[SERVER_MEMVISORD][mode]);
                printf("\n");
                printf("target: memvisord >= %.0fx go (%s): %s (%.2fx)\n", TARGET_SPEEDUP, mode_table[mode],
                       ratio >= TARGET_SPEEDUP ? "PASS" : "MISS", ratio);
        }

        printf("\nresident memory (VmRSS from /proc/PID/status, after %.1fs idle):\n",
               (double) arg_idle_usec / (double) USEC_PER_SEC);
        for (ServerKind k = 0; k < _SERVER_MAX; k++) {
                Server *s = &servers[k];

                if (!s->enabled)
                        continue;
                print_memory_row(s->name, "after startup", &s->mem_startup);
                print_memory_row(s->name, "after load", &s->mem_load);
        }
        if (mv->enabled && mv->mem_startup.valid && mv->mem_load.valid) {
                uint64_t worst = MAX(mv->mem_startup.rss_kib, mv->mem_load.rss_kib);

                printf("target: memvisord idle RSS < %u MiB: %s (%.2f MiB, the larger of both readings)\n",
                       TARGET_IDLE_RSS_KIB / 1024, worst < TARGET_IDLE_RSS_KIB ? "PASS" : "MISS",
                       (double) worst / 1024.0);
                if (go->enabled && go->mem_load.valid && go->mem_load.rss_kib > 0)
                        printf("ratio memvisord/go idle RSS after load: %.2f\n",
                               (double) mv->mem_load.rss_kib / (double) go->mem_load.rss_kib);
        }
        printf("(targets are information only; nothing here fails on a MISS)\n");
}

/* ---- main ------------------------------------------------------------------------------------- */

static void help(void) {
        printf("%s [OPTIONS...] [MEMVISORD]\n\n"
               "Measure org.varlink.service.GetInfo calls/s and idle RSS of memvisord against the Go varlink\n"
               "reference server (varlink-go-certification), interleaved in one run. Prints figures only.\n\n"
               "  -h --help              Show this help\n"
               "     --memvisord=PATH    memvisord binary (default: next to the build directory's bench/)\n"
               "     --go=PATH           Go server binary (default: varlink-go-certification in $PATH)\n"
               "     --only=SERVER       Measure only memvisord or go (e.g. while profiling)\n"
               "     --mode=MODE         Measure only sequential or pipelined calls\n"
               "     --rounds=N          Rounds per server and mode (default: 5)\n"
               "     --duration=SEC      Length of one measurement (default: 2s)\n"
               "     --window=N          Calls in flight in pipelined mode (default: 64)\n"
               "     --idle=SEC          Idle pause before each RSS reading (default: 1s)\n"
               "     --client=raw|library\n"
               "                         Sequential loop on raw socket code (default) or through\n"
               "                         varlink_client_call() (adds the library's JSON work per call)\n"
               "     --keep              Keep the temporary directory (logs) after the run\n",
               program_invocation_short_name);
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_MEMVISORD = 0x100,
                ARG_GO,
                ARG_ONLY,
                ARG_MODE,
                ARG_ROUNDS,
                ARG_DURATION,
                ARG_WINDOW,
                ARG_IDLE,
                ARG_CLIENT,
                ARG_KEEP,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "memvisord", required_argument, NULL, ARG_MEMVISORD },
                { "go", required_argument, NULL, ARG_GO },
                { "only", required_argument, NULL, ARG_ONLY },
                { "mode", required_argument, NULL, ARG_MODE },
                { "rounds", required_argument, NULL, ARG_ROUNDS },
                { "duration", required_argument, NULL, ARG_DURATION },
                { "window", required_argument, NULL, ARG_WINDOW },
                { "idle", required_argument, NULL, ARG_IDLE },
                { "client", required_argument, NULL, ARG_CLIENT },
                { "keep", no_argument, NULL, ARG_KEEP },
                {}
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_MEMVISORD:
                        if (free_and_strdup(&arg_memvisord, optarg) < 0)
                                return log_oom();
                        break;
                case ARG_GO:
                        if (free_and_strdup(&arg_go, optarg) < 0)
                                return log_oom();
                        break;
                case ARG_ONLY:
                        if (streq(optarg, "memvisord"))
                                arg_only[SERVER_MEMVISORD] = true;
                        else if (streq(optarg, "go"))
                                arg_only[SERVER_GO] = true;
                        else
                                return log_error_errno(EINVAL, "Invalid --only=%s: expected memvisord or go.", optarg);
                        break;
                case ARG_MODE:
                        if (streq(optarg, "sequential") || streq(optarg, "seq"))
                                arg_mode[MODE_SEQUENTIAL] = true;
                        else if (streq(optarg, "pipelined") || streq(optarg, "pipe"))
                                arg_mode[MODE_PIPELINED] = true;
                        else
                                return log_error_errno(EINVAL, "Invalid --mode=%s: expected sequential or pipelined.",
                                                       optarg);
                        break;
                case ARG_ROUNDS:
                        r = parse_unsigned(optarg, &arg_rounds);
                        if (r < 0 || arg_rounds < 1 || arg_rounds > MAX_ROUNDS)
                                return log_error_errno(EINVAL, "Invalid --rounds=%s: expected 1…%u.", optarg,
                                                       MAX_ROUNDS);
                        break;
                case ARG_DURATION:
                        r = parse_sec(optarg, &arg_duration_usec);
                        if (r < 0 || arg_duration_usec < 10 * USEC_PER_MSEC || arg_duration_usec == USEC_INFINITY)
                                return log_error_errno(EINVAL, "Invalid --duration=%s: expected a time span >= 10ms.",
                                                       optarg);
                        break;
                case ARG_WINDOW:
                        r = parse_unsigned(optarg, &arg_window);
                        if (r < 0 || arg_window < 1 || arg_window > MAX_WINDOW)
                                return log_error_errno(EINVAL, "Invalid --window=%s: expected 1…%u.", optarg,
                                                       MAX_WINDOW);
                        break;
                case ARG_IDLE:
                        r = parse_sec(optarg, &arg_idle_usec);
                        if (r < 0 || arg_idle_usec == USEC_INFINITY)
                                return log_error_errno(EINVAL, "Invalid --idle=%s.", optarg);
                        break;
                case ARG_CLIENT:
                        if (streq(optarg, "raw"))
                                arg_client = CLIENT_RAW;
                        else if (streq(optarg, "library") || streq(optarg, "lib"))
                                arg_client = CLIENT_LIBRARY;
                        else
                                return log_error_errno(EINVAL, "Invalid --client=%s: expected raw or library.", optarg);
                        break;
                case ARG_KEEP:
                        arg_keep = true;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        abort();
                }

        if (!arg_mode[MODE_SEQUENTIAL] && !arg_mode[MODE_PIPELINED])
                arg_mode[MODE_SEQUENTIAL] = arg_mode[MODE_PIPELINED] = true;

        if (optind < argc) {
                if (arg_memvisord || optind + 1 < argc)
                        return log_error_errno(EINVAL, "Unexpected argument '%s'.", argv[optind]);
                arg_memvisord = strdup(argv[optind]);
                if (!arg_memvisord)
                        return log_oom();
        }
        return 1;
}

static int run(Server servers[_SERVER_MAX], const char *tmpdir) {
        int r;

        for (ServerKind k = 0; k < _SERVER_MAX; k++) {
                Server *s = &servers[k];

                if (!s->enabled)
                        continue;
                r = server_start(s, tmpdir);
                if (r < 0)
                        return r;
                printf("%-10s pid %-7i %s (%s)\n", s->name, (int) s->pid, s->binary, strna(s->product));
        }

        r = sleep_usec(arg_idle_usec);
        if (r < 0)
                return r;
        for (ServerKind k = 0; k < _SERVER_MAX; k++)
                if (servers[k].enabled)
                        (void) read_memory_stats(servers[k].pid, &servers[k].mem_startup);

        /* Warm up: caches, Go's runtime, the first allocations of either server. */
        for (ServerKind k = 0; k < _SERVER_MAX; k++)
                for (Mode mode = 0; mode < _MODE_MAX && servers[k].enabled; mode++) {
                        double ignored, ignored_cpu;

                        if (!arg_mode[mode])
                                continue;
                        r = measure(&servers[k], mode, WARMUP_USEC, &ignored, &ignored_cpu);
                        if (r < 0)
                                return r;
                }

        for (unsigned round = 0; round < arg_rounds; round++) {
                printf("round %u/%u:", round + 1, arg_rounds);
                for (Mode mode = 0; mode < _MODE_MAX; mode++)
                        for (unsigned i = 0; i < _SERVER_MAX; i++) {
                                /* A B in even rounds, B A in odd ones: neither server always goes first. */
                                Server *s = &servers[round % 2 ? _SERVER_MAX - 1 - i : i];
                                double rate, cpu;

                                if (!s->enabled || !arg_mode[mode])
                                        continue;
                                r = measure(s, mode, arg_duration_usec, &rate, &cpu);
                                if (r < 0)
                                        return r;
                                s->cpu_per_call[mode][s->n_rate[mode]] = cpu;
                                s->rate[mode][s->n_rate[mode]++] = rate;
                                printf("  %s %s %.0f/s", s->name, mode == MODE_SEQUENTIAL ? "seq" : "pipe", rate);
                                fflush(stdout);
                        }
                printf("\n");
        }

        r = sleep_usec(arg_idle_usec);
        if (r < 0)
                return r;
        for (ServerKind k = 0; k < _SERVER_MAX; k++)
                if (servers[k].enabled)
                        (void) read_memory_stats(servers[k].pid, &servers[k].mem_load);

        print_report(servers);
        return 0;
}

int main(int argc, char *argv[]) {
        Server servers[_SERVER_MAX] = {
                [SERVER_MEMVISORD] = { .kind = SERVER_MEMVISORD, .name = "memvisord" },
                [SERVER_GO] = { .kind = SERVER_GO, .name = "go" },
        };
        const char *tmproot = getenv("TMPDIR") ?: "/tmp";
        _cleanup_free_ char *tmpdir = NULL;
        bool only = false;
        long cpus;
        int r;

        log_set_identifier(program_invocation_short_name);
        log_set_target(LOG_TARGET_CONSOLE);

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        for (ServerKind k = 0; k < _SERVER_MAX; k++)
                only = only || arg_only[k];
        for (ServerKind k = 0; k < _SERVER_MAX; k++)
                servers[k].enabled = !only || arg_only[k];

        if (servers[SERVER_MEMVISORD].enabled) {
                r = arg_memvisord ? find_in_path(arg_memvisord, &servers[SERVER_MEMVISORD].binary)
                                  : find_memvisord(&servers[SERVER_MEMVISORD].binary);
                if (r < 0) {
                        log_error_errno(r, "Cannot find memvisord%s%s: %m; pass its path as argument.",
                                        arg_memvisord ? " at " : "", strempty(arg_memvisord));
                        return EXIT_FAILURE;
                }
        }
        if (servers[SERVER_GO].enabled) {
                r = find_in_path(arg_go ?: "varlink-go-certification", &servers[SERVER_GO].binary);
                if (r < 0) {
                        if (arg_go || arg_only[SERVER_GO]) {
                                log_error_errno(r, "Cannot find the Go server %s: %m",
                                                arg_go ?: "varlink-go-certification");
                                return EXIT_FAILURE;
                        }
                        log_warning("varlink-go-certification not found (Debian package varlink-go); "
                                    "measuring memvisord alone, no ratios.");
                        servers[SERVER_GO].enabled = false;
                }
        }

        r = install_signal_handlers();
        if (r < 0) {
                log_error_errno(r, "Failed to install signal handlers: %m");
                return EXIT_FAILURE;
        }

        if (asprintf(&tmpdir, "%s/varlink-calls.XXXXXX", tmproot) < 0)
                return log_oom(), EXIT_FAILURE;
        if (!mkdtemp(tmpdir)) {
                log_error_errno(errno, "Failed to create a temporary directory under %s: %m", tmproot);
                return EXIT_FAILURE;
        }

        cpus = sysconf(_SC_NPROCESSORS_ONLN);
        printf("varlink-calls: %s, %u rounds x %.1fs per server and mode, window %u, %s client, %ld CPUs\n",
               GETINFO_METHOD, arg_rounds, (double) arg_duration_usec / (double) USEC_PER_SEC, arg_window,
               arg_client == CLIENT_RAW ? "raw" : "library", cpus);

        r = run(servers, tmpdir);
        if (r == -EINTR || interrupted) {
                printf("\n");
                fflush(stdout);
                log_error("Interrupted by signal %i, cleaning up.", (int) interrupted);
        }

        for (ServerKind k = 0; k < _SERVER_MAX; k++) {
                server_stop(&servers[k]);
                free(servers[k].binary);
                free(servers[k].socket_path);
                free(servers[k].log_path);
                free(servers[k].product);
                free(servers[k].reference);
        }

        if (arg_keep)
                printf("kept %s\n", tmpdir);
        else
                (void) nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);

        free(arg_memvisord);
        free(arg_go);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
