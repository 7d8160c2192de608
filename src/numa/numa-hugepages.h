/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The host's huge pages, read under a root directory ("/" on a host, a fixture tree in tests):
 * ROOT/sys/kernel/mm/hugepages/hugepages-<KB>kB/{free_hugepages,resv_hugepages} for the whole host,
 * ROOT/sys/devices/system/node/nodeN/hugepages/hugepages-<KB>kB/free_hugepages per node and the default size
 * from ROOT/proc/meminfo (Hugepagesize). Used before a guest whose memory is in huge pages starts, so that it
 * is refused with the figures instead of QEMU failing (or, with Reserve=no, the guest being killed by SIGBUS
 * when it first touches a page that is not there). */

#include <stdbool.h>
#include <stdint.h>

#include "basic/macro.h"

/* 1 when the host offers huge pages of that size (bytes), 0 when not, < 0 on error. */
int hugepages_size_offered(const char *root, uint64_t size);
/* The sizes offered, as text for messages: "2M, 1G" ("none" when there are none). */
int hugepages_sizes_text(const char *root, char **ret);
/* The default huge page size (Hugepagesize of ROOT/proc/meminfo); -ENOENT without one. */
int hugepages_default_size(const char *root, uint64_t *ret);

typedef enum HugepagesSpread {
        HUGEPAGES_ANYWHERE,     /* no node binding, or preferred: the whole host's free pages count */
        HUGEPAGES_ANY_OF,       /* bind: all pages from the nodes together */
        HUGEPAGES_EACH,         /* interleave: each node an equal share */
} HugepagesSpread;

/* Whether `bytes` of huge pages of size `size` are free: on the whole host (free minus reserved pages) and,
 * with node_mask != 0, on the nodes of node_mask as spread says. 0: they are; -ENOSPC: they are not, and
 * *ret_reason gives the figures ("needs 128 pages of 2M (256M) on nodes 0-1 (bind); free: node 0: 10,
 * node 1: 20"); -EOPNOTSUPP: the host has no huge pages of that size; -ENOENT: a node of node_mask does not
 * exist (both with *ret_reason); other errors without. */
int hugepages_check(const char *root, uint64_t size, uint64_t bytes, uint64_t node_mask, HugepagesSpread spread,
                    char **ret_reason);
