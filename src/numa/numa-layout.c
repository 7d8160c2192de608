/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/worker.h"
#include "metrics/numa-maps.h"
#include "numa/numa-layout.h"

typedef struct Mapping {
        uint64_t start, end;
        const char *path;               /* into the maps text copy; NULL: none */
        size_t path_len;
        bool have_nodes;
        uint64_t node_bytes[NUMA_NODES_MAX];
} Mapping;

void numa_layout_regions_free(NumaLayoutRegion *regions, size_t n) {
        for (size_t i = 0; regions && i < n; i++)
                free(regions[i].map_path);
        free(regions);
}

static int parse_hex_word(const char **p, uint64_t *ret) {
        char *e;

        if (!((**p >= '0' && **p <= '9') || (**p >= 'a' && **p <= 'f')))
                return -EBADMSG;
        errno = 0;
        *ret = strtoull(*p, &e, 16);
        if (errno != 0 || e - *p > 16)
                return -EBADMSG;
        *p = e;
        return 0;
}

/* The lines of text, one at a time: *line and *len, advancing *off. */
static bool next_line(const char *text, size_t size, size_t *off, const char **line, size_t *len) {
        const char *nl;

        if (*off >= size)
                return false;
        nl = memchr(text + *off, '\n', size - *off);
        *line = text + *off;
        *len = nl ? (size_t) (nl - *line) : size - *off;
        *off += *len + 1;
        return true;
}

/* "start-end perms offset dev inode [path]" */
static int parse_maps(const char *text, size_t size, Mapping **ret, size_t *ret_n) {
        _cleanup_free_ Mapping *m = NULL;
        size_t off = 0, n = 0, len;
        const char *line;

        while (next_line(text, size, &off, &line, &len)) {
                char buf[128];
                const char *p = buf, *path;
                Mapping *a, x = {};
                int fields = 0;
                size_t k;

                if (len == 0)
                        continue;
                if (n >= NUMA_LAYOUT_MAX_MAPPINGS)
                        return -E2BIG;
                k = MIN(len, sizeof(buf) - 1);
                memcpy(buf, line, k);
                buf[k] = 0;
                if (parse_hex_word(&p, &x.start) < 0 || *p++ != '-' || parse_hex_word(&p, &x.end) < 0 ||
                    x.end <= x.start || *p != ' ')
                        return -EBADMSG;
                /* perms, offset, dev, inode: four words after the range */
                path = line + (p - buf);
                while (fields < 4) {
                        if (path >= line + len || *path != ' ')
                                return -EBADMSG;
                        while (path < line + len && *path == ' ')
                                path++;
                        if (path >= line + len || *path == ' ')
                                return -EBADMSG;
                        while (path < line + len && *path != ' ')
                                path++;
                        fields++;
                }
                while (path < line + len && *path == ' ')
                        path++;
                if (path < line + len) {
                        x.path = path;
                        x.path_len = line + len - path;
                }
                if (n > 0 && x.start < m[n - 1].end)
                        return -EBADMSG;        /* the kernel lists them ascending, without overlap */
                a = reallocarray(m, n + 1, sizeof(Mapping));
                if (!a)
                        return -ENOMEM;
                m = a;
                m[n++] = x;
        }
        *ret = TAKE_PTR(m);
        *ret_n = n;
        return 0;
}

static Mapping *find_mapping(Mapping *m, size_t n, uint64_t start) {
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (m[mid].start == start)
                        return m + mid;
                if (m[mid].start < start)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* "ADDRESS POLICY [key[=value]]…": the N<node>=<pages> of each mapping, times kernelpagesize_kB. */
static int parse_numa_maps(const char *text, size_t size, Mapping *m, size_t n) {
        size_t off = 0, len;
        const char *line;

        while (next_line(text, size, &off, &line, &len)) {
                _cleanup_free_ char *copy = NULL;
                uint64_t pages[NUMA_NODES_MAX] = {}, start, kb = 4;
                const char *p;
                char *save = NULL, *w;
                Mapping *x;

                if (len == 0)
                        continue;
                copy = strndup(line, len);
                if (!copy)
                        return -ENOMEM;
                p = copy;
                if (parse_hex_word(&p, &start) < 0 || *p != ' ')
                        return -EBADMSG;
                for (w = strtok_r(copy + (p - copy), " ", &save); w; w = strtok_r(NULL, " ", &save)) {
                        unsigned long long node, v;
                        char *e;

                        if (w[0] == 'N' && w[1] >= '0' && w[1] <= '9') {
                                errno = 0;
                                node = strtoull(w + 1, &e, 10);
                                if (errno != 0 || *e != '=' || !(e[1] >= '0' && e[1] <= '9'))
                                        return -EBADMSG;
                                if (node >= NUMA_NODES_MAX)
                                        return -ERANGE;
                                v = strtoull(e + 1, &e, 10);
                                if (errno != 0 || *e)
                                        return -EBADMSG;
                                pages[node] = v;
                        } else if (startswith(w, "kernelpagesize_kB=")) {
                                errno = 0;
                                kb = strtoull(w + 18, &e, 10);
                                if (errno != 0 || *e || kb == 0 || kb > 16ULL * 1024 * 1024)
                                        return -EBADMSG;
                        }
                }
                x = find_mapping(m, n, start);
                if (!x)
                        continue;       /* mapped or unmapped between the two reads */
                for (unsigned k = 0; k < NUMA_NODES_MAX; k++) {
                        if (pages[k] > UINT64_MAX / 1024 / kb)
                                return -ERANGE;
                        x->node_bytes[k] = pages[k] * kb * 1024;
                }
                x->have_nodes = true;
        }
        return 0;
}

int numa_layout_fill(const char *maps, size_t maps_size, const char *numa_maps, size_t numa_maps_size,
                     NumaLayoutRegion *regions, size_t n) {
        _cleanup_free_ Mapping *m = NULL;
        size_t n_m = 0;
        int r;

        r = parse_maps(maps, maps_size, &m, &n_m);
        if (r < 0)
                return r;
        if (numa_maps) {
                r = parse_numa_maps(numa_maps, numa_maps_size, m, n_m);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < n; i++) {
                NumaLayoutRegion *g = regions + i;
                uint64_t end = g->host_start + g->size, covered = g->host_start;

                g->mapped = g->size > 0 && end > g->host_start;
                g->have_residency = !!numa_maps;
                g->n_mappings = 0;
                if (!g->mapped)
                        continue;
                for (size_t k = 0; k < n_m; k++) {
                        if (m[k].end <= g->host_start || m[k].start >= end)
                                continue;
                        if (g->n_mappings++ == 0) {
                                g->map_start = m[k].start;
                                free(g->map_path);
                                g->map_path = m[k].path ? strndup(m[k].path, m[k].path_len) : NULL;
                                if (m[k].path && !g->map_path)
                                        return -ENOMEM;
                        }
                        g->map_end = m[k].end;
                        if (m[k].start > covered)
                                g->mapped = false;      /* a hole */
                        covered = MAX(covered, m[k].end);
                        if (!m[k].have_nodes)
                                g->have_residency = false;
                        for (unsigned node = 0; node < NUMA_NODES_MAX; node++) {
                                g->node_bytes[node] += m[k].node_bytes[node];
                                g->resident_bytes += m[k].node_bytes[node];
                                if (m[k].node_bytes[node] > 0)
                                        g->max_node = MAX(g->max_node, node + 1);
                        }
                }
                if (covered < end)
                        g->mapped = false;
                g->residency_is_region = g->n_mappings > 0 && g->map_start >= g->host_start && g->map_end <= end;
        }
        return 0;
}

struct NumaLayoutRead {
        char *maps_path, *numa_maps_path;
        NumaLayoutRegion *regions;
        size_t n;
        Worker *worker;
        NumaLayoutCallback cb;
        void *userdata;
};

NumaLayoutRead *numa_layout_read_free(NumaLayoutRead *q) {
        if (!q)
                return NULL;
        worker_free(q->worker);
        numa_layout_regions_free(q->regions, q->n);
        free(q->maps_path);
        free(q->numa_maps_path);
        return mfree(q);
}

static int read_layout(Worker *w, void *arg) {
        NumaLayoutRead *q = arg;
        _cleanup_free_ char *maps = NULL, *numa_maps = NULL;
        size_t maps_size = 0, numa_maps_size = 0;
        int r;

        r = read_full_file(q->maps_path, NUMA_LAYOUT_MAX_MAPS_SIZE, &maps, &maps_size);
        if (r < 0)
                return r;
        r = read_full_file(q->numa_maps_path, NUMA_MAPS_MAX_SIZE, &numa_maps, &numa_maps_size);
        if (r < 0)
                return r;
        return numa_layout_fill(maps, maps_size, numa_maps, numa_maps_size, q->regions, q->n);
}

static void on_worker(Worker *w, int code, bool done, int result, void *userdata) {
        NumaLayoutRead *q = userdata;

        if (done)
                q->cb(result, q->regions, q->n, q->userdata);
}

int numa_layout_read(sd_event *event, const char *proc_root, pid_t pid, NumaLayoutRegion *regions, size_t n,
                     NumaLayoutCallback cb, void *userdata, NumaLayoutRead **ret) {
        _cleanup_(numa_layout_read_freep) NumaLayoutRead *q = NULL;
        int r;

        q = calloc(1, sizeof(NumaLayoutRead));
        if (!q) {
                numa_layout_regions_free(regions, n);
                return -ENOMEM;
        }
        *q = (NumaLayoutRead) { .regions = regions, .n = n, .cb = cb, .userdata = userdata };
        if (asprintf(&q->maps_path, "%s/%i/maps", proc_root, (int) pid) < 0) {
                q->maps_path = NULL;
                return -ENOMEM;
        }
        if (asprintf(&q->numa_maps_path, "%s/%i/numa_maps", proc_root, (int) pid) < 0) {
                q->numa_maps_path = NULL;
                return -ENOMEM;
        }
        r = worker_start(event, "memory-layout", read_layout, q, on_worker, q, &q->worker);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(q);
        return 0;
}
