/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parses the input as /proc/PID/status text with proc_status_parse(), the buffer entry point
 * proc_status_read() uses. Success needs VmRSS; failure is one of the documented errors. */

#include <stdio.h>

#include "fuzz.h"
#include "basic/log.h"
#include "metrics/proc-status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL;
        ProcStatus s;
        int r;

        if (size > 64 * 1024) /* proc_status_read() reads at most this much */
                return 0;
        fuzz_setup_logging();

        text = fuzz_strndup(data, size);

        r = proc_status_parse(text, &s);
        FUZZ_CHECK_ERROR(r, -EINVAL, -ERANGE, -ENODATA);
        if (r >= 0 && !strstr(text, "VmRSS:"))
                abort();
        return 0;
}
