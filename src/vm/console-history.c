/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "basic/fileio.h"
#include "basic/strv.h"
#include "basic/utf8.h"
#include "vm/console-history.h"

#define BOOT_NAME_MAX 32

static void boot_file_name(uint64_t boot, char buf[static BOOT_NAME_MAX]) {
        (void) snprintf(buf, BOOT_NAME_MAX, "boot-%" PRIu64 ".log", boot);
}

/* "boot-N.log", N a decimal without leading zeros, 1 ≤ N < 10^15. */
static bool boot_file_parse(const char *name, uint64_t *ret) {
        const char *p = startswith(name, "boot-");
        uint64_t v = 0;
        size_t digits = 0;

        if (!p || *p == '0')
                return false;
        for (; *p >= '0' && *p <= '9'; p++, digits++) {
                if (digits >= 15)
                        return false;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        if (digits == 0 || !streq(p, ".log"))
                return false;
        *ret = v;
        return true;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

int console_boots_list(int dir_fd, uint64_t **ret, size_t *ret_n) {
        _cleanup_free_ uint64_t *boots = NULL;
        size_t n = 0;
        struct dirent *de;
        DIR *d;
        int fd;

        fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        boots = calloc(CONSOLE_BOOTS_SCAN_MAX, sizeof(uint64_t));
        if (!boots) {
                closedir(d);
                return -ENOMEM;
        }
        while (n < CONSOLE_BOOTS_SCAN_MAX && (de = readdir(d)))
                if (boot_file_parse(de->d_name, &boots[n]))
                        n++;
        closedir(d);

        qsort(boots, n, sizeof(uint64_t), cmp_u64);
        *ret = n > 0 ? TAKE_PTR(boots) : NULL;
        *ret_n = n;
        return 0;
}

int console_boot_resolve(const uint64_t *boots, size_t n, int64_t want, uint64_t *ret) {
        if (n == 0)
                return -ENODATA;
        if (want <= 0) {
                uint64_t back = want == INT64_MIN ? UINT64_MAX : (uint64_t) -want;

                if (back >= n)
                        return -ENOENT;
                *ret = boots[n - 1 - back];
                return 0;
        }
        for (size_t i = 0; i < n; i++)
                if (boots[i] == (uint64_t) want) {
                        *ret = boots[i];
                        return 0;
                }
        return -ENOENT;
}

int console_header_format(const ConsoleBootHeader *h, char **ret) {
        char when[64] = "?", pid[32] = "unknown";
        time_t t = (time_t) (h->realtime_usec / USEC_PER_SEC);
        struct tm tm;

        if (gmtime_r(&t, &tm))
                (void) strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
        if (h->pid > 0)
                (void) snprintf(pid, sizeof(pid), "%i", (int) h->pid);
        if (asprintf(ret, "-- memvisor: guest %s, boot %" PRIu64 ", started %s, QEMU pid %s; previous boot ended: %s --\n",
                     h->guest, h->boot, when, pid, h->previous_end ?: "not known") < 0)
                return -ENOMEM;
        return 0;
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

int console_writer_begin(ConsoleWriter *w, int dir_fd, unsigned keep, uint64_t max_size, ConsoleBootHeader *h) {
        _cleanup_free_ uint64_t *boots = NULL;
        _cleanup_free_ char *header = NULL;
        _cleanup_close_ int fd = -EBADF;
        char name[BOOT_NAME_MAX];
        size_t n = 0;
        int r;

        if (keep < 1)
                keep = 1;
        r = console_boots_list(dir_fd, &boots, &n);
        if (r < 0)
                return r;
        h->boot = n > 0 ? boots[n - 1] + 1 : 1;
        /* Oldest first, until the new one fits. */
        for (size_t i = 0; n - i >= keep; i++) {
                boot_file_name(boots[i], name);
                if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT)
                        return -errno;
        }

        boot_file_name(h->boot, name);
        fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
                return -errno;
        r = console_header_format(h, &header);
        if (r < 0)
                return r;
        r = write_all(fd, header, strlen(header));
        if (r < 0)
                return r;

        console_writer_close(w);
        *w = (ConsoleWriter) {
                .fd = TAKE_FD(fd),
                .boot = h->boot,
                .size = strlen(header),
                .max_size = max_size,
        };
        return 0;
}

int console_writer_resume(ConsoleWriter *w, int dir_fd, uint64_t max_size) {
        _cleanup_free_ uint64_t *boots = NULL;
        _cleanup_close_ int fd = -EBADF;
        char name[BOOT_NAME_MAX];
        struct stat st;
        size_t n = 0;
        int r;

        r = console_boots_list(dir_fd, &boots, &n);
        if (r < 0)
                return r;
        if (n == 0)
                return -ENOENT;
        boot_file_name(boots[n - 1], name);
        fd = openat(dir_fd, name, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_nlink > 1 || st.st_uid != geteuid())
                return -EBADFD;

        console_writer_close(w);
        *w = (ConsoleWriter) {
                .fd = TAKE_FD(fd),
                .boot = boots[n - 1],
                .size = (uint64_t) st.st_size,
                .max_size = max_size,
                .capped = (uint64_t) st.st_size >= max_size,
        };
        return 0;
}

static void scan_panic(ConsoleWriter *w, const char *data, size_t n) {
        const size_t m = sizeof(CONSOLE_PANIC_MARKER) - 1;
        char joint[2 * sizeof(w->carry)];
        size_t head = MIN(n, m - 1), keep;

        if (w->panic_seen)
                return;
        /* A marker split between the previous writes and this one. */
        memcpy(joint, w->carry, w->carry_len);
        memcpy(joint + w->carry_len, data, head);
        if (memmem(joint, w->carry_len + head, CONSOLE_PANIC_MARKER, m) || memmem(data, n, CONSOLE_PANIC_MARKER, m)) {
                w->panic_seen = true;
                return;
        }
        /* Keep the last m - 1 bytes of the stream. */
        if (n >= m - 1) {
                memcpy(w->carry, data + n - (m - 1), m - 1);
                w->carry_len = m - 1;
                return;
        }
        keep = MIN(w->carry_len, m - 1 - n);
        memmove(w->carry, w->carry + w->carry_len - keep, keep);
        memcpy(w->carry + keep, data, n);
        w->carry_len = keep + n;
}

ssize_t console_writer_write(ConsoleWriter *w, const void *data, size_t n) {
        size_t room, k;
        int r;

        scan_panic(w, data, n);
        if (w->fd < 0)
                return -EBADF;
        if (w->capped)
                return 0;

        room = w->size < w->max_size ? (size_t) MIN(w->max_size - w->size, (uint64_t) SIZE_MAX) : 0;
        k = MIN(n, room);
        r = write_all(w->fd, data, k);
        if (r < 0)
                return r;
        w->size += k;
        if (k < n) {
                _cleanup_free_ char *notice = NULL;

                w->capped = true;
                if (asprintf(&notice, "\n-- memvisor: console output of boot %" PRIu64 " capped at %" PRIu64
                             " bytes ([Console] MaxBootSize=); the rest of this boot is dropped --\n",
                             w->boot, w->max_size) < 0)
                        return -ENOMEM;
                r = write_all(w->fd, notice, strlen(notice));
                if (r < 0)
                        return r;
                w->size += strlen(notice);
        }
        return (ssize_t) k;
}

void console_writer_close(ConsoleWriter *w) {
        w->fd = safe_close(w->fd);
}

void console_chunk_done(ConsoleChunk *c) {
        free(c->data);
        *c = (ConsoleChunk) {};
}

static int pread_all(int fd, char *buf, size_t n, uint64_t offset, size_t *ret) {
        size_t done = 0;

        while (done < n) {
                ssize_t k = pread(fd, buf + done, n - done, (off_t) (offset + done));

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                done += (size_t) k;
        }
        *ret = done;
        return 0;
}

int console_boot_read(int dir_fd, uint64_t boot, uint64_t offset, size_t lines, size_t max_bytes, ConsoleChunk *ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        char name[BOOT_NAME_MAX];
        uint64_t start;
        struct stat st;
        size_t n, skip = 0;
        int r;

        boot_file_name(boot, name);
        fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;

        if (offset != UINT64_MAX) {
                if (offset > (uint64_t) st.st_size)
                        return -ERANGE;
                start = offset;
        } else
                start = (uint64_t) st.st_size > max_bytes ? (uint64_t) st.st_size - max_bytes : 0;

        n = (size_t) MIN((uint64_t) st.st_size - start, (uint64_t) max_bytes);
        buf = malloc(n + 1);
        if (!buf)
                return -ENOMEM;
        r = pread_all(fd, buf, n, start, &n);
        if (r < 0)
                return r;

        if (offset == UINT64_MAX) {
                /* Begin at a line start: a cut line first goes. */
                if (start > 0) {
                        char *nl = memchr(buf, '\n', n);

                        skip = nl ? (size_t) (nl - buf) + 1 : n;
                }
                if (lines > 0) {
                        /* The last `lines` lines: a last line without its newline counts as one. */
                        size_t i = n, seen = 0;

                        if (i > skip && buf[i - 1] == '\n')
                                i--;
                        while (i > skip) {
                                if (buf[i - 1] == '\n' && ++seen == lines)
                                        break;
                                i--;
                        }
                        skip = MAX(skip, i);
                }
                memmove(buf, buf + skip, n - skip);
                n -= skip;
                start += skip;
        }

        *ret = (ConsoleChunk) {
                .data = TAKE_PTR(buf),
                .size = n,
                .start = start,
                .end = start + n,
                .file_size = (uint64_t) st.st_size,
                .truncated = offset == UINT64_MAX && start > 0,
        };
        return 0;
}

int console_panic_lines(const char *text, size_t n, size_t max_lines, char ***ret) {
        _cleanup_(strv_freep) char **lines = NULL;
        const size_t m = sizeof(CONSOLE_PANIC_MARKER) - 1;
        const char *from = NULL, *p, *end = text + n;
        size_t count = 0;
        int r;

        /* The last marker. */
        for (const char *q = text; (q = memmem(q, (size_t) (end - q), CONSOLE_PANIC_MARKER, m)); q += m)
                from = q;
        if (from) {
                while (from > text && from[-1] != '\n')
                        from--;
        } else {
                /* The last max_lines lines. */
                from = end;
                if (from > text && from[-1] == '\n')
                        from--;
                while (from > text) {
                        if (from[-1] == '\n' && ++count == max_lines)
                                break;
                        from--;
                }
        }

        count = 0;
        for (p = from; p < end && count < max_lines; count++) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = nl ? (size_t) (nl - p) : (size_t) (end - p);
                /* A serial console ends its lines with "\r\n": the \r is no part of the line. */
                _cleanup_free_ char *line = utf8_escape_untrusted(p, len > 0 && p[len - 1] == '\r' ? len - 1 : len);

                if (!line)
                        return -ENOMEM;
                r = strv_extend(&lines, line);
                if (r < 0)
                        return r;
                p += len + (nl ? 1 : 0);
        }
        if (!lines) {
                lines = calloc(1, sizeof(char *));
                if (!lines)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(lines);
        return 0;
}

int console_history_clear(int dir_fd) {
        _cleanup_free_ uint64_t *boots = NULL;
        size_t n = 0;
        int r;

        r = console_boots_list(dir_fd, &boots, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                char name[BOOT_NAME_MAX];

                boot_file_name(boots[i], name);
                if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT && r == 0)
                        r = -errno;
        }
        return r;
}
