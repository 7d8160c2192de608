/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/json-util.h"
#include "metrics/meminfo.h"
#include "numa/numa-topology.h"
#include "basic/parse.h"

#define SYSFS_FILE_MAX (64U * 1024U)

static void numa_node_done(NumaNode *n) {
        n->distances = mfree(n->distances);
        n->n_distances = 0;
}

NumaTopology *numa_topology_free(NumaTopology *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_nodes; i++)
                numa_node_done(&t->nodes[i]);
        free(t->nodes);
        return mfree(t);
}

static int read_sysfs_line(const char *root, const char *rel, char **ret) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        path = path_join(root, rel);
        if (!path)
                return -ENOMEM;
        r = read_full_file(path, SYSFS_FILE_MAX, &text, NULL);
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = 0;
        *ret = TAKE_PTR(text);
        return 0;
}

static int read_cpu_list(const char *root, const char *rel, bool empty_ok, CpuSet *ret) {
        _cleanup_free_ char *line = NULL;
        int r;

        r = read_sysfs_line(root, rel, &line);
        if (r < 0)
                return r;
        if (isempty(line) && empty_ok) {
                *ret = (CpuSet) {};
                return 0;
        }
        return cpu_list_parse(line, ret);
}

static int parse_distances(const char *line, NumaNode *n) {
        _cleanup_free_ unsigned *d = NULL;
        size_t k = 0;
        const char *p = line;

        for (;;) {
                char word[16];
                size_t len;
                unsigned v;
                unsigned *t;

                p += strspn(p, " \t");
                if (*p == 0)
                        break;
                len = strcspn(p, " \t");
                if (len >= sizeof(word))
                        return -EINVAL;
                memcpy(word, p, len);
                word[len] = 0;
                p += len;
                if (parse_unsigned(word, &v) < 0)
                        return -EINVAL;
                if (k >= NUMA_NODES_MAX)
                        return -E2BIG;
                t = realloc(d, (k + 1) * sizeof(unsigned));
                if (!t)
                        return -ENOMEM;
                d = t;
                d[k++] = v;
        }
        if (k == 0)
                return -EINVAL;
        n->distances = TAKE_PTR(d);
        n->n_distances = k;
        return 0;
}

static int read_node(const char *root, unsigned id, NumaNode *ret) {
        _cleanup_free_ char *rel = NULL, *path = NULL, *dist = NULL;
        NumaNode n = { .id = id };
        Meminfo *mi;
        uint64_t v;
        int r;

        if (asprintf(&rel, "sys/devices/system/node/node%u/cpulist", id) < 0)
                return -ENOMEM;
        r = read_cpu_list(root, rel, /* empty_ok= */ true, &n.cpus);   /* memory-only nodes have no CPUs */
        if (r < 0)
                return r;

        free(rel);
        if (asprintf(&rel, "sys/devices/system/node/node%u/meminfo", id) < 0)
                return -ENOMEM;
        path = path_join(root, rel);
        if (!path)
                return -ENOMEM;
        mi = malloc(sizeof(Meminfo));
        if (!mi)
                return -ENOMEM;
        r = meminfo_read(path, mi);
        if (r >= 0)
                r = meminfo_get(mi, "MemTotal", &n.mem_total);
        if (r >= 0 && meminfo_get(mi, "MemFree", &v) >= 0)
                n.mem_free = v;
        free(mi);
        if (r < 0)
                return r;

        free(rel);
        if (asprintf(&rel, "sys/devices/system/node/node%u/distance", id) < 0)
                return -ENOMEM;
        r = read_sysfs_line(root, rel, &dist);
        if (r < 0)
                return r;
        r = parse_distances(dist, &n);
        if (r < 0)
                return r;

        *ret = n;
        return 0;
}

/* No NUMA in the kernel: one node 0 with every online CPU and /proc/meminfo's memory. */
static int read_flat(const char *root, NumaTopology *t) {
        _cleanup_free_ char *path = NULL;
        Meminfo *mi;
        uint64_t v;
        int r;

        t->nodes = calloc(1, sizeof(NumaNode));
        if (!t->nodes)
                return -ENOMEM;
        t->n_nodes = 1;
        t->nodes[0].cpus = t->online_cpus;
        t->nodes[0].distances = calloc(1, sizeof(unsigned));
        if (!t->nodes[0].distances)
                return -ENOMEM;
        t->nodes[0].distances[0] = 10;
        t->nodes[0].n_distances = 1;

        path = path_join(root, "proc/meminfo");
        if (!path)
                return -ENOMEM;
        mi = malloc(sizeof(Meminfo));
        if (!mi)
                return -ENOMEM;
        r = meminfo_read(path, mi);
        if (r >= 0)
                r = meminfo_get(mi, "MemTotal", &t->nodes[0].mem_total);
        if (r >= 0 && meminfo_get(mi, "MemFree", &v) >= 0)
                t->nodes[0].mem_free = v;
        free(mi);
        return r;
}

int numa_topology_read(const char *root, NumaTopology **ret) {
        _cleanup_(numa_topology_freep) NumaTopology *t = NULL;
        _cleanup_free_ char *online = NULL;
        CpuSet nodes;
        int r;

        t = calloc(1, sizeof(NumaTopology));
        if (!t)
                return -ENOMEM;

        r = read_cpu_list(root, "sys/devices/system/cpu/online", false, &t->online_cpus);
        if (r < 0)
                return r;

        r = read_sysfs_line(root, "sys/devices/system/node/online", &online);
        if (r == -ENOENT) {
                r = read_flat(root, t);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(t);
                return 0;
        }
        if (r < 0)
                return r;
        r = cpu_list_parse(online, &nodes);
        if (r < 0)
                return r;
        if (cpu_set_last(&nodes) >= (int) NUMA_NODES_MAX)
                return -ERANGE;

        t->nodes = calloc(cpu_set_count(&nodes), sizeof(NumaNode));
        if (!t->nodes)
                return -ENOMEM;
        for (unsigned id = 0; id < NUMA_NODES_MAX; id++) {
                if (!cpu_set_contains(&nodes, id))
                        continue;
                r = read_node(root, id, &t->nodes[t->n_nodes]);
                if (r < 0)
                        return r;
                t->n_nodes++;
        }
        /* The distance rows list every online node, in order. */
        for (size_t i = 0; i < t->n_nodes; i++)
                if (t->nodes[i].n_distances != t->n_nodes)
                        return -EBADMSG;

        *ret = TAKE_PTR(t);
        return 0;
}

const NumaNode *numa_topology_find_node(const NumaTopology *t, unsigned id) {
        for (size_t i = 0; i < t->n_nodes; i++)
                if (t->nodes[i].id == id)
                        return &t->nodes[i];
        return NULL;
}

int numa_topology_node_of_cpu(const NumaTopology *t, unsigned cpu) {
        for (size_t i = 0; i < t->n_nodes; i++)
                if (cpu_set_contains(&t->nodes[i].cpus, cpu))
                        return (int) t->nodes[i].id;
        return -ENOENT;
}

int numa_topology_to_json(const NumaTopology *t, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL, *nodes = NULL;
        _cleanup_free_ char *online = NULL;
        int r;

        o = json_object_new_object();
        nodes = json_object_new_array();
        if (!o || !nodes)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_nodes; i++) {
                _cleanup_(json_object_putp) json_object *n = NULL, *d = NULL;
                _cleanup_free_ char *cpus = NULL;

                r = cpu_list_format(&t->nodes[i].cpus, &cpus);
                if (r < 0)
                        return r;
                n = json_object_new_object();
                d = json_object_new_array();
                if (!n || !d)
                        return -ENOMEM;
                for (size_t k = 0; k < t->nodes[i].n_distances; k++)
                        if (json_object_array_add(d, json_object_new_int64(t->nodes[i].distances[k])) < 0)
                                return -ENOMEM;
                if ((r = json_add_int(n, "node", t->nodes[i].id)) < 0 ||
                    (r = json_add_string(n, "cpus", cpus)) < 0 ||
                    (r = json_add_uint(n, "memTotalBytes", t->nodes[i].mem_total)) < 0 ||
                    (r = json_add_uint(n, "memFreeBytes", t->nodes[i].mem_free)) < 0 ||
                    (r = json_add(n, "distances", TAKE_PTR(d))) < 0)
                        return r;
                if (json_object_array_add(nodes, TAKE_PTR(n)) < 0)
                        return -ENOMEM;
        }
        r = cpu_list_format(&t->online_cpus, &online);
        if (r < 0)
                return r;
        if ((r = json_add(o, "nodes", TAKE_PTR(nodes))) < 0 ||
            (r = json_add_string(o, "onlineCPUs", online)) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

int numa_node_list_parse(const char *s, uint64_t *ret_mask) {
        CpuSet set;
        uint64_t mask = 0;
        int r;

        r = cpu_list_parse(s, &set);
        if (r < 0)
                return r;
        if (cpu_set_last(&set) >= (int) NUMA_NODES_MAX)
                return -ERANGE;
        mask = set.bits[0];
        *ret_mask = mask;
        return 0;
}
