/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A guest's console history: one file per boot, DIR/boot-N.log (N = 1, 2, …, counting on from the newest file
 * there), each opening with a header line
 *
 *      -- memvisor: guest NAME, boot N, started 2026-12-05 01:50:00 UTC, QEMU pid 1234; previous boot ended: … --
 *
 * At most `keep` files are kept (the oldest removed first when a boot begins), each at most `max_size` bytes: the
 * guest's output past that is dropped and a line says so. DIR is opened by the caller without following links;
 * every file is reached relative to it with O_NOFOLLOW. Plain file work, no event loop: vm-console.c feeds it. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "basic/macro.h"

#define CONSOLE_KEEP_BOOTS_DEFAULT 10U
#define CONSOLE_KEEP_BOOTS_MAX 1000U
#define CONSOLE_BOOT_SIZE_DEFAULT (4ULL * 1024 * 1024)
#define CONSOLE_BOOT_SIZE_MIN 4096ULL
#define CONSOLE_BOOT_SIZE_MAX (1024ULL * 1024 * 1024)
/* The most a directory listing considers (the directory is ours; this bounds a listing all the same). */
#define CONSOLE_BOOTS_SCAN_MAX 4096U
/* The line the kernel prints when it panics. */
#define CONSOLE_PANIC_MARKER "Kernel panic - not syncing"

typedef struct ConsoleBootHeader {
        const char *guest;
        uint64_t boot;                  /* filled in by console_writer_begin() */
        uint64_t realtime_usec;
        pid_t pid;                      /* 0: unknown */
        const char *previous_end;       /* NULL: not known */
} ConsoleBootHeader;

typedef struct ConsoleWriter {
        int fd;                         /* -EBADF when closed */
        uint64_t boot;
        uint64_t size;                  /* bytes in the file */
        uint64_t max_size;
        bool capped;                    /* output was dropped (the notice line written) */
        bool panic_seen;                /* CONSOLE_PANIC_MARKER went by (also in dropped output) */
        char carry[sizeof(CONSOLE_PANIC_MARKER) - 1]; /* the last bytes seen, for a marker split over writes */
        size_t carry_len;
} ConsoleWriter;

#define CONSOLE_WRITER_INIT { .fd = -EBADF }

/* The boot numbers kept in DIR, ascending (*ret NULL when none). */
int console_boots_list(int dir_fd, uint64_t **ret, size_t *ret_n);
/* Picks a boot as journalctl -b does: want <= 0 counts back from the newest (0 the newest, -1 the one before),
 * want > 0 is a boot number. -ENODATA when nothing is kept, -ENOENT when that boot is not kept. */
int console_boot_resolve(const uint64_t *boots, size_t n, int64_t want, uint64_t *ret);

/* Begins a new boot: removes the oldest files so that with the new one at most keep remain, creates
 * boot-N.log (N one more than the newest kept) and writes the header (h->boot is set). */
int console_writer_begin(ConsoleWriter *w, int dir_fd, unsigned keep, uint64_t max_size, ConsoleBootHeader *h);
/* Opens the newest boot again to append to it (a guest re-adopted after a daemon restart). -ENOENT if none. */
int console_writer_resume(ConsoleWriter *w, int dir_fd, uint64_t max_size);
/* Appends what the guest wrote, up to the size bound; past it writes once "-- memvisor: … capped …" and drops the
 * rest. Scans everything for the panic marker. Returns the bytes written to the file, or a negative errno. */
ssize_t console_writer_write(ConsoleWriter *w, const void *data, size_t n);
void console_writer_close(ConsoleWriter *w);

/* Formats the header line (with its newline). */
int console_header_format(const ConsoleBootHeader *h, char **ret);

typedef struct ConsoleChunk {
        char *data;                     /* not NUL-terminated text: what the guest wrote, as is */
        size_t size;
        uint64_t start, end;            /* the byte range of the file it is */
        uint64_t file_size;
        bool truncated;                 /* tail mode: earlier bytes of the boot are left out */
} ConsoleChunk;

void console_chunk_done(ConsoleChunk *c);

/* Reads boot-N.log: from offset (offset mode; -ERANGE past the end) or, when offset is UINT64_MAX, its tail: the
 * last `lines` lines (0: all) within the last max_bytes, beginning at a line start. At most max_bytes either way. */
int console_boot_read(int dir_fd, uint64_t boot, uint64_t offset, size_t lines, size_t max_bytes, ConsoleChunk *ret);

/* The lines that tell of a panic in text: from the last line holding CONSOLE_PANIC_MARKER on, or the last lines
 * when there is none; at most max_lines, each escaped (utf8_escape_untrusted) and without its newline. */
int console_panic_lines(const char *text, size_t n, size_t max_lines, char ***ret);

/* Removes DIR's boot files (an undefined guest); 0 or the first error. */
int console_history_clear(int dir_fd);
