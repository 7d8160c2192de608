/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "numa/numa-placement.h"
#include "basic/parse.h"

#define STAT_FILE_MAX (16U * 1024U)
#define NUMA_MAPS_FILE_MAX (256U * 1024U * 1024U)

int task_stat_parse_last_cpu(const char *text, unsigned *ret) {
        const char *p;
        unsigned field = 3; /* the field after "(comm)" is the third */

        /* comm may hold blanks and parentheses: the last ')' ends it. */
        p = strrchr(text, ')');
        if (!p || p[1] != ' ')
                return -EINVAL;
        p += 2;
        for (;;) {
                size_t len = strcspn(p, " \n");
                if (len == 0)
                        return -EINVAL;
                if (field == 39) {
                        char buf[16];
                        if (len >= sizeof(buf))
                                return -EINVAL;
                        memcpy(buf, p, len);
                        buf[len] = 0;
                        return parse_unsigned(buf, ret) < 0 ? -EINVAL : 0;
                }
                p += len;
                if (*p != ' ')
                        return -EINVAL;
                p++;
                field++;
        }
}

int task_stat_read_last_cpu(const char *path, unsigned *ret) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_full_file(path, STAT_FILE_MAX, &text, NULL);
        if (r < 0)
                return r;
        return task_stat_parse_last_cpu(text, ret);
}

int thread_get_affinity(pid_t tid, CpuSet *ret) {
        cpu_set_t c;

        CPU_ZERO(&c);
        if (sched_getaffinity(tid, sizeof(c), &c) < 0)
                return -errno;
        return cpu_set_from_sched(&c, ret);
}

int thread_pin(pid_t tid, const CpuSet *cpus, CpuSet *ret_effective) {
        CpuSet eff;
        cpu_set_t c;
        int r;

        if (tid <= 0 || cpu_set_is_empty(cpus))
                return -EINVAL;
        (void) cpu_set_to_sched(cpus, &c);
        if (sched_setaffinity(tid, sizeof(c), &c) < 0)
                return -errno;
        r = thread_get_affinity(tid, &eff);
        if (r < 0)
                return r;
        if (ret_effective)
                *ret_effective = eff;
        return cpu_set_equal(&eff, cpus) ? 0 : -EXDEV;
}

static int pid_cmp(const void *a, const void *b) {
        pid_t x = *(const pid_t *) a, y = *(const pid_t *) b;
        return x < y ? -1 : x > y;
}

int process_list_threads(const char *proc_root, pid_t pid, pid_t **ret, size_t *ret_n) {
        _cleanup_free_ char *path = NULL;
        _cleanup_free_ pid_t *tids = NULL;
        size_t n = 0, allocated = 0;
        struct dirent *de;
        DIR *d;

        if (asprintf(&path, "%s/%i/task", proc_root, (int) pid) < 0)
                return -ENOMEM;
        d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                unsigned v;
                pid_t *t;

                if (!isdigit((unsigned char) de->d_name[0]) || parse_unsigned(de->d_name, &v) < 0)
                        continue;
                if (n == allocated) {
                        if (allocated >= PROCESS_THREADS_MAX) {
                                closedir(d);
                                return -E2BIG;  /* the process's thread count is its own: bounded here */
                        }
                        allocated = MIN(MAX(allocated * 2, (size_t) 64), (size_t) PROCESS_THREADS_MAX);
                        t = realloc(tids, allocated * sizeof(pid_t));
                        if (!t) {
                                closedir(d);
                                return -ENOMEM;
                        }
                        tids = t;
                }
                tids[n++] = (pid_t) v;
        }
        closedir(d);
        if (n == 0)
                return -ESRCH;
        qsort(tids, n, sizeof(pid_t), pid_cmp);
        *ret = TAKE_PTR(tids);
        *ret_n = n;
        return 0;
}

/* One numa_maps line: "ADDR POLICY [key=value|flag]…". */
static int parse_numa_maps_line(const char *line, size_t len, NumaResidency *res) {
        uint64_t pages[NUMA_NODES_MAX] = {};
        uint64_t page_kb = 4;
        bool any = false;
        unsigned max_node = 0;
        const char *p = line, *end = line + len;
        size_t w;

        /* address */
        w = strcspn(p, " ");
        if (w == 0 || p + w > end)
                return -EINVAL;
        for (size_t i = 0; i < w; i++)
                if (!isxdigit((unsigned char) p[i]))
                        return -EINVAL;
        p += w;
        while (p < end) {
                char word[128];

                while (p < end && *p == ' ')
                        p++;
                if (p >= end)
                        break;
                w = 0;
                while (p + w < end && p[w] != ' ')
                        w++;
                if (w < sizeof(word)) {
                        memcpy(word, p, w);
                        word[w] = 0;
                        if (word[0] == 'N' && isdigit((unsigned char) word[1])) {
                                char *eq = strchr(word, '=');
                                unsigned node;
                                uint64_t v;

                                if (!eq)
                                        return -EINVAL;
                                *eq = 0;
                                if (parse_unsigned(word + 1, &node) < 0 || parse_uint64(eq + 1, &v) < 0)
                                        return -EINVAL;
                                if (node >= NUMA_NODES_MAX)
                                        return -ERANGE;
                                pages[node] += v;
                                max_node = MAX(max_node, node + 1);
                                any = true;
                        } else if (startswith(word, "kernelpagesize_kB=")) {
                                if (parse_uint64(word + strlen("kernelpagesize_kB="), &page_kb) < 0 || page_kb == 0)
                                        return -EINVAL;
                        }
                }
                /* longer words: file names of mappings, not counted */
                p += w;
        }
        if (!any)
                return 0;
        for (unsigned n = 0; n < max_node; n++) {
                uint64_t b = pages[n] * page_kb * 1024;
                res->pages[n] += pages[n];
                res->bytes[n] += b;
                res->total_bytes += b;
                if (page_kb > 4)
                        res->huge_bytes += b;
        }
        res->max_node = MAX(res->max_node, max_node);
        return 0;
}

int numa_residency_parse(const char *text, NumaResidency *ret) {
        NumaResidency res = {};
        const char *p = text;
        int r;

        while (*p) {
                size_t len = strcspn(p, "\n");
                if (len > 0) {
                        r = parse_numa_maps_line(p, len, &res);
                        if (r < 0)
                                return r;
                }
                p += len;
                if (*p == '\n')
                        p++;
        }
        *ret = res;
        return 0;
}

int numa_residency_read(const char *path, NumaResidency *ret) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_full_file(path, NUMA_MAPS_FILE_MAX, &text, NULL);
        if (r < 0)
                return r;
        return numa_residency_parse(text, ret);
}

uint64_t numa_residency_bytes_on(const NumaResidency *r, uint64_t node_mask) {
        uint64_t b = 0;

        for (unsigned n = 0; n < NUMA_NODES_MAX; n++)
                if (node_mask & (UINT64_C(1) << n))
                        b += r->bytes[n];
        return b;
}

int numa_residency_to_json(const NumaResidency *res, json_object **ret) {
        _cleanup_json_ json_object *a = NULL;
        int r;

        a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        for (unsigned n = 0; n < res->max_node; n++) {
                _cleanup_json_ json_object *o = NULL;

                if (res->pages[n] == 0)
                        continue;
                o = json_object_new_object();
                if (!o)
                        return -ENOMEM;
                if ((r = json_add_int(o, "node", n)) < 0 ||
                    (r = json_add_uint(o, "bytes", res->bytes[n])) < 0 ||
                    (r = json_add_uint(o, "pages", res->pages[n])) < 0)
                        return r;
                if (json_object_array_add(a, TAKE_PTR(o)) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(a);
        return 0;
}
