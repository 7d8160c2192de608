/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* File helpers of the experiment store: everything relative to a directory fd, never through a symbolic link. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "experiment/experiment-files.h"
#include "experiment/experiment-store.h"

int experiment_write_all(int fd, const char *data, size_t size) {
        while (size > 0) {
                ssize_t n = write(fd, data, size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                data += n;
                size -= (size_t) n;
        }
        return 0;
}

/* Replaces dir/name with data: temporary file, fsync(), rename(), fsync() of the directory. */
int experiment_write_atomic_at(int dir_fd, const char *name, const char *data, size_t size) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (asprintf(&tmp, ".%s.tmp", name) < 0)
                return -ENOMEM;
        (void) unlinkat(dir_fd, tmp, 0);        /* a leftover of a crash between write and rename */
        fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        r = experiment_write_all(fd, data, size);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r == 0 && close(TAKE_FD(fd)) < 0)
                r = -errno;
        if (r == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dir_fd, tmp, 0);
                return r;
        }
        return fsync(dir_fd) < 0 ? -errno : 0;
}

int experiment_write_json_at(int dir_fd, const char *name, json_object *o) {
        const char *text;
        size_t len;

        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        if (len > EXPERIMENT_DOCUMENT_MAX)
                return -EMSGSIZE;
        return experiment_write_atomic_at(dir_fd, name, text, len);
}

/* Parses exactly buf[0..len) as one JSON object (strict, UTF-8 checked, depth bounded). */
int experiment_parse_object(const char *buf, size_t len, json_object **ret) {
        json_tokener *tok;
        json_object *o;
        bool ok;

        if (len > INT32_MAX || memchr(buf, 0, len))
                return -EBADMSG;
        tok = json_tokener_new_ex(EXPERIMENT_JSON_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, buf, (int) len);
        ok = o && json_tokener_get_error(tok) == json_tokener_success &&
             json_tokener_get_parse_end(tok) == len && json_object_is_type(o, json_type_object);
        json_tokener_free(tok);
        if (!ok) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

/* Reads dir/name (a regular file, at most max bytes) and parses it as one JSON object. */
int experiment_read_json_at(int dir_fd, const char *name, size_t max, json_object **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;

        fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        buf[n] = 0;
        return experiment_parse_object(buf, n, ret);
}

/* The sizes of the regular files in a directory (hidden ones included). */
uint64_t experiment_dir_bytes(int dir_fd) {
        _cleanup_close_ int fd = -EBADF;
        uint64_t sum = 0;
        DIR *d;

        fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        d = fdopendir(TAKE_FD(fd));
        if (!d)
                return 0;
        for (struct dirent *de; (de = readdir(d));) {
                struct stat st;

                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) >= 0 && S_ISREG(st.st_mode))
                        sum += (uint64_t) st.st_size;
        }
        (void) closedir(d);
        return sum;
}

/* Removes parent/name: its files (links themselves, never their targets), then the directory, then syncs parent. */
int experiment_remove_dir(int parent_fd, const char *name) {
        _cleanup_close_ int fd = -EBADF;
        DIR *d;
        int r = 0;

        fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                struct stat st;

                r = -errno;
                if (r == -ENOENT)
                        return 0;
                /* Not a directory of ours (a symbolic link, a file): remove the name itself. */
                if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) >= 0 && !S_ISDIR(st.st_mode)) {
                        if (unlinkat(parent_fd, name, 0) < 0)
                                return -errno;
                        return fsync(parent_fd) < 0 ? -errno : 0;
                }
                return r;
        }
        d = fdopendir(TAKE_FD(fd));
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT && r == 0)
                        r = -errno;     /* a subdirectory we never made: left, and the rmdir below fails */
        }
        (void) closedir(d);
        if (unlinkat(parent_fd, name, AT_REMOVEDIR) < 0)
                return r < 0 ? r : -errno;
        return fsync(parent_fd) < 0 ? -errno : 0;
}

bool experiment_json_is_finite(json_object *o) {
        switch (json_object_get_type(o)) {
        case json_type_double:
                return isfinite(json_object_get_double(o));
        case json_type_array:
                for (size_t i = 0, n = json_object_array_length(o); i < n; i++)
                        if (!experiment_json_is_finite(json_object_array_get_idx(o, i)))
                                return false;
                return true;
        case json_type_object: {
                json_object_object_foreach(o, key, value) {
                        (void) key;
                        if (!experiment_json_is_finite(value))
                                return false;
                }
                return true;
        }
        case json_type_null:
        case json_type_boolean:
        case json_type_int:
        case json_type_string:
                return true;
        }
        return true;
}
