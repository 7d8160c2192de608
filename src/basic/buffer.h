/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "basic/macro.h"

/* A growable byte queue: data is appended at the end and consumed from the front. */
typedef struct ByteBuffer {
        char *data;
        size_t start;   /* first unconsumed byte */
        size_t end;     /* one past the last byte */
        size_t allocated;
} ByteBuffer;

static inline size_t byte_buffer_size(const ByteBuffer *b) {
        return b->end - b->start;
}

static inline const char *byte_buffer_head(const ByteBuffer *b) {
        return b->data ? b->data + b->start : NULL;
}

/* Makes room for at least n more bytes at the end; returns a pointer to it. Does not grow beyond
 * max_total bytes of content (start..end plus n); returns NULL with errno=ENOBUFS then. */
char *byte_buffer_reserve(ByteBuffer *b, size_t n, size_t max_total);
/* Marks n bytes as written behind the end (after byte_buffer_reserve). */
static inline void byte_buffer_commit(ByteBuffer *b, size_t n) {
        b->end += n;
}
int byte_buffer_append(ByteBuffer *b, const void *p, size_t n, size_t max_total);
/* Drops n bytes from the front; releases large allocations once empty. */
void byte_buffer_consume(ByteBuffer *b, size_t n);
void byte_buffer_done(ByteBuffer *b);
/* Sends what the buffer holds to the socket fd without blocking (MSG_DONTWAIT | MSG_NOSIGNAL), consuming what
 * was sent: 0 when all of it went or the socket is full (EAGAIN: wait for EPOLLOUT), or a negative errno. */
int byte_buffer_send(ByteBuffer *b, int fd);
