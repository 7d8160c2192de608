/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/strv.h"
#include "qmp/qmp-mtree.h"

#define LINE_MAX_BYTES 1024U

static const char *const qmp_mtree_kind_table[_QMP_MTREE_KIND_MAX] = {
        [QMP_MTREE_RAM] = "ram",
        [QMP_MTREE_ROM] = "rom",
        [QMP_MTREE_ROMD] = "romd",
        [QMP_MTREE_RAMD] = "ramd",
        [QMP_MTREE_IO] = "i/o",
};

DEFINE_STRING_TABLE(qmp_mtree_kind, QmpMtreeKind, _QMP_MTREE_KIND_MAX);

/* The accelerators QEMU names after a range (those whose AccelClass has_memory). */
static const char *const accelerators[] = { "KVM", "HAX", "HVF", "NVMM", "WHPX" };

static bool is_accelerator(const char *s, size_t n) {
        for (size_t i = 0; i < ELEMENTSOF(accelerators); i++)
                if (strlen(accelerators[i]) == n && memcmp(accelerators[i], s, n) == 0)
                        return true;
        return false;
}

/* A name as QEMU prints it: printable ASCII, 1 to QMP_MTREE_MAX_NAME bytes. */
static bool name_valid(const char *s, size_t n) {
        if (n == 0 || n > QMP_MTREE_MAX_NAME)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return false;
        return true;
}

/* 1 to 16 hex digits at *p, advancing it. */
static int parse_hex(const char **p, uint64_t *ret) {
        uint64_t v = 0;
        size_t n = 0;

        for (const char *s = *p;; s++, n++) {
                int d;

                if (*s >= '0' && *s <= '9')
                        d = *s - '0';
                else if (*s >= 'a' && *s <= 'f')
                        d = *s - 'a' + 10;
                else if (*s >= 'A' && *s <= 'F')
                        d = *s - 'A' + 10;
                else
                        break;
                if (n >= 16)
                        return -EBADMSG;
                v = v << 4 | (uint64_t) d;
        }
        if (n == 0)
                return -EBADMSG;
        *p += n;
        *ret = v;
        return 0;
}

static bool skip(const char **p, const char *prefix) {
        size_t n = strlen(prefix);

        if (strncmp(*p, prefix, n) != 0)
                return false;
        *p += n;
        return true;
}

static void range_done(QmpMtreeRange *r) {
        free(r->name);
        free(r->accelerators);
}

static void view_done(QmpMtreeView *v) {
        strv_free(v->address_spaces);
        free(v->root);
        for (size_t i = 0; i < v->n_ranges; i++)
                range_done(v->ranges + i);
        free(v->ranges);
}

void qmp_mtree_done(QmpMtree *t) {
        for (size_t i = 0; i < t->n_views; i++)
                view_done(t->views + i);
        free(t->views);
        *t = (QmpMtree) {};
}

/* "START-LAST (prio P, [nv-]KIND): NAME[ @OFFSET][ ACCEL…]" (leading spaces already skipped). */
static int parse_range(const char *p, QmpMtreeRange *ret) {
        QmpMtreeRange r = {};
        const char *end, *colon;
        char kind[8];
        long prio;
        char *e;
        size_t n;

        if (parse_hex(&p, &r.start) < 0 || !skip(&p, "-") || parse_hex(&p, &r.last) < 0 || r.last < r.start ||
            !skip(&p, " (prio "))
                return -EBADMSG;
        if (!(*p == '-' || (*p >= '0' && *p <= '9')))
                return -EBADMSG;
        errno = 0;
        prio = strtol(p, &e, 10);
        if (errno != 0 || e == p || prio < -65536 || prio > 65536)
                return -EBADMSG;
        r.priority = (int) prio;
        p = e;
        if (!skip(&p, ", "))
                return -EBADMSG;
        r.nonvolatile = skip(&p, "nv-");
        colon = strstr(p, "): ");
        if (!colon || (size_t) (colon - p) >= sizeof(kind))
                return -EBADMSG;
        memcpy(kind, p, colon - p);
        kind[colon - p] = 0;
        r.kind = qmp_mtree_kind_from_string(kind);
        if (r.kind < 0)
                return -EBADMSG;
        p = colon + 3;

        /* From the end: accelerator words, then " @OFFSET", then the name (which may hold spaces). */
        end = p + strlen(p);
        for (;;) {
                const char *sp = end;

                while (sp > p && sp[-1] != ' ')
                        sp--;
                if (sp <= p || !is_accelerator(sp, end - sp))
                        break;
                end = sp - 1;
        }
        if (*end) {
                n = strlen(end + 1);
                r.accelerators = strndup(end + 1, n);
                if (!r.accelerators)
                        return -ENOMEM;
        }
        {
                const char *sp = end;

                while (sp > p && sp[-1] != ' ')
                        sp--;
                if (sp > p && *sp == '@') {
                        const char *q = sp + 1;

                        if (parse_hex(&q, &r.offset) < 0 || q != end) {
                                range_done(&r);
                                return -EBADMSG;
                        }
                        r.has_offset = true;
                        end = sp - 1;
                }
        }
        if (!name_valid(p, end - p) || p[0] == ' ' || end[-1] == ' ') {
                range_done(&r);
                return -EBADMSG;
        }
        r.name = strndup(p, end - p);
        if (!r.name) {
                range_done(&r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

/* ` AS "NAME", root: ROOT` → NAME. */
static int parse_as(const char *p, char **ret) {
        const char *q;

        if (!skip(&p, "AS \""))
                return -EBADMSG;
        q = strstr(p, "\", root: ");
        if (!q || !name_valid(p, q - p) || memchr(p, '"', q - p) || !name_valid(q + 9, strlen(q + 9)))
                return -EBADMSG;
        *ret = strndup(p, q - p);
        return *ret ? 0 : -ENOMEM;
}

typedef struct Parser {
        QmpMtree tree;
        size_t n_ranges, n_as;
        bool root_seen, empty;          /* of the current view */
} Parser;

static int parse_line(Parser *ps, const char *line) {
        const char *p = line;
        QmpMtreeView *v = ps->tree.n_views > 0 ? ps->tree.views + ps->tree.n_views - 1 : NULL;
        size_t indent = strspn(line, " ");
        int r;

        p += indent;
        if (*p == 0)
                return 0;               /* blank lines separate the views */
        if (indent == 0) {
                unsigned long k;
                char *e;

                if (!skip(&p, "FlatView #") || !(*p >= '0' && *p <= '9'))
                        return -EBADMSG;
                errno = 0;
                k = strtoul(p, &e, 10);
                if (errno != 0 || *e || k != ps->tree.n_views)
                        return -EBADMSG;
                if (ps->tree.n_views >= QMP_MTREE_MAX_VIEWS)
                        return -E2BIG;
                v = reallocarray(ps->tree.views, ps->tree.n_views + 1, sizeof(QmpMtreeView));
                if (!v)
                        return -ENOMEM;
                ps->tree.views = v;
                ps->tree.views[ps->tree.n_views++] = (QmpMtreeView) {};
                ps->root_seen = ps->empty = false;
                return 0;
        }
        if (!v)
                return -EBADMSG;
        if (indent == 1 && startswith(p, "AS ")) {
                char *as = NULL;

                if (ps->root_seen)
                        return -EBADMSG;
                if (++ps->n_as > QMP_MTREE_MAX_ADDRESS_SPACES)
                        return -E2BIG;
                r = parse_as(p, &as);
                if (r < 0)
                        return r;
                return strv_consume(&v->address_spaces, as);
        }
        if (indent == 1 && skip(&p, "Root memory region: ")) {
                if (ps->root_seen)
                        return -EBADMSG;
                ps->root_seen = true;
                if (streq(p, "(none)"))
                        return 0;
                if (!name_valid(p, strlen(p)))
                        return -EBADMSG;
                v->root = strdup(p);
                return v->root ? 0 : -ENOMEM;
        }
        if (indent == 2 && streq(p, "No rendered FlatView")) {
                if (!ps->root_seen || v->n_ranges > 0 || ps->empty)
                        return -EBADMSG;
                ps->empty = true;
                return 0;
        }
        if (indent == 2) {
                QmpMtreeRange range, *a;

                if (!ps->root_seen || ps->empty)
                        return -EBADMSG;
                if (ps->n_ranges >= QMP_MTREE_MAX_RANGES)
                        return -E2BIG;
                r = parse_range(p, &range);
                if (r < 0)
                        return r;
                if (v->n_ranges > 0 && range.start <= v->ranges[v->n_ranges - 1].last) {
                        range_done(&range);
                        return -EBADMSG;
                }
                a = reallocarray(v->ranges, v->n_ranges + 1, sizeof(QmpMtreeRange));
                if (!a) {
                        range_done(&range);
                        return -ENOMEM;
                }
                v->ranges = a;
                v->ranges[v->n_ranges++] = range;
                ps->n_ranges++;
                return 0;
        }
        return -EBADMSG;
}

int qmp_mtree_parse(const char *text, size_t size, QmpMtree *ret) {
        Parser ps = {};
        char line[LINE_MAX_BYTES + 1];
        size_t off = 0;
        int r = 0;

        if (size > QMP_MTREE_MAX_TEXT)
                return -EFBIG;
        if (memchr(text, 0, size))
                return -EBADMSG;
        while (off < size) {
                const char *nl = memchr(text + off, '\n', size - off);
                size_t len = nl ? (size_t) (nl - (text + off)) : size - off, n = len;

                if (n > 0 && text[off + n - 1] == '\r')
                        n--;
                if (n > LINE_MAX_BYTES) {
                        r = -EBADMSG;
                        break;
                }
                memcpy(line, text + off, n);
                line[n] = 0;
                r = parse_line(&ps, line);
                if (r < 0)
                        break;
                off += len + 1;
        }
        if (r >= 0 && ps.tree.n_views == 0)
                r = -EBADMSG;
        for (size_t i = 0; r >= 0 && i < ps.tree.n_views; i++)
                if (!ps.tree.views[i].address_spaces)
                        r = -EBADMSG;   /* every view serves at least one address space */
        if (r < 0) {
                qmp_mtree_done(&ps.tree);
                return r;
        }
        *ret = ps.tree;
        return 0;
}

const QmpMtreeView *qmp_mtree_find_view(const QmpMtree *t, const char *as) {
        for (size_t i = 0; i < t->n_views; i++)
                if (strv_contains(t->views[i].address_spaces, as))
                        return t->views + i;
        return NULL;
}

int qmp_gpa2hva_parse(const char *text, size_t size, uint64_t *ret_gpa, char **ret_region, uint64_t *ret_hva) {
        char buf[LINE_MAX_BYTES + 1];
        const char *p = buf, *q;
        uint64_t gpa, hva;

        if (size > LINE_MAX_BYTES || memchr(text, 0, size))
                return -EBADMSG;
        memcpy(buf, text, size);
        buf[size] = 0;
        if (size > 0 && buf[size - 1] == '\n')
                buf[--size] = 0;
        if (size > 0 && buf[size - 1] == '\r')
                buf[--size] = 0;
        if (startswith(buf, "No memory is mapped at address ") || startswith(buf, "Memory at address ") ||
            startswith(buf, "No memory at address "))
                return -ENXIO;
        if (!skip(&p, "Host virtual address for 0x") || parse_hex(&p, &gpa) < 0 || !skip(&p, " ("))
                return -EBADMSG;
        q = strstr(p, ") is 0x");
        if (!q || !name_valid(p, q - p))
                return -EBADMSG;
        {
                const char *h = q + 7;

                if (parse_hex(&h, &hva) < 0 || *h)
                        return -EBADMSG;
        }
        if (ret_region) {
                *ret_region = strndup(p, q - p);
                if (!*ret_region)
                        return -ENOMEM;
        }
        if (ret_gpa)
                *ret_gpa = gpa;
        *ret_hva = hva;
        return 0;
}
