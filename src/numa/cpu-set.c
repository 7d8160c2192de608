/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numa/cpu-set.h"
#include "basic/parse.h"

unsigned cpu_set_count(const CpuSet *s) {
        unsigned n = 0;

        for (size_t i = 0; i < ELEMENTSOF(s->bits); i++)
                n += (unsigned) __builtin_popcountll(s->bits[i]);
        return n;
}

bool cpu_set_is_empty(const CpuSet *s) {
        return cpu_set_count(s) == 0;
}

bool cpu_set_equal(const CpuSet *a, const CpuSet *b) {
        return memcmp(a->bits, b->bits, sizeof(a->bits)) == 0;
}

bool cpu_set_is_subset(const CpuSet *a, const CpuSet *b) {
        for (size_t i = 0; i < ELEMENTSOF(a->bits); i++)
                if (a->bits[i] & ~b->bits[i])
                        return false;
        return true;
}

int cpu_set_last(const CpuSet *s) {
        for (size_t i = ELEMENTSOF(s->bits); i > 0; i--)
                if (s->bits[i - 1])
                        return (int) ((i - 1) * 64 + 63 - (unsigned) __builtin_clzll(s->bits[i - 1]));
        return -ENOENT;
}

static int parse_cpu_number(const char *s, size_t len, unsigned *ret) {
        char buf[16];
        unsigned v;
        int r;

        while (len > 0 && isblank((unsigned char) *s))
                s++, len--;
        while (len > 0 && isblank((unsigned char) s[len - 1]))
                len--;
        if (len == 0 || len >= sizeof(buf))
                return len == 0 ? -EINVAL : -ERANGE;
        memcpy(buf, s, len);
        buf[len] = 0;
        if (!isdigit((unsigned char) buf[0]))
                return -EINVAL;
        r = parse_unsigned(buf, &v);
        if (r < 0)
                return r;
        if (v >= CPU_SET_MAX)
                return -ERANGE;
        *ret = v;
        return 0;
}

int cpu_list_parse(const char *s, CpuSet *ret) {
        CpuSet set = {};
        const char *p = s;
        int r;

        if (!s)
                return -EINVAL;
        for (;;) {
                size_t len = strcspn(p, ",");
                const char *dash = memchr(p, '-', len);
                unsigned lo, hi;

                if (dash) {
                        r = parse_cpu_number(p, (size_t) (dash - p), &lo);
                        if (r < 0)
                                return r;
                        r = parse_cpu_number(dash + 1, len - (size_t) (dash - p) - 1, &hi);
                        if (r < 0)
                                return r;
                        if (hi < lo)
                                return -EINVAL;
                } else {
                        r = parse_cpu_number(p, len, &lo);
                        if (r < 0)
                                return r;
                        hi = lo;
                }
                for (unsigned c = lo; c <= hi; c++)
                        cpu_set_add(&set, c);
                if (p[len] == 0)
                        break;
                p += len + 1;
        }
        *ret = set;
        return 0;
}

int cpu_list_format(const CpuSet *s, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;
        bool first = true;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        for (unsigned c = 0; c < CPU_SET_MAX; c++) {
                unsigned e = c;

                if (!cpu_set_contains(s, c))
                        continue;
                while (e + 1 < CPU_SET_MAX && cpu_set_contains(s, e + 1))
                        e++;
                if (e == c)
                        fprintf(f, "%s%u", first ? "" : ",", c);
                else
                        fprintf(f, "%s%u-%u", first ? "" : ",", c, e);
                first = false;
                c = e;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

int cpu_set_to_sched(const CpuSet *s, cpu_set_t *ret) {
        CPU_ZERO(ret);
        for (unsigned c = 0; c < CPU_SET_MAX && c < CPU_SETSIZE; c++)
                if (cpu_set_contains(s, c))
                        CPU_SET(c, ret);
        return 0;
}

int cpu_set_from_sched(const cpu_set_t *c, CpuSet *ret) {
        CpuSet s = {};

        for (unsigned i = 0; i < CPU_SETSIZE && i < CPU_SET_MAX; i++)
                if (CPU_ISSET(i, c))
                        cpu_set_add(&s, i);
        *ret = s;
        return 0;
}

void vcpu_pin_map_done(VcpuPinMap *m) {
        m->pins = mfree(m->pins);
        m->n = 0;
}

const VcpuPin *vcpu_pin_map_find(const VcpuPinMap *m, unsigned vcpu) {
        for (size_t i = 0; i < m->n; i++)
                if (m->pins[i].vcpu == vcpu)
                        return &m->pins[i];
        return NULL;
}

static int pin_cmp(const void *a, const void *b) {
        const VcpuPin *x = a, *y = b;
        return x->vcpu < y->vcpu ? -1 : x->vcpu > y->vcpu;
}

int vcpu_pin_map_parse(const char *s, VcpuPinMap *ret, char **ret_bad_entry) {
        _cleanup_free_ VcpuPin *pins = NULL;
        size_t n = 0;
        const char *p = s;
        int r = 0;

        if (!s)
                return -EINVAL;
        for (;;) {
                _cleanup_free_ char *entry = NULL;
                char *sep, sepc;
                unsigned vcpu;
                VcpuPin *t;
                size_t len;

                p += strspn(p, " \t\n");
                if (*p == 0)
                        break;
                len = strcspn(p, " \t\n");
                entry = strndup(p, len);
                if (!entry)
                        return -ENOMEM;
                p += len;

                sep = strpbrk(entry, ":=");
                if (!sep || sep == entry) {
                        r = -EINVAL;
                        goto bad;
                }
                sepc = *sep;
                *sep = 0;
                r = isdigit((unsigned char) entry[0]) ? parse_unsigned(entry, &vcpu) : -EINVAL;
                *sep = sepc;
                if (r < 0)
                        goto bad;
                if (vcpu >= VCPU_PIN_MAX) {
                        r = -ERANGE;
                        goto bad;
                }
                for (size_t i = 0; i < n; i++)
                        if (pins[i].vcpu == vcpu) {
                                r = -EEXIST;
                                goto bad;
                        }
                t = realloc(pins, (n + 1) * sizeof(VcpuPin));
                if (!t)
                        return -ENOMEM;
                pins = t;
                pins[n].vcpu = vcpu;
                r = cpu_list_parse(sep + 1, &pins[n].cpus);
                if (r < 0)
                        goto bad;
                n++;
                continue;
        bad:
                if (ret_bad_entry)
                        *ret_bad_entry = TAKE_PTR(entry);
                return r;
        }
        if (n == 0)
                return -EINVAL;
        qsort(pins, n, sizeof(VcpuPin), pin_cmp);
        *ret = (VcpuPinMap) { .pins = TAKE_PTR(pins), .n = n };
        return 0;
}

int vcpu_pin_map_format(const VcpuPinMap *m, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < m->n; i++) {
                _cleanup_free_ char *l = NULL;
                int r = cpu_list_format(&m->pins[i].cpus, &l);
                if (r < 0) {
                        fclose(f);
                        return r;
                }
                fprintf(f, "%s%u:%s", i == 0 ? "" : " ", m->pins[i].vcpu, l);
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}
