/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* QEMU's memory layout as its human monitor prints it, parsed strictly: "info mtree -f" (the flat views, one per
 * group of address spaces) and "gpa2hva ADDR" (where a guest physical address lives in QEMU's own memory). Both
 * come from QEMU through human-monitor-command and are not an API: the text is untrusted input. A line of a
 * form not listed here fails the parse (-EBADMSG) rather than being guessed at; every size is bounded.
 *
 * A flat view, as QEMU 7.2 prints it:
 *   FlatView #1
 *    AS "memory", root: system
 *    Root memory region: system
 *     0000000000100000-000000000fffffff (prio 0, ram): m0 @0000000000100000 KVM
 * The range is inclusive; "@OFFSET" is the offset in the region (in its RAM block for RAM); the words after it
 * are the accelerators that map the range. A view may say "Root memory region: (none)" and "No rendered
 * FlatView". */

#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"

#define QMP_MTREE_MAX_TEXT (4U * 1024U * 1024U) /* larger output → -EFBIG */
#define QMP_MTREE_MAX_VIEWS 1024U
#define QMP_MTREE_MAX_RANGES 65536U             /* over all views */
#define QMP_MTREE_MAX_NAME 256U                 /* region, address space and accelerator names */
#define QMP_MTREE_MAX_ADDRESS_SPACES 4096U      /* over all views */

typedef enum QmpMtreeKind {
        QMP_MTREE_RAM,
        QMP_MTREE_ROM,
        QMP_MTREE_ROMD,
        QMP_MTREE_RAMD,         /* RAM device (a BAR of an assigned device) */
        QMP_MTREE_IO,
        _QMP_MTREE_KIND_MAX,
        _QMP_MTREE_KIND_INVALID = -EINVAL,
} QmpMtreeKind;

DECLARE_STRING_TABLE(qmp_mtree_kind, QmpMtreeKind);

typedef struct QmpMtreeRange {
        uint64_t start, last;           /* inclusive, as printed */
        int priority;
        QmpMtreeKind kind;
        bool nonvolatile;               /* "nv-ram" */
        char *name;                     /* the memory region */
        bool has_offset;
        uint64_t offset;                /* "@OFFSET": where the range starts in the region */
        char *accelerators;             /* "KVM", space separated; NULL: none printed */
} QmpMtreeRange;

typedef struct QmpMtreeView {
        char **address_spaces;          /* strv, the AS lines' names */
        char *root;                     /* NULL: "(none)" */
        QmpMtreeRange *ranges;          /* in QEMU's order (ascending) */
        size_t n_ranges;
} QmpMtreeView;

typedef struct QmpMtree {
        QmpMtreeView *views;
        size_t n_views;
} QmpMtree;

/* Parses the output of "info mtree -f" (size bytes, need not be NUL-terminated; "\r\n" line ends are taken).
 * Malformed → -EBADMSG, too large → -EFBIG or -E2BIG, overlapping or descending ranges within a view → -EBADMSG. */
int qmp_mtree_parse(const char *text, size_t size, QmpMtree *ret);
void qmp_mtree_done(QmpMtree *t);
/* The view that serves address space as ("memory": the system address space); NULL if none does. */
const QmpMtreeView *qmp_mtree_find_view(const QmpMtree *t, const char *as);
/* The range's size in bytes (last - start + 1); 0 for the whole 64-bit space, which does not fit. */
static inline uint64_t qmp_mtree_range_size(const QmpMtreeRange *r) {
        return r->last - r->start + 1;
}

/* Parses the reply of "gpa2hva ADDR": "Host virtual address for 0x100000 (m0) is 0x7f346be00000". *ret_gpa
 * and *ret_region (optional; the region's name, allocated) as printed. QEMU's refusal ("No memory is mapped at
 * address …", "Memory at address … is not RAM") → -ENXIO; anything else → -EBADMSG. */
int qmp_gpa2hva_parse(const char *text, size_t size, uint64_t *ret_gpa, char **ret_region, uint64_t *ret_hva);
