/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>

#include "basic/fileio.h"
#include "metrics/numa-maps.h"
#include "basic/parse.h"

static const char *const numa_maps_kind_table[_NUMA_MAPS_KIND_MAX] = {
        [NUMA_MAPS_ANON] = "anon",
        [NUMA_MAPS_FILE] = "file",
        [NUMA_MAPS_HUGE] = "huge",
        [NUMA_MAPS_OTHER] = "other",
};

DEFINE_STRING_TABLE(numa_maps_kind, NumaMapsKind, _NUMA_MAPS_KIND_MAX);

void numa_maps_done(NumaMaps *m) {
        if (!m)
                return;
        free(m->nodes);
        *m = (NumaMaps) {};
}

static int parse_decimal(const char *s, size_t l, uint64_t *ret) {
        char buf[24];

        if (l == 0 || l >= sizeof(buf))
                return l == 0 ? -EINVAL : -ERANGE;
        for (size_t i = 0; i < l; i++)
                if (!isdigit((unsigned char) s[i]))
                        return -EINVAL;
        memcpy(buf, s, l);
        buf[l] = 0;
        return parse_uint64(buf, ret);
}

typedef struct NodePages {
        unsigned node;
        uint64_t pages;
} NodePages;

/* One line; the node counts are collected first since kernelpagesize_kB comes after them. */
static int parse_line(const char *p, const char *eol, NumaMaps *m) {
        _cleanup_free_ NodePages *np = NULL;
        size_t n_np = 0, a_np = 0;
        NumaMapsKind kind = NUMA_MAPS_OTHER;
        bool anon = false, file = false, huge = false;
        uint64_t page_kb = 4;
        const char *q = p;
        int r;

        /* Address */
        while (q < eol && isxdigit((unsigned char) *q))
                q++;
        if (q == p || q == eol || *q != ' ')
                return -EINVAL;
        q++;
        /* Policy: default, bind:0-1, interleave=…, prefer:1, preferred-many…, local */
        if (q == eol || !islower((unsigned char) *q))
                return -EINVAL;
        while (q < eol && *q != ' ')
                q++;

        while (q < eol) {
                const char *tok, *te, *eq;

                while (q < eol && *q == ' ')
                        q++;
                if (q == eol)
                        break;
                tok = q;
                /* file= may contain spaces (paths); it is the last key before the counters except for those
                 * the kernel prints after it, so scan to the next " key=" or " key" we know. Paths are not needed:
                 * treat "file=" as consuming up to the next token that looks like a known key. */
                if (startswith(tok, "file=")) {
                        file = true;
                        const char *s = tok + 5;
                        for (;;) {
                                const char *sp = memchr(s, ' ', (size_t) (eol - s));
                                if (!sp) {
                                        q = eol;
                                        break;
                                }
                                s = sp + 1;
                                if (startswith(s, "huge") || startswith(s, "heap") || startswith(s, "stack") ||
                                    startswith(s, "anon=") || startswith(s, "dirty=") || startswith(s, "mapped=") ||
                                    startswith(s, "mapmax=") || startswith(s, "swapcache=") ||
                                    startswith(s, "active=") || startswith(s, "writeback=") ||
                                    startswith(s, "kernelpagesize_kB=") ||
                                    (s[0] == 'N' && isdigit((unsigned char) s[1]))) {
                                        q = sp;
                                        break;
                                }
                        }
                        continue;
                }

                te = memchr(q, ' ', (size_t) (eol - q)) ?: eol;
                q = te;
                eq = memchr(tok, '=', (size_t) (te - tok));

                if (tok[0] == 'N' && eq && eq > tok + 1) {
                        uint64_t node, pages;

                        r = parse_decimal(tok + 1, (size_t) (eq - tok - 1), &node);
                        if (r < 0)
                                return r;
                        if (node > NUMA_MAPS_MAX_NODE)
                                return -ERANGE;
                        r = parse_decimal(eq + 1, (size_t) (te - eq - 1), &pages);
                        if (r < 0)
                                return r;
                        if (n_np >= a_np) {
                                size_t na = MAX(a_np * 2, (size_t) 4);
                                NodePages *t = reallocarray(np, na, sizeof(NodePages));
                                if (!t)
                                        return -ENOMEM;
                                np = t;
                                a_np = na;
                        }
                        np[n_np++] = (NodePages) { (unsigned) node, pages };
                } else if (eq && (size_t) (eq - tok) == strlen("kernelpagesize_kB") &&
                           startswith(tok, "kernelpagesize_kB=")) {
                        r = parse_decimal(eq + 1, (size_t) (te - eq - 1), &page_kb);
                        if (r < 0)
                                return r;
                        if (page_kb == 0 || page_kb > UINT64_C(16) * 1024 * 1024)
                                return -EINVAL;
                } else if (eq && startswith(tok, "anon="))
                        anon = true;
                else if (!eq && (size_t) (te - tok) == 4 && startswith(tok, "huge"))
                        huge = true;
                else {
                        /* Other keys (dirty=, mapped=, heap, stack, …): a key is lowercase letters and '_'. */
                        for (const char *c = tok; c < (eq ?: te); c++)
                                if (!islower((unsigned char) *c) && *c != '_')
                                        return -EINVAL;
                        if (eq) {
                                uint64_t dummy;
                                r = parse_decimal(eq + 1, (size_t) (te - eq - 1), &dummy);
                                if (r < 0)
                                        return r;
                        }
                }
        }

        if (huge)
                kind = NUMA_MAPS_HUGE;
        else if (anon && !file)
                kind = NUMA_MAPS_ANON;
        else if (file)
                kind = NUMA_MAPS_FILE;
        else if (anon)
                kind = NUMA_MAPS_ANON;

        for (size_t i = 0; i < n_np; i++) {
                NumaMapsNode *n;
                uint64_t bytes;

                if (np[i].node >= m->n_nodes) {
                        NumaMapsNode *t = reallocarray(m->nodes, np[i].node + 1, sizeof(NumaMapsNode));
                        if (!t)
                                return -ENOMEM;
                        memset(t + m->n_nodes, 0, (np[i].node + 1 - m->n_nodes) * sizeof(NumaMapsNode));
                        m->nodes = t;
                        m->n_nodes = np[i].node + 1;
                }
                if (np[i].pages > UINT64_MAX / 1024 / page_kb)
                        return -ERANGE;
                bytes = np[i].pages * page_kb * 1024;
                n = &m->nodes[np[i].node];
                if (n->bytes > UINT64_MAX - bytes || m->total_bytes > UINT64_MAX - bytes)
                        return -ERANGE;
                n->pages += np[i].pages;
                n->bytes += bytes;
                n->kind_bytes[kind] += bytes;
                m->kind_bytes[kind] += bytes;
                m->total_bytes += bytes;
        }
        m->n_mappings++;
        return 0;
}

int numa_maps_parse(const char *text, NumaMaps *ret) {
        NumaMaps m = {};
        int r;

        for (const char *p = text; *p;) {
                const char *eol = strchrnul(p, '\n');

                if (eol > p) {
                        r = parse_line(p, eol, &m);
                        if (r < 0) {
                                numa_maps_done(&m);
                                return r;
                        }
                }
                p = *eol ? eol + 1 : eol;
        }

        *ret = m;
        return 0;
}

int numa_maps_read(const char *path, NumaMaps *ret) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_full_file(path, NUMA_MAPS_MAX_SIZE, &text, NULL);
        if (r == -ESRCH)
                return -ENOENT;
        if (r < 0)
                return r;
        return numa_maps_parse(text, ret);
}

uint64_t numa_maps_node_bytes(const NumaMaps *m, unsigned node) {
        return node < m->n_nodes ? m->nodes[node].bytes : 0;
}
