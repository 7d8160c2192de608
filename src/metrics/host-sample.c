/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <stdio.h>
#include <time.h>

#include "basic/fileio.h"
#include "metrics/host-sample.h"
#include "basic/parse.h"

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

void host_sample_done(HostSample *s) {
        if (!s)
                return;
        free(s->nodes);
        s->nodes = NULL;
        s->n_nodes = 0;
}

static int cmp_node(const void *a, const void *b) {
        const NodeMemory *x = a, *y = b;
        return x->node < y->node ? -1 : x->node > y->node;
}

static int read_nodes(const char *sys_root, NodeMemory **ret, size_t *ret_n) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_free_ NodeMemory *nodes = NULL;
        DIR *d;
        struct dirent *de;
        size_t n = 0;
        int r = 0;

        dir = path_join(sys_root, "devices/system/node");
        if (!dir)
                return -ENOMEM;
        d = opendir(dir);
        if (!d) {
                if (errno == ENOENT) {
                        *ret = NULL;
                        *ret_n = 0;
                        return 0;
                }
                return -errno;
        }

        while ((errno = 0, de = readdir(d))) {
                _cleanup_free_ char *path = NULL;
                const char *num = startswith(de->d_name, "node");
                Meminfo mi;
                unsigned node;
                NodeMemory *t;

                if (!num || parse_unsigned(num, &node) < 0)
                        continue;
                if (n >= HOST_SAMPLE_MAX_NODES) {
                        r = -E2BIG;
                        break;
                }
                if (asprintf(&path, "%s/%s/meminfo", dir, de->d_name) < 0) {
                        path = NULL;
                        r = -ENOMEM;
                        break;
                }
                r = meminfo_read(path, &mi);
                if (r < 0)
                        break;
                t = reallocarray(nodes, n + 1, sizeof(NodeMemory));
                if (!t) {
                        r = -ENOMEM;
                        break;
                }
                nodes = t;
                nodes[n] = (NodeMemory) { .node = node };
                if (meminfo_get(&mi, "MemTotal", &nodes[n].mem_total) < 0 ||
                    meminfo_get(&mi, "MemFree", &nodes[n].mem_free) < 0) {
                        r = -ENODATA;
                        break;
                }
                (void) meminfo_get(&mi, "MemUsed", &nodes[n].mem_used);
                (void) meminfo_get(&mi, "FilePages", &nodes[n].file_pages);
                (void) meminfo_get(&mi, "AnonPages", &nodes[n].anon_pages);
                (void) meminfo_get(&mi, "HugePages_Total", &nodes[n].hugepages_total);
                (void) meminfo_get(&mi, "HugePages_Free", &nodes[n].hugepages_free);
                n++;
        }
        if (r == 0 && errno != 0)
                r = -errno;
        closedir(d);
        if (r < 0)
                return r;

        if (n > 0)
                qsort(nodes, n, sizeof(NodeMemory), cmp_node);
        *ret = TAKE_PTR(nodes);
        *ret_n = n;
        return 0;
}

int host_sample_read(const char *proc_root, const char *sys_root, HostSample *ret) {
        _cleanup_free_ char *path = NULL;
        HostSample s = {};
        uint64_t start = now_usec(CLOCK_MONOTONIC);
        int r;

        path = path_join(proc_root, "meminfo");
        if (!path)
                return -ENOMEM;
        r = meminfo_read(path, &s.meminfo);
        if (r < 0)
                return r;
        r = host_memory_from_meminfo(&s.meminfo, &s.host);
        if (r < 0)
                return r;
        (void) meminfo_get(&s.meminfo, "HugePages_Total", &s.hugepages_total);
        (void) meminfo_get(&s.meminfo, "HugePages_Free", &s.hugepages_free);
        (void) meminfo_get(&s.meminfo, "HugePages_Rsvd", &s.hugepages_rsvd);
        (void) meminfo_get(&s.meminfo, "HugePages_Surp", &s.hugepages_surp);
        (void) meminfo_get(&s.meminfo, "Hugepagesize", &s.hugepage_size);

        r = read_nodes(sys_root, &s.nodes, &s.n_nodes);
        if (r < 0)
                return r;

        s.realtime_usec = now_usec(CLOCK_REALTIME);
        s.monotonic_usec = now_usec(CLOCK_MONOTONIC);
        s.duration_usec = s.monotonic_usec - start;
        *ret = s;
        return 0;
}
