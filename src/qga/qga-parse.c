/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pure parsers of guest files (/proc/vmstat, /proc/meminfo, /proc/interrupts, sysfs lists), the snapshot
 * built from them, its delta, and the free functions. Everything here is untrusted guest output.
 *
 * Policy for a bad line: the whole file is refused (-EBADMSG) and qga_guest_counters_parse() reports that file
 * unavailable with the line's number and what is wrong with it. A reader cannot tell a line the kernel wrote in
 * an unexpected way from a file corrupted or forged on its way out of the guest, and keeping the other lines
 * would make the bad counter vanish without a word (or, worse, read as 0 in a delta). The kernel writes these
 * files in fixed formats, so a real guest never trips this. */

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "basic/log.h"
#include "qga/qga-ops.h"

static void *memdup(const void *p, size_t n) {
        void *r = n > 0 ? malloc(n) : NULL;

        if (r)
                memcpy(r, p, n);
        return r;
}

#define VMSTAT_MAX 1024U                /* a 6.x kernel has about 190 keys */
#define MEMINFO_MAX 512U                /* about 60 */
#define NAME_MAX_LEN 64U
#define IRQ_CPUS_MAX 8192U              /* the CPU columns of /proc/interrupts */
#define IRQ_LABELS_MAX 16U
#define IRQ_DESCRIPTION_MAX 256U

static const char *const tlb_flush_counters[] = {
        "nr_tlb_remote_flush",
        "nr_tlb_remote_flush_received",
        "nr_tlb_local_flush_all",
        "nr_tlb_local_flush_one",
};

/* One line of a buffer: [p, eol); *next is behind its '\n'. A NUL anywhere makes the text not a kernel file. */
typedef struct Lines {
        const char *p, *end;
        unsigned number;
} Lines;

/* 1: a line in [*ret_line, *ret_eol); 0: the end; -EBADMSG: a NUL byte in the line. */
static int lines_next(Lines *l, const char **ret_line, const char **ret_eol) {
        const char *eol;

        if (l->p >= l->end)
                return 0;
        eol = memchr(l->p, '\n', (size_t) (l->end - l->p));
        if (!eol)
                eol = l->end;           /* a last line without '\n' is accepted */
        l->number++;
        if (memchr(l->p, 0, (size_t) (eol - l->p)))
                return -EBADMSG;
        *ret_line = l->p;
        *ret_eol = eol;
        l->p = eol < l->end ? eol + 1 : eol;
        return 1;
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* A decimal uint64 at *p (before end), at least one digit, no sign; advances *p. -ERANGE on overflow. */
static int parse_dec(const char **p, const char *end, uint64_t *ret) {
        const char *q = *p;
        uint64_t v = 0;

        if (q >= end || !is_digit(*q))
                return -EINVAL;
        for (; q < end && is_digit(*q); q++) {
                unsigned d = (unsigned) (*q - '0');

                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *p = q;
        *ret = v;
        return 0;
}

static const char *skip_spaces(const char *p, const char *end) {
        while (p < end && *p == ' ')
                p++;
        return p;
}

static bool name_char(char c, const char *extra) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || strchr(extra, c);
}

void qga_counters_free_array(QgaCounter *a, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(a[i].name);
        free(a);
}

void qga_unavailable_free_array(QgaUnavailable *a, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(a[i].name);
                free(a[i].reason);
        }
        free(a);
}

int qga_unavailable_add(QgaUnavailable **a, size_t *n, const char *name, const char *format, ...) {
        _cleanup_free_ char *nm = NULL, *reason = NULL;
        QgaUnavailable *b;
        va_list ap;
        int k;

        nm = strdup(name);
        if (!nm)
                return -ENOMEM;
        va_start(ap, format);
        k = vasprintf(&reason, format, ap);
        va_end(ap);
        if (k < 0) {
                reason = NULL;
                return -ENOMEM;
        }

        b = reallocarray(*a, *n + 1, sizeof(QgaUnavailable));
        if (!b)
                return -ENOMEM;
        b[*n] = (QgaUnavailable) { .name = TAKE_PTR(nm), .reason = TAKE_PTR(reason) };
        *a = b;
        (*n)++;
        return 0;
}

static bool counters_contain(const QgaCounter *a, size_t n, const char *name, size_t len, uint64_t *ret) {
        for (size_t i = 0; i < n; i++)
                if (strlen(a[i].name) == len && memcmp(a[i].name, name, len) == 0) {
                        if (ret)
                                *ret = a[i].value;
                        return true;
                }
        return false;
}

/* Appends a counter (name is [name, name+len)). */
static int counters_push(QgaCounter **a, size_t *n, const char *name, size_t len, uint64_t value) {
        QgaCounter *b;
        char *nm;

        nm = strndup(name, len);
        if (!nm)
                return -ENOMEM;
        b = reallocarray(*a, *n + 1, sizeof(QgaCounter));
        if (!b) {
                free(nm);
                return -ENOMEM;
        }
        b[*n] = (QgaCounter) { .name = nm, .value = value };
        *a = b;
        (*n)++;
        return 0;
}

/* ---- /proc/vmstat ---- */

static int parse_vmstat(const char *text, size_t size, QgaCounter **ret, size_t *ret_n, unsigned *ret_line,
                        const char **ret_why) {
        QgaCounter *a = NULL;
        size_t n = 0;
        Lines l = { .p = text, .end = text + size };
        const char *p, *eol, *why;
        int r;

        for (;;) {
                const char *name;
                uint64_t v;

                r = lines_next(&l, &p, &eol);
                if (r == 0)
                        break;
                why = "a NUL byte";
                if (r < 0)
                        goto bad;

                name = p;
                while (p < eol && name_char(*p, ""))
                        p++;
                why = "not \"key value\"";
                if (p == name || p >= eol || *p != ' ')
                        goto bad;
                why = "key too long";
                if ((size_t) (p - name) > NAME_MAX_LEN)
                        goto bad;
                why = "duplicate key";
                if (counters_contain(a, n, name, (size_t) (p - name), NULL))
                        goto bad;
                const char *nend = p;
                p++;
                r = parse_dec(&p, eol, &v);
                why = r == -ERANGE ? "value out of range" : "value is not an unsigned decimal number";
                if (r < 0 || p != eol)
                        goto bad;
                why = "too many keys";
                if (n >= VMSTAT_MAX)
                        goto bad;
                r = counters_push(&a, &n, name, (size_t) (nend - name), v);
                if (r < 0) {
                        qga_counters_free_array(a, n);
                        return r;
                }
        }

        if (n == 0) {
                why = "empty";
                goto bad;
        }
        *ret = a;
        *ret_n = n;
        return 0;

bad:
        qga_counters_free_array(a, n);
        *ret_line = l.number;
        *ret_why = why;
        return -EBADMSG;
}

int qga_parse_vmstat(const char *text, size_t size, QgaCounter **ret, size_t *ret_n) {
        unsigned line;
        const char *why;
        int r;

        r = parse_vmstat(text, size, ret, ret_n, &line, &why);
        if (r == -EBADMSG)
                log_debug("Guest /proc/vmstat, line %u: %s.", line, why);
        return r;
}

/* ---- /proc/meminfo, nodeN/meminfo ---- */

static int parse_meminfo(const char *text, size_t size, QgaCounter **ret, size_t *ret_n, unsigned *ret_line,
                         const char **ret_why) {
        QgaCounter *a = NULL;
        size_t n = 0;
        Lines l = { .p = text, .end = text + size };
        const char *p, *eol, *why;
        int node = -2;                  /* -2: not known yet; -1: no "Node N " prefix; else N */
        int r;

        for (;;) {
                const char *name, *nend;
                uint64_t v;
                int this_node = -1;

                r = lines_next(&l, &p, &eol);
                if (r == 0)
                        break;
                why = "a NUL byte";
                if (r < 0)
                        goto bad;

                if (eol - p >= 5 && memcmp(p, "Node ", 5) == 0) {
                        uint64_t id;

                        p += 5;
                        why = "bad node number";
                        if (parse_dec(&p, eol, &id) < 0 || id > 65535 || p >= eol || *p != ' ')
                                goto bad;
                        p++;
                        this_node = (int) id;
                }
                why = "the \"Node N\" prefix differs from the first line's";
                if (node != -2 && node != this_node)
                        goto bad;
                node = this_node;

                name = p;
                while (p < eol && name_char(*p, "()"))
                        p++;
                nend = p;
                why = "not \"Key: value\"";
                if (p == name || p >= eol || *p != ':')
                        goto bad;
                why = "key too long";
                if ((size_t) (nend - name) > NAME_MAX_LEN)
                        goto bad;
                why = "duplicate key";
                if (counters_contain(a, n, name, (size_t) (nend - name), NULL))
                        goto bad;
                p++;
                why = "no space after the colon";
                if (p >= eol || *p != ' ')
                        goto bad;
                p = skip_spaces(p, eol);
                r = parse_dec(&p, eol, &v);
                why = r == -ERANGE ? "value out of range" : "value is not an unsigned decimal number";
                if (r < 0)
                        goto bad;
                if (p < eol) {
                        why = "unit is not \" kB\"";
                        if (eol - p != 3 || memcmp(p, " kB", 3) != 0)
                                goto bad;
                        why = "value in bytes out of range";
                        if (v > UINT64_MAX / 1024)
                                goto bad;
                        v *= 1024;
                }
                why = "too many keys";
                if (n >= MEMINFO_MAX)
                        goto bad;
                r = counters_push(&a, &n, name, (size_t) (nend - name), v);
                if (r < 0) {
                        qga_counters_free_array(a, n);
                        return r;
                }
        }

        if (n == 0) {
                why = "empty";
                goto bad;
        }
        *ret = a;
        *ret_n = n;
        return 0;

bad:
        qga_counters_free_array(a, n);
        *ret_line = l.number;
        *ret_why = why;
        return -EBADMSG;
}

int qga_parse_meminfo(const char *text, size_t size, QgaCounter **ret, size_t *ret_n) {
        unsigned line;
        const char *why;
        int r;

        r = parse_meminfo(text, size, ret, ret_n, &line, &why);
        if (r == -EBADMSG)
                log_debug("Guest meminfo, line %u: %s.", line, why);
        return r;
}

/* ---- /proc/interrupts ---- */

void qga_irq_row_done(QgaIrqRow *row) {
        if (!row)
                return;
        free(row->per_cpu);
        free(row->cpu_ids);
        free(row->description);
        *row = (QgaIrqRow) {};
}

/* The rest of a line is text the kernel could have written: printable bytes (UTF-8 passes), tabs. */
static bool text_ok(const char *p, const char *eol) {
        for (; p < eol; p++)
                if ((unsigned char) *p < 0x20 && *p != '\t')
                        return false;
        return true;
}

static int parse_interrupts(const char *text, size_t size, const char *const *labels, QgaIrqRow *rows,
                            unsigned *ret_cpus, unsigned *ret_line, const char **ret_why) {
        QgaIrqRow tmp[IRQ_LABELS_MAX] = {};
        _cleanup_free_ unsigned *ids = NULL;
        size_t n_labels = 0;
        Lines l = { .p = text, .end = text + size };
        const char *p, *eol, *why;
        unsigned cpus = 0;
        int r;

        while (labels && labels[n_labels]) {
                if (n_labels >= IRQ_LABELS_MAX)
                        return -EINVAL;
                n_labels++;
        }

        /* The header: "           CPU0       CPU1       " */
        r = lines_next(&l, &p, &eol);
        why = r < 0 ? "a NUL byte" : "no header";
        if (r <= 0)
                goto bad;
        for (;;) {
                uint64_t id;

                p = skip_spaces(p, eol);
                if (p >= eol)
                        break;
                why = "header is not a list of CPUn columns";
                if (eol - p < 4 || memcmp(p, "CPU", 3) != 0)
                        goto bad;
                p += 3;
                if (parse_dec(&p, eol, &id) < 0 || id > 65535 || (p < eol && *p != ' '))
                        goto bad;
                why = "too many CPU columns";
                if (cpus >= IRQ_CPUS_MAX)
                        goto bad;
                if ((cpus & (cpus - 1)) == 0) {         /* 0, 1, 2, 4, …: grow */
                        unsigned *n = reallocarray(ids, cpus ? cpus * 2 : 1, sizeof(unsigned));
                        if (!n) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        ids = n;
                }
                ids[cpus++] = (unsigned) id;
        }
        why = "no CPU columns in the header";
        if (cpus == 0)
                goto bad;

        for (;;) {
                const char *label;
                size_t ll, k;

                r = lines_next(&l, &p, &eol);
                if (r == 0)
                        break;
                why = "a NUL byte";
                if (r < 0)
                        goto bad;

                p = skip_spaces(p, eol);
                label = p;
                while (p < eol && name_char(*p, "-"))
                        p++;
                ll = (size_t) (p - label);
                why = "not \"LABEL: counts\"";
                if (ll == 0 || ll > NAME_MAX_LEN || p >= eol || *p != ':')
                        goto bad;
                p++;
                why = "control characters in the row";
                if (!text_ok(p, eol))
                        goto bad;

                for (k = 0; k < n_labels; k++)
                        if (strlen(labels[k]) == ll && memcmp(labels[k], label, ll) == 0)
                                break;
                if (k >= n_labels)
                        continue;       /* a row nobody asked for: only its shape is checked */

                why = "the row appears twice";
                if (tmp[k].present)
                        goto bad;
                tmp[k].per_cpu = calloc(cpus, sizeof(uint64_t));
                tmp[k].cpu_ids = memdup(ids, cpus * sizeof(unsigned));
                if (!tmp[k].per_cpu || !tmp[k].cpu_ids) {
                        r = -ENOMEM;
                        goto fail;
                }
                tmp[k].present = true;
                tmp[k].n_cpus = cpus;
                for (unsigned c = 0; c < cpus; c++) {
                        const char *q = skip_spaces(p, eol);

                        why = "fewer counts than CPU columns";
                        if (q == p || parse_dec(&q, eol, &tmp[k].per_cpu[c]) < 0 || (q < eol && *q != ' '))
                                goto bad;
                        p = q;
                }
                p = skip_spaces(p, eol);
                while (eol > p && eol[-1] == ' ')
                        eol--;
                why = "description too long";
                if ((size_t) (eol - p) > IRQ_DESCRIPTION_MAX)
                        goto bad;
                tmp[k].description = strndup(p, (size_t) (eol - p));
                if (!tmp[k].description) {
                        r = -ENOMEM;
                        goto fail;
                }
        }

        for (size_t k = 0; k < n_labels; k++)
                rows[k] = tmp[k];
        *ret_cpus = cpus;
        return 0;

bad:
        r = -EBADMSG;
        *ret_line = l.number;
        *ret_why = why;
fail:
        for (size_t k = 0; k < n_labels; k++)
                qga_irq_row_done(&tmp[k]);
        return r;
}

int qga_parse_interrupts(const char *text, size_t size, const char *const *labels, QgaIrqRow *rows,
                         unsigned *ret_cpus) {
        unsigned line;
        const char *why;
        int r;

        r = parse_interrupts(text, size, labels, rows, ret_cpus, &line, &why);
        if (r == -EBADMSG)
                log_debug("Guest /proc/interrupts, line %u: %s.", line, why);
        return r;
}

/* ---- sysfs lists ---- */

int qga_parse_id_list(const char *text, size_t size, unsigned max_id, unsigned **ret, size_t *ret_n) {
        _cleanup_free_ unsigned *ids = NULL;
        const char *p = text, *end = text + size;
        size_t n = 0;
        int64_t last = -1;

        if (size > 0 && end[-1] == '\n')
                end--;
        if (memchr(text, 0, (size_t) (end - text)) || memchr(text, '\n', (size_t) (end - text)))
                return -EBADMSG;

        while (p < end) {
                uint64_t a, b;

                if (parse_dec(&p, end, &a) < 0 || a > max_id)
                        return -EBADMSG;
                b = a;
                if (p < end && *p == '-') {
                        p++;
                        if (parse_dec(&p, end, &b) < 0 || b > max_id || b < a)
                                return -EBADMSG;
                }
                if ((int64_t) a <= last)
                        return -EBADMSG;        /* the kernel writes them increasing, without overlaps */
                if (p < end) {
                        if (*p != ',' || p + 1 >= end)
                                return -EBADMSG;
                        p++;
                }

                /* Strictly increasing and at most max_id: at most max_id + 1 ids in all. */
                unsigned *m = reallocarray(ids, n + (size_t) (b - a + 1), sizeof(unsigned));
                if (!m)
                        return -ENOMEM;
                ids = m;
                for (uint64_t i = a; i <= b; i++)
                        ids[n++] = (unsigned) i;
                last = (int64_t) b;
        }

        *ret = TAKE_PTR(ids);
        *ret_n = n;
        return 0;
}

/* ---- the snapshot ---- */

void qga_guest_counters_done(QgaGuestCounters *c) {
        if (!c)
                return;
        qga_counters_free_array(c->vmstat, c->n_vmstat);
        qga_counters_free_array(c->meminfo, c->n_meminfo);
        qga_irq_row_done(&c->tlb);
        qga_irq_row_done(&c->cal);
        qga_unavailable_free_array(c->unavailable, c->n_unavailable);
        *c = (QgaGuestCounters) {};
}

int qga_guest_counters_parse(QgaGuestCounters *c, const char *vmstat, size_t vmstat_size, const char *interrupts,
                             size_t interrupts_size, const char *meminfo, size_t meminfo_size) {
        unsigned line = 0;
        const char *why = NULL;
        int r;

        if (vmstat) {
                r = parse_vmstat(vmstat, vmstat_size, &c->vmstat, &c->n_vmstat, &line, &why);
                if (r == -EBADMSG)
                        r = qga_unavailable_add(&c->unavailable, &c->n_unavailable, "vmstat",
                                                "unavailable: the guest's /proc/vmstat does not parse (line %u: %s)",
                                                line, why);
                else if (r >= 0)
                        for (size_t i = 0; i < ELEMENTSOF(tlb_flush_counters) && r >= 0; i++)
                                if (!counters_contain(c->vmstat, c->n_vmstat, tlb_flush_counters[i],
                                                      strlen(tlb_flush_counters[i]), NULL))
                                        r = qga_unavailable_add(&c->unavailable, &c->n_unavailable,
                                                                tlb_flush_counters[i],
                                                                "unavailable: guest kernel without CONFIG_DEBUG_TLBFLUSH");
                if (r < 0)
                        return r;
        }

        if (interrupts) {
                static const char *const labels[] = { "TLB", "CAL", NULL };
                QgaIrqRow rows[2] = {};

                r = parse_interrupts(interrupts, interrupts_size, labels, rows, &c->interrupt_cpus, &line, &why);
                if (r == -EBADMSG) {
                        r = qga_unavailable_add(&c->unavailable, &c->n_unavailable, "interrupts",
                                                "unavailable: the guest's /proc/interrupts does not parse (line %u: %s)",
                                                line, why);
                        if (r < 0)
                                return r;
                } else if (r < 0)
                        return r;
                else {
                        c->tlb = rows[0];
                        c->cal = rows[1];
                        if (!c->tlb.present)
                                r = qga_unavailable_add(&c->unavailable, &c->n_unavailable, "tlb",
                                                        "unavailable: no TLB: row in the guest's /proc/interrupts "
                                                        "(TLB shootdown interrupts are counted there on x86 only)");
                        if (r >= 0 && !c->cal.present)
                                r = qga_unavailable_add(&c->unavailable, &c->n_unavailable, "cal",
                                                        "unavailable: no CAL: row in the guest's /proc/interrupts "
                                                        "(function call interrupts are counted there on x86 only)");
                        if (r < 0)
                                return r;
                }
        }

        if (meminfo) {
                r = parse_meminfo(meminfo, meminfo_size, &c->meminfo, &c->n_meminfo, &line, &why);
                if (r == -EBADMSG)
                        r = qga_unavailable_add(&c->unavailable, &c->n_unavailable, "meminfo",
                                                "unavailable: the guest's /proc/meminfo does not parse (line %u: %s)",
                                                line, why);
                if (r < 0)
                        return r;
        }

        return 0;
}

/* ---- the delta of two snapshots ---- */

static int delta_rows(const char *name, const QgaIrqRow *a, const QgaIrqRow *b, QgaCounter **d, size_t *n,
                      QgaUnavailable **u, size_t *nu) {
        if (!a->present || !b->present)
                return qga_unavailable_add(u, nu, name, "unavailable: the row is missing in the %s snapshot",
                                           !a->present ? "first" : "second");
        if (a->n_cpus != b->n_cpus)
                return qga_unavailable_add(u, nu, name,
                                           "unavailable: the guest's CPU columns changed from %zu to %zu",
                                           a->n_cpus, b->n_cpus);

        for (size_t i = 0; i < a->n_cpus; i++)
                if (a->cpu_ids && b->cpu_ids && a->cpu_ids[i] != b->cpu_ids[i])
                        return qga_unavailable_add(u, nu, name, "unavailable: the guest's online CPUs changed "
                                                   "between the snapshots");

        for (size_t i = 0; i < a->n_cpus; i++) {
                char key[64];
                int r;

                (void) snprintf(key, sizeof(key), "%s.cpu%u", name, a->cpu_ids ? a->cpu_ids[i] : (unsigned) i);
                if (b->per_cpu[i] < a->per_cpu[i])
                        r = qga_unavailable_add(u, nu, key, "unavailable: went down from %" PRIu64 " to %" PRIu64,
                                                a->per_cpu[i], b->per_cpu[i]);
                else
                        r = counters_push(d, n, key, strlen(key), b->per_cpu[i] - a->per_cpu[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

int qga_guest_counters_delta(const QgaGuestCounters *a, const QgaGuestCounters *b, QgaCounter **ret, size_t *ret_n,
                             QgaUnavailable **ret_unavailable, size_t *ret_n_unavailable) {
        QgaCounter *d = NULL;
        QgaUnavailable *u = NULL;
        size_t n = 0, nu = 0;
        int r = 0;

        for (size_t i = 0; i < b->n_vmstat && r >= 0; i++) {
                const QgaCounter *x = &b->vmstat[i];
                uint64_t before;

                if (!counters_contain(a->vmstat, a->n_vmstat, x->name, strlen(x->name), &before))
                        r = qga_unavailable_add(&u, &nu, x->name,
                                                "unavailable: present only in the second snapshot");
                else if (x->value < before)
                        r = qga_unavailable_add(&u, &nu, x->name,
                                                "unavailable: went down from %" PRIu64 " to %" PRIu64, before,
                                                x->value);
                else
                        r = counters_push(&d, &n, x->name, strlen(x->name), x->value - before);
        }
        for (size_t i = 0; i < a->n_vmstat && r >= 0; i++)
                if (!counters_contain(b->vmstat, b->n_vmstat, a->vmstat[i].name, strlen(a->vmstat[i].name), NULL))
                        r = qga_unavailable_add(&u, &nu, a->vmstat[i].name,
                                                "unavailable: present only in the first snapshot");
        if (r >= 0)
                r = delta_rows("tlb", &a->tlb, &b->tlb, &d, &n, &u, &nu);
        if (r >= 0)
                r = delta_rows("cal", &a->cal, &b->cal, &d, &n, &u, &nu);
        if (r < 0) {
                qga_counters_free_array(d, n);
                qga_unavailable_free_array(u, nu);
                return r;
        }

        *ret = d;
        *ret_n = n;
        *ret_unavailable = u;
        *ret_n_unavailable = nu;
        return 0;
}

/* ---- identity ---- */

void qga_guest_info_done(QgaGuestInfo *info) {
        if (!info)
                return;
        free(info->agent_version);
        free(info->os_id);
        free(info->os_name);
        free(info->os_pretty_name);
        free(info->os_version);
        free(info->kernel_release);
        free(info->kernel_version);
        free(info->machine);
        for (size_t i = 0; i < info->n_nodes; i++)
                free(info->nodes[i].cpulist);
        free(info->nodes);
        qga_unavailable_free_array(info->unavailable, info->n_unavailable);
        *info = (QgaGuestInfo) {};
}
