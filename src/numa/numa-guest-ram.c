/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "numa/numa-guest-ram.h"

static const char *const migration_scope_table[_MIGRATION_SCOPE_MAX] = {
        [MIGRATION_SCOPE_PROCESS] = "process",
        [MIGRATION_SCOPE_GUEST_RAM] = "guest-ram",
};

DEFINE_STRING_TABLE(migration_scope, MigrationScope, _MIGRATION_SCOPE_MAX);

#define SMAPS_LINE_MAX 8192U

void guest_ram_ranges_free(GuestRamRange *ranges, size_t n) {
        for (size_t i = 0; ranges && i < n; i++)
                free(ranges[i].path);
        free(ranges);
}

typedef struct SmapsMapping {
        uint64_t start, end;
        bool candidate;                 /* rw, not executable */
        bool named;                     /* a path that is not a pseudo name ("[heap]") */
        const char *path;               /* into the line copy; NULL: anonymous */
        size_t path_len;
        uint64_t page_size, rss_bytes;
} SmapsMapping;

/* A header line "START-END PERMS OFFSET DEV INODE [PATH]": 1 and *m; 0 for a field line; -EBADMSG. */
static int parse_header(const char *line, SmapsMapping *m) {
        unsigned long long start, end, offset, inode;
        char perms[5], dev[16];
        const char *dash = strchr(line, '-'), *colon = strchr(line, ':');
        int n = 0;

        if (!dash || (colon && colon < dash))
                return 0;       /* "Rss:  4 kB" and the like (a field name has no '-' before its ':') */
        if (sscanf(line, "%llx-%llx %4s %llx %15s %llu %n", &start, &end, perms, &offset, dev, &inode, &n) < 6 ||
            end < start || strlen(perms) != 4)
                return -EBADMSG;
        *m = (SmapsMapping) {
                .start = start, .end = end,
                .candidate = perms[0] == 'r' && perms[1] == 'w' && perms[2] != 'x',
        };
        if (line[n] != '\0') {
                m->path = line + n;
                m->path_len = strlen(m->path);
                m->named = m->path[0] == '/';
        }
        return 1;
}

/* "Name:   N kB" → bytes, for the fields wanted. */
static void parse_field(const char *line, SmapsMapping *m) {
        unsigned long long v;

        if (sscanf(line, "KernelPageSize: %llu kB", &v) == 1)
                m->page_size = v * 1024;
        else if (sscanf(line, "Rss: %llu kB", &v) == 1)
                m->rss_bytes = v * 1024;
}

static int mappings_parse(const char *text, size_t size, SmapsMapping **ret, size_t *ret_n, char **ret_copy) {
        _cleanup_free_ SmapsMapping *maps = NULL;
        _cleanup_free_ char *copy = NULL;
        size_t n = 0, allocated = 0;
        char *p, *end;

        copy = malloc(size + 1);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, text, size);
        copy[size] = '\0';
        if (strlen(copy) != size)
                return -EBADMSG;        /* a NUL inside */
        for (p = copy; *p; p = end) {
                SmapsMapping m;
                size_t len;
                int r;

                end = strchrnul(p, '\n');
                len = (size_t) (end - p);
                if (*end)
                        *end++ = '\0';
                if (len == 0)
                        continue;
                if (len > SMAPS_LINE_MAX)
                        return -EBADMSG;
                r = parse_header(p, &m);
                if (r < 0)
                        return r;
                if (r == 0) {
                        if (n == 0)
                                return -EBADMSG;        /* a field before any mapping */
                        parse_field(p, &maps[n - 1]);
                        continue;
                }
                if (n == allocated) {
                        SmapsMapping *t;

                        if (allocated >= 1U << 20)
                                return -E2BIG;
                        allocated = MAX(allocated * 2, (size_t) 64);
                        t = realloc(maps, allocated * sizeof(SmapsMapping));
                        if (!t)
                                return -ENOMEM;
                        maps = t;
                }
                maps[n++] = m;
        }
        *ret = TAKE_PTR(maps);
        *ret_n = n;
        *ret_copy = TAKE_PTR(copy);
        return 0;
}

int guest_ram_find(const char *smaps, size_t smaps_size, const uint64_t *backend_sizes, size_t n_backends,
                   GuestRamRange **ret, size_t *ret_n, char **ret_reason) {
        _cleanup_free_ SmapsMapping *maps = NULL;
        _cleanup_free_ char *copy = NULL;
        _cleanup_free_ bool *used = NULL;
        GuestRamRange *ranges;
        size_t n_maps = 0;
        int r;

        if (n_backends == 0 || n_backends > NUMA_GUEST_RAM_MAX_BACKENDS)
                return n_backends == 0 ? -EINVAL : -E2BIG;
        r = mappings_parse(smaps, smaps_size, &maps, &n_maps, &copy);
        if (r < 0)
                return r;
        used = calloc(MAX(n_maps, (size_t) 1), sizeof(bool));
        ranges = calloc(n_backends, sizeof(GuestRamRange));
        if (!used || !ranges) {
                free(ranges);
                return -ENOMEM;
        }
        for (size_t b = 0; b < n_backends; b++) {
                size_t named = SIZE_MAX, anon = SIZE_MAX, n_anon = 0;
                const SmapsMapping *m;
                size_t pick;

                for (size_t i = 0; i < n_maps; i++) {
                        if (used[i] || !maps[i].candidate || maps[i].end - maps[i].start != backend_sizes[b])
                                continue;
                        if (maps[i].named) {
                                if (named == SIZE_MAX)
                                        named = i;
                        } else if (!maps[i].path) {
                                if (anon == SIZE_MAX)
                                        anon = i;
                                n_anon++;
                        }
                }
                if (named == SIZE_MAX && n_anon > 1) {
                        /* Several anonymous mappings of this size: the guest's when as many backends (this and
                         * the ones after it) have the size; taken in address order (which backend is which
                         * cannot be told, all of them are moved). */
                        size_t same = 0;

                        for (size_t c = b; c < n_backends; c++)
                                same += backend_sizes[c] == backend_sizes[b];
                        if (same == n_anon)
                                n_anon = 1;
                }
                pick = named != SIZE_MAX ? named : n_anon == 1 ? anon : SIZE_MAX;
                if (pick == SIZE_MAX) {
                        r = n_anon > 1 ? -ENOTUNIQ : -ENOENT;
                        if (ret_reason && (n_anon > 1 ?
                            asprintf(ret_reason, "backend %zu: %zu anonymous mappings of %" PRIu64 " bytes, none "
                                     "named: cannot tell which holds the guest's RAM", b, n_anon, backend_sizes[b]) :
                            asprintf(ret_reason, "backend %zu: no read-write mapping of %" PRIu64 " bytes in the "
                                     "QEMU process", b, backend_sizes[b])) < 0)
                                *ret_reason = NULL;
                        guest_ram_ranges_free(ranges, n_backends);
                        return r;
                }
                used[pick] = true;
                m = &maps[pick];
                ranges[b] = (GuestRamRange) {
                        .start = m->start, .size = m->end - m->start,
                        .page_size = m->page_size ?: 4096, .rss_bytes = m->rss_bytes,
                };
                if (m->path) {
                        ranges[b].path = strndup(m->path, m->path_len);
                        if (!ranges[b].path) {
                                guest_ram_ranges_free(ranges, n_backends);
                                return -ENOMEM;
                        }
                }
        }
        *ret = ranges;
        *ret_n = n_backends;
        return 0;
}

void guest_ram_count_residency(const int *status, size_t n, uint64_t per_node[static NUMA_NODES_MAX],
                               uint64_t *not_present) {
        for (size_t i = 0; i < n; i++)
                if (status[i] >= 0 && status[i] < (int) NUMA_NODES_MAX)
                        per_node[status[i]]++;
                else
                        (*not_present)++;
}

static void count_failed(GuestRamResult *r, int error) {
        size_t i;

        for (i = 0; i < r->n_failed; i++)
                if (r->failed[i].error == error)
                        break;
        if (i == r->n_failed) {
                if (r->n_failed < NUMA_GUEST_RAM_MAX_ERRNOS)
                        r->failed[r->n_failed++] = (GuestRamErrno) { .error = error };
                else
                        i = NUMA_GUEST_RAM_MAX_ERRNOS - 1;
        }
        r->failed[i].pages++;
        r->pages_failed++;
}

void guest_ram_count_moves(const int *status, size_t n, uint64_t to_mask, GuestRamResult *r) {
        for (size_t i = 0; i < n; i++) {
                if (status[i] >= 0 && status[i] < (int) NUMA_NODES_MAX && (to_mask & (UINT64_C(1) << status[i])))
                        r->pages_moved++;
                else
                        count_failed(r, status[i] < 0 ? -status[i] : EAGAIN);
        }
}

int guest_ram_target_node(uint64_t to_mask, uint64_t i) {
        unsigned count = (unsigned) __builtin_popcountll(to_mask), k;

        if (count == 0)
                return -EINVAL;
        k = (unsigned) (i % count);
        for (unsigned n = 0; n < NUMA_NODES_MAX; n++)
                if (to_mask & (UINT64_C(1) << n)) {
                        if (k == 0)
                                return (int) n;
                        k--;
                }
        return -EINVAL;
}

static uint64_t monotonic_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* Queries (nodes NULL) the pages of one batch into status. */
static int query(pid_t pid, void **pages, size_t n, int *status) {
        if (move_pages(pid, n, pages, NULL, status, 0) < 0)
                return -errno;
        return 0;
}

int guest_ram_move(pid_t pid, const GuestRamRange *ranges, size_t n, uint64_t from_mask, uint64_t to_mask,
                   GuestRamResult *ret) {
        _cleanup_free_ void **pages = calloc(NUMA_GUEST_RAM_BATCH, sizeof(void *));
        _cleanup_free_ void **asked = calloc(NUMA_GUEST_RAM_BATCH, sizeof(void *));
        _cleanup_free_ int *status = calloc(NUMA_GUEST_RAM_BATCH, sizeof(int));
        _cleanup_free_ int *nodes = calloc(NUMA_GUEST_RAM_BATCH, sizeof(int));
        _cleanup_free_ int *errs = calloc(NUMA_GUEST_RAM_BATCH, sizeof(int));
        GuestRamResult r = {};
        int k;

        if (!pages || !asked || !status || !nodes || !errs)
                return -ENOMEM;
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < n; i++) {
                        uint64_t ps = ranges[i].page_size, count = ranges[i].size / ps;

                        if (pass == 0)
                                r.pages_total += count;
                        for (uint64_t first = 0; first < count; first += NUMA_GUEST_RAM_BATCH) {
                                size_t b = (size_t) MIN(count - first, (uint64_t) NUMA_GUEST_RAM_BATCH), m = 0;
                                uint64_t t0;

                                for (size_t j = 0; j < b; j++)
                                        pages[j] = (void *) (uintptr_t) (ranges[i].start + (first + j) * ps);
                                if ((k = query(pid, pages, b, status)) < 0)
                                        return k;
                                if (pass == 1) {
                                        guest_ram_count_residency(status, b, r.after, &r.not_present_after);
                                        continue;
                                }
                                guest_ram_count_residency(status, b, r.before, &r.not_present_before);
                                for (size_t j = 0; j < b; j++)
                                        if (status[j] >= 0 && status[j] < (int) NUMA_NODES_MAX &&
                                            (from_mask & (UINT64_C(1) << status[j]))) {
                                                /* One target per 2 MiB of guest RAM, not per page: the 4 KiB
                                                 * pages of a transparent huge page go together (alternating
                                                 * would move the whole huge page once per subpage). */
                                                nodes[m] = guest_ram_target_node(
                                                        to_mask, ((uint64_t) (uintptr_t) pages[j]) >> 21);
                                                asked[m++] = pages[j];
                                        }
                                if (m == 0)
                                        continue;
                                r.pages_asked += m;
                                t0 = monotonic_usec();
                                k = (int) move_pages(pid, m, asked, nodes, status, MPOL_MF_MOVE);
                                if (k < 0) {
                                        int e = errno;
                                        if (e == ESRCH)
                                                return -e;
                                        /* the batch as a whole: every page failed with that errno */
                                        for (size_t j = 0; j < m; j++)
                                                status[j] = -e;
                                } else {
                                        /* Where every page of the batch is now, asked again: when some were not
                                         * moved (k > 0) the kernel stops writing status at them, and the 4 KiB
                                         * pages of a huge page moved with its head report -EBUSY. The errno
                                         * stays for a page that is not where it was sent. */
                                        int q;

                                        memcpy(errs, status, m * sizeof(int));
                                        q = query(pid, asked, m, status);
                                        if (q < 0)
                                                return q;
                                        for (size_t j = 0; j < m; j++)
                                                if (status[j] != nodes[j])
                                                        status[j] = errs[j] < 0 ? errs[j] : -EAGAIN;
                                }
                                r.move_usec += monotonic_usec() - t0;
                                r.calls++;
                                guest_ram_count_moves(status, m, to_mask, &r);
                        }
                }
        *ret = r;
        return 0;
}
