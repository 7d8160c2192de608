/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/parse.h"
#include "metrics/meminfo.h"
#include "numa/numa-hugepages.h"
#include "numa/numa-topology.h"

#define HUGEPAGES_DIR "sys/kernel/mm/hugepages"

/* A count file of sysfs ("128\n"). */
static int read_count(const char *root, const char *dir, uint64_t size, const char *file, uint64_t *ret) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        int r;

        if (asprintf(&path, "%s/%s/hugepages-%" PRIu64 "kB/%s", root, dir, size >> 10, file) < 0)
                return -ENOMEM;
        r = read_full_file(path, 64, &text, NULL);
        if (r < 0)
                return r;
        text[strcspn(text, "\n")] = 0;
        return parse_uint64(text, ret);
}

int hugepages_size_offered(const char *root, uint64_t size) {
        _cleanup_free_ char *path = NULL;

        if (size < 1024 || size % 1024 != 0)
                return 0;
        if (asprintf(&path, "%s/" HUGEPAGES_DIR "/hugepages-%" PRIu64 "kB", root, size >> 10) < 0)
                return -ENOMEM;
        if (access(path, F_OK) < 0)
                return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
        return 1;
}

int hugepages_sizes_text(const char *root, char **ret) {
        _cleanup_free_ char *path = path_join(root, HUGEPAGES_DIR), *buf = NULL;
        uint64_t sizes[16];
        size_t n = 0, len = 0;
        struct dirent *de;
        FILE *f;
        DIR *d;

        if (!path)
                return -ENOMEM;
        d = opendir(path);
        while (d && (de = readdir(d)) && n < ELEMENTSOF(sizes)) {
                uint64_t kb;
                char *end;

                if (strncmp(de->d_name, "hugepages-", 10) != 0)
                        continue;
                errno = 0;
                kb = strtoull(de->d_name + 10, &end, 10);
                if (errno == 0 && kb > 0 && streq(end, "kB"))
                        sizes[n++] = kb << 10;
        }
        if (d)
                closedir(d);
        for (size_t i = 1; i < n; i++)  /* ascending */
                for (size_t j = i; j > 0 && sizes[j - 1] > sizes[j]; j--) {
                        uint64_t t = sizes[j];
                        sizes[j] = sizes[j - 1];
                        sizes[j - 1] = t;
                }
        f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char s[FORMAT_SIZE_MAX];

                format_size(s, sizeof(s), sizes[i]);
                fprintf(f, "%s%s", i > 0 ? ", " : "", s);
        }
        if (n == 0)
                fputs("none", f);
        if (fclose(f) != 0 || !buf)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

int hugepages_default_size(const char *root, uint64_t *ret) {
        _cleanup_free_ Meminfo *mi = malloc(sizeof(Meminfo));
        _cleanup_free_ char *path = path_join(root, "proc/meminfo");
        uint64_t v;
        int r;

        if (!mi || !path)
                return -ENOMEM;
        r = meminfo_read(path, mi);
        if (r < 0)
                return r;
        r = meminfo_get(mi, "Hugepagesize", &v);
        if (r < 0)
                return r;
        if (v == 0)
                return -ENOENT;
        *ret = v;
        return 0;
}

static const char *spread_word(HugepagesSpread s) {
        return s == HUGEPAGES_EACH ? "interleave: each an equal share" : "bind";
}

int hugepages_check(const char *root, uint64_t size, uint64_t bytes, uint64_t node_mask, HugepagesSpread spread,
                    char **ret_reason) {
        _cleanup_free_ char *buf = NULL;
        uint64_t need, free_pages = 0, resv = 0, node_free[NUMA_NODES_MAX] = {}, sum = 0;
        char ssize[FORMAT_SIZE_MAX], sbytes[FORMAT_SIZE_MAX];
        unsigned n_nodes = 0;
        bool enough = true;
        size_t len = 0;
        FILE *f;
        int r;

        *ret_reason = NULL;
        if (size == 0)
                return -EINVAL;
        format_size(ssize, sizeof(ssize), size);
        format_size(sbytes, sizeof(sbytes), bytes);
        need = (bytes + size - 1) / size;

        r = hugepages_size_offered(root, size);
        if (r < 0)
                return r;
        if (r == 0) {
                _cleanup_free_ char *sizes = NULL;

                r = hugepages_sizes_text(root, &sizes);
                if (r < 0)
                        return r;
                return asprintf(ret_reason, "the host has no huge pages of %s (it offers: %s)", ssize, sizes) < 0
                               ? -ENOMEM : -EOPNOTSUPP;
        }

        r = read_count(root, HUGEPAGES_DIR, size, "free_hugepages", &free_pages);
        if (r < 0)
                return r;
        if (read_count(root, HUGEPAGES_DIR, size, "resv_hugepages", &resv) < 0)
                resv = 0;
        /* Reserved pages are counted free until faulted in, but belong to mappings that exist already. */
        free_pages = free_pages > resv ? free_pages - resv : 0;
        if (free_pages < need)
                enough = false;

        if (spread != HUGEPAGES_ANYWHERE && node_mask != 0) {
                for (unsigned n = 0; n < NUMA_NODES_MAX; n++) {
                        _cleanup_free_ char *dir = NULL;

                        if (!(node_mask & (UINT64_C(1) << n)))
                                continue;
                        if (asprintf(&dir, "sys/devices/system/node/node%u/hugepages", n) < 0)
                                return -ENOMEM;
                        r = read_count(root, dir, size, "free_hugepages", &node_free[n]);
                        if (r == -ENOENT)
                                return asprintf(ret_reason, "host node %u does not exist (or has no huge pages of "
                                                "%s)", n, ssize) < 0 ? -ENOMEM : -ENOENT;
                        if (r < 0)
                                return r;
                        n_nodes++;
                        sum += node_free[n];
                }
                if (spread == HUGEPAGES_ANY_OF && sum < need)
                        enough = false;
                for (unsigned n = 0; spread == HUGEPAGES_EACH && n < NUMA_NODES_MAX; n++)
                        if ((node_mask & (UINT64_C(1) << n)) && node_free[n] < (need + n_nodes - 1) / n_nodes)
                                enough = false;
        }
        if (enough)
                return 0;

        f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        fprintf(f, "the guest needs %" PRIu64 " huge pages of %s (%s)", need, ssize, sbytes);
        if (n_nodes > 0) {
                fprintf(f, " on host node%s", n_nodes > 1 ? "s" : "");
                for (unsigned n = 0, k = 0; n < NUMA_NODES_MAX; n++)
                        if (node_mask & (UINT64_C(1) << n))
                                fprintf(f, "%s%u", k++ > 0 ? "," : " ", n);
                fprintf(f, " (%s); free:", spread_word(spread));
                for (unsigned n = 0, k = 0; n < NUMA_NODES_MAX; n++)
                        if (node_mask & (UINT64_C(1) << n))
                                fprintf(f, "%s node %u: %" PRIu64, k++ > 0 ? "," : "", n, node_free[n]);
                fprintf(f, "; whole host: %" PRIu64 " free, not reserved", free_pages);
        } else
                fprintf(f, "; the host has %" PRIu64 " free, not reserved", free_pages);
        fprintf(f, " (/proc/sys/vm/nr_hugepages, or per node "
                   "/sys/devices/system/node/nodeN/hugepages/hugepages-%" PRIu64 "kB/nr_hugepages, sets how many "
                   "there are)", size >> 10);
        if (fclose(f) != 0 || !buf)
                return -ENOMEM;
        *ret_reason = TAKE_PTR(buf);
        return -ENOSPC;
}
