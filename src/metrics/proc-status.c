/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>

#include "basic/fileio.h"
#include "basic/parse.h"
#include "metrics/proc-status.h"

static int parse_kb(const char *v, const char *eol, uint64_t *ret) {
        char num[24];
        size_t l = 0;
        uint64_t x;

        while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
        while (v < eol && isdigit((unsigned char) *v) && l < sizeof(num) - 1)
                num[l++] = *v++;
        num[l] = 0;
        if (l == 0 || parse_uint64(num, &x) < 0)
                return -EINVAL;
        if (eol - v != 3 || memcmp(v, " kB", 3) != 0)
                return -EINVAL;
        if (x > UINT64_MAX / 1024)
                return -ERANGE;
        *ret = x * 1024;
        return 0;
}

int proc_status_parse(const char *text, ProcStatus *ret) {
        static const struct {
                const char *key;
                size_t offset;
        } keys[] = {
                { "VmRSS:", offsetof(ProcStatus, vm_rss) },
                { "VmHWM:", offsetof(ProcStatus, vm_hwm) },
                { "RssAnon:", offsetof(ProcStatus, rss_anon) },
                { "RssFile:", offsetof(ProcStatus, rss_file) },
                { "RssShmem:", offsetof(ProcStatus, rss_shmem) },
                { "VmSwap:", offsetof(ProcStatus, vm_swap) },
        };
        ProcStatus s = {};
        bool have_rss = false;
        int r;

        for (const char *p = text; *p;) {
                const char *eol = strchrnul(p, '\n'), *v;

                for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                        if ((v = startswith(p, keys[i].key))) {
                                r = parse_kb(v, eol, (uint64_t *) ((uint8_t *) &s + keys[i].offset));
                                if (r < 0)
                                        return r;
                                if (i == 0)
                                        have_rss = true;
                        }
                if ((v = startswith(p, "Threads:"))) {
                        char num[16];
                        size_t l = 0;

                        while (v < eol && (*v == ' ' || *v == '\t'))
                                v++;
                        while (v < eol && isdigit((unsigned char) *v) && l < sizeof(num) - 1)
                                num[l++] = *v++;
                        num[l] = 0;
                        if (l == 0 || v != eol || parse_unsigned(num, &s.threads) < 0)
                                return -EINVAL;
                }
                p = *eol ? eol + 1 : eol;
        }

        if (!have_rss)
                return -ENODATA;
        *ret = s;
        return 0;
}

int proc_status_read(const char *path, ProcStatus *ret) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_full_file(path, 64 * 1024, &text, NULL);
        if (r == -ESRCH)
                return -ENOENT;
        if (r < 0)
                return r;
        return proc_status_parse(text, ret);
}
