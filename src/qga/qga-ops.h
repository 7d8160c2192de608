/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Typed readings and actions inside a guest, built on the guest agent client (qga-client.h): reading a guest file
 * (guest-file-open/read/close, never guest-exec), the guest's identity and topology, its counters (/proc/vmstat,
 * the TLB: and CAL: rows of /proc/interrupts, /proc/meminfo) as one typed snapshot, running a program
 * (guest-exec + guest-exec-status), and copying bytes into a guest file (guest-file-write, chunked).
 *
 * Every operation is a chain of agent commands; its callback is called exactly once, with error == NULL and the
 * result, or with the error (the result NULL). Results are borrowed for the duration of the callback. Everything
 * the agent returns is untrusted: file contents are bounded (max_bytes, stated when cut), parsed strictly, and a
 * value that is missing or malformed is reported as unavailable with the reason, never as 0.
 *
 * An operation in flight holds a reference on its client; when the client's connection fails, the operation's
 * current command fails and so does the operation (once). A guest file opened by an operation is closed on every
 * path (guest-file-close is sent even when a read fails, unless the connection is gone).
 *
 * Each qga_…() call returns 0 and calls back later (never from inside the call), or returns a negative errno and
 * never calls back: -EINVAL (bad arguments), -E2BIG, -ENOMEM, -ENOTSUP (guest-info's list lacks a command the
 * operation needs: qga_client_supports() tells which), or what queuing the first command returned (-ENOTCONN when
 * the client is ABSENT, -EBUSY, -EMSGSIZE). qga_get_guest_info() needs no particular command (what is missing is
 * unavailable). */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "qga/qga-client.h"

typedef struct QgaError {
        int error;                      /* negative errno as in qga-client.h: -EIO (the agent's error; or, with
                                         * error_class NULL, a failure the guest reported in a result: a short
                                         * write, chmod exiting non-zero), -ETIMEDOUT,
                                         * -ENOTCONN, -ECONNRESET, -EMSGSIZE, -EBUSY, -EPROTO, -ENOTSUP (the agent
                                         * lacks a command it needs, or disabled it: CommandNotFound; command
                                         * names it), -EBADMSG (a reply that does
                                         * not parse) */
        const char *command;            /* the agent command that failed, e.g. "guest-file-open" */
        const char *error_class;        /* the agent's class with -EIO, else NULL */
        const char *description;        /* in words: the agent's description, or ours */
} QgaError;

/* A counter that could not be taken, and why ("unavailable: guest kernel without CONFIG_DEBUG_TLBFLUSH"). */
typedef struct QgaUnavailable {
        char *name;
        char *reason;
} QgaUnavailable;

typedef struct QgaCounter {
        char *name;
        uint64_t value;
} QgaCounter;

/* ---- reading a file ---- */

/* data is NUL-terminated (not counted in size); truncated: the file had more than max_bytes. */
typedef void (*QgaReadFileCallback)(QgaClient *c, const QgaError *error, const char *data, size_t size, bool truncated,
                                    void *userdata);
/* max_bytes 0 → 1 MiB; at most 16 MiB. Reads in chunks of at most 48 KiB. */
int qga_read_file(QgaClient *c, const char *path, size_t max_bytes, QgaReadFileCallback cb, void *userdata);

/* ---- identity and topology ---- */

typedef struct QgaGuestNode {
        unsigned id;
        char *cpulist;                  /* "0-1" as the guest prints it */
        uint64_t mem_total_bytes;
        uint64_t mem_free_bytes;
} QgaGuestNode;

typedef struct QgaGuestInfo {
        char *agent_version;
        char *os_id, *os_name, *os_pretty_name, *os_version;            /* guest-get-osinfo; NULL when absent */
        char *kernel_release, *kernel_version, *machine;
        unsigned vcpus, vcpus_online;                                   /* guest-get-vcpus */
        uint64_t memory_block_size;                                     /* guest-get-memory-block-info; 0 if n/a */
        unsigned memory_blocks, memory_blocks_online;                   /* guest-get-memory-blocks */
        QgaGuestNode *nodes;                                            /* /sys/devices/system/node in the guest */
        size_t n_nodes;
        QgaUnavailable *unavailable;                                    /* parts that could not be read, and why:
                                                                         * a command's name (the agent's error, a
                                                                         * malformed reply, not offered), "nodes"
                                                                         * (no /sys/devices/system/node: no NUMA
                                                                         * in the guest; no node is invented),
                                                                         * "nodeN" (that node is left out) */
        size_t n_unavailable;
} QgaGuestInfo;

typedef void (*QgaGuestInfoCallback)(QgaClient *c, const QgaError *error, const QgaGuestInfo *info, void *userdata);
int qga_get_guest_info(QgaClient *c, QgaGuestInfoCallback cb, void *userdata);

/* ---- counters ---- */

/* One row of /proc/interrupts named by its label ("TLB", "CAL"): one count per guest CPU column. */
typedef struct QgaIrqRow {
        bool present;
        uint64_t *per_cpu;
        unsigned *cpu_ids;              /* the CPU of each column (the header's CPUn: only online CPUs are listed) */
        size_t n_cpus;
        char *description;              /* the row's trailing text, "TLB shootdowns" */
} QgaIrqRow;

typedef struct QgaGuestCounters {
        uint64_t guest_realtime_nsec;   /* guest-get-time, taken before the files are read */
        uint64_t host_realtime_usec;    /* when the snapshot was complete */
        QgaCounter *vmstat;             /* every key of /proc/vmstat, in file order */
        size_t n_vmstat;
        QgaCounter *meminfo;            /* /proc/meminfo, values in bytes ("kB" lines × 1024), in file order */
        size_t n_meminfo;
        QgaIrqRow tlb, cal;             /* /proc/interrupts rows TLB: and CAL: */
        unsigned interrupt_cpus;        /* the CPU columns of /proc/interrupts' header */
        QgaUnavailable *unavailable;    /* nr_tlb_remote_flush, nr_tlb_remote_flush_received,
                                         * nr_tlb_local_flush_all, nr_tlb_local_flush_one when vmstat lacks them
                                         * ("unavailable: guest kernel without CONFIG_DEBUG_TLBFLUSH"), a missing
                                         * TLB:/CAL: row ("tlb", "cal"), a file that could not be read or
                                         * does not parse ("vmstat", "interrupts", "meminfo"; the agent's
                                         * error or the bad line in the reason) */
        size_t n_unavailable;
} QgaGuestCounters;

typedef void (*QgaCountersCallback)(QgaClient *c, const QgaError *error, const QgaGuestCounters *counters,
                                    void *userdata);
int qga_get_counters(QgaClient *c, QgaCountersCallback cb, void *userdata);

/* Pure parsers, used by qga_get_counters and fuzzed: 0, or -EBADMSG for input that is not what the kernel writes
 * (the first bad line is logged at debug level; qga_guest_counters_parse() puts it into the reason), -ENOMEM.
 * Strict: one bad line refuses the whole file (see qga-parse.c), output parameters are untouched on failure.
 * vmstat: "key value" lines. meminfo: "Key:   N kB" (bytes: N × 1024) or "Key:   N" (as is), optionally all with
 * the same "Node N " prefix (a node's meminfo). */
int qga_parse_vmstat(const char *text, size_t size, QgaCounter **ret, size_t *ret_n);
int qga_parse_meminfo(const char *text, size_t size, QgaCounter **ret, size_t *ret_n);
/* Fills the rows named in labels (e.g. {"TLB", "CAL", NULL}) into rows[] (same order); a label not in the file
 * leaves its row not present. *ret_cpus: the number of CPU columns. */
int qga_parse_interrupts(const char *text, size_t size, const char *const *labels, QgaIrqRow *rows,
                         unsigned *ret_cpus);
/* The kernel's list format ("0-1,3", optional trailing newline; empty → no ids), strictly increasing, ids at most
 * max_id: the ids in *ret (malloc'ed, NULL when there are none). 0 or -EBADMSG, -ENOMEM. */
int qga_parse_id_list(const char *text, size_t size, unsigned max_id, unsigned **ret, size_t *ret_n);
/* Fills c's vmstat, meminfo, tlb/cal rows and interrupt_cpus from the files' text (NULL: not read; the caller
 * records why), and c->unavailable with what is missing: a file that does not parse (with the bad line), the four
 * nr_tlb_* counters when vmstat lacks them, a missing TLB:/CAL: row. 0 or -ENOMEM. */
int qga_guest_counters_parse(QgaGuestCounters *c, const char *vmstat, size_t vmstat_size, const char *interrupts,
                             size_t interrupts_size, const char *meminfo, size_t meminfo_size);
/* Appends {name, reason} to an array of unavailable parts. 0 or -ENOMEM. */
int qga_unavailable_add(QgaUnavailable **a, size_t *n, const char *name, const char *format, ...) _printf_(4, 5);
void qga_unavailable_free_array(QgaUnavailable *a, size_t n);
void qga_counters_free_array(QgaCounter *a, size_t n);
void qga_irq_row_done(QgaIrqRow *row);
void qga_guest_counters_done(QgaGuestCounters *c);
void qga_guest_info_done(QgaGuestInfo *info);
/* The difference b - a of two snapshots, as counters (vmstat keys, "tlb.cpuN", "cal.cpuN"); a key in only one of
 * them, or a value that went down, is reported unavailable with the reason rather than as a delta. */
int qga_guest_counters_delta(const QgaGuestCounters *a, const QgaGuestCounters *b, QgaCounter **ret, size_t *ret_n,
                             QgaUnavailable **ret_unavailable, size_t *ret_n_unavailable);

/* ---- running a program ---- */

typedef struct QgaExecRequest {
        char *const *argv;              /* argv[0] is the program: a path, or a bare name that qemu-ga looks up
                                         * in PATH (g_spawn with G_SPAWN_SEARCH_PATH: env's PATH if env sets
                                         * one, else the agent's own) */
        char *const *env;               /* "NAME=value", or NULL */
        const void *input;              /* stdin, or NULL; at most 2 MiB (it travels base64 in one command) */
        size_t input_size;
        uint64_t timeout_usec;          /* 0 → 60 s; when over: the process is killed (guest-exec of kill -KILL
                                         * PID, when the guest has a kill program) and the result says so */
        size_t max_output;              /* per stream; 0 → 1 MiB; at most 16 MiB (what qemu-ga captures) */
} QgaExecRequest;

typedef struct QgaExecResult {
        int64_t pid;                    /* in the guest */
        bool exited;                    /* exit_code valid */
        int exit_code;
        int signal;                     /* terminated by this signal, or 0 */
        bool timed_out;
        bool killed;                    /* after the timeout, the kill was delivered */
        char *kill_error;               /* after the timeout, why it could not be killed; NULL otherwise */
        char *out, *err;                /* captured stdout and stderr, NUL-terminated; size excludes the NUL */
        size_t out_size, err_size;
        bool out_truncated, err_truncated;      /* by max_output, or by the agent's own bound */
        uint64_t duration_usec;         /* host time from guest-exec to the status saying exited */
} QgaExecResult;

/* Polls guest-exec-status every 50 ms at first, doubling up to 500 ms. After a timeout (and the kill) the program's
 * status is polled for 2 s more, so its death by SIGKILL and its output are reported; a program that does not go
 * away (say its child holds stdout open) is reported with exited false and signal 0. An error of a command
 * (the agent's, a timeout, a lost connection) fails the operation, except around the kill: that goes to
 * kill_error. */
typedef void (*QgaExecCallback)(QgaClient *c, const QgaError *error, const QgaExecResult *result, void *userdata);
int qga_exec(QgaClient *c, const QgaExecRequest *req, QgaExecCallback cb, void *userdata);

/* ---- copying a file into the guest ---- */

typedef void (*QgaCopyCallback)(QgaClient *c, const QgaError *error, uint64_t bytes_written, void *userdata);
/* Writes size bytes (copied by the call) to the guest file dest (absolute; created or truncated: guest-file-open
 * mode "w"), in chunks of at most 48 KiB; mode != 0 (at most 07777) then runs chmod MODE DEST in the guest
 * (qga_exec, 30 s). At most 64 MiB. bytes_written: what the agent confirmed, also on error. A failing
 * guest-file-close fails the copy (buffered data may not have reached the file). */
int qga_copy_to_guest(QgaClient *c, const void *data, size_t size, const char *dest, mode_t mode,
                      QgaCopyCallback cb, void *userdata);
