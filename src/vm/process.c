/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "basic/fileio.h"
#include "vm/process.h"
#include "basic/rlimit-util.h"
#include "basic/strv.h"

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif

static int sys_pidfd_open(pid_t pid) {
        return (int) syscall(__NR_pidfd_open, pid, 0);
}

int pidfd_send_sig(int pidfd, int sig) {
        if (syscall(__NR_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
                return -errno;
        return 0;
}

int find_executable(const char *name, char **ret_path) {
        _cleanup_free_ char *path_copy = NULL;
        const char *path_env;
        char *state = NULL;
        bool found_non_exec = false;

        if (isempty(name))
                return -EINVAL;

        if (strchr(name, '/')) {
                if (access(name, X_OK) < 0)
                        return -errno;
                char *p = strdup(name);
                if (!p)
                        return -ENOMEM;
                *ret_path = p;
                return 0;
        }

        path_env = getenv("PATH") ?: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        path_copy = strdup(path_env);
        if (!path_copy)
                return -ENOMEM;

        for (char *dir = strtok_r(path_copy, ":", &state); dir; dir = strtok_r(NULL, ":", &state)) {
                _cleanup_free_ char *p = path_join(dir, name);
                struct stat st;

                if (!p)
                        return -ENOMEM;
                if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (access(p, X_OK) < 0) {
                        found_non_exec = true;
                        continue;
                }
                *ret_path = TAKE_PTR(p);
                return 0;
        }
        return found_non_exec ? -EACCES : -ENOENT;
}

/* In the forked child: "MESSAGE (errno N)\n" without stdio (async-signal-safe). */
static void child_write_errno(int fd, int error) {
        char buf[16], *p = buf + sizeof(buf);
        unsigned v = (unsigned) (error < 0 ? -error : error);

        *--p = '\n';
        *--p = ')';
        do
                *--p = (char) ('0' + v % 10);
        while ((v /= 10) > 0 && p > buf);
        (void) !write(fd, PROCESS_SPAWN_AFFINITY_FAILED " (errno ", strlen(PROCESS_SPAWN_AFFINITY_FAILED " (errno "));
        (void) !write(fd, p, (size_t) (buf + sizeof(buf) - p));
}

int process_spawn(const char *path, char *const *argv, int out_fd, const int *pass_fds, size_t n_pass_fds,
                  const cpu_set_t *affinity, pid_t *ret_pid, int *ret_pidfd) {
        _cleanup_close_ int null_fd = -EBADF;
        int pidfd;
        pid_t pid;

        if (out_fd < 0 || n_pass_fds > PROCESS_SPAWN_MAX_FDS || (n_pass_fds > 0 && !pass_fds))
                return -EINVAL;
        for (size_t i = 0; i < n_pass_fds; i++)
                if (pass_fds[i] < 0)
                        return -EBADF;

        null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0)
                return -errno;

        pid = fork();
        if (pid < 0)
                return -errno;

        if (pid == 0) {
                /* Child: only async-signal-safe calls from here on. */
                int high[PROCESS_SPAWN_MAX_FDS], high_null, high_out, first_free = 3 + (int) n_pass_fds;
                sigset_t ss;

                (void) setsid();

                sigemptyset(&ss);
                (void) sigprocmask(SIG_SETMASK, &ss, NULL);
                for (int sig = 1; sig < _NSIG; sig++)
                        if (sig != SIGKILL && sig != SIGSTOP)
                                (void) signal(sig, SIG_DFL);

                /* First a copy of every fd to place above all the places (0 … 2 + n), so that placing one
                 * never overwrites another still to be placed; then each copy to its place (dup2 clears
                 * FD_CLOEXEC there); the copies go with close_range. */
                high_null = fcntl(null_fd, F_DUPFD_CLOEXEC, first_free);
                high_out = fcntl(out_fd, F_DUPFD_CLOEXEC, first_free);
                if (high_null < 0 || high_out < 0)
                        _exit(126);
                for (size_t i = 0; i < n_pass_fds; i++) {
                        high[i] = fcntl(pass_fds[i], F_DUPFD_CLOEXEC, first_free);
                        if (high[i] < 0)
                                _exit(126);
                }
                if (dup2(high_null, STDIN_FILENO) < 0 || dup2(high_out, STDOUT_FILENO) < 0 ||
                    dup2(high_out, STDERR_FILENO) < 0)
                        _exit(126);
                for (size_t i = 0; i < n_pass_fds; i++)
                        if (dup2(high[i], 3 + (int) i) < 0)
                                _exit(126);
                if (syscall(__NR_close_range, (unsigned) first_free, ~0U, 0U) < 0)
                        for (int fd = first_free; fd < 65536; fd++)
                                (void) close(fd);
                /* the soft limit of open files the service manager gave, not the daemon's raised one */
                rlimit_nofile_restore();

                /* Before execv: every thread QEMU will make inherits it, none runs anywhere else first. */
                if (affinity && sched_setaffinity(0, sizeof(cpu_set_t), affinity) < 0) {
                        child_write_errno(STDERR_FILENO, errno);
                        _exit(PROCESS_SPAWN_EXIT_AFFINITY);
                }

                execv(path, argv);
                _exit(127);
        }

        /* The child is ours and not yet reaped, so this pidfd cannot refer to another process. */
        pidfd = sys_pidfd_open(pid);
        if (pidfd < 0) {
                int r = -errno;
                (void) kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)    /* no zombie left */
                        ;
                return r;
        }

        *ret_pid = pid;
        *ret_pidfd = pidfd;
        return 0;
}

int process_get_stat(const char *proc_root, pid_t pid, char *ret_state, uint64_t *ret_starttime) {
        _cleanup_free_ char *path = NULL, *buf = NULL;
        const char *p;
        uint64_t v;
        int r;

        if (asprintf(&path, "%s/%i/stat", proc_root, (int) pid) < 0)
                return -ENOMEM;
        r = read_full_file(path, 64 * 1024, &buf, NULL);
        if (r == -ENOENT)
                return -ESRCH;
        if (r < 0)
                return r;

        /* The comm field may contain spaces and parentheses: skip to the last ')'. */
        p = strrchr(buf, ')');
        if (!p)
                return -EINVAL;
        p++;
        while (*p == ' ')
                p++;
        if (ret_state)
                *ret_state = *p;
        /* Fields after comm start at 3 (state); starttime is field 22. */
        for (int field = 3; field < 22; field++) {
                while (*p == ' ')
                        p++;
                p = strchr(p, ' ');
                if (!p)
                        return -EINVAL;
        }
        while (*p == ' ')
                p++;
        if (sscanf(p, "%" SCNu64, &v) != 1)
                return -EINVAL;
        if (ret_starttime)
                *ret_starttime = v;
        return 0;
}

int process_get_starttime(const char *proc_root, pid_t pid, uint64_t *ret) {
        return process_get_stat(proc_root, pid, NULL, ret);
}

int process_adopt(pid_t pid, uint64_t starttime, int *ret_pidfd) {
        _cleanup_close_ int pidfd = -EBADF;
        uint64_t st;
        char state = 0;
        int r;

        if (pid <= 1)
                return -EINVAL;

        pidfd = sys_pidfd_open(pid);
        if (pidfd < 0)
                return errno == ESRCH ? -ESRCH : -errno;

        r = process_get_stat("/proc", pid, &state, &st);
        if (r < 0)
                return r;
        if (st != starttime)
                return -ESRCH; /* the pid now belongs to another process */
        if (state == 'Z' || state == 'X')
                return -ESRCH; /* dead, waiting for whoever inherited it to reap it */

        *ret_pidfd = TAKE_FD(pidfd);
        return 0;
}
