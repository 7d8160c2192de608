/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ByteBuffer: appending, consuming, compaction, growth and the content limit. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "basic/buffer.h"

static void assert_content(const ByteBuffer *b, const char *expected) {
        assert_int_equal(byte_buffer_size(b), strlen(expected));
        if (byte_buffer_size(b) > 0)
                assert_memory_equal(byte_buffer_head(b), expected, strlen(expected));
}

static void test_empty(void **state) {
        ByteBuffer b = {};

        assert_int_equal(byte_buffer_size(&b), 0);
        byte_buffer_done(&b);
        assert_null(b.data);
        assert_int_equal(b.allocated, 0);
}

static void test_append_consume(void **state) {
        ByteBuffer b = {};

        assert_int_equal(byte_buffer_append(&b, "hello", 5, 100), 0);
        assert_int_equal(byte_buffer_append(&b, " world", 6, 100), 0);
        assert_content(&b, "hello world");

        byte_buffer_consume(&b, 6);
        assert_content(&b, "world");
        byte_buffer_consume(&b, 5);
        assert_int_equal(byte_buffer_size(&b), 0);
        /* Empty again: the next data starts at the front. */
        assert_int_equal(b.start, 0);
        assert_int_equal(byte_buffer_append(&b, "again", 5, 100), 0);
        assert_content(&b, "again");
        byte_buffer_done(&b);
}

static void test_append_nothing(void **state) {
        ByteBuffer b = {};

        /* Zero bytes is a valid append, also before anything was allocated (and whatever errno held). */
        errno = EIO;
        assert_int_equal(byte_buffer_append(&b, "", 0, 100), 0);
        assert_int_equal(byte_buffer_size(&b), 0);
        assert_int_equal(byte_buffer_append(&b, "x", 1, 100), 0);
        assert_int_equal(byte_buffer_append(&b, "", 0, 100), 0);
        assert_content(&b, "x");
        byte_buffer_done(&b);
}

static void test_reserve_commit(void **state) {
        ByteBuffer b = {};
        char *p;

        p = byte_buffer_reserve(&b, 10, 1000);
        assert_non_null(p);
        assert_true(b.allocated - b.end >= 10);
        /* Reserving does not add content. */
        assert_int_equal(byte_buffer_size(&b), 0);
        memcpy(p, "abc", 3);
        byte_buffer_commit(&b, 3);
        assert_content(&b, "abc");

        /* Committing less than reserved is fine; the rest stays free. */
        p = byte_buffer_reserve(&b, 100, 1000);
        assert_non_null(p);
        assert_ptr_equal(p, byte_buffer_head(&b) + 3);
        memcpy(p, "de", 2);
        byte_buffer_commit(&b, 2);
        assert_content(&b, "abcde");
        byte_buffer_done(&b);
}

static void test_limit(void **state) {
        ByteBuffer b = {};
        char *p;

        /* Exactly up to the limit. */
        assert_int_equal(byte_buffer_append(&b, "0123456789", 10, 10), 0);
        /* One more byte: refused, content unchanged. */
        errno = 0;
        assert_int_equal(byte_buffer_append(&b, "x", 1, 10), -ENOBUFS);
        assert_content(&b, "0123456789");

        errno = 0;
        p = byte_buffer_reserve(&b, 1, 10);
        assert_null(p);
        assert_int_equal(errno, ENOBUFS);

        /* Huge requests must not overflow the size arithmetic. */
        assert_null(byte_buffer_reserve(&b, SIZE_MAX, 10));
        assert_int_equal(errno, ENOBUFS);
        assert_null(byte_buffer_reserve(&b, SIZE_MAX - 5, SIZE_MAX));
        assert_int_equal(errno, ENOBUFS);

        /* Consumed bytes no longer count. */
        byte_buffer_consume(&b, 4);
        assert_int_equal(byte_buffer_append(&b, "abcd", 4, 10), 0);
        assert_content(&b, "456789abcd");
        assert_int_equal(byte_buffer_append(&b, "e", 1, 10), -ENOBUFS);

        /* A lower limit than the current content refuses everything, even zero bytes. */
        assert_null(byte_buffer_reserve(&b, 0, 5));
        assert_int_equal(errno, ENOBUFS);
        assert_content(&b, "456789abcd");
        byte_buffer_done(&b);
}

static void test_compaction(void **state) {
        ByteBuffer b = {};
        char data[4096];
        size_t allocated;

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (char) ('a' + i % 26);

        assert_int_equal(byte_buffer_append(&b, data, sizeof(data), SIZE_MAX), 0);
        allocated = b.allocated;
        byte_buffer_consume(&b, sizeof(data) - 10);

        /* Room at the front suffices: reused without growing, content moved to the front intact. */
        assert_int_equal(byte_buffer_append(&b, "0123456789", 10, SIZE_MAX), 0);
        assert_int_equal(b.allocated, allocated);
        assert_int_equal(byte_buffer_size(&b), 20);
        assert_memory_equal(byte_buffer_head(&b), data + sizeof(data) - 10, 10);
        assert_memory_equal(byte_buffer_head(&b) + 10, "0123456789", 10);
        byte_buffer_done(&b);
}

static void test_growth(void **state) {
        ByteBuffer b = {};
        const size_t total = 3 * 1024 * 1024 + 17;
        size_t consumed = 0;

        /* Interleave appends and partial consumes; the content must stay a contiguous sequence. */
        for (size_t off = 0; off < total;) {
                char chunk[777];
                size_t n = MIN(sizeof(chunk), total - off);

                for (size_t i = 0; i < n; i++)
                        chunk[i] = (char) ((off + i) * 7 % 251);
                assert_int_equal(byte_buffer_append(&b, chunk, n, SIZE_MAX), 0);
                off += n;

                if (off % 3 == 0) {
                        size_t k = byte_buffer_size(&b) / 2;
                        for (size_t i = 0; i < k; i++)
                                assert_int_equal((unsigned char) byte_buffer_head(&b)[i],
                                                 (unsigned char) ((consumed + i) * 7 % 251));
                        byte_buffer_consume(&b, k);
                        consumed += k;
                }
        }

        assert_int_equal(byte_buffer_size(&b), total - consumed);
        for (size_t i = 0; i < byte_buffer_size(&b); i++)
                if ((unsigned char) byte_buffer_head(&b)[i] != (unsigned char) ((consumed + i) * 7 % 251))
                        fail_msg("byte %zu is wrong", consumed + i);
        byte_buffer_done(&b);
}

static void test_release_when_empty(void **state) {
        ByteBuffer b = {};
        const size_t big = 1024 * 1024;
        char *p;

        /* A large buffer that empties is released, so idle connections hold no memory. */
        p = byte_buffer_reserve(&b, big, SIZE_MAX);
        assert_non_null(p);
        memset(p, 'x', big);
        byte_buffer_commit(&b, big);
        byte_buffer_consume(&b, big - 1);
        assert_non_null(b.data);
        byte_buffer_consume(&b, 1);
        assert_int_equal(byte_buffer_size(&b), 0);
        assert_null(b.data);
        assert_int_equal(b.allocated, 0);

        /* A small one is kept for reuse. */
        assert_int_equal(byte_buffer_append(&b, "abc", 3, SIZE_MAX), 0);
        p = b.data;
        byte_buffer_consume(&b, 3);
        assert_ptr_equal(b.data, p);
        assert_int_equal(byte_buffer_append(&b, "def", 3, SIZE_MAX), 0);
        assert_ptr_equal(b.data, p);
        assert_content(&b, "def");

        byte_buffer_done(&b);
        assert_null(b.data);
        assert_int_equal(byte_buffer_size(&b), 0);
}

/* byte_buffer_send(): all of it to a socket with room; up to a full socket (0, the rest kept, in order); EPIPE
 * once the peer is gone (no SIGPIPE). */
static void test_send(void **state) {
        ByteBuffer b = {};
        int sv[2], sndbuf = 4096;
        char chunk[4096], got[4096];
        size_t total = 0, received = 0;

        (void) state;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(byte_buffer_append(&b, "hello", 5, 1 << 20), 0);
        assert_int_equal(byte_buffer_send(&b, sv[0]), 0);
        assert_int_equal(byte_buffer_size(&b), 0);
        assert_int_equal(read(sv[1], got, sizeof got), 5);
        assert_memory_equal(got, "hello", 5);

        (void) setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        for (size_t i = 0; i < 256; i++) {
                memset(chunk, (int) (i & 0xff), sizeof chunk);
                assert_int_equal(byte_buffer_append(&b, chunk, sizeof chunk, 16 << 20), 0);
                total += sizeof chunk;
        }
        assert_int_equal(byte_buffer_send(&b, sv[0]), 0);
        assert_true(byte_buffer_size(&b) > 0);          /* the socket filled up */
        while (received < total) {
                ssize_t n = read(sv[1], got, sizeof got);

                assert_true(n > 0);
                for (ssize_t k = 0; k < n; k++)
                        assert_int_equal((unsigned char) got[k], ((received + (size_t) k) / sizeof chunk) & 0xff);
                received += (size_t) n;
                assert_int_equal(byte_buffer_send(&b, sv[0]), 0);
        }
        assert_int_equal(byte_buffer_size(&b), 0);

        assert_int_equal(byte_buffer_append(&b, "x", 1, 1 << 20), 0);
        close(sv[1]);
        assert_int_equal(byte_buffer_send(&b, sv[0]), -EPIPE);
        close(sv[0]);
        byte_buffer_done(&b);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty),
                cmocka_unit_test(test_send),
                cmocka_unit_test(test_append_consume),
                cmocka_unit_test(test_append_nothing),
                cmocka_unit_test(test_reserve_commit),
                cmocka_unit_test(test_limit),
                cmocka_unit_test(test_compaction),
                cmocka_unit_test(test_growth),
                cmocka_unit_test(test_release_when_empty),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
