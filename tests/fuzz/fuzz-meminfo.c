/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parses the input as /proc/meminfo (or a node's meminfo) text with meminfo_parse(), the buffer entry point
 * meminfo_read() uses. Besides the sanitizers, it checks the parser's contract: success means 1 …
 * MEMINFO_MAX_FIELDS fields with non-empty names of the allowed characters, kB values scaled without
 * overflow, and every field findable by its name; failure is one of the documented errors. */

#include <ctype.h>
#include <stdio.h>

#include "fuzz.h"
#include "basic/log.h"
#include "metrics/meminfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL;
        Meminfo m;
        HostMemory h;
        int r;

        if (size > 64 * 1024) /* meminfo_read() reads at most this much */
                return 0;
        fuzz_setup_logging();

        /* The parser sees the text up to the first NUL, as it would from the file. */
        text = fuzz_strndup(data, size);

        r = meminfo_parse(text, &m);
        if (r < 0) {
                FUZZ_CHECK_ERROR(r, -EINVAL, -E2BIG, -ENODATA, -ERANGE);
                return 0;
        }

        if (m.n_fields < 1 || m.n_fields > MEMINFO_MAX_FIELDS)
                abort();
        for (size_t i = 0; i < m.n_fields; i++) {
                const MeminfoField *f = &m.fields[i];
                size_t l = strnlen(f->name, sizeof(f->name));
                uint64_t v;

                if (l == 0 || l >= sizeof(f->name))
                        abort();
                for (size_t k = 0; k < l; k++)
                        if (!isalnum((unsigned char) f->name[k]) && !strchr("_()", f->name[k]))
                                abort();
                if (f->bytes && f->value % 1024 != 0)
                        abort();
                /* The first field of that name is what meminfo_get() finds. */
                if (meminfo_get(&m, f->name, &v) < 0)
                        abort();
        }

        r = host_memory_from_meminfo(&m, &h);
        if (r >= 0)
                (void) host_memory_overcommit_ratio(&h);
        else if (r != -ENODATA)
                abort();
        return 0;
}
