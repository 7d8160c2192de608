/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "basic/buffer.h"
#include "basic/log.h"
#include "basic/macro.h"

/* The libFuzzer entry point every fuzz target defines. Built either with -fsanitize=fuzzer, or with
 * fuzz-main.c, which replays files and corpus directories given on the command line. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Helpers the targets share. */

/* Quiet the code under test unless FUZZ_DEBUG is set. */
static inline void fuzz_setup_logging(void) {
        if (!getenv("FUZZ_DEBUG"))
                log_set_max_level(LOG_ERR);
}

/* The input as a NUL-terminated string (the parsers see it up to the first NUL, as they would from a file
 * or a C string). Never NULL: allocation failure aborts. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
        char *text = malloc(size + 1);

        if (!text)
                abort();
        memcpy(text, data, size);
        text[size] = 0;
        return text;
}

/* A failure must be one of the documented errors: aborts when r < 0 and is none of the n_allowed negative
 * errno values given. Use FUZZ_CHECK_ERROR(r, -EINVAL, -ERANGE, ...). */
static inline void fuzz_check_error(int r, const int *allowed, size_t n_allowed) {
        if (r >= 0)
                return;
        for (size_t i = 0; i < n_allowed; i++)
                if (r == allowed[i])
                        return;
        fprintf(stderr, "Unexpected error %d\n", r);
        abort();
}
#define FUZZ_CHECK_ERROR(r, ...)                                                                        \
        fuzz_check_error((r), (const int[]) { __VA_ARGS__ }, ELEMENTSOF(((const int[]) { __VA_ARGS__ })))

#define FUZZ_LOOP_MAX 100000U

/* Runs the loop until idle; a loop that never settles is a bug. */
static inline void fuzz_run_until_idle(sd_event *e) {
        for (unsigned i = 0; i < FUZZ_LOOP_MAX; i++) {
                int r = sd_event_run(e, 0);

                if (r < 0)
                        abort();
                if (r == 0)
                        return;
        }
        fprintf(stderr, "Event loop still busy after %u iterations.\n", FUZZ_LOOP_MAX);
        abort();
}

/* A non-blocking AF_UNIX stream socketpair; failure aborts. */
static inline void fuzz_socketpair(int pair[2]) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0)
                abort();
}

/* Sends the next chunk of the input to the peer: the step-th of a fixed sequence of chunk sizes, so partial
 * reads and messages split anywhere are exercised. Advances *off by what was sent (nothing when the socket
 * is full). Returns false if the peer hung up. Call with step 0, 1, 2, ... while *off < size. */
static inline bool fuzz_send_chunk(int fd, const uint8_t *data, size_t size, size_t *off, size_t step) {
        static const size_t chunks[] = { 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 512, 4096 };
        size_t n = MIN(chunks[step % ELEMENTSOF(chunks)], size - *off);
        ssize_t k = send(fd, data + *off, n, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (k < 0) {
                if (errno == EPIPE || errno == ECONNRESET)
                        return false;
                if (errno != EAGAIN)
                        abort();
        } else
                *off += (size_t) k;
        return true;
}

/* Reads once from the peer into in (up to 16 KiB). Returns 1 when bytes were appended, 0 when there is
 * nothing to read right now, -1 on EOF or a reset connection. */
static inline int fuzz_recv(int fd, ByteBuffer *in) {
        char *p = byte_buffer_reserve(in, 16384, SIZE_MAX);
        ssize_t n;

        if (!p)
                abort();
        n = recv(fd, p, 16384, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN)
                        return 0;
                if (errno == ECONNRESET)
                        return -1;
                abort();
        }
        if (n == 0)
                return -1;
        byte_buffer_commit(in, (size_t) n);
        return 1;
}
