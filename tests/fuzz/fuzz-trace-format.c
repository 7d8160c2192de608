/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parses the input as the format file of kvm:kvm_exit with trace_kvm_exit_reasons_from_format() (libtraceevent
 * underneath), for both ISAs and one that does not exist. Besides the sanitizers, it checks the contract:
 * success means 1 … TRACE_SYMBOLS_MAX symbols, strictly increasing values, non-empty names and no reason;
 * failure is one of the documented errors and always comes with a reason. */

#include "fuzz.h"
#include "trace/trace-format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const int isas[] = { TRACE_KVM_ISA_VMX, TRACE_KVM_ISA_SVM, 3 };

        if (size > 256 * 1024)
                return 0;
        fuzz_setup_logging();

        for (size_t k = 0; k < ELEMENTSOF(isas); k++) {
                _cleanup_free_ char *reason = NULL;
                TraceSymbol *s = NULL;
                size_t n = 0;
                int r;

                r = trace_kvm_exit_reasons_from_format((const char *) data, size, (TraceKvmIsa) isas[k], &s, &n,
                                                       &reason);
                if (isas[k] == 3) {
                        if (r != -EINVAL)
                                abort();
                        continue;
                }
                if (r < 0) {
                        FUZZ_CHECK_ERROR(r, -EBADMSG, -ENOMEM);
                        if ((!reason && r != -ENOMEM) || s)
                                abort();
                        continue;
                }
                if (reason || n < 1 || n > TRACE_SYMBOLS_MAX)
                        abort();
                for (size_t i = 0; i < n; i++) {
                        if (!s[i].name || !s[i].name[0])
                                abort();
                        if (i > 0 && s[i - 1].value >= s[i].value)
                                abort();
                }
                trace_symbols_free(s, n);
        }
        return 0;
}
