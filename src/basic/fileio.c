/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "basic/fileio.h"

static int read_full_fd(int fd, size_t max_size, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, allocated = 0;

        for (;;) {
                ssize_t k;

                if (allocated - n < 4096) {
                        size_t m = allocated ? allocated * 2 : 4096 + 1;
                        char *t;

                        if (m > max_size + 4096 + 1)
                                m = max_size + 4096 + 1;
                        if (m <= allocated)
                                return -EFBIG;
                        t = realloc(buf, m);
                        if (!t)
                                return -ENOMEM;
                        buf = t;
                        allocated = m;
                }

                k = read(fd, buf + n, allocated - n - 1);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max_size)
                        return -EFBIG;
        }

        buf[n] = 0;
        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = n;
        return 0;
}

int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

        if (fd < 0)
                return -errno;
        return read_full_fd(fd, max_size, ret, ret_size);
}

int read_full_file_at(int dir_fd, const char *name, size_t max_size, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
        struct stat st;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        return read_full_fd(fd, max_size, ret, ret_size);
}

int write_file_atomic_at(int dir_fd, const char *name, const char *data, size_t size, mode_t mode) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t done = 0;
        int r;

        if (asprintf(&tmp, ".%s.tmp.%i", name, (int) getpid()) < 0)
                return -ENOMEM;
        fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        while (done < size) {
                ssize_t k = write(fd, data + done, size - done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        goto fail;
                }
                done += (size_t) k;
        }
        if (fsync(fd) < 0 || renameat(dir_fd, tmp, dir_fd, name) < 0)
                goto fail;
        /* the rename itself survives a crash of the machine once the directory is synced */
        if (fsync(dir_fd) < 0)
                return -errno;
        return 0;

fail:
        r = -errno;
        (void) unlinkat(dir_fd, tmp, 0);
        return r;
}

static int write_file_atomic_full(const char *path, const char *data, size_t size, mode_t mode, bool sync) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t done = 0;

        if (asprintf(&tmp, "%s.tmp.%i", path, (int) getpid()) < 0)
                return -ENOMEM;

        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;

        while (done < size) {
                ssize_t k = write(fd, data + done, size - done);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        (void) unlink(tmp);
                        return r;
                }
                done += (size_t) k;
        }

        if ((sync && fsync(fd) < 0) || rename(tmp, path) < 0) {
                int r = -errno;
                (void) unlink(tmp);
                return r;
        }
        return 0;
}

int write_file_atomic(const char *path, const char *data, size_t size, mode_t mode) {
        return write_file_atomic_full(path, data, size, mode, true);
}

int write_file_atomic_nosync(const char *path, const char *data, size_t size, mode_t mode) {
        return write_file_atomic_full(path, data, size, mode, false);
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;

        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

char *path_join(const char *a, const char *b) {
        char *r;
        size_t la = strlen(a);

        while (la > 0 && a[la - 1] == '/')
                la--;
        while (*b == '/')
                b++;
        if (asprintf(&r, "%.*s/%s", (int) la, a, b) < 0)
                return NULL;
        return r;
}

int lock_directory(const char *dir, const char *name, int *ret_fd, pid_t *ret_holder) {
        _cleanup_free_ char *path = path_join(dir, name);
        _cleanup_close_ int fd = -EBADF;
        char buf[32];
        ssize_t n;
        int k;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK)
                        return -errno;
                if (ret_holder) {
                        unsigned long pid = 0;

                        n = pread(fd, buf, sizeof(buf) - 1, 0);
                        buf[n > 0 ? n : 0] = 0;
                        *ret_holder = sscanf(buf, "%lu", &pid) == 1 && pid <= INT32_MAX ? (pid_t) pid : 0;
                }
                return -EBUSY;
        }
        k = snprintf(buf, sizeof(buf), "%i\n", (int) getpid());
        if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t) k, 0) != k)
                return errno > 0 ? -errno : -EIO;
        *ret_fd = TAKE_FD(fd);
        return 0;
}
