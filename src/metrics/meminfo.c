/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <stdio.h>

#include "basic/fileio.h"
#include "metrics/meminfo.h"
#include "basic/parse.h"

int meminfo_parse(const char *text, Meminfo *ret) {
        Meminfo m = {};
        const char *p = text;

        while (*p) {
                const char *eol = strchrnul(p, '\n'), *q = p, *colon;
                char name[sizeof(m.fields[0].name)], num[32];
                size_t nl, dl;
                uint64_t v;

                /* Node files: "Node 0 MemTotal:       123 kB" */
                if (startswith(q, "Node ")) {
                        q += 5;
                        while (q < eol && isdigit((unsigned char) *q))
                                q++;
                        while (q < eol && *q == ' ')
                                q++;
                }
                if (q == eol) {         /* empty line */
                        p = *eol ? eol + 1 : eol;
                        continue;
                }

                colon = memchr(q, ':', (size_t) (eol - q));
                if (!colon || colon == q)
                        return -EINVAL;
                nl = (size_t) (colon - q);
                if (nl >= sizeof(name))
                        return -EINVAL;
                memcpy(name, q, nl);
                name[nl] = 0;
                for (size_t i = 0; i < nl; i++)
                        if (!isalnum((unsigned char) name[i]) && !strchr("_()", name[i]))
                                return -EINVAL;

                q = colon + 1;
                while (q < eol && *q == ' ')
                        q++;
                dl = 0;
                while (q < eol && isdigit((unsigned char) *q) && dl < sizeof(num) - 1)
                        num[dl++] = *q++;
                num[dl] = 0;
                if (dl == 0 || parse_uint64(num, &v) < 0)
                        return -EINVAL;
                while (q < eol && *q == ' ')
                        q++;

                if (m.n_fields >= MEMINFO_MAX_FIELDS)
                        return -E2BIG;
                MeminfoField *f = &m.fields[m.n_fields++];
                memcpy(f->name, name, nl + 1);
                if (eol - q == 2 && q[0] == 'k' && q[1] == 'B') {
                        if (v > UINT64_MAX / 1024)
                                return -ERANGE;
                        f->value = v * 1024;
                        f->bytes = true;
                } else if (q == eol)
                        f->value = v;
                else
                        return -EINVAL;

                p = *eol ? eol + 1 : eol;
        }

        if (m.n_fields == 0)
                return -ENODATA;
        *ret = m;
        return 0;
}

int meminfo_read(const char *path, Meminfo *ret) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_full_file(path, 64 * 1024, &text, NULL);
        if (r < 0)
                return r;
        return meminfo_parse(text, ret);
}

int meminfo_get(const Meminfo *m, const char *name, uint64_t *ret) {
        for (size_t i = 0; i < m->n_fields; i++)
                if (streq(m->fields[i].name, name)) {
                        *ret = m->fields[i].value;
                        return 0;
                }
        return -ENOENT;
}

int host_memory_from_meminfo(const Meminfo *m, HostMemory *ret) {
        HostMemory h = {};

        if (meminfo_get(m, "MemTotal", &h.mem_total) < 0 || meminfo_get(m, "MemAvailable", &h.mem_available) < 0 ||
            meminfo_get(m, "Committed_AS", &h.committed_as) < 0 || meminfo_get(m, "CommitLimit", &h.commit_limit) < 0)
                return -ENODATA;
        (void) meminfo_get(m, "MemFree", &h.mem_free);
        (void) meminfo_get(m, "SwapTotal", &h.swap_total);
        (void) meminfo_get(m, "SwapFree", &h.swap_free);
        *ret = h;
        return 0;
}

double host_memory_overcommit_ratio(const HostMemory *h) {
        if (h->commit_limit == 0)
                return 0;
        return (double) h->committed_as / (double) h->commit_limit;
}
