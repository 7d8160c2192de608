/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/socket.h>

#include "basic/buffer.h"

/* Empty buffers larger than this are released, so idle peers cost no memory. */
#define BYTE_BUFFER_KEEP (64U * 1024U)

char *byte_buffer_reserve(ByteBuffer *b, size_t n, size_t max_total) {
        size_t used = byte_buffer_size(b);

        if (used > max_total || n > max_total - used) {
                errno = ENOBUFS;
                return NULL;
        }

        if (b->data && b->allocated - b->end >= n)
                return b->data + b->end;

        /* Compact first when that gives enough room. */
        if (b->start > 0 && b->allocated - used >= n) {
                memmove(b->data, b->data + b->start, used);
                b->start = 0;
                b->end = used;
                return b->data + b->end;
        }

        size_t want = MAX(used + n, (size_t) 4096);
        if (want < b->allocated * 2)
                want = b->allocated * 2;
        if (want > max_total)
                want = max_total; /* ≥ used + n, checked above */

        char *p = malloc(want);
        if (!p) {
                errno = ENOMEM;
                return NULL;
        }
        if (used > 0)
                memcpy(p, b->data + b->start, used);
        free(b->data);
        b->data = p;
        b->allocated = want;
        b->start = 0;
        b->end = used;
        return b->data + b->end;
}

int byte_buffer_append(ByteBuffer *b, const void *p, size_t n, size_t max_total) {
        char *d = byte_buffer_reserve(b, n, max_total);
        if (!d)
                return -errno;
        memcpy(d, p, n);
        b->end += n;
        return 0;
}

void byte_buffer_consume(ByteBuffer *b, size_t n) {
        b->start += n;
        if (b->start >= b->end) {
                b->start = b->end = 0;
                if (b->allocated > BYTE_BUFFER_KEEP) {
                        b->data = mfree(b->data);
                        b->allocated = 0;
                }
        }
}

void byte_buffer_done(ByteBuffer *b) {
        free(b->data);
        *b = (ByteBuffer) {};
}

int byte_buffer_send(ByteBuffer *b, int fd) {
        while (byte_buffer_size(b) > 0) {
                ssize_t k = send(fd, byte_buffer_head(b), byte_buffer_size(b), MSG_DONTWAIT | MSG_NOSIGNAL);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                byte_buffer_consume(b, (size_t) k);
        }
        return 0;
}
